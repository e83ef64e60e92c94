/* imapd/ixlog: yubin.index, the record log of the per-folder index
 * (see imapd/README, "Storage"): the records written and applied, the
 * file loaded, caught up with, flushed, compacted and rebuilt (with a
 * new UIDVALIDITY), and the lock that serializes its writers.
 *
 * Since INDEX_PEEK, the STATE record is 80 bytes: the 76 of version 1
 * and "pend" (u32), the lowest UID whose file may still be in new/ (0:
 * none).  The header's version stays 1: a STATE without the tail (an
 * older writer) reads as "anything may be in new/" (pend 1), which costs
 * one read of new/ and cur/ and is then written again; an older reader
 * ignores the tail, and since every scan reads new/ (moving it) before
 * cur/, it finds the peeked files in cur/ under the names recorded and
 * keeps their UIDs.  (The scan that computes pend is ixscan.c.) */

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/djbunix.h>
#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>

#include "mailread.h"
#include "imapd/index.h"
#include "imapd/ixpriv.h"

#define IX_MAGIC "YUBINIX\n"
#define IX_VERSION 1
#define IX_HDRLEN 32
#define IX_FILE "yubin.index"
#define IX_TMP "yubin.index.tmp"
#define IX_LOCK_WAIT_MS 60000

/* ---------- records ---------- */

static int rec_begin (stralloc *sa, char type, size_t *start)
{
  char h[9] = { 0 } ;
  *start = sa->len ;
  h[8] = type ;
  return stralloc_catb(sa, h, 9) ;
}

static void rec_end (stralloc *sa, size_t start)
{
  uint32_t len = (uint32_t)(sa->len - start - 8) ;
  put32(sa->s + start, len) ;
  put32(sa->s + start + 4, ix_crc32(sa->s + start + 8, len)) ;
}

int rec_add (stralloc *sa, mailindex const *ix, struct index_msg const *m)
{
  size_t start ;
  char b[36] ;
  char const *name = ix->names.s + m->name ;
  put32(b, m->uid) ; put64(b + 4, m->modseq) ; put64(b + 12, m->size) ;
  put64(b + 20, (uint64_t)m->idate) ; put64(b + 28, (uint64_t)m->sentdate) ;
  if (!rec_begin(sa, 'A', &start) || !stralloc_catb(sa, b, 36) || !stralloc_cats(sa, name)) return 0 ;
  rec_end(sa, start) ;
  return 1 ;
}

int rec_uid (stralloc *sa, char type, uint32_t uid, uint64_t v, char const *name)
{
  size_t start ;
  char b[12] ;
  put32(b, uid) ; put64(b + 4, v) ;
  if (!rec_begin(sa, type, &start) || !stralloc_catb(sa, b, 12) || (name && !stralloc_cats(sa, name))) return 0 ;
  rec_end(sa, start) ;
  return 1 ;
}

int rec_cache (stralloc *sa, struct index_msg const *m)
{
  size_t start ;
  char b[16] ;
  put32(b, m->uid) ; put64(b + 4, m->cacheoff) ; put32(b + 12, m->cachelen) ;
  if (!rec_begin(sa, 'F', &start) || !stralloc_catb(sa, b, 16)) return 0 ;
  rec_end(sa, start) ;
  return 1 ;
}

static int rec_state (stralloc *sa, mailindex const *ix)
{
  size_t start ;
  char b[12 + 64 + 4] ;
  put32(b, ix->uidnext) ; put64(b + 4, ix->highestmodseq) ;
  for (int d = 0 ; d < 2 ; d++) for (int k = 0 ; k < 4 ; k++) put64(b + 12 + 32 * d + 8 * k, ix->stamp[d][k]) ;
  put32(b + 76, ix->pend) ;
  if (!rec_begin(sa, 'S', &start) || !stralloc_catb(sa, b, sizeof b)) return 0 ;
  rec_end(sa, start) ;
  if (!rec_begin(sa, 'C', &start)) return 0 ;
  rec_end(sa, start) ;
  return 1 ;
}

/* Apply one record's payload p[0..len) to the view.  fresh: loading into
 * an empty view (no \Recent, nothing "changed").  1 ok, 0 damaged. */
static int rec_apply (mailindex *ix, char const *p, size_t len)
{
  char type = p[0] ;
  p++ ; len-- ;
  switch (type)
  {
    case 'A' :
    {
      if (len < 37) return 0 ;
      uint32_t uid = get32(p) ;
      if (!uid || (ix->n && index_msg(ix, ix->n - 1)->uid >= uid)) return 0 ;
      if (!view_add(ix, uid, get64(p + 4), get64(p + 12), (int64_t)get64(p + 20), (int64_t)get64(p + 28), p + 36, len - 36)) return 0 ;
      if (uid >= ix->uidnext) ix->uidnext = uid + 1 ;
      return 1 ;
    }
    case 'N' :
    {
      if (len < 13) return 0 ;
      struct mailname nm ;
      ssize_t i = index_find_uid(ix, get32(p)) ;
      if (!mailname_parse(p + 12, len - 12, &nm)) return 0 ;
      if (i < 0) return 1 ;
      struct index_msg *m = index_msg(ix, i) ;
      if (m->state & INDEX_EXPUNGED) return 1 ;
      uint32_t f = m->flags, k = m->keywords ;
      if (!ix_setname(ix, m, p + 12, len - 12, nm.uniqlen, 1)) return 0 ;
      if (m->flags != f || m->keywords != k) m->state |= INDEX_CHANGED ;
      m->modseq = get64(p + 4) ;
      return 1 ;
    }
    case 'X' :
    case 'D' :
    {
      if (len < 12) return 0 ;
      ssize_t i = index_find_uid(ix, get32(p)) ;
      if (i < 0) return 1 ;
      struct index_msg *m = index_msg(ix, i) ;
      if (type == 'X') { m->state |= INDEX_EXPUNGED ; m->state &= ~INDEX_CHANGED ; }
      else m->sentdate = (int64_t)get64(p + 4) ;
      return 1 ;
    }
    case 'F' :
    {
      if (len < 16) return 0 ;
      ssize_t i = index_find_uid(ix, get32(p)) ;
      if (i < 0) return 1 ;
      struct index_msg *m = index_msg(ix, i) ;
      m->cacheoff = get64(p + 4) ;
      m->cachelen = get32(p + 12) ;
      return 1 ;
    }
    case 'S' :
      if (len < 76) return 0 ;
      if (get32(p) > ix->uidnext) ix->uidnext = get32(p) ;
      ix->highestmodseq = get64(p + 4) ;
      for (int d = 0 ; d < 2 ; d++) for (int k = 0 ; k < 4 ; k++) ix->stamp[d][k] = get64(p + 12 + 32 * d + 8 * k) ;
      /* the pending tail came later: without it, anything may be in new/ */
      ix->pend = len >= 80 ? get32(p + 76) : 1 ;
      return 1 ;
    default :   /* 'C', and types of later versions: nothing to do */
      return 1 ;
  }
}

/* Apply the committed records of buf[0..len): *used gets the length up
 * to the end of the last COMMIT.  Returns 1, or 0 if damaged (a complete
 * record with a bad checksum followed by non-zero bytes, or bad
 * contents); a torn tail (a partial record, zeros) is not damage. */
static int recs_apply (mailindex *ix, char const *buf, size_t len, size_t *used)
{
  size_t off = 0, lastc = 0 ;
  while (off + 8 <= len)
  {
    uint32_t rlen = get32(buf + off) ;
    if (!rlen || rlen > IX_REC_MAX || off + 8 + rlen > len || get32(buf + off + 4) != ix_crc32(buf + off + 8, rlen))
    {
      if (rlen && rlen <= IX_REC_MAX && off + 8 + rlen <= len)
        for (size_t i = off ; i < len ; i++) if (buf[i]) return 0 ;
      break ;
    }
    off += 8 + rlen ;
    if (buf[off - rlen] == 'C') lastc = off ;
  }
  for (off = 0 ; off < lastc ; )
  {
    uint32_t rlen = get32(buf + off) ;
    if (!rec_apply(ix, buf + off + 8, rlen)) return 0 ;
    if (buf[off + 8] != 'F') ix->logrecs++ ;   /* cache pointers are not counted for compaction */
    off += 8 + rlen ;
  }
  *used = lastc ;
  return 1 ;
}

/* ---------- the index file ---------- */

static int header_check (char const *h, uint32_t *uidvalidity)
{
  if (memcmp(h, IX_MAGIC, 8) || get32(h + 8) != IX_VERSION || get32(h + 24) != ix_crc32(h, 24)) return 0 ;
  *uidvalidity = get32(h + 12) ;
  return *uidvalidity != 0 ;
}

/* Write the whole index (header, STATE, one ADD per live message) to
 * yubin.index.tmp, fsync, rename over yubin.index, fsync the folder; it
 * becomes ix->logfd. */
static int ix_writefile (mailindex *ix)
{
  stralloc sa = STRALLOC_ZERO ;
  char h[IX_HDRLEN] = { 0 } ;
  int fd = -1, e ;
  memcpy(h, IX_MAGIC, 8) ;
  put32(h + 8, IX_VERSION) ;
  put32(h + 12, ix->uidvalidity) ;
  put32(h + 24, ix_crc32(h, 24)) ;
  if (!stralloc_catb(&sa, h, IX_HDRLEN)) goto err ;
  uint64_t recs = 2 ;
  cache_trim(ix) ;
  for (size_t i = 0 ; i < ix->n ; i++)
  {
    struct index_msg const *m = index_msg(ix, i) ;
    if (m->state & INDEX_EXPUNGED) continue ;
    if (!rec_add(&sa, ix, m)) goto err ;
    if (m->cachelen && !rec_cache(&sa, m)) goto err ;
    recs++ ;
  }
  if (!rec_state(&sa, ix)) goto err ;
  fd = openat(ix->dirfd, IX_TMP, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) ;
  if (fd < 0) goto err ;
  if (allwrite(fd, sa.s, sa.len) < sa.len || fsync(fd) < 0
   || renameat(ix->dirfd, IX_TMP, ix->dirfd, IX_FILE) < 0 || fsync(ix->dirfd) < 0) goto err ;
  struct stat st ;
  if (fstat(fd, &st) < 0) goto err ;
  if (ix->logfd >= 0) fd_close(ix->logfd) ;
  ix->logfd = fd ;
  ix->logino = (uint64_t)st.st_ino ;
  ix->logoff = sa.len ;
  ix->logrecs = recs ;
  stralloc_free(&sa) ;
  return 1 ;
 err:
  e = errno ;
  if (fd >= 0) { fd_close(fd) ; unlinkat(ix->dirfd, IX_TMP, 0) ; }
  stralloc_free(&sa) ;
  errno = e ;
  return 0 ;
}

/* The next UIDVALIDITY: above the time, the old one and the last one
 * given in this Maildir (yubin-uidvalidity in the Maildir's top, the
 * parent of a ".Folder"), so that an index rebuilt or a folder made again
 * within the same second still gets a new one. */
static uint32_t next_uidvalidity (mailindex const *ix, uint32_t olduv)
{
  stralloc p = STRALLOC_ZERO, tmp = STRALLOC_ZERO ;
  char buf[32] ;
  uint32_t uv = (uint32_t)time(0), last = 0 ;
  char const *base = strrchr(ix->dir, '/') ;
  base = base ? base + 1 : ix->dir ;
  int ok = stralloc_cats(&p, ix->dir) && (base[0] != '.' || stralloc_catb(&p, "/..", 3))
        && stralloc_cats(&p, "/yubin-uidvalidity") && stralloc_0(&p) ;
  if (ok)
  {
    int fd = open(p.s, O_RDONLY | O_CLOEXEC) ;
    if (fd >= 0)
    {
      ssize_t r = allread(fd, buf, sizeof buf - 1) ;
      fd_close(fd) ;
      if (r > 0) { buf[r] = 0 ; last = (uint32_t)strtoul(buf, 0, 10) ; }
    }
  }
  if (uv <= olduv) uv = olduv + 1 ;
  if (uv <= last) uv = last + 1 ;
  if (!uv) uv = 1 ;
  if (ok && stralloc_copyb(&tmp, p.s, p.len - 1) && stralloc_catb(&tmp, ".", 1) && stralloc_cats(&tmp, ix->dir + (base - ix->dir)) && stralloc_0(&tmp))
  {
    int fd = open(tmp.s, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) ;
    if (fd >= 0)
    {
      int l = snprintf(buf, sizeof buf, "%u\n", uv) ;
      int w = allwrite(fd, buf, (size_t)l) == (size_t)l ;
      fd_close(fd) ;
      if (!w || rename(tmp.s, p.s) < 0) unlink(tmp.s) ;
    }
  }
  stralloc_free(&p) ;
  stralloc_free(&tmp) ;
  return uv ;
}

/* A new index: new UIDVALIDITY, empty view, every file to be found
 * again by the next scan (zero stamps). */
static int ix_rebuild (mailindex *ix, uint32_t olduv)
{
  if (olduv < ix->uidvalidity) olduv = ix->uidvalidity ;
  uint32_t uv = next_uidvalidity(ix, olduv) ;
  if (ix->uidvalidity || ix->n) ix->uidvalidity_changed = 1 ;
  view_clear(ix) ;
  ix->rec.len = 0 ;
  ix->uidvalidity = uv ;
  ix->uidnext = 1 ;
  ix->highestmodseq = 1 ;
  ix->pend = 0 ;
  memset(ix->stamp, 0, sizeof ix->stamp) ;
  return ix_writefile(ix) ;
}

static int readall (int fd, uint64_t off, size_t len, stralloc *sa)
{
  sa->len = 0 ;
  if (!stralloc_ready(sa, len)) return 0 ;
  while (sa->len < len)
  {
    ssize_t r = pread(fd, sa->s + sa->len, len - sa->len, (off_t)(off + sa->len)) ;
    if (r < 0) { if (errno == EINTR) continue ; return 0 ; }
    if (!r) break ;
    sa->len += (size_t)r ;
  }
  return 1 ;
}

/* Merge the freshly loaded state t into the view: messages gone from t
 * become INDEX_EXPUNGED (or vanish if the client never saw them),
 * changed flags INDEX_CHANGED, new ones are appended.  t is emptied. */
static int ix_merge (mailindex *ix, mailindex *t)
{
  mailindex r = INDEX_ZERO ;
  size_t i = 0, j = 0 ;
  if (ix->uidvalidity && t->uidvalidity != ix->uidvalidity) { ix->uidvalidity_changed = 1 ; view_clear(ix) ; }
  while (i < ix->n || j < t->n)
  {
    struct index_msg *a = i < ix->n ? index_msg(ix, i) : 0 ;
    struct index_msg *b = j < t->n ? index_msg(t, j) : 0 ;
    struct index_msg m ;
    char const *name ;
    if (a && (!b || a->uid < b->uid))
    {
      i++ ;
      if (i - 1 >= ix->reported) continue ;   /* the client never saw it */
      m = *a ; m.state |= INDEX_EXPUNGED ; name = ix->names.s + a->name ;
    }
    else if (b && (!a || b->uid < a->uid)) { j++ ; m = *b ; name = t->names.s + b->name ; }
    else
    {
      i++ ; j++ ;
      m = *b ;
      m.state = a->state ;
      if (!(a->state & INDEX_EXPUNGED) && (a->flags != b->flags || a->keywords != b->keywords)) m.state |= INDEX_CHANGED ;
      name = t->names.s + b->name ;
    }
    size_t off = r.names.len ;
    if (!stralloc_cats(&r.names, name) || !stralloc_0(&r.names)) goto err ;
    m.name = (uint32_t)off ;
    if (!genalloc_append(struct index_msg, &r.msgs, &m)) goto err ;
  }
  genalloc_free(struct index_msg, &ix->msgs) ;
  stralloc_free(&ix->names) ;
  ix->msgs = r.msgs ;
  ix->names = r.names ;
  ix->n = nmsgs(ix) ;
  ix->garbage = 0 ;
  if (ix->reported > ix->n) ix->reported = ix->n ;
  ix_hash_free(ix) ;
  ix->uidvalidity = t->uidvalidity ;
  ix->uidnext = t->uidnext ;
  ix->highestmodseq = t->highestmodseq ;
  ix->pend = t->pend ;
  memcpy(ix->stamp, t->stamp, sizeof ix->stamp) ;
  return 1 ;
 err:
  genalloc_free(struct index_msg, &r.msgs) ;
  stralloc_free(&r.names) ;
  return 0 ;
}

/* Read what changed in yubin.index since we last looked; load it all if
 * it was replaced; rebuild it if missing or damaged.  Locked. */
int ix_catchup (mailindex *ix)
{
  struct stat st ;
  stralloc buf = STRALLOC_ZERO ;
  uint32_t olduv = 0 ;
  int e ;
  if (fstatat(ix->dirfd, IX_FILE, &st, 0) < 0)
  {
    if (errno != ENOENT) return 0 ;
    return ix_rebuild(ix, 0) ;
  }
  if (ix->logfd >= 0 && (uint64_t)st.st_ino == ix->logino && (uint64_t)st.st_size >= ix->logoff)
  {
    if ((uint64_t)st.st_size == ix->logoff) return 1 ;
    size_t used ;
    if (!readall(ix->logfd, ix->logoff, (size_t)st.st_size - ix->logoff, &buf)) goto err ;
    if (!recs_apply(ix, buf.s, buf.len, &used)) { stralloc_free(&buf) ; return ix_rebuild(ix, 0) ; }
    ix->logoff += used ;
    if (used < buf.len && ftruncate(ix->logfd, (off_t)ix->logoff) < 0) goto err ;
    stralloc_free(&buf) ;
    return 1 ;
  }
  /* (re)load the whole file */
  int fd = openat(ix->dirfd, IX_FILE, O_RDWR | O_CLOEXEC) ;
  if (fd < 0) return errno == ENOENT ? ix_rebuild(ix, 0) : 0 ;
  if (fstat(fd, &st) < 0 || !readall(fd, 0, (size_t)st.st_size, &buf)) { e = errno ; fd_close(fd) ; errno = e ; goto err ; }
  if (ix->logfd >= 0) fd_close(ix->logfd) ;
  ix->logfd = fd ;
  mailindex t = INDEX_ZERO ;
  size_t used ;
  if (buf.len < IX_HDRLEN || !header_check(buf.s, &olduv)) { stralloc_free(&buf) ; return ix_rebuild(ix, olduv) ; }
  t.uidvalidity = olduv ;
  t.uidnext = 1 ;
  if (!recs_apply(&t, buf.s + IX_HDRLEN, buf.len - IX_HDRLEN, &used) || !t.highestmodseq)
  {
    index_close(&t) ;
    stralloc_free(&buf) ;
    return ix_rebuild(ix, olduv) ;
  }
  ix->logino = (uint64_t)st.st_ino ;
  ix->logoff = IX_HDRLEN + used ;
  ix->logrecs = t.logrecs ;
  if (IX_HDRLEN + used < buf.len && ftruncate(ix->logfd, (off_t)ix->logoff) < 0) { e = errno ; index_close(&t) ; errno = e ; goto err ; }
  stralloc_free(&buf) ;
  int ok = ix_merge(ix, &t) ;
  e = errno ;
  index_close(&t) ;
  errno = e ;
  return ok ;
 err:
  e = errno ;
  stralloc_free(&buf) ;
  errno = e ;
  return 0 ;
}

/* Write the records waiting in ix->rec (and a STATE, a COMMIT) at the end
 * of the index, fdatasync; compact now and then.  Locked.  On failure
 * nothing was written and the view is reloaded at the next catch-up. */
int ix_flush (mailindex *ix)
{
  if (ix->cachebuf.len && !cache_write(ix)) { }   /* only the cache entries are lost */
  if (!ix->rec.len && !ix->dirty) return 1 ;
  size_t start = ix->rec.len ;
  uint64_t recs = 2 ;
  for (size_t off = 0 ; off < start ; off += 8 + get32(ix->rec.s + off)) if (ix->rec.s[off + 8] != 'F') recs++ ;
  if (!rec_state(&ix->rec, ix)) goto err ;
  if (ix->logrecs + recs > 2 * ix->n + 4096) { if (!ix_writefile(ix)) goto err ; }
  else
  {
    size_t done = 0 ;
    while (done < ix->rec.len)
    {
      ssize_t w = pwrite(ix->logfd, ix->rec.s + done, ix->rec.len - done, (off_t)(ix->logoff + done)) ;
      if (w < 0) { if (errno == EINTR) continue ; goto errw ; }
      done += (size_t)w ;
    }
    if (fdatasync(ix->logfd) < 0) goto errw ;
    ix->logoff += ix->rec.len ;
    ix->logrecs += recs ;
  }
  ix->rec.len = 0 ;
  ix->dirty = 0 ;
  return 1 ;
 errw:
  {
    int e = errno ;
    if (ftruncate(ix->logfd, (off_t)ix->logoff) < 0) { }
    errno = e ;
  }
 err:
  ix->rec.len = 0 ;
  ix->dirty = 0 ;
  ix->logino = 0 ;   /* forces a full reload: forget what was not written */
  return 0 ;
}

/* ---------- locking ---------- */

static void sleep_ms (long ms)
{
  struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L } ;
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) ;
}

int ix_lock (mailindex *ix)
{
  struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 } ;
  long waited = 0, step = 1 ;
  while (fcntl(ix->lockfd, F_OFD_SETLK, &fl) < 0)
  {
    if (errno == EINTR) continue ;
    if (errno != EAGAIN && errno != EACCES) return 0 ;
    if (waited >= IX_LOCK_WAIT_MS) return (errno = ETIMEDOUT, 0) ;
    sleep_ms(step) ;
    waited += step ;
    if (step < 16) step <<= 1 ;
  }
  ix->locked = 1 ;
  return 1 ;
}

void ix_unlock (mailindex *ix)
{
  struct flock fl = { .l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 } ;
  int e = errno ;
  if (ix->locked && fcntl(ix->lockfd, F_OFD_SETLK, &fl) < 0) { }
  ix->locked = 0 ;
  errno = e ;
}
