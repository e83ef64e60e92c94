/* Base64, the one encoder and decoder: see base64.h. */

#include <stdint.h>

#include <skalibs/stralloc.h>

#include "base64.h"

static char const alphabet[64] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/" ;

/* a digit's value + 1; 0 for everything else */
#define D(c, v) [c] = (v) + 1
static unsigned char const digit[256] = {
  D('A', 0), D('B', 1), D('C', 2), D('D', 3), D('E', 4), D('F', 5), D('G', 6), D('H', 7),
  D('I', 8), D('J', 9), D('K', 10), D('L', 11), D('M', 12), D('N', 13), D('O', 14), D('P', 15),
  D('Q', 16), D('R', 17), D('S', 18), D('T', 19), D('U', 20), D('V', 21), D('W', 22), D('X', 23),
  D('Y', 24), D('Z', 25), D('a', 26), D('b', 27), D('c', 28), D('d', 29), D('e', 30), D('f', 31),
  D('g', 32), D('h', 33), D('i', 34), D('j', 35), D('k', 36), D('l', 37), D('m', 38), D('n', 39),
  D('o', 40), D('p', 41), D('q', 42), D('r', 43), D('s', 44), D('t', 45), D('u', 46), D('v', 47),
  D('w', 48), D('x', 49), D('y', 50), D('z', 51), D('0', 52), D('1', 53), D('2', 54), D('3', 55),
  D('4', 56), D('5', 57), D('6', 58), D('7', 59), D('8', 60), D('9', 61), D('+', 62), D('/', 63),
} ;
#undef D

size_t base64_encodeb (char *out, char const *in, size_t n, unsigned int flags)
{
  unsigned char const *s = (unsigned char const *)in ;
  size_t i, o = 0 ;
  for (i = 0 ; i + 2 < n ; i += 3)
  {
    uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2] ;
    out[o++] = alphabet[v >> 18] ;
    out[o++] = alphabet[(v >> 12) & 63] ;
    out[o++] = alphabet[(v >> 6) & 63] ;
    out[o++] = alphabet[v & 63] ;
  }
  if (n - i == 1)
  {
    uint32_t v = (uint32_t)s[i] << 16 ;
    out[o++] = alphabet[v >> 18] ;
    out[o++] = alphabet[(v >> 12) & 63] ;
    if (!(flags & BASE64_NOPAD)) { out[o++] = '=' ; out[o++] = '=' ; }
  }
  else if (n - i == 2)
  {
    uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 ;
    out[o++] = alphabet[v >> 18] ;
    out[o++] = alphabet[(v >> 12) & 63] ;
    out[o++] = alphabet[(v >> 6) & 63] ;
    if (!(flags & BASE64_NOPAD)) out[o++] = '=' ;
  }
  return o ;
}

int base64_encode (stralloc *sa, char const *s, size_t n, unsigned int flags)
{
  if (!stralloc_readyplus(sa, BASE64_ENCODED_MAX(n))) return 0 ;
  sa->len += base64_encodeb(sa->s + sa->len, s, n, flags) ;
  return 1 ;
}

ssize_t base64_decodeb (char *out, char const *s, size_t n, unsigned int flags)
{
  size_t o = 0, digits = 0, pad = 0 ;
  uint32_t acc = 0 ;
  unsigned int bits = 0 ;
  for (size_t i = 0 ; i < n ; i++)
  {
    unsigned char c = s[i] ;
    unsigned int v = digit[c] ;
    if (!v)
    {
      if (c == '=' && !(flags & BASE64_NOPAD)) { pad++ ; continue ; }
      if ((flags & BASE64_SPACE) && (c == ' ' || c == '\t' || c == '\r' || c == '\n')) continue ;
      return -1 ;
    }
    if (pad) return -1 ;   /* data after the padding */
    digits++ ;
    acc = (acc << 6 | (v - 1)) & 0xffffff ;
    bits += 6 ;
    if (bits >= 8)
    {
      bits -= 8 ;
      out[o++] = (char)((acc >> bits) & 0xff) ;
    }
  }
  /* a lone digit in the last quantum carries no whole byte */
  if (pad > 2 || digits % 4 == 1) return -1 ;
  if (!(flags & BASE64_LAX))
  {
    if (pad && (digits + pad) % 4) return -1 ;     /* padding must end the quantum */
    if (acc & ((1u << bits) - 1)) return -1 ;      /* stray bits */
  }
  return (ssize_t)o ;
}

int base64_decode (stralloc *sa, char const *s, size_t n, unsigned int flags)
{
  if (!stralloc_readyplus(sa, BASE64_DECODED_MAX(n))) return -1 ;
  ssize_t r = base64_decodeb(sa->s + sa->len, s, n, flags) ;
  if (r < 0) return 0 ;
  sa->len += (size_t)r ;
  return 1 ;
}
