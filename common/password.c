/* scrypt password hashes in PHC string format (password.h).
 *
 *   $scrypt$ln=15,r=8,p=1$<salt, unpadded base64>$<hash, unpadded base64>
 *
 * password_verify accepts other parameters within bounds that keep one
 * verification under 256 MiB of memory and 16 times the default work, so
 * hashes can be strengthened later without breaking old ones; anything
 * else is "unusable" (0), so a bad passwd line cannot stall a login. */

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <skalibs/stralloc.h>

#include "base64.h"
#include "password.h"

#define LN_DEFAULT 15
#define R_DEFAULT 8
#define P_DEFAULT 1
#define SALT_LEN 16
#define HASH_LEN 32
#define SALT_MIN 8
#define HASH_MIN 32
#define BIN_MAX 64
#define MEM_MAX (256UL << 20)
#define WORK_MAX ((uint64_t)16 * R_DEFAULT * P_DEFAULT << LN_DEFAULT)   /* 16 x the default cost */

/* Strict unpadded decoding of s[0..n) into out (BIN_MAX + 2 bytes of
 * room): no '=', no stray bits, at most BIN_MAX bytes.  Returns the
 * length, or 0 if invalid. */
static size_t b64_decode (unsigned char *out, char const *s, size_t n)
{
  if (BASE64_DECODED_MAX(n) > BIN_MAX + 2) return 0 ;
  ssize_t r = base64_decodeb((char *)out, s, n, BASE64_NOPAD) ;
  return r < 0 || r > BIN_MAX ? 0 : (size_t)r ;
}

static int scrypt (char const *password, unsigned char const *salt, size_t saltlen,
                   unsigned int ln, uint64_t r, uint64_t p, unsigned char *key, size_t keylen)
{
  uint64_t n = (uint64_t)1 << ln ;
  uint64_t maxmem = 128 * r * p + 128 * r * (n + 2) + (1 << 16) ;
  /* yubin-checkpassword runs once per login: no openssl.cnf, no table of
     every legacy algorithm name (about half a millisecond each). */
  if (!OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG | OPENSSL_INIT_NO_ADD_ALL_CIPHERS
                           | OPENSSL_INIT_NO_ADD_ALL_DIGESTS | OPENSSL_INIT_NO_ATEXIT, 0))
    return 0 ;
  return EVP_PBE_scrypt(password, strlen(password), salt, saltlen, n, r, p, maxmem, key, keylen) ;
}

int password_hash (stralloc *out, char const *password)
{
  unsigned char salt[SALT_LEN], key[HASH_LEN] ;
  char buf[128] ;
  size_t n ;
  if (!password) return (errno = EINVAL, 0) ;
  if (RAND_bytes(salt, sizeof salt) != 1) return (errno = EIO, 0) ;
  if (!scrypt(password, salt, sizeof salt, LN_DEFAULT, R_DEFAULT, P_DEFAULT, key, sizeof key))
    return (errno = ENOMEM, 0) ;
  memcpy(buf, "$scrypt$ln=15,r=8,p=1$", 22) ;
  n = 22 ;
  n += base64_encodeb(buf + n, (char const *)salt, sizeof salt, BASE64_NOPAD) ;
  buf[n++] = '$' ;
  n += base64_encodeb(buf + n, (char const *)key, sizeof key, BASE64_NOPAD) ;
  OPENSSL_cleanse(key, sizeof key) ;
  if (!stralloc_copyb(out, buf, n) || !stralloc_0(out)) return 0 ;
  out->len-- ;
  return 1 ;
}

/* "name=<decimal>" at *s, followed by term; advances *s */
static int param (char const **s, char const *name, char term, unsigned long max, unsigned long *v)
{
  size_t nl = strlen(name) ;
  char const *x = *s ;
  unsigned long n = 0 ;
  if (strncmp(x, name, nl) || x[nl] != '=') return 0 ;
  x += nl + 1 ;
  if (*x < '1' || *x > '9') return 0 ;
  while (*x >= '0' && *x <= '9')
  {
    n = n * 10 + (unsigned long)(*x++ - '0') ;
    if (n > max) return 0 ;
  }
  if (*x != term) return 0 ;
  *v = n ;
  *s = x + 1 ;
  return 1 ;
}

int password_verify (char const *phc, char const *password)
{
  unsigned char salt[BIN_MAX + 2], hash[BIN_MAX + 2], key[BIN_MAX] ;
  size_t saltlen, hashlen ;
  unsigned long ln, r, p ;
  char const *s = phc, *dollar ;
  int ok ;
  if (!phc || !password) return 0 ;
  if (strncmp(s, "$scrypt$", 8)) return 0 ;
  s += 8 ;
  if (!param(&s, "ln", ',', 30, &ln) || !param(&s, "r", ',', 64, &r) || !param(&s, "p", '$', 16, &p)) return 0 ;
  if (((uint64_t)128 * r << ln) > MEM_MAX || (uint64_t)128 * r * p > MEM_MAX) return 0 ;
  if (((uint64_t)r * p << ln) > WORK_MAX) return 0 ;
  dollar = strchr(s, '$') ;
  if (!dollar) return 0 ;
  saltlen = b64_decode(salt, s, dollar - s) ;
  if (saltlen < SALT_MIN) return 0 ;
  s = dollar + 1 ;
  hashlen = b64_decode(hash, s, strlen(s)) ;
  if (hashlen < HASH_MIN) return 0 ;
  if (!scrypt(password, salt, saltlen, ln, r, p, key, hashlen)) return (errno = ENOMEM, -1) ;
  ok = !CRYPTO_memcmp(key, hash, hashlen) ;
  OPENSSL_cleanse(key, sizeof key) ;
  return ok ;
}
