/* The delivery of yubin-local, as a function: yubin-local's main (from
 * its command line) and yubin-lspawn's forked child (already the
 * recipient, without an exec) call it.  See local/yubin-local.8. */
#ifndef YUBIN_LOCAL_DELIVER_H
#define YUBIN_LOCAL_DELIVER_H

#include <skalibs/stralloc.h>

#define LOCAL_USAGE "yubin-local [ -nN ] user homedir local dash ext domain sender defaultdelivery"

/* One delivery: qmail-local's arguments, by name. */
struct delivery
{
  char const *user ;             /* the recipient's user name */
  char const *home ;             /* its home directory, absolute */
  char const *local ;            /* the address's whole local part */
  char const *dash ;             /* "-" if there is an extension, else "" */
  char const *ext ;              /* the extension */
  char const *domain ;           /* the address's domain */
  char const *sender ;           /* the envelope sender */
  char const *defaultdelivery ;  /* e.g. "./Maildir/" */
} ;

/* Are the arguments usable (user not empty, home absolute)?  If not,
 * callers die with the usage, as qmail-local does. */
extern int local_delivery_ok (struct delivery const *d) ;

/* What defaultdelivery names: "maildir", "program", "mbox" or "forward"
 * (yubin-local -n). */
extern char const *local_delivery_kind (char const *dd) ;

/* Deliver the message on msgfd (seekable; read from its offset now to
 * EOF, and left at that offset) as d says.  Changes to the home directory
 * and sets the umask, as qmail-local.  Returns 0 when the message is
 * delivered (logged: "delivered to= file="), else 100 (permanent) or 111
 * (temporary) with the reason, one line ending with an RFC 3463 code such
 * as " (#4.2.1)", in why (NUL-terminated): the line that qmail-local
 * would print after "fatal: ".  Dies only when out of memory (111). */
extern int local_deliver (struct delivery const *d, int msgfd, stralloc *why) ;

#endif
