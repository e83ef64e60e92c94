/* PEM blocks (RFC 7468) without OpenSSL's decoder framework, which costs
 * milliseconds per process under OpenSSL 3: yubin-tlsd starts once per
 * connection, so it reads its certificate and key with this and hands
 * OpenSSL the DER. */
#ifndef YUBIN_PEM_H
#define YUBIN_PEM_H

#include <stddef.h>
#include <skalibs/stralloc.h>

/* Find the next "-----BEGIN label-----" ... "-----END label-----" block
 * in s[*pos..len).  On success: label gets the label (NUL-terminated),
 * der the decoded body, *pos moves past the END line, returns 1.  No more
 * blocks: 0.  A block that is malformed (no END line, labels differ, bad
 * base64, headers such as Proc-Type: of encrypted keys): -1.
 * Out of memory: -1 with errno ENOMEM. */
extern int pem_next (char const *s, size_t len, size_t *pos, stralloc *label, stralloc *der) ;

#endif
