/* banwatch's replay line scanner (linescan.h): newlines and key pairs
 * are found 64 bytes at a time as bit masks (AVX2 or SSE2 as the CPU has
 * them, a byte loop elsewhere and near the end of the text), so a line
 * costs a count-trailing-zeros and its key check a mask test, not a
 * memchr for the newline and another for the literal. */

#include <string.h>

#include "banwatch/linescan.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define LINESCAN_AVX2 1   /* built for the CPUs that have it, chosen at run time */
#endif

size_t linescan_choose (linescan_key *k, char const *lit, size_t len, char const *sample, size_t n)
{
  size_t count[256] = { 0 }, pair[64] = { 0 }, i = 0, j ;
  if (len > 64) len = 64 ;
  for (size_t p = 0 ; p < n ; p++) count[(unsigned char)sample[p]]++ ;
  for (size_t x = 1 ; x < len ; x++)
    if (count[(unsigned char)lit[x]] < count[(unsigned char)lit[i]]) i = x ;
  /* the second byte: the one seen least often at its distance from the
   * first in the sample (bytes of a log are far from independent) */
  for (char const *q = n ? memchr(sample, lit[i], n) : 0 ; q ; q = memchr(q + 1, lit[i], n - (size_t)(q + 1 - sample)))
  {
    size_t at = (size_t)(q - sample) ;
    for (size_t x = 0 ; x < len ; x++)
    {
      size_t o = at + x - i ;   /* wraps when x < i and at < i - x */
      if (x != i && at + x >= i && o < n && sample[o] == lit[x]) pair[x]++ ;
    }
    if (q + 1 == sample + n) break ;
  }
  j = i ;
  for (size_t x = 0 ; x < len ; x++)
  {
    if (x == i || (x > i ? x - i : i - x) > LINESCAN_MAXDIST) continue ;
    if (j == i || pair[x] < pair[j]
     || (pair[x] == pair[j] && count[(unsigned char)lit[x]] < count[(unsigned char)lit[j]])) j = x ;
  }
  k->a = (unsigned char)lit[i < j ? i : j] ;
  k->b = (unsigned char)lit[i < j ? j : i] ;
  k->d = (unsigned char)(i < j ? j - i : i - j) ;
  return i ;
}

int linescan_addkey (linescan_key *keys, unsigned int *nkeys, linescan_key const *k)
{
  for (unsigned int x = 0 ; x < *nkeys ; x++)
    if (keys[x].a == k->a && keys[x].b == k->b && keys[x].d == k->d) return 1 ;
  if (*nkeys >= LINESCAN_MAXKEYS) return 0 ;
  keys[(*nkeys)++] = *k ;
  return 1 ;
}

/* ---- the masks of one 64-byte block at s ----
 * One movemask a vector for the newlines; NULs and key pairs are rare,
 * their masks are made only when some vector holds one.  The vector
 * versions read up to LINESCAN_MAXDIST bytes past the block. */

static void block_bytes (linescan *ls, unsigned int b, char const *s, size_t left)
{
  uint64_t nl = 0, hit = 0, nul = 0 ;
  size_t m = left < 64 ? left : 64 ;
  for (size_t i = 0 ; i < m ; i++)
  {
    if (s[i] == '\n') nl |= (uint64_t)1 << i ;
    if (!s[i]) nul |= (uint64_t)1 << i ;
    for (unsigned int k = 0 ; k < ls->nkeys ; k++)
    {
      linescan_key const *key = ls->key + k ;
      if ((unsigned char)s[i] == key->a && i + key->d < left && (unsigned char)s[i + key->d] == key->b) hit |= (uint64_t)1 << i ;
    }
  }
  ls->nl[b] = nl ; ls->hit[b] = hit ; ls->nul[b] = nul ;
}

#ifdef __SSE2__
static inline __attribute__((always_inline)) void block_sse2 (linescan *ls, unsigned int b, char const *s)
{
#define LOAD(o) _mm_loadu_si128((__m128i const *)(s + (o)))
#define MASK4(v0, v1, v2, v3) ((uint64_t)(uint16_t)_mm_movemask_epi8(v0) | (uint64_t)(uint16_t)_mm_movemask_epi8(v1) << 16 \
  | (uint64_t)(uint16_t)_mm_movemask_epi8(v2) << 32 | (uint64_t)(uint16_t)_mm_movemask_epi8(v3) << 48)
#define ANY4(v0, v1, v2, v3) _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(v0, v1), _mm_or_si128(v2, v3)))
  __m128i const vnl = _mm_set1_epi8('\n'), vzero = _mm_setzero_si128() ;
  __m128i x0 = LOAD(0), x1 = LOAD(16), x2 = LOAD(32), x3 = LOAD(48) ;
  uint64_t hit = 0, nul = 0 ;
  ls->nl[b] = MASK4(_mm_cmpeq_epi8(x0, vnl), _mm_cmpeq_epi8(x1, vnl), _mm_cmpeq_epi8(x2, vnl), _mm_cmpeq_epi8(x3, vnl)) ;
  __m128i z0 = _mm_cmpeq_epi8(x0, vzero), z1 = _mm_cmpeq_epi8(x1, vzero) ;
  __m128i z2 = _mm_cmpeq_epi8(x2, vzero), z3 = _mm_cmpeq_epi8(x3, vzero) ;
  if (ANY4(z0, z1, z2, z3)) nul = MASK4(z0, z1, z2, z3) ;
  for (unsigned int k = 0 ; k < ls->nkeys ; k++)
  {
    unsigned int d = ls->key[k].d ;
    __m128i a = _mm_loadu_si128((__m128i const *)ls->va[k]), c = _mm_loadu_si128((__m128i const *)ls->vb[k]) ;
    __m128i h0 = _mm_and_si128(_mm_cmpeq_epi8(x0, a), _mm_cmpeq_epi8(LOAD(d), c)) ;
    __m128i h1 = _mm_and_si128(_mm_cmpeq_epi8(x1, a), _mm_cmpeq_epi8(LOAD(d + 16), c)) ;
    __m128i h2 = _mm_and_si128(_mm_cmpeq_epi8(x2, a), _mm_cmpeq_epi8(LOAD(d + 32), c)) ;
    __m128i h3 = _mm_and_si128(_mm_cmpeq_epi8(x3, a), _mm_cmpeq_epi8(LOAD(d + 48), c)) ;
    if (ANY4(h0, h1, h2, h3)) hit |= MASK4(h0, h1, h2, h3) ;
  }
  ls->hit[b] = hit ; ls->nul[b] = nul ;
#undef LOAD
#undef MASK4
#undef ANY4
}

static void blocks_sse2 (linescan *ls, unsigned int nb)
{
  for (unsigned int b = 0 ; b < nb ; b++) block_sse2(ls, b, ls->s + ls->blk + 64 * b) ;
}
#endif

#ifdef LINESCAN_AVX2
static inline __attribute__((always_inline, target("avx2"))) void block_avx2 (linescan *ls, unsigned int b, char const *s)
{
#define LOAD(o) _mm256_loadu_si256((__m256i const *)(s + (o)))
#define MASK2(v0, v1) ((uint64_t)(uint32_t)_mm256_movemask_epi8(v0) | (uint64_t)(uint32_t)_mm256_movemask_epi8(v1) << 32)
  __m256i const vnl = _mm256_set1_epi8('\n'), vzero = _mm256_setzero_si256() ;
  __m256i x0 = LOAD(0), x1 = LOAD(32) ;
  uint64_t hit = 0, nul = 0 ;
  ls->nl[b] = MASK2(_mm256_cmpeq_epi8(x0, vnl), _mm256_cmpeq_epi8(x1, vnl)) ;
  __m256i z0 = _mm256_cmpeq_epi8(x0, vzero), z1 = _mm256_cmpeq_epi8(x1, vzero), z = _mm256_or_si256(z0, z1) ;
  if (!_mm256_testz_si256(z, z)) nul = MASK2(z0, z1) ;
  for (unsigned int k = 0 ; k < ls->nkeys ; k++)
  {
    unsigned int d = ls->key[k].d ;
    __m256i a = _mm256_loadu_si256((__m256i const *)ls->va[k]), c = _mm256_loadu_si256((__m256i const *)ls->vb[k]) ;
    __m256i h0 = _mm256_and_si256(_mm256_cmpeq_epi8(x0, a), _mm256_cmpeq_epi8(LOAD(d), c)) ;
    __m256i h1 = _mm256_and_si256(_mm256_cmpeq_epi8(x1, a), _mm256_cmpeq_epi8(LOAD(d + 32), c)) ;
    __m256i h = _mm256_or_si256(h0, h1) ;
    if (!_mm256_testz_si256(h, h)) hit |= MASK2(h0, h1) ;
  }
  ls->hit[b] = hit ; ls->nul[b] = nul ;
#undef LOAD
#undef MASK2
}

static __attribute__((target("avx2"))) void blocks_avx2 (linescan *ls, unsigned int nb)
{
  for (unsigned int b = 0 ; b < nb ; b++) block_avx2(ls, b, ls->s + ls->blk + 64 * b) ;
}
#endif

/* the masks of up to LINESCAN_BLOCKS blocks from blk on; key pairs whose
 * second byte would be past the text are not counted */
static void refill (linescan *ls)
{
  size_t left = ls->n - ls->blk ;
  unsigned int nb = 0 ;
  /* the blocks a vector may read whole, with the bytes after them */
  if (ls->vec && left >= 64 + LINESCAN_MAXDIST)
  {
    size_t whole = (left - LINESCAN_MAXDIST) / 64 ;
    nb = whole < LINESCAN_BLOCKS ? (unsigned int)whole : LINESCAN_BLOCKS ;
#ifdef LINESCAN_AVX2
    if (ls->vec == 2) blocks_avx2(ls, nb) ; else
#endif
#ifdef __SSE2__
    blocks_sse2(ls, nb) ;
#endif
  }
  if (!nb)
  {
    block_bytes(ls, 0, ls->s + ls->blk, left) ;
    nb = 1 ;
  }
  ls->cur = 0 ; ls->nb = nb ;
}

void linescan_init (linescan *ls, char const *s, size_t n, linescan_key const *keys, unsigned int nkeys)
{
  ls->s = s ; ls->n = n ;
  ls->nkeys = nkeys > LINESCAN_MAXKEYS ? LINESCAN_MAXKEYS : nkeys ;
  memcpy(ls->key, keys, ls->nkeys * sizeof *keys) ;
  /* a key the vectors can't read ahead for: every line is a maybe */
  for (unsigned int k = 0 ; k < ls->nkeys ; k++) if (ls->key[k].d > LINESCAN_MAXDIST) ls->nkeys = 0 ;
  for (unsigned int k = 0 ; k < ls->nkeys ; k++)
  {
    memset(ls->va[k], ls->key[k].a, sizeof ls->va[k]) ;
    memset(ls->vb[k], ls->key[k].b, sizeof ls->vb[k]) ;
  }
  ls->vec = 0 ;
#ifdef __SSE2__
  ls->vec = 1 ;
#endif
#ifdef LINESCAN_AVX2
  if (__builtin_cpu_supports("avx2")) ls->vec = 2 ;
#endif
  ls->pos = 0 ; ls->blk = 0 ; ls->hitbefore = 0 ; ls->nulbefore = 0 ;
  ls->cur = ls->nb = 0 ;
}

/* The lines that end in the current block, then on to the next block.
 * A block holds 0 to 64 newlines: the inner loop walks its mask. */
size_t linescan_fill (linescan *ls, linescan_line *out, size_t max)
{
  size_t k = 0 ;
  if (ls->pos >= ls->n) return 0 ;
  if (ls->cur >= ls->nb) refill(ls) ;
  for (;;)
  {
    /* the line started in this block or before it; pos <= blk + 64 */
    unsigned int c = ls->cur ;
    size_t lo = ls->pos > ls->blk ? ls->pos - ls->blk : 0 ;
    uint64_t from = lo < 64 ? ~(uint64_t)0 << lo : 0 ;
    uint64_t m = ls->nl[c] & from, hit = ls->hit[c], nul = ls->nul[c] ;
    while (m)
    {
      unsigned int e = (unsigned int)__builtin_ctzll(m) ;
      uint64_t in = from & (((uint64_t)1 << e) - 1) ;
      out[k].start = ls->pos ;
      out[k].end = ls->blk + e ;
      out[k].maybe = !ls->nkeys || ls->hitbefore || (hit & in) ;
      out[k].nul = ls->nulbefore || (nul & in) ;
      k++ ;
      ls->pos = ls->blk + e + 1 ;
      ls->hitbefore = ls->nulbefore = 0 ;
      from = ~(uint64_t)1 << e ;   /* the bits after e (e < 64) */
      m &= m - 1 ;
      if (k == max) return k ;   /* the rest of m is found again */
    }
    if (hit & from) ls->hitbefore = 1 ;
    if (nul & from) ls->nulbefore = 1 ;
    ls->blk += 64 ;
    if (ls->blk >= ls->n)
    {
      /* the last line, without a newline */
      if (ls->pos < ls->n)
      {
        out[k].start = ls->pos ;
        out[k].end = ls->n ;
        out[k].maybe = !ls->nkeys || ls->hitbefore ;
        out[k].nul = ls->nulbefore ;
        k++ ;
        ls->pos = ls->n ;
      }
      return k ;
    }
    if (++ls->cur >= ls->nb) refill(ls) ;
  }
}
