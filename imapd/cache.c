/* imapd/cache: the fetched-fields cache of the per-folder index,
 * yubin.cache beside yubin.index (imapd/README, "Storage"): its entries
 * (built in memory, written at the next sync with an F record each),
 * their reads through a read-ahead window, the sent-date D records, and
 * its emptying at compaction.  Part of the index: see imapd/index.h for
 * index_cache_*, imapd/ixpriv.h for what it shares with index.c
 * and ixlog.c. */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>

#include "imapd/index.h"
#include "imapd/ixpriv.h"

#define IX_CACHE "yubin.cache"
#define IX_CACHE_SLACK (1 << 20)          /* the cache file is emptied at compaction when over 2 x live + this */
#define IX_CACHE_PENDING (256 << 10)     /* entries waiting in memory before index_cache_put writes them */
#define IX_CACHE_WINDOW (64 << 10)       /* read-ahead of index_cache_get */


static int cache_open (mailindex *ix)
{
  if (ix->cachefd >= 0) return 1 ;
  ix->cachefd = openat(ix->dirfd, IX_CACHE, O_RDWR | O_CREAT | O_CLOEXEC, 0600) ;
  return ix->cachefd >= 0 ;
}

/* at compaction: empty yubin.cache when most of it is dead (entries of
   expunged messages, older entries of a message); locked */
void cache_trim (mailindex *ix)
{
  struct stat st ;
  uint64_t live = 0 ;
  if (ix->cachefd < 0)
  {
    ix->cachefd = openat(ix->dirfd, IX_CACHE, O_RDWR | O_CLOEXEC) ;
    if (ix->cachefd < 0) return ;
  }
  for (size_t i = 0 ; i < ix->n ; i++)
  {
    struct index_msg const *m = index_msg(ix, i) ;
    if (!(m->state & INDEX_EXPUNGED)) live += m->cachelen ;
  }
  if (fstat(ix->cachefd, &st) < 0 || (uint64_t)st.st_size <= 2 * live + IX_CACHE_SLACK) return ;
  if (ftruncate(ix->cachefd, 0) < 0) return ;
  for (size_t i = 0 ; i < nmsgs(ix) ; i++) { index_msg(ix, i)->cacheoff = 0 ; index_msg(ix, i)->cachelen = 0 ; }
}

/* the entries waiting in ix->cachebuf go to the end of yubin.cache, and
   an F record for each into ix->rec; locked, caught up.  A failure only
   loses them (nothing points at what was not written). */
int cache_write (mailindex *ix)
{
  struct stat st ;
  size_t done = 0 ;
  struct cachepend const *p = genalloc_s(struct cachepend, &ix->cachepend) ;
  size_t n = genalloc_len(struct cachepend, &ix->cachepend) ;
  int ok = 0 ;
  if (!ix->cachebuf.len) return 1 ;
  if (!cache_open(ix) || fstat(ix->cachefd, &st) < 0) goto end ;
  while (done < ix->cachebuf.len)
  {
    ssize_t w = pwrite(ix->cachefd, ix->cachebuf.s + done, ix->cachebuf.len - done, st.st_size + (off_t)done) ;
    if (w < 0) { if (errno == EINTR) continue ; goto end ; }
    done += (size_t)w ;
  }
  ok = 1 ;
  for (size_t k = 0 ; k < n ; k++)
  {
    ssize_t i = index_find_uid(ix, p[k].uid) ;
    if (i < 0) continue ;
    struct index_msg *m = index_msg(ix, i) ;
    if (m->state & INDEX_EXPUNGED) continue ;
    m->cacheoff = (uint64_t)st.st_size + p[k].off ;
    m->cachelen = p[k].len ;
    if (!rec_cache(&ix->rec, m)) { m->cachelen = 0 ; ok = 0 ; break ; }
  }
 end:
  ix->cachebuf.len = 0 ;
  genalloc_setlen(struct cachepend, &ix->cachepend, 0) ;
  return ok ;
}

int index_cache_sentdate (mailindex *ix, size_t i, int64_t sentdate)
{
  struct index_msg *m = index_msg(ix, i) ;
  if (m->sentdate == sentdate) return 1 ;
  m->sentdate = sentdate ;
  return rec_uid(&ix->rec, 'D', m->uid, (uint64_t)sentdate, 0) ;
}

/* len bytes of yubin.cache at off into sa from mark on: from the
   read-ahead window if it holds them, else a pread of at least
   IX_CACHE_WINDOW bytes (entries of neighbours are usually neighbours);
   fresh: bypass the window.  1, or 0 (short) */
static int cache_read (mailindex *ix, uint64_t off, size_t len, stralloc *sa, size_t mark, int fresh)
{
  if (!fresh && off >= ix->cachewinoff && off + len <= ix->cachewinoff + ix->cachewin.len)
  {
    memcpy(sa->s + mark, ix->cachewin.s + (off - ix->cachewinoff), len) ;
    return 1 ;
  }
  size_t want = len > IX_CACHE_WINDOW ? len : IX_CACHE_WINDOW ;
  if (!stralloc_ready(&ix->cachewin, want)) return 0 ;
  ix->cachewin.len = 0 ;
  ix->cachewinoff = off ;
  while (ix->cachewin.len < want)
  {
    ssize_t r = pread(ix->cachefd, ix->cachewin.s + ix->cachewin.len, want - ix->cachewin.len, (off_t)(off + ix->cachewin.len)) ;
    if (r < 0) { if (errno == EINTR) continue ; break ; }
    if (!r) break ;
    ix->cachewin.len += (size_t)r ;
  }
  if (ix->cachewin.len < len) return 0 ;
  memcpy(sa->s + mark, ix->cachewin.s, len) ;
  return 1 ;
}

static int cache_valid (mailindex const *ix, struct index_msg const *m, char const *e, size_t len)
{
  return get32(e) == len - 8 && get32(e + 8) == ix->uidvalidity && get32(e + 12) == m->uid && get32(e + 4) == ix_crc32(e + 8, len - 8) ;
}

int index_cache_get (mailindex *ix, size_t i, stralloc *sa)
{
  struct index_msg *m = index_msg(ix, i) ;
  size_t mark = sa->len, len = m->cachelen ;
  if (len < 16 || len > IX_REC_MAX || m->state & INDEX_EXPUNGED) return 0 ;
  if (!cache_open(ix)) return 0 ;
  if (!stralloc_readyplus(sa, len)) return -1 ;
  if (!(cache_read(ix, m->cacheoff, len, sa, mark, 0) && cache_valid(ix, m, sa->s + mark, len))
   && !(cache_read(ix, m->cacheoff, len, sa, mark, 1) && cache_valid(ix, m, sa->s + mark, len)))
  {
    m->cachelen = 0 ;   /* torn, lost or emptied: computed and written again */
    return 0 ;
  }
  memmove(sa->s + mark, sa->s + mark + 16, len - 16) ;
  sa->len = mark + len - 16 ;
  return 1 ;
}

int index_cache_put (mailindex *ix, size_t i, char const *s, size_t len)
{
  struct index_msg const *m = index_msg(ix, i) ;
  struct cachepend p = { .uid = m->uid, .off = ix->cachebuf.len, .len = (uint32_t)(len + 16) } ;
  size_t start = ix->cachebuf.len ;
  char h[16] ;
  if (len + 16 > IX_REC_MAX) return 1 ;
  put32(h + 8, ix->uidvalidity) ; put32(h + 12, m->uid) ;
  if (!stralloc_catb(&ix->cachebuf, h, 16) || !stralloc_catb(&ix->cachebuf, s, len)
   || !genalloc_append(struct cachepend, &ix->cachepend, &p)) { ix->cachebuf.len = start ; return 0 ; }
  put32(ix->cachebuf.s + start, (uint32_t)(len + 8)) ;
  put32(ix->cachebuf.s + start + 4, ix_crc32(ix->cachebuf.s + start + 8, len + 8)) ;
  if (ix->cachebuf.len >= IX_CACHE_PENDING && !ix_update(ix, 0, 0))
  {
    ix->cachebuf.len = 0 ;
    genalloc_setlen(struct cachepend, &ix->cachepend, 0) ;
  }
  return 1 ;
}
