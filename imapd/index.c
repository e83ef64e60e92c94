/* imapd/index: the per-folder index; see index.h, and imapd/README
 * ("Storage") for the file format, the locking and the crash story.
 *
 * This file: the view (the messages in memory and the hash of their
 * unique parts), keywords (yubin-keywords), what a sync reports, and the
 * session's calls.  The record log yubin.index and its lock are
 * ixlog.c, the scan of new/ and cur/ ixscan.c, yubin.cache cache.c,
 * APPEND, COPY and MOVE append.c; what they share is ixpriv.h. */

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/djbunix.h>
#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>
#include <skalibs/types.h>

#include "maildir.h"
#include "mailread.h"
#include "imapd/index.h"
#include "imapd/ixpriv.h"

#define IX_LOCK "yubin.index.lock"
#define IX_KW "yubin-keywords"
#define IX_KWTMP "yubin-keywords.tmp"
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

static uint64_t hashuniq (char const *s, size_t n)
{
  uint64_t h = 14695981039346656037ull ;
  for (size_t i = 0 ; i < n ; i++) { h ^= (unsigned char)s[i] ; h *= 1099511628211ull ; }
  return h ;
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
int ix_setname (mailindex *ix, struct index_msg *m, char const *name, size_t len, size_t uniqlen, int replace)
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

void ix_hash_free (mailindex *ix)
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

int ix_hash_build (mailindex *ix)
{
  size_t n = nmsgs(ix), size = 64 ;
  while (size < 2 * n + 2) size <<= 1 ;
  ix_hash_free(ix) ;
  ix->hash = calloc(size, sizeof(uint32_t)) ;
  if (!ix->hash) return 0 ;
  ix->hashsize = size ;
  for (size_t i = 0 ; i < n ; i++) hash_put(ix, i) ;
  return 1 ;
}

/* message with unique part u[0..len) not expunged, or -1 */
ssize_t ix_hash_find (mailindex *ix, char const *u, size_t len)
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
  struct mailname nm ;
  if (!mailname_parse(name, len, &nm)) return (errno = EINVAL, 0) ;
  struct index_msg m = { .modseq = modseq, .size = size, .idate = idate, .sentdate = sentdate, .uid = uid } ;
  if (!ix_setname(ix, &m, name, len, nm.uniqlen, 0)) return 0 ;
  if (!genalloc_append(struct index_msg, &ix->msgs, &m)) return 0 ;
  ix->n = nmsgs(ix) ;
  if (ix->hash)
  {
    if (2 * ix->n + 2 > ix->hashsize) { if (!ix_hash_build(ix)) return 0 ; }
    else hash_put(ix, ix->n - 1) ;
  }
  return 1 ;
}

void view_clear (mailindex *ix)
{
  genalloc_setlen(struct index_msg, &ix->msgs, 0) ;
  ix->names.len = 0 ;
  ix->garbage = 0 ;
  ix->n = 0 ;
  ix->reported = 0 ;
  ix_hash_free(ix) ;
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
  if (k != ix->n) ix_hash_free(ix) ;
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
  ix_hash_free(ix) ;
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
  if (!ix_setname(ix, m, sa->s, sa->len - 1, m->uniqlen, 1)) return 0 ;
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
