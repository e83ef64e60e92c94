/* The spawn protocol: the records between yubin-qmgr and a spawner
 * (yubin-lspawn today, a remote spawner next), both halves in one place.
 *
 * Over two pipes; every field ends with '\0'.
 *
 *   request  jobid \0 msgid \0 msgoff \0 sender \0 rcpt \0          (one)
 *            jobid \0 msgid \0 msgoff \0 sender \0 rcpt \0 ... \0    (list)
 *   result   jobid \0 code \0 text \0
 *
 * jobid: the manager's name for the job (qmgr: its slot number in
 * decimal), 1 to SPAWN_JOBIDMAX bytes, echoed in the results.  msgid: the
 * queue ID (the spawner opens queue/cur/<msgid>), msgoff: where the message
 * starts in that file (decimal).  A channel carries requests of one kind,
 * fixed at both ends: with exactly one recipient (yubin-lspawn's format),
 * or with a list of non-empty recipients ended by an empty field (for a
 * spawner that hands several recipients of one message to one process;
 * it answers with one result per recipient, in the order of the request).
 * code: 0 done, 100 permanent failure, 111 temporary failure (decimal).
 * text: the reason, one line, at most SPAWN_TEXTMAX bytes.  Results come
 * in completion order.
 *
 * A decoder is fed bytes as they arrive (records may be split anywhere)
 * and hands out complete records.  A malformed record, or one longer than
 * the decoder's limit, is an error: the peer is broken, the caller dies. */
#ifndef YUBIN_SPAWNPROTO_H
#define YUBIN_SPAWNPROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>

#define SPAWN_JOBIDMAX 10      /* bytes of a job id */
#define SPAWN_TEXTMAX 1000     /* bytes of a result text, longer is cut */
#define SPAWN_RECORDMAX 4096   /* default decoder limit: one recipient, or a result */

#define SPAWN_ONE 0            /* a request has exactly one recipient */
#define SPAWN_LIST 1           /* a request has a list of recipients */
#define SPAWN_BATCH 2          /* the local channel: a list of messages (below) */

struct spawn_request
{
  char const *jobid ;
  char const *msgid ;
  uint64_t msgoff ;
  char const *sender ;
  char const *rcpts ;     /* nrcpts NUL-terminated addresses, back to back */
  size_t nrcpts ;
} ;

struct spawn_result
{
  char const *jobid ;
  unsigned int code ;
  char const *text ;
} ;

/* The remote channel (yubin-rspawn) carries SPAWN_LIST requests over a
 * unix socket, each with the message file's fd attached (SCM_RIGHTS) to
 * the first byte of its record: the spawner never opens the queue.  The
 * fds arrive in the order of the records, so the receiver keeps them in
 * a FIFO and gives the oldest to each request decoded.
 *
 * A job that could not reach its destination at all (no route, no
 * server answered, the TLS policy refused every target) is answered
 * with code 111 and a text starting with SPAWN_DESTFAIL for every
 * recipient: qmgr then backs off the whole destination. */
#define SPAWN_DESTFAIL "destination: "
#define SPAWN_LISTMAX (1 << 20)  /* decoder limit for a list request */

/* The local channel (yubin-lspawn) carries batches: several messages for
 * one recipient address, delivered in a row by one child that is already
 * the user, with one fsync of the Maildir's new/ for the batch.
 *
 *   request  jobid \0 rcpt \0 ( msgid \0 msgoff \0 sender \0 rcptno \0 check \0 )... \0
 *
 * 1 to SPAWN_BATCHMAX deliveries, ended by an empty field.  rcptno: the
 * recipient's number in the message's envelope (from 0), which names the
 * Maildir file (common/maildir.h: the same name at every attempt);
 * check: "1" when qmgr does not know how the last attempt ended (it was
 * in flight at a crash, or failed temporarily): look for an earlier copy
 * before writing one; else "0".  One result per delivery, in the order
 * of the request, all with the request's jobid. */
struct spawn_decoder ;
#define SPAWN_BATCHMAX 16
#define SPAWN_BATCHRECORDMAX (SPAWN_BATCHMAX * 2200 + 1100)   /* decoder limit */

struct spawn_delivery
{
  char const *msgid ;
  uint64_t msgoff ;
  char const *sender ;
  unsigned long rcptno ;
  int check ;
} ;

struct spawn_batch
{
  char const *jobid ;
  char const *rcpt ;
  size_t n ;
  struct spawn_delivery d[SPAWN_BATCHMAX] ;
} ;

/* Append a batch request to sa.  Returns 1, or 0 with errno EINVAL (bad
 * jobid, n = 0 or more than SPAWN_BATCHMAX, an empty msgid) or ENOMEM;
 * sa is unchanged on failure. */
extern int spawn_batch_put (stralloc *sa, char const *jobid, char const *rcpt, struct spawn_delivery const *d, size_t n) ;

/* The next complete batch request from a decoder of kind SPAWN_BATCH
 * (limit SPAWN_BATCHRECORDMAX): as spawn_request_next. */
extern int spawn_batch_next (struct spawn_decoder *dec, struct spawn_batch *b) ;

/* Append a request record to sa.  kind: SPAWN_ONE (r->nrcpts must be 1)
 * or SPAWN_LIST (r->nrcpts >= 1, no empty address).  Returns 1, or 0 with
 * errno: EINVAL (a record that the other end could not decode: bad jobid,
 * wrong count, empty address in a list), ENOMEM.  sa is unchanged on
 * failure. */
extern int spawn_request_put (stralloc *sa, struct spawn_request const *r, int kind) ;

/* Append a result record to sa: text[0..textlen) with '\0' and '\n' made
 * spaces, cut at SPAWN_TEXTMAX bytes.  Returns 1, or 0 with errno EINVAL
 * (bad jobid) or ENOMEM; sa is unchanged on failure. */
extern int spawn_result_put (stralloc *sa, char const *jobid, unsigned int code, char const *text, size_t textlen) ;

struct spawn_decoder
{
  stralloc buf ;          /* bytes received, from the first unread record */
  size_t pos ;            /* bytes of buf already handed out */
  size_t max ;            /* longest record accepted */
  int kind ;              /* SPAWN_ONE or SPAWN_LIST (requests only) */
} ;
#define SPAWN_DECODER(m, k) { .buf = STRALLOC_ZERO, .pos = 0, .max = (m), .kind = (k) }
#define SPAWN_DECODER_ZERO SPAWN_DECODER(SPAWN_RECORDMAX, SPAWN_ONE)

/* Give the decoder len more bytes.  Records handed out before are no
 * longer valid.  Returns 1, 0 on ENOMEM. */
extern int spawn_feed (struct spawn_decoder *d, char const *s, size_t len) ;

/* Read once from fd (non-blocking or not) into the decoder, up to n
 * bytes.  Returns what read() returned (0: end of file; -1: errno).
 * Records handed out before are no longer valid.  -1 with ENOMEM if the
 * buffer could not grow. */
extern ssize_t spawn_fill (struct spawn_decoder *d, int fd, size_t n) ;

/* sendmsg() of s[0..len) on the unix socket sock, with passfd attached
 * (none if passfd < 0).  Returns what sendmsg returned (bytes written,
 * or -1 and errno; EAGAIN on a non-blocking socket: nothing was sent,
 * the fd neither). */
extern ssize_t spawn_sendfd (int sock, char const *s, size_t len, int passfd) ;

/* As spawn_fill, from the unix socket sock: the fds that come with the
 * bytes are appended to fds (a genalloc of int), close-on-exec.  -1 with
 * EPROTO if control data was cut (more fds than expected: the peer is
 * broken), ENOMEM if fds could not grow (the fds received are closed). */
extern ssize_t spawn_fill_fds (struct spawn_decoder *d, int sock, size_t n, genalloc *fds) ;

/* The next complete record.  Returns 1 and fills *r (pointers into the
 * decoder, valid until the next spawn_feed or spawn_fill), 0 when no
 * complete record is buffered yet, -1 on a malformed record (errno
 * EPROTO) or one longer than d->max (errno EMSGSIZE); after -1 the
 * decoder is of no further use. */
extern int spawn_request_next (struct spawn_decoder *d, struct spawn_request *r) ;
extern int spawn_result_next (struct spawn_decoder *d, struct spawn_result *r) ;

/* Bytes buffered that are not part of a record handed out yet. */
extern size_t spawn_pending (struct spawn_decoder const *d) ;
extern void spawn_decoder_free (struct spawn_decoder *d) ;

#endif
