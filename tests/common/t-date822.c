/* t-date822: common/date822.c against known dates (and gmtime's weekday). */

#include <stdio.h>
#include <string.h>

#include "date822.h"

static int failed ;

static void check_date (char const *name, time_t t, char const *want)
{
  char buf[DATE822_LEN] ;
  date822_fmt(buf, t) ;
  int ok = !strcmp(buf, want) ;
  if (ok) printf("PASS %s\n", name) ;
  else { printf("FAIL %s: got \"%s\", want \"%s\"\n", name, buf, want) ; failed = 1 ; }
}

int main (void)
{
  check_date("date822-epoch", 0, "Thu, 01 Jan 1970 00:00:00 +0000") ;
  check_date("date822-2026", 1796416496, "Fri, 04 Dec 2026 20:34:56 +0000") ;
  check_date("date822-leap-day", 951782400, "Tue, 29 Feb 2000 00:00:00 +0000") ;
  check_date("date822-before-epoch", -1, "Wed, 31 Dec 1969 23:59:59 +0000") ;
  check_date("date822-end-of-day", 86399, "Thu, 01 Jan 1970 23:59:59 +0000") ;
  /* every day of a year: the weekday agrees with gmtime's */
  int ok = 1 ;
  for (time_t t = 1767225600 ; t < 1767225600 + 366 * 86400 ; t += 86400 + 3601)
  {
    static char const *const wd[7] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" } ;
    struct tm tm ;
    char buf[DATE822_LEN] ;
    date822_fmt(buf, t) ;
    if (!gmtime_r(&t, &tm) || memcmp(buf, wd[tm.tm_wday], 3) || strlen(buf) != DATE822_LEN - 1) ok = 0 ;
  }
  printf("%s date822-weekdays\n", ok ? "PASS" : "FAIL") ;
  if (!ok) failed = 1 ;
  return failed ;
}
