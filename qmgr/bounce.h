/* Bounces: the failure notice (qmail's QSBMF) of a message whose
 * recipients failed, built and fed to the queue through the qmail-queue
 * client (common/qq.h).  yubin-qmgr decides when to bounce, runs this in
 * a child and keeps the bookkeeping. */
#ifndef YUBIN_QMGR_BOUNCE_H
#define YUBIN_QMGR_BOUNCE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <skalibs/stralloc.h>

struct bounce
{
  char const *me ;          /* our host name (From: MAILER-DAEMON@me) */
  char const *id ;          /* queue ID of the failed message */
  char const *sender ;      /* its envelope sender: the bounce goes there */
  char const *failures ;    /* the paragraphs made by bounce_add_failure */
  size_t failureslen ;
  int msgfd ;               /* the failed message at its first byte, -1: no copy */
  uint64_t msgsize ;        /* its size */
  uint64_t maxbytes ;       /* copy at most this much of it */
  time_t when ;             /* Date: */
} ;

/* Does a message from this sender get no bounce (null sender, or qmail's
 * "#@[]")?  Its failures are dropped: a double bounce. */
extern int bounce_null_sender (char const *sender) ;

/* Add the paragraph of a failed recipient to failures:
 * "<rcpt>:\ntext\n\n".  Returns 1, 0 on ENOMEM. */
extern int bounce_add_failure (stralloc *failures, char const *rcpt, char const *text) ;

/* Queue the bounce with prog (e.g. yubin-queue), from the null sender to
 * b->sender.  Returns the qq_close code (QQ_OK: the bounce is durable;
 * QQ_NOMEM if the notice could not be built), or -1 with errno if prog
 * could not be run. */
extern int bounce_send (char const *prog, struct bounce const *b) ;

#endif
