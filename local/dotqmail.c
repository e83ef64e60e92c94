/* The .qmail files of the delivery code (local/local.h): the extension as
 * file names hold it, the search for the file in qmail-local's order
 * (.qmail-ext, the -default files), reading it with the safety checks
 * (a regular file, not writable by others, at most 1 MB), and whether
 * -owner files or any .qmail file exist. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <skalibs/direntry.h>
#include <skalibs/djbunix.h>
#include <skalibs/stralloc.h>

#include "exitcodes.h"

#include "local/local.h"

#define DOTQMAIL_MAX (1 << 20)   /* a larger .qmail file defers delivery */

int dotqmail_safeext (stralloc *safe, char const *ext)
{
  if (!stralloc_copys(safe, ext)) return 0 ;
  for (size_t i = 0 ; i < safe->len ; i++)
  {
    char c = safe->s[i] ;
    if (c >= 'A' && c <= 'Z') safe->s[i] = c + 32 ;
    else if (c == '.') safe->s[i] = ':' ;
  }
  return stralloc_0(safe) ? (safe->len--, 1) : 0 ;
}

/* errors that mean "it is not there" rather than "try again later" */
static int absent (int e)
{
  return e == ENOENT || e == ENOTDIR || e == ENAMETOOLONG || e == ELOOP ;
}

static void name_make (stralloc *name, char const *dash, char const *ext, size_t extlen, char const *suffix)
{
  name->len = 0 ;
  if (!stralloc_cats(name, ".qmail") || !stralloc_cats(name, dash)
   || !stralloc_catb(name, ext, extlen) || !stralloc_cats(name, suffix)
   || !stralloc_0(name)) local_dienomem() ;
}

/* Try name: 1 found (read), 0 not there, 111 error. */
static int try_one (stralloc *name, stralloc *contents, int *xbit, stralloc *why)
{
  struct stat st ;
  int fd = open(name->s, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC) ;
  if (fd < 0)
  {
    if (absent(errno)) return 0 ;
    return local_fail(why, EX_TEMP, 1, "unable to open ", name->s, " (#4.3.0)", (char *)0) ;
  }
  if (fstat(fd, &st) < 0)
  {
    int code = local_fail(why, EX_TEMP, 1, "unable to stat ", name->s, " (#4.3.0)", (char *)0) ;
    fd_close(fd) ;
    return code ;
  }
  if (!S_ISREG(st.st_mode)) { fd_close(fd) ; return 0 ; }
  if (st.st_mode & S_IWOTH)
  {
    fd_close(fd) ;
    return local_fail(why, EX_TEMP, 0, "Uh-oh: ", name->s, " is writable by others (#4.7.0)", (char *)0) ;
  }
  if (st.st_size > DOTQMAIL_MAX)
  {
    fd_close(fd) ;
    return local_fail(why, EX_TEMP, 0, "Uh-oh: ", name->s, " is larger than 1 MB (#4.7.0)", (char *)0) ;
  }
  *xbit = !!(st.st_mode & S_IXUSR) ;
  contents->len = 0 ;
  for (;;)
  {
    if (!stralloc_readyplus(contents, 8192)) local_dienomem() ;
    ssize_t r = read(fd, contents->s + contents->len, 8192) ;
    if (r < 0)
    {
      if (errno == EINTR) continue ;
      int code = local_fail(why, EX_TEMP, 1, "unable to read ", name->s, " (#4.3.0)", (char *)0) ;
      fd_close(fd) ;
      return code ;
    }
    if (!r) break ;
    contents->len += r ;
    if (contents->len > DOTQMAIL_MAX)
    {
      fd_close(fd) ;
      return local_fail(why, EX_TEMP, 0, "Uh-oh: ", name->s, " is larger than 1 MB (#4.7.0)", (char *)0) ;
    }
  }
  fd_close(fd) ;
  return 1 ;
}

int dotqmail_find (char const *dash, char const *safeext, stralloc *name, stralloc *contents, int *xbit, long *defaultpos, stralloc *why)
{
  size_t len = strlen(safeext) ;
  int r ;
  *defaultpos = -1 ;
  name_make(name, dash, safeext, len, "") ;
  r = try_one(name, contents, xbit, why) ;
  if (r == 1)
  {
    /* an exact file whose name ends with "default" still sets DEFAULT */
    if (len >= 7 && !memcmp(safeext + len - 7, "default", 7)) *defaultpos = len - 7 ;
    return 1 ;
  }
  if (r) return r ;
  for (size_t i = len + 1 ; i-- > 0 ; )
  {
    if (i && safeext[i-1] != '-') continue ;
    name_make(name, dash, safeext, i, "default") ;
    r = try_one(name, contents, xbit, why) ;
    if (r == 1) { *defaultpos = i ; return 1 ; }
    if (r) return r ;
  }
  name->len = 0 ;
  return 0 ;
}

int dotqmail_exists (char const *dash, char const *safeext, char const *suffix, stralloc *why)
{
  stralloc name = STRALLOC_ZERO ;
  struct stat st ;
  int r = 1 ;
  name_make(&name, dash, safeext, strlen(safeext), suffix) ;
  if (stat(name.s, &st) < 0)
    r = absent(errno) ? 0 : local_fail(why, EX_TEMP, 1, "unable to stat ", name.s, " (#4.3.0)", (char *)0) ;
  stralloc_free(&name) ;
  return r ;
}

int home_has_dotqmail (stralloc *why)
{
  int r = 0 ;
  DIR *dir = opendir(".") ;
  if (!dir) return local_fail(why, EX_TEMP, 1, "unable to read the home directory (#4.3.0)", (char *)0) ;
  for (;;)
  {
    errno = 0 ;
    struct dirent *de = readdir(dir) ;
    if (!de)
    {
      if (errno) r = local_fail(why, EX_TEMP, 1, "unable to read the home directory (#4.3.0)", (char *)0) ;
      break ;
    }
    if (!strncmp(de->d_name, ".qmail", 6)) { r = 1 ; break ; }
  }
  dir_close(dir) ;
  return r ;
}
