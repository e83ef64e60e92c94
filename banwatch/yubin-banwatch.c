/* yubin-banwatch: read log lines, count failures per address in jails,
 * ban repeat offenders (nftables set, tcprules deny list, program hook).
 * See yubin-banwatch.8 and yubin-banwatch.conf.5. */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/buffer.h>
#include <skalibs/djbunix.h>
#include <skalibs/genalloc.h>
#include <skalibs/random.h>
#include <skalibs/sgetopt.h>
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

static uint32_t aindex_get (aindex const *ix, banaddr const *k)
{
  if (!ix->s) return 0 ;
  for (size_t i = addr_hash(k) & ix->mask ; ix->s[i].val ; i = (i + 1) & ix->mask)
    if (keyeq(&ix->s[i].key, k)) return ix->s[i].val ;
  return 0 ;
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

__attribute__((unused)) static void aindex_free (aindex *ix)
{
  free(ix->s) ;
  ix->s = 0 ; ix->mask = 0 ; ix->used = 0 ;
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
struct evsel_s { char prog[65] ; char verb[65] ; } ;  /* prog "" = any */

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
    e.prog[0] = 0 ;
    if (colon)
    {
      *colon = 0 ; verb = colon + 1 ;
      if (strlen(buf) > 64 || !*buf) cflerr(w.l, "bad event (prog:verb or verb): ", buf, 0) ;
      strcpy(e.prog, buf) ;
    }
    if (!*verb || strlen(verb) > 64) cflerr(w.l, "bad event (prog:verb or verb): ", verb, 0) ;
    strcpy(e.verb, verb) ;
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

static unsigned int filter_builtin (char const *name, int type, char const *verb)
{
  filter f = { name, type, 0, GENALLOC_ZERO, GENALLOC_ZERO, GENALLOC_ZERO } ;
  if (verb)
  {
    evsel e ;
    e.prog[0] = 0 ;
    strcpy(e.verb, verb) ;
    if (!genalloc_append(evsel, &f.ev, &e)) strerr_diefu1sys(111, "read configuration") ;
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

static uint64_t st_lines, st_matched, st_bans, st_unbans, st_badline, st_long ;

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
__attribute__((unused)) static void hist_sweep (void)
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
    b = BAN(idx) ;
    b->key = *k ; b->start = now ; b->until = until ; b->actions = acts ;
    b->jail = jidx ; b->live = 1 ; b->gen++ ;
    aindex_put(&banix, k, idx + 1) ;
    nactive++ ;
    heap_push(until, idx, b->gen) ;
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
  aindex_del(&banix, &b->key) ;
  b->live = 0 ;
  b->gen++ ;
  nactive-- ;
  st_unbans++ ;
  uint32_t idx = b - BAN(0) ;
  if (!genalloc_append(uint32_t, &banfree, &idx)) strerr_diefu1sys(111, "grow the ban table") ;
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

static fcount *counter_get (jail *j, banaddr const *k, int64_t **ring)
{
  uint32_t v = aindex_get(&j->ix, k) ;
  uint32_t idx ;
  if (v) idx = v - 1 ;
  else
  {
    if (j->ix.used >= j->sweep_at) counters_sweep(j) ;
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

__attribute__((unused)) static void counter_reset (banaddr const *k)
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
  ban const *b = ban_find(&k) ;
  /* already banned: late lines (recidive counts the bans of other jails) */
  if (b && b->until > now && (FILTER(j->filter)->type != F_RECIDIVE || b->jail == jidx)) return ;
  int64_t *ring ;
  fcount *c = counter_get(j, &k, &ring) ;
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

static int kv_wanted (filter const *f, banline_kv const *kv)
{
  evsel const *e = genalloc_s(evsel, &f->ev) ;
  for (size_t i = 0 ; i < genalloc_len(evsel, &f->ev) ; i++)
  {
    if (strlen(e[i].verb) != kv->verblen || memcmp(e[i].verb, kv->verb, kv->verblen)) continue ;
    if (e[i].prog[0] && (strlen(e[i].prog) != kv->proglen || memcmp(e[i].prog, kv->prog, kv->proglen))) continue ;
    return 1 ;
  }
  return 0 ;
}

/* Offer one line (without its newline) to the jails in jl[0..n). */
static void line_process (char const *s, size_t len, uint16_t const *jl, size_t n)
{
  int64_t t ;
  banline_kv kv ;
  int kvstate = 0 ;   /* 0 not parsed, 1 yubin line, -1 not one */
  st_lines++ ;
  while (len && !*s) { s++ ; len-- ; }   /* a hole left by a truncation */
  if (!len) return ;
  if (memchr(s, 0, len)) { st_badline++ ; return ; }
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
      if (!kvstate) kvstate = banline_kv_parse(&kv, s, len) ? 1 : -1 ;
      if (kvstate < 0 || !kv.ip || !kv_wanted(f, &kv)) continue ;
      if (!banaddr_scanip(&a, kv.ip, kv.iplen)) { j->nbadhost++ ; continue ; }
    }
    else if (f->type == F_REGEX)
    {
      banpat const *p = genalloc_s(banpat, &f->fail) ;
      size_t np = genalloc_len(banpat, &f->fail), k ;
      int r = 0 ;
      for (k = 0 ; k < np ; k++) if ((r = banpat_match(p + k, s, len, &a))) break ;
      if (r < 0) { j->nbadhost++ ; continue ; }
      if (!r) continue ;
      p = genalloc_s(banpat, &f->ign) ;
      np = genalloc_len(banpat, &f->ign) ;
      for (k = 0 ; k < np ; k++) { banaddr dummy ; if (banpat_match(p + k, s, len, &dummy)) break ; }
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
    *nl = 0 ;   /* lines are C strings for regexec */
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
  if (r->len && !r->skipping) { r->buf[r->len] = 0 ; line_process(r->buf, r->len, jl, n) ; }
  r->len = 0 ; r->skipping = 0 ;
}

/* read fd until EOF or EAGAIN; returns bytes read, -1 on error, and sets
 * *eof on end of file */
static ssize_t reader_fill (reader *r, int fd, uint16_t const *jl, size_t n, int *eof)
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
    r->len += w ;
    total += w ;
    reader_lines(r, jl, n) ;
  }
  return total ;
}

/* ======================================================================
 * replay mode: one pass over a file, bans printed, nothing applied
 * ====================================================================== */

static void journal_ban (ban const *b) { (void)b ; }
static void journal_unban (banaddr const *k) { (void)k ; }
static void actions_ban (ban const *b, uint32_t acts, int extend) { (void)b ; (void)acts ; (void)extend ; }
static void actions_unban (ban const *b) { (void)b ; }

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
  reader_init(&r) ;
  for (;;)
  {
    if (reader_fill(&r, fd, jl, n, &eof) < 0) strerr_diefu2sys(111, "read ", file) ;
    if (eof) break ;
  }
  reader_finish(&r, jl, n) ;
  reader_free(&r) ;
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
  strerr_dief(100, "daemon mode is not built yet") ;
}
