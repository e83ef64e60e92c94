/* The standard base64 alphabet (RFC 4648 section 4), shared by the SASL
 * decoder (sasl.c, padded) and the PHC password strings (password.c,
 * unpadded). */
#ifndef YUBIN_BASE64_H
#define YUBIN_BASE64_H

extern char const base64_alphabet[65] ;

/* The value (0..63) of a base64 digit, or -1 if c is not one. */
extern int base64_digit (unsigned char c) ;

#endif
