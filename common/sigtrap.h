/* The long-running programs' signal set-up (yubin-qmgr, yubin-lspawn,
 * yubin-rspawn): skalibs' selfpipe, trapping the listed signals, so that
 * they arrive as bytes on a fd in the iopause loop. */
#ifndef YUBIN_SIGTRAP_H
#define YUBIN_SIGTRAP_H

/* selfpipe_init() and trap the signals of the 0-terminated list sigs.
 * Returns the selfpipe's fd; dies (111) on failure. */
extern int sigtrap_init (int const *sigs) ;

#endif
