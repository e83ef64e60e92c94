/* imapd/mimeimap.c: the IMAP forms of a parsed message's header
 * fields; see mime.h.
 *
 * IMAP strings (quoted or literal, nstrings), the address lists of
 * RFC 5322 as ENVELOPE shows them (groups, routes, a comment naming a
 * nameless address, defaults for missing parts), ENVELOPE, and BODY and
 * BODYSTRUCTURE with their extension data.  The part tree, header field
 * scanning and tokens are mime.c's (mimeint.h). */

#include <string.h>

#include "imapd/mime.h"
#include "imapd/mimeint.h"

/* ---------- IMAP strings ---------- */

int mime_imapstring (stralloc *sa, char const *s, size_t len)
{
  size_t i ;
  int lit = len > 1000 ;
  for (i = 0 ; i < len && !lit ; i++)
  {
    unsigned char c = s[i] ;
    if (c == '\r' || c == '\n' || !c || c >= 128) lit = 1 ;
  }
  if (lit)
  {
    char fmt[32] ;
    size_t n = 0, k ;
    uint64_t v = len ;
    char tmp[24] ;
    do { tmp[n++] = '0' + v % 10 ; v /= 10 ; } while (v) ;
    fmt[0] = '{' ;
    for (k = 0 ; k < n ; k++) fmt[1 + k] = tmp[n - 1 - k] ;
    memcpy(fmt + 1 + n, "}\r\n", 3) ;
    if (!stralloc_catb(sa, fmt, n + 4)) return 0 ;
    if (!stralloc_readyplus(sa, len)) return 0 ;
    for (i = 0 ; i < len ; i++) sa->s[sa->len++] = s[i] ? s[i] : '?' ;   /* no NUL in IMAP4rev1 literals */
    return 1 ;
  }
  if (!stralloc_readyplus(sa, 2 * len + 2)) return 0 ;
  sa->s[sa->len++] = '"' ;
  for (i = 0 ; i < len ; i++)
  {
    if (s[i] == '"' || s[i] == '\\') sa->s[sa->len++] = '\\' ;
    sa->s[sa->len++] = s[i] ;
  }
  sa->s[sa->len++] = '"' ;
  return 1 ;
}

static int nstring (stralloc *sa, char const *s, size_t len)
{
  return len ? mime_imapstring(sa, s, len) : stralloc_cats(sa, "NIL") ;
}

/* the unfolded, trimmed value of the first field name of [hdr, hend), as
   an nstring (NIL if absent or empty) */
static int field_nstring (stralloc *sa, char const *s, size_t hdr, size_t hend, char const *name, stralloc *tmp)
{
  struct hfield f ;
  if (!mimei_hfield_find(s, hdr, hend, name, &f)) return stralloc_cats(sa, "NIL") ;
  tmp->len = 0 ;
  if (!mimei_unfold(tmp, s, f.value, f.vend)) return 0 ;
  return nstring(sa, tmp->s, tmp->len) ;
}

/* ---------- addresses ---------- */

struct actx
{
  struct tok const *t ;
  size_t n, i ;
  char const *b ;          /* token texts */
  stralloc *sa ;
  stralloc name, local, domain, adl ;
  size_t count ;
  size_t comment ;         /* the last comment seen in a domain */
} ;

#define TOK(a, k) ((a)->t[k])
#define ISSP(a, k, ch) ((k) < (a)->n && (a)->t[k].type == T_SPECIAL && (a)->t[k].c == (ch))

static int emit_addr (struct actx *a, char const *name, size_t namelen, char const *adl, size_t adllen,
                      char const *mbox, size_t mboxlen, char const *host, size_t hostlen, int group)
{
  stralloc *sa = a->sa ;
  a->count++ ;
  if (!stralloc_catb(sa, "(", 1) || !nstring(sa, name, namelen) || !stralloc_catb(sa, " ", 1)
   || !nstring(sa, adl, adllen) || !stralloc_catb(sa, " ", 1)) return 0 ;
  if (group) { if (!nstring(sa, mbox, mboxlen) || !stralloc_cats(sa, " NIL)")) return 0 ; return 1 ; }
  if (!mboxlen) { mbox = "MISSING_MAILBOX" ; mboxlen = 15 ; }
  if (!hostlen) { host = "MISSING_DOMAIN" ; hostlen = 14 ; }
  return mime_imapstring(sa, mbox, mboxlen) && stralloc_catb(sa, " ", 1)
      && mime_imapstring(sa, host, hostlen) && stralloc_catb(sa, ")", 1) ;
}

/* whether a quoted local part can go bare (a dot-atom) */
static int dotatom (char const *s, size_t len)
{
  size_t i ;
  if (!len || s[0] == '.' || s[len-1] == '.') return 0 ;
  for (i = 0 ; i < len ; i++)
  {
    unsigned char c = s[i] ;
    if (c <= ' ' || c == 127 || (c < 128 && strchr("()<>@,;:\\\"[]", c))) return 0 ;
    if (c == '.' && s[i+1] == '.') return 0 ;
  }
  return 1 ;
}

/* appends a word of a local part: a quoted string re-quoted if needed */
static int cat_localword (stralloc *sa, struct tok const *t, char const *b)
{
  size_t i ;
  if (t->type != T_QSTR || dotatom(b + t->off, t->len)) return stralloc_catb(sa, b + t->off, t->len) ;
  if (!stralloc_catb(sa, "\"", 1)) return 0 ;
  for (i = 0 ; i < t->len ; i++)
  {
    if ((b[t->off + i] == '"' || b[t->off + i] == '\\') && !stralloc_catb(sa, "\\", 1)) return 0 ;
    if (!stralloc_catb(sa, b + t->off + i, 1)) return 0 ;
  }
  return stralloc_catb(sa, "\"", 1) ;
}

/* a domain: atoms and dots, or a domain literal, from a->i on */
static int parse_domain (struct actx *a, stralloc *out)
{
  out->len = 0 ;
  while (a->i < a->n)
  {
    struct tok const *t = &TOK(a, a->i) ;
    if (t->type == T_COMMENT) { a->comment = a->i++ ; continue ; }
    if (t->type == T_ATOM || t->type == T_DLIT) { if (!stralloc_catb(out, a->b + t->off, t->len)) return 0 ; }
    else if (t->type == T_SPECIAL && t->c == '.') { if (!stralloc_catb(out, ".", 1)) return 0 ; }
    else break ;
    a->i++ ;
  }
  return 1 ;
}

/* The words from a->i up to token k into a->name, one space between
 * words, '.' kept, comments and other specials left out: a group's
 * display name or a name-addr's phrase.  Returns 0 on ENOMEM. */
static int phrase (struct actx *a, size_t k)
{
  for (; a->i < k ; a->i++)
  {
    struct tok const *t = &TOK(a, a->i) ;
    if (t->type == T_COMMENT) continue ;
    if (t->type == T_SPECIAL && t->c != '.') continue ;
    if (a->name.len && t->c != '.' && !stralloc_catb(&a->name, " ", 1)) return 0 ;
    if (!stralloc_catb(&a->name, t->c == '.' ? "." : a->b + t->off, t->c == '.' ? 1 : t->len)) return 0 ;
  }
  return 1 ;
}

/* one mailbox or group at a->i; ingroup: a ';' ends the group */
static int parse_one (struct actx *a, int ingroup)
{
  size_t start = a->i, k ;
  size_t comment = (size_t)-1 ;
  a->name.len = a->local.len = a->domain.len = a->adl.len = 0 ;
  a->comment = (size_t)-1 ;
  /* find what this element is */
  for (k = a->i ; k < a->n ; k++)
  {
    struct tok const *t = &TOK(a, k) ;
    if (t->type == T_SPECIAL && strchr("<:@,;", t->c)) break ;
  }
  if (ISSP(a, k, ':') && !ingroup)
  {
    if (!phrase(a, k)) return 0 ;
    a->i = k + 1 ;
    if (!emit_addr(a, 0, 0, 0, 0, a->name.s, a->name.len, 0, 0, 1)) return 0 ;
    while (a->i < a->n && !ISSP(a, a->i, ';'))
    {
      if (ISSP(a, a->i, ',') || ISSP(a, a->i, ':')) { a->i++ ; continue ; }
      if (!parse_one(a, 1)) return 0 ;
    }
    if (a->i < a->n) a->i++ ;
    return emit_addr(a, 0, 0, 0, 0, 0, 0, 0, 0, 1) ;
  }
  if (ISSP(a, k, '<'))
  {
    /* name-addr: phrase, then <[route:]local@domain> */
    if (!phrase(a, k)) return 0 ;
    a->i = k + 1 ;
    if (ISSP(a, a->i, '@'))
    {
      /* route: @d1,@d2: */
      size_t save = a->i ;
      while (ISSP(a, a->i, '@') || ISSP(a, a->i, ','))
      {
        if (ISSP(a, a->i, ',')) { a->i++ ; if (!stralloc_catb(&a->adl, ",", 1)) return 0 ; continue ; }
        a->i++ ;
        if (!parse_domain(a, &a->domain)) return 0 ;
        if (!stralloc_catb(&a->adl, "@", 1) || !stralloc_catb(&a->adl, a->domain.s, a->domain.len)) return 0 ;
      }
      if (ISSP(a, a->i, ':')) a->i++ ;
      else { a->i = save ; a->adl.len = 0 ; }
      a->domain.len = 0 ;
    }
    while (a->i < a->n)
    {
      struct tok const *t = &TOK(a, a->i) ;
      if (t->type == T_COMMENT) { a->i++ ; continue ; }
      if (t->type == T_ATOM || t->type == T_QSTR) { if (!cat_localword(&a->local, t, a->b)) return 0 ; }
      else if (t->type == T_SPECIAL && t->c == '.') { if (!stralloc_catb(&a->local, ".", 1)) return 0 ; }
      else break ;
      a->i++ ;
    }
    if (ISSP(a, a->i, '@')) { a->i++ ; if (!parse_domain(a, &a->domain)) return 0 ; }
    while (a->i < a->n && !ISSP(a, a->i, '>') && !ISSP(a, a->i, ',') && !(ingroup && ISSP(a, a->i, ';'))) a->i++ ;
    if (ISSP(a, a->i, '>')) a->i++ ;
  }
  else
  {
    /* addr-spec: local[@domain], a comment may name it */
    for (; a->i < k ; a->i++)
    {
      struct tok const *t = &TOK(a, a->i) ;
      if (t->type == T_COMMENT) { comment = a->i ; continue ; }
      if (t->type == T_ATOM || t->type == T_QSTR) { if (!cat_localword(&a->local, t, a->b)) return 0 ; }
      else if (t->type == T_SPECIAL && t->c == '.') { if (!stralloc_catb(&a->local, ".", 1)) return 0 ; }
    }
    if (ISSP(a, a->i, '@')) { a->i++ ; if (!parse_domain(a, &a->domain)) return 0 ; }
    if (a->comment != (size_t)-1) comment = a->comment ;
  }
  /* the rest up to ',' (or ';' in a group): a comment names a nameless
     address */
  while (a->i < a->n && !ISSP(a, a->i, ',') && !(ingroup && ISSP(a, a->i, ';')))
  {
    if (TOK(a, a->i).type == T_COMMENT) comment = a->i ;
    a->i++ ;
  }
  if (!a->name.len && comment != (size_t)-1)
  {
    size_t s = TOK(a, comment).off, e = s + TOK(a, comment).len ;
    mimei_trim(a->b, &s, &e) ;
    if (!stralloc_catb(&a->name, a->b + s, e - s)) return 0 ;
  }
  if (a->i == start) { a->i++ ; return 1 ; }   /* a stray token */
  if (!a->local.len && !a->domain.len && !a->name.len && !a->adl.len && a->i > start && !ISSP(a, k, '<')) return 1 ;
  return emit_addr(a, a->name.s, a->name.len, a->adl.s, a->adl.len, a->local.s, a->local.len, a->domain.s, a->domain.len, 0) ;
}

static int address_list (stralloc *sa, char const *s, size_t hdr, size_t hend, char const *name, stralloc *tmp)
{
  struct hfield f ;
  genalloc toks = GENALLOC_ZERO ;
  stralloc buf = STRALLOC_ZERO ;
  struct actx a = { .sa = sa, .name = STRALLOC_ZERO, .local = STRALLOC_ZERO, .domain = STRALLOC_ZERO, .adl = STRALLOC_ZERO } ;
  size_t mark = sa->len ;
  int ok = 0 ;
  if (!mimei_hfield_find(s, hdr, hend, name, &f)) return stralloc_cats(sa, "NIL") ;
  tmp->len = 0 ;
  if (!mimei_unfold(tmp, s, f.value, f.vend)) return 0 ;
  if (!mimei_tokenize(tmp->s, tmp->len, 0, &toks, &buf)) goto end ;
  a.t = genalloc_s(struct tok, &toks) ;
  a.n = genalloc_len(struct tok, &toks) ;
  a.b = buf.s ? buf.s : "" ;
  if (!stralloc_catb(sa, "(", 1)) goto end ;
  while (a.i < a.n)
  {
    if (ISSP(&a, a.i, ',') || ISSP(&a, a.i, ';') || ISSP(&a, a.i, '>')) { a.i++ ; continue ; }
    if (!parse_one(&a, 0)) goto end ;
  }
  if (!a.count) { sa->len = mark ; if (!stralloc_cats(sa, "NIL")) goto end ; }
  else if (!stralloc_catb(sa, ")", 1)) goto end ;
  ok = 1 ;
 end:
  genalloc_free(struct tok, &toks) ;
  stralloc_free(&buf) ; stralloc_free(&a.name) ; stralloc_free(&a.local) ;
  stralloc_free(&a.domain) ; stralloc_free(&a.adl) ;
  return ok ;
}

/* ---------- ENVELOPE ---------- */

int mime_envelope (struct mime const *m, uint32_t i, stralloc *sa)
{
  struct mime_part const *p = part_at(m, i) ;
  stralloc tmp = STRALLOC_ZERO ;
  char const *s = m->msg ;
  size_t h, e ;
  int ok = 0 ;
  if (!p) return stralloc_cats(sa, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)") ;
  h = p->hdr ; e = p->body ;
  if (!stralloc_catb(sa, "(", 1)
   || !field_nstring(sa, s, h, e, "date", &tmp) || !stralloc_catb(sa, " ", 1)
   || !field_nstring(sa, s, h, e, "subject", &tmp) || !stralloc_catb(sa, " ", 1)
   || !address_list(sa, s, h, e, "from", &tmp) || !stralloc_catb(sa, " ", 1)) goto end ;
  {
    struct hfield f ;
    /* sender and reply-to default to from (RFC 3501 7.4.2), also when
       present but holding no address */
    char const *const def[2] = { "sender", "reply-to" } ;
    int k ;
    for (k = 0 ; k < 2 ; k++)
    {
      size_t mark = sa->len ;
      if (mimei_hfield_find(s, h, e, def[k], &f))
      {
        if (!address_list(sa, s, h, e, def[k], &tmp)) goto end ;
        if (sa->len - mark == 3 && !memcmp(sa->s + mark, "NIL", 3)) sa->len = mark ;
      }
      if (sa->len == mark && !address_list(sa, s, h, e, "from", &tmp)) goto end ;
      if (!stralloc_catb(sa, " ", 1)) goto end ;
    }
  }
  if (!address_list(sa, s, h, e, "to", &tmp) || !stralloc_catb(sa, " ", 1)
   || !address_list(sa, s, h, e, "cc", &tmp) || !stralloc_catb(sa, " ", 1)
   || !address_list(sa, s, h, e, "bcc", &tmp) || !stralloc_catb(sa, " ", 1)
   || !field_nstring(sa, s, h, e, "in-reply-to", &tmp) || !stralloc_catb(sa, " ", 1)
   || !field_nstring(sa, s, h, e, "message-id", &tmp) || !stralloc_catb(sa, ")", 1)) goto end ;
  ok = 1 ;
 end:
  stralloc_free(&tmp) ;
  return ok ;
}

/* ---------- BODY, BODYSTRUCTURE ---------- */

static int params_list (stralloc *sa, struct mfield const *f, int addcharset)
{
  struct param const *p = genalloc_s(struct param, &f->params) ;
  size_t i, n = genalloc_len(struct param, &f->params) ;
  size_t v, vl ;
  if (addcharset && mimei_mfield_param(f, "charset", &v, &vl)) addcharset = 0 ;
  if (!n && !addcharset) return stralloc_cats(sa, "NIL") ;
  if (!stralloc_catb(sa, "(", 1)) return 0 ;
  for (i = 0 ; i < n ; i++)
  {
    if (i && !stralloc_catb(sa, " ", 1)) return 0 ;
    if (!mime_imapstring(sa, f->buf.s + p[i].name, p[i].namelen) || !stralloc_catb(sa, " ", 1)
     || !mime_imapstring(sa, f->buf.s + p[i].value, p[i].valuelen)) return 0 ;
  }
  if (addcharset && !stralloc_cats(sa, n ? " \"charset\" \"us-ascii\"" : "\"charset\" \"us-ascii\"")) return 0 ;
  return stralloc_catb(sa, ")", 1) ;
}

/* the extension data common to all parts: disposition language location */
static int ext_dll (stralloc *sa, char const *s, size_t h, size_t e, stralloc *tmp)
{
  struct hfield hf ;
  struct mfield d = MFIELD_ZERO ;
  int ok = 0 ;
  if (!stralloc_catb(sa, " ", 1)) return 0 ;
  if (!mimei_hfield_find(s, h, e, "content-disposition", &hf)) { if (!stralloc_cats(sa, "NIL")) goto end ; }
  else
  {
    if (!mimei_mfield_parse(&d, s, hf.value, hf.vend, 0)) goto end ;
    if (!d.valid) { if (!stralloc_cats(sa, "NIL")) goto end ; }
    else if (!stralloc_catb(sa, "(", 1) || !mime_imapstring(sa, d.buf.s + d.type, d.typelen)
          || !stralloc_catb(sa, " ", 1) || !params_list(sa, &d, 0) || !stralloc_catb(sa, ")", 1)) goto end ;
  }
  if (!stralloc_catb(sa, " ", 1)) goto end ;
  if (!mimei_hfield_find(s, h, e, "content-language", &hf)) { if (!stralloc_cats(sa, "NIL")) goto end ; }
  else
  {
    struct tok const *t ;
    size_t i, n, count = 0, mark = sa->len ;
    tmp->len = 0 ;
    if (!mimei_unfold(tmp, s, hf.value, hf.vend) || !mimei_tokenize(tmp->s, tmp->len, 1, &d.toks, &d.buf)) goto end ;
    t = genalloc_s(struct tok, &d.toks) ;
    n = genalloc_len(struct tok, &d.toks) ;
    if (!stralloc_catb(sa, "(", 1)) goto end ;
    for (i = 0 ; i < n ; i++)
      if (t[i].type == T_ATOM)
      {
        if ((count++ && !stralloc_catb(sa, " ", 1)) || !mime_imapstring(sa, d.buf.s + t[i].off, t[i].len)) goto end ;
      }
    if (!count) { sa->len = mark ; if (!stralloc_cats(sa, "NIL")) goto end ; }
    else if (!stralloc_catb(sa, ")", 1)) goto end ;
  }
  if (!stralloc_catb(sa, " ", 1) || !field_nstring(sa, s, h, e, "content-location", tmp)) goto end ;
  ok = 1 ;
 end:
  mimei_mfield_free(&d) ;
  return ok ;
}

#define EMPTY_BODY "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)"
#define EMPTY_BODYSTRUCTURE "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)"

static int cat_u64 (stralloc *sa, uint64_t v)
{
  char tmp[24] ;
  size_t n = sizeof tmp ;
  do { tmp[--n] = '0' + v % 10 ; v /= 10 ; } while (v) ;
  return stralloc_catb(sa, tmp + n, sizeof tmp - n) ;
}

static int structure (struct mime const *m, uint32_t i, int ext, stralloc *sa, stralloc *tmp)
{
  struct mime_part const *p = mime_parts(m) + i ;
  char const *s = m->msg ;
  struct hfield hf ;
  struct mfield ct = MFIELD_ZERO ;
  int ok = 0 ;
  if (mimei_hfield_find(s, p->hdr, p->body, "content-type", &hf) && !mimei_mfield_parse(&ct, s, hf.value, hf.vend, 1)) goto end ;
  if (!stralloc_catb(sa, "(", 1)) goto end ;
  if (p->kind == MIME_MULTIPART)
  {
    uint32_t c ;
    if (p->child == MIME_NOPART && !stralloc_cats(sa, ext ? EMPTY_BODYSTRUCTURE : EMPTY_BODY)) goto end ;
    for (c = p->child ; c != MIME_NOPART ; c = mime_parts(m)[c].next)
      if (!structure(m, c, ext, sa, tmp)) goto end ;
    if (!stralloc_catb(sa, " ", 1) || !mime_imapstring(sa, ct.buf.s + ct.subtype, ct.subtypelen)) goto end ;
    if (ext)
    {
      if (!stralloc_catb(sa, " ", 1) || !params_list(sa, &ct, 0) || !ext_dll(sa, s, p->hdr, p->body, tmp)) goto end ;
    }
    if (!stralloc_catb(sa, ")", 1)) goto end ;
    ok = 1 ;
    goto end ;
  }
  /* type subtype params id description encoding size */
  if (ct.valid)
  {
    if (!mime_imapstring(sa, ct.buf.s + ct.type, ct.typelen) || !stralloc_catb(sa, " ", 1)
     || !mime_imapstring(sa, ct.buf.s + ct.subtype, ct.subtypelen) || !stralloc_catb(sa, " ", 1)
     || !params_list(sa, &ct, p->istext)) goto end ;
  }
  else if (!p->istext)   /* the default in a multipart/digest */
  {
    if (!stralloc_cats(sa, "\"message\" \"rfc822\" NIL")) goto end ;
  }
  else if (!stralloc_cats(sa, "\"text\" \"plain\" (\"charset\" \"us-ascii\")")) goto end ;
  if (!stralloc_catb(sa, " ", 1) || !field_nstring(sa, s, p->hdr, p->body, "content-id", tmp)
   || !stralloc_catb(sa, " ", 1) || !field_nstring(sa, s, p->hdr, p->body, "content-description", tmp)
   || !stralloc_catb(sa, " ", 1)) goto end ;
  if (mimei_hfield_find(s, p->hdr, p->body, "content-transfer-encoding", &hf))
  {
    size_t k = 0 ;
    tmp->len = 0 ;
    if (!mimei_unfold(tmp, s, hf.value, hf.vend)) goto end ;
    while (k < tmp->len && !iswsp((unsigned char)tmp->s[k]) && tmp->s[k] != '(' && tmp->s[k] != ';') k++ ;
    if (!(k ? mime_imapstring(sa, tmp->s, k) : stralloc_cats(sa, "\"7bit\""))) goto end ;
  }
  else if (!stralloc_cats(sa, "\"7bit\"")) goto end ;
  if (!stralloc_catb(sa, " ", 1) || !cat_u64(sa, p->bodysize)) goto end ;
  if (p->kind == MIME_MESSAGE && p->child != MIME_NOPART)
  {
    if (!stralloc_catb(sa, " ", 1) || !mime_envelope(m, p->child, sa) || !stralloc_catb(sa, " ", 1)
     || !structure(m, p->child, ext, sa, tmp) || !stralloc_catb(sa, " ", 1) || !cat_u64(sa, p->lines)) goto end ;
  }
  else if (p->istext)
  {
    if (!stralloc_catb(sa, " ", 1) || !cat_u64(sa, p->lines)) goto end ;
  }
  if (ext)
  {
    if (!stralloc_catb(sa, " ", 1) || !field_nstring(sa, s, p->hdr, p->body, "content-md5", tmp)
     || !ext_dll(sa, s, p->hdr, p->body, tmp)) goto end ;
  }
  if (!stralloc_catb(sa, ")", 1)) goto end ;
  ok = 1 ;
 end:
  mimei_mfield_free(&ct) ;
  return ok ;
}

int mime_bodystructure (struct mime const *m, uint32_t i, int ext, stralloc *sa)
{
  stralloc tmp = STRALLOC_ZERO ;
  int ok ;
  if (i >= mime_nparts(m)) return stralloc_cats(sa, ext ? EMPTY_BODYSTRUCTURE : EMPTY_BODY) ;
  ok = structure(m, i, ext, sa, &tmp) ;
  stralloc_free(&tmp) ;
  return ok ;
}
