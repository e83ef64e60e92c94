/* yubin-preline: give a program the message with the lines qmail-local
 * adds to mbox files in front of it.
 *
 *   yubin-preline [ -frdFRD ] program [ arg ... ]
 *
 * For .qmail lines such as "|preline procmail": programs that expect an
 * mbox-style message (a From_ line, Return-Path:, Delivered-To:) rather
 * than qmail-command's environment.  The lines come from $UFLINE,
 * $RPLINE and $DTLINE, which yubin-local (like qmail-local) sets.  The
 * program reads a pipe; we write the lines and copy our stdin into it,
 * then exit with the program's exit code.  See yubin-preline.1. */

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/wait.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/buffer.h>
#include <skalibs/djbunix.h>
#include <skalibs/sgetopt.h>
#include <skalibs/strerr.h>

#include "exitcodes.h"

#define USAGE "yubin-preline [ -frdFRD ] program [ arg ... ]"

char const *PROG = "preline" ;

/* Stop the program before it sees the end of a message we could not copy
 * whole (it would deliver a truncated message), then die. */
static void die_copy (pid_t pid, char const *what)
{
  int e = errno ;
  if (kill(pid, SIGKILL) < 0) { /* already gone: it saw what it saw */ }
  errno = e ;
  strerr_diefu1sys(EX_TEMP, what) ;
}

int main (int argc, char const *const *argv)
{
  int ufl = 1, rpl = 1, dtl = 1 ;
  char const *uf = getenv("UFLINE") ;
  char const *rp = getenv("RPLINE") ;
  char const *dt = getenv("DTLINE") ;
  {
    subgetopt l = SUBGETOPT_ZERO ;
    for (;;)
    {
      int opt = subgetopt_r(argc, argv, "frdFRD", &l) ;
      if (opt == -1) break ;
      switch (opt)
      {
        case 'f' : ufl = 0 ; break ;
        case 'r' : rpl = 0 ; break ;
        case 'd' : dtl = 0 ; break ;
        case 'F' : ufl = 1 ; break ;
        case 'R' : rpl = 1 ; break ;
        case 'D' : dtl = 1 ; break ;
        default : strerr_dieusage(EX_PERM, USAGE) ;
      }
    }
    argc -= l.ind ; argv += l.ind ;
  }
  if (!argc) strerr_dieusage(EX_PERM, USAGE) ;
  if (!uf || !rp || !dt) strerr_dief1x(EX_PERM, "UFLINE, RPLINE or DTLINE not set: run me from a .qmail program line") ;

  int p[2] ;
  if (pipe(p) < 0) strerr_diefu1sys(EX_TEMP, "make a pipe") ;
  pid_t pid = fork() ;
  if (pid < 0) strerr_diefu1sys(EX_TEMP, "fork") ;
  if (!pid)
  {
    fd_close(p[1]) ;
    if (fd_move(0, p[0]) < 0) strerr_diefu1sys(EX_TEMP, "set up the program's stdin") ;
    execvp(argv[0], (char *const *)argv) ;
    strerr_diefu2sys(errno == ENOENT || errno == EACCES || errno == ENOEXEC ? EX_PERM : EX_TEMP, "run ", argv[0]) ;
  }
  fd_close(p[0]) ;
  {
    /* a program that exits without reading everything is not our error:
       its exit code says what happened */
    struct sigaction sa = { .sa_handler = SIG_IGN } ;
    if (sigaction(SIGPIPE, &sa, 0) < 0) die_copy(pid, "ignore SIGPIPE") ;
  }
  {
    char outbuf[65536] ;
    char inbuf[65536] ;
    buffer out = BUFFER_INIT(&buffer_write, p[1], outbuf, sizeof(outbuf)) ;
    int gone = 0 ;
    if ((ufl && buffer_puts(&out, uf) < 0) || (rpl && buffer_puts(&out, rp) < 0)
     || (dtl && buffer_puts(&out, dt) < 0))
    {
      if (errno != EPIPE) die_copy(pid, "write to the program") ;
      gone = 1 ;
    }
    while (!gone)
    {
      ssize_t r = read(0, inbuf, sizeof(inbuf)) ;
      if (r < 0 && errno == EINTR) continue ;
      if (r < 0) die_copy(pid, "read the message") ;
      if (!r) break ;
      if (buffer_put(&out, inbuf, r) < 0)
      {
        if (errno != EPIPE) die_copy(pid, "write to the program") ;
        gone = 1 ;
      }
    }
    if (!gone && !buffer_flush(&out) && errno != EPIPE) die_copy(pid, "write to the program") ;
    fd_close(p[1]) ;
  }
  int wstat ;
  if (waitpid_nointr(pid, &wstat, 0) != pid) strerr_diefu1sys(EX_TEMP, "wait for the program") ;
  if (WIFSIGNALED(wstat)) strerr_dief1x(EX_TEMP, "the program crashed") ;
  return WEXITSTATUS(wstat) ;
}
