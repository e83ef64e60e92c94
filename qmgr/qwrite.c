/* The queue writer's core: see qwrite.h and qmgr/README. */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/djbunix.h>
#include <skalibs/stralloc.h>
#include <skalibs/types.h>

#include "control.h"
#include "date822.h"
#include "qq.h"
#include "root.h"
#include "qwrite.h"

/* a failure: what, and errno when sys */
static int fail (struct qwrite *w, int code, char const *what, int sys)
{
  w->err = errno ;
  w->what = what ;
  w->sys = sys ;
  return code ;
}

uint64_t qwrite_now (void)
{
  struct timespec ts ;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0) return 0 ;
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 ;
}

/* Wait until fd is readable or the deadline passes (0: no deadline).
 * Returns 1 readable (or hung up), 0 timed out, -1 error. */
static int wait_readable (int fd, uint64_t deadline)
{
  if (!deadline) return 1 ;
  for (;;)
  {
    uint64_t now = qwrite_now() ;
    if (now >= deadline) return 0 ;
    uint64_t left = deadline - now ;
    struct pollfd p = { .fd = fd, .events = POLLIN } ;
    int r = poll(&p, 1, left > 86400000 ? 86400000 : (int)left) ;
    if (r > 0) return 1 ;
    if (r < 0 && errno != EINTR) return -1 ;
  }
}

/* read() with the deadline; -2: timed out */
static ssize_t read_by (int fd, char *buf, size_t len, uint64_t deadline)
{
  for (;;)
  {
    int w = wait_readable(fd, deadline) ;
    if (w <= 0) return w ? -1 : -2 ;
    ssize_t r = read(fd, buf, len) ;
    if (r >= 0) return r ;
    if (errno != EINTR && errno != EAGAIN) return -1 ;
  }
}

int qwrite_open (struct qwrite *w, int qfd, struct stat const *st, uint64_t uid)
{
  w->qfd = qfd ;
  w->h = (struct queue_head){ .msgoff = QUEUE_MSGOFF, .uid = uid } ;
  for (int tries = 0 ; w->fd < 0 ; tries++)
  {
    queue_id_make(w->id, &w->h.birth) ;
    memcpy(w->tmpfn, "tmp/", 4) ;
    memcpy(w->tmpfn + 4, w->id, strlen(w->id) + 1) ;
    w->fd = openat(qfd, w->tmpfn, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600) ;
    if (w->fd < 0 && (errno != EEXIST || tries >= 3))
    {
      w->tmpfn[0] = 0 ;
      return fail(w, QQ_WRITE, "create a tmp/ file", 1) ;
    }
  }
  /* Run by root rather than setuid: the file must still belong to the queue
     user, or yubin-qmgr could not record deliveries in it. */
  if (geteuid() == 0 && st->st_uid != 0 && fchown(w->fd, st->st_uid, st->st_gid) < 0)
    return fail(w, QQ_WRITE, "chown the queue file", 1) ;
  if (lseek(w->fd, QUEUE_MSGOFF, SEEK_SET) < 0) return fail(w, QQ_WRITE, "seek in the queue file", 1) ;
  return QQ_OK ;
}

int qwrite_open_pooled (struct qwrite *w, int qfd, int fd, char const *name, char const *id, uint64_t uid)
{
  size_t nl = strlen(name), il = strlen(id) ;
  w->qfd = qfd ;
  w->fd = fd ;
  w->pooled = 1 ;
  w->sum = QUEUE_SUM_INIT ;
  w->h = (struct queue_head){ .msgoff = QUEUE_MSGOFF, .uid = uid, .birth = (uint64_t)time(0) } ;
  if (nl + 5 > sizeof(w->tmpfn) || il >= sizeof(w->id))
  {
    errno = ENAMETOOLONG ;
    return fail(w, QQ_BUG, "name a pool file", 1) ;
  }
  memcpy(w->id, id, il + 1) ;
  memcpy(w->tmpfn, "new/", 4) ;
  memcpy(w->tmpfn + 4, name, nl + 1) ;
  if (lseek(w->fd, QUEUE_MSGOFF, SEEK_SET) < 0) return fail(w, QQ_WRITE, "seek in the queue file", 1) ;
  return QQ_OK ;
}

/* Append to the message in the file (and to the pool checksum). */
static int put (struct qwrite *w, char const *s, size_t len)
{
  if (allwrite(w->fd, s, len) < len) return fail(w, QQ_WRITE, "write the queue file", 1) ;
  if (w->pooled) w->sum = queue_sum(w->sum, s, len) ;
  w->h.size += len ;
  return QQ_OK ;
}

int qwrite_trusted_gid (gid_t gid)
{
  stralloc fn = STRALLOC_ZERO ;
  struct stat st ;
  if (!yubin_path(&fn, "libexec")) return 0 ;
  int r = stat(fn.s, &st) ;
  stralloc_free(&fn) ;
  return r == 0 && S_ISDIR(st.st_mode) && !st.st_uid && !(st.st_mode & 07) && gid == st.st_gid ;
}

int qwrite_received (struct qwrite *w, pid_t pid, uid_t uid)
{
  char date[DATE822_LEN], p[PID_FMT], u[UID_FMT] ;
  unsigned long max = 0 ;
  stralloc sa = STRALLOC_ZERO ;
  if (control_readulong(&max, "databytes", 0) < 0) return fail(w, QQ_CONFIG, "read control/databytes", 1) ;
  date822_fmt(date, (time_t)w->h.birth) ;
  p[pid_fmt(p, pid)] = 0 ;
  u[uid_fmt(u, uid)] = 0 ;
  if (!stralloc_cats(&sa, "Received: (yubin-queue ") || !stralloc_cats(&sa, p)
   || !stralloc_cats(&sa, " invoked by uid ") || !stralloc_cats(&sa, u)
   || !stralloc_cats(&sa, ");\n\t") || !stralloc_cats(&sa, date) || !stralloc_catb(&sa, "\n", 1))
  {
    stralloc_free(&sa) ;
    return fail(w, QQ_NOMEM, "allocate", 1) ;
  }
  if (put(w, sa.s, sa.len))
  {
    stralloc_free(&sa) ;
    return QQ_WRITE ;
  }
  if (max) w->max = max + sa.len ;
  stralloc_free(&sa) ;
  return QQ_OK ;
}

int qwrite_copy (struct qwrite *w, int msgfd, uint64_t deadline)
{
  char buf[65536] ;
  for (;;)
  {
    ssize_t r = read_by(msgfd, buf, sizeof(buf), deadline) ;
    if (r == -2) return fail(w, QQ_TIMEOUT, "read the message in time", 0) ;
    if (r < 0) return fail(w, QQ_READ, "read the message", 1) ;
    if (!r) return QQ_OK ;
    if (put(w, buf, r)) return QQ_WRITE ;
    if (w->max && w->h.size > w->max)
      return fail(w, QQ_REFUSED, "queue the message: larger than control/databytes", 0) ;
  }
}

int qwrite_envelope (struct qwrite *w, int envfd, uint64_t deadline)
{
  char buf[8192] ;
  stralloc *env = &w->env ;
  for (;;)
  {
    ssize_t r = read_by(envfd, buf, sizeof(buf), deadline) ;
    if (r == -2) return fail(w, QQ_TIMEOUT, "read the envelope in time", 0) ;
    if (r < 0) return fail(w, QQ_READ, "read the envelope", 1) ;
    if (!r) return fail(w, QQ_READ, "read the envelope: end of file before its end", 0) ;
    for (ssize_t i = 0 ; i < r ; i++)
    {
      char c = buf[i] ;
      if (env->len == w->recstart)   /* first byte of a record */
      {
        if (!w->records ? c != 'F' : (c != 'T' && c != 0))
          return fail(w, QQ_ENVELOPE, "queue the message: envelope format error", 0) ;
        if (!c)
        {
          if (!stralloc_catb(env, "", 1)) return fail(w, QQ_NOMEM, "allocate", 1) ;
          w->nrcpts = w->records - 1 ;
          return QQ_OK ;
        }
      }
      if (!stralloc_catb(env, &c, 1)) return fail(w, QQ_NOMEM, "allocate", 1) ;
      if (!c)
      {
        if (!queue_addr_ok(env->s + w->recstart + 1, env->len - w->recstart - 2))
          return fail(w, QQ_ENVELOPE, "queue the message: envelope format error: bad address", 0) ;
        w->recstart = env->len ;
        w->records++ ;
      }
      else if (env->len - w->recstart > QUEUE_ADDRMAX + 1)
        return fail(w, QQ_ENVELOPE, "queue the message: envelope format error: address too long", 0) ;
      else if (env->len > QUEUE_ENVMAX)
        return fail(w, QQ_ENVELOPE, "queue the message: envelope too large", 0) ;
    }
  }
}

/* The envelope does not fit in the header block: env/ID, durable. */
static int write_envfile (struct qwrite *w)
{
  memcpy(w->envfn, "env/", 4) ;
  memcpy(w->envfn + 4, w->id, strlen(w->id) + 1) ;
  int fd = openat(w->qfd, w->envfn, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600) ;
  if (fd < 0)
  {
    w->envfn[0] = 0 ;
    return fail(w, QQ_WRITE, "create the envelope file", 1) ;
  }
  if (allwrite(fd, w->env.s, w->env.len) < w->env.len || fsync(fd) < 0)
  {
    fail(w, QQ_WRITE, "write the envelope file", 1) ;
    fd_close(fd) ;
    return QQ_WRITE ;
  }
  fd_close(fd) ;
  int dfd = openat(w->qfd, "env", O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (dfd < 0 || fsync(dfd) < 0)
  {
    fail(w, QQ_WRITE, "sync env/", 1) ;
    if (dfd >= 0) fd_close(dfd) ;
    return QQ_WRITE ;
  }
  fd_close(dfd) ;
  return QQ_OK ;
}

/* tmp/ID or the pool file to new/ID.  A pool file never replaces another
 * message (the caller's IDs are unique: this only makes sure). */
static int rename_new (struct qwrite *w, char const *newfn)
{
  return w->pooled ? queue_rename_noreplace(w->qfd, w->tmpfn, w->qfd, newfn)
                   : renameat(w->qfd, w->tmpfn, w->qfd, newfn) ;
}

int qwrite_commit (struct qwrite *w)
{
  char newfn[4 + QUEUE_IDMAX] ;
  w->durable = 0 ;
  stralloc sa = STRALLOC_ZERO ;
  int code = QQ_OK ;
  if (!queue_head_fmt(&sa, &w->h)) { code = fail(w, QQ_NOMEM, "allocate", 1) ; goto end ; }
  /* the envelope stays clear of the retry record (queue.h) */
  if (sa.len + w->env.len > QUEUE_NEXTOFF)
  {
    w->h.envfile = 1 ;
    sa.len = 0 ;
    if (!queue_head_fmt(&sa, &w->h)) { code = fail(w, QQ_NOMEM, "allocate", 1) ; goto end ; }
    code = write_envfile(w) ;
    if (code) goto end ;
  }
  else if (!stralloc_cat(&sa, &w->env)) { code = fail(w, QQ_NOMEM, "allocate", 1) ; goto end ; }
  /* pad the header block: readers stop at the envelope's final NUL */
  if (!stralloc_ready(&sa, QUEUE_MSGOFF)) { code = fail(w, QQ_NOMEM, "allocate", 1) ; goto end ; }
  memset(sa.s + sa.len, 0, QUEUE_MSGOFF - sa.len) ;
  sa.len = QUEUE_MSGOFF ;
  /* a pool file's only commit is its own sync: the checksum tells a
     complete one from a torn one after a crash (queue.h) */
  int selfsync = w->pooled && !w->h.envfile ;
  if (selfsync)
  {
    char const *name = w->tmpfn + 4 ;   /* new/.p<ID> */
    uint64_t sum = queue_sum(w->sum, sa.s, QUEUE_NEXTOFF) ;
    queue_sum_fmt(sa.s + QUEUE_NEXTOFF, queue_sum(sum, name, strlen(name))) ;
  }
  if (pwrite(w->fd, sa.s, sa.len, 0) != (ssize_t)sa.len)
  { code = fail(w, QQ_WRITE, "write the queue file header", 1) ; goto end ; }
  if ((selfsync ? fdatasync(w->fd) : fsync(w->fd)) < 0) { code = fail(w, QQ_WRITE, "sync the queue file", 1) ; goto end ; }
  fd_close(w->fd) ;
  w->fd = -1 ;
  memcpy(newfn, "new/", 4) ;
  memcpy(newfn + 4, w->id, strlen(w->id) + 1) ;
  if (rename_new(w, newfn) < 0)
  { code = fail(w, QQ_WRITE, "move the queue file into new/", 1) ; goto end ; }
  w->durable = selfsync ;
  w->tmpfn[0] = 0 ;
  w->envfn[0] = 0 ;   /* from now on the message is qmgr's */
 end:
  stralloc_free(&sa) ;
  return code ;
}

void qwrite_cleanup (struct qwrite *w)
{
  if (w->tmpfn[0]) unlinkat(w->qfd, w->tmpfn, 0) ;
  if (w->envfn[0]) unlinkat(w->qfd, w->envfn, 0) ;
  w->tmpfn[0] = 0 ;
  w->envfn[0] = 0 ;
}

void qwrite_free (struct qwrite *w)
{
  if (w->fd >= 0) { fd_close(w->fd) ; w->fd = -1 ; }
  qwrite_cleanup(w) ;
  stralloc_free(&w->env) ;
}
