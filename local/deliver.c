/* The delivery of yubin-local: see deliver.h.  The message goes into the
 * Maildir that defaultdelivery names, with Return-Path: and Delivered-To:
 * prepended; a message that already has our Delivered-To: line is
 * looping.  The .qmail engine comes next. */

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <skalibs/bytestr.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>

#include "exitcodes.h"
#include "maildir.h"
#include "ylog.h"

#include "local/deliver.h"

#define dienomem() strerr_dief(EX_TEMP, "out of memory (#4.3.0)")

/* Append s to sa with '\n' and '\r' replaced by '_' (as qmail-local does),
 * so that an argument can never end a header line early. */
static int cats_oneline (stralloc *sa, char const *s)
{
  size_t n = strlen(s) ;
  size_t base = sa->len ;
  if (!stralloc_catb(sa, s, n)) return 0 ;
  for (size_t i = base ; i < sa->len ; i++)
    if (sa->s[i] == '\n' || sa->s[i] == '\r') sa->s[i] = '_' ;
  return 1 ;
}

/* Does the header of the message on fd 0 (from the current offset) hold a
 * line equal to dt (dtlen bytes, no newline), ignoring case and an
 * optional CR before the LF?  Only the header is read: up to the first
 * empty line.  Returns 1 yes, 0 no, -1 on read error. */
static int header_has_line (int fd, char const *dt, size_t dtlen)
{
  char buf[65536] ;
  stralloc lsa = STRALLOC_ZERO ;  /* the first bytes of the current line */
  size_t cap = dtlen + 2 ;
  size_t linelen = 0 ;  /* total length of the current line so far */
  int found = 0 ;
  if (!stralloc_ready(&lsa, cap)) dienomem() ;
  char *line = lsa.s ;
  for (;;)
  {
    ssize_t r = read(fd, buf, sizeof(buf)) ;
    if (r < 0)
    {
      if (errno == EINTR) continue ;
      found = -1 ;
      break ;
    }
    if (!r) break ;
    size_t pos = 0 ;
    while (pos < (size_t)r)
    {
      size_t n = byte_chr(buf + pos, r - pos, '\n') ;
      int eol = pos + n < (size_t)r ;
      if (linelen < cap)
      {
        size_t k = n < cap - linelen ? n : cap - linelen ;
        memcpy(line + linelen, buf + pos, k) ;
      }
      linelen += n ;
      pos += n + eol ;
      if (!eol) break ;
      {
        size_t len = linelen ;
        if (len && len <= cap && line[len-1] == '\r') len-- ;
        if (!len) goto end ;  /* empty line: end of header */
        if (len == dtlen && case_equalb(line, dtlen, dt)) { found = 1 ; goto end ; }
      }
      linelen = 0 ;
    }
  }
 end:
  stralloc_free(&lsa) ;
  return found ;
}

/* The reason of a failure into why: the strings up to a null pointer,
 * then, if sys, ": " and errno's text (as strerr_diefusys words it).
 * Returns code. */
static int fail (stralloc *why, int code, int sys, ...)
{
  int e = errno ;
  va_list ap ;
  char const *s ;
  why->len = 0 ;
  va_start(ap, sys) ;
  while ((s = va_arg(ap, char const *)))
    if (!stralloc_cats(why, s)) dienomem() ;
  va_end(ap) ;
  if (sys && (!stralloc_cats(why, ": ") || !stralloc_cats(why, strerror(e)))) dienomem() ;
  if (!stralloc_0(why)) dienomem() ;
  why->len-- ;
  return code ;
}

int local_delivery_ok (struct delivery const *d)
{
  return *d->user && d->home[0] == '/' ;
}

static int is_maildir (char const *dd, size_t ddlen)
{
  return ddlen && dd[ddlen-1] == '/' && (dd[0] == '.' || dd[0] == '/') && !memchr(dd, '\n', ddlen) ;
}

char const *local_delivery_kind (char const *dd)
{
  return is_maildir(dd, strlen(dd)) ? "maildir" : dd[0] == '|' ? "program"
       : (dd[0] == '.' || dd[0] == '/') ? "mbox" : "forward" ;
}

int local_deliver (struct delivery const *d, int msgfd, stralloc *why)
{
  char const *homedir = d->home ;
  char const *dd = d->defaultdelivery ;
  size_t ddlen = strlen(dd) ;

  if (!is_maildir(dd, ddlen))
  {
    if (memchr(dd, '\n', ddlen)) return fail(why, EX_PERM, 0, "multi-line delivery instructions are not supported yet (#5.3.5)", (char *)0) ;
    if (dd[0] == '|') return fail(why, EX_PERM, 0, "program delivery is not supported yet (#5.3.5)", (char *)0) ;
    if (dd[0] == '.' || dd[0] == '/') return fail(why, EX_PERM, 0, "mbox delivery is not supported yet: ", dd, " (#5.3.5)", (char *)0) ;
    return fail(why, EX_PERM, 0, "forwarding is not supported yet: ", dd, " (#5.3.5)", (char *)0) ;
  }

  off_t start = lseek(msgfd, 0, SEEK_CUR) ;
  if (start < 0) return fail(why, EX_TEMP, 1, "unable to seek on the message: stdin must be a regular file (#4.3.0)", (char *)0) ;

  umask(077) ;
  if (chdir(homedir) < 0) return fail(why, EX_TEMP, 1, "unable to switch to ", homedir, " (#4.3.0)", (char *)0) ;
  {
    struct stat st ;
    if (stat(".", &st) < 0) return fail(why, EX_TEMP, 1, "unable to stat ", homedir, " (#4.3.0)", (char *)0) ;
    if (st.st_mode & S_IWOTH) return fail(why, EX_TEMP, 0, "home directory ", homedir, " is world-writable (#4.7.0)", (char *)0) ;
    if (st.st_mode & S_ISVTX) return fail(why, EX_TEMP, 0, "home directory ", homedir, " is sticky: user is editing delivery instructions (#4.2.1)", (char *)0) ;
  }

  int code = 0 ;
  stralloc prefix = STRALLOC_ZERO ;
  stralloc dir = STRALLOC_ZERO ;
  stralloc name = STRALLOC_ZERO ;
  size_t dtstart, dtlen ;
  if (!stralloc_cats(&prefix, "Return-Path: <")
   || !cats_oneline(&prefix, d->sender)
   || !stralloc_cats(&prefix, ">\n")) dienomem() ;
  dtstart = prefix.len ;
  if (!stralloc_cats(&prefix, "Delivered-To: ")
   || !cats_oneline(&prefix, d->local)
   || !stralloc_catb(&prefix, "@", 1)
   || !cats_oneline(&prefix, d->domain)) dienomem() ;
  dtlen = prefix.len - dtstart ;
  if (!stralloc_catb(&prefix, "\n", 1)) dienomem() ;

  int r = header_has_line(msgfd, prefix.s + dtstart, dtlen) ;
  if (r < 0) { code = fail(why, EX_TEMP, 1, "unable to read message (#4.3.0)", (char *)0) ; goto end ; }
  if (r) { code = fail(why, EX_PERM, 0, "message is looping: it already has my Delivered-To line (#5.4.6)", (char *)0) ; goto end ; }
  if (lseek(msgfd, start, SEEK_SET) < 0) { code = fail(why, EX_TEMP, 1, "unable to rewind the message (#4.3.0)", (char *)0) ; goto end ; }

  /* "./Maildir/" -> "./Maildir"; "/" stays "/" */
  {
    size_t n = ddlen ;
    while (n > 1 && dd[n-1] == '/') n-- ;
    if (!stralloc_catb(&dir, dd, n) || !stralloc_0(&dir)) dienomem() ;
  }

  if (!maildir_deliver(dir.s, prefix.s, prefix.len, msgfd, &name))
  {
    int e = errno ;
    struct stat st ;
    if (e == EDQUOT) code = fail(why, EX_TEMP, 0, "mailbox ", dd, " in ", homedir, " is over quota (#4.2.2)", (char *)0) ;
    else if (e == ENOSPC) code = fail(why, EX_TEMP, 0, "no space left on the device holding ", homedir, "/", dd, " (#4.3.1)", (char *)0) ;
    else if (e == ENOENT && stat(dir.s, &st) < 0 && errno == ENOENT)
      code = fail(why, EX_TEMP, 0, "maildir ", dd, " does not exist in ", homedir, " (#4.2.1)", (char *)0) ;
    else
    {
      errno = e ;
      code = fail(why, EX_TEMP, 1, "unable to deliver to maildir ", dd, " in ", homedir, " (#4.2.1)", (char *)0) ;
    }
    goto end ;
  }
  if (!stralloc_0(&name)) dienomem() ;
  prefix.s[dtstart + dtlen] = 0 ;  /* the Delivered-To value, for the log */
  ylog("delivered", "to", prefix.s + dtstart + 14, "file", name.s, (char *)0) ;
 end:
  stralloc_free(&name) ;
  stralloc_free(&dir) ;
  stralloc_free(&prefix) ;
  return code ;
}
