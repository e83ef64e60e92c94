/* Unit tests for SASL as smtpd speaks it: base64 both ways in the strict
 * flavour RFC 4954 wants (common/base64.c, flags 0), and PLAIN's message
 * (smtpd/sasl.c). */

#include <stdio.h>
#include <string.h>

#include <skalibs/stralloc.h>

#include "base64.h"
#include "sasl.h"

static int fails = 0 ;

static void result (char const *name, int ok, char const *why)
{
  if (ok) printf("PASS %s\n", name) ;
  else { printf("FAIL %s: %s\n", name, why) ; fails++ ; }
}

static int dec (char const *in, char const *want, size_t wantlen)
{
  stralloc sa = STRALLOC_ZERO ;
  int r = base64_decode(&sa, in, strlen(in), 0) ;
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
    if (!base64_encode(&sa, plain[i], strlen(plain[i]), 0) || sa.len != strlen(coded[i]) || memcmp(sa.s, coded[i], sa.len)) ok = 0 ;
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
    int r2 = base64_decode(&sa, "Zm9v!", 5, 0) ;
    result("b64-append-unchanged-on-error", r1 && !r2 && sa.len == 4 && !memcmp(sa.s, "keep", 4), "out changed") ;
    stralloc_free(&sa) ;
  }
  {
    unsigned char all[256] ;
    for (unsigned int i = 0 ; i < 256 ; i++) all[i] = (unsigned char)i ;
    stralloc e = STRALLOC_ZERO, d = STRALLOC_ZERO ;
    int r = base64_encode(&e, (char *)all, 256, 0) && stralloc_0(&e) ;
    if (r) e.len-- ;
    r = r && base64_decode(&d, e.s, e.len, 0) == 1 && d.len == 256 && !memcmp(d.s, all, 256) ;
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
