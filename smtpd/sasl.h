/* The pieces of SASL PLAIN (RFC 4616) and LOGIN that smtpd, pop3d and
 * imapd share: base64 as RFC 4954 carries it, and PLAIN's message.
 * Pure functions: no I/O, no globals. */
#ifndef YUBIN_SASL_H
#define YUBIN_SASL_H

#include <stddef.h>
#include <skalibs/stralloc.h>

/* Decode base64 s[0..len) (RFC 4648 standard alphabet; '=' padding
 * optional, but if present it must be right; no whitespace, no stray
 * bits) and append the bytes to out.  Returns 1, 0 if s is not valid
 * base64 (out unchanged), -1 out of memory. */
extern int sasl_b64decode (stralloc *out, char const *s, size_t len) ;

/* Append the padded base64 of s[0..len) to out.  Returns 1, 0 on ENOMEM. */
extern int sasl_b64encode (stralloc *out, char const *s, size_t len) ;

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
