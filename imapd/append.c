/* imapd/append: adding messages to a folder through its index: APPEND
 * (index_append_*: tmp/, fsync, cur/, an A record) and COPY / MOVE
 * (index_copy: hard links, or copies through tmp/, A records in the
 * target, X records in the source for MOVE).  Part of the index: see
 * imapd/index.h, and imapd/ixpriv.h for what it shares with index.c,
 * ixlog.c and ixscan.c. */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/djbunix.h>
#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>
#include <skalibs/types.h>

#include "maildir.h"
#include "imapd/index.h"
#include "imapd/ixpriv.h"

/* ---------- APPEND ---------- */

int index_append_begin (struct index_append *ap, char const *dir)
{
  stralloc uniq = STRALLOC_ZERO ;
  ap->bytes = ap->crlf = 0 ;
  ap->last = 0 ;
  ap->dir = strdup(dir) ;
  if (!ap->dir || !maildir_unique(&uniq)) goto err ;
  ap->tmpname.len = 0 ;
  if (!stralloc_catb(&ap->tmpname, uniq.s, uniq.len) || !stralloc_0(&ap->tmpname)) goto err ;
  stralloc sa = STRALLOC_ZERO ;
  if (!stralloc_cats(&sa, dir) || !stralloc_cats(&sa, "/tmp/") || !stralloc_cats(&sa, ap->tmpname.s) || !stralloc_0(&sa))
  { stralloc_free(&sa) ; goto err ; }
  ap->fd = open(sa.s, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600) ;
  {
    int e = errno ;
    stralloc_free(&sa) ;
    errno = e ;
  }
  if (ap->fd < 0) goto err ;
  stralloc_free(&uniq) ;
  return 1 ;
 err:
  {
    int e = errno ;
    stralloc_free(&uniq) ;
    free(ap->dir) ;
    ap->dir = 0 ;
    errno = e ;
  }
  return 0 ;
}

int index_append_write (struct index_append *ap, char const *s, size_t len)
{
  if (ap->fd < 0) return (errno = EBADF, 0) ;
  if (allwrite(ap->fd, s, len) < len) return 0 ;
  ap->bytes += len ;
  ap->crlf += len ;
  for (size_t i = 0 ; i < len ; i++)
    if (s[i] == '\n' && (i ? s[i - 1] : ap->last) != '\r') ap->crlf++ ;
  if (len) ap->last = s[len - 1] ;
  return 1 ;
}

void index_append_abort (struct index_append *ap)
{
  int e = errno ;
  if (ap->fd >= 0)
  {
    fd_close(ap->fd) ;
    ap->fd = -1 ;
    stralloc sa = STRALLOC_ZERO ;
    if (ap->dir && stralloc_cats(&sa, ap->dir) && stralloc_cats(&sa, "/tmp/") && stralloc_cats(&sa, ap->tmpname.s) && stralloc_0(&sa))
      unlink(sa.s) ;
    stralloc_free(&sa) ;
  }
  free(ap->dir) ;
  ap->dir = 0 ;
  stralloc_free(&ap->tmpname) ;
  errno = e ;
}

/* ",S=<bytes>" of a unique part, if there */
static int sizefield (char const *u, size_t len, uint64_t *v)
{
  char const *p = memmem(u, len, ",S=", 3) ;
  if (!p) return 0 ;
  size_t k = 0, i = (size_t)(p - u) + 3 ;
  *v = 0 ;
  while (i + k < len && u[i + k] >= '0' && u[i + k] <= '9' && k < 19) { *v = *v * 10 + (uint64_t)(u[i + k] - '0') ; k++ ; }
  return k > 0 ;
}

/* new name "<unique>,S=..,W=..:2,<letters>" into sa, NUL-terminated */
static int newname (stralloc *sa, char const *uniq, int hasbytes, uint64_t bytes, uint64_t crlf, uint32_t flags, uint32_t kw)
{
  char num[UINT64_FMT] ;
  sa->len = 0 ;
  return stralloc_cats(sa, uniq)
    && (!hasbytes || (stralloc_catb(sa, ",S=", 3) && stralloc_catb(sa, num, uint64_fmt(num, bytes))))
    && stralloc_catb(sa, ",W=", 3) && stralloc_catb(sa, num, uint64_fmt(num, crlf))
    && catinfo(sa, flags, kw) && stralloc_0(sa) ;
}

/* add a file now in cur/ to the locked index: new UID */
static int add_placed (mailindex *ix, char const *name, uint64_t size, int64_t idate, int64_t sentdate, uint32_t *uid)
{
  if (ix->uidnext == UINT32_MAX) return (errno = EOVERFLOW, 0) ;
  *uid = ix->uidnext ;
  if (!view_add(ix, ix->uidnext++, ++ix->highestmodseq, size, idate, sentdate, name, strlen(name))) return 0 ;
  ix->dirty = 1 ;
  return rec_add(&ix->rec, ix, index_msg(ix, ix->n - 1)) ;
}

int index_append_commit (struct index_append *ap, uint32_t flags, char const *const *keywords, size_t nkeywords, int64_t idate, uint32_t *uidvalidity, uint32_t *uid)
{
  mailindex t = INDEX_ZERO ;
  stralloc name = STRALLOC_ZERO, tmp = STRALLOC_ZERO ;
  int ok = 0, placed = 0 ;
  uint32_t kw = 0 ;
  if (ap->fd < 0) return (errno = EBADF, 0) ;
  if (ap->bytes && ap->last != '\n') ap->crlf += 2 ;
  if (idate < 0) idate = (int64_t)time(0) ;
  struct timespec ts[2] = { { .tv_sec = (time_t)idate, .tv_nsec = 0 }, { .tv_sec = (time_t)idate, .tv_nsec = 0 } } ;
  if (fsync(ap->fd) < 0 || futimens(ap->fd, ts) < 0) goto end ;
  if (!ix_attach(&t, ap->dir, INDEX_PEEK) || !ix_lock(&t)) goto end ;
  if (!ix_catchup(&t)) goto endl ;
  if (t.highestmodseq <= 1 && !ix_scan(&t, 1)) goto endl ;   /* a new index: the Maildir's mail first */
  for (size_t i = 0 ; i < nkeywords ; i++)
  {
    if (!kw_valid(keywords[i], strlen(keywords[i]))) { errno = EINVAL ; goto endl ; }
    int k = kw_create(&t, keywords[i], strlen(keywords[i])) ;
    if (k < 0) goto endl ;
    kw |= (uint32_t)1 << k ;
  }
  if (!newname(&name, ap->tmpname.s, 1, ap->bytes, ap->crlf, flags, kw)) goto endl ;
  if (!stralloc_cats(&tmp, "tmp/") || !stralloc_cats(&tmp, ap->tmpname.s) || !stralloc_0(&tmp)) goto endl ;
  if (renameat(t.dirfd, tmp.s, t.curfd, name.s) < 0) goto endl ;
  placed = 1 ;
  if (fsync(t.curfd) < 0) goto endl ;
  if (!add_placed(&t, name.s, ap->crlf, idate, INDEX_NODATE, uid)) goto endl ;
  if (!ix_flush(&t)) goto endl ;
  *uidvalidity = t.uidvalidity ;
  ok = 1 ;
 endl:
  ix_unlock(&t) ;
 end:
  {
    int e = errno ;
    index_close(&t) ;
    stralloc_free(&name) ;
    stralloc_free(&tmp) ;
    if (placed && ap->fd >= 0) { fd_close(ap->fd) ; ap->fd = -1 ; }   /* the file is in cur/: found by the next sync */
    if (ok) index_append_abort(ap) ;
    errno = e ;
  }
  return ok ;
}

/* ---------- COPY / MOVE ---------- */

/* copy file name of src as tmp/uniq then cur/target of dst; 1, 0, -1 ENOENT */
static int copyfile (mailindex *src, char const *name, mailindex *dst, char const *uniq, char const *target, int64_t idate)
{
  char buf[65536] ;
  stralloc tmp = STRALLOC_ZERO ;
  int in = openat(src->curfd, name, O_RDONLY | O_CLOEXEC), out = -1, ok = 0 ;
  if (in < 0) return errno == ENOENT ? -1 : 0 ;
  if (!stralloc_cats(&tmp, "tmp/") || !stralloc_cats(&tmp, uniq) || !stralloc_0(&tmp)) goto end ;
  out = openat(dst->dirfd, tmp.s, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600) ;
  if (out < 0) goto end ;
  for (;;)
  {
    ssize_t r = fd_read(in, buf, sizeof buf) ;
    if (r < 0) goto end ;
    if (!r) break ;
    if (allwrite(out, buf, (size_t)r) < (size_t)r) goto end ;
  }
  struct timespec ts[2] = { { .tv_sec = (time_t)idate }, { .tv_sec = (time_t)idate } } ;
  if (fsync(out) < 0 || futimens(out, ts) < 0) goto end ;
  if (renameat(dst->dirfd, tmp.s, dst->curfd, target) < 0) goto end ;
  ok = 1 ;
 end:
  {
    int e = errno ;
    fd_close(in) ;
    if (out >= 0) { fd_close(out) ; if (!ok) unlinkat(dst->dirfd, tmp.s, 0) ; }
    stralloc_free(&tmp) ;
    errno = e ;
  }
  return ok ;
}

int index_copy (mailindex *src, uint32_t const *pos, size_t n, mailindex *dst, genalloc *uids, int move)
{
  stralloc uniq = STRALLOC_ZERO, name = STRALLOC_ZERO, srcname = STRALLOC_ZERO ;
  genalloc gone = GENALLOC_ZERO ;   /* uint32_t src UIDs moved away */
  int ok = 0 ;
  genalloc_setlen(uint32_t, uids, 0) ;
  if (src == dst) move = 0 ;
  if (!ix_lock(dst)) return 0 ;
  if (!ix_catchup(dst)) { ix_abandon(dst) ; ix_unlock(dst) ; return 0 ; }
  if (!kw_load(dst, 0)) goto endl ;
  for (size_t j = 0 ; j < n ; j++)
  {
    uint32_t newuid = 0 ;
    if (pos[j] >= src->n) { errno = EINVAL ; goto endl ; }
    struct index_msg m = *index_msg(src, pos[j]) ;
    if (m.state & INDEX_EXPUNGED) goto next ;
    srcname.len = 0 ;
    if (!stralloc_cats(&srcname, src->names.s + m.name) || !stralloc_0(&srcname)) goto endl ;
    uint32_t kw = 0 ;
    for (int b = 0 ; b < INDEX_KEYWORDS ; b++)
      if (m.keywords & ((uint32_t)1 << b) && src->keyword[b][0])
      {
        int k = kw_create(dst, src->keyword[b], strlen(src->keyword[b])) ;
        if (k < 0) { if (errno == ENOSPC) continue ; goto endl ; }
        kw |= (uint32_t)1 << k ;
      }
    uint64_t bytes = 0 ;
    int hasbytes = sizefield(srcname.s, m.uniqlen, &bytes) ;
    if (!maildir_unique(&uniq) || !newname(&name, uniq.s, hasbytes, bytes, m.size, m.flags, kw)) goto endl ;
    int r = move ? renameat(src->curfd, srcname.s, dst->curfd, name.s) : linkat(src->curfd, srcname.s, dst->curfd, name.s, 0) ;
    if (r < 0)
    {
      if (errno == ENOENT) goto next ;   /* renamed or expunged meanwhile */
      if (errno != EXDEV && errno != EPERM && errno != EMLINK) goto endl ;
      r = copyfile(src, srcname.s, dst, uniq.s, name.s, m.idate) ;
      if (!r) goto endl ;
      if (r < 0) goto next ;
      if (move && unlinkat(src->curfd, srcname.s, 0) < 0 && errno != ENOENT) goto endl ;
    }
    if (!add_placed(dst, name.s, m.size, m.idate, m.sentdate, &newuid)) goto endl ;
    if (move && !genalloc_append(uint32_t, &gone, &m.uid)) goto endl ;
   next:
    if (!genalloc_append(uint32_t, uids, &newuid)) goto endl ;
  }
  ok = 1 ;
 endl:
  if (fsync(dst->curfd) < 0) ok = 0 ;
  if (!ix_flush(dst)) ok = 0 ;
  ix_unlock(dst) ;
  if (genalloc_len(uint32_t, &gone))
  {
    /* the source side of MOVE: the files are gone, say so in its index */
    int e = errno ;
    if (fsync(src->curfd) < 0) ok = 0 ;
    if (ix_lock(src))
    {
      if (!ix_catchup(src)) { ix_abandon(src) ; ok = 0 ; }
      else
        for (size_t j = 0 ; j < genalloc_len(uint32_t, &gone) ; j++)
        {
          ssize_t i = index_find_uid(src, genalloc_s(uint32_t, &gone)[j]) ;
          if (i < 0 || index_msg(src, i)->state & INDEX_EXPUNGED) continue ;
          index_msg(src, i)->state |= INDEX_EXPUNGED ;
          index_msg(src, i)->state &= ~INDEX_CHANGED ;
          src->dirty = 1 ;
          if (!rec_uid(&src->rec, 'X', index_msg(src, i)->uid, ++src->highestmodseq, 0)) { ok = 0 ; break ; }
        }
      if (!ix_flush(src)) ok = 0 ;
      ix_unlock(src) ;
    }
    else ok = 0 ;
    if (ok) errno = e ;
  }
  {
    int e = errno ;
    stralloc_free(&uniq) ;
    stralloc_free(&name) ;
    stralloc_free(&srcname) ;
    genalloc_free(uint32_t, &gone) ;
    errno = e ;
  }
  return ok ;
}
