/* imapd/index: the per-folder index; see index.h, and imapd/README
 * ("Storage") for the file format, the locking and the crash story.
 *
 * Since INDEX_PEEK, the STATE record is 80 bytes: the 76 of version 1
 * and "pend" (u32), the lowest UID whose file may still be in new/ (0:
 * none).  The header's version stays 1: a STATE without the tail (an
 * older writer) reads as "anything may be in new/" (pend 1), which costs
 * one read of new/ and cur/ and is then written again; an older reader
 * ignores the tail, and since every scan reads new/ (moving it) before
 * cur/, it finds the peeked files in cur/ under the names recorded and
 * keeps their UIDs.
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
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/djbunix.h>
#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>
#include <skalibs/types.h>

#include "maildir.h"
#include "pop3d/mbox.h"
#include "imapd/index.h"
#include "imapd/ixpriv.h"

#define IX_MAGIC "YUBINIX\n"
#define IX_VERSION 1
#define IX_HDRLEN 32
#define IX_FILE "yubin.index"
#define IX_TMP "yubin.index.tmp"
#define IX_LOCK "yubin.index.lock"
#define IX_KW "yubin-keywords"
#define IX_KWTMP "yubin-keywords.tmp"
#define IX_LOCK_WAIT_MS 60000
#define IX_STAMP_MARGIN_NS 100000000LL  /* a directory changed within 100 ms is rescanned */
#define SCAN 0x80                        /* index_msg.state scratch bits: seen by this scan, */
#define SCANNEW 0x40                     /* its file is (still) in new/ */
#define IX_PEEK_STATS 64                 /* a peek checks at most this many names with a stat before reading cur/ */
#define SETMASK (INDEX_DRAFT | INDEX_FLAGGED | INDEX_PASSED | INDEX_ANSWERED | INDEX_SEEN | INDEX_DELETED)

/* ---------- little helpers ---------- */


static uint32_t crctab[256] ;

uint32_t ix_crc32 (char const *s, size_t n)
{
  if (!crctab[1])
    for (uint32_t i = 0 ; i < 256 ; i++)
    {
      uint32_t c = i ;
      for (int k = 0 ; k < 8 ; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1 ;
      crctab[i] = c ;
    }
  uint32_t c = 0xffffffffu ;
  for (size_t i = 0 ; i < n ; i++) c = crctab[(c ^ (unsigned char)s[i]) & 0xff] ^ (c >> 8) ;
  return c ^ 0xffffffffu ;
}

static int64_t now_ns (void)
{
  struct timespec ts ;
  clock_gettime(CLOCK_REALTIME, &ts) ;
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec ;
}

static void sleep_ms (long ms)
{
  struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L } ;
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) ;
}

static uint64_t hashuniq (char const *s, size_t n)
{
  uint64_t h = 14695981039346656037ull ;
  for (size_t i = 0 ; i < n ; i++) { h ^= (unsigned char)s[i] ; h *= 1099511628211ull ; }
  return h ;
}

static DIR *opendirat (int dirfd)
{
  int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (fd < 0) return 0 ;
  DIR *d = fdopendir(fd) ;
  if (!d) { int e = errno ; fd_close(fd) ; errno = e ; }
  return d ;
}

/* 1 regular file, 0 not, -1 error */
static int isregular (int dirfd, struct dirent const *e)
{
  if (e->d_type == DT_REG) return 1 ;
  if (e->d_type != DT_UNKNOWN) return 0 ;
  struct stat st ;
  if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) return errno == ENOENT ? 0 : -1 ;
  return S_ISREG(st.st_mode) ;
}

/* flags and keywords of a file name whose unique part is uniqlen long */
static void nameflags (char const *name, size_t len, size_t uniqlen, uint32_t *flags, uint32_t *kw)
{
  *flags = *kw = 0 ;
  if (uniqlen + 3 > len) return ;
  for (size_t i = uniqlen + 3 ; i < len ; i++)
  {
    char c = name[i] ;
    if (c >= 'A' && c <= 'Z') *flags |= INDEX_FLAG(c) ;
    else if (c >= 'a' && c <= 'z') *kw |= (uint32_t)1 << (c - 'a') ;
  }
}

/* the info ":2,<letters>" of flags and keywords, appended */
int catinfo (stralloc *sa, uint32_t flags, uint32_t kw)
{
  char buf[3 + 52] ;
  size_t n = 3 ;
  memcpy(buf, ":2,", 3) ;
  for (int i = 0 ; i < 26 ; i++) if (flags & ((uint32_t)1 << i)) buf[n++] = 'A' + i ;
  for (int i = 0 ; i < 26 ; i++) if (kw & ((uint32_t)1 << i)) buf[n++] = 'a' + i ;
  return stralloc_catb(sa, buf, n) ;
}

/* ---------- the view ---------- */

ssize_t index_find_uid (mailindex const *ix, uint32_t uid)
{
  struct index_msg const *m = genalloc_s(struct index_msg, &ix->msgs) ;
  size_t lo = 0, hi = nmsgs(ix) ;
  while (lo < hi)
  {
    size_t mid = lo + (hi - lo) / 2 ;
    if (m[mid].uid == uid) return (ssize_t)mid ;
    if (m[mid].uid < uid) lo = mid + 1 ; else hi = mid ;
  }
  return -1 ;
}

/* give m the name name[0..len); replace: it had one before */
static int setname (mailindex *ix, struct index_msg *m, char const *name, size_t len, size_t uniqlen, int replace)
{
  if (ix->names.len + len + 1 > UINT32_MAX || uniqlen > UINT16_MAX) return (errno = EOVERFLOW, 0) ;
  size_t off = ix->names.len ;
  if (!stralloc_catb(&ix->names, name, len) || !stralloc_0(&ix->names)) return 0 ;
  if (replace) ix->garbage += strlen(ix->names.s + m->name) + 1 ;
  m->name = (uint32_t)off ;
  m->uniqlen = (uint16_t)uniqlen ;
  nameflags(name, len, uniqlen, &m->flags, &m->keywords) ;
  return 1 ;
}

static void hash_free (mailindex *ix)
{
  free(ix->hash) ;
  ix->hash = 0 ;
  ix->hashsize = 0 ;
}

static void hash_put (mailindex *ix, size_t pos)
{
  struct index_msg const *m = index_msg(ix, pos) ;
  size_t mask = ix->hashsize - 1 ;
  size_t h = (size_t)hashuniq(ix->names.s + m->name, m->uniqlen) & mask ;
  while (ix->hash[h]) h = (h + 1) & mask ;
  ix->hash[h] = (uint32_t)pos + 1 ;
}

static int hash_build (mailindex *ix)
{
  size_t n = nmsgs(ix), size = 64 ;
  while (size < 2 * n + 2) size <<= 1 ;
  hash_free(ix) ;
  ix->hash = calloc(size, sizeof(uint32_t)) ;
  if (!ix->hash) return 0 ;
  ix->hashsize = size ;
  for (size_t i = 0 ; i < n ; i++) hash_put(ix, i) ;
  return 1 ;
}

/* message with unique part u[0..len) not expunged, or -1 */
static ssize_t hash_find (mailindex *ix, char const *u, size_t len)
{
  if (!ix->hash) return -1 ;
  size_t mask = ix->hashsize - 1 ;
  for (size_t h = (size_t)hashuniq(u, len) & mask ; ix->hash[h] ; h = (h + 1) & mask)
  {
    struct index_msg const *m = index_msg(ix, ix->hash[h] - 1) ;
    if (m->uniqlen == len && !(m->state & INDEX_EXPUNGED) && !memcmp(ix->names.s + m->name, u, len))
      return ix->hash[h] - 1 ;
  }
  return -1 ;
}

/* append a message to the view; 0 on error */
int view_add (mailindex *ix, uint32_t uid, uint64_t modseq, uint64_t size, int64_t idate, int64_t sentdate, char const *name, size_t len)
{
  struct mbox_name nm ;
  if (!mbox_name_parse(name, len, &nm)) return (errno = EINVAL, 0) ;
  struct index_msg m = { .modseq = modseq, .size = size, .idate = idate, .sentdate = sentdate, .uid = uid } ;
  if (!setname(ix, &m, name, len, nm.uniqlen, 0)) return 0 ;
  if (!genalloc_append(struct index_msg, &ix->msgs, &m)) return 0 ;
  ix->n = nmsgs(ix) ;
  if (ix->hash)
  {
    if (2 * ix->n + 2 > ix->hashsize) { if (!hash_build(ix)) return 0 ; }
    else hash_put(ix, ix->n - 1) ;
  }
  return 1 ;
}

static void view_clear (mailindex *ix)
{
  genalloc_setlen(struct index_msg, &ix->msgs, 0) ;
  ix->names.len = 0 ;
  ix->garbage = 0 ;
  ix->n = 0 ;
  ix->reported = 0 ;
  hash_free(ix) ;
}

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
      struct mbox_name nm ;
      ssize_t i = index_find_uid(ix, get32(p)) ;
      if (!mbox_name_parse(p + 12, len - 12, &nm)) return 0 ;
      if (i < 0) return 1 ;
      struct index_msg *m = index_msg(ix, i) ;
      if (m->state & INDEX_EXPUNGED) return 1 ;
      uint32_t f = m->flags, k = m->keywords ;
      if (!setname(ix, m, p + 12, len - 12, nm.uniqlen, 1)) return 0 ;
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
  hash_free(ix) ;
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

/* ---------- keywords ---------- */

int kw_load (mailindex *ix, int force)
{
  struct stat st ;
  if (fstatat(ix->dirfd, IX_KW, &st, 0) < 0)
  {
    if (errno != ENOENT) return 0 ;
    memset(ix->keyword, 0, sizeof ix->keyword) ;
    ix->kwino = 0 ;
    return 1 ;
  }
  int64_t mt = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec ;
  if (!force && (uint64_t)st.st_ino == ix->kwino && mt == ix->kwmtime) return 1 ;
  char buf[4096] ;
  int fd = openat(ix->dirfd, IX_KW, O_RDONLY | O_CLOEXEC) ;
  if (fd < 0) return errno == ENOENT ? 1 : 0 ;
  ssize_t r = allread(fd, buf, sizeof buf - 1) ;
  fd_close(fd) ;
  if (r < 0) return 0 ;
  buf[r] = 0 ;
  memset(ix->keyword, 0, sizeof ix->keyword) ;
  for (char *p = buf, *nl ; *p ; p = nl + 1)
  {
    nl = strchr(p, '\n') ;
    if (!nl) break ;
    *nl = 0 ;
    size_t len = (size_t)(nl - p) ;
    if (len >= 3 && p[0] >= 'a' && p[0] <= 'z' && p[1] == ' ' && len - 2 < 64) memcpy(ix->keyword[p[0] - 'a'], p + 2, len - 2 + 1) ;
  }
  ix->kwino = (uint64_t)st.st_ino ;
  ix->kwmtime = mt ;
  return 1 ;
}

static int kw_save (mailindex *ix)
{
  stralloc sa = STRALLOC_ZERO ;
  int ok = 1 ;
  for (int i = 0 ; ok && i < INDEX_KEYWORDS ; i++)
    if (ix->keyword[i][0])
    {
      char l[2] = { (char)('a' + i), ' ' } ;
      ok = stralloc_catb(&sa, l, 2) && stralloc_cats(&sa, ix->keyword[i]) && stralloc_catb(&sa, "\n", 1) ;
    }
  int fd = ok ? openat(ix->dirfd, IX_KWTMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1 ;
  if (fd < 0) ok = 0 ;
  else
  {
    ok = allwrite(fd, sa.s, sa.len) == sa.len && fsync(fd) == 0 ;
    int e = errno ;
    fd_close(fd) ;
    if (ok) ok = renameat(ix->dirfd, IX_KWTMP, ix->dirfd, IX_KW) == 0 ;
    else unlinkat(ix->dirfd, IX_KWTMP, 0) ;
    if (!ok) errno = e ;
  }
  stralloc_free(&sa) ;
  return ok && kw_load(ix, 1) ;
}

int kw_valid (char const *s, size_t len)
{
  if (!len || len >= 64) return 0 ;
  for (size_t i = 0 ; i < len ; i++)
  {
    unsigned char c = s[i] ;
    if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c)) return 0 ;
  }
  return 1 ;
}

static int kw_find (mailindex const *ix, char const *s, size_t len)
{
  for (int i = 0 ; i < INDEX_KEYWORDS ; i++)
    if (strlen(ix->keyword[i]) == len && !strncasecmp(ix->keyword[i], s, len)) return i ;
  return -1 ;
}

/* locked: find or give a letter */
int kw_create (mailindex *ix, char const *s, size_t len)
{
  if (!kw_load(ix, 1)) return -1 ;
  int i = kw_find(ix, s, len) ;
  if (i >= 0) return i ;
  uint32_t used = 0 ;
  for (size_t k = 0 ; k < ix->n ; k++) used |= index_msg(ix, k)->keywords ;
  for (i = 0 ; i < INDEX_KEYWORDS ; i++) if (!ix->keyword[i][0] && !(used & ((uint32_t)1 << i))) break ;
  if (i == INDEX_KEYWORDS) return (errno = ENOSPC, -1) ;
  memcpy(ix->keyword[i], s, len) ;
  ix->keyword[i][len] = 0 ;
  if (!kw_save(ix)) { ix->keyword[i][0] = 0 ; return -1 ; }
  return i ;
}

int index_keyword (mailindex *ix, char const *s, size_t len, int create)
{
  if (!kw_valid(s, len)) return (errno = EINVAL, -1) ;
  int i = kw_find(ix, s, len) ;
  if (i >= 0) return i ;
  if (!kw_load(ix, 0)) return -1 ;   /* another session may have named it */
  i = kw_find(ix, s, len) ;
  if (i >= 0) return i ;
  if (!create) return (errno = ENOENT, -1) ;
  if (!ix_lock(ix)) return -1 ;
  i = kw_create(ix, s, len) ;
  ix_unlock(ix) ;
  return i ;
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

/* move new/ into cur/; the unique parts moved go to moved (NUL-separated) */
static int scan_new (mailindex *ix, stralloc *moved, size_t *nmoved)
{
  stralloc target = STRALLOC_ZERO ;
  DIR *d = opendirat(ix->newfd) ;
  if (!d) return 0 ;
  for (;;)
  {
    struct mbox_name nm ;
    errno = 0 ;
    struct dirent *e = readdir(d) ;
    if (!e) break ;
    size_t len = strlen(e->d_name) ;
    if (!mbox_name_parse(e->d_name, len, &nm)) continue ;
    int r = isregular(ix->newfd, e) ;
    if (r < 0) goto err ;
    if (!r) continue ;
    target.len = 0 ;
    if (!stralloc_catb(&target, e->d_name, len)
     || (nm.uniqlen == len && !stralloc_catb(&target, ":2,", 3))
     || !stralloc_0(&target)) goto err ;
    if (renameat(ix->newfd, e->d_name, ix->curfd, target.s) < 0)
    {
      if (errno == ENOENT) continue ;   /* another session moved it */
      goto err ;
    }
    if (!stralloc_catb(moved, e->d_name, nm.uniqlen) || !stralloc_0(moved)) goto err ;
    (*nmoved)++ ;
  }
  if (errno) goto err ;
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

/* INDEX_PEEK: read new/ without taking anything.  Messages of the view
 * found there get SCAN | SCANNEW; unknown names go to fresh as
 * "n<name>" (NUL-terminated); *seen counts both.  The hash must be
 * built. */
static int scan_peek (mailindex *ix, stralloc *fresh, size_t *seen)
{
  DIR *d = opendirat(ix->newfd) ;
  if (!d) return 0 ;
  for (;;)
  {
    struct mbox_name nm ;
    errno = 0 ;
    struct dirent *e = readdir(d) ;
    if (!e) break ;
    size_t len = strlen(e->d_name) ;
    if (!mbox_name_parse(e->d_name, len, &nm)) continue ;
    ssize_t pos = hash_find(ix, e->d_name, nm.uniqlen) ;
    if (pos >= 0) { index_msg(ix, pos)->state |= SCAN | SCANNEW ; (*seen)++ ; continue ; }
    int r = isregular(ix->newfd, e) ;
    if (r < 0) goto err ;
    if (r) (*seen)++ ;
    if (r && (!stralloc_catb(fresh, "n", 1) || !stralloc_catb(fresh, e->d_name, len) || !stralloc_0(fresh))) goto err ;
  }
  if (errno) goto err ;
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
  if (!setname(ix, m, name, len, uniqlen, 1)) return 0 ;
  if (m->flags != f || m->keywords != k) m->state |= INDEX_CHANGED ;
  m->modseq = ++ix->highestmodseq ;
  ix->dirty = 1 ;
  return rec_uid(&ix->rec, 'N', m->uid, m->modseq, ix->names.s + m->name) ;
}

/* read cur/: known names marked SCAN (renames noted), unknown ones to
 * fresh as "c<name>" (NUL-terminated) if fresh is not 0.  A message
 * seen in new/ before (SCANNEW) and found here was moved meanwhile. */
static int scan_cur (mailindex *ix, stralloc *fresh)
{
  DIR *d = opendirat(ix->curfd) ;
  if (!d) return 0 ;
  for (;;)
  {
    struct mbox_name nm ;
    errno = 0 ;
    struct dirent *e = readdir(d) ;
    if (!e) break ;
    size_t len = strlen(e->d_name) ;
    if (!mbox_name_parse(e->d_name, len, &nm)) continue ;
    ssize_t pos = hash_find(ix, e->d_name, nm.uniqlen) ;
    if (pos >= 0)
    {
      struct index_msg *m = index_msg(ix, pos) ;
      if (m->state & SCANNEW) m->state &= ~(SCAN | SCANNEW) ;
      else if (m->state & SCAN) continue ;   /* the same unique part twice: first wins */
      if (!scan_found(ix, (size_t)pos, e->d_name, len, nm.uniqlen)) goto err ;
      continue ;
    }
    if (!fresh) continue ;
    int r = isregular(ix->curfd, e) ;
    if (r < 0) goto err ;
    if (r && (!stralloc_catb(fresh, "c", 1) || !stralloc_catb(fresh, e->d_name, len) || !stralloc_0(fresh))) goto err ;
  }
  if (errno) goto err ;
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

static int freshcmp (void const *x, void const *y, void *aux)
{
  char const *s = aux ;
  char const *a = s + *(size_t const *)x, *b = s + *(size_t const *)y ;
  struct mbox_name na, nb ;
  mbox_name_parse(a, strlen(a), &na) ;
  mbox_name_parse(b, strlen(b), &nb) ;
  int c = mbox_name_cmp(a, na.uniqlen, b, nb.uniqlen) ;
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
    struct mbox_name nm ;
    struct stat st ;
    mbox_name_parse(name, len, &nm) ;
    if (hash_find(ix, name, nm.uniqlen) >= 0) continue ;   /* the same unique part twice */
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
      int ok = mbox_crlfsize(fd, &size) ;
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
      if (!ix->hash && !hash_build(ix)) goto end ;
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
    if (!ix->hash && !hash_build(ix)) goto end ;
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
      ssize_t pos = hash_find(ix, moved.s + off, strlen(moved.s + off)) ;
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

/* ---------- reporting ---------- */

static int names_compact (mailindex *ix)
{
  stralloc sa = STRALLOC_ZERO ;
  if (!stralloc_ready(&sa, ix->names.len - ix->garbage)) return 0 ;
  for (size_t i = 0 ; i < ix->n ; i++)
  {
    struct index_msg *m = index_msg(ix, i) ;
    size_t off = sa.len ;
    if (!stralloc_cats(&sa, ix->names.s + m->name) || !stralloc_0(&sa)) { stralloc_free(&sa) ; return 0 ; }
    m->name = (uint32_t)off ;
  }
  stralloc_free(&ix->names) ;
  ix->names = sa ;
  ix->garbage = 0 ;
  return 1 ;
}

/* What the session reports: expunged (if allowed; unreported messages
 * that vanished are dropped silently), changed, added. */
static int ix_report (mailindex *ix, int allowexpunge)
{
  struct index_msg *m = genalloc_s(struct index_msg, &ix->msgs) ;
  size_t k = 0, removed = 0 ;
  genalloc_setlen(uint32_t, &ix->expunged, 0) ;
  genalloc_setlen(uint32_t, &ix->expunged_uids, 0) ;
  genalloc_setlen(uint32_t, &ix->changed, 0) ;
  for (size_t i = ix->n ; i-- > 0 ; )
    if (m[i].state & INDEX_EXPUNGED && i < ix->reported && allowexpunge)
    {
      uint32_t seq = (uint32_t)i + 1 ;
      if (!genalloc_append(uint32_t, &ix->expunged, &seq)) return 0 ;
    }
  for (size_t i = 0 ; i < ix->n ; i++)
  {
    int gone = m[i].state & INDEX_EXPUNGED && (allowexpunge || i >= ix->reported) ;
    if (gone)
    {
      if (i < ix->reported)
      {
        removed++ ;
        if (!genalloc_append(uint32_t, &ix->expunged_uids, &m[i].uid)) return 0 ;
      }
      ix->garbage += strlen(ix->names.s + m[i].name) + 1 ;
      continue ;
    }
    m[k++] = m[i] ;
  }
  if (k != ix->n) hash_free(ix) ;
  genalloc_setlen(struct index_msg, &ix->msgs, k) ;
  ix->reported -= removed ;
  ix->n = k ;
  ix->added = ix->n - ix->reported ;
  ix->reported = ix->n ;
  ix->recent = 0 ;
  for (size_t i = 0 ; i < k ; i++)
  {
    if (m[i].state & INDEX_RECENT) ix->recent++ ;
    if (m[i].state & INDEX_CHANGED && !(m[i].state & INDEX_EXPUNGED))
    {
      uint32_t seq = (uint32_t)i + 1 ;
      m[i].state &= ~INDEX_CHANGED ;
      if (i < ix->n - ix->added && !genalloc_append(uint32_t, &ix->changed, &seq)) return 0 ;
    }
  }
  if (ix->garbage > 65536 && ix->garbage > ix->names.len / 2 && !names_compact(ix)) return 0 ;
  return 1 ;
}

/* ---------- the session's calls ---------- */

/* after a failed catch-up: forget what waits, reload everything next time */
void ix_abandon (mailindex *ix)
{
  ix->rec.len = 0 ;
  ix->dirty = 0 ;
  ix->logino = 0 ;
}

/* lock, catch up, keywords, scan if asked, flush (what a failed scan did
   is consistent: it is written too) */
int ix_update (mailindex *ix, int scan, int force)
{
  if (!ix_lock(ix)) return 0 ;
  int ok = ix_catchup(ix) ;
  if (!ok) ix_abandon(ix) ;
  else
  {
    ok = kw_load(ix, 0) && (!scan || ix_scan(ix, force)) ;
    if (!ix_flush(ix)) ok = 0 ;
  }
  ix_unlock(ix) ;
  return ok ;
}

int index_sync (mailindex *ix, int allowexpunge)
{
  ix->uidvalidity_changed = 0 ;
  return ix_update(ix, 1, 0) && ix_report(ix, allowexpunge) ;
}

int ix_attach (mailindex *ix, char const *dir, int readonly)
{
  ix->readonly = readonly ;
  ix->dir = strdup(dir) ;
  if (!ix->dir) return 0 ;
  ix->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (ix->dirfd < 0) return 0 ;
  ix->curfd = openat(ix->dirfd, "cur", O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (ix->curfd < 0) return 0 ;
  ix->newfd = openat(ix->dirfd, "new", O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (ix->newfd < 0) return 0 ;
  ix->lockfd = openat(ix->dirfd, IX_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0600) ;
  return ix->lockfd >= 0 ;
}

int index_open (mailindex *ix, char const *dir, int readonly)
{
  if (!ix_attach(ix, dir, readonly)) return 0 ;
  if (!index_sync(ix, 1)) return 0 ;
  ix->uidvalidity_changed = 0 ;
  ix->added = 0 ;
  return 1 ;
}

void index_close (mailindex *ix)
{
  int e = errno ;
  genalloc_free(struct index_msg, &ix->msgs) ;
  stralloc_free(&ix->names) ;
  genalloc_free(uint32_t, &ix->expunged) ;
  genalloc_free(uint32_t, &ix->expunged_uids) ;
  genalloc_free(uint32_t, &ix->changed) ;
  stralloc_free(&ix->rec) ;
  stralloc_free(&ix->cachebuf) ;
  stralloc_free(&ix->cachewin) ;
  genalloc_free(struct cachepend, &ix->cachepend) ;
  hash_free(ix) ;
  free(ix->dir) ;
  ix->dir = 0 ;
  int *fds[] = { &ix->dirfd, &ix->curfd, &ix->newfd, &ix->lockfd, &ix->logfd, &ix->cachefd } ;
  for (size_t i = 0 ; i < sizeof fds / sizeof *fds ; i++)
    if (*fds[i] >= 0) { fd_close(*fds[i]) ; *fds[i] = -1 ; }
  ix->n = 0 ;
  errno = e ;
}

int index_path (mailindex const *ix, size_t i, stralloc *sa)
{
  return stralloc_cats(sa, ix->dir) && stralloc_catb(sa, "/cur/", 5) && stralloc_cats(sa, ix->names.s + index_msg(ix, i)->name) ;
}

int index_openmsg (mailindex *ix, size_t i)
{
  for (int tries = 0 ; tries < 2 ; tries++)
  {
    int fd = openat(ix->curfd, ix->names.s + index_msg(ix, i)->name, O_RDONLY | O_CLOEXEC) ;
    if (fd >= 0 || errno != ENOENT) return fd ;
    if (index_msg(ix, i)->state & INDEX_EXPUNGED) break ;
    if (!tries && !ix_update(ix, 1, 1)) return -1 ;
  }
  index_msg(ix, i)->state |= INDEX_EXPUNGED ;
  errno = ENOENT ;
  return -1 ;
}

/* rename message i to carry flags and keywords; 1 done, 0 error, -1 ENOENT */
static int setflags (mailindex *ix, size_t i, uint32_t flags, uint32_t kw, stralloc *sa)
{
  struct index_msg *m = index_msg(ix, i) ;
  char const *old = ix->names.s + m->name ;
  sa->len = 0 ;
  if (!stralloc_catb(sa, old, m->uniqlen) || !catinfo(sa, flags, kw) || !stralloc_0(sa)) return 0 ;
  if (renameat(ix->curfd, old, ix->curfd, sa->s) < 0) return errno == ENOENT ? -1 : 0 ;
  if (!setname(ix, m, sa->s, sa->len - 1, m->uniqlen, 1)) return 0 ;
  m = index_msg(ix, i) ;
  m->modseq = ++ix->highestmodseq ;
  ix->dirty = 1 ;
  return rec_uid(&ix->rec, 'N', m->uid, m->modseq, ix->names.s + m->name) ;
}

static uint32_t named_keywords (mailindex const *ix)
{
  uint32_t k = 0 ;
  for (int i = 0 ; i < INDEX_KEYWORDS ; i++) if (ix->keyword[i][0]) k |= (uint32_t)1 << i ;
  return k ;
}

int index_store (mailindex *ix, uint32_t const *pos, size_t n, int mode, uint32_t flags, uint32_t keywords, uint64_t unchangedsince, genalloc *failed)
{
  stralloc sa = STRALLOC_ZERO ;
  genalloc retry = GENALLOC_ZERO ;
  int ok = 0 ;
  if (mode < INDEX_STORE_SET || mode > INDEX_STORE_DEL) return (errno = EINVAL, 0) ;
  if (!ix_lock(ix)) return 0 ;
  if (!ix_catchup(ix)) { ix_abandon(ix) ; ix_unlock(ix) ; return 0 ; }
  if (!kw_load(ix, 0)) goto end ;
  for (int pass = 0 ; pass < 2 ; pass++)
  {
    uint32_t const *list = pass ? genalloc_s(uint32_t, &retry) : pos ;
    size_t len = pass ? genalloc_len(uint32_t, &retry) : n ;
    if (pass)
    {
      if (!len) break ;
      if (!ix_scan(ix, 1)) goto end ;
      list = genalloc_s(uint32_t, &retry) ;
    }
    for (size_t j = 0 ; j < len ; j++)
    {
      uint32_t p = list[j] ;
      if (p >= ix->n) { errno = EINVAL ; goto end ; }
      struct index_msg const *m = index_msg(ix, p) ;
      if (m->state & INDEX_EXPUNGED) continue ;
      if (unchangedsince != UINT64_MAX && m->modseq > unchangedsince)
      {
        if (failed && !genalloc_append(uint32_t, failed, &p)) goto end ;
        continue ;
      }
      uint32_t f = m->flags, k = m->keywords ;
      if (mode == INDEX_STORE_SET) { f = (f & ~SETMASK) | (flags & SETMASK) ; k = (k & ~named_keywords(ix)) | keywords ; }
      else if (mode == INDEX_STORE_ADD) { f |= flags ; k |= keywords ; }
      else { f &= ~flags ; k &= ~keywords ; }
      if (f == m->flags && k == m->keywords) continue ;
      int r = setflags(ix, p, f, k, &sa) ;
      if (!r) goto end ;
      if (r < 0 && !pass && !genalloc_append(uint32_t, &retry, &p)) goto end ;
    }
  }
  ok = 1 ;
 end:
  if (!ix_flush(ix)) ok = 0 ;
  ix_unlock(ix) ;
  {
    int e = errno ;
    stralloc_free(&sa) ;
    genalloc_free(uint32_t, &retry) ;
    errno = e ;
  }
  return ok ;
}

static int uidin (uint32_t const *uids, size_t n, uint32_t uid)
{
  size_t lo = 0, hi = n ;
  while (lo < hi)
  {
    size_t mid = lo + (hi - lo) / 2 ;
    if (uids[mid] == uid) return 1 ;
    if (uids[mid] < uid) lo = mid + 1 ; else hi = mid ;
  }
  return 0 ;
}

int index_expunge (mailindex *ix, uint32_t const *uids, size_t nuids)
{
  int ok = 0, retry = 0 ;
  if (!ix_lock(ix)) return 0 ;
  if (!ix_catchup(ix)) { ix_abandon(ix) ; ix_unlock(ix) ; return 0 ; }
  for (int pass = 0 ; pass < 2 ; pass++)
  {
    if (pass && !retry) break ;
    if (pass && !ix_scan(ix, 1)) goto end ;
    for (size_t i = 0 ; i < ix->n ; i++)
    {
      struct index_msg *m = index_msg(ix, i) ;
      if (m->state & INDEX_EXPUNGED || !(m->flags & INDEX_DELETED) || (uids && !uidin(uids, nuids, m->uid))) continue ;
      if (unlinkat(ix->curfd, ix->names.s + m->name, 0) < 0)
      {
        if (errno != ENOENT) goto end ;
        retry = 1 ;
        continue ;
      }
      m->state |= INDEX_EXPUNGED ;
      m->state &= ~INDEX_CHANGED ;
      ix->dirty = 1 ;
      if (!rec_uid(&ix->rec, 'X', m->uid, ++ix->highestmodseq, 0)) goto end ;
    }
  }
  ok = 1 ;
 end:
  if (!ix_flush(ix)) ok = 0 ;
  ix_unlock(ix) ;
  return ok && ix_report(ix, 1) ;
}
