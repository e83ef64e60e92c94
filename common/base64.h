/* Base64 (RFC 4648 section 4, the standard alphabet): the one encoder and
 * decoder.  Its users and the flavour each wants:
 *
 *   smtpd's SASL (RFC 4954)  padded; padding optional when decoding, but
 *                            right if present; no whitespace, no stray bits
 *   PHC password strings     BASE64_NOPAD: no '=' at all, no stray bits
 *   tlsd's PEM (RFC 7468)    BASE64_SPACE | BASE64_LAX: whitespace anywhere,
 *                            padding may be missing, stray bits ignored
 *
 * Pure functions: no I/O, no globals. */
#ifndef YUBIN_BASE64_H
#define YUBIN_BASE64_H

#include <stddef.h>
#include <sys/types.h>
#include <skalibs/stralloc.h>

#define BASE64_NOPAD 1   /* encoding: write no '='; decoding: refuse '=' */
#define BASE64_SPACE 2   /* decoding: skip ' ', '\t', '\r', '\n' anywhere */
#define BASE64_LAX 4     /* decoding: '=' padding may be short or missing
                            (at most 2, nothing after it), stray bits are
                            ignored */

/* The most bytes base64_encodeb writes for n input bytes. */
#define BASE64_ENCODED_MAX(n) (((n) + 2) / 3 * 4)
/* The most bytes base64_decodeb writes for a text of n characters. */
#define BASE64_DECODED_MAX(n) ((n) / 4 * 3 + 2)

/* in[0..n) encoded into out (BASE64_ENCODED_MAX(n) bytes of room), not
 * NUL-terminated.  flags: 0 or BASE64_NOPAD.  Returns the length. */
extern size_t base64_encodeb (char *out, char const *in, size_t n, unsigned int flags) ;

/* Appends the encoding of s[0..n) to sa.  Returns 1, 0 on ENOMEM. */
extern int base64_encode (stralloc *sa, char const *s, size_t n, unsigned int flags) ;

/* s[0..n) decoded into out (BASE64_DECODED_MAX(n) bytes of room).
 * Returns the length, or -1 if s is not valid base64 under flags. */
extern ssize_t base64_decodeb (char *out, char const *s, size_t n, unsigned int flags) ;

/* Appends the decoding of s[0..n) to sa.  Returns 1, 0 if s is not valid
 * base64 under flags (sa unchanged), -1 on ENOMEM. */
extern int base64_decode (stralloc *sa, char const *s, size_t n, unsigned int flags) ;

#endif
