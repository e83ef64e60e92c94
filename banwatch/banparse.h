/* banwatch's pure parsing and matching: addresses and CIDRs, log line
 * time stamps, yubin key=value lines, fail2ban-style patterns with <HOST>,
 * durations, and tcprules deny entries.  No I/O, no allocation on the
 * matching path; shared by yubin-banwatch, its tests and the fuzz target
 * tests/fuzz/fuzz-logline.c.  See banwatch/yubin-banwatch.8. */
#ifndef YUBIN_BANPARSE_H
#define YUBIN_BANPARSE_H

#include <stddef.h>
#include <stdint.h>
#include <regex.h>

#include <skalibs/stralloc.h>

#include "banwatch/banre.h"

/* An address or a network: family 4 or 6, prefix length len (32 or 128
 * for a single address), bytes in a[] (IPv4 in a[0..4), the rest 0).
 * Bits past len are always zero.  IPv4-mapped IPv6 (::ffff:a.b.c.d) is
 * stored as IPv4, as tcpserver does. */
typedef struct banaddr_s banaddr ;
struct banaddr_s
{
  unsigned char family ;
  unsigned char len ;
  unsigned char a[16] ;
} ;
#define BANADDR_ZERO { 0, 0, { 0 } }
#define BANADDR_FMT 64

/* Parse exactly s[0..n): an address, or with cidr, "address/len".
 * Host bits past len are cleared.  Returns 1, or 0 if malformed. */
extern int banaddr_scan (banaddr *, char const *, size_t, int) ;
#define banaddr_scanip(b, s, n) banaddr_scan(b, s, n, 0)
#define banaddr_scancidr(b, s, n) banaddr_scan(b, s, n, 1)
extern void banaddr_mask (banaddr *, unsigned int) ;
extern int banaddr_contains (banaddr const *, banaddr const *) ;
extern int banaddr_equal (banaddr const *, banaddr const *) ;
/* Canonical text ("192.0.2.1", "2001:db8::/64"), NUL-terminated.
 * Returns the length.  s must hold BANADDR_FMT bytes. */
extern size_t banaddr_fmt (char *, banaddr const *) ;
/* IPv6 text exactly as ucspi-tcp-ipv6 writes TCPREMOTEIP (longest run of
 * zero groups compressed, even a single one; first run wins a tie). */
extern size_t banaddr_fmt_ucspi6 (char *, unsigned char const *) ;
/* Append tcprules lines "<key>:deny\n" that make tcpserver -x refuse every
 * address of the network, in tcpserver's lookup order (exact address,
 * then shorter prefixes ending in '.' or ':').  IPv4 prefixes are exact
 * (ranges "1.2.0-127.").  IPv6 prefixes give one line per text form; a
 * prefix ending in two or more zero groups also refuses a few neighbours
 * (documented in yubin-banwatch.8).  Returns 1, 0 on ENOMEM. */
extern int banaddr_tcprules (stralloc *, banaddr const *) ;

/* A time stamp at the start of a log line: TAI64N "@4000...", ISO 8601
 * ("2026-11-28 08:30:17.145507564", "2026-11-28T08:30:17Z", with a zone
 * offset or local time), or syslog "Nov 28 08:30:17" (the year is guessed
 * from now_ms: the latest that is not a day in the future).  Returns the
 * bytes to skip (stamp and the blanks after it) and sets *ms, or 0 when
 * there is no stamp. */
extern size_t banline_stamp (char const *, size_t, int64_t *, int64_t) ;

/* A yubin log line "prog: verb key=value key=value ...".  Every byte is
 * printable ASCII, fields are separated by one space, a value never holds
 * a raw '=' (ylog escapes it), and a key appears at most once: anything
 * else is not a yubin line.  ip is the value of the "ip" key (0 if none). */
typedef struct banline_kv_s banline_kv ;
struct banline_kv_s
{
  char const *prog ;
  size_t proglen ;
  char const *verb ;
  size_t verblen ;
  char const *ip ;
  size_t iplen ;
} ;
extern int banline_kv_parse (banline_kv *, char const *, size_t) ;
/* Only "prog: verb" (ip stays 0): enough to know whether a line can
 * matter before checking every byte of it. */
extern int banline_kv_head (banline_kv *, char const *, size_t) ;
/* The value of key in a line that banline_kv_parse accepted: 1 and *v,
 * *vlen set, or 0 if the line has no such key. */
extern int banline_kv_field (char const *, size_t, char const *, char const **, size_t *) ;

/* A fail2ban-style pattern: POSIX extended regex, <HOST> stands for an
 * IPv4 or IPv6 address.  A failregex (host=1) must have exactly one <HOST>
 * and be anchored ('^' first, '$' last), so text an attacker controls
 * (a user name before " from <HOST>") can't supply the address. */
typedef struct banpat_s banpat ;
struct banpat_s
{
  regex_t re ;
  regmatch_t *m ;
  unsigned int nm ;
  unsigned int hostgroup ;   /* 0: no <HOST> */
  size_t litlen ;
  char lit[64] ;             /* a literal every match contains (prefilter) */
  int fast ;                 /* <HOST> found without reporting groups: */
  regex_t pre, post ;        /* "^P$" and "^S$" of "^P<HOST>S$" */
  size_t prelen, postlen, prekey, litkey ;
  char prelit[32], postlit[32] ;   /* the literals around <HOST> */
  banre *dfa ;               /* banre of re, pre and post (0: regexec) */
  banre *dpre, *dpost ;      /* dpost: post without its first postskip
                                bytes, the literal memcmp already saw */
  size_t postskip ;
} ;
/* Returns 1, or 0 with a message in err. */
extern int banpat_compile (banpat *, char const *, int, char *, size_t) ;
extern void banpat_free (banpat *) ;
/* Match the line s[0..n), which must hold no NUL and be followed by one
 * (s[n] == 0: regexec and its sanitizer interceptor read a C string).
 * 1 match (host filled when the pattern has <HOST>), 0 no match,
 * -1 matched but the <HOST> text is not a valid address. */
extern int banpat_match (banpat const *, char const *, size_t, banaddr *) ;
/* 0 if the pattern's required literal is not in s[0..n) (no match
 * possible), 1 otherwise.  s needs no NUL after it. */
extern int banpat_maybe (banpat const *, char const *, size_t) ;
/* banpat_match of a line banpat_maybe said 1 for (the literal is not
 * looked for again) */
extern int banpat_match_maybe (banpat const *, char const *, size_t, banaddr *) ;
/* The same answer from glibc's regexec alone: no literal prefilter, no
 * banre, no split at <HOST> (the reference that tests compare with). */
extern int banpat_match_regex (banpat const *, char const *, size_t, banaddr *) ;

/* "600", "600s", "500ms", "10m", "1h", "2d", "1w" -> milliseconds.
 * Returns 1, 0 if malformed or out of range. */
extern int banparse_duration (char const *, size_t, int64_t *) ;

#endif
