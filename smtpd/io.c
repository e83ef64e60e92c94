/* yubin-smtpd's connection I/O: replies gathered in io.out and written in
 * batches (RFC 2920: a pipelining client gets its replies together),
 * command lines read from io.in, each wait bounded by conf.timeout.
 * fds 0 and 1 are non-blocking; any failure to talk ends the process. */

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/buffer.h>
#include <skalibs/djbunix.h>
#include <skalibs/iopause.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/tai.h>
#include <skalibs/types.h>
#include <skalibs/unix-timed.h>

#include "exitcodes.h"
#include "smtpcmd.h"
#include "smtpd.h"
#include "ylog.h"

#define MAXERRORS 10
#define LINECAP (SMTPCMD_MAX + 2)   /* enough for the parser to see "too long" */
#define OUTFLUSH 65536              /* flush replies early past this size */

static char inbuf[65536 + 1] ;
struct smtpd_io io = { .in = BUFFER_INIT(&fd_readv, 0, inbuf, sizeof(inbuf)), .out = STRALLOC_ZERO, .line = STRALLOC_ZERO, .errors = 0 } ;

/* ---------- output ---------- */

static void die_timeout (void) gccattr_noreturn ;

void die_nomem (void)
{
  static char const msg[] = "421 4.3.0 out of memory\r\n" ;
  ylog("error", "ip", conf.remoteip, "reason", "out-of-memory", (char *)0) ;
  ssize_t r = fd_write(1, msg, sizeof(msg) - 1) ;
  (void)r ;   /* best effort: we are dying anyway */
  _exit(EX_TEMP) ;
}

void cat (stralloc *sa, char const *s)
{
  if (!stralloc_cats(sa, s)) die_nomem() ;
}

void catb (stralloc *sa, char const *s, size_t len)
{
  if (!stralloc_catb(sa, s, len)) die_nomem() ;
}

void catulong (stralloc *sa, unsigned long n)
{
  char fmt[ULONG_FMT] ;
  catb(sa, fmt, ulong_fmt(fmt, n)) ;
}

void setstr (stralloc *sa, char const *s)
{
  sa->len = 0 ;
  cat(sa, s) ;
  if (!stralloc_0(sa)) die_nomem() ;
  sa->len-- ;
}

/* Write first, wait only when the client does not keep up: most batches
 * go out in one write (skalibs' buffer_timed_flush would poll first). */
void flush (void)
{
  size_t w = 0 ;
  tain deadline ;
  int havedeadline = 0 ;
  while (w < io.out.len)
  {
    ssize_t r = fd_write(1, io.out.s + w, io.out.len - w) ;
    if (r > 0) { w += r ; continue ; }
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    {
      iopause_fd x = { .fd = 1, .events = IOPAUSE_WRITE, .revents = 0 } ;
      if (!havedeadline)
      {
        tain_now_g() ;
        tain_addsec_g(&deadline, conf.timeout) ;
        havedeadline = 1 ;
      }
      int p = iopause_g(&x, 1, &deadline) ;
      if (p < 0) strerr_diefu1sys(EX_TEMP, "iopause") ;
      if (!p) die_timeout() ;
      continue ;
    }
    /* the peer went away: nothing left to say to anyone */
    ylog("quit", "ip", conf.remoteip, "reason", "write-error", (char *)0) ;
    _exit(EX_TEMP) ;
  }
  io.out.len = 0 ;
}

void reply (char const *s)
{
  cat(&io.out, s) ;
  if (io.out.len > OUTFLUSH) flush() ;
}

void errreply (char const *s, char const *cmd)
{
  if (++io.errors >= MAXERRORS)
  {
    ylog("reject", "ip", conf.remoteip, "cmd", cmd, "code", "421", "reason", "too-many-errors", (char *)0) ;
    reply("421 4.7.0 too many errors\r\n") ;
    flush() ;
    _exit(0) ;
  }
  reply(s) ;
}

static void die_timeout (void)
{
  static char const msg[] = "451 4.4.2 timeout\r\n" ;
  ylog("timeout", "ip", conf.remoteip, (char *)0) ;
  /* one non-blocking attempt, after whatever was still pending */
  if (stralloc_catb(&io.out, msg, sizeof(msg) - 1))
  {
    ssize_t r = fd_write(1, io.out.s, io.out.len) ;
    (void)r ;
  }
  _exit(EX_TEMP) ;
}

void die_control (char const *name)
{
  ylog("error", "ip", conf.remoteip, "reason", "control", "file", name, (char *)0) ;
  reply("421 4.3.0 unable to read control files\r\n") ;
  flush() ;
  _exit(EX_TEMP) ;
}

/* ---------- input ---------- */

/* Called only when the input buffer is empty: flush the replies, then
 * wait at most the timeout for more input (buffer_timed_fill reads
 * first and waits only if nothing is there). */
void fill (void)
{
  tain deadline ;
  flush() ;
  tain_now_g() ;
  tain_addsec_g(&deadline, io.lines ? conf.timeout : conf.timeoutfirst) ;
  ssize_t r = buffer_timed_fill(&io.in, &deadline, &STAMP) ;
  if (r > 0) return ;
  if (!r)
  {
    ylog("quit", "ip", conf.remoteip, "reason", "eof", (char *)0) ;
    _exit(0) ;
  }
  if (errno == ETIMEDOUT) die_timeout() ;
  ylog("quit", "ip", conf.remoteip, "reason", "read-error", (char *)0) ;
  _exit(EX_TEMP) ;
}

/* One command line into io.line: the bytes before '\n' (at most LINECAP
 * of them, the rest is dropped), then a '\n'.  A bare LF ends a command
 * line too (commands are single lines: there is nothing to smuggle). */
void getcmdline (void)
{
  io.line.len = 0 ;
  for (;;)
  {
    struct iovec v[2] ;
    size_t used = 0 ;
    if (buffer_isempty(&io.in)) fill() ;
    buffer_rpeek(&io.in, v) ;
    for (unsigned int k = 0 ; k < 2 ; k++)
    {
      char const *s = v[k].iov_base ;
      size_t len = v[k].iov_len ;
      if (!len) continue ;
      char const *nl = memchr(s, '\n', len) ;
      size_t n = nl ? (size_t)(nl - s) : len ;
      size_t room = LINECAP - io.line.len ;
      catb(&io.line, s, n < room ? n : room) ;
      if (nl)
      {
        buffer_rseek(&io.in, used + n + 1) ;
        catb(&io.line, "\n", 1) ;
        io.lines++ ;
        return ;
      }
      used += len ;
    }
    buffer_rseek(&io.in, used) ;
  }
}
