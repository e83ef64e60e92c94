/* yubin-banwatch: the actions a ban sets off.  nft: a batch per round
 * through nft -f, one nft process at a time, elements with per-element
 * timeouts in sets per family and prefix length; tcprules: the deny list
 * (its bans, then the operator's rules) rebuilt into the cdb when bans
 * change; exec: a program per event, one at a time.  A child stuck for
 * 30 s is killed. */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/djbunix.h>
#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>

#include "exitcodes.h"
#include "ylog.h"
#include "banwatch/banwatch.h"

typedef struct xevent_s xevent ;
struct xevent_s { char ev[8] ; banaddr key ; uint16_t jail ; int64_t secs ; } ;
static genalloc xevents[MAXACTIONS] ;   /* xevent, per exec action */

/* "a,b,c", or "-" for none: the names of the actions in acts */
int cat_actions (stralloc *sa, uint32_t acts)
{
  int first = 1 ;
  for (size_t i = 0 ; i < genalloc_len(action, &conf.actions) ; i++)
  {
    if (!(acts & ((uint32_t)1 << i))) continue ;
    if (!first && !stralloc_catb(sa, ",", 1)) return 0 ;
    if (!stralloc_cats(sa, ACTION(i)->name)) return 0 ;
    first = 0 ;
  }
  return first ? stralloc_catb(sa, "-", 1) : 1 ;
}

static void nft_setname (char *buf, unsigned int fam, unsigned int len)
{
  if (len == (fam == 4 ? 32u : 128u)) snprintf(buf, 32, "banned%u", fam) ;
  else snprintf(buf, 32, "banned%u_%u", fam, len) ;
}

/* the set for this family and prefix length, and its rule; flushed when
 * made, so elements left from an earlier run never come back */
static int nft_ensure_set (action *a, stralloc *sa, unsigned int fam, unsigned int len)
{
  unsigned char *have = fam == 4 ? a->have4 : a->have6 ;
  char name[32], tmp[512] ;
  if (have[len]) return 1 ;
  nft_setname(name, fam, len) ;
  int full = len == (fam == 4 ? 32u : 128u) ;
  snprintf(tmp, sizeof tmp,
    "add set inet %s %s { type ipv%u_addr ; flags %stimeout ; }\n"
    "flush set inet %s %s\n"
    "add rule inet %s %s %s saddr @%s %s\n",
    a->table, name, fam, full ? "" : "interval,",
    a->table, name,
    a->table, a->chain, fam == 4 ? "ip" : "ip6", name, a->verdict) ;
  if (!stralloc_cats(sa, tmp)) return 0 ;
  have[len] = 1 ;
  return 1 ;
}

/* add: 0 delete, 1 add or replace, 2 add a new element */
static int nft_element (action *a, stralloc *sa, banaddr const *k, int64_t ms, int add)
{
  char name[32], key[BANADDR_FMT], tmp[512] ;
  if (!nft_ensure_set(a, sa, k->family, k->len)) return 0 ;
  nft_setname(name, k->family, k->len) ;
  banaddr_fmt(key, k) ;
  /* add, delete, add: works whether the element is there or not (the
   * kernel may have expired it), and sets the new timeout.  A new ban
   * needs only the add: every element banwatch stops using is deleted
   * (unban and expiry do add+delete), so none is left behind. */
  if (add != 2) snprintf(tmp, sizeof tmp,
    "add element inet %s %s { %s timeout 1s }\n"
    "delete element inet %s %s { %s }\n",
    a->table, name, key, a->table, name, key) ;
  if (add != 2 && !stralloc_cats(sa, tmp)) return 0 ;
  if (!add) return 1 ;
  snprintf(tmp, sizeof tmp, "add element inet %s %s { %s timeout %llds }\n",
    a->table, name, key, (long long)ceil_secs(ms)) ;
  return stralloc_cats(sa, tmp) ;
}

static void exec_queue (unsigned int ai, char const *ev, ban const *b)
{
  xevent x ;
  memset(&x, 0, sizeof x) ;
  strcpy(x.ev, ev) ;
  x.key = b->key ;
  x.jail = b->jail ;
  x.secs = strcmp(ev, "unban") && b->until > state.now ? ceil_secs(b->until - state.now) : 0 ;
  if (!genalloc_append(xevent, xevents + ai, &x)) strerr_diefu1sys(EX_TEMP, "queue an action") ;
}

void actions_ban (ban const *b, uint32_t acts, int extend)
{
  if (state.replaying) return ;
  for (unsigned int i = 0 ; i < genalloc_len(action, &conf.actions) ; i++)
  {
    if (!(acts & ((uint32_t)1 << i))) continue ;
    action *a = ACTION(i) ;
    if (a->type == A_NFT)
    {
      if (!nft_element(a, &a->pending, &b->key, b->until - state.now, extend ? 1 : 2)) strerr_diefu1sys(EX_TEMP, "queue an action") ;
    }
    else if (a->type == A_TCPRULES) a->dirty = 1 ;
    else exec_queue(i, extend == 2 ? "restore" : "ban", b) ;
  }
}

void actions_unban (ban const *b)
{
  if (state.replaying) return ;
  for (unsigned int i = 0 ; i < genalloc_len(action, &conf.actions) ; i++)
  {
    if (!(b->actions & ((uint32_t)1 << i))) continue ;
    action *a = ACTION(i) ;
    if (a->type == A_NFT)
    {
      if (!nft_element(a, &a->pending, &b->key, 0, 0)) strerr_diefu1sys(EX_TEMP, "queue an action") ;
    }
    else if (a->type == A_TCPRULES) a->dirty = 1 ;
    else exec_queue(i, "unban", b) ;
  }
}

extern char **environ ;

/* fork and exec argv with fd0 as stdin (-1: /dev/null) */
static pid_t spawn (char const *const *argv, char const *const *envp, int fd0)
{
  pid_t pid = fork() ;
  if (pid < 0) { strerr_warnwu2sys("fork for ", argv[0]) ; return 0 ; }
  if (!pid)
  {
    sigset_t set ;
    sigemptyset(&set) ;
    sigprocmask(SIG_SETMASK, &set, 0) ;
    signal(SIGPIPE, SIG_DFL) ;
    if (fd0 < 0) fd0 = open("/dev/null", O_RDONLY) ;
    if (fd0 < 0 || (fd0 ? dup2(fd0, 0) < 0 : fcntl(0, F_SETFD, 0) < 0)) _exit(127) ;
    execve(argv[0], (char *const *)argv, (char *const *)envp) ;
    strerr_warnwu2sys("exec ", argv[0]) ;
    _exit(127) ;
  }
  return pid ;
}

static int memfd_of (char const *s, size_t len)
{
  int fd = memfd_create("banwatch", MFD_CLOEXEC) ;
  if (fd < 0) return -1 ;
  if (allwrite(fd, s, len) < len || lseek(fd, 0, SEEK_SET) < 0) { fd_close(fd) ; return -1 ; }
  return fd ;
}

static void action_start_nft (action *a, stralloc *batch)
{
  char const *argv[4] = { a->nft, "-f", "/dev/stdin", 0 } ;
  int fd = memfd_of(batch->s, batch->len) ;
  if (fd < 0) { strerr_warnwu1sys("make a batch for nft") ; return ; }
  a->pid = spawn(argv, (char const *const *)environ, fd) ;
  fd_close(fd) ;
  if (a->pid) { a->started = state.now ; a->runs++ ; batch->len = 0 ; }
}

static void action_start_tcprules (action *a)
{
  stralloc sa = STRALLOC_ZERO ;
  int ok = stralloc_cats(&sa, "# written by yubin-banwatch: its bans, then the rules in ")
        && stralloc_cats(&sa, a->base ? a->base : "(none)") && stralloc_cats(&sa, "\n") ;
  unsigned int bit = (unsigned int)(a - ACTION(0)) ;
  for (size_t i = 0 ; ok && i < genalloc_len(ban, &bantab.bans) ; i++)
  {
    ban const *b = BAN(i) ;
    if (b->live && (b->actions & ((uint32_t)1 << bit))) ok = banaddr_tcprules(&sa, &b->key) ;
  }
  if (ok && a->base)
  {
    size_t before = sa.len ;
    if (!openslurpclose(&sa, a->base))
    {
      if (errno != ENOENT) strerr_warnwu2sys("read ", a->base) ;
      sa.len = before ;
    }
    else if (sa.len > before && sa.s[sa.len-1] != '\n') ok = stralloc_catb(&sa, "\n", 1) ;
  }
  if (!ok) { strerr_warnwu1sys("build the deny list") ; stralloc_free(&sa) ; return ; }
  if (!openwritenclose_suffix(a->list, sa.s, sa.len, ".tmp"))
  {
    strerr_warnwu2sys("write ", a->list) ;
    stralloc_free(&sa) ;
    return ;
  }
  int fd = memfd_of(sa.s, sa.len) ;
  stralloc_free(&sa) ;
  if (fd < 0) { strerr_warnwu1sys("make the input of tcprules") ; return ; }
  char const *argv[4] = { a->tcprules, a->cdb, a->cdbtmp, 0 } ;
  a->pid = spawn(argv, (char const *const *)environ, fd) ;
  fd_close(fd) ;
  if (a->pid) { a->started = state.now ; a->runs++ ; a->dirty = 0 ; }
}

static void action_start_exec (action *a, unsigned int ai)
{
  genalloc *q = xevents + ai ;
  if (!genalloc_len(xevent, q)) return ;
  xevent x = genalloc_s(xevent, q)[0] ;
  char addr[BANADDR_FMT], secs[24] ;
  char e1[32], e2[BANADDR_FMT + 20], e3[100], e4[48] ;
  banaddr_fmt(addr, &x.key) ;
  snprintf(secs, sizeof secs, "%lld", (long long)x.secs) ;
  snprintf(e1, sizeof e1, "BANWATCH_EVENT=%s", x.ev) ;
  snprintf(e2, sizeof e2, "BANWATCH_ADDR=%s", addr) ;
  snprintf(e3, sizeof e3, "BANWATCH_JAIL=%s", jail_name(x.jail)) ;
  snprintf(e4, sizeof e4, "BANWATCH_BANTIME=%s", secs) ;
  genalloc av = GENALLOC_ZERO, ev = GENALLOC_ZERO ;
  char const *z = 0 ;
  char const *extra[4] = { x.ev, addr, jail_name(x.jail), secs } ;
  char const *envx[4] = { e1, e2, e3, e4 } ;
  int ok = 1 ;
  for (char **p = a->argv ; ok && *p ; p++) ok = genalloc_append(char const *, &av, (char const **)p) ;
  for (int i = 0 ; ok && i < 4 ; i++) ok = genalloc_append(char const *, &av, extra + i) ;
  ok = ok && genalloc_append(char const *, &av, &z) ;
  for (char **p = environ ; ok && *p ; p++)
    if (strncmp(*p, "BANWATCH_", 9)) ok = genalloc_append(char const *, &ev, (char const **)p) ;
  for (int i = 0 ; ok && i < 4 ; i++) ok = genalloc_append(char const *, &ev, envx + i) ;
  ok = ok && genalloc_append(char const *, &ev, &z) ;
  if (ok)
  {
    a->pid = spawn(genalloc_s(char const *, &av), genalloc_s(char const *, &ev), -1) ;
    if (a->pid)
    {
      a->started = state.now ; a->runs++ ;
      memmove(genalloc_s(xevent, q), genalloc_s(xevent, q) + 1, (genalloc_len(xevent, q) - 1) * sizeof(xevent)) ;
      genalloc_setlen(xevent, q, genalloc_len(xevent, q) - 1) ;
    }
  }
  else strerr_warnwu1sys("run an exec action") ;
  genalloc_free(char const *, &av) ;
  genalloc_free(char const *, &ev) ;
}

void actions_flush (void)
{
  for (unsigned int i = 0 ; i < genalloc_len(action, &conf.actions) ; i++)
  {
    action *a = ACTION(i) ;
    if (a->pid) continue ;
    if (a->type == A_NFT && a->pending.len) action_start_nft(a, &a->pending) ;
    else if (a->type == A_TCPRULES && a->dirty) action_start_tcprules(a) ;
    else if (a->type == A_EXEC) action_start_exec(a, i) ;
  }
}

int actions_busy (void)
{
  for (unsigned int i = 0 ; i < genalloc_len(action, &conf.actions) ; i++)
  {
    action const *a = ACTION(i) ;
    if (a->pid || (a->type == A_NFT && a->pending.len) || (a->type == A_TCPRULES && a->dirty)
     || (a->type == A_EXEC && genalloc_len(xevent, xevents + i))) return 1 ;
  }
  return 0 ;
}

void actions_reap (void)
{
  for (;;)
  {
    int wstat ;
    pid_t pid = waitpid(-1, &wstat, WNOHANG) ;
    if (pid <= 0) break ;
    for (unsigned int i = 0 ; i < genalloc_len(action, &conf.actions) ; i++)
    {
      action *a = ACTION(i) ;
      if (a->pid != pid) continue ;
      a->pid = 0 ;
      if (!WIFEXITED(wstat) || WEXITSTATUS(wstat))
      {
        char st[16] ;
        snprintf(st, sizeof st, "%d", WIFEXITED(wstat) ? WEXITSTATUS(wstat) : 128 + WTERMSIG(wstat)) ;
        a->fails++ ;
        ylog("action-fail", "action", a->name, "status", st, (char *)0) ;
      }
    }
  }
}

/* a stuck child is killed after 30 s; returns the next such deadline */
int64_t actions_watchdog (void)
{
  int64_t next = -1 ;
  for (unsigned int i = 0 ; i < genalloc_len(action, &conf.actions) ; i++)
  {
    action *a = ACTION(i) ;
    if (!a->pid) continue ;
    if (state.now >= a->started + 30000) { kill(a->pid, SIGKILL) ; a->started = state.now ; }
    if (next < 0 || a->started + 30000 < next) next = a->started + 30000 ;
  }
  return next ;
}

/* at start: the table, chain, sets and every active ban, in one
 * transaction, before anything else happens */
static void nft_setup (action *a, unsigned int ai)
{
  stralloc sa = STRALLOC_ZERO ;
  char tmp[512] ;
  snprintf(tmp, sizeof tmp,
    "add table inet %s\n"
    "add chain inet %s %s { type filter hook %s priority %d ; policy accept ; }\n"
    "flush chain inet %s %s\n",
    a->table, a->table, a->chain, a->hook, a->priority, a->table, a->chain) ;
  if (!stralloc_cats(&sa, tmp)
   || !nft_ensure_set(a, &sa, 4, 32) || !nft_ensure_set(a, &sa, 6, 128)) strerr_diefu1sys(EX_TEMP, "set up nft") ;
  for (size_t i = 0 ; i < genalloc_len(jail, &conf.jails) ; i++)
  {
    jail const *j = JAIL(i) ;
    if (!(j->actions & ((uint32_t)1 << ai))) continue ;
    if (!nft_ensure_set(a, &sa, 4, j->prefix4) || !nft_ensure_set(a, &sa, 6, j->prefix6)) strerr_diefu1sys(EX_TEMP, "set up nft") ;
  }
  for (size_t i = 0 ; i < genalloc_len(ban, &bantab.bans) ; i++)
  {
    ban const *b = BAN(i) ;
    if (!b->live || !(b->actions & ((uint32_t)1 << ai))) continue ;
    if (!nft_ensure_set(a, &sa, b->key.family, b->key.len)) strerr_diefu1sys(EX_TEMP, "set up nft") ;
    char key[BANADDR_FMT], name[32] ;
    banaddr_fmt(key, &b->key) ;
    nft_setname(name, b->key.family, b->key.len) ;
    snprintf(tmp, sizeof tmp, "add element inet %s %s { %s timeout %llds }\n",
      a->table, name, key, (long long)ceil_secs(b->until - state.now)) ;
    if (!stralloc_cats(&sa, tmp)) strerr_diefu1sys(EX_TEMP, "set up nft") ;
  }
  action_start_nft(a, &sa) ;
  if (!a->pid) strerr_diefu1x(EX_TEMP, "run nft") ;
  int wstat ;
  if (waitpid(a->pid, &wstat, 0) < 0) strerr_diefu1sys(EX_TEMP, "wait for nft") ;
  a->pid = 0 ;
  if (!WIFEXITED(wstat) || WEXITSTATUS(wstat))
    strerr_dief(EX_TEMP, "nft could not set up table inet ", a->table, " (not root? no CAP_NET_ADMIN? see the nft error above)") ;
  stralloc_free(&sa) ;
}

/* at start, after the journal: nft tables and sets with the active bans,
 * a first tcprules run, and a "restore" event per ban for exec actions */
void actions_setup (void)
{
  for (unsigned int i = 0 ; i < genalloc_len(action, &conf.actions) ; i++)
  {
    action *a = ACTION(i) ;
    if (a->type == A_NFT) nft_setup(a, i) ;
    else if (a->type == A_TCPRULES) a->dirty = 1 ;
  }
  for (size_t i = 0 ; i < genalloc_len(ban, &bantab.bans) ; i++)
  {
    ban const *b = BAN(i) ;
    if (!b->live) continue ;
    for (unsigned int k = 0 ; k < genalloc_len(action, &conf.actions) ; k++)
      if (ACTION(k)->type == A_EXEC && (b->actions & ((uint32_t)1 << k))) exec_queue(k, "restore", b) ;
  }
}
