/* Control files with qmail's semantics: see control.h. */

#include <errno.h>
#include <string.h>

#include <skalibs/bytestr.h>
#include <skalibs/djbunix.h>
#include <skalibs/stralloc.h>
#include <skalibs/types.h>

#include "control.h"
#include "root.h"

static int is_space (char c)
{
  return c == ' ' || c == '\t' || c == '\r' ;
}

/* Slurp control/name into sa.  1 found, 0 missing, -1 error. */
static int control_slurp (stralloc *sa, char const *name)
{
  stralloc path = STRALLOC_ZERO ;
  if (!yubin_path(&path, "control/") || !stralloc_cats(&path, name) || !stralloc_0(&path))
  {
    stralloc_free(&path) ;
    return -1 ;
  }
  sa->len = 0 ;
  int r = openslurpclose(sa, path.s) ;
  int e = errno ;
  stralloc_free(&path) ;
  if (r) return 1 ;
  errno = e ;
  return e == ENOENT ? 0 : -1 ;
}

int control_readline (stralloc *sa, char const *name, char const *def)
{
  int r = control_slurp(sa, name) ;
  if (r < 0) return -1 ;
  if (!r)
  {
    sa->len = 0 ;
    if (def && !stralloc_cats(sa, def)) return -1 ;
    if (!stralloc_0(sa)) return -1 ;
    sa->len-- ;
    return 0 ;
  }
  size_t n = byte_chr(sa->s, sa->len, '\n') ;
  while (n && is_space(sa->s[n-1])) n-- ;
  sa->len = n ;
  if (!stralloc_0(sa)) return -1 ;
  sa->len-- ;
  return 1 ;
}

int control_readulong (unsigned long *n, char const *name, unsigned long def)
{
  stralloc sa = STRALLOC_ZERO ;
  int r = control_readline(&sa, name, 0) ;
  if (r <= 0)
  {
    stralloc_free(&sa) ;
    if (!r) *n = def ;
    return r ;
  }
  size_t i = 0 ;
  while (i < sa.len && (sa.s[i] == ' ' || sa.s[i] == '\t')) i++ ;
  size_t len = ulong_scan(sa.s + i, n) ;
  r = (len && i + len == sa.len) ? 1 : -1 ;
  stralloc_free(&sa) ;
  if (r < 0) errno = EINVAL ;
  return r ;
}

int control_readlist (stralloc *sa, char const *name)
{
  stralloc raw = STRALLOC_ZERO ;
  int r = control_slurp(&raw, name) ;
  sa->len = 0 ;
  if (r <= 0) { stralloc_free(&raw) ; return r ; }
  size_t i = 0 ;
  while (i < raw.len)
  {
    size_t end = i + byte_chr(raw.s + i, raw.len - i, '\n') ;
    size_t a = i, b = end ;
    while (a < b && (is_space(raw.s[a]))) a++ ;
    while (b > a && is_space(raw.s[b-1])) b-- ;
    if (b > a && raw.s[a] != '#')
    {
      if (!stralloc_catb(sa, raw.s + a, b - a) || !stralloc_0(sa))
      {
        stralloc_free(&raw) ;
        return -1 ;
      }
    }
    i = end + 1 ;
  }
  stralloc_free(&raw) ;
  return 1 ;
}

int control_domain_in_list (char const *list, size_t listlen, char const *domain)
{
  size_t dlen = strlen(domain) ;
  if (dlen && domain[dlen-1] == '.') dlen-- ;
  if (!dlen) return 0 ;
  size_t i = 0 ;
  while (i < listlen)
  {
    char const *e = list + i ;
    size_t elen = strlen(e) ;
    i += elen + 1 ;
    if (elen && e[elen-1] == '.') elen-- ;   /* "example.com." is example.com */
    if (elen && e[0] == '.')
    {
      /* ".example.com" matches strict subdomains of example.com */
      if (dlen > elen && case_equalb(domain + dlen - elen, elen, e)) return 1 ;
    }
    else if (elen == dlen && case_equalb(domain, dlen, e)) return 1 ;
  }
  return 0 ;
}
