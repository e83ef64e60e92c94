/* The failure notice, an RFC 3464 DSN: see bounce.h.
 *
 * The failures records: kind byte ('F' failed, 'X' expired), recipient,
 * '\0', text, '\0'.  Only this file reads them. */

#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <skalibs/bytestr.h>
#include <skalibs/stralloc.h>
#include <skalibs/types.h>

#include "control.h"
#include "date822.h"
#include "qq.h"
#include "ylog.h"
#include "qmgr/bounce.h"

#define KIND_FAILED 'F'
#define KIND_EXPIRED 'X'
#define TEXTMAX 900           /* longest reason written in a header field */

/* what yubin-qmgr wrote for an expired recipient before bounce_add_expired */
static char const legacy_expired[] = "This message has been in the queue too long; I've given up.\nLast error: " ;

int bounce_null_sender (char const *s)
{
  return !*s || !strcmp(s, "#@[]") ;
}

int bounce_wanted (char const *s)
{
  return !!strcmp(s, "#@[]") ;
}

char const *bounce_from (char const *s)
{
  return bounce_null_sender(s) ? "#@[]" : "" ;
}

static int add_record (stralloc *failures, char kind, char const *rcpt, char const *text)
{
  return stralloc_catb(failures, &kind, 1) && stralloc_catb(failures, rcpt, strlen(rcpt) + 1)
      && stralloc_catb(failures, text, strlen(text) + 1) ;
}

int bounce_add_failure (stralloc *failures, char const *rcpt, char const *text)
{
  size_t n = sizeof(legacy_expired) - 1 ;
  if (!strncmp(text, legacy_expired, n)) return add_record(failures, KIND_EXPIRED, rcpt, text + n) ;
  return add_record(failures, KIND_FAILED, rcpt, text) ;
}

int bounce_add_expired (stralloc *failures, char const *rcpt, char const *lasttext)
{
  return add_record(failures, KIND_EXPIRED, rcpt, lasttext) ;
}

int bounce_recipient (stralloc *to, char const *sender, char const *me)
{
  to->len = 0 ;
  if (!bounce_null_sender(sender))
  {
    if (!stralloc_catb(to, sender, strlen(sender) + 1)) return -1 ;
    to->len-- ;
    return 1 ;
  }
  if (control_readline(to, "doublebounceto", "postmaster") < 0) return -1 ;
  if (to->len && !memchr(to->s, '@', to->len)
   && !(stralloc_catb(to, "@", 1) && stralloc_cats(to, me))) return -1 ;
  if (!stralloc_0(to)) return -1 ;
  to->len-- ;
  return 1 ;
}

/* ---- reading a failure text ---- */

struct diag
{
  char status[12] ;          /* "5.1.1" */
  char const *host ;         /* who answered, or NULL */
  size_t hostlen ;
  char const *reply ;        /* the SMTP reply, or NULL: our own text */
} ;

static int is_digit (char c) { return c >= '0' && c <= '9' ; }

/* An RFC 3463 code "c.s.d" (c 2, 4 or 5; s and d 1 to 3 digits) at s,
 * not followed by a digit or a dot: its length, else 0. */
static size_t status_scan (char const *s)
{
  size_t i = 0 ;
  if (s[0] != '2' && s[0] != '4' && s[0] != '5') return 0 ;
  if (s[1] != '.') return 0 ;
  i = 2 ;
  for (int part = 0 ; part < 2 ; part++)
  {
    size_t n = 0 ;
    while (is_digit(s[i]) && n < 4) { i++ ; n++ ; }
    if (!n || n > 3) return 0 ;
    if (!part) { if (s[i] != '.') return 0 ; i++ ; }
  }
  if (is_digit(s[i]) || s[i] == '.') return 0 ;
  return i ;
}

static int host_char (char c)
{
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '-' || c == '_' ;
}

static int host_ok (char const *s, size_t len)
{
  if (!len) return 0 ;
  if (s[0] == '[') return len > 2 && s[len - 1] == ']' ;
  for (size_t i = 0 ; i < len ; i++) if (!host_char(s[i])) return 0 ;
  return 1 ;
}

static int ip_like (char const *s, size_t len)
{
  int sep = 0 ;
  if (!len) return 0 ;
  for (size_t i = 0 ; i < len ; i++)
  {
    char c = s[i] ;
    if (c == '.' || c == ':') sep = 1 ;
    else if (!is_digit(c) && !(c >= 'a' && c <= 'f') && !(c >= 'A' && c <= 'F')) return 0 ;
  }
  return sep ;
}

/* The host of "<host>[<ip>] said:", "<host> <ip> said:" or "<host> said:",
 * in text[0..end). */
static void host_scan (struct diag *d, char const *text, size_t end)
{
  while (end && text[end - 1] == ' ') end-- ;
  size_t b = end ;
  while (b && text[b - 1] != ' ') b-- ;
  char const *t = text + b ;
  size_t tl = end - b ;
  if (tl > 2 && t[tl - 1] == ']')
  {
    size_t lb = byte_chr(t, tl, '[') ;
    if (lb < tl && lb && host_ok(t, lb)) { d->host = t ; d->hostlen = lb ; return ; }
    if (!lb) { d->host = t ; d->hostlen = tl ; return ; }   /* "[ip] said:" */
    return ;
  }
  if (ip_like(t, tl) && b)
  {
    size_t e0 = b - 1, b0 = e0 ;
    while (b0 && text[b0 - 1] != ' ') b0-- ;
    if (host_ok(text + b0, e0 - b0)) { d->host = text + b0 ; d->hostlen = e0 - b0 ; return ; }
  }
  if (host_ok(t, tl) && (memchr(t, '.', tl) || (tl == 9 && !memcmp(t, "localhost", 9))))
  {
    d->host = t ;
    d->hostlen = tl ;
  }
}

static void diag_scan (struct diag *d, char kind, char const *text)
{
  d->status[0] = 0 ;
  d->host = 0 ; d->hostlen = 0 ;
  d->reply = 0 ;
  char const *said = strstr(text, " said: ") ;
  if (said)
  {
    char const *r = said + 7 ;
    while (*r == ' ') r++ ;
    host_scan(d, text, said - text) ;
    if (r[0] >= '2' && r[0] <= '5' && is_digit(r[1]) && is_digit(r[2]) && (!r[3] || r[3] == ' ' || r[3] == '-'))
    {
      d->reply = r ;
      if (r[3])
      {
        size_t n = status_scan(r + 4) ;
        if (n && r[4] == r[0] && n < sizeof(d->status)) { memcpy(d->status, r + 4, n) ; d->status[n] = 0 ; }
      }
      if (!d->status[0] && kind != KIND_EXPIRED && (r[0] == '4' || r[0] == '5'))
      {
        d->status[0] = r[0] ;
        memcpy(d->status + 1, ".0.0", 5) ;
      }
    }
  }
  if (!d->status[0])
    for (char const *h = strchr(text, '#') ; h ; h = strchr(h + 1, '#'))
    {
      size_t n = status_scan(h + 1) ;
      if (n && n < sizeof(d->status)) { memcpy(d->status, h + 1, n) ; d->status[n] = 0 ; break ; }
    }
  if (!d->status[0]) memcpy(d->status, kind == KIND_EXPIRED ? "4.4.7" : "5.0.0", 6) ;
}

/* ---- writing ---- */

/* s[0..len) as one header-safe line: control bytes become spaces,
 * non-ASCII '?', at most TEXTMAX bytes. */
static int cat_field (stralloc *sa, char const *s, size_t len)
{
  if (len > TEXTMAX) len = TEXTMAX ;
  if (!stralloc_readyplus(sa, len)) return 0 ;
  for (size_t i = 0 ; i < len ; i++)
  {
    unsigned char c = s[i] ;
    sa->s[sa->len++] = c < 0x20 || c == 0x7f ? ' ' : c >= 0x80 ? '?' : (char)c ;
  }
  return 1 ;
}

/* s for the human: control bytes but '\n' become spaces. */
static int cat_text (stralloc *sa, char const *s)
{
  size_t len = strlen(s) ;
  if (!stralloc_readyplus(sa, len)) return 0 ;
  for (size_t i = 0 ; i < len ; i++)
  {
    unsigned char c = s[i] ;
    sa->s[sa->len++] = (c < 0x20 && c != '\n') || c == 0x7f ? ' ' : (char)c ;
  }
  return 1 ;
}

static int cat_date (stralloc *sa, time_t t)
{
  char buf[DATE822_LEN] ;
  date822_fmt(buf, t) ;
  return stralloc_cats(sa, buf) ;
}

static int cat_u64 (stralloc *sa, uint64_t u)
{
  char buf[UINT64_FMT] ;
  return stralloc_catb(sa, buf, uint64_fmt(buf, u)) ;
}

/* Part 1, for a human. */
static int human_part (stralloc *sa, struct bounce const *b, int headeronly)
{
  if (!(stralloc_cats(sa, "Hi. This is the mail delivery program at ") && stralloc_cats(sa, b->me)
     && stralloc_cats(sa, ".\nI'm sorry: I could not deliver your message to the addresses below,\n"
                          "and I have given up on them for good.\n\n"))) return 0 ;
  char const *s = b->failures, *end = b->failures + b->failureslen ;
  while (s < end)
  {
    char kind = *s++ ;
    char const *rcpt = s ;
    s += strlen(s) + 1 ;
    char const *text = s ;
    s += strlen(s) + 1 ;
    if (!(stralloc_catb(sa, "<", 1) && stralloc_cats(sa, rcpt) && stralloc_catb(sa, ">:\n", 3))) return 0 ;
    if (kind == KIND_EXPIRED && !stralloc_cats(sa, "I tried for too long (this message has been in the queue too long) and gave up.\nLast error: ")) return 0 ;
    if (!(cat_text(sa, *text ? text : "permanent failure") && stralloc_catb(sa, "\n\n", 2))) return 0 ;
  }
  if (b->msgfd < 0) return stralloc_cats(sa, "The delivery report for programs follows.\n") ;
  if (!headeronly) return stralloc_cats(sa, "The delivery report for programs follows, then your message.\n") ;
  return stralloc_cats(sa, "The delivery report for programs follows, then the header of your\nmessage: it is larger than ")
      && cat_u64(sa, b->maxbytes) && stralloc_cats(sa, " bytes, too large to send back whole.\n") ;
}

/* Part 2, message/delivery-status. */
static int status_part (stralloc *sa, struct bounce const *b)
{
  if (!(stralloc_cats(sa, "Reporting-MTA: dns; ") && cat_field(sa, b->me, strlen(b->me))
     && stralloc_cats(sa, "\nX-Yubin-Queue-ID: ") && cat_field(sa, b->id, strlen(b->id))
     && stralloc_catb(sa, "\n", 1))) return 0 ;
  if (b->arrival && !(stralloc_cats(sa, "Arrival-Date: ") && cat_date(sa, b->arrival) && stralloc_catb(sa, "\n", 1))) return 0 ;
  char const *s = b->failures, *end = b->failures + b->failureslen ;
  while (s < end)
  {
    struct diag d ;
    char kind = *s++ ;
    char const *rcpt = s ;
    s += strlen(s) + 1 ;
    char const *text = *s ? s : "permanent failure" ;
    s += strlen(s) + 1 ;
    diag_scan(&d, kind, text) ;
    if (!(stralloc_cats(sa, "\nFinal-Recipient: rfc822; ") && cat_field(sa, rcpt, strlen(rcpt))
       && stralloc_cats(sa, "\nAction: failed\nStatus: ") && stralloc_cats(sa, d.status)
       && stralloc_catb(sa, "\n", 1))) return 0 ;
    if (d.host && !(stralloc_cats(sa, "Remote-MTA: dns; ") && cat_field(sa, d.host, d.hostlen) && stralloc_catb(sa, "\n", 1))) return 0 ;
    if (!(stralloc_cats(sa, d.reply ? "Diagnostic-Code: smtp; " : "Diagnostic-Code: x-yubin; ")
       && cat_field(sa, d.reply ? d.reply : text, strlen(d.reply ? d.reply : text))
       && stralloc_catb(sa, "\n", 1))) return 0 ;
  }
  return 1 ;
}

/* Read up to n bytes of the message.  A read error ends the copy early:
 * the notice still goes, as qmail's.  Returns 1, 0 on ENOMEM. */
static int read_copy (stralloc *sa, int fd, uint64_t n)
{
  while (n)
  {
    size_t want = n < 65536 ? (size_t)n : 65536 ;
    if (!stralloc_readyplus(sa, want)) return 0 ;
    ssize_t r = read(fd, sa->s + sa->len, want) ;
    if (r < 0 && errno == EINTR) continue ;
    if (r <= 0) break ;
    sa->len += r ;
    n -= r ;
  }
  return 1 ;
}

/* Part 3: the message, or its header section cut to maxbytes at a line
 * end.  *headeronly says which. */
static int copy_part (stralloc *sa, struct bounce const *b, int *headeronly)
{
  *headeronly = b->msgsize > b->maxbytes ;
  if (b->msgfd < 0) return 1 ;
  if (!*headeronly) return read_copy(sa, b->msgfd, b->msgsize) ;
  if (!read_copy(sa, b->msgfd, b->maxbytes)) return 0 ;
  if (sa->len && sa->s[0] == '\n') { sa->len = 0 ; return 1 ; }   /* no header at all */
  char const *e = sa->len ? memmem(sa->s, sa->len, "\n\n", 2) : 0 ;
  if (e) sa->len = e + 1 - sa->s ;
  else
  {
    size_t n = sa->len ;
    while (n && sa->s[n - 1] != '\n') n-- ;
    sa->len = n ;
  }
  return 1 ;
}

static int has_8bit (char const *s, size_t len)
{
  for (size_t i = 0 ; i < len ; i++) if ((unsigned char)s[i] >= 0x80) return 1 ;
  return 0 ;
}

static int cat_part (stralloc *sa, char const *boundary, char const *head, stralloc const *body)
{
  return stralloc_cats(sa, "\n--") && stralloc_cats(sa, boundary) && stralloc_catb(sa, "\n", 1)
      && stralloc_cats(sa, head) && stralloc_catb(sa, "\n", 1)
      && stralloc_catb(sa, body->s, body->len)
      && (!body->len || body->s[body->len - 1] == '\n' || stralloc_catb(sa, "\n", 1)) ;
}

static int in_part (char const *boundary, stralloc const *p)
{
  return p->len && memmem(p->s, p->len, boundary, strlen(boundary)) ;
}

static int in_any (char const *boundary, stralloc const *p1, stralloc const *p2, stralloc const *p3)
{
  return in_part(boundary, p1) || in_part(boundary, p2) || in_part(boundary, p3) ;
}

static int assemble (stralloc *sa, struct bounce const *b, char const *rcpt,
                     stralloc const *p1, stralloc const *p2, stralloc const *p3, int headeronly)
{
  char boundary[12 + 60 + 1 + UINT_FMT] ;
  unsigned int k = 0 ;
  do
  {
    size_t n = 0 ;
    memcpy(boundary, "=_yubin-dsn_", 12) ; n = 12 ;
    size_t il = strlen(b->id) ;
    if (il > 60) il = 60 ;
    memcpy(boundary + n, b->id, il) ; n += il ;
    boundary[n++] = '_' ;
    n += uint_fmt(boundary + n, k++) ;
    boundary[n] = 0 ;
  } while (in_any(boundary, p1, p2, p3) && k < 1000) ;
  int eight = has_8bit(p1->s, p1->len) || has_8bit(p3->s, p3->len) || has_8bit(rcpt, strlen(rcpt)) ;
  return stralloc_cats(sa, "Date: ") && cat_date(sa, b->when)
   && stralloc_cats(sa, "\nFrom: MAILER-DAEMON@") && stralloc_cats(sa, b->me)
   && stralloc_cats(sa, "\nTo: <") && stralloc_cats(sa, rcpt)
   && stralloc_cats(sa, ">\nSubject: failure notice\nMessage-ID: <bounce.") && stralloc_cats(sa, b->id)
   && stralloc_catb(sa, "@", 1) && stralloc_cats(sa, b->me)
   && stralloc_cats(sa, ">\nAuto-Submitted: auto-replied\nMIME-Version: 1.0\n"
                        "Content-Type: multipart/report; report-type=delivery-status;\n boundary=\"")
   && stralloc_cats(sa, boundary) && stralloc_cats(sa, "\"\n")
   && (!eight || stralloc_cats(sa, "Content-Transfer-Encoding: 8bit\n"))
   && stralloc_cats(sa, "\nThis is a delivery status notification (RFC 3464) in MIME format.\n")
   && cat_part(sa, boundary, "Content-Type: text/plain; charset=utf-8\nContent-Description: Notification\n", p1)
   && cat_part(sa, boundary, "Content-Type: message/delivery-status\nContent-Description: Delivery report\n", p2)
   && (b->msgfd < 0 || (headeronly && !p3->len)
       || cat_part(sa, boundary, headeronly ? "Content-Type: text/rfc822-headers\nContent-Description: Header of the undelivered message\n"
                                            : "Content-Type: message/rfc822\nContent-Description: Undelivered message\n", p3))
   && stralloc_cats(sa, "\n--") && stralloc_cats(sa, boundary) && stralloc_cats(sa, "--\n") ;
}

int bounce_make (stralloc *sa, struct bounce const *b, char const *rcpt)
{
  stralloc p1 = STRALLOC_ZERO, p2 = STRALLOC_ZERO, p3 = STRALLOC_ZERO ;
  int headeronly ;
  int ok = copy_part(&p3, b, &headeronly) && human_part(&p1, b, headeronly) && status_part(&p2, b)
        && assemble(sa, b, rcpt, &p1, &p2, &p3, headeronly) ;
  stralloc_free(&p1) ;
  stralloc_free(&p2) ;
  stralloc_free(&p3) ;
  return ok ;
}

int bounce_send (char const *prog, struct bounce const *b)
{
  struct qq q = QQ_ZERO ;
  stralloc sa = STRALLOC_ZERO ;
  stralloc to = STRALLOC_ZERO ;
  char const *rcpt = b->rcpt ;
  if (!rcpt)
  {
    if (bounce_recipient(&to, b->sender, b->me) < 0)
    {
      stralloc_free(&to) ;
      return errno == ENOMEM ? QQ_NOMEM : QQ_CONFIG ;
    }
    if (!to.len)
    {
      ylog("double-bounce", "id", b->id, "from", b->sender, "status", "dropped", (char *)0) ;
      stralloc_free(&to) ;
      return QQ_OK ;
    }
    rcpt = to.s ;
  }
  if (!bounce_make(&sa, b, rcpt))
  {
    stralloc_free(&sa) ;
    stralloc_free(&to) ;
    return QQ_NOMEM ;
  }
  if (qq_open(&q, prog) < 0)
  {
    int e = errno ;
    stralloc_free(&sa) ;
    stralloc_free(&to) ;
    errno = e ;
    return -1 ;
  }
  qq_put(&q, sa.s, sa.len) ;
  stralloc_free(&sa) ;
  qq_from(&q, bounce_from(b->sender)) ;
  qq_to(&q, rcpt) ;
  stralloc_free(&to) ;
  return qq_close(&q) ;
}
