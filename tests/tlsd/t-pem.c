/* t-pem: common/pem.c against pem.h.
 *
 * Two blocks in one text (a chain) come out in order with their labels
 * and exact DER bytes; CRLF line ends and text around the blocks are
 * fine; "=" padding of one and two bytes; the end of the text gives 0;
 * an END label that differs, a missing END, a bad base64 digit, data after
 * padding and an RFC 1421 header (an encrypted key) give -1. */

#include <stdio.h>
#include <string.h>

#include <skalibs/stralloc.h>

#include "common/tlsd/pem.h"

char const *PROG = "t-pem" ;

static void check (char const *name, int ok, char const *why)
{
  if (ok) printf("PASS pem-%s\n", name) ;
  else printf("FAIL pem-%s: %s\n", name, why) ;
  fflush(stdout) ;
}

static int next (char const *text, size_t *pos, stralloc *label, stralloc *der)
{
  return pem_next(text, strlen(text), pos, label, der) ;
}

int main (void)
{
  stralloc label = STRALLOC_ZERO, der = STRALLOC_ZERO ;
  size_t pos = 0 ;
  /* "hello" = aGVsbG8= ; "hi" = aGk= ; "abc" = YWJj */
  char const *chain =
    "leading text\n"
    "-----BEGIN CERTIFICATE-----\r\n"
    "aGVs\r\nbG8=\r\n"
    "-----END CERTIFICATE-----\r\n"
    "between\n"
    "-----BEGIN CERTIFICATE-----\n"
    "YWJj\n"
    "-----END CERTIFICATE-----\n"
    "-----BEGIN EC PRIVATE KEY-----\n"
    "aGk=\n"
    "-----END EC PRIVATE KEY-----" ;
  int r = next(chain, &pos, &label, &der) ;
  check("first-block", r == 1 && !strcmp(label.s, "CERTIFICATE") && der.len == 5 && !memcmp(der.s, "hello", 5), "first block") ;
  r = next(chain, &pos, &label, &der) ;
  check("second-block", r == 1 && !strcmp(label.s, "CERTIFICATE") && der.len == 3 && !memcmp(der.s, "abc", 3), "second block") ;
  r = next(chain, &pos, &label, &der) ;
  check("third-block-no-final-newline", r == 1 && !strcmp(label.s, "EC PRIVATE KEY") && der.len == 2 && !memcmp(der.s, "hi", 2), "key block") ;
  r = next(chain, &pos, &label, &der) ;
  check("end-of-text", r == 0, "more blocks") ;

  static char const *const bad[][2] = {
    { "end-label-differs", "-----BEGIN CERTIFICATE-----\naGk=\n-----END PRIVATE KEY-----\n" },
    { "no-end", "-----BEGIN CERTIFICATE-----\naGk=\n" },
    { "bad-digit", "-----BEGIN CERTIFICATE-----\naG*=\n-----END CERTIFICATE-----\n" },
    { "data-after-padding", "-----BEGIN CERTIFICATE-----\naGk=aGk=\n-----END CERTIFICATE-----\n" },
    { "encrypted-header", "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\naGk=\n-----END RSA PRIVATE KEY-----\n" },
  } ;
  for (unsigned i = 0 ; i < sizeof(bad) / sizeof(bad[0]) ; i++)
  {
    pos = 0 ;
    r = next(bad[i][1], &pos, &label, &der) ;
    check(bad[i][0], r == -1, "not refused") ;
  }
  pos = 0 ;
  check("no-block", next("just text\nno pem here\n", &pos, &label, &der) == 0, "found a block") ;
  stralloc_free(&label) ;
  stralloc_free(&der) ;
  return 0 ;
}
