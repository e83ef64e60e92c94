/* fuzz-imapcmd: libFuzzer target for imapd/cmd.c and imapd/search.c, the
 * way yubin-imapmail uses them.
 *
 * The first octets choose the reader's settings (LITERAL-, the literal
 * limits, APPEND streaming) and a seed; the rest is fed to the reader in
 * pseudo-random chunk sizes.  Checks on every input: each call uses at
 * most what it is given and makes progress, LITDATA chunks lie inside the
 * input and add up to the literal's size, the command stays within its
 * limits; every complete command is parsed, and a parsed one has a
 * consistent argument tree (next, n, strings inside the buffer); each
 * argument goes through the FETCH attribute parser (and its names), the
 * sequence-set parser (contains / resolve / next agree), the date
 * parsers, astring and flag lists; SEARCH is parsed from the first
 * arguments and evaluated on two fake messages at every cost ceiling (a
 * lower ceiling never contradicts a higher one); a string argument
 * quoted by imapcmd_catstring parses back to itself.  Aborts on any
 * violation. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <skalibs/stralloc.h>

#include "imapd/cmd.h"
#include "imapd/search.h"

char const *PROG = "fuzz-imapcmd" ;

#define must(x) do { if (!(x)) abort() ; } while (0)

static struct imapcmd cmd = IMAPCMD_ZERO, cmd2 = IMAPCMD_ZERO ;
static struct imapfetch fetch = IMAPFETCH_ZERO ;
static struct imapsearch srch = IMAPSEARCH_ZERO ;
static struct imapseq seq = IMAPSEQ_ZERO ;
static stralloc sa = STRALLOC_ZERO ;
static genalloc kw = GENALLOC_ZERO ;

static unsigned int f_flags (void *ctx, uint32_t n) { (void)ctx ; return n == 1 ? IMAPFLAG_SEEN | IMAPFLAG_RECENT : IMAPFLAG_DELETED ; }
static int f_keyword (void *ctx, uint32_t n, char const *k, size_t len) { (void)ctx ; return n == 1 && len == 4 && !memcmp(k, "work", 4) ; }
static uint32_t f_uid (void *ctx, uint32_t n) { (void)ctx ; return n * 7 ; }
static uint64_t f_size (void *ctx, uint32_t n) { (void)ctx ; return n * 1000 ; }
static void f_idate (void *ctx, uint32_t n, int64_t *t, int *tz) { (void)ctx ; *t = 760093200 + n * 86400 ; *tz = 60 ; }
static int f_sentdate (void *ctx, uint32_t n, int64_t *t, int *tz) { (void)ctx ; if (n == 2) return 0 ; *t = 760000000 ; *tz = -300 ; return 1 ; }
static int f_header (void *ctx, uint32_t n, char const *name, size_t len, stralloc *out)
{
  (void)ctx ; (void)name ;
  if (len == 2 && n == 2) return 0 ;
  return stralloc_cats(out, "Caf\xc3\xa9 Alice <alice@example.com>") ? 1 : -1 ;
}
static int f_contains (void *ctx, uint32_t n, int text, struct imapsearch_match *m)
{
  static char const body[] = "The quick brown fox \xc3\x89T\xc3\x89 jumps" ;
  (void)ctx ;
  if (text) imapsearch_match_feed(m, "Subject: x\r\n\r\n", 14) ;
  for (size_t i = 0 ; i < sizeof body - 1 ; i += n) imapsearch_match_feed(m, body + i, i + n <= sizeof body - 1 ? n : sizeof body - 1 - i) ;
  return m->found ;
}
static struct imapsearch_ops const ops =
{
  .flags = &f_flags, .keyword = &f_keyword, .uid = &f_uid, .size = &f_size,
  .internaldate = &f_idate, .sentdate = &f_sentdate, .header = &f_header, .contains = &f_contains,
} ;

static void check_tree (struct imapcmd_reader const *r, struct imapcmd const *c)
{
  size_t n = genalloc_len(struct imapcmd_arg, &c->args), i ;
  must(c->nargs == n) ;
  for (i = 0 ; i < n ; i++)
  {
    struct imapcmd_arg const *a = imapcmd_arg(c, i) ;
    must(a->type <= IMAPARG_LIST) ;
    must(a->next > i && a->next <= n) ;
    if (a->type == IMAPARG_LIST)
    {
      size_t j, kids = 0 ;
      for (j = i + 1 ; j < a->next ; j = imapcmd_arg(c, j)->next) kids++ ;
      must(j == a->next && kids == a->n) ;
    }
    else
    {
      must(a->next == i + 1) ;
      if (!(a->type == IMAPARG_LITERAL && a->streamed))
        must(a->s >= r->buf.s && a->s + a->len <= r->buf.s + r->buf.len) ;
      if (a->type == IMAPARG_ATOM) must(a->len) ;
    }
  }
  must(strlen(c->name) < IMAPCMD_NAMEMAX) ;
  must(c->tag[0]) ;
}

static void check_seq (char const *s, size_t len)
{
  uint32_t n, prev, count = 0 ;
  if (imapseq_parse(&seq, s, len) != 1) return ;
  if (seq.dollar) return ;
  /* contains before and after resolving agree on a few numbers */
  {
    static uint32_t const probe[] = { 1, 2, 3, 5, 9, 10, 11, 100, 4294967295u } ;
    int before[9] ;
    for (n = 0 ; n < 9 ; n++) before[n] = imapseq_contains(&seq, probe[n], 10) ;
    imapseq_resolve(&seq, 10) ;
    for (n = 0 ; n < 9 ; n++) must(imapseq_contains(&seq, probe[n], 10) == before[n]) ;
  }
  n = 0 ; prev = 0 ;
  while (count < 200 && imapseq_next(&seq, 1000, &n))
  {
    must(n > prev && n <= 1000 && imapseq_contains(&seq, n, 10)) ;
    prev = n ; count++ ;
  }
}

static void each_arg (struct imapcmd const *c, size_t i)
{
  struct imapcmd_arg const *a = imapcmd_arg(c, i) ;
  char const *err, *s ;
  size_t len ;
  unsigned int flags ;
  int64_t d, t ;
  int tz ;
  int e ;

  genalloc_setlen(struct imapcmd_str, &kw, 0) ;
  e = imapcmd_flaglist(c, i, i + 1 < c->nargs ? 0 : 1, &flags, &kw, &err) ;
  must(e == 1 || e == 0) ;
  if (e == 1) must(!(flags & ~0x1fu)) ;

  e = imapfetch_parse(&fetch, c, i, &err) ;
  must(e == 1 || (e == 0 && err)) ;
  if (e == 1)
  {
    size_t n = genalloc_len(struct imapfetch_att, &fetch.atts) ;
    must(n) ;
    for (size_t j = 0 ; j < n ; j++)
    {
      struct imapfetch_att const *fa = genalloc_s(struct imapfetch_att, &fetch.atts) + j ;
      must(fa->kind <= IMAPFETCH_MODSEQ && fa->text <= IMAPSECT_MIME && fa->nparts <= IMAPFETCH_PARTMAX) ;
      must(fa->field + fa->nfields <= genalloc_len(struct imapcmd_str, &fetch.fields)) ;
      sa.len = 0 ;
      must(imapfetch_catname(&sa, &fetch, fa)) ;
      must(sa.len) ;
    }
  }
  if (a->type == IMAPARG_ATOM) check_seq(a->s, a->len) ;
  if (imapcmd_astring(c, i, 1, &s, &len))
  {
    if (imapcmd_date(s, len, &d)) { sa.len = 0 ; must(imapcmd_catdatetime(&sa, d * 86400, 0)) ; }
    if (imapcmd_datetime(s, len, &t, &tz))
    {
      int64_t t2 ; int tz2 ;
      sa.len = 0 ;
      must(imapcmd_catdatetime(&sa, t, tz)) ;
      must(sa.len >= 2 && imapcmd_datetime(sa.s + 1, sa.len - 2, &t2, &tz2) && t2 == t && tz2 == tz) ;
    }
  }
}

/* a string quoted by catstring parses back to itself */
static void roundtrip (char const *s, size_t len)
{
  struct imapcmd_reader r ;
  size_t used, off = 0 ;
  int ev, done = 0 ;
  if (len > 2000) return ;
  imapcmd_reader_init(&r) ;
  sa.len = 0 ;
  must(stralloc_cats(&sa, "t X ") && imapcmd_catstring(&sa, s, len, 0) && stralloc_cats(&sa, "\r\n")) ;
  while (off < sa.len && !done)
  {
    ev = imapcmd_feed(&r, sa.s + off, sa.len - off, &used) ;
    off += used ;
    if (ev == IMAPCMD_READY)
    {
      struct imapcmd_arg const *a ;
      must(imapcmd_parse(&r, &cmd2, 0) == 1) ;
      a = imapcmd_arg(&cmd2, 0) ;
      must(a && cmd2.nargs == 1 && (a->type == IMAPARG_QUOTED || a->type == IMAPARG_LITERAL)) ;
      must(a->len == len && !memcmp(a->s, s, len)) ;
      done = 1 ;
    }
    else must(ev == IMAPCMD_MORE || ev == IMAPCMD_CONTINUE) ;
  }
  must(done) ;
  imapcmd_reader_free(&r) ;
}

static void on_command (struct imapcmd_reader *r, unsigned int pflags)
{
  int e = imapcmd_parse(r, &cmd, pflags) ;
  size_t i ;
  must(e == 1 || e == 0) ;
  if (!e) { must(cmd.err && cmd.err[0]) ; return ; }
  check_tree(r, &cmd) ;
  for (i = 0 ; i < cmd.nargs && i < 64 ; i++) each_arg(&cmd, i) ;
  for (i = 0 ; i < cmd.nargs && i < 64 ; i++)
  {
    struct imapcmd_arg const *a = imapcmd_arg(&cmd, i) ;
    if (a->type == IMAPARG_QUOTED || (a->type == IMAPARG_LITERAL && !a->streamed)) { roundtrip(a->s, a->len) ; break ; }
  }
  for (i = 0 ; i < 2 && i < cmd.nargs ; i++)
  {
    char const *err = 0 ;
    e = imapsearch_parse(&srch, &cmd, i, &err) ;
    must(e == 1 || ((e == 0 || e == -2) && err)) ;
    if (e == 1)
    {
      uint32_t saved[] = { 7 } ;
      must(srch.cost >= IMAPSEARCH_INDEX && srch.cost <= IMAPSEARCH_BODY) ;
      if (srch.hasdollar) must(imapsearch_setdollar(&srch, saved, 1)) ;
      imapsearch_prepare(&srch, 2, 14) ;
      for (uint32_t m = 1 ; m <= 2 ; m++)
      {
        int full = imapsearch_eval(&srch, &ops, 0, m, IMAPSEARCH_BODY) ;
        must(full == 0 || full == 1) ;
        for (int ceil = IMAPSEARCH_INDEX ; ceil < IMAPSEARCH_BODY ; ceil++)
        {
          int part = imapsearch_eval(&srch, &ops, 0, m, ceil) ;
          must(part == full || part == IMAPSEARCH_UNKNOWN) ;
          if (ceil >= srch.cost) must(part == full) ;
        }
      }
    }
  }
}

int LLVMFuzzerTestOneInput (uint8_t const *data, size_t size)
{
  struct imapcmd_reader r ;
  uint32_t rnd ;
  unsigned int pflags ;
  uint64_t litgot = 0 ;
  int streaming = 0, zero = 0 ;
  if (size < 4) return 0 ;
  imapcmd_reader_init(&r) ;
  r.literalminus = data[0] & 1 ;
  r.litmax = (data[0] & 2) ? 64 : IMAPCMD_LITMAX ;
  r.appendmax = (data[0] & 4) ? 200 : 100000 ;
  r.streammin = (data[0] & 8) ? 16 : 0 ;
  r.cmdmax = (data[0] & 16) ? 300 : IMAPCMD_CMDMAX ;
  pflags = (data[0] & 32) ? IMAPCMD_UTF8 : 0 ;
  rnd = data[1] | (uint32_t)data[2] << 8 | (uint32_t)data[3] << 16 ;
  data += 4 ; size -= 4 ;

  while (size)
  {
    size_t n, used ;
    int ev ;
    rnd = rnd * 1103515245u + 12345u ;
    n = 1 + (rnd >> 16) % 64 ;
    if ((rnd >> 8) % 5 == 0) n = size ;
    if (n > size) n = size ;
    ev = imapcmd_feed(&r, (char const *)data, n, &used) ;
    must(used <= n) ;
    if (!used) { must(ev != IMAPCMD_MORE) ; must(++zero < 3) ; } else zero = 0 ;
    must(r.buf.len <= r.cmdmax + r.appendmax + IMAPCMD_LINEMAX + 2) ;
    switch (ev)
    {
      case IMAPCMD_MORE : must(used == n) ; break ;
      case IMAPCMD_CONTINUE : break ;
      case IMAPCMD_LITDATA :
        must(r.chunk >= (char const *)data && r.chunk + r.chunklen <= (char const *)data + used) ;
        must(r.chunklen && r.streammin && r.litsize >= r.streammin) ;
        if (r.chunkfirst) { must(!streaming) ; streaming = 1 ; litgot = 0 ; }
        must(streaming) ;
        litgot += r.chunklen ;
        must(litgot + r.litleft == r.litsize) ;
        if (!r.litleft) streaming = 0 ;
        break ;
      case IMAPCMD_ETOOLONG : case IMAPCMD_ELITERAL : case IMAPCMD_ETOOBIG :
        must(strlen(r.tag) <= IMAPCMD_TAGMAX) ;
        break ;
      case IMAPCMD_READY :
        must(!streaming) ;
        on_command(&r, pflags) ;
        break ;
      default : abort() ;
    }
    data += used ; size -= used ;
  }
  imapcmd_reader_free(&r) ;
  return 0 ;
}
