/* fuzz-ylog: libFuzzer target for ylog_escape (common/ylog.c).
 *
 * The escaped form must never contain a space, '=', a newline, a NUL or
 * any byte outside 0x21-0x7e, so a value from the network can neither
 * forge a key=value field nor start a line.  It must also be decodable:
 * undoing \xHH gives back the input (its first 512 bytes followed by
 * "..." when longer; "" for an empty value).  ylog itself is called too,
 * with stderr pointed at /dev/null for the duration of the call. */

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>

#include "ylog.h"

char const *PROG = "fuzz-ylog" ;

static stralloc sa = STRALLOC_ZERO, dec = STRALLOC_ZERO, z = STRALLOC_ZERO ;
static int devnull = -1 ;

#define must(x) do { if (!(x)) abort() ; } while (0)

static int hexval (char c)
{
  if (c >= '0' && c <= '9') return c - '0' ;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10 ;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10 ;
  return -1 ;
}

int LLVMFuzzerTestOneInput (uint8_t const *data, size_t size)
{
  char const *s = (char const *)data ;
  size_t i, n ;
  int cut ;
  sa.len = 0 ;
  must(stralloc_catb(&sa, "k=", 2)) ;
  must(ylog_escape(&sa, s, size) == 1) ;
  must(sa.len >= 2 && !memcmp(sa.s, "k=", 2)) ;
  for (i = 2 ; i < sa.len ; i++)
  {
    unsigned char c = sa.s[i] ;
    must(c != ' ' && c != '=' && c != '\n' && c != 0) ;
    must(c >= 0x21 && c <= 0x7e) ;
  }
  /* decode */
  if (!size) { must(sa.len == 4 && !memcmp(sa.s + 2, "\"\"", 2)) ; goto logit ; }
  dec.len = 0 ;
  n = sa.len ;
  cut = size > 512 ;
  if (cut) { must(n >= 5 && !memcmp(sa.s + n - 3, "...", 3)) ; n -= 3 ; }
  for (i = 2 ; i < n ; )
  {
    char c = sa.s[i] ;
    must(c != '"') ;
    if (c == '\\')
    {
      int h, l ;
      must(i + 4 <= n && sa.s[i + 1] == 'x') ;
      h = hexval(sa.s[i + 2]) ; l = hexval(sa.s[i + 3]) ;
      must(h >= 0 && l >= 0) ;
      c = (char)(h * 16 + l) ;
      i += 4 ;
    }
    else i++ ;
    must(stralloc_catb(&dec, &c, 1)) ;
  }
  if (cut) must(dec.len <= 512 && dec.len > 0 && !memcmp(dec.s, s, dec.len)) ;
  else must(dec.len == size && !memcmp(dec.s, s, size)) ;

 logit:
  /* ylog with the input as a value: no crash, nothing written where we see it */
  z.len = 0 ;
  must(stralloc_catb(&z, s, size) && stralloc_0(&z)) ;
  if (devnull < 0) devnull = open("/dev/null", O_WRONLY) ;
  {
    int saved = dup(2) ;
    if (saved >= 0 && devnull >= 0 && dup2(devnull, 2) >= 0)
    {
      ylog("fuzz", "v", z.s, "w", (char *)0, (char *)0) ;
      dup2(saved, 2) ;
    }
    if (saved >= 0) close(saved) ;
  }
  return 0 ;
}
