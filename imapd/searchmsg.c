/* imapd/searchmsg: SEARCH and UID SEARCH of yubin-imapmail (RFC 3501
 * 6.4.4, ESEARCH's RETURN (RFC 4731)): the accessors imapd/search.h
 * evaluates its keys with.  Every message is first tried with the
 * index alone; only those the cheap keys leave undecided are opened.
 * See imapd/session.h. */

#include <errno.h>
#include <string.h>
#include <strings.h>

#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>

#include "ylog.h"
#include "imapd/cmd.h"
#include "imapd/index.h"
#include "imapd/mime.h"
#include "imapd/search.h"
#include "imapd/session.h"

struct sctx
{
  struct msgfile mf ;
  stralloc tmp ;
} ;

/* ---------- RFC 5322 dates ---------- */

static int64_t days_from_civil (int64_t y, unsigned int m, unsigned int d)
{
  y -= m <= 2 ;
  int64_t era = (y >= 0 ? y : y - 399) / 400 ;
  unsigned int yoe = (unsigned int)(y - era * 400) ;
  unsigned int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1 ;
  unsigned int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy ;
  return era * 146097 + (int64_t)doe - 719468 ;
}

static size_t skipws (char const *s, size_t len, size_t i)
{
  while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) i++ ;
  return i ;
}

static size_t number (char const *s, size_t len, size_t i, unsigned int maxdigits, unsigned int *v)
{
  size_t j = i ;
  *v = 0 ;
  while (j < len && j - i < maxdigits && s[j] >= '0' && s[j] <= '9') *v = *v * 10 + (s[j++] - '0') ;
  return j ;
}

/* "[Day,] DD Mon YYYY HH:MM[:SS] zone": 1 with *t (UTC) and *tzmin */
static int date5322 (char const *s, size_t len, int64_t *t, int *tzmin)
{
  static char const months[] = "janfebmaraprmayjunjulaugsepoctnovdec" ;
  unsigned int day, mon = 0, year, hh, mm, ss = 0 ;
  size_t i = skipws(s, len, 0), j ;
  int zone = 0 ;
  if (i + 3 < len && ((s[i] | 32) >= 'a' && (s[i] | 32) <= 'z'))
  {
    while (i < len && s[i] != ',' && s[i] != ' ') i++ ;
    if (i < len && s[i] == ',') i++ ;
    i = skipws(s, len, i) ;
  }
  j = number(s, len, i, 2, &day) ;
  if (j == i || !day || day > 31) return 0 ;
  i = skipws(s, len, j) ;
  if (i + 3 > len) return 0 ;
  for (unsigned int k = 0 ; k < 12 ; k++)
    if (!strncasecmp(s + i, months + 3 * k, 3)) { mon = k + 1 ; break ; }
  if (!mon) return 0 ;
  i = skipws(s, len, i + 3) ;
  j = number(s, len, i, 4, &year) ;
  if (j == i) return 0 ;
  if (j - i <= 2) year += year < 50 ? 2000 : 1900 ;
  else if (j - i == 3) year += 1900 ;
  i = skipws(s, len, j) ;
  j = number(s, len, i, 2, &hh) ;
  if (j == i || j >= len || s[j] != ':') return 0 ;
  i = j + 1 ;
  j = number(s, len, i, 2, &mm) ;
  if (j == i) return 0 ;
  if (j < len && s[j] == ':') { i = j + 1 ; j = number(s, len, i, 2, &ss) ; }
  if (hh > 23 || mm > 59 || ss > 60) return 0 ;
  i = skipws(s, len, j) ;
  if (i < len && (s[i] == '+' || s[i] == '-'))
  {
    unsigned int z ;
    j = number(s, len, i + 1, 4, &z) ;
    if (j == i + 5) zone = (int)(z / 100 * 60 + z % 100) * (s[i] == '-' ? -1 : 1) ;
  }
  else
  {
    static struct { char const *name ; int min ; } const zones[] =
    {
      { "EDT", -240 }, { "EST", -300 }, { "CDT", -300 }, { "CST", -360 },
      { "MDT", -360 }, { "MST", -420 }, { "PDT", -420 }, { "PST", -480 },
    } ;
    for (size_t k = 0 ; k < sizeof zones / sizeof zones[0] ; k++)
      if (i + 3 <= len && !strncasecmp(s + i, zones[k].name, 3)) { zone = zones[k].min ; break ; }
  }
  *t = days_from_civil(year, mon, day) * 86400 + hh * 3600 + mm * 60 + ss - zone * 60 ;
  *tzmin = zone ;
  return 1 ;
}

/* ---------- the accessors ---------- */

static struct index_msg const *msgof (uint32_t seq)
{
  return index_msg(&sess.ix, seq - 1) ;
}

static unsigned int acc_flags (void *ctx, uint32_t seq)
{
  struct index_msg const *m = msgof(seq) ;
  (void)ctx ;
  return flags_from_index(m->flags, m->state) ;
}

static int acc_keyword (void *ctx, uint32_t seq, char const *kw, size_t len)
{
  int l = index_keyword(&sess.ix, kw, len, 0) ;
  (void)ctx ;
  if (l < 0) return 0 ;
  return (msgof(seq)->keywords >> l) & 1 ;
}

static uint32_t acc_uid (void *ctx, uint32_t seq)
{
  (void)ctx ;
  return msgof(seq)->uid ;
}

static uint64_t acc_size (void *ctx, uint32_t seq)
{
  (void)ctx ;
  return msgof(seq)->size ;
}

static void acc_internaldate (void *ctx, uint32_t seq, int64_t *t, int *tzmin)
{
  (void)ctx ;
  *t = msgof(seq)->idate ;
  *tzmin = sess.tzmin ;
}

static int load (struct sctx *x, uint32_t seq, int how)
{
  int r = msg_load(&x->mf, seq - 1, how) ;
  if (r > 0) { msg_cache_store(&x->mf) ; return 1 ; }
  if (!r) errno = ENOENT ;
  return 0 ;
}

/* The cache holds the date's wall clock in its own zone as if it were
 * UTC: what SENTBEFORE/SENTON/SENTSINCE compare. */
static int acc_sentdate (void *ctx, uint32_t seq, int64_t *t, int *tzmin)
{
  struct sctx *x = ctx ;
  struct index_msg const *m = msgof(seq) ;
  int64_t when ;
  int zone ;
  if (m->sentdate != INDEX_NODATE) { *t = m->sentdate ; *tzmin = 0 ; return 1 ; }
  x->tmp.len = 0 ;
  struct mime const *mm = &x->mf.mime ;
  if (msg_cached(&x->mf, seq - 1) & MC_HDR) mm = msg_cached_header(&x->mf) ;
  else if (!load(x, seq, MSG_HEADER)) return -1 ;
  int r = mime_header_decoded(mm, 0, "Date", &x->tmp) ;
  if (r < 0) die_nomem() ;
  if (!r || !date5322(x->tmp.s, x->tmp.len, &when, &zone)) return 0 ;
  *t = when + (int64_t)zone * 60 ;
  *tzmin = 0 ;
  if (!index_cache_sentdate(&sess.ix, seq - 1, *t)) die_nomem() ;
  return 1 ;
}

static int acc_header (void *ctx, uint32_t seq, char const *name, size_t namelen, stralloc *sa)
{
  struct sctx *x = ctx ;
  char field[256] ;
  if (namelen >= sizeof field || memchr(name, 0, namelen)) return 0 ;
  memcpy(field, name, namelen) ;
  field[namelen] = 0 ;
  struct mime const *mm = &x->mf.mime ;
  if (msg_cached_field(name, namelen) && msg_cached(&x->mf, seq - 1) & MC_HDR) mm = msg_cached_header(&x->mf) ;
  else if (!load(x, seq, MSG_HEADER)) return -1 ;
  int r = mime_header_decoded(mm, 0, field, sa) ;
  if (r < 0) die_nomem() ;
  return r > 0 ;
}

static int walk_feed (void *ctx, uint32_t part, char const *s, size_t len)
{
  struct imapsearch_match *m = ctx ;
  (void)part ;
  if (!s) return 1 ;
  return imapsearch_match_feed(m, s, len) ? 0 : 1 ;
}

static int acc_contains (void *ctx, uint32_t seq, int text, struct imapsearch_match *m)
{
  struct sctx *x = ctx ;
  if (!load(x, seq, MSG_PARSE)) return -1 ;
  if (text)
  {
    struct mime_part const *root = mime_parts(&x->mf.mime) ;
    x->tmp.len = 0 ;
    if (!mime_decode_words(&x->tmp, x->mf.map + root->hdr, root->body - root->hdr)) die_nomem() ;
    if (imapsearch_match_feed(m, x->tmp.s, x->tmp.len)) return 1 ;
  }
  if (mime_text_walk(&x->mf.mime, &walk_feed, m) < 0 && !m->found) die_nomem() ;
  return m->found ;
}

static struct imapsearch_ops const ops =
{
  .flags = &acc_flags,
  .keyword = &acc_keyword,
  .uid = &acc_uid,
  .size = &acc_size,
  .internaldate = &acc_internaldate,
  .sentdate = &acc_sentdate,
  .header = &acc_header,
  .contains = &acc_contains,
} ;

/* ---------- SEARCH ---------- */

static void esearch (struct imapcmd const *c, struct imapsearch const *s, uint32_t const *v, size_t n)
{
  unsigned int ret = s->ret & (IMAPSEARCH_RET_MIN | IMAPSEARCH_RET_MAX | IMAPSEARCH_RET_ALL | IMAPSEARCH_RET_COUNT) ;
  if (!ret) ret = IMAPSEARCH_RET_ALL ;
  out_cat("* ESEARCH (TAG ") ;
  out_catstring(c->tag, strlen(c->tag)) ;
  out_cat(")") ;
  if (c->uid) out_cat(" UID") ;
  if (n && ret & IMAPSEARCH_RET_MIN) { out_cat(" MIN ") ; out_catu64(v[0]) ; }
  if (n && ret & IMAPSEARCH_RET_MAX) { out_cat(" MAX ") ; out_catu64(v[n - 1]) ; }
  if (ret & IMAPSEARCH_RET_COUNT) { out_cat(" COUNT ") ; out_catu64(n) ; }
  if (n && ret & IMAPSEARCH_RET_ALL)
  {
    out_cat(" ALL ") ;
    if (!imapseq_cat(&out, v, n)) die_nomem() ;
  }
  out_cat("\r\n") ;
}

void cmd_search (struct imapcmd const *c)
{
  struct imapsearch s = IMAPSEARCH_ZERO ;
  struct sctx x = { .mf = MSGFILE_ZERO, .tmp = STRALLOC_ZERO } ;
  genalloc res = GENALLOC_ZERO ;
  mailindex *ix = &sess.ix ;
  char const *err = "Invalid SEARCH" ;
  size_t failed = 0 ;
  int r = imapsearch_parse(&s, c, 0, &err) ;
  if (r == -1) die_nomem() ;
  if (r == -2)
  {
    out_cat(c->tag) ; out_cat(" NO [BADCHARSET (UTF-8 US-ASCII)] ") ; out_cat(err) ; out_catb("\r\n", 2) ;
    goto end ;
  }
  if (r != 1) { tagged_bad(c->tag, err) ; goto end ; }
  if (s.hasdollar) { tagged_bad(c->tag, "$ is not supported (no SEARCHRES)") ; goto end ; }
  imapsearch_prepare(&s, ix->n, ix->n ? index_msg(ix, ix->n - 1)->uid : 0) ;
  sess.nsearch++ ;
  for (uint32_t seq = 1 ; seq <= ix->n ; seq++)
  {
    int e = imapsearch_eval(&s, &ops, &x, seq, IMAPSEARCH_INDEX) ;
    if (e == IMAPSEARCH_UNKNOWN) e = imapsearch_eval(&s, &ops, &x, seq, IMAPSEARCH_BODY) ;
    msg_unload(&x.mf) ;
    if (e == IMAPSEARCH_ERROR)
    {
      if (errno != ENOENT) failed++ ;
      continue ;
    }
    if (e == 1)
    {
      uint32_t v = c->uid ? index_msg(ix, seq - 1)->uid : seq ;
      if (!genalloc_append(uint32_t, &res, &v)) die_nomem() ;
    }
  }
  {
    uint32_t const *v = genalloc_s(uint32_t, &res) ;
    size_t n = genalloc_len(uint32_t, &res) ;
    if (s.esearch) esearch(c, &s, v, n) ;
    else
    {
      out_cat("* SEARCH") ;
      for (size_t k = 0 ; k < n ; k++) { out_catb(" ", 1) ; out_catu64(v[k]) ; out_maybeflush() ; }
      out_cat("\r\n") ;
    }
  }
  if (failed)
  {
    ylog("error", "ip", sess.ip, "user", sess.user, "op", "search-read", "mailbox", sess.boxname.s, (char *)0) ;
    tagged(c->tag, "NO [UNAVAILABLE] Some of the messages could not be read") ;
  }
  else tagged(c->tag, "OK SEARCH completed") ;
 end:
  msg_free(&x.mf) ;
  stralloc_free(&x.tmp) ;
  genalloc_free(uint32_t, &res) ;
  imapsearch_free(&s) ;
}
