/* key=value event logging to stderr, one line per event (DESIGN.md, Logs).
 *
 *   ylog("auth-fail", "ip", ip, "user", user, "mech", "PLAIN", (char *)0);
 *
 * writes "<PROG>: auth-fail ip=203.0.113.9 user=alice mech=PLAIN\n" in one
 * write(2).  PROG is the global set by the program (skalibs' PROG, as used
 * by strerr), e.g. "smtpd".  Values are escaped: every byte that is not
 * printable ASCII (0x21-0x7e), and '=', '\\', '"', is written as \xHH,
 * so values from the network can never forge a field or a line.  A NULL
 * value is written as "-".  An empty value is written as "" (two quotes).
 * Values longer than 512 bytes are cut and end with "...".
 * Errors writing the log are ignored on purpose (logging must never stop
 * mail); this is the one place where a return value is deliberately dropped. */
#ifndef YUBIN_YLOG_H
#define YUBIN_YLOG_H

#include <stddef.h>
#include <skalibs/stralloc.h>

extern void ylog(char const *verb, ...);

/* Append the escaped form of s[0..len) to sa.  Returns 1, 0 on ENOMEM. */
extern int ylog_escape(stralloc *sa, char const *s, size_t len);

#endif
