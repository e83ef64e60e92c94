/* yubin-banwatch: the journal, <confdir>/journal.  One line per ban and
 * unban, appended and synced once per round; compacted on start and when
 * it grows; history lines keep what growing ban times and recidive need,
 * and at stop the failure counts still in their window are saved:
 *   B start until actions jail key     U time key
 *   H t,t,t key                        F jail t,t,t key
 * Loaded on start, before anything else happens. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/djbunix.h>
#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>

#include "exitcodes.h"
#include "banwatch/banwatch.h"

static char *journal_path ;
static int journal_fd = -1 ;
static stralloc jbuf = STRALLOC_ZERO ;   /* records not yet written */
static uint64_t journal_size = 0, journal_base = 0 ;

static int cat_key (stralloc *sa, banaddr const *k)
{
  char a[BANADDR_FMT] ;
  return stralloc_catb(sa, a, banaddr_fmt(a, k)) ;
}

static int cat_i64 (stralloc *sa, int64_t v)
{
  char tmp[24] ;
  return stralloc_catb(sa, tmp, (size_t)snprintf(tmp, sizeof tmp, "%lld", (long long)v)) ;
}

static int cat_banrec (stralloc *sa, ban const *b)
{
  return stralloc_catb(sa, "B ", 2) && cat_i64(sa, b->start) && stralloc_catb(sa, " ", 1)
      && cat_i64(sa, b->until) && stralloc_catb(sa, " ", 1) && cat_actions(sa, b->actions)
      && stralloc_catb(sa, " ", 1) && stralloc_cats(sa, jail_name(b->jail))
      && stralloc_catb(sa, " ", 1) && cat_key(sa, &b->key) && stralloc_catb(sa, "\n", 1) ;
}

void journal_ban (ban const *b)
{
  if (state.replaying) return ;
  if (!cat_banrec(&jbuf, b)) strerr_diefu1sys(EX_TEMP, "write the journal") ;
}

void journal_unban (banaddr const *k)
{
  if (state.replaying) return ;
  if (!stralloc_catb(&jbuf, "U ", 2) || !cat_i64(&jbuf, state.now) || !stralloc_catb(&jbuf, " ", 1)
   || !cat_key(&jbuf, k) || !stralloc_catb(&jbuf, "\n", 1)) strerr_diefu1sys(EX_TEMP, "write the journal") ;
}

void journal_compact (void)
{
  stralloc sa = STRALLOC_ZERO ;
  hist_sweep() ;
  if (!stralloc_cats(&sa, "# yubin-banwatch journal (B start until actions jail key, U time key, H times key)\n"))
    strerr_diefu1sys(EX_TEMP, "compact the journal") ;
  for (size_t i = 0 ; i < genalloc_len(hist, &bantab.hists) ; i++)
  {
    hist const *h = HIST(i) ;
    if (!h->key.family || !h->n) continue ;
    if (!stralloc_catb(&sa, "H ", 2)) strerr_diefu1sys(EX_TEMP, "compact the journal") ;
    for (unsigned int k = h->n ; k-- ; )
      if (!cat_i64(&sa, h->t[k]) || !stralloc_catb(&sa, k ? "," : " ", 1)) strerr_diefu1sys(EX_TEMP, "compact the journal") ;
    if (!cat_key(&sa, &h->key) || !stralloc_catb(&sa, "\n", 1)) strerr_diefu1sys(EX_TEMP, "compact the journal") ;
  }
  for (size_t i = 0 ; i < genalloc_len(ban, &bantab.bans) ; i++)
    if (BAN(i)->live && !cat_banrec(&sa, BAN(i))) strerr_diefu1sys(EX_TEMP, "compact the journal") ;
  if (!openwritenclose_suffix_sync(journal_path, sa.s, sa.len, ".tmp"))
    strerr_diefu2sys(EX_TEMP, "write ", journal_path) ;
  if (journal_fd >= 0) fd_close(journal_fd) ;
  journal_fd = openc_append(journal_path) ;
  if (journal_fd < 0) strerr_diefu2sys(EX_TEMP, "open ", journal_path) ;
  journal_size = journal_base = sa.len ;
  stralloc_free(&sa) ;
}

void journal_flush (void)
{
  if (!jbuf.len) return ;
  if (allwrite(journal_fd, jbuf.s, jbuf.len) < jbuf.len || fd_sync(journal_fd) < 0)
    strerr_warnwu2sys("write ", journal_path) ;
  journal_size += jbuf.len ;
  jbuf.len = 0 ;
  if (journal_size > 65536 && journal_size > 4 * journal_base) journal_compact() ;
}

static uint32_t actions_byname (char *list)
{
  uint32_t acts = 0 ;
  for (char *p = strtok(list, ",") ; p ; p = strtok(0, ","))
  {
    unsigned int a = action_find(p) ;
    if (a != (unsigned int)-1) acts |= (uint32_t)1 << a ;
  }
  return acts ;
}

static int scan_i64 (char const *s, int64_t *v)
{
  char *end ;
  errno = 0 ;
  long long x = strtoll(s, &end, 10) ;
  if (!*s || *end || errno) return 0 ;
  *v = x ;
  return 1 ;
}

typedef struct fsaved_s fsaved ;
struct fsaved_s { banaddr key ; unsigned int jail ; int64_t t ; } ;
static genalloc fsaved_list = GENALLOC_ZERO ;   /* fsaved */

/* at stop: the failures still counting, so a restart does not forget them */
static void counters_save (void)
{
  for (size_t i = 0 ; i < genalloc_len(jail, &conf.jails) ; i++)
  {
    jail const *j = JAIL(i) ;
    if (FILTER(j->filter)->type == F_RECIDIVE) continue ;
    for (size_t r = 0 ; r < genalloc_len(fcount, &j->recs) ; r++)
    {
      fcount const *c = genalloc_s(fcount, &j->recs) + r ;
      int64_t const *ring = genalloc_s(int64_t, &j->ring) + r * j->maxretry ;
      int first = 1 ;
      if (!c->key.family || !c->n || c->last < state.now - j->findtime) continue ;
      if (!stralloc_catb(&jbuf, "F ", 2) || !stralloc_cats(&jbuf, j->name) || !stralloc_catb(&jbuf, " ", 1))
        strerr_diefu1sys(EX_TEMP, "write the journal") ;
      for (unsigned int k = 0 ; k < c->n ; k++)
      {
        if (ring[k] < state.now - j->findtime) continue ;
        if ((!first && !stralloc_catb(&jbuf, ",", 1)) || !cat_i64(&jbuf, ring[k])) strerr_diefu1sys(EX_TEMP, "write the journal") ;
        first = 0 ;
      }
      if (!stralloc_catb(&jbuf, " ", 1) || !cat_key(&jbuf, &c->key) || !stralloc_catb(&jbuf, "\n", 1))
        strerr_diefu1sys(EX_TEMP, "write the journal") ;
    }
  }
}

void counters_restore (void)
{
  fsaved const *f = genalloc_s(fsaved, &fsaved_list) ;
  for (size_t i = 0 ; i < genalloc_len(fsaved, &fsaved_list) ; i++)
    if (f[i].t >= state.now - JAIL(f[i].jail)->findtime) jail_fail(f[i].jail, &f[i].key, f[i].t, 1) ;
  genalloc_free(fsaved, &fsaved_list) ;
}

void journal_load (void)
{
  stralloc sa = STRALLOC_ZERO ;
  unsigned int lineno = 0, bad = 0 ;
  journal_path = confpath("journal") ;
  if (!openslurpclose(&sa, journal_path))
  {
    if (errno == ENOENT) return ;
    strerr_diefu2sys(EX_TEMP, "read ", journal_path) ;
  }
  if (!stralloc_0(&sa)) strerr_diefu1sys(EX_TEMP, "read the journal") ;
  for (char *p = sa.s ; *p ; )
  {
    char *nl = strchr(p, '\n'), *w[7] ;
    unsigned int n = 0 ;
    if (!nl) break ;   /* a torn last record */
    *nl = 0 ;
    lineno++ ;
    for (char *q = strtok(p, " ") ; q && n < 7 ; q = strtok(0, " ")) w[n++] = q ;
    p = nl + 1 ;
    if (!n || w[0][0] == '#') continue ;
    banaddr k ;
    int64_t t1, t2 ;
    if (w[0][0] == 'B' && n == 6 && scan_i64(w[1], &t1) && scan_i64(w[2], &t2)
     && banaddr_scancidr(&k, w[5], strlen(w[5])))
    {
      uint32_t acts = actions_byname(w[3]) ;
      unsigned int j = jail_byname(w[4]) ;
      ban *b = ban_find(&k) ;
      if (!b) ban_insert(&k, t1, t2, acts, j) ;
      else if (t2 > b->until)
      {
        b->until = t2 ; b->start = t1 ; b->jail = j ; b->actions |= acts ; b->gen++ ;
        ban_push(b) ;
      }
      hist *h = hist_get(&k) ;
      if (!h->n || h->t[0] < t1) hist_add(h, t1) ;
    }
    else if (w[0][0] == 'U' && n == 3 && scan_i64(w[1], &t1) && banaddr_scancidr(&k, w[2], strlen(w[2])))
    {
      ban *b = ban_find(&k) ;
      if (b) ban_drop(b) ;
    }
    else if (w[0][0] == 'F' && n == 4 && banaddr_scancidr(&k, w[3], strlen(w[3])))
    {
      /* failure counts saved at the last stop: counted again once the
       * bans are known */
      unsigned int j = jail_byname(w[1]) ;
      if (j == JAIL_MANUAL) continue ;
      for (char *q = strtok(w[2], ",") ; q ; q = strtok(0, ","))
      {
        fsaved f = { k, j, 0 } ;
        if (scan_i64(q, &f.t) && !genalloc_append(fsaved, &fsaved_list, &f)) strerr_diefu1sys(EX_TEMP, "read the journal") ;
      }
    }
    else if (w[0][0] == 'H' && n == 3 && banaddr_scancidr(&k, w[2], strlen(w[2])))
    {
      hist *h = hist_get(&k) ;
      for (char *q = strtok(w[1], ",") ; q ; q = strtok(0, ","))
        if (scan_i64(q, &t1) && (!h->n || h->t[0] < t1)) hist_add(h, t1) ;
    }
    else bad++ ;
  }
  stralloc_free(&sa) ;
  if (bad)
  {
    char tmp[16] ;
    snprintf(tmp, sizeof tmp, "%u", bad) ;
    strerr_warnw("ignored ", tmp, " malformed lines in ", journal_path) ;
  }
  /* bans that ran out while we were down */
  for (size_t i = 0 ; i < genalloc_len(ban, &bantab.bans) ; i++)
    if (BAN(i)->live && BAN(i)->until <= state.now) ban_drop(BAN(i)) ;
}

/* at stop: what is pending, and the failures still counting */
void journal_stop (void)
{
  journal_flush() ;
  counters_save() ;
  if (jbuf.len && (allwrite(journal_fd, jbuf.s, jbuf.len) < jbuf.len || fd_sync(journal_fd) < 0))
    strerr_warnwu2sys("write ", journal_path) ;
}
