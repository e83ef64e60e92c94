/* The client side of UCSPI-TLS (RFC 3207 over yubin-tlsd): see starttls.h. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/djbunix.h>
#include <skalibs/iopause.h>
#include <skalibs/strerr.h>
#include <skalibs/tai.h>
#include <skalibs/types.h>

#include "exitcodes.h"
#include "smtpd.h"
#include "starttls.h"
#include "ylog.h"

struct smtpd_tls tls = { .on = 0, .ctlfd = -1, .rfd = -1, .wfd = -1, .proto = STRALLOC_ZERO, .cipher = STRALLOC_ZERO } ;

static int scan_fd (char const *x, int *fd)
{
  unsigned int u ;
  if (!x || !*x || x[uint_scan(x, &u)] || u < 3 || u > 65535) return 0 ;
  *fd = (int)u ;
  return 1 ;
}

void starttls_init (void)
{
  char const *p = getenv("SSL_PROTOCOL") ;
  if (p)
  {
    /* implicit TLS: yubin-tlsd did the handshake before starting us */
    tls.on = 1 ;
    setstr(&tls.proto, *p ? p : "unknown") ;
    p = getenv("SSL_CIPHER") ;
    setstr(&tls.cipher, p && *p ? p : "unknown") ;
    return ;
  }
  int c, r, w ;
  if (!scan_fd(getenv("SSLCTLFD"), &c) || !scan_fd(getenv("SSLREADFD"), &r) || !scan_fd(getenv("SSLWRITEFD"), &w)
   || c == r || c == w || r == w) return ;
  if (coe(c) < 0 || coe(r) < 0 || coe(w) < 0) strerr_diefu1sys(EX_TEMP, "set close-on-exec on the TLS control fds") ;
  tls.ctlfd = c ; tls.rfd = r ; tls.wfd = w ;
}

int starttls_offered (void)
{
  return tls.ctlfd >= 0 ;
}

/* After 'y': the session parameters, "NAME=value\0"... "\0", until EOF
 * (the handshake failed: leave without a word) or the deadline.  The
 * control fd may be blocking: wait first, then read what is there. */
static void params (void)
{
  char buf[513] ;
  size_t n = 0 ;
  tain deadline ;
  tain_now_g() ;
  tain_addsec_g(&deadline, conf.timeout) ;
  while (!(n == 1 && !buf[0]) && !(n >= 2 && !buf[n-1] && !buf[n-2]))
  {
    if (n >= sizeof(buf) - 1)
    {
      ylog("error", "ip", conf.remoteip, "cmd", "STARTTLS", "reason", "bad-tls-parameters", (char *)0) ;
      _exit(EX_TEMP) ;
    }
    iopause_fd x = { .fd = tls.ctlfd, .events = IOPAUSE_READ, .revents = 0 } ;
    int p = iopause_g(&x, 1, &deadline) ;
    if (p < 0) { if (errno == EINTR) continue ; strerr_diefu1sys(EX_TEMP, "iopause") ; }
    if (!p)
    {
      ylog("timeout", "ip", conf.remoteip, "cmd", "STARTTLS", (char *)0) ;
      _exit(EX_TEMP) ;
    }
    ssize_t r = fd_read(tls.ctlfd, buf + n, sizeof(buf) - 1 - n) ;
    if (!r)
    {
      ylog("quit", "ip", conf.remoteip, "reason", "tls-handshake-failed", (char *)0) ;
      _exit(0) ;
    }
    if (r < 0)
    {
      if (errno == EINTR || errno == EAGAIN) continue ;
      ylog("quit", "ip", conf.remoteip, "reason", "tls-control-error", (char *)0) ;
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
    if (!strcmp(s, "SSL_PROTOCOL") && eq[1]) setstr(&tls.proto, eq + 1) ;
    else if (!strcmp(s, "SSL_CIPHER") && eq[1]) setstr(&tls.cipher, eq + 1) ;
    if (setenv(s, eq + 1, 1) < 0) die_nomem() ;
    *eq = '=' ;
  }
  if (!tls.proto.len) setstr(&tls.proto, "unknown") ;
  if (!tls.cipher.len) setstr(&tls.cipher, "unknown") ;
}

void starttls_switch (void)
{
  /* the socket is yubin-tlsd's from now on: give it back as it came */
  if (ndelay_off(0) < 0 || ndelay_off(1) < 0) strerr_diefu1sys(EX_TEMP, "set the connection blocking") ;
  ssize_t w ;
  do w = fd_write(tls.ctlfd, "y", 1) ; while (w < 0 && errno == EINTR) ;
  if (w != 1)
  {
    ylog("error", "ip", conf.remoteip, "cmd", "STARTTLS", "reason", "tls-control-write", (char *)0) ;
    _exit(EX_TEMP) ;
  }
  params() ;
  if (fd_move(0, tls.rfd) < 0 || fd_move(1, tls.wfd) < 0) strerr_diefu1sys(EX_TEMP, "move the TLS pipes to fds 0 and 1") ;
  fd_close(tls.ctlfd) ;
  tls.ctlfd = tls.rfd = tls.wfd = -1 ;
  if (unsetenv("SSLCTLFD") < 0 || unsetenv("SSLREADFD") < 0 || unsetenv("SSLWRITEFD") < 0) die_nomem() ;
  if (ndelay_on(0) < 0 || ndelay_on(1) < 0) strerr_diefu1sys(EX_TEMP, "set the TLS pipes non-blocking") ;
  tls.on = 1 ;
}
