/* Queue file format and names: see queue.h and qmgr/README. */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/djbunix.h>
#include <skalibs/stralloc.h>
#include <skalibs/types.h>

#include "queue.h"

#define MAGIC "yubinq1"

size_t queue_id_fmt (char *id, uint64_t sec, uint64_t nsec)
{
  size_t n = uint64_fmt(id, sec) ;
  id[n++] = '.' ;
  n += uint640_fmt(id + n, nsec, 9) ;
  id[n++] = '.' ;
  n += uint64_fmt(id + n, (uint64_t)getpid()) ;
  id[n] = 0 ;
  return n ;
}

size_t queue_id_make (char *id, uint64_t *sec)
{
  struct timespec ts ;
  if (clock_gettime(CLOCK_REALTIME, &ts) < 0) { ts.tv_sec = time(0) ; ts.tv_nsec = 0 ; }
  if (sec) *sec = (uint64_t)ts.tv_sec ;
  return queue_id_fmt(id, (uint64_t)ts.tv_sec, (uint64_t)ts.tv_nsec) ;
}

int queue_id_valid (char const *s)
{
  size_t i = 0 ;
  if (s[0] == '.' || !s[0]) return 0 ;
  for (; s[i] ; i++)
  {
    if (i >= QUEUE_IDMAX - 1) return 0 ;
    if (s[i] != '.' && (s[i] < '0' || s[i] > '9')) return 0 ;
  }
  return 1 ;
}

static int catnum (stralloc *sa, char const *key, uint64_t u)
{
  char fmt[UINT64_FMT] ;
  return stralloc_cats(sa, key) && stralloc_catb(sa, fmt, uint64_fmt(fmt, u)) ;
}

int queue_head_fmt (stralloc *sa, struct queue_head const *h)
{
  return stralloc_cats(sa, MAGIC)
      && catnum(sa, " msg=", h->msgoff)
      && catnum(sa, " size=", h->size)
      && catnum(sa, " time=", h->birth)
      && catnum(sa, " uid=", h->uid)
      && stralloc_cats(sa, h->envfile ? " env=file\n" : " env=here\n") ;
}

/* "key=<digits>" at s: returns bytes used, 0 if not */
static size_t scannum (char const *s, size_t len, char const *key, uint64_t *u)
{
  size_t k = strlen(key) ;
  if (len <= k || memcmp(s, key, k)) return 0 ;
  size_t n = uint64_scan(s + k, u) ;
  if (!n || n > 20) return 0 ;
  return k + n ;
}

size_t queue_head_scan (char const *s, size_t len, struct queue_head *h)
{
  char const *nl = memchr(s, '\n', len < QUEUE_HEADMAX ? len : QUEUE_HEADMAX) ;
  if (!nl) return 0 ;
  size_t end = nl - s, i = sizeof(MAGIC) - 1, n ;
  if (end < i || memcmp(s, MAGIC, i)) return 0 ;
  h->nextok = 0 ;
  h->next = 0 ;
  static char const *const keys[4] = { " msg=", " size=", " time=", " uid=" } ;
  uint64_t *vals[4] = { &h->msgoff, &h->size, &h->birth, &h->uid } ;
  for (unsigned int k = 0 ; k < 4 ; k++)
  {
    if (!(n = scannum(s + i, end - i, keys[k], vals[k]))) return 0 ;
    i += n ;
  }
  if (end - i == 9 && !memcmp(s + i, " env=here", 9)) h->envfile = 0 ;
  else if (end - i == 9 && !memcmp(s + i, " env=file", 9)) h->envfile = 1 ;
  else return 0 ;
  if (h->msgoff < end + 1 || h->msgoff > (1 << 20)) return 0 ;
  return end + 1 ;
}

void queue_next_fmt (char *buf, uint64_t next)
{
  memset(buf, 0, QUEUE_NEXTLEN) ;
  if (!next) return ;
  memcpy(buf, "next=", 5) ;
  size_t n = 5 + uint64_fmt(buf + 5, next) ;   /* at most 25 bytes */
  buf[n] = '\n' ;
}

uint64_t queue_next_scan (char const *s)
{
  uint64_t u ;
  if (memcmp(s, "next=", 5)) return 0 ;
  size_t n = uint64_scan(s + 5, &u) ;
  if (!n || n > 20 || s[5 + n] != '\n') return 0 ;
  for (size_t i = 5 + n + 1 ; i < QUEUE_NEXTLEN ; i++) if (s[i]) return 0 ;
  return u ;
}

uint64_t queue_sum (uint64_t h, char const *s, size_t len)
{
  for (size_t i = 0 ; i < len ; i++)
  {
    h ^= (unsigned char)s[i] ;
    h *= 0x100000001b3ULL ;
  }
  return h ;
}

void queue_sum_fmt (char *buf, uint64_t sum)
{
  memset(buf, 0, QUEUE_NEXTLEN) ;
  memcpy(buf, "sum=", 4) ;
  size_t n = 4 + uint64_xfmt(buf + 4, sum) ;   /* at most 16 digits */
  buf[n] = '\n' ;
}

/* The record area of block holds "sum=" and the value: *sum. */
static int sum_scan (char const *s, uint64_t *sum)
{
  if (memcmp(s, "sum=", 4)) return 0 ;
  size_t n = uint64_xscan(s + 4, sum) ;
  if (!n || n > 16 || s[4 + n] != '\n') return 0 ;
  for (size_t i = 4 + n + 1 ; i < QUEUE_NEXTLEN ; i++) if (s[i]) return 0 ;
  return 1 ;
}

int queue_pool_complete (int fd, char const *name)
{
  char block[QUEUE_MSGOFF], buf[65536] ;
  struct queue_head h ;
  struct stat st ;
  size_t nrcpts ;
  uint64_t want ;
  if (fstat(fd, &st) < 0) return -1 ;
  ssize_t r = pread(fd, block, sizeof(block), 0) ;
  if (r < 0) return -1 ;
  if (r < QUEUE_MSGOFF) return 0 ;
  size_t hl = queue_head_scan(block, r, &h) ;
  if (!hl || h.envfile || h.msgoff != QUEUE_MSGOFF || (uint64_t)st.st_size != h.msgoff + h.size) return 0 ;
  size_t el = queue_env_scan(block + hl, QUEUE_NEXTOFF - hl, 0, &nrcpts) ;
  if (!el || !sum_scan(block + QUEUE_NEXTOFF, &want)) return 0 ;
  uint64_t sum = QUEUE_SUM_INIT ;
  for (uint64_t off = h.msgoff ; off < (uint64_t)st.st_size ; )
  {
    r = pread(fd, buf, sizeof(buf), off) ;
    if (r < 0) return -1 ;
    if (!r) return 0 ;
    sum = queue_sum(sum, buf, r) ;
    off += r ;
  }
  sum = queue_sum(sum, block, QUEUE_NEXTOFF) ;
  return queue_sum(sum, name, strlen(name)) == want ;
}

int queue_rename_noreplace (int fromdir, char const *from, int todir, char const *to)
{
  int r = renameat2(fromdir, from, todir, to, RENAME_NOREPLACE) ;
  if (r < 0 && errno == EINVAL) r = renameat(fromdir, from, todir, to) ;
  return r ;
}

int queue_addr_ok (char const *s, size_t len)
{
  if (len > QUEUE_ADDRMAX) return 0 ;
  for (size_t i = 0 ; i < len ; i++)
  {
    unsigned char c = s[i] ;
    if (c < 0x20 || c == 0x7f) return 0 ;
  }
  return 1 ;
}

size_t queue_env_scan (char const *s, size_t len, int anystate, size_t *nrcpts)
{
  size_t i = 0, n = 0 ;
  int first = 1 ;
  for (;;)
  {
    if (i >= len) return 0 ;
    char c = s[i] ;
    if (!c)
    {
      if (first) return 0 ;
      *nrcpts = n ;
      return i + 1 ;
    }
    if (first ? c != 'F'
              : !(c == QUEUE_TODO || (anystate && (c == QUEUE_DONE || c == QUEUE_FAILED))))
      return 0 ;
    char const *z = memchr(s + i + 1, 0, len - i - 1) ;
    if (!z) return 0 ;
    size_t alen = z - (s + i + 1) ;
    if (!queue_addr_ok(s + i + 1, alen)) return 0 ;
    if (!first) n++ ;
    first = 0 ;
    i += alen + 2 ;
  }
}

static int bad (void)
{
  errno = EPROTO ;
  return 0 ;
}

int queue_load (int dirfd, int envdirfd, char const *id, struct queue_head *h,
                stralloc *env, uint64_t *envbase)
{
  char block[QUEUE_MSGOFF] ;
  struct stat st ;
  size_t nrcpts ;
  int fd = openat(dirfd, id, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) ;
  if (fd < 0) return -1 ;
  if (fstat(fd, &st) < 0) goto err ;
  ssize_t r = pread(fd, block, sizeof(block), 0) ;
  if (r < 0) goto err ;
  fd_close(fd) ;
  size_t hl = queue_head_scan(block, r, h) ;
  if (!hl) return bad() ;
  /* the retry record: only where the envelope cannot be (below) */
  h->nextok = h->msgoff == QUEUE_MSGOFF && r == QUEUE_MSGOFF && hl <= QUEUE_NEXTOFF ;
  h->next = 0 ;
  if (h->msgoff > (uint64_t)st.st_size || (uint64_t)st.st_size - h->msgoff != h->size) return bad() ;
  env->len = 0 ;
  if (!h->envfile)
  {
    size_t lim = (size_t)r < h->msgoff ? (size_t)r : h->msgoff ;
    size_t el = queue_env_scan(block + hl, lim - hl, 1, &nrcpts) ;
    if (!el) return bad() ;
    if (!stralloc_catb(env, block + hl, el)) return -1 ;
    *envbase = hl ;
    if (hl + el > QUEUE_NEXTOFF) h->nextok = 0 ;   /* an older file with a big envelope */
    if (h->nextok) h->next = queue_next_scan(block + QUEUE_NEXTOFF) ;
    return 1 ;
  }
  fd = openat(envdirfd, id, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) ;
  if (fd < 0) return errno == ENOENT ? bad() : -1 ;
  if (!slurp(env, fd)) goto err ;
  fd_close(fd) ;
  if (queue_env_scan(env->s, env->len, 1, &nrcpts) != env->len) return bad() ;
  *envbase = 0 ;
  if (h->nextok) h->next = queue_next_scan(block + QUEUE_NEXTOFF) ;
  return 1 ;
 err:
  {
    int e = errno ;
    fd_close(fd) ;
    errno = e ;
    return -1 ;
  }
}

int queue_pool_taking (int qdirfd)
{
  struct flock lk = { .l_type = F_WRLCK, .l_whence = SEEK_SET } ;
  int fd = openat(qdirfd, QUEUE_POOLMARK, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC) ;
  if (fd < 0) return 0 ;
  int r = fcntl(fd, F_OFD_GETLK, &lk) ;
  fd_close(fd) ;
  return r == 0 && lk.l_type != F_UNLCK ;
}

void queue_trigger (int qdirfd)
{
  int fd = openat(qdirfd, "lock/trigger", O_WRONLY | O_NONBLOCK | O_CLOEXEC) ;
  if (fd < 0) return ;
  /* a full fifo or no reader is fine: qmgr is awake or rescans on a timer */
  ssize_t w = write(fd, "", 1) ;
  (void)w ;
  fd_close(fd) ;
}
