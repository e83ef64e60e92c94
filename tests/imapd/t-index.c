/* t-index: imapd/index.c against index.h, on temporary Maildirs.
 *
 * A new folder (UIDVALIDITY, UIDNEXT 1); deliveries between syncs (UIDs
 * in delivery order, new/ moved to cur/, \Recent for the session that
 * moved them, sizes from W=); a reopen keeps UIDVALIDITY and UIDs and
 * costs no \Recent; flag renames done outside are reported as changes;
 * an expunge by another process is held back while expunges may not be
 * reported, then reported with the right seqs; STORE renames, another
 * session sees it; EXPUNGE of \Deleted ones (seqs descending); a damaged
 * index (a flipped byte) and a missing one are rebuilt with a new
 * UIDVALIDITY and every message kept; a torn tail keeps the UIDs;
 * concurrent syncs from two forked processes while a third delivers
 * (every message once, one UID each, \Recent in exactly one session);
 * APPEND (APPENDUID, flags, keywords, date, size); COPY and MOVE (new
 * UIDs, flags kept, the source reports the moved ones as expunged);
 * INDEX_PEEK (STATUS): new/ counted, given UIDs and left there, the same
 * UIDs at the next peek and at SELECT, which gets the \Recent; a
 * selected session takes what a peek numbered; a peeked file removed
 * from new/ or moved to cur/ by another program; APPEND into a folder
 * without an index leaves its new/; an index written before the STATE's
 * pending tail; a deliverer, a peeker in a loop and a session at once
 * (UIDs the peeker saw never change, every \Recent in the session);
 * 10,000 messages: first sync, no-change sync, reopen and STORE timed
 * (printed as info). */

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <skalibs/stralloc.h>
#include <skalibs/genalloc.h>

#include "maildir.h"
#include "imapd/index.h"
#include "imapd/mime.h"

char const *PROG = "t-index" ;

static int failed ;
static char top[256] ;

static void check (char const *name, int ok, char const *why)
{
  if (ok) printf("PASS index-%s\n", name) ;
  else { printf("FAIL index-%s: %s\n", name, why) ; failed = 1 ; }
  fflush(stdout) ;
}

static double now (void)
{
  struct timespec ts ;
  clock_gettime(CLOCK_MONOTONIC, &ts) ;
  return ts.tv_sec + ts.tv_nsec / 1e9 ;
}

static char *path (char const *a, char const *b)
{
  static char buf[4][1024] ;
  static int k ;
  k = (k + 1) & 3 ;
  snprintf(buf[k], sizeof buf[k], "%s/%s", a, b) ;
  return buf[k] ;
}

static int deliver (char const *dir, char const *body)
{
  int fd = open("/dev/null", O_RDONLY) ;
  if (fd < 0) return 0 ;
  int ok = maildir_deliver(dir, body, strlen(body), fd, 0) ;
  close(fd) ;
  return ok ;
}

static size_t countdir (char const *dir)
{
  DIR *d = opendir(dir) ;
  size_t n = 0 ;
  if (!d) return (size_t)-1 ;
  struct dirent *e ;
  while ((e = readdir(d))) if (e->d_name[0] != '.') n++ ;
  closedir(d) ;
  return n ;
}

/* the name in cur/ of the file whose name starts with prefix */
static int findfile (char const *dir, char const *prefix, char *out, size_t outlen)
{
  DIR *d = opendir(path(dir, "cur")) ;
  if (!d) return 0 ;
  struct dirent *e ;
  int found = 0 ;
  while ((e = readdir(d)))
    if (!strncmp(e->d_name, prefix, strlen(prefix))) { snprintf(out, outlen, "%s", e->d_name) ; found = 1 ; }
  closedir(d) ;
  return found ;
}

static int uids_increasing (mailindex const *ix)
{
  for (size_t i = 1 ; i < ix->n ; i++) if (index_msg(ix, i)->uid <= index_msg(ix, i - 1)->uid) return 0 ;
  return 1 ;
}

static uint32_t seqat (genalloc const *g, size_t i) { return genalloc_s(uint32_t, g)[i] ; }
static size_t glen (genalloc const *g) { return genalloc_len(uint32_t, g) ; }

/* ---------- basic life ---------- */

static void test_basic (char const *md)
{
  mailindex ix = INDEX_ZERO, ix2 = INDEX_ZERO ;
  char buf[1200], name[512] ;
  int ok = index_open(&ix, md, 0) ;
  check("create", ok && ix.n == 0 && ix.uidvalidity && ix.uidnext == 1 && !access(path(md, "yubin.index"), F_OK), "empty folder") ;
  if (!ok) { index_close(&ix) ; return ; }
  uint32_t uv = ix.uidvalidity ;

  ok = deliver(md, "Subject: one\n\nbody 1\n") && deliver(md, "Subject: two\n\nbody 2\n") && deliver(md, "Subject: three\n\nbody 3\n") ;
  ok = ok && index_sync(&ix, 1) ;
  check("deliver-sync", ok && ix.n == 3 && ix.added == 3 && ix.recent == 3 && uids_increasing(&ix)
        && index_msg(&ix, 0)->uid == 1 && index_msg(&ix, 2)->uid == 3 && ix.uidnext == 4
        && countdir(path(md, "new")) == 0 && countdir(path(md, "cur")) == 3, "three new messages") ;
  check("size-w", ix.n == 3 && index_msg(&ix, 0)->size == strlen("Subject: one\n\nbody 1\n") + 3, "W= size") ;
  check("info-suffix", ix.n == 3 && strstr(index_name(&ix, 0), ":2,") != 0, "moved without :2,") ;
  /* order = delivery order */
  {
    int fd = index_openmsg(&ix, 1) ;
    ssize_t r = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1 ;
    if (fd >= 0) close(fd) ;
    if (r >= 0) buf[r] = 0 ;
    check("delivery-order", r > 0 && strstr(buf, "two") != 0, "message 2 is not the second delivered") ;
  }
  ok = deliver(md, "Subject: four\n\nbody 4\n") && deliver(md, "Subject: five\n\nbody 5\n") && index_sync(&ix, 1) ;
  check("deliver-again", ok && ix.n == 5 && ix.added == 2 && index_msg(&ix, 4)->uid == 5 && ix.recent == 5, "two more") ;
  ok = index_sync(&ix, 1) ;
  check("sync-nochange", ok && ix.added == 0 && !glen(&ix.expunged) && !glen(&ix.changed), "changes reported twice") ;

  /* reopen: same UIDs, no \Recent */
  ok = index_open(&ix2, md, 0) ;
  int same = ok && ix2.n == 5 && ix2.uidvalidity == uv ;
  for (size_t i = 0 ; same && i < 5 ; i++)
    same = index_msg(&ix2, i)->uid == index_msg(&ix, i)->uid && !strcmp(index_name(&ix2, i), index_name(&ix, i)) ;
  check("reopen-keeps-uids", same, "UIDs or UIDVALIDITY changed") ;
  check("reopen-no-recent", ok && ix2.recent == 0, "recent taken twice") ;

  /* a flag change by another tool */
  snprintf(name, sizeof name, "%s", index_name(&ix, 1)) ;
  uint64_t ms = index_msg(&ix, 1)->modseq ;
  snprintf(buf, sizeof buf, "%s/cur/%sS", md, name) ;
  ok = rename(path(path(md, "cur"), name), buf) == 0 && index_sync(&ix, 1) ;
  check("outside-rename", ok && glen(&ix.changed) == 1 && seqat(&ix.changed, 0) == 2
        && index_msg(&ix, 1)->flags == INDEX_SEEN && index_msg(&ix, 1)->modseq > ms && ix.highestmodseq >= index_msg(&ix, 1)->modseq,
        "rename not seen as a flag change") ;

  /* STORE here, seen by the other session */
  uint32_t pos[2] = { 0, 2 } ;
  ok = index_store(&ix, pos, 2, INDEX_STORE_ADD, INDEX_FLAGGED, 0, UINT64_MAX, 0) ;
  ok = ok && findfile(md, "", name, sizeof name) ;
  ok = ok && index_sync(&ix2, 1) ;
  int sawflag = ok && glen(&ix2.changed) == 3 ;   /* seq 1 and 3 stored, seq 2 renamed outside */
  check("store-seen", sawflag && index_msg(&ix2, 0)->flags == INDEX_FLAGGED && index_msg(&ix2, 2)->flags == INDEX_FLAGGED
        && strstr(index_name(&ix, 0), ":2,F"), "STORE not seen by the other session") ;
  ok = index_store(&ix, pos, 1, INDEX_STORE_SET, INDEX_SEEN | INDEX_DELETED, 0, UINT64_MAX, 0) ;
  check("store-set", ok && index_msg(&ix, 0)->flags == (INDEX_SEEN | INDEX_DELETED) && strstr(index_name(&ix, 0), ":2,ST"), "FLAGS replace") ;
  {
    genalloc fl = GENALLOC_ZERO ;
    uint32_t p = 2 ;
    ok = index_store(&ix, &p, 1, INDEX_STORE_ADD, INDEX_ANSWERED, 0, 1, &fl) ;
    check("store-unchangedsince", ok && genalloc_len(uint32_t, &fl) == 1 && !(index_msg(&ix, 2)->flags & INDEX_ANSWERED), "CONDSTORE refusal") ;
    genalloc_free(uint32_t, &fl) ;
  }
  /* keywords */
  {
    int k = index_keyword(&ix, "$Forwarded", 10, 1) ;
    int k2 = index_keyword(&ix2, "$forwarded", 10, 0) ;
    uint32_t p = 3 ;
    ok = k >= 0 && index_store(&ix, &p, 1, INDEX_STORE_ADD, 0, (uint32_t)1 << k, UINT64_MAX, 0) ;
    check("keyword", ok && k2 == k && index_msg(&ix, 3)->keywords == (uint32_t)1 << k && strchr(index_name(&ix, 3), 'a' + k)
          && !strcmp(ix.keyword[k], "$Forwarded"), "keyword letter") ;
    check("keyword-bad", index_keyword(&ix, "a b", 3, 1) < 0 && errno == EINVAL, "space in a keyword") ;
  }

  /* expunge by another process (as POP3 would: unlink the file) */
  {
    pid_t pid = fork() ;
    if (!pid)
    {
      char n[512] ;
      snprintf(n, sizeof n, "%s", path(path(md, "cur"), index_name(&ix, 4))) ;
      _exit(unlink(n) ? 1 : 0) ;
    }
    int st ;
    waitpid(pid, &st, 0) ;
    ok = WIFEXITED(st) && !WEXITSTATUS(st) && index_sync(&ix2, 0) ;
    check("expunge-held", ok && ix2.n == 5 && !glen(&ix2.expunged) && index_msg(&ix2, 4)->state & INDEX_EXPUNGED, "expunge reported when not allowed") ;
    ok = index_sync(&ix2, 1) ;
    check("expunge-reported", ok && ix2.n == 4 && glen(&ix2.expunged) == 1 && seqat(&ix2.expunged, 0) == 5
          && glen(&ix2.expunged_uids) == 1 && seqat(&ix2.expunged_uids, 0) == 5, "EXPUNGE 5 expected") ;
  }
  /* EXPUNGE of \Deleted: seq 1 is \Deleted; set it on seq 3 too */
  {
    uint32_t p = 2 ;
    ok = index_store(&ix, &p, 1, INDEX_STORE_ADD, INDEX_DELETED, 0, UINT64_MAX, 0) && index_expunge(&ix, 0, 0) ;
    check("expunge", ok && ix.n == 2 && glen(&ix.expunged) == 3 && seqat(&ix.expunged, 0) == 5 && seqat(&ix.expunged, 1) == 3
          && seqat(&ix.expunged, 2) == 1 && countdir(path(md, "cur")) == 2, "expunged seqs 5 3 1") ;
    ok = index_sync(&ix2, 1) ;
    check("expunge-other", ok && ix2.n == 2 && glen(&ix2.expunged) == 2 && seqat(&ix2.expunged, 0) == 3 && seqat(&ix2.expunged, 1) == 1,
          "the other session: 3 then 1") ;
  }
  {
    uint32_t u1 = index_msg(&ix, 0)->uid, u2 = index_msg(&ix, 1)->uid ;
    uint32_t p[2] = { 0, 1 } ;
    ok = index_store(&ix, p, 2, INDEX_STORE_ADD, INDEX_DELETED, 0, UINT64_MAX, 0) && index_expunge(&ix, &u2, 1) ;
    check("uid-expunge", ok && ix.n == 1 && index_msg(&ix, 0)->uid == u1, "UID EXPUNGE took the wrong one") ;
  }
  index_close(&ix) ;
  index_close(&ix2) ;
}

/* ---------- damage ---------- */

static void test_damage (char const *md)
{
  mailindex ix = INDEX_ZERO ;
  int ok = 1 ;
  for (int i = 0 ; ok && i < 4 ; i++) ok = deliver(md, "Subject: x\n\nbody\n") ;
  ok = ok && index_open(&ix, md, 0) ;
  uint32_t uv = ix.uidvalidity ;
  size_t n = ix.n ;
  index_close(&ix) ;
  mailindex z = INDEX_ZERO ;
  ix = z ;

  /* a torn tail: a few bytes of a record that never got its COMMIT */
  {
    int fd = open(path(md, "yubin.index"), O_WRONLY | O_APPEND) ;
    ok = fd >= 0 && write(fd, "\x40\0\0\0\x12\x34", 6) == 6 ;
    if (fd >= 0) close(fd) ;
    ok = ok && index_open(&ix, md, 0) ;
    check("torn-tail", ok && ix.uidvalidity == uv && ix.n == n, "a torn tail cost the UIDs") ;
    index_close(&ix) ;
    ix = z ;
  }
  /* a flipped byte in the middle */
  {
    struct stat st ;
    int fd = open(path(md, "yubin.index"), O_RDWR) ;
    ok = fd >= 0 && fstat(fd, &st) == 0 ;
    char c ;
    off_t off = 32 + 20 ;
    ok = ok && pread(fd, &c, 1, off) == 1 ;
    c ^= 0x55 ;
    ok = ok && pwrite(fd, &c, 1, off) == 1 ;
    if (fd >= 0) close(fd) ;
    ok = ok && index_open(&ix, md, 0) ;
    check("damaged-rebuilt", ok && ix.uidvalidity != uv && ix.uidvalidity > uv && ix.n == n && uids_increasing(&ix) && index_msg(&ix, 0)->uid == 1,
          "damaged index not rebuilt, or mail lost") ;
    uv = ix.uidvalidity ;
    index_close(&ix) ;
    ix = z ;
  }
  /* a bad version */
  {
    int fd = open(path(md, "yubin.index"), O_RDWR) ;
    ok = fd >= 0 && pwrite(fd, "\x09", 1, 8) == 1 ;
    if (fd >= 0) close(fd) ;
    ok = ok && index_open(&ix, md, 0) ;
    check("version-rebuilt", ok && ix.uidvalidity != uv && ix.n == n, "unknown version accepted") ;
    uv = ix.uidvalidity ;
    index_close(&ix) ;
    ix = z ;
  }
  /* missing */
  ok = unlink(path(md, "yubin.index")) == 0 && index_open(&ix, md, 0) ;
  check("missing-rebuilt", ok && ix.uidvalidity != uv && ix.n == n, "missing index not rebuilt") ;
  /* damaged under an open session: it is told */
  {
    mailindex ix2 = INDEX_ZERO ;
    ok = index_open(&ix2, md, 0) && unlink(path(md, "yubin.index")) == 0 && index_sync(&ix2, 1) ;
    check("rebuilt-under-session", ok && ix2.uidvalidity_changed && ix2.n == n, "session not told of the new UIDVALIDITY") ;
    index_close(&ix2) ;
  }
  index_close(&ix) ;
}

/* ---------- concurrency ---------- */

#define CONC_MSGS 150

static int syncer (char const *md, int outfd)
{
  mailindex ix = INDEX_ZERO ;
  size_t recent = 0 ;
  if (!index_open(&ix, md, 0)) return 1 ;
  recent += ix.recent ;
  double end = now() + 60 ;
  while (now() < end)
  {
    if (!index_sync(&ix, 1)) return 2 ;
    if (!uids_increasing(&ix)) return 3 ;
    if (access(path(md, "done"), F_OK) == 0 && countdir(path(md, "new")) == 0)
    {
      if (!index_sync(&ix, 1)) return 2 ;
      break ;
    }
    usleep(500) ;
  }
  recent = ix.recent ;
  char line[64] ;
  int l = snprintf(line, sizeof line, "%zu %zu %u\n", ix.n, recent, ix.uidvalidity) ;
  if (write(outfd, line, (size_t)l) != l) return 4 ;
  index_close(&ix) ;
  return 0 ;
}

static void test_concurrent (char const *md)
{
  int p[2] ;
  pid_t pids[3] ;
  if (pipe(p) < 0) { check("concurrent", 0, "pipe") ; return ; }
  for (int k = 0 ; k < 3 ; k++)
  {
    pids[k] = fork() ;
    if (pids[k] < 0) { check("concurrent", 0, "fork") ; return ; }
    if (!pids[k])
    {
      close(p[0]) ;
      if (k == 2)
      {
        char body[64] ;
        for (int i = 0 ; i < CONC_MSGS ; i++)
        {
          snprintf(body, sizeof body, "Subject: c%d\n\nbody\n", i) ;
          if (!deliver(md, body)) _exit(1) ;
          if (i % 10 == 0) usleep(1000) ;
        }
        int fd = open(path(md, "done"), O_WRONLY | O_CREAT, 0600) ;
        _exit(fd < 0) ;
      }
      _exit(syncer(md, p[1])) ;
    }
  }
  close(p[1]) ;
  int ok = 1 ;
  for (int k = 0 ; k < 3 ; k++)
  {
    int st ;
    if (waitpid(pids[k], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) { ok = 0 ; printf("# child %d: status %d\n", k, st) ; }
  }
  char buf[256] ;
  ssize_t r = read(p[0], buf, sizeof buf - 1) ;
  close(p[0]) ;
  size_t n1 = 0, r1 = 0, n2 = 0, r2 = 0 ;
  unsigned uv1 = 0, uv2 = 0 ;
  if (r > 0) { buf[r] = 0 ; if (sscanf(buf, "%zu %zu %u\n%zu %zu %u", &n1, &r1, &uv1, &n2, &r2, &uv2) != 6) ok = 0 ; }
  else ok = 0 ;
  mailindex ix = INDEX_ZERO ;
  ok = ok && index_open(&ix, md, 0) ;
  int unique = ok && uids_increasing(&ix) && ix.n == CONC_MSGS && ix.uidnext == CONC_MSGS + 1 ;
  /* each name once */
  for (size_t i = 1 ; unique && i < ix.n ; i++)
    for (size_t j = 0 ; unique && j < i ; j++)
      if (index_msg(&ix, i)->uniqlen == index_msg(&ix, j)->uniqlen && !memcmp(index_name(&ix, i), index_name(&ix, j), index_msg(&ix, i)->uniqlen)) unique = 0 ;
  check("concurrent", ok && unique && n1 == CONC_MSGS && n2 == CONC_MSGS && uv1 == ix.uidvalidity && uv2 == ix.uidvalidity
        && countdir(path(md, "cur")) == CONC_MSGS, "two syncers and a deliverer disagree") ;
  check("concurrent-recent", ok && r1 + r2 == CONC_MSGS, "\\Recent not in exactly one session") ;
  printf("# concurrent: session 1 got %zu recent, session 2 %zu\n", r1, r2) ;
  index_close(&ix) ;
}

/* ---------- append, copy, move ---------- */

static void test_append_copy (char const *md, char const *md2)
{
  mailindex ix = INDEX_ZERO, dst = INDEX_ZERO ;
  struct index_append ap = INDEX_APPEND_ZERO ;
  uint32_t uv = 0, uid = 0 ;
  char const *kw[] = { "$Junk", "Work" } ;
  char const *msg = "Subject: appended\r\n\r\nline\r\n" ;
  int ok = index_open(&ix, md, 0) ;
  uint32_t next = ix.uidnext ;
  ok = ok && index_append_begin(&ap, md) && index_append_write(&ap, msg, 10) && index_append_write(&ap, msg + 10, strlen(msg) - 10)
    && index_append_commit(&ap, INDEX_SEEN | INDEX_DRAFT, kw, 2, 1000000000, &uv, &uid) ;
  if (!ok) index_append_abort(&ap) ;
  ok = ok && index_sync(&ix, 1) ;
  ssize_t i = ok ? index_find_uid(&ix, uid) : -1 ;
  check("append", ok && uid == next && uv == ix.uidvalidity && i >= 0 && ix.added == 1 && countdir(path(md, "tmp")) == 0, "APPENDUID") ;
  if (i >= 0)
  {
    struct index_msg const *m = index_msg(&ix, i) ;
    int k1 = index_keyword(&ix, "$Junk", 5, 0), k2 = index_keyword(&ix, "work", 4, 0) ;
    check("append-fields", m->flags == (INDEX_SEEN | INDEX_DRAFT) && m->size == strlen(msg) && m->idate == 1000000000
          && k1 >= 0 && k2 >= 0 && m->keywords == ((uint32_t)1 << k1 | (uint32_t)1 << k2), "flags, size, date, keywords") ;
  }
  /* abort leaves nothing */
  ok = index_append_begin(&ap, md) && index_append_write(&ap, "x", 1) ;
  index_append_abort(&ap) ;
  check("append-abort", ok && countdir(path(md, "tmp")) == 0, "tmp file left") ;

  /* COPY two into md2 */
  ok = index_open(&dst, md2, 1) ;
  uint32_t pos[2] = { 0, (uint32_t)ix.n - 1 } ;
  genalloc uids = GENALLOC_ZERO ;
  size_t srcn = ix.n ;
  ok = ok && index_copy(&ix, pos, 2, &dst, &uids, 0) ;
  ok = ok && index_sync(&dst, 1) ;
  check("copy", ok && glen(&uids) == 2 && seqat(&uids, 0) == 1 && seqat(&uids, 1) == 2 && dst.n == 2 && ix.n == srcn
        && index_msg(&dst, 1)->flags == (INDEX_SEEN | INDEX_DRAFT) && index_msg(&dst, 1)->size == strlen(msg)
        && index_msg(&dst, 1)->idate == 1000000000 && dst.keyword[0][0] && countdir(path(md2, "cur")) == 2, "COPYUID") ;
  {
    struct stat a, b ;
    stralloc p1 = STRALLOC_ZERO, p2 = STRALLOC_ZERO ;
    int linked = index_path(&ix, 0, &p1) && stralloc_0(&p1) && index_path(&dst, 0, &p2) && stralloc_0(&p2)
              && stat(p1.s, &a) == 0 && stat(p2.s, &b) == 0 && a.st_ino == b.st_ino ;
    check("copy-hardlink", linked, "not a hard link") ;
    stralloc_free(&p1) ; stralloc_free(&p2) ;
  }
  /* MOVE the first one */
  uint32_t movedpos = 0 ;
  ok = index_copy(&ix, &movedpos, 1, &dst, &uids, 1) && index_sync(&ix, 1) && index_sync(&dst, 1) ;
  check("move", ok && glen(&uids) == 1 && seqat(&uids, 0) == 3 && ix.n == srcn - 1 && glen(&ix.expunged) == 1
        && seqat(&ix.expunged, 0) == 1 && dst.n == 3 && dst.added == 1 && countdir(path(md, "cur")) == srcn - 1, "MOVE") ;
  genalloc_free(uint32_t, &uids) ;
  index_close(&ix) ;
  index_close(&dst) ;
}

/* ---------- peek (STATUS) ---------- */

/* the first name in the directory dir */
static int firstname (char const *dir, char *out, size_t outlen)
{
  DIR *d = opendir(dir) ;
  if (!d) return 0 ;
  struct dirent *e ;
  int found = 0 ;
  while (!found && (e = readdir(d))) if (e->d_name[0] != '.') { snprintf(out, outlen, "%s", e->d_name) ; found = 1 ; }
  closedir(d) ;
  return found ;
}

/* the UID of the message whose unique part starts name, 0 if none */
static uint32_t uidof (mailindex const *ix, char const *name)
{
  size_t len = strcspn(name, ":") ;
  for (size_t i = 0 ; i < ix->n ; i++)
    if (index_msg(ix, i)->uniqlen == len && !memcmp(index_name(ix, i), name, len) && !(index_msg(ix, i)->state & INDEX_EXPUNGED))
      return index_msg(ix, i)->uid ;
  return 0 ;
}

static int peekcount (char const *md, size_t *n, size_t *recent, uint32_t *uidnext)
{
  mailindex p = INDEX_ZERO ;
  int ok = index_open(&p, md, INDEX_PEEK) ;
  *n = p.n ; *recent = p.recent ; *uidnext = p.uidnext ;
  index_close(&p) ;
  return ok ;
}

static void test_peek (char const *md)
{
  mailindex p = INDEX_ZERO, s = INDEX_ZERO ;
  size_t n = 0, recent = 0 ;
  uint32_t next = 0 ;
  char name[512] ;
  int ok = deliver(md, "Subject: p1\n\nbody\n") && deliver(md, "Subject: p2\n\nbody\n") && deliver(md, "Subject: p3\n\nbody\n") ;
  ok = ok && index_open(&p, md, INDEX_PEEK) ;
  check("peek-counts", ok && p.n == 3 && p.recent == 3 && p.uidnext == 4 && uids_increasing(&p)
        && index_msg(&p, 0)->size == strlen("Subject: p1\n\nbody\n") + 3 && !index_msg(&p, 0)->flags
        && countdir(path(md, "new")) == 3 && countdir(path(md, "cur")) == 0, "three in new/ counted, left there") ;
  check("peek-cur-name", p.n == 3 && strstr(index_name(&p, 0), ":2,") != 0, "not recorded under its cur/ name") ;
  uint32_t uids[3] = { 0 } ;
  char names[3][256] ;
  for (size_t i = 0 ; i < 3 && i < p.n ; i++) { uids[i] = index_msg(&p, i)->uid ; snprintf(names[i], sizeof names[i], "%s", index_name(&p, i)) ; }
  index_close(&p) ;

  /* peek again: the same UIDs (committed), nothing taken */
  ok = index_open(&p, md, INDEX_PEEK) ;
  int same = ok && p.n == 3 && p.recent == 3 && p.uidnext == 4 ;
  for (size_t i = 0 ; same && i < 3 ; i++) same = uidof(&p, names[i]) == uids[i] ;
  check("peek-again-stable", same && countdir(path(md, "new")) == 3, "UIDs moved between two peeks") ;
  index_close(&p) ;

  /* one more delivery: the next UID; then SELECT takes all with \Recent and the same UIDs */
  ok = deliver(md, "Subject: p4\n\nbody\n") && peekcount(md, &n, &recent, &next) ;
  check("peek-delivery", ok && n == 4 && recent == 4 && next == 5, "fourth delivery") ;
  ok = index_open(&s, md, 0) ;
  same = ok && s.n == 4 && s.recent == 4 && s.uidnext == 5 && uids_increasing(&s) && countdir(path(md, "new")) == 0 && countdir(path(md, "cur")) == 4 ;
  for (size_t i = 0 ; same && i < 3 ; i++) same = uidof(&s, names[i]) == uids[i] && !strcmp(index_name(&s, i), names[i]) ;
  check("peek-then-select", same, "SELECT after STATUS: \\Recent or UIDs lost") ;
  ok = peekcount(md, &n, &recent, &next) ;
  check("peek-after-select", ok && n == 4 && recent == 0 && next == 5, "RECENT after SELECT took them") ;

  /* a session has it selected: a peek gives UIDs, the session's sync takes the \Recent */
  ok = deliver(md, "Subject: p5\n\nbody\n") && deliver(md, "Subject: p6\n\nbody\n") && peekcount(md, &n, &recent, &next) ;
  check("peek-selected", ok && n == 6 && recent == 2 && next == 7, "two delivered under a selected session") ;
  size_t before = s.recent ;
  ok = index_sync(&s, 1) ;
  check("peek-selected-sync", ok && s.n == 6 && s.added == 2 && s.recent == before + 2 && index_msg(&s, 5)->uid == 6
        && s.uidnext == 7 && countdir(path(md, "new")) == 0, "the selected session did not take them") ;

  /* a peeked message removed from new/ by someone else: gone for both */
  ok = deliver(md, "Subject: p7\n\nbody\n") && peekcount(md, &n, &recent, &next) && n == 7 && recent == 1 && firstname(path(md, "new"), name, sizeof name) ;
  ok = ok && unlinkat(AT_FDCWD, path(path(md, "new"), name), 0) == 0 && peekcount(md, &n, &recent, &next) ;
  check("peek-vanished", ok && n == 6 && recent == 0 && next == 8, "a peeked file removed from new/") ;
  ok = index_sync(&s, 1) ;
  check("peek-vanished-session", ok && s.n == 6 && s.added == 0 && s.uidnext == 8, "the session saw the removed one") ;

  /* a peeked message moved to cur/ by a POP3 server (with \Seen): the same UID, not \Recent */
  ok = deliver(md, "Subject: p8\n\nbody\n") && peekcount(md, &n, &recent, &next) && n == 7 && recent == 1 && firstname(path(md, "new"), name, sizeof name) ;
  {
    char to[600] ;
    snprintf(to, sizeof to, "%s:2,S", name) ;
    ok = ok && rename(path(path(md, "new"), name), path(path(md, "cur"), to)) == 0 ;
  }
  ok = ok && index_open(&p, md, INDEX_PEEK) ;
  check("peek-moved-by-other", ok && p.n == 7 && p.recent == 0 && uidof(&p, name) == 8 && index_msg(&p, 6)->flags == INDEX_SEEN, "moved to cur/ by another program") ;
  index_close(&p) ;
  before = s.recent ;
  ok = index_sync(&s, 1) ;
  check("peek-moved-session", ok && s.n == 7 && s.added == 1 && s.recent == before && uidof(&s, name) == 8, "the session's view of it") ;
  index_close(&s) ;
}

/* APPEND into a folder whose index is new: its new/ mail stays there */
static void test_peek_append (char const *md)
{
  struct index_append ap = INDEX_APPEND_ZERO ;
  mailindex s = INDEX_ZERO ;
  uint32_t uv = 0, uid = 0 ;
  int ok = deliver(md, "Subject: waiting\n\nx\n") && index_append_begin(&ap, md) && index_append_write(&ap, "Subject: a\r\n\r\nb\r\n", 17)
        && index_append_commit(&ap, 0, 0, 0, -1, &uv, &uid) ;
  if (!ok) index_append_abort(&ap) ;
  ok = ok && uid == 2 && countdir(path(md, "new")) == 1 && index_open(&s, md, 0) ;
  check("peek-append-target", ok && s.n == 2 && s.recent == 1 && index_msg(&s, 0)->state & INDEX_RECENT && index_msg(&s, 1)->uid == uid,
        "APPEND to a new index took new/") ;
  index_close(&s) ;
}

/* an index written before the pending tail (76-byte STATE records):
 * read as "anything may be in new/", UIDs kept */
static int strip_pend (char const *md)
{
  int fd = open(path(md, "yubin.index"), O_RDWR) ;
  struct stat st ;
  if (fd < 0 || fstat(fd, &st) < 0) return 0 ;
  size_t len = (size_t)st.st_size, o = 32, w = 32 ;
  unsigned char *b = malloc(len) ;
  int ok = b && pread(fd, b, len, 0) == (ssize_t)len ;
  while (ok && o + 8 <= len)
  {
    uint32_t rl = b[o] | b[o + 1] << 8 | b[o + 2] << 16 | (uint32_t)b[o + 3] << 24 ;
    if (o + 8 + rl > len) break ;
    unsigned char *pl = b + o + 8 ;
    uint32_t nl = pl[0] == 'S' && rl == 81 ? 77 : rl ;
    memmove(b + w + 8, pl, nl) ;
    uint32_t c = 0xffffffffu ;
    for (uint32_t i = 0 ; i < nl ; i++) { c ^= b[w + 8 + i] ; for (int k = 0 ; k < 8 ; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1 ; }
    c ^= 0xffffffffu ;
    for (int k = 0 ; k < 4 ; k++) { b[w + k] = (unsigned char)(nl >> 8 * k) ; b[w + 4 + k] = (unsigned char)(c >> 8 * k) ; }
    o += 8 + rl ; w += 8 + nl ;
  }
  ok = ok && pwrite(fd, b, w, 0) == (ssize_t)w && ftruncate(fd, (off_t)w) == 0 ;
  free(b) ;
  close(fd) ;
  return ok ;
}

static void test_peek_oldformat (char const *md)
{
  mailindex p = INDEX_ZERO, s = INDEX_ZERO ;
  int ok = deliver(md, "Subject: o1\n\nx\n") && index_open(&s, md, 0) ;
  index_close(&s) ;
  ok = ok && deliver(md, "Subject: o2\n\nx\n") && index_open(&p, md, INDEX_PEEK) && p.n == 2 && p.recent == 1 ;
  index_close(&p) ;
  ok = ok && strip_pend(md) ;
  ok = ok && index_open(&p, md, INDEX_PEEK) ;
  check("peek-oldformat", ok && p.n == 2 && p.recent == 1 && p.uidnext == 3 && index_msg(&p, 1)->uid == 2, "an index without the pending tail") ;
  index_close(&p) ;
  ok = strip_pend(md) && index_open(&s, md, 0) ;
  check("peek-oldformat-select", ok && s.n == 2 && s.recent == 1 && index_msg(&s, 1)->uid == 2 && index_msg(&s, 1)->state & INDEX_RECENT
        && countdir(path(md, "new")) == 0, "an old index: SELECT after a peek") ;
  index_close(&s) ;
}

/* a deliverer, a peeker (STATUS in a loop) and a selected session:
 * every message one UID forever, every \Recent in the session */
#define PEEK_MSGS 200

static int peeker (char const *md, char const *out)
{
  FILE *f = fopen(out, "w") ;
  if (!f) return 1 ;
  char (*seen)[128] = calloc(PEEK_MSGS * 2 + 2, sizeof *seen) ;   /* seen[uid]: its unique part */
  if (!seen) return 1 ;
  double end = now() + 60 ;
  int rc = 0 ;
  while (now() < end)
  {
    int done = access(path(md, "done"), F_OK) == 0 ;
    mailindex p = INDEX_ZERO ;
    if (!index_open(&p, md, INDEX_PEEK)) { rc = 2 ; break ; }
    if (!uids_increasing(&p) || p.recent > p.n) rc = 3 ;
    for (size_t i = 0 ; !rc && i < p.n ; i++)
    {
      struct index_msg const *m = index_msg(&p, i) ;
      if (m->uid > PEEK_MSGS * 2 || m->uniqlen >= 128) { rc = 4 ; break ; }
      if (!seen[m->uid][0]) { memcpy(seen[m->uid], index_name(&p, i), m->uniqlen) ; fprintf(f, "%u %s %d\n", m->uid, seen[m->uid], m->state & INDEX_RECENT ? 1 : 0) ; }
      else if (strlen(seen[m->uid]) != m->uniqlen || memcmp(seen[m->uid], index_name(&p, i), m->uniqlen)) rc = 5 ;
    }
    if (p.uidnext < p.n + 1) rc = 6 ;
    index_close(&p) ;
    if (rc || done) break ;
    usleep(300) ;
  }
  free(seen) ;
  if (fclose(f) != 0 && !rc) rc = 7 ;
  return rc ;
}

static void test_peek_concurrent (char const *md)
{
  int pp[2] ;
  pid_t pids[3] ;
  char out[600] ;
  snprintf(out, sizeof out, "%s/../peeker.out", md) ;
  if (pipe(pp) < 0) { check("peek-concurrent", 0, "pipe") ; return ; }
  for (int k = 0 ; k < 3 ; k++)
  {
    pids[k] = fork() ;
    if (pids[k] < 0) { check("peek-concurrent", 0, "fork") ; return ; }
    if (!pids[k])
    {
      close(pp[0]) ;
      if (k == 0)
      {
        char body[64] ;
        for (int i = 0 ; i < PEEK_MSGS ; i++)
        {
          snprintf(body, sizeof body, "Subject: c%d\n\nbody\n", i) ;
          if (!deliver(md, body)) _exit(1) ;
          if (i % 10 == 0) usleep(2000) ;
        }
        int fd = open(path(md, "done"), O_WRONLY | O_CREAT, 0600) ;
        _exit(fd < 0) ;
      }
      if (k == 1) _exit(peeker(md, out)) ;
      _exit(syncer(md, pp[1])) ;
    }
  }
  close(pp[1]) ;
  int ok = 1 ;
  for (int k = 0 ; k < 3 ; k++)
  {
    int st ;
    if (waitpid(pids[k], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) { ok = 0 ; printf("# child %d: status %d\n", k, st) ; }
  }
  char buf[128] ;
  ssize_t r = read(pp[0], buf, sizeof buf - 1) ;
  close(pp[0]) ;
  size_t n1 = 0, r1 = 0 ;
  unsigned uv1 = 0 ;
  if (r > 0) { buf[r] = 0 ; if (sscanf(buf, "%zu %zu %u", &n1, &r1, &uv1) != 3) ok = 0 ; }
  else ok = 0 ;
  mailindex ix = INDEX_ZERO ;
  ok = ok && index_open(&ix, md, 0) ;
  int good = ok && ix.n == PEEK_MSGS && ix.uidnext == PEEK_MSGS + 1 && uids_increasing(&ix) && n1 == PEEK_MSGS && uv1 == ix.uidvalidity
          && countdir(path(md, "cur")) == PEEK_MSGS && countdir(path(md, "new")) == 0 ;
  /* what the peeker saw is what stayed */
  size_t lines = 0, innew = 0 ;
  FILE *f = fopen(out, "r") ;
  if (!f) good = 0 ;
  else
  {
    unsigned u ;
    int rec ;
    char uq[256] ;
    while (fscanf(f, "%u %255s %d", &u, uq, &rec) == 3)
    {
      lines++ ;
      innew += rec ;
      if (uidof(&ix, uq) != u) { good = 0 ; printf("# UID %u (%s) changed to %u\n", u, uq, uidof(&ix, uq)) ; }
    }
    fclose(f) ;
  }
  check("peek-concurrent", good && lines > 0, "a deliverer, a peeker and a session disagree") ;
  check("peek-concurrent-recent", ok && r1 == PEEK_MSGS, "the session did not get every \\Recent") ;
  printf("# peek-concurrent: the peeker saw %zu of %d UIDs (%zu first while in new/), the session got %zu \\Recent\n", lines, PEEK_MSGS, innew, r1) ;
  index_close(&ix) ;
}

/* ---------- 10,000 messages ---------- */

static void test_big (char const *md, size_t n)
{
  char name[1024], body[256] ;
  double t0 = now() ;
  for (size_t i = 0 ; i < n ; i++)
  {
    int l = snprintf(body, sizeof body, "From: a@b\nSubject: message %zu\n\nbody\n", i) ;
    snprintf(name, sizeof name, "%s/cur/%zu.M%zuP1Q%zu.host,S=%d,W=%d:2,%s", md, (size_t)1700000000 + i / 100, i, i, l, l + 4, i % 3 ? "S" : "") ;
    int fd = open(name, O_WRONLY | O_CREAT | O_EXCL, 0600) ;
    if (fd < 0 || write(fd, body, (size_t)l) != l) { check("big", 0, "could not write the messages") ; if (fd >= 0) close(fd) ; return ; }
    close(fd) ;
  }
  double t1 = now() ;
  mailindex ix = INDEX_ZERO, ix2 = INDEX_ZERO ;
  int ok = index_open(&ix, md, 0) ;
  double t2 = now() ;
  usleep(150000) ;   /* let the stamps become trustworthy (IX_STAMP_MARGIN_NS) */
  ok = ok && index_sync(&ix, 1) ;   /* may rescan once: the first stamps were too young */
  double t3 = now() ;
  ok = ok && index_sync(&ix, 1) ;
  double t4 = now() ;
  ok = ok && index_open(&ix2, md, 0) ;
  double t5 = now() ;
  genalloc all = GENALLOC_ZERO ;
  for (uint32_t i = 0 ; ok && i < ix.n ; i++) if (!genalloc_append(uint32_t, &all, &i)) ok = 0 ;
  ok = ok && index_store(&ix, genalloc_s(uint32_t, &all), ix.n, INDEX_STORE_ADD, INDEX_FLAGGED, 0, UINT64_MAX, 0) ;
  double t6 = now() ;
  ok = ok && index_sync(&ix2, 1) ;
  double t7 = now() ;
  genalloc_free(uint32_t, &all) ;
  struct stat ist ;
  long long isize = stat(path(md, "yubin.index"), &ist) ? -1 : (long long)ist.st_size ;
  check("big", ok && ix.n == n && ix2.n == n && uids_increasing(&ix) && glen(&ix2.changed) == n, "10,000 messages") ;
  printf("# info %zu messages: write files %.0f ms, first sync (index built) %.1f ms, sync after 150 ms %.2f ms, no-change sync %.3f ms, "
         "reopen (index read) %.1f ms, STORE +FLAGS on all %.1f ms, other session sees it %.1f ms; index %lld bytes\n",
         n, (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2 - 0.15) * 1e3, (t4 - t3) * 1e3, (t5 - t4) * 1e3, (t6 - t5) * 1e3, (t7 - t6) * 1e3,
         isize) ;
  /* STATUS of it with three waiting in new/: twice (the second finds them numbered) */
  mailindex p = INDEX_ZERO, p2 = INDEX_ZERO ;
  usleep(150000) ;
  ok = ok && index_sync(&ix, 1) && deliver(md, "Subject: w1\n\nx\n") && deliver(md, "Subject: w2\n\nx\n") && deliver(md, "Subject: w3\n\nx\n") ;
  double t8 = now() ;
  ok = ok && index_open(&p, md, INDEX_PEEK) ;
  double t9 = now() ;
  ok = ok && index_open(&p2, md, INDEX_PEEK) ;
  double t10 = now() ;
  check("big-peek", ok && p.n == n + 3 && p.recent == 3 && p2.n == n + 3 && p2.recent == 3 && countdir(path(md, "new")) == 3, "STATUS of 10,000 + 3 new") ;
  printf("# info STATUS (peek open) with 3 in new/: first %.1f ms, again %.1f ms\n", (t9 - t8) * 1e3, (t10 - t9) * 1e3) ;
  index_close(&p) ;
  index_close(&p2) ;
  index_close(&ix) ;
  index_close(&ix2) ;
}

/* the cached fields (yubin.cache): kept, found by a later session,
   equal to what was computed (BODYSTRUCTURE of the mime corpus), a
   damaged entry is "not cached" */
static int slurpf (char const *fn, stralloc *sa)
{
  char b[8192] ;
  ssize_t r ;
  int fd = open(fn, O_RDONLY) ;
  if (fd < 0) return 0 ;
  while ((r = read(fd, b, sizeof b)) > 0) if (!stralloc_catb(sa, b, (size_t)r)) { close(fd) ; return 0 ; }
  close(fd) ;
  return !r ;
}

static void test_cache (char const *md, char const *corpus)
{
  mailindex ix = INDEX_ZERO, ix2 = INDEX_ZERO ;
  stralloc bs[40], got = STRALLOC_ZERO, msg = STRALLOC_ZERO ;
  size_t n = 0 ;
  DIR *d = opendir(corpus) ;
  struct dirent *e ;
  struct mime m = MIME_ZERO ;
  int ok = 1 ;
  if (!d) { check("cache-corpus", 0, "no corpus") ; return ; }
  while ((e = readdir(d)) && n < 40)
  {
    size_t l = strlen(e->d_name) ;
    if (l < 5 || strcmp(e->d_name + l - 4, ".eml")) continue ;
    msg.len = 0 ;
    if (!slurpf(path(corpus, e->d_name), &msg) || !stralloc_0(&msg) || !deliver(md, msg.s)) { ok = 0 ; break ; }
    n++ ;
  }
  closedir(d) ;
  ok = ok && n >= 15 && index_open(&ix, md, 0) && ix.n == n ;
  check("cache-setup", ok, "delivering the corpus") ;
  if (!ok) { index_close(&ix) ; stralloc_free(&msg) ; return ; }
  for (size_t i = 0 ; i < n ; i++)
  {
    int fd = index_openmsg(&ix, i) ;
    bs[i] = (stralloc)STRALLOC_ZERO ;
    msg.len = 0 ;
    if (fd < 0) { ok = 0 ; continue ; }
    char b[65536] ;
    ssize_t r ;
    while ((r = read(fd, b, sizeof b)) > 0) if (!stralloc_catb(&msg, b, (size_t)r)) ok = 0 ;
    close(fd) ;
    if (!mime_parse(&m, msg.s, msg.len) || !mime_bodystructure(&m, 0, 1, &bs[i])) ok = 0 ;
    /* every other one now */
    if (i % 2 == 0 && !index_cache_put(&ix, i, bs[i].s, bs[i].len)) ok = 0 ;
  }
  got.len = 0 ;
  check("cache-pending", ok && index_cache_get(&ix, 0, &got) == 0, "an entry not yet written was found") ;
  ok = ok && index_sync(&ix, 1) ;
  for (size_t i = 0 ; ok && i < n ; i++)
  {
    got.len = 0 ;
    int r = index_cache_get(&ix, i, &got) ;
    if (i % 2 ? r != 0 : r != 1 || got.len != bs[i].len || memcmp(got.s, bs[i].s, got.len)) ok = 0 ;
  }
  check("cache-same-session", ok, "the cached BODYSTRUCTURE differs from the computed one") ;
  /* the rest, in another session; the first sees them after a sync */
  ok = ok && index_open(&ix2, md, 0) ;
  for (size_t i = 0 ; ok && i < n ; i++)
  {
    got.len = 0 ;
    int r = index_cache_get(&ix2, i, &got) ;
    if (i % 2 == 0 && (r != 1 || got.len != bs[i].len || memcmp(got.s, bs[i].s, got.len))) ok = 0 ;
    if (i % 2 && (r != 0 || !index_cache_put(&ix2, i, bs[i].s, bs[i].len))) ok = 0 ;
  }
  ok = ok && index_sync(&ix2, 1) && index_sync(&ix, 1) ;
  for (size_t i = 0 ; ok && i < n ; i++)
  {
    got.len = 0 ;
    if (index_cache_get(&ix, i, &got) != 1 || got.len != bs[i].len || memcmp(got.s, bs[i].s, got.len)) ok = 0 ;
  }
  check("cache-other-session", ok, "a later session does not find the cached BODYSTRUCTURE") ;
  /* damage: the entries are "not cached", not wrong */
  {
    int fd = open(path(md, "yubin.cache"), O_WRONLY) ;
    ok = fd >= 0 && pwrite(fd, "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", 32, 20) == 32 ;
    if (fd >= 0) close(fd) ;
    index_close(&ix2) ; ix2 = (mailindex)INDEX_ZERO ;
    ok = ok && index_open(&ix2, md, 0) ;
    size_t found = 0 ;
    for (size_t i = 0 ; ok && i < n ; i++)
    {
      got.len = 0 ;
      int r = index_cache_get(&ix2, i, &got) ;
      if (r == 1) { found++ ; if (got.len != bs[i].len || memcmp(got.s, bs[i].s, got.len)) ok = 0 ; }
    }
    check("cache-damaged", ok && found == n - 1, "a damaged entry was used, or intact ones lost") ;
  }
  /* many at once: written before the sync, memory bounded */
  {
    stralloc big = STRALLOC_ZERO ;
    struct stat st0, st1 ;
    ok = stralloc_ready(&big, 100000) ;
    if (ok) { memset(big.s, 'b', 100000) ; big.len = 100000 ; }
    ok = ok && !stat(path(md, "yubin.cache"), &st0) ;
    for (size_t i = 0 ; ok && i < 4 ; i++) ok = index_cache_put(&ix2, i, big.s, big.len) ;
    ok = ok && !stat(path(md, "yubin.cache"), &st1) && st1.st_size > st0.st_size + 200000 && ix2.cachebuf.len < 256 << 10 ;
    check("cache-bounded", ok, "256 KiB of entries were not written at once") ;
    /* a compaction keeps the pointers */
    ok = index_sync(&ix2, 1) ;
    for (size_t k = 0 ; ok && k < 4200 ; k++) ok = index_cache_sentdate(&ix2, k % n, (int64_t)k) ;
    struct stat sti0, sti1 ;
    ok = ok && !stat(path(md, "yubin.index"), &sti0) && index_sync(&ix2, 1) && !stat(path(md, "yubin.index"), &sti1) && sti0.st_ino != sti1.st_ino ;
    index_close(&ix) ; ix = (mailindex)INDEX_ZERO ;
    ok = ok && index_open(&ix, md, 0) ;
    for (size_t i = 4 ; ok && i < n ; i++)
    {
      got.len = 0 ;
      if (index_cache_get(&ix, i, &got) != 1 || got.len != bs[i].len || memcmp(got.s, bs[i].s, got.len)) ok = 0 ;
    }
    got.len = 0 ;
    ok = ok && index_cache_get(&ix, 3, &got) == 1 && got.len == big.len ;
    check("cache-compaction", ok, "a compaction lost cached fields") ;
    /* mostly dead: emptied at the next compaction, then nothing is cached */
    for (size_t k = 0 ; ok && k < 30 ; k++) ok = index_cache_put(&ix, 0, big.s, big.len) ;
    ok = ok && index_sync(&ix, 1) ;
    for (size_t k = 0 ; ok && k < 4200 ; k++) ok = index_cache_sentdate(&ix, k % n, (int64_t)k + 10000) ;
    ok = ok && index_sync(&ix, 1) && !stat(path(md, "yubin.cache"), &st1) && st1.st_size == 0 ;
    got.len = 0 ;
    ok = ok && index_cache_get(&ix, 5, &got) == 0 && index_sync(&ix2, 1) && index_cache_get(&ix2, 5, &got) == 0 ;
    ok = ok && index_cache_put(&ix2, 5, bs[5].s, bs[5].len) && index_sync(&ix2, 1) && index_sync(&ix, 1) ;
    got.len = 0 ;
    ok = ok && index_cache_get(&ix, 5, &got) == 1 && got.len == bs[5].len && !memcmp(got.s, bs[5].s, got.len) ;
    check("cache-trim", ok, "a mostly dead yubin.cache was not emptied, or not refilled") ;
    stralloc_free(&big) ;
  }
  for (size_t i = 0 ; i < n ; i++) stralloc_free(&bs[i]) ;
  index_close(&ix) ; index_close(&ix2) ;
  mime_free(&m) ;
  stralloc_free(&got) ; stralloc_free(&msg) ;
}

static int mkmd (char const *dir)
{
  return maildir_make(dir) ;
}

static void rmrf (char const *dir)
{
  char cmd[1200] ;
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir) ;
  if (system(cmd)) { }
}

int main (void)
{
  char const *tmp = getenv("TMPDIR") ;
  snprintf(top, sizeof top, "%s/t-index.XXXXXX", tmp ? tmp : "/tmp") ;
  if (!mkdtemp(top)) { printf("FAIL index-setup: mkdtemp\n") ; return 1 ; }
  char md[8][512] ;
  for (int i = 0 ; i < 8 ; i++) snprintf(md[i], sizeof md[i], "%s/md%d", top, i) ;
  for (int i = 0 ; i < 8 ; i++) if (!mkmd(md[i])) { printf("FAIL index-setup: maildir_make\n") ; return 1 ; }
  char sub[600] ;
  snprintf(sub, sizeof sub, "%s/.Sub", md[2]) ;
  if (!mkmd(sub)) { printf("FAIL index-setup: maildir_make\n") ; return 1 ; }
  test_basic(md[0]) ;
  test_damage(md[1]) ;
  test_concurrent(md[3]) ;
  for (int i = 0 ; i < 3 ; i++) if (!deliver(md[2], "Subject: c\n\nx\n")) printf("FAIL index-setup: deliver\n") ;
  test_append_copy(md[2], sub) ;
  test_peek(md[4]) ;
  test_peek_append(md[5]) ;
  test_peek_oldformat(md[6]) ;
  test_peek_concurrent(md[7]) ;
  rmrf(md[0]) ;
  if (!mkmd(md[0])) return 1 ;
  test_cache(md[0], "tests/imapd/mime") ;
  rmrf(md[0]) ;
  if (!mkmd(md[0])) return 1 ;
  test_big(md[0], 10000) ;
  rmrf(top) ;
  return failed ;
}
