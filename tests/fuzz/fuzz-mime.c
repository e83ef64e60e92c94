/* fuzz-mime: libFuzzer target for imapd/mime.c.
 *
 * The input is a message: it is parsed, its ENVELOPE, BODY and
 * BODYSTRUCTURE built (also of every encapsulated message), a set of
 * sections resolved (and the input's first line as a section spec),
 * every section read through the CRLF reader whole and from its middle,
 * the text walked, Subject decoded and case-folded.  Checks: the part
 * tree stays inside the message (hdr <= body <= end <= len, children
 * inside their parent, sizes as counted), parentheses of the IMAP
 * strings balance outside strings, a section's range is inside the
 * message and its size is what the reader gives.  Aborts on any
 * violation; ASan catches reads outside the buffer (the input is copied
 * to a buffer of exactly its size). */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <skalibs/stralloc.h>

#include "imapd/mime.h"

char const *PROG = "fuzz-mime" ;

#define must(x) do { if (!(x)) abort() ; } while (0)

static struct mime m = MIME_ZERO ;
static stralloc out = STRALLOC_ZERO, built = STRALLOC_ZERO, dec = STRALLOC_ZERO ;

/* parentheses balance outside quoted strings and literals */
static void balanced (char const *s, size_t len)
{
  size_t i = 0 ;
  long depth = 0 ;
  while (i < len)
  {
    char c = s[i] ;
    if (c == '"')
    {
      for (i++ ; i < len && s[i] != '"' ; i++) if (s[i] == '\\') i++ ;
      must(i < len) ; i++ ; continue ;
    }
    if (c == '{')
    {
      size_t n = 0 ;
      for (i++ ; i < len && s[i] >= '0' && s[i] <= '9' ; i++) n = n * 10 + (size_t)(s[i] - '0') ;
      must(i + 2 < len + 1 && s[i] == '}' && s[i+1] == '\r' && s[i+2] == '\n') ;
      i += 3 + n ; must(i <= len) ; continue ;
    }
    if (c == '(') depth++ ;
    if (c == ')') { depth-- ; must(depth >= 0) ; }
    must(c != '\r' && c != '\n') ;
    i++ ;
  }
  must(!depth) ;
}

static uint64_t readall (char const *s, size_t len, uint64_t off)
{
  struct mime_crlf c ;
  char buf[7] ;
  uint64_t n = 0 ;
  size_t r ;
  mime_crlf_start(&c, s, len, off) ;
  while ((r = mime_crlf_read(&c, buf, sizeof buf))) n += r ;
  return n ;
}

static int walker (void *ctx, uint32_t part, char const *s, size_t len)
{
  must(part < mime_nparts(&m)) ;
  must(len <= 65536) ;
  *(size_t *)ctx += len ;
  dec.len = 0 ;
  must(mime_casefold(&dec, s, len)) ;
  return 1 ;
}

static char const *const specs[] =
{
  "", "1", "2", "1.2", "2.1", "2.1.3", "1.1.1.1", "HEADER", "TEXT", "1.MIME", "2.MIME", "2.HEADER", "2.TEXT",
  "HEADER.FIELDS (From Subject)", "1.HEADER.FIELDS.NOT (To \"Cc\")", "2.HEADER.FIELDS (DATE)", "3", "1.3.MIME",
} ;

static void section (char const *spec, size_t speclen, char const *msg, size_t len)
{
  struct mime_section sec ;
  int r ;
  built.len = 0 ;
  r = mime_section(&m, spec, speclen, &sec, &built) ;
  must(r == MIME_SECT_OK || r == MIME_SECT_SYNTAX || r == MIME_SECT_NOPART) ;
  if (r != MIME_SECT_OK) return ;
  must(sec.part < mime_nparts(&m)) ;
  if (sec.built)
  {
    must(sec.start <= sec.end && sec.end == built.len && sec.size == sec.end - sec.start) ;
    return ;
  }
  must(sec.start <= sec.end && sec.end <= len) ;
  must(sec.size == mime_crlf_size(msg + sec.start, sec.end - sec.start)) ;
  must(readall(msg + sec.start, sec.end - sec.start, 0) == sec.size) ;
  must(readall(msg + sec.start, sec.end - sec.start, sec.size / 2) == sec.size - sec.size / 2) ;
}

int LLVMFuzzerTestOneInput (uint8_t const *data, size_t size)
{
  char *msg = malloc(size ? size : 1) ;
  struct mime_part const *p ;
  size_t i, n, walked = 0 ;
  must(msg) ;
  memcpy(msg, data, size) ;
  must(mime_parse(&m, msg, size)) ;
  p = mime_parts(&m) ;
  n = mime_nparts(&m) ;
  must(n >= 1 && n <= MIME_MAXPARTS + 1) ;
  for (i = 0 ; i < n ; i++)
  {
    must(p[i].hdr <= p[i].body && p[i].body <= p[i].end && p[i].end <= size) ;
    must(p[i].depth <= MIME_MAXDEPTH) ;
    must(p[i].bodysize == mime_crlf_size(msg + p[i].body, p[i].end - p[i].body)) ;
    if (p[i].parent != MIME_NOPART)
    {
      struct mime_part const *q = p + p[i].parent ;
      must(p[i].parent < i && p[i].hdr >= q->body && p[i].end <= q->end) ;
    }
    if (p[i].ismessage)
    {
      out.len = 0 ;
      must(mime_envelope(&m, (uint32_t)i, &out)) ;
      balanced(out.s, out.len) ;
    }
  }
  out.len = 0 ; must(mime_bodystructure(&m, 0, 0, &out)) ; balanced(out.s, out.len) ;
  out.len = 0 ; must(mime_bodystructure(&m, 0, 1, &out)) ; balanced(out.s, out.len) ;
  for (i = 0 ; i < sizeof specs / sizeof *specs ; i++) section(specs[i], strlen(specs[i]), msg, size) ;
  {
    char const *nl = memchr(msg, '\n', size < 80 ? size : 80) ;
    section(msg, nl ? (size_t)(nl - msg) : (size < 80 ? size : 80), msg, size) ;
  }
  must(mime_text_walk(&m, &walker, &walked) == 1) ;
  dec.len = 0 ;
  must(mime_header_decoded(&m, 0, "subject", &dec) >= 0) ;
  out.len = 0 ;
  must(mime_casefold(&out, dec.s, dec.len)) ;
  free(msg) ;
  return 0 ;
}
