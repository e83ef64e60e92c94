/* Session ticket keys in a file: see stek.h. */

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/bytestr.h>
#include <skalibs/djbunix.h>
#include <skalibs/stralloc.h>
#include <skalibs/uint64.h>

#include "common/tlsd/stek.h"

#define MAGIC "YSTEK001"
#define RECLEN (8 + STEK_NAMELEN + 2 * STEK_SECRETLEN)
#define STALE_NEW 60      /* seconds: a path.new older than this is an orphan */

static void unlink_quiet (char const *s)
{
  int e = errno ;
  if (unlink(s) < 0) errno = e ;   /* nothing to do about it: best effort */
  errno = e ;
}

void stek_wipe (struct stekpair *p)
{
  byte_zzero((char *)p, sizeof(*p)) ;
}

static void unpack (struct stek *k, unsigned char const *s)
{
  uint64_unpack_big((char const *)s, &k->created) ;
  memcpy(k->name, s + 8, STEK_NAMELEN) ;
  memcpy(k->hmac, s + 8 + STEK_NAMELEN, STEK_SECRETLEN) ;
  memcpy(k->aes, s + 8 + STEK_NAMELEN + STEK_SECRETLEN, STEK_SECRETLEN) ;
}

static void pack (unsigned char *s, struct stek const *k)
{
  uint64_pack_big((char *)s, k->created) ;
  memcpy(s + 8, k->name, STEK_NAMELEN) ;
  memcpy(s + 8 + STEK_NAMELEN, k->hmac, STEK_SECRETLEN) ;
  memcpy(s + 8 + STEK_NAMELEN + STEK_SECRETLEN, k->aes, STEK_SECRETLEN) ;
}

int stek_read (char const *path, struct stekpair *p)
{
  unsigned char buf[STEK_FILELEN + 1] ;
  stek_wipe(p) ;
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) ;
  if (fd < 0) return errno == ENOENT ? 0 : -1 ;
  errno = 0 ;
  size_t n = allread(fd, (char *)buf, sizeof(buf)) ;
  int e = errno ;
  fd_close(fd) ;
  if (n < sizeof(buf) && e && e != EPIPE) { byte_zzero((char *)buf, sizeof(buf)) ; errno = e ; return -1 ; }
  int ok = n == STEK_FILELEN && !memcmp(buf, MAGIC, 8) ;
  if (ok)
  {
    unpack(&p->cur, buf + 8) ;
    unpack(&p->prev, buf + 8 + RECLEN) ;
    if (!p->cur.created) ok = 0 ;
  }
  byte_zzero((char *)buf, sizeof(buf)) ;
  if (!ok) stek_wipe(p) ;
  return ok ;
}

int stek_due (struct stekpair const *p, uint64_t now, uint64_t lifetime)
{
  return !p->cur.created || now < p->cur.created || now - p->cur.created >= lifetime ;
}

static int fill_random (unsigned char *s, size_t n)
{
  while (n)
  {
    ssize_t r = getrandom(s, n, 0) ;
    if (r < 0)
    {
      if (errno == EINTR) continue ;
      return 0 ;
    }
    s += r ; n -= (size_t)r ;
  }
  return 1 ;
}

int stek_rotate (char const *path, struct stekpair *p, uint64_t now, uid_t uid, gid_t gid, mode_t mode)
{
  stralloc tmp = STRALLOC_ZERO ;
  unsigned char buf[STEK_FILELEN] ;
  struct stekpair fresh ;
  int r = -1, e = 0 ;
  if (!stralloc_cats(&tmp, path) || !stralloc_cats(&tmp, ".new") || !stralloc_0(&tmp)) return -1 ;
  int fd = open(tmp.s, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600) ;
  if (fd < 0)
  {
    struct stat st ;
    if (errno != EEXIST) { e = errno ; goto end ; }
    /* someone is rotating, or died doing it */
    if (!lstat(tmp.s, &st) && (uint64_t)st.st_mtime + STALE_NEW < now) unlink_quiet(tmp.s) ;
    r = 0 ;
    goto end ;
  }
  /* it may have been rotated since p was read */
  if (stek_read(path, &fresh) > 0
   && (fresh.cur.created != p->cur.created || memcmp(fresh.cur.name, p->cur.name, STEK_NAMELEN)))
  {
    *p = fresh ;
    stek_wipe(&fresh) ;
    fd_close(fd) ;
    unlink_quiet(tmp.s) ;
    r = 0 ;
    goto end ;
  }
  stek_wipe(&fresh) ;
  p->prev = p->cur ;
  p->cur.created = now ;
  if (!fill_random(p->cur.name, STEK_NAMELEN) || !fill_random(p->cur.hmac, STEK_SECRETLEN)
   || !fill_random(p->cur.aes, STEK_SECRETLEN)) goto fail ;
  memcpy(buf, MAGIC, 8) ;
  pack(buf + 8, &p->cur) ;
  pack(buf + 8 + RECLEN, &p->prev) ;
  if (fchown(fd, uid, gid) < 0 || fchmod(fd, mode) < 0) goto fail ;
  if (allwrite(fd, (char *)buf, sizeof(buf)) < sizeof(buf)) goto fail ;
  byte_zzero((char *)buf, sizeof(buf)) ;
  fd_close(fd) ;
  fd = -1 ;
  if (rename(tmp.s, path) < 0) goto fail ;
  r = 1 ;
  goto end ;

 fail:
  e = errno ;
  byte_zzero((char *)buf, sizeof(buf)) ;
  if (fd >= 0) fd_close(fd) ;
  unlink_quiet(tmp.s) ;
  stek_wipe(p) ;
 end:
  stralloc_free(&tmp) ;
  if (r < 0) errno = e ;
  return r ;
}
