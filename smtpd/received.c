/* The Received: header: see received.h. */

#include <string.h>
#include <time.h>

#include <skalibs/stralloc.h>

#include "date822.h"
#include "received.h"

/* untrusted s[0..len), made safe, appended to sa */
static int catsafe (stralloc *sa, char const *s, size_t len)
{
  size_t start = sa->len ;
  if (!stralloc_readyplus(sa, len < RECEIVED_TEXTMAX ? len : RECEIVED_TEXTMAX)) return 0 ;
  for (size_t i = 0 ; i < len && sa->len - start < RECEIVED_TEXTMAX ; i++)
  {
    unsigned char c = s[i] ;
    if (c < 0x21 || c > 0x7e || c == '(' || c == ')') continue ;
    sa->s[sa->len++] = (char)c ;
  }
  return sa->len > start || stralloc_cats(sa, "unknown") ;
}

int received_sanitize (stralloc *sa, char const *s, size_t len)
{
  sa->len = 0 ;
  if (!catsafe(sa, s, len) || !stralloc_0(sa)) return 0 ;
  sa->len-- ;
  return 1 ;
}

int received_header (stralloc *sa, struct received const *r)
{
  char date[DATE822_LEN] ;
  date822_fmt(date, r->when) ;
  if (!stralloc_cats(sa, "Received: from ") || !stralloc_catb(sa, r->helo, r->helolen) || !stralloc_cats(sa, " (")) return 0 ;
  if (r->host && *r->host) { if (!catsafe(sa, r->host, strlen(r->host))) return 0 ; }
  else if (!stralloc_cats(sa, r->ip)) return 0 ;
  if (!stralloc_cats(sa, " [") || !stralloc_cats(sa, r->ip) || !stralloc_cats(sa, "])\n")) return 0 ;
  if (r->tlsproto)
  {
    if (!stralloc_cats(sa, "\t(using ") || !catsafe(sa, r->tlsproto, r->tlsprotolen)
     || !stralloc_cats(sa, " with cipher ") || !catsafe(sa, r->tlscipher, r->tlscipherlen)
     || !stralloc_cats(sa, ")\n")) return 0 ;
  }
  /* who, never how: the password is not kept anywhere */
  if (r->authuser)
  {
    if (!stralloc_cats(sa, "\t(authenticated as ") || !catsafe(sa, r->authuser, r->authuserlen)
     || !stralloc_cats(sa, ")\n")) return 0 ;
  }
  if (!stralloc_cats(sa, "\tby ") || !stralloc_catb(sa, r->me, r->melen) || !stralloc_cats(sa, " (yubin) with ")) return 0 ;
  /* RFC 3848 and RFC 6531: ESMTP, ESMTPS, ESMTPA, ESMTPSA, UTF8SMTP... */
  if (!stralloc_cats(sa, r->smtputf8 ? "UTF8SMTP" : r->esmtp ? "ESMTP" : "SMTP")) return 0 ;
  if (r->esmtp && r->tlsproto && !stralloc_cats(sa, "S")) return 0 ;
  if (r->esmtp && r->authuser && !stralloc_cats(sa, "A")) return 0 ;
  return stralloc_cats(sa, " id ") && stralloc_cats(sa, r->id) && stralloc_cats(sa, ";\n\t")
      && stralloc_cats(sa, date) && stralloc_cats(sa, "\n") ;
}
