/* The client side of UCSPI-TLS (STARTTLS over yubin-tlsd, in front of us
 * or started on demand): see ucspitls.h. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/djbunix.h>
#include <skalibs/exec.h>
#include <skalibs/iopause.h>
#include <skalibs/sig.h>
#include <skalibs/strerr.h>
#include <skalibs/tai.h>
#include <skalibs/types.h>

#include "exitcodes.h"
#include "root.h"
#include "ucspitls.h"
#include "ylog.h"

static void dienomem (void)
{
  strerr_diefu1sys(EX_TEMP, "allocate memory") ;
}

static void setstr (stralloc *sa, char const *s)
{
  sa->len = 0 ;
  if (!stralloc_cats(sa, s) || !stralloc_0(sa)) dienomem() ;
  sa->len-- ;
}

static int scan_fd (char const *x, int *fd)
{
  unsigned int u ;
  if (!x || !*x || x[uint_scan(x, &u)] || u < 3 || u > 65535) return 0 ;
  *fd = (int)u ;
  return 1 ;
}

void ucspitls_init (struct ucspitls *tls)
{
  char const *p = getenv("SSL_PROTOCOL") ;
  if (p)
  {
    /* implicit TLS: yubin-tlsd did the handshake before starting us */
    tls->on = 1 ;
    setstr(&tls->proto, *p ? p : "unknown") ;
    p = getenv("SSL_CIPHER") ;
    setstr(&tls->cipher, p && *p ? p : "unknown") ;
    return ;
  }
  int c, r, w ;
  if (scan_fd(getenv("SSLCTLFD"), &c) && scan_fd(getenv("SSLREADFD"), &r) && scan_fd(getenv("SSLWRITEFD"), &w)
   && c != r && c != w && r != w)
  {
    if (coe(c) < 0 || coe(r) < 0 || coe(w) < 0) strerr_diefu1sys(EX_TEMP, "set close-on-exec on the TLS control fds") ;
    tls->ctlfd = c ; tls->rfd = r ; tls->wfd = w ;
    return ;
  }
  /* TLS on demand: nothing in front of us, yubin-tlsd -E at STARTTLS */
  p = getenv("TLSD") ;
  if (!p) return ;
  tls->ondemand = 1 ;
  if (strchr(p, '/')) tls->tlsd = p ;
  p = getenv("TLSDTIMEOUT") ;
  if (p && *p)
  {
    unsigned int ms ;
    size_t n = uint_scan(p, &ms) ;
    if (!n || p[n] || ms > 86400000) strerr_dief2x(EX_PERM, "invalid $TLSDTIMEOUT: ", p) ;
    tls->kms = p ;
  }
}

int ucspitls_offered (struct ucspitls const *tls)
{
  return tls->ctlfd >= 0 || tls->ondemand ;
}

/* After 'y': the session parameters, "NAME=value\0"... "\0", until EOF
 * (the handshake failed: leave without a word) or the deadline.  The
 * control fd may be blocking: wait first, then read what is there. */
static void params (struct ucspitls *tls, unsigned int timeout, char const *ip, char const *cmd)
{
  char buf[513] ;
  size_t n = 0 ;
  tain deadline ;
  tain_now_g() ;
  tain_addsec_g(&deadline, timeout) ;
  while (!(n == 1 && !buf[0]) && !(n >= 2 && !buf[n-1] && !buf[n-2]))
  {
    if (n >= sizeof(buf) - 1)
    {
      ylog("error", "ip", ip, "cmd", cmd, "reason", "bad-tls-parameters", (char *)0) ;
      _exit(EX_TEMP) ;
    }
    iopause_fd x = { .fd = tls->ctlfd, .events = IOPAUSE_READ, .revents = 0 } ;
    int p = iopause_g(&x, 1, &deadline) ;
    if (p < 0) { if (errno == EINTR) continue ; strerr_diefu1sys(EX_TEMP, "iopause") ; }
    if (!p)
    {
      ylog("timeout", "ip", ip, "cmd", cmd, (char *)0) ;
      _exit(EX_TEMP) ;
    }
    ssize_t r = fd_read(tls->ctlfd, buf + n, sizeof(buf) - 1 - n) ;
    if (!r)
    {
      ylog("quit", "ip", ip, "reason", "tls-handshake-failed", (char *)0) ;
      _exit(0) ;
    }
    if (r < 0)
    {
      if (errno == EINTR || errno == EAGAIN) continue ;
      ylog("quit", "ip", ip, "reason", "tls-control-error", (char *)0) ;
      _exit(EX_TEMP) ;
    }
    n += r ;
  }
  /* export them too, for the queue and checkpassword, as UCSPI-TLS does */
  for (size_t i = 0 ; i < n && buf[i] ; i += strlen(buf + i) + 1)
  {
    char *s = buf + i ;
    char *eq = strchr(s, '=') ;
    if (!eq || eq == s) continue ;
    *eq = 0 ;
    if (!strcmp(s, "SSL_PROTOCOL") && eq[1]) setstr(&tls->proto, eq + 1) ;
    else if (!strcmp(s, "SSL_CIPHER") && eq[1]) setstr(&tls->cipher, eq + 1) ;
    if (setenv(s, eq + 1, 1) < 0) dienomem() ;
    *eq = '=' ;
  }
  if (!tls->proto.len) setstr(&tls->proto, "unknown") ;
  if (!tls->cipher.len) setstr(&tls->cipher, "unknown") ;
}

/* TLS on demand: yubin-tlsd -E with the connection on its fds 0 and 1,
 * the other end of our cleartext socket on fd 3 and of the control
 * socket on fd 4; then the parameters, and the cleartext socket becomes
 * our fds 0 and 1.  The connection is yubin-tlsd's alone from then on:
 * when it is gone, our reads see EOF.  It is never waited for (SIGCHLD is
 * at its default: a zombie at worst, until we exit). */
static void ondemand_switch (struct ucspitls *tls, unsigned int timeout, char const *ip, char const *cmd)
{
  stralloc path = STRALLOC_ZERO ;
  int d[2], c[2] ;
  if (tls->tlsd) setstr(&path, tls->tlsd) ;
  else if (!yubin_libexec(&path, "yubin-tlsd")) dienomem() ;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, d) < 0
   || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c) < 0)
    strerr_diefu1sys(EX_TEMP, "create the TLS socketpairs") ;
  char const *argv[5] = { path.s, "-E", tls->kms ? "-K" : 0, tls->kms, 0 } ;
  pid_t pid = fork() ;
  if (pid < 0) strerr_diefu1sys(EX_TEMP, "fork") ;
  if (!pid)
  {
    /* above 4 first, so that neither dup2 clobbers the other's source;
       those copies are close-on-exec, 3 and 4 are not */
    int a = fcntl(d[1], F_DUPFD_CLOEXEC, 5), b = fcntl(c[1], F_DUPFD_CLOEXEC, 5) ;
    if (a < 0 || b < 0 || dup2(a, 3) < 0 || dup2(b, 4) < 0) strerr_diefu1sys(EX_TEMP, "move fds for yubin-tlsd") ;
    if (ndelay_off(0) < 0 || ndelay_off(1) < 0) strerr_diefu1sys(EX_TEMP, "set the connection blocking") ;
    if (!sig_restore(SIGPIPE)) strerr_diefu1sys(EX_TEMP, "restore SIGPIPE") ;
    execv(argv[0], (char *const *)argv) ;
    strerr_dieexec(EX_TEMP, argv[0]) ;
  }
  stralloc_free(&path) ;
  fd_close(d[1]) ;
  fd_close(c[1]) ;
  tls->ctlfd = c[0] ;
  params(tls, timeout, ip, cmd) ;
  if (fd_copy(0, d[0]) < 0 || fd_copy(1, d[0]) < 0) strerr_diefu1sys(EX_TEMP, "move the TLS socket to fds 0 and 1") ;
  fd_close(d[0]) ;
  fd_close(tls->ctlfd) ;
  tls->ctlfd = -1 ;
  tls->ondemand = 0 ;
  if (ndelay_on(0) < 0 || ndelay_on(1) < 0) strerr_diefu1sys(EX_TEMP, "set the TLS socket non-blocking") ;
  tls->on = 1 ;
}

void ucspitls_switch (struct ucspitls *tls, unsigned int timeout, char const *ip, char const *cmd)
{
  if (tls->ondemand) { ondemand_switch(tls, timeout, ip, cmd) ; return ; }
  /* the socket is yubin-tlsd's from now on: give it back as it came */
  if (ndelay_off(0) < 0 || ndelay_off(1) < 0) strerr_diefu1sys(EX_TEMP, "set the connection blocking") ;
  ssize_t w ;
  do w = fd_write(tls->ctlfd, "y", 1) ; while (w < 0 && errno == EINTR) ;
  if (w != 1)
  {
    ylog("error", "ip", ip, "cmd", cmd, "reason", "tls-control-write", (char *)0) ;
    _exit(EX_TEMP) ;
  }
  params(tls, timeout, ip, cmd) ;
  if (fd_move(0, tls->rfd) < 0 || fd_move(1, tls->wfd) < 0) strerr_diefu1sys(EX_TEMP, "move the TLS pipes to fds 0 and 1") ;
  fd_close(tls->ctlfd) ;
  tls->ctlfd = tls->rfd = tls->wfd = -1 ;
  if (unsetenv("SSLCTLFD") < 0 || unsetenv("SSLREADFD") < 0 || unsetenv("SSLWRITEFD") < 0) dienomem() ;
  if (ndelay_on(0) < 0 || ndelay_on(1) < 0) strerr_diefu1sys(EX_TEMP, "set the TLS pipes non-blocking") ;
  tls->on = 1 ;
}
