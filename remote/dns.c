/* DNS for yubin-remote over libunbound: see dns.h.
 *
 * Deadlines: every look-up is started with ub_resolve_async and waited
 * for with iopause on ub_fd until the caller's tain deadline; when it
 * passes, the query is cancelled (ub_cancel) and the answer is DNS_TEMP
 * "timeout".  libunbound's own retry timers (ub_ctx_set_option
 * "infra-..." ) bound each server exchange but not a whole resolution,
 * which can go on for minutes against a dead server: only the async
 * interface lets a deadline be a deadline.  The context resolves in a
 * thread (ub_ctx_async(ctx, 1)): no forked process to reap, and
 * libunbound blocks signals in its thread, so the caller's selfpipe and
 * signal handling stay as they are. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>

#include <unbound.h>

#include <skalibs/bytestr.h>
#include <skalibs/env.h>
#include <skalibs/genalloc.h>
#include <skalibs/iopause.h>
#include <skalibs/ip46.h>
#include <skalibs/random.h>
#include <skalibs/stralloc.h>
#include <skalibs/tai.h>
#include <skalibs/types.h>

#include "control.h"
#include "dns.h"

#define RR_A 1
#define RR_MX 15
#define RR_AAAA 28
#define RR_TLSA 52
#define DEFAULT_TA "/usr/share/dns/root.key"

struct dns
{
  struct ub_ctx *ctx ;
} ;

/* ---------------------------------------------------------------- setup */

/* the entries of $var, else of control/name: separated by white space or
 * commas in the variable, one a line in the file; into sa, each
 * NUL-terminated.  1 found (maybe empty), 0 absent, -1 error. */
static int entries (stralloc *sa, char const *var, char const *name)
{
  char const *x = getenv(var) ;
  sa->len = 0 ;
  if (!x) return control_readlist(sa, name) ;
  for (;;)
  {
    while (*x == ' ' || *x == '\t' || *x == ',' || *x == '\n') x++ ;
    if (!*x) break ;
    size_t n = 0 ;
    while (x[n] && x[n] != ' ' && x[n] != '\t' && x[n] != ',' && x[n] != '\n') n++ ;
    if (!stralloc_catb(sa, x, n) || !stralloc_0(sa)) return -1 ;
    x += n ;
  }
  return 1 ;
}

/* unbound serves RFC 6761 names (test., invalid., onion., ...) as local
 * empty zones by default: a stub zone under one of them must lift them.
 * (A "local-zone: test. nodefault" option set with ub_ctx_set_option is
 * not applied by libunbound 1.17; removing the zone is.)  This finalizes
 * the context: the last step of the setup. */
static int lift_defaults (struct ub_ctx *ctx, char const *zones, size_t len)
{
  for (size_t i = 0 ; i < len ; i += strlen(zones + i) + 1)
    for (char const *p = zones + i ; p && *p ; )
    {
      if (ub_ctx_zone_remove(ctx, p)) return 0 ;
      p = strchr(p, '.') ;
      if (p) p++ ;
    }
  return 1 ;
}

struct dns *dns_new (char const **why)
{
  static char whybuf[160] ;
  stralloc sa = STRALLOC_ZERO ;
  stralloc zones = STRALLOC_ZERO ;   /* the stub zones, for lift_defaults */
  struct dns *d = malloc(sizeof *d) ;
  int r ;
  if (!d) { *why = "out of memory" ; return 0 ; }
  d->ctx = ub_ctx_create() ;
  if (!d->ctx) { free(d) ; *why = "cannot create a libunbound context" ; return 0 ; }
  *why = "libunbound setup failed" ;
  /* a local resolver or a test server on loopback is normal for a mail host */
  if (ub_ctx_set_option(d->ctx, "do-not-query-localhost:", "no")) goto err ;
  if (ub_ctx_async(d->ctx, 1)) goto err ;
  {
    /* $YUBIN_DNS_DEBUG=N: libunbound's verbosity N on stderr */
    char const *x = getenv("YUBIN_DNS_DEBUG") ;
    unsigned int v ;
    if (x && uint0_scan(x, &v) && ub_ctx_debuglevel(d->ctx, (int)v)) goto err ;
  }

  r = entries(&sa, "YUBIN_DNS_STUB", "dnsstubs") ;
  if (r < 0) { *why = "unable to read control/dnsstubs" ; goto err ; }
  for (size_t i = 0, n ; i < sa.len ; i += n + 1)
  {
    char *e = sa.s + i ;
    n = strlen(e) ;
    char *colon = strchr(e, ':') ;
    if (!colon || colon == e || !colon[1])
    {
      snprintf(whybuf, sizeof whybuf, "bad dnsstubs entry (zone:ip@port): %.100s", e) ;
      *why = whybuf ; goto err ;
    }
    *colon = 0 ;
    if (!stralloc_catb(&zones, e, colon - e + 1)) { *why = "out of memory" ; goto err ; }
    if (ub_ctx_set_stub(d->ctx, e, colon + 1, 0))
    {
      snprintf(whybuf, sizeof whybuf, "bad dnsstubs entry: %.60s:%.60s", e, colon + 1) ;
      *why = whybuf ; goto err ;
    }
  }

  r = entries(&sa, "YUBIN_DNS", "dnsresolvers") ;
  if (r < 0) { *why = "unable to read control/dnsresolvers" ; goto err ; }
  if (sa.len)
  {
    for (size_t i = 0 ; i < sa.len ; i += strlen(sa.s + i) + 1)
      if (ub_ctx_set_fwd(d->ctx, sa.s + i))
      {
        snprintf(whybuf, sizeof whybuf, "bad dnsresolvers entry (ip[@port]): %.100s", sa.s + i) ;
        *why = whybuf ; goto err ;
      }
  }
  else
  {
    r = ub_ctx_resolvconf(d->ctx, 0) ;
    if (r && r != UB_READFILE) { *why = "unable to read /etc/resolv.conf" ; goto err ; }
  }

  {
    char const *ta = getenv("YUBIN_DNS_TA") ;
    if (!ta)
    {
      r = control_readline(&sa, "dnstrustanchors", 0) ;
      if (r < 0) { *why = "unable to read control/dnstrustanchors" ; goto err ; }
      if (r && sa.len) ta = sa.s ;
    }
    if (!ta)
    {
      struct stat st ;
      if (stat(DEFAULT_TA, &st) == 0) ta = DEFAULT_TA ;
    }
    /* libunbound reads the file at the first query: check it now */
    if (ta && *ta && (access(ta, R_OK) < 0 || ub_ctx_add_ta_file(d->ctx, ta)))
    {
      snprintf(whybuf, sizeof whybuf, "bad trust anchor file %.120s", ta) ;
      *why = whybuf ; goto err ;
    }
  }
  if (!lift_defaults(d->ctx, zones.s, zones.len)) goto err ;
  stralloc_free(&sa) ;
  stralloc_free(&zones) ;
  *why = 0 ;
  return d ;

 err:
  stralloc_free(&sa) ;
  stralloc_free(&zones) ;
  ub_ctx_delete(d->ctx) ;
  free(d) ;
  return 0 ;
}

void dns_free (struct dns *d)
{
  if (!d) return ;
  ub_ctx_delete(d->ctx) ;
  free(d) ;
}

/* ---------------------------------------------------------------- queries */

struct pending
{
  int done ;
  int err ;
  int id ;
  struct ub_result *res ;
} ;

static void callback (void *p, int err, struct ub_result *res)
{
  struct pending *q = p ;
  q->done = 1 ;
  q->err = err ;
  q->res = res ;
}

/* Resolve n queries at once, until all are done or the deadline passes.
 * Each q[i] ends done with res or err, or not done (timed out). */
static void resolve (struct dns *d, char const *const *names, int const *types, struct pending *q, unsigned int n, tain const *deadline)
{
  unsigned int left = 0 ;
  for (unsigned int i = 0 ; i < n ; i++)
  {
    q[i].done = 0 ; q[i].err = 0 ; q[i].res = 0 ; q[i].id = 0 ;
    int r = ub_resolve_async(d->ctx, names[i], types[i], 1, q + i, &callback, &q[i].id) ;
    if (r) { q[i].done = 1 ; q[i].err = r ; }
    else left++ ;
  }
  tain_now_g() ;
  while (left)
  {
    iopause_fd x = { .fd = ub_fd(d->ctx), .events = IOPAUSE_READ, .revents = 0 } ;
    if (x.fd < 0) break ;
    int r = iopause_g(&x, 1, deadline) ;
    if (r < 0 && errno != EINTR) break ;
    if (r > 0 && ub_process(d->ctx)) break ;
    left = 0 ;
    for (unsigned int i = 0 ; i < n ; i++) if (!q[i].done) left++ ;
    if (!r && left) break ;   /* deadline */
  }
  for (unsigned int i = 0 ; i < n ; i++)
    if (!q[i].done) (void)ub_cancel(d->ctx, q[i].id) ;   /* its callback won't run */
}

static char const *rcode_name (int rcode)
{
  switch (rcode)
  {
    case 1 : return "FORMERR" ;
    case 2 : return "SERVFAIL" ;
    case 4 : return "NOTIMP" ;
    case 5 : return "REFUSED" ;
    default : return "error" ;
  }
}

/* Turn one finished query into a->status and a->why.  Returns 1 if there
 * may be records to read (DNS_OK with data), 0 otherwise. */
static int judge (struct pending const *q, char const *name, char const *type, struct dns_answer *a)
{
  a->secure = 0 ;
  a->why[0] = 0 ;
  a->canon[0] = 0 ;
  if (!q->done)
  {
    a->status = DNS_TEMP ;
    snprintf(a->why, sizeof a->why, "timeout looking up %s %.80s", type, name) ;
    return 0 ;
  }
  if (q->err || !q->res)
  {
    a->status = DNS_TEMP ;
    snprintf(a->why, sizeof a->why, "resolver error looking up %s %.60s: %s", type, name, ub_strerror(q->err)) ;
    return 0 ;
  }
  struct ub_result const *res = q->res ;
  if (res->bogus)
  {
    a->status = DNS_TEMP ;
    snprintf(a->why, sizeof a->why, "DNSSEC bogus answer for %s %.80s", type, name) ;
    return 0 ;
  }
  if (res->nxdomain || res->rcode == 3)
  {
    a->status = DNS_NXDOMAIN ;
    a->secure = !!res->secure ;
    snprintf(a->why, sizeof a->why, "no such domain: %.100s", name) ;
    return 0 ;
  }
  if (res->rcode)
  {
    a->status = DNS_TEMP ;
    snprintf(a->why, sizeof a->why, "%s looking up %s %.80s", rcode_name(res->rcode), type, name) ;
    return 0 ;
  }
  a->status = DNS_OK ;
  a->secure = !!res->secure ;
  return res->havedata ;
}

/* an uncompressed wire-format name at rdata[off..len) as text, without
 * the final dot ("" for the root).  Returns 1, 0 if malformed. */
static int wire_name (unsigned char const *s, size_t len, size_t off, char *out, size_t outlen)
{
  size_t o = 0 ;
  for (;;)
  {
    if (off >= len) return 0 ;
    unsigned int n = s[off++] ;
    if (!n) break ;
    if (n > 63 || off + n > len) return 0 ;
    if (o + n + 2 > outlen) return 0 ;
    if (o) out[o++] = '.' ;
    for (unsigned int i = 0 ; i < n ; i++)
    {
      char c = s[off + i] ;
      if (c >= 'A' && c <= 'Z') c += 'a' - 'A' ;
      out[o++] = c ;
    }
    off += n ;
  }
  out[o] = 0 ;
  return 1 ;
}

struct mxkey { struct dns_mx mx ; uint32_t r ; } ;

static int mxkey_cmp (void const *a, void const *b)
{
  struct mxkey const *x = a, *y = b ;
  if (x->mx.pref != y->mx.pref) return x->mx.pref < y->mx.pref ? -1 : 1 ;
  return x->r < y->r ? -1 : x->r > y->r ;
}

int dns_mx_sort (struct dns_mx *mx, size_t n)
{
  if (n < 2) return 1 ;
  struct mxkey *k = malloc(n * sizeof *k) ;
  if (!k) return 0 ;
  for (size_t i = 0 ; i < n ; i++) { k[i].mx = mx[i] ; k[i].r = random_uint32(0xffffffffU) ; }
  qsort(k, n, sizeof *k, &mxkey_cmp) ;
  for (size_t i = 0 ; i < n ; i++) mx[i] = k[i].mx ;
  free(k) ;
  return 1 ;
}

static void nomem (struct dns_answer *a)
{
  a->status = DNS_TEMP ;
  a->secure = 0 ;
  snprintf(a->why, sizeof a->why, "out of memory") ;
}

void dns_mx (struct dns *d, char const *domain, genalloc *mx, struct dns_answer *a, tain const *deadline)
{
  char const *names[1] = { domain } ;
  int types[1] = { RR_MX } ;
  struct pending q ;
  genalloc_setlen(struct dns_mx, mx, 0) ;
  resolve(d, names, types, &q, 1, deadline) ;
  if (judge(&q, domain, "MX", a))
  {
    for (size_t i = 0 ; q.res->data[i] ; i++)
    {
      struct dns_mx m ;
      unsigned char const *s = (unsigned char const *)q.res->data[i] ;
      size_t len = q.res->len[i] ;
      if (len < 3 || !wire_name(s, len, 2, m.host, sizeof m.host))
      {
        a->status = DNS_TEMP ; a->secure = 0 ;
        snprintf(a->why, sizeof a->why, "malformed MX record for %.100s", domain) ;
        genalloc_setlen(struct dns_mx, mx, 0) ;
        break ;
      }
      m.pref = (uint16_t)(s[0] << 8 | s[1]) ;
      if (!genalloc_catb(struct dns_mx, mx, &m, 1)) { nomem(a) ; genalloc_setlen(struct dns_mx, mx, 0) ; break ; }
    }
    if (a->status == DNS_OK)
    {
      size_t n = genalloc_len(struct dns_mx, mx) ;
      struct dns_mx *m = genalloc_s(struct dns_mx, mx) ;
      /* RFC 7505: a null MX is the only record, "." */
      for (size_t i = 0 ; i < n ; i++)
        if (!m[i].host[0] && n > 1)
        {
          /* a null MX among others is malformed: ignore the null one */
          m[i] = m[n-1] ; n-- ; i-- ;
        }
      genalloc_setlen(struct dns_mx, mx, n) ;
      if (n == 1 && !m[0].host[0]) m[0].pref = 0 ;
      else if (!dns_mx_sort(m, n)) { nomem(a) ; genalloc_setlen(struct dns_mx, mx, 0) ; }
    }
  }
  if (q.res) ub_resolve_free(q.res) ;
}

void dns_addrs (struct dns *d, char const *host, genalloc *ips, struct dns_answer *a, tain const *deadline)
{
  char const *names[2] = { host, host } ;
  int types[2] = { RR_AAAA, RR_A } ;
  struct pending q[2] ;
  struct dns_answer a6, a4 ;
  genalloc_setlen(ip46, ips, 0) ;
  resolve(d, names, types, q, 2, deadline) ;
  int h6 = judge(q, host, "AAAA", &a6) ;
  int h4 = judge(q + 1, host, "A", &a4) ;
  /* one family's trouble spoils the answer only if the other has nothing */
  if (h6)
    for (size_t i = 0 ; q[0].res->data[i] ; i++)
    {
      ip46 ip ;
      if (q[0].res->len[i] != 16) continue ;
      ip46full_from_ip6(&ip, q[0].res->data[i]) ;
      if (!genalloc_catb(ip46, ips, &ip, 1)) { nomem(a) ; goto end ; }
    }
  if (h4)
    for (size_t i = 0 ; q[1].res->data[i] ; i++)
    {
      ip46 ip ;
      if (q[1].res->len[i] != 4) continue ;
      ip46full_from_ip4(&ip, q[1].res->data[i]) ;
      if (!genalloc_catb(ip46, ips, &ip, 1)) { nomem(a) ; goto end ; }
    }
  if (a6.status == DNS_OK && a4.status == DNS_OK)
  {
    a->status = DNS_OK ;
    a->secure = a6.secure && a4.secure ;
    a->why[0] = 0 ;
  }
  else if (genalloc_len(ip46, ips))
  {
    /* addresses of one family and trouble with the other: use what we
     * have; secure only if the family we have was validated */
    struct dns_answer const *ok = a6.status == DNS_OK ? &a6 : &a4 ;
    a->status = DNS_OK ;
    a->secure = ok->secure ;
    a->why[0] = 0 ;
  }
  else if (a6.status == DNS_TEMP || a4.status == DNS_TEMP)
    *a = a6.status == DNS_TEMP ? a6 : a4 ;
  else *a = a4 ;   /* NXDOMAIN, or one OK (no data) and one NXDOMAIN: odd, permanent */
  /* RFC 7672 2.2.2: the TLSA of an alias is looked up at its target first */
  a->canon[0] = 0 ;
  if (a->status == DNS_OK)
  {
    struct ub_result const *res = h6 && genalloc_len(ip46, ips) ? q[0].res : h4 ? q[1].res : 0 ;
    char const *cn = res ? res->canonname : 0 ;
    size_t n = cn ? strlen(cn) : 0 ;
    if (n && cn[n-1] == '.') n-- ;
    if (n && n < sizeof a->canon)
    {
      size_t hl = strlen(host) ;
      if (hl && host[hl-1] == '.') hl-- ;
      for (size_t i = 0 ; i < n ; i++)
        a->canon[i] = cn[i] >= 'A' && cn[i] <= 'Z' ? cn[i] + ('a' - 'A') : cn[i] ;
      a->canon[n] = 0 ;
      if (n == hl && !strncasecmp(a->canon, host, hl)) a->canon[0] = 0 ;
    }
  }
 end:
  if (q[0].res) ub_resolve_free(q[0].res) ;
  if (q[1].res) ub_resolve_free(q[1].res) ;
}

void dns_tlsa_clear (genalloc *tlsa)
{
  size_t n = genalloc_len(struct dns_tlsa, tlsa) ;
  struct dns_tlsa *t = genalloc_s(struct dns_tlsa, tlsa) ;
  for (size_t i = 0 ; i < n ; i++) free(t[i].data) ;
  genalloc_setlen(struct dns_tlsa, tlsa, 0) ;
}

void dns_tlsa_free (genalloc *tlsa)
{
  dns_tlsa_clear(tlsa) ;
  genalloc_free(struct dns_tlsa, tlsa) ;
}

void dns_tlsa (struct dns *d, char const *host, uint16_t port, genalloc *tlsa, struct dns_answer *a, tain const *deadline)
{
  char name[300] ;
  char const *names[1] = { name } ;
  int types[1] = { RR_TLSA } ;
  struct pending q ;
  dns_tlsa_clear(tlsa) ;
  snprintf(name, sizeof name, "_%u._tcp.%s", (unsigned int)port, host) ;
  resolve(d, names, types, &q, 1, deadline) ;
  if (judge(&q, name, "TLSA", a))
    for (size_t i = 0 ; q.res->data[i] ; i++)
    {
      struct dns_tlsa t ;
      unsigned char const *s = (unsigned char const *)q.res->data[i] ;
      size_t len = q.res->len[i] ;
      if (len < 4) continue ;                      /* malformed: unusable (RFC 7672 2.2) */
      t.usage = s[0] ; t.selector = s[1] ; t.mtype = s[2] ;
      t.len = len - 3 ;   /* at most 65532: an RDATA length is 16 bits */
      t.data = malloc(t.len) ;
      if (!t.data) { nomem(a) ; dns_tlsa_clear(tlsa) ; break ; }
      memcpy(t.data, s + 3, t.len) ;
      if (!genalloc_catb(struct dns_tlsa, tlsa, &t, 1)) { free(t.data) ; nomem(a) ; dns_tlsa_clear(tlsa) ; break ; }
    }
  if (q.res) ub_resolve_free(q.res) ;
}
