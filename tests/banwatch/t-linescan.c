/* Unit tests for banwatch/linescan.c, replay's line scanner: the lines,
 * their NUL and key-pair flags against a byte-by-byte reference, on
 * random text (lines across 64-byte blocks and the vector read-ahead,
 * overlong lines, no final newline, every vector level the CPU has, any
 * number of lines asked at a time), and the keys that linescan_choose
 * makes from a literal.  Prints "PASS name" or "FAIL name: why" per case. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "banwatch/linescan.h"

static int failed ;

static void result (char const *name, int ok, char const *why)
{
  if (ok) printf("PASS %s\n", name) ;
  else { printf("FAIL %s: %s\n", name, why) ; failed = 1 ; }
}

static uint64_t rs = 88172645463325252ULL ;
static unsigned int rnd (unsigned int n)
{
  rs ^= rs << 13 ; rs ^= rs >> 7 ; rs ^= rs << 17 ;
  return (unsigned int)(rs % n) ;
}

/* the reference: does a key pair start in s[start..end)? */
static int ref_maybe (char const *s, size_t n, size_t start, size_t end, linescan_key const *k, unsigned int nk)
{
  if (!nk) return 1 ;
  for (size_t i = start ; i < end ; i++)
    for (unsigned int x = 0 ; x < nk ; x++)
      if ((unsigned char)s[i] == k[x].a && i + k[x].d < n && (unsigned char)s[i + k[x].d] == k[x].b) return 1 ;
  return 0 ;
}

/* scan s[0..n) at vector level vec, max lines at a time, and compare
 * with the reference; 0 and why on the first difference */
static int compare (char const *s, size_t n, linescan_key const *k, unsigned int nk, int vec, size_t max, char *why, size_t whylen)
{
  linescan ls ;
  linescan_line l[300] ;
  size_t got, pos = 0, nl = 0 ;
  linescan_init(&ls, s, n, k, nk) ;
  if (vec > ls.vec) return 1 ;   /* the CPU doesn't have it */
  ls.vec = vec ;
  while ((got = linescan_fill(&ls, l, max)))
  {
    if (got > max) { snprintf(why, whylen, "%zu lines for %zu asked", got, max) ; return 0 ; }
    for (size_t i = 0 ; i < got ; i++, nl++)
    {
      char const *e = memchr(s + pos, '\n', n - pos) ;
      size_t end = e ? (size_t)(e - s) : n ;
      int maybe = ref_maybe(s, n, pos, end, k, nk), nul = !!memchr(s + pos, 0, end - pos) ;
      if (l[i].start != pos || l[i].end != end || !!l[i].maybe != maybe || !!l[i].nul != nul)
      {
        snprintf(why, whylen, "vec %d n %zu line %zu: got [%zu,%zu) maybe %d nul %d, want [%zu,%zu) maybe %d nul %d",
                 vec, n, nl, l[i].start, l[i].end, l[i].maybe, l[i].nul, pos, end, maybe, nul) ;
        return 0 ;
      }
      pos = end + 1 ;
    }
  }
  if (pos < n) { snprintf(why, whylen, "vec %d n %zu: stopped at %zu", vec, n, pos) ; return 0 ; }
  if (linescan_fill(&ls, l, max)) { snprintf(why, whylen, "vec %d: lines after the end", vec) ; return 0 ; }
  return 1 ;
}

static void random_text (char *s, size_t n, unsigned int nlrate)
{
  static char const alpha[] = "abcxy \0\n" ;
  for (size_t i = 0 ; i < n ; i++)
  {
    unsigned int r = rnd(1000) ;
    s[i] = r < nlrate ? '\n' : r < nlrate + 3 ? 0 : alpha[rnd(5)] ;
  }
}

static void random_keys (linescan_key *k, unsigned int *nk)
{
  *nk = rnd(LINESCAN_MAXKEYS + 1) ;
  for (unsigned int x = 0 ; x < *nk ; x++)
  {
    k[x].a = (unsigned char)"abcxy"[rnd(5)] ;
    k[x].b = (unsigned char)"abcxy\0"[rnd(6)] ;
    k[x].d = (unsigned char)rnd(LINESCAN_MAXDIST + 1) ;
  }
}

static void t_random (void)
{
  char why[256] = "" ;
  int ok = 1 ;
  size_t cap = 70000 ;
  char *buf = malloc(cap) ;
  if (!buf) { result("linescan-random-vs-reference", 0, "malloc") ; return ; }
  for (unsigned int round = 0 ; round < 6000 && ok ; round++)
  {
    /* short texts: every length around the blocks and the read-ahead;
     * a few long ones with long lines (many blocks a line) */
    size_t n = round < 5000 ? round % 400 : 1000 + rnd(60000) ;
    unsigned int nlrate = round % 3 == 0 ? 2 : round % 3 == 1 ? 30 : 200 ;
    linescan_key k[LINESCAN_MAXKEYS] ;
    unsigned int nk ;
    random_text(buf, n, nlrate) ;
    random_keys(k, &nk) ;
    /* the text at the end of a malloc'd block: reading past it is caught by ASan */
    char *s = buf + cap - n ;
    memmove(s, buf, n) ;
    size_t max = round % 7 == 0 ? 1 : round % 7 == 1 ? 2 : 1 + rnd(300) ;
    for (int vec = 0 ; vec <= 2 && ok ; vec++) ok = compare(s, n, k, nk, vec, max, why, sizeof why) ;
  }
  result("linescan-random-vs-reference", ok, why) ;
  free(buf) ;
}

/* a line of many blocks whose only key pair is at its first or last
 * byte, or straddles a block boundary */
static void t_long_lines (void)
{
  char why[256] = "" ;
  int ok = 1 ;
  size_t n = 5000 ;
  char *s = malloc(n) ;
  if (!s) { result("linescan-long-lines", 0, "malloc") ; return ; }
  linescan_key k = { 'q', 'z', 3 } ;
  static size_t const at[] = { 0, 1, 60, 61, 62, 63, 64, 125, 126, 127, 128, 2000, 4095, 4096, 4994, 4995, 4996 } ;
  for (size_t x = 0 ; x < sizeof at / sizeof *at && ok ; x++)
    for (size_t cut = 0 ; cut < 3 && ok ; cut++)
    {
      memset(s, 'a', n) ;
      /* three lines: [0,4000) [4001,4998) and a last one of 1 byte, or
       * no newline at the end */
      s[4000] = '\n' ;
      if (cut) s[4998] = '\n' ;
      if (at[x] + 3 < n) { s[at[x]] = 'q' ; s[at[x] + 3] = 'z' ; }
      for (int vec = 0 ; vec <= 2 && ok ; vec++) ok = compare(s, n - (cut == 2), &k, 1, vec, 256, why, sizeof why) ;
    }
  result("linescan-long-lines", ok, why) ;
  free(s) ;
}

static void t_edges (void)
{
  linescan ls ;
  linescan_line l[4] ;
  linescan_key k = { 'a', 'b', 1 } ;
  linescan_init(&ls, "", 0, &k, 1) ;
  result("linescan-empty-text", !linescan_fill(&ls, l, 4), "lines from nothing") ;
  linescan_init(&ls, "\n", 1, &k, 1) ;
  size_t got = linescan_fill(&ls, l, 4) ;
  result("linescan-one-newline", got == 1 && l[0].start == 0 && l[0].end == 0 && !l[0].maybe && !linescan_fill(&ls, l, 4),
         "not one empty line") ;
  linescan_init(&ls, "xab", 3, &k, 1) ;
  got = linescan_fill(&ls, l, 4) ;
  result("linescan-no-final-newline", got == 1 && l[0].end == 3 && l[0].maybe, "the unterminated line is lost or not a maybe") ;
  linescan_key k2 = { 'a', 'b', 2 } ;
  linescan_init(&ls, "xa\nb", 4, &k2, 1) ;
  got = linescan_fill(&ls, l, 4) ;
  result("linescan-pair-across-lines", got == 2 && l[0].maybe && !l[1].maybe,
         "a pair whose second byte is in the next line must make the first a maybe (a superset), not the second") ;
  linescan_init(&ls, "xa\nb", 4, &k, 0) ;
  got = linescan_fill(&ls, l, 4) ;
  result("linescan-no-keys-all-maybe", got == 2 && l[0].maybe && l[1].maybe, "a line said no with no keys") ;
}

/* every line that holds the literal is a maybe with the chosen key */
static void t_choose (void)
{
  static char const *lits[] = { " authentication failed", "]: SASL ", "Failed ", "ab", " from ", "xyzzy-long-literal-of-more-than-forty-eight-bytes-is-cut-to-the-max" } ;
  char why[256] = "" ;
  int ok = 1 ;
  char sample[4096], text[3000] ;
  for (size_t x = 0 ; x < sizeof sample ; x++) sample[x] = "postfix smtpd[12]: fail from host\n"[x % 34] ;
  for (size_t li = 0 ; li < sizeof lits / sizeof *lits && ok ; li++)
  {
    char const *lit = lits[li] ;
    size_t len = strlen(lit) ;
    linescan_key k ;
    size_t r = linescan_choose(&k, lit, len, sample, sizeof sample) ;
    if (r >= len || k.d > LINESCAN_MAXDIST || ((unsigned char)lit[r] != k.a && (unsigned char)lit[r] != k.b))
    {
      snprintf(why, sizeof why, "%s: rarest index %zu, key %c %c %u", lit, r, k.a, k.b, k.d) ;
      ok = 0 ;
      break ;
    }
    for (unsigned int round = 0 ; round < 300 && ok ; round++)
    {
      random_text(text, sizeof text, 20) ;
      size_t at = rnd(sizeof text - len) ;
      memcpy(text + at, lit, len) ;
      for (int vec = 0 ; vec <= 2 && ok ; vec++)
      {
        linescan ls ;
        linescan_line l[256] ;
        size_t got ;
        linescan_init(&ls, text, sizeof text, &k, 1) ;
        if (vec > ls.vec) break ;
        ls.vec = vec ;
        while (ok && (got = linescan_fill(&ls, l, 256)))
          for (size_t i = 0 ; i < got ; i++)
            if (l[i].start <= at && at + len <= l[i].end && !l[i].maybe)
            {
              snprintf(why, sizeof why, "%s at %zu: its line [%zu,%zu) said no (vec %d)", lit, at, l[i].start, l[i].end, vec) ;
              ok = 0 ;
            }
      }
    }
  }
  result("linescan-choose-literal-lines-are-maybe", ok, why) ;
  /* the byte rarest in the sample: 'f' is everywhere, 'q' nowhere */
  linescan_key k ;
  memset(sample, 'f', sizeof sample) ;
  size_t r = linescan_choose(&k, "ffqf", 4, sample, sizeof sample) ;
  result("linescan-choose-rarest-byte", r == 2, "not the byte missing from the sample") ;
  r = linescan_choose(&k, "f", 1, sample, sizeof sample) ;
  result("linescan-choose-one-byte", r == 0 && k.a == 'f' && k.b == 'f' && !k.d, "a one-byte literal is its own pair") ;
  r = linescan_choose(&k, "abc", 3, "", 0) ;
  result("linescan-choose-empty-sample", r < 3 && k.d <= 2, "no key without a sample") ;
  linescan_key keys[LINESCAN_MAXKEYS], one = { 'a', 'b', 1 } ;
  unsigned int nk = 0 ;
  int added = linescan_addkey(keys, &nk, &one) && linescan_addkey(keys, &nk, &one) ;
  for (unsigned char c = 'c' ; c < 'c' + LINESCAN_MAXKEYS - 1 ; c++) { linescan_key o = { c, 'b', 1 } ; added &= linescan_addkey(keys, &nk, &o) ; }
  linescan_key extra = { 'z', 'z', 0 } ;
  result("linescan-addkey", added && nk == LINESCAN_MAXKEYS && !linescan_addkey(keys, &nk, &extra) && nk == LINESCAN_MAXKEYS,
         "duplicates kept or the limit not kept") ;
}

int main (void)
{
  t_edges() ;
  t_random() ;
  t_long_lines() ;
  t_choose() ;
  return failed ;
}
