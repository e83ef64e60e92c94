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

/* ---------- sizes and conversion ---------- */

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

static int addmsg (mbox *mb, char const *name, size_t len, struct mailname const *nm)
{
  struct mbox_msg m = { .size = nm->haswsize ? nm->wsize : UINT64_MAX, .name = mb->names.len, .uniqlen = nm->uniqlen, .deleted = 0, .gone = 0, .seen = 0 } ;
  if (!stralloc_catb(&mb->names, name, len) || !stralloc_0(&mb->names)) return 0 ;
  return genalloc_append(struct mbox_msg, &mb->msgs, &m) ;
}

static int msgcmp (void const *x, void const *y, void *aux)
{
  struct mbox_msg const *a = x, *b = y ;
  char const *s = aux ;
  int c = mailname_cmp(s + a->name, a->uniqlen, s + b->name, b->uniqlen) ;
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
    int c = mailname_cmp(u, len, mb->names.s + m->name, m->uniqlen) ;
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
  return !prev || mailname_cmp(s + m->name, m->uniqlen, s + prev->name, prev->uniqlen) ;
}

static int notgone (struct mbox_msg const *m, struct mbox_msg const *prev, char const *s)
{
  (void)prev ; (void)s ;
  return !m->gone ;
}

static int count_moved (void *arg, char const *name, size_t uniqlen)
{
  (void)name ; (void)uniqlen ;
  ((mbox *)arg)->moved++ ;
  return 1 ;
}

static int movenew (mbox *mb, int dirfd, char const **what, char const **where)
{
  *where = "new" ;
  int newfd = openat(dirfd, "new", O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (newfd < 0) { *what = "open" ; return 0 ; }
  int ok = mailread_newtocur(newfd, mb->curfd, &count_moved, mb, what) ;
  int e = errno ;
  fd_close(newfd) ;
  errno = e ;
  return ok ;
}

/* mbox_scan: each regular message file of cur/ into the listing */
static int list_one (void *arg, int dirfd, struct dirent const *e, size_t len, struct mailname const *nm, char const **op)
{
  int r = mailread_isregular(dirfd, e) ;
  if (r < 0) { *op = "stat" ; return 0 ; }
  if (r && !addmsg(arg, e->d_name, len, nm)) { *op = "allocate" ; return 0 ; }
  return 1 ;
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

  *where = "cur" ;
  if (!mailread_each(mb->curfd, &list_one, mb, what)) goto err ;

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
    if (!mailread_crlfsize(fd, &m->size))
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

 err:
  if (dirfd >= 0)
  {
    int e = errno ;
    fd_close(dirfd) ;
    errno = e ;
  }
  return 0 ;
}

/* mbox_rescan: a message of the listing found in cur/, maybe renamed */
static int rescan_one (void *arg, int dirfd, struct dirent const *e, size_t len, struct mailname const *nm, char const **op)
{
  mbox *mb = arg ;
  (void)dirfd ;
  if (e->d_type != DT_REG && e->d_type != DT_UNKNOWN) return 1 ;
  size_t k = findmsg(mb, e->d_name, nm->uniqlen) ;
  if (k == mb->n) return 1 ;
  struct mbox_msg *m = mbox_msg(mb, k) ;
  if (strcmp(mb->names.s + m->name, e->d_name))
  {
    size_t off = mb->names.len ;
    if (!stralloc_catb(&mb->names, e->d_name, len + 1)) { *op = "allocate" ; errno = ENOMEM ; return 0 ; }
    m->name = off ;
  }
  m->seen = 1 ;
  return 1 ;
}

int mbox_rescan (mbox *mb)
{
  char const *op ;
  for (size_t i = 0 ; i < mb->n ; i++) mbox_msg(mb, i)->seen = 0 ;
  if (!mailread_each(mb->curfd, &rescan_one, mb, &op)) return 0 ;
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
