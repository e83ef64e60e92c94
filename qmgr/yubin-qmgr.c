/* yubin-qmgr: the queue manager.  Takes messages from queue/new/, runs
 * their local deliveries through yubin-lspawn, records each recipient's
 * outcome in place, retries, bounces.  All its state is in the queue
 * directory: kill -9 at any instant loses nothing.  See yubin-qmgr(8) and
 * qmgr/README.  Its modules: scan.c (the queue directories: intake and
 * cleaning), spawnproto.c (the records to and from yubin-lspawn),
 * bounce.c (the failure notice), queue.c (the file format); the retry
 * heap is common/heap.c; the remote channel is remotechan.c (recipients
 * outside control/locals, grouped by domain for yubin-rspawn), and the
 * message table the two channels share is in qmgr.h. */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
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
#include "rewrite.h"
#include "root.h"
#include "ylog.h"
#include "qmgr/bounce.h"
#include "qmgr/qmgr.h"
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
#define BATCH_LOOKAHEAD 256    /* ready messages searched for more of a batch */

char const *PROG = "qmgr" ;

/* A delivery slot: a batch of up to SPAWN_BATCHMAX messages for one local
 * address at yubin-lspawn, answered in order (done: results so far). */
struct item { uint32_t m ; size_t r ; } ;
struct job { struct item it[SPAWN_BATCHMAX] ; unsigned int n ; unsigned int done ; int busy ; } ;

struct bouncing { pid_t pid ; uint32_t m ; uint32_t gen ; } ;   /* a bounce child */

genalloc msgs = GENALLOC_ZERO ;      /* struct msg */
static genalloc freemsgs = GENALLOC_ZERO ;  /* uint32_t */
static genalloc ready = GENALLOC_ZERO ;     /* uint32_t, FIFO from readyhead */
static size_t readyhead = 0 ;
static genalloc retries = GENALLOC_ZERO ;   /* struct heapent (common/heap.h): idx is the msg */
static genalloc jobs = GENALLOC_ZERO ;      /* struct job */
static unsigned int njobs = 0 ;
static genalloc bounces = GENALLOC_ZERO ;   /* struct bouncing */

struct scan dirs ;                   /* queue/ and its directories */
static int reqfd, resfd ;
static int lockfd = -1 ;
static pid_t lspawnpid ;
static stralloc out = STRALLOC_ZERO ;       /* requests not yet written */
static struct spawn_decoder in = SPAWN_DECODER(SPAWN_RECORDMAX, SPAWN_ONE) ;   /* results */
static stralloc queueprog = STRALLOC_ZERO ;

static unsigned long conc = 10 ;
static unsigned long lifetime = 604800 ;
unsigned long retrybase = 60 ;
unsigned long retrymax = 3600 ;
static unsigned long bouncemax = 50000 ;
static stralloc me = STRALLOC_ZERO ;
static stralloc locals = STRALLOC_ZERO ;
static stralloc envnoathost = STRALLOC_ZERO ;
static stralloc percenthack = STRALLOC_ZERO ;
static stralloc vdoms = STRALLOC_ZERO ;      /* control/virtualdomains */
static stralloc lspawnrcpt = STRALLOC_ZERO ; /* scratch: a virtual recipient as lspawn gets it */

int stopping = 0 ;
uint64_t now ;    /* milliseconds since the epoch */

void dienomem (void)
{
  strerr_dief1x(EX_TEMP, "out of memory") ;
}

static uint64_t clock_ms (void)
{
  struct timespec ts ;
  if (clock_gettime(CLOCK_REALTIME, &ts) < 0) strerr_diefu1sys(EX_TEMP, "read the clock") ;
  return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 ;
}

char const *fmtu (char *buf, uint64_t u)
{
  buf[uint64_fmt(buf, u)] = 0 ;
  return buf ;
}

void logerr (char const *op, char const *id)
{
  ylog("error", "op", op, "id", id, "errno", strerror(errno), (char *)0) ;
}

/* ---- configuration ---- */

void readulong (unsigned long *u, char const *name, unsigned long def)
{
  if (control_readulong(u, name, def) < 0) strerr_diefu2sys(EX_TEMP, "read control/", name) ;
}

static void read_control (void)
{
  readulong(&conc, "concurrencylocal", 10) ;
  if (!conc) conc = 1 ;
  if (conc > CONC_MAX) conc = CONC_MAX ;
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
  if (control_readline(&envnoathost, "envnoathost", me.s) < 0) strerr_diefu1sys(EX_TEMP, "read control/envnoathost") ;
  if (control_readlist(&percenthack, "percenthack") < 0) strerr_diefu1sys(EX_TEMP, "read control/percenthack") ;
  if (control_readlist(&vdoms, "virtualdomains") < 0) strerr_diefu1sys(EX_TEMP, "read control/virtualdomains") ;
  if (!genalloc_ready(struct job, &jobs, conc)) dienomem() ;
  for (size_t i = genalloc_len(struct job, &jobs) ; i < conc ; i++)
    genalloc_s(struct job, &jobs)[i].busy = 0 ;
  if (genalloc_len(struct job, &jobs) < conc) genalloc_setlen(struct job, &jobs, conc) ;
  remote_read_control(CONC_MAX) ;
}

static int is_local (char const *addr)
{
  size_t len = strlen(addr) ;
  size_t at = byte_rchr(addr, len, '@') ;
  if (at == len) return 1 ;
  return control_domain_in_list(locals.s, locals.len, addr + at + 1) ;
}

/* As qmail-send: an address of control/virtualdomains is local, and
 * yubin-lspawn gets it as "prefix-user@domain" (qmail-send(8)).  Returns
 * the address lspawn gets: addr, or lspawnrcpt when virtual. */
static char const *lspawn_address (char const *addr)
{
  char const *prefix ;
  size_t plen, len = strlen(addr) ;
  if (is_local(addr) || !rewrite_vdomain(vdoms.s, vdoms.len, addr, len, &prefix, &plen)) return addr ;
  if (!rewrite_vdomain_local(&lspawnrcpt, prefix, plen, addr, len)) dienomem() ;
  return lspawnrcpt.s ;
}

/* Local (a local domain or a virtual one), else remote. */
static int is_delivered_here (char const *addr)
{
  char const *prefix ;
  size_t plen ;
  return is_local(addr) || rewrite_vdomain(vdoms.s, vdoms.len, addr, strlen(addr), &prefix, &plen) ;
}

/* qmail-send's rewriting of recipient pos of m: control/envnoathost for
 * an address without '@', then control/percenthack.  A changed address
 * goes after the envelope's end in m->env; returns its offset, or the
 * original one. */
static size_t rewrite_rcpt (struct msg *m, size_t pos)
{
  static stralloc a = STRALLOC_ZERO ;
  size_t len = strlen(m->env.s + pos) ;
  if (!stralloc_copyb(&a, m->env.s + pos, len + 1)) dienomem() ;
  a.len = len ;
  int r = rewrite_noat(&a, envnoathost.s) ;
  if (r < 0) dienomem() ;
  if (rewrite_percent(percenthack.s, percenthack.len, &a)) r = 1 ;
  if (!r) return pos ;
  size_t at = m->env.len ;
  if (!stralloc_catb(&m->env, a.s, a.len + 1)) dienomem() ;
  return at ;
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

/* Record when the pending recipients of m will be tried again (seconds),
 * in the message file's retry record (queue.h): so that yubin-qread can
 * show it and a restarted qmgr keeps to it.  Written only when a message
 * is deferred, never synced (lost in a crash: the message is tried at
 * start, as without the record); a message delivered at the first
 * attempt never pays for it. */
static void set_next (struct msg *m, uint64_t sec)
{
  char buf[QUEUE_NEXTLEN] ;
  if (!m->h.nextok || m->h.next == sec) return ;
  queue_next_fmt(buf, sec) ;
  int fd = openat(dirs.curfd, m->id, O_WRONLY | O_NOFOLLOW | O_CLOEXEC) ;
  if (fd < 0 || pwrite(fd, buf, QUEUE_NEXTLEN, QUEUE_NEXTOFF) != QUEUE_NEXTLEN) logerr("record retry", m->id) ;
  else m->h.next = sec ;
  if (fd >= 0) fd_close(fd) ;
}

/* A finished message's file back to yubin-queued's pool as new/.r<ID>,
 * while the pool takes them (queue_pool_taking): the inode is reused for
 * a later message instead of freed now and allocated again (on ext4
 * without a journal, every allocation searches past the inodes freed in
 * the last minutes).  No sync, as an unlink: the file is found as cur/ID
 * again after a crash (delivered, checked, not duplicated) or as a
 * .r file that is never a message.  Returns 1 if it was given back. */
static int recycle (struct msg const *m)
{
  char name[2 + QUEUE_IDMAX] ;
  if (m->h.envfile || !queue_pool_taking(dirs.qfd)) return 0 ;
  memcpy(name, QUEUE_RECYCLEPREFIX, 2) ;
  memcpy(name + 2, m->id, strlen(m->id) + 1) ;
  return renameat(dirs.curfd, m->id, dirs.newfd, name) == 0 ;
}

/* The message is finished: remove it.  No fsync (see README: the
 * duplicate window), except between the two unlinks of a message with an
 * env/ file, so that env/ID never goes before cur/ID. */
static void msg_remove (uint32_t i)
{
  struct msg *m = M(i) ;
  if (recycle(m)) return ;
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
void round_end (uint32_t i)
{
  struct msg *m = M(i) ;
  if (!m->npending) { finish(i) ; return ; }
  uint64_t when = next_retry(m) ;
  char fmt[UINT64_FMT] ;
  ylog("retry", "id", m->id, "in", fmtu(fmt, (when - now + 999) / 1000), (char *)0) ;
  retry_at(when, i) ;
  set_next(m, (when + 999) / 1000) ;
}

void deliver_temp (struct msg *m, struct rcpt *r, char const *code, char const *text)
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
void outcome (uint32_t i, size_t k, unsigned int code, char const *text)
{
  char codes[UINT_FMT] ;
  codes[uint_fmt(codes, code)] = 0 ;
  struct msg *m = M(i) ;
  struct rcpt *r = RCPTS(m) + k ;
  r->flags &= ~R_INFLIGHT ;
  m->ninflight-- ;
  /* a temporary failure may have left a Maildir copy (a killed child, a
     second .qmail line that failed): the next attempt looks for it */
  if (code && code != EX_PERM) r->flags |= R_CHECK ;
  else r->flags &= ~R_CHECK ;
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
  struct item it = jb->it[jb->done++] ;
  if (jb->done == jb->n)
  {
    jb->busy = 0 ;
    njobs-- ;
  }
  outcome(it.m, it.r, res->code, res->text) ;
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

/* ---- dispatching ---- */

/* Recipient k of message i into job jb's batch. */
static void job_add (struct job *jb, struct spawn_delivery *ds, uint32_t i, size_t k)
{
  struct msg *m = M(i) ;
  struct rcpt *r = RCPTS(m) + k ;
  jb->it[jb->n].m = i ;
  jb->it[jb->n].r = k ;
  ds[jb->n].msgid = m->id ;
  ds[jb->n].msgoff = m->h.msgoff ;
  ds[jb->n].sender = m->env.s + 1 ;
  ds[jb->n].rcptno = k ;
  ds[jb->n].check = !!(r->flags & R_CHECK) ;
  jb->n++ ;
  m->ninflight++ ;
  r->flags |= R_INFLIGHT ;
}

/* Start a delivery slot with recipient k of message i, and with the
 * recipients of the same address in the next BATCH_LOOKAHEAD messages of
 * the ready queue (they stay in it, in flight: their turn skips them):
 * one child of yubin-lspawn delivers them in a row, with one fsync of
 * the Maildir's new/. */
static void job_start (uint32_t i, size_t k)
{
  struct job *jb = genalloc_s(struct job, &jobs) ;
  uint32_t j = 0 ;
  while (jb[j].busy) j++ ;   /* njobs < conc: there is a free slot below conc */
  jb += j ;
  struct spawn_delivery ds[SPAWN_BATCHMAX] ;
  jb->busy = 1 ;
  jb->n = jb->done = 0 ;
  njobs++ ;
  job_add(jb, ds, i, k) ;
  char const *addr = ADDR(M(i), RCPTS(M(i)) + k) ;
  size_t len = genalloc_len(uint32_t, &ready) ;
  uint32_t const *q = genalloc_s(uint32_t, &ready) ;
  for (size_t h = readyhead + 1 ; h < len && h <= readyhead + BATCH_LOOKAHEAD && jb->n < SPAWN_BATCHMAX ; h++)
  {
    struct msg *m = M(q[h]) ;
    if (q[h] == i) continue ;
    size_t n = NRCPTS(m) ;
    for (size_t k2 = m->cursor ; k2 < n && jb->n < SPAWN_BATCHMAX ; k2++)
    {
      struct rcpt *r = RCPTS(m) + k2 ;
      if (r->state != QUEUE_TODO || !(r->flags & R_LOCAL) || (r->flags & (R_INFLIGHT | R_QUEUED))) continue ;
      if (strcmp(ADDR(m, r), addr)) continue ;
      job_add(jb, ds, q[h], k2) ;
    }
  }
  char a[UINT32_FMT] ;
  a[uint32_fmt(a, j)] = 0 ;
  if (!spawn_batch_put(&out, a, lspawn_address(addr), ds, jb->n)) strerr_diefu1sys(EX_TEMP, "encode a request") ;
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
    rc.addr = rewrite_rcpt(m, pos + 1) ;
    m = M(i) ;
    if (is_delivered_here(ADDR(m, &rc)))
    {
      rc.flags |= R_LOCAL ;
      /* found in cur/ at start: a delivery may have been in flight */
      if (recovered && rc.state == QUEUE_TODO) rc.flags |= R_CHECK ;
    }
    else if (rc.state == QUEUE_TODO) rc.dom = remote_dest(ADDR(m, &rc)) ;
    if (!genalloc_append(struct rcpt, &m->rcpts, &rc)) dienomem() ;
    if (rc.state == QUEUE_TODO) m->npending++ ;
    else if (rc.state == QUEUE_FAILED)
      add_failure(m, &rc, "Permanent failure (recorded before a restart of yubin-qmgr).") ;
    pos += strlen(m->env.s + pos) + 1 ;
  }
  char a[UINT64_FMT], b[UINT64_FMT], c[UINT64_FMT], u[UINT64_FMT] ;
  /* deferred before a restart: keep to the recorded time (at most
     retrymax away, should the clock have gone back or retrymax down) */
  uint64_t wait = 0 ;
  if (m->npending && m->h.next && m->h.next * 1000 > now)
  {
    uint64_t when = m->h.next * 1000 ;
    if (when > now + retrymax * 1000) when = now + retrymax * 1000 ;
    wait = when - now ;
  }
  if (recovered)
    ylog("recover", "id", id, "from", m->env.s + 1, "rcpts", fmtu(a, NRCPTS(m)),
         "pending", fmtu(b, m->npending), wait ? "retry-in" : (char *)0, fmtu(c, (wait + 999) / 1000), (char *)0) ;
  else
    ylog("new", "id", id, "from", m->env.s + 1, "rcpts", fmtu(a, NRCPTS(m)),
         "bytes", fmtu(c, m->h.size), "uid", fmtu(u, m->h.uid), (char *)0) ;
  if (!m->npending) finish(i) ;
  else if (wait) retry_at(now + wait, i) ;
  else ready_push(i) ;
}

/* ---- bounces ---- */

/* The bounce child: feeds the failure notice to yubin-queue with a null
 * sender (qmgr/bounce.c).  Exits with yubin-queue's code.  Never returns. */
static void bounce_child (uint32_t i)
{
  struct msg *m = M(i) ;
  selfpipe_finish() ;
  fd_close(reqfd) ; fd_close(resfd) ;
  remote_close_in_child() ;
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
    if (remote_pid() && pid == remote_pid()) strerr_dief1x(EX_TEMP, "yubin-rspawn exited") ;
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
  remote_free() ;
  stralloc_free(&out) ;
  spawn_decoder_free(&in) ;
  stralloc_free(&queueprog) ;
  stralloc_free(&me) ;
  stralloc_free(&locals) ;
  stralloc_free(&envnoathost) ;
  stralloc_free(&percenthack) ;
  stralloc_free(&vdoms) ;
  stralloc_free(&lspawnrcpt) ;
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
  remote_start(ropt, &qst) ;
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

  if (!sig_ignore(SIGPIPE)) strerr_diefu1sys(EX_TEMP, "ignore SIGPIPE") ;
  int spfd = sigtrap_init((int const []){ SIGCHLD, SIGTERM, SIGHUP, SIGALRM, 0 }) ;
  read_control() ;
  now = clock_ms() ;
  scan_clean(&dirs, (time_t)(now / 1000), STALE_SEC) ;
  scan_start(&dirs) ;
  {
    char a[UINT64_FMT], b[UINT64_FMT] ;
    char c[UINT64_FMT], d[UINT64_FMT] ;
    unsigned long rc, dc ;
    remote_concurrency(&rc, &dc) ;
    ylog("start", "uid", fmtu(a, geteuid()), "concurrency", fmtu(b, conc), "remote", remote_fd() >= 0 ? "on" : "off",
         "concurrencyremote", fmtu(c, rc), "concurrencyremotedomain", fmtu(d, dc), (char *)0) ;
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
      remote_dispatch() ;
      ready_compact() ;
    }
    remote_flush() ;
    if (out.len)
    {
      ssize_t w = write(reqfd, out.s, out.len) ;
      if (w < 0 && errno != EAGAIN && errno != EINTR) strerr_diefu1sys(EX_TEMP, "write to yubin-lspawn") ;
      if (w > 0) { memmove(out.s, out.s + w, out.len - w) ; out.len -= w ; }
    }
    if (stopping && ((!njobs && !remote_running() && !genalloc_len(struct bouncing, &bounces)) || now >= termdeadline)) break ;

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
      { .fd = remote_fd(), .events = IOPAUSE_READ | (remote_wants_write() ? IOPAUSE_WRITE : 0) },
    } ;
    int r = iopause_g(x, remote_fd() >= 0 ? 5 : 4, &deadline) ;
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
    if (remote_fd() >= 0 && (x[4].revents & IOPAUSE_READ)) remote_read() ;
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
            remote_backoffs_clear() ;
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
  ylog("exit", "running", fmtu((char [UINT64_FMT]){ 0 }, njobs + remote_running()), (char *)0) ;
  remote_close() ;
  fd_close(reqfd) ;
  fd_close(resfd) ;
  free_all() ;
  return 0 ;
}
