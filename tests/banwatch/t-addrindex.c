/* Unit tests for banwatch/addrindex.c: the address hash table (growth,
 * lookup, deletion by backward shift).  Prints "PASS name" or
 * "FAIL name: why" per case. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "banwatch/banwatch.h"

static int failed ;

static void result (char const *name, int ok, char const *why)
{
  if (ok) printf("PASS %s\n", name) ;
  else { printf("FAIL %s: %s\n", name, why) ; failed = 1 ; }
}

static banaddr addr4 (unsigned int i)
{
  banaddr b = BANADDR_ZERO ;
  b.family = 4 ; b.len = 32 ;
  b.a[0] = 10 ; b.a[1] = i >> 16 ; b.a[2] = i >> 8 ; b.a[3] = i ;
  return b ;
}

#define N 20000

int main (void)
{
  aindex ix = AINDEX_ZERO ;
  char why[128] = "" ;
  int ok = 1 ;
  addr_hash_seed() ;

  result("empty-get", aindex_get(&ix, &(banaddr){ 4, 32, { 1 } }) == 0, "found in an empty table") ;

  for (unsigned int i = 0 ; i < N ; i++) { banaddr b = addr4(i) ; aindex_put(&ix, &b, i + 1) ; }
  for (unsigned int i = 0 ; i < N && ok ; i++)
  {
    banaddr b = addr4(i) ;
    if (aindex_get(&ix, &b) != i + 1) { snprintf(why, sizeof why, "entry %u lost after growth", i) ; ok = 0 ; }
  }
  result("put-get-grow", ok && ix.used == N, ok ? "used count wrong" : why) ;

  ok = 1 ;
  for (unsigned int i = 0 ; i < N ; i += 2) { banaddr b = addr4(i) ; aindex_del(&ix, &b) ; }
  for (unsigned int i = 0 ; i < N && ok ; i++)
  {
    banaddr b = addr4(i) ;
    uint32_t want = i % 2 ? i + 1 : 0 ;
    if (aindex_get(&ix, &b) != want) { snprintf(why, sizeof why, "entry %u: got %u, want %u", i, aindex_get(&ix, &b), want) ; ok = 0 ; }
  }
  result("delete-half", ok && ix.used == N / 2, ok ? "used count wrong" : why) ;

  {
    banaddr b = addr4(N + 5) ;
    size_t before = ix.used ;
    aindex_del(&ix, &b) ;
    result("delete-absent", ix.used == before, "used count changed") ;
  }

  {
    /* same bytes, other prefix length or family: other keys */
    banaddr a = addr4(1), b = addr4(1), c = addr4(1) ;
    b.len = 24 ; c.family = 6 ;
    result("key-is-family-and-length", aindex_get(&ix, &a) == 2 && !aindex_get(&ix, &b) && !aindex_get(&ix, &c),
      "a key matched another prefix length or family") ;
  }

  ok = 1 ;
  for (unsigned int i = 1 ; i < N ; i += 2) { banaddr b = addr4(i) ; aindex_del(&ix, &b) ; }
  for (unsigned int i = 0 ; i < N && ok ; i++) { banaddr b = addr4(i) ; if (aindex_get(&ix, &b)) ok = 0 ; }
  result("delete-all", ok && ix.used == 0, "entries left") ;

  free(ix.s) ;
  return failed ;
}
