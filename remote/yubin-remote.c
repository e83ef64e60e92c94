/* yubin-remote: deliver one message to one destination by SMTP, with
 * qmail-remote's interface (yubin-remote.8).
 *
 *   yubin-remote host sender recip...  < message
 *
 * host is a domain to route (control/smtproutes, then MX), or "[ip]" (or,
 * a yubin extension, "[ip]:port") to talk to that address directly.  The
 * report on stdout: per recipient r (accepted), h (permanent) or s
 * (temporary), its text and a NUL; then K, Z or D for the message, its
 * text and a NUL.  qmgr's remote spawner uses the same code (smtpc.c)
 * in-process; this program is for outside callers and tests. */

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/buffer.h>
#include <skalibs/djbunix.h>
#include <skalibs/env.h>
#include <skalibs/genalloc.h>
#include <skalibs/ip46.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/tai.h>
#include <skalibs/types.h>

#include "control.h"
#include "exitcodes.h"
#include "ylog.h"
#include "remote/dns.h"
#include "remote/route.h"
#include "remote/smtpc.h"

#define USAGE "yubin-remote host sender recip..."

char const *PROG = "remote" ;

static void put (char const *s, size_t len)
{
  if (buffer_put(buffer_1, s, len) < 0) strerr_diefu1sys(EX_TEMP, "write to stdout") ;
}

static void report (char letter, char const *text)
{
  put(&letter, 1) ;
  put(text, strlen(text)) ;
  put("", 1) ;
}

static void finish (void)
{
  if (!buffer_flush(buffer_1)) strerr_diefu1sys(EX_TEMP, "write to stdout") ;
  _exit(0) ;
}

/* Every recipient gets letter and text, then the message gets the verdict. */
static void all_and_exit (unsigned int n, char letter, char msgletter, char const *text)
{
  for (unsigned int i = 0 ; i < n ; i++) report(letter, text) ;
  report(msgletter, text) ;
  finish() ;
}

/* The message as a seekable file from an offset: stdin itself when it is
 * a regular file, else a copy in an unlinked temporary file. */
static int message_fd (uint64_t *off)
{
  struct stat st ;
  if (fstat(0, &st) < 0) return -1 ;
  if (S_ISREG(st.st_mode))
  {
    off_t o = lseek(0, 0, SEEK_CUR) ;
    *off = o > 0 ? (uint64_t)o : 0 ;
    return 0 ;
  }
  {
    char const *dir = getenv("TMPDIR") ;
    char buf[65536] ;
    int fd = open(dir && *dir ? dir : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600) ;
    if (fd < 0) return -1 ;
    for (;;)
    {
      ssize_t r = fd_read(0, buf, sizeof(buf)) ;
      if (r < 0) { fd_close(fd) ; return -1 ; }
      if (!r) break ;
      if (allwrite(fd, buf, (size_t)r) < (size_t)r) { fd_close(fd) ; return -1 ; }
    }
    *off = 0 ;
    return fd ;
  }
}

/* "[ip]" or "[ip]:port" into a route of one target.  Returns 1, 0 if host
 * is not of that form. */
static int literal_route (char const *host, struct route *r)
{
  struct route_target t ;
  char ipbuf[IP46_FMT + 1] ;
  char const *end = strchr(host, ']') ;
  size_t len, n ;
  uint16_t port = 25 ;
  if (host[0] != '[' || !end) return 0 ;
  len = (size_t)(end - host - 1) ;
  if (!len || len > IP46_FMT) return 0 ;
  memcpy(ipbuf, host + 1, len) ;
  ipbuf[len] = 0 ;
  memset(&t, 0, sizeof(t)) ;
  n = ip46_scan(ipbuf, &t.ip) ;
  if (n != len) return 0 ;
  if (end[1] == ':')
  {
    n = uint160_scan(end + 2, &port) ;
    if (!n || end[2 + n] || !port) return 0 ;
  }
  else if (end[1]) return 0 ;
  t.port = port ;
  t.host[0] = 0 ;
  if (!genalloc_append(struct route_target, &r->targets, &t)) strerr_diefu1sys(EX_TEMP, "allocate memory") ;
  r->status = ROUTE_OK ;
  r->smtproutes = 0 ;
  return 1 ;
}

static char const *readline (stralloc *sa, char const *name, char const *def)
{
  if (control_readline(sa, name, def) < 0) return 0 ;
  return sa->s ? sa->s : "" ;
}

int main (int argc, char const *const *argv)
{
  stralloc helohost = STRALLOC_ZERO, outgoingip = STRALLOC_ZERO, cafile = STRALLOC_ZERO, why = STRALLOC_ZERO ;
  unsigned long tconnect, tremote ;
  struct smtpc_conf conf ;
  struct route route = ROUTE_ZERO ;
  struct dns *d = 0 ;
  struct smtpc *c ;
  struct smtpc_msg m ;
  struct smtpc_result *res ;
  stralloc rcpts = STRALLOC_ZERO ;
  char const *host ;
  unsigned int n ;
  int fd ;

  if (argc < 4) strerr_dieusage(EX_PERM, USAGE) ;
  host = argv[1] ;
  n = (unsigned int)(argc - 3) ;
  tain_now_set_stopwatch_g() ;
  tain_now_g() ;

  if (!readline(&helohost, "helohost", 0)) all_and_exit(n, 's', 'Z', "cannot read control/helohost (#4.3.0)") ;
  if (!helohost.len && !readline(&helohost, "me", "localhost")) all_and_exit(n, 's', 'Z', "cannot read control/me (#4.3.0)") ;
  if (!readline(&outgoingip, "outgoingip", 0)) all_and_exit(n, 's', 'Z', "cannot read control/outgoingip (#4.3.0)") ;
  if (!readline(&cafile, "tlscafile", 0)) all_and_exit(n, 's', 'Z', "cannot read control/tlscafile (#4.3.0)") ;
  if (control_readulong(&tconnect, "timeoutconnect", 60) < 0) all_and_exit(n, 's', 'Z', "bad control/timeoutconnect (#4.3.0)") ;
  if (control_readulong(&tremote, "timeoutremote", 1200) < 0) all_and_exit(n, 's', 'Z', "bad control/timeoutremote (#4.3.0)") ;
  conf.helohost = helohost.s ;
  conf.timeoutconnect = tconnect ? (unsigned int)tconnect : 60 ;
  conf.timeoutremote = tremote ? (unsigned int)tremote : 1200 ;
  conf.outgoingip = outgoingip.len ? outgoingip.s : 0 ;
  conf.cafile = cafile.len ? cafile.s : 0 ;

  fd = message_fd(&m.msgoff) ;
  if (fd < 0) all_and_exit(n, 's', 'Z', "cannot read the message (#4.3.0)") ;
  for (int i = 3 ; i < argc ; i++)
    if (!stralloc_catb(&rcpts, argv[i], strlen(argv[i]) + 1)) strerr_diefu1sys(EX_TEMP, "allocate memory") ;
  m.fd = fd ;
  m.size = 0 ;
  m.sender = argv[2] ;
  m.rcpts = rcpts.s ;
  m.nrcpts = n ;

  if (!literal_route(host, &route))
  {
    char const *dwhy = 0 ;
    tain deadline ;
    if (!route_init()) all_and_exit(n, 's', 'Z', "cannot read control/smtproutes (#4.3.0)") ;
    d = dns_new(&dwhy) ;
    if (!d)
    {
      ylog("error", "domain", host, "why", dwhy, (char *)0) ;
      all_and_exit(n, 's', 'Z', "resolver set-up failed (#4.3.0)") ;
    }
    tain_addsec_g(&deadline, (int)(conf.timeoutremote < 120 ? conf.timeoutremote : 120)) ;
    route_lookup(d, host, &route, &deadline) ;
    if (route.status != ROUTE_OK)
    {
      ylog(route.status == ROUTE_PERM ? "bounce" : "deferral", "domain", host, "why", route.why, (char *)0) ;
      if (route.status == ROUTE_PERM) all_and_exit(n, 'h', 'D', route.why) ;
      all_and_exit(n, 's', 'Z', route.why) ;
    }
  }

  {
    enum tls_level level = smtpc_policy(host) ;
    c = smtpc_open(&conf, d, &route, host, level, &why) ;
    if (!c)
    {
      ylog("deferral", "domain", host, "level", smtpc_level_name(level), "why", why.s, (char *)0) ;
      all_and_exit(n, 's', 'Z', why.s ? why.s : "connection failed") ;
    }
  }

  res = calloc(n, sizeof(*res)) ;
  if (!res) strerr_diefu1sys(EX_TEMP, "allocate memory") ;
  smtpc_send(c, &m, res) ;
  {
    struct smtpc_info info ;
    char const *msgtext = 0 ;
    char msg = 'D' ;
    char na[UINT_FMT], nh[UINT_FMT], ns[UINT_FMT] ;
    unsigned int cr = 0, ch = 0, cs = 0 ;
    for (unsigned int i = 0 ; i < n ; i++)
    {
      char letter = res[i].code == 0 ? 'r' : res[i].code == 100 ? 'h' : 's' ;
      report(letter, res[i].text) ;
      if (letter == 'r') { if (!cr++) msgtext = res[i].text ; }
      else if (letter == 's') cs++ ;
      else ch++ ;
    }
    if (cr) msg = 'K' ;
    else if (cs) msg = 'Z' ;
    if (!msgtext)
      for (unsigned int i = 0 ; i < n && !msgtext ; i++)
        if ((msg == 'Z' && res[i].code == 111) || (msg == 'D' && res[i].code == 100)) msgtext = res[i].text ;
    smtpc_info(c, &info) ;
    na[uint_fmt(na, cr)] = 0 ; nh[uint_fmt(nh, ch)] = 0 ; ns[uint_fmt(ns, cs)] = 0 ;
    ylog("delivery", "domain", host, "peer", info.peer,
         "tls", info.tls_version[0] ? info.tls_version : "none",
         "cipher", info.tls_version[0] ? info.tls_cipher : 0,
         "verified", info.tls_version[0] ? info.tls_verified : 0,
         "cert", info.tls_version[0] ? info.tls_peer : 0,
         "check", info.tls_version[0] && !strcmp(info.tls_verified, "none") ? info.tls_seen : 0,
         "level", smtpc_level_name(info.level),
         "accepted", na, "permanent", nh, "temporary", ns, "result", msg == 'K' ? "K" : msg == 'Z' ? "Z" : "D",
         "text", msgtext, (char *)0) ;
    smtpc_close(c) ;
    report(msg, msgtext ? msgtext : "") ;
  }
  free(res) ;
  finish() ;
}
