/* SASL PLAIN's message (RFC 4616), as smtpd's AUTH PLAIN (RFC 4954) and
 * pop3d's AUTH PLAIN (RFC 5034) receive it, decoded with base64.h's
 * strict default flavour.  Pure function: no I/O, no globals. */
#ifndef YUBIN_SASL_H
#define YUBIN_SASL_H

#include <stddef.h>

/* PLAIN's message: authzid NUL authcid NUL passwd, as offsets into it. */
struct sasl_plain
{
  size_t authzid, authzidlen ;
  size_t authcid, authcidlen ;
  size_t passwd, passwdlen ;
} ;

/* Split msg[0..len).  Returns 1, or 0 if malformed: not exactly two NUL
 * bytes, or an empty authcid. */
extern int sasl_plain_split (char const *msg, size_t len, struct sasl_plain *p) ;

#endif
