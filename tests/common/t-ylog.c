/* t-ylog: common/ylog.c against ylog.h (DESIGN.md, Logs).
 *
 * ylog_escape: printable ASCII kept, every other byte and '=', '\\', '"'
 * written as \xHH (hex digits of either case accepted), appended to sa.
 * ylog: with stderr redirected to a file, the exact line
 * "<PROG>: verb k=v ...\n" including escaping, NULL value as "-", empty
 * value as "", a value of 512 bytes kept whole and one of 513+ cut and
 * ending in "...", and that a hostile value ("x ip=192.0.2.1\nsmtpd: ...")
 * cannot add a field or a line.  Lines written by 8 processes at once to
 * one pipe never interleave (one write(2) per line). */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>

#include "ylog.h"

char const *PROG = "t-ylog" ;

static void check (char const *name, int ok, char const *why)
{
  if (ok) printf("PASS ylog-%s\n", name) ;
  else printf("FAIL ylog-%s: %s\n", name, why) ;
  fflush(stdout) ;
}

/* equal, with the two digits after "\x" compared case-insensitively */
static int same (char const *got, size_t gotlen, char const *want, size_t wantlen)
{
  size_t i ;
  int hexleft = 0 ;
  if (gotlen != wantlen) return 0 ;
  for (i = 0 ; i < gotlen ; i++)
  {
    char a = got[i], b = want[i] ;
    if (hexleft)
    {
      if (a >= 'A' && a <= 'F') a += 'a' - 'A' ;
      if (b >= 'A' && b <= 'F') b += 'a' - 'A' ;
      hexleft-- ;
    }
    if (a != b) return 0 ;
    if (i && got[i - 1] == '\\' && a == 'x') hexleft = 2 ;
  }
  return 1 ;
}

static char const *show (char const *s, size_t n)
{
  static char buf[400] ;
  size_t i, o = 0 ;
  o += snprintf(buf, sizeof buf, "got \"") ;
  for (i = 0 ; i < n && o < sizeof buf - 16 ; i++)
  {
    unsigned char c = s[i] ;
    if (c >= 32 && c < 127) buf[o++] = c ;
    else o += snprintf(buf + o, sizeof buf - o, "<%02x>", c) ;
  }
  snprintf(buf + o, sizeof buf - o, "%s\" (%zu bytes)", i < n ? "..." : "", n) ;
  return buf ;
}

static void t_escape (char const *name, char const *in, size_t inlen, char const *want)
{
  stralloc sa = STRALLOC_ZERO ;
  int r ;
  if (!stralloc_copys(&sa, "pre:")) exit(111) ;
  r = ylog_escape(&sa, in, inlen) ;
  check(name, r == 1 && sa.len >= 4 && !memcmp(sa.s, "pre:", 4) && same(sa.s + 4, sa.len - 4, want, strlen(want)), show(sa.s, sa.len)) ;
  stralloc_free(&sa) ;
}

static int logfd = -1 ;
static int saved2 = -1 ;

/* everything written to fd 2 since the last call */
static void take (stralloc *sa)
{
  char buf[4096] ;
  ssize_t r ;
  sa->len = 0 ;
  while ((r = read(logfd, buf, sizeof buf)) > 0)
    if (!stralloc_catb(sa, buf, r)) exit(111) ;
}

static void expect_line (char const *name, stralloc *got, char const *want)
{
  take(got) ;
  check(name, same(got->s, got->len, want, strlen(want)), show(got->s, got->len)) ;
}

static void concurrent (void)
{
  int p[2], i, bad = 0, lines = 0 ;
  stralloc all = STRALLOC_ZERO ;
  char buf[65536] ;
  ssize_t r ;
  pid_t pids[8] ;
  if (pipe(p) < 0) { perror("pipe") ; exit(111) ; }
  for (i = 0 ; i < 8 ; i++)
  {
    pids[i] = fork() ;
    if (pids[i] < 0) { perror("fork") ; exit(111) ; }
    if (!pids[i])
    {
      char val[501] ;
      int j ;
      close(p[0]) ;
      if (dup2(p[1], 2) < 0) _exit(111) ;
      memset(val, 'a' + i, 500) ; val[500] = 0 ;
      for (j = 0 ; j < 200 ; j++) ylog("burst", "who", val + 499 - i, "v", val, (char *)0) ;
      _exit(0) ;
    }
  }
  close(p[1]) ;
  while ((r = read(p[0], buf, sizeof buf)) > 0)
    if (!stralloc_catb(&all, buf, r)) exit(111) ;
  close(p[0]) ;
  for (i = 0 ; i < 8 ; i++) waitpid(pids[i], 0, 0) ;
  {
    char exp[8][600] ;
    size_t explen[8], pos = 0 ;
    for (i = 0 ; i < 8 ; i++)
    {
      size_t n = 0 ;
      memcpy(exp[i], "t-ylog: burst who=", 18) ; n = 18 ;
      memset(exp[i] + n, 'a' + i, i + 1) ; n += i + 1 ;
      memcpy(exp[i] + n, " v=", 3) ; n += 3 ;
      memset(exp[i] + n, 'a' + i, 500) ; n += 500 ;
      exp[i][n++] = '\n' ;
      explen[i] = n ;
    }
    while (pos < all.len)
    {
      char const *nl = memchr(all.s + pos, '\n', all.len - pos) ;
      size_t n = nl ? (size_t)(nl - (all.s + pos)) + 1 : all.len - pos ;
      int k = n > 18 ? all.s[pos + 18] - 'a' : -1 ;
      if (k < 0 || k > 7 || n != explen[k] || memcmp(all.s + pos, exp[k], n)) bad++ ;
      lines++ ;
      pos += n ;
    }
  }
  {
    char why[100] ;
    snprintf(why, sizeof why, "%d lines, %d garbled (want 1600, 0)", lines, bad) ;
    check("concurrent-lines", lines == 1600 && !bad, why) ;
  }
  stralloc_free(&all) ;
}

int main (void)
{
  char fn[] = "/tmp/t-ylog.XXXXXX" ;
  stralloc got = STRALLOC_ZERO, big = STRALLOC_ZERO, want = STRALLOC_ZERO ;
  int fd ;

  /* ylog_escape */
  t_escape("escape-plain", "alice", 5, "alice") ;
  t_escape("escape-printable", "!#$%&'()*+,-./09:;<>?@AZ[]^_`az{|}~", 35, "!#$%&'()*+,-./09:;<>?@AZ[]^_`az{|}~") ;
  t_escape("escape-space", "a b", 3, "a\\x20b") ;
  t_escape("escape-equals", "a=b", 3, "a\\x3db") ;
  t_escape("escape-backslash", "a\\b", 3, "a\\x5cb") ;
  t_escape("escape-quote", "a\"b", 3, "a\\x22b") ;
  t_escape("escape-newline", "a\nb\r", 4, "a\\x0ab\\x0d") ;
  t_escape("escape-nul", "a\0b", 3, "a\\x00b") ;
  t_escape("escape-tab-del", "\t\177", 2, "\\x09\\x7f") ;
  t_escape("escape-8bit", "\xc3\xa4\xff", 3, "\\xc3\\xa4\\xff") ;
  t_escape("escape-forgery", "x ip=192.0.2.1", 14, "x\\x20ip\\x3d192.0.2.1") ;
  t_escape("escape-len-respected", "abcdef", 3, "abc") ;

  /* ylog, with stderr going to a file */
  fd = mkstemp(fn) ;
  if (fd < 0) { perror("mkstemp") ; return 111 ; }
  logfd = open(fn, O_RDONLY) ;
  unlink(fn) ;
  saved2 = dup(2) ;
  if (logfd < 0 || saved2 < 0 || dup2(fd, 2) < 0) { perror("dup") ; return 111 ; }
  close(fd) ;

  ylog("auth-fail", "ip", "203.0.113.9", "user", "alice", "mech", "PLAIN", (char *)0) ;
  expect_line("line-basic", &got, "t-ylog: auth-fail ip=203.0.113.9 user=alice mech=PLAIN\n") ;
  ylog("start", (char *)0) ;
  expect_line("line-no-fields", &got, "t-ylog: start\n") ;
  ylog("rcpt", "to", (char *)0, (char *)0) ;
  expect_line("line-null-value", &got, "t-ylog: rcpt to=-\n") ;
  ylog("helo", "name", "", "ip", "127.0.0.1", (char *)0) ;
  expect_line("line-empty-value", &got, "t-ylog: helo name=\"\" ip=127.0.0.1\n") ;
  ylog("auth-fail", "user", "x ip=192.0.2.1\nt-ylog: accept ip=192.0.2.1", "ip", "203.0.113.9", (char *)0) ;
  expect_line("line-forgery", &got, "t-ylog: auth-fail user=x\\x20ip\\x3d192.0.2.1\\x0at-ylog:\\x20accept\\x20ip\\x3d192.0.2.1 ip=203.0.113.9\n") ;

  if (!stralloc_copys(&big, "")) return 111 ;
  while (big.len < 512) if (!stralloc_catb(&big, "v", 1)) return 111 ;
  if (!stralloc_0(&big)) return 111 ;
  if (!stralloc_copys(&want, "t-ylog: long v=") || !stralloc_cats(&want, big.s) || !stralloc_cats(&want, "\n") || !stralloc_0(&want)) return 111 ;
  ylog("long", "v", big.s, (char *)0) ;
  expect_line("line-512-kept", &got, want.s) ;

  big.len-- ;
  while (big.len < 5000) if (!stralloc_catb(&big, "w", 1)) return 111 ;
  if (!stralloc_0(&big)) return 111 ;
  ylog("long", "v", big.s, "next", "1", (char *)0) ;
  take(&got) ;
  {
    /* cut: "t-ylog: long v=" + at most 512 value bytes + "..." + " next=1\n" */
    size_t head = 15, tail = 8 ;
    int ok = got.len > head + 3 + tail && got.len <= head + 512 + 3 + tail
      && !memcmp(got.s, "t-ylog: long v=", head)
      && !memcmp(got.s + got.len - tail - 3, "...", 3)
      && !memcmp(got.s + got.len - tail, " next=1\n", tail)
      && !memcmp(got.s + head, big.s, got.len - head - 3 - tail) ;
    check("line-cut", ok, show(got.s, got.len)) ;
  }
  {
    /* a cut value full of bytes to escape still stays one bounded line */
    stralloc nasty = STRALLOC_ZERO ;
    size_t i, nl = 0 ;
    for (i = 0 ; i < 3000 ; i++) if (!stralloc_catb(&nasty, "\n", 1)) return 111 ;
    if (!stralloc_0(&nasty)) return 111 ;
    ylog("nasty", "v", nasty.s, (char *)0) ;
    take(&got) ;
    for (i = 0 ; i < got.len ; i++) if (got.s[i] == '\n') nl++ ;
    check("line-cut-escaped", nl == 1 && got.s[got.len - 1] == '\n' && got.len <= 16 + 4 * 512 + 3 + 1, show(got.s, got.len)) ;
    stralloc_free(&nasty) ;
  }

  if (dup2(saved2, 2) < 0) return 111 ;
  close(saved2) ;
  close(logfd) ;

  concurrent() ;

  stralloc_free(&got) ;
  stralloc_free(&big) ;
  stralloc_free(&want) ;
  return 0 ;
}
