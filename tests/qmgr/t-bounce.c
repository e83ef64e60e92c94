/* t-bounce: qmgr/bounce.c, the RFC 3464 failure notice: a local failure,
 * a remote 5xx with an enhanced code, an expired temporary failure,
 * several recipients, a message over bouncemaxbytes (its header only),
 * no copy, a boundary that the message already holds, the failure-text
 * parser on odd texts, and who gets a bounce or a double bounce
 * (control/doublebounceto).
 *
 * t-bounce [DIR]: with DIR, each notice is also written to DIR/NAME.eml,
 * for tests/qmgr/test_dsn.py (Python's email package reads them). */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <skalibs/stralloc.h>

#include "qmgr/bounce.h"

char const *PROG = "t-bounce" ;
static int failed ;
static char const *outdir ;

static void check (char const *name, int ok, char const *why)
{
  if (ok) printf("PASS %s\n", name) ;
  else { printf("FAIL %s: %s\n", name, why) ; failed = 1 ; }
}

static int has (stralloc const *sa, char const *s)
{
  return memmem(sa->s, sa->len, s, strlen(s)) != 0 ;
}

static int count (stralloc const *sa, char const *s)
{
  int n = 0 ;
  size_t l = strlen(s) ;
  char const *p = sa->s, *end = sa->s + sa->len ;
  for (;;)
  {
    char const *q = memmem(p, end - p, s, l) ;
    if (!q) return n ;
    n++ ;
    p = q + l ;
  }
}

/* A message in a file, at its first byte, as qmgr gives it. */
static int msgfile (char const *msg)
{
  char fn[] = "/tmp/t-bounce.XXXXXX" ;
  int fd = mkstemp(fn) ;
  if (fd < 0) { perror("mkstemp") ; exit(111) ; }
  unlink(fn) ;
  size_t len = strlen(msg) ;
  if (write(fd, msg, len) != (ssize_t)len || lseek(fd, 0, SEEK_SET) < 0) { perror("write") ; exit(111) ; }
  return fd ;
}

static void save (char const *name, stralloc const *sa)
{
  if (!outdir) return ;
  char fn[4096] ;
  snprintf(fn, sizeof(fn), "%s/%s.eml", outdir, name) ;
  FILE *f = fopen(fn, "wb") ;
  if (!f || fwrite(sa->s, 1, sa->len, f) != sa->len || fclose(f)) { perror(fn) ; exit(111) ; }
}

/* Build the notice of msg (NULL: no copy) for the failures in why. */
static void build (stralloc *out, char const *name, stralloc const *why, char const *msg, uint64_t maxbytes)
{
  struct bounce b =
  {
    .me = "mx.example.test", .id = "1732781234.012345678.4242", .sender = "alice@example.org",
    .failures = why->s, .failureslen = why->len,
    .msgfd = msg ? msgfile(msg) : -1, .msgsize = msg ? strlen(msg) : 0, .maxbytes = maxbytes,
    .when = 1732781300, .arrival = 1732781234, .rcpt = 0
  } ;
  out->len = 0 ;
  int ok = bounce_make(out, &b, "alice@example.org") ;
  if (b.msgfd >= 0) close(b.msgfd) ;
  char nm[128] ;
  snprintf(nm, sizeof(nm), "%s_built", name) ;
  check(nm, ok, "bounce_make failed") ;
  snprintf(nm, sizeof(nm), "%s_no_cr_no_nul", name) ;
  check(nm, !memchr(out->s, '\r', out->len) && !memchr(out->s, 0, out->len), "CR or NUL in the notice") ;
  snprintf(nm, sizeof(nm), "%s_headers", name) ;
  check(nm, !strncmp(out->s, "Date: Thu, 28 Nov 2024 08:08:20 +0000\nFrom: MAILER-DAEMON@mx.example.test\nTo: <alice@example.org>\n", 98)
        && has(out, "\nSubject: failure notice\n") && has(out, "\nMessage-ID: <bounce.1732781234.012345678.4242@mx.example.test>\n")
        && has(out, "\nAuto-Submitted: auto-replied\n") && has(out, "\nMIME-Version: 1.0\n")
        && has(out, "\nContent-Type: multipart/report; report-type=delivery-status;\n boundary=\"")
        && has(out, "\nReporting-MTA: dns; mx.example.test\n") && has(out, "\nArrival-Date: Thu, 28 Nov 2024 08:07:14 +0000\n"),
        "header or per-message fields wrong") ;
  save(name, out) ;
}

static char const small[] = "Subject: hello\nFrom: alice@example.org\n\nline one\nline two\n" ;

static void test_local (stralloc *out)
{
  stralloc why = STRALLOC_ZERO ;
  if (!bounce_add_failure(&why, "nosuch@mx.example.test", "Sorry, no mailbox here by that name. (#5.1.1)")) exit(111) ;
  build(out, "local", &why, small, 50000) ;
  check("local_recipient", has(out, "\nFinal-Recipient: rfc822; nosuch@mx.example.test\nAction: failed\nStatus: 5.1.1\n"
                                    "Diagnostic-Code: x-yubin; Sorry, no mailbox here by that name. (#5.1.1)\n"), out->s) ;
  check("local_no_remote_mta", !has(out, "Remote-MTA"), out->s) ;
  check("local_human", has(out, "Hi. This is the mail delivery program at mx.example.test.\n")
        && has(out, "\n<nosuch@mx.example.test>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"), out->s) ;
  check("local_whole_message", has(out, "\nContent-Type: message/rfc822\n") && has(out, small) && !has(out, "rfc822-headers"), out->s) ;
  check("local_three_parts", count(out, "\n--=_yubin-dsn_") == 4 && has(out, "--\n"), out->s) ;
  stralloc_free(&why) ;
}

static void test_remote (stralloc *out)
{
  stralloc why = STRALLOC_ZERO ;
  if (!bounce_add_failure(&why, "bob@remote.test", "mx.remote.test[192.0.2.1] said: 550 5.1.1 <bob@remote.test>: no such user")) exit(111) ;
  build(out, "remote", &why, small, 50000) ;
  check("remote_recipient", has(out, "\nFinal-Recipient: rfc822; bob@remote.test\nAction: failed\nStatus: 5.1.1\n"
                                     "Remote-MTA: dns; mx.remote.test\n"
                                     "Diagnostic-Code: smtp; 550 5.1.1 <bob@remote.test>: no such user\n"), out->s) ;
  stralloc_free(&why) ;
}

static void test_expired (stralloc *out)
{
  stralloc why = STRALLOC_ZERO ;
  if (!bounce_add_expired(&why, "carol@slow.test", "mx.slow.test 192.0.2.2 said: 451 try again later")) exit(111) ;
  build(out, "expired", &why, small, 50000) ;
  check("expired_recipient", has(out, "\nFinal-Recipient: rfc822; carol@slow.test\nAction: failed\nStatus: 4.4.7\n"
                                      "Remote-MTA: dns; mx.slow.test\nDiagnostic-Code: smtp; 451 try again later\n"), out->s) ;
  check("expired_human", has(out, "too long") && has(out, "Last error: mx.slow.test 192.0.2.2 said: 451 try again later\n"), out->s) ;
  /* what yubin-qmgr wrote before bounce_add_expired */
  why.len = 0 ;
  if (!bounce_add_failure(&why, "dave@slow.test", "This message has been in the queue too long; I've given up.\nLast error: remote delivery not available")) exit(111) ;
  build(out, "expired_legacy", &why, small, 50000) ;
  check("expired_legacy_recipient", has(out, "\nFinal-Recipient: rfc822; dave@slow.test\nAction: failed\nStatus: 4.4.7\n"
                                             "Diagnostic-Code: x-yubin; remote delivery not available\n"), out->s) ;
  stralloc_free(&why) ;
}

static struct { char const *rcpt, *text, *status, *mta, *diag ; int expired ; } const several[] = {
  { "u1@example.test", "Sorry, no mailbox here by that name. (#5.1.1)", "5.1.1", 0, "x-yubin; Sorry, no mailbox here by that name. (#5.1.1)", 0 },
  { "u2@remote.test", "mx1.remote.test[2001:db8::1] said: 552 5.2.2 mailbox full", "5.2.2", "mx1.remote.test", "smtp; 552 5.2.2 mailbox full", 0 },
  { "u3@remote.test", "[192.0.2.9] said: 554 5.7.1 rejected", "5.7.1", "[192.0.2.9]", "smtp; 554 5.7.1 rejected", 0 },
  { "u4@remote.test", "Remote host said: 550 go away", "5.0.0", 0, "smtp; 550 go away", 0 },
  { "u5@remote.test", "mx.remote.test[192.0.2.1] said: 550 4.2.2 class mismatch", "5.0.0", "mx.remote.test", "smtp; 550 4.2.2 class mismatch", 0 },
  { "u6@example.test", "", "5.0.0", 0, "x-yubin; permanent failure", 0 },
  { "u7@example.test", "mailbox is over quota (#4.2.2)", "4.2.2", 0, "x-yubin; mailbox is over quota (#4.2.2)", 1 },
  { "u8@remote.test", "no host answered: connection refused", "4.4.7", 0, "x-yubin; no host answered: connection refused", 1 },
  { "u9@remote.test", "mx.remote.test[192.0.2.1] said: 552-5.3.4 too big", "5.3.4", "mx.remote.test", "smtp; 552-5.3.4 too big", 0 },
  { "u10@remote.test", "mx.remote.test said: 550 5.1.10 null MX\tand a tab", "5.1.10", "mx.remote.test", "smtp; 550 5.1.10 null MX and a tab", 0 },
} ;
#define NSEVERAL (sizeof(several) / sizeof(several[0]))

static void test_several (stralloc *out)
{
  stralloc why = STRALLOC_ZERO ;
  for (size_t i = 0 ; i < NSEVERAL ; i++)
    if (!(several[i].expired ? bounce_add_expired(&why, several[i].rcpt, several[i].text)
                             : bounce_add_failure(&why, several[i].rcpt, several[i].text))) exit(111) ;
  build(out, "several", &why, small, 50000) ;
  for (size_t i = 0 ; i < NSEVERAL ; i++)
  {
    char want[1024], name[64] ;
    int n = snprintf(want, sizeof(want), "\nFinal-Recipient: rfc822; %s\nAction: failed\nStatus: %s\n", several[i].rcpt, several[i].status) ;
    if (several[i].mta) n += snprintf(want + n, sizeof(want) - n, "Remote-MTA: dns; %s\n", several[i].mta) ;
    snprintf(want + n, sizeof(want) - n, "Diagnostic-Code: %s\n", several[i].diag) ;
    snprintf(name, sizeof(name), "several_%s", several[i].rcpt) ;
    check(name, has(out, want), want) ;
  }
  check("several_count", count(out, "Final-Recipient:") == NSEVERAL, "") ;
  stralloc_free(&why) ;
}

static void test_big (stralloc *out)
{
  stralloc why = STRALLOC_ZERO ;
  stralloc msg = STRALLOC_ZERO ;
  if (!bounce_add_failure(&why, "bob@remote.test", "mx.remote.test[192.0.2.1] said: 552 5.3.4 message too big")) exit(111) ;
  if (!stralloc_cats(&msg, "Subject: big\nFrom: alice@example.org\nX-Big: yes\n\n")) exit(111) ;
  for (int i = 0 ; i < 2000 ; i++) if (!stralloc_cats(&msg, "0123456789 body line of the big message\n")) exit(111) ;
  if (!stralloc_0(&msg)) exit(111) ;
  build(out, "big", &why, msg.s, 1000) ;
  check("big_headers_only", has(out, "\nContent-Type: text/rfc822-headers\n")
        && has(out, "Subject: big\nFrom: alice@example.org\nX-Big: yes\n") && !has(out, "body line")
        && !has(out, "message/rfc822"), out->s) ;
  check("big_says_why", has(out, "larger than 1000 bytes"), out->s) ;
  /* exactly maxbytes: whole */
  build(out, "exact", &why, small, sizeof(small) - 1) ;
  check("exact_whole", has(out, "\nContent-Type: message/rfc822\n") && has(out, "line two\n"), out->s) ;
  /* header larger than maxbytes: cut at a line end */
  build(out, "bighead", &why, msg.s, 30) ;
  check("bighead_cut", has(out, "\nContent-Type: text/rfc822-headers\n") && has(out, "\n\nSubject: big\n\n--=_yubin") && !has(out, "From: alice@example.org\nX"), out->s) ;
  /* nothing fits: no third part */
  build(out, "nothing", &why, msg.s, 0) ;
  check("nothing_fits_two_parts", count(out, "\n--=_yubin-dsn_") == 3 && !has(out, "rfc822-headers"), out->s) ;
  stralloc_free(&msg) ;
  stralloc_free(&why) ;
}

static void test_odd (stralloc *out)
{
  stralloc why = STRALLOC_ZERO ;
  if (!bounce_add_failure(&why, "x@example.test", "fail (#5.2.0)")) exit(111) ;
  build(out, "nocopy", &why, 0, 50000) ;
  check("nocopy_two_parts", count(out, "\n--=_yubin-dsn_") == 3 && !has(out, "message/rfc822") && !has(out, "rfc822-headers"), out->s) ;
  build(out, "boundary", &why, "Subject: x\n\n--=_yubin-dsn_1732781234.012345678.4242_0\nno newline at the end", 50000) ;
  check("boundary_avoided", has(out, "boundary=\"=_yubin-dsn_1732781234.012345678.4242_1\"")
        && has(out, "no newline at the end\n\n--=_yubin-dsn_1732781234.012345678.4242_1--\n"), out->s) ;
  stralloc_free(&why) ;
}

static void write_control (char const *root, char const *content)
{
  char fn[4096] ;
  snprintf(fn, sizeof(fn), "%s/control/doublebounceto", root) ;
  if (!content) { unlink(fn) ; return ; }
  FILE *f = fopen(fn, "w") ;
  if (!f || fputs(content, f) < 0 || fclose(f)) { perror(fn) ; exit(111) ; }
}

static void test_recipient (char const *root)
{
  stralloc to = STRALLOC_ZERO ;
  check("wanted", bounce_wanted("a@b") && bounce_wanted("") && !bounce_wanted("#@[]"), "") ;
  check("from", !strcmp(bounce_from("a@b"), "") && !strcmp(bounce_from(""), "#@[]"), "") ;
  check("recipient_sender", bounce_recipient(&to, "a@b", "me.test") == 1 && !strcmp(to.s, "a@b"), to.s) ;
  write_control(root, 0) ;
  check("doublebounceto_default", bounce_recipient(&to, "", "me.test") == 1 && !strcmp(to.s, "postmaster@me.test"), to.s) ;
  write_control(root, "hostmaster\n") ;
  check("doublebounceto_local", bounce_recipient(&to, "", "me.test") == 1 && !strcmp(to.s, "hostmaster@me.test"), to.s) ;
  write_control(root, "ops@other.test\n") ;
  check("doublebounceto_address", bounce_recipient(&to, "", "me.test") == 1 && !strcmp(to.s, "ops@other.test"), to.s) ;
  write_control(root, "\n") ;
  check("doublebounceto_empty_drops", bounce_recipient(&to, "", "me.test") == 1 && !to.len, to.s) ;
  struct bounce b = { .me = "me.test", .id = "1.2.3", .sender = "", .failures = "", .failureslen = 0, .msgfd = -1 } ;
  check("doublebounce_dropped_ok", bounce_send("/nonexistent/yubin-queue", &b) == 0, "bounce_send did not drop it") ;
  write_control(root, 0) ;
  stralloc_free(&to) ;
}

int main (int argc, char const *const *argv)
{
  stralloc out = STRALLOC_ZERO ;
  char root[] = "/tmp/t-bounce-root.XXXXXX" ;
  char ctl[sizeof(root) + 16] ;
  if (argc > 1) outdir = argv[1] ;
  if (!mkdtemp(root)) { perror("mkdtemp") ; return 111 ; }
  snprintf(ctl, sizeof(ctl), "%s/control", root) ;
  if (mkdir(ctl, 0755) < 0 || setenv("YUBIN_ROOT", root, 1) < 0) { perror(ctl) ; return 111 ; }
  test_local(&out) ;
  test_remote(&out) ;
  test_expired(&out) ;
  test_several(&out) ;
  test_big(&out) ;
  test_odd(&out) ;
  test_recipient(root) ;
  rmdir(ctl) ;
  rmdir(root) ;
  stralloc_free(&out) ;
  return failed ;
}
