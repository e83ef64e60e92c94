/* t-datascan: smtpd/datascan.c, the end-of-data scanner with the
 * smuggling guard, fed as Dovecot feeds its parsers: whole, byte at a
 * time, and cut at every place (every 2-way split, and every 3-way split
 * of the short inputs), each piece in its own heap block so that ASan sees
 * a read past it.  For every case the output bytes, the flags, where the
 * data ended and the hop count must be what the case says, whatever the
 * cuts.  Cases: the CRLF.CRLF end, dot-unstuffing, bare LF, bare CR, the
 * smuggling variants "\n.\n", "\r\n.\n", "\n.\r\n" (and ".\r" + other),
 * NUL, the line length limit, the size limit, hop counting. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <skalibs/stralloc.h>

#include "smtpd/datascan.h"

char const *PROG = "t-datascan" ;

static int fails = 0 ;

struct result
{
  stralloc out ;
  unsigned int flags ;
  int end ;
  size_t consumed ;
  unsigned long bytes ;
  unsigned int hops ;
} ;

static void put (void *ctx, char const *s, size_t len)
{
  if (!stralloc_catb((stralloc *)ctx, s, len)) { perror("t-datascan: stralloc_catb") ; exit(111) ; }
}

/* feed in[0..n) cut at cuts[0..ncuts) (ascending) */
static void run (char const *in, size_t n, unsigned long max, size_t const *cuts, unsigned int ncuts, struct result *r)
{
  struct datascan d ;
  size_t start = 0 ;
  r->out.len = 0 ;
  r->end = 0 ;
  r->consumed = n ;
  datascan_init(&d, max, &put, &r->out) ;
  for (unsigned int k = 0 ; k <= ncuts && !r->end ; k++)
  {
    size_t stop = k < ncuts ? cuts[k] : n ;
    size_t len = stop - start ;
    char *piece = malloc(len ? len : 1) ;
    if (!piece) { perror("t-datascan: malloc") ; exit(111) ; }
    memcpy(piece, in + start, len) ;
    size_t used = datascan_run(&d, piece, len, &r->end) ;
    free(piece) ;
    if (r->end) r->consumed = start + used ;
    else if (used != len) r->consumed = (size_t)-1 ;   /* must eat all until the end */
    start = stop ;
  }
  r->flags = d.flags ;
  r->bytes = d.bytes ;
  r->hops = d.hops ;
}

struct tcase
{
  char const *name ;
  char const *in ;
  size_t inlen ;
  unsigned long max ;
  char const *out ;
  size_t outlen ;
  unsigned int flags ;
  int end ;
  size_t consumed ;
  int hops ;               /* -1: not checked */
} ;

static char const *describe (struct tcase const *t, struct result const *r, char *why, size_t whylen)
{
  if (r->out.len != t->outlen || (t->outlen && memcmp(r->out.s, t->out, t->outlen)))
    snprintf(why, whylen, "output differs (%zu bytes, want %zu)", r->out.len, t->outlen) ;
  else if (r->flags != t->flags) snprintf(why, whylen, "flags %u, want %u", r->flags, t->flags) ;
  else if (r->end != t->end) snprintf(why, whylen, "end %d, want %d", r->end, t->end) ;
  else if (r->consumed != t->consumed) snprintf(why, whylen, "consumed %zu, want %zu", r->consumed, t->consumed) ;
  else if (r->bytes != r->out.len) snprintf(why, whylen, "bytes %lu, emitted %zu", r->bytes, r->out.len) ;
  else if (t->hops >= 0 && r->hops != (unsigned int)t->hops) snprintf(why, whylen, "hops %u, want %d", r->hops, t->hops) ;
  else return 0 ;
  return why ;
}

static void check_case (struct tcase const *t)
{
  struct result r = { .out = STRALLOC_ZERO } ;
  char why[160], where[64] ;
  char const *bad = 0 ;
  size_t n = t->inlen ;
  size_t *cuts = malloc((n + 1) * sizeof(size_t)) ;
  if (!cuts) { perror("t-datascan: malloc") ; exit(111) ; }

  run(t->in, n, t->max, 0, 0, &r) ;
  bad = describe(t, &r, why, sizeof why) ;
  if (bad) snprintf(where, sizeof where, "whole") ;

  if (!bad)
  {
    for (size_t i = 0 ; i < n ; i++) cuts[i] = i + 1 ;
    run(t->in, n, t->max, cuts, n ? n - 1 : 0, &r) ;
    bad = describe(t, &r, why, sizeof why) ;
    if (bad) snprintf(where, sizeof where, "byte at a time") ;
  }
  for (size_t i = 0 ; i <= n && !bad ; i++)
  {
    cuts[0] = i ;
    run(t->in, n, t->max, cuts, 1, &r) ;
    bad = describe(t, &r, why, sizeof why) ;
    if (bad) snprintf(where, sizeof where, "cut at %zu", i) ;
  }
  /* 3-way splits: all of them for short inputs, a stride for long ones */
  size_t step = n <= 64 ? 1 : n / 40 + 1 ;
  for (size_t i = 0 ; i <= n && !bad ; i += (n <= 64 ? 1 : step))
    for (size_t j = i ; j <= n && !bad ; j++)
    {
      cuts[0] = i ; cuts[1] = j ;
      run(t->in, n, t->max, cuts, 2, &r) ;
      bad = describe(t, &r, why, sizeof why) ;
      if (bad) snprintf(where, sizeof where, "cut at %zu and %zu", i, j) ;
    }
  if (bad) { printf("FAIL datascan-%s: %s: %s\n", t->name, where, bad) ; fails++ ; }
  else printf("PASS datascan-%s\n", t->name) ;
  free(cuts) ;
  stralloc_free(&r.out) ;
}

#define S(x) x, sizeof(x) - 1

static stralloc big[8] ;

static char const *repeat (stralloc *sa, char const *s, unsigned int times, char const *tail)
{
  sa->len = 0 ;
  for (unsigned int i = 0 ; i < times ; i++)
    if (!stralloc_cats(sa, s)) exit(111) ;
  if (!stralloc_cats(sa, tail) || !stralloc_0(sa)) exit(111) ;
  sa->len-- ;
  return sa->s ;
}

int main (void)
{
  static struct tcase const cases[] = {
    { "crlf-dot-crlf-end", S("Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n"), 0, S("Subject: x\n\nbody\n"), 0, 1, 23, -1 },
    { "empty-message", S(".\r\nQUIT\r\n"), 0, S(""), 0, 1, 3, -1 },
    { "empty-first-line", S("\r\n.\r\n"), 0, S("\n"), 0, 1, 5, -1 },
    { "no-end-yet", S("a\r\nb\r\n.\r"), 0, S("a\nb\n"), 0, 0, 8, -1 },
    { "dot-unstuffing", S("..\r\n..x\r\n.y\r\n...\r\nz.\r\n.\r\n"), 0, S(".\n.x\ny\n..\nz.\n"), 0, 1, 25, -1 },
    { "bare-lf", S("a\nb\r\n.\r\n"), 0, S("a"), DATASCAN_BARE, 1, 8, -1 },
    { "bare-cr", S("a\rb\r\n.\r\n"), 0, S("a"), DATASCAN_BARE, 1, 8, -1 },
    { "bare-cr-before-crlf", S("a\r\r\n.\r\n"), 0, S("a"), DATASCAN_BARE, 1, 7, -1 },
    { "smuggle-lf-dot-lf", S("a\r\nb\n.\nMAIL FROM:<x>\r\n.\r\n"), 0, S("a\nb"), DATASCAN_BARE, 1, 25, -1 },
    { "smuggle-crlf-dot-lf", S("a\r\n.\nMAIL FROM:<x>\r\n.\r\n"), 0, S("a\n"), DATASCAN_BARE, 1, 23, -1 },
    { "smuggle-lf-dot-crlf", S("a\n.\r\nMAIL FROM:<x>\r\n.\r\n"), 0, S("a"), DATASCAN_BARE, 1, 23, -1 },
    { "smuggle-dot-cr-other", S("a\r\n.\rX\r\n.\r\n"), 0, S("a\n"), DATASCAN_BARE, 1, 11, -1 },
    { "nul", S("a\0b\r\n.\r\n"), 0, S("a"), DATASCAN_NUL, 1, 8, -1 },
    { "nul-and-bare-lf", S("\0\n\r\n.\r\n"), 0, S(""), DATASCAN_NUL | DATASCAN_BARE, 1, 7, -1 },
    { "size-exact", S("0123456789\r\n.\r\n"), 11, S("0123456789\n"), 0, 1, 15, -1 },
    { "size-over", S("0123456789\r\n.\r\n"), 10, S("0123456789"), DATASCAN_SIZE, 1, 15, -1 },
    { "size-over-mid-line", S("0123456789\r\n.\r\n"), 4, S("0123"), DATASCAN_SIZE, 1, 15, -1 },
  } ;
  for (unsigned int i = 0 ; i < sizeof(cases) / sizeof(cases[0]) ; i++) check_case(&cases[i]) ;

  /* the line limit: 998 octets and CRLF pass, 999 do not; a stuffing dot counts */
  {
    char const *x998 = repeat(&big[0], "x", 998, "\r\n.\r\n") ;
    char const *o998 = repeat(&big[1], "x", 998, "\n") ;
    struct tcase t = { "line-998-octets", x998, big[0].len, 0, o998, big[1].len, 0, 1, big[0].len, -1 } ;
    check_case(&t) ;
    char const *x999 = repeat(&big[2], "x", 999, "\r\n.\r\n") ;
    struct tcase u = { "line-999-octets-too-long", x999, big[2].len, 0, o998, 998, DATASCAN_LONG, 1, big[2].len, -1 } ;
    check_case(&u) ;
    repeat(&big[3], "y", 998, "\r\n.\r\n") ;
    if (!stralloc_insertb(&big[3], 0, ".", 1)) exit(111) ;   /* ".yyy...": 999 octets with the dot */
    struct tcase v = { "line-limit-counts-stuffing-dot", big[3].s, big[3].len, 0, big[3].s + 1, 997, DATASCAN_LONG, 1, big[3].len, -1 } ;
    check_case(&v) ;
  }

  /* hops: 100 Received:/Delivered-To: lines pass, 101 do not; the body and
     other headers do not count; the names are case-insensitive */
  {
    repeat(&big[4], "Received: x\r\nDELIVERED-TO: y\r\n", 50, "X-Received: no\r\n\r\nReceived: body\r\n.\r\n") ;
    repeat(&big[5], "Received: x\nDELIVERED-TO: y\n", 50, "X-Received: no\n\nReceived: body\n") ;
    struct tcase t = { "hops-100-pass", big[4].s, big[4].len, 0, big[5].s, big[5].len, 0, 1, big[4].len, 100 } ;
    check_case(&t) ;
    repeat(&big[6], "received: x\r\n", 101, "Subject: s\r\n\r\nbody\r\n.\r\n") ;
    repeat(&big[7], "received: x\n", 101, "") ;
    struct tcase u = { "hops-101-looping", big[6].s, big[6].len, 0, big[7].s, big[7].len, DATASCAN_HOPS, 1, big[6].len, 101 } ;
    check_case(&u) ;
  }
  for (unsigned int i = 0 ; i < 8 ; i++) stralloc_free(&big[i]) ;
  return fails ? 1 : 0 ;
}
