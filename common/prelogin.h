/* The I/O of a pre-login dialogue (yubin-pop3d, yubin-imapd; see
 * loginsplit.h): on fds 0 and 1, non-blocking, with one deadline.
 * Reads take one byte at a time, so that nothing past the line that asks
 * for TLS or carries the login is ever read: those bytes belong to the
 * TLS handshake or to the mail part.  Pre-login traffic is a few short
 * lines. */
#ifndef YUBIN_PRELOGIN_H
#define YUBIN_PRELOGIN_H

#include <stddef.h>
#include <skalibs/gccattributes.h>

/* Every read and write from now on must be done within secs seconds. */
extern void prelogin_deadline (unsigned int secs) ;

/* Writes s[0..len) (or the string s) before the deadline; when the
 * client is gone or stuck, ends the process (exit 0: nothing to do for
 * it). */
extern void prelogin_sayb (char const *s, size_t len) ;
extern void prelogin_say (char const *s) ;

/* One byte: 1, 0 at EOF (or a read error), -1 at the deadline. */
extern int prelogin_getbyte (char *c) ;

enum prelogin_line { PRELOGIN_OK, PRELOGIN_LONG, PRELOGIN_NUL, PRELOGIN_EOF, PRELOGIN_TIMEOUT } ;

/* A line into buf[0..max] (NUL-terminated, without its CRLF or bare LF;
 * *len its length).  A line longer than max is read to its end and
 * dropped (PRELOGIN_LONG); one holding a NUL byte gives PRELOGIN_NUL. */
extern enum prelogin_line prelogin_getline (char *buf, size_t max, size_t *len) ;

/* Ends the session: exit 0 after a lingering close.  The client may have
 * sent more than was read (pipelined commands after the last one taken):
 * closing a TCP socket with unread input makes the kernel send a RST,
 * and the client's kernel then drops the answers it has not read yet (the
 * BYE among them).  So: shutdown the sending side, then read and discard
 * until EOF, at most 2 seconds and 1 MB. */
extern void prelogin_end (void) gccattr_noreturn ;

#endif
