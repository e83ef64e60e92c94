/* t-control: common/control.c against control.h (qmail's control files).
 *
 * In a fresh instance root ($YUBIN_ROOT = a mkdtemp directory) checks:
 * control_readline (first line only, trailing spaces/tabs/CR removed,
 * leading ones kept, missing file with and without default, empty file,
 * a directory gives -1, the old content of sa is replaced), control_readulong
 * (decimal, default when missing, -1/EINVAL for garbage, empty, sign,
 * overflow), control_readlist (comments, blank and whitespace-only lines,
 * CRLF, surrounding whitespace, no final newline, many entries, missing
 * file, directory) and control_domain_in_list (exact and ".suffix" entries
 * with rcpthosts semantics, any case, trailing dot). */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>

#include "control.h"

char const *PROG = "t-control" ;

static char root[] = "/tmp/t-control.XXXXXX" ;

static void check (char const *name, int ok, char const *why)
{
  if (ok) printf("PASS control-%s\n", name) ;
  else printf("FAIL control-%s: %s\n", name, why) ;
}

static void writefile (char const *name, char const *s, size_t len)
{
  char fn[256] ;
  int fd ;
  snprintf(fn, sizeof fn, "%s/control/%s", root, name) ;
  fd = open(fn, O_WRONLY | O_CREAT | O_TRUNC, 0644) ;
  if (fd < 0 || write(fd, s, len) != (ssize_t)len || close(fd) < 0) { perror(fn) ; exit(111) ; }
}

static void writes (char const *name, char const *s)
{
  writefile(name, s, strlen(s)) ;
}

static void mkdir_control (char const *name)
{
  char fn[256] ;
  snprintf(fn, sizeof fn, "%s/control/%s", root, name) ;
  if (mkdir(fn, 0755) < 0) { perror(fn) ; exit(111) ; }
}

/* quote sa for a FAIL message */
static char const *show (stralloc const *sa, int r)
{
  static char buf[300] ;
  size_t i, n = 0 ;
  n += snprintf(buf, sizeof buf, "returned %d, got \"", r) ;
  for (i = 0 ; i < sa->len && n < sizeof buf - 8 ; i++)
  {
    unsigned char c = sa->s[i] ;
    if (c >= 32 && c < 127) buf[n++] = c ;
    else n += snprintf(buf + n, sizeof buf - n, "\\%03o", c) ;
  }
  snprintf(buf + n, sizeof buf - n, "\" (len %zu)", sa->len) ;
  return buf ;
}

static void t_readline (char const *name, char const *file, char const *content, char const *def, int want, char const *wantval)
{
  stralloc sa = STRALLOC_ZERO ;
  int r ;
  if (content) writes(file, content) ;
  if (!stralloc_copys(&sa, "junk from before")) exit(111) ;
  r = control_readline(&sa, file, def) ;
  if (wantval)
    check(name, r == want && sa.len == strlen(wantval) && !memcmp(sa.s, wantval, sa.len) && sa.s[sa.len] == 0, show(&sa, r)) ;
  else
    check(name, r == want && sa.len == 0, show(&sa, r)) ;
  stralloc_free(&sa) ;
}

static void t_readulong (char const *name, char const *file, char const *content, unsigned long def, int want, unsigned long wantval)
{
  unsigned long n = 12345 ;
  int r ;
  char buf[128] ;
  if (content) writes(file, content) ;
  errno = 0 ;
  r = control_readulong(&n, file, def) ;
  snprintf(buf, sizeof buf, "returned %d errno %d, n = %lu", r, errno, n) ;
  if (want < 0) check(name, r == -1 && errno == EINVAL, buf) ;
  else check(name, r == want && n == wantval, buf) ;
}

static void t_readlist (char const *name, char const *file, char const *content, size_t contentlen, int want, char const *wantval, size_t wantlen)
{
  stralloc sa = STRALLOC_ZERO ;
  int r ;
  if (content) writefile(file, content, contentlen) ;
  if (!stralloc_copys(&sa, "junk from before")) exit(111) ;
  r = control_readlist(&sa, file) ;
  check(name, r == want && sa.len == wantlen && !memcmp(sa.s, wantval, wantlen), show(&sa, r)) ;
  stralloc_free(&sa) ;
}

static void t_domain (char const *name, char const *list, size_t listlen, char const *domain, int want)
{
  int r = control_domain_in_list(list, listlen, domain) ;
  char buf[200] ;
  snprintf(buf, sizeof buf, "\"%s\" gave %d, want %d", domain, r, want) ;
  check(name, !r == !want, buf) ;
}

int main (void)
{
  char fn[256] ;
  if (!mkdtemp(root)) { perror("mkdtemp") ; return 111 ; }
  snprintf(fn, sizeof fn, "%s/control", root) ;
  if (mkdir(fn, 0755) < 0) { perror(fn) ; return 111 ; }
  if (setenv("YUBIN_ROOT", root, 1) < 0) return 111 ;

  /* control_readline */
  t_readline("readline-simple", "me", "mail.example.com\n", 0, 1, "mail.example.com") ;
  t_readline("readline-trailing-ws", "me", "host.example \t \r\n", 0, 1, "host.example") ;
  t_readline("readline-crlf", "me", "x.example\r\n", 0, 1, "x.example") ;
  t_readline("readline-first-line", "me", "first\nsecond\n", 0, 1, "first") ;
  t_readline("readline-no-newline", "me", "nonl", 0, 1, "nonl") ;
  t_readline("readline-leading-kept", "me", "  lead\n", 0, 1, "  lead") ;
  t_readline("readline-inner-space", "me", "a b\tc \n", 0, 1, "a b\tc") ;
  t_readline("readline-empty-file", "me", "", "def", 1, "") ;
  t_readline("readline-empty-line", "me", "\nsecond\n", "def", 1, "") ;
  t_readline("readline-missing-def", "nosuchfile", 0, "default.example", 0, "default.example") ;
  t_readline("readline-missing-nodef", "nosuchfile", 0, 0, 0, 0) ;
  {
    stralloc sa = STRALLOC_ZERO ;
    int r ;
    mkdir_control("adir") ;
    errno = 0 ;
    r = control_readline(&sa, "adir", "def") ;
    check("readline-directory", r == -1 && errno != 0 && errno != ENOENT, show(&sa, r)) ;
    stralloc_free(&sa) ;
  }
  {
    static char big[20002] ;
    memset(big, 'x', 20000) ;
    big[20000] = '\n' ;
    writefile("big", big, 20001) ;
    big[20000] = 0 ;
    t_readline("readline-long", "big", 0, 0, 1, big) ;
  }

  /* control_readulong */
  t_readulong("readulong-simple", "databytes", "42\n", 7, 1, 42) ;
  t_readulong("readulong-no-newline", "databytes", "42", 7, 1, 42) ;
  t_readulong("readulong-trailing-ws", "databytes", "42 \r\n", 7, 1, 42) ;
  t_readulong("readulong-zero", "databytes", "0\n", 7, 1, 0) ;
  t_readulong("readulong-leading-zeros", "databytes", "007\n", 7, 1, 7) ;
  t_readulong("readulong-max", "databytes", "18446744073709551615\n", 7, 1, ULONG_MAX) ;
  t_readulong("readulong-first-line", "databytes", "5\nxyz\n", 7, 1, 5) ;
  t_readulong("readulong-missing", "nosuchfile", 0, 777, 0, 777) ;
  t_readulong("readulong-garbage", "databytes", "abc\n", 7, -1, 0) ;
  t_readulong("readulong-trailing-garbage", "databytes", "42abc\n", 7, -1, 0) ;
  t_readulong("readulong-empty", "databytes", "", 7, -1, 0) ;
  t_readulong("readulong-negative", "databytes", "-1\n", 7, -1, 0) ;
  t_readulong("readulong-plus", "databytes", "+1\n", 7, -1, 0) ;
  t_readulong("readulong-hex", "databytes", "0x10\n", 7, -1, 0) ;
  t_readulong("readulong-inner-space", "databytes", "4 2\n", 7, -1, 0) ;
  t_readulong("readulong-overflow", "databytes", "18446744073709551616\n", 7, -1, 0) ;
  t_readulong("readulong-overflow-big", "databytes", "99999999999999999999999999999\n", 7, -1, 0) ;

  /* control_readlist */
  {
    char const *f = "a.example\n#comment\n\n  b.example  \r\nc.example" ;
    t_readlist("readlist-mixed", "rcpthosts", f, strlen(f), 1, "a.example\0b.example\0c.example", 30) ;
  }
  {
    char const *f = "\tx.example\t\n   \n\t\n#\n# two\nlast.example\n" ;
    t_readlist("readlist-whitespace-lines", "rcpthosts", f, strlen(f), 1, "x.example\0last.example", 23) ;
  }
  {
    char const *f = "one\r\ntwo\r\n" ;
    t_readlist("readlist-crlf", "rcpthosts", f, strlen(f), 1, "one\0two", 8) ;
  }
  {
    char const *f = "a b\n" ;
    t_readlist("readlist-inner-space-kept", "rcpthosts", f, strlen(f), 1, "a b", 4) ;
  }
  t_readlist("readlist-empty", "rcpthosts", "", 0, 1, "", 0) ;
  t_readlist("readlist-only-comments", "rcpthosts", "# a\n#b\n\n", 8, 1, "", 0) ;
  t_readlist("readlist-missing", "nosuchfile", 0, 0, 0, "", 0) ;
  {
    stralloc sa = STRALLOC_ZERO ;
    int r ;
    mkdir_control("alistdir") ;
    r = control_readlist(&sa, "alistdir") ;
    check("readlist-directory", r == -1, show(&sa, r)) ;
    stralloc_free(&sa) ;
  }
  {
    stralloc file = STRALLOC_ZERO, want = STRALLOC_ZERO ;
    char line[32] ;
    unsigned int i ;
    for (i = 0 ; i < 5000 ; i++)
    {
      int n = snprintf(line, sizeof line, "host%u.example\n", i) ;
      if (!stralloc_catb(&file, line, n) || !stralloc_catb(&want, line, n - 1) || !stralloc_0(&want)) return 111 ;
    }
    t_readlist("readlist-5000", "rcpthosts", file.s, file.len, 1, want.s, want.len) ;
    stralloc_free(&file) ;
    stralloc_free(&want) ;
  }

  /* control_domain_in_list */
  {
    static char const list[] = "example.com\0.sub.example.org\0Upper.Example\0" ;
    size_t n = sizeof list - 1 ;
    t_domain("domain-exact", list, n, "example.com", 1) ;
    t_domain("domain-exact-case", list, n, "EXAMPLE.Com", 1) ;
    t_domain("domain-exact-trailing-dot", list, n, "example.com.", 1) ;
    t_domain("domain-exact-no-subdomain", list, n, "www.example.com", 0) ;
    t_domain("domain-exact-no-prefix", list, n, "xexample.com", 0) ;
    t_domain("domain-exact-shorter", list, n, "example.co", 0) ;
    t_domain("domain-exact-longer", list, n, "example.comm", 0) ;
    t_domain("domain-suffix-sub", list, n, "a.sub.example.org", 1) ;
    t_domain("domain-suffix-subsub", list, n, "a.b.sub.example.org", 1) ;
    t_domain("domain-suffix-case-dot", list, n, "A.SUB.Example.Org.", 1) ;
    t_domain("domain-suffix-not-itself", list, n, "sub.example.org", 0) ;
    t_domain("domain-suffix-not-glued", list, n, "xsub.example.org", 0) ;
    t_domain("domain-suffix-not-parent", list, n, "example.org", 0) ;
    t_domain("domain-entry-case", list, n, "upper.example", 1) ;
    t_domain("domain-empty", list, n, "", 0) ;
    t_domain("domain-dot", list, n, ".", 0) ;
    t_domain("domain-empty-list", "", 0, "example.com", 0) ;
    t_domain("domain-listlen-respected", list, 12, "upper.example", 0) ;
  }
  {
    /* a list read from a file, then matched */
    stralloc sa = STRALLOC_ZERO ;
    int r ;
    writes("rcpthosts", "# ours\nours.example\n.ours.example\n") ;
    r = control_readlist(&sa, "rcpthosts") ;
    check("readlist-then-match", r == 1
      && control_domain_in_list(sa.s, sa.len, "ours.example")
      && control_domain_in_list(sa.s, sa.len, "mx.ours.example")
      && !control_domain_in_list(sa.s, sa.len, "other.example")
      && !control_domain_in_list(sa.s, sa.len, "# ours"), show(&sa, r)) ;
    stralloc_free(&sa) ;
  }

  {
    char cmd[300] ;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root) ;
    if (system(cmd) != 0) printf("warning: could not remove %s\n", root) ;
  }
  return 0 ;
}
