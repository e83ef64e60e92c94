/* Making a process non-dumpable (no core file; no ptrace, /proc/PID/mem
 * or /proc/PID/environ for other processes of its uid), for the daemons
 * that hold secrets: yubin-smtpd (passwords in AUTH), yubin-tlsd (the key).
 *
 * The sanitizer build stays dumpable: LeakSanitizer stops the process
 * with ptrace at exit to look for leaks, which a non-dumpable process
 * refuses ("does not work under ptrace"), and the leak check is what that
 * build is for.  Returns 0, or -1 with errno. */
#ifndef YUBIN_NODUMP_H
#define YUBIN_NODUMP_H

#include <sys/prctl.h>

static inline int yubin_nodump (void)
{
#if defined(__SANITIZE_ADDRESS__)
  return 0 ;
#else
  return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) ;
#endif
}

/* After a setuid (which makes the kernel mark the process non-dumpable):
 * in the sanitizer build, dumpable again, for the same reason as above;
 * elsewhere nothing.  Returns 0, or -1 with errno. */
static inline int yubin_sanitizer_dumpable (void)
{
#if defined(__SANITIZE_ADDRESS__)
  return prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) ;
#else
  return 0 ;
#endif
}

#endif
