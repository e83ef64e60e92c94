/* The listener of yubin-smtpd -l and yubin-tlsd -l: a process per
 * connection without an exec.  What it promises: listen.h. */

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <skalibs/cdb.h>
#include <skalibs/djbunix.h>
#include <skalibs/iopause.h>
#include <skalibs/ip46.h>
#include <skalibs/selfpipe.h>
#include <skalibs/setgroups.h>
#include <skalibs/socket.h>
#include <skalibs/strerr.h>
#include <skalibs/tai.h>
#include <skalibs/types.h>

#include "listen.h"
#include "nodump.h"
#include "root.h"
#include "ylog.h"

#define GIDLIST_MAX 64

static unsigned int children = 0 ;
static int listen_is6 = 0 ;

/* ---------- start-up: the socket and the identity ---------- */

static int bind_listen (struct listen_conf const *lc)
{
  ip46 ip ;
  uint16_t port ;
  size_t n = ip46_scan(lc->ip, &ip) ;
  if (!n || lc->ip[n]) strerr_dief2x(111, "not an IP address: ", lc->ip) ;
  n = uint160_scan(lc->port, &port) ;
  if (!n || lc->port[n]) strerr_dief2x(111, "not a port number: ", lc->port) ;
  listen_is6 = ip46_is6(&ip) ;
  int fd = socket_tcp46_nbcoe(listen_is6) ;
  if (fd < 0) strerr_diefu1sys(111, "create the listening socket") ;
  if (socket_bind46_reuse(fd, &ip, port) < 0)
    strerr_diefu4sys(111, "bind to ", lc->ip, " port ", lc->port) ;
  if (socket_listen(fd, lc->backlog) < 0) strerr_diefu1sys(111, "listen") ;
  return fd ;
}

/* -U: the group list, group and user of $GIDLIST, $GID and $UID, as
 * s6-envuidgid leaves them (tcpserver -U takes $GID and $UID). */
static void drop_to_env_ids (void)
{
  char const *u = getenv("UID"), *g = getenv("GID"), *gl = getenv("GIDLIST") ;
  uid_t uid ;
  gid_t gid ;
  gid_t list[GIDLIST_MAX] ;
  size_t nlist = 1 ;
  if (!u && !g) return ;   /* as tcpserver -U: nothing to become */
  if (!u || !g) strerr_dief1x(111, "-U needs both $UID and $GID (s6-envuidgid sets them)") ;
  if (!uid0_scan(u, &uid) || !gid0_scan(g, &gid)) strerr_dief1x(111, "$UID or $GID is not a number") ;
  if (geteuid() && uid == geteuid() && gid == getegid()) return ;   /* already them */
  list[0] = gid ;
  if (gl && *gl && (!gid_scanlist(list, GIDLIST_MAX, gl, &nlist) || !nlist))
    strerr_dief2x(111, "bad $GIDLIST: ", gl) ;
  if (skalibs_setgroups(nlist, list) < 0) strerr_diefu1sys(111, "setgroups") ;
  if (setgid(gid) < 0) strerr_diefu1sys(111, "setgid") ;
  if (setuid(uid) < 0) strerr_diefu1sys(111, "setuid") ;
  if (getuid() != uid || geteuid() != uid) strerr_dief1x(111, "still not $UID after setuid") ;
  if (yubin_sanitizer_dumpable() < 0) strerr_diefu1sys(111, "prctl PR_SET_DUMPABLE") ;
}

/* ---------- after a crash: a fresh address layout ---------- */

static int crash_signal (int sig)
{
  return sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE
      || sig == SIGABRT || sig == SIGSYS || sig == SIGTRAP ;
}

/* exec the same program with -F lfd in front of the original options
 * (an -F of the original, from an earlier re-exec, is left out) */
static void exec_afresh (struct listen_conf const *lc, int lfd)
{
  char fdstr[INT_FMT] ;
  size_t argc = 0 ;
  while (lc->argv[argc]) argc++ ;
  char const *av[argc + 3] ;
  size_t n = 0 ;
  fdstr[int_fmt(fdstr, lfd)] = 0 ;
  av[n++] = lc->argv[0] ;
  av[n++] = "-F" ;
  av[n++] = fdstr ;
  for (size_t i = 1 ; i < argc ; i++)
  {
    if (!strcmp(lc->argv[i], "-F") && i + 1 < argc) { i++ ; continue ; }
    av[n++] = lc->argv[i] ;
  }
  av[n] = 0 ;
  selfpipe_finish() ;
  if (uncoe(lfd) < 0) strerr_diefu1sys(111, "keep the listening socket across exec") ;
  execv(av[0], (char *const *)av) ;
  strerr_diefu2sys(111, "exec ", av[0]) ;
}

static void reap (struct listen_conf const *lc, int lfd)
{
  int wstat ;
  pid_t pid ;
  while ((pid = wait_nohang(&wstat)) > 0)
  {
    if (children) children-- ;   /* after an exec afresh: the old image's children too */
    if (WIFSIGNALED(wstat) && crash_signal(WTERMSIG(wstat)))
    {
      char p[PID_FMT], s[INT_FMT] ;
      p[pid_fmt(p, pid)] = 0 ;
      s[int_fmt(s, WTERMSIG(wstat))] = 0 ;
      ylog("crash", "pid", p, "signal", s, "action", "exec-afresh", (char *)0) ;
      exec_afresh(lc, lfd) ;
    }
  }
  if (pid < 0 && errno != ECHILD) strerr_diefu1sys(111, "wait for sessions") ;
}

/* ---------- the child: UCSPI environment ---------- */

static void setenv_or_die (char const *name, char const *value)
{
  if (setenv(name, value, 1) < 0) strerr_diefu2sys(111, "set $", name) ;
}

/* tcprules: the first of the full address, its prefixes that end in '.'
 * or ':', and the empty key.  "D" denies; "+VAR=value" sets VAR.
 * Returns 1 allowed, 0 denied. */
static int apply_rules (char const *path, char const *ip)
{
  cdb c = CDB_ZERO ;
  cdb_data d = { .s = 0, .len = 0 } ;
  size_t len = strlen(ip) ;
  int r = 0 ;
  if (!cdb_init(&c, path)) strerr_diefu2sys(111, "read the rules in ", path) ;
  for (size_t j = len + 1 ; j-- > 0 && !r ; )
  {
    if (j && j < len && ip[j - 1] != '.' && ip[j - 1] != ':') continue ;
    r = cdb_find(&c, &d, ip, j) ;
    if (r < 0) strerr_dief2x(111, "malformed rules in ", path) ;
  }
  int allowed = 1 ;
  for (size_t i = 0 ; r && i < d.len ; )
  {
    char const *e = d.s + i ;
    size_t elen = strnlen(e, d.len - i) ;
    if (elen == 1 && *e == 'D') allowed = 0 ;
    else if (elen > 1 && *e == '+')
    {
      char const *eq = memchr(e, '=', elen) ;
      if (eq)
      {
        char name[eq - e] ;
        char value[elen - (eq - e)] ;
        memcpy(name, e + 1, eq - e - 1) ; name[eq - e - 1] = 0 ;
        memcpy(value, eq + 1, elen - (eq - e) - 1) ; value[elen - (eq - e) - 1] = 0 ;
        setenv_or_die(name, value) ;
      }
    }
    i += elen + 1 ;
  }
  cdb_free(&c) ;
  return allowed ;
}

static void set_ucspi_env (struct listen_conf const *lc, int fd, ip46 const *rip, uint16_t rport)
{
  char ipstr[IP46_FMT], portstr[UINT16_FMT] ;
  ip46 lip ;
  uint16_t lport ;
  if (socket_local46(fd, &lip, &lport) < 0) strerr_diefu1sys(111, "read the local address") ;
  setenv_or_die("PROTO", "TCP") ;
  ipstr[ip46_fmt(ipstr, &lip)] = 0 ;
  setenv_or_die("TCPLOCALIP", ipstr) ;
  portstr[uint16_fmt(portstr, lport)] = 0 ;
  setenv_or_die("TCPLOCALPORT", portstr) ;
  if (lc->localname) setenv_or_die("TCPLOCALHOST", lc->localname) ;
  else unsetenv("TCPLOCALHOST") ;
  ipstr[ip46_fmt(ipstr, rip)] = 0 ;
  setenv_or_die("TCPREMOTEIP", ipstr) ;
  portstr[uint16_fmt(portstr, rport)] = 0 ;
  setenv_or_die("TCPREMOTEPORT", portstr) ;
  unsetenv("TCPREMOTEHOST") ;
  unsetenv("TCPREMOTEINFO") ;
  if (lc->rules && !apply_rules(lc->rules, ipstr))
  {
    ylog("deny", "ip", ipstr, "reason", "tcprules", (char *)0) ;
    _exit(0) ;
  }
}

/* in the new child: back to a plain process with the connection on 0 and 1 */
static void become_session (struct listen_conf const *lc, int lfd, int fd, ip46 const *rip, uint16_t rport)
{
  selfpipe_finish() ;
  fd_close(lfd) ;
  if (socket_tcpnodelay(fd) < 0) strerr_diefu1sys(111, "set TCP_NODELAY") ;
  set_ucspi_env(lc, fd, rip, rport) ;
  if (fd_move(0, fd) < 0 || fd_copy(1, 0) < 0) strerr_diefu1sys(111, "move the connection to fd 0 and 1") ;
}

/* ---------- the loop ---------- */

static void pause_briefly (void)
{
  struct timespec ts = { .tv_sec = 0, .tv_nsec = 100000000 } ;
  nanosleep(&ts, 0) ;
}

static int accept46 (int lfd, ip46 *ip, uint16_t *port)
{
  char a[16] ;
  int fd = listen_is6 ? socket_accept6_coe(lfd, a, port) : socket_accept4_coe(lfd, a, port) ;
  if (fd >= 0) ip46_from_ip(ip, a, listen_is6) ;
  return fd ;
}

/* Accept one connection and fork its session.  Returns 1 in the child. */
static int accept_one (struct listen_conf const *lc, int lfd)
{
  ip46 rip ;
  uint16_t rport ;
  int fd = accept46(lfd, &rip, &rport) ;
  if (fd < 0)
  {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED) return 0 ;
    ylog("error", "op", "accept", "errno", strerror(errno), (char *)0) ;
    pause_briefly() ;   /* EMFILE and friends: don't spin */
    return 0 ;
  }
  pid_t pid = fork() ;
  if (pid < 0)
  {
    ylog("error", "op", "fork", "errno", strerror(errno), (char *)0) ;
    fd_close(fd) ;
    pause_briefly() ;
    return 0 ;
  }
  if (!pid)
  {
    become_session(lc, lfd, fd, &rip, rport) ;
    return 1 ;
  }
  fd_close(fd) ;
  children++ ;
  return 0 ;
}

void listen_serve (struct listen_conf const *lc)
{
  int lfd = lc->inherited ;
  if (!lc->maxconn) strerr_dief1x(100, "-c must be at least 1") ;
  if (lfd < 0)
  {
    lfd = bind_listen(lc) ;
    if (lc->dropuid) drop_to_env_ids() ;
  }
  /* nothing that reads the network runs as root (DESIGN.md) */
  if (!geteuid() || !getuid())
    strerr_dief1x(100, "refusing to serve connections as root: use -U with $UID and $GID (s6-envuidgid)") ;
  /* not dumpable on purpose, not only as a side effect of -U's setuid: a
     process of the same uid (a compromised session) must not trace the
     listener, or read what the next sessions inherit from it */
  if (yubin_nodump() < 0) strerr_diefu1sys(111, "prctl PR_SET_DUMPABLE") ;
  else
  {
    ip46 a ;
    uint16_t p ;
    if (ndelay_on(lfd) < 0 || coe(lfd) < 0 || socket_local46(lfd, &a, &p) < 0)
      strerr_diefu1sys(111, "use the inherited listening socket") ;
    listen_is6 = ip46_is6(&a) ;
  }
  /* what every session would look up for itself, once for all of them:
     the time zone (glibc reads /etc/localtime even for gmtime_r), the
     instance root and our own directory (a readlink of /proc/self/exe) */
  tzset() ;
  yubin_root_prime() ;
  int sfd = selfpipe_init() ;
  if (sfd < 0) strerr_diefu1sys(111, "init the selfpipe") ;
  if (!selfpipe_trap(SIGCHLD)) strerr_diefu1sys(111, "trap SIGCHLD") ;
  if (lc->inherited < 0)
  {
    char m[UINT_FMT] ;
    m[uint_fmt(m, lc->maxconn)] = 0 ;
    ylog("listen", "ip", lc->ip, "port", lc->port, "max", m, (char *)0) ;
  }
  tain deadline ;
  tain_now_set_stopwatch_g() ;
  tain_addsec_g(&deadline, lc->refresh) ;
  for (;;)
  {
    iopause_fd x[2] = { { .fd = sfd, .events = IOPAUSE_READ }, { .fd = lfd, .events = IOPAUSE_READ } } ;
    unsigned int n = children < lc->maxconn ? 2 : 1 ;
    int r = iopause_g(x, n, lc->refresh ? &deadline : 0) ;
    if (r < 0) strerr_diefu1sys(111, "iopause") ;
    if (!r && lc->refresh)
    {
      ylog("refresh", "action", "exec-afresh", (char *)0) ;
      exec_afresh(lc, lfd) ;
    }
    if (x[0].revents & IOPAUSE_READ)
    {
      int sig ;
      while ((sig = selfpipe_read()) > 0) ;
      if (sig < 0) strerr_diefu1sys(111, "read the selfpipe") ;
      reap(lc, lfd) ;
    }
    if (n == 2 && x[1].revents & (IOPAUSE_READ | IOPAUSE_EXCEPT) && accept_one(lc, lfd)) return ;
  }
}
