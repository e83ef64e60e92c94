/* yubin-local: deliver one message to one recipient's Maildir.
 *
 *   yubin-local [-nN] user homedir local dash ext domain sender defaultdelivery
 *
 * qmail-local's command line, so it can stand in for qmail-local under
 * qmail-lspawn.  The work is in common/localdeliver.c, which yubin-lspawn
 * also calls in its forked child to save an exec per delivery.
 * See yubin-local.8. */

#include "deliver.h"

char const *PROG = "local" ;

int main (int argc, char const *const *argv)
{
  return localdeliver_main(argc, argv) ;
}
