/* banwatch's lazy DFA for filter patterns.  See banre.h.
 *
 * The pattern is parsed into a small tree (characters as 256-bit byte
 * sets, concatenation, alternation, repetition), then the tree is turned
 * into a Glushkov automaton: one position per character atom (intervals
 * copy their atom), with the first, last and follow sets of each.  A DFA
 * state is a set of positions; its transitions are built the first time
 * a byte needs them. */

#include <stdlib.h>
#include <string.h>

#include "banwatch/banre.h"

#define W BANRE_W

enum { N_CHAR, N_CAT, N_ALT, N_REP, N_EMPTY } ;

typedef struct rnode_s rnode ;
struct rnode_s
{
  int type ;
  int child ;     /* first child (CAT, ALT, REP) */
  int next ;      /* next sibling, -1 */
  int m, n ;      /* REP: {m,n}, n = -1 for no upper bound */
  int cls ;       /* CHAR: index in the class table */
} ;

typedef struct rparse_s rparse ;
struct rparse_s
{
  char const *p ;
  size_t n, i ;
  rnode *nodes ;
  size_t nn, maxn ;
  uint8_t (*cls)[32] ;
  size_t nc, maxc ;
} ;

#define MAXDEPTH 32
#define REPMAX 1000

static int newnode (rparse *x, int type)
{
  if (x->nn >= x->maxn) return -1 ;
  rnode *r = x->nodes + x->nn ;
  r->type = type ; r->child = -1 ; r->next = -1 ; r->m = r->n = 0 ; r->cls = -1 ;
  return (int)x->nn++ ;
}

static int newclass (rparse *x)
{
  if (x->nc >= x->maxc) return -1 ;
  memset(x->cls[x->nc], 0, 32) ;
  return (int)x->nc++ ;
}

#define BSET(b, c) ((b)[(unsigned char)(c) >> 3] |= (uint8_t)(1u << ((unsigned char)(c) & 7)))

/* [:name:] in the C locale */
static int class_named (uint8_t *b, char const *name, size_t len)
{
  static char const *const names[] = { "alpha", "digit", "alnum", "upper", "lower", "space", "blank", "punct", "print", "graph", "cntrl", "xdigit", 0 } ;
  int k = 0 ;
  for (; names[k] ; k++) if (strlen(names[k]) == len && !memcmp(names[k], name, len)) break ;
  if (!names[k]) return 0 ;
  for (unsigned int c = 0 ; c < 128 ; c++)
  {
    int up = c >= 'A' && c <= 'Z', lo = c >= 'a' && c <= 'z', dg = c >= '0' && c <= '9' ;
    int pr = c >= 0x20 && c < 0x7f, gr = c > 0x20 && c < 0x7f ;
    int in = 0 ;
    switch (k)
    {
      case 0 : in = up || lo ; break ;
      case 1 : in = dg ; break ;
      case 2 : in = up || lo || dg ; break ;
      case 3 : in = up ; break ;
      case 4 : in = lo ; break ;
      case 5 : in = c == ' ' || (c >= '\t' && c <= '\r') ; break ;
      case 6 : in = c == ' ' || c == '\t' ; break ;
      case 7 : in = gr && !up && !lo && !dg ; break ;
      case 8 : in = pr ; break ;
      case 9 : in = gr ; break ;
      case 10 : in = c < 0x20 || c == 0x7f ; break ;
      case 11 : in = dg || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ; break ;
    }
    if (in) BSET(b, c) ;
  }
  return 1 ;
}

/* a bracket expression at p[i] == '[' */
static int parse_bracket (rparse *x)
{
  char const *p = x->p ;
  size_t n = x->n, j = x->i + 1 ;
  int neg = 0, first = 1, k = newclass(x) ;
  if (k < 0) return -1 ;
  uint8_t *b = x->cls[k] ;
  if (j < n && p[j] == '^') { neg = 1 ; j++ ; }
  for (;;)
  {
    if (j >= n) return -1 ;
    unsigned char c = p[j] ;
    if (c == ']' && !first) { j++ ; break ; }
    first = 0 ;
    if (c >= 0x80 || !c) return -1 ;
    if (c == '[' && j + 1 < n && (p[j+1] == ':' || p[j+1] == '.' || p[j+1] == '='))
    {
      if (p[j+1] != ':') return -1 ;
      size_t e = j + 2 ;
      while (e + 1 < n && !(p[e] == ':' && p[e+1] == ']')) e++ ;
      if (e + 1 >= n || !class_named(b, p + j + 2, e - j - 2)) return -1 ;
      j = e + 2 ;
      if (j < n && p[j] == '-' && j + 1 < n && p[j+1] != ']') return -1 ;
      continue ;
    }
    j++ ;
    if (j + 1 < n && p[j] == '-' && p[j+1] != ']')
    {
      unsigned char hi = p[j+1] ;
      if (hi >= 0x80 || hi == '[' || hi < c) return -1 ;
      for (unsigned int d = c ; d <= hi ; d++) BSET(b, d) ;
      j += 2 ;
      if (j + 1 < n && p[j] == '-' && p[j+1] != ']') return -1 ;   /* a-c-e */
      continue ;
    }
    BSET(b, c) ;
  }
  if (neg) for (unsigned int q = 0 ; q < 32 ; q++) b[q] = ~b[q] ;
  b[0] &= (uint8_t)~1u ;   /* never NUL */
  x->i = j ;
  int r = newnode(x, N_CHAR) ;
  if (r >= 0) x->nodes[r].cls = k ;
  return r ;
}

static int parse_alt (rparse *, int) ;

static int parse_atom (rparse *x, int depth)
{
  char const *p = x->p ;
  unsigned char c = p[x->i] ;
  int k, r ;
  switch (c)
  {
    case '(' :
      if (depth >= MAXDEPTH) return -1 ;
      x->i++ ;
      if (x->i >= x->n || p[x->i] == ')') return -1 ;
      r = parse_alt(x, depth + 1) ;
      if (r < 0 || x->i >= x->n || p[x->i] != ')') return -1 ;
      x->i++ ;
      return r ;
    case '[' : return parse_bracket(x) ;
    case '.' :
      k = newclass(x) ;
      if (k < 0) return -1 ;
      memset(x->cls[k], 0xff, 32) ;
      x->cls[k][0] &= (uint8_t)~1u ;
      x->i++ ;
      break ;
    case '\\' :
      if (x->i + 1 >= x->n) return -1 ;
      c = p[x->i + 1] ;
      if (c >= 0x80 || !c || (c >= '0' && c <= '9') || strchr("wWsSbB<>`'", c)) return -1 ;
      k = newclass(x) ;
      if (k < 0) return -1 ;
      BSET(x->cls[k], c) ;
      x->i += 2 ;
      break ;
    case '*' : case '+' : case '?' : case '{' : case '|' : case ')' : case '^' : case '$' :
      return -1 ;
    default :
      if (c >= 0x80 || !c) return -1 ;
      k = newclass(x) ;
      if (k < 0) return -1 ;
      BSET(x->cls[k], c) ;
      x->i++ ;
      break ;
  }
  r = newnode(x, N_CHAR) ;
  if (r >= 0) x->nodes[r].cls = k ;
  return r ;
}

static int parse_uint (rparse *x, int *v)
{
  size_t s = x->i ;
  long u = 0 ;
  while (x->i < x->n && x->p[x->i] >= '0' && x->p[x->i] <= '9')
  {
    u = u * 10 + (x->p[x->i++] - '0') ;
    if (u > REPMAX) return -1 ;
  }
  if (x->i == s) return 0 ;
  *v = (int)u ;
  return 1 ;
}

static int parse_piece (rparse *x, int depth)
{
  int a = parse_atom(x, depth), nq = 0 ;
  while (a >= 0 && x->i < x->n)
  {
    char c = x->p[x->i] ;
    int m, n ;
    if (c == '*') { m = 0 ; n = -1 ; x->i++ ; }
    else if (c == '+') { m = 1 ; n = -1 ; x->i++ ; }
    else if (c == '?') { m = 0 ; n = 1 ; x->i++ ; }
    else if (c == '{')
    {
      x->i++ ;
      int r = parse_uint(x, &m) ;
      if (r < 0) return -1 ;
      if (!r) m = 0 ;
      if (x->i < x->n && x->p[x->i] == ',')
      {
        x->i++ ;
        r = parse_uint(x, &n) ;
        if (r < 0) return -1 ;
        if (!r) n = -1 ;
      }
      else if (!r) return -1 ;
      else n = m ;
      if (x->i >= x->n || x->p[x->i] != '}' || (n >= 0 && n < m)) return -1 ;
      x->i++ ;
    }
    else break ;
    if (++nq > 4) return -1 ;   /* stacked quantifiers: keep the tree shallow */
    int r = newnode(x, N_REP) ;
    if (r < 0) return -1 ;
    x->nodes[r].child = a ; x->nodes[r].m = m ; x->nodes[r].n = n ;
    a = r ;
  }
  return a ;
}

static int parse_cat (rparse *x, int depth)
{
  int cat = -1, lastc = -1 ;
  while (x->i < x->n && x->p[x->i] != '|' && x->p[x->i] != ')')
  {
    int a = parse_piece(x, depth) ;
    if (a < 0) return -1 ;
    if (cat < 0)
    {
      cat = newnode(x, N_CAT) ;
      if (cat < 0) return -1 ;
      x->nodes[cat].child = a ;
    }
    else x->nodes[lastc].next = a ;
    lastc = a ;
  }
  return cat ;   /* -1 when empty: an empty alternative is not supported */
}

static int parse_alt (rparse *x, int depth)
{
  int b = parse_cat(x, depth) ;
  if (b < 0 || x->i >= x->n || x->p[x->i] != '|') return b ;
  int alt = newnode(x, N_ALT), last = b ;
  if (alt < 0) return -1 ;
  x->nodes[alt].child = b ;
  while (x->i < x->n && x->p[x->i] == '|')
  {
    x->i++ ;
    int c = parse_cat(x, depth) ;
    if (c < 0) return -1 ;
    x->nodes[last].next = c ;
    last = c ;
  }
  return alt ;
}

/* positions the Glushkov automaton needs (saturating) */
static unsigned long count_pos (rparse const *x, int k)
{
  rnode const *r = x->nodes + k ;
  unsigned long t = 0 ;
  switch (r->type)
  {
    case N_CHAR : return 1 ;
    case N_EMPTY : return 0 ;
    case N_CAT : case N_ALT :
      for (int c = r->child ; c >= 0 ; c = x->nodes[c].next)
      {
        t += count_pos(x, c) ;
        if (t > BANRE_MAXPOS) return BANRE_MAXPOS + 1 ;
      }
      return t ;
    default :
    {
      unsigned long copies = r->n < 0 ? (r->m ? (unsigned long)r->m : 1) : (unsigned long)r->n ;
      t = count_pos(x, r->child) ;
      if (copies && t > (BANRE_MAXPOS + 1) / copies) return BANRE_MAXPOS + 1 ;
      return t * copies ;
    }
  }
}

typedef struct frag_s frag ;
struct frag_s { int nullable ; uint64_t first[W], last[W] ; } ;

static void frag_empty (frag *f)
{
  f->nullable = 1 ;
  memset(f->first, 0, sizeof f->first) ;
  memset(f->last, 0, sizeof f->last) ;
}

/* follow(x) |= to, for every x in from */
static void link_sets (banre *re, uint64_t const *from, uint64_t const *to)
{
  for (unsigned int w = 0 ; w < W ; w++)
  {
    uint64_t b = from[w] ;
    while (b)
    {
      unsigned int x = w * 64 + (unsigned int)__builtin_ctzll(b) ;
      b &= b - 1 ;
      uint64_t *f = re->follow + (size_t)x * W ;
      for (unsigned int v = 0 ; v < W ; v++) f[v] |= to[v] ;
    }
  }
}

static void frag_cat (banre *re, frag *a, frag const *b)
{
  link_sets(re, a->last, b->first) ;
  if (a->nullable) for (unsigned int w = 0 ; w < W ; w++) a->first[w] |= b->first[w] ;
  for (unsigned int w = 0 ; w < W ; w++) a->last[w] = b->last[w] | (b->nullable ? a->last[w] : 0) ;
  a->nullable = a->nullable && b->nullable ;
}

static void glushkov (banre *re, rparse const *x, int k, frag *out)
{
  rnode const *r = x->nodes + k ;
  frag f ;
  frag_empty(out) ;
  switch (r->type)
  {
    case N_CHAR :
    {
      unsigned int pos = ++re->npos ;
      uint8_t const *b = x->cls[r->cls] ;
      for (unsigned int c = 0 ; c < 256 ; c++)
        if (b[c >> 3] & (1u << (c & 7))) re->bytepos[(size_t)c * W + pos / 64] |= (uint64_t)1 << (pos % 64) ;
      out->nullable = 0 ;
      out->first[pos / 64] = out->last[pos / 64] = (uint64_t)1 << (pos % 64) ;
      return ;
    }
    case N_EMPTY : return ;
    case N_CAT :
      for (int c = r->child ; c >= 0 ; c = x->nodes[c].next)
      {
        glushkov(re, x, c, &f) ;
        frag_cat(re, out, &f) ;
      }
      return ;
    case N_ALT :
      out->nullable = 0 ;
      for (int c = r->child ; c >= 0 ; c = x->nodes[c].next)
      {
        glushkov(re, x, c, &f) ;
        out->nullable |= f.nullable ;
        for (unsigned int w = 0 ; w < W ; w++) { out->first[w] |= f.first[w] ; out->last[w] |= f.last[w] ; }
      }
      return ;
    default :   /* N_REP: copies of the child, the optional ones nullable */
    {
      int copies = r->n < 0 ? (r->m ? r->m : 1) : r->n ;
      for (int i = 0 ; i < copies ; i++)
      {
        glushkov(re, x, r->child, &f) ;
        if (r->n < 0 && i == copies - 1)
        {
          link_sets(re, f.last, f.first) ;   /* the last copy repeats */
          if (!r->m) f.nullable = 1 ;
        }
        if (r->n >= 0 && i >= r->m) f.nullable = 1 ;
        frag_cat(re, out, &f) ;
      }
      return ;
    }
  }
}

void banre_free (banre *re)
{
  free(re->follow) ; free(re->bytepos) ; free(re->sets) ; free(re->reach) ;
  free(re->trans) ; free(re->acc) ; free(re->absorb) ; free(re->ht) ;
  free(re->fbyte) ; free(re->runlen) ; free(re->runend) ; free(re->run) ;
  free(re->loop) ;
  memset(re, 0, sizeof *re) ;
}

static uint64_t set_hash (uint64_t const *s)
{
  uint64_t h = 0x9e3779b97f4a7c15ULL ;
  for (unsigned int w = 0 ; w < W ; w++) { h ^= s[w] ; h *= 0xff51afd7ed558ccdULL ; h ^= h >> 29 ; }
  return h ;
}

/* The classes whose bytes lead from the state of positions s (reach rc)
 * back to it, a bit each: the walk skips a run of them with one class
 * look-up a byte, no transition ("[0-9]+", a host name).  0 if none, or
 * if there are more than 64 classes. */
static uint64_t self_loops (banre const *re, uint64_t const *s, uint64_t const *rc)
{
  uint64_t m = 0, seen = 1 ;   /* class 0, NUL, never */
  if (re->shift > 6) return 0 ;
  for (unsigned int c = 1 ; c < 256 ; c++)
  {
    unsigned int k = re->cmap[c] ;
    if (seen >> k & 1) continue ;
    seen |= (uint64_t)1 << k ;
    uint64_t const *bp = re->bytepos + (size_t)c * W ;
    unsigned int w = 0 ;
    for (; w < W ; w++)
      if (((rc[w] & bp[w]) | (!w && !re->bol ? 1 : 0)) != s[w]) break ;
    if (w == W) m |= (uint64_t)1 << k ;
  }
  return m ;
}

/* the state of positions set: found or made; -1 on failure */
static int state_get (banre *re, uint64_t const *set)
{
  size_t h = (size_t)set_hash(set) & re->htmask ;
  for (;;)
  {
    uint32_t v = re->ht[h] ;
    if (!v) break ;
    if (!memcmp(re->sets + (size_t)(v - 1) * W, set, W * 8)) return (int)(v - 1) ;
    h = (h + 1) & re->htmask ;
  }
  if (re->nst >= BANRE_MAXSTATES) return -1 ;
  if (re->nst == re->cap)
  {
    uint32_t cap = re->cap ? re->cap * 2 : 16 ;
    uint64_t *s = realloc(re->sets, (size_t)cap * W * 8) ;
    if (!s) return -1 ;
    re->sets = s ;
    s = realloc(re->reach, (size_t)cap * W * 8) ;
    if (!s) return -1 ;
    re->reach = s ;
    int32_t *t = realloc(re->trans, ((size_t)cap << re->shift) * sizeof(int32_t)) ;
    if (!t) return -1 ;
    re->trans = t ;
    uint8_t *a = realloc(re->acc, cap) ;
    if (!a) return -1 ;
    re->acc = a ;
    a = realloc(re->absorb, cap) ;
    if (!a) return -1 ;
    re->absorb = a ;
    a = realloc(re->fbyte, cap) ;
    if (!a) return -1 ;
    re->fbyte = a ;
    int8_t *rl = realloc(re->runlen, cap) ;
    if (!rl) return -1 ;
    re->runlen = rl ;
    t = realloc(re->runend, (size_t)cap * sizeof(int32_t)) ;
    if (!t) return -1 ;
    re->runend = t ;
    uint8_t (*ru)[BANRE_RUN] = realloc(re->run, (size_t)cap * BANRE_RUN) ;
    if (!ru) return -1 ;
    re->run = ru ;
    uint64_t *lp = realloc(re->loop, (size_t)cap * sizeof(uint64_t)) ;
    if (!lp) return -1 ;
    re->loop = lp ;
    re->cap = cap ;
  }
  uint32_t id = re->nst ;
  uint64_t *s = re->sets + (size_t)id * W, *rc = re->reach + (size_t)id * W ;
  int acc = 0 ;
  memcpy(s, set, W * 8) ;
  memset(rc, 0, W * 8) ;
  for (unsigned int w = 0 ; w < W ; w++)
  {
    uint64_t b = s[w] ;
    if (b & re->last[w]) acc = 1 ;
    while (b)
    {
      unsigned int p = w * 64 + (unsigned int)__builtin_ctzll(b) ;
      b &= b - 1 ;
      uint64_t const *f = re->follow + (size_t)p * W ;
      for (unsigned int v = 0 ; v < W ; v++) rc[v] |= f[v] ;
    }
  }
  if ((s[0] & 1) && re->nullable) acc = 1 ;
  re->acc[id] = acc ;
  re->absorb[id] = 0 ;
  re->fbyte[id] = 0 ;
  re->runlen[id] = -1 ;
  if (re->bol)
  {
    /* one byte only (not NUL) leads anywhere but the dead state? */
    unsigned int one = 0, k = 0 ;
    for (unsigned int c = 1 ; c < 256 && k < 2 ; c++)
    {
      uint64_t const *bp = re->bytepos + (size_t)c * W ;
      for (unsigned int w = 0 ; w < W ; w++) if (rc[w] & bp[w]) { one = c ; k++ ; break ; }
    }
    if (k == 1) { re->absorb[id] = 4 ; re->fbyte[id] = (uint8_t)one ; }
  }
  if (acc)
  {
    /* accepting for good: every byte but NUL leads back here (".*$") */
    int all = 1 ;
    for (unsigned int c = 1 ; c < 256 && all ; c++)
    {
      uint64_t const *bp = re->bytepos + (size_t)c * W ;
      for (unsigned int w = 0 ; w < W ; w++)
        if (((rc[w] & bp[w]) | (!w && !re->bol ? 1 : 0)) != s[w]) { all = 0 ; break ; }
    }
    if (all) re->absorb[id] = 2 ;
  }
  memset(re->trans + ((size_t)id << re->shift), 0xff, ((size_t)1 << re->shift) * sizeof(int32_t)) ;
  re->ht[h] = id + 1 ;
  re->nst++ ;
  int empty = 1 ;
  for (unsigned int w = 0 ; w < W ; w++) if (s[w]) empty = 0 ;
  if (empty) { re->dead = (int32_t)(id << re->shift) ; re->absorb[id] = 1 ; }
  re->loop[id] = re->absorb[id] ? 0 : self_loops(re, s, rc) ;
  if (re->loop[id]) re->absorb[id] = 8 ;
  return (int)id ;
}

int banre_compile (banre *re, char const *p, size_t n)
{
  rparse x = { p, n, 0, 0, 0, 2 * n + 4, 0, 0, n + 1 } ;
  int root ;
  memset(re, 0, sizeof *re) ;
  re->dead = -1 ;
  if (n && p[0] == '^') { re->bol = 1 ; x.i = 1 ; }
  if (n > x.i && p[n-1] == '$')
  {
    size_t bs = 0 ;
    while (bs + 2 <= n && p[n - 2 - bs] == '\\') bs++ ;
    if (!(bs & 1)) { re->eol = 1 ; x.n = n - 1 ; }
  }
  x.nodes = malloc(x.maxn * sizeof(rnode)) ;
  x.cls = malloc(x.maxc * 32) ;
  if (!x.nodes || !x.cls) goto fail ;
  if (x.i == x.n) root = newnode(&x, N_EMPTY) ;
  else
  {
    root = parse_alt(&x, 0) ;
    if (root < 0 || x.i != x.n) goto fail ;
    /* "^a|b$" is not "^(a|b)$" */
    if ((re->bol || re->eol) && x.nodes[root].type == N_ALT) goto fail ;
  }
  if (root < 0 || count_pos(&x, root) > BANRE_MAXPOS) goto fail ;
  re->follow = calloc((size_t)(BANRE_MAXPOS + 1) * W, 8) ;
  re->bytepos = calloc((size_t)256 * W, 8) ;
  re->ht = calloc((size_t)BANRE_MAXSTATES * 2, sizeof(uint32_t)) ;
  if (!re->follow || !re->bytepos || !re->ht) goto fail ;
  re->htmask = (size_t)BANRE_MAXSTATES * 2 - 1 ;
  {
    frag f ;
    glushkov(re, &x, root, &f) ;
    memcpy(re->follow, f.first, sizeof f.first) ;   /* follow(start) */
    memcpy(re->last, f.last, sizeof f.last) ;
    re->nullable = f.nullable ;
  }
  {
    /* byte classes: bytes with the same positions behave the same in
     * every state, one column of the transition table each */
    unsigned int nc = 1 ;
    re->cmap[0] = 0 ;
    for (unsigned int c = 1 ; c < 256 ; c++)
    {
      unsigned int d = 1 ;
      for (; d < c ; d++)
        if (!memcmp(re->bytepos + (size_t)c * W, re->bytepos + (size_t)d * W, W * 8)) break ;
      re->cmap[c] = d < c ? re->cmap[d] : (uint8_t)nc++ ;
    }
    re->shift = 0 ;
    while ((1u << re->shift) < nc) re->shift++ ;
  }
  {
    uint64_t s0[W] = { 1 } ;
    int st = state_get(re, s0) ;
    if (st < 0) goto fail ;
    re->start = (int32_t)((unsigned int)st << re->shift) ;
  }
  free(x.nodes) ; free(x.cls) ;
  return 1 ;
 fail:
  free(x.nodes) ; free(x.cls) ;
  banre_free(re) ;
  return 0 ;
}

/* the transition of the state at offset st on byte c, built: the next
 * state's offset, or -1 if it can't be.  The table holds it as -2 - the
 * offset when that state has something to do (absorb[] not 0): the walk
 * then tests one sign, not the absorb byte of every state it enters. */
static int32_t step (banre *re, int32_t st, unsigned char c)
{
  uint64_t t[W] ;
  if (!c) return -1 ;   /* NUL: regexec's business */
  uint64_t const *rc = re->reach + (size_t)(st >> re->shift) * W, *bp = re->bytepos + (size_t)c * W ;
  for (unsigned int w = 0 ; w < W ; w++) t[w] = rc[w] & bp[w] ;
  if (!re->bol) t[0] |= 1 ;   /* a match may start anywhere */
  int r = state_get(re, t) ;
  if (r < 0) return -1 ;
  int32_t off = (int32_t)((unsigned int)r << re->shift) ;
  re->trans[(size_t)st + re->cmap[c]] = re->absorb[r] ? -2 - off : off ;
  return off ;
}

/* the run of fixed text from state id: its forced bytes, state after
 * state, up to BANRE_RUN; 0 if a state could not be built */
static int run_build (banre *re, uint32_t id)
{
  int32_t cur = (int32_t)(id << re->shift) ;
  uint8_t buf[BANRE_RUN] ;
  int len = 0 ;
  while (len < BANRE_RUN)
  {
    uint8_t c = re->fbyte[(uint32_t)cur >> re->shift] ;
    if (!c) break ;
    int32_t t = re->trans[cur + re->cmap[c]] ;
    if (t < -1) t = -2 - t ;
    else if (t < 0 && (t = step(re, cur, c)) < 0) return 0 ;
    buf[len++] = c ;
    cur = t ;
  }
  memcpy(re->run[id], buf, len) ;
  re->runlen[id] = (int8_t)len ;
  re->runend[id] = cur ;
  return 1 ;
}

/* a[0..n) == b[0..n) for 2 <= n <= BANRE_RUN: a few loads, overlapping
 * at the end, instead of a memcmp call (runs are short; every matching
 * line takes two or three) */
static inline int runeq (unsigned char const *a, unsigned char const *b, size_t n)
{
  if (n >= 8)
  {
    uint64_t x, y, d = 0 ;
    size_t i = 0 ;
    for (; i + 8 <= n ; i += 8) { memcpy(&x, a + i, 8) ; memcpy(&y, b + i, 8) ; d |= x ^ y ; }
    if (i < n) { memcpy(&x, a + n - 8, 8) ; memcpy(&y, b + n - 8, 8) ; d |= x ^ y ; }
    return !d ;
  }
  if (n >= 4)
  {
    uint32_t x0, y0, x1, y1 ;
    memcpy(&x0, a, 4) ; memcpy(&y0, b, 4) ; memcpy(&x1, a + n - 4, 4) ; memcpy(&y1, b + n - 4, 4) ;
    return !((x0 ^ y0) | (x1 ^ y1)) ;
  }
  uint16_t x0, y0, x1, y1 ;
  memcpy(&x0, a, 2) ; memcpy(&y0, b, 2) ; memcpy(&x1, a + n - 2, 2) ; memcpy(&y1, b + n - 2, 2) ;
  return !((x0 ^ y0) | (x1 ^ y1)) ;
}

int banre_match (banre *re, char const *s, size_t n)
{
  int32_t st = re->start ;
  int32_t const *trans = re->trans ;
  unsigned char const *u = (unsigned char const *)s ;
  uint8_t const *cmap = re->cmap ;
  unsigned int const sh = re->shift ;
  if (!re->follow) return -1 ;
  if (re->eol)
  {
    /* the dead state loops on itself, so does an accept-all one (".*$"):
     * the answer is known there.  From a state where one byte only
     * leads on, the fixed text ahead is one comparison (if it differs, the
     * bytes are stepped as usual).  In a state that some bytes keep it
     * in, those are skipped with a class look-up each. */
    uint8_t const *absorb = re->absorb ;
    for (size_t i = 0 ; i < n ; i++)
    {
      int32_t t = trans[st + cmap[u[i]]] ;
      if (t >= 0) { st = t ; continue ; }   /* a state with nothing to do */
      if (t < -1) t = -2 - t ;
      else
      {
        if ((t = step(re, st, u[i])) < 0) return -1 ;
        trans = re->trans ;
        absorb = re->absorb ;
      }
      st = t ;
      uint8_t a = absorb[st >> sh] ;
      if (!a) continue ;
      if (a == 1) return 0 ;
      if (a == 2) return memchr(u + i + 1, 0, n - i - 1) ? -1 : 1 ;   /* a NUL: regexec's business */
      uint32_t id = (uint32_t)st >> sh ;
      if (a == 8)
      {
        /* the bytes that keep it here: no transition to follow */
        uint64_t lp = re->loop[id] ;
        while (i + 1 < n && (lp >> cmap[u[i + 1]] & 1)) i++ ;
        continue ;
      }
      if (re->runlen[id] < 0)
      {
        if (!run_build(re, id)) return -1 ;
        trans = re->trans ;
        absorb = re->absorb ;
      }
      size_t rl = (size_t)re->runlen[id] ;
      if (rl >= 2 && n - i - 1 >= rl && runeq(u + i + 1, re->run[id], rl))
      {
        i += rl ;
        st = re->runend[id] ;
      }
    }
    return re->acc[st >> sh] ;
  }
  if (re->acc[st >> sh]) return 1 ;
  for (size_t i = 0 ; i < n ; i++)
  {
    int32_t t = trans[st + cmap[u[i]]] ;
    if (t < -1) t = -2 - t ;
    else if (t < 0)
    {
      if ((t = step(re, st, u[i])) < 0) return -1 ;
      trans = re->trans ;
    }
    if (t == re->dead) return 0 ;
    st = t ;
    if (re->acc[st >> sh]) return 1 ;
  }
  return 0 ;
}
