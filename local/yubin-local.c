/* yubin-local: deliver one message to one local recipient, as its
 * .qmail files say.
 *
 *   yubin-local [-nN] [--] user homedir local dash ext domain sender defaultdelivery
 *
 * qmail-local's command line, so it can stand in for qmail-local under
 * qmail-lspawn, or be run by hand.  The message is on fd 0, which must be
 * seekable; it is read from fd 0's offset at start-up to EOF (yubin-lspawn
 * passes the queue file positioned after its header, qmail-lspawn passes
 * offset 0).  The work is local_run (local/deliver.c), which
 * yubin-lspawn also calls in its forked child to save an exec per
 * delivery; this main adds qmail-local's report on stdout ("did
 * F+W+P", "qp N").  See yubin-local.8. */

#include <skalibs/buffer.h>
#include <skalibs/sgetopt.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/types.h>

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

  /* qmail-local's report: on stdout, after what programs wrote there */
  struct local_report rep = LOCAL_REPORT_ZERO ;
  stralloc describe = STRALLOC_ZERO ;
  stralloc why = STRALLOC_ZERO ;
  int code = local_run(&d, 0, flagdoit ? 0 : &describe, &rep, &why) ;
  if (code) strerr_dief1x(code, why.s) ;
  {
    char fmt[ULONG_FMT] ;
    if (buffer_put(buffer_1, describe.s, describe.len) < 0
     || buffer_puts(buffer_1, "did ") < 0
     || buffer_put(buffer_1, fmt, ulong_fmt(fmt, rep.files)) < 0
     || buffer_puts(buffer_1, "+") < 0
     || buffer_put(buffer_1, fmt, ulong_fmt(fmt, rep.forwards)) < 0
     || buffer_puts(buffer_1, "+") < 0
     || buffer_put(buffer_1, fmt, ulong_fmt(fmt, rep.programs)) < 0
     || buffer_puts(buffer_1, "\n") < 0)
      strerr_diefu1sys(EX_TEMP, "write to stdout") ;
    if (rep.qp && (buffer_puts(buffer_1, "qp ") < 0
     || buffer_put(buffer_1, fmt, ulong_fmt(fmt, rep.qp)) < 0
     || buffer_puts(buffer_1, "\n") < 0))
      strerr_diefu1sys(EX_TEMP, "write to stdout") ;
    if (!buffer_flush(buffer_1)) strerr_diefu1sys(EX_TEMP, "write to stdout") ;
  }
  stralloc_free(&describe) ;
  stralloc_free(&why) ;
  return 0 ;
}
