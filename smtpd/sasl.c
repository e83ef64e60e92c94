/* SASL helpers: see sasl.h. */

#include <stdint.h>
#include <string.h>

#include <skalibs/stralloc.h>

#include "base64.h"
#include "sasl.h"

#define b64 base64_alphabet


int sasl_b64decode (stralloc *out, char const *s, size_t len)
{
  size_t pad = 0, start = out->len ;
  uint32_t acc = 0 ;
  unsigned int bits = 0 ;
  while (pad < 2 && pad < len && s[len - 1 - pad] == '=') pad++ ;
  if (pad && (len % 4 || (len - pad) % 4 != 4 - pad)) return 0 ;
  len -= pad ;
  if (len % 4 == 1) return 0 ;
  if (!stralloc_readyplus(out, len / 4 * 3 + 3)) return -1 ;
  for (size_t i = 0 ; i < len ; i++)
  {
    int v = base64_digit((unsigned char)s[i]) ;
    if (v < 0) { out->len = start ; return 0 ; }
    acc = (acc << 6 | (uint32_t)v) & 0xffffff ;
    bits += 6 ;
    if (bits >= 8)
    {
      bits -= 8 ;
      out->s[out->len++] = (char)((acc >> bits) & 0xff) ;
    }
  }
  if (acc & ((1u << bits) - 1)) { out->len = start ; return 0 ; }
  return 1 ;
}

int sasl_b64encode (stralloc *out, char const *s, size_t len)
{
  unsigned char const *in = (unsigned char const *)s ;
  size_t i ;
  if (!stralloc_readyplus(out, (len + 2) / 3 * 4)) return 0 ;
  char *o = out->s + out->len ;
  for (i = 0 ; i + 2 < len ; i += 3)
  {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2] ;
    *o++ = b64[v >> 18] ; *o++ = b64[(v >> 12) & 63] ;
    *o++ = b64[(v >> 6) & 63] ; *o++ = b64[v & 63] ;
  }
  if (len - i == 1)
  {
    uint32_t v = (uint32_t)in[i] << 16 ;
    *o++ = b64[v >> 18] ; *o++ = b64[(v >> 12) & 63] ; *o++ = '=' ; *o++ = '=' ;
  }
  else if (len - i == 2)
  {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 ;
    *o++ = b64[v >> 18] ; *o++ = b64[(v >> 12) & 63] ; *o++ = b64[(v >> 6) & 63] ; *o++ = '=' ;
  }
  out->len = o - out->s ;
  return 1 ;
}

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
