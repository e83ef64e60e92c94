/* imapd/folder: Maildir++ folders; see folder.h and imapd/README
 * ("Storage"). */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/djbunix.h>
#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>

#include "maildir.h"
#include "imapd/folder.h"

#define SUBSCRIPTIONS "subscriptions"
#define SUBSCRIPTIONS_TMP "subscriptions.tmp"
#define SUBSCRIPTIONS_MAX 262144
#define MATCH_MAX 1024
#define RMTREE_DEPTH 4

/* ---------- modified UTF-7 ---------- */

static char const b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+," ;

static int b64val (char c)
{
  char const *p = c ? strchr(b64, c) : 0 ;
  return p ? (int)(p - b64) : -1 ;
}

static int catutf8 (stralloc *out, uint32_t c)
{
  char b[4] ;
  size_t n ;
  if (c < 0x80) { b[0] = (char)c ; n = 1 ; }
  else if (c < 0x800) { b[0] = (char)(0xc0 | c >> 6) ; b[1] = (char)(0x80 | (c & 0x3f)) ; n = 2 ; }
  else if (c < 0x10000) { b[0] = (char)(0xe0 | c >> 12) ; b[1] = (char)(0x80 | (c >> 6 & 0x3f)) ; b[2] = (char)(0x80 | (c & 0x3f)) ; n = 3 ; }
  else { b[0] = (char)(0xf0 | c >> 18) ; b[1] = (char)(0x80 | (c >> 12 & 0x3f)) ; b[2] = (char)(0x80 | (c >> 6 & 0x3f)) ; b[3] = (char)(0x80 | (c & 0x3f)) ; n = 4 ; }
  return stralloc_catb(out, b, n) ;
}

int folder_mutf7_decode (char const *s, size_t len, stralloc *out)
{
  size_t i = 0, start = out->len ;
  while (i < len)
  {
    unsigned char c = s[i] ;
    if (c < 0x20 || c > 0x7e) goto bad ;
    if (c != '&') { if (!stralloc_catb(out, s + i, 1)) return 0 ; i++ ; continue ; }
    char const *dash = memchr(s + i + 1, '-', len - i - 1) ;
    if (!dash) goto bad ;
    size_t j = (size_t)(dash - s) ;
    if (j == i + 1) { if (!stralloc_catb(out, "&", 1)) return 0 ; i = j + 1 ; continue ; }
    uint32_t bits = 0, hi = 0 ;
    unsigned nbits = 0, units = 0 ;
    for (size_t k = i + 1 ; k < j ; k++)
    {
      int v = b64val(s[k]) ;
      if (v < 0) goto bad ;
      bits = (bits << 6) | (uint32_t)v ;
      nbits += 6 ;
      if (nbits < 16) continue ;
      nbits -= 16 ;
      uint32_t u = (bits >> nbits) & 0xffff ;
      bits &= ((uint32_t)1 << nbits) - 1 ;
      units++ ;
      if (hi)
      {
        if (u < 0xdc00 || u > 0xdfff) goto bad ;
        if (!catutf8(out, 0x10000 + ((hi - 0xd800) << 10) + (u - 0xdc00))) return 0 ;
        hi = 0 ;
      }
      else if (u >= 0xd800 && u <= 0xdbff) hi = u ;
      else if (u >= 0xdc00 && u <= 0xdfff) goto bad ;
      else if (u >= 0x20 && u <= 0x7e) goto bad ;   /* must be written as itself */
      else if (!catutf8(out, u)) return 0 ;
    }
    if (hi || !units || nbits >= 6 || bits) goto bad ;
    i = j + 1 ;
    /* "&...-&...-" is not canonical: one run */
    if (i < len && s[i] == '&' && i + 1 < len && s[i + 1] != '-') goto bad ;
  }
  return 1 ;
 bad:
  out->len = start ;
  errno = EINVAL ;
  return 0 ;
}

/* the next code point of UTF-8 s[*i..len), or -1 if invalid */
static int32_t utf8next (char const *s, size_t len, size_t *i)
{
  unsigned char c = s[*i] ;
  uint32_t cp, min ;
  size_t n ;
  if (c < 0x80) { (*i)++ ; return c ; }
  if ((c & 0xe0) == 0xc0) { cp = c & 0x1f ; n = 1 ; min = 0x80 ; }
  else if ((c & 0xf0) == 0xe0) { cp = c & 0x0f ; n = 2 ; min = 0x800 ; }
  else if ((c & 0xf8) == 0xf0) { cp = c & 0x07 ; n = 3 ; min = 0x10000 ; }
  else return -1 ;
  if (*i + n >= len) return -1 ;
  for (size_t k = 1 ; k <= n ; k++)
  {
    unsigned char d = s[*i + k] ;
    if ((d & 0xc0) != 0x80) return -1 ;
    cp = (cp << 6) | (d & 0x3f) ;
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return -1 ;
  *i += n + 1 ;
  return (int32_t)cp ;
}

static int flush64 (stralloc *out, uint16_t const *u, size_t n)
{
  uint32_t bits = 0 ;
  unsigned nbits = 0 ;
  if (!stralloc_catb(out, "&", 1)) return 0 ;
  for (size_t k = 0 ; k < n ; k++)
  {
    bits = (bits << 16) | u[k] ;
    nbits += 16 ;
    while (nbits >= 6)
    {
      nbits -= 6 ;
      if (!stralloc_catb(out, &b64[(bits >> nbits) & 0x3f], 1)) return 0 ;
    }
    bits &= ((uint32_t)1 << nbits) - 1 ;
  }
  if (nbits && !stralloc_catb(out, &b64[(bits << (6 - nbits)) & 0x3f], 1)) return 0 ;
  return stralloc_catb(out, "-", 1) ;
}

int folder_mutf7_encode (char const *s, size_t len, stralloc *out)
{
  size_t i = 0, start = out->len ;
  genalloc run = GENALLOC_ZERO ;   /* uint16_t UTF-16 units of the current shifted run */
  while (i <= len)
  {
    int32_t c = i < len ? utf8next(s, len, &i) : -2 ;
    if (c == -1) { genalloc_free(uint16_t, &run) ; out->len = start ; return (errno = EINVAL, 0) ; }
    if (i == len && c == -2) i++ ;
    if (c >= 0x20 && c <= 0x7e) ;
    else if (c >= 0)
    {
      uint16_t u[2] ;
      size_t n = 1 ;
      if (c >= 0x10000) { u[0] = (uint16_t)(0xd800 + ((c - 0x10000) >> 10)) ; u[1] = (uint16_t)(0xdc00 + ((c - 0x10000) & 0x3ff)) ; n = 2 ; }
      else u[0] = (uint16_t)c ;
      if (!genalloc_catb(uint16_t, &run, u, n)) goto nomem ;
      continue ;
    }
    if (genalloc_len(uint16_t, &run))
    {
      if (!flush64(out, genalloc_s(uint16_t, &run), genalloc_len(uint16_t, &run))) goto nomem ;
      genalloc_setlen(uint16_t, &run, 0) ;
    }
    if (c == '&') { if (!stralloc_catb(out, "&-", 2)) goto nomem ; }
    else if (c >= 0) { char ch = (char)c ; if (!stralloc_catb(out, &ch, 1)) goto nomem ; }
  }
  genalloc_free(uint16_t, &run) ;
  return 1 ;
 nomem:
  genalloc_free(uint16_t, &run) ;
  out->len = start ;
  return 0 ;
}

/* ---------- names ---------- */

int folder_is_inbox (char const *s, size_t len)
{
  return len == 5 && !strncasecmp(s, "INBOX", 5) ;
}

int folder_name_check (char const *s, size_t len, char const **why)
{
  stralloc u = STRALLOC_ZERO ;
  if (!len) { *why = "empty mailbox name" ; goto bad ; }
  if (len > FOLDER_NAMEMAX) { *why = "mailbox name too long" ; goto bad ; }
  for (size_t i = 0 ; i < len ; i++)
  {
    unsigned char c = s[i] ;
    if (!c || c < 0x20 || c == 0x7f) { *why = "control characters are not allowed in mailbox names" ; goto bad ; }
    if (c > 0x7e) { *why = "mailbox names must be modified UTF-7 (8-bit characters are not allowed)" ; goto bad ; }
    if (c == '/') { *why = "\"/\" is not allowed in mailbox names (the hierarchy delimiter is \".\")" ; goto bad ; }
    if (c == FOLDER_DELIM && (!i || i == len - 1 || s[i - 1] == FOLDER_DELIM))
    { *why = "mailbox name has an empty hierarchy level (leading, trailing or double \".\")" ; goto bad ; }
  }
  if (!folder_mutf7_decode(s, len, &u))
  {
    if (errno != EINVAL) { *why = 0 ; stralloc_free(&u) ; return 0 ; }
    *why = "mailbox name is not valid modified UTF-7" ;
    goto bad ;
  }
  for (size_t i = 0 ; i < u.len ; i++)
  {
    unsigned char c = u.s[i] ;
    if (c < 0x20 || c == 0x7f || (c == 0xc2 && i + 1 < u.len && (unsigned char)u.s[i + 1] < 0xa0))
    { *why = "control characters are not allowed in mailbox names" ; goto bad ; }
  }
  stralloc_free(&u) ;
  return 1 ;
 bad:
  stralloc_free(&u) ;
  errno = EINVAL ;
  return 0 ;
}

int folder_name_canon (char const *s, size_t len, stralloc *out, char const **why)
{
  if (!folder_name_check(s, len, why)) return 0 ;
  out->len = 0 ;
  if (!stralloc_catb(out, s, len) || !stralloc_0(out)) { *why = 0 ; return 0 ; }
  out->len-- ;
  if (len >= 5 && !strncasecmp(s, "INBOX", 5) && (len == 5 || s[5] == FOLDER_DELIM)) memcpy(out->s, "INBOX", 5) ;
  return 1 ;
}

static int dirname_of (char const *maildir, char const *canon, stralloc *path)
{
  path->len = 0 ;
  if (!stralloc_cats(path, maildir)) return 0 ;
  if (strcmp(canon, "INBOX") && (!stralloc_catb(path, "/.", 2) || !stralloc_cats(path, canon))) return 0 ;
  return stralloc_0(path) ;
}

int folder_path (char const *maildir, char const *s, size_t len, stralloc *path, char const **why)
{
  stralloc c = STRALLOC_ZERO ;
  int ok = folder_name_canon(s, len, &c, why) ;
  if (ok && !(ok = dirname_of(maildir, c.s, path))) *why = 0 ;
  int e = errno ;
  stralloc_free(&c) ;
  errno = e ;
  return ok ;
}

/* ---------- patterns ---------- */

int folder_match (char const *pattern, size_t plen, char const *name, size_t nlen)
{
  unsigned char a[MATCH_MAX + 1], b[MATCH_MAX + 1], *old = a, *cur = b ;
  char pat5[5] ;
  int inbox = 0 ;
  if (nlen > MATCH_MAX) return 0 ;
  /* a leading INBOX is case-insensitive in both */
  if (plen >= 5 && !strncasecmp(pattern, "INBOX", 5) && (plen == 5 || pattern[5] == FOLDER_DELIM)
   && nlen >= 5 && !strncasecmp(name, "INBOX", 5) && (nlen == 5 || name[5] == FOLDER_DELIM))
  { memcpy(pat5, name, 5) ; inbox = 1 ; }
  memset(old, 0, nlen + 1) ;
  old[0] = 1 ;
  for (size_t p = 0 ; p < plen ; p++)
  {
    char c = inbox && p < 5 ? pat5[p] : pattern[p] ;
    if (c == '*')
    {
      unsigned char any = 0 ;
      for (size_t j = 0 ; j <= nlen ; j++) { any |= old[j] ; cur[j] = any ; }
    }
    else if (c == '%')
    {
      cur[0] = old[0] ;
      for (size_t j = 1 ; j <= nlen ; j++) cur[j] = old[j] || (cur[j - 1] && name[j - 1] != FOLDER_DELIM) ;
    }
    else
    {
      cur[0] = 0 ;
      for (size_t j = 1 ; j <= nlen ; j++) cur[j] = old[j - 1] && name[j - 1] == c ;
    }
    unsigned char *t = old ; old = cur ; cur = t ;
  }
  return old[nlen] ;
}

/* ---------- subscriptions ---------- */

/* the subscribed names, NUL-separated, into sa */
static int subs_read (char const *maildir, stralloc *sa)
{
  stralloc path = STRALLOC_ZERO, buf = STRALLOC_ZERO ;
  int ok = 0 ;
  sa->len = 0 ;
  if (!stralloc_cats(&path, maildir) || !stralloc_cats(&path, "/" SUBSCRIPTIONS) || !stralloc_0(&path)) goto end ;
  int fd = open(path.s, O_RDONLY | O_CLOEXEC) ;
  if (fd < 0) { ok = errno == ENOENT ; goto end ; }
  if (!stralloc_ready(&buf, SUBSCRIPTIONS_MAX)) { fd_close(fd) ; goto end ; }
  ssize_t r = allread(fd, buf.s, SUBSCRIPTIONS_MAX) ;
  fd_close(fd) ;
  if (r < 0) goto end ;
  buf.len = (size_t)r ;
  size_t i = 0 ;
  int v2 = buf.len >= 4 && !memcmp(buf.s, "V\t2\n", 4) ;
  if (v2) i = 4 ;
  while (i < buf.len)
  {
    char *nl = memchr(buf.s + i, '\n', buf.len - i) ;
    size_t e = nl ? (size_t)(nl - buf.s) : buf.len ;
    if (e > i)
    {
      if (v2) for (size_t k = i ; k < e ; k++) if (buf.s[k] == '\t') buf.s[k] = FOLDER_DELIM ;
      if (!stralloc_catb(sa, buf.s + i, e - i) || !stralloc_0(sa)) goto end ;
    }
    i = e + 1 ;
  }
  ok = 1 ;
 end:
  {
    int e = errno ;
    stralloc_free(&path) ;
    stralloc_free(&buf) ;
    errno = e ;
  }
  return ok ;
}

static int subs_write (char const *maildir, stralloc const *names)
{
  stralloc path = STRALLOC_ZERO, tmp = STRALLOC_ZERO, data = STRALLOC_ZERO ;
  int ok = 0, fd = -1 ;
  for (size_t off = 0 ; off < names->len ; off += strlen(names->s + off) + 1)
    if (!stralloc_cats(&data, names->s + off) || !stralloc_catb(&data, "\n", 1)) goto end ;
  if (!stralloc_cats(&path, maildir) || !stralloc_cats(&path, "/" SUBSCRIPTIONS) || !stralloc_0(&path)
   || !stralloc_cats(&tmp, maildir) || !stralloc_cats(&tmp, "/" SUBSCRIPTIONS_TMP) || !stralloc_0(&tmp)) goto end ;
  fd = open(tmp.s, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) ;
  if (fd < 0) goto end ;
  if (allwrite(fd, data.s, data.len) < data.len || fsync(fd) < 0) goto end ;
  if (rename(tmp.s, path.s) < 0) goto end ;
  ok = 1 ;
 end:
  {
    int e = errno ;
    if (fd >= 0) { fd_close(fd) ; if (!ok) unlink(tmp.s) ; }
    stralloc_free(&path) ;
    stralloc_free(&tmp) ;
    stralloc_free(&data) ;
    errno = e ;
  }
  return ok ;
}

static int subs_has (stralloc const *names, char const *name)
{
  for (size_t off = 0 ; off < names->len ; off += strlen(names->s + off) + 1)
    if (!strcmp(names->s + off, name)) return 1 ;
  return 0 ;
}

int folder_subscribe (char const *maildir, char const *s, size_t len, int on, char const **why)
{
  stralloc c = STRALLOC_ZERO, names = STRALLOC_ZERO, out = STRALLOC_ZERO ;
  int ok = 0 ;
  if (!folder_name_canon(s, len, &c, why)) goto end ;
  *why = 0 ;
  if (!subs_read(maildir, &names)) goto end ;
  if (subs_has(&names, c.s) == on) { ok = 1 ; goto end ; }
  for (size_t off = 0 ; off < names.len ; off += strlen(names.s + off) + 1)
    if (strcmp(names.s + off, c.s) && !stralloc_catb(&out, names.s + off, strlen(names.s + off) + 1)) goto end ;
  if (on && !stralloc_catb(&out, c.s, c.len + 1)) goto end ;
  ok = subs_write(maildir, &out) ;
 end:
  {
    int e = errno ;
    stralloc_free(&c) ;
    stralloc_free(&names) ;
    stralloc_free(&out) ;
    errno = e ;
  }
  return ok ;
}

/* ---------- the list ---------- */

uint32_t folder_specialuse (char const *s, size_t len)
{
  static struct { char const *name ; uint32_t attr ; } const su[] =
  {
    { "Sent", FOLDER_SENT }, { "Drafts", FOLDER_DRAFTS }, { "Trash", FOLDER_TRASH },
    { "Junk", FOLDER_JUNK }, { "Archive", FOLDER_ARCHIVE },
  } ;
  for (size_t i = 0 ; i < sizeof su / sizeof *su ; i++)
    if (strlen(su[i].name) == len && !memcmp(su[i].name, s, len)) return su[i].attr ;
  return 0 ;
}

static int entry_add (folder_list *fl, char const *name, size_t len, uint32_t attrs)
{
  struct folder_entry e = { .name = fl->names.len, .len = len, .attrs = attrs } ;
  return stralloc_catb(&fl->names, name, len) && stralloc_0(&fl->names)
      && genalloc_append(struct folder_entry, &fl->entries, &e) ;
}

static int entrycmp (void const *x, void const *y, void *aux)
{
  struct folder_entry const *a = x, *b = y ;
  char const *s = aux ;
  int ia = !!(a->attrs & FOLDER_INBOX), ib = !!(b->attrs & FOLDER_INBOX) ;
  if (ia != ib) return ib - ia ;
  int c = strcmp(s + a->name, s + b->name) ;
  if (c) return c ;
  /* a real folder before an implied or only-subscribed one of the same name */
  return (int)(a->attrs & (FOLDER_NOSELECT | FOLDER_NONEXISTENT)) - (int)(b->attrs & (FOLDER_NOSELECT | FOLDER_NONEXISTENT)) ;
}

static void list_sort (folder_list *fl)
{
  qsort_r(genalloc_s(struct folder_entry, &fl->entries), folder_list_len(fl), sizeof(struct folder_entry), &entrycmp, fl->names.s) ;
}

static ssize_t list_find (folder_list const *fl, char const *name, size_t len)
{
  for (size_t i = 0 ; i < folder_list_len(fl) ; i++)
  {
    struct folder_entry const *e = folder_entry(fl, i) ;
    if (e->len == len && !memcmp(fl->names.s + e->name, name, len)) return (ssize_t)i ;
  }
  return -1 ;
}

/* the folder directories: ".NAME" with a cur/, NAME valid; names NUL-separated into sa */
static int read_folders (char const *maildir, stralloc *sa)
{
  int dfd = open(maildir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (dfd < 0) return 0 ;
  DIR *d = fdopendir(dfd) ;
  if (!d) { int e = errno ; fd_close(dfd) ; errno = e ; return 0 ; }
  sa->len = 0 ;
  for (;;)
  {
    char const *why ;
    struct stat st ;
    errno = 0 ;
    struct dirent *e = readdir(d) ;
    if (!e) break ;
    char const *n = e->d_name ;
    if (n[0] != '.' || !n[1] || n[1] == '.') continue ;
    if (!folder_name_check(n + 1, strlen(n + 1), &why)) continue ;
    if (folder_is_inbox(n + 1, strlen(n + 1))) continue ;
    char sub[NAME_MAX + 8] ;
    snprintf(sub, sizeof sub, "%s/cur", n) ;
    if (fstatat(dirfd(d), sub, &st, 0) < 0 || !S_ISDIR(st.st_mode)) continue ;
    if (!stralloc_catb(sa, n + 1, strlen(n + 1) + 1)) { int er = errno ; closedir(d) ; errno = er ; return 0 ; }
  }
  int er = errno ;
  closedir(d) ;
  errno = er ;
  return !er ;
}

int folder_list_read (char const *maildir, folder_list *fl)
{
  stralloc dirs = STRALLOC_ZERO, subs = STRALLOC_ZERO ;
  int ok = 0 ;
  genalloc_setlen(struct folder_entry, &fl->entries, 0) ;
  fl->names.len = 0 ;
  if (!read_folders(maildir, &dirs) || !subs_read(maildir, &subs)) goto end ;
  if (!entry_add(fl, "INBOX", 5, FOLDER_INBOX)) goto end ;
  for (size_t off = 0 ; off < dirs.len ; off += strlen(dirs.s + off) + 1)
    if (!entry_add(fl, dirs.s + off, strlen(dirs.s + off), 0)) goto end ;
  /* implied parents */
  for (size_t off = 0 ; off < dirs.len ; off += strlen(dirs.s + off) + 1)
  {
    char const *n = dirs.s + off ;
    for (size_t k = 0 ; n[k] ; k++)
      if (n[k] == FOLDER_DELIM && !(k == 5 && !strncmp(n, "INBOX", 5)) && list_find(fl, n, k) < 0 && !entry_add(fl, n, k, FOLDER_NOSELECT)) goto end ;
  }
  for (size_t off = 0 ; off < subs.len ; off += strlen(subs.s + off) + 1)
  {
    char const *n = subs.s + off ;
    ssize_t i = list_find(fl, n, strlen(n)) ;
    if (i >= 0) folder_entry(fl, i)->attrs |= FOLDER_SUBSCRIBED ;
    else if (!entry_add(fl, n, strlen(n), FOLDER_SUBSCRIBED | FOLDER_NONEXISTENT | FOLDER_NOSELECT)) goto end ;
  }
  list_sort(fl) ;
  size_t n = folder_list_len(fl) ;
  for (size_t i = 0 ; i < n ; i++)
  {
    struct folder_entry *e = folder_entry(fl, i) ;
    char const *name = fl->names.s + e->name ;
    int children = 0 ;
    for (size_t j = 0 ; j < n && !children ; j++)
    {
      struct folder_entry const *c = folder_entry(fl, j) ;
      if (!(c->attrs & FOLDER_NONEXISTENT) && c->len > e->len && fl->names.s[c->name + e->len] == FOLDER_DELIM && !memcmp(fl->names.s + c->name, name, e->len)) children = 1 ;
    }
    if (!(e->attrs & FOLDER_NONEXISTENT)) e->attrs |= children ? FOLDER_HASCHILDREN : FOLDER_HASNOCHILDREN ;
    if (!(e->attrs & FOLDER_NOSELECT)) e->attrs |= folder_specialuse(name, e->len) ;
  }
  ok = 1 ;
 end:
  {
    int e = errno ;
    stralloc_free(&dirs) ;
    stralloc_free(&subs) ;
    errno = e ;
  }
  return ok ;
}

void folder_list_free (folder_list *fl)
{
  genalloc_free(struct folder_entry, &fl->entries) ;
  stralloc_free(&fl->names) ;
}

int folder_attrs_fmt (uint32_t attrs, int extended, stralloc *out)
{
  static struct { uint32_t bit ; char const *text ; } const t[] =
  {
    { FOLDER_HASCHILDREN, "\\HasChildren" }, { FOLDER_HASNOCHILDREN, "\\HasNoChildren" },
    { FOLDER_SENT, "\\Sent" }, { FOLDER_DRAFTS, "\\Drafts" }, { FOLDER_TRASH, "\\Trash" },
    { FOLDER_JUNK, "\\Junk" }, { FOLDER_ARCHIVE, "\\Archive" },
  } ;
  size_t start = out->len ;
  int first = 1 ;
#define ATTR(s) do { if (!first && !stralloc_catb(out, " ", 1)) goto nomem ; if (!stralloc_cats(out, s)) goto nomem ; first = 0 ; } while (0)
  if (extended && attrs & FOLDER_NONEXISTENT) ATTR("\\NonExistent") ;
  else if (attrs & FOLDER_NOSELECT) ATTR("\\Noselect") ;
  if (extended && attrs & FOLDER_SUBSCRIBED) ATTR("\\Subscribed") ;
  for (size_t i = 0 ; i < sizeof t / sizeof *t ; i++) if (attrs & t[i].bit) ATTR(t[i].text) ;
#undef ATTR
  return 1 ;
 nomem:
  out->len = start ;
  return 0 ;
}

/* ---------- changes ---------- */

static int exists (char const *path)
{
  struct stat st ;
  return lstat(path, &st) == 0 ;
}

/* whether a folder ".NAME.<something>" is there */
static int has_children (char const *maildir, char const *canon)
{
  stralloc dirs = STRALLOC_ZERO ;
  size_t len = strlen(canon) ;
  int r = 0 ;
  if (!read_folders(maildir, &dirs)) return -1 ;
  for (size_t off = 0 ; off < dirs.len && !r ; off += strlen(dirs.s + off) + 1)
    if (!strncmp(dirs.s + off, canon, len) && dirs.s[off + len] == FOLDER_DELIM) r = 1 ;
  stralloc_free(&dirs) ;
  return r ;
}

/* a complete Maildir under a temporary name, renamed to path (not replacing) */
static int make_folder (char const *maildir, char const *path)
{
  stralloc tmp = STRALLOC_ZERO, uniq = STRALLOC_ZERO ;
  size_t l = 0 ;
  int ok = 0 ;
  if (!maildir_unique(&uniq) || !stralloc_cats(&tmp, maildir) || !stralloc_cats(&tmp, "/..creating.")
   || !stralloc_catb(&tmp, uniq.s, uniq.len) || !stralloc_0(&tmp)) goto end ;
  l = tmp.len - 1 ;
  if (!maildir_make(tmp.s)) goto end ;
  tmp.len = l ;
  if (!stralloc_cats(&tmp, "/maildirfolder") || !stralloc_0(&tmp)) goto end ;
  int fd = open(tmp.s, O_WRONLY | O_CREAT | O_CLOEXEC, 0600) ;
  if (fd < 0) goto end ;
  fd_close(fd) ;
  tmp.s[l] = 0 ;
  if (renameat2(AT_FDCWD, tmp.s, AT_FDCWD, path, RENAME_NOREPLACE) < 0) goto end ;
  ok = 1 ;
 end:
  {
    int e = errno ;
    if (!ok && l)
    {
      static char const *const sub[] = { "/maildirfolder", "/tmp", "/new", "/cur", "" } ;
      stralloc p = STRALLOC_ZERO ;
      tmp.s[l] = 0 ;
      for (size_t i = 0 ; i < 5 ; i++)
      {
        p.len = 0 ;
        if (!stralloc_cats(&p, tmp.s) || !stralloc_cats(&p, sub[i]) || !stralloc_0(&p)) break ;
        if (i ? rmdir(p.s) : unlink(p.s)) { }
      }
      stralloc_free(&p) ;
    }
    stralloc_free(&tmp) ;
    stralloc_free(&uniq) ;
    errno = e ;
  }
  return ok ;
}

/* create the folders of canon's parents (leaf too if leaf); 1, 0 */
static int create_levels (char const *maildir, char const *canon, int leaf, char const **why)
{
  stralloc path = STRALLOC_ZERO, part = STRALLOC_ZERO ;
  size_t len = strlen(canon) ;
  int ok = 0 ;
  for (size_t k = 1 ; k <= len ; k++)
  {
    if (k < len && canon[k] != FOLDER_DELIM) continue ;
    if (k == len && !leaf) break ;
    part.len = 0 ;
    if (!stralloc_catb(&part, canon, k) || !stralloc_0(&part)) { *why = 0 ; goto end ; }
    if (!strcmp(part.s, "INBOX")) continue ;
    if (!dirname_of(maildir, part.s, &path)) { *why = 0 ; goto end ; }
    if (make_folder(maildir, path.s)) continue ;
    if (errno == EEXIST || errno == ENOTEMPTY)
    {
      if (k == len) { errno = EEXIST ; *why = "mailbox exists" ; goto end ; }
      continue ;
    }
    *why = 0 ;
    goto end ;
  }
  ok = 1 ;
 end:
  {
    int e = errno ;
    stralloc_free(&path) ;
    stralloc_free(&part) ;
    errno = e ;
  }
  return ok ;
}

int folder_create (char const *maildir, char const *s, size_t len, char const **why)
{
  stralloc c = STRALLOC_ZERO ;
  int ok = 0 ;
  if (len > 1 && s[len - 1] == FOLDER_DELIM) len-- ;
  if (!folder_name_canon(s, len, &c, why)) goto end ;
  if (!strcmp(c.s, "INBOX")) { errno = EEXIST ; *why = "mailbox exists" ; goto end ; }
  ok = create_levels(maildir, c.s, 1, why) ;
 end:
  {
    int e = errno ;
    stralloc_free(&c) ;
    errno = e ;
  }
  return ok ;
}

/* rm -r of a folder directory, depth-limited, no symlinks followed */
static int rmtree (int parent, char const *name, unsigned depth)
{
  if (unlinkat(parent, name, 0) == 0 || errno == ENOENT) return 1 ;
  if (errno != EISDIR && errno != EPERM) return 0 ;
  if (!depth) return (errno = ELOOP, 0) ;
  int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) ;
  if (fd < 0) return 0 ;
  DIR *d = fdopendir(fd) ;
  if (!d) { int e = errno ; fd_close(fd) ; errno = e ; return 0 ; }
  int ok = 1 ;
  for (;;)
  {
    errno = 0 ;
    struct dirent *e = readdir(d) ;
    if (!e) { if (errno) ok = 0 ; break ; }
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue ;
    if (!rmtree(dirfd(d), e->d_name, depth - 1)) { ok = 0 ; break ; }
  }
  int e = errno ;
  closedir(d) ;
  if (ok && unlinkat(parent, name, AT_REMOVEDIR) < 0) { e = errno ; ok = 0 ; }
  errno = e ;
  return ok ;
}

int folder_delete (char const *maildir, char const *s, size_t len, char const **why)
{
  stralloc c = STRALLOC_ZERO, path = STRALLOC_ZERO, gone = STRALLOC_ZERO, uniq = STRALLOC_ZERO ;
  int ok = 0 ;
  if (!folder_name_canon(s, len, &c, why)) goto end ;
  *why = 0 ;
  if (!strcmp(c.s, "INBOX")) { errno = EPERM ; *why = "INBOX can't be deleted" ; goto end ; }
  if (!dirname_of(maildir, c.s, &path)) goto end ;
  if (!exists(path.s))
  {
    int r = has_children(maildir, c.s) ;
    if (r < 0) goto end ;
    if (r) { errno = ENOTEMPTY ; *why = "mailbox has children and is not selectable: delete them first" ; }
    else { errno = ENOENT ; *why = "no such mailbox" ; }
    goto end ;
  }
  if (!maildir_unique(&uniq) || !stralloc_catb(&gone, "..deleted.", 10) || !stralloc_catb(&gone, uniq.s, uniq.len) || !stralloc_0(&gone)) goto end ;
  int dfd = open(maildir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (dfd < 0) goto end ;
  if (renameat(dfd, path.s + strlen(maildir) + 1, dfd, gone.s) < 0)
  {
    int e = errno ;
    fd_close(dfd) ;
    errno = e ;
    if (errno == ENOENT) *why = "no such mailbox" ;
    goto end ;
  }
  /* gone from the list already: leftovers of a failed removal are invisible */
  if (!rmtree(dfd, gone.s, RMTREE_DEPTH)) { }
  fd_close(dfd) ;
  ok = 1 ;
 end:
  {
    int e = errno ;
    stralloc_free(&c) ;
    stralloc_free(&path) ;
    stralloc_free(&gone) ;
    stralloc_free(&uniq) ;
    errno = e ;
  }
  return ok ;
}

/* move every message of INBOX into the folder at path */
static int move_inbox (char const *maildir, char const *path)
{
  static char const *const sub[] = { "new", "cur" } ;
  stralloc target = STRALLOC_ZERO, src = STRALLOC_ZERO ;
  int ok = 0, dst = -1 ;
  if (!stralloc_cats(&target, path) || !stralloc_cats(&target, "/cur") || !stralloc_0(&target)) goto end ;
  dst = open(target.s, O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (dst < 0) goto end ;
  for (int k = 0 ; k < 2 ; k++)
  {
    src.len = 0 ;
    if (!stralloc_cats(&src, maildir) || !stralloc_catb(&src, "/", 1) || !stralloc_cats(&src, sub[k]) || !stralloc_0(&src)) goto end ;
    int sfd = open(src.s, O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
    if (sfd < 0) goto end ;
    DIR *d = fdopendir(sfd) ;
    if (!d) { int e = errno ; fd_close(sfd) ; errno = e ; goto end ; }
    for (;;)
    {
      errno = 0 ;
      struct dirent *e = readdir(d) ;
      if (!e) break ;
      if (e->d_name[0] == '.') continue ;
      target.len = 0 ;
      if (!stralloc_cats(&target, e->d_name) || (!k && !strstr(e->d_name, ":2,") && !stralloc_cats(&target, ":2,")) || !stralloc_0(&target)) break ;
      if (renameat(dirfd(d), e->d_name, dst, target.s) < 0 && errno != ENOENT) break ;
      errno = 0 ;
    }
    int er = errno ;
    closedir(d) ;
    if (er) { errno = er ; goto end ; }
  }
  ok = fsync(dst) == 0 ;
 end:
  {
    int e = errno ;
    if (dst >= 0) fd_close(dst) ;
    stralloc_free(&target) ;
    stralloc_free(&src) ;
    errno = e ;
  }
  return ok ;
}

int folder_rename (char const *maildir, char const *from, size_t fromlen, char const *to, size_t tolen, char const **why)
{
  stralloc f = STRALLOC_ZERO, t = STRALLOC_ZERO, fp = STRALLOC_ZERO, tp = STRALLOC_ZERO, dirs = STRALLOC_ZERO, name = STRALLOC_ZERO ;
  int ok = 0 ;
  if (!folder_name_canon(from, fromlen, &f, why) || !folder_name_canon(to, tolen, &t, why)) goto end ;
  *why = 0 ;
  if (!strcmp(t.s, "INBOX")) { errno = EEXIST ; *why = "mailbox exists" ; goto end ; }
  if (!strncmp(t.s, f.s, f.len) && (t.len == f.len || t.s[f.len] == FOLDER_DELIM) && strcmp(f.s, "INBOX"))
  { errno = EINVAL ; *why = "a mailbox can't be renamed into itself" ; goto end ; }
  if (!dirname_of(maildir, t.s, &tp)) goto end ;
  {
    int r = has_children(maildir, t.s) ;
    if (r < 0) goto end ;
    if (r || exists(tp.s)) { errno = EEXIST ; *why = "mailbox exists" ; goto end ; }
  }
  if (!strcmp(f.s, "INBOX"))
  {
    if (!create_levels(maildir, t.s, 1, why)) goto end ;
    ok = move_inbox(maildir, tp.s) ;
    goto end ;
  }
  if (!dirname_of(maildir, f.s, &fp) || !read_folders(maildir, &dirs)) goto end ;
  int there = exists(fp.s), children = 0 ;
  for (size_t off = 0 ; off < dirs.len ; off += strlen(dirs.s + off) + 1)
    if (!strncmp(dirs.s + off, f.s, f.len) && dirs.s[off + f.len] == FOLDER_DELIM) children = 1 ;
  if (!there && !children) { errno = ENOENT ; *why = "no such mailbox" ; goto end ; }
  if (!create_levels(maildir, t.s, 0, why)) goto end ;
  if (there && renameat2(AT_FDCWD, fp.s, AT_FDCWD, tp.s, RENAME_NOREPLACE) < 0)
  {
    if (errno == EEXIST) *why = "mailbox exists" ;
    goto end ;
  }
  for (size_t off = 0 ; off < dirs.len ; off += strlen(dirs.s + off) + 1)
  {
    char const *d = dirs.s + off ;
    if (strncmp(d, f.s, f.len) || d[f.len] != FOLDER_DELIM) continue ;
    name.len = 0 ;
    if (!stralloc_cats(&name, t.s) || !stralloc_cats(&name, d + f.len) || !stralloc_0(&name)) goto end ;
    if (name.len - 1 > FOLDER_NAMEMAX) { errno = ENAMETOOLONG ; *why = "a child's new name would be too long" ; goto end ; }
    if (!dirname_of(maildir, d, &fp) || !dirname_of(maildir, name.s, &tp)) goto end ;
    if (renameat2(AT_FDCWD, fp.s, AT_FDCWD, tp.s, RENAME_NOREPLACE) < 0 && errno != ENOENT) goto end ;
  }
  ok = 1 ;
 end:
  {
    int e = errno ;
    stralloc_free(&f) ; stralloc_free(&t) ; stralloc_free(&fp) ; stralloc_free(&tp) ;
    stralloc_free(&dirs) ; stralloc_free(&name) ;
    errno = e ;
  }
  return ok ;
}

int folder_create_defaults (char const *maildir, char const **why)
{
  static char const *const names[] = { "Sent", "Drafts", "Trash", "Junk", "Archive" } ;
  stralloc path = STRALLOC_ZERO ;
  int ok = 1 ;
  for (size_t i = 0 ; ok && i < sizeof names / sizeof *names ; i++)
  {
    if (!dirname_of(maildir, names[i], &path)) { *why = 0 ; ok = 0 ; break ; }
    if (exists(path.s)) continue ;
    if (!make_folder(maildir, path.s))
    {
      if (errno == EEXIST || errno == ENOTEMPTY) continue ;
      *why = 0 ;
      ok = 0 ;
      break ;
    }
    ok = folder_subscribe(maildir, names[i], strlen(names[i]), 1, why) ;
  }
  int e = errno ;
  stralloc_free(&path) ;
  errno = e ;
  return ok ;
}
