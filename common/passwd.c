/* Parsing users/passwd lines: see passwd.h. */

#include <string.h>

#include <skalibs/bytestr.h>
#include <skalibs/types.h>

#include "passwd.h"

char const *passwd_name_problem (char const *s, size_t len)
{
  if (!len) return "empty" ;
  if (len > PASSWD_NAME_MAX) return "longer than 64 characters" ;
  for (size_t i = 0 ; i < len ; i++)
  {
    char c = s[i] ;
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
      return "only lowercase letters, digits, '.', '_' and '-' are allowed" ;
  }
  if (s[0] == '-') return "may not start with '-'" ;
  if (s[0] == '.' || s[len-1] == '.') return "may not start or end with '.'" ;
  for (size_t i = 1 ; i < len ; i++)
    if (s[i] == '.' && s[i-1] == '.') return "may not contain \"..\"" ;
  return 0 ;
}

/* A decimal uid/gid field s[0..len): 1 ok, 0 bad. */
static int scan_id (char const *s, size_t len, uint32_t *u)
{
  char buf[UINT32_FMT + 1] ;
  if (!len || len >= sizeof(buf)) return 0 ;
  memcpy(buf, s, len) ;
  buf[len] = 0 ;
  return uint32_scan(buf, u) == len ;
}

static int is_comment (char const *l, size_t len)
{
  size_t i = 0 ;
  while (i < len && (l[i] == ' ' || l[i] == '\t' || l[i] == '\r')) i++ ;
  return i == len || l[i] == '#' ;
}

int passwd_parse_line (char const *s, size_t len, size_t pos, struct passwd_entry *e, char const **why)
{
  char const *l = s + pos ;
  size_t linelen = byte_chr(l, len - pos, '\n') ;
  size_t end = linelen && l[linelen-1] == '\r' ? linelen - 1 : linelen ;
  size_t f[5], flen[5], k = 0, start = 0 ;
  *e = (struct passwd_entry){ .line = pos, .linelen = linelen } ;
  if (is_comment(l, linelen)) return 0 ;
  /* name:hash:uid:gid:home -- home is the rest of the line */
  for (size_t i = 0 ; i <= end && k < 4 ; i++)
    if (i == end || l[i] == ':')
    {
      f[k] = pos + start ; flen[k] = i - start ; k++ ;
      start = i + 1 ;
    }
  if (k < 4 || start > end) { *why = "expected name:hash:uid:gid:home" ; return -1 ; }
  f[4] = pos + start ; flen[4] = end - start ;
  e->name = f[0] ; e->namelen = flen[0] ;
  e->hash = f[1] ; e->hashlen = flen[1] ;
  e->home = f[4] ; e->homelen = flen[4] ;
  if (e->namelen > PASSWD_NAME_MAX) { *why = "name longer than 64 characters" ; return -1 ; }
  char lower[PASSWD_NAME_MAX] ;
  memcpy(lower, s + e->name, e->namelen) ;
  case_lowerb(lower, e->namelen) ;
  *why = passwd_name_problem(lower, e->namelen) ;
  if (*why) return -1 ;
  if (!e->hashlen) { *why = "empty password hash (use * for no login)" ; return -1 ; }
  uint32_t u ;
  if (!scan_id(s + f[2], flen[2], &u)) { *why = "bad uid" ; return -1 ; }
  e->uid = u ;
  if (!scan_id(s + f[3], flen[3], &u)) { *why = "bad gid" ; return -1 ; }
  e->gid = u ;
  if (!e->homelen || s[e->home] != '/') { *why = "home is not an absolute path" ; return -1 ; }
  if (memchr(l, 0, linelen)) { *why = "NUL byte" ; return -1 ; }
  return 1 ;
}
