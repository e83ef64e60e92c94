/* The SMTP client side of yubin-remote: one session to a destination,
 * one or more messages over it (RSET between them), each recipient's
 * outcome reported.  TLS is done here, with OpenSSL (tlsc.c): this side
 * holds no key, so it needs no process of its own.
 *
 *   struct smtpc c ;
 *   struct smtpc *c = smtpc_open(&conf, d, &route, domain, smtpc_policy(domain), &why) ;
 *   smtpc_send(c, &msg, results) ;   one message: MAIL, RCPT..., DATA
 *   smtpc_send(c, &msg2, results2) ; the next one, after RSET
 *   smtpc_close(c) ;                 QUIT
 *
 * Deadlines: RFC 5321 4.5.3.2 per stage (greeting and MAIL/RCPT 5 min,
 * DATA 2 min, each data block 3 min, the final reply 10 min), each cut to
 * conf->timeoutremote; connecting: conf->timeoutconnect per target.  A
 * reply line longer than 512 bytes, or a reply of more than 100 lines, kills
 * the session (temporary failure).
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
 * then STARTTLS as the level wants.  For TLS_MAY and TLS_DANE, a target
 * whose answers were DNSSEC-validated (target->secure) and that has usable
 * TLSA records (dns_tlsa through d; d may be 0: no DANE) is held to DANE
 * (Postfix's "dane"); TLSA present but none usable: encrypt; a failed DANE
 * match fails that target (next one, never cleartext).  TLS_DANE without
 * validated TLSA is TLS_MAY.  At TLS_MAY a failed handshake retries that
 * target once in cleartext.  Returns the session, or NULL with why ("host[ip]:
 * reason; ..." for each target tried): always temporary, the caller defers
 * the whole job. */
extern struct smtpc *smtpc_open (struct smtpc_conf const *conf, struct dns *d, struct route const *r,
                                 char const *domain, enum tls_level level, stralloc *why) ;

/* Send one message over an open session.  results[0..m->nrcpts) get the
 * outcomes.  Returns 1 if the session can carry another message, 0 if it
 * is dead (then close it; the results say what happened to this one), -1
 * if the session turned out dead at the RSET before this message (a reused
 * session the server has dropped): nothing of this message was sent, the
 * results say 111; close it and send the message over a new session.
 * Refused before anything is sent, with 100 for every recipient: a message
 * bigger than the server's SIZE, a UTF-8 sender or recipient and no
 * SMTPUTF8 (bounce, not mangle); the session stays usable. */
extern int smtpc_send (struct smtpc *c, struct smtpc_msg const *m, struct smtpc_result *results) ;

/* QUIT (best effort) and free. */
extern void smtpc_close (struct smtpc *c) ;

/* "TLSv1.3 TLS_AES_256_GCM_SHA384 verified=dane-ee" or "none": for logs. */
extern char const *smtpc_tls_summary (struct smtpc const *c) ;

/* What the log line of a session says, field by field (strings live as
 * long as the session; "" when there is no TLS). */
struct smtpc_info
{
  char const *peer ;          /* "host[ip]" or "[ip]" */
  char const *ip ;            /* "192.0.2.1" */
  enum tls_level level ;      /* the level applied (after the DANE upgrade) */
  char const *tls_version ;   /* "TLSv1.3" */
  char const *tls_cipher ;
  char const *tls_verified ;  /* "dane-ee", "dane-ta", "ca", "none" */
  char const *tls_peer ;      /* the certificate's subject CN */
  char const *tls_seen ;      /* what a CA check said (for none) */
} ;
extern void smtpc_info (struct smtpc const *c, struct smtpc_info *i) ;

/* The TLS level for a recipient domain from control/tlsdestinations (read
 * once): lines "domain:level", ".domain:level" for its subdomains, ":level"
 * the default; level one of none, may, encrypt, verify, dane.  The most
 * specific entry wins; no entry: TLS_MAY.  An unknown level name, or a
 * file that cannot be read, gives TLS_VERIFY (fail closed: the mail waits
 * and the log says why, rather than going out with less than asked). */
extern enum tls_level smtpc_policy (char const *domain) ;
extern char const *smtpc_level_name (enum tls_level l) ;

#endif
