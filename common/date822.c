/* RFC 5322 dates: see date822.h. */

#include <string.h>

#include "date822.h"

static char *two (char *p, unsigned int n)
{
  *p++ = '0' + (n / 10) % 10 ;
  *p++ = '0' + n % 10 ;
  return p ;
}

void date822_fmt (char *buf, time_t t)
{
  static char const days[] = "ThuFriSatSunMonTueWed" ;   /* 1 Jan 1970 was a Thursday */
  static char const months[] = "JanFebMarAprMayJunJulAugSepOctNovDec" ;
  struct tm tm ;
  if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0)
  {
    strcpy(buf, "Thu, 01 Jan 1970 00:00:00 +0000") ;
    return ;
  }
  long day = (long)(t / 86400) - (t % 86400 < 0) ;
  unsigned int wd = (unsigned int)(((day % 7) + 7) % 7) ;
  unsigned int y = (unsigned int)tm.tm_year + 1900 ;
  char *p = buf ;
  memcpy(p, days + 3 * wd, 3) ; p += 3 ;
  *p++ = ',' ; *p++ = ' ' ;
  p = two(p, tm.tm_mday) ; *p++ = ' ' ;
  memcpy(p, months + 3 * tm.tm_mon, 3) ; p += 3 ; *p++ = ' ' ;
  p = two(p, y / 100) ; p = two(p, y % 100) ; *p++ = ' ' ;
  p = two(p, tm.tm_hour) ; *p++ = ':' ;
  p = two(p, tm.tm_min) ; *p++ = ':' ;
  p = two(p, tm.tm_sec) ;
  memcpy(p, " +0000", 7) ;
}
