/* t-cmd: imapd/cmd.c against cmd.h.
 *
 * The reader: every input is fed whole, a byte at a time, in chunks of 2,
 * 3 and 7, and split in two at every byte position; each way must give
 * the same events and commands, and the expected ones.  Literals of every
 * kind ({n}, {n+}, ~{n}, {0}, CRLF and NUL inside), limits (line, literal,
 * LITERAL-, APPEND's limit, streaming, the whole command) and the
 * resynchronisation after each refusal.  The parser: tags, names, UID,
 * quoted strings, NIL, nested lists, the errors that get BAD.  Helpers:
 * numbers, astrings, flags, sequence sets ('*', "5:2", merging,
 * iteration, formatting), dates and date-times, FETCH attributes and
 * their response names, quoting. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <skalibs/stralloc.h>

#include "imapd/cmd.h"

char const *PROG = "t-cmd" ;

static int failed ;

static void check (char const *name, int ok, char const *why)
{
  if (ok) printf("PASS cmd-%s\n", name) ;
  else { printf("FAIL cmd-%s: %s\n", name, why) ; failed = 1 ; }
  fflush(stdout) ;
}

static void die_nomem (void) { fprintf(stderr, "t-cmd: out of memory\n") ; exit(111) ; }

/* ---------- a printable dump of a parsed command ---------- */

static void dump_args (stralloc *sa, struct imapcmd const *c, size_t i, size_t end)
{
  int first = 1 ;
  while (i < end)
  {
    struct imapcmd_arg const *a = imapcmd_arg(c, i) ;
    if (!first && !stralloc_catb(sa, " ", 1)) die_nomem() ;
    first = 0 ;
    switch (a->type)
    {
      case IMAPARG_ATOM : if (!stralloc_catb(sa, a->s, a->len)) die_nomem() ; break ;
      case IMAPARG_NIL : if (!stralloc_cats(sa, "<NIL>")) die_nomem() ; break ;
      case IMAPARG_QUOTED :
        if (!stralloc_catb(sa, "q:", 2) || !stralloc_catb(sa, a->s, a->len)) die_nomem() ;
        break ;
      case IMAPARG_LITERAL :
      {
        char b[40] ;
        snprintf(b, sizeof b, "%s{%zu%s}", a->binary ? "~" : "", a->len, a->streamed ? "s" : "") ;
        if (!stralloc_cats(sa, b)) die_nomem() ;
        if (!a->streamed)
          for (size_t j = 0 ; j < a->len ; j++)
          {
            unsigned char ch = a->s[j] ;
            if (ch < 32 || ch >= 127) { snprintf(b, sizeof b, "\\x%02x", ch) ; if (!stralloc_cats(sa, b)) die_nomem() ; }
            else if (!stralloc_catb(sa, a->s + j, 1)) die_nomem() ;
          }
        break ;
      }
      case IMAPARG_LIST :
        if (!stralloc_catb(sa, "(", 1)) die_nomem() ;
        dump_args(sa, c, i + 1, a->next) ;
        if (!stralloc_catb(sa, ")", 1)) die_nomem() ;
        break ;
    }
    i = a->next ;
  }
}

static struct imapcmd cmd = IMAPCMD_ZERO ;

/* Feeds s[0..len) in the pieces given by cuts (sorted positions; each is
 * the start of a new piece), logging events and parsed commands in log. */
static void run (struct imapcmd_reader const *model, char const *s, size_t len, size_t const *cuts, size_t ncuts, unsigned int pflags, stralloc *log, stralloc *data)
{
  struct imapcmd_reader r = *model ;
  size_t k, start = 0 ;
  log->len = 0 ;
  data->len = 0 ;
  r.buf = stralloc_zero ;
  r.segs = genalloc_zero ;
  for (k = 0 ; k <= ncuts ; k++)
  {
    size_t end = k < ncuts ? cuts[k] : len ;
    char const *p = s + start ;
    size_t n = end - start ;
    int guard = 0 ;
    start = end ;
    while (n || guard == 0)
    {
      size_t used = 0 ;
      int ev = imapcmd_feed(&r, p, n, &used) ;
      char b[160] ;
      if (used > n) { stralloc_cats(log, "!used") ; break ; }
      p += used ; n -= used ;
      if (++guard > 100000) { stralloc_cats(log, "!loop") ; break ; }
      switch (ev)
      {
        case IMAPCMD_MORE : break ;
        case IMAPCMD_CONTINUE : if (!stralloc_cats(log, "+ ")) die_nomem() ; break ;
        case IMAPCMD_LITDATA :
          if (r.chunkfirst && !stralloc_cats(log, "D ")) die_nomem() ;
          if (!stralloc_catb(data, r.chunk, r.chunklen)) die_nomem() ;
          break ;
        case IMAPCMD_ETOOLONG : snprintf(b, sizeof b, "LONG[%s] ", r.tag) ; if (!stralloc_cats(log, b)) die_nomem() ; break ;
        case IMAPCMD_ELITERAL : snprintf(b, sizeof b, "LIT[%s %llu %s] ", r.tag, (unsigned long long)r.litsize, r.litsync ? "sync" : "nonsync") ; if (!stralloc_cats(log, b)) die_nomem() ; break ;
        case IMAPCMD_ETOOBIG : snprintf(b, sizeof b, "BIG[%s] ", r.tag) ; if (!stralloc_cats(log, b)) die_nomem() ; break ;
        case IMAPCMD_ENOMEM : die_nomem() ; break ;
        case IMAPCMD_READY :
        {
          int e = imapcmd_parse(&r, &cmd, pflags) ;
          if (e < 0) die_nomem() ;
          if (!stralloc_cats(log, "R[")) die_nomem() ;
          if (!e) { if (!stralloc_cats(log, "BAD ") || !stralloc_cats(log, cmd.tag[0] ? cmd.tag : "*") || !stralloc_cats(log, " ") || !stralloc_cats(log, cmd.err)) die_nomem() ; }
          else
          {
            if (!stralloc_cats(log, cmd.tag) || !stralloc_cats(log, " ") || !stralloc_cats(log, cmd.name)) die_nomem() ;
            if (cmd.nargs && !stralloc_cats(log, " ")) die_nomem() ;
            dump_args(log, &cmd, 0, cmd.nargs) ;
          }
          if (!stralloc_cats(log, "] ")) die_nomem() ;
          break ;
        }
        default : stralloc_cats(log, "!event") ;
      }
      if (!n) break ;
    }
  }
  imapcmd_reader_free(&r) ;
}

/* Every way of cutting the input must give want (and the streamed data
 * wantdata, if not NULL). */
static void reader_case (char const *name, struct imapcmd_reader const *model, char const *s, size_t len, unsigned int pflags, char const *want, char const *wantdata, size_t wantdatalen)
{
  static stralloc log = STRALLOC_ZERO, data = STRALLOC_ZERO ;
  static size_t *cuts ;
  char why[600] ;
  size_t sizes[] = { 1, 2, 3, 7 } ;
  size_t i, n ;
  int ok = 1 ;
  cuts = realloc(cuts, (len + 1) * sizeof *cuts) ;
  if (!cuts) die_nomem() ;
  why[0] = 0 ;
  /* whole */
  run(model, s, len, 0, 0, pflags, &log, &data) ;
  if (log.len != strlen(want) || memcmp(log.s, want, log.len)
   || (wantdata && (data.len != wantdatalen || memcmp(data.s, wantdata, wantdatalen))))
  {
    snprintf(why, sizeof why, "whole: got \"%.*s\" (data %zu), want \"%s\"", (int)(log.len > 400 ? 400 : log.len), log.s, data.len, want) ;
    ok = 0 ;
  }
  /* fixed chunk sizes */
  for (i = 0 ; ok && i < sizeof sizes / sizeof *sizes ; i++)
  {
    size_t p ;
    n = 0 ;
    for (p = sizes[i] ; p < len ; p += sizes[i]) cuts[n++] = p ;
    run(model, s, len, cuts, n, pflags, &log, &data) ;
    if (log.len != strlen(want) || memcmp(log.s, want, log.len)
     || (wantdata && (data.len != wantdatalen || memcmp(data.s, wantdata, wantdatalen))))
    {
      snprintf(why, sizeof why, "chunks of %zu: got \"%.*s\", want \"%s\"", sizes[i], (int)(log.len > 400 ? 400 : log.len), log.s, want) ;
      ok = 0 ;
    }
  }
  /* one cut at every position (bounded for the long inputs) */
  for (i = 1 ; ok && i < len ; i += len > 600 ? 97 : 1)
  {
    cuts[0] = i ;
    run(model, s, len, cuts, 1, pflags, &log, &data) ;
    if (log.len != strlen(want) || memcmp(log.s, want, log.len)
     || (wantdata && (data.len != wantdatalen || memcmp(data.s, wantdata, wantdatalen))))
    {
      snprintf(why, sizeof why, "cut at %zu: got \"%.*s\", want \"%s\"", i, (int)(log.len > 400 ? 400 : log.len), log.s, want) ;
      ok = 0 ;
    }
  }
  check(name, ok, why) ;
}

#define RC(name, model, lit, want) reader_case(name, model, lit, sizeof(lit) - 1, 0, want, 0, 0)

static char *repeat (char const *pre, char ch, size_t n, char const *post, size_t *len)
{
  size_t a = strlen(pre), b = strlen(post) ;
  char *s = malloc(a + n + b + 1) ;
  if (!s) die_nomem() ;
  memcpy(s, pre, a) ;
  memset(s + a, ch, n) ;
  memcpy(s + a + n, post, b + 1) ;
  *len = a + n + b ;
  return s ;
}

static void test_reader (void)
{
  struct imapcmd_reader m ;
  char *s ;
  size_t len ;
  imapcmd_reader_init(&m) ;

  RC("simple", &m, "a1 NOOP\r\n", "R[a1 NOOP] ") ;
  RC("bare-lf", &m, "a1 NOOP\nb CAPABILITY\n", "R[a1 NOOP] R[b CAPABILITY] ") ;
  RC("empty-lines", &m, "\r\n\n\r\na NOOP\r\n\r\n", "R[a NOOP] ") ;
  RC("incomplete", &m, "a NOOP", "") ;
  RC("incomplete-cr", &m, "a NOOP\r", "") ;
  RC("pipelined", &m, "a NOOP\r\nb LOGOUT\r\nc", "R[a NOOP] R[b LOGOUT] ") ;
  RC("sync-literal", &m, "a LOGIN {5}\r\nalice {6}\r\nsecret\r\n", "+ + R[a LOGIN {5}alice {6}secret] ") ;
  RC("literal-crlf-nul", &m, "a LOGIN {7}\r\na\r\nb\0c\n {1}\r\n\n\r\n",
     "+ + R[a LOGIN {7}a\\x0d\\x0ab\\x00c\\x0a {1}\\x0a] ") ;
  RC("literal-plus", &m, "a LOGIN {5+}\r\nalice {2+}\r\npw\r\nb NOOP\r\n", "R[a LOGIN {5}alice {2}pw] R[b NOOP] ") ;
  RC("literal-zero", &m, "a LOGIN {0}\r\n {0+}\r\n\r\n", "+ R[a LOGIN {0} {0}] ") ;
  RC("literal8", &m, "a APPEND INBOX ~{3}\r\n\0\1\2\r\n", "+ R[a APPEND INBOX ~{3}\\x00\\x01\\x02] ") ;
  RC("literal8-plus", &m, "a APPEND INBOX (\\Seen) ~{2+}\r\n\r\n\r\n", "R[a APPEND INBOX (\\Seen) ~{2}\\x0d\\x0a] ") ;
  RC("literal-in-list", &m, "a X ({3}\r\nabc {1+}\r\nd)\r\n", "+ R[a X ({3}abc {1}d)] ") ;
  RC("literal-braces-text", &m, "a LOGIN {3}\r\n{4}\r\n", "+ R[a LOGIN {3}{4}] ") ;
  RC("not-a-marker", &m, "a X {}\r\nb X {a}\r\nc X {3+\r\n", "R[BAD a '{' inside an atom] R[BAD b '{' inside an atom] R[BAD c '{' inside an atom] ") ;
  RC("literal-glued", &m, "a LOGIN x{1}\r\ny\r\n", "+ R[BAD a literal inside an atom] ") ;

  /* literal limits */
  RC("literal-toobig-sync", &m, "a LOGIN {70000}\r\nb NOOP\r\n", "LIT[a 70000 sync] R[b NOOP] ") ;
  RC("literal-huge-sync", &m, "a LOGIN {99999999999999999999999}\r\nb NOOP\r\n", "LIT[a 18446744073709551615 sync] R[b NOOP] ") ;
  s = repeat("a LOGIN {70000+}\r\n", 'x', 70000, " {3+}\r\nabc x\r\nb NOOP\r\n", &len) ;
  reader_case("literal-toobig-nonsync", &m, s, len, 0, "LIT[a 70000 nonsync] R[b NOOP] ", 0, 0) ;
  free(s) ;
  {
    struct imapcmd_reader lm = m ;
    lm.literalminus = 1 ;
    s = repeat("a LOGIN {4097+}\r\n", 'y', 4097, "\r\nb NOOP\r\n", &len) ;
    reader_case("literal-minus-over", &lm, s, len, 0, "LIT[a 4097 nonsync] R[b NOOP] ", 0, 0) ;
    free(s) ;
    RC("literal-minus-sync", &lm, "a LOGIN {5000}\r\n", "+ ") ;
  }
  {
    struct imapcmd_reader am = m ;
    am.appendmax = 100000 ;
    RC("append-over", &am, "t1 append INBOX {100001}\r\nb NOOP\r\n", "LIT[t1 100001 sync] R[b NOOP] ") ;
    RC("append-other-cmd", &am, "t1 LOGIN {70000}\r\n", "LIT[t1 70000 sync] ") ;
  }
  {
    static char const want[] = "0123456789abcdefghij" ;
    struct imapcmd_reader sm = m ;
    sm.appendmax = 1000 ;
    sm.streammin = 10 ;
    reader_case("stream-sync", &sm, "a APPEND INBOX (\\Seen) {20}\r\n0123456789abcdefghij\r\nb NOOP\r\n", 59, 0,
                "+ D R[a APPEND INBOX (\\Seen) {20s}] R[b NOOP] ", want, 20) ;
    reader_case("stream-nonsync", &sm, "a APPEND INBOX {20+}\r\n0123456789abcdefghij {3+}\r\nabc\r\n", 54, 0,
                "D R[a APPEND INBOX {20s} {3}abc] ", want, 20) ;
    reader_case("stream-small", &sm, "a APPEND INBOX {9+}\r\n012345678\r\n", 32, 0,
                "R[a APPEND INBOX {9}012345678] ", "", 0) ;
  }
  {
    struct imapcmd_reader bm = m ;
    bm.cmdmax = 100 ;
    RC("cmd-toobig-literal", &bm, "a LOGIN {60+}\r\n012345678901234567890123456789012345678901234567890123456789 {60+}\r\n012345678901234567890123456789012345678901234567890123456789\r\nb NOOP\r\n",
       "BIG[a] R[b NOOP] ") ;
    RC("cmd-toobig-sync", &bm, "a LOGIN {60}\r\n012345678901234567890123456789012345678901234567890123456789 {60}\r\nb NOOP\r\n",
       "+ BIG[a] R[b NOOP] ") ;
  }

  /* line limits */
  s = repeat("a1 LOGIN ", 'x', IMAPCMD_LINEMAX, "\r\nb NOOP\r\n", &len) ;
  reader_case("line-too-long", &m, s, len, 0, "LONG[a1] R[b NOOP] ", 0, 0) ;
  free(s) ;
  s = repeat("a1 LOGIN ", 'x', IMAPCMD_LINEMAX, " {5+}\r\nhello\r\nb NOOP\r\n", &len) ;
  reader_case("line-too-long-nonsync", &m, s, len, 0, "LONG[a1] R[b NOOP] ", 0, 0) ;
  free(s) ;
  s = repeat("a1 LOGIN ", 'x', IMAPCMD_LINEMAX, " {5}\r\nb NOOP\r\n", &len) ;
  reader_case("line-too-long-sync", &m, s, len, 0, "LONG[a1] R[b NOOP] ", 0, 0) ;
  free(s) ;
  s = repeat("a1 LOGIN {3}\r\nabc ", 'x', IMAPCMD_LINEMAX, " {2+}\r\nxy\r\nb NOOP\r\n", &len) ;
  reader_case("second-line-too-long", &m, s, len, 0, "+ LONG[a1] R[b NOOP] ", 0, 0) ;
  free(s) ;
  s = repeat("", 'x', IMAPCMD_LINEMAX * 3, "\r\nb NOOP\r\n", &len) ;
  reader_case("line-too-long-notag", &m, s, len, 0, "LONG[] R[b NOOP] ", 0, 0) ;
  free(s) ;
}

/* the cases whose expected log is long are checked by prefix */
static void test_reader_prefix (void)
{
  struct imapcmd_reader m ;
  static stralloc log = STRALLOC_ZERO, data = STRALLOC_ZERO ;
  char *s ;
  size_t len ;
  imapcmd_reader_init(&m) ;

  s = repeat("a LOGIN {65536+}\r\n", 'x', 65536, "\r\n", &len) ;
  run(&m, s, len, 0, 0, 0, &log, &data) ;
  check("literal-at-limit-ok", log.len > 20 && !memcmp(log.s, "R[a LOGIN {65536}xxx", 20), "a 64 KiB literal refused") ;
  free(s) ;

  s = repeat("a LOGIN ", 'x', IMAPCMD_LINEMAX - 8, "\r\nb NOOP\r\n", &len) ;
  run(&m, s, len, 0, 0, 0, &log, &data) ;
  check("line-at-limit-ok", log.len > 12 && !memcmp(log.s, "R[a LOGIN xx", 12) && !memcmp(log.s + log.len - 10, "R[b NOOP] ", 10), "an 8 KiB line refused") ;
  {
    size_t cuts[1] = { IMAPCMD_LINEMAX + 1 } ;   /* CR and LF in two pieces */
    run(&m, s, len, cuts, 1, 0, &log, &data) ;
    check("line-at-limit-crlf-split", log.len > 12 && !memcmp(log.s, "R[a LOGIN xx", 12), "CR alone counted") ;
  }
  free(s) ;

  {
    struct imapcmd_reader lm = m ;
    lm.literalminus = 1 ;
    s = repeat("a LOGIN {4096+}\r\n", 'y', 4096, "\r\n", &len) ;
    run(&lm, s, len, 0, 0, 0, &log, &data) ;
    check("literal-minus-4096", log.len > 20 && !memcmp(log.s, "R[a LOGIN {4096}yyyy", 20), "4096 refused") ;
    free(s) ;
  }
  {
    struct imapcmd_reader am = m ;
    am.appendmax = 100000 ;
    s = repeat("a APPEND INBOX {70000+}\r\n", 'z', 70000, "\r\n", &len) ;
    run(&am, s, len, 0, 0, 0, &log, &data) ;
    check("append-limit-ok", log.len > 24 && !memcmp(log.s, "R[a APPEND INBOX {70000}", 24), "APPEND's limit not used") ;
    free(s) ;
  }
}

/* ---------- the parser ---------- */

static void parse_case (char const *name, char const *line, unsigned int flags, char const *want)
{
  struct imapcmd_reader m ;
  imapcmd_reader_init(&m) ;
  reader_case(name, &m, line, strlen(line), flags, want, 0, 0) ;
}

static void test_parser (void)
{
  parse_case("p-uid", "a uid fetch 1:* (FLAGS)\r\n", 0, "R[a UID FETCH 1:* (FLAGS)] ") ;
  parse_case("p-uid-alone", "a UID\r\n", 0, "R[BAD a missing command after UID] ") ;
  parse_case("p-name-case", "A.1 cApAbIlItY\r\n", 0, "R[A.1 CAPABILITY] ") ;
  parse_case("p-tag-bad", "a+b NOOP\r\n* NOOP\r\na%b NOOP\r\n", 0, "R[BAD * bad tag] R[BAD * bad tag] R[BAD * bad tag] ") ;
  parse_case("p-tag-bracket", "a] NOOP\r\n", 0, "R[a] NOOP] ") ;
  parse_case("p-no-command", "a\r\na \r\n", 0, "R[BAD a missing command] R[BAD a missing command] ") ;
  parse_case("p-bad-name", "a NO\"OP\r\n", 0, "R[BAD a bad command name] ") ;
  parse_case("p-quoted", "a LOGIN \"al ice\" \"p\\\"w\\\\d\"\r\n", 0, "R[a LOGIN q:al ice q:p\"w\\d] ") ;
  parse_case("p-quoted-empty", "a LOGIN \"\" \"\"\r\n", 0, "R[a LOGIN q: q:] ") ;
  parse_case("p-quoted-unterminated", "a LOGIN \"alice\r\n", 0, "R[BAD a unterminated quoted string] ") ;
  parse_case("p-quoted-bad-escape", "a LOGIN \"a\\lice\" x\r\n", 0, "R[BAD a bad \\ escape in quoted string] ") ;
  parse_case("p-quoted-8bit", "a SELECT \"\xc3\xa9t\xc3\xa9\"\r\n", 0, "R[BAD a 8-bit character in quoted string] ") ;
  parse_case("p-quoted-utf8", "a SELECT \"\xc3\xa9t\xc3\xa9\"\r\n", IMAPCMD_UTF8, "R[a SELECT q:\xc3\xa9t\xc3\xa9] ") ;
  parse_case("p-atom-8bit", "a SELECT \xc3\xa9t\xc3\xa9\r\n", IMAPCMD_UTF8, "R[BAD a 8-bit character in atom] ") ;
  parse_case("p-nil", "a X NIL nil \"NIL\" NILS\r\n", 0, "R[a X <NIL> <NIL> q:NIL NILS] ") ;
  parse_case("p-lists", "a X (a (b \"c\") () NIL) d\r\n", 0, "R[a X (a (b q:c) () <NIL>) d] ") ;
  parse_case("p-unbalanced-open", "a FETCH 1 (FLAGS (UID)\r\nb NOOP\r\n", 0, "R[BAD a missing )] R[b NOOP] ") ;
  parse_case("p-unbalanced-close", "a FETCH 1 FLAGS)\r\n", 0, "R[BAD a unexpected )] ") ;
  parse_case("p-missing-space", "a X (a)(b)\r\n", 0, "R[BAD a missing space between arguments] ") ;
  parse_case("p-quote-in-atom", "a X ab\"c\"\r\n", 0, "R[BAD a quote inside an atom] ") ;
  parse_case("p-ctl", "a X a\001b\r\n", 0, "R[BAD a control character in atom] ") ;
  parse_case("p-lenient-spaces", "a X  a   b \r\n", 0, "R[a X a b] ") ;
  parse_case("p-fetch-att", "a FETCH 1 (BODY.PEEK[HEADER.FIELDS (FROM \"To\")]<0.100> BODY[1.2.MIME])\r\n", 0,
             "R[a FETCH 1 (BODY.PEEK[HEADER.FIELDS (FROM \"To\")]<0.100> BODY[1.2.MIME])] ") ;
  parse_case("p-bracket-unclosed", "a FETCH 1 BODY[HEADER\r\n", 0, "R[BAD a missing ]] ") ;
  parse_case("p-flags", "a STORE 1 +FLAGS (\\Seen $Junk)\r\n", 0, "R[a STORE 1 +FLAGS (\\Seen $Junk)] ") ;
  parse_case("p-wildcards", "a LIST \"\" *\r\nb LIST \"\" %/x\r\n", 0, "R[a LIST q: *] R[b LIST q: %/x] ") ;
  parse_case("p-literal-after-list", "a X (a) {1+}\r\nb\r\n", 0, "R[a X (a) {1}b] ") ;
  parse_case("p-literal-then-junk", "a X {1+}\r\nbc\r\n", 0, "R[BAD a missing space between arguments] ") ;
  {
    char line[200] ;
    int i ;
    strcpy(line, "a X ") ;
    for (i = 0 ; i < IMAPCMD_DEPTHMAX ; i++) strcat(line, "(") ;
    for (i = 0 ; i < IMAPCMD_DEPTHMAX ; i++) strcat(line, ")") ;
    strcat(line, "\r\n") ;
    {
      struct imapcmd_reader m ;
      static stralloc log = STRALLOC_ZERO, data = STRALLOC_ZERO ;
      imapcmd_reader_init(&m) ;
      run(&m, line, strlen(line), 0, 0, 0, &log, &data) ;
      check("p-depth-max", log.len > 6 && !memcmp(log.s, "R[a X (((", 9), "32 levels refused") ;
    }
    strcpy(line, "a X ") ;
    for (i = 0 ; i <= IMAPCMD_DEPTHMAX ; i++) strcat(line, "(") ;
    for (i = 0 ; i <= IMAPCMD_DEPTHMAX ; i++) strcat(line, ")") ;
    strcat(line, "\r\n") ;
    parse_case("p-depth-over", line, 0, "R[BAD a parentheses nested too deep] ") ;
  }
}

/* ---------- helpers over a parsed command ---------- */

static struct imapcmd_reader hr ;

static int parse1 (char const *line)
{
  size_t used ;
  imapcmd_reader_free(&hr) ;
  imapcmd_reader_init(&hr) ;
  if (imapcmd_feed(&hr, line, strlen(line), &used) != IMAPCMD_READY) return 0 ;
  return imapcmd_parse(&hr, &cmd, 0) == 1 ;
}

static void test_helpers (void)
{
  uint64_t n ;
  char const *s ;
  size_t len ;
  unsigned int flags ;
  genalloc kw = GENALLOC_ZERO ;
  char const *err ;

  check("number", parse1("a X 0 42 18446744073709551615 18446744073709551616 -1 4x \"5\"\r\n")
        && imapcmd_number(&cmd, 0, UINT64_MAX, &n) && n == 0
        && imapcmd_number(&cmd, 1, 100, &n) && n == 42
        && !imapcmd_number(&cmd, 1, 41, &n)
        && imapcmd_number(&cmd, 2, UINT64_MAX, &n) && n == UINT64_MAX
        && !imapcmd_number(&cmd, 3, UINT64_MAX, &n)
        && !imapcmd_number(&cmd, 4, UINT64_MAX, &n)
        && !imapcmd_number(&cmd, 5, UINT64_MAX, &n)
        && !imapcmd_number(&cmd, 6, UINT64_MAX, &n)
        && !imapcmd_number(&cmd, 7, UINT64_MAX, &n), "numbers") ;
  check("is", parse1("a X fLaGs (FLAGS)\r\n") && imapcmd_is(&cmd, 0, "FLAGS") && !imapcmd_is(&cmd, 1, "FLAGS") && !imapcmd_is(&cmd, 5, "FLAGS"), "imapcmd_is") ;
  check("astring", parse1("a X INBOX \"a b\" NIL {3+}\r\nx\"y (l) a*b \\x a]b\r\n")
        && imapcmd_astring(&cmd, 0, 0, &s, &len) && len == 5 && !memcmp(s, "INBOX", 5)
        && imapcmd_astring(&cmd, 1, 0, &s, &len) && len == 3 && !memcmp(s, "a b", 3)
        && imapcmd_astring(&cmd, 2, 0, &s, &len) && len == 3 && !memcmp(s, "NIL", 3)
        && imapcmd_astring(&cmd, 3, 0, &s, &len) && len == 3 && !memcmp(s, "x\"y", 3)
        && !imapcmd_astring(&cmd, 4, 0, &s, &len)
        && !imapcmd_astring(&cmd, 6, 0, &s, &len) && imapcmd_astring(&cmd, 6, 1, &s, &len)
        && !imapcmd_astring(&cmd, 7, 0, &s, &len)
        && imapcmd_astring(&cmd, 8, 0, &s, &len) && len == 3, "astrings") ;
  check("nstring", parse1("a X NIL \"\" x\r\n")
        && imapcmd_nstring(&cmd, 0, &s, &len) && !s
        && imapcmd_nstring(&cmd, 1, &s, &len) && s && !len
        && !imapcmd_nstring(&cmd, 2, &s, &len), "nstrings") ;

  check("flaglist", parse1("a X (\\seen \\ANSWERED \\Flagged \\Deleted \\Draft $Junk foo)\r\n")
        && imapcmd_flaglist(&cmd, 0, 0, &flags, &kw, &err) == 1
        && flags == (IMAPFLAG_SEEN | IMAPFLAG_ANSWERED | IMAPFLAG_FLAGGED | IMAPFLAG_DELETED | IMAPFLAG_DRAFT)
        && genalloc_len(struct imapcmd_str, &kw) == 2
        && genalloc_s(struct imapcmd_str, &kw)[1].len == 3, "flags") ;
  genalloc_setlen(struct imapcmd_str, &kw, 0) ;
  check("flaglist-empty", parse1("a X ()\r\n") && imapcmd_flaglist(&cmd, 0, 0, &flags, &kw, &err) == 1 && !flags && !genalloc_len(struct imapcmd_str, &kw), "()") ;
  check("flaglist-loose", parse1("a X \\Seen \\Deleted\r\n") && imapcmd_flaglist(&cmd, 0, 1, &flags, &kw, &err) == 1 && flags == (IMAPFLAG_SEEN | IMAPFLAG_DELETED), "loose") ;
  check("flaglist-not-loose", parse1("a X \\Seen\r\n") && !imapcmd_flaglist(&cmd, 0, 0, &flags, &kw, &err), "atom taken as list") ;
  check("flaglist-recent", parse1("a X (\\Recent)\r\n") && !imapcmd_flaglist(&cmd, 0, 0, &flags, &kw, &err) && !strcmp(err, "\\Recent cannot be set"), "\\Recent") ;
  check("flaglist-unknown", parse1("a X (\\Foo)\r\n") && !imapcmd_flaglist(&cmd, 0, 0, &flags, &kw, &err), "\\Foo") ;
  check("flaglist-nested", parse1("a X ((a))\r\n") && !imapcmd_flaglist(&cmd, 0, 0, &flags, &kw, &err), "nested") ;
  check("flaglist-quoted", parse1("a X (\"a\")\r\n") && !imapcmd_flaglist(&cmd, 0, 0, &flags, &kw, &err), "quoted") ;
  genalloc_free(struct imapcmd_str, &kw) ;
}

/* ---------- sequence sets ---------- */

static int seqis (char const *set, uint32_t max, char const *members)
{
  /* members: the numbers 1..20 in the set, as a string of 0/1 */
  struct imapseq q = IMAPSEQ_ZERO ;
  int ok = imapseq_parse(&q, set, strlen(set)) == 1 ;
  for (uint32_t n = 1 ; ok && n <= 20 ; n++)
    if (imapseq_contains(&q, n, max) != (members[n-1] == '1')) ok = 0 ;
  imapseq_resolve(&q, max) ;
  for (uint32_t n = 1 ; ok && n <= 20 ; n++)
    if (imapseq_contains(&q, n, max) != (members[n-1] == '1')) ok = 0 ;
  {
    uint32_t n = 0, last = 0 ;
    while (ok && imapseq_next(&q, 20, &n))
    {
      if (n <= last || n > 20 || members[n-1] != '1') ok = 0 ;
      last = n ;
    }
    for (n = last + 1 ; ok && n <= 20 ; n++) if (members[n-1] == '1') ok = 0 ;
  }
  imapseq_free(&q) ;
  return ok ;
}

static void test_seq (void)
{
  struct imapseq q = IMAPSEQ_ZERO ;
  stralloc sa = STRALLOC_ZERO ;
  check("seq-single", seqis("3", 10, "00100000000000000000"), "3") ;
  check("seq-list", seqis("1,3,5:7", 10, "10101110000000000000"), "1,3,5:7") ;
  check("seq-star", seqis("8:*", 10, "00000001110000000000"), "8:*") ;
  check("seq-star-alone", seqis("*", 10, "00000000010000000000"), "*") ;
  check("seq-reversed", seqis("5:2", 10, "01111000000000000000"), "5:2") ;
  check("seq-star-below", seqis("12:*", 10, "00000000011100000000"), "12:* with max 10") ;
  check("seq-overlap", seqis("3:6,5:9,1,2,20", 30, "11111111100000000001"), "overlap") ;
  check("seq-star-empty", seqis("*", 0, "00000000000000000000"), "* in empty") ;
  check("seq-all", seqis("1:*", 20, "11111111111111111111"), "1:*") ;
  check("seq-max-u32", imapseq_parse(&q, "4294967295", 10) == 1 && imapseq_contains(&q, UINT32_MAX, 5), "2^32-1") ;
  {
    uint32_t n = UINT32_MAX - 1 ;
    imapseq_parse(&q, "4294967294:*", 12) ;
    imapseq_resolve(&q, UINT32_MAX) ;
    check("seq-next-top", imapseq_next(&q, UINT32_MAX, &n) && n == UINT32_MAX && !imapseq_next(&q, UINT32_MAX, &n), "iteration at the top") ;
  }
  check("seq-bad", !imapseq_parse(&q, "", 0) && !imapseq_parse(&q, "0", 1) && !imapseq_parse(&q, "1,", 2)
        && !imapseq_parse(&q, ",1", 2) && !imapseq_parse(&q, "1:", 2) && !imapseq_parse(&q, ":1", 2)
        && !imapseq_parse(&q, "a", 1) && !imapseq_parse(&q, "4294967296", 10) && !imapseq_parse(&q, "1:2:3", 5)
        && !imapseq_parse(&q, "1,,2", 4) && !imapseq_parse(&q, "0:5", 3) && !imapseq_parse(&q, "$,1", 3)
        && !imapseq_parse(&q, "-1", 2) && !imapseq_parse(&q, "**", 2), "accepted a bad set") ;
  check("seq-dollar", imapseq_parse(&q, "$", 1) == 1 && q.dollar && !genalloc_len(struct imapseq_range, &q.ranges), "$") ;
  {
    uint32_t nums[] = { 1, 2, 3, 5, 7, 8, 4294967295u } ;
    check("seq-cat", imapseq_cat(&sa, nums, 7) && sa.len == 20 && !memcmp(sa.s, "1:3,5,7:8,4294967295", 20), "format") ;
    sa.len = 0 ;
    check("seq-cat-empty", imapseq_cat(&sa, nums, 0) && !sa.len, "empty") ;
  }
  imapseq_free(&q) ;
  stralloc_free(&sa) ;
}

/* ---------- dates ---------- */

static void test_dates (void)
{
  int64_t d, t ;
  int tz ;
  stralloc sa = STRALLOC_ZERO ;
  check("date", imapcmd_date("1-Feb-1994", 10, &d) && d == 8797
        && imapcmd_date("01-feb-1994", 11, &d) && d == 8797
        && imapcmd_date("1-Jan-1970", 10, &d) && d == 0
        && imapcmd_date("29-Feb-2000", 11, &d) && d == 11016
        && imapcmd_date("31-Dec-1969", 11, &d) && d == -1, "valid dates") ;
  check("date-bad", !imapcmd_date("29-Feb-1900", 11, &d) && !imapcmd_date("32-Jan-2000", 11, &d)
        && !imapcmd_date("0-Jan-2000", 10, &d) && !imapcmd_date("1-Foo-2000", 10, &d)
        && !imapcmd_date("1-Feb-94", 8, &d) && !imapcmd_date("1-Feb-1994x", 11, &d)
        && !imapcmd_date("001-Feb-1994", 12, &d) && !imapcmd_date(" 1-Feb-1994", 11, &d)
        && !imapcmd_date("", 0, &d) && !imapcmd_date("1-Feb", 5, &d), "accepted a bad date") ;
  check("datetime", imapcmd_datetime("01-Feb-1994 10:00:00 +0100", 26, &t, &tz) && t == 760093200 && tz == 60
        && imapcmd_datetime(" 1-Feb-1994 10:00:00 -0130", 26, &t, &tz) && t == 760093200 + 3600 + 5400 && tz == -90, "date-times") ;
  check("datetime-bad", !imapcmd_datetime("01-Feb-1994 24:00:00 +0100", 26, &t, &tz)
        && !imapcmd_datetime("01-Feb-1994 10:00:00 0100", 25, &t, &tz)
        && !imapcmd_datetime("01-Feb-1994 10:00 +0100", 23, &t, &tz)
        && !imapcmd_datetime("01-Feb-1994 10:00:00 +0160", 26, &t, &tz)
        && !imapcmd_datetime("01-Feb-1994", 11, &t, &tz), "accepted a bad date-time") ;
  check("catdatetime", imapcmd_catdatetime(&sa, 760093200, 60) && sa.len == 28 && !memcmp(sa.s, "\"01-Feb-1994 10:00:00 +0100\"", 28), "format") ;
  sa.len = 0 ;
  check("catdatetime-neg", imapcmd_catdatetime(&sa, 760093200 + 3600 + 5400, -90) && sa.len == 28 && !memcmp(sa.s, "\"01-Feb-1994 10:00:00 -0130\"", 28), "format") ;
  sa.len = 0 ;
  check("catdatetime-roundtrip", imapcmd_catdatetime(&sa, -86400 * 400 + 59, 0)
        && imapcmd_datetime(sa.s + 1, sa.len - 2, &t, &tz) && t == -86400 * 400 + 59, "1968") ;
  stralloc_free(&sa) ;
}

/* ---------- FETCH attributes ---------- */

static int fetchname (char const *line, size_t att, char const *want)
{
  struct imapfetch f = IMAPFETCH_ZERO ;
  stralloc sa = STRALLOC_ZERO ;
  char const *err ;
  int ok = parse1(line) && imapfetch_parse(&f, &cmd, 1, &err) == 1
    && att < genalloc_len(struct imapfetch_att, &f.atts)
    && imapfetch_catname(&sa, &f, genalloc_s(struct imapfetch_att, &f.atts) + att)
    && sa.len == strlen(want) && !memcmp(sa.s, want, sa.len) ;
  if (!ok) fprintf(stderr, "fetchname %s: got %.*s\n", line, (int)sa.len, sa.s) ;
  stralloc_free(&sa) ;
  imapfetch_free(&f) ;
  return ok ;
}

static int fetchbad (char const *line)
{
  struct imapfetch f = IMAPFETCH_ZERO ;
  char const *err = 0 ;
  int ok = parse1(line) && imapfetch_parse(&f, &cmd, 1, &err) == 0 && err ;
  imapfetch_free(&f) ;
  return ok ;
}

static void test_fetch (void)
{
  struct imapfetch f = IMAPFETCH_ZERO ;
  char const *err ;
  struct imapfetch_att const *a ;
  check("fetch-macros", parse1("a FETCH 1 FULL\r\n") && imapfetch_parse(&f, &cmd, 1, &err) == 1
        && genalloc_len(struct imapfetch_att, &f.atts) == 5
        && genalloc_s(struct imapfetch_att, &f.atts)[4].kind == IMAPFETCH_BODY, "FULL") ;
  check("fetch-fast", parse1("a FETCH 1 fast\r\n") && imapfetch_parse(&f, &cmd, 1, &err) == 1 && genalloc_len(struct imapfetch_att, &f.atts) == 3, "FAST") ;
  check("fetch-all", parse1("a FETCH 1 ALL\r\n") && imapfetch_parse(&f, &cmd, 1, &err) == 1 && genalloc_len(struct imapfetch_att, &f.atts) == 4, "ALL") ;
  check("fetch-fields", parse1("a FETCH 1:* (UID BODY.PEEK[1.2.HEADER.FIELDS.NOT (From \"To\" x-Spam)]<10.200>)\r\n")
        && imapfetch_parse(&f, &cmd, 1, &err) == 1 && genalloc_len(struct imapfetch_att, &f.atts) == 2
        && (a = genalloc_s(struct imapfetch_att, &f.atts) + 1)->kind == IMAPFETCH_SECTION
        && a->peek && a->text == IMAPSECT_FIELDS_NOT && a->nparts == 2 && a->part[0] == 1 && a->part[1] == 2
        && a->nfields == 3 && genalloc_s(struct imapcmd_str, &f.fields)[a->field + 1].len == 2
        && a->partial && a->origin == 10 && a->count == 200, "HEADER.FIELDS.NOT") ;
  check("fetch-name-fields", fetchname("a FETCH 1 BODY.PEEK[header.fields (From \"To\")]<0.100>\r\n", 0, "BODY[HEADER.FIELDS (FROM TO)]<0>"), "name") ;
  check("fetch-name-mime", fetchname("a FETCH 1 body[1.2.mime]\r\n", 0, "BODY[1.2.MIME]"), "name") ;
  check("fetch-name-empty", fetchname("a FETCH 1 BODY[]\r\n", 0, "BODY[]"), "name") ;
  check("fetch-name-part", fetchname("a FETCH 1 (FLAGS BODY[3])\r\n", 1, "BODY[3]"), "name") ;
  check("fetch-name-text", fetchname("a FETCH 1 BODY[2.TEXT]\r\n", 0, "BODY[2.TEXT]"), "name") ;
  check("fetch-name-header", fetchname("a FETCH 1 BODY[HEADER]\r\n", 0, "BODY[HEADER]"), "name") ;
  check("fetch-name-binary", fetchname("a FETCH 1 BINARY.PEEK[1.1]<0.5>\r\n", 0, "BINARY[1.1]<0>"), "name") ;
  check("fetch-name-binary-size", fetchname("a FETCH 1 BINARY.SIZE[2]\r\n", 0, "BINARY.SIZE[2]"), "name") ;
  check("fetch-name-simple", fetchname("a FETCH 1 (rfc822.size Envelope bodystructure internaldate RFC822.HEADER RFC822.TEXT RFC822 BODY)\r\n", 6, "RFC822"), "name") ;
  check("fetch-peek", parse1("a FETCH 1 (BODY[] BODY.PEEK[] RFC822 RFC822.TEXT RFC822.HEADER BINARY[1])\r\n") && imapfetch_parse(&f, &cmd, 1, &err) == 1
        && !genalloc_s(struct imapfetch_att, &f.atts)[0].peek && genalloc_s(struct imapfetch_att, &f.atts)[1].peek
        && !genalloc_s(struct imapfetch_att, &f.atts)[2].peek && !genalloc_s(struct imapfetch_att, &f.atts)[3].peek
        && genalloc_s(struct imapfetch_att, &f.atts)[4].peek && !genalloc_s(struct imapfetch_att, &f.atts)[5].peek, "peek flags") ;
  check("fetch-bad-unknown", fetchbad("a FETCH 1 FOO\r\n"), "FOO") ;
  check("fetch-bad-peek-nosection", fetchbad("a FETCH 1 BODY.PEEK\r\n"), "BODY.PEEK") ;
  check("fetch-bad-section", fetchbad("a FETCH 1 BODY[FOO]\r\n") && fetchbad("a FETCH 1 BODY[MIME]\r\n")
        && fetchbad("a FETCH 1 BODY[0]\r\n") && fetchbad("a FETCH 1 BODY[1.]\r\n") && fetchbad("a FETCH 1 BODY[1..2]\r\n")
        && fetchbad("a FETCH 1 BODY[.1]\r\n") && fetchbad("a FETCH 1 BINARY[HEADER]\r\n"), "sections") ;
  check("fetch-bad-fields", fetchbad("a FETCH 1 BODY[HEADER.FIELDS]\r\n") && fetchbad("a FETCH 1 BODY[HEADER.FIELDS ()]\r\n")
        && fetchbad("a FETCH 1 BODY[HEADER.FIELDS (A:B)]\r\n") && fetchbad("a FETCH 1 BODY[HEADER.FIELDS (A  B)]\r\n")
        && fetchbad("a FETCH 1 BODY[HEADER.FIELDS FROM]\r\n"), "fields") ;
  check("fetch-bad-partial", fetchbad("a FETCH 1 BODY[]<0>\r\n") && fetchbad("a FETCH 1 BODY[]<0.0>\r\n")
        && fetchbad("a FETCH 1 BODY[]<a.1>\r\n") && fetchbad("a FETCH 1 BODY[]<0.1\r\n")
        && fetchbad("a FETCH 1 BINARY.SIZE[1]<0.1>\r\n") && fetchbad("a FETCH 1 BODY[]x\r\n"), "partials") ;
  check("fetch-bad-list", fetchbad("a FETCH 1 ()\r\n") && fetchbad("a FETCH 1 (FLAGS (UID))\r\n") && fetchbad("a FETCH 1 \"FLAGS\"\r\n")
        && fetchbad("a FETCH 1 (ALL)\r\n"), "lists") ;
  imapfetch_free(&f) ;
}

/* ---------- quoting ---------- */

static int quoted (char const *s, size_t len, int utf8, int (*f)(stralloc *, char const *, size_t, int), char const *want, size_t wantlen)
{
  stralloc sa = STRALLOC_ZERO ;
  int ok = (*f)(&sa, s, len, utf8) && sa.len == wantlen && !memcmp(sa.s, want, wantlen) ;
  stralloc_free(&sa) ;
  return ok ;
}

static void test_quote (void)
{
  check("quote", quoted("a \"b\" \\", 7, 0, &imapcmd_catstring, "\"a \\\"b\\\" \\\\\"", 12), "escapes") ;
  check("quote-empty", quoted("", 0, 0, &imapcmd_catstring, "\"\"", 2), "empty") ;
  check("quote-literal", quoted("a\r\nb", 4, 0, &imapcmd_catstring, "{4}\r\na\r\nb", 9), "CRLF") ;
  check("quote-nul", quoted("a\0", 2, 0, &imapcmd_catstring, "{2}\r\na\0", 7), "NUL") ;
  check("quote-8bit", quoted("\xc3\xa9", 2, 0, &imapcmd_catstring, "{2}\r\n\xc3\xa9", 7)
        && quoted("\xc3\xa9", 2, 1, &imapcmd_catstring, "\"\xc3\xa9\"", 4), "8-bit") ;
  check("astring", quoted("INBOX", 5, 0, &imapcmd_catastring, "INBOX", 5) && quoted("NIL", 3, 0, &imapcmd_catastring, "\"NIL\"", 5)
        && quoted("a b", 3, 0, &imapcmd_catastring, "\"a b\"", 5) && quoted("", 0, 0, &imapcmd_catastring, "\"\"", 2), "astrings") ;
  check("nstring", quoted(0, 0, 0, &imapcmd_catnstring, "NIL", 3) && quoted("x", 1, 0, &imapcmd_catnstring, "\"x\"", 3), "nstrings") ;
  {
    char big[1100] ;
    stralloc sa = STRALLOC_ZERO ;
    memset(big, 'a', sizeof big) ;
    check("quote-long", imapcmd_catstring(&sa, big, sizeof big, 0) && sa.len == 1100 + 8 && !memcmp(sa.s, "{1100}\r\n", 8), "long string quoted") ;
    stralloc_free(&sa) ;
  }
}

int main (void)
{
  test_reader() ;
  test_reader_prefix() ;
  test_parser() ;
  test_helpers() ;
  test_seq() ;
  test_dates() ;
  test_fetch() ;
  test_quote() ;
  imapcmd_free(&cmd) ;
  imapcmd_reader_free(&hr) ;
  return failed ;
}
