/* yubin-connlimit: at most N connections at once from one client address.
 *
 *   yubin-connlimit [ -m message ] prog...
 *
 * Runs under tcpserver (UCSPI: $TCPREMOTEIP), before anything that reads
 * from the client (yubin-tlsd included), and execs prog holding one of the
 * address's N slots for as long as prog and what it starts keep the slot's
 * fd open.  When all N are taken it writes message (CRLF added) to fd 1,
 * logs "refuse", and exits 0 without running prog.
 *
 * The slots are byte-range locks on one file, <root>/lock/connections:
 * open file description locks (F_OFD_SETLK), which survive exec and fork
 * and go away with the last fd, even when the holders are SIGKILLed.  The
 * file stays empty: an address's slots are bytes at an offset derived from
 * a hash of the address (IPv4 address, or IPv6 /64 prefix).  Nothing to
 * clean up, no state to lose.
 *
 * N: $MAXCONNIP if set (tcprules can set it per network; 0: no limit),
 * else control/concurrencyremoteip (default 10), at most 256. */

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/djbunix.h>
#include <skalibs/exec.h>
#include <skalibs/ip46.h>
#include <skalibs/sgetopt.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/types.h>

#include "control.h"
#include "exitcodes.h"
#include "root.h"
#include "ylog.h"

#define USAGE "yubin-connlimit [ -m message ] prog..."
#define SLOTS_MAX 256

char const *PROG = "connlimit" ;

/* FNV-1a, 64 bits: spreads addresses over the lock file's offsets. */
static uint64_t hash (unsigned char const *s, size_t len)
{
  uint64_t h = 14695981039346656037ULL ;
  for (size_t i = 0 ; i < len ; i++) { h ^= s[i] ; h *= 1099511628211ULL ; }
  return h ;
}

/* The key of an address: IPv4 as is, IPv6 its /64 (one site's allocation,
 * which one client can fill with addresses at will). */
static size_t address_key (char const *ip, unsigned char *key)
{
  ip46 a ;
  if (!ip46_scan(ip, &a)) strerr_dief(EX_PERM, "bad TCPREMOTEIP: ", ip) ;
  if (ip46_is6(&a)) { memcpy(key, a.ip, 8) ; return 8 ; }
  memcpy(key, a.ip, 4) ;
  return 4 ;
}

static unsigned long slots_allowed (void)
{
  unsigned long n ;
  char const *x = getenv("MAXCONNIP") ;
  if (x)
  {
    if (!*x || x[ulong_scan(x, &n)]) strerr_dief(EX_PERM, "MAXCONNIP is not a number: ", x) ;
  }
  else if (control_readulong(&n, "concurrencyremoteip", 10) < 0)
    strerr_diefusys(EX_TEMP, "read control/concurrencyremoteip") ;
  return n > SLOTS_MAX ? SLOTS_MAX : n ;
}

/* Take a free slot of the address: returns its fd, or -1 if all are held. */
static int take_slot (char const *ip, unsigned long n)
{
  stralloc fn = STRALLOC_ZERO ;
  unsigned char key[16] ;
  size_t keylen = address_key(ip, key) ;
  /* 2^40 / 256 buckets: two addresses sharing one are 1 in 2^32 */
  off_t base = (off_t)(hash(key, keylen) & 0xffffffffULL) * SLOTS_MAX ;
  if (!yubin_path(&fn, "lock/connections")) strerr_diefu1sys(EX_TEMP, "allocate memory") ;
  /* not O_CLOEXEC: the fd goes with prog and holds the slot */
  int fd = open(fn.s, O_RDWR | O_CREAT | O_NOFOLLOW, 0660) ;
  if (fd < 0) strerr_diefusys(EX_TEMP, "open ", fn.s) ;
  stralloc_free(&fn) ;
  for (unsigned long i = 0 ; i < n ; i++)
  {
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = base + (off_t)i, .l_len = 1 } ;
    if (fcntl(fd, F_OFD_SETLK, &fl) == 0) return fd ;
    if (errno != EAGAIN && errno != EACCES) strerr_diefusys(EX_TEMP, "lock a connection slot") ;
  }
  fd_close(fd) ;
  return -1 ;
}

int main (int argc, char const *const *argv)
{
  char const *message = 0 ;
  subgetopt l = SUBGETOPT_ZERO ;
  for (;;)
  {
    int opt = subgetopt_r(argc, argv, "m:", &l) ;
    if (opt == -1) break ;
    if (opt != 'm') strerr_dieusage(EX_PERM, USAGE) ;
    message = l.arg ;
  }
  argc -= l.ind ; argv += l.ind ;
  if (!argc) strerr_dieusage(EX_PERM, USAGE) ;
  char const *ip = getenv("TCPREMOTEIP") ;
  if (!ip) strerr_dief(EX_PERM, "no TCPREMOTEIP: run me under tcpserver") ;
  unsigned long n = slots_allowed() ;
  if (n && take_slot(ip, n) < 0)
  {
    char fmt[ULONG_FMT] ;
    fmt[ulong_fmt(fmt, n)] = 0 ;
    ylog("refuse", "ip", ip, "reason", "too-many-connections", "limit", fmt, (char *)0) ;
    if (message)
    {
      stralloc m = STRALLOC_ZERO ;
      if (stralloc_cats(&m, message) && stralloc_catb(&m, "\r\n", 2))
        (void)allwrite(1, m.s, m.len) ;   /* the client may be gone: nothing to do */
      stralloc_free(&m) ;
    }
    return 0 ;
  }
  xexec(argv) ;
}
