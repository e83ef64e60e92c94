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

/* the base64 body (whitespace allowed, '=' padding at the end) into der */
static int decode_body (char const *s, size_t n, stralloc *der)
{
  der->len = 0 ;
  return base64_decode(der, s, n, BASE64_SPACE | BASE64_LAX) ;
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
