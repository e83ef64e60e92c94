/* yubin-banwatch: the ban table (one entry per banned address or
 * network, found through an address index), the history of past bans
 * (growing ban times, recidive), expiry on the shared timer heap
 * (common/heap.h, lazy deletion by generation), and what a ban or an unban
 * says (a log line, or in replay mode a line on stdout).  Also the clock
 * (state) and the statistics, which every module reads. */

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <skalibs/buffer.h>
#include <skalibs/genalloc.h>
#include <skalibs/strerr.h>

#include "exitcodes.h"
#include "heap.h"
#include "ylog.h"
#include "banwatch/banwatch.h"

struct bantable bantab =
{
  .bans = GENALLOC_ZERO, .banfree = GENALLOC_ZERO, .banix = AINDEX_ZERO, .nactive = 0,
  .hists = GENALLOC_ZERO, .histfree = GENALLOC_ZERO, .histix = AINDEX_ZERO,
  .heap = GENALLOC_ZERO,
} ;
struct state state = { .now = 0, .wallnow = 0, .replaying = 0 } ;
struct stats stats ;

size_t fmt_secs (char *s, int64_t ms)
{
  return (size_t)snprintf(s, 24, "%lld", (long long)((ms + 999) / 1000)) ;
}

void fmt_iso (char *s, int64_t ms)
{
  time_t t = (time_t)(ms / 1000) ;
  struct tm tm ;
  if (!gmtime_r(&t, &tm)) { strcpy(s, "?") ; return ; }
  strftime(s, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) ;
}

int64_t ceil_secs (int64_t ms)
{
  int64_t s = (ms + 999) / 1000 ;
  return s < 1 ? 1 : s ;
}

ban *ban_find (banaddr const *k)
{
  uint32_t v = aindex_get(&bantab.banix, k) ;
  return v ? BAN(v - 1) : 0 ;
}

hist *hist_find (banaddr const *k)
{
  uint32_t v = aindex_get(&bantab.histix, k) ;
  return v ? HIST(v - 1) : 0 ;
}

/* A slot of table (elements of size bytes): the last freed one, or a new
 * zeroed one at the end.  Returns its index. */
static uint32_t slot_take (genalloc *freelist, genalloc *table, size_t size, char const *what)
{
  size_t nfree = genalloc_len(uint32_t, freelist) ;
  if (nfree)
  {
    uint32_t idx = genalloc_s(uint32_t, freelist)[nfree - 1] ;
    genalloc_setlen(uint32_t, freelist, nfree - 1) ;
    return idx ;
  }
  if (!stralloc_readyplus(table, size)) strerr_diefu1sys(EX_TEMP, what) ;
  memset(table->s + table->len, 0, size) ;
  table->len += size ;
  return (uint32_t)(table->len / size - 1) ;
}

hist *hist_get (banaddr const *k)
{
  hist *h = hist_find(k) ;
  if (h) return h ;
  uint32_t idx = slot_take(&bantab.histfree, &bantab.hists, sizeof(hist), "grow the history") ;
  h = HIST(idx) ;
  memset(h, 0, sizeof *h) ;
  h->key = *k ;
  aindex_put(&bantab.histix, k, idx + 1) ;
  return h ;
}

void hist_add (hist *h, int64_t t)
{
  memmove(h->t + 1, h->t, (HISTN - 1) * sizeof(int64_t)) ;
  h->t[0] = t ;
  if (h->n < HISTN) h->n++ ;
}

/* forget history older than history_ms */
void hist_sweep (void)
{
  for (size_t i = 0 ; i < genalloc_len(hist, &bantab.hists) ; i++)
  {
    hist *h = HIST(i) ;
    if (!h->key.family) continue ;
    while (h->n && h->t[h->n - 1] < state.now - conf.history_ms) h->n-- ;
    if (h->n) continue ;
    aindex_del(&bantab.histix, &h->key) ;
    h->key.family = 0 ;
    uint32_t idx = i ;
    if (!genalloc_append(uint32_t, &bantab.histfree, &idx)) strerr_diefu1sys(EX_TEMP, "sweep the history") ;
  }
}

char const *jail_name (unsigned int j)
{
  return j == JAIL_MANUAL ? "manual" : JAIL(j)->name ;
}

void ban_push (ban const *b)
{
  if (!heap_push(&bantab.heap, b->until, (uint32_t)(b - BAN(0)), b->gen))
    strerr_diefu1sys(EX_TEMP, "grow the expiry heap") ;
}

/* drop stale heap tops; returns the next expiry, or -1 */
int64_t bans_next (void)
{
  struct heapent const *h ;
  while ((h = heap_top(&bantab.heap)))
  {
    ban const *b = BAN(h->idx) ;
    if (b->live && b->gen == h->gen && b->until == h->when) return h->when ;
    (void)heap_pop(&bantab.heap) ;
  }
  return -1 ;
}

void out (char const *s)
{
  if (buffer_puts(buffer_1, s) < 0) strerr_diefu1sys(EX_TEMP, "write to stdout") ;
}

static void say_ban (char const *verb, ban const *b, int64_t dur, unsigned int prior)
{
  char a[BANADDR_FMT], d[24], c[16] ;
  banaddr_fmt(a, &b->key) ;
  if (state.replaying)
  {
    char t[32] ;
    fmt_iso(t, state.now) ;
    if (!strcmp(verb, "ban"))
    {
      fmt_secs(d, dur) ;
      out("ban ") ; out(a) ; out(" jail=") ; out(jail_name(b->jail)) ;
      out(" bantime=") ; out(d) ; out("s at=") ; out(t) ; out("\n") ;
    }
    else { out("unban ") ; out(a) ; out(" at=") ; out(t) ; out("\n") ; }
    return ;
  }
  if (!strcmp(verb, "ban"))
  {
    fmt_secs(d, dur) ;
    snprintf(c, sizeof c, "%u", prior + 1) ;
    ylog("ban", "ip", a, "jail", jail_name(b->jail), "bantime", d, "count", c, (char *)0) ;
  }
  else ylog(verb, "ip", a, "jail", jail_name(b->jail), (char *)0) ;
}

/* a new entry in the ban table, nothing else */
ban *ban_insert (banaddr const *k, int64_t start, int64_t until, uint32_t acts, unsigned int jidx)
{
  uint32_t idx = slot_take(&bantab.banfree, &bantab.bans, sizeof(ban), "grow the ban table") ;
  ban *b = BAN(idx) ;
  b->key = *k ; b->start = start ; b->until = until ; b->actions = acts ;
  b->jail = jidx ; b->live = 1 ; b->gen++ ;
  aindex_put(&bantab.banix, k, idx + 1) ;
  bantab.nactive++ ;
  ban_push(b) ;
  return b ;
}

/* forget a ban, nothing else */
void ban_drop (ban *b)
{
  aindex_del(&bantab.banix, &b->key) ;
  b->live = 0 ;
  b->gen++ ;
  bantab.nactive-- ;
  uint32_t idx = b - BAN(0) ;
  if (!genalloc_append(uint32_t, &bantab.banfree, &idx)) strerr_diefu1sys(EX_TEMP, "grow the ban table") ;
}

/* ban key for dur ms from jail (or JAIL_MANUAL with the given actions) */
void ban_add (banaddr const *k, unsigned int jidx, int64_t dur, uint32_t acts, unsigned int prior)
{
  int64_t until = state.now + dur ;
  ban *b = ban_find(k) ;
  if (b && b->until >= until)
  {
    uint32_t missing = acts & ~b->actions ;
    if (missing) { b->actions |= missing ; actions_ban(b, missing, 0) ; }
    return ;
  }
  if (b)
  {
    b->until = until ;
    b->jail = jidx ;
    b->gen++ ;
    b->actions |= acts ;
    ban_push(b) ;
    journal_ban(b) ;
    actions_ban(b, b->actions, 1) ;
  }
  else
  {
    b = ban_insert(k, state.now, until, acts, jidx) ;
    journal_ban(b) ;
    actions_ban(b, acts, 0) ;
  }
  stats.bans++ ;
  if (jidx != JAIL_MANUAL) JAIL(jidx)->nbans++ ;
  say_ban("ban", b, dur, prior) ;
  hist_add(hist_get(k), state.now) ;
  if (jidx == JAIL_MANUAL || FILTER(JAIL(jidx)->filter)->type != F_RECIDIVE)
    recidive_feed(k, state.now) ;
}

void ban_remove (ban *b, char const *why)
{
  actions_unban(b) ;
  journal_unban(&b->key) ;
  say_ban(why, b, 0, 0) ;
  ban_drop(b) ;
  stats.unbans++ ;
}

void bans_expire (void)
{
  for (;;)
  {
    int64_t t = bans_next() ;
    if (t < 0 || t > state.now) break ;
    struct heapent e = heap_pop(&bantab.heap) ;
    ban_remove(BAN(e.idx), "unban") ;
  }
}
