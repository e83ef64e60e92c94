/* yubin-smtpd: the RFC 5321 SMTP server, one process per connection under
 * tcpserver (UCSPI): reads fd 0, writes fd 1, logs on fd 2.  Each accepted
 * message is streamed into one yubin-queue (or $QMAILQUEUE) process through
 * common/qq, with the message on its fd 0 and the envelope on its fd 1.
 * STARTTLS through yubin-tlsd's UCSPI-TLS control fds (or a yubin-tlsd -E
 * started on demand, with $TLSD), AUTH PLAIN/LOGIN (over TLS only) through a checkpassword program, -s for submission.
 * See yubin-smtpd(8).
 *
 * This file is the session: control files, command dispatch, HELO, MAIL,
 * RCPT, DATA, RSET...  The other modules and what they do: smtpd.h, and
 * smtpd/deps-exe/yubin-smtpd for the list. */

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <skalibs/buffer.h>
#include <skalibs/bytestr.h>
#include <skalibs/djbunix.h>
#include <skalibs/sgetopt.h>
#include <skalibs/sig.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/types.h>

#include "address.h"
#include "assign.h"
#include "auth.h"
#include "connlimit.h"
#include "control.h"
#include "datascan.h"
#include "exitcodes.h"
#include "listen.h"
#include "nodump.h"
#include "qq.h"
#include "received.h"
#include "rewrite.h"
#include "smtpcmd.h"
#include "smtpd.h"
#include "ucspitls.h"
#include "ylog.h"

char const *PROG = "smtpd" ;

#define MAXRCPT_DEFAULT 100
#define TIMEOUT_DEFAULT 1200
#define TIMEOUTFIRST_DEFAULT 60
#define USAGE "yubin-smtpd [ -s | -a ] [ -l [ -U ] [ -c maxconn ] [ -b backlog ] [ -x rules.cdb ] [ -h localname ] ip port ]"

/* ---------- session state ---------- */

struct smtpd_conf conf = { .me = STRALLOC_ZERO, .timeout = TIMEOUT_DEFAULT } ;
struct smtpd_session session = { .helo = STRALLOC_ZERO, .mailfrom = STRALLOC_ZERO, .rcptenv = STRALLOC_ZERO } ;
struct ucspitls tls = UCSPITLS_ZERO ;

static stralloc addr = STRALLOC_ZERO ;    /* scratch: parsed address */
static stralloc tmp = STRALLOC_ZERO ;     /* scratch */

/* control files, read lazily, once */
static struct
{
  int lists_read ;
  stralloc locals ;
  stralloc rcpthosts ;
  stralloc vdoms ;          /* control/virtualdomains */
  stralloc percenthack ;
  unsigned long maxrcpt ;
  int databytes_read ;
  unsigned long databytes ;
} ctl = { .locals = STRALLOC_ZERO, .rcpthosts = STRALLOC_ZERO, .vdoms = STRALLOC_ZERO, .percenthack = STRALLOC_ZERO, .maxrcpt = MAXRCPT_DEFAULT } ;

/* ---------- helpers ---------- */

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
  if (ctl.databytes_read) return ;
  unsigned long n ;
  if (env_ulong("DATABYTES", &n)) ctl.databytes = n ;
  else if (control_readulong(&ctl.databytes, "databytes", 0) < 0) die_control("databytes") ;
  ctl.databytes_read = 1 ;
}

static void read_lists (void)
{
  if (ctl.lists_read) return ;
  int r = control_readlist(&ctl.locals, "locals") ;
  if (r < 0) die_control("locals") ;
  if (!r || !ctl.locals.len)
  {
    ctl.locals.len = 0 ;
    catb(&ctl.locals, conf.me.s, conf.me.len + 1) ;   /* with its NUL */
  }
  if (control_readlist(&ctl.rcpthosts, "rcpthosts") < 0) die_control("rcpthosts") ;
  if (control_readlist(&ctl.vdoms, "virtualdomains") < 0) die_control("virtualdomains") ;
  if (control_readlist(&ctl.percenthack, "percenthack") < 0) die_control("percenthack") ;
  if (!env_ulong("MAXRCPT", &ctl.maxrcpt)
   && control_readulong(&ctl.maxrcpt, "maxrcpt", MAXRCPT_DEFAULT) < 0) die_control("maxrcpt") ;
  if (!ctl.maxrcpt) ctl.maxrcpt = MAXRCPT_DEFAULT ;
  ctl.lists_read = 1 ;
}

static void reset_transaction (void)
{
  session.seenmail = 0 ;
  session.smtputf8 = 0 ;
  session.mailfrom.len = 0 ;
  session.rcptenv.len = 0 ;
  session.nrcpt = 0 ;
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
  if (!received_sanitize(&session.helo, io.line.s + c->arg, c->arglen)) die_nomem() ;
  session.seenhelo = 1 ;
  session.esmtp = ehlo ;
  reset_transaction() ;
  if (!ehlo)
  {
    cat(&io.out, "250 ") ; catb(&io.out, conf.me.s, conf.me.len) ; reply("\r\n") ;
    return ;
  }
  read_databytes() ;
  cat(&io.out, "250-") ; catb(&io.out, conf.me.s, conf.me.len) ;
  cat(&io.out, "\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE") ;
  if (ctl.databytes) { cat(&io.out, " ") ; catulong(&io.out, ctl.databytes) ; }
  cat(&io.out, "\r\n250-SMTPUTF8\r\n") ;
  if (ucspitls_offered(&tls)) cat(&io.out, "250-STARTTLS\r\n") ;
  if (tls.on && conf.auth) cat(&io.out, "250-AUTH PLAIN LOGIN\r\n") ;
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
      if (ctl.databytes && n > ctl.databytes)
      {
        ylog("reject", "ip", conf.remoteip, "cmd", "MAIL", "size", sizebuf, "code", "552", "reason", "size", (char *)0) ;
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
  char const *login = auth.user.s ;
  size_t lat = byte_chr(login, auth.user.len, '@') ;
  char const *domain = addr.s + at + 1 ;
  if (lat < auth.user.len)
  {
    if (!case_equals(domain, login + lat + 1)) return 0 ;
  }
  else
  {
    read_lists() ;
    if (!control_domain_in_list(ctl.locals.s, ctl.locals.len, domain)) return 0 ;
  }
  if (at < lat || !case_equalb(addr.s, lat, login)) return 0 ;
  return at == lat || addr.s[lat] == '-' ;
}

/* A MAIL or RCPT address that does not parse: logged, answered with code
 * and status and the parser's reason. */
static void reject_address (char const *cmd, char const *code, char const *status, enum address_error e)
{
  ylog("reject", "ip", conf.remoteip, "cmd", cmd, "code", code, "reason", address_strerror(e), (char *)0) ;
  tmp.len = 0 ;
  cat(&tmp, code) ; catb(&tmp, " ", 1) ; cat(&tmp, status) ; catb(&tmp, " ", 1) ;
  cat(&tmp, address_strerror(e)) ; catb(&tmp, "\r\n", 3) ;
  errreply(tmp.s, cmd) ;
}

static void smtp_mail (struct smtpcmd const *c)
{
  if (!session.seenhelo) { errreply("503 5.5.1 send HELO or EHLO first\r\n", "MAIL") ; return ; }
  if (session.seenmail) { errreply("503 5.5.1 nested MAIL command\r\n", "MAIL") ; return ; }
  if (c->error) { errreply("501 5.5.4 syntax: MAIL FROM:<address>\r\n", "MAIL") ; return ; }
  if (conf.submission && !auth.authed)
  {
    ylog("reject", "ip", conf.remoteip, "cmd", "MAIL", "code", "530", "reason", "auth-required", (char *)0) ;
    errreply("530 5.7.0 Authentication required\r\n", "MAIL") ;
    return ;
  }
  size_t rest ;
  int utf8 = 0 ;
  enum address_error e = address_parse_path(io.line.s + c->arg, c->arglen, 1, 1, &addr, &rest) ;
  if (e != ADDR_OK)
  {
    reject_address("MAIL", "501", "5.1.7", e) ;
    return ;
  }
  char const *sizestr = 0 ;
  if (rest > c->arglen) rest = c->arglen ;
  if (!mail_params(io.line.s + c->arg + rest, c->arglen - rest, &sizestr, &utf8)) return ;
  if (!utf8 && has8bit(addr.s, addr.len))
  {
    ylog("reject", "ip", conf.remoteip, "cmd", "MAIL", "from", addr.s, "code", "553", "reason", "utf8-without-smtputf8", (char *)0) ;
    errreply("553 5.6.7 non-ASCII address needs the SMTPUTF8 parameter\r\n", "MAIL") ;
    return ;
  }
  if (auth.authed && !conf.anysender && !sender_owned())
  {
    ylog("reject", "ip", conf.remoteip, "cmd", "MAIL", "from", addr.s, "user", auth.user.s, "code", "553", "reason", "sender-not-owned", (char *)0) ;
    errreply("553 5.7.1 Sender address not owned by user\r\n", "MAIL") ;
    return ;
  }
  session.mailfrom.len = 0 ;
  catb(&session.mailfrom, addr.s, addr.len) ;
  catb(&session.mailfrom, "", 1) ;
  session.mailfrom.len-- ;
  session.rcptenv.len = 0 ;
  session.nrcpt = 0 ;
  session.seenmail = 1 ;
  session.smtputf8 = utf8 ;
  reply("250 2.1.0 ok\r\n") ;
}

/* Does someone here take the recipient a[0..len) (at: its '@')?  A
 * local domain's local part, or the local part "prefix-user" that
 * control/virtualdomains makes of a virtual one, must have an owner
 * (common/assign.h: users/assign, the users, the alias user's .qmail
 * files); any other address is not ours to check.  0 if taken, else
 * the reply code with the text in tmp and the log reason in *why. */
static int rcpt_owner (char const *a, size_t len, size_t at, int islocal, char const **why)
{
  static stralloc mapped = STRALLOC_ZERO ;
  char const *local = a ;
  size_t llen = at ;
  if (!islocal)
  {
    char const *prefix ;
    size_t plen ;
    if (!rewrite_vdomain(ctl.vdoms.s, ctl.vdoms.len, a, len, &prefix, &plen)) return 0 ;
    if (!rewrite_vdomain_local(&mapped, prefix, plen, a, at)) die_nomem() ;
    local = mapped.s ;
    llen = mapped.len ;
  }
  struct assign as = ASSIGN_ZERO ;
  int r = assign_find(local, llen, 0, &as) ;
  assign_free(&as) ;
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
      cat(&addr, ctl.locals.s) ;
      if (!stralloc_0(&addr)) die_nomem() ;
      addr.len-- ;
      return 0 ;
    }
    *why = "no-domain" ;
    cat(&tmp, "553 5.1.3 ") ; cat(&tmp, address_strerror(ADDR_NODOMAIN)) ; cat(&tmp, "\r\n") ;
    return 553 ;
  }
  char const *domain = addr.s + at + 1 ;
  int islocal = control_domain_in_list(ctl.locals.s, ctl.locals.len, domain) ;
  int ours = islocal || control_domain_in_list(ctl.rcpthosts.s, ctl.rcpthosts.len, domain) ;
  if (!conf.relayclient && !auth.authed)
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
  if (ctl.percenthack.len && byte_chr(addr.s, at, '%') < at)
  {
    /* control/percenthack (for the clients that may relay, the others
       were refused above): qmgr will deliver to user@host, check that */
    static stralloc ph = STRALLOC_ZERO ;
    if (!stralloc_copyb(&ph, addr.s, addr.len + 1)) die_nomem() ;
    ph.len-- ;
    if (rewrite_percent(ctl.percenthack.s, ctl.percenthack.len, &ph))
    {
      size_t pat = address_split(ph.s, ph.len) ;
      int plocal = control_domain_in_list(ctl.locals.s, ctl.locals.len, ph.s + pat + 1) ;
      if (plocal && is_postmaster(ph.s, pat)) return 0 ;
      return rcpt_owner(ph.s, ph.len, pat, plocal, why) ;
    }
  }
  if (islocal && is_postmaster(addr.s, at)) return 0 ;
  return rcpt_owner(addr.s, addr.len, at, islocal, why) ;
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
  if (!session.seenmail) { errreply("503 5.5.1 need MAIL before RCPT\r\n", "RCPT") ; return ; }
  if (c->error) { errreply("501 5.5.4 syntax: RCPT TO:<address>\r\n", "RCPT") ; return ; }
  size_t rest ;
  enum address_error e = rcpt_parse(io.line.s + c->arg, c->arglen, &rest) ;
  if (e != ADDR_OK)
  {
    reject_address("RCPT", "553", "5.1.3", e) ;
    return ;
  }
  if (!session.smtputf8 && has8bit(addr.s, addr.len))
  {
    ylog("reject", "ip", conf.remoteip, "cmd", "RCPT", "to", addr.s, "code", "553", "reason", "utf8-without-smtputf8", (char *)0) ;
    errreply("553 5.6.7 non-ASCII address needs the SMTPUTF8 parameter\r\n", "RCPT") ;
    return ;
  }
  if (rest > c->arglen) rest = c->arglen ;
  for (size_t i = rest ; i < c->arglen ; i++)
  {
    char ch = io.line.s[c->arg + i] ;
    if (ch != ' ' && ch != '\t')
    {
      errreply("555 5.5.4 unsupported parameter\r\n", "RCPT") ;
      return ;
    }
  }
  read_lists() ;
  if (session.nrcpt >= ctl.maxrcpt)
  {
    ylog("reject", "ip", conf.remoteip, "cmd", "RCPT", "to", addr.s, "code", "452", "reason", "too-many-recipients", (char *)0) ;
    reply("452 4.5.3 too many recipients\r\n") ;
    return ;
  }
  char const *why = "" ;
  int code = rcpt_policy(&why) ;
  if (code)
  {
    char fmt[UINT_FMT] ;
    fmt[uint_fmt(fmt, code)] = 0 ;
    ylog("reject", "ip", conf.remoteip, "cmd", "RCPT", "to", addr.s, "code", fmt, "reason", why, (char *)0) ;
    catb(&tmp, "", 1) ;
    if (code == 451) reply(tmp.s) ;
    else errreply(tmp.s, "RCPT") ;
    return ;
  }
  catb(&session.rcptenv, "T", 1) ;
  catb(&session.rcptenv, addr.s, addr.len) ;
  if (conf.relayclient) cat(&session.rcptenv, conf.relayclient) ;
  catb(&session.rcptenv, "", 1) ;
  session.nrcpt++ ;
  reply("250 2.1.5 ok\r\n") ;
}


/* ---------- DATA ---------- */

static struct qq q = QQ_ZERO ;
static stralloc qprog = STRALLOC_ZERO ;   /* the queue program, found once */

static void data_put (void *ctx, char const *s, size_t len)
{
  qq_put(ctx, s, len) ;
}

static int queue_start (void)
{
  if (!qprog.len && !qq_program(&qprog))
  {
    qprog.len = 0 ;
    return 0 ;
  }
  return qq_open(&q, qprog.s) == 0 ;
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

/* Our Received: line, first into the queue; returns its length. */
static size_t received_put (char const *id, time_t now)
{
  struct received r =
  {
    .helo = session.helo.s, .helolen = session.helo.len,
    .host = conf.remotehost, .ip = conf.remoteip,
    .tlsproto = tls.on ? tls.proto.s : 0, .tlsprotolen = tls.proto.len,
    .tlscipher = tls.cipher.s, .tlscipherlen = tls.cipher.len,
    .authuser = auth.authed ? auth.user.s : 0, .authuserlen = auth.user.len,
    .me = conf.me.s, .melen = conf.me.len,
    .esmtp = session.esmtp, .smtputf8 = session.smtputf8,
    .id = id, .when = now
  } ;
  tmp.len = 0 ;
  if (!received_header(&tmp, &r)) die_nomem() ;
  qq_put(&q, tmp.s, tmp.len) ;
  return tmp.len ;
}

/* The end of a refused message: never commit.  Close both pipes with no
 * envelope; the queue sees a truncated envelope, exits non-zero and keeps
 * nothing. */
static void data_refuse (unsigned int flags)
{
  char const *r, *why, *code ;
  if (flags & DATASCAN_BARE) { r = "550 5.6.11 bare LF or CR in message; see RFC 5321 2.3.8\r\n" ; why = "bare-lf-cr" ; code = "550" ; }
  else if (flags & DATASCAN_NUL) { r = "554 5.6.0 NUL byte in message\r\n" ; why = "nul" ; code = "554" ; }
  else if (flags & DATASCAN_LONG) { r = "554 5.6.0 line too long\r\n" ; why = "line-too-long" ; code = "554" ; }
  else if (flags & DATASCAN_SIZE) { r = "552 5.3.4 message size exceeds fixed maximum message size\r\n" ; why = "size" ; code = "552" ; }
  else { r = "554 5.4.6 too many hops, this message is looping\r\n" ; why = "too-many-hops" ; code = "554" ; }
  qq_abort(&q) ;   /* only to reap it: the message is refused anyway */
  reset_transaction() ;
  ylog("reject", "ip", conf.remoteip, "cmd", "DATA", "from", session.mailfrom.s, "code", code, "reason", why, (char *)0) ;
  if (flags & (DATASCAN_SIZE | DATASCAN_HOPS)) reply(r) ; else errreply(r, "DATA") ;
}

/* The envelope, then the queue's verdict.  Returns 0 if it queued the
 * message, else the reply is made here. */
static int data_commit (char const *qp)
{
  qq_from(&q, session.mailfrom.s) ;
  for (size_t i = 0 ; i < session.rcptenv.len ; i += strlen(session.rcptenv.s + i) + 1)
    qq_to(&q, session.rcptenv.s + i + 1) ;   /* past the 'T' */
  int code = qq_close(&q) ;
  if (!code) return 0 ;
  /* qq_status: "Z4.3.0 qq crashed", "D5.3.0 ...": Z is 451, D is 554 */
  char const *st = qq_status(code) ;
  char const *text = strchr(st, ' ') ;
  text = text ? text + 1 : "" ;
  char cbuf[4] = { '4', '5', '1', 0 } ;
  if (st[0] == 'D') memcpy(cbuf, "554", 3) ;
  char why[64] ;
  size_t wl = strlen(text) ;
  if (wl >= sizeof(why)) wl = sizeof(why) - 1 ;
  memcpy(why, text, wl) ;
  why[wl] = 0 ;
  ylog("error", "ip", conf.remoteip, "cmd", "DATA", "from", session.mailfrom.s, "code", cbuf, "reason", why, "qp", qp, (char *)0) ;
  reset_transaction() ;
  cat(&io.out, cbuf) ;
  cat(&io.out, " ") ;
  cat(&io.out, st + 1) ;
  reply("\r\n") ;
  return 1 ;
}

static void smtp_data (struct smtpcmd const *c)
{
  if (!session.seenmail) { errreply("503 5.5.1 need MAIL command\r\n", "DATA") ; return ; }
  if (!session.nrcpt) { errreply("554 5.5.1 no valid recipients\r\n", "DATA") ; return ; }
  if (c->error) { errreply("501 5.5.4 syntax: DATA\r\n", "DATA") ; return ; }
  read_databytes() ;
  if (!queue_start())
  {
    ylog("error", "ip", conf.remoteip, "cmd", "DATA", "code", "451", "reason", "queue-start", "errno", strerror(errno), (char *)0) ;
    reply("451 4.3.0 qq temporary problem\r\n") ;
    return ;
  }
  char id[ULONG_FMT * 3 + 4] ;
  time_t now = make_id(id) ;
  size_t hdrlen = received_put(id, now) ;
  reply("354 go ahead, end data with <CR><LF>.<CR><LF>\r\n") ;

  struct datascan d ;
  datascan_init(&d, ctl.databytes, &data_put, &q) ;
  int end = 0 ;
  while (!end)
  {
    struct iovec v[2] ;
    if (buffer_isempty(&io.in)) fill() ;
    buffer_rpeek(&io.in, v) ;
    size_t used = datascan_run(&d, v[0].iov_base, v[0].iov_len, &end) ;
    if (!end && v[1].iov_len) used += datascan_run(&d, v[1].iov_base, v[1].iov_len, &end) ;
    buffer_rseek(&io.in, used) ;
  }
  if (d.flags) { data_refuse(d.flags) ; return ; }

  char qp[PID_FMT] ;
  qp[pid_fmt(qp, q.pid)] = 0 ;
  if (data_commit(qp)) return ;
  char nb[UINT_FMT], bb[ULONG_FMT] ;
  nb[uint_fmt(nb, session.nrcpt)] = 0 ;
  bb[ulong_fmt(bb, d.bytes + hdrlen)] = 0 ;
  /* one line per accepted message carries the whole transaction (the HELO
     name, sender, first recipient and count): successful HELO, MAIL and
     RCPT are not logged one by one, which halves the log volume per
     message; refusals still get their own "reject" lines. */
  ylog("queued", "ip", conf.remoteip, "helo", session.helo.len ? session.helo.s : 0, "from", session.mailfrom.s,
       "to", session.rcptenv.s + 1, "rcpts", nb, "bytes", bb, "qp", qp, "id", id,
       session.smtputf8 ? "smtputf8" : (char *)0, "1", (char *)0) ;   /* last field only with SMTPUTF8 */
  reset_transaction() ;
  cat(&io.out, "250 2.0.0 ok ") ;
  cat(&io.out, id) ;
  reply(" queued\r\n") ;
}

/* ---------- STARTTLS (RFC 3207; the UCSPI-TLS side is common/ucspitls.c) ---------- */

static void smtp_starttls (struct smtpcmd const *c)
{
  if (tls.on) { errreply("503 5.5.1 TLS already active\r\n", "STARTTLS") ; return ; }
  if (!ucspitls_offered(&tls)) { errreply("502 5.5.1 command not implemented\r\n", "STARTTLS") ; return ; }
  if (c->error) { errreply("501 5.5.4 syntax: STARTTLS\r\n", "STARTTLS") ; return ; }
  reply("220 2.0.0 Ready to start TLS\r\n") ;
  flush() ;
  /* CVE-2011-0411: whatever was pipelined behind STARTTLS came in
     cleartext and must never be taken as a command sent over TLS */
  buffer_rseek(&io.in, buffer_len(&io.in)) ;
  ucspitls_switch(&tls, conf.timeout, conf.remoteip, "STARTTLS") ;
  /* RFC 3207 4.2: forget everything the client said before */
  session.seenhelo = 0 ;
  session.esmtp = 0 ;
  session.helo.len = 0 ;
  reset_transaction() ;
  ylog("tls", "ip", conf.remoteip, "proto", tls.proto.s, "cipher", tls.cipher.s, (char *)0) ;
}

/* ---------- main ---------- */

/* $CONNLIMIT (the run scripts set it): one of the client address's
 * session slots (common/connlimit.h), before the greeting, so that a few
 * clients can't hold every one of tcpserver's.  Not under tcpserver (no
 * TCPREMOTEIP): no limit. */
static void take_connection_slot (void)
{
  unsigned long n ;
  if (!getenv("CONNLIMIT") || !strcmp(conf.remoteip, "unknown")) return ;
  int r = connlimit_take(conf.remoteip, 1, &n) ;
  if (r > 0) return ;
  if (r < 0)
  {
    ylog("error", "ip", conf.remoteip, "reason", "connlimit", "errno", strerror(errno), (char *)0) ;
    reply("421 4.3.0 unable to take a connection slot\r\n") ;
  }
  else
  {
    connlimit_log_refusal(conf.remoteip, n) ;
    reply("421 4.7.0 too many connections from your address\r\n") ;
  }
  flush() ;
  _exit(0) ;
}

int main (int argc, char const *const *argv)
{
  {
    subgetopt l = SUBGETOPT_ZERO ;
    struct listen_conf lc = LISTEN_CONF_ZERO ;
    int listener = 0 ;
    for (;;)
    {
      int opt = subgetopt_r(argc, argv, "salUc:b:x:h:F:", &l) ;
      if (opt == -1) break ;
      switch (opt)
      {
        case 's' : conf.submission = 1 ; conf.auth = 1 ; break ;
        case 'a' : conf.auth = 1 ; break ;
        case 'l' : listener = 1 ; break ;
        case 'U' : lc.dropuid = 1 ; break ;
        case 'c' : if (!uint0_scan(l.arg, &lc.maxconn)) strerr_dieusage(EX_PERM, USAGE) ; break ;
        case 'b' : if (!uint0_scan(l.arg, &lc.backlog)) strerr_dieusage(EX_PERM, USAGE) ; break ;
        case 'x' : lc.rules = l.arg ; break ;
        case 'h' : lc.localname = l.arg ; break ;
        case 'F' : if (!int0_scan(l.arg, &lc.inherited) || lc.inherited < 0) strerr_dieusage(EX_PERM, USAGE) ; listener = 1 ; break ;
        default : strerr_dieusage(EX_PERM, USAGE) ;
      }
    }
    if (listener)
    {
      if (argc - l.ind != 2) strerr_dieusage(EX_PERM, USAGE) ;
      lc.ip = argv[l.ind] ;
      lc.port = argv[l.ind + 1] ;
      lc.argv = argv ;
      listen_serve(&lc) ;   /* returns in a session's child */
    }
    else if (l.ind < argc) strerr_dieusage(EX_PERM, USAGE) ;
  }
  /* no core dumps and no ptrace by our own uid: a session holds other
     people's passwords and mail */
  if (yubin_nodump() < 0) strerr_diefu1sys(EX_TEMP, "prctl PR_SET_DUMPABLE") ;
  conf.remoteip = getenv("TCPREMOTEIP") ;
  if (!conf.remoteip || !*conf.remoteip) conf.remoteip = "unknown" ;
  conf.remotehost = getenv("TCPREMOTEHOST") ;
  conf.relayclient = getenv("RELAYCLIENT") ;

  if (!sig_ignore(SIGPIPE)) strerr_diefu1sys(EX_TEMP, "ignore SIGPIPE") ;
  if (!sig_restore(SIGCHLD)) strerr_diefu1sys(EX_TEMP, "restore SIGCHLD") ;
  if (ndelay_on(0) < 0) strerr_diefu1sys(EX_TEMP, "set fd 0 non-blocking") ;
  if (ndelay_on(1) < 0) strerr_diefu1sys(EX_TEMP, "set fd 1 non-blocking") ;
  ucspitls_init(&tls) ;
  take_connection_slot() ;

  if (control_readline(&conf.me, "me", "localhost") < 0) die_control("me") ;
  if (!conf.me.len) { cat(&conf.me, "localhost") ; if (!stralloc_0(&conf.me)) die_nomem() ; conf.me.len-- ; }
  {
    unsigned long t ;
    if (!env_ulong("TIMEOUTSMTPD", &t)
     && control_readulong(&t, "timeoutsmtpd", TIMEOUT_DEFAULT) < 0) die_control("timeoutsmtpd") ;
    if (!t) t = TIMEOUT_DEFAULT ;
    if (t > 86400) t = 86400 ;
    conf.timeout = t ;
    if (!env_ulong("TIMEOUTGREETING", &t)
     && control_readulong(&t, "timeoutgreeting", TIMEOUTFIRST_DEFAULT) < 0) die_control("timeoutgreeting") ;
    conf.timeoutfirst = t && t < conf.timeout ? t : conf.timeout ;
  }
  {
    unsigned long a ;
    char const *x = getenv("ANYSENDER") ;
    if (x) conf.anysender = *x && strcmp(x, "0") ;
    else if (control_readulong(&a, "submission_anysender", 0) < 0) die_control("submission_anysender") ;
    else conf.anysender = !!a ;
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
    cat(&io.out, "220 ") ;
    if (r > 0 && g.len) catb(&io.out, g.s, g.len) ;
    else { catb(&io.out, conf.me.s, conf.me.len) ; cat(&io.out, " ESMTP yubin") ; }
    cat(&io.out, "\r\n") ;
    stralloc_free(&g) ;
  }
  ylog("connect", "ip", conf.remoteip, "host", conf.remotehost, "local", getenv("TCPLOCALIP"), "port", getenv("TCPLOCALPORT"), (char *)0) ;

  for (;;)
  {
    struct smtpcmd c ;
    getcmdline() ;
    smtpcmd_parse(io.line.s, io.line.len, &c) ;
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
      case SMTPCMD_AUTH : auth_command(&c) ; break ;
      case SMTPCMD_RSET :
        if (c.error) { errreply("501 5.5.4 syntax: RSET\r\n", "RSET") ; break ; }
        reset_transaction() ;
        reply("250 2.0.0 ok\r\n") ;
        break ;
      case SMTPCMD_NOOP :
        reply("250 2.0.0 ok\r\n") ;
        break ;
      case SMTPCMD_QUIT :
        cat(&io.out, "221 2.0.0 ") ;
        catb(&io.out, conf.me.s, conf.me.len) ;
        cat(&io.out, " closing connection\r\n") ;
        flush() ;
        ylog("quit", "ip", conf.remoteip, (char *)0) ;
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
