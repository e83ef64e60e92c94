/* yubin-imapd: the front door of IMAP (RFC 3501/9051's not-authenticated
 * state: CAPABILITY, NOOP, LOGOUT, STARTTLS, LOGIN, AUTHENTICATE PLAIN
 * with SASL-IR (RFC 4959), ID (RFC 2971)), under tcpserver.
 *
 * Started as root, it splits as yubin-pop3d does (common/loginsplit.h):
 * a root monitor that only runs yubin-checkpassword, and a child as the
 * daemon user that speaks to the client, reading one byte at a time
 * (common/prelogin.h), so that nothing past a LOGIN or STARTTLS line sits
 * in its buffer.  After a good login the session belongs to
 * yubin-imapmail, run as the user, which sends the tagged OK of the
 * login itself (the tag travels in $IMAPLOGINTAG). */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <skalibs/bytestr.h>
#include <skalibs/djbunix.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/types.h>

#include "base64.h"
#include "exitcodes.h"
#include "imapd/capa.h"
#include "imapd/cmd.h"
#include "loginsplit.h"
#include "prelogin.h"
#include "root.h"
#include "sasl.h"
#include "ucspitls.h"
#include "ylog.h"

#define USAGE "yubin-imapd [ -T ] [ -U | -u uid -g gid ] [ -m maildir ]"
#define BAD_COMMANDS_MAX 20
#define AUTH_FAILS_MAX 3
#define TIMEOUT_DEFAULT 120    /* before the login; the mail part has its own */
#define LOGIN_MAX 1024         /* a login, a password, an AUTHENTICATE line */

static struct loginsplit_daemon conf = LOGINSPLIT_DAEMON_ZERO ;
static struct imapcmd_reader reader = IMAPCMD_READER_ZERO ;
static struct imapcmd cmd = IMAPCMD_ZERO ;
static unsigned int bads = 0, fails = 0 ;

static void dienomem (void)
{
  strerr_diefu1sys(EX_TEMP, "allocate memory") ;
}

static int login_allowed (void)
{
  return conf.tls.on || conf.clearok ;
}

static void bye (char const *reason, char const *text)
{
  if (text) prelogin_say(text) ;
  ylog("quit", "ip", conf.ip, "reason", reason, (char *)0) ;
  prelogin_end() ;
}

/* "tag " + s + "\r\n" */
static void tagged (char const *tag, char const *s)
{
  stralloc sa = STRALLOC_ZERO ;
  if (!stralloc_cats(&sa, *tag ? tag : "*") || !stralloc_catb(&sa, " ", 1)
   || !stralloc_cats(&sa, s) || !stralloc_catb(&sa, "\r\n", 2)) dienomem() ;
  prelogin_sayb(sa.s, sa.len) ;
  stralloc_free(&sa) ;
}

static void bad (char const *tag, char const *s)
{
  stralloc sa = STRALLOC_ZERO ;
  if (!stralloc_cats(&sa, "BAD ") || !stralloc_cats(&sa, s) || !stralloc_0(&sa)) dienomem() ;
  tagged(tag, sa.s) ;
  stralloc_free(&sa) ;
  if (++bads >= BAD_COMMANDS_MAX) bye("errors", "* BYE Too many invalid commands\r\n") ;
}

/* The capabilities before the login: what this part does, and that a
 * login is possible (AUTH=PLAIN) or not (LOGINDISABLED, RFC 3501 7.2.1). */
static void catcapa (stralloc *sa)
{
  if (!stralloc_cats(sa, IMAP_CAPA_PRELOGIN)) dienomem() ;
  if (!conf.tls.on && ucspitls_offered(&conf.tls) && !stralloc_cats(sa, " STARTTLS")) dienomem() ;
  if (!stralloc_cats(sa, login_allowed() ? " AUTH=PLAIN" : " LOGINDISABLED")) dienomem() ;
}

static void cmd_capability (char const *tag)
{
  stralloc sa = STRALLOC_ZERO ;
  if (!stralloc_cats(&sa, "* CAPABILITY ")) dienomem() ;
  catcapa(&sa) ;
  if (!stralloc_catb(&sa, "\r\n", 2)) dienomem() ;
  prelogin_sayb(sa.s, sa.len) ;
  stralloc_free(&sa) ;
  tagged(tag, "OK CAPABILITY completed") ;
}

/* A login and its password: the monitor runs checkpassword and, if it
 * is right, the mail part, which answers the tag itself. */
static void try_login (char const *tag, char const *login, size_t loginlen, char const *pass, size_t passlen, char const *mech)
{
  stralloc e = STRALLOC_ZERO ;
  if (!stralloc_cats(&e, "IMAPLOGINTAG=") || !stralloc_cats(&e, tag) || !stralloc_0(&e)) dienomem() ;
  char v = loginsplit_login(&conf, login, loginlen, pass, passlen, mech, e.s) ;
  stralloc_free(&e) ;
  if (v == LOGINSPLIT_TEMP) tagged(tag, "NO [UNAVAILABLE] Unable to log in now, try again later") ;
  else
  {
    tagged(tag, "NO [AUTHENTICATIONFAILED] Authentication failed") ;
    if (++fails >= AUTH_FAILS_MAX) bye("auth-failures", "* BYE Too many authentication failures\r\n") ;
  }
}

static int refuse_cleartext (char const *tag)
{
  if (login_allowed()) return 0 ;
  tagged(tag, "NO [PRIVACYREQUIRED] Log in after STARTTLS") ;
  return 1 ;
}

static void cmd_login (char const *tag)
{
  char const *user, *pass ;
  size_t ulen, plen ;
  if (cmd.nargs == 0 || !imapcmd_astring(&cmd, 0, 0, &user, &ulen)
   || !imapcmd_arg(&cmd, imapcmd_arg(&cmd, 0)->next)
   || !imapcmd_astring(&cmd, imapcmd_arg(&cmd, 0)->next, 0, &pass, &plen)
   || imapcmd_arg(&cmd, imapcmd_arg(&cmd, 0)->next)->next != cmd.nargs)
  {
    bad(tag, "Syntax: LOGIN user password") ;
    return ;
  }
  if (refuse_cleartext(tag)) return ;
  try_login(tag, user, ulen, pass, plen, "LOGIN") ;
  byte_zzero(reader.buf.s, reader.buf.len) ;
}

/* AUTHENTICATE PLAIN [initial-response] (RFC 3501 6.2.2, RFC 4959). */
static void cmd_authenticate (char const *tag)
{
  char const *mech ;
  size_t mlen ;
  char line[LOGIN_MAX + 1] ;
  char const *resp ;
  size_t resplen ;
  if (!cmd.nargs || !imapcmd_astring(&cmd, 0, 0, &mech, &mlen)) { bad(tag, "Syntax: AUTHENTICATE mechanism [initial-response]") ; return ; }
  if (mlen != 5 || strncasecmp(mech, "PLAIN", 5)) { tagged(tag, "NO Unsupported mechanism: use PLAIN") ; return ; }
  if (refuse_cleartext(tag)) return ;
  size_t next = imapcmd_arg(&cmd, 0)->next ;
  if (next < cmd.nargs)
  {
    if (!imapcmd_astring(&cmd, next, 0, &resp, &resplen) || imapcmd_arg(&cmd, next)->next != cmd.nargs)
    { bad(tag, "Syntax: AUTHENTICATE PLAIN [initial-response]") ; return ; }
  }
  else
  {
    prelogin_say("+ \r\n") ;
    enum prelogin_line r = prelogin_getline(line, LOGIN_MAX, &resplen) ;
    if (r == PRELOGIN_EOF) bye("eof", 0) ;
    if (r == PRELOGIN_TIMEOUT) bye("timeout", "* BYE Autologout: idle for too long\r\n") ;
    if (r != PRELOGIN_OK) { bad(tag, "Malformed response") ; return ; }
    resp = line ;
  }
  if (resplen == 1 && resp[0] == '*') { bad(tag, "Authentication cancelled") ; byte_zzero(line, sizeof(line)) ; return ; }
  char dec[LOGIN_MAX] ;
  ssize_t n = resplen == 1 && resp[0] == '=' ? 0 : resplen > LOGIN_MAX ? -1 : base64_decodeb(dec, resp, resplen, 0) ;
  struct sasl_plain p ;
  if (n < 0 || !sasl_plain_split(dec, n, &p))
  {
    byte_zzero(dec, sizeof(dec)) ;
    byte_zzero(line, sizeof(line)) ;
    bad(tag, "Malformed PLAIN response") ;
    return ;
  }
  /* we log in as nobody else: an authzid, if any, must be the login */
  if (p.authzidlen && (p.authzidlen != p.authcidlen || memcmp(dec + p.authzid, dec + p.authcid, p.authcidlen)))
    tagged(tag, "NO [AUTHORIZATIONFAILED] The authorization identity must be empty or the login") ;
  else try_login(tag, dec + p.authcid, p.authcidlen, dec + p.passwd, p.passwdlen, "PLAIN") ;
  byte_zzero(dec, sizeof(dec)) ;
  byte_zzero(line, sizeof(line)) ;
  byte_zzero(reader.buf.s, reader.buf.len) ;
}

static void cmd_starttls (char const *tag)
{
  if (conf.tls.on) { bad(tag, "TLS is already on") ; return ; }
  if (!ucspitls_offered(&conf.tls)) { bad(tag, "STARTTLS is not available here") ; return ; }
  tagged(tag, "OK Begin TLS negotiation now") ;
  /* nothing past the STARTTLS line was read: it goes to the handshake */
  ucspitls_switch(&conf.tls, conf.timeout, conf.ip, "STARTTLS") ;
  ylog("tls", "ip", conf.ip, "proto", conf.tls.proto.s, "cipher", conf.tls.cipher.s, (char *)0) ;
}

/* ID (RFC 2971): we say who we are, and ignore what the client says. */
static void cmd_id (char const *tag)
{
  prelogin_say("* ID (\"name\" \"yubin\")\r\n") ;
  tagged(tag, "OK ID completed") ;
}

static void run_command (void)
{
  char const *tag = cmd.tag ;
  char const *n = cmd.name ;
  if (!strcmp(n, "CAPABILITY")) cmd_capability(tag) ;
  else if (!strcmp(n, "NOOP")) tagged(tag, "OK NOOP completed") ;
  else if (!strcmp(n, "LOGOUT"))
  {
    prelogin_say("* BYE Logging out\r\n") ;
    tagged(tag, "OK LOGOUT completed") ;
    bye("logout", 0) ;
  }
  else if (!strcmp(n, "STARTTLS")) cmd_starttls(tag) ;
  else if (!strcmp(n, "LOGIN")) cmd_login(tag) ;
  else if (!strcmp(n, "AUTHENTICATE")) cmd_authenticate(tag) ;
  else if (!strcmp(n, "ID")) cmd_id(tag) ;
  else bad(tag, "Command unknown or not valid before the login") ;
}

/* Feeds the reader one byte at a time until it has a command or an
 * error to answer. */
static void next_command (void)
{
  for (;;)
  {
    char c ;
    int r = prelogin_getbyte(&c) ;
    if (r < 0) bye("timeout", "* BYE Autologout: idle for too long\r\n") ;
    if (!r) bye("eof", 0) ;
    size_t used ;
    switch (imapcmd_feed(&reader, &c, 1, &used))
    {
      case IMAPCMD_MORE : break ;
      case IMAPCMD_CONTINUE : prelogin_say("+ Ready for literal data\r\n") ; break ;
      case IMAPCMD_LITDATA : break ;   /* no streaming before the login */
      case IMAPCMD_ETOOLONG : bad(reader.tag, "Line too long") ; break ;
      case IMAPCMD_ELITERAL :
        if (reader.litsync) tagged(reader.tag, "NO [TOOBIG] Literal too big") ;
        else bad(reader.tag, "[TOOBIG] Literal too big") ;
        break ;
      case IMAPCMD_ETOOBIG : bad(reader.tag, "[TOOBIG] Command too long") ; break ;
      case IMAPCMD_READY :
      {
        int p = imapcmd_parse(&reader, &cmd, 0) ;
        if (p < 0) dienomem() ;
        if (!p) { bad(cmd.tag, cmd.err) ; break ; }
        return ;
      }
      default : dienomem() ;
    }
    (void)used ;
  }
}

static void prelogin (void)
{
  if (ndelay_on(0) < 0 || ndelay_on(1) < 0) strerr_diefu1sys(EX_TEMP, "set the connection non-blocking") ;
  prelogin_deadline(conf.timeout) ;
  if (conf.implicit)
  {
    ucspitls_switch(&conf.tls, conf.timeout, conf.ip, "connect") ;
    ylog("tls", "ip", conf.ip, "proto", conf.tls.proto.s, "cipher", conf.tls.cipher.s, (char *)0) ;
  }
  imapcmd_reader_init(&reader) ;
  /* small limits: a login is short */
  reader.litmax = LOGIN_MAX ;
  reader.appendmax = LOGIN_MAX ;
  reader.cmdmax = 4 * LOGIN_MAX ;
  {
    stralloc sa = STRALLOC_ZERO ;
    if (!stralloc_cats(&sa, "* OK [CAPABILITY ")) dienomem() ;
    catcapa(&sa) ;
    if (!stralloc_cats(&sa, "] yubin IMAP server ready\r\n")) dienomem() ;
    prelogin_sayb(sa.s, sa.len) ;
    stralloc_free(&sa) ;
  }
  for (;;)
  {
    prelogin_deadline(conf.timeout) ;
    next_command() ;
    run_command() ;
  }
}

int main (int argc, char const *const *argv)
{
  PROG = "imapd" ;
  loginsplit_daemon(&conf, argc, argv, USAGE, "IMAPLOGINTIMEOUT", TIMEOUT_DEFAULT, "IMAPMAIL", "yubin-imapmail") ;
  prelogin() ;
  return 0 ;
}
