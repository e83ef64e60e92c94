/* Per-address session slots: see connlimit.h. */

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <skalibs/djbunix.h>
#include <skalibs/ip46.h>
#include <skalibs/stralloc.h>
#include <skalibs/types.h>

#include "connlimit.h"
#include "control.h"
#include "root.h"
#include "ylog.h"

/* FNV-1a, 64 bits: spreads addresses over the lock file's offsets. */
static uint64_t hash (unsigned char const *s, size_t len)
{
  uint64_t h = 14695981039346656037ULL ;
  for (size_t i = 0 ; i < len ; i++) { h ^= s[i] ; h *= 1099511628211ULL ; }
  return h ;
}

/* The key of an address: IPv4 as is, IPv6 its /64 (one site's allocation,
 * which one client can fill with addresses at will).  0 if not an address. */
static size_t address_key (char const *ip, unsigned char *key)
{
  ip46 a ;
  if (!ip46_scan(ip, &a)) return 0 ;
  if (ip46_is6(&a)) { memcpy(key, a.ip, 8) ; return 8 ; }
  memcpy(key, a.ip, 4) ;
  return 4 ;
}

static int slots_allowed (unsigned long *n)
{
  char const *x = getenv("MAXCONNIP") ;
  if (x)
  {
    if (!*x || x[ulong_scan(x, n)]) { errno = EINVAL ; return 0 ; }
  }
  else if (control_readulong(n, "concurrencyremoteip", 10) < 0) return 0 ;
  if (*n > CONNLIMIT_MAX) *n = CONNLIMIT_MAX ;
  return 1 ;
}

int connlimit_take (char const *ip, int cloexec, unsigned long *limit)
{
  unsigned char key[16] ;
  size_t keylen = address_key(ip, key) ;
  if (!keylen) { errno = EINVAL ; return -1 ; }
  if (!slots_allowed(limit)) return -1 ;
  if (!*limit) return 1 ;
  /* 2^40 / 256 buckets: two addresses sharing one are 1 in 2^32 */
  off_t base = (off_t)(hash(key, keylen) & 0xffffffffULL) * CONNLIMIT_MAX ;
  stralloc fn = STRALLOC_ZERO ;
  if (!yubin_path(&fn, "lock/connections")) return -1 ;
  int fd = open(fn.s, O_RDWR | O_CREAT | O_NOFOLLOW | (cloexec ? O_CLOEXEC : 0), 0660) ;
  stralloc_free(&fn) ;
  if (fd < 0) return -1 ;
  for (unsigned long i = 0 ; i < *limit ; i++)
  {
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = base + (off_t)i, .l_len = 1 } ;
    if (fcntl(fd, F_OFD_SETLK, &fl) == 0) return 1 ;   /* fd kept: it holds the slot */
    if (errno != EAGAIN && errno != EACCES) { int e = errno ; fd_close(fd) ; errno = e ; return -1 ; }
  }
  fd_close(fd) ;
  return 0 ;
}

void connlimit_log_refusal (char const *ip, unsigned long limit)
{
  char fmt[ULONG_FMT] ;
  fmt[ulong_fmt(fmt, limit)] = 0 ;
  ylog("refuse", "ip", ip, "reason", "too-many-connections", "limit", fmt, (char *)0) ;
}
