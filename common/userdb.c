/* Looking users up in <root>/users/users.cdb: see users.h. */

#include <errno.h>
#include <string.h>

#include <skalibs/bytestr.h>
#include <skalibs/cdb.h>
#include <skalibs/stralloc.h>
#include <skalibs/types.h>

#include "root.h"
#include "userdb.h"

#define USER_NAME_MAX 64

/* value "uid:gid:home" into u.  1 ok, -1 malformed. */
static int parse_entry (char const *s, size_t len, struct yubin_user *u)
{
  uid_t uid ; gid_t gid ;
  size_t n = uid_scan(s, &uid) ;
  if (!n || n >= len || s[n] != ':') return -1 ;
  size_t m = gid_scan(s + n + 1, &gid) ;
  size_t at = n + 1 + m ;
  if (!m || at >= len || s[at] != ':') return -1 ;
  at++ ;
  if (at >= len || s[at] != '/') return -1 ;
  u->uid = uid ;
  u->gid = gid ;
  u->home.len = 0 ;
  if (!stralloc_catb(&u->home, s + at, len - at) || !stralloc_0(&u->home)) return -1 ;
  u->home.len-- ;
  return 1 ;
}

static int open_db (cdb *c)
{
  stralloc path = STRALLOC_ZERO ;
  if (!yubin_path(&path, "users/users.cdb")) return -1 ;
  int r = cdb_init(c, path.s) ;
  int e = errno ;
  stralloc_free(&path) ;
  if (r) return 1 ;
  errno = e ;
  return e == ENOENT ? 0 : -1 ;
}

/* key must be lowercase already */
static int lookup_key (cdb const *c, char const *key, size_t len, struct yubin_user *u)
{
  cdb_data data ;
  int r = cdb_find(c, &data, key, len) ;
  if (r <= 0) return r ;
  if (!u) return 1 ;
  if (parse_entry(data.s, data.len, u) < 0) { errno = EINVAL ; return -1 ; }
  return 1 ;
}

int users_lookup (char const *name, struct yubin_user *u)
{
  char key[USER_NAME_MAX + 1] ;
  size_t len = strlen(name) ;
  if (!len || len > USER_NAME_MAX) return 0 ;
  memcpy(key, name, len) ;
  case_lowerb(key, len) ;
  cdb c = CDB_ZERO ;
  int r = open_db(&c) ;
  if (r <= 0) return r ;
  r = lookup_key(&c, key, len, u) ;
  int e = errno ;
  cdb_free(&c) ;
  errno = e ;
  return r ;
}

int users_match_local (char const *local, size_t len, stralloc *user, size_t *ext)
{
  char key[USER_NAME_MAX + 1] ;
  cdb c = CDB_ZERO ;
  int r = open_db(&c) ;
  if (r <= 0) return r ;
  /* The whole local part first, then shorter prefixes ending before a '-',
     longest first, as qmail-getpw does. */
  size_t n = len ;
  r = 0 ;
  for (;;)
  {
    if (n && n <= USER_NAME_MAX)
    {
      memcpy(key, local, n) ;
      case_lowerb(key, n) ;
      r = lookup_key(&c, key, n, 0) ;
      if (r) break ;
    }
    while (n && local[n-1] != '-') n-- ;
    if (!n) break ;
    n-- ;   /* drop the '-' itself */
  }
  int e = errno ;
  cdb_free(&c) ;
  errno = e ;
  if (r <= 0) return r ;
  user->len = 0 ;
  if (!stralloc_catb(user, key, n) || !stralloc_0(user)) return -1 ;
  user->len-- ;
  *ext = n < len ? n + 1 : len ;
  return 1 ;
}
