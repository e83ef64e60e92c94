/* Who takes a local part: qmail-lspawn's and qmail-getpw's answer, for
 * yubin-smtpd (at RCPT) and yubin-lspawn (to become the recipient).
 *
 * The order, first answer wins:
 *  1. <root>/users/assign.cdb (made by yubin-newu from users/assign, the
 *     format of qmail-users(5)): an exact "=local" line, then the longest
 *     "+prefix" wildcard line that starts local (the empty prefix last);
 *  2. for the local part "postmaster" (any case), the users.cdb user
 *     named by pmuser (yubin-lspawn: control/postmaster), if given;
 *  3. yubin's own users (users/users.cdb): "user" or "user-ext",
 *     longest user first (common/userdb.h);
 *  4. the alias user: home <root>/alias, uid and gid of that directory's
 *     owner, user name "alias", dash "-", ext = the whole local part,
 *     but only if a file <root>/alias/.qmail-<ext> would take the
 *     address (.qmail-ext, .qmail-<ext up to a '-'>default, longest
 *     first, .qmail-default; ext lowercased, '.' as ':', as qmail-local
 *     names them).  Anything else has no owner.
 *
 * users/assign.cdb holds what qmail-newu writes into qmail's users/cdb:
 *   key "!local\0"  (lowercase)  for  =local:user:uid:gid:home:dash:ext:
 *   key "!prefix"   (lowercase)  for  +prefix:user:uid:gid:home:dash:pre:
 *   value "user\0uid\0gid\0home\0dash\0ext" (six fields, no final NUL)
 *   key ""  -> the last characters of every non-empty prefix (qmail's
 *              wildchars: only prefixes ending in one of them are tried)
 * so a qmail users/cdb also reads here. */
#ifndef YUBIN_ASSIGN_H
#define YUBIN_ASSIGN_H

#include <stddef.h>
#include <sys/types.h>
#include <skalibs/cdb.h>
#include <skalibs/stralloc.h>

enum assign_kind
{
  ASSIGN_EXACT = 1,   /* an =local line */
  ASSIGN_WILD,        /* a +prefix line */
  ASSIGN_USER,        /* users/users.cdb */
  ASSIGN_ALIAS,       /* the alias user's .qmail files */
} ;

/* The answer: qmail-local's user, home, dash and ext, and the uid and
 * gid to become.  The strings live in sa, NUL-terminated each. */
struct assign
{
  stralloc sa ;
  size_t user, home, dash, ext ;   /* offsets in sa */
  uid_t uid ;
  gid_t gid ;
  enum assign_kind kind ;
} ;
#define ASSIGN_ZERO { .sa = STRALLOC_ZERO, .user = 0, .home = 0, .dash = 0, .ext = 0, .uid = 0, .gid = 0, .kind = 0 }
#define assign_user(a) ((a)->sa.s + (a)->user)
#define assign_home(a) ((a)->sa.s + (a)->home)
#define assign_dash(a) ((a)->sa.s + (a)->dash)
#define assign_ext(a) ((a)->sa.s + (a)->ext)

/* The local part local[0..len) (no '@') in the order above.
 * Returns 1 found (a filled), 0 no owner, -1 temporary error (errno;
 * EINVAL for a damaged assign.cdb or users.cdb). */
extern int assign_find (char const *local, size_t len, char const *pmuser, struct assign *a) ;

/* Step 1 alone, in an open assign.cdb.  1 found, 0 not, -1 error. */
extern int assign_cdb_find (cdb const *c, char const *local, size_t len, struct assign *a) ;

/* Step 4 alone: the alias user for local, with the alias home aliasdir
 * (absolute).  1 a file takes it, 0 none (or no such directory), -1
 * error. */
extern int assign_alias (char const *aliasdir, char const *local, size_t len, struct assign *a) ;

extern void assign_free (struct assign *a) ;

/* One line of users/assign (without its '\n') into the cdb key and
 * value above (yubin-newu).  Stricter than qmail-newu: the line must be
 * "=local:user:uid:gid:homedir:dash:ext:" or
 * "+prefix:user:uid:gid:homedir:dash:pre:" exactly (nothing after the
 * last ':'), with local not empty for '=', no NUL, user not empty, uid
 * and gid decimal, homedir absolute, and no ':' inside a field (qmail
 * has no quoting).  Returns 1, 0 with a reason in *err, or -1 when out
 * of memory. */
extern int assign_parse_line (char const *s, size_t len, stralloc *key, stralloc *data, char const **err) ;

#endif
