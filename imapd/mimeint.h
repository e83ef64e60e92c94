/* imapd/mimeint: what mime.c (the parser), mimeimap.c (ENVELOPE,
 * BODYSTRUCTURE) and mimetext.c (text decoding for SEARCH) share;
 * private to the three, the API is mime.h.  The scanners are mime.c's. */
#ifndef YUBIN_IMAPD_MIMEINT_H
#define YUBIN_IMAPD_MIMEINT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>

#include "imapd/mime.h"

static inline int lc (int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c ; }
static inline int iswsp (int c) { return c == ' ' || c == '\t' ; }

static inline int cieq (char const *a, size_t alen, char const *b, size_t blen)
{
  size_t i ;
  if (alen != blen) return 0 ;
  for (i = 0 ; i < alen ; i++) if (lc((unsigned char)a[i]) != lc((unsigned char)b[i])) return 0 ;
  return 1 ;
}

static inline int cieqs (char const *a, size_t alen, char const *s) { return cieq(a, alen, s, strlen(s)) ; }

static inline struct mime_part const *part_at (struct mime const *m, uint32_t i)
{
  return i < mime_nparts(m) ? mime_parts(m) + i : 0 ;
}

/* ---------- header fields ---------- */

struct hfield
{
  size_t start, end ;      /* the field's lines, final line end included */
  size_t namelen ;         /* name at start, before ':' (0 if no colon) */
  size_t value, vend ;     /* after ':' to before the final line end */
} ;

/* the next field of [*pos, hend); 0 at the end or at the blank line */
extern int mimei_hfield_next (char const *, size_t *, size_t, struct hfield *) ;
/* the first field named name in [hdr, hend) */
extern int mimei_hfield_find (char const *, size_t, size_t, char const *, struct hfield *) ;
/* appends the value s[v..vend) unfolded (CR and LF dropped), trimmed */
extern int mimei_unfold (stralloc *, char const *, size_t, size_t) ;
/* narrows [*start, *end) of s to what is between blanks and line ends */
extern void mimei_trim (char const *, size_t *, size_t *) ;

/* ---------- tokens (RFC 5322 / RFC 2045) ---------- */

enum { T_ATOM, T_QSTR, T_COMMENT, T_DLIT, T_SPECIAL } ;

struct tok { unsigned char type ; char c ; size_t off, len ; } ;

/* tokenizes v[0..n) into toks, token texts into buf (quoted strings and
   comments unescaped); mime: RFC 2045 tspecials, else RFC 5322 specials */
extern int mimei_tokenize (char const *, size_t, int, genalloc *, stralloc *) ;

/* ---------- MIME fields: type, parameters (RFC 2231) ---------- */

struct param { size_t name, namelen, value, valuelen ; } ;

struct mfield
{
  int found, valid ;
  size_t type, typelen, subtype, subtypelen ;   /* into buf */
  genalloc params ;        /* struct param, into buf, RFC 2231 merged */
  genalloc toks ;
  stralloc buf, val ;
} ;
#define MFIELD_ZERO { .found = 0, .valid = 0, .type = 0, .typelen = 0, .subtype = 0, .subtypelen = 0, .params = GENALLOC_ZERO, .toks = GENALLOC_ZERO, .buf = STRALLOC_ZERO, .val = STRALLOC_ZERO }

extern void mimei_mfield_free (struct mfield *) ;
/* parses the value of a Content-Type (withsub) or Content-Disposition
   field s[v..vend) */
extern int mimei_mfield_parse (struct mfield *, char const *, size_t, size_t, int) ;
/* the parameter name's value (RFC 2231-merged name, exact name match) */
extern int mimei_mfield_param (struct mfield const *, char const *, size_t *, size_t *) ;

#endif
