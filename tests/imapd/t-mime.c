/* t-mime: imapd/mime.c against mime.h.
 *
 * Corpus: every tests/imapd/mime/NAME.eml (or the directory given as
 * argv[1]) is parsed, whole and with a copy whose line ends are all
 * CRLF, and "ENVELOPE <e>\nBODY <b>\nBODYSTRUCTURE <bs>\n" must equal
 * NAME.expected byte for byte (sizes differ with CRLF only through the
 * counted bytes, which are the same by construction).  Unit cases:
 * malformed MIME, limits, RFC 2231, encoded words, sections and
 * HEADER.FIELDS, the CRLF reader from every offset, the text walk, the
 * case fold.
 *
 *   t-mime [dir]         run the tests
 *   t-mime -p file.eml   print what NAME.expected would hold */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <skalibs/stralloc.h>

#include "imapd/mime.h"

char const *PROG = "t-mime" ;

static int failed ;

static void check (char const *name, int ok, char const *why)
{
  if (ok) printf("PASS mime-%s\n", name) ;
  else { printf("FAIL mime-%s: %s\n", name, why) ; failed = 1 ; }
  fflush(stdout) ;
}

static int slurp (char const *fn, stralloc *sa)
{
  char buf[8192] ;
  ssize_t r ;
  int fd = open(fn, O_RDONLY) ;
  if (fd < 0) return 0 ;
  while ((r = read(fd, buf, sizeof buf)) > 0)
    if (!stralloc_catb(sa, buf, (size_t)r)) { close(fd) ; return 0 ; }
  close(fd) ;
  return r == 0 ;
}

static void nomem (void) { fprintf(stderr, "t-mime: out of memory\n") ; exit(111) ; }

/* what NAME.expected holds for the message s */
static void describe (char const *s, size_t len, stralloc *out)
{
  struct mime m = MIME_ZERO ;
  if (!mime_parse(&m, s, len)) nomem() ;
  if (!stralloc_cats(out, "ENVELOPE ") || !mime_envelope(&m, 0, out)
   || !stralloc_cats(out, "\nBODY ") || !mime_bodystructure(&m, 0, 0, out)
   || !stralloc_cats(out, "\nBODYSTRUCTURE ") || !mime_bodystructure(&m, 0, 1, out)
   || !stralloc_cats(out, "\n")) nomem() ;
  mime_free(&m) ;
}

static void tocrlf (char const *s, size_t len, stralloc *out)
{
  size_t i ;
  for (i = 0 ; i < len ; i++)
  {
    if (s[i] == '\n' && (!i || s[i-1] != '\r') && !stralloc_catb(out, "\r", 1)) nomem() ;
    if (!stralloc_catb(out, s + i, 1)) nomem() ;
  }
}

/* what the header-only paths must give as the full parse does: ENVELOPE,
   HEADER, HEADER.FIELDS (.NOT), decoded fields; with subset, only what
   a header subset (mime_header_subset) can answer */
static void header_view (struct mime const *m, int subset, stralloc *out)
{
  static char const *const specs[] = { "HEADER.FIELDS (FROM SUBJECT DATE)", "HEADER.FIELDS (From To Cc Bcc Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type Reply-To)", "HEADER", "HEADER.FIELDS.NOT (Received)", 0 } ;
  static char const *const fields[] = { "Subject", "From", "To", "Cc", "Bcc", "Date", 0 } ;
  if (!stralloc_cats(out, "ENVELOPE ") || !mime_envelope(m, 0, out)) nomem() ;
  for (size_t k = 0 ; specs[k] ; k++)
  {
    struct mime_section sec ;
    stralloc built = STRALLOC_ZERO ;
    if (subset && k >= 2) break ;
    int r = mime_section(m, specs[k], strlen(specs[k]), &sec, &built) ;
    if (r != MIME_SECT_OK) nomem() ;
    if (!stralloc_cats(out, "\nSECTION ")) nomem() ;
    if (sec.built) { if (!stralloc_catb(out, built.s + sec.start, sec.end - sec.start)) nomem() ; }
    else if (!stralloc_catb(out, m->msg + sec.start, sec.end - sec.start)) nomem() ;
    stralloc_free(&built) ;
  }
  for (size_t k = 0 ; fields[k] ; k++)
  {
    if (!stralloc_cats(out, "\nFIELD ") || mime_header_decoded(m, 0, fields[k], out) < 0) nomem() ;
  }
}

static void header_only_cmp (char const *name, char const *s, size_t len)
{
  struct mime m = MIME_ZERO, h = MIME_ZERO ;
  stralloc full = STRALLOC_ZERO, got = STRALLOC_ZERO, sub = STRALLOC_ZERO ;
  char nm[400] ;
  size_t hl = mime_header_length(s, len) ;
  if (!mime_parse(&m, s, len)) nomem() ;
  header_view(&m, 0, &full) ;
  /* every prefix at least as long as the header, as a reader gets it */
  for (size_t cut = hl ? hl : len ; cut <= len ; cut += cut < len && cut + 97 < len ? 97 : (cut < len ? len - cut : 1))
  {
    got.len = 0 ;
    if (mime_header_length(s, cut) != hl) { snprintf(nm, sizeof nm, "%s header length at %zu", name, cut) ; check(nm, 0, "differs") ; break ; }
    if (!mime_parse_header(&h, s, cut)) nomem() ;
    header_view(&h, 0, &got) ;
    if (got.len != full.len || memcmp(got.s, full.s, got.len))
    {
      snprintf(nm, sizeof nm, "%s-header-only", name) ;
      check(nm, 0, "ENVELOPE / HEADER.FIELDS / fields differ from the full parse") ;
      goto end ;
    }
    if (cut == len) break ;
  }
  snprintf(nm, sizeof nm, "%s-header-only", name) ;
  check(nm, 1, "") ;
  /* the cached subset answers the same */
  {
    int r = mime_header_subset(&sub, s, len, mime_cached_fields) ;
    snprintf(nm, sizeof nm, "%s-header-subset", name) ;
    if (r < 0) nomem() ;
    if (!r) { check(nm, 1, "") ; goto end ; }  /* not cacheable: the file is read */
    if (!stralloc_catb(&sub, "\n", 1)) nomem() ;
    if (!mime_parse_header(&h, sub.s, sub.len)) nomem() ;
    got.len = 0 ; header_view(&h, 1, &got) ;
    full.len = 0 ; header_view(&m, 1, &full) ;
    check(nm, got.len == full.len && !memcmp(got.s, full.s, got.len), "differs from the full parse") ;
  }
 end:
  mime_free(&m) ; mime_free(&h) ;
  stralloc_free(&full) ; stralloc_free(&got) ; stralloc_free(&sub) ;
}

static int cmpstr (const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b) ; }

static void test_corpus (char const *dir)
{
  DIR *d = opendir(dir) ;
  struct dirent *e ;
  char *names[200] ;
  size_t n = 0, i ;
  if (!d) { check("corpus", 0, "cannot open the corpus directory") ; return ; }
  while ((e = readdir(d)) && n < 200)
  {
    size_t l = strlen(e->d_name) ;
    if (l > 4 && !strcmp(e->d_name + l - 4, ".eml")) names[n++] = strdup(e->d_name) ;
  }
  closedir(d) ;
  qsort(names, n, sizeof *names, cmpstr) ;
  check("corpus-size", n >= 15, "fewer than 15 messages") ;
  for (i = 0 ; i < n ; i++)
  {
    stralloc msg = STRALLOC_ZERO, exp = STRALLOC_ZERO, got = STRALLOC_ZERO, crlf = STRALLOC_ZERO, got2 = STRALLOC_ZERO ;
    char fn[1024], name[300] ;
    size_t l = strlen(names[i]) - 4 ;
    snprintf(name, sizeof name, "corpus-%.*s", (int)l, names[i]) ;
    snprintf(fn, sizeof fn, "%s/%s", dir, names[i]) ;
    if (!slurp(fn, &msg)) { check(name, 0, "cannot read the message") ; continue ; }
    snprintf(fn, sizeof fn, "%s/%.*s.expected", dir, (int)l, names[i]) ;
    if (!slurp(fn, &exp)) { check(name, 0, "cannot read its .expected") ; stralloc_free(&msg) ; continue ; }
    describe(msg.s, msg.len, &got) ;
    if (got.len == exp.len && !memcmp(got.s, exp.s, got.len)) check(name, 1, "") ;
    else
    {
      size_t k = 0 ;
      char why[400] ;
      while (k < got.len && k < exp.len && got.s[k] == exp.s[k]) k++ ;
      snprintf(why, sizeof why, "differs at byte %zu: got \"%.60s\" want \"%.60s\"", k,
               k < got.len ? got.s + k : "", k < exp.len ? exp.s + k : "") ;
      check(name, 0, why) ;
    }
    /* the same message with CRLF line ends has the same structure */
    tocrlf(msg.s, msg.len, &crlf) ;
    describe(crlf.s, crlf.len, &got2) ;
    snprintf(name, sizeof name, "corpus-%.*s-crlf", (int)l, names[i]) ;
    check(name, got2.len == got.len && !memcmp(got2.s, got.s, got.len), "differs from the LF form") ;
    snprintf(name, sizeof name, "corpus-%.*s", (int)l, names[i]) ;
    header_only_cmp(name, msg.s, msg.len) ;
    snprintf(name, sizeof name, "corpus-%.*s-crlf", (int)l, names[i]) ;
    header_only_cmp(name, crlf.s, crlf.len) ;
    stralloc_free(&msg) ; stralloc_free(&exp) ; stralloc_free(&got) ; stralloc_free(&crlf) ; stralloc_free(&got2) ;
    free(names[i]) ;
  }
}


/* ---------- unit cases ---------- */

static int parse_str (struct mime *m, char const *s)
{
  if (!mime_parse(m, s, strlen(s))) nomem() ;
  return 1 ;
}

static int bs_is (char const *msg, int ext, char const *want)
{
  struct mime m = MIME_ZERO ;
  stralloc out = STRALLOC_ZERO ;
  int ok ;
  parse_str(&m, msg) ;
  if (!mime_bodystructure(&m, 0, ext, &out) || !stralloc_0(&out)) nomem() ;
  ok = !strcmp(out.s, want) ;
  if (!ok) fprintf(stderr, "got:  %s\nwant: %s\n", out.s, want) ;
  mime_free(&m) ; stralloc_free(&out) ;
  return ok ;
}

static int env_is (char const *msg, char const *want)
{
  struct mime m = MIME_ZERO ;
  stralloc out = STRALLOC_ZERO ;
  int ok ;
  parse_str(&m, msg) ;
  if (!mime_envelope(&m, 0, &out) || !stralloc_0(&out)) nomem() ;
  ok = !strcmp(out.s, want) ;
  if (!ok) fprintf(stderr, "got:  %s\nwant: %s\n", out.s, want) ;
  mime_free(&m) ; stralloc_free(&out) ;
  return ok ;
}

static void test_malformed (void)
{
  struct mime m = MIME_ZERO ;
  stralloc big = STRALLOC_ZERO ;
  size_t i ;
  check("empty", bs_is("", 1, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)"), "empty message") ;
  check("header-only", bs_is("Subject: x\n", 0, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)"), "no blank line") ;
  check("no-boundary-param", bs_is("Content-Type: multipart/mixed\n\n--x\n\nhi\n--x--\n", 0,
        "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) \"mixed\")"), "multipart without boundary") ;
  check("boundary-never-seen", bs_is("Content-Type: multipart/mixed; boundary=q\n\nno parts here\n", 0,
        "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) \"mixed\")"), "no delimiter line") ;
  check("boundary-prefix-not-delimiter", bs_is("Content-Type: multipart/mixed; boundary=b\n\n--b\n\n--bc is text\n--b--\n", 0,
        "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 12 0) \"mixed\")"), "--bc taken as a delimiter") ;
  check("bad-content-type", bs_is("Content-Type: /plain; x=y\n\nz", 0, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0)"), "garbage type") ;
  check("ctype-unclosed-quote", bs_is("Content-Type: text/plain; name=\"abc\n\nz", 0, "(\"text\" \"plain\" (\"name\" \"abc\" \"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0)"), "unclosed quote") ;
  check("cte-with-comment", bs_is("Content-Transfer-Encoding: base64 (yes)\n\nYQ==", 0, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"base64\" 4 0)"), "encoding comment") ;
  /* deep nesting: 40 levels of multipart */
  for (i = 0 ; i < 40 ; i++)
  {
    char line[100] ;
    snprintf(line, sizeof line, "Content-Type: multipart/mixed; boundary=b%zu\n\n--b%zu\n", i, i) ;
    if (!stralloc_cats(&big, line)) nomem() ;
  }
  if (!stralloc_cats(&big, "\ninnermost\n")) nomem() ;
  if (!mime_parse(&m, big.s, big.len)) nomem() ;
  check("depth-limit", m.truncated && mime_nparts(&m) <= MIME_MAXDEPTH + 1, "depth not limited") ;
  {
    stralloc out = STRALLOC_ZERO ;
    check("depth-limit-structure", mime_bodystructure(&m, 0, 1, &out) && out.len > 0, "no structure") ;
    stralloc_free(&out) ;
  }
  /* many parts */
  big.len = 0 ;
  if (!stralloc_cats(&big, "Content-Type: multipart/mixed; boundary=p\n\n")) nomem() ;
  for (i = 0 ; i < MIME_MAXPARTS + 50 ; i++) if (!stralloc_cats(&big, "--p\n\nx\n")) nomem() ;
  if (!mime_parse(&m, big.s, big.len)) nomem() ;
  check("part-limit", m.truncated && mime_nparts(&m) == MIME_MAXPARTS, "parts not limited") ;
  /* a message/rfc822 with a base64 encoding is not looked into */
  if (!mime_parse(&m, "Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\nRnJvbTog\n", 68)) nomem() ;
  check("encoded-message", mime_nparts(&m) == 2 && mime_parts(&m)[1].body == mime_parts(&m)[1].end, "looked into") ;
  /* bare CR, NUL, 8-bit junk in headers don't break anything */
  check("junk-header", bs_is("\xff\xfe: \x01\r\rContent-Type: text/html\n\n", 0,
        "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)"), "junk header") ;
  mime_free(&m) ;
  stralloc_free(&big) ;
}

static void test_addresses (void)
{
  check("addr-none", env_is("To: \n\n", "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"), "empty To") ;
  check("addr-sender-default", env_is("From: a@b.c\nSender: \nReply-To: r@b.c\n\n",
        "(NIL NIL ((NIL NIL \"a\" \"b.c\")) ((NIL NIL \"a\" \"b.c\")) ((NIL NIL \"r\" \"b.c\")) NIL NIL NIL NIL NIL)"), "sender default") ;
  check("addr-encoded-raw", env_is("From: =?UTF-8?Q?J=2E_Doe?= <j@d.e>\n\n",
        "(NIL NIL ((\"=?UTF-8?Q?J=2E_Doe?=\" NIL \"j\" \"d.e\")) ((\"=?UTF-8?Q?J=2E_Doe?=\" NIL \"j\" \"d.e\")) ((\"=?UTF-8?Q?J=2E_Doe?=\" NIL \"j\" \"d.e\")) NIL NIL NIL NIL NIL)"), "encoded word split") ;
  check("addr-domain-literal", env_is("To: x@[192.0.2.1], \"a\\\\b\" <y@z>\n\n",
        "(NIL NIL NIL NIL NIL ((NIL NIL \"x\" \"[192.0.2.1]\")(\"a\\\\b\" NIL \"y\" \"z\")) NIL NIL NIL NIL)"), "literal or backslash") ;
  check("addr-folded", env_is("Cc: A <a@x>,\n  B <b@x>\n\n",
        "(NIL NIL NIL NIL NIL NIL ((\"A\" NIL \"a\" \"x\")(\"B\" NIL \"b\" \"x\")) NIL NIL NIL)"), "folded list") ;
  check("addr-subject-literal", env_is("Subject: a\"b\\\n\n", "(NIL \"a\\\"b\\\\\" NIL NIL NIL NIL NIL NIL NIL NIL)"), "escapes") ;
  check("addr-8bit-literal", env_is("Subject: \xc3\xa9\n\n", "(NIL {2}\r\n\xc3\xa9 NIL NIL NIL NIL NIL NIL NIL NIL)"), "8-bit literal") ;
}

static void test_rfc2231 (void)
{
  check("2231-order", bs_is("Content-Type: application/x; name*1=\"b c\"; name*0=a\n\n", 0,
        "(\"application\" \"x\" (\"name\" \"ab c\") NIL NIL \"7bit\" 0)"), "sections out of order") ;
  check("2231-mixed", bs_is("Content-Type: application/x; n*0*=utf-8''%E2%82%AC; n*1=\" 5%\"\n\n", 0,
        "(\"application\" \"x\" (\"n*\" \"utf-8''%E2%82%AC%205%25\") NIL NIL \"7bit\" 0)"), "plain section in an encoded value") ;
  check("2231-gap", bs_is("Content-Type: application/x; n*0=a; n*2=c\n\n", 0,
        "(\"application\" \"x\" (\"n\" \"a\") NIL NIL \"7bit\" 0)"), "a missing section") ;
  check("2231-bad-number", bs_is("Content-Type: application/x; n*01=a; n*x=b\n\n", 0,
        "(\"application\" \"x\" (\"n*01\" \"a\" \"n*x\" \"b\") NIL NIL \"7bit\" 0)"), "bad section numbers") ;
  check("2231-single", bs_is("Content-Type: application/x; name*=iso-8859-1'fr'caf%E9\n\n", 0,
        "(\"application\" \"x\" (\"name*\" \"iso-8859-1'fr'caf%E9\") NIL NIL \"7bit\" 0)"), "name*=") ;
}

static int dec_is (char const *in, char const *want)
{
  stralloc out = STRALLOC_ZERO ;
  int ok ;
  if (!mime_decode_words(&out, in, strlen(in)) || !stralloc_0(&out)) nomem() ;
  ok = !strcmp(out.s, want) ;
  if (!ok) fprintf(stderr, "decoded %s: got \"%s\" want \"%s\"\n", in, out.s, want) ;
  stralloc_free(&out) ;
  return ok ;
}

static void test_words (void)
{
  struct mime m = MIME_ZERO ;
  stralloc msg = STRALLOC_ZERO, out = STRALLOC_ZERO ;
  check("ew-b-utf8", dec_is("=?UTF-8?B?SsO8cmdlbg==?=", "J\xc3\xbcrgen"), "B") ;
  check("ew-q-latin1", dec_is("=?iso-8859-1?q?Andr=E9_P?=", "Andr\xc3\xa9 P"), "Q") ;
  check("ew-adjacent", dec_is("=?utf-8?q?a?= \t =?utf-8?q?b?= c =?utf-8?q?d?=", "ab c d"), "whitespace between words") ;
  check("ew-glued", dec_is("=?utf-8?q?a?==?utf-8?q?b?=", "ab"), "glued words") ;
  check("ew-cp1252", dec_is("=?windows-1252?Q?=80=96?=", "\xe2\x82\xac\xe2\x80\x93"), "cp1252") ;
  check("ew-latin9", dec_is("=?ISO-8859-15?Q?=A4?=", "\xe2\x82\xac"), "latin9") ;
  check("ew-ascii-lang", dec_is("=?US-ASCII*EN?Q?Keith_Moore?=", "Keith Moore"), "RFC 2231 language") ;
  check("ew-unknown-charset", dec_is("=?koi8-r?B?8NLJ18XU?= x", "=?koi8-r?B?8NLJ18XU?= x"), "unknown charset decoded") ;
  check("ew-malformed", dec_is("=?utf-8?x?abc?= =?utf-8?q?abc =?", "=?utf-8?x?abc?= =?utf-8?q?abc =?"), "malformed") ;
  check("ew-inside-word", dec_is("a=?utf-8?q?b?=", "a=?utf-8?q?b?="), "decoded inside a word") ;
  if (!slurp("tests/imapd/mime/05-encoded-words.eml", &msg) || !mime_parse(&m, msg.s, msg.len)) nomem() ;
  check("header-decoded", mime_header_decoded(&m, 0, "Subject", &out) == 1 && stralloc_0(&out)
        && !strcmp(out.s, "Gr\xc3\xbc\xc3\x9f" "e aus M\xc3\xbcnchen \xe2\x82\xac"), "Subject") ;
  out.len = 0 ;
  check("header-decoded-from", mime_header_decoded(&m, 0, "from", &out) == 1 && stralloc_0(&out)
        && !strcmp(out.s, "J\xc3\xbcrgen M\xc3\xbcller <juergen@example.de>"), "From") ;
  out.len = 0 ;
  check("header-decoded-none", mime_header_decoded(&m, 0, "x-none", &out) == 0 && !out.len, "absent header") ;
  mime_free(&m) ; stralloc_free(&msg) ; stralloc_free(&out) ;
}

/* the section's bytes as sent */
static int sect (struct mime const *m, char const *spec, int want, char const *bytes)
{
  struct mime_section sec ;
  stralloc built = STRALLOC_ZERO, got = STRALLOC_ZERO ;
  int r = mime_section(m, spec, strlen(spec), &sec, &built), ok ;
  if (r != want) { fprintf(stderr, "section %s: %d, want %d\n", spec, r, want) ; stralloc_free(&built) ; return 0 ; }
  if (r != MIME_SECT_OK) { stralloc_free(&built) ; return 1 ; }
  if (sec.built) { if (!stralloc_catb(&got, built.s + sec.start, sec.end - sec.start)) nomem() ; }
  else
  {
    struct mime_crlf c ;
    char buf[5] ;
    size_t n ;
    mime_crlf_start(&c, m->msg + sec.start, sec.end - sec.start, 0) ;
    while ((n = mime_crlf_read(&c, buf, sizeof buf))) if (!stralloc_catb(&got, buf, n)) nomem() ;
  }
  ok = got.len == sec.size && got.len == strlen(bytes) && !memcmp(got.s, bytes, got.len) ;
  if (!ok) fprintf(stderr, "section %s: got \"%.*s\" (size %llu)\n", spec, (int)got.len, got.s, (unsigned long long)sec.size) ;
  stralloc_free(&built) ; stralloc_free(&got) ;
  return ok ;
}

static void test_sections (void)
{
  struct mime m = MIME_ZERO ;
  stralloc msg = STRALLOC_ZERO ;
  if (!slurp("tests/imapd/mime/04-forward.eml", &msg) || !mime_parse(&m, msg.s, msg.len)) nomem() ;
  check("sect-1", sect(&m, "1", MIME_SECT_OK, "See below.\r\n"), "1") ;
  check("sect-1-mime", sect(&m, "1.MIME", MIME_SECT_OK, "Content-Type: text/plain\r\n\r\n"), "1.MIME") ;
  check("sect-2-mime", sect(&m, "2.mime", MIME_SECT_OK, "Content-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n"), "2.MIME") ;
  check("sect-2-1", sect(&m, "2.1", MIME_SECT_OK, "Noon?"), "2.1") ;
  check("sect-2-2-mime", sect(&m, "2.2.MIME", MIME_SECT_OK, "Content-Type: text/html\r\n\r\n"), "2.2.MIME") ;
  check("sect-2-header-fields", sect(&m, "2.HEADER.FIELDS (subject \"FROM\")", MIME_SECT_OK,
        "From: Alice Example <alice@example.org>\r\nSubject: Lunch tomorrow?\r\n\r\n"), "2.HEADER.FIELDS") ;
  check("sect-header-fields-none", sect(&m, "HEADER.FIELDS (X-Nothing)", MIME_SECT_OK, "\r\n"), "no such field") ;
  check("sect-header-fields-not", sect(&m, "HEADER.FIELDS.NOT (From To Subject Date Message-ID MIME-Version)", MIME_SECT_OK,
        "Content-Type: multipart/mixed; boundary=\"fwd\"\r\n\r\n"), "HEADER.FIELDS.NOT") ;
  check("sect-2-text-start", sect(&m, "2.2", MIME_SECT_OK, "<b>Noon?</b>"), "2.2") ;
  check("sect-nopart", sect(&m, "3", MIME_SECT_NOPART, 0) && sect(&m, "1.HEADER", MIME_SECT_NOPART, 0)
        && sect(&m, "2.3", MIME_SECT_NOPART, 0) && sect(&m, "1.1", MIME_SECT_NOPART, 0) && sect(&m, "2.1.1", MIME_SECT_NOPART, 0), "no such part") ;
  check("sect-syntax", sect(&m, "0", MIME_SECT_SYNTAX, 0) && sect(&m, "1.", MIME_SECT_SYNTAX, 0) && sect(&m, "MIME", MIME_SECT_SYNTAX, 0)
        && sect(&m, "HEADER.FIELDS ()", MIME_SECT_SYNTAX, 0) && sect(&m, "HEADER.FIELDS (a", MIME_SECT_SYNTAX, 0)
        && sect(&m, "HEADER.FIELDS(a)", MIME_SECT_SYNTAX, 0) && sect(&m, "TEXTX", MIME_SECT_SYNTAX, 0)
        && sect(&m, "1.2a", MIME_SECT_SYNTAX, 0) && sect(&m, "99999999999", MIME_SECT_SYNTAX, 0), "bad specs accepted") ;
  {
    struct mime_section s2 ;
    stralloc b = STRALLOC_ZERO ;
    int ok = mime_section(&m, "2", 1, &s2, &b) == MIME_SECT_OK && !s2.built && s2.size == 342
          && !memcmp(msg.s + s2.start, "Date:", 5) ;
    check("sect-2-whole-message", ok, "2 is not the encapsulated message") ;
    ok = mime_section(&m, "2.HEADER", 8, &s2, &b) == MIME_SECT_OK && !memcmp(msg.s + s2.start, "Date:", 5)
      && s2.end - s2.start >= 2 && msg.s[s2.end - 1] == '\n' && msg.s[s2.end - 2] == '\n' ;
    check("sect-2-header", ok, "2.HEADER") ;
    ok = mime_section(&m, "2.TEXT", 6, &s2, &b) == MIME_SECT_OK && !memcmp(msg.s + s2.start, "--a2\n", 5) ;
    check("sect-2-text", ok, "2.TEXT") ;
    ok = mime_section(&m, "", 0, &s2, &b) == MIME_SECT_OK && s2.start == 0 && s2.end == msg.len ;
    check("sect-all", ok, "[]") ;
    stralloc_free(&b) ;
  }
  msg.len = 0 ;
  if (!slurp("tests/imapd/mime/01-plain.eml", &msg) || !mime_parse(&m, msg.s, msg.len)) nomem() ;
  check("sect-single-1", sect(&m, "1", MIME_SECT_OK, "Hi Bob,\r\n\r\nare you free for lunch tomorrow at noon?\r\n\r\nAlice\r\n")
        && sect(&m, "TEXT", MIME_SECT_OK, "Hi Bob,\r\n\r\nare you free for lunch tomorrow at noon?\r\n\r\nAlice\r\n"), "1 of a single part") ;
  check("sect-single-2", sect(&m, "2", MIME_SECT_NOPART, 0), "2 of a single part") ;
  msg.len = 0 ;
  if (!slurp("tests/imapd/mime/06-rfc2231.eml", &msg) || !mime_parse(&m, msg.s, msg.len)) nomem() ;
  check("sect-fields-folded", sect(&m, "HEADER.FIELDS (Content-Type)", MIME_SECT_OK,
        "Content-Type: multipart/mixed;\r\n boundary=\"XyZ\"\r\n\r\n"), "continuation lines") ;
  msg.len = 0 ;
  if (!slurp("tests/imapd/mime/09-crlf.eml", &msg) || !mime_parse(&m, msg.s, msg.len)) nomem() ;
  check("sect-crlf", sect(&m, "1", MIME_SECT_OK, "line one\r\nline two\r\n") && sect(&m, "2", MIME_SECT_OK, "attached"), "CRLF message") ;
  mime_free(&m) ; stralloc_free(&msg) ;
}

static void test_crlf (void)
{
  static char const s[] = "a\nb\r\nc\n\n\rd\n" ;
  static char const want[] = "a\r\nb\r\nc\r\n\r\n\rd\r\n" ;
  size_t len = sizeof s - 1, wlen = sizeof want - 1, off, bs ;
  int ok = mime_crlf_size(s, len) == wlen ;
  for (bs = 1 ; bs <= 4 && ok ; bs++)
    for (off = 0 ; off <= wlen + 1 && ok ; off++)
    {
      struct mime_crlf c ;
      char buf[4], got[64] ;
      size_t n, gl = 0 ;
      mime_crlf_start(&c, s, len, off) ;
      while ((n = mime_crlf_read(&c, buf, bs)) && gl + n < sizeof got) { memcpy(got + gl, buf, n) ; gl += n ; }
      if (off >= wlen) ok = !gl ;
      else ok = gl == wlen - off && !memcmp(got, want + off, gl) ;
    }
  check("crlf-reader", ok, "wrong bytes from some offset") ;
}

struct walk { stralloc text ; uint32_t parts ; size_t maxchunk ; } ;

static int walker (void *ctx, uint32_t part, char const *s, size_t len)
{
  struct walk *w = ctx ;
  (void)part ;
  if (!s) { w->parts++ ; return stralloc_catb(&w->text, "|", 1) ? 1 : -1 ; }
  if (len > w->maxchunk) w->maxchunk = len ;
  return stralloc_catb(&w->text, s, len) ? 1 : -1 ;
}

static int walk_is (char const *msg, size_t len, char const *want)
{
  struct mime m = MIME_ZERO ;
  struct walk w = { STRALLOC_ZERO, 0, 0 } ;
  int ok ;
  if (!mime_parse(&m, msg, len)) nomem() ;
  ok = mime_text_walk(&m, &walker, &w) == 1 && w.text.len == strlen(want) && !memcmp(w.text.s, want, w.text.len) ;
  if (!ok) fprintf(stderr, "walk: got \"%.*s\"\n", (int)w.text.len, w.text.s) ;
  mime_free(&m) ; stralloc_free(&w.text) ;
  return ok ;
}

static void test_walk (void)
{
  stralloc msg = STRALLOC_ZERO ;
  if (!slurp("tests/imapd/mime/02-alternative.eml", &msg)) nomem() ;
  check("walk-qp", walk_is(msg.s, msg.len, "|Hello Bob,\nCaf\xc3\xa9 news this month.|<html><body><p>Hello Bob,</p><p>Caf\xc3\xa9 news this month.</p></body></html>\n"), "quoted-printable") ;
  msg.len = 0 ;
  if (!slurp("tests/imapd/mime/07-malformed.eml", &msg)) nomem() ;
  check("walk-latin1", walk_is(msg.s, msg.len, "|bad content type above|last part, no closing boundary: caf\xc3\xa9\n"), "latin-1") ;
  {
    char const *b = "Content-Type: multipart/mixed; boundary=z\n\n--z\nContent-Type: text/plain; charset=windows-1252\nContent-Transfer-Encoding: base64\n\ngGNhZuk=\n--z\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\nAAAA\n--z--\n" ;
    check("walk-base64", walk_is(b, strlen(b), "|\xe2\x82\xac" "caf\xc3\xa9"), "base64 cp1252, image skipped") ;
  }
  {
    /* a big text part comes in bounded chunks */
    struct mime m = MIME_ZERO ;
    struct walk w = { STRALLOC_ZERO, 0, 0 } ;
    size_t i ;
    msg.len = 0 ;
    if (!stralloc_cats(&msg, "Subject: big\n\n")) nomem() ;
    for (i = 0 ; i < 20000 ; i++) if (!stralloc_cats(&msg, "0123456789 abcdefghij klmnopqrst\n")) nomem() ;
    if (!mime_parse(&m, msg.s, msg.len)) nomem() ;
    check("walk-chunks", mime_text_walk(&m, &walker, &w) == 1 && w.maxchunk <= 65536 && w.text.len == msg.len - 14 + 1
          && !memcmp(w.text.s + 1, msg.s + 14, msg.len - 14), "chunks") ;
    mime_free(&m) ; stralloc_free(&w.text) ;
  }
  stralloc_free(&msg) ;
}

static void test_fold (void)
{
  stralloc out = STRALLOC_ZERO ;
  char const *in = "ABC \xc3\x84\xc3\x96\xc3\x9c \xc3\x80\xc3\x89 Stra\xc3\x9f" "e \xce\xa3\xce\x91\xcf\x82 \xd0\x9f\xd0\xa0\xd0\x98 \xc5\x81\xc5\xbd \xff\xc3" ;
  char const *want = "abc \xc3\xa4\xc3\xb6\xc3\xbc \xc3\xa0\xc3\xa9 stra\xc3\x9f" "e \xcf\x83\xce\xb1\xcf\x83 \xd0\xbf\xd1\x80\xd0\xb8 \xc5\x82\xc5\xbe \xff\xc3" ;
  check("casefold", mime_casefold(&out, in, strlen(in)) && out.len == strlen(want) && !memcmp(out.s, want, out.len), "fold") ;
  stralloc_free(&out) ;
}

static void test_imapstring (void)
{
  stralloc out = STRALLOC_ZERO ;
  int ok = mime_imapstring(&out, "a\"b\\c", 5) && out.len == 9 && !memcmp(out.s, "\"a\\\"b\\\\c\"", 9) ;
  out.len = 0 ;
  ok = ok && mime_imapstring(&out, "x\ny\0", 4) && out.len == 9 && !memcmp(out.s, "{4}\r\nx\ny?", 9) ;
  check("imapstring", ok, "quoting") ;
  stralloc_free(&out) ;
}

int main (int argc, char const *const *argv)
{
  if (argc == 3 && !strcmp(argv[1], "-p"))
  {
    stralloc msg = STRALLOC_ZERO, out = STRALLOC_ZERO ;
    if (!slurp(argv[2], &msg)) { perror(argv[2]) ; return 111 ; }
    describe(msg.s, msg.len, &out) ;
    if (fwrite(out.s, 1, out.len, stdout) != out.len) return 111 ;
    stralloc_free(&msg) ; stralloc_free(&out) ;
    return 0 ;
  }
  test_corpus(argc > 1 ? argv[1] : "tests/imapd/mime") ;
  test_malformed() ;
  test_addresses() ;
  test_rfc2231() ;
  test_words() ;
  test_sections() ;
  test_crlf() ;
  test_walk() ;
  test_fold() ;
  test_imapstring() ;
  return failed ;
}
