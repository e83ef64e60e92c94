/* t-route: remote/route.c and remote/dns.c.
 *
 * Without arguments (tests/run), offline cases: control/smtproutes parsing
 * and qmail-remote's matching (exact, ".suffix", the "" default route,
 * empty relay = DNS, IP literals v4/v6, ports, bad lines refused), the MX
 * sort (preference order, equal preferences shuffled), dns_new's refusal
 * of bad settings.  $YUBIN_ROOT is a fresh mkdtemp directory.
 *
 * With arguments, a probe for tests/remote/test_dns.py:
 *   t-route [-t seconds] DOMAIN...
 * resolves through dns_new (so $YUBIN_DNS*, $YUBIN_ROOT/control) and
 * prints for each domain:
 *   route DOMAIN ok|perm|temp smtproutes=0|1 why=TEXT
 *   target HOST IP PORT PREF SECURE          (each target, in order)
 *   tlsa HOST PORT ok|nxdomain|temp SECURE N (each distinct host, port 25
 *                                             or the route's)
 *   tlsarr HOST USAGE SELECTOR MTYPE HEX     (its N records)
 * Exit 0, or 111 if dns_new fails (the reason on stderr). */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <skalibs/genalloc.h>
#include <skalibs/ip46.h>
#include <skalibs/tai.h>
#include <skalibs/types.h>

#include "remote/dns.h"
#include "remote/route.h"

char const *PROG = "t-route" ;

static char root[] = "/tmp/t-route.XXXXXX" ;
static int failed = 0 ;

static void check (char const *name, int ok, char const *why)
{
  if (ok) printf("PASS route-%s\n", name) ;
  else { printf("FAIL route-%s: %s\n", name, why) ; failed = 1 ; }
}

static void writes (char const *name, char const *s)
{
  char fn[256] ;
  snprintf(fn, sizeof fn, "%s/control/%s", root, name) ;
  int fd = open(fn, O_WRONLY | O_CREAT | O_TRUNC, 0644) ;
  size_t len = strlen(s) ;
  if (fd < 0 || write(fd, s, len) != (ssize_t)len || close(fd) < 0) { perror(fn) ; exit(111) ; }
}

static void fmt_target (char *buf, size_t n, struct route const *r, size_t i)
{
  struct route_target const *t = genalloc_s(struct route_target, &r->targets) + i ;
  char ip[IP46_FMT] ;
  ip[ip46_fmt(ip, &t->ip)] = 0 ;
  snprintf(buf, n, "%s %s %u %u %d", t->host, ip, (unsigned int)t->port, (unsigned int)t->pref, t->secure) ;
}

/* the route of domain without DNS: status, smtproutes and one target as text */
static void expect_route (char const *name, char const *domain, enum route_status st, int sroutes, char const *target)
{
  struct route r = ROUTE_ZERO ;
  char got[400], why[600] ;
  tain deadline ;
  tain_now_g() ;
  tain_addsec_g(&deadline, 1) ;
  route_lookup(0, domain, &r, &deadline) ;
  size_t n = genalloc_len(struct route_target, &r.targets) ;
  if (n) fmt_target(got, sizeof got, &r, 0) ; else got[0] = 0 ;
  int ok = r.status == st && r.smtproutes == sroutes
    && (target ? n == 1 && !strcmp(got, target) : n == 0) ;
  snprintf(why, sizeof why, "%.100s: status %d smtproutes %d targets %zu first \"%.200s\" why \"%.200s\"",
           domain, (int)r.status, r.smtproutes, n, got, r.why) ;
  check(name, ok, why) ;
  route_free(&r) ;
}

static void offline (void)
{
  char fn[256] ;
  if (!mkdtemp(root)) { perror("mkdtemp") ; exit(111) ; }
  snprintf(fn, sizeof fn, "%s/control", root) ;
  if (mkdir(fn, 0755) < 0) { perror(fn) ; exit(111) ; }
  if (setenv("YUBIN_ROOT", root, 1) < 0) exit(111) ;

  check("init-missing", route_init() == 1, "route_init without smtproutes failed") ;
  expect_route("missing-needs-dns", "example.com", ROUTE_TEMP, 0, 0) ;

  writes("smtproutes",
         "# relays\n"
         "Example.COM:Relay.Example.NET:2525\n"
         ".sub.example.com:[192.0.2.1]\n"
         "exact.example.org:[IPv6:2001:db8::1]:587\n"
         "v6.example.org:[2001:db8::2]\n"
         "bare.example.org:192.0.2.7\n"
         "dns.example.com:\n"
         "  spaced.example.org:[192.0.2.8]:26  \r\n"
         ":[192.0.2.99]:26\n") ;
  check("init", route_init() == 1, route_init_why()) ;
  expect_route("exact-literal-v6-port", "EXACT.example.org.", ROUTE_OK, 1, "2001:db8::1 2001:db8::1 587 0 0") ;
  expect_route("v6-literal", "v6.example.org", ROUTE_OK, 1, "2001:db8::2 2001:db8::2 25 0 0") ;
  expect_route("bare-ipv4", "bare.example.org", ROUTE_OK, 1, "192.0.2.7 192.0.2.7 25 0 0") ;
  expect_route("spaces-cr", "spaced.example.org", ROUTE_OK, 1, "192.0.2.8 192.0.2.8 26 0 0") ;
  expect_route("subdomain", "a.b.sub.example.com", ROUTE_OK, 1, "192.0.2.1 192.0.2.1 25 0 0") ;
  expect_route("dot-not-apex", "sub.example.com", ROUTE_OK, 1, "192.0.2.99 192.0.2.99 26 0 0") ;
  expect_route("default", "other.net", ROUTE_OK, 1, "192.0.2.99 192.0.2.99 26 0 0") ;
  expect_route("empty-relay-dns", "dns.example.com", ROUTE_TEMP, 0, 0) ;
  expect_route("relay-name-needs-dns", "example.com", ROUTE_TEMP, 1, 0) ;
  expect_route("relay-not-subdomain", "x.example.com", ROUTE_OK, 1, "192.0.2.99 192.0.2.99 26 0 0") ;
  expect_route("bad-domain", "", ROUTE_PERM, 0, 0) ;

  static char const *const bad[] =
  {
    "nocolon.example\n", "x.example:[192.0.2.1\n", "x.example:[192.0.2.1]x\n",
    "x.example:[not.an.ip]\n", "x.example:relay:99999\n", "x.example:relay:0\n",
    "x.example:relay:25x\n", "x.example:relay:25:26\n",
  } ;
  for (size_t i = 0 ; i < sizeof bad / sizeof *bad ; i++)
  {
    char name[64], why[200] ;
    writes("smtproutes", bad[i]) ;
    errno = 0 ;
    int r = route_init() ;
    snprintf(name, sizeof name, "bad-line-%zu", i) ;
    snprintf(why, sizeof why, "accepted %.100s", bad[i]) ;
    check(name, !r && errno == EINVAL && strstr(route_init_why(), "smtproutes"), why) ;
  }
  writes("smtproutes", "") ;
  check("init-empty", route_init() == 1, route_init_why()) ;

  /* MX sort: preference order, equal preferences shuffled */
  {
    unsigned int afirst = 0, ok = 1 ;
    for (unsigned int k = 0 ; k < 400 ; k++)
    {
      struct dns_mx mx[5] = { { 10, "a" }, { 10, "b" }, { 5, "c" }, { 20, "d" }, { 10, "e" } } ;
      if (!dns_mx_sort(mx, 5)) { ok = 0 ; break ; }
      if (strcmp(mx[0].host, "c") || strcmp(mx[4].host, "d")) ok = 0 ;
      for (unsigned int i = 1 ; i < 5 ; i++) if (mx[i].pref < mx[i-1].pref) ok = 0 ;
      if (!strcmp(mx[1].host, "a")) afirst++ ;
    }
    check("mx-sort-order", ok, "not sorted by preference") ;
    char why[100] ;
    snprintf(why, sizeof why, "a came first among three equals %u times in 400", afirst) ;
    check("mx-sort-shuffle", afirst > 80 && afirst < 190, why) ;
  }

  /* dns_new: bad settings are refused with a reason, good ones accepted */
  {
    char const *why = 0 ;
    struct dns *d ;
    char msg[300] ;
    setenv("YUBIN_DNS", "127.0.0.1@53", 1) ;
    setenv("YUBIN_DNS_TA", "", 1) ;
    setenv("YUBIN_DNS_STUB", "example.test:127.0.0.1@5353, other.test:::1@53", 1) ;
    d = dns_new(&why) ;
    snprintf(msg, sizeof msg, "dns_new failed: %s", why ? why : "?") ;
    check("dns-new", !!d, msg) ;
    dns_free(d) ;
    setenv("YUBIN_DNS_STUB", "nocolon", 1) ;
    d = dns_new(&why) ;
    check("dns-new-bad-stub", !d && why && strstr(why, "dnsstubs"), "accepted a stub without zone:") ;
    dns_free(d) ;
    setenv("YUBIN_DNS_STUB", "", 1) ;
    setenv("YUBIN_DNS", "not-an-address", 1) ;
    d = dns_new(&why) ;
    check("dns-new-bad-forwarder", !d && why && strstr(why, "dnsresolvers"), "accepted a bad forwarder") ;
    dns_free(d) ;
    setenv("YUBIN_DNS", "", 1) ;
    setenv("YUBIN_DNS_TA", "/nonexistent/ta", 1) ;
    d = dns_new(&why) ;
    check("dns-new-bad-ta", !d && why && strstr(why, "trust anchor"), "accepted a missing trust anchor file") ;
    dns_free(d) ;
    unsetenv("YUBIN_DNS") ; unsetenv("YUBIN_DNS_TA") ; unsetenv("YUBIN_DNS_STUB") ;
    /* the same from control files */
    writes("dnsstubs", "# stubs\nexample.test:127.0.0.1@5353\n") ;
    writes("dnsresolvers", "127.0.0.1@53\n") ;
    d = dns_new(&why) ;
    snprintf(msg, sizeof msg, "dns_new from control files failed: %s", why ? why : "?") ;
    check("dns-new-control", !!d, msg) ;
    dns_free(d) ;
    writes("dnsstubs", "bad\n") ;
    d = dns_new(&why) ;
    check("dns-new-control-bad", !d && why && strstr(why, "dnsstubs"), "accepted a bad control/dnsstubs") ;
    dns_free(d) ;
  }

  snprintf(fn, sizeof fn, "rm -rf %s", root) ;
  if (system(fn) != 0) fprintf(stderr, "t-route: could not remove %s\n", root) ;
}

/* ---------------------------------------------------------------- probe */

static char const *status_name (enum route_status s)
{
  return s == ROUTE_OK ? "ok" : s == ROUTE_PERM ? "perm" : "temp" ;
}

static char const *dns_status_name (enum dns_status s)
{
  return s == DNS_OK ? "ok" : s == DNS_NXDOMAIN ? "nxdomain" : "temp" ;
}

static int probe (int argc, char const *const *argv)
{
  unsigned int secs = 10 ;
  int i = 1 ;
  if (argc > 2 && !strcmp(argv[1], "-t"))
  {
    if (!uint0_scan(argv[2], &secs)) { fprintf(stderr, "t-route: bad -t\n") ; return 100 ; }
    i = 3 ;
  }
  if (!route_init()) { fprintf(stderr, "t-route: %s\n", route_init_why()) ; return 111 ; }
  char const *why = 0 ;
  struct dns *d = dns_new(&why) ;
  if (!d) { fprintf(stderr, "t-route: dns_new: %s\n", why) ; return 111 ; }
  for (; i < argc ; i++)
  {
    struct route r = ROUTE_ZERO ;
    tain deadline ;
    tain_now_g() ;
    tain_addsec_g(&deadline, secs) ;
    route_lookup(d, argv[i], &r, &deadline) ;
    printf("route %s %s smtproutes=%d why=%s\n", argv[i], status_name(r.status), r.smtproutes, r.why) ;
    size_t n = genalloc_len(struct route_target, &r.targets) ;
    struct route_target const *t = genalloc_s(struct route_target, &r.targets) ;
    for (size_t j = 0 ; j < n ; j++)
    {
      char buf[400] ;
      fmt_target(buf, sizeof buf, &r, j) ;
      printf("target %s\n", buf) ;
    }
    for (size_t j = 0 ; j < n ; j++)
    {
      int seen = 0 ;
      for (size_t k = 0 ; k < j ; k++) if (!strcmp(t[k].host, t[j].host) && t[k].port == t[j].port) seen = 1 ;
      if (seen) continue ;
      genalloc tl = GENALLOC_ZERO ;
      struct dns_answer a ;
      tain_now_g() ;
      tain_addsec_g(&deadline, secs) ;
      dns_tlsa(d, t[j].host, t[j].port, &tl, &a, &deadline) ;
      size_t m = genalloc_len(struct dns_tlsa, &tl) ;
      struct dns_tlsa const *x = genalloc_s(struct dns_tlsa, &tl) ;
      printf("tlsa %s %u %s %d %zu\n", t[j].host, (unsigned int)t[j].port, dns_status_name(a.status), a.secure, m) ;
      for (size_t k = 0 ; k < m ; k++)
      {
        printf("tlsarr %s %u %u %u ", t[j].host, x[k].usage, x[k].selector, x[k].mtype) ;
        for (size_t b = 0 ; b < x[k].len ; b++) printf("%02x", x[k].data[b]) ;
        printf("\n") ;
      }
      dns_tlsa_free(&tl) ;
    }
    route_free(&r) ;
    fflush(stdout) ;
  }
  dns_free(d) ;
  return 0 ;
}

int main (int argc, char const *const *argv)
{
  if (argc > 1) return probe(argc, argv) ;
  offline() ;
  return failed ;
}
