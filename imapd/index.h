/* imapd/index: the per-folder index of yubin-imapmail (imapd/README,
 * "Storage").  One folder = one Maildir directory (INBOX is the Maildir,
 * others "<Maildir>/.Name", see imapd/folder.h).  The Maildir is the
 * truth: a message exists iff its file is in cur/ or new/, its flags are
 * the letters after ":2," in its name.  The index is a cache beside it
 * that adds what names cannot hold: UIDs, UIDVALIDITY, UIDNEXT, modseqs,
 * cached sizes, internal dates and header fields.
 *
 * Files in the folder directory:
 *   yubin.index       header + append-only log of checksummed records,
 *                     compacted now and then (tmp, fsync, rename)
 *   yubin.index.lock  the lock (OFD fcntl lock; empty file)
 *   yubin-keywords    keyword names for the letters a-z ("a $Forwarded")
 *
 * A session opens a folder (index_open), then calls index_sync at the
 * points where RFC 3501 lets it report changes; between syncs its view
 * (the array of messages, seq = position + 1) only grows at the end or
 * changes flags: messages expunged by others stay in the view, marked
 * INDEX_EXPUNGED, until a sync that may report them.
 *
 * Errors: functions return 1 (or a count) on success, 0 / -1 on failure
 * with errno set; ETIMEDOUT means the lock could not be taken in time,
 * EINVAL a bad argument, ENOSPC (from index_keyword) no letter is left.
 *
 * Link: imapd/index.c, imapd/ixlog.c, imapd/ixscan.c, imapd/cache.c, imapd/append.c and
 * common/mailread (names, order, CRLF sizes, new/ into cur/). */
#ifndef YUBIN_IMAPD_INDEX_H
#define YUBIN_IMAPD_INDEX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>

/* ---------- flags ---------- */

/* System flags are bits of the Maildir info letters 'A'..'Z' (bit
 * c - 'A'), keywords bits of 'a'..'z' (bit c - 'a').  Letters other
 * tools set are kept as they are. */
#define INDEX_FLAG(c) ((uint32_t)1 << ((c) - 'A'))
#define INDEX_DRAFT    INDEX_FLAG('D')
#define INDEX_FLAGGED  INDEX_FLAG('F')
#define INDEX_PASSED   INDEX_FLAG('P')
#define INDEX_ANSWERED INDEX_FLAG('R')
#define INDEX_SEEN     INDEX_FLAG('S')
#define INDEX_DELETED  INDEX_FLAG('T')
#define INDEX_KEYWORDS 26

/* index_msg.state bits (per session, not on disk) */
#define INDEX_RECENT    0x01  /* this session moved it out of new/ (INDEX_PEEK: it is still in new/) */
#define INDEX_EXPUNGED  0x02  /* gone from the Maildir, not yet reported */
#define INDEX_CHANGED   0x04  /* flags changed by someone else since the last sync */

struct index_msg
{
  uint64_t modseq ;      /* of its last change */
  uint64_t size ;        /* RFC822.SIZE: CRLF size (",W=" or counted once) */
  int64_t idate ;        /* INTERNALDATE, Unix seconds (file mtime when first seen) */
  int64_t sentdate ;     /* cached Date: header, Unix seconds; INDEX_NODATE if not cached */
  uint64_t cacheoff ;    /* its cached fields: offset in yubin.cache, */
  uint32_t cachelen ;    /* length of the entry (0: none) */
  uint32_t uid ;
  uint32_t name ;        /* offset in ix->names of its file name in cur/, NUL-terminated */
  uint32_t flags ;       /* INDEX_FLAG bits */
  uint32_t keywords ;    /* bits of 'a'..'z' */
  uint16_t uniqlen ;     /* the unique part: the first uniqlen bytes of the name */
  uint8_t state ;        /* INDEX_RECENT | INDEX_EXPUNGED | INDEX_CHANGED */
  uint8_t spare ;
} ;
#define INDEX_NODATE INT64_MIN

typedef struct mailindex_s mailindex ;
struct mailindex_s
{
  /* the view, read-only for the session */
  genalloc msgs ;        /* struct index_msg, in UID order */
  size_t n ;             /* messages in the view (EXISTS) */
  stralloc names ;       /* arena of file names */
  uint32_t uidvalidity ;
  uint32_t uidnext ;
  uint64_t highestmodseq ;
  size_t recent ;        /* messages with INDEX_RECENT (INDEX_PEEK: STATUS's RECENT) */
  char keyword[INDEX_KEYWORDS][64] ; /* names of keywords a..z, "" if unused */

  /* what the last index_sync / index_expunge changed, for the responses */
  genalloc expunged ;    /* uint32_t seqs, in the order to send "* n EXPUNGE" (descending) */
  genalloc expunged_uids ; /* uint32_t uids of the same messages, ascending (VANISHED) */
  genalloc changed ;     /* uint32_t seqs (after the expunges) with new flags, ascending */
  size_t added ;         /* messages appended at the end of the view since the last sync */
  int uidvalidity_changed ; /* the index was rebuilt under us: the session must BYE */

  /* private */
  char *dir ;            /* the folder directory */
  int dirfd, curfd, newfd, lockfd, logfd ;
  int readonly ;
  int locked ;
  uint64_t logino, logoff ; /* the yubin.index read so far */
  uint64_t stamp[2][4] ; /* new/, cur/: mtime s, ns, size, inode as last scanned */
  uint32_t pend ;        /* the lowest UID whose file may still be in new/ (peeked), 0 none */
  int64_t kwmtime ;
  uint64_t kwino ;
  stralloc rec ;         /* records waiting to be written */
  size_t garbage ;       /* dead bytes in names */
  uint32_t *hash ;       /* unique part -> position + 1, open addressing */
  size_t hashsize ;
  uint64_t logrecs ;     /* records in yubin.index (compaction) */
  size_t reported ;      /* messages the client knows of (n at the last report) */
  int dirty ;            /* a STATE record is due */
  int cachefd ;          /* yubin.cache, -1 until needed */
  stralloc cachebuf ;    /* cache entries waiting to be written */
  genalloc cachepend ;   /* struct cachepend: what they are */
  stralloc cachewin ;    /* read-ahead of yubin.cache */
  uint64_t cachewinoff ; /* the file offset of cachewin.s */
} ;
struct cachepend { uint32_t uid ; uint32_t len ; size_t off ; } ;

#define index_msg(ix, i) (genalloc_s(struct index_msg, &(ix)->msgs) + (i))
#define index_name(ix, i) ((ix)->names.s + index_msg(ix, i)->name)

/* ---------- opening and syncing ---------- */

/* Open the folder at dir (a Maildir: cur/, new/, tmp/ must exist) and
 * sync it (as index_sync).  readonly:
 *   0           SELECT: new/ is moved into cur/, \Recent for this session
 *   1           EXAMINE: new/ still moved into cur/ and the index kept, as
 *               Dovecot does, but no \Recent
 *   INDEX_PEEK  STATUS, LIST-STATUS, a COPY/APPEND target: new/ is only
 *               looked at.  Its messages get UIDs in the index (committed,
 *               so UIDNEXT is true and the UIDs stay) under the names
 *               they will have in cur/, but their files stay in new/, so
 *               the session that takes them later (SELECT, or a sync of a
 *               session that has the folder selected) gets their \Recent.
 *               In this view they are in the count (n), carry
 *               INDEX_RECENT (ix->recent is STATUS's RECENT: mail no
 *               session has taken yet) and their flags are those of
 *               their names in new/.  A peek view is for counting and
 *               for index_copy/APPEND targets: do not open its messages
 *               (index_openmsg looks in cur/ only).
 * A missing or damaged index is rebuilt from the Maildir with a new
 * UIDVALIDITY.  ix must be zeroed (INDEX_ZERO).  Returns 1, or 0 (errno
 * set; index_close still to be called). */
#define INDEX_PEEK 2
#define INDEX_ZERO { .msgs = GENALLOC_ZERO, .names = STRALLOC_ZERO, .expunged = GENALLOC_ZERO, .expunged_uids = GENALLOC_ZERO, .changed = GENALLOC_ZERO, .rec = STRALLOC_ZERO, .dirfd = -1, .curfd = -1, .newfd = -1, .lockfd = -1, .logfd = -1, .cachefd = -1, .cachebuf = STRALLOC_ZERO, .cachepend = GENALLOC_ZERO, .cachewin = STRALLOC_ZERO }
extern int index_open (mailindex *ix, char const *dir, int readonly) ;

/* Bring the view up to date: under the lock, read what other sessions
 * wrote to the index, then, if new/ or cur/ changed, read them: move new/
 * into cur/ (those are \Recent for this session), give UIDs to unknown
 * names in delivery order, notice renamed (flags) and vanished
 * (expunged) files.  Cheap when nothing changed (a few stats, no
 * readdir).  Fills expunged/changed/added (cleared first).  If
 * allowexpunge is 0 (during FETCH, STORE, SEARCH, RFC 3501 7.4.1),
 * vanished messages stay in the view, marked INDEX_EXPUNGED, and are
 * reported by the next sync that allows it.  Returns 1, or 0. */
extern int index_sync (mailindex *ix, int allowexpunge) ;

extern void index_close (mailindex *ix) ;

/* The position (0-based) of a UID in the view, or -1. */
extern ssize_t index_find_uid (mailindex const *ix, uint32_t uid) ;

/* ---------- message files ---------- */

/* "<dir>/cur/<name>" of message i into sa (not NUL-terminated; append
 * stralloc_0 yourself).  Returns 1, 0 on ENOMEM. */
extern int index_path (mailindex const *ix, size_t i, stralloc *sa) ;

/* An fd open read-only on message i.  A file renamed by another session
 * (flags) is found again (sync without expunges, once).  -1 with errno
 * ENOENT if it is gone (then marked INDEX_EXPUNGED). */
extern int index_openmsg (mailindex *ix, size_t i) ;

/* ---------- keywords ---------- */

/* The letter index (0..25) of keyword s[0..len) ("$Forwarded"), or -1.
 * If create and it is unknown, it gets a free letter and is written to
 * yubin-keywords (-1 with errno ENOSPC when all 26 are used).
 * Comparison is case-insensitive, as IMAP asks for flag names. */
extern int index_keyword (mailindex *ix, char const *s, size_t len, int create) ;

/* ---------- changes ---------- */

#define INDEX_STORE_SET 0
#define INDEX_STORE_ADD 1
#define INDEX_STORE_DEL 2

/* STORE: for the messages at positions pos[0..n), set / add / remove
 * system flags and keywords (renames the files; one lock, one log write
 * for all).  SET replaces the letters D F P R S T and the keywords that
 * have names; other letters (other tools') are kept.  \Recent is not a
 * stored flag.  If unchangedsince is not
 * UINT64_MAX (CONDSTORE), messages whose modseq is greater are left and
 * their positions appended to *failed (uint32_t positions; failed may
 * be 0 otherwise).  Messages expunged meanwhile are skipped.  Positions
 * do not move.  Each changed message gets a new modseq; the session
 * reports the FETCH responses itself (they are not in ix->changed).
 * Returns 1, or 0. */
extern int index_store (mailindex *ix, uint32_t const *pos, size_t n, int mode, uint32_t flags, uint32_t keywords, uint64_t unchangedsince, genalloc *failed) ;

/* EXPUNGE: unlink the files of the messages flagged \Deleted (only
 * those whose UID is in uids[0..nuids), ascending, if uids is not 0:
 * UID EXPUNGE), then sync with expunges allowed: ix->expunged lists
 * every message gone, ours and others'.  Returns 1, or 0. */
extern int index_expunge (mailindex *ix, uint32_t const *uids, size_t nuids) ;

/* Cache the Date: header of message i (Unix seconds) for SENTBEFORE etc.
 * Written with the next locked change or sync; losing it costs only a
 * re-parse.  Returns 1, 0 on ENOMEM. */
extern int index_cache_sentdate (mailindex *ix, size_t i, int64_t sentdate) ;

/* Cached fields (imapd/README, "Storage": yubin.cache): a string the
 * session computes from a message's file (its BODYSTRUCTURE ...) is
 * kept in yubin.cache beside the index, found again by later sessions.
 * A message's content never changes (a new file is a new UID), so an
 * entry stays true; each entry holds UIDVALIDITY, UID and a checksum,
 * and one that does not match is "not cached".
 * index_cache_get appends message i's string to sa: 1, 0 if it has none
 * (or it could not be read: then forgotten), -1 ENOMEM.
 * index_cache_put remembers s[0..len) as message i's string (replacing
 * an older one): written to yubin.cache and pointed at from yubin.index
 * with the next locked change or sync, or at once (taking the lock)
 * when 256 KiB are waiting; a failed write only loses the entries.
 * Returns 1, 0 ENOMEM. */
extern int index_cache_get (mailindex *ix, size_t i, stralloc *sa) ;
extern int index_cache_put (mailindex *ix, size_t i, char const *s, size_t len) ;

/* ---------- APPEND ---------- */

/* Streaming APPEND into the folder dir (which need not be the selected
 * one): begin creates tmp/<unique>, write is called with the literal's
 * bytes as they come (counted for S= and W=), commit fsyncs, sets the
 * mtime to idate (-1: now), moves the file into cur/ with the flags and
 * the keywords named in keywords[0..nkeywords) (given letters in the
 * target's yubin-keywords; ENOSPC if none is left), gives it the next UID
 * in the folder's index and fills *uidvalidity and *uid (APPENDUID, RFC
 * 4315).  After commit or abort (which removes the tmp file) ap is free
 * again.  All return 1, or 0 with errno set (then call abort). */
struct index_append
{
  char *dir ;
  stralloc tmpname ;
  int fd ;
  uint64_t bytes, crlf ;
  char last ;
} ;
#define INDEX_APPEND_ZERO { .dir = 0, .tmpname = STRALLOC_ZERO, .fd = -1, .bytes = 0, .crlf = 0, .last = 0 }
extern int index_append_begin (struct index_append *ap, char const *dir) ;
extern int index_append_write (struct index_append *ap, char const *s, size_t len) ;
extern int index_append_commit (struct index_append *ap, uint32_t flags, char const *const *keywords, size_t nkeywords, int64_t idate, uint32_t *uidvalidity, uint32_t *uid) ;
extern void index_append_abort (struct index_append *ap) ;

/* ---------- COPY / MOVE ---------- */

/* Copy the messages at positions pos[0..n) of src into the index dst
 * (open on another folder): a hard link under a new unique name (a copy
 * when linking fails, e.g. EXDEV), flags kept (keywords mapped by name
 * into dst's letters), internal date kept, new UIDs in dst in the order
 * given (open dst with index_open(&dst, dir, INDEX_PEEK): it leaves the
 * target's new/ for whoever selects it; src == dst is allowed).  uids (uint32_t,
 * emptied first) gets the new UIDs, in the same order as pos
 * (0 for a message gone meanwhile): COPYUID is the src UIDs and these.
 * If move, the source files are unlinked afterwards (MOVE, RFC 6851: the
 * source view then reports them through index_sync(src, 1)).  dst's view
 * is not synced (call index_sync on it if it is selected).  Returns 1,
 * or 0 (messages copied before the error stay, as RFC 3501 allows only
 * for MOVE; COPY cleans up what it placed). */
extern int index_copy (mailindex *src, uint32_t const *pos, size_t n, mailindex *dst, genalloc *uids, int move) ;

#endif
