/* t-base64: common/base64.c against base64.h, in the three flavours its
 * callers use: strict padded (SASL), BASE64_NOPAD (PHC password strings),
 * BASE64_SPACE | BASE64_LAX (PEM).  RFC 4648 vectors both ways, round
 * trips of every length 0..64 over all byte values, what each flavour
 * refuses, the output bounds, and that a refused text leaves a stralloc
 * as it was. */

#include <stdio.h>
#include <string.h>

#include <skalibs/stralloc.h>

#include "base64.h"

static int fails = 0 ;

static void check (char const *name, int ok, char const *why)
{
  if (ok) printf("PASS base64-%s\n", name) ;
  else { printf("FAIL base64-%s: %s\n", name, why) ; fails++ ; }
}

/* decode in with flags: want NULL means "must be refused" */
static int dec (char const *in, unsigned int flags, char const *want, size_t wantlen)
{
  char out[256] ;
  size_t n = strlen(in) ;
  if (BASE64_DECODED_MAX(n) > sizeof out) return 0 ;
  ssize_t r = base64_decodeb(out, in, n, flags) ;
  if (!want) return r == -1 ;
  return r == (ssize_t)wantlen && !memcmp(out, want, wantlen) ;
}

static int enc (char const *in, unsigned int flags, char const *want)
{
  char out[256] ;
  size_t n = strlen(in) ;
  size_t r = base64_encodeb(out, in, n, flags) ;
  return r == strlen(want) && r <= BASE64_ENCODED_MAX(n) && !memcmp(out, want, r) ;
}

int main (void)
{
  static char const *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" } ;
  static char const *const coded[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" } ;
  static char const *const nopad[] = { "", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy" } ;
  int ok = 1 ;
  for (unsigned int i = 0 ; i < 7 ; i++)
  {
    size_t n = strlen(plain[i]) ;
    ok = ok && enc(plain[i], 0, coded[i]) && enc(plain[i], BASE64_NOPAD, nopad[i])
      && dec(coded[i], 0, plain[i], n) && dec(nopad[i], 0, plain[i], n)
      && dec(nopad[i], BASE64_NOPAD, plain[i], n)
      && dec(coded[i], BASE64_SPACE | BASE64_LAX, plain[i], n) && dec(nopad[i], BASE64_SPACE | BASE64_LAX, plain[i], n) ;
  }
  check("rfc4648-vectors", ok, "a vector failed in some flavour") ;

  /* every length 0..64 over all byte values, each flavour */
  ok = 1 ;
  {
    char in[64], text[BASE64_ENCODED_MAX(64)], back[BASE64_DECODED_MAX(sizeof text)] ;
    static unsigned int const fl[3][2] = { { 0, 0 }, { BASE64_NOPAD, BASE64_NOPAD }, { 0, BASE64_SPACE | BASE64_LAX } } ;
    for (unsigned int f = 0 ; f < 3 ; f++)
      for (size_t n = 0 ; n <= sizeof in ; n++)
      {
        for (size_t k = 0 ; k < n ; k++) in[k] = (char)(n * 37 + k * 101 + f) ;
        size_t t = base64_encodeb(text, in, n, fl[f][0]) ;
        ssize_t r = base64_decodeb(back, text, t, fl[f][1]) ;
        if (t > BASE64_ENCODED_MAX(n) || r != (ssize_t)n || memcmp(back, in, n)) ok = 0 ;
        if ((size_t)r > BASE64_DECODED_MAX(t)) ok = 0 ;
      }
  }
  check("roundtrip-lengths", ok, "a round trip differs") ;

  ok = dec("Zh==", 0, 0, 0) && dec("Zm9=", 0, 0, 0) && dec("Z", 0, 0, 0) && dec("Zg=", 0, 0, 0)
    && dec("Zg===", 0, 0, 0) && dec("=", 0, 0, 0) && dec("Zm 9v", 0, 0, 0) && dec("Zm9v\r", 0, 0, 0)
    && dec("Zm9v!", 0, 0, 0) && dec("Zm=v", 0, 0, 0) && dec("Zm9vYg==Zg==", 0, 0, 0) && dec("Zm9v=", 0, 0, 0)
    && dec("Zm9v-_", 0, 0, 0) && dec("\x80", 0, 0, 0) ;
  check("strict-refuses", ok, "bad base64 accepted by the strict flavour") ;

  ok = dec("Zg==", BASE64_NOPAD, 0, 0) && dec("Zm8=", BASE64_NOPAD, 0, 0) && dec("Zh", BASE64_NOPAD, 0, 0)
    && dec("Z", BASE64_NOPAD, 0, 0) && dec("Zm9vY", BASE64_NOPAD, 0, 0) && dec("Zm 9v", BASE64_NOPAD, 0, 0) ;
  check("nopad-refuses", ok, "padding, stray bits or a lone digit accepted without padding") ;

  {
    unsigned int pem = BASE64_SPACE | BASE64_LAX ;
    ok = dec("Zm9v\r\nYmFy\r\n", pem, "foobar", 6) && dec(" Zm 9v\tYg =\n=\n", pem, "foob", 4)
      && dec("aGk=", pem, "hi", 2) && dec("aGk==", pem, "hi", 2) && dec("Zh==", pem, "f", 1)
      && dec("aG*=", pem, 0, 0) && dec("aGk=aGk=", pem, 0, 0) && dec("aGk===", pem, 0, 0)
      && dec("Z", pem, 0, 0) && dec("Zm9vY\n", pem, 0, 0) && dec("Zm9v\v", pem, 0, 0) ;
    check("pem-flavour", ok, "whitespace, loose padding or stray bits handled wrong") ;
  }

  {
    stralloc sa = STRALLOC_ZERO ;
    int r1 = stralloc_cats(&sa, "keep") ;
    int r2 = base64_decode(&sa, "Zm9v!", 5, 0) ;
    int r3 = base64_decode(&sa, "YmFy", 4, 0) ;
    int r4 = base64_encode(&sa, "!", 1, BASE64_NOPAD) ;
    check("stralloc-append", r1 && r2 == 0 && r3 == 1 && r4 == 1 && sa.len == 9 && !memcmp(sa.s, "keepbarIQ", 9),
          "a refused text changed the stralloc, or appending is wrong") ;
    stralloc_free(&sa) ;
  }
  return fails ? 1 : 0 ;
}
