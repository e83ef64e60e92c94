/* banwatch's own matcher for the POSIX extended regexes of filters: the
 * pattern is parsed into a Glushkov automaton and run as a lazily built
 * DFA, one table look-up a byte (bytes grouped in classes, so a state's
 * row is small), one memcmp for a run of fixed text, no allocation once
 * the states a log needs are built.  It answers only "does the whole pattern match the
 * text" (no groups).  It takes the common subset of ERE (literals and
 * escapes, '.', bracket expressions with ranges and [:classes:], groups,
 * '|', '*', '+', '?', {m,n}, '^' first and '$' last); anything else (back
 * references, GNU word operators, anchors elsewhere, [. .] and [= =],
 * bytes >= 0x80 in the pattern, more than BANRE_MAXPOS positions after
 * expanding intervals) makes banre_compile say "not supported" and the
 * caller keeps using regexec.  The byte semantics are the C locale's,
 * which is banwatch's (it never calls setlocale).  Tested against glibc's
 * regexec in tests/banwatch/t-banparse and tests/fuzz/fuzz-logline. */
#ifndef YUBIN_BANRE_H
#define YUBIN_BANRE_H

#include <stddef.h>
#include <stdint.h>

#define BANRE_MAXPOS 511     /* positions (character atoms) */
#define BANRE_W 8            /* 64-bit words in a set of positions */
#define BANRE_MAXSTATES 4096 /* DFA states built before giving up */
#define BANRE_RUN 32         /* the longest run of fixed text taken at once */

typedef struct banre_s banre ;
struct banre_s
{
  unsigned int npos ;        /* positions 1..npos; 0 is the start */
  int bol, eol ;             /* anchored at the start, at the end */
  int nullable ;
  uint64_t *follow ;         /* (npos + 1) sets */
  uint64_t *bytepos ;        /* 256 sets: the positions a byte can be */
  uint64_t last[BANRE_W] ;   /* accepting positions */
  /* the DFA, built as the text asks for it */
  uint32_t nst, cap ;
  uint64_t *sets ;           /* nst sets: the positions of each state */
  uint64_t *reach ;          /* nst sets: the union of their follow sets */
  uint8_t cmap[256] ;        /* byte -> class: bytes no position tells
                                apart share one; NUL alone in class 0 */
  unsigned int shift ;       /* 1 << shift >= the number of classes */
  int32_t *trans ;           /* nst << shift: the next state << shift,
                                or -2 minus it if that state's absorb
                                is not 0; -1 not built yet (always, for
                                NUL) */
  uint8_t *acc ;             /* nst: accepting */
  uint8_t *absorb ;          /* nst: 1 dead (no way out), 2 accepting and
                                every byte but NUL stays in it, 4 a single
                                byte leads on (a run of fixed text), 8
                                some classes lead back to it ("x+") */
  uint64_t *loop ;           /* nst: those classes, a bit each (8 only) */
  uint8_t *fbyte ;           /* nst: that byte */
  int8_t *runlen ;           /* nst: bytes of its run, -1 not built yet */
  int32_t *runend ;          /* nst: the state after the run, << shift */
  uint8_t (*run)[BANRE_RUN] ;   /* nst: the run: fixed text, one memcmp */
  uint32_t *ht ;             /* state lookup, open addressing, 0 = empty */
  size_t htmask ;
  int32_t start, dead ;      /* states << shift; dead: -1 if no state is dead */
} ;
#define BANRE_ZERO { 0 }

/* 1 compiled; 0 not supported by banre (use regexec) or out of memory.
 * re[0..n) must be a pattern that regcomp(REG_EXTENDED) accepted. */
extern int banre_compile (banre *, char const *, size_t) ;
extern void banre_free (banre *) ;
/* Does the pattern match s[0..n) (anywhere, as regexec does, unless
 * anchored)?  1 yes, 0 no, -1 can't tell (a NUL byte in s, out of memory,
 * too many states): ask regexec. */
extern int banre_match (banre *, char const *, size_t) ;

#endif
