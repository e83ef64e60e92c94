/* The |program lines of the delivery code (local/local.h): the programs'
 * environment (qmail-command(8)), their stdin (the message from offset
 * 0), and running one: /bin/sh -c in a process group of its own, its
 * output relayed to fd 1 and its last line kept as the reason, its exit
 * code mapped as qmail-local does, and the time limit of
 * control/timeoutlocal (SIGTERM, then SIGKILL). */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/bytestr.h>
#include <skalibs/djbunix.h>
#include <skalibs/env.h>
#include <skalibs/genalloc.h>
#include <skalibs/iopause.h>
#include <skalibs/selfpipe.h>
#include <skalibs/stralloc.h>
#include <skalibs/tai.h>
#include <skalibs/types.h>

#include "control.h"
#include "exitcodes.h"
#include "ylog.h"

#include "local/local.h"

#define PROGRAM_TIMEOUT 3600     /* seconds, when control/timeoutlocal is missing */
#define PROGRAM_GRACE 5          /* seconds between SIGTERM and SIGKILL */
#define LASTLINE_MAX 1000        /* the part of a program's last line kept */

extern char **environ ;

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
 * later (or as soon as the program itself has exited) SIGKILL, and the
 * delivery is deferred.
 * Returns 0 (with *stop = 1 for exit code 99), 100 for the exit codes
 * 100, 64, 65, 70, 76, 77, 78 and 112, 111 for any other code, a signal
 * or the time limit; the reason in why: the program's last line if it
 * wrote one, else what happened. */
/* The timed-out program pid has exited: what it left in its process group
 * (a background child that ignores SIGTERM) is killed now, not left
 * running.  Called before the reap: the zombie keeps pid, so the group's
 * number cannot have been given to anyone else's processes. */
static void kill_leftovers (pid_t pid)
{
  siginfo_t si = { .si_pid = 0 } ;
  if (waitid(P_PID, pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid != pid) return ;
  /* it can only fail with ESRCH: nothing was left */
  (void)kill(-pid, SIGKILL) ;
}

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
      if (killed) kill_leftovers(pid) ;
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

/* "NAME=value\0" into the environment modifications */
static void env_set (stralloc *mods, char const *name, char const *value, size_t len)
{
  if (!stralloc_cats(mods, name) || !stralloc_catb(mods, "=", 1)
   || !stralloc_catb(mods, value, len) || !stralloc_0(mods)) local_dienomem() ;
}

void program_setenv (stralloc *mods, char const *name, char const *value)
{
  env_set(mods, name, value, strlen(value)) ;
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
    program_setenv(mods, names[k], x) ;
  }
}

void program_env (struct run *r)
{
  struct delivery const *d = r->d ;
  program_setenv(&r->mods, "HOST", d->domain) ;
  program_setenv(&r->mods, "HOME", d->home) ;
  program_setenv(&r->mods, "USER", d->user) ;
  program_setenv(&r->mods, "LOCAL", d->local) ;
  program_setenv(&r->mods, "RECIPIENT", r->recip.s) ;
  env_set(&r->mods, "UFLINE", r->prefix.s, r->rpstart) ;
  env_set(&r->mods, "RPLINE", r->prefix.s + r->rpstart, r->dtstart - r->rpstart) ;
  env_set(&r->mods, "DTLINE", r->prefix.s + r->dtstart, r->prefix.len - r->dtstart) ;
  program_setenv(&r->mods, "SENDER", d->sender) ;
  env_exts(&r->mods, d->ext) ;
  env_hosts(&r->mods, d->domain) ;
}

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

int do_program (struct run *r, char const *cmd, int *stop, stralloc *why)
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
    if (!genalloc_ready(char const *, &r->env, n + m + 1)) local_dienomem() ;
    if (!env_merge(genalloc_s(char const *, &r->env), n + m + 1, (char const *const *)environ, n, r->mods.s, r->mods.len)) local_dienomem() ;
    genalloc_setlen(char const *, &r->env, n + m + 1) ;
  }
  if (r->progfd < 0 && (code = program_stdin(r, why))) return code ;
  if (lseek(r->progfd, 0, SEEK_SET) < 0) return local_fail(why, EX_TEMP, 1, "unable to rewind the message (#4.3.0)", (char *)0) ;
  code = program_run(cmd, genalloc_s(char const *, &r->env), r->progfd, r->timeout, stop, why) ;
  if (!code) ylog("delivered", "to", r->recip.s, "program", cmd, (char *)0) ;
  return code ;
}
