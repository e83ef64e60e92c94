/* t-address: common/address.c against address.h and RFC 5321.
 *
 * Checks address_parse_path on a table of paths (exact canonical output,
 * exact error code, exact offset of the ESMTP parameters): dot-strings,
 * quoted strings and their canonical form, source routes, the relay tricks
 * (user%other@ours, "user@other"@ours, @ours:user@other, user@other@ours),
 * domains and address literals, UTF-8 with and without SMTPUTF8, control
 * characters and NULs, the 64/255/256 octet limits, <> and postmaster.
 * Every input is also parsed from an exact-size heap copy and at every
 * prefix length, so ASan catches any read past the end.  Also
 * address_split, address_check_domain and address_strerror. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>

#include "smtpd/address.h"

char const *PROG = "t-address" ;

static unsigned int failures ;

static void pass (char const *name)
{
  printf("PASS address-%s\n", name) ;
}

static void fail (char const *name, char const *fmt, char const *a, char const *b)
{
  failures++ ;
  printf("FAIL address-%s: ", name) ;
  printf(fmt, a, b) ;
  printf("\n") ;
}

static char const *ename (enum address_error e)
{
  switch (e)
  {
    case ADDR_OK : return "OK" ;
    case ADDR_SYNTAX : return "SYNTAX" ;
    case ADDR_TOOLONG : return "TOOLONG" ;
    case ADDR_NODOMAIN : return "NODOMAIN" ;
    case ADDR_BADDOMAIN : return "BADDOMAIN" ;
  }
  return "?" ;
}

#define OK ADDR_OK
#define SYN ADDR_SYNTAX
#define LONG ADDR_TOOLONG
#define NODOM ADDR_NODOMAIN
#define BAD ADDR_BADDOMAIN
#define ALL ((size_t)-1)   /* rest: at the end of the input */

struct pcase
{
  char const *name ;
  char const *in ;
  size_t inlen ;          /* 0: strlen(in) */
  int allow_null ;
  int utf8 ;
  enum address_error want ;
  char const *out ;       /* for OK and NODOMAIN */
  size_t rest ;           /* for OK and NODOMAIN; ALL = inlen */
} ;

static struct pcase const pcases[] =
{
  /* plain paths */
  { "simple", "<alice@example.com>", 0, 0, 0, OK, "alice@example.com", ALL },
  { "leading-space", "  <a@b.example>", 0, 0, 0, OK, "a@b.example", ALL },
  { "domain-lowercased", "<Alice.Smith@Mail.EXAMPLE.Com>", 0, 0, 0, OK, "Alice.Smith@mail.example.com", ALL },
  { "params", "<a@b.example> SIZE=100 BODY=8BITMIME", 0, 0, 0, OK, "a@b.example", 14 },
  { "params-spaces", "<a@b.example>   SIZE=1", 0, 0, 0, OK, "a@b.example", 16 },
  { "trailing-spaces", "<a@b.example>   ", 0, 0, 0, OK, "a@b.example", ALL },
  { "atext-all", "<!#$%&'*+-/=?^_`{|}~@x.example>", 0, 0, 0, OK, "!#$%&'*+-/=?^_`{|}~@x.example", ALL },
  { "dots", "<a.b.c@x.example>", 0, 0, 0, OK, "a.b.c@x.example", ALL },
  { "digits-domain", "<a@123.example>", 0, 0, 0, OK, "a@123.example", ALL },
  { "single-label", "<a@localhost>", 0, 0, 0, OK, "a@localhost", ALL },
  { "hyphen-inside", "<a@x-y--z.example>", 0, 0, 0, OK, "a@x-y--z.example", ALL },
  { "leading-dot", "<.a@x.example>", 0, 0, 0, SYN, 0, 0 },
  { "trailing-dot", "<a.@x.example>", 0, 0, 0, SYN, 0, 0 },
  { "double-dot", "<a..b@x.example>", 0, 0, 0, SYN, 0, 0 },
  { "empty-local", "<@x.example>", 0, 0, 0, SYN, 0, 0 },

  /* null path */
  { "null-allowed", "<>", 0, 1, 0, OK, "", ALL },
  { "null-params", "<> SIZE=0", 0, 1, 0, OK, "", 3 },
  { "null-refused", "<>", 0, 0, 0, SYN, 0, 0 },
  { "null-space-inside", "< >", 0, 1, 0, SYN, 0, 0 },
  { "null-garbage-after", "<>x", 0, 1, 0, SYN, 0, 0 },
  { "empty", "", 0, 1, 0, SYN, 0, 0 },
  { "only-spaces", "   ", 0, 1, 0, SYN, 0, 0 },

  /* quoted local parts and their canonical form */
  { "quoted-unneeded", "<\"abc\"@x.example>", 0, 0, 0, OK, "abc@x.example", ALL },
  { "quoted-unneeded-dots", "<\"a.b\"@x.example>", 0, 0, 0, OK, "a.b@x.example", ALL },
  { "quoted-space", "<\"a b\"@x.example>", 0, 0, 0, OK, "\"a b\"@x.example", ALL },
  { "quoted-double-dot", "<\"a..b\"@x.example>", 0, 0, 0, OK, "\"a..b\"@x.example", ALL },
  { "quoted-leading-dot", "<\".a\"@x.example>", 0, 0, 0, OK, "\".a\"@x.example", ALL },
  { "quoted-pair-plain", "<\"\\a\\b\"@x.example>", 0, 0, 0, OK, "ab@x.example", ALL },
  { "quoted-pair-quote", "<\"a\\\"b\"@x.example>", 0, 0, 0, OK, "\"a\\\"b\"@x.example", ALL },
  { "quoted-pair-backslash", "<\"a\\\\b\"@x.example>", 0, 0, 0, OK, "\"a\\\\b\"@x.example", ALL },
  { "quoted-pair-space", "<\"a\\ b\"@x.example>", 0, 0, 0, OK, "\"a b\"@x.example", ALL },
  { "quoted-specials", "<\"a(b)<c>,d;e:f[g]\"@x.example>", 0, 0, 0, OK, "\"a(b)<c>,d;e:f[g]\"@x.example", ALL },
  { "quoted-empty", "<\"\"@x.example>", 0, 0, 0, SYN, 0, 0 },
  { "quoted-unbalanced", "<\"abc@x.example>", 0, 0, 0, SYN, 0, 0 },
  { "quoted-tab", "<\"a\tb\"@x.example>", 0, 0, 0, SYN, 0, 0 },
  { "quoted-ctl", "<\"a\001b\"@x.example>", 0, 0, 0, SYN, 0, 0 },
  { "quoted-cr", "<\"a\rb\"@x.example>", 0, 0, 0, SYN, 0, 0 },
  { "quoted-pair-ctl", "<\"a\\\nb\"@x.example>", 0, 0, 0, SYN, 0, 0 },
  { "quoted-del", "<\"a\177b\"@x.example>", 0, 0, 0, SYN, 0, 0 },
  { "quoted-nul", "<\"a\0b\"@x.example>", 17, 0, 0, SYN, 0, 0 },
  { "quoted-8bit-no-utf8", "<\"\xc3\xa4 b\"@x.example>", 0, 0, 0, SYN, 0, 0 },
  { "quoted-utf8", "<\"\xc3\xa4 b\"@x.example>", 0, 0, 1, OK, "\"\xc3\xa4 b\"@x.example", ALL },
  { "quoted-utf8-unneeded", "<\"\xc3\xa4\"@x.example>", 0, 0, 1, OK, "\xc3\xa4@x.example", ALL },
  { "quoted-then-garbage", "<\"a\"b@x.example>", 0, 0, 0, SYN, 0, 0 },

  /* source routes (dropped) */
  { "route-one", "<@a.example:u@c.example>", 0, 0, 0, OK, "u@c.example", ALL },
  { "route-two", "<@a.example,@b.example:u@c.example>", 0, 0, 0, OK, "u@c.example", ALL },
  { "route-params", "<@a.example:u@c.example> SIZE=5", 0, 0, 0, OK, "u@c.example", 25 },
  { "route-empty-domain", "<@:u@x.example>", 0, 0, 0, BAD, 0, 0 },
  { "route-bad-domain", "<@-a.example:u@x.example>", 0, 0, 0, BAD, 0, 0 },
  { "route-no-at", "<@a.example,b.example:u@x.example>", 0, 0, 0, SYN, 0, 0 },
  { "route-no-colon", "<@a.example u@x.example>", 0, 0, 0, SYN, 0, 0 },
  { "route-no-mailbox", "<@a.example:>", 0, 0, 0, SYN, 0, 0 },
  { "route-unterminated", "<@a.example", 0, 0, 0, SYN, 0, 0 },
  { "route-literal", "<@[192.0.2.1]:u@x.example>", 0, 0, 0, OK, "u@x.example", ALL },

  /* relay tricks: each parses so that the caller can refuse it */
  { "relay-percent", "<user%other.example@ours.example>", 0, 0, 0, OK, "user%other.example@ours.example", ALL },
  { "relay-quoted-at", "<\"user@other.example\"@ours.example>", 0, 0, 0, OK, "\"user@other.example\"@ours.example", ALL },
  { "relay-route", "<@ours.example:user@other.example>", 0, 0, 0, OK, "user@other.example", ALL },
  { "relay-double-at", "<user@other.example@ours.example>", 0, 0, 0, SYN, 0, 0 },
  { "relay-double-at-bare", "user@other.example@ours.example", 0, 0, 0, SYN, 0, 0 },
  { "relay-bang", "<other.example!user@ours.example>", 0, 0, 0, OK, "other.example!user@ours.example", ALL },

  /* bare mailboxes (qmail compatibility) */
  { "bare", "a@b.example", 0, 0, 0, OK, "a@b.example", ALL },
  { "bare-leading-space", " a@b.example", 0, 0, 0, OK, "a@b.example", ALL },
  { "bare-params", "a@b.example SIZE=10 BODY=7BIT", 0, 0, 0, OK, "a@b.example", 12 },
  { "bare-trailing-space", "a@b.example  ", 0, 0, 0, OK, "a@b.example", ALL },
  { "bare-quoted", "\"a b\"@x.example SIZE=1", 0, 0, 0, OK, "\"a b\"@x.example", 16 },
  { "bare-second-path", "a@b.example <c@d.example>", 0, 0, 0, SYN, 0, 0 },
  { "bare-second-mailbox", "a@b.example c@d.example", 0, 0, 0, SYN, 0, 0 },
  { "bare-param-empty-value", "a@b.example SIZE=", 0, 0, 0, SYN, 0, 0 },
  { "bare-param-double-eq", "a@b.example A=b=c", 0, 0, 0, SYN, 0, 0 },
  { "bare-param-ctl", "a@b.example A=\001", 0, 0, 0, SYN, 0, 0 },
  { "bare-gt", "a@b.example>", 0, 0, 0, SYN, 0, 0 },
  { "bare-route", "@a.example:u@b.example", 0, 0, 0, SYN, 0, 0 },
  { "bare-null", "<", 0, 1, 0, SYN, 0, 0 },

  /* structure */
  { "no-close", "<a@b.example", 0, 0, 0, SYN, 0, 0 },
  { "double-brackets", "<<a@b.example>>", 0, 0, 0, SYN, 0, 0 },
  { "garbage-after-gt", "<a@b.example>x", 0, 0, 0, SYN, 0, 0 },
  { "second-gt", "<a@b.example>>", 0, 0, 0, SYN, 0, 0 },
  { "space-in-local", "<a b@c.example>", 0, 0, 0, SYN, 0, 0 },
  { "space-before-at", "<a @c.example>", 0, 0, 0, SYN, 0, 0 },
  { "space-after-at", "<a@ c.example>", 0, 0, 0, BAD, 0, 0 },
  { "space-before-gt", "<a@c.example >", 0, 0, 0, SYN, 0, 0 },
  { "space-after-lt", "< a@c.example>", 0, 0, 0, SYN, 0, 0 },
  { "nul-in-local", "<a\0b@c.example>", 15, 0, 0, SYN, 0, 0 },
  { "nul-in-domain", "<a@b\0c.example>", 15, 0, 0, SYN, 0, 0 },
  { "nul-after-gt", "<a@b.example>\0", 14, 0, 0, SYN, 0, 0 },
  { "nul-leading", "\0<a@b.example>", 14, 0, 0, SYN, 0, 0 },
  { "cr-in-local", "<a\rb@c.example>", 0, 0, 0, SYN, 0, 0 },
  { "lf-in-domain", "<a@c.example\n>", 0, 0, 0, SYN, 0, 0 },
  { "tab-in-local", "<a\tb@c.example>", 0, 0, 0, SYN, 0, 0 },
  { "del-in-local", "<a\177b@c.example>", 0, 0, 0, SYN, 0, 0 },
  { "specials-in-local", "<a(b)@c.example>", 0, 0, 0, SYN, 0, 0 },
  { "comma-in-local", "<a,b@c.example>", 0, 0, 0, SYN, 0, 0 },
  { "backslash-unquoted", "<a\\b@c.example>", 0, 0, 0, SYN, 0, 0 },

  /* postmaster and other mailboxes without a domain */
  { "postmaster", "<postmaster>", 0, 0, 0, NODOM, "postmaster", ALL },
  { "postmaster-case", "<PostMaster>", 0, 0, 0, NODOM, "PostMaster", ALL },
  { "postmaster-quoted", "<\"postmaster\">", 0, 0, 0, NODOM, "postmaster", ALL },
  { "postmaster-bare", "postmaster SIZE=3", 0, 0, 0, NODOM, "postmaster", 11 },
  { "postmaster-domain", "<Postmaster@x.example>", 0, 0, 0, OK, "Postmaster@x.example", ALL },
  { "nodomain-other", "<alice>", 0, 0, 0, SYN, 0, 0 },
  { "nodomain-postmasters", "<postmasters>", 0, 0, 0, SYN, 0, 0 },
  { "empty-domain", "<a@>", 0, 0, 0, BAD, 0, 0 },

  /* domains */
  { "domain-leading-hyphen", "<a@-x.example>", 0, 0, 0, BAD, 0, 0 },
  { "domain-trailing-hyphen", "<a@x-.example>", 0, 0, 0, BAD, 0, 0 },
  { "domain-last-hyphen", "<a@x.example->", 0, 0, 0, BAD, 0, 0 },
  { "domain-double-dot", "<a@x..example>", 0, 0, 0, BAD, 0, 0 },
  { "domain-leading-dot", "<a@.x.example>", 0, 0, 0, BAD, 0, 0 },
  { "domain-trailing-dot", "<a@x.example.>", 0, 0, 0, BAD, 0, 0 },
  { "domain-underscore", "<a@x_y.example>", 0, 0, 0, BAD, 0, 0 },
  { "domain-8bit-no-utf8", "<a@ex\xc3\xa4mple.example>", 0, 0, 0, BAD, 0, 0 },
  { "domain-utf8", "<a@ex\xc3\xa4mple.EXAMPLE>", 0, 0, 1, OK, "a@ex\xc3\xa4mple.example", ALL },
  { "domain-utf8-upper-kept", "<a@\xc3\x84.example>", 0, 0, 1, OK, "a@\xc3\x84.example", ALL },
  { "domain-utf8-overlong", "<a@\xc0\xae.example>", 0, 0, 1, BAD, 0, 0 },
  { "domain-alabel", "<a@xn--exmple-cua.example>", 0, 0, 0, OK, "a@xn--exmple-cua.example", ALL },

  /* address literals */
  { "ipv4", "<a@[192.0.2.1]>", 0, 0, 0, OK, "a@[192.0.2.1]", ALL },
  { "ipv4-zeros", "<a@[192.000.002.010]>", 0, 0, 0, OK, "a@[192.0.2.10]", ALL },
  { "ipv4-edges", "<a@[0.0.0.0]>", 0, 0, 0, OK, "a@[0.0.0.0]", ALL },
  { "ipv4-255", "<a@[255.255.255.255]>", 0, 0, 0, OK, "a@[255.255.255.255]", ALL },
  { "ipv4-256", "<a@[256.1.1.1]>", 0, 0, 0, BAD, 0, 0 },
  { "ipv4-four-digits", "<a@[0001.1.1.1]>", 0, 0, 0, BAD, 0, 0 },
  { "ipv4-three-parts", "<a@[1.2.3]>", 0, 0, 0, BAD, 0, 0 },
  { "ipv4-five-parts", "<a@[1.2.3.4.5]>", 0, 0, 0, BAD, 0, 0 },
  { "ipv4-empty-part", "<a@[1..3.4]>", 0, 0, 0, BAD, 0, 0 },
  { "ipv4-trailing-dot", "<a@[1.2.3.4.]>", 0, 0, 0, BAD, 0, 0 },
  { "ipv4-sign", "<a@[+1.2.3.4]>", 0, 0, 0, BAD, 0, 0 },
  { "ipv4-hex", "<a@[0x7f.0.0.1]>", 0, 0, 0, BAD, 0, 0 },
  { "literal-unclosed", "<a@[1.2.3.4>", 0, 0, 0, SYN, 0, 0 },
  { "literal-unopened", "<a@1.2.3.4]>", 0, 0, 0, SYN, 0, 0 },
  { "literal-nested", "<a@[[1.2.3.4]]>", 0, 0, 0, BAD, 0, 0 },
  { "literal-empty", "<a@[]>", 0, 0, 0, BAD, 0, 0 },
  { "literal-space", "<a@[1.2.3.4 ]>", 0, 0, 0, BAD, 0, 0 },
  { "literal-then-text", "<a@[1.2.3.4]x>", 0, 0, 0, BAD, 0, 0 },
  { "literal-bare", "a@[192.0.2.1] SIZE=1", 0, 0, 0, OK, "a@[192.0.2.1]", 14 },
  { "ipv6", "<a@[IPv6:2001:db8::1]>", 0, 0, 0, OK, "a@[IPv6:2001:db8::1]", ALL },
  { "ipv6-case", "<a@[ipv6:2001:DB8::A]>", 0, 0, 0, OK, "a@[IPv6:2001:db8::a]", ALL },
  { "ipv6-full", "<a@[IPv6:2001:db8:0:0:0:0:0:1]>", 0, 0, 0, OK, "a@[IPv6:2001:db8:0:0:0:0:0:1]", ALL },
  { "ipv6-v4", "<a@[IPv6:::ffff:192.0.2.1]>", 0, 0, 0, OK, "a@[IPv6:::ffff:192.0.2.1]", ALL },
  { "ipv6-bad-hex", "<a@[IPv6:2001:db8::g]>", 0, 0, 0, BAD, 0, 0 },
  { "ipv6-two-gaps", "<a@[IPv6:1::2::3]>", 0, 0, 0, BAD, 0, 0 },
  { "ipv6-is-ipv4", "<a@[IPv6:192.0.2.1]>", 0, 0, 0, BAD, 0, 0 },
  { "ipv6-no-tag", "<a@[2001:db8::1]>", 0, 0, 0, BAD, 0, 0 },
  { "ipv6-empty", "<a@[IPv6:]>", 0, 0, 0, BAD, 0, 0 },
  { "ipv6-overlong", "<a@[IPv6:0000:0000:0000:0000:0000:0000:0000:0000:0000]>", 0, 0, 0, BAD, 0, 0 },
  { "ipv6-zone", "<a@[IPv6:fe80::1%eth0]>", 0, 0, 0, BAD, 0, 0 },
  { "general-literal", "<a@[x-tag:something]>", 0, 0, 0, BAD, 0, 0 },
  { "general-literal-ipv5", "<a@[IPv5:1.2.3.4]>", 0, 0, 0, BAD, 0, 0 },

  /* UTF-8 in local parts */
  { "utf8-local-refused", "<\xc3\xa4@x.example>", 0, 0, 0, SYN, 0, 0 },
  { "utf8-local", "<\xc3\xa4\xe2\x82\xac\xf0\x9f\x93\xae@x.example>", 0, 0, 1, OK, "\xc3\xa4\xe2\x82\xac\xf0\x9f\x93\xae@x.example", ALL },
  { "utf8-overlong-2", "<\xc0\xaf@x.example>", 0, 0, 1, SYN, 0, 0 },
  { "utf8-overlong-3", "<\xe0\x80\xaf@x.example>", 0, 0, 1, SYN, 0, 0 },
  { "utf8-overlong-4", "<\xf0\x80\x80\xaf@x.example>", 0, 0, 1, SYN, 0, 0 },
  { "utf8-surrogate", "<\xed\xa0\x80@x.example>", 0, 0, 1, SYN, 0, 0 },
  { "utf8-too-big", "<\xf4\x90\x80\x80@x.example>", 0, 0, 1, SYN, 0, 0 },
  { "utf8-f5", "<\xf5\x80\x80\x80@x.example>", 0, 0, 1, SYN, 0, 0 },
  { "utf8-truncated", "<a\xc3@x.example>", 0, 0, 1, SYN, 0, 0 },
  { "utf8-lone-continuation", "<a\x80@x.example>", 0, 0, 1, SYN, 0, 0 },
  { "utf8-c1-control", "<a\xc2\x85@x.example>", 0, 0, 1, SYN, 0, 0 },
  { "utf8-nbsp-ok", "<a\xc2\xa0@x.example>", 0, 0, 1, OK, "a\xc2\xa0@x.example", ALL },
  { "utf8-max", "<\xf4\x8f\xbf\xbf@x.example>", 0, 0, 1, OK, "\xf4\x8f\xbf\xbf@x.example", ALL },
  { "utf8-truncated-at-end", "<a@x.example>\xc3", 0, 0, 1, SYN, 0, 0 },
} ;

/* parse from an exact-size heap copy, so ASan sees any overread */
static enum address_error parse (char const *in, size_t len, int allow_null, int utf8, stralloc *out, size_t *rest)
{
  char *copy = malloc(len ? len : 1) ;
  enum address_error e ;
  if (!copy) { perror("malloc") ; exit(111) ; }
  memcpy(copy, in, len) ;
  e = address_parse_path(copy, len, allow_null, utf8, out, rest) ;
  free(copy) ;
  return e ;
}

static void run_pcase (struct pcase const *c, stralloc *out)
{
  size_t len = c->inlen ? c->inlen : strlen(c->in) ;
  size_t rest = (size_t)-2, want_rest = c->rest == ALL ? len : c->rest, i ;
  enum address_error e = parse(c->in, len, c->allow_null, c->utf8, out, &rest) ;
  char buf[64] ;
  if (e != c->want) { fail(c->name, "got %s, want %s", ename(e), ename(c->want)) ; return ; }
  if (e == OK || e == NODOM)
  {
    if (out->len != strlen(c->out) || memcmp(out->s, c->out, out->len))
    {
      stralloc_0(out) ;
      fail(c->name, "canonical \"%s\", want \"%s\"", out->s, c->out) ;
      return ;
    }
    if (out->s[out->len]) { fail(c->name, "%s%s", "output not NUL-terminated", "") ; return ; }
    if (rest != want_rest)
    {
      snprintf(buf, sizeof buf, "rest %zu, want %zu", rest, want_rest) ;
      fail(c->name, "%s%s", buf, "") ;
      return ;
    }
  }
  /* every prefix: must not crash or read past the end */
  for (i = 0 ; i < len ; i++) parse(c->in, i, c->allow_null, c->utf8, out, &rest) ;
  pass(c->name) ;
}

static void check (char const *name, int ok, char const *why)
{
  if (ok) pass(name) ; else fail(name, "%s%s", why, "") ;
}

static void repeat (stralloc *sa, char c, size_t n)
{
  while (n--) if (!stralloc_catb(sa, &c, 1)) { perror("stralloc") ; exit(111) ; }
}

/* "<" local(nl a's) "@" domain(nd octets, labels of 63) ">" */
static void build_path (stralloc *sa, size_t nl, size_t nd, int brackets)
{
  size_t left = nd ;
  sa->len = 0 ;
  if (brackets) repeat(sa, '<', 1) ;
  repeat(sa, 'a', nl) ;
  repeat(sa, '@', 1) ;
  while (left)
  {
    size_t l = left > 63 ? 63 : left ;
    if (left - l == 1) l-- ;   /* never leave a last label of length 0 */
    repeat(sa, 'd', l) ;
    left -= l ;
    if (left) { repeat(sa, '.', 1) ; left-- ; }
  }
  if (brackets) repeat(sa, '>', 1) ;
}

static void lengths (stralloc *out)
{
  stralloc in = STRALLOC_ZERO ;
  size_t rest ;
  enum address_error e ;

  build_path(&in, 64, 10, 1) ;
  e = parse(in.s, in.len, 0, 0, out, &rest) ;
  check("local-64", e == OK && out->len == 75, ename(e)) ;
  build_path(&in, 65, 10, 1) ;
  e = parse(in.s, in.len, 0, 0, out, &rest) ;
  check("local-65", e == LONG, ename(e)) ;

  /* quoted: the limit applies to the canonical form */
  in.len = 0 ;
  repeat(&in, '<', 1) ; repeat(&in, '"', 1) ; repeat(&in, 'q', 64) ; repeat(&in, '"', 1) ;
  stralloc_cats(&in, "@x.example>") ;
  e = parse(in.s, in.len, 0, 0, out, &rest) ;
  check("local-quoted-unneeded-64", e == OK && out->len == 64 + 10, ename(e)) ;
  in.len = 0 ;
  repeat(&in, '<', 1) ; repeat(&in, '"', 1) ; repeat(&in, ' ', 62) ; repeat(&in, '"', 1) ;
  stralloc_cats(&in, "@x.example>") ;
  e = parse(in.s, in.len, 0, 0, out, &rest) ;
  check("local-quoted-needed-64", e == OK && out->len == 64 + 10, ename(e)) ;
  in.len = 0 ;
  repeat(&in, '<', 1) ; repeat(&in, '"', 1) ; repeat(&in, ' ', 63) ; repeat(&in, '"', 1) ;
  stralloc_cats(&in, "@x.example>") ;
  e = parse(in.s, in.len, 0, 0, out, &rest) ;
  check("local-quoted-needed-65", e == LONG, ename(e)) ;

  /* path: 256 octets with the brackets */
  build_path(&in, 64, 256 - 64 - 3, 1) ;
  e = parse(in.s, in.len, 0, 0, out, &rest) ;
  check("path-256", in.len == 256 && e == OK && out->len == 254 && rest == 256, ename(e)) ;
  build_path(&in, 64, 257 - 64 - 3, 1) ;
  e = parse(in.s, in.len, 0, 0, out, &rest) ;
  check("path-257", in.len == 257 && e == LONG, ename(e)) ;
  build_path(&in, 64, 256 - 64 - 3, 0) ;
  e = parse(in.s, in.len, 0, 0, out, &rest) ;
  check("bare-254", in.len == 254 && e == OK, ename(e)) ;
  build_path(&in, 64, 257 - 64 - 3, 0) ;
  e = parse(in.s, in.len, 0, 0, out, &rest) ;
  check("bare-255", in.len == 255 && e == LONG, ename(e)) ;

  /* domain 255 / 256 */
  build_path(&in, 1, 255, 0) ;
  e = address_check_domain(in.s + 2, in.len - 2, 0) ;
  check("check-domain-255", in.len - 2 == 255 && e == OK, ename(e)) ;
  build_path(&in, 1, 256, 0) ;
  e = address_check_domain(in.s + 2, in.len - 2, 0) ;
  check("check-domain-256", in.len - 2 == 256 && e == LONG, ename(e)) ;
  /* and a domain over 255 inside a path that has room for it */
  build_path(&in, 1, 300, 1) ;
  e = parse(in.s, in.len, 0, 0, out, &rest) ;
  check("path-domain-300", e == LONG, ename(e)) ;

  /* labels 63 / 64 */
  in.len = 0 ; stralloc_cats(&in, "<a@") ; repeat(&in, 'l', 63) ; stralloc_cats(&in, ".example>") ;
  e = parse(in.s, in.len, 0, 0, out, &rest) ;
  check("label-63", e == OK, ename(e)) ;
  in.len = 0 ; stralloc_cats(&in, "<a@") ; repeat(&in, 'l', 64) ; stralloc_cats(&in, ".example>") ;
  e = parse(in.s, in.len, 0, 0, out, &rest) ;
  check("label-64", e == BAD, ename(e)) ;
  in.len = 0 ; stralloc_cats(&in, "<a@") ; repeat(&in, 'l', 61) ; stralloc_cats(&in, "\xc3\xa4.example>") ;
  e = parse(in.s, in.len, 0, 1, out, &rest) ;
  check("label-63-octets-utf8", e == OK, ename(e)) ;
  in.len = 0 ; stralloc_cats(&in, "<a@") ; repeat(&in, 'l', 62) ; stralloc_cats(&in, "\xc3\xa4.example>") ;
  e = parse(in.s, in.len, 0, 1, out, &rest) ;
  check("label-64-octets-utf8", e == BAD, ename(e)) ;
  stralloc_free(&in) ;
}

struct scase { char const *name ; char const *in ; size_t want ; } ;

static struct scase const scases[] =
{
  { "split-simple", "a@b", 1 },
  { "split-none", "noat", 4 },
  { "split-quoted-at", "\"user@other\"@ours", 12 },
  { "split-quoted-escaped", "\"a\\\"@\"@c", 6 },
  { "split-quoted-backslash", "\"a\\\\\"@c", 5 },
  { "split-last", "a@b@c", 3 },
  { "split-empty", "", 0 },
  { "split-quoted-only", "\"a@b\"", 5 },
} ;

struct dcase { char const *name ; char const *in ; int utf8 ; enum address_error want ; } ;

static struct dcase const dcases[] =
{
  { "domain-ok", "example.com", 0, OK },
  { "domain-upper", "EXAMPLE.Com", 0, OK },
  { "domain-single", "localhost", 0, OK },
  { "domain-empty", "", 0, BAD },
  { "domain-dotdot", "a..b", 0, BAD },
  { "domain-dot", ".", 0, BAD },
  { "domain-trailing-dot", "x.com.", 0, BAD },
  { "domain-hyphen-start", "-x.com", 0, BAD },
  { "domain-hyphen-end", "x-.com", 0, BAD },
  { "domain-space", "exa mple.com", 0, BAD },
  { "domain-at", "a@b.com", 0, BAD },
  { "domain-underscore", "_dmarc.example", 0, BAD },
  { "domain-ipv4", "[192.0.2.1]", 0, OK },
  { "domain-ipv4-bad", "[192.0.2.256]", 0, BAD },
  { "domain-ipv4-unclosed", "[192.0.2.1", 0, BAD },
  { "domain-ipv4-trailing", "[192.0.2.1]x", 0, BAD },
  { "domain-ipv6", "[IPv6:::1]", 0, OK },
  { "domain-general", "[tag:x]", 0, BAD },
  { "domain-utf8-refused", "\xc3\xa4.example", 0, BAD },
  { "domain-utf8", "\xc3\xa4.example", 1, OK },
  { "domain-utf8-invalid", "\xc3.example", 1, BAD },
  { "domain-nul", "a\0b", 0, BAD },
} ;

int main (void)
{
  stralloc out = STRALLOC_ZERO ;
  size_t i ;
  for (i = 0 ; i < sizeof pcases / sizeof *pcases ; i++) run_pcase(&pcases[i], &out) ;
  lengths(&out) ;

  /* relay trick, continued: the quoted '@' is not where address_split cuts */
  {
    size_t rest ;
    char const *in = "<\"user@other.example\"@ours.example>" ;
    enum address_error e = parse(in, strlen(in), 0, 0, &out, &rest) ;
    size_t at = e == OK ? address_split(out.s, out.len) : 0 ;
    check("relay-quoted-at-split", e == OK && at == 20 && !strcmp(out.s + at + 1, "ours.example"), "split at the wrong '@'") ;
  }
  /* output is replaced, not appended to */
  {
    size_t rest ;
    stralloc_copys(&out, "garbage") ;
    enum address_error e = parse("<a@b.example>", 13, 0, 0, &out, &rest) ;
    check("output-replaced", e == OK && out.len == 11 && !strcmp(out.s, "a@b.example"), "output not replaced") ;
  }
  /* rest may be a null pointer? Not in the contract: not tested. */

  for (i = 0 ; i < sizeof scases / sizeof *scases ; i++)
  {
    size_t got = address_split(scases[i].in, strlen(scases[i].in)) ;
    char buf[64] ;
    snprintf(buf, sizeof buf, "got %zu, want %zu", got, scases[i].want) ;
    check(scases[i].name, got == scases[i].want, buf) ;
  }
  for (i = 0 ; i < sizeof dcases / sizeof *dcases ; i++)
  {
    size_t len = strlen(dcases[i].in) ;
    enum address_error e ;
    if (!strcmp(dcases[i].name, "domain-nul")) len = 3 ;
    {
      char *copy = malloc(len + 1) ;
      if (!copy) return 111 ;
      memcpy(copy, dcases[i].in, len) ;
      e = address_check_domain(copy, len, dcases[i].utf8) ;
      free(copy) ;
    }
    if (e == dcases[i].want) pass(dcases[i].name) ;
    else fail(dcases[i].name, "got %s, want %s", ename(e), ename(dcases[i].want)) ;
  }
  {
    char const *t[5] ;
    int ok = 1, j, k ;
    t[0] = address_strerror(ADDR_OK) ;
    t[1] = address_strerror(ADDR_SYNTAX) ;
    t[2] = address_strerror(ADDR_TOOLONG) ;
    t[3] = address_strerror(ADDR_NODOMAIN) ;
    t[4] = address_strerror(ADDR_BADDOMAIN) ;
    for (j = 0 ; j < 5 ; j++)
    {
      if (!t[j] || !*t[j] || strchr(t[j], '\r') || strchr(t[j], '\n')) ok = 0 ;
      else for (k = 0 ; k < j ; k++) if (!strcmp(t[j], t[k])) ok = 0 ;
    }
    check("strerror", ok && !strcmp(t[1], "syntax error in address"), "empty, duplicate or multi-line text") ;
  }
  stralloc_free(&out) ;
  return 0 ;
}
