/* yubin-banwatch: read log lines, count failures per address in jails,
 * ban repeat offenders (nftables set, tcprules deny list, program hook).
 * See yubin-banwatch.8 and yubin-banwatch.conf.5.
 *
 * This file: main, the daemon's event loop (one iopause over the
 * selfpipe, inotify, stdin and the control socket, with the earliest
 * deadline of ban expiry, rotation grace, action watchdog, position saving
 * and control clients) and replay mode (-r).  The modules are listed in
 * banwatch.h and deps-exe/yubin-banwatch. */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <skalibs/buffer.h>
#include <skalibs/djbunix.h>
#include <skalibs/genalloc.h>
#include <skalibs/iopause.h>
#include <skalibs/selfpipe.h>
#include <skalibs/sgetopt.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/tai.h>

#include "exitcodes.h"
#include "root.h"
#include "ylog.h"
#include "banwatch/banwatch.h"
#include "banwatch/linescan.h"

#define USAGE "yubin-banwatch [ -c confdir ] [ -C ] [ -r logfile [ -j jail ] ]"

static int64_t wallclock (void)
{
  struct timespec ts ;
  clock_gettime(CLOCK_REALTIME, &ts) ;
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 ;
}

/* ---- the daemon ---- */

static void daemon_stop (void)
{
  sources_stop() ;
  state.now = wallclock() ;
  bans_expire() ;
  journal_stop() ;
  /* let the last action runs finish (bounded) */
  for (int tries = 0 ; tries < 50 ; tries++)
  {
    actions_reap() ;
    actions_flush() ;
    if (!actions_busy()) break ;
    struct timespec ts = { 0, 100000000 } ;
    nanosleep(&ts, 0) ;
  }
  control_stop() ;
  ylog("stop", (char *)0) ;
  exit(0) ;
}

static int run_daemon (void)
{
  tain deadline ;
  int spfd ;
  signal(SIGPIPE, SIG_IGN) ;
  spfd = selfpipe_init() ;
  if (spfd < 0) strerr_diefu1sys(EX_TEMP, "selfpipe_init") ;
  {
    sigset_t set ;
    sigemptyset(&set) ;
    sigaddset(&set, SIGTERM) ;
    sigaddset(&set, SIGINT) ;
    sigaddset(&set, SIGHUP) ;
    sigaddset(&set, SIGCHLD) ;
    if (!selfpipe_trapset(&set)) strerr_diefu1sys(EX_TEMP, "trap signals") ;
  }
  tain_now_set_stopwatch_g() ;
  journal_load() ;
  journal_compact() ;
  recidive_rebuild() ;
  counters_restore() ;
  actions_setup() ;
  control_listen() ;
  positions_load() ;
  {
    char nj[24], nb[24] ;
    snprintf(nj, sizeof nj, "%zu", genalloc_len(jail, &conf.jails)) ;
    snprintf(nb, sizeof nb, "%zu", bantab.nactive) ;
    ylog("start", "jails", nj, "bans", nb, (char *)0) ;
  }
  sources_setup() ;

  for (;;)
  {
    iopause_fd x[4 + MAXCLIENTS] ;
    unsigned int n = 0, xsp, xin, xstdin = 0, xc ;
    int64_t next, t ;
    state.now = wallclock() ;
    bans_expire() ;
    actions_flush() ;
    journal_flush() ;
    next = bans_next() ;
    t = sources_timers() ;
    if (t >= 0 && (next < 0 || t < next)) next = t ;
    t = actions_watchdog() ;
    if (t >= 0 && (next < 0 || t < next)) next = t ;
    next = control_timers(next) ;
    x[n].fd = spfd ; x[n].events = IOPAUSE_READ ; xsp = n++ ;
    x[n].fd = sources_inotify_fd() ; x[n].events = IOPAUSE_READ ; xin = n++ ;
    if (sources_stdin_open()) { x[n].fd = 0 ; x[n].events = IOPAUSE_READ ; xstdin = n++ ; }
    xc = n ;
    n += control_fds(x + n) ;
    tain_now_g() ;
    if (next < 0) tain_add_g(&deadline, &tain_infinite_relative) ;
    else
    {
      tain rel ;
      int64_t ms = next - state.now ;
      if (ms < 0) ms = 0 ;
      if (ms > 86400000) ms = 86400000 ;
      tain_from_millisecs(&rel, (int)ms) ;
      tain_add_g(&deadline, &rel) ;
    }
    int r = iopause_g(x, n, &deadline) ;
    if (r < 0)
    {
      if (errno == EINTR) continue ;
      strerr_diefu1sys(EX_TEMP, "iopause") ;
    }
    state.now = wallclock() ;
    if (x[xsp].revents & IOPAUSE_READ)
    {
      for (;;)
      {
        int sig = selfpipe_read() ;
        if (sig <= 0) { if (sig < 0) strerr_diefu1sys(EX_TEMP, "read the selfpipe") ; break ; }
        if (sig == SIGCHLD) actions_reap() ;
        else if (sig == SIGHUP) sources_hup() ;
        else daemon_stop() ;
      }
    }
    if (x[xin].revents & IOPAUSE_READ) sources_inotify() ;
    if (xstdin && (x[xstdin].revents & IOPAUSE_READ)) sources_stdin_read() ;
    control_io(x + xc) ;
  }
}

/* ---- replay mode: one pass over a file, bans printed, nothing applied ---- */

/* The keys of replay's scanner: one per failregex of the jails, chosen
 * from the start of the log.  0 (every line goes to the jails) unless
 * every jail is a pattern jail whose failregexes all have a literal.
 * The byte that banpat_maybe looks for first becomes the literal's byte
 * rarest in this log (the answer is the same whichever it is). */
static unsigned int replay_keys (linescan_key *keys, char const *base, size_t size, uint16_t const *jl, size_t n)
{
  unsigned int nkeys = 0 ;
  size_t sample = size < LINESCAN_SAMPLE ? size : LINESCAN_SAMPLE ;
  for (size_t i = 0 ; i < n ; i++)
  {
    filter const *f = FILTER(JAIL(jl[i])->filter) ;
    if (f->type != F_REGEX) return 0 ;
    banpat *p = genalloc_s(banpat, &f->fail) ;
    for (size_t k = 0 ; k < genalloc_len(banpat, &f->fail) ; k++)
    {
      linescan_key key ;
      if (!p[k].litlen) return 0 ;
      p[k].litkey = linescan_choose(&key, p[k].lit, p[k].litlen, base, sample) ;
      if (!linescan_addkey(keys, &nkeys, &key)) return 0 ;
    }
  }
  return nkeys ;
}

/* A regular file, mapped: no copy; pages already read are given back so
 * the peak memory stays small whatever the size of the file.  Every line
 * goes to the jails; NULs are looked for a MB at a time, not with one
 * memchr a line. */
static void replay_mapped_all (char const *base, size_t size, uint16_t const *jl, size_t n)
{
  size_t pos = 0, dropped = 0, pg = (size_t)sysconf(_SC_PAGESIZE) ;
  size_t scanned = 0 ;     /* NULs looked for up to there */
  char const *nul = 0 ;    /* the first NUL at or after pos before scanned */
  while (pos < size)
  {
    char const *nl = memchr(base + pos, '\n', size - pos) ;
    size_t end = nl ? (size_t)(nl - base) : size ;
    if (end - pos > conf.maxline) stats.overlong++ ;
    else
    {
      if (end > scanned)
      {
        size_t upto = pos + ((size_t)1 << 20) ;
        if (upto < end) upto = end ;
        if (upto > size) upto = size ;
        nul = memchr(base + pos, 0, upto - pos) ;
        scanned = upto ;
      }
      else if (nul && nul < base + pos) nul = memchr(base + pos, 0, scanned - pos) ;
      line_process_nf(base + pos, end - pos, jl, n, !nul || nul >= base + end) ;
    }
    pos = end + 1 ;
    if (pos - dropped >= ((size_t)1 << 20) && pos < size)
    {
      size_t upto = pos & ~(pg - 1) ;
      if (madvise((char *)base + dropped, upto - dropped, MADV_DONTNEED) == 0) dropped = upto ;
    }
  }
}

/* A regular file, mapped, when every jail has literals (replay_keys):
 * one pass of linescan.h finds the lines, their NULs and which may hold
 * a literal.  A line with none can't match: only its time stamp is read
 * (as line_process would).  Without keys, the plain loop above is faster
 * (glibc's memchr finds a newline faster than linescan alone). */
static void replay_mapped (char const *base, size_t size, uint16_t const *jl, size_t n)
{
  size_t dropped = 0, pg = (size_t)sysconf(_SC_PAGESIZE) ;
  linescan_key keys[LINESCAN_MAXKEYS] ;
  unsigned int nkeys = replay_keys(keys, base, size, jl, n) ;
  linescan ls ;
  linescan_line l[256] ;
  size_t nl ;
  if (!nkeys) { replay_mapped_all(base, size, jl, n) ; return ; }
  linescan_init(&ls, base, size, keys, nkeys) ;
  while ((nl = linescan_fill(&ls, l, sizeof l / sizeof *l)))
    for (size_t i = 0 ; i < nl ; i++)
    {
      size_t pos = l[i].start, end = l[i].end ;
      if (end - pos > conf.maxline) stats.overlong++ ;
      else if (!l[i].maybe && !l[i].nul) line_skip(base + pos, end - pos) ;
      else line_process_nf(base + pos, end - pos, jl, n, !l[i].nul) ;
      pos = end + 1 ;
      if (pos - dropped >= ((size_t)1 << 20) && pos < size)
      {
        size_t upto = pos & ~(pg - 1) ;
        if (madvise((char *)base + dropped, upto - dropped, MADV_DONTNEED) == 0) dropped = upto ;
      }
    }
}

static int replay (char const *file, char const *jailname)
{
  uint16_t jl[MAXJAILS] ;
  size_t n = 0 ;
  reader r ;
  int fd = 0, eof ;
  for (size_t i = 0 ; i < genalloc_len(jail, &conf.jails) ; i++)
  {
    if (jailname && strcmp(JAIL(i)->name, jailname)) continue ;
    if (FILTER(JAIL(i)->filter)->type == F_RECIDIVE) continue ;
    jl[n++] = i ;
  }
  if (!n) strerr_dief(EX_PERM, "no such jail: ", jailname ? jailname : "(none reads logs)") ;
  if (strcmp(file, "-"))
  {
    fd = open_readb(file) ;
    if (fd < 0) strerr_diefu2sys(EX_TEMP, "open ", file) ;
  }
  struct stat st ;
  void *map = MAP_FAILED ;
  if (!fstat(fd, &st) && S_ISREG(st.st_mode) && st.st_size > 0)
    map = mmap(0, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0) ;
  if (map != MAP_FAILED)
  {
    if (madvise(map, st.st_size, MADV_SEQUENTIAL) < 0) { /* only a hint */ }
    replay_mapped(map, st.st_size, jl, n) ;
    munmap(map, st.st_size) ;
  }
  else
  {
    reader_init(&r) ;
    for (;;)
    {
      if (reader_fill(&r, fd, jl, n, &eof, 0, 0) < 0) strerr_diefu2sys(EX_TEMP, "read ", file) ;
      if (eof) break ;
    }
    reader_finish(&r, jl, n) ;
    reader_free(&r) ;
  }
  if (fd) fd_close(fd) ;
  bans_expire() ;
  {
    char tmp[256] ;
    snprintf(tmp, sizeof tmp, "lines=%llu matched=%llu bans=%llu unbans=%llu active=%zu overlong=%llu malformed=%llu\n",
      (unsigned long long)stats.lines, (unsigned long long)stats.matched, (unsigned long long)stats.bans,
      (unsigned long long)stats.unbans, bantab.nactive, (unsigned long long)stats.overlong, (unsigned long long)stats.badline) ;
    out(tmp) ;
    if (!buffer_flush(buffer_1)) strerr_diefu1sys(EX_TEMP, "write to stdout") ;
  }
  return 0 ;
}

int main (int argc, char const *const *argv)
{
  char const *replayfile = 0, *replayjail = 0 ;
  int checkonly = 0 ;
  stralloc cd = STRALLOC_ZERO ;
  PROG = "banwatch" ;
  {
    subgetopt l = SUBGETOPT_ZERO ;
    for (;;)
    {
      int opt = subgetopt_r(argc, argv, "c:Cr:j:", &l) ;
      if (opt == -1) break ;
      switch (opt)
      {
        case 'c' : conf.confdir = l.arg ; break ;
        case 'C' : checkonly = 1 ; break ;
        case 'r' : replayfile = l.arg ; break ;
        case 'j' : replayjail = l.arg ; break ;
        default : strerr_dieusage(EX_PERM, USAGE) ;
      }
    }
    argc -= l.ind ; argv += l.ind ;
  }
  if (argc) strerr_dieusage(EX_PERM, USAGE) ;
  if (!conf.confdir)
  {
    if (!yubin_path(&cd, "banwatch")) strerr_diefu1sys(EX_TEMP, "find the instance root") ;
    conf.confdir = cd.s ;
  }
  addr_hash_seed() ;
  state.now = state.wallnow = wallclock() ;
  conf_load() ;
  if (checkonly)
  {
    char tmp[200] ;
    snprintf(tmp, sizeof tmp, "configuration ok: %zu jails, %zu filters, %zu actions\n",
      genalloc_len(jail, &conf.jails), genalloc_len(filter, &conf.filters), genalloc_len(action, &conf.actions)) ;
    out(tmp) ;
    if (!buffer_flush(buffer_1)) strerr_diefu1sys(EX_TEMP, "write to stdout") ;
    return 0 ;
  }
  if (replayfile)
  {
    state.replaying = 1 ;
    state.now = 0 ;
    return replay(replayfile, replayjail) ;
  }
  return run_daemon() ;
}
