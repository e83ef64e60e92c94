/* The delivery of yubin-local: see deliver.h and yubin-local.8.
 * qmail-local's procedure: check the home directory and the
 * Delivered-To: loop, find the .qmail file for the address, then follow
 * its lines in order: Maildir (common/maildir.c), mbox, program; forwards
 * are collected and queued last, in one message through the qmail-queue
 * client (common/qq.c), only if everything else succeeded.
 *
 * This file holds the run: local_run and local_deliver, the checks, the
 * header prefix, NEWSENDER, the instruction loop and Maildir lines.  The
 * other modules (local/local.h): reason.c, dotqmail.c, mbox.c,
 * program.c, forward.c. */

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <skalibs/bytestr.h>
#include <skalibs/djbunix.h>
#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/types.h>

#include "exitcodes.h"
#include "maildir.h"
#include "ylog.h"

#include "local/deliver.h"
#include "local/local.h"
#include "qmgr/queue.h"

/* Append s to sa with '\n' and '\r' replaced by '_' (qmail-local replaces
 * '\n'), so that an argument can never end a header line early. */
static void cats_oneline (stralloc *sa, char const *s)
{
  size_t base = sa->len ;
  if (!stralloc_cats(sa, s)) local_dienomem() ;
  for (size_t i = base ; i < sa->len ; i++)
    if (sa->s[i] == '\n' || sa->s[i] == '\r') sa->s[i] = '_' ;
}

/* Does the header of the message on fd (from the current offset) hold a
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
  if (!stralloc_ready(&lsa, cap)) local_dienomem() ;
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

int local_delivery_ok (struct delivery const *d)
{
  return *d->user && d->home[0] == '/' ;
}

static int do_maildir (struct run *r, char const *dd, size_t ddlen, stralloc *why)
{
  stralloc dir = STRALLOC_ZERO ;
  stralloc name = STRALLOC_ZERO ;
  char const *homedir = r->d->home ;
  int code = 0 ;
  /* "./Maildir/" -> "./Maildir"; "/" stays "/" */
  {
    size_t n = ddlen ;
    while (n > 1 && dd[n-1] == '/') n-- ;
    if (!stralloc_catb(&dir, dd, n) || !stralloc_0(&dir)) local_dienomem() ;
  }
  if (lseek(r->msgfd, r->start, SEEK_SET) < 0)
    code = local_fail(why, EX_TEMP, 1, "unable to rewind the message (#4.3.0)", (char *)0) ;
  else if (!maildir_deliver_opt(dir.s, r->prefix.s + r->rpstart, r->prefix.len - r->rpstart, r->msgfd, &name, r->d->maildir))
  {
    int e = errno ;
    struct stat st ;
    if (e == EDQUOT) code = local_fail(why, EX_TEMP, 0, "mailbox ", dd, " in ", homedir, " is over quota (#4.2.2)", (char *)0) ;
    else if (e == ENOSPC) code = local_fail(why, EX_TEMP, 0, "no space left on the device holding ", homedir, "/", dd, " (#4.3.1)", (char *)0) ;
    else if (e == ENOENT && stat(dir.s, &st) < 0 && errno == ENOENT)
      code = local_fail(why, EX_TEMP, 0, "maildir ", dd, " does not exist in ", homedir, " (#4.2.1)", (char *)0) ;
    else
    {
      errno = e ;
      code = local_fail(why, EX_TEMP, 1, "unable to deliver to maildir ", dd, " in ", homedir, " (#4.2.1)", (char *)0) ;
    }
  }
  else
  {
    if (!stralloc_0(&name)) local_dienomem() ;
    /* earlier=1: the copy of an attempt cut short by a crash was there */
    ylog("delivered", "to", r->recip.s, "file", name.s,
         r->d->maildir && r->d->maildir->found ? "earlier" : (char *)0, "1", (char *)0) ;
  }
  /* the next Maildir line of this .qmail gets the next name */
  if (r->d->maildir) r->d->maildir->line++ ;
  stralloc_free(&name) ;
  stralloc_free(&dir) ;
  return code ;
}

static void describe_line (stralloc *describe, char const *kind, char const *s)
{
  if (!stralloc_cats(describe, kind) || !stralloc_cats(describe, s) || !stralloc_catb(describe, "\n", 1)) local_dienomem() ;
}

int local_run (struct delivery const *d, int msgfd, stralloc *describe, struct local_report *rep, stralloc *why)
{
  char const *homedir = d->home ;
  int doit = !describe ;
  int code = 0 ;
  struct run r = { .d = d, .msgfd = msgfd, .start = 0, .progfd = -1, .recip = STRALLOC_ZERO, .prefix = STRALLOC_ZERO,
                   .rpstart = 0, .dtstart = 0, .mods = STRALLOC_ZERO, .env = GENALLOC_ZERO, .timeout = 0 } ;
  stralloc safeext = STRALLOC_ZERO ;
  stralloc qmname = STRALLOC_ZERO ;
  stralloc cmds = STRALLOC_ZERO ;
  stralloc newsender = STRALLOC_ZERO ;
  genalloc recips = GENALLOC_ZERO ;   /* size_t: offsets of forward addresses in cmds */
  int xbit = 0 ;
  long defaultpos ;

  {
    /* as qmail-local: a write to a dead reader is an error, not a death */
    struct sigaction sa = { .sa_handler = SIG_IGN } ;
    if (sigaction(SIGPIPE, &sa, 0) < 0) return local_fail(why, EX_TEMP, 1, "unable to ignore SIGPIPE (#4.3.0)", (char *)0) ;
  }
  if (doit)
  {
    r.start = lseek(msgfd, 0, SEEK_CUR) ;
    if (r.start < 0) return local_fail(why, EX_TEMP, 1, "unable to seek on the message: stdin must be a regular file (#4.3.0)", (char *)0) ;
  }

  umask(077) ;
  if (chdir(homedir) < 0) return local_fail(why, EX_TEMP, 1, "unable to switch to ", homedir, " (#4.3.0)", (char *)0) ;
  {
    struct stat st ;
    if (stat(".", &st) < 0) return local_fail(why, EX_TEMP, 1, "unable to stat ", homedir, " (#4.3.0)", (char *)0) ;
    if (st.st_mode & S_IWOTH) return local_fail(why, EX_TEMP, 0, "home directory ", homedir, " is world-writable (#4.7.0)", (char *)0) ;
    if (st.st_mode & S_ISVTX)
    {
      if (doit) return local_fail(why, EX_TEMP, 0, "home directory ", homedir, " is sticky: user is editing delivery instructions (#4.2.1)", (char *)0) ;
      strerr_warnw3x("home directory ", homedir, " is sticky") ;
    }
  }

  if (!stralloc_cats(&r.recip, d->local) || !stralloc_catb(&r.recip, "@", 1)
   || !stralloc_cats(&r.recip, d->domain) || !stralloc_0(&r.recip)) local_dienomem() ;
  ufline_make(&r.prefix, d->sender) ;
  r.rpstart = r.prefix.len ;
  if (!stralloc_cats(&r.prefix, "Return-Path: <")) local_dienomem() ;
  cats_oneline(&r.prefix, d->sender) ;
  if (!stralloc_cats(&r.prefix, ">\n")) local_dienomem() ;
  r.dtstart = r.prefix.len ;
  if (!stralloc_cats(&r.prefix, "Delivered-To: ")) local_dienomem() ;
  cats_oneline(&r.prefix, r.recip.s) ;
  if (!stralloc_catb(&r.prefix, "\n", 1)) local_dienomem() ;

  if (doit)
  {
    int h = header_has_line(msgfd, r.prefix.s + r.dtstart, r.prefix.len - r.dtstart - 1) ;
    if (h < 0) { code = local_fail(why, EX_TEMP, 1, "unable to read message (#4.3.0)", (char *)0) ; goto end ; }
    if (h) { code = local_fail(why, EX_PERM, 0, "message is looping: it already has my Delivered-To line (#5.4.6)", (char *)0) ; goto end ; }
  }

  /* the programs' environment (qmail-command(8)) */
  program_env(&r) ;

  if (!dotqmail_safeext(&safeext, d->ext)) local_dienomem() ;
  {
    int f = dotqmail_find(d->dash, safeext.s, &qmname, &cmds, &xbit, &defaultpos, why) ;
    if (f == EX_TEMP) { code = f ; goto end ; }
    if (!f && *d->dash)
    {
      /* yubin's plus addressing: a home without any .qmail file gets its
         extensions delivered like the address itself */
      int h = home_has_dotqmail(why) ;
      if (h == EX_TEMP) { code = h ; goto end ; }
      if (h) { code = local_fail(why, EX_PERM, 0, "Sorry, no mailbox here by that name. (#5.1.1)", (char *)0) ; goto end ; }
    }
    if (f && defaultpos >= 0 && (size_t)defaultpos <= strlen(d->ext)) program_setenv(&r.mods, "DEFAULT", d->ext + defaultpos) ;
    else if (!stralloc_catb(&r.mods, "DEFAULT", 8)) local_dienomem() ;   /* unset */
  }

  /* NEWSENDER: the sender of forwards (dot-qmail(5): -owner, VERP) */
  if (!stralloc_copys(&newsender, d->sender)) local_dienomem() ;
  if (*d->sender && strcmp(d->sender, "#@[]"))
  {
    int o = dotqmail_exists(d->dash, safeext.s, "-owner", why) ;
    if (o == 1) o = dotqmail_exists(d->dash, safeext.s, "-owner-default", why) + 1 ;
    if (o == EX_TEMP || o == EX_TEMP + 1) { code = EX_TEMP ; goto end ; }
    if (o)
    {
      if (!stralloc_copys(&newsender, d->local)
       || !stralloc_cats(&newsender, o == 2 ? "-owner-@" : "-owner@")
       || !stralloc_cats(&newsender, d->domain)
       || (o == 2 && !stralloc_cats(&newsender, "-@[]"))) local_dienomem() ;
    }
  }
  if (!stralloc_0(&newsender)) local_dienomem() ;
  program_setenv(&r.mods, "NEWSENDER", newsender.s) ;

  if (!cmds.len)
  {
    if (!stralloc_copys(&cmds, d->defaultdelivery)) local_dienomem() ;
    xbit = 0 ;
    if (!stralloc_copys(&qmname, "defaultdelivery") || !stralloc_0(&qmname)) local_dienomem() ;
  }
  if (!cmds.len || cmds.s[cmds.len - 1] != '\n')
    if (!stralloc_catb(&cmds, "\n", 1)) local_dienomem() ;

  {
    size_t i = 0 ;
    unsigned long lineno = 0 ;
    int stop = 0 ;
    for (size_t j = 0 ; j < cmds.len && !stop ; j++)
    {
      if (cmds.s[j] != '\n') continue ;
      size_t k = j ;
      char *line = cmds.s + i ;
      lineno++ ;
      cmds.s[j] = 0 ;
      while (k > i && (cmds.s[k-1] == ' ' || cmds.s[k-1] == '\t')) cmds.s[--k] = 0 ;
      i = j + 1 ;
      if (memchr(line, 0, cmds.s + k - line))
      {
        char nb[ULONG_FMT] ;
        nb[ulong_fmt(nb, lineno)] = 0 ;
        code = local_fail(why, EX_TEMP, 0, "Uh-oh: line ", nb, " of ", qmname.s, " holds a NUL byte (#4.7.0)", (char *)0) ;
        goto end ;
      }
      switch (line[0])
      {
        case 0 :
          if (lineno > 1) break ;
          code = local_fail(why, EX_TEMP, 0, "Uh-oh: first line of ", qmname.s, " is blank (#4.2.1)", (char *)0) ;
          goto end ;
        case '#' : break ;
        case '.' :
        case '/' :
          rep->files++ ;
          if (xbit) { code = local_fail(why, EX_TEMP, 0, "Uh-oh: ", qmname.s, " has file delivery but has x bit set (#4.7.0)", (char *)0) ; goto end ; }
          if (line[strlen(line) - 1] == '/')
          {
            if (!doit) describe_line(describe, "maildir ", line) ;
            else if ((code = do_maildir(&r, line, strlen(line), why))) goto end ;
          }
          else if (!doit) describe_line(describe, "mbox ", line) ;
          else if ((code = do_mbox(&r, line, why))) goto end ;
          break ;
        case '|' :
          rep->programs++ ;
          if (xbit) { code = local_fail(why, EX_TEMP, 0, "Uh-oh: ", qmname.s, " has prog delivery but has x bit set (#4.7.0)", (char *)0) ; goto end ; }
          if (!doit) describe_line(describe, "program ", line + 1) ;
          else if ((code = do_program(&r, line + 1, &stop, why))) goto end ;
          break ;
        case '+' :
          /* as qmail-local: "+list" makes the rest forward-only, other '+' lines are ignored */
          if (!strcmp(line + 1, "list")) xbit = 1 ;
          break ;
        case '&' :
          line++ ;
          /* fall through */
        default :
          rep->forwards++ ;
          if (!*line || !queue_addr_ok(line, strlen(line)))
          {
            size_t len = strlen(line) ;
            if (len > 100) memcpy(line + 97, "...", 4) ;   /* a reason, not a copy of the line */
            code = local_fail(why, EX_PERM, 0, "bad forward address in ", qmname.s, ": ", *line ? line : "(empty)", " (#5.1.3)", (char *)0) ;
            goto end ;
          }
          if (!doit) describe_line(describe, "forward ", line) ;
          else
          {
            size_t off = line - cmds.s ;
            if (!genalloc_append(size_t, &recips, &off)) local_dienomem() ;
          }
          break ;
      }
    }
  }
  if (doit && genalloc_len(size_t, &recips))
    code = do_forward(&r, newsender.s, cmds.s, &recips, &rep->qp, why) ;

 end:
  if (r.progfd >= 0 && r.progfd != msgfd) fd_close(r.progfd) ;
  genalloc_free(size_t, &recips) ;
  genalloc_free(char const *, &r.env) ;
  stralloc_free(&r.mods) ;
  stralloc_free(&r.prefix) ;
  stralloc_free(&r.recip) ;
  stralloc_free(&newsender) ;
  stralloc_free(&cmds) ;
  stralloc_free(&qmname) ;
  stralloc_free(&safeext) ;
  return code ;
}

int local_deliver (struct delivery const *d, int msgfd, stralloc *why)
{
  struct local_report rep = LOCAL_REPORT_ZERO ;
  return local_run(d, msgfd, 0, &rep, why) ;
}
