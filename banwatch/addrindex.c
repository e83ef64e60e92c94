/* yubin-banwatch: hash tables keyed by address (banaddr -> index+1), for
 * the ban table, the ban history and each jail's failure counters.
 * SipHash-1-3 with a random key: the addresses come from the network, and
 * an attacker must not be able to collide them.  Linear probing, deletion
 * by backward shift. */

#include <stdlib.h>
#include <string.h>

#include <skalibs/random.h>
#include <skalibs/strerr.h>

#include "exitcodes.h"
#include "banwatch/banwatch.h"

static uint64_t hkey[2] ;

void addr_hash_seed (void)
{
  random_buf((char *)hkey, sizeof hkey) ;
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND do { \
  v0 += v1 ; v1 = ROTL(v1, 13) ; v1 ^= v0 ; v0 = ROTL(v0, 32) ; \
  v2 += v3 ; v3 = ROTL(v3, 16) ; v3 ^= v2 ; \
  v0 += v3 ; v3 = ROTL(v3, 21) ; v3 ^= v0 ; \
  v2 += v1 ; v1 = ROTL(v1, 17) ; v1 ^= v2 ; v2 = ROTL(v2, 32) ; } while (0)

uint64_t addr_hash (banaddr const *b)
{
  uint64_t m[3] ;
  memcpy(m, b->a, 16) ;
  m[2] = (uint64_t)b->family | ((uint64_t)b->len << 8) | ((uint64_t)18 << 56) ;
  uint64_t v0 = hkey[0] ^ 0x736f6d6570736575ULL, v1 = hkey[1] ^ 0x646f72616e646f6dULL ;
  uint64_t v2 = hkey[0] ^ 0x6c7967656e657261ULL, v3 = hkey[1] ^ 0x7465646279746573ULL ;
  for (int i = 0 ; i < 3 ; i++) { v3 ^= m[i] ; SIPROUND ; v0 ^= m[i] ; }
  v2 ^= 0xff ;
  SIPROUND ; SIPROUND ; SIPROUND ;
  return v0 ^ v1 ^ v2 ^ v3 ;
}


/* key -> index+1; linear probing, deletion by backward shift */

static int keyeq (banaddr const *x, banaddr const *y)
{
  return !memcmp(x, y, sizeof(banaddr)) ;
}

uint32_t aindex_get_h (aindex const *ix, banaddr const *k, uint64_t h)
{
  if (!ix->used) return 0 ;
  for (size_t i = h & ix->mask ; ix->s[i].val ; i = (i + 1) & ix->mask)
    if (keyeq(&ix->s[i].key, k)) return ix->s[i].val ;
  return 0 ;
}

uint32_t aindex_get (aindex const *ix, banaddr const *k)
{
  return ix->used ? aindex_get_h(ix, k, addr_hash(k)) : 0 ;
}

static void aindex_insert (aslot *s, size_t mask, banaddr const *k, uint32_t v)
{
  size_t i = addr_hash(k) & mask ;
  while (s[i].val) i = (i + 1) & mask ;
  s[i].key = *k ; s[i].val = v ;
}

void aindex_put (aindex *ix, banaddr const *k, uint32_t v)
{
  if (!ix->s || (ix->used + 1) * 4 > (ix->mask + 1) * 3)
  {
    size_t n = ix->s ? (ix->mask + 1) * 2 : 256 ;
    aslot *s = calloc(n, sizeof(aslot)) ;
    if (!s) strerr_diefu1sys(EX_TEMP, "grow a hash table") ;
    if (ix->s)
    {
      for (size_t i = 0 ; i <= ix->mask ; i++)
        if (ix->s[i].val) aindex_insert(s, n - 1, &ix->s[i].key, ix->s[i].val) ;
      free(ix->s) ;
    }
    ix->s = s ; ix->mask = n - 1 ;
  }
  aindex_insert(ix->s, ix->mask, k, v) ;
  ix->used++ ;
}

void aindex_del (aindex *ix, banaddr const *k)
{
  size_t i ;
  if (!ix->s) return ;
  for (i = addr_hash(k) & ix->mask ; ix->s[i].val ; i = (i + 1) & ix->mask)
    if (keyeq(&ix->s[i].key, k)) break ;
  if (!ix->s[i].val) return ;
  for (size_t j = i ;;)
  {
    j = (j + 1) & ix->mask ;
    if (!ix->s[j].val) break ;
    size_t h = addr_hash(&ix->s[j].key) & ix->mask ;
    if ((j > i && (h <= i || h > j)) || (j < i && (h <= i && h > j)))
    {
      ix->s[i] = ix->s[j] ;
      i = j ;
    }
  }
  ix->s[i].val = 0 ;
  ix->used-- ;
}
