/* Maildir delivery: see maildir.h.
 * A delivery costs two fsyncs: the file, then new/ after the rename. */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/djbunix.h>
#include <skalibs/stralloc.h>
#include <skalibs/types.h>

#include "maildir.h"

#define COPY_CHUNK 65536

static char host_escaped[256 * 4 + 1] ;

static char const *maildir_host (void)
{
  if (host_escaped[0]) return host_escaped ;
  char host[256] ;
  if (gethostname(host, sizeof(host) - 1) < 0) strcpy(host, "localhost") ;
  host[sizeof(host) - 1] = 0 ;
  size_t j = 0 ;
  for (size_t i = 0 ; host[i] ; i++)
  {
    if (host[i] == '/') { memcpy(host_escaped + j, "\\057", 4) ; j += 4 ; }
    else if (host[i] == ':') { memcpy(host_escaped + j, "\\072", 4) ; j += 4 ; }
    else host_escaped[j++] = host[i] ;
  }
  host_escaped[j] = 0 ;
  return host_escaped ;
}

int maildir_unique (stralloc *sa)
{
  static unsigned long count = 0 ;
  struct timeval tv ;
  char fmt[UINT64_FMT] ;
  if (gettimeofday(&tv, 0) < 0) return 0 ;
  sa->len = 0 ;
  int ok = stralloc_catb(sa, fmt, uint64_fmt(fmt, (uint64_t)tv.tv_sec))
        && stralloc_catb(sa, ".M", 2)
        && stralloc_catb(sa, fmt, uint64_fmt(fmt, (uint64_t)tv.tv_usec))
        && stralloc_catb(sa, "P", 1)
        && stralloc_catb(sa, fmt, uint64_fmt(fmt, (uint64_t)getpid()))
        && stralloc_catb(sa, "Q", 1)
        && stralloc_catb(sa, fmt, uint64_fmt(fmt, (uint64_t)++count))
        && stralloc_catb(sa, ".", 1)
        && stralloc_cats(sa, maildir_host())
        && stralloc_0(sa) ;
  if (ok) sa->len-- ;
  return ok ;
}

/* prefix, then fd from its offset to EOF, into out.  1 ok, 0 error. */
static int copy_message (int out, char const *prefix, size_t prefixlen, int in)
{
  char buf[COPY_CHUNK] ;
  if (prefixlen && allwrite(out, prefix, prefixlen) < prefixlen) return 0 ;
  for (;;)
  {
    ssize_t r = fd_read(in, buf, sizeof(buf)) ;
    if (r < 0) return 0 ;
    if (!r) return 1 ;
    if (allwrite(out, buf, r) < (size_t)r) return 0 ;
  }
}

static int sync_dir (char const *path)
{
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (fd < 0) return 0 ;
  int r = fsync(fd) ;
  int e = errno ;
  close(fd) ;
  errno = e ;
  return !r ;
}

int maildir_deliver (char const *dir, char const *prefix, size_t prefixlen, int fd, stralloc *name)
{
  stralloc uniq = STRALLOC_ZERO, tmp = STRALLOC_ZERO, new = STRALLOC_ZERO ;
  int ok = 0, e = 0 ;
  if (!maildir_unique(&uniq)) goto end ;
  if (!stralloc_cats(&tmp, dir) || !stralloc_cats(&tmp, "/tmp/")
   || !stralloc_catb(&tmp, uniq.s, uniq.len) || !stralloc_0(&tmp)) goto end ;
  if (!stralloc_cats(&new, dir) || !stralloc_cats(&new, "/new/")
   || !stralloc_catb(&new, uniq.s, uniq.len) || !stralloc_0(&new)) goto end ;

  if (name)
  {
    name->len = 0 ;
    if (!stralloc_catb(name, "new/", 4) || !stralloc_catb(name, uniq.s, uniq.len)
     || !stralloc_0(name)) goto end ;
    name->len-- ;
  }

  int out = open(tmp.s, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600) ;
  if (out < 0) goto end ;
  if (!copy_message(out, prefix, prefixlen, fd) || fsync(out) < 0)
  {
    e = errno ;
    close(out) ;
    unlink(tmp.s) ;
    errno = e ;
    goto end ;
  }
  if (close(out) < 0 || rename(tmp.s, new.s) < 0)
  {
    e = errno ;
    unlink(tmp.s) ;
    errno = e ;
    goto end ;
  }
  /* new.s is ".../new/NAME": sync the directory ".../new" */
  new.s[new.len - 1 - uniq.len - 1] = 0 ;
  if (!sync_dir(new.s))
  {
    /* The file may or may not survive a crash: don't claim success.
       Remove it so a retry can't end up delivering it twice. */
    e = errno ;
    new.s[new.len - 1 - uniq.len - 1] = '/' ;
    unlink(new.s) ;
    errno = e ;
    goto end ;
  }
  ok = 1 ;
 end:
  e = errno ;
  stralloc_free(&uniq) ;
  stralloc_free(&tmp) ;
  stralloc_free(&new) ;
  errno = e ;
  return ok ;
}

int maildir_make (char const *dir)
{
  static char const *const sub[] = { "", "/tmp", "/new", "/cur" } ;
  stralloc path = STRALLOC_ZERO ;
  int ok = 1 ;
  for (unsigned i = 0 ; ok && i < 4 ; i++)
  {
    path.len = 0 ;
    ok = stralloc_cats(&path, dir) && stralloc_cats(&path, sub[i]) && stralloc_0(&path) ;
    if (ok && mkdir(path.s, 0700) < 0)
    {
      struct stat st ;
      if (errno != EEXIST) ok = 0 ;
      else if (stat(path.s, &st) < 0) ok = 0 ;
      else if (!S_ISDIR(st.st_mode)) { errno = ENOTDIR ; ok = 0 ; }
    }
  }
  int e = errno ;
  stralloc_free(&path) ;
  errno = e ;
  return ok ;
}
