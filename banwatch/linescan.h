/* banwatch's line scanner for replay mode: a mapped log is cut into lines
 * and, in the same pass over its bytes, each line is told whether it may
 * hold one of up to LINESCAN_MAXKEYS filter literals.  A key is a pair of
 * a literal's bytes at their distance in it, chosen to be rare in the log
 * itself: a line without any key pair can't hold any of the literals, so
 * it can't match and only moves the clock.  NULs are found in the same
 * pass (a line with one is never matched).  The answer is "maybe" (a
 * superset), never a match.  Pure: no I/O, no allocation; tested in
 * tests/banwatch/t-linescan. */
#ifndef YUBIN_LINESCAN_H
#define YUBIN_LINESCAN_H

#include <stddef.h>
#include <stdint.h>

#define LINESCAN_MAXKEYS 4
#define LINESCAN_MAXDIST 48   /* the farthest second byte of a key */
#define LINESCAN_SAMPLE 65536 /* bytes of the log that choose the keys */

/* a line may hold the literal if some i in it has s[i] == a and
 * s[i + d] == b (i + d inside the text, not necessarily the line);
 * d <= LINESCAN_MAXDIST (linescan_init takes no keys otherwise) */
typedef struct linescan_key_s linescan_key ;
struct linescan_key_s { unsigned char a, b, d ; } ;

typedef struct linescan_line_s linescan_line ;
struct linescan_line_s
{
  size_t start, end ;   /* s[start..end): the line, end at its '\n' or n */
  int maybe ;           /* a key pair is in it (always 1 with no keys) */
  int nul ;             /* a NUL byte is in it */
} ;

#define LINESCAN_BLOCKS 4     /* 64-byte blocks scanned at a time */

typedef struct linescan_s linescan ;
struct linescan_s
{
  char const *s ;
  size_t n ;
  linescan_key key[LINESCAN_MAXKEYS] ;
  unsigned int nkeys ;   /* 0: every line is a "maybe" */
  int vec ;              /* 0 bytes, 1 SSE2, 2 AVX2: the best the CPU has
                            (tests may lower it after linescan_init) */
  unsigned char va[LINESCAN_MAXKEYS][32], vb[LINESCAN_MAXKEYS][32] ;   /* a, b x32 */
  size_t pos ;           /* where the next line starts */
  size_t blk ;           /* the 64-byte block the line search is in */
  unsigned int cur, nb ; /* its index in the masks below, how many held */
  uint64_t nl[LINESCAN_BLOCKS], hit[LINESCAN_BLOCKS], nul[LINESCAN_BLOCKS] ;
                         /* newlines, key pairs and NULs, one bit a byte */
  int hitbefore ;        /* a key pair in the current line before blk */
  int nulbefore ;        /* a NUL in the current line before blk */
} ;

/* The key of literal lit[0..len) (len >= 1) that is rarest in
 * sample[0..n).  Returns the index in lit of its byte rarest in sample. */
extern size_t linescan_choose (linescan_key *, char const *, size_t, char const *, size_t) ;
/* Adds k to keys[0..*nkeys) unless it is there.  0 if it is full. */
extern int linescan_addkey (linescan_key *, unsigned int *, linescan_key const *) ;
extern void linescan_init (linescan *, char const *, size_t, linescan_key const *, unsigned int) ;
/* Up to max (>= 1) next lines into out; 0 at the end of the text.  The last
 * line has no '\n' when the text does not end with one; a text ending
 * with '\n' has no empty line after it. */
extern size_t linescan_fill (linescan *, linescan_line *, size_t) ;

#endif
