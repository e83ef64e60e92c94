/* imapd/cmd's private helpers, shared by cmd.c (the reader and parser)
 * and cmdargs.c (the typed helpers over arguments). */
#ifndef YUBIN_IMAPD_CMDINT_H
#define YUBIN_IMAPD_CMDINT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline int isctl (unsigned char ch) { return ch < 0x20 || ch == 0x7f ; }

/* ATOM-CHAR of RFC 3501: CHAR (7-bit, no NUL) but atom-specials */
static inline int isatomchar (unsigned char ch)
{
  if (ch >= 0x80 || isctl(ch)) return 0 ;
  switch (ch)
  {
    case '(' : case ')' : case '{' : case ' ' : case '%' : case '*' :
    case '"' : case '\\' : case ']' : return 0 ;
    default : return 1 ;
  }
}

static inline unsigned char upper (unsigned char ch)
{
  return ch >= 'a' && ch <= 'z' ? ch - 32 : ch ;
}

static inline int eqi (char const *s, size_t len, char const *word)
{
  size_t n = strlen(word) ;
  size_t i ;
  if (n != len) return 0 ;
  for (i = 0 ; i < n ; i++) if (upper(s[i]) != upper(word[i])) return 0 ;
  return 1 ;
}

static inline int parse_u64 (char const *s, size_t len, uint64_t max, uint64_t *n)
{
  uint64_t v = 0 ;
  size_t i ;
  if (!len || len > 20) return 0 ;
  for (i = 0 ; i < len ; i++)
  {
    unsigned int d ;
    if (s[i] < '0' || s[i] > '9') return 0 ;
    d = s[i] - '0' ;
    if (v > (max - d) / 10) return 0 ;
    v = v * 10 + d ;
  }
  *n = v ;
  return 1 ;
}

#endif
