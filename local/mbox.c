/* The mbox lines of the delivery code (local/local.h): the From_ line,
 * and appending a message to an mbox file as qmail-local does (">From "
 * quoting, an empty line after it), under an flock and an fcntl lock
 * tried for MBOX_LOCKSECS, fsync'd, cut back on failure. */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/buffer.h>
#include <skalibs/bytestr.h>
#include <skalibs/djbunix.h>
#include <skalibs/iopause.h>
#include <skalibs/stralloc.h>
#include <skalibs/tai.h>
#include <skalibs/types.h>

#include "exitcodes.h"
#include "ylog.h"

#include "local/local.h"

#define MBOX_LOCKSECS 30         /* as qmail-local: then the delivery is deferred */

/* Does the line s[0..len) start with >*"From "? (then it gets a '>') */
static int is_from (char const *s, size_t len)
{
  while (len && *s == '>') { s++ ; len-- ; }
  return len >= 5 && !memcmp(s, "From ", 5) ;
}

/* Both locks, non-blocking, tried until MBOX_LOCKSECS have passed.
 * 1 locked, 0 still locked by someone else, -1 locking not available
 * here (then qmail-local delivers without the lock, so do we). */
static int lock_both (int fd)
{
  tain deadline ;
  int haveflock = 0 ;
  if (!tain_now_g() || !tain_addsec_g(&deadline, MBOX_LOCKSECS)) return -1 ;
  for (;;)
  {
    if (!haveflock)
    {
      if (!flock(fd, LOCK_EX | LOCK_NB)) haveflock = 1 ;
      else if (errno != EWOULDBLOCK && errno != EINTR) return -1 ;
    }
    if (haveflock)
    {
      struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 } ;
      if (fcntl(fd, F_SETLK, &fl) == 0) return 1 ;
      if (errno != EAGAIN && errno != EACCES && errno != EINTR) return 1 ;  /* flock is enough */
    }
    if (!tain_less(&STAMP, &deadline)) return 0 ;
    tain step, next ;
    if (!tain_from_millisecs(&step, 100) || !tain_add_g(&next, &step)) return -1 ;
    if (iopause_g(0, 0, &next) < 0 && errno != EINTR) return -1 ;  /* a sleep */
  }
}

/* Append the message on msgfd (from offset start to EOF) to the mbox
 * file fn (created 0600 if missing), holding an flock and an fcntl lock
 * on it: the prefix (From_, Return-Path: and Delivered-To: lines), then
 * each line with ">" before one matching ^>*From , a newline after a
 * last line without one, and an empty line.  fsync before success.  On a
 * failure after the lock the file is cut back to its old length.
 * Returns 0, or 111 with the reason in why. */
static int mbox_deliver (char const *fn, char const *prefix, size_t prefixlen, int msgfd, off_t start, stralloc *why)
{
  char outbuf[65536] ;
  char inbuf[65536] ;
  stralloc line = STRALLOC_ZERO ;   /* a line cut by the end of inbuf */
  int code = 0 ;
  int locked ;
  off_t pos ;
  int fd = open(fn, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0600) ;
  if (fd < 0) return local_fail(why, EX_TEMP, 1, "unable to open mbox ", fn, " (#4.2.1)", (char *)0) ;
  locked = lock_both(fd) ;
  if (!locked)
  {
    fd_close(fd) ;
    return local_fail(why, EX_TEMP, 0, "mbox ", fn, " has been locked for 30 seconds straight (#4.3.0)", (char *)0) ;
  }
  pos = lseek(fd, 0, SEEK_END) ;
  if (pos < 0 || lseek(msgfd, start, SEEK_SET) < 0)
  {
    code = local_fail(why, EX_TEMP, 1, "unable to seek in mbox ", fn, " or in the message (#4.3.0)", (char *)0) ;
    fd_close(fd) ;
    return code ;
  }
  buffer b = BUFFER_INIT(&buffer_write, fd, outbuf, sizeof(outbuf)) ;
  if (buffer_put(&b, prefix, prefixlen) < 0) goto writeerr ;
  for (;;)
  {
    ssize_t r = read(msgfd, inbuf, sizeof(inbuf)) ;
    if (r < 0)
    {
      if (errno == EINTR) continue ;
      code = local_fail(why, EX_TEMP, 1, "unable to read the message (#4.3.0)", (char *)0) ;
      goto cut ;
    }
    if (!r) break ;
    size_t i = 0 ;
    while (i < (size_t)r)
    {
      size_t n = byte_chr(inbuf + i, r - i, '\n') ;
      int eol = i + n < (size_t)r ;
      if (!eol || line.len)
      {
        if (!stralloc_catb(&line, inbuf + i, n + eol)) local_dienomem() ;
        i += n + eol ;
        if (!eol) break ;
        if ((is_from(line.s, line.len) && buffer_put(&b, ">", 1) < 0)
         || buffer_put(&b, line.s, line.len) < 0) goto writeerr ;
        line.len = 0 ;
      }
      else
      {
        if ((is_from(inbuf + i, n) && buffer_put(&b, ">", 1) < 0)
         || buffer_put(&b, inbuf + i, n + 1) < 0) goto writeerr ;
        i += n + 1 ;
      }
    }
  }
  if (line.len)
  {
    if ((is_from(line.s, line.len) && buffer_put(&b, ">", 1) < 0)
     || buffer_put(&b, line.s, line.len) < 0 || buffer_put(&b, "\n", 1) < 0) goto writeerr ;
  }
  if (buffer_put(&b, "\n", 1) < 0 || !buffer_flush(&b) || fsync(fd) < 0) goto writeerr ;
  stralloc_free(&line) ;
  if (close(fd) < 0 && errno != EINTR) return local_fail(why, EX_TEMP, 1, "unable to close mbox ", fn, " (#4.3.0)", (char *)0) ;
  return 0 ;

 writeerr:
  if (errno == EDQUOT) code = local_fail(why, EX_TEMP, 0, "mbox ", fn, " is over quota (#4.2.2)", (char *)0) ;
  else if (errno == ENOSPC) code = local_fail(why, EX_TEMP, 0, "no space left on the device holding mbox ", fn, " (#4.3.1)", (char *)0) ;
  else code = local_fail(why, EX_TEMP, 1, "unable to write mbox ", fn, " (#4.3.0)", (char *)0) ;
 cut:
  /* as qmail-local: only a file we hold may be cut back */
  if (locked > 0 && ftruncate(fd, pos) < 0) code = local_fail(why, EX_TEMP, 1, "unable to cut mbox ", fn, " back after a failed delivery: it may hold a partial message (#4.3.0)", (char *)0) ;
  stralloc_free(&line) ;
  fd_close(fd) ;
  return code ;
}

void ufline_make (stralloc *sa, char const *sender)
{
  static char const days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" } ;
  static char const months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" } ;
  char tmp[64] ;
  struct tm tm ;
  time_t now = time(0) ;
  if (!stralloc_copys(sa, "From ")) local_dienomem() ;
  if (*sender)
  {
    size_t base = sa->len ;
    if (!stralloc_cats(sa, sender)) local_dienomem() ;
    for (size_t i = base ; i < sa->len ; i++)
      if (sa->s[i] == ' ' || sa->s[i] == '\t' || sa->s[i] == '\n' || sa->s[i] == '\r') sa->s[i] = '-' ;
  }
  else if (!stralloc_cats(sa, "MAILER-DAEMON")) local_dienomem() ;
  if (!gmtime_r(&now, &tm)) memset(&tm, 0, sizeof(tm)) ;
  size_t n = strftime(tmp, sizeof(tmp), " %H:%M:%S ", &tm) ;
  if (!stralloc_catb(sa, " ", 1) || !stralloc_catb(sa, days[tm.tm_wday % 7], 3)
   || !stralloc_catb(sa, " ", 1) || !stralloc_catb(sa, months[tm.tm_mon % 12], 3)
   || !stralloc_catb(sa, " ", 1)) local_dienomem() ;
  {
    char dd[3] = { '0' + tm.tm_mday / 10 % 10, '0' + tm.tm_mday % 10, 0 } ;
    char year[UINT_FMT] ;
    if (!stralloc_catb(sa, dd, 2) || !stralloc_catb(sa, tmp, n)
     || !stralloc_catb(sa, year, uint_fmt(year, 1900 + tm.tm_year)) || !stralloc_catb(sa, "\n", 1)) local_dienomem() ;
  }
}

int do_mbox (struct run *r, char const *fn, stralloc *why)
{
  int code = mbox_deliver(fn, r->prefix.s, r->prefix.len, r->msgfd, r->start, why) ;
  if (!code) ylog("delivered", "to", r->recip.s, "mbox", fn, (char *)0) ;
  return code ;
}
