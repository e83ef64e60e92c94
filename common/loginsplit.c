/* The login split: see loginsplit.h. */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/ancil.h>
#include <skalibs/bytestr.h>
#include <skalibs/djbunix.h>
#include <skalibs/iopause.h>
#include <skalibs/setgroups.h>
#include <skalibs/sgetopt.h>
#include <skalibs/stralloc.h>
#include <skalibs/sig.h>
#include <skalibs/strerr.h>
#include <skalibs/types.h>

#include "exitcodes.h"
#include "loginsplit.h"
#include "nodump.h"
#include "root.h"
#include "ylog.h"

#define CREDS_MAX 512          /* what yubin-checkpassword reads on fd 3 */
#define REQUEST_MAX 2048       /* login, password and the variables */
#define ENV_MAX 8

static int monitor = -1 ;      /* the child's end of the socketpair */

static void dienomem (void)
{
  strerr_diefu1sys(EX_TEMP, "allocate memory") ;
}

void loginsplit_options (int argc, char const *const *argv, char const *usage, struct loginsplit *ls, int *implicit, char const **maildir)
{
  subgetopt l = SUBGETOPT_ZERO ;
  int haveuid = 0, havegid = 0, envuid = 0 ;
  *implicit = 0 ;
  *maildir = "Maildir" ;
  for (;;)
  {
    int opt = subgetopt_r(argc, argv, "TUu:g:m:", &l) ;
    if (opt == -1) break ;
    switch (opt)
    {
      case 'T' : *implicit = 1 ; break ;
      case 'U' : envuid = 1 ; break ;
      case 'u' : if (!uid0_scan(l.arg, &ls->uid)) strerr_dieusage(EX_PERM, usage) ; haveuid = 1 ; break ;
      case 'g' : if (!gid0_scan(l.arg, &ls->gid)) strerr_dieusage(EX_PERM, usage) ; havegid = 1 ; break ;
      case 'm' : *maildir = l.arg ; break ;
      default : strerr_dieusage(EX_PERM, usage) ;
    }
  }
  if (l.ind < argc || haveuid != havegid) strerr_dieusage(EX_PERM, usage) ;
  if (!**maildir || **maildir == '-') strerr_dief2x(EX_PERM, "invalid maildir: ", *maildir) ;
  ls->have_uid = haveuid ;
  if (envuid && !haveuid) loginsplit_uid_from_env(ls) ;
}

void loginsplit_programs (struct loginsplit *ls, stralloc *cpsa, stralloc *progsa, char const *envname, char const *prog, char const *maildir)
{
  char const *x = getenv("CHECKPASSWORD") ;
  cpsa->len = progsa->len = 0 ;
  if (x && *x ? !stralloc_cats(cpsa, x) : !yubin_libexec(cpsa, "yubin-checkpassword")) dienomem() ;
  x = getenv(envname) ;
  if (x && *x ? !stralloc_cats(progsa, x) : !yubin_sibling(progsa, prog)) dienomem() ;
  if (!stralloc_0(cpsa) || !stralloc_0(progsa)) dienomem() ;
  ls->checkpassword = cpsa->s ;
  ls->argv[0] = progsa->s ;
  ls->argv[1] = maildir ;
  ls->argv[2] = 0 ;
  ls->prog = ls->argv ;
}

char loginsplit_login (struct loginsplit_daemon const *d, char const *login, size_t loginlen,
                       char const *pass, size_t passlen, char const *mech, char const *extra)
{
  char v = LOGINSPLIT_BAD ;
  if (loginlen && !memchr(login, 0, loginlen) && !memchr(pass, 0, passlen))
  {
    /* the mail part logs whether the session is encrypted */
    stralloc e = STRALLOC_ZERO ;
    size_t at[2] = { 0, 0 } ;
    char const *env[4] = { 0, 0, 0, 0 } ;
    size_t n = 0 ;
    if (d->tls.on)
    {
      if (!stralloc_cats(&e, "SSL_PROTOCOL=") || !stralloc_catb(&e, d->tls.proto.s, d->tls.proto.len + 1)) dienomem() ;
      at[1] = e.len ;
      if (!stralloc_cats(&e, "SSL_CIPHER=") || !stralloc_catb(&e, d->tls.cipher.s, d->tls.cipher.len + 1)) dienomem() ;
      env[n++] = e.s + at[0] ;
      env[n++] = e.s + at[1] ;
    }
    if (extra) env[n++] = extra ;
    v = loginsplit_ask(login, loginlen, pass, passlen, env) ;
    stralloc_free(&e) ;
  }
  if (v == LOGINSPLIT_DONE) _exit(0) ;
  stralloc who = STRALLOC_ZERO ;
  if (!stralloc_catb(&who, login, loginlen) || !stralloc_0(&who)) dienomem() ;
  ylog(v == LOGINSPLIT_TEMP ? "auth-temp" : "auth-fail", "ip", d->ip, "user", who.s, "mech", mech, (char *)0) ;
  stralloc_free(&who) ;
  return v ;
}

void loginsplit_daemon (struct loginsplit_daemon *d, int argc, char const *const *argv, char const *usage,
                        char const *timeoutvar, unsigned int timeoutdefault, char const *progvar, char const *prog)
{
  static struct loginsplit ls = { .have_uid = 0 } ;
  static stralloc cpsa = STRALLOC_ZERO, progsa = STRALLOC_ZERO ;
  loginsplit_options(argc, argv, usage, &ls, &d->implicit, &d->maildir) ;
  char const *x = getenv("TCPREMOTEIP") ;
  if (x && *x) d->ip = x ;
  d->timeout = timeoutdefault ;
  x = getenv(timeoutvar) ;
  if (x && *x)
  {
    size_t n = uint_scan(x, &d->timeout) ;
    if (!n || x[n] || !d->timeout) strerr_dief4x(EX_PERM, "invalid $", timeoutvar, ": ", x) ;
  }
  d->clearok = loginsplit_cleartext_ok(d->ip) ;
  ucspitls_init(&d->tls) ;
  loginsplit_check_tls(&d->tls, d->implicit) ;
  loginsplit_programs(&ls, &cpsa, &progsa, progvar, prog, d->maildir) ;
  loginsplit_start(&ls) ;
}

void loginsplit_check_tls (struct ucspitls const *tls, int implicit)
{
  if (tls->ctlfd >= 0 || (tls->on && !implicit))
    strerr_dief1x(EX_PERM, "yubin-tlsd in front would take root away from the monitor: use -T or $TLSD (TLS on demand) instead") ;
  if (implicit && !tls->ondemand) strerr_dief1x(EX_PERM, "-T needs $TLSD (yubin-tlsd on demand)") ;
}

void loginsplit_loggedin (void)
{
  char const *x = getenv("YUBIN_LOGGEDIN_FD") ;
  unsigned int fd ;
  if (!x) return ;
  if (x[uint_scan(x, &fd)] || fd < 3 || fd > 1023) return ;
  if (fd_write(fd, "y", 1) != 1) errno = 0 ;   /* no monitor: nobody to tell */
  fd_close(fd) ;
  if (unsetenv("YUBIN_LOGGEDIN_FD") < 0) errno = 0 ;
}

void loginsplit_uid_from_env (struct loginsplit *ls)
{
  char const *u = getenv("UID"), *g = getenv("GID") ;
  if (!u || !g) return ;
  if (!uid0_scan(u, &ls->uid) || !gid0_scan(g, &ls->gid)) strerr_dief1x(EX_PERM, "invalid $UID or $GID") ;
  ls->have_uid = 1 ;
}

int loginsplit_cleartext_ok (char const *ip)
{
  char const *x = getenv("CLEARTEXTLOGIN") ;
  return (x && *x && strcmp(x, "0")) || !strncmp(ip, "127.", 4) || !strcmp(ip, "::1") ;
}

/* ---------- the child ---------- */

char loginsplit_ask (char const *login, size_t loginlen, char const *pass, size_t passlen, char const *const *env)
{
  char buf[REQUEST_MAX] ;
  size_t n = 0 ;
  if (loginlen + passlen + 3 > sizeof(buf)) return LOGINSPLIT_BAD ;
  memcpy(buf, login, loginlen) ; n += loginlen ; buf[n++] = 0 ;
  memcpy(buf + n, pass, passlen) ; n += passlen ; buf[n++] = 0 ;
  for (; env && *env ; env++)
  {
    size_t len = strlen(*env) ;
    if (n + len + 2 > sizeof(buf)) break ;
    memcpy(buf + n, *env, len + 1) ;
    n += len + 1 ;
  }
  buf[n++] = 0 ;
  if (!ancil_send_fd(monitor, 0, '0') || !ancil_send_fd(monitor, 1, '1')
   || allwrite(monitor, buf, n) != n)
  {
    byte_zzero(buf, sizeof(buf)) ;
    strerr_diefu1sys(EX_TEMP, "hand the login to the monitor") ;
  }
  byte_zzero(buf, sizeof(buf)) ;
  char v ;
  ssize_t r ;
  do r = fd_read(monitor, &v, 1) ; while (r < 0 && errno == EINTR) ;
  if (r != 1) strerr_diefu1sys(EX_TEMP, "read the monitor's verdict") ;
  return v ;
}

static void drop_privileges (struct loginsplit const *ls)
{
  /* not for yubin-tlsd -E, which would take them as its own orders */
  if (unsetenv("UID") < 0 || unsetenv("GID") < 0 || unsetenv("GIDLIST") < 0)
    strerr_diefu1sys(EX_TEMP, "unset $UID") ;
  if (geteuid()) return ;
  if (!ls->have_uid) strerr_dief1x(EX_PERM, "started as root without a user to run as: refusing to read the network as root") ;
  if (!ls->uid) strerr_dief1x(EX_PERM, "uid 0: refusing to read the network as root") ;
  if (setgroups_and_gid(ls->gid, 0, 0) < 0 || setresgid(ls->gid, ls->gid, ls->gid) < 0
   || setresuid(ls->uid, ls->uid, ls->uid) < 0)
    strerr_diefu1sys(EX_TEMP, "drop privileges") ;
}

/* ---------- the monitor ---------- */

struct request
{
  int in, out ;
  char buf[REQUEST_MAX] ;
  size_t loginlen, passlen ;  /* login at buf, password after its NUL */
  char const *env[ENV_MAX + 1] ;
} ;

static int env_allowed (char const *s)
{
  static char const *const allowed[] = LOGINSPLIT_ENV_ALLOWED ;
  char const *eq = strchr(s, '=') ;
  if (!eq || strlen(eq + 1) > 256) return 0 ;
  for (char const *p = eq + 1 ; *p ; p++)
    if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) return 0 ;
  for (size_t i = 0 ; allowed[i] ; i++)
    if (strlen(allowed[i]) == (size_t)(eq - s) && !memcmp(allowed[i], s, eq - s)) return 1 ;
  return 0 ;
}

/* The fields of a request: 1, or 0 if malformed. */
static int split_request (struct request *q, size_t n)
{
  size_t i = 0, k = 0 ;
  q->loginlen = strlen(q->buf) ;
  i = q->loginlen + 1 ;
  if (i >= n) return 0 ;
  q->passlen = strlen(q->buf + i) ;
  i += q->passlen + 1 ;
  while (i < n && q->buf[i])
  {
    if (k >= ENV_MAX || !env_allowed(q->buf + i)) return 0 ;
    q->env[k++] = q->buf + i ;
    i += strlen(q->buf + i) + 1 ;
  }
  q->env[k] = 0 ;
  return i + 1 == n ;
}

/* skalibs' ancil_recv_fd does not wait (MSG_DONTWAIT): we do, for as
 * long as the pre-login process lives.  errno 0 at EOF. */
static int recv_fd (int sock, char expect)
{
  for (;;)
  {
    iopause_fd x = { .fd = sock, .events = IOPAUSE_READ, .revents = 0 } ;
    if (iopause_g(&x, 1, 0) < 0)
    {
      if (errno == EINTR) continue ;
      strerr_diefu1sys(EX_TEMP, "iopause") ;
    }
    errno = 0 ;
    int fd = ancil_recv_fd(sock, expect) ;
    if (fd >= 0 || (errno != EAGAIN && errno != EINTR)) return fd ;
  }
}

/* A request from the child: its two fds, then login\0pass\0 and the
 * variables, each NUL-terminated, then an empty one.  1, or 0 when the
 * child is gone. */
static int read_request (int sock, struct request *q)
{
  q->in = recv_fd(sock, '0') ;
  if (q->in < 0)
  {
    if (errno == EPIPE || errno == ECONNRESET || !errno) return 0 ;
    strerr_diefu1sys(EX_TEMP, "receive the connection from the pre-login process") ;
  }
  q->out = recv_fd(sock, '1') ;
  if (q->out < 0) strerr_diefu1sys(EX_TEMP, "receive the connection from the pre-login process") ;
  size_t n = 0 ;
  int seen_pass = 0 ;
  for (;;)
  {
    if (n >= sizeof(q->buf)) strerr_dief1x(EX_TEMP, "oversized login from the pre-login process") ;
    ssize_t r = fd_read(sock, q->buf + n, 1) ;
    if (r < 0 && errno == EINTR) continue ;
    if (r != 1) strerr_diefu1sys(EX_TEMP, "read the login from the pre-login process") ;
    n++ ;
    if (q->buf[n-1]) continue ;
    /* an empty string after login and password ends the request */
    if (seen_pass >= 2 && (n == 1 || !q->buf[n-2])) break ;
    if (seen_pass < 2) seen_pass++ ;
  }
  if (!split_request(q, n)) strerr_dief1x(EX_TEMP, "malformed request from the pre-login process") ;
  return 1 ;
}

/* checkpassword with "login\0pass\0stamp\0" on fd 3, the connection on
 * 0 and 1 and the request's variables in its environment; its verdict. */
static char check_and_serve (struct loginsplit const *ls, struct request *q)
{
  char creds[CREDS_MAX] ;
  char stamp[ULONG_FMT * 2 + 2] ;
  size_t sn = ulong_fmt(stamp, (unsigned long)getpid()) ;
  stamp[sn++] = '.' ;
  sn += ulong_fmt(stamp + sn, (unsigned long)time(0)) ;
  stamp[sn++] = 0 ;
  size_t up = q->loginlen + 1 + q->passlen + 1 ;
  if (up + sn > sizeof(creds)) return LOGINSPLIT_BAD ;
  memcpy(creds, q->buf, up) ;
  memcpy(creds + up, stamp, sn) ;
  size_t len = up + sn ;
  int p[2], lp[2] ;
  if (pipecoe(p) < 0) { byte_zzero(creds, sizeof(creds)) ; return LOGINSPLIT_TEMP ; }
  if (pipecoe(lp) < 0) { fd_close(p[0]) ; fd_close(p[1]) ; byte_zzero(creds, sizeof(creds)) ; return LOGINSPLIT_TEMP ; }
  pid_t pid = fork() ;
  if (pid < 0)
  {
    fd_close(p[0]) ; fd_close(p[1]) ; fd_close(lp[0]) ; fd_close(lp[1]) ;
    byte_zzero(creds, sizeof(creds)) ;
    return LOGINSPLIT_TEMP ;
  }
  if (!pid)
  {
    size_t argc = 0 ;
    while (ls->prog[argc]) argc++ ;
    char const *argv[argc + 2] ;
    argv[0] = ls->checkpassword ;
    for (size_t i = 0 ; i <= argc ; i++) argv[i + 1] = ls->prog[i] ;
    byte_zzero(creds, sizeof(creds)) ;
    fd_close(p[1]) ;
    fd_close(lp[0]) ;
    /* above 9 first, so that no dup2 clobbers another's source */
    int in = fcntl(q->in, F_DUPFD_CLOEXEC, 10), out = fcntl(q->out, F_DUPFD_CLOEXEC, 10) ;
    int cr = fcntl(p[0], F_DUPFD_CLOEXEC, 10), li = fcntl(lp[1], F_DUPFD_CLOEXEC, 10) ;
    if (in < 0 || out < 0 || cr < 0 || li < 0
     || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(cr, 3) < 0 || dup2(li, 4) < 0
     || ndelay_off(0) < 0 || ndelay_off(1) < 0)
      strerr_diefu2sys(EX_TEMP, "set up the fds of ", ls->checkpassword) ;
    if (putenv((char *)"YUBIN_LOGGEDIN_FD=4") < 0) strerr_diefu1sys(EX_TEMP, "set the environment") ;
    if (!sig_restore(SIGPIPE) || !sig_restore(SIGCHLD)) strerr_diefu1sys(EX_TEMP, "restore signals") ;
    for (char const *const *e = q->env ; *e ; e++)
      if (putenv((char *)*e) < 0) strerr_diefu1sys(EX_TEMP, "set the environment") ;
    execv(argv[0], (char *const *)argv) ;
    strerr_dieexec(EX_TEMP, argv[0]) ;
  }
  fd_close(p[0]) ;
  fd_close(lp[1]) ;
  /* at most 512 bytes into an empty pipe: never blocks */
  if (allwrite(p[1], creds, len) != len) errno = 0 ;
  byte_zzero(creds, sizeof(creds)) ;
  fd_close(p[1]) ;
  int wstat ;
  while (waitpid(pid, &wstat, 0) < 0)
    if (errno != EINTR) { fd_close(lp[0]) ; return LOGINSPLIT_TEMP ; }
  /* the mail part said it took the session (loginsplit_loggedin): it is
     over, however the mail part ended; else the exit code of
     checkpassword is the verdict */
  char y ;
  if (ndelay_on(lp[0]) < 0) errno = 0 ;
  ssize_t r = fd_read(lp[0], &y, 1) ;
  fd_close(lp[0]) ;
  if (r == 1) return LOGINSPLIT_DONE ;
  if (WIFEXITED(wstat) && !WEXITSTATUS(wstat)) return LOGINSPLIT_DONE ;
  if (WIFEXITED(wstat) && WEXITSTATUS(wstat) == 1) return LOGINSPLIT_BAD ;
  return LOGINSPLIT_TEMP ;
}

static int reap (pid_t pid)
{
  int wstat ;
  while (waitpid(pid, &wstat, 0) < 0)
    if (errno != EINTR) return EX_TEMP ;
  return WIFEXITED(wstat) ? WEXITSTATUS(wstat) : EX_TEMP ;
}

static void run_monitor (struct loginsplit const *ls, int sock, pid_t child)
{
  static struct request q ;
  /* the monitor never touches the connection itself */
  if (fd_move(0, open2("/dev/null", O_RDONLY)) < 0 || fd_move(1, open2("/dev/null", O_WRONLY)) < 0)
    strerr_diefu1sys(EX_TEMP, "put /dev/null on fds 0 and 1") ;
  for (;;)
  {
    if (!read_request(sock, &q)) break ;
    char v = check_and_serve(ls, &q) ;
    byte_zzero(q.buf, sizeof(q.buf)) ;
    fd_close(q.in) ;
    fd_close(q.out) ;
    if (fd_write(sock, &v, 1) != 1) break ;
    if (v == LOGINSPLIT_DONE) break ;
  }
  fd_close(sock) ;
  _exit(reap(child)) ;
}

void loginsplit_start (struct loginsplit const *ls)
{
  int sp[2] ;
  if (!sig_ignore(SIGPIPE)) strerr_diefu1sys(EX_TEMP, "ignore SIGPIPE") ;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) strerr_diefu1sys(EX_TEMP, "create a socketpair") ;
  pid_t pid = fork() ;
  if (pid < 0) strerr_diefu1sys(EX_TEMP, "fork") ;
  if (pid)
  {
    fd_close(sp[1]) ;
    run_monitor(ls, sp[0], pid) ;
  }
  fd_close(sp[0]) ;
  monitor = sp[1] ;
  drop_privileges(ls) ;
  if (yubin_nodump() < 0) strerr_diefu1sys(EX_TEMP, "make the pre-login process non-dumpable") ;
}
