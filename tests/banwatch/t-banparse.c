/* Unit tests for banwatch/banparse.c (built by `make unit`).
 * Prints "PASS name" or "FAIL name: why" per case. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <regex.h>

#include <skalibs/stralloc.h>

#include "banwatch/banparse.h"

static int failed ;

static void result (char const *name, int ok, char const *why)
{
  if (ok) printf("PASS %s\n", name) ;
  else { printf("FAIL %s: %s\n", name, why) ; failed = 1 ; }
}

static char why[4096] ;
#define CHECK(cond, ...) do { if (!(cond) && ok) { snprintf(why, sizeof why, __VA_ARGS__) ; ok = 0 ; } } while (0)

static int scanfmt (char const *in, int cidr, char *out)
{
  banaddr b ;
  if (!banaddr_scan(&b, in, strlen(in), cidr)) { strcpy(out, "BAD") ; return 0 ; }
  banaddr_fmt(out, &b) ;
  return 1 ;
}

static void t_addr (void)
{
  static char const *const good[][2] =
  {
    { "192.0.2.1", "192.0.2.1" }, { "2001:DB8::1", "2001:db8::1" },
    { "::ffff:198.51.100.7", "198.51.100.7" }, { "::1", "::1" },
    { "0.0.0.0", "0.0.0.0" }, { "2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1" },
  } ;
  static char const *const bad[] =
  {
    "", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.256", "::g", "1.2.3.4 ", " 1.2.3.4",
    "1.2.3.4/24", "2001:db8::1::2", "1.2.3.-1", "example.com", "1.2.3.4\n", ":::",
  } ;
  int ok = 1 ;
  char out[BANADDR_FMT] ;
  for (size_t i = 0 ; i < sizeof good / sizeof *good ; i++)
  {
    scanfmt(good[i][0], 0, out) ;
    CHECK(!strcmp(out, good[i][1]), "%s gave %s, want %s", good[i][0], out, good[i][1]) ;
  }
  for (size_t i = 0 ; i < sizeof bad / sizeof *bad ; i++)
    CHECK(!scanfmt(bad[i], 0, out), "accepted bad address '%s' as %s", bad[i], out) ;
  {
    banaddr b ;
    CHECK(!banaddr_scanip(&b, "1.2.3.4\0005", 9), "accepted an address with a NUL") ;
    CHECK(banaddr_scanip(&b, "1.2.3.4xyz", 7), "length not honoured") ;
  }
  result("banparse-address", ok, why) ;

  ok = 1 ;
  static char const *const cgood[][2] =
  {
    { "10.1.2.3/8", "10.0.0.0/8" }, { "192.0.2.0/24", "192.0.2.0/24" }, { "192.0.2.9/32", "192.0.2.9" },
    { "2001:db8:1:2:3::/64", "2001:db8:1:2::/64" }, { "::ffff:10.0.0.0/104", "10.0.0.0/8" },
    { "2001:db8::1", "2001:db8::1" }, { "0.0.0.0/0", "0.0.0.0/0" },
  } ;
  static char const *const cbad[] = { "10.0.0.0/33", "10.0.0.0/", "/8", "10.0.0.0/8/8", "::/129", "10.0.0.0/-1", "10.0.0.0/08", "10.0.0.0/ 8", "::ffff:1.2.3.4/95" } ;
  for (size_t i = 0 ; i < sizeof cgood / sizeof *cgood ; i++)
  {
    scanfmt(cgood[i][0], 1, out) ;
    CHECK(!strcmp(out, cgood[i][1]), "%s gave %s, want %s", cgood[i][0], out, cgood[i][1]) ;
  }
  for (size_t i = 0 ; i < sizeof cbad / sizeof *cbad ; i++)
    CHECK(!scanfmt(cbad[i], 1, out), "accepted bad CIDR '%s' as %s", cbad[i], out) ;
  {
    banaddr net, a ;
    banaddr_scancidr(&net, "2001:db8:1:2::/64", 17) ;
    banaddr_scanip(&a, "2001:db8:1:2:ffff::1", 20) ;
    CHECK(banaddr_contains(&net, &a), "/64 does not contain its address") ;
    banaddr_scanip(&a, "2001:db8:1:3::1", 15) ;
    CHECK(!banaddr_contains(&net, &a), "/64 contains a neighbour") ;
    banaddr_scanip(&a, "10.0.0.1", 8) ;
    CHECK(!banaddr_contains(&net, &a), "v6 net contains a v4 address") ;
  }
  result("banparse-cidr", ok, why) ;
}

static void fmt6 (char *out, char const *in)
{
  unsigned char ip[16] ;
  inet_pton(AF_INET6, in, ip) ;
  banaddr_fmt_ucspi6(out, ip) ;
}

static void t_ucspi6 (void)
{
  /* as ucspi-tcp-ipv6's tcpserver sets TCPREMOTEIP (checked against it) */
  static char const *const cases[][2] =
  {
    { "2001:db8:0:1:2:3:4:5", "2001:db8::1:2:3:4:5" }, { "2001:0:0:1:0:0:0:5", "2001:0:0:1::5" },
    { "2001:db8:0:0:1:0:0:0", "2001:db8:0:0:1::" }, { "2001:db8:ab::", "2001:db8:ab::" },
    { "::1", "::1" }, { "::", "::" }, { "1::", "1::" }, { "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8" },
    { "1:0:0:2:0:0:3:4", "1::2:0:0:3:4" },
  } ;
  int ok = 1 ;
  char out[BANADDR_FMT] ;
  for (size_t i = 0 ; i < sizeof cases / sizeof *cases ; i++)
  {
    fmt6(out, cases[i][0]) ;
    CHECK(!strcmp(out, cases[i][1]), "%s gave %s, want %s", cases[i][0], out, cases[i][1]) ;
  }
  result("banparse-ucspi6-format", ok, why) ;
}

/* ---- tcprules: simulate tcprules (key = text before the last ':',
 * ranges expanded) and tcpserver's lookup (the address, then shorter
 * prefixes ending in '.' or ':') ---- */

static stralloc keys = STRALLOC_ZERO ;   /* "\nkey\n" entries */

static void addkey (char const *k, size_t n)
{
  stralloc_catb(&keys, "\n", 1) ;
  stralloc_catb(&keys, k, n) ;
  stralloc_catb(&keys, "\n", 1) ;
}

static void load_rules (char const *s, size_t n)
{
  keys.len = 0 ;
  while (n)
  {
    char const *nl = memchr(s, '\n', n) ;
    size_t len = nl - s ;
    size_t colon = len ;
    while (colon && s[colon-1] != ':') colon-- ;
    size_t klen = colon - 1 ;
    char const *dash = memchr(s, '-', klen) ;
    if (dash)
    {
      size_t d = dash - s, st = d ;
      while (st && s[st-1] != '.') st-- ;
      unsigned lo = atoi(s + st), hi = atoi(s + d + 1) ;
      size_t e = d + 1 ;
      while (e < klen && s[e] >= '0' && s[e] <= '9') e++ ;
      for (unsigned v = lo ; v <= hi ; v++)
      {
        char k[128] ;
        int m = snprintf(k, sizeof k, "%.*s%u%.*s", (int)st, s, v, (int)(klen - e), s + e) ;
        addkey(k, m) ;
      }
    }
    else addkey(s, klen) ;
    s += len + 1 ; n -= len + 1 ;
  }
}

static int denied (char const *text)
{
  size_t n = strlen(text) ;
  char k[128] ;
  for (size_t i = n ; i ; i--)
  {
    if (i < n && text[i-1] != '.' && text[i-1] != ':') continue ;
    k[0] = '\n' ; memcpy(k + 1, text, i) ; k[i+1] = '\n' ;
    if (memmem(keys.s, keys.len, k, i + 2)) return 1 ;
  }
  return 0 ;
}

static unsigned rnd (void) { return (unsigned)random() ; }

static void text_of (char *out, banaddr const *a)
{
  if (a->family == 4) banaddr_fmt(out, a) ;
  else banaddr_fmt_ucspi6(out, a->a) ;
}

static void t_tcprules (void)
{
  int ok = 1 ;
  stralloc sa = STRALLOC_ZERO ;
  srandom(4242) ;
  /* IPv4: exact for every prefix length */
  for (int iter = 0 ; iter < 3000 && ok ; iter++)
  {
    banaddr net = { 4, 32, { 0 } }, a ;
    unsigned len = 8 + rnd() % 25 ;
    for (int i = 0 ; i < 4 ; i++) net.a[i] = rnd() % 4 == 0 ? 0 : rnd() ;
    banaddr_mask(&net, len) ;
    sa.len = 0 ;
    banaddr_tcprules(&sa, &net) ;
    load_rules(sa.s, sa.len) ;
    for (int t = 0 ; t < 20 && ok ; t++)
    {
      a = net ; a.len = 32 ;
      for (int i = 0 ; i < 4 ; i++) a.a[i] |= rnd() & (i * 8 + 8 > (int)len ? (0xff >> (len > (unsigned)i * 8 ? len - i * 8 : 0)) : 0) ;
      if (t & 1) { unsigned bit = rnd() % len ; a.a[bit / 8] ^= 0x80 >> (bit % 8) ; }
      char at[BANADDR_FMT], nt[BANADDR_FMT] ;
      text_of(at, &a) ; banaddr_fmt(nt, &net) ;
      int in = banaddr_contains(&net, &a) ;
      CHECK(denied(at) == in, "v4 %s in %s: denied=%d want %d (rules: %.*s)", at, nt, !in, in, (int)sa.len, sa.s) ;
    }
  }
  result("banparse-tcprules-ipv4", ok, why) ;

  /* IPv6: exact, except the documented neighbours of a prefix that ends
   * in two or more zero groups */
  ok = 1 ;
  static unsigned const lens[] = { 16, 32, 48, 56, 60, 64, 64, 64, 80, 96, 112, 120, 128 } ;
  unsigned over = 0 ;
  for (int iter = 0 ; iter < 3000 && ok ; iter++)
  {
    banaddr net = { 6, 128, { 0 } }, a ;
    unsigned len = lens[rnd() % (sizeof lens / sizeof *lens)] ;
    for (int g = 0 ; g < 8 ; g++)
    {
      unsigned v = rnd() % 3 == 0 ? 0 : rnd() & 0xffff ;
      if (g == 0 && !v) v = 0x2001 ;
      net.a[2*g] = v >> 8 ; net.a[2*g+1] = v & 0xff ;
    }
    banaddr_mask(&net, len) ;
    sa.len = 0 ;
    banaddr_tcprules(&sa, &net) ;
    load_rules(sa.s, sa.len) ;
    unsigned ng = (len + 15) / 16 ;
    int zerotail = ng >= 2 && !net.a[2*ng-2] && !net.a[2*ng-1] && !net.a[2*ng-4] && !net.a[2*ng-3] ;
    for (int t = 0 ; t < 30 && ok ; t++)
    {
      a = net ; a.len = 128 ;
      for (unsigned g = 0 ; g < 8 ; g++)
      {
        if (g * 16 + 16 <= len) continue ;
        unsigned v = rnd() % 2 ? 0 : rnd() & 0xffff ;
        unsigned keep = g * 16 >= len ? 0 : len - g * 16 ;
        unsigned mask = keep ? (0xffffu >> keep) : 0xffff ;
        a.a[2*g] |= (v & mask) >> 8 ; a.a[2*g+1] |= (v & mask) & 0xff ;
      }
      if (t % 3 == 1) { unsigned bit = rnd() % len ; a.a[bit / 8] ^= 0x80 >> (bit % 8) ; }
      if (t % 3 == 2) { unsigned g = rnd() % ng ; a.a[2*g] = 0 ; a.a[2*g+1] = rnd() % 2 ; }
      char at[BANADDR_FMT], nt[BANADDR_FMT] ;
      text_of(at, &a) ; banaddr_fmt(nt, &net) ;
      int in = banaddr_contains(&net, &a) ;
      int d = denied(at) ;
      if (!in && d && zerotail) { over++ ; continue ; }
      CHECK(d == in, "v6 %s in %s: denied=%d want %d (rules: %.*s)", at, nt, d, in, (int)sa.len, sa.s) ;
    }
  }
  if (ok) printf("# tcprules-ipv6: %u documented over-matches\n", over) ;
  result("banparse-tcprules-ipv6", ok, why) ;
  stralloc_free(&sa) ;
  stralloc_free(&keys) ;
}

static void t_stamp (void)
{
  int ok = 1 ;
  int64_t ms = 0, now = 1795854614000LL ;   /* 2026-11-28T08:30:14Z */
  size_t n ;
  char const *s ;
  setenv("TZ", "UTC", 1) ;
  s = "@400000006b0a913e08f80f3e x" ;
  n = banline_stamp(s, strlen(s), &ms, now) ;
  CHECK(n == 26 && ms == 1795854617150LL, "tai64n: n=%zu ms=%lld", n, (long long)ms) ;
  s = "2026-11-28 08:30:17.145507564  smtpd: x" ;
  n = banline_stamp(s, strlen(s), &ms, now) ;
  CHECK(n == 31 && ms == 1795854617145LL, "s6-log T: n=%zu ms=%lld", n, (long long)ms) ;
  s = "2026-11-28T09:30:17+01:00 host sshd[1]: x" ;
  n = banline_stamp(s, strlen(s), &ms, now) ;
  CHECK(n == 26 && ms == 1795854617000LL, "iso zone: n=%zu ms=%lld", n, (long long)ms) ;
  s = "2026-11-28T08:30:17.5Z x" ;
  n = banline_stamp(s, strlen(s), &ms, now) ;
  CHECK(n == 23 && ms == 1795854617500LL, "iso Z: n=%zu ms=%lld", n, (long long)ms) ;
  s = "Nov 28 08:30:17 host sshd[1]: x" ;
  n = banline_stamp(s, strlen(s), &ms, now) ;
  CHECK(n == 16 && ms == 1795854617000LL, "syslog: n=%zu ms=%lld", n, (long long)ms) ;
  s = "Dec 31 23:59:59 host x" ;   /* a month ahead: last year */
  n = banline_stamp(s, strlen(s), &ms, now) ;
  CHECK(n == 16 && ms == 1767225599000LL, "syslog year: n=%zu ms=%lld", n, (long long)ms) ;
  s = "Nov  2 08:30:17 host x" ;
  n = banline_stamp(s, strlen(s), &ms, now) ;
  CHECK(n == 16, "syslog padded day: n=%zu", n) ;
  static char const *const bad[] =
  {
    "smtpd: auth-fail ip=1.2.3.4", "@400000006b0a913e08f80f3", "@400000006b0a913e08f80fzz x",
    "2026-13-28 08:30:17 x", "2026-11-28 08:30:17x", "Foo 28 08:30:17 x", "1.2.3.4 - - [28/Nov/2026]",
    "2026-11-28T08:30:17+0 x", "Nov 28 08:30", "",
  } ;
  for (size_t i = 0 ; i < sizeof bad / sizeof *bad ; i++)
    CHECK(!banline_stamp(bad[i], strlen(bad[i]), &ms, now), "took a stamp from '%s'", bad[i]) ;
  result("banparse-timestamps", ok, why) ;
}

static int kvip (char const *s, char *ip)
{
  banline_kv kv ;
  if (!banline_kv_parse(&kv, s, strlen(s))) { strcpy(ip, "NOTKV") ; return 0 ; }
  if (!kv.ip) { strcpy(ip, "NOIP") ; return 1 ; }
  memcpy(ip, kv.ip, kv.iplen) ; ip[kv.iplen] = 0 ;
  return 1 ;
}

static void t_kv (void)
{
  int ok = 1 ;
  char ip[256] ;
  banline_kv kv ;
  char const *s = "smtpd: auth-fail ip=203.0.113.9 user=alice mech=PLAIN" ;
  CHECK(banline_kv_parse(&kv, s, strlen(s)) && kv.proglen == 5 && !memcmp(kv.verb, "auth-fail", 9) && kv.verblen == 9
        && kv.iplen == 11 && !memcmp(kv.ip, "203.0.113.9", 11), "plain line misparsed") ;
  kvip("smtpd: auth-fail user=x\\x20ip\\x3d192.0.2.1 ip=203.0.113.9 mech=PLAIN", ip) ;
  CHECK(!strcmp(ip, "203.0.113.9"), "escaped user name gave ip=%s", ip) ;
  kvip("smtpd: auth-fail ip=203.0.113.9 user=x\\x20ip\\x3d192.0.2.1 mech=PLAIN", ip) ;
  CHECK(!strcmp(ip, "203.0.113.9"), "escaped user name (after) gave ip=%s", ip) ;
  kvip("pop3d: auth-fail user=\"\" ip=2001:db8::7", ip) ;
  CHECK(!strcmp(ip, "2001:db8::7"), "empty value: %s", ip) ;
  static char const *const bad[] =
  {
    "smtpd: auth-fail user=x ip=192.0.2.1 ip=203.0.113.9",   /* two ip= : forged */
    "smtpd: auth-fail user=x ip=192.0.2.1 mech=PLAIN ",        /* trailing blank */
    "smtpd: auth-fail user=x=y ip=1.2.3.4",                    /* raw = in a value */
    "smtpd: auth-fail user=x  ip=1.2.3.4",                     /* two blanks */
    "smtpd: auth-fail user=x\tip=1.2.3.4",
    "smtpd: auth-fail user=\xc3\xa4 ip=1.2.3.4",
    "smtpd auth-fail ip=1.2.3.4", ": auth-fail ip=1.2.3.4", "smtpd: ip=1.2.3.4 x", "smtpd: auth-fail ip=",
    "smtpd: auth-fail =1.2.3.4", "smtpd: auth-fail ip=1.2.3.4\r",
  } ;
  for (size_t i = 0 ; i < sizeof bad / sizeof *bad ; i++)
    CHECK(!kvip(bad[i], ip), "accepted '%s' (ip=%s)", bad[i], ip) ;
  result("banparse-keyvalue-lines", ok, why) ;
}

static char const sshd_fail[] = "^[^ ]+ sshd(-session)?\\[[0-9]+\\]: Failed (password|publickey|keyboard-interactive/pam) for (invalid user )?.* from <HOST> port [0-9]+( ssh2)?$" ;
static char const sshd_inv[] = "^[^ ]+ sshd(-session)?\\[[0-9]+\\]: Invalid user .* from <HOST> port [0-9]+$" ;
static char const postfix[] = "^[^ ]+ postfix(/[-a-z0-9]+)*/smtpd\\[[0-9]+\\]: warning: [-._A-Za-z0-9]+\\[<HOST>\\]: SASL [-A-Z0-9]+ authentication failed(: .*)?$" ;

static int pmatch (char const *pat, char const *line, char *host)
{
  banpat p ;
  char err[256] ;
  banaddr a ;
  if (!banpat_compile(&p, pat, 1, err, sizeof err)) { snprintf(host, 300, "COMPILE: %.200s", err) ; return -2 ; }
  int r = banpat_match(&p, line, strlen(line), &a) ;
  if (r == 1) banaddr_fmt(host, &a) ; else strcpy(host, r ? "BADHOST" : "NOMATCH") ;
  banpat_free(&p) ;
  return r ;
}

static void t_pattern (void)
{
  int ok = 1 ;
  char host[300] ;
  static char const *const cases[][3] =
  {
    { sshd_fail, "host sshd[12]: Failed password for root from 203.0.113.5 port 52344 ssh2", "203.0.113.5" },
    { sshd_fail, "host sshd[12]: Failed password for invalid user 1.2.3.4 from 5.6.7.8 port 22 ssh2", "5.6.7.8" },
    { sshd_fail, "host sshd[12]: Failed password for invalid user x from 1.2.3.4 port 22 ssh2 from 5.6.7.8 port 22 ssh2", "5.6.7.8" },
    { sshd_fail, "host sshd[12]: Failed password for x from 1.2.3.4 port 22 from 2001:db8::9 port 22 ssh2", "2001:db8::9" },
    { sshd_fail, "host sshd[12]: Failed password for root from ::ffff:192.0.2.4 port 1 ssh2", "192.0.2.4" },
    { sshd_fail, "host sshd[12]: Failed password for root from 203.0.113.5 port 52344 ssh2 trailing", "NOMATCH" },
    { sshd_fail, "host foo[1]: host sshd[12]: Failed password for root from 203.0.113.5 port 52344 ssh2", "NOMATCH" },
    { sshd_fail, "host sshd[12]: Failed password for root from 999.1.1.1 port 52344 ssh2", "BADHOST" },
    { sshd_inv, "host sshd[12]: Invalid user admin from 203.0.113.5 port 52344", "203.0.113.5" },
    { sshd_inv, "host sshd[12]: Invalid user x from 1.2.3.4 port 22 from 5.6.7.8 port 22", "5.6.7.8" },
    { postfix, "mx postfix/smtpd[1234]: warning: unknown[203.0.113.5]: SASL LOGIN authentication failed: authentication failure", "203.0.113.5" },
    { postfix, "mx postfix/submission/smtpd[1234]: warning: a.example[2001:db8::5]: SASL PLAIN authentication failed: ", "2001:db8::5" },
    { postfix, "mx postfix/smtpd[1234]: warning: unknown[203.0.113.5]: SASL LOGIN authentication failed: x unknown[1.2.3.4]: SASL LOGIN authentication failed", "203.0.113.5" },
    /* stacked quantifiers make "x+" optional: x is in neither the
     * prefilter's literal nor the one after <HOST> */
    { "^ax\\/\\/+*y <HOST>$", "ax/y 1.2.3.4", "1.2.3.4" }, { "^q <HOST>;ab+*c$", "q 1.2.3.4;ac", "1.2.3.4" },
    { "^q <HOST>;ab+?c$", "q 1.2.3.4;ac", "1.2.3.4" }, { "^q <HOST>;ab+c$", "q 1.2.3.4;ac", "NOMATCH" },
  } ;
  for (size_t i = 0 ; i < sizeof cases / sizeof *cases ; i++)
  {
    pmatch(cases[i][0], cases[i][1], host) ;
    CHECK(!strcmp(host, cases[i][2]), "'%s' gave %s, want %s", cases[i][1], host, cases[i][2]) ;
  }
  result("banparse-patterns-host", ok, why) ;

  ok = 1 ;
  static char const *const badpat[] =
  {
    "Failed password for .* from <HOST> port [0-9]+$",       /* no ^ */
    "^Failed password for .* from <HOST>",                   /* no $ */
    "^Failed password for .* from <HOST> port\\$",           /* escaped $ */
    "^Failed password$",                                     /* no <HOST> */
    "^<HOST> <HOST>$",                                       /* two */
    "^from (<HOST>$",                                        /* bad regex */
    "^from [<HOST>$",                                        /* open bracket */
    "^from <HOST>\\",
  } ;
  for (size_t i = 0 ; i < sizeof badpat / sizeof *badpat ; i++)
  {
    banpat p ;
    char err[256] ;
    int r = banpat_compile(&p, badpat[i], 1, err, sizeof err) ;
    if (r) banpat_free(&p) ;
    CHECK(!r && err[0], "accepted bad failregex '%s'", badpat[i]) ;
  }
  result("banparse-patterns-validation", ok, why) ;

  ok = 1 ;
  {
    banpat p ;
    char err[256] ;
    banpat_compile(&p, sshd_fail, 1, err, sizeof err) ;
    /* every matching line contains the literal */
    char const *l = "host sshd[12]: Failed password for root from 203.0.113.5 port 52344 ssh2" ;
    CHECK(p.litlen >= 5 && memmem(l, strlen(l), p.lit, p.litlen), "prefilter literal '%.*s' not in a matching line", (int)p.litlen, p.lit) ;
    banpat_free(&p) ;
    banpat_compile(&p, "^a(b|c)d|e <HOST>$", 0, err, sizeof err) ;
    CHECK(!p.litlen, "literal taken across a top-level |: '%.*s'", (int)p.litlen, p.lit) ;
    banpat_free(&p) ;
    banpat_compile(&p, "^xyzzy?q <HOST>$", 0, err, sizeof err) ;
    CHECK(p.litlen == 4 && !memcmp(p.lit, "xyzz", 4), "optional char kept in literal: '%.*s'", (int)p.litlen, p.lit) ;
    banpat_free(&p) ;
  }
  result("banparse-patterns-prefilter", ok, why) ;
}

/* the fast <HOST> path (no groups reported) agrees with the full regex */
static void t_fastpath (void)
{
  int ok = 1 ;
  /* the last four: the suffix's DFA starts after the literal that
   * memcmp checked, never inside a quantified character */
  char const *pats[] = { sshd_fail, sshd_inv, postfix, "^a(b|c)* x=<HOST>:( y)?$", "^(z )?q <HOST>( |  )p.*$",
    "^q <HOST>\\]]+ p$", "^q <HOST>;ab*c( .*)?$", "^q <HOST>;a{2}b .*$", "^q <HOST>; p?x+ r$" } ;
  static size_t const skips[] = { 6, 6, 8, 0, 0, 1, 2, 1, 2 } ;
  char const *samples[] =
  {
    "host sshd[12]: Failed password for invalid user x from 1.2.3.4 port 22 ssh2",
    "host sshd[12]: Invalid user x from 1.2.3.4 port 22",
    "mx postfix/smtpd[1]: warning: unknown[198.51.100.7]: SASL LOGIN authentication failed: x",
    "abcb x=1.2.3.4: y", "z q 1.2.3.4  p zz",
    "q 1.2.3.4]]] p", "q 1.2.3.4;abbc zz", "q 1.2.3.4;aab x", "q 1.2.3.4; pxx r",
  } ;
  static char const *const frag[] =
  {
    "host sshd[12]: ", "Failed password for ", "invalid user ", "from ", "1.2.3.4", "2001:db8::5", " port 22",
    " ssh2", "Invalid user ", "x ", "mx postfix/smtpd[1]: warning: ", "unknown[", "198.51.100.7", "]: SASL LOGIN authentication failed",
    ": x", "ab", "c", " x=", ":", " y", "z ", "q ", "  ", " p", "abcdef", "::ffff:1.2.3.4", "a.b",
    "]", ";", "b", "a", "x", " r", " p", "\\", "1.2.3.4;",
  } ;
  srandom(99) ;
  unsigned int fastn = 0, tried = 0, matched = 0 ;
  for (size_t k = 0 ; k < sizeof pats / sizeof *pats ; k++)
  {
    banpat p ;
    char err[256] ;
    if (!banpat_compile(&p, pats[k], 1, err, sizeof err)) { CHECK(0, "compile %s: %s", pats[k], err) ; continue ; }
    fastn += p.fast ;
    if (k >= 5) CHECK(p.fast && p.postskip == skips[k] && p.dpost, "%s: fast %d postskip %zu, want %zu", pats[k], p.fast, p.postskip, skips[k]) ;
    else CHECK(!p.fast || (p.postskip == skips[k] && p.dpost), "%s: postskip %zu, want %zu", pats[k], p.postskip, skips[k]) ;
    banpat full = p ;
    full.fast = 0 ;
    for (int it = 0 ; it < 20000 && ok ; it++)
    {
      /* a matching line with fragments spliced in at random places */
      char line[512] ;
      size_t n = strlen(samples[k]) ;
      memcpy(line, samples[k], n + 1) ;
      int edits = random() % 4 ;
      for (int q = 0 ; q < edits ; q++)
      {
        char const *f = frag[random() % (sizeof frag / sizeof *frag)] ;
        size_t l = strlen(f), at = random() % (n + 1), cut = random() % 3 == 0 ? random() % 4 : 0 ;
        if (at + cut > n) cut = n - at ;
        if (n - cut + l >= sizeof line) break ;
        memmove(line + at + l, line + at + cut, n - at - cut + 1) ;
        memcpy(line + at, f, l) ;
        n = n - cut + l ;
      }
      banaddr a1, a2 ;
      memset(&a1, 0, sizeof a1) ; memset(&a2, 0, sizeof a2) ;
      int r1 = banpat_match(&p, line, n, &a1), r2 = banpat_match_regex(&full, line, n, &a2) ;
      tried++ ;
      matched += r2 == 1 ;
      CHECK(r1 == r2 && (r1 != 1 || banaddr_equal(&a1, &a2)), "pattern %s line '%s': fast %d, full %d", pats[k], line, r1, r2) ;
    }
    banpat_free(&p) ;
  }
  CHECK(fastn == 7, "fast path used by %u of 9 patterns (want the 3 shipped ones and the last 4)", fastn) ;
  printf("# fast path: %u lines, %u matches\n", tried, matched) ;
  result("banparse-patterns-fast-path-agrees", ok, why) ;
}

/* banre (the lazy DFA) gives regexec's answer, on patterns that use every
 * construct it takes and some it must refuse, over random strings */
static void t_banre (void)
{
  int ok = 1 ;
  static struct { char const *re ; int supported ; } const c[] =
  {
    { "^abc$", 1 }, { "abc", 1 }, { "^a(b|c)*d$", 1 }, { "a|b|cd", 1 }, { "^(a|b)c?$", 1 }, { "^a{2,3}b$", 1 },
    { "^a{2}$", 1 }, { "^a{,2}b$", 1 }, { "^(ab){1,}$", 1 }, { "^(ab){0,2}c$", 1 }, { "^[]a]+$", 1 }, { "^[^]a]+$", 1 },
    { "^[a-c-]+$", 1 }, { "^[-a]b$", 1 }, { "[[:digit:]]x", 1 }, { "^[[:alpha:][:space:]]+$", 1 }, { "^[^[:upper:]]*$", 1 },
    { "^.*a.*$", 1 }, { "^$", 1 }, { "$", 1 }, { "^", 1 }, { "a$", 1 }, { "^\\$", 1 }, { "^a\\.b$", 1 }, { "^a\\$$", 1 },
    { "\\(a\\)", 1 }, { "^(a*)*b$", 1 }, { "^(a|ab)(c|bcd)(d*)$", 1 }, { "^a+?b$", 1 }, { "^(a?){3}a{3}$", 1 }, { "x*", 1 },
    { "^[.]a$", 1 }, { "^a[b-d]{2}[^b-d]$", 1 }, { "(^a)", 0 }, { "^a|b$", 0 }, { "a\\<b", 0 }, { "\\bab", 0 }, { "(a)\\1", 0 },
    { "^a.*$", 1 }, { "a.*$", 1 }, { "^ab(: .*)?$", 1 }, { "^(a|b.*)$", 1 }, { "^a[^x]*$", 1 }, { "^(a.*|b.*)$", 1 },
    { "^a(.|\n)*$", 1 }, { "^.*$", 1 }, { ".*$", 1 },
    { "a|", 0 }, { "()a", 0 }, { "^[[.a.]]$", 0 }, { "^[[=a=]]$", 0 }, { "^x^a$", 0 }, { "a$b", 0 }, { "\\w+", 0 },
  } ;
  static char const alpha[] = "abcd-]. \\x1A\n" ;
  srandom(7) ;
  unsigned int tried = 0 ;
  for (size_t k = 0 ; k < sizeof c / sizeof *c ; k++)
  {
    regex_t rx ;
    banre b ;
    if (regcomp(&rx, c[k].re, REG_EXTENDED | REG_NOSUB)) { CHECK(0, "regcomp refused %s", c[k].re) ; continue ; }
    int have = banre_compile(&b, c[k].re, strlen(c[k].re)) ;
    CHECK(have == c[k].supported, "%s: banre_compile %d, want %d", c[k].re, have, c[k].supported) ;
    if (have)
      for (int it = 0 ; it < 3000 && ok ; it++)
      {
        char str[32] ;
        size_t n = random() % (it & 1 ? 10 : 30) ;
        for (size_t i = 0 ; i < n ; i++) str[i] = alpha[random() % (sizeof alpha - 1)] ;
        str[n] = 0 ;
        int want = !regexec(&rx, str, 0, 0, 0), got = banre_match(&b, str, n) ;
        tried++ ;
        CHECK(got == want, "%s on '%s': banre %d, regexec %d", c[k].re, str, got, want) ;
      }
    if (have) banre_free(&b) ;
    regfree(&rx) ;
  }
  {
    /* runs of fixed text (one memcmp in banre): lines near a match,
     * cut, spliced and retyped at random places */
    static struct { char const *re ; char const *sample ; } const runs[] =
    {
      { "^[^ ]+ postfix(/[-a-z0-9]+)*/smtpd\\[[0-9]+\\]: warning: [-._A-Za-z0-9]+\\[$", "mx postfix/submission/smtpd[12]: warning: unknown[" },
      { "^[-A-Z0-9]+ authentication failed(: .*)?$", "LOGIN authentication failed: authentication failure" },
      { "^abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH(xy|xz)?$", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHxz" },
      { "^(ab|ac)defgh(ij)*k$", "acdefghijijk" }, { "^a(bcd)+e$", "abcdbcdbcde" }, { "^ab?cdef[g-i]jk$", "acdefhjk" },
      { "^x{3}yyyy[^y]z{2,5}$", "xxxyyyyqzzz" },
      /* states that bytes keep them in (skipped a class look-up a byte) */
      { "^[0-9]+\\.[-a-z.]+\\[[0-9]+\\]x$", "12345.mail.example.net[4242]x" }, { "^(ab|a)+c$", "abababaac" },
      { "^x[^ ]+ [^x]+y$", "xabc.def ghijky" }, { "^[a-k]*[a-c]+(:[0-9]*)+$", "abcdefgabc:12:3::" },
    } ;
    static char const ralpha[] = "abcdefghijk xyz:[]/-.0123456789" ;
    for (size_t k = 0 ; k < sizeof runs / sizeof *runs ; k++)
    {
      regex_t rx ;
      banre b ;
      if (regcomp(&rx, runs[k].re, REG_EXTENDED | REG_NOSUB)) { CHECK(0, "regcomp refused %s", runs[k].re) ; continue ; }
      if (!banre_compile(&b, runs[k].re, strlen(runs[k].re))) { CHECK(0, "banre refused %s", runs[k].re) ; regfree(&rx) ; continue ; }
      for (int it = 0 ; it < 20000 && ok ; it++)
      {
        char str[160] ;
        size_t n = strlen(runs[k].sample) ;
        memcpy(str, runs[k].sample, n) ;
        int edits = random() % 3 ;
        for (int q = 0 ; q < edits ; q++)
        {
          size_t at = random() % (n + 1) ;
          int op = random() % 4 ;
          if (op == 0 && at < n) str[at] = ralpha[random() % (sizeof ralpha - 1)] ;
          else if (op == 1 && at < n) { memmove(str + at, str + at + 1, n - at - 1) ; n-- ; }
          else if (op == 2 && n + 8 < sizeof str)
          {
            size_t l = 1 + random() % 8, from = random() % (strlen(runs[k].sample) - 1) ;
            if (from + l > strlen(runs[k].sample)) l = strlen(runs[k].sample) - from ;
            memmove(str + at + l, str + at, n - at) ; memcpy(str + at, runs[k].sample + from, l) ; n += l ;
          }
          else n = at ;
        }
        str[n] = 0 ;
        int want = !regexec(&rx, str, 0, 0, 0), got = banre_match(&b, str, n) ;
        tried++ ;
        CHECK(got == want, "%s on '%s': banre %d, regexec %d", runs[k].re, str, got, want) ;
      }
      banre_free(&b) ;
      regfree(&rx) ;
    }
  }
  {
    /* a NUL after the state where every byte matches, or in a run of
     * bytes that keep a state: regexec decides */
    static struct { char const *re ; char const *s ; size_t n ; int want ; } const nul[] =
    {
      { "^a.*$", "ab\0c", 4, -1 }, { "^a.*$", "abcdefghij\0", 11, -1 }, { "^a.*$", "\0abc", 4, -1 },
      { "^ab(: .*)?$", "ab: x\0", 6, -1 }, { "^b.*$", "abcdefghijk\0", 12, 0 }, { "^a.*$", "abcdefghijklmnopqrs", 19, 1 },
      { "^[a-z]+x$", "abc\0defx", 8, -1 }, { "^[a-z]+x$", "abcdefx\0", 8, -1 }, { "^[a-z]+x$", "abcdefghijklmnopqrstuvwx", 24, 1 },
    } ;
    for (size_t k = 0 ; k < sizeof nul / sizeof *nul ; k++)
    {
      banre b ;
      if (!banre_compile(&b, nul[k].re, strlen(nul[k].re))) { CHECK(0, "banre_compile %s", nul[k].re) ; continue ; }
      int got = banre_match(&b, nul[k].s, nul[k].n) ;
      CHECK(got == nul[k].want, "%s on a string with NUL (case %zu): %d, want %d", nul[k].re, k, got, nul[k].want) ;
      banre_free(&b) ;
    }
  }
  printf("# banre: %u strings against regexec\n", tried) ;
  result("banre-agrees-with-regexec", ok, why) ;
}

/* every line of the files in $T_BANPARSE_LOGS (blank-separated), each
 * shipped pattern: the full path (literal prefilter, banre, split at
 * <HOST>) and regexec alone give the same answer and the same address */
static void t_logfiles (void)
{
  char const *list = getenv("T_BANPARSE_LOGS") ;
  char const *pats[] =
  {
    sshd_fail, sshd_inv, postfix,
    "^[^ ]+ smtpd: auth-fail ip=<HOST> user=[^ ]+ mech=[^ ]+$",
    "^\\s*smtpd: auth-fail ip=<HOST> user=\\S+ mech=\\S+$",
    "^.*(connect|helo) ip=<HOST>( .*)?$",
  } ;
  enum { NP = sizeof pats / sizeof *pats } ;
  banpat p[NP] ;
  int ok = 1 ;
  unsigned long lines = 0, m[NP] = { 0 } ;
  if (!list || !*list) return ;
  for (size_t k = 0 ; k < NP ; k++)
  {
    char err[256] ;
    if (!banpat_compile(p + k, pats[k], 1, err, sizeof err)) { CHECK(0, "compile %s: %s", pats[k], err) ; return ; }
  }
  char *copy = strdup(list), *save = 0 ;
  for (char *fn = strtok_r(copy, " ", &save) ; fn ; fn = strtok_r(0, " ", &save))
  {
    FILE *f = fopen(fn, "r") ;
    char line[8192] ;
    if (!f) { CHECK(0, "open %s", fn) ; continue ; }
    while (ok && fgets(line, sizeof line, f))
    {
      size_t n = strlen(line) ;
      if (n && line[n-1] == '\n') line[--n] = 0 ;
      int64_t t ;
      size_t off = banline_stamp(line, n, &t, 1795854614000LL) ;
      lines++ ;
      for (size_t k = 0 ; k < NP ; k++)
      {
        banaddr a1, a2 ;
        memset(&a1, 0, sizeof a1) ; memset(&a2, 0, sizeof a2) ;
        int r1 = banpat_match(p + k, line + off, n - off, &a1), r2 = banpat_match_regex(p + k, line + off, n - off, &a2) ;
        m[k] += r2 == 1 ;
        CHECK(r1 == r2 && (r1 != 1 || banaddr_equal(&a1, &a2)), "%.100s: pattern %.100s line '%.300s': %d, regexec %d", fn, pats[k], line, r1, r2) ;
      }
    }
    fclose(f) ;
  }
  free(copy) ;
  printf("# log files: %lu lines, matches per pattern:", lines) ;
  for (size_t k = 0 ; k < NP ; k++) { printf(" %lu", m[k]) ; banpat_free(p + k) ; }
  printf("\n") ;
  result("banparse-log-files-same-matches-as-regexec", ok, why) ;
}

static void t_duration (void)
{
  int ok = 1 ;
  static struct { char const *s ; long long ms ; } const c[] =
  {
    { "600", 600000 }, { "90s", 90000 }, { "500ms", 500 }, { "10m", 600000 }, { "1h", 3600000 },
    { "2d", 172800000 }, { "1w", 604800000 }, { "0", 0 },
  } ;
  for (size_t i = 0 ; i < sizeof c / sizeof *c ; i++)
  {
    int64_t ms = -1 ;
    CHECK(banparse_duration(c[i].s, strlen(c[i].s), &ms) && ms == c[i].ms, "%s gave %lld", c[i].s, (long long)ms) ;
  }
  static char const *const bad[] = { "", "s", "10x", "-1", "1.5h", "10 m", "99999999999999999999", "1mm" } ;
  for (size_t i = 0 ; i < sizeof bad / sizeof *bad ; i++)
  {
    int64_t ms ;
    CHECK(!banparse_duration(bad[i], strlen(bad[i]), &ms), "accepted '%s'", bad[i]) ;
  }
  result("banparse-durations", ok, why) ;
}

int main (void)
{
  t_addr() ;
  t_ucspi6() ;
  t_tcprules() ;
  t_stamp() ;
  t_kv() ;
  t_pattern() ;
  t_fastpath() ;
  t_banre() ;
  t_logfiles() ;
  t_duration() ;
  return 0 ;
}
