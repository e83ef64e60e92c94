/* yubin-rspawn: runs remote deliveries for yubin-qmgr.  Never root, never
 * the queue user: it talks to the network, and it never opens the queue
 * (each request comes with the message file's fd, passed by qmgr).
 *
 * fd 0 and fd 1: one unix socket to qmgr.  Requests: spawnproto SPAWN_LIST
 * records (the recipients of one message at one domain), each with the
 * message's fd attached; results: one record per recipient, in the order
 * of the request.
 *
 * Connection reuse: a worker process per open SMTP session (forked, no
 * exec: it calls route_lookup, smtpc_open and smtpc_send in-process).  A
 * job for a domain goes to an idle worker of that domain if there is one,
 * else it waits for a busy one, unless more than WAIT_PER_SESSION jobs per
 * open session wait for the domain: then another session is opened.  A
 * worker is closed after control/remotesessionidle seconds without a job
 * (default 5), after control/remotesessionmax messages (default 100), or
 * when its session dies.  After each job a worker writes one more record,
 * jobid "+", code 0 if its session can carry another message, 111 if it
 * is closing.  See yubin-rspawn(8). */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/bytestr.h>
#include <skalibs/djbunix.h>
#include <skalibs/genalloc.h>
#include <skalibs/iopause.h>
#include <skalibs/selfpipe.h>
#include <skalibs/sig.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/tai.h>
#include <skalibs/types.h>

#include "control.h"
#include "exitcodes.h"
#include "sigtrap.h"
#include "ylog.h"
#include "qmgr/spawnproto.h"
#include "remote/dns.h"
#include "remote/route.h"
#include "remote/smtpc.h"

char const *PROG = "rspawn" ;

#define WAIT_PER_SESSION 2
#define DOMAINMAX 255
#define STATUS_JOBID "+"

struct wjob           /* a request from qmgr waiting for a worker */
{
  stralloc rec ;      /* the request record, re-encoded for the worker */
  char jobid[SPAWN_JOBIDMAX + 1] ;
  char domain[DOMAINMAX + 1] ;
  int fd ;            /* the message file */
  size_t nrcpts ;
} ;

struct worker
{
  pid_t pid ;
  int fd ;            /* socket to the worker */
  char domain[DOMAINMAX + 1] ;
  int busy ;
  char jobid[SPAWN_JOBIDMAX + 1] ;
  size_t nrcpts, nres ;
  unsigned long njobs ;
  tain idle ;         /* idle since */
  struct spawn_decoder in ;
  stralloc destwhy ;  /* its job could not reach the destination: why */
} ;

static genalloc waiting = GENALLOC_ZERO ;   /* struct wjob, FIFO */
static genalloc workers = GENALLOC_ZERO ;   /* struct worker */
static unsigned long conc = 20 ;
static unsigned long sessionidle = 5 ;
static unsigned long sessionmax = 100 ;
static struct smtpc_conf conf ;
static stralloc me = STRALLOC_ZERO ;
static stralloc helohost = STRALLOC_ZERO ;
static stralloc outgoingip = STRALLOC_ZERO ;

#define W(i) (genalloc_s(struct worker, &workers) + (i))
#define NW genalloc_len(struct worker, &workers)
#define J(i) (genalloc_s(struct wjob, &waiting) + (i))
#define NJ genalloc_len(struct wjob, &waiting)

static void dienomem (void)
{
  strerr_dief1x(EX_TEMP, "out of memory") ;
}

/* One result record, blocking: the reader always reads. */
static void result_write (int fd, char const *jobid, unsigned int code, char const *text)
{
  stralloc sa = STRALLOC_ZERO ;
  if (!spawn_result_put(&sa, jobid, code, text, strlen(text))) strerr_diefu1sys(EX_TEMP, "encode a result") ;
  if (allwrite(fd, sa.s, sa.len) < sa.len) strerr_diefu1sys(EX_TEMP, "write a result") ;
  stralloc_free(&sa) ;
}

/* The whole record, the fd with its first byte.  Blocking. */
static int send_with_fd (int sock, char const *s, size_t len, int passfd)
{
  ssize_t w ;
  do w = spawn_sendfd(sock, s, len, passfd) ;
  while (w < 0 && errno == EINTR) ;
  if (w < 0) return 0 ;
  return allwrite(sock, s + w, len - w) == len - (size_t)w ;
}

/* ---- configuration ---- */

static void readulong (unsigned long *u, char const *name, unsigned long def)
{
  if (control_readulong(u, name, def) < 0) strerr_diefu2sys(EX_TEMP, "read control/", name) ;
}

static void readline (stralloc *sa, char const *name, char const *def)
{
  if (control_readline(sa, name, def) < 0) strerr_diefu2sys(EX_TEMP, "read control/", name) ;
}

static void read_control (void)
{
  unsigned long u ;
  readulong(&conc, "concurrencyremote", 20) ;
  if (!conc) conc = 1 ;
  readulong(&sessionidle, "remotesessionidle", 5) ;
  readulong(&sessionmax, "remotesessionmax", 100) ;
  if (!sessionmax) sessionmax = 1 ;
  readline(&me, "me", 0) ;
  if (!me.len)
  {
    if (!sagethostname(&me) || !stralloc_0(&me)) strerr_diefu1sys(EX_TEMP, "get the host name") ;
    me.len-- ;
  }
  readline(&helohost, "helohost", 0) ;
  readline(&outgoingip, "outgoingip", 0) ;
  conf.helohost = helohost.len ? helohost.s : me.s ;
  readulong(&u, "timeoutconnect", 60) ;
  conf.timeoutconnect = u ? u : 1 ;
  readulong(&u, "timeoutremote", 1200) ;
  conf.timeoutremote = u ? u : 1 ;
  conf.outgoingip = outgoingip.len ? outgoingip.s : 0 ;
  conf.cafile = 0 ;
}

/* ---- the worker: one SMTP session, jobs one after another ---- */

static void worker_answer_all (int sock, struct spawn_request const *rq, unsigned int code, char const *prefix, char const *why)
{
  stralloc t = STRALLOC_ZERO ;
  if (!stralloc_copys(&t, prefix) || !stralloc_cats(&t, why) || !stralloc_0(&t)) dienomem() ;
  for (size_t i = 0 ; i < rq->nrcpts ; i++) result_write(sock, rq->jobid, code, t.s) ;
  stralloc_free(&t) ;
}

/* res: the outcomes, or NULL when every recipient got code allcode */
static void worker_log (struct spawn_request const *rq, char const *domain, struct smtpc const *c,
                        struct smtpc_result const *res, unsigned int allcode, unsigned long nth, char const *status, char const *why)
{
  size_t n[3] = { 0, 0, 0 } ;
  for (size_t i = 0 ; i < rq->nrcpts ; i++)
  {
    unsigned int code = res ? res[i].code : allcode ;
    n[code == 0 ? 0 : code == EX_PERM ? 2 : 1]++ ;
  }
  char a[SIZE_FMT], b[SIZE_FMT], e[SIZE_FMT], f[SIZE_FMT], g[ULONG_FMT], p[PID_FMT] ;
  a[size_fmt(a, rq->nrcpts)] = 0 ;
  b[size_fmt(b, n[0])] = 0 ;
  e[size_fmt(e, n[1])] = 0 ;
  f[size_fmt(f, n[2])] = 0 ;
  g[ulong_fmt(g, nth)] = 0 ;
  p[pid_fmt(p, getpid())] = 0 ;
  struct smtpc_info i = { .peer = 0, .ip = 0, .tls_version = "", .tls_cipher = "", .tls_verified = "" } ;
  if (c) smtpc_info(c, &i) ;
  if (!why && res && n[0] < rq->nrcpts)
    for (size_t k = 0 ; k < rq->nrcpts ; k++) if (res[k].code) { why = res[k].text ; break ; }
  ylog("delivery", "id", rq->msgid, "domain", domain, "host", i.peer, "ip", i.ip,
       "tls", c ? smtpc_tls_summary(c) : "none", "session", p, "nth", g,
       "rcpts", a, "ok", b, "defer", e, "fail", f, "status", status, "reason", why, (char *)0) ;
}

/* A session to domain, or NULL when the job has been answered (route or
 * connection failure). */
static struct smtpc *worker_open (int sock, struct spawn_request const *rq, struct dns *d, char const *domain,
                                  unsigned long nth, stralloc *why)
{
  struct smtpc *c = 0 ;
  struct route rt = ROUTE_ZERO ;
  tain deadline ;
  tain_now_g() ;
  tain_addsec_g(&deadline, conf.timeoutconnect) ;
  route_lookup(d, domain, &rt, &deadline) ;
  if (rt.status == ROUTE_PERM)
  {
    worker_answer_all(sock, rq, EX_PERM, "", rt.why) ;
    worker_log(rq, domain, 0, 0, EX_PERM, nth, "fail", rt.why) ;
  }
  else if (rt.status != ROUTE_OK || !genalloc_len(struct route_target, &rt.targets))
  {
    char const *w = rt.status == ROUTE_OK ? "no address to try" : rt.why ;
    worker_answer_all(sock, rq, EX_TEMP, SPAWN_DESTFAIL, w) ;
    worker_log(rq, domain, 0, 0, EX_TEMP, nth, "route-defer", w) ;
  }
  else
  {
    why->len = 0 ;
    c = smtpc_open(&conf, d, &rt, domain, smtpc_policy(domain), why) ;
    if (!c)
    {
      if (!stralloc_0(why)) dienomem() ;
      char const *w = why->len > 1 ? why->s : "no server answered" ;
      worker_answer_all(sock, rq, EX_TEMP, SPAWN_DESTFAIL, w) ;
      worker_log(rq, domain, 0, 0, EX_TEMP, nth, "connect-defer", w) ;
    }
    else
    {
      struct smtpc_info i ;
      smtpc_info(c, &i) ;
      ylog("session-open", "domain", domain, "host", i.peer, "ip", i.ip, "level", smtpc_level_name(i.level),
           "tls", smtpc_tls_summary(c), (char *)0) ;
    }
  }
  route_free(&rt) ;
  return c ;
}

static void worker_closesession (struct smtpc *c, char const *domain, unsigned long nth)
{
  smtpc_close(c) ;
  char e[ULONG_FMT] ;
  e[ulong_fmt(e, nth)] = 0 ;
  ylog("session-close", "domain", domain, "messages", e, (char *)0) ;
}

/* Never returns. */
static void worker_main (int sock, char const *domain)
{
  struct spawn_decoder in = SPAWN_DECODER(SPAWN_LISTMAX, SPAWN_LIST) ;
  genalloc fds = GENALLOC_ZERO ;      /* int */
  genalloc res = GENALLOC_ZERO ;      /* struct smtpc_result */
  stralloc why = STRALLOC_ZERO ;
  struct smtpc *c = 0 ;
  unsigned long nth = 0, insession = 0 ;
  int live = 1 ;
  char const *dwhy = 0 ;
  struct dns *d = dns_new(&dwhy) ;

  while (live)
  {
    struct spawn_request rq ;
    int r ;
    while (!(r = spawn_request_next(&in, &rq)))
    {
      ssize_t rr = spawn_fill_fds(&in, sock, 65536, &fds) ;
      if (rr < 0 && errno == EINTR) continue ;
      if (rr < 0) strerr_diefu1sys(EX_TEMP, "read from yubin-rspawn") ;
      if (!rr) goto end ;
    }
    if (r < 0) strerr_dief1x(EX_TEMP, "protocol error: bad request from yubin-rspawn") ;
    size_t nfds = genalloc_len(int, &fds) ;
    if (!nfds) strerr_dief1x(EX_TEMP, "protocol error: a request without its file") ;
    int msgfd = genalloc_s(int, &fds)[0] ;
    memmove(genalloc_s(int, &fds), genalloc_s(int, &fds) + 1, (nfds - 1) * sizeof(int)) ;
    genalloc_setlen(int, &fds, nfds - 1) ;
    nth++ ;
    struct stat st ;
    if (!genalloc_ready(struct smtpc_result, &res, rq.nrcpts)) dienomem() ;
    struct smtpc_result *rs = genalloc_s(struct smtpc_result, &res) ;
    if (!d)
    {
      /* our own trouble, not the destination's: no back-off */
      worker_answer_all(sock, &rq, EX_TEMP, "unable to set up the resolver: ", dwhy ? dwhy : "?") ;
      worker_log(&rq, domain, 0, 0, EX_TEMP, nth, "defer", dwhy) ;
      live = 0 ;
    }
    else if (fstat(msgfd, &st) < 0 || (uint64_t)st.st_size < rq.msgoff)
    {
      worker_answer_all(sock, &rq, EX_TEMP, "", "unable to read the queue file (#4.3.0)") ;
      worker_log(&rq, domain, c, 0, EX_TEMP, nth, "defer", "unable to read the queue file") ;
    }
    else for (int attempt = 0 ; ; attempt++)
    {
      if (!c)
      {
        c = worker_open(sock, &rq, d, domain, nth, &why) ;
        if (!c) { live = 0 ; break ; }
        insession = 0 ;
      }
      struct smtpc_msg m =
      {
        .fd = msgfd, .msgoff = rq.msgoff, .size = (uint64_t)st.st_size - rq.msgoff,
        .sender = rq.sender, .rcpts = rq.rcpts, .nrcpts = rq.nrcpts
      } ;
      for (size_t i = 0 ; i < rq.nrcpts ; i++) { rs[i].code = EX_TEMP ; memcpy(rs[i].text, "no outcome (#4.3.0)", 20) ; }
      int s = smtpc_send(c, &m, rs) ;
      if (s < 0 && !attempt)
      {
        /* a reused session the server had dropped: nothing was sent */
        worker_closesession(c, domain, insession) ;
        c = 0 ;
        continue ;
      }
      insession++ ;
      for (size_t i = 0 ; i < rq.nrcpts ; i++)
      {
        rs[i].text[sizeof(rs[i].text) - 1] = 0 ;
        result_write(sock, rq.jobid, rs[i].code == 0 || rs[i].code == EX_PERM ? rs[i].code : EX_TEMP, rs[i].text) ;
      }
      worker_log(&rq, domain, c, rs, 0, insession, s > 0 ? "sent" : "sent-session-lost", 0) ;
      if (s <= 0) live = 0 ;
      break ;
    }
    fd_close(msgfd) ;
    if (nth >= sessionmax) live = 0 ;
    result_write(sock, STATUS_JOBID, live ? 0 : EX_TEMP, live ? "open" : "closing") ;
  }
 end:
  if (c) worker_closesession(c, domain, insession) ;
  if (d) dns_free(d) ;
  for (size_t i = 0 ; i < genalloc_len(int, &fds) ; i++) fd_close(genalloc_s(int, &fds)[i]) ;
  genalloc_free(int, &fds) ;
  genalloc_free(struct smtpc_result, &res) ;
  stralloc_free(&why) ;
  spawn_decoder_free(&in) ;
  _exit(0) ;
}

/* ---- the spawner: jobs to workers ---- */

static void wjob_free (size_t k)
{
  struct wjob *j = J(k) ;
  stralloc_free(&j->rec) ;
  if (j->fd >= 0) fd_close(j->fd) ;
  size_t n = NJ - 1 ;
  memmove(j, j + 1, (n - k) * sizeof(struct wjob)) ;
  genalloc_setlen(struct wjob, &waiting, n) ;
}

/* Close a worker's socket: it ends its session and exits.  Whatever it
 * still owed is answered as a temporary failure. */
static void worker_drop (size_t k, char const *why)
{
  struct worker *w = W(k) ;
  if (w->busy)
  {
    stralloc t = STRALLOC_ZERO ;
    if (!stralloc_copys(&t, why) || !stralloc_0(&t)) dienomem() ;
    for (; w->nres < w->nrcpts ; w->nres++) result_write(1, w->jobid, EX_TEMP, t.s) ;
    stralloc_free(&t) ;
  }
  fd_close(w->fd) ;
  spawn_decoder_free(&w->in) ;
  stralloc_free(&w->destwhy) ;
  size_t n = NW - 1 ;
  *w = *W(n) ;
  genalloc_setlen(struct worker, &workers, n) ;
}

static void give (size_t wk, size_t jk)
{
  struct worker *w = W(wk) ;
  struct wjob *j = J(jk) ;
  if (!send_with_fd(w->fd, j->rec.s, j->rec.len, j->fd))
  {
    /* the worker is gone (it will be reaped); the job waits for another */
    strerr_warnwu1sys("hand a job to a worker") ;
    w->busy = 0 ;
    worker_drop(wk, "") ;
    return ;
  }
  w->busy = 1 ;
  memcpy(w->jobid, j->jobid, sizeof(w->jobid)) ;
  w->nrcpts = j->nrcpts ;
  w->nres = 0 ;
  wjob_free(jk) ;
}

static void worker_start (char const *domain)
{
  int sv[2] ;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
  {
    strerr_warnwu1sys("make a socket pair") ;
    return ;
  }
  pid_t pid = fork() ;
  if (pid < 0)
  {
    strerr_warnwu1sys("fork") ;
    fd_close(sv[0]) ; fd_close(sv[1]) ;
    return ;
  }
  if (!pid)
  {
    selfpipe_finish() ;
    fd_close(sv[0]) ;
    fd_close(0) ; fd_close(1) ;   /* qmgr must see EOF when rspawn dies */
    for (size_t i = 0 ; i < NW ; i++) fd_close(W(i)->fd) ;
    for (size_t i = 0 ; i < NJ ; i++) fd_close(J(i)->fd) ;
    char dom[DOMAINMAX + 1] ;
    memcpy(dom, domain, sizeof(dom)) ;
    worker_main(sv[1], dom) ;
  }
  fd_close(sv[1]) ;
  struct worker w = { .pid = pid, .fd = sv[0], .busy = 0, .njobs = 0, .in = SPAWN_DECODER(SPAWN_RECORDMAX, SPAWN_ONE), .destwhy = STRALLOC_ZERO } ;
  memcpy(w.domain, domain, sizeof(w.domain)) ;
  tain_copynow(&w.idle) ;
  if (!genalloc_append(struct worker, &workers, &w)) dienomem() ;
}

/* Waiting jobs to workers: an idle session of the domain, else a new
 * session if none is open or too many jobs wait for the open ones. */
static void dispatch (void)
{
  for (size_t jk = 0 ; jk < NJ ;)
  {
    char const *dom = J(jk)->domain ;
    size_t idle = NW, nw = 0, nwait = 0 ;
    for (size_t k = 0 ; k < NW ; k++)
      if (!strcasecmp(W(k)->domain, dom))
      {
        nw++ ;
        if (!W(k)->busy && idle == NW) idle = k ;
      }
    if (idle < NW) { give(idle, jk) ; continue ; }
    for (size_t k = 0 ; k <= jk ; k++) if (!strcasecmp(J(k)->domain, dom)) nwait++ ;
    if (nw && nwait <= WAIT_PER_SESSION * nw) { jk++ ; continue ; }
    if (NW >= conc)
    {
      /* make room: close the session idle the longest */
      size_t old = NW ;
      for (size_t k = 0 ; k < NW ; k++)
        if (!W(k)->busy && (old == NW || tain_less(&W(k)->idle, &W(old)->idle))) old = k ;
      if (old < NW) worker_drop(old, "") ;
      else if (nw) { jk++ ; continue ; }   /* all busy: wait for one of ours */
    }
    size_t before = NW ;
    worker_start(dom) ;
    if (NW == before)
    {
      /* no worker: the job is answered now, qmgr retries it later */
      for (size_t i = 0 ; i < J(jk)->nrcpts ; i++)
        result_write(1, J(jk)->jobid, EX_TEMP, "unable to start a remote worker (#4.3.0)") ;
      wjob_free(jk) ;
    }
  }
}

/* The complete records a worker sent: results go on to qmgr. */
static int worker_results (size_t k)
{
  for (;;)
  {
    struct worker *w = W(k) ;
    struct spawn_result r ;
    int x = spawn_result_next(&w->in, &r) ;
    if (!x) return 1 ;
    if (x < 0) { strerr_warnw1x("protocol error: bad result from a worker") ; worker_drop(k, "remote worker error (#4.3.0)") ; return 0 ; }
    if (!strcmp(r.jobid, STATUS_JOBID))
    {
      if (!w->busy || w->nres != w->nrcpts) { strerr_warnw1x("protocol error: early status from a worker") ; worker_drop(k, "remote worker error (#4.3.0)") ; return 0 ; }
      w->busy = 0 ;
      w->njobs++ ;
      tain_copynow(&w->idle) ;
      if (r.code)
      {
        /* it could not reach the destination: neither would the jobs
           waiting for the same one now; qmgr backs the domain off */
        if (w->destwhy.len)
        {
          if (!stralloc_0(&w->destwhy)) dienomem() ;
          for (size_t jk = 0 ; jk < NJ ;)
          {
            if (strcasecmp(J(jk)->domain, w->domain)) { jk++ ; continue ; }
            for (size_t i = 0 ; i < J(jk)->nrcpts ; i++) result_write(1, J(jk)->jobid, EX_TEMP, W(k)->destwhy.s) ;
            wjob_free(jk) ;
          }
        }
        worker_drop(k, "") ;
        return 0 ;
      }
      continue ;
    }
    if (!w->busy || w->nres >= w->nrcpts || strcmp(r.jobid, w->jobid))
    {
      strerr_warnw1x("protocol error: unexpected result from a worker") ;
      worker_drop(k, "remote worker error (#4.3.0)") ;
      return 0 ;
    }
    result_write(1, r.jobid, r.code, r.text) ;
    if (r.code == EX_TEMP && !strncmp(r.text, SPAWN_DESTFAIL, sizeof(SPAWN_DESTFAIL) - 1))
    {
      if (!stralloc_copys(&w->destwhy, r.text)) dienomem() ;
    }
    else w->destwhy.len = 0 ;
    w->nres++ ;
  }
}

/* A request from qmgr, with its fd. */
static void request (struct spawn_request const *rq, genalloc *fds)
{
  size_t nfds = genalloc_len(int, fds) ;
  if (!nfds) strerr_dief1x(EX_TEMP, "protocol error: a request without its file") ;
  struct wjob j = { .rec = STRALLOC_ZERO, .nrcpts = rq->nrcpts, .fd = genalloc_s(int, fds)[0] } ;
  memmove(genalloc_s(int, fds), genalloc_s(int, fds) + 1, (nfds - 1) * sizeof(int)) ;
  genalloc_setlen(int, fds, nfds - 1) ;
  memcpy(j.jobid, rq->jobid, strlen(rq->jobid) + 1) ;
  /* one domain per job: that of the first recipient, the others must match */
  char const *a = rq->rcpts ;
  size_t al = strlen(a), at = byte_rchr(a, al, '@') ;
  if (at + 1 >= al || al - at - 1 > DOMAINMAX)
  {
    for (size_t i = 0 ; i < rq->nrcpts ; i++) result_write(1, rq->jobid, EX_PERM, "bad recipient domain (#5.1.2)") ;
    fd_close(j.fd) ;
    return ;
  }
  memcpy(j.domain, a + at + 1, al - at) ;
  for (size_t i = 1 ; i < rq->nrcpts ; i++)
  {
    a += al + 1 ;
    al = strlen(a) ;
    at = byte_rchr(a, al, '@') ;
    if (at == al || strcasecmp(a + at + 1, j.domain))
      strerr_dief1x(EX_TEMP, "protocol error: recipients of several domains in one request") ;
  }
  if (!spawn_request_put(&j.rec, rq, SPAWN_LIST)) strerr_diefu1sys(EX_TEMP, "encode a request") ;
  if (!genalloc_append(struct wjob, &waiting, &j)) dienomem() ;
}

int main (int argc, char const *const *argv)
{
  struct spawn_decoder in = SPAWN_DECODER(SPAWN_LISTMAX, SPAWN_LIST) ;
  genalloc fds = GENALLOC_ZERO ;     /* int: fds received, not yet matched */
  genalloc x = GENALLOC_ZERO ;       /* iopause_fd */
  int eof = 0 ;
  (void)argc ; (void)argv ;

  if (!fd_ensure_open(2, 1)) _exit(EX_TEMP) ;
  if (!geteuid() || !getuid()) strerr_dief1x(EX_PERM, "refusing to run as root (it reads the network)") ;
  {
    struct stat st ;
    if (fstat(0, &st) < 0 || !S_ISSOCK(st.st_mode)) strerr_dief1x(EX_PERM, "fd 0 must be a unix socket to yubin-qmgr") ;
  }
  if (coe(0) < 0 || coe(1) < 0) strerr_diefu1sys(EX_TEMP, "set close-on-exec") ;
  read_control() ;
  if (!route_init()) strerr_dief1x(EX_TEMP, route_init_why()) ;
  if (!sig_ignore(SIGPIPE)) strerr_diefu1sys(EX_TEMP, "ignore SIGPIPE") ;
  int spfd = sigtrap_init((int const []){ SIGCHLD, SIGTERM, 0 }) ;
  tain_now_set_stopwatch_g() ;
  tain_now_g() ;
  {
    char a[ULONG_FMT], p[UID_FMT] ;
    a[ulong_fmt(a, conc)] = 0 ;
    p[uid_fmt(p, geteuid())] = 0 ;
    ylog("start", "uid", p, "concurrency", a, (char *)0) ;
  }

  while (!eof)
  {
    size_t n = NW ;
    if (!genalloc_ready(iopause_fd, &x, n + 2)) dienomem() ;
    iopause_fd *xs = genalloc_s(iopause_fd, &x) ;
    xs[0].fd = spfd ; xs[0].events = IOPAUSE_READ ;
    xs[1].fd = 0 ; xs[1].events = IOPAUSE_READ ;
    tain deadline = TAIN_INFINITE ;
    tain idletime ;
    tain_from_millisecs(&idletime, sessionidle * 1000) ;
    for (size_t k = 0 ; k < n ; k++)
    {
      xs[2 + k].fd = W(k)->fd ;
      xs[2 + k].events = IOPAUSE_READ ;
      if (!W(k)->busy)
      {
        tain t ;
        tain_add(&t, &W(k)->idle, &idletime) ;
        if (tain_less(&t, &deadline)) deadline = t ;
      }
    }
    int r = iopause_g(xs, n + 2, &deadline) ;
    if (r < 0)
    {
      if (errno == EINTR) continue ;
      strerr_diefu1sys(EX_TEMP, "iopause") ;
    }
    /* workers first: their results, idle sessions, deaths */
    for (size_t k = n ; k-- ;)
    {
      if (k >= NW) continue ;
      if (genalloc_s(iopause_fd, &x)[2 + k].revents)
      {
        ssize_t rr = spawn_fill(&W(k)->in, W(k)->fd, 8192) ;
        if (rr < 0 && (errno == EINTR || errno == EAGAIN)) continue ;
        if (rr > 0) { if (!worker_results(k)) continue ; }
        else { worker_drop(k, "the remote worker died (#4.3.0)") ; continue ; }
      }
      if (!W(k)->busy)
      {
        tain t ;
        tain_add(&t, &W(k)->idle, &idletime) ;
        if (!tain_less(&STAMP, &t)) worker_drop(k, "") ;
      }
    }
    xs = genalloc_s(iopause_fd, &x) ;
    if (xs[0].revents & IOPAUSE_READ)
    {
      for (;;)
      {
        int sig = selfpipe_read() ;
        if (sig < 0) strerr_diefu1sys(EX_TEMP, "read selfpipe") ;
        if (!sig) break ;
        if (sig == SIGCHLD) { int w ; while (wait_nohang(&w) > 0) ; }
        else if (sig == SIGTERM) eof = 1 ;
      }
    }
    if (!eof && xs[1].revents)
    {
      ssize_t rr = spawn_fill_fds(&in, 0, 65536, &fds) ;
      if (rr < 0 && errno != EINTR && errno != EAGAIN) strerr_diefu1sys(EX_TEMP, "read from yubin-qmgr") ;
      if (!rr) eof = 1 ;
      for (;;)
      {
        struct spawn_request rq ;
        int k = spawn_request_next(&in, &rq) ;
        if (!k) break ;
        if (k < 0) strerr_dief1x(EX_TEMP, "protocol error: bad request from yubin-qmgr") ;
        request(&rq, &fds) ;
      }
    }
    dispatch() ;
  }
  /* qmgr is gone or we were told to stop: close every session (a worker
     in the middle of a message finishes it; its results go nowhere and
     qmgr retries those recipients: the documented duplicate window) */
  while (NW) { W(NW - 1)->busy = 0 ; worker_drop(NW - 1, "") ; }
  while (NJ) wjob_free(NJ - 1) ;
  for (size_t i = 0 ; i < genalloc_len(int, &fds) ; i++) fd_close(genalloc_s(int, &fds)[i]) ;
  genalloc_free(int, &fds) ;
  genalloc_free(struct worker, &workers) ;
  genalloc_free(struct wjob, &waiting) ;
  genalloc_free(iopause_fd, &x) ;
  spawn_decoder_free(&in) ;
  stralloc_free(&me) ;
  stralloc_free(&helohost) ;
  stralloc_free(&outgoingip) ;
  return 0 ;
}
