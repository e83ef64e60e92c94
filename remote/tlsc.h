/* Client-side TLS for yubin-remote, on OpenSSL 3, over a non-blocking
 * socket, every call bounded by a deadline (skalibs tain, STAMP).  This
 * side holds no key, so it runs in the SMTP client's own process
 * (DESIGN.md); the server side is yubin-tlsd.
 *
 *   struct tlsc t = TLSC_ZERO ;
 *   tlsc_start(&t, fd, "mx.example.org", 0, TLSC_DANE, 0, tlsa, n, &deadline, why, sizeof why) ;
 *   tlsc_write(&t, "EHLO ...\r\n", len, &deadline) ; tlsc_read(&t, buf, sizeof buf, &deadline) ;
 *   tlsc_close(&t, &deadline) ;
 */
#ifndef YUBIN_TLSC_H
#define YUBIN_TLSC_H

#include <stddef.h>
#include <sys/types.h>
#include <skalibs/tai.h>

#include "dns.h"

/* What the peer's certificate must pass. */
enum tlsc_check
{
  TLSC_NOCHECK,   /* encrypt only (may, encrypt): log what was seen */
  TLSC_CA,        /* a CA in cafile (or the system bundle) and the host name (RFC 6125) */
  TLSC_DANE,      /* RFC 7672: the TLSA records given, host name as reference identifier */
} ;

struct tlsc
{
  void *ctx ;            /* SSL_CTX */
  void *ssl ;            /* SSL */
  int fd ;
  char version[16] ;     /* "TLSv1.3" */
  char cipher[64] ;      /* "TLS_AES_256_GCM_SHA384" */
  char verified[16] ;    /* "dane-ee", "dane-ta", "ca", "none" */
  char peer[128] ;       /* the certificate's subject CN (or "-"), for the log */
  char seen[96] ;        /* for TLSC_NOCHECK: what a check would have said */
} ;
#define TLSC_ZERO { .ctx = 0, .ssl = 0, .fd = -1, .version = "", .cipher = "", .verified = "", .peer = "", .seen = "" }

/* Is a TLSA record one RFC 7672 lets an SMTP client use (DANE-TA(2) or
 * DANE-EE(3), a known selector and matching type)? */
extern int tlsc_tlsa_usable (struct dns_tlsa const *r) ;

/* The handshake on fd (non-blocking, already connected; STARTTLS done).
 * host: the MX or relay name, sent as SNI unless it is an IP literal, and
 * the name checked for TLSC_CA and TLSC_DANE; host2 (or 0): for TLSC_DANE,
 * host's CNAME-expanded name, a second name the certificate may bear
 * (RFC 7672 2.2.2; names only matter for DANE-TA).  cafile: for TLSC_CA, or 0
 * for the system's default paths.  tlsa/ntlsa: for TLSC_DANE (unusable
 * records are skipped; none usable is an error).  Returns 1 with the
 * fields above filled, or 0 with why (one line) and everything freed;
 * a failed check is a failure (the caller tries the next host). */
extern int tlsc_start (struct tlsc *t, int fd, char const *host, char const *host2, enum tlsc_check check, char const *cafile,
                       struct dns_tlsa const *tlsa, size_t ntlsa, tain const *deadline, char *why, size_t whylen) ;

/* Read at most len bytes: >0 bytes read, 0 EOF, -1 error or deadline
 * (errno ETIMEDOUT).  Returns as soon as some bytes are there. */
extern ssize_t tlsc_read (struct tlsc *t, char *buf, size_t len, tain const *deadline) ;

/* Write all of buf: 1, or 0 on error or deadline (errno set). */
extern int tlsc_write (struct tlsc *t, char const *buf, size_t len, tain const *deadline) ;

/* Are decrypted bytes waiting in OpenSSL's buffers? */
extern int tlsc_pending (struct tlsc const *t) ;

/* close_notify (best effort, until deadline) and free; fd is not closed. */
extern void tlsc_close (struct tlsc *t, tain const *deadline) ;

/* Wait until fd is ready for events (IOPAUSE_READ / IOPAUSE_WRITE) or the
 * deadline: 1 ready, 0 with errno (ETIMEDOUT at the deadline).  Used by
 * the TLS calls and by smtpc for the cleartext socket. */
extern int tlsc_waitfd (int fd, int events, tain const *deadline) ;

#endif
