/* yubin-users: manage the users of an instance (<root>/users/passwd and
 * users.cdb, format in users.h).  See yubin-users.8.
 *
 *   yubin-users add NAME [ -u uid ] [ -g gid ] [ -d home ] [ -p | -r ]
 *   yubin-users del NAME
 *   yubin-users passwd NAME [ -r ]
 *   yubin-users list
 *   yubin-users rebuild
 *
 * Every change: lock users/passwd.lock, read passwd, build the new passwd
 * text, parse it back (so what we write is what we accept), write
 * passwd.tmp and users.cdb.tmp, fsync both, rename both, fsync users/. */

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/buffer.h>
#include <skalibs/bytestr.h>
#include <skalibs/cdbmake.h>
#include <skalibs/djbunix.h>
#include <skalibs/genalloc.h>
#include <skalibs/random.h>
#include <skalibs/sgetopt.h>
#include <skalibs/skamisc.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/types.h>

#include "exitcodes.h"
#include "passwd.h"
#include "password.h"
#include "root.h"

#define USAGE "yubin-users add NAME [ -u uid ] [ -g gid ] [ -d home ] [ -p | -r ] | del NAME | passwd NAME [ -r ] | list | rebuild"
#define dieusage() strerr_dieusage(EX_PERM, USAGE)
#define dienomem() strerr_diefu(EX_TEMP, "allocate memory")

#define PASSWORD_MAX 1024
#define RANDOM_PASSWORD_LEN 22

char const *PROG = "yubin-users" ;

static stralloc users_dir = STRALLOC_ZERO ;   /* <root>/users */

/* Paths under users/: built once. */
static char const *upath (stralloc *sa, char const *file)
{
  sa->len = 0 ;
  if (!stralloc_catb(sa, users_dir.s, users_dir.len)
   || !stralloc_catb(sa, "/", 1)
   || !stralloc_cats(sa, file)
   || !stralloc_0(sa)) dienomem() ;
  return sa->s ;
}

static void check_name (char const *name)
{
  char const *why = passwd_name_problem(name, strlen(name)) ;
  if (why) strerr_dief(EX_PERM, "invalid user name \"", name, "\": ", why) ;
}

/* Parse passwd text into entries.  Comments ('#' first) and blank lines
 * are kept in the text but not in the list.  On a bad line: returns 0
 * with *lineno set and *why the reason. */
static int parse_passwd (char const *s, size_t len, genalloc *list, unsigned int *lineno, char const **why)
{
  size_t pos = 0 ;
  unsigned int n = 0 ;
  genalloc_setlen(struct passwd_entry, list, 0) ;
  while (pos < len)
  {
    struct passwd_entry e ;
    *lineno = ++n ;
    int r = passwd_parse_line(s, len, pos, &e, why) ;
    if (r < 0) return 0 ;
    pos += e.linelen + 1 ;
    if (!r) continue ;
    for (size_t i = 0 ; i < genalloc_len(struct passwd_entry, list) ; i++)
    {
      struct passwd_entry const *o = genalloc_s(struct passwd_entry, list) + i ;
      if (o->namelen == e.namelen && case_equalb(s + o->name, e.namelen, s + e.name))
      { *why = "duplicate user name" ; return 0 ; }
    }
    if (!genalloc_append(struct passwd_entry, list, &e)) dienomem() ;
  }
  return 1 ;
}

/* Index of the entry for name (exact, names are lowercase), or -1. */
static ssize_t find_entry (char const *s, genalloc const *list, char const *name)
{
  size_t len = strlen(name) ;
  for (size_t i = 0 ; i < genalloc_len(struct passwd_entry, list) ; i++)
  {
    struct passwd_entry const *e = genalloc_s(struct passwd_entry, list) + i ;
    if (e->namelen == len && case_equalb(s + e->name, len, name)) return i ;
  }
  return -1 ;
}

static void read_passwd (stralloc *text, genalloc *list)
{
  stralloc fn = STRALLOC_ZERO ;
  unsigned int lineno = 0 ;
  char const *why = 0 ;
  text->len = 0 ;
  if (!stralloc_ready(text, 1)) dienomem() ;  /* never a null text->s */
  if (!openslurpclose(text, upath(&fn, "passwd")) && errno != ENOENT)
    strerr_diefusys(EX_TEMP, "read ", fn.s) ;
  if (!parse_passwd(text->s, text->len, list, &lineno, &why))
  {
    char fmt[UINT_FMT] ;
    fmt[uint_fmt(fmt, lineno)] = 0 ;
    strerr_dief(EX_TEMP, fn.s, " line ", fmt, ": ", why) ;
  }
  stralloc_free(&fn) ;
}

/* Owner and mode of an existing file, to keep them when it is rewritten. */
static int old_stat (char const *fn, struct stat *st)
{
  if (stat(fn, st) < 0)
  {
    if (errno == ENOENT) return 0 ;
    strerr_diefusys(EX_TEMP, "stat ", fn) ;
  }
  return 1 ;
}

/* The ownership an instance wants for a file of users/, found from how
 * package/setup installed it, so that the files are right whoever made
 * them first (root with a umask, an operator's editor...):
 *   passwd     root:G 0640, G the group that libexec/yubin-checkpassword
 *              is setgid to (only it reads the hashes);
 *   users.cdb  root:G 0640, G the group of libexec/ (the daemon users:
 *              only they, and root, run the look-ups).
 * Returns 1 with *gid set, or 0 when the instance has no such program or
 * directory (an instance of an ordinary user, or programs run from the
 * build): then the file keeps what it has. */
static int instance_group (char const *what, gid_t *gid)
{
  stralloc fn = STRALLOC_ZERO ;
  struct stat st ;
  if (!yubin_path(&fn, what)) dienomem() ;
  int r = stat(fn.s, &st) ;
  if (r < 0 && errno != ENOENT) strerr_diefusys(EX_TEMP, "stat ", fn.s) ;
  stralloc_free(&fn) ;
  if (r < 0 || st.st_uid) return 0 ;
  if (S_ISDIR(st.st_mode) ? (st.st_mode & 07) : !(st.st_mode & S_ISGID)) return 0 ;
  *gid = st.st_gid ;
  return 1 ;
}

/* Open fn.tmp for writing.  As root in an instance made by package/setup:
   root:<the instance's group for it> 0640 (instance_group).  Otherwise
   owned like fn (when root); a new file gets mode; an existing one keeps
   its mode within keep (never more than that). */
static int open_tmp (char const *fn, char const *tmp, unsigned int mode, unsigned int keep, char const *groupfrom)
{
  struct stat st ;
  gid_t gid ;
  int old = old_stat(fn, &st) ;
  int root = !geteuid() ;
  int forced = root && instance_group(groupfrom, &gid) ;
  if (forced) { mode = 0640 ; st.st_uid = 0 ; st.st_gid = gid ; }
  else if (old) mode = st.st_mode & keep ;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode) ;
  if (fd < 0) strerr_diefusys(EX_TEMP, "create ", tmp) ;
  if (fchmod(fd, mode) < 0) strerr_diefusys(EX_TEMP, "chmod ", tmp) ;
  if (root && (old || forced) && fchown(fd, st.st_uid, st.st_gid) < 0)
    strerr_diefusys(EX_TEMP, "chown ", tmp) ;
  return fd ;
}

static void finish_tmp (int fd, char const *tmp)
{
  if (fsync(fd) < 0) strerr_diefusys(EX_TEMP, "fsync ", tmp) ;
  if (close(fd) < 0) strerr_diefusys(EX_TEMP, "close ", tmp) ;
}

static void write_cdb_tmp (char const *s, genalloc const *list, char const *fn, char const *tmp)
{
  cdbmaker c = CDBMAKER_ZERO ;
  stralloc val = STRALLOC_ZERO ;
  int fd = open_tmp(fn, tmp, 0644, 0644, "libexec") ;
  if (!cdbmake_start(&c, fd)) strerr_diefusys(EX_TEMP, "write ", tmp) ;
  for (size_t i = 0 ; i < genalloc_len(struct passwd_entry, list) ; i++)
  {
    struct passwd_entry const *e = genalloc_s(struct passwd_entry, list) + i ;
    char key[PASSWD_NAME_MAX] ;
    char fmt[UINT32_FMT] ;
    memcpy(key, s + e->name, e->namelen) ;
    case_lowerb(key, e->namelen) ;
    val.len = 0 ;
    if (!stralloc_catb(&val, fmt, uint32_fmt(fmt, e->uid))
     || !stralloc_catb(&val, ":", 1)
     || !stralloc_catb(&val, fmt, uint32_fmt(fmt, e->gid))
     || !stralloc_catb(&val, ":", 1)
     || !stralloc_catb(&val, s + e->home, e->homelen)) dienomem() ;
    if (!cdbmake_add(&c, key, e->namelen, val.s, val.len)) strerr_diefusys(EX_TEMP, "write ", tmp) ;
  }
  if (!cdbmake_finish(&c)) strerr_diefusys(EX_TEMP, "write ", tmp) ;
  finish_tmp(fd, tmp) ;
  stralloc_free(&val) ;
}

static void sync_users_dir (void)
{
  int fd = open(users_dir.s, O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (fd < 0) strerr_diefusys(EX_TEMP, "open ", users_dir.s) ;
  if (fsync(fd) < 0) strerr_diefusys(EX_TEMP, "fsync ", users_dir.s) ;
  close(fd) ;
}

/* Write the new passwd text (if newtext) and the cdb built from list. */
static void commit (char const *newtext, size_t newlen, char const *cdbsrc, genalloc const *list)
{
  stralloc fn = STRALLOC_ZERO, tmp = STRALLOC_ZERO, cfn = STRALLOC_ZERO, ctmp = STRALLOC_ZERO ;
  upath(&fn, "passwd") ; upath(&tmp, "passwd.tmp") ;
  upath(&cfn, "users.cdb") ; upath(&ctmp, "users.cdb.tmp") ;
  if (newtext)
  {
    int fd = open_tmp(fn.s, tmp.s, 0600, 0640, "libexec/yubin-checkpassword") ;
    if (allwrite(fd, newtext, newlen) < newlen) strerr_diefusys(EX_TEMP, "write ", tmp.s) ;
    finish_tmp(fd, tmp.s) ;
  }
  write_cdb_tmp(cdbsrc, list, cfn.s, ctmp.s) ;
  if (newtext && rename(tmp.s, fn.s) < 0) strerr_diefusys(EX_TEMP, "rename ", tmp.s, " to ", fn.s) ;
  if (rename(ctmp.s, cfn.s) < 0) strerr_diefusys(EX_TEMP, "rename ", ctmp.s, " to ", cfn.s) ;
  sync_users_dir() ;
  stralloc_free(&fn) ; stralloc_free(&tmp) ; stralloc_free(&cfn) ; stralloc_free(&ctmp) ;
}

/* Exclusive lock for the read-modify-write; released at exit. */
static void lock_users (void)
{
  stralloc fn = STRALLOC_ZERO ;
  if (mkdir(users_dir.s, 0755) < 0 && errno != EEXIST) strerr_diefusys(EX_TEMP, "mkdir ", users_dir.s) ;
  int fd = open(upath(&fn, "passwd.lock"), O_RDWR | O_CREAT | O_CLOEXEC, 0600) ;
  if (fd < 0) strerr_diefusys(EX_TEMP, "open ", fn.s) ;
  if (fd_lock(fd, 1, 0) < 1) strerr_diefusys(EX_TEMP, "lock ", fn.s) ;
  stralloc_free(&fn) ;
}

/* Replace entry idx (or append when idx < 0) by line (or drop it when
 * line == 0), giving the new text in out; then parse it back into list. */
static void edit (stralloc const *text, genalloc *list, ssize_t idx, char const *line, size_t linelen, stralloc *out)
{
  size_t cut = text->len, cutlen = 0 ;
  unsigned int lineno ;
  char const *why ;
  if (idx >= 0)
  {
    struct passwd_entry const *e = genalloc_s(struct passwd_entry, list) + idx ;
    cut = e->line ;
    cutlen = e->linelen + (e->line + e->linelen < text->len) ;
  }
  out->len = 0 ;
  if (!stralloc_catb(out, text->s, cut)) dienomem() ;
  if (out->len && out->s[out->len-1] != '\n' && !stralloc_catb(out, "\n", 1)) dienomem() ;
  if (line && (!stralloc_catb(out, line, linelen) || !stralloc_catb(out, "\n", 1))) dienomem() ;
  if (!stralloc_catb(out, text->s + cut + cutlen, text->len - cut - cutlen)) dienomem() ;
  if (!parse_passwd(out->s, out->len, list, &lineno, &why))
    strerr_dief(EX_TEMP, "bug: the new passwd does not parse: ", why) ;
}

/* Password from the first line of stdin (no echo on a terminal). */
static void read_password (stralloc *pw)
{
  struct termios old, quiet ;
  int tty = isatty(0) && !tcgetattr(0, &old) ;
  if (tty)
  {
    quiet = old ;
    quiet.c_lflag &= ~(ECHO | ECHONL) ;
    quiet.c_lflag |= ICANON ;
    if (buffer_putsflush(buffer_2, "password: ") < 0) strerr_diefusys(EX_TEMP, "write to stderr") ;
    if (tcsetattr(0, TCSAFLUSH, &quiet) < 0) strerr_diefusys(EX_TEMP, "turn off echo") ;
  }
  pw->len = 0 ;
  int r = skagetln(buffer_0, pw, '\n') ;
  int e = errno ;
  if (tty)
  {
    tcsetattr(0, TCSAFLUSH, &old) ;
    if (buffer_putsflush(buffer_2, "\n") < 0) strerr_diefusys(EX_TEMP, "write to stderr") ;
  }
  errno = e ;
  if (r < 0 && errno != EPIPE) strerr_diefusys(EX_TEMP, "read password from stdin") ;
  while (pw->len && (pw->s[pw->len-1] == '\n' || pw->s[pw->len-1] == '\r')) pw->len-- ;
  if (!pw->len) strerr_dief(EX_PERM, "empty password on stdin") ;
  if (pw->len > PASSWORD_MAX) strerr_dief(EX_PERM, "password longer than 1024 bytes") ;
  if (memchr(pw->s, 0, pw->len)) strerr_dief(EX_PERM, "NUL byte in password") ;
  if (!stralloc_0(pw)) dienomem() ;
}

static void random_password (stralloc *pw)
{
  static char const alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789" ;
  pw->len = 0 ;
  if (!stralloc_ready(pw, RANDOM_PASSWORD_LEN + 1)) dienomem() ;
  for (unsigned int i = 0 ; i < RANDOM_PASSWORD_LEN ; i++)
    pw->s[i] = alphabet[random_uint32(sizeof(alphabet) - 1)] ;
  pw->len = RANDOM_PASSWORD_LEN ;
  if (!stralloc_0(pw)) dienomem() ;
}

/* mode: 0 no password ("*"), 'p' from stdin, 'r' random (printed) */
static void make_hash (stralloc *hash, int mode)
{
  stralloc pw = STRALLOC_ZERO ;
  hash->len = 0 ;
  if (!mode)
  {
    if (!stralloc_cats(hash, "*")) dienomem() ;
    return ;
  }
  if (mode == 'r') random_password(&pw) ; else read_password(&pw) ;
  if (!password_hash(hash, pw.s)) strerr_diefusys(EX_TEMP, "hash the password") ;
  if (hash->len && !hash->s[hash->len-1]) hash->len-- ;
  if (!hash->len || memchr(hash->s, ':', hash->len) || memchr(hash->s, '\n', hash->len))
    strerr_dief(EX_TEMP, "bug: password_hash gave an unusable string") ;
  if (mode == 'r')
  {
    if (buffer_puts(buffer_1, pw.s) < 0 || buffer_putflush(buffer_1, "\n", 1) < 0)
      strerr_diefusys(EX_TEMP, "write to stdout") ;
  }
  byte_zzero(pw.s, pw.len) ;
  stralloc_free(&pw) ;
}

static void absolute_path (stralloc *sa, char const *path)
{
  sa->len = 0 ;
  if (path[0] != '/')
  {
    if (sagetcwd(sa) < 0) strerr_diefusys(EX_TEMP, "get the current directory") ;
    if (!stralloc_catb(sa, "/", 1)) dienomem() ;
    while (path[0] == '.' && path[1] == '/') { path += 2 ; while (*path == '/') path++ ; }
  }
  if (!stralloc_cats(sa, path)) dienomem() ;
  while (sa->len > 1 && sa->s[sa->len-1] == '/') sa->len-- ;
  if (!stralloc_0(sa)) dienomem() ;
  sa->len-- ;
}

static uid_t parse_uid (char const *s, gid_t *pgid, int *havepgid)
{
  uint32_t u ;
  if (*s && uint32_scan(s, &u) == strlen(s)) return u ;
  errno = 0 ;
  struct passwd *pw = getpwnam(s) ;
  if (!pw)
  {
    if (errno) strerr_diefusys(EX_TEMP, "look up user ", s) ;
    strerr_dief(EX_PERM, "no such system user: ", s) ;
  }
  *pgid = pw->pw_gid ; *havepgid = 1 ;
  return pw->pw_uid ;
}

static gid_t parse_gid (char const *s)
{
  uint32_t u ;
  if (*s && uint32_scan(s, &u) == strlen(s)) return u ;
  errno = 0 ;
  struct group *gr = getgrnam(s) ;
  if (!gr)
  {
    if (errno) strerr_diefusys(EX_TEMP, "look up group ", s) ;
    strerr_dief(EX_PERM, "no such system group: ", s) ;
  }
  return gr->gr_gid ;
}

/* Making a home and its Maildir as root, safely.  The home may lie in a
 * directory that a user controls (an existing home of the same uid, say),
 * so root never acts on a path there: it walks the path one component at
 * a time through directory fds, never follows a symlink in a directory
 * that anyone but root can write, refuses directories that belong to a
 * third uid, and does everything below a directory of the new user's in
 * a child that has become that user.  Run by anyone else, the same walk
 * is done without any change of owner. */

struct walk
{
  int fd ;            /* the directory reached so far */
  int created ;       /* the last component was made by us */
  int parentfd ;      /* its parent, while created (for the fsync) */
} ;

static uid_t home_uid ;
static gid_t home_gid ;

static void fsync_fd (int fd, char const *what)
{
  if (fsync(fd) < 0) strerr_diefusys(EX_TEMP, "fsync ", what) ;
}

/* May root follow a symlink found in the directory fd, or create entries
 * in it without fear of a swap?  Yes if only root can change it: owned by
 * root and writable by no one else, or sticky (/tmp: others can add their
 * own entries but not replace ours). */
static int root_controls (struct stat const *st)
{
  return st->st_uid == 0 && (!(st->st_mode & 022) || (st->st_mode & S_ISVTX)) ;
}

/* Open (or make, with mode) component name in dirfd, a directory, without
 * following a symlink unless follow.  Dies with a message on any trouble. */
static int open_component (int dirfd, char const *name, unsigned int mode, int follow, char const *path, int *created)
{
  *created = 0 ;
  int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW) ;
  int fd = openat(dirfd, name, flags) ;
  if (fd < 0 && errno == ENOENT)
  {
    if (mkdirat(dirfd, name, mode) < 0 && errno != EEXIST) strerr_diefusys(EX_TEMP, "mkdir ", path) ;
    else *created = 1 ;
    fd = openat(dirfd, name, flags) ;
  }
  if (fd < 0)
  {
    if (errno == ELOOP || errno == ENOTDIR)
      strerr_dief(EX_TEMP, path, " is not a directory (or is a symlink where one is not allowed)") ;
    strerr_diefusys(EX_TEMP, "open ", path) ;
  }
  return fd ;
}

/* Become uid:gid for good (in a child). */
static void become_user (void)
{
  if (setgroups(1, &home_gid) < 0 || setresgid(home_gid, home_gid, home_gid) < 0
   || setresuid(home_uid, home_uid, home_uid) < 0)
    strerr_diefusys(EX_TEMP, "become the new user") ;
}

/* Walk path (absolute, modified in place and restored) from w->fd.
 * Parents are made 0755, the last component 0700.  As root, a directory
 * that belongs to the new user ends root's part: the rest is done by
 * walk_as_user in a child.  Returns 1 when the whole path was walked, 0
 * when a child has done the rest (and the Maildir). */
static int walk_home (struct walk *w, char *path, char *from, int asroot) ;
static void make_maildir (struct walk *w, char const *home, int asroot) ;

static void wait_child (pid_t pid, char const *home)
{
  int wstat ;
  if (waitpid_nointr(pid, &wstat, 0) < 0) strerr_diefusys(EX_TEMP, "wait for the child making the home") ;
  if (!WIFEXITED(wstat) || WEXITSTATUS(wstat))
    strerr_dief(EX_TEMP, "unable to make the home ", home, " as the new user") ;
}

static void walk_as_user (struct walk *w, char *path, char *from)
{
  pid_t pid = fork() ;
  if (pid < 0) strerr_diefusys(EX_TEMP, "fork") ;
  if (!pid)
  {
    become_user() ;
    if (walk_home(w, path, from, 0)) make_maildir(w, path, 0) ;
    _exit(0) ;
  }
  wait_child(pid, path) ;
}

static int walk_home (struct walk *w, char *path, char *from, int asroot)
{
  char *p = from ;
  while (*p)
  {
    while (*p == '/') p++ ;
    if (!*p) break ;
    char *end = p ;
    while (*end && *end != '/') end++ ;
    char save = *end ;
    int last = !save || !end[strspn(end, "/")] ;
    struct stat st ;
    if (fstat(w->fd, &st) < 0) strerr_diefusys(EX_TEMP, "stat a parent of ", path) ;
    if (asroot)
    {
      if (st.st_uid == home_uid)
      {
        /* from here on the user could swap things under root: be them */
        walk_as_user(w, path, p) ;
        return 0 ;
      }
      if (!root_controls(&st))
      {
        *end = 0 ;
        strerr_dief(EX_TEMP, "refusing to make ", path, ": a parent belongs to another user or is writable by others") ;
      }
    }
    *end = 0 ;
    if ((end - p == 1 && p[0] == '.') || (end - p == 2 && p[0] == '.' && p[1] == '.'))
      strerr_dief(EX_PERM, "home ", path, " has . or .. in it") ;
    int created ;
    int fd = open_component(w->fd, p, last ? 0700 : 0755, asroot && root_controls(&st), path, &created) ;
    *end = save ;
    if (w->parentfd >= 0) fd_close(w->parentfd) ;
    w->parentfd = created && last ? w->fd : -1 ;
    if (w->parentfd < 0) fd_close(w->fd) ;
    w->fd = fd ;
    w->created = created ;
    p = end ;
  }
  return 1 ;
}

/* The Maildir in the home w->fd (tmp, new, cur), then the fsyncs.  As
 * root (in a home only root can write) what is made is given to the user
 * by fd. */
static void make_maildir (struct walk *w, char const *home, int asroot)
{
  static char const *const sub[] = { "tmp", "new", "cur" } ;
  stralloc what = STRALLOC_ZERO ;
  int created ;
  if (!stralloc_cats(&what, home) || !stralloc_cats(&what, "/Maildir") || !stralloc_0(&what)) dienomem() ;
  size_t mdlen = what.len - 1 ;
  int md = open_component(w->fd, "Maildir", 0700, 0, what.s, &created) ;
  int any = created ;
  if (asroot && created && fchown(md, home_uid, home_gid) < 0) strerr_diefusys(EX_TEMP, "chown ", what.s) ;
  for (unsigned int i = 0 ; i < 3 ; i++)
  {
    what.len = mdlen ;
    if (!stralloc_catb(&what, "/", 1) || !stralloc_cats(&what, sub[i]) || !stralloc_0(&what)) dienomem() ;
    int fd = open_component(md, sub[i], 0700, 0, what.s, &created) ;
    if (asroot && created && fchown(fd, home_uid, home_gid) < 0) strerr_diefusys(EX_TEMP, "chown ", what.s) ;
    any |= created ;
    fd_close(fd) ;
  }
  what.s[mdlen] = 0 ;
  if (any) fsync_fd(md, what.s) ;
  fd_close(md) ;
  if (any || w->created) fsync_fd(w->fd, home) ;
  if (w->parentfd >= 0) fsync_fd(w->parentfd, "the parent of the home") ;
  stralloc_free(&what) ;
}

/* The home is reached: give it to the user if we made it, then make the
 * Maildir, as the user whenever the home is theirs. */
static void finish_home (struct walk *w, char const *home, int asroot)
{
  struct stat st ;
  if (!asroot) { make_maildir(w, home, 0) ; return ; }
  if (w->created && fchown(w->fd, home_uid, home_gid) < 0) strerr_diefusys(EX_TEMP, "chown ", home) ;
  if (fstat(w->fd, &st) < 0) strerr_diefusys(EX_TEMP, "stat ", home) ;
  if (st.st_uid == home_uid)
  {
    pid_t pid = fork() ;
    if (pid < 0) strerr_diefusys(EX_TEMP, "fork") ;
    if (!pid)
    {
      become_user() ;
      make_maildir(w, home, 0) ;
      _exit(0) ;
    }
    wait_child(pid, home) ;
  }
  else if (root_controls(&st)) make_maildir(w, home, 1) ;
  else strerr_dief(EX_TEMP, "refusing to use the home ", home, ": it belongs to another user or is writable by others") ;
}

static void setup_home (char *home, uid_t uid, gid_t gid)
{
  struct walk w = { .fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC), .created = 0, .parentfd = -1 } ;
  if (w.fd < 0) strerr_diefusys(EX_TEMP, "open /") ;
  int asroot = !geteuid() ;
  home_uid = uid ;
  home_gid = gid ;
  if (walk_home(&w, home, home, asroot)) finish_home(&w, home, asroot) ;
  fd_close(w.fd) ;
  if (w.parentfd >= 0) fd_close(w.parentfd) ;
}

/* argv[0] is the command; one positional NAME anywhere among the
 * options.  Returns the name. */
static char const *parse_args (int argc, char const *const *argv, char const *opts, int (*onopt)(int, char const *))
{
  subgetopt l = SUBGETOPT_ZERO ;
  char const *name = 0 ;
  for (;;)
  {
    int opt = subgetopt_r(argc, argv, opts, &l) ;
    if (opt == -1)
    {
      if (l.ind >= argc) break ;
      if (name) dieusage() ;
      name = argv[l.ind] ;
      l.ind++ ; l.pos = 0 ;
      continue ;
    }
    if (!onopt(opt, l.arg)) dieusage() ;
  }
  if (!name) dieusage() ;
  return name ;
}

static struct
{
  char const *uid, *gid, *home ;
  int pwmode ;
} o ;

static int add_opt (int opt, char const *arg)
{
  switch (opt)
  {
    case 'u' : o.uid = arg ; return 1 ;
    case 'g' : o.gid = arg ; return 1 ;
    case 'd' : o.home = arg ; return 1 ;
    case 'p' : if (o.pwmode == 'r') return 0 ; o.pwmode = 'p' ; return 1 ;
    case 'r' : if (o.pwmode == 'p') return 0 ; o.pwmode = 'r' ; return 1 ;
    default : return 0 ;
  }
}

static int passwd_opt (int opt, char const *arg)
{
  if (opt != 'r') return 0 ;
  o.pwmode = 'r' ;
  return 1 ;
}

static int no_opt (int opt, char const *arg)
{
  return 0 ;
}

static void die_unknown (char const *name)
{
  strerr_dief(EX_PERM, "no such user: ", name) ;
}

static int do_add (int argc, char const *const *argv)
{
  stralloc text = STRALLOC_ZERO, out = STRALLOC_ZERO, hash = STRALLOC_ZERO, home = STRALLOC_ZERO, line = STRALLOC_ZERO ;
  genalloc list = GENALLOC_ZERO ;
  uid_t uid = getuid() ;
  gid_t gid = getgid() ;
  int havegid = 0 ;
  char const *name = parse_args(argc, argv, "u:g:d:pr", &add_opt) ;
  check_name(name) ;
  if (o.uid) uid = parse_uid(o.uid, &gid, &havegid) ;
  if (o.gid) gid = parse_gid(o.gid) ;
  if (o.home)
  {
    if (!*o.home) strerr_dief(EX_PERM, "empty home directory") ;
    absolute_path(&home, o.home) ;
  }
  else
  {
    stralloc rel = STRALLOC_ZERO ;
    if (!stralloc_cats(&rel, "home/") || !stralloc_cats(&rel, name) || !stralloc_0(&rel)) dienomem() ;
    if (!yubin_path(&line, rel.s)) dienomem() ;
    absolute_path(&home, line.s) ;
    stralloc_free(&rel) ;
  }
  if (memchr(home.s, '\n', home.len)) strerr_dief(EX_PERM, "newline in home directory") ;
  /* mail is never delivered as root, nor with root's group: it would give
     whoever writes to the user root's files */
  if (!uid) strerr_dief(EX_PERM, "refusing uid 0 for user ", name, ": give -u with an unprivileged owner (as root the default uid is root's)") ;
  if (!gid) strerr_dief(EX_PERM, "refusing gid 0 for user ", name, ": give -g with an unprivileged group") ;

  lock_users() ;
  read_passwd(&text, &list) ;
  if (find_entry(text.s, &list, name) >= 0) strerr_dief(EX_PERM, "user ", name, " already exists") ;
  setup_home(home.s, uid, gid) ;
  make_hash(&hash, o.pwmode) ;
  {
    char fmt[UINT32_FMT] ;
    line.len = 0 ;
    if (!stralloc_cats(&line, name) || !stralloc_catb(&line, ":", 1)
     || !stralloc_catb(&line, hash.s, hash.len) || !stralloc_catb(&line, ":", 1)
     || !stralloc_catb(&line, fmt, uint32_fmt(fmt, uid)) || !stralloc_catb(&line, ":", 1)
     || !stralloc_catb(&line, fmt, uint32_fmt(fmt, gid)) || !stralloc_catb(&line, ":", 1)
     || !stralloc_catb(&line, home.s, home.len)) dienomem() ;
  }
  edit(&text, &list, -1, line.s, line.len, &out) ;
  commit(out.s, out.len, out.s, &list) ;
  stralloc_free(&text) ; stralloc_free(&out) ; stralloc_free(&hash) ;
  stralloc_free(&home) ; stralloc_free(&line) ; genalloc_free(struct passwd_entry, &list) ;
  return 0 ;
}

static int do_del (int argc, char const *const *argv)
{
  stralloc text = STRALLOC_ZERO, out = STRALLOC_ZERO ;
  genalloc list = GENALLOC_ZERO ;
  char const *name = parse_args(argc, argv, "", &no_opt) ;
  check_name(name) ;
  lock_users() ;
  read_passwd(&text, &list) ;
  ssize_t idx = find_entry(text.s, &list, name) ;
  if (idx < 0) die_unknown(name) ;
  edit(&text, &list, idx, 0, 0, &out) ;
  commit(out.s, out.len, out.s, &list) ;
  stralloc_free(&text) ; stralloc_free(&out) ; genalloc_free(struct passwd_entry, &list) ;
  return 0 ;
}

static int do_passwd (int argc, char const *const *argv)
{
  stralloc text = STRALLOC_ZERO, out = STRALLOC_ZERO, hash = STRALLOC_ZERO, line = STRALLOC_ZERO ;
  genalloc list = GENALLOC_ZERO ;
  o.pwmode = 'p' ;
  char const *name = parse_args(argc, argv, "r", &passwd_opt) ;
  check_name(name) ;
  lock_users() ;
  read_passwd(&text, &list) ;
  ssize_t idx = find_entry(text.s, &list, name) ;
  if (idx < 0) die_unknown(name) ;
  make_hash(&hash, o.pwmode) ;
  {
    struct passwd_entry const *e = genalloc_s(struct passwd_entry, &list) + idx ;
    /* keep the line as it is, but for the hash field */
    if (!stralloc_catb(&line, text.s + e->line, e->hash - e->line)
     || !stralloc_catb(&line, hash.s, hash.len)
     || !stralloc_catb(&line, text.s + e->hash + e->hashlen, e->line + e->linelen - e->hash - e->hashlen)) dienomem() ;
  }
  edit(&text, &list, idx, line.s, line.len, &out) ;
  commit(out.s, out.len, out.s, &list) ;
  stralloc_free(&text) ; stralloc_free(&out) ; stralloc_free(&hash) ;
  stralloc_free(&line) ; genalloc_free(struct passwd_entry, &list) ;
  return 0 ;
}

static int do_list (int argc, char const *const *argv)
{
  stralloc text = STRALLOC_ZERO, out = STRALLOC_ZERO ;
  genalloc list = GENALLOC_ZERO ;
  if (argc != 1) dieusage() ;
  read_passwd(&text, &list) ;
  for (size_t i = 0 ; i < genalloc_len(struct passwd_entry, &list) ; i++)
  {
    struct passwd_entry const *e = genalloc_s(struct passwd_entry, &list) + i ;
    char fmt[UINT32_FMT] ;
    int nologin = e->hashlen == 1 && text.s[e->hash] == '*' ;
    size_t at = out.len ;
    if (!stralloc_catb(&out, text.s + e->name, e->namelen)) dienomem() ;
    case_lowerb(out.s + at, e->namelen) ;
    if (!stralloc_cats(&out, nologin ? ":*:" : ":x:")
     || !stralloc_catb(&out, fmt, uint32_fmt(fmt, e->uid)) || !stralloc_catb(&out, ":", 1)
     || !stralloc_catb(&out, fmt, uint32_fmt(fmt, e->gid)) || !stralloc_catb(&out, ":", 1)
     || !stralloc_catb(&out, text.s + e->home, e->homelen) || !stralloc_catb(&out, "\n", 1)) dienomem() ;
  }
  if (buffer_putflush(buffer_1, out.s, out.len) < 0) strerr_diefusys(EX_TEMP, "write to stdout") ;
  stralloc_free(&text) ; stralloc_free(&out) ; genalloc_free(struct passwd_entry, &list) ;
  return 0 ;
}

static int do_rebuild (int argc, char const *const *argv)
{
  stralloc text = STRALLOC_ZERO ;
  genalloc list = GENALLOC_ZERO ;
  if (argc != 1) dieusage() ;
  lock_users() ;
  read_passwd(&text, &list) ;
  commit(0, 0, text.s, &list) ;
  stralloc_free(&text) ; genalloc_free(struct passwd_entry, &list) ;
  return 0 ;
}

int main (int argc, char const *const *argv)
{
  static struct { char const *name ; int (*f)(int, char const *const *) ; } const cmds[] =
  {
    { "add", &do_add },
    { "del", &do_del },
    { "passwd", &do_passwd },
    { "list", &do_list },
    { "rebuild", &do_rebuild },
  } ;
  if (argc < 2) dieusage() ;
  if (!yubin_path(&users_dir, "users")) dienomem() ;
  for (size_t i = 0 ; i < sizeof(cmds) / sizeof(cmds[0]) ; i++)
    if (!strcmp(argv[1], cmds[i].name))
    {
      int r = (*cmds[i].f)(argc - 1, argv + 1) ;
      stralloc_free(&users_dir) ;
      return r ;
    }
  dieusage() ;
}
