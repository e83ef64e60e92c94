/* The DATA end-of-data scanner with the smuggling guard.
 *
 * Only the literal sequence CR LF "." CR LF ends the data (the DATA
 * line's own CRLF counts as the first one).  A CR not followed by LF, or
 * a LF not preceded by CR, marks the message bad and does not start a
 * line: "\n.\n", "\r\n.\n" and "\n.\r\n" never end it, so a message can't
 * smuggle a second one past a relay that reads line ends differently.
 * On the way the scanner undoes dot-stuffing, turns CRLF into LF, counts
 * the octets against a size limit, and counts Received: and Delivered-To:
 * header lines (hops) as qmail-smtpd does, to refuse looping mail.
 *
 * The message bytes (LF line ends) go to the caller's emit function until
 * a flag is set: the output of a bad message is exactly its octets up to
 * where it went bad (the first bad octet, the octet past the line or size
 * limit, the end of the hop line past the limit), never more.  Input may
 * be cut anywhere: the state carries over between calls, and the output
 * and flags are the same however the input was split (tests/smtpd/
 * t-datascan feeds it byte at a time and in every split).  Pure: no I/O,
 * no globals. */
#ifndef YUBIN_SMTPD_DATASCAN_H
#define YUBIN_SMTPD_DATASCAN_H

#include <stddef.h>

#define DATASCAN_BARE 1   /* bare CR or bare LF */
#define DATASCAN_NUL 2
#define DATASCAN_LONG 4   /* a line longer than 1000 octets with its CRLF */
#define DATASCAN_SIZE 8   /* over the size limit */
#define DATASCAN_HOPS 16  /* more than DATASCAN_MAXHOPS hops: a loop */

#define DATASCAN_LINEMAX 998   /* octets of a line without its CRLF (RFC 5321 4.5.3.1.6) */
#define DATASCAN_MAXHOPS 100   /* Received: + Delivered-To: lines, as qmail */

typedef void datascan_emit_func (void *ctx, char const *s, size_t len) ;

struct datascan
{
  int state ;
  unsigned int flags ;      /* DATASCAN_* */
  size_t linelen ;          /* raw octets of the current line, CRLF excluded */
  unsigned long bytes ;     /* octets emitted (LF line ends) */
  unsigned long max ;       /* size limit, 0 for none */
  int inheader ;            /* still in the header section */
  size_t prelen ;           /* octets of the current header line seen so far */
  char pre[13] ;            /* its first octets */
  unsigned int hops ;
  datascan_emit_func *emit ;
  void *ctx ;
} ;

/* A scanner at the start of the data (just after the DATA line's CRLF):
 * at most max octets (0: no limit), bytes to emit(ctx, ...). */
extern void datascan_init (struct datascan *d, unsigned long max, datascan_emit_func *emit, void *ctx) ;

/* Scan s[0..len).  Returns the number of bytes consumed: len, or fewer
 * when the data ended, with *end set (the rest is the next command). */
extern size_t datascan_run (struct datascan *d, char const *s, size_t len, int *end) ;

#endif
