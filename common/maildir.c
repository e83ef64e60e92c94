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

/* What a message weighs: its bytes, and its bytes as POP3 and IMAP send
 * them, each line ending in CRLF (an LF without a CR before it counts
 * twice, and a last line without LF gets a CRLF). */
struct msgsize
{
  uint64_t bytes, crlf ;
  char last ;
} ;

static void weigh (struct msgsize *m, char const *s, size_t n)
{
  m->bytes += n ;
  m->crlf += n ;
  for (size_t i = 0 ; i < n ; i++)
    if (s[i] == '\n' && (i ? s[i-1] : m->last) != '\r') m->crlf++ ;
  if (n) m->last = s[n-1] ;
}

/* prefix, then fd from its offset to EOF, into out, weighed.  1 ok, 0
 * error. */
static int copy_message (int out, char const *prefix, size_t prefixlen, int in, struct msgsize *m)
{
  char buf[COPY_CHUNK] ;
  if (prefixlen && allwrite(out, prefix, prefixlen) < prefixlen) return 0 ;
  weigh(m, prefix, prefixlen) ;
  for (;;)
  {
    ssize_t r = fd_read(in, buf, sizeof(buf)) ;
    if (r < 0) return 0 ;
    if (!r) return 1 ;
    if (allwrite(out, buf, r) < (size_t)r) return 0 ;
    weigh(m, buf, r) ;
  }
}

/* new = dir "/new/" uniq ",S=<bytes>,W=<crlf bytes>", NUL-terminated;
 * uniq gets the sizes too. */
static int name_with_sizes (stralloc *new, stralloc *uniq, char const *dir, struct msgsize const *m)
{
  char num[UINT64_FMT] ;
  return stralloc_catb(uniq, ",S=", 3) && stralloc_catb(uniq, num, uint64_fmt(num, m->bytes))
    && stralloc_catb(uniq, ",W=", 3) && stralloc_catb(uniq, num, uint64_fmt(num, m->crlf))
    && stralloc_cats(new, dir) && stralloc_cats(new, "/new/")
    && stralloc_catb(new, uniq->s, uniq->len) && stralloc_0(new) ;
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
  struct msgsize m = { .bytes = 0, .crlf = 0, .last = 0 } ;
  int out = open(tmp.s, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600) ;
  if (out < 0) goto end ;
  if (!copy_message(out, prefix, prefixlen, fd, &m) || fsync(out) < 0)
  {
    e = errno ;
    close(out) ;
    unlink(tmp.s) ;
    errno = e ;
    goto end ;
  }
  /* the sizes go into the name (Dovecot's ",S=" and ",W="): POP3's
     LIST and IMAP's RFC822.SIZE read them there, not from the file */
  /* POP3 and IMAP end a last line that has no LF with a CRLF */
  if (m.bytes && m.last != '\n') m.crlf += 2 ;
  if (!name_with_sizes(&new, &uniq, dir, &m) || (name && !stralloc_copyb(name, new.s + strlen(dir) + 1, new.len - strlen(dir) - 1)))
  {
    e = errno ;
    close(out) ;
    unlink(tmp.s) ;
    errno = e ;
    goto end ;
  }
  if (name) name->len-- ;   /* NUL-terminated, the NUL not counted */
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
