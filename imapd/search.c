/* imapd/search: SEARCH keys, parsed into a tree and evaluated.  See
 * search.h. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>

#include "imapd/cmd.h"
#include "imapd/search.h"

/* ---------- folding and matching ---------- */

/* the folding of ch, prev being the octet before it in the text */
static unsigned char fold (unsigned char prev, unsigned char ch)
{
  if (ch >= 'A' && ch <= 'Z') return ch + 32 ;
  if (prev == 0xc3 && ch >= 0x80 && ch <= 0x9e && ch != 0x97) return ch + 0x20 ;
  return ch ;
}

int imapsearch_fold (stralloc *sa, char const *s, size_t len)
{
  unsigned char prev = 0 ;
  if (!stralloc_readyplus(sa, len)) return 0 ;
  for (size_t i = 0 ; i < len ; i++)
  {
    sa->s[sa->len++] = fold(prev, s[i]) ;
    prev = s[i] ;
  }
  return 1 ;
}

void imapsearch_match_reset (struct imapsearch_match *m)
{
  m->state = 0 ;
  m->prev = 0 ;
  m->found = !m->len ;
}

int imapsearch_match_feed (struct imapsearch_match *m, char const *s, size_t len)
{
  size_t st = m->state ;
  unsigned char prev = m->prev ;
  if (m->found) return 1 ;
  for (size_t i = 0 ; i < len ; i++)
  {
    unsigned char ch = fold(prev, s[i]) ;
    prev = s[i] ;
    while (st && (unsigned char)m->needle[st] != ch) st = m->fail[st - 1] ;
    if ((unsigned char)m->needle[st] == ch) st++ ;
    if (st == m->len) { m->found = 1 ; break ; }
  }
  m->state = st ;
  m->prev = prev ;
  return m->found ;
}

int imapsearch_contains (char const *hay, size_t haylen, char const *needle, size_t needlelen)
{
  size_t i, j ;
  if (!needlelen) return 1 ;
  if (needlelen > haylen) return 0 ;
  for (i = 0 ; i + needlelen <= haylen ; i++)
  {
    for (j = 0 ; j < needlelen ; j++)
    {
      unsigned char a = fold(i + j ? hay[i + j - 1] : 0, hay[i + j]) ;
      unsigned char b = fold(j ? needle[j - 1] : 0, needle[j]) ;
      if (a != b) break ;
    }
    if (j == needlelen) return 1 ;
  }
  return 0 ;
}

/* ---------- the tree ---------- */

enum
{
  N_AND, N_OR, N_NOT,
  N_FLAGS,       /* set and unset masks */
  N_KEYWORD,     /* s: the keyword; neg */
  N_SEQ,         /* seq: index in seqs; uid */
  N_DOLLAR,      /* the saved result */
  N_LARGER, N_SMALLER,
  N_DATE,        /* which: internal/sent; op; day */
  N_HEADER,      /* name; needle */
  N_BODY,        /* text: 0 BODY, 1 TEXT; needle */
} ;

enum { D_BEFORE, D_ON, D_SINCE } ;

#define NONE ((size_t)-1)

struct node
{
  unsigned char type ;
  unsigned char cost ;
  unsigned char neg ;    /* KEYWORD: UNKEYWORD */
  unsigned char uid ;    /* SEQ: a UID set */
  unsigned char sent ;   /* DATE: the Date: header */
  unsigned char op ;     /* DATE: D_* ; BODY: text */
  unsigned int set, unset ;
  size_t child, sib ;    /* AND / OR / NOT */
  size_t last ;          /* the last child */
  size_t seq ;
  uint64_t n ;           /* LARGER / SMALLER */
  int64_t day ;
  char const *s ;        /* KEYWORD, HEADER's name */
  size_t len ;
  size_t needle, needlelen, fail ;   /* in strs and fails */
} ;

struct parser
{
  struct imapsearch *s ;
  struct imapcmd const *c ;
  size_t i ;
  size_t end ;           /* the end of the current list of keys */
  size_t nkeys ;
  char const *err ;
} ;

static struct node *N (struct imapsearch *s, size_t k)
{
  return genalloc_s(struct node, &s->nodes) + k ;
}

/* a new node of type t; returns its index, NONE out of memory */
static size_t newnode (struct imapsearch *s, unsigned char type, unsigned char cost)
{
  struct node n ;
  memset(&n, 0, sizeof n) ;
  n.type = type ;
  n.cost = cost ;
  n.child = n.sib = n.seq = n.last = NONE ;
  if (!genalloc_append(struct node, &s->nodes, &n)) return NONE ;
  return genalloc_len(struct node, &s->nodes) - 1 ;
}

static int needle (struct imapsearch *s, size_t k, char const *str, size_t len)
{
  size_t off = s->strs.len, foff = genalloc_len(size_t, &s->fails), j, q ;
  size_t *f ;
  if (!imapsearch_fold(&s->strs, str, len)) return 0 ;
  if (!genalloc_readyplus(size_t, &s->fails, len ? len : 1)) return 0 ;
  f = genalloc_s(size_t, &s->fails) + foff ;
  /* KMP: f[j] = length of the longest proper border of needle[0..j] */
  if (len) f[0] = 0 ;
  for (j = 1, q = 0 ; j < len ; j++)
  {
    char const *nd = s->strs.s + off ;
    while (q && nd[j] != nd[q]) q = f[q - 1] ;
    if (nd[j] == nd[q]) q++ ;
    f[j] = q ;
  }
  genalloc_setlen(size_t, &s->fails, foff + len) ;
  N(s, k)->needle = off ;
  N(s, k)->needlelen = len ;
  N(s, k)->fail = foff ;
  return 1 ;
}

static int bad (struct parser *p, char const *err)
{
  p->err = err ;
  return 0 ;
}

/* a string argument at p->i (astring); 1, 0 with p->err */
static int strarg (struct parser *p, char const **str, size_t *len)
{
  struct imapcmd_arg const *a = imapcmd_arg(p->c, p->i) ;
  if (!a || p->i >= p->end) return bad(p, "missing string after search key") ;
  if (a->type == IMAPARG_LIST || (a->type == IMAPARG_LITERAL && a->streamed)) return bad(p, "bad string after search key") ;
  *str = a->s ;
  *len = a->len ;
  p->i++ ;
  return 1 ;
}

static int datearg (struct parser *p, int64_t *day)
{
  char const *str ;
  size_t len ;
  if (!strarg(p, &str, &len)) return bad(p, "missing date after search key") ;
  if (!imapcmd_date(str, len, day)) return bad(p, "bad date (d-Mon-yyyy)") ;
  return 1 ;
}

static int keys (struct parser *p, size_t parent, size_t end, unsigned int depth) ;

static int seqkey (struct parser *p, size_t k, char const *str, size_t len, int uid)
{
  struct imapseq q = IMAPSEQ_ZERO ;
  int e = imapseq_parse(&q, str, len) ;
  if (e <= 0) { imapseq_free(&q) ; return e < 0 ? -1 : bad(p, "bad sequence set") ; }
  if (q.dollar)
  {
    imapseq_free(&q) ;
    N(p->s, k)->type = N_DOLLAR ;
    p->s->hasdollar = 1 ;
    return 1 ;
  }
  if (!genalloc_append(struct imapseq, &p->s->seqs, &q)) { imapseq_free(&q) ; return -1 ; }
  N(p->s, k)->type = N_SEQ ;
  N(p->s, k)->uid = uid ;
  N(p->s, k)->s = str ;     /* parsed again by each imapsearch_prepare */
  N(p->s, k)->len = len ;
  N(p->s, k)->seq = genalloc_len(struct imapseq, &p->s->seqs) - 1 ;
  return 1 ;
}

/* One key at p->i, appended to parent's children.  1, 0 (p->err), -1. */
static int key (struct parser *p, size_t parent, unsigned int depth)
{
  static struct { char const *name ; unsigned int set, unset ; } const flagkeys[] =
  {
    { "ALL", 0, 0 },
    { "ANSWERED", IMAPFLAG_ANSWERED, 0 },
    { "DELETED", IMAPFLAG_DELETED, 0 },
    { "DRAFT", IMAPFLAG_DRAFT, 0 },
    { "FLAGGED", IMAPFLAG_FLAGGED, 0 },
    { "NEW", IMAPFLAG_RECENT, IMAPFLAG_SEEN },
    { "OLD", 0, IMAPFLAG_RECENT },
    { "RECENT", IMAPFLAG_RECENT, 0 },
    { "SEEN", IMAPFLAG_SEEN, 0 },
    { "UNANSWERED", 0, IMAPFLAG_ANSWERED },
    { "UNDELETED", 0, IMAPFLAG_DELETED },
    { "UNDRAFT", 0, IMAPFLAG_DRAFT },
    { "UNFLAGGED", 0, IMAPFLAG_FLAGGED },
    { "UNSEEN", 0, IMAPFLAG_SEEN },
  } ;
  static struct { char const *name ; unsigned char sent, op ; } const datekeys[] =
  {
    { "BEFORE", 0, D_BEFORE }, { "ON", 0, D_ON }, { "SINCE", 0, D_SINCE },
    { "SENTBEFORE", 1, D_BEFORE }, { "SENTON", 1, D_ON }, { "SENTSINCE", 1, D_SINCE },
  } ;
  static char const *const hdrkeys[] = { "BCC", "CC", "FROM", "SUBJECT", "TO" } ;
  struct imapsearch *s = p->s ;
  struct imapcmd_arg const *a = imapcmd_arg(p->c, p->i) ;
  size_t k, j ;
  char const *str ;
  size_t len ;

  if (!a || p->i >= p->end) return bad(p, "missing search key") ;
  if (depth >= IMAPSEARCH_DEPTHMAX) return bad(p, "search keys nested too deep") ;
  if (++p->nkeys > IMAPSEARCH_KEYMAX) return bad(p, "too many search keys") ;
  k = newnode(s, N_AND, IMAPSEARCH_INDEX) ;
  if (k == NONE) return -1 ;
  /* link k as the last child of parent */
  if (N(s, parent)->child == NONE) N(s, parent)->child = k ;
  else N(s, N(s, parent)->last)->sib = k ;
  N(s, parent)->last = k ;
  if (a->type == IMAPARG_LIST)
  {
    size_t end = a->next ;
    if (!a->n) return bad(p, "empty parentheses in search") ;
    p->i++ ;
    return keys(p, k, end, depth + 1) ;
  }
  if (a->type != IMAPARG_ATOM) return bad(p, "bad search key") ;
  str = a->s ; len = a->len ;
  p->i++ ;
  if ((str[0] >= '0' && str[0] <= '9') || str[0] == '*' || str[0] == '$')
    return seqkey(p, k, str, len, 0) ;
  for (j = 0 ; j < sizeof flagkeys / sizeof *flagkeys ; j++)
    if (len == strlen(flagkeys[j].name) && imapcmd_is(p->c, p->i - 1, flagkeys[j].name))
    {
      N(s, k)->type = N_FLAGS ;
      N(s, k)->set = flagkeys[j].set ;
      N(s, k)->unset = flagkeys[j].unset ;
      return 1 ;
    }
  for (j = 0 ; j < sizeof datekeys / sizeof *datekeys ; j++)
    if (imapcmd_is(p->c, p->i - 1, datekeys[j].name))
    {
      int64_t day ;
      if (!datearg(p, &day)) return 0 ;
      N(s, k)->type = N_DATE ;
      N(s, k)->sent = datekeys[j].sent ;
      N(s, k)->op = datekeys[j].op ;
      N(s, k)->day = day ;
      N(s, k)->cost = datekeys[j].sent ? IMAPSEARCH_HEADER : IMAPSEARCH_INDEX ;
      return 1 ;
    }
  for (j = 0 ; j < sizeof hdrkeys / sizeof *hdrkeys ; j++)
    if (imapcmd_is(p->c, p->i - 1, hdrkeys[j]))
    {
      char const *v ;
      size_t vlen ;
      if (!strarg(p, &v, &vlen)) return 0 ;
      N(s, k)->type = N_HEADER ;
      N(s, k)->s = hdrkeys[j] ;
      N(s, k)->len = strlen(hdrkeys[j]) ;
      N(s, k)->cost = IMAPSEARCH_HEADER ;
      return needle(s, k, v, vlen) ? 1 : -1 ;
    }
  if (imapcmd_is(p->c, p->i - 1, "HEADER"))
  {
    char const *name, *v ;
    size_t namelen, vlen ;
    if (!strarg(p, &name, &namelen) || !strarg(p, &v, &vlen)) return 0 ;
    if (!namelen) return bad(p, "empty header field name") ;
    for (j = 0 ; j < namelen ; j++)
      if ((unsigned char)name[j] <= 32 || (unsigned char)name[j] >= 127 || name[j] == ':')
        return bad(p, "bad header field name") ;
    N(s, k)->type = N_HEADER ;
    N(s, k)->s = name ;
    N(s, k)->len = namelen ;
    N(s, k)->cost = IMAPSEARCH_HEADER ;
    return needle(s, k, v, vlen) ? 1 : -1 ;
  }
  if (imapcmd_is(p->c, p->i - 1, "BODY") || imapcmd_is(p->c, p->i - 1, "TEXT"))
  {
    char const *v ;
    size_t vlen ;
    int text = imapcmd_is(p->c, p->i - 1, "TEXT") ;
    if (!strarg(p, &v, &vlen)) return 0 ;
    N(s, k)->type = N_BODY ;
    N(s, k)->op = text ;
    N(s, k)->cost = IMAPSEARCH_BODY ;
    return needle(s, k, v, vlen) ? 1 : -1 ;
  }
  if (imapcmd_is(p->c, p->i - 1, "KEYWORD") || imapcmd_is(p->c, p->i - 1, "UNKEYWORD"))
  {
    struct imapcmd_arg const *b = imapcmd_arg(p->c, p->i) ;
    N(s, k)->neg = imapcmd_is(p->c, p->i - 1, "UNKEYWORD") ;
    if (!b || p->i >= p->end || (b->type != IMAPARG_ATOM && b->type != IMAPARG_NIL)) return bad(p, "missing keyword") ;
    N(s, k)->type = N_KEYWORD ;
    N(s, k)->s = b->s ;
    N(s, k)->len = b->len ;
    p->i++ ;
    return 1 ;
  }
  if (imapcmd_is(p->c, p->i - 1, "LARGER") || imapcmd_is(p->c, p->i - 1, "SMALLER"))
  {
    uint64_t n ;
    N(s, k)->type = imapcmd_is(p->c, p->i - 1, "LARGER") ? N_LARGER : N_SMALLER ;
    if (p->i >= p->end || !imapcmd_number(p->c, p->i, UINT64_MAX, &n)) return bad(p, "missing size") ;
    N(s, k)->n = n ;
    p->i++ ;
    return 1 ;
  }
  if (imapcmd_is(p->c, p->i - 1, "UID"))
  {
    struct imapcmd_arg const *b = imapcmd_arg(p->c, p->i) ;
    if (!b || p->i >= p->end || b->type != IMAPARG_ATOM) return bad(p, "missing UID set") ;
    p->i++ ;
    return seqkey(p, k, b->s, b->len, 1) ;
  }
  if (imapcmd_is(p->c, p->i - 1, "NOT"))
  {
    N(s, k)->type = N_NOT ;
    return key(p, k, depth + 1) ;
  }
  if (imapcmd_is(p->c, p->i - 1, "OR"))
  {
    int e ;
    N(s, k)->type = N_OR ;
    e = key(p, k, depth + 1) ;
    if (e <= 0) return e ;
    return key(p, k, depth + 1) ;
  }
  return bad(p, "unknown search key") ;
}

/* keys from p->i up to end, children of parent */
static int keys (struct parser *p, size_t parent, size_t end, unsigned int depth)
{
  size_t outer = p->end ;
  p->end = end ;
  while (p->i < end)
  {
    int e = key(p, parent, depth) ;
    if (e <= 0) return e ;
  }
  p->end = outer ;
  return 1 ;
}

/* Costs bottom up, and the children of AND and OR cheapest first (a
 * stable order).  Returns the cost of k, or -1 out of memory. */
static int order (struct imapsearch *s, size_t k)
{
  size_t c, nc = 0, i ;
  int cost = 0 ;
  size_t *kids ;
  unsigned char lvl ;
  if (N(s, k)->type != N_AND && N(s, k)->type != N_OR && N(s, k)->type != N_NOT) return N(s, k)->cost ;
  for (c = N(s, k)->child ; c != NONE ; c = N(s, c)->sib)
  {
    int cc = order(s, c) ;
    if (cc < 0) return -1 ;
    if (cc > cost) cost = cc ;
    nc++ ;
  }
  N(s, k)->cost = cost ;
  if (nc < 2) return cost ;
  kids = malloc(nc * sizeof *kids) ;
  if (!kids) return -1 ;
  i = 0 ;
  for (lvl = 0 ; lvl <= IMAPSEARCH_BODY ; lvl++)
    for (c = N(s, k)->child ; c != NONE ; c = N(s, c)->sib)
      if (N(s, c)->cost == lvl) kids[i++] = c ;
  N(s, k)->child = kids[0] ;
  for (i = 0 ; i + 1 < nc ; i++) N(s, kids[i])->sib = kids[i + 1] ;
  N(s, kids[nc - 1])->sib = NONE ;
  free(kids) ;
  return cost ;
}

int imapsearch_parse (struct imapsearch *s, struct imapcmd const *c, size_t i, char const **err)
{
  struct parser p = { .s = s, .c = c, .i = i, .end = c->nargs, .nkeys = 0, .err = 0 } ;
  size_t n, j ;
  int e ;
  for (j = 0, n = genalloc_len(struct imapseq, &s->seqs) ; j < n ; j++) imapseq_free(genalloc_s(struct imapseq, &s->seqs) + j) ;
  genalloc_setlen(struct imapseq, &s->seqs, 0) ;
  genalloc_setlen(struct node, &s->nodes, 0) ;
  genalloc_setlen(size_t, &s->fails, 0) ;
  s->strs.len = 0 ;
  s->ret = 0 ;
  s->esearch = 0 ;
  s->charset = 0 ;
  s->cost = 0 ;
  s->hasdollar = 0 ;
  genalloc_setlen(struct imapseq_range, &s->dollar.ranges, 0) ;
  s->dollar.resolved = 1 ;

  if (imapcmd_is(c, p.i, "RETURN"))
  {
    struct imapcmd_arg const *a = imapcmd_arg(c, p.i + 1) ;
    if (!a || p.i + 1 >= c->nargs || a->type != IMAPARG_LIST) { *err = "RETURN needs a list" ; return 0 ; }
    for (j = p.i + 2 ; j < a->next ; j++)
    {
      static struct { char const *name ; unsigned int bit ; } const opts[] =
      {
        { "MIN", IMAPSEARCH_RET_MIN }, { "MAX", IMAPSEARCH_RET_MAX }, { "ALL", IMAPSEARCH_RET_ALL },
        { "COUNT", IMAPSEARCH_RET_COUNT }, { "SAVE", IMAPSEARCH_RET_SAVE },
      } ;
      size_t o ;
      for (o = 0 ; o < sizeof opts / sizeof *opts ; o++)
        if (imapcmd_is(c, j, opts[o].name)) break ;
      if (o == sizeof opts / sizeof *opts) { *err = "unknown RETURN option" ; return 0 ; }
      s->ret |= opts[o].bit ;
    }
    if (!s->ret) s->ret = IMAPSEARCH_RET_ALL ;
    s->esearch = 1 ;
    p.i = a->next ;
  }
  if (imapcmd_is(c, p.i, "CHARSET"))
  {
    char const *cs ;
    size_t cslen ;
    if (p.i + 1 >= c->nargs || !imapcmd_astring(c, p.i + 1, 0, &cs, &cslen)) { *err = "CHARSET needs a name" ; return 0 ; }
    if (!(cslen == 5 && !strncasecmp(cs, "UTF-8", 5)) && !(cslen == 8 && !strncasecmp(cs, "US-ASCII", 8)))
    { *err = "unsupported charset" ; return -2 ; }
    s->charset = 1 ;
    p.i += 2 ;
  }
  if (p.i >= c->nargs) { *err = "missing search key" ; return 0 ; }
  s->root = newnode(s, N_AND, IMAPSEARCH_INDEX) ;
  if (s->root == NONE) return -1 ;
  e = keys(&p, s->root, c->nargs, 0) ;
  if (e < 0) return -1 ;
  if (!e) { *err = p.err ; return 0 ; }
  e = order(s, s->root) ;
  if (e < 0) return -1 ;
  s->cost = e ;
  return 1 ;
}

void imapsearch_prepare (struct imapsearch *s, uint32_t nmsgs, uint32_t maxuid)
{
  size_t k, n = genalloc_len(struct node, &s->nodes) ;
  for (k = 0 ; k < n ; k++)
  {
    struct node const *x = N(s, k) ;
    if (x->type == N_SEQ)
    {
      struct imapseq *q = genalloc_s(struct imapseq, &s->seqs) + x->seq ;
      /* the same text: as many ranges as before, no allocation */
      if (imapseq_parse(q, x->s, x->len) == 1) imapseq_resolve(q, x->uid ? maxuid : nmsgs) ;
    }
  }
}

int imapsearch_setdollar (struct imapsearch *s, uint32_t const *uids, size_t n)
{
  genalloc_setlen(struct imapseq_range, &s->dollar.ranges, 0) ;
  s->dollar.resolved = 0 ;
  for (size_t i = 0 ; i < n ; i++)
  {
    struct imapseq_range r = { .lo = uids[i], .hi = uids[i] } ;
    if (!uids[i]) continue ;
    if (!genalloc_append(struct imapseq_range, &s->dollar.ranges, &r)) return 0 ;
  }
  imapseq_resolve(&s->dollar, UINT32_MAX) ;
  return 1 ;
}

static int64_t dayof (int64_t t, int tzmin)
{
  int64_t l = t + (int64_t)tzmin * 60 ;
  return l >= 0 ? l / 86400 : -((-l + 86399) / 86400) ;
}

static int eval (struct imapsearch *s, size_t k, struct imapsearch_ops const *ops, void *ctx, uint32_t seq, int ceiling)
{
  struct node const *x = N(s, k) ;
  size_t c ;
  int r, res ;
  switch (x->type)
  {
    case N_AND :
      res = 1 ;
      for (c = x->child ; c != NONE ; c = N(s, c)->sib)
      {
        r = eval(s, c, ops, ctx, seq, ceiling) ;
        if (r == 0 || r == IMAPSEARCH_ERROR) return r ;
        if (r == IMAPSEARCH_UNKNOWN) res = r ;
      }
      return res ;
    case N_OR :
      res = 0 ;
      for (c = x->child ; c != NONE ; c = N(s, c)->sib)
      {
        r = eval(s, c, ops, ctx, seq, ceiling) ;
        if (r == 1 || r == IMAPSEARCH_ERROR) return r ;
        if (r == IMAPSEARCH_UNKNOWN) res = r ;
      }
      return res ;
    case N_NOT :
      r = eval(s, x->child, ops, ctx, seq, ceiling) ;
      return r == 0 || r == 1 ? !r : r ;
    default : break ;
  }
  if (x->cost > ceiling) return IMAPSEARCH_UNKNOWN ;
  switch (x->type)
  {
    case N_FLAGS :
    {
      unsigned int f ;
      if (!x->set && !x->unset) return 1 ;
      f = (*ops->flags)(ctx, seq) ;
      return (f & x->set) == x->set && !(f & x->unset) ;
    }
    case N_KEYWORD :
      return (*ops->keyword)(ctx, seq, x->s, x->len) ? !x->neg : x->neg ;
    case N_SEQ :
    {
      struct imapseq const *q = genalloc_s(struct imapseq, &s->seqs) + x->seq ;
      uint32_t n = x->uid ? (*ops->uid)(ctx, seq) : seq ;
      return imapseq_contains(q, n, 0) ;
    }
    case N_DOLLAR :
      return imapseq_contains(&s->dollar, (*ops->uid)(ctx, seq), 0) ;
    case N_LARGER : return (*ops->size)(ctx, seq) > x->n ;
    case N_SMALLER : return (*ops->size)(ctx, seq) < x->n ;
    case N_DATE :
    {
      int64_t t, day ;
      int tz ;
      r = 0 ;
      if (x->sent)
      {
        r = (*ops->sentdate)(ctx, seq, &t, &tz) ;
        if (r < 0) return IMAPSEARCH_ERROR ;
      }
      if (!r) (*ops->internaldate)(ctx, seq, &t, &tz) ;
      day = dayof(t, tz) ;
      return x->op == D_BEFORE ? day < x->day : x->op == D_ON ? day == x->day : day >= x->day ;
    }
    case N_HEADER :
      s->scratch.len = 0 ;
      r = (*ops->header)(ctx, seq, x->s, x->len, &s->scratch) ;
      if (r < 0) return IMAPSEARCH_ERROR ;
      if (!r) return 0 ;
      return imapsearch_contains(s->scratch.s, s->scratch.len, s->strs.s + x->needle, x->needlelen) ;
    case N_BODY :
    {
      struct imapsearch_match m ;
      m.needle = s->strs.s + x->needle ;
      m.len = x->needlelen ;
      m.fail = genalloc_s(size_t, &s->fails) + x->fail ;
      imapsearch_match_reset(&m) ;
      r = (*ops->contains)(ctx, seq, x->op, &m) ;
      return r < 0 ? IMAPSEARCH_ERROR : !!r ;
    }
  }
  errno = EINVAL ;
  return IMAPSEARCH_ERROR ;
}

int imapsearch_eval (struct imapsearch *s, struct imapsearch_ops const *ops, void *ctx, uint32_t seq, int ceiling)
{
  if (!genalloc_len(struct node, &s->nodes)) return 0 ;
  return eval(s, s->root, ops, ctx, seq, ceiling) ;
}

void imapsearch_free (struct imapsearch *s)
{
  size_t i, n = genalloc_len(struct imapseq, &s->seqs) ;
  for (i = 0 ; i < n ; i++) imapseq_free(genalloc_s(struct imapseq, &s->seqs) + i) ;
  genalloc_free(struct imapseq, &s->seqs) ;
  genalloc_free(struct node, &s->nodes) ;
  genalloc_free(size_t, &s->fails) ;
  stralloc_free(&s->strs) ;
  stralloc_free(&s->scratch) ;
  imapseq_free(&s->dollar) ;
}
