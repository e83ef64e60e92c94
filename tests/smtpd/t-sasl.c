/* Unit tests for common/sasl.c: base64 both ways, strictness, PLAIN. */

#include <stdio.h>
#include <string.h>

#include <skalibs/stralloc.h>

#include "smtpd/sasl.h"

static int fails = 0 ;

static void result (char const *name, int ok, char const *why)
{
  if (ok) printf("PASS %s\n", name) ;
  else { printf("FAIL %s: %s\n", name, why) ; fails++ ; }
}

static int dec (char const *in, char const *want, size_t wantlen)
{
  stralloc sa = STRALLOC_ZERO ;
  int r = sasl_b64decode(&sa, in, strlen(in)) ;
  int ok = want ? (r == 1 && sa.len == wantlen && !memcmp(sa.s, want, wantlen)) : (r == 0 && !sa.len) ;
  stralloc_free(&sa) ;
  return ok ;
}

int main (void)
{
  /* RFC 4648 test vectors */
  static char const *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" } ;
  static char const *const coded[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" } ;
  int ok = 1 ;
  for (unsigned int i = 0 ; i < 7 ; i++)
  {
    stralloc sa = STRALLOC_ZERO ;
    if (!sasl_b64encode(&sa, plain[i], strlen(plain[i])) || sa.len != strlen(coded[i]) || memcmp(sa.s, coded[i], sa.len)) ok = 0 ;
    stralloc_free(&sa) ;
    if (!dec(coded[i], plain[i], strlen(plain[i]))) ok = 0 ;
  }
  result("b64-rfc4648-vectors", ok, "a vector failed") ;

  ok = dec("Zg", "f", 1) && dec("Zm8", "fo", 2) ;
  result("b64-unpadded", ok, "unpadded input refused") ;

  ok = dec("Zh==", 0, 0) && dec("Zm9=", 0, 0) && dec("Z", 0, 0) && dec("Zg=", 0, 0) && dec("Zg===", 0, 0)
    && dec("=", 0, 0) && dec("Zm 9v", 0, 0) && dec("Zm9v\r", 0, 0) && dec("Zm9v!", 0, 0) && dec("Zm=v", 0, 0)
    && dec("Zm9vYg==Zg==", 0, 0) ;
  result("b64-strict", ok, "bad base64 accepted") ;

  {
    stralloc sa = STRALLOC_ZERO ;
    int r1 = stralloc_cats(&sa, "keep") ;
    int r2 = sasl_b64decode(&sa, "Zm9v!", 5) ;
    result("b64-append-unchanged-on-error", r1 && !r2 && sa.len == 4 && !memcmp(sa.s, "keep", 4), "out changed") ;
    stralloc_free(&sa) ;
  }
  {
    unsigned char all[256] ;
    for (unsigned int i = 0 ; i < 256 ; i++) all[i] = (unsigned char)i ;
    stralloc e = STRALLOC_ZERO, d = STRALLOC_ZERO ;
    int r = sasl_b64encode(&e, (char *)all, 256) && stralloc_0(&e) ;
    if (r) e.len-- ;
    r = r && sasl_b64decode(&d, e.s, e.len) == 1 && d.len == 256 && !memcmp(d.s, all, 256) ;
    result("b64-roundtrip-binary", r, "round trip differs") ;
    stralloc_free(&e) ; stralloc_free(&d) ;
  }

  {
    struct sasl_plain p ;
    static char const m1[] = "\0alice\0secret" ;
    static char const m2[] = "alice\0alice\0" ;
    int r = sasl_plain_split(m1, sizeof(m1) - 1, &p)
      && p.authzidlen == 0 && p.authcid == 1 && p.authcidlen == 5 && p.passwd == 7 && p.passwdlen == 6 ;
    r = r && sasl_plain_split(m2, sizeof(m2) - 1, &p) && p.authzidlen == 5 && p.authcidlen == 5 && p.passwdlen == 0 ;
    r = r && !sasl_plain_split("alicesecret", 11, &p) && !sasl_plain_split("\0alice", 6, &p)
          && !sasl_plain_split("\0\0secret", 8, &p) && !sasl_plain_split("a\0b\0c\0d", 7, &p)
          && !sasl_plain_split("", 0, &p) ;
    result("plain-split", r, "PLAIN message split wrong") ;
  }
  return fails ? 1 : 0 ;
}
