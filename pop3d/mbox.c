/* pop3d/mbox: the Maildir listing of yubin-pop3mbox (see mbox.h). */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/djbunix.h>
#include <skalibs/genalloc.h>
#include <skalibs/sha256.h>
#include <skalibs/stralloc.h>

#include "pop3d/mbox.h"

#define isdig(c) ((unsigned int)(unsigned char)(c) - '0' < 10)

/* ---------- names ---------- */

int mbox_name_parse (char const *s, size_t len, struct mbox_name *nm)
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
    if (k && (d + k == end || d[k] == ',') && mbox_parsenum(d, k, &v) && v != UINT64_MAX)
    {
      nm->wsize = v ;
      nm->haswsize = 1 ;
      break ;
    }
  }
  return 1 ;
}

int mbox_name_cmp (char const *a, size_t alen, char const *b, size_t blen)
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

size_t mbox_uidl (char const *u, size_t len, char *out)
{
  static char const hex[] = "0123456789abcdef" ;
  int ok = len >= 1 && len <= MBOX_UIDL_MAX ;
  for (size_t i = 0 ; ok && i < len ; i++)
    if ((unsigned char)u[i] < 0x21 || (unsigned char)u[i] > 0x7e) ok = 0 ;
  if (ok)
  {
    memcpy(out, u, len) ;
    out[len] = 0 ;
    return len ;
  }
  SHA256Schedule ctx = SHA256_INIT() ;
  char digest[32] ;
  sha256_update(&ctx, u, len) ;
  sha256_final(&ctx, digest) ;
  out[0] = 'H' ;
  for (unsigned int i = 0 ; i < 32 ; i++)
  {
    out[1 + 2 * i] = hex[(unsigned char)digest[i] >> 4] ;
    out[2 + 2 * i] = hex[(unsigned char)digest[i] & 15] ;
  }
  out[65] = 0 ;
  return 65 ;
}

/* ---------- numbers ---------- */

int mbox_parsenum (char const *s, size_t len, uint64_t *n)
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

/* ---------- sizes and conversion ---------- */

int mbox_crlfsize (int fd, uint64_t *size)
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

void mbox_conv_init (struct mbox_conv *c, uint64_t bodylines)
{
  c->lines = bodylines ;
  c->octets = 0 ;
  c->bol = 1 ;
  c->cr = 0 ;
  c->n = 0 ;
  c->inbody = 0 ;
  c->done = 0 ;
}

int mbox_conv_feed (struct mbox_conv *c, char const *s, size_t len, stralloc *out)
{
  if (!stralloc_readyplus(out, len + len / 8 + 8)) return 0 ;
  while (len && !c->done)
  {
    if (c->bol)
    {
      if (c->inbody && !c->lines) { c->done = 1 ; break ; }
      if (s[0] == '.' && !stralloc_catb(out, ".", 1)) return 0 ;
      c->bol = 0 ;
      c->n = 0 ;
      c->cr = 0 ;
    }
    char const *nl = memchr(s, '\n', len) ;
    size_t seg = nl ? (size_t)(nl - s) : len ;
    if (seg)
    {
      if (!stralloc_catb(out, s, seg)) return 0 ;
      c->octets += seg ;
      c->n = seg >= 2 || c->n + seg >= 2 ? 2 : c->n + seg ;
      c->cr = s[seg - 1] == '\r' ;
    }
    if (!nl) break ;
    if (c->cr)
    {
      if (!stralloc_catb(out, "\n", 1)) return 0 ;
      c->octets++ ;
    }
    else
    {
      if (!stralloc_catb(out, "\r\n", 2)) return 0 ;
      c->octets += 2 ;
    }
    if (!c->inbody) { if (!c->n || (c->n == 1 && c->cr)) c->inbody = 1 ; }
    else if (c->lines != UINT64_MAX) c->lines-- ;
    c->bol = 1 ;
    s += seg + 1 ;
    len -= seg + 1 ;
  }
  return 1 ;
}

int mbox_conv_end (struct mbox_conv *c, stralloc *out)
{
  if (!c->bol)
  {
    if (!stralloc_catb(out, "\r\n", 2)) return 0 ;
    c->octets += 2 ;
    c->bol = 1 ;
  }
  return stralloc_catb(out, ".\r\n", 3) ;
}

/* ---------- the listing ---------- */

static int addmsg (mbox *mb, char const *name, size_t len, struct mbox_name const *nm)
{
  struct mbox_msg m = { .size = nm->haswsize ? nm->wsize : UINT64_MAX, .name = mb->names.len, .uniqlen = nm->uniqlen, .deleted = 0, .gone = 0, .seen = 0 } ;
  if (!stralloc_catb(&mb->names, name, len) || !stralloc_0(&mb->names)) return 0 ;
  return genalloc_append(struct mbox_msg, &mb->msgs, &m) ;
}

/* whether the entry e of the directory at dirfd is a regular file:
 * 1 yes, 0 no (or gone), -1 error */
static int isregular (int dirfd, struct dirent const *e)
{
  struct stat st ;
  if (e->d_type == DT_REG) return 1 ;
  if (e->d_type != DT_UNKNOWN) return 0 ;
  if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return errno == ENOENT ? 0 : -1 ;
  return S_ISREG(st.st_mode) ;
}

/* a DIR on the directory at dirfd (its own fd), from the start */
static DIR *opendirat (int dirfd, char const *name)
{
  int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (fd < 0) return 0 ;
  DIR *d = fdopendir(fd) ;
  if (!d) { int e = errno ; fd_close(fd) ; errno = e ; }
  return d ;
}

static int msgcmp (void const *x, void const *y, void *aux)
{
  struct mbox_msg const *a = x, *b = y ;
  char const *s = aux ;
  int c = mbox_name_cmp(s + a->name, a->uniqlen, s + b->name, b->uniqlen) ;
  return c ? c : strcmp(s + a->name, s + b->name) ;
}

/* index of the message with unique part u[0..len), or mb->n */
static size_t findmsg (mbox *mb, char const *u, size_t len)
{
  size_t lo = 0, hi = mb->n ;
  while (lo < hi)
  {
    size_t mid = lo + (hi - lo) / 2 ;
    struct mbox_msg const *m = mbox_msg(mb, mid) ;
    int c = mbox_name_cmp(u, len, mb->names.s + m->name, m->uniqlen) ;
    if (!c) return mid ;
    if (c < 0) hi = mid ; else lo = mid + 1 ;
  }
  return mb->n ;
}

/* keep the messages for which keep() says so, in order */
static void compact (mbox *mb, int (*keep)(struct mbox_msg const *, struct mbox_msg const *, char const *))
{
  struct mbox_msg *m = genalloc_s(struct mbox_msg, &mb->msgs) ;
  size_t n = genalloc_len(struct mbox_msg, &mb->msgs), k = 0 ;
  for (size_t i = 0 ; i < n ; i++)
    if (keep(&m[i], k ? &m[k - 1] : 0, mb->names.s)) m[k++] = m[i] ;
  genalloc_setlen(struct mbox_msg, &mb->msgs, k) ;
  mb->n = k ;
}

static int notdup (struct mbox_msg const *m, struct mbox_msg const *prev, char const *s)
{
  return !prev || mbox_name_cmp(s + m->name, m->uniqlen, s + prev->name, prev->uniqlen) ;
}

static int notgone (struct mbox_msg const *m, struct mbox_msg const *prev, char const *s)
{
  (void)prev ; (void)s ;
  return !m->gone ;
}

static int movenew (mbox *mb, int dirfd, char const **what, char const **where)
{
  stralloc target = STRALLOC_ZERO ;
  int newfd = openat(dirfd, "new", O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (newfd < 0) { *what = "open" ; *where = "new" ; return 0 ; }
  DIR *d = fdopendir(newfd) ;
  if (!d) { *what = "open" ; *where = "new" ; fd_close(newfd) ; return 0 ; }
  for (;;)
  {
    struct mbox_name nm ;
    errno = 0 ;
    struct dirent *e = readdir(d) ;
    if (!e) break ;
    size_t len = strlen(e->d_name) ;
    if (!mbox_name_parse(e->d_name, len, &nm)) continue ;
    int r = isregular(newfd, e) ;
    if (r < 0) { *what = "stat" ; *where = "new" ; goto err ; }
    if (!r) continue ;
    target.len = 0 ;
    if (!stralloc_catb(&target, e->d_name, len)
     || (nm.uniqlen == len && !stralloc_catb(&target, ":2,", 3))
     || !stralloc_0(&target)) goto err ;
    if (renameat(newfd, e->d_name, mb->curfd, target.s) < 0)
    {
      if (errno == ENOENT) continue ;   /* another session moved it */
      *what = "rename" ; *where = "new" ;
      goto err ;
    }
    mb->moved++ ;
  }
  if (errno) { *what = "read" ; *where = "new" ; goto err ; }
  closedir(d) ;
  stralloc_free(&target) ;
  return 1 ;
 err:
  {
    int e = errno ;
    closedir(d) ;
    stralloc_free(&target) ;
    errno = e ;
  }
  return 0 ;
}

int mbox_scan (mbox *mb, char const *dir, char const **what, char const **where)
{
  *what = "open" ; *where = dir ;
  int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (dirfd < 0) return 0 ;
  mb->curfd = openat(dirfd, "cur", O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (mb->curfd < 0) { *where = "cur" ; goto err ; }
  if (!movenew(mb, dirfd, what, where)) goto err ;
  fd_close(dirfd) ;
  dirfd = -1 ;

  *what = "open" ; *where = "cur" ;
  DIR *d = opendirat(mb->curfd, ".") ;
  if (!d) goto err ;
  for (;;)
  {
    struct mbox_name nm ;
    errno = 0 ;
    struct dirent *e = readdir(d) ;
    if (!e) break ;
    size_t len = strlen(e->d_name) ;
    if (!mbox_name_parse(e->d_name, len, &nm)) continue ;
    int r = isregular(mb->curfd, e) ;
    if (r < 0) { *what = "stat" ; goto errd ; }
    if (r && !addmsg(mb, e->d_name, len, &nm)) { *what = "allocate" ; goto errd ; }
  }
  if (errno) { *what = "read" ; goto errd ; }
  closedir(d) ;

  mb->n = genalloc_len(struct mbox_msg, &mb->msgs) ;
  if (mb->n) qsort_r(genalloc_s(struct mbox_msg, &mb->msgs), mb->n, sizeof(struct mbox_msg), &msgcmp, mb->names.s) ;
  compact(mb, &notdup) ;

  /* sizes the names do not give */
  for (size_t i = 0 ; i < mb->n ; i++)
  {
    struct mbox_msg *m = mbox_msg(mb, i) ;
    if (m->size != UINT64_MAX) continue ;
    int fd = mbox_open(mb, i) ;
    if (fd < 0)
    {
      if (errno == ENOENT) continue ;   /* gone: left out below */
      *what = "open" ; *where = mbox_msgname(mb, i) ;
      return 0 ;
    }
    m = mbox_msg(mb, i) ;
    if (!mbox_crlfsize(fd, &m->size))
    {
      int e = errno ;
      fd_close(fd) ;
      errno = e ;
      *what = "read" ; *where = mbox_msgname(mb, i) ;
      return 0 ;
    }
    fd_close(fd) ;
  }
  compact(mb, &notgone) ;
  mb->total = 0 ;
  for (size_t i = 0 ; i < mb->n ; i++) mb->total += mbox_msg(mb, i)->size ;
  return 1 ;

 errd:
  {
    int e = errno ;
    closedir(d) ;
    errno = e ;
  }
 err:
  if (dirfd >= 0)
  {
    int e = errno ;
    fd_close(dirfd) ;
    errno = e ;
  }
  return 0 ;
}

int mbox_rescan (mbox *mb)
{
  DIR *d = opendirat(mb->curfd, ".") ;
  if (!d) return 0 ;
  for (size_t i = 0 ; i < mb->n ; i++) mbox_msg(mb, i)->seen = 0 ;
  for (;;)
  {
    struct mbox_name nm ;
    errno = 0 ;
    struct dirent *e = readdir(d) ;
    if (!e) break ;
    if (e->d_type != DT_REG && e->d_type != DT_UNKNOWN) continue ;
    size_t len = strlen(e->d_name) ;
    if (!mbox_name_parse(e->d_name, len, &nm)) continue ;
    size_t k = findmsg(mb, e->d_name, nm.uniqlen) ;
    if (k == mb->n) continue ;
    struct mbox_msg *m = mbox_msg(mb, k) ;
    if (strcmp(mb->names.s + m->name, e->d_name))
    {
      size_t off = mb->names.len ;
      if (!stralloc_catb(&mb->names, e->d_name, len + 1))
      {
        closedir(d) ;
        errno = ENOMEM ;
        return 0 ;
      }
      m->name = off ;
    }
    m->seen = 1 ;
  }
  if (errno)
  {
    int e = errno ;
    closedir(d) ;
    errno = e ;
    return 0 ;
  }
  closedir(d) ;
  for (size_t i = 0 ; i < mb->n ; i++)
    if (!mbox_msg(mb, i)->seen) mbox_msg(mb, i)->gone = 1 ;
  return 1 ;
}

int mbox_open (mbox *mb, size_t i)
{
  if (mbox_msg(mb, i)->gone) { errno = ENOENT ; return -1 ; }
  int fd = openat(mb->curfd, mbox_msgname(mb, i), O_RDONLY | O_NOFOLLOW | O_CLOEXEC) ;
  if (fd >= 0 || errno != ENOENT) return fd ;
  if (!mbox_rescan(mb)) return -1 ;
  if (mbox_msg(mb, i)->gone) { errno = ENOENT ; return -1 ; }
  fd = openat(mb->curfd, mbox_msgname(mb, i), O_RDONLY | O_NOFOLLOW | O_CLOEXEC) ;
  if (fd < 0 && errno == ENOENT) mbox_msg(mb, i)->gone = 1 ;
  return fd ;
}

size_t mbox_update (mbox *mb, size_t *removed)
{
  size_t failed = 0, missing = 0 ;
  *removed = 0 ;
  /* first pass: every deleted message by the name we know; one that is
   * not there may have been renamed (a flag change) */
  for (size_t i = 0 ; i < mb->n ; i++)
  {
    struct mbox_msg *m = mbox_msg(mb, i) ;
    if (!m->deleted || m->gone) continue ;
    if (unlinkat(mb->curfd, mbox_msgname(mb, i), 0) == 0) { (*removed)++ ; m->gone = 1 ; }
    else if (errno == ENOENT) missing++ ;
    else { failed++ ; m->gone = 1 ; }
  }
  if (missing)
  {
    if (!mbox_rescan(mb)) failed += missing ;
    else for (size_t i = 0 ; i < mb->n ; i++)
    {
      struct mbox_msg *m = mbox_msg(mb, i) ;
      if (!m->deleted || m->gone) continue ;
      if (unlinkat(mb->curfd, mbox_msgname(mb, i), 0) == 0) (*removed)++ ;
      else if (errno != ENOENT) failed++ ;
      m->gone = 1 ;
    }
  }
  if (*removed && fsync(mb->curfd) < 0 && errno != EINVAL) failed++ ;
  return failed ;
}

void mbox_free (mbox *mb)
{
  if (mb->curfd >= 0) fd_close(mb->curfd) ;
  mb->curfd = -1 ;
  stralloc_free(&mb->names) ;
  genalloc_free(struct mbox_msg, &mb->msgs) ;
  mb->n = 0 ;
  mb->total = 0 ;
}
