/* Bounces: the failure notice of a message whose recipients failed, an
 * RFC 3464 delivery status notification (multipart/report), for local and
 * remote failures alike, built here and fed to the queue through the
 * qmail-queue client (common/qq.h).  yubin-qmgr decides when to bounce,
 * runs bounce_send in a child and keeps the bookkeeping.
 *
 *   stralloc why = STRALLOC_ZERO ;
 *   bounce_add_failure(&why, "alice@example.test", "Sorry, no mailbox here by that name. (#5.1.1)") ;
 *   bounce_add_failure(&why, "bob@remote.test", "mx.remote.test[192.0.2.1] said: 550 5.1.1 no such user") ;
 *   bounce_add_expired(&why, "carol@slow.test", "mx.slow.test[192.0.2.2] said: 451 4.3.0 try later") ;
 *   struct bounce b = { .me = ..., .id = ..., .sender = ..., .failures = why.s,
 *                       .failureslen = why.len, .msgfd = ..., ... } ;
 *   int code = bounce_send(prog, &b) ;
 *
 * Who gets it: the envelope sender, from the null sender.  A message from
 * the null sender (a bounce) that fails gets a double bounce, from "#@[]"
 * to control/doublebounceto (default postmaster; an address without '@'
 * gets "@" and control/me; an empty first line: the double bounce is
 * dropped and logged).  A message from "#@[]" that fails is dropped
 * (bounce_wanted says 0).
 *
 * What it says (RFC 3464, RFC 3463 status codes), per failed recipient:
 *   Final-Recipient: rfc822; <address>
 *   Action: failed
 *   Status: the code in the failure text ("said: 550 5.1.1 ..." of an SMTP
 *           reply, or qmail's "(#5.1.1)"), else 5.0.0 (4.0.0 for an SMTP
 *           4xx reply) for a permanent failure, 4.4.7 for an expired one
 *   Remote-MTA: dns; <host>          when the text is "<host>[<ip>] said: ..."
 *                                    (or "<host> <ip> said:", "<host> said:")
 *   Diagnostic-Code: smtp; <reply>   the remote server's reply, or
 *                    x-yubin; <text> our own reason
 * and the original as message/rfc822 when it is at most maxbytes bytes,
 * else its header alone as text/rfc822-headers (at most maxbytes bytes of
 * it, cut at a line end; no third part when nothing fits).  LF line ends,
 * as everything in the queue. */
#ifndef YUBIN_QMGR_BOUNCE_H
#define YUBIN_QMGR_BOUNCE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <skalibs/stralloc.h>

struct bounce
{
  char const *me ;          /* our host name (From: MAILER-DAEMON@me, Reporting-MTA) */
  char const *id ;          /* queue ID of the failed message */
  char const *sender ;      /* its envelope sender: the bounce goes there */
  char const *failures ;    /* the records made by bounce_add_failure / bounce_add_expired */
  size_t failureslen ;
  int msgfd ;               /* the failed message at its first byte, -1: no copy */
  uint64_t msgsize ;        /* its size */
  uint64_t maxbytes ;       /* control/bouncemaxbytes: larger messages go as their header */
  time_t when ;             /* Date: */
  time_t arrival ;          /* its queue time (Arrival-Date:); 0: not said */
  char const *rcpt ;        /* where the notice goes; NULL: as above (bounce_recipient) */
} ;

/* Does a message from this sender get no bounce (null sender, or qmail's
 * "#@[]")? */
extern int bounce_null_sender (char const *sender) ;

/* Does a failed message from this sender get a notice at all?  Yes but
 * for "#@[]" (a double bounce that failed: dropped, as qmail does). */
extern int bounce_wanted (char const *sender) ;

/* Add the record of a recipient that failed permanently, with its
 * reason (one line; the last line of yubin-local or the text of
 * yubin-remote).  Returns 1, 0 on ENOMEM. */
extern int bounce_add_failure (stralloc *failures, char const *rcpt, char const *text) ;

/* Add the record of a recipient that failed temporarily until the queue
 * lifetime ran out, with its last error.  Returns 1, 0 on ENOMEM. */
extern int bounce_add_expired (stralloc *failures, char const *rcpt, char const *lasttext) ;

/* The address the notice for a message from sender goes to, into to
 * (NUL-terminated): the sender itself, or for the null sender
 * control/doublebounceto as above.  Returns 1 (to->len == 0: drop it),
 * -1 on error (errno). */
extern int bounce_recipient (stralloc *to, char const *sender, char const *me) ;

/* The envelope sender of the notice for a message from sender: "" for a
 * bounce, "#@[]" for a double bounce. */
extern char const *bounce_from (char const *sender) ;

/* Append the whole notice (header and body, LF line ends), addressed to
 * rcpt, to sa.  Reads the copy of the message from b->msgfd.  Returns 1,
 * 0 on ENOMEM. */
extern int bounce_make (stralloc *sa, struct bounce const *b, char const *rcpt) ;

/* Queue the notice with prog (e.g. yubin-queue).  Returns the qq_close
 * code (QQ_OK: the notice is durable, or it was a double bounce that
 * control/doublebounceto says to drop, logged "double-bounce ...
 * status=dropped"; QQ_NOMEM if it could not be built, QQ_CONFIG if
 * control/doublebounceto could not be read), or -1 with errno if prog
 * could not be run. */
extern int bounce_send (char const *prog, struct bounce const *b) ;

#endif
