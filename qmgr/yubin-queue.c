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

#include "exitcodes.h"
#include "qq.h"
#include "queue.h"
#include "qwrite.h"
#include "root.h"
#include "ylog.h"

#define TIMEOUT 86400   /* the whole job: a writer that stalls longer loses */

char const *PROG = "queue" ;

/* The message being written; the SIGALRM handler removes its files. */
static struct qwrite w = QWRITE_ZERO ;

static void on_alarm (int sig)
{
  (void)sig ;
  qwrite_cleanup(&w) ;
  _exit(QQ_TIMEOUT) ;
}

/* A step of qwrite failed: remove what it made, die with its reason. */
static void die (int code)
{
  qwrite_cleanup(&w) ;
  if (w.sys)
  {
    errno = w.err ;
    strerr_diefu1sys(code, w.what) ;
  }
  strerr_diefu1x(code, w.what) ;
}

/* Who runs us.  Installed setuid to the queue user, we can tell:
 *  - the network daemons (their real gid is the group of the instance's
 *    libexec/, which only they may enter): their smtpd wrote its own
 *    Received: and applied its limits;
 *  - the queue user itself (qmgr's bounces), or anyone when we are not
 *    set-id at all (an instance of one ordinary user: no boundary);
 *  - a local user or program: they get qmail-queue's treatment, a
 *    Received: line naming their uid (the envelope is theirs to choose,
 *    so the message says who chose it) and control/databytes.
 * yubin-queued tells the same from its peer's credentials. */
static int caller_trusted (void)
{
  return getuid() == geteuid() || qwrite_trusted_gid(getgid()) ;
}

int main (void)
{
  stralloc sa = STRALLOC_ZERO ;
  struct stat st ;
  int code ;

  umask(077) ;
  /* A closed fd 0 or 1 would let our own files take its number. */
  if (fcntl(0, F_GETFD) < 0 || fcntl(1, F_GETFD) < 0) _exit(QQ_READ) ;
  if (!fd_ensure_open(2, 1)) _exit(QQ_BUG) ;
  if (!sig_catch(SIGALRM, &on_alarm)) strerr_diefu1sys(QQ_BUG, "catch SIGALRM") ;
  /* qmgr may die between our open of its trigger fifo and our write: the
     message is queued by then, and must not be reported as lost. */
  if (!sig_ignore(SIGPIPE)) strerr_diefu1sys(QQ_BUG, "ignore SIGPIPE") ;
  alarm(TIMEOUT) ;

  if (!yubin_path(&sa, "queue")) strerr_diefu1sys(QQ_NOMEM, "allocate") ;
  int qfd = open(sa.s, O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (qfd < 0) strerr_diefu2sys(QQ_QUEUE, "open the queue directory ", sa.s) ;
  if (fstat(qfd, &st) < 0) strerr_diefu2sys(QQ_QUEUE, "stat ", sa.s) ;
  int newfd = openat(qfd, "new", O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (newfd < 0) strerr_diefu3sys(QQ_QUEUE, "open ", sa.s, "/new") ;

  /* steps 1 to 7 of qmgr/README */
  if ((code = qwrite_open(&w, qfd, &st, getuid()))) die(code) ;
  if (!caller_trusted() && (code = qwrite_received(&w, getpid(), getuid()))) die(code) ;
  if ((code = qwrite_copy(&w, 0, 0))) die(code) ;
  if ((code = qwrite_envelope(&w, 1, 0))) die(code) ;
  if ((code = qwrite_commit(&w))) die(code) ;
  /* Past the rename, a failure is reported but the file stays: qmgr may
     deliver it (a duplicate if the client retries, never a loss). */
  if (fsync(newfd) < 0) strerr_diefu1sys(QQ_WRITE, "sync new/") ;
  fd_close(newfd) ;
  alarm(0) ;
  queue_trigger(qfd) ;
  fd_close(qfd) ;

  {
    char bytes[UINT64_FMT], rcpts[UINT64_FMT], uid[UINT64_FMT] ;
    bytes[uint64_fmt(bytes, w.h.size)] = 0 ;
    rcpts[uint64_fmt(rcpts, w.nrcpts)] = 0 ;
    uid[uint64_fmt(uid, w.h.uid)] = 0 ;
    ylog("queued", "id", w.id, "bytes", bytes, "rcpts", rcpts, "uid", uid, (char *)0) ;
  }
  stralloc_free(&sa) ;
  qwrite_free(&w) ;
  return QQ_OK ;
}
