/* imapd/search: SEARCH and UID SEARCH (RFC 3501 6.4.4, the whole key
 * set, ESEARCH's RETURN (RFC 4731)), pure: parsed into a tree, evaluated
 * against one message at a time through callbacks the session provides.
 * Unit-tested by tests/imapd/t-search.c.
 *
 * Cost: every key has a cost level: IMAPSEARCH_INDEX (sequence numbers,
 * UIDs, flags, keywords, sizes, internal dates: what the index knows),
 * IMAPSEARCH_HEADER (HEADER, FROM, TO, CC, BCC, SUBJECT, SENT*: the
 * header must be read) and IMAPSEARCH_BODY (BODY, TEXT: the whole
 * message).  The children of every AND and OR are ordered cheapest first
 * and evaluation stops as soon as the result is known, so an expensive
 * callback is only called when the cheap keys could not decide.  The
 * session can also evaluate with a cost ceiling first (all messages from
 * the index alone, IMAPSEARCH_UNKNOWN for the undecided), then open the
 * files of the undecided ones only.
 *
 * Use (the session):
 *   struct imapsearch s = IMAPSEARCH_ZERO ;
 *   r = imapsearch_parse(&s, &c, 0, utf8, &err) ;   after "SEARCH"
 *     1: go on; 0: "tag BAD <err>"; -2: "tag NO [BADCHARSET (UTF-8
 *     US-ASCII)] <err>"; -1: out of memory
 *   imapsearch_prepare(&s, nmessages, maxuid) ;    resolves '*'
 *   for each message seq: imapsearch_eval(&s, &ops, ctx, seq, IMAPSEARCH_BODY)
 *   imapsearch_free(&s) ;
 * The tree points into the command: keep it until evaluation is over. */
#ifndef YUBIN_IMAPD_SEARCH_H
#define YUBIN_IMAPD_SEARCH_H

#include <stddef.h>
#include <stdint.h>

#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>

#include "imapd/cmd.h"

struct imapsearch_match ;

#define IMAPSEARCH_DEPTHMAX 64   /* nesting of NOT, OR and parentheses */
#define IMAPSEARCH_KEYMAX   4096 /* keys in one SEARCH */

/* cost levels */
#define IMAPSEARCH_INDEX  0
#define IMAPSEARCH_HEADER 1
#define IMAPSEARCH_BODY   2

/* what imapsearch_eval returns besides 0 and 1 */
#define IMAPSEARCH_UNKNOWN 2     /* a key above the ceiling decides */
#define IMAPSEARCH_ERROR  (-1)   /* a callback failed (errno from it) */

/* ESEARCH RETURN options */
#define IMAPSEARCH_RET_MIN   0x01
#define IMAPSEARCH_RET_MAX   0x02
#define IMAPSEARCH_RET_ALL   0x04
#define IMAPSEARCH_RET_COUNT 0x08
#define IMAPSEARCH_RET_SAVE  0x10   /* SEARCHRES; parsed, session's choice */

/* The accessor: one message, by sequence number seq (1-based), of the
 * session's context ctx.  The callbacks of cost IMAPSEARCH_INDEX must be
 * cheap; the others may read the message. */
struct imapsearch_ops
{
  /* IMAPFLAG_* of cmd.h, \Recent included */
  unsigned int (*flags) (void *ctx, uint32_t seq) ;
  /* 1 if the message has the keyword kw[0..len) (case-insensitive, as
   * the session stores keywords), else 0 */
  int (*keyword) (void *ctx, uint32_t seq, char const *kw, size_t len) ;
  uint32_t (*uid) (void *ctx, uint32_t seq) ;
  uint64_t (*size) (void *ctx, uint32_t seq) ;       /* RFC822.SIZE */
  /* internal date: Unix time in *t, the zone whose calendar day counts
   * for BEFORE/ON/SINCE in *tzmin (minutes east of UTC: the server's) */
  void (*internaldate) (void *ctx, uint32_t seq, int64_t *t, int *tzmin) ;

  /* cost IMAPSEARCH_HEADER. */
  /* the Date: header: 1 with *t, *tzmin (its own zone), 0 if there is
   * none or it is unreadable (then the internal date is used), -1 error */
  int (*sentdate) (void *ctx, uint32_t seq, int64_t *t, int *tzmin) ;
  /* every field named name[0..namelen) (case-insensitive; "FROM", "TO",
   * "CC", "BCC", "SUBJECT" or HEADER's name), unfolded and decoded to
   * UTF-8 (RFC 2047), appended to out, one field after another with a
   * '\n' between; returns 1 if there was at least one such field, 0 if
   * none, -1 on error.  out is emptied by the caller. */
  int (*header) (void *ctx, uint32_t seq, char const *name, size_t namelen, stralloc *out) ;

  /* cost IMAPSEARCH_BODY. */
  /* whether the body (text = 0: after the header, decoded per MIME part
   * (transfer encoding, charset to UTF-8), or text = 1: the header and
   * the body) contains the needle: the session feeds what it decodes to
   * m (imapsearch_match_feed) and returns m->found, or -1 on error.
   * m is initialised for the needle by the caller. */
  int (*contains) (void *ctx, uint32_t seq, int text, struct imapsearch_match *m) ;
} ;

/* ---------- the streaming case-insensitive matcher ---------- */

/* Finds a needle in a text fed in chunks of any size (a match may span
 * chunks), comparing with case folding: ASCII, and the Latin-1 letters
 * of UTF-8 (U+00C0..U+00DE but U+00D7 fold to U+00E0..U+00FE).  Both
 * sides are folded the same way, octet for octet, so invalid UTF-8 is
 * compared as it is. */
struct imapsearch_match
{
  char const *needle ;       /* folded */
  size_t len ;
  size_t const *fail ;       /* KMP table */
  size_t state ;             /* octets of the needle matched so far */
  unsigned char prev ;       /* last octet fed (for the folding) */
  int found ;
} ;

/* Restarts m for the same needle (found = 0). */
extern void imapsearch_match_reset (struct imapsearch_match *m) ;
/* Feeds s[0..len); returns m->found.  Cheap once found. */
extern int imapsearch_match_feed (struct imapsearch_match *m, char const *s, size_t len) ;
/* One-shot: whether hay contains needle, folded (needle unfolded). */
extern int imapsearch_contains (char const *hay, size_t haylen, char const *needle, size_t needlelen) ;
/* The folding of s[0..len) appended to sa (same length). 1, 0 no memory. */
extern int imapsearch_fold (stralloc *sa, char const *s, size_t len) ;

/* ---------- the search ---------- */

struct imapsearch
{
  genalloc nodes ;           /* private: the tree */
  genalloc seqs ;            /* private: struct imapseq of the set keys */
  stralloc strs ;            /* private: folded needles, KMP tables */
  genalloc fails ;           /* private */
  stralloc scratch ;         /* private: header values */
  struct imapseq dollar ;    /* private: the saved result (UIDs) */
  size_t root ;
  unsigned int ret ;         /* IMAPSEARCH_RET_*, 0 if no RETURN */
  int esearch ;              /* RETURN (...) was given, even empty:
                                answer with ESEARCH (RETURN () = ALL) */
  int charset ;              /* CHARSET was given (UTF-8 or US-ASCII) */
  int cost ;                 /* the highest cost level of its keys */
  int hasdollar ;            /* a '$' sequence set (SEARCHRES): the
                                session must call imapsearch_setdollar */
} ;
#define IMAPSEARCH_ZERO { .nodes = GENALLOC_ZERO, .seqs = GENALLOC_ZERO, .strs = STRALLOC_ZERO, .fails = GENALLOC_ZERO, .scratch = STRALLOC_ZERO, .dollar = IMAPSEQ_ZERO, .root = 0, .ret = 0, .esearch = 0, .charset = 0, .cost = 0, .hasdollar = 0 }

/* Parses arguments i.. to the end of c: [RETURN (...)] [CHARSET name]
 * keys...  The keys are ANDed.  Returns 1; 0 grammar error (*err the BAD
 * message); -2 unknown charset (*err a message; answer NO [BADCHARSET
 * (UTF-8 US-ASCII)]); -1 out of memory.  s is reset first. */
extern int imapsearch_parse (struct imapsearch *s, struct imapcmd const *c, size_t i, char const **err) ;

/* Gives '*' its value in the sequence-set keys: nmsgs for message
 * numbers, maxuid for UID sets (the largest UID in the mailbox).  Must
 * be called after imapsearch_parse and before imapsearch_eval (again if
 * the mailbox changed). */
extern void imapsearch_prepare (struct imapsearch *s, uint32_t nmsgs, uint32_t maxuid) ;

/* SEARCHRES: the saved result, as UIDs (sorted), for every '$'. */
extern int imapsearch_setdollar (struct imapsearch *s, uint32_t const *uids, size_t n) ;

/* Evaluates s against message seq, calling no callback of cost above
 * ceiling.  Returns 1 (matches), 0 (does not), IMAPSEARCH_UNKNOWN (only
 * keys above the ceiling can tell), IMAPSEARCH_ERROR. */
extern int imapsearch_eval (struct imapsearch *s, struct imapsearch_ops const *ops, void *ctx, uint32_t seq, int ceiling) ;

extern void imapsearch_free (struct imapsearch *s) ;

#endif
