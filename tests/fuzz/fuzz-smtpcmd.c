/* fuzz-smtpcmd: libFuzzer target for common/smtpcmd.c, chained into
 * common/address.c the way yubin-smtpd uses them.
 *
 * Checks the contract of smtpcmd.h on every input: the verb and error are
 * valid values, arg+arglen stay inside the line, an argument has no
 * trailing blanks, a NUL anywhere gives ENUL, more than SMTPCMD_MAX octets
 * (after one "\r\n" or "\n" is stripped) gives ETOOLONG unless ENUL, an OK
 * line holds no CR, LF or NUL, and smtpcmd_name is "" / "?" / the verb.
 * For an OK MAIL or RCPT, the argument goes through address_parse_path
 * (both with and without SMTPUTF8) and the canonical form must be a fixed
 * point.  Aborts on any violation. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>

#include "smtpd/address.h"
#include "smtpd/smtpcmd.h"

char const *PROG = "fuzz-smtpcmd" ;

static stralloc out = STRALLOC_ZERO, again = STRALLOC_ZERO, wrapped = STRALLOC_ZERO ;

#define must(x) do { if (!(x)) abort() ; } while (0)

static char const *const names[] =
{
  "", "?", "HELO", "EHLO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT",
  "VRFY", "EXPN", "HELP", "STARTTLS", "AUTH", "BDAT", "ETRN",
} ;

int LLVMFuzzerTestOneInput (uint8_t const *data, size_t size)
{
  char const *line = (char const *)data ;
  struct smtpcmd c ;
  size_t len = size ;
  memset(&c, 0x5a, sizeof c) ;
  smtpcmd_parse(line, size, &c) ;
  must((unsigned)c.verb <= SMTPCMD_ETRN) ;
  must((unsigned)c.error <= SMTPCMD_ESYNTAX) ;
  must(c.arg <= size && c.arglen <= size - c.arg) ;
  must(!strcmp(smtpcmd_name(c.verb), names[c.verb])) ;

  if (len && line[len - 1] == '\n') { len-- ; if (len && line[len - 1] == '\r') len-- ; }
  must(c.arg + c.arglen <= len) ;
  if (c.arglen) must(line[c.arg + c.arglen - 1] != ' ' && line[c.arg + c.arglen - 1] != '\t') ;
  if (memchr(line, 0, len)) must(c.error == SMTPCMD_ENUL) ;
  else if (len > SMTPCMD_MAX) must(c.error == SMTPCMD_ETOOLONG) ;
  else must(c.error != SMTPCMD_ENUL && c.error != SMTPCMD_ETOOLONG) ;
  if (c.error == SMTPCMD_OK)
  {
    must(!memchr(line, '\r', len) && !memchr(line, '\n', len)) ;
    if (c.verb == SMTPCMD_MAIL || c.verb == SMTPCMD_RCPT)
    {
      int utf8 ;
      for (utf8 = 0 ; utf8 < 2 ; utf8++)
      {
        size_t rest = (size_t)-1 ;
        enum address_error e = address_parse_path(line + c.arg, c.arglen, c.verb == SMTPCMD_MAIL, utf8, &out, &rest) ;
        if (e != ADDR_OK && e != ADDR_NODOMAIN) continue ;
        must(rest <= c.arglen) ;
        wrapped.len = 0 ;
        must(stralloc_catb(&wrapped, "<", 1) && stralloc_catb(&wrapped, out.s, out.len) && stralloc_catb(&wrapped, ">", 1)) ;
        must(address_parse_path(wrapped.s, wrapped.len, c.verb == SMTPCMD_MAIL, utf8, &again, &rest) == e) ;
        must(again.len == out.len && !memcmp(again.s, out.s, out.len)) ;
      }
    }
  }
  return 0 ;
}
