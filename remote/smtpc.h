/* The SMTP client side of yubin-remote: one session to a destination,
 * one or more messages over it (RSET between them), each recipient's
 * outcome reported.  TLS is done here, with OpenSSL (tlsc.c): this side
 * holds no key, so it needs no process of its own.
 *
 *   struct smtpc c ;
 *   smtpc_open(&c, &route, domain, &policy, &deadline_conf) ;   connect, EHLO, STARTTLS
 *   smtpc_send(&c, &msg, results) ;   one message: MAIL, RCPT..., DATA
 *   smtpc_send(&c, &msg2, results2) ; the next one, after RSET
 *   smtpc_close(&c) ;                 QUIT
 */
#ifndef YUBIN_SMTPC_H
#define YUBIN_SMTPC_H

#include <stddef.h>
#include <stdint.h>
#include <skalibs/stralloc.h>

#include "dns.h"
#include "route.h"

/* TLS policy for a destination (control/tlsdestinations: "domain:level",
 * "" for the default). */
enum tls_level
{
  TLS_NONE,       /* never STARTTLS */
  TLS_MAY,        /* opportunistic: STARTTLS if offered, no check (default) */
  TLS_ENCRYPT,    /* STARTTLS required, no check */
  TLS_VERIFY,     /* STARTTLS required, CA-signed for the host name */
  TLS_DANE,       /* RFC 7672: TLSA from a validated answer; chosen by
                     default for may when the route is secure and TLSA exist */
} ;

struct smtpc_conf
{
  char const *helohost ;     /* control/helohost, else control/me */
  unsigned int timeoutconnect ;   /* control/timeoutconnect (default 60) */
  unsigned int timeoutremote ;    /* control/timeoutremote (default 1200) */
  char const *outgoingip ;   /* control/outgoingip, or NULL */
  char const *cafile ;       /* CA bundle for verify (default the system's) */
} ;

/* One message to send.  The file holds it from msgoff to EOF, with LF
 * line ends: smtpc adds CR, dot-stuffs, and counts SIZE in CRLF bytes. */
struct smtpc_msg
{
  int fd ;
  uint64_t msgoff ;
  uint64_t size ;            /* LF bytes from msgoff */
  char const *sender ;
  char const *rcpts ;        /* nrcpts NUL-terminated addresses, back to back */
  size_t nrcpts ;
} ;

/* One recipient's outcome: code 0 (accepted, after the final 250), 100
 * (permanent: 5xx, or the message cannot go, e.g. too big, UTF-8 address
 * to a server without SMTPUTF8), 111 (temporary).  text: "host ip said: 550
 * 5.1.1 ..." or our reason, one line. */
struct smtpc_result { unsigned int code ; char text[512] ; } ;

struct smtpc ;   /* opaque: a session */

/* Try the route's targets in order until one answers 220 and EHLO/HELO,
 * then STARTTLS as the policy wants (for TLS_DANE, TLSA come from d).
 * Returns the session, or NULL with *why (temporary: every target failed;
 * the caller defers the whole job) and *perm set when no retry can help
 * (policy refuses every target, e.g. verify failed is temporary, but a
 * dane-required domain with bogus TLSA is temporary too: RFC 7672). */
extern struct smtpc *smtpc_open (struct smtpc_conf const *conf, struct dns *d, struct route const *r,
                                 char const *domain, enum tls_level level, stralloc *why) ;

/* Send one message over an open session.  results[0..m->nrcpts) get the
 * outcomes.  Returns 1 if the session can carry another message, 0 if it
 * is dead (then close it; the results say what happened to this one). */
extern int smtpc_send (struct smtpc *c, struct smtpc_msg const *m, struct smtpc_result *results) ;

/* QUIT (best effort) and free. */
extern void smtpc_close (struct smtpc *c) ;

/* "TLSv1.3 TLS_AES_256_GCM_SHA384 verified=dane-ee" or "none": for logs. */
extern char const *smtpc_tls_summary (struct smtpc const *c) ;

#endif
