/* The users of an instance.
 *
 * <root>/users/passwd   (mode 0600, owner root or the instance owner)
 *     name:hash:uid:gid:home        one user per line, '#' comments
 *   hash is a PHC string from password.h ("$scrypt$..."), or "*" (no login).
 * <root>/users/users.cdb  (mode 0644, derived from passwd, no secrets)
 *     key: name (lowercase)   value: "uid:gid:home"
 * yubin-users rewrites both atomically on every change.  Programs that only
 * need to know whether a user exists, or where it lives (smtpd, lspawn),
 * read users.cdb; only yubin-users and yubin-checkpassword read passwd.
 * A user's Maildir is home "/Maildir/". */
#ifndef YUBIN_USERS_H
#define YUBIN_USERS_H

#include <sys/types.h>
#include <skalibs/stralloc.h>

struct yubin_user
{
  uid_t uid ;
  gid_t gid ;
  stralloc home ;   /* NUL-terminated */
} ;
#define YUBIN_USER_ZERO { .uid = 0, .gid = 0, .home = STRALLOC_ZERO }

/* Look a user up by name (case-insensitive) in users.cdb.
 * Returns 1 found, 0 no such user (or no users.cdb), -1 error (errno). */
extern int users_lookup(char const *name, struct yubin_user *u);

/* The local-delivery name for the local part of a local address:
 * the longest prefix "user" of local such that local is "user" or
 * "user-ext" and the user exists; *ext gets the offset of ext (or len).
 * Returns 1 found, 0 none, -1 error. */
extern int users_match_local(char const *local, size_t len, stralloc *user, size_t *ext);

#endif
