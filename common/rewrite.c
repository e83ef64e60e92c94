/* qmail-send's rewriting of envelope recipients: see rewrite.h. */

#include <string.h>

#include <skalibs/bytestr.h>
#include <skalibs/stralloc.h>

#include "rewrite.h"

int rewrite_noat (stralloc *addr, char const *host)
{
  if (byte_chr(addr->s, addr->len, '@') < addr->len) return 0 ;
  if (!stralloc_catb(addr, "@", 1) || !stralloc_cats(addr, host) || !stralloc_0(addr)) return -1 ;
  addr->len-- ;
  return 1 ;
}

/* Is key[0..n) an entry of list (any case)? */
static int listed (char const *list, size_t listlen, char const *key, size_t n)
{
  size_t i = 0 ;
  while (i < listlen)
  {
    size_t m = strlen(list + i) ;
    if (m == n && case_equalb(list + i, n, key)) return 1 ;
    i += m + 1 ;
  }
  return 0 ;
}

int rewrite_percent (char const *list, size_t listlen, stralloc *addr)
{
  int changed = 0 ;
  size_t at = byte_rchr(addr->s, addr->len, '@') ;
  if (at >= addr->len) return 0 ;
  while (listed(list, listlen, addr->s + at + 1, addr->len - at - 1))
  {
    size_t p = byte_rchr(addr->s, at, '%') ;
    if (p >= at) break ;
    addr->len = at ;
    addr->s[p] = '@' ;
    addr->s[addr->len] = 0 ;
    at = p ;
    changed = 1 ;
  }
  return changed ;
}

/* The prefix of key[0..n) in a virtualdomains list: 1 found (prefix may
 * be empty), 0 not listed. */
static int vfind (char const *list, size_t listlen, char const *key, size_t n, char const **prefix, size_t *plen)
{
  size_t i = 0 ;
  while (i < listlen)
  {
    size_t m = strlen(list + i) ;
    size_t c = byte_chr(list + i, m, ':') ;
    if (c < m && c == n && case_equalb(list + i, n, key))
    {
      *prefix = list + i + c + 1 ;
      *plen = m - c - 1 ;
      return 1 ;
    }
    i += m + 1 ;
  }
  return 0 ;
}

int rewrite_vdomain (char const *list, size_t listlen, char const *addr, size_t len, char const **prefix, size_t *plen)
{
  size_t at = byte_rchr(addr, len, '@') ;
  if (at >= len || !listlen) return 0 ;
  for (size_t i = 0 ; i <= len ; i++)
    if (!i || i == at + 1 || i == len || (i > at && addr[i] == '.'))
      if (vfind(list, listlen, addr + i, len - i, prefix, plen)) return *plen > 0 ;
  return 0 ;
}

int rewrite_vdomain_local (stralloc *out, char const *prefix, size_t plen, char const *addr, size_t len)
{
  out->len = 0 ;
  if (!stralloc_catb(out, prefix, plen) || !stralloc_catb(out, "-", 1)
   || !stralloc_catb(out, addr, len) || !stralloc_0(out)) return 0 ;
  out->len-- ;
  return 1 ;
}
