/* What the POP3 and IMAP servers share about reading a Maildir: which
 * directory entries are messages and their unique part, the order of
 * messages, the ",W=" size a name may carry, CRLF sizes, and moving new/
 * into cur/.  (pop3d/mbox is POP3's listing on top of this; imapd's index
 * is IMAP's.)
 *
 * Sizes are "CRLF sizes": the octets of the message with every LF not
 * preceded by CR counted as 2, and 2 more for a non-empty file that does
 * not end with LF (the CRLF that ends its last line). */
#ifndef YUBIN_MAILREAD_H
#define YUBIN_MAILREAD_H

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>

struct mailname
{
  size_t uniqlen ;     /* the unique part: up to the first ":2,", or all */
  uint64_t wsize ;     /* the ",W=<n>" of the unique part, if haswsize */
  int haswsize ;
} ;

/* Whether s[0..len) names a message: not empty, no leading '.', no '/'
 * and no NUL.  If so fills nm and returns 1, else returns 0. */
extern int mailname_parse (char const *s, size_t len, struct mailname *nm) ;

/* The order of messages: a "natural" comparison of unique parts (runs of
 * digits compare as numbers, so the leading delivery time comes first,
 * then the rest, "M99" before "M100"), ties broken bytewise: a total
 * order, 0 only for identical strings. */
extern int mailname_cmp (char const *a, size_t alen, char const *b, size_t blen) ;

/* Strict decimal: s[0..len) only digits, at least one.  Returns 0 if not;
 * else 1 with the value in *n, UINT64_MAX if it does not fit. */
extern int mailread_parsenum (char const *s, size_t len, uint64_t *n) ;

/* The CRLF size of what the regular file fd holds from its offset to EOF
 * (a short read is taken as its end).  Returns 1, or 0 on a read error
 * (errno set). */
extern int mailread_crlfsize (int fd, uint64_t *size) ;

/* Whether the entry e of the directory at dirfd is a regular file: 1 yes,
 * 0 no (or gone), -1 error (errno). */
extern int mailread_isregular (int dirfd, struct dirent const *e) ;

/* What mailread_each calls for each entry: the entry e of the directory
 * at dirfd, its name's length and parse.  Returns 1 to go on, or 0 to
 * stop with an error (errno set, and *op saying what failed). */
typedef int mailread_fn (void *arg, int dirfd, struct dirent const *e, size_t len, struct mailname const *nm,
                         char const **op) ;

/* fn for each entry of the directory at dirfd that names a message
 * (mailname_parse; whether it is a regular file is fn's to ask, so that
 * a name already known needs no stat), read through a DIR of its own
 * from the start; dirfd stays open.  Returns 1, or 0 with errno set and
 * *op: "open", "read", or what fn said. */
extern int mailread_each (int dirfd, mailread_fn *fn, void *arg, char const **op) ;

/* Move every message of new/ (the directory at newfd, which stays ours
 * and open) into cur/ (curfd), adding ":2," to a name that has no info
 * part yet.  A message another process moved first is skipped.  For each
 * message moved, moved(arg, name, uniqlen) is called with its name in
 * new/ (moved may be 0); a 0 from it stops the walk as an error.
 * Returns 1, or 0 with errno set and *op saying what failed ("open",
 * "read", "stat", "rename", or "memory"). */
extern int mailread_newtocur (int newfd, int curfd, int (*moved)(void *arg, char const *name, size_t uniqlen),
                              void *arg, char const **op) ;

#endif
