/* The I/O of a pre-login dialogue: see prelogin.h. */

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/iopause.h>
#include <skalibs/tai.h>

#include "prelogin.h"

static tain deadline ;

void prelogin_deadline (unsigned int secs)
{
  tain_now_g() ;
  tain_addsec_g(&deadline, secs) ;
}

void prelogin_sayb (char const *s, size_t len)
{
  size_t done = 0 ;
  while (done < len)
  {
    ssize_t w = fd_write(1, s + done, len - done) ;
    if (w > 0) { done += w ; continue ; }
    if (w < 0 && errno == EINTR) continue ;
    if (w < 0 && errno == EAGAIN)
    {
      iopause_fd x = { .fd = 1, .events = IOPAUSE_WRITE, .revents = 0 } ;
      int r = iopause_g(&x, 1, &deadline) ;
      if (r > 0 || (r < 0 && errno == EINTR)) continue ;
    }
    /* the client is gone or stuck: nothing to do for it */
    _exit(0) ;
  }
}

void prelogin_say (char const *s)
{
  prelogin_sayb(s, strlen(s)) ;
}

int prelogin_getbyte (char *c)
{
  for (;;)
  {
    ssize_t r = fd_read(0, c, 1) ;
    if (r == 1) return 1 ;
    if (!r) return 0 ;
    if (errno == EINTR) continue ;
    if (errno != EAGAIN) return 0 ;
    iopause_fd x = { .fd = 0, .events = IOPAUSE_READ, .revents = 0 } ;
    int p = iopause_g(&x, 1, &deadline) ;
    if (!p) return -1 ;
    if (p < 0 && errno != EINTR) return 0 ;
  }
}

enum prelogin_line prelogin_getline (char *buf, size_t max, size_t *len)
{
  size_t n = 0 ;
  int nul = 0, longline = 0 ;
  for (;;)
  {
    char c ;
    int r = prelogin_getbyte(&c) ;
    if (r < 0) return PRELOGIN_TIMEOUT ;
    if (!r) return PRELOGIN_EOF ;
    if (c == '\n') break ;
    if (!c) nul = 1 ;
    if (n < max) buf[n++] = c ;
    else longline = 1 ;
  }
  if (n && buf[n-1] == '\r') n-- ;
  buf[n] = 0 ;
  *len = n ;
  if (longline) return PRELOGIN_LONG ;
  return nul ? PRELOGIN_NUL : PRELOGIN_OK ;
}

void prelogin_end (void)
{
  char buf[4096] ;
  size_t total = 0 ;
  if (shutdown(1, SHUT_WR) < 0) errno = 0 ;   /* not a socket: nothing to linger for */
  prelogin_deadline(2) ;
  while (total < 1048576)
  {
    ssize_t r = fd_read(0, buf, sizeof(buf)) ;
    if (r > 0) { total += r ; continue ; }
    if (!r || (errno != EAGAIN && errno != EINTR)) break ;
    iopause_fd x = { .fd = 0, .events = IOPAUSE_READ, .revents = 0 } ;
    if (!iopause_g(&x, 1, &deadline)) break ;
  }
  _exit(0) ;
}
