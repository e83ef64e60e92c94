/* The qmail-queue client: see qq.h. */

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/djbunix.h>
#include <skalibs/stralloc.h>

#include "qq.h"
#include "root.h"

extern char **environ ;

int qq_program (stralloc *prog)
{
  char const *x = getenv("QMAILQUEUE") ;
  prog->len = 0 ;
  if (x && *x) return stralloc_cats(prog, x) && stralloc_0(prog) ;
  return yubin_sibling(prog, "yubin-queue") ;
}

static void close_pair (int p[2])
{
  fd_close(p[0]) ;
  fd_close(p[1]) ;
}

/* one byte 'Q' on sock with fd attached */
static ssize_t send_hello (int sock, int fd)
{
  char c = 'Q' ;
  struct iovec v = { .iov_base = &c, .iov_len = 1 } ;
  union { struct cmsghdr h ; char buf[CMSG_SPACE(sizeof(int))] ; } ctl ;
  struct msghdr mh = { .msg_iov = &v, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) } ;
  memset(&ctl, 0, sizeof(ctl)) ;
  struct cmsghdr *h = CMSG_FIRSTHDR(&mh) ;
  h->cmsg_level = SOL_SOCKET ;
  h->cmsg_type = SCM_RIGHTS ;
  h->cmsg_len = CMSG_LEN(sizeof(int)) ;
  memcpy(CMSG_DATA(h), &fd, sizeof(int)) ;
  ssize_t r ;
  do r = sendmsg(sock, &mh, MSG_NOSIGNAL) ;
  while (r < 0 && errno == EINTR) ;
  return r ;
}

/* yubin-queued, if it listens: 1 connected (q is ready), 0 not there
 * (run the program instead). */
static int qq_daemon (struct qq *q)
{
  static struct sockaddr_un sa = { .sun_family = AF_UNIX } ;
  static int known = 0 ;   /* 1: sa is the path, -1: no usable path */
  if (!known)
  {
    stralloc fn = STRALLOC_ZERO ;
    known = -1 ;
    if (yubin_path(&fn, "queued/sock") && fn.len <= sizeof(sa.sun_path))
    {
      memcpy(sa.sun_path, fn.s, fn.len) ;
      known = 1 ;
    }
    stralloc_free(&fn) ;
  }
  if (known < 0) return 0 ;
  int e = errno ;
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) ;
  if (s < 0) goto no ;
  if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) goto close ;
  /* '+': go ahead; anything else (a local caller over its share of the
     daemon) or EOF: run the program instead, before any byte is sent */
  {
    char go ;
    ssize_t r ;
    do r = read(s, &go, 1) ; while (r < 0 && errno == EINTR) ;
    if (r != 1 || go != '+') goto close ;
  }
  int pm[2] ;
  if (pipecoe(pm) < 0) goto close ;
  /* 'Q' and the read end of the message pipe; the envelope follows on s */
  if (send_hello(s, pm[0]) < 0)
  {
    close_pair(pm) ;
    goto close ;
  }
  fd_close(pm[0]) ;
  struct ucred cred ;
  socklen_t len = sizeof(cred) ;
  q->pid = getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ? 0 : cred.pid ;
  q->sock = s ;
  q->msgfd = pm[1] ;
  q->envfd = s ;
  q->err = 0 ;
  q->len = 0 ;
  return 1 ;
 close:
  fd_close(s) ;
 no:
  errno = e ;
  return 0 ;
}

int qq_open (struct qq *q, char const *prog)
{
  int pm[2], pe[2] ;
  char const *x = getenv("QMAILQUEUE") ;
  if (!(x && *x) && qq_daemon(q)) return 0 ;
  q->sock = -1 ;
  if (pipecoe(pm) < 0) return -1 ;
  if (pipecoe(pe) < 0) { int e = errno ; close_pair(pm) ; errno = e ; return -1 ; }
  /* vfork + execve rather than posix_spawn: glibc's posix_spawn child
     resets every signal disposition (about 125 sigaction calls), a
     measurable part of smtpd's cost per message.  The vfork child shares
     our memory but not our signal handlers (no CLONE_SIGHAND) nor our
     signal mask, so it can reset what it needs for itself. */
  char *argv[2] = { (char *)prog, 0 } ;
  volatile int childerr = 0 ;   /* shared with the vfork child */
  int e = 0 ;
  pid_t pid = vfork() ;
  if (!pid)
  {
    struct sigaction sa = { .sa_handler = SIG_DFL } ;
    sigset_t none ;
    sigemptyset(&none) ;
    if (dup2(pm[0], 0) >= 0 && dup2(pe[0], 1) >= 0
     && sigaction(SIGPIPE, &sa, 0) >= 0 && sigprocmask(SIG_SETMASK, &none, 0) >= 0)
      execve(prog, argv, environ) ;
    childerr = errno ;
    _exit(QQ_NOEXEC) ;
  }
  if (pid < 0) e = errno ;
  else if (childerr)
  {
    int wstat ;
    e = childerr ;
    if (waitpid_nointr(pid, &wstat, 0) < 0) e = errno ;
  }
  fd_close(pm[0]) ;
  fd_close(pe[0]) ;
  if (e)
  {
    fd_close(pm[1]) ;
    fd_close(pe[1]) ;
    q->pid = 0 ;   /* so that a stray qq_abort or qq_close waits for nothing */
    q->msgfd = q->envfd = -1 ;
    errno = e ;
    return -1 ;
  }
  q->pid = pid ;
  q->msgfd = pm[1] ;
  q->envfd = pe[1] ;
  q->err = 0 ;
  q->len = 0 ;
  return 0 ;
}

/* all of s to the daemon's socket, without SIGPIPE if it died */
static int sock_write (int fd, char const *s, size_t len)
{
  while (len)
  {
    ssize_t r = send(fd, s, len, MSG_NOSIGNAL) ;
    if (r < 0)
    {
      if (errno == EINTR) continue ;
      return 0 ;
    }
    s += r ;
    len -= r ;
  }
  return 1 ;
}

static void qq_write (struct qq *q, int fd, char const *s, size_t len)
{
  if (fd < 0) { q->err = 1 ; return ; }
  if (q->err) return ;
  if (fd == q->sock ? !sock_write(fd, s, len) : allwrite(fd, s, len) < len) q->err = 1 ;
}

static void qq_flush (struct qq *q, int fd)
{
  if (q->len) qq_write(q, fd, q->buf, q->len) ;
  q->len = 0 ;
}

/* s[0..len) to fd through buf: the message before qq_from, the envelope
 * after it (one write for the usual envelope, not two per address) */
static void qq_buffer (struct qq *q, int fd, char const *s, size_t len)
{
  if (q->len + len > sizeof(q->buf))
  {
    qq_flush(q, fd) ;
    if (len > sizeof(q->buf)) { qq_write(q, fd, s, len) ; return ; }
  }
  memcpy(q->buf + q->len, s, len) ;
  q->len += len ;
}

void qq_put (struct qq *q, char const *s, size_t len)
{
  if (q->msgfd < 0) { q->err = 1 ; return ; }   /* after qq_from */
  qq_buffer(q, q->msgfd, s, len) ;
}

void qq_puts (struct qq *q, char const *s)
{
  qq_put(q, s, strlen(s)) ;
}

static void qq_envelope (struct qq *q, char kind, char const *addr)
{
  qq_buffer(q, q->envfd, &kind, 1) ;
  qq_buffer(q, q->envfd, addr, strlen(addr) + 1) ;
}

void qq_from (struct qq *q, char const *sender)
{
  if (q->msgfd >= 0)
  {
    qq_flush(q, q->msgfd) ;
    fd_close(q->msgfd) ;
    q->msgfd = -1 ;
  }
  else q->err = 1 ;   /* twice */
  qq_envelope(q, 'F', sender) ;
}

void qq_to (struct qq *q, char const *rcpt)
{
  qq_envelope(q, 'T', rcpt) ;
}

/* The daemon's verdict: one byte, after the envelope (ended: the
 * envelope's final '\0' was sent); EOF means it died, or refused to read
 * a truncated envelope. */
static int qq_answer (struct qq *q, int ended)
{
  int code = QQ_CRASHED ;
  if (q->msgfd >= 0) { fd_close(q->msgfd) ; q->msgfd = -1 ; }
  if (ended)
  {
    unsigned char c ;
    ssize_t r ;
    do r = read(q->sock, &c, 1) ;
    while (r < 0 && errno == EINTR) ;
    if (r == 1) code = c ;
  }
  fd_close(q->sock) ;
  q->sock = q->envfd = -1 ;
  q->pid = 0 ;
  return code ;
}

static int qq_wait (struct qq *q)
{
  int wstat ;
  if (q->sock >= 0) return qq_answer(q, 0) ;
  if (q->msgfd >= 0) { fd_close(q->msgfd) ; q->msgfd = -1 ; }
  if (q->envfd >= 0) { fd_close(q->envfd) ; q->envfd = -1 ; }
  if (q->pid <= 0 || waitpid_nointr(q->pid, &wstat, 0) != q->pid) return QQ_NOWAIT ;
  if (WIFSIGNALED(wstat)) return QQ_CRASHED ;
  return WEXITSTATUS(wstat) ;
}

int qq_close (struct qq *q)
{
  if (q->msgfd >= 0) q->err = 1 ;   /* no qq_from: no envelope to end */
  else
  {
    qq_buffer(q, q->envfd, "", 1) ;
    qq_flush(q, q->envfd) ;
  }
  int code = q->sock >= 0 ? qq_answer(q, !q->err) : qq_wait(q) ;
  /* it said yes to an envelope or message that did not arrive whole */
  if (!code && q->err) code = QQ_READ ;
  return code ;
}

void qq_abort (struct qq *q)
{
  q->len = 0 ;   /* what is still buffered is never sent */
  (void)qq_wait(q) ;
}

char const *qq_status (int code)
{
  switch (code)
  {
    case QQ_OK : return "" ;
    case QQ_CRASHED : return "Z4.3.0 qq crashed" ;
    case QQ_NOWAIT : return "Z4.3.0 qq waitpid surprise" ;
    case 115 :   /* qmail's own code for a too long address */
    case QQ_TOOLONG : return "D5.1.3 envelope address too long for qq" ;
    case QQ_REFUSED : return "D5.3.0 mail server permanently rejected message" ;
    case QQ_NOMEM : return "Z4.3.0 qq out of memory" ;
    case QQ_TIMEOUT : return "Z4.3.0 qq timeout" ;
    case QQ_WRITE : return "Z4.3.0 qq write error or disk full" ;
    case QQ_READ : return "Z4.3.0 qq read error" ;
    case QQ_CONFIG : return "Z4.3.0 qq unable to read configuration" ;
    case QQ_NETWORK : return "Z4.3.0 qq trouble making network connection" ;
    case QQ_OPEN : return "Z4.3.0 qq trouble in home directory" ;
    case QQ_QUEUE :
    case QQ_PID :
    case QQ_TRIGGER :
    case 65 :
    case 66 : return "Z4.3.0 qq trouble creating files in queue" ;
    case QQ_TEMPREFUSED : return "Z4.3.0 mail server temporarily rejected message" ;
    case 72 : return "Z4.4.1 connection to mail server timed out" ;
    case 73 : return "Z4.4.1 connection to mail server rejected" ;
    case 74 : return "Z4.4.2 communication with mail server failed" ;
    case QQ_BUG : return "Z4.3.0 qq internal bug" ;
    case QQ_ENVELOPE : return "Z4.3.0 qq envelope format error" ;
    case QQ_NOEXEC : return "Z4.3.0 unable to exec qq" ;
    default :
      if (code >= 11 && code <= 40) return "D5.3.0 qq permanent problem" ;
      return "Z4.3.0 qq temporary problem" ;
  }
}
