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
    stralloc_free(&msg) ; stralloc_free(&exp) ; stralloc_free(&got) ; stralloc_free(&crlf) ; stralloc_free(&got2) ;
    free(names[i]) ;
  }
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
  return failed ;
}
