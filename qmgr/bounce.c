/* The failure notice: see bounce.h. */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <skalibs/stralloc.h>

#include "date822.h"
#include "qq.h"
#include "qmgr/bounce.h"

int bounce_null_sender (char const *s)
{
  return !*s || !strcmp(s, "#@[]") ;
}

int bounce_add_failure (stralloc *failures, char const *rcpt, char const *text)
{
  return stralloc_catb(failures, "<", 1) && stralloc_cats(failures, rcpt)
      && stralloc_catb(failures, ">:\n", 3) && stralloc_cats(failures, text)
      && stralloc_catb(failures, "\n\n", 2) ;
}

static int cat_date (stralloc *sa, time_t t)
{
  char buf[DATE822_LEN] ;
  date822_fmt(buf, t) ;
  return stralloc_cats(sa, buf) ;
}

/* The header and the text of the notice, up to the copy of the message. */
static int notice (stralloc *sa, struct bounce const *b)
{
  return stralloc_cats(sa, "Date: ") && cat_date(sa, b->when)
   && stralloc_cats(sa, "\nFrom: MAILER-DAEMON@") && stralloc_cats(sa, b->me)
   && stralloc_cats(sa, "\nTo: ") && stralloc_cats(sa, b->sender)
   && stralloc_cats(sa, "\nSubject: failure notice\nMessage-ID: <bounce.") && stralloc_cats(sa, b->id)
   && stralloc_catb(sa, "@", 1) && stralloc_cats(sa, b->me)
   && stralloc_cats(sa, ">\nAuto-Submitted: auto-replied\n\nHi. This is the yubin-qmgr program at ")
   && stralloc_cats(sa, b->me)
   && stralloc_cats(sa, ".\nI'm afraid I wasn't able to deliver your message to the following addresses.\n"
                        "This is a permanent error; I've given up. Sorry it didn't work out.\n\n")
   && stralloc_catb(sa, b->failures, b->failureslen)
   && stralloc_cats(sa, "--- Below this line is a copy of the message.\n\n") ;
}

int bounce_send (char const *prog, struct bounce const *b)
{
  struct qq q = QQ_ZERO ;
  stralloc sa = STRALLOC_ZERO ;
  if (!notice(&sa, b)) { stralloc_free(&sa) ; return QQ_NOMEM ; }
  if (qq_open(&q, prog) < 0)
  {
    int e = errno ;
    stralloc_free(&sa) ;
    errno = e ;
    return -1 ;
  }
  qq_put(&q, sa.s, sa.len) ;
  stralloc_free(&sa) ;
  /* A read error ends the copy early: the bounce still goes, as qmail's. */
  if (b->msgfd >= 0)
  {
    char buf[8192] ;
    uint64_t left = b->maxbytes ;
    while (left)
    {
      ssize_t r = read(b->msgfd, buf, left < sizeof(buf) ? left : sizeof(buf)) ;
      if (r < 0 && errno == EINTR) continue ;
      if (r <= 0) break ;
      qq_put(&q, buf, r) ;
      left -= r ;
    }
    if (!left && b->msgsize > b->maxbytes) qq_puts(&q, "\n[message truncated]\n") ;
  }
  qq_from(&q, "") ;
  qq_to(&q, b->sender) ;
  return qq_close(&q) ;
}
