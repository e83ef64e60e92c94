/* RFC 5321 addresses: paths, local parts, domains, with the length limits
 * (local part 64, domain 255, path 256) and qmail's strictness. */
#ifndef YUBIN_ADDRESS_H
#define YUBIN_ADDRESS_H

#include <stddef.h>
#include <skalibs/stralloc.h>

enum address_error
{
  ADDR_OK = 0,
  ADDR_SYNTAX,        /* not a valid path or mailbox */
  ADDR_TOOLONG,       /* local part > 64, domain > 255 or path > 256 */
  ADDR_NODOMAIN,      /* a mailbox without @domain (only postmaster allowed) */
  ADDR_BADDOMAIN,     /* bad domain syntax or bad IP literal */
} ;

/* Parse the argument of MAIL FROM: / RCPT TO: starting at s (after the
 * colon, optional spaces allowed), up to len bytes.  Accepts
 * "<local@domain>", "<>" (only if allow_null), a source route
 * "<@a,@b:local@domain>" (the route is dropped, as RFC 5321 4.1.1.3 allows),
 * quoted local parts ("a b"@x), IP literals ([192.0.2.1], [IPv6:...]).
 * Without angle brackets the bare mailbox is also accepted (qmail does).
 * On success: out = the mailbox in canonical form "local@domain"
 * (quoted local part kept quoted only if it needs quoting, domain
 * lowercased), NUL-terminated, len excludes NUL; "" for <>.
 * *rest = offset in s of what follows the path (ESMTP parameters).
 * Returns ADDR_OK or an error code.  'utf8' allows UTF-8 in local part and
 * domain (SMTPUTF8). */
extern enum address_error address_parse_path(char const *s, size_t len, int allow_null, int utf8,
                                             stralloc *out, size_t *rest);

/* Split a canonical mailbox at the last '@' outside quotes: returns the
 * index of that '@', or len if none. */
extern size_t address_split(char const *mbox, size_t len);

/* Validate a domain name (LDH labels, 1..63 per label, 255 total) or an
 * address literal.  Returns ADDR_OK or an error. */
extern enum address_error address_check_domain(char const *d, size_t len, int utf8);

/* Human text for an error, for SMTP replies ("syntax error in address"). */
extern char const *address_strerror(enum address_error e);

#endif
