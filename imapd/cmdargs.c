/* imapd/cmdargs: the typed helpers over a parsed command's arguments
 * (see cmd.h): flag lists (imapcmd_flaglist), sequence sets (imapseq_*),
 * dates and date-times (imapcmd_date, imapcmd_datetime,
 * imapcmd_catdatetime), the quoting helpers (imapcmd_cat*string) and
 * FETCH attributes (imapfetch_*).  The reader and parser that build the
 * argument tree are in cmd.c; the few character helpers below are private
 * copies of cmd.c's. */

#include <stdlib.h>
#include <string.h>

#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>

#include "imapd/cmd.h"
#include "imapd/cmdint.h"


/* ---------- flags ---------- */

static int one_flag (struct imapcmd_arg const *a, unsigned int *flags, genalloc *keywords, char const **err)
{
  static char const *const names[] = { "\\SEEN", "\\ANSWERED", "\\FLAGGED", "\\DELETED", "\\DRAFT" } ;
  size_t j ;
  if (a->type != IMAPARG_ATOM && a->type != IMAPARG_NIL) { *err = "a flag must be an atom" ; return 0 ; }
  for (j = 0 ; j < a->len ; j++)
    if (!isatomchar(a->s[j]) && !(j == 0 && a->s[j] == '\\')) { *err = "bad character in flag" ; return 0 ; }
  if (a->len && a->s[0] == '\\')
  {
    for (j = 0 ; j < 5 ; j++)
      if (eqi(a->s, a->len, names[j])) { *flags |= 1u << j ; return 1 ; }
    *err = eqi(a->s, a->len, "\\RECENT") ? "\\Recent cannot be set" : "unknown system flag" ;
    return 0 ;
  }
  {
    struct imapcmd_str k = { .s = a->s, .len = a->len } ;
    if (!genalloc_append(struct imapcmd_str, keywords, &k)) return -1 ;
  }
  return 1 ;
}

int imapcmd_flaglist (struct imapcmd const *c, size_t i, int loose, unsigned int *flags, genalloc *keywords, char const **err)
{
  struct imapcmd_arg const *a = imapcmd_arg(c, i) ;
  size_t j, end ;
  *flags = 0 ;
  if (!a) { *err = "missing flag list" ; return 0 ; }
  if (a->type == IMAPARG_LIST)
  {
    if (loose && a->next != c->nargs) { *err = "junk after flag list" ; return 0 ; }
    j = i + 1 ; end = a->next ;
  }
  else if (loose) { j = i ; end = c->nargs ; }
  else { *err = "missing flag list" ; return 0 ; }
  for (; j < end ; j++)
  {
    int e = one_flag(imapcmd_arg(c, j), flags, keywords, err) ;
    if (e <= 0) return e ;
  }
  return 1 ;
}

/* ---------- sequence sets ---------- */

void imapseq_free (struct imapseq *q)
{
  genalloc_free(struct imapseq_range, &q->ranges) ;
}

static int seqnum (char const *s, size_t len, uint32_t *n)
{
  uint64_t v ;
  if (len == 1 && s[0] == '*') { *n = 0 ; return 1 ; }
  if (!parse_u64(s, len, UINT32_MAX, &v) || !v) return 0 ;
  *n = (uint32_t)v ;
  return 1 ;
}

int imapseq_parse (struct imapseq *q, char const *s, size_t len)
{
  size_t i = 0 ;
  genalloc_setlen(struct imapseq_range, &q->ranges, 0) ;
  q->dollar = 0 ;
  q->resolved = 0 ;
  if (len == 1 && s[0] == '$') { q->dollar = 1 ; return 1 ; }
  if (!len) return 0 ;
  for (;;)
  {
    struct imapseq_range rg ;
    size_t b = i, colon = len ;
    while (i < len && s[i] != ',')
    {
      if (s[i] == ':' && colon == len) colon = i ;
      i++ ;
    }
    if (colon == len || colon > i) colon = i ;
    if (!seqnum(s + b, colon - b, &rg.lo)) return 0 ;
    if (colon < i) { if (!seqnum(s + colon + 1, i - colon - 1, &rg.hi)) return 0 ; }
    else rg.hi = rg.lo ;
    if (!genalloc_append(struct imapseq_range, &q->ranges, &rg)) return -1 ;
    if (i >= len) break ;
    i++ ;
    if (i >= len) return 0 ;
  }
  return 1 ;
}

int imapseq_contains (struct imapseq const *q, uint32_t n, uint32_t max)
{
  struct imapseq_range const *r = genalloc_s(struct imapseq_range, &q->ranges) ;
  size_t len = genalloc_len(struct imapseq_range, &q->ranges) ;
  if (q->resolved)
  {
    size_t lo = 0, hi = len ;
    while (lo < hi)
    {
      size_t mid = lo + (hi - lo) / 2 ;
      if (r[mid].hi < n) lo = mid + 1 ;
      else if (r[mid].lo > n) hi = mid ;
      else return 1 ;
    }
    return 0 ;
  }
  for (size_t i = 0 ; i < len ; i++)
  {
    uint32_t a = r[i].lo ? r[i].lo : max, b = r[i].hi ? r[i].hi : max ;
    if (a > b) { uint32_t t = a ; a = b ; b = t ; }
    if (n >= a && n <= b) return 1 ;
  }
  return 0 ;
}

static int rangecmp (void const *a, void const *b)
{
  struct imapseq_range const *x = a, *y = b ;
  return x->lo < y->lo ? -1 : x->lo > y->lo ;
}

void imapseq_resolve (struct imapseq *q, uint32_t max)
{
  struct imapseq_range *r = genalloc_s(struct imapseq_range, &q->ranges) ;
  size_t len = genalloc_len(struct imapseq_range, &q->ranges), i, out = 0 ;
  if (q->resolved) return ;
  for (i = 0 ; i < len ; i++)
  {
    if (!r[i].lo) r[i].lo = max ;
    if (!r[i].hi) r[i].hi = max ;
    if (r[i].lo > r[i].hi) { uint32_t t = r[i].lo ; r[i].lo = r[i].hi ; r[i].hi = t ; }
  }
  if (len) qsort(r, len, sizeof *r, &rangecmp) ;
  for (i = 0 ; i < len ; i++)
  {
    if (!r[i].hi) continue ;   /* '*' in an empty mailbox: nothing */
    if (!r[i].lo) r[i].lo = 1 ;
    if (out && (r[out-1].hi == UINT32_MAX || r[i].lo <= r[out-1].hi + 1))
    {
      if (r[i].hi > r[out-1].hi) r[out-1].hi = r[i].hi ;
    }
    else r[out++] = r[i] ;
  }
  genalloc_setlen(struct imapseq_range, &q->ranges, out) ;
  q->resolved = 1 ;
}

int imapseq_next (struct imapseq const *q, uint32_t limit, uint32_t *n)
{
  struct imapseq_range const *r = genalloc_s(struct imapseq_range, &q->ranges) ;
  size_t len = genalloc_len(struct imapseq_range, &q->ranges) ;
  size_t lo = 0, hi = len ;
  uint32_t want ;
  if (*n == UINT32_MAX) return 0 ;
  want = *n + 1 ;
  while (lo < hi)
  {
    size_t mid = lo + (hi - lo) / 2 ;
    if (r[mid].hi < want) lo = mid + 1 ; else hi = mid ;
  }
  if (lo >= len) return 0 ;
  if (r[lo].lo > want) want = r[lo].lo ;
  if (want > limit) return 0 ;
  *n = want ;
  return 1 ;
}

static int catu32 (stralloc *sa, uint32_t n)
{
  char buf[10] ;
  size_t i = sizeof buf ;
  do { buf[--i] = '0' + n % 10 ; n /= 10 ; } while (n) ;
  return stralloc_catb(sa, buf + i, sizeof buf - i) ;
}

int imapseq_cat (stralloc *sa, uint32_t const *n, size_t count)
{
  size_t i = 0 ;
  while (i < count)
  {
    size_t j = i ;
    while (j + 1 < count && n[j] != UINT32_MAX && n[j+1] == n[j] + 1) j++ ;
    if (i && !stralloc_catb(sa, ",", 1)) return 0 ;
    if (!catu32(sa, n[i])) return 0 ;
    if (j > i && (!stralloc_catb(sa, ":", 1) || !catu32(sa, n[j]))) return 0 ;
    i = j + 1 ;
  }
  return 1 ;
}

/* ---------- dates ---------- */

static char const months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" } ;

/* days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant) */
static int64_t days_from_civil (int64_t y, unsigned int m, unsigned int d)
{
  int64_t era ;
  unsigned int yoe, doy, doe ;
  y -= m <= 2 ;
  era = (y >= 0 ? y : y - 399) / 400 ;
  yoe = (unsigned int)(y - era * 400) ;
  doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1 ;
  doe = yoe * 365 + yoe / 4 - yoe / 100 + doy ;
  return era * 146097 + (int64_t)doe - 719468 ;
}

static void civil_from_days (int64_t z, int64_t *y, unsigned int *m, unsigned int *d)
{
  int64_t era ;
  unsigned int doe, yoe, doy, mp ;
  z += 719468 ;
  era = (z >= 0 ? z : z - 146096) / 146097 ;
  doe = (unsigned int)(z - era * 146097) ;
  yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365 ;
  doy = doe - (365 * yoe + yoe / 4 - yoe / 100) ;
  mp = (5 * doy + 2) / 153 ;
  *d = doy - (153 * mp + 2) / 5 + 1 ;
  *m = mp < 10 ? mp + 3 : mp - 9 ;
  *y = (int64_t)yoe + era * 400 + (*m <= 2) ;
}

static unsigned int mdays (int64_t y, unsigned int m)
{
  static unsigned char const n[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 } ;
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29 ;
  return n[m - 1] ;
}

static int digits (char const *s, size_t n, unsigned int *v)
{
  unsigned int x = 0 ;
  for (size_t i = 0 ; i < n ; i++)
  {
    if (s[i] < '0' || s[i] > '9') return 0 ;
    x = x * 10 + (s[i] - '0') ;
  }
  *v = x ;
  return 1 ;
}

/* "d-Mon-yyyy" or "dd-Mon-yyyy" (or " d-Mon-yyyy" when space) at s:
 * returns the length used, 0 if not a date */
static size_t scan_date (char const *s, size_t len, int space, int64_t *day)
{
  size_t i = 0, dl ;
  unsigned int d, m, y ;
  if (space && len && s[0] == ' ') i = 1 ;
  dl = 0 ;
  while (i + dl < len && dl < 3 && s[i+dl] >= '0' && s[i+dl] <= '9') dl++ ;
  if (!dl || dl > 2 || (i && dl != 1)) return 0 ;
  if (!digits(s + i, dl, &d)) return 0 ;
  i += dl ;
  if (i + 9 > len || s[i] != '-' || s[i+4] != '-') return 0 ;
  for (m = 0 ; m < 12 ; m++)
    if (upper(s[i+1]) == upper(months[m][0]) && upper(s[i+2]) == upper(months[m][1]) && upper(s[i+3]) == upper(months[m][2])) break ;
  if (m == 12) return 0 ;
  if (!digits(s + i + 5, 4, &y)) return 0 ;
  m++ ;
  if (!d || d > mdays(y, m)) return 0 ;
  *day = days_from_civil(y, m, d) ;
  return i + 9 ;
}

int imapcmd_date (char const *s, size_t len, int64_t *day)
{
  size_t n = scan_date(s, len, 0, day) ;
  return n && n == len ;
}

int imapcmd_datetime (char const *s, size_t len, int64_t *t, int *tzmin)
{
  int64_t day ;
  unsigned int h, mi, se, zh, zm ;
  size_t n = scan_date(s, len, 1, &day) ;
  if (!n || len - n != 15) return 0 ;
  s += n ;
  if (s[0] != ' ' || s[3] != ':' || s[6] != ':' || s[9] != ' ' || (s[10] != '+' && s[10] != '-')) return 0 ;
  if (!digits(s + 1, 2, &h) || !digits(s + 4, 2, &mi) || !digits(s + 7, 2, &se)
   || !digits(s + 11, 2, &zh) || !digits(s + 13, 2, &zm)) return 0 ;
  if (h > 23 || mi > 59 || se > 60 || zm > 59) return 0 ;
  *tzmin = (int)(zh * 60 + zm) * (s[10] == '-' ? -1 : 1) ;
  *t = day * 86400 + h * 3600 + mi * 60 + se - (int64_t)*tzmin * 60 ;
  return 1 ;
}

int imapcmd_catdatetime (stralloc *sa, int64_t t, int tzmin)
{
  char buf[40] ;
  int64_t local = t + (int64_t)tzmin * 60, day, sec, y ;
  unsigned int m, d, z = tzmin < 0 ? -tzmin : tzmin ;
  size_t i = 0 ;
  day = local >= 0 ? local / 86400 : -((-local + 86399) / 86400) ;
  sec = local - day * 86400 ;
  civil_from_days(day, &y, &m, &d) ;
  if (y < 0 || y > 9999) y = y < 0 ? 0 : 9999 ;
  buf[i++] = '"' ;
  buf[i++] = '0' + d / 10 ; buf[i++] = '0' + d % 10 ; buf[i++] = '-' ;
  memcpy(buf + i, months[m - 1], 3) ; i += 3 ; buf[i++] = '-' ;
  buf[i++] = '0' + y / 1000 ; buf[i++] = '0' + y / 100 % 10 ; buf[i++] = '0' + y / 10 % 10 ; buf[i++] = '0' + y % 10 ;
  buf[i++] = ' ' ;
  buf[i++] = '0' + sec / 36000 ; buf[i++] = '0' + sec / 3600 % 10 ; buf[i++] = ':' ;
  buf[i++] = '0' + sec % 3600 / 600 ; buf[i++] = '0' + sec % 3600 / 60 % 10 ; buf[i++] = ':' ;
  buf[i++] = '0' + sec % 60 / 10 ; buf[i++] = '0' + sec % 10 ; buf[i++] = ' ' ;
  buf[i++] = tzmin < 0 ? '-' : '+' ;
  buf[i++] = '0' + z / 600 % 10 ; buf[i++] = '0' + z / 60 % 10 ;
  buf[i++] = '0' + z % 60 / 10 ; buf[i++] = '0' + z % 10 ;
  buf[i++] = '"' ;
  return stralloc_catb(sa, buf, i) ;
}

/* ---------- response helpers ---------- */

int imapcmd_catstring (stralloc *sa, char const *s, size_t len, int utf8)
{
  size_t i ;
  int quote = len <= 1024 ;
  for (i = 0 ; quote && i < len ; i++)
  {
    unsigned char ch = s[i] ;
    if (!ch || ch == '\r' || ch == '\n' || (ch >= 0x80 && !utf8)) quote = 0 ;
  }
  if (!quote)
  {
    char buf[24] ;
    size_t n = sizeof buf ;
    uint64_t v = len ;
    buf[--n] = '\n' ; buf[--n] = '\r' ; buf[--n] = '}' ;
    do { buf[--n] = '0' + v % 10 ; v /= 10 ; } while (v) ;
    buf[--n] = '{' ;
    return stralloc_catb(sa, buf + n, sizeof buf - n) && stralloc_catb(sa, s, len) ;
  }
  if (!stralloc_readyplus(sa, len + 2)) return 0 ;
  if (!stralloc_catb(sa, "\"", 1)) return 0 ;
  for (i = 0 ; i < len ; i++)
  {
    if ((s[i] == '"' || s[i] == '\\') && !stralloc_catb(sa, "\\", 1)) return 0 ;
    if (!stralloc_catb(sa, s + i, 1)) return 0 ;
  }
  return stralloc_catb(sa, "\"", 1) ;
}

int imapcmd_catastring (stralloc *sa, char const *s, size_t len, int utf8)
{
  size_t i ;
  if (!len || eqi(s, len, "NIL")) return imapcmd_catstring(sa, s, len, utf8) ;
  for (i = 0 ; i < len ; i++) if (!isatomchar(s[i])) return imapcmd_catstring(sa, s, len, utf8) ;
  return stralloc_catb(sa, s, len) ;
}

int imapcmd_catnstring (stralloc *sa, char const *s, size_t len, int utf8)
{
  if (!s) return stralloc_cats(sa, "NIL") ;
  return imapcmd_catstring(sa, s, len, utf8) ;
}

/* ---------- FETCH attributes ---------- */

void imapfetch_free (struct imapfetch *f)
{
  genalloc_free(struct imapfetch_att, &f->atts) ;
  genalloc_free(struct imapcmd_str, &f->fields) ;
}

static int prefixi (char const *s, size_t len, char const *word)
{
  size_t n = strlen(word) ;
  return n <= len && eqi(s, n, word) ;
}

/* header-list inside the brackets: " (" names ")" from s[*i..len) */
static int parse_fields (struct imapfetch *f, struct imapfetch_att *a, char const *s, size_t len, char const **err)
{
  size_t i = 0 ;
  a->field = genalloc_len(struct imapcmd_str, &f->fields) ;
  a->nfields = 0 ;
  if (len < 3 || s[0] != ' ' || s[1] != '(' || s[len-1] != ')') { *err = "bad HEADER.FIELDS list" ; return 0 ; }
  i = 2 ;
  len-- ;
  for (;;)
  {
    struct imapcmd_str name ;
    size_t b ;
    if (i >= len) break ;
    if (a->nfields)
    {
      if (s[i] != ' ') { *err = "bad HEADER.FIELDS list" ; return 0 ; }
      i++ ;
    }
    if (i < len && s[i] == '"')
    {
      b = ++i ;
      while (i < len && s[i] != '"') i++ ;
      if (i >= len) { *err = "bad HEADER.FIELDS list" ; return 0 ; }
      name.s = s + b ; name.len = i - b ;
      i++ ;
    }
    else
    {
      b = i ;
      while (i < len && s[i] != ' ') i++ ;
      name.s = s + b ; name.len = i - b ;
    }
    if (!name.len) { *err = "empty header field name" ; return 0 ; }
    for (b = 0 ; b < name.len ; b++)
    {
      unsigned char ch = name.s[b] ;
      if (ch <= 32 || ch >= 127 || ch == ':' || ch == '"' || ch == '\\' || ch == '(' || ch == ')')
      { *err = "bad header field name" ; return 0 ; }
    }
    if (!genalloc_append(struct imapcmd_str, &f->fields, &name)) return -1 ;
    a->nfields++ ;
  }
  if (!a->nfields) { *err = "empty HEADER.FIELDS list" ; return 0 ; }
  return 1 ;
}

/* the section s[0..len) (between the brackets) */
static int parse_section (struct imapfetch *f, struct imapfetch_att *a, char const *s, size_t len, int binary, char const **err)
{
  size_t i = 0 ;
  a->nparts = 0 ;
  a->text = IMAPSECT_ALL ;
  while (i < len && s[i] >= '0' && s[i] <= '9')
  {
    size_t b = i ;
    uint64_t v ;
    while (i < len && s[i] >= '0' && s[i] <= '9') i++ ;
    if (!parse_u64(s + b, i - b, UINT32_MAX, &v) || !v) { *err = "bad section part number" ; return 0 ; }
    if (a->nparts >= IMAPFETCH_PARTMAX) { *err = "section nested too deep" ; return 0 ; }
    a->part[a->nparts++] = (uint32_t)v ;
    if (i >= len) return 1 ;
    if (s[i] != '.') { *err = "bad section" ; return 0 ; }
    i++ ;
    if (i >= len) { *err = "bad section" ; return 0 ; }
  }
  if (i >= len) return 1 ;
  if (binary) { *err = "BINARY takes part numbers only" ; return 0 ; }
  s += i ; len -= i ;
  if (prefixi(s, len, "HEADER.FIELDS.NOT"))
  {
    a->text = IMAPSECT_FIELDS_NOT ;
    return parse_fields(f, a, s + 17, len - 17, err) ;
  }
  if (prefixi(s, len, "HEADER.FIELDS"))
  {
    a->text = IMAPSECT_FIELDS ;
    return parse_fields(f, a, s + 13, len - 13, err) ;
  }
  if (eqi(s, len, "HEADER")) { a->text = IMAPSECT_HEADER ; return 1 ; }
  if (eqi(s, len, "TEXT")) { a->text = IMAPSECT_TEXT ; return 1 ; }
  if (eqi(s, len, "MIME") && a->nparts) { a->text = IMAPSECT_MIME ; return 1 ; }
  *err = "bad section" ;
  return 0 ;
}

int imapfetch_parse_att (struct imapfetch *f, char const *s, size_t len, char const **err)
{
  static struct { char const *name ; unsigned char kind, peek ; } const simple[] =
  {
    { "ENVELOPE", IMAPFETCH_ENVELOPE, 1 },
    { "FLAGS", IMAPFETCH_FLAGS, 1 },
    { "INTERNALDATE", IMAPFETCH_INTERNALDATE, 1 },
    { "RFC822", IMAPFETCH_RFC822, 0 },
    { "RFC822.HEADER", IMAPFETCH_RFC822_HEADER, 1 },
    { "RFC822.SIZE", IMAPFETCH_RFC822_SIZE, 1 },
    { "RFC822.TEXT", IMAPFETCH_RFC822_TEXT, 0 },
    { "BODY", IMAPFETCH_BODY, 1 },
    { "BODYSTRUCTURE", IMAPFETCH_BODYSTRUCTURE, 1 },
    { "UID", IMAPFETCH_UID, 1 },
    { "MODSEQ", IMAPFETCH_MODSEQ, 1 },
  } ;
  static struct { char const *name ; unsigned char kind, peek ; } const sect[] =
  {
    { "BODY", IMAPFETCH_SECTION, 0 },
    { "BODY.PEEK", IMAPFETCH_SECTION, 1 },
    { "BINARY", IMAPFETCH_BINARY, 0 },
    { "BINARY.PEEK", IMAPFETCH_BINARY, 1 },
    { "BINARY.SIZE", IMAPFETCH_BINARY_SIZE, 1 },
  } ;
  struct imapfetch_att a ;
  char const *br = memchr(s, '[', len) ;
  size_t i, namelen = br ? (size_t)(br - s) : len, close ;
  memset(&a, 0, sizeof a) ;
  a.field = genalloc_len(struct imapcmd_str, &f->fields) ;
  if (!br)
  {
    for (i = 0 ; i < sizeof simple / sizeof *simple ; i++)
      if (eqi(s, len, simple[i].name)) break ;
    if (i == sizeof simple / sizeof *simple) { *err = "unknown FETCH attribute" ; return 0 ; }
    a.kind = simple[i].kind ;
    a.peek = simple[i].peek ;
    return genalloc_append(struct imapfetch_att, &f->atts, &a) ? 1 : -1 ;
  }
  for (i = 0 ; i < sizeof sect / sizeof *sect ; i++)
    if (eqi(s, namelen, sect[i].name)) break ;
  if (i == sizeof sect / sizeof *sect) { *err = "unknown FETCH attribute" ; return 0 ; }
  a.kind = sect[i].kind ;
  a.peek = sect[i].peek ;
  /* the closing bracket: the last ']' (a '<' partial may follow it) */
  close = len ;
  while (close > namelen && s[close - 1] != ']') close-- ;
  if (close <= namelen + 1) { *err = "missing ]" ; return 0 ; }
  close-- ;
  {
    int e = parse_section(f, &a, s + namelen + 1, close - namelen - 1, a.kind != IMAPFETCH_SECTION, err) ;
    if (e <= 0) { genalloc_setlen(struct imapcmd_str, &f->fields, a.field) ; return e ; }
  }
  i = close + 1 ;
  if (i < len)
  {
    size_t dot, b ;
    if (a.kind == IMAPFETCH_BINARY_SIZE || s[i] != '<' || s[len-1] != '>') { *err = "junk after section" ; goto bad ; }
    b = i + 1 ;
    for (dot = b ; dot < len - 1 && s[dot] != '.' ; dot++) ;
    if (dot >= len - 1) { *err = "bad partial" ; goto bad ; }
    if (!parse_u64(s + b, dot - b, UINT64_MAX, &a.origin)
     || !parse_u64(s + dot + 1, len - 2 - dot, UINT64_MAX, &a.count) || !a.count)
    { *err = "bad partial" ; goto bad ; }
    a.partial = 1 ;
  }
  return genalloc_append(struct imapfetch_att, &f->atts, &a) ? 1 : -1 ;
 bad:
  genalloc_setlen(struct imapcmd_str, &f->fields, a.field) ;
  return 0 ;
}

int imapfetch_parse (struct imapfetch *f, struct imapcmd const *c, size_t i, char const **err)
{
  struct imapcmd_arg const *a = imapcmd_arg(c, i) ;
  static char const *const fast[] = { "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY" } ;
  size_t n = 0, j, end ;
  genalloc_setlen(struct imapfetch_att, &f->atts, 0) ;
  genalloc_setlen(struct imapcmd_str, &f->fields, 0) ;
  if (!a) { *err = "missing FETCH attributes" ; return 0 ; }
  if (a->type == IMAPARG_ATOM)
  {
    if (eqi(a->s, a->len, "FAST")) n = 3 ;
    else if (eqi(a->s, a->len, "ALL")) n = 4 ;
    else if (eqi(a->s, a->len, "FULL")) n = 5 ;
    if (n)
    {
      for (j = 0 ; j < n ; j++)
      {
        int e = imapfetch_parse_att(f, fast[j], strlen(fast[j]), err) ;
        if (e <= 0) return e ;
      }
      return 1 ;
    }
    return imapfetch_parse_att(f, a->s, a->len, err) ;
  }
  if (a->type != IMAPARG_LIST) { *err = "bad FETCH attributes" ; return 0 ; }
  if (!a->n) { *err = "empty FETCH attribute list" ; return 0 ; }
  end = a->next ;
  for (j = i + 1 ; j < end ; j++)
  {
    struct imapcmd_arg const *b = imapcmd_arg(c, j) ;
    int e ;
    if (b->type != IMAPARG_ATOM) { *err = "bad FETCH attribute" ; return 0 ; }
    e = imapfetch_parse_att(f, b->s, b->len, err) ;
    if (e <= 0) return e ;
  }
  return 1 ;
}

static int catuint (stralloc *sa, uint64_t v)
{
  char buf[20] ;
  size_t n = sizeof buf ;
  do { buf[--n] = '0' + v % 10 ; v /= 10 ; } while (v) ;
  return stralloc_catb(sa, buf + n, sizeof buf - n) ;
}

int imapfetch_catname (stralloc *sa, struct imapfetch const *f, struct imapfetch_att const *a)
{
  static char const *const simple[] =
  {
    "ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822", "RFC822.HEADER", "RFC822.SIZE",
    "RFC822.TEXT", "BODY", "BODYSTRUCTURE", "UID", "BODY", "BINARY", "BINARY.SIZE", "MODSEQ",
  } ;
  static char const *const texts[] = { "", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME" } ;
  unsigned int i ;
  if (a->kind > IMAPFETCH_MODSEQ) return stralloc_cats(sa, "?") ;
  if (!stralloc_cats(sa, simple[a->kind])) return 0 ;
  if (a->kind != IMAPFETCH_SECTION && a->kind != IMAPFETCH_BINARY && a->kind != IMAPFETCH_BINARY_SIZE) return 1 ;
  if (!stralloc_catb(sa, "[", 1)) return 0 ;
  for (i = 0 ; i < a->nparts ; i++)
    if ((i && !stralloc_catb(sa, ".", 1)) || !catuint(sa, a->part[i])) return 0 ;
  if (a->text != IMAPSECT_ALL && a->text <= IMAPSECT_MIME)
  {
    if (a->nparts && !stralloc_catb(sa, ".", 1)) return 0 ;
    if (!stralloc_cats(sa, texts[a->text])) return 0 ;
    if (a->text == IMAPSECT_FIELDS || a->text == IMAPSECT_FIELDS_NOT)
    {
      struct imapcmd_str const *fl = genalloc_s(struct imapcmd_str, &f->fields) + a->field ;
      if (!stralloc_catb(sa, " (", 2)) return 0 ;
      for (i = 0 ; i < a->nfields ; i++)
      {
        size_t j ;
        if (i && !stralloc_catb(sa, " ", 1)) return 0 ;
        for (j = 0 ; j < fl[i].len ; j++)
        {
          char ch = upper(fl[i].s[j]) ;
          if (!stralloc_catb(sa, &ch, 1)) return 0 ;
        }
      }
      if (!stralloc_catb(sa, ")", 1)) return 0 ;
    }
  }
  if (!stralloc_catb(sa, "]", 1)) return 0 ;
  if (a->partial && a->kind != IMAPFETCH_BINARY_SIZE)
    if (!stralloc_catb(sa, "<", 1) || !catuint(sa, a->origin) || !stralloc_catb(sa, ">", 1)) return 0 ;
  return 1 ;
}
