/* The Received: header smtpd puts on top of each message (RFC 5321
 * 4.4, with RFC 3848 / RFC 6531 protocol names), its RFC 5322 date, and
 * the sanitizing of the untrusted text that goes into it.  Pure: no I/O,
 * no globals. */
#ifndef YUBIN_SMTPD_RECEIVED_H
#define YUBIN_SMTPD_RECEIVED_H

#include <stddef.h>
#include <time.h>
#include <skalibs/stralloc.h>

#define RECEIVED_TEXTMAX 255   /* octets kept of an untrusted name */

struct received
{
  char const *helo ;       /* the HELO argument, already sanitized */
  size_t helolen ;
  char const *host ;       /* the client's reverse DNS name (untrusted), or NULL */
  char const *ip ;         /* the client's address */
  char const *tlsproto ;   /* NULL without TLS (untrusted, from the TLS engine) */
  size_t tlsprotolen ;
  char const *tlscipher ;
  size_t tlscipherlen ;
  char const *authuser ;   /* NULL if not authenticated */
  size_t authuserlen ;
  char const *me ;         /* our name */
  size_t melen ;
  int esmtp ;              /* EHLO, not HELO */
  int smtputf8 ;           /* MAIL had SMTPUTF8 */
  char const *id ;         /* the message id */
  time_t when ;
} ;

/* Append the header (LF line ends) to sa.  Returns 1, 0 on ENOMEM. */
extern int received_header (stralloc *sa, struct received const *r) ;

/* sa = untrusted s[0..len) made safe for the header: printable ASCII
 * only, no parentheses (they would let it forge the comment that holds
 * the trusted address), at most RECEIVED_TEXTMAX octets, "unknown" if
 * nothing is left; NUL-terminated (len excludes the NUL).  Returns 1, 0
 * on ENOMEM. */
extern int received_sanitize (stralloc *sa, char const *s, size_t len) ;

#endif
