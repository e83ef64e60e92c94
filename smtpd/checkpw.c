/* Running a checkpassword program and waiting for it: see checkpw.h.
 * The child's fd 1 is a pipe whose only writer is the child (and what it
 * execs): EOF on it means it is gone, so the wait is an iopause with a
 * deadline rather than a blocking waitpid. */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/bytestr.h>
#include <skalibs/djbunix.h>
#include <skalibs/iopause.h>
#include <skalibs/tai.h>

#include "checkpw.h"

extern char **environ ;

/* fd moved to a number above 3 (keeps close-on-exec): so that the dup2
 * onto 3 in the child really makes a new, inheritable descriptor */
static int above3 (int fd)
{
  if (fd > 3) return fd ;
  int n = fcntl(fd, F_DUPFD_CLOEXEC, 4) ;
  int e = errno ;
  fd_close(fd) ;
  errno = e ;
  return n ;
}

static int spawn (pid_t *pid, char const *prog, char const *next, int datafd, int outfd)
{
  posix_spawn_file_actions_t fa ;
  posix_spawnattr_t attr ;
  sigset_t def ;
  int e = posix_spawn_file_actions_init(&fa) ;
  if (e) return e ;
  e = posix_spawnattr_init(&attr) ;
  if (e) { posix_spawn_file_actions_destroy(&fa) ; return e ; }
  sigemptyset(&def) ;
  sigaddset(&def, SIGPIPE) ;
  sigaddset(&def, SIGCHLD) ;
  if (!(e = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0))
   && !(e = posix_spawn_file_actions_adddup2(&fa, outfd, 1))
   && !(e = posix_spawn_file_actions_adddup2(&fa, datafd, 3))
   && !(e = posix_spawnattr_setsigdefault(&attr, &def))
   && !(e = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF)))
  {
    char *argv[3] = { (char *)prog, (char *)next, 0 } ;
    e = posix_spawn(pid, prog, &fa, &attr, argv, environ) ;
  }
  posix_spawnattr_destroy(&attr) ;
  posix_spawn_file_actions_destroy(&fa) ;
  return e ;
}

/* Until the child closes its fd 1 (exits), or the deadline. 1 gone, 0 deadline. */
static int wait_eof (int fd, tain const *deadline)
{
  for (;;)
  {
    char buf[256] ;
    iopause_fd x = { .fd = fd, .events = IOPAUSE_READ, .revents = 0 } ;
    tain_now_g() ;
    int r = iopause_g(&x, 1, deadline) ;
    if (r < 0) { if (errno == EINTR) continue ; return 0 ; }
    if (!r) return 0 ;
    ssize_t n = fd_read(fd, buf, sizeof(buf)) ;
    if (n > 0) continue ;    /* whatever it says on stdout is not for us */
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue ;
    return 1 ;
  }
}

/* waitpid, polling until the deadline.  1 reaped, 0 deadline. */
static int reap (pid_t pid, int *wstat, tain const *deadline)
{
  for (;;)
  {
    pid_t r = waitpid(pid, wstat, WNOHANG) ;
    if (r == pid) return 1 ;
    if (r < 0 && errno != EINTR) { *wstat = -1 ; return 1 ; }
    tain_now_g() ;
    if (!tain_less(&STAMP, deadline)) return 0 ;
    tain t, step ;
    tain_from_millisecs(&step, 10) ;
    tain_add_g(&t, &step) ;
    if (tain_less(deadline, &t)) t = *deadline ;
    if (iopause_g(0, 0, &t) < 0 && errno != EINTR) return 0 ;
  }
}

int checkpw_run (char const *prog, char const *next, char const *login, size_t loginlen,
                 char const *pass, size_t passlen, char const *extra, int nice,
                 tain const *deadline, int *wstat)
{
  char buf[CHECKPW_MAX] ;
  size_t extralen = strlen(extra) ;
  int pd[2], po[2], e ;
  pid_t pid ;
  *wstat = -1 ;
  if (memchr(login, 0, loginlen) || memchr(pass, 0, passlen)
   || loginlen + passlen + extralen + 3 > sizeof(buf)) return (errno = E2BIG, -1) ;
  if (pipecoe(pd) < 0) return -1 ;
  if (pipecoe(po) < 0) { fd_close(pd[0]) ; fd_close(pd[1]) ; return -1 ; }
  pd[0] = above3(pd[0]) ;
  if (pd[0] < 0) goto err ;
  if (ndelay_on(po[0]) < 0) goto err ;
  e = spawn(&pid, prog, next, pd[0], po[1]) ;
  if (e) { errno = e ; goto err ; }
  fd_close(pd[0]) ; pd[0] = -1 ;
  fd_close(po[1]) ; po[1] = -1 ;
  /* before it has its input, so it has done no work yet; best effort:
     the priority is a courtesy, not a guarantee */
  if (nice > 0 && setpriority(PRIO_PROCESS, pid, nice) < 0) errno = 0 ;

  size_t n = 0 ;
  memcpy(buf, login, loginlen) ; n += loginlen ; buf[n++] = 0 ;
  memcpy(buf + n, pass, passlen) ; n += passlen ; buf[n++] = 0 ;
  memcpy(buf + n, extra, extralen) ; n += extralen ; buf[n++] = 0 ;
  /* at most PIPE_BUF bytes into an empty pipe: never blocks; if the child
     went away without reading, its exit status says what happened */
  ssize_t w = fd_write(pd[1], buf, n) ;
  (void)w ;
  byte_zzero(buf, sizeof(buf)) ;
  fd_close(pd[1]) ;

  int gone = wait_eof(po[0], deadline) ;
  fd_close(po[0]) ;
  if (!gone || !reap(pid, wstat, deadline))
  {
    kill(pid, SIGKILL) ;
    while (waitpid(pid, wstat, 0) < 0 && errno == EINTR) ;
    *wstat = -1 ;
    return CHECKPW_TEMP ;
  }
  if (*wstat != -1 && WIFEXITED(*wstat))
  {
    if (!WEXITSTATUS(*wstat)) return CHECKPW_OK ;
    if (WEXITSTATUS(*wstat) == 1) return CHECKPW_BAD ;
  }
  return CHECKPW_TEMP ;

 err:
  e = errno ;
  if (pd[0] >= 0) fd_close(pd[0]) ;
  fd_close(pd[1]) ;
  fd_close(po[0]) ;
  fd_close(po[1]) ;
  errno = e ;
  return -1 ;
}
