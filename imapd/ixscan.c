/* imapd/ixscan: the scan of new/ and cur/ that brings the view of the
 * per-folder index in line with the Maildir (ix_scan, called locked,
 * after a catch-up of the record log, ixlog.c), INDEX_PEEK included.
 *
 * A peek leaves new/'s stamp alone (unless new/ is empty), so the next
 * session that takes new/ reads it; a message of the index whose file
 * is not in cur/ is looked for in new/ before it is called expunged.
 *
 * Not done: skipping the read of cur/ after our own STORE renames.  The
 * mtime they move cannot tell our renames from another program's change
 * in the same window (yubin-pop3d, a MUA on the Maildir: they take no
 * lock), so a stamp taken after them could hide that change until cur/
 * changes again.  Doing it safely needs inotify on cur/ with every event
 * matched to our own renames (and a fall-back on queue overflow); the
 * read it saves is about 7 ms for 10,000 names. */

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <skalibs/djbunix.h>
#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>

#include "mailread.h"
#include "imapd/index.h"
#include "imapd/ixpriv.h"

#define IX_STAMP_MARGIN_NS 100000000LL  /* a directory changed within 100 ms is rescanned */
#define SCAN 0x80                        /* index_msg.state scratch bits: seen by this scan, */
#define SCANNEW 0x40                     /* its file is (still) in new/ */
#define IX_PEEK_STATS 64                 /* a peek checks at most this many names with a stat before reading cur/ */

/* ---------- little helpers ---------- */

static int64_t now_ns (void)
{
  struct timespec ts ;
  clock_gettime(CLOCK_REALTIME, &ts) ;
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec ;
}

/* ---------- the scan of new/ and cur/ ---------- */

static void getstamp (struct stat const *st, uint64_t *s, int64_t now)
{
  int64_t mt = (int64_t)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec ;
  s[0] = (uint64_t)st->st_mtim.tv_sec ;
  s[1] = (uint64_t)st->st_mtim.tv_nsec ;
  s[2] = (uint64_t)st->st_size ;
  s[3] = (uint64_t)st->st_ino ;
  /* a change in the same clock tick as this stat would not move the
     mtime: trust only a directory that has been still for a while */
  if (mt + IX_STAMP_MARGIN_NS > now) memset(s, 0, 4 * sizeof(uint64_t)) ;
}

static int samestamp (uint64_t const *a, struct stat const *st)
{
  return a[0] && a[0] == (uint64_t)st->st_mtim.tv_sec && a[1] == (uint64_t)st->st_mtim.tv_nsec
      && a[2] == (uint64_t)st->st_size && a[3] == (uint64_t)st->st_ino ;
}

struct moved { stralloc *sa ; size_t *n ; } ;

static int note_moved (void *arg, char const *name, size_t uniqlen)
{
  struct moved *m = arg ;
  if (!stralloc_catb(m->sa, name, uniqlen) || !stralloc_0(m->sa)) return 0 ;
  (*m->n)++ ;
  return 1 ;
}

/* move new/ into cur/; the unique parts moved go to moved (NUL-separated) */
static int scan_new (mailindex *ix, stralloc *moved, size_t *nmoved)
{
  struct moved m = { .sa = moved, .n = nmoved } ;
  char const *op ;
  return mailread_newtocur(ix->newfd, ix->curfd, &note_moved, &m, &op) ;
}

struct peek { mailindex *ix ; stralloc *fresh ; size_t *seen ; } ;

static int peek_one (void *arg, int dirfd, struct dirent const *e, size_t len, struct mailname const *nm, char const **op)
{
  struct peek *p = arg ;
  (void)op ;
  ssize_t pos = ix_hash_find(p->ix, e->d_name, nm->uniqlen) ;
  if (pos >= 0) { index_msg(p->ix, pos)->state |= SCAN | SCANNEW ; (*p->seen)++ ; return 1 ; }
  int r = mailread_isregular(dirfd, e) ;
  if (r < 0) return 0 ;
  if (r) (*p->seen)++ ;
  return !r || (stralloc_catb(p->fresh, "n", 1) && stralloc_catb(p->fresh, e->d_name, len) && stralloc_0(p->fresh)) ;
}

/* INDEX_PEEK: read new/ without taking anything.  Messages of the view
 * found there get SCAN | SCANNEW; unknown names go to fresh as
 * "n<name>" (NUL-terminated); *seen counts both.  The hash must be
 * built. */
static int scan_peek (mailindex *ix, stralloc *fresh, size_t *seen)
{
  struct peek p = { .ix = ix, .fresh = fresh, .seen = seen } ;
  char const *op ;
  return mailread_each(ix->newfd, &peek_one, &p, &op) ;
}

/* Is message m's file still in new/ (peeked, taken by no session yet)?
 * Its name there is its name in the index, or that without an empty
 * ":2," (scan_new's rule backwards).  1 yes, 0 no, -1 error. */
static int in_new (mailindex const *ix, struct index_msg const *m)
{
  char const *name = ix->names.s + m->name ;
  char buf[256] ;
  if (faccessat(ix->newfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0) return 1 ;
  if (errno != ENOENT) return -1 ;
  if (strlen(name) != (size_t)m->uniqlen + 3 || m->uniqlen >= sizeof buf || memcmp(name + m->uniqlen, ":2,", 3)) return 0 ;
  memcpy(buf, name, m->uniqlen) ;
  buf[m->uniqlen] = 0 ;
  if (faccessat(ix->newfd, buf, F_OK, AT_SYMLINK_NOFOLLOW) == 0) return 1 ;
  return errno == ENOENT ? 0 : -1 ;
}

/* a file of the view found under name[0..len): a flag change by someone else? */
static int scan_found (mailindex *ix, size_t pos, char const *name, size_t len, size_t uniqlen)
{
  struct index_msg *m = index_msg(ix, pos) ;
  m->state |= SCAN ;
  if (!strcmp(ix->names.s + m->name, name)) return 1 ;
  uint32_t f = m->flags, k = m->keywords ;
  if (!ix_setname(ix, m, name, len, uniqlen, 1)) return 0 ;
  if (m->flags != f || m->keywords != k) m->state |= INDEX_CHANGED ;
  m->modseq = ++ix->highestmodseq ;
  ix->dirty = 1 ;
  return rec_uid(&ix->rec, 'N', m->uid, m->modseq, ix->names.s + m->name) ;
}

struct curscan { mailindex *ix ; stralloc *fresh ; } ;

static int cur_one (void *arg, int dirfd, struct dirent const *e, size_t len, struct mailname const *nm, char const **op)
{
  struct curscan *c = arg ;
  (void)op ;
  ssize_t pos = ix_hash_find(c->ix, e->d_name, nm->uniqlen) ;
  if (pos >= 0)
  {
    struct index_msg *m = index_msg(c->ix, pos) ;
    if (m->state & SCANNEW) m->state &= ~(SCAN | SCANNEW) ;
    else if (m->state & SCAN) return 1 ;   /* the same unique part twice: first wins */
    return scan_found(c->ix, (size_t)pos, e->d_name, len, nm->uniqlen) ;
  }
  if (!c->fresh) return 1 ;
  int r = mailread_isregular(dirfd, e) ;
  if (r < 0) return 0 ;
  return !r || (stralloc_catb(c->fresh, "c", 1) && stralloc_catb(c->fresh, e->d_name, len) && stralloc_0(c->fresh)) ;
}

/* read cur/: known names marked SCAN (renames noted), unknown ones to
 * fresh as "c<name>" (NUL-terminated) if fresh is not 0.  A message
 * seen in new/ before (SCANNEW) and found here was moved meanwhile. */
static int scan_cur (mailindex *ix, stralloc *fresh)
{
  struct curscan c = { .ix = ix, .fresh = fresh } ;
  char const *op ;
  return mailread_each(ix->curfd, &cur_one, &c, &op) ;
}

static int freshcmp (void const *x, void const *y, void *aux)
{
  char const *s = aux ;
  char const *a = s + *(size_t const *)x, *b = s + *(size_t const *)y ;
  struct mailname na, nb ;
  mailname_parse(a, strlen(a), &na) ;
  mailname_parse(b, strlen(b), &nb) ;
  int c = mailname_cmp(a, na.uniqlen, b, nb.uniqlen) ;
  return c ? c : strcmp(a, b) ;
}

/* UIDs for the new names of fresh ("c<name>" in cur/, "n<name>" left in
 * new/ by a peek: recorded under the name scan_new will give it, marked
 * SCANNEW), in delivery order */
static int scan_add (mailindex *ix, stralloc *fresh)
{
  genalloc offs = GENALLOC_ZERO ;
  stralloc rname = STRALLOC_ZERO ;
  for (size_t off = 0 ; off < fresh->len ; off += strlen(fresh->s + off) + 1)
  {
    size_t o = off + 1 ;
    if (!genalloc_append(size_t, &offs, &o)) goto err ;
  }
  size_t k = genalloc_len(size_t, &offs) ;
  size_t *o = genalloc_s(size_t, &offs) ;
  if (k) qsort_r(o, k, sizeof(size_t), &freshcmp, fresh->s) ;
  for (size_t i = 0 ; i < k ; i++)
  {
    char const *name = fresh->s + o[i] ;
    int innew = fresh->s[o[i] - 1] == 'n' ;
    int dfd = innew ? ix->newfd : ix->curfd ;
    size_t len = strlen(name) ;
    struct mailname nm ;
    struct stat st ;
    mailname_parse(name, len, &nm) ;
    if (ix_hash_find(ix, name, nm.uniqlen) >= 0) continue ;   /* the same unique part twice */
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    {
      if (errno == ENOENT) continue ;   /* renamed meanwhile: the next scan */
      goto err ;
    }
    if (!S_ISREG(st.st_mode)) continue ;
    uint64_t size = nm.wsize ;
    if (!nm.haswsize)
    {
      int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC) ;
      if (fd < 0) { if (errno == ENOENT) continue ; goto err ; }
      int ok = mailread_crlfsize(fd, &size) ;
      int e = errno ;
      fd_close(fd) ;
      errno = e ;
      if (!ok) goto err ;
    }
    rname.len = 0 ;
    if (!stralloc_catb(&rname, name, len) || (innew && nm.uniqlen == len && !stralloc_catb(&rname, ":2,", 3))) goto err ;
    if (ix->uidnext == UINT32_MAX) { errno = EOVERFLOW ; goto err ; }
    if (!view_add(ix, ix->uidnext++, ++ix->highestmodseq, size, (int64_t)st.st_mtim.tv_sec, INDEX_NODATE, rname.s, rname.len)) goto err ;
    if (innew) index_msg(ix, ix->n - 1)->state |= SCAN | SCANNEW ;
    if (!rec_add(&ix->rec, ix, index_msg(ix, ix->n - 1))) goto err ;
    ix->dirty = 1 ;
  }
  genalloc_free(size_t, &offs) ;
  stralloc_free(&rname) ;
  return 1 ;
 err:
  {
    int e = errno ;
    genalloc_free(size_t, &offs) ;
    stralloc_free(&rname) ;
    errno = e ;
  }
  return 0 ;
}

/* INDEX_PEEK, after scan_peek: must cur/ be read to know where the
 * messages that may be pending (UID >= pend, not seen in new/) went?  A
 * few are looked up in cur/ with a stat; more, or one not there, say
 * yes.  1 yes, 0 no, -1 error. */
static int peek_needs_cur (mailindex *ix)
{
  size_t stats = 0 ;
  if (!ix->pend) return 0 ;
  for (size_t i = ix->n ; i-- > 0 ; )
  {
    struct index_msg const *m = index_msg(ix, i) ;
    if (m->uid < ix->pend) break ;
    if (m->state & (SCANNEW | INDEX_EXPUNGED)) continue ;
    if (++stats > IX_PEEK_STATS) return 1 ;
    if (faccessat(ix->curfd, ix->names.s + m->name, F_OK, AT_SYMLINK_NOFOLLOW) == 0) continue ;
    return errno == ENOENT ? 1 : -1 ;
  }
  return 0 ;
}

/* Bring the view in line with new/ and cur/ (locked, after a catch-up).
 * force: read new/ and cur/ even if their stamps say nothing changed.
 *
 * new/ is read when its stamp differs from the one of the last scan that
 * took new/, or when ix->pend says a message of the index may still be
 * there.  Normally its files are moved into cur/ (\Recent for this
 * session unless readonly).  INDEX_PEEK only looks: known names are
 * marked as still in new/, unknown ones get UIDs under the name they
 * will have in cur/, and the stamp of new/ is left alone, so the next
 * session that takes new/ still reads it (and gets the \Recent).
 * ix->pend, written with the STATE, is the lowest UID found in new/
 * (0: none): a scan that reads new/ or cur/ computes it again. */
int ix_scan (mailindex *ix, int force)
{
  stralloc moved = STRALLOC_ZERO, fresh = STRALLOC_ZERO ;
  size_t nmoved = 0 ;
  struct stat st ;
  uint64_t stamp[4], stamp1[4] ;
  int ok = 0, peek = ix->readonly == INDEX_PEEK, newread = 0, curread = 0 ;

  if (fstat(ix->newfd, &st) < 0) return 0 ;
  if (force || ix->pend || !samestamp(ix->stamp[0], &st))
  {
    newread = 1 ;
    if (peek)
    {
      size_t seen = 0 ;
      getstamp(&st, stamp, now_ns()) ;
      if (!ix->hash && !ix_hash_build(ix)) goto end ;
      if (!scan_peek(ix, &fresh, &seen)) goto end ;
      /* an empty new/ is what a real scan would leave: its stamp is good */
      if (!seen && memcmp(stamp, ix->stamp[0], sizeof stamp)) { memcpy(ix->stamp[0], stamp, sizeof stamp) ; ix->dirty = 1 ; }
      int r = peek_needs_cur(ix) ;
      if (r < 0) goto end ;
      if (r) force = 1 ;
    }
    else
    {
      getstamp(&st, stamp, now_ns()) ;
      if (!scan_new(ix, &moved, &nmoved)) goto end ;
      if (memcmp(stamp, ix->stamp[0], sizeof stamp)) { memcpy(ix->stamp[0], stamp, sizeof stamp) ; ix->dirty = 1 ; }
      /* what we moved, and what others took from new/ or removed there */
      if (nmoved || ix->pend) force = 1 ;
    }
  }
  if (fstat(ix->curfd, &st) < 0) goto end ;
  if (force || !samestamp(ix->stamp[1], &st))
  {
    curread = 1 ;
    getstamp(&st, stamp1, now_ns()) ;
    if (!ix->hash && !ix_hash_build(ix)) goto end ;
    if (!scan_cur(ix, &fresh)) goto end ;
    /* not seen: missed by readdir (a rename during it), still in new/
       (a peeked message), or gone */
    size_t missing = 0 ;
    for (size_t i = 0 ; i < ix->n ; i++)
    {
      struct index_msg *m = index_msg(ix, i) ;
      if (m->state & (SCAN | INDEX_EXPUNGED)) continue ;
      if (faccessat(ix->curfd, ix->names.s + m->name, F_OK, AT_SYMLINK_NOFOLLOW) == 0) { m->state |= SCAN ; continue ; }
      if (errno != ENOENT) goto end ;
      int r = in_new(ix, m) ;
      if (r < 0) goto end ;
      if (r) { m->state |= SCAN | SCANNEW ; continue ; }
      missing++ ;
    }
    if (missing && !scan_cur(ix, 0)) goto end ;
    for (size_t i = 0 ; i < ix->n ; i++)
    {
      struct index_msg *m = index_msg(ix, i) ;
      if (!(m->state & (SCAN | INDEX_EXPUNGED)))
      {
        m->state |= INDEX_EXPUNGED ;
        m->state &= ~INDEX_CHANGED ;
        if (!rec_uid(&ix->rec, 'X', m->uid, ++ix->highestmodseq, 0)) goto end ;
        ix->dirty = 1 ;
      }
    }
  }
  if (fresh.len && !scan_add(ix, &fresh)) goto end ;
  if (curread && memcmp(stamp1, ix->stamp[1], sizeof stamp1)) { memcpy(ix->stamp[1], stamp1, sizeof stamp1) ; ix->dirty = 1 ; }
  if (newread || curread)
  {
    uint32_t pend = 0 ;
    for (size_t i = 0 ; i < ix->n ; i++)
    {
      struct index_msg const *m = index_msg(ix, i) ;
      if (m->state & SCANNEW && !(m->state & INDEX_EXPUNGED)) { pend = m->uid ; break ; }
    }
    if (pend != ix->pend) { ix->pend = pend ; ix->dirty = 1 ; }
  }
  if (peek)   /* \Recent in a peek: still in new/, \Recent for whoever takes it */
    for (size_t i = 0 ; i < ix->n ; i++)
    {
      struct index_msg *m = index_msg(ix, i) ;
      if (m->state & SCANNEW && !(m->state & INDEX_EXPUNGED)) m->state |= INDEX_RECENT ;
      else m->state &= ~INDEX_RECENT ;
    }
  if (!ix->readonly)
    for (size_t off = 0 ; off < moved.len ; off += strlen(moved.s + off) + 1)
    {
      ssize_t pos = ix_hash_find(ix, moved.s + off, strlen(moved.s + off)) ;
      if (pos >= 0) index_msg(ix, pos)->state |= INDEX_RECENT ;
    }
  ok = 1 ;
 end:
  {
    int e = errno ;
    for (size_t i = 0 ; i < ix->n ; i++) index_msg(ix, i)->state &= ~(SCAN | SCANNEW) ;
    stralloc_free(&moved) ;
    stralloc_free(&fresh) ;
    errno = e ;
  }
  return ok ;
}
