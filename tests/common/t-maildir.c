/* t-maildir: common/maildir.c against maildir.h (and the Maildir spec).
 *
 * maildir_unique: "<sec>.M<usec>P<pid>Q<count>.<host>" with the real time,
 * pid and hostname ('/' and ':' escaped as \057 and \072), different each
 * call and in a child process.  maildir_make: dir, tmp, new, cur with mode
 * 0700, idempotent, a file in the way is an error.  maildir_deliver: the
 * file in new/ holds exactly prefix + fd from its current offset to EOF
 * (NULs, bare CR, 5 MB, a pipe, empty), "new/NAME" is returned, tmp/ is
 * left empty; without new/ or tmp/, or with an unreadable fd, it returns
 * 0 with errno set and leaves nothing in tmp/ or new/; it never creates
 * the Maildir; 4 processes delivering 50 messages each make 200 files.
 *
 * Exactly once (maildir_opt): maildir_unique_for's format; a delivery
 * named after a queue id gets that name (plus the sizes); a second one
 * with check finds it in new/, or in cur/ with flags, writes nothing and
 * says found; a different recipient or line does not match; a stale
 * tmp/ file of the same name (a killed attempt of an older version, or
 * of a file system without O_TMPFILE) neither fails the delivery nor
 * gets into it, and the delivery itself names nothing in tmp/ (the file
 * is made with O_TMPFILE and linked into new/); with syncdirs new/ is
 * listed once and maildir_syncdirs syncs it. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>

#include "maildir.h"

char const *PROG = "t-maildir" ;

static char base[] = "/tmp/t-maildir.XXXXXX" ;

static void check (char const *name, int ok, char const *why)
{
  if (ok) printf("PASS maildir-%s\n", name) ;
  else printf("FAIL maildir-%s: %s\n", name, why) ;
  fflush(stdout) ;
}

static char const *path (char const *rel)
{
  static char buf[4][512] ;
  static int k ;
  k = (k + 1) & 3 ;
  snprintf(buf[k], sizeof buf[k], "%s/%s", base, rel) ;
  return buf[k] ;
}

/* number of entries in dir (not . and ..), -1 if it can't be read */
static int count (char const *dir)
{
  DIR *d = opendir(dir) ;
  struct dirent *e ;
  int n = 0 ;
  if (!d) return -1 ;
  while ((e = readdir(d))) if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++ ;
  closedir(d) ;
  return n ;
}

static int slurp (char const *fn, stralloc *sa)
{
  char buf[65536] ;
  ssize_t r ;
  int fd = open(fn, O_RDONLY) ;
  sa->len = 0 ;
  if (fd < 0) return 0 ;
  while ((r = read(fd, buf, sizeof buf)) > 0)
    if (!stralloc_catb(sa, buf, r)) exit(111) ;
  close(fd) ;
  return r == 0 ;
}

/* a file holding s[0..n), open for reading at offset 0 */
static int tmpfd (char const *s, size_t n)
{
  char fn[] = "/tmp/t-maildir-msg.XXXXXX" ;
  int fd = mkstemp(fn) ;
  if (fd < 0) { perror("mkstemp") ; exit(111) ; }
  unlink(fn) ;
  if (write(fd, s, n) != (ssize_t)n || lseek(fd, 0, SEEK_SET) != 0) { perror("write") ; exit(111) ; }
  return fd ;
}

static char host[1100] ;

static void escaped_host (void)
{
  char h[256] ;
  size_t i, j = 0 ;
  if (gethostname(h, sizeof h - 1) < 0) strcpy(h, "localhost") ;
  h[sizeof h - 1] = 0 ;
  for (i = 0 ; h[i] ; i++)
  {
    if (h[i] == '/') { memcpy(host + j, "\\057", 4) ; j += 4 ; }
    else if (h[i] == ':') { memcpy(host + j, "\\072", 4) ; j += 4 ; }
    else host[j++] = h[i] ;
  }
  host[j] = 0 ;
}

/* checks a unique name; returns 0 or a reason */
static char const *bad_unique (char const *s, size_t len, unsigned long *q)
{
  static char why[600] ;
  regex_t re ;
  regmatch_t m[5] ;
  long sec, pid ;
  int r ;
  if (strlen(s) != len) return "length wrong or not NUL-terminated" ;
  if (regcomp(&re, "^([0-9]+)\\.M([0-9]{1,6})P([0-9]+)Q([0-9]+)\\.", REG_EXTENDED)) return "regcomp" ;
  r = regexec(&re, s, 5, m, 0) ;
  regfree(&re) ;
  snprintf(why, sizeof why, "bad name \"%.500s\"", s) ;
  if (r) return why ;
  sec = atol(s + m[1].rm_so) ;
  pid = atol(s + m[3].rm_so) ;
  *q = strtoul(s + m[4].rm_so, 0, 10) ;
  if (sec < time(0) - 5 || sec > time(0) + 5) return why ;
  if (pid != getpid()) return why ;
  if (strcmp(s + m[0].rm_eo, host)) return why ;
  return 0 ;
}

static void t_unique (void)
{
  stralloc a = STRALLOC_ZERO, b = STRALLOC_ZERO ;
  unsigned long qa = 0, qb = 0 ;
  char const *why ;
  int p[2] ;
  if (!stralloc_copys(&a, "junk")) exit(111) ;
  if (!maildir_unique(&a)) { check("unique", 0, "returned 0") ; return ; }
  why = bad_unique(a.s, a.len, &qa) ;
  check("unique-format", !why, why) ;
  if (!maildir_unique(&b)) { check("unique-twice", 0, "returned 0") ; return ; }
  why = bad_unique(b.s, b.len, &qb) ;
  check("unique-twice", !why && strcmp(a.s, b.s) && qb > qa, why ? why : "same name or Q not increasing") ;
  check("unique-no-slash-colon", !strchr(a.s, '/') && !strchr(a.s, ':'), a.s) ;
  /* a child process gets another name */
  if (pipe(p) < 0) exit(111) ;
  switch (fork())
  {
    case -1 : exit(111) ;
    case 0 :
    {
      stralloc c = STRALLOC_ZERO ;
      close(p[0]) ;
      if (maildir_unique(&c) && write(p[1], c.s, c.len) == (ssize_t)c.len) _exit(0) ;
      _exit(1) ;
    }
    default :
    {
      char buf[2048] ;
      ssize_t n ;
      close(p[1]) ;
      n = read(p[0], buf, sizeof buf - 1) ;
      close(p[0]) ;
      wait(0) ;
      if (n < 0) n = 0 ;
      buf[n] = 0 ;
      check("unique-child", n > 0 && strcmp(buf, a.s) && strcmp(buf, b.s), buf) ;
    }
  }
  stralloc_free(&a) ;
  stralloc_free(&b) ;
}

static int mode_is (char const *fn, mode_t mode)
{
  struct stat st ;
  return !stat(fn, &st) && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == mode ;
}

static void t_make (void)
{
  int ok ;
  umask(022) ;
  ok = maildir_make(path("M1")) ;
  check("make", ok == 1 && mode_is(path("M1"), 0700) && mode_is(path("M1/tmp"), 0700)
    && mode_is(path("M1/new"), 0700) && mode_is(path("M1/cur"), 0700) && count(path("M1")) == 3,
    "missing directory or mode not 0700") ;
  ok = maildir_make(path("M1")) ;
  check("make-again", ok == 1 && count(path("M1")) == 3, "second call failed") ;
  /* only some of the subdirectories missing */
  if (mkdir(path("M2"), 0700) < 0 || mkdir(path("M2/cur"), 0700) < 0) exit(111) ;
  ok = maildir_make(path("M2")) ;
  check("make-partial", ok == 1 && mode_is(path("M2/tmp"), 0700) && mode_is(path("M2/new"), 0700), "did not complete it") ;
  /* a regular file where new/ should be */
  if (mkdir(path("M3"), 0700) < 0) exit(111) ;
  close(open(path("M3/new"), O_WRONLY | O_CREAT, 0600)) ;
  errno = 0 ;
  ok = maildir_make(path("M3")) ;
  check("make-file-in-the-way", ok == 0, "returned 1 although M3/new is a regular file") ;
}

static void deliver_case (char const *name, char const *md, char const *prefix, size_t plen,
                          char const *msg, size_t mlen, off_t off)
{
  stralloc got = STRALLOC_ZERO, nm = STRALLOC_ZERO, want = STRALLOC_ZERO ;
  int fd = tmpfd(msg, mlen), r ;
  char fn[600], why[700] ;
  unsigned long q ;
  char const *bad ;
  int before = count(path(md)) ;
  if (off && lseek(fd, off, SEEK_SET) != off) exit(111) ;
  if (!stralloc_copys(&nm, "junk")) exit(111) ;
  snprintf(fn, sizeof fn, "%s/new", md) ;
  before = count(path(fn)) ;
  r = maildir_deliver(path(md), prefix, plen, fd, &nm) ;
  close(fd) ;
  if (r != 1) { snprintf(why, sizeof why, "returned %d: %s", r, strerror(errno)) ; check(name, 0, why) ; goto end ; }
  if (nm.len < 5 || memcmp(nm.s, "new/", 4)) { check(name, 0, "name does not start with new/") ; goto end ; }
  /* "new/<unique>,S=<bytes>,W=<crlf bytes>" */
  char *sizes = strstr(nm.s, ",S=") ;
  if (!sizes) { check(name, 0, "no ,S= in the name") ; goto end ; }
  *sizes = 0 ;
  bad = bad_unique(nm.s + 4, sizes - nm.s - 4, &q) ;
  *sizes = ',' ;
  if (bad) { check(name, 0, bad) ; goto end ; }
  snprintf(fn, sizeof fn, "%s/%s", md, nm.s) ;
  if (!slurp(path(fn), &got)) { check(name, 0, "file named is not there") ; goto end ; }
  if (!stralloc_catb(&want, prefix, plen) || !stralloc_catb(&want, msg + off, mlen - off)) exit(111) ;
  {
    size_t crlf = want.len ;
    char expect[100] ;
    for (size_t i = 0 ; i < want.len ; i++)
      if (want.s[i] == '\n' && (!i || want.s[i-1] != '\r')) crlf++ ;
    if (want.len && want.s[want.len-1] != '\n') crlf += 2 ;
    snprintf(expect, sizeof expect, ",S=%zu,W=%zu", want.len, crlf) ;
    if (strcmp(sizes, expect)) { snprintf(why, sizeof why, "sizes in the name %s, want %s", sizes, expect) ; check(name, 0, why) ; goto end ; }
  }
  snprintf(fn, sizeof fn, "%s/tmp", md) ;
  {
    char nf[600] ;
    snprintf(nf, sizeof nf, "%s/new", md) ;
    snprintf(why, sizeof why, "content %zu bytes (want %zu), equal %d; tmp/ has %d, new/ %d more", got.len, want.len,
      got.len == want.len && !memcmp(got.s, want.s, got.len), count(path(fn)), count(path(nf)) - before) ;
    check(name, got.len == want.len && !memcmp(got.s, want.s, got.len) && count(path(fn)) == 0 && count(path(nf)) == before + 1, why) ;
  }
 end:
  stralloc_free(&got) ;
  stralloc_free(&nm) ;
  stralloc_free(&want) ;
}

static void fail_case (char const *name, char const *md, int fd, char const *why0)
{
  stralloc nm = STRALLOC_ZERO ;
  char t[600], n[600], why[800] ;
  int r, e, ct, cn ;
  snprintf(t, sizeof t, "%s/tmp", md) ;
  snprintf(n, sizeof n, "%s/new", md) ;
  errno = 0 ;
  r = maildir_deliver(path(md), "X: y\n", 5, fd, &nm) ;
  e = errno ;
  ct = count(path(t)) ;
  cn = count(path(n)) ;
  snprintf(why, sizeof why, "%s: returned %d, errno %d, tmp/ %d files, new/ %d files", why0, r, e, ct, cn) ;
  check(name, r == 0 && e != 0 && ct <= 0 && cn <= 0, why) ;
  stralloc_free(&nm) ;
}

static void t_deliver (void)
{
  static char const msg[] = "Subject: x\n\nbody\n" ;
  static char const pre[] = "Return-Path: <a@b.example>\nDelivered-To: u@x.example\n" ;
  stralloc big = STRALLOC_ZERO ;
  size_t i ;
  if (!maildir_make(path("D"))) { check("deliver", 0, "maildir_make failed") ; return ; }
  deliver_case("deliver-basic", "D", pre, sizeof pre - 1, msg, sizeof msg - 1, 0) ;
  deliver_case("deliver-offset", "D", pre, sizeof pre - 1, msg, sizeof msg - 1, 12) ;
  deliver_case("deliver-no-prefix", "D", "", 0, msg, sizeof msg - 1, 0) ;
  deliver_case("deliver-empty-message", "D", pre, sizeof pre - 1, "", 0, 0) ;
  deliver_case("deliver-offset-at-eof", "D", pre, sizeof pre - 1, msg, sizeof msg - 1, sizeof msg - 1) ;
  deliver_case("deliver-binary", "D", "A\0B\r", 4, "x\0y\r\nz\rw\n\0", 10, 0) ;
  for (i = 0 ; i < 5 * 1024 * 1024 ; i++)
  {
    char c = "abcdefghijklmnopqrstuvwxyz\n"[(i * 7 + i / 1000) % 27] ;
    if (!stralloc_catb(&big, &c, 1)) exit(111) ;
  }
  deliver_case("deliver-5mb", "D", pre, sizeof pre - 1, big.s, big.len, 3) ;
  stralloc_free(&big) ;
  {
    int r, fd = tmpfd(msg, sizeof msg - 1), before = count(path("D/new")) ;
    r = maildir_deliver(path("D"), "", 0, fd, 0) ;
    close(fd) ;
    check("deliver-name-null", r == 1 && count(path("D/new")) == before + 1, "returned 0 or no file") ;
  }
  {
    /* from a pipe */
    int p[2], r, before = count(path("D/new")) ;
    stralloc got = STRALLOC_ZERO, nm = STRALLOC_ZERO ;
    if (pipe(p) < 0 || write(p[1], msg, sizeof msg - 1) != sizeof msg - 1) exit(111) ;
    close(p[1]) ;
    r = maildir_deliver(path("D"), "P: 1\n", 5, p[0], &nm) ;
    close(p[0]) ;
    if (r == 1 && !stralloc_0(&nm)) exit(111) ;
    {
      char fn[600] ;
      snprintf(fn, sizeof fn, "D/%s", r == 1 ? nm.s : "x") ;
      check("deliver-pipe", r == 1 && slurp(path(fn), &got) && got.len == 5 + sizeof msg - 1
        && !memcmp(got.s, "P: 1\n", 5) && !memcmp(got.s + 5, msg, sizeof msg - 1)
        && count(path("D/new")) == before + 1, "wrong content") ;
    }
    stralloc_free(&got) ;
    stralloc_free(&nm) ;
  }

  /* failures */
  if (mkdir(path("F1"), 0700) < 0 || mkdir(path("F1/tmp"), 0700) < 0 || mkdir(path("F1/cur"), 0700) < 0) exit(111) ;
  {
    int fd = tmpfd(msg, sizeof msg - 1) ;
    fail_case("deliver-no-new", "F1", fd, "no new/") ;
    close(fd) ;
  }
  if (mkdir(path("F2"), 0700) < 0 || mkdir(path("F2/new"), 0700) < 0 || mkdir(path("F2/cur"), 0700) < 0) exit(111) ;
  {
    int fd = tmpfd(msg, sizeof msg - 1) ;
    fail_case("deliver-no-tmp", "F2", fd, "no tmp/") ;
    close(fd) ;
  }
  if (!maildir_make(path("F3"))) exit(111) ;
  {
    int wfd = open("/dev/null", O_WRONLY) ;
    if (wfd < 0) exit(111) ;
    fail_case("deliver-unreadable-fd", "F3", wfd, "fd not readable") ;
    close(wfd) ;
  }
  {
    int fd = tmpfd(msg, sizeof msg - 1), r ;
    errno = 0 ;
    r = maildir_deliver(path("nosuch"), "", 0, fd, 0) ;
    close(fd) ;
    check("deliver-no-maildir", r == 0 && errno != 0 && count(path("nosuch")) == -1, "returned 1 or created the Maildir") ;
  }

  /* 4 processes x 50 deliveries */
  if (!maildir_make(path("C"))) exit(111) ;
  {
    pid_t pids[4] ;
    int i2, bad = 0 ;
    for (i2 = 0 ; i2 < 4 ; i2++)
    {
      pids[i2] = fork() ;
      if (pids[i2] < 0) exit(111) ;
      if (!pids[i2])
      {
        int j ;
        for (j = 0 ; j < 50 ; j++)
        {
          int fd = tmpfd(msg, sizeof msg - 1) ;
          if (maildir_deliver(path("C"), "", 0, fd, 0) != 1) _exit(1) ;
          close(fd) ;
        }
        _exit(0) ;
      }
    }
    for (i2 = 0 ; i2 < 4 ; i2++)
    {
      int st ;
      if (waitpid(pids[i2], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) bad++ ;
    }
    {
      char why[100] ;
      snprintf(why, sizeof why, "%d children failed, new/ has %d files (want 200), tmp/ %d", bad, count(path("C/new")), count(path("C/tmp"))) ;
      check("deliver-concurrent", !bad && count(path("C/new")) == 200 && count(path("C/tmp")) == 0, why) ;
    }
  }
}

static void t_exactly_once (void)
{
  stralloc u = STRALLOC_ZERO, name = STRALLOC_ZERO, dirs = STRALLOC_ZERO ;
  char want[1400] ;
  snprintf(want, sizeof want, "1732781234.Q012345678P4242R3.%s", host) ;
  check("unique-for", maildir_unique_for(&u, "1732781234.012345678.4242", 3, 0) && !strcmp(u.s, want), u.s) ;
  snprintf(want, sizeof want, "1732781234.Q012345678P4242R3L2.%s", host) ;
  check("unique-for-line", maildir_unique_for(&u, "1732781234.012345678.4242", 3, 2) && !strcmp(u.s, want), u.s) ;
  check("unique-for-bad-qid", !maildir_unique_for(&u, "../x", 0, 0) && errno == EINVAL, "accepted ../x") ;
  if (!maildir_make(path("X"))) { check("exactly-once", 0, "maildir_make failed") ; return ; }
  static char const msg[] = "Subject: x\n\nbody\n" ;
  struct maildir_opt o = MAILDIR_OPT_ZERO ;
  o.qid = "1732781234.012345678.4242" ;
  o.rcpt = 1 ;
  int fd = tmpfd(msg, sizeof msg - 1) ;
  int r = maildir_deliver_opt(path("X"), "", 0, fd, &name, &o) ;
  close(fd) ;
  snprintf(want, sizeof want, "new/1732781234.Q012345678P4242R1.%s,S=%u,W=%u", host, (unsigned)(sizeof msg - 1), (unsigned)(sizeof msg - 1 + 3)) ;
  check("named-delivery", r == 1 && !o.found && !strcmp(name.s, want) && count(path("X/new")) == 1, name.len ? name.s : "returned 0") ;
  fd = tmpfd(msg, sizeof msg - 1) ;
  o.check = 1 ;
  r = maildir_deliver_opt(path("X"), "", 0, fd, &name, &o) ;
  close(fd) ;
  check("check-finds-new", r == 1 && o.found && !strcmp(name.s, want) && count(path("X/new")) == 1 && count(path("X/tmp")) == 0,
        "a second file, or not found") ;
  /* a reader moved it to cur/ with flags */
  {
    char from[1500], to[1500] ;
    snprintf(from, sizeof from, "%s/X/%s", base, want) ;
    snprintf(to, sizeof to, "%s/X/cur/%s:2,S", base, want + 4) ;
    if (rename(from, to) < 0) check("check-finds-cur", 0, "rename") ;
    fd = tmpfd(msg, sizeof msg - 1) ;
    r = maildir_deliver_opt(path("X"), "", 0, fd, &name, &o) ;
    close(fd) ;
    check("check-finds-cur", r == 1 && o.found && !strncmp(name.s, "cur/", 4) && count(path("X/new")) == 0 && count(path("X/cur")) == 1,
          "a second file, or not found") ;
  }
  /* another recipient, another line: not the same delivery */
  o.rcpt = 11 ;
  fd = tmpfd(msg, sizeof msg - 1) ;
  r = maildir_deliver_opt(path("X"), "", 0, fd, &name, &o) ;
  close(fd) ;
  check("check-other-rcpt", r == 1 && !o.found && count(path("X/new")) == 1, "R11 matched R1") ;
  o.rcpt = 1 ;
  o.line = 1 ;
  fd = tmpfd(msg, sizeof msg - 1) ;
  r = maildir_deliver_opt(path("X"), "", 0, fd, &name, &o) ;
  close(fd) ;
  check("check-other-line", r == 1 && !o.found && count(path("X/new")) == 2, "L1 matched") ;
  /* a stale tmp/ file from a killed attempt */
  o.line = 0 ;
  o.rcpt = 5 ;
  o.check = 0 ;
  o.syncdirs = &dirs ;
  if (!maildir_unique_for(&u, o.qid, 5, 0)) check("stale-tmp-ignored", 0, "maildir_unique_for") ;
  {
    char t[1500] ;
    snprintf(t, sizeof t, "%s/X/tmp/%s", base, u.s) ;
    int sfd = open(t, O_WRONLY | O_CREAT | O_EXCL, 0600) ;
    if (sfd >= 0) { if (write(sfd, "partial", 7) != 7) {} close(sfd) ; }
  }
  fd = tmpfd(msg, sizeof msg - 1) ;
  r = maildir_deliver_opt(path("X"), "", 0, fd, &name, &o) ;
  close(fd) ;
  {
    stralloc got = STRALLOC_ZERO ;
    char fn[1500] ;
    snprintf(fn, sizeof fn, "%s/X/%s", base, name.s) ;
    check("stale-tmp-ignored", r == 1 && count(path("X/tmp")) <= 1 && slurp(fn, &got)
          && got.len == sizeof msg - 1, "failed, or the stale bytes stayed") ;
    stralloc_free(&got) ;
  }
  o.rcpt = 6 ;
  fd = tmpfd(msg, sizeof msg - 1) ;
  r = maildir_deliver_opt(path("X"), "", 0, fd, &name, &o) ;
  close(fd) ;
  {
    char w[600] ;
    snprintf(w, sizeof w, "%s/new", path("X")) ;
    check("syncdirs-once", r == 1 && dirs.len == strlen(w) + 1 && !strcmp(dirs.s, w) && maildir_syncdirs(&dirs) == 1,
          dirs.len ? dirs.s : "empty") ;
  }
  stralloc_free(&u) ;
  stralloc_free(&name) ;
  stralloc_free(&dirs) ;
}

int main (void)
{
  if (!mkdtemp(base)) { perror("mkdtemp") ; return 111 ; }
  escaped_host() ;
  t_unique() ;
  t_make() ;
  t_deliver() ;
  t_exactly_once() ;
  {
    char cmd[300] ;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base) ;
    if (system(cmd) != 0) printf("warning: could not remove %s\n", base) ;
  }
  return 0 ;
}
