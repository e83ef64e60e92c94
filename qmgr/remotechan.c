/* yubin-qmgr's remote channel: the recipients outside control/locals,
 * grouped by domain into jobs for yubin-rspawn (qmgr/README, "The remote
 * channel").  Each message goes to yubin-rspawn as an open read-only fd
 * with its request (spawnproto's fd passing), so the spawner, which reads
 * the network, has no access to the queue.  A domain has its own slots
 * (control/concurrencyremotedomain, within concurrencyremote) and its own
 * back-off: when a job cannot reach it, the domain waits as a whole. */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include <skalibs/bytestr.h>
#include <skalibs/djbunix.h>
#include <skalibs/genalloc.h>
#include <skalibs/setgroups.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/types.h>

#include "exitcodes.h"
#include "root.h"
#include "ylog.h"
#include "qmgr/qmgr.h"
#include "qmgr/spawnproto.h"

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
uint32_t remote_dest (char const *addr)
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
void remote_dispatch (void)
{
  if (!genalloc_len(uint32_t, &domlist)) return ;
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
void remote_flush (void)
{
  if (rrecshead >= genalloc_len(struct rout, &rrecs)) return ;
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
void remote_take (uint32_t i)
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

void remote_read_control (unsigned long max)
{
  readulong(&rconc, "concurrencyremote", 20) ;
  if (!rconc) rconc = 1 ;
  if (rconc > max) rconc = max ;
  readulong(&domconc, "concurrencyremotedomain", 5) ;
  if (!domconc) domconc = 1 ;
  if (!genalloc_ready(struct rjob, &rjobs, rconc)) dienomem() ;
  for (size_t i = genalloc_len(struct rjob, &rjobs) ; i < rconc ; i++)
  {
    struct rjob *rj = genalloc_s(struct rjob, &rjobs) + i ;
    rj->busy = 0 ;
    rj->rcpts = (genalloc)GENALLOC_ZERO ;
  }
  if (genalloc_len(struct rjob, &rjobs) < rconc) genalloc_setlen(struct rjob, &rjobs, rconc) ;
}

void remote_concurrency (unsigned long *total, unsigned long *perdomain)
{
  *total = rconc ;
  *perdomain = domconc ;
}

int remote_fd (void)
{
  return rsock ;
}

int remote_wants_write (void)
{
  return rrecshead < genalloc_len(struct rout, &rrecs) ;
}

void remote_read (void)
{
  ssize_t rr = spawn_fill(&rin, rsock, 8192) ;
  if (!rr) strerr_dief1x(EX_TEMP, "yubin-rspawn closed its socket") ;
  if (rr < 0 && errno != EAGAIN && errno != EINTR) strerr_diefu1sys(EX_TEMP, "read from yubin-rspawn") ;
  if (rr > 0) rresults() ;
}

unsigned int remote_running (void)
{
  return nrjobs ;
}

pid_t remote_pid (void)
{
  return rspawnpid ;
}

/* qmail's svc -a: no destination waits any more */
void remote_backoffs_clear (void)
{
  size_t nd = genalloc_len(struct dom, &doms) ;
  for (size_t k = 0 ; k < nd ; k++) { D(k)->until = 0 ; D(k)->fails = 0 ; }
}

void remote_close_in_child (void)
{
  if (rsock >= 0) fd_close(rsock) ;
}

void remote_close (void)
{
  if (rsock >= 0) fd_close(rsock) ;
  rsock = -1 ;
}

void remote_free (void)
{
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
}

void remote_start (char const *ropt, struct stat const *qst)
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

