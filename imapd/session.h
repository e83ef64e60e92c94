/* imapd/session: what the modules of yubin-imapmail share (the session
 * state, the output, the helpers the commands use).  The program is
 * yubin-imapmail.c (I/O, the command loop, dispatch, IDLE, updates);
 * mailboxes.c (LIST, LSUB, CREATE, DELETE, RENAME, (UN)SUBSCRIBE,
 * STATUS), messages.c (SELECT, EXAMINE, CLOSE, UNSELECT, EXPUNGE, STORE,
 * COPY, MOVE, APPEND), fetch.c (FETCH and the message files),
 * searchmsg.c (SEARCH through imapd/search.h). */
#ifndef YUBIN_IMAPD_SESSION_H
#define YUBIN_IMAPD_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include <skalibs/gccattributes.h>
#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>

#include "imapd/cmd.h"
#include "imapd/index.h"
#include "imapd/mime.h"

#define OUTFLUSH 65536        /* write responses out past this size */

struct imapsession
{
  char const *ip ;
  char const *user ;
  char const *maildir ;       /* the Maildir, relative to the home */
  unsigned int timeout ;      /* seconds of silence before autologout */
  int selected ;              /* a mailbox is selected */
  int readonly ;              /* EXAMINE */
  mailindex ix ;              /* the selected mailbox */
  stralloc boxname ;          /* its canonical IMAP name, its NUL counted in len */
  stralloc boxdir ;           /* its directory, NUL-terminated */
  size_t recent_reported ;
  int tzmin ;                 /* the server's zone, minutes east of UTC */
  int updates ;               /* before the command's tagged OK/NO:
                                 report_updates(updates); -1 none */
  /* counters for the logout line */
  uint64_t nfetch, nstore, nappend, ncopy, nmove, nexpunge, nsearch, nidle ;
  uint64_t bytesin, bytesout ;
} ;

extern struct imapsession sess ;
extern stralloc out ;         /* responses not written yet */

/* ---------- ending (yubin-imapmail.c) ---------- */

extern void die_nomem (void) gccattr_noreturn ;
/* The session is over: log, free, exit 0. */
extern void sess_end (char const *reason) gccattr_noreturn ;

/* ---------- output ---------- */

extern void out_cat (char const *s) ;
extern void out_catb (char const *s, size_t len) ;
extern void out_catu64 (uint64_t n) ;
/* s[0..len) as an IMAP string (quoted or literal) */
extern void out_catstring (char const *s, size_t len) ;
extern void out_flush (void) ;
/* flush if more than OUTFLUSH is waiting */
extern void out_maybeflush (void) ;

/* "<tag> <s>\r\n" */
extern void tagged (char const *tag, char const *s) ;
/* "<tag> BAD <s>\r\n", counted: too many in a row end the session */
extern void tagged_bad (char const *tag, char const *s) ;
/* "<tag> NO [UNAVAILABLE] <what>: <strerror(errno)>\r\n", logged */
extern void tagged_syserr (char const *tag, char const *what) ;

/* ---------- mailbox updates ---------- */

/* index_sync, then the untagged responses for what changed (EXPUNGE,
 * EXISTS, RECENT, FETCH FLAGS).  allowexpunge 0 during FETCH, STORE and
 * SEARCH (RFC 3501 7.4.1).  Nothing when no mailbox is selected. */
extern void report_updates (int allowexpunge) ;
/* Only the responses for what sess.ix says changed (after index_sync,
 * index_expunge). */
extern void report_changes (void) ;

/* ---------- arguments ---------- */

/* The number of top-level arguments, and the index of the k-th (0-based),
 * c->nargs if there is none. */
extern size_t arg_count (struct imapcmd const *c) ;
extern size_t arg_nth (struct imapcmd const *c, size_t k) ;

/* A mailbox name argument (astring) into its canonical form (name,
 * NUL-terminated, the NUL not counted: folder_name_canon) and its
 * directory (dir, NUL-terminated, the NUL counted: folder_path).  Returns 1;
 * 0 after answering "tag BAD" or "tag NO". */
extern int arg_mailbox (struct imapcmd const *c, size_t i, char const *tag, stralloc *name, stralloc *dir) ;

/* A sequence set argument of the selected mailbox: the positions
 * (0-based, ascending, uint32_t) of the messages it names (message
 * numbers, or UIDs if uid).  Returns 1; 0 after answering BAD. */
extern int arg_messages (struct imapcmd const *c, size_t i, int uid, char const *tag, genalloc *pos) ;

/* ---------- flags ---------- */

/* "(\Seen \Flagged $Kw \Recent)" of message pos, into sa */
extern void cat_flags (stralloc *sa, size_t pos) ;
/* cmd.h's IMAPFLAG_* to index.h's INDEX_* letters and back */
extern uint32_t flags_to_index (unsigned int f) ;
extern unsigned int flags_from_index (uint32_t f, uint8_t state) ;

/* ---------- message files (fetch.c) ---------- */

/* a message's cached fields (index_cache_get): BODYSTRUCTURE, BODY and
 * the top-level header fields of mime_cached_fields */
#define MC_BS 1               /* BODYSTRUCTURE */
#define MC_BODY 2             /* BODY */
#define MC_HDR 4              /* the header subset */
#define MC_NOHDR 8            /* the header cannot be cached: read the file */
struct msgcache
{
  int state ;                 /* 0 not looked at, 1 looked at */
  int has ;                   /* MC_* */
  stralloc data ;
  size_t bs, bslen, body, bodylen, hdr, hdrlen ;
  int hparsed ;
  struct mime hm ;            /* the header subset, parsed (mime_parse_header) */
} ;
#define MSGCACHE_ZERO { .state = 0, .has = 0, .data = STRALLOC_ZERO, .hparsed = 0, .hm = MIME_ZERO }

struct msgfile
{
  char const *map ;           /* the file's bytes (or its first len: !whole) */
  size_t len ;
  int mapped ;                /* map is an mmap of len bytes, else in buf */
  int loaded ;
  int whole ;                 /* map holds the whole file */
  int parsed ;                /* mime is the part tree of map */
  int hparsed ;               /* mime is the header of map (mime_parse_header) */
  size_t pos ;
  struct mime mime ;
  stralloc buf ;              /* small files and headers, reused */
  struct msgcache mc ;        /* message pos's cached fields */
} ;
#define MSGFILE_ZERO { .map = 0, .len = 0, .mapped = 0, .loaded = 0, .whole = 0, .parsed = 0, .hparsed = 0, .pos = 0, .mime = MIME_ZERO, .buf = STRALLOC_ZERO, .mc = MSGCACHE_ZERO }

/* The cached fields of message pos: MC_* bits of what the index's cache
 * holds (0: nothing), in mf->mc. */
extern int msg_cached (struct msgfile *mf, size_t pos) ;
/* mf->mc.hm parsed from the cached header subset (MC_HDR only) */
extern struct mime const *msg_cached_header (struct msgfile *mf) ;
/* After msg_load of message pos: puts what it computed into the cache
 * if the cache lacks it (MSG_PARSE: all; a header only: MC_HDR when
 * there was no entry). */
extern void msg_cache_store (struct msgfile *mf) ;
/* whether the header field name[0..len) is one the cache keeps */
extern int msg_cached_field (char const *name, size_t len) ;

/* Loads message pos of the selected mailbox, how: 0 the whole file;
 * MSG_PARSE the whole file and its part tree; MSG_HEADER at least the
 * top-level header, parsed alone (mime_parse_header: ENVELOPE, HEADER,
 * HEADER.FIELDS(.NOT), header fields of part 0); MSG_WHOLE | MSG_HEADER
 * the whole file and its header.  Small files are read into mf->buf,
 * big ones mapped (memory does not grow with the message).  Returns 1;
 * 0 if it is gone (errno ENOENT); -1 on another error. */
#define MSG_PARSE 1
#define MSG_HEADER 2
#define MSG_WHOLE 4
extern int msg_load (struct msgfile *mf, size_t pos, int how) ;
extern void msg_unload (struct msgfile *mf) ;
extern void msg_free (struct msgfile *mf) ;

/* ---------- commands ---------- */

/* mailboxes.c */
extern void cmd_list (struct imapcmd const *c, int lsub) ;
extern void cmd_create (struct imapcmd const *c) ;
extern void cmd_delete (struct imapcmd const *c) ;
extern void cmd_rename (struct imapcmd const *c) ;
extern void cmd_subscribe (struct imapcmd const *c, int on) ;
extern void cmd_status (struct imapcmd const *c) ;
/* a folder_* failure as "tag NO [code] why" */
extern void tagged_folder_error (char const *tag, char const *why) ;

/* messages.c */
extern void cmd_select (struct imapcmd const *c, int readonly) ;
extern void cmd_close (struct imapcmd const *c, int expunge) ;
extern void cmd_expunge (struct imapcmd const *c) ;
extern void cmd_store (struct imapcmd const *c) ;
extern void cmd_copy (struct imapcmd const *c, int move) ;
extern void cmd_append (struct imapcmd const *c) ;
/* the reader's LITDATA events of a streamed APPEND literal */
extern void append_litdata (struct imapcmd_reader const *r) ;
extern void append_abort (void) ;
extern void unselect (void) ;

/* fetch.c */
extern void cmd_fetch (struct imapcmd const *c) ;

/* searchmsg.c */
extern void cmd_search (struct imapcmd const *c) ;

#endif
