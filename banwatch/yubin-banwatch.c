/* yubin-banwatch: read log lines, count failures per address in jails,
 * ban repeat offenders (nftables set, tcprules deny list, program hook).
 * See yubin-banwatch.8 and yubin-banwatch.conf.5. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/buffer.h>
#include <skalibs/djbunix.h>
#include <skalibs/genalloc.h>
#include <skalibs/iopause.h>
#include <skalibs/random.h>
#include <skalibs/selfpipe.h>
#include <skalibs/sgetopt.h>
#include <skalibs/socket.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>

#include "banparse.h"
#include "root.h"
#include "ylog.h"

#define USAGE "yubin-banwatch [ -c confdir ] [ -C ] [ -r logfile [ -j jail ] ]"

#define MAXJAILS 64
#define MAXACTIONS 32
#define READBUF 65536
#define HISTN 8

/* ======================================================================
 * clock
 * ====================================================================== */

static int64_t now ;        /* ms since the epoch: the wall clock, or in
                               replay mode the latest line time stamp */
static int64_t wallnow ;    /* the wall clock at start (guessing years) */
static int replaying = 0 ;

static int64_t wallclock (void)
{
  struct timespec ts ;
  clock_gettime(CLOCK_REALTIME, &ts) ;
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 ;
}

static size_t fmt_secs (char *s, int64_t ms)
{
  return (size_t)snprintf(s, 24, "%lld", (long long)((ms + 999) / 1000)) ;
}

static void fmt_iso (char *s, int64_t ms)
{
  time_t t = (time_t)(ms / 1000) ;
  struct tm tm ;
  if (!gmtime_r(&t, &tm)) { strcpy(s, "?") ; return ; }
  strftime(s, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) ;
}

/* ======================================================================
 * address hash tables (SipHash-1-3 with a random key: the addresses come
 * from the network, and an attacker must not be able to collide them)
 * ====================================================================== */

static uint64_t hkey[2] ;

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND do { \
  v0 += v1 ; v1 = ROTL(v1, 13) ; v1 ^= v0 ; v0 = ROTL(v0, 32) ; \
  v2 += v3 ; v3 = ROTL(v3, 16) ; v3 ^= v2 ; \
  v0 += v3 ; v3 = ROTL(v3, 21) ; v3 ^= v0 ; \
  v2 += v1 ; v1 = ROTL(v1, 17) ; v1 ^= v2 ; v2 = ROTL(v2, 32) ; } while (0)

static uint64_t addr_hash (banaddr const *b)
{
  uint64_t m[3] ;
  memcpy(m, b->a, 16) ;
  m[2] = (uint64_t)b->family | ((uint64_t)b->len << 8) | ((uint64_t)18 << 56) ;
  uint64_t v0 = hkey[0] ^ 0x736f6d6570736575ULL, v1 = hkey[1] ^ 0x646f72616e646f6dULL ;
  uint64_t v2 = hkey[0] ^ 0x6c7967656e657261ULL, v3 = hkey[1] ^ 0x7465646279746573ULL ;
  for (int i = 0 ; i < 3 ; i++) { v3 ^= m[i] ; SIPROUND ; v0 ^= m[i] ; }
  v2 ^= 0xff ;
  SIPROUND ; SIPROUND ; SIPROUND ;
  return v0 ^ v1 ^ v2 ^ v3 ;
}

/* key -> index+1; linear probing, deletion by backward shift */
typedef struct aslot_s aslot ;
struct aslot_s { banaddr key ; uint32_t val ; } ;
typedef struct aindex_s aindex ;
struct aindex_s { aslot *s ; size_t mask ; size_t used ; } ;
#define AINDEX_ZERO { 0, 0, 0 }

static int keyeq (banaddr const *x, banaddr const *y)
{
  return !memcmp(x, y, sizeof(banaddr)) ;
}

static uint32_t aindex_get_h (aindex const *ix, banaddr const *k, uint64_t h)
{
  if (!ix->used) return 0 ;
  for (size_t i = h & ix->mask ; ix->s[i].val ; i = (i + 1) & ix->mask)
    if (keyeq(&ix->s[i].key, k)) return ix->s[i].val ;
  return 0 ;
}

static uint32_t aindex_get (aindex const *ix, banaddr const *k)
{
  return ix->used ? aindex_get_h(ix, k, addr_hash(k)) : 0 ;
}

static void aindex_insert (aslot *s, size_t mask, banaddr const *k, uint32_t v)
{
  size_t i = addr_hash(k) & mask ;
  while (s[i].val) i = (i + 1) & mask ;
  s[i].key = *k ; s[i].val = v ;
}

static void aindex_put (aindex *ix, banaddr const *k, uint32_t v)
{
  if (!ix->s || (ix->used + 1) * 4 > (ix->mask + 1) * 3)
  {
    size_t n = ix->s ? (ix->mask + 1) * 2 : 256 ;
    aslot *s = calloc(n, sizeof(aslot)) ;
    if (!s) strerr_diefu1sys(111, "grow a hash table") ;
    if (ix->s)
    {
      for (size_t i = 0 ; i <= ix->mask ; i++)
        if (ix->s[i].val) aindex_insert(s, n - 1, &ix->s[i].key, ix->s[i].val) ;
      free(ix->s) ;
    }
    ix->s = s ; ix->mask = n - 1 ;
  }
  aindex_insert(ix->s, ix->mask, k, v) ;
  ix->used++ ;
}

static void aindex_del (aindex *ix, banaddr const *k)
{
  size_t i ;
  if (!ix->s) return ;
  for (i = addr_hash(k) & ix->mask ; ix->s[i].val ; i = (i + 1) & ix->mask)
    if (keyeq(&ix->s[i].key, k)) break ;
  if (!ix->s[i].val) return ;
  for (size_t j = i ;;)
  {
    j = (j + 1) & ix->mask ;
    if (!ix->s[j].val) break ;
    size_t h = addr_hash(&ix->s[j].key) & ix->mask ;
    if ((j > i && (h <= i || h > j)) || (j < i && (h <= i && h > j)))
    {
      ix->s[i] = ix->s[j] ;
      i = j ;
    }
  }
  ix->s[i].val = 0 ;
  ix->used-- ;
}

/* ======================================================================
 * configuration
 * ====================================================================== */

typedef struct cfline_s cfline ;
struct cfline_s { char const *key ; char const *val ; char const *file ; unsigned int line ; } ;
typedef struct cfsec_s cfsec ;
struct cfsec_s
{
  char const *kind ;    /* "global", "jail", "action", "filter" */
  char const *name ;
  char const *file ;
  unsigned int line ;
  size_t first ;        /* lines [first, first+n) of cflines */
  size_t n ;
} ;

static genalloc cflines = GENALLOC_ZERO ;  /* cfline */
static genalloc cfsecs = GENALLOC_ZERO ;   /* cfsec */
static genalloc cftexts = GENALLOC_ZERO ;  /* char *: file contents, kept */
static char const *confdir ;

#define CFL(i) (genalloc_s(cfline, &cflines) + (i))
#define CFS(i) (genalloc_s(cfsec, &cfsecs) + (i))

static void cfdie (char const *file, unsigned int line, char const *a, char const *b, char const *c)
{
  char fmt[16] ;
  snprintf(fmt, sizeof fmt, "%u", line) ;
  strerr_dief(100, file, ":", fmt, ": ", a, b ? b : "", c ? c : "") ;
}

#define cflerr(l, a, b, c) cfdie((l)->file, (l)->line, a, b, c)

static int isnamec (char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
      || c == '-' || c == '_' || c == '.' ;
}

static char *trim (char *s)
{
  while (*s == ' ' || *s == '\t') s++ ;
  size_t n = strlen(s) ;
  while (n && (s[n-1] == ' ' || s[n-1] == '\t' || s[n-1] == '\r')) s[--n] = 0 ;
  return s ;
}

/* Read one file into sections.  A filter.d file is one filter section
 * (its [Definition] header, if any, is ignored).  Returns 0 if the file
 * does not exist. */
static int cf_read (char const *file, char const *filtername)
{
  stralloc sa = STRALLOC_ZERO ;
  if (!openslurpclose(&sa, file))
  {
    if (errno == ENOENT) return 0 ;
    strerr_diefu2sys(111, "read ", file) ;
  }
  if (!stralloc_0(&sa)) strerr_diefu1sys(111, "read configuration") ;
  char *text = sa.s ;
  char const *fname = strdup(file) ;
  if (!fname || !genalloc_append(char *, &cftexts, &text)) strerr_diefu1sys(111, "read configuration") ;
  if (memchr(text, 0, sa.len - 1)) cfdie(fname, 1, "NUL byte in file", 0, 0) ;
  cfsec cur = { filtername ? "filter" : "global", filtername ? filtername : "global", fname, 1, genalloc_len(cfline, &cflines), 0 } ;
  int havelast = 0 ;
  unsigned int lineno = 0 ;
  for (char *p = text ; *p ; )
  {
    char *nl = strchr(p, '\n') ;
    char *line = p ;
    if (nl) { *nl = 0 ; p = nl + 1 ; } else p += strlen(p) ;
    lineno++ ;
    int cont = line[0] == ' ' || line[0] == '\t' ;
    line = trim(line) ;
    if (!*line || *line == '#' || *line == ';') continue ;
    if (cont)
    {
      if (!havelast) cfdie(fname, lineno, "continuation line without a key", 0, 0) ;
      cfline l = { CFL(genalloc_len(cfline, &cflines) - 1)->key, line, fname, lineno } ;
      if (!genalloc_append(cfline, &cflines, &l)) strerr_diefu1sys(111, "read configuration") ;
      cur.n++ ;
      continue ;
    }
    if (*line == '[')
    {
      char *end = strchr(line, ']') ;
      if (!end || end[1]) cfdie(fname, lineno, "bad section header", 0, 0) ;
      *end = 0 ;
      char *kind = trim(line + 1) ;
      char *name = kind ;
      while (*name && *name != ' ' && *name != '\t') name++ ;
      if (*name) { *name++ = 0 ; name = trim(name) ; }
      havelast = 0 ;
      if (filtername)
      {
        if (!strcmp(kind, "Definition") || !strcmp(kind, "filter")) continue ;
        if (!strcmp(kind, "INCLUDES"))
          cfdie(fname, lineno, "fail2ban [INCLUDES] are not supported: write the patterns out", 0, 0) ;
        cfdie(fname, lineno, "unknown section in a filter file: ", kind, 0) ;
      }
      if (!genalloc_append(cfsec, &cfsecs, &cur)) strerr_diefu1sys(111, "read configuration") ;
      if (!strcmp(kind, "global"))
      {
        if (*name) cfdie(fname, lineno, "[global] takes no name", 0, 0) ;
        name = "global" ;
      }
      else if (strcmp(kind, "jail") && strcmp(kind, "action") && strcmp(kind, "filter"))
        cfdie(fname, lineno, "unknown section kind (expected global, jail, action or filter): ", kind, 0) ;
      else
      {
        if (!*name) cfdie(fname, lineno, "section needs a name: [", kind, " NAME]") ;
        for (char *q = name ; *q ; q++)
          if (!isnamec(*q)) cfdie(fname, lineno, "bad character in section name: ", name, 0) ;
        if (strlen(name) > 64) cfdie(fname, lineno, "section name too long", 0, 0) ;
      }
      cur.kind = kind ; cur.name = name ; cur.file = fname ; cur.line = lineno ;
      cur.first = genalloc_len(cfline, &cflines) ; cur.n = 0 ;
      continue ;
    }
    char *eq = strchr(line, '=') ;
    if (!eq) cfdie(fname, lineno, "expected key = value", 0, 0) ;
    *eq = 0 ;
    char *key = trim(line), *val = trim(eq + 1) ;
    if (!*key) cfdie(fname, lineno, "empty key", 0, 0) ;
    for (char *q = key ; *q ; q++)
      if (!isnamec(*q)) cfdie(fname, lineno, "bad key: ", key, 0) ;
    if (strstr(val, "%(")) cfdie(fname, lineno, "fail2ban %(...)s interpolation is not supported: write the value out", 0, 0) ;
    cfline l = { key, val, fname, lineno } ;
    if (!genalloc_append(cfline, &cflines, &l)) strerr_diefu1sys(111, "read configuration") ;
    cur.n++ ;
    havelast = 1 ;
  }
  if (!genalloc_append(cfsec, &cfsecs, &cur)) strerr_diefu1sys(111, "read configuration") ;
  return 1 ;
}

/* key lookup inside a section: list keys may repeat, scalar keys not */
static cfline const *cf_get (cfsec const *s, char const *key)
{
  cfline const *r = 0 ;
  for (size_t i = s->first ; i < s->first + s->n ; i++)
  {
    cfline const *l = CFL(i) ;
    if (strcmp(l->key, key)) continue ;
    if (r) cflerr(l, "duplicate key: ", key, 0) ;
    r = l ;
  }
  return r ;
}

static void cf_checkkeys (cfsec const *s, char const *const *keys)
{
  for (size_t i = s->first ; i < s->first + s->n ; i++)
  {
    cfline const *l = CFL(i) ;
    char const *const *k = keys ;
    for (; *k ; k++) if (!strcmp(*k, l->key)) break ;
    if (!*k) cflerr(l, "unknown key in this section: ", l->key, 0) ;
  }
}

static unsigned int cf_uint (cfline const *l, unsigned int min, unsigned int max)
{
  char *end ;
  errno = 0 ;
  unsigned long v = strtoul(l->val, &end, 10) ;
  if (!*l->val || *end || errno || v < min || v > max || l->val[0] == '-' || l->val[0] == '+')
  {
    char tmp[64] ;
    snprintf(tmp, sizeof tmp, " (a number from %u to %u)", min, max) ;
    cflerr(l, "bad value for ", l->key, tmp) ;
  }
  return (unsigned int)v ;
}

static int64_t cf_duration (cfline const *l)
{
  int64_t ms ;
  if (!banparse_duration(l->val, strlen(l->val), &ms) || !ms)
    cflerr(l, "bad duration for ", l->key, " (e.g. 600, 90s, 10m, 1h, 2d, 1w, 500ms)") ;
  return ms ;
}

/* iterate over the whitespace-separated words of a (list) key's lines */
typedef struct cfword_s cfword ;
struct cfword_s { cfsec const *sec ; char const *key ; size_t i ; char const *p ; cfline const *l ; int nocomma ; } ;

static int cf_word (cfword *w, char *buf, size_t max)
{
  for (;;)
  {
    if (w->p)
    {
      while (*w->p == ' ' || *w->p == '\t' || (*w->p == ',' && !w->nocomma)) w->p++ ;
      if (*w->p)
      {
        size_t n = 0 ;
        while (w->p[n] && w->p[n] != ' ' && w->p[n] != '\t' && (w->p[n] != ',' || w->nocomma)) n++ ;
        if (n >= max) cflerr(w->l, "value too long for ", w->key, 0) ;
        memcpy(buf, w->p, n) ; buf[n] = 0 ;
        w->p += n ;
        return 1 ;
      }
      w->p = 0 ;
    }
    for (; w->i < w->sec->first + w->sec->n ; w->i++)
      if (!strcmp(CFL(w->i)->key, w->key)) break ;
    if (w->i >= w->sec->first + w->sec->n) return 0 ;
    w->l = CFL(w->i) ;
    w->p = w->l->val ;
    w->i++ ;
  }
}

static void cf_cidrs (cfsec const *s, char const *key, genalloc *out)
{
  cfword w = { s, key, s->first, 0, 0, 0 } ;
  char buf[128] ;
  while (cf_word(&w, buf, sizeof buf))
  {
    banaddr b ;
    if (!banaddr_scancidr(&b, buf, strlen(buf))) cflerr(w.l, "bad address or CIDR: ", buf, 0) ;
    if (!genalloc_append(banaddr, out, &b)) strerr_diefu1sys(111, "read configuration") ;
  }
}

static char *cf_path (char const *v)
{
  stralloc sa = STRALLOC_ZERO ;
  if (!strcmp(v, "-") || v[0] == '/') { char *r = strdup(v) ; if (!r) strerr_diefu1sys(111, "read configuration") ; return r ; }
  if (!yubin_path(&sa, v)) strerr_diefu1sys(111, "read configuration") ;
  return sa.s ;
}

/* ---- filters ---- */

enum { F_KV, F_REGEX, F_RECIDIVE } ;

typedef struct evsel_s evsel ;
struct evsel_s { char prog[65] ; char verb[65] ; char key[33] ; char val[65] ; size_t proglen, verblen ; } ;  /* "" = any */

typedef struct filter_s filter ;
struct filter_s
{
  char const *name ;
  int type ;
  int inl ;         /* a jail's own patterns: not found by name */
  genalloc ev ;     /* evsel (F_KV) */
  genalloc fail ;   /* banpat */
  genalloc ign ;    /* banpat */
} ;

static genalloc filters = GENALLOC_ZERO ;  /* filter */
#define FILTER(i) (genalloc_s(filter, &filters) + (i))

static void filter_events (filter *f, cfsec const *s, char const *key, cfline const *where)
{
  cfword w = { s, key, s->first, 0, 0, 0 } ;
  char buf[140] ;
  while (cf_word(&w, buf, sizeof buf))
  {
    evsel e ;
    char *colon = strchr(buf, ':') ;
    char *verb = buf ;
    char *slash = strchr(buf, '/') ;
    memset(&e, 0, sizeof e) ;
    if (slash)
    {
      char *eq = strchr(slash, '=') ;
      *slash++ = 0 ;
      if (!eq || eq == slash || strlen(eq + 1) > 64 || (size_t)(eq - slash) > 32 || !eq[1])
        cflerr(w.l, "bad event condition (verb/key=value): ", slash, 0) ;
      memcpy(e.key, slash, eq - slash) ;
      strcpy(e.val, eq + 1) ;
      if (colon > slash) colon = 0 ;
    }
    if (colon)
    {
      *colon = 0 ; verb = colon + 1 ;
      if (strlen(buf) > 64 || !*buf) cflerr(w.l, "bad event (prog:verb or verb): ", buf, 0) ;
      strcpy(e.prog, buf) ;
    }
    if (!*verb || strlen(verb) > 64) cflerr(w.l, "bad event (prog:verb or verb): ", verb, 0) ;
    strcpy(e.verb, verb) ;
    e.verblen = strlen(e.verb) ; e.proglen = strlen(e.prog) ;
    if (!genalloc_append(evsel, &f->ev, &e)) strerr_diefu1sys(111, "read configuration") ;
  }
  if (!genalloc_len(evsel, &f->ev) && where) cflerr(where, "filter has no events", 0, 0) ;
}

static void filter_patterns (filter *f, cfsec const *s, cfline const *where)
{
  for (size_t i = s->first ; i < s->first + s->n ; i++)
  {
    cfline const *l = CFL(i) ;
    int fail = !strcmp(l->key, "failregex") ;
    if (!fail && strcmp(l->key, "ignoreregex")) continue ;
    if (!*l->val) continue ;
    banpat p ;
    char err[256] ;
    if (!banpat_compile(&p, l->val, fail, err, sizeof err)) cflerr(l, l->key, ": ", err) ;
    if (!genalloc_append(banpat, fail ? &f->fail : &f->ign, &p)) strerr_diefu1sys(111, "read configuration") ;
  }
  if (!genalloc_len(banpat, &f->fail)) cflerr(where, "filter has no failregex", 0, 0) ;
}

static char const *const filterkeys[] = { "type", "events", "failregex", "ignoreregex", 0 } ;

/* make filter from a section (filter section, or a jail's inline keys) */
static unsigned int filter_make (char const *name, cfsec const *s, cfline const *where, int inl)
{
  filter f = { name, F_REGEX, inl, GENALLOC_ZERO, GENALLOC_ZERO, GENALLOC_ZERO } ;
  cfline const *t = cf_get(s, "type") ;
  if (t && !strcmp(t->val, "yubin")) f.type = F_KV ;
  else if (t && strcmp(t->val, "regex")) cflerr(t, "unknown filter type (yubin or regex): ", t->val, 0) ;
  if (f.type == F_KV)
  {
    for (size_t i = s->first ; i < s->first + s->n ; i++)
      if (!strcmp(CFL(i)->key, "failregex") || !strcmp(CFL(i)->key, "ignoreregex"))
        cflerr(CFL(i), "a yubin filter takes events, not ", CFL(i)->key, 0) ;
    filter_events(&f, s, "events", where) ;
  }
  else
  {
    if (cf_get(s, "events")) cflerr(cf_get(s, "events"), "events needs type = yubin", 0, 0) ;
    filter_patterns(&f, s, where) ;
  }
  if (!genalloc_append(filter, &filters, &f)) strerr_diefu1sys(111, "read configuration") ;
  return genalloc_len(filter, &filters) - 1 ;
}

/* verbs: "verb" or "verb/key=value", separated by blanks */
static unsigned int filter_builtin (char const *name, int type, char const *verbs)
{
  filter f = { name, type, 0, GENALLOC_ZERO, GENALLOC_ZERO, GENALLOC_ZERO } ;
  for (char const *p = verbs ; p && *p ; )
  {
    evsel e ;
    size_t n = strcspn(p, " "), v = strcspn(p, "/") ;
    memset(&e, 0, sizeof e) ;
    if (v > n) v = n ;
    memcpy(e.verb, p, v) ;
    if (v < n)
    {
      size_t k = strcspn(p + v + 1, "=") ;
      memcpy(e.key, p + v + 1, k) ;
      memcpy(e.val, p + v + 2 + k, n - v - 2 - k) ;
    }
    e.verblen = strlen(e.verb) ; e.proglen = 0 ;
    if (!genalloc_append(evsel, &f.ev, &e)) strerr_diefu1sys(111, "read configuration") ;
    p += n ;
    while (*p == ' ') p++ ;
  }
  if (!genalloc_append(filter, &filters, &f)) strerr_diefu1sys(111, "read configuration") ;
  return genalloc_len(filter, &filters) - 1 ;
}

/* a filter by name: [filter NAME] section, then confdir/filter.d/NAME.conf,
 * then the built-in ones */
static unsigned int filter_find (char const *name, cfline const *where)
{
  for (size_t i = 0 ; i < genalloc_len(filter, &filters) ; i++)
    if (!FILTER(i)->inl && !strcmp(FILTER(i)->name, name)) return i ;
  for (size_t i = 0 ; i < genalloc_len(cfsec, &cfsecs) ; i++)
  {
    cfsec const *s = CFS(i) ;
    if (strcmp(s->kind, "filter") || strcmp(s->name, name)) continue ;
    cf_checkkeys(s, filterkeys) ;
    cfline fake = { "filter", name, s->file, s->line } ;
    return filter_make(s->name, s, &fake, 0) ;
  }
  {
    stralloc fn = STRALLOC_ZERO ;
    if (!stralloc_cats(&fn, confdir) || !stralloc_cats(&fn, "/filter.d/")
     || !stralloc_cats(&fn, name) || !stralloc_cats(&fn, ".conf") || !stralloc_0(&fn))
      strerr_diefu1sys(111, "read configuration") ;
    size_t before = genalloc_len(cfsec, &cfsecs) ;
    int found = cf_read(fn.s, name) ;
    stralloc_free(&fn) ;
    if (found)
    {
      cfsec const *s = CFS(before) ;
      cf_checkkeys(s, filterkeys) ;
      cfline fake = { "filter", name, s->file, 1 } ;
      return filter_make(name, s, &fake, 0) ;
    }
  }
  if (!strcmp(name, "yubin-auth")) return filter_builtin("yubin-auth", F_KV, "auth-fail") ;
  if (!strcmp(name, "yubin-abuse"))
    return filter_builtin("yubin-abuse", F_KV, "reject/reason=too-many-errors reject/reason=too-many-auth-failures") ;
  if (!strcmp(name, "recidive")) return filter_builtin("recidive", F_RECIDIVE, 0) ;
  cflerr(where, "unknown filter: ", name, " (no [filter] section, no filter.d file, not built in)") ;
  return 0 ;
}

/* ---- actions ---- */

enum { A_NFT, A_TCPRULES, A_EXEC } ;

typedef struct action_s action ;
struct action_s
{
  char const *name ;
  int type ;
  /* nft */
  char const *nft ;
  char const *table ;
  char const *chain ;
  char const *hook ;
  int priority ;
  char const *verdict ;
  /* tcprules */
  char const *tcprules ;
  char *cdb ;
  char *cdbtmp ;
  char *list ;
  char *base ;
  int basewd ;          /* inotify on the directory of base */
  /* exec */
  char **argv ;
  /* runtime */
  pid_t pid ;
  int64_t started ;
  int dirty ;
  stralloc pending ;    /* nft: batch text; exec: queued events, \0-separated words, \n per event */
  uint64_t runs, fails ;
  unsigned char have4[33], have6[129] ;  /* nft sets made */
} ;

static genalloc actions = GENALLOC_ZERO ;  /* action */
#define ACTION(i) (genalloc_s(action, &actions) + (i))

static char const *const actionkeys[] = { "type", "nft", "table", "chain", "hook", "priority", "verdict", "tcprules", "cdb", "rules", "list", "command", 0 } ;

static int cf_isname (char const *s)
{
  if (!*s || strlen(s) > 32) return 0 ;
  for (; *s ; s++) if (!isnamec(*s) || *s == '.') return 0 ;
  return 1 ;
}

static void action_make (cfsec const *s)
{
  action a ;
  memset(&a, 0, sizeof a) ;
  a.name = s->name ;
  a.pid = 0 ;
  cf_checkkeys(s, actionkeys) ;
  cfline const *t = cf_get(s, "type") ;
  if (!t) cfdie(s->file, s->line, "action needs a type (nft, tcprules or exec)", 0, 0) ;
  if (!strcmp(t->val, "nft"))
  {
    cfline const *l ;
    a.type = A_NFT ;
    a.nft = (l = cf_get(s, "nft")) ? l->val : "/usr/sbin/nft" ;
    a.table = (l = cf_get(s, "table")) ? l->val : "yubin" ;
    a.chain = (l = cf_get(s, "chain")) ? l->val : "input" ;
    a.hook = (l = cf_get(s, "hook")) ? l->val : "input" ;
    a.verdict = (l = cf_get(s, "verdict")) ? l->val : "drop" ;
    a.priority = -10 ;
    if ((l = cf_get(s, "priority")))
    {
      char *end ;
      long v = strtol(l->val, &end, 10) ;
      if (!*l->val || *end || v < -1000 || v > 1000) cflerr(l, "bad priority (a number from -1000 to 1000)", 0, 0) ;
      a.priority = (int)v ;
    }
    if (!cf_isname(a.table)) cflerr(cf_get(s, "table"), "bad table name: ", a.table, 0) ;
    if (!cf_isname(a.chain)) cflerr(cf_get(s, "chain"), "bad chain name: ", a.chain, 0) ;
    if (strcmp(a.hook, "input") && strcmp(a.hook, "forward") && strcmp(a.hook, "prerouting"))
      cflerr(cf_get(s, "hook"), "bad hook (input, forward or prerouting): ", a.hook, 0) ;
    if (strcmp(a.verdict, "drop") && strcmp(a.verdict, "reject"))
      cflerr(cf_get(s, "verdict"), "bad verdict (drop or reject): ", a.verdict, 0) ;
  }
  else if (!strcmp(t->val, "tcprules"))
  {
    cfline const *l ;
    a.type = A_TCPRULES ;
    a.tcprules = (l = cf_get(s, "tcprules")) ? l->val : "/usr/bin/tcprules" ;
    if (!(l = cf_get(s, "cdb"))) cfdie(s->file, s->line, "tcprules action needs cdb = file", 0, 0) ;
    a.cdb = cf_path(l->val) ;
    a.base = (l = cf_get(s, "rules")) ? cf_path(l->val) : 0 ;
    if ((l = cf_get(s, "list"))) a.list = cf_path(l->val) ;
    else
    {
      stralloc sa = STRALLOC_ZERO ;
      if (!stralloc_cats(&sa, confdir) || !stralloc_cats(&sa, "/") || !stralloc_cats(&sa, a.name)
       || !stralloc_cats(&sa, ".rules") || !stralloc_0(&sa)) strerr_diefu1sys(111, "read configuration") ;
      a.list = sa.s ;
    }
    {
      stralloc sa = STRALLOC_ZERO ;
      if (!stralloc_cats(&sa, a.cdb) || !stralloc_cats(&sa, ".tmp") || !stralloc_0(&sa)) strerr_diefu1sys(111, "read configuration") ;
      a.cdbtmp = sa.s ;
    }
  }
  else if (!strcmp(t->val, "exec"))
  {
    cfline const *l = cf_get(s, "command") ;
    genalloc av = GENALLOC_ZERO ;
    a.type = A_EXEC ;
    if (!l) cfdie(s->file, s->line, "exec action needs command = program [args]", 0, 0) ;
    cfword w = { s, "command", s->first, 0, 0, 1 } ;
    char buf[1024] ;
    while (cf_word(&w, buf, sizeof buf))
    {
      char *x = strdup(buf) ;
      if (!x || !genalloc_append(char *, &av, &x)) strerr_diefu1sys(111, "read configuration") ;
    }
    char *z = 0 ;
    if (!genalloc_len(char *, &av)) cflerr(l, "empty command", 0, 0) ;
    if (genalloc_s(char *, &av)[0][0] != '/') cflerr(l, "command must be an absolute path: ", genalloc_s(char *, &av)[0], 0) ;
    if (!genalloc_append(char *, &av, &z)) strerr_diefu1sys(111, "read configuration") ;
    a.argv = genalloc_s(char *, &av) ;
  }
  else cflerr(t, "unknown action type (nft, tcprules or exec): ", t->val, 0) ;
  for (size_t i = 0 ; i < genalloc_len(action, &actions) ; i++)
    if (!strcmp(ACTION(i)->name, a.name)) cfdie(s->file, s->line, "duplicate action: ", a.name, 0) ;
  if (genalloc_len(action, &actions) >= MAXACTIONS) cfdie(s->file, s->line, "too many actions", 0, 0) ;
  if (!genalloc_append(action, &actions, &a)) strerr_diefu1sys(111, "read configuration") ;
}

static unsigned int action_find (char const *name)
{
  for (size_t i = 0 ; i < genalloc_len(action, &actions) ; i++)
    if (!strcmp(ACTION(i)->name, name)) return i ;
  return (unsigned int)-1 ;
}

/* ---- jails ---- */

typedef struct fcount_s fcount ;
struct fcount_s
{
  banaddr key ;
  uint16_t n ;        /* failures held in the ring */
  int64_t last ;      /* newest failure */
} ;

typedef struct jail_s jail ;
struct jail_s
{
  char const *name ;
  unsigned int filter ;
  unsigned int maxretry, prefix4, prefix6 ;
  int64_t findtime, bantime, bantime_max ;
  double factor ;
  genalloc ignore ;     /* banaddr */
  uint32_t actions ;    /* bit i: ACTION(i) */
  genalloc logpaths ;   /* char *: "-" is stdin */
  /* failure counters: index -> fcount, and maxretry stamps per record */
  aindex ix ;
  genalloc recs ;       /* fcount */
  genalloc ring ;       /* int64_t, maxretry per record */
  genalloc freel ;      /* uint32_t: free records */
  size_t sweep_at ;
  /* counters */
  uint64_t nmatch, nignored, nbans, nbadhost ;
} ;

static genalloc jails = GENALLOC_ZERO ;  /* jail */
#define JAIL(i) (genalloc_s(jail, &jails) + (i))
#define JAIL_MANUAL 0xffff

static genalloc global_ignore = GENALLOC_ZERO ;  /* banaddr */
static int64_t history_ms = 30LL * 86400000 ;
static int64_t manual_bantime = 3600000 ;
static int start_at_end = 1 ;
static size_t maxline = 8192 ;

static char const *const jailkeys[] =
{
  "filter", "logpath", "maxretry", "findtime", "bantime", "bantime.factor", "bantime.max",
  "prefix4", "prefix6", "ignoreip", "action", "enabled", "failregex", "ignoreregex", "events", "type", 0
} ;

static char const *const globalkeys[] = { "ignoreip", "history", "bantime", "start", "maxline", 0 } ;

static void jail_make (cfsec const *s)
{
  jail j ;
  cfline const *l ;
  memset(&j, 0, sizeof j) ;
  j.name = s->name ;
  cf_checkkeys(s, jailkeys) ;
  if ((l = cf_get(s, "enabled")))
  {
    if (!strcmp(l->val, "no") || !strcmp(l->val, "false") || !strcmp(l->val, "0")) return ;
    if (strcmp(l->val, "yes") && strcmp(l->val, "true") && strcmp(l->val, "1")) cflerr(l, "bad value for enabled (yes or no)", 0, 0) ;
  }
  cfline const *fl = cf_get(s, "filter") ;
  int inl = cf_get(s, "type") || cf_get(s, "events") ;
  for (size_t i = s->first ; i < s->first + s->n ; i++)
    if (!strcmp(CFL(i)->key, "failregex") || !strcmp(CFL(i)->key, "ignoreregex")) inl = 1 ;
  if (fl && inl) cflerr(fl, "a jail has either filter = NAME or its own failregex/events, not both", 0, 0) ;
  if (fl) j.filter = filter_find(fl->val, fl) ;
  else if (inl)
  {
    cfline fake = { "jail", s->name, s->file, s->line } ;
    j.filter = filter_make(s->name, s, &fake, 1) ;
  }
  else cfdie(s->file, s->line, "jail needs filter = NAME (or failregex = ...)", 0, 0) ;
  int recidive = FILTER(j.filter)->type == F_RECIDIVE ;
  j.maxretry = (l = cf_get(s, "maxretry")) ? cf_uint(l, 1, 1000) : recidive ? 3 : 5 ;
  j.findtime = (l = cf_get(s, "findtime")) ? cf_duration(l) : recidive ? 86400000 : 600000 ;
  j.bantime = (l = cf_get(s, "bantime")) ? cf_duration(l) : recidive ? 7 * 86400000LL : 3600000 ;
  j.bantime_max = (l = cf_get(s, "bantime.max")) ? cf_duration(l) : 7 * 86400000LL ;
  if (j.bantime_max < j.bantime) j.bantime_max = j.bantime ;
  j.factor = recidive ? 1 : 2 ;
  if ((l = cf_get(s, "bantime.factor")))
  {
    char *end ;
    j.factor = strtod(l->val, &end) ;
    if (!*l->val || *end || !(j.factor >= 1 && j.factor <= 100)) cflerr(l, "bad bantime.factor (a number from 1 to 100; 1 keeps bans the same length)", 0, 0) ;
  }
  j.prefix4 = (l = cf_get(s, "prefix4")) ? cf_uint(l, 8, 32) : 32 ;
  j.prefix6 = (l = cf_get(s, "prefix6")) ? cf_uint(l, 16, 128) : 64 ;
  cf_cidrs(s, "ignoreip", &j.ignore) ;
  {
    cfword w = { s, "action", s->first, 0, 0, 0 } ;
    char buf[80] ;
    while (cf_word(&w, buf, sizeof buf))
    {
      unsigned int a = action_find(buf) ;
      if (a == (unsigned int)-1) cflerr(w.l, "unknown action: ", buf, " (no [action] section of that name)") ;
      j.actions |= (uint32_t)1 << a ;
    }
  }
  {
    cfword w = { s, "logpath", s->first, 0, 0, 0 } ;
    char buf[4096] ;
    if (recidive && cf_get(s, "logpath")) cflerr(cf_get(s, "logpath"), "a recidive jail reads bans, not logs", 0, 0) ;
    while (cf_word(&w, buf, sizeof buf))
    {
      char *p = cf_path(buf) ;
      if (!genalloc_append(char *, &j.logpaths, &p)) strerr_diefu1sys(111, "read configuration") ;
    }
    if (!recidive && !genalloc_len(char *, &j.logpaths))
    {
      char *p = strdup("-") ;
      if (!p || !genalloc_append(char *, &j.logpaths, &p)) strerr_diefu1sys(111, "read configuration") ;
    }
  }
  for (size_t i = 0 ; i < genalloc_len(jail, &jails) ; i++)
    if (!strcmp(JAIL(i)->name, j.name)) cfdie(s->file, s->line, "duplicate jail: ", j.name, 0) ;
  if (!strcmp(j.name, "manual")) cfdie(s->file, s->line, "jail name manual is reserved for yubin-banctl", 0, 0) ;
  if (genalloc_len(jail, &jails) >= MAXJAILS) cfdie(s->file, s->line, "too many jails", 0, 0) ;
  j.sweep_at = 4096 ;
  if (!genalloc_append(jail, &jails, &j)) strerr_diefu1sys(111, "read configuration") ;
}

static void conf_load (void)
{
  stralloc fn = STRALLOC_ZERO ;
  if (!stralloc_cats(&fn, confdir) || !stralloc_cats(&fn, "/banwatch.conf") || !stralloc_0(&fn))
    strerr_diefu1sys(111, "read configuration") ;
  if (!cf_read(fn.s, 0)) strerr_dief(100, "missing configuration file ", fn.s, " (see yubin-banwatch.conf(5))") ;
  stralloc_free(&fn) ;
  size_t nsec = genalloc_len(cfsec, &cfsecs) ;
  int seenglobal = 0 ;
  for (size_t i = 0 ; i < nsec ; i++)
  {
    cfsec const *s = CFS(i) ;
    cfline const *l ;
    if (strcmp(s->kind, "global")) continue ;
    if (!s->n) continue ;
    if (seenglobal++) cfdie(s->file, s->line, "more than one [global] section", 0, 0) ;
    cf_checkkeys(s, globalkeys) ;
    cf_cidrs(s, "ignoreip", &global_ignore) ;
    if ((l = cf_get(s, "history"))) history_ms = cf_duration(l) ;
    if ((l = cf_get(s, "bantime"))) manual_bantime = cf_duration(l) ;
    if ((l = cf_get(s, "maxline"))) maxline = cf_uint(l, 256, READBUF / 2) ;
    if ((l = cf_get(s, "start")))
    {
      if (!strcmp(l->val, "end")) start_at_end = 1 ;
      else if (!strcmp(l->val, "beginning")) start_at_end = 0 ;
      else cflerr(l, "bad value for start (end or beginning)", 0, 0) ;
    }
  }
  for (size_t i = 0 ; i < nsec ; i++)
    if (!strcmp(CFS(i)->kind, "action")) action_make(CFS(i)) ;
  for (size_t i = 0 ; i < nsec ; i++)
    if (!strcmp(CFS(i)->kind, "filter")) (void)filter_find(CFS(i)->name, 0) ;
  /* filter.d files are read here, before jail_make holds pointers into
   * the (growing) section and line arrays */
  for (size_t i = 0 ; i < nsec ; i++)
  {
    cfsec s = *CFS(i) ;
    if (strcmp(s.kind, "jail")) continue ;
    cfline const *fl = cf_get(&s, "filter") ;
    if (!fl) continue ;
    cfline l = *fl ;
    (void)filter_find(l.val, &l) ;
  }
  for (size_t i = 0 ; i < nsec ; i++)
    if (!strcmp(CFS(i)->kind, "jail")) jail_make(CFS(i)) ;
  if (!genalloc_len(jail, &jails)) strerr_dief(100, "no jail in ", confdir, "/banwatch.conf") ;
}

/* ======================================================================
 * bans, history, expiry
 * ====================================================================== */

typedef struct ban_s ban ;
struct ban_s
{
  banaddr key ;
  int64_t start, until ;
  uint32_t actions ;
  uint32_t gen ;
  uint16_t jail ;
  uint8_t live ;
} ;

static genalloc bans = GENALLOC_ZERO ;      /* ban */
static genalloc banfree = GENALLOC_ZERO ;   /* uint32_t */
static aindex banix = AINDEX_ZERO ;
static size_t nactive = 0 ;
#define BAN(i) (genalloc_s(ban, &bans) + (i))

typedef struct hist_s hist ;
struct hist_s { banaddr key ; uint8_t n ; int64_t t[HISTN] ; } ;  /* t[0] newest */
static genalloc hists = GENALLOC_ZERO ;     /* hist */
static genalloc histfree = GENALLOC_ZERO ;  /* uint32_t */
static aindex histix = AINDEX_ZERO ;
#define HIST(i) (genalloc_s(hist, &hists) + (i))

typedef struct hent_s hent ;
struct hent_s { int64_t until ; uint32_t idx ; uint32_t gen ; } ;
static genalloc heap = GENALLOC_ZERO ;      /* hent, min-heap on until */

static uint64_t st_lines, st_matched, st_bans, st_unbans, st_badline, st_long, st_full ;
#define TRACK_MAX (1u << 20)   /* addresses counted at once, per jail */

static void heap_push (int64_t until, uint32_t idx, uint32_t gen)
{
  hent e = { until, idx, gen } ;
  if (!genalloc_append(hent, &heap, &e)) strerr_diefu1sys(111, "grow the expiry heap") ;
  hent *h = genalloc_s(hent, &heap) ;
  size_t i = genalloc_len(hent, &heap) - 1 ;
  while (i)
  {
    size_t p = (i - 1) / 2 ;
    if (h[p].until <= h[i].until) break ;
    hent t = h[p] ; h[p] = h[i] ; h[i] = t ;
    i = p ;
  }
}

static void heap_pop (void)
{
  hent *h = genalloc_s(hent, &heap) ;
  size_t n = genalloc_len(hent, &heap) - 1 ;
  h[0] = h[n] ;
  genalloc_setlen(hent, &heap, n) ;
  for (size_t i = 0 ;;)
  {
    size_t l = 2 * i + 1, r = l + 1, m = i ;
    if (l < n && h[l].until < h[m].until) m = l ;
    if (r < n && h[r].until < h[m].until) m = r ;
    if (m == i) break ;
    hent t = h[m] ; h[m] = h[i] ; h[i] = t ;
    i = m ;
  }
}

/* drop stale heap tops; returns the next expiry, or -1 */
static int64_t heap_next (void)
{
  while (genalloc_len(hent, &heap))
  {
    hent const *h = genalloc_s(hent, &heap) ;
    ban const *b = BAN(h->idx) ;
    if (b->live && b->gen == h->gen && b->until == h->until) return h->until ;
    heap_pop() ;
  }
  return -1 ;
}

static ban *ban_find (banaddr const *k)
{
  uint32_t v = aindex_get(&banix, k) ;
  return v ? BAN(v - 1) : 0 ;
}

static hist *hist_find (banaddr const *k)
{
  uint32_t v = aindex_get(&histix, k) ;
  return v ? HIST(v - 1) : 0 ;
}

static hist *hist_get (banaddr const *k)
{
  hist *h = hist_find(k) ;
  if (h) return h ;
  uint32_t idx ;
  if (genalloc_len(uint32_t, &histfree))
  {
    idx = genalloc_s(uint32_t, &histfree)[genalloc_len(uint32_t, &histfree) - 1] ;
    genalloc_setlen(uint32_t, &histfree, genalloc_len(uint32_t, &histfree) - 1) ;
  }
  else
  {
    hist z ;
    memset(&z, 0, sizeof z) ;
    if (!genalloc_append(hist, &hists, &z)) strerr_diefu1sys(111, "grow the history") ;
    idx = genalloc_len(hist, &hists) - 1 ;
  }
  h = HIST(idx) ;
  memset(h, 0, sizeof *h) ;
  h->key = *k ;
  aindex_put(&histix, k, idx + 1) ;
  return h ;
}

static void hist_add (hist *h, int64_t t)
{
  memmove(h->t + 1, h->t, (HISTN - 1) * sizeof(int64_t)) ;
  h->t[0] = t ;
  if (h->n < HISTN) h->n++ ;
}

/* forget history older than history_ms */
static void hist_sweep (void)
{
  for (size_t i = 0 ; i < genalloc_len(hist, &hists) ; i++)
  {
    hist *h = HIST(i) ;
    if (!h->key.family) continue ;
    while (h->n && h->t[h->n - 1] < now - history_ms) h->n-- ;
    if (h->n) continue ;
    aindex_del(&histix, &h->key) ;
    h->key.family = 0 ;
    uint32_t idx = i ;
    if (!genalloc_append(uint32_t, &histfree, &idx)) strerr_diefu1sys(111, "sweep the history") ;
  }
}

/* hooks for the daemon; no-ops in replay mode */
static void journal_ban (ban const *) ;
static void journal_unban (banaddr const *) ;
static void actions_ban (ban const *, uint32_t, int) ;
static void actions_unban (ban const *) ;
static void recidive_feed (banaddr const *, int64_t) ;

static char const *jail_name (unsigned int j)
{
  return j == JAIL_MANUAL ? "manual" : JAIL(j)->name ;
}

static void out (char const *s)
{
  if (buffer_puts(buffer_1, s) < 0) strerr_diefu1sys(111, "write to stdout") ;
}

static void say_ban (char const *verb, ban const *b, int64_t dur, unsigned int prior)
{
  char a[BANADDR_FMT], d[24], c[16] ;
  banaddr_fmt(a, &b->key) ;
  if (replaying)
  {
    char t[32] ;
    fmt_iso(t, now) ;
    if (!strcmp(verb, "ban"))
    {
      fmt_secs(d, dur) ;
      out("ban ") ; out(a) ; out(" jail=") ; out(jail_name(b->jail)) ;
      out(" bantime=") ; out(d) ; out("s at=") ; out(t) ; out("\n") ;
    }
    else { out("unban ") ; out(a) ; out(" at=") ; out(t) ; out("\n") ; }
    return ;
  }
  if (!strcmp(verb, "ban"))
  {
    fmt_secs(d, dur) ;
    snprintf(c, sizeof c, "%u", prior + 1) ;
    ylog("ban", "ip", a, "jail", jail_name(b->jail), "bantime", d, "count", c, (char *)0) ;
  }
  else ylog(verb, "ip", a, "jail", jail_name(b->jail), (char *)0) ;
}

/* a new entry in the ban table, nothing else */
static ban *ban_insert (banaddr const *k, int64_t start, int64_t until, uint32_t acts, unsigned int jidx)
{
  uint32_t idx ;
  if (genalloc_len(uint32_t, &banfree))
  {
    idx = genalloc_s(uint32_t, &banfree)[genalloc_len(uint32_t, &banfree) - 1] ;
    genalloc_setlen(uint32_t, &banfree, genalloc_len(uint32_t, &banfree) - 1) ;
  }
  else
  {
    ban z ;
    memset(&z, 0, sizeof z) ;
    if (!genalloc_append(ban, &bans, &z)) strerr_diefu1sys(111, "grow the ban table") ;
    idx = genalloc_len(ban, &bans) - 1 ;
  }
  ban *b = BAN(idx) ;
  b->key = *k ; b->start = start ; b->until = until ; b->actions = acts ;
  b->jail = jidx ; b->live = 1 ; b->gen++ ;
  aindex_put(&banix, k, idx + 1) ;
  nactive++ ;
  heap_push(until, idx, b->gen) ;
  return b ;
}

/* forget a ban, nothing else */
static void ban_drop (ban *b)
{
  aindex_del(&banix, &b->key) ;
  b->live = 0 ;
  b->gen++ ;
  nactive-- ;
  uint32_t idx = b - BAN(0) ;
  if (!genalloc_append(uint32_t, &banfree, &idx)) strerr_diefu1sys(111, "grow the ban table") ;
}

/* ban key for dur ms from jail (or JAIL_MANUAL with the given actions) */
static void ban_add (banaddr const *k, unsigned int jidx, int64_t dur, uint32_t acts, unsigned int prior)
{
  int64_t until = now + dur ;
  ban *b = ban_find(k) ;
  if (b && b->until >= until)
  {
    uint32_t missing = acts & ~b->actions ;
    if (missing) { b->actions |= missing ; actions_ban(b, missing, 0) ; }
    return ;
  }
  if (b)
  {
    b->until = until ;
    b->jail = jidx ;
    b->gen++ ;
    b->actions |= acts ;
    heap_push(until, b - BAN(0), b->gen) ;
    journal_ban(b) ;
    actions_ban(b, b->actions, 1) ;
  }
  else
  {
    b = ban_insert(k, now, until, acts, jidx) ;
    journal_ban(b) ;
    actions_ban(b, acts, 0) ;
  }
  st_bans++ ;
  if (jidx != JAIL_MANUAL) JAIL(jidx)->nbans++ ;
  say_ban("ban", b, dur, prior) ;
  hist_add(hist_get(k), now) ;
  if (jidx == JAIL_MANUAL || FILTER(JAIL(jidx)->filter)->type != F_RECIDIVE)
    recidive_feed(k, now) ;
}

static void ban_remove (ban *b, char const *why)
{
  actions_unban(b) ;
  journal_unban(&b->key) ;
  say_ban(why, b, 0, 0) ;
  ban_drop(b) ;
  st_unbans++ ;
}

static void bans_expire (void)
{
  for (;;)
  {
    int64_t t = heap_next() ;
    if (t < 0 || t > now) break ;
    ban *b = BAN(genalloc_s(hent, &heap)->idx) ;
    heap_pop() ;
    ban_remove(b, "unban") ;
  }
}

/* ======================================================================
 * failure counting
 * ====================================================================== */

static int ignored (jail const *j, banaddr const *a)
{
  for (size_t i = 0 ; i < genalloc_len(banaddr, &global_ignore) ; i++)
    if (banaddr_contains(genalloc_s(banaddr, &global_ignore) + i, a)) return 1 ;
  for (size_t i = 0 ; i < genalloc_len(banaddr, &j->ignore) ; i++)
    if (banaddr_contains(genalloc_s(banaddr, &j->ignore) + i, a)) return 1 ;
  return 0 ;
}

static void counters_sweep (jail *j)
{
  size_t n = genalloc_len(fcount, &j->recs), live = 0 ;
  for (size_t i = 0 ; i < n ; i++)
  {
    fcount *c = genalloc_s(fcount, &j->recs) + i ;
    if (!c->key.family) continue ;
    if (c->n && c->last >= now - j->findtime) { live++ ; continue ; }
    aindex_del(&j->ix, &c->key) ;
    c->key.family = 0 ;
    uint32_t idx = i ;
    if (!genalloc_append(uint32_t, &j->freel, &idx)) strerr_diefu1sys(111, "sweep counters") ;
  }
  j->sweep_at = live * 2 > 4096 ? live * 2 : 4096 ;
}

static fcount *counter_get (jail *j, banaddr const *k, uint64_t h, int64_t **ring)
{
  uint32_t v = aindex_get_h(&j->ix, k, h) ;
  uint32_t idx ;
  if (v) idx = v - 1 ;
  else
  {
    if (j->ix.used >= j->sweep_at) counters_sweep(j) ;
    /* a flood of fresh addresses (a whole IPv6 /48 walked /64 by /64)
     * must not take all the memory: past TRACK_MAX live entries, new
     * addresses are not counted until old ones age out */
    if (j->ix.used >= TRACK_MAX) { st_full++ ; return 0 ; }
    if (genalloc_len(uint32_t, &j->freel))
    {
      idx = genalloc_s(uint32_t, &j->freel)[genalloc_len(uint32_t, &j->freel) - 1] ;
      genalloc_setlen(uint32_t, &j->freel, genalloc_len(uint32_t, &j->freel) - 1) ;
    }
    else
    {
      fcount z ;
      memset(&z, 0, sizeof z) ;
      if (!genalloc_append(fcount, &j->recs, &z)
       || !genalloc_readyplus(int64_t, &j->ring, j->maxretry)) strerr_diefu1sys(111, "grow counters") ;
      genalloc_setlen(int64_t, &j->ring, genalloc_len(int64_t, &j->ring) + j->maxretry) ;
      idx = genalloc_len(fcount, &j->recs) - 1 ;
    }
    fcount *c = genalloc_s(fcount, &j->recs) + idx ;
    c->key = *k ; c->n = 0 ; c->last = 0 ;
    aindex_put(&j->ix, k, idx + 1) ;
  }
  *ring = genalloc_s(int64_t, &j->ring) + (size_t)idx * j->maxretry ;
  return genalloc_s(fcount, &j->recs) + idx ;
}

static void counter_reset (banaddr const *k)
{
  for (size_t i = 0 ; i < genalloc_len(jail, &jails) ; i++)
  {
    jail *j = JAIL(i) ;
    uint32_t v = aindex_get(&j->ix, k) ;
    if (v) genalloc_s(fcount, &j->recs)[v - 1].n = 0 ;
  }
}

static int64_t jail_bantime (jail const *j, banaddr const *k, unsigned int *prior)
{
  hist const *h = hist_find(k) ;
  unsigned int n = 0 ;
  if (h) for (; n < h->n && h->t[n] >= now - history_ms ; n++) ;
  *prior = n ;
  double d = (double)j->bantime ;
  for (unsigned int i = 0 ; i < n && d < (double)j->bantime_max ; i++) d *= j->factor ;
  if (d > (double)j->bantime_max) d = (double)j->bantime_max ;
  return (int64_t)d ;
}

/* One failure of address a at time t in jail j.  Counting is a true
 * sliding window: the ring keeps the newest maxretry failure times, and
 * the address is banned when all of them lie within findtime.
 * feedonly: count, never ban (rebuilding recidive state on start). */
static void jail_fail (unsigned int jidx, banaddr const *a, int64_t t, int feedonly)
{
  jail *j = JAIL(jidx) ;
  banaddr k = *a ;
  if (ignored(j, a)) { j->nignored++ ; return ; }
  banaddr_mask(&k, k.family == 4 ? j->prefix4 : j->prefix6) ;
  j->nmatch++ ;
  uint64_t h = addr_hash(&k) ;
  uint32_t bv = aindex_get_h(&banix, &k, h) ;
  ban const *b = bv ? BAN(bv - 1) : 0 ;
  /* already banned: late lines (recidive counts the bans of other jails) */
  if (b && b->until > now && (FILTER(j->filter)->type != F_RECIDIVE || b->jail == jidx)) return ;
  int64_t *ring ;
  fcount *c = counter_get(j, &k, h, &ring) ;
  if (!c) return ;
  if (c->n < j->maxretry) ring[c->n++] = t ;
  else
  {
    unsigned int old = 0 ;
    for (unsigned int i = 1 ; i < c->n ; i++) if (ring[i] < ring[old]) old = i ;
    if (t <= ring[old]) return ;      /* older than all we keep */
    ring[old] = t ;
  }
  if (t > c->last) c->last = t ;
  if (c->n < j->maxretry || feedonly) return ;
  for (unsigned int i = 0 ; i < c->n ; i++)
    if (ring[i] < c->last - j->findtime) return ;
  c->n = 0 ;
  unsigned int prior ;
  int64_t dur = jail_bantime(j, &k, &prior) ;
  ban_add(&k, jidx, dur, j->actions, prior) ;
}

static void recidive_feed (banaddr const *k, int64_t t)
{
  for (size_t i = 0 ; i < genalloc_len(jail, &jails) ; i++)
    if (FILTER(JAIL(i)->filter)->type == F_RECIDIVE) jail_fail(i, k, t, 0) ;
}

/* ======================================================================
 * lines
 * ====================================================================== */

static int kv_wanted_head (filter const *f, banline_kv const *kv)
{
  evsel const *e = genalloc_s(evsel, &f->ev) ;
  for (size_t i = 0 ; i < genalloc_len(evsel, &f->ev) ; i++)
  {
    if (e[i].verblen != kv->verblen || memcmp(e[i].verb, kv->verb, kv->verblen)) continue ;
    if (e[i].proglen && (e[i].proglen != kv->proglen || memcmp(e[i].prog, kv->prog, kv->proglen))) continue ;
    return 1 ;
  }
  return 0 ;
}

static int kv_wanted (filter const *f, banline_kv const *kv, char const *s, size_t n)
{
  evsel const *e = genalloc_s(evsel, &f->ev) ;
  for (size_t i = 0 ; i < genalloc_len(evsel, &f->ev) ; i++)
  {
    if (e[i].verblen != kv->verblen || memcmp(e[i].verb, kv->verb, kv->verblen)) continue ;
    if (e[i].proglen && (e[i].proglen != kv->proglen || memcmp(e[i].prog, kv->prog, kv->proglen))) continue ;
    if (e[i].key[0])
    {
      char const *v ;
      size_t vlen ;
      if (!banline_kv_field(s, n, e[i].key, &v, &vlen) || vlen != strlen(e[i].val) || memcmp(v, e[i].val, vlen)) continue ;
    }
    return 1 ;
  }
  return 0 ;
}

static char linebuf[READBUF / 2 + 1] ;   /* maxline is at most READBUF / 2 */

/* Offer one line (without its newline) to the jails in jl[0..n). */
static void line_process (char const *s, size_t len, uint16_t const *jl, size_t n)
{
  int64_t t ;
  banline_kv kv ;
  int kvstate = 0 ;   /* 0 not looked at, 1 "prog: verb", 2 whole yubin line, -1 not one */
  int nul = -1 ;      /* holds a NUL: not known yet */
  st_lines++ ;
  while (len && !*s) { s++ ; len-- ; }   /* a hole left by a truncation */
  if (!len) return ;
  size_t off = banline_stamp(s, len, &t, replaying ? wallnow : now) ;
  if (replaying)
  {
    if (!off) { if (!now) now = wallnow ; t = now ; }
    else if (t > now) now = t ;
    if (genalloc_len(hent, &heap) && genalloc_s(hent, &heap)->until <= now) bans_expire() ;
  }
  else if (!off || t > now + 60000) t = now ;
  s += off ; len -= off ;
  for (size_t i = 0 ; i < n ; i++)
  {
    jail *j = JAIL(jl[i]) ;
    filter const *f = FILTER(j->filter) ;
    banaddr a ;
    if (t < now - j->findtime) continue ;   /* too old to count */
    if (f->type == F_KV)
    {
      /* most lines are not failures: look at "prog: verb" first, check
       * every byte (NULs included) only of a line that can matter */
      if (!kvstate) kvstate = banline_kv_head(&kv, s, len) ? 1 : -1 ;
      if (kvstate < 0 || !kv_wanted_head(f, &kv)) continue ;
      if (kvstate == 1) kvstate = banline_kv_parse(&kv, s, len) ? 2 : -1 ;
      if (kvstate < 0) { st_badline++ ; continue ; }
      if (!kv.ip || !kv_wanted(f, &kv, s, len)) continue ;
      if (!banaddr_scanip(&a, kv.ip, kv.iplen)) { j->nbadhost++ ; continue ; }
    }
    else if (f->type == F_REGEX)
    {
      if (nul < 0)
      {
        /* regexec reads a C string: a copy of the line, with a NUL */
        nul = !!memchr(s, 0, len) ;
        if (!nul) { memcpy(linebuf, s, len) ; linebuf[len] = 0 ; }
      }
      if (nul) { st_badline++ ; continue ; }
      banpat const *p = genalloc_s(banpat, &f->fail) ;
      size_t np = genalloc_len(banpat, &f->fail), k ;
      int r = 0 ;
      for (k = 0 ; k < np ; k++) if ((r = banpat_match(p + k, linebuf, len, &a))) break ;
      if (r < 0) { j->nbadhost++ ; continue ; }
      if (!r) continue ;
      p = genalloc_s(banpat, &f->ign) ;
      np = genalloc_len(banpat, &f->ign) ;
      for (k = 0 ; k < np ; k++) { banaddr dummy ; if (banpat_match(p + k, linebuf, len, &dummy)) break ; }
      if (k < np) { j->nignored++ ; continue ; }
    }
    else continue ;
    st_matched++ ;
    jail_fail(jl[i], &a, t, 0) ;
  }
}

/* A line reader over a fixed buffer: complete lines go to line_process,
 * a line longer than maxline is dropped whole (never its tail as a line
 * of its own), bytes after the last newline wait for more. */
typedef struct reader_s reader ;
struct reader_s { char *buf ; size_t len ; int skipping ; } ;

static void reader_init (reader *r)
{
  r->buf = malloc(READBUF) ;
  if (!r->buf) strerr_diefu1sys(111, "allocate a read buffer") ;
  r->len = 0 ; r->skipping = 0 ;
}

static void reader_free (reader *r)
{
  free(r->buf) ;
  r->buf = 0 ; r->len = 0 ; r->skipping = 0 ;
}

/* process r->buf after new bytes were added */
static void reader_lines (reader *r, uint16_t const *jl, size_t n)
{
  size_t start = 0 ;
  for (;;)
  {
    char *nl = memchr(r->buf + start, '\n', r->len - start) ;
    if (!nl) break ;
    size_t end = nl - r->buf ;
    if (r->skipping) { r->skipping = 0 ; st_long++ ; }
    else if (end - start > maxline) st_long++ ;
    else line_process(r->buf + start, end - start, jl, n) ;
    start = end + 1 ;
  }
  if (r->len - start > maxline) { r->skipping = 1 ; start = r->len ; }
  if (r->skipping) start = r->len ;
  memmove(r->buf, r->buf + start, r->len - start) ;
  r->len -= start ;
}

/* an unterminated last line, at the end of a file that won't grow */
static void reader_finish (reader *r, uint16_t const *jl, size_t n)
{
  if (r->len && !r->skipping) line_process(r->buf, r->len, jl, n) ;
  r->len = 0 ; r->skipping = 0 ;
}

/* read fd until EOF or EAGAIN; returns bytes read, -1 on error, and sets
 * *eof on end of file */
#define TAILN 64

/* keep the last TAILN bytes read from a file (truncation check) */
static void tail_update (char *tail, size_t *taillen, char const *p, size_t w)
{
  if (w >= TAILN) { memcpy(tail, p + w - TAILN, TAILN) ; *taillen = TAILN ; return ; }
  size_t keep = *taillen < TAILN - w ? *taillen : TAILN - w ;
  memmove(tail, tail + *taillen - keep, keep) ;
  memcpy(tail + keep, p, w) ;
  *taillen = keep + w ;
}

static ssize_t reader_fill (reader *r, int fd, uint16_t const *jl, size_t n, int *eof, char *tail, size_t *taillen)
{
  ssize_t total = 0 ;
  *eof = 0 ;
  for (;;)
  {
    ssize_t w = read(fd, r->buf + r->len, READBUF - r->len) ;
    if (w < 0)
    {
      if (errno == EINTR) continue ;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break ;
      return -1 ;
    }
    if (!w) { *eof = 1 ; break ; }
    if (tail) tail_update(tail, taillen, r->buf + r->len, w) ;
    r->len += w ;
    total += w ;
    reader_lines(r, jl, n) ;
  }
  return total ;
}

/* ======================================================================
 * journal: <confdir>/journal, one line per ban and unban, compacted on
 * start and when it grows; history lines keep what growing ban times and
 * recidive need
 *   B start until actions jail key     U time key     H t,t,t key
 * ====================================================================== */

static char *journal_path ;
static int journal_fd = -1 ;
static stralloc jbuf = STRALLOC_ZERO ;   /* records not yet written */
static uint64_t journal_size = 0, journal_base = 0 ;

static int cat_key (stralloc *sa, banaddr const *k)
{
  char a[BANADDR_FMT] ;
  return stralloc_catb(sa, a, banaddr_fmt(a, k)) ;
}

static int cat_i64 (stralloc *sa, int64_t v)
{
  char tmp[24] ;
  return stralloc_catb(sa, tmp, (size_t)snprintf(tmp, sizeof tmp, "%lld", (long long)v)) ;
}

static int cat_actions (stralloc *sa, uint32_t acts)
{
  int first = 1 ;
  for (size_t i = 0 ; i < genalloc_len(action, &actions) ; i++)
  {
    if (!(acts & ((uint32_t)1 << i))) continue ;
    if (!first && !stralloc_catb(sa, ",", 1)) return 0 ;
    if (!stralloc_cats(sa, ACTION(i)->name)) return 0 ;
    first = 0 ;
  }
  return first ? stralloc_catb(sa, "-", 1) : 1 ;
}

static int cat_banrec (stralloc *sa, ban const *b)
{
  return stralloc_catb(sa, "B ", 2) && cat_i64(sa, b->start) && stralloc_catb(sa, " ", 1)
      && cat_i64(sa, b->until) && stralloc_catb(sa, " ", 1) && cat_actions(sa, b->actions)
      && stralloc_catb(sa, " ", 1) && stralloc_cats(sa, jail_name(b->jail))
      && stralloc_catb(sa, " ", 1) && cat_key(sa, &b->key) && stralloc_catb(sa, "\n", 1) ;
}

static void journal_ban (ban const *b)
{
  if (replaying) return ;
  if (!cat_banrec(&jbuf, b)) strerr_diefu1sys(111, "write the journal") ;
}

static void journal_unban (banaddr const *k)
{
  if (replaying) return ;
  if (!stralloc_catb(&jbuf, "U ", 2) || !cat_i64(&jbuf, now) || !stralloc_catb(&jbuf, " ", 1)
   || !cat_key(&jbuf, k) || !stralloc_catb(&jbuf, "\n", 1)) strerr_diefu1sys(111, "write the journal") ;
}

static void journal_compact (void)
{
  stralloc sa = STRALLOC_ZERO ;
  hist_sweep() ;
  if (!stralloc_cats(&sa, "# yubin-banwatch journal (B start until actions jail key, U time key, H times key)\n"))
    strerr_diefu1sys(111, "compact the journal") ;
  for (size_t i = 0 ; i < genalloc_len(hist, &hists) ; i++)
  {
    hist const *h = HIST(i) ;
    if (!h->key.family || !h->n) continue ;
    if (!stralloc_catb(&sa, "H ", 2)) strerr_diefu1sys(111, "compact the journal") ;
    for (unsigned int k = h->n ; k-- ; )
      if (!cat_i64(&sa, h->t[k]) || !stralloc_catb(&sa, k ? "," : " ", 1)) strerr_diefu1sys(111, "compact the journal") ;
    if (!cat_key(&sa, &h->key) || !stralloc_catb(&sa, "\n", 1)) strerr_diefu1sys(111, "compact the journal") ;
  }
  for (size_t i = 0 ; i < genalloc_len(ban, &bans) ; i++)
    if (BAN(i)->live && !cat_banrec(&sa, BAN(i))) strerr_diefu1sys(111, "compact the journal") ;
  if (!openwritenclose_suffix_sync(journal_path, sa.s, sa.len, ".tmp"))
    strerr_diefu2sys(111, "write ", journal_path) ;
  if (journal_fd >= 0) fd_close(journal_fd) ;
  journal_fd = openc_append(journal_path) ;
  if (journal_fd < 0) strerr_diefu2sys(111, "open ", journal_path) ;
  journal_size = journal_base = sa.len ;
  stralloc_free(&sa) ;
}

static void journal_flush (void)
{
  if (!jbuf.len) return ;
  if (allwrite(journal_fd, jbuf.s, jbuf.len) < jbuf.len || fd_sync(journal_fd) < 0)
    strerr_warnwu2sys("write ", journal_path) ;
  journal_size += jbuf.len ;
  jbuf.len = 0 ;
  if (journal_size > 65536 && journal_size > 4 * journal_base) journal_compact() ;
}

static unsigned int jail_byname (char const *name)
{
  for (size_t i = 0 ; i < genalloc_len(jail, &jails) ; i++)
    if (!strcmp(JAIL(i)->name, name)) return i ;
  return JAIL_MANUAL ;
}

static uint32_t actions_byname (char *list)
{
  uint32_t acts = 0 ;
  for (char *p = strtok(list, ",") ; p ; p = strtok(0, ","))
  {
    unsigned int a = action_find(p) ;
    if (a != (unsigned int)-1) acts |= (uint32_t)1 << a ;
  }
  return acts ;
}

static int scan_i64 (char const *s, int64_t *v)
{
  char *end ;
  errno = 0 ;
  long long x = strtoll(s, &end, 10) ;
  if (!*s || *end || errno) return 0 ;
  *v = x ;
  return 1 ;
}

typedef struct fsaved_s fsaved ;
struct fsaved_s { banaddr key ; unsigned int jail ; int64_t t ; } ;
static genalloc fsaved_list = GENALLOC_ZERO ;   /* fsaved */

/* at stop: the failures still counting, so a restart does not forget them */
static void counters_save (void)
{
  for (size_t i = 0 ; i < genalloc_len(jail, &jails) ; i++)
  {
    jail const *j = JAIL(i) ;
    if (FILTER(j->filter)->type == F_RECIDIVE) continue ;
    for (size_t r = 0 ; r < genalloc_len(fcount, &j->recs) ; r++)
    {
      fcount const *c = genalloc_s(fcount, &j->recs) + r ;
      int64_t const *ring = genalloc_s(int64_t, &j->ring) + r * j->maxretry ;
      int first = 1 ;
      if (!c->key.family || !c->n || c->last < now - j->findtime) continue ;
      if (!stralloc_catb(&jbuf, "F ", 2) || !stralloc_cats(&jbuf, j->name) || !stralloc_catb(&jbuf, " ", 1))
        strerr_diefu1sys(111, "write the journal") ;
      for (unsigned int k = 0 ; k < c->n ; k++)
      {
        if (ring[k] < now - j->findtime) continue ;
        if ((!first && !stralloc_catb(&jbuf, ",", 1)) || !cat_i64(&jbuf, ring[k])) strerr_diefu1sys(111, "write the journal") ;
        first = 0 ;
      }
      if (!stralloc_catb(&jbuf, " ", 1) || !cat_key(&jbuf, &c->key) || !stralloc_catb(&jbuf, "\n", 1))
        strerr_diefu1sys(111, "write the journal") ;
    }
  }
}

static void counters_restore (void)
{
  fsaved const *f = genalloc_s(fsaved, &fsaved_list) ;
  for (size_t i = 0 ; i < genalloc_len(fsaved, &fsaved_list) ; i++)
    if (f[i].t >= now - JAIL(f[i].jail)->findtime) jail_fail(f[i].jail, &f[i].key, f[i].t, 1) ;
  genalloc_free(fsaved, &fsaved_list) ;
}

static void journal_load (void)
{
  stralloc sa = STRALLOC_ZERO ;
  unsigned int lineno = 0, bad = 0 ;
  if (!openslurpclose(&sa, journal_path))
  {
    if (errno == ENOENT) return ;
    strerr_diefu2sys(111, "read ", journal_path) ;
  }
  if (!stralloc_0(&sa)) strerr_diefu1sys(111, "read the journal") ;
  for (char *p = sa.s ; *p ; )
  {
    char *nl = strchr(p, '\n'), *w[7] ;
    unsigned int n = 0 ;
    if (!nl) break ;   /* a torn last record */
    *nl = 0 ;
    lineno++ ;
    for (char *q = strtok(p, " ") ; q && n < 7 ; q = strtok(0, " ")) w[n++] = q ;
    p = nl + 1 ;
    if (!n || w[0][0] == '#') continue ;
    banaddr k ;
    int64_t t1, t2 ;
    if (w[0][0] == 'B' && n == 6 && scan_i64(w[1], &t1) && scan_i64(w[2], &t2)
     && banaddr_scancidr(&k, w[5], strlen(w[5])))
    {
      uint32_t acts = actions_byname(w[3]) ;
      unsigned int j = jail_byname(w[4]) ;
      ban *b = ban_find(&k) ;
      if (!b) ban_insert(&k, t1, t2, acts, j) ;
      else if (t2 > b->until)
      {
        b->until = t2 ; b->start = t1 ; b->jail = j ; b->actions |= acts ; b->gen++ ;
        heap_push(t2, b - BAN(0), b->gen) ;
      }
      hist *h = hist_get(&k) ;
      if (!h->n || h->t[0] < t1) hist_add(h, t1) ;
    }
    else if (w[0][0] == 'U' && n == 3 && scan_i64(w[1], &t1) && banaddr_scancidr(&k, w[2], strlen(w[2])))
    {
      ban *b = ban_find(&k) ;
      if (b) ban_drop(b) ;
    }
    else if (w[0][0] == 'F' && n == 4 && banaddr_scancidr(&k, w[3], strlen(w[3])))
    {
      /* failure counts saved at the last stop: counted again once the
       * bans are known */
      unsigned int j = jail_byname(w[1]) ;
      if (j == JAIL_MANUAL) continue ;
      for (char *q = strtok(w[2], ",") ; q ; q = strtok(0, ","))
      {
        fsaved f = { k, j, 0 } ;
        if (scan_i64(q, &f.t) && !genalloc_append(fsaved, &fsaved_list, &f)) strerr_diefu1sys(111, "read the journal") ;
      }
    }
    else if (w[0][0] == 'H' && n == 3 && banaddr_scancidr(&k, w[2], strlen(w[2])))
    {
      hist *h = hist_get(&k) ;
      for (char *q = strtok(w[1], ",") ; q ; q = strtok(0, ","))
        if (scan_i64(q, &t1) && (!h->n || h->t[0] < t1)) hist_add(h, t1) ;
    }
    else bad++ ;
  }
  stralloc_free(&sa) ;
  if (bad)
  {
    char tmp[16] ;
    snprintf(tmp, sizeof tmp, "%u", bad) ;
    strerr_warnw("ignored ", tmp, " malformed lines in ", journal_path) ;
  }
  /* bans that ran out while we were down */
  for (size_t i = 0 ; i < genalloc_len(ban, &bans) ; i++)
    if (BAN(i)->live && BAN(i)->until <= now) ban_drop(BAN(i)) ;
}

/* recidive counters from the ban history */
static void recidive_rebuild (void)
{
  for (size_t r = 0 ; r < genalloc_len(jail, &jails) ; r++)
  {
    if (FILTER(JAIL(r)->filter)->type != F_RECIDIVE) continue ;
    for (size_t i = 0 ; i < genalloc_len(hist, &hists) ; i++)
    {
      hist const *h = HIST(i) ;
      if (!h->key.family) continue ;
      for (unsigned int k = h->n ; k-- ; )
        if (h->t[k] >= now - JAIL(r)->findtime) jail_fail(r, &h->key, h->t[k], 1) ;
    }
  }
}

/* ======================================================================
 * actions: nft (a batch per round, one nft process at a time),
 * tcprules (the deny list rebuilt when bans change), exec (a program per
 * event, one at a time)
 * ====================================================================== */

typedef struct xevent_s xevent ;
struct xevent_s { char ev[8] ; banaddr key ; uint16_t jail ; int64_t secs ; } ;
static genalloc xevents[MAXACTIONS] ;   /* xevent, per exec action */

static int64_t ceil_secs (int64_t ms)
{
  int64_t s = (ms + 999) / 1000 ;
  return s < 1 ? 1 : s ;
}

static void nft_setname (char *buf, unsigned int fam, unsigned int len)
{
  if (len == (fam == 4 ? 32u : 128u)) snprintf(buf, 32, "banned%u", fam) ;
  else snprintf(buf, 32, "banned%u_%u", fam, len) ;
}

/* the set for this family and prefix length, and its rule; flushed when
 * made, so elements left from an earlier run never come back */
static int nft_ensure_set (action *a, stralloc *sa, unsigned int fam, unsigned int len)
{
  unsigned char *have = fam == 4 ? a->have4 : a->have6 ;
  char name[32], tmp[512] ;
  if (have[len]) return 1 ;
  nft_setname(name, fam, len) ;
  int full = len == (fam == 4 ? 32u : 128u) ;
  snprintf(tmp, sizeof tmp,
    "add set inet %s %s { type ipv%u_addr ; flags %stimeout ; }\n"
    "flush set inet %s %s\n"
    "add rule inet %s %s %s saddr @%s %s\n",
    a->table, name, fam, full ? "" : "interval,",
    a->table, name,
    a->table, a->chain, fam == 4 ? "ip" : "ip6", name, a->verdict) ;
  if (!stralloc_cats(sa, tmp)) return 0 ;
  have[len] = 1 ;
  return 1 ;
}

/* add: 0 delete, 1 add or replace, 2 add a new element */
static int nft_element (action *a, stralloc *sa, banaddr const *k, int64_t ms, int add)
{
  char name[32], key[BANADDR_FMT], tmp[512] ;
  if (!nft_ensure_set(a, sa, k->family, k->len)) return 0 ;
  nft_setname(name, k->family, k->len) ;
  banaddr_fmt(key, k) ;
  /* add, delete, add: works whether the element is there or not (the
   * kernel may have expired it), and sets the new timeout.  A new ban
   * needs only the add: every element banwatch stops using is deleted
   * (unban and expiry do add+delete), so none is left behind. */
  if (add != 2) snprintf(tmp, sizeof tmp,
    "add element inet %s %s { %s timeout 1s }\n"
    "delete element inet %s %s { %s }\n",
    a->table, name, key, a->table, name, key) ;
  if (add != 2 && !stralloc_cats(sa, tmp)) return 0 ;
  if (!add) return 1 ;
  snprintf(tmp, sizeof tmp, "add element inet %s %s { %s timeout %llds }\n",
    a->table, name, key, (long long)ceil_secs(ms)) ;
  return stralloc_cats(sa, tmp) ;
}

static void exec_queue (unsigned int ai, char const *ev, ban const *b)
{
  xevent x ;
  memset(&x, 0, sizeof x) ;
  strcpy(x.ev, ev) ;
  x.key = b->key ;
  x.jail = b->jail ;
  x.secs = strcmp(ev, "unban") && b->until > now ? ceil_secs(b->until - now) : 0 ;
  if (!genalloc_append(xevent, xevents + ai, &x)) strerr_diefu1sys(111, "queue an action") ;
}

static void actions_ban (ban const *b, uint32_t acts, int extend)
{
  if (replaying) return ;
  for (unsigned int i = 0 ; i < genalloc_len(action, &actions) ; i++)
  {
    if (!(acts & ((uint32_t)1 << i))) continue ;
    action *a = ACTION(i) ;
    if (a->type == A_NFT)
    {
      if (!nft_element(a, &a->pending, &b->key, b->until - now, extend ? 1 : 2)) strerr_diefu1sys(111, "queue an action") ;
    }
    else if (a->type == A_TCPRULES) a->dirty = 1 ;
    else exec_queue(i, extend == 2 ? "restore" : "ban", b) ;
  }
}

static void actions_unban (ban const *b)
{
  if (replaying) return ;
  for (unsigned int i = 0 ; i < genalloc_len(action, &actions) ; i++)
  {
    if (!(b->actions & ((uint32_t)1 << i))) continue ;
    action *a = ACTION(i) ;
    if (a->type == A_NFT)
    {
      if (!nft_element(a, &a->pending, &b->key, 0, 0)) strerr_diefu1sys(111, "queue an action") ;
    }
    else if (a->type == A_TCPRULES) a->dirty = 1 ;
    else exec_queue(i, "unban", b) ;
  }
}

extern char **environ ;

/* fork and exec argv with fd0 as stdin (-1: /dev/null) */
static pid_t spawn (char const *const *argv, char const *const *envp, int fd0)
{
  pid_t pid = fork() ;
  if (pid < 0) { strerr_warnwu2sys("fork for ", argv[0]) ; return 0 ; }
  if (!pid)
  {
    sigset_t set ;
    sigemptyset(&set) ;
    sigprocmask(SIG_SETMASK, &set, 0) ;
    signal(SIGPIPE, SIG_DFL) ;
    if (fd0 < 0) fd0 = open("/dev/null", O_RDONLY) ;
    if (fd0 < 0 || (fd0 ? dup2(fd0, 0) < 0 : fcntl(0, F_SETFD, 0) < 0)) _exit(127) ;
    execve(argv[0], (char *const *)argv, (char *const *)envp) ;
    strerr_warnwu2sys("exec ", argv[0]) ;
    _exit(127) ;
  }
  return pid ;
}

static int memfd_of (char const *s, size_t len)
{
  int fd = memfd_create("banwatch", MFD_CLOEXEC) ;
  if (fd < 0) return -1 ;
  if (allwrite(fd, s, len) < len || lseek(fd, 0, SEEK_SET) < 0) { fd_close(fd) ; return -1 ; }
  return fd ;
}

static void action_start_nft (action *a, stralloc *batch)
{
  char const *argv[4] = { a->nft, "-f", "/dev/stdin", 0 } ;
  int fd = memfd_of(batch->s, batch->len) ;
  if (fd < 0) { strerr_warnwu1sys("make a batch for nft") ; return ; }
  a->pid = spawn(argv, (char const *const *)environ, fd) ;
  fd_close(fd) ;
  if (a->pid) { a->started = now ; a->runs++ ; batch->len = 0 ; }
}

static void action_start_tcprules (action *a)
{
  stralloc sa = STRALLOC_ZERO ;
  int ok = stralloc_cats(&sa, "# written by yubin-banwatch: its bans, then the rules in ")
        && stralloc_cats(&sa, a->base ? a->base : "(none)") && stralloc_cats(&sa, "\n") ;
  unsigned int bit = (unsigned int)(a - ACTION(0)) ;
  for (size_t i = 0 ; ok && i < genalloc_len(ban, &bans) ; i++)
  {
    ban const *b = BAN(i) ;
    if (b->live && (b->actions & ((uint32_t)1 << bit))) ok = banaddr_tcprules(&sa, &b->key) ;
  }
  if (ok && a->base)
  {
    size_t before = sa.len ;
    if (!openslurpclose(&sa, a->base))
    {
      if (errno != ENOENT) strerr_warnwu2sys("read ", a->base) ;
      sa.len = before ;
    }
    else if (sa.len > before && sa.s[sa.len-1] != '\n') ok = stralloc_catb(&sa, "\n", 1) ;
  }
  if (!ok) { strerr_warnwu1sys("build the deny list") ; stralloc_free(&sa) ; return ; }
  if (!openwritenclose_suffix(a->list, sa.s, sa.len, ".tmp"))
  {
    strerr_warnwu2sys("write ", a->list) ;
    stralloc_free(&sa) ;
    return ;
  }
  int fd = memfd_of(sa.s, sa.len) ;
  stralloc_free(&sa) ;
  if (fd < 0) { strerr_warnwu1sys("make the input of tcprules") ; return ; }
  char const *argv[4] = { a->tcprules, a->cdb, a->cdbtmp, 0 } ;
  a->pid = spawn(argv, (char const *const *)environ, fd) ;
  fd_close(fd) ;
  if (a->pid) { a->started = now ; a->runs++ ; a->dirty = 0 ; }
}

static void action_start_exec (action *a, unsigned int ai)
{
  genalloc *q = xevents + ai ;
  if (!genalloc_len(xevent, q)) return ;
  xevent x = genalloc_s(xevent, q)[0] ;
  char addr[BANADDR_FMT], secs[24] ;
  char e1[32], e2[BANADDR_FMT + 20], e3[100], e4[48] ;
  banaddr_fmt(addr, &x.key) ;
  snprintf(secs, sizeof secs, "%lld", (long long)x.secs) ;
  snprintf(e1, sizeof e1, "BANWATCH_EVENT=%s", x.ev) ;
  snprintf(e2, sizeof e2, "BANWATCH_ADDR=%s", addr) ;
  snprintf(e3, sizeof e3, "BANWATCH_JAIL=%s", jail_name(x.jail)) ;
  snprintf(e4, sizeof e4, "BANWATCH_BANTIME=%s", secs) ;
  genalloc av = GENALLOC_ZERO, ev = GENALLOC_ZERO ;
  char const *z = 0 ;
  char const *extra[4] = { x.ev, addr, jail_name(x.jail), secs } ;
  char const *envx[4] = { e1, e2, e3, e4 } ;
  int ok = 1 ;
  for (char **p = a->argv ; ok && *p ; p++) ok = genalloc_append(char const *, &av, (char const **)p) ;
  for (int i = 0 ; ok && i < 4 ; i++) ok = genalloc_append(char const *, &av, extra + i) ;
  ok = ok && genalloc_append(char const *, &av, &z) ;
  for (char **p = environ ; ok && *p ; p++)
    if (strncmp(*p, "BANWATCH_", 9)) ok = genalloc_append(char const *, &ev, (char const **)p) ;
  for (int i = 0 ; ok && i < 4 ; i++) ok = genalloc_append(char const *, &ev, envx + i) ;
  ok = ok && genalloc_append(char const *, &ev, &z) ;
  if (ok)
  {
    a->pid = spawn(genalloc_s(char const *, &av), genalloc_s(char const *, &ev), -1) ;
    if (a->pid)
    {
      a->started = now ; a->runs++ ;
      memmove(genalloc_s(xevent, q), genalloc_s(xevent, q) + 1, (genalloc_len(xevent, q) - 1) * sizeof(xevent)) ;
      genalloc_setlen(xevent, q, genalloc_len(xevent, q) - 1) ;
    }
  }
  else strerr_warnwu1sys("run an exec action") ;
  genalloc_free(char const *, &av) ;
  genalloc_free(char const *, &ev) ;
}

static void actions_flush (void)
{
  for (unsigned int i = 0 ; i < genalloc_len(action, &actions) ; i++)
  {
    action *a = ACTION(i) ;
    if (a->pid) continue ;
    if (a->type == A_NFT && a->pending.len) action_start_nft(a, &a->pending) ;
    else if (a->type == A_TCPRULES && a->dirty) action_start_tcprules(a) ;
    else if (a->type == A_EXEC) action_start_exec(a, i) ;
  }
}

static int actions_busy (void)
{
  for (unsigned int i = 0 ; i < genalloc_len(action, &actions) ; i++)
  {
    action const *a = ACTION(i) ;
    if (a->pid || (a->type == A_NFT && a->pending.len) || (a->type == A_TCPRULES && a->dirty)
     || (a->type == A_EXEC && genalloc_len(xevent, xevents + i))) return 1 ;
  }
  return 0 ;
}

static void actions_reap (void)
{
  for (;;)
  {
    int wstat ;
    pid_t pid = waitpid(-1, &wstat, WNOHANG) ;
    if (pid <= 0) break ;
    for (unsigned int i = 0 ; i < genalloc_len(action, &actions) ; i++)
    {
      action *a = ACTION(i) ;
      if (a->pid != pid) continue ;
      a->pid = 0 ;
      if (!WIFEXITED(wstat) || WEXITSTATUS(wstat))
      {
        char st[16] ;
        snprintf(st, sizeof st, "%d", WIFEXITED(wstat) ? WEXITSTATUS(wstat) : 128 + WTERMSIG(wstat)) ;
        a->fails++ ;
        ylog("action-fail", "action", a->name, "status", st, (char *)0) ;
      }
    }
  }
}

/* a stuck child is killed after 30 s; returns the next such deadline */
static int64_t actions_watchdog (void)
{
  int64_t next = -1 ;
  for (unsigned int i = 0 ; i < genalloc_len(action, &actions) ; i++)
  {
    action *a = ACTION(i) ;
    if (!a->pid) continue ;
    if (now >= a->started + 30000) { kill(a->pid, SIGKILL) ; a->started = now ; }
    if (next < 0 || a->started + 30000 < next) next = a->started + 30000 ;
  }
  return next ;
}

/* at start: the table, chain, sets and every active ban, in one
 * transaction, before anything else happens */
static void nft_setup (action *a, unsigned int ai)
{
  stralloc sa = STRALLOC_ZERO ;
  char tmp[512] ;
  snprintf(tmp, sizeof tmp,
    "add table inet %s\n"
    "add chain inet %s %s { type filter hook %s priority %d ; policy accept ; }\n"
    "flush chain inet %s %s\n",
    a->table, a->table, a->chain, a->hook, a->priority, a->table, a->chain) ;
  if (!stralloc_cats(&sa, tmp)
   || !nft_ensure_set(a, &sa, 4, 32) || !nft_ensure_set(a, &sa, 6, 128)) strerr_diefu1sys(111, "set up nft") ;
  for (size_t i = 0 ; i < genalloc_len(jail, &jails) ; i++)
  {
    jail const *j = JAIL(i) ;
    if (!(j->actions & ((uint32_t)1 << ai))) continue ;
    if (!nft_ensure_set(a, &sa, 4, j->prefix4) || !nft_ensure_set(a, &sa, 6, j->prefix6)) strerr_diefu1sys(111, "set up nft") ;
  }
  for (size_t i = 0 ; i < genalloc_len(ban, &bans) ; i++)
  {
    ban const *b = BAN(i) ;
    if (!b->live || !(b->actions & ((uint32_t)1 << ai))) continue ;
    if (!nft_ensure_set(a, &sa, b->key.family, b->key.len)) strerr_diefu1sys(111, "set up nft") ;
    char key[BANADDR_FMT], name[32] ;
    banaddr_fmt(key, &b->key) ;
    nft_setname(name, b->key.family, b->key.len) ;
    snprintf(tmp, sizeof tmp, "add element inet %s %s { %s timeout %llds }\n",
      a->table, name, key, (long long)ceil_secs(b->until - now)) ;
    if (!stralloc_cats(&sa, tmp)) strerr_diefu1sys(111, "set up nft") ;
  }
  action_start_nft(a, &sa) ;
  if (!a->pid) strerr_diefu1x(111, "run nft") ;
  int wstat ;
  if (waitpid(a->pid, &wstat, 0) < 0) strerr_diefu1sys(111, "wait for nft") ;
  a->pid = 0 ;
  if (!WIFEXITED(wstat) || WEXITSTATUS(wstat))
    strerr_dief(111, "nft could not set up table inet ", a->table, " (not root? no CAP_NET_ADMIN? see the nft error above)") ;
  stralloc_free(&sa) ;
}

/* ======================================================================
 * sources: stdin, and log files followed with inotify across rotation
 * (a renamed file is read until it stops growing) and truncation
 * ====================================================================== */

#define ROTATE_GRACE 30000
#define DIR_RETRY 5000
#define POS_SAVE 5000

typedef struct src_s src ;
struct src_s
{
  char const *path ;        /* absolute; "-" is stdin */
  char *dir ;
  char const *base ;
  uint16_t jl[MAXJAILS] ;
  size_t njl ;
  int fd, wd ;              /* the file at path */
  dev_t dev ;
  ino_t ino ;
  uint64_t off ;            /* bytes read from fd */
  reader r ;
  char tail[TAILN] ;
  size_t taillen ;
  int ofd, owd ;            /* the file before the last rotation */
  reader ro ;
  int64_t odeadline ;
  int dirwd ;
  int want, owant, recheck ;
  uint64_t nrot, ntrunc ;
} ;

static genalloc srcs = GENALLOC_ZERO ;   /* src */
#define SRC(i) (genalloc_s(src, &srcs) + (i))
static int ifd = -1 ;
static int64_t dirretry_at = -1 ;
static int64_t possave_at = -1 ;
static char *pos_path ;

typedef struct savedpos_s savedpos ;
struct savedpos_s { char *path ; uint64_t dev, ino, off ; int skip ; } ;
static genalloc savedpos_list = GENALLOC_ZERO ;   /* savedpos */

static void positions_load (void)
{
  stralloc sa = STRALLOC_ZERO ;
  if (!openslurpclose(&sa, pos_path))
  {
    if (errno == ENOENT) return ;
    strerr_diefu2sys(111, "read ", pos_path) ;
  }
  if (!stralloc_0(&sa)) strerr_diefu1sys(111, "read positions") ;
  for (char *p = sa.s ; *p ; )
  {
    char *nl = strchr(p, '\n') ;
    if (!nl) break ;
    *nl = 0 ;
    savedpos sp ;
    unsigned long long dev, ino, off ;
    int skip, n = 0 ;
    if (sscanf(p, "%llu %llu %llu %d %n", &dev, &ino, &off, &skip, &n) == 4 && n && p[n] == '/')
    {
      sp.path = strdup(p + n) ;
      sp.dev = dev ; sp.ino = ino ; sp.off = off ; sp.skip = !!skip ;
      if (!sp.path || !genalloc_append(savedpos, &savedpos_list, &sp)) strerr_diefu1sys(111, "read positions") ;
    }
    p = nl + 1 ;
  }
  stralloc_free(&sa) ;
}

static void positions_save (void)
{
  stralloc sa = STRALLOC_ZERO ;
  int ok = 1 ;
  for (size_t i = 0 ; ok && i < genalloc_len(src, &srcs) ; i++)
  {
    src const *s = SRC(i) ;
    char tmp[96] ;
    if (s->fd < 0 || !strcmp(s->path, "-")) continue ;
    snprintf(tmp, sizeof tmp, "%llu %llu %llu %d ", (unsigned long long)s->dev, (unsigned long long)s->ino,
      (unsigned long long)(s->off - s->r.len), s->r.skipping) ;
    ok = stralloc_cats(&sa, tmp) && stralloc_cats(&sa, s->path) && stralloc_catb(&sa, "\n", 1) ;
  }
  if (!ok || !openwritenclose_suffix(pos_path, sa.s ? sa.s : "", sa.len, ".tmp"))
    strerr_warnwu2sys("write ", pos_path) ;
  stralloc_free(&sa) ;
  possave_at = -1 ;
}

static void positions_dirty (void)
{
  if (possave_at < 0) possave_at = now + POS_SAVE ;
}

static int watch_fd (int fd, uint32_t mask)
{
  char p[64] ;
  snprintf(p, sizeof p, "/proc/self/fd/%d", fd) ;
  return inotify_add_watch(ifd, p, mask) ;
}

static void src_watchdir (src *s)
{
  s->dirwd = inotify_add_watch(ifd, s->dir, IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM | IN_ONLYDIR) ;
  if (s->dirwd < 0)
  {
    if (errno != ENOENT && errno != ENOTDIR) strerr_warnwu2sys("watch ", s->dir) ;
    if (dirretry_at < 0) dirretry_at = now + DIR_RETRY ;
  }
}

static void src_attach (src *s, int fd, struct stat const *st, uint64_t off, int skip)
{
  s->fd = fd ;
  s->dev = st->st_dev ; s->ino = st->st_ino ;
  s->off = off ;
  s->taillen = 0 ;
  s->r.len = 0 ; s->r.skipping = skip ;
  if (off && lseek(fd, (off_t)off, SEEK_SET) < 0) { s->off = 0 ; s->r.skipping = 0 ; }
  s->wd = watch_fd(fd, IN_MODIFY | IN_MOVE_SELF | IN_DELETE_SELF) ;
  if (s->wd < 0) strerr_warnwu2sys("watch ", s->path) ;
  positions_dirty() ;
}

static void src_read (src *s)
{
  struct stat st ;
  int eof ;
  if (s->fd < 0) return ;
  if (fstat(s->fd, &st) < 0) { strerr_warnwu2sys("stat ", s->path) ; return ; }
  int trunc = (uint64_t)st.st_size < s->off ;
  if (!trunc && s->taillen && s->off >= s->taillen)
  {
    char buf[TAILN] ;
    ssize_t r = pread(s->fd, buf, s->taillen, (off_t)(s->off - s->taillen)) ;
    trunc = r != (ssize_t)s->taillen || memcmp(buf, s->tail, s->taillen) ;
  }
  if (trunc)
  {
    ylog("truncated", "path", s->path, (char *)0) ;
    s->ntrunc++ ;
    if (lseek(s->fd, 0, SEEK_SET) < 0) { strerr_warnwu2sys("seek in ", s->path) ; return ; }
    s->off = 0 ; s->taillen = 0 ; s->r.len = 0 ; s->r.skipping = 0 ;
  }
  ssize_t got = reader_fill(&s->r, s->fd, s->jl, s->njl, &eof, s->tail, &s->taillen) ;
  if (got < 0) { strerr_warnwu2sys("read ", s->path) ; return ; }
  if (got) { s->off += got ; positions_dirty() ; }
}

static void src_read_old (src *s)
{
  int eof ;
  if (s->ofd < 0) return ;
  if (reader_fill(&s->ro, s->ofd, s->jl, s->njl, &eof, 0, 0) < 0) strerr_warnwu2sys("read the rotated ", s->path) ;
}

static void src_close_old (src *s)
{
  if (s->ofd < 0) return ;
  src_read_old(s) ;
  reader_finish(&s->ro, s->jl, s->njl) ;
  if (s->owd >= 0) inotify_rm_watch(ifd, s->owd) ;
  fd_close(s->ofd) ;
  s->ofd = s->owd = -1 ;
  s->odeadline = -1 ;
}

/* the file at path is gone or replaced: keep reading the old one for a while */
static void src_retire (src *s)
{
  if (s->fd < 0) return ;
  src_read(s) ;
  src_close_old(s) ;
  reader t = s->ro ;
  s->ro = s->r ; s->r = t ;
  s->ofd = s->fd ; s->owd = s->wd ;
  s->odeadline = now + ROTATE_GRACE ;
  s->fd = s->wd = -1 ;
  s->nrot++ ;
  ylog("rotated", "path", s->path, (char *)0) ;
}

/* lines written to a file that was rotated while we were not running */
static void src_drain_lost (src *s, savedpos const *sp)
{
  DIR *d = opendir(s->dir) ;
  if (!d) return ;
  for (;;)
  {
    errno = 0 ;
    struct dirent *e = readdir(d) ;
    if (!e) break ;
    if ((uint64_t)e->d_ino != sp->ino) continue ;
    stralloc fn = STRALLOC_ZERO ;
    struct stat st ;
    if (!stralloc_cats(&fn, s->dir) || !stralloc_cats(&fn, "/") || !stralloc_cats(&fn, e->d_name) || !stralloc_0(&fn)) break ;
    int fd = open2(fn.s, O_RDONLY | O_NONBLOCK | O_CLOEXEC) ;
    if (fd >= 0 && !fstat(fd, &st) && (uint64_t)st.st_dev == sp->dev && (uint64_t)st.st_ino == sp->ino
     && (uint64_t)st.st_size > sp->off && lseek(fd, (off_t)sp->off, SEEK_SET) >= 0)
    {
      reader r ;
      int eof ;
      reader_init(&r) ;
      r.skipping = sp->skip ;
      if (reader_fill(&r, fd, s->jl, s->njl, &eof, 0, 0) < 0) strerr_warnwu2sys("read ", fn.s) ;
      reader_finish(&r, s->jl, s->njl) ;
      reader_free(&r) ;
    }
    if (fd >= 0) fd_close(fd) ;
    stralloc_free(&fn) ;
    break ;
  }
  closedir(d) ;
}

/* is the file at path still the one we read? */
static void src_check (src *s)
{
  struct stat st ;
  if (stat(s->path, &st) < 0)
  {
    if (errno != ENOENT && errno != ENOTDIR) strerr_warnwu2sys("stat ", s->path) ;
    src_retire(s) ;
    return ;
  }
  if (s->fd >= 0 && st.st_dev == s->dev && st.st_ino == s->ino) return ;
  int fd = open2(s->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC) ;
  if (fd < 0) { if (errno != ENOENT) strerr_warnwu2sys("open ", s->path) ; return ; }
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
  {
    strerr_warnw("not a regular file: ", s->path) ;
    fd_close(fd) ;
    return ;
  }
  src_retire(s) ;
  src_attach(s, fd, &st, 0, 0) ;
  src_read(s) ;
}

static void src_open_first (src *s)
{
  struct stat st ;
  savedpos const *sp = 0 ;
  for (size_t i = 0 ; i < genalloc_len(savedpos, &savedpos_list) ; i++)
    if (!strcmp(genalloc_s(savedpos, &savedpos_list)[i].path, s->path)) sp = genalloc_s(savedpos, &savedpos_list) + i ;
  int fd = open2(s->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC) ;
  if (fd < 0)
  {
    if (errno != ENOENT && errno != ENOTDIR) strerr_warnwu2sys("open ", s->path) ;
    if (sp) src_drain_lost(s, sp) ;
    return ;
  }
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
  {
    strerr_warnw("not a regular file: ", s->path) ;
    fd_close(fd) ;
    return ;
  }
  uint64_t off = 0 ;
  int skip = 0 ;
  if (sp && sp->dev == (uint64_t)st.st_dev && sp->ino == (uint64_t)st.st_ino)
  {
    if (sp->off <= (uint64_t)st.st_size) { off = sp->off ; skip = sp->skip ; }
  }
  else if (sp) src_drain_lost(s, sp) ;
  else if (start_at_end && st.st_size > 0)
  {
    char c ;
    off = st.st_size ;
    /* starting inside a line: skip to its end */
    if (pread(fd, &c, 1, st.st_size - 1) == 1 && c != '\n') skip = 1 ;
  }
  src_attach(s, fd, &st, off, skip) ;
  src_read(s) ;
}

static src *src_get (char const *path)
{
  for (size_t i = 0 ; i < genalloc_len(src, &srcs) ; i++)
    if (!strcmp(SRC(i)->path, path)) return SRC(i) ;
  src z ;
  memset(&z, 0, sizeof z) ;
  z.path = path ;
  z.fd = z.wd = z.ofd = z.owd = z.dirwd = -1 ;
  z.odeadline = -1 ;
  if (strcmp(path, "-"))
  {
    char const *slash = strrchr(path, '/') ;
    z.dir = strndup(path, slash == path ? 1 : (size_t)(slash - path)) ;
    z.base = slash + 1 ;
    if (!z.dir) strerr_diefu1sys(111, "set up sources") ;
    if (!*z.base) strerr_dief(100, "logpath is a directory: ", path) ;
  }
  if (!genalloc_append(src, &srcs, &z)) strerr_diefu1sys(111, "set up sources") ;
  return SRC(genalloc_len(src, &srcs) - 1) ;
}

static void actions_watch (void) ;

static void sources_setup (void)
{
  for (size_t i = 0 ; i < genalloc_len(jail, &jails) ; i++)
  {
    jail const *j = JAIL(i) ;
    for (size_t k = 0 ; k < genalloc_len(char *, &j->logpaths) ; k++)
    {
      src *s = src_get(genalloc_s(char *, &j->logpaths)[k]) ;
      s->jl[s->njl++] = i ;
    }
  }
  ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC) ;
  if (ifd < 0) strerr_diefu1sys(111, "inotify_init1") ;
  actions_watch() ;
  for (size_t i = 0 ; i < genalloc_len(src, &srcs) ; i++)
  {
    src *s = SRC(i) ;
    reader_init(&s->r) ;
    reader_init(&s->ro) ;
    if (!strcmp(s->path, "-"))
    {
      s->fd = 0 ;
      if (ndelay_on(0) < 0) strerr_diefu1sys(111, "make stdin non-blocking") ;
      continue ;
    }
    src_watchdir(s) ;
    src_open_first(s) ;
  }
}

/* the operator's rules of a tcprules action: rebuild when they change */
static void actions_watch (void)
{
  for (size_t i = 0 ; i < genalloc_len(action, &actions) ; i++)
  {
    action *a = ACTION(i) ;
    a->basewd = -1 ;
    if (a->type != A_TCPRULES || !a->base) continue ;
    char *dir = strdup(a->base), *slash = strrchr(dir ? dir : "", '/') ;
    if (!dir) strerr_diefu1sys(111, "watch rules") ;
    if (slash) *(slash == dir ? slash + 1 : slash) = 0 ;
    a->basewd = inotify_add_watch(ifd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ONLYDIR) ;
    if (a->basewd < 0) strerr_warnwu2sys("watch ", dir) ;
    free(dir) ;
  }
}

static void sources_event (struct inotify_event const *ev)
{
  for (size_t i = 0 ; i < genalloc_len(action, &actions) ; i++)
  {
    action *a = ACTION(i) ;
    if (a->type == A_TCPRULES && a->basewd >= 0 && ev->wd == a->basewd && ev->len
     && !strcmp(ev->name, strrchr(a->base, '/') + 1)) a->dirty = 1 ;
  }
  for (size_t i = 0 ; i < genalloc_len(src, &srcs) ; i++)
  {
    src *s = SRC(i) ;
    if (!strcmp(s->path, "-")) continue ;
    if (ev->mask & IN_Q_OVERFLOW) { s->want = s->owant = s->recheck = 1 ; continue ; }
    if (ev->wd == s->wd && s->fd >= 0)
    {
      if (ev->mask & IN_MODIFY) s->want = 1 ;
      if (ev->mask & (IN_MOVE_SELF | IN_DELETE_SELF)) s->want = s->recheck = 1 ;
      if (ev->mask & IN_IGNORED) s->wd = -1 ;
    }
    if (ev->wd == s->owd && s->ofd >= 0)
    {
      if (ev->mask & IN_MODIFY) s->owant = 1 ;
      if (ev->mask & IN_IGNORED) s->owd = -1 ;
    }
    if (ev->wd == s->dirwd)
    {
      if (ev->mask & IN_IGNORED) { s->dirwd = -1 ; if (dirretry_at < 0) dirretry_at = now + DIR_RETRY ; }
      else if (ev->len && !strcmp(ev->name, s->base)) s->recheck = 1 ;
    }
  }
}

static void sources_inotify (void)
{
  char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event)))) ;
  for (;;)
  {
    ssize_t r = read(ifd, buf, sizeof buf) ;
    if (r < 0)
    {
      if (errno == EINTR) continue ;
      if (errno == EAGAIN) break ;
      strerr_diefu1sys(111, "read inotify events") ;
    }
    if (!r) break ;
    for (char *p = buf ; p < buf + r ; )
    {
      struct inotify_event const *ev = (struct inotify_event const *)p ;
      sources_event(ev) ;
      p += sizeof(struct inotify_event) + ev->len ;
    }
  }
  for (size_t i = 0 ; i < genalloc_len(src, &srcs) ; i++)
  {
    src *s = SRC(i) ;
    if (s->owant) { s->owant = 0 ; src_read_old(s) ; }
    if (s->want) { s->want = 0 ; src_read(s) ; }
    if (s->recheck) { s->recheck = 0 ; src_check(s) ; }
  }
}

/* timers: rotated files past their grace, directories that did not exist */
static int64_t sources_timers (void)
{
  int64_t next = -1 ;
  if (dirretry_at >= 0 && now >= dirretry_at)
  {
    dirretry_at = -1 ;
    for (size_t i = 0 ; i < genalloc_len(src, &srcs) ; i++)
    {
      src *s = SRC(i) ;
      if (!strcmp(s->path, "-") || s->dirwd >= 0) continue ;
      src_watchdir(s) ;
      if (s->dirwd >= 0) src_check(s) ;
    }
  }
  if (dirretry_at >= 0) next = dirretry_at ;
  for (size_t i = 0 ; i < genalloc_len(src, &srcs) ; i++)
  {
    src *s = SRC(i) ;
    if (s->ofd < 0) continue ;
    if (now >= s->odeadline) { src_close_old(s) ; continue ; }
    if (next < 0 || s->odeadline < next) next = s->odeadline ;
  }
  return next ;
}

/* ======================================================================
 * control socket: one request line, a reply, close (yubin-banctl)
 * ====================================================================== */

#define MAXCLIENTS 16

typedef struct client_s client ;
struct client_s
{
  int fd ;
  char in[1024] ;
  size_t inlen ;
  stralloc out ;
  size_t outpos ;
  int64_t deadline ;
} ;

static client clients[MAXCLIENTS] ;
static unsigned int nclients = 0 ;
static int lfd = -1 ;
static char *sock_path ;

static void control_listen (void)
{
  struct stat st ;
  if (!lstat(sock_path, &st) && S_ISSOCK(st.st_mode)) unlink(sock_path) ;
  lfd = ipc_stream_nbcoe() ;
  if (lfd < 0) strerr_diefu1sys(111, "create a socket") ;
  mode_t m = umask(077) ;
  if (ipc_bind(lfd, sock_path) < 0) strerr_diefu2sys(111, "bind to ", sock_path) ;
  umask(m) ;
  if (ipc_listen(lfd, 16) < 0) strerr_diefu2sys(111, "listen on ", sock_path) ;
}

static void cat_fmt (stralloc *sa, char const *fmt, ...) __attribute__((format(printf, 2, 3))) ;
static void cat_fmt (stralloc *sa, char const *fmt, ...)
{
  char tmp[1024] ;
  va_list ap ;
  va_start(ap, fmt) ;
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap) ;
  va_end(ap) ;
  if (n < 0) return ;
  if ((size_t)n >= sizeof tmp) n = sizeof tmp - 1 ;
  if (!stralloc_catb(sa, tmp, n)) strerr_diefu1sys(111, "answer a client") ;
}

static void cmd_list (stralloc *o)
{
  cat_fmt(o, "+%zu bans\n", nactive) ;
  for (size_t i = 0 ; i < genalloc_len(ban, &bans) ; i++)
  {
    ban const *b = BAN(i) ;
    char a[BANADDR_FMT], u[32] ;
    stralloc acts = STRALLOC_ZERO ;
    if (!b->live) continue ;
    banaddr_fmt(a, &b->key) ;
    fmt_iso(u, b->until) ;
    if (!cat_actions(&acts, b->actions) || !stralloc_0(&acts)) strerr_diefu1sys(111, "answer a client") ;
    cat_fmt(o, "%s jail=%s left=%llds until=%s actions=%s\n", a, jail_name(b->jail),
      (long long)ceil_secs(b->until - now), u, acts.s) ;
    stralloc_free(&acts) ;
  }
}

static void cmd_jails (stralloc *o)
{
  cat_fmt(o, "+%zu jails\n", genalloc_len(jail, &jails)) ;
  for (size_t i = 0 ; i < genalloc_len(jail, &jails) ; i++)
  {
    jail const *j = JAIL(i) ;
    size_t banned = 0 ;
    stralloc acts = STRALLOC_ZERO ;
    for (size_t k = 0 ; k < genalloc_len(ban, &bans) ; k++) banned += BAN(k)->live && BAN(k)->jail == i ;
    if (!cat_actions(&acts, j->actions) || !stralloc_0(&acts)) strerr_diefu1sys(111, "answer a client") ;
    cat_fmt(o, "%s filter=%s maxretry=%u findtime=%llds bantime=%llds bantime.max=%llds prefix4=%u prefix6=%u"
      " actions=%s banned=%zu bans=%llu matched=%llu ignored=%llu badhost=%llu tracked=%zu\n",
      j->name, FILTER(j->filter)->name, j->maxretry, (long long)(j->findtime / 1000), (long long)(j->bantime / 1000),
      (long long)(j->bantime_max / 1000), j->prefix4, j->prefix6, acts.s, banned,
      (unsigned long long)j->nbans, (unsigned long long)j->nmatch, (unsigned long long)j->nignored,
      (unsigned long long)j->nbadhost, j->ix.used) ;
    stralloc_free(&acts) ;
  }
}

static void cmd_stats (stralloc *o)
{
  cat_fmt(o, "+stats\n") ;
  cat_fmt(o, "lines=%llu matched=%llu bans=%llu unbans=%llu active=%zu overlong=%llu malformed=%llu history=%zu untracked=%llu\n",
    (unsigned long long)st_lines, (unsigned long long)st_matched, (unsigned long long)st_bans,
    (unsigned long long)st_unbans, nactive, (unsigned long long)st_long, (unsigned long long)st_badline, histix.used,
    (unsigned long long)st_full) ;
  for (size_t i = 0 ; i < genalloc_len(src, &srcs) ; i++)
  {
    src const *s = SRC(i) ;
    cat_fmt(o, "source %s open=%d offset=%llu rotations=%llu truncations=%llu\n", s->path, s->fd >= 0,
      (unsigned long long)s->off, (unsigned long long)s->nrot, (unsigned long long)s->ntrunc) ;
  }
  for (size_t i = 0 ; i < genalloc_len(action, &actions) ; i++)
  {
    action const *a = ACTION(i) ;
    cat_fmt(o, "action %s type=%s runs=%llu failures=%llu\n", a->name,
      a->type == A_NFT ? "nft" : a->type == A_TCPRULES ? "tcprules" : "exec",
      (unsigned long long)a->runs, (unsigned long long)a->fails) ;
  }
}

static void cmd_ban (stralloc *o, char **w, unsigned int n)
{
  banaddr k ;
  unsigned int jidx = JAIL_MANUAL ;
  int64_t dur = -1 ;
  if (n < 2 || n > 4) { cat_fmt(o, "-usage: ban ADDRESS[/LEN] [JAIL] [DURATION]\n") ; return ; }
  if (!banaddr_scancidr(&k, w[1], strlen(w[1]))) { cat_fmt(o, "-bad address: %s\n", w[1]) ; return ; }
  if (k.len < (k.family == 4 ? 8 : 16)) { cat_fmt(o, "-refusing to ban a network wider than /%u\n", k.family == 4 ? 8 : 16) ; return ; }
  for (unsigned int i = 2 ; i < n ; i++)
  {
    unsigned int j = jail_byname(w[i]) ;
    if (j != JAIL_MANUAL && jidx == JAIL_MANUAL && dur < 0 && i == 2) { jidx = j ; continue ; }
    if (dur < 0 && banparse_duration(w[i], strlen(w[i]), &dur) && dur > 0) continue ;
    cat_fmt(o, "-unknown jail or bad duration: %s\n", w[i]) ;
    return ;
  }
  for (size_t i = 0 ; i < genalloc_len(banaddr, &global_ignore) ; i++)
    if (banaddr_contains(genalloc_s(banaddr, &global_ignore) + i, &k))
    { cat_fmt(o, "-%s is in ignoreip\n", w[1]) ; return ; }
  unsigned int prior = 0 ;
  uint32_t acts ;
  if (jidx != JAIL_MANUAL)
  {
    acts = JAIL(jidx)->actions ;
    if (dur < 0) dur = jail_bantime(JAIL(jidx), &k, &prior) ;
  }
  else
  {
    acts = genalloc_len(action, &actions) >= 32 ? 0xffffffffu : ((uint32_t)1 << genalloc_len(action, &actions)) - 1 ;
    if (dur < 0) dur = manual_bantime ;
  }
  ban_add(&k, jidx, dur, acts, prior) ;
  char a[BANADDR_FMT] ;
  banaddr_fmt(a, &k) ;
  cat_fmt(o, "+banned %s jail=%s for %llds\n", a, jail_name(jidx), (long long)ceil_secs(dur)) ;
}

static void cmd_unban (stralloc *o, char **w, unsigned int n)
{
  banaddr k ;
  unsigned int count = 0 ;
  if (n != 2) { cat_fmt(o, "-usage: unban ADDRESS[/LEN]\n") ; return ; }
  if (!banaddr_scancidr(&k, w[1], strlen(w[1]))) { cat_fmt(o, "-bad address: %s\n", w[1]) ; return ; }
  ban *b = ban_find(&k) ;
  if (b) { ban_remove(b, "unban") ; count++ ; }
  else
    for (size_t i = 0 ; i < genalloc_len(ban, &bans) ; i++)
      if (BAN(i)->live && banaddr_contains(&BAN(i)->key, &k)) { ban_remove(BAN(i), "unban") ; count++ ; }
  for (size_t i = 0 ; i < genalloc_len(jail, &jails) ; i++)
  {
    banaddr m = k ;
    jail const *j = JAIL(i) ;
    unsigned int len = k.family == 4 ? j->prefix4 : j->prefix6 ;
    if (m.len > len) banaddr_mask(&m, len) ;
    counter_reset(&m) ;
  }
  if (count) cat_fmt(o, "+unbanned %u\n", count) ;
  else cat_fmt(o, "-not banned: %s\n", w[1]) ;
}

static void control_request (client *c)
{
  char *w[8] ;
  unsigned int n = 0 ;
  c->in[c->inlen] = 0 ;
  for (char *p = strtok(c->in, " \t\r") ; p && n < 8 ; p = strtok(0, " \t\r")) w[n++] = p ;
  if (!n) cat_fmt(&c->out, "-empty request\n") ;
  else if (!strcmp(w[0], "list") && n == 1) cmd_list(&c->out) ;
  else if (!strcmp(w[0], "jails") && n == 1) cmd_jails(&c->out) ;
  else if (!strcmp(w[0], "stats") && n == 1) cmd_stats(&c->out) ;
  else if (!strcmp(w[0], "ban")) cmd_ban(&c->out, w, n) ;
  else if (!strcmp(w[0], "unban")) cmd_unban(&c->out, w, n) ;
  else if (!strcmp(w[0], "rebuild") && n == 1)
  {
    for (size_t i = 0 ; i < genalloc_len(action, &actions) ; i++)
      if (ACTION(i)->type == A_TCPRULES) ACTION(i)->dirty = 1 ;
    cat_fmt(&c->out, "+rebuilding\n") ;
  }
  else cat_fmt(&c->out, "-unknown command (list, jails, stats, ban, unban, rebuild)\n") ;
}

static void client_close (unsigned int i)
{
  fd_close(clients[i].fd) ;
  stralloc_free(&clients[i].out) ;
  clients[i] = clients[--nclients] ;
}

static void control_accept (void)
{
  for (;;)
  {
    int dummy ;
    int fd = ipc_accept_nbcoe(lfd, 0, 0, &dummy) ;
    if (fd < 0) return ;
    if (nclients >= MAXCLIENTS) { fd_close(fd) ; continue ; }
    client *c = clients + nclients++ ;
    memset(c, 0, sizeof *c) ;
    c->fd = fd ;
    c->deadline = now + 5000 ;
  }
}

/* returns 0 when the client is done */
static int client_io (client *c, short revents)
{
  if (!c->out.len)
  {
    if (!(revents & (POLLIN | POLLHUP | POLLERR))) return 1 ;
    ssize_t r = read(c->fd, c->in + c->inlen, sizeof(c->in) - 1 - c->inlen) ;
    if (r < 0) return errno == EAGAIN || errno == EINTR ;
    if (!r) return 0 ;
    c->inlen += r ;
    char *nl = memchr(c->in, '\n', c->inlen) ;
    if (!nl && c->inlen < sizeof(c->in) - 1) return 1 ;
    if (nl) c->inlen = nl - c->in ;
    control_request(c) ;
  }
  while (c->outpos < c->out.len)
  {
    ssize_t w = write(c->fd, c->out.s + c->outpos, c->out.len - c->outpos) ;
    if (w < 0) return errno == EAGAIN || errno == EINTR ;
    c->outpos += w ;
  }
  return 0 ;
}

/* ======================================================================
 * the daemon
 * ====================================================================== */

static int stdin_src = -1 ;   /* index of the "-" source, if any */

static void daemon_stop (void)
{
  for (size_t i = 0 ; i < genalloc_len(src, &srcs) ; i++) src_close_old(SRC(i)) ;
  positions_save() ;
  now = wallclock() ;
  bans_expire() ;
  journal_flush() ;
  counters_save() ;
  if (jbuf.len && (allwrite(journal_fd, jbuf.s, jbuf.len) < jbuf.len || fd_sync(journal_fd) < 0))
    strerr_warnwu2sys("write ", journal_path) ;
  /* let the last action runs finish (bounded) */
  for (int tries = 0 ; tries < 50 ; tries++)
  {
    actions_reap() ;
    actions_flush() ;
    if (!actions_busy()) break ;
    struct timespec ts = { 0, 100000000 } ;
    nanosleep(&ts, 0) ;
  }
  if (lfd >= 0) unlink(sock_path) ;
  ylog("stop", (char *)0) ;
  exit(0) ;
}

static char *confpath (char const *name)
{
  stralloc sa = STRALLOC_ZERO ;
  if (!stralloc_cats(&sa, confdir) || !stralloc_cats(&sa, "/") || !stralloc_cats(&sa, name) || !stralloc_0(&sa))
    strerr_diefu1sys(111, "build a path") ;
  return sa.s ;
}

static int run_daemon (void)
{
  tain deadline ;
  int spfd ;
  journal_path = confpath("journal") ;
  pos_path = confpath("positions") ;
  sock_path = confpath("control") ;
  signal(SIGPIPE, SIG_IGN) ;
  spfd = selfpipe_init() ;
  if (spfd < 0) strerr_diefu1sys(111, "selfpipe_init") ;
  {
    sigset_t set ;
    sigemptyset(&set) ;
    sigaddset(&set, SIGTERM) ;
    sigaddset(&set, SIGINT) ;
    sigaddset(&set, SIGHUP) ;
    sigaddset(&set, SIGCHLD) ;
    if (!selfpipe_trapset(&set)) strerr_diefu1sys(111, "trap signals") ;
  }
  tain_now_set_stopwatch_g() ;
  journal_load() ;
  journal_compact() ;
  recidive_rebuild() ;
  counters_restore() ;
  for (unsigned int i = 0 ; i < genalloc_len(action, &actions) ; i++)
  {
    action *a = ACTION(i) ;
    if (a->type == A_NFT) nft_setup(a, i) ;
    else if (a->type == A_TCPRULES) a->dirty = 1 ;
  }
  for (size_t i = 0 ; i < genalloc_len(ban, &bans) ; i++)
  {
    ban const *b = BAN(i) ;
    if (!b->live) continue ;
    for (unsigned int k = 0 ; k < genalloc_len(action, &actions) ; k++)
      if (ACTION(k)->type == A_EXEC && (b->actions & ((uint32_t)1 << k))) exec_queue(k, "restore", b) ;
  }
  control_listen() ;
  positions_load() ;
  {
    char nj[24], nb[24] ;
    snprintf(nj, sizeof nj, "%zu", genalloc_len(jail, &jails)) ;
    snprintf(nb, sizeof nb, "%zu", nactive) ;
    ylog("start", "jails", nj, "bans", nb, (char *)0) ;
  }
  sources_setup() ;
  for (size_t i = 0 ; i < genalloc_len(src, &srcs) ; i++)
    if (!strcmp(SRC(i)->path, "-")) stdin_src = i ;

  for (;;)
  {
    iopause_fd x[4 + MAXCLIENTS] ;
    unsigned int n = 0, xsp, xin, xstdin = 0, xl ;
    int64_t next, t ;
    now = wallclock() ;
    bans_expire() ;
    actions_flush() ;
    journal_flush() ;
    if (possave_at >= 0 && now >= possave_at) positions_save() ;
    next = heap_next() ;
    t = sources_timers() ;
    if (t >= 0 && (next < 0 || t < next)) next = t ;
    t = actions_watchdog() ;
    if (t >= 0 && (next < 0 || t < next)) next = t ;
    if (possave_at >= 0 && (next < 0 || possave_at < next)) next = possave_at ;
    for (unsigned int i = 0 ; i < nclients ; )
    {
      if (now >= clients[i].deadline) { client_close(i) ; continue ; }
      if (next < 0 || clients[i].deadline < next) next = clients[i].deadline ;
      i++ ;
    }
    x[n].fd = spfd ; x[n].events = IOPAUSE_READ ; xsp = n++ ;
    x[n].fd = ifd ; x[n].events = IOPAUSE_READ ; xin = n++ ;
    x[n].fd = lfd ; x[n].events = IOPAUSE_READ ; xl = n++ ;
    if (stdin_src >= 0 && SRC(stdin_src)->fd >= 0) { x[n].fd = 0 ; x[n].events = IOPAUSE_READ ; xstdin = n++ ; }
    unsigned int xc = n ;
    for (unsigned int i = 0 ; i < nclients ; i++)
    {
      x[n].fd = clients[i].fd ;
      x[n].events = clients[i].out.len ? IOPAUSE_WRITE : IOPAUSE_READ ;
      n++ ;
    }
    tain_now_g() ;
    if (next < 0) tain_add_g(&deadline, &tain_infinite_relative) ;
    else
    {
      tain rel ;
      int64_t ms = next - now ;
      if (ms < 0) ms = 0 ;
      if (ms > 86400000) ms = 86400000 ;
      tain_from_millisecs(&rel, (int)ms) ;
      tain_add_g(&deadline, &rel) ;
    }
    int r = iopause_g(x, n, &deadline) ;
    if (r < 0)
    {
      if (errno == EINTR) continue ;
      strerr_diefu1sys(111, "iopause") ;
    }
    now = wallclock() ;
    if (x[xsp].revents & IOPAUSE_READ)
    {
      for (;;)
      {
        int sig = selfpipe_read() ;
        if (sig <= 0) { if (sig < 0) strerr_diefu1sys(111, "read the selfpipe") ; break ; }
        if (sig == SIGCHLD) actions_reap() ;
        else if (sig == SIGHUP)
        {
          for (size_t i = 0 ; i < genalloc_len(src, &srcs) ; i++)
            if (strcmp(SRC(i)->path, "-")) { SRC(i)->want = SRC(i)->recheck = 1 ; }
          sources_inotify() ;
        }
        else daemon_stop() ;
      }
    }
    if (x[xin].revents & IOPAUSE_READ) sources_inotify() ;
    if (xstdin && (x[xstdin].revents & IOPAUSE_READ))
    {
      src *s = SRC(stdin_src) ;
      int eof ;
      if (reader_fill(&s->r, 0, s->jl, s->njl, &eof, 0, 0) < 0) eof = 1 ;
      if (eof)
      {
        reader_finish(&s->r, s->jl, s->njl) ;
        fd_close(0) ;
        if (open("/dev/null", O_RDONLY) != 0) strerr_diefu1sys(111, "open /dev/null as stdin") ;
        s->fd = -1 ;
      }
    }
    for (unsigned int i = 0, k = xc ; i < nclients ; k++)
    {
      if (x[k].revents && !client_io(clients + i, x[k].revents))
      {
        /* client_close moves the last client here: keep x[] in step */
        x[k] = x[xc + nclients - 1] ;
        client_close(i) ;
        k-- ;
        continue ;
      }
      i++ ;
    }
    if (x[xl].revents & IOPAUSE_READ) control_accept() ;
  }
}

/* ======================================================================
 * replay mode: one pass over a file, bans printed, nothing applied
 * ====================================================================== */


/* a regular file, mapped: no copy; pages already read are given back so
 * the peak memory stays small whatever the size of the file */
static void replay_mapped (char const *base, size_t size, uint16_t const *jl, size_t n)
{
  size_t pos = 0, dropped = 0, pg = (size_t)sysconf(_SC_PAGESIZE) ;
  while (pos < size)
  {
    char const *nl = memchr(base + pos, '\n', size - pos) ;
    size_t end = nl ? (size_t)(nl - base) : size ;
    if (end - pos > maxline) st_long++ ;
    else line_process(base + pos, end - pos, jl, n) ;
    pos = end + 1 ;
    if (pos - dropped >= ((size_t)1 << 20) && pos < size)
    {
      size_t upto = pos & ~(pg - 1) ;
      if (madvise((char *)base + dropped, upto - dropped, MADV_DONTNEED) == 0) dropped = upto ;
    }
  }
}

static int replay (char const *file, char const *jailname)
{
  uint16_t jl[MAXJAILS] ;
  size_t n = 0 ;
  reader r ;
  int fd = 0, eof ;
  for (size_t i = 0 ; i < genalloc_len(jail, &jails) ; i++)
  {
    if (jailname && strcmp(JAIL(i)->name, jailname)) continue ;
    if (FILTER(JAIL(i)->filter)->type == F_RECIDIVE) continue ;
    jl[n++] = i ;
  }
  if (!n) strerr_dief(100, "no such jail: ", jailname ? jailname : "(none reads logs)") ;
  if (strcmp(file, "-"))
  {
    fd = open_readb(file) ;
    if (fd < 0) strerr_diefu2sys(111, "open ", file) ;
  }
  struct stat st ;
  void *map = MAP_FAILED ;
  if (!fstat(fd, &st) && S_ISREG(st.st_mode) && st.st_size > 0)
    map = mmap(0, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0) ;
  if (map != MAP_FAILED)
  {
    if (madvise(map, st.st_size, MADV_SEQUENTIAL) < 0) { /* only a hint */ }
    replay_mapped(map, st.st_size, jl, n) ;
    munmap(map, st.st_size) ;
  }
  else
  {
    reader_init(&r) ;
    for (;;)
    {
      if (reader_fill(&r, fd, jl, n, &eof, 0, 0) < 0) strerr_diefu2sys(111, "read ", file) ;
      if (eof) break ;
    }
    reader_finish(&r, jl, n) ;
    reader_free(&r) ;
  }
  if (fd) fd_close(fd) ;
  bans_expire() ;
  {
    char tmp[256] ;
    snprintf(tmp, sizeof tmp, "lines=%llu matched=%llu bans=%llu unbans=%llu active=%zu overlong=%llu malformed=%llu\n",
      (unsigned long long)st_lines, (unsigned long long)st_matched, (unsigned long long)st_bans,
      (unsigned long long)st_unbans, nactive, (unsigned long long)st_long, (unsigned long long)st_badline) ;
    out(tmp) ;
    if (!buffer_flush(buffer_1)) strerr_diefu1sys(111, "write to stdout") ;
  }
  return 0 ;
}

/* ======================================================================
 * main
 * ====================================================================== */

int main (int argc, char const *const *argv)
{
  char const *replayfile = 0, *replayjail = 0 ;
  int checkonly = 0 ;
  stralloc cd = STRALLOC_ZERO ;
  PROG = "banwatch" ;
  {
    subgetopt l = SUBGETOPT_ZERO ;
    for (;;)
    {
      int opt = subgetopt_r(argc, argv, "c:Cr:j:", &l) ;
      if (opt == -1) break ;
      switch (opt)
      {
        case 'c' : confdir = l.arg ; break ;
        case 'C' : checkonly = 1 ; break ;
        case 'r' : replayfile = l.arg ; break ;
        case 'j' : replayjail = l.arg ; break ;
        default : strerr_dieusage(100, USAGE) ;
      }
    }
    argc -= l.ind ; argv += l.ind ;
  }
  if (argc) strerr_dieusage(100, USAGE) ;
  if (!confdir)
  {
    if (!yubin_path(&cd, "banwatch")) strerr_diefu1sys(111, "find the instance root") ;
    confdir = cd.s ;
  }
  random_buf((char *)hkey, sizeof hkey) ;
  now = wallnow = wallclock() ;
  conf_load() ;
  if (checkonly)
  {
    char tmp[200] ;
    snprintf(tmp, sizeof tmp, "configuration ok: %zu jails, %zu filters, %zu actions\n",
      genalloc_len(jail, &jails), genalloc_len(filter, &filters), genalloc_len(action, &actions)) ;
    out(tmp) ;
    if (!buffer_flush(buffer_1)) strerr_diefu1sys(111, "write to stdout") ;
    return 0 ;
  }
  if (replayfile)
  {
    replaying = 1 ;
    now = 0 ;
    return replay(replayfile, replayjail) ;
  }
  return run_daemon() ;
}
