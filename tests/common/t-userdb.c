/* t-users: common/users.c against users.h.
 *
 * In a fresh instance root ($YUBIN_ROOT = a mkdtemp directory), with
 * users/users.cdb written here with skalibs' cdbmake (keys lowercase,
 * values "uid:gid:home"), checks users_lookup (found with exact uid, gid
 * and NUL-terminated home, any case, not found, empty and overlong names,
 * a malformed value is -1, no users.cdb is 0) and users_match_local
 * ("user" or "user-ext", longest existing prefix first, ext = offset after
 * the '-', any case, len respected, nothing found is 0), and that a
 * truncated or garbage users.cdb gives 0 or -1, never a crash. */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>

#include <skalibs/cdbmake.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>

#include "userdb.h"

char const *PROG = "t-users" ;

static char root[] = "/tmp/t-users.XXXXXX" ;
static char cdbfn[300] ;

static void check (char const *name, int ok, char const *why)
{
  if (ok) printf("PASS users-%s\n", name) ;
  else printf("FAIL users-%s: %s\n", name, why) ;
  fflush(stdout) ;
}

static struct { char const *k ; char const *v ; } const entries[] =
{
  { "alice", "1001:1001:/home/alice" },
  { "bob", "1002:100:/var/mail/bob" },
  { "a", "2000:2000:/h/a" },
  { "a-b", "2001:2001:/h/a-b" },
  { "postmaster", "3:4:/h/pm" },
  { "broken", "x:y:/z" },
  { "nocolon", "12" },
  { "root0", "0:0:/root" },
} ;

static void make_cdb (void)
{
  cdbmaker c = CDBMAKER_ZERO ;
  char tmp[320] ;
  size_t i ;
  int fd ;
  snprintf(tmp, sizeof tmp, "%s.tmp", cdbfn) ;
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644) ;
  if (fd < 0 || !cdbmake_start(&c, fd)) { perror(tmp) ; exit(111) ; }
  for (i = 0 ; i < sizeof entries / sizeof *entries ; i++)
    if (!cdbmake_add(&c, entries[i].k, strlen(entries[i].k), entries[i].v, strlen(entries[i].v))) { perror("cdbmake_add") ; exit(111) ; }
  if (!cdbmake_finish(&c) || close(fd) < 0 || rename(tmp, cdbfn) < 0) { perror("cdbmake_finish") ; exit(111) ; }
}

static void write_raw (char const *s, size_t n)
{
  int fd = open(cdbfn, O_WRONLY | O_CREAT | O_TRUNC, 0644) ;
  if (fd < 0 || write(fd, s, n) != (ssize_t)n || close(fd) < 0) { perror(cdbfn) ; exit(111) ; }
}

static void t_lookup (char const *name, char const *user, int want, uid_t uid, gid_t gid, char const *home)
{
  struct yubin_user u = YUBIN_USER_ZERO ;
  char why[300] ;
  int r ;
  if (!stralloc_copys(&u.home, "junk from before")) exit(111) ;
  r = users_lookup(user, &u) ;
  snprintf(why, sizeof why, "returned %d (want %d), uid %u gid %u home \"%.200s\"", r, want,
    (unsigned)u.uid, (unsigned)u.gid, r == 1 && u.home.s ? u.home.s : "") ;
  if (want == 1)
    check(name, r == 1 && u.uid == uid && u.gid == gid && u.home.len == strlen(home)
      && !memcmp(u.home.s, home, u.home.len) && u.home.s[u.home.len] == 0, why) ;
  else check(name, r == want, why) ;
  stralloc_free(&u.home) ;
}

static void t_match (char const *name, char const *local, size_t len, int want, char const *wantuser, size_t wantext)
{
  stralloc user = STRALLOC_ZERO ;
  size_t ext = (size_t)-1 ;
  char why[300] ;
  int r ;
  if (!stralloc_copys(&user, "junk")) exit(111) ;
  r = users_match_local(local, len, &user, &ext) ;
  snprintf(why, sizeof why, "returned %d (want %d), user \"%.*s\" ext %zd (want %s %zu)", r, want,
    r == 1 ? (int)user.len : 0, user.s, (ssize_t)ext, wantuser ? wantuser : "-", wantext) ;
  if (want == 1)
    check(name, r == 1 && user.len == strlen(wantuser) && !strncasecmp(user.s, wantuser, user.len)
      && user.s[user.len] == 0 && ext == wantext, why) ;
  else check(name, r == want, why) ;
  stralloc_free(&user) ;
}

int main (void)
{
  char dir[300] ;
  if (!mkdtemp(root)) { perror("mkdtemp") ; return 111 ; }
  snprintf(dir, sizeof dir, "%s/users", root) ;
  if (mkdir(dir, 0755) < 0) { perror(dir) ; return 111 ; }
  snprintf(cdbfn, sizeof cdbfn, "%s/users/users.cdb", root) ;
  if (setenv("YUBIN_ROOT", root, 1) < 0) return 111 ;

  /* no users.cdb yet */
  t_lookup("lookup-no-cdb", "alice", 0, 0, 0, 0) ;
  t_match("match-no-cdb", "alice", 5, 0, 0, 0) ;

  make_cdb() ;
  t_lookup("lookup", "alice", 1, 1001, 1001, "/home/alice") ;
  t_lookup("lookup-other", "bob", 1, 1002, 100, "/var/mail/bob") ;
  t_lookup("lookup-uid0", "root0", 1, 0, 0, "/root") ;
  t_lookup("lookup-case", "ALIce", 1, 1001, 1001, "/home/alice") ;
  t_lookup("lookup-missing", "carol", 0, 0, 0, 0) ;
  t_lookup("lookup-empty", "", 0, 0, 0, 0) ;
  t_lookup("lookup-exact-only", "alice-ext", 0, 0, 0, 0) ;
  t_lookup("lookup-prefix-only", "alic", 0, 0, 0, 0) ;
  t_lookup("lookup-malformed", "broken", -1, 0, 0, 0) ;
  t_lookup("lookup-malformed-short", "nocolon", -1, 0, 0, 0) ;
  {
    char big[5001] ;
    memset(big, 'a', 5000) ; big[5000] = 0 ;
    t_lookup("lookup-overlong", big, 0, 0, 0, 0) ;
  }

  t_match("match-user", "alice", 5, 1, "alice", 5) ;
  t_match("match-ext", "alice-foo", 9, 1, "alice", 6) ;
  t_match("match-ext-case", "Alice-Foo", 9, 1, "alice", 6) ;
  t_match("match-ext-dashes", "alice-foo-bar", 13, 1, "alice", 6) ;
  t_match("match-empty-ext", "bob-", 4, 1, "bob", 4) ;
  t_match("match-longest", "a-b-c", 5, 1, "a-b", 4) ;
  t_match("match-longest-exact", "a-b", 3, 1, "a-b", 3) ;
  t_match("match-shorter", "a-x", 3, 1, "a", 2) ;
  t_match("match-postmaster", "PostMaster", 10, 1, "postmaster", 10) ;
  t_match("match-none", "carol", 5, 0, 0, 0) ;
  t_match("match-none-ext", "carol-x", 7, 0, 0, 0) ;
  t_match("match-glued", "alicefoo", 8, 0, 0, 0) ;
  t_match("match-leading-dash", "-alice", 6, 0, 0, 0) ;
  t_match("match-empty", "", 0, 0, 0, 0) ;
  t_match("match-len-respected", "alice-foo", 5, 1, "alice", 5) ;
  t_match("match-len-respected-none", "alicefoo", 5, 1, "alice", 5) ;
  {
    char big[3001] ;
    memset(big, 'x', 3000) ; big[3000] = 0 ;
    memcpy(big, "alice-", 6) ;
    t_match("match-long-ext", big, 3000, 1, "alice", 6) ;
    memset(big, '-', 3000) ;
    t_match("match-all-dashes", big, 3000, 0, 0, 0) ;
  }

  /* damaged users.cdb: an error or nothing, never a crash */
  {
    static char junk[4096] ;
    struct { char const *name ; size_t len ; int fill ; } const d[] =
    {
      { "cdb-empty", 0, 0 }, { "cdb-short", 10, 'x' }, { "cdb-2047", 2047, 0xff },
      { "cdb-ptr-out", 2048, 0xff }, { "cdb-ptr-out-big", 4096, 0x7f }, { "cdb-zeros", 4096, 0 },
    } ;
    size_t i ;
    for (i = 0 ; i < sizeof d / sizeof *d ; i++)
    {
      struct yubin_user u = YUBIN_USER_ZERO ;
      stralloc user = STRALLOC_ZERO ;
      size_t ext ;
      int r1, r2 ;
      char why[100] ;
      memset(junk, d[i].fill, sizeof junk) ;
      write_raw(junk, d[i].len) ;
      r1 = users_lookup("alice", &u) ;
      r2 = users_match_local("alice-x", 7, &user, &ext) ;
      snprintf(why, sizeof why, "lookup %d, match %d", r1, r2) ;
      check(d[i].name, r1 <= 0 && r2 <= 0, why) ;
      stralloc_free(&u.home) ;
      stralloc_free(&user) ;
    }
  }

  {
    char cmd[300] ;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root) ;
    if (system(cmd) != 0) printf("warning: could not remove %s\n", root) ;
  }
  return 0 ;
}
