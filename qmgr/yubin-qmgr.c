/* yubin-qmgr: the queue manager.  Takes messages from queue/new/, runs
 * their local deliveries through yubin-lspawn, records each recipient's
 * outcome in place, retries, bounces.  All its state is in the queue
 * directory: kill -9 at any instant loses nothing.  See yubin-qmgr(8) and
 * qmgr/README.  Its modules: scan.c (the queue directories: intake and
 * cleaning), spawnproto.c (the records to and from yubin-lspawn),
 * bounce.c (the failure notice), queue.c (the file format); the retry
 * heap is common/heap.c.  Remote recipients go, grouped by domain, to
 * yubin-rspawn over a unix socket that also carries each message's fd;
 * each domain has its own slots and its own back-off.
 *
 * Over 1,000 lines, for now: the local channel, the remote channel and
 * the retry schedule share the message table and its invariants (a
 * message is done when every recipient is D or B, whichever channel had
 * it), and the remote channel landed in here with issue 9.  The hot-path
 * rework (issue 13) reshapes both channels; the remote one (domains,
 * back-off, the rspawn socket, about 400 lines) becomes qmgr/remotechan.c
 * then, behind a small interface to the message table. */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <skalibs/bytestr.h>
#include <skalibs/djbunix.h>
#include <skalibs/genalloc.h>
#include <skalibs/iopause.h>
#include <skalibs/selfpipe.h>
#include <skalibs/setgroups.h>
#include <skalibs/sgetopt.h>
#include <skalibs/sig.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/tai.h>
#include <skalibs/types.h>

#include "control.h"
#include "exitcodes.h"
#include "sigtrap.h"
#include "heap.h"
#include "qq.h"
#include "root.h"
#include "ylog.h"
#include "qmgr/bounce.h"
#include "qmgr/queue.h"
#include "qmgr/scan.h"
#include "qmgr/spawnproto.h"

#define USAGE "yubin-qmgr [ -u uid ] [ -g gid ] [ -R uid:gid ]"
#define INTAKE_BATCH 50        /* new/ (or cur/ at start) files per loop turn */
#define READY_MAX 2000         /* intake pauses while this many wait for slots */
#define WAKE_MS 30000          /* rescan new/ at least this often */
#define CLEAN_MS 3600000       /* look for stale tmp/ files this often */
#define STALE_SEC 86400        /* a tmp/ file this old is garbage */
#define TERM_MS 10000          /* SIGTERM: wait this long for deliveries */
#define CONC_MAX 1000

char const *PROG = "qmgr" ;

#define R_LOCAL 1
#define R_INFLIGHT 2      /* at a spawner */
#define R_QUEUED 4        /* remote, waiting for a slot of its domain */
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

struct job { uint32_t m ; uint32_t gen ; size_t r ; int busy ; } ;

/* A remote destination (a recipient domain, lower case). */
struct dom
{
  size_t name ;          /* offset in domnames */
  unsigned int inflight ;   /* jobs at yubin-rspawn */
  unsigned int fails ;   /* destination failures in a row */
  uint64_t until ;       /* back-off: no connection before this (ms) */
  stralloc why ;         /* the last destination failure */
  genalloc queue ;       /* struct domwait: messages waiting for a slot */
  size_t qhead ;
  int listed ;           /* in domlist */
} ;
struct domwait { uint32_t m ; uint32_t gen ; } ;

/* A remote job: the recipients of one message at one domain. */
struct rjob
{
  uint32_t m, gen, dom ;
  int busy ;
  genalloc rcpts ;       /* size_t: recipient indexes, in request order */
  size_t nres ;          /* results received */
  size_t ndestfail ;     /* of which destination failures */
} ;
struct rout { size_t len ; int fd ; } ;   /* a request record not yet sent, its fd */
struct bouncing { pid_t pid ; uint32_t m ; uint32_t gen ; } ;   /* a bounce child */

static genalloc msgs = GENALLOC_ZERO ;      /* struct msg */
static genalloc freemsgs = GENALLOC_ZERO ;  /* uint32_t */
static genalloc ready = GENALLOC_ZERO ;     /* uint32_t, FIFO from readyhead */
static size_t readyhead = 0 ;
static genalloc retries = GENALLOC_ZERO ;   /* struct heapent (common/heap.h): idx is the msg */
static genalloc jobs = GENALLOC_ZERO ;      /* struct job */
static unsigned int njobs = 0 ;
static genalloc bounces = GENALLOC_ZERO ;   /* struct bouncing */

static struct scan dirs ;                   /* queue/ and its directories */
static int reqfd, resfd ;
static int lockfd = -1 ;
static pid_t lspawnpid ;
static stralloc out = STRALLOC_ZERO ;       /* requests not yet written */
static struct spawn_decoder in = SPAWN_DECODER(SPAWN_RECORDMAX, SPAWN_ONE) ;   /* results */
static stralloc queueprog = STRALLOC_ZERO ;

static unsigned long conc = 10 ;
static unsigned long rconc = 20 ;       /* control/concurrencyremote */
static unsigned long domconc = 5 ;      /* control/concurrencyremotedomain */

static genalloc doms = GENALLOC_ZERO ;      /* struct dom */
static stralloc domnames = STRALLOC_ZERO ;
static genalloc domhash = GENALLOC_ZERO ;   /* uint32_t: dom index + 1, 0 empty; open addressing */
static genalloc domlist = GENALLOC_ZERO ;   /* uint32_t: domains with messages waiting */
static genalloc rjobs = GENALLOC_ZERO ;     /* struct rjob */
static unsigned int nrjobs = 0 ;
static int rsock = -1 ;                     /* to yubin-rspawn; -1: no remote channel */
static pid_t rspawnpid = 0 ;
static stralloc rbuf = STRALLOC_ZERO ;      /* request bytes not yet sent, from rpos */
static size_t rpos = 0 ;
static genalloc rrecs = GENALLOC_ZERO ;     /* struct rout, from rrecshead */
static size_t rrecshead = 0, rsent = 0 ;    /* rsent: bytes of the head record sent */
static struct spawn_decoder rin = SPAWN_DECODER(SPAWN_RECORDMAX, SPAWN_ONE) ;
static char const *remoteoff = "remote delivery not available" ;
static unsigned long lifetime = 604800 ;
static unsigned long retrybase = 60 ;
static unsigned long retrymax = 3600 ;
static unsigned long bouncemax = 50000 ;
static stralloc me = STRALLOC_ZERO ;
static stralloc locals = STRALLOC_ZERO ;

static int stopping = 0 ;
static uint64_t now ;    /* milliseconds since the epoch */

#define M(i) (genalloc_s(struct msg, &msgs) + (i))
#define RCPTS(m) genalloc_s(struct rcpt, &(m)->rcpts)
#define NRCPTS(m) genalloc_len(struct rcpt, &(m)->rcpts)
#define ADDR(m, r) ((m)->env.s + (r)->addr)

static void dienomem (void)
{
  strerr_dief1x(EX_TEMP, "out of memory") ;
}

static uint64_t clock_ms (void)
{
  struct timespec ts ;
  if (clock_gettime(CLOCK_REALTIME, &ts) < 0) strerr_diefu1sys(EX_TEMP, "read the clock") ;
  return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 ;
}

static char const *fmtu (char *buf, uint64_t u)
{
  buf[uint64_fmt(buf, u)] = 0 ;
  return buf ;
}

static void logerr (char const *op, char const *id)
{
  ylog("error", "op", op, "id", id, "errno", strerror(errno), (char *)0) ;
}

/* ---- configuration ---- */

static void readulong (unsigned long *u, char const *name, unsigned long def)
{
  if (control_readulong(u, name, def) < 0) strerr_diefu2sys(EX_TEMP, "read control/", name) ;
}

static void read_control (void)
{
  readulong(&conc, "concurrencylocal", 10) ;
  if (!conc) conc = 1 ;
  if (conc > CONC_MAX) conc = CONC_MAX ;
  readulong(&rconc, "concurrencyremote", 20) ;
  if (!rconc) rconc = 1 ;
  if (rconc > CONC_MAX) rconc = CONC_MAX ;
  readulong(&domconc, "concurrencyremotedomain", 5) ;
  if (!domconc) domconc = 1 ;
  readulong(&lifetime, "queuelifetime", 604800) ;
  readulong(&retrybase, "queueretrybase", 60) ;
  if (!retrybase) retrybase = 1 ;
  readulong(&retrymax, "queueretrymax", 3600) ;
  if (retrymax < retrybase) retrymax = retrybase ;
  readulong(&bouncemax, "bouncemaxbytes", 50000) ;
  if (control_readline(&me, "me", 0) < 0) strerr_diefu1sys(EX_TEMP, "read control/me") ;
  if (!me.len)
  {
    if (!sagethostname(&me)) strerr_diefu1sys(EX_TEMP, "get the host name") ;
    if (!stralloc_0(&me)) dienomem() ;
    me.len-- ;
  }
  int r = control_readlist(&locals, "locals") ;
  if (r < 0) strerr_diefu1sys(EX_TEMP, "read control/locals") ;
  if (!r && !stralloc_copyb(&locals, me.s, me.len + 1)) dienomem() ;
  if (!genalloc_ready(struct job, &jobs, conc)) dienomem() ;
  for (size_t i = genalloc_len(struct job, &jobs) ; i < conc ; i++)
    genalloc_s(struct job, &jobs)[i].busy = 0 ;
  if (genalloc_len(struct job, &jobs) < conc) genalloc_setlen(struct job, &jobs, conc) ;
  if (!genalloc_ready(struct rjob, &rjobs, rconc)) dienomem() ;
  for (size_t i = genalloc_len(struct rjob, &rjobs) ; i < rconc ; i++)
  {
    struct rjob *rj = genalloc_s(struct rjob, &rjobs) + i ;
    rj->busy = 0 ;
    rj->rcpts = (genalloc)GENALLOC_ZERO ;
  }
  if (genalloc_len(struct rjob, &rjobs) < rconc) genalloc_setlen(struct rjob, &rjobs, rconc) ;
}

static int is_local (char const *addr)
{
  size_t len = strlen(addr) ;
  size_t at = byte_rchr(addr, len, '@') ;
  if (at == len) return 1 ;
  return control_domain_in_list(locals.s, locals.len, addr + at + 1) ;
}

/* ---- remote destinations ---- */

#define D(k) (genalloc_s(struct dom, &doms) + (k))
#define DNAME(d) (domnames.s + (d)->name)

static uint32_t dom_hashof (char const *s, size_t len)
{
  uint32_t h = 2166136261u ;
  for (size_t i = 0 ; i < len ; i++) { h ^= (unsigned char)s[i] ; h *= 16777619u ; }
  return h ;
}

static void dom_rehash (size_t size)
{
  genalloc_setlen(uint32_t, &domhash, 0) ;
  if (!genalloc_ready(uint32_t, &domhash, size)) dienomem() ;
  genalloc_setlen(uint32_t, &domhash, size) ;
  uint32_t *t = genalloc_s(uint32_t, &domhash) ;
  memset(t, 0, size * sizeof(uint32_t)) ;
  size_t n = genalloc_len(struct dom, &doms) ;
  for (size_t k = 0 ; k < n ; k++)
  {
    char const *name = DNAME(D(k)) ;
    size_t h = dom_hashof(name, strlen(name)) & (size - 1) ;
    while (t[h]) h = (h + 1) & (size - 1) ;
    t[h] = k + 1 ;
  }
}

/* The destination of a remote address (lower-cased domain), made on first use.
 * Kept for the life of the process (a few hundred bytes per domain). */
static uint32_t dom_of (char const *addr)
{
  size_t len = strlen(addr), at = byte_rchr(addr, len, '@') ;
  char name[256] ;
  size_t nl = at < len ? len - at - 1 : 0 ;
  if (nl > 255) nl = 0 ;   /* no such domain: "", which yubin-rspawn fails (#5.1.2) */
  for (size_t i = 0 ; i < nl ; i++)
  {
    char c = addr[at + 1 + i] ;
    name[i] = c >= 'A' && c <= 'Z' ? c + 32 : c ;
  }
  name[nl] = 0 ;
  size_t size = genalloc_len(uint32_t, &domhash) ;
  if (!size) { dom_rehash(64) ; size = 64 ; }
  uint32_t *t = genalloc_s(uint32_t, &domhash) ;
  size_t h = dom_hashof(name, nl) & (size - 1) ;
  for (; t[h] ; h = (h + 1) & (size - 1))
    if (!strcmp(DNAME(D(t[h] - 1)), name)) return t[h] - 1 ;
  struct dom z = { .name = domnames.len, .inflight = 0, .fails = 0, .until = 0, .why = STRALLOC_ZERO,
                   .queue = GENALLOC_ZERO, .qhead = 0, .listed = 0 } ;
  if (!stralloc_catb(&domnames, name, nl + 1) || !genalloc_append(struct dom, &doms, &z)) dienomem() ;
  uint32_t k = genalloc_len(struct dom, &doms) - 1 ;
  if ((size_t)k * 2 >= size) dom_rehash(size * 2) ;
  else t[h] = k + 1 ;
  return k ;
}

/* ---- messages, ready queue, retry heap ---- */

static uint32_t msg_new (void)
{
  uint32_t i ;
  size_t nf = genalloc_len(uint32_t, &freemsgs) ;
  if (nf)
  {
    i = genalloc_s(uint32_t, &freemsgs)[nf - 1] ;
    genalloc_setlen(uint32_t, &freemsgs, nf - 1) ;
  }
  else
  {
    struct msg z = { .env = STRALLOC_ZERO, .rcpts = GENALLOC_ZERO, .why = STRALLOC_ZERO, .gen = 0 } ;
    i = genalloc_len(struct msg, &msgs) ;
    if (!genalloc_append(struct msg, &msgs, &z)) dienomem() ;
  }
  struct msg *m = M(i) ;
  m->inuse = 1 ;
  m->inready = 0 ;
  m->npending = m->ninflight = m->nfailed = 0 ;
  m->cursor = 0 ;
  m->env.len = m->why.len = 0 ;
  genalloc_setlen(struct rcpt, &m->rcpts, 0) ;
  return i ;
}

static void msg_free (uint32_t i)
{
  struct msg *m = M(i) ;
  stralloc_free(&m->env) ;
  stralloc_free(&m->why) ;
  genalloc_free(struct rcpt, &m->rcpts) ;
  m->inuse = 0 ;
  m->gen++ ;
  if (!genalloc_append(uint32_t, &freemsgs, &i)) dienomem() ;
}

static void ready_push (uint32_t i)
{
  struct msg *m = M(i) ;
  m->cursor = 0 ;
  m->inready = 1 ;
  if (!genalloc_append(uint32_t, &ready, &i)) dienomem() ;
}

static size_t ready_len (void)
{
  return genalloc_len(uint32_t, &ready) - readyhead ;
}

static void retry_at (uint64_t when, uint32_t i)
{
  if (!heap_push(&retries, (int64_t)when, i, M(i)->gen)) dienomem() ;
}

/* Due retries into the ready queue; all of them if flush.  An entry of a
 * message that went away or is being tried already is dropped. */
static void retries_due (int flush)
{
  struct heapent const *top ;
  while ((top = heap_top(&retries)))
  {
    if (!flush && top->when > (int64_t)now) return ;
    struct heapent e = heap_pop(&retries) ;
    struct msg *m = M(e.idx) ;
    if (m->inuse && m->gen == e.gen && !m->inready && !m->ninflight) ready_push(e.idx) ;
  }
}

/* The next attempt after now: at birth + base, + 2 base, + 4 base, ...
 * (intervals capped at retrymax), so the schedule survives a restart. */
static uint64_t next_retry (struct msg const *m)
{
  uint64_t t = m->h.birth * 1000, iv = retrybase * 1000, cap = retrymax * 1000 ;
  if (t > now) return now + iv ;
  while (t <= now && iv < cap) { t += iv ; iv *= 2 ; }
  if (t <= now) t += ((now - t) / cap + 1) * cap ;
  return t ;
}

static int expired (struct msg const *m)
{
  return now / 1000 >= m->h.birth + lifetime ;
}

/* ---- recording outcomes ---- */

/* Flip a recipient's state byte; durable if sync.  The file is opened for
 * each flip: an open costs little next to the fdatasync, and the number of
 * open files stays bounded whatever the concurrency. */
static void set_state (struct msg *m, struct rcpt *r, char state, int sync)
{
  r->state = state ;
  int fd = openat(m->h.envfile ? dirs.envfd : dirs.curfd, m->id, O_WRONLY | O_NOFOLLOW | O_CLOEXEC) ;
  if (fd < 0 || pwrite(fd, &state, 1, r->stoff) != 1 || (sync && fdatasync(fd) < 0))
    logerr("record", m->id) ;
  if (fd >= 0) fd_close(fd) ;
}

/* The message is finished: remove it.  No fsync (see README: the
 * duplicate window), except between the two unlinks of a message with an
 * env/ file, so that env/ID never goes before cur/ID. */
static void msg_remove (uint32_t i)
{
  struct msg *m = M(i) ;
  if (unlinkat(dirs.curfd, m->id, 0) < 0 && errno != ENOENT) logerr("unlink", m->id) ;
  else if (m->h.envfile)
  {
    if (fsync(dirs.curfd) < 0) logerr("sync cur/", m->id) ;
    else if (unlinkat(dirs.envfd, m->id, 0) < 0 && errno != ENOENT) logerr("unlink env", m->id) ;
  }
}

/* A recipient failed for good: remember why, for the bounce. */
static void add_failure (struct msg *m, struct rcpt const *r, char const *text)
{
  m->nfailed++ ;
  if (!bounce_add_failure(&m->why, ADDR(m, r), text)) dienomem() ;
}

static void bounce_start (uint32_t i) ;

static void finish (uint32_t i)
{
  struct msg *m = M(i) ;
  /* null sender: a double bounce to control/doublebounceto (bounce.h); "#@[]": dropped */
  if (m->nfailed && bounce_wanted(m->env.s + 1)) { bounce_start(i) ; return ; }
  if (m->nfailed) ylog("double-bounce", "id", m->id, "from", m->env.s + 1, "status", "dropped", (char *)0) ;
  msg_remove(i) ;
  ylog("done", "id", m->id, (char *)0) ;
  msg_free(i) ;
}

/* Every recipient of this round has been tried and has answered. */
static void round_end (uint32_t i)
{
  struct msg *m = M(i) ;
  if (!m->npending) { finish(i) ; return ; }
  uint64_t when = next_retry(m) ;
  char fmt[UINT64_FMT] ;
  ylog("retry", "id", m->id, "in", fmtu(fmt, (when - now + 999) / 1000), (char *)0) ;
  retry_at(when, i) ;
}

static void deliver_temp (struct msg *m, struct rcpt *r, char const *code, char const *text)
{
  if (!expired(m))
  {
    ylog("delivery", "id", m->id, "to", ADDR(m, r), "status", "defer", "code", code, "reason", text, (char *)0) ;
    return ;
  }
  ylog("delivery", "id", m->id, "to", ADDR(m, r), "status", "fail", "code", code, "reason", text, "expired", "1", (char *)0) ;
  stralloc t = STRALLOC_ZERO ;
  if (!stralloc_cats(&t, "This message has been in the queue too long; I've given up.\nLast error: ")
   || !stralloc_cats(&t, text) || !stralloc_0(&t)) dienomem() ;
  add_failure(m, r, t.s) ;
  stralloc_free(&t) ;
  set_state(m, r, QUEUE_FAILED, 0) ;
  m->npending-- ;
}

/* A spawner's answer for recipient k of message i. */
static void outcome (uint32_t i, size_t k, unsigned int code, char const *text)
{
  char codes[UINT_FMT] ;
  codes[uint_fmt(codes, code)] = 0 ;
  struct msg *m = M(i) ;
  struct rcpt *r = RCPTS(m) + k ;
  r->flags &= ~R_INFLIGHT ;
  m->ninflight-- ;
  if (!code)
  {
    ylog("delivery", "id", m->id, "to", ADDR(m, r), "status", "ok", "code", "0", (char *)0) ;
    m->npending-- ;
    /* The last one of a message that goes away now needs no record. */
    if (m->npending || m->nfailed) set_state(m, r, QUEUE_DONE, 1) ;
    else r->state = QUEUE_DONE ;
  }
  else if (code == EX_PERM)
  {
    ylog("delivery", "id", m->id, "to", ADDR(m, r), "status", "fail", "code", codes, "reason", text, (char *)0) ;
    add_failure(m, r, *text ? text : "permanent failure") ;
    /* not synced: lost in a crash, the recipient is just tried again */
    set_state(m, r, QUEUE_FAILED, 0) ;
    m->npending-- ;
  }
  else deliver_temp(m, r, codes, *text ? text : "temporary failure") ;
  if (!m->inready && !m->ninflight) round_end(i) ;
}

static void result (struct spawn_result const *res)
{
  uint32_t j ;
  if (uint32_scan(res->jobid, &j) != strlen(res->jobid) || j >= genalloc_len(struct job, &jobs)
   || !genalloc_s(struct job, &jobs)[j].busy)
    strerr_dief1x(EX_TEMP, "protocol error: bad result from yubin-lspawn") ;
  struct job *jb = genalloc_s(struct job, &jobs) + j ;
  jb->busy = 0 ;
  njobs-- ;
  outcome(jb->m, jb->r, res->code, res->text) ;
}

/* The complete result records received. */
static void results (void)
{
  for (;;)
  {
    struct spawn_result res ;
    int r = spawn_result_next(&in, &res) ;
    if (!r) return ;
    if (r < 0)
    {
      if (errno == EMSGSIZE) strerr_dief1x(EX_TEMP, "protocol error: result too long") ;
      strerr_dief1x(EX_TEMP, "protocol error: bad result from yubin-lspawn") ;
    }
    result(&res) ;
  }
}

/* ---- the remote channel ---- */

static void dom_list (uint32_t d)
{
  if (D(d)->listed) return ;
  D(d)->listed = 1 ;
  if (!genalloc_append(uint32_t, &domlist, &d)) dienomem() ;
}

/* The recipients of message i at domain d that wait (R_QUEUED) are
 * deferred without trying: d is backing off. */
static void dom_defer_queued (uint32_t i, uint32_t d)
{
  struct msg *m = M(i) ;
  size_t n = NRCPTS(m) ;
  for (size_t k = 0 ; k < n ; k++)
  {
    struct rcpt *r = RCPTS(m) + k ;
    if (!(r->flags & R_QUEUED) || r->dom != d) continue ;
    r->flags &= ~R_QUEUED ;
    m->ninflight-- ;
    deliver_temp(m, r, "111", D(d)->why.s) ;
  }
  if (!m->inready && !m->ninflight) round_end(i) ;
}

/* A job of d could not reach it: no connection to d before a growing
 * delay (retrybase, doubling, capped at retrymax), and the messages
 * waiting for d are deferred now. */
static void dom_backoff (uint32_t d, char const *why)
{
  struct dom *x = D(d) ;
  if (x->until <= now)
  {
    /* jobs that were running together fail together: one step each time */
    uint64_t iv = retrybase * 1000 ;
    for (unsigned int k = 0 ; k < x->fails && iv < retrymax * 1000 ; k++) iv *= 2 ;
    if (iv > retrymax * 1000) iv = retrymax * 1000 ;
    x->fails++ ;
    x->until = now + iv ;
    if (!stralloc_copys(&x->why, "destination backing off after: ") || !stralloc_cats(&x->why, why)
     || !stralloc_0(&x->why)) dienomem() ;
    char fmt[UINT64_FMT], f2[UINT_FMT] ;
    f2[uint_fmt(f2, x->fails)] = 0 ;
    ylog("backoff", "domain", DNAME(x), "in", fmtu(fmt, iv / 1000), "fails", f2, "reason", why, (char *)0) ;
  }
  while (x->qhead < genalloc_len(struct domwait, &x->queue))
  {
    struct domwait w = genalloc_s(struct domwait, &x->queue)[x->qhead++] ;
    if (M(w.m)->inuse && M(w.m)->gen == w.gen) dom_defer_queued(w.m, d) ;
    x = D(d) ;
  }
  genalloc_setlen(struct domwait, &x->queue, 0) ;
  x->qhead = 0 ;
}

static void rresult (struct spawn_result const *res)
{
  uint32_t j ;
  if (uint32_scan(res->jobid, &j) != strlen(res->jobid) || j >= genalloc_len(struct rjob, &rjobs)
   || !genalloc_s(struct rjob, &rjobs)[j].busy)
    strerr_dief1x(EX_TEMP, "protocol error: bad result from yubin-rspawn") ;
  struct rjob *rj = genalloc_s(struct rjob, &rjobs) + j ;
  size_t n = genalloc_len(size_t, &rj->rcpts) ;
  size_t k = genalloc_s(size_t, &rj->rcpts)[rj->nres++] ;
  uint32_t d = rj->dom, i = rj->m ;
  size_t dl = sizeof(SPAWN_DESTFAIL) - 1 ;
  int destfail = res->code == EX_TEMP && !strncmp(res->text, SPAWN_DESTFAIL, dl) ;
  if (destfail) rj->ndestfail++ ;
  else { D(d)->fails = 0 ; D(d)->until = 0 ; }   /* we spoke with it */
  int last = rj->nres == n, backoff = last && rj->ndestfail == n ;
  if (last)
  {
    rj->busy = 0 ;
    nrjobs-- ;
    D(d)->inflight-- ;
  }
  outcome(i, k, res->code, res->text) ;
  if (backoff) dom_backoff(d, res->text + dl) ;
}

static void rresults (void)
{
  for (;;)
  {
    struct spawn_result res ;
    int r = spawn_result_next(&rin, &res) ;
    if (!r) return ;
    if (r < 0) strerr_dief1x(EX_TEMP, "protocol error: bad result from yubin-rspawn") ;
    rresult(&res) ;
  }
}

/* Start the job of message w.m at domain d: its R_QUEUED recipients. */
static void rjob_start (uint32_t d, struct domwait w)
{
  struct msg *m = M(w.m) ;
  if (!m->inuse || m->gen != w.gen) return ;
  int fd = openat(dirs.curfd, m->id, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) ;
  if (fd < 0)
  {
    logerr("open", m->id) ;
    if (!stralloc_copys(&D(d)->why, "unable to open the queue file (#4.3.0)") || !stralloc_0(&D(d)->why)) dienomem() ;
    dom_defer_queued(w.m, d) ;
    return ;
  }
  uint32_t j = 0 ;
  while (genalloc_s(struct rjob, &rjobs)[j].busy) j++ ;   /* nrjobs < rconc */
  struct rjob *rj = genalloc_s(struct rjob, &rjobs) + j ;
  rj->busy = 1 ;
  rj->m = w.m ;
  rj->gen = w.gen ;
  rj->dom = d ;
  rj->nres = rj->ndestfail = 0 ;
  genalloc_setlen(size_t, &rj->rcpts, 0) ;
  stralloc list = STRALLOC_ZERO ;
  size_t n = NRCPTS(m) ;
  for (size_t k = 0 ; k < n ; k++)
  {
    struct rcpt *r = RCPTS(m) + k ;
    if (!(r->flags & R_QUEUED) || r->dom != d) continue ;
    r->flags = (r->flags & ~R_QUEUED) | R_INFLIGHT ;
    if (!genalloc_append(size_t, &rj->rcpts, &k) || !stralloc_catb(&list, ADDR(m, r), strlen(ADDR(m, r)) + 1)) dienomem() ;
  }
  nrjobs++ ;
  D(d)->inflight++ ;
  char a[UINT32_FMT] ;
  a[uint32_fmt(a, j)] = 0 ;
  struct spawn_request rq =
  {
    .jobid = a, .msgid = m->id, .msgoff = m->h.msgoff, .sender = m->env.s + 1,
    .rcpts = list.s, .nrcpts = genalloc_len(size_t, &rj->rcpts)
  } ;
  size_t before = rbuf.len ;
  if (!spawn_request_put(&rbuf, &rq, SPAWN_LIST)) strerr_diefu1sys(EX_TEMP, "encode a request") ;
  struct rout o = { .len = rbuf.len - before, .fd = fd } ;
  if (!genalloc_append(struct rout, &rrecs, &o)) dienomem() ;
  stralloc_free(&list) ;
}

/* Start waiting remote jobs while there are slots: domains in turn. */
static void rdispatch (void)
{
  size_t n = genalloc_len(uint32_t, &domlist), keep = 0 ;
  uint32_t *l = genalloc_s(uint32_t, &domlist) ;
  for (size_t k = 0 ; k < n ; k++)
  {
    uint32_t d = l[k] ;
    for (;;)
    {
      struct dom *x = D(d) ;
      if (x->qhead >= genalloc_len(struct domwait, &x->queue))
      {
        genalloc_setlen(struct domwait, &x->queue, 0) ;
        x->qhead = 0 ;
        x->listed = 0 ;
        break ;
      }
      if (stopping || nrjobs >= rconc || x->inflight >= domconc) { l[keep++] = d ; break ; }
      struct domwait w = genalloc_s(struct domwait, &x->queue)[x->qhead++] ;
      rjob_start(d, w) ;
      l = genalloc_s(uint32_t, &domlist) ;
    }
  }
  genalloc_setlen(uint32_t, &domlist, keep) ;
}

/* Send what can be sent to yubin-rspawn; each record's fd goes with its
 * first byte, and is closed here once it is in the socket. */
static void rflush (void)
{
  while (rrecshead < genalloc_len(struct rout, &rrecs))
  {
    struct rout *o = genalloc_s(struct rout, &rrecs) + rrecshead ;
    ssize_t w = rsent ? send(rsock, rbuf.s + rpos, o->len - rsent, MSG_NOSIGNAL)
                      : spawn_sendfd(rsock, rbuf.s + rpos, o->len, o->fd) ;
    if (w < 0)
    {
      if (errno == EAGAIN || errno == EINTR) break ;
      strerr_diefu1sys(EX_TEMP, "write to yubin-rspawn") ;
    }
    if (!rsent && w > 0) { fd_close(o->fd) ; o->fd = -1 ; }
    rsent += w ;
    rpos += w ;
    if (rsent == o->len) { rrecshead++ ; rsent = 0 ; }
  }
  if (rrecshead == genalloc_len(struct rout, &rrecs))
  {
    genalloc_setlen(struct rout, &rrecs, 0) ;
    rrecshead = 0 ;
    rbuf.len = 0 ;
    rpos = 0 ;
  }
}

/* The remote recipients of message i at the cursor's domain: deferred
 * if the domain backs off, else queued for a slot of the domain. */
static void remote_take (uint32_t i)
{
  struct msg *m = M(i) ;
  struct rcpt *r = RCPTS(m) + m->cursor ;
  uint32_t d = r->dom ;
  if (rsock < 0) { deliver_temp(m, r, "-", remoteoff) ; return ; }
  if (D(d)->until > now) { deliver_temp(m, r, "111", D(d)->why.s) ; return ; }
  size_t n = NRCPTS(m) ;
  for (size_t k = m->cursor ; k < n ; k++)
  {
    struct rcpt *q = RCPTS(m) + k ;
    if (q->dom != d || q->state != QUEUE_TODO || (q->flags & (R_INFLIGHT | R_QUEUED))) continue ;
    q->flags |= R_QUEUED ;
    m->ninflight++ ;
  }
  struct domwait w = { .m = i, .gen = m->gen } ;
  if (!genalloc_append(struct domwait, &D(d)->queue, &w)) dienomem() ;
  dom_list(d) ;
}

/* ---- dispatching ---- */

static void job_start (uint32_t i, size_t k)
{
  struct job *jb = genalloc_s(struct job, &jobs) ;
  uint32_t j = 0 ;
  while (jb[j].busy) j++ ;   /* njobs < conc: there is a free slot below conc */
  struct msg *m = M(i) ;
  struct rcpt *r = RCPTS(m) + k ;
  jb[j].busy = 1 ;
  jb[j].m = i ;
  jb[j].gen = m->gen ;
  jb[j].r = k ;
  njobs++ ;
  m->ninflight++ ;
  r->flags |= R_INFLIGHT ;
  char a[UINT32_FMT] ;
  a[uint32_fmt(a, j)] = 0 ;
  struct spawn_request rq =
  {
    .jobid = a, .msgid = m->id, .msgoff = m->h.msgoff,
    .sender = m->env.s + 1, .rcpts = ADDR(m, r), .nrcpts = 1
  } ;
  if (!spawn_request_put(&out, &rq, SPAWN_ONE)) strerr_diefu1sys(EX_TEMP, "encode a request") ;
}

/* Fill free delivery slots from the ready queue, oldest first. */
static void dispatch (void)
{
  while (readyhead < genalloc_len(uint32_t, &ready))
  {
    uint32_t i = genalloc_s(uint32_t, &ready)[readyhead] ;
    struct msg *m = M(i) ;
    while (m->cursor < NRCPTS(m))
    {
      struct rcpt *r = RCPTS(m) + m->cursor ;
      if (r->state != QUEUE_TODO || (r->flags & (R_INFLIGHT | R_QUEUED))) { m->cursor++ ; continue ; }
      if (!(r->flags & R_LOCAL))
      {
        if (stopping) return ;
        remote_take(i) ;
        m = M(i) ;
        m->cursor++ ;
        continue ;
      }
      if (njobs >= conc || stopping) return ;
      job_start(i, m->cursor) ;
      m = M(i) ;
      m->cursor++ ;
    }
    readyhead++ ;
    m->inready = 0 ;
    if (!m->ninflight) round_end(i) ;
  }
}

/* Drop the consumed head of the ready queue now and then. */
static void ready_compact (void)
{
  size_t len = genalloc_len(uint32_t, &ready) ;
  if (!readyhead || (readyhead < len && (readyhead < 4096 || readyhead * 2 < len))) return ;
  uint32_t *q = genalloc_s(uint32_t, &ready) ;
  memmove(q, q + readyhead, (len - readyhead) * sizeof(uint32_t)) ;
  genalloc_setlen(uint32_t, &ready, len - readyhead) ;
  readyhead = 0 ;
}

/* ---- intake ---- */

/* Load cur/id (one that is unusable is logged and left alone). */
static void load (char const *id, int recovered)
{
  uint32_t i = msg_new() ;
  struct msg *m = M(i) ;
  memcpy(m->id, id, strlen(id) + 1) ;
  int r = queue_load(dirs.curfd, dirs.envfd, id, &m->h, &m->env, &m->envbase) ;
  if (r <= 0)
  {
    logerr(r ? "read" : "parse", id) ;
    msg_free(i) ;
    return ;
  }
  size_t pos = strlen(m->env.s) + 1 ;
  while (m->env.s[pos])
  {
    struct rcpt rc = { .addr = pos + 1, .stoff = m->envbase + pos, .dom = NODOM, .state = m->env.s[pos], .flags = 0 } ;
    if (is_local(m->env.s + pos + 1)) rc.flags |= R_LOCAL ;
    else if (rc.state == QUEUE_TODO) rc.dom = dom_of(m->env.s + pos + 1) ;
    if (!genalloc_append(struct rcpt, &m->rcpts, &rc)) dienomem() ;
    if (rc.state == QUEUE_TODO) m->npending++ ;
    else if (rc.state == QUEUE_FAILED)
      add_failure(m, &rc, "Permanent failure (recorded before a restart of yubin-qmgr).") ;
    pos += strlen(m->env.s + pos) + 1 ;
  }
  char a[UINT64_FMT], b[UINT64_FMT], c[UINT64_FMT], u[UINT64_FMT] ;
  if (recovered)
    ylog("recover", "id", id, "from", m->env.s + 1, "rcpts", fmtu(a, NRCPTS(m)),
         "pending", fmtu(b, m->npending), (char *)0) ;
  else
    ylog("new", "id", id, "from", m->env.s + 1, "rcpts", fmtu(a, NRCPTS(m)),
         "bytes", fmtu(c, m->h.size), "uid", fmtu(u, m->h.uid), (char *)0) ;
  if (m->npending) ready_push(i) ;
  else finish(i) ;
}

/* ---- bounces ---- */

/* The bounce child: feeds the failure notice to yubin-queue with a null
 * sender (qmgr/bounce.c).  Exits with yubin-queue's code.  Never returns. */
static void bounce_child (uint32_t i)
{
  struct msg *m = M(i) ;
  selfpipe_finish() ;
  fd_close(reqfd) ; fd_close(resfd) ;
  if (rsock >= 0) fd_close(rsock) ;
  fd_close(lockfd) ;   /* a lock kept by a bounce would keep a restarted qmgr out */
  struct bounce b =
  {
    .me = me.s, .id = m->id, .sender = m->env.s + 1, .failures = m->why.s, .failureslen = m->why.len,
    .msgfd = openat(dirs.curfd, m->id, O_RDONLY | O_CLOEXEC), .msgsize = m->h.size,
    .maxbytes = bouncemax, .when = (time_t)(now / 1000)
  } ;
  if (b.msgfd >= 0 && lseek(b.msgfd, (off_t)m->h.msgoff, SEEK_SET) < 0)
  {
    fd_close(b.msgfd) ;
    b.msgfd = -1 ;   /* no copy of the message, the notice still goes */
  }
  int code = bounce_send(queueprog.s, &b) ;
  if (code < 0) strerr_diefu2sys(QQ_BUG, "run ", queueprog.s) ;
  _exit(code > 255 ? QQ_BUG : code) ;   /* yubin-queue killed, or not waited for */
}

static void bounce_start (uint32_t i)
{
  struct msg *m = M(i) ;
  pid_t pid = fork() ;
  if (!pid) bounce_child(i) ;
  if (pid < 0)
  {
    logerr("fork for a bounce", m->id) ;
    retry_at(now + retrybase * 1000, i) ;
    return ;
  }
  struct bouncing b = { .pid = pid, .m = i, .gen = m->gen } ;
  if (!genalloc_append(struct bouncing, &bounces, &b)) dienomem() ;
}

static void bounce_end (size_t k, int wstat)
{
  struct bouncing *b = genalloc_s(struct bouncing, &bounces) + k ;
  uint32_t i = b->m ;
  size_t n = genalloc_len(struct bouncing, &bounces) - 1 ;
  *b = genalloc_s(struct bouncing, &bounces)[n] ;
  genalloc_setlen(struct bouncing, &bounces, n) ;
  struct msg *m = M(i) ;
  if (WIFEXITED(wstat) && !WEXITSTATUS(wstat))
  {
    ylog("bounce", "id", m->id, "to", m->env.s + 1, (char *)0) ;
    msg_remove(i) ;
    ylog("done", "id", m->id, (char *)0) ;
    msg_free(i) ;
    return ;
  }
  char fmt[UINT_FMT] ;
  fmt[uint_fmt(fmt, WIFEXITED(wstat) ? WEXITSTATUS(wstat) : 256 + WTERMSIG(wstat))] = 0 ;
  ylog("error", "op", "bounce", "id", m->id, "code", fmt, (char *)0) ;
  retry_at(now + retrybase * 1000, i) ;
}

static void reap (void)
{
  for (;;)
  {
    int wstat ;
    pid_t pid = wait_nohang(&wstat) ;
    if (pid <= 0) return ;
    if (pid == lspawnpid) strerr_dief1x(EX_TEMP, "yubin-lspawn exited") ;
    /* its jobs are lost: s6 restarts us, and everything in cur/ is tried
       again (nothing acknowledged is lost; see README, the duplicate window) */
    if (pid == rspawnpid) strerr_dief1x(EX_TEMP, "yubin-rspawn exited") ;
    size_t n = genalloc_len(struct bouncing, &bounces) ;
    for (size_t k = 0 ; k < n ; k++)
      if (genalloc_s(struct bouncing, &bounces)[k].pid == pid) { bounce_end(k, wstat) ; break ; }
  }
}

/* ---- start-up ---- */

static void spawn_lspawn (void)
{
  stralloc prog = STRALLOC_ZERO ;
  int req[2], res[2] ;
  if (!yubin_sibling(&prog, "yubin-lspawn")) strerr_diefu1sys(EX_TEMP, "find yubin-lspawn") ;
  if (pipe2(req, O_CLOEXEC) < 0 || pipe2(res, O_CLOEXEC) < 0) strerr_diefu1sys(EX_TEMP, "make pipes") ;
  lspawnpid = fork() ;
  if (lspawnpid < 0) strerr_diefu1sys(EX_TEMP, "fork") ;
  if (!lspawnpid)
  {
    if (fd_move(0, req[0]) < 0 || fd_move(1, res[1]) < 0) strerr_diefu1sys(EX_TEMP, "move fds") ;
    char const *argv[2] = { "yubin-lspawn", 0 } ;
    execv(prog.s, (char *const *)argv) ;
    strerr_diefu2sys(EX_TEMP, "exec ", prog.s) ;
  }
  fd_close(req[0]) ;
  fd_close(res[1]) ;
  reqfd = req[1] ;
  resfd = res[0] ;
  if (ndelay_on(reqfd) < 0 || ndelay_on(resfd) < 0) strerr_diefu1sys(EX_TEMP, "set pipes non-blocking") ;
  stralloc_free(&prog) ;
}

/* The remote spawner, on a unix socket (fd 0 and 1 of the child), as
 * ruid:rgid when we are root.  Not started (remote recipients are
 * deferred, remoteoff says why) when it is not installed beside us, or
 * when we are root and have no -R: it reads the network, so it never
 * runs as root, nor as the queue user. */
static void spawn_rspawn (char const *ropt, struct stat const *qst)
{
  stralloc prog = STRALLOC_ZERO ;
  uid_t ruid = 0 ;
  gid_t rgid = 0 ;
  int amroot = !geteuid() ;
  if (ropt)
  {
    size_t k = uid_scan(ropt, &ruid) ;
    if (!k || ropt[k] != ':' || !gid0_scan(ropt + k + 1, &rgid))
      strerr_dief2x(EX_PERM, "bad -R (want uid:gid): ", ropt) ;
    if (!ruid || !rgid) strerr_dief1x(EX_PERM, "-R: the remote spawner never runs as root") ;
    if (amroot && ruid == qst->st_uid) strerr_dief1x(EX_PERM, "-R: the remote spawner must not be the queue user") ;
  }
  if (!yubin_sibling(&prog, "yubin-rspawn")) strerr_diefu1sys(EX_TEMP, "find yubin-rspawn") ;
  if (access(prog.s, X_OK) < 0)
  {
    remoteoff = "remote delivery not available (no yubin-rspawn)" ;
    goto off ;
  }
  if (amroot && !ropt)
  {
    remoteoff = "remote delivery not available (yubin-qmgr started as root without -R)" ;
    goto off ;
  }
  int sv[2] ;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) strerr_diefu1sys(EX_TEMP, "make a socket pair") ;
  rspawnpid = fork() ;
  if (rspawnpid < 0) strerr_diefu1sys(EX_TEMP, "fork") ;
  if (!rspawnpid)
  {
    if (fd_move(0, sv[1]) < 0 || fd_copy(1, 0) < 0) strerr_diefu1sys(EX_TEMP, "move fds") ;
    if (amroot && (skalibs_setgroups(1, &rgid) < 0 || setgid(rgid) < 0 || setuid(ruid) < 0))
      strerr_diefu1sys(EX_TEMP, "drop privileges for yubin-rspawn") ;
    char const *argv[2] = { "yubin-rspawn", 0 } ;
    execv(prog.s, (char *const *)argv) ;
    strerr_diefu2sys(EX_TEMP, "exec ", prog.s) ;
  }
  fd_close(sv[1]) ;
  rsock = sv[0] ;
  if (ndelay_on(rsock) < 0) strerr_diefu1sys(EX_TEMP, "set the socket non-blocking") ;
  stralloc_free(&prog) ;
  return ;
 off:
  ylog("warning", "remote", "off", "reason", remoteoff, (char *)0) ;
  stralloc_free(&prog) ;
}

/* Started as root: who is the queue user?  -u/-g, else $UID/$GID (as
 * s6-envuidgid sets them), else the owner of the queue directory. */
static void drop_privileges (char const *uidopt, char const *gidopt, struct stat const *qst)
{
  uid_t uid = qst->st_uid ;
  gid_t gid = qst->st_gid ;
  char const *us = uidopt ? uidopt : getenv("UID") ;
  char const *gs = gidopt ? gidopt : getenv("GID") ;
  if (us && (!uid0_scan(us, &uid))) strerr_dief2x(EX_PERM, "bad uid: ", us) ;
  if (gs && (!gid0_scan(gs, &gid))) strerr_dief2x(EX_PERM, "bad gid: ", gs) ;
  if (!uid) return ;   /* the queue belongs to root: a test or a one-user box */
  if (skalibs_setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
    strerr_diefu1sys(EX_TEMP, "drop privileges") ;
}

static int open_trigger (int qfd)
{
  if (mkdirat(qfd, "lock", 0700) < 0 && errno != EEXIST) strerr_diefu1sys(EX_TEMP, "mkdir queue/lock") ;
  if (mkfifoat(qfd, "lock/trigger", 0622) < 0 && errno != EEXIST) strerr_diefu1sys(EX_TEMP, "mkfifo queue/lock/trigger") ;
  /* mkfifo obeys the umask; yubin-queue may run as anybody */
  if (fchmodat(qfd, "lock/trigger", 0622, 0) < 0) strerr_diefu1sys(EX_TEMP, "chmod queue/lock/trigger") ;
  /* O_RDWR: we are our own writer, so the fifo never reports EOF */
  int fd = openat(qfd, "lock/trigger", O_RDWR | O_NONBLOCK | O_CLOEXEC) ;
  if (fd < 0) strerr_diefu1sys(EX_TEMP, "open queue/lock/trigger") ;
  return fd ;
}

static void free_all (void)
{
  size_t n = genalloc_len(struct msg, &msgs) ;
  for (size_t i = 0 ; i < n ; i++) if (M(i)->inuse) msg_free(i) ;
  genalloc_free(struct msg, &msgs) ;
  genalloc_free(uint32_t, &freemsgs) ;
  genalloc_free(uint32_t, &ready) ;
  genalloc_free(struct heapent, &retries) ;
  genalloc_free(struct job, &jobs) ;
  genalloc_free(struct bouncing, &bounces) ;
  size_t nd = genalloc_len(struct dom, &doms) ;
  for (size_t k = 0 ; k < nd ; k++) { stralloc_free(&D(k)->why) ; genalloc_free(struct domwait, &D(k)->queue) ; }
  genalloc_free(struct dom, &doms) ;
  stralloc_free(&domnames) ;
  genalloc_free(uint32_t, &domhash) ;
  genalloc_free(uint32_t, &domlist) ;
  size_t nr = genalloc_len(struct rjob, &rjobs) ;
  for (size_t k = 0 ; k < nr ; k++) genalloc_free(size_t, &genalloc_s(struct rjob, &rjobs)[k].rcpts) ;
  genalloc_free(struct rjob, &rjobs) ;
  for (size_t k = rrecshead ; k < genalloc_len(struct rout, &rrecs) ; k++)
    if (genalloc_s(struct rout, &rrecs)[k].fd >= 0) fd_close(genalloc_s(struct rout, &rrecs)[k].fd) ;
  genalloc_free(struct rout, &rrecs) ;
  stralloc_free(&rbuf) ;
  spawn_decoder_free(&rin) ;
  stralloc_free(&out) ;
  spawn_decoder_free(&in) ;
  stralloc_free(&queueprog) ;
  stralloc_free(&me) ;
  stralloc_free(&locals) ;
  scan_close(&dirs) ;
}

int main (int argc, char const *const *argv)
{
  char const *uidopt = 0, *gidopt = 0, *ropt = 0 ;
  stralloc sa = STRALLOC_ZERO ;
  struct stat qst ;
  {
    subgetopt l = SUBGETOPT_ZERO ;
    for (;;)
    {
      int opt = subgetopt_r(argc, argv, "u:g:R:", &l) ;
      if (opt == -1) break ;
      switch (opt)
      {
        case 'u' : uidopt = l.arg ; break ;
        case 'g' : gidopt = l.arg ; break ;
        case 'R' : ropt = l.arg ; break ;
        default : strerr_dieusage(EX_PERM, USAGE) ;
      }
    }
  }
  if (!fd_ensure_open(2, 1)) _exit(EX_TEMP) ;
  if (!yubin_path(&sa, "queue")) dienomem() ;
  int qfd = open(sa.s, O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (qfd < 0 || fstat(qfd, &qst) < 0) strerr_diefu2sys(EX_TEMP, "open ", sa.s) ;
  stralloc_free(&sa) ;
  if (!yubin_sibling(&queueprog, "yubin-queue")) strerr_diefu1sys(EX_TEMP, "find yubin-queue") ;

  /* Started as root, lspawn is forked first: it must stay root.  The
     layout is made after the drop, so that it belongs to the queue user. */
  spawn_lspawn() ;
  spawn_rspawn(ropt, &qst) ;
  if (!geteuid()) drop_privileges(uidopt, gidopt, &qst) ;
  umask(077) ;
  scan_open(&dirs, qfd) ;
  int trigfd = open_trigger(qfd) ;
  {
    /* one manager per queue: a second one would deliver everything twice */
    lockfd = openat(qfd, "lock/qmgr", O_RDWR | O_CREAT | O_CLOEXEC, 0600) ;
    if (lockfd < 0) strerr_diefu1sys(EX_TEMP, "open queue/lock/qmgr") ;
    int r = fd_lock(lockfd, 1, 1) ;
    if (r < 0) strerr_diefu1sys(EX_TEMP, "lock queue/lock/qmgr") ;
    if (!r) strerr_dief1x(EX_TEMP, "another yubin-qmgr is running on this queue") ;
  }

  if (sig_ignore(SIGPIPE) < 0) strerr_diefu1sys(EX_TEMP, "ignore SIGPIPE") ;
  int spfd = sigtrap_init((int const []){ SIGCHLD, SIGTERM, SIGHUP, SIGALRM, 0 }) ;
  read_control() ;
  now = clock_ms() ;
  scan_clean(&dirs, (time_t)(now / 1000), STALE_SEC) ;
  scan_start(&dirs) ;
  {
    char a[UINT64_FMT], b[UINT64_FMT] ;
    char c[UINT64_FMT], d[UINT64_FMT] ;
    ylog("start", "uid", fmtu(a, geteuid()), "concurrency", fmtu(b, conc), "remote", rsock >= 0 ? "on" : "off",
         "concurrencyremote", fmtu(c, rconc), "concurrencyremotedomain", fmtu(d, domconc), (char *)0) ;
  }

  uint64_t nextwake = now + WAKE_MS, nextclean = now + CLEAN_MS, termdeadline = 0 ;
  tain_now_set_stopwatch_g() ;
  for (;;)
  {
    now = clock_ms() ;
    if (now >= nextwake) { dirs.wanted = 1 ; nextwake = now + WAKE_MS ; }
    if (now >= nextclean) { scan_clean(&dirs, (time_t)(now / 1000), STALE_SEC) ; nextclean = now + CLEAN_MS ; }
    if (!stopping)
    {
      retries_due(0) ;
      dispatch() ;     /* free slots first, */
      /* then a bounded bite of new mail (so that a flood never keeps
         deliveries from starting), */
      if (ready_len() < READY_MAX) scan_intake(&dirs, INTAKE_BATCH, &load) ;
      dispatch() ;     /* which may start at once */
      if (genalloc_len(uint32_t, &domlist)) rdispatch() ;
      ready_compact() ;
    }
    if (rrecshead < genalloc_len(struct rout, &rrecs)) rflush() ;
    if (out.len)
    {
      ssize_t w = write(reqfd, out.s, out.len) ;
      if (w < 0 && errno != EAGAIN && errno != EINTR) strerr_diefu1sys(EX_TEMP, "write to yubin-lspawn") ;
      if (w > 0) { memmove(out.s, out.s + w, out.len - w) ; out.len -= w ; }
    }
    if (stopping && ((!njobs && !nrjobs && !genalloc_len(struct bouncing, &bounces)) || now >= termdeadline)) break ;

    uint64_t wake = nextwake < nextclean ? nextwake : nextclean ;
    if (stopping) wake = termdeadline ;
    else
    {
      struct heapent const *top = heap_top(&retries) ;
      if (top && (uint64_t)top->when < wake) wake = top->when ;
      if (scan_pending(&dirs) && ready_len() < READY_MAX) wake = now ;
    }
    tain deadline ;
    tain_now_g() ;
    tain_from_millisecs(&deadline, wake > now ? (int)(wake - now) : 0) ;
    tain_add_g(&deadline, &deadline) ;
    iopause_fd x[5] = {
      { .fd = spfd, .events = IOPAUSE_READ },
      { .fd = trigfd, .events = IOPAUSE_READ },
      { .fd = resfd, .events = IOPAUSE_READ },
      { .fd = out.len ? reqfd : -1, .events = IOPAUSE_WRITE },
      { .fd = rsock, .events = IOPAUSE_READ | (rrecshead < genalloc_len(struct rout, &rrecs) ? IOPAUSE_WRITE : 0) },
    } ;
    int r = iopause_g(x, rsock >= 0 ? 5 : 4, &deadline) ;
    if (r < 0)
    {
      if (errno == EINTR) continue ;
      strerr_diefu1sys(EX_TEMP, "iopause") ;
    }
    now = clock_ms() ;
    if (x[2].revents)
    {
      ssize_t rr = spawn_fill(&in, resfd, 8192) ;
      if (!rr) strerr_dief1x(EX_TEMP, "yubin-lspawn closed its output") ;
      if (rr < 0 && errno != EAGAIN && errno != EINTR) strerr_diefu1sys(EX_TEMP, "read from yubin-lspawn") ;
      if (rr > 0) results() ;
    }
    if (rsock >= 0 && (x[4].revents & IOPAUSE_READ))
    {
      ssize_t rr = spawn_fill(&rin, rsock, 8192) ;
      if (!rr) strerr_dief1x(EX_TEMP, "yubin-rspawn closed its socket") ;
      if (rr < 0 && errno != EAGAIN && errno != EINTR) strerr_diefu1sys(EX_TEMP, "read from yubin-rspawn") ;
      if (rr > 0) rresults() ;
    }
    if (x[1].revents & IOPAUSE_READ)
    {
      char buf[512] ;
      while (read(trigfd, buf, sizeof(buf)) > 0) ;
      dirs.wanted = 1 ;
    }
    if (x[0].revents & IOPAUSE_READ)
    {
      for (;;)
      {
        int sig = selfpipe_read() ;
        if (sig < 0) strerr_diefu1sys(EX_TEMP, "read selfpipe") ;
        if (!sig) break ;
        switch (sig)
        {
          case SIGCHLD : reap() ; break ;
          case SIGTERM :
            if (!stopping)
            {
              stopping = 1 ;
              termdeadline = now + TERM_MS ;
              ylog("stop", "running", fmtu((char [UINT64_FMT]){ 0 }, njobs), (char *)0) ;
            }
            break ;
          case SIGHUP : read_control() ; dirs.wanted = 1 ; break ;
          case SIGALRM :
          {
            /* qmail's svc -a: every deferred recipient now, back-offs too */
            size_t nd = genalloc_len(struct dom, &doms) ;
            for (size_t k = 0 ; k < nd ; k++) { D(k)->until = 0 ; D(k)->fails = 0 ; }
            ylog("retry-all", "queued", fmtu((char [UINT64_FMT]){ 0 }, heap_len(&retries)), (char *)0) ;
            retries_due(1) ;
            dirs.wanted = 1 ;
            break ;
          }
          default : break ;
        }
      }
    }
  }
  ylog("exit", "running", fmtu((char [UINT64_FMT]){ 0 }, njobs + nrjobs), (char *)0) ;
  if (rsock >= 0) fd_close(rsock) ;
  fd_close(reqfd) ;
  fd_close(resfd) ;
  free_all() ;
  return 0 ;
}
