/* One SMTP command line, split and classified (RFC 5321 4.1).
 *
 * A pure function: no I/O, no globals, no allocation; any bytes in, a
 * verdict out.  yubin-smtpd calls it for every line it reads, and the
 * libFuzzer target feeds it arbitrary input. */
#ifndef YUBIN_SMTPCMD_H
#define YUBIN_SMTPCMD_H

#include <stddef.h>

/* Longest command line content, without the CRLF (RFC 5321 4.5.3.1.4:
 * 512 octets including CRLF is the minimum a server must accept; we accept
 * the text-line limit, 1000 octets including CRLF). */
#define SMTPCMD_MAX 998

enum smtpcmd_verb
{
  SMTPCMD_EMPTY = 0,   /* empty (or all-blank) line */
  SMTPCMD_UNKNOWN,     /* a verb we do not know */
  SMTPCMD_HELO,
  SMTPCMD_EHLO,
  SMTPCMD_MAIL,        /* arg: after "FROM:" */
  SMTPCMD_RCPT,        /* arg: after "TO:" */
  SMTPCMD_DATA,
  SMTPCMD_RSET,
  SMTPCMD_NOOP,
  SMTPCMD_QUIT,
  SMTPCMD_VRFY,
  SMTPCMD_EXPN,
  SMTPCMD_HELP,
  SMTPCMD_STARTTLS,
  SMTPCMD_AUTH,
  SMTPCMD_BDAT,
  SMTPCMD_ETRN,
} ;

enum smtpcmd_error
{
  SMTPCMD_OK = 0,
  SMTPCMD_ENUL,        /* a NUL byte somewhere in the line */
  SMTPCMD_ETOOLONG,    /* more than SMTPCMD_MAX octets before the line end */
  SMTPCMD_ESYNTAX,     /* known verb in the wrong form: MAIL without FROM:,
                          RCPT without TO:, missing or unexpected argument,
                          control characters (bare CR, ...) in the line */
} ;

struct smtpcmd
{
  enum smtpcmd_verb verb ;
  enum smtpcmd_error error ;
  size_t arg ;         /* offset of the argument in the line */
  size_t arglen ;      /* its length; 0 if none */
} ;

/* Split line[0..len) into verb and argument.  The line may end with "\r\n"
 * or "\n" (one of them is stripped) or have no terminator.  The verb is
 * case-insensitive and must be followed by a space, a tab or the end of
 * the line.  For MAIL and RCPT the argument starts right after "FROM:" /
 * "TO:" (spaces after the colon are kept, address_parse_path skips them);
 * for the others it starts after the blanks following the verb.  Trailing
 * blanks are removed from the argument.  Never reads outside line[0..len),
 * never fails: c is always filled in (verb classified even on error, when
 * possible).  Error precedence: ENUL, ETOOLONG, ESYNTAX. */
extern void smtpcmd_parse (char const *line, size_t len, struct smtpcmd *c) ;

/* The verb's name in upper case ("MAIL"), "" for EMPTY, "?" for UNKNOWN. */
extern char const *smtpcmd_name (enum smtpcmd_verb v) ;

#endif
