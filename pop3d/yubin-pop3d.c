/* yubin-pop3d: the front door of POP3 (RFC 1939 AUTHORIZATION state,
 * RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH PLAIN), under tcpserver.
 *
 * Started as root, it forks at once (common/loginsplit.h, pop3d/README):
 * - the monitor (the parent) stays root, never reads a network byte, and
 *   only runs yubin-checkpassword with a login the child hands it, giving
 *   the checkpassword program the child's connection fds, so that the
 *   mailbox part (yubin-pop3mbox, run by checkpassword as the user) serves
 *   the rest of the session;
 * - the child drops to the daemon user (-u, -g), makes itself non-dumpable
 *   and speaks the AUTHORIZATION state.  It reads one byte at a time:
 *   what follows PASS or AUTH belongs to the mailbox part, what follows
 *   STLS to the TLS handshake (CVE-2011-0411), and neither must sit in
 *   our buffer. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/bytestr.h>
#include <skalibs/djbunix.h>
#include <skalibs/sig.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/types.h>

#include "base64.h"
#include "exitcodes.h"
#include "loginsplit.h"
#include "prelogin.h"
#include "root.h"
#include "sasl.h"
#include "ucspitls.h"
#include "ylog.h"

#define USAGE "yubin-pop3d [ -T ] [ -U | -u uid -g gid ] [ -m maildir ]"
#define LINE_MAX_POP3 255      /* RFC 2449: a command line, CRLF included */
#define BAD_COMMANDS_MAX 20
#define AUTH_FAILS_MAX 3
#define TIMEOUT_DEFAULT 600    /* RFC 1939: at least 10 minutes */

static struct loginsplit_daemon conf = LOGINSPLIT_DAEMON_ZERO ;

static void dienomem (void)
{
  strerr_diefu1sys(EX_TEMP, "allocate memory") ;
}

/* ---------- the pre-login child: the AUTHORIZATION state ---------- */

static struct
{
  stralloc user ;             /* after USER, NUL-terminated */
  unsigned int bad ;          /* commands refused */
  unsigned int fails ;        /* wrong passwords */
} st = { .user = STRALLOC_ZERO, .bad = 0, .fails = 0 } ;

static int login_allowed (void)
{
  return conf.tls.on || conf.clearok ;
}

static void bad (char const *reply)
{
  prelogin_say(reply) ;
  if (++st.bad >= BAD_COMMANDS_MAX)
  {
    prelogin_say("-ERR too many bad commands, goodbye\r\n") ;
    ylog("quit", "ip", conf.ip, "reason", "errors", (char *)0) ;
    prelogin_end() ;
  }
}

static void capa (void)
{
  prelogin_say("+OK capability list follows\r\n") ;
  prelogin_say("TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n") ;
  if (login_allowed()) prelogin_say("USER\r\nSASL PLAIN\r\n") ;
  if (!conf.tls.on && ucspitls_offered(&conf.tls)) prelogin_say("STLS\r\n") ;
  prelogin_say("IMPLEMENTATION yubin\r\n.\r\n") ;
}

/* A login and its password, from USER/PASS or AUTH PLAIN. */
static void try_login (char const *login, size_t loginlen, char const *pass, size_t passlen, char const *mech)
{
  char v = loginsplit_login(&conf, login, loginlen, pass, passlen, mech, 0) ;
  if (v == LOGINSPLIT_TEMP) prelogin_say("-ERR [SYS/TEMP] unable to log in now, try again later\r\n") ;
  else
  {
    if (++st.fails >= AUTH_FAILS_MAX)
    {
      prelogin_say("-ERR [AUTH] authentication failed, goodbye\r\n") ;
      ylog("quit", "ip", conf.ip, "reason", "auth-failures", (char *)0) ;
      prelogin_end() ;
    }
    prelogin_say("-ERR [AUTH] authentication failed\r\n") ;
  }
}

static void cmd_user (char const *arg)
{
  if (!login_allowed()) { bad("-ERR [AUTH] plaintext login is disabled here: use STLS first\r\n") ; return ; }
  if (!*arg) { bad("-ERR syntax: USER name\r\n") ; return ; }
  st.user.len = 0 ;
  if (!stralloc_cats(&st.user, arg) || !stralloc_0(&st.user)) dienomem() ;
  prelogin_say("+OK send PASS\r\n") ;
}

static void cmd_pass (char *arg, size_t len)
{
  if (!login_allowed()) { bad("-ERR [AUTH] plaintext login is disabled here: use STLS first\r\n") ; return ; }
  if (!st.user.len) { bad("-ERR USER first\r\n") ; return ; }
  /* RFC 1939: the password is the rest of the line, spaces included */
  try_login(st.user.s, st.user.len - 1, arg, len, "USER") ;
  byte_zzero(arg, len) ;
  st.user.len = 0 ;
}

/* AUTH PLAIN [initial-response] (RFC 5034); "*" cancels. */
static void cmd_auth (char const *arg, char *line)
{
  char mech[16] ;
  size_t i = 0 ;
  while (arg[i] && arg[i] != ' ' && i < sizeof(mech) - 1) { mech[i] = arg[i] ; i++ ; }
  mech[i] = 0 ;
  if (!i)
  {
    /* no mechanism: the list, as many servers do for old clients */
    if (login_allowed()) prelogin_say("+OK\r\nPLAIN\r\n.\r\n") ;
    else prelogin_say("+OK\r\n.\r\n") ;
    return ;
  }
  if (strcasecmp(mech, "PLAIN")) { bad("-ERR [AUTH] unsupported mechanism: use PLAIN\r\n") ; return ; }
  if (!login_allowed()) { bad("-ERR [AUTH] plaintext login is disabled here: use STLS first\r\n") ; return ; }
  char const *resp = arg + i ;
  size_t resplen ;
  while (*resp == ' ') resp++ ;
  if (!*resp)
  {
    prelogin_say("+ \r\n") ;
    enum prelogin_line r = prelogin_getline(line, LINE_MAX_POP3, &resplen) ;
    if (r == PRELOGIN_EOF || r == PRELOGIN_TIMEOUT) { ylog("quit", "ip", conf.ip, "reason", r == PRELOGIN_EOF ? "eof" : "timeout", (char *)0) ; prelogin_end() ; }
    if (r != PRELOGIN_OK) { bad("-ERR [AUTH] malformed response\r\n") ; return ; }
    resp = line ;
  }
  resplen = strlen(resp) ;
  if (resplen == 1 && resp[0] == '*') { bad("-ERR authentication cancelled\r\n") ; return ; }
  char dec[LINE_MAX_POP3] ;
  ssize_t n = resplen == 1 && resp[0] == '=' ? 0 : base64_decodeb(dec, resp, resplen, 0) ;
  struct sasl_plain p ;
  if (n < 0 || !sasl_plain_split(dec, n, &p))
  {
    byte_zzero(dec, sizeof(dec)) ;
    bad("-ERR [AUTH] malformed PLAIN response\r\n") ;
    return ;
  }
  /* we log in as nobody else: an authzid, if any, must be the login */
  if (p.authzidlen && (p.authzidlen != p.authcidlen || memcmp(dec + p.authzid, dec + p.authcid, p.authcidlen)))
  {
    byte_zzero(dec, sizeof(dec)) ;
    bad("-ERR [AUTH] authorization identity must be empty or the login\r\n") ;
    return ;
  }
  try_login(dec + p.authcid, p.authcidlen, dec + p.passwd, p.passwdlen, "PLAIN") ;
  byte_zzero(dec, sizeof(dec)) ;
  byte_zzero(line, LINE_MAX_POP3 + 1) ;
}

static void cmd_stls (void)
{
  if (conf.tls.on) { bad("-ERR TLS is already on\r\n") ; return ; }
  if (!ucspitls_offered(&conf.tls)) { bad("-ERR STLS is not available here\r\n") ; return ; }
  prelogin_say("+OK begin TLS negotiation\r\n") ;
  /* nothing past the STLS line was read: it goes to the handshake */
  ucspitls_switch(&conf.tls, conf.timeout, conf.ip, "STLS") ;
  st.user.len = 0 ;
  ylog("tls", "ip", conf.ip, "proto", conf.tls.proto.s, "cipher", conf.tls.cipher.s, (char *)0) ;
}

static int is_cmd (char const *line, size_t len, char const *name, char const **arg)
{
  size_t n = strlen(name) ;
  if (len < n || strncasecmp(line, name, n)) return 0 ;
  if (line[n] && line[n] != ' ') return 0 ;
  *arg = line + n + (line[n] == ' ') ;
  return 1 ;
}

static void prelogin (void)
{
  char line[LINE_MAX_POP3 + 1] ;
  if (ndelay_on(0) < 0 || ndelay_on(1) < 0) strerr_diefu1sys(EX_TEMP, "set the connection non-blocking") ;
  if (conf.implicit)
  {
    ucspitls_switch(&conf.tls, conf.timeout, conf.ip, "connect") ;
    ylog("tls", "ip", conf.ip, "proto", conf.tls.proto.s, "cipher", conf.tls.cipher.s, (char *)0) ;
  }
  prelogin_deadline(conf.timeout) ;
  /* no RFC 1939 timestamp: we offer no APOP (it needs a password the
     server can read), so we never let a client try it */
  prelogin_say("+OK yubin POP3 server ready\r\n") ;
  for (;;)
  {
    size_t len ;
    char const *arg ;
    prelogin_deadline(conf.timeout) ;
    enum prelogin_line r = prelogin_getline(line, LINE_MAX_POP3, &len) ;
    if (r == PRELOGIN_EOF || r == PRELOGIN_TIMEOUT)
    {
      if (r == PRELOGIN_TIMEOUT) prelogin_say("-ERR idle for too long, goodbye\r\n") ;
      ylog("quit", "ip", conf.ip, "reason", r == PRELOGIN_EOF ? "eof" : "timeout", (char *)0) ;
      prelogin_end() ;
    }
    if (r == PRELOGIN_LONG) { bad("-ERR line too long\r\n") ; continue ; }
    if (r == PRELOGIN_NUL) { bad("-ERR NUL byte in command\r\n") ; continue ; }
    if (is_cmd(line, len, "QUIT", &arg))
    {
      prelogin_say("+OK bye\r\n") ;
      ylog("quit", "ip", conf.ip, "reason", "quit", (char *)0) ;
      prelogin_end() ;
    }
    else if (is_cmd(line, len, "CAPA", &arg)) capa() ;
    else if (is_cmd(line, len, "USER", &arg)) cmd_user(arg) ;
    else if (is_cmd(line, len, "PASS", &arg)) cmd_pass(line + (arg - line), len - (arg - line)) ;
    else if (is_cmd(line, len, "AUTH", &arg)) cmd_auth(arg, line) ;
    else if (is_cmd(line, len, "STLS", &arg)) cmd_stls() ;
    else if (is_cmd(line, len, "APOP", &arg)) bad("-ERR APOP is not offered here\r\n") ;
    else if (is_cmd(line, len, "STAT", &arg) || is_cmd(line, len, "LIST", &arg) || is_cmd(line, len, "RETR", &arg)
          || is_cmd(line, len, "DELE", &arg) || is_cmd(line, len, "NOOP", &arg) || is_cmd(line, len, "RSET", &arg)
          || is_cmd(line, len, "TOP", &arg) || is_cmd(line, len, "UIDL", &arg))
      bad("-ERR log in first\r\n") ;
    else bad("-ERR unknown command\r\n") ;
  }
}

/* ---------- main ---------- */

int main (int argc, char const *const *argv)
{
  PROG = "pop3d" ;
  loginsplit_daemon(&conf, argc, argv, USAGE, "POP3TIMEOUT", TIMEOUT_DEFAULT, "POP3MBOX", "yubin-pop3mbox") ;
  prelogin() ;
  return 0 ;
}
