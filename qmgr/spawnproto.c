/* The spawn protocol's records: see spawnproto.h. */

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include <skalibs/bytestr.h>
#include <skalibs/djbunix.h>
#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>
#include <skalibs/types.h>

#include "qmgr/spawnproto.h"

static int jobid_ok (char const *s, size_t len)
{
  return len && len <= SPAWN_JOBIDMAX && !memchr(s, 0, len) ;
}

int spawn_request_put (stralloc *sa, struct spawn_request const *r, int kind)
{
  size_t base = sa->len ;
  size_t jl = strlen(r->jobid) ;
  char fmt[UINT64_FMT] ;
  size_t fl = uint64_fmt(fmt, r->msgoff) ;
  if (!jobid_ok(r->jobid, jl) || !*r->msgid
   || (kind == SPAWN_ONE ? r->nrcpts != 1 : kind != SPAWN_LIST || !r->nrcpts))
    goto inval ;
  if (!stralloc_catb(sa, r->jobid, jl + 1)
   || !stralloc_catb(sa, r->msgid, strlen(r->msgid) + 1)
   || !stralloc_catb(sa, fmt, fl) || !stralloc_0(sa)
   || !stralloc_catb(sa, r->sender, strlen(r->sender) + 1)) goto nomem ;
  char const *a = r->rcpts ;
  for (size_t i = 0 ; i < r->nrcpts ; i++)
  {
    size_t al = strlen(a) ;
    if (kind == SPAWN_LIST && !al) goto inval ;   /* it would end the list */
    if (!stralloc_catb(sa, a, al + 1)) goto nomem ;
    a += al + 1 ;
  }
  if (kind == SPAWN_LIST && !stralloc_0(sa)) goto nomem ;
  return 1 ;
 inval:
  sa->len = base ;
  errno = EINVAL ;
  return 0 ;
 nomem:
  sa->len = base ;
  errno = ENOMEM ;
  return 0 ;
}

int spawn_result_put (stralloc *sa, char const *jobid, unsigned int code, char const *text, size_t textlen)
{
  size_t base = sa->len ;
  size_t jl = strlen(jobid) ;
  char fmt[UINT_FMT] ;
  size_t fl = uint_fmt(fmt, code) ;
  if (!jobid_ok(jobid, jl)) { errno = EINVAL ; return 0 ; }
  if (textlen > SPAWN_TEXTMAX) textlen = SPAWN_TEXTMAX ;
  if (!stralloc_catb(sa, jobid, jl + 1)
   || !stralloc_catb(sa, fmt, fl) || !stralloc_0(sa)
   || !stralloc_catb(sa, text, textlen) || !stralloc_0(sa))
  {
    sa->len = base ;
    errno = ENOMEM ;
    return 0 ;
  }
  for (size_t i = sa->len - 1 - textlen ; i + 1 < sa->len ; i++)
    if (!sa->s[i] || sa->s[i] == '\n') sa->s[i] = ' ' ;
  return 1 ;
}

/* Drop the records handed out, so that the buffer holds only what is
 * still to be read. */
static void compact (struct spawn_decoder *d)
{
  if (!d->pos) return ;
  memmove(d->buf.s, d->buf.s + d->pos, d->buf.len - d->pos) ;
  d->buf.len -= d->pos ;
  d->pos = 0 ;
}

int spawn_feed (struct spawn_decoder *d, char const *s, size_t len)
{
  compact(d) ;
  return stralloc_catb(&d->buf, s, len) ;
}

ssize_t spawn_fill (struct spawn_decoder *d, int fd, size_t n)
{
  compact(d) ;
  if (!stralloc_readyplus(&d->buf, n)) { errno = ENOMEM ; return -1 ; }
  ssize_t r = read(fd, d->buf.s + d->buf.len, n) ;
  if (r > 0) d->buf.len += r ;
  return r ;
}

ssize_t spawn_sendfd (int sock, char const *s, size_t len, int passfd)
{
  struct iovec v = { .iov_base = (char *)s, .iov_len = len } ;
  struct msghdr mh = { .msg_iov = &v, .msg_iovlen = 1 } ;
  union { struct cmsghdr h ; char buf[CMSG_SPACE(sizeof(int))] ; } ctl ;
  if (passfd >= 0)
  {
    memset(&ctl, 0, sizeof(ctl)) ;
    mh.msg_control = ctl.buf ;
    mh.msg_controllen = sizeof(ctl.buf) ;
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh) ;
    c->cmsg_level = SOL_SOCKET ;
    c->cmsg_type = SCM_RIGHTS ;
    c->cmsg_len = CMSG_LEN(sizeof(int)) ;
    memcpy(CMSG_DATA(c), &passfd, sizeof(int)) ;
  }
  return sendmsg(sock, &mh, MSG_NOSIGNAL) ;
}

#define FDS_PER_READ 8

ssize_t spawn_fill_fds (struct spawn_decoder *d, int sock, size_t n, genalloc *fds)
{
  compact(d) ;
  if (!stralloc_readyplus(&d->buf, n)) { errno = ENOMEM ; return -1 ; }
  struct iovec v = { .iov_base = d->buf.s + d->buf.len, .iov_len = n } ;
  union { struct cmsghdr h ; char buf[CMSG_SPACE(FDS_PER_READ * sizeof(int))] ; } ctl ;
  struct msghdr mh = { .msg_iov = &v, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) } ;
  ssize_t r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC) ;
  if (r < 0) return r ;
  int bad = !!(mh.msg_flags & MSG_CTRUNC), nomem = 0 ;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh) ; c ; c = CMSG_NXTHDR(&mh, c))
  {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue ;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int) ;
    for (size_t i = 0 ; i < k ; i++)
    {
      int fd ;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int)) ;
      if (bad || nomem || !genalloc_append(int, fds, &fd)) { nomem = !bad ; fd_close(fd) ; }
    }
  }
  if (bad) { errno = EPROTO ; return -1 ; }
  if (nomem) { errno = ENOMEM ; return -1 ; }
  d->buf.len += r ;
  return r ;
}

size_t spawn_pending (struct spawn_decoder const *d)
{
  return d->buf.len - d->pos ;
}

void spawn_decoder_free (struct spawn_decoder *d)
{
  stralloc_free(&d->buf) ;
  d->pos = 0 ;
}

/* Split the record at d->pos: want fields, then, if list, non-empty
 * fields up to an empty one (*nlist of them, the first at *list0).
 * Returns the record's length, 0 if it is not complete yet, -1 if it is
 * too long (errno EMSGSIZE). */
static ssize_t split (struct spawn_decoder const *d, char const **f, unsigned int want,
                      int list, size_t *nlist, char const **list0)
{
  char const *s = d->buf.s ;
  size_t len = d->buf.len, p = d->pos, n = 0 ;
  unsigned int k = 0 ;
  for (;;)
  {
    if (k == want && !list) break ;
    size_t z = byte_chr(s + p, len - p, 0) ;
    if (p + z >= len)
    {
      if (len - d->pos > d->max) { errno = EMSGSIZE ; return -1 ; }
      return 0 ;
    }
    if (k < want) f[k++] = s + p ;
    else if (!z) { p++ ; break ; }   /* the empty field: end of the list */
    else if (!n++) *list0 = s + p ;
    p += z + 1 ;
  }
  if (p - d->pos > d->max) { errno = EMSGSIZE ; return -1 ; }
  if (list) *nlist = n ;
  return p - d->pos ;
}

static int proto (void)
{
  errno = EPROTO ;
  return -1 ;
}

int spawn_request_next (struct spawn_decoder *d, struct spawn_request *r)
{
  char const *f[5] ;
  size_t n = 1 ;
  char const *list0 = 0 ;
  int list = d->kind == SPAWN_LIST ;
  ssize_t len = split(d, f, list ? 4 : 5, list, &n, &list0) ;
  if (len <= 0) return len ;
  size_t ol = strlen(f[2]) ;
  if (!jobid_ok(f[0], strlen(f[0])) || !*f[1] || !ol || uint64_scan(f[2], &r->msgoff) != ol || !n)
    return proto() ;
  r->jobid = f[0] ;
  r->msgid = f[1] ;
  r->sender = f[3] ;
  r->rcpts = list ? list0 : f[4] ;
  r->nrcpts = n ;
  d->pos += len ;
  return 1 ;
}

int spawn_batch_put (stralloc *sa, char const *jobid, char const *rcpt, struct spawn_delivery const *d, size_t n)
{
  size_t base = sa->len ;
  size_t jl = strlen(jobid) ;
  if (!jobid_ok(jobid, jl) || !n || n > SPAWN_BATCHMAX) { errno = EINVAL ; return 0 ; }
  for (size_t i = 0 ; i < n ; i++) if (!*d[i].msgid) { errno = EINVAL ; return 0 ; }
  if (!stralloc_catb(sa, jobid, jl + 1) || !stralloc_catb(sa, rcpt, strlen(rcpt) + 1)) goto nomem ;
  for (size_t i = 0 ; i < n ; i++)
  {
    char fmt[UINT64_FMT] ;
    if (!stralloc_catb(sa, d[i].msgid, strlen(d[i].msgid) + 1)
     || !stralloc_catb(sa, fmt, uint64_fmt(fmt, d[i].msgoff)) || !stralloc_0(sa)
     || !stralloc_catb(sa, d[i].sender, strlen(d[i].sender) + 1)
     || !stralloc_catb(sa, fmt, ulong_fmt(fmt, d[i].rcptno)) || !stralloc_0(sa)
     || !stralloc_catb(sa, d[i].check ? "1" : "0", 2)) goto nomem ;
  }
  if (!stralloc_0(sa)) goto nomem ;
  return 1 ;
 nomem:
  sa->len = base ;
  errno = ENOMEM ;
  return 0 ;
}

int spawn_batch_next (struct spawn_decoder *dec, struct spawn_batch *b)
{
  char const *s = dec->buf.s ;
  size_t len = dec->buf.len, p = dec->pos ;
  char const *f[5] ;
  unsigned int k = 0 ;   /* fields of the record so far */
  size_t n = 0 ;
  for (;;)
  {
    size_t z = byte_chr(s + p, len - p, 0) ;
    if (p + z >= len)
    {
      if (len - dec->pos > dec->max) { errno = EMSGSIZE ; return -1 ; }
      return 0 ;
    }
    char const *x = s + p ;
    p += z + 1 ;
    if (k == 0) b->jobid = x ;
    else if (k == 1) b->rcpt = x ;
    else
    {
      unsigned int j = (k - 2) % 5 ;
      if (!j && !z) break ;   /* the empty field: end of the list */
      f[j] = x ;
      if (j == 4)
      {
        struct spawn_delivery *d = b->d + n ;
        size_t ol = strlen(f[1]), rl = strlen(f[3]) ;
        if (n >= SPAWN_BATCHMAX || !ol || uint64_scan(f[1], &d->msgoff) != ol
         || !rl || ulong_scan(f[3], &d->rcptno) != rl || (strcmp(f[4], "0") && strcmp(f[4], "1")))
          return proto() ;
        d->msgid = f[0] ;
        d->sender = f[2] ;
        d->check = f[4][0] == '1' ;
        n++ ;
      }
    }
    k++ ;
  }
  if (p - dec->pos > dec->max) { errno = EMSGSIZE ; return -1 ; }
  if (!jobid_ok(b->jobid, strlen(b->jobid)) || !n || (k - 2) % 5) return proto() ;
  b->n = n ;
  dec->pos = p ;
  return 1 ;
}

int spawn_result_next (struct spawn_decoder *d, struct spawn_result *r)
{
  char const *f[3] ;
  ssize_t len = split(d, f, 3, 0, 0, 0) ;
  if (len <= 0) return len ;
  size_t cl = strlen(f[1]) ;
  if (!jobid_ok(f[0], strlen(f[0])) || !cl || uint_scan(f[1], &r->code) != cl) return proto() ;
  r->jobid = f[0] ;
  r->text = f[2] ;
  d->pos += len ;
  return 1 ;
}
