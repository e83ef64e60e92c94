/* AUTH PLAIN and LOGIN: see auth.h. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#include <skalibs/buffer.h>
#include <skalibs/bytestr.h>
#include <skalibs/iopause.h>
#include <skalibs/stralloc.h>
#include <skalibs/tai.h>
#include <skalibs/types.h>

#include "auth.h"
#include "base64.h"
#include "checkpw.h"
#include "root.h"
#include "sasl.h"
#include "smtpd.h"
#include "ylog.h"

#define MAXAUTHFAIL 3               /* failed AUTH per session, then 421 */
#define AUTHDELAY_MAX 8             /* seconds, the most a failure is delayed */

struct smtpd_auth auth = { .authed = 0, .user = STRALLOC_ZERO, .fails = 0 } ;

static stralloc resp = STRALLOC_ZERO ;     /* decoded responses: wiped */
static stralloc who = STRALLOC_ZERO ;      /* the login being tried */
static stralloc cpprog = STRALLOC_ZERO ;   /* the checkpassword program */
static char const *cpnext = "/bin/true" ;  /* what it runs: we only want the verdict */

void auth_wipe (void)
{
  struct iovec v[2] ;
  if (io.line.s) byte_zzero(io.line.s, io.line.a) ;
  io.line.len = 0 ;
  if (resp.s) byte_zzero(resp.s, resp.a) ;
  resp.len = 0 ;
  buffer_wpeek(&io.in, v) ;
  for (unsigned int k = 0 ; k < 2 ; k++)
    if (v[k].iov_len) byte_zzero(v[k].iov_base, v[k].iov_len) ;
}

/* A base64 response s[0..len) appended, decoded, to resp (strict, as
 * RFC 4954 carries it).  initial: "=" is the empty initial response.
 * Returns 1, or 0 after an error reply ("*" cancels). */
static int decode (char const *s, size_t len, int initial)
{
  if (len == 1 && s[0] == '*') { errreply("501 5.0.0 authentication cancelled\r\n", "AUTH") ; return 0 ; }
  if (initial && len == 1 && s[0] == '=') return 1 ;
  int r = base64_decode(&resp, s, len, 0) ;
  if (r < 0) die_nomem() ;
  if (!r) { errreply("501 5.5.2 cannot decode the response\r\n", "AUTH") ; return 0 ; }
  return 1 ;
}

/* 334 challenge, then the client's response, decoded into resp. */
static int challenge (char const *s)
{
  cat(&io.out, "334 ") ;
  cat(&io.out, s) ;
  reply("\r\n") ;
  getcmdline() ;
  size_t len = io.line.len - 1 ;
  if (len && io.line.s[len-1] == '\r') len-- ;
  if (len > SMTPCMD_MAX) { errreply("500 5.5.6 authentication exchange line is too long\r\n", "AUTH") ; return 0 ; }
  return decode(io.line.s, len, 0) ;
}

/* Failures after the first are answered late: 1 s, 2 s, 4 s, at most
 * AUTHDELAY_MAX and the session's timeout. */
static void delay (void)
{
  if (auth.fails < 2) return ;
  unsigned int d = 1 ;
  for (unsigned int i = 2 ; i < auth.fails && d < AUTHDELAY_MAX ; i++) d <<= 1 ;
  if (d > AUTHDELAY_MAX) d = AUTHDELAY_MAX ;
  if (d > conf.timeout) d = conf.timeout ;
  tain deadline ;
  tain_now_g() ;
  tain_addsec_g(&deadline, d) ;
  deepsleepuntil_g(&deadline) ;
}

static void check (char const *mech, size_t userat, size_t userlen, size_t passat, size_t passlen)
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
      else if (!yubin_libexec(&cpprog, "yubin-checkpassword")) die_nomem() ;
      if (!stralloc_0(&cpprog)) die_nomem() ;
      /* ours says the verdict without an exec of /bin/true (-v); any
         other checkpassword program gets /bin/true */
      char const *base = strrchr(cpprog.s, '/') ;
      if (!strcmp(base ? base + 1 : cpprog.s, "yubin-checkpassword")) cpnext = "-v" ;
    }
    /* the "extra" field: a timestamp, as qmail-smtpd's AUTH sends it */
    char extra[ULONG_FMT * 2 + 4] ;
    size_t n = ulong_fmt(extra, (unsigned long)getpid()) ;
    extra[n++] = '.' ;
    n += ulong_fmt(extra + n, (unsigned long)time(0)) ;
    extra[n] = 0 ;
    tain deadline ;
    tain_now_g() ;
    tain_addsec_g(&deadline, conf.timeout) ;
    /* a session that already failed pays for its guesses at a lower CPU
       priority than everyone else's logins */
    r = checkpw_run(cpprog.s, cpnext, who.s, userlen, resp.s + passat, passlen, extra, auth.fails ? 10 : 0, &deadline, &wstat) ;
    if (r < 0)
    {
      if (errno == E2BIG) r = CHECKPW_BAD ;
      else
      {
        ylog("error", "ip", conf.remoteip, "cmd", "AUTH", "code", "454", "reason", "checkpassword-spawn", "errno", strerror(errno), (char *)0) ;
        r = CHECKPW_TEMP ;
        wstat = -1 ;
      }
    }
  }
  auth_wipe() ;
  if (r == CHECKPW_OK)
  {
    auth.authed = 1 ;
    auth.user.len = 0 ;
    catb(&auth.user, who.s, who.len + 1) ;
    auth.user.len-- ;
    ylog("auth", "ip", conf.remoteip, "user", who.s, "mech", mech, (char *)0) ;
    reply("235 2.7.0 Authentication successful\r\n") ;
    return ;
  }
  if (r == CHECKPW_BAD)
  {
    auth.fails++ ;
    ylog("auth-fail", "ip", conf.remoteip, "user", who.s, "mech", mech, (char *)0) ;
    delay() ;
    if (auth.fails >= MAXAUTHFAIL)
    {
      ylog("reject", "ip", conf.remoteip, "cmd", "AUTH", "code", "421", "reason", "too-many-auth-failures", (char *)0) ;
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
    ylog("error", "ip", conf.remoteip, "cmd", "AUTH", "user", who.s, "code", "454", "reason", "checkpassword", "status", st, (char *)0) ;
  }
  reply("454 4.7.0 Temporary authentication failure\r\n") ;
}

void auth_command (struct smtpcmd const *c)
{
  if (!tls.on)
  {
    auth_wipe() ;
    ylog("reject", "ip", conf.remoteip, "cmd", "AUTH", "code", "538", "reason", "no-tls", (char *)0) ;
    errreply("538 5.7.11 Encryption required for requested authentication mechanism\r\n", "AUTH") ;
    return ;
  }
  if (!conf.auth)
  {
    auth_wipe() ;
    ylog("reject", "ip", conf.remoteip, "cmd", "AUTH", "code", "503", "reason", "auth-not-enabled", (char *)0) ;
    errreply("503 5.5.1 authentication not enabled\r\n", "AUTH") ;
    return ;
  }
  if (auth.authed) { auth_wipe() ; errreply("503 5.5.1 already authenticated\r\n", "AUTH") ; return ; }
  if (!session.seenhelo || !session.esmtp) { auth_wipe() ; errreply("503 5.5.1 send EHLO first\r\n", "AUTH") ; return ; }
  if (session.seenmail) { auth_wipe() ; errreply("503 5.5.1 AUTH not allowed in a mail transaction\r\n", "AUTH") ; return ; }
  if (c->error) { auth_wipe() ; errreply("501 5.5.4 syntax: AUTH mechanism [initial-response]\r\n", "AUTH") ; return ; }
  char const *a = io.line.s + c->arg ;
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
    if (!(hasir ? decode(a + ir, alen - ir, 1) : challenge(""))) goto end ;
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
    check("PLAIN", p.authcid, p.authcidlen, p.passwd, p.passwdlen) ;
  }
  else if (m == 5 && case_equalb(a, 5, "LOGIN"))
  {
    /* "Username:", "Password:" */
    if (!(hasir ? decode(a + ir, alen - ir, 1) : challenge("VXNlcm5hbWU6"))) goto end ;
    size_t userlen = resp.len ;
    if (!challenge("UGFzc3dvcmQ6")) goto end ;
    if (memchr(resp.s, 0, resp.len))
    {
      errreply("501 5.5.2 NUL byte in LOGIN response\r\n", "AUTH") ;
      goto end ;
    }
    check("LOGIN", 0, userlen, userlen, resp.len - userlen) ;
  }
  else errreply("504 5.5.4 unrecognized authentication type\r\n", "AUTH") ;
 end:
  auth_wipe() ;
}
