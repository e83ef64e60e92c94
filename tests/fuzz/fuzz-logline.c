/* libFuzzer target: banwatch's log line parsing (banwatch/banparse.c).
 * The input is one log line.  It goes through what yubin-banwatch does to
 * a line: time stamp, yubin key=value parse, the shipped sshd and Postfix
 * patterns, address and CIDR parsing, tcprules entries, durations; and,
 * when short and simple, is compiled as a failregex itself (not run:
 * glibc's regexec is exponential on some patterns, which are the
 * operator's, not the attacker's).  Invariants (abort on
 * failure): an address found is printable and re-parses to itself; a
 * key=value ip field holds no blank, '=' or control byte; the fast <HOST>
 * path, the literal prefilter and banre give what regexec alone gives. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <skalibs/stralloc.h>

#include "banwatch/banparse.h"

static banpat pats[3] ;
static int ready = 0 ;

static char const *const patsrc[3] =
{
  "^[^ ]+ sshd(-session)?\\[[0-9]+\\]: Failed (password|publickey|keyboard-interactive/pam) for (invalid user )?.* from <HOST> port [0-9]+( ssh2)?$",
  "^[^ ]+ sshd(-session)?\\[[0-9]+\\]: Invalid user .* from <HOST> port [0-9]+$",
  "^[^ ]+ postfix(/[-a-z0-9]+)*/smtpd\\[[0-9]+\\]: warning: [-._A-Za-z0-9]+\\[<HOST>\\]: SASL [-A-Z0-9]+ authentication failed(: .*)?$",
} ;

static void check_addr (banaddr const *a)
{
  char s[BANADDR_FMT] ;
  banaddr b ;
  size_t n = banaddr_fmt(s, a) ;
  if (n >= BANADDR_FMT || strlen(s) != n) abort() ;
  if (!banaddr_scan(&b, s, n, 1) || !banaddr_equal(a, &b)) abort() ;
  stralloc sa = STRALLOC_ZERO ;
  if (!banaddr_tcprules(&sa, a)) abort() ;
  stralloc_free(&sa) ;
}

int LLVMFuzzerTestOneInput (uint8_t const *data, size_t size)
{
  if (!ready)
  {
    char err[256] ;
    for (int i = 0 ; i < 3 ; i++)
      if (!banpat_compile(pats + i, patsrc[i], 1, err, sizeof err)) abort() ;
    ready = 1 ;
  }
  if (size > 65536) return 0 ;
  char *line = malloc(size + 1) ;
  if (!line) return 0 ;
  memcpy(line, data, size) ;
  line[size] = 0 ;

  banaddr a ;
  if (banaddr_scan(&a, line, size, 1)) check_addr(&a) ;
  if (banaddr_scan(&a, line, size, 0)) check_addr(&a) ;
  int64_t ms ;
  (void)banparse_duration(line, size, &ms) ;

  if (!memchr(line, 0, size))
  {
    int64_t t ;
    size_t off = banline_stamp(line, size, &t, 1795854614000LL) ;
    if (off > size) abort() ;
    char const *s = line + off ;
    size_t n = size - off ;
    banline_kv kv ;
    if (banline_kv_parse(&kv, s, n) && kv.ip)
    {
      if (kv.ip < s || kv.ip + kv.iplen > s + n || !kv.iplen) abort() ;
      for (size_t i = 0 ; i < kv.iplen ; i++)
        if ((unsigned char)kv.ip[i] <= 0x20 || (unsigned char)kv.ip[i] >= 0x7f || kv.ip[i] == '=') abort() ;
      if (banaddr_scanip(&a, kv.ip, kv.iplen)) check_addr(&a) ;
    }
    for (int i = 0 ; i < 3 ; i++)
    {
      /* the literal prefilter, banre and the split at <HOST> must agree
       * with regexec alone */
      banaddr b ;
      int r = banpat_match(pats + i, s, n, &a) ;
      if (r != banpat_match_regex(pats + i, s, n, &b)) abort() ;
      if (r == 1)
      {
        if (!banaddr_equal(&a, &b)) abort() ;
        check_addr(&a) ;
      }
    }
    size_t quant = 0 ;
    for (size_t i = 0 ; i < size ; i++) quant += line[i] == '{' ? 3 : !!strchr("+*?", line[i]) ;
    /* glibc's regcomp blows up on stacked quantifiers ("x++++...", and
     * intervals multiply: "x{,9}{,9}{5,}" takes it 35 s under ASan): that
     * is the operator's pattern, not a log line, so keep those out (one
     * interval at most) */
    if (size <= 64 && quant <= 3)
    {
      banpat p ;
      char err[256] ;
      for (int host = 0 ; host < 2 ; host++)
        if (banpat_compile(&p, line, host, err, sizeof err))
        {
          /* the input as its own pattern, and as a line for it: banre
           * (or regexec where banre refuses) agrees with regexec */
          banaddr x, y ;
          if (banpat_match(&p, line, size, &x) != banpat_match_regex(&p, line, size, &y)) abort() ;
          banpat_free(&p) ;
        }
    }
  }
  free(line) ;
  return 0 ;
}
