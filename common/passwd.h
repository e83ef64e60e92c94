/* The format of <root>/users/passwd, one user per line:
 *
 *   name:hash:uid:gid:home
 *
 * name: [a-z0-9._-], 1..64 (compared without case); hash: a PHC string
 * (password.h) or anything not starting with '$' for "no login"; uid,
 * gid: decimal; home: an absolute path, the rest of the line.  Lines
 * starting with '#' (after blanks) and blank lines are comments; a CR
 * before the LF (a hand-edited file) is ignored.  Read by
 * yubin-checkpassword, written by yubin-users. */
#ifndef YUBIN_PASSWD_H
#define YUBIN_PASSWD_H

#include <stddef.h>
#include <sys/types.h>

#define PASSWD_NAME_MAX 64

/* One parsed line: offsets into the text it was parsed from. */
struct passwd_entry
{
  size_t line, linelen ;   /* the whole line, without its '\n' */
  size_t name, namelen ;
  size_t hash, hashlen ;
  uid_t uid ;
  gid_t gid ;
  size_t home, homelen ;
} ;

/* Why s[0..len) is not a valid user name, or NULL if it is. */
extern char const *passwd_name_problem (char const *s, size_t len) ;

/* Parse the line starting at text[pos] (up to the next '\n' or the end).
 * Returns 1 with *e filled, 0 for a comment or blank line (e->line and
 * e->linelen still set), -1 for a malformed line with *why the reason. */
extern int passwd_parse_line (char const *text, size_t len, size_t pos, struct passwd_entry *e, char const **why) ;

#endif
