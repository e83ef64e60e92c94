/* qmail-send's rewriting of envelope recipients, with the control files
 * of qmail-send(8): envnoathost, percenthack, virtualdomains.  Used by
 * yubin-qmgr (where qmail-send does it) and yubin-smtpd (to take or
 * refuse a recipient at RCPT).  The lists are what control_readlist
 * returns (entries one after the other, each NUL-terminated); every
 * comparison ignores case. */
#ifndef YUBIN_REWRITE_H
#define YUBIN_REWRITE_H

#include <stddef.h>
#include <skalibs/stralloc.h>

/* An address without '@' gets "@" host (control/envnoathost, default
 * control/me).  addr is NUL-terminated (len excludes the NUL).
 * Returns 1 if it was changed, 0 if not, -1 out of memory. */
extern int rewrite_noat (stralloc *addr, char const *host) ;

/* control/percenthack: while the domain of addr is listed (exactly) and
 * its local part holds a '%', "user%host@domain" becomes "user@host"
 * (the last '%'; again and again, as qmail-send).  addr NUL-terminated.
 * Returns 1 if it was changed, 0 if not. */
extern int rewrite_percent (char const *list, size_t listlen, stralloc *addr) ;

/* control/virtualdomains ("user@domain:prefix", "domain:prefix",
 * ".domain:prefix", ":prefix"): the entry for addr[0..len), tried in
 * qmail-send's order: the whole address, its domain, then every
 * ".suffix" of the domain from the longest, then the empty key.  The
 * first entry found decides: a prefix (1, *prefix and *plen set, the
 * prefix not NUL-terminated) or an empty prefix, an exception (0); none
 * found: 0.  The caller checks control/locals first: a local domain is
 * never virtual. */
extern int rewrite_vdomain (char const *list, size_t listlen, char const *addr, size_t len, char const **prefix, size_t *plen) ;

/* The local address qmail-send makes of a virtual one: "prefix-addr",
 * i.e. the local part prefix-user, in out (NUL-terminated).  0 if out
 * of memory. */
extern int rewrite_vdomain_local (stralloc *out, char const *prefix, size_t plen, char const *addr, size_t len) ;

#endif
