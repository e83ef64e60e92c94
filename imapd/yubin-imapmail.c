/* yubin-imapmail: the mail part of yubin's IMAP server (RFC 3501's
 * authenticated and selected states, with what RFC 9051 clients expect),
 * run by yubin-checkpassword as the user, in the user's home, on the
 * connection: reads fd 0, writes fd 1, logs on fd 2.  See
 * yubin-imapmail(8) and imapd/README.
 *
 * This file is the session: the connection I/O (responses gathered and
 * written when the input is drained, a deadline on every wait), the
 * command loop, dispatch, the mailbox updates and IDLE.  The commands
 * live in mailboxes.c, messages.c, fetch.c and searchmsg.c
 * (imapd/session.h). */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/djbunix.h>
#include <skalibs/iopause.h>
#include <skalibs/sig.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/tai.h>
#include <skalibs/types.h>

#include "control.h"
#include "exitcodes.h"
#include "loginsplit.h"
#include "ylog.h"
#include "imapd/capa.h"
#include "imapd/cmd.h"
#include "imapd/folder.h"
#include "imapd/index.h"
#include "imapd/session.h"

char const *PROG = "imapd" ;

#define USAGE "yubin-imapmail [ maildir ]"
#define TIMEOUT_DEFAULT 1800   /* RFC 3501 5.4: at least 30 minutes */
#define BADS_MAX 20            /* bad commands in a row */
#define APPEND_DEFAULT (10 << 20)
#define STREAMMIN 65536        /* APPEND literals this big go to the file as they come */
#define DEFAULTS_MARK "yubin-imap-folders"  /* in the Maildir: the special-use folders were made */

struct imapsession sess =
{
  .ip = 0, .user = 0, .maildir = "Maildir", .timeout = TIMEOUT_DEFAULT,
  .ix = INDEX_ZERO, .boxname = STRALLOC_ZERO, .boxdir = STRALLOC_ZERO,
  .updates = -1,
} ;
stralloc out = STRALLOC_ZERO ;

static struct imapcmd_reader reader = IMAPCMD_READER_ZERO ;
static struct imapcmd cmd = IMAPCMD_ZERO ;
static char inbuf[65536] ;
static size_t inpos, inlen ;
static unsigned int bads ;
static int said ;             /* something reached the client */
static uint64_t ncommands ;

/* ---------- ending ---------- */

static void logout_log (char const *reason)
{
  char f[UINT64_FMT], s[UINT64_FMT], a[UINT64_FMT], cp[UINT64_FMT], mv[UINT64_FMT], x[UINT64_FMT], bi[UINT64_FMT], bo[UINT64_FMT], nc[UINT64_FMT] ;
  f[uint64_fmt(f, sess.nfetch)] = 0 ;
  s[uint64_fmt(s, sess.nstore)] = 0 ;
  a[uint64_fmt(a, sess.nappend)] = 0 ;
  cp[uint64_fmt(cp, sess.ncopy)] = 0 ;
  mv[uint64_fmt(mv, sess.nmove)] = 0 ;
  x[uint64_fmt(x, sess.nexpunge)] = 0 ;
  bi[uint64_fmt(bi, sess.bytesin)] = 0 ;
  bo[uint64_fmt(bo, sess.bytesout)] = 0 ;
  nc[uint64_fmt(nc, ncommands)] = 0 ;
  ylog("logout", "ip", sess.ip, "user", sess.user, "reason", reason, "cmds", nc, "fetch", f, "store", s, "append", a, "copy", cp, "move", mv, "expunge", x, "in", bi, "out", bo, (char *)0) ;
}

void sess_end (char const *reason)
{
  logout_log(reason) ;
  append_abort() ;
  unselect() ;
  imapcmd_free(&cmd) ;
  imapcmd_reader_free(&reader) ;
  stralloc_free(&out) ;
  stralloc_free(&sess.boxname) ;
  stralloc_free(&sess.boxdir) ;
  exit(said ? 0 : EX_TEMP) ;
}

/* best effort: one non-blocking write of what is pending and msg */
static void lastwords (char const *msg, char const *reason) gccattr_noreturn ;
static void lastwords (char const *msg, char const *reason)
{
  if (stralloc_cats(&out, msg))
  {
    ssize_t r = fd_write(1, out.s, out.len) ;
    if (r > 0) { said = 1 ; sess.bytesout += r ; }
  }
  out.len = 0 ;
  sess_end(reason) ;
}

void die_nomem (void)
{
  ylog("error", "ip", sess.ip, "user", sess.user, "reason", "out-of-memory", (char *)0) ;
  lastwords("* BYE [SERVERBUG] Out of memory\r\n", "error") ;
}

/* ---------- output ---------- */

void out_cat (char const *s)
{
  if (!stralloc_cats(&out, s)) die_nomem() ;
}

void out_catb (char const *s, size_t len)
{
  if (!stralloc_catb(&out, s, len)) die_nomem() ;
}

void out_catu64 (uint64_t n)
{
  char fmt[UINT64_FMT] ;
  out_catb(fmt, uint64_fmt(fmt, n)) ;
}

void out_catstring (char const *s, size_t len)
{
  if (!imapcmd_catstring(&out, s, len, 0)) die_nomem() ;
}

/* Write everything out; wait (at most the timeout) only when the client
 * does not keep up. */
void out_flush (void)
{
  size_t w = 0 ;
  tain deadline ;
  int havedeadline = 0 ;
  while (w < out.len)
  {
    ssize_t r = fd_write(1, out.s + w, out.len - w) ;
    if (r > 0) { w += r ; sess.bytesout += r ; said = 1 ; continue ; }
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    {
      iopause_fd x = { .fd = 1, .events = IOPAUSE_WRITE, .revents = 0 } ;
      if (!havedeadline)
      {
        tain_now_g() ;
        tain_addsec_g(&deadline, sess.timeout) ;
        havedeadline = 1 ;
      }
      int p = iopause_g(&x, 1, &deadline) ;
      if (p < 0) { out.len = 0 ; sess_end("iopause-error") ; }
      if (!p) { out.len = 0 ; sess_end("write-timeout") ; }
      continue ;
    }
    out.len = 0 ;
    sess_end("write-error") ;
  }
  out.len = 0 ;
}

void out_maybeflush (void)
{
  if (out.len > OUTFLUSH) out_flush() ;
}

void tagged (char const *tag, char const *s)
{
  if (sess.updates >= 0 && (!strncmp(s, "OK", 2) || !strncmp(s, "NO", 2)))
  {
    int u = sess.updates ;
    sess.updates = -1 ;
    report_updates(u) ;
  }
  out_cat(*tag ? tag : "*") ;
  out_catb(" ", 1) ;
  out_cat(s) ;
  out_catb("\r\n", 2) ;
  out_maybeflush() ;
}

void tagged_bad (char const *tag, char const *s)
{
  out_cat(*tag ? tag : "*") ;
  out_cat(" BAD ") ;
  out_cat(s) ;
  out_catb("\r\n", 2) ;
  if (++bads >= BADS_MAX)
  {
    out_cat("* BYE Too many invalid commands\r\n") ;
    out_flush() ;
    sess_end("errors") ;
  }
  out_maybeflush() ;
}

void tagged_syserr (char const *tag, char const *what)
{
  int e = errno ;
  ylog("error", "ip", sess.ip, "user", sess.user, "op", what, "errno", strerror(e), (char *)0) ;
  out_cat(tag) ;
  out_cat(e == ETIMEDOUT ? " NO [INUSE] " : " NO [UNAVAILABLE] ") ;
  out_cat(what) ;
  out_cat(": ") ;
  out_cat(e == ETIMEDOUT ? "the mailbox is busy, try again" : strerror(e)) ;
  out_catb("\r\n", 2) ;
  out_maybeflush() ;
}

/* ---------- flags ---------- */

static struct { unsigned int imap ; uint32_t index ; char const *name ; } const sysflags[] =
{
  { IMAPFLAG_ANSWERED, INDEX_ANSWERED, "\\Answered" },
  { IMAPFLAG_FLAGGED, INDEX_FLAGGED, "\\Flagged" },
  { IMAPFLAG_DELETED, INDEX_DELETED, "\\Deleted" },
  { IMAPFLAG_SEEN, INDEX_SEEN, "\\Seen" },
  { IMAPFLAG_DRAFT, INDEX_DRAFT, "\\Draft" },
} ;
#define NSYSFLAGS (sizeof sysflags / sizeof sysflags[0])

uint32_t flags_to_index (unsigned int f)
{
  uint32_t r = 0 ;
  for (size_t k = 0 ; k < NSYSFLAGS ; k++) if (f & sysflags[k].imap) r |= sysflags[k].index ;
  return r ;
}

unsigned int flags_from_index (uint32_t f, uint8_t state)
{
  unsigned int r = 0 ;
  for (size_t k = 0 ; k < NSYSFLAGS ; k++) if (f & sysflags[k].index) r |= sysflags[k].imap ;
  if (state & INDEX_RECENT) r |= IMAPFLAG_RECENT ;
  return r ;
}

void cat_flags (stralloc *sa, size_t pos)
{
  struct index_msg const *m = index_msg(&sess.ix, pos) ;
  int first = 1 ;
  if (!stralloc_catb(sa, "(", 1)) die_nomem() ;
  for (size_t k = 0 ; k < NSYSFLAGS ; k++)
    if (m->flags & sysflags[k].index)
    {
      if ((!first && !stralloc_catb(sa, " ", 1)) || !stralloc_cats(sa, sysflags[k].name)) die_nomem() ;
      first = 0 ;
    }
  for (unsigned int k = 0 ; k < INDEX_KEYWORDS ; k++)
    if (m->keywords & ((uint32_t)1 << k) && sess.ix.keyword[k][0])
    {
      if ((!first && !stralloc_catb(sa, " ", 1)) || !stralloc_cats(sa, sess.ix.keyword[k])) die_nomem() ;
      first = 0 ;
    }
  if (m->state & INDEX_RECENT)
  {
    if ((!first && !stralloc_catb(sa, " ", 1)) || !stralloc_cats(sa, "\\Recent")) die_nomem() ;
  }
  if (!stralloc_catb(sa, ")", 1)) die_nomem() ;
}

/* ---------- arguments ---------- */

size_t arg_count (struct imapcmd const *c)
{
  size_t n = 0 ;
  for (size_t i = 0 ; i < c->nargs ; i = imapcmd_arg(c, i)->next) n++ ;
  return n ;
}

size_t arg_nth (struct imapcmd const *c, size_t k)
{
  size_t i = 0 ;
  while (k-- && i < c->nargs) i = imapcmd_arg(c, i)->next ;
  return i ;
}

int arg_mailbox (struct imapcmd const *c, size_t i, char const *tag, stralloc *name, stralloc *dir)
{
  char const *s, *why = 0 ;
  size_t len ;
  if (i >= c->nargs || !imapcmd_astring(c, i, 0, &s, &len)) { tagged_bad(tag, "Mailbox name expected") ; return 0 ; }
  name->len = 0 ;
  dir->len = 0 ;
  if (!folder_name_canon(s, len, name, &why) || !folder_path(sess.maildir, s, len, dir, &why))
  {
    if (errno == ENOMEM && !why) die_nomem() ;
    out_cat(tag) ;
    out_cat(" NO [CANNOT] ") ;
    out_cat(why ? why : "invalid mailbox name") ;
    out_catb("\r\n", 2) ;
    return 0 ;
  }
  return 1 ;
}

static uint32_t maxuid (void)
{
  mailindex const *ix = &sess.ix ;
  return ix->n ? index_msg(ix, ix->n - 1)->uid : 0 ;
}

int arg_messages (struct imapcmd const *c, size_t i, int uid, char const *tag, genalloc *pos)
{
  struct imapseq q = IMAPSEQ_ZERO ;
  struct imapcmd_arg const *a = imapcmd_arg(c, i) ;
  mailindex *ix = &sess.ix ;
  genalloc_setlen(uint32_t, pos, 0) ;
  if (!a || a->type != IMAPARG_ATOM) { tagged_bad(tag, "Sequence set expected") ; return 0 ; }
  int r = imapseq_parse(&q, a->s, a->len) ;
  if (r < 0) die_nomem() ;
  if (!r) { imapseq_free(&q) ; tagged_bad(tag, "Invalid sequence set") ; return 0 ; }
  if (q.dollar) { imapseq_free(&q) ; tagged_bad(tag, "$ is not supported (no SEARCHRES)") ; return 0 ; }
  if (uid)
  {
    uint32_t mx = maxuid() ;
    imapseq_resolve(&q, mx) ;
    for (size_t k = 0 ; k < ix->n ; k++)
      if (imapseq_contains(&q, index_msg(ix, k)->uid, mx))
        if (!genalloc_append(uint32_t, pos, &(uint32_t){ (uint32_t)k })) die_nomem() ;
  }
  else
  {
    uint32_t n = 0 ;
    /* a message number past the end is a client error (RFC 9051 6.4.4);
       a range with '*' is taken as far as it goes ("1:*" of an empty
       mailbox is nothing, as Dovecot does) */
    {
      struct imapseq_range const *rg = genalloc_s(struct imapseq_range, &q.ranges) ;
      size_t nr = genalloc_len(struct imapseq_range, &q.ranges) ;
      for (size_t k = 0 ; k < nr ; k++)
        if (rg[k].lo && rg[k].hi && (rg[k].lo > ix->n || rg[k].hi > ix->n))
        {
          imapseq_free(&q) ;
          tagged_bad(tag, ix->n ? "Invalid message number" : "No messages: invalid message number") ;
          return 0 ;
        }
    }
    imapseq_resolve(&q, ix->n) ;
    while (imapseq_next(&q, ix->n, &n))
      if (!genalloc_append(uint32_t, pos, &(uint32_t){ n - 1 })) die_nomem() ;
  }
  imapseq_free(&q) ;
  return 1 ;
}

/* ---------- mailbox updates ---------- */

void report_changes (void)
{
  mailindex *ix = &sess.ix ;
  if (!sess.selected) return ;
  if (ix->uidvalidity_changed)
  {
    ylog("error", "ip", sess.ip, "user", sess.user, "reason", "uidvalidity-changed", "mailbox", sess.boxname.s, (char *)0) ;
    out_cat("* BYE [UNAVAILABLE] The mailbox was rebuilt: select it again\r\n") ;
    out_flush() ;
    sess_end("uidvalidity") ;
  }
  {
    uint32_t const *e = genalloc_s(uint32_t, &ix->expunged) ;
    size_t ne = genalloc_len(uint32_t, &ix->expunged) ;
    for (size_t k = 0 ; k < ne ; k++)
    {
      out_cat("* ") ; out_catu64(e[k]) ; out_cat(" EXPUNGE\r\n") ;
      out_maybeflush() ;
    }
    genalloc_setlen(uint32_t, &ix->expunged, 0) ;
    genalloc_setlen(uint32_t, &ix->expunged_uids, 0) ;
  }
  if (ix->added)
  {
    out_cat("* ") ; out_catu64(ix->n) ; out_cat(" EXISTS\r\n") ;
    ix->added = 0 ;
  }
  if (ix->recent != sess.recent_reported)
  {
    out_cat("* ") ; out_catu64(ix->recent) ; out_cat(" RECENT\r\n") ;
    sess.recent_reported = ix->recent ;
  }
  {
    uint32_t const *ch = genalloc_s(uint32_t, &ix->changed) ;
    size_t nc = genalloc_len(uint32_t, &ix->changed) ;
    for (size_t k = 0 ; k < nc ; k++)
    {
      if (!ch[k] || ch[k] > ix->n) continue ;
      out_cat("* ") ; out_catu64(ch[k]) ; out_cat(" FETCH (UID ") ;
      out_catu64(index_msg(ix, ch[k] - 1)->uid) ;
      out_cat(" FLAGS ") ;
      cat_flags(&out, ch[k] - 1) ;
      out_cat(")\r\n") ;
      out_maybeflush() ;
    }
    genalloc_setlen(uint32_t, &ix->changed, 0) ;
  }
}

void report_updates (int allowexpunge)
{
  if (!sess.selected) return ;
  if (!index_sync(&sess.ix, allowexpunge))
  {
    ylog("error", "ip", sess.ip, "user", sess.user, "op", "index-sync", "mailbox", sess.boxname.s, "errno", strerror(errno), (char *)0) ;
    return ;
  }
  report_changes() ;
}

/* ---------- input ---------- */

/* Waits (until the deadline) for input on fd 0, and for events on extra
 * if it is not -1.  Returns 1 if fd 0 has input (read into inbuf), 2 if
 * extra is readable, 0 at the deadline. */
static int wait_input (int extra, tain const *deadline)
{
  for (;;)
  {
    iopause_fd x[2] = { { .fd = 0, .events = IOPAUSE_READ, .revents = 0 }, { .fd = extra, .events = IOPAUSE_READ, .revents = 0 } } ;
    ssize_t r = fd_read(0, inbuf, sizeof inbuf) ;
    if (r > 0) { inpos = 0 ; inlen = r ; sess.bytesin += r ; return 1 ; }
    if (!r) sess_end("eof") ;
    if (errno != EAGAIN && errno != EWOULDBLOCK) sess_end("read-error") ;
    tain_now_g() ;
    int p = iopause_g(x, extra >= 0 ? 2 : 1, deadline) ;
    if (p < 0) sess_end("iopause-error") ;
    if (!p) return 0 ;
    if (extra >= 0 && x[1].revents & IOPAUSE_READ) return 2 ;
  }
}

static void fill (void)
{
  tain deadline ;
  out_flush() ;
  tain_now_g() ;
  tain_addsec_g(&deadline, sess.timeout) ;
  if (!wait_input(-1, &deadline)) lastwords("* BYE Autologout: idle for too long\r\n", "timeout") ;
}

/* ---------- small commands ---------- */

static void cmd_capability (char const *tag)
{
  out_cat("* CAPABILITY " IMAP_CAPA "\r\n") ;
  tagged(tag, "OK CAPABILITY completed") ;
}

static void cmd_id (struct imapcmd const *c)
{
  out_cat("* ID (\"name\" \"yubin\")\r\n") ;
  tagged(c->tag, "OK ID completed") ;
}

/* ENABLE (RFC 5161): nothing we know is enabled by it */
static void cmd_enable (struct imapcmd const *c)
{
  if (!c->nargs) { tagged_bad(c->tag, "Syntax: ENABLE capability...") ; return ; }
  out_cat("* ENABLED\r\n") ;
  tagged(c->tag, "OK ENABLE completed") ;
}

static void cmd_namespace (struct imapcmd const *c)
{
  out_cat("* NAMESPACE ((\"\" \".\")) NIL NIL\r\n") ;
  tagged(c->tag, "OK NAMESPACE completed") ;
}

/* IDLE (RFC 2177): inotify on new/ and cur/ of the selected mailbox;
 * DONE ends it; the autologout deadline keeps running. */
static void cmd_idle (struct imapcmd const *c)
{
  char line[64] ;
  size_t linelen = 0 ;
  int ifd = -1 ;
  tain deadline ;
  sess.nidle++ ;
  if (sess.selected)
  {
    ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC) ;
    if (ifd >= 0)
    {
      stralloc p = STRALLOC_ZERO ;
      uint32_t mask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB ;
      char const *sub[2] = { "/new", "/cur" } ;
      int watched = 0 ;
      for (int k = 0 ; k < 2 ; k++)
      {
        p.len = 0 ;
        if (!stralloc_cats(&p, sess.boxdir.s) || !stralloc_cats(&p, sub[k]) || !stralloc_0(&p)) die_nomem() ;
        if (inotify_add_watch(ifd, p.s, mask) < 0)
          ylog("error", "ip", sess.ip, "user", sess.user, "op", "inotify", "dir", p.s, "errno", strerror(errno), (char *)0) ;
        else watched++ ;
      }
      stralloc_free(&p) ;
      /* nothing to watch: look every few seconds instead */
      if (watched < 2) { fd_close(ifd) ; ifd = -1 ; }
    }
    else ylog("error", "ip", sess.ip, "user", sess.user, "op", "inotify", "errno", strerror(errno), (char *)0) ;
    report_updates(1) ;
  }
  out_cat("+ idling\r\n") ;
  out_flush() ;
  tain_now_g() ;
  tain_addsec_g(&deadline, sess.timeout) ;
  for (;;)
  {
    if (inpos < inlen)
    {
      char const *s = inbuf + inpos ;
      char const *nl = memchr(s, '\n', inlen - inpos) ;
      size_t n = nl ? (size_t)(nl - s) : inlen - inpos ;
      for (size_t k = 0 ; k < n ; k++) if (linelen < sizeof line) line[linelen++] = s[k] ;
      inpos += n ;
      if (!nl) continue ;
      inpos++ ;
      if (linelen && line[linelen - 1] == '\r') linelen-- ;
      break ;
    }
    tain t = deadline ;
    if (sess.selected && ifd < 0)
    {
      /* no inotify: look every few seconds */
      tain_now_g() ;
      tain_addsec_g(&t, 5) ;
      if (tain_less(&deadline, &t)) t = deadline ;
    }
    int r = wait_input(ifd, &t) ;
    if (r == 2 || (!r && sess.selected && ifd < 0 && tain_less(&t, &deadline)))
    {
      if (r == 2)
      {
        char evbuf[4096] ;
        while (fd_read(ifd, evbuf, sizeof evbuf) > 0) ;
      }
      report_updates(1) ;
      out_flush() ;
      continue ;
    }
    if (!r)
    {
      if (ifd >= 0) fd_close(ifd) ;
      lastwords("* BYE Autologout: idle for too long\r\n", "timeout") ;
    }
  }
  if (ifd >= 0) fd_close(ifd) ;
  if (linelen == 4 && !strncasecmp(line, "DONE", 4))
  {
    report_updates(1) ;
    tagged(c->tag, "OK IDLE terminated") ;
  }
  else tagged_bad(c->tag, "Expected DONE to end IDLE") ;
}

/* ---------- dispatch ---------- */

#define S_AUTH 1      /* valid in the authenticated state */
#define S_SEL 2       /* needs a selected mailbox */

enum cmdid
{
  C_CAPABILITY, C_NOOP, C_LOGOUT, C_ENABLE, C_ID, C_NAMESPACE, C_LIST, C_LSUB,
  C_CREATE, C_DELETE, C_RENAME, C_SUBSCRIBE, C_UNSUBSCRIBE, C_STATUS,
  C_SELECT, C_EXAMINE, C_APPEND, C_IDLE, C_CHECK, C_CLOSE, C_UNSELECT,
  C_EXPUNGE, C_UIDEXPUNGE, C_FETCH, C_STORE, C_COPY, C_MOVE, C_SEARCH,
  C_PRELOGIN,
} ;

struct command
{
  char const *name ;
  unsigned int id ;
  unsigned int state ;
  int args ;          /* 0: takes none, 1: takes some */
} ;

static struct command const commands[] =
{
  { "CAPABILITY", C_CAPABILITY, S_AUTH, 0 },
  { "NOOP", C_NOOP, S_AUTH, 0 },
  { "LOGOUT", C_LOGOUT, S_AUTH, 0 },
  { "ENABLE", C_ENABLE, S_AUTH, 1 },
  { "ID", C_ID, S_AUTH, 1 },
  { "NAMESPACE", C_NAMESPACE, S_AUTH, 0 },
  { "LIST", C_LIST, S_AUTH, 1 },
  { "LSUB", C_LSUB, S_AUTH, 1 },
  { "CREATE", C_CREATE, S_AUTH, 1 },
  { "DELETE", C_DELETE, S_AUTH, 1 },
  { "RENAME", C_RENAME, S_AUTH, 1 },
  { "SUBSCRIBE", C_SUBSCRIBE, S_AUTH, 1 },
  { "UNSUBSCRIBE", C_UNSUBSCRIBE, S_AUTH, 1 },
  { "STATUS", C_STATUS, S_AUTH, 1 },
  { "SELECT", C_SELECT, S_AUTH, 1 },
  { "EXAMINE", C_EXAMINE, S_AUTH, 1 },
  { "APPEND", C_APPEND, S_AUTH, 1 },
  { "IDLE", C_IDLE, S_AUTH, 0 },
  { "CHECK", C_CHECK, S_SEL, 0 },
  { "CLOSE", C_CLOSE, S_SEL, 0 },
  { "UNSELECT", C_UNSELECT, S_SEL, 0 },
  { "EXPUNGE", C_EXPUNGE, S_SEL, 0 },
  { "UID EXPUNGE", C_UIDEXPUNGE, S_SEL, 1 },
  { "FETCH", C_FETCH, S_SEL, 1 },
  { "UID FETCH", C_FETCH, S_SEL, 1 },
  { "STORE", C_STORE, S_SEL, 1 },
  { "UID STORE", C_STORE, S_SEL, 1 },
  { "COPY", C_COPY, S_SEL, 1 },
  { "UID COPY", C_COPY, S_SEL, 1 },
  { "MOVE", C_MOVE, S_SEL, 1 },
  { "UID MOVE", C_MOVE, S_SEL, 1 },
  { "SEARCH", C_SEARCH, S_SEL, 1 },
  { "UID SEARCH", C_SEARCH, S_SEL, 1 },
  { "LOGIN", C_PRELOGIN, S_AUTH, 1 },
  { "AUTHENTICATE", C_PRELOGIN, S_AUTH, 1 },
  { "STARTTLS", C_PRELOGIN, S_AUTH, 1 },
} ;

static void run_command (struct imapcmd const *c)
{
  struct command const *k = 0 ;
  unsigned int before = bads ;
  for (size_t j = 0 ; j < sizeof commands / sizeof commands[0] ; j++)
    if (!strcmp(c->name, commands[j].name)) { k = &commands[j] ; break ; }
  ncommands++ ;
  if (!k) { tagged_bad(c->tag, "Unknown command") ; return ; }
  if (k->state == S_SEL && !sess.selected) { tagged_bad(c->tag, "No mailbox selected") ; return ; }
  if (!k->args && c->nargs) { tagged_bad(c->tag, "Unexpected arguments") ; return ; }
  /* mailbox changes are told before the tagged answer; no EXPUNGE
     during FETCH, STORE and SEARCH (RFC 3501 7.4.1) */
  sess.updates = (k->id == C_FETCH || k->id == C_STORE || k->id == C_SEARCH) && !c->uid ? 0 : 1 ;
  switch (k->id)
  {
    case C_CAPABILITY : cmd_capability(c->tag) ; break ;
    case C_NOOP :
    case C_CHECK :
      tagged(c->tag, k->id == C_NOOP ? "OK NOOP completed" : "OK CHECK completed") ;
      break ;
    case C_LOGOUT :
      out_cat("* BYE Logging out\r\n") ;
      tagged(c->tag, "OK LOGOUT completed") ;
      out_flush() ;
      sess_end("logout") ;
    case C_ENABLE : cmd_enable(c) ; break ;
    case C_ID : cmd_id(c) ; break ;
    case C_NAMESPACE : cmd_namespace(c) ; break ;
    case C_LIST : cmd_list(c, 0) ; break ;
    case C_LSUB : cmd_list(c, 1) ; break ;
    case C_CREATE : cmd_create(c) ; break ;
    case C_DELETE : cmd_delete(c) ; break ;
    case C_RENAME : cmd_rename(c) ; break ;
    case C_SUBSCRIBE : cmd_subscribe(c, 1) ; break ;
    case C_UNSUBSCRIBE : cmd_subscribe(c, 0) ; break ;
    case C_STATUS : cmd_status(c) ; break ;
    case C_SELECT : cmd_select(c, 0) ; break ;
    case C_EXAMINE : cmd_select(c, 1) ; break ;
    case C_APPEND : cmd_append(c) ; break ;
    case C_IDLE : cmd_idle(c) ; break ;
    case C_CLOSE : cmd_close(c, 1) ; break ;
    case C_UNSELECT : cmd_close(c, 0) ; break ;
    case C_EXPUNGE :
    case C_UIDEXPUNGE : cmd_expunge(c) ; break ;
    case C_FETCH : cmd_fetch(c) ; break ;
    case C_STORE : cmd_store(c) ; break ;
    case C_COPY : cmd_copy(c, 0) ; break ;
    case C_MOVE : cmd_copy(c, 1) ; break ;
    case C_SEARCH : cmd_search(c) ; break ;
    case C_PRELOGIN : tagged_bad(c->tag, "Already logged in") ; break ;
  }
  sess.updates = -1 ;
  if (bads == before) bads = 0 ;
}

static void command_loop (void)
{
  for (;;)
  {
    size_t used ;
    int ev ;
    if (inpos >= inlen) fill() ;
    ev = imapcmd_feed(&reader, inbuf + inpos, inlen - inpos, &used) ;
    inpos += used ;
    switch (ev)
    {
      case IMAPCMD_MORE : break ;
      case IMAPCMD_CONTINUE :
        out_cat("+ Ready for literal data\r\n") ;
        out_flush() ;
        break ;
      case IMAPCMD_LITDATA : append_litdata(&reader) ; break ;
      case IMAPCMD_ETOOLONG : append_abort() ; tagged_bad(reader.tag, "Line too long") ; break ;
      case IMAPCMD_ELITERAL :
        append_abort() ;
        if (reader.litsync) { out_cat(*reader.tag ? reader.tag : "*") ; out_cat(" NO [TOOBIG] Literal too big\r\n") ; }
        else tagged_bad(reader.tag, "[TOOBIG] Literal too big") ;
        break ;
      case IMAPCMD_ETOOBIG : append_abort() ; tagged_bad(reader.tag, "[TOOBIG] Command too long") ; break ;
      case IMAPCMD_READY :
      {
        int p = imapcmd_parse(&reader, &cmd, 0) ;
        if (p < 0) die_nomem() ;
        if (!p) { append_abort() ; tagged_bad(cmd.tag, cmd.err) ; break ; }
        if (!*cmd.tag) { append_abort() ; tagged_bad("*", "Invalid tag") ; break ; }
        run_command(&cmd) ;
        append_abort() ;   /* a streamed literal that no APPEND took */
        break ;
      }
      default : die_nomem() ;
    }
  }
}

/* ---------- start ---------- */

static void make_maildir (char const *dir)
{
  stralloc p = STRALLOC_ZERO ;
  char const *sub[3] = { "/cur", "/new", "/tmp" } ;
  if (mkdir(dir, 0700) < 0 && errno != EEXIST) strerr_diefu2sys(EX_TEMP, "create ", dir) ;
  for (int k = 0 ; k < 3 ; k++)
  {
    p.len = 0 ;
    if (!stralloc_cats(&p, dir) || !stralloc_cats(&p, sub[k]) || !stralloc_0(&p)) strerr_diefu1sys(EX_TEMP, "allocate memory") ;
    if (mkdir(p.s, 0700) < 0 && errno != EEXIST) strerr_diefu2sys(EX_TEMP, "create ", p.s) ;
  }
  stralloc_free(&p) ;
}

/* The special-use folders, once: a mark in the Maildir says it is done,
 * so that a folder the user deletes stays deleted. */
static void first_login (void)
{
  stralloc p = STRALLOC_ZERO ;
  char const *why = 0 ;
  struct stat st ;
  if (!stralloc_cats(&p, sess.maildir) || !stralloc_cats(&p, "/" DEFAULTS_MARK) || !stralloc_0(&p)) strerr_diefu1sys(EX_TEMP, "allocate memory") ;
  if (stat(p.s, &st) < 0)
  {
    if (!folder_create_defaults(sess.maildir, &why))
      ylog("error", "ip", sess.ip, "user", sess.user, "op", "create-special-use", "why", why ? why : strerror(errno), (char *)0) ;
    else if (!openwritenclose_unsafe(p.s, "", 0))
      ylog("error", "ip", sess.ip, "user", sess.user, "op", "create", "file", p.s, "errno", strerror(errno), (char *)0) ;
  }
  stralloc_free(&p) ;
}

static int zone_minutes (void)
{
  time_t now = time(0) ;
  struct tm tm ;
  if (!localtime_r(&now, &tm)) return 0 ;
  return (int)(tm.tm_gmtoff / 60) ;
}

int main (int argc, char const *const *argv)
{
  char const *tag, *x ;
  if (argc > 2 || (argc == 2 && !argv[1][0])) strerr_dieusage(EX_PERM, USAGE) ;
  if (argc == 2) sess.maildir = argv[1] ;
  sess.ip = getenv("TCPREMOTEIP") ;
  sess.user = getenv("USER") ;
  if (sess.user && !sess.user[0]) sess.user = 0 ;
  tag = getenv("IMAPLOGINTAG") ;
  if (!tag || !*tag) strerr_dief1x(EX_TEMP, "$IMAPLOGINTAG is not set") ;
  x = getenv("IMAPTIMEOUT") ;
  if (x && (!uint0_scan(x, &sess.timeout) || !sess.timeout)) strerr_dief2x(EX_TEMP, "invalid $IMAPTIMEOUT: ", x) ;
  if (!sig_ignore(SIGPIPE)) strerr_diefu1sys(EX_TEMP, "ignore SIGPIPE") ;
  if (ndelay_on(0) < 0 || ndelay_on(1) < 0) strerr_diefu1sys(EX_TEMP, "set fds 0 and 1 non-blocking") ;
  tzset() ;
  sess.tzmin = zone_minutes() ;

  make_maildir(sess.maildir) ;
  first_login() ;

  imapcmd_reader_init(&reader) ;
  {
    unsigned long max = 0 ;
    if (control_readulong(&max, "databytes", 0) <= 0 || !max) max = APPEND_DEFAULT ;
    reader.appendmax = max ;
    reader.streammin = STREAMMIN ;
  }
  {
    char const *tls = getenv("SSL_PROTOCOL") ;
    ylog("login", "ip", sess.ip, "user", sess.user, "tls", tls && *tls ? tls : "no", (char *)0) ;
  }
  /* from here on the session is ours, whatever becomes of it */
  loginsplit_loggedin() ;
  out_cat(tag) ;
  out_cat(" OK [CAPABILITY " IMAP_CAPA "] Logged in\r\n") ;
  out_flush() ;
  command_loop() ;
  return 0 ;
}
