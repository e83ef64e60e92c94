/* pop3d/mbox: the Maildir as yubin-pop3mbox sees it, with no I/O to the
 * client (unit-tested by tests/pop3d/t-mbox.c).
 *
 *   - (from common/mailread, shared with imapd: which directory entries
 *     are messages, their unique part, the ",W=" they may carry, their
 *     order, strict decimal numbers, CRLF sizes, new/ into cur/;)
 *   - the UIDL of a message (its unique part, or a hash of it);
 *   - the listing: new/ moved to cur/, cur/ read, sorted, sized; a
 *     message renamed under us found again; deletions at QUIT;
 *   - the conversion of a message file into what RETR and TOP send
 *     (bare LF -> CRLF, dot-stuffing, TOP's line limit, the final
 *     CRLF and "."), fed in chunks of any size.
 *
 * Sizes are "CRLF sizes": the octets RETR sends before dot-stuffing and
 * before the final ".\r\n": every LF not preceded by CR counts 2, and a
 * non-empty file that does not end with LF gets 2 more (the CRLF that
 * ends its last line). */
#ifndef YUBIN_POP3D_MBOX_H
#define YUBIN_POP3D_MBOX_H

#include <stddef.h>
#include <stdint.h>

#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>

#include "mailread.h"

/* ---------- names ---------- */

#define MBOX_UIDL_MAX 70

/* The UIDL of a message with unique part u[0..len), into out (at least
 * MBOX_UIDL_MAX + 1 bytes, NUL-terminated); returns its length.  The
 * unique part itself if it is 1 to 70 characters in 0x21-0x7e (RFC
 * 1939), else "H" and the 64 lowercase hex digits of its SHA-256. */
extern size_t mbox_uidl (char const *u, size_t len, char *out) ;

/* ---------- sizes and conversion ---------- */

/* The RETR/TOP converter: init with the number of body lines to send
 * (UINT64_MAX: the whole message), feed it the file in chunks, then end
 * it.  done becomes 1 when TOP's lines are out: stop reading. */
struct mbox_conv
{
  uint64_t lines ;       /* body lines still to send */
  uint64_t octets ;      /* octets sent, without dot-stuffing */
  unsigned char bol ;    /* at the beginning of a line */
  unsigned char cr ;     /* the last byte of the current line is CR */
  unsigned char n ;      /* bytes in the current line, at most 2 */
  unsigned char inbody ;
  unsigned char done ;
} ;

extern void mbox_conv_init (struct mbox_conv *c, uint64_t bodylines) ;
/* Append the converted form of s[0..len) to out.  Returns 1, 0 on ENOMEM. */
extern int mbox_conv_feed (struct mbox_conv *c, char const *s, size_t len, stralloc *out) ;
/* Append the CRLF of an unfinished last line, and ".\r\n".  Returns 1, 0 on ENOMEM. */
extern int mbox_conv_end (struct mbox_conv *c, stralloc *out) ;

/* ---------- the listing ---------- */

struct mbox_msg
{
  uint64_t size ;        /* CRLF size */
  size_t name ;          /* offset in mbox.names of its name in cur/ (NUL-terminated) */
  size_t uniqlen ;
  unsigned char deleted ;
  unsigned char gone ;   /* its file is gone (another session, a move) */
  unsigned char seen ;   /* scratch for mbox_rescan */
} ;

typedef struct mbox_s mbox ;
struct mbox_s
{
  int curfd ;            /* cur/, open */
  stralloc names ;
  genalloc msgs ;        /* struct mbox_msg, in order; message k is msgs[k-1] */
  size_t n ;
  uint64_t total ;       /* sum of the sizes */
  size_t moved ;         /* new/ entries moved to cur/ by this scan */
} ;
#define MBOX_ZERO { .curfd = -1, .names = STRALLOC_ZERO, .msgs = GENALLOC_ZERO, .n = 0, .total = 0, .moved = 0 }

#define mbox_msg(mb, i) (genalloc_s(struct mbox_msg, &(mb)->msgs) + (i))
#define mbox_msgname(mb, i) ((mb)->names.s + mbox_msg(mb, i)->name)

/* Scan the Maildir dir: move every message in new/ to cur/NAME:2, (one
 * already moved by another session is found in cur/), list cur/ (regular
 * files with message names; a unique part seen twice counts once), sort,
 * size (",W=" or count; a file that vanishes before it is counted is left
 * out).  Returns 1, or 0 with errno set and *what the operation that
 * failed ("open", "rename", ...) and *where its file name. */
extern int mbox_scan (mbox *mb, char const *dir, char const **what, char const **where) ;

/* An fd open for reading on message i (0-based), or -1 with errno set.
 * If the file is not there, cur/ is read again once (mbox_rescan) to
 * find it under a new name (a flag change); if it is still missing the
 * message is marked gone and errno is ENOENT. */
extern int mbox_open (mbox *mb, size_t i) ;

/* Read cur/ again: messages found under another name (same unique part)
 * get their new name, messages not found are marked gone.  Returns 1, 0
 * on error (errno set). */
extern int mbox_rescan (mbox *mb) ;

/* UPDATE: unlink every message marked deleted (one renamed under us is
 * found again; one already gone is fine), then fsync cur/.  Returns the
 * number of messages that could not be removed; *removed gets the number
 * removed by us. */
extern size_t mbox_update (mbox *mb, size_t *removed) ;

extern void mbox_free (mbox *mb) ;

#endif
