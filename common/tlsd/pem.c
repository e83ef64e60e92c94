/* PEM blocks: see pem.h. */

#include <errno.h>
#include <string.h>

#include <skalibs/bytestr.h>
#include <skalibs/stralloc.h>

#include "base64.h"
#include "pem.h"

#define BEGIN "-----BEGIN "
#define END "-----END "
#define DASHES "-----"

/* the label of a "-----BEGIN label-----" line at s (n bytes to its end) */
static int line_label (char const *s, size_t n, char const *start, size_t *lstart, size_t *llen)
{
  size_t k = strlen(start) ;
  if (n < k + 5 || memcmp(s, start, k) || memcmp(s + n - 5, DASHES, 5)) return 0 ;
  *lstart = k ;
  *llen = n - k - 5 ;
  return 1 ;
}

/* base64 body (whitespace allowed, '=' padding at the end) into der */
static int decode_body (char const *s, size_t n, stralloc *der)
{
  unsigned int acc = 0, bits = 0, pad = 0 ;
  der->len = 0 ;
  for (size_t i = 0 ; i < n ; i++)
  {
    unsigned char c = s[i] ;
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue ;
    if (c == '=') { pad++ ; continue ; }
    int v = base64_digit(c) ;
    if (v < 0 || pad) return 0 ;   /* bad digit, or data after padding */
    acc = (acc << 6) | (unsigned int)v ;
    bits += 6 ;
    if (bits >= 8)
    {
      bits -= 8 ;
      char b = (char)((acc >> bits) & 0xff) ;
      if (!stralloc_catb(der, &b, 1)) return -1 ;
    }
  }
  if (pad > 2 || bits >= 6) return 0 ;
  return 1 ;
}

int pem_next (char const *s, size_t len, size_t *pos, stralloc *label, stralloc *der)
{
  size_t i = *pos ;
  for (;;)
  {
    if (i >= len) return 0 ;
    size_t n = byte_chr(s + i, len - i, '\n') ;
    size_t m = n ;
    if (m && s[i + m - 1] == '\r') m-- ;
    size_t ls, ll ;
    if (line_label(s + i, m, BEGIN, &ls, &ll))
    {
      label->len = 0 ;
      if (!stralloc_catb(label, s + i + ls, ll) || !stralloc_0(label)) return -1 ;
      label->len-- ;
      i += n + 1 ;
      break ;
    }
    i += n + 1 ;
  }
  size_t body = i ;
  while (i < len)
  {
    size_t n = byte_chr(s + i, len - i, '\n') ;
    size_t m = n ;
    if (m && s[i + m - 1] == '\r') m-- ;
    size_t ls, ll ;
    if (line_label(s + i, m, END, &ls, &ll))
    {
      if (ll != label->len || memcmp(s + i + ls, label->s, ll)) return -1 ;
      if (memchr(s + body, ':', i - body)) return -1 ;   /* RFC 1421 headers: encrypted */
      int r = decode_body(s + body, i - body, der) ;
      if (r <= 0) return -1 ;
      *pos = i + n + 1 > len ? len : i + n + 1 ;
      return 1 ;
    }
    i += n + 1 ;
  }
  return -1 ;
}
