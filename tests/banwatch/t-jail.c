/* Unit tests for banwatch's configuration and jail arithmetic
 * (banwatch/config.c, jail.c, bans.c): defaults, the sliding findtime
 * window, IPv6 counted per /64, ignoreip, ban times growing with the
 * history up to bantime.max, expiry.  Runs in replay mode (nothing
 * journaled or applied).  Prints "PASS name" or "FAIL name: why". */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "banwatch/banwatch.h"

static int failed ;

static void result (char const *name, int ok, char const *why)
{
  if (ok) printf("PASS %s\n", name) ;
  else { printf("FAIL %s: %s\n", name, why) ; failed = 1 ; }
}

static banaddr ip (char const *s)
{
  banaddr b ;
  if (!banaddr_scanip(&b, s, strlen(s))) { printf("FAIL setup: bad address %s\n", s) ; exit(1) ; }
  return b ;
}

static banaddr net (char const *s)
{
  banaddr b ;
  if (!banaddr_scancidr(&b, s, strlen(s))) { printf("FAIL setup: bad network %s\n", s) ; exit(1) ; }
  return b ;
}

/* a failure of a in jail j at time t (the clock follows) */
static void fail_at (unsigned int j, char const *a, int64_t t)
{
  banaddr b = ip(a) ;
  state.now = t ;
  jail_fail(j, &b, t, 0) ;
}

static char const conftext[] =
  "[global]\n"
  "ignoreip = 10.0.0.0/8\n"
  "history = 1d\n"
  "\n"
  "[jail auth]\n"
  "filter = yubin-auth\n"
  "maxretry = 3\n"
  "findtime = 10s\n"
  "bantime = 100s\n"
  "bantime.max = 350s\n"
  "\n"
  "[jail defaults]\n"
  "filter = yubin-abuse\n"
  "\n"
  "[jail recidive]\n"
  "filter = recidive\n" ;

int main (void)
{
  char dir[] = "/tmp/t-jail.XXXXXX", fn[64], why[256] ;
  int64_t t0 = 1700000000000LL ;
  if (!mkdtemp(dir)) { printf("FAIL setup: mkdtemp\n") ; return 1 ; }
  snprintf(fn, sizeof fn, "%s/banwatch.conf", dir) ;
  {
    FILE *f = fopen(fn, "w") ;
    if (!f || fputs(conftext, f) < 0 || fclose(f)) { printf("FAIL setup: write %s\n", fn) ; return 1 ; }
  }
  addr_hash_seed() ;
  conf.confdir = dir ;
  state.replaying = 1 ;
  state.now = state.wallnow = t0 ;
  conf_load() ;
  unlink(fn) ;
  rmdir(dir) ;

  unsigned int ja = jail_byname("auth"), jd = jail_byname("defaults"), jr = jail_byname("recidive") ;
  result("config-jails", genalloc_len(jail, &conf.jails) == 3 && ja == 0 && jd == 1 && jr == 2
    && jail_byname("nope") == JAIL_MANUAL, "jails not read in order") ;
  {
    jail const *a = JAIL(ja) ;
    snprintf(why, sizeof why, "maxretry=%u findtime=%lld bantime=%lld max=%lld", a->maxretry,
      (long long)a->findtime, (long long)a->bantime, (long long)a->bantime_max) ;
    result("config-values", a->maxretry == 3 && a->findtime == 10000 && a->bantime == 100000
      && a->bantime_max == 350000 && conf.history_ms == 86400000, why) ;
  }
  {
    jail const *d = JAIL(jd), *r = JAIL(jr) ;
    result("config-defaults", d->maxretry == 5 && d->findtime == 600000 && d->bantime == 3600000
      && d->bantime_max == 7 * 86400000LL && d->factor == 2 && d->prefix4 == 32 && d->prefix6 == 64
      && FILTER(d->filter)->type == F_KV, "a default is wrong") ;
    result("config-recidive-defaults", r->maxretry == 3 && r->findtime == 86400000 && r->bantime == 7 * 86400000LL
      && r->factor == 1 && FILTER(r->filter)->type == F_RECIDIVE && !genalloc_len(char *, &r->logpaths),
      "a recidive default is wrong") ;
  }

  /* 3 failures, but not within 10 s: no ban; one more inside: ban */
  fail_at(ja, "192.0.2.1", t0) ;
  fail_at(ja, "192.0.2.1", t0 + 5000) ;
  fail_at(ja, "192.0.2.1", t0 + 11000) ;
  {
    banaddr k = ip("192.0.2.1") ;
    result("window-slides-no-ban", !ban_find(&k), "banned with failures 11 s apart") ;
    fail_at(ja, "192.0.2.1", t0 + 12000) ;
    ban const *b = ban_find(&k) ;
    result("window-ban", b && b->jail == ja && b->until == t0 + 12000 + 100000, "not banned, or wrong until") ;
  }

  /* IPv6: counted per /64 */
  fail_at(ja, "2001:db8::1", t0 + 20000) ;
  fail_at(ja, "2001:db8::2", t0 + 20001) ;
  fail_at(ja, "2001:db8::3:4", t0 + 20002) ;
  {
    banaddr n = net("2001:db8::/64"), one = ip("2001:db8::1") ;
    result("ipv6-per-64", ban_find(&n) && !ban_find(&one), "the /64 is not banned") ;
  }

  /* ignoreip: never counted */
  for (int i = 0 ; i < 5 ; i++) fail_at(ja, "10.1.2.3", t0 + 30000 + i) ;
  {
    banaddr k = ip("10.1.2.3") ;
    result("ignoreip", !ban_find(&k) && JAIL(ja)->nignored == 5, "an ignored address was counted") ;
  }

  /* ban times grow with the history: 100 s, 200 s, then capped at 350 s;
   * the third ban in a day is recidive's (7 d) */
  {
    banaddr k = ip("198.51.100.7") ;
    int64_t t = t0 + 100000, want[2] = { 100000, 200000 } ;
    int ok = 1 ;
    for (int round = 0 ; round < 2 && ok ; round++)
    {
      for (int i = 0 ; i < 3 ; i++) fail_at(ja, "198.51.100.7", t + i) ;
      ban const *b = ban_find(&k) ;
      if (!b || b->until - (t + 2) != want[round])
      {
        snprintf(why, sizeof why, "round %d: bantime %lld, want %lld", round,
          b ? (long long)(b->until - (t + 2)) : -1LL, (long long)want[round]) ;
        ok = 0 ;
        break ;
      }
      t = b->until + 1 ;
      state.now = t ;
      bans_expire() ;
      if (ban_find(&k)) { snprintf(why, sizeof why, "round %d: not expired", round) ; ok = 0 ; }
    }
    result("bantime-grows", ok, why) ;
    unsigned int prior = 0 ;
    int64_t d = jail_bantime(JAIL(ja), &k, &prior) ;
    snprintf(why, sizeof why, "bantime %lld prior %u, want 350000 and 2", (long long)d, prior) ;
    result("bantime-max", d == 350000 && prior == 2, why) ;
    for (int i = 0 ; i < 3 ; i++) fail_at(ja, "198.51.100.7", t + i) ;
    ban const *b = ban_find(&k) ;
    result("recidive", b && b->jail == jr && b->until - (t + 2) == 7 * 86400000LL, "no 7 d recidive ban after three bans") ;
  }

  /* jail_bantime without history: the jail's bantime */
  {
    banaddr k = ip("203.0.113.9") ;
    unsigned int prior = 9 ;
    int64_t d = jail_bantime(JAIL(ja), &k, &prior) ;
    result("bantime-no-history", d == 100000 && prior == 0, "wrong ban time for a first offence") ;
  }

  /* every ban expires */
  state.now = t0 + 400LL * 86400000 ;
  bans_expire() ;
  result("expiry", bantab.nactive == 0 && bans_next() < 0, "bans left after expiry") ;
  return failed ;
}
