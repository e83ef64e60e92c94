/* A min-heap of timers on a genalloc, shared by yubin-qmgr (retries) and
 * yubin-banwatch (ban expiry).  An entry names its object by index and
 * generation: an object that changed since (its gen moved on) is a stale
 * entry, dropped by the caller when it reaches the top (lazy deletion, so
 * nothing is ever searched for in the heap). */
#ifndef YUBIN_HEAP_H
#define YUBIN_HEAP_H

#include <stddef.h>
#include <stdint.h>
#include <skalibs/genalloc.h>

struct heapent
{
  int64_t when ;     /* the key: a time in ms */
  uint32_t idx ;     /* the object's index in its owner's table */
  uint32_t gen ;     /* the object's generation when pushed */
} ;

/* Add an entry.  Returns 1, or 0 on allocation failure (heap unchanged). */
extern int heap_push (genalloc *h, int64_t when, uint32_t idx, uint32_t gen) ;
/* The earliest entry, or NULL when the heap is empty. */
extern struct heapent const *heap_top (genalloc const *h) ;
/* Remove and return the earliest entry; the heap must not be empty. */
extern struct heapent heap_pop (genalloc *h) ;
extern size_t heap_len (genalloc const *h) ;

#endif
