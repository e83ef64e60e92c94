/* t-search: imapd/search.c against search.h.
 *
 * A fake mailbox of five messages behind the accessor; every RFC 3501
 * search key, NOT / OR / parentheses, sequence and UID sets with '*',
 * CHARSET (UTF-8, US-ASCII, others refused), RETURN options, grammar
 * errors; the cheap keys decide before the expensive callbacks are
 * called, the cost ceiling gives UNKNOWN only when it must; the
 * streaming matcher against a naive one on random inputs fed in random
 * pieces, with ASCII and Latin-1 case folding. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <skalibs/stralloc.h>

#include "imapd/cmd.h"
#include "imapd/search.h"

char const *PROG = "t-search" ;

static int failed ;

static void check (char const *name, int ok, char const *why)
{
  if (ok) printf("PASS search-%s\n", name) ;
  else { printf("FAIL search-%s: %s\n", name, why) ; failed = 1 ; }
  fflush(stdout) ;
}

/* ---------- the fake mailbox ---------- */

struct msg
{
  uint32_t uid ;
  unsigned int flags ;
  char const *keywords ;   /* space-separated */
  uint64_t size ;
  int64_t idate ;          /* internal date, UTC */
  int hasdate ;
  int64_t sdate ;          /* Date: */
  int stz ;
  char const *header ;     /* "Name: value\n..." */
  char const *body ;
} ;

#define DAY(d) ((int64_t)(d) * 86400)
/* 1994-02-01 is day 8797 */
static struct msg const msgs[] =
{
  { 10, IMAPFLAG_SEEN | IMAPFLAG_ANSWERED, "$Junk", 100, DAY(8797) + 36000, 1, DAY(8797) + 16200, -300,
    "From: Alice <alice@example.com>\nTo: bob@example.org\nSubject: Hello World\n",
    "The quick brown fox\n" },
  { 20, IMAPFLAG_FLAGGED | IMAPFLAG_RECENT, "", 2000, DAY(8798) + 100, 0, 0, 0,
    "From: Bob <bob@example.org>\nSubject: Caf\xc3\xa9 cr\xc3\xa8me\nCc: carol@example.net\n",
    "\xc3\x9cn\xc3\xaf" "code TEXT \xc3\x89T\xc3\x89\n" },
  { 30, IMAPFLAG_DELETED | IMAPFLAG_DRAFT | IMAPFLAG_SEEN | IMAPFLAG_RECENT, "work $Junk", 5000, DAY(8799), 1, DAY(8799) + 3600, 0,
    "From: carol@example.net\nBcc: dave@example.com\nX-Custom: yes\nSubject: re: hello\n",
    "nothing here\n" },
  { 40, 0, "", 50, DAY(11027), 1, DAY(11027), 0,
    "From: dave@example.com\nSubject: \n",
    "fox jumps\n" },
  { 4000000000u, IMAPFLAG_RECENT, "Work", 4096, DAY(11027) + 86399, 1, DAY(11027) + 86399, 60,
    "To: alice@example.com\nTo: eve@example.com\n",
    "" },
} ;
#define NMSGS (sizeof msgs / sizeof *msgs)

static unsigned int calls_header, calls_body, calls_sent ;
static int fail_body ;

static unsigned int f_flags (void *ctx, uint32_t seq) { (void)ctx ; return msgs[seq-1].flags ; }
static uint32_t f_uid (void *ctx, uint32_t seq) { (void)ctx ; return msgs[seq-1].uid ; }
static uint64_t f_size (void *ctx, uint32_t seq) { (void)ctx ; return msgs[seq-1].size ; }
static void f_idate (void *ctx, uint32_t seq, int64_t *t, int *tz) { (void)ctx ; *t = msgs[seq-1].idate ; *tz = 0 ; }

static int f_keyword (void *ctx, uint32_t seq, char const *kw, size_t len)
{
  char const *s = msgs[seq-1].keywords ;
  (void)ctx ;
  while (*s)
  {
    size_t n = strcspn(s, " ") ;
    if (n == len && !strncasecmp(s, kw, len)) return 1 ;
    s += n ;
    while (*s == ' ') s++ ;
  }
  return 0 ;
}

static int f_sentdate (void *ctx, uint32_t seq, int64_t *t, int *tz)
{
  (void)ctx ;
  calls_sent++ ;
  if (!msgs[seq-1].hasdate) return 0 ;
  *t = msgs[seq-1].sdate ;
  *tz = msgs[seq-1].stz ;
  return 1 ;
}

static int f_header (void *ctx, uint32_t seq, char const *name, size_t namelen, stralloc *out)
{
  char const *s = msgs[seq-1].header ;
  int found = 0 ;
  (void)ctx ;
  calls_header++ ;
  while (*s)
  {
    size_t n = strcspn(s, "\n") ;
    char const *colon = memchr(s, ':', n) ;
    if (colon && (size_t)(colon - s) == namelen && !strncasecmp(s, name, namelen))
    {
      char const *v = colon + 1 ;
      while (*v == ' ') v++ ;
      if (found && !stralloc_catb(out, "\n", 1)) return -1 ;
      if (!stralloc_catb(out, v, s + n - v)) return -1 ;
      found = 1 ;
    }
    s += n ;
    if (*s) s++ ;
  }
  return found ;
}

/* fed a byte at a time, to exercise the streaming */
static int f_contains (void *ctx, uint32_t seq, int text, struct imapsearch_match *m)
{
  char const *s ;
  (void)ctx ;
  calls_body++ ;
  if (fail_body) { errno = EIO ; return -1 ; }
  if (text)
  {
    for (s = msgs[seq-1].header ; *s ; s++) imapsearch_match_feed(m, s, 1) ;
    imapsearch_match_feed(m, "\n", 1) ;
  }
  for (s = msgs[seq-1].body ; *s ; s++) imapsearch_match_feed(m, s, 1) ;
  return m->found ;
}

static struct imapsearch_ops const ops =
{
  .flags = &f_flags, .keyword = &f_keyword, .uid = &f_uid, .size = &f_size,
  .internaldate = &f_idate, .sentdate = &f_sentdate, .header = &f_header, .contains = &f_contains,
} ;

/* ---------- running a SEARCH ---------- */

static struct imapcmd_reader rd ;
static struct imapcmd cmd = IMAPCMD_ZERO ;
static struct imapsearch srch = IMAPSEARCH_ZERO ;

/* parses "a SEARCH <args>\r\n"; returns imapsearch_parse's value, or 9 */
static int sparse (char const *args, char const **err)
{
  stralloc line = STRALLOC_ZERO ;
  size_t used ;
  int e = 9 ;
  imapcmd_reader_free(&rd) ;
  imapcmd_reader_init(&rd) ;
  if (!stralloc_cats(&line, "a SEARCH ") || !stralloc_cats(&line, args) || !stralloc_cats(&line, "\r\n")) exit(111) ;
  if (imapcmd_feed(&rd, line.s, line.len, &used) == IMAPCMD_READY && imapcmd_parse(&rd, &cmd, IMAPCMD_UTF8) == 1)
    e = imapsearch_parse(&srch, &cmd, 0, err) ;
  stralloc_free(&line) ;
  return e ;
}

/* the result on every message as a string of 0/1 (? unknown, E error) */
static void results (int ceiling, char *out)
{
  for (uint32_t seq = 1 ; seq <= NMSGS ; seq++)
  {
    int r = imapsearch_eval(&srch, &ops, 0, seq, ceiling) ;
    out[seq-1] = r == 1 ? '1' : r == 0 ? '0' : r == IMAPSEARCH_UNKNOWN ? '?' : 'E' ;
  }
  out[NMSGS] = 0 ;
}

static void sc (char const *name, char const *args, char const *want)
{
  char const *err = 0 ;
  char got[NMSGS + 1], why[300] ;
  int e = sparse(args, &err) ;
  if (e != 1)
  {
    snprintf(why, sizeof why, "%.60s: parse gave %d (%s)", args, e, err ? err : "") ;
    check(name, 0, why) ;
    return ;
  }
  imapsearch_prepare(&srch, NMSGS, 4000000000u) ;
  results(IMAPSEARCH_BODY, got) ;
  snprintf(why, sizeof why, "%.60s: got %s, want %s", args, got, want) ;
  check(name, !strcmp(got, want), why) ;
}

static void sbad (char const *name, char const *args, int want)
{
  char const *err = 0 ;
  char why[300] ;
  int e = sparse(args, &err) ;
  snprintf(why, sizeof why, "%.60s: parse gave %d, want %d", args, e, want) ;
  check(name, e == want && err && *err, why) ;
}

static void test_keys (void)
{
  sc("all", "ALL", "11111") ;
  sc("answered", "ANSWERED", "10000") ;
  sc("unanswered", "unanswered", "01111") ;
  sc("deleted", "DELETED", "00100") ;
  sc("undeleted", "UNDELETED", "11011") ;
  sc("draft", "DRAFT", "00100") ;
  sc("undraft", "UNDRAFT", "11011") ;
  sc("flagged", "FLAGGED", "01000") ;
  sc("unflagged", "UNFLAGGED", "10111") ;
  sc("seen", "SEEN", "10100") ;
  sc("unseen", "UNSEEN", "01011") ;
  sc("recent", "RECENT", "01101") ;
  sc("new", "NEW", "01001") ;
  sc("old", "OLD", "10010") ;
  sc("keyword", "KEYWORD $junk", "10100") ;
  sc("keyword-case", "KEYWORD work", "00101") ;
  sc("unkeyword", "UNKEYWORD $Junk", "01011") ;
  sc("larger", "LARGER 2000", "00101") ;
  sc("smaller", "SMALLER 100", "00010") ;
  sc("larger-huge", "LARGER 18446744073709551615", "00000") ;
  sc("seqset", "2,4:5", "01011") ;
  sc("seqset-star", "4:*", "00011") ;
  sc("seqset-reversed", "3:1", "11100") ;
  sc("seqset-star-alone", "*", "00001") ;
  sc("uid", "UID 20:30", "01100") ;
  sc("uid-star", "UID *", "00001") ;
  sc("uid-range-star", "UID 35:*", "00011") ;
  sc("before", "BEFORE 2-Feb-1994", "10000") ;
  sc("on", "ON 2-Feb-1994", "01000") ;
  sc("since", "SINCE 2-Feb-1994", "01111") ;
  sc("since-quoted", "SINCE \"1-Mar-2000\"", "00011") ;
  sc("on-last-second", "ON 11-Mar-2000", "00011") ;
  /* sent dates: message 1's Date is 31-Jan-1994 23:30 -0500; message 2
     has none (its internal date counts); message 5 is 12-Mar 00:59 +0100 */
  sc("senton-zone", "SENTON 31-Jan-1994", "10000") ;
  sc("sentbefore", "SENTBEFORE 1-Feb-1994", "10000") ;
  sc("sentsince-nodate", "SENTSINCE 2-Feb-1994", "01111") ;
  sc("senton-plus", "SENTON 12-Mar-2000", "00001") ;
  sc("from", "FROM alice", "10000") ;
  sc("from-case", "FROM EXAMPLE.ORG", "01000") ;
  sc("to", "TO alice", "00001") ;
  sc("to-second-field", "TO eve", "00001") ;
  sc("cc", "CC carol", "01000") ;
  sc("bcc", "BCC dave", "00100") ;
  sc("subject", "SUBJECT hello", "10100") ;
  sc("subject-utf8-fold", "CHARSET UTF-8 SUBJECT \"CAF\xc3\x89\"", "01000") ;
  sc("subject-literal", "CHARSET utf-8 SUBJECT {6+}\r\nCR\xc3\x88ME", "01000") ;
  sc("subject-empty", "SUBJECT \"\"", "11110") ;
  sc("header", "HEADER X-Custom yes", "00100") ;
  sc("header-empty", "HEADER x-custom \"\"", "00100") ;
  sc("header-absent", "HEADER X-Nothing \"\"", "00000") ;
  sc("body", "BODY fox", "10010") ;
  sc("body-no-header", "BODY alice", "00000") ;
  sc("body-latin1-fold", "BODY \"\xc3\xbcN\xc3\x8f\"", "01000") ;
  sc("body-fold-both", "BODY \"\xc3\xa9T\xc3\xa9\"", "01000") ;
  sc("text", "TEXT alice", "10001") ;
  sc("text-body", "TEXT jumps", "00010") ;
  sc("body-empty", "BODY \"\"", "11111") ;
  sc("not", "NOT SEEN", "01011") ;
  sc("not-not", "NOT NOT SEEN", "10100") ;
  sc("or", "OR SEEN FLAGGED", "11100") ;
  sc("or-nested", "OR OR ANSWERED DRAFT NOT RECENT", "10110") ;
  sc("and", "SEEN RECENT", "00100") ;
  sc("parens", "(SEEN RECENT) OR (FLAGGED) (DELETED)", "00100") ;
  sc("parens-or", "OR (SEEN RECENT) (UID 40)", "00110") ;
  sc("mixed", "OR BODY fox SUBJECT hello UNDELETED", "10010") ;
  sc("charset-us-ascii", "CHARSET US-ASCII SEEN", "10100") ;
  sc("return-all", "RETURN (MIN MAX COUNT ALL) SEEN", "10100") ;
  check("return-flags", srch.esearch && srch.ret == (IMAPSEARCH_RET_MIN | IMAPSEARCH_RET_MAX | IMAPSEARCH_RET_COUNT | IMAPSEARCH_RET_ALL), "RETURN options") ;
  sc("return-empty", "RETURN () CHARSET UTF-8 ALL", "11111") ;
  check("return-empty-all", srch.esearch && srch.ret == IMAPSEARCH_RET_ALL && srch.charset, "RETURN () is ALL") ;
  sc("no-return", "ALL", "11111") ;
  check("no-return-flags", !srch.esearch && !srch.ret && !srch.charset, "no RETURN") ;
  {
    char const *err ;
    uint32_t saved[] = { 20, 40 } ;
    char got[NMSGS + 1] ;
    int e = sparse("RETURN (SAVE) $ UNSEEN", &err) ;
    e = e == 1 && srch.hasdollar && (srch.ret & IMAPSEARCH_RET_SAVE) && imapsearch_setdollar(&srch, saved, 2) ;
    imapsearch_prepare(&srch, NMSGS, 4000000000u) ;
    results(IMAPSEARCH_BODY, got) ;
    check("dollar", e && !strcmp(got, "01010"), got) ;
  }
}

static void test_prepare_again (void)
{
  char const *err ;
  char got[NMSGS + 1] ;
  int e = sparse("2:* UID 25:*", &err) ;
  imapsearch_prepare(&srch, NMSGS, 4000000000u) ;
  results(IMAPSEARCH_BODY, got) ;
  e = e == 1 && !strcmp(got, "00111") ;
  imapsearch_prepare(&srch, 3, 30) ;   /* the mailbox is smaller now */
  results(IMAPSEARCH_BODY, got) ;
  check("prepare-again", e && !strcmp(got, "00100"), got) ;
}

static void test_errors (void)
{
  sbad("bad-empty", "", 0) ;
  sbad("bad-unknown", "FOO", 0) ;
  sbad("bad-or-one", "OR SEEN", 0) ;
  sbad("bad-not-alone", "NOT", 0) ;
  sbad("bad-date", "BEFORE 1-Foo-2000", 0) ;
  sbad("bad-date-missing", "SINCE", 0) ;
  sbad("bad-larger", "LARGER x", 0) ;
  sbad("bad-larger-missing", "LARGER", 0) ;
  sbad("bad-parens-empty", "()", 0) ;
  sbad("bad-seq", "1:2:3", 0) ;
  sbad("bad-seq-zero", "0", 0) ;
  sbad("bad-uid", "UID", 0) ;
  sbad("bad-uid-list", "UID (1)", 0) ;
  sbad("bad-uid-above", "UID 5000000000", 0) ;
  sbad("bad-header-one", "HEADER X-Custom", 0) ;
  sbad("bad-header-name", "HEADER \"a:b\" x", 0) ;
  sbad("bad-keyword", "KEYWORD", 0) ;
  sbad("bad-keyword-quoted", "KEYWORD \"x\"", 0) ;
  sbad("bad-subject-list", "SUBJECT (x)", 0) ;
  sbad("bad-charset", "CHARSET ISO-8859-1 SUBJECT x", -2) ;
  sbad("bad-charset-missing", "CHARSET", 0) ;
  sbad("bad-charset-nokey", "CHARSET UTF-8", 0) ;
  sbad("bad-return", "RETURN (FOO) ALL", 0) ;
  sbad("bad-return-atom", "RETURN MIN ALL", 0) ;
  sbad("bad-quoted-key", "\"SEEN\"", 0) ;
  sbad("bad-list-string", "(SUBJECT) x", 0) ;
  sbad("bad-list-or", "(OR SEEN) SEEN", 0) ;
  sbad("bad-list-larger", "(LARGER) 5", 0) ;
  sbad("bad-list-uid", "(UID) 5", 0) ;
  sbad("bad-list-keyword", "(KEYWORD) x", 0) ;
  sbad("bad-list-date", "(SINCE) 1-Feb-1994", 0) ;
  sbad("bad-list-header", "(HEADER x) y", 0) ;
  {
    stralloc sa = STRALLOC_ZERO ;
    int i ;
    for (i = 0 ; i < IMAPSEARCH_DEPTHMAX + 1 ; i++) stralloc_cats(&sa, "NOT ") ;
    stralloc_cats(&sa, "SEEN") ;
    stralloc_0(&sa) ;
    sbad("bad-depth", sa.s, 0) ;
    sa.len = 0 ;
    for (i = 0 ; i < IMAPSEARCH_DEPTHMAX - 1 ; i++) stralloc_cats(&sa, "NOT ") ;
    stralloc_cats(&sa, "SEEN") ;
    stralloc_0(&sa) ;
    sc("depth-ok", sa.s, "01011") ;
    sa.len = 0 ;
    for (i = 0 ; i < IMAPSEARCH_KEYMAX - 1 ; i++) stralloc_cats(&sa, "SUBJECT {1+}\r\nx ") ;
    stralloc_cats(&sa, "SEEN") ;
    stralloc_0(&sa) ;
    sc("keys-max", sa.s, "00000") ;
    sa.len -= 5 ;
    stralloc_cats(&sa, "SEEN SEEN") ;
    stralloc_0(&sa) ;
    sbad("bad-too-many", sa.s, 0) ;
    stralloc_free(&sa) ;
  }
}

/* ---------- cost ---------- */

static void test_cost (void)
{
  char const *err ;
  char got[NMSGS + 1] ;
  calls_header = calls_body = calls_sent = 0 ;
  sparse("BODY fox SEEN", &err) ;
  imapsearch_prepare(&srch, NMSGS, 4000000000u) ;
  results(IMAPSEARCH_BODY, got) ;
  check("cost-and-cheap-first", !strcmp(got, "10000") && calls_body == 2, "BODY called on unseen messages") ;
  check("cost-level", srch.cost == IMAPSEARCH_BODY, "cost of the search") ;

  calls_header = calls_body = 0 ;
  sparse("OR SUBJECT hello UID 10:20", &err) ;
  imapsearch_prepare(&srch, NMSGS, 4000000000u) ;
  results(IMAPSEARCH_BODY, got) ;
  check("cost-or-cheap-first", !strcmp(got, "11100") && calls_header == 3, "SUBJECT called where the UID decided") ;

  calls_header = calls_body = 0 ;
  sparse("OR SUBJECT hello UID 10:20", &err) ;
  imapsearch_prepare(&srch, NMSGS, 4000000000u) ;
  results(IMAPSEARCH_INDEX, got) ;
  check("ceiling-index", !strcmp(got, "11???") && !calls_header && !calls_body, got) ;
  results(IMAPSEARCH_HEADER, got) ;
  check("ceiling-header", !strcmp(got, "11100"), got) ;

  calls_header = calls_body = 0 ;
  sparse("NOT (BODY fox DELETED)", &err) ;
  imapsearch_prepare(&srch, NMSGS, 4000000000u) ;
  results(IMAPSEARCH_INDEX, got) ;
  check("ceiling-not", !strcmp(got, "11?11") && !calls_body, got) ;
  results(IMAPSEARCH_BODY, got) ;
  check("ceiling-not-full", !strcmp(got, "11111") && calls_body == 1, got) ;

  calls_sent = 0 ;
  sparse("SENTON 1-Feb-1994", &err) ;
  results(IMAPSEARCH_INDEX, got) ;
  check("ceiling-sent", !strcmp(got, "?????") && !calls_sent && srch.cost == IMAPSEARCH_HEADER, "SENT* is a header key") ;

  sparse("SEEN UID 1:* LARGER 1 ON 1-Feb-1994 KEYWORD x", &err) ;
  check("cost-index-only", srch.cost == IMAPSEARCH_INDEX, "index keys cost more") ;

  fail_body = 1 ;
  sparse("BODY fox", &err) ;
  results(IMAPSEARCH_BODY, got) ;
  check("callback-error", !strcmp(got, "EEEEE"), got) ;
  fail_body = 0 ;
}

/* ---------- the matcher ---------- */

static uint32_t rnd = 12345 ;
static uint32_t next_rand (void) { rnd = rnd * 1103515245u + 12345u ; return rnd >> 8 ; }

static void test_matcher (void)
{
  static char const alpha[] = "aAbB\xc3\x89\xa9" ;
  stralloc folded = STRALLOC_ZERO ;
  int ok = 1, i ;
  check("contains-basic", imapsearch_contains("Hello World", 11, "o w", 3) && !imapsearch_contains("Hello", 5, "hellO!", 6)
        && imapsearch_contains("x", 1, "", 0) && !imapsearch_contains("", 0, "x", 1), "basic") ;
  check("contains-latin1", imapsearch_contains("\xc3\x89t\xc3\xa9", 5, "\xc3\xa9T\xc3\x89", 5)
        && !imapsearch_contains("\xc3\x97", 2, "\xc3\xb7", 2), "Latin-1 folding (and U+00D7 kept)") ;
  check("fold", imapsearch_fold(&folded, "AbC\xc3\x80\xc3\x9e\xc3\x97\xc2\x80", 11) && folded.len == 11
        && !memcmp(folded.s, "abc\xc3\xa0\xc3\xbe\xc3\x97\xc2\x80", 11), "fold") ;
  /* KMP streaming against the naive matcher on random texts, random pieces */
  for (i = 0 ; ok && i < 3000 ; i++)
  {
    char hay[40], nd[6] ;
    size_t hl = next_rand() % 40, nl = 1 + next_rand() % 5, j, pos ;
    size_t *fail ;
    struct imapsearch_match m ;
    int want, got ;
    for (j = 0 ; j < hl ; j++) hay[j] = alpha[next_rand() % 7] ;
    for (j = 0 ; j < nl ; j++) nd[j] = alpha[next_rand() % 7] ;
    want = imapsearch_contains(hay, hl, nd, nl) ;
    folded.len = 0 ;
    if (!imapsearch_fold(&folded, nd, nl)) exit(111) ;
    fail = malloc(nl * sizeof *fail) ;
    if (!fail) exit(111) ;
    /* the table, as search.c builds it */
    fail[0] = 0 ;
    for (size_t a = 1, q = 0 ; a < nl ; a++)
    {
      while (q && folded.s[a] != folded.s[q]) q = fail[q - 1] ;
      if (folded.s[a] == folded.s[q]) q++ ;
      fail[a] = q ;
    }
    m.needle = folded.s ; m.len = nl ; m.fail = fail ;
    imapsearch_match_reset(&m) ;
    for (pos = 0 ; pos < hl ; )
    {
      size_t k = 1 + next_rand() % 4 ;
      if (k > hl - pos) k = hl - pos ;
      imapsearch_match_feed(&m, hay + pos, k) ;
      pos += k ;
    }
    got = m.found ;
    free(fail) ;
    if (got != want) ok = 0 ;
  }
  check("matcher-random", ok, "streaming and naive matchers disagree") ;
  stralloc_free(&folded) ;
}

int main (void)
{
  test_keys() ;
  test_prepare_again() ;
  test_errors() ;
  test_cost() ;
  test_matcher() ;
  imapsearch_free(&srch) ;
  imapcmd_free(&cmd) ;
  imapcmd_reader_free(&rd) ;
  return failed ;
}
