/* Who takes a local part: see assign.h. */

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <skalibs/bytestr.h>
#include <skalibs/cdb.h>
#include <skalibs/djbunix.h>
#include <skalibs/stralloc.h>
#include <skalibs/types.h>

#include "assign.h"
#include "root.h"
#include "userdb.h"

#define LOCAL_MAX 1000   /* longer local parts have no owner */

void assign_free (struct assign *a)
{
  stralloc_free(&a->sa) ;
}

/* a->sa = user home dash ext, each NUL-terminated; ext is ext1 ext2. */
static int fill (struct assign *a, char const *user, size_t userlen, char const *home, size_t homelen,
                 char const *dash, size_t dashlen, char const *ext1, size_t ext1len, char const *ext2, size_t ext2len)
{
  a->sa.len = 0 ;
  a->user = 0 ;
  if (!stralloc_catb(&a->sa, user, userlen) || !stralloc_0(&a->sa)) return -1 ;
  a->home = a->sa.len ;
  if (!stralloc_catb(&a->sa, home, homelen) || !stralloc_0(&a->sa)) return -1 ;
  a->dash = a->sa.len ;
  if (!stralloc_catb(&a->sa, dash, dashlen) || !stralloc_0(&a->sa)) return -1 ;
  a->ext = a->sa.len ;
  if (!stralloc_catb(&a->sa, ext1, ext1len) || !stralloc_catb(&a->sa, ext2, ext2len) || !stralloc_0(&a->sa)) return -1 ;
  return 1 ;
}

/* A value "user\0uid\0gid\0home\0dash\0ext" plus tail (the rest of the
 * local part after a wildcard prefix) into a.  1, or -1 (EINVAL). */
static int from_value (char const *s, size_t len, char const *tail, size_t taillen, struct assign *a)
{
  char const *f[6] ;
  size_t flen[6] ;
  size_t i = 0 ;
  for (unsigned int n = 0 ; n < 6 ; n++)
  {
    if (i > len) goto bad ;
    size_t j = i + byte_chr(s + i, len - i, 0) ;
    if (n < 5 && j >= len) goto bad ;
    f[n] = s + i ; flen[n] = j - i ;
    i = j + 1 ;
  }
  uint64_t u ;
  if (!flen[1] || uint64_scan(f[1], &u) != flen[1] || u != (uid_t)u) goto bad ;
  a->uid = (uid_t)u ;
  if (!flen[2] || uint64_scan(f[2], &u) != flen[2] || u != (gid_t)u) goto bad ;
  a->gid = (gid_t)u ;
  if (!flen[0] || !flen[3] || f[3][0] != '/') goto bad ;
  return fill(a, f[0], flen[0], f[3], flen[3], f[4], flen[4], f[5], flen[5], tail, taillen) ;
 bad:
  errno = EINVAL ;
  return -1 ;
}

int assign_cdb_find (cdb const *c, char const *local, size_t len, struct assign *a)
{
  char key[LOCAL_MAX + 2] ;
  cdb_data d ;
  int r ;
  if (len > LOCAL_MAX) return 0 ;
  key[0] = '!' ;
  memcpy(key + 1, local, len) ;
  case_lowerb(key + 1, len) ;
  key[len + 1] = 0 ;
  /* the exact line: "!local\0" */
  r = cdb_find(c, &d, key, len + 2) ;
  if (r < 0) { errno = EINVAL ; return -1 ; }
  if (r) { a->kind = ASSIGN_EXACT ; return from_value(d.s, d.len, "", 0, a) ; }
  /* the wildcards, longest prefix first: "!prefix" */
  char wild[256] ;
  size_t nwild = 0 ;
  int allwild = 1 ;   /* no "" key (not made by a qmail-newu): try every prefix */
  r = cdb_find(c, &d, "", 0) ;
  if (r < 0) { errno = EINVAL ; return -1 ; }
  if (r && d.len <= sizeof wild)
  {
    memcpy(wild, d.s, d.len) ;
    nwild = d.len ;
    case_lowerb(wild, nwild) ;   /* qmail-newu keeps their case, the key is lowercase */
    allwild = 0 ;
  }
  for (size_t i = len + 1 ; i >= 1 ; i--)
  {
    /* key[0..i) is '!' and the first i-1 bytes of local */
    if (i > 1 && !allwild && byte_chr(wild, nwild, key[i-1]) == nwild) continue ;
    r = cdb_find(c, &d, key, i) ;
    if (r < 0) { errno = EINVAL ; return -1 ; }
    if (r)
    {
      a->kind = ASSIGN_WILD ;
      return from_value(d.s, d.len, local + i - 1, len - (i - 1), a) ;
    }
  }
  return 0 ;
}

/* errors that mean "it is not there" rather than "try again later" */
static int absent (int e)
{
  return e == ENOENT || e == ENOTDIR || e == ENAMETOOLONG || e == ELOOP ;
}

/* Is dir/name a regular file?  1 yes, 0 no, -1 error. */
static int regular (stralloc *path, size_t dirlen, char const *name, size_t namelen, char const *suffix)
{
  struct stat st ;
  path->len = dirlen ;
  if (!stralloc_catb(path, "/", 1) || !stralloc_catb(path, name, namelen)
   || !stralloc_cats(path, suffix) || !stralloc_0(path)) return -1 ;
  if (stat(path->s, &st) < 0) return absent(errno) ? 0 : -1 ;
  return S_ISREG(st.st_mode) ;
}

int assign_alias (char const *aliasdir, char const *local, size_t len, struct assign *a)
{
  struct stat st ;
  stralloc path = STRALLOC_ZERO ;
  stralloc name = STRALLOC_ZERO ;
  int r = 0 ;
  if (!len || len > LOCAL_MAX) return 0 ;
  if (stat(aliasdir, &st) < 0) return absent(errno) ? 0 : -1 ;
  if (!S_ISDIR(st.st_mode)) return 0 ;
  size_t dirlen = strlen(aliasdir) ;
  if (!stralloc_catb(&path, aliasdir, dirlen)) goto err ;
  /* ".qmail-" and the extension as qmail-local names it */
  if (!stralloc_cats(&name, ".qmail-") || !stralloc_catb(&name, local, len)) goto err ;
  for (size_t i = 7 ; i < name.len ; i++)
  {
    char c = name.s[i] ;
    if (c >= 'A' && c <= 'Z') name.s[i] = c + 32 ;
    else if (c == '.') name.s[i] = ':' ;
    else if (c == '/' || !c) goto end ;   /* never a path: no such file */
  }
  r = regular(&path, dirlen, name.s, name.len, "") ;
  for (size_t i = name.len + 1 ; !r && i-- > 7 ; )
  {
    if (i > 7 && name.s[i-1] != '-') continue ;
    r = regular(&path, dirlen, name.s, i, "default") ;
  }
  if (r < 0) goto err ;
  if (r)
  {
    if (fill(a, "alias", 5, aliasdir, dirlen, "-", 1, local, len, "", 0) < 0) goto err ;
    a->uid = st.st_uid ;
    a->gid = st.st_gid ;
    a->kind = ASSIGN_ALIAS ;
  }
 end:
  stralloc_free(&path) ;
  stralloc_free(&name) ;
  return r ;
 err:
  {
    int e = errno ;
    stralloc_free(&path) ;
    stralloc_free(&name) ;
    errno = e ;
    return -1 ;
  }
}

/* the user of users.cdb named name[0..len), with dash and ext */
static int from_users (char const *name, char const *dash, char const *ext, size_t extlen, struct assign *a)
{
  struct yubin_user u = YUBIN_USER_ZERO ;
  int r = users_lookup(name, &u) ;
  if (r > 0)
  {
    a->uid = u.uid ;
    a->gid = u.gid ;
    a->kind = ASSIGN_USER ;
    r = fill(a, name, strlen(name), u.home.s, u.home.len, dash, strlen(dash), ext, extlen, "", 0) ;
  }
  int e = errno ;
  stralloc_free(&u.home) ;
  errno = e ;
  return r ;
}

/* The alias home: <root>/alias, made absolute. */
static int alias_dir (stralloc *sa)
{
  if (!yubin_path(sa, "alias")) return 0 ;
  if (sa->s[0] == '/') return 1 ;
  stralloc rel = STRALLOC_ZERO ;
  int ok = stralloc_copyb(&rel, sa->s, sa->len) ;
  if (ok)
  {
    sa->len = 0 ;
    ok = sagetcwd(sa) && stralloc_catb(sa, "/", 1) && stralloc_catb(sa, rel.s, rel.len) && stralloc_0(sa) ;
    if (ok) sa->len-- ;
  }
  stralloc_free(&rel) ;
  return ok ;
}

int assign_find (char const *local, size_t len, char const *pmuser, struct assign *a)
{
  stralloc sa = STRALLOC_ZERO ;
  int r ;
  if (!len || len > LOCAL_MAX || byte_chr(local, len, 0) < len) return 0 ;

  /* 1. users/assign.cdb */
  if (!yubin_path(&sa, "users/assign.cdb")) return -1 ;
  {
    cdb c = CDB_ZERO ;
    if (cdb_init(&c, sa.s))
    {
      r = assign_cdb_find(&c, local, len, a) ;
      int e = errno ;
      cdb_free(&c) ;
      errno = e ;
      if (r) goto end ;
    }
    else if (errno != ENOENT) { r = -1 ; goto end ; }
  }

  /* 2. postmaster: control/postmaster's user */
  if (pmuser && *pmuser && len == 10 && case_equalb(local, 10, "postmaster"))
  {
    r = from_users(pmuser, "", "", 0, a) ;
    if (r) goto end ;
  }

  /* 3. users.cdb: "user" or "user-ext" */
  {
    size_t ext ;
    r = users_match_local(local, len, &sa, &ext) ;
    if (r < 0) goto end ;
    if (r)
    {
      r = from_users(sa.s, ext < len ? "-" : "", local + ext, len - ext, a) ;
      if (r) goto end ;   /* 0: removed in between, try the alias */
    }
  }

  /* 4. the alias user */
  if (!alias_dir(&sa)) { r = -1 ; goto end ; }
  r = assign_alias(sa.s, local, len, a) ;

 end:
  {
    int e = errno ;
    stralloc_free(&sa) ;
    errno = e ;
  }
  return r ;
}

int assign_parse_line (char const *s, size_t len, stralloc *key, stralloc *data, char const **err)
{
  size_t f[8], flen[8] ;   /* local user uid gid home dash ext, then what follows */
  size_t n = 0, i = 1 ;
  if (!len) { *err = "empty line (the file ends with a line holding a single dot)" ; return 0 ; }
  if (byte_chr(s, len, 0) < len) { *err = "NUL in the line" ; return 0 ; }
  if (s[0] != '=' && s[0] != '+') { *err = "a line must start with = (one address) or + (a wildcard)" ; return 0 ; }
  while (n < 8)
  {
    size_t j = i + byte_chr(s + i, len - i, ':') ;
    f[n] = i ; flen[n] = j - i ;
    n++ ;
    if (j >= len) break ;
    i = j + 1 ;
  }
  if (n < 8) { *err = "too few fields: want =local:user:uid:gid:homedir:dash:ext:" ; return 0 ; }
  if (flen[7] || f[7] + flen[7] != len) { *err = "text after the last ':' (a field cannot hold ':')" ; return 0 ; }
  if (s[0] == '=' && !flen[0]) { *err = "empty address after =" ; return 0 ; }
  if (!flen[1]) { *err = "empty user name" ; return 0 ; }
  uint64_t u ;
  if (!flen[2] || uint64_scan(s + f[2], &u) != flen[2] || u != (uid_t)u) { *err = "uid is not a number" ; return 0 ; }
  if (!flen[3] || uint64_scan(s + f[3], &u) != flen[3] || u != (gid_t)u) { *err = "gid is not a number" ; return 0 ; }
  if (!flen[4] || s[f[4]] != '/') { *err = "homedir is not an absolute path" ; return 0 ; }
  if (flen[0] > LOCAL_MAX) { *err = "address too long" ; return 0 ; }
  key->len = 0 ;
  if (!stralloc_catb(key, "!", 1) || !stralloc_catb(key, s + f[0], flen[0])) return -1 ;
  if (s[0] == '=' && !stralloc_0(key)) return -1 ;
  case_lowerb(key->s + 1, flen[0]) ;
  data->len = 0 ;
  for (unsigned int k = 1 ; k < 7 ; k++)
  {
    if (!stralloc_catb(data, s + f[k], flen[k])) return -1 ;
    if (k < 6 && !stralloc_0(data)) return -1 ;
  }
  return 1 ;
}
