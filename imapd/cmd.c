/* imapd/cmd: the IMAP command reader and parser, and the accessors of a
 * parsed command's arguments; the typed helpers (flag lists, sequence
 * sets, dates, quoting, FETCH attributes) are in cmdargs.c.  See cmd.h. */

#include <stdlib.h>
#include <string.h>

#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>

#include "imapd/cmd.h"
#include "imapd/cmdint.h"

/* ---------- characters (and imapd/cmdint.h) ---------- */

/* ASTRING-CHAR but '+' */
static int istagchar (unsigned char ch)
{
  return (isatomchar(ch) || ch == ']') && ch != '+' ;
}


/* ---------- the reader ---------- */

enum { ST_FRESH, ST_LINE, ST_LIT, ST_DISCARD, ST_SKIPLIT } ;

void imapcmd_reader_init (struct imapcmd_reader *r)
{
  struct imapcmd_reader z = IMAPCMD_READER_ZERO ;
  *r = z ;
}

void imapcmd_reader_free (struct imapcmd_reader *r)
{
  stralloc_free(&r->buf) ;
  genalloc_free(struct imapcmd_seg, &r->segs) ;
}

static void reset_command (struct imapcmd_reader *r)
{
  /* a session lives long: give back the room a big command took */
  if (r->buf.a > 4 * IMAPCMD_LINEMAX + IMAPCMD_LITMAX) stralloc_free(&r->buf) ;
  r->buf.len = 0 ;
  genalloc_setlen(struct imapcmd_seg, &r->segs, 0) ;
  r->tag[0] = 0 ;
  r->isappend = -1 ;
  r->linestart = 0 ;
  r->total = 0 ;
  r->skip = 0 ;
  r->taillen = 0 ;
  r->state = ST_LINE ;
}

/* The literal marker at the end of line[0..len): "{n}", "{n+}", "~{n}",
 * "~{n+}".  Returns 1 with *start, *n (UINT64_MAX if it overflows),
 * *nonsync, *binary; else 0. */
static int marker (char const *line, size_t len, size_t *start, uint64_t *n, int *nonsync, int *binary)
{
  size_t i = len, dend, d ;
  uint64_t v = 0 ;
  if (!i || line[i-1] != '}') return 0 ;
  i-- ;
  *nonsync = 0 ;
  if (i && line[i-1] == '+') { *nonsync = 1 ; i-- ; }
  dend = i ;
  while (i && line[i-1] >= '0' && line[i-1] <= '9') i-- ;
  if (i == dend || !i || line[i-1] != '{') return 0 ;
  for (d = i ; d < dend ; d++)
  {
    unsigned int dig = line[d] - '0' ;
    if (v > (UINT64_MAX - dig) / 10) { v = UINT64_MAX ; break ; }
    v = v * 10 + dig ;
  }
  i-- ;
  *binary = 0 ;
  if (i && line[i-1] == '~') { *binary = 1 ; i-- ; }
  *start = i ;
  *n = v ;
  return 1 ;
}

static void settag (struct imapcmd_reader *r, char const *line, size_t len)
{
  size_t i = 0 ;
  while (i < len && i <= IMAPCMD_TAGMAX && line[i] != ' ') i++ ;
  r->tag[0] = 0 ;
  if (!i || i > IMAPCMD_TAGMAX) return ;
  for (size_t j = 0 ; j < i ; j++) if (!istagchar(line[j])) return ;
  memcpy(r->tag, line, i) ;
  r->tag[i] = 0 ;
  /* the command name: APPEND gets the bigger literal limit */
  r->isappend = 0 ;
  if (i < len)
  {
    size_t b = i + 1, e = b ;
    while (e < len && line[e] != ' ') e++ ;
    if (eqi(line + b, e - b, "APPEND")) r->isappend = 1 ;
  }
}

static void tail_add (struct imapcmd_reader *r, char const *s, size_t len)
{
  size_t cap = sizeof r->tail ;
  if (len >= cap) { memcpy(r->tail, s + len - cap, cap) ; r->taillen = cap ; return ; }
  if (r->taillen + len > cap)
  {
    size_t drop = r->taillen + len - cap ;
    memmove(r->tail, r->tail + drop, r->taillen - drop) ;
    r->taillen -= drop ;
  }
  memcpy(r->tail + r->taillen, s, len) ;
  r->taillen += len ;
}

static uint64_t cmdlimit (struct imapcmd_reader const *r)
{
  uint64_t m = r->cmdmax ;
  if (r->isappend == 1) m = m + r->appendmax < m ? UINT64_MAX : m + r->appendmax ;
  return m ;
}

/* A literal was refused (n octets, sync or not): a synchronising one is
 * never sent, the command is over; a non-synchronising one is skipped
 * with the rest of its command. */
static int refuse_literal (struct imapcmd_reader *r, uint64_t n, int nonsync, int ev)
{
  r->litsize = n ;
  r->litsync = !nonsync ;
  if (nonsync) { r->skip = n ; r->state = ST_SKIPLIT ; }
  else r->state = ST_FRESH ;
  return ev ;
}

/* A whole line, buf[linestart..buf.len), its LF (and CR) consumed.
 * Returns an event, or -1 to go on reading. */
static int line_end (struct imapcmd_reader *r)
{
  size_t len = r->buf.len - r->linestart ;
  char const *line = r->buf.s + r->linestart ;
  struct imapcmd_seg seg ;
  size_t start ;
  uint64_t n, limit ;
  int nonsync, binary ;
  int first = !genalloc_len(struct imapcmd_seg, &r->segs) ;

  if (first && !len) return -1 ;   /* empty lines between commands */
  if (first) settag(r, line, len) ;
  seg.off = r->linestart ;
  seg.len = len ;
  seg.litmark = len ;
  seg.kind = IMAPSEG_LINE ;
  seg.binary = seg.sync = 0 ;
  r->total += len ;
  if (!marker(line, len, &start, &n, &nonsync, &binary))
  {
    if (!genalloc_append(struct imapcmd_seg, &r->segs, &seg)) return IMAPCMD_ENOMEM ;
    if (r->total > cmdlimit(r)) { r->state = ST_FRESH ; return IMAPCMD_ETOOBIG ; }
    r->state = ST_FRESH ;
    r->ready = 1 ;
    return IMAPCMD_READY ;
  }
  seg.litmark = start ;
  if (!genalloc_append(struct imapcmd_seg, &r->segs, &seg)) return IMAPCMD_ENOMEM ;
  if (r->total > cmdlimit(r)) return refuse_literal(r, n, nonsync, IMAPCMD_ETOOBIG) ;
  limit = r->isappend == 1 ? r->appendmax : r->litmax ;
  if (n > limit || (nonsync && r->literalminus && n > IMAPCMD_NONSYNCMAX))
    return refuse_literal(r, n, nonsync, IMAPCMD_ELITERAL) ;
  r->litsize = n ;
  r->litsync = !nonsync ;
  r->litbinary = binary ;
  r->skip = n ;
  seg.off = r->buf.len ;
  seg.len = n ;
  seg.litmark = 0 ;
  seg.binary = binary ;
  seg.sync = !nonsync ;
  if (n && r->isappend == 1 && r->streammin && n >= r->streammin)
  {
    seg.kind = IMAPSEG_STREAMED ;
    if (!genalloc_append(struct imapcmd_seg, &r->segs, &seg)) return IMAPCMD_ENOMEM ;
    r->state = ST_LIT ;
  }
  else
  {
    if (r->total + n > cmdlimit(r) || r->total + n < r->total)
      return refuse_literal(r, n, nonsync, IMAPCMD_ETOOBIG) ;
    r->total += n ;
    if (!stralloc_readyplus(&r->buf, n)) return IMAPCMD_ENOMEM ;
    if (n) r->state = ST_LIT ;
    else
    {
      seg.kind = IMAPSEG_LITERAL ;   /* an empty literal is complete at once */
      if (!genalloc_append(struct imapcmd_seg, &r->segs, &seg)) return IMAPCMD_ENOMEM ;
      r->state = ST_LINE ;
    }
  }
  r->linestart = r->buf.len ;   /* where the literal's octets go */
  return nonsync ? -1 : IMAPCMD_CONTINUE ;
}

int imapcmd_feed (struct imapcmd_reader *r, char const *s, size_t len, size_t *used)
{
  size_t i = 0 ;
  int ev = IMAPCMD_MORE ;
  if (r->ready) { r->ready = 0 ; r->state = ST_FRESH ; }
  for (;;)
  {
    if (r->state == ST_FRESH) reset_command(r) ;
    if (i >= len && r->state != ST_FRESH) break ;
    switch (r->state)
    {
      case ST_LINE :
      {
        char const *lf = memchr(s + i, '\n', len - i) ;
        size_t take = lf ? (size_t)(lf - (s + i)) : len - i ;
        size_t have = r->buf.len - r->linestart ;
        size_t keep = take ;
        /* the line without its CR may be LINEMAX long */
        if (lf && take && s[i + take - 1] == '\r') keep = take - 1 ;
        else if (lf && !take && have && r->buf.s[r->buf.len - 1] == '\r') { r->buf.len-- ; have-- ; }
        if (have + keep > IMAPCMD_LINEMAX + (lf ? 0 : 1))
        {
          /* too long: the line up to the limit gives the tag, its end
             becomes the tail of a skipped line */
          size_t room = IMAPCMD_LINEMAX + 1 > have ? IMAPCMD_LINEMAX + 1 - have : 0 ;
          if (room > take) room = take ;
          if (!stralloc_catb(&r->buf, s + i, room)) return IMAPCMD_ENOMEM ;
          i += room ;
          have += room ;
          if (!genalloc_len(struct imapcmd_seg, &r->segs)) settag(r, r->buf.s + r->linestart, have) ;
          r->taillen = 0 ;
          tail_add(r, r->buf.s + r->linestart, have) ;
          r->state = ST_DISCARD ;
          *used = i ;
          return IMAPCMD_ETOOLONG ;
        }
        if (!stralloc_catb(&r->buf, s + i, keep)) return IMAPCMD_ENOMEM ;
        i += take ;
        if (!lf) break ;
        i++ ;
        ev = line_end(r) ;
        if (ev < 0) { r->linestart = r->buf.len ; if (r->state == ST_LINE && !genalloc_len(struct imapcmd_seg, &r->segs)) r->buf.len = r->linestart = 0 ; continue ; }
        *used = i ;
        return ev ;
      }
      case ST_LIT :
      {
        size_t k = len - i < r->skip ? len - i : (size_t)r->skip ;
        struct imapcmd_seg *segs = genalloc_s(struct imapcmd_seg, &r->segs) ;
        size_t nseg = genalloc_len(struct imapcmd_seg, &r->segs) ;
        if (nseg && segs[nseg - 1].kind == IMAPSEG_STREAMED)
        {
          r->chunk = s + i ;
          r->chunklen = k ;
          r->chunkfirst = r->skip == r->litsize ;
          r->skip -= k ;
          r->litleft = r->skip ;
          i += k ;
          if (!r->skip) { r->state = ST_LINE ; r->linestart = r->buf.len ; }
          *used = i ;
          ev = IMAPCMD_LITDATA ;
          return ev ;
        }
        if (!stralloc_catb(&r->buf, s + i, k)) return IMAPCMD_ENOMEM ;
        i += k ;
        r->skip -= k ;
        if (!r->skip)
        {
          struct imapcmd_seg seg ;
          seg.off = r->linestart ;
          seg.len = r->buf.len - r->linestart ;
          seg.litmark = 0 ;
          seg.kind = IMAPSEG_LITERAL ;
          seg.binary = r->litbinary ;
          seg.sync = r->litsync ;
          if (!genalloc_append(struct imapcmd_seg, &r->segs, &seg)) return IMAPCMD_ENOMEM ;
          r->state = ST_LINE ;
          r->linestart = r->buf.len ;
        }
        break ;
      }
      case ST_DISCARD :
      {
        char const *lf = memchr(s + i, '\n', len - i) ;
        size_t take = lf ? (size_t)(lf - (s + i)) : len - i ;
        size_t start ;
        uint64_t n ;
        int nonsync, binary ;
        tail_add(r, s + i, take) ;
        i += take ;
        if (!lf) break ;
        i++ ;
        if (r->taillen && r->tail[r->taillen - 1] == '\r') r->taillen-- ;
        if (marker(r->tail, r->taillen, &start, &n, &nonsync, &binary) && nonsync)
        {
          r->skip = n ;
          r->state = ST_SKIPLIT ;
        }
        else r->state = ST_FRESH ;   /* a {n}: the client waits for a "+" */
        r->taillen = 0 ;
        break ;
      }
      case ST_SKIPLIT :
      {
        size_t k = len - i < r->skip ? len - i : (size_t)r->skip ;
        i += k ;
        r->skip -= k ;
        if (!r->skip) { r->state = ST_DISCARD ; r->taillen = 0 ; }
        break ;
      }
    }
  }
  *used = i ;
  return IMAPCMD_MORE ;
}

/* ---------- the parser ---------- */

void imapcmd_free (struct imapcmd *c)
{
  genalloc_free(struct imapcmd_arg, &c->args) ;
}

struct imapcmd_arg const *imapcmd_arg (struct imapcmd const *c, size_t i)
{
  if (i >= genalloc_len(struct imapcmd_arg, &c->args)) return 0 ;
  return genalloc_s(struct imapcmd_arg, &c->args) + i ;
}

static int fail (struct imapcmd *c, char const *err)
{
  c->err = err ;
  return 0 ;
}

/* An atom from line[*p..len), stopping at SP, '(' or ')' or the end; a
 * '[' opens a bracket that may hold anything but CR/LF/NUL up to its
 * matching ']' (quoted strings inside skipped).  Returns 1 or 0 (err). */
static int scan_atom (char const *line, size_t len, size_t litmark, size_t *p, char const **err)
{
  size_t i = *p ;
  unsigned int depth = 0 ;
  while (i < len)
  {
    unsigned char ch = line[i] ;
    if (i == litmark) { *err = "literal inside an atom" ; return 0 ; }
    if (depth)
    {
      if (!ch || ch == '\r' || ch == '\n') { *err = "bad character in brackets" ; return 0 ; }
      if (ch == '[') depth++ ;
      else if (ch == ']') depth-- ;
      else if (ch == '"')
      {
        for (i++ ; i < len && line[i] != '"' ; i++)
          if (line[i] == '\\' && i + 1 < len) i++ ;
        if (i >= len) { *err = "unterminated quoted string" ; return 0 ; }
      }
      i++ ;
      continue ;
    }
    if (ch == ' ' || ch == '(' || ch == ')') break ;
    if (ch == '[') { depth++ ; i++ ; continue ; }
    if (ch >= 0x80) { *err = "8-bit character in atom" ; return 0 ; }
    if (isctl(ch)) { *err = "control character in atom" ; return 0 ; }
    if (ch == '"') { *err = "quote inside an atom" ; return 0 ; }
    if (ch == '{') { *err = "'{' inside an atom" ; return 0 ; }
    i++ ;
  }
  if (depth) { *err = "missing ]" ; return 0 ; }
  *p = i ;
  return 1 ;
}

static int push (struct imapcmd *c, struct imapcmd_arg const *a, size_t const *stack, unsigned int depth)
{
  size_t n = genalloc_len(struct imapcmd_arg, &c->args) ;
  if (n >= IMAPCMD_ARGMAX) return 0 ;
  if (!genalloc_append(struct imapcmd_arg, &c->args, a)) return -1 ;
  genalloc_s(struct imapcmd_arg, &c->args)[n].next = n + 1 ;
  if (depth) genalloc_s(struct imapcmd_arg, &c->args)[stack[depth - 1]].n++ ;
  return 1 ;
}

int imapcmd_parse (struct imapcmd_reader *r, struct imapcmd *c, unsigned int flags)
{
  struct imapcmd_seg const *segs = genalloc_s(struct imapcmd_seg, &r->segs) ;
  size_t nseg = genalloc_len(struct imapcmd_seg, &r->segs) ;
  size_t stack[IMAPCMD_DEPTHMAX] ;
  unsigned int depth = 0 ;
  size_t k = 0, p = 0, n ;
  char *line ;
  size_t len ;
  int sep = 0 ;

  genalloc_setlen(struct imapcmd_arg, &c->args, 0) ;
  c->nargs = 0 ;
  c->err = 0 ;
  c->uid = 0 ;
  c->name[0] = 0 ;
  c->tag = r->tag ;
  if (!nseg || segs[0].kind != IMAPSEG_LINE) return fail(c, "empty command") ;
  line = r->buf.s + segs[0].off ;
  len = segs[0].len ;

  /* tag */
  while (p < len && line[p] != ' ') p++ ;
  if (!r->tag[0]) return fail(c, "bad tag") ;
  if (p >= len) return fail(c, "missing command") ;
  p++ ;

  /* name, and the UID prefix */
  for (;;)
  {
    size_t b = p, have = strlen(c->name) ;
    while (p < len && line[p] != ' ' && p < segs[0].litmark) p++ ;
    if (p == b) return fail(c, "missing command") ;
    if (have + (p - b) + 1 > IMAPCMD_NAMEMAX) return fail(c, "unknown command") ;
    for (n = b ; n < p ; n++)
    {
      unsigned char ch = line[n] ;
      if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_'))
        return fail(c, "bad command name") ;
      c->name[have + n - b] = upper(ch) ;
    }
    c->name[have + p - b] = 0 ;
    if (have || strcmp(c->name, "UID")) break ;
    c->uid = 1 ;
    if (p >= len || line[p] != ' ') return fail(c, "missing command after UID") ;
    c->name[3] = ' ' ; c->name[4] = 0 ;
    p++ ;
  }
  if (p < len)
  {
    if (line[p] != ' ') return fail(c, "missing space after the command name") ;
    p++ ;
  }
  sep = 1 ;

  /* arguments */
  for (;;)
  {
    struct imapcmd_arg a ;
    unsigned char ch ;
    int e ;
    if (p >= len)
    {
      if (depth) return fail(c, "missing )") ;
      break ;
    }
    ch = line[p] ;
    if (ch == ' ') { p++ ; sep = 1 ; continue ; }
    if (ch == ')')
    {
      struct imapcmd_arg *l ;
      if (!depth) return fail(c, "unexpected )") ;
      l = genalloc_s(struct imapcmd_arg, &c->args) + stack[--depth] ;
      l->next = genalloc_len(struct imapcmd_arg, &c->args) ;
      p++ ;
      sep = 0 ;
      continue ;
    }
    if (!sep) return fail(c, "missing space between arguments") ;
    memset(&a, 0, sizeof a) ;
    if (ch == '(')
    {
      if (depth >= IMAPCMD_DEPTHMAX) return fail(c, "parentheses nested too deep") ;
      a.type = IMAPARG_LIST ;
      a.s = line + p ;
      e = push(c, &a, stack, depth) ;
      if (e < 0) return -1 ;
      if (!e) return fail(c, "too many arguments") ;
      stack[depth++] = genalloc_len(struct imapcmd_arg, &c->args) - 1 ;
      p++ ;
      sep = 1 ;
      continue ;
    }
    if (p == segs[k].litmark)
    {
      struct imapcmd_seg const *l ;
      if (k + 2 >= nseg) return fail(c, "bad literal") ;
      l = segs + k + 1 ;
      a.type = IMAPARG_LITERAL ;
      a.len = l->len ;
      a.binary = l->binary ;
      a.streamed = l->kind == IMAPSEG_STREAMED ;
      a.s = a.streamed ? 0 : r->buf.s + l->off ;
      e = push(c, &a, stack, depth) ;
      if (e < 0) return -1 ;
      if (!e) return fail(c, "too many arguments") ;
      k += 2 ;
      line = r->buf.s + segs[k].off ;
      len = segs[k].len ;
      p = 0 ;
      sep = 0 ;
      continue ;
    }
    if (ch == '"')
    {
      size_t w = p + 1, i = p + 1 ;
      for (;;)
      {
        unsigned char q ;
        if (i >= len || i == segs[k].litmark) return fail(c, "unterminated quoted string") ;
        q = line[i] ;
        if (q == '"') break ;
        if (q == '\\')
        {
          if (i + 1 >= len || (line[i+1] != '"' && line[i+1] != '\\')) return fail(c, "bad \\ escape in quoted string") ;
          q = line[++i] ;
        }
        else if (!q || q == '\r' || q == '\n') return fail(c, "bad character in quoted string") ;
        else if (q >= 0x80 && !(flags & IMAPCMD_UTF8)) return fail(c, "8-bit character in quoted string") ;
        line[w++] = q ;
        i++ ;
      }
      a.type = IMAPARG_QUOTED ;
      a.s = line + p + 1 ;
      a.len = w - p - 1 ;
      e = push(c, &a, stack, depth) ;
      if (e < 0) return -1 ;
      if (!e) return fail(c, "too many arguments") ;
      p = i + 1 ;
      sep = 0 ;
      continue ;
    }
    {
      size_t b = p ;
      char const *err ;
      if (!scan_atom(line, len, segs[k].litmark, &p, &err)) return fail(c, err) ;
      if (p == b) return fail(c, "bad character") ;
      a.type = eqi(line + b, p - b, "NIL") ? IMAPARG_NIL : IMAPARG_ATOM ;
      a.s = line + b ;
      a.len = p - b ;
      e = push(c, &a, stack, depth) ;
      if (e < 0) return -1 ;
      if (!e) return fail(c, "too many arguments") ;
      sep = 0 ;
    }
  }
  c->nargs = genalloc_len(struct imapcmd_arg, &c->args) ;
  return 1 ;
}

int imapcmd_is (struct imapcmd const *c, size_t i, char const *word)
{
  struct imapcmd_arg const *a = imapcmd_arg(c, i) ;
  if (!a || (a->type != IMAPARG_ATOM && a->type != IMAPARG_NIL)) return 0 ;
  return eqi(a->s, a->len, word) ;
}


int imapcmd_number (struct imapcmd const *c, size_t i, uint64_t max, uint64_t *n)
{
  struct imapcmd_arg const *a = imapcmd_arg(c, i) ;
  if (!a || a->type != IMAPARG_ATOM) return 0 ;
  return parse_u64(a->s, a->len, max, n) ;
}

int imapcmd_astring (struct imapcmd const *c, size_t i, int wildcards, char const **s, size_t *len)
{
  struct imapcmd_arg const *a = imapcmd_arg(c, i) ;
  size_t j ;
  if (!a) return 0 ;
  switch (a->type)
  {
    case IMAPARG_QUOTED : break ;
    case IMAPARG_LITERAL : if (a->streamed) return 0 ; break ;
    case IMAPARG_NIL : break ;
    case IMAPARG_ATOM :
      for (j = 0 ; j < a->len ; j++)
      {
        unsigned char ch = a->s[j] ;
        if (ch == ']' || isatomchar(ch)) continue ;
        if (wildcards && (ch == '*' || ch == '%')) continue ;
        return 0 ;
      }
      break ;
    default : return 0 ;
  }
  *s = a->s ;
  *len = a->len ;
  return 1 ;
}

int imapcmd_nstring (struct imapcmd const *c, size_t i, char const **s, size_t *len)
{
  struct imapcmd_arg const *a = imapcmd_arg(c, i) ;
  if (!a) return 0 ;
  if (a->type == IMAPARG_NIL) { *s = 0 ; *len = 0 ; return 1 ; }
  if (a->type == IMAPARG_ATOM) return 0 ;
  return imapcmd_astring(c, i, 0, s, len) ;
}
