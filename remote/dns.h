/* DNS for yubin-remote, over libunbound (which validates DNSSEC itself:
 * DANE needs answers we can trust).  Synchronous calls with a deadline:
 * one remote process resolves for one destination at a time.
 *
 * Where it asks (documented in yubin-remote.8):
 *   $YUBIN_DNS, else control/dnsresolvers: "ip" or "ip@port" per entry,
 *     queried as forwarders (recursion desired); empty or absent: the
 *     system's /etc/resolv.conf;
 *   $YUBIN_DNS_STUB, else control/dnsstubs: "zone:ip@port" entries, a
 *     zone sent to an authoritative server (the tests' way);
 *   $YUBIN_DNS_TA, else control/dnstrustanchors: a file of DS or DNSKEY
 *     records, trust anchors for validation (default: unbound's root key
 *     /usr/share/dns/root.key when it exists; $YUBIN_DNS_TA set and empty:
 *     none, every answer is insecure);
 *   $YUBIN_DNS_DEBUG=N: libunbound's verbosity N, on stderr.
 * In the variables, entries are separated by spaces or commas; in the
 * control files, one a line ('#' comments).  A variable, even empty,
 * replaces its control file.  Stub zones under RFC 6761 names (test.,
 * invalid., ...) lift libunbound's built-in empty zones for those names.
 * Each call waits with iopause on libunbound's fd until the deadline,
 * then cancels (see dns.c); the caller's clock is skalibs' STAMP. */
#ifndef YUBIN_DNS_H
#define YUBIN_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>
#include <skalibs/tai.h>

enum dns_status
{
  DNS_OK,          /* an answer (maybe with no records of the type) */
  DNS_NXDOMAIN,    /* the name does not exist: permanent */
  DNS_TEMP,        /* SERVFAIL, timeout, malformed answer, bogus DNSSEC */
} ;

struct dns_mx { uint16_t pref ; char host[256] ; } ;
/* One TLSA record.  data (len bytes, any length: a full certificate or
 * SPKI, 3 0 0 or 3 1 0, is kept as well as a digest) is malloc'd: free a
 * list with dns_tlsa_free, empty it with dns_tlsa_clear. */
struct dns_tlsa { uint8_t usage, selector, mtype ; size_t len ; unsigned char *data ; } ;

struct dns_answer
{
  enum dns_status status ;
  int secure ;          /* DNSSEC-validated (unbound's "secure") */
  char why[128] ;       /* for DNS_TEMP / DNS_NXDOMAIN: a short reason */
  char canon[256] ;     /* dns_addrs: where host's CNAME chain ends (lower
                           case, no final dot), "" when host is no alias */
} ;

struct dns ;          /* opaque: one libunbound context */

/* A resolver set up from the environment and control files above.
 * Returns NULL with *why on trouble (a bad control file: say which). */
extern struct dns *dns_new (char const **why) ;
extern void dns_free (struct dns *d) ;

/* MX records of domain into mx (struct dns_mx), sorted by preference with
 * equal preferences shuffled.  A null MX (RFC 7505: one record ".", pref
 * 0) gives one entry with an empty host. */
extern void dns_mx (struct dns *d, char const *domain, genalloc *mx, struct dns_answer *a, tain const *deadline) ;

/* Sort n MX records by preference, equal preferences in random order
 * (what dns_mx does).  Returns 1, 0 when out of memory (mx unchanged). */
extern int dns_mx_sort (struct dns_mx *mx, size_t n) ;

/* AAAA then A records of host: addresses into ips (skalibs ip46);
 * a->canon the CNAME-expanded name, if host is an alias. */
extern void dns_addrs (struct dns *d, char const *host, genalloc *ips, struct dns_answer *a, tain const *deadline) ;

/* TLSA records of _port._tcp.host into tlsa (struct dns_tlsa; what it
 * held is freed first); a->secure says whether they may be used (RFC
 * 7672: only validated ones count).  A record shorter than 4 bytes is
 * skipped (malformed: unusable, RFC 7672 2.2). */
extern void dns_tlsa (struct dns *d, char const *host, uint16_t port, genalloc *tlsa, struct dns_answer *a, tain const *deadline) ;

/* Free the data of every record of tlsa and set its length to 0. */
extern void dns_tlsa_clear (genalloc *tlsa) ;

/* dns_tlsa_clear, then free the list itself. */
extern void dns_tlsa_free (genalloc *tlsa) ;

#endif
