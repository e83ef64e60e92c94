/* yubin-smtpd's private header: the state its modules share, one named
 * struct per concern, and the connection I/O (io.c) they all speak
 * through.  Not for use outside smtpd/.
 *
 *   yubin-smtpd.c  the session: control files, command dispatch, HELO,
 *                  MAIL, RCPT, DATA (into the queue with common/qq)
 *   io.c           replies out, command lines in, under the timeout
 *   (common/ucspitls.c: the UCSPI-TLS client side, yubin-tlsd's control
 *                  fds or yubin-tlsd -E started at STARTTLS)
 *   auth.c         AUTH PLAIN and LOGIN, delays, wiping
 *   datascan.c     the end-of-data scanner (pure)
 *   received.c     the Received: header (pure)
 *   address.c, smtpcmd.c, checkpw.c (and common/sasl.c)   parsers and the
 *                  checkpassword client (pure or self-contained) */
#ifndef YUBIN_SMTPD_H
#define YUBIN_SMTPD_H

#include <stddef.h>
#include <skalibs/buffer.h>
#include <skalibs/gccattributes.h>
#include <skalibs/stralloc.h>

#include "ucspitls.h"

/* Who we are and who is talking: set up once, before the greeting
 * (yubin-smtpd.c). */
struct smtpd_conf
{
  char const *remoteip ;      /* TCPREMOTEIP, or "unknown" */
  char const *remotehost ;    /* TCPREMOTEHOST, or NULL */
  char const *relayclient ;   /* RELAYCLIENT, or NULL */
  stralloc me ;               /* control/me, NUL-terminated */
  unsigned int timeout ;      /* seconds the client gets per read or write */
  unsigned int timeoutfirst ; /* seconds a new client gets for its first
                                 command: an idle connection that never
                                 says anything holds a slot for no more */
  int submission ;            /* -s: AUTH required before MAIL */
  int auth ;                  /* -s or -a: AUTH offered over TLS (never on
                                 port 25 unless asked for) */
  int anysender ;             /* an authenticated user may send as anyone */
} ;
extern struct smtpd_conf conf ;

/* The connection (io.c). */
struct smtpd_io
{
  buffer in ;                 /* fd 0, non-blocking */
  stralloc out ;              /* pending replies for fd 1, non-blocking */
  stralloc line ;             /* the current command line, '\n'-terminated */
  unsigned int errors ;       /* bad commands so far */
  unsigned long lines ;       /* command lines read so far */
} ;
extern struct smtpd_io io ;

/* What the client said so far (yubin-smtpd.c): forgotten after STARTTLS. */
struct smtpd_session
{
  int seenhelo ;
  int esmtp ;                 /* EHLO rather than HELO */
  stralloc helo ;             /* the HELO argument, sanitized */
  int seenmail ;              /* a transaction is open */
  int smtputf8 ;              /* its MAIL had SMTPUTF8 */
  stralloc mailfrom ;         /* NUL-terminated */
  stralloc rcptenv ;          /* "Taddr\0" per accepted recipient */
  unsigned int nrcpt ;
} ;
extern struct smtpd_session session ;

/* TLS (common/ucspitls.h; defined in yubin-smtpd.c). */
extern struct ucspitls tls ;

/* AUTH (auth.c). */
struct smtpd_auth
{
  int authed ;
  stralloc user ;             /* the login, NUL-terminated */
  unsigned int fails ;        /* failed attempts in this session */
} ;
extern struct smtpd_auth auth ;

/* io.c: every failure to allocate or to talk ends the session. */
extern void die_nomem (void) gccattr_noreturn ;
extern void die_control (char const *name) gccattr_noreturn ;
extern void cat (stralloc *sa, char const *s) ;
extern void catb (stralloc *sa, char const *s, size_t len) ;
extern void catulong (stralloc *sa, unsigned long n) ;
extern void setstr (stralloc *sa, char const *s) ;   /* sa = s, NUL-terminated */
/* Queue a reply (CRLF included); written by flush or before the next read. */
extern void reply (char const *s) ;
/* A reply to a bad command: counts towards the error limit, and the last
 * one becomes 421 and the end of the session.  cmd names it in the log. */
extern void errreply (char const *s, char const *cmd) ;
/* Write all pending replies, waiting for the client at most the timeout. */
extern void flush (void) ;
/* One command line into io.line (see io.c). */
extern void getcmdline (void) ;
/* Make sure io.in holds input: flushes the replies first. */
extern void fill (void) ;

#endif
