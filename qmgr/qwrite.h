/* The queue writer's core: one message from its bytes and its envelope to
 * a durable file in queue/new/, written the same way by yubin-queue (one
 * message per process) and yubin-queued (many, in threads).  The file
 * format and what a crash at each step leaves are in qmgr/README.
 *
 *   struct qwrite w = QWRITE_ZERO ;
 *   qwrite_open(&w, qfd, &st)              tmp/ID, O_EXCL         (1)
 *   [qwrite_received(&w, pid, uid)]        a local caller's line
 *   qwrite_copy(&w, msgfd, deadline)       the message, to EOF    (2)
 *   qwrite_envelope(&w, envfd, deadline)   up to the final '\0'   (3)
 *   qwrite_commit(&w)                      (4) env/ID if needed, (5) the
 *                                          header block, (6) fsync,
 *                                          (7) rename into new/
 *   -- the caller fsyncs new/ (8), then answers 0 --
 *   qwrite_free(&w)
 *
 * yubin-queued writes into a file of its pool instead (queue.h): with
 * qwrite_open_pooled in place of qwrite_open, qwrite_commit writes the
 * checksum record, fdatasyncs the file and renames new/.p<ID> to new/<ID>;
 * the message is then durable (w->durable) and step 8 is not needed,
 * except for an envelope too big for the header block (env/ID): then
 * w->durable is 0 and the caller fsyncs new/ as for tmp/.
 *
 * Each step returns 0 (QQ_OK) or a qmail-queue exit code (common/qq.h);
 * on failure w->what says what could not be done and w->sys whether errno
 * (saved in w->err) explains it.  After a failure, qwrite_cleanup removes
 * what was made (tmp/ID, env/ID); it only calls unlinkat on fixed buffers,
 * so a signal handler may call it.  Once qwrite_commit has renamed the
 * file, nothing is removed any more: the message is qmgr's.
 *
 * No step writes to stderr or exits: yubin-queue dies with strerr,
 * yubin-queued answers its client and goes on.  Thread-safe as long as
 * each thread has its own struct qwrite. */
#ifndef YUBIN_QWRITE_H
#define YUBIN_QWRITE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <skalibs/stralloc.h>

#include "queue.h"

struct qwrite
{
  int qfd ;                       /* the queue directory */
  int fd ;                        /* tmp/ID, -1 when closed */
  char id[QUEUE_IDMAX] ;
  char tmpfn[8 + QUEUE_IDMAX] ;   /* "tmp/ID" or "new/.pID", "" when nothing to remove */
  char envfn[4 + QUEUE_IDMAX] ;   /* "env/ID", likewise */
  struct queue_head h ;
  uint64_t max ;                  /* most message bytes accepted, 0: any */
  stralloc env ;                  /* the envelope, state bytes 'T' */
  size_t recstart ;               /* offset in env of the current record */
  size_t records ;
  size_t nrcpts ;                 /* after qwrite_envelope */
  char const *what ;              /* what failed */
  int sys ;                       /* 1: err is the reason */
  int err ;                       /* errno of the failure */
  int pooled ;                    /* writing into a pool file */
  int durable ;                   /* qwrite_commit: no fsync of new/ needed */
  uint64_t sum ;                  /* pooled: queue_sum of the message so far */
} ;
#define QWRITE_ZERO { .qfd = -1, .fd = -1, .id = "", .tmpfn = "", .envfn = "", .max = 0, \
  .env = STRALLOC_ZERO, .recstart = 0, .records = 0, .nrcpts = 0, .what = "", .sys = 0, .err = 0, \
  .pooled = 0, .durable = 0, .sum = QUEUE_SUM_INIT }

/* Create tmp/ID under qfd (st: its stat, for the owner: a writer running
 * as root gives the file to the queue user, or qmgr could not record
 * deliveries in it); h.uid is uid, h.birth now. */
extern int qwrite_open (struct qwrite *w, int qfd, struct stat const *st, uint64_t uid) ;

/* The same into the pool file fd, named new/<name> (QUEUE_POOLPREFIX and
 * an ID), empty and durable in new/; id: the message's ID, unique (the
 * caller's own sequence).  fd is w's from now on (closed by qwrite_free). */
extern int qwrite_open_pooled (struct qwrite *w, int qfd, int fd, char const *name, char const *id, uint64_t uid) ;

/* Is a caller whose gid is gid one of the network daemons (the group of
 * the instance's libexec/, root-owned and closed to others)?  Their smtpd
 * wrote its own Received: line and applied its limits; anyone else is a
 * local caller: qwrite_received and control/databytes. */
extern int qwrite_trusted_gid (gid_t gid) ;

/* A local caller: qmail-queue's line "Received: (yubin-queue PID invoked
 * by uid UID);" first in the message, and control/databytes as w->max
 * (counted with that line). */
extern int qwrite_received (struct qwrite *w, pid_t pid, uid_t uid) ;

/* Copy msgfd to EOF into the file.  deadline: milliseconds of
 * CLOCK_MONOTONIC after which a read gives up (QQ_TIMEOUT), 0: wait for
 * ever (yubin-queue has its alarm). */
extern int qwrite_copy (struct qwrite *w, int msgfd, uint64_t deadline) ;

/* Read the envelope from envfd up to its final '\0' (nothing read after
 * it is used).  Malformed: QQ_ENVELOPE; EOF or error before the end:
 * QQ_READ, as qmail-queue. */
extern int qwrite_envelope (struct qwrite *w, int envfd, uint64_t deadline) ;

/* Steps 4 to 7.  Returns 0 once new/ID exists (durable only if
 * w->durable). */
extern int qwrite_commit (struct qwrite *w) ;

extern void qwrite_cleanup (struct qwrite *w) ;
/* Closes the file, removes what a failed write left, frees memory. */
extern void qwrite_free (struct qwrite *w) ;

/* Milliseconds of CLOCK_MONOTONIC, for the deadlines. */
extern uint64_t qwrite_now (void) ;

#endif
