/* key=value event lines on stderr: see ylog.h. */

#include <stdarg.h>
#include <string.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>

#include "ylog.h"

#define YLOG_VALUE_MAX 512

static int needs_escape (unsigned char c)
{
  return c < 0x21 || c > 0x7e || c == '=' || c == '\\' || c == '"' ;
}

int ylog_escape (stralloc *sa, char const *s, size_t len)
{
  static char const hex[] = "0123456789abcdef" ;
  if (!len) return stralloc_catb(sa, "\"\"", 2) ;
  /* "-" stands for a missing value: a real "-" is escaped */
  if (len == 1 && s[0] == '-') return stralloc_catb(sa, "\\x2d", 4) ;
  int cut = len > YLOG_VALUE_MAX ;
  if (cut) len = YLOG_VALUE_MAX ;
  if (!stralloc_readyplus(sa, len * 4 + 3)) return 0 ;
  for (size_t i = 0 ; i < len ; i++)
  {
    unsigned char c = s[i] ;
    if (needs_escape(c))
    {
      sa->s[sa->len++] = '\\' ;
      sa->s[sa->len++] = 'x' ;
      sa->s[sa->len++] = hex[c >> 4] ;
      sa->s[sa->len++] = hex[c & 15] ;
    }
    else sa->s[sa->len++] = c ;
  }
  if (cut) return stralloc_catb(sa, "...", 3) ;
  return 1 ;
}

void ylog (char const *verb, ...)
{
  stralloc line = STRALLOC_ZERO ;
  va_list ap ;
  int ok = stralloc_cats(&line, PROG ? PROG : "yubin")
        && stralloc_catb(&line, ": ", 2)
        && stralloc_cats(&line, verb) ;
  va_start(ap, verb) ;
  for (;;)
  {
    char const *key = va_arg(ap, char const *) ;
    if (!key) break ;
    char const *value = va_arg(ap, char const *) ;
    if (!ok) continue ;
    ok = stralloc_catb(&line, " ", 1) && stralloc_cats(&line, key) && stralloc_catb(&line, "=", 1) ;
    if (ok) ok = value ? ylog_escape(&line, value, strlen(value)) : stralloc_catb(&line, "-", 1) ;
  }
  va_end(ap) ;
  if (ok && stralloc_catb(&line, "\n", 1))
  {
    /* Logging must never stop mail: a failed write is dropped on purpose. */
    size_t w = allwrite(2, line.s, line.len) ;
    (void)w ;
  }
  stralloc_free(&line) ;
}
