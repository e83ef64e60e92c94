/* yubin-queued: the queue writer as a long-running service.  Clients
 * (common/qq.c: yubin-smtpd, qmgr's bounces, yubin-inject, .qmail
 * forwards) connect to <root>/queued/sock, pass the read end of a pipe
 * that carries the message (SCM_RIGHTS), write the envelope in
 * qmail-queue's format on the socket, and get one byte back: qmail-queue's
 * exit code.  The file is written by qwrite.c exactly as yubin-queue
 * writes it; what differs is step 8 of qmgr/README: the renames that
 * finished while a directory fsync was running share the next one (group
 * commit), and a message that finds no fsync running starts one at once,
 * so a lone client waits for no one.  See yubin-queued(8).
 *
 * One thread per client (at most -c at once): reading, writing and the
 * file fsyncs of concurrent messages overlap, as they did in separate
 * yubin-queue processes.  The main thread accepts and handles signals. */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <skalibs/djbunix.h>
#include <skalibs/selfpipe.h>
#include <skalibs/sig.h>
#include <skalibs/sgetopt.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/types.h>

#include "qpool.h"
#include "qq.h"
#include "queue.h"
#include "qwrite.h"
#include "root.h"
#include "ylog.h"

#define USAGE "yubin-queued [ -c maxclients ] [ -p poolsize ]"
#define TIMEOUT 86400        /* a message, as yubin-queue's alarm */
#define HELLO_TIMEOUT 60     /* the first byte and the message fd */
#define STOP_GRACE 10        /* seconds for clients in flight at SIGTERM */
#define STACK_SIZE (256 << 10)

char const *PROG = "queued" ;

static int qfd = -1 ;        /* queue/ */
static int newfd = -1 ;      /* queue/new/ */
static struct stat qst ;     /* queue/'s owner, for a writer run as root */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER ;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER ;
static unsigned int active = 0 ;   /* clients being served or waiting for a worker */

/* Local callers who are not the daemons (any user may queue mail, as
 * with the setuid yubin-queue) may hold only a few slots each, and half
 * of them in all: a user who opens connections and never finishes them
 * cannot take the slots smtpd needs. */
#define LOCAL_PER_UID 8
struct localuse { uid_t uid ; unsigned int n ; } ;
static struct localuse *locals = 0 ;  /* maxclients entries */
static unsigned int nlocals = 0, localtotal = 0, localmax = 1 ;

/* Under lock: one more slot for uid; 0 if it has too many. */
static int local_take (uid_t uid)
{
  unsigned int i = 0 ;
  while (i < nlocals && locals[i].uid != uid) i++ ;
  if (localtotal >= localmax || (i < nlocals && locals[i].n >= LOCAL_PER_UID)) return 0 ;
  if (i == nlocals) { locals[nlocals].uid = uid ; locals[nlocals].n = 0 ; nlocals++ ; }
  locals[i].n++ ;
  localtotal++ ;
  return 1 ;
}

/* Under lock: uid gives its slot back. */
static void local_give (uid_t uid)
{
  for (unsigned int i = 0 ; i < nlocals ; i++)
    if (locals[i].uid == uid)
    {
      localtotal-- ;
      if (!--locals[i].n) locals[i] = locals[--nlocals] ;
      return ;
    }
}

/* ---------- group commit of new/ ---------- */

struct commit
{
  struct commit *next ;
  int done ;
  int err ;                  /* errno of a failed fsync, 0 if it worked */
  unsigned int batch ;       /* messages the fsync covered */
} ;

static struct commit *waiting = 0 ;   /* renamed, no fsync started since */
static int syncing = 0 ;              /* a thread is in fsync(new/) */

/* The message of c was renamed into new/: returns once an fsync of new/
 * that started after the rename has ended (0, or the fsync's errno).  The
 * first waiter that finds no fsync running takes every waiter into the
 * next one; one that finds none waiting starts it at once. */
static int commit_wait (struct commit *c)
{
  pthread_mutex_lock(&lock) ;
  c->next = waiting ;
  waiting = c ;
  while (!c->done)
  {
    if (syncing) { pthread_cond_wait(&cond, &lock) ; continue ; }
    struct commit *batch = waiting ;
    unsigned int n = 0 ;
    for (struct commit *x = batch ; x ; x = x->next) n++ ;
    waiting = 0 ;
    syncing = 1 ;
    pthread_mutex_unlock(&lock) ;
    int e = fsync(newfd) < 0 ? errno : 0 ;
    if (!e) queue_trigger(qfd) ;   /* one byte for the whole batch */
    pthread_mutex_lock(&lock) ;
    for (struct commit *x = batch, *next ; x ; x = next)
    {
      next = x->next ;   /* x may go away once it is done and we unlock */
      x->err = e ;
      x->batch = n ;
      x->done = 1 ;
    }
    syncing = 0 ;
    pthread_cond_broadcast(&cond) ;
  }
  pthread_mutex_unlock(&lock) ;
  return c->err ;
}

/* ---------- one client ---------- */

struct client
{
  int sock ;
  struct ucred cred ;
  unsigned int batch ;
} ;

/* The first byte, 'Q', with the message fd.  Returns the fd, or -1. */
static int hello (int sock, uint64_t deadline)
{
  char c ;
  struct iovec v = { .iov_base = &c, .iov_len = 1 } ;
  union { struct cmsghdr h ; char buf[CMSG_SPACE(sizeof(int))] ; } ctl ;
  struct msghdr mh = { .msg_iov = &v, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) } ;
  int fd = -1 ;
  for (;;)
  {
    uint64_t now = qwrite_now() ;
    if (now >= deadline) { errno = ETIMEDOUT ; return -1 ; }
    struct pollfd p = { .fd = sock, .events = POLLIN } ;
    int r = poll(&p, 1, (int)(deadline - now)) ;
    if (r < 0 && errno != EINTR) return -1 ;
    if (r > 0) break ;
  }
  ssize_t r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC) ;
  if (r < 0) return -1 ;
  for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh) ; h ; h = CMSG_NXTHDR(&mh, h))
    if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS && h->cmsg_len == CMSG_LEN(sizeof(int)))
      memcpy(&fd, CMSG_DATA(h), sizeof(int)) ;
  if (r != 1 || c != 'Q' || fd < 0 || mh.msg_flags & MSG_CTRUNC)
  {
    if (fd >= 0) fd_close(fd) ;
    errno = EPROTO ;
    return -1 ;
  }
  return fd ;
}

/* Steps 1 to 8 for one client; the qmail-queue exit code. */
static int serve (struct client *cl, struct qwrite *w)
{
  uint64_t deadline = qwrite_now() + (uint64_t)TIMEOUT * 1000 ;
  socklen_t len = sizeof(cl->cred) ;
  if (getsockopt(cl->sock, SOL_SOCKET, SO_PEERCRED, &cl->cred, &len) < 0)
  {
    w->what = "read the client's credentials" ; w->sys = 1 ; w->err = errno ;
    return QQ_BUG ;
  }
  int msgfd = hello(cl->sock, qwrite_now() + HELLO_TIMEOUT * 1000) ;
  if (msgfd < 0)
  {
    w->what = "read the client's message fd" ; w->sys = 1 ; w->err = errno ;
    return QQ_READ ;
  }
  int pfd ;
  char pname[QPOOL_NAMEMAX], pid[QUEUE_IDMAX] ;
  int code = qpool_take(&pfd, pname, pid) ? qwrite_open_pooled(w, qfd, pfd, pname, pid, cl->cred.uid)
           : qwrite_open(w, qfd, &qst, cl->cred.uid) ;
  /* the caller as yubin-queue tells it (qwrite.h) */
  if (!code && cl->cred.uid != geteuid() && !qwrite_trusted_gid(cl->cred.gid))
    code = qwrite_received(w, cl->cred.pid, cl->cred.uid) ;
  if (!code) code = qwrite_copy(w, msgfd, deadline) ;
  fd_close(msgfd) ;
  if (!code) code = qwrite_envelope(w, cl->sock, deadline) ;
  if (!code) code = qwrite_commit(w) ;
  if (code) return code ;
  if (w->durable)
  {
    /* a pool file: its fdatasync was the commit */
    queue_trigger(qfd) ;
    cl->batch = 0 ;
    return QQ_OK ;
  }
  struct commit c = { .next = 0, .done = 0, .err = 0, .batch = 0 } ;
  int e = commit_wait(&c) ;
  cl->batch = c.batch ;
  if (e)
  {
    /* the file stays in new/: a duplicate if the client retries, never a loss */
    w->what = "sync new/" ; w->sys = 1 ; w->err = e ;
    return QQ_WRITE ;
  }
  return QQ_OK ;
}

struct accepted { struct accepted *next ; int sock ; int local ; uid_t uid ; } ;

static void client_run (struct accepted *arg)
{
  struct accepted a = *arg ;
  free(arg) ;
  struct client cl = { .sock = a.sock, .cred = { .pid = 0, .uid = -1, .gid = -1 }, .batch = 0 } ;
  struct qwrite w = QWRITE_ZERO ;
  int code = serve(&cl, &w) ;
  unsigned char answer = code ;
  ssize_t r = send(cl.sock, &answer, 1, MSG_NOSIGNAL) ;
  int sent = r == 1 ;
  char pid[PID_FMT], uid[UINT64_FMT] ;
  pid[pid_fmt(pid, cl.cred.pid)] = 0 ;
  uid[uint64_fmt(uid, (uint64_t)cl.cred.uid)] = 0 ;
  if (!code)
  {
    char bytes[UINT64_FMT], rcpts[UINT64_FMT], batch[UINT_FMT] ;
    bytes[uint64_fmt(bytes, w.h.size)] = 0 ;
    rcpts[uint64_fmt(rcpts, w.nrcpts)] = 0 ;
    batch[uint_fmt(batch, cl.batch)] = 0 ;
    ylog("queued", "id", w.id, "bytes", bytes, "rcpts", rcpts, "uid", uid, "pid", pid, "batch", batch,
         sent ? (char *)0 : "answer", "lost", (char *)0) ;
  }
  else
  {
    char cb[UINT_FMT] ;
    cb[uint_fmt(cb, code)] = 0 ;
    ylog("refused", "uid", uid, "pid", pid, "code", cb, "reason", w.what,
         "errno", w.sys ? strerror(w.err) : (char *)0, (char *)0) ;
  }
  fd_close(cl.sock) ;
  qwrite_free(&w) ;
  pthread_mutex_lock(&lock) ;
  active-- ;
  if (a.local) local_give(a.uid) ;
  pthread_cond_broadcast(&cond) ;
  pthread_mutex_unlock(&lock) ;
}

/* ---------- the workers ---------- */

/* Clients are served by worker threads that stay for the next client (a
 * thread per message cost a clone, its stack set-up and its exit each
 * time).  Up to IDLE_MAX of them wait for work; more are started while
 * clients wait and no worker is idle, and leave once more than IDLE_MAX
 * would wait. */
#define IDLE_MAX 16

static pthread_cond_t workcond = PTHREAD_COND_INITIALIZER ;
static struct accepted *work_head = 0, *work_tail = 0 ;
static unsigned int pending = 0, idle = 0, workers = 0 ;

static void *worker (void *arg)
{
  (void)arg ;
  pthread_mutex_lock(&lock) ;
  for (;;)
  {
    while (!work_head)
    {
      if (idle >= IDLE_MAX) { workers-- ; pthread_mutex_unlock(&lock) ; return 0 ; }
      idle++ ;
      pthread_cond_wait(&workcond, &lock) ;
      idle-- ;
    }
    struct accepted *a = work_head ;
    work_head = a->next ;
    if (!work_head) work_tail = 0 ;
    pending-- ;
    pthread_mutex_unlock(&lock) ;
    client_run(a) ;
    pthread_mutex_lock(&lock) ;
  }
}

/* Under lock: hand a to a worker, starting one if none is free.  Returns
 * 0, or the error of pthread_create when there is no worker at all to
 * take it (a is then not queued). */
static int dispatch (struct accepted *a, pthread_attr_t const *attr)
{
  a->next = 0 ;
  if (work_tail) work_tail->next = a ; else work_head = a ;
  work_tail = a ;
  pending++ ;
  if (pending > idle)
  {
    pthread_t t ;
    int e = pthread_create(&t, attr, &worker, 0) ;
    if (!e) workers++ ;
    else if (!workers)
    {
      /* nobody will take it: give it back */
      work_head = work_tail = 0 ;
      pending = 0 ;
      return e ;
    }
  }
  pthread_cond_signal(&workcond) ;
  return 0 ;
}

/* The slot a new client may take: 1 (a->local says whose; the client is
 * told '+' and may send), or 0 when a local caller has too many already:
 * it is told 71 instead and goes to yubin-queue. */
static int admit (struct accepted *a)
{
  struct ucred cred ;
  socklen_t len = sizeof(cred) ;
  a->local = 0 ;
  if (getsockopt(a->sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return 1 ;  /* serve() will say */
  if (cred.uid == geteuid() || qwrite_trusted_gid(cred.gid)) return 1 ;
  a->uid = cred.uid ;
  pthread_mutex_lock(&lock) ;
  int ok = local_take(cred.uid) ;
  pthread_mutex_unlock(&lock) ;
  if (ok) { a->local = 1 ; return 1 ; }
  /* no '+': the client runs yubin-queue itself, as without the daemon */
  unsigned char answer = QQ_TEMPREFUSED ;
  if (send(a->sock, &answer, 1, MSG_NOSIGNAL) != 1) errno = 0 ;
  char uid[UINT64_FMT] ;
  uid[uint64_fmt(uid, (uint64_t)cred.uid)] = 0 ;
  ylog("refused", "uid", uid, "code", "71", "reason", "too-many-local-clients", (char *)0) ;
  return 0 ;
}

/* ---------- start-up ---------- */

/* Listen on <root>/queued/sock, world-connectable: anyone who may run the
 * setuid yubin-queue may queue here, with the same treatment.  Bound under
 * a temporary name and renamed, so a client never finds the name missing
 * while the service restarts. */
static int listen_sock (void)
{
  stralloc fn = STRALLOC_ZERO, tmp = STRALLOC_ZERO ;
  char pid[PID_FMT] ;
  pid[pid_fmt(pid, getpid())] = 0 ;
  if (!yubin_path(&fn, "queued/sock") || !yubin_path(&tmp, "queued/.sock.")
   || !stralloc_catb(&tmp, pid, strlen(pid) + 1)) strerr_diefu1sys(111, "allocate") ;
  struct sockaddr_un sa = { .sun_family = AF_UNIX } ;
  if (tmp.len > sizeof(sa.sun_path)) strerr_dief2x(100, "socket path too long: ", tmp.s) ;
  memcpy(sa.sun_path, tmp.s, tmp.len) ;
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) ;
  if (s < 0) strerr_diefu1sys(111, "create a socket") ;
  unlink(tmp.s) ;
  mode_t m = umask(0111) ;
  if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) strerr_diefu2sys(111, "bind ", tmp.s) ;
  umask(m) ;
  if (listen(s, SOMAXCONN) < 0) strerr_diefu2sys(111, "listen on ", tmp.s) ;
  if (rename(tmp.s, fn.s) < 0) strerr_diefu4sys(111, "rename ", tmp.s, " to ", fn.s) ;
  stralloc_free(&fn) ;
  stralloc_free(&tmp) ;
  return s ;
}

static void open_queue (void)
{
  stralloc fn = STRALLOC_ZERO ;
  if (!yubin_path(&fn, "queue")) strerr_diefu1sys(111, "allocate") ;
  qfd = open(fn.s, O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (qfd < 0) strerr_diefu2sys(111, "open the queue directory ", fn.s) ;
  if (fstat(qfd, &qst) < 0) strerr_diefu2sys(111, "stat ", fn.s) ;
  /* yubin-qmgr makes the layout too; whoever starts first */
  static char const *const dirs[3] = { "tmp", "new", "env" } ;
  for (int i = 0 ; i < 3 ; i++)
    if (mkdirat(qfd, dirs[i], 0700) < 0 && errno != EEXIST) strerr_diefu4sys(111, "mkdir ", fn.s, "/", dirs[i]) ;
  newfd = openat(qfd, "new", O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (newfd < 0) strerr_diefu3sys(111, "open ", fn.s, "/new") ;
  stralloc_free(&fn) ;
}

/* Wait for the listening socket or a signal; returns 1 when a client
 * waits, 0 when we are told to stop. */
static int wait_client (int lfd, int sfd)
{
  for (;;)
  {
    struct pollfd p[2] = { { .fd = lfd, .events = POLLIN }, { .fd = sfd, .events = POLLIN } } ;
    int r = poll(p, 2, -1) ;
    if (r < 0)
    {
      if (errno == EINTR) continue ;
      strerr_diefu1sys(111, "poll") ;
    }
    if (p[1].revents)
    {
      int sig ;
      while ((sig = selfpipe_read()) > 0)
        if (sig == SIGTERM || sig == SIGINT) return 0 ;
      if (sig < 0) strerr_diefu1sys(111, "read the selfpipe") ;
    }
    if (p[0].revents) return 1 ;
  }
}

int main (int argc, char const *const *argv)
{
  unsigned int maxclients = 200, poolsize = 64 ;
  subgetopt l = SUBGETOPT_ZERO ;
  for (;;)
  {
    int opt = subgetopt_r(argc, argv, "c:p:", &l) ;
    if (opt == -1) break ;
    switch (opt)
    {
      case 'c' : if (!uint0_scan(l.arg, &maxclients) || !maxclients) strerr_dieusage(100, USAGE) ; break ;
      case 'p' : if (!uint0_scan(l.arg, &poolsize) || poolsize > QPOOL_MAX) strerr_dieusage(100, USAGE) ; break ;
      default : strerr_dieusage(100, USAGE) ;
    }
  }
  umask(077) ;
  if (!fd_ensure_open(2, 1)) _exit(111) ;
  locals = calloc(maxclients, sizeof(*locals)) ;
  if (!locals) strerr_diefu1sys(111, "allocate") ;
  localmax = maxclients / 2 ? maxclients / 2 : 1 ;
  if (!sig_ignore(SIGPIPE)) strerr_diefu1sys(111, "ignore SIGPIPE") ;
  /* the selfpipe blocks the signals it traps: the threads inherit that */
  int sfd = selfpipe_init() ;
  if (sfd < 0) strerr_diefu1sys(111, "selfpipe_init") ;
  if (!selfpipe_trap(SIGTERM) || !selfpipe_trap(SIGINT) || !selfpipe_trap(SIGHUP))
    strerr_diefu1sys(111, "trap signals") ;
  open_queue() ;
  qpool_start(qfd, newfd, &qst, poolsize) ;
  int lfd = listen_sock() ;
  pthread_attr_t attr ;
  if (pthread_attr_init(&attr) || pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED)
   || pthread_attr_setstacksize(&attr, STACK_SIZE))
    strerr_diefu1x(111, "set up thread attributes") ;
  {
    char mc[UINT_FMT], uid[UINT64_FMT], ps[UINT_FMT] ;
    mc[uint_fmt(mc, maxclients)] = 0 ;
    uid[uint64_fmt(uid, (uint64_t)geteuid())] = 0 ;
    ps[uint_fmt(ps, poolsize)] = 0 ;
    ylog("start", "uid", uid, "maxclients", mc, "pool", ps, (char *)0) ;
  }

  while (wait_client(lfd, sfd))
  {
    pthread_mutex_lock(&lock) ;
    while (active >= maxclients) pthread_cond_wait(&cond, &lock) ;
    pthread_mutex_unlock(&lock) ;
    int c = accept4(lfd, 0, 0, SOCK_CLOEXEC) ;
    if (c < 0)
    {
      if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) continue ;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
      {
        ylog("error", "op", "accept", "errno", strerror(errno), (char *)0) ;
        poll(0, 0, 100) ;   /* let the clients in flight give some back */
        continue ;
      }
      strerr_diefu1sys(111, "accept") ;
    }
    struct accepted *a = malloc(sizeof(*a)) ;
    if (!a) { fd_close(c) ; continue ; }   /* EOF for the client: a temporary failure */
    a->sock = c ;
    if (!admit(a)) { fd_close(c) ; free(a) ; continue ; }
    if (send(c, "+", 1, MSG_NOSIGNAL) != 1)
    {
      fd_close(c) ;
      if (a->local) { pthread_mutex_lock(&lock) ; local_give(a->uid) ; pthread_mutex_unlock(&lock) ; }
      free(a) ;
      continue ;
    }
    pthread_mutex_lock(&lock) ;
    active++ ;
    int e = dispatch(a, &attr) ;
    if (e)
    {
      active-- ;
      if (a->local) local_give(a->uid) ;
    }
    pthread_mutex_unlock(&lock) ;
    if (e)
    {
      /* the client sees EOF: a temporary failure, nothing queued */
      ylog("error", "op", "thread", "errno", strerror(e), (char *)0) ;
      fd_close(c) ;
      free(a) ;
    }
  }

  /* Stop: no new clients (they fall back to yubin-queue); give the ones in
     flight a few seconds.  Killing one mid-way acknowledges nothing. */
  fd_close(lfd) ;
  qpool_stop() ;
  {
    uint64_t end = qwrite_now() + STOP_GRACE * 1000 ;
    pthread_mutex_lock(&lock) ;
    while (active && qwrite_now() < end)
    {
      pthread_mutex_unlock(&lock) ;
      poll(0, 0, 20) ;
      pthread_mutex_lock(&lock) ;
    }
    unsigned int left = active ;
    pthread_mutex_unlock(&lock) ;
    char n[UINT_FMT] ;
    n[uint_fmt(n, left)] = 0 ;
    ylog("stop", "inflight", n, (char *)0) ;
  }
  _exit(0) ;
}
