/* imapd/mime.c: the MIME structure of a message for IMAP; see mime.h.
 *
 * Every scan is bounded by the range it is given; nothing is read
 * outside [0, len) of the message.  Header values are unfolded into
 * scratch strallocs and tokenized there (RFC 5322 specials for
 * addresses, RFC 2045 tspecials for MIME fields).  This file: header
 * fields, tokens, MIME fields (RFC 2231), the part tree, BODY[section]
 * and the CRLF view.  ENVELOPE, BODY and BODYSTRUCTURE are mimeimap.c;
 * text decoding for SEARCH (RFC 2047, charsets, transfer encodings,
 * case folding) is mimetext.c; what the three share is mimeint.h. */

#include <errno.h>
#include <string.h>

#include "imapd/mime.h"
#include "imapd/mimeint.h"

/* ---------- small helpers ---------- */

void mimei_trim (char const *s, size_t *start, size_t *end)
{
  while (*start < *end && (iswsp((unsigned char)s[*start]) || s[*start] == '\r' || s[*start] == '\n')) (*start)++ ;
  while (*end > *start && (iswsp((unsigned char)s[*end - 1]) || s[*end - 1] == '\r' || s[*end - 1] == '\n')) (*end)-- ;
}

uint64_t mime_crlf_size (char const *s, size_t len)
{
  uint64_t n = len ;
  size_t i ;
  for (i = 0 ; i < len ; i++) if (s[i] == '\n' && (!i || s[i-1] != '\r')) n++ ;
  return n ;
}

static uint64_t count_lf (char const *s, size_t len)
{
  uint64_t n = 0 ;
  char const *p = s, *e = s + len ;
  while (p < e && (p = memchr(p, '\n', (size_t)(e - p)))) { n++ ; p++ ; }
  return n ;
}

/* appends s[0..len) with bare LFs made CRLF */
static int cat_crlf (stralloc *sa, char const *s, size_t len)
{
  size_t i, from = 0 ;
  for (i = 0 ; i < len ; i++)
    if (s[i] == '\n' && (!i || s[i-1] != '\r'))
    {
      if (!stralloc_catb(sa, s + from, i - from) || !stralloc_catb(sa, "\r\n", 2)) return 0 ;
      from = i + 1 ;
    }
  return stralloc_catb(sa, s + from, len - from) ;
}

/* ---------- header fields ---------- */

/* the next field of [*pos, hend); 0 at the end or at the blank line */
int mimei_hfield_next (char const *s, size_t *pos, size_t hend, struct hfield *f)
{
  size_t p = *pos, nl, colon ;
  char const *q ;
  if (p >= hend || s[p] == '\n' || (s[p] == '\r' && p + 1 < hend && s[p+1] == '\n')) return 0 ;
  f->start = p ;
  for (;;)
  {
    q = memchr(s + p, '\n', hend - p) ;
    if (!q) { p = hend ; break ; }
    p = (size_t)(q - s) + 1 ;
    if (p >= hend || !iswsp((unsigned char)s[p])) break ;
  }
  f->end = p ;
  nl = p ;
  if (nl > f->start && s[nl-1] == '\n') nl-- ;
  if (nl > f->start && s[nl-1] == '\r') nl-- ;
  f->vend = nl ;
  q = memchr(s + f->start, ':', nl - f->start) ;
  colon = q ? (size_t)(q - s) : nl ;
  /* a name is printable ASCII without space; else no field name */
  {
    size_t i, n = colon ;
    while (n > f->start && iswsp((unsigned char)s[n-1])) n-- ;
    for (i = f->start ; i < n ; i++) if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 127) break ;
    if (!q || i < n || n == f->start) { f->namelen = 0 ; f->value = f->vend ; }
    else { f->namelen = n - f->start ; f->value = colon + 1 ; }
  }
  *pos = p ;
  return 1 ;
}

/* where the header starting at start ends: *body after the blank line
   (or lim if none) */
static size_t header_end (char const *s, size_t start, size_t lim)
{
  size_t p = start ;
  while (p < lim)
  {
    char const *q ;
    if (s[p] == '\n') return p + 1 ;
    if (s[p] == '\r' && p + 1 < lim && s[p+1] == '\n') return p + 2 ;
    q = memchr(s + p, '\n', lim - p) ;
    if (!q) return lim ;
    p = (size_t)(q - s) + 1 ;
  }
  return lim ;
}

/* the first field named name in [hdr, hend) */
int mimei_hfield_find (char const *s, size_t hdr, size_t hend, char const *name, struct hfield *f)
{
  size_t pos = hdr, nlen = strlen(name) ;
  while (mimei_hfield_next(s, &pos, hend, f))
    if (f->namelen && cieq(s + f->start, f->namelen, name, nlen)) return 1 ;
  return 0 ;
}

/* appends the value unfolded (CR and LF dropped), trimmed */
int mimei_unfold (stralloc *sa, char const *s, size_t v, size_t vend)
{
  size_t i ;
  mimei_trim(s, &v, &vend) ;
  for (i = v ; i < vend ; i++)
  {
    if (s[i] == '\n' || (s[i] == '\r' && i + 1 < vend && s[i+1] == '\n')) continue ;
    if (!stralloc_catb(sa, s + i, 1)) return 0 ;
  }
  return 1 ;
}

/* ---------- tokens (RFC 5322 / RFC 2045) ---------- */

/* tokenizes v[0..n) into toks, token texts into buf (quoted strings and
   comments unescaped) */
int mimei_tokenize (char const *v, size_t n, int mime, genalloc *toks, stralloc *buf)
{
  char const *specials = mime ? "()<>@,;:\\\"/[]?=" : "()<>@,;:\\\".[]" ;
  size_t i = 0 ;
  genalloc_setlen(struct tok, toks, 0) ;
  buf->len = 0 ;
  while (i < n)
  {
    struct tok t ;
    unsigned char c = v[i] ;
    if (iswsp(c) || c == '\r' || c == '\n') { i++ ; continue ; }
    t.off = buf->len ; t.c = 0 ;
    if (c == '"' || c == '(')
    {
      int depth = 1 ;
      t.type = c == '"' ? T_QSTR : T_COMMENT ;
      for (i++ ; i < n ; i++)
      {
        c = v[i] ;
        if (c == '\\' && i + 1 < n) { i++ ; if (!stralloc_catb(buf, v + i, 1)) return 0 ; continue ; }
        if (t.type == T_QSTR && c == '"') { i++ ; break ; }
        if (t.type == T_COMMENT && c == '(') depth++ ;
        if (t.type == T_COMMENT && c == ')' && !--depth) { i++ ; break ; }
        if (c == '\r' || c == '\n') continue ;
        if (!stralloc_catb(buf, v + i, 1)) return 0 ;
      }
    }
    else if (c == '[' && !mime)
    {
      size_t j = i + 1 ;
      while (j < n && v[j] != ']') { if (v[j] == '\\' && j + 1 < n) j++ ; j++ ; }
      if (j < n) j++ ;
      t.type = T_DLIT ;
      if (!stralloc_catb(buf, v + i, j - i)) return 0 ;
      i = j ;
    }
    else if (c < 128 && strchr(specials, c))
    {
      t.type = T_SPECIAL ; t.c = c ; i++ ;
    }
    else
    {
      size_t j = i ;
      t.type = T_ATOM ;
      if (!mime && c == '=' && i + 1 < n && v[i+1] == '?')
      {
        /* an encoded word is one atom even with specials inside */
        size_t k = i + 2, q = 0 ;
        while (k < n && !iswsp((unsigned char)v[k]) && v[k] != '\r' && v[k] != '\n')
        {
          if (v[k] == '?') q++ ;
          if (q >= 3 && v[k] == '=' && v[k-1] == '?') { k++ ; break ; }
          k++ ;
        }
        if (q >= 3 && v[k-1] == '=' && v[k-2] == '?') j = k ;
      }
      if (j == i)
        while (j < n)
        {
          unsigned char d = v[j] ;
          if (iswsp(d) || d == '\r' || d == '\n' || d < 32 || d == 127 || (d < 128 && strchr(specials, d))) break ;
          j++ ;
        }
      if (j == i) { i++ ; continue ; }   /* a control character */
      if (!stralloc_catb(buf, v + i, j - i)) return 0 ;
      i = j ;
    }
    t.len = buf->len - t.off ;
    if (!genalloc_append(struct tok, toks, &t)) return 0 ;
  }
  return 1 ;
}

/* ---------- MIME fields: type, parameters (RFC 2231) ---------- */

void mimei_mfield_free (struct mfield *f)
{
  genalloc_free(struct param, &f->params) ;
  genalloc_free(struct tok, &f->toks) ;
  stralloc_free(&f->buf) ;
  stralloc_free(&f->val) ;
}

/* appends sa->s[off..off+len) to sa itself */
static int cat_self (stralloc *sa, size_t off, size_t len)
{
  if (!stralloc_readyplus(sa, len)) return 0 ;
  memmove(sa->s + sa->len, sa->s + off, len) ;
  sa->len += len ;
  return 1 ;
}

/* name*N*, name*N, name*: the base length, section, extended */
static int p2231 (char const *s, size_t len, size_t *baselen, unsigned *sect, int *ext)
{
  char const *st = memchr(s, '*', len) ;
  size_t i ;
  unsigned n = 0 ;
  if (!st || st == s) return 0 ;
  *baselen = (size_t)(st - s) ;
  i = *baselen + 1 ;
  *ext = 0 ;
  *sect = 0 ;
  if (i == len) { *ext = 1 ; return 2 ; }   /* name*: one extended value */
  if (s[i] < '0' || s[i] > '9' || (s[i] == '0' && i + 1 < len && s[i+1] >= '0' && s[i+1] <= '9')) return 0 ;
  while (i < len && s[i] >= '0' && s[i] <= '9') { if (n > 9999) return 0 ; n = n * 10 + (unsigned)(s[i++] - '0') ; }
  if (i < len && s[i] == '*') { *ext = 1 ; i++ ; }
  if (i != len) return 0 ;
  *sect = n ;
  return 1 ;
}

/* parses the value of a Content-Type (withsub) or Content-Disposition
   field s[v..vend) */
int mimei_mfield_parse (struct mfield *f, char const *s, size_t v, size_t vend, int withsub)
{
  struct tok const *t ;
  genalloc raw = GENALLOC_ZERO ;
  size_t n, i = 0, k ;
  struct param p ;
  int ok = 0 ;
  f->found = 1 ; f->valid = 0 ;
  genalloc_setlen(struct param, &f->params, 0) ;
  f->val.len = 0 ;
  if (!mimei_unfold(&f->val, s, v, vend)) return 0 ;
  if (!mimei_tokenize(f->val.s, f->val.len, 1, &f->toks, &f->buf)) return 0 ;
  t = genalloc_s(struct tok, &f->toks) ;
  n = genalloc_len(struct tok, &f->toks) ;
  while (i < n && t[i].type == T_COMMENT) i++ ;
  if (i >= n || t[i].type != T_ATOM) return 1 ;
  f->type = t[i].off ; f->typelen = t[i].len ; i++ ;
  if (withsub)
  {
    while (i < n && t[i].type == T_COMMENT) i++ ;
    if (i >= n || t[i].type != T_SPECIAL || t[i].c != '/') return 1 ;
    i++ ;
    while (i < n && t[i].type == T_COMMENT) i++ ;
    if (i >= n || t[i].type != T_ATOM) return 1 ;
    f->subtype = t[i].off ; f->subtypelen = t[i].len ; i++ ;
  }
  f->valid = 1 ;
  /* ; name = value, leniently: junk skipped up to the next ';' */
  while (i < n)
  {
    size_t j ;
    if (!(t[i].type == T_SPECIAL && t[i].c == ';')) { i++ ; continue ; }
    i++ ;
    while (i < n && t[i].type == T_COMMENT) i++ ;
    if (i >= n || t[i].type != T_ATOM) continue ;
    j = i + 1 ;
    while (j < n && t[j].type == T_COMMENT) j++ ;
    if (j >= n || t[j].type != T_SPECIAL || t[j].c != '=') { i = j ; continue ; }
    j++ ;
    while (j < n && t[j].type == T_COMMENT) j++ ;
    if (j >= n || (t[j].type != T_ATOM && t[j].type != T_QSTR)) { i = j ; continue ; }
    p.name = t[i].off ; p.namelen = t[i].len ;
    p.value = t[j].off ; p.valuelen = t[j].len ;
    /* a value of several tokens (a=b/c unquoted): up to the next ';' */
    for (k = j + 1 ; k < n && !(t[k].type == T_SPECIAL && t[k].c == ';') ; k++)
      if (t[k].type != T_COMMENT) p.valuelen = t[k].off + t[k].len - p.value ;
    if (!genalloc_append(struct param, &raw, &p)) goto end ;
    i = k ;
  }
  /* RFC 2231: sections of one name merged in place of the first */
  {
    struct param *r = genalloc_s(struct param, &raw) ;
    size_t nr = genalloc_len(struct param, &raw) ;
    for (i = 0 ; i < nr ; i++)
    {
      size_t bl, bl2 ;
      unsigned sect, sect2, want ;
      int ext, ext2, kind = r[i].namelen ? p2231(f->buf.s + r[i].name, r[i].namelen, &bl, &sect, &ext) : 0 ;
      if (!r[i].namelen) continue ;
      if (!kind)
      {
        if (!genalloc_append(struct param, &f->params, &r[i])) goto end ;
        continue ;
      }
      /* the sections 0, 1, ... of this base name, in order */
      {
        size_t nameoff = f->buf.len, valoff ;
        int anyext = 0 ;
        for (k = i ; k < nr ; k++)
          if (r[k].namelen && p2231(f->buf.s + r[k].name, r[k].namelen, &bl2, &sect2, &ext2) == kind
           && cieq(f->buf.s + r[i].name, bl, f->buf.s + r[k].name, bl2) && sect2 == 0 && ext2) anyext = 1 ;
        if (!cat_self(&f->buf, r[i].name, bl) || (anyext && !stralloc_catb(&f->buf, "*", 1))) goto end ;
        valoff = f->buf.len ;
        for (want = 0 ; ; want++)
        {
          int got = 0 ;
          for (k = i ; k < nr ; k++)
          {
            if (!r[k].namelen) continue ;
            if (p2231(f->buf.s + r[k].name, r[k].namelen, &bl2, &sect2, &ext2) != kind
             || !cieq(f->buf.s + r[i].name, bl, f->buf.s + r[k].name, bl2) || sect2 != want) continue ;
            if (!got)
            {
              size_t q ;
              got = 1 ;
              if (anyext && !ext2)   /* a plain section in an encoded value */
                for (q = 0 ; q < r[k].valuelen ; q++)
                {
                  unsigned char c = f->buf.s[r[k].value + q] ;
                  if (c == '%' || c <= ' ' || c >= 127 || c == '\'')
                  {
                    char hx[3] = { '%', "0123456789ABCDEF"[c >> 4], "0123456789ABCDEF"[c & 15] } ;
                    if (!stralloc_catb(&f->buf, hx, 3)) goto end ;
                  }
                  else if (!stralloc_catb(&f->buf, (char *)&c, 1)) goto end ;
                }
              else if (!cat_self(&f->buf, r[k].value, r[k].valuelen)) goto end ;
            }
            if (k != i) r[k].namelen = 0 ;   /* consumed (duplicates too) */
          }
          if (!got || kind == 2) break ;
        }
        /* sections after a gap are dropped */
        for (k = i + 1 ; k < nr ; k++)
          if (r[k].namelen && p2231(f->buf.s + r[k].name, r[k].namelen, &bl2, &sect2, &ext2) == kind
           && cieq(f->buf.s + r[i].name, bl, f->buf.s + r[k].name, bl2)) r[k].namelen = 0 ;
        p.name = nameoff ; p.namelen = valoff - nameoff ;
        p.value = valoff ; p.valuelen = f->buf.len - valoff ;
        if (!genalloc_append(struct param, &f->params, &p)) goto end ;
        r = genalloc_s(struct param, &raw) ;
      }
    }
  }
  ok = 1 ;
 end:
  genalloc_free(struct param, &raw) ;
  return ok ;
}

/* the parameter name's value (RFC 2231-merged name, exact name match) */
int mimei_mfield_param (struct mfield const *f, char const *name, size_t *v, size_t *vlen)
{
  struct param const *p = genalloc_s(struct param, &f->params) ;
  size_t i, n = genalloc_len(struct param, &f->params) ;
  for (i = 0 ; i < n ; i++)
    if (cieqs(f->buf.s + p[i].name, p[i].namelen, name)) { *v = p[i].value ; *vlen = p[i].valuelen ; return 1 ; }
  return 0 ;
}

/* ---------- parsing ---------- */

static int pool_lower (stralloc *pool, char const *s, size_t len, size_t *off)
{
  size_t i ;
  *off = pool->len ;
  if (!stralloc_readyplus(pool, len)) return 0 ;
  for (i = 0 ; i < len ; i++) pool->s[pool->len++] = lc((unsigned char)s[i]) ;
  return 1 ;
}

#define P(m, i) (mime_parts(m)[i])

static int add_part (struct mime *m, uint32_t parent, uint32_t depth, size_t start, size_t hend, size_t end, uint32_t *idx)
{
  struct mime_part p ;
  memset(&p, 0, sizeof p) ;
  p.hdr = start ; p.body = hend ; p.end = end ;
  p.parent = parent ; p.child = p.next = MIME_NOPART ;
  p.depth = depth ;
  p.hdrsize = mime_crlf_size(m->msg + start, hend - start) ;
  p.bodysize = mime_crlf_size(m->msg + hend, end - hend) ;
  p.lines = count_lf(m->msg + hend, end - hend) ;
  *idx = (uint32_t)mime_nparts(m) ;
  if (!genalloc_append(struct mime_part, &m->parts, &p)) return 0 ;
  if (parent != MIME_NOPART)
  {
    if (P(m, parent).child == MIME_NOPART) P(m, parent).child = *idx ;
    else
    {
      uint32_t c = P(m, parent).child ;
      while (P(m, c).next != MIME_NOPART) c = P(m, c).next ;
      P(m, c).next = *idx ;
    }
    P(m, parent).nchildren++ ;
  }
  return 1 ;
}

/* whether [p, lim) starts a delimiter line of b: "--b", maybe "--",
   blanks; *close, *next (after the line end) */
static int is_delim (char const *s, size_t p, size_t lim, char const *b, size_t blen, int *close, size_t *next)
{
  size_t q ;
  if (lim - p < blen + 2 || s[p] != '-' || s[p+1] != '-' || memcmp(s + p + 2, b, blen)) return 0 ;
  q = p + 2 + blen ;
  *close = 0 ;
  if (q + 1 < lim && s[q] == '-' && s[q+1] == '-') { *close = 1 ; q += 2 ; }
  while (q < lim && (iswsp((unsigned char)s[q]) || s[q] == '\r')) q++ ;
  if (q < lim && s[q] != '\n') return 0 ;
  *next = q < lim ? q + 1 : lim ;
  return 1 ;
}

static int parse_entity (struct mime *m, uint32_t parent, uint32_t depth, size_t start, size_t end, int ismessage, int indigest, uint32_t *out) ;

static int parse_multipart (struct mime *m, uint32_t idx, uint32_t depth, char const *b, size_t blen, int digest)
{
  char const *s = m->msg ;
  size_t body = P(m, idx).body, end = P(m, idx).end ;
  size_t p = body, partstart = 0 ;
  int inpart = 0 ;
  uint32_t c ;
  while (p < end)
  {
    int close ;
    size_t next ;
    char const *q ;
    if (is_delim(s, p, end, b, blen, &close, &next))
    {
      if (inpart)
      {
        size_t pe = p ;
        if (pe > partstart && s[pe-1] == '\n') pe-- ;
        if (pe > partstart && s[pe-1] == '\r') pe-- ;
        if (mime_nparts(m) >= MIME_MAXPARTS) { m->truncated = 1 ; return 1 ; }
        if (!parse_entity(m, idx, depth + 1, partstart, pe, 0, digest, &c)) return 0 ;
      }
      P(m, idx).hasboundary = 1 ;
      if (close) return 1 ;
      inpart = 1 ; partstart = next ;
      p = next ;
      continue ;
    }
    q = memchr(s + p, '\n', end - p) ;
    if (!q) break ;
    p = (size_t)(q - s) + 1 ;
  }
  if (inpart)
  {
    if (mime_nparts(m) >= MIME_MAXPARTS) { m->truncated = 1 ; return 1 ; }
    if (!parse_entity(m, idx, depth + 1, partstart, end, 0, digest, &c)) return 0 ;
  }
  return 1 ;
}

static int parse_entity (struct mime *m, uint32_t parent, uint32_t depth, size_t start, size_t end, int ismessage, int indigest, uint32_t *out)
{
  char const *s = m->msg ;
  size_t hend = header_end(s, start, end) ;
  uint32_t idx ;
  struct hfield hf ;
  struct mfield ct = MFIELD_ZERO ;
  char const *type = "text", *sub = "plain" ;
  size_t typelen = 4, sublen = 5 ;
  int ok = 0 ;
  if (!add_part(m, parent, depth, start, hend, end, &idx)) return 0 ;
  *out = idx ;
  P(m, idx).ismessage = ismessage ;
  if (indigest) { type = "message" ; typelen = 7 ; sub = "rfc822" ; sublen = 6 ; }
  if (mimei_hfield_find(s, start, hend, "content-type", &hf))
  {
    if (!mimei_mfield_parse(&ct, s, hf.value, hf.vend, 1)) goto end ;
    if (ct.valid)
    {
      type = ct.buf.s + ct.type ; typelen = ct.typelen ;
      sub = ct.buf.s + ct.subtype ; sublen = ct.subtypelen ;
    }
    else { type = "text" ; typelen = 4 ; sub = "plain" ; sublen = 5 ; }
  }
  if (!pool_lower(&m->pool, type, typelen, &P(m, idx).type)) goto end ;
  P(m, idx).typelen = typelen ;
  if (!pool_lower(&m->pool, sub, sublen, &P(m, idx).subtype)) goto end ;
  P(m, idx).subtypelen = sublen ;
  P(m, idx).istext = cieqs(type, typelen, "text") ;
  {
    char const *enc = "7bit" ;
    size_t enclen = 4 ;
    stralloc v = STRALLOC_ZERO ;
    if (mimei_hfield_find(s, start, hend, "content-transfer-encoding", &hf))
    {
      size_t i = 0 ;
      if (!mimei_unfold(&v, s, hf.value, hf.vend)) { stralloc_free(&v) ; goto end ; }
      while (i < v.len && !iswsp((unsigned char)v.s[i]) && v.s[i] != '(' && v.s[i] != ';') i++ ;
      if (i) { enc = v.s ; enclen = i ; }
    }
    if (!pool_lower(&m->pool, enc, enclen, &P(m, idx).encoding)) { stralloc_free(&v) ; goto end ; }
    P(m, idx).encodinglen = enclen ;
    stralloc_free(&v) ;
  }
  if (m->headeronly) ;
  else if (cieqs(type, typelen, "multipart"))
  {
    size_t bv, blen ;
    P(m, idx).kind = MIME_MULTIPART ;
    if (depth + 1 >= MIME_MAXDEPTH) m->truncated = 1 ;
    else if (mimei_mfield_param(&ct, "boundary", &bv, &blen) && blen && blen <= 998)
    {
      if (!parse_multipart(m, idx, depth, ct.buf.s + bv, blen, cieqs(sub, sublen, "digest"))) goto end ;
    }
  }
  else if (cieqs(type, typelen, "message") && (cieqs(sub, sublen, "rfc822") || cieqs(sub, sublen, "global")))
  {
    char const *e = m->pool.s + P(m, idx).encoding ;
    size_t el = P(m, idx).encodinglen ;
    uint32_t c ;
    P(m, idx).kind = MIME_MESSAGE ;
    if (depth + 1 >= MIME_MAXDEPTH || mime_nparts(m) >= MIME_MAXPARTS)
    {
      m->truncated = 1 ;
      if (!add_part(m, idx, depth + 1, end, end, end, &c)) goto end ;
      P(m, c).ismessage = 1 ;
      if (!pool_lower(&m->pool, "text", 4, &P(m, c).type) || !pool_lower(&m->pool, "plain", 5, &P(m, c).subtype)
       || !pool_lower(&m->pool, "7bit", 4, &P(m, c).encoding)) goto end ;
      P(m, c).typelen = 4 ; P(m, c).subtypelen = 5 ; P(m, c).encodinglen = 4 ; P(m, c).istext = 1 ;
    }
    else if (cieqs(e, el, "7bit") || cieqs(e, el, "8bit") || cieqs(e, el, "binary"))
    {
      if (!parse_entity(m, idx, depth + 1, P(m, idx).body, end, 1, 0, &c)) goto end ;
    }
    else
    {
      /* an encoded message is not looked into (as Dovecot): empty */
      if (!parse_entity(m, idx, depth + 1, end, end, 1, 0, &c)) goto end ;
    }
  }
  ok = 1 ;
 end:
  mimei_mfield_free(&ct) ;
  return ok ;
}

int mime_parse (struct mime *m, char const *msg, size_t len)
{
  uint32_t idx ;
  m->msg = msg ; m->len = len ; m->truncated = 0 ; m->header = 0 ; m->headeronly = 0 ;
  genalloc_setlen(struct mime_part, &m->parts, 0) ;
  m->pool.len = 0 ;
  if (!parse_entity(m, MIME_NOPART, 0, 0, len, 1, 0, &idx)) { errno = ENOMEM ; return 0 ; }
  return 1 ;
}

/* the header only: part 0 with its type fields, no children */
int mime_parse_header (struct mime *m, char const *msg, size_t len)
{
  uint32_t idx ;
  m->msg = msg ; m->len = len ; m->truncated = 0 ;
  genalloc_setlen(struct mime_part, &m->parts, 0) ;
  m->pool.len = 0 ;
  m->headeronly = 1 ;
  if (!parse_entity(m, MIME_NOPART, 0, 0, header_end(msg, 0, len), 1, 0, &idx)) { m->headeronly = 0 ; errno = ENOMEM ; return 0 ; }
  m->headeronly = 0 ;
  m->header = 1 ;
  return 1 ;
}

size_t mime_header_length (char const *s, size_t len)
{
  size_t p = 0 ;
  while (p < len)
  {
    char const *q ;
    if (s[p] == '\n') return p + 1 ;
    if (s[p] == '\r' && p + 1 < len && s[p+1] == '\n') return p + 2 ;
    q = memchr(s + p, '\n', len - p) ;
    if (!q) return 0 ;
    p = (size_t)(q - s) + 1 ;
  }
  return 0 ;
}

char const *const mime_cached_fields[] =
{
  "date", "subject", "from", "sender", "reply-to", "to", "cc", "bcc",
  "in-reply-to", "message-id", "references", "content-type", "newsgroups",
  "priority", "x-priority", "importance", "list-id", "list-post",
  "x-mailer", "user-agent", 0
} ;

int mime_header_subset (stralloc *sa, char const *s, size_t len, char const *const *names)
{
  size_t pos = 0, hend = header_end(s, 0, len), mark = sa->len ;
  struct hfield f ;
  while (mimei_hfield_next(s, &pos, hend, &f))
  {
    size_t k ;
    if (!f.namelen) continue ;
    for (k = 0 ; names[k] ; k++) if (cieqs(s + f.start, f.namelen, names[k])) break ;
    if (!names[k]) continue ;
    if (f.end == f.start || s[f.end - 1] != '\n') { sa->len = mark ; return 0 ; }
    if (!stralloc_catb(sa, s + f.start, f.end - f.start)) { sa->len = mark ; return -1 ; }
  }
  return 1 ;
}

void mime_free (struct mime *m)
{
  genalloc_free(struct mime_part, &m->parts) ;
  stralloc_free(&m->pool) ;
  stralloc_free(&m->tmp) ;
  m->msg = 0 ; m->len = 0 ; m->truncated = 0 ; m->header = 0 ; m->headeronly = 0 ;
}

/* ---------- BODY[section] ---------- */

static uint32_t nth_child (struct mime const *m, uint32_t i, uint32_t n)
{
  uint32_t c = mime_parts(m)[i].child ;
  while (c != MIME_NOPART && --n) c = mime_parts(m)[c].next ;
  return c ;
}

/* part n under cur (cur is the message itself when first) */
static uint32_t step (struct mime const *m, uint32_t cur, uint32_t n, int first)
{
  struct mime_part const *p = mime_parts(m) + cur ;
  if (!first && p->kind == MIME_MESSAGE)
  {
    cur = p->child ;
    if (cur == MIME_NOPART) return MIME_NOPART ;
    p = mime_parts(m) + cur ;
    if (p->kind != MIME_MULTIPART) return n == 1 ? cur : MIME_NOPART ;
    return nth_child(m, cur, n) ;
  }
  if (p->kind == MIME_MULTIPART) return nth_child(m, cur, n) ;
  return first && n == 1 ? cur : MIME_NOPART ;
}

static int isatomchar (unsigned char c)
{
  return c > ' ' && c < 127 && !strchr("(){%*\"\\]", c) ;
}

/* the next header-fld-name of the list at *i: 1 and s[*a..*a+*alen)
   (escapes kept: names with quotes or backslashes never match), 0 at ')',
   -1 on a syntax error */
static int list_next (char const *s, size_t len, size_t *i, size_t *a, size_t *alen)
{
  while (*i < len && s[*i] == ' ') (*i)++ ;
  if (*i >= len) return -1 ;
  if (s[*i] == ')') return 0 ;
  if (s[*i] == '"')
  {
    size_t j = *i + 1 ;
    while (j < len && s[j] != '"') { if (s[j] == '\\') j++ ; j++ ; }
    if (j >= len) return -1 ;
    *a = *i + 1 ; *alen = j - *a ; *i = j + 1 ;
  }
  else
  {
    size_t j = *i ;
    while (j < len && isatomchar((unsigned char)s[j])) j++ ;
    if (j == *i) return -1 ;
    *a = *i ; *alen = j - *i ; *i = j ;
  }
  if (*i < len && s[*i] != ' ' && s[*i] != ')') return -1 ;
  return 1 ;
}

static int match_word (char const *spec, size_t len, size_t *i, char const *w)
{
  size_t n = strlen(w) ;
  if (len - *i < n || !cieq(spec + *i, n, w, n)) return 0 ;
  *i += n ;
  return 1 ;
}

int mime_section (struct mime const *m, char const *spec, size_t len, struct mime_section *sec, stralloc *built)
{
  size_t i = 0 ;
  uint32_t cur = 0 ;
  int numbered = 0, nopart = 0 ;
  enum { S_ALL, S_HEADER, S_FIELDS, S_NOT, S_TEXT, S_MIME } what = S_ALL ;
  size_t list = 0 ;
  if (!mime_nparts(m)) return MIME_SECT_NOPART ;
  while (i < len && spec[i] >= '0' && spec[i] <= '9')
  {
    uint64_t n = 0 ;
    if (spec[i] == '0') return MIME_SECT_SYNTAX ;
    while (i < len && spec[i] >= '0' && spec[i] <= '9') { n = n * 10 + (uint64_t)(spec[i++] - '0') ; if (n > UINT32_MAX) return MIME_SECT_SYNTAX ; }
    if (!nopart)
    {
      cur = step(m, cur, (uint32_t)n, !numbered) ;
      if (cur == MIME_NOPART) { nopart = 1 ; cur = 0 ; }
    }
    numbered = 1 ;
    if (i == len) break ;
    if (spec[i] != '.') return MIME_SECT_SYNTAX ;
    i++ ;
    if (i == len) return MIME_SECT_SYNTAX ;
  }
  if (i < len)
  {
    if (match_word(spec, len, &i, "HEADER.FIELDS.NOT")) what = S_NOT ;
    else if (match_word(spec, len, &i, "HEADER.FIELDS")) what = S_FIELDS ;
    else if (match_word(spec, len, &i, "HEADER")) what = S_HEADER ;
    else if (match_word(spec, len, &i, "TEXT")) what = S_TEXT ;
    else if (numbered && match_word(spec, len, &i, "MIME")) what = S_MIME ;
    else return MIME_SECT_SYNTAX ;
    if (what == S_FIELDS || what == S_NOT)
    {
      size_t a, al ;
      int r, count = 0 ;
      if (i + 1 >= len || spec[i] != ' ' || spec[i+1] != '(') return MIME_SECT_SYNTAX ;
      i += 2 ;
      list = i ;
      while ((r = list_next(spec, len, &i, &a, &al)) == 1) count++ ;
      if (r < 0 || !count) return MIME_SECT_SYNTAX ;
      i++ ;
    }
    if (i != len) return MIME_SECT_SYNTAX ;
  }
  if (nopart) return MIME_SECT_NOPART ;
  sec->part = cur ; sec->built = 0 ;
  {
    struct mime_part const *p = mime_parts(m) + cur ;
    struct mime_part const *msg = p ;
    if (what == S_HEADER || what == S_FIELDS || what == S_NOT || what == S_TEXT)
    {
      if (numbered)
      {
        if (p->kind != MIME_MESSAGE || p->child == MIME_NOPART) return MIME_SECT_NOPART ;
        msg = mime_parts(m) + p->child ;
      }
    }
    switch (what)
    {
      case S_ALL :
        if (numbered) { sec->start = p->body ; sec->end = p->end ; }
        else { sec->start = 0 ; sec->end = m->len ; }
        break ;
      case S_MIME : sec->start = p->hdr ; sec->end = p->body ; break ;
      case S_HEADER : sec->start = msg->hdr ; sec->end = msg->body ; break ;
      case S_TEXT : sec->start = msg->body ; sec->end = msg->end ; break ;
      default :
      {
        size_t pos = msg->hdr, mark = built->len ;
        struct hfield f ;
        while (mimei_hfield_next(m->msg, &pos, msg->body, &f))
        {
          size_t j = list, a, al ;
          int hit = 0 ;
          if (!f.namelen) continue ;
          while (list_next(spec, len, &j, &a, &al) == 1)
            if (cieq(spec + a, al, m->msg + f.start, f.namelen)) { hit = 1 ; break ; }
          if (hit != (what == S_FIELDS)) continue ;
          if (!cat_crlf(built, m->msg + f.start, f.end - f.start)) return MIME_SECT_NOMEM ;
          if (f.end == f.start || m->msg[f.end - 1] != '\n')
            if (!stralloc_catb(built, "\r\n", 2)) return MIME_SECT_NOMEM ;
        }
        if (!stralloc_catb(built, "\r\n", 2)) return MIME_SECT_NOMEM ;
        sec->built = 1 ;
        sec->start = mark ; sec->end = built->len ;
        sec->size = built->len - mark ;
        return MIME_SECT_OK ;
      }
    }
  }
  sec->size = mime_crlf_size(m->msg + sec->start, sec->end - sec->start) ;
  return MIME_SECT_OK ;
}

/* ---------- CRLF view ---------- */

void mime_crlf_start (struct mime_crlf *c, char const *s, size_t len, uint64_t off)
{
  uint64_t at = 0 ;
  c->s = s ; c->len = len ; c->pos = 0 ; c->lfpending = 0 ;
  while (c->pos < len && at < off)
  {
    if (s[c->pos] == '\n' && (!c->pos || s[c->pos - 1] != '\r'))
    {
      if (at + 1 == off) { c->pos++ ; c->lfpending = 1 ; return ; }
      at += 2 ;
    }
    else at++ ;
    c->pos++ ;
  }
}

size_t mime_crlf_read (struct mime_crlf *c, char *buf, size_t max)
{
  size_t n = 0 ;
  while (n < max)
  {
    if (c->lfpending) { buf[n++] = '\n' ; c->lfpending = 0 ; continue ; }
    if (c->pos >= c->len) break ;
    if (c->s[c->pos] == '\n' && (!c->pos || c->s[c->pos - 1] != '\r'))
    {
      buf[n++] = '\r' ; c->lfpending = 1 ; c->pos++ ;
      continue ;
    }
    buf[n++] = c->s[c->pos++] ;
  }
  return n ;
}
