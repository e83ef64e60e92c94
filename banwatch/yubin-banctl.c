/* yubin-banctl: talk to a running yubin-banwatch over its control socket.
 * See yubin-banctl.8. */

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/buffer.h>
#include <skalibs/djbunix.h>
#include <skalibs/sgetopt.h>
#include <skalibs/socket.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/types.h>
#include <skalibs/tai.h>
#include <skalibs/unix-timed.h>

#include "exitcodes.h"
#include "root.h"

#define USAGE "yubin-banctl [ -c confdir | -s socket ] [ -t seconds ] list | jails | stats | ban ADDRESS[/LEN] [JAIL] [DURATION] | unban ADDRESS[/LEN] | rebuild"

int main (int argc, char const *const *argv)
{
  char const *sock = 0, *confdir = 0 ;
  unsigned int secs = 10 ;
  stralloc sa = STRALLOC_ZERO ;
  PROG = "yubin-banctl" ;
  {
    subgetopt l = SUBGETOPT_ZERO ;
    for (;;)
    {
      int opt = subgetopt_r(argc, argv, "c:s:t:", &l) ;
      if (opt == -1) break ;
      switch (opt)
      {
        case 'c' : confdir = l.arg ; break ;
        case 's' : sock = l.arg ; break ;
        case 't' : if (!uint0_scan(l.arg, &secs) || !secs) strerr_dieusage(EX_PERM, USAGE) ; break ;
        default : strerr_dieusage(EX_PERM, USAGE) ;
      }
    }
    argc -= l.ind ; argv += l.ind ;
  }
  if (!argc) strerr_dieusage(EX_PERM, USAGE) ;
  {
    char const *c = argv[0] ;
    unsigned int min = 1, max = 1 ;
    if (!strcmp(c, "ban")) { min = 2 ; max = 4 ; }
    else if (!strcmp(c, "unban")) min = max = 2 ;
    else if (strcmp(c, "list") && strcmp(c, "jails") && strcmp(c, "stats") && strcmp(c, "rebuild"))
      strerr_dieusage(EX_PERM, USAGE) ;
    if ((unsigned int)argc < min || (unsigned int)argc > max) strerr_dieusage(EX_PERM, USAGE) ;
  }
  if (!sock)
  {
    if (confdir)
    {
      if (!stralloc_cats(&sa, confdir) || !stralloc_cats(&sa, "/control") || !stralloc_0(&sa))
        strerr_diefu1sys(EX_TEMP, "build the socket path") ;
    }
    else if (!yubin_path(&sa, "banwatch/control")) strerr_diefu1sys(EX_TEMP, "build the socket path") ;
    sock = sa.s ;
  }

  stralloc req = STRALLOC_ZERO ;
  for (int i = 0 ; i < argc ; i++)
  {
    if (strpbrk(argv[i], " \t\r\n")) strerr_dief(EX_PERM, "blank in argument: ", argv[i]) ;
    if ((i && !stralloc_catb(&req, " ", 1)) || !stralloc_cats(&req, argv[i])) strerr_diefu1sys(EX_TEMP, "build the request") ;
  }
  if (!stralloc_catb(&req, "\n", 1)) strerr_diefu1sys(EX_TEMP, "build the request") ;

  tain deadline ;
  tain_now_set_stopwatch_g() ;
  tain_addsec_g(&deadline, secs) ;
  int fd = ipc_stream_nbcoe() ;
  if (fd < 0) strerr_diefu1sys(EX_TEMP, "create a socket") ;
  if (!ipc_timed_connect_g(fd, sock, &deadline)) strerr_diefu2sys(EX_TEMP, "connect to ", sock) ;
  {
    /* the socket stays non-blocking: skalibs' timed buffer calls wait
     * for it, up to the deadline */
    char wbuf[512] ;
    buffer b = BUFFER_INIT(&buffer_write, fd, wbuf, sizeof wbuf) ;
    if (buffer_timed_put_g(&b, req.s, req.len, &deadline) < req.len || !buffer_timed_flush_g(&b, &deadline))
      strerr_diefu2sys(EX_TEMP, "write to ", sock) ;
  }

  stralloc ans = STRALLOC_ZERO ;
  {
    char rbuf[4096] ;
    buffer b = BUFFER_INIT(&buffer_read, fd, rbuf, sizeof rbuf) ;
    for (;;)
    {
      ssize_t r = buffer_timed_fill_g(&b, &deadline) ;
      if (r < 0)
      {
        if (errno == ETIMEDOUT) strerr_dief(EX_TEMP, "timed out waiting for ", sock) ;
        strerr_diefu2sys(EX_TEMP, "read from ", sock) ;
      }
      if (!r) break ;
      size_t n = buffer_len(&b) ;
      if (!stralloc_readyplus(&ans, n)) strerr_diefu1sys(EX_TEMP, "read the answer") ;
      buffer_getnofill(&b, ans.s + ans.len, n) ;
      ans.len += n ;
    }
  }
  fd_close(fd) ;
  char *nl = ans.len ? memchr(ans.s, '\n', ans.len) : 0 ;
  if (!nl || (ans.s[0] != '+' && ans.s[0] != '-')) strerr_dief(EX_TEMP, "bad answer from ", sock) ;
  *nl = 0 ;
  if (ans.s[0] == '-')
  {
    strerr_warnw(ans.s + 1) ;
    stralloc_free(&ans) ; stralloc_free(&req) ; stralloc_free(&sa) ;
    return 1 ;
  }
  size_t body = nl + 1 - ans.s ;
  /* list, jails, stats: the lines; ban, unban, rebuild: what was done */
  if (!strcmp(argv[0], "list") || !strcmp(argv[0], "jails") || !strcmp(argv[0], "stats"))
  {
    if (body < ans.len && buffer_putflush(buffer_1, ans.s + body, ans.len - body) < 0)
      strerr_diefu1sys(EX_TEMP, "write to stdout") ;
  }
  else
  {
    if (buffer_puts(buffer_1, ans.s + 1) < 0 || buffer_putflush(buffer_1, "\n", 1) < 0)
      strerr_diefu1sys(EX_TEMP, "write to stdout") ;
  }
  stralloc_free(&ans) ; stralloc_free(&req) ; stralloc_free(&sa) ;
  return 0 ;
}
