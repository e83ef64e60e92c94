/* RFC 5322 dates in UTC, "Thu, 01 Jan 1970 00:00:00 +0000", for the
 * headers yubin writes: smtpd's Received:, yubin-queue's Received: for
 * local callers, qmgr's bounces. */
#ifndef YUBIN_DATE822_H
#define YUBIN_DATE822_H

#include <time.h>

#define DATE822_LEN 32   /* with the NUL */

/* The date of t into buf (DATE822_LEN bytes), NUL-terminated.  Formatted
 * by hand: strftime() would read /etc/localtime on every message. */
extern void date822_fmt (char *buf, time_t t) ;

#endif
