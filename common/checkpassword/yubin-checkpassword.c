/* yubin-checkpassword: the checkpassword interface over <root>/users/passwd.
 *
 *   yubin-checkpassword [ -- ] prog...
 *   yubin-checkpassword -v
 *
 * Reads login\0password\0extra\0 (at most 512 bytes) on fd 3, checks the
 * password against the user's scrypt hash (password.h), and on success
 * becomes the user where it can and execs prog with USER, HOME and SHELL
 * set; with -v (verdict only) it exits 0 instead, as if prog were
 * /bin/true, without the exec (yubin-smtpd's AUTH).  Exit 1: bad
 * credentials; 2: misuse; 111: temporary trouble.
 * See yubin-checkpassword.8 for privileges (it may be installed setgid to
 * the group that owns users/passwd). */

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <skalibs/bytestr.h>
#include <skalibs/djbunix.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/types.h>

#include "passwd.h"
#include "password.h"
#include "control.h"
#include "exitcodes.h"
#include "root.h"
#include "ylog.h"

#define USAGE "yubin-checkpassword [ -- ] prog... | yubin-checkpassword -v"
#define EX_BAD 1
#define EX_MISUSE 2
#define INPUT_MAX 512

char const *PROG = "checkpassword" ;

/* A hash of a random password with the default parameters: verified when
 * the user is unknown or has no usable hash, so that a wrong user name
 * costs the same time as a wrong password. */
static char const dummy_hash[] = "$scrypt$ln=15,r=8,p=1$BE54nxuF0dKq8mos74Pd4w$NbwZ0qJGNga+4XuOKRGEf1rHW3z4w1INQj6v1MbwTfM" ;

static char up[INPUT_MAX + 1] ;
static size_t uplen = 0 ;
static stralloc text = STRALLOC_ZERO ;   /* users/passwd: holds hashes, wiped */

static void wipe (void)
{
  byte_zzero(up, sizeof(up)) ;
  if (text.s) byte_zzero(text.s, text.a) ;
}

static void die (int code, char const *s1, char const *s2) gccattr_noreturn ;
static void die (int code, char const *s1, char const *s2)
{
  wipe() ;
  if (s1) strerr_dief(code, s1, s2 ? s2 : "") ;
  _exit(code) ;
}

static void diesys (int code, char const *s1, char const *s2) gccattr_noreturn ;
static void diesys (int code, char const *s1, char const *s2)
{
  int e = errno ;
  wipe() ;
  errno = e ;
  strerr_diefusys(code, s1, s2 ? s2 : "") ;
}

/* Mail clients log in with the whole address: "user@domain" is the user
 * "user" when domain is one of the instance's local domains.  Returns the
 * length of the name to look up. */
static size_t login_local_part (char const *login, size_t len)
{
  size_t at = byte_rchr(login, len, '@') ;
  if (at >= len) return len ;
  char domain[256] ;
  size_t dlen = len - at - 1 ;
  if (!dlen || dlen >= sizeof(domain)) return len ;
  memcpy(domain, login + at + 1, dlen) ;
  domain[dlen] = 0 ;
  stralloc locals = STRALLOC_ZERO ;
  int r = control_readlist(&locals, "locals") ;
  if (r < 0) diesys(EX_TEMP, "read control/locals", 0) ;
  if (!r)
  {
    if (control_readline(&locals, "me", "localhost") < 0) diesys(EX_TEMP, "read control/me", 0) ;
    locals.len++ ;   /* keep the NUL: a one-entry list */
  }
  int local = control_domain_in_list(locals.s, locals.len, domain) ;
  stralloc_free(&locals) ;
  return local ? at : len ;
}

struct user
{
  char const *hash ;     /* NUL-terminated in text */
  uid_t uid ;
  gid_t gid ;
  char const *home ;     /* NUL-terminated in text */
  char name[PASSWD_NAME_MAX + 1] ;
} ;

/* Find login (any case) in text: 1 found (hash and home NUL-terminated
 * in place), 0 not found, -1 its line is malformed.  Only the login's own
 * line matters: a bad line of another user does not lock everyone out. */
static int find_user (char const *login, size_t loginlen, struct user *u)
{
  size_t pos = 0 ;
  while (pos < text.len)
  {
    struct passwd_entry e ;
    char const *why ;
    int r = passwd_parse_line(text.s, text.len, pos, &e, &why) ;
    pos += e.linelen + 1 ;
    if (!r) continue ;
    char const *l = text.s + e.line ;
    size_t namelen = r > 0 ? e.namelen : byte_chr(l, e.linelen, ':') ;
    if (namelen != loginlen || !case_equalb(l, loginlen, login)) continue ;
    if (r < 0) return -1 ;
    text.s[e.hash + e.hashlen] = 0 ;
    text.s[e.home + e.homelen] = 0 ;
    u->hash = text.s + e.hash ;
    u->home = text.s + e.home ;
    u->uid = e.uid ;
    u->gid = e.gid ;
    memcpy(u->name, l, loginlen) ;
    u->name[loginlen] = 0 ;
    case_lowerb(u->name, loginlen) ;
    return 1 ;
  }
  return 0 ;
}

int main (int argc, char const *const *argv)
{
  /* -v: the verdict only; "--" ends the options (prog may start with '-') */
  int verdict = 0 ;
  if (argc >= 2 && !strcmp(argv[1], "-v")) { verdict = 1 ; argc-- ; argv++ ; }
  else if (argc >= 2 && !strcmp(argv[1], "--")) { argc-- ; argv++ ; }
  if (verdict ? argc != 1 : argc < 2) strerr_dieusage(EX_MISUSE, USAGE) ;

  /* login\0password\0extra\0 on fd 3 */
  for (;;)
  {
    ssize_t r = read(3, up + uplen, sizeof(up) - uplen) ;
    if (r < 0)
    {
      if (errno == EINTR) continue ;
      diesys(errno == EBADF ? EX_MISUSE : EX_TEMP, "read fd 3", 0) ;
    }
    if (!r) break ;
    uplen += r ;
    if (uplen > INPUT_MAX) die(EX_MISUSE, "more than 512 bytes on fd 3", 0) ;
  }
  close(3) ;
  char const *login = up ;
  size_t loginlen = byte_chr(up, uplen, 0) ;
  if (loginlen >= uplen) die(EX_MISUSE, "malformed input on fd 3", 0) ;
  char const *pass = up + loginlen + 1 ;
  if (byte_chr(pass, uplen - loginlen - 1, 0) >= uplen - loginlen - 1) die(EX_MISUSE, "malformed input on fd 3", 0) ;

  stralloc fn = STRALLOC_ZERO ;
  if (!yubin_path(&fn, "users/passwd")) diesys(EX_TEMP, "allocate memory", 0) ;
  if (!openslurpclose(&text, fn.s)) diesys(EX_TEMP, "read ", fn.s) ;
  if (!stralloc_0(&text)) diesys(EX_TEMP, "allocate memory", 0) ;
  text.len-- ;

  loginlen = login_local_part(login, loginlen) ;
  struct user u = { .hash = 0 } ;
  int found = 0 ;
  if (loginlen && loginlen <= PASSWD_NAME_MAX && !memchr(login, ':', loginlen) && !memchr(login, '\n', loginlen))
  {
    found = find_user(login, loginlen, &u) ;
    if (found < 0) die(EX_TEMP, fn.s, ": malformed line for the user") ;
  }
  int real = found && u.hash[0] == '$' ;
  int ok = password_verify(real ? u.hash : dummy_hash, pass) ;
  if (ok < 0) diesys(EX_TEMP, "verify the password", 0) ;
  if (!real) ok = 0 ;
  if (!ok)
  {
    /* Seen by the operator and banwatch in the caller's log.  No ip=:
       the daemon that asked logs its own auth-fail with the client's
       address, and one failure must count once. */
    char uidfmt[UINT_FMT] ;
    uidfmt[uint_fmt(uidfmt, getuid())] = 0 ;
    loginlen = byte_chr(login, loginlen, 0) ;
    up[loginlen < 64 ? loginlen : 64] = 0 ;
    ylog("auth-fail", "user", login, "caller", uidfmt, (char *)0) ;
    byte_zzero(up, sizeof(up)) ;
    die(EX_BAD, 0, 0) ;
  }
  byte_zzero(up, sizeof(up)) ;

  /* Good credentials. */
  if (verdict)
  {
    /* the same answer as with /bin/true: root refuses a uid 0 user */
    if (!geteuid() && !u.uid) die(EX_TEMP, "refusing a verdict as root for a uid 0 user ", u.name) ;
    die(0, 0, 0) ;   /* wipes; nothing to run, no one to become */
  }

  /* Keep what we need, wipe the hashes. */
  stralloc home = STRALLOC_ZERO ;
  if (!stralloc_cats(&home, u.home) || !stralloc_0(&home)) diesys(EX_TEMP, "allocate memory", 0) ;
  uid_t uid = u.uid ;
  gid_t gid = u.gid ;
  wipe() ;
  stralloc_free(&text) ;
  stralloc_free(&fn) ;

  /* privileges: root becomes the user; setgid drops its group; anyone
     else stays who it is */
  if (!geteuid())
  {
    if (!uid) strerr_dief(EX_TEMP, "refusing to run ", argv[1], " as root for user ", u.name) ;
    if (setgroups(1, &gid) < 0) strerr_diefusys(EX_TEMP, "setgroups") ;
    if (setresgid(gid, gid, gid) < 0) strerr_diefusys(EX_TEMP, "setgid") ;
    if (setresuid(uid, uid, uid) < 0) strerr_diefusys(EX_TEMP, "setuid") ;
  }
  else
  {
    gid_t g = getgid() ;
    uid_t x = getuid() ;
    if (setresgid(g, g, g) < 0) strerr_diefusys(EX_TEMP, "drop the group") ;
    if (setresuid(x, x, x) < 0) strerr_diefusys(EX_TEMP, "drop the user") ;
  }
  if (chdir(home.s) < 0 && getuid() == uid) strerr_diefusys(EX_TEMP, "chdir to ", home.s) ;
  if (setenv("USER", u.name, 1) < 0 || setenv("HOME", home.s, 1) < 0 || setenv("SHELL", "/bin/false", 1) < 0)
    strerr_diefusys(EX_TEMP, "set the environment") ;
  stralloc_free(&home) ;
  execvp(argv[1], (char *const *)argv + 1) ;
  strerr_diefusys(EX_TEMP, "exec ", argv[1]) ;
}
