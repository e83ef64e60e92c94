/* imapd/mailboxes: the commands on mailboxes as names (LIST, LSUB,
 * CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, STATUS) of
 * yubin-imapmail, over imapd/folder.h.  See imapd/session.h. */

#include <errno.h>
#include <string.h>
#include <strings.h>

#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>

#include "imapd/cmd.h"
#include "imapd/folder.h"
#include "imapd/index.h"
#include "imapd/session.h"

void tagged_folder_error (char const *tag, char const *why)
{
  int e = errno ;
  char const *code ;
  if (!why)
  {
    if (e == ENOMEM) die_nomem() ;
    tagged_syserr(tag, "mailbox operation") ;
    return ;
  }
  switch (e)
  {
    case EEXIST : code = " NO [ALREADYEXISTS] " ; break ;
    case ENOENT : code = " NO [NONEXISTENT] " ; break ;
    case ENOTEMPTY : code = " NO [INUSE] " ; break ;
    default : code = " NO [CANNOT] " ; break ;
  }
  out_cat(tag) ;
  out_cat(code) ;
  out_cat(why) ;
  out_catb("\r\n", 2) ;
}

/* ---------- LIST, LSUB ---------- */

#define SEL_SUBSCRIBED 1
#define SEL_RECURSIVE 2
#define RET_SUBSCRIBED 1
#define RET_CHILDREN 2
#define RET_SPECIALUSE 4

struct listreq
{
  stralloc pats ;          /* reference + pattern, each NUL-terminated */
  genalloc patoff ;        /* size_t offsets into pats */
  unsigned int sel, ret ;
  int extended ;
} ;

static int add_pattern (struct listreq *q, char const *ref, size_t reflen, char const *p, size_t plen)
{
  size_t off = q->pats.len ;
  if (!stralloc_catb(&q->pats, ref, reflen) || !stralloc_catb(&q->pats, p, plen) || !stralloc_0(&q->pats)) die_nomem() ;
  if (!genalloc_append(size_t, &q->patoff, &off)) die_nomem() ;
  return 1 ;
}

static int list_matches (struct listreq const *q, char const *name, size_t len)
{
  size_t const *o = genalloc_s(size_t, &q->patoff) ;
  size_t n = genalloc_len(size_t, &q->patoff) ;
  for (size_t k = 0 ; k < n ; k++)
  {
    char const *p = q->pats.s + o[k] ;
    if (folder_match(p, strlen(p), name, len)) return 1 ;
  }
  return 0 ;
}

/* whether a subscribed mailbox lies under entry i (RECURSIVEMATCH) */
static int has_subscribed_child (folder_list const *fl, size_t i)
{
  char const *name = folder_entry_name(fl, i) ;
  size_t len = folder_entry(fl, i)->len ;
  size_t n = folder_list_len(fl) ;
  for (size_t j = 0 ; j < n ; j++)
  {
    struct folder_entry const *e = folder_entry(fl, j) ;
    char const *s = folder_entry_name(fl, j) ;
    if (e->len > len + 1 && !memcmp(s, name, len) && s[len] == FOLDER_DELIM && e->attrs & FOLDER_SUBSCRIBED) return 1 ;
  }
  return 0 ;
}

static void list_entry (char const *what, uint32_t attrs, int extended, char const *name, size_t len, int childinfo)
{
  stralloc a = STRALLOC_ZERO ;
  if (!folder_attrs_fmt(attrs, extended, &a)) die_nomem() ;
  out_cat("* ") ;
  out_cat(what) ;
  out_cat(" (") ;
  out_catb(a.s, a.len) ;
  out_cat(") \".\" ") ;
  out_catstring(name, len) ;
  if (childinfo) out_cat(" (\"CHILDINFO\" (\"SUBSCRIBED\"))") ;
  out_catb("\r\n", 2) ;
  out_maybeflush() ;
  stralloc_free(&a) ;
}

/* LIST [(selection)] reference pattern|(patterns) [RETURN (options)]
 * (RFC 3501 6.3.8, RFC 5258, RFC 6154); LSUB reference pattern. */
void cmd_list (struct imapcmd const *c, int lsub)
{
  struct listreq q = { .pats = STRALLOC_ZERO, .patoff = GENALLOC_ZERO, .sel = 0, .ret = 0, .extended = 0 } ;
  folder_list fl = FOLDER_LIST_ZERO ;
  char const *ref, *pat ;
  size_t reflen, patlen, i = 0 ;
  struct imapcmd_arg const *a ;
  char const *what = lsub ? "LSUB" : "LIST" ;

  a = imapcmd_arg(c, i) ;
  if (!lsub && a && a->type == IMAPARG_LIST)
  {
    q.extended = 1 ;
    size_t j = i + 1 ;
    for (size_t k = 0 ; k < a->n ; k++, j = imapcmd_arg(c, j)->next)
    {
      if (imapcmd_is(c, j, "SUBSCRIBED")) q.sel |= SEL_SUBSCRIBED ;
      else if (imapcmd_is(c, j, "RECURSIVEMATCH")) q.sel |= SEL_RECURSIVE ;
      else if (imapcmd_is(c, j, "REMOTE")) ;
      else { tagged_bad(c->tag, "Unknown LIST selection option") ; goto end ; }
    }
    if (q.sel & SEL_RECURSIVE && !(q.sel & SEL_SUBSCRIBED)) { tagged_bad(c->tag, "RECURSIVEMATCH needs another selection option") ; goto end ; }
    i = a->next ;
  }
  if (i >= c->nargs || !imapcmd_astring(c, i, 0, &ref, &reflen)) { tagged_bad(c->tag, "Syntax: LIST reference pattern") ; goto end ; }
  i = imapcmd_arg(c, i)->next ;
  a = imapcmd_arg(c, i) ;
  if (!a) { tagged_bad(c->tag, "Syntax: LIST reference pattern") ; goto end ; }
  if (!lsub && a->type == IMAPARG_LIST)
  {
    size_t j = i + 1 ;
    q.extended = 1 ;
    if (!a->n) { tagged_bad(c->tag, "Empty pattern list") ; goto end ; }
    for (size_t k = 0 ; k < a->n ; k++, j = imapcmd_arg(c, j)->next)
    {
      if (!imapcmd_astring(c, j, 1, &pat, &patlen)) { tagged_bad(c->tag, "Invalid pattern") ; goto end ; }
      add_pattern(&q, ref, reflen, pat, patlen) ;
    }
  }
  else
  {
    if (!imapcmd_astring(c, i, 1, &pat, &patlen)) { tagged_bad(c->tag, "Invalid pattern") ; goto end ; }
    if (!patlen)
    {
      /* the hierarchy delimiter and the root (RFC 3501 6.3.8) */
      if (i + 1 != c->nargs && imapcmd_arg(c, i)->next != c->nargs) { tagged_bad(c->tag, "Unexpected arguments") ; goto end ; }
      out_cat("* ") ; out_cat(what) ; out_cat(" (\\Noselect) \".\" \"\"\r\n") ;
      tagged(c->tag, lsub ? "OK LSUB completed" : "OK LIST completed") ;
      goto end ;
    }
    add_pattern(&q, ref, reflen, pat, patlen) ;
  }
  i = imapcmd_arg(c, i)->next ;
  if (i < c->nargs)
  {
    if (lsub || !imapcmd_is(c, i, "RETURN")) { tagged_bad(c->tag, "Unexpected arguments") ; goto end ; }
    i = imapcmd_arg(c, i)->next ;
    a = imapcmd_arg(c, i) ;
    if (!a || a->type != IMAPARG_LIST || a->next != c->nargs) { tagged_bad(c->tag, "Syntax: RETURN (options)") ; goto end ; }
    q.extended = 1 ;
    size_t j = i + 1 ;
    for (size_t k = 0 ; k < a->n ; k++, j = imapcmd_arg(c, j)->next)
    {
      if (imapcmd_is(c, j, "SUBSCRIBED")) q.ret |= RET_SUBSCRIBED ;
      else if (imapcmd_is(c, j, "CHILDREN")) q.ret |= RET_CHILDREN ;
      else if (imapcmd_is(c, j, "SPECIAL-USE")) q.ret |= RET_SPECIALUSE ;
      else { tagged_bad(c->tag, "Unknown LIST return option") ; goto end ; }
    }
  }
  if (q.sel & SEL_SUBSCRIBED) q.ret |= RET_SUBSCRIBED ;

  if (!folder_list_read(sess.maildir, &fl)) { tagged_syserr(c->tag, "read the folder list") ; goto end ; }
  {
    size_t n = folder_list_len(&fl) ;
    for (size_t k = 0 ; k < n ; k++)
    {
      struct folder_entry const *e = folder_entry(&fl, k) ;
      char const *name = folder_entry_name(&fl, k) ;
      uint32_t attrs = e->attrs ;
      int childinfo = 0 ;
      if (!list_matches(&q, name, e->len)) continue ;
      if (lsub)
      {
        if (!(attrs & FOLDER_SUBSCRIBED)) continue ;
        attrs &= ~(FOLDER_SUBSCRIBED | FOLDER_HASCHILDREN | FOLDER_HASNOCHILDREN) ;
        if (attrs & FOLDER_NONEXISTENT) attrs = (attrs & ~FOLDER_NONEXISTENT) | FOLDER_NOSELECT ;
        list_entry(what, attrs, 0, name, e->len, 0) ;
        continue ;
      }
      if (q.sel & SEL_SUBSCRIBED)
      {
        if (!(attrs & FOLDER_SUBSCRIBED))
        {
          if (!(q.sel & SEL_RECURSIVE) || !has_subscribed_child(&fl, k)) continue ;
          childinfo = 1 ;
        }
      }
      else if (attrs & FOLDER_NONEXISTENT) continue ;
      if (!(q.ret & RET_SUBSCRIBED)) attrs &= ~FOLDER_SUBSCRIBED ;
      list_entry(what, attrs, q.extended, name, e->len, childinfo) ;
    }
  }
  tagged(c->tag, lsub ? "OK LSUB completed" : "OK LIST completed") ;
 end:
  folder_list_free(&fl) ;
  stralloc_free(&q.pats) ;
  genalloc_free(size_t, &q.patoff) ;
}

/* ---------- CREATE, DELETE, RENAME, SUBSCRIBE ---------- */

static int one_name (struct imapcmd const *c, char const **s, size_t *len, char const *syntax)
{
  if (!c->nargs || !imapcmd_astring(c, 0, 0, s, len) || imapcmd_arg(c, 0)->next != c->nargs)
  {
    tagged_bad(c->tag, syntax) ;
    return 0 ;
  }
  return 1 ;
}

/* whether name (canonical) is the selected mailbox or under it */
static int holds_selected (char const *s, size_t len)
{
  stralloc canon = STRALLOC_ZERO ;
  char const *why ;
  int r = 0 ;
  if (!sess.selected) return 0 ;
  if (folder_name_canon(s, len, &canon, &why))
  {
    size_t n = canon.len ;              /* without its NUL */
    size_t bl = sess.boxname.len - 1 ;  /* boxname holds its NUL */
    r = (bl == n && !memcmp(sess.boxname.s, canon.s, n))
     || (bl > n && !memcmp(sess.boxname.s, canon.s, n) && sess.boxname.s[n] == FOLDER_DELIM) ;
  }
  stralloc_free(&canon) ;
  return r ;
}

void cmd_create (struct imapcmd const *c)
{
  char const *s, *why = 0 ;
  size_t len ;
  if (!one_name(c, &s, &len, "Syntax: CREATE mailbox")) return ;
  if (!folder_create(sess.maildir, s, len, &why)) { tagged_folder_error(c->tag, why) ; return ; }
  tagged(c->tag, "OK CREATE completed") ;
}

void cmd_delete (struct imapcmd const *c)
{
  char const *s, *why = 0 ;
  size_t len ;
  if (!one_name(c, &s, &len, "Syntax: DELETE mailbox")) return ;
  if (holds_selected(s, len) && !folder_is_inbox(s, len))
  {
    stralloc canon = STRALLOC_ZERO ;
    int same = folder_name_canon(s, len, &canon, &why) && !strcmp(canon.s, sess.boxname.s) ;
    stralloc_free(&canon) ;
    if (same) { tagged(c->tag, "NO [INUSE] The mailbox is selected: close it first") ; return ; }
  }
  if (!folder_delete(sess.maildir, s, len, &why)) { tagged_folder_error(c->tag, why) ; return ; }
  tagged(c->tag, "OK DELETE completed") ;
}

void cmd_rename (struct imapcmd const *c)
{
  char const *from, *to, *why = 0 ;
  size_t flen, tlen ;
  size_t i = c->nargs ? imapcmd_arg(c, 0)->next : 0 ;
  if (!c->nargs || !imapcmd_astring(c, 0, 0, &from, &flen) || i >= c->nargs
   || !imapcmd_astring(c, i, 0, &to, &tlen) || imapcmd_arg(c, i)->next != c->nargs)
  {
    tagged_bad(c->tag, "Syntax: RENAME from to") ;
    return ;
  }
  if (!folder_is_inbox(from, flen) && holds_selected(from, flen))
  {
    tagged(c->tag, "NO [INUSE] The mailbox is selected: close it first") ;
    return ;
  }
  if (!folder_rename(sess.maildir, from, flen, to, tlen, &why)) { tagged_folder_error(c->tag, why) ; return ; }
  tagged(c->tag, "OK RENAME completed") ;
}

void cmd_subscribe (struct imapcmd const *c, int on)
{
  char const *s, *why = 0 ;
  size_t len ;
  if (!one_name(c, &s, &len, on ? "Syntax: SUBSCRIBE mailbox" : "Syntax: UNSUBSCRIBE mailbox")) return ;
  if (!folder_subscribe(sess.maildir, s, len, on, &why)) { tagged_folder_error(c->tag, why) ; return ; }
  tagged(c->tag, on ? "OK SUBSCRIBE completed" : "OK UNSUBSCRIBE completed") ;
}

/* ---------- STATUS ---------- */

#define ST_MESSAGES 0x01
#define ST_RECENT 0x02
#define ST_UIDNEXT 0x04
#define ST_UIDVALIDITY 0x08
#define ST_UNSEEN 0x10
#define ST_SIZE 0x20
#define ST_DELETED 0x40

static struct { char const *name ; unsigned int bit ; } const statusitems[] =
{
  { "MESSAGES", ST_MESSAGES },
  { "RECENT", ST_RECENT },
  { "UIDNEXT", ST_UIDNEXT },
  { "UIDVALIDITY", ST_UIDVALIDITY },
  { "UNSEEN", ST_UNSEEN },
  { "SIZE", ST_SIZE },
  { "DELETED", ST_DELETED },
} ;
#define NSTATUSITEMS (sizeof statusitems / sizeof statusitems[0])

void cmd_status (struct imapcmd const *c)
{
  stralloc name = STRALLOC_ZERO, dir = STRALLOC_ZERO ;
  mailindex other = INDEX_ZERO ;
  mailindex *ix ;
  unsigned int want = 0 ;
  size_t i ;
  struct imapcmd_arg const *a ;
  if (!arg_mailbox(c, 0, c->tag, &name, &dir)) goto end ;
  i = imapcmd_arg(c, 0)->next ;
  a = imapcmd_arg(c, i) ;
  if (!a || a->type != IMAPARG_LIST || a->next != c->nargs || !a->n) { tagged_bad(c->tag, "Syntax: STATUS mailbox (items)") ; goto end ; }
  {
    size_t j = i + 1 ;
    for (size_t k = 0 ; k < a->n ; k++, j = imapcmd_arg(c, j)->next)
    {
      size_t m = 0 ;
      while (m < NSTATUSITEMS && !imapcmd_is(c, j, statusitems[m].name)) m++ ;
      if (m == NSTATUSITEMS) { tagged_bad(c->tag, "Unknown STATUS item") ; goto end ; }
      want |= statusitems[m].bit ;
    }
  }
  if (sess.selected && !strcmp(name.s, sess.boxname.s)) ix = &sess.ix ;
  else
  {
    /* a peek: new/ stays for the session that selects it (\Recent);
       its messages are counted, get their UIDs (UIDNEXT is true) and are
       the RECENT */
    if (!index_open(&other, dir.s, INDEX_PEEK))
    {
      if (errno == ENOENT || errno == ENOTDIR) tagged(c->tag, "NO [NONEXISTENT] No such mailbox") ;
      else tagged_syserr(c->tag, "open the mailbox") ;
      goto end ;
    }
    ix = &other ;
  }
  {
    uint64_t messages = 0, unseen = 0, size = 0, deleted = 0 ;
    for (size_t k = 0 ; k < ix->n ; k++)
    {
      struct index_msg const *m = index_msg(ix, k) ;
      if (m->state & INDEX_EXPUNGED) continue ;
      messages++ ;
      size += m->size ;
      if (!(m->flags & INDEX_SEEN)) unseen++ ;
      if (m->flags & INDEX_DELETED) deleted++ ;
    }
    out_cat("* STATUS ") ;
    out_catstring(name.s, name.len) ;
    out_cat(" (") ;
    int first = 1 ;
    for (size_t m = 0 ; m < NSTATUSITEMS ; m++)
    {
      uint64_t v = 0 ;
      if (!(want & statusitems[m].bit)) continue ;
      switch (statusitems[m].bit)
      {
        case ST_MESSAGES : v = messages ; break ;
        case ST_RECENT : v = ix->recent ; break ;
        case ST_UIDNEXT : v = ix->uidnext ; break ;
        case ST_UIDVALIDITY : v = ix->uidvalidity ; break ;
        case ST_UNSEEN : v = unseen ; break ;
        case ST_SIZE : v = size ; break ;
        case ST_DELETED : v = deleted ; break ;
      }
      if (!first) out_catb(" ", 1) ;
      first = 0 ;
      out_cat(statusitems[m].name) ;
      out_catb(" ", 1) ;
      out_catu64(v) ;
    }
    out_cat(")\r\n") ;
  }
  tagged(c->tag, "OK STATUS completed") ;
 end:
  index_close(&other) ;
  stralloc_free(&name) ;
  stralloc_free(&dir) ;
}
