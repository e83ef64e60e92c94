/* The Maildir delivery of yubin-local, as a function: yubin-local's main,
 * and yubin-lspawn's forked child (already the recipient) call it, so that
 * a delivery costs a fork but no exec.  See local/yubin-local.8.
 *
 * yubin-local [-nN] user homedir local dash ext domain sender defaultdelivery
 *
 * qmail-local's command line.  The message is on fd 0, which must be
 * seekable; it is read from fd 0's offset at start-up to EOF (yubin-lspawn
 * passes the queue file positioned after its header, qmail-lspawn passes
 * offset 0). */

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <skalibs/sgetopt.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/bytestr.h>
#include <skalibs/buffer.h>
#include <skalibs/allreadwrite.h>

#include "exitcodes.h"
#include "maildir.h"
#include "ylog.h"

#include "deliver.h"

#define USAGE "yubin-local [ -nN ] user homedir local dash ext domain sender defaultdelivery"
#define dieusage() strerr_dieusage(EX_PERM, USAGE)
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
 * empty line.  Returns 1 yes, 0 no; dies on read error. */
static int header_has_line (char const *dt, size_t dtlen)
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
    ssize_t r = read(0, buf, sizeof(buf)) ;
    if (r < 0)
    {
      if (errno == EINTR) continue ;
      strerr_diefusys(EX_TEMP, "read message (#4.3.0)") ;
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

int localdeliver_main (int argc, char const *const *argv)
{
  int flagdoit = 1 ;
  {
    subgetopt l = SUBGETOPT_ZERO ;
    for (;;)
    {
      int opt = subgetopt_r(argc, argv, "nN", &l) ;
      if (opt == -1) break ;
      switch (opt)
      {
        case 'n' : flagdoit = 0 ; break ;
        case 'N' : flagdoit = 1 ; break ;
        default : dieusage() ;
      }
    }
    argc -= l.ind ; argv += l.ind ;
  }
  if (argc != 8) dieusage() ;

  char const *user = argv[0] ;
  char const *homedir = argv[1] ;
  char const *local = argv[2] ;
  char const *domain = argv[5] ;
  char const *sender = argv[6] ;
  char const *dd = argv[7] ;
  if (!*user || homedir[0] != '/') dieusage() ;

  size_t ddlen = strlen(dd) ;
  int ismaildir = ddlen && dd[ddlen-1] == '/' && (dd[0] == '.' || dd[0] == '/') && !memchr(dd, '\n', ddlen) ;

  if (!flagdoit)
  {
    /* qmail-local -n: describe the delivery instead of doing it. */
    char const *kind = ismaildir ? "maildir " : dd[0] == '|' ? "program " : (dd[0] == '.' || dd[0] == '/') ? "mbox " : "forward " ;
    if (buffer_puts(buffer_1, kind) < 0
     || buffer_puts(buffer_1, dd) < 0
     || buffer_putflush(buffer_1, "\n", 1) < 0)
      strerr_diefusys(EX_TEMP, "write to stdout") ;
    return 0 ;
  }

  if (!ismaildir)
  {
    if (memchr(dd, '\n', ddlen)) strerr_dief(EX_PERM, "multi-line delivery instructions are not supported yet (#5.3.5)") ;
    if (dd[0] == '|') strerr_dief(EX_PERM, "program delivery is not supported yet (#5.3.5)") ;
    if (dd[0] == '.' || dd[0] == '/') strerr_dief(EX_PERM, "mbox delivery is not supported yet: ", dd, " (#5.3.5)") ;
    strerr_dief(EX_PERM, "forwarding is not supported yet: ", dd, " (#5.3.5)") ;
  }

  off_t start = lseek(0, 0, SEEK_CUR) ;
  if (start < 0) strerr_diefusys(EX_TEMP, "seek on the message: stdin must be a regular file (#4.3.0)") ;

  umask(077) ;
  if (chdir(homedir) < 0) strerr_diefusys(EX_TEMP, "switch to ", homedir, " (#4.3.0)") ;
  {
    struct stat st ;
    if (stat(".", &st) < 0) strerr_diefusys(EX_TEMP, "stat ", homedir, " (#4.3.0)") ;
    if (st.st_mode & S_IWOTH) strerr_dief(EX_TEMP, "home directory ", homedir, " is world-writable (#4.7.0)") ;
    if (st.st_mode & S_ISVTX) strerr_dief(EX_TEMP, "home directory ", homedir, " is sticky: user is editing delivery instructions (#4.2.1)") ;
  }

  stralloc prefix = STRALLOC_ZERO ;
  size_t dtstart, dtlen ;
  if (!stralloc_cats(&prefix, "Return-Path: <")
   || !cats_oneline(&prefix, sender)
   || !stralloc_cats(&prefix, ">\n")) dienomem() ;
  dtstart = prefix.len ;
  if (!stralloc_cats(&prefix, "Delivered-To: ")
   || !cats_oneline(&prefix, local)
   || !stralloc_catb(&prefix, "@", 1)
   || !cats_oneline(&prefix, domain)) dienomem() ;
  dtlen = prefix.len - dtstart ;
  if (!stralloc_catb(&prefix, "\n", 1)) dienomem() ;

  if (header_has_line(prefix.s + dtstart, dtlen))
    strerr_dief(EX_PERM, "message is looping: it already has my Delivered-To line (#5.4.6)") ;
  if (lseek(0, start, SEEK_SET) < 0) strerr_diefusys(EX_TEMP, "rewind the message (#4.3.0)") ;

  /* "./Maildir/" -> "./Maildir"; "/" stays "/" */
  stralloc dir = STRALLOC_ZERO ;
  {
    size_t n = ddlen ;
    while (n > 1 && dd[n-1] == '/') n-- ;
    if (!stralloc_catb(&dir, dd, n) || !stralloc_0(&dir)) dienomem() ;
  }

  stralloc name = STRALLOC_ZERO ;
  if (!maildir_deliver(dir.s, prefix.s, prefix.len, 0, &name))
  {
    int e = errno ;
    struct stat st ;
    if (e == EDQUOT) strerr_dief(EX_TEMP, "mailbox ", dd, " in ", homedir, " is over quota (#4.2.2)") ;
    if (e == ENOSPC) strerr_dief(EX_TEMP, "no space left on the device holding ", homedir, "/", dd, " (#4.3.1)") ;
    if (e == ENOENT && stat(dir.s, &st) < 0 && errno == ENOENT)
      strerr_dief(EX_TEMP, "maildir ", dd, " does not exist in ", homedir, " (#4.2.1)") ;
    errno = e ;
    strerr_diefusys(EX_TEMP, "deliver to maildir ", dd, " in ", homedir, " (#4.2.1)") ;
  }
  if (!stralloc_0(&name)) dienomem() ;
  prefix.s[dtstart + dtlen] = 0 ;  /* the Delivered-To value, for the log */
  ylog("delivered", "to", prefix.s + dtstart + 14, "file", name.s, (char *)0) ;
  stralloc_free(&name) ;
  stralloc_free(&dir) ;
  stralloc_free(&prefix) ;
  return 0 ;
}
