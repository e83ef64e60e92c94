/* yubin-queue: the qmail-queue interface.  Reads a message on fd 0 and its
 * envelope on fd 1, makes both durable in queue/new/, pokes yubin-qmgr.
 * Exit codes are qmail-queue's (exitcodes.h).  See yubin-queue(8) and
 * qmgr/README for the file format and the fsyncs.
 *
 * May be installed setuid to the queue user: it reads no environment
 * (yubin_root() ignores it when setuid), takes nothing from its caller but
 * the two streams, and creates files only under the queue directory. */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <time.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/djbunix.h>
#include <skalibs/sig.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/types.h>

#include "control.h"
#include "date822.h"
#include "exitcodes.h"
#include "qq.h"
#include "queue.h"
#include "root.h"
#include "ylog.h"

#define TIMEOUT 86400   /* the whole job: a writer that stalls longer loses */

char const *PROG = "queue" ;

/* Names to remove if we fail; written before the files exist, read by the
 * SIGALRM handler, hence fixed buffers. */
static char tmpfn[4 + QUEUE_IDMAX] = "" ;
static char envfn[4 + QUEUE_IDMAX] = "" ;
static int qfd = -1 ;

static void cleanup (void)
{
  if (tmpfn[0]) unlinkat(qfd, tmpfn, 0) ;
  if (envfn[0]) unlinkat(qfd, envfn, 0) ;
}

static void on_alarm (int sig)
{
  (void)sig ;
  cleanup() ;
  _exit(QQ_TIMEOUT) ;
}

static void die (int code, char const *what)
{
  int e = errno ;
  cleanup() ;
  errno = e ;
  strerr_diefu1sys(code, what) ;
}

static void diex (int code, char const *what)
{
  cleanup() ;
  strerr_dief1x(code, what) ;
}

/* Who runs us.  Installed setuid to the queue user, we can tell:
 *  - the network daemons (their real gid is the group of the instance's
 *    libexec/, which only they may enter): their smtpd wrote its own
 *    Received: and applied its limits;
 *  - the queue user itself (qmgr's bounces), or anyone when we are not
 *    set-id at all (an instance of one ordinary user: no boundary);
 *  - a local user or program: they get qmail-queue's treatment, a
 *    Received: line naming their uid (the envelope is theirs to choose,
 *    so the message says who chose it) and control/databytes. */
enum caller { CALLER_TRUSTED, CALLER_LOCAL } ;

static enum caller caller_kind (void)
{
  if (getuid() == geteuid()) return CALLER_TRUSTED ;
  stralloc fn = STRALLOC_ZERO ;
  struct stat st ;
  if (!yubin_path(&fn, "libexec")) strerr_diefu1sys(QQ_NOMEM, "allocate") ;
  int r = stat(fn.s, &st) ;
  stralloc_free(&fn) ;
  if (r == 0 && S_ISDIR(st.st_mode) && !st.st_uid && !(st.st_mode & 07) && getgid() == st.st_gid)
    return CALLER_TRUSTED ;
  return CALLER_LOCAL ;
}

/* qmail-queue's line for a local caller, first in the message. */
static uint64_t received_local (int fd, uint64_t birth)
{
  char date[DATE822_LEN], pid[PID_FMT], uid[UID_FMT] ;
  stralloc sa = STRALLOC_ZERO ;
  date822_fmt(date, (time_t)birth) ;
  pid[pid_fmt(pid, getpid())] = 0 ;
  uid[uid_fmt(uid, getuid())] = 0 ;
  if (!stralloc_cats(&sa, "Received: (yubin-queue ") || !stralloc_cats(&sa, pid)
   || !stralloc_cats(&sa, " invoked by uid ") || !stralloc_cats(&sa, uid)
   || !stralloc_cats(&sa, ");\n\t") || !stralloc_cats(&sa, date) || !stralloc_catb(&sa, "\n", 1))
    die(QQ_NOMEM, "allocate") ;
  if (allwrite(fd, sa.s, sa.len) < sa.len) die(QQ_WRITE, "write the queue file") ;
  uint64_t n = sa.len ;
  stralloc_free(&sa) ;
  return n ;
}

/* Copy fd 0 to fd at QUEUE_MSGOFF, after the Received: line of a local
 * caller, who is also held to control/databytes (0: no limit).  Returns
 * the byte count. */
static uint64_t copy_message (int fd, enum caller who, uint64_t birth)
{
  char buf[65536] ;
  uint64_t total = 0 ;
  unsigned long max = 0 ;
  if (lseek(fd, QUEUE_MSGOFF, SEEK_SET) < 0) die(QQ_WRITE, "seek in the queue file") ;
  if (who == CALLER_LOCAL)
  {
    if (control_readulong(&max, "databytes", 0) < 0) die(QQ_CONFIG, "read control/databytes") ;
    total = received_local(fd, birth) ;
    if (max) max += total ;
  }
  for (;;)
  {
    ssize_t r = read(0, buf, sizeof(buf)) ;
    if (r < 0)
    {
      if (errno == EINTR) continue ;
      die(QQ_READ, "read the message") ;
    }
    if (!r) return total ;
    if (allwrite(fd, buf, r) < (size_t)r) die(QQ_WRITE, "write the queue file") ;
    total += r ;
    if (max && total > max) diex(QQ_REFUSED, "message refused: larger than control/databytes") ;
  }
}

/* Read the envelope from fd 1 into env, with its recipients' state bytes
 * 'T'.  Stops at the final '\0' (nothing after it is read).  Malformed: 91;
 * EOF or error before the end: 54, as qmail-queue. */
static void read_envelope (stralloc *env, size_t *nrcpts)
{
  char buf[8192] ;
  size_t recstart = 0 ;   /* offset in env of the current record */
  size_t records = 0 ;
  for (;;)
  {
    ssize_t r = read(1, buf, sizeof(buf)) ;
    if (r < 0)
    {
      if (errno == EINTR) continue ;
      die(QQ_READ, "read the envelope") ;
    }
    if (!r) diex(QQ_READ, "unable to read the envelope: end of file before its end") ;
    for (ssize_t i = 0 ; i < r ; i++)
    {
      char c = buf[i] ;
      if (env->len == recstart)   /* first byte of a record */
      {
        if (!records ? c != 'F' : (c != 'T' && c != 0))
          diex(QQ_ENVELOPE, "envelope format error") ;
        if (!c)
        {
          if (!stralloc_catb(env, "", 1)) die(QQ_NOMEM, "allocate") ;
          *nrcpts = records - 1 ;
          return ;
        }
      }
      if (!stralloc_catb(env, &c, 1)) die(QQ_NOMEM, "allocate") ;
      if (!c)
      {
        if (!queue_addr_ok(env->s + recstart + 1, env->len - recstart - 2))
          diex(QQ_ENVELOPE, "envelope format error: bad address") ;
        recstart = env->len ;
        records++ ;
      }
      else if (env->len - recstart > QUEUE_ADDRMAX + 1)
        diex(QQ_ENVELOPE, "envelope format error: address too long") ;
      else if (env->len > QUEUE_ENVMAX) diex(QQ_ENVELOPE, "envelope too large") ;
    }
  }
}

/* The envelope does not fit in the header block: env/ID, durable. */
static void write_envfile (char const *id, stralloc const *env)
{
  memcpy(envfn, "env/", 4) ;
  memcpy(envfn + 4, id, strlen(id) + 1) ;
  int fd = openat(qfd, envfn, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600) ;
  if (fd < 0) { envfn[0] = 0 ; die(QQ_WRITE, "create the envelope file") ; }
  if (allwrite(fd, env->s, env->len) < env->len) die(QQ_WRITE, "write the envelope file") ;
  if (fsync(fd) < 0) die(QQ_WRITE, "sync the envelope file") ;
  fd_close(fd) ;
  int dfd = openat(qfd, "env", O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (dfd < 0 || fsync(dfd) < 0) die(QQ_WRITE, "sync env/") ;
  fd_close(dfd) ;
}

int main (void)
{
  char id[QUEUE_IDMAX] ;
  char newfn[4 + QUEUE_IDMAX] ;
  stralloc sa = STRALLOC_ZERO ;
  stralloc env = STRALLOC_ZERO ;
  struct queue_head h = { .msgoff = QUEUE_MSGOFF, .uid = getuid() } ;
  struct stat st ;
  size_t nrcpts = 0 ;

  umask(077) ;
  /* A closed fd 0 or 1 would let our own files take its number. */
  if (fcntl(0, F_GETFD) < 0 || fcntl(1, F_GETFD) < 0) _exit(QQ_READ) ;
  if (!fd_ensure_open(2, 1)) _exit(QQ_BUG) ;
  if (!sig_catch(SIGALRM, &on_alarm)) strerr_diefu1sys(QQ_BUG, "catch SIGALRM") ;
  alarm(TIMEOUT) ;

  if (!yubin_path(&sa, "queue")) strerr_diefu1sys(QQ_NOMEM, "allocate") ;
  qfd = open(sa.s, O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (qfd < 0) strerr_diefu2sys(QQ_QUEUE, "open the queue directory ", sa.s) ;
  if (fstat(qfd, &st) < 0) strerr_diefu2sys(QQ_QUEUE, "stat ", sa.s) ;
  int newfd = openat(qfd, "new", O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (newfd < 0) strerr_diefu3sys(QQ_QUEUE, "open ", sa.s, "/new") ;

  int fd = -1 ;
  for (int tries = 0 ; fd < 0 ; tries++)
  {
    queue_id_make(id, &h.birth) ;
    memcpy(tmpfn, "tmp/", 4) ;
    memcpy(tmpfn + 4, id, strlen(id) + 1) ;
    fd = openat(qfd, tmpfn, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600) ;
    if (fd < 0 && (errno != EEXIST || tries >= 3))
    {
      tmpfn[0] = 0 ;
      strerr_diefu3sys(QQ_WRITE, "create ", sa.s, "/tmp/ file") ;
    }
  }
  /* Run by root rather than setuid: the file must still belong to the queue
     user, or yubin-qmgr could not record deliveries in it. */
  if (geteuid() == 0 && st.st_uid != 0 && fchown(fd, st.st_uid, st.st_gid) < 0)
    die(QQ_WRITE, "chown the queue file") ;

  h.size = copy_message(fd, caller_kind(), h.birth) ;
  read_envelope(&env, &nrcpts) ;

  sa.len = 0 ;
  if (!queue_head_fmt(&sa, &h)) die(QQ_NOMEM, "allocate") ;
  /* the envelope stays clear of the retry record (queue.h) */
  if (sa.len + env.len > QUEUE_NEXTOFF)
  {
    h.envfile = 1 ;
    sa.len = 0 ;
    if (!queue_head_fmt(&sa, &h)) die(QQ_NOMEM, "allocate") ;
    write_envfile(id, &env) ;
  }
  else if (!stralloc_cat(&sa, &env)) die(QQ_NOMEM, "allocate") ;
  /* pad the header block: readers stop at the envelope's final NUL */
  if (!stralloc_ready(&sa, QUEUE_MSGOFF)) die(QQ_NOMEM, "allocate") ;
  memset(sa.s + sa.len, 0, QUEUE_MSGOFF - sa.len) ;
  sa.len = QUEUE_MSGOFF ;
  if (pwrite(fd, sa.s, sa.len, 0) != (ssize_t)sa.len) die(QQ_WRITE, "write the queue file header") ;
  if (fsync(fd) < 0) die(QQ_WRITE, "sync the queue file") ;
  fd_close(fd) ;

  memcpy(newfn, "new/", 4) ;
  memcpy(newfn + 4, id, strlen(id) + 1) ;
  if (renameat(qfd, tmpfn, qfd, newfn) < 0) die(QQ_WRITE, "move the queue file into new/") ;
  tmpfn[0] = 0 ;
  envfn[0] = 0 ;   /* from now on the message is qmgr's */
  /* Past the rename, a failure is reported but the file stays: qmgr may
     deliver it (a duplicate if the client retries, never a loss). */
  if (fsync(newfd) < 0) strerr_diefu1sys(QQ_WRITE, "sync new/") ;
  fd_close(newfd) ;
  alarm(0) ;
  queue_trigger(qfd) ;
  fd_close(qfd) ;

  {
    char bytes[UINT64_FMT], rcpts[UINT64_FMT], uid[UINT64_FMT] ;
    bytes[uint64_fmt(bytes, h.size)] = 0 ;
    rcpts[uint64_fmt(rcpts, nrcpts)] = 0 ;
    uid[uint64_fmt(uid, h.uid)] = 0 ;
    ylog("queued", "id", id, "bytes", bytes, "rcpts", rcpts, "uid", uid, (char *)0) ;
  }
  stralloc_free(&sa) ;
  stralloc_free(&env) ;
  return QQ_OK ;
}
