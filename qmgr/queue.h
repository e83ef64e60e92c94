/* The queue: layout, file format and names shared by yubin-queue,
 * yubin-qmgr and yubin-lspawn.  The full description, with every fsync and
 * what a crash at each instant leaves, is qmgr/README.
 *
 * <root>/queue/            owned by the queue user, mode 0700
 *   tmp/ID                 being written by yubin-queue
 *   new/ID                 durable, not yet seen by yubin-qmgr
 *   cur/ID                 seen by yubin-qmgr (renamed from new/)
 *   env/ID                 envelope of ID when it does not fit in the
 *                          header block of the message file (rare)
 *   lock/trigger           fifo: one byte wakes yubin-qmgr
 *
 * A message file:
 *   [0, QUEUE_MSGOFF)      header block: the header line
 *                            "yubinq1 msg=4096 size=N time=T uid=U env=here\n"
 *                          (env=file: the envelope is in env/ID instead),
 *                          then the envelope, then zero bytes
 *   [QUEUE_NEXTOFF, QUEUE_MSGOFF)  the last 32 bytes of the header block:
 *                          the retry record, zero bytes (none) or
 *                          "next=T\n" + zero bytes, T the second (since
 *                          the epoch) yubin-qmgr means to try the pending
 *                          recipients again.  Written (not synced) by
 *                          yubin-qmgr when it defers a message; an
 *                          envelope never reaches it in a file written
 *                          since the record exists; in an older one whose
 *                          envelope does, there is no record.
 *   [QUEUE_MSGOFF, EOF)    the message, LF line endings
 * The envelope: 'F' sender '\0', then per recipient a state byte
 * ('T' to do, 'D' done, 'B' failed, to bounce) + address + '\0', then '\0'.
 * The state bytes are rewritten in place by yubin-qmgr. */
#ifndef YUBIN_QUEUE_H
#define YUBIN_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <skalibs/stralloc.h>

#define QUEUE_MSGOFF 4096          /* R: where the message starts */
#define QUEUE_IDMAX 48             /* room for an ID and its NUL */
#define QUEUE_ADDRMAX 1000         /* longest address in an envelope */
#define QUEUE_ENVMAX (16 << 20)    /* largest envelope accepted */
#define QUEUE_HEADMAX 128          /* longest header line */
#define QUEUE_NEXTLEN 32           /* the retry record */
#define QUEUE_NEXTOFF (QUEUE_MSGOFF - QUEUE_NEXTLEN)   /* and where it is */

#define QUEUE_TODO 'T'
#define QUEUE_DONE 'D'
#define QUEUE_FAILED 'B'

struct queue_head
{
  uint64_t msgoff ;     /* offset of the message, QUEUE_MSGOFF */
  uint64_t size ;       /* message bytes */
  uint64_t birth ;      /* seconds since the epoch, when queued */
  uint64_t uid ;        /* real uid of the process that queued it */
  int envfile ;         /* 1: envelope in env/ID */
  int nextok ;          /* queue_load: the file has room for the retry record */
  uint64_t next ;       /* queue_load: the retry record's time, 0 if none */
} ;

/* A new queue ID "<sec>.<nsec, 9 digits>.<pid>" in id (QUEUE_IDMAX bytes,
 * NUL-terminated).  Unique as long as the clock does not step back to the
 * same nanosecond for a reused pid; creators also use O_EXCL.  Returns the
 * length. */
extern size_t queue_id_make (char *id, uint64_t *sec) ;

/* The same from a given time: "<sec>.<nsec, 9 digits>.<pid>".  Returns the
 * length.  (yubin-queued makes its IDs strictly increasing with it.) */
extern size_t queue_id_fmt (char *id, uint64_t sec, uint64_t nsec) ;

/* Is s a well-formed ID (digits and dots, 1..QUEUE_IDMAX-1 bytes, not
 * starting with a dot)?  Used to refuse names that could leave a dir. */
extern int queue_id_valid (char const *s) ;

/* Append the header line for h to sa.  Returns 1, 0 on ENOMEM. */
extern int queue_head_fmt (stralloc *sa, struct queue_head const *h) ;

/* Parse the header line at s[0..len).  Returns the length of the line
 * including its '\n', or 0 if it is not a valid header line. */
extern size_t queue_head_scan (char const *s, size_t len, struct queue_head *h) ;

/* The retry record for next (seconds since the epoch; 0: no record) in
 * buf, exactly QUEUE_NEXTLEN bytes to pwrite at QUEUE_NEXTOFF. */
extern void queue_next_fmt (char *buf, uint64_t next) ;

/* The time in the retry record at s (QUEUE_NEXTLEN bytes), 0 if there is
 * none or it is malformed (a torn write: no record). */
extern uint64_t queue_next_scan (char const *s) ;

/* The pool of yubin-queued (qmgr/README, "The pool"): empty files
 * new/.p<ID>, created ahead of time and made durable by one fsync of new/
 * for many, so that a message written into one is durable after the
 * file's own fdatasync.  Until yubin-queued renames it to new/<ID>, the
 * record area of such a file holds "sum=<16 hex digits>\n" and zero
 * bytes: the checksum that tells, after a crash, a complete file from a
 * torn one.  (To qmgr it is no retry record; its first deferral
 * overwrites it.) */
#define QUEUE_POOLPREFIX ".p"
/* A message yubin-qmgr has finished, given back to the pool (new/.r<ID>)
 * instead of unlinked while yubin-queued runs with a pool (it holds a
 * lock on lock/pool): the next message reuses the inode.  Never a
 * message. */
#define QUEUE_RECYCLEPREFIX ".r"
#define QUEUE_POOLMARK "lock/pool"
#define QUEUE_SUM_INIT 0xcbf29ce484222325ULL   /* 64-bit FNV-1a */

/* Fold s[0..len) into the checksum h: the message bytes first, then the
 * header block up to the record ([0, QUEUE_NEXTOFF)), then the pool
 * file's name (so that what a recycled file held before never passes for
 * the message of its new name). */
extern uint64_t queue_sum (uint64_t h, char const *s, size_t len) ;

/* The record "sum=..." for sum in buf (QUEUE_NEXTLEN bytes). */
extern void queue_sum_fmt (char *buf, uint64_t sum) ;

/* Is the file fd, named name in new/ (a pool file), a complete message:
 * a valid header line with env=here, the size it says, a well-formed
 * envelope, and a "sum=" record that matches the bytes?  Returns 1 yes,
 * 0 no (torn, unfinished, or never used), -1 a read error (errno). */
extern int queue_pool_complete (int fd, char const *name) ;

/* renameat that never replaces an existing name, where the file system
 * knows how (RENAME_NOREPLACE; plain renameat where it does not). */
extern int queue_rename_noreplace (int fromdir, char const *from, int todir, char const *to) ;

/* May this address go in an envelope?  At most QUEUE_ADDRMAX bytes and no
 * control characters (they could forge headers in a bounce or lines in a
 * log). */
extern int queue_addr_ok (char const *s, size_t len) ;

/* Check an envelope at s[0..len): 'F' record, recipient records whose
 * state byte is 'T' (or, if anystate, 'T', 'D' or 'B'), final '\0'.
 * Returns the envelope's length (including the final '\0') and sets
 * *nrcpts, or 0 if it is malformed or incomplete. */
extern size_t queue_env_scan (char const *s, size_t len, int anystate, size_t *nrcpts) ;

/* Read a queued message's header and envelope: dirfd is the directory
 * holding the message file (e.g. cur/), envdirfd the env/ directory.
 * env gets the envelope bytes; *envbase the offset, in the file that holds
 * the envelope (the message file, or env/ID if h->envfile), of env[0];
 * h->nextok and h->next the retry record (always in the message file).
 * Checks that the file size matches the header.
 * Returns 1 ok, 0 malformed (errno EPROTO), -1 system error (errno). */
extern int queue_load (int dirfd, int envdirfd, char const *id, struct queue_head *h,
                       stralloc *env, uint64_t *envbase) ;

/* 1 if a yubin-queued with a pool runs: someone holds the lock on
 * lock/pool (relative to qdirfd, the queue directory).  A pool killed
 * with SIGKILL leaves the file but not the lock. */
extern int queue_pool_taking (int qdirfd) ;

/* Poke yubin-qmgr: write one byte to lock/trigger, relative to dirfd (the
 * queue directory), without blocking.  Errors (ENXIO: nobody reading) are
 * ignored on purpose: qmgr also rescans on a timer.  The caller ignores
 * SIGPIPE: a qmgr that dies between our open and our write would kill us. */
extern void queue_trigger (int qdirfd) ;

#endif
