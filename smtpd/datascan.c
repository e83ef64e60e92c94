/* The DATA end-of-data scanner with the smuggling guard: see datascan.h. */

#include <skalibs/bytestr.h>

#include "datascan.h"

enum { S_BOL, S_MID, S_CR, S_DOT, S_DOTCR } ;

static unsigned char const special[256] = { ['\0'] = 1, ['\n'] = 1, ['\r'] = 1 } ;

void datascan_init (struct datascan *d, unsigned long max, datascan_emit_func *emit, void *ctx)
{
  d->state = S_BOL ;
  d->flags = 0 ;
  d->linelen = 0 ;
  d->bytes = 0 ;
  d->max = max ;
  d->inheader = 1 ;
  d->prelen = 0 ;
  d->hops = 0 ;
  d->emit = emit ;
  d->ctx = ctx ;
}

/* Count Received: and Delivered-To: header lines in the (LF-ended)
 * message, as qmail-smtpd does, to refuse looping mail. */
static void hop_scan (struct datascan *d, char const *s, size_t len)
{
  for (size_t i = 0 ; i < len && d->inheader ; i++)
  {
    if (s[i] != '\n')
    {
      if (d->prelen < sizeof(d->pre)) d->pre[d->prelen] = s[i] ;
      d->prelen++ ;
      continue ;
    }
    if (!d->prelen) d->inheader = 0 ;
    else if ((d->prelen >= 9 && case_equalb(d->pre, 9, "received:"))
          || (d->prelen >= 13 && case_equalb(d->pre, 13, "delivered-to:")))
    {
      if (++d->hops > DATASCAN_MAXHOPS) d->flags |= DATASCAN_HOPS ;
    }
    d->prelen = 0 ;
  }
}

/* Message bytes out.  Past the size limit only the octets up to it go
 * out, so the output is the same however the input was cut. */
static void emit (struct datascan *d, char const *s, size_t len)
{
  if (d->flags) return ;
  if (d->max && len > d->max - d->bytes)
  {
    len = d->max - d->bytes ;
    if (len) (*d->emit)(d->ctx, s, len) ;
    d->bytes += len ;
    d->flags |= DATASCAN_SIZE ;
    return ;
  }
  d->bytes += len ;
  if (d->inheader) hop_scan(d, s, len) ;
  (*d->emit)(d->ctx, s, len) ;
}

size_t datascan_run (struct datascan *d, char const *s, size_t len, int *end)
{
  size_t i = 0 ;
  while (i < len)
  {
    switch (d->state)
    {
      case S_MID :
      {
        size_t j = i ;
        while (j < len && !special[(unsigned char)s[j]]) j++ ;
        if (j > i)
        {
          /* a too long line: out up to the limit, then the flag */
          size_t room = d->linelen < DATASCAN_LINEMAX ? DATASCAN_LINEMAX - d->linelen : 0 ;
          d->linelen += j - i ;
          if (j - i > room)
          {
            if (room) emit(d, s + i, room) ;
            d->flags |= DATASCAN_LONG ;
          }
          else emit(d, s + i, j - i) ;
          i = j ;
          if (i == len) break ;
        }
        char ch = s[i++] ;
        if (ch == '\r') d->state = S_CR ;
        else
        {
          d->flags |= (ch == '\n') ? DATASCAN_BARE : DATASCAN_NUL ;
          d->linelen++ ;
        }
        break ;
      }
      case S_BOL :
        d->linelen = 0 ;
        if (s[i] == '.') { i++ ; d->linelen = 1 ; d->state = S_DOT ; }
        else d->state = S_MID ;
        break ;
      case S_DOT :
        /* "." then something: the dot is stuffing, drop it */
        if (s[i] == '\r') { i++ ; d->state = S_DOTCR ; }
        else d->state = S_MID ;
        break ;
      case S_DOTCR :
        if (s[i] == '\n') { *end = 1 ; return i + 1 ; }
        d->flags |= DATASCAN_BARE ;
        d->linelen++ ;
        d->state = S_MID ;
        break ;
      case S_CR :
        if (s[i] == '\n')
        {
          i++ ;
          emit(d, "\n", 1) ;
          d->state = S_BOL ;
        }
        else
        {
          d->flags |= DATASCAN_BARE ;
          d->linelen++ ;
          d->state = S_MID ;
        }
        break ;
    }
  }
  return i ;
}
