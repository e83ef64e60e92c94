/* t-password: common/password.c against password.h.
 *
 * Checks the exact PHC format of password_hash ("$scrypt$ln=15,r=8,p=1$"
 * + 22 base64 salt + "$" + 43 base64 hash, NUL-terminated), that salts
 * differ, that password_verify accepts the right password and refuses a
 * wrong one, that it agrees with independent scrypt vectors (made with
 * Python's hashlib.scrypt, including other parameters and a 64-byte hash),
 * and that "*", other schemes, malformed, truncated and absurd-cost strings
 * are "unusable" (0) without crashing or hanging.  Prints the CPU time per
 * hash (must stay under 250 ms here; the target is about 100 ms). */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>

#include "password.h"

char const *PROG = "t-password" ;

static void check (char const *name, int ok, char const *why)
{
  if (ok) printf("PASS password-%s\n", name) ;
  else printf("FAIL password-%s: %s\n", name, why) ;
}

static double now_ms (void)
{
  struct timespec t ;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t) ;   /* CPU time: parallel load must not fail the test */
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6 ;
}

static int all_b64 (char const *s, size_t n)
{
  size_t i ;
  for (i = 0 ; i < n ; i++)
    if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", s[i]) || !s[i]) return 0 ;
  return 1 ;
}

/* made with: hashlib.scrypt(pw, salt=..., n=, r=, p=, dklen=), unpadded b64 */
static char const *vec1 = "$scrypt$ln=15,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$XGYmKKxOsQaKKH4qoqICriSOmNsE1h0zJ+c0LbbscJc" ;  /* "correct horse" */
static char const *vec2 = "$scrypt$ln=10,r=4,p=2$AAECAwQFBgcICQoLDA0ODw$UK1vwKxQn8aXKk5WUseJslSE+soEsS7KO9EakJfVnYc" ;  /* "pw" */
static char const *vec3 = "$scrypt$ln=12,r=8,p=1$c2FsdHNhbHQ$KZwZQRXVQz6hqjpl+/eAuLPi6+r0W/QJHPteLUDvmnoLPx9x9EY0UZGaj2KGMY1v9vdpKU5wTSyy8NRKXTzpMA" ;  /* "pässwörd", 64-byte hash */

static char const *unusable[] =
{
  "*", "", "!", "x", "$", "$scrypt$", "$scrypt",
  "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA",
  "$SCRYPT$ln=10,r=4,p=2$AAECAwQFBgcICQoLDA0ODw$UK1vwKxQn8aXKk5WUseJslSE+soEsS7KO9EakJfVnYc",
  "$scrypt$ln=10,r=4$AAECAwQFBgcICQoLDA0ODw$UK1vwKxQn8aXKk5WUseJslSE+soEsS7KO9EakJfVnYc",
  "$scrypt$ln=0,r=4,p=2$AAECAwQFBgcICQoLDA0ODw$UK1vwKxQn8aXKk5WUseJslSE+soEsS7KO9EakJfVnYc",
  "$scrypt$ln=-1,r=4,p=2$AAECAwQFBgcICQoLDA0ODw$UK1vwKxQn8aXKk5WUseJslSE+soEsS7KO9EakJfVnYc",
  "$scrypt$ln=99999999999999999999,r=4,p=2$AAECAwQFBgcICQoLDA0ODw$UK1vwKxQn8aXKk5WUseJslSE+soEsS7KO9EakJfVnYc",
  "$scrypt$ln=40,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$UK1vwKxQn8aXKk5WUseJslSE+soEsS7KO9EakJfVnYc",
  "$scrypt$ln=21,r=1,p=16$AAECAwQFBgcICQoLDA0ODw$UK1vwKxQn8aXKk5WUseJslSE+soEsS7KO9EakJfVnYc",
  "$scrypt$ln=20,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$UK1vwKxQn8aXKk5WUseJslSE+soEsS7KO9EakJfVnYc",
  "$scrypt$ln=10,r=0,p=2$AAECAwQFBgcICQoLDA0ODw$UK1vwKxQn8aXKk5WUseJslSE+soEsS7KO9EakJfVnYc",
  "$scrypt$ln=10,r=4,p=0$AAECAwQFBgcICQoLDA0ODw$UK1vwKxQn8aXKk5WUseJslSE+soEsS7KO9EakJfVnYc",
  "$scrypt$ln=10,r=4,p=2$AAECAwQFBgcICQoLDA0ODw==$UK1vwKxQn8aXKk5WUseJslSE+soEsS7KO9EakJfVnYc",
  "$scrypt$ln=10,r=4,p=2$AAECAwQFBgcICQoLDA0ODw$UK1vwKxQn8aXKk5WUseJslSE+soEsS7KO9EakJfVnYc=",
  "$scrypt$ln=10,r=4,p=2$AAECAwQFBgcICQoLDA0O!w$UK1vwKxQn8aXKk5WUseJslSE+soEsS7KO9EakJfVnYc",
  "$scrypt$ln=10,r=4,p=2$$UK1vwKxQn8aXKk5WUseJslSE+soEsS7KO9EakJfVnYc",
  "$scrypt$ln=10,r=4,p=2$AAECAwQFBgcICQoLDA0ODw$",
  "$scrypt$ln=10,r=4,p=2$AAECAwQFBgcICQoLDA0ODw",
  "$scrypt$ln=10,r=4,p=2$AAECAwQFBgcICQoLDA0ODw$UK1vwKxQn8aXKk5WUseJslSE+soEsS7KO9EakJfVnYc$extra",
  "$scrypt$ln=10,r=4,p=2$AAECAwQFBgcICQoLDA0ODw$UK1vwKxQn8aXKk5WUseJslSE+soEsS7KO9EakJfVnYd",
} ;

int main (void)
{
  stralloc a = STRALLOC_ZERO, b = STRALLOC_ZERO ;
  double t0, t1, per ;
  char buf[160] ;
  size_t i ;
  int r, ok ;

  t0 = now_ms() ;
  r = password_hash(&a, "correct horse") ;
  t1 = now_ms() ;
  per = t1 - t0 ;
  check("hash-returns-1", r == 1, "password_hash failed") ;
  ok = r == 1 && a.len == 88 && strlen(a.s) == a.len
    && !strncmp(a.s, "$scrypt$ln=15,r=8,p=1$", 22)
    && all_b64(a.s + 22, 22) && a.s[44] == '$' && all_b64(a.s + 45, 43) ;
  snprintf(buf, sizeof buf, "bad PHC string \"%.100s\" (len %zu)", r == 1 ? a.s : "", a.len) ;
  check("hash-format", ok, buf) ;
  check("verify-right", password_verify(a.s, "correct horse") == 1, "right password refused") ;
  check("verify-wrong", password_verify(a.s, "correct horsE") == 0, "wrong password accepted") ;
  check("verify-prefix", password_verify(a.s, "correct hors") == 0, "prefix of the password accepted") ;
  check("verify-empty", password_verify(a.s, "") == 0, "empty password accepted") ;

  t0 = now_ms() ;
  r = password_hash(&b, "correct horse") ;
  t1 = now_ms() ;
  if (t1 - t0 < per) per = t1 - t0 ;
  check("salt-random", r == 1 && a.len == b.len && strcmp(a.s, b.s) && memcmp(a.s + 22, b.s + 22, 22), "same salt twice") ;
  snprintf(buf, sizeof buf, "%.1f ms per hash", per) ;
  printf("# scrypt ln=15 r=8 p=1: %s (CPU)\n", buf) ;
  check("hash-time", per < 250, buf) ;

  check("vector-ln15", password_verify(vec1, "correct horse") == 1, "independent vector refused") ;
  check("vector-ln15-wrong", password_verify(vec1, "correct horse ") == 0, "wrong password accepted") ;
  check("vector-ln10-r4-p2", password_verify(vec2, "pw") == 1, "independent vector refused") ;
  check("vector-utf8-64byte", password_verify(vec3, "p\xc3\xa4ssw\xc3\xb6rd") == 1, "independent vector refused") ;
  check("vector-utf8-wrong", password_verify(vec3, "passwort") == 0, "wrong password accepted") ;

  r = password_hash(&b, "") ;
  check("empty-password", r == 1 && password_verify(b.s, "") == 1 && password_verify(b.s, " ") == 0, "empty password round trip") ;
  {
    char *big = malloc(10001) ;
    if (!big) return 111 ;
    memset(big, 'p', 10000) ; big[10000] = 0 ;
    r = password_hash(&b, big) ;
    ok = r == 1 && password_verify(b.s, big) == 1 ;
    big[9999] = 'q' ;
    ok = ok && password_verify(b.s, big) == 0 ;
    free(big) ;
    check("long-password", ok, "10000-byte password round trip") ;
  }
  r = password_hash(&b, "p\xc3\xa4ss :$\\\"") ;
  check("specials-password", r == 1 && password_verify(b.s, "p\xc3\xa4ss :$\\\"") == 1, "round trip") ;

  for (i = 0 ; i < sizeof unusable / sizeof *unusable ; i++)
  {
    t0 = now_ms() ;
    r = password_verify(unusable[i], "pw") ;
    t1 = now_ms() ;
    snprintf(buf, sizeof buf, "\"%.60s\" gave %d in %.0f ms", unusable[i], r, t1 - t0) ;
    {
      char name[32] ;
      snprintf(name, sizeof name, "unusable-%zu", i) ;
      check(name, r == 0 && t1 - t0 < 2000, buf) ;
    }
  }
  /* every prefix of a valid string: 0, never a crash (heap copies for ASan) */
  ok = 1 ;
  for (i = 0 ; i < strlen(vec2) ; i++)
  {
    char *p = malloc(i + 1) ;
    if (!p) return 111 ;
    memcpy(p, vec2, i) ; p[i] = 0 ;
    if (password_verify(p, "pw") != 0) ok = 0 ;
    free(p) ;
  }
  check("prefixes", ok, "a truncated hash verified") ;
  stralloc_free(&a) ;
  stralloc_free(&b) ;
  return 0 ;
}
