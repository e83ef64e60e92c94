/* Asking a checkpassword program (the checkpassword interface, DESIGN.md)
 * whether a login and password are good, and waiting for the answer:
 * the way SMTP AUTH uses it, where nothing runs as the user afterwards.
 *
 *   prog next          with  login\0password\0extra\0  on fd 3 (a pipe),
 *                      fd 0 /dev/null, fd 1 a pipe to us, fd 2 ours,
 *                      SIGPIPE at its default
 *
 * next is a program that just exits 0 ("/bin/true"), as qmail-smtpd's AUTH
 * patches do: prog execs it only when the credentials are good. */
#ifndef YUBIN_CHECKPW_H
#define YUBIN_CHECKPW_H

#include <stddef.h>
#include <skalibs/tai.h>

/* Most bytes the interface carries on fd 3 (login, password, extra, with
 * their three NULs). */
#define CHECKPW_MAX 512

enum checkpw_result
{
  CHECKPW_OK = 0,      /* exit 0: good credentials */
  CHECKPW_BAD = 1,     /* exit 1: bad credentials */
  CHECKPW_TEMP = 2,    /* anything else: exit 2 or 111, a signal, the deadline */
} ;

/* Run prog with next as its argument, niced by nice (0: not at all; a
 * session that already failed a login may be made to wait behind others);
 * login and pass must hold no NUL and,
 * with extra and the three NULs, fit CHECKPW_MAX (else errno = E2BIG and
 * -1).  Waits at most until deadline, then kills it (CHECKPW_TEMP).
 * Returns the result, with the wait status in *wstat (-1 if killed at
 * the deadline), or -1 if prog could not be run (errno set).  The copy
 * of the password it makes is wiped. */
extern int checkpw_run (char const *prog, char const *next, char const *login, size_t loginlen,
                        char const *pass, size_t passlen, char const *extra, int nice,
                        tain const *deadline, int *wstat) ;

#endif
