/* t-rewrite: common/rewrite.c against rewrite.h: envnoathost for an
 * address without '@', control/percenthack (exact domains, the last '%',
 * again and again, nothing for an unlisted domain), control/virtualdomains
 * in qmail-send's order (the whole address, the domain, the ".suffix"
 * entries from the longest, the empty key; an empty prefix is an
 * exception; any case) and the "prefix-user@domain" it makes. */

#include <stdio.h>
#include <string.h>

#include <skalibs/stralloc.h>

#include "rewrite.h"

char const *PROG = "t-rewrite" ;

static void check (char const *name, int ok, char const *why)
{
  if (ok) printf("PASS rewrite-%s\n", name) ;
  else printf("FAIL rewrite-%s: %s\n", name, why) ;
  fflush(stdout) ;
}

static void t_noat (char const *name, char const *in, char const *host, int want, char const *out)
{
  stralloc a = STRALLOC_ZERO ;
  char why[300] ;
  if (!stralloc_copyb(&a, in, strlen(in) + 1)) return ;
  a.len-- ;
  int r = rewrite_noat(&a, host) ;
  snprintf(why, sizeof why, "returned %d (want %d), got %s", r, want, a.s) ;
  check(name, r == want && !strcmp(a.s, out) && a.len == strlen(out), why) ;
  stralloc_free(&a) ;
}

/* percenthack list: one.test, Two.Test */
static char const phlist[] = "one.test\0Two.Test\0" ;

static void t_percent (char const *name, char const *in, int want, char const *out)
{
  stralloc a = STRALLOC_ZERO ;
  char why[300] ;
  if (!stralloc_copyb(&a, in, strlen(in) + 1)) return ;
  a.len-- ;
  int r = rewrite_percent(phlist, sizeof phlist - 1, &a) ;
  snprintf(why, sizeof why, "returned %d (want %d), got %s", r, want, a.s) ;
  check(name, r == want && !strcmp(a.s, out) && a.len == strlen(out), why) ;
  stralloc_free(&a) ;
}

static char const vlist[] =
  "virt.test:v\0"
  "joe@virt.test:joey\0"
  "not.virt.test:\0"
  ".virt.test:sub\0"
  ".deep.virt.test:deep\0"
  "Case.Test:cased\0"
  "bad-no-colon\0" ;
static char const vcatch[] = "other.test:o\0:catch\0" ;

static void t_vdom (char const *name, char const *list, size_t listlen, char const *addr, int want, char const *out)
{
  char const *prefix = 0 ;
  size_t plen = 0 ;
  char why[300] ;
  stralloc sa = STRALLOC_ZERO ;
  int r = rewrite_vdomain(list, listlen, addr, strlen(addr), &prefix, &plen) ;
  if (r == 1 && !rewrite_vdomain_local(&sa, prefix, plen, addr, strlen(addr))) return ;
  snprintf(why, sizeof why, "returned %d (want %d), got %s", r, want, r == 1 ? sa.s : "-") ;
  check(name, r == want && (r != 1 || (!strcmp(sa.s, out) && sa.len == strlen(out))), why) ;
  stralloc_free(&sa) ;
}

int main (void)
{
  t_noat("noat", "joe", "host.test", 1, "joe@host.test") ;
  t_noat("noat-has-at", "joe@x.test", "host.test", 0, "joe@x.test") ;
  t_noat("noat-empty", "", "host.test", 1, "@host.test") ;

  t_percent("percent", "joe%far.test@one.test", 1, "joe@far.test") ;
  t_percent("percent-case", "joe%far.test@TWO.test", 1, "joe@far.test") ;
  t_percent("percent-last", "a%b%far.test@one.test", 1, "a%b@far.test") ;
  t_percent("percent-again", "a%two.test%one.test@one.test", 1, "a@two.test") ;
  t_percent("percent-unlisted", "joe%far.test@three.test", 0, "joe%far.test@three.test") ;
  t_percent("percent-no-percent", "joe@one.test", 0, "joe@one.test") ;
  t_percent("percent-subdomain-not", "joe%far.test@x.one.test", 0, "joe%far.test@x.one.test") ;

  t_vdom("vdom-domain", vlist, sizeof vlist - 1, "info@virt.test", 1, "v-info@virt.test") ;
  t_vdom("vdom-address", vlist, sizeof vlist - 1, "joe@virt.test", 1, "joey-joe@virt.test") ;
  t_vdom("vdom-address-case", vlist, sizeof vlist - 1, "JOE@Virt.Test", 1, "joey-JOE@Virt.Test") ;
  t_vdom("vdom-exception", vlist, sizeof vlist - 1, "a@not.virt.test", 0, 0) ;
  t_vdom("vdom-wild", vlist, sizeof vlist - 1, "a@x.virt.test", 1, "sub-a@x.virt.test") ;
  t_vdom("vdom-wild-longest", vlist, sizeof vlist - 1, "a@y.deep.virt.test", 1, "deep-a@y.deep.virt.test") ;
  t_vdom("vdom-wild-not-self", vlist, sizeof vlist - 1, "a@deep.virt.test", 1, "sub-a@deep.virt.test") ;
  t_vdom("vdom-case", vlist, sizeof vlist - 1, "a@CASE.test", 1, "cased-a@CASE.test") ;
  t_vdom("vdom-none", vlist, sizeof vlist - 1, "a@elsewhere.test", 0, 0) ;
  t_vdom("vdom-suffix-not-label", vlist, sizeof vlist - 1, "a@xvirt.test", 0, 0) ;
  t_vdom("vdom-no-at", vlist, sizeof vlist - 1, "virt.test", 0, 0) ;
  t_vdom("vdom-empty-list", "", 0, "a@virt.test", 0, 0) ;
  t_vdom("vdom-catchall", vcatch, sizeof vcatch - 1, "a@any.test", 1, "catch-a@any.test") ;
  t_vdom("vdom-catchall-last", vcatch, sizeof vcatch - 1, "a@other.test", 1, "o-a@other.test") ;
  return 0 ;
}
