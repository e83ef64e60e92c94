/* The client side of UCSPI-TLS, as the protocol daemons (yubin-smtpd,
 * yubin-pop3d) speak it to yubin-tlsd, which alone links OpenSSL:
 * - yubin-tlsd -S in front hands over three fds (SSLCTLFD, SSLREADFD,
 *   SSLWRITEFD); writing 'y' on the control fd asks for the handshake,
 *   after which the control fd carries the session parameters and the two
 *   pipes carry the cleartext;
 * - or yubin-tlsd did the handshake before starting us (SSL_PROTOCOL set:
 *   implicit TLS);
 * - or TLS on demand ($TLSD set, no yubin-tlsd in front of us): at the
 *   switch we start yubin-tlsd -E ourselves, with the connection, a
 *   socketpair for the cleartext and one for the parameters. */
#ifndef YUBIN_UCSPITLS_H
#define YUBIN_UCSPITLS_H

#include <skalibs/stralloc.h>

struct ucspitls
{
  int on ;                    /* the connection is encrypted */
  int ctlfd, rfd, wfd ;       /* UCSPI-TLS fds from yubin-tlsd -S, or -1 */
  int ondemand ;              /* $TLSD: start yubin-tlsd -E at the switch */
  char const *tlsd ;          /* its path ($TLSD with a '/'), or NULL */
  char const *kms ;           /* $TLSDTIMEOUT: its -K, or NULL */
  stralloc proto ;            /* SSL_PROTOCOL, NUL-terminated */
  stralloc cipher ;           /* SSL_CIPHER, NUL-terminated */
} ;
#define UCSPITLS_ZERO { .on = 0, .ctlfd = -1, .rfd = -1, .wfd = -1, .ondemand = 0, .tlsd = 0, .kms = 0, .proto = STRALLOC_ZERO, .cipher = STRALLOC_ZERO }

/* Reads the environment: on for implicit TLS, or the three fds
 * (close-on-exec, so that what we run never holds them) when they are all
 * there and sane, or $TLSD (and $TLSDTIMEOUT, milliseconds).  A
 * $TLSDTIMEOUT that is not a number ends the process. */
extern void ucspitls_init (struct ucspitls *tls) ;

/* Whether STARTTLS (STLS) can be offered. */
extern int ucspitls_offered (struct ucspitls const *tls) ;

/* The switch, once the "go ahead" reply went out and the pipelined
 * cleartext input was dropped: the handshake (yubin-tlsd -E started
 * first, on demand), the parameters (exported to the environment, as
 * UCSPI-TLS does), the TLS pipes (or the cleartext socket) moved to fds 0
 * and 1, non-blocking.  Waits at most timeout seconds for the parameters.
 * A failed handshake, exec or control fd ends the process, logged
 * (ylog) with ip and cmd (the command that asked for TLS). */
extern void ucspitls_switch (struct ucspitls *tls, unsigned int timeout, char const *ip, char const *cmd) ;

#endif
