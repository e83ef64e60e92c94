/* yubin-queued's pool of empty queue files: see qpool.h and qmgr/README. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <skalibs/djbunix.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/types.h>

#include "qpool.h"
#include "ylog.h"

struct entry { int fd ; char name[QPOOL_NAMEMAX] ; } ;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER ;
static pthread_cond_t low = PTHREAD_COND_INITIALIZER ;   /* the pool wants filling */
static struct entry ring[QPOOL_MAX] ;   /* ready files, oldest first */
static stralloc recycled = STRALLOC_ZERO ;   /* the fill thread's list of .r names */
static unsigned int head = 0, count = 0, target = 0 ;
static int qdir = -1, newdir = -1 ;
static struct stat owner ;
static uint64_t last_sec = 0, last_nsec = 0 ;

void qpool_id (char *id)
{
  struct timespec ts ;
  if (clock_gettime(CLOCK_REALTIME, &ts) < 0) { ts.tv_sec = time(0) ; ts.tv_nsec = 0 ; }
  uint64_t sec = ts.tv_sec, nsec = ts.tv_nsec ;
  pthread_mutex_lock(&lock) ;
  /* two threads in the same nanosecond, or a clock stepped back: the
     next nanosecond after the last ID instead */
  if (sec < last_sec || (sec == last_sec && nsec <= last_nsec))
  {
    sec = last_sec ;
    nsec = last_nsec + 1 ;
    if (nsec >= 1000000000) { sec++ ; nsec = 0 ; }
  }
  last_sec = sec ;
  last_nsec = nsec ;
  pthread_mutex_unlock(&lock) ;
  queue_id_fmt(id, sec, nsec) ;
}

int qpool_take (int *fd, char *name, char *id)
{
  pthread_mutex_lock(&lock) ;
  if (!count)
  {
    pthread_mutex_unlock(&lock) ;
    return 0 ;
  }
  struct entry *e = &ring[head] ;
  *fd = e->fd ;
  memcpy(name, e->name, QPOOL_NAMEMAX) ;
  head = (head + 1) % QPOOL_MAX ;
  count-- ;
  if (count <= target / 2) pthread_cond_signal(&low) ;
  pthread_mutex_unlock(&lock) ;
  qpool_id(id) ;
  return 1 ;
}

/* Under lock: one more ready file. */
static void push (int fd, char const *name)
{
  struct entry *e = &ring[(head + count) % QPOOL_MAX] ;
  size_t n = strlen(name) ;   /* callers checked: < QPOOL_NAMEMAX */
  e->fd = fd ;
  memcpy(e->name, name, n + 1) ;
  count++ ;
}

/* A new empty file in new/: its fd, or -1 (errno). */
static int make_file (char *name)
{
  memcpy(name, QUEUE_POOLPREFIX, 2) ;
  qpool_id(name + 2) ;
  int fd = openat(newdir, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600) ;
  if (fd < 0) return -1 ;
  if (geteuid() == 0 && owner.st_uid != 0 && fchown(fd, owner.st_uid, owner.st_gid) < 0)
  {
    int e = errno ;
    unlinkat(newdir, name, 0) ;
    fd_close(fd) ;
    errno = e ;
    return -1 ;
  }
  return fd ;
}

/* A file qmgr gave back (.r<ID>, see queue.h) made an empty pool file:
 * truncated and renamed .p<fresh ID> in pname.  Its fd, or -1 (errno; the
 * file is then removed). */
static int adopt (char const *rname, char *pname)
{
  int fd = openat(newdir, rname, O_RDWR | O_NOFOLLOW | O_CLOEXEC) ;
  if (fd < 0) return -1 ;
  memcpy(pname, QUEUE_POOLPREFIX, 2) ;
  qpool_id(pname + 2) ;
  /* the checksum covers the name: what the file held before can never
     pass for a message of the new name, even if the truncation is lost */
  if (ftruncate(fd, 0) < 0 || queue_rename_noreplace(newdir, rname, newdir, pname) < 0)
  {
    int e = errno ;
    fd_close(fd) ;
    unlinkat(newdir, rname, 0) ;
    errno = e ;
    return -1 ;
  }
  return fd ;
}

/* The names in new/ that start with prefix and go on with an ID, at most
 * max of them, into list (NUL-separated; read first, handled after, so
 * that renames during the walk are not seen twice).  Returns how many,
 * or -1 (errno). */
static int list_names (stralloc *list, char const *prefix, unsigned int max)
{
  int dfd = dup(newdir) ;
  DIR *dir = dfd < 0 ? 0 : fdopendir(dfd) ;
  if (!dir) { if (dfd >= 0) fd_close(dfd) ; return -1 ; }
  rewinddir(dir) ;
  int n = 0 ;
  list->len = 0 ;
  for (;;)
  {
    errno = 0 ;
    struct dirent *d = readdir(dir) ;
    if (!d) break ;
    if ((unsigned int)n >= max) continue ;
    if (strncmp(d->d_name, prefix, 2) || !queue_id_valid(d->d_name + 2) || strlen(d->d_name) >= QPOOL_NAMEMAX) continue ;
    if (!stralloc_catb(list, d->d_name, strlen(d->d_name) + 1)) { n = -1 ; break ; }
    n++ ;
  }
  int e = errno ;
  closedir(dir) ;
  if (e) { errno = e ; return -1 ; }
  return n ;
}

static void fill_error (char const *op, int e)
{
  ylog("error", "op", op, "errno", strerror(e), "pool", "empty-files", (char *)0) ;
  poll(0, 0, 1000) ;   /* the disk may be full: do not spin; tmp/ works meanwhile */
}

/* Files are made in rounds: whatever is missing, then one fsync of new/
 * for the round, and only then are they handed out. */
static void *fill (void *arg)
{
  (void)arg ;
  struct entry made[QPOOL_MAX] ;
  for (;;)
  {
    pthread_mutex_lock(&lock) ;
    while (count > target / 2) pthread_cond_wait(&low, &lock) ;
    unsigned int want = target - count ;
    pthread_mutex_unlock(&lock) ;
    unsigned int n = 0 ;
    int err = 0 ;
    /* first the files qmgr gave back, then new ones for the rest */
    int nr = list_names(&recycled, QUEUE_RECYCLEPREFIX, want) ;
    for (size_t i = 0 ; nr > 0 && i < recycled.len ; i += strlen(recycled.s + i) + 1)
    {
      made[n].fd = adopt(recycled.s + i, made[n].name) ;
      if (made[n].fd >= 0) n++ ;
    }
    while (n < want)
    {
      made[n].fd = make_file(made[n].name) ;
      if (made[n].fd < 0) { err = errno ; break ; }
      n++ ;
    }
    if (n && fsync(newdir) < 0)
    {
      err = errno ;
      for (unsigned int i = 0 ; i < n ; i++) { unlinkat(newdir, made[i].name, 0) ; fd_close(made[i].fd) ; }
      fill_error("fsync new/", err) ;
      continue ;
    }
    pthread_mutex_lock(&lock) ;
    for (unsigned int i = 0 ; i < n ; i++) push(made[i].fd, made[i].name) ;
    pthread_mutex_unlock(&lock) ;
    if (err) fill_error("create a pool file", err) ;
  }
  return 0 ;
}

/* One file named .p<ID> found at start.  Empty: ready (once new/ is
 * synced).  Complete: the message it is, renamed to new/<ID> (it may have
 * been acknowledged: never lose it).  Anything else was never
 * acknowledged: removed.  Returns 1 if new/ changed. */
static int recover_one (char const *name, unsigned int *recovered)
{
  struct stat st ;
  int fd = openat(newdir, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC) ;
  if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
  {
    ylog("error", "op", "recover", "file", name, "errno", strerror(errno), (char *)0) ;
    if (fd >= 0) fd_close(fd) ;
    return 0 ;
  }
  if (!st.st_size)
  {
    if (count < target) { push(fd, name) ; return 0 ; }
    fd_close(fd) ;   /* more than the pool wants (a smaller -p): not a message */
    if (unlinkat(newdir, name, 0) < 0)
    {
      ylog("error", "op", "unlink", "file", name, "errno", strerror(errno), (char *)0) ;
      return 0 ;
    }
    return 1 ;
  }
  int r = queue_pool_complete(fd, name) ;
  fd_close(fd) ;
  if (r < 0)
  {
    ylog("error", "op", "recover", "file", name, "errno", strerror(errno), (char *)0) ;
    return 0 ;
  }
  char bytes[UINT64_FMT] ;
  bytes[uint64_fmt(bytes, (uint64_t)st.st_size)] = 0 ;
  if (r)
  {
    if (queue_rename_noreplace(newdir, name, newdir, name + 2) < 0)
    {
      ylog("error", "op", "recover", "file", name, "errno", strerror(errno), (char *)0) ;
      return 0 ;
    }
    ylog("recovered", "id", name + 2, "bytes", bytes, (char *)0) ;
    (*recovered)++ ;
    return 1 ;
  }
  if (unlinkat(newdir, name, 0) < 0)
  {
    ylog("error", "op", "unlink", "file", name, "errno", strerror(errno), (char *)0) ;
    return 0 ;
  }
  ylog("discarded", "file", name, "bytes", bytes, "reason", "incomplete-pool-file", (char *)0) ;
  return 1 ;
}

static void recover (void)
{
  stralloc list = STRALLOC_ZERO ;
  unsigned int recovered = 0 ;
  int changed = 0 ;
  if (list_names(&list, QUEUE_POOLPREFIX, QPOOL_MAX * 100) < 0) strerr_diefu1sys(111, "read queue/new") ;
  for (size_t i = 0 ; i < list.len ; i += strlen(list.s + i) + 1)
    changed |= recover_one(list.s + i, &recovered) ;
  /* what qmgr gave back while the daemon was down: into the pool, or away */
  if (list_names(&list, QUEUE_RECYCLEPREFIX, QPOOL_MAX * 100) < 0) strerr_diefu1sys(111, "read queue/new") ;
  for (size_t i = 0 ; i < list.len ; i += strlen(list.s + i) + 1)
  {
    char pname[QPOOL_NAMEMAX] ;
    int fd = count < target ? adopt(list.s + i, pname) : -1 ;
    if (fd >= 0) push(fd, pname) ;
    else unlinkat(newdir, list.s + i, 0) ;
    changed = 1 ;
  }
  stralloc_free(&list) ;
  /* the ready files' names, and what was renamed or removed, durable */
  if ((changed || count) && fsync(newdir) < 0) strerr_diefu1sys(111, "sync queue/new") ;
  if (recovered) queue_trigger(qdir) ;
}

/* lock/pool tells qmgr to give finished files back: only while a pool
 * takes them.  We hold an exclusive lock on it for as long as we run, so
 * that a yubin-queued killed with SIGKILL (which cannot remove the file)
 * stops the recycling at once: qmgr gives a file back only while the
 * lock is held (queue_pool_taking).  An open file description lock:
 * qmgr asks with F_OFD_GETLK, which takes nothing from us. */
static int markfd = -1 ;

static int open_mark (void)
{
  int fd = openat(qdir, QUEUE_POOLMARK, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600) ;
  if (fd >= 0 || errno != ENOENT) return fd ;
  /* yubin-qmgr makes lock/ too, maybe between our open and our mkdir */
  if (mkdirat(qdir, "lock", 0700) < 0 && errno != EEXIST) return -1 ;
  return openat(qdir, QUEUE_POOLMARK, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600) ;
}

static void mark (int on)
{
  if (on)
  {
    int fd = open_mark() ;
    if (fd < 0) { ylog("error", "op", "create", "file", QUEUE_POOLMARK, "errno", strerror(errno), (char *)0) ; return ; }
    struct flock lk = { .l_type = F_WRLCK, .l_whence = SEEK_SET } ;
    if (fcntl(fd, F_OFD_SETLK, &lk) < 0)
    {
      ylog("error", "op", "lock", "file", QUEUE_POOLMARK, "errno", strerror(errno), (char *)0) ;
      fd_close(fd) ;
      return ;
    }
    markfd = fd ;
  }
  else
  {
    if (unlinkat(qdir, QUEUE_POOLMARK, 0) < 0 && errno != ENOENT)
      ylog("error", "op", "unlink", "file", QUEUE_POOLMARK, "errno", strerror(errno), (char *)0) ;
    if (markfd >= 0) fd_close(markfd) ;
    markfd = -1 ;
  }
}

void qpool_stop (void)
{
  mark(0) ;
}

void qpool_start (int qfd, int newfd, struct stat const *st, unsigned int size)
{
  qdir = qfd ;
  newdir = newfd ;
  owner = *st ;
  target = size > QPOOL_MAX ? QPOOL_MAX : size ;
  recover() ;   /* complete files become messages even without a pool */
  mark(target > 0) ;
  if (!target) return ;
  pthread_t t ;
  pthread_attr_t attr ;
  if (pthread_attr_init(&attr) || pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED)
   || pthread_attr_setstacksize(&attr, sizeof(struct entry) * QPOOL_MAX + (128 << 10))
   || pthread_create(&t, &attr, &fill, 0))
    strerr_diefu1x(111, "start the pool thread") ;
  pthread_attr_destroy(&attr) ;
}
