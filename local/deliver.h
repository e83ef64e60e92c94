/* yubin-local's delivery, callable in-process: see localdeliver.c. */
#ifndef YUBIN_LOCALDELIVER_H
#define YUBIN_LOCALDELIVER_H

/* argv as yubin-local's (argv[0] is the program name).  Returns 0 when
 * the message is delivered; on failure it dies through strerr with 100
 * (permanent) or 111 (temporary) and a reason on stderr, exactly as the
 * program does.  PROG should be "local" for the log lines. */
extern int localdeliver_main (int argc, char const *const *argv) ;

#endif
