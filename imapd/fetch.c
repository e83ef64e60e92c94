/* imapd/fetch: FETCH and UID FETCH of yubin-imapmail (RFC 3501 6.4.5,
 * 7.4.2), and the message files.  A file is read as little as the
 * command needs: nothing when the cached fields (yubin.cache, through
 * index_cache_get) answer it; the top-level header alone (a pread of 8
 * KiB, more only if the header is longer, parsed by mime_parse_header)
 * for ENVELOPE, HEADER, HEADER.FIELDS(.NOT); else the whole file: up to
 * 128 KiB read into one reused buffer, bigger files mapped.  Bodies go
 * out in chunks through mime_crlf (bare LF sent as CRLF): the session's
 * memory does not grow with the message.  What a parse computed goes
 * into the cache (msg_cache_store).  See imapd/session.h. */

#include <errno.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <skalibs/djbunix.h>
#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>

#include "ylog.h"
#include "imapd/cmd.h"
#include "imapd/index.h"
#include "imapd/mime.h"
#include "imapd/session.h"

#define CHUNK 65536

/* ---------- message files ---------- */

/* Files up to MSG_SMALL bytes are read into the msgfile's buffer (one
 * pread, reused from message to message: no mmap, munmap, page faults);
 * larger ones are mapped, so that memory never grows with a message.
 * For the header alone, MSG_HEADREAD bytes are read first, more (up to
 * MSG_SMALL) only if the header is longer; past that the file is mapped. */
#define MSG_SMALL 131072
#define MSG_HEADREAD 8192

static void unload_file (struct msgfile *mf)
{
  if (mf->mapped) munmap((void *)mf->map, mf->len) ;
  mf->map = 0 ;
  mf->len = 0 ;
  mf->mapped = 0 ;
  mf->loaded = 0 ;
  mf->whole = 0 ;
  mf->parsed = 0 ;
  mf->hparsed = 0 ;
}

void msg_unload (struct msgfile *mf)
{
  unload_file(mf) ;
  mf->mc.state = 0 ;
  mf->mc.has = 0 ;
  mf->mc.hparsed = 0 ;
}

void msg_free (struct msgfile *mf)
{
  msg_unload(mf) ;
  mime_free(&mf->mime) ;
  stralloc_free(&mf->buf) ;
  mime_free(&mf->mc.hm) ;
  stralloc_free(&mf->mc.data) ;
}

/* ---------- cached fields ----------
 * The string kept by index_cache_put: fields, each a tag byte, a length
 * (u32, little-endian) and the bytes: 'S' BODYSTRUCTURE, 'B' BODY, 'H'
 * the top-level header fields of mime_cached_fields (raw lines, then a
 * blank line: a header of its own), 'h' (empty) the header cannot be
 * kept so (a chosen field without a line end).  Unknown tags are
 * skipped. */

static uint32_t get32 (char const *p)
{
  return (uint32_t)(unsigned char)p[0] | (uint32_t)(unsigned char)p[1] << 8 | (uint32_t)(unsigned char)p[2] << 16 | (uint32_t)(unsigned char)p[3] << 24 ;
}

static void cat_field (stralloc *sa, char tag, char const *s, size_t len)
{
  char h[5] = { tag, (char)len, (char)(len >> 8), (char)(len >> 16), (char)(len >> 24) } ;
  if (!stralloc_catb(sa, h, 5) || !stralloc_catb(sa, s, len)) die_nomem() ;
}

int msg_cached (struct msgfile *mf, size_t pos)
{
  struct msgcache *c = &mf->mc ;
  size_t i = 0 ;
  if (c->state && mf->pos == pos) return c->has ;
  if (mf->loaded && mf->pos != pos) msg_unload(mf) ;
  mf->pos = pos ;
  c->state = 1 ; c->has = 0 ; c->hparsed = 0 ;
  c->data.len = 0 ;
  int r = index_cache_get(&sess.ix, pos, &c->data) ;
  if (r < 0) die_nomem() ;
  if (!r) return 0 ;
  while (i + 5 <= c->data.len)
  {
    char tag = c->data.s[i] ;
    size_t len = get32(c->data.s + i + 1), at = i + 5 ;
    if (len > c->data.len - at) break ;
    switch (tag)
    {
      case 'S' : c->bs = at ; c->bslen = len ; c->has |= MC_BS ; break ;
      case 'B' : c->body = at ; c->bodylen = len ; c->has |= MC_BODY ; break ;
      case 'H' : c->hdr = at ; c->hdrlen = len ; c->has |= MC_HDR ; break ;
      case 'h' : c->has |= MC_NOHDR ; break ;
      default : break ;
    }
    i = at + len ;
  }
  return c->has ;
}

struct mime const *msg_cached_header (struct msgfile *mf)
{
  struct msgcache *c = &mf->mc ;
  if (!c->hparsed)
  {
    if (!mime_parse_header(&c->hm, c->data.s + c->hdr, c->hdrlen)) die_nomem() ;
    c->hparsed = 1 ;
  }
  return &c->hm ;
}

int msg_cached_field (char const *name, size_t len)
{
  for (size_t k = 0 ; mime_cached_fields[k] ; k++)
    if (strlen(mime_cached_fields[k]) == len && !strncasecmp(mime_cached_fields[k], name, len)) return 1 ;
  return 0 ;
}

static int cat_subset (stralloc *sa, char const *s, size_t len)
{
  size_t mark = sa->len ;
  if (!stralloc_catb(sa, "H0000", 5)) die_nomem() ;
  int r = mime_header_subset(sa, s, len, mime_cached_fields) ;
  if (r < 0) die_nomem() ;
  if (!r) { sa->len = mark ; cat_field(sa, 'h', "", 0) ; return 0 ; }
  if (!stralloc_catb(sa, "\n", 1)) die_nomem() ;
  size_t n = sa->len - mark - 5 ;
  sa->s[mark + 1] = (char)n ; sa->s[mark + 2] = (char)(n >> 8) ; sa->s[mark + 3] = (char)(n >> 16) ; sa->s[mark + 4] = (char)(n >> 24) ;
  return 1 ;
}

void msg_cache_store (struct msgfile *mf)
{
  stralloc e = STRALLOC_ZERO ;
  int has = msg_cached(mf, mf->pos) ;
  if (mf->parsed && !(has & MC_BS))
  {
    struct mime_part const *root = mime_parts(&mf->mime) ;
    size_t mark ;
    if (!stralloc_catb(&e, "S0000", 5)) die_nomem() ;
    mark = e.len ;
    if (!mime_bodystructure(&mf->mime, 0, 1, &e)) die_nomem() ;
    { size_t n = e.len - mark ; e.s[1] = (char)n ; e.s[2] = (char)(n >> 8) ; e.s[3] = (char)(n >> 16) ; e.s[4] = (char)(n >> 24) ; }
    size_t b = e.len ;
    if (!stralloc_catb(&e, "B0000", 5)) die_nomem() ;
    mark = e.len ;
    if (!mime_bodystructure(&mf->mime, 0, 0, &e)) die_nomem() ;
    { size_t n = e.len - mark ; e.s[b + 1] = (char)n ; e.s[b + 2] = (char)(n >> 8) ; e.s[b + 3] = (char)(n >> 16) ; e.s[b + 4] = (char)(n >> 24) ; }
    cat_subset(&e, mf->map, root->body) ;
  }
  else if (mf->hparsed && !has)
  {
    struct mime_part const *root = mime_parts(&mf->mime) ;
    cat_subset(&e, mf->map, root->body) ;
  }
  if (e.len && !index_cache_put(&sess.ix, mf->pos, e.s, e.len)) die_nomem() ;
  stralloc_free(&e) ;
}

/* up to len bytes at off into mf->buf from its length on; 1, or 0 */
static int readmore (struct msgfile *mf, int fd, size_t len)
{
  if (!stralloc_readyplus(&mf->buf, len)) die_nomem() ;
  while (len)
  {
    ssize_t r = pread(fd, mf->buf.s + mf->buf.len, len, (off_t)mf->buf.len) ;
    if (r < 0) { if (errno == EINTR) continue ; return 0 ; }
    if (!r) break ;
    mf->buf.len += (size_t)r ;
    len -= (size_t)r ;
  }
  return 1 ;
}

static int mapfile (struct msgfile *mf, int fd, size_t size)
{
  void *p = mmap(0, size, PROT_READ, MAP_PRIVATE, fd, 0) ;
  if (p == MAP_FAILED) return 0 ;
  madvise(p, size, MADV_SEQUENTIAL) ;
  mf->map = p ;
  mf->len = size ;
  mf->mapped = 1 ;
  mf->whole = 1 ;
  return 1 ;
}

/* the file of message pos: all of it (whole) or at least its header */
static int readfile (struct msgfile *mf, size_t pos, int whole)
{
  struct stat st ;
  int fd, ok = 0 ;
  size_t size ;
  if (mf->pos != pos) msg_unload(mf) ; else unload_file(mf) ;
  fd = index_openmsg(&sess.ix, pos) ;
  if (fd < 0) return errno == ENOENT ? 0 : -1 ;
  if (fstat(fd, &st) < 0) goto err ;
  size = (size_t)st.st_size ;
  mf->buf.len = 0 ;
  if (!size) { mf->map = "" ; mf->whole = 1 ; }
  else if (size > MSG_SMALL && whole) { if (!mapfile(mf, fd, size)) goto err ; }
  else if (whole)
  {
    if (!readmore(mf, fd, size)) goto err ;
    mf->map = mf->buf.s ; mf->len = mf->buf.len ; mf->whole = 1 ;
  }
  else
  {
    size_t want = MSG_HEADREAD ;
    for (;;)
    {
      if (want > size) want = size ;
      if (!readmore(mf, fd, want - mf->buf.len)) goto err ;
      if (mf->buf.len < want || want == size) { mf->whole = 1 ; break ; }
      if (mime_header_length(mf->buf.s, mf->buf.len)) break ;
      if (want >= MSG_SMALL) break ;
      want *= 4 ;
    }
    if (!mf->whole && !mime_header_length(mf->buf.s, mf->buf.len))
    {
      /* a header over MSG_SMALL: map the file */
      mf->buf.len = 0 ;
      if (!mapfile(mf, fd, size)) goto err ;
    }
    else { mf->map = mf->buf.s ; mf->len = mf->buf.len ; }
  }
  mf->pos = pos ;
  mf->loaded = 1 ;
  ok = 1 ;
 err:
  {
    int e = errno ;
    fd_close(fd) ;
    errno = e ;
  }
  return ok ? 1 : -1 ;
}

int msg_load (struct msgfile *mf, size_t pos, int how)
{
  int whole = !(how & MSG_HEADER) || (how & (MSG_WHOLE | MSG_PARSE)) ;
  if (!mf->loaded || mf->pos != pos || (whole && !mf->whole))
  {
    int r = readfile(mf, pos, whole) ;
    if (r <= 0) return r ;
  }
  if (how & MSG_PARSE && !mf->parsed)
  {
    if (!mime_parse(&mf->mime, mf->map, mf->len)) die_nomem() ;
    mf->parsed = 1 ;
  }
  if (how & MSG_HEADER && !mf->parsed && !mf->hparsed)
  {
    if (!mime_parse_header(&mf->mime, mf->map, mf->len)) die_nomem() ;
    mf->hparsed = 1 ;
  }
  return 1 ;
}

/* ---------- FETCH ---------- */

static int needs (struct imapfetch_att const *a) ;

/* what an attribute can take from the cache: MC_* bits, -1 not there */
static int cacheable (struct imapfetch const *f, struct imapfetch_att const *a)
{
  switch (a->kind)
  {
    case IMAPFETCH_ENVELOPE : return MC_HDR ;
    case IMAPFETCH_BODY : return MC_BODY ;
    case IMAPFETCH_BODYSTRUCTURE : return MC_BS ;
    case IMAPFETCH_SECTION :
      if (a->nparts || a->text != IMAPSECT_FIELDS) return -1 ;
      for (size_t k = 0 ; k < a->nfields ; k++)
      {
        struct imapcmd_str const *fs = genalloc_s(struct imapcmd_str, &f->fields) + a->field + k ;
        if (!msg_cached_field(fs->s, fs->len)) return -1 ;
      }
      return MC_HDR ;
    default : return needs(a) ? -1 : 0 ;
  }
}

/* what an attribute needs of the file: 0 nothing, else msg_load's how */
static int needs (struct imapfetch_att const *a)
{
  switch (a->kind)
  {
    case IMAPFETCH_ENVELOPE :
    case IMAPFETCH_RFC822_HEADER : return MSG_HEADER ;
    case IMAPFETCH_RFC822 : return MSG_WHOLE ;
    case IMAPFETCH_BODY :
    case IMAPFETCH_BODYSTRUCTURE :
    case IMAPFETCH_RFC822_TEXT : return MSG_PARSE ;
    case IMAPFETCH_SECTION :
      if (a->nparts) return MSG_PARSE ;
      if (a->text == IMAPSECT_ALL) return MSG_WHOLE ;
      if (a->text == IMAPSECT_HEADER || a->text == IMAPSECT_FIELDS || a->text == IMAPSECT_FIELDS_NOT) return MSG_HEADER ;
      return MSG_PARSE ;
    default : return 0 ;
  }
}

static int sets_seen (struct imapfetch_att const *a)
{
  return (a->kind == IMAPFETCH_SECTION && !a->peek) || a->kind == IMAPFETCH_RFC822 || a->kind == IMAPFETCH_RFC822_TEXT ;
}

/* len bytes of the CRLF view of s[0..slen) from CRLF offset origin, as a
 * literal */
static void send_crlf (char const *s, size_t slen, uint64_t origin, uint64_t len)
{
  struct mime_crlf cr ;
  char buf[CHUNK] ;
  uint64_t left = len ;
  out_catb("{", 1) ; out_catu64(len) ; out_catb("}\r\n", 3) ;
  mime_crlf_start(&cr, s, slen, origin) ;
  while (left)
  {
    size_t n = mime_crlf_read(&cr, buf, left < sizeof buf ? left : sizeof buf) ;
    if (!n)
    {
      /* cannot happen with sizes from mime: keep the literal whole */
      memset(buf, ' ', sizeof buf) ;
      n = left < sizeof buf ? left : sizeof buf ;
    }
    out_catb(buf, n) ;
    left -= n ;
    out_maybeflush() ;
  }
}

static void partial (struct imapfetch_att const *a, uint64_t total, uint64_t *origin, uint64_t *len)
{
  *origin = 0 ;
  *len = total ;
  if (!a->partial) return ;
  *origin = a->origin < total ? a->origin : total ;
  *len = total - *origin ;
  if (a->count < *len) *len = a->count ;
}

/* BODY[section]<partial>, RFC822, RFC822.HEADER, RFC822.TEXT */
static void send_section (struct msgfile *mf, struct mime const *mm, struct imapfetch_att const *a, stralloc const *name, stralloc *built)
{
  char const *spec = "" ;
  size_t speclen = 0 ;
  struct mime_section sec ;
  uint64_t origin, len ;
  if (a->kind == IMAPFETCH_RFC822_HEADER) { spec = "HEADER" ; speclen = 6 ; }
  else if (a->kind == IMAPFETCH_RFC822_TEXT) { spec = "TEXT" ; speclen = 4 ; }
  else if (a->kind == IMAPFETCH_SECTION)
  {
    char const *l = memchr(name->s, '[', name->len) ;
    size_t r = name->len ;
    while (r && name->s[r - 1] != ']') r-- ;
    if (l && r > (size_t)(l - name->s) + 1) { spec = l + 1 ; speclen = (name->s + r - 1) - spec ; }
  }
  if (!mf->parsed && !mf->hparsed && !speclen)
  {
    uint64_t total = mime_crlf_size(mf->map, mf->len) ;
    partial(a, total, &origin, &len) ;
    send_crlf(mf->map, mf->len, origin, len) ;
    return ;
  }
  built->len = 0 ;
  int r = mime_section(mm, spec, speclen, &sec, built) ;
  if (r == MIME_SECT_NOMEM) die_nomem() ;
  if (r != MIME_SECT_OK) { out_cat("\"\"") ; return ; }
  partial(a, sec.size, &origin, &len) ;
  if (sec.built)
  {
    if (origin > built->len) origin = built->len ;
    if (len > built->len - origin) len = built->len - origin ;
    out_catb("{", 1) ; out_catu64(len) ; out_catb("}\r\n", 3) ;
    out_catb(built->s + origin, len) ;
    return ;
  }
  send_crlf(mf->map + sec.start, sec.end - sec.start, origin, len) ;
}

static int in_sorted (uint32_t const *v, size_t n, uint32_t x)
{
  size_t lo = 0, hi = n ;
  while (lo < hi)
  {
    size_t mid = lo + (hi - lo) / 2 ;
    if (v[mid] == x) return 1 ;
    if (v[mid] < x) lo = mid + 1 ; else hi = mid ;
  }
  return 0 ;
}

void cmd_fetch (struct imapcmd const *c)
{
  genalloc pos = GENALLOC_ZERO, seen = GENALLOC_ZERO ;
  struct imapfetch f = IMAPFETCH_ZERO ;
  struct msgfile mf = MSGFILE_ZERO ;
  stralloc name = STRALLOC_ZERO, built = STRALLOC_ZERO ;
  mailindex *ix = &sess.ix ;
  char const *err ;
  size_t i, na, gone = 0, failed = 0 ;
  struct imapfetch_att const *atts ;
  int how = 0, needfile = 0, hasflags = 0, hasuid = 0, setseen = 0, cacheneed = 0 ;

  if (arg_count(c) != 2) { tagged_bad(c->tag, arg_count(c) > 2 ? "FETCH modifiers are not supported" : "Syntax: FETCH set items") ; goto end ; }
  if (!arg_messages(c, 0, c->uid, c->tag, &pos)) goto end ;
  i = arg_nth(c, 1) ;
  {
    int r = imapfetch_parse(&f, c, i, &err) ;
    if (r < 0) die_nomem() ;
    if (!r) { tagged_bad(c->tag, err) ; goto end ; }
  }
  atts = genalloc_s(struct imapfetch_att, &f.atts) ;
  na = genalloc_len(struct imapfetch_att, &f.atts) ;
  for (size_t k = 0 ; k < na ; k++)
  {
    struct imapfetch_att const *a = atts + k ;
    if (a->kind == IMAPFETCH_BINARY || a->kind == IMAPFETCH_BINARY_SIZE || a->kind == IMAPFETCH_MODSEQ)
    {
      tagged_bad(c->tag, "BINARY and MODSEQ are not supported") ;
      goto end ;
    }
    if (needs(a)) { needfile = 1 ; how |= needs(a) ; }
    {
      int cn = cacheable(&f, a) ;
      if (cn < 0 || cacheneed < 0) cacheneed = -1 ; else cacheneed |= cn ;
    }
    if (a->kind == IMAPFETCH_FLAGS) hasflags = 1 ;
    if (a->kind == IMAPFETCH_UID) hasuid = 1 ;
    if (sets_seen(a)) setseen = 1 ;
  }

  /* \Seen first (RFC 3501 6.4.5): FLAGS then go with the messages it set */
  if (setseen && !sess.readonly)
  {
    uint32_t const *p = genalloc_s(uint32_t, &pos) ;
    size_t n = genalloc_len(uint32_t, &pos) ;
    for (size_t k = 0 ; k < n ; k++)
    {
      struct index_msg const *m = index_msg(ix, p[k]) ;
      if (!(m->flags & INDEX_SEEN) && !(m->state & INDEX_EXPUNGED))
        if (!genalloc_append(uint32_t, &seen, &p[k])) die_nomem() ;
    }
    if (genalloc_len(uint32_t, &seen) && !index_store(ix, genalloc_s(uint32_t, &seen), genalloc_len(uint32_t, &seen), INDEX_STORE_ADD, INDEX_SEEN, 0, UINT64_MAX, 0))
    {
      ylog("error", "ip", sess.ip, "user", sess.user, "op", "store-seen", "mailbox", sess.boxname.s, "errno", strerror(errno), (char *)0) ;
      genalloc_setlen(uint32_t, &seen, 0) ;
    }
  }

  {
    uint32_t const *p = genalloc_s(uint32_t, &pos) ;
    size_t n = genalloc_len(uint32_t, &pos) ;
    uint32_t const *sp = genalloc_s(uint32_t, &seen) ;
    size_t ns = genalloc_len(uint32_t, &seen) ;
    for (size_t k = 0 ; k < n ; k++)
    {
      struct index_msg const *m = index_msg(ix, p[k]) ;
      int first = 1, fromcache = 0 ;
      if (cacheneed > 0)
      {
        int has = msg_cached(&mf, p[k]) ;
        if ((has & cacheneed) == cacheneed) fromcache = 1 ;
      }
      if (needfile && !fromcache)
      {
        int r = msg_load(&mf, p[k], how) ;
        if (!r) { gone++ ; continue ; }
        if (r < 0)
        {
          stralloc fn = STRALLOC_ZERO ;
          int e = errno ;
          if (index_path(ix, p[k], &fn) && stralloc_0(&fn))
            ylog("error", "ip", sess.ip, "user", sess.user, "op", "open", "file", fn.s, "errno", strerror(e), (char *)0) ;
          stralloc_free(&fn) ;
          failed++ ;
          continue ;
        }
        if (how & (MSG_PARSE | MSG_HEADER)) msg_cache_store(&mf) ;
      }
      m = index_msg(ix, p[k]) ;
      out_cat("* ") ; out_catu64(p[k] + 1) ; out_cat(" FETCH (") ;
      if (c->uid && !hasuid) { out_cat("UID ") ; out_catu64(m->uid) ; first = 0 ; }
      for (size_t j = 0 ; j < na ; j++)
      {
        struct imapfetch_att const *a = atts + j ;
        if (!first) out_catb(" ", 1) ;
        first = 0 ;
        name.len = 0 ;
        if (!imapfetch_catname(&name, &f, a)) die_nomem() ;
        out_catb(name.s, name.len) ;
        out_catb(" ", 1) ;
        switch (a->kind)
        {
          case IMAPFETCH_UID : out_catu64(m->uid) ; break ;
          case IMAPFETCH_FLAGS : cat_flags(&out, p[k]) ; break ;
          case IMAPFETCH_RFC822_SIZE : out_catu64(m->size) ; break ;
          case IMAPFETCH_INTERNALDATE :
            if (!imapcmd_catdatetime(&out, m->idate, sess.tzmin)) die_nomem() ;
            break ;
          case IMAPFETCH_ENVELOPE :
            if (!mime_envelope(fromcache ? msg_cached_header(&mf) : &mf.mime, 0, &out)) die_nomem() ;
            break ;
          case IMAPFETCH_BODY :
          case IMAPFETCH_BODYSTRUCTURE :
            if (fromcache)
            {
              if (a->kind == IMAPFETCH_BODY) out_catb(mf.mc.data.s + mf.mc.body, mf.mc.bodylen) ;
              else out_catb(mf.mc.data.s + mf.mc.bs, mf.mc.bslen) ;
            }
            else if (!mime_bodystructure(&mf.mime, 0, a->kind == IMAPFETCH_BODYSTRUCTURE, &out)) die_nomem() ;
            break ;
          default : send_section(&mf, fromcache ? msg_cached_header(&mf) : &mf.mime, a, &name, &built) ; break ;
        }
        out_maybeflush() ;
      }
      if (!hasflags && ns && in_sorted(sp, ns, p[k]))
      {
        if (!first) out_catb(" ", 1) ;
        out_cat("FLAGS ") ;
        cat_flags(&out, p[k]) ;
      }
      out_cat(")\r\n") ;
      msg_unload(&mf) ;
      sess.nfetch++ ;
      out_maybeflush() ;
    }
  }
  if (failed) tagged(c->tag, "NO [UNAVAILABLE] Some of the messages could not be read") ;
  else if (gone) tagged(c->tag, "NO [EXPUNGEISSUED] Some of the messages no longer exist") ;
  else tagged(c->tag, "OK FETCH completed") ;
 end:
  msg_free(&mf) ;
  imapfetch_free(&f) ;
  genalloc_free(uint32_t, &pos) ;
  genalloc_free(uint32_t, &seen) ;
  stralloc_free(&name) ;
  stralloc_free(&built) ;
}
