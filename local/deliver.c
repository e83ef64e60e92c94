/* The delivery of yubin-local: see deliver.h and yubin-local.8.
 * qmail-local's procedure: check the home directory and the
 * Delivered-To: loop, find the .qmail file for the address, then follow
 * its lines in order: Maildir (common/maildir.c), mbox, program; forwards
 * are collected and queued last, in one message through the qmail-queue
 * client (common/qq.c), only if everything else succeeded.
 *
 * One file because yubin-lspawn links it (qmgr/deps-exe/yubin-lspawn
 * lists local/deliver.c alone); its sections (reasons, .qmail files,
 * mbox, programs, the run) are the modules it would split into. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/buffer.h>
#include <skalibs/bytestr.h>
#include <skalibs/direntry.h>
#include <skalibs/djbunix.h>
#include <skalibs/env.h>
#include <skalibs/genalloc.h>
#include <skalibs/iopause.h>
#include <skalibs/selfpipe.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/tai.h>
#include <skalibs/types.h>

#include "control.h"
#include "exitcodes.h"
#include "maildir.h"
#include "qq.h"
#include "ylog.h"

#include "local/deliver.h"
#include "qmgr/queue.h"

#define DOTQMAIL_MAX (1 << 20)   /* a larger .qmail file defers delivery */
#define MBOX_LOCKSECS 30         /* as qmail-local: then the delivery is deferred */
#define PROGRAM_TIMEOUT 3600     /* seconds, when control/timeoutlocal is missing */
#define PROGRAM_GRACE 5          /* seconds between SIGTERM and SIGKILL */
#define LASTLINE_MAX 1000        /* the part of a program's last line kept */

extern char **environ ;

/* ---- reasons ---- */

/* Die (111) with "out of memory (#4.3.0)". */
static void local_dienomem (void) __attribute__((noreturn)) ;
static void local_dienomem (void)
{
  strerr_dief1x(EX_TEMP, "out of memory (#4.3.0)") ;
}

/* why = the strings up to a null pointer; if sys, ": " and errno's text
 * go before the last string (the status code, e.g. " (#4.3.0)").
 * Newlines and NULs become '_'.  Returns code (100 or 111). */
static int local_fail (stralloc *why, int code, int sys, ...)
{
  int e = errno ;
  va_list ap ;
  char const *s ;
  why->len = 0 ;
  size_t last = 0 ;   /* where the last string starts */
  va_start(ap, sys) ;
  while ((s = va_arg(ap, char const *)))
  {
    last = why->len ;
    if (!stralloc_cats(why, s)) local_dienomem() ;
  }
  va_end(ap) ;
  if (sys)
  {
    char const *t = strerror(e) ;
    size_t n = strlen(t) ;
    if (!stralloc_readyplus(why, n + 2)) local_dienomem() ;
    memmove(why->s + last + n + 2, why->s + last, why->len - last) ;
    memcpy(why->s + last, ": ", 2) ;
    memcpy(why->s + last + 2, t, n) ;
    why->len += n + 2 ;
  }
  /* one line, whatever the strings held (a path, a program's words) */
  for (size_t i = 0 ; i < why->len ; i++)
    if (why->s[i] == '\n' || why->s[i] == '\r' || !why->s[i]) why->s[i] = '_' ;
  if (!stralloc_0(why)) local_dienomem() ;
  why->len-- ;
  return code ;
}

/* ---- .qmail files ---- */

/* ext as .qmail file names hold it: lower case, '.' -> ':'. */
static int dotqmail_safeext (stralloc *safe, char const *ext)
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

/* The .qmail file for dash and safeext, in qmail-local's order:
 * .qmail<dash><ext>, then for each '-' of ext from the last,
 * .qmail<dash><ext up to and with that '-'>default, then
 * .qmail<dash>default.  A file that is missing or not a regular file is
 * skipped.  Found: returns 1, the file's contents in contents (at most
 * DOTQMAIL_MAX bytes), its name in name (NUL-terminated), *xbit set if it
 * is executable by its owner, and *defaultpos = where DEFAULT starts in
 * ext (-1 if the name does not end with "default").  None: returns 0.
 * Error: 111 with the reason in why (a file writable by others, too
 * large, unreadable). */
static int dotqmail_find (char const *dash, char const *safeext, stralloc *name, stralloc *contents, int *xbit, long *defaultpos, stralloc *why)
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

/* Does .qmail<dash><safeext><suffix> exist (any type)?  1 yes, 0 no,
 * 111 on a temporary error (reason in why). */
static int dotqmail_exists (char const *dash, char const *safeext, char const *suffix, stralloc *why)
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

/* Does the current directory hold a file whose name starts with
 * ".qmail"?  1 yes, 0 no, 111 on error (reason in why). */
static int home_has_dotqmail (stralloc *why)
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

/* ---- mbox ---- */

/* Does the line s[0..len) start with >*"From "? (then it gets a '>') */
/* Does the line s[0..len) start with >*"From "? (then it gets a '>') */
static int is_from (char const *s, size_t len)
{
  while (len && *s == '>') { s++ ; len-- ; }
  return len >= 5 && !memcmp(s, "From ", 5) ;
}

/* Both locks, non-blocking, tried until MBOX_LOCKSECS have passed.
 * 1 locked, 0 still locked by someone else, -1 locking not available
 * here (then qmail-local delivers without the lock, so do we). */
static int lock_both (int fd)
{
  tain deadline ;
  int haveflock = 0 ;
  if (!tain_now_g() || !tain_addsec_g(&deadline, MBOX_LOCKSECS)) return -1 ;
  for (;;)
  {
    if (!haveflock)
    {
      if (!flock(fd, LOCK_EX | LOCK_NB)) haveflock = 1 ;
      else if (errno != EWOULDBLOCK && errno != EINTR) return -1 ;
    }
    if (haveflock)
    {
      struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 } ;
      if (fcntl(fd, F_SETLK, &fl) == 0) return 1 ;
      if (errno != EAGAIN && errno != EACCES && errno != EINTR) return 1 ;  /* flock is enough */
    }
    if (!tain_less(&STAMP, &deadline)) return 0 ;
    tain step, next ;
    if (!tain_from_millisecs(&step, 100) || !tain_add_g(&next, &step)) return -1 ;
    if (iopause_g(0, 0, &next) < 0 && errno != EINTR) return -1 ;  /* a sleep */
  }
}

/* Append the message on msgfd (from offset start to EOF) to the mbox
 * file fn (created 0600 if missing), holding an flock and an fcntl lock
 * on it: the prefix (From_, Return-Path: and Delivered-To: lines), then
 * each line with ">" before one matching ^>*From , a newline after a
 * last line without one, and an empty line.  fsync before success.  On a
 * failure after the lock the file is cut back to its old length.
 * Returns 0, or 111 with the reason in why. */
static int mbox_deliver (char const *fn, char const *prefix, size_t prefixlen, int msgfd, off_t start, stralloc *why)
{
  char outbuf[65536] ;
  char inbuf[65536] ;
  stralloc line = STRALLOC_ZERO ;   /* a line cut by the end of inbuf */
  int code = 0 ;
  int locked ;
  off_t pos ;
  int fd = open(fn, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0600) ;
  if (fd < 0) return local_fail(why, EX_TEMP, 1, "unable to open mbox ", fn, " (#4.2.1)", (char *)0) ;
  locked = lock_both(fd) ;
  if (!locked)
  {
    fd_close(fd) ;
    return local_fail(why, EX_TEMP, 0, "mbox ", fn, " has been locked for 30 seconds straight (#4.3.0)", (char *)0) ;
  }
  pos = lseek(fd, 0, SEEK_END) ;
  if (pos < 0 || lseek(msgfd, start, SEEK_SET) < 0)
  {
    code = local_fail(why, EX_TEMP, 1, "unable to seek in mbox ", fn, " or in the message (#4.3.0)", (char *)0) ;
    fd_close(fd) ;
    return code ;
  }
  buffer b = BUFFER_INIT(&buffer_write, fd, outbuf, sizeof(outbuf)) ;
  if (buffer_put(&b, prefix, prefixlen) < 0) goto writeerr ;
  for (;;)
  {
    ssize_t r = read(msgfd, inbuf, sizeof(inbuf)) ;
    if (r < 0)
    {
      if (errno == EINTR) continue ;
      code = local_fail(why, EX_TEMP, 1, "unable to read the message (#4.3.0)", (char *)0) ;
      goto cut ;
    }
    if (!r) break ;
    size_t i = 0 ;
    while (i < (size_t)r)
    {
      size_t n = byte_chr(inbuf + i, r - i, '\n') ;
      int eol = i + n < (size_t)r ;
      if (!eol || line.len)
      {
        if (!stralloc_catb(&line, inbuf + i, n + eol)) local_dienomem() ;
        i += n + eol ;
        if (!eol) break ;
        if ((is_from(line.s, line.len) && buffer_put(&b, ">", 1) < 0)
         || buffer_put(&b, line.s, line.len) < 0) goto writeerr ;
        line.len = 0 ;
      }
      else
      {
        if ((is_from(inbuf + i, n) && buffer_put(&b, ">", 1) < 0)
         || buffer_put(&b, inbuf + i, n + 1) < 0) goto writeerr ;
        i += n + 1 ;
      }
    }
  }
  if (line.len)
  {
    if ((is_from(line.s, line.len) && buffer_put(&b, ">", 1) < 0)
     || buffer_put(&b, line.s, line.len) < 0 || buffer_put(&b, "\n", 1) < 0) goto writeerr ;
  }
  if (buffer_put(&b, "\n", 1) < 0 || !buffer_flush(&b) || fsync(fd) < 0) goto writeerr ;
  stralloc_free(&line) ;
  if (close(fd) < 0 && errno != EINTR) return local_fail(why, EX_TEMP, 1, "unable to close mbox ", fn, " (#4.3.0)", (char *)0) ;
  return 0 ;

 writeerr:
  if (errno == EDQUOT) code = local_fail(why, EX_TEMP, 0, "mbox ", fn, " is over quota (#4.2.2)", (char *)0) ;
  else if (errno == ENOSPC) code = local_fail(why, EX_TEMP, 0, "no space left on the device holding mbox ", fn, " (#4.3.1)", (char *)0) ;
  else code = local_fail(why, EX_TEMP, 1, "unable to write mbox ", fn, " (#4.3.0)", (char *)0) ;
 cut:
  /* as qmail-local: only a file we hold may be cut back */
  if (locked > 0 && ftruncate(fd, pos) < 0) code = local_fail(why, EX_TEMP, 1, "unable to cut mbox ", fn, " back after a failed delivery: it may hold a partial message (#4.3.0)", (char *)0) ;
  stralloc_free(&line) ;
  fd_close(fd) ;
  return code ;
}

/* ---- programs ---- */

struct output
{
  int fd ;            /* read end of the program's stdout+stderr, -1 at EOF */
  int relay ;         /* still copying to fd 1 */
  stralloc cur ;      /* the current line (its first LASTLINE_MAX bytes) */
  stralloc last ;     /* the last complete non-empty line */
} ;

static void output_line_end (struct output *o)
{
  size_t n = o->cur.len ;
  while (n && (o->cur.s[n-1] == ' ' || o->cur.s[n-1] == '\t' || o->cur.s[n-1] == '\r')) n-- ;
  if (n && !stralloc_copyb(&o->last, o->cur.s, n)) local_dienomem() ;
  o->cur.len = 0 ;
}

/* Read what is there; at EOF (or when final and nothing is left) close. */
static void output_read (struct output *o, int final)
{
  char buf[4096] ;
  while (o->fd >= 0)
  {
    ssize_t r = read(o->fd, buf, sizeof(buf)) ;
    if (r < 0 && errno == EINTR) continue ;
    if (r < 0 && errno == EAGAIN && !final) return ;
    if (r <= 0)
    {
      fd_close(o->fd) ;
      o->fd = -1 ;
      return ;
    }
    if (o->relay && allwrite(1, buf, r) < (size_t)r) o->relay = 0 ;   /* nobody listens: keep reading */
    for (ssize_t i = 0 ; i < r ; i++)
    {
      if (buf[i] == '\n') output_line_end(o) ;
      else if (o->cur.len < LASTLINE_MAX && !stralloc_catb(&o->cur, buf + i, 1)) local_dienomem() ;
    }
  }
}

static int permanent (int code)
{
  switch (code)
  {
    case 100 : case 64 : case 65 : case 70 : case 76 : case 77 : case 78 : case 112 : return 1 ;
    default : return 0 ;
  }
}

/* Run "/bin/sh -c cmd" in the current directory with the environment
 * envp and infd (positioned by the caller) as its standard input, in a
 * process group of its own.  Its stdout and stderr are read through one
 * pipe and copied to fd 1; its last non-empty line is kept.  After
 * timeout seconds its process group gets SIGTERM, PROGRAM_GRACE seconds
 * later SIGKILL, and the delivery is deferred.
 * Returns 0 (with *stop = 1 for exit code 99), 100 for the exit codes
 * 100, 64, 65, 70, 76, 77, 78 and 112, 111 for any other code, a signal
 * or the time limit; the reason in why: the program's last line if it
 * wrote one, else what happened. */
static int program_run (char const *cmd, char const *const *envp, int infd, unsigned long timeout, int *stop, stralloc *why)
{
  struct output o = { .fd = -1, .relay = 1, .cur = STRALLOC_ZERO, .last = STRALLOC_ZERO } ;
  int p[2] ;
  int code ;
  int wstat = 0 ;
  int exited = 0 ;
  int killed = 0 ;   /* 0, 1 after SIGTERM, 2 after SIGKILL */
  tain deadline ;
  *stop = 0 ;

  if (pipe2(p, O_CLOEXEC) < 0) return local_fail(why, EX_TEMP, 1, "unable to make a pipe (#4.3.0)", (char *)0) ;
  int spfd = selfpipe_init() ;
  if (spfd < 0 || !selfpipe_trap(SIGCHLD))
  {
    code = local_fail(why, EX_TEMP, 1, "unable to trap SIGCHLD (#4.3.0)", (char *)0) ;
    if (spfd >= 0) selfpipe_finish() ;
    fd_close(p[0]) ; fd_close(p[1]) ;
    return code ;
  }
  pid_t pid = fork() ;
  if (pid < 0)
  {
    code = local_fail(why, EX_TEMP, 1, "unable to fork (#4.3.0)", (char *)0) ;
    selfpipe_finish() ;
    fd_close(p[0]) ; fd_close(p[1]) ;
    return code ;
  }
  if (!pid)
  {
    char const *argv[4] = { "/bin/sh", "-c", cmd, 0 } ;
    struct sigaction sa = { .sa_handler = SIG_DFL } ;
    sigset_t none ;
    sigemptyset(&none) ;
    /* a group of its own, so that a time limit stops the whole pipeline */
    if (setpgid(0, 0) < 0
     || sigaction(SIGPIPE, &sa, 0) < 0 || sigaction(SIGCHLD, &sa, 0) < 0
     || sigprocmask(SIG_SETMASK, &none, 0) < 0
     || (infd != 0 && dup2(infd, 0) < 0) || dup2(p[1], 1) < 0 || dup2(p[1], 2) < 0)
      _exit(EX_TEMP) ;
    execve(argv[0], (char *const *)argv, (char *const *)envp) ;
    {
      char const *e = strerror(errno) ;
      char const *m = "unable to run /bin/sh: " ;
      if (allwrite(2, m, strlen(m)) < strlen(m) || allwrite(2, e, strlen(e)) < strlen(e)) _exit(EX_TEMP) ;
      if (allwrite(2, " (#4.3.0)\n", 10) < 10) _exit(EX_TEMP) ;
    }
    _exit(EX_TEMP) ;
  }
  fd_close(p[1]) ;
  o.fd = p[0] ;
  if (ndelay_on(o.fd) < 0) timeout = 0 ;   /* never block on it: stop the program now */

  if (!tain_now_g() || !tain_addsec_g(&deadline, timeout > 0x7fffffffUL ? 0x7fffffff : (int)timeout))
    deadline = tain_infinite ;
  while (!exited)
  {
    iopause_fd x[2] = { { .fd = spfd, .events = IOPAUSE_READ }, { .fd = o.fd, .events = IOPAUSE_READ } } ;
    int r = iopause_g(x, o.fd >= 0 ? 2 : 1, &deadline) ;
    if (r < 0)
    {
      if (errno == EINTR) continue ;
      r = 0 ;   /* treat as the deadline: never wait forever */
    }
    if (!r)
    {
      if (killed < 2)
      {
        int sig = killed ? SIGKILL : SIGTERM ;
        if (kill(-pid, sig) < 0 && kill(pid, sig) < 0) { /* already gone: the wait says so */ }
        killed++ ;
        if (!tain_addsec_g(&deadline, PROGRAM_GRACE)) deadline = tain_infinite ;
      }
      else if (o.fd >= 0) { fd_close(o.fd) ; o.fd = -1 ; }   /* a grandchild keeps the pipe */
      continue ;
    }
    if (o.fd >= 0 && x[1].revents) output_read(&o, 0) ;
    if (x[0].revents & IOPAUSE_READ)
    {
      for (;;)
      {
        int sig = selfpipe_read() ;
        if (sig <= 0) break ;
      }
      pid_t w = waitpid(pid, &wstat, WNOHANG) ;
      if (w == pid) exited = 1 ;
      else if (w < 0 && errno != EINTR) { exited = 1 ; wstat = -1 ; }
    }
  }
  selfpipe_finish() ;
  /* what it wrote before exiting; a background child keeping the pipe
     open gets no more attention */
  if (o.fd >= 0)
  {
    output_read(&o, 0) ;
    if (o.fd >= 0) { fd_close(o.fd) ; o.fd = -1 ; }
  }
  output_line_end(&o) ;
  size_t lastlen = o.last.len ;
  if (!stralloc_0(&o.last)) local_dienomem() ;

  char num[UINT_FMT] ;
  if (killed)
  {
    num[ulong_fmt(num, timeout)] = 0 ;
    code = local_fail(why, EX_TEMP, 0, "program timed out after ", num, " seconds (#4.3.0)", (char *)0) ;
  }
  else if (wstat == -1) code = local_fail(why, EX_TEMP, 1, "unable to wait for the program (#4.3.0)", (char *)0) ;
  else if (WIFSIGNALED(wstat))
  {
    num[uint_fmt(num, WTERMSIG(wstat))] = 0 ;
    code = local_fail(why, EX_TEMP, 0, "program killed by signal ", num, " (#4.3.0)", (char *)0) ;
  }
  else
  {
    int e = WEXITSTATUS(wstat) ;
    if (!e || e == 99) { code = 0 ; *stop = e == 99 ; }
    else
    {
      code = permanent(e) ? EX_PERM : EX_TEMP ;
      num[uint_fmt(num, e)] = 0 ;
      if (lastlen) local_fail(why, code, 0, o.last.s, (char *)0) ;
      else local_fail(why, code, 0, "program exited ", num, code == EX_PERM ? " (#5.0.0)" : " (#4.0.0)", (char *)0) ;
    }
  }
  stralloc_free(&o.cur) ;
  stralloc_free(&o.last) ;
  return code ;
}

/* ---- the run ---- */

#define dienomem local_dienomem


/* Append s to sa with '\n' and '\r' replaced by '_' (qmail-local replaces
 * '\n'), so that an argument can never end a header line early. */
static void cats_oneline (stralloc *sa, char const *s)
{
  size_t base = sa->len ;
  if (!stralloc_cats(sa, s)) dienomem() ;
  for (size_t i = base ; i < sa->len ; i++)
    if (sa->s[i] == '\n' || sa->s[i] == '\r') sa->s[i] = '_' ;
}

/* Does the header of the message on fd (from the current offset) hold a
 * line equal to dt (dtlen bytes, no newline), ignoring case and an
 * optional CR before the LF?  Only the header is read: up to the first
 * empty line.  Returns 1 yes, 0 no, -1 on read error. */
static int header_has_line (int fd, char const *dt, size_t dtlen)
{
  char buf[65536] ;
  stralloc lsa = STRALLOC_ZERO ;  /* the first bytes of the current line */
  size_t cap = dtlen + 2 ;
  size_t linelen = 0 ;  /* total length of the current line so far */
  int found = 0 ;
  if (!stralloc_ready(&lsa, cap)) dienomem() ;
  char *line = lsa.s ;
  for (;;)
  {
    ssize_t r = read(fd, buf, sizeof(buf)) ;
    if (r < 0)
    {
      if (errno == EINTR) continue ;
      found = -1 ;
      break ;
    }
    if (!r) break ;
    size_t pos = 0 ;
    while (pos < (size_t)r)
    {
      size_t n = byte_chr(buf + pos, r - pos, '\n') ;
      int eol = pos + n < (size_t)r ;
      if (linelen < cap)
      {
        size_t k = n < cap - linelen ? n : cap - linelen ;
        memcpy(line + linelen, buf + pos, k) ;
      }
      linelen += n ;
      pos += n + eol ;
      if (!eol) break ;
      {
        size_t len = linelen ;
        if (len && len <= cap && line[len-1] == '\r') len-- ;
        if (!len) goto end ;  /* empty line: end of header */
        if (len == dtlen && case_equalb(line, dtlen, dt)) { found = 1 ; goto end ; }
      }
      linelen = 0 ;
    }
  }
 end:
  stralloc_free(&lsa) ;
  return found ;
}

int local_delivery_ok (struct delivery const *d)
{
  return *d->user && d->home[0] == '/' ;
}

/* "NAME=value\0" into the environment modifications */
static void env_set (stralloc *mods, char const *name, char const *value, size_t len)
{
  if (!stralloc_cats(mods, name) || !stralloc_catb(mods, "=", 1)
   || !stralloc_catb(mods, value, len) || !stralloc_0(mods)) dienomem() ;
}

static void env_sets (stralloc *mods, char const *name, char const *value)
{
  env_set(mods, name, value, strlen(value)) ;
}

/* The UUCP From_ line of mbox files, as qmail-local writes it: the sender
 * (spaces, tabs and newlines as '-') or MAILER-DAEMON, and the time in
 * UTC as "Sun Sep 09 01:46:40 2001". */
static void ufline_make (stralloc *sa, char const *sender)
{
  static char const days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" } ;
  static char const months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" } ;
  char tmp[64] ;
  struct tm tm ;
  time_t now = time(0) ;
  if (!stralloc_copys(sa, "From ")) dienomem() ;
  if (*sender)
  {
    size_t base = sa->len ;
    if (!stralloc_cats(sa, sender)) dienomem() ;
    for (size_t i = base ; i < sa->len ; i++)
      if (sa->s[i] == ' ' || sa->s[i] == '\t' || sa->s[i] == '\n' || sa->s[i] == '\r') sa->s[i] = '-' ;
  }
  else if (!stralloc_cats(sa, "MAILER-DAEMON")) dienomem() ;
  if (!gmtime_r(&now, &tm)) memset(&tm, 0, sizeof(tm)) ;
  size_t n = strftime(tmp, sizeof(tmp), " %H:%M:%S ", &tm) ;
  if (!stralloc_catb(sa, " ", 1) || !stralloc_catb(sa, days[tm.tm_wday % 7], 3)
   || !stralloc_catb(sa, " ", 1) || !stralloc_catb(sa, months[tm.tm_mon % 12], 3)
   || !stralloc_catb(sa, " ", 1)) dienomem() ;
  {
    char dd[3] = { '0' + tm.tm_mday / 10 % 10, '0' + tm.tm_mday % 10, 0 } ;
    char year[UINT_FMT] ;
    if (!stralloc_catb(sa, dd, 2) || !stralloc_catb(sa, tmp, n)
     || !stralloc_catb(sa, year, uint_fmt(year, 1900 + tm.tm_year)) || !stralloc_catb(sa, "\n", 1)) dienomem() ;
  }
}

/* HOST2, HOST3, HOST4: host up to its last, second to last, third to
 * last dot (the whole host when there are not so many dots). */
static void env_hosts (stralloc *mods, char const *host)
{
  static char const *const names[3] = { "HOST2", "HOST3", "HOST4" } ;
  size_t i = strlen(host) ;
  for (unsigned int k = 0 ; k < 3 ; k++)
  {
    i = byte_rchr(host, i, '.') ;
    env_set(mods, names[k], host, i) ;
  }
}

/* EXT, EXT2, EXT3, EXT4: ext, then what follows its first, second, third '-' */
static void env_exts (stralloc *mods, char const *ext)
{
  static char const *const names[4] = { "EXT", "EXT2", "EXT3", "EXT4" } ;
  char const *x = ext ;
  for (unsigned int k = 0 ; k < 4 ; k++)
  {
    if (k) { x += str_chr(x, '-') ; if (*x) x++ ; }
    env_sets(mods, names[k], x) ;
  }
}

/* The state of one run, shared by the instructions. */
struct run
{
  struct delivery const *d ;
  int msgfd ;
  off_t start ;            /* where the message starts on msgfd */
  int progfd ;             /* the programs' stdin, -1 until needed */
  stralloc recip ;         /* local@domain, NUL-terminated */
  stralloc prefix ;        /* From_ line, Return-Path:, Delivered-To: */
  size_t rpstart ;         /* where Return-Path: starts in prefix */
  size_t dtstart ;         /* where Delivered-To: starts in prefix */
  stralloc mods ;          /* the programs' environment modifications */
  genalloc env ;           /* char const *: their environment, built once */
  unsigned long timeout ;  /* 0 until read */
} ;

/* The message for programs: msgfd itself when it starts at offset 0 (as
 * under qmail-lspawn), else a copy that does (under yubin-lspawn msgfd
 * is the queue file: a program that rewinds its stdin must see the
 * message, not the queue's header). */
static int program_stdin (struct run *r, stralloc *why)
{
  if (!r->start) { r->progfd = r->msgfd ; return 0 ; }
  int fd = memfd_create("yubin-local-message", MFD_CLOEXEC) ;
  if (fd < 0) return local_fail(why, EX_TEMP, 1, "unable to make a copy of the message (#4.3.0)", (char *)0) ;
  if (lseek(r->msgfd, r->start, SEEK_SET) < 0)
  {
    fd_close(fd) ;
    return local_fail(why, EX_TEMP, 1, "unable to rewind the message (#4.3.0)", (char *)0) ;
  }
  for (;;)
  {
    char buf[65536] ;
    ssize_t n = read(r->msgfd, buf, sizeof(buf)) ;
    if (n < 0 && errno == EINTR) continue ;
    if (n <= 0)
    {
      if (!n) break ;
      fd_close(fd) ;
      return local_fail(why, EX_TEMP, 1, "unable to read the message (#4.3.0)", (char *)0) ;
    }
    if (allwrite(fd, buf, n) < (size_t)n)
    {
      fd_close(fd) ;
      return local_fail(why, EX_TEMP, 1, "unable to copy the message (#4.3.0)", (char *)0) ;
    }
  }
  r->progfd = fd ;
  return 0 ;
}

static int do_program (struct run *r, char const *cmd, int *stop, stralloc *why)
{
  int code ;
  if (!r->timeout)
  {
    if (control_readulong(&r->timeout, "timeoutlocal", PROGRAM_TIMEOUT) < 0)
      return local_fail(why, EX_TEMP, 1, "unable to read control/timeoutlocal (#4.3.0)", (char *)0) ;
    if (!r->timeout) r->timeout = PROGRAM_TIMEOUT ;
  }
  if (!genalloc_len(char const *, &r->env))
  {
    size_t n = env_len((char const *const *)environ) ;
    size_t m = 0 ;
    for (size_t i = 0 ; i < r->mods.len ; i++) if (!r->mods.s[i]) m++ ;
    if (!genalloc_ready(char const *, &r->env, n + m + 1)) dienomem() ;
    if (!env_merge(genalloc_s(char const *, &r->env), n + m + 1, (char const *const *)environ, n, r->mods.s, r->mods.len)) dienomem() ;
    genalloc_setlen(char const *, &r->env, n + m + 1) ;
  }
  if (r->progfd < 0 && (code = program_stdin(r, why))) return code ;
  if (lseek(r->progfd, 0, SEEK_SET) < 0) return local_fail(why, EX_TEMP, 1, "unable to rewind the message (#4.3.0)", (char *)0) ;
  code = program_run(cmd, genalloc_s(char const *, &r->env), r->progfd, r->timeout, stop, why) ;
  if (!code) ylog("delivered", "to", r->recip.s, "program", cmd, (char *)0) ;
  return code ;
}

static int do_maildir (struct run *r, char const *dd, size_t ddlen, stralloc *why)
{
  stralloc dir = STRALLOC_ZERO ;
  stralloc name = STRALLOC_ZERO ;
  char const *homedir = r->d->home ;
  int code = 0 ;
  /* "./Maildir/" -> "./Maildir"; "/" stays "/" */
  {
    size_t n = ddlen ;
    while (n > 1 && dd[n-1] == '/') n-- ;
    if (!stralloc_catb(&dir, dd, n) || !stralloc_0(&dir)) dienomem() ;
  }
  if (lseek(r->msgfd, r->start, SEEK_SET) < 0)
    code = local_fail(why, EX_TEMP, 1, "unable to rewind the message (#4.3.0)", (char *)0) ;
  else if (!maildir_deliver(dir.s, r->prefix.s + r->rpstart, r->prefix.len - r->rpstart, r->msgfd, &name))
  {
    int e = errno ;
    struct stat st ;
    if (e == EDQUOT) code = local_fail(why, EX_TEMP, 0, "mailbox ", dd, " in ", homedir, " is over quota (#4.2.2)", (char *)0) ;
    else if (e == ENOSPC) code = local_fail(why, EX_TEMP, 0, "no space left on the device holding ", homedir, "/", dd, " (#4.3.1)", (char *)0) ;
    else if (e == ENOENT && stat(dir.s, &st) < 0 && errno == ENOENT)
      code = local_fail(why, EX_TEMP, 0, "maildir ", dd, " does not exist in ", homedir, " (#4.2.1)", (char *)0) ;
    else
    {
      errno = e ;
      code = local_fail(why, EX_TEMP, 1, "unable to deliver to maildir ", dd, " in ", homedir, " (#4.2.1)", (char *)0) ;
    }
  }
  else
  {
    if (!stralloc_0(&name)) dienomem() ;
    ylog("delivered", "to", r->recip.s, "file", name.s, (char *)0) ;
  }
  stralloc_free(&name) ;
  stralloc_free(&dir) ;
  return code ;
}

static int do_mbox (struct run *r, char const *fn, stralloc *why)
{
  int code = mbox_deliver(fn, r->prefix.s, r->prefix.len, r->msgfd, r->start, why) ;
  if (!code) ylog("delivered", "to", r->recip.s, "mbox", fn, (char *)0) ;
  return code ;
}

/* The forwards, in one message: Delivered-To: and the message. */
static int do_forward (struct run *r, char const *newsender, char const *cmds, genalloc *recips, unsigned long *qp, stralloc *why)
{
  struct qq q = QQ_ZERO ;
  stralloc prog = STRALLOC_ZERO ;
  size_t n = genalloc_len(size_t, recips) ;
  size_t const *off = genalloc_s(size_t, recips) ;
  char buf[65536] ;
  if (lseek(r->msgfd, r->start, SEEK_SET) < 0) return local_fail(why, EX_TEMP, 1, "unable to rewind the message (#4.3.0)", (char *)0) ;
  if (!qq_program(&prog)) dienomem() ;
  if (qq_open(&q, prog.s) < 0)
  {
    int code = local_fail(why, EX_TEMP, 1, "unable to run ", prog.s, " to forward the message (#4.3.0)", (char *)0) ;
    stralloc_free(&prog) ;
    return code ;
  }
  stralloc_free(&prog) ;
  *qp = (unsigned long)q.pid ;
  qq_put(&q, r->prefix.s + r->dtstart, r->prefix.len - r->dtstart) ;
  for (;;)
  {
    ssize_t k = read(r->msgfd, buf, sizeof(buf)) ;
    if (k < 0 && errno == EINTR) continue ;
    if (k < 0)
    {
      int code = local_fail(why, EX_TEMP, 1, "unable to read the message (#4.3.0)", (char *)0) ;
      qq_abort(&q) ;
      return code ;
    }
    if (!k) break ;
    qq_put(&q, buf, k) ;
  }
  qq_from(&q, newsender) ;
  for (size_t i = 0 ; i < n ; i++) qq_to(&q, cmds + off[i]) ;
  int c = qq_close(&q) ;
  if (c)
  {
    /* "Z4.3.0 qq write error" -> "... qq write error (#4.3.0)" */
    char const *st = qq_status(c) ;
    char code[16] ;
    size_t sp = str_chr(st, ' ') ;
    size_t cl = sp > 1 && sp - 1 < sizeof(code) ? sp - 1 : 0 ;
    memcpy(code, st + 1, cl) ;
    code[cl] = 0 ;
    return local_fail(why, st[0] == 'D' ? EX_PERM : EX_TEMP, 0, "unable to forward the message: ", st[sp] ? st + sp + 1 : st,
                      " (#", code, ")", (char *)0) ;
  }
  {
    char nb[SIZE_FMT], qb[ULONG_FMT] ;
    nb[size_fmt(nb, n)] = 0 ;
    qb[ulong_fmt(qb, *qp)] = 0 ;
    ylog("forwarded", "to", r->recip.s, "from", newsender, "rcpts", nb, "qp", qb, (char *)0) ;
  }
  return 0 ;
}

static void describe_line (stralloc *describe, char const *kind, char const *s)
{
  if (!stralloc_cats(describe, kind) || !stralloc_cats(describe, s) || !stralloc_catb(describe, "\n", 1)) dienomem() ;
}

int local_run (struct delivery const *d, int msgfd, stralloc *describe, struct local_report *rep, stralloc *why)
{
  char const *homedir = d->home ;
  int doit = !describe ;
  int code = 0 ;
  struct run r = { .d = d, .msgfd = msgfd, .start = 0, .progfd = -1, .recip = STRALLOC_ZERO, .prefix = STRALLOC_ZERO,
                   .rpstart = 0, .dtstart = 0, .mods = STRALLOC_ZERO, .env = GENALLOC_ZERO, .timeout = 0 } ;
  stralloc safeext = STRALLOC_ZERO ;
  stralloc qmname = STRALLOC_ZERO ;
  stralloc cmds = STRALLOC_ZERO ;
  stralloc newsender = STRALLOC_ZERO ;
  genalloc recips = GENALLOC_ZERO ;   /* size_t: offsets of forward addresses in cmds */
  int xbit = 0 ;
  long defaultpos ;

  {
    /* as qmail-local: a write to a dead reader is an error, not a death */
    struct sigaction sa = { .sa_handler = SIG_IGN } ;
    if (sigaction(SIGPIPE, &sa, 0) < 0) return local_fail(why, EX_TEMP, 1, "unable to ignore SIGPIPE (#4.3.0)", (char *)0) ;
  }
  if (doit)
  {
    r.start = lseek(msgfd, 0, SEEK_CUR) ;
    if (r.start < 0) return local_fail(why, EX_TEMP, 1, "unable to seek on the message: stdin must be a regular file (#4.3.0)", (char *)0) ;
  }

  umask(077) ;
  if (chdir(homedir) < 0) return local_fail(why, EX_TEMP, 1, "unable to switch to ", homedir, " (#4.3.0)", (char *)0) ;
  {
    struct stat st ;
    if (stat(".", &st) < 0) return local_fail(why, EX_TEMP, 1, "unable to stat ", homedir, " (#4.3.0)", (char *)0) ;
    if (st.st_mode & S_IWOTH) return local_fail(why, EX_TEMP, 0, "home directory ", homedir, " is world-writable (#4.7.0)", (char *)0) ;
    if (st.st_mode & S_ISVTX)
    {
      if (doit) return local_fail(why, EX_TEMP, 0, "home directory ", homedir, " is sticky: user is editing delivery instructions (#4.2.1)", (char *)0) ;
      strerr_warnw3x("home directory ", homedir, " is sticky") ;
    }
  }

  if (!stralloc_cats(&r.recip, d->local) || !stralloc_catb(&r.recip, "@", 1)
   || !stralloc_cats(&r.recip, d->domain) || !stralloc_0(&r.recip)) dienomem() ;
  ufline_make(&r.prefix, d->sender) ;
  r.rpstart = r.prefix.len ;
  if (!stralloc_cats(&r.prefix, "Return-Path: <")) dienomem() ;
  cats_oneline(&r.prefix, d->sender) ;
  if (!stralloc_cats(&r.prefix, ">\n")) dienomem() ;
  r.dtstart = r.prefix.len ;
  if (!stralloc_cats(&r.prefix, "Delivered-To: ")) dienomem() ;
  cats_oneline(&r.prefix, r.recip.s) ;
  if (!stralloc_catb(&r.prefix, "\n", 1)) dienomem() ;

  if (doit)
  {
    int h = header_has_line(msgfd, r.prefix.s + r.dtstart, r.prefix.len - r.dtstart - 1) ;
    if (h < 0) { code = local_fail(why, EX_TEMP, 1, "unable to read message (#4.3.0)", (char *)0) ; goto end ; }
    if (h) { code = local_fail(why, EX_PERM, 0, "message is looping: it already has my Delivered-To line (#5.4.6)", (char *)0) ; goto end ; }
  }

  /* the programs' environment (qmail-command(8)) */
  env_sets(&r.mods, "HOST", d->domain) ;
  env_sets(&r.mods, "HOME", homedir) ;
  env_sets(&r.mods, "USER", d->user) ;
  env_sets(&r.mods, "LOCAL", d->local) ;
  env_sets(&r.mods, "RECIPIENT", r.recip.s) ;
  env_set(&r.mods, "UFLINE", r.prefix.s, r.rpstart) ;
  env_set(&r.mods, "RPLINE", r.prefix.s + r.rpstart, r.dtstart - r.rpstart) ;
  env_set(&r.mods, "DTLINE", r.prefix.s + r.dtstart, r.prefix.len - r.dtstart) ;
  env_sets(&r.mods, "SENDER", d->sender) ;
  env_exts(&r.mods, d->ext) ;
  env_hosts(&r.mods, d->domain) ;

  if (!dotqmail_safeext(&safeext, d->ext)) dienomem() ;
  {
    int f = dotqmail_find(d->dash, safeext.s, &qmname, &cmds, &xbit, &defaultpos, why) ;
    if (f == EX_TEMP) { code = f ; goto end ; }
    if (!f && *d->dash)
    {
      /* yubin's plus addressing: a home without any .qmail file gets its
         extensions delivered like the address itself */
      int h = home_has_dotqmail(why) ;
      if (h == EX_TEMP) { code = h ; goto end ; }
      if (h) { code = local_fail(why, EX_PERM, 0, "Sorry, no mailbox here by that name. (#5.1.1)", (char *)0) ; goto end ; }
    }
    if (f && defaultpos >= 0 && (size_t)defaultpos <= strlen(d->ext)) env_sets(&r.mods, "DEFAULT", d->ext + defaultpos) ;
    else if (!stralloc_catb(&r.mods, "DEFAULT", 8)) dienomem() ;   /* unset */
  }

  /* NEWSENDER: the sender of forwards (dot-qmail(5): -owner, VERP) */
  if (!stralloc_copys(&newsender, d->sender)) dienomem() ;
  if (*d->sender && strcmp(d->sender, "#@[]"))
  {
    int o = dotqmail_exists(d->dash, safeext.s, "-owner", why) ;
    if (o == 1) o = dotqmail_exists(d->dash, safeext.s, "-owner-default", why) + 1 ;
    if (o == EX_TEMP || o == EX_TEMP + 1) { code = EX_TEMP ; goto end ; }
    if (o)
    {
      if (!stralloc_copys(&newsender, d->local)
       || !stralloc_cats(&newsender, o == 2 ? "-owner-@" : "-owner@")
       || !stralloc_cats(&newsender, d->domain)
       || (o == 2 && !stralloc_cats(&newsender, "-@[]"))) dienomem() ;
    }
  }
  if (!stralloc_0(&newsender)) dienomem() ;
  env_sets(&r.mods, "NEWSENDER", newsender.s) ;

  if (!cmds.len)
  {
    if (!stralloc_copys(&cmds, d->defaultdelivery)) dienomem() ;
    xbit = 0 ;
    if (!stralloc_copys(&qmname, "defaultdelivery") || !stralloc_0(&qmname)) dienomem() ;
  }
  if (!cmds.len || cmds.s[cmds.len - 1] != '\n')
    if (!stralloc_catb(&cmds, "\n", 1)) dienomem() ;

  {
    size_t i = 0 ;
    unsigned long lineno = 0 ;
    int stop = 0 ;
    for (size_t j = 0 ; j < cmds.len && !stop ; j++)
    {
      if (cmds.s[j] != '\n') continue ;
      size_t k = j ;
      char *line = cmds.s + i ;
      lineno++ ;
      cmds.s[j] = 0 ;
      while (k > i && (cmds.s[k-1] == ' ' || cmds.s[k-1] == '\t')) cmds.s[--k] = 0 ;
      i = j + 1 ;
      if (memchr(line, 0, cmds.s + k - line))
      {
        char nb[ULONG_FMT] ;
        nb[ulong_fmt(nb, lineno)] = 0 ;
        code = local_fail(why, EX_TEMP, 0, "Uh-oh: line ", nb, " of ", qmname.s, " holds a NUL byte (#4.7.0)", (char *)0) ;
        goto end ;
      }
      switch (line[0])
      {
        case 0 :
          if (lineno > 1) break ;
          code = local_fail(why, EX_TEMP, 0, "Uh-oh: first line of ", qmname.s, " is blank (#4.2.1)", (char *)0) ;
          goto end ;
        case '#' : break ;
        case '.' :
        case '/' :
          rep->files++ ;
          if (xbit) { code = local_fail(why, EX_TEMP, 0, "Uh-oh: ", qmname.s, " has file delivery but has x bit set (#4.7.0)", (char *)0) ; goto end ; }
          if (line[strlen(line) - 1] == '/')
          {
            if (!doit) describe_line(describe, "maildir ", line) ;
            else if ((code = do_maildir(&r, line, strlen(line), why))) goto end ;
          }
          else if (!doit) describe_line(describe, "mbox ", line) ;
          else if ((code = do_mbox(&r, line, why))) goto end ;
          break ;
        case '|' :
          rep->programs++ ;
          if (xbit) { code = local_fail(why, EX_TEMP, 0, "Uh-oh: ", qmname.s, " has prog delivery but has x bit set (#4.7.0)", (char *)0) ; goto end ; }
          if (!doit) describe_line(describe, "program ", line + 1) ;
          else if ((code = do_program(&r, line + 1, &stop, why))) goto end ;
          break ;
        case '+' :
          /* as qmail-local: "+list" makes the rest forward-only, other '+' lines are ignored */
          if (!strcmp(line + 1, "list")) xbit = 1 ;
          break ;
        case '&' :
          line++ ;
          /* fall through */
        default :
          rep->forwards++ ;
          if (!*line || !queue_addr_ok(line, strlen(line)))
          {
            size_t len = strlen(line) ;
            if (len > 100) memcpy(line + 97, "...", 4) ;   /* a reason, not a copy of the line */
            code = local_fail(why, EX_PERM, 0, "bad forward address in ", qmname.s, ": ", *line ? line : "(empty)", " (#5.1.3)", (char *)0) ;
            goto end ;
          }
          if (!doit) describe_line(describe, "forward ", line) ;
          else
          {
            size_t off = line - cmds.s ;
            if (!genalloc_append(size_t, &recips, &off)) dienomem() ;
          }
          break ;
      }
    }
  }
  if (doit && genalloc_len(size_t, &recips))
    code = do_forward(&r, newsender.s, cmds.s, &recips, &rep->qp, why) ;

 end:
  if (r.progfd >= 0 && r.progfd != msgfd) fd_close(r.progfd) ;
  genalloc_free(size_t, &recips) ;
  genalloc_free(char const *, &r.env) ;
  stralloc_free(&r.mods) ;
  stralloc_free(&r.prefix) ;
  stralloc_free(&r.recip) ;
  stralloc_free(&newsender) ;
  stralloc_free(&cmds) ;
  stralloc_free(&qmname) ;
  stralloc_free(&safeext) ;
  return code ;
}

int local_deliver (struct delivery const *d, int msgfd, stralloc *why)
{
  struct local_report rep = LOCAL_REPORT_ZERO ;
  return local_run(d, msgfd, 0, &rep, why) ;
}
