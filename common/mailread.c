/* common/mailread: see mailread.h. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/djbunix.h>
#include <skalibs/stralloc.h>

#include "mailread.h"

#define isdig(c) ((unsigned int)(unsigned char)(c) - '0' < 10)

/* ---------- names ---------- */

int mailname_parse (char const *s, size_t len, struct mailname *nm)
{
  if (!len || s[0] == '.' || memchr(s, '/', len) || memchr(s, 0, len)) return 0 ;
  /* memchr, not memmem: this runs for every file at every login, and
     glibc's memmem sets up a search each call (a fifth of a warm
     session's CPU at 100,000 messages, measured) */
  char const *info = memchr(s, ':', len) ;
  if (info && !(info + 2 < s + len && info[1] == '2' && info[2] == ','))
    info = memmem(s, len, ":2,", 3) ;
  nm->uniqlen = info ? (size_t)(info - s) : len ;
  nm->haswsize = 0 ;
  nm->wsize = 0 ;
  /* the first ",W=<digits>" ended by ',' or the end of the unique part */
  char const *end = s + nm->uniqlen ;
  char const *c = s ;
  while ((c = memchr(c, ',', end - c)))
  {
    char const *d = c + 3 ;
    c++ ;
    if (d > end || c[0] != 'W' || c[1] != '=') continue ;
    uint64_t v ;
    size_t k = 0 ;
    while (d + k < end && isdig(d[k])) k++ ;
    if (k && (d + k == end || d[k] == ',') && mailread_parsenum(d, k, &v) && v != UINT64_MAX)
    {
      nm->wsize = v ;
      nm->haswsize = 1 ;
      break ;
    }
  }
  return 1 ;
}

int mailname_cmp (char const *a, size_t alen, char const *b, size_t blen)
{
  size_t i = 0, j = 0 ;
  while (i < alen && j < blen)
  {
    if (isdig(a[i]) && isdig(b[j]))
    {
      size_t i0 = i, j0 = j, ie, je ;
      while (i0 < alen && a[i0] == '0') i0++ ;
      while (j0 < blen && b[j0] == '0') j0++ ;
      for (ie = i0 ; ie < alen && isdig(a[ie]) ; ie++) ;
      for (je = j0 ; je < blen && isdig(b[je]) ; je++) ;
      if (ie - i0 != je - j0) return ie - i0 < je - j0 ? -1 : 1 ;
      int c = memcmp(a + i0, b + j0, ie - i0) ;
      if (c) return c < 0 ? -1 : 1 ;
      i = ie ; j = je ;
      continue ;
    }
    if (a[i] != b[j]) return (unsigned char)a[i] < (unsigned char)b[j] ? -1 : 1 ;
    i++ ; j++ ;
  }
  if (i < alen) return 1 ;
  if (j < blen) return -1 ;
  /* equal as numbers ("01" and "1"): bytewise */
  int c = memcmp(a, b, alen < blen ? alen : blen) ;
  if (c) return c < 0 ? -1 : 1 ;
  return alen < blen ? -1 : alen > blen ;
}

/* ---------- numbers and sizes ---------- */

int mailread_parsenum (char const *s, size_t len, uint64_t *n)
{
  uint64_t v = 0 ;
  if (!len) return 0 ;
  for (size_t i = 0 ; i < len ; i++)
  {
    if (!isdig(s[i])) return 0 ;
    unsigned int d = s[i] - '0' ;
    if (v > (UINT64_MAX - d) / 10) v = UINT64_MAX ;
    else if (v != UINT64_MAX) v = v * 10 + d ;
  }
  *n = v ;
  return 1 ;
}

int mailread_crlfsize (int fd, uint64_t *size)
{
  char buf[65536] ;
  uint64_t n = 0 ;
  char last = '\n' ;
  for (;;)
  {
    ssize_t r = fd_read(fd, buf, sizeof buf) ;
    if (r < 0) return 0 ;
    if (!r) break ;
    char const *p = buf, *end = buf + r, *q ;
    n += (uint64_t)r ;
    while ((q = memchr(p, '\n', end - p)))
    {
      if ((q == buf ? last : q[-1]) != '\r') n++ ;
      p = q + 1 ;
    }
    last = buf[r - 1] ;
    if ((size_t)r < sizeof buf) break ;   /* a regular file's end */
  }
  if (last != '\n') n += 2 ;
  *size = n ;
  return 1 ;
}

/* ---------- new/ into cur/ ---------- */

/* whether the entry e of the directory at dirfd is a regular file:
 * 1 yes, 0 no (or gone), -1 error */
int mailread_isregular (int dirfd, struct dirent const *e)
{
  struct stat st ;
  if (e->d_type == DT_REG) return 1 ;
  if (e->d_type != DT_UNKNOWN) return 0 ;
  if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return errno == ENOENT ? 0 : -1 ;
  return S_ISREG(st.st_mode) ;
}

int mailread_each (int dirfd, mailread_fn *fn, void *arg, char const **op)
{
  *op = "open" ;
  int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;   /* a DIR of its own, from the start */
  if (fd < 0) return 0 ;
  DIR *d = fdopendir(fd) ;
  if (!d) { int e = errno ; fd_close(fd) ; errno = e ; return 0 ; }
  for (;;)
  {
    struct mailname nm ;
    errno = 0 ;
    struct dirent *e = readdir(d) ;
    if (!e) break ;
    size_t len = strlen(e->d_name) ;
    if (!mailname_parse(e->d_name, len, &nm)) continue ;
    if (!(*fn)(arg, dirfd, e, len, &nm, op)) goto err ;
  }
  if (errno) { *op = "read" ; goto err ; }
  closedir(d) ;
  return 1 ;
 err:
  {
    int e = errno ;
    closedir(d) ;
    errno = e ;
  }
  return 0 ;
}

struct newtocur
{
  int curfd ;
  stralloc target ;
  int (*moved)(void *, char const *, size_t) ;
  void *arg ;
} ;

static int move_one (void *arg, int newfd, struct dirent const *e, size_t len, struct mailname const *nm, char const **op)
{
  struct newtocur *t = arg ;
  int r = mailread_isregular(newfd, e) ;
  if (r < 0) { *op = "stat" ; return 0 ; }
  if (!r) return 1 ;
  t->target.len = 0 ;
  if (!stralloc_catb(&t->target, e->d_name, len)
   || (nm->uniqlen == len && !stralloc_catb(&t->target, ":2,", 3))
   || !stralloc_0(&t->target)) { *op = "memory" ; return 0 ; }
  if (renameat(newfd, e->d_name, t->curfd, t->target.s) < 0)
  {
    if (errno == ENOENT) return 1 ;   /* another session moved it */
    *op = "rename" ;
    return 0 ;
  }
  if (t->moved && !(*t->moved)(t->arg, e->d_name, nm->uniqlen)) { *op = "memory" ; return 0 ; }
  return 1 ;
}

int mailread_newtocur (int newfd, int curfd, int (*moved)(void *arg, char const *name, size_t uniqlen),
                       void *arg, char const **op)
{
  struct newtocur t = { .curfd = curfd, .target = STRALLOC_ZERO, .moved = moved, .arg = arg } ;
  int ok = mailread_each(newfd, &move_one, &t, op) ;
  int e = errno ;
  stralloc_free(&t.target) ;
  errno = e ;
  return ok ;
}
