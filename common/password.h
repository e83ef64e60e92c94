/* Password hashes: scrypt (OpenSSL 3 EVP_PBE_scrypt), stored as a PHC
 * string "$scrypt$ln=15,r=8,p=1$<salt b64>$<hash b64>" (16-byte random
 * salt, 32-byte hash, unpadded standard base64). */
#ifndef YUBIN_PASSWORD_H
#define YUBIN_PASSWORD_H

#include <skalibs/stralloc.h>

/* Returns 1 and the PHC string (NUL-terminated) in out, 0 on error. */
extern int password_hash(stralloc *out, char const *password);

/* Returns 1 match, 0 mismatch or unusable hash ("*", unknown scheme),
 * -1 system error.  Constant-time comparison. */
extern int password_verify(char const *phc, char const *password);

#endif
