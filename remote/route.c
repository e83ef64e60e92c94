/* Where mail for a domain goes: see route.h. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <skalibs/genalloc.h>
#include <skalibs/ip46.h>
#include <skalibs/stralloc.h>
#include <skalibs/types.h>

#include "control.h"
#include "route.h"

/* control/smtproutes, parsed: domain and relay are offsets in lines */
struct sroute
{
  size_t domain ;      /* "" default, ".x" subdomains, "x" exact; lower case */
  size_t relay ;       /* host name or literal, "" for DNS */
  uint16_t port ;
  int literal ;        /* relay is an IP literal, in ip */
  ip46 ip ;
} ;

static stralloc lines = STRALLOC_ZERO ;
static genalloc routes = GENALLOC_ZERO ;   /* struct sroute */
static char initwhy[200] ;

char const *route_init_why (void)
{
  return initwhy ;
}

static void lower (char *s)
{
  for (; *s ; s++) if (*s >= 'A' && *s <= 'Z') *s += 'a' - 'A' ;
}

/* parse one entry in place (it is NUL-terminated in lines at off) */
static int parse (size_t off, struct sroute *r)
{
  char *s = lines.s + off ;
  char *colon = strchr(s, ':') ;
  if (!colon) return 0 ;
  *colon = 0 ;
  lower(s) ;
  r->domain = off ;
  r->port = 25 ;
  r->literal = 0 ;
  char *relay = colon + 1 ;
  char *rest ;
  if (*relay == '[')
  {
    char *end = strchr(relay, ']') ;
    if (!end) return 0 ;
    *end = 0 ;
    relay++ ;
    if (!strncasecmp(relay, "ipv6:", 5)) relay += 5 ;
    size_t n = ip46_scan(relay, &r->ip) ;
    if (!n || relay[n]) return 0 ;
    r->literal = 1 ;
    rest = end + 1 ;
    if (*rest == ':') rest++ ;
    else if (*rest) return 0 ;
  }
  else
  {
    rest = strchr(relay, ':') ;
    if (rest) *rest++ = 0 ; else rest = relay + strlen(relay) ;
    /* a bare IPv4 address is a literal too (qmail accepts it) */
    size_t n = ip4_scan(relay, r->ip.ip) ;
    if (n && !relay[n]) { memset(r->ip.ip + 4, 0, 12) ; r->ip.is6 = 0 ; r->literal = 1 ; }
    lower(relay) ;
  }
  r->relay = relay - lines.s ;
  if (*rest)
  {
    uint16_t port ;
    size_t n = uint160_scan(rest, &port) ;
    if (!n || rest[n] || !port) return 0 ;
    r->port = port ;
  }
  return 1 ;
}

int route_init (void)
{
  initwhy[0] = 0 ;
  genalloc_setlen(struct sroute, &routes, 0) ;
  int r = control_readlist(&lines, "smtproutes") ;
  if (r < 0)
  {
    snprintf(initwhy, sizeof initwhy, "unable to read control/smtproutes") ;
    return 0 ;
  }
  size_t len = lines.len ;
  for (size_t i = 0 ; i < len ; )
  {
    size_t n = strlen(lines.s + i) ;
    struct sroute sr ;
    char copy[120] ;
    snprintf(copy, sizeof copy, "%s", lines.s + i) ;
    if (!parse(i, &sr))
    {
      snprintf(initwhy, sizeof initwhy, "bad control/smtproutes line: %.100s", copy) ;
      genalloc_setlen(struct sroute, &routes, 0) ;
      errno = EINVAL ;
      return 0 ;
    }
    if (!genalloc_catb(struct sroute, &routes, &sr, 1))
    {
      snprintf(initwhy, sizeof initwhy, "out of memory") ;
      return 0 ;
    }
    i += n + 1 ;
  }
  return 1 ;
}

/* qmail-remote's search: "a.b.c", ".b.c", ".c", "" */
static struct sroute const *find (char const *domain)
{
  size_t len = strlen(domain) ;
  size_t n = genalloc_len(struct sroute, &routes) ;
  struct sroute const *rs = genalloc_s(struct sroute, &routes) ;
  for (size_t i = 0 ; i <= len ; i++)
  {
    if (i && i < len && domain[i] != '.') continue ;
    for (size_t j = 0 ; j < n ; j++)
      if (!strcasecmp(lines.s + rs[j].domain, domain + i)) return rs + j ;
  }
  return 0 ;
}

static int add (struct route *r, char const *host, char const *canon, ip46 const *ip, uint16_t port, uint16_t pref, int secure)
{
  struct route_target t ;
  memset(&t, 0, sizeof t) ;
  snprintf(t.host, sizeof t.host, "%s", host) ;
  if (secure && canon) snprintf(t.canon, sizeof t.canon, "%s", canon) ;
  t.ip = *ip ;
  t.port = port ;
  t.pref = pref ;
  t.secure = secure ;
  return genalloc_catb(struct route_target, &r->targets, &t, 1) ;
}

static void set (struct route *r, enum route_status st, char const *why)
{
  r->status = st ;
  snprintf(r->why, sizeof r->why, "%s", why) ;
}

/* the addresses of host as targets; 1 if some, 0 if none (a says why) */
static int host_targets (struct dns *d, struct route *r, char const *host, uint16_t port, uint16_t pref, int secure, struct dns_answer *a, tain const *deadline)
{
  genalloc ips = GENALLOC_ZERO ;
  int some = 0 ;
  dns_addrs(d, host, &ips, a, deadline) ;
  if (a->status == DNS_OK)
  {
    size_t n = genalloc_len(ip46, &ips) ;
    ip46 const *ip = genalloc_s(ip46, &ips) ;
    for (size_t i = 0 ; i < n ; i++)
    {
      if (!add(r, host, a->canon, ip + i, port, pref, secure && a->secure))
      {
        a->status = DNS_TEMP ;
        snprintf(a->why, sizeof a->why, "out of memory") ;
        break ;
      }
      some = 1 ;
    }
  }
  genalloc_free(ip46, &ips) ;
  return some ;
}

static void by_smtproutes (struct dns *d, struct sroute const *sr, struct route *r, tain const *deadline)
{
  char const *relay = lines.s + sr->relay ;
  r->smtproutes = 1 ;
  if (sr->literal)
  {
    char host[IP46_FMT] ;
    host[ip46_fmt(host, &sr->ip)] = 0 ;
    if (!add(r, host, 0, &sr->ip, sr->port, 0, 0)) { set(r, ROUTE_TEMP, "out of memory") ; return ; }
    r->status = ROUTE_OK ;
    return ;
  }
  if (!d) { set(r, ROUTE_TEMP, "no resolver") ; return ; }
  struct dns_answer a ;
  if (host_targets(d, r, relay, sr->port, 0, 1, &a, deadline)) { r->status = ROUTE_OK ; return ; }
  /* a relay the operator named and DNS does not know: the operator's
   * mistake, not the sender's: defer */
  r->status = ROUTE_TEMP ;
  if (a.status == DNS_OK) snprintf(r->why, sizeof r->why, "smtproutes relay %.200s has no address", relay) ;
  else snprintf(r->why, sizeof r->why, "smtproutes relay %.80s: %s", relay, a.why) ;
}

/* The port of MX hosts: 25, or $YUBIN_REMOTE_PORT (a test network whose
 * receiving servers can't have port 25; documented in yubin-remote.8). */
static uint16_t mx_port (void)
{
  char const *x = getenv("YUBIN_REMOTE_PORT") ;
  uint16_t port ;
  if (x && *x && uint160_scan(x, &port) == strlen(x) && port) return port ;
  return 25 ;
}

void route_lookup (struct dns *d, char const *domain0, struct route *r, tain const *deadline)
{
  char domain[256] ;
  size_t len = strlen(domain0) ;
  genalloc_setlen(struct route_target, &r->targets, 0) ;
  r->smtproutes = 0 ;
  r->why[0] = 0 ;
  r->status = ROUTE_TEMP ;
  if (len && domain0[len-1] == '.') len-- ;
  if (!len || len >= sizeof domain) { set(r, ROUTE_PERM, "bad domain name") ; return ; }
  memcpy(domain, domain0, len) ;
  domain[len] = 0 ;
  lower(domain) ;

  struct sroute const *sr = find(domain) ;
  if (sr && lines.s[sr->relay]) { by_smtproutes(d, sr, r, deadline) ; return ; }
  if (!d) { set(r, ROUTE_TEMP, "no resolver") ; return ; }

  genalloc mx = GENALLOC_ZERO ;
  struct dns_answer a ;
  dns_mx(d, domain, &mx, &a, deadline) ;
  size_t n = genalloc_len(struct dns_mx, &mx) ;
  struct dns_mx const *m = genalloc_s(struct dns_mx, &mx) ;
  if (a.status == DNS_NXDOMAIN) set(r, ROUTE_PERM, a.why) ;
  else if (a.status == DNS_TEMP) set(r, ROUTE_TEMP, a.why) ;
  else if (n == 1 && !m[0].host[0])
    snprintf(r->why, sizeof r->why, "%.200s does not accept mail (null MX)", domain), r->status = ROUTE_PERM ;
  else if (!n)
  {
    /* RFC 5321 5.1: no MX, the domain itself is the implicit MX */
    struct dns_answer aa ;
    if (host_targets(d, r, domain, mx_port(), 0, a.secure, &aa, deadline)) r->status = ROUTE_OK ;
    else if (aa.status == DNS_TEMP) set(r, ROUTE_TEMP, aa.why) ;
    else if (aa.status == DNS_NXDOMAIN) set(r, ROUTE_PERM, aa.why) ;
    else snprintf(r->why, sizeof r->why, "%.200s has no MX and no address", domain), r->status = ROUTE_PERM ;
  }
  else
  {
    char temp[128] = "" ;
    for (size_t i = 0 ; i < n ; i++)
    {
      struct dns_answer aa ;
      if (!m[i].host[0]) continue ;
      if (!host_targets(d, r, m[i].host, mx_port(), m[i].pref, a.secure, &aa, deadline) && aa.status == DNS_TEMP && !temp[0])
        memcpy(temp, aa.why, sizeof temp) ;
    }
    if (genalloc_len(struct route_target, &r->targets)) r->status = ROUTE_OK ;
    else if (temp[0]) set(r, ROUTE_TEMP, temp) ;
    else snprintf(r->why, sizeof r->why, "no address for any MX host of %.200s", domain), r->status = ROUTE_PERM ;
  }
  genalloc_free(struct dns_mx, &mx) ;
}

void route_free (struct route *r)
{
  genalloc_free(struct route_target, &r->targets) ;
}
