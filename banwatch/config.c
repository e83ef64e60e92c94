/* yubin-banwatch: the configuration.  banwatch.conf is read into sections
 * of key = value lines ([global], [jail NAME], [action NAME], [filter
 * NAME]); filters come from [filter] sections, filter.d/NAME.conf files or
 * the built-in ones; the result is conf (banwatch.h).  A mistake dies with
 * file:line: what is wrong (exit 100).  See yubin-banwatch.conf.5. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <skalibs/djbunix.h>
#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>

#include "exitcodes.h"
#include "root.h"
#include "banwatch/banwatch.h"

struct config conf =
{
  .confdir = 0,
  .ignore = GENALLOC_ZERO,
  .history_ms = 30LL * 86400000,
  .manual_bantime = 3600000,
  .start_at_end = 1,
  .maxline = 8192,
  .filters = GENALLOC_ZERO,
  .actions = GENALLOC_ZERO,
  .jails = GENALLOC_ZERO,
} ;

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

#define CFL(i) (genalloc_s(cfline, &cflines) + (i))
#define CFS(i) (genalloc_s(cfsec, &cfsecs) + (i))

static void cfdie (char const *file, unsigned int line, char const *a, char const *b, char const *c)
{
  char fmt[16] ;
  snprintf(fmt, sizeof fmt, "%u", line) ;
  strerr_dief(EX_PERM, file, ":", fmt, ": ", a, b ? b : "", c ? c : "") ;
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
    strerr_diefu2sys(EX_TEMP, "read ", file) ;
  }
  if (!stralloc_0(&sa)) strerr_diefu1sys(EX_TEMP, "read configuration") ;
  char *text = sa.s ;
  char const *fname = strdup(file) ;
  if (!fname || !genalloc_append(char *, &cftexts, &text)) strerr_diefu1sys(EX_TEMP, "read configuration") ;
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
      if (!genalloc_append(cfline, &cflines, &l)) strerr_diefu1sys(EX_TEMP, "read configuration") ;
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
      if (!genalloc_append(cfsec, &cfsecs, &cur)) strerr_diefu1sys(EX_TEMP, "read configuration") ;
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
    if (!genalloc_append(cfline, &cflines, &l)) strerr_diefu1sys(EX_TEMP, "read configuration") ;
    cur.n++ ;
    havelast = 1 ;
  }
  if (!genalloc_append(cfsec, &cfsecs, &cur)) strerr_diefu1sys(EX_TEMP, "read configuration") ;
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
    if (!genalloc_append(banaddr, out, &b)) strerr_diefu1sys(EX_TEMP, "read configuration") ;
  }
}

static char *cf_path (char const *v)
{
  stralloc sa = STRALLOC_ZERO ;
  if (!strcmp(v, "-") || v[0] == '/') { char *r = strdup(v) ; if (!r) strerr_diefu1sys(EX_TEMP, "read configuration") ; return r ; }
  if (!yubin_path(&sa, v)) strerr_diefu1sys(EX_TEMP, "read configuration") ;
  return sa.s ;
}

/* ---- filters ---- */

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
    if (!genalloc_append(evsel, &f->ev, &e)) strerr_diefu1sys(EX_TEMP, "read configuration") ;
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
    if (!genalloc_append(banpat, fail ? &f->fail : &f->ign, &p)) strerr_diefu1sys(EX_TEMP, "read configuration") ;
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
  if (!genalloc_append(filter, &conf.filters, &f)) strerr_diefu1sys(EX_TEMP, "read configuration") ;
  return genalloc_len(filter, &conf.filters) - 1 ;
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
    if (!genalloc_append(evsel, &f.ev, &e)) strerr_diefu1sys(EX_TEMP, "read configuration") ;
    p += n ;
    while (*p == ' ') p++ ;
  }
  if (!genalloc_append(filter, &conf.filters, &f)) strerr_diefu1sys(EX_TEMP, "read configuration") ;
  return genalloc_len(filter, &conf.filters) - 1 ;
}

/* a filter by name: [filter NAME] section, then confdir/filter.d/NAME.conf,
 * then the built-in ones */
static unsigned int filter_find (char const *name, cfline const *where)
{
  for (size_t i = 0 ; i < genalloc_len(filter, &conf.filters) ; i++)
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
    if (!stralloc_cats(&fn, conf.confdir) || !stralloc_cats(&fn, "/filter.d/")
     || !stralloc_cats(&fn, name) || !stralloc_cats(&fn, ".conf") || !stralloc_0(&fn))
      strerr_diefu1sys(EX_TEMP, "read configuration") ;
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
    return filter_builtin("yubin-abuse", F_KV, "reject/reason=too-many-errors reject/reason=too-many-auth-failures handshake-fail") ;
  if (!strcmp(name, "recidive")) return filter_builtin("recidive", F_RECIDIVE, 0) ;
  cflerr(where, "unknown filter: ", name, " (no [filter] section, no filter.d file, not built in)") ;
  return 0 ;
}

/* ---- actions ---- */

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
      if (!stralloc_cats(&sa, conf.confdir) || !stralloc_cats(&sa, "/") || !stralloc_cats(&sa, a.name)
       || !stralloc_cats(&sa, ".rules") || !stralloc_0(&sa)) strerr_diefu1sys(EX_TEMP, "read configuration") ;
      a.list = sa.s ;
    }
    {
      stralloc sa = STRALLOC_ZERO ;
      if (!stralloc_cats(&sa, a.cdb) || !stralloc_cats(&sa, ".tmp") || !stralloc_0(&sa)) strerr_diefu1sys(EX_TEMP, "read configuration") ;
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
      if (!x || !genalloc_append(char *, &av, &x)) strerr_diefu1sys(EX_TEMP, "read configuration") ;
    }
    char *z = 0 ;
    if (!genalloc_len(char *, &av)) cflerr(l, "empty command", 0, 0) ;
    if (genalloc_s(char *, &av)[0][0] != '/') cflerr(l, "command must be an absolute path: ", genalloc_s(char *, &av)[0], 0) ;
    if (!genalloc_append(char *, &av, &z)) strerr_diefu1sys(EX_TEMP, "read configuration") ;
    a.argv = genalloc_s(char *, &av) ;
  }
  else cflerr(t, "unknown action type (nft, tcprules or exec): ", t->val, 0) ;
  for (size_t i = 0 ; i < genalloc_len(action, &conf.actions) ; i++)
    if (!strcmp(ACTION(i)->name, a.name)) cfdie(s->file, s->line, "duplicate action: ", a.name, 0) ;
  if (genalloc_len(action, &conf.actions) >= MAXACTIONS) cfdie(s->file, s->line, "too many actions", 0, 0) ;
  if (!genalloc_append(action, &conf.actions, &a)) strerr_diefu1sys(EX_TEMP, "read configuration") ;
}

unsigned int action_find (char const *name)
{
  for (size_t i = 0 ; i < genalloc_len(action, &conf.actions) ; i++)
    if (!strcmp(ACTION(i)->name, name)) return i ;
  return (unsigned int)-1 ;
}

/* ---- jails ---- */

unsigned int jail_byname (char const *name)
{
  for (size_t i = 0 ; i < genalloc_len(jail, &conf.jails) ; i++)
    if (!strcmp(JAIL(i)->name, name)) return i ;
  return JAIL_MANUAL ;
}
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
      if (!genalloc_append(char *, &j.logpaths, &p)) strerr_diefu1sys(EX_TEMP, "read configuration") ;
    }
    if (!recidive && !genalloc_len(char *, &j.logpaths))
    {
      char *p = strdup("-") ;
      if (!p || !genalloc_append(char *, &j.logpaths, &p)) strerr_diefu1sys(EX_TEMP, "read configuration") ;
    }
  }
  for (size_t i = 0 ; i < genalloc_len(jail, &conf.jails) ; i++)
    if (!strcmp(JAIL(i)->name, j.name)) cfdie(s->file, s->line, "duplicate jail: ", j.name, 0) ;
  if (!strcmp(j.name, "manual")) cfdie(s->file, s->line, "jail name manual is reserved for yubin-banctl", 0, 0) ;
  if (genalloc_len(jail, &conf.jails) >= MAXJAILS) cfdie(s->file, s->line, "too many jails", 0, 0) ;
  j.sweep_at = 4096 ;
  if (!genalloc_append(jail, &conf.jails, &j)) strerr_diefu1sys(EX_TEMP, "read configuration") ;
}

void conf_load (void)
{
  stralloc fn = STRALLOC_ZERO ;
  if (!stralloc_cats(&fn, conf.confdir) || !stralloc_cats(&fn, "/banwatch.conf") || !stralloc_0(&fn))
    strerr_diefu1sys(EX_TEMP, "read configuration") ;
  if (!cf_read(fn.s, 0)) strerr_dief(EX_PERM, "missing configuration file ", fn.s, " (see yubin-banwatch.conf(5))") ;
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
    cf_cidrs(s, "ignoreip", &conf.ignore) ;
    if ((l = cf_get(s, "history"))) conf.history_ms = cf_duration(l) ;
    if ((l = cf_get(s, "bantime"))) conf.manual_bantime = cf_duration(l) ;
    if ((l = cf_get(s, "maxline"))) conf.maxline = cf_uint(l, 256, READBUF / 2) ;
    if ((l = cf_get(s, "start")))
    {
      if (!strcmp(l->val, "end")) conf.start_at_end = 1 ;
      else if (!strcmp(l->val, "beginning")) conf.start_at_end = 0 ;
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
  if (!genalloc_len(jail, &conf.jails)) strerr_dief(EX_PERM, "no jail in ", conf.confdir, "/banwatch.conf") ;
}

char *confpath (char const *name)
{
  stralloc sa = STRALLOC_ZERO ;
  if (!stralloc_cats(&sa, conf.confdir) || !stralloc_cats(&sa, "/") || !stralloc_cats(&sa, name) || !stralloc_0(&sa))
    strerr_diefu1sys(EX_TEMP, "build a path") ;
  return sa.s ;
}
