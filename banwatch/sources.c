/* yubin-banwatch: where lines come from.  stdin, and log files followed
 * with inotify across rotation (a renamed or deleted file is read until
 * it stops growing, ROTATE_GRACE) and truncation (size, and the last
 * bytes read, checked); a directory that does not exist yet is retried.
 * Positions (device, inode, offset per file) are saved to
 * <confdir>/positions, so a restart loses no line and reads none twice.
 * The inotify descriptor also watches the rules of tcprules actions. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include <skalibs/djbunix.h>
#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>

#include "exitcodes.h"
#include "ylog.h"
#include "banwatch/banwatch.h"

#define ROTATE_GRACE 30000
#define DIR_RETRY 5000
#define POS_SAVE 5000

typedef struct src_s src ;
struct src_s
{
  char const *path ;        /* absolute; "-" is stdin */
  char *dir ;
  char const *base ;
  uint16_t jl[MAXJAILS] ;
  size_t njl ;
  int fd, wd ;              /* the file at path */
  dev_t dev ;
  ino_t ino ;
  uint64_t off ;            /* bytes read from fd */
  reader r ;
  char tail[TAILN] ;
  size_t taillen ;
  int ofd, owd ;            /* the file before the last rotation */
  reader ro ;
  int64_t odeadline ;
  int dirwd ;
  int want, owant, recheck ;
  uint64_t nrot, ntrunc ;
} ;

static genalloc srcs = GENALLOC_ZERO ;   /* src */
#define SRC(i) (genalloc_s(src, &srcs) + (i))
static int ifd = -1 ;
static int64_t dirretry_at = -1 ;
static int64_t possave_at = -1 ;
static char *pos_path ;
static int stdin_src = -1 ;   /* index of the "-" source, if any */

typedef struct savedpos_s savedpos ;
struct savedpos_s { char *path ; uint64_t dev, ino, off ; int skip ; } ;
static genalloc savedpos_list = GENALLOC_ZERO ;   /* savedpos */

void positions_load (void)
{
  stralloc sa = STRALLOC_ZERO ;
  pos_path = confpath("positions") ;
  if (!openslurpclose(&sa, pos_path))
  {
    if (errno == ENOENT) return ;
    strerr_diefu2sys(EX_TEMP, "read ", pos_path) ;
  }
  if (!stralloc_0(&sa)) strerr_diefu1sys(EX_TEMP, "read positions") ;
  for (char *p = sa.s ; *p ; )
  {
    char *nl = strchr(p, '\n') ;
    if (!nl) break ;
    *nl = 0 ;
    savedpos sp ;
    unsigned long long dev, ino, off ;
    int skip, n = 0 ;
    if (sscanf(p, "%llu %llu %llu %d %n", &dev, &ino, &off, &skip, &n) == 4 && n && p[n] == '/')
    {
      sp.path = strdup(p + n) ;
      sp.dev = dev ; sp.ino = ino ; sp.off = off ; sp.skip = !!skip ;
      if (!sp.path || !genalloc_append(savedpos, &savedpos_list, &sp)) strerr_diefu1sys(EX_TEMP, "read positions") ;
    }
    p = nl + 1 ;
  }
  stralloc_free(&sa) ;
}

void positions_save (void)
{
  stralloc sa = STRALLOC_ZERO ;
  int ok = 1 ;
  for (size_t i = 0 ; ok && i < genalloc_len(src, &srcs) ; i++)
  {
    src const *s = SRC(i) ;
    char tmp[96] ;
    if (s->fd < 0 || !strcmp(s->path, "-")) continue ;
    snprintf(tmp, sizeof tmp, "%llu %llu %llu %d ", (unsigned long long)s->dev, (unsigned long long)s->ino,
      (unsigned long long)(s->off - s->r.len), s->r.skipping) ;
    ok = stralloc_cats(&sa, tmp) && stralloc_cats(&sa, s->path) && stralloc_catb(&sa, "\n", 1) ;
  }
  if (!ok || !openwritenclose_suffix(pos_path, sa.s ? sa.s : "", sa.len, ".tmp"))
    strerr_warnwu2sys("write ", pos_path) ;
  stralloc_free(&sa) ;
  possave_at = -1 ;
}

static void positions_dirty (void)
{
  if (possave_at < 0) possave_at = state.now + POS_SAVE ;
}

static int watch_fd (int fd, uint32_t mask)
{
  char p[64] ;
  snprintf(p, sizeof p, "/proc/self/fd/%d", fd) ;
  return inotify_add_watch(ifd, p, mask) ;
}

static void src_watchdir (src *s)
{
  s->dirwd = inotify_add_watch(ifd, s->dir, IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM | IN_ONLYDIR) ;
  if (s->dirwd < 0)
  {
    if (errno != ENOENT && errno != ENOTDIR) strerr_warnwu2sys("watch ", s->dir) ;
    if (dirretry_at < 0) dirretry_at = state.now + DIR_RETRY ;
  }
}

static void src_attach (src *s, int fd, struct stat const *st, uint64_t off, int skip)
{
  s->fd = fd ;
  s->dev = st->st_dev ; s->ino = st->st_ino ;
  s->off = off ;
  s->taillen = 0 ;
  s->r.len = 0 ; s->r.skipping = skip ;
  if (off && lseek(fd, (off_t)off, SEEK_SET) < 0) { s->off = 0 ; s->r.skipping = 0 ; }
  s->wd = watch_fd(fd, IN_MODIFY | IN_MOVE_SELF | IN_DELETE_SELF) ;
  if (s->wd < 0) strerr_warnwu2sys("watch ", s->path) ;
  positions_dirty() ;
}

static void src_read (src *s)
{
  struct stat st ;
  int eof ;
  if (s->fd < 0) return ;
  if (fstat(s->fd, &st) < 0) { strerr_warnwu2sys("stat ", s->path) ; return ; }
  int trunc = (uint64_t)st.st_size < s->off ;
  if (!trunc && s->taillen && s->off >= s->taillen)
  {
    char buf[TAILN] ;
    ssize_t r = pread(s->fd, buf, s->taillen, (off_t)(s->off - s->taillen)) ;
    trunc = r != (ssize_t)s->taillen || memcmp(buf, s->tail, s->taillen) ;
  }
  if (trunc)
  {
    ylog("truncated", "path", s->path, (char *)0) ;
    s->ntrunc++ ;
    if (lseek(s->fd, 0, SEEK_SET) < 0) { strerr_warnwu2sys("seek in ", s->path) ; return ; }
    s->off = 0 ; s->taillen = 0 ; s->r.len = 0 ; s->r.skipping = 0 ;
  }
  ssize_t got = reader_fill(&s->r, s->fd, s->jl, s->njl, &eof, s->tail, &s->taillen) ;
  if (got < 0) { strerr_warnwu2sys("read ", s->path) ; return ; }
  if (got) { s->off += got ; positions_dirty() ; }
}

static void src_read_old (src *s)
{
  int eof ;
  if (s->ofd < 0) return ;
  if (reader_fill(&s->ro, s->ofd, s->jl, s->njl, &eof, 0, 0) < 0) strerr_warnwu2sys("read the rotated ", s->path) ;
}

static void src_close_old (src *s)
{
  if (s->ofd < 0) return ;
  src_read_old(s) ;
  reader_finish(&s->ro, s->jl, s->njl) ;
  if (s->owd >= 0) inotify_rm_watch(ifd, s->owd) ;
  fd_close(s->ofd) ;
  s->ofd = s->owd = -1 ;
  s->odeadline = -1 ;
}

/* the file at path is gone or replaced: keep reading the old one for a while */
static void src_retire (src *s)
{
  if (s->fd < 0) return ;
  src_read(s) ;
  src_close_old(s) ;
  reader t = s->ro ;
  s->ro = s->r ; s->r = t ;
  s->ofd = s->fd ; s->owd = s->wd ;
  s->odeadline = state.now + ROTATE_GRACE ;
  s->fd = s->wd = -1 ;
  s->nrot++ ;
  ylog("rotated", "path", s->path, (char *)0) ;
}

/* lines written to a file that was rotated while we were not running */
static void src_drain_lost (src *s, savedpos const *sp)
{
  DIR *d = opendir(s->dir) ;
  if (!d) return ;
  for (;;)
  {
    errno = 0 ;
    struct dirent *e = readdir(d) ;
    if (!e) break ;
    if ((uint64_t)e->d_ino != sp->ino) continue ;
    stralloc fn = STRALLOC_ZERO ;
    struct stat st ;
    if (!stralloc_cats(&fn, s->dir) || !stralloc_cats(&fn, "/") || !stralloc_cats(&fn, e->d_name) || !stralloc_0(&fn)) break ;
    int fd = open2(fn.s, O_RDONLY | O_NONBLOCK | O_CLOEXEC) ;
    if (fd >= 0 && !fstat(fd, &st) && (uint64_t)st.st_dev == sp->dev && (uint64_t)st.st_ino == sp->ino
     && (uint64_t)st.st_size > sp->off && lseek(fd, (off_t)sp->off, SEEK_SET) >= 0)
    {
      reader r ;
      int eof ;
      reader_init(&r) ;
      r.skipping = sp->skip ;
      if (reader_fill(&r, fd, s->jl, s->njl, &eof, 0, 0) < 0) strerr_warnwu2sys("read ", fn.s) ;
      reader_finish(&r, s->jl, s->njl) ;
      reader_free(&r) ;
    }
    if (fd >= 0) fd_close(fd) ;
    stralloc_free(&fn) ;
    break ;
  }
  closedir(d) ;
}

/* is the file at path still the one we read? */
static void src_check (src *s)
{
  struct stat st ;
  if (stat(s->path, &st) < 0)
  {
    if (errno != ENOENT && errno != ENOTDIR) strerr_warnwu2sys("stat ", s->path) ;
    src_retire(s) ;
    return ;
  }
  if (s->fd >= 0 && st.st_dev == s->dev && st.st_ino == s->ino) return ;
  int fd = open2(s->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC) ;
  if (fd < 0) { if (errno != ENOENT) strerr_warnwu2sys("open ", s->path) ; return ; }
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
  {
    strerr_warnw("not a regular file: ", s->path) ;
    fd_close(fd) ;
    return ;
  }
  src_retire(s) ;
  src_attach(s, fd, &st, 0, 0) ;
  src_read(s) ;
}

static void src_open_first (src *s)
{
  struct stat st ;
  savedpos const *sp = 0 ;
  for (size_t i = 0 ; i < genalloc_len(savedpos, &savedpos_list) ; i++)
    if (!strcmp(genalloc_s(savedpos, &savedpos_list)[i].path, s->path)) sp = genalloc_s(savedpos, &savedpos_list) + i ;
  int fd = open2(s->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC) ;
  if (fd < 0)
  {
    if (errno != ENOENT && errno != ENOTDIR) strerr_warnwu2sys("open ", s->path) ;
    if (sp) src_drain_lost(s, sp) ;
    return ;
  }
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
  {
    strerr_warnw("not a regular file: ", s->path) ;
    fd_close(fd) ;
    return ;
  }
  uint64_t off = 0 ;
  int skip = 0 ;
  if (sp && sp->dev == (uint64_t)st.st_dev && sp->ino == (uint64_t)st.st_ino)
  {
    if (sp->off <= (uint64_t)st.st_size) { off = sp->off ; skip = sp->skip ; }
  }
  else if (sp) src_drain_lost(s, sp) ;
  else if (conf.start_at_end && st.st_size > 0)
  {
    char c ;
    off = st.st_size ;
    /* starting inside a line: skip to its end */
    if (pread(fd, &c, 1, st.st_size - 1) == 1 && c != '\n') skip = 1 ;
  }
  src_attach(s, fd, &st, off, skip) ;
  src_read(s) ;
}

static src *src_get (char const *path)
{
  for (size_t i = 0 ; i < genalloc_len(src, &srcs) ; i++)
    if (!strcmp(SRC(i)->path, path)) return SRC(i) ;
  src z ;
  memset(&z, 0, sizeof z) ;
  z.path = path ;
  z.fd = z.wd = z.ofd = z.owd = z.dirwd = -1 ;
  z.odeadline = -1 ;
  if (strcmp(path, "-"))
  {
    char const *slash = strrchr(path, '/') ;
    z.dir = strndup(path, slash == path ? 1 : (size_t)(slash - path)) ;
    z.base = slash + 1 ;
    if (!z.dir) strerr_diefu1sys(EX_TEMP, "set up sources") ;
    if (!*z.base) strerr_dief(EX_PERM, "logpath is a directory: ", path) ;
  }
  if (!genalloc_append(src, &srcs, &z)) strerr_diefu1sys(EX_TEMP, "set up sources") ;
  return SRC(genalloc_len(src, &srcs) - 1) ;
}

static void actions_watch (void) ;

void sources_setup (void)
{
  for (size_t i = 0 ; i < genalloc_len(jail, &conf.jails) ; i++)
  {
    jail const *j = JAIL(i) ;
    for (size_t k = 0 ; k < genalloc_len(char *, &j->logpaths) ; k++)
    {
      src *s = src_get(genalloc_s(char *, &j->logpaths)[k]) ;
      s->jl[s->njl++] = i ;
    }
  }
  ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC) ;
  if (ifd < 0) strerr_diefu1sys(EX_TEMP, "inotify_init1") ;
  actions_watch() ;
  for (size_t i = 0 ; i < genalloc_len(src, &srcs) ; i++)
  {
    src *s = SRC(i) ;
    reader_init(&s->r) ;
    reader_init(&s->ro) ;
    if (!strcmp(s->path, "-"))
    {
      s->fd = 0 ;
      if (ndelay_on(0) < 0) strerr_diefu1sys(EX_TEMP, "make stdin non-blocking") ;
      continue ;
    }
    src_watchdir(s) ;
    src_open_first(s) ;
  }
  for (size_t i = 0 ; i < genalloc_len(src, &srcs) ; i++)
    if (!strcmp(SRC(i)->path, "-")) stdin_src = i ;
}

/* the operator's rules of a tcprules action: rebuild when they change */
static void actions_watch (void)
{
  for (size_t i = 0 ; i < genalloc_len(action, &conf.actions) ; i++)
  {
    action *a = ACTION(i) ;
    a->basewd = -1 ;
    if (a->type != A_TCPRULES || !a->base) continue ;
    char *dir = strdup(a->base), *slash = strrchr(dir ? dir : "", '/') ;
    if (!dir) strerr_diefu1sys(EX_TEMP, "watch rules") ;
    if (slash) *(slash == dir ? slash + 1 : slash) = 0 ;
    a->basewd = inotify_add_watch(ifd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ONLYDIR) ;
    if (a->basewd < 0) strerr_warnwu2sys("watch ", dir) ;
    free(dir) ;
  }
}

static void sources_event (struct inotify_event const *ev)
{
  for (size_t i = 0 ; i < genalloc_len(action, &conf.actions) ; i++)
  {
    action *a = ACTION(i) ;
    if (a->type == A_TCPRULES && a->basewd >= 0 && ev->wd == a->basewd && ev->len
     && !strcmp(ev->name, strrchr(a->base, '/') + 1)) a->dirty = 1 ;
  }
  for (size_t i = 0 ; i < genalloc_len(src, &srcs) ; i++)
  {
    src *s = SRC(i) ;
    if (!strcmp(s->path, "-")) continue ;
    if (ev->mask & IN_Q_OVERFLOW) { s->want = s->owant = s->recheck = 1 ; continue ; }
    if (ev->wd == s->wd && s->fd >= 0)
    {
      if (ev->mask & IN_MODIFY) s->want = 1 ;
      if (ev->mask & (IN_MOVE_SELF | IN_DELETE_SELF)) s->want = s->recheck = 1 ;
      if (ev->mask & IN_IGNORED) s->wd = -1 ;
    }
    if (ev->wd == s->owd && s->ofd >= 0)
    {
      if (ev->mask & IN_MODIFY) s->owant = 1 ;
      if (ev->mask & IN_IGNORED) s->owd = -1 ;
    }
    if (ev->wd == s->dirwd)
    {
      if (ev->mask & IN_IGNORED) { s->dirwd = -1 ; if (dirretry_at < 0) dirretry_at = state.now + DIR_RETRY ; }
      else if (ev->len && !strcmp(ev->name, s->base)) s->recheck = 1 ;
    }
  }
}

void sources_inotify (void)
{
  char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event)))) ;
  for (;;)
  {
    ssize_t r = read(ifd, buf, sizeof buf) ;
    if (r < 0)
    {
      if (errno == EINTR) continue ;
      if (errno == EAGAIN) break ;
      strerr_diefu1sys(EX_TEMP, "read inotify events") ;
    }
    if (!r) break ;
    for (char *p = buf ; p < buf + r ; )
    {
      struct inotify_event const *ev = (struct inotify_event const *)p ;
      sources_event(ev) ;
      p += sizeof(struct inotify_event) + ev->len ;
    }
  }
  for (size_t i = 0 ; i < genalloc_len(src, &srcs) ; i++)
  {
    src *s = SRC(i) ;
    if (s->owant) { s->owant = 0 ; src_read_old(s) ; }
    if (s->want) { s->want = 0 ; src_read(s) ; }
    if (s->recheck) { s->recheck = 0 ; src_check(s) ; }
  }
}

/* timers: positions to save, rotated files past their grace, directories
 * that did not exist */
int64_t sources_timers (void)
{
  int64_t next = -1 ;
  if (possave_at >= 0 && state.now >= possave_at) positions_save() ;
  if (dirretry_at >= 0 && state.now >= dirretry_at)
  {
    dirretry_at = -1 ;
    for (size_t i = 0 ; i < genalloc_len(src, &srcs) ; i++)
    {
      src *s = SRC(i) ;
      if (!strcmp(s->path, "-") || s->dirwd >= 0) continue ;
      src_watchdir(s) ;
      if (s->dirwd >= 0) src_check(s) ;
    }
  }
  if (dirretry_at >= 0) next = dirretry_at ;
  for (size_t i = 0 ; i < genalloc_len(src, &srcs) ; i++)
  {
    src *s = SRC(i) ;
    if (s->ofd < 0) continue ;
    if (state.now >= s->odeadline) { src_close_old(s) ; continue ; }
    if (next < 0 || s->odeadline < next) next = s->odeadline ;
  }
  if (possave_at >= 0 && (next < 0 || possave_at < next)) next = possave_at ;
  return next ;
}

int sources_inotify_fd (void)
{
  return ifd ;
}

/* SIGHUP: look at every file again */
void sources_hup (void)
{
  for (size_t i = 0 ; i < genalloc_len(src, &srcs) ; i++)
    if (strcmp(SRC(i)->path, "-")) { SRC(i)->want = SRC(i)->recheck = 1 ; }
  sources_inotify() ;
}

int sources_stdin_open (void)
{
  return stdin_src >= 0 && SRC(stdin_src)->fd >= 0 ;
}

/* stdin is readable: its lines, and at its end /dev/null in its place */
void sources_stdin_read (void)
{
  src *s = SRC(stdin_src) ;
  int eof ;
  if (reader_fill(&s->r, 0, s->jl, s->njl, &eof, 0, 0) < 0) eof = 1 ;
  if (eof)
  {
    reader_finish(&s->r, s->jl, s->njl) ;
    fd_close(0) ;
    if (open("/dev/null", O_RDONLY) != 0) strerr_diefu1sys(EX_TEMP, "open /dev/null as stdin") ;
    s->fd = -1 ;
  }
}

/* at stop: rotated files read to their end, positions saved */
void sources_stop (void)
{
  for (size_t i = 0 ; i < genalloc_len(src, &srcs) ; i++) src_close_old(SRC(i)) ;
  positions_save() ;
}

void sources_stats (stralloc *o)
{
  for (size_t i = 0 ; i < genalloc_len(src, &srcs) ; i++)
  {
    src const *s = SRC(i) ;
    cat_fmt(o, "source %s open=%d offset=%llu rotations=%llu truncations=%llu\n", s->path, s->fd >= 0,
      (unsigned long long)s->off, (unsigned long long)s->nrot, (unsigned long long)s->ntrunc) ;
  }
}
