/* t-spawnproto: qmgr/spawnproto.c, the records between yubin-qmgr and its
 * spawners: round trips of requests (one recipient, and lists) and
 * results, every stream decoded the same when split at every byte,
 * malformed and oversized records refused, the wire format of today's
 * yubin-lspawn kept byte for byte.  Batches (SPAWN_BATCH, the local
 * channel): wire format, round trip split at every byte, bad records. */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <skalibs/stralloc.h>

#include "qmgr/spawnproto.h"

static int failed ;

static void check (char const *name, int ok, char const *why)
{
  if (ok) printf("PASS %s\n", name) ;
  else { printf("FAIL %s: %s\n", name, why) ; failed = 1 ; }
}

#define STR(lit) lit, sizeof(lit) - 1

static int streq (char const *a, char const *b) { return !strcmp(a, b) ; }

static int req_eq (struct spawn_request const *a, struct spawn_request const *b)
{
  if (!streq(a->jobid, b->jobid) || !streq(a->msgid, b->msgid) || a->msgoff != b->msgoff
   || !streq(a->sender, b->sender) || a->nrcpts != b->nrcpts) return 0 ;
  char const *x = a->rcpts, *y = b->rcpts ;
  for (size_t i = 0 ; i < a->nrcpts ; i++)
  {
    if (!streq(x, y)) return 0 ;
    x += strlen(x) + 1 ; y += strlen(y) + 1 ;
  }
  return 1 ;
}

/* ---- what the stream tests send ---- */

static struct spawn_request const reqs[] = {
  { .jobid = "0", .msgid = "1732781234.012345678.4242", .msgoff = 4096, .sender = "alice@example.test", .rcpts = "bob@example.test", .nrcpts = 1 },
  { .jobid = "9999999999", .msgid = "1.2.3", .msgoff = 0, .sender = "", .rcpts = "", .nrcpts = 1 },
  { .jobid = "17", .msgid = "5.000000001.7", .msgoff = 18446744073709551615u, .sender = "#@[]", .rcpts = "postmaster", .nrcpts = 1 },
} ;
#define NREQS (sizeof(reqs) / sizeof(reqs[0]))

static struct spawn_request const lreqs[] = {
  { .jobid = "3", .msgid = "1.1.1", .msgoff = 4096, .sender = "a@x", .rcpts = "b@y\0c@y\0d@z", .nrcpts = 3 },
  { .jobid = "4", .msgid = "1.1.2", .msgoff = 4096, .sender = "", .rcpts = "e@y", .nrcpts = 1 },
} ;
#define NLREQS (sizeof(lreqs) / sizeof(lreqs[0]))

struct res { char const *jobid ; unsigned int code ; char const *text ; } ;
static struct res const ress[] = {
  { "0", 0, "" },
  { "12", 100, "Sorry, no mailbox here by that name. (#5.1.1)" },
  { "9999999999", 111, "maildir ./Maildir/ does not exist in /home/u (#4.2.1)" },
} ;
#define NRESS (sizeof(ress) / sizeof(ress[0]))

/* Decode stream[0..len) fed in two pieces cut at k (or byte by byte if
 * k == (size_t)-1), expecting the n requests of want in order. */
static int decode_requests (char const *s, size_t len, size_t k, int kind,
                            struct spawn_request const *want, size_t n)
{
  struct spawn_decoder d = SPAWN_DECODER(SPAWN_RECORDMAX, kind) ;
  size_t got = 0, fed = 0 ;
  int ok = 1 ;
  while (ok && fed < len)
  {
    size_t step = k == (size_t)-1 ? 1 : fed < k ? k : len - k ;
    if (!spawn_feed(&d, s + fed, step)) { ok = 0 ; break ; }
    fed += step ;
    for (;;)
    {
      struct spawn_request r ;
      int x = spawn_request_next(&d, &r) ;
      if (x < 0 || (x > 0 && (got >= n || !req_eq(&r, want + got)))) { ok = 0 ; break ; }
      if (!x) break ;
      got++ ;
    }
  }
  ok = ok && got == n && !spawn_pending(&d) ;
  spawn_decoder_free(&d) ;
  return ok ;
}

static int decode_results (char const *s, size_t len, size_t k)
{
  struct spawn_decoder d = SPAWN_DECODER_ZERO ;
  size_t got = 0, fed = 0 ;
  int ok = 1 ;
  while (ok && fed < len)
  {
    size_t step = k == (size_t)-1 ? 1 : fed < k ? k : len - k ;
    if (!spawn_feed(&d, s + fed, step)) { ok = 0 ; break ; }
    fed += step ;
    for (;;)
    {
      struct spawn_result r ;
      int x = spawn_result_next(&d, &r) ;
      if (x < 0 || (x > 0 && (got >= NRESS || !streq(r.jobid, ress[got].jobid)
                              || r.code != ress[got].code || !streq(r.text, ress[got].text)))) { ok = 0 ; break ; }
      if (!x) break ;
      got++ ;
    }
  }
  ok = ok && got == NRESS && !spawn_pending(&d) ;
  spawn_decoder_free(&d) ;
  return ok ;
}

/* One request record given as bytes: -1 refused (with errno), 0
 * incomplete, 1 accepted. */
static int one_request (char const *s, size_t len, int kind, size_t max, int *e)
{
  struct spawn_decoder d = SPAWN_DECODER(max, kind) ;
  struct spawn_request r ;
  int x = spawn_feed(&d, s, len) ? spawn_request_next(&d, &r) : -2 ;
  *e = errno ;
  spawn_decoder_free(&d) ;
  return x ;
}

static int one_result (char const *s, size_t len, int *e)
{
  struct spawn_decoder d = SPAWN_DECODER_ZERO ;
  struct spawn_result r ;
  int x = spawn_feed(&d, s, len) ? spawn_result_next(&d, &r) : -2 ;
  *e = errno ;
  spawn_decoder_free(&d) ;
  return x ;
}

int main (void)
{
  stralloc sa = STRALLOC_ZERO ;
  int ok ;

  /* ---- the wire format of yubin-lspawn, byte for byte ---- */
  ok = spawn_request_put(&sa, reqs, SPAWN_ONE) ;
  check("request-wire-format", ok && sa.len == sizeof("0\0" "1732781234.012345678.4242\0" "4096\0" "alice@example.test\0" "bob@example.test") 
        && !memcmp(sa.s, "0\0" "1732781234.012345678.4242\0" "4096\0" "alice@example.test\0" "bob@example.test", sa.len), "bytes differ") ;
  sa.len = 0 ;
  ok = spawn_result_put(&sa, "12", 100, STR("no\nsuch\0user")) ;
  check("result-wire-format", ok && sa.len == sizeof("12\0" "100\0" "no such user") && !memcmp(sa.s, "12\0" "100\0" "no such user", sa.len), "bytes differ") ;
  sa.len = 0 ;
  ok = spawn_request_put(&sa, lreqs, SPAWN_LIST) ;
  check("request-list-wire-format", ok && sa.len == sizeof("3\0" "1.1.1\0" "4096\0" "a@x\0" "b@y\0c@y\0d@z\0")
        && !memcmp(sa.s, "3\0" "1.1.1\0" "4096\0" "a@x\0" "b@y\0c@y\0d@z\0", sa.len), "bytes differ") ;

  /* ---- round trips, and every split ---- */
  sa.len = 0 ;
  ok = 1 ;
  for (size_t i = 0 ; i < NREQS ; i++) ok &= spawn_request_put(&sa, reqs + i, SPAWN_ONE) ;
  check("request-encode", ok, "spawn_request_put failed") ;
  check("request-roundtrip", decode_requests(sa.s, sa.len, 0, SPAWN_ONE, reqs, NREQS), "decoded records differ") ;
  check("request-byte-at-a-time", decode_requests(sa.s, sa.len, (size_t)-1, SPAWN_ONE, reqs, NREQS), "decoded records differ") ;
  ok = 1 ;
  for (size_t k = 1 ; k < sa.len ; k++) ok &= decode_requests(sa.s, sa.len, k, SPAWN_ONE, reqs, NREQS) ;
  check("request-split-everywhere", ok, "a split changed the result") ;

  sa.len = 0 ;
  ok = 1 ;
  for (size_t i = 0 ; i < NLREQS ; i++) ok &= spawn_request_put(&sa, lreqs + i, SPAWN_LIST) ;
  check("request-list-encode", ok, "spawn_request_put failed") ;
  check("request-list-roundtrip", decode_requests(sa.s, sa.len, 0, SPAWN_LIST, lreqs, NLREQS), "decoded records differ") ;
  check("request-list-byte-at-a-time", decode_requests(sa.s, sa.len, (size_t)-1, SPAWN_LIST, lreqs, NLREQS), "decoded records differ") ;
  ok = 1 ;
  for (size_t k = 1 ; k < sa.len ; k++) ok &= decode_requests(sa.s, sa.len, k, SPAWN_LIST, lreqs, NLREQS) ;
  check("request-list-split-everywhere", ok, "a split changed the result") ;

  sa.len = 0 ;
  ok = 1 ;
  for (size_t i = 0 ; i < NRESS ; i++) ok &= spawn_result_put(&sa, ress[i].jobid, ress[i].code, ress[i].text, strlen(ress[i].text)) ;
  check("result-encode", ok, "spawn_result_put failed") ;
  check("result-roundtrip", decode_results(sa.s, sa.len, 0), "decoded records differ") ;
  check("result-byte-at-a-time", decode_results(sa.s, sa.len, (size_t)-1), "decoded records differ") ;
  ok = 1 ;
  for (size_t k = 1 ; k < sa.len ; k++) ok &= decode_results(sa.s, sa.len, k) ;
  check("result-split-everywhere", ok, "a split changed the result") ;

  /* a long reason is cut at SPAWN_TEXTMAX */
  {
    char big[3000] ;
    memset(big, 'x', sizeof(big)) ;
    sa.len = 0 ;
    struct spawn_decoder d = SPAWN_DECODER_ZERO ;
    struct spawn_result r ;
    ok = spawn_result_put(&sa, "1", 111, big, sizeof(big)) && spawn_feed(&d, sa.s, sa.len)
      && spawn_result_next(&d, &r) == 1 && strlen(r.text) == SPAWN_TEXTMAX && r.code == 111 ;
    spawn_decoder_free(&d) ;
    check("result-text-cut", ok, "text not cut at SPAWN_TEXTMAX") ;
  }

  /* through a pipe, with spawn_fill */
  {
    int p[2] ;
    struct spawn_decoder d = SPAWN_DECODER_ZERO ;
    struct spawn_result r ;
    sa.len = 0 ;
    ok = pipe(p) == 0 && spawn_result_put(&sa, "5", 0, STR("delivered"))
      && write(p[1], sa.s, 3) == 3 && spawn_fill(&d, p[0], 8192) == 3 && spawn_result_next(&d, &r) == 0
      && write(p[1], sa.s + 3, sa.len - 3) == (ssize_t)(sa.len - 3) && spawn_fill(&d, p[0], 2) == 2
      && spawn_fill(&d, p[0], 8192) == (ssize_t)(sa.len - 5)
      && spawn_result_next(&d, &r) == 1 && streq(r.jobid, "5") && !r.code && streq(r.text, "delivered")
      && spawn_result_next(&d, &r) == 0 && !close(p[1]) && spawn_fill(&d, p[0], 8192) == 0 ;
    close(p[0]) ;
    spawn_decoder_free(&d) ;
    check("result-fill-from-pipe", ok, "records read from a pipe differ") ;
  }

  /* ---- malformed records ---- */
  {
    int e ;
    static struct { char const *name ; char const *s ; size_t len ; int kind ; } const bad[] = {
      { "request-empty-jobid", STR("\0" "1.2.3\0" "4096\0" "a\0" "b\0"), SPAWN_ONE },
      { "request-long-jobid", STR("12345678901\0" "1.2.3\0" "4096\0" "a\0" "b\0"), SPAWN_ONE },
      { "request-empty-msgid", STR("1\0" "\0" "4096\0" "a\0" "b\0"), SPAWN_ONE },
      { "request-empty-offset", STR("1\0" "1.2.3\0" "\0" "a\0" "b\0"), SPAWN_ONE },
      { "request-bad-offset", STR("1\0" "1.2.3\0" "40x6\0" "a\0" "b\0"), SPAWN_ONE },
      { "request-signed-offset", STR("1\0" "1.2.3\0" "-1\0" "a\0" "b\0"), SPAWN_ONE },
      { "request-huge-offset", STR("1\0" "1.2.3\0" "18446744073709551616\0" "a\0" "b\0"), SPAWN_ONE },
      { "request-list-empty", STR("1\0" "1.2.3\0" "4096\0" "a\0" "\0"), SPAWN_LIST },
    } ;
    for (size_t i = 0 ; i < sizeof(bad) / sizeof(bad[0]) ; i++)
    {
      int x = one_request(bad[i].s, bad[i].len, bad[i].kind, SPAWN_RECORDMAX, &e) ;
      check(bad[i].name, x == -1 && e == EPROTO, "not refused as a protocol error") ;
    }
    static struct { char const *name ; char const *s ; size_t len ; } const badres[] = {
      { "result-empty-jobid", STR("\0" "0\0" "ok\0") },
      { "result-long-jobid", STR("12345678901\0" "0\0" "ok\0") },
      { "result-empty-code", STR("1\0" "\0" "ok\0") },
      { "result-bad-code", STR("1\0" "1x1\0" "ok\0") },
      { "result-huge-code", STR("1\0" "99999999999\0" "ok\0") },
    } ;
    for (size_t i = 0 ; i < sizeof(badres) / sizeof(badres[0]) ; i++)
    {
      int x = one_result(badres[i].s, badres[i].len, &e) ;
      check(badres[i].name, x == -1 && e == EPROTO, "not refused as a protocol error") ;
    }

    check("request-incomplete", one_request(STR("1\0" "1.2.3\0" "4096\0" "a\0" "b"), SPAWN_ONE, SPAWN_RECORDMAX, &e) == 0, "not waiting for more") ;
    check("request-list-incomplete", one_request(STR("1\0" "1.2.3\0" "4096\0" "a\0" "b\0"), SPAWN_LIST, SPAWN_RECORDMAX, &e) == 0, "not waiting for the end of the list") ;
    check("result-incomplete", one_result(STR("1\0" "0\0" "ok"), &e) == 0, "not waiting for more") ;

    /* too long: whether complete or not, however it arrives */
    char big[5000] ;
    memset(big, 'a', sizeof(big)) ;
    memcpy(big, "1\0" "1.2.3\0" "4096\0", 13) ;
    int x = one_request(big, sizeof(big), SPAWN_ONE, SPAWN_RECORDMAX, &e) ;
    check("request-too-long-incomplete", x == -1 && e == EMSGSIZE, "not refused") ;
    big[4500] = 0 ; big[4999] = 0 ;
    x = one_request(big, sizeof(big), SPAWN_ONE, SPAWN_RECORDMAX, &e) ;
    check("request-too-long-complete", x == -1 && e == EMSGSIZE, "not refused") ;
    x = one_request(big, sizeof(big), SPAWN_ONE, 8192, &e) ;
    check("request-limit-is-the-decoders", x == 1, "refused under a higher limit") ;
    memset(big, 'a', 4500) ;
    memcpy(big, "1\0" "0\0", 4) ;
    x = one_result(big, sizeof(big), &e) ;
    check("result-too-long", x == -1 && e == EMSGSIZE, "not refused") ;
  }

  /* ---- the encoders refuse what could not be decoded ---- */
  {
    size_t before ;
    sa.len = 0 ;
    struct spawn_request r = reqs[0] ;
    r.jobid = "12345678901" ;
    before = sa.len ;
    ok = !spawn_request_put(&sa, &r, SPAWN_ONE) && errno == EINVAL && sa.len == before ;
    r = reqs[0] ; r.jobid = "" ;
    ok &= !spawn_request_put(&sa, &r, SPAWN_ONE) && errno == EINVAL && sa.len == before ;
    check("request-put-bad-jobid", ok, "accepted") ;
    r = lreqs[0] ;
    check("request-put-one-with-three", !spawn_request_put(&sa, &r, SPAWN_ONE) && errno == EINVAL && sa.len == before, "accepted") ;
    r.rcpts = "b@y\0\0d@z" ;
    check("request-put-list-empty-rcpt", !spawn_request_put(&sa, &r, SPAWN_LIST) && errno == EINVAL && sa.len == before, "accepted") ;
    r.nrcpts = 0 ;
    check("request-put-list-none", !spawn_request_put(&sa, &r, SPAWN_LIST) && errno == EINVAL && sa.len == before, "accepted") ;
    check("result-put-bad-jobid", !spawn_result_put(&sa, "", 0, STR("x")) && errno == EINVAL && sa.len == before, "accepted") ;
  }

  /* ---- batches ---- */
  {
    struct spawn_delivery const bd[3] = {
      { .msgid = "1732781234.012345678.4242", .msgoff = 4096, .sender = "s@x", .rcptno = 0, .check = 0 },
      { .msgid = "1.2.3", .msgoff = 7, .sender = "", .rcptno = 12, .check = 1 },
      { .msgid = "4.5.6", .msgoff = 4096, .sender = "t@y", .rcptno = 3, .check = 0 },
    } ;
    static char const wire[] = "7\0" "a@x\0" "1732781234.012345678.4242\0" "4096\0" "s@x\0" "0\0" "0\0"
      "1.2.3\0" "7\0" "\0" "12\0" "1\0" "4.5.6\0" "4096\0" "t@y\0" "3\0" "0\0" "\0" ;
    sa.len = 0 ;
    ok = spawn_batch_put(&sa, "7", "a@x", bd, 3) ;
    check("batch-wire-format", ok && sa.len == sizeof(wire) - 1 && !memcmp(sa.s, wire, sa.len), "bytes differ") ;
    ok = ok && spawn_batch_put(&sa, "8", "b@x", bd + 1, 1) ;
    /* decoded at every split point */
    int allok = ok ;
    for (size_t cut = 0 ; allok && cut <= sa.len ; cut++)
    {
      struct spawn_decoder d = SPAWN_DECODER(SPAWN_BATCHRECORDMAX, SPAWN_BATCH) ;
      struct spawn_batch b ;
      int n = 0 ;
      if (!spawn_feed(&d, sa.s, cut)) allok = 0 ;
      for (int pass = 0 ; pass < 2 && allok ; pass++)
      {
        int r ;
        while ((r = spawn_batch_next(&d, &b)) == 1)
        {
          if (n == 0) allok &= streq(b.jobid, "7") && streq(b.rcpt, "a@x") && b.n == 3
            && streq(b.d[0].msgid, bd[0].msgid) && b.d[0].msgoff == 4096 && streq(b.d[0].sender, "s@x") && !b.d[0].rcptno && !b.d[0].check
            && streq(b.d[1].msgid, "1.2.3") && b.d[1].msgoff == 7 && streq(b.d[1].sender, "") && b.d[1].rcptno == 12 && b.d[1].check
            && streq(b.d[2].sender, "t@y") && b.d[2].rcptno == 3 ;
          else allok &= n == 1 && streq(b.jobid, "8") && b.n == 1 && streq(b.d[0].msgid, "1.2.3") && b.d[0].check ;
          n++ ;
        }
        if (r < 0) allok = 0 ;
        if (!pass && !spawn_feed(&d, sa.s + cut, sa.len - cut)) allok = 0 ;
      }
      allok &= n == 2 ;
      spawn_decoder_free(&d) ;
    }
    check("batch-roundtrip-split-everywhere", allok, "a split changed the result") ;
    struct spawn_delivery many[SPAWN_BATCHMAX + 1] ;
    for (size_t i = 0 ; i <= SPAWN_BATCHMAX ; i++) many[i] = bd[0] ;
    size_t before = sa.len ;
    check("batch-put-bounds", !spawn_batch_put(&sa, "1", "a", many, 0) && !spawn_batch_put(&sa, "1", "a", many, SPAWN_BATCHMAX + 1)
          && !spawn_batch_put(&sa, "", "a", many, 1) && errno == EINVAL && sa.len == before, "accepted") ;
    static char const bad1[] = "1\0" "a\0" "1.2.3\0" "x\0" "s\0" "0\0" "0\0" "\0" ;   /* offset */
    static char const bad2[] = "1\0" "a\0" "1.2.3\0" "1\0" "s\0" "0\0" "2\0" "\0" ;   /* check */
    static char const bad3[] = "1\0" "a\0" "\0" ;                                        /* none */
    char const *bads[3] = { bad1, bad2, bad3 } ;
    size_t badlens[3] = { sizeof bad1 - 1, sizeof bad2 - 1, sizeof bad3 - 1 } ;
    int refused = 1 ;
    for (int i = 0 ; i < 3 ; i++)
    {
      struct spawn_decoder d = SPAWN_DECODER(SPAWN_BATCHRECORDMAX, SPAWN_BATCH) ;
      struct spawn_batch b ;
      refused &= spawn_feed(&d, bads[i], badlens[i]) && spawn_batch_next(&d, &b) < 0 && errno == EPROTO ;
      spawn_decoder_free(&d) ;
    }
    check("batch-malformed-refused", refused, "accepted") ;
  }

  stralloc_free(&sa) ;
  return failed ;
}
