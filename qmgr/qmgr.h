/* yubin-qmgr's private header: the message table that its local channel
 * (yubin-qmgr.c) and its remote channel (remotechan.c) share, and the
 * calls between the two.  Not for other programs. */
#ifndef YUBIN_QMGR_H
#define YUBIN_QMGR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/stat.h>
#include <skalibs/genalloc.h>
#include <skalibs/gccattributes.h>
#include <skalibs/stralloc.h>

#include "qmgr/queue.h"
#include "qmgr/scan.h"

#define R_LOCAL 1
#define R_INFLIGHT 2      /* at a spawner */
#define R_QUEUED 4        /* remote, waiting for a slot of its domain */
#define R_CHECK 8         /* local: how its last attempt ended is unknown (in
                             flight at a crash, or a temporary failure): the
                             next one looks for an earlier Maildir copy */
#define NODOM UINT32_MAX

struct rcpt
{
  size_t addr ;          /* offset in msg.env of the address */
  uint64_t stoff ;       /* offset of its state byte in the file */
  uint32_t dom ;         /* remote: index in doms; local: NODOM */
  char state ;           /* QUEUE_TODO, QUEUE_DONE, QUEUE_FAILED */
  unsigned char flags ;
} ;

struct msg
{
  char id[QUEUE_IDMAX] ;
  struct queue_head h ;
  uint64_t envbase ;
  stralloc env ;         /* envelope; env.s + 1 is the sender */
  genalloc rcpts ;       /* struct rcpt */
  stralloc why ;         /* bounce paragraphs of the failed recipients */
  unsigned int npending ;   /* recipients in state T, inflight included */
  unsigned int ninflight ;  /* R_INFLIGHT or R_QUEUED */
  unsigned int nfailed ;    /* recipients in state B */
  size_t cursor ;        /* next recipient to try in this round */
  uint32_t gen ;
  unsigned char inuse ;
  unsigned char inready ;
} ;


#define M(i) (genalloc_s(struct msg, &msgs) + (i))
#define RCPTS(m) genalloc_s(struct rcpt, &(m)->rcpts)
#define NRCPTS(m) genalloc_len(struct rcpt, &(m)->rcpts)
#define ADDR(m, r) ((m)->env.s + (r)->addr)

/* yubin-qmgr.c */
extern genalloc msgs ;           /* struct msg */
extern struct scan dirs ;        /* queue/ and its directories */
extern uint64_t now ;            /* milliseconds since the epoch */
extern int stopping ;            /* SIGTERM seen */
extern unsigned long retrybase, retrymax ;   /* seconds */
extern void dienomem (void) gccattr_noreturn ;
extern char const *fmtu (char *buf, uint64_t u) ;
extern void logerr (char const *op, char const *id) ;
extern void readulong (unsigned long *u, char const *name, unsigned long def) ;
/* recipient k of message i came back from a spawner with code and text */
extern void outcome (uint32_t i, size_t k, unsigned int code, char const *text) ;
/* r is deferred (or failed, when the message is too old) */
extern void deliver_temp (struct msg *m, struct rcpt *r, char const *code, char const *text) ;
/* message i has nothing in flight any more in this round */
extern void round_end (uint32_t i) ;

/* remotechan.c: the remote channel.  Recipients outside control/locals,
 * grouped by domain into jobs for yubin-rspawn, which gets each message
 * as an open fd over a unix socket; per-domain slots and back-off. */
extern void remote_read_control (unsigned long max) ;   /* concurrencyremote, ...domain */
extern void remote_concurrency (unsigned long *total, unsigned long *perdomain) ;
extern void remote_start (char const *ropt, struct stat const *qst) ;   /* -R uid:gid */
extern uint32_t remote_dest (char const *addr) ;   /* the destination of an address */
extern void remote_take (uint32_t i) ;   /* the cursor's remote recipients of message i */
extern void remote_dispatch (void) ;     /* start waiting jobs while there are slots */
extern void remote_flush (void) ;        /* send what can be sent to yubin-rspawn */
extern int remote_fd (void) ;            /* the socket to yubin-rspawn, or -1 */
extern int remote_wants_write (void) ;
extern void remote_read (void) ;         /* results from yubin-rspawn */
extern unsigned int remote_running (void) ;   /* jobs at yubin-rspawn */
extern pid_t remote_pid (void) ;         /* yubin-rspawn's pid, or 0 */
extern void remote_backoffs_clear (void) ;    /* SIGALRM */
extern void remote_close_in_child (void) ;    /* a forked child lets go of the socket */
extern void remote_close (void) ;
extern void remote_free (void) ;

#endif
