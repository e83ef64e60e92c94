/* fuzz-address: libFuzzer target for common/address.c.
 *
 * First input byte: bit 0 allow_null, bit 1 utf8; the rest is the text
 * after "MAIL FROM:".  Besides crashes, aborts when an invariant breaks:
 * the result is NUL-terminated, no longer than a path allows and *rest is
 * inside the input; the canonical form is a fixed point (parsing
 * "<" canonical ">" gives OK/NODOMAIN and the same text); address_split
 * finds a domain that address_check_domain accepts and a local part of at
 * most 64 octets.  The input is also checked as a domain: if
 * address_check_domain accepts it, "<x@" domain ">" must parse (or be
 * too long). */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>

#include "smtpd/address.h"

char const *PROG = "fuzz-address" ;

static stralloc out = STRALLOC_ZERO, again = STRALLOC_ZERO, wrapped = STRALLOC_ZERO ;

#define must(x) do { if (!(x)) abort() ; } while (0)

int LLVMFuzzerTestOneInput (uint8_t const *data, size_t size)
{
  int allow_null, utf8 ;
  char const *s ;
  size_t len, rest = (size_t)-1 ;
  enum address_error e ;
  if (!size) return 0 ;
  allow_null = data[0] & 1 ;
  utf8 = !!(data[0] & 2) ;
  s = (char const *)data + 1 ;
  len = size - 1 ;

  e = address_parse_path(s, len, allow_null, utf8, &out, &rest) ;
  must(e == ADDR_OK || e == ADDR_SYNTAX || e == ADDR_TOOLONG || e == ADDR_NODOMAIN || e == ADDR_BADDOMAIN) ;
  must(address_strerror(e) && *address_strerror(e)) ;
  if (e == ADDR_OK || e == ADDR_NODOMAIN)
  {
    size_t at, i ;
    must(rest <= len) ;
    must(out.s && out.s[out.len] == 0 && strlen(out.s) == out.len) ;
    must(out.len <= 254) ;
    must(out.len || (e == ADDR_OK && allow_null)) ;
    for (i = 0 ; i < out.len ; i++)
      must((unsigned char)out.s[i] >= 0x20 && out.s[i] != 0x7f && (utf8 || (unsigned char)out.s[i] < 0x80)) ;
    /* fixed point */
    wrapped.len = 0 ;
    must(stralloc_catb(&wrapped, "<", 1) && stralloc_catb(&wrapped, out.s, out.len) && stralloc_catb(&wrapped, ">", 1)) ;
    rest = (size_t)-1 ;
    must(address_parse_path(wrapped.s, wrapped.len, allow_null, utf8, &again, &rest) == e) ;
    must(again.len == out.len && !memcmp(again.s, out.s, out.len) && rest == wrapped.len) ;
    /* split */
    at = address_split(out.s, out.len) ;
    if (e == ADDR_OK && out.len)
    {
      must(at < out.len) ;
      must(at >= 1 && at <= 64) ;
      must(address_check_domain(out.s + at + 1, out.len - at - 1, utf8) == ADDR_OK) ;
    }
    else must(at == out.len) ;
  }

  /* the input as a domain */
  e = address_check_domain(s, len, utf8) ;
  must(e == ADDR_OK || e == ADDR_TOOLONG || e == ADDR_BADDOMAIN) ;
  if (e == ADDR_OK)
  {
    wrapped.len = 0 ;
    must(stralloc_catb(&wrapped, "<x@", 3) && stralloc_catb(&wrapped, s, len) && stralloc_catb(&wrapped, ">", 1)) ;
    e = address_parse_path(wrapped.s, wrapped.len, 0, utf8, &out, &rest) ;
    must(e == ADDR_OK || (e == ADDR_TOOLONG && wrapped.len > 256)) ;
    /* same length, except that IPv4 literals lose leading zeros */
    if (e == ADDR_OK) must(len && s[0] == '[' ? out.len <= len + 2 : out.len == len + 2) ;
  }
  return 0 ;
}
