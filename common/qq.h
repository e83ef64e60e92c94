/* The qmail-queue client (qmail's qmail.c): run the queue program, give it
 * the message on its fd 0 and the envelope on its fd 1, read its verdict
 * from its exit code.  Every injector uses it: yubin-smtpd, qmgr's
 * bounces, yubin-inject and .qmail forwards.
 *
 * Unless $QMAILQUEUE names a program, qq_open first tries the queue
 * daemon, yubin-queued, on <root>/queued/sock: it passes the read end of
 * the message pipe over the socket (SCM_RIGHTS), writes the envelope on
 * the socket itself, and reads the verdict as one byte, the same exit
 * codes.  No process is started.  When the socket is missing or nobody
 * listens (the service is down), it runs prog as before.
 *
 *   struct qq q = QQ_ZERO ;
 *   if (qq_open(&q, prog) < 0) ...          errno set, nothing started
 *   qq_put(&q, s, len) ... ;                 the message, LF line ends
 *   qq_from(&q, "sender@example.com") ;      ends the message
 *   qq_to(&q, "rcpt@example.com") ; ...
 *   int code = qq_close(&q) ;                0: queued
 *   char const *why = qq_status(code) ;      "Z4.3.0 qq ..." / "D5.3.0 ..."
 *
 * Write errors are remembered, not reported one by one: qq_close turns
 * them into QQ_READ when the queue program still said 0. */
#ifndef YUBIN_QQ_H
#define YUBIN_QQ_H

#include <sys/types.h>
#include <skalibs/stralloc.h>

/* qmail-queue's exit codes (yubin-queue, and QMAILQUEUE replacements):
 * 11-40 permanent, the rest temporary (qmail-queue.8). */
#define QQ_OK 0
#define QQ_TOOLONG 11      /* address too long */
#define QQ_REFUSED 31      /* mail server permanently refuses to send */
#define QQ_NOMEM 51        /* out of memory */
#define QQ_TIMEOUT 52      /* timeout */
#define QQ_WRITE 53        /* write error, e.g. disk full */
#define QQ_READ 54         /* unable to read the message or envelope */
#define QQ_CONFIG 55       /* unable to read a configuration file */
#define QQ_NETWORK 56      /* network problem */
#define QQ_OPEN 61         /* problem with the home directory */
#define QQ_QUEUE 62        /* problem with the queue directory */
#define QQ_PID 63          /* problem with queue/pid */
#define QQ_TRIGGER 64      /* problem with queue/lock/trigger */
#define QQ_TEMPREFUSED 71  /* mail server temporarily refuses to send */
#define QQ_BUG 81          /* internal bug */
#define QQ_ENVELOPE 91     /* envelope format error */
#define QQ_NOEXEC 120      /* the injector could not run the queue program */
/* Not exit codes: what qq_close returns when there is none. */
#define QQ_CRASHED 256     /* the queue program was killed by a signal */
#define QQ_NOWAIT 257      /* waitpid failed */

struct qq
{
  pid_t pid ;              /* the queue program, or the daemon's pid */
  int sock ;               /* the daemon's socket, -1: a program runs */
  int msgfd ;              /* the queue program's fd 0, -1 when closed */
  int envfd ;              /* the queue program's fd 1, -1 when closed */
  int err ;                /* a write failed */
  size_t len ;             /* bytes in buf */
  char buf[8192] ;
} ;
#define QQ_ZERO { .pid = 0, .sock = -1, .msgfd = -1, .envfd = -1, .err = 0, .len = 0 }

/* prog = $QMAILQUEUE if set and not empty, else yubin-queue beside the
 * running binary.  NUL-terminated.  Returns 1, or 0 on allocation failure. */
extern int qq_program (stralloc *prog) ;

/* Connect to yubin-queued (when $QMAILQUEUE is not set), else start prog
 * with the two pipes.  Signal dispositions and the signal mask are reset
 * in the child.  Returns 0, or -1 with errno (then nothing runs: a
 * program that cannot be executed is reported here, not at close). */
extern int qq_open (struct qq *q, char const *prog) ;

extern void qq_put (struct qq *q, char const *s, size_t len) ;
extern void qq_puts (struct qq *q, char const *s) ;
/* Ends the message (flushes and closes fd 0), then writes F sender. */
extern void qq_from (struct qq *q, char const *sender) ;
extern void qq_to (struct qq *q, char const *rcpt) ;
/* Ends the envelope, waits; the exit code, QQ_CRASHED or QQ_NOWAIT. */
extern int qq_close (struct qq *q) ;
/* Closes the pipes and waits for the program without ending the envelope
 * (so it queues nothing).  For an injector that gives up. */
extern void qq_abort (struct qq *q) ;

/* What a qq_close result means: "" for QQ_OK, else 'D' (permanent) or 'Z'
 * (temporary), an RFC 3463 status code, a space and a text, e.g.
 * "Z4.3.0 qq write error or disk full".  Never NULL. */
extern char const *qq_status (int code) ;

#endif
