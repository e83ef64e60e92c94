/* The queue directories as yubin-qmgr sees them: made and opened at
 * start, scanned for messages to take in (cur/ once at start, the
 * messages a crash or a stop left there; then new/, on each wake-up,
 * each file renamed into cur/), and cleaned of the files that yubin-queue
 * abandoned.  Layout and crash story: qmgr/README. */
#ifndef YUBIN_QMGR_SCAN_H
#define YUBIN_QMGR_SCAN_H

#include <dirent.h>
#include <time.h>

struct scan
{
  int qfd ;           /* queue/ */
  int curfd, newfd, envfd ;
  DIR *cur ;          /* the start-up scan of cur/, 0 once it is over */
  int wanted ;        /* a pass over new/ is due (trigger, timer, signal) */
} ;

/* Make (as the running user) and open tmp/ new/ cur/ env/ under the queue
 * directory qfd.  Dies on failure. */
extern void scan_open (struct scan *s, int qfd) ;

/* Start the scan of cur/.  Dies on failure. */
extern void scan_start (struct scan *s) ;

/* Is there something to take in: the scan of cur/, or a pass over new/? */
extern int scan_pending (struct scan const *s) ;

/* Take in at most max messages: from cur/ while its scan lasts, else, if
 * a pass is wanted, from new/, renaming each into cur/ (a pass ends when
 * new/ has no more, or on an error: it is tried again on the next
 * wake-up).  take(id, recovered) is called for each message, recovered
 * = 1 for those found in cur/.  Returns how many were taken. */
extern unsigned int scan_intake (struct scan *s, unsigned int max, void (*take) (char const *id, int recovered)) ;

/* Remove the tmp/ files older than stale seconds (yubin-queue was killed
 * or gave up), and the env/ files as old whose message is gone. */
extern void scan_clean (struct scan const *s, time_t now, time_t stale) ;

extern void scan_close (struct scan *s) ;

#endif
