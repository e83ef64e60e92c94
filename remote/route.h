/* Where mail for a domain goes: control/smtproutes (qmail's syntax), else
 * MX records (RFC 5321 5.1), else the domain's own address; a null MX
 * (RFC 7505) is a permanent failure.  The result is the ordered list of
 * addresses to try. */
#ifndef YUBIN_ROUTE_H
#define YUBIN_ROUTE_H

#include <stdint.h>
#include <skalibs/genalloc.h>
#include <skalibs/ip46.h>
#include <skalibs/tai.h>

#include "dns.h"

struct route_target
{
  char host[256] ;      /* the MX or relay host name (for SNI, TLSA, verify) */
  ip46 ip ;
  uint16_t port ;       /* 25, or the smtproutes port */
  uint16_t pref ;       /* MX preference (0 for a route or no MX) */
  int secure ;          /* the MX and address answers were DNSSEC-validated */
  char canon[256] ;     /* secure only: host's CNAME-expanded name, where
                           its TLSA is looked up first (RFC 7672 2.2.2);
                           "" when host is no alias */
} ;

enum route_status { ROUTE_OK, ROUTE_PERM, ROUTE_TEMP } ;

struct route
{
  enum route_status status ;
  genalloc targets ;    /* struct route_target, in the order to try */
  int smtproutes ;      /* the targets come from control/smtproutes */
  char why[256] ;       /* ROUTE_PERM / ROUTE_TEMP: for the log and DSN */
} ;
#define ROUTE_ZERO { .status = ROUTE_TEMP, .targets = GENALLOC_ZERO, .smtproutes = 0, .why = "" }

/* control/smtproutes, read once: lines "domain:relay[:port]", ".domain"
 * for subdomains, an empty domain for the default route, an empty relay
 * for "use DNS" (qmail-remote's semantics).  Returns 0 (and errno) on a
 * read error, 1 otherwise. */
extern int route_init (void) ;

/* After route_init returned 0: what went wrong, for the log ("bad
 * control/smtproutes line: ..."; a bad line gives errno EINVAL). */
extern char const *route_init_why (void) ;

/* Targets for domain.  Addresses of one host in AAAA-then-A order; hosts
 * in MX order; the domain itself when there is no MX. */
extern void route_lookup (struct dns *d, char const *domain, struct route *r, tain const *deadline) ;
extern void route_free (struct route *r) ;

#endif
