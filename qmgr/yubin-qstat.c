/* yubin-qstat: how many messages the queue holds (qmail-qstat).  Counts
 * the message files of queue/cur/ (taken by yubin-qmgr) and queue/new/
 * (not yet taken).  See yubin-qstat(8). */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <skalibs/buffer.h>
#include <skalibs/djbunix.h>
#include <skalibs/strerr.h>
#include <skalibs/stralloc.h>
#include <skalibs/types.h>

#include "exitcodes.h"
#include "root.h"
#include "qmgr/queue.h"

char const *PROG = "yubin-qstat" ;

/* The queue IDs in queue/<sub>. */
static unsigned long count (int qfd, char const *sub)
{
  unsigned long n = 0 ;
  int fd = openat(qfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (fd < 0)
  {
    if (errno == ENOENT) return 0 ;   /* yubin-qmgr never ran: nothing queued there */
    strerr_diefu3sys(EX_TEMP, "open ", "queue/", sub) ;
  }
  DIR *d = fdopendir(fd) ;
  if (!d) strerr_diefu3sys(EX_TEMP, "open ", "queue/", sub) ;
  for (;;)
  {
    errno = 0 ;
    struct dirent *e = readdir(d) ;
    if (!e) break ;
    if (queue_id_valid(e->d_name)) n++ ;
  }
  if (errno) strerr_diefu3sys(EX_TEMP, "read ", "queue/", sub) ;
  closedir(d) ;
  return n ;
}

static void put (char const *label, unsigned long n)
{
  char fmt[ULONG_FMT] ;
  if (buffer_puts(buffer_1, label) < 0 || buffer_put(buffer_1, fmt, ulong_fmt(fmt, n)) < 0
   || buffer_put(buffer_1, "\n", 1) < 0) strerr_diefu1sys(EX_TEMP, "write to stdout") ;
}

int main (int argc, char const *const *argv)
{
  stralloc q = STRALLOC_ZERO ;
  if (argc > 1) strerr_dieusage(EX_PERM, "yubin-qstat") ;
  if (!yubin_path(&q, "queue")) strerr_diefu1sys(EX_TEMP, "make the queue path") ;
  int qfd = open(q.s, O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (qfd < 0) strerr_diefu2sys(EX_TEMP, "open ", q.s) ;
  unsigned long cur = count(qfd, "cur") ;
  unsigned long new = count(qfd, "new") ;
  put("messages in queue: ", cur + new) ;
  put("messages in queue but not yet preprocessed: ", new) ;
  if (!buffer_flush(buffer_1)) strerr_diefu1sys(EX_TEMP, "write to stdout") ;
  fd_close(qfd) ;
  stralloc_free(&q) ;
  return 0 ;
}
