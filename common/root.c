/* Finding the instance root.  See root.h for the order of precedence. */

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <skalibs/stralloc.h>

#include "root.h"

static char const *root_cached = 0 ;
static char root_buf[PATH_MAX] ;

static int is_privileged (void)
{
  return getuid() != geteuid() || getgid() != getegid() ;
}

/* dir of /proc/self/exe into buf; returns its length or 0.  Looked up
 * once per process image (and inherited by forked children). */
static size_t exe_dir (char *buf, size_t max)
{
  static char dir[PATH_MAX] ;
  static size_t dirlen = 0 ;
  if (!dirlen)
  {
    ssize_t r = readlink("/proc/self/exe", dir, sizeof(dir) - 1) ;
    if (r <= 0) return 0 ;
    dir[r] = 0 ;
    char *slash = strrchr(dir, '/') ;
    if (!slash || slash == dir) return 0 ;
    *slash = 0 ;
    dirlen = slash - dir ;
  }
  if (dirlen >= max) return 0 ;
  memcpy(buf, dir, dirlen + 1) ;
  return dirlen ;
}

/* A set-id program trusts an instance only if no one but root could have
 * put it there: the root and its bin/ owned by uid 0 and writable by no one
 * else (an attacker can't build such a tree around a hard link). */
static int trusted_dir (char const *path)
{
  struct stat st ;
  return !stat(path, &st) && S_ISDIR(st.st_mode) && st.st_uid == 0 && !(st.st_mode & 022) ;
}

/* <exe dir>/.. if it looks like an instance root this process may trust
 * (the programs are in its bin/ or libexec/) */
static int root_from_exe (char *buf, size_t max)
{
  size_t n = exe_dir(buf, max) ;
  if (!n) return 0 ;
  if (is_privileged() && !trusted_dir(buf)) return 0 ;
  char *slash = strrchr(buf, '/') ;
  if (!slash || (strcmp(slash, "/bin") && strcmp(slash, "/libexec"))) return 0 ;
  *slash = 0 ;
  if (slash == buf) return 0 ;
  size_t len = slash - buf ;
  if (len + sizeof("/control") > max) return 0 ;
  if (is_privileged() && !trusted_dir(buf)) return 0 ;
  struct stat st ;
  memcpy(buf + len, "/control", sizeof("/control")) ;
  int ok = !stat(buf, &st) && S_ISDIR(st.st_mode) ;
  buf[len] = 0 ;
  return ok ;
}

void yubin_root_prime (void)
{
  char buf[PATH_MAX] ;
  yubin_root() ;
  exe_dir(buf, sizeof(buf)) ;
}

char const *yubin_root (void)
{
  if (root_cached) return root_cached ;
  char const *env = is_privileged() ? 0 : getenv("YUBIN_ROOT") ;
  if (env && *env && strlen(env) < sizeof(root_buf))
  {
    size_t len = strlen(env) ;
    memcpy(root_buf, env, len + 1) ;
    while (len > 1 && root_buf[len-1] == '/') root_buf[--len] = 0 ;
    root_cached = root_buf ;
  }
  else if (root_from_exe(root_buf, sizeof(root_buf))) root_cached = root_buf ;
  else root_cached = YUBIN_ROOT_DEFAULT ;
  return root_cached ;
}

int yubin_path (stralloc *sa, char const *rel)
{
  char const *root = yubin_root() ;
  sa->len = 0 ;
  return stralloc_cats(sa, root)
      && stralloc_catb(sa, "/", 1)
      && stralloc_cats(sa, rel)
      && stralloc_0(sa)
      && (sa->len--, 1) ;
}

/* sa = the directory of the running binary, then rel, then prog. */
static int beside_exe (stralloc *sa, char const *rel, char const *prog)
{
  char buf[PATH_MAX] ;
  size_t n = exe_dir(buf, sizeof(buf)) ;
  if (!n) { errno = ENOENT ; return 0 ; }
  sa->len = 0 ;
  if (!stralloc_catb(sa, buf, n) || !stralloc_cats(sa, rel) || !stralloc_cats(sa, prog)
   || !stralloc_0(sa)) return 0 ;
  sa->len-- ;
  return 1 ;
}

int yubin_sibling (stralloc *sa, char const *prog)
{
  return beside_exe(sa, "/", prog) ;
}

int yubin_libexec (stralloc *sa, char const *prog)
{
  if (!beside_exe(sa, "/../libexec/", prog)) return 0 ;
  /* EACCES: the directory is there but not for us: say so at exec time */
  if (!access(sa->s, F_OK) || errno == EACCES) return 1 ;
  return yubin_sibling(sa, prog) ;
}
