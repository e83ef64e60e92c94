/* yubin-banwatch: the control socket, <confdir>/control, that
 * yubin-banctl talks to.  One request line, a reply ("+..." or "-why"),
 * close; at most MAXCLIENTS at once, 5 s each.  Requests: list, jails,
 * stats, ban, unban, rebuild (yubin-banctl.8). */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <skalibs/djbunix.h>
#include <skalibs/genalloc.h>
#include <skalibs/iopause.h>
#include <skalibs/socket.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>

#include "exitcodes.h"
#include "banwatch/banwatch.h"

typedef struct client_s client ;
struct client_s
{
  int fd ;
  char in[1024] ;
  size_t inlen ;
  stralloc out ;
  size_t outpos ;
  int64_t deadline ;
} ;

static client clients[MAXCLIENTS] ;
static unsigned int nclients = 0 ;
static int lfd = -1 ;
static char *sock_path ;

void control_listen (void)
{
  struct stat st ;
  sock_path = confpath("control") ;
  if (!lstat(sock_path, &st) && S_ISSOCK(st.st_mode)) unlink(sock_path) ;
  lfd = ipc_stream_nbcoe() ;
  if (lfd < 0) strerr_diefu1sys(EX_TEMP, "create a socket") ;
  mode_t m = umask(077) ;
  if (ipc_bind(lfd, sock_path) < 0) strerr_diefu2sys(EX_TEMP, "bind to ", sock_path) ;
  umask(m) ;
  if (ipc_listen(lfd, 16) < 0) strerr_diefu2sys(EX_TEMP, "listen on ", sock_path) ;
}

void cat_fmt (stralloc *sa, char const *fmt, ...)
{
  char tmp[1024] ;
  va_list ap ;
  va_start(ap, fmt) ;
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap) ;
  va_end(ap) ;
  if (n < 0) return ;
  if ((size_t)n >= sizeof tmp) n = sizeof tmp - 1 ;
  if (!stralloc_catb(sa, tmp, n)) strerr_diefu1sys(EX_TEMP, "answer a client") ;
}

static void cmd_list (stralloc *o)
{
  cat_fmt(o, "+%zu bans\n", bantab.nactive) ;
  for (size_t i = 0 ; i < genalloc_len(ban, &bantab.bans) ; i++)
  {
    ban const *b = BAN(i) ;
    char a[BANADDR_FMT], u[32] ;
    stralloc acts = STRALLOC_ZERO ;
    if (!b->live) continue ;
    banaddr_fmt(a, &b->key) ;
    fmt_iso(u, b->until) ;
    if (!cat_actions(&acts, b->actions) || !stralloc_0(&acts)) strerr_diefu1sys(EX_TEMP, "answer a client") ;
    cat_fmt(o, "%s jail=%s left=%llds until=%s actions=%s\n", a, jail_name(b->jail),
      (long long)ceil_secs(b->until - state.now), u, acts.s) ;
    stralloc_free(&acts) ;
  }
}

static void cmd_jails (stralloc *o)
{
  cat_fmt(o, "+%zu jails\n", genalloc_len(jail, &conf.jails)) ;
  for (size_t i = 0 ; i < genalloc_len(jail, &conf.jails) ; i++)
  {
    jail const *j = JAIL(i) ;
    size_t banned = 0 ;
    stralloc acts = STRALLOC_ZERO ;
    for (size_t k = 0 ; k < genalloc_len(ban, &bantab.bans) ; k++) banned += BAN(k)->live && BAN(k)->jail == i ;
    if (!cat_actions(&acts, j->actions) || !stralloc_0(&acts)) strerr_diefu1sys(EX_TEMP, "answer a client") ;
    cat_fmt(o, "%s filter=%s maxretry=%u findtime=%llds bantime=%llds bantime.max=%llds prefix4=%u prefix6=%u"
      " actions=%s banned=%zu bans=%llu matched=%llu ignored=%llu badhost=%llu tracked=%zu\n",
      j->name, FILTER(j->filter)->name, j->maxretry, (long long)(j->findtime / 1000), (long long)(j->bantime / 1000),
      (long long)(j->bantime_max / 1000), j->prefix4, j->prefix6, acts.s, banned,
      (unsigned long long)j->nbans, (unsigned long long)j->nmatch, (unsigned long long)j->nignored,
      (unsigned long long)j->nbadhost, j->ix.used) ;
    stralloc_free(&acts) ;
  }
}

static void cmd_stats (stralloc *o)
{
  cat_fmt(o, "+stats\n") ;
  cat_fmt(o, "lines=%llu matched=%llu bans=%llu unbans=%llu active=%zu overlong=%llu malformed=%llu history=%zu untracked=%llu\n",
    (unsigned long long)stats.lines, (unsigned long long)stats.matched, (unsigned long long)stats.bans,
    (unsigned long long)stats.unbans, bantab.nactive, (unsigned long long)stats.overlong, (unsigned long long)stats.badline, bantab.histix.used,
    (unsigned long long)stats.untracked) ;
  sources_stats(o) ;
  for (size_t i = 0 ; i < genalloc_len(action, &conf.actions) ; i++)
  {
    action const *a = ACTION(i) ;
    cat_fmt(o, "action %s type=%s runs=%llu failures=%llu\n", a->name,
      a->type == A_NFT ? "nft" : a->type == A_TCPRULES ? "tcprules" : "exec",
      (unsigned long long)a->runs, (unsigned long long)a->fails) ;
  }
}

static void cmd_ban (stralloc *o, char **w, unsigned int n)
{
  banaddr k ;
  unsigned int jidx = JAIL_MANUAL ;
  int64_t dur = -1 ;
  if (n < 2 || n > 4) { cat_fmt(o, "-usage: ban ADDRESS[/LEN] [JAIL] [DURATION]\n") ; return ; }
  if (!banaddr_scancidr(&k, w[1], strlen(w[1]))) { cat_fmt(o, "-bad address: %s\n", w[1]) ; return ; }
  if (k.len < (k.family == 4 ? 8 : 16)) { cat_fmt(o, "-refusing to ban a network wider than /%u\n", k.family == 4 ? 8 : 16) ; return ; }
  for (unsigned int i = 2 ; i < n ; i++)
  {
    unsigned int j = jail_byname(w[i]) ;
    if (j != JAIL_MANUAL && jidx == JAIL_MANUAL && dur < 0 && i == 2) { jidx = j ; continue ; }
    if (dur < 0 && banparse_duration(w[i], strlen(w[i]), &dur) && dur > 0) continue ;
    cat_fmt(o, "-unknown jail or bad duration: %s\n", w[i]) ;
    return ;
  }
  for (size_t i = 0 ; i < genalloc_len(banaddr, &conf.ignore) ; i++)
    if (banaddr_contains(genalloc_s(banaddr, &conf.ignore) + i, &k))
    { cat_fmt(o, "-%s is in ignoreip\n", w[1]) ; return ; }
  unsigned int prior = 0 ;
  uint32_t acts ;
  if (jidx != JAIL_MANUAL)
  {
    acts = JAIL(jidx)->actions ;
    if (dur < 0) dur = jail_bantime(JAIL(jidx), &k, &prior) ;
  }
  else
  {
    acts = genalloc_len(action, &conf.actions) >= 32 ? 0xffffffffu : ((uint32_t)1 << genalloc_len(action, &conf.actions)) - 1 ;
    if (dur < 0) dur = conf.manual_bantime ;
  }
  ban_add(&k, jidx, dur, acts, prior) ;
  char a[BANADDR_FMT] ;
  banaddr_fmt(a, &k) ;
  cat_fmt(o, "+banned %s jail=%s for %llds\n", a, jail_name(jidx), (long long)ceil_secs(dur)) ;
}

static void cmd_unban (stralloc *o, char **w, unsigned int n)
{
  banaddr k ;
  unsigned int count = 0 ;
  if (n != 2) { cat_fmt(o, "-usage: unban ADDRESS[/LEN]\n") ; return ; }
  if (!banaddr_scancidr(&k, w[1], strlen(w[1]))) { cat_fmt(o, "-bad address: %s\n", w[1]) ; return ; }
  ban *b = ban_find(&k) ;
  if (b) { ban_remove(b, "unban") ; count++ ; }
  else
    for (size_t i = 0 ; i < genalloc_len(ban, &bantab.bans) ; i++)
      if (BAN(i)->live && banaddr_contains(&BAN(i)->key, &k)) { ban_remove(BAN(i), "unban") ; count++ ; }
  for (size_t i = 0 ; i < genalloc_len(jail, &conf.jails) ; i++)
  {
    banaddr m = k ;
    jail const *j = JAIL(i) ;
    unsigned int len = k.family == 4 ? j->prefix4 : j->prefix6 ;
    if (m.len > len) banaddr_mask(&m, len) ;
    counter_reset(&m) ;
  }
  if (count) cat_fmt(o, "+unbanned %u\n", count) ;
  else cat_fmt(o, "-not banned: %s\n", w[1]) ;
}

static void control_request (client *c)
{
  char *w[8] ;
  unsigned int n = 0 ;
  c->in[c->inlen] = 0 ;
  for (char *p = strtok(c->in, " \t\r") ; p && n < 8 ; p = strtok(0, " \t\r")) w[n++] = p ;
  if (!n) cat_fmt(&c->out, "-empty request\n") ;
  else if (!strcmp(w[0], "list") && n == 1) cmd_list(&c->out) ;
  else if (!strcmp(w[0], "jails") && n == 1) cmd_jails(&c->out) ;
  else if (!strcmp(w[0], "stats") && n == 1) cmd_stats(&c->out) ;
  else if (!strcmp(w[0], "ban")) cmd_ban(&c->out, w, n) ;
  else if (!strcmp(w[0], "unban")) cmd_unban(&c->out, w, n) ;
  else if (!strcmp(w[0], "rebuild") && n == 1)
  {
    for (size_t i = 0 ; i < genalloc_len(action, &conf.actions) ; i++)
      if (ACTION(i)->type == A_TCPRULES) ACTION(i)->dirty = 1 ;
    cat_fmt(&c->out, "+rebuilding\n") ;
  }
  else cat_fmt(&c->out, "-unknown command (list, jails, stats, ban, unban, rebuild)\n") ;
}

static void client_close (unsigned int i)
{
  fd_close(clients[i].fd) ;
  stralloc_free(&clients[i].out) ;
  clients[i] = clients[--nclients] ;
}

static void control_accept (void)
{
  for (;;)
  {
    int dummy ;
    int fd = ipc_accept_nbcoe(lfd, 0, 0, &dummy) ;
    if (fd < 0) return ;
    if (nclients >= MAXCLIENTS) { fd_close(fd) ; continue ; }
    client *c = clients + nclients++ ;
    memset(c, 0, sizeof *c) ;
    c->fd = fd ;
    c->deadline = state.now + 5000 ;
  }
}

/* returns 0 when the client is done */
static int client_io (client *c, short revents)
{
  if (!c->out.len)
  {
    if (!(revents & (POLLIN | POLLHUP | POLLERR))) return 1 ;
    ssize_t r = read(c->fd, c->in + c->inlen, sizeof(c->in) - 1 - c->inlen) ;
    if (r < 0) return errno == EAGAIN || errno == EINTR ;
    if (!r) return 0 ;
    c->inlen += r ;
    char *nl = memchr(c->in, '\n', c->inlen) ;
    if (!nl && c->inlen < sizeof(c->in) - 1) return 1 ;
    if (nl) c->inlen = nl - c->in ;
    control_request(c) ;
  }
  while (c->outpos < c->out.len)
  {
    ssize_t w = write(c->fd, c->out.s + c->outpos, c->out.len - c->outpos) ;
    if (w < 0) return errno == EAGAIN || errno == EINTR ;
    c->outpos += w ;
  }
  return 0 ;
}

/* clients past their deadline are closed; returns next, or an earlier
 * client deadline */
int64_t control_timers (int64_t next)
{
  for (unsigned int i = 0 ; i < nclients ; )
  {
    if (state.now >= clients[i].deadline) { client_close(i) ; continue ; }
    if (next < 0 || clients[i].deadline < next) next = clients[i].deadline ;
    i++ ;
  }
  return next ;
}

/* the listening socket and the clients, at x[0..]; returns how many */
unsigned int control_fds (iopause_fd *x)
{
  unsigned int n = 0 ;
  x[n].fd = lfd ; x[n].events = IOPAUSE_READ ; n++ ;
  for (unsigned int i = 0 ; i < nclients ; i++)
  {
    x[n].fd = clients[i].fd ;
    x[n].events = clients[i].out.len ? IOPAUSE_WRITE : IOPAUSE_READ ;
    n++ ;
  }
  return n ;
}

/* after iopause, with the x[] that control_fds filled */
void control_io (iopause_fd *x)
{
  unsigned int xc = 1 ;
  for (unsigned int i = 0, k = xc ; i < nclients ; k++)
  {
    if (x[k].revents && !client_io(clients + i, x[k].revents))
    {
      /* client_close moves the last client here: keep x[] in step */
      x[k] = x[xc + nclients - 1] ;
      client_close(i) ;
      k-- ;
      continue ;
    }
    i++ ;
  }
  if (x[0].revents & IOPAUSE_READ) control_accept() ;
}

void control_stop (void)
{
  if (lfd >= 0) unlink(sock_path) ;
}
