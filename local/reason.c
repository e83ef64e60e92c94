/* The failure reason of the delivery code (local/local.h): qmail-local's
 * one line, built for the caller to print or pass back, and the death
 * when out of memory. */

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>

#include "exitcodes.h"

#include "local/local.h"

void local_dienomem (void)
{
  strerr_dief1x(EX_TEMP, "out of memory (#4.3.0)") ;
}

int local_fail (stralloc *why, int code, int sys, ...)
{
  int e = errno ;
  va_list ap ;
  char const *s ;
  why->len = 0 ;
  size_t last = 0 ;   /* where the last string starts */
  va_start(ap, sys) ;
  while ((s = va_arg(ap, char const *)))
  {
    last = why->len ;
    if (!stralloc_cats(why, s)) local_dienomem() ;
  }
  va_end(ap) ;
  if (sys)
  {
    char const *t = strerror(e) ;
    size_t n = strlen(t) ;
    if (!stralloc_readyplus(why, n + 2)) local_dienomem() ;
    memmove(why->s + last + n + 2, why->s + last, why->len - last) ;
    memcpy(why->s + last, ": ", 2) ;
    memcpy(why->s + last + 2, t, n) ;
    why->len += n + 2 ;
  }
  /* one line, whatever the strings held (a path, a program's words) */
  for (size_t i = 0 ; i < why->len ; i++)
    if (why->s[i] == '\n' || why->s[i] == '\r' || !why->s[i]) why->s[i] = '_' ;
  if (!stralloc_0(why)) local_dienomem() ;
  why->len-- ;
  return code ;
}
