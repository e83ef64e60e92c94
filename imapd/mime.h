/* imapd/mime: the MIME structure of a message held in memory, as IMAP
 * (RFC 3501) shows it; no I/O, only the caller's buffer is read (unit
 * tests tests/imapd/t-mime.c, corpus tests/imapd/mime/, fuzzed by
 * tests/fuzz/fuzz-mime.c).
 *
 *   - mime_parse: the part tree of a message (mmap'd Maildir file, line
 *     ends LF or CRLF): for each part the offsets of its header, body
 *     and end, and its sizes and line counts with CRLF line ends;
 *   - mime_envelope, mime_bodystructure: the IMAP ENVELOPE, BODY and
 *     BODYSTRUCTURE strings, appended to a stralloc;
 *   - mime_section: what BODY[section] means (part numbers, HEADER,
 *     HEADER.FIELDS (...), HEADER.FIELDS.NOT (...), MIME, TEXT): a byte
 *     range of the message, or for HEADER.FIELDS a built string;
 *   - struct mime_crlf: read a byte range as IMAP sends it (bare LF ->
 *     CRLF) from any offset, for <partial> and streaming;
 *   - for SEARCH: a header's value decoded to UTF-8 (RFC 2047), the
 *     decoded text of the text parts (quoted-printable, base64, charset
 *     to UTF-8) in chunks through a callback, and a case fold.
 *
 * Offsets are into the message given to mime_parse, which must stay
 * mapped while the struct mime is used.  Malformed input never fails
 * (it gets the structure Dovecot and RFC 3501 readers expect, as far as
 * one can tell); the only error is running out of memory (errno
 * ENOMEM).  Depth and part count are bounded (MIME_MAXDEPTH,
 * MIME_MAXPARTS): deeper or further parts are taken as opaque bodies.
 *
 * "CRLF sizes" count every LF not preceded by CR as 2 octets: the size
 * of the bytes as sent to the client.  Line counts are the number of
 * line ends (LFs) in the body, as Dovecot counts: a body part's last
 * line end belongs to the boundary after it, so "Noon?" alone counts 0. */
#ifndef YUBIN_IMAPD_MIME_H
#define YUBIN_IMAPD_MIME_H

#include <stddef.h>
#include <stdint.h>

#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>

#define MIME_MAXDEPTH 20      /* nesting of multipart and message/rfc822 */
#define MIME_MAXPARTS 10000   /* parts in one message */
#define MIME_NOPART UINT32_MAX

/* what a part's body holds */
enum mime_kind
{
  MIME_LEAF = 0,       /* anything but the two below (or past the limits) */
  MIME_MULTIPART,      /* multipart/<any>: children are the body parts */
  MIME_MESSAGE         /* message/rfc822 or message/global: one child,
                          the encapsulated message */
} ;

struct mime_part
{
  size_t hdr ;             /* the first byte of the header */
  size_t body ;            /* the first byte of the body: after the blank
                              line ending the header (a part that starts
                              with the blank line has only it as header;
                              with no blank line all is header, body=end) */
  size_t end ;             /* one past the last byte of the body (for a
                              body part: before the line end that precedes
                              the next boundary line) */
  uint64_t hdrsize ;       /* CRLF size of hdr..body (blank line included) */
  uint64_t bodysize ;      /* CRLF size of body..end: IMAP's body size */
  uint64_t lines ;         /* IMAP's line count of body..end */
  uint32_t parent ;        /* index in parts, MIME_NOPART for the root */
  uint32_t child ;         /* first child, MIME_NOPART if none */
  uint32_t next ;          /* next sibling, MIME_NOPART if none */
  uint32_t nchildren ;
  uint32_t depth ;         /* 0 for the root */
  unsigned char kind ;     /* enum mime_kind */
  unsigned char ismessage ;/* the root, or the child of a MIME_MESSAGE:
                              its header is a message header (ENVELOPE,
                              HEADER, TEXT apply) */
  unsigned char istext ;   /* type text/<any> (or no Content-Type and
                              not in a multipart/digest) */
  unsigned char hasboundary ; /* MIME_MULTIPART whose boundary was found;
                              a multipart with no boundary parameter or
                              no boundary line has no children */
  /* Content-Type's type/subtype and Content-Transfer-Encoding's token,
     lowercased, as offsets into struct mime's pool (text/plain, or
     message/rfc822 in a multipart/digest, when the field is missing or
     invalid; "7bit" when there is no encoding) */
  size_t type, typelen, subtype, subtypelen, encoding, encodinglen ;
} ;

struct mime
{
  char const *msg ;        /* the message given to mime_parse */
  size_t len ;
  genalloc parts ;         /* struct mime_part; index 0 is the root (the
                              message), children after their parent */
  stralloc pool ;          /* strings the parts point into */
  stralloc tmp ;           /* scratch */
  unsigned int truncated ; /* 1 if a limit was hit */
  unsigned int header ;    /* 1 after mime_parse_header: part 0 only */
  unsigned int headeronly ;/* private */
} ;
#define MIME_ZERO { .msg = 0, .len = 0, .parts = GENALLOC_ZERO, .pool = STRALLOC_ZERO, .tmp = STRALLOC_ZERO, .truncated = 0, .header = 0, .headeronly = 0 }

#define mime_parts(m) genalloc_s(struct mime_part, &(m)->parts)
#define mime_nparts(m) genalloc_len(struct mime_part, &(m)->parts)

/* Parses msg[0..len) into m (m is MIME_ZERO or was used before: it is
 * reset, its memory reused).  Returns 1, or 0 with errno ENOMEM. */
extern int mime_parse (struct mime *m, char const *msg, size_t len) ;

/* The top-level header alone, for what needs no more (ENVELOPE of part
 * 0, BODY[HEADER], BODY[HEADER.FIELDS(.NOT) (...)], mime_header_decoded
 * of part 0): msg[0..len) holds at least the whole header with the
 * blank line ending it (mime_header_length), or the whole message if it
 * has none.  m then has part 0 only (hdr, body, type, subtype, encoding
 * as mime_parse gives them; the body taken as empty: end = body, no
 * children) and m->header is 1: those functions then give the same
 * bytes as after mime_parse of the whole message; anything else (part
 * numbers, TEXT, BODYSTRUCTURE) is not to be asked.  Returns 1, or 0
 * with errno ENOMEM. */
extern int mime_parse_header (struct mime *m, char const *msg, size_t len) ;

/* The length of the header at the start of s[0..len), the blank line
 * ending it included; 0 if s[0..len) holds no such blank line (the
 * header goes on past len, or the message is all header). */
extern size_t mime_header_length (char const *s, size_t len) ;

/* Appends to sa the raw lines (continuations included, in message order)
 * of the top-level header fields of s[0..len) whose names (any case) are
 * in names (0-terminated, lower case): a header made of them alone,
 * without the blank line, gives the same ENVELOPE, HEADER.FIELDS bytes
 * (for lists within names) and mime_header_decoded values for those
 * names as the message (followed by "\n", given to mime_parse_header).
 * Returns 1; 0 if a chosen field has no final line end (sa unchanged:
 * do not use a subset of it); -1 (ENOMEM). */
/* The field names a header cache keeps with mime_header_subset: those
 * of ENVELOPE and those clients usually list in HEADER.FIELDS (From To
 * Cc Bcc Subject Date Message-ID In-Reply-To References Content-Type
 * Priority X-Priority Newsgroups Reply-To ...), lower case, 0-terminated. */
extern char const *const mime_cached_fields[] ;
extern int mime_header_subset (stralloc *sa, char const *s, size_t len, char const *const *names) ;

/* Frees what m holds; m is MIME_ZERO again. */
extern void mime_free (struct mime *m) ;

/* ---------- IMAP strings ---------- */

/* Appends the ENVELOPE of the message part i (the root 0, or a part
 * with ismessage) to sa: "(date subject from sender reply-to to cc bcc
 * in-reply-to message-id)" as RFC 3501 7.4.2 says (sender and reply-to
 * default to from; address lists parsed per RFC 5322 with groups;
 * encoded words are kept as they are).  Returns 1, or 0 (ENOMEM). */
extern int mime_envelope (struct mime const *m, uint32_t i, stralloc *sa) ;

/* Appends the body structure of part i (0 for FETCH BODY/BODYSTRUCTURE)
 * to sa: with ext nonzero BODYSTRUCTURE (with the extension data), else
 * BODY.  Returns 1, or 0 (ENOMEM). */
extern int mime_bodystructure (struct mime const *m, uint32_t i, int ext, stralloc *sa) ;

/* Appends s[0..len) to sa as an IMAP string: a quoted string when it
 * can be one (no CR, LF, NUL or 8-bit octet, at most 1000 octets),
 * else a literal "{n}\r\n...".  Returns 1, or 0 (ENOMEM). */
extern int mime_imapstring (stralloc *sa, char const *s, size_t len) ;

/* ---------- BODY[section] ---------- */

enum mime_sect_result
{
  MIME_SECT_OK = 1,        /* sec is filled */
  MIME_SECT_NOMEM = 0,     /* errno ENOMEM */
  MIME_SECT_SYNTAX = -1,   /* not a section spec: the command is BAD */
  MIME_SECT_NOPART = -2    /* well formed, but no such part (or HEADER /
                              TEXT of a part that is not a message):
                              send an empty string "" */
} ;

struct mime_section
{
  uint32_t part ;          /* the part the section names (0: the message) */
  size_t start, end ;      /* if !built: the raw byte range in the message;
                              send it through struct mime_crlf */
  int built ;              /* HEADER.FIELDS(.NOT): the bytes are in the
                              stralloc given to mime_section, from its
                              length on entry to its end, already CRLF */
  uint64_t size ;          /* the CRLF size of the section (what a
                              literal {n} announces before <partial>) */
} ;

/* Resolves a section spec: spec[0..len) is the text between '[' and ']'
 * as the client sent it ("", "1.2", "HEADER", "2.HEADER.FIELDS (From
 * To)", "1.MIME", "TEXT", "3.HEADER.FIELDS.NOT (X-A X-B)"; keywords in
 * any case, field names atoms or quoted strings).  RFC 3501 6.4.5: "1"
 * of a non-multipart message is its body; "n.HEADER"/"n.TEXT" of a
 * message/rfc822 part are those of the encapsulated message; "n" of a
 * message/rfc822 part is the encapsulated message whole; "n.MIME" is the
 * part's own header; HEADER.FIELDS gives the matching fields
 * (continuation lines included, order of the message) and the blank
 * line.  For HEADER.FIELDS(.NOT) the bytes are appended to built.
 * Returns an enum mime_sect_result. */
extern int mime_section (struct mime const *m, char const *spec, size_t len, struct mime_section *sec, stralloc *built) ;

/* Reading s[0..len) with every bare LF sent as CRLF, from CRLF offset
 * off on (for <partial>), in chunks:
 *   struct mime_crlf c ; mime_crlf_start(&c, m->msg + sec.start,
 *     sec.end - sec.start, off) ; while ((n = mime_crlf_read(&c, buf,
 *     sizeof buf))) send(buf, n) ;
 * A range never starts in the middle of a CRLF. */
struct mime_crlf
{
  char const *s ;
  size_t len ;
  size_t pos ;             /* next raw byte */
  int lfpending ;          /* the CR of a bare LF was given, the LF not */
} ;

/* Positions c at CRLF offset off of s[0..len) (past the end: at the end). */
extern void mime_crlf_start (struct mime_crlf *c, char const *s, size_t len, uint64_t off) ;

/* Copies up to max bytes of the CRLF view into buf; returns how many, 0
 * at the end. */
extern size_t mime_crlf_read (struct mime_crlf *c, char *buf, size_t max) ;

/* The CRLF size of s[0..len). */
extern uint64_t mime_crlf_size (char const *s, size_t len) ;

/* ---------- SEARCH ---------- */

/* Appends to sa the value of every header field named name (any case,
 * no colon) of part i's header (0: the message header), unfolded, with
 * RFC 2047 encoded words decoded (B and Q; UTF-8, US-ASCII, ISO-8859-1,
 * ISO-8859-15, Windows-1252 converted to UTF-8, other charsets left as
 * the raw encoded word) and other 8-bit octets kept; several fields are
 * separated by "\n".  Returns the number of fields found (0: none), or
 * -1 (ENOMEM). */
extern int mime_header_decoded (struct mime const *m, uint32_t i, char const *name, stralloc *sa) ;

/* Decodes RFC 2047 encoded words in s[0..len) (unstructured text rules:
 * whitespace between adjacent encoded words dropped) into sa, in UTF-8
 * as above.  Returns 1, or 0 (ENOMEM). */
extern int mime_decode_words (stralloc *sa, char const *s, size_t len) ;

/* The body text for SEARCH BODY / TEXT: for every leaf part of type
 * text/<any> (or with no Content-Type), in order, the body decoded from
 * its Content-Transfer-Encoding (quoted-printable, base64; others as
 * they are) and converted to UTF-8 from its charset as above, passed to
 * f in chunks of at most 64 KiB (a match may straddle two chunks of one
 * part: keep the tail; a new part starts with f(ctx, i, 0, 0)).  f
 * returns 1 to go on, 0 to stop (a match found), -1 for an error.
 * Returns 1 when all was walked, 0 when f stopped, -1 when f failed or
 * memory ran out (ENOMEM).  Memory used is bounded (not the body). */
typedef int mime_text_func (void *ctx, uint32_t part, char const *s, size_t len) ;
extern int mime_text_walk (struct mime const *m, mime_text_func *f, void *ctx) ;

/* Appends s[0..len) (UTF-8, invalid sequences kept as they are) to sa
 * case-folded: ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic
 * capitals lowered, "ß" kept.  Searching folded haystack for folded
 * needle is SEARCH's case-insensitive match.  Returns 1, or 0 (ENOMEM). */
extern int mime_casefold (stralloc *sa, char const *s, size_t len) ;

#endif
