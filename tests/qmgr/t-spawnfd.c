/* t-spawnfd: qmgr/spawnproto.c's fd passing (spawn_sendfd, spawn_fill_fds),
 * as qmgr and yubin-rspawn use it: list requests each with a file's fd
 * attached to its first byte, sent whole or in pieces, read in small and
 * large bites; every request decoded must get its own file, in order. */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <skalibs/djbunix.h>
#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>

#include "qmgr/spawnproto.h"

#define N 20

static int failed ;

static void check (char const *name, int ok, char const *why)
{
  if (ok) printf("PASS %s\n", name) ;
  else { printf("FAIL %s: %s\n", name, why) ; failed = 1 ; }
}

/* Send N requests, request k with a pipe whose read end holds "k"; piece:
 * bytes per send after the first (0: whole records).  Read with bite. */
static int round_trip (size_t piece, size_t bite, char *why, size_t whylen)
{
  int sv[2] ;
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) { snprintf(why, whylen, "socketpair") ; return 0 ; }
  int ok = 1 ;
  /* the writer in a child: many small pieces may fill the socket */
  pid_t pid = fork() ;
  if (pid < 0) { snprintf(why, whylen, "fork") ; return 0 ; }
  if (pid) goto reader ;
  fd_close(sv[1]) ;
  for (int k = 0 ; k < N && ok ; k++)
  {
    int p[2] ;
    if (pipe(p) < 0) { snprintf(why, whylen, "pipe") ; ok = 0 ; break ; }
    char c = 'a' + k ;
    if (write(p[1], &c, 1) != 1) ok = 0 ;
    fd_close(p[1]) ;
    stralloc sa = STRALLOC_ZERO ;
    char jobid[4] = { '0' + k / 10, '0' + k % 10, 0 } ;
    struct spawn_request rq = { .jobid = jobid, .msgid = "1.2.3", .msgoff = 4096, .sender = "s@x",
                                .rcpts = "a@example.net\0b@example.net", .nrcpts = 2 } ;
    if (!spawn_request_put(&sa, &rq, SPAWN_LIST)) ok = 0 ;
    size_t first = piece && piece < sa.len ? piece : sa.len ;
    if (ok && spawn_sendfd(sv[0], sa.s, first, p[0]) != (ssize_t)first) ok = 0 ;
    for (size_t pos = first ; ok && pos < sa.len ; )
    {
      size_t n = piece && piece < sa.len - pos ? piece : sa.len - pos ;
      if (write(sv[0], sa.s + pos, n) != (ssize_t)n) ok = 0 ;
      pos += n ;
    }
    fd_close(p[0]) ;   /* the kernel holds it in flight */
    stralloc_free(&sa) ;
  }
  _exit(!ok) ;
 reader:
  fd_close(sv[0]) ;
  struct spawn_decoder d = SPAWN_DECODER(SPAWN_LISTMAX, SPAWN_LIST) ;
  genalloc fds = GENALLOC_ZERO ;
  int got = 0 ;
  while (ok)
  {
    struct spawn_request rq ;
    int r = spawn_request_next(&d, &rq) ;
    if (r < 0) { snprintf(why, whylen, "decode") ; ok = 0 ; break ; }
    if (!r)
    {
      ssize_t rr = spawn_fill_fds(&d, sv[1], bite, &fds) ;
      if (rr < 0) { snprintf(why, whylen, "fill: %s", strerror(errno)) ; ok = 0 ; }
      if (rr <= 0) break ;
      continue ;
    }
    if (!genalloc_len(int, &fds)) { snprintf(why, whylen, "request %d without its fd", got) ; ok = 0 ; break ; }
    int fd = genalloc_s(int, &fds)[0] ;
    memmove(genalloc_s(int, &fds), genalloc_s(int, &fds) + 1, (genalloc_len(int, &fds) - 1) * sizeof(int)) ;
    genalloc_setlen(int, &fds, genalloc_len(int, &fds) - 1) ;
    char c = 0 ;
    int flags = fcntl(fd, F_GETFD) ;
    if (read(fd, &c, 1) != 1 || c != 'a' + got || rq.nrcpts != 2 || rq.jobid[1] != '0' + got % 10 || !(flags & FD_CLOEXEC))
    {
      snprintf(why, whylen, "request %d got the fd of %c (cloexec %d)", got, c, !!(flags & FD_CLOEXEC)) ;
      ok = 0 ;
    }
    fd_close(fd) ;
    got++ ;
  }
  if (ok && (got != N || genalloc_len(int, &fds))) { snprintf(why, whylen, "got %d requests, %zu fds left", got, genalloc_len(int, &fds)) ; ok = 0 ; }
  for (size_t i = 0 ; i < genalloc_len(int, &fds) ; i++) fd_close(genalloc_s(int, &fds)[i]) ;
  genalloc_free(int, &fds) ;
  spawn_decoder_free(&d) ;
  fd_close(sv[1]) ;
  int wstat ;
  if (waitpid(pid, &wstat, 0) != pid || !WIFEXITED(wstat) || WEXITSTATUS(wstat))
  {
    if (ok) snprintf(why, whylen, "the writer failed") ;
    ok = 0 ;
  }
  return ok ;
}

int main (void)
{
  char why[200] = "" ;
  check("fd_whole_records_big_reads", round_trip(0, 65536, why, sizeof(why)), why) ;
  check("fd_whole_records_small_reads", round_trip(0, 7, why, sizeof(why)), why) ;
  check("fd_split_records_big_reads", round_trip(5, 65536, why, sizeof(why)), why) ;
  check("fd_split_records_byte_reads", round_trip(3, 1, why, sizeof(why)), why) ;
  {
    /* a request sent without an fd: nothing in the FIFO */
    int sv[2] ;
    genalloc fds = GENALLOC_ZERO ;
    struct spawn_decoder d = SPAWN_DECODER(SPAWN_LISTMAX, SPAWN_LIST) ;
    int ok = socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0 && spawn_sendfd(sv[0], "x", 1, -1) == 1
          && spawn_fill_fds(&d, sv[1], 100, &fds) == 1 && !genalloc_len(int, &fds) ;
    check("fd_none", ok, "") ;
    genalloc_free(int, &fds) ;
    spawn_decoder_free(&d) ;
    fd_close(sv[0]) ; fd_close(sv[1]) ;
  }
  return failed ;
}
