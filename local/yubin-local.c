/* yubin-local: deliver one message to one recipient's Maildir.
 *
 *   yubin-local [-nN] [--] user homedir local dash ext domain sender defaultdelivery
 *
 * qmail-local's command line, so it can stand in for qmail-local under
 * qmail-lspawn, or be run by hand.  The message is on fd 0, which must be
 * seekable; it is read from fd 0's offset at start-up to EOF (yubin-lspawn
 * passes the queue file positioned after its header, qmail-lspawn passes
 * offset 0).  The work is local_deliver (local/deliver.c), which
 * yubin-lspawn also calls in its forked child to save an exec per
 * delivery.  See yubin-local.8. */

#include <skalibs/buffer.h>
#include <skalibs/sgetopt.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>

#include "exitcodes.h"
#include "local/deliver.h"

char const *PROG = "local" ;

int main (int argc, char const *const *argv)
{
  int flagdoit = 1 ;
  {
    subgetopt l = SUBGETOPT_ZERO ;
    for (;;)
    {
      int opt = subgetopt_r(argc, argv, "nN", &l) ;
      if (opt == -1) break ;
      switch (opt)
      {
        case 'n' : flagdoit = 0 ; break ;
        case 'N' : flagdoit = 1 ; break ;
        default : strerr_dieusage(EX_PERM, LOCAL_USAGE) ;
      }
    }
    argc -= l.ind ; argv += l.ind ;
  }
  if (argc != 8) strerr_dieusage(EX_PERM, LOCAL_USAGE) ;
  struct delivery d =
  {
    .user = argv[0], .home = argv[1], .local = argv[2], .dash = argv[3], .ext = argv[4],
    .domain = argv[5], .sender = argv[6], .defaultdelivery = argv[7]
  } ;
  if (!local_delivery_ok(&d)) strerr_dieusage(EX_PERM, LOCAL_USAGE) ;

  if (!flagdoit)
  {
    /* qmail-local -n: describe the delivery instead of doing it. */
    if (buffer_puts(buffer_1, local_delivery_kind(d.defaultdelivery)) < 0
     || buffer_puts(buffer_1, " ") < 0
     || buffer_puts(buffer_1, d.defaultdelivery) < 0
     || buffer_putflush(buffer_1, "\n", 1) < 0)
      strerr_diefusys(EX_TEMP, "write to stdout") ;
    return 0 ;
  }

  stralloc why = STRALLOC_ZERO ;
  int code = local_deliver(&d, 0, &why) ;
  if (code) strerr_dief1x(code, why.s) ;
  stralloc_free(&why) ;
  return 0 ;
}
