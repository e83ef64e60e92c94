/* yubin-banwatch: failure counting.  Each jail keeps, per address (or
 * per network: prefix4, prefix6), the newest maxretry failure times; the
 * address is banned when all of them lie within findtime (a true sliding
 * window).  Ban times grow with the address's ban history (bantime.factor,
 * bantime.max).  A recidive jail counts the bans of the other jails. */

#include <string.h>

#include <skalibs/genalloc.h>
#include <skalibs/strerr.h>

#include "exitcodes.h"
#include "banwatch/banwatch.h"

#define TRACK_MAX (1u << 20)   /* addresses counted at once, per jail */

static int ignored (jail const *j, banaddr const *a)
{
  for (size_t i = 0 ; i < genalloc_len(banaddr, &conf.ignore) ; i++)
    if (banaddr_contains(genalloc_s(banaddr, &conf.ignore) + i, a)) return 1 ;
  for (size_t i = 0 ; i < genalloc_len(banaddr, &j->ignore) ; i++)
    if (banaddr_contains(genalloc_s(banaddr, &j->ignore) + i, a)) return 1 ;
  return 0 ;
}

static void counters_sweep (jail *j)
{
  size_t n = genalloc_len(fcount, &j->recs), live = 0 ;
  for (size_t i = 0 ; i < n ; i++)
  {
    fcount *c = genalloc_s(fcount, &j->recs) + i ;
    if (!c->key.family) continue ;
    if (c->n && c->last >= state.now - j->findtime) { live++ ; continue ; }
    aindex_del(&j->ix, &c->key) ;
    c->key.family = 0 ;
    uint32_t idx = i ;
    if (!genalloc_append(uint32_t, &j->freel, &idx)) strerr_diefu1sys(EX_TEMP, "sweep counters") ;
  }
  j->sweep_at = live * 2 > 4096 ? live * 2 : 4096 ;
}

static fcount *counter_get (jail *j, banaddr const *k, uint64_t h, int64_t **ring)
{
  uint32_t v = aindex_get_h(&j->ix, k, h) ;
  uint32_t idx ;
  if (v) idx = v - 1 ;
  else
  {
    if (j->ix.used >= j->sweep_at) counters_sweep(j) ;
    /* a flood of fresh addresses (a whole IPv6 /48 walked /64 by /64)
     * must not take all the memory: past TRACK_MAX live entries, new
     * addresses are not counted until old ones age out */
    if (j->ix.used >= TRACK_MAX) { stats.untracked++ ; return 0 ; }
    if (genalloc_len(uint32_t, &j->freel))
    {
      idx = genalloc_s(uint32_t, &j->freel)[genalloc_len(uint32_t, &j->freel) - 1] ;
      genalloc_setlen(uint32_t, &j->freel, genalloc_len(uint32_t, &j->freel) - 1) ;
    }
    else
    {
      fcount z ;
      memset(&z, 0, sizeof z) ;
      if (!genalloc_append(fcount, &j->recs, &z)
       || !genalloc_readyplus(int64_t, &j->ring, j->maxretry)) strerr_diefu1sys(EX_TEMP, "grow counters") ;
      genalloc_setlen(int64_t, &j->ring, genalloc_len(int64_t, &j->ring) + j->maxretry) ;
      idx = genalloc_len(fcount, &j->recs) - 1 ;
    }
    fcount *c = genalloc_s(fcount, &j->recs) + idx ;
    c->key = *k ; c->n = 0 ; c->last = 0 ;
    aindex_put(&j->ix, k, idx + 1) ;
  }
  *ring = genalloc_s(int64_t, &j->ring) + (size_t)idx * j->maxretry ;
  return genalloc_s(fcount, &j->recs) + idx ;
}

void counter_reset (banaddr const *k)
{
  for (size_t i = 0 ; i < genalloc_len(jail, &conf.jails) ; i++)
  {
    jail *j = JAIL(i) ;
    uint32_t v = aindex_get(&j->ix, k) ;
    if (v) genalloc_s(fcount, &j->recs)[v - 1].n = 0 ;
  }
}

int64_t jail_bantime (jail const *j, banaddr const *k, unsigned int *prior)
{
  hist const *h = hist_find(k) ;
  unsigned int n = 0 ;
  if (h) for (; n < h->n && h->t[n] >= state.now - conf.history_ms ; n++) ;
  *prior = n ;
  double d = (double)j->bantime ;
  for (unsigned int i = 0 ; i < n && d < (double)j->bantime_max ; i++) d *= j->factor ;
  if (d > (double)j->bantime_max) d = (double)j->bantime_max ;
  return (int64_t)d ;
}

/* One failure of address a at time t in jail j.  Counting is a true
 * sliding window: the ring keeps the newest maxretry failure times, and
 * the address is banned when all of them lie within findtime.
 * feedonly: count, never ban (rebuilding recidive state on start). */
void jail_fail (unsigned int jidx, banaddr const *a, int64_t t, int feedonly)
{
  jail *j = JAIL(jidx) ;
  banaddr k = *a ;
  if (ignored(j, a)) { j->nignored++ ; return ; }
  banaddr_mask(&k, k.family == 4 ? j->prefix4 : j->prefix6) ;
  j->nmatch++ ;
  uint64_t h = addr_hash(&k) ;
  uint32_t bv = aindex_get_h(&bantab.banix, &k, h) ;
  ban const *b = bv ? BAN(bv - 1) : 0 ;
  /* already banned: late lines (recidive counts the bans of other jails) */
  if (b && b->until > state.now && (FILTER(j->filter)->type != F_RECIDIVE || b->jail == jidx)) return ;
  int64_t *ring ;
  fcount *c = counter_get(j, &k, h, &ring) ;
  if (!c) return ;
  if (c->n < j->maxretry) ring[c->n++] = t ;
  else
  {
    unsigned int old = 0 ;
    for (unsigned int i = 1 ; i < c->n ; i++) if (ring[i] < ring[old]) old = i ;
    if (t <= ring[old]) return ;      /* older than all we keep */
    ring[old] = t ;
  }
  if (t > c->last) c->last = t ;
  if (c->n < j->maxretry || feedonly) return ;
  for (unsigned int i = 0 ; i < c->n ; i++)
    if (ring[i] < c->last - j->findtime) return ;
  c->n = 0 ;
  unsigned int prior ;
  int64_t dur = jail_bantime(j, &k, &prior) ;
  ban_add(&k, jidx, dur, j->actions, prior) ;
}

void recidive_feed (banaddr const *k, int64_t t)
{
  for (size_t i = 0 ; i < genalloc_len(jail, &conf.jails) ; i++)
    if (FILTER(JAIL(i)->filter)->type == F_RECIDIVE) jail_fail(i, k, t, 0) ;
}

/* recidive counters from the ban history */
void recidive_rebuild (void)
{
  for (size_t r = 0 ; r < genalloc_len(jail, &conf.jails) ; r++)
  {
    if (FILTER(JAIL(r)->filter)->type != F_RECIDIVE) continue ;
    for (size_t i = 0 ; i < genalloc_len(hist, &bantab.hists) ; i++)
    {
      hist const *h = HIST(i) ;
      if (!h->key.family) continue ;
      for (unsigned int k = h->n ; k-- ; )
        if (h->t[k] >= state.now - JAIL(r)->findtime) jail_fail(r, &h->key, h->t[k], 1) ;
    }
  }
}
