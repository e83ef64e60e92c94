/* yubin-qread: list the queue (qmail-qread): per message its ID, queue
 * date and age, size and sender, then each recipient with its state (todo,
 * done, failed), whether it is local or remote (control/locals) and, for
 * a deferred one, the time left to its next attempt (the retry record
 * yubin-qmgr writes in the file, queue.h).  Reads queue/cur/ and
 * queue/new/ with queue_load.  See yubin-qread(8). */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <skalibs/buffer.h>
#include <skalibs/bytestr.h>
#include <skalibs/djbunix.h>
#include <skalibs/genalloc.h>
#include <skalibs/strerr.h>
#include <skalibs/stralloc.h>
#include <skalibs/types.h>

#include "control.h"
#include "date822.h"
#include "exitcodes.h"
#include "root.h"
#include "qmgr/queue.h"

char const *PROG = "yubin-qread" ;

struct entry { size_t name ; int isnew ; uint64_t sec, nsec, pid ; } ;

static stralloc names = STRALLOC_ZERO ;     /* the IDs, NUL-terminated */
static genalloc entries = GENALLOC_ZERO ;   /* struct entry */
static stralloc locals = STRALLOC_ZERO ;
static stralloc out = STRALLOC_ZERO ;       /* one message's lines */

static void dienomem (void)
{
  strerr_dief1x(EX_TEMP, "out of memory") ;
}

/* "sec.nsec.pid" into numbers, for the order by time. */
static void id_split (char const *s, struct entry *e)
{
  size_t n = uint64_scan(s, &e->sec) ;
  e->nsec = e->pid = 0 ;
  if (s[n] == '.') { s += n + 1 ; n = uint64_scan(s, &e->nsec) ; if (s[n] == '.') uint64_scan(s + n + 1, &e->pid) ; }
}

static int entry_cmp (void const *a, void const *b)
{
  struct entry const *x = a, *y = b ;
  if (x->sec != y->sec) return x->sec < y->sec ? -1 : 1 ;
  if (x->nsec != y->nsec) return x->nsec < y->nsec ? -1 : 1 ;
  if (x->pid != y->pid) return x->pid < y->pid ? -1 : 1 ;
  return x->isnew - y->isnew ;
}

static void collect (int qfd, char const *sub, int isnew)
{
  int fd = openat(qfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (fd < 0)
  {
    if (errno == ENOENT) return ;
    strerr_diefu3sys(EX_TEMP, "open ", "queue/", sub) ;
  }
  DIR *d = fdopendir(fd) ;
  if (!d) strerr_diefu3sys(EX_TEMP, "open ", "queue/", sub) ;
  for (;;)
  {
    errno = 0 ;
    struct dirent *de = readdir(d) ;
    if (!de) break ;
    if (!queue_id_valid(de->d_name)) continue ;
    struct entry e = { .name = names.len, .isnew = isnew } ;
    id_split(de->d_name, &e) ;
    if (!stralloc_catb(&names, de->d_name, strlen(de->d_name) + 1)
     || !genalloc_append(struct entry, &entries, &e)) dienomem() ;
  }
  if (errno) strerr_diefu3sys(EX_TEMP, "read ", "queue/", sub) ;
  closedir(d) ;
}

static void read_locals (void)
{
  stralloc me = STRALLOC_ZERO ;
  int r = control_readlist(&locals, "locals") ;
  if (r < 0) strerr_diefu1sys(EX_TEMP, "read control/locals") ;
  if (r) return ;
  if (control_readline(&me, "me", 0) < 0) strerr_diefu1sys(EX_TEMP, "read control/me") ;
  if (!me.len)
  {
    if (!sagethostname(&me) || !stralloc_0(&me)) strerr_diefu1sys(EX_TEMP, "get the host name") ;
    me.len-- ;
  }
  if (!stralloc_copyb(&locals, me.s, me.len + 1)) dienomem() ;
  stralloc_free(&me) ;
}

static int is_local (char const *addr)
{
  size_t len = strlen(addr) ;
  size_t at = byte_rchr(addr, len, '@') ;
  if (at == len) return 1 ;
  return control_domain_in_list(locals.s, locals.len, addr + at + 1) ;
}

static int cat_u64 (stralloc *sa, uint64_t u)
{
  char fmt[UINT64_FMT] ;
  return stralloc_catb(sa, fmt, uint64_fmt(fmt, u)) ;
}

/* "3d4h", "4h12m", "12m5s", "5s" */
static int cat_age (stralloc *sa, uint64_t s)
{
  static char const unit[4] = { 'd', 'h', 'm', 's' } ;
  uint64_t v[4] = { s / 86400, s / 3600 % 24, s / 60 % 60, s % 60 } ;
  int i = 0 ;
  while (i < 3 && !v[i]) i++ ;
  if (!(cat_u64(sa, v[i]) && stralloc_catb(sa, unit + i, 1))) return 0 ;
  if (i < 3 && !(cat_u64(sa, v[i + 1]) && stralloc_catb(sa, unit + i + 1, 1))) return 0 ;
  return 1 ;
}

/* One message.  Returns 1 shown, 0 gone (delivered meanwhile), -1 bad. */
static int show (int qfd, int envfd, char const *id, int isnew, time_t now)
{
  struct queue_head h ;
  stralloc env = STRALLOC_ZERO ;
  uint64_t envbase ;
  char const *sub = isnew ? "new" : "cur" ;
  int dfd = openat(qfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (dfd < 0) strerr_diefu3sys(EX_TEMP, "open ", "queue/", sub) ;
  int r = queue_load(dfd, envfd, id, &h, &env, &envbase) ;
  int e = errno ;
  fd_close(dfd) ;
  if (r <= 0)
  {
    stralloc_free(&env) ;
    if (r < 0 && e == ENOENT) return 0 ;
    errno = e ;
    if (r < 0) strerr_warnwu4sys("read queue/", sub, "/", id) ;
    else strerr_warnw4x("malformed queue file queue/", sub, "/", id) ;
    return -1 ;
  }
  char date[DATE822_LEN] ;
  date822_fmt(date, (time_t)h.birth) ;
  uint64_t age = (uint64_t)now > h.birth ? (uint64_t)now - h.birth : 0 ;
  out.len = 0 ;
  if (!(stralloc_cats(&out, id) && stralloc_cats(&out, "  ") && stralloc_cats(&out, date)
     && stralloc_cats(&out, "  age=") && cat_age(&out, age)
     && stralloc_cats(&out, "  size=") && cat_u64(&out, h.size)
     && stralloc_cats(&out, "  from=<") && stralloc_cats(&out, env.s + 1) && stralloc_catb(&out, ">", 1)
     && (!isnew || stralloc_cats(&out, "  (not yet preprocessed)"))
     && stralloc_catb(&out, "\n", 1))) dienomem() ;
  size_t i = strlen(env.s) + 1 ;
  while (i < env.len && env.s[i])
  {
    char st = env.s[i] ;
    char const *addr = env.s + i + 1 ;
    char const *state = st == QUEUE_DONE ? "done  " : st == QUEUE_FAILED ? "failed" : "todo  " ;
    if (!(stralloc_cats(&out, "  ") && stralloc_cats(&out, state)
       && stralloc_cats(&out, is_local(addr) ? "  local   " : "  remote  ")
       && stralloc_cats(&out, addr))) dienomem() ;
    /* deferred: when it is tried again ("now": due, being tried, or qmgr
       is not running) */
    if (st == QUEUE_TODO && !isnew && h.next
     && !(stralloc_cats(&out, "  next=")
          && ((uint64_t)now >= h.next ? stralloc_cats(&out, "now") : cat_age(&out, h.next - (uint64_t)now))))
      dienomem() ;
    if (!stralloc_catb(&out, "\n", 1)) dienomem() ;
    i += strlen(addr) + 2 ;
  }
  stralloc_free(&env) ;
  if (buffer_put(buffer_1, out.s, out.len) < 0) strerr_diefu1sys(EX_TEMP, "write to stdout") ;
  return 1 ;
}

int main (int argc, char const *const *argv)
{
  stralloc q = STRALLOC_ZERO ;
  int bad = 0 ;
  if (argc > 1) strerr_dieusage(EX_PERM, "yubin-qread") ;
  if (!yubin_path(&q, "queue")) strerr_diefu1sys(EX_TEMP, "make the queue path") ;
  int qfd = open(q.s, O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (qfd < 0) strerr_diefu2sys(EX_TEMP, "open ", q.s) ;
  int envfd = openat(qfd, "env", O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (envfd < 0 && errno != ENOENT) strerr_diefu2sys(EX_TEMP, "open ", "queue/env") ;
  read_locals() ;
  collect(qfd, "cur", 0) ;
  collect(qfd, "new", 1) ;
  size_t n = genalloc_len(struct entry, &entries) ;
  struct entry *es = genalloc_s(struct entry, &entries) ;
  if (n) qsort(es, n, sizeof(*es), entry_cmp) ;
  time_t now = time(0) ;
  for (size_t k = 0 ; k < n ; k++)
    if (show(qfd, envfd, names.s + es[k].name, es[k].isnew, now) < 0) bad = 1 ;
  if (!buffer_flush(buffer_1)) strerr_diefu1sys(EX_TEMP, "write to stdout") ;
  if (envfd >= 0) fd_close(envfd) ;
  fd_close(qfd) ;
  stralloc_free(&q) ;
  stralloc_free(&names) ;
  stralloc_free(&locals) ;
  stralloc_free(&out) ;
  genalloc_free(struct entry, &entries) ;
  return bad ? EX_TEMP : 0 ;
}
