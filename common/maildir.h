/* Maildir delivery: unique names, tmp -> fsync -> rename into new/ ->
 * fsync(new/).  No locks (safe on NFS, as Maildir was designed). */
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
 * rename tmp/NAME to new/NAME,S=<bytes>,W=<bytes with CRLF line ends>
 * (Dovecot's convention: POP3 and IMAP sizes without reading the file),
 * fsync new/.  On success returns 1 and, if
 * name != 0, stores "new/NAME" in name.  On failure returns 0 with errno
 * set and leaves no file behind in new/ (tmp/ file removed).  Does not
 * create the Maildir. */
extern int maildir_deliver(char const *dir, char const *prefix, size_t prefixlen, int fd, stralloc *name);

/* Create dir, dir/tmp, dir/new, dir/cur (mode 0700) if missing.
 * Returns 1, 0 on error. */
extern int maildir_make(char const *dir);

#endif
