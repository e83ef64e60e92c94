/* Control files under <root>/control/, with qmail's semantics. */
#ifndef YUBIN_CONTROL_H
#define YUBIN_CONTROL_H

#include <stddef.h>
#include <skalibs/stralloc.h>

/* One-line control file: the first line, with trailing spaces, tabs and CR
 * removed.  sa gets the value NUL-terminated (len excludes the NUL).
 * Missing file: copies def (if def != 0) and returns 0; def == 0 leaves
 * sa empty and returns 0.  Found: returns 1.  Error other than ENOENT:
 * returns -1 with errno set.  name is relative to control/, e.g. "me". */
extern int control_readline(stralloc *sa, char const *name, char const *def);

/* Numeric one-line file (decimal).  Missing: *n = def, returns 0.
 * Found and valid: returns 1.  Garbage: returns -1, errno = EINVAL. */
extern int control_readulong(unsigned long *n, char const *name, unsigned long def);

/* List file: one entry per line; lines starting with '#' and blank lines
 * are skipped; leading and trailing whitespace removed.  Entries are stored
 * one after the other, each NUL-terminated, in sa.  Missing: sa empty,
 * returns 0.  Found: 1.  Error: -1. */
extern int control_readlist(stralloc *sa, char const *name);

/* Does the domain (any case) match a list read by control_readlist, with
 * rcpthosts semantics: an exact entry, or an entry ".example.com" matching
 * any subdomain of example.com?  A trailing dot on domain is ignored. */
extern int control_domain_in_list(char const *list, size_t listlen, char const *domain);

#endif
