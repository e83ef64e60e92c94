/* yubin-pop3mbox: the mailbox part of yubin's POP3 server (RFC 1939
 * TRANSACTION and UPDATE states, RFC 2449 CAPA), run by
 * yubin-checkpassword as the user, in the user's home, on the connection:
 * reads fd 0, writes fd 1, logs on fd 2.  See yubin-pop3mbox(8) and
 * pop3d/README.
 *
 * This file is the session: the connection I/O (replies gathered and
 * written when the input is drained, a deadline on every wait) and the
 * commands.  The Maildir (listing, sizes, UIDLs, the RETR conversion,
 * deletions) is pop3d/mbox.c. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/buffer.h>
#include <skalibs/djbunix.h>
#include <skalibs/iopause.h>
#include <skalibs/sig.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/tai.h>
#include <skalibs/types.h>
#include <skalibs/unix-timed.h>

#include "exitcodes.h"
#include "loginsplit.h"
#include "ylog.h"
#include "pop3d/mbox.h"

char const *PROG = "pop3d" ;

#define USAGE "yubin-pop3mbox [ maildir ]"
#define TIMEOUT_DEFAULT 600
#define MAXERRORS 20          /* the 21st bad command ends the session */
#define LINEMAX 255           /* RFC 2449: a command line, CRLF included */
#define OUTFLUSH 65536        /* write replies out past this size */
#define READSIZE 65536        /* message files are read this much at a time */

/* ---------- session state ---------- */

static char const *remoteip ;
static char const *user ;
static unsigned int timeout = TIMEOUT_DEFAULT ;
static mbox mb = MBOX_ZERO ;
static unsigned int errors ;
static uint64_t nretr, ndele, sent ;
static int said ;             /* something reached the client */

static char inbuf[65536 + 1] ;
static buffer in = BUFFER_INIT(&fd_readv, 0, inbuf, sizeof(inbuf)) ;
static stralloc out = STRALLOC_ZERO ;
static stralloc line = STRALLOC_ZERO ;
static char filebuf[READSIZE] ;

/* ---------- ending ---------- */

static void quitlog (char const *reason)
{
  char r[UINT64_FMT], d[UINT64_FMT], b[UINT64_FMT] ;
  r[uint64_fmt(r, nretr)] = 0 ;
  d[uint64_fmt(d, ndele)] = 0 ;
  b[uint64_fmt(b, sent)] = 0 ;
  ylog("quit", "ip", remoteip, "user", user, "retr", r, "dele", d, "bytes", b, "reason", reason, (char *)0) ;
}

/* The session is over: nothing is deleted unless QUIT did it.  0 once the
 * client has heard from us (the front must not answer for us), else 111. */
static void end (char const *reason) gccattr_noreturn ;
static void end (char const *reason)
{
  quitlog(reason) ;
  _exit(said ? 0 : EX_TEMP) ;
}

/* best effort: one non-blocking write of what is pending and msg */
static void lastwords (char const *msg, char const *reason) gccattr_noreturn ;
static void lastwords (char const *msg, char const *reason)
{
  if (stralloc_cats(&out, msg))
  {
    ssize_t r = fd_write(1, out.s, out.len) ;
    if (r > 0) { said = 1 ; sent += r ; }
  }
  end(reason) ;
}

static void die_nomem (void) gccattr_noreturn ;
static void die_nomem (void)
{
  ylog("error", "ip", remoteip, "user", user, "reason", "out-of-memory", (char *)0) ;
  lastwords("-ERR [SYS/TEMP] out of memory\r\n", "error") ;
}

/* ---------- output ---------- */

static void cat (char const *s)
{
  if (!stralloc_cats(&out, s)) die_nomem() ;
}

static void catb (char const *s, size_t len)
{
  if (!stralloc_catb(&out, s, len)) die_nomem() ;
}

static void catu64 (uint64_t n)
{
  char fmt[UINT64_FMT] ;
  catb(fmt, uint64_fmt(fmt, n)) ;
}

/* Write everything out; wait (at most the timeout) only when the client
 * does not keep up. */
static void flush (void)
{
  size_t w = 0 ;
  tain deadline ;
  int havedeadline = 0 ;
  while (w < out.len)
  {
    ssize_t r = fd_write(1, out.s + w, out.len - w) ;
    if (r > 0) { w += r ; sent += r ; said = 1 ; continue ; }
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    {
      iopause_fd x = { .fd = 1, .events = IOPAUSE_WRITE, .revents = 0 } ;
      if (!havedeadline)
      {
        tain_now_g() ;
        tain_addsec_g(&deadline, timeout) ;
        havedeadline = 1 ;
      }
      int p = iopause_g(&x, 1, &deadline) ;
      if (p < 0) { ylog("error", "ip", remoteip, "user", user, "reason", "iopause", (char *)0) ; end("error") ; }
      if (!p) end("timeout") ;
      continue ;
    }
    end("write-error") ;
  }
  out.len = 0 ;
}

static void reply (char const *s)
{
  cat(s) ;
  if (out.len > OUTFLUSH) flush() ;
}

/* A bad command: the one past MAXERRORS ends the session. */
static void counterror (void)
{
  if (++errors > MAXERRORS)
  {
    reply("-ERR too many errors\r\n") ;
    flush() ;
    end("errors") ;
  }
}

static void bad (char const *s)
{
  counterror() ;
  reply(s) ;
}

/* ---------- input ---------- */

/* Only when the input buffer is empty: flush the replies, then wait at
 * most the timeout for more. */
static void fill (void)
{
  tain deadline ;
  flush() ;
  tain_now_g() ;
  tain_addsec_g(&deadline, timeout) ;
  ssize_t r = buffer_timed_fill(&in, &deadline, &STAMP) ;
  if (r > 0) return ;
  if (!r) end("eof") ;
  if (errno == ETIMEDOUT) end("timeout") ;
  end("read-error") ;
}

/* One command line into line (at most LINEMAX + 1 bytes of it kept),
 * without its LF or CRLF.  *total gets the line's length in octets with
 * its terminator (a bare LF ends a line too). */
static void getcmdline (size_t *total)
{
  line.len = 0 ;
  *total = 0 ;
  for (;;)
  {
    struct iovec v[2] ;
    size_t used = 0 ;
    if (buffer_isempty(&in)) fill() ;
    buffer_rpeek(&in, v) ;
    for (unsigned int k = 0 ; k < 2 ; k++)
    {
      char const *s = v[k].iov_base ;
      size_t len = v[k].iov_len ;
      if (!len) continue ;
      char const *nl = memchr(s, '\n', len) ;
      size_t n = nl ? (size_t)(nl - s) : len ;
      size_t room = LINEMAX + 1 - line.len ;
      if (!stralloc_catb(&line, s, n < room ? n : room)) die_nomem() ;
      *total += n ;
      if (nl)
      {
        buffer_rseek(&in, used + n + 1) ;
        (*total)++ ;
        if (line.len && line.s[line.len - 1] == '\r' && line.len == *total - 1) line.len-- ;
        return ;
      }
      used += len ;
    }
    buffer_rseek(&in, used) ;
  }
}

/* ---------- messages ---------- */

/* The message (0-based index) that argument a names, or -1 after an
 * -ERR (a bad command: not a number, out of range, deleted). */
static ssize_t getmsg (char const *a, size_t alen)
{
  uint64_t n ;
  if (!mailread_parsenum(a, alen, &n)) { bad("-ERR invalid message number\r\n") ; return -1 ; }
  if (!n || n > mb.n)
  {
    counterror() ;
    cat("-ERR no such message, only ") ; catu64(mb.n) ; reply(" messages in maildrop\r\n") ;
    return -1 ;
  }
  if (mbox_msg(&mb, n - 1)->deleted)
  {
    counterror() ;
    cat("-ERR message ") ; catu64(n) ; reply(" already deleted\r\n") ;
    return -1 ;
  }
  return (ssize_t)(n - 1) ;
}

static void count (uint64_t *msgs, uint64_t *octets)
{
  *msgs = 0 ; *octets = 0 ;
  for (size_t i = 0 ; i < mb.n ; i++)
  {
    struct mbox_msg const *m = mbox_msg(&mb, i) ;
    if (m->deleted) continue ;
    (*msgs)++ ;
    *octets += m->size ;
  }
}

static void maildrop (void)
{
  uint64_t msgs, octets ;
  count(&msgs, &octets) ;
  cat(user ? user : "maildrop") ; cat(" has ") ; catu64(msgs) ;
  cat(msgs == 1 ? " message (" : " messages (") ; catu64(octets) ; cat(" octets)\r\n") ;
}

/* RETR (bodylines UINT64_MAX) and TOP */
static void sendmsg (size_t i, uint64_t bodylines)
{
  int fd = mbox_open(&mb, i) ;
  if (fd < 0)
  {
    char fmt[UINT64_FMT] ;
    fmt[uint64_fmt(fmt, i + 1)] = 0 ;
    if (errno == ENOENT)
    {
      ylog("gone", "ip", remoteip, "user", user, "msg", fmt, "file", mbox_msgname(&mb, i), (char *)0) ;
      cat("-ERR message ") ; catu64(i + 1) ; reply(" is gone (removed or moved by another session)\r\n") ;
    }
    else
    {
      ylog("error", "ip", remoteip, "user", user, "reason", "open", "file", mbox_msgname(&mb, i), "errno", strerror(errno), (char *)0) ;
      cat("-ERR [SYS/TEMP] unable to open message ") ; catu64(i + 1) ; reply("\r\n") ;
    }
    return ;
  }
  struct mbox_conv c ;
  mbox_conv_init(&c, bodylines) ;
  if (bodylines == UINT64_MAX) { cat("+OK ") ; catu64(mbox_msg(&mb, i)->size) ; cat(" octets\r\n") ; }
  else cat("+OK\r\n") ;
  while (!c.done)
  {
    ssize_t r = fd_read(fd, filebuf, sizeof filebuf) ;
    if (r < 0)
    {
      /* halfway through: the client sees the connection end without the
       * final ".", never a short message */
      ylog("error", "ip", remoteip, "user", user, "reason", "read", "file", mbox_msgname(&mb, i), "errno", strerror(errno), (char *)0) ;
      flush() ;
      end("read-error") ;
    }
    if (!r) break ;
    if (!mbox_conv_feed(&c, filebuf, r, &out)) die_nomem() ;
    if (out.len > OUTFLUSH) flush() ;
    /* a short read of a regular file is its end (Maildir files do not
     * grow): one read(2) per small message, not two */
    if ((size_t)r < sizeof filebuf) break ;
  }
  fd_close(fd) ;
  if (!mbox_conv_end(&c, &out)) die_nomem() ;
  if (bodylines == UINT64_MAX) nretr++ ;
  if (out.len > OUTFLUSH) flush() ;
}

/* ---------- commands ---------- */

#define MAXARGS 3

static void do_stat (void)
{
  uint64_t msgs, octets ;
  count(&msgs, &octets) ;
  cat("+OK ") ; catu64(msgs) ; cat(" ") ; catu64(octets) ; reply("\r\n") ;
}

/* LIST and UIDL: one message, or every one not deleted */
static void listing (size_t i, int uidl)
{
  struct mbox_msg const *m = mbox_msg(&mb, i) ;
  catu64(i + 1) ;
  cat(" ") ;
  if (uidl)
  {
    char u[MBOX_UIDL_MAX + 1] ;
    catb(u, mbox_uidl(mbox_msgname(&mb, i), m->uniqlen, u)) ;
  }
  else catu64(m->size) ;
  cat("\r\n") ;
}

static void do_list (char **arg, size_t *arglen, unsigned int nargs, int uidl)
{
  if (nargs == 2)
  {
    ssize_t i = getmsg(arg[1], arglen[1]) ;
    if (i < 0) return ;
    cat("+OK ") ;
    listing(i, uidl) ;
    if (out.len > OUTFLUSH) flush() ;
    return ;
  }
  if (uidl) cat("+OK unique-id listing follows\r\n") ;
  else
  {
    uint64_t msgs, octets ;
    count(&msgs, &octets) ;
    cat("+OK ") ; catu64(msgs) ; cat(msgs == 1 ? " message (" : " messages (") ; catu64(octets) ; cat(" octets)\r\n") ;
  }
  for (size_t i = 0 ; i < mb.n ; i++)
  {
    if (mbox_msg(&mb, i)->deleted) continue ;
    listing(i, uidl) ;
    if (out.len > OUTFLUSH) flush() ;
  }
  reply(".\r\n") ;
}

static void do_retr (char **arg, size_t *arglen)
{
  ssize_t i = getmsg(arg[1], arglen[1]) ;
  if (i >= 0) sendmsg(i, UINT64_MAX) ;
}

static void do_top (char **arg, size_t *arglen)
{
  uint64_t lines ;
  ssize_t i = getmsg(arg[1], arglen[1]) ;
  if (i < 0) return ;
  if (!mailread_parsenum(arg[2], arglen[2], &lines)) { bad("-ERR invalid number of lines\r\n") ; return ; }
  if (lines == UINT64_MAX) lines-- ;   /* still "every line" */
  sendmsg(i, lines) ;
}

static void do_dele (char **arg, size_t *arglen)
{
  ssize_t i = getmsg(arg[1], arglen[1]) ;
  if (i < 0) return ;
  mbox_msg(&mb, i)->deleted = 1 ;
  cat("+OK message ") ; catu64(i + 1) ; reply(" deleted\r\n") ;
}

static void do_rset (void)
{
  for (size_t i = 0 ; i < mb.n ; i++) mbox_msg(&mb, i)->deleted = 0 ;
  cat("+OK ") ;
  maildrop() ;
}

static void do_capa (void)
{
  reply("+OK capability list follows\r\n"
        "TOP\r\n"
        "UIDL\r\n"
        "RESP-CODES\r\n"
        "AUTH-RESP-CODE\r\n"
        "PIPELINING\r\n"
        "IMPLEMENTATION yubin\r\n"
        ".\r\n") ;
}

static void do_quit (void) gccattr_noreturn ;
static void do_quit (void)
{
  size_t removed ;
  size_t failed = mbox_update(&mb, &removed) ;
  ndele = removed ;
  if (failed)
  {
    char fmt[SIZE_FMT] ;
    fmt[size_fmt(fmt, failed)] = 0 ;
    ylog("error", "ip", remoteip, "user", user, "reason", "unlink", "failed", fmt, (char *)0) ;
    reply("-ERR [SYS/TEMP] some deleted messages not removed\r\n") ;
  }
  else
  {
    cat("+OK bye, ") ; catu64(removed) ; reply(removed == 1 ? " message deleted\r\n" : " messages deleted\r\n") ;
  }
  flush() ;
  end("quit") ;
}

struct command
{
  char const *name ;
  unsigned int minargs ;
  unsigned int maxargs ;   /* counting the keyword */
  unsigned int id ;
} ;

enum { C_STAT, C_LIST, C_RETR, C_DELE, C_NOOP, C_RSET, C_QUIT, C_TOP, C_UIDL, C_CAPA, C_AUTH } ;

static struct command const commands[] =
{
  { "STAT", 1, 1, C_STAT },
  { "LIST", 1, 2, C_LIST },
  { "RETR", 2, 2, C_RETR },
  { "DELE", 2, 2, C_DELE },
  { "NOOP", 1, 1, C_NOOP },
  { "RSET", 1, 1, C_RSET },
  { "QUIT", 1, 1, C_QUIT },
  { "TOP", 3, 3, C_TOP },
  { "UIDL", 1, 2, C_UIDL },
  { "CAPA", 1, 1, C_CAPA },
  { "USER", 0, MAXARGS, C_AUTH },
  { "PASS", 0, MAXARGS, C_AUTH },
  { "APOP", 0, MAXARGS, C_AUTH },
  { "AUTH", 0, MAXARGS, C_AUTH },
  { "STLS", 0, MAXARGS, C_AUTH },
} ;

static void command (void)
{
  char *arg[MAXARGS] ;
  size_t arglen[MAXARGS] ;
  unsigned int nargs = 0 ;
  size_t total ;
  getcmdline(&total) ;
  if (total > LINEMAX) { bad("-ERR line too long\r\n") ; return ; }
  if (line.len && memchr(line.s, 0, line.len)) { bad("-ERR NUL byte in command\r\n") ; return ; }
  /* words separated by spaces */
  for (size_t p = 0 ; p < line.len ; )
  {
    while (p < line.len && line.s[p] == ' ') p++ ;
    if (p == line.len) break ;
    size_t q = p ;
    while (q < line.len && line.s[q] != ' ') q++ ;
    if (nargs == MAXARGS) { bad("-ERR too many arguments\r\n") ; return ; }
    arg[nargs] = line.s + p ;
    arglen[nargs++] = q - p ;
    p = q ;
  }
  if (!nargs) { bad("-ERR empty command\r\n") ; return ; }
  struct command const *c = 0 ;
  for (size_t k = 0 ; k < sizeof commands / sizeof commands[0] ; k++)
    if (arglen[0] == strlen(commands[k].name) && !strncasecmp(arg[0], commands[k].name, arglen[0]))
    {
      c = &commands[k] ;
      break ;
    }
  if (!c) { bad("-ERR unknown command\r\n") ; return ; }
  if (c->id == C_AUTH) { bad("-ERR already logged in\r\n") ; return ; }
  if (nargs < c->minargs) { bad("-ERR missing argument\r\n") ; return ; }
  if (nargs > c->maxargs) { bad("-ERR too many arguments\r\n") ; return ; }
  switch (c->id)
  {
    case C_STAT : do_stat() ; break ;
    case C_LIST : do_list(arg, arglen, nargs, 0) ; break ;
    case C_UIDL : do_list(arg, arglen, nargs, 1) ; break ;
    case C_RETR : do_retr(arg, arglen) ; break ;
    case C_TOP : do_top(arg, arglen) ; break ;
    case C_DELE : do_dele(arg, arglen) ; break ;
    case C_NOOP : reply("+OK\r\n") ; break ;
    case C_RSET : do_rset() ; break ;
    case C_CAPA : do_capa() ; break ;
    case C_QUIT : do_quit() ;
  }
}

/* ---------- start ---------- */

int main (int argc, char const *const *argv)
{
  char const *dir = "./Maildir/" ;
  char const *what, *where ;
  char const *x ;
  if (argc > 2) strerr_dieusage(EX_PERM, USAGE) ;
  if (argc == 2)
  {
    if (!argv[1][0]) strerr_dieusage(EX_PERM, USAGE) ;
    dir = argv[1] ;
  }
  remoteip = getenv("TCPREMOTEIP") ;
  user = getenv("USER") ;
  if (user && !user[0]) user = 0 ;
  x = getenv("POP3TIMEOUT") ;
  if (x && (!uint0_scan(x, &timeout) || !timeout))
    strerr_dief2x(EX_TEMP, "invalid POP3TIMEOUT: ", x) ;
  if (!sig_ignore(SIGPIPE)) strerr_diefu1sys(EX_TEMP, "ignore SIGPIPE") ;
  if (ndelay_on(0) < 0 || ndelay_on(1) < 0) strerr_diefu1sys(EX_TEMP, "set fds 0 and 1 non-blocking") ;

  if (!mbox_scan(&mb, dir, &what, &where))
  {
    int e = errno ;
    ylog("error", "ip", remoteip, "user", user, "reason", "maildir", "op", what, "file", where, "dir", dir, "errno", strerror(e), (char *)0) ;
    errno = e ;
    strerr_diefu6sys(EX_TEMP, what, " ", where, " in ", dir, "") ;
  }
  {
    char n[SIZE_FMT], b[UINT64_FMT] ;
    char const *tls = getenv("SSL_PROTOCOL") ;
    n[size_fmt(n, mb.n)] = 0 ;
    b[uint64_fmt(b, mb.total)] = 0 ;
    ylog("login", "ip", remoteip, "user", user, "msgs", n, "bytes", b, "tls", tls && tls[0] ? "yes" : "no", (char *)0) ;
  }
  /* from here on the session is ours, whatever becomes of it */
  loginsplit_loggedin() ;
  cat("+OK ") ;
  maildrop() ;
  for (;;) command() ;
}
