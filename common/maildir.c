/* Maildir delivery: see maildir.h.
 * A delivery costs two fsyncs: the file, then new/ after the rename (one
 * fsync of new/ per batch with maildir_opt.syncdirs). */

#include <dirent.h>
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

int maildir_unique_for (stralloc *sa, char const *qid, unsigned long rcpt, unsigned long line)
{
  char fmt[ULONG_FMT] ;
  size_t len = strlen(qid), dot = 0 ;
  while (dot < len && qid[dot] != '.') dot++ ;
  if (!dot || dot == len) { errno = EINVAL ; return 0 ; }
  for (size_t i = 0 ; i < len ; i++)
    if (qid[i] != '.' && (qid[i] < '0' || qid[i] > '9')) { errno = EINVAL ; return 0 ; }
  sa->len = 0 ;
  if (!stralloc_catb(sa, qid, dot) || !stralloc_catb(sa, ".Q", 2)) return 0 ;
  for (size_t i = dot + 1 ; i < len ; i++)
    if (!stralloc_catb(sa, qid[i] == '.' ? "P" : qid + i, 1)) return 0 ;
  if (!stralloc_catb(sa, "R", 1) || !stralloc_catb(sa, fmt, ulong_fmt(fmt, rcpt))) return 0 ;
  if (line && (!stralloc_catb(sa, "L", 1) || !stralloc_catb(sa, fmt, ulong_fmt(fmt, line)))) return 0 ;
  if (!stralloc_catb(sa, ".", 1) || !stralloc_cats(sa, maildir_host()) || !stralloc_0(sa)) return 0 ;
  sa->len-- ;
  return 1 ;
}

/* path is NUL-terminated: add it to dirs unless it is there already. */
static int syncdirs_add (stralloc *dirs, char const *path)
{
  size_t len = strlen(path) ;
  for (size_t i = 0 ; i < dirs->len ; i += strlen(dirs->s + i) + 1)
    if (!strcmp(dirs->s + i, path)) return 1 ;
  return stralloc_catb(dirs, path, len + 1) ;
}

int maildir_syncdirs (stralloc const *dirs)
{
  int ok = 1, e = 0 ;
  for (size_t i = 0 ; i < dirs->len ; i += strlen(dirs->s + i) + 1)
    if (!sync_dir(dirs->s + i)) { ok = 0 ; e = errno ; }
  if (!ok) errno = e ;
  return ok ;
}

/* Look in dir/sub for a name that is uniq followed by nothing, ',' or
 * ':'.  Returns 1 (its name "sub/NAME" in name if name != 0), 0 none, -1
 * error. */
static int find_copy (char const *dir, char const *sub, char const *uniq, size_t ulen, stralloc *name)
{
  stralloc path = STRALLOC_ZERO ;
  int r = -1 ;
  if (!stralloc_cats(&path, dir) || !stralloc_catb(&path, "/", 1) || !stralloc_cats(&path, sub) || !stralloc_0(&path)) goto end ;
  DIR *d = opendir(path.s) ;
  if (!d) goto end ;
  r = 0 ;
  for (;;)
  {
    errno = 0 ;
    struct dirent *de = readdir(d) ;
    if (!de) { if (errno) r = -1 ; break ; }
    if (strncmp(de->d_name, uniq, ulen) || (de->d_name[ulen] && de->d_name[ulen] != ',' && de->d_name[ulen] != ':')) continue ;
    r = 1 ;
    if (name && (!stralloc_copys(name, sub) || !stralloc_catb(name, "/", 1) || !stralloc_cats(name, de->d_name) || !stralloc_0(name))) r = -1 ;
    else if (name) name->len-- ;
    break ;
  }
  {
    int e = errno ;
    closedir(d) ;
    errno = e ;
  }
 end:
  {
    int e = errno ;
    stralloc_free(&path) ;
    errno = e ;
  }
  return r ;
}

/* An earlier copy of uniq in new/ or cur/: 1 (made durable: its
 * directory synced, or added to o->syncdirs), 0 none, -1 error. */
static int earlier_copy (char const *dir, char const *uniq, size_t ulen, stralloc *name, struct maildir_opt *o)
{
  stralloc found = STRALLOC_ZERO, d = STRALLOC_ZERO ;
  int r = find_copy(dir, "new", uniq, ulen, &found) ;
  if (!r) r = find_copy(dir, "cur", uniq, ulen, &found) ;
  if (r == 1)
  {
    /* the earlier attempt may have died before its fsync of new/ */
    if (!stralloc_cats(&d, dir) || !stralloc_catb(&d, "/", 1) || !stralloc_catb(&d, found.s, 3) || !stralloc_0(&d)) r = -1 ;
    else if (o->syncdirs ? !syncdirs_add(o->syncdirs, d.s) : !sync_dir(d.s)) r = -1 ;
    else if (name && !stralloc_copyb(name, found.s, found.len + 1)) r = -1 ;
    else
    {
      if (name) name->len-- ;
      o->found = 1 ;
    }
  }
  int e = errno ;
  stralloc_free(&found) ;
  stralloc_free(&d) ;
  errno = e ;
  return r ;
}

/* Can an unnamed file be linked (through /proc/self/fd)?  Asked once
 * per process: without /proc (a chroot), files are named in tmp/. */
static int proc_fds (void)
{
  static int ok = -1 ;
  if (ok < 0) ok = access("/proc/self/fd", X_OK) == 0 ;
  return ok ;
}

/* Give the unnamed file fd the name path (linkat through /proc, which
 * needs no privilege).  A name made from the queue id that exists
 * already is this delivery's (a second process of an earlier attempt
 * wrote the same message): done, as rename would have replaced it.
 * Returns 1, or 0 (errno). */
static int link_unnamed (int fd, char const *path, int named)
{
  char proc[sizeof("/proc/self/fd/") + INT_FMT] ;
  memcpy(proc, "/proc/self/fd/", sizeof("/proc/self/fd/") - 1) ;
  proc[sizeof("/proc/self/fd/") - 1 + int_fmt(proc + sizeof("/proc/self/fd/") - 1, fd)] = 0 ;
  if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0) return 1 ;
  return named && errno == EEXIST ;
}

int maildir_deliver (char const *dir, char const *prefix, size_t prefixlen, int fd, stralloc *name)
{
  return maildir_deliver_opt(dir, prefix, prefixlen, fd, name, 0) ;
}

int maildir_deliver_opt (char const *dir, char const *prefix, size_t prefixlen, int fd, stralloc *name, struct maildir_opt *o)
{
  stralloc uniq = STRALLOC_ZERO, tmp = STRALLOC_ZERO, new = STRALLOC_ZERO ;
  int ok = 0, e = 0 ;
  int named = o && o->qid ;
  if (o) o->found = 0 ;
  if (named ? !maildir_unique_for(&uniq, o->qid, o->rcpt, o->line) : !maildir_unique(&uniq)) goto end ;
  if (named && o->check)
  {
    int r = earlier_copy(dir, uniq.s, uniq.len, name, o) ;
    if (r < 0) goto end ;
    if (r) { ok = 1 ; goto end ; }
  }
  if (!stralloc_cats(&tmp, dir) || !stralloc_cats(&tmp, "/tmp")) goto end ;
  struct msgsize m = { .bytes = 0, .crlf = 0, .last = 0 } ;
  /* a file with no name in tmp/, linked into new/ once complete and
     synced: the Maildir rule (never a partial file in new/) with one
     directory entry made instead of two and one removed */
  size_t tmpdirlen = tmp.len ;
  if (!stralloc_0(&tmp)) goto end ;
  int out = proc_fds() ? open(tmp.s, O_WRONLY | O_TMPFILE | O_CLOEXEC, 0600) : -1 ;
  int unnamed = out >= 0 ;
  if (!unnamed)
  {
    /* a file system without O_TMPFILE: tmp/NAME, renamed */
    tmp.len = tmpdirlen ;
    if (!stralloc_catb(&tmp, "/", 1) || !stralloc_catb(&tmp, uniq.s, uniq.len) || !stralloc_0(&tmp)) goto end ;
    out = open(tmp.s, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600) ;
    /* a name made from the queue id: a stale file of a killed attempt */
    if (out < 0 && named && errno == EEXIST && unlink(tmp.s) == 0)
      out = open(tmp.s, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600) ;
  }
  if (out < 0) goto end ;
  if (!copy_message(out, prefix, prefixlen, fd, &m) || fsync(out) < 0)
  {
    e = errno ;
    close(out) ;
    if (!unnamed) unlink(tmp.s) ;
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
    if (!unnamed) unlink(tmp.s) ;
    errno = e ;
    goto end ;
  }
  if (name) name->len-- ;   /* NUL-terminated, the NUL not counted */
  if (unnamed ? !link_unnamed(out, new.s, named) : rename(tmp.s, new.s) < 0)
  {
    e = errno ;
    close(out) ;
    if (!unnamed) unlink(tmp.s) ;
    errno = e ;
    goto end ;
  }
  if (close(out) < 0) goto end ;
  /* new.s is ".../new/NAME": sync the directory ".../new" */
  new.s[new.len - 1 - uniq.len - 1] = 0 ;
  if (o && o->syncdirs)
  {
    /* the caller syncs new/ once for its batch, before it claims success */
    if (!syncdirs_add(o->syncdirs, new.s)) goto end ;
  }
  else if (!sync_dir(new.s))
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
