/* yubin-banwatch's private header: the types and the state its modules
 * share, and what each module offers the others.
 *
 *   yubin-banwatch.c  main, the daemon's event loop, replay mode (-r)
 *   config.c     banwatch.conf, filter.d/NAME.conf, the built-in filters
 *   addrindex.c  address hash tables (SipHash-1-3, random key)
 *   bans.c       the ban table, ban history, expiry; the clock, statistics
 *   jail.c       failure counting per jail, ban times, recidive
 *   lines.c      one log line offered to the jails; the line reader
 *   journal.c    <confdir>/journal: bans, history and failure counts
 *                across restarts
 *   actions.c    nftables, tcprules and exec actions
 *   sources.c    stdin and log files followed with inotify; positions
 *   ctlsock.c    the control socket that yubin-banctl talks to
 *   banparse.c   pure parsing and matching (its own header, banparse.h)
 *   banre.c      the lazy DFA that banparse runs patterns with (banre.h)
 *   linescan.c   replay's line scanner: lines that may hold a literal
 *                (its own header, linescan.h)
 *
 * The state lives in four structs: conf (what banwatch.conf says, with
 * the jails' counters), bantab (bans, history, expiry heap), state (the
 * clock and the mode) and stats (counters for yubin-banctl stats).  State
 * that only one module uses is static in that module. */
#ifndef YUBIN_BANWATCH_H
#define YUBIN_BANWATCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <skalibs/genalloc.h>
#include <skalibs/iopause.h>
#include <skalibs/stralloc.h>

#include "banwatch/banparse.h"

#define MAXJAILS 64
#define MAXACTIONS 32
#define READBUF 65536
#define HISTN 8

/* ---- addrindex.c: banaddr -> index+1, linear probing ---- */

typedef struct aslot_s aslot ;
struct aslot_s { banaddr key ; uint32_t val ; } ;
typedef struct aindex_s aindex ;
struct aindex_s { aslot *s ; size_t mask ; size_t used ; } ;
#define AINDEX_ZERO { 0, 0, 0 }

/* a random hash key, once, before any table is used */
extern void addr_hash_seed (void) ;
extern uint64_t addr_hash (banaddr const *) ;
extern uint32_t aindex_get_h (aindex const *, banaddr const *, uint64_t) ;
extern uint32_t aindex_get (aindex const *, banaddr const *) ;
extern void aindex_put (aindex *, banaddr const *, uint32_t) ;
extern void aindex_del (aindex *, banaddr const *) ;

/* ---- config.c: the configuration ---- */

enum { F_KV, F_REGEX, F_RECIDIVE } ;

typedef struct evsel_s evsel ;
struct evsel_s { char prog[65] ; char verb[65] ; char key[33] ; char val[65] ; size_t proglen, verblen ; } ;  /* "" = any */

typedef struct filter_s filter ;
struct filter_s
{
  char const *name ;
  int type ;
  int inl ;         /* a jail's own patterns: not found by name */
  genalloc ev ;     /* evsel (F_KV) */
  genalloc fail ;   /* banpat */
  genalloc ign ;    /* banpat */
} ;

enum { A_NFT, A_TCPRULES, A_EXEC } ;

typedef struct action_s action ;
struct action_s
{
  char const *name ;
  int type ;
  /* nft */
  char const *nft ;
  char const *table ;
  char const *chain ;
  char const *hook ;
  int priority ;
  char const *verdict ;
  /* tcprules */
  char const *tcprules ;
  char *cdb ;
  char *cdbtmp ;
  char *list ;
  char *base ;
  int basewd ;          /* inotify on the directory of base */
  /* exec */
  char **argv ;
  /* runtime */
  pid_t pid ;
  int64_t started ;
  int dirty ;
  stralloc pending ;    /* nft: batch text */
  uint64_t runs, fails ;
  unsigned char have4[33], have6[129] ;  /* nft sets made */
} ;

typedef struct fcount_s fcount ;
struct fcount_s
{
  banaddr key ;
  uint16_t n ;        /* failures held in the ring */
  int64_t last ;      /* newest failure */
} ;

typedef struct jail_s jail ;
struct jail_s
{
  char const *name ;
  unsigned int filter ;
  unsigned int maxretry, prefix4, prefix6 ;
  int64_t findtime, bantime, bantime_max ;
  double factor ;
  genalloc ignore ;     /* banaddr */
  uint32_t actions ;    /* bit i: ACTION(i) */
  genalloc logpaths ;   /* char *: "-" is stdin */
  /* failure counters: index -> fcount, and maxretry stamps per record */
  aindex ix ;
  genalloc recs ;       /* fcount */
  genalloc ring ;       /* int64_t, maxretry per record */
  genalloc freel ;      /* uint32_t: free records */
  size_t sweep_at ;
  /* counters */
  uint64_t nmatch, nignored, nbans, nbadhost ;
} ;
#define JAIL_MANUAL 0xffff

struct config
{
  char const *confdir ;
  genalloc ignore ;          /* banaddr: [global] ignoreip */
  int64_t history_ms ;       /* [global] history */
  int64_t manual_bantime ;   /* [global] bantime, for yubin-banctl ban */
  int start_at_end ;         /* [global] start */
  size_t maxline ;           /* [global] maxline */
  genalloc filters ;         /* filter */
  genalloc actions ;         /* action */
  genalloc jails ;           /* jail */
} ;
extern struct config conf ;
#define FILTER(i) (genalloc_s(filter, &conf.filters) + (i))
#define ACTION(i) (genalloc_s(action, &conf.actions) + (i))
#define JAIL(i) (genalloc_s(jail, &conf.jails) + (i))

/* read conf.confdir/banwatch.conf (and filter.d) into conf; dies with
 * file:line: reason on a mistake */
extern void conf_load (void) ;
/* conf.confdir/name, allocated */
extern char *confpath (char const *) ;
extern unsigned int action_find (char const *) ;   /* -1: none */
extern unsigned int jail_byname (char const *) ;   /* JAIL_MANUAL: none */

/* ---- bans.c: bans, history, expiry; the clock; statistics ---- */

typedef struct ban_s ban ;
struct ban_s
{
  banaddr key ;
  int64_t start, until ;
  uint32_t actions ;
  uint32_t gen ;
  uint16_t jail ;
  uint8_t live ;
} ;

typedef struct hist_s hist ;
struct hist_s { banaddr key ; uint8_t n ; int64_t t[HISTN] ; } ;  /* t[0] newest */

struct bantable
{
  genalloc bans ;       /* ban */
  genalloc banfree ;    /* uint32_t: free slots in bans */
  aindex banix ;
  size_t nactive ;      /* live bans */
  genalloc hists ;      /* hist: past bans per address */
  genalloc histfree ;   /* uint32_t */
  aindex histix ;
  genalloc heap ;       /* struct heapent (common/heap.h): expiry, when = until */
} ;
extern struct bantable bantab ;
#define BAN(i) (genalloc_s(ban, &bantab.bans) + (i))
#define HIST(i) (genalloc_s(hist, &bantab.hists) + (i))

struct state
{
  int64_t now ;       /* ms since the epoch: the wall clock, or in replay
                         mode the latest line time stamp */
  int64_t wallnow ;   /* the wall clock at start (guessing years) */
  int replaying ;     /* -r: bans printed, nothing applied or journaled */
} ;
extern struct state state ;

struct stats { uint64_t lines, matched, bans, unbans, badline, overlong, untracked ; } ;
extern struct stats stats ;

extern size_t fmt_secs (char *, int64_t) ;   /* 24 bytes */
extern void fmt_iso (char *, int64_t) ;      /* 32 bytes */
extern int64_t ceil_secs (int64_t) ;         /* at least 1 */
extern void out (char const *) ;             /* to stdout, buffered */
extern char const *jail_name (unsigned int) ;

extern ban *ban_find (banaddr const *) ;
extern ban *ban_insert (banaddr const *, int64_t, int64_t, uint32_t, unsigned int) ;
extern void ban_drop (ban *) ;
extern void ban_add (banaddr const *, unsigned int, int64_t, uint32_t, unsigned int) ;
extern void ban_remove (ban *, char const *) ;
extern void bans_expire (void) ;
extern int64_t bans_next (void) ;   /* the next expiry, or -1 */
extern void ban_push (ban const *) ; /* (re)schedule b's expiry */
extern hist *hist_find (banaddr const *) ;
extern hist *hist_get (banaddr const *) ;
extern void hist_add (hist *, int64_t) ;
extern void hist_sweep (void) ;

/* ---- jail.c: failure counting ---- */

extern void jail_fail (unsigned int, banaddr const *, int64_t, int) ;
extern int64_t jail_bantime (jail const *, banaddr const *, unsigned int *) ;
extern void counter_reset (banaddr const *) ;
extern void recidive_feed (banaddr const *, int64_t) ;
extern void recidive_rebuild (void) ;

/* ---- lines.c: lines and the line reader ---- */

extern void line_process (char const *, size_t, uint16_t const *, size_t) ;
extern void line_process_nf (char const *, size_t, uint16_t const *, size_t, int) ;
extern void line_skip (char const *, size_t) ;

#define TAILN 64
typedef struct reader_s reader ;
struct reader_s { char *buf ; size_t len ; int skipping ; } ;
extern void reader_init (reader *) ;
extern void reader_free (reader *) ;
extern void reader_finish (reader *, uint16_t const *, size_t) ;
extern ssize_t reader_fill (reader *, int, uint16_t const *, size_t, int *, char *, size_t *) ;

/* ---- journal.c ---- */

extern void journal_load (void) ;
extern void journal_compact (void) ;
extern void journal_ban (ban const *) ;
extern void journal_unban (banaddr const *) ;
extern void journal_flush (void) ;
extern void journal_stop (void) ;   /* failure counts saved, synced */
extern void counters_restore (void) ;

/* ---- actions.c ---- */

extern int cat_actions (stralloc *, uint32_t) ;
extern void actions_setup (void) ;   /* nft tables, restore events */
extern void actions_ban (ban const *, uint32_t, int) ;
extern void actions_unban (ban const *) ;
extern void actions_flush (void) ;
extern int actions_busy (void) ;
extern void actions_reap (void) ;
extern int64_t actions_watchdog (void) ;

/* ---- sources.c ---- */

extern void positions_load (void) ;
extern void positions_save (void) ;
extern void sources_setup (void) ;
extern int sources_inotify_fd (void) ;
extern void sources_inotify (void) ;
extern void sources_hup (void) ;
extern int64_t sources_timers (void) ;
extern int sources_stdin_open (void) ;
extern void sources_stdin_read (void) ;
extern void sources_stop (void) ;
extern void sources_stats (stralloc *) ;

/* ---- ctlsock.c ---- */

#define MAXCLIENTS 16
extern void control_listen (void) ;
/* printf to a reply (truncated at 1 KB a call) */
extern void cat_fmt (stralloc *, char const *, ...) __attribute__((format(printf, 2, 3))) ;
extern int64_t control_timers (int64_t) ;
extern unsigned int control_fds (iopause_fd *) ;
extern void control_io (iopause_fd *) ;
extern void control_stop (void) ;

#endif
