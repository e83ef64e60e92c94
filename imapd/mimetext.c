/* imapd/mimetext.c: text decoding of messages for SEARCH; see mime.h.
 *
 * RFC 2047 encoded words in header values, the charsets understood
 * (UTF-8/US-ASCII, ISO-8859-1, ISO-8859-15, windows-1252) converted to
 * UTF-8, quoted-printable and base64 body decoding, the walk over the
 * decoded text of a message's text parts, and case folding.  The part
 * tree and header field scanning it relies on are mime.c's (mimeint.h). */

#include <errno.h>
#include <string.h>

#include "imapd/mime.h"
#include "imapd/mimeint.h"

/* ---------- charsets, RFC 2047, transfer encodings ---------- */

enum cs { CS_UTF8, CS_LATIN1, CS_LATIN9, CS_CP1252, CS_OTHER } ;

static enum cs charset_of (char const *s, size_t len)
{
  if (!len || cieqs(s, len, "utf-8") || cieqs(s, len, "utf8") || cieqs(s, len, "us-ascii") || cieqs(s, len, "ascii")) return CS_UTF8 ;
  if (cieqs(s, len, "iso-8859-1") || cieqs(s, len, "iso8859-1") || cieqs(s, len, "latin1") || cieqs(s, len, "l1") || cieqs(s, len, "iso_8859-1")) return CS_LATIN1 ;
  if (cieqs(s, len, "iso-8859-15") || cieqs(s, len, "iso8859-15") || cieqs(s, len, "latin9")) return CS_LATIN9 ;
  if (cieqs(s, len, "windows-1252") || cieqs(s, len, "cp1252")) return CS_CP1252 ;
  return CS_OTHER ;
}

static uint16_t const cp1252[32] =
{
  0x20ac, 0x81, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8d, 0x017d, 0x8f,
  0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0x9d, 0x017e, 0x0178
} ;

static int cat_utf8 (stralloc *sa, uint32_t u)
{
  char b[4] ;
  size_t n ;
  if (u < 0x80) { b[0] = u ; n = 1 ; }
  else if (u < 0x800) { b[0] = 0xc0 | (u >> 6) ; b[1] = 0x80 | (u & 63) ; n = 2 ; }
  else if (u < 0x10000) { b[0] = 0xe0 | (u >> 12) ; b[1] = 0x80 | ((u >> 6) & 63) ; b[2] = 0x80 | (u & 63) ; n = 3 ; }
  else { b[0] = 0xf0 | (u >> 18) ; b[1] = 0x80 | ((u >> 12) & 63) ; b[2] = 0x80 | ((u >> 6) & 63) ; b[3] = 0x80 | (u & 63) ; n = 4 ; }
  return stralloc_catb(sa, b, n) ;
}

/* appends s[0..len) in charset cs converted to UTF-8 (CS_UTF8 and
   CS_OTHER as they are) */
static int cat_charset (stralloc *sa, enum cs cs, char const *s, size_t len)
{
  size_t i ;
  if (cs == CS_UTF8 || cs == CS_OTHER) return stralloc_catb(sa, s, len) ;
  for (i = 0 ; i < len ; i++)
  {
    unsigned char c = s[i] ;
    uint32_t u = c ;
    if (cs == CS_CP1252 && c >= 0x80 && c < 0xa0) u = cp1252[c - 0x80] ;
    else if (cs == CS_LATIN9)
      switch (c)
      {
        case 0xa4 : u = 0x20ac ; break ; case 0xa6 : u = 0x160 ; break ; case 0xa8 : u = 0x161 ; break ;
        case 0xb4 : u = 0x17d ; break ; case 0xb8 : u = 0x17e ; break ; case 0xbc : u = 0x152 ; break ;
        case 0xbd : u = 0x153 ; break ; case 0xbe : u = 0x178 ; break ; default : break ;
      }
    if (!cat_utf8(sa, u)) return 0 ;
  }
  return 1 ;
}

static int hexval (int c)
{
  if (c >= '0' && c <= '9') return c - '0' ;
  c = lc(c) ;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10 ;
  return -1 ;
}

static int b64val (int c)
{
  if (c >= 'A' && c <= 'Z') return c - 'A' ;
  if (c >= 'a' && c <= 'z') return c - 'a' + 26 ;
  if (c >= '0' && c <= '9') return c - '0' + 52 ;
  if (c == '+') return 62 ;
  if (c == '/') return 63 ;
  return -1 ;
}

struct b64 { uint32_t acc ; unsigned n ; int done ; } ;

static int b64_feed (struct b64 *st, stralloc *out, char const *s, size_t len)
{
  size_t i ;
  if (!stralloc_readyplus(out, len)) return 0 ;
  for (i = 0 ; i < len && !st->done ; i++)
  {
    int v = b64val((unsigned char)s[i]) ;
    if (s[i] == '=') { st->done = 1 ; break ; }
    if (v < 0) continue ;
    st->acc = (st->acc << 6) | (uint32_t)v ;
    if (++st->n == 4)
    {
      out->s[out->len++] = st->acc >> 16 ; out->s[out->len++] = st->acc >> 8 ; out->s[out->len++] = st->acc ;
      st->n = 0 ; st->acc = 0 ;
    }
  }
  return 1 ;
}

static int b64_end (struct b64 *st, stralloc *out)
{
  if (st->n == 2) { char c = st->acc >> 4 ; if (!stralloc_catb(out, &c, 1)) return 0 ; }
  else if (st->n == 3) { char c[2] = { st->acc >> 10, st->acc >> 2 } ; if (!stralloc_catb(out, c, 2)) return 0 ; }
  st->n = 0 ; st->acc = 0 ;
  return 1 ;
}

/* quoted-printable of whole lines s[0..len) (or Q of RFC 2047, q set) */
static int qp_decode (stralloc *out, char const *s, size_t len, int q)
{
  size_t i ;
  if (!stralloc_readyplus(out, len)) return 0 ;
  for (i = 0 ; i < len ; i++)
  {
    char c = s[i] ;
    if (c == '=')
    {
      int h1 = i + 1 < len ? hexval((unsigned char)s[i+1]) : -1, h2 = i + 2 < len ? hexval((unsigned char)s[i+2]) : -1 ;
      if (h1 >= 0 && h2 >= 0) { out->s[out->len++] = (char)(h1 * 16 + h2) ; i += 2 ; continue ; }
      if (!q)
      {
        /* a soft line break: '=' then blanks then the line end */
        size_t j = i + 1 ;
        while (j < len && (iswsp((unsigned char)s[j]) || s[j] == '\r')) j++ ;
        if (j >= len || s[j] == '\n') { i = j ; continue ; }
      }
    }
    else if (q && c == '_') c = ' ' ;
    out->s[out->len++] = c ;
  }
  return 1 ;
}

/* an encoded word at s[i..len): its end, charset, encoding, text */
static int encword (char const *s, size_t i, size_t len, size_t *end, size_t *cs, size_t *cslen, char *enc, size_t *t, size_t *tlen)
{
  size_t j, q1, q2 ;
  if (len - i < 8 || s[i] != '=' || s[i+1] != '?') return 0 ;
  for (j = i + 2 ; j < len && s[j] != '?' ; j++) if ((unsigned char)s[j] <= ' ') return 0 ;
  if (j >= len || j == i + 2) return 0 ;
  q1 = j ;
  if (q1 + 3 >= len || s[q1+2] != '?') return 0 ;
  *enc = lc((unsigned char)s[q1+1]) ;
  if (*enc != 'b' && *enc != 'q') return 0 ;
  for (j = q1 + 3 ; j + 1 < len && !(s[j] == '?' && s[j+1] == '=') ; j++) if ((unsigned char)s[j] <= ' ') return 0 ;
  if (j + 1 >= len) return 0 ;
  q2 = j ;
  *cs = i + 2 ; *cslen = q1 - *cs ;
  {
    char const *star = memchr(s + *cs, '*', *cslen) ;   /* RFC 2231 language */
    if (star) *cslen = (size_t)(star - (s + *cs)) ;
  }
  *t = q1 + 3 ; *tlen = q2 - *t ;
  *end = q2 + 2 ;
  return 1 ;
}

int mime_decode_words (stralloc *sa, char const *s, size_t len)
{
  size_t i = 0, after = (size_t)-1, wordend = (size_t)-1 ;
  stralloc raw = STRALLOC_ZERO ;
  int ok = 0 ;
  while (i < len)
  {
    size_t end, cs, cslen, t, tlen ;
    char enc ;
    enum cs c ;
    if ((i == 0 || iswsp((unsigned char)s[i-1]) || s[i-1] == '(' || s[i-1] == '"' || i == wordend)
      && encword(s, i, len, &end, &cs, &cslen, &enc, &t, &tlen)
      && (c = charset_of(s + cs, cslen)) != CS_OTHER)
    {
      /* whitespace between two encoded words is dropped */
      if (after != (size_t)-1) sa->len = after ;
      raw.len = 0 ;
      if (enc == 'q') { if (!qp_decode(&raw, s + t, tlen, 1)) goto end ; }
      else
      {
        struct b64 st = { 0, 0, 0 } ;
        if (!b64_feed(&st, &raw, s + t, tlen) || !b64_end(&st, &raw)) goto end ;
      }
      if (!cat_charset(sa, c, raw.s, raw.len)) goto end ;
      after = sa->len ; wordend = i = end ;
      continue ;
    }
    if (!iswsp((unsigned char)s[i])) after = (size_t)-1 ;
    if (!stralloc_catb(sa, s + i, 1)) goto end ;
    i++ ;
  }
  ok = 1 ;
 end:
  stralloc_free(&raw) ;
  return ok ;
}

int mime_header_decoded (struct mime const *m, uint32_t i, char const *name, stralloc *sa)
{
  struct mime_part const *p = part_at(m, i) ;
  stralloc tmp = STRALLOC_ZERO ;
  struct hfield f ;
  size_t pos, nlen = strlen(name) ;
  int count = 0 ;
  if (!p) return 0 ;
  pos = p->hdr ;
  while (mimei_hfield_next(m->msg, &pos, p->body, &f))
  {
    if (!f.namelen || !cieq(m->msg + f.start, f.namelen, name, nlen)) continue ;
    tmp.len = 0 ;
    if ((count && !stralloc_catb(sa, "\n", 1)) || !mimei_unfold(&tmp, m->msg, f.value, f.vend)
     || !mime_decode_words(sa, tmp.s, tmp.len)) { stralloc_free(&tmp) ; errno = ENOMEM ; return -1 ; }
    count++ ;
  }
  stralloc_free(&tmp) ;
  return count ;
}

#define WALK_IN 16384

int mime_text_walk (struct mime const *m, mime_text_func *f, void *ctx)
{
  stralloc dec = STRALLOC_ZERO, out = STRALLOC_ZERO ;
  uint32_t i, n = (uint32_t)mime_nparts(m) ;
  int r = 1 ;
  for (i = 0 ; i < n && r == 1 ; i++)
  {
    struct mime_part const *p = mime_parts(m) + i ;
    char const *s = m->msg ;
    char const *e = m->pool.s + p->encoding ;
    size_t el = p->encodinglen, pos = p->body ;
    int isqp = cieqs(e, el, "quoted-printable"), isb64 = cieqs(e, el, "base64") ;
    struct b64 st = { 0, 0, 0 } ;
    enum cs cs = CS_UTF8 ;
    if (p->kind != MIME_LEAF || !p->istext) continue ;
    {
      struct hfield hf ;
      struct mfield ct = MFIELD_ZERO ;
      size_t v, vl ;
      if (mimei_hfield_find(s, p->hdr, p->body, "content-type", &hf))
      {
        if (!mimei_mfield_parse(&ct, s, hf.value, hf.vend, 1)) { mimei_mfield_free(&ct) ; r = -1 ; errno = ENOMEM ; break ; }
        if (mimei_mfield_param(&ct, "charset", &v, &vl)) cs = charset_of(ct.buf.s + v, vl) ;
      }
      mimei_mfield_free(&ct) ;
    }
    r = (*f)(ctx, i, 0, 0) ;
    while (r == 1 && pos < p->end)
    {
      size_t take = p->end - pos ;
      if (take > WALK_IN)
      {
        /* end on a line end when one is near */
        char const *q = memchr(s + pos + WALK_IN, '\n', take - WALK_IN < WALK_IN ? take - WALK_IN : WALK_IN) ;
        take = q ? (size_t)(q - (s + pos)) + 1 : WALK_IN ;
      }
      dec.len = 0 ; out.len = 0 ;
      if (isqp) { if (!qp_decode(&dec, s + pos, take, 0)) { r = -1 ; errno = ENOMEM ; break ; } }
      else if (isb64) { if (!b64_feed(&st, &dec, s + pos, take)) { r = -1 ; errno = ENOMEM ; break ; } }
      else if (!stralloc_catb(&dec, s + pos, take)) { r = -1 ; errno = ENOMEM ; break ; }
      pos += take ;
      if (isb64 && pos >= p->end && !b64_end(&st, &dec)) { r = -1 ; errno = ENOMEM ; break ; }
      if (!cat_charset(&out, cs, dec.s, dec.len)) { r = -1 ; errno = ENOMEM ; break ; }
      if (out.len) r = (*f)(ctx, i, out.s, out.len) ;
    }
  }
  stralloc_free(&dec) ;
  stralloc_free(&out) ;
  return r ;
}

/* ---------- case folding ---------- */

static uint32_t fold1 (uint32_t u)
{
  if (u < 0x80) return (u >= 'A' && u <= 'Z') ? u + 32 : u ;
  if (u >= 0xc0 && u <= 0xde && u != 0xd7) return u + 32 ;
  if (u == 0x130) return 'i' ;
  if ((u >= 0x100 && u <= 0x137) || (u >= 0x14a && u <= 0x177)) return u | 1 ;
  if ((u >= 0x139 && u <= 0x148) || (u >= 0x179 && u <= 0x17e)) return (u & 1) ? u + 1 : u ;
  if (u == 0x178) return 0xff ;
  if (u >= 0x391 && u <= 0x3a9 && u != 0x3a2) return u + 32 ;
  if (u == 0x3c2) return 0x3c3 ;
  if (u == 0x386) return 0x3ac ;
  if (u >= 0x388 && u <= 0x38a) return u + 37 ;
  if (u == 0x38c) return 0x3cc ;
  if (u == 0x38e || u == 0x38f) return u + 63 ;
  if (u >= 0x410 && u <= 0x42f) return u + 32 ;
  if (u >= 0x400 && u <= 0x40f) return u + 80 ;
  return u ;
}

int mime_casefold (stralloc *sa, char const *s, size_t len)
{
  size_t i = 0 ;
  if (!stralloc_readyplus(sa, len)) return 0 ;
  while (i < len)
  {
    unsigned char c = s[i] ;
    uint32_t u ;
    size_t n ;
    if (c < 0x80) { sa->s[sa->len++] = (char)lc(c) ; i++ ; continue ; }
    if (c >= 0xc2 && c <= 0xdf) { n = 2 ; u = c & 0x1f ; }
    else if (c >= 0xe0 && c <= 0xef) { n = 3 ; u = c & 0x0f ; }
    else { if (!stralloc_catb(sa, s + i, 1)) return 0 ; i++ ; continue ; }
    if (len - i < n) { if (!stralloc_catb(sa, s + i, 1)) return 0 ; i++ ; continue ; }
    {
      size_t k ;
      for (k = 1 ; k < n ; k++)
      {
        unsigned char d = s[i + k] ;
        if ((d & 0xc0) != 0x80) break ;
        u = (u << 6) | (d & 63) ;
      }
      if (k < n || (n == 3 && u < 0x800)) { if (!stralloc_catb(sa, s + i, 1)) return 0 ; i++ ; continue ; }
    }
    if (!cat_utf8(sa, fold1(u))) return 0 ;
    i += n ;
  }
  return 1 ;
}
