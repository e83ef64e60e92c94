/* imapd/mime.c: see mime.h (stub while the parser is written) */

#include <errno.h>
#include <string.h>

#include "imapd/mime.h"

int mime_parse (struct mime *m, char const *msg, size_t len)
{
  struct mime_part p ;
  memset(&p, 0, sizeof p) ;
  m->msg = msg ; m->len = len ; m->truncated = 0 ;
  genalloc_setlen(struct mime_part, &m->parts, 0) ;
  m->pool.len = 0 ;
  p.parent = p.child = p.next = MIME_NOPART ;
  p.end = len ; p.ismessage = 1 ;
  return genalloc_append(struct mime_part, &m->parts, &p) ;
}

void mime_free (struct mime *m)
{
  genalloc_free(struct mime_part, &m->parts) ;
  stralloc_free(&m->pool) ;
  stralloc_free(&m->tmp) ;
  m->msg = 0 ; m->len = 0 ; m->truncated = 0 ;
}

int mime_envelope (struct mime const *m, uint32_t i, stralloc *sa) { (void)m ; (void)i ; return stralloc_cats(sa, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)") ; }
int mime_bodystructure (struct mime const *m, uint32_t i, int ext, stralloc *sa) { (void)m ; (void)i ; (void)ext ; return stralloc_cats(sa, "(\"text\" \"plain\" NIL NIL NIL \"7bit\" 0 0)") ; }
int mime_imapstring (stralloc *sa, char const *s, size_t len) { return stralloc_catb(sa, "\"", 1) && stralloc_catb(sa, s, len) && stralloc_catb(sa, "\"", 1) ; }
int mime_section (struct mime const *m, char const *spec, size_t len, struct mime_section *sec, stralloc *built) { (void)spec ; (void)len ; (void)built ; sec->part = 0 ; sec->start = 0 ; sec->end = m->len ; sec->built = 0 ; sec->size = mime_crlf_size(m->msg, m->len) ; return MIME_SECT_OK ; }
void mime_crlf_start (struct mime_crlf *c, char const *s, size_t len, uint64_t off) { c->s = s ; c->len = len ; c->pos = 0 ; c->lfpending = 0 ; (void)off ; }
size_t mime_crlf_read (struct mime_crlf *c, char *buf, size_t max) { (void)c ; (void)buf ; (void)max ; return 0 ; }
uint64_t mime_crlf_size (char const *s, size_t len) { uint64_t n = len ; for (size_t i = 0 ; i < len ; i++) if (s[i] == '\n' && (!i || s[i-1] != '\r')) n++ ; return n ; }
int mime_header_decoded (struct mime const *m, uint32_t i, char const *name, stralloc *sa) { (void)m ; (void)i ; (void)name ; (void)sa ; return 0 ; }
int mime_decode_words (stralloc *sa, char const *s, size_t len) { return stralloc_catb(sa, s, len) ; }
int mime_text_walk (struct mime const *m, mime_text_func *f, void *ctx) { (void)m ; (void)f ; (void)ctx ; return 1 ; }
int mime_casefold (stralloc *sa, char const *s, size_t len) { return stralloc_catb(sa, s, len) ; }
