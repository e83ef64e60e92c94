/* The forwards of the delivery code (local/local.h): every forward line
 * of a run, queued last in one message (Delivered-To: and the message,
 * from NEWSENDER) through the qmail-queue client, common/qq.h; the
 * queue's answer becomes the reason. */

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <skalibs/bytestr.h>
#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>
#include <skalibs/types.h>

#include "exitcodes.h"
#include "qq.h"
#include "ylog.h"

#include "local/local.h"

int do_forward (struct run *r, char const *newsender, char const *cmds, genalloc *recips, unsigned long *qp, stralloc *why)
{
  struct qq q = QQ_ZERO ;
  stralloc prog = STRALLOC_ZERO ;
  size_t n = genalloc_len(size_t, recips) ;
  size_t const *off = genalloc_s(size_t, recips) ;
  char buf[65536] ;
  if (lseek(r->msgfd, r->start, SEEK_SET) < 0) return local_fail(why, EX_TEMP, 1, "unable to rewind the message (#4.3.0)", (char *)0) ;
  if (!qq_program(&prog)) local_dienomem() ;
  if (qq_open(&q, prog.s) < 0)
  {
    int code = local_fail(why, EX_TEMP, 1, "unable to run ", prog.s, " to forward the message (#4.3.0)", (char *)0) ;
    stralloc_free(&prog) ;
    return code ;
  }
  stralloc_free(&prog) ;
  *qp = (unsigned long)q.pid ;
  qq_put(&q, r->prefix.s + r->dtstart, r->prefix.len - r->dtstart) ;
  for (;;)
  {
    ssize_t k = read(r->msgfd, buf, sizeof(buf)) ;
    if (k < 0 && errno == EINTR) continue ;
    if (k < 0)
    {
      int code = local_fail(why, EX_TEMP, 1, "unable to read the message (#4.3.0)", (char *)0) ;
      qq_abort(&q) ;
      return code ;
    }
    if (!k) break ;
    qq_put(&q, buf, k) ;
  }
  qq_from(&q, newsender) ;
  for (size_t i = 0 ; i < n ; i++) qq_to(&q, cmds + off[i]) ;
  int c = qq_close(&q) ;
  if (c)
  {
    /* "Z4.3.0 qq write error" -> "... qq write error (#4.3.0)" */
    char const *st = qq_status(c) ;
    char code[16] ;
    size_t sp = str_chr(st, ' ') ;
    size_t cl = sp > 1 && sp - 1 < sizeof(code) ? sp - 1 : 0 ;
    memcpy(code, st + 1, cl) ;
    code[cl] = 0 ;
    return local_fail(why, st[0] == 'D' ? EX_PERM : EX_TEMP, 0, "unable to forward the message: ", st[sp] ? st + sp + 1 : st,
                      " (#", code, ")", (char *)0) ;
  }
  {
    char nb[SIZE_FMT], qb[ULONG_FMT] ;
    nb[size_fmt(nb, n)] = 0 ;
    qb[ulong_fmt(qb, *qp)] = 0 ;
    ylog("forwarded", "to", r->recip.s, "from", newsender, "rcpts", nb, "qp", qb, (char *)0) ;
  }
  return 0 ;
}
