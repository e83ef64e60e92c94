/* imapd/folder: Maildir++ folders as IMAP mailboxes (imapd/README,
 * "Storage").
 *
 * Layout: INBOX is the Maildir itself (~/Maildir); every other mailbox
 * "A.B" is the directory "~/Maildir/.A.B" (a Maildir with a
 * "maildirfolder" file).  The hierarchy delimiter is "." (Courier's and
 * Dovecot's Maildir++ default): IMAP names map to directory names with no
 * translation but the leading ".".  IMAP names are kept as the client
 * sends them, in modified UTF-7 (RFC 3501 5.1.3), so the directory names
 * are what Courier and Dovecot write.  "INBOX" is case-insensitive, also
 * as the first component ("inbox.x" is "INBOX.x").
 *
 * Subscriptions: the file "subscriptions" in the Maildir, one IMAP name a
 * line (the format Dovecot 1.x wrote and 2.x still reads; a Dovecot 2
 * "V\t2" file is read too), replaced atomically.
 *
 * Errors: functions return 1 on success; 0 with errno set on a system
 * error, or 0 with errno EINVAL / EEXIST / ENOENT / EPERM / ENOTEMPTY and
 * *why a text for the NO response ("name has an empty component", ...).
 * *why is always set on failure (strerror-like for system errors is the
 * caller's business: *why is then 0). */
#ifndef YUBIN_IMAPD_FOLDER_H
#define YUBIN_IMAPD_FOLDER_H

#include <stddef.h>
#include <stdint.h>

#include <skalibs/genalloc.h>
#include <skalibs/stralloc.h>

#define FOLDER_DELIM '.'
#define FOLDER_NAMEMAX 254  /* bytes of an IMAP name: ".name" fits NAME_MAX */

/* ---------- modified UTF-7 ---------- */

/* Decode mUTF-7 s[0..len) into UTF-8, appended to out.  Returns 1, or 0
 * with errno EINVAL if s is not valid, canonical mUTF-7 (bad base64, a
 * shift sequence encoding printable ASCII or nothing ("&-" is "&"),
 * unpaired surrogates, non-zero padding bits, characters outside
 * 0x20-0x7e) or ENOMEM. */
extern int folder_mutf7_decode (char const *s, size_t len, stralloc *out) ;

/* Encode UTF-8 s[0..len) as mUTF-7, appended to out.  Returns 1, or 0
 * with errno EINVAL if s is not valid UTF-8 (overlongs, surrogates, >
 * U+10FFFF), or ENOMEM. */
extern int folder_mutf7_encode (char const *s, size_t len, stralloc *out) ;

/* ---------- names ---------- */

/* Whether s[0..len) (as received, mUTF-7) may name a mailbox: 1 to
 * FOLDER_NAMEMAX bytes, no NUL, no control characters, no "/", valid
 * mUTF-7, no empty component (no leading, trailing or doubled "."), so
 * neither "." nor ".." ever reaches the file system.  Returns 1, or 0
 * with *why set. */
extern int folder_name_check (char const *s, size_t len, char const **why) ;

/* Whether s[0..len) is INBOX (any case). */
extern int folder_is_inbox (char const *s, size_t len) ;

/* The canonical form of a checked name into out (NUL-terminated): a
 * first component "inbox" in any case becomes "INBOX". Returns 1, or 0
 * (ENOMEM, or EINVAL with *why: the name is checked). */
extern int folder_name_canon (char const *s, size_t len, stralloc *out, char const **why) ;

/* The directory of mailbox s[0..len) under the Maildir maildir into path
 * (NUL-terminated): maildir itself for INBOX, maildir/.NAME else.  The
 * name is checked first.  Returns 1, or 0 with *why. */
extern int folder_path (char const *maildir, char const *s, size_t len, stralloc *path, char const **why) ;

/* ---------- LIST patterns ---------- */

/* Whether name[0..nlen) matches pattern[0..plen): "*" matches anything,
 * "%" anything but the delimiter, other bytes themselves (a leading
 * "INBOX" of both compared case-insensitively).  O(plen * nlen), no
 * recursion. */
extern int folder_match (char const *pattern, size_t plen, char const *name, size_t nlen) ;

/* ---------- the folder list ---------- */

#define FOLDER_NOSELECT     0x0001 /* no directory: an implied parent */
#define FOLDER_HASCHILDREN  0x0002
#define FOLDER_HASNOCHILDREN 0x0004
#define FOLDER_SUBSCRIBED   0x0008
#define FOLDER_NONEXISTENT  0x0010 /* only subscribed, no such folder (LIST-EXTENDED) */
#define FOLDER_SENT         0x0100 /* SPECIAL-USE, RFC 6154 */
#define FOLDER_DRAFTS       0x0200
#define FOLDER_TRASH        0x0400
#define FOLDER_JUNK         0x0800
#define FOLDER_ARCHIVE      0x1000
#define FOLDER_INBOX        0x2000

struct folder_entry
{
  size_t name ;       /* offset in the list's names of the IMAP name (mUTF-7), NUL-terminated */
  size_t len ;
  uint32_t attrs ;    /* FOLDER_* */
} ;

typedef struct folder_list_s folder_list ;
struct folder_list_s
{
  genalloc entries ;  /* struct folder_entry, sorted by name, INBOX first */
  stralloc names ;
} ;
#define FOLDER_LIST_ZERO { .entries = GENALLOC_ZERO, .names = STRALLOC_ZERO }
#define folder_entry(fl, i) (genalloc_s(struct folder_entry, &(fl)->entries) + (i))
#define folder_entry_name(fl, i) ((fl)->names.s + folder_entry(fl, i)->name)
#define folder_list_len(fl) genalloc_len(struct folder_entry, &(fl)->entries)

/* Every mailbox of the Maildir maildir: INBOX, each ".NAME" directory
 * whose name passes folder_name_check and that holds cur/, implied
 * parents (\Noselect), subscribed names that do not exist
 * (FOLDER_NONEXISTENT | FOLDER_SUBSCRIBED), with children, subscription
 * and special-use attributes.  fl is emptied first.  Returns 1, or 0. */
extern int folder_list_read (char const *maildir, folder_list *fl) ;
extern void folder_list_free (folder_list *fl) ;

/* The attribute text of attrs for LIST: "\\Noselect \\HasChildren \\Sent"
 * (without the parentheses; FOLDER_SUBSCRIBED / NONEXISTENT only if
 * extended, FOLDER_INBOX never), appended to out.  Returns 1, 0 ENOMEM. */
extern int folder_attrs_fmt (uint32_t attrs, int extended, stralloc *out) ;

/* The SPECIAL-USE attribute (FOLDER_SENT ...) of a name, or 0: the
 * top-level "Sent", "Drafts", "Trash", "Junk", "Archive". */
extern uint32_t folder_specialuse (char const *s, size_t len) ;

/* ---------- changes ---------- */

/* CREATE s[0..len): its directory (a Maildir with "maildirfolder") and
 * those of its missing parents, each made complete under a temporary
 * name and renamed into place.  A trailing "." is ignored (RFC 3501).
 * EEXIST (why "mailbox exists") if it is there already (INBOX always).
 * Returns 1, or 0 with *why. */
extern int folder_create (char const *maildir, char const *s, size_t len, char const **why) ;

/* DELETE s[0..len): refuses INBOX (EPERM); a folder with children loses
 * its directory and messages and becomes an implied \Noselect parent
 * (RFC 3501 6.3.4); a \Noselect name with children is refused
 * (ENOTEMPTY); ENOENT if there is no such mailbox.  The directory is
 * first renamed out of the way ("..deleted.<unique>"), then removed.
 * Returns 1, or 0 with *why. */
extern int folder_delete (char const *maildir, char const *s, size_t len, char const **why) ;

/* RENAME from to: the folder and its children (".A" -> ".B", ".A.x" ->
 * ".B.x"); refuses an existing target (EEXIST), a missing source
 * (ENOENT), renaming into its own subtree (EINVAL), a target under INBOX
 * that is INBOX itself.  RENAME INBOX: creates the target and moves every
 * message of INBOX (new/ and cur/) into it; INBOX stays, empty, with its
 * children.  Returns 1, or 0 with *why. */
extern int folder_rename (char const *maildir, char const *from, size_t fromlen, char const *to, size_t tolen, char const **why) ;

/* SUBSCRIBE / UNSUBSCRIBE (the name is checked, not required to exist,
 * as RFC 3501 allows).  Returns 1, or 0 with *why. */
extern int folder_subscribe (char const *maildir, char const *s, size_t len, int on, char const **why) ;

/* First login: create Sent, Drafts, Trash, Junk and Archive if missing,
 * and subscribe the ones created.  Returns 1, or 0 with *why. */
extern int folder_create_defaults (char const *maildir, char const **why) ;

#endif
