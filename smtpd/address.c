/* RFC 5321 paths and mailboxes (4.1.2 grammar, 4.5.3.1 size limits).
 *
 *   Path       = "<" [ A-d-l ":" ] Mailbox ">"
 *   A-d-l      = "@" Domain *( "," "@" Domain )      (dropped)
 *   Mailbox    = Local-part "@" ( Domain / address-literal )
 *   Local-part = Dot-string / Quoted-string
 *
 * The canonical form of a mailbox is what yubin stores and passes on:
 * the local part unquoted when it is a valid Dot-string, otherwise quoted
 * with the minimum of backslashes; the domain lowercased (ASCII only);
 * IPv4 literals without leading zeros; "[IPv6:" with the tag spelled so.
 *
 * Everything is parsed by index over s[0..len): s need not be
 * NUL-terminated and may contain NULs (which are refused). */

#include <errno.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>

#include <skalibs/stralloc.h>

#include "address.h"

#define LOCAL_MAX 64
#define DOMAIN_MAX 255
#define PATH_MAX_ 256
#define LABEL_MAX 63

struct parser
{
  char const *s ;
  size_t len ;
  size_t i ;
  int utf8 ;
} ;

static int is_alpha (unsigned char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ;
}

static int is_digit (unsigned char c)
{
  return c >= '0' && c <= '9' ;
}

/* atext of RFC 5322 3.2.3 (ASCII part) */
static int is_atext (unsigned char c)
{
  if (is_alpha(c) || is_digit(c)) return 1 ;
  return c && strchr("!#$%&'*+-/=?^_`{|}~", c) != 0 ;
}

static unsigned char lower (unsigned char c)
{
  return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c ;
}

/* Length of the valid UTF-8 sequence of a non-ASCII character starting at
 * s[i] (2..4), or 0 if it is not one: no overlongs, no surrogates, nothing
 * above U+10FFFF, no C1 control characters (U+0080..U+009F). */
static size_t utf8_seq (char const *s, size_t len, size_t i)
{
  unsigned char c = s[i] ;
  size_t n, k ;
  unsigned char lo = 0x80, hi = 0xbf ;
  if (c < 0xc2) return 0 ;             /* ASCII, continuation, or overlong C0/C1 */
  else if (c < 0xe0) n = 2 ;
  else if (c < 0xf0)
  {
    n = 3 ;
    if (c == 0xe0) lo = 0xa0 ;         /* overlong */
    else if (c == 0xed) hi = 0x9f ;    /* surrogates */
  }
  else if (c < 0xf5)
  {
    n = 4 ;
    if (c == 0xf0) lo = 0x90 ;         /* overlong */
    else if (c == 0xf4) hi = 0x8f ;    /* > U+10FFFF */
  }
  else return 0 ;
  if (len - i < n) return 0 ;
  for (k = 1 ; k < n ; k++)
  {
    unsigned char d = s[i + k] ;
    if (k == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xbf)) return 0 ;
  }
  if (c == 0xc2 && (unsigned char)s[i + 1] < 0xa0) return 0 ;   /* C1 controls */
  return n ;
}

/* Is b[0..n) a valid Dot-string (so needs no quotes)? */
static int is_dotstring (char const *b, size_t n, int utf8)
{
  size_t i = 0 ;
  int atomlen = 0 ;
  if (!n) return 0 ;
  while (i < n)
  {
    unsigned char c = b[i] ;
    if (c == '.')
    {
      if (!atomlen) return 0 ;
      atomlen = 0 ; i++ ;
    }
    else if (is_atext(c)) { atomlen++ ; i++ ; }
    else if (c >= 0x80 && utf8)
    {
      size_t k = utf8_seq(b, n, i) ;
      if (!k) return 0 ;
      atomlen++ ; i += k ;
    }
    else return 0 ;
  }
  return atomlen > 0 ;
}

/* Local part at p->i, canonical form into buf (LOCAL_MAX + 1 bytes).
 * Stops at the first byte that cannot continue it. */
static enum address_error parse_local (struct parser *p, char *buf, size_t *buflen)
{
  char const *s = p->s ;
  if (p->i >= p->len) return ADDR_SYNTAX ;
  if (s[p->i] == '"')
  {
    char q[LOCAL_MAX + 1] ;
    size_t qn = 0, n = 0, j ;
    p->i++ ;
    for (;;)
    {
      unsigned char c ;
      if (p->i >= p->len) return ADDR_SYNTAX ;     /* unbalanced quote */
      c = s[p->i] ;
      if (c == '"') { p->i++ ; break ; }
      if (c == '\\')
      {
        if (p->i + 1 >= p->len) return ADDR_SYNTAX ;
        c = s[p->i + 1] ;
        if (c < 32 || c > 126) return ADDR_SYNTAX ;
        if (qn >= LOCAL_MAX) return ADDR_TOOLONG ;
        q[qn++] = c ; p->i += 2 ;
      }
      else if (c >= 32 && c <= 126)
      {
        if (qn >= LOCAL_MAX) return ADDR_TOOLONG ;
        q[qn++] = c ; p->i++ ;
      }
      else if (c >= 0x80 && p->utf8)
      {
        size_t k = utf8_seq(s, p->len, p->i) ;
        if (!k) return ADDR_SYNTAX ;
        if (qn + k > LOCAL_MAX) return ADDR_TOOLONG ;
        memcpy(q + qn, s + p->i, k) ; qn += k ; p->i += k ;
      }
      else return ADDR_SYNTAX ;
    }
    if (!qn) return ADDR_SYNTAX ;     /* empty local part: refused */
    if (is_dotstring(q, qn, p->utf8))
    {
      memcpy(buf, q, qn) ;
      *buflen = qn ;
      return ADDR_OK ;
    }
    buf[n++] = '"' ;
    for (j = 0 ; j < qn ; j++)
    {
      if (q[j] == '"' || q[j] == '\\')
      {
        if (n >= LOCAL_MAX) return ADDR_TOOLONG ;
        buf[n++] = '\\' ;
      }
      if (n >= LOCAL_MAX) return ADDR_TOOLONG ;
      buf[n++] = q[j] ;
    }
    if (n >= LOCAL_MAX) return ADDR_TOOLONG ;
    buf[n++] = '"' ;
    *buflen = n ;
    return ADDR_OK ;
  }
  else
  {
    size_t n = 0 ;
    int atomlen = 0 ;
    while (p->i < p->len)
    {
      unsigned char c = s[p->i] ;
      size_t k = 1 ;
      if (c == '.')
      {
        if (!atomlen) return ADDR_SYNTAX ;     /* leading or double dot */
        atomlen = 0 ;
      }
      else if (is_atext(c)) atomlen++ ;
      else if (c >= 0x80 && p->utf8)
      {
        k = utf8_seq(s, p->len, p->i) ;
        if (!k) return ADDR_SYNTAX ;
        atomlen++ ;
      }
      else break ;
      if (n + k > LOCAL_MAX) return ADDR_TOOLONG ;
      memcpy(buf + n, s + p->i, k) ; n += k ; p->i += k ;
    }
    if (!atomlen) return ADDR_SYNTAX ;         /* empty or trailing dot */
    *buflen = n ;
    return ADDR_OK ;
  }
}

/* [a.b.c.d], 1*3DIGIT each, 0..255; canonical without leading zeros */
static int parse_ipv4 (char const *s, size_t len, char *out, size_t *outlen)
{
  size_t i = 0, n = 0 ;
  unsigned int part ;
  for (part = 0 ; part < 4 ; part++)
  {
    unsigned int v = 0, digits = 0 ;
    if (part)
    {
      if (i >= len || s[i] != '.') return 0 ;
      i++ ;
      out[n++] = '.' ;
    }
    while (i < len && is_digit(s[i]))
    {
      if (++digits > 3) return 0 ;
      v = v * 10 + (s[i++] - '0') ;
    }
    if (!digits || v > 255) return 0 ;
    if (v >= 100) out[n++] = '0' + v / 100 ;
    if (v >= 10) out[n++] = '0' + (v / 10) % 10 ;
    out[n++] = '0' + v % 10 ;
  }
  if (i != len) return 0 ;
  *outlen = n ;
  return 1 ;
}

/* Domain or address literal at p->i, canonical form into buf
 * (DOMAIN_MAX + 1 bytes).  Stops at the first byte that cannot continue a
 * domain; the caller checks what follows. */
static enum address_error parse_domain (struct parser *p, char *buf, size_t *buflen)
{
  char const *s = p->s ;
  size_t n = 0 ;
  if (p->i >= p->len) return ADDR_BADDOMAIN ;
  if (s[p->i] == '[')
  {
    size_t start = ++p->i, clen ;
    char const *c ;
    for (;;)
    {
      unsigned char x ;
      if (p->i >= p->len) return ADDR_SYNTAX ;   /* unbalanced bracket */
      x = s[p->i] ;
      if (x == ']') break ;
      /* dcontent: %d33-90 / %d94-126 */
      if (x < 33 || x > 126 || x == '[' || x == '\\') return ADDR_BADDOMAIN ;
      p->i++ ;
    }
    c = s + start ;
    clen = p->i - start ;
    p->i++ ;
    if (clen + 2 > DOMAIN_MAX) return ADDR_TOOLONG ;
    buf[n++] = '[' ;
    if (clen > 5 && !strncasecmp(c, "IPv6:", 5))
    {
      char tmp[INET6_ADDRSTRLEN + 1] ;
      unsigned char bin[16] ;
      size_t k ;
      if (clen - 5 > INET6_ADDRSTRLEN) return ADDR_BADDOMAIN ;
      for (k = 0 ; k < clen - 5 ; k++) tmp[k] = lower(c[5 + k]) ;
      tmp[k] = 0 ;
      if (inet_pton(AF_INET6, tmp, bin) != 1) return ADDR_BADDOMAIN ;
      memcpy(buf + n, "IPv6:", 5) ; n += 5 ;
      memcpy(buf + n, tmp, k) ; n += k ;
    }
    else
    {
      size_t k ;
      if (!parse_ipv4(c, clen, buf + n, &k)) return ADDR_BADDOMAIN ;
      n += k ;   /* General-address-literal and anything else: refused */
    }
    buf[n++] = ']' ;
    *buflen = n ;
    return ADDR_OK ;
  }
  else
  {
    size_t label = 0 ;
    unsigned char last = 0 ;
    while (p->i < p->len)
    {
      unsigned char c = s[p->i] ;
      size_t k = 1 ;
      if (c == '.')
      {
        if (!label || last == '-') return ADDR_BADDOMAIN ;
        label = 0 ;
      }
      else if (is_alpha(c) || is_digit(c) || c == '-')
      {
        if (!label && c == '-') return ADDR_BADDOMAIN ;
        label++ ;
      }
      else if (c >= 0x80 && p->utf8)
      {
        k = utf8_seq(s, p->len, p->i) ;
        if (!k) return ADDR_BADDOMAIN ;
        label += k ;
      }
      else break ;
      if (label > LABEL_MAX) return ADDR_BADDOMAIN ;
      if (n + k > DOMAIN_MAX) return ADDR_TOOLONG ;
      if (k == 1) buf[n] = lower(c) ;
      else memcpy(buf + n, s + p->i, k) ;
      last = c ;
      n += k ; p->i += k ;
    }
    if (!label || last == '-') return ADDR_BADDOMAIN ;   /* empty, trailing dot or hyphen */
    *buflen = n ;
    return ADDR_OK ;
  }
}

/* After a bare mailbox: only ESMTP parameters may follow,
 * 1*SP esmtp-keyword ["=" esmtp-value], each. */
static int params_ok (char const *s, size_t len, size_t i, int utf8)
{
  while (i < len)
  {
    size_t k = 0 ;
    while (i < len && s[i] == ' ') i++ ;
    if (i >= len) break ;
    while (i < len && (is_alpha(s[i]) || is_digit(s[i]) || (k && s[i] == '-'))) { i++ ; k++ ; }
    if (!k) return 0 ;
    if (i < len && s[i] == '=')
    {
      size_t v = 0 ;
      i++ ;
      while (i < len && s[i] != ' ')
      {
        unsigned char c = s[i] ;
        if (c >= 33 && c <= 126 && c != '=') { i++ ; v++ ; }
        else if (c >= 0x80 && utf8)
        {
          size_t m = utf8_seq(s, len, i) ;
          if (!m) return 0 ;
          i += m ; v++ ;
        }
        else return 0 ;
      }
      if (!v) return 0 ;
    }
    if (i < len && s[i] != ' ') return 0 ;
  }
  return 1 ;
}

/* After a domain that the parser stopped in: is the stray byte more
 * likely a bad character in the domain (BADDOMAIN) than a broken path
 * (SYNTAX)?  '@' after a domain (user@other@ours) is a syntax error. */
static enum address_error after_domain (char const *s, size_t len, size_t i, char const *terms, int endok)
{
  unsigned char c ;
  if (i >= len) return endok ? ADDR_OK : ADDR_SYNTAX ;
  c = s[i] ;
  if (c && strchr(terms, c)) return ADDR_OK ;
  if (c >= 0x80 || (c > 32 && c < 127 && !strchr("@<>,:\"[]", c))) return ADDR_BADDOMAIN ;
  return ADDR_SYNTAX ;
}

static int is_postmaster (char const *b, size_t n)
{
  return n == 10 && !strncasecmp(b, "postmaster", 10) ;
}

enum address_error address_parse_path (char const *s, size_t len, int allow_null, int utf8, stralloc *out, size_t *rest)
{
  struct parser p = { .s = s, .len = len, .i = 0, .utf8 = utf8 } ;
  char local[LOCAL_MAX + 1], domain[DOMAIN_MAX + 1] ;
  size_t locallen = 0, domainlen = 0, start ;
  int bracket = 0, hasdomain = 0 ;
  enum address_error e ;

  out->len = 0 ;
  while (p.i < len && s[p.i] == ' ') p.i++ ;
  if (p.i >= len) return ADDR_SYNTAX ;
  start = p.i ;
  if (s[p.i] == '<')
  {
    bracket = 1 ;
    p.i++ ;
    if (p.i < len && s[p.i] == '>')
    {
      if (!allow_null) return ADDR_SYNTAX ;
      p.i++ ;
      goto tail ;
    }
    if (p.i < len && s[p.i] == '@')   /* A-d-l, dropped */
    {
      for (;;)
      {
        p.i++ ;   /* the '@' */
        e = parse_domain(&p, domain, &domainlen) ;
        if (!e) e = after_domain(s, len, p.i, ",:", 0) ;
        if (e) return e ;
        if (s[p.i] == ':') { p.i++ ; break ; }
        if (s[p.i] != ',') return ADDR_SYNTAX ;
        p.i++ ;
        if (p.i >= len || s[p.i] != '@') return ADDR_SYNTAX ;
      }
    }
  }
  e = parse_local(&p, local, &locallen) ;
  if (e) return e ;
  if (p.i < len && s[p.i] == '@')
  {
    p.i++ ;
    e = parse_domain(&p, domain, &domainlen) ;
    if (!e) e = after_domain(s, len, p.i, bracket ? ">" : " ", !bracket) ;
    if (e) return e ;
    hasdomain = 1 ;
  }
  if (bracket)
  {
    if (p.i >= len || s[p.i] != '>') return ADDR_SYNTAX ;
    p.i++ ;
    if (p.i - start > PATH_MAX_) return ADDR_TOOLONG ;
  }
  else
  {
    if (p.i < len && s[p.i] != ' ') return ADDR_SYNTAX ;
    if (p.i - start + 2 > PATH_MAX_) return ADDR_TOOLONG ;
  }

 tail:
  if (p.i < len && s[p.i] != ' ') return ADDR_SYNTAX ;
  while (p.i < len && s[p.i] == ' ') p.i++ ;
  if (!bracket && !params_ok(s, len, p.i, utf8)) return ADDR_SYNTAX ;
  if (!hasdomain && locallen && !is_postmaster(local, locallen)) return ADDR_SYNTAX ;
  /* The canonical form is never longer than the path, so this is the
   * only allocation.  There is no error code for ENOMEM in the contract:
   * report a syntax error with errno set. */
  if (!stralloc_ready(out, locallen + 1 + domainlen + 1))
  {
    errno = ENOMEM ;
    return ADDR_SYNTAX ;
  }
  memcpy(out->s, local, locallen) ;
  out->len = locallen ;
  if (hasdomain)
  {
    out->s[out->len++] = '@' ;
    memcpy(out->s + out->len, domain, domainlen) ;
    out->len += domainlen ;
  }
  out->s[out->len] = 0 ;
  if (rest) *rest = p.i ;
  return (!hasdomain && locallen) ? ADDR_NODOMAIN : ADDR_OK ;
}

size_t address_split (char const *mbox, size_t len)
{
  size_t i, at = len ;
  int quoted = 0 ;
  for (i = 0 ; i < len ; i++)
  {
    if (quoted)
    {
      if (mbox[i] == '\\' && i + 1 < len) i++ ;
      else if (mbox[i] == '"') quoted = 0 ;
    }
    else if (mbox[i] == '"') quoted = 1 ;
    else if (mbox[i] == '@') at = i ;
  }
  return at ;
}

enum address_error address_check_domain (char const *d, size_t len, int utf8)
{
  struct parser p = { .s = d, .len = len, .i = 0, .utf8 = utf8 } ;
  char buf[DOMAIN_MAX + 1] ;
  size_t n ;
  enum address_error e ;
  if (len > DOMAIN_MAX) return ADDR_TOOLONG ;
  e = parse_domain(&p, buf, &n) ;
  if (e == ADDR_SYNTAX) e = ADDR_BADDOMAIN ;
  if (e) return e ;
  return p.i == len ? ADDR_OK : ADDR_BADDOMAIN ;
}

char const *address_strerror (enum address_error e)
{
  switch (e)
  {
    case ADDR_OK : return "address ok" ;
    case ADDR_SYNTAX : return "syntax error in address" ;
    case ADDR_TOOLONG : return "address too long" ;
    case ADDR_NODOMAIN : return "address must have a domain" ;
    case ADDR_BADDOMAIN : return "bad domain in address" ;
  }
  return "unknown address error" ;
}
