/* SASL PLAIN's message: see sasl.h. */

#include <string.h>

#include "sasl.h"

int sasl_plain_split (char const *msg, size_t len, struct sasl_plain *p)
{
  char const *a = memchr(msg, 0, len) ;
  if (!a) return 0 ;
  size_t n1 = a - msg ;
  char const *b = memchr(a + 1, 0, len - n1 - 1) ;
  if (!b) return 0 ;
  size_t n2 = b - msg ;
  if (memchr(b + 1, 0, len - n2 - 1)) return 0 ;
  p->authzid = 0 ; p->authzidlen = n1 ;
  p->authcid = n1 + 1 ; p->authcidlen = n2 - n1 - 1 ;
  p->passwd = n2 + 1 ; p->passwdlen = len - n2 - 1 ;
  return p->authcidlen > 0 ;
}
