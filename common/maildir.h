/* Maildir delivery: unique names, a file with no name in tmp/ (O_TMPFILE)
 * -> fsync -> linked into new/ -> fsync(new/); where the file system has
 * no O_TMPFILE (or there is no /proc), tmp/NAME -> fsync -> rename.  No
 * locks (safe on NFS, as Maildir was designed). */
#ifndef YUBIN_MAILDIR_H
#define YUBIN_MAILDIR_H

#include <stddef.h>
#include <skalibs/stralloc.h>

/* A new unique file name "<sec>.M<usec>P<pid>Q<count>.<host>" (host with
 * '/' and ':' escaped as \057 and \072, as the Maildir spec asks).
 * Returns 1, 0 on error. */
extern int maildir_unique(stralloc *sa);

/* Deliver into the Maildir at dir (e.g. "/home/u/Maildir"): write the
 * prefix bytes (headers such as Return-Path: and Delivered-To:), then copy
 * fd from its current offset to EOF, converting nothing; fsync the file,
 * give it the name new/NAME,S=<bytes>,W=<bytes with CRLF line ends>
 * (Dovecot's convention: POP3 and IMAP sizes without reading the file)
 * by linkat (an O_TMPFILE file: no directory entry until then, one made
 * instead of tmp/'s and new/'s) or rename from tmp/NAME, fsync new/.  On
 * success returns 1 and, if name != 0, stores "new/NAME" in name.  On
 * failure returns 0 with errno set and leaves no file behind in new/ or
 * tmp/.  Does not create the Maildir. */
extern int maildir_deliver(char const *dir, char const *prefix, size_t prefixlen, int fd, stralloc *name);

/* Exactly-once and batched deliveries (yubin-lspawn's children).
 *
 * With qid set, the file is named after the delivery instead of the
 * moment: the unique part is "<sec>.Q<rest>R<rcpt>[L<line>].<host>" for
 * the queue id "<sec>.<rest>" ('.' in rest written 'P', e.g.
 * 1732781234.Q012345678P4242R0.host), the same at every attempt of that
 * recipient of that message (line: the Maildir line of the .qmail file,
 * from 0; L<line> only when not 0).  A queue id is never used twice, so
 * the name is unique.  A second process delivering the same recipient
 * (an earlier attempt still running) writes the same name: one file is
 * kept (linkat finds it there: done; rename replaces it).  A stale
 * tmp/NAME (a delivery without O_TMPFILE killed while writing) is
 * replaced by the next such delivery; with O_TMPFILE nothing is left.
 *
 * check: look first in new/ and cur/ for a file with this unique part
 * (followed by nothing, ',' or ':', so with any ",S=...,W=..." sizes and
 * ":2,..." flags): if there, it is an earlier copy (a delivery that was
 * in flight when something crashed), nothing is written, the directory
 * where it was found is synced (or added to syncdirs) and the call
 * succeeds with found = 1 and name = "new/NAME" or "cur/NAME".  Only
 * qmgr knows when to ask, so the normal path reads no directory.
 *
 * syncdirs: 0, new/ is synced before maildir_deliver_opt returns; else
 * the path of new/ (or cur/ for a copy found there) is appended to it,
 * NUL-terminated, once, and the caller syncs them all with
 * maildir_syncdirs before it claims success: one fsync for a batch of
 * deliveries into one Maildir.  Until then, nothing is durable, and a
 * file left in new/ by a batch whose sync failed is found by the next
 * attempt's check (it is not removed). */
struct maildir_opt
{
  char const *qid ;       /* 0: a fresh maildir_unique name, and check is ignored */
  unsigned long rcpt ;
  unsigned long line ;
  int check ;
  stralloc *syncdirs ;
  int found ;             /* out: 1 when an earlier copy was found */
} ;
#define MAILDIR_OPT_ZERO { .qid = 0, .rcpt = 0, .line = 0, .check = 0, .syncdirs = 0, .found = 0 }

/* The unique part for qid, rcpt and line (see above).  Returns 1, 0 on
 * error (ENOMEM, or EINVAL: qid not digits and dots). */
extern int maildir_unique_for (stralloc *sa, char const *qid, unsigned long rcpt, unsigned long line) ;

/* maildir_deliver with o (0: as maildir_deliver). */
extern int maildir_deliver_opt (char const *dir, char const *prefix, size_t prefixlen, int fd, stralloc *name, struct maildir_opt *o) ;

/* fsync each NUL-terminated directory path in dirs (from
 * maildir_deliver_opt).  Returns 1, or 0 with errno (every path is still
 * tried). */
extern int maildir_syncdirs (stralloc const *dirs) ;

/* Create dir, dir/tmp, dir/new, dir/cur (mode 0700) if missing.
 * Returns 1, 0 on error. */
extern int maildir_make(char const *dir);

#endif
