/* t-heap: common/heap.c: entries come out in time order, whatever order
 * they went in, with duplicates and interleaved pushes and pops. */

#include <stdio.h>
#include <stdlib.h>

#include "heap.h"

static int failed ;

static void check (char const *name, int ok)
{
  printf("%s %s\n", ok ? "PASS" : "FAIL", name) ;
  if (!ok) failed = 1 ;
}

int main (void)
{
  genalloc h = GENALLOC_ZERO ;
  check("heap-empty", !heap_top(&h) && !heap_len(&h)) ;

  /* 1000 pseudo-random keys with repeats, popped in order */
  unsigned int seed = 12345 ;
  int ok = 1 ;
  for (uint32_t i = 0 ; i < 1000 ; i++)
  {
    seed = seed * 1103515245u + 12345u ;
    ok &= heap_push(&h, (int64_t)(seed >> 16) % 100 - 50, i, i * 2) ;
  }
  check("heap-push", ok && heap_len(&h) == 1000) ;
  int64_t last = INT64_MIN ;
  int sorted = 1, gens = 1 ;
  while (heap_len(&h))
  {
    struct heapent e = heap_pop(&h) ;
    if (e.when < last) sorted = 0 ;
    if (e.gen != e.idx * 2) gens = 0 ;
    last = e.when ;
  }
  check("heap-pop-order", sorted) ;
  check("heap-entry-intact", gens) ;

  /* interleaved: the top is always the minimum of what is inside */
  int64_t keys[] = { 5, 3, 9, 3, 1, 7 } ;
  for (size_t i = 0 ; i < 6 ; i++) ok &= heap_push(&h, keys[i], (uint32_t)i, 0) ;
  struct heapent a = heap_pop(&h) ;
  ok &= heap_push(&h, 2, 6, 0) ;
  struct heapent b = heap_pop(&h), c = heap_pop(&h) ;
  check("heap-interleaved", ok && a.when == 1 && b.when == 2 && c.when == 3 && heap_top(&h)->when == 3) ;
  genalloc_free(struct heapent, &h) ;
  return failed ;
}
