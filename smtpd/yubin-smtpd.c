/* yubin-smtpd: the RFC 5321 SMTP server, one process per connection under
 * tcpserver (UCSPI): reads fd 0, writes fd 1, logs on fd 2.  Each accepted
 * message is streamed into one yubin-queue (or $QMAILQUEUE) process, with
 * the message on its fd 0 and the envelope on its fd 1.  STARTTLS through
 * yubin-tlsd's UCSPI-TLS control fds, AUTH PLAIN/LOGIN (over TLS only)
 * through a checkpassword program, -s for submission.  See yubin-smtpd(8). */

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/buffer.h>
#include <skalibs/bytestr.h>
#include <skalibs/djbunix.h>
#include <skalibs/iopause.h>
#include <skalibs/sgetopt.h>
#include <skalibs/sig.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/tai.h>
#include <skalibs/types.h>

#include "address.h"
#include "checkpw.h"
#include "control.h"
#include "exitcodes.h"
#include "root.h"
#include "sasl.h"
#include "smtpcmd.h"
#include "userdb.h"
#include "ylog.h"

extern char **environ ;

char const *PROG = "smtpd" ;

#define MAXERRORS 10
#define MAXRCPT_DEFAULT 100
#define TIMEOUT_DEFAULT 1200
#define LINECAP (SMTPCMD_MAX + 2)   /* enough for the parser to see "too long" */
#define OUTFLUSH 65536              /* flush replies early past this size */
#define HELO_MAX 255
#define MAXHOPS 100                 /* Received: + Delivered-To: lines, as qmail */
#define MAXAUTHFAIL 3               /* failed AUTH per session, then 421 */
#define AUTHDELAY_MAX 8             /* seconds, the most a failure is delayed */
#define USAGE "yubin-smtpd [ -s ]"

/* ---------- session state ---------- */

static char inbuf[65536 + 1] ;
static buffer in = BUFFER_INIT(&fd_readv, 0, inbuf, sizeof(inbuf)) ;
static stralloc out = STRALLOC_ZERO ;     /* pending replies */
static stralloc line = STRALLOC_ZERO ;    /* current command line */
static stralloc addr = STRALLOC_ZERO ;    /* scratch: parsed address */
static stralloc tmp = STRALLOC_ZERO ;     /* scratch */

static char const *remoteip ;
static char const *remotehost ;
static char const *relayclient ;
static unsigned int timeout = TIMEOUT_DEFAULT ;
static stralloc me = STRALLOC_ZERO ;
static stralloc helo = STRALLOC_ZERO ;    /* sanitized HELO argument */
static int seenhelo = 0 ;
static int esmtp = 0 ;
static unsigned int errors = 0 ;
static int submission = 0 ;               /* -s: AUTH required before MAIL */

/* TLS: the UCSPI-TLS control fds from yubin-tlsd -S, or on from the start */
static int ctlfd = -1, tlsrfd = -1, tlswfd = -1 ;
static int tls = 0 ;
static stralloc tlsproto = STRALLOC_ZERO ;
static stralloc tlscipher = STRALLOC_ZERO ;

/* AUTH */
static int authed = 0 ;
static stralloc authuser = STRALLOC_ZERO ;  /* the login, NUL-terminated */
static unsigned int authfails = 0 ;
static int anysender = 0 ;

/* the transaction */
static int seenmail = 0 ;
static int smtputf8 = 0 ;                   /* MAIL had SMTPUTF8 */
static stralloc mailfrom = STRALLOC_ZERO ;   /* NUL-terminated */
static stralloc rcptenv = STRALLOC_ZERO ;    /* "Taddr\0" per recipient */
static unsigned int nrcpt = 0 ;

/* control files read lazily, once */
static int lists_read = 0 ;
static stralloc locals = STRALLOC_ZERO ;
static stralloc rcpthosts = STRALLOC_ZERO ;
static unsigned long maxrcpt = MAXRCPT_DEFAULT ;
static int databytes_read = 0 ;
static unsigned long databytes = 0 ;

/* ---------- output ---------- */

static void die_nomem (void) gccattr_noreturn ;
static void die_timeout (void) gccattr_noreturn ;

static void die_nomem (void)
{
  static char const msg[] = "421 4.3.0 out of memory\r\n" ;
  ylog("error", "ip", remoteip, "reason", "out-of-memory", (char *)0) ;
  ssize_t r = fd_write(1, msg, sizeof(msg) - 1) ;
  (void)r ;   /* best effort: we are dying anyway */
  _exit(EX_TEMP) ;
}

static void cat (stralloc *sa, char const *s)
{
  if (!stralloc_cats(sa, s)) die_nomem() ;
}

static void catb (stralloc *sa, char const *s, size_t len)
{
  if (!stralloc_catb(sa, s, len)) die_nomem() ;
}

static void catulong (stralloc *sa, unsigned long n)
{
  char fmt[ULONG_FMT] ;
  catb(sa, fmt, ulong_fmt(fmt, n)) ;
}

/* Write all pending replies, waiting for the peer at most `timeout'. */
static void flush (void)
{
  size_t w = 0 ;
  tain deadline ;
  int havedeadline = 0 ;
  while (w < out.len)
  {
    ssize_t r = fd_write(1, out.s + w, out.len - w) ;
    if (r > 0) { w += r ; continue ; }
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
      if (p < 0) strerr_diefu1sys(EX_TEMP, "iopause") ;
      if (!p) die_timeout() ;
      continue ;
    }
    /* the peer went away: nothing left to say to anyone */
    ylog("quit", "ip", remoteip, "reason", "write-error", (char *)0) ;
    _exit(EX_TEMP) ;
  }
  out.len = 0 ;
}

static void reply (char const *s)
{
  cat(&out, s) ;
  if (out.len > OUTFLUSH) flush() ;
}

static void die_timeout (void)
{
  static char const msg[] = "451 4.4.2 timeout\r\n" ;
  ylog("timeout", "ip", remoteip, (char *)0) ;
  /* one non-blocking attempt, after whatever was still pending */
  if (stralloc_catb(&out, msg, sizeof(msg) - 1))
  {
    ssize_t r = fd_write(1, out.s, out.len) ;
    (void)r ;
  }
  _exit(EX_TEMP) ;
}

static void die_control (char const *name) gccattr_noreturn ;
static void die_control (char const *name)
{
  ylog("error", "ip", remoteip, "reason", "control", "file", name, (char *)0) ;
  reply("421 4.3.0 unable to read control files\r\n") ;
  flush() ;
  _exit(EX_TEMP) ;
}

static void quit_eof (void) gccattr_noreturn ;
static void quit_eof (void)
{
  ylog("quit", "ip", remoteip, "reason", "eof", (char *)0) ;
  _exit(0) ;
}

/* ---------- input ---------- */

/* Called only when the input buffer is empty: flush the replies (RFC 2920:
 * a pipelining client gets its replies in one batch), then wait at most
 * `timeout' for more input. */
static void fill (void)
{
  tain deadline ;
  int havedeadline = 0 ;
  flush() ;
  for (;;)
  {
    ssize_t r = buffer_fill(&in) ;
    if (r > 0) return ;
    if (!r) quit_eof() ;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
    {
      iopause_fd x = { .fd = 0, .events = IOPAUSE_READ, .revents = 0 } ;
      if (!havedeadline)
      {
        tain_now_g() ;
        tain_addsec_g(&deadline, timeout) ;
        havedeadline = 1 ;
      }
      int p = iopause_g(&x, 1, &deadline) ;
      if (p < 0) strerr_diefu1sys(EX_TEMP, "iopause") ;
      if (!p) die_timeout() ;
      continue ;
    }
    if (errno == EINTR) continue ;
    ylog("quit", "ip", remoteip, "reason", "read-error", (char *)0) ;
    _exit(EX_TEMP) ;
  }
}

/* One command line into `line': the bytes before '\n' (at most LINECAP of
 * them, the rest is dropped), then a '\n'.  A bare LF ends a command line
 * too (commands are single lines: there is nothing to smuggle). */
static void getcmdline (void)
{
  line.len = 0 ;
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
      size_t room = LINECAP - line.len ;
      catb(&line, s, n < room ? n : room) ;
      if (nl)
      {
        buffer_rseek(&in, used + n + 1) ;
        catb(&line, "\n", 1) ;
        return ;
      }
      used += len ;
    }
    buffer_rseek(&in, used) ;
  }
}

/* ---------- helpers ---------- */

/* A reply to a bad command: counts towards MAXERRORS, and the last one
 * becomes 421 and the end of the session. */
static void errreply (char const *s, char const *cmd)
{
  if (++errors >= MAXERRORS)
  {
    ylog("reject", "ip", remoteip, "cmd", cmd, "code", "421", "reason", "too-many-errors", (char *)0) ;
    reply("421 4.7.0 too many errors\r\n") ;
    flush() ;
    _exit(0) ;
  }
  reply(s) ;
}

/* A decimal number from the environment (tcprules can set any of them per
 * client): 1 and *n if the variable is set and valid, else 0. */
static int env_ulong (char const *name, unsigned long *n)
{
  char const *x = getenv(name) ;
  if (!x) return 0 ;
  size_t m = ulong_scan(x, n) ;
  return m && !x[m] ;
}

static void read_databytes (void)
{
  if (databytes_read) return ;
  unsigned long n ;
  if (env_ulong("DATABYTES", &n)) databytes = n ;
  else if (control_readulong(&databytes, "databytes", 0) < 0) die_control("databytes") ;
  databytes_read = 1 ;
}

static void read_lists (void)
{
  if (lists_read) return ;
  int r = control_readlist(&locals, "locals") ;
  if (r < 0) die_control("locals") ;
  if (!r || !locals.len)
  {
    locals.len = 0 ;
    catb(&locals, me.s, me.len + 1) ;   /* with its NUL */
  }
  if (control_readlist(&rcpthosts, "rcpthosts") < 0) die_control("rcpthosts") ;
  if (!env_ulong("MAXRCPT", &maxrcpt)
   && control_readulong(&maxrcpt, "maxrcpt", MAXRCPT_DEFAULT) < 0) die_control("maxrcpt") ;
  if (!maxrcpt) maxrcpt = MAXRCPT_DEFAULT ;
  lists_read = 1 ;
}

/* Copy untrusted text (HELO, reverse DNS name) into sa for a Received:
 * header: printable ASCII only, no parentheses (they would let it forge
 * the comment that holds the trusted address), at most HELO_MAX bytes. */
static void sanitize (stralloc *sa, char const *s, size_t len)
{
  sa->len = 0 ;
  for (size_t i = 0 ; i < len && sa->len < HELO_MAX ; i++)
  {
    unsigned char c = s[i] ;
    if (c < 0x21 || c > 0x7e || c == '(' || c == ')') continue ;
    catb(sa, (char const *)&c, 1) ;
  }
  if (!sa->len) cat(sa, "unknown") ;
  if (!stralloc_0(sa)) die_nomem() ;
  sa->len-- ;
}

static void reset_transaction (void)
{
  seenmail = 0 ;
  smtputf8 = 0 ;
  mailfrom.len = 0 ;
  rcptenv.len = 0 ;
  nrcpt = 0 ;
}

static int is_postmaster (char const *s, size_t len)
{
  return len == 10 && case_equalb(s, 10, "postmaster") ;
}

/* ---------- commands ---------- */

static void smtp_helo (struct smtpcmd const *c, int ehlo)
{
  if (c->error)
  {
    errreply(ehlo ? "501 5.5.4 syntax: EHLO hostname\r\n" : "501 5.5.4 syntax: HELO hostname\r\n", ehlo ? "EHLO" : "HELO") ;
    return ;
  }
  sanitize(&helo, line.s + c->arg, c->arglen) ;
  seenhelo = 1 ;
  esmtp = ehlo ;
  reset_transaction() ;
  if (!ehlo)
  {
    cat(&out, "250 ") ; catb(&out, me.s, me.len) ; reply("\r\n") ;
    return ;
  }
  read_databytes() ;
  cat(&out, "250-") ; catb(&out, me.s, me.len) ;
  cat(&out, "\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE") ;
  if (databytes) { cat(&out, " ") ; catulong(&out, databytes) ; }
  cat(&out, "\r\n250-SMTPUTF8\r\n") ;
  if (ctlfd >= 0) cat(&out, "250-STARTTLS\r\n") ;
  if (tls) cat(&out, "250-AUTH PLAIN LOGIN\r\n") ;
  reply("250 ENHANCEDSTATUSCODES\r\n") ;
}

/* ESMTP parameters of MAIL FROM: SIZE=n, BODY=7BIT|8BITMIME, SMTPUTF8.
 * Returns 1 if all is well, 0 after replying. */
static int mail_params (char const *s, size_t len, char const **sizestr, int *utf8)
{
  size_t i = 0 ;
  static char sizebuf[ULONG_FMT] ;
  while (i < len)
  {
    while (i < len && (s[i] == ' ' || s[i] == '\t')) i++ ;
    size_t k = i ;
    while (i < len && s[i] != ' ' && s[i] != '\t') i++ ;
    if (i == k) break ;
    char const *p = s + k ;
    size_t plen = i - k ;
    if (plen > 5 && case_equalb(p, 5, "SIZE="))
    {
      unsigned long n ;
      size_t m = ulong_scan(p + 5, &n) ;
      if (!m || m != plen - 5 || m >= ULONG_FMT)
      {
        errreply("501 5.5.4 bad SIZE parameter\r\n", "MAIL") ;
        return 0 ;
      }
      memcpy(sizebuf, p + 5, m) ;
      sizebuf[m] = 0 ;
      *sizestr = sizebuf ;
      read_databytes() ;
      if (databytes && n > databytes)
      {
        ylog("reject", "ip", remoteip, "cmd", "MAIL", "size", sizebuf, "code", "552", "reason", "size", (char *)0) ;
        reply("552 5.3.4 message size exceeds fixed maximum message size\r\n") ;
        return 0 ;
      }
    }
    else if ((plen == 9 && case_equalb(p, 9, "BODY=7BIT")) || (plen == 13 && case_equalb(p, 13, "BODY=8BITMIME"))) ;
    else if (plen == 8 && case_equalb(p, 8, "SMTPUTF8")) *utf8 = 1 ;
    else
    {
      errreply("555 5.5.4 unsupported parameter\r\n", "MAIL") ;
      return 0 ;
    }
  }
  return 1 ;
}

static int has8bit (char const *s, size_t len)
{
  for (size_t i = 0 ; i < len ; i++) if ((unsigned char)s[i] >= 0x80) return 1 ;
  return 0 ;
}

/* Is the sender in addr one of the authenticated user's own addresses?
 * A login "user" owns user@D and user-ext@D for every local domain D; a
 * login "user@dom" (other checkpassword programs) owns user@dom and
 * user-ext@dom. */
static int sender_owned (void)
{
  size_t at = address_split(addr.s, addr.len) ;
  if (at >= addr.len) return 0 ;
  char const *login = authuser.s ;
  size_t lat = byte_chr(login, authuser.len, '@') ;
  char const *domain = addr.s + at + 1 ;
  if (lat < authuser.len)
  {
    if (!case_equals(domain, login + lat + 1)) return 0 ;
  }
  else
  {
    read_lists() ;
    if (!control_domain_in_list(locals.s, locals.len, domain)) return 0 ;
  }
  if (at < lat || !case_equalb(addr.s, lat, login)) return 0 ;
  return at == lat || addr.s[lat] == '-' ;
}

static void smtp_mail (struct smtpcmd const *c)
{
  if (!seenhelo) { errreply("503 5.5.1 send HELO or EHLO first\r\n", "MAIL") ; return ; }
  if (seenmail) { errreply("503 5.5.1 nested MAIL command\r\n", "MAIL") ; return ; }
  if (c->error) { errreply("501 5.5.4 syntax: MAIL FROM:<address>\r\n", "MAIL") ; return ; }
  if (submission && !authed)
  {
    ylog("reject", "ip", remoteip, "cmd", "MAIL", "code", "530", "reason", "auth-required", (char *)0) ;
    errreply("530 5.7.0 Authentication required\r\n", "MAIL") ;
    return ;
  }
  size_t rest ;
  int utf8 = 0 ;
  enum address_error e = address_parse_path(line.s + c->arg, c->arglen, 1, 1, &addr, &rest) ;
  if (e != ADDR_OK)
  {
    ylog("reject", "ip", remoteip, "cmd", "MAIL", "code", "501", "reason", address_strerror(e), (char *)0) ;
    tmp.len = 0 ;
    cat(&tmp, "501 5.1.7 ") ; cat(&tmp, address_strerror(e)) ; catb(&tmp, "\r\n", 3) ;
    errreply(tmp.s, "MAIL") ;
    return ;
  }
  char const *sizestr = 0 ;
  if (rest > c->arglen) rest = c->arglen ;
  if (!mail_params(line.s + c->arg + rest, c->arglen - rest, &sizestr, &utf8)) return ;
  if (!utf8 && has8bit(addr.s, addr.len))
  {
    ylog("reject", "ip", remoteip, "cmd", "MAIL", "from", addr.s, "code", "553", "reason", "utf8-without-smtputf8", (char *)0) ;
    errreply("553 5.6.7 non-ASCII address needs the SMTPUTF8 parameter\r\n", "MAIL") ;
    return ;
  }
  if (authed && !anysender && !sender_owned())
  {
    ylog("reject", "ip", remoteip, "cmd", "MAIL", "from", addr.s, "user", authuser.s, "code", "553", "reason", "sender-not-owned", (char *)0) ;
    errreply("553 5.7.1 Sender address not owned by user\r\n", "MAIL") ;
    return ;
  }
  mailfrom.len = 0 ;
  catb(&mailfrom, addr.s, addr.len) ;
  catb(&mailfrom, "", 1) ;
  mailfrom.len-- ;
  rcptenv.len = 0 ;
  nrcpt = 0 ;
  seenmail = 1 ;
  smtputf8 = utf8 ;
  reply("250 2.1.0 ok\r\n") ;
}

/* Is the recipient in addr acceptable?  Returns 0 if so, else the reply
 * code, with the reply text in tmp and a log reason in *why. */
static int rcpt_policy (char const **why)
{
  size_t at = address_split(addr.s, addr.len) ;
  read_lists() ;
  tmp.len = 0 ;
  if (at >= addr.len)
  {
    /* RFC 5321 4.5.1: "postmaster" without a domain must work */
    if (is_postmaster(addr.s, addr.len))
    {
      addr.len = 0 ;
      cat(&addr, "postmaster@") ;
      cat(&addr, locals.s) ;
      if (!stralloc_0(&addr)) die_nomem() ;
      addr.len-- ;
      return 0 ;
    }
    *why = "no-domain" ;
    cat(&tmp, "553 5.1.3 ") ; cat(&tmp, address_strerror(ADDR_NODOMAIN)) ; cat(&tmp, "\r\n") ;
    return 553 ;
  }
  char const *domain = addr.s + at + 1 ;
  int islocal = control_domain_in_list(locals.s, locals.len, domain) ;
  int ours = islocal || control_domain_in_list(rcpthosts.s, rcpthosts.len, domain) ;
  if (!relayclient && !authed)
  {
    /* not ours, or ours but with a local part that asks to relay on:
       user%other@ours, user!other@ours, "user@other"@ours */
    int trick = 0 ;
    for (size_t i = 0 ; i < at ; i++)
      if (addr.s[i] == '%' || addr.s[i] == '!' || addr.s[i] == '@') trick = 1 ;
    if (!ours || trick)
    {
      *why = "relaying-denied" ;
      cat(&tmp, "553 5.7.1 relaying denied\r\n") ;
      return 553 ;
    }
  }
  if (!islocal || is_postmaster(addr.s, at)) return 0 ;
  size_t ext ;
  int r = users_match_local(addr.s, at, &tmp, &ext) ;
  tmp.len = 0 ;
  if (r > 0) return 0 ;
  if (r < 0)
  {
    *why = "user-lookup-failed" ;
    cat(&tmp, "451 4.3.0 temporary failure looking up the recipient\r\n") ;
    return 451 ;
  }
  *why = "no-such-user" ;
  cat(&tmp, "550 5.1.1 <") ; catb(&tmp, addr.s, addr.len) ; cat(&tmp, ">: no such user here\r\n") ;
  return 550 ;
}

/* address_parse_path, plus RFC 5321 4.5.1's "<Postmaster>" without a
 * domain, which must be accepted (addr = "postmaster"). */
static enum address_error rcpt_parse (char const *s, size_t len, size_t *rest)
{
  size_t i = 0 ;
  while (i < len && (s[i] == ' ' || s[i] == '\t')) i++ ;
  if (len - i >= 12 && case_equalb(s + i, 12, "<postmaster>"))
  {
    addr.len = 0 ;
    catb(&addr, "postmaster", 11) ;
    addr.len-- ;
    *rest = i + 12 ;
    return ADDR_OK ;
  }
  return address_parse_path(s, len, 0, 1, &addr, rest) ;
}

static void smtp_rcpt (struct smtpcmd const *c)
{
  if (!seenmail) { errreply("503 5.5.1 need MAIL before RCPT\r\n", "RCPT") ; return ; }
  if (c->error) { errreply("501 5.5.4 syntax: RCPT TO:<address>\r\n", "RCPT") ; return ; }
  size_t rest ;
  enum address_error e = rcpt_parse(line.s + c->arg, c->arglen, &rest) ;
  if (e != ADDR_OK)
  {
    ylog("reject", "ip", remoteip, "cmd", "RCPT", "code", "553", "reason", address_strerror(e), (char *)0) ;
    tmp.len = 0 ;
    cat(&tmp, "553 5.1.3 ") ; cat(&tmp, address_strerror(e)) ; catb(&tmp, "\r\n", 3) ;
    errreply(tmp.s, "RCPT") ;
    return ;
  }
  if (!smtputf8 && has8bit(addr.s, addr.len))
  {
    ylog("reject", "ip", remoteip, "cmd", "RCPT", "to", addr.s, "code", "553", "reason", "utf8-without-smtputf8", (char *)0) ;
    errreply("553 5.6.7 non-ASCII address needs the SMTPUTF8 parameter\r\n", "RCPT") ;
    return ;
  }
  if (rest > c->arglen) rest = c->arglen ;
  for (size_t i = rest ; i < c->arglen ; i++)
  {
    char ch = line.s[c->arg + i] ;
    if (ch != ' ' && ch != '\t')
    {
      errreply("555 5.5.4 unsupported parameter\r\n", "RCPT") ;
      return ;
    }
  }
  read_lists() ;
  if (nrcpt >= maxrcpt)
  {
    ylog("reject", "ip", remoteip, "cmd", "RCPT", "to", addr.s, "code", "452", "reason", "too-many-recipients", (char *)0) ;
    reply("452 4.5.3 too many recipients\r\n") ;
    return ;
  }
  char const *why = "" ;
  int code = rcpt_policy(&why) ;
  if (code)
  {
    char fmt[UINT_FMT] ;
    fmt[uint_fmt(fmt, code)] = 0 ;
    ylog("reject", "ip", remoteip, "cmd", "RCPT", "to", addr.s, "code", fmt, "reason", why, (char *)0) ;
    catb(&tmp, "", 1) ;
    if (code == 451) reply(tmp.s) ;
    else errreply(tmp.s, "RCPT") ;
    return ;
  }
  catb(&rcptenv, "T", 1) ;
  catb(&rcptenv, addr.s, addr.len) ;
  if (relayclient) cat(&rcptenv, relayclient) ;
  catb(&rcptenv, "", 1) ;
  nrcpt++ ;
  reply("250 2.1.5 ok\r\n") ;
}

/* ---------- the queue ---------- */

static pid_t qpid ;
static int qmsg = -1 ;        /* message pipe to the queue's fd 0 */
static int qenv = -1 ;        /* envelope pipe to the queue's fd 1 */
static int qerr = 0 ;         /* a write to the queue failed */
static char qbuf[65536] ;
static size_t qlen = 0 ;
static stralloc qprog = STRALLOC_ZERO ;

static int queue_start (void)
{
  int pm[2], pe[2] ;
  if (!qprog.len)
  {
    char const *x = getenv("QMAILQUEUE") ;
    if (x && *x)
    {
      if (!stralloc_cats(&qprog, x) || !stralloc_0(&qprog)) return 0 ;
    }
    else if (!yubin_sibling(&qprog, "yubin-queue")) return 0 ;
  }
  if (pipecoe(pm) < 0) return 0 ;
  if (pipecoe(pe) < 0) { fd_close(pm[0]) ; fd_close(pm[1]) ; return 0 ; }
  /* vfork + execve rather than posix_spawn: glibc's posix_spawn child
     resets every signal disposition (about 125 sigaction calls), which is
     a measurable part of the per-message cost.  yubin-smtpd installs no
     signal handler (SIGPIPE is only ignored), so the vfork child, which
     shares our memory until it execs, only has to restore SIGPIPE. */
  char *argv[2] = { qprog.s, 0 } ;
  int e = 0 ;
  volatile int childerr = 0 ;   /* shared with the vfork child */
  qpid = vfork() ;
  if (!qpid)
  {
    struct sigaction sa = { .sa_handler = SIG_DFL } ;
    if (dup2(pm[0], 0) >= 0 && dup2(pe[0], 1) >= 0 && sigaction(SIGPIPE, &sa, 0) >= 0)
      execve(qprog.s, argv, environ) ;
    childerr = errno ;
    _exit(120) ;   /* qmail-smtpd's "unable to exec qq" */
  }
  if (qpid < 0) e = errno ;
  else if (childerr)
  {
    /* it could not exec: say so now, as posix_spawn would have */
    int wstat ;
    e = childerr ;
    if (waitpid_nointr(qpid, &wstat, 0) < 0) e = errno ;
  }
  if (e) goto errpipes ;
  fd_close(pm[0]) ;
  fd_close(pe[0]) ;
  qmsg = pm[1] ;
  qenv = pe[1] ;
  qerr = 0 ;
  qlen = 0 ;
  return 1 ;
 errpipes:
  fd_close(pm[0]) ; fd_close(pm[1]) ;
  fd_close(pe[0]) ; fd_close(pe[1]) ;
  errno = e ;
  return 0 ;
}

static void queue_flush (void)
{
  if (qlen && !qerr && allwrite(qmsg, qbuf, qlen) < qlen) qerr = 1 ;
  qlen = 0 ;
}

static void queue_put (char const *s, size_t len)
{
  if (qlen + len > sizeof(qbuf))
  {
    queue_flush() ;
    if (len > sizeof(qbuf))
    {
      if (!qerr && allwrite(qmsg, s, len) < len) qerr = 1 ;
      return ;
    }
  }
  memcpy(qbuf + qlen, s, len) ;
  qlen += len ;
}

/* Wait for the queue; returns its wait status, or -1. */
static int queue_wait (void)
{
  int wstat ;
  for (;;)
  {
    pid_t r = waitpid(qpid, &wstat, 0) ;
    if (r == qpid) return wstat ;
    if (r < 0 && errno == EINTR) continue ;
    return -1 ;
  }
}

/* qmail-smtpd's (qmail.c's) reading of the queue's exit code.
 * Returns the reply (CRLF-terminated); *perm says 5xx. */
static char const *queue_reply (int wstat, int *perm)
{
  *perm = 0 ;
  if (wstat == -1) return "451 4.3.0 qq waitpid surprise\r\n" ;
  if (WIFSIGNALED(wstat)) return "451 4.3.0 qq crashed\r\n" ;
  int x = WEXITSTATUS(wstat) ;
  switch (x)
  {
    case 0 : return qerr ? "451 4.3.0 qq read error\r\n" : 0 ;
    case 115 :
    case 11 : *perm = 1 ; return "554 5.1.3 envelope address too long for qq\r\n" ;
    case 31 : *perm = 1 ; return "554 5.3.0 mail server permanently rejected message\r\n" ;
    case 51 : return "451 4.3.0 qq out of memory\r\n" ;
    case 52 : return "451 4.3.0 qq timeout\r\n" ;
    case 53 : return "451 4.3.0 qq write error or disk full\r\n" ;
    case 54 : return "451 4.3.0 qq read error\r\n" ;
    case 55 : return "451 4.3.0 qq unable to read configuration\r\n" ;
    case 56 : return "451 4.3.0 qq trouble making network connection\r\n" ;
    case 61 : return "451 4.3.0 qq trouble in home directory\r\n" ;
    case 62 :
    case 63 :
    case 64 :
    case 65 :
    case 66 : return "451 4.3.0 qq trouble creating files in queue\r\n" ;
    case 71 : return "451 4.3.0 mail server temporarily rejected message\r\n" ;
    case 72 : return "451 4.4.1 connection to mail server timed out\r\n" ;
    case 73 : return "451 4.4.1 connection to mail server rejected\r\n" ;
    case 74 : return "451 4.4.2 communication with mail server failed\r\n" ;
    case 81 : return "451 4.3.0 qq internal bug\r\n" ;
    case 91 : return "451 4.3.0 qq envelope format error\r\n" ;
    case 120 : return "451 4.3.0 unable to exec qq\r\n" ;
    default :
      if (x >= 11 && x <= 40) { *perm = 1 ; return "554 5.3.0 qq permanent problem\r\n" ; }
      return "451 4.3.0 qq temporary problem\r\n" ;
  }
}

/* ---------- DATA ---------- */

#define F_BARE 1   /* bare CR or bare LF */
#define F_NUL  2
#define F_LONG 4   /* a line longer than 1000 octets with its CRLF */
#define F_SIZE 8   /* over databytes */
#define F_HOPS 16  /* more than MAXHOPS Received:/Delivered-To: lines: a loop */

enum { S_BOL, S_MID, S_CR, S_DOT, S_DOTCR } ;

static unsigned char const special[256] = { ['\0'] = 1, ['\n'] = 1, ['\r'] = 1 } ;

struct data
{
  int state ;
  unsigned int flags ;
  size_t linelen ;          /* raw octets of the current line, CRLF excluded */
  unsigned long bytes ;     /* message octets, LF line ends */
  int inheader ;            /* still in the header section */
  size_t prelen ;           /* octets of the current header line seen so far */
  char pre[13] ;            /* its first octets */
  unsigned int hops ;
} ;

/* Count Received: and Delivered-To: header lines in the (LF-ended)
 * message, as qmail-smtpd does, to refuse looping mail. */
static void hop_scan (struct data *d, char const *s, size_t len)
{
  for (size_t i = 0 ; i < len && d->inheader ; i++)
  {
    if (s[i] != '\n')
    {
      if (d->prelen < sizeof(d->pre)) d->pre[d->prelen] = s[i] ;
      d->prelen++ ;
      continue ;
    }
    if (!d->prelen) d->inheader = 0 ;
    else if ((d->prelen >= 9 && case_equalb(d->pre, 9, "received:"))
          || (d->prelen >= 13 && case_equalb(d->pre, 13, "delivered-to:")))
    {
      if (++d->hops > MAXHOPS) d->flags |= F_HOPS ;
    }
    d->prelen = 0 ;
  }
}

static void data_emit (struct data *d, char const *s, size_t len)
{
  if (d->flags) return ;
  d->bytes += len ;
  if (databytes && d->bytes > databytes) { d->flags |= F_SIZE ; return ; }
  if (d->inheader) hop_scan(d, s, len) ;
  queue_put(s, len) ;
}

/* Run the end-of-data state machine over s[0..len).  Only the literal
 * sequence CR LF "." CR LF ends the data (the DATA line's own CRLF counts
 * as the first one); a CR not followed by LF, or a LF not preceded by CR,
 * marks the message bad and does not start a line.  Returns the number of
 * bytes consumed; *end is set when the final CRLF was consumed. */
static size_t data_scan (struct data *d, char const *s, size_t len, int *end)
{
  size_t i = 0 ;
  while (i < len)
  {
    switch (d->state)
    {
      case S_MID :
      {
        size_t j = i ;
        while (j < len && !special[(unsigned char)s[j]]) j++ ;
        if (j > i)
        {
          d->linelen += j - i ;
          if (d->linelen > SMTPCMD_MAX) d->flags |= F_LONG ;
          data_emit(d, s + i, j - i) ;
          i = j ;
          if (i == len) break ;
        }
        char ch = s[i++] ;
        if (ch == '\r') d->state = S_CR ;
        else
        {
          d->flags |= (ch == '\n') ? F_BARE : F_NUL ;
          d->linelen++ ;
        }
        break ;
      }
      case S_BOL :
        d->linelen = 0 ;
        if (s[i] == '.') { i++ ; d->linelen = 1 ; d->state = S_DOT ; }
        else d->state = S_MID ;
        break ;
      case S_DOT :
        /* "." then something: the dot is stuffing, drop it */
        if (s[i] == '\r') { i++ ; d->state = S_DOTCR ; }
        else d->state = S_MID ;
        break ;
      case S_DOTCR :
        if (s[i] == '\n') { *end = 1 ; return i + 1 ; }
        d->flags |= F_BARE ;
        d->linelen++ ;
        d->state = S_MID ;
        break ;
      case S_CR :
        if (s[i] == '\n')
        {
          i++ ;
          data_emit(d, "\n", 1) ;
          d->state = S_BOL ;
        }
        else
        {
          d->flags |= F_BARE ;
          d->linelen++ ;
          d->state = S_MID ;
        }
        break ;
    }
  }
  return i ;
}

/* RFC 5322 date in UTC, "Thu, 01 Jan 1970 00:00:00 +0000", formatted by
 * hand: strftime() would read /etc/localtime on every message. */
static void fmt_date (char *buf, time_t t)
{
  static char const days[] = "ThuFriSatSunMonTueWed" ;
  static char const months[] = "JanFebMarAprMayJunJulAugSepOctNovDec" ;
  struct tm tm ;
  if (!gmtime_r(&t, &tm)) { strcpy(buf, "Thu, 01 Jan 1970 00:00:00 +0000") ; return ; }
  long day = (long)(t / 86400) ;
  unsigned int wd = (unsigned int)(((day % 7) + 7) % 7) ;
  unsigned int y = (unsigned int)tm.tm_year + 1900 ;
  char *p = buf ;
  memcpy(p, days + 3 * wd, 3) ; p += 3 ;
  *p++ = ',' ; *p++ = ' ' ;
  *p++ = '0' + tm.tm_mday / 10 ; *p++ = '0' + tm.tm_mday % 10 ; *p++ = ' ' ;
  memcpy(p, months + 3 * tm.tm_mon, 3) ; p += 3 ;
  *p++ = ' ' ;
  *p++ = '0' + (y / 1000) % 10 ; *p++ = '0' + (y / 100) % 10 ; *p++ = '0' + (y / 10) % 10 ; *p++ = '0' + y % 10 ;
  *p++ = ' ' ;
  *p++ = '0' + tm.tm_hour / 10 ; *p++ = '0' + tm.tm_hour % 10 ; *p++ = ':' ;
  *p++ = '0' + tm.tm_min / 10 ; *p++ = '0' + tm.tm_min % 10 ; *p++ = ':' ;
  *p++ = '0' + tm.tm_sec / 10 ; *p++ = '0' + tm.tm_sec % 10 ;
  memcpy(p, " +0000", 7) ;
}

static void received_header (char const *id, time_t now)
{
  char date[40] ;
  fmt_date(date, now) ;
  tmp.len = 0 ;
  cat(&tmp, "Received: from ") ;
  catb(&tmp, helo.s, helo.len) ;
  cat(&tmp, " (") ;
  if (remotehost && *remotehost)
  {
    stralloc h = STRALLOC_ZERO ;
    sanitize(&h, remotehost, strlen(remotehost)) ;
    catb(&tmp, h.s, h.len) ;
    stralloc_free(&h) ;
  }
  else cat(&tmp, remoteip) ;
  cat(&tmp, " [") ;
  cat(&tmp, remoteip) ;
  cat(&tmp, "])\n") ;
  if (tls || authed)
  {
    stralloc h = STRALLOC_ZERO ;
    if (tls)
    {
      sanitize(&h, tlsproto.s, tlsproto.len) ;
      cat(&tmp, "\t(using ") ; catb(&tmp, h.s, h.len) ;
      sanitize(&h, tlscipher.s, tlscipher.len) ;
      cat(&tmp, " with cipher ") ; catb(&tmp, h.s, h.len) ; cat(&tmp, ")\n") ;
    }
    if (authed)
    {
      /* who, never how: the password is not kept anywhere */
      sanitize(&h, authuser.s, authuser.len) ;
      cat(&tmp, "\t(authenticated as ") ; catb(&tmp, h.s, h.len) ; cat(&tmp, ")\n") ;
    }
    stralloc_free(&h) ;
  }
  cat(&tmp, "\tby ") ;
  catb(&tmp, me.s, me.len) ;
  cat(&tmp, " (yubin) with ") ;
  /* RFC 3848 and RFC 6531: ESMTP, ESMTPS, ESMTPA, ESMTPSA, UTF8SMTP... */
  if (smtputf8) cat(&tmp, "UTF8SMTP") ;
  else cat(&tmp, esmtp ? "ESMTP" : "SMTP") ;
  if (esmtp && tls) cat(&tmp, "S") ;
  if (esmtp && authed) cat(&tmp, "A") ;
  cat(&tmp, " id ") ;
  cat(&tmp, id) ;
  cat(&tmp, ";\n\t") ;
  cat(&tmp, date) ;
  cat(&tmp, "\n") ;
  queue_put(tmp.s, tmp.len) ;
}

/* a unique message id: seconds.microseconds.pid */
static time_t make_id (char *id)
{
  struct timespec ts ;
  size_t n = 0 ;
  if (clock_gettime(CLOCK_REALTIME, &ts) < 0) ts.tv_sec = 0, ts.tv_nsec = 0 ;
  n += ulong_fmt(id + n, (unsigned long)ts.tv_sec) ;
  id[n++] = '.' ;
  unsigned long us = (unsigned long)ts.tv_nsec / 1000 ;
  for (unsigned long m = 100000 ; m ; m /= 10) id[n++] = '0' + (us / m) % 10 ;
  id[n++] = '.' ;
  n += ulong_fmt(id + n, (unsigned long)getpid()) ;
  id[n] = 0 ;
  return ts.tv_sec ;
}

static void smtp_data (struct smtpcmd const *c)
{
  if (!seenmail) { errreply("503 5.5.1 need MAIL command\r\n", "DATA") ; return ; }
  if (!nrcpt) { errreply("554 5.5.1 no valid recipients\r\n", "DATA") ; return ; }
  if (c->error) { errreply("501 5.5.4 syntax: DATA\r\n", "DATA") ; return ; }
  read_databytes() ;
  if (!queue_start())
  {
    ylog("error", "ip", remoteip, "cmd", "DATA", "code", "451", "reason", "queue-start", "errno", strerror(errno), (char *)0) ;
    reply("451 4.3.0 qq temporary problem\r\n") ;
    return ;
  }
  char id[ULONG_FMT * 3 + 4] ;
  time_t now = make_id(id) ;
  received_header(id, now) ;
  size_t hdrlen = qlen ;
  reply("354 go ahead, end data with <CR><LF>.<CR><LF>\r\n") ;

  struct data d = { .state = S_BOL, .flags = 0, .linelen = 0, .bytes = 0, .inheader = 1, .prelen = 0, .hops = 0 } ;
  int end = 0 ;
  while (!end)
  {
    struct iovec v[2] ;
    if (buffer_isempty(&in)) fill() ;
    buffer_rpeek(&in, v) ;
    size_t used = data_scan(&d, v[0].iov_base, v[0].iov_len, &end) ;
    if (!end && v[1].iov_len) used += data_scan(&d, v[1].iov_base, v[1].iov_len, &end) ;
    buffer_rseek(&in, used) ;
  }

  char const *r = 0, *why = 0, *code = 0 ;
  if (d.flags & F_BARE) { r = "550 5.6.11 bare LF or CR in message; see RFC 5321 2.3.8\r\n" ; why = "bare-lf-cr" ; code = "550" ; }
  else if (d.flags & F_NUL) { r = "554 5.6.0 NUL byte in message\r\n" ; why = "nul" ; code = "554" ; }
  else if (d.flags & F_LONG) { r = "554 5.6.0 line too long\r\n" ; why = "line-too-long" ; code = "554" ; }
  else if (d.flags & F_SIZE) { r = "552 5.3.4 message size exceeds fixed maximum message size\r\n" ; why = "size" ; code = "552" ; }
  else if (d.flags & F_HOPS) { r = "554 5.4.6 too many hops, this message is looping\r\n" ; why = "too-many-hops" ; code = "554" ; }

  if (r)
  {
    /* never commit: close both pipes with no envelope; the queue sees a
       truncated envelope, exits non-zero and keeps nothing */
    qlen = 0 ;
    fd_close(qmsg) ; qmsg = -1 ;
    fd_close(qenv) ; qenv = -1 ;
    (void)queue_wait() ;   /* only to reap it: the message is refused anyway */
    reset_transaction() ;
    ylog("reject", "ip", remoteip, "cmd", "DATA", "from", mailfrom.s, "code", code, "reason", why, (char *)0) ;
    if (d.flags & (F_SIZE | F_HOPS)) reply(r) ; else errreply(r, "DATA") ;
    return ;
  }

  queue_flush() ;
  fd_close(qmsg) ; qmsg = -1 ;
  tmp.len = 0 ;
  catb(&tmp, "F", 1) ;
  catb(&tmp, mailfrom.s, mailfrom.len + 1) ;
  catb(&tmp, rcptenv.s, rcptenv.len) ;
  catb(&tmp, "", 1) ;
  if (!qerr && allwrite(qenv, tmp.s, tmp.len) < tmp.len) qerr = 1 ;
  fd_close(qenv) ; qenv = -1 ;
  int wstat = queue_wait() ;
  int perm ;
  char const *qr = queue_reply(wstat, &perm) ;
  char qp[PID_FMT] ;
  qp[pid_fmt(qp, qpid)] = 0 ;
  if (qr)
  {
    char cbuf[4] = { qr[0], qr[1], qr[2], 0 } ;
    char text[64] ;
    size_t wl = strlen(qr + 10) - 2 ;
    if (wl >= sizeof(text)) wl = sizeof(text) - 1 ;
    memcpy(text, qr + 10, wl) ;
    text[wl] = 0 ;
    ylog("error", "ip", remoteip, "cmd", "DATA", "from", mailfrom.s, "code", cbuf, "reason", text, "qp", qp, (char *)0) ;
    reset_transaction() ;
    reply(qr) ;
    return ;
  }
  char nb[UINT_FMT], bb[ULONG_FMT] ;
  nb[uint_fmt(nb, nrcpt)] = 0 ;
  bb[ulong_fmt(bb, d.bytes + hdrlen)] = 0 ;
  /* one line per accepted message carries the whole transaction (the HELO
     name, sender, first recipient and count): successful HELO, MAIL and
     RCPT are not logged one by one, which halves the log volume per
     message; refusals still get their own "reject" lines. */
  ylog("queued", "ip", remoteip, "helo", helo.len ? helo.s : 0, "from", mailfrom.s,
       "to", rcptenv.s + 1, "rcpts", nb, "bytes", bb, "qp", qp, "id", id,
       smtputf8 ? "smtputf8" : (char *)0, "1", (char *)0) ;   /* last field only with SMTPUTF8 */
  reset_transaction() ;
  cat(&out, "250 2.0.0 ok ") ;
  cat(&out, id) ;
  reply(" queued\r\n") ;
}

/* ---------- STARTTLS (RFC 3207 over yubin-tlsd's UCSPI-TLS protocol) ---------- */

/* sa = s, NUL-terminated (len excludes the NUL) */
static void setstr (stralloc *sa, char const *s)
{
  sa->len = 0 ;
  cat(sa, s) ;
  if (!stralloc_0(sa)) die_nomem() ;
  sa->len-- ;
}

static int scan_fd (char const *x, int *fd)
{
  unsigned int u ;
  if (!x || !*x || x[uint_scan(x, &u)] || u < 3 || u > 65535) return 0 ;
  *fd = (int)u ;
  return 1 ;
}

/* SSLCTLFD, SSLREADFD, SSLWRITEFD: STARTTLS is offered only if all three
 * are there and sane.  Close-on-exec, so the queue never holds them. */
static void tls_init (void)
{
  char const *p = getenv("SSL_PROTOCOL") ;
  if (p)
  {
    /* implicit TLS: yubin-tlsd did the handshake before starting us */
    tls = 1 ;
    setstr(&tlsproto, *p ? p : "unknown") ;
    p = getenv("SSL_CIPHER") ;
    setstr(&tlscipher, p && *p ? p : "unknown") ;
    return ;
  }
  int c, r, w ;
  if (!scan_fd(getenv("SSLCTLFD"), &c) || !scan_fd(getenv("SSLREADFD"), &r) || !scan_fd(getenv("SSLWRITEFD"), &w)
   || c == r || c == w || r == w) return ;
  if (coe(c) < 0 || coe(r) < 0 || coe(w) < 0) strerr_diefu1sys(EX_TEMP, "set close-on-exec on the TLS control fds") ;
  ctlfd = c ; tlsrfd = r ; tlswfd = w ;
}

/* After 'y': the session parameters, "NAME=value\0"... "\0", until EOF
 * (the handshake failed: leave without a word) or the deadline. */
static void tls_params (void)
{
  char buf[513] ;
  size_t n = 0 ;
  tain deadline ;
  tain_now_g() ;
  tain_addsec_g(&deadline, timeout) ;
  while (!(n == 1 && !buf[0]) && !(n >= 2 && !buf[n-1] && !buf[n-2]))
  {
    if (n >= sizeof(buf) - 1)
    {
      ylog("error", "ip", remoteip, "cmd", "STARTTLS", "reason", "bad-tls-parameters", (char *)0) ;
      _exit(EX_TEMP) ;
    }
    iopause_fd x = { .fd = ctlfd, .events = IOPAUSE_READ, .revents = 0 } ;
    int p = iopause_g(&x, 1, &deadline) ;
    if (p < 0) { if (errno == EINTR) continue ; strerr_diefu1sys(EX_TEMP, "iopause") ; }
    if (!p)
    {
      ylog("timeout", "ip", remoteip, "cmd", "STARTTLS", (char *)0) ;
      _exit(EX_TEMP) ;
    }
    ssize_t r = fd_read(ctlfd, buf + n, sizeof(buf) - 1 - n) ;
    if (!r)
    {
      ylog("quit", "ip", remoteip, "reason", "tls-handshake-failed", (char *)0) ;
      _exit(0) ;
    }
    if (r < 0)
    {
      if (errno == EINTR || errno == EAGAIN) continue ;
      ylog("quit", "ip", remoteip, "reason", "tls-control-error", (char *)0) ;
      _exit(EX_TEMP) ;
    }
    n += r ;
  }
  /* export them too, for the queue and checkpassword, as UCSPI-TLS does */
  for (size_t i = 0 ; i < n && buf[i] ; i += strlen(buf + i) + 1)
  {
    char *s = buf + i ;
    char *eq = strchr(s, '=') ;
    if (!eq || eq == s) continue ;
    *eq = 0 ;
    if (!strcmp(s, "SSL_PROTOCOL") && eq[1]) setstr(&tlsproto, eq + 1) ;
    else if (!strcmp(s, "SSL_CIPHER") && eq[1]) setstr(&tlscipher, eq + 1) ;
    if (setenv(s, eq + 1, 1) < 0) die_nomem() ;
    *eq = '=' ;
  }
  if (!tlsproto.len) setstr(&tlsproto, "unknown") ;
  if (!tlscipher.len) setstr(&tlscipher, "unknown") ;
}

static void smtp_starttls (struct smtpcmd const *c)
{
  if (tls) { errreply("503 5.5.1 TLS already active\r\n", "STARTTLS") ; return ; }
  if (ctlfd < 0) { errreply("502 5.5.1 command not implemented\r\n", "STARTTLS") ; return ; }
  if (c->error) { errreply("501 5.5.4 syntax: STARTTLS\r\n", "STARTTLS") ; return ; }
  reply("220 2.0.0 Ready to start TLS\r\n") ;
  flush() ;
  /* the socket is yubin-tlsd's from now on: give it back as it came */
  if (ndelay_off(0) < 0 || ndelay_off(1) < 0) strerr_diefu1sys(EX_TEMP, "set the connection blocking") ;
  /* CVE-2011-0411: whatever was pipelined behind STARTTLS came in
     cleartext and must never be taken as a command sent over TLS */
  buffer_rseek(&in, buffer_len(&in)) ;
  ssize_t w ;
  do w = fd_write(ctlfd, "y", 1) ; while (w < 0 && errno == EINTR) ;
  if (w != 1)
  {
    ylog("error", "ip", remoteip, "cmd", "STARTTLS", "reason", "tls-control-write", (char *)0) ;
    _exit(EX_TEMP) ;
  }
  tls_params() ;
  if (fd_move(0, tlsrfd) < 0 || fd_move(1, tlswfd) < 0) strerr_diefu1sys(EX_TEMP, "move the TLS pipes to fds 0 and 1") ;
  fd_close(ctlfd) ;
  ctlfd = tlsrfd = tlswfd = -1 ;
  if (unsetenv("SSLCTLFD") < 0 || unsetenv("SSLREADFD") < 0 || unsetenv("SSLWRITEFD") < 0) die_nomem() ;
  if (ndelay_on(0) < 0 || ndelay_on(1) < 0) strerr_diefu1sys(EX_TEMP, "set the TLS pipes non-blocking") ;
  tls = 1 ;
  /* RFC 3207 4.2: forget everything the client said before */
  seenhelo = 0 ;
  esmtp = 0 ;
  helo.len = 0 ;
  reset_transaction() ;
  ylog("tls", "ip", remoteip, "proto", tlsproto.s, "cipher", tlscipher.s, (char *)0) ;
}

/* ---------- AUTH (RFC 4954: PLAIN, LOGIN; only over TLS) ---------- */

static stralloc resp = STRALLOC_ZERO ;     /* decoded responses: wiped */
static stralloc who = STRALLOC_ZERO ;      /* the login being tried */
static stralloc cpprog = STRALLOC_ZERO ;   /* the checkpassword program */

/* Wipe what a password went through: the command line, the decoded
 * responses, and the already consumed space of the input buffer. */
static void auth_wipe (void)
{
  struct iovec v[2] ;
  if (line.s) byte_zzero(line.s, line.a) ;
  line.len = 0 ;
  if (resp.s) byte_zzero(resp.s, resp.a) ;
  resp.len = 0 ;
  buffer_wpeek(&in, v) ;
  for (unsigned int k = 0 ; k < 2 ; k++)
    if (v[k].iov_len) byte_zzero(v[k].iov_base, v[k].iov_len) ;
}

/* A base64 response s[0..len) appended, decoded, to resp.  initial: "="
 * is the empty initial response.  Returns 1, or 0 after an error reply
 * ("*" cancels). */
static int auth_decode (char const *s, size_t len, int initial)
{
  if (len == 1 && s[0] == '*') { errreply("501 5.0.0 authentication cancelled\r\n", "AUTH") ; return 0 ; }
  if (initial && len == 1 && s[0] == '=') return 1 ;
  int r = sasl_b64decode(&resp, s, len) ;
  if (r < 0) die_nomem() ;
  if (!r) { errreply("501 5.5.2 cannot decode the response\r\n", "AUTH") ; return 0 ; }
  return 1 ;
}

/* 334 challenge, then the client's response, decoded into resp. */
static int auth_read (char const *challenge)
{
  cat(&out, "334 ") ;
  cat(&out, challenge) ;
  reply("\r\n") ;
  getcmdline() ;
  size_t len = line.len - 1 ;
  if (len && line.s[len-1] == '\r') len-- ;
  if (len > SMTPCMD_MAX) { errreply("500 5.5.6 authentication exchange line is too long\r\n", "AUTH") ; return 0 ; }
  return auth_decode(line.s, len, 0) ;
}

/* Failures after the first are answered late: 1 s, 2 s, 4 s, at most
 * AUTHDELAY_MAX and the session's timeout. */
static void auth_delay (void)
{
  if (authfails < 2) return ;
  unsigned int d = 1 ;
  for (unsigned int i = 2 ; i < authfails && d < AUTHDELAY_MAX ; i++) d <<= 1 ;
  if (d > AUTHDELAY_MAX) d = AUTHDELAY_MAX ;
  if (d > timeout) d = timeout ;
  tain deadline ;
  tain_now_g() ;
  tain_addsec_g(&deadline, d) ;
  while (tain_future(&deadline))
    if (iopause_g(0, 0, &deadline) < 0 && errno != EINTR) break ;
}

static void auth_check (char const *mech, size_t userat, size_t userlen, size_t passat, size_t passlen)
{
  int r = CHECKPW_BAD, wstat = -1 ;
  who.len = 0 ;
  catb(&who, resp.s + userat, userlen) ;
  if (!stralloc_0(&who)) die_nomem() ;
  who.len-- ;
  if (userlen && !memchr(who.s, 0, userlen))
  {
    if (!cpprog.len)
    {
      char const *x = getenv("CHECKPASSWORD") ;
      if (x && *x) cat(&cpprog, x) ;
      else if (!yubin_sibling(&cpprog, "yubin-checkpassword")) die_nomem() ;
      if (!stralloc_0(&cpprog)) die_nomem() ;
    }
    /* the "extra" field: a timestamp, as qmail-smtpd's AUTH sends it */
    char extra[ULONG_FMT * 2 + 4] ;
    size_t n = ulong_fmt(extra, (unsigned long)getpid()) ;
    extra[n++] = '.' ;
    n += ulong_fmt(extra + n, (unsigned long)time(0)) ;
    extra[n] = 0 ;
    tain deadline ;
    tain_now_g() ;
    tain_addsec_g(&deadline, timeout) ;
    /* a session that already failed pays for its guesses at a lower CPU
       priority than everyone else's logins */
    r = checkpw_run(cpprog.s, "/bin/true", who.s, userlen, resp.s + passat, passlen, extra, authfails ? 10 : 0, &deadline, &wstat) ;
    if (r < 0)
    {
      if (errno == E2BIG) r = CHECKPW_BAD ;
      else
      {
        ylog("error", "ip", remoteip, "cmd", "AUTH", "code", "454", "reason", "checkpassword-spawn", "errno", strerror(errno), (char *)0) ;
        r = CHECKPW_TEMP ;
        wstat = -1 ;
      }
    }
  }
  auth_wipe() ;
  if (r == CHECKPW_OK)
  {
    authed = 1 ;
    authuser.len = 0 ;
    catb(&authuser, who.s, who.len + 1) ;
    authuser.len-- ;
    ylog("auth", "ip", remoteip, "user", who.s, "mech", mech, (char *)0) ;
    reply("235 2.7.0 Authentication successful\r\n") ;
    return ;
  }
  if (r == CHECKPW_BAD)
  {
    authfails++ ;
    ylog("auth-fail", "ip", remoteip, "user", who.s, "mech", mech, (char *)0) ;
    auth_delay() ;
    if (authfails >= MAXAUTHFAIL)
    {
      ylog("reject", "ip", remoteip, "cmd", "AUTH", "code", "421", "reason", "too-many-auth-failures", (char *)0) ;
      reply("421 4.7.0 too many failed authentication attempts\r\n") ;
      flush() ;
      _exit(0) ;
    }
    reply("535 5.7.8 Authentication credentials invalid\r\n") ;
    return ;
  }
  {
    char st[INT_FMT + 8] ;
    if (wstat == -1) strcpy(st, "timeout") ;
    else if (WIFSIGNALED(wstat)) { memcpy(st, "signal-", 7) ; st[7 + uint_fmt(st + 7, WTERMSIG(wstat))] = 0 ; }
    else st[uint_fmt(st, WEXITSTATUS(wstat))] = 0 ;
    ylog("error", "ip", remoteip, "cmd", "AUTH", "user", who.s, "code", "454", "reason", "checkpassword", "status", st, (char *)0) ;
  }
  reply("454 4.7.0 Temporary authentication failure\r\n") ;
}

static void smtp_auth (struct smtpcmd const *c)
{
  if (!tls)
  {
    auth_wipe() ;
    ylog("reject", "ip", remoteip, "cmd", "AUTH", "code", "538", "reason", "no-tls", (char *)0) ;
    errreply("538 5.7.11 Encryption required for requested authentication mechanism\r\n", "AUTH") ;
    return ;
  }
  if (authed) { auth_wipe() ; errreply("503 5.5.1 already authenticated\r\n", "AUTH") ; return ; }
  if (!seenhelo || !esmtp) { auth_wipe() ; errreply("503 5.5.1 send EHLO first\r\n", "AUTH") ; return ; }
  if (seenmail) { auth_wipe() ; errreply("503 5.5.1 AUTH not allowed in a mail transaction\r\n", "AUTH") ; return ; }
  if (c->error) { auth_wipe() ; errreply("501 5.5.4 syntax: AUTH mechanism [initial-response]\r\n", "AUTH") ; return ; }
  char const *a = line.s + c->arg ;
  size_t alen = c->arglen, m = 0 ;
  while (m < alen && a[m] != ' ' && a[m] != '\t') m++ ;
  size_t ir = m ;
  while (ir < alen && (a[ir] == ' ' || a[ir] == '\t')) ir++ ;
  int hasir = ir < alen ;
  if (hasir && (memchr(a + ir, ' ', alen - ir) || memchr(a + ir, '\t', alen - ir)))
  {
    auth_wipe() ;
    errreply("501 5.5.4 syntax: AUTH mechanism [initial-response]\r\n", "AUTH") ;
    return ;
  }
  resp.len = 0 ;
  if (!stralloc_ready(&resp, 1)) die_nomem() ;
  if (m == 5 && case_equalb(a, 5, "PLAIN"))
  {
    struct sasl_plain p ;
    if (!(hasir ? auth_decode(a + ir, alen - ir, 1) : auth_read(""))) goto end ;
    if (!sasl_plain_split(resp.s, resp.len, &p))
    {
      errreply("501 5.5.2 malformed PLAIN response\r\n", "AUTH") ;
      goto end ;
    }
    if (p.authzidlen && (p.authzidlen != p.authcidlen || !case_equalb(resp.s + p.authzid, p.authzidlen, resp.s + p.authcid)))
    {
      errreply("535 5.7.8 authorization identity must be the authentication identity\r\n", "AUTH") ;
      goto end ;
    }
    auth_check("PLAIN", p.authcid, p.authcidlen, p.passwd, p.passwdlen) ;
  }
  else if (m == 5 && case_equalb(a, 5, "LOGIN"))
  {
    /* "Username:", "Password:" */
    if (!(hasir ? auth_decode(a + ir, alen - ir, 1) : auth_read("VXNlcm5hbWU6"))) goto end ;
    size_t userlen = resp.len ;
    if (!auth_read("UGFzc3dvcmQ6")) goto end ;
    if (memchr(resp.s, 0, resp.len))
    {
      errreply("501 5.5.2 NUL byte in LOGIN response\r\n", "AUTH") ;
      goto end ;
    }
    auth_check("LOGIN", 0, userlen, userlen, resp.len - userlen) ;
  }
  else errreply("504 5.5.4 unrecognized authentication type\r\n", "AUTH") ;
 end:
  auth_wipe() ;
}

/* ---------- main ---------- */

int main (int argc, char const *const *argv)
{
  {
    subgetopt l = SUBGETOPT_ZERO ;
    for (;;)
    {
      int opt = subgetopt_r(argc, argv, "s", &l) ;
      if (opt == -1) break ;
      switch (opt)
      {
        case 's' : submission = 1 ; break ;
        default : strerr_dieusage(EX_PERM, USAGE) ;
      }
    }
    if (l.ind < argc) strerr_dieusage(EX_PERM, USAGE) ;
  }
  remoteip = getenv("TCPREMOTEIP") ;
  if (!remoteip || !*remoteip) remoteip = "unknown" ;
  remotehost = getenv("TCPREMOTEHOST") ;
  relayclient = getenv("RELAYCLIENT") ;

  if (sig_ignore(SIGPIPE) < 0) strerr_diefu1sys(EX_TEMP, "ignore SIGPIPE") ;
  if (sig_restore(SIGCHLD) < 0) strerr_diefu1sys(EX_TEMP, "restore SIGCHLD") ;
  if (ndelay_on(0) < 0) strerr_diefu1sys(EX_TEMP, "set fd 0 non-blocking") ;
  if (ndelay_on(1) < 0) strerr_diefu1sys(EX_TEMP, "set fd 1 non-blocking") ;
  tls_init() ;

  if (control_readline(&me, "me", "localhost") < 0) die_control("me") ;
  if (!me.len) { cat(&me, "localhost") ; if (!stralloc_0(&me)) die_nomem() ; me.len-- ; }
  {
    unsigned long t ;
    if (!env_ulong("TIMEOUTSMTPD", &t)
     && control_readulong(&t, "timeoutsmtpd", TIMEOUT_DEFAULT) < 0) die_control("timeoutsmtpd") ;
    if (!t) t = TIMEOUT_DEFAULT ;
    if (t > 86400) t = 86400 ;
    timeout = t ;
  }
  {
    unsigned long a ;
    char const *x = getenv("ANYSENDER") ;
    if (x) anysender = *x && strcmp(x, "0") ;
    else if (control_readulong(&a, "submission_anysender", 0) < 0) die_control("submission_anysender") ;
    else anysender = !!a ;
  }
  {
    stralloc g = STRALLOC_ZERO ;
    char const *x = getenv("SMTPGREETING") ;
    int r = 1 ;
    if (x) cat(&g, x) ;
    else r = control_readline(&g, "smtpgreeting", 0) ;
    if (r < 0) die_control("smtpgreeting") ;
    for (size_t i = 0 ; i < g.len ; i++)
      if (g.s[i] == '\r' || g.s[i] == '\n') g.len = i ;
    cat(&out, "220 ") ;
    if (r > 0 && g.len) catb(&out, g.s, g.len) ;
    else { catb(&out, me.s, me.len) ; cat(&out, " ESMTP yubin") ; }
    cat(&out, "\r\n") ;
    stralloc_free(&g) ;
  }
  ylog("connect", "ip", remoteip, "host", remotehost, "local", getenv("TCPLOCALIP"), "port", getenv("TCPLOCALPORT"), (char *)0) ;

  for (;;)
  {
    struct smtpcmd c ;
    getcmdline() ;
    smtpcmd_parse(line.s, line.len, &c) ;
    if (c.error == SMTPCMD_ENUL || c.error == SMTPCMD_ETOOLONG)
    {
      if (c.verb == SMTPCMD_AUTH) auth_wipe() ;   /* it may hold a password */
      errreply(c.error == SMTPCMD_ENUL ? "500 5.5.2 NUL byte in command\r\n" : "500 5.5.2 line too long\r\n", smtpcmd_name(c.verb)) ;
      continue ;
    }
    switch (c.verb)
    {
      case SMTPCMD_HELO : smtp_helo(&c, 0) ; break ;
      case SMTPCMD_EHLO : smtp_helo(&c, 1) ; break ;
      case SMTPCMD_MAIL : smtp_mail(&c) ; break ;
      case SMTPCMD_RCPT : smtp_rcpt(&c) ; break ;
      case SMTPCMD_DATA : smtp_data(&c) ; break ;
      case SMTPCMD_STARTTLS : smtp_starttls(&c) ; break ;
      case SMTPCMD_AUTH : smtp_auth(&c) ; break ;
      case SMTPCMD_RSET :
        if (c.error) { errreply("501 5.5.4 syntax: RSET\r\n", "RSET") ; break ; }
        reset_transaction() ;
        reply("250 2.0.0 ok\r\n") ;
        break ;
      case SMTPCMD_NOOP :
        reply("250 2.0.0 ok\r\n") ;
        break ;
      case SMTPCMD_QUIT :
        cat(&out, "221 2.0.0 ") ;
        catb(&out, me.s, me.len) ;
        cat(&out, " closing connection\r\n") ;
        flush() ;
        ylog("quit", "ip", remoteip, (char *)0) ;
        return 0 ;
      case SMTPCMD_VRFY :
        if (c.error) { errreply("501 5.5.4 syntax: VRFY address\r\n", "VRFY") ; break ; }
        reply("252 2.5.2 send some mail, I'll try my best\r\n") ;
        break ;
      case SMTPCMD_HELP :
        reply("214 2.0.0 commands: HELO EHLO STARTTLS AUTH MAIL RCPT DATA RSET NOOP QUIT VRFY HELP\r\n") ;
        break ;
      case SMTPCMD_EMPTY :
        errreply("500 5.5.2 empty command\r\n", "") ;
        break ;
      case SMTPCMD_UNKNOWN :
        errreply("502 5.5.2 unrecognized command\r\n", "?") ;
        break ;
      default :
        errreply("502 5.5.1 command not implemented\r\n", smtpcmd_name(c.verb)) ;
        break ;
    }
  }
}
