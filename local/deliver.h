/* The delivery of yubin-local, as a function: yubin-local's main (from
 * its command line) and yubin-lspawn's forked child (already the
 * recipient, without an exec) call it.  It follows the recipient's
 * .qmail file as qmail-local does (dot-qmail(5)); see local/yubin-local.8. */
#ifndef YUBIN_LOCAL_DELIVER_H
#define YUBIN_LOCAL_DELIVER_H

#include <skalibs/stralloc.h>

#include "maildir.h"

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
  char const *defaultdelivery ;  /* e.g. "./Maildir/"; may hold several lines */
  struct maildir_opt *maildir ;  /* 0 (yubin-local): fresh file names, new/ synced
                                    at once; yubin-lspawn: the queue id and
                                    recipient that name the files, the check
                                    for an earlier copy, the batch's syncs
                                    (common/maildir.h); its line counts the
                                    Maildir lines, from 0 */
} ;

/* What was done, for qmail-local's report "did F+W+P" (files, forwards,
 * programs) and "qp N" (the queue program's pid, 0 if nothing was
 * forwarded).  The counts are those of the instructions met, as
 * qmail-local counts them. */
struct local_report
{
  unsigned long files ;
  unsigned long forwards ;
  unsigned long programs ;
  unsigned long qp ;
} ;
#define LOCAL_REPORT_ZERO { .files = 0, .forwards = 0, .programs = 0, .qp = 0 }

/* Are the arguments usable (user not empty, home absolute)?  If not,
 * callers die with the usage, as qmail-local does. */
extern int local_delivery_ok (struct delivery const *d) ;

/* Deliver the message on msgfd (seekable; read from its offset now to
 * EOF) as d and the recipient's .qmail files say.  Changes to the home
 * directory and sets the umask, as qmail-local.  Output of program
 * deliveries goes to fd 1.  If describe is not 0, nothing is delivered
 * (qmail-local -n): one line per instruction, e.g. "maildir ./Maildir/\n",
 * is appended to describe instead.  Returns 0 when every instruction
 * succeeded (logged on fd 2), else 100 (permanent) or 111 (temporary)
 * with the reason in why (one line, NUL-terminated, ending with an
 * RFC 3463 code such as " (#4.2.1)" unless it is a program's own words):
 * the line that qmail-local would print.  rep gets the counts (also on
 * failure).  Dies only when out of memory (111). */
extern int local_run (struct delivery const *d, int msgfd, stralloc *describe, struct local_report *rep, stralloc *why) ;

/* local_run delivering, without the report (yubin-lspawn's child). */
extern int local_deliver (struct delivery const *d, int msgfd, stralloc *why) ;

#endif
