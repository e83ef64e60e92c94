/* t-assign: common/assign.c against assign.h.
 *
 * In a fresh instance root ($YUBIN_ROOT = a mkdtemp directory):
 * assign_parse_line on good and bad users/assign lines; then
 * users/assign.cdb written as yubin-newu writes it (through
 * assign_parse_line and skalibs' cdbmake, with qmail's wildchars key),
 * users/users.cdb and an alias/ directory, and assign_find in its order:
 * exact lines over wildcards, the longest wildcard, a wildcard taking its
 * own prefix, the case of the address kept in ext, then control/postmaster's
 * user, the users and their "user-ext", then the alias user's .qmail
 * files (exact, -default, .qmail-default, '.' as ':', case), nothing
 * for the rest; a catch-all "+:" line over everything; a qmail-style cdb
 * without the wildchars key; damaged cdbs give 0 or -1, never a crash. */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <skalibs/cdbmake.h>
#include <skalibs/stralloc.h>

#include "assign.h"

char const *PROG = "t-assign" ;

static char root[] = "/tmp/t-assign.XXXXXX" ;

static void check (char const *name, int ok, char const *why)
{
  if (ok) printf("PASS assign-%s\n", name) ;
  else printf("FAIL assign-%s: %s\n", name, why) ;
  fflush(stdout) ;
}

static void die (char const *what)
{
  perror(what) ;
  exit(111) ;
}

static void path (char *buf, size_t n, char const *rel)
{
  snprintf(buf, n, "%s/%s", root, rel) ;
}

static void write_file (char const *rel, char const *s)
{
  char fn[400] ;
  path(fn, sizeof fn, rel) ;
  int fd = open(fn, O_WRONLY | O_CREAT | O_TRUNC, 0644) ;
  if (fd < 0 || write(fd, s, strlen(s)) != (ssize_t)strlen(s) || close(fd) < 0) die(fn) ;
}

/* users/assign.cdb from lines, as yubin-newu makes it (wild: add the
 * wildchars key) */
static void make_assign (char const *const *lines, int wild)
{
  char fn[400], tmp[420] ;
  char wc[256] ;
  size_t nwc = 0 ;
  stralloc key = STRALLOC_ZERO, data = STRALLOC_ZERO ;
  cdbmaker c = CDBMAKER_ZERO ;
  path(fn, sizeof fn, "users/assign.cdb") ;
  snprintf(tmp, sizeof tmp, "%s.tmp", fn) ;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644) ;
  if (fd < 0 || !cdbmake_start(&c, fd)) die(tmp) ;
  for (; *lines ; lines++)
  {
    char const *err = "?" ;
    if (assign_parse_line(*lines, strlen(*lines), &key, &data, &err) != 1) { fprintf(stderr, "%s: %s\n", *lines, err) ; exit(111) ; }
    if (**lines == '+' && key.len > 1 && !memchr(wc, key.s[key.len - 1], nwc)) wc[nwc++] = key.s[key.len - 1] ;
    if (!cdbmake_add(&c, key.s, key.len, data.s, data.len)) die("cdbmake_add") ;
  }
  if (wild && !cdbmake_add(&c, "", 0, wc, nwc)) die("cdbmake_add") ;
  if (!cdbmake_finish(&c) || close(fd) < 0 || rename(tmp, fn) < 0) die("cdbmake_finish") ;
  stralloc_free(&key) ; stralloc_free(&data) ;
}

static void make_users (void)
{
  static struct { char const *k ; char const *v ; } const u[] =
  {
    { "alice", "1001:1001:/home/alice" },
    { "boss", "1003:1003:/home/boss" },
    { "postmaster", "1004:1004:/home/pm" },
  } ;
  char fn[400], tmp[420] ;
  cdbmaker c = CDBMAKER_ZERO ;
  path(fn, sizeof fn, "users/users.cdb") ;
  snprintf(tmp, sizeof tmp, "%s.tmp", fn) ;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644) ;
  if (fd < 0 || !cdbmake_start(&c, fd)) die(tmp) ;
  for (size_t i = 0 ; i < sizeof u / sizeof *u ; i++)
    if (!cdbmake_add(&c, u[i].k, strlen(u[i].k), u[i].v, strlen(u[i].v))) die("cdbmake_add") ;
  if (!cdbmake_finish(&c) || close(fd) < 0 || rename(tmp, fn) < 0) die("cdbmake_finish") ;
}

/* assign_find(local) must give want (1: kind, user, uid, gid, home,
 * dash, ext; home "@alias" means <root>/alias) */
static void t_find (char const *name, char const *local, char const *pmuser, int want, enum assign_kind kind,
                    char const *user, unsigned int uid, unsigned int gid, char const *home, char const *dash, char const *ext)
{
  struct assign a = ASSIGN_ZERO ;
  char why[600], ahome[400] ;
  int r = assign_find(local, strlen(local), pmuser, &a) ;
  if (home && !strcmp(home, "@alias")) { path(ahome, sizeof ahome, "alias") ; home = ahome ; }
  if (r == 1)
    snprintf(why, sizeof why, "returned 1 (want %d): kind %d user %s uid %u gid %u home %s dash \"%s\" ext \"%s\"", want,
             (int)a.kind, assign_user(&a), (unsigned)a.uid, (unsigned)a.gid, assign_home(&a), assign_dash(&a), assign_ext(&a)) ;
  else snprintf(why, sizeof why, "returned %d (want %d), errno %s", r, want, strerror(errno)) ;
  if (want == 1)
    check(name, r == 1 && a.kind == kind && !strcmp(assign_user(&a), user) && a.uid == uid && a.gid == gid
               && !strcmp(assign_home(&a), home) && !strcmp(assign_dash(&a), dash) && !strcmp(assign_ext(&a), ext), why) ;
  else check(name, r == want, why) ;
  assign_free(&a) ;
}

static void t_parse (char const *name, char const *line, int want, char const *wantkey, size_t keylen, char const *wantdata, size_t datalen)
{
  stralloc key = STRALLOC_ZERO, data = STRALLOC_ZERO ;
  char const *err = 0 ;
  char why[300] ;
  int r = assign_parse_line(line, strlen(line), &key, &data, &err) ;
  snprintf(why, sizeof why, "returned %d (want %d): %s", r, want, err ? err : "no reason") ;
  if (want == 1)
    check(name, r == 1 && key.len == keylen && !memcmp(key.s, wantkey, keylen) && data.len == datalen && !memcmp(data.s, wantdata, datalen), why) ;
  else check(name, r == 0 && err && *err, why) ;
  stralloc_free(&key) ; stralloc_free(&data) ;
}

int main (void)
{
  char dir[400] ;
  unsigned int me = getuid(), mygid = getgid() ;
  if (!mkdtemp(root)) die("mkdtemp") ;
  path(dir, sizeof dir, "users") ;
  if (mkdir(dir, 0755) < 0) die(dir) ;
  if (setenv("YUBIN_ROOT", root, 1) < 0) return 111 ;

  /* the line format */
#define PARSE_OK(name, line, key, data) t_parse(name, line, 1, key, sizeof key - 1, data, sizeof data - 1)
  PARSE_OK("parse-exact", "=Joe.Shmoe:joe:503:78:/home/joe:::", "!joe.shmoe\000", "joe\000503\00078\000/home/joe\000\000") ;
  PARSE_OK("parse-wild", "+Joe-:joe:507:100:/home/joe:-:x:", "!joe-", "joe\000507\000100\000/home/joe\000-\000x") ;
  PARSE_OK("parse-catchall", "+:alias:7790:2108:/var/qmail/alias:-::", "!", "alias\0007790\0002108\000/var/qmail/alias\000-\000") ;
  t_parse("parse-empty", "", 0, 0, 0, 0, 0) ;
  t_parse("parse-comment", "# joe", 0, 0, 0, 0, 0) ;
  t_parse("parse-no-sign", "joe:joe:1:1:/h:::", 0, 0, 0, 0, 0) ;
  t_parse("parse-few-fields", "=joe:joe:1:1:/h::", 0, 0, 0, 0, 0) ;
  t_parse("parse-trailing", "=joe:joe:1:1:/h:::x", 0, 0, 0, 0, 0) ;
  t_parse("parse-extra-field", "=joe:joe:1:1:/h::::", 0, 0, 0, 0, 0) ;
  t_parse("parse-empty-local", "=:joe:1:1:/h:::", 0, 0, 0, 0, 0) ;
  t_parse("parse-empty-user", "=joe::1:1:/h:::", 0, 0, 0, 0, 0) ;
  t_parse("parse-bad-uid", "=joe:joe:x1:1:/h:::", 0, 0, 0, 0, 0) ;
  t_parse("parse-empty-uid", "=joe:joe::1:/h:::", 0, 0, 0, 0, 0) ;
  t_parse("parse-huge-uid", "=joe:joe:99999999999:1:/h:::", 0, 0, 0, 0, 0) ;
  t_parse("parse-bad-gid", "=joe:joe:1:-1:/h:::", 0, 0, 0, 0, 0) ;
  t_parse("parse-relative-home", "=joe:joe:1:1:home/joe:::", 0, 0, 0, 0, 0) ;
  t_parse("parse-crlf", "=joe:joe:1:1:/h:::\r", 0, 0, 0, 0, 0) ;
  {
    char nul[] = "=joe:joe:1:1:/h\0x:::" ;
    stralloc k = STRALLOC_ZERO, d = STRALLOC_ZERO ;
    char const *err = 0 ;
    int r = assign_parse_line(nul, sizeof nul - 1, &k, &d, &err) ;
    check("parse-nul", r == 0 && err, "a NUL was accepted") ;
    stralloc_free(&k) ; stralloc_free(&d) ;
  }

  /* nothing at all: no assign.cdb, no users.cdb, no alias/ */
  t_find("nothing", "joe", 0, 0, 0, 0, 0, 0, 0, 0, 0) ;

  char const *const lines[] =
  {
    "=joe:joe:507:100:/home/joe:::",
    "=joe:first-wins:1:1:/nowhere:::",
    "+joe-:joe:507:100:/home/joe:-::",
    "+joe-list-:lists:600:600:/var/lists:-:joe-:",
    "+Sales:sales:601:601:/home/sales:-:s:",
    "=alice:alice-assigned:700:700:/srv/alice:::",
    "=info:boss:1003:1003:/home/boss:-:info:",
    0
  } ;
  make_assign(lines, 1) ;
  make_users() ;
  t_find("exact", "joe", 0, 1, ASSIGN_EXACT, "joe", 507, 100, "/home/joe", "", "") ;
  t_find("exact-case", "JoE", 0, 1, ASSIGN_EXACT, "joe", 507, 100, "/home/joe", "", "") ;
  t_find("exact-dash-ext", "info", 0, 1, ASSIGN_EXACT, "boss", 1003, 1003, "/home/boss", "-", "info") ;
  t_find("wild", "joe-direct", 0, 1, ASSIGN_WILD, "joe", 507, 100, "/home/joe", "-", "direct") ;
  t_find("wild-case-kept", "Joe-Direct", 0, 1, ASSIGN_WILD, "joe", 507, 100, "/home/joe", "-", "Direct") ;
  t_find("wild-empty-rest", "joe-", 0, 1, ASSIGN_WILD, "joe", 507, 100, "/home/joe", "-", "") ;
  t_find("wild-longest", "joe-list-bugs", 0, 1, ASSIGN_WILD, "lists", 600, 600, "/var/lists", "-", "joe-bugs") ;
  t_find("wild-self", "sales", 0, 1, ASSIGN_WILD, "sales", 601, 601, "/home/sales", "-", "s") ;
  t_find("wild-upper-prefix", "SALES-eu", 0, 1, ASSIGN_WILD, "sales", 601, 601, "/home/sales", "-", "s-eu") ;
  t_find("assign-over-users", "alice", 0, 1, ASSIGN_EXACT, "alice-assigned", 700, 700, "/srv/alice", "", "") ;
  t_find("users", "boss", 0, 1, ASSIGN_USER, "boss", 1003, 1003, "/home/boss", "", "") ;
  t_find("users-ext", "Boss-Private-x", 0, 1, ASSIGN_USER, "boss", 1003, 1003, "/home/boss", "-", "Private-x") ;
  t_find("users-not-wild", "alice-x", 0, 1, ASSIGN_USER, "alice", 1001, 1001, "/home/alice", "-", "x") ;
  t_find("postmaster-user", "PostMaster", "boss", 1, ASSIGN_USER, "boss", 1003, 1003, "/home/boss", "", "") ;
  t_find("postmaster-no-pmuser", "postmaster", 0, 1, ASSIGN_USER, "postmaster", 1004, 1004, "/home/pm", "", "") ;
  t_find("postmaster-missing-pmuser", "postmaster", "nobody", 1, ASSIGN_USER, "postmaster", 1004, 1004, "/home/pm", "", "") ;
  t_find("no-alias-dir", "root", 0, 0, 0, 0, 0, 0, 0, 0, 0) ;

  /* the alias user */
  path(dir, sizeof dir, "alias") ;
  if (mkdir(dir, 0755) < 0) die(dir) ;
  t_find("alias-empty", "root", 0, 0, 0, 0, 0, 0, 0, 0, 0) ;
  write_file("alias/.qmail-root", "&boss\n") ;
  write_file("alias/.qmail-mailer-default", "&boss\n") ;
  write_file("alias/.qmail-foo:bar", "&boss\n") ;
  path(dir, sizeof dir, "alias/.qmail-adir") ;
  if (mkdir(dir, 0755) < 0) die(dir) ;
  t_find("alias-exact", "root", 0, 1, ASSIGN_ALIAS, "alias", me, mygid, "@alias", "-", "root") ;
  t_find("alias-case", "ROOT", 0, 1, ASSIGN_ALIAS, "alias", me, mygid, "@alias", "-", "ROOT") ;
  t_find("alias-default", "mailer-daemon", 0, 1, ASSIGN_ALIAS, "alias", me, mygid, "@alias", "-", "mailer-daemon") ;
  t_find("alias-dot", "Foo.Bar", 0, 1, ASSIGN_ALIAS, "alias", me, mygid, "@alias", "-", "Foo.Bar") ;
  t_find("alias-prefix-only", "mailer", 0, 0, 0, 0, 0, 0, 0, 0, 0) ;
  t_find("alias-directory", "adir", 0, 0, 0, 0, 0, 0, 0, 0, 0) ;
  t_find("alias-slash", "root/x", 0, 0, 0, 0, 0, 0, 0, 0, 0) ;
  t_find("unmatched", "nobody", 0, 0, 0, 0, 0, 0, 0, 0, 0) ;
  write_file("alias/.qmail-default", "&boss\n") ;
  t_find("alias-catchall", "nobody-x", 0, 1, ASSIGN_ALIAS, "alias", me, mygid, "@alias", "-", "nobody-x") ;
  t_find("users-before-alias", "boss", 0, 1, ASSIGN_USER, "boss", 1003, 1003, "/home/boss", "", "") ;
  t_find("empty-local", "", 0, 0, 0, 0, 0, 0, 0, 0, 0) ;
  {
    char big[3001] ;
    memset(big, 'x', 3000) ; big[3000] = 0 ;
    t_find("overlong", big, 0, 0, 0, 0, 0, 0, 0, 0, 0) ;
  }

  /* a catch-all wildcard takes what the users would have */
  {
    char const *const l2[] = { "+:alias:7790:2108:/var/qmail/alias:-::", "=joe:joe:507:100:/home/joe:::", 0 } ;
    make_assign(l2, 1) ;
    t_find("catchall-wild", "boss", 0, 1, ASSIGN_WILD, "alias", 7790, 2108, "/var/qmail/alias", "-", "boss") ;
    t_find("catchall-exact-first", "joe", 0, 1, ASSIGN_EXACT, "joe", 507, 100, "/home/joe", "", "") ;
  }
  /* without the wildchars key (not made by a qmail-newu): every prefix */
  {
    char const *const l3[] = { "+ab:x:5:5:/x:-::", 0 } ;
    make_assign(l3, 0) ;
    t_find("no-wildchars", "abc", 0, 1, ASSIGN_WILD, "x", 5, 5, "/x", "-", "c") ;
  }
  /* a damaged value, damaged files */
  {
    char fn[400] ;
    path(fn, sizeof fn, "users/assign.cdb") ;
    cdbmaker c = CDBMAKER_ZERO ;
    int fd = open(fn, O_WRONLY | O_CREAT | O_TRUNC, 0644) ;
    if (fd < 0 || !cdbmake_start(&c, fd)) die(fn) ;
    if (!cdbmake_add(&c, "!bad\0", 5, "x\0y\0z", 5) || !cdbmake_add(&c, "", 0, "", 0)
     || !cdbmake_finish(&c) || close(fd) < 0) die(fn) ;
    t_find("bad-value", "bad", 0, -1, 0, 0, 0, 0, 0, 0, 0) ;
    static char junk[4096] ;
    static struct { char const *name ; size_t len ; int fill ; } const d[] =
    {
      { "cdb-short", 10, 'x' }, { "cdb-2047", 2047, 0xff }, { "cdb-ptr-out", 2048, 0xff }, { "cdb-zeros", 4096, 0 },
    } ;
    for (size_t i = 0 ; i < sizeof d / sizeof *d ; i++)
    {
      struct assign a = ASSIGN_ZERO ;
      memset(junk, d[i].fill, sizeof junk) ;
      fd = open(fn, O_WRONLY | O_CREAT | O_TRUNC, 0644) ;
      if (fd < 0 || write(fd, junk, d[i].len) != (ssize_t)d[i].len || close(fd) < 0) die(fn) ;
      int r = assign_find("joe-x", 5, 0, &a) ;
      check(d[i].name, r <= 0 || a.kind == ASSIGN_ALIAS, "a damaged assign.cdb gave an owner") ;
      assign_free(&a) ;
    }
  }

  {
    char cmd[300] ;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root) ;
    if (system(cmd) != 0) printf("warning: could not remove %s\n", root) ;
  }
  return 0 ;
}
