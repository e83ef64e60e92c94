/* A binary min-heap of timers: see heap.h. */

#include "heap.h"

static void swap (struct heapent *a, struct heapent *b)
{
  struct heapent t = *a ;
  *a = *b ;
  *b = t ;
}

int heap_push (genalloc *g, int64_t when, uint32_t idx, uint32_t gen)
{
  struct heapent e = { .when = when, .idx = idx, .gen = gen } ;
  if (!genalloc_append(struct heapent, g, &e)) return 0 ;
  struct heapent *h = genalloc_s(struct heapent, g) ;
  size_t k = genalloc_len(struct heapent, g) - 1 ;
  while (k)
  {
    size_t p = (k - 1) / 2 ;
    if (h[p].when <= h[k].when) break ;
    swap(h + p, h + k) ;
    k = p ;
  }
  return 1 ;
}

struct heapent const *heap_top (genalloc const *g)
{
  return genalloc_len(struct heapent, g) ? genalloc_s(struct heapent, g) : 0 ;
}

size_t heap_len (genalloc const *g)
{
  return genalloc_len(struct heapent, g) ;
}

struct heapent heap_pop (genalloc *g)
{
  struct heapent *h = genalloc_s(struct heapent, g) ;
  size_t n = genalloc_len(struct heapent, g) - 1 ;
  struct heapent top = h[0] ;
  h[0] = h[n] ;
  genalloc_setlen(struct heapent, g, n) ;
  size_t k = 0 ;
  for (;;)
  {
    size_t l = 2 * k + 1, s = k ;
    if (l < n && h[l].when < h[s].when) s = l ;
    if (l + 1 < n && h[l + 1].when < h[s].when) s = l + 1 ;
    if (s == k) break ;
    swap(h + s, h + k) ;
    k = s ;
  }
  return top ;
}
