/* The private header of the delivery code (local_run, deliver.h): what
 * its modules share.  deliver.c runs the .qmail instructions and calls
 * the others: reason.c (the failure reason), dotqmail.c (finding and
 * reading the .qmail file), mbox.c (mbox lines), program.c (|program
 * lines and their environment), forward.c (forwards through the
 * qmail-queue client).  Outsiders include local/deliver.h only. */
#ifndef YUBIN_LOCAL_LOCAL_H
#define YUBIN_LOCAL_LOCAL_H

#include <sys/types.h>

#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>

#include "local/deliver.h"

/* The state of one run, shared by the instructions. */
struct run
{
  struct delivery const *d ;
  int msgfd ;
  off_t start ;            /* where the message starts on msgfd */
  int progfd ;             /* the programs' stdin, -1 until needed */
  stralloc recip ;         /* local@domain, NUL-terminated */
  stralloc prefix ;        /* From_ line, Return-Path:, Delivered-To: */
  size_t rpstart ;         /* where Return-Path: starts in prefix */
  size_t dtstart ;         /* where Delivered-To: starts in prefix */
  stralloc mods ;          /* the programs' environment modifications */
  genalloc env ;           /* char const *: their environment, built once */
  unsigned long timeout ;  /* 0 until read */
} ;

/* reason.c */

/* Die (111) with "out of memory (#4.3.0)". */
extern void local_dienomem (void) __attribute__((noreturn)) ;

/* why = the strings up to a null pointer; if sys, ": " and errno's text
 * go before the last string (the status code, e.g. " (#4.3.0)").
 * Newlines and NULs become '_'.  Returns code (100 or 111). */
extern int local_fail (stralloc *why, int code, int sys, ...) ;

/* dotqmail.c */

/* ext as .qmail file names hold it: lower case, '.' -> ':'. */
extern int dotqmail_safeext (stralloc *safe, char const *ext) ;

/* The .qmail file for dash and safeext, in qmail-local's order:
 * .qmail<dash><ext>, then for each '-' of ext from the last,
 * .qmail<dash><ext up to and with that '-'>default, then
 * .qmail<dash>default.  A file that is missing or not a regular file is
 * skipped.  Found: returns 1, the file's contents in contents (at most
 * DOTQMAIL_MAX bytes), its name in name (NUL-terminated), *xbit set if it
 * is executable by its owner, and *defaultpos = where DEFAULT starts in
 * ext (-1 if the name does not end with "default").  None: returns 0.
 * Error: 111 with the reason in why (a file writable by others, too
 * large, unreadable). */
extern int dotqmail_find (char const *dash, char const *safeext, stralloc *name, stralloc *contents, int *xbit, long *defaultpos, stralloc *why) ;

/* Does .qmail<dash><safeext><suffix> exist (any type)?  1 yes, 0 no,
 * 111 on a temporary error (reason in why). */
extern int dotqmail_exists (char const *dash, char const *safeext, char const *suffix, stralloc *why) ;

/* Does the current directory hold a file whose name starts with
 * ".qmail"?  1 yes, 0 no, 111 on error (reason in why). */
extern int home_has_dotqmail (stralloc *why) ;

/* mbox.c */

/* The UUCP From_ line of mbox files, as qmail-local writes it: the sender
 * (spaces, tabs and newlines as '-') or MAILER-DAEMON, and the time in
 * UTC as "Sun Sep 09 01:46:40 2001". */
extern void ufline_make (stralloc *sa, char const *sender) ;

/* An mbox line: r's prefix and message appended to the mbox file fn.
 * Returns 0, or 111 with the reason in why. */
extern int do_mbox (struct run *r, char const *fn, stralloc *why) ;

/* program.c */

/* "NAME=value\0" into the programs' environment modifications. */
extern void program_setenv (stralloc *mods, char const *name, char const *value) ;

/* The programs' environment (qmail-command(8)) from r's delivery, recip
 * and prefix: HOST, HOME, USER, LOCAL, RECIPIENT, UFLINE, RPLINE,
 * DTLINE, SENDER, EXT..EXT4, HOST2..HOST4, into r->mods. */
extern void program_env (struct run *r) ;

/* A |program line: cmd run with the message on its stdin and the
 * environment of r.  Returns 0 (with *stop = 1 for exit code 99), or 100
 * or 111 with the reason in why. */
extern int do_program (struct run *r, char const *cmd, int *stop, stralloc *why) ;

/* forward.c */

/* The forwards, in one message: Delivered-To: and the message, from
 * newsender to the addresses at the offsets recips (size_t) in cmds.
 * *qp = the queue program's pid.  Returns 0, or 100 or 111 with the
 * reason in why. */
extern int do_forward (struct run *r, char const *newsender, char const *cmds, genalloc *recips, unsigned long *qp, stralloc *why) ;

#endif
