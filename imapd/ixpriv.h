/* imapd/ixpriv: what the modules of the per-folder index share
 * (index.c the view, keywords and the session's calls, ixlog.c the
 * record log yubin.index and the lock, ixscan.c the scan of new/ and
 * cur/, cache.c yubin.cache, append.c APPEND, COPY and MOVE); private to
 * them: the session uses imapd/index.h only. */
#ifndef YUBIN_IMAPD_IXPRIV_H
#define YUBIN_IMAPD_IXPRIV_H

#include <stddef.h>
#include <stdint.h>

#include <skalibs/stralloc.h>

#include "imapd/index.h"

#define IX_REC_MAX (1 << 20)

/* little-endian fields */
static inline void put32 (char *p, uint32_t v) { for (int i = 0 ; i < 4 ; i++) p[i] = (char)(v >> (8 * i)) ; }
static inline void put64 (char *p, uint64_t v) { for (int i = 0 ; i < 8 ; i++) p[i] = (char)(v >> (8 * i)) ; }
static inline uint32_t get32 (char const *p)
{
  uint32_t v = 0 ;
  for (int i = 3 ; i >= 0 ; i--) v = (v << 8) | (unsigned char)p[i] ;
  return v ;
}
static inline uint64_t get64 (char const *p)
{
  uint64_t v = 0 ;
  for (int i = 7 ; i >= 0 ; i--) v = (v << 8) | (unsigned char)p[i] ;
  return v ;
}

static inline size_t nmsgs (mailindex const *ix) { return genalloc_len(struct index_msg, &ix->msgs) ; }

/* index.c */
extern uint32_t ix_crc32 (char const *s, size_t n) ;
extern int catinfo (stralloc *sa, uint32_t flags, uint32_t kw) ;
/* give m the name name[0..len); replace: it had one before */
extern int ix_setname (mailindex *ix, struct index_msg *m, char const *name, size_t len, size_t uniqlen, int replace) ;
extern void ix_hash_free (mailindex *ix) ;
extern int ix_hash_build (mailindex *ix) ;
/* message with unique part u[0..len) not expunged, or -1 */
extern ssize_t ix_hash_find (mailindex *ix, char const *u, size_t len) ;
extern int view_add (mailindex *ix, uint32_t uid, uint64_t modseq, uint64_t size, int64_t idate, int64_t sentdate, char const *name, size_t len) ;
extern void view_clear (mailindex *ix) ;
extern int kw_load (mailindex *ix, int force) ;
extern int kw_valid (char const *s, size_t len) ;
extern int kw_create (mailindex *ix, char const *s, size_t len) ;
extern void ix_abandon (mailindex *ix) ;
extern int ix_update (mailindex *ix, int scan, int force) ;
extern int ix_attach (mailindex *ix, char const *dir, int readonly) ;

/* ixlog.c */
extern int rec_add (stralloc *sa, mailindex const *ix, struct index_msg const *m) ;
extern int rec_uid (stralloc *sa, char type, uint32_t uid, uint64_t v, char const *name) ;
extern int rec_cache (stralloc *sa, struct index_msg const *m) ;
extern int ix_catchup (mailindex *ix) ;
extern int ix_flush (mailindex *ix) ;
extern int ix_lock (mailindex *ix) ;
extern void ix_unlock (mailindex *ix) ;

/* ixscan.c */
extern int ix_scan (mailindex *ix, int force) ;

/* cache.c */
extern void cache_trim (mailindex *ix) ;
extern int cache_write (mailindex *ix) ;

#endif
