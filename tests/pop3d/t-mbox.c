/* t-mbox: pop3d/mbox.c against mbox.h.
 *
 * Names: what is a message name, the unique part (up to ":2,"), ",W="
 * (first valid one, in the unique part only, no overflow).  Order: the
 * delivery time as a number, then the rest naturally ("M99" < "M100"), a
 * total order.  UIDL: the unique part when RFC 1939 allows it, else "H"
 * and 64 hex digits, stable.  Numbers: strict decimal, saturating.
 * Conversion: against a line-by-line reference, fed whole, a byte at a
 * time and in odd chunks (Dovecot's habit), RETR and TOP; mailread_crlfsize
 * equals what RETR sends.  Listing: a temporary Maildir (new/ moved to
 * cur/, dot files, directories, symlinks and tmp/ ignored, W= trusted,
 * other sizes counted, a unique part twice counted once, order), a flag
 * rename found again by mbox_open and mbox_update, a vanished file gone,
 * deletions. */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <skalibs/stralloc.h>

#include "pop3d/mbox.h"

char const *PROG = "t-mbox" ;

static int failed ;

static void check (char const *name, int ok, char const *why)
{
  if (ok) printf("PASS mbox-%s\n", name) ;
  else { printf("FAIL mbox-%s: %s\n", name, why) ; failed = 1 ; }
  fflush(stdout) ;
}

/* ---------- names ---------- */

static int wis (char const *s, int has, uint64_t w, size_t uniqlen)
{
  struct mailname nm ;
  if (!mailname_parse(s, strlen(s), &nm)) return 0 ;
  if (nm.haswsize != has || nm.uniqlen != uniqlen) return 0 ;
  return !has || nm.wsize == w ;
}

static void test_names (void)
{
  struct mailname nm ;
  check("name-valid", mailname_parse("1700000000.M1P2.host", 20, &nm) && nm.uniqlen == 20 && !nm.haswsize, "plain name") ;
  check("name-empty", !mailname_parse("", 0, &nm), "empty accepted") ;
  check("name-dot", !mailname_parse(".x", 2, &nm) && !mailname_parse(".", 1, &nm) && !mailname_parse("..", 2, &nm), "dot name accepted") ;
  check("name-slash", !mailname_parse("a/b", 3, &nm), "slash accepted") ;
  check("name-nul", !mailname_parse("a\0b", 3, &nm), "NUL accepted") ;
  check("name-info", wis("17.a.h:2,S", 0, 0, 6) && wis("17.a.h:2,", 0, 0, 6) && wis("17.a.h:1,x", 0, 0, 10), "unique part") ;
  check("name-w", wis("17.a.h,S=10,W=12", 1, 12, 16) && wis("17.a.h,S=10,W=12:2,RS", 1, 12, 16)
        && wis("17.a.h,W=0", 1, 0, 10), "W= not read") ;
  check("name-w-bad", wis("17.a.h,W=", 0, 0, 9) && wis("17.a.h,W=12x", 0, 0, 12) && wis("17.a.h,W=-1", 0, 0, 11)
        && wis("17.a.h,W=99999999999999999999", 0, 0, 29) && wis("17.a.h:2,W=5", 0, 0, 6)
        && wis("17.a.h,w=5", 0, 0, 10), "bad W= taken") ;
  check("name-w-first-valid", wis("17.a,W=x,W=7,W=8", 1, 7, 16) && wis("17.a,W=3,W=8", 1, 3, 12), "which W=") ;
}

static int cmps (char const *a, char const *b)
{
  return mailname_cmp(a, strlen(a), b, strlen(b)) ;
}

static void test_order (void)
{
  check("order-time", cmps("999.x", "1000.a") < 0 && cmps("1000.a", "999.x") > 0, "time not numeric") ;
  check("order-rest", cmps("1700000000.M99P1.h", "1700000000.M100P1.h") < 0
        && cmps("1700000000.M5P1Q2.h", "1700000000.M5P1Q10.h") < 0, "rest not natural") ;
  check("order-equal", !cmps("17.a", "17.a"), "equal names differ") ;
  check("order-total", cmps("01.a", "1.a") != 0 && cmps("01.a", "1.a") == -cmps("1.a", "01.a"), "not a total order") ;
  check("order-prefix", cmps("17.a", "17.ab") < 0 && cmps("17", "17.a") < 0, "prefix") ;
  /* transitivity over a small set of tricky strings */
  static char const *const set[] = { "1", "01", "001", "1a", "01a", "a", "a1", "a01", "a1b", "10", "9", "09x", "", "0", "00", "1.2", "1.10", "Z", "z" } ;
  size_t n = sizeof set / sizeof set[0] ;
  int ok = 1 ;
  for (size_t i = 0 ; i < n ; i++)
    for (size_t j = 0 ; j < n ; j++)
    {
      int ij = cmps(set[i], set[j]) ;
      if (ij != -cmps(set[j], set[i])) ok = 0 ;
      if (!ij && i != j) ok = 0 ;
      for (size_t k = 0 ; k < n ; k++)
        if (ij < 0 && cmps(set[j], set[k]) < 0 && cmps(set[i], set[k]) >= 0) ok = 0 ;
    }
  check("order-transitive", ok, "not a total order on the tricky set") ;
}

static int uidl_ok (char const *u, size_t len)
{
  if (len < 1 || len > 70) return 0 ;
  for (size_t i = 0 ; i < len ; i++) if ((unsigned char)u[i] < 0x21 || (unsigned char)u[i] > 0x7e) return 0 ;
  return 1 ;
}

static void test_uidl (void)
{
  char u[MBOX_UIDL_MAX + 1], v[MBOX_UIDL_MAX + 1] ;
  size_t n = mbox_uidl("1700000000.M1P2.host", 20, u) ;
  check("uidl-name", n == 20 && !strcmp(u, "1700000000.M1P2.host"), u) ;
  char long70[71], long71[72] ;
  memset(long70, 'a', 70) ; long70[70] = 0 ;
  memset(long71, 'a', 71) ; long71[71] = 0 ;
  n = mbox_uidl(long70, 70, u) ;
  check("uidl-70", n == 70 && !memcmp(u, long70, 70), "70 chars not kept") ;
  n = mbox_uidl(long71, 71, u) ;
  check("uidl-71-hashed", n == 65 && u[0] == 'H' && uidl_ok(u, n) && strspn(u + 1, "0123456789abcdef") == 64, u) ;
  size_t m = mbox_uidl(long71, 71, v) ;
  check("uidl-hash-stable", m == n && !strcmp(u, v), "hash differs") ;
  long71[70] = 'b' ;
  m = mbox_uidl(long71, 71, v) ;
  check("uidl-hash-differs", strcmp(u, v) != 0, "two names, one hash") ;
  n = mbox_uidl("17 a\x7f\xff", 6, u) ;
  check("uidl-bad-chars", n == 65 && uidl_ok(u, n), u) ;
  n = mbox_uidl("", 0, u) ;
  check("uidl-empty", n == 65 && uidl_ok(u, n), u) ;
  /* the known SHA-256 of the one byte 0x01 */
  n = mbox_uidl("\x01", 1, u) ;
  check("uidl-sha256", n == 65 && !strcmp(u + 1, "4bf5122f344554c53bde2ebb8cd2b7e3d1600ad631c385a5d7cce23c7785459a"), u) ;
}

static void test_numbers (void)
{
  uint64_t n = 42 ;
  check("num-1", mailread_parsenum("1", 1, &n) && n == 1, "1") ;
  check("num-0", mailread_parsenum("0", 1, &n) && n == 0, "0") ;
  check("num-leading-zero", mailread_parsenum("007", 3, &n) && n == 7, "007") ;
  check("num-empty", !mailread_parsenum("", 0, &n), "empty") ;
  check("num-sign", !mailread_parsenum("-1", 2, &n) && !mailread_parsenum("+1", 2, &n), "sign") ;
  check("num-junk", !mailread_parsenum("1a", 2, &n) && !mailread_parsenum(" 1", 2, &n) && !mailread_parsenum("abc", 3, &n) && !mailread_parsenum("1.0", 3, &n), "junk") ;
  check("num-max", mailread_parsenum("18446744073709551614", 20, &n) && n == UINT64_MAX - 1, "2^64-2") ;
  check("num-overflow", mailread_parsenum("99999999999999999999", 20, &n) && n == UINT64_MAX
        && mailread_parsenum("18446744073709551616", 20, &n) && n == UINT64_MAX
        && mailread_parsenum("123456789012345678901234567890", 30, &n) && n == UINT64_MAX, "overflow") ;
}

/* ---------- conversion ---------- */

/* the reference: line by line */
static void ref (char const *s, size_t len, uint64_t bodylines, stralloc *out, uint64_t *octets)
{
  size_t pos = 0 ;
  int inbody = 0 ;
  out->len = 0 ;
  *octets = 0 ;
  while (pos < len)
  {
    if (inbody && !bodylines) break ;
    char const *nl = memchr(s + pos, '\n', len - pos) ;
    size_t e = nl ? (size_t)(nl - s) : len ;
    size_t clen = e - pos ;
    if (clen && s[pos] == '.') stralloc_catb(out, ".", 1) ;
    stralloc_catb(out, s + pos, clen) ;
    *octets += clen ;
    if (nl && clen && s[e - 1] == '\r') { stralloc_catb(out, "\n", 1) ; *octets += 1 ; }
    else { stralloc_catb(out, "\r\n", 2) ; *octets += 2 ; }
    if (!inbody) { if (!clen || (clen == 1 && s[pos] == '\r')) inbody = 1 ; }
    else bodylines-- ;
    pos = e + 1 ;
  }
  stralloc_catb(out, ".\r\n", 3) ;
}

/* the converter fed in chunks of the sizes in steps (cycled) */
static int conv (char const *s, size_t len, uint64_t bodylines, size_t const *steps, size_t nsteps, stralloc *out, uint64_t *octets)
{
  struct mbox_conv c ;
  size_t pos = 0, k = 0 ;
  out->len = 0 ;
  mbox_conv_init(&c, bodylines) ;
  while (pos < len && !c.done)
  {
    size_t n = steps[k++ % nsteps] ;
    if (n > len - pos) n = len - pos ;
    if (!mbox_conv_feed(&c, s + pos, n, out)) return 0 ;
    pos += n ;
  }
  if (!mbox_conv_end(&c, out)) return 0 ;
  *octets = c.octets ;
  return 1 ;
}

static uint64_t sizeof_file (char const *s, size_t len)
{
  char fn[] = "/tmp/t-mbox-size.XXXXXX" ;
  int fd = mkstemp(fn) ;
  uint64_t size = 0 ;
  if (fd < 0) { perror("mkstemp") ; exit(111) ; }
  unlink(fn) ;
  if (write(fd, s, len) != (ssize_t)len || lseek(fd, 0, SEEK_SET) < 0) { perror("write") ; exit(111) ; }
  if (!mailread_crlfsize(fd, &size)) size = UINT64_MAX ;
  close(fd) ;
  return size ;
}

static void test_conv (void)
{
  static char const *const msgs[] =
  {
    "",
    "\n",
    "\r\n",
    "a",
    "a\r",
    ".",
    ".\n",
    "Subject: x\n\nbody\n.dot\n..two\nlast",
    "Subject: x\r\n\r\nbody\r\n.dot\r\nend\r\n",
    "mixed\r\nlf\nbare\rcr\r\n\r\n.\r\n.\n\n\nx\n",
    "H: 1\nH: 2\n\n1\n2\n3\n4\n5\n",
    "no blank line at all\nsecond\n",
    "H: 1\r\n\n\r\nbody after empty lines\n",
    "\r\r\n\r\n.\r",
    "H\n\n\r\n\r\n\r\n",
  } ;
  static size_t const whole[] = { 1 << 20 } ;
  static size_t const one[] = { 1 } ;
  static size_t const odd[] = { 3, 1, 7, 2, 5 } ;
  static uint64_t const tops[] = { UINT64_MAX, 0, 1, 2, 3, 100 } ;
  stralloc want = STRALLOC_ZERO, got = STRALLOC_ZERO ;
  int ok[4] = { 1, 1, 1, 1 } ;
  char why[4][200] = { "", "", "", "" } ;
  for (size_t i = 0 ; i < sizeof msgs / sizeof msgs[0] ; i++)
  {
    size_t len = strlen(msgs[i]) ;
    for (size_t t = 0 ; t < sizeof tops / sizeof tops[0] ; t++)
    {
      uint64_t wo, go ;
      ref(msgs[i], len, tops[t], &want, &wo) ;
      size_t const *steps[3] = { whole, one, odd } ;
      size_t nsteps[3] = { 1, 1, 5 } ;
      for (int s = 0 ; s < 3 ; s++)
      {
        if (!conv(msgs[i], len, tops[t], steps[s], nsteps[s], &got, &go)) { perror("conv") ; exit(111) ; }
        if (got.len != want.len || memcmp(got.s, want.s, got.len) || go != wo)
        {
          if (ok[s]) snprintf(why[s], sizeof why[s], "message %zu top %lld: %zu bytes, want %zu", i, tops[t] == UINT64_MAX ? -1LL : (long long)tops[t], got.len, want.len) ;
          ok[s] = 0 ;
        }
      }
      if (tops[t] == UINT64_MAX && sizeof_file(msgs[i], len) != wo)
      {
        if (ok[3]) snprintf(why[3], sizeof why[3], "message %zu: crlfsize %llu, RETR sends %llu", i, (unsigned long long)sizeof_file(msgs[i], len), (unsigned long long)wo) ;
        ok[3] = 0 ;
      }
    }
  }
  check("conv-whole", ok[0], why[0]) ;
  check("conv-byte-at-a-time", ok[1], why[1]) ;
  check("conv-odd-chunks", ok[2], why[2]) ;
  check("crlfsize-equals-retr", ok[3], why[3]) ;

  /* exact bytes of a few */
  uint64_t o ;
  conv("a\n.b\r\nc", 7, UINT64_MAX, whole, 1, &got, &o) ;
  check("conv-exact", got.len == 14 && !memcmp(got.s, "a\r\n..b\r\nc\r\n.\r\n", 14) && o == 10, "a/.b/c") ;
  conv("H: 1\n\nl1\nl2\nl3\n", 15, 1, one, 1, &got, &o) ;
  check("conv-top-1", got.len == 15 && !memcmp(got.s, "H: 1\r\n\r\nl1\r\n.\r\n", 15), "TOP 1") ;

  /* big: 3 MB of LF lines, 64 KiB chunks, same as the reference */
  {
    stralloc big = STRALLOC_ZERO ;
    uint64_t wo, go ;
    static size_t const k64[] = { 65536 } ;
    for (int i = 0 ; big.len < 3000000 ; i++)
      if (!stralloc_cats(&big, i % 7 ? "a line of text that is not very long\n" : ".dotted\r\n")) exit(111) ;
    ref(big.s, big.len, UINT64_MAX, &want, &wo) ;
    conv(big.s, big.len, UINT64_MAX, k64, 1, &got, &go) ;
    check("conv-big", got.len == want.len && !memcmp(got.s, want.s, got.len) && go == wo && sizeof_file(big.s, big.len) == wo, "3 MB differs") ;
    stralloc_free(&big) ;
  }
  stralloc_free(&want) ;
  stralloc_free(&got) ;
}

/* ---------- listing ---------- */

static char base[] = "/tmp/t-mbox.XXXXXX" ;

static char const *path (char const *rel)
{
  static char buf[4][1024] ;
  static int k ;
  k = (k + 1) & 3 ;
  snprintf(buf[k], sizeof buf[k], "%s/%s", base, rel) ;
  return buf[k] ;
}

static void put (char const *rel, char const *content)
{
  int fd = open(path(rel), O_WRONLY | O_CREAT | O_TRUNC, 0600) ;
  size_t len = strlen(content) ;
  if (fd < 0 || write(fd, content, len) != (ssize_t)len || close(fd) < 0) { perror(rel) ; exit(111) ; }
}

static int exists (char const *rel)
{
  struct stat st ;
  return lstat(path(rel), &st) == 0 ;
}

static void test_listing (void)
{
  char const *what = "", *where = "" ;
  char why[512] ;
  if (!mkdtemp(base)) { perror("mkdtemp") ; exit(111) ; }
  if (mkdir(path("Maildir"), 0700) < 0 || mkdir(path("Maildir/new"), 0700) < 0
   || mkdir(path("Maildir/cur"), 0700) < 0 || mkdir(path("Maildir/tmp"), 0700) < 0
   || mkdir(path("Maildir/cur/adir"), 0700) < 0) { perror("mkdir") ; exit(111) ; }
  put("Maildir/new/1700000100.M5P1.h", "late\n") ;                    /* 6 */
  put("Maildir/new/1700000000.M100P1.h,S=3,W=99", "abc") ;           /* W= trusted: 99 */
  put("Maildir/new/1700000000.M99P1.h", "a\nb\n") ;                   /* 6 */
  put("Maildir/new/.hidden", "x\n") ;
  put("Maildir/cur/999.old.h:2,S", "old\r\n") ;                       /* 5 */
  put("Maildir/cur/1700000050.dup.h:2,S", "dup\n") ;
  put("Maildir/cur/1700000050.dup.h:2,RS", "dup\n") ;                 /* one of them: 5 */
  put("Maildir/cur/.dot:2,", "x\n") ;
  put("Maildir/tmp/1700000001.tmp.h", "tmp\n") ;
  if (symlink("/etc/passwd", path("Maildir/cur/1700000001.link:2,")) < 0) { perror("symlink") ; exit(111) ; }

  mbox mb = MBOX_ZERO ;
  int r = mbox_scan(&mb, path("Maildir"), &what, &where) ;
  snprintf(why, sizeof why, "%s %s: %s", what, where, strerror(errno)) ;
  check("scan", r, why) ;
  if (!r) return ;
  check("scan-moved", mb.moved == 3 && exists("Maildir/cur/1700000100.M5P1.h:2,") && exists("Maildir/cur/1700000000.M100P1.h,S=3,W=99:2,")
        && !exists("Maildir/new/1700000100.M5P1.h") && exists("Maildir/new/.hidden") && exists("Maildir/tmp/1700000001.tmp.h"), "new/ not moved to cur/ as NAME:2,") ;
  static char const *const order[] = { "999.old.h", "1700000000.M99P1.h", "1700000000.M100P1.h,S=3,W=99", "1700000050.dup.h", "1700000100.M5P1.h" } ;
  static uint64_t const sizes[] = { 5, 6, 99, 5, 6 } ;
  int ok = mb.n == 5 ;
  snprintf(why, sizeof why, "%zu messages", mb.n) ;
  for (size_t i = 0 ; ok && i < 5 ; i++)
  {
    struct mbox_msg const *m = mbox_msg(&mb, i) ;
    if (m->uniqlen != strlen(order[i]) || memcmp(mbox_msgname(&mb, i), order[i], m->uniqlen))
    {
      snprintf(why, sizeof why, "message %zu is %s, want %s", i + 1, mbox_msgname(&mb, i), order[i]) ;
      ok = 0 ;
    }
  }
  check("scan-order-dedup-ignored", ok, why) ;
  ok = mb.n == 5 ;
  for (size_t i = 0 ; ok && i < 5 ; i++)
    if (mbox_msg(&mb, i)->size != sizes[i])
    {
      snprintf(why, sizeof why, "message %zu size %llu, want %llu", i + 1, (unsigned long long)mbox_msg(&mb, i)->size, (unsigned long long)sizes[i]) ;
      ok = 0 ;
    }
  check("scan-sizes", ok && mb.total == 121, why) ;

  /* a flag change under us: open finds it again */
  if (mb.n == 5)
  {
    if (rename(path("Maildir/cur/1700000100.M5P1.h:2,"), path("Maildir/cur/1700000100.M5P1.h:2,S")) < 0) { perror("rename") ; exit(111) ; }
    int fd = mbox_open(&mb, 4) ;
    char b[16] ;
    ssize_t n = fd >= 0 ? read(fd, b, sizeof b) : -1 ;
    check("open-renamed", fd >= 0 && n == 5 && !memcmp(b, "late\n", 5) && !strcmp(mbox_msgname(&mb, 4), "1700000100.M5P1.h:2,S"), "renamed file not found") ;
    if (fd >= 0) close(fd) ;

    /* gone: another session removed it */
    if (unlink(path("Maildir/cur/999.old.h:2,S")) < 0) { perror("unlink") ; exit(111) ; }
    errno = 0 ;
    fd = mbox_open(&mb, 0) ;
    int e = errno ;
    check("open-gone", fd < 0 && e == ENOENT && mbox_msg(&mb, 0)->gone, "vanished file opened") ;
    if (fd >= 0) close(fd) ;
    fd = mbox_open(&mb, 1) ;
    check("open-other", fd >= 0, "the others still open") ;
    if (fd >= 0) close(fd) ;

    /* update: a deleted one renamed under us, a deleted one gone, a kept one */
    mbox_msg(&mb, 0)->deleted = 1 ;   /* gone */
    mbox_msg(&mb, 1)->deleted = 1 ;   /* renamed below */
    mbox_msg(&mb, 2)->deleted = 1 ;   /* plain */
    if (rename(path("Maildir/cur/1700000000.M99P1.h:2,"), path("Maildir/cur/1700000000.M99P1.h:2,T")) < 0) { perror("rename") ; exit(111) ; }
    size_t removed = 99 ;
    size_t failures = mbox_update(&mb, &removed) ;
    snprintf(why, sizeof why, "failed %zu removed %zu", failures, removed) ;
    check("update", !failures && removed == 2 && !exists("Maildir/cur/1700000000.M99P1.h:2,T")
          && !exists("Maildir/cur/1700000000.M100P1.h,S=3,W=99:2,") && exists("Maildir/cur/1700000100.M5P1.h:2,S"), why) ;
  }
  mbox_free(&mb) ;

  /* a second scan: what is left, no new/ left to move */
  mbox mb2 = MBOX_ZERO ;
  r = mbox_scan(&mb2, path("Maildir"), &what, &where) ;
  check("rescan-after-update", r && mb2.n == 2 && mb2.moved == 0, "second scan") ;
  mbox_free(&mb2) ;

  /* no Maildir, no cur/ */
  mbox mb3 = MBOX_ZERO ;
  errno = 0 ;
  r = mbox_scan(&mb3, path("nothere"), &what, &where) ;
  check("scan-missing", !r && errno == ENOENT, "missing Maildir scanned") ;
  mbox_free(&mb3) ;

  char cmd[1100] ;
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", base) ;
  if (system(cmd) != 0) fprintf(stderr, "t-mbox: cannot remove %s\n", base) ;
}

int main (void)
{
  test_names() ;
  test_order() ;
  test_uidl() ;
  test_numbers() ;
  test_conv() ;
  test_listing() ;
  return failed ;
}
