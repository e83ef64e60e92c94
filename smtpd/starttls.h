/* The client side of UCSPI-TLS, as yubin-smtpd speaks it to yubin-tlsd:
 * yubin-tlsd -S hands over three fds (SSLCTLFD, SSLREADFD, SSLWRITEFD);
 * writing 'y' on the control fd asks for the handshake, after which the
 * control fd carries the session parameters and the two pipes carry the
 * cleartext.  Or yubin-tlsd did the handshake before starting us
 * (SSL_PROTOCOL set: implicit TLS).  Or, TLS on demand ($TLSD set, no
 * yubin-tlsd in front of us): at STARTTLS we start yubin-tlsd -E
 * ourselves, with the connection, a socketpair for the cleartext and one
 * for the parameters.  State in tls (smtpd.h). */
#ifndef YUBIN_SMTPD_STARTTLS_H
#define YUBIN_SMTPD_STARTTLS_H

/* Reads the environment: tls.on for implicit TLS, or the three fds
 * (close-on-exec, so the queue never holds them) when they are all there
 * and sane, or $TLSD (and $TLSDTIMEOUT, milliseconds); STARTTLS is offered
 * only then.  A $TLSDTIMEOUT that is not a number ends the process. */
extern void starttls_init (void) ;

/* Whether STARTTLS can be offered. */
extern int starttls_offered (void) ;

/* The switch, once the 220 went out and the pipelined cleartext input was
 * dropped: the handshake (yubin-tlsd -E started first, on demand), the
 * parameters (exported to the environment, as UCSPI-TLS does), the TLS
 * pipes (or the cleartext socket) moved to fds 0 and 1.  A failed
 * handshake, exec or control fd ends the process. */
extern void starttls_switch (void) ;

#endif
