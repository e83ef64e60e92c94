/* The SMTP client of yubin-remote (see smtpc.h). */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/djbunix.h>
#include <skalibs/fmtscan.h>
#include <skalibs/genalloc.h>
#include <skalibs/iopause.h>
#include <skalibs/ip46.h>
#include <skalibs/socket.h>
#include <skalibs/stralloc.h>
#include <skalibs/tai.h>
#include <skalibs/types.h>

#include "control.h"
#include "remote/smtpc.h"
#include "remote/tlsc.h"

#define REPLYLINE 512        /* RFC 5321 4.5.3.1.5, CRLF included */
#define REPLYLINES 100       /* a reply longer than this never ends */
#define CHUNK 65536

/* RFC 5321 4.5.3.2, seconds */
#define T_GREETING 300
#define T_EHLO 300
#define T_MAIL 300
#define T_RCPT 300
#define T_DATA 120
#define T_BLOCK 180
#define T_FINAL 600
#define T_TLS 300
#define T_QUIT 10

enum { EXT_PIPELINING = 1, EXT_SIZE = 2, EXT_8BITMIME = 4, EXT_SMTPUTF8 = 8, EXT_STARTTLS = 16 } ;

struct smtpc
{
  int fd ;
  struct tlsc tls ;
  int tlson ;
  enum tls_level level ;
  unsigned int ext ;
  uint64_t sizemax ;
  unsigned int timeoutremote ;
  char const *helohost ;
  char ip[IP46_FMT] ;
  char peer[300] ;          /* "host[ip]" */
  char in[4096] ;
  size_t inpos, inlen ;
  int used ;                /* a transaction was started: RSET before the next */
  int dead ;
  char why[256] ;           /* why the session died */
  stralloc reply ;          /* the last reply, lines joined with " / " */
  unsigned int code ;       /* its code */
  stralloc out ;
  char summary[192] ;
} ;

/* ------------------------------------------------------------------ */
/* deadlines and raw I/O                                                */

static void deadline_in (struct smtpc const *c, tain *d, unsigned int stage)
{
  unsigned int s = c->timeoutremote && c->timeoutremote < stage ? c->timeoutremote : stage ;
  tain_now_g() ;
  tain_addsec_g(d, (int)s) ;
}

static void setwhy (struct smtpc *c, char const *a, char const *b)
{
  size_t n = strlen(a), m = b ? strlen(b) : 0 ;
  if (n > sizeof(c->why) - 1) n = sizeof(c->why) - 1 ;
  memcpy(c->why, a, n) ;
  if (m > sizeof(c->why) - 1 - n) m = sizeof(c->why) - 1 - n ;
  if (m) memcpy(c->why + n, b, m) ;
  c->why[n + m] = 0 ;
}

static int die (struct smtpc *c, char const *a, char const *b)
{
  if (!c->dead) setwhy(c, a, b) ;
  c->dead = 1 ;
  return 0 ;
}

static int net_write (struct smtpc *c, char const *s, size_t len, tain const *deadline)
{
  if (c->dead) return 0 ;
  if (c->tlson)
  {
    if (!tlsc_write(&c->tls, s, len, deadline))
      return die(c, errno == ETIMEDOUT ? "timed out writing" : "write error: ", errno == ETIMEDOUT ? 0 : strerror(errno)) ;
    return 1 ;
  }
  while (len)
  {
    ssize_t r = fd_write(c->fd, s, len) ;
    if (r > 0) { s += r ; len -= (size_t)r ; continue ; }
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return die(c, "write error: ", strerror(errno)) ;
    if (!tlsc_waitfd(c->fd, IOPAUSE_WRITE, deadline))
      return die(c, errno == ETIMEDOUT ? "timed out writing" : "write error: ", errno == ETIMEDOUT ? 0 : strerror(errno)) ;
  }
  return 1 ;
}

static int net_fill (struct smtpc *c, tain const *deadline)
{
  ssize_t r ;
  if (c->inpos == c->inlen) c->inpos = c->inlen = 0 ;
  else if (c->inpos)
  {
    memmove(c->in, c->in + c->inpos, c->inlen - c->inpos) ;
    c->inlen -= c->inpos ; c->inpos = 0 ;
  }
  if (c->inlen == sizeof(c->in)) return 1 ;
  for (;;)
  {
    if (c->tlson) r = tlsc_read(&c->tls, c->in + c->inlen, sizeof(c->in) - c->inlen, deadline) ;
    else
    {
      r = fd_read(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen) ;
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      {
        if (tlsc_waitfd(c->fd, IOPAUSE_READ, deadline)) continue ;
        r = -1 ;
      }
    }
    break ;
  }
  if (r < 0) return die(c, errno == ETIMEDOUT ? "timed out waiting for a reply" : "read error: ", errno == ETIMEDOUT ? 0 : strerror(errno)) ;
  if (!r) return die(c, "connection closed by the server", 0) ;
  c->inlen += (size_t)r ;
  return 1 ;
}

/* One reply, all its lines, into c->code and c->reply.  Returns 1, or 0
 * with the session dead. */
static int read_reply (struct smtpc *c, tain const *deadline)
{
  unsigned int lines = 0 ;
  c->reply.len = 0 ;
  c->code = 0 ;
  if (c->dead) return 0 ;
  for (;;)
  {
    char line[REPLYLINE] ;
    size_t n = 0 ;
    for (;;)   /* one line */
    {
      if (c->inpos == c->inlen && !net_fill(c, deadline)) return 0 ;
      char ch = c->in[c->inpos++] ;
      if (ch == '\n') break ;
      if (n >= REPLYLINE - 2) return die(c, "reply line longer than 512 bytes", 0) ;
      line[n++] = ch ;
    }
    if (n && line[n-1] == '\r') n-- ;
    if (n < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' || line[2] < '0' || line[2] > '9'
     || (n > 3 && line[3] != ' ' && line[3] != '-'))
      return die(c, "malformed reply", 0) ;
    unsigned int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0') ;
    if (!lines) c->code = code ;
    if (lines && !stralloc_cats(&c->reply, " / ")) return die(c, "out of memory", 0) ;
    for (size_t i = lines ? 4 : 0 ; i < n ; i++)
    {
      char ch = line[i] < 0x20 || line[i] == 0x7f ? '?' : line[i] ;
      if (!stralloc_catb(&c->reply, &ch, 1)) return die(c, "out of memory", 0) ;
    }
    if (++lines > REPLYLINES) return die(c, "reply of more than 100 lines", 0) ;
    if (n <= 3 || line[3] == ' ') break ;
  }
  if (!stralloc_0(&c->reply)) return die(c, "out of memory", 0) ;
  c->reply.len-- ;
  if (c->code == 421) die(c, "421 from the server: ", c->reply.s) ;
  return 1 ;
}

static int command (struct smtpc *c, char const *s, size_t len, unsigned int stage)
{
  tain d ;
  deadline_in(c, &d, stage) ;
  return net_write(c, s, len, &d) && read_reply(c, &d) ;
}

/* ------------------------------------------------------------------ */
/* results                                                             */

static void result_set (struct smtpc_result *r, unsigned int code, char const *a, char const *b, char const *cc)
{
  size_t n = 0 ;
  char const *part[3] = { a, b, cc } ;
  r->code = code ;
  for (int i = 0 ; i < 3 ; i++)
    for (char const *p = part[i] ; p && *p && n < sizeof(r->text) - 1 ; p++)
      r->text[n++] = (unsigned char)*p < 0x20 ? '?' : *p ;
  r->text[n] = 0 ;
}

static unsigned int code_of (unsigned int smtp)
{
  return smtp >= 200 && smtp < 300 ? 0 : smtp >= 500 && smtp < 600 ? 100 : 111 ;
}

/* "host[ip] said: 550 5.1.1 ..." */
static void result_said (struct smtpc const *c, struct smtpc_result *r, unsigned int code)
{
  result_set(r, code, c->peer, " said: ", c->reply.s) ;
}

static void result_dead (struct smtpc const *c, struct smtpc_result *r)
{
  result_set(r, 111, c->peer, ": ", c->why) ;
}

/* ------------------------------------------------------------------ */
/* EHLO and its extensions                                             */

static void parse_ehlo (struct smtpc *c)
{
  /* c->reply: "250 host greets / PIPELINING / SIZE 1000 / ..." */
  char const *s = c->reply.s ;
  size_t len = c->reply.len, i = 0 ;
  c->ext = 0 ; c->sizemax = 0 ;
  /* skip the first line (the greeting) */
  while (i < len && !(i + 3 <= len && !memcmp(s + i, " / ", 3))) i++ ;
  while (i < len)
  {
    size_t j ;
    i += 3 ;
    for (j = i ; j < len && !(j + 3 <= len && !memcmp(s + j, " / ", 3)) ; j++) ;
    size_t kw = 0 ;
    while (i + kw < j && s[i + kw] != ' ' && s[i + kw] != '=') kw++ ;
    if (kw == 10 && !strncasecmp(s + i, "PIPELINING", 10)) c->ext |= EXT_PIPELINING ;
    else if (kw == 8 && !strncasecmp(s + i, "8BITMIME", 8)) c->ext |= EXT_8BITMIME ;
    else if (kw == 8 && !strncasecmp(s + i, "SMTPUTF8", 8)) c->ext |= EXT_SMTPUTF8 ;
    else if (kw == 8 && !strncasecmp(s + i, "STARTTLS", 8)) c->ext |= EXT_STARTTLS ;
    else if (kw == 4 && !strncasecmp(s + i, "SIZE", 4))
    {
      uint64_t n = 0 ;
      c->ext |= EXT_SIZE ;
      if (i + 5 < j && uint640_scan(s + i + 5, &n)) c->sizemax = n ;
    }
    i = j ;
  }
}

static int ehlo (struct smtpc *c)
{
  stralloc *o = &c->out ;
  o->len = 0 ;
  if (!stralloc_cats(o, "EHLO ") || !stralloc_cats(o, c->helohost) || !stralloc_cats(o, "\r\n"))
    return die(c, "out of memory", 0) ;
  if (!command(c, o->s, o->len, T_EHLO)) return 0 ;
  if (c->code == 250) { parse_ehlo(c) ; return 1 ; }
  if (c->code < 500) { setwhy(c, "EHLO refused: ", c->reply.s) ; return 0 ; }
  o->s[0] = 'H' ; o->s[1] = 'E' ;
  if (!command(c, o->s, o->len, T_EHLO)) return 0 ;
  if (c->code != 250) { setwhy(c, "HELO refused: ", c->reply.s) ; return 0 ; }
  c->ext = 0 ; c->sizemax = 0 ;
  return 1 ;
}

/* ------------------------------------------------------------------ */
/* opening                                                             */

static void session_reset (struct smtpc *c)
{
  if (c->tlson) { tain d ; deadline_in(c, &d, 2) ; tlsc_close(&c->tls, &d) ; c->tlson = 0 ; }
  if (c->fd >= 0) fd_close(c->fd) ;
  c->fd = -1 ;
  c->inpos = c->inlen = 0 ;
  c->dead = 0 ; c->used = 0 ; c->ext = 0 ; c->sizemax = 0 ;
  c->why[0] = 0 ;
}

static int connect_to (struct smtpc *c, struct smtpc_conf const *conf, struct route_target const *t)
{
  tain d ;
  int is6 = ip46_is6(&t->ip) ;
  int fd = is6 ? socket_tcp6_nbcoe() : socket_tcp4_nbcoe() ;
  if (fd < 0) { setwhy(c, "socket: ", strerror(errno)) ; return 0 ; }
  if (conf->outgoingip && conf->outgoingip[0])
  {
    ip46 o ;
    size_t n = ip46_scan(conf->outgoingip, &o) ;
    if (n && !conf->outgoingip[n] && ip46_is6(&o) == is6
     && (is6 ? socket_bind6(fd, o.ip, 0) : socket_bind4(fd, o.ip, 0)) < 0)
    {
      setwhy(c, "bind to outgoingip: ", strerror(errno)) ;
      fd_close(fd) ;
      return 0 ;
    }
  }
  tain_now_g() ;
  tain_addsec_g(&d, (int)(conf->timeoutconnect ? conf->timeoutconnect : 60)) ;
  if (!(is6 ? socket_deadlineconnstamp6(fd, t->ip.ip, t->port, &d, &STAMP)
            : socket_deadlineconnstamp4(fd, t->ip.ip, t->port, &d, &STAMP)))
  {
    setwhy(c, "connect: ", errno == ETIMEDOUT ? "timed out" : strerror(errno)) ;
    fd_close(fd) ;
    return 0 ;
  }
  c->fd = fd ;
  return 1 ;
}

static int starttls (struct smtpc *c, struct smtpc_conf const *conf, struct route_target const *t,
                     enum tls_level level, struct dns_tlsa const *tlsa, size_t ntlsa)
{
  tain d ;
  enum tlsc_check check = level == TLS_DANE ? TLSC_DANE : level == TLS_VERIFY ? TLSC_CA : TLSC_NOCHECK ;
  char why[200] ;
  if (!command(c, "STARTTLS\r\n", 10, T_EHLO)) return 0 ;
  if (c->code != 220) { setwhy(c, "STARTTLS refused: ", c->reply.s) ; return 0 ; }
  if (c->inpos != c->inlen) return die(c, "bytes after the STARTTLS reply (plaintext injection?)", 0) ;
  deadline_in(c, &d, T_TLS) ;
  if (!tlsc_start(&c->tls, c->fd, t->host[0] ? t->host : c->ip, t->canon[0] ? t->canon : 0, check, conf->cafile,
                  tlsa, ntlsa, &d, why, sizeof(why)))
    return die(c, why, 0) ;
  c->tlson = 1 ;
  return ehlo(c) ;
}

static void why_add (stralloc *why, struct smtpc const *c)
{
  if (!why) return ;
  if (why->len && why->s[why->len - 1] == 0) why->len-- ;
  if (why->len > 400) { stralloc_0(why) ; return ; }   /* enough said */
  if (why->len) stralloc_cats(why, "; ") ;
  stralloc_cats(why, c->peer) ;
  stralloc_cats(why, ": ") ;
  stralloc_cats(why, c->why[0] ? c->why : "failed") ;
  stralloc_0(why) ;
}

/* The level for one target: the DANE upgrade (RFC 7672 2.2) for may and
 * dane when the target is secure.  Returns 0 when the target cannot be
 * used now (TLSA look-up failed for a secure host: no downgrade). */
static int target_level (struct smtpc *c, struct dns *d, struct route_target const *t, enum tls_level level,
                         genalloc *tlsa, enum tls_level *eff)
{
  *eff = level == TLS_DANE ? TLS_MAY : level ;
  dns_tlsa_clear(tlsa) ;
  if ((level != TLS_MAY && level != TLS_DANE) || !d || !t->secure || !t->host[0]) return 1 ;
  {
    struct dns_answer a ;
    tain dl ;
    size_t n, usable = 0 ;
    deadline_in(c, &dl, 60) ;
    /* RFC 7672 2.2.2: an alias (its chain validated, or t->canon would be
       empty) is looked up at its target first, then at its own name when
       the target has no validated TLSA */
    if (t->canon[0])
    {
      dns_tlsa(d, t->canon, t->port, tlsa, &a, &dl) ;
      if (a.status == DNS_TEMP)
      {
        setwhy(c, "TLSA look-up failed: ", a.why) ;
        return 0 ;
      }
      if (a.status != DNS_OK || !a.secure) dns_tlsa_clear(tlsa) ;
    }
    if (!genalloc_len(struct dns_tlsa, tlsa))
    {
      dns_tlsa(d, t->host, t->port, tlsa, &a, &dl) ;
      if (a.status == DNS_TEMP)
      {
        setwhy(c, "TLSA look-up failed: ", a.why) ;
        return 0 ;
      }
      if (a.status != DNS_OK || !a.secure) return 1 ;
    }
    n = genalloc_len(struct dns_tlsa, tlsa) ;
    if (!n) return 1 ;
    for (size_t i = 0 ; i < n ; i++) usable += tlsc_tlsa_usable(genalloc_s(struct dns_tlsa, tlsa) + i) ;
    *eff = usable ? TLS_DANE : TLS_ENCRYPT ;
  }
  return 1 ;
}

struct smtpc *smtpc_open (struct smtpc_conf const *conf, struct dns *d, struct route const *r,
                          char const *domain, enum tls_level level, stralloc *why)
{
  struct smtpc *c = calloc(1, sizeof(*c)) ;
  genalloc tlsa = GENALLOC_ZERO ;
  size_t n = genalloc_len(struct route_target, &r->targets) ;
  (void)domain ;
  if (why) why->len = 0 ;
  if (!c)
  {
    if (why && stralloc_cats(why, "out of memory")) stralloc_0(why) ;
    return 0 ;
  }
  c->fd = -1 ;
  c->tls = (struct tlsc)TLSC_ZERO ;
  c->timeoutremote = conf->timeoutremote ;
  c->helohost = conf->helohost && conf->helohost[0] ? conf->helohost : "localhost" ;
  for (size_t i = 0 ; i < n ; i++)
  {
    struct route_target const *t = genalloc_s(struct route_target, &r->targets) + i ;
    enum tls_level eff ;
    int plain = 0 ;   /* the cleartext retry of a may handshake that failed */
    c->ip[ip46_fmt(c->ip, &t->ip)] = 0 ;
    {
      size_t h = strcmp(t->host, c->ip) ? strlen(t->host) : 0 ;   /* "[ip]", not "ip[ip]" */
      if (h > sizeof(c->peer) - IP46_FMT - 3) h = sizeof(c->peer) - IP46_FMT - 3 ;
      memcpy(c->peer, t->host, h) ;
      c->peer[h] = '[' ;
      strcpy(c->peer + h + 1, c->ip) ;
      strcat(c->peer, "]") ;
    }
    if (!target_level(c, d, t, level, &tlsa, &eff)) { why_add(why, c) ; continue ; }
   again:
    session_reset(c) ;
    c->level = plain ? TLS_NONE : eff ;
    if (!connect_to(c, conf, t)) { why_add(why, c) ; continue ; }
    {
      tain dl ;
      deadline_in(c, &dl, T_GREETING) ;
      if (!read_reply(c, &dl)) goto fail ;
    }
    if (c->code != 220) { setwhy(c, "greeting: ", c->reply.s) ; goto fail ; }
    if (!ehlo(c)) goto fail ;
    if (c->level != TLS_NONE)
    {
      if (!(c->ext & EXT_STARTTLS))
      {
        if (c->level != TLS_MAY)
        {
          setwhy(c, "TLS required (", smtpc_level_name(c->level)) ;
          strcat(c->why, ") but STARTTLS not offered") ;
          goto fail ;
        }
      }
      else if (!starttls(c, conf, t, c->level, genalloc_s(struct dns_tlsa, &tlsa), genalloc_len(struct dns_tlsa, &tlsa)))
      {
        if (c->level == TLS_MAY && !c->dead && !c->tlson && c->code != 220)
          c->level = TLS_NONE ;   /* STARTTLS refused: go on in cleartext */
        else if (c->level == TLS_MAY && !c->tlson && !plain)
        {
          why_add(why, c) ;
          plain = 1 ;
          goto again ;
        }
        else goto fail ;
      }
    }
    dns_tlsa_free(&tlsa) ;
    c->dead = 0 ;
    c->why[0] = 0 ;
    return c ;
   fail:
    why_add(why, c) ;
    if (!c->dead)
    {
      tain dl ;
      deadline_in(c, &dl, T_QUIT) ;
      if (net_write(c, "QUIT\r\n", 6, &dl)) read_reply(c, &dl) ;
    }
  }
  if (why && !why->len && stralloc_cats(why, "no target to try")) stralloc_0(why) ;
  dns_tlsa_free(&tlsa) ;
  session_reset(c) ;
  stralloc_free(&c->reply) ;
  stralloc_free(&c->out) ;
  free(c) ;
  return 0 ;
}

/* ------------------------------------------------------------------ */
/* sending                                                             */

static int has8bit (char const *s)
{
  for (; *s ; s++) if ((unsigned char)*s >= 0x80) return 1 ;
  return 0 ;
}

/* The message's size in CRLF bytes, whether it has 8-bit bytes.
 * Returns 1, or 0 on a read error (errno). */
static int prescan (int fd, uint64_t off, uint64_t *size, int *eightbit)
{
  char buf[CHUNK] ;
  uint64_t n = 0, lf = 0 ;
  char last = '\n' ;
  *eightbit = 0 ;
  for (;;)
  {
    ssize_t r = pread(fd, buf, sizeof(buf), (off_t)(off + n)) ;
    if (r < 0) { if (errno == EINTR) continue ; return 0 ; }
    if (!r) break ;
    for (ssize_t i = 0 ; i < r ; i++)
    {
      if (buf[i] == '\n') lf++ ;
      else if ((unsigned char)buf[i] >= 0x80) *eightbit = 1 ;
    }
    last = buf[r-1] ;
    n += (uint64_t)r ;
  }
  *size = n + lf + (last != '\n' ? 2 : 0) + 3 ;
  return 1 ;
}

static int addr_cmd (stralloc *o, char const *verb, char const *addr)
{
  return stralloc_cats(o, verb) && stralloc_cats(o, addr) && stralloc_catb(o, ">", 1) ;
}

/* The message: LF -> CRLF, dot-stuffing, the final CRLF.CRLF written with
 * the last chunk. */
static int send_body (struct smtpc *c, struct smtpc_msg const *m)
{
  char buf[CHUNK] ;
  stralloc *o = &c->out ;
  uint64_t off = m->msgoff ;
  int bol = 1 ;
  o->len = 0 ;
  for (;;)
  {
    ssize_t r = pread(m->fd, buf, sizeof(buf), (off_t)off) ;
    if (r < 0)
    {
      if (errno == EINTR) continue ;
      return die(c, "cannot read the message: ", strerror(errno)) ;
    }
    if (!r) break ;
    off += (uint64_t)r ;
    if (!stralloc_readyplus(o, 2 * (size_t)r + 8)) return die(c, "out of memory", 0) ;
    for (ssize_t i = 0 ; i < r ; i++)
    {
      char ch = buf[i] ;
      if (bol && ch == '.') o->s[o->len++] = '.' ;
      if (ch == '\n') o->s[o->len++] = '\r' ;
      o->s[o->len++] = ch ;
      bol = ch == '\n' ;
    }
    if (o->len >= CHUNK)
    {
      tain d ;
      deadline_in(c, &d, T_BLOCK) ;
      if (!net_write(c, o->s, o->len, &d)) return 0 ;
      o->len = 0 ;
    }
  }
  if (!bol && !stralloc_cats(o, "\r\n")) return die(c, "out of memory", 0) ;
  if (!stralloc_cats(o, ".\r\n")) return die(c, "out of memory", 0) ;
  {
    tain d ;
    deadline_in(c, &d, T_BLOCK) ;
    return net_write(c, o->s, o->len, &d) ;
  }
}

int smtpc_send (struct smtpc *c, struct smtpc_msg const *m, struct smtpc_result *results)
{
  size_t nr = m->nrcpts ;
  char const *rcpt ;
  uint64_t size ;
  int eightbit, utf8 ;
  size_t accepted = 0 ;
  unsigned char *ok ;   /* accepted at RCPT */
  tain d ;

  for (size_t i = 0 ; i < nr ; i++) results[i].code = 111, results[i].text[0] = 0 ;
  if (c->dead)
  {
    for (size_t i = 0 ; i < nr ; i++) result_dead(c, results + i) ;
    return 0 ;
  }
  if (c->used)
  {
    if (!command(c, "RSET\r\n", 6, T_MAIL) || c->code != 250)
    {
      die(c, "RSET failed: ", c->reply.len ? c->reply.s : 0) ;
      for (size_t i = 0 ; i < nr ; i++) result_dead(c, results + i) ;
      return -1 ;
    }
    c->used = 0 ;
  }

  utf8 = has8bit(m->sender) ;
  rcpt = m->rcpts ;
  for (size_t i = 0 ; i < nr ; i++) { utf8 |= has8bit(rcpt) ; rcpt += strlen(rcpt) + 1 ; }
  if (utf8 && !(c->ext & EXT_SMTPUTF8))
  {
    for (size_t i = 0 ; i < nr ; i++)
      result_set(results + i, 100, c->peer, " does not support SMTPUTF8, and an address of this message is UTF-8", 0) ;
    return 1 ;
  }
  if (!prescan(m->fd, m->msgoff, &size, &eightbit))
  {
    for (size_t i = 0 ; i < nr ; i++) result_set(results + i, 111, "cannot read the message: ", strerror(errno), 0) ;
    return 1 ;
  }
  if ((c->ext & EXT_SIZE) && c->sizemax && size > c->sizemax)
  {
    char a[UINT64_FMT], b[UINT64_FMT] ;
    a[uint64_fmt(a, size)] = 0 ;
    b[uint64_fmt(b, c->sizemax)] = 0 ;
    char t[128] ;
    t[0] = 0 ;
    strcat(t, " takes messages of at most ") ;
    strcat(t, b) ;
    strcat(t, " bytes; this one has ") ;
    strcat(t, a) ;
    for (size_t i = 0 ; i < nr ; i++) result_set(results + i, 100, c->peer, t, 0) ;
    return 1 ;
  }

  ok = calloc(nr ? nr : 1, 1) ;
  if (!ok)
  {
    for (size_t i = 0 ; i < nr ; i++) result_set(results + i, 111, "out of memory", 0, 0) ;
    return 1 ;
  }

  /* the envelope */
  {
    stralloc *o = &c->out ;
    char sz[UINT64_FMT + 6] ;
    o->len = 0 ;
    memcpy(sz, " SIZE=", 6) ;
    sz[6 + uint64_fmt(sz + 6, size)] = 0 ;
    if (!addr_cmd(o, "MAIL FROM:<", m->sender)
     || ((c->ext & EXT_SIZE) && !stralloc_cats(o, sz))
     || (eightbit && (c->ext & EXT_8BITMIME) && !stralloc_cats(o, " BODY=8BITMIME"))
     || (utf8 && !stralloc_cats(o, " SMTPUTF8"))
     || !stralloc_cats(o, "\r\n"))
      goto nomem ;
    c->used = 1 ;
    if (c->ext & EXT_PIPELINING)
    {
      rcpt = m->rcpts ;
      for (size_t i = 0 ; i < nr ; i++)
      {
        if (!addr_cmd(o, "RCPT TO:<", rcpt) || !stralloc_cats(o, "\r\n")) goto nomem ;
        rcpt += strlen(rcpt) + 1 ;
      }
      if (!stralloc_cats(o, "DATA\r\n")) goto nomem ;
      deadline_in(c, &d, T_MAIL) ;
      if (!net_write(c, o->s, o->len, &d)) goto dead ;
      if (!read_reply(c, &d)) goto dead ;
      {
        unsigned int mailcode = c->code ;
        stralloc mailreply = STRALLOC_ZERO ;
        if ((mailcode < 200 || mailcode >= 300) && !stralloc_copyb(&mailreply, c->reply.s, c->reply.len + 1)) goto nomem ;
        for (size_t i = 0 ; i < nr ; i++)
        {
          deadline_in(c, &d, T_RCPT) ;
          if (!read_reply(c, &d)) { stralloc_free(&mailreply) ; goto dead ; }
          if (mailcode < 200 || mailcode >= 300)
            result_set(results + i, code_of(mailcode) ? code_of(mailcode) : 111, c->peer, " said: ", mailreply.s) ;
          else if (c->code >= 200 && c->code < 300) { ok[i] = 1 ; accepted++ ; }
          else result_said(c, results + i, code_of(c->code)) ;
        }
        stralloc_free(&mailreply) ;
      }
      deadline_in(c, &d, T_DATA) ;
      if (!read_reply(c, &d)) goto dead ;
      if (c->code == 354 && !accepted)
      {
        /* RFC 2920 3.1: nothing to send, but DATA was taken: end it */
        deadline_in(c, &d, T_FINAL) ;
        if (!net_write(c, ".\r\n", 3, &d) || !read_reply(c, &d)) goto dead ;
        goto done ;
      }
    }
    else
    {
      if (!command(c, o->s, o->len, T_MAIL)) goto dead ;
      if (c->code < 200 || c->code >= 300)
      {
        for (size_t i = 0 ; i < nr ; i++) result_said(c, results + i, code_of(c->code) ? code_of(c->code) : 111) ;
        goto done ;
      }
      rcpt = m->rcpts ;
      for (size_t i = 0 ; i < nr ; i++)
      {
        o->len = 0 ;
        if (!addr_cmd(o, "RCPT TO:<", rcpt) || !stralloc_cats(o, "\r\n")) goto nomem ;
        rcpt += strlen(rcpt) + 1 ;
        if (!command(c, o->s, o->len, T_RCPT)) goto dead ;
        if (c->code >= 200 && c->code < 300) { ok[i] = 1 ; accepted++ ; }
        else result_said(c, results + i, code_of(c->code)) ;
      }
      if (!accepted) goto done ;
      if (!command(c, "DATA\r\n", 6, T_DATA)) goto dead ;
    }
    if (!accepted) goto done ;
    if (c->code != 354)
    {
      for (size_t i = 0 ; i < nr ; i++)
        if (ok[i]) result_said(c, results + i, code_of(c->code) ? code_of(c->code) : 111) ;
      goto done ;
    }
  }

  /* the message */
  if (!send_body(c, m)) goto dead ;
  deadline_in(c, &d, T_FINAL) ;
  if (!read_reply(c, &d)) goto dead ;
  for (size_t i = 0 ; i < nr ; i++)
    if (ok[i]) result_said(c, results + i, c->code == 250 ? 0 : code_of(c->code) ? code_of(c->code) : 111) ;

 done:
  free(ok) ;
  return !c->dead ;

 nomem:
  die(c, "out of memory", 0) ;
 dead:
  /* whatever has no outcome yet (and every recipient accepted at RCPT:
     without the final reply nothing is delivered) is temporary */
  for (size_t i = 0 ; i < nr ; i++)
    if (ok[i] || !results[i].text[0]) result_dead(c, results + i) ;
  free(ok) ;
  return 0 ;
}

void smtpc_close (struct smtpc *c)
{
  if (!c) return ;
  if (!c->dead && c->fd >= 0)
  {
    tain d ;
    deadline_in(c, &d, T_QUIT) ;
    if (net_write(c, "QUIT\r\n", 6, &d)) read_reply(c, &d) ;
  }
  session_reset(c) ;
  stralloc_free(&c->reply) ;
  stralloc_free(&c->out) ;
  free(c) ;
}

char const *smtpc_tls_summary (struct smtpc const *c)
{
  struct smtpc *w = (struct smtpc *)c ;
  if (!c->tlson) return "none" ;
  w->summary[0] = 0 ;
  strncat(w->summary, c->tls.version, 32) ;
  strcat(w->summary, " ") ;
  strncat(w->summary, c->tls.cipher, 80) ;
  strcat(w->summary, " verified=") ;
  strncat(w->summary, c->tls.verified, 16) ;
  return w->summary ;
}

void smtpc_info (struct smtpc const *c, struct smtpc_info *i)
{
  i->peer = c->peer ;
  i->ip = c->ip ;
  i->level = c->level ;
  i->tls_version = c->tlson ? c->tls.version : "" ;
  i->tls_cipher = c->tlson ? c->tls.cipher : "" ;
  i->tls_verified = c->tlson ? c->tls.verified : "" ;
  i->tls_peer = c->tlson ? c->tls.peer : "" ;
  i->tls_seen = c->tlson ? c->tls.seen : "" ;
}

/* ------------------------------------------------------------------ */
/* policy                                                              */

static char const *level_names[] = { "none", "may", "encrypt", "verify", "dane" } ;

char const *smtpc_level_name (enum tls_level l)
{
  return (unsigned int)l < 5 ? level_names[l] : "?" ;
}

static int level_scan (char const *s, enum tls_level *l)
{
  for (unsigned int i = 0 ; i < 5 ; i++)
    if (!strcasecmp(s, level_names[i])) { *l = (enum tls_level)i ; return 1 ; }
  return 0 ;
}

/* the entry for key (exact, case-insensitive) in the list, or 0 */
static char const *policy_find (char const *list, size_t len, char const *key, size_t klen)
{
  size_t i = 0 ;
  while (i < len)
  {
    char const *e = list + i ;
    size_t elen = strlen(e) ;
    char const *colon = strchr(e, ':') ;
    if (colon && (size_t)(colon - e) == klen && !strncasecmp(e, key, klen)) return colon + 1 ;
    i += elen + 1 ;
  }
  return 0 ;
}

enum tls_level smtpc_policy (char const *domain)
{
  static stralloc list = STRALLOC_ZERO ;
  static int state = 0 ;   /* 0 unread, 1 read, -1 error */
  char const *v = 0 ;
  size_t dlen = strlen(domain) ;
  enum tls_level l ;
  if (!state)
  {
    int r = control_readlist(&list, "tlsdestinations") ;
    state = r < 0 ? -1 : 1 ;
  }
  if (state < 0) return TLS_VERIFY ;
  if (dlen && domain[dlen-1] == '.') dlen-- ;
  v = policy_find(list.s, list.len, domain, dlen) ;
  for (size_t i = 0 ; !v && i < dlen ; i++)
    if (domain[i] == '.') v = policy_find(list.s, list.len, domain + i, dlen - i) ;
  if (!v) v = policy_find(list.s, list.len, "", 0) ;
  if (!v) return TLS_MAY ;
  while (*v == ' ' || *v == '\t') v++ ;
  return level_scan(v, &l) ? l : TLS_VERIFY ;
}
