/* imapd/cmd: the IMAP command reader and parser, pure (no system calls:
 * the session reads and writes, this module only looks at bytes).
 * Unit-tested by tests/imapd/t-cmd.c, fuzzed by tests/fuzz/fuzz-imapcmd.c.
 *
 *   - the reader: the session feeds it what it reads from the client, in
 *     chunks of any size; it finds the lines (CRLF, bare LF accepted) and
 *     the literals at their ends ({n} synchronising, {n+} non-synchronising
 *     (RFC 7888), ~{n} / ~{n+} literal8 (RFC 3516)), takes exactly n octets
 *     of literal (anything, CRLF and NUL included), applies the limits, and
 *     yields one complete command at a time;
 *   - the parser: a complete command into a tag, a name ("FETCH",
 *     "UID FETCH") and a tree of arguments (atoms, quoted strings,
 *     literals, NIL, parenthesised lists), with a precise message for
 *     "tag BAD <message>" when the grammar is broken;
 *   - typed helpers over the arguments: numbers, astrings and nstrings,
 *     flag lists, sequence sets, SEARCH dates and APPEND date-times, FETCH
 *     attributes (BODY.PEEK[1.2.HEADER.FIELDS (FROM TO)]<0.100>);
 *   - response helpers: strings quoted or sent as literals, sequence sets.
 *
 * Sequence of use (the session):
 *
 *   imapcmd_reader_init(&r) ; r.litmax = ... ; r.appendmax = ... ;
 *   for each read chunk s[0..n):
 *     while (n) {
 *       size_t used ; int ev = imapcmd_feed(&r, s, n, &used) ;
 *       s += used ; n -= used ;
 *       switch (ev) {
 *         case IMAPCMD_MORE: break ;                      (n is now 0)
 *         case IMAPCMD_CONTINUE: send "+ Ready for literal data\r\n" ;
 *         case IMAPCMD_LITDATA: write r.chunk[0..r.chunklen) to the
 *           APPEND temporary file (r.chunkfirst: a new literal starts) ;
 *         case IMAPCMD_ETOOLONG / ELITERAL / ETOOBIG: answer with the
 *           tag in r.tag (or "*" if r.tag[0] is 0), see below ;
 *         case IMAPCMD_READY: imapcmd_parse(&r, &c, flags) ; run it ;
 *         case IMAPCMD_ENOMEM: die 111 ;
 *       }
 *     }
 *
 * The command (and every pointer the parser and the helpers give into
 * it) stays valid until the next imapcmd_feed() call. */
#ifndef YUBIN_IMAPD_CMD_H
#define YUBIN_IMAPD_CMD_H

#include <stddef.h>
#include <stdint.h>

#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>

/* ---------- limits ---------- */

#define IMAPCMD_LINEMAX   8192       /* octets of one line, without CRLF */
#define IMAPCMD_LITMAX    65536      /* default r->litmax */
#define IMAPCMD_CMDMAX    (1 << 20)  /* default r->cmdmax */
#define IMAPCMD_NONSYNCMAX 4096      /* LITERAL-: larger {n+} refused */
#define IMAPCMD_TAGMAX    64         /* longer tags are not tags */
#define IMAPCMD_NAMEMAX   32         /* "UID FETCH" and the like, with NUL */
#define IMAPCMD_DEPTHMAX  32         /* nested parentheses */
#define IMAPCMD_ARGMAX    20000      /* arguments (list items count) */

/* ---------- the reader ---------- */

/* What a complete command is made of: its lines (without CRLF) and its
 * literals, in order, in r->buf.  A line followed by a literal ends with
 * the literal's marker ("{5}", "{5+}", "~{5}"), which starts at litmark. */
enum imapcmd_segkind
{
  IMAPSEG_LINE,
  IMAPSEG_LITERAL,     /* the octets are at buf.s + off, len of them */
  IMAPSEG_STREAMED,    /* a literal given to the session by LITDATA
                          events: len octets, none of them in buf */
} ;

struct imapcmd_seg
{
  size_t off ;         /* in buf */
  size_t len ;
  size_t litmark ;     /* LINE followed by a literal: where its marker
                          starts in the line (offset from off); else len */
  unsigned char kind ; /* enum imapcmd_segkind */
  unsigned char binary ;  /* literal: it was ~{n} (literal8) */
  unsigned char sync ;    /* literal: {n} (the client waited for "+") */
} ;

/* Events: what imapcmd_feed() returns. */
enum imapcmd_event
{
  IMAPCMD_MORE,        /* all the input is used, nothing for the session */
  IMAPCMD_READY,       /* a complete command: imapcmd_parse() it */
  IMAPCMD_CONTINUE,    /* a synchronising literal is accepted: send
                          "+ Ready for literal data\r\n" */
  IMAPCMD_LITDATA,     /* r->chunk[0..r->chunklen) is the next part of an
                          APPEND literal of at least r->streammin octets
                          (r->litsize in all, r->chunkfirst set on its
                          first chunk, r->litleft after this chunk);
                          r->chunk points into the caller's input */
  IMAPCMD_ETOOLONG,    /* a line over IMAPCMD_LINEMAX: answer "tag BAD
                          line too long"; the rest of the command is
                          skipped (lines and the literals the client sends
                          without waiting), nothing more is reported */
  IMAPCMD_ELITERAL,    /* a literal over its limit (r->litsize octets,
                          r->litsync says which kind): a synchronising one
                          gets "tag NO [TOOBIG] literal too big" (the
                          client will not send it: the reader goes back to
                          reading commands), a non-synchronising one "tag
                          BAD [TOOBIG] literal too big" (its octets and the
                          rest of the command are skipped); closing the
                          connection after a huge one is the session's
                          choice */
  IMAPCMD_ETOOBIG,     /* the command (lines and literals) over
                          r->cmdmax: answer "tag BAD [TOOBIG] command too
                          long"; skipped as after ELITERAL */
  IMAPCMD_ENOMEM,      /* out of memory: the reader is unusable */
} ;

struct imapcmd_reader
{
  /* settings: imapcmd_reader_init() sets the defaults */
  uint64_t litmax ;     /* a literal, any command but APPEND (IMAPCMD_LITMAX) */
  uint64_t appendmax ;  /* a literal of APPEND (IMAPCMD_LITMAX: set it to
                           control/databytes) */
  uint64_t cmdmax ;     /* lines + stored literals of one command
                           (IMAPCMD_CMDMAX; APPEND: appendmax + cmdmax) */
  uint64_t streammin ;  /* APPEND literals of at least this size are
                           streamed by LITDATA events, not stored (0: never) */
  int literalminus ;    /* 1: LITERAL- (RFC 7888): {n+} over
                           IMAPCMD_NONSYNCMAX gets ELITERAL; 0: LITERAL+ */

  /* the current command: tag as soon as its first line is read */
  char tag[IMAPCMD_TAGMAX + 1] ;  /* NUL-terminated; "" if not a valid tag */

  /* the last LITDATA or ELITERAL event */
  char const *chunk ;
  size_t chunklen ;
  int chunkfirst ;
  uint64_t litsize ;
  uint64_t litleft ;
  int litsync ;

  /* the complete command, after READY */
  stralloc buf ;
  genalloc segs ;       /* struct imapcmd_seg */

  /* private */
  int state ;
  int ready ;
  int isappend ;        /* -1 unknown, 0 no, 1 APPEND */
  size_t linestart ;
  uint64_t total ;
  uint64_t skip ;
  unsigned char litbinary ;
  char tail[32] ;       /* the last octets of a skipped line */
  size_t taillen ;
} ;

#define IMAPCMD_READER_ZERO { .litmax = IMAPCMD_LITMAX, .appendmax = IMAPCMD_LITMAX, .cmdmax = IMAPCMD_CMDMAX, .buf = STRALLOC_ZERO, .segs = GENALLOC_ZERO, .isappend = -1 }

extern void imapcmd_reader_init (struct imapcmd_reader *r) ;
extern void imapcmd_reader_free (struct imapcmd_reader *r) ;

/* Takes octets from s[0..len) until an event; *used says how many (all
 * of them with IMAPCMD_MORE; possibly 0 with READY).  After READY the
 * command stays in r until the next call, which starts a new one. */
extern int imapcmd_feed (struct imapcmd_reader *r, char const *s, size_t len, size_t *used) ;

/* ---------- the parser ---------- */

enum imapcmd_argtype
{
  IMAPARG_ATOM,        /* anything unquoted: numbers, sequence sets,
                          \Flags, keywords, list patterns with * and %,
                          and FETCH's BODY[...]<...> (brackets may hold
                          spaces, parentheses and quoted strings) */
  IMAPARG_NIL,         /* the atom NIL, any case */
  IMAPARG_QUOTED,      /* "..." with \" and \\ undone */
  IMAPARG_LITERAL,     /* {n} {n+} ~{n}: its octets (none if streamed) */
  IMAPARG_LIST,        /* ( ... ): its items follow it */
} ;

struct imapcmd_arg
{
  char const *s ;      /* the value (not NUL-terminated), into r->buf */
  size_t len ;         /* LITERAL: its size, even when streamed */
  size_t next ;        /* index of the next sibling: i = a[i].next skips
                          a list and everything in it */
  size_t n ;           /* LIST: the number of its direct items */
  unsigned char type ; /* enum imapcmd_argtype */
  unsigned char binary ;   /* LITERAL: literal8 */
  unsigned char streamed ; /* LITERAL: given by LITDATA, s is NULL */
} ;

struct imapcmd
{
  char const *tag ;    /* NUL-terminated; "" if the tag is bad */
  char name[IMAPCMD_NAMEMAX] ;  /* upper case: "FETCH", "UID FETCH"; "" */
  int uid ;            /* the UID prefix was there */
  genalloc args ;      /* struct imapcmd_arg, pre-order; the top level
                          arguments are 0, a[0].next, ... up to nargs */
  size_t nargs ;       /* index one past the last argument */
  char const *err ;    /* after a grammar error: the BAD message */
} ;

#define IMAPCMD_ZERO { .tag = "", .name = "", .uid = 0, .args = GENALLOC_ZERO, .nargs = 0, .err = 0 }

#define IMAPCMD_UTF8 1   /* 8-bit UTF-8 allowed in quoted strings
                            (UTF8=ACCEPT enabled); else BAD */

/* Parses the command r holds (after READY), in place (quoted strings are
 * unescaped inside r->buf).  Returns 1; or 0 for a grammar error: c->err
 * is the message (a static string) for "<tag> BAD <err>" (tag "*" if
 * c->tag is ""); or -1 out of memory.  c can be reused: it is reset. */
extern int imapcmd_parse (struct imapcmd_reader *r, struct imapcmd *c, unsigned int flags) ;
extern void imapcmd_free (struct imapcmd *c) ;

/* The argument at index i, NULL if i is past the end. */
extern struct imapcmd_arg const *imapcmd_arg (struct imapcmd const *c, size_t i) ;

/* Whether arg i is an atom equal to the NUL-terminated word (any case). */
extern int imapcmd_is (struct imapcmd const *c, size_t i, char const *word) ;

/* Strict decimal (number64): arg i is an atom of digits, at most max.
 * Returns 1 with *n set, or 0. */
extern int imapcmd_number (struct imapcmd const *c, size_t i, uint64_t max, uint64_t *n) ;

/* astring (atom, NIL as the string "NIL", quoted, stored literal):
 * returns 1 with *s, *len set, or 0 (a list, a streamed literal, or an
 * atom holding a character an astring cannot: '\\', and '*' or '%'
 * unless wildcards is 1, for LIST patterns).  nstring: a quoted string
 * or a literal, or NIL which gives *s = NULL (an atom is refused). */
extern int imapcmd_astring (struct imapcmd const *c, size_t i, int wildcards, char const **s, size_t *len) ;
extern int imapcmd_nstring (struct imapcmd const *c, size_t i, char const **s, size_t *len) ;

/* ---------- flags ---------- */

#define IMAPFLAG_SEEN     0x01
#define IMAPFLAG_ANSWERED 0x02
#define IMAPFLAG_FLAGGED  0x04
#define IMAPFLAG_DELETED  0x08
#define IMAPFLAG_DRAFT    0x10
#define IMAPFLAG_RECENT   0x20   /* never accepted in a flag list */

struct imapcmd_str { char const *s ; size_t len ; } ;

/* A flag list: arg i is a list of flags "(\Seen $Junk)", or, with
 * loose set, arguments i .. c->nargs-1 are flags (STORE's "+FLAGS \Seen
 * \Deleted" form; a single list is accepted there too).  System flags
 * (any case) go into *flags, keywords (atoms, no backslash) are appended
 * to keywords (struct imapcmd_str, pointing into the command).  Returns
 * 1; 0 with *err set on a bad flag (\Recent, an unknown \Flag, a
 * non-atom); -1 out of memory. */
extern int imapcmd_flaglist (struct imapcmd const *c, size_t i, int loose, unsigned int *flags, genalloc *keywords, char const **err) ;

/* ---------- sequence sets ---------- */

/* "1:*,3,5:7": ranges; '*' is stored as 0 (no message has number 0) and
 * is given its value (the largest sequence number or UID) by
 * imapseq_resolve.  "$" (SEARCHRES, RFC 5182) sets dollar and holds no
 * range: the session substitutes its saved result. */
struct imapseq_range { uint32_t lo, hi ; } ;

struct imapseq
{
  genalloc ranges ;    /* struct imapseq_range, as written (lo may be > hi) */
  int dollar ;
  int resolved ;       /* after imapseq_resolve: sorted, merged, lo <= hi */
} ;
#define IMAPSEQ_ZERO { .ranges = GENALLOC_ZERO, .dollar = 0, .resolved = 0 }

/* Parses s[0..len).  Returns 1; 0 on a syntax error (0, empty items,
 * numbers over 2^32-1, trailing ','); -1 out of memory.  q is reset. */
extern int imapseq_parse (struct imapseq *q, char const *s, size_t len) ;
extern void imapseq_free (struct imapseq *q) ;

/* Whether n is in q, '*' meaning max ("5:2" is "2:5"; with max 3, "5:*"
 * holds 3, 4 and 5).  Works before or after imapseq_resolve. */
extern int imapseq_contains (struct imapseq const *q, uint32_t n, uint32_t max) ;

/* '*' becomes max, each range ordered, then sorted and merged (then
 * imapseq_contains is a binary search).  Ranges are not clipped to max:
 * "UID 5:7" in a mailbox whose largest UID is 3 holds 5, 6, 7. */
extern void imapseq_resolve (struct imapseq *q, uint32_t max) ;

/* Iteration over a resolved set, in increasing order, from *n = 0:
 * returns 1 with the next member in *n, 0 at the end or past limit. */
extern int imapseq_next (struct imapseq const *q, uint32_t limit, uint32_t *n) ;

/* The sorted numbers n[0..count) as a compact sequence set ("1:3,5") at
 * the end of sa.  Returns 1, or 0 out of memory. */
extern int imapseq_cat (stralloc *sa, uint32_t const *n, size_t count) ;

/* ---------- dates ---------- */

/* SEARCH's date ("1-Feb-1994", "01-feb-1994"; the month in any case): the
 * number of days since 1970-01-01 in *day.  1 or 0. */
extern int imapcmd_date (char const *s, size_t len, int64_t *day) ;

/* APPEND's date-time ("01-Feb-1994 10:00:00 +0100", " 1-Feb-1994 ..."):
 * the Unix time in *t and the zone in minutes east of UTC in *tzmin.
 * 1 or 0. */
extern int imapcmd_datetime (char const *s, size_t len, int64_t *t, int *tzmin) ;

/* The INTERNALDATE form of t in zone tzmin, quoted:
 * "\"01-Feb-1994 10:00:00 +0100\"", at the end of sa.  1, 0 no memory. */
extern int imapcmd_catdatetime (stralloc *sa, int64_t t, int tzmin) ;

/* ---------- FETCH attributes ---------- */

enum imapfetch_kind
{
  IMAPFETCH_ENVELOPE,
  IMAPFETCH_FLAGS,
  IMAPFETCH_INTERNALDATE,
  IMAPFETCH_RFC822,          /* = BODY[] */
  IMAPFETCH_RFC822_HEADER,   /* = BODY.PEEK[HEADER] */
  IMAPFETCH_RFC822_SIZE,
  IMAPFETCH_RFC822_TEXT,     /* = BODY[TEXT] */
  IMAPFETCH_BODY,            /* BODY without a section: structure */
  IMAPFETCH_BODYSTRUCTURE,
  IMAPFETCH_UID,
  IMAPFETCH_SECTION,         /* BODY[...] and BODY.PEEK[...] */
  IMAPFETCH_BINARY,          /* BINARY[...] and BINARY.PEEK[...] */
  IMAPFETCH_BINARY_SIZE,     /* BINARY.SIZE[...] */
  IMAPFETCH_MODSEQ,          /* CONDSTORE; parsed, the session decides */
} ;

enum imapfetch_text
{
  IMAPSECT_ALL,              /* BODY[] / BODY[1.2]: the whole part */
  IMAPSECT_HEADER,
  IMAPSECT_FIELDS,           /* HEADER.FIELDS (...) */
  IMAPSECT_FIELDS_NOT,       /* HEADER.FIELDS.NOT (...) */
  IMAPSECT_TEXT,
  IMAPSECT_MIME,             /* only after a part number */
} ;

#define IMAPFETCH_PARTMAX 32

struct imapfetch_att
{
  unsigned char kind ;       /* enum imapfetch_kind */
  unsigned char peek ;       /* BODY.PEEK / BINARY.PEEK / RFC822.HEADER /
                                RFC822.SIZE...: does not set \Seen */
  unsigned char text ;       /* enum imapfetch_text */
  unsigned char partial ;    /* <origin.count> given */
  unsigned int nparts ;
  uint32_t part[IMAPFETCH_PARTMAX] ;  /* 1.2.3 */
  size_t field ;             /* FIELDS: fields[field .. field+nfields) */
  size_t nfields ;
  uint64_t origin ;
  uint64_t count ;
} ;

struct imapfetch
{
  genalloc atts ;            /* struct imapfetch_att */
  genalloc fields ;          /* struct imapcmd_str: header field names */
} ;
#define IMAPFETCH_ZERO { .atts = GENALLOC_ZERO, .fields = GENALLOC_ZERO }

/* FETCH's attributes: arg i is ALL, FAST, FULL (expanded), one attribute
 * or a list of them.  f is reset.  Returns 1; 0 with *err the BAD
 * message; -1 out of memory. */
extern int imapfetch_parse (struct imapfetch *f, struct imapcmd const *c, size_t i, char const **err) ;
/* One attribute from s[0..len) (an atom as the parser gives it), added
 * to f.  Same returns. */
extern int imapfetch_parse_att (struct imapfetch *f, char const *s, size_t len, char const **err) ;
extern void imapfetch_free (struct imapfetch *f) ;

/* The response item name of a, at the end of sa: "UID", "RFC822.SIZE",
 * "BODY[1.2.HEADER.FIELDS (FROM TO)]<0>" (no ".PEEK"; the origin only),
 * "BINARY[1]", "BINARY.SIZE[1]".  1, or 0 out of memory. */
extern int imapfetch_catname (stralloc *sa, struct imapfetch const *f, struct imapfetch_att const *a) ;

/* ---------- response helpers ---------- */

/* s[0..len) as an IMAP string at the end of sa: quoted ("a \"b\"") if it
 * has no CR, LF, NUL and no 8-bit octet (8-bit allowed if utf8 is 1) and
 * is at most 1024 octets, else a literal "{len}\r\n" + s.  1, 0 no memory. */
extern int imapcmd_catstring (stralloc *sa, char const *s, size_t len, int utf8) ;
/* The same, but as an atom when it is a non-empty atom other than NIL. */
extern int imapcmd_catastring (stralloc *sa, char const *s, size_t len, int utf8) ;
/* NIL when s is NULL, else imapcmd_catstring. */
extern int imapcmd_catnstring (stralloc *sa, char const *s, size_t len, int utf8) ;

#endif
