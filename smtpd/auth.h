/* AUTH (RFC 4954): PLAIN and LOGIN, only over TLS, checked by a
 * checkpassword program ($CHECKPASSWORD, else yubin-checkpassword beside
 * us).  Failures after the first are answered late, the third ends the
 * session; whatever a password went through is wiped.  State in auth
 * (smtpd.h). */
#ifndef YUBIN_SMTPD_AUTH_H
#define YUBIN_SMTPD_AUTH_H

#include "smtpcmd.h"

/* The AUTH command in io.line, parsed as c. */
extern void auth_command (struct smtpcmd const *c) ;

/* Wipe what a password went through: the command line, the decoded
 * responses, and the already consumed space of the input buffer. */
extern void auth_wipe (void) ;

#endif
