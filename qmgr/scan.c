/* yubin-qmgr's queue directories: see scan.h. */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <skalibs/djbunix.h>
#include <skalibs/strerr.h>

#include "exitcodes.h"
#include "ylog.h"
#include "qmgr/queue.h"
#include "qmgr/scan.h"

static void logerr (char const *op, char const *id)
{
  ylog("error", "op", op, "id", id, "errno", strerror(errno), (char *)0) ;
}

static int opendirat (int qfd, char const *name)
{
  if (mkdirat(qfd, name, 0700) < 0 && errno != EEXIST) strerr_diefu2sys(EX_TEMP, "mkdir queue/", name) ;
  int fd = openat(qfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (fd < 0) strerr_diefu2sys(EX_TEMP, "open queue/", name) ;
  return fd ;
}

void scan_open (struct scan *s, int qfd)
{
  s->qfd = qfd ;
  s->curfd = opendirat(qfd, "cur") ;
  s->newfd = opendirat(qfd, "new") ;
  s->envfd = opendirat(qfd, "env") ;
  fd_close(opendirat(qfd, "tmp")) ;
  s->cur = 0 ;
  s->wanted = 1 ;
}

void scan_start (struct scan *s)
{
  int fd = dup(s->curfd) ;
  if (fd < 0 || !(s->cur = fdopendir(fd))) strerr_diefu1sys(EX_TEMP, "open cur/") ;
}

int scan_pending (struct scan const *s)
{
  return s->cur || s->wanted ;
}

unsigned int scan_intake (struct scan *s, unsigned int max, void (*take) (char const *id, int recovered))
{
  unsigned int n = 0 ;
  struct dirent *d ;
  if (s->cur)
  {
    while (n < max)
    {
      errno = 0 ;
      d = readdir(s->cur) ;
      if (!d)
      {
        if (errno) strerr_diefu1sys(EX_TEMP, "read cur/") ;
        closedir(s->cur) ;
        s->cur = 0 ;
        break ;
      }
      if (!queue_id_valid(d->d_name)) continue ;
      take(d->d_name, 1) ;
      n++ ;
    }
    return n ;
  }
  if (!s->wanted) return 0 ;
  int fd = dup(s->newfd) ;
  if (fd < 0) { logerr("dup", "-") ; return 0 ; }
  DIR *dir = fdopendir(fd) ;
  if (!dir) { fd_close(fd) ; logerr("opendir new/", "-") ; return 0 ; }
  rewinddir(dir) ;
  while (n < max)
  {
    errno = 0 ;
    d = readdir(dir) ;
    if (!d)
    {
      if (errno) logerr("readdir new/", "-") ;
      s->wanted = 0 ;
      break ;
    }
    if (!queue_id_valid(d->d_name)) continue ;
    /* Not synced: after a crash the file is in new/ or in cur/, both are
       scanned at start. */
    if (renameat(s->newfd, d->d_name, s->curfd, d->d_name) < 0)
    {
      if (errno == ENOENT) continue ;
      logerr("rename new/ to cur/", d->d_name) ;
      s->wanted = 0 ;   /* try again on the next wake-up, not in a loop */
      break ;
    }
    take(d->d_name, 0) ;
    n++ ;
  }
  closedir(dir) ;
  return n ;
}

void scan_clean (struct scan const *s, time_t now, time_t stale)
{
  static char const *const dirs[2] = { "tmp", "env" } ;
  for (unsigned int k = 0 ; k < 2 ; k++)
  {
    int fd = openat(s->qfd, dirs[k], O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
    if (fd < 0) { logerr("open for cleaning", dirs[k]) ; continue ; }
    DIR *dir = fdopendir(fd) ;
    if (!dir) { fd_close(fd) ; logerr("opendir for cleaning", dirs[k]) ; continue ; }
    struct dirent *d ;
    while ((d = readdir(dir)))
    {
      struct stat st ;
      if (d->d_name[0] == '.') continue ;
      if (fstatat(fd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) continue ;
      if (st.st_mtime + stale > now) continue ;
      if (k == 1 && (!fstatat(s->curfd, d->d_name, &st, 0) || !fstatat(s->newfd, d->d_name, &st, 0))) continue ;
      if (unlinkat(fd, d->d_name, 0) < 0) logerr("unlink stale", d->d_name) ;
      else ylog("clean", "file", dirs[k], "id", d->d_name, (char *)0) ;
    }
    closedir(dir) ;
  }
}

void scan_close (struct scan *s)
{
  if (s->cur) closedir(s->cur) ;
  s->cur = 0 ;
}
