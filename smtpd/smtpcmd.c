/* SMTP command line parser: see smtpcmd.h.  Pure: no I/O, no globals
 * other than constant tables. */

#include <stddef.h>

#include "smtpcmd.h"

enum argrule { ARG_NONE, ARG_OPT, ARG_REQ, ARG_FROM, ARG_TO } ;

struct verbdef
{
  char const *name ;
  size_t len ;
  enum smtpcmd_verb verb ;
  enum argrule rule ;
} ;

static struct verbdef const verbs[] =
{
  { "HELO", 4, SMTPCMD_HELO, ARG_REQ },
  { "EHLO", 4, SMTPCMD_EHLO, ARG_REQ },
  { "MAIL", 4, SMTPCMD_MAIL, ARG_FROM },
  { "RCPT", 4, SMTPCMD_RCPT, ARG_TO },
  { "DATA", 4, SMTPCMD_DATA, ARG_NONE },
  { "RSET", 4, SMTPCMD_RSET, ARG_NONE },
  { "NOOP", 4, SMTPCMD_NOOP, ARG_OPT },
  { "QUIT", 4, SMTPCMD_QUIT, ARG_NONE },
  { "VRFY", 4, SMTPCMD_VRFY, ARG_REQ },
  { "EXPN", 4, SMTPCMD_EXPN, ARG_REQ },
  { "HELP", 4, SMTPCMD_HELP, ARG_OPT },
  { "STARTTLS", 8, SMTPCMD_STARTTLS, ARG_NONE },
  { "AUTH", 4, SMTPCMD_AUTH, ARG_REQ },
  { "BDAT", 4, SMTPCMD_BDAT, ARG_REQ },
  { "ETRN", 4, SMTPCMD_ETRN, ARG_REQ },
} ;

#define NVERBS (sizeof(verbs) / sizeof(verbs[0]))

static int is_blank (unsigned char c)
{
  return c == ' ' || c == '\t' ;
}

static unsigned char upper (unsigned char c)
{
  return (c >= 'a' && c <= 'z') ? c - 'a' + 'A' : c ;
}

/* s[0..len) equals the upper-case word w (length wlen), ignoring case? */
static int word_is (char const *s, size_t len, char const *w, size_t wlen)
{
  if (len != wlen) return 0 ;
  for (size_t i = 0 ; i < len ; i++)
    if (upper((unsigned char)s[i]) != (unsigned char)w[i]) return 0 ;
  return 1 ;
}

/* s[0..len) starts with the upper-case word w, ignoring case? */
static int prefix_is (char const *s, size_t len, char const *w, size_t wlen)
{
  return len >= wlen && word_is(s, wlen, w, wlen) ;
}

void smtpcmd_parse (char const *line, size_t len, struct smtpcmd *c)
{
  int nul = 0, ctrl = 0 ;
  c->verb = SMTPCMD_EMPTY ;
  c->error = SMTPCMD_OK ;
  c->arg = 0 ;
  c->arglen = 0 ;

  if (len && line[len-1] == '\n')
  {
    len-- ;
    if (len && line[len-1] == '\r') len-- ;
  }
  for (size_t i = 0 ; i < len ; i++)
  {
    unsigned char ch = line[i] ;
    if (!ch) nul = 1 ;
    else if ((ch < 0x20 && ch != '\t') || ch == 0x7f) ctrl = 1 ;
  }

  /* the verb: leading blanks tolerated, then up to a blank or the end */
  size_t v = 0 ;
  while (v < len && is_blank(line[v])) v++ ;
  size_t ve = v ;
  while (ve < len && !is_blank(line[ve])) ve++ ;

  if (ve > v)
  {
    c->verb = SMTPCMD_UNKNOWN ;
    for (size_t k = 0 ; k < NVERBS ; k++)
      if (word_is(line + v, ve - v, verbs[k].name, verbs[k].len))
      {
        c->verb = verbs[k].verb ;
        break ;
      }
  }

  /* the argument, trimmed of blanks on both sides */
  size_t a = ve ;
  while (a < len && is_blank(line[a])) a++ ;
  size_t ae = len ;
  while (ae > a && is_blank(line[ae-1])) ae-- ;

  int syntax = 0 ;
  if (c->verb != SMTPCMD_EMPTY && c->verb != SMTPCMD_UNKNOWN)
  {
    enum argrule rule = ARG_OPT ;
    for (size_t k = 0 ; k < NVERBS ; k++)
      if (verbs[k].verb == c->verb) { rule = verbs[k].rule ; break ; }
    switch (rule)
    {
      case ARG_NONE :
        if (ae > a) syntax = 1 ;
        break ;
      case ARG_OPT :
        break ;
      case ARG_REQ :
        if (ae == a) syntax = 1 ;
        break ;
      case ARG_FROM :
        if (prefix_is(line + a, ae - a, "FROM:", 5)) a += 5 ;
        else syntax = 1 ;
        break ;
      case ARG_TO :
        if (prefix_is(line + a, ae - a, "TO:", 3)) a += 3 ;
        else syntax = 1 ;
        break ;
    }
    if (!syntax)
    {
      c->arg = a ;
      c->arglen = ae - a ;
    }
  }
  else if (c->verb == SMTPCMD_UNKNOWN)
  {
    c->arg = a ;
    c->arglen = ae - a ;
  }

  if (nul) c->error = SMTPCMD_ENUL ;
  else if (len > SMTPCMD_MAX) c->error = SMTPCMD_ETOOLONG ;
  else if (syntax || ctrl) c->error = SMTPCMD_ESYNTAX ;
}

char const *smtpcmd_name (enum smtpcmd_verb v)
{
  if (v == SMTPCMD_EMPTY) return "" ;
  for (size_t k = 0 ; k < NVERBS ; k++)
    if (verbs[k].verb == v) return verbs[k].name ;
  return "?" ;
}
