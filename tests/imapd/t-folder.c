/* t-folder: imapd/folder.c against folder.h.
 *
 * Modified UTF-7: RFC 3501's example, "&-", non-BMP (surrogate pairs),
 * round trips, invalid forms refused (bad base64, unterminated, encoded
 * ASCII, lone surrogates, padding bits, split runs, 8-bit, bad UTF-8).
 * Names: traversal and unsafe names refused with a reason, INBOX
 * canonical, paths.  Patterns: "*", "%", INBOX case, no blow-up.  On a
 * temporary Maildir: CREATE with parents, the list with \HasChildren,
 * \Noselect parents and special-use, DELETE (INBOX refused, a folder with
 * children becomes \Noselect, a \Noselect one refused), RENAME with
 * children and of INBOX, SUBSCRIBE, the first-login folders. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <skalibs/stralloc.h>

#include "maildir.h"
#include "imapd/folder.h"

char const *PROG = "t-folder" ;

static int failed ;

static void check (char const *name, int ok, char const *why)
{
  if (ok) printf("PASS folder-%s\n", name) ;
  else { printf("FAIL folder-%s: %s\n", name, why) ; failed = 1 ; }
  fflush(stdout) ;
}

static int dec (char const *m, char const *u)
{
  stralloc sa = STRALLOC_ZERO ;
  int ok = folder_mutf7_decode(m, strlen(m), &sa) && sa.len == strlen(u) && (!sa.len || !memcmp(sa.s, u, sa.len)) ;
  stralloc_free(&sa) ;
  return ok ;
}

static int enc (char const *u, char const *m)
{
  stralloc sa = STRALLOC_ZERO ;
  int ok = folder_mutf7_encode(u, strlen(u), &sa) && sa.len == strlen(m) && (!sa.len || !memcmp(sa.s, m, sa.len)) ;
  stralloc_free(&sa) ;
  return ok && dec(m, u) ;
}

static int bad (char const *m)
{
  stralloc sa = STRALLOC_ZERO ;
  int r = !folder_mutf7_decode(m, strlen(m), &sa) && errno == EINVAL && !sa.len ;
  stralloc_free(&sa) ;
  return r ;
}

static void test_mutf7 (void)
{
  check("mutf7-rfc", enc("~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"), "RFC 3501 example") ;
  check("mutf7-amp", enc("&", "&-") && enc("a&b&", "a&-b&-") && dec("&-&-", "&&"), "&-") ;
  check("mutf7-latin", enc("Entw\xc3\xbcrfe", "Entw&APw-rfe") && enc("\xc3\xa9t\xc3\xa9", "&AOk-t&AOk-"), "Entwürfe") ;
  check("mutf7-nonbmp", enc("\xf0\x9f\x93\xa7 Mail", "&2D3c5w- Mail") && enc("\xf0\x9f\x98\x80\xf0\x9f\x98\x81", "&2D3eANg93gE-"), "emoji (surrogate pairs)") ;
  check("mutf7-ascii", enc("Sent", "Sent") && enc("", ""), "plain ASCII") ;
  check("mutf7-bad", bad("&") && bad("&Jjo") && bad("&Jjo!-") && bad("&AGE-") && bad("&2D3-") && bad("&3gE-")
        && bad("&AOkA-") && bad("&AOl-") && bad("&AOk-&AOk-") && bad("a\xc3\xa9") && bad("a\tb"), "invalid mUTF-7 accepted") ;
  stralloc sa = STRALLOC_ZERO ;
  check("mutf7-bad-utf8", !folder_mutf7_encode("\xc0\xaf", 2, &sa) && !folder_mutf7_encode("\xed\xa0\x80", 3, &sa)
        && !folder_mutf7_encode("\xf4\x90\x80\x80", 4, &sa) && !folder_mutf7_encode("\xe5\x8f", 2, &sa) && !sa.len, "bad UTF-8 accepted") ;
  stralloc_free(&sa) ;
}

static int refused (char const *name, char const *wanted)
{
  char const *why = 0 ;
  int r = !folder_name_check(name, strlen(name), &why) && why && (!wanted || strstr(why, wanted)) ;
  if (!r) printf("# %s: %s\n", name, why ? why : "accepted") ;
  return r ;
}

static void test_names (void)
{
  char const *why ;
  char longname[300] ;
  memset(longname, 'a', 255) ;
  longname[255] = 0 ;
  check("name-ok", folder_name_check("Sent", 4, &why) && folder_name_check("A.B.C", 5, &why) && folder_name_check("Entw&APw-rfe", 12, &why)
        && folder_name_check("a b~c#", 6, &why), "good names refused") ;
  check("name-traversal", refused("..", "empty") && refused("../x", 0) && refused("a/../../etc", "/") && refused("/etc", "/")
        && refused(".hidden", "empty") && refused("a..b", "empty") && refused("a.", "empty") && refused(".", "empty"), "traversal accepted") ;
  check("name-unsafe", refused("a\tb", "control") && refused("a\x7f", "control") && refused("", "empty") && refused(longname, "long")
        && refused("&AAo-x", "control") && refused("caf\xc3\xa9", "UTF-7") && refused("a&b", "UTF-7"), "unsafe name accepted") ;
  check("name-nul", !folder_name_check("a\0b", 3, &why), "NUL accepted") ;
  stralloc sa = STRALLOC_ZERO ;
  check("name-inbox", folder_name_canon("inbox", 5, &sa, &why) && !strcmp(sa.s, "INBOX") && folder_name_canon("InBox.x", 7, &sa, &why)
        && !strcmp(sa.s, "INBOX.x") && folder_name_canon("INBOXes", 7, &sa, &why) && !strcmp(sa.s, "INBOXes") && folder_is_inbox("iNbOx", 5), "INBOX case") ;
  check("name-path", folder_path("/m", "inbox", 5, &sa, &why) && !strcmp(sa.s, "/m") && folder_path("/m", "A.B", 3, &sa, &why) && !strcmp(sa.s, "/m/.A.B")
        && !folder_path("/m", "../x", 4, &sa, &why), "paths") ;
  stralloc_free(&sa) ;
}

static int m (char const *p, char const *n) { return folder_match(p, strlen(p), n, strlen(n)) ; }

static void test_patterns (void)
{
  check("match-star", m("*", "A.B.C") && m("A*", "A.B") && m("*C", "A.B.C") && !m("B*", "A.B") && m("*", "") , "*") ;
  check("match-percent", m("%", "Sent") && !m("%", "A.B") && m("A.%", "A.B") && !m("A.%", "A.B.C") && m("%.%.C", "A.B.C") && m("A%", "A"), "%") ;
  check("match-literal", m("Sent", "Sent") && !m("Sent", "sent") && !m("Sen", "Sent"), "literal") ;
  check("match-inbox", m("inbox", "INBOX") && m("Inbox.%", "INBOX.x") && !m("inboxes", "INBOXes") && m("INBOX*", "INBOX.a.b"), "INBOX case") ;
  char name[1001], pat[200] ;
  memset(name, 'a', 1000) ; name[1000] = 0 ;
  for (int i = 0 ; i < 100 ; i++) { pat[2 * i] = '*' ; pat[2 * i + 1] = 'a' ; }
  pat[199] = 'b' ;
  check("match-blowup", !folder_match(pat, 200, name, 1000), "pathological pattern") ;
}

static ssize_t find (folder_list const *fl, char const *name)
{
  for (size_t i = 0 ; i < folder_list_len(fl) ; i++) if (!strcmp(folder_entry_name(fl, i), name)) return (ssize_t)i ;
  return -1 ;
}

static uint32_t attrs (char const *md, char const *name)
{
  folder_list fl = FOLDER_LIST_ZERO ;
  uint32_t a = 0xffffffff ;
  if (folder_list_read(md, &fl))
  {
    ssize_t i = find(&fl, name) ;
    a = i >= 0 ? folder_entry(&fl, i)->attrs : 0 ;
  }
  folder_list_free(&fl) ;
  return a ;
}

static int isdir (char const *md, char const *sub)
{
  char p[1024] ;
  struct stat st ;
  snprintf(p, sizeof p, "%s/%s", md, sub) ;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode) ;
}

static void test_changes (char const *md)
{
  char const *why = 0 ;
  int ok = folder_create(md, "A.B.C", 5, &why) ;
  check("create-parents", ok && isdir(md, ".A/cur") && isdir(md, ".A.B/cur") && isdir(md, ".A.B.C/new"), "parents not made") ;
  ok = !folder_create(md, "A.B.C", 5, &why) && errno == EEXIST && why && !strcmp(why, "mailbox exists") ;
  check("create-exists", ok, "second CREATE") ;
  check("create-inbox", !folder_create(md, "inbox", 5, &why) && errno == EEXIST, "CREATE INBOX") ;
  check("create-trailing", folder_create(md, "T.", 2, &why) && isdir(md, ".T/cur"), "trailing delimiter") ;
  check("create-bad", !folder_create(md, "../../x", 7, &why) && why && !isdir(md, "../../x"), "traversal created") ;
  check("create-utf7", folder_create(md, "Entw&APw-rfe", 12, &why) && isdir(md, ".Entw&APw-rfe/cur"), "mUTF-7 name") ;

  folder_list fl = FOLDER_LIST_ZERO ;
  ok = folder_list_read(md, &fl) ;
  check("list", ok && folder_list_len(&fl) == 6 && !strcmp(folder_entry_name(&fl, 0), "INBOX") && find(&fl, "A.B") >= 0, "list") ;
  folder_list_free(&fl) ;
  check("list-children", attrs(md, "A") & FOLDER_HASCHILDREN && attrs(md, "A.B.C") & FOLDER_HASNOCHILDREN
        && attrs(md, "INBOX") & FOLDER_HASNOCHILDREN, "children attributes") ;

  check("delete-inbox", !folder_delete(md, "INBOX", 5, &why) && errno == EPERM, "INBOX deleted") ;
  ok = folder_delete(md, "A.B", 3, &why) ;
  uint32_t a = attrs(md, "A.B") ;
  check("delete-with-children", ok && !isdir(md, ".A.B") && isdir(md, ".A.B.C") && a & FOLDER_NOSELECT && a & FOLDER_HASCHILDREN, "\\Noselect parent") ;
  check("delete-noselect", !folder_delete(md, "A.B", 3, &why) && errno == ENOTEMPTY, "\\Noselect with children deleted") ;
  check("delete-missing", !folder_delete(md, "Nope", 4, &why) && errno == ENOENT, "missing deleted") ;
  ok = folder_delete(md, "T", 1, &why) ;
  check("delete", ok && !isdir(md, ".T") && attrs(md, "T") == 0, "DELETE") ;

  ok = folder_rename(md, "A", 1, "Z", 1, &why) ;
  check("rename-children", ok && isdir(md, ".Z/cur") && isdir(md, ".Z.B.C/cur") && !isdir(md, ".A") && !isdir(md, ".A.B.C"), "RENAME with children") ;
  check("rename-exists", folder_create(md, "Y", 1, &why) && !folder_rename(md, "Y", 1, "Z", 1, &why) && errno == EEXIST, "RENAME onto existing") ;
  check("rename-into-self", !folder_rename(md, "Z", 1, "Z.Q", 3, &why) && errno == EINVAL, "RENAME into itself") ;
  check("rename-missing", !folder_rename(md, "Nope", 4, "Q", 1, &why) && errno == ENOENT, "RENAME of nothing") ;

  /* INBOX: its messages move, INBOX stays */
  int fd = open("/dev/null", 0) ;
  ok = fd >= 0 && maildir_deliver(md, "Subject: a\n\nx\n", 14, fd, 0) && maildir_deliver(md, "Subject: b\n\nx\n", 14, fd, 0) ;
  if (fd >= 0) close(fd) ;
  ok = ok && folder_rename(md, "INBOX", 5, "Old", 3, &why) ;
  char p[1024] ;
  snprintf(p, sizeof p, "%s/.Old/cur", md) ;
  int moved = 0 ;
  {
    char cmd[4096] ;
    snprintf(cmd, sizeof cmd, "test $(ls '%s' | wc -l) = 2 && test $(ls '%s/new' '%s/cur' | grep -vc :$) -le 1", p, md, md) ;
    moved = system(cmd) == 0 ;
  }
  check("rename-inbox", ok && moved && isdir(md, "cur"), "RENAME INBOX") ;

  ok = folder_subscribe(md, "Z", 1, 1, &why) && folder_subscribe(md, "Gone", 4, 1, &why) && folder_subscribe(md, "Z", 1, 1, &why) ;
  a = attrs(md, "Gone") ;
  check("subscribe", ok && attrs(md, "Z") & FOLDER_SUBSCRIBED && a & FOLDER_NONEXISTENT && a & FOLDER_SUBSCRIBED, "SUBSCRIBE") ;
  ok = folder_subscribe(md, "Z", 1, 0, &why) ;
  check("unsubscribe", ok && !(attrs(md, "Z") & FOLDER_SUBSCRIBED) && !folder_subscribe(md, "a/b", 3, 1, &why), "UNSUBSCRIBE") ;

  ok = folder_create_defaults(md, &why) && folder_create_defaults(md, &why) ;
  check("defaults", ok && attrs(md, "Sent") & FOLDER_SENT && attrs(md, "Drafts") & FOLDER_DRAFTS && attrs(md, "Trash") & FOLDER_TRASH
        && attrs(md, "Junk") & FOLDER_JUNK && attrs(md, "Archive") & FOLDER_ARCHIVE && attrs(md, "Sent") & FOLDER_SUBSCRIBED, "first-login folders") ;
  stralloc sa = STRALLOC_ZERO ;
  ok = folder_attrs_fmt(attrs(md, "Sent"), 1, &sa) && stralloc_0(&sa) ;
  check("attrs-fmt", ok && !strcmp(sa.s, "\\Subscribed \\HasNoChildren \\Sent"), sa.s ? sa.s : "") ;
  sa.len = 0 ;
  ok = folder_attrs_fmt(attrs(md, "Z.B"), 0, &sa) && stralloc_0(&sa) ;
  check("attrs-noselect", ok && !strcmp(sa.s, "\\Noselect \\HasChildren"), sa.s) ;
  stralloc_free(&sa) ;
}

int main (void)
{
  char const *tmp = getenv("TMPDIR") ;
  char top[512], md[600] ;
  snprintf(top, sizeof top, "%s/t-folder.XXXXXX", tmp ? tmp : "/tmp") ;
  test_mutf7() ;
  test_names() ;
  test_patterns() ;
  if (!mkdtemp(top)) { printf("FAIL folder-setup: mkdtemp\n") ; return 1 ; }
  snprintf(md, sizeof md, "%s/Maildir", top) ;
  if (!maildir_make(md)) { printf("FAIL folder-setup: maildir_make\n") ; return 1 ; }
  test_changes(md) ;
  char cmd[700] ;
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", top) ;
  if (system(cmd)) { }
  return failed ;
}
