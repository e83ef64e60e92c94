/* imapd/messages: the commands of yubin-imapmail that open, change and
 * fill mailboxes: SELECT, EXAMINE, CLOSE, UNSELECT, EXPUNGE, UID
 * EXPUNGE, STORE, COPY, MOVE, APPEND (streamed to the file for big
 * literals), over imapd/index.h.  See imapd/session.h. */

#include <errno.h>
#include <string.h>
#include <strings.h>

#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>
#include <skalibs/types.h>

#include "ylog.h"
#include "imapd/cmd.h"
#include "imapd/folder.h"
#include "imapd/index.h"
#include "imapd/session.h"

/* ---------- SELECT, EXAMINE, CLOSE, UNSELECT ---------- */

void unselect (void)
{
  if (!sess.selected) return ;
  index_close(&sess.ix) ;
  sess.ix = (mailindex)INDEX_ZERO ;
  sess.selected = 0 ;
  sess.readonly = 0 ;
  sess.recent_reported = 0 ;
  sess.boxname.len = 0 ;
  sess.boxdir.len = 0 ;
}

static void cat_keywords (mailindex const *ix)
{
  for (unsigned int k = 0 ; k < INDEX_KEYWORDS ; k++)
    if (ix->keyword[k][0]) { out_catb(" ", 1) ; out_cat(ix->keyword[k]) ; }
}

void cmd_select (struct imapcmd const *c, int readonly)
{
  stralloc name = STRALLOC_ZERO, dir = STRALLOC_ZERO ;
  mailindex *ix = &sess.ix ;
  sess.updates = -1 ;
  if (!arg_mailbox(c, 0, c->tag, &name, &dir)) goto end ;
  if (imapcmd_arg(c, 0)->next != c->nargs) { tagged_bad(c->tag, "Syntax: SELECT mailbox (no parameters are supported)") ; goto end ; }
  /* RFC 3501 6.3.1: a SELECT, even one that fails, closes the mailbox */
  unselect() ;
  if (!index_open(ix, dir.s, readonly))
  {
    int e = errno ;
    index_close(ix) ;
    *ix = (mailindex)INDEX_ZERO ;
    errno = e ;
    if (e == ENOENT || e == ENOTDIR) tagged(c->tag, "NO [NONEXISTENT] No such mailbox") ;
    else tagged_syserr(c->tag, readonly ? "EXAMINE" : "SELECT") ;
    goto end ;
  }
  sess.selected = 1 ;
  sess.readonly = readonly ;
  if (!stralloc_copyb(&sess.boxname, name.s, name.len + 1) || !stralloc_copyb(&sess.boxdir, dir.s, dir.len)) die_nomem() ;
  genalloc_setlen(uint32_t, &ix->expunged, 0) ;
  genalloc_setlen(uint32_t, &ix->expunged_uids, 0) ;
  genalloc_setlen(uint32_t, &ix->changed, 0) ;
  ix->added = 0 ;
  sess.recent_reported = ix->recent ;
  {
    size_t firstunseen = 0 ;
    int freeletter = 0 ;
    for (size_t k = 0 ; k < ix->n ; k++)
      if (!(index_msg(ix, k)->flags & INDEX_SEEN) && !(index_msg(ix, k)->state & INDEX_EXPUNGED)) { firstunseen = k + 1 ; break ; }
    for (unsigned int k = 0 ; k < INDEX_KEYWORDS ; k++) if (!ix->keyword[k][0]) freeletter = 1 ;
    out_cat("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft") ;
    cat_keywords(ix) ;
    out_cat(")\r\n") ;
    if (readonly) out_cat("* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n") ;
    else
    {
      out_cat("* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft") ;
      cat_keywords(ix) ;
      out_cat(freeletter ? " \\*)] Flags permitted\r\n" : ")] Flags permitted\r\n") ;
    }
    out_cat("* ") ; out_catu64(ix->n) ; out_cat(" EXISTS\r\n") ;
    out_cat("* ") ; out_catu64(ix->recent) ; out_cat(" RECENT\r\n") ;
    if (firstunseen) { out_cat("* OK [UNSEEN ") ; out_catu64(firstunseen) ; out_cat("] First unseen\r\n") ; }
    out_cat("* OK [UIDVALIDITY ") ; out_catu64(ix->uidvalidity) ; out_cat("] UIDs valid\r\n") ;
    out_cat("* OK [UIDNEXT ") ; out_catu64(ix->uidnext) ; out_cat("] Predicted next UID\r\n") ;
  }
  tagged(c->tag, readonly ? "OK [READ-ONLY] EXAMINE completed" : "OK [READ-WRITE] SELECT completed") ;
 end:
  stralloc_free(&name) ;
  stralloc_free(&dir) ;
}

/* CLOSE (expunge 1) and UNSELECT (RFC 3691) */
void cmd_close (struct imapcmd const *c, int expunge)
{
  sess.updates = -1 ;
  if (expunge && !sess.readonly)
  {
    if (!index_expunge(&sess.ix, 0, 0))
      ylog("error", "ip", sess.ip, "user", sess.user, "op", "expunge", "mailbox", sess.boxname.s, "errno", strerror(errno), (char *)0) ;
    else sess.nexpunge += genalloc_len(uint32_t, &sess.ix.expunged) ;
  }
  unselect() ;
  tagged(c->tag, expunge ? "OK CLOSE completed" : "OK UNSELECT completed") ;
}

/* ---------- EXPUNGE, UID EXPUNGE ---------- */

void cmd_expunge (struct imapcmd const *c)
{
  genalloc pos = GENALLOC_ZERO ;
  genalloc uids = GENALLOC_ZERO ;
  if (c->uid)
  {
    if (!c->nargs || imapcmd_arg(c, 0)->next != c->nargs) { tagged_bad(c->tag, "Syntax: UID EXPUNGE set") ; goto end ; }
    if (!arg_messages(c, 0, 1, c->tag, &pos)) goto end ;
  }
  if (sess.readonly) { tagged(c->tag, "NO [READ-ONLY] The mailbox is read-only") ; goto end ; }
  if (c->uid)
  {
    uint32_t const *p = genalloc_s(uint32_t, &pos) ;
    size_t n = genalloc_len(uint32_t, &pos) ;
    for (size_t k = 0 ; k < n ; k++)
      if (!genalloc_append(uint32_t, &uids, &index_msg(&sess.ix, p[k])->uid)) die_nomem() ;
    if (!n) { tagged(c->tag, "OK UID EXPUNGE completed") ; goto end ; }
  }
  if (!index_expunge(&sess.ix, c->uid ? genalloc_s(uint32_t, &uids) : 0, genalloc_len(uint32_t, &uids)))
  {
    tagged_syserr(c->tag, "expunge") ;
    goto end ;
  }
  sess.nexpunge += genalloc_len(uint32_t, &sess.ix.expunged) ;
  report_changes() ;
  tagged(c->tag, c->uid ? "OK UID EXPUNGE completed" : "OK EXPUNGE completed") ;
 end:
  genalloc_free(uint32_t, &pos) ;
  genalloc_free(uint32_t, &uids) ;
}

/* ---------- STORE ---------- */

/* the letters of keywords kw (struct imapcmd_str) in *bits; create them
 * if create.  Returns 1; 0 if no letter is left (ENOSPC). */
static int keyword_bits (genalloc const *kw, int create, uint32_t *bits)
{
  struct imapcmd_str const *k = genalloc_s(struct imapcmd_str, kw) ;
  size_t n = genalloc_len(struct imapcmd_str, kw) ;
  *bits = 0 ;
  for (size_t j = 0 ; j < n ; j++)
  {
    int l = index_keyword(&sess.ix, k[j].s, k[j].len, create) ;
    if (l < 0)
    {
      if (create) return 0 ;
      continue ;
    }
    *bits |= (uint32_t)1 << l ;
  }
  return 1 ;
}

void cmd_store (struct imapcmd const *c)
{
  genalloc pos = GENALLOC_ZERO, kw = GENALLOC_ZERO, live = GENALLOC_ZERO ;
  char const *item, *err ;
  size_t itemlen, i ;
  int mode, silent = 0 ;
  unsigned int flags = 0 ;
  uint32_t keywords ;
  if (arg_count(c) < 3) { tagged_bad(c->tag, "Syntax: STORE set [+|-]FLAGS[.SILENT] (flags)") ; goto end ; }
  if (!arg_messages(c, 0, c->uid, c->tag, &pos)) goto end ;
  i = arg_nth(c, 1) ;
  if (imapcmd_arg(c, i)->type != IMAPARG_ATOM) { tagged_bad(c->tag, "Expected FLAGS, +FLAGS or -FLAGS") ; goto end ; }
  item = imapcmd_arg(c, i)->s ;
  itemlen = imapcmd_arg(c, i)->len ;
  mode = INDEX_STORE_SET ;
  if (itemlen && item[0] == '+') { mode = INDEX_STORE_ADD ; item++ ; itemlen-- ; }
  else if (itemlen && item[0] == '-') { mode = INDEX_STORE_DEL ; item++ ; itemlen-- ; }
  if (itemlen == 12 && !strncasecmp(item, "FLAGS.SILENT", 12)) silent = 1 ;
  else if (itemlen != 5 || strncasecmp(item, "FLAGS", 5)) { tagged_bad(c->tag, "Expected FLAGS, +FLAGS or -FLAGS (no CONDSTORE)") ; goto end ; }
  {
    int r = imapcmd_flaglist(c, imapcmd_arg(c, i)->next, 1, &flags, &kw, &err) ;
    if (r < 0) die_nomem() ;
    if (!r) { tagged_bad(c->tag, err) ; goto end ; }
  }
  if (sess.readonly) { tagged(c->tag, "NO [READ-ONLY] The mailbox is read-only") ; goto end ; }
  if (!keyword_bits(&kw, mode != INDEX_STORE_DEL, &keywords))
  {
    if (errno == ENOSPC) tagged(c->tag, "NO [LIMIT] No room for more keywords in this mailbox") ;
    else tagged_syserr(c->tag, "store the keywords") ;
    goto end ;
  }
  {
    uint32_t const *p = genalloc_s(uint32_t, &pos) ;
    size_t n = genalloc_len(uint32_t, &pos) ;
    for (size_t k = 0 ; k < n ; k++)
      if (!(index_msg(&sess.ix, p[k])->state & INDEX_EXPUNGED))
        if (!genalloc_append(uint32_t, &live, &p[k])) die_nomem() ;
  }
  {
    uint32_t const *p = genalloc_s(uint32_t, &live) ;
    size_t n = genalloc_len(uint32_t, &live) ;
    if (n && !index_store(&sess.ix, p, n, mode, flags_to_index(flags), keywords, UINT64_MAX, 0))
    {
      tagged_syserr(c->tag, "store the flags") ;
      goto end ;
    }
    sess.nstore += n ;
    if (!silent)
      for (size_t k = 0 ; k < n ; k++)
      {
        if (index_msg(&sess.ix, p[k])->state & INDEX_EXPUNGED) continue ;
        out_cat("* ") ; out_catu64(p[k] + 1) ; out_cat(" FETCH (FLAGS ") ;
        cat_flags(&out, p[k]) ;
        if (c->uid) { out_cat(" UID ") ; out_catu64(index_msg(&sess.ix, p[k])->uid) ; }
        out_cat(")\r\n") ;
        out_maybeflush() ;
      }
  }
  if (genalloc_len(uint32_t, &live) < genalloc_len(uint32_t, &pos))
    tagged(c->tag, "NO [EXPUNGEISSUED] Some of the messages no longer exist") ;
  else tagged(c->tag, "OK STORE completed") ;
 end:
  genalloc_free(uint32_t, &pos) ;
  genalloc_free(uint32_t, &live) ;
  genalloc_free(struct imapcmd_str, &kw) ;
}

/* ---------- COPY, MOVE ---------- */

void cmd_copy (struct imapcmd const *c, int move)
{
  genalloc pos = GENALLOC_ZERO, live = GENALLOC_ZERO, uids = GENALLOC_ZERO ;
  genalloc su = GENALLOC_ZERO, du = GENALLOC_ZERO ;
  stralloc name = STRALLOC_ZERO, dir = STRALLOC_ZERO, resp = STRALLOC_ZERO ;
  mailindex other = INDEX_ZERO ;
  mailindex *dst = &other ;
  char const *what = move ? "MOVE" : "COPY" ;
  if (arg_count(c) != 2) { tagged_bad(c->tag, move ? "Syntax: MOVE set mailbox" : "Syntax: COPY set mailbox") ; goto end ; }
  if (!arg_messages(c, 0, c->uid, c->tag, &pos)) goto end ;
  if (!arg_mailbox(c, arg_nth(c, 1), c->tag, &name, &dir)) goto end ;
  if (move && sess.readonly) { tagged(c->tag, "NO [READ-ONLY] The mailbox is read-only") ; goto end ; }
  {
    uint32_t const *p = genalloc_s(uint32_t, &pos) ;
    size_t n = genalloc_len(uint32_t, &pos) ;
    for (size_t k = 0 ; k < n ; k++)
      if (!(index_msg(&sess.ix, p[k])->state & INDEX_EXPUNGED))
        if (!genalloc_append(uint32_t, &live, &p[k])) die_nomem() ;
  }
  if (!strcmp(name.s, sess.boxname.s)) dst = &sess.ix ;
  else if (!index_open(&other, dir.s, INDEX_PEEK))
  {
    if (errno == ENOENT || errno == ENOTDIR) tagged(c->tag, "NO [TRYCREATE] No such mailbox") ;
    else tagged_syserr(c->tag, "open the target mailbox") ;
    goto end ;
  }
  if (!genalloc_len(uint32_t, &live))
  {
    if (genalloc_len(uint32_t, &pos)) tagged(c->tag, "NO [EXPUNGEISSUED] The messages no longer exist") ;
    else tagged(c->tag, move ? "OK No messages to move" : "OK No messages to copy") ;
    goto end ;
  }
  if (!index_copy(&sess.ix, genalloc_s(uint32_t, &live), genalloc_len(uint32_t, &live), dst, &uids, move))
  {
    tagged_syserr(c->tag, what) ;
    goto end ;
  }
  {
    uint32_t const *p = genalloc_s(uint32_t, &live) ;
    uint32_t const *u = genalloc_s(uint32_t, &uids) ;
    size_t n = genalloc_len(uint32_t, &uids) ;
    for (size_t k = 0 ; k < n ; k++)
    {
      if (!u[k]) continue ;
      if (!genalloc_append(uint32_t, &su, &index_msg(&sess.ix, p[k])->uid) || !genalloc_append(uint32_t, &du, &u[k])) die_nomem() ;
    }
    if (move) sess.nmove += genalloc_len(uint32_t, &su) ;
    else sess.ncopy += genalloc_len(uint32_t, &su) ;
  }
  if (genalloc_len(uint32_t, &su))
  {
    char fmt[UINT32_FMT] ;
    if (!stralloc_cats(&resp, "[COPYUID ") || !stralloc_catb(&resp, fmt, uint32_fmt(fmt, dst->uidvalidity))
     || !stralloc_catb(&resp, " ", 1) || !imapseq_cat(&resp, genalloc_s(uint32_t, &su), genalloc_len(uint32_t, &su))
     || !stralloc_catb(&resp, " ", 1) || !imapseq_cat(&resp, genalloc_s(uint32_t, &du), genalloc_len(uint32_t, &du))
     || !stralloc_catb(&resp, "] ", 2)) die_nomem() ;
  }
  if (move)
  {
    /* RFC 6851 4.3: COPYUID in an untagged OK, then the EXPUNGEs */
    if (resp.len)
    {
      out_cat("* OK ") ; out_catb(resp.s, resp.len) ; out_cat("Moved\r\n") ;
    }
    sess.updates = 1 ;
    tagged(c->tag, genalloc_len(uint32_t, &su) < genalloc_len(uint32_t, &pos) ? "NO [EXPUNGEISSUED] Some of the messages no longer exist" : "OK MOVE completed") ;
  }
  else
  {
    if (!stralloc_cats(&resp, genalloc_len(uint32_t, &su) < genalloc_len(uint32_t, &pos) ? "Some of the messages no longer exist" : "COPY completed")
     || !stralloc_0(&resp)) die_nomem() ;
    out_cat(c->tag) ;
    out_cat(genalloc_len(uint32_t, &su) ? " " : " NO ") ;
    if (genalloc_len(uint32_t, &su))
    {
      /* the updates before the tagged answer */
      report_updates(1) ;
      sess.updates = -1 ;
      out_cat("OK ") ;
    }
    out_catb(resp.s, resp.len - 1) ;
    out_catb("\r\n", 2) ;
  }
 end:
  if (dst == &other) index_close(&other) ;
  genalloc_free(uint32_t, &pos) ;
  genalloc_free(uint32_t, &live) ;
  genalloc_free(uint32_t, &uids) ;
  genalloc_free(uint32_t, &su) ;
  genalloc_free(uint32_t, &du) ;
  stralloc_free(&name) ;
  stralloc_free(&dir) ;
  stralloc_free(&resp) ;
}

/* ---------- APPEND ---------- */

/* A streamed literal (LITDATA events before the command is complete)
 * goes into the target's tmp/ as it comes: the mailbox is read from the
 * start of the command (which the reader holds) at the first chunk. */
static struct
{
  int active ;       /* a streamed literal was received or is coming */
  int begun ;        /* ap holds a tmp file */
  int err ;          /* errno of a failure, 0 */
  char const *why ;  /* a folder_path refusal */
  uint64_t got ;
  struct index_append ap ;
  stralloc dir ;
} ast = { .active = 0, .begun = 0, .err = 0, .why = 0, .got = 0, .ap = INDEX_APPEND_ZERO, .dir = STRALLOC_ZERO } ;

void append_abort (void)
{
  if (ast.begun) index_append_abort(&ast.ap) ;
  ast.begun = 0 ;
  ast.active = 0 ;
  ast.err = 0 ;
  ast.why = 0 ;
  ast.got = 0 ;
  stralloc_free(&ast.dir) ;
}

/* The mailbox of "tag APPEND mailbox ..." from what the reader holds:
 * an atom, a quoted string or a literal.  1 or 0. */
static int peek_mailbox (struct imapcmd_reader const *r, stralloc *name)
{
  struct imapcmd_seg const *seg = genalloc_s(struct imapcmd_seg, &r->segs) ;
  size_t nseg = genalloc_len(struct imapcmd_seg, &r->segs) ;
  char const *line ;
  size_t len, p = 0 ;
  name->len = 0 ;
  if (!nseg || seg[0].kind != IMAPSEG_LINE) return 0 ;
  line = r->buf.s + seg[0].off ;
  len = seg[0].litmark ;
  for (int w = 0 ; w < 2 ; w++)     /* the tag, then APPEND */
  {
    while (p < len && line[p] != ' ') p++ ;
    while (p < len && line[p] == ' ') p++ ;
  }
  if (p >= len)
  {
    if (nseg < 2 || seg[1].kind != IMAPSEG_LITERAL) return 0 ;
    return stralloc_catb(name, r->buf.s + seg[1].off, seg[1].len) ;
  }
  if (line[p] == '"')
  {
    for (p++ ; p < len && line[p] != '"' ; p++)
    {
      if (line[p] == '\\' && p + 1 < len) p++ ;
      if (!stralloc_catb(name, line + p, 1)) return 0 ;
    }
    return p < len ;
  }
  {
    size_t q = p ;
    while (q < len && line[q] != ' ') q++ ;
    return stralloc_catb(name, line + p, q - p) ;
  }
}

void append_litdata (struct imapcmd_reader const *r)
{
  if (r->chunkfirst)
  {
    stralloc name = STRALLOC_ZERO ;
    append_abort() ;
    ast.active = 1 ;
    if (!peek_mailbox(r, &name)) { ast.err = EINVAL ; ast.why = "mailbox name expected" ; }
    else if (!folder_path(sess.maildir, name.s, name.len, &ast.dir, &ast.why)) ast.err = ast.why ? EINVAL : errno ;
    else if (!index_append_begin(&ast.ap, ast.dir.s)) { ast.err = errno ; index_append_abort(&ast.ap) ; }
    else ast.begun = 1 ;
    stralloc_free(&name) ;
  }
  if (!ast.active) return ;
  ast.got += r->chunklen ;
  if (!ast.begun) return ;
  if (!index_append_write(&ast.ap, r->chunk, r->chunklen))
  {
    ast.err = errno ;
    index_append_abort(&ast.ap) ;
    ast.begun = 0 ;
    return ;
  }
}

static void append_error (char const *tag, int e, char const *why)
{
  errno = e ;
  if (why) { out_cat(tag) ; out_cat(" NO [CANNOT] ") ; out_cat(why) ; out_catb("\r\n", 2) ; }
  else if (e == ENOENT || e == ENOTDIR) tagged(tag, "NO [TRYCREATE] No such mailbox") ;
  else if (e == ENOSPC) tagged(tag, "NO [OVERQUOTA] No space left for the message or its keywords") ;
  else tagged_syserr(tag, "APPEND") ;
}

/* APPEND mailbox [(flags)] [date-time] literal (RFC 3501 6.3.11, RFC 4315
 * APPENDUID) */
void cmd_append (struct imapcmd const *c)
{
  stralloc name = STRALLOC_ZERO, dir = STRALLOC_ZERO, kwnames = STRALLOC_ZERO ;
  genalloc kw = GENALLOC_ZERO, kwp = GENALLOC_ZERO ;
  struct index_append ap = INDEX_APPEND_ZERO ;
  struct index_append *app = &ap ;
  unsigned int flags = 0 ;
  int64_t idate = -1 ;
  char const *err ;
  size_t i ;
  struct imapcmd_arg const *a ;
  uint32_t uv, uid ;
  if (!c->nargs) { tagged_bad(c->tag, "Syntax: APPEND mailbox [(flags)] [date-time] literal") ; goto end ; }
  if (!arg_mailbox(c, 0, c->tag, &name, &dir)) goto end ;
  i = imapcmd_arg(c, 0)->next ;
  a = imapcmd_arg(c, i) ;
  if (a && a->type == IMAPARG_LIST)
  {
    int r = imapcmd_flaglist(c, i, 0, &flags, &kw, &err) ;
    if (r < 0) die_nomem() ;
    if (!r) { tagged_bad(c->tag, err) ; goto end ; }
    i = a->next ;
    a = imapcmd_arg(c, i) ;
  }
  if (a && a->type == IMAPARG_QUOTED)
  {
    int tz ;
    if (!imapcmd_datetime(a->s, a->len, &idate, &tz)) { tagged_bad(c->tag, "Invalid date-time") ; goto end ; }
    i = a->next ;
    a = imapcmd_arg(c, i) ;
  }
  if (!a || a->type != IMAPARG_LITERAL) { tagged_bad(c->tag, "Syntax: APPEND mailbox [(flags)] [date-time] literal") ; goto end ; }
  if (a->next != c->nargs) { tagged_bad(c->tag, "One message per APPEND (no MULTIAPPEND)") ; goto end ; }
  if (a->streamed)
  {
    if (!ast.active || ast.got != a->len || (!ast.err && strcmp(ast.dir.s, dir.s)))
    {
      tagged(c->tag, "NO [SERVERBUG] The message was not received whole") ;
      goto end ;
    }
    if (ast.err) { append_error(c->tag, ast.err, ast.why) ; goto end ; }
    app = &ast.ap ;
  }
  else
  {
    if (!index_append_begin(&ap, dir.s) || !index_append_write(&ap, a->s, a->len))
    {
      int e = errno ;
      index_append_abort(&ap) ;
      append_error(c->tag, e, 0) ;
      goto end ;
    }
  }
  {
    struct imapcmd_str const *k = genalloc_s(struct imapcmd_str, &kw) ;
    size_t n = genalloc_len(struct imapcmd_str, &kw) ;
    size_t off ;
    for (size_t j = 0 ; j < n ; j++)
      if (!stralloc_catb(&kwnames, k[j].s, k[j].len) || !stralloc_0(&kwnames)) die_nomem() ;
    off = 0 ;
    for (size_t j = 0 ; j < n ; j++)
    {
      char const *p = kwnames.s + off ;
      if (!genalloc_append(char const *, &kwp, &p)) die_nomem() ;
      off += k[j].len + 1 ;
    }
    if (!index_append_commit(app, flags_to_index(flags), genalloc_s(char const *, &kwp), n, idate, &uv, &uid))
    {
      int e = errno ;
      index_append_abort(app) ;
      if (app == &ast.ap) ast.begun = 0 ;
      append_error(c->tag, e, 0) ;
      goto end ;
    }
    if (app == &ast.ap) ast.begun = 0 ;
  }
  sess.nappend++ ;
  {
    stralloc resp = STRALLOC_ZERO ;
    char fmt[UINT32_FMT] ;
    if (!stralloc_cats(&resp, "OK [APPENDUID ") || !stralloc_catb(&resp, fmt, uint32_fmt(fmt, uv))
     || !stralloc_catb(&resp, " ", 1) || !stralloc_catb(&resp, fmt, uint32_fmt(fmt, uid))
     || !stralloc_cats(&resp, "] APPEND completed") || !stralloc_0(&resp)) die_nomem() ;
    tagged(c->tag, resp.s) ;
    stralloc_free(&resp) ;
  }
 end:
  stralloc_free(&name) ;
  stralloc_free(&dir) ;
  stralloc_free(&kwnames) ;
  genalloc_free(struct imapcmd_str, &kw) ;
  genalloc_free(char const *, &kwp) ;
  stralloc_free(&ap.tmpname) ;
}
