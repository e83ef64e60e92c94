/* yubin-connlimit: at most N connections at once from one client address.
 *
 *   yubin-connlimit [ -m message ] prog...
 *
 * Runs under tcpserver (UCSPI: $TCPREMOTEIP), before anything that reads
 * from the client, and execs prog holding one of the
 * address's N slots for as long as prog and what it starts keep the slot's
 * fd open.  When all N are taken it writes message (CRLF added) to fd 1,
 * logs "refuse", and exits 0 without running prog.
 *
 * yubin's own daemons take their slot themselves (common/connlimit.h, which
 * says how the slots work); this program is for any other service. */

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/djbunix.h>
#include <skalibs/exec.h>
#include <skalibs/ip46.h>
#include <skalibs/sgetopt.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/types.h>

#include "connlimit.h"
#include "exitcodes.h"

#define USAGE "yubin-connlimit [ -m message ] prog..."

char const *PROG = "connlimit" ;

int main (int argc, char const *const *argv)
{
  char const *message = 0 ;
  subgetopt l = SUBGETOPT_ZERO ;
  for (;;)
  {
    int opt = subgetopt_r(argc, argv, "m:", &l) ;
    if (opt == -1) break ;
    if (opt != 'm') strerr_dieusage(EX_PERM, USAGE) ;
    message = l.arg ;
  }
  argc -= l.ind ; argv += l.ind ;
  if (!argc) strerr_dieusage(EX_PERM, USAGE) ;
  char const *ip = getenv("TCPREMOTEIP") ;
  if (!ip) strerr_dief(EX_PERM, "no TCPREMOTEIP: run me under tcpserver") ;
  unsigned long n ;
  /* not close-on-exec: the fd goes with prog and holds the slot */
  int r = connlimit_take(ip, 0, &n) ;
  if (r < 0)
  {
    if (errno == EINVAL) strerr_dief(EX_PERM, "bad TCPREMOTEIP or MAXCONNIP: ", ip) ;
    strerr_diefu1sys(EX_TEMP, "take a connection slot") ;
  }
  if (!r)
  {
    connlimit_log_refusal(ip, n) ;
    if (message)
    {
      stralloc m = STRALLOC_ZERO ;
      if (stralloc_cats(&m, message) && stralloc_catb(&m, "\r\n", 2))
        (void)allwrite(1, m.s, m.len) ;   /* the client may be gone: nothing to do */
      stralloc_free(&m) ;
    }
    return 0 ;
  }
  xexec(argv) ;
}
