/* yubin-newu: compile <root>/users/assign (qmail-users(5)) into
 * <root>/users/assign.cdb, qmail-newu's job.  See yubin-newu.8 and
 * common/assign.h for the formats.
 *
 * Reads the whole file, checks every line (a bad one: the line number
 * and the reason, nothing written, exit 100), writes assign.cdb.tmp,
 * fsyncs it, renames it over assign.cdb, fsyncs users/.  Readers see
 * the old table or the new one, never a half one. */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <skalibs/bytestr.h>
#include <skalibs/cdbmake.h>
#include <skalibs/djbunix.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/types.h>

#include "assign.h"
#include "exitcodes.h"
#include "root.h"

#define USAGE "yubin-newu"
#define dienomem() strerr_diefu1x(EX_TEMP, "allocate memory")

char const *PROG = "yubin-newu" ;

/* As yubin-users does for users.cdb: as root in an instance made by
 * package/setup (libexec/ owned by root, closed to others), the table
 * is root:<libexec's group> 0640, readable by the network daemons and
 * root only; otherwise 0644, owned by whoever runs this. */
static int open_tmp (char const *tmp)
{
  unsigned int mode = 0644 ;
  gid_t gid = 0 ;
  int forced = 0 ;
  if (!geteuid())
  {
    stralloc fn = STRALLOC_ZERO ;
    struct stat st ;
    if (!yubin_path(&fn, "libexec")) dienomem() ;
    int r = stat(fn.s, &st) ;
    if (r < 0 && errno != ENOENT && errno != ENOTDIR) strerr_diefu2sys(EX_TEMP, "stat ", fn.s) ;
    if (!r && S_ISDIR(st.st_mode) && !st.st_uid && !(st.st_mode & 07))
    {
      forced = 1 ;
      gid = st.st_gid ;
      mode = 0640 ;
    }
    stralloc_free(&fn) ;
  }
  unlink(tmp) ;   /* a stale one from a crash; ours is made new below */
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode) ;
  if (fd < 0) strerr_diefu2sys(EX_TEMP, "create ", tmp) ;
  if (fchmod(fd, mode) < 0) strerr_diefu2sys(EX_TEMP, "chmod ", tmp) ;
  if (forced && fchown(fd, 0, gid) < 0) strerr_diefu2sys(EX_TEMP, "chown ", tmp) ;
  return fd ;
}

int main (int argc, char const *const *argv)
{
  stralloc src = STRALLOC_ZERO, fn = STRALLOC_ZERO, tmp = STRALLOC_ZERO, dir = STRALLOC_ZERO ;
  stralloc key = STRALLOC_ZERO, data = STRALLOC_ZERO ;
  char wild[256] ;
  size_t nwild = 0 ;
  if (argc > 1) strerr_dieusage(EX_PERM, USAGE) ;
  (void)argv ;

  if (!yubin_path(&fn, "users/assign")) dienomem() ;
  if (!openslurpclose(&src, fn.s)) strerr_diefu2sys(EX_TEMP, "read ", fn.s) ;

  /* every line first: a bad file changes nothing */
  size_t pos = 0 ;
  unsigned long lineno = 0 ;
  int ended = 0 ;
  while (pos < src.len)
  {
    size_t n = byte_chr(src.s + pos, src.len - pos, '\n') ;
    lineno++ ;
    if (n && src.s[pos] == '.') { ended = 1 ; break ; }
    char const *err = 0 ;
    char fmt[ULONG_FMT] ;
    fmt[ulong_fmt(fmt, lineno)] = 0 ;
    if (pos + n >= src.len) strerr_dief4x(EX_PERM, fn.s, " line ", fmt, ": no newline at the end of the line") ;
    int r = assign_parse_line(src.s + pos, n, &key, &data, &err) ;
    if (r < 0) dienomem() ;
    if (!r) strerr_dief5x(EX_PERM, fn.s, " line ", fmt, ": ", err) ;
    pos += n + 1 ;
  }
  if (!ended) strerr_dief2x(EX_PERM, fn.s, ": no final line holding a single dot (qmail-users(5): the file ends with \".\")") ;

  if (!yubin_path(&dir, "users") || !yubin_path(&tmp, "users/assign.cdb.tmp")) dienomem() ;
  fn.len = 0 ;
  if (!yubin_path(&fn, "users/assign.cdb")) dienomem() ;
  int fd = open_tmp(tmp.s) ;
  cdbmaker c = CDBMAKER_ZERO ;
  if (!cdbmake_start(&c, fd)) strerr_diefu2sys(EX_TEMP, "write ", tmp.s) ;
  pos = 0 ;
  for (;;)
  {
    size_t n = byte_chr(src.s + pos, src.len - pos, '\n') ;
    if (n && src.s[pos] == '.') break ;
    char const *err ;
    if (assign_parse_line(src.s + pos, n, &key, &data, &err) <= 0) dienomem() ;
    if (src.s[pos] == '+' && key.len > 1)
    {
      char last = key.s[key.len - 1] ;   /* lowercase already */
      if (byte_chr(wild, nwild, last) == nwild) wild[nwild++] = last ;
    }
    if (!cdbmake_add(&c, key.s, key.len, data.s, data.len)) strerr_diefu2sys(EX_TEMP, "write ", tmp.s) ;
    pos += n + 1 ;
  }
  if (!cdbmake_add(&c, "", 0, wild, nwild) || !cdbmake_finish(&c)) strerr_diefu2sys(EX_TEMP, "write ", tmp.s) ;
  if (fsync(fd) < 0) strerr_diefu2sys(EX_TEMP, "fsync ", tmp.s) ;
  if (close(fd) < 0) strerr_diefu2sys(EX_TEMP, "close ", tmp.s) ;
  if (rename(tmp.s, fn.s) < 0) strerr_diefu4sys(EX_TEMP, "rename ", tmp.s, " to ", fn.s) ;
  fd = open(dir.s, O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (fd < 0 || fsync(fd) < 0) strerr_diefu2sys(EX_TEMP, "fsync ", dir.s) ;
  close(fd) ;
  stralloc_free(&src) ; stralloc_free(&fn) ; stralloc_free(&tmp) ; stralloc_free(&dir) ;
  stralloc_free(&key) ; stralloc_free(&data) ;
  return 0 ;
}
