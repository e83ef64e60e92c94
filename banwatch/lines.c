/* yubin-banwatch: one log line offered to the jails that read its source
 * (time stamp, then each jail's filter: yubin key=value events or
 * fail2ban-style patterns, see banparse.h), and the line reader that cuts
 * what is read from a file or stdin into lines (overlong lines dropped
 * whole). */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <skalibs/genalloc.h>
#include <skalibs/strerr.h>

#include "exitcodes.h"
#include "heap.h"
#include "banwatch/banwatch.h"

static int kv_wanted_head (filter const *f, banline_kv const *kv)
{
  evsel const *e = genalloc_s(evsel, &f->ev) ;
  for (size_t i = 0 ; i < genalloc_len(evsel, &f->ev) ; i++)
  {
    if (e[i].verblen != kv->verblen || memcmp(e[i].verb, kv->verb, kv->verblen)) continue ;
    if (e[i].proglen && (e[i].proglen != kv->proglen || memcmp(e[i].prog, kv->prog, kv->proglen))) continue ;
    return 1 ;
  }
  return 0 ;
}

static int kv_wanted (filter const *f, banline_kv const *kv, char const *s, size_t n)
{
  evsel const *e = genalloc_s(evsel, &f->ev) ;
  for (size_t i = 0 ; i < genalloc_len(evsel, &f->ev) ; i++)
  {
    if (e[i].verblen != kv->verblen || memcmp(e[i].verb, kv->verb, kv->verblen)) continue ;
    if (e[i].proglen && (e[i].proglen != kv->proglen || memcmp(e[i].prog, kv->prog, kv->proglen))) continue ;
    if (e[i].key[0])
    {
      char const *v ;
      size_t vlen ;
      if (!banline_kv_field(s, n, e[i].key, &v, &vlen) || vlen != strlen(e[i].val) || memcmp(v, e[i].val, vlen)) continue ;
    }
    return 1 ;
  }
  return 0 ;
}

static char linebuf[READBUF / 2 + 1] ;   /* maxline is at most READBUF / 2 */

/* Replay mode: the stamp of the last line whose stamp was 16 bytes (a
 * syslog label and one blank; no other kind is that short).  A line that
 * starts with the same 16 bytes, not followed by another blank, has the
 * same time: banline_stamp reads nothing else of it, and its now (the
 * wall clock at start) does not move in replay.  Most lines share their
 * label with the line before. */
static char last16[16] ;
static int64_t last16t ;
static int last16ok ;

static inline size_t stamp_replay (char const *s, size_t len, int64_t *t)
{
  if (last16ok && len >= 16 && !memcmp(s, last16, 16) && (len == 16 || (s[16] != ' ' && s[16] != '\t')))
  {
    *t = last16t ;
    return 16 ;
  }
  size_t off = banline_stamp(s, len, t, state.wallnow) ;
  if (off == 16) { memcpy(last16, s, 16) ; last16t = *t ; last16ok = 1 ; }
  return off ;
}

/* What every line does before the jails see it: it is counted, its time
 * stamp read (in replay mode it moves the clock and bans expire).  *s and
 * *len are left after the stamp; 0 for an empty line (nothing to match). */
static inline __attribute__((always_inline)) int line_clock (char const **sp, size_t *lenp, int64_t *tp)
{
  char const *s = *sp ;
  size_t len = *lenp ;
  int64_t t ;
  stats.lines++ ;
  while (len && !*s) { s++ ; len-- ; }   /* a hole left by a truncation */
  if (!len) return 0 ;
  size_t off ;
  if (state.replaying)
  {
    off = stamp_replay(s, len, &t) ;
    if (!off) { if (!state.now) state.now = state.wallnow ; t = state.now ; }
    else if (t > state.now) state.now = t ;
    struct heapent const *top = heap_top(&bantab.heap) ;
    if (top && top->when <= state.now) bans_expire() ;
  }
  else
  {
    off = banline_stamp(s, len, &t, state.now) ;
    if (!off || t > state.now + 60000) t = state.now ;
  }
  *sp = s + off ; *lenp = len - off ;
  *tp = t ;
  return 1 ;
}

/* A line that no jail can match (replay's scanner saw none of the
 * literals in it): what line_process would do with it, the clock only. */
void line_skip (char const *s, size_t len)
{
  int64_t t ;
  line_clock(&s, &len, &t) ;
}

/* Offer one line (without its newline) to the jails in jl[0..n);
 * nulfree: the caller knows it holds no NUL. */
void line_process_nf (char const *s, size_t len, uint16_t const *jl, size_t n, int nulfree)
{
  int64_t t ;
  banline_kv kv ;
  int kvstate = 0 ;   /* 0 not looked at, 1 "prog: verb", 2 whole yubin line, -1 not one */
  int nul = nulfree ? 0 : -1 ;   /* holds a NUL: -1 not known yet */
  int copied = 0 ;    /* linebuf holds the line, with a NUL (regexec) */
  if (!line_clock(&s, &len, &t)) return ;
  for (size_t i = 0 ; i < n ; i++)
  {
    jail *j = JAIL(jl[i]) ;
    filter const *f = FILTER(j->filter) ;
    banaddr a ;
    if (t < state.now - j->findtime) continue ;   /* too old to count */
    if (f->type == F_KV)
    {
      /* most lines are not failures: look at "prog: verb" first, check
       * every byte (NULs included) only of a line that can matter */
      if (!kvstate) kvstate = banline_kv_head(&kv, s, len) ? 1 : -1 ;
      if (kvstate < 0 || !kv_wanted_head(f, &kv)) continue ;
      if (kvstate == 1) kvstate = banline_kv_parse(&kv, s, len) ? 2 : -1 ;
      if (kvstate < 0) { stats.badline++ ; continue ; }
      if (!kv.ip || !kv_wanted(f, &kv, s, len)) continue ;
      if (!banaddr_scanip(&a, kv.ip, kv.iplen)) { j->nbadhost++ ; continue ; }
    }
    else if (f->type == F_REGEX)
    {
      if (nul < 0) nul = !!memchr(s, 0, len) ;
      if (nul) { stats.badline++ ; continue ; }
      banpat const *p = genalloc_s(banpat, &f->fail) ;
      size_t np = genalloc_len(banpat, &f->fail), k ;
      int r = 0 ;
      for (k = 0 ; k < np ; k++)
      {
        if (!banpat_maybe(p + k, s, len)) continue ;   /* most lines: no copy, no match */
        if (!copied) { memcpy(linebuf, s, len) ; linebuf[len] = 0 ; copied = 1 ; }
        if ((r = banpat_match_maybe(p + k, linebuf, len, &a))) break ;
      }
      if (r < 0) { j->nbadhost++ ; continue ; }
      if (!r) continue ;
      p = genalloc_s(banpat, &f->ign) ;
      np = genalloc_len(banpat, &f->ign) ;
      for (k = 0 ; k < np ; k++) { banaddr dummy ; if (banpat_maybe(p + k, s, len) && banpat_match(p + k, linebuf, len, &dummy)) break ; }
      if (k < np) { j->nignored++ ; continue ; }
    }
    else continue ;
    stats.matched++ ;
    jail_fail(jl[i], &a, t, 0) ;
  }
}

void line_process (char const *s, size_t len, uint16_t const *jl, size_t n)
{
  line_process_nf(s, len, jl, n, 0) ;
}

/* A line reader over a fixed buffer: complete lines go to line_process,
 * a line longer than maxline is dropped whole (never its tail as a line
 * of its own), bytes after the last newline wait for more. */

void reader_init (reader *r)
{
  r->buf = malloc(READBUF) ;
  if (!r->buf) strerr_diefu1sys(EX_TEMP, "allocate a read buffer") ;
  r->len = 0 ; r->skipping = 0 ;
}

void reader_free (reader *r)
{
  free(r->buf) ;
  r->buf = 0 ; r->len = 0 ; r->skipping = 0 ;
}

/* process r->buf after new bytes were added */
static void reader_lines (reader *r, uint16_t const *jl, size_t n)
{
  size_t start = 0 ;
  for (;;)
  {
    char *nl = memchr(r->buf + start, '\n', r->len - start) ;
    if (!nl) break ;
    size_t end = nl - r->buf ;
    if (r->skipping) { r->skipping = 0 ; stats.overlong++ ; }
    else if (end - start > conf.maxline) stats.overlong++ ;
    else line_process(r->buf + start, end - start, jl, n) ;
    start = end + 1 ;
  }
  if (r->len - start > conf.maxline) { r->skipping = 1 ; start = r->len ; }
  if (r->skipping) start = r->len ;
  memmove(r->buf, r->buf + start, r->len - start) ;
  r->len -= start ;
}

/* an unterminated last line, at the end of a file that won't grow */
void reader_finish (reader *r, uint16_t const *jl, size_t n)
{
  if (r->len && !r->skipping) line_process(r->buf, r->len, jl, n) ;
  r->len = 0 ; r->skipping = 0 ;
}

/* keep the last TAILN bytes read from a file (truncation check) */
static void tail_update (char *tail, size_t *taillen, char const *p, size_t w)
{
  if (w >= TAILN) { memcpy(tail, p + w - TAILN, TAILN) ; *taillen = TAILN ; return ; }
  size_t keep = *taillen < TAILN - w ? *taillen : TAILN - w ;
  memmove(tail, tail + *taillen - keep, keep) ;
  memcpy(tail + keep, p, w) ;
  *taillen = keep + w ;
}

/* read fd until EOF or EAGAIN; returns bytes read, -1 on error, and sets
 * *eof on end of file */
ssize_t reader_fill (reader *r, int fd, uint16_t const *jl, size_t n, int *eof, char *tail, size_t *taillen)
{
  ssize_t total = 0 ;
  *eof = 0 ;
  for (;;)
  {
    ssize_t w = read(fd, r->buf + r->len, READBUF - r->len) ;
    if (w < 0)
    {
      if (errno == EINTR) continue ;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break ;
      return -1 ;
    }
    if (!w) { *eof = 1 ; break ; }
    if (tail) tail_update(tail, taillen, r->buf + r->len, w) ;
    r->len += w ;
    total += w ;
    reader_lines(r, jl, n) ;
  }
  return total ;
}
