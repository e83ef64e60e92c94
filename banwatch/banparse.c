/* banwatch's pure parsing and matching.  See banparse.h. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>

#include <skalibs/stralloc.h>
#include <skalibs/tai.h>

#include "banparse.h"

#define REPEAT_MAX 1000

/* ---- addresses ---- */

static int scan_digits (char const *s, size_t n, unsigned int max, unsigned int *u)
{
  unsigned int v = 0 ;
  if (!n || n > 3) return 0 ;
  for (size_t i = 0 ; i < n ; i++)
  {
    if (s[i] < '0' || s[i] > '9') return 0 ;
    v = v * 10 + (s[i] - '0') ;
  }
  if (n > 1 && s[0] == '0') return 0 ;
  if (v > max) return 0 ;
  *u = v ;
  return 1 ;
}

void banaddr_mask (banaddr *b, unsigned int len)
{
  unsigned int max = b->family == 4 ? 32 : 128 ;
  if (len > max) len = max ;
  if (len == max && b->len == max) return ;   /* a whole address: nothing to clear */
  unsigned int full = len / 8 ;
  b->len = len ;
  if (len % 8) b->a[full++] &= (unsigned char)(0xff << (8 - len % 8)) ;
  memset(b->a + full, 0, 16 - full) ;
}

int banaddr_scan (banaddr *b, char const *s, size_t n, int cidr)
{
  static unsigned char const mapped[12] = { 0,0,0,0,0,0,0,0,0,0,0xff,0xff } ;
  char buf[64] ;
  size_t alen = n ;
  unsigned int len = 0 ;
  int haslen = 0 ;
  banaddr r = BANADDR_ZERO ;
  if (cidr)
  {
    char const *slash = memchr(s, '/', n) ;
    if (slash)
    {
      alen = slash - s ;
      if (!scan_digits(slash + 1, n - alen - 1, 128, &len)) return 0 ;
      haslen = 1 ;
    }
  }
  if (!alen || alen >= sizeof(buf)) return 0 ;
  if (alen <= 15 && !memchr(s, ':', alen))
  {
    /* dotted quad, the common case, without a copy: exactly 4 decimal
     * parts of 1 to 3 digits, no leading zero, each at most 255 */
    unsigned int part = 0, digits = 0, val = 0 ;
    for (size_t i = 0 ; i <= alen ; i++)
    {
      char c = i < alen ? s[i] : '.' ;
      if (c >= '0' && c <= '9')
      {
        if (digits && !val) return 0 ;
        val = val * 10 + (c - '0') ;
        if (++digits > 3 || val > 255) return 0 ;
      }
      else if (c == '.' && digits && part < 4) { r.a[part++] = val ; val = 0 ; digits = 0 ; }
      else return 0 ;
    }
    if (part != 4) return 0 ;
    r.family = 4 ;
    r.len = 32 ;
    if (haslen)
    {
      if (len > 32) return 0 ;
      banaddr_mask(&r, len) ;
    }
    *b = r ;
    return 1 ;
  }
  if (memchr(s, 0, alen)) return 0 ;
  memcpy(buf, s, alen) ;
  buf[alen] = 0 ;
  if (memchr(buf, ':', alen))
  {
    unsigned char a6[16] ;
    if (inet_pton(AF_INET6, buf, a6) != 1) return 0 ;
    if (!memcmp(a6, mapped, 12))
    {
      r.family = 4 ;
      memcpy(r.a, a6 + 12, 4) ;
      if (haslen)
      {
        if (len < 96) return 0 ;
        len -= 96 ;
      }
    }
    else { r.family = 6 ; memcpy(r.a, a6, 16) ; }
  }
  else
  {
    if (inet_pton(AF_INET, buf, r.a) != 1) return 0 ;
    r.family = 4 ;
  }
  r.len = r.family == 4 ? 32 : 128 ;
  if (haslen)
  {
    if (len > r.len) return 0 ;
    banaddr_mask(&r, len) ;
  }
  *b = r ;
  return 1 ;
}

int banaddr_contains (banaddr const *net, banaddr const *a)
{
  if (net->family != a->family || a->len < net->len) return 0 ;
  banaddr x = *a ;
  banaddr_mask(&x, net->len) ;
  return !memcmp(x.a, net->a, 16) ;
}

int banaddr_equal (banaddr const *x, banaddr const *y)
{
  return x->family == y->family && x->len == y->len && !memcmp(x->a, y->a, 16) ;
}

static size_t fmt_uint (char *s, unsigned int u)
{
  char tmp[12] ;
  size_t n = 0 ;
  do { tmp[n++] = '0' + u % 10 ; u /= 10 ; } while (u) ;
  for (size_t i = 0 ; i < n ; i++) s[i] = tmp[n - 1 - i] ;
  return n ;
}

static size_t fmt_hex (char *s, unsigned int u)
{
  static char const hex[] = "0123456789abcdef" ;
  char tmp[8] ;
  size_t n = 0 ;
  do { tmp[n++] = hex[u & 15] ; u >>= 4 ; } while (u) ;
  for (size_t i = 0 ; i < n ; i++) s[i] = tmp[n - 1 - i] ;
  return n ;
}

size_t banaddr_fmt (char *s, banaddr const *b)
{
  size_t n ;
  if (b->family == 4)
  {
    n = 0 ;
    for (unsigned int i = 0 ; i < 4 ; i++)
    {
      if (i) s[n++] = '.' ;
      n += fmt_uint(s + n, b->a[i]) ;
    }
  }
  else
  {
    if (!inet_ntop(AF_INET6, b->a, s, BANADDR_FMT)) { s[0] = '?' ; s[1] = 0 ; return 1 ; }
    n = strlen(s) ;
  }
  if (b->len != (b->family == 4 ? 32 : 128))
  {
    s[n++] = '/' ;
    n += fmt_uint(s + n, b->len) ;
  }
  s[n] = 0 ;
  return n ;
}

static unsigned int group16 (unsigned char const *ip, unsigned int g)
{
  return ((unsigned int)ip[2*g] << 8) | ip[2*g+1] ;
}

size_t banaddr_fmt_ucspi6 (char *s, unsigned char const *ip)
{
  int best = -1, bestlen = 0, cur = -1 ;
  size_t n = 0 ;
  for (int g = 0 ; g < 8 ; g++)
  {
    if (group16(ip, g)) { cur = -1 ; continue ; }
    if (cur < 0) cur = g ;
    if (g - cur + 1 > bestlen) { bestlen = g - cur + 1 ; best = cur ; }
  }
  for (int g = 0 ; g < 8 ; g++)
  {
    if (g == best)
    {
      if (!g) s[n++] = ':' ;
      s[n++] = ':' ;
      g += bestlen - 1 ;
      continue ;
    }
    n += fmt_hex(s + n, group16(ip, g)) ;
    if (g < 7) s[n++] = ':' ;
  }
  s[n] = 0 ;
  return n ;
}

static int cat_groups (stralloc *sa, unsigned int const *p, unsigned int from, unsigned int to)
{
  char tmp[8] ;
  for (unsigned int g = from ; g < to ; g++)
  {
    if (g > from && !stralloc_catb(sa, ":", 1)) return 0 ;
    if (!stralloc_catb(sa, tmp, fmt_hex(tmp, p[g]))) return 0 ;
  }
  return 1 ;
}

/* The text forms that an address of the network p[0..ng) (whole groups)
 * can start with, as tcpserver tries them. */
static int tcprules6_groups (stralloc *sa, unsigned int const *p, unsigned int ng)
{
  if (!cat_groups(sa, p, 0, ng) || !stralloc_catb(sa, "::deny\n", 7)) return 0 ;
  for (unsigned int i = 0 ; i < ng ; i++)
  {
    if (p[i] || (i && !p[i-1])) continue ;
    unsigned int e = i ;
    while (e + 1 < ng && !p[e+1]) e++ ;
    if (!cat_groups(sa, p, 0, i) || !stralloc_catb(sa, "::", 2)) return 0 ;
    if (e + 1 < ng)
    {
      if (!cat_groups(sa, p, e + 1, ng) || !stralloc_catb(sa, ":", 1)) return 0 ;
    }
    if (!stralloc_catb(sa, ":deny\n", 6)) return 0 ;
  }
  return 1 ;
}

int banaddr_tcprules (stralloc *sa, banaddr const *b)
{
  char tmp[BANADDR_FMT] ;
  if (b->family == 4)
  {
    unsigned int q = b->len / 8, r = b->len % 8 ;
    size_t n = 0 ;
    for (unsigned int i = 0 ; i < q ; i++)
    {
      n += fmt_uint(tmp + n, b->a[i]) ;
      if (i < 3) tmp[n++] = '.' ;
    }
    if (r)
    {
      unsigned int lo = b->a[q], hi = lo | (0xffu >> r) ;
      n += fmt_uint(tmp + n, lo) ;
      tmp[n++] = '-' ;
      n += fmt_uint(tmp + n, hi) ;
      if (q < 3) tmp[n++] = '.' ;
    }
    return stralloc_catb(sa, tmp, n) && stralloc_catb(sa, ":deny\n", 6) ;
  }
  if (b->len == 128)
    return stralloc_catb(sa, tmp, banaddr_fmt_ucspi6(tmp, b->a)) && stralloc_catb(sa, ":deny\n", 6) ;
  unsigned int p[8] ;
  unsigned int ng = (b->len + 15) / 16, k = ng * 16 - b->len ;
  if (k > 8) { ng-- ; k = 0 ; }   /* too many values to list: the whole group */
  if (!ng) return stralloc_catb(sa, ":deny\n", 6) ;
  for (unsigned int g = 0 ; g < ng ; g++) p[g] = group16(b->a, g) ;
  unsigned int base = p[ng-1] ;
  for (unsigned int v = 0 ; v < (1u << k) ; v++)
  {
    p[ng-1] = base | v ;
    if (ng == 8)
    {
      unsigned char ip[16] ;
      for (unsigned int g = 0 ; g < 8 ; g++) { ip[2*g] = p[g] >> 8 ; ip[2*g+1] = p[g] & 0xff ; }
      if (!stralloc_catb(sa, tmp, banaddr_fmt_ucspi6(tmp, ip)) || !stralloc_catb(sa, ":deny\n", 6)) return 0 ;
    }
    else if (!tcprules6_groups(sa, p, ng)) return 0 ;
  }
  return 1 ;
}

/* ---- time stamps ---- */

static int64_t days_from_civil (int64_t y, unsigned int m, unsigned int d)
{
  y -= m <= 2 ;
  int64_t era = (y >= 0 ? y : y - 399) / 400 ;
  unsigned int yoe = (unsigned int)(y - era * 400) ;
  unsigned int doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1 ;
  unsigned int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy ;
  return era * 146097 + (int64_t)doe - 719468 ;
}

static int num (char const *s, size_t n, unsigned int *u)
{
  unsigned int v = 0 ;
  for (size_t i = 0 ; i < n ; i++)
  {
    if (s[i] < '0' || s[i] > '9') return 0 ;
    v = v * 10 + (s[i] - '0') ;
  }
  *u = v ;
  return 1 ;
}

/* Local time -> epoch seconds.  mktime is slow: cache the start of the
 * last hour asked for (log lines come in order). */
static int64_t local_epoch (unsigned int y, unsigned int mo, unsigned int d, unsigned int h, unsigned int mi, unsigned int sec)
{
  static unsigned int cy, cmo, cd, ch ;
  static int64_t cbase = -1 ;
  if (cbase < 0 || y != cy || mo != cmo || d != cd || h != ch)
  {
    struct tm tm ;
    memset(&tm, 0, sizeof tm) ;
    tm.tm_year = (int)y - 1900 ; tm.tm_mon = mo - 1 ; tm.tm_mday = d ;
    tm.tm_hour = h ; tm.tm_isdst = -1 ;
    time_t t = mktime(&tm) ;
    if (t == (time_t)-1) return -1 ;
    cy = y ; cmo = mo ; cd = d ; ch = h ; cbase = (int64_t)t ;
  }
  return cbase + mi * 60 + sec ;
}

static size_t skip_blanks (char const *s, size_t n, size_t i)
{
  while (i < n && (s[i] == ' ' || s[i] == '\t')) i++ ;
  return i ;
}

/* hex digit value + 1, 0 for anything else */
static unsigned char const hexval1[256] =
{
  ['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7, ['7'] = 8, ['8'] = 9, ['9'] = 10,
  ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
  ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
} ;
#define hexval(c) ((int)hexval1[(unsigned char)(c)] - 1)

/* s[0..n) == t[0..n) for 8 <= n <= 24, in 8-byte loads (the last one
 * overlapping), nothing read past n: most lines carry the label of the
 * line before, and a memcmp call costs more than the rest of the check */
static inline int same_label (char const *s, char const *t, size_t n)
{
  uint64_t a, b, c, d, e = 0, f = 0 ;
  memcpy(&a, s, 8) ; memcpy(&b, s + n - 8, 8) ;
  memcpy(&c, t, 8) ; memcpy(&d, t + n - 8, 8) ;
  if (n > 16) { memcpy(&e, s + 8, 8) ; memcpy(&f, t + 8, 8) ; }
  return ((a ^ c) | (b ^ d) | (e ^ f)) == 0 ;
}

static size_t stamp_tai64n (char const *s, size_t n, int64_t *ms)
{
  /* lines come in bursts within a second: keep the last seconds label */
  static char lastlabel[17] ;
  static time_t lastu = -1 ;
  uint32_t nano = 0 ;
  time_t u ;
  if (n < 25) return 0 ;
  for (size_t i = 17 ; i < 25 ; i++)
  {
    int x = hexval(s[i]) ;
    if (x < 0) return 0 ;
    nano = (nano << 4) | x ;
  }
  if (nano >= 1000000000) return 0 ;
  if (lastu >= 0 && same_label(s, lastlabel, 17)) u = lastu ;
  else
  {
    uint64_t sec = 0 ;
    for (size_t i = 1 ; i < 17 ; i++)
    {
      int x = hexval(s[i]) ;
      if (x < 0) return 0 ;
      sec = (sec << 4) | x ;
    }
    if (sec < TAI_MAGIC || sec > TAI_MAGIC + 253402300799ULL) return 0 ;   /* 1970 to 9999 */
    tai t = { sec } ;
    if (!time_sysclock_from_tai(&u, &t) || u < 0 || u > 253402300799LL) return 0 ;
    memcpy(lastlabel, s, 17) ;
    lastu = u ;
  }
  *ms = (int64_t)u * 1000 + nano / 1000000 ;
  return 25 ;
}

static size_t stamp_iso (char const *s, size_t n, int64_t *ms)
{
  unsigned int y, mo, d, h, mi, sec, frac = 0 ;
  size_t i = 19 ;
  if (n < 19 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != ' ')
   || s[13] != ':' || s[16] != ':') return 0 ;
  if (!num(s, 4, &y) || !num(s + 5, 2, &mo) || !num(s + 8, 2, &d)
   || !num(s + 11, 2, &h) || !num(s + 14, 2, &mi) || !num(s + 17, 2, &sec)) return 0 ;
  if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return 0 ;
  if (i < n && (s[i] == '.' || s[i] == ','))
  {
    unsigned int digits = 0 ;
    i++ ;
    while (i < n && s[i] >= '0' && s[i] <= '9')
    {
      if (digits < 3) frac = frac * 10 + (s[i] - '0') ;
      digits++ ; i++ ;
    }
    if (!digits) return 0 ;
    while (digits < 3) { frac *= 10 ; digits++ ; }
  }
  int64_t t ;
  if (i < n && (s[i] == 'Z' || s[i] == '+' || s[i] == '-'))
  {
    int64_t off = 0 ;
    if (s[i] == 'Z') i++ ;
    else
    {
      unsigned int oh, om ;
      int neg = s[i] == '-' ;
      if (i + 3 > n || !num(s + i + 1, 2, &oh)) return 0 ;
      i += 3 ;
      if (i < n && s[i] == ':') i++ ;
      if (i + 2 > n || !num(s + i, 2, &om)) return 0 ;
      i += 2 ;
      if (oh > 23 || om > 59) return 0 ;
      off = (int64_t)(oh * 60 + om) * 60 ;
      if (neg) off = -off ;
    }
    t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off ;
  }
  else
  {
    t = local_epoch(y, mo, d, h, mi, sec) ;
    if (t < 0) return 0 ;
  }
  if (i < n && s[i] != ' ' && s[i] != '\t') return 0 ;
  *ms = t * 1000 + frac ;
  return i ;
}

static size_t stamp_syslog (char const *s, size_t n, int64_t *ms, int64_t now)
{
  static char const months[] = "JanFebMarAprMayJunJulAugSepOctNovDec" ;
  unsigned int mo = 0, d, h, mi, sec ;
  /* lines come in bursts within a second: keep the last label's time */
  static char lastlabel[15] ;
  static int64_t lastt = -1, lastnow = -1 ;
  if (n < 15 || s[3] != ' ' || s[9] != ':' || s[12] != ':') return 0 ;
  if (lastt >= 0 && now == lastnow && same_label(s, lastlabel, 15) && (n == 15 || s[15] == ' ' || s[15] == '\t'))
  {
    *ms = lastt ;
    return 15 ;
  }
  for (unsigned int i = 0 ; i < 12 ; i++)
    if (!memcmp(s, months + 3 * i, 3)) { mo = i + 1 ; break ; }
  if (!mo) return 0 ;
  if (s[4] == ' ') { if (!num(s + 5, 1, &d)) return 0 ; }
  else if (!num(s + 4, 2, &d)) return 0 ;
  if (s[6] != ' ' || !num(s + 7, 2, &h) || !num(s + 10, 2, &mi) || !num(s + 13, 2, &sec)) return 0 ;
  if (d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return 0 ;
  if (n > 15 && s[15] != ' ' && s[15] != '\t') return 0 ;
  static time_t lasthour = -1 ;
  static unsigned int lastyear ;
  time_t nows = (time_t)(now / 1000) ;
  if (nows / 3600 != lasthour)   /* the year of now, asked once an hour */
  {
    struct tm tm ;
    if (!localtime_r(&nows, &tm)) return 0 ;
    lastyear = tm.tm_year + 1900 ;
    lasthour = nows / 3600 ;
  }
  unsigned int y = lastyear ;
  int64_t t = local_epoch(y, mo, d, h, mi, sec) ;
  if (t > nows + 86400) t = local_epoch(y - 1, mo, d, h, mi, sec) ;
  if (t < 0) return 0 ;
  *ms = t * 1000 ;
  memcpy(lastlabel, s, 15) ; lastt = *ms ; lastnow = now ;
  return 15 ;
}

size_t banline_stamp (char const *s, size_t n, int64_t *ms, int64_t now)
{
  size_t i = 0 ;
  if (!n) return 0 ;
  if (s[0] == '@') i = stamp_tai64n(s, n, ms) ;
  else if (s[0] >= '0' && s[0] <= '9') i = stamp_iso(s, n, ms) ;
  else if (s[0] >= 'A' && s[0] <= 'Z') i = stamp_syslog(s, n, ms, now) ;
  if (!i) return 0 ;
  return skip_blanks(s, n, i) ;
}

/* ---- yubin key=value lines ---- */

/* 1: a name byte [A-Za-z0-9._-]; 2: a value byte (printable, not '=') */
static unsigned char const kvclass[256] =
{
  ['-'] = 3, ['.'] = 3, ['_'] = 3,
  ['0'] = 3, ['1'] = 3, ['2'] = 3, ['3'] = 3, ['4'] = 3, ['5'] = 3, ['6'] = 3, ['7'] = 3, ['8'] = 3, ['9'] = 3,
  ['A'] = 3, ['B'] = 3, ['C'] = 3, ['D'] = 3, ['E'] = 3, ['F'] = 3, ['G'] = 3, ['H'] = 3, ['I'] = 3,
  ['J'] = 3, ['K'] = 3, ['L'] = 3, ['M'] = 3, ['N'] = 3, ['O'] = 3, ['P'] = 3, ['Q'] = 3, ['R'] = 3,
  ['S'] = 3, ['T'] = 3, ['U'] = 3, ['V'] = 3, ['W'] = 3, ['X'] = 3, ['Y'] = 3, ['Z'] = 3,
  ['a'] = 3, ['b'] = 3, ['c'] = 3, ['d'] = 3, ['e'] = 3, ['f'] = 3, ['g'] = 3, ['h'] = 3, ['i'] = 3,
  ['j'] = 3, ['k'] = 3, ['l'] = 3, ['m'] = 3, ['n'] = 3, ['o'] = 3, ['p'] = 3, ['q'] = 3, ['r'] = 3,
  ['s'] = 3, ['t'] = 3, ['u'] = 3, ['v'] = 3, ['w'] = 3, ['x'] = 3, ['y'] = 3, ['z'] = 3,
  ['!'] = 2, ['"'] = 2, ['#'] = 2, ['$'] = 2, ['%'] = 2, ['&'] = 2, ['\''] = 2, ['('] = 2, [')'] = 2,
  ['*'] = 2, ['+'] = 2, [','] = 2, ['/'] = 2, [':'] = 2, [';'] = 2, ['<'] = 2, ['>'] = 2, ['?'] = 2,
  ['@'] = 2, ['['] = 2, ['\\'] = 2, [']'] = 2, ['^'] = 2, ['`'] = 2, ['{'] = 2, ['|'] = 2, ['}'] = 2,
  ['~'] = 2,
} ;
#define isname(c) (kvclass[(unsigned char)(c)] & 1)
#define isvalue(c) (kvclass[(unsigned char)(c)] & 2)

int banline_kv_head (banline_kv *kv, char const *s, size_t n)
{
  size_t i = 0 ;
  while (i < n && isname(s[i])) i++ ;
  if (!i || i > 64 || i + 2 > n || s[i] != ':' || s[i+1] != ' ') return 0 ;
  kv->prog = s ; kv->proglen = i ;
  i += 2 ;
  size_t v = i ;
  while (i < n && isname(s[i])) i++ ;
  if (i == v || (i < n && s[i] != ' ')) return 0 ;
  kv->verb = s + v ; kv->verblen = i - v ;
  kv->ip = 0 ; kv->iplen = 0 ;
  return 1 ;
}

int banline_kv_parse (banline_kv *kv, char const *s, size_t n)
{
  if (!banline_kv_head(kv, s, n)) return 0 ;
  size_t i = kv->verb + kv->verblen - s ;
  while (i < n)
  {
    if (s[i] != ' ') return 0 ;
    size_t k = ++i ;
    while (i < n && isname(s[i])) i++ ;
    if (i == k || i >= n || s[i] != '=') return 0 ;
    size_t klen = i - k ;
    size_t vs = ++i ;
    while (i < n && isvalue(s[i])) i++ ;
    if (i == vs || (i < n && s[i] != ' ')) return 0 ;
    if (klen == 2 && s[k] == 'i' && s[k+1] == 'p')
    {
      if (kv->ip) return 0 ;
      kv->ip = s + vs ; kv->iplen = i - vs ;
    }
  }
  return 1 ;
}

int banline_kv_field (char const *s, size_t n, char const *key, char const **v, size_t *vlen)
{
  size_t klen = strlen(key) ;
  char const *colon = memchr(s, ' ', n) ;   /* after "prog:" */
  if (!colon) return 0 ;
  size_t i = colon - s + 1 ;
  while (i < n && s[i] != ' ') i++ ;         /* the verb */
  while (i < n)
  {
    size_t k = ++i ;
    while (i < n && s[i] != ' ') i++ ;
    if (i - k > klen && !memcmp(s + k, key, klen) && s[k + klen] == '=')
    {
      *v = s + k + klen + 1 ;
      *vlen = i - k - klen - 1 ;
      return 1 ;
    }
  }
  return 0 ;
}

/* ---- fail2ban-style patterns ---- */

#define HOSTRE "([0-9A-Fa-f:.]+)"

/* the escapes that stand for the character itself (not \< \> \b \w ...,
 * glibc's word operators, nor back references) */
#define LITESC ".[]()*+?{}|^$\\/-"

/* index past the bracket expression that starts at p[i] == '[', 0 if open */
static size_t bracket_end (char const *p, size_t n, size_t i)
{
  size_t j = i + 1 ;
  if (j < n && p[j] == '^') j++ ;
  if (j < n && p[j] == ']') j++ ;
  while (j < n)
  {
    if (p[j] == '[' && j + 1 < n && (p[j+1] == ':' || p[j+1] == '.' || p[j+1] == '='))
    {
      char c = p[j+1] ;
      j += 2 ;
      while (j + 1 < n && !(p[j] == c && p[j+1] == ']')) j++ ;
      if (j + 1 >= n) return 0 ;
      j += 2 ;
      continue ;
    }
    if (p[j] == ']') return j + 1 ;
    j++ ;
  }
  return 0 ;
}

/* the byte of a literal to look for first: the least common in logs
 * (bytes of log text from the most common on; any other is rarer) */
static size_t rarest (char const *lit, size_t len)
{
  static char const common[] = " e0t1a2o3.i4n5s6r7:89h-ld=c]u[m/fp,gw<>y@bv()kSAxTEOCRIjNLPqzMDFUBH_" ;
  size_t best = 0 ;
  size_t bestscore = (size_t)-1 ;
  for (size_t i = 0 ; i < len ; i++)
  {
    char const *q = lit[i] ? strchr(common, lit[i]) : 0 ;
    size_t score = q ? sizeof(common) - (size_t)(q - common) : 0 ;
    if (score < bestscore) { bestscore = score ; best = i ; }
  }
  return best ;
}

/* "x+" keeps at least one x, but not when another quantifier is stacked
 * on it ("x+*", "x+?", which regcomp takes): p[i] is the '+' */
static int plus_optional (char const *p, size_t n, size_t i)
{
  while (i < n && p[i] == '+') i++ ;
  return i < n && (p[i] == '*' || p[i] == '?' || p[i] == '{') ;
}

/* The longest literal that every match must contain: taken outside groups
 * only, never when there is a top-level alternation. */
static void find_literal (banpat *bp, char const *p, size_t n)
{
  char run[64] ;
  size_t rlen = 0 ;
  int depth = 0 ;
  int lastlit = 0 ;   /* the last atom was a literal appended to run */
  bp->litlen = 0 ;
  for (size_t i = 0 ; i <= n ; )
  {
    int end = 0, atom_lit = 0 ;
    char c = i < n ? p[i] : 0 ;
    if (i == n) { end = 1 ; i++ ; }
    else if (n - i >= 6 && !memcmp(p + i, "<HOST>", 6)) { end = 1 ; i += 6 ; }
    else if (c == '\\')
    {
      char e = i + 1 < n ? p[i+1] : 0 ;
      i += 2 ;
      if (e && strchr(LITESC, e) && depth == 0) { c = e ; atom_lit = 1 ; }
      else end = 1 ;
    }
    else if (c == '[') { size_t j = bracket_end(p, n, i) ; i = j ? j : n ; end = 1 ; }
    else if (c == '(') { depth++ ; i++ ; end = 1 ; }
    else if (c == ')') { if (depth) depth-- ; i++ ; end = 1 ; }
    else if (c == '|') { if (!depth) { bp->litlen = 0 ; return ; } i++ ; end = 1 ; }
    else if (c == '*' || c == '?' || c == '{')
    {
      if (lastlit && rlen) rlen-- ;
      if (c == '{') { while (i < n && p[i] != '}') i++ ; }
      i++ ;
      end = 1 ;
    }
    else if (c == '+')
    {
      if (lastlit && rlen && plus_optional(p, n, i)) rlen-- ;
      i++ ;
      end = 1 ;
    }
    else if (c == '.' || c == '^' || c == '$') { i++ ; end = 1 ; }
    else { i++ ; if (depth == 0) atom_lit = 1 ; else end = 1 ; }
    if (atom_lit)
    {
      if (rlen < sizeof(run)) run[rlen++] = c ;
      lastlit = 1 ;
      continue ;
    }
    if (end)
    {
      /* a quantifier applies to the atom before it: the run stops there */
      if (rlen > bp->litlen) { memcpy(bp->lit, run, rlen) ; bp->litlen = rlen ; }
      rlen = 0 ;
      lastlit = 0 ;
    }
  }
  if (bp->litlen < 2) bp->litlen = 0 ;
}

/* ---- <HOST> without capturing ----
 * glibc's regexec is ten times slower when it must report groups.  An
 * anchored pattern "^P<HOST>S$" whose <HOST> sits outside any group,
 * with a literal right before it and one right after it, is matched as
 * "^P$" on the text before the address and "^S$" on the text after it,
 * neither reporting groups: each place where the literal before occurs
 * gives the one candidate split.  A line with no valid split does not
 * match; with two or more (ambiguous) the full regex decides. */

enum { TK_LIT, TK_QUANT, TK_PLUS, TK_OTHER } ;

static int token (char const *p, size_t n, size_t *i, char *c)
{
  char x = p[*i] ;
  if (x == '\\')
  {
    char e = *i + 1 < n ? p[*i + 1] : 0 ;
    *i += 2 ;
    if (e && strchr(LITESC, e)) { *c = e ; return TK_LIT ; }
    return TK_OTHER ;
  }
  if (x == '[') { size_t j = bracket_end(p, n, *i) ; *i = j ? j : n ; return TK_OTHER ; }
  (*i)++ ;
  if (x == '*' || x == '?') return TK_QUANT ;
  if (x == '{') { while (*i < n && p[*i] != '}') (*i)++ ; if (*i < n) (*i)++ ; return TK_QUANT ; }
  if (x == '+') return TK_PLUS ;
  if (x == '(' || x == ')' || x == '|' || x == '.' || x == '^' || x == '$') return TK_OTHER ;
  *c = x ;
  return TK_LIT ;
}

#define ISHOST(c) (((c) >= '0' && (c) <= '9') || ((c) >= 'a' && (c) <= 'f') || ((c) >= 'A' && (c) <= 'F') || (c) == ':' || (c) == '.')

/* a banre for the pattern s (regcomp took it), or 0: regexec then */
static banre *dfa_new (char const *s)
{
  banre *r = malloc(sizeof *r) ;
  if (!r) return 0 ;
  if (!banre_compile(r, s, strlen(s))) { free(r) ; return 0 ; }
  return r ;
}

static void dfa_free (banre **r)
{
  if (!*r) return ;
  banre_free(*r) ;
  free(*r) ;
  *r = 0 ;
}

static void fast_setup (banpat *bp, char const *p, size_t n, size_t hostpos)
{
  char tmp[1024] ;
  size_t i = 0, len = 0 ;
  int lastlit = 0 ;
  /* the literal that ends the prefix */
  while (i < hostpos)
  {
    char c ;
    int t = token(p, hostpos, &i, &c) ;
    if (t == TK_LIT) { if (len < sizeof bp->prelit) bp->prelit[len++] = c ; else return ; lastlit = 1 ; continue ; }
    len = 0 ; lastlit = 0 ;
  }
  if (!lastlit || !len) return ;
  bp->prelen = len ;
  /* the literal that starts the suffix; litend[k]: where the pattern
   * goes on after its first k + 1 literal characters */
  size_t litend[sizeof bp->postlit], skip ;
  len = 0 ;
  for (i = hostpos + 6 ; i < n ; )
  {
    char c ;
    size_t before = i ;
    int t = token(p, n, &i, &c) ;
    if (t == TK_LIT)
    {
      if (len >= sizeof bp->postlit) { i = before ; break ; }
      litend[len] = i ;
      bp->postlit[len++] = c ;
      continue ;
    }
    if ((t == TK_QUANT || (t == TK_PLUS && plus_optional(p, n, before))) && len) len-- ;
    i = before ;
    break ;
  }
  if (!len || ISHOST(bp->postlit[0])) { bp->prelen = 0 ; return ; }
  bp->postlen = len ;
  /* the DFA of the suffix starts after the literal memcmp checks, but
   * not inside "x+": the '+' must stay with its x */
  skip = len ;
  if (i < n && p[i] == '+') skip-- ;
  bp->prekey = rarest(bp->prelit, bp->prelen) ;
  if (hostpos + 2 > sizeof tmp || n - hostpos - 6 + 2 > sizeof tmp) { bp->prelen = 0 ; return ; }
  memcpy(tmp, p, hostpos) ; tmp[hostpos] = '$' ; tmp[hostpos + 1] = 0 ;
  if (regcomp(&bp->pre, tmp, REG_EXTENDED | REG_NOSUB)) { bp->prelen = 0 ; return ; }
  bp->dpre = dfa_new(tmp) ;
  tmp[0] = '^' ; memcpy(tmp + 1, p + hostpos + 6, n - hostpos - 6) ; tmp[n - hostpos - 5] = 0 ;
  if (regcomp(&bp->post, tmp, REG_EXTENDED | REG_NOSUB)) { regfree(&bp->pre) ; dfa_free(&bp->dpre) ; bp->prelen = 0 ; return ; }
  if (skip)
  {
    char tmp2[1024] ;
    tmp2[0] = '^' ; memcpy(tmp2 + 1, p + litend[skip - 1], n - litend[skip - 1]) ; tmp2[n - litend[skip - 1] + 1] = 0 ;
    regex_t rx ;
    /* only what regcomp takes goes to banre (its contract) */
    if (!regcomp(&rx, tmp2, REG_EXTENDED | REG_NOSUB))
    {
      regfree(&rx) ;
      bp->dpost = dfa_new(tmp2) ;
      if (bp->dpost) bp->postskip = skip ;
    }
  }
  if (!bp->dpost) bp->dpost = dfa_new(tmp) ;
  bp->fast = 1 ;
}

int banpat_compile (banpat *bp, char const *p, int host, char *err, size_t errlen)
{
  stralloc re = STRALLOC_ZERO ;
  size_t n = strlen(p) ;
  unsigned int hosts = 0, group = 0 ;
  unsigned long repeats = 1 ;   /* product of the interval counts */
  int depth = 0, hostdepth = -1, topalt = 0, backref = 0 ;
  size_t hostpos = 0 ;
  memset(bp, 0, sizeof *bp) ;
  err[0] = 0 ;
  for (size_t i = 0 ; i < n ; )
  {
    if (n - i >= 6 && !memcmp(p + i, "<HOST>", 6))
    {
      hosts++ ;
      hostpos = i ; hostdepth = depth ;
      bp->hostgroup = ++group ;
      if (!stralloc_cats(&re, HOSTRE)) goto nomem ;
      i += 6 ;
      continue ;
    }
    if (p[i] == '\\')
    {
      if (i + 1 >= n) { snprintf(err, errlen, "pattern ends with a backslash") ; goto fail ; }
      if (p[i+1] >= '1' && p[i+1] <= '9') backref = 1 ;
      if (!stralloc_catb(&re, p + i, 2)) goto nomem ;
      i += 2 ;
      continue ;
    }
    if (p[i] == '[')
    {
      size_t j = bracket_end(p, n, i) ;
      if (!j) { snprintf(err, errlen, "unterminated bracket expression") ; goto fail ; }
      if (!stralloc_catb(&re, p + i, j - i)) goto nomem ;
      i = j ;
      continue ;
    }
    if (p[i] == '{')
    {
      /* glibc's regcomp expands intervals: x{333}{3333} is a million
         copies and takes minutes.  Patterns are the operator's, but a typo
         must not hang banwatch at start: bound every count and their
         product. */
      size_t j = i + 1 ;
      unsigned long count = 0, maxcount = 0 ;
      while (j < n && p[j] != '}')
      {
        if (p[j] >= '0' && p[j] <= '9')
        {
          count = count * 10 + (p[j] - '0') ;
          if (count > REPEAT_MAX) break ;
          if (count > maxcount) maxcount = count ;
        }
        else if (p[j] == ',') count = 0 ;
        else break ;
        j++ ;
      }
      if (j < n && p[j] == '}')
      {
        if (maxcount > REPEAT_MAX || (repeats *= maxcount ? maxcount : 1) > REPEAT_MAX)
        {
          snprintf(err, errlen, "repetition counts over %d in one pattern", REPEAT_MAX) ;
          goto fail ;
        }
      }
      else if (count > REPEAT_MAX)
      {
        snprintf(err, errlen, "repetition counts over %d in one pattern", REPEAT_MAX) ;
        goto fail ;
      }
    }
    if (p[i] == '(') { group++ ; depth++ ; }
    else if (p[i] == ')' && depth) depth-- ;
    else if (p[i] == '|' && !depth) topalt = 1 ;
    if (!stralloc_catb(&re, p + i, 1)) goto nomem ;
    i++ ;
  }
  if (hosts > 1) { snprintf(err, errlen, "more than one <HOST>") ; goto fail ; }
  if (host)
  {
    size_t bs = 0 ;
    if (!hosts) { snprintf(err, errlen, "no <HOST> in failregex") ; goto fail ; }
    while (bs + 1 < n && p[n - 2 - bs] == '\\') bs++ ;
    if (n < 2 || p[0] != '^' || p[n-1] != '$' || (bs & 1))
    {
      snprintf(err, errlen, "failregex must be anchored: begin with ^ and end with $ (so text in a user name can't supply <HOST>)") ;
      goto fail ;
    }
  }
  if (!stralloc_0(&re)) goto nomem ;
  int e = regcomp(&bp->re, re.s, REG_EXTENDED) ;
  if (e)
  {
    size_t l = regerror(e, &bp->re, err, errlen) ;
    (void)l ;
    goto fail ;
  }
  bp->nm = bp->hostgroup + 1 ;
  bp->m = malloc(bp->nm * sizeof(regmatch_t)) ;
  if (!bp->m) { regfree(&bp->re) ; goto nomem ; }
  find_literal(bp, p, n) ;
  bp->litkey = rarest(bp->lit, bp->litlen) ;
  if (!backref) bp->dfa = dfa_new(re.s) ;
  if (hosts == 1 && hostdepth == 0 && !topalt && !backref && n >= 2 && p[0] == '^' && p[n-1] == '$')
    fast_setup(bp, p, n, hostpos) ;
  stralloc_free(&re) ;
  return 1 ;
 nomem:
  snprintf(err, errlen, "out of memory") ;
 fail:
  stralloc_free(&re) ;
  return 0 ;
}

void banpat_free (banpat *bp)
{
  if (!bp->m) return ;
  regfree(&bp->re) ;
  if (bp->fast) { regfree(&bp->pre) ; regfree(&bp->post) ; bp->fast = 0 ; }
  dfa_free(&bp->dfa) ; dfa_free(&bp->dpre) ; dfa_free(&bp->dpost) ;
  free(bp->m) ;
  bp->m = 0 ;
}

static int banpat_match_full (banpat const *bp, char const *s, size_t n, banaddr *host) ;

/* memmem for the short literals of patterns: memchr to the rarest byte
 * of the needle (glibc's memmem is slow on short lines) */
static char const *findlit (char const *s, size_t n, char const *lit, size_t len, size_t key)
{
  if (n < len) return 0 ;
  char const *p = s + key, *end = s + n - (len - key) + 1 ;
  for (;;)
  {
    p = memchr(p, lit[key], end - p) ;
    if (!p) return 0 ;
    if (!memcmp(p - key, lit, len)) return p - key ;
    p++ ;
  }
}

static int banpat_match_fast (banpat const *bp, char const *s, size_t n, banaddr *host)
{
  size_t hi = 0, hj = 0, from = 0 ;
  int found = 0 ;
  for (;;)
  {
    char const *q = findlit(s + from, n - from, bp->prelit, bp->prelen, bp->prekey) ;
    if (!q) break ;
    size_t i = q - s + bp->prelen, j = i ;
    from = q - s + 1 ;
    while (j < n && ISHOST(s[j])) j++ ;
    if (j == i || n - j < bp->postlen || memcmp(s + j, bp->postlit, bp->postlen)) continue ;
    regmatch_t m ;
    int r = bp->dpre ? banre_match(bp->dpre, s, i) : -1 ;
    if (r < 0) { m.rm_so = 0 ; m.rm_eo = i ; r = !regexec(&bp->pre, s, 1, &m, REG_STARTEND) ; }
    if (!r) continue ;
    r = bp->dpost ? banre_match(bp->dpost, s + j + bp->postskip, n - j - bp->postskip) : -1 ;
    if (r < 0) { m.rm_so = 0 ; m.rm_eo = n - j ; r = !regexec(&bp->post, s + j, 1, &m, REG_STARTEND) ; }
    if (!r) continue ;
    if (found++) return banpat_match_full(bp, s, n, host) ;   /* ambiguous */
    hi = i ; hj = j ;
  }
  if (!found) return 0 ;
  return banaddr_scanip(host, s + hi, hj - hi) ? 1 : -1 ;
}

int banpat_match (banpat const *bp, char const *s, size_t n, banaddr *host)
{
  if (bp->litlen && !findlit(s, n, bp->lit, bp->litlen, bp->litkey)) return 0 ;
  return banpat_match_maybe(bp, s, n, host) ;
}

int banpat_match_maybe (banpat const *bp, char const *s, size_t n, banaddr *host)
{
  if (bp->fast) return banpat_match_fast(bp, s, n, host) ;
  if (bp->dfa)
  {
    /* most lines don't match: let the DFA say so without regexec */
    int r = banre_match(bp->dfa, s, n) ;
    if (!r) return 0 ;
    if (r > 0 && !bp->hostgroup) return 1 ;
  }
  return banpat_match_full(bp, s, n, host) ;
}

int banpat_maybe (banpat const *bp, char const *s, size_t n)
{
  return !bp->litlen || findlit(s, n, bp->lit, bp->litlen, bp->litkey) ;
}

int banpat_match_regex (banpat const *bp, char const *s, size_t n, banaddr *host)
{
  return banpat_match_full(bp, s, n, host) ;
}

static int banpat_match_full (banpat const *bp, char const *s, size_t n, banaddr *host)
{
  bp->m[0].rm_so = 0 ;
  bp->m[0].rm_eo = n ;
  if (regexec(&bp->re, s, bp->nm, bp->m, REG_STARTEND)) return 0 ;
  if (!bp->hostgroup) return 1 ;
  regmatch_t const *g = bp->m + bp->hostgroup ;
  if (g->rm_so < 0 || g->rm_eo < g->rm_so) return -1 ;
  return banaddr_scanip(host, s + g->rm_so, (size_t)(g->rm_eo - g->rm_so)) ? 1 : -1 ;
}

/* ---- durations ---- */

int banparse_duration (char const *s, size_t n, int64_t *ms)
{
  uint64_t v = 0 ;
  size_t i = 0 ;
  int64_t unit = 1000 ;
  while (i < n && s[i] >= '0' && s[i] <= '9')
  {
    v = v * 10 + (s[i] - '0') ;
    if (v > 1000000000000ULL) return 0 ;
    i++ ;
  }
  if (!i) return 0 ;
  size_t u = n - i ;
  if (!u) unit = 1000 ;
  else if (u == 2 && !memcmp(s + i, "ms", 2)) unit = 1 ;
  else if (u == 1 && s[i] == 's') unit = 1000 ;
  else if (u == 1 && s[i] == 'm') unit = 60000 ;
  else if (u == 1 && s[i] == 'h') unit = 3600000 ;
  else if (u == 1 && s[i] == 'd') unit = 86400000 ;
  else if (u == 1 && s[i] == 'w') unit = 604800000 ;
  else return 0 ;
  if (v > (uint64_t)INT64_MAX / 4 / (uint64_t)unit) return 0 ;
  *ms = (int64_t)v * unit ;
  return 1 ;
}
