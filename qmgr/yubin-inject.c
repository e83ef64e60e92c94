/* yubin-inject: the front door to the queue for local programs, with the
 * command lines of qmail-inject and of sendmail (cron, PHP's mail(), git
 * send-email, mailx).  Reads a message on stdin, adds Date:, Message-ID:
 * and From: when missing, removes Bcc:, takes the recipients from the
 * arguments and/or the header (-t), and queues it through common/qq.
 * See yubin-inject(8). */

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/buffer.h>
#include <skalibs/bytestr.h>
#include <skalibs/djbunix.h>
#include <skalibs/random.h>
#include <skalibs/sig.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/types.h>

#include "control.h"
#include "date822.h"
#include "exitcodes.h"
#include "qq.h"

#define LINEMAX 998                 /* RFC 5322 2.1.1, without the CRLF */
#define HEADERMAX (4 << 20)         /* the whole header section */

char const *PROG = "yubin-inject" ;

#define USAGE "[ -t | -h | -H ] [ -i ] [ -n ] [ -v ] [ -f sender ] [ -F fullname ] [ address ... ]"

static struct qq q = QQ_ZERO ;
static int printonly = 0 ;          /* -n: print the message, queue nothing */
static char boutbuf[4096] ;
static buffer bout = BUFFER_INIT(&fd_writev, 1, boutbuf, sizeof(boutbuf)) ;

static void die_nomem (void) gccattr_noreturn ;
static void die_perm (char const *s1, char const *s2) gccattr_noreturn ;

static void usage (void) gccattr_noreturn ;
static void usage (void)
{
  strerr_dien(EX_PERM, 4, PROG, ": usage: ", PROG, " " USAGE) ;
}

static void giveup (void)
{
  if (q.pid > 0) qq_abort(&q) ;
}

static void die_nomem (void)
{
  giveup() ;
  strerr_diefu1sys(EX_TEMP, "allocate memory") ;
}

static void die_perm (char const *s1, char const *s2)
{
  giveup() ;
  strerr_dief2x(EX_PERM, s1, s2) ;
}

static void cats (stralloc *sa, char const *s)
{
  if (!stralloc_cats(sa, s)) die_nomem() ;
}

static void catb (stralloc *sa, char const *s, size_t n)
{
  if (!stralloc_catb(sa, s, n)) die_nomem() ;
}

/* ---------- configuration ---------- */

static stralloc defaulthost = STRALLOC_ZERO ;
static stralloc defaultdomain = STRALLOC_ZERO ;
static stralloc plusdomain = STRALLOC_ZERO ;

static char const *env_first (char const *a, char const *b, char const *c, char const *d)
{
  char const *names[4] = { a, b, c, d } ;
  for (unsigned int i = 0 ; i < 4 ; i++)
  {
    char const *x = names[i] ? getenv(names[i]) : 0 ;
    if (x && *x) return x ;
  }
  return 0 ;
}

static void readcontrol (stralloc *sa, char const *envname, char const *file, char const *def)
{
  char const *x = getenv(envname) ;
  if (x && *x) { sa->len = 0 ; cats(sa, x) ; }
  else if (control_readline(sa, file, def) < 0) strerr_diefu2sys(EX_TEMP, "read control/", file) ;
  if (!sa->len) { sa->len = 0 ; cats(sa, def) ; }
  if (!stralloc_0(sa)) die_nomem() ;
  sa->len-- ;
}

static void config (void)
{
  stralloc me = STRALLOC_ZERO ;
  if (control_readline(&me, "me", "localhost") < 0) strerr_diefu1sys(EX_TEMP, "read control/me") ;
  if (!me.len) cats(&me, "localhost") ;
  if (!stralloc_0(&me)) die_nomem() ;
  readcontrol(&defaulthost, "QMAILDEFAULTHOST", "defaulthost", me.s) ;
  readcontrol(&defaultdomain, "QMAILDEFAULTDOMAIN", "defaultdomain", me.s) ;
  readcontrol(&plusdomain, "QMAILPLUSDOMAIN", "plusdomain", me.s) ;
  stralloc_free(&me) ;
}

/* ---------- addresses ---------- */

/* Complete an address as qmail does: "user" -> user@defaulthost,
 * "user@host+" -> user@host.plusdomain (defaulthost too may end with
 * '+'), "user@host" (no dot in host) -> user@host.defaultdomain.  The
 * result is appended to out, NUL-terminated. */
static void qualify (stralloc *out, char const *a, size_t n)
{
  size_t start = out->len ;
  size_t at = byte_rchr(a, n, '@') ;
  catb(out, a, n) ;
  if (at == n) { cats(out, "@") ; catb(out, defaulthost.s, defaulthost.len) ; }
  else if (at + 1 == n) catb(out, defaulthost.s, defaulthost.len) ;
  at = start + byte_rchr(out->s + start, out->len - start, '@') ;
  char const *host = out->s + at + 1 ;
  size_t hlen = out->len - at - 1 ;
  if (hlen && host[hlen - 1] == '+')
  {
    out->len-- ;
    cats(out, ".") ;
    catb(out, plusdomain.s, plusdomain.len) ;
  }
  else if (hlen && byte_chr(host, hlen, '.') == hlen && host[0] != '[')
  {
    cats(out, ".") ;
    catb(out, defaultdomain.s, defaultdomain.len) ;
  }
  if (!stralloc_0(out)) die_nomem() ;
}

/* An RFC 5322 address list (display names, comments, quoted strings,
 * groups, source routes), each address's addr-spec given to add(). */
typedef void add_func (char const *, size_t, void *) ;

static void addrlist (char const *s, size_t n, add_func *add, void *data)
{
  stralloc cur = STRALLOC_ZERO ;
  int inangle = 0, gotangle = 0 ;
  size_t i = 0 ;
  for (;;)
  {
    char c = i < n ? s[i] : ',' ;
    if (i >= n || ((c == ',' || c == ';') && !inangle))
    {
      if (cur.len) add(cur.s, cur.len, data) ;
      cur.len = 0 ; inangle = gotangle = 0 ;
      if (i >= n) break ;
      i++ ;
      continue ;
    }
    if (c == '(')
    {
      unsigned int depth = 0 ;
      for (; i < n ; i++)
      {
        if (s[i] == '\\') { i++ ; continue ; }
        if (s[i] == '(') depth++ ;
        else if (s[i] == ')' && !--depth) break ;
      }
      i++ ;
      continue ;
    }
    if (c == '"')
    {
      size_t k = i++ ;
      while (i < n && s[i] != '"') i += s[i] == '\\' ? 2 : 1 ;
      if (i < n) i++ ;
      if (i > n) i = n ;
      if (!gotangle) catb(&cur, s + k, i - k) ;
      continue ;
    }
    i++ ;
    if (gotangle) continue ;
    switch (c)
    {
      case '<' : cur.len = 0 ; inangle = 1 ; break ;
      case '>' : if (inangle) { inangle = 0 ; gotangle = 1 ; } break ;
      case ':' : cur.len = 0 ; break ;   /* a group's name, or the end of a source route */
      case ',' : break ;                  /* in a source route */
      case ' ' : case '\t' : case '\r' : case '\n' : break ;
      case '\\' : if (i < n) catb(&cur, s + i++, 1) ; break ;
      default : catb(&cur, &c, 1) ; break ;
    }
  }
  stralloc_free(&cur) ;
}

static stralloc rcpts = STRALLOC_ZERO ;   /* qualified, each NUL-terminated */
static size_t nrcpt = 0 ;
static stralloc tmp = STRALLOC_ZERO ;

static void add_rcpt (char const *a, size_t n, void *data)
{
  (void)data ;
  if (n == 2 && a[0] == '<' && a[1] == '>') return ;
  tmp.len = 0 ;
  qualify(&tmp, a, n) ;
  for (size_t i = 0 ; i < rcpts.len ; i += strlen(rcpts.s + i) + 1)
    if (!strcmp(rcpts.s + i, tmp.s)) return ;
  catb(&rcpts, tmp.s, tmp.len) ;
  nrcpt++ ;
}

static void add_first (char const *a, size_t n, void *data)
{
  stralloc *sa = data ;
  if (sa->len) return ;
  qualify(sa, a, n) ;
}

/* ---------- the header ---------- */

struct field { size_t pos, len ; int drop ; } ;
static struct field fields[4096] ;
static size_t nfields = 0 ;
static stralloc hdr = STRALLOC_ZERO ;   /* the header lines, LF-terminated */

/* The length of a field name at the start of s[0..n), followed by ':',
 * or 0 if this is not a header field. */
static size_t fieldname (char const *s, size_t n)
{
  size_t i = 0 ;
  while (i < n && s[i] > 32 && s[i] < 127 && s[i] != ':') i++ ;
  return i && i < n && s[i] == ':' ? i : 0 ;
}

static int field_is (struct field const *f, char const *name)
{
  size_t k = strlen(name) ;
  return f->len > k && hdr.s[f->pos + k] == ':' && !strncasecmp(hdr.s + f->pos, name, k) ;
}

static int has_field (char const *name)
{
  for (size_t i = 0 ; i < nfields ; i++) if (field_is(&fields[i], name)) return 1 ;
  return 0 ;
}

/* the field's value, unfolded, into sa */
static void field_value (struct field const *f, stralloc *sa)
{
  size_t start = f->pos + byte_chr(hdr.s + f->pos, f->len, ':') + 1 ;
  sa->len = 0 ;
  for (size_t i = start ; i < f->pos + f->len ; i++)
    if (hdr.s[i] != '\n') catb(sa, hdr.s + i, 1) ;
}

/* ---------- output: the queue, or stdout with -n ---------- */

static void put (char const *s, size_t n)
{
  if (printonly)
  {
    if (!buffer_putall(&bout, s, n, &(size_t){0})) strerr_diefu1sys(EX_TEMP, "write to stdout") ;
  }
  else qq_put(&q, s, n) ;
}

static void puts_ (char const *s)
{
  put(s, strlen(s)) ;
}

/* ---------- the message on stdin ---------- */

/* Reading: CRLF becomes LF, NUL bytes are refused, and unless -i a line
 * holding only "." ends the message (as sendmail).  The header section,
 * kept in hdr, ends with the first empty line or the first line that is
 * no header field; the body goes straight to put(). */
enum { ST_BOL, ST_MID, ST_CR, ST_DOT, ST_DOTCR } ;
static void finish_input (void) ;

static int dotends = 1 ;
static int inheader = 1 ;
static size_t linestart = 0 ;        /* in hdr: where the current line starts */
static stralloc firstbody = STRALLOC_ZERO ;   /* a non-header line that ended the header */
static stralloc bodybuf = STRALLOC_ZERO ;   /* body bytes not yet given to put() */
static int outopen = 0 ;             /* put() may be called */

static void header_end (void)
{
  inheader = 0 ;
}

/* a complete header line is hdr[linestart..hdr.len), '\n' included */
static void header_line (void)
{
  char const *s = hdr.s + linestart ;
  size_t n = hdr.len - linestart ;
  if (n == 1) { hdr.len = linestart ; header_end() ; return ; }   /* the empty line */
  if ((s[0] == ' ' || s[0] == '\t') && nfields)
  {
    fields[nfields-1].len += n ;
  }
  else if (fieldname(s, n))
  {
    if (nfields >= sizeof(fields) / sizeof(fields[0])) die_perm("too many header fields: ", "refusing the message") ;
    fields[nfields++] = (struct field){ .pos = linestart, .len = n, .drop = 0 } ;
  }
  else
  {
    catb(&firstbody, s, n) ;
    hdr.len = linestart ;
    header_end() ;
    return ;
  }
  if (hdr.len > HEADERMAX) die_perm("message header section is too large", "") ;
  linestart = hdr.len ;
}

static void emit (char c)
{
  if (inheader)
  {
    catb(&hdr, &c, 1) ;
    if (c == '\n') { header_line() ; return ; }
    if (hdr.len - linestart > LINEMAX)
    {
      char const *s = hdr.s + linestart ;
      size_t n = hdr.len - linestart ;
      if (s[0] == ' ' || s[0] == '\t' || fieldname(s, n))
        die_perm("header line longer than 998 bytes: ", "refusing the message") ;
      /* not a header field: the body starts here (without a header) */
      catb(&firstbody, s, n) ;
      hdr.len = linestart ;
      header_end() ;
    }
    return ;
  }
  catb(&bodybuf, &c, 1) ;
  if (outopen && bodybuf.len >= 8192) { put(bodybuf.s, bodybuf.len) ; bodybuf.len = 0 ; }
}

static void emit_s (char const *s, size_t n)
{
  for (size_t i = 0 ; i < n ; i++) emit(s[i]) ;
}

/* One pass over a chunk of stdin; returns 1 when a lone dot ended it. */
static int scan (char const *s, size_t n, int *state)
{
  for (size_t i = 0 ; i < n ; i++)
  {
    char c = s[i] ;
    if (!c) die_perm("message contains a NUL byte: ", "refusing it") ;
    for (;;)
    {
      switch (*state)
      {
        case ST_CR :
          *state = ST_MID ;
          if (c == '\n') { emit('\n') ; *state = ST_BOL ; break ; }
          emit('\r') ;
          continue ;
        case ST_DOT :
          if (c == '\n') return 1 ;
          if (c == '\r') { *state = ST_DOTCR ; break ; }
          emit('.') ;
          *state = ST_MID ;
          continue ;
        case ST_DOTCR :
          if (c == '\n') return 1 ;
          emit_s(".", 1) ;
          *state = ST_CR ;
          continue ;
        case ST_BOL :
          if (dotends && c == '.') { *state = ST_DOT ; break ; }
          *state = ST_MID ;
          continue ;
        default :
          if (c == '\r') { *state = ST_CR ; break ; }
          emit(c) ;
          if (c == '\n') *state = ST_BOL ;
          break ;
      }
      break ;
    }
  }
  return 0 ;
}

/* Read stdin until EOF or the lone dot; the header ends in hdr/fields,
 * the body, if the header ended, in obuf.  Returns with the body still
 * to be read when the header ended before EOF: body() goes on. */
static int state = ST_BOL ;
static int ended = 0 ;               /* a lone dot ended the message */
static int eof = 0 ;
static int finished = 0 ;
static char ibuf[65536] ;

/* until the header has ended (whole=0) or until the end (whole=1) */
static void read_input (int whole)
{
  while (!ended && !eof && (whole || inheader))
  {
    ssize_t r = fd_read(0, ibuf, sizeof(ibuf)) ;
    if (r < 0) { if (errno == EINTR) continue ; giveup() ; strerr_diefu1sys(EX_TEMP, "read the message") ; }
    if (!r) eof = 1 ;
    else if (scan(ibuf, r, &state)) ended = 1 ;
  }
  if (ended || eof) finish_input() ;
}

static void finish_input (void)
{
  if (finished) return ;
  finished = 1 ;
  if (!ended)
  {
    switch (state)
    {
      case ST_CR : emit('\n') ; break ;   /* a CR at the very end ends the line */
      case ST_MID : emit('\n') ; break ;
      default : break ;   /* ST_BOL; a final lone dot without its newline ends it too */
    }
  }
  if (inheader)
  {
    /* EOF inside the header: a last line without its newline */
    if (hdr.len > linestart) emit('\n') ;
    if (inheader) header_end() ;
  }
}

/* the body: what read_input() kept, then the rest of stdin */
static void body (void)
{
  outopen = 1 ;
  if (bodybuf.len) put(bodybuf.s, bodybuf.len) ;
  bodybuf.len = 0 ;
  read_input(1) ;
  if (bodybuf.len) put(bodybuf.s, bodybuf.len) ;
  bodybuf.len = 0 ;
}

/* ---------- main ---------- */

/* s without control characters (a newline in $QMAILUSER must not start a
 * header field of its own) */
static void cats_clean (stralloc *sa, char const *s)
{
  for (; *s ; s++) if ((unsigned char)*s >= 32 && *s != 127) catb(sa, s, 1) ;
}

static void user_and_host (stralloc *user, stralloc *name, stralloc *host, char const *fullname)
{
  struct passwd *pw = 0 ;
  char const *x = env_first("QMAILUSER", "MAILUSER", "USER", "LOGNAME") ;
  if (!x)
  {
    pw = getpwuid(getuid()) ;
    x = pw ? pw->pw_name : "anonymous" ;
  }
  cats_clean(user, x) ;
  if (!stralloc_0(user)) die_nomem() ;
  user->len-- ;
  x = fullname ? fullname : env_first("QMAILNAME", "MAILNAME", "NAME", 0) ;
  if (x) cats_clean(name, x) ;
  else
  {
    /* the account's full name, if the sender is the account */
    if (!pw) pw = getpwuid(getuid()) ;
    if (pw && pw->pw_gecos && !strcmp(pw->pw_name, user->s))
      catb(name, pw->pw_gecos, str_chr(pw->pw_gecos, ',')) ;
  }
  x = env_first("QMAILHOST", "MAILHOST", 0, 0) ;
  if (x) cats_clean(host, x) ;
  else catb(host, defaulthost.s, defaulthost.len) ;
}

/* "Full Name" as a quoted string if it needs one */
static void cat_phrase (stralloc *sa, char const *s, size_t n)
{
  int plain = 1 ;
  for (size_t i = 0 ; i < n ; i++)
    if (!(((unsigned char)s[i] >= 128) || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
       || (s[i] >= '0' && s[i] <= '9') || strchr(" !#$%&'*+-/=?^_`{|}~", s[i])))
      plain = 0 ;
  if (plain) { catb(sa, s, n) ; return ; }
  cats(sa, "\"") ;
  for (size_t i = 0 ; i < n ; i++)
  {
    if (s[i] == '\r' || s[i] == '\n') continue ;
    if (s[i] == '"' || s[i] == '\\') cats(sa, "\\") ;
    catb(sa, s + i, 1) ;
  }
  cats(sa, "\"") ;
}

static void queue (char const *sender, int verbose) ;

int main (int argc, char const *const *argv)
{
  int fromheader = 0, fromargs = 1, verbose = 0, sendmail ;
  char const *sender = 0, *fullname = 0 ;
  {
    char const *b = argc && argv[0] ? argv[0] : "" ;
    size_t k = str_rchr(b, '/') ;
    if (b[k]) b += k + 1 ;
    sendmail = !strcmp(b, "sendmail") ;
    if (sendmail) PROG = "sendmail" ;
  }
  /* a queue that refuses before reading everything (databytes) closes its
     end: its exit code says why, SIGPIPE would say nothing */
  if (!sig_ignore(SIGPIPE)) strerr_diefu1sys(EX_TEMP, "ignore SIGPIPE") ;
  /* options the getopt way: "-tif sender", "-fsender", "-oi"; "--" ends them */
  int i = 1 ;
  for (; i < argc ; i++)
  {
    char const *a = argv[i] ;
    if (a[0] != '-' || !a[1]) break ;
    if (!strcmp(a, "--")) { i++ ; break ; }
    for (size_t k = 1 ; a[k] ; k++)
    {
      char o = a[k] ;
      char const *arg = 0 ;
      if (strchr("fFrobBRVXCLOpe", o) || (sendmail && strchr("hN", o)) || o == 'd')
      {
        if (a[k+1]) arg = a + k + 1 ;
        else if (o == 'd') arg = "" ;   /* -d, -d0.1: debugging, ignored */
        else if (i + 1 < argc) arg = argv[++i] ;
        else usage() ;
      }
      switch (o)
      {
        case 't' : fromheader = 1 ; fromargs = 1 ; break ;
        case 'h' : if (sendmail) break ; fromheader = 1 ; fromargs = 0 ; break ;   /* sendmail: -h hops */
        case 'H' : fromheader = 1 ; fromargs = 1 ; break ;
        case 'a' : fromheader = 0 ; fromargs = 1 ; break ;
        case 'A' : break ;
        case 'i' : dotends = 0 ; break ;
        case 'n' : if (!sendmail) printonly = 1 ; break ;   /* sendmail: -n no aliases */
        case 'v' : verbose = 1 ; break ;
        case 'f' : case 'r' : sender = arg ; break ;
        case 'F' : fullname = arg ; break ;
        case 'o' : if (arg[0] == 'i' && !arg[1]) dotends = 0 ; break ;   /* -oi; -oem, -odi, -odb...: no-ops */
        case 'b' :
          if (!strcmp(arg, "m")) break ;
          die_perm("unsupported mode -b", arg) ;
        case 'q' : die_perm("no queue run here: ", "yubin's queue manager runs the queue") ;
        case 'I' : die_perm("no alias database: ", "-I is not supported") ;
        case 'B' : case 'N' : case 'R' : case 'V' : case 'X' : case 'C' : case 'L' : case 'O' :
        case 'p' : case 'e' : case 'd' : case 'U' : case 'G' : case 'm' : case 'x' :
          break ;   /* accepted and ignored */
        default :
          usage() ;
      }
      if (arg) break ;
    }
  }
  if (!sendmail) dotends = 0 ;   /* qmail-inject never stopped at a dot */
  if (!fromheader && i >= argc) usage() ;
  config() ;

  /* the header first: recipients, sender, what to add */
  read_input(0) ;

  if (fromargs)
    for (int k = i ; k < argc ; k++) addrlist(argv[k], strlen(argv[k]), &add_rcpt, 0) ;
  {
    stralloc v = STRALLOC_ZERO ;
    for (size_t k = 0 ; k < nfields ; k++)
    {
      struct field *f = &fields[k] ;
      int bcc = field_is(f, "Bcc") || field_is(f, "Resent-Bcc") ;
      if (bcc) f->drop = 1 ;
      if (fromheader && (bcc || field_is(f, "To") || field_is(f, "Cc")))
      {
        field_value(f, &v) ;
        addrlist(v.s, v.len, &add_rcpt, 0) ;
      }
    }
    stralloc_free(&v) ;
  }
  if (!nrcpt) die_perm("no recipients", fromheader ? " in To:, Cc: or Bcc:" : "") ;

  /* who sends */
  stralloc user = STRALLOC_ZERO, name = STRALLOC_ZERO, host = STRALLOC_ZERO ;
  stralloc from = STRALLOC_ZERO, env = STRALLOC_ZERO ;
  user_and_host(&user, &name, &host, fullname) ;
  int hasfrom = has_field("From") ;
  if (!hasfrom)
  {
    cats(&from, "From: ") ;
    if (name.len) { cat_phrase(&from, name.s, name.len) ; cats(&from, " <") ; }
    catb(&from, user.s, user.len) ; cats(&from, "@") ; catb(&from, host.s, host.len) ;
    cats(&from, name.len ? ">\n" : "\n") ;
  }
  if (sender)
  {
    if (*sender && strcmp(sender, "<>")) addrlist(sender, strlen(sender), &add_first, &env) ;
  }
  else
  {
    if (hasfrom)
    {
      stralloc v = STRALLOC_ZERO ;
      for (size_t k = 0 ; k < nfields ; k++)
        if (field_is(&fields[k], "From")) { field_value(&fields[k], &v) ; break ; }
      addrlist(v.s, v.len, &add_first, &env) ;
      stralloc_free(&v) ;
    }
    if (!env.len)
    {
      stralloc a = STRALLOC_ZERO ;
      catb(&a, user.s, user.len) ; cats(&a, "@") ; catb(&a, host.s, host.len) ;
      qualify(&env, a.s, a.len) ;
      stralloc_free(&a) ;
    }
  }
  if (!env.len && !stralloc_0(&env)) die_nomem() ;   /* the null sender */

  /* the queue */
  if (!printonly)
  {
    stralloc prog = STRALLOC_ZERO ;
    if (!qq_program(&prog)) die_nomem() ;
    /* the queue program logs on its fd 2 for the daemons' logs; a local
       caller (cron, PHP) would get that line with every message: it sees
       it with -v only (qmgr logs each new message with the caller's uid) */
    int saved = -1 ;
    if (!verbose)
    {
      int nul = open("/dev/null", O_WRONLY | O_CLOEXEC) ;
      if (nul < 0) strerr_diefu1sys(EX_TEMP, "open /dev/null") ;
      saved = fcntl(2, F_DUPFD_CLOEXEC, 3) ;
      if ((saved < 0 && errno != EBADF) || dup2(nul, 2) < 0) strerr_diefu1sys(EX_TEMP, "redirect fd 2") ;
      fd_close(nul) ;
    }
    int r = qq_open(&q, prog.s) ;
    int e = errno ;
    if (saved >= 0)
    {
      if (dup2(saved, 2) < 0) _exit(EX_TEMP) ;   /* no stderr left to say it on */
      fd_close(saved) ;
    }
    errno = e ;
    if (r < 0) strerr_diefu2sys(EX_TEMP, "run the queue program ", prog.s) ;
    stralloc_free(&prog) ;
  }
  for (size_t k = 0 ; k < nfields ; k++)
    if (!fields[k].drop) put(hdr.s + fields[k].pos, fields[k].len) ;
  if (!has_field("Date"))
  {
    char d[DATE822_LEN] ;
    date822_fmt(d, time(0)) ;
    puts_("Date: ") ; puts_(d) ; puts_("\n") ;
  }
  if (!has_field("Message-ID"))
  {
    char num[ULONG_FMT] ;
    char rnd[8], hex[17] ;
    char const *idhost = getenv("QMAILIDHOST") ;
    random_buf(rnd, sizeof(rnd)) ;
    for (unsigned int k = 0 ; k < 8 ; k++)
    {
      hex[2*k] = "0123456789abcdef"[(unsigned char)rnd[k] >> 4] ;
      hex[2*k+1] = "0123456789abcdef"[rnd[k] & 15] ;
    }
    hex[16] = 0 ;
    puts_("Message-ID: <") ;
    num[ulong_fmt(num, (unsigned long)time(0))] = 0 ; puts_(num) ; puts_(".") ;
    num[ulong_fmt(num, (unsigned long)getpid())] = 0 ; puts_(num) ; puts_(".") ;
    puts_(hex) ; puts_("@") ;
    puts_(idhost && *idhost ? idhost : defaulthost.s) ;
    puts_(">\n") ;
  }
  if (!hasfrom) put(from.s, from.len) ;
  put("\n", 1) ;
  if (firstbody.len) put(firstbody.s, firstbody.len) ;
  body() ;

  if (printonly)
  {
    if (!buffer_flush(&bout)) strerr_diefu1sys(EX_TEMP, "write to stdout") ;
  }
  else queue(env.s, verbose) ;
  stralloc_free(&user) ; stralloc_free(&name) ; stralloc_free(&host) ;
  stralloc_free(&from) ; stralloc_free(&env) ; stralloc_free(&rcpts) ; stralloc_free(&tmp) ;
  stralloc_free(&hdr) ; stralloc_free(&firstbody) ; stralloc_free(&bodybuf) ;
  stralloc_free(&defaulthost) ; stralloc_free(&defaultdomain) ; stralloc_free(&plusdomain) ;
  return 0 ;
}

/* the envelope, the queue's verdict */
static void queue (char const *sender, int verbose)
{
  qq_from(&q, sender) ;
  for (size_t k = 0 ; k < rcpts.len ; k += strlen(rcpts.s + k) + 1) qq_to(&q, rcpts.s + k) ;
  int code = qq_close(&q) ;
  if (code)
  {
    char const *why = qq_status(code) ;
    if (why[0] == 'D') strerr_dief2x(EX_PERM, "the queue refused the message: ", why + 1) ;
    strerr_dief2x(EX_TEMP, "unable to queue the message: ", why + 1) ;
  }
  if (verbose)
  {
    buffer_putsnoflush(buffer_2, PROG) ;
    buffer_putsnoflush(buffer_2, ": queued from <") ;
    buffer_putsnoflush(buffer_2, sender) ;
    buffer_putsnoflush(buffer_2, "> to") ;
    for (size_t k = 0 ; k < rcpts.len ; k += strlen(rcpts.s + k) + 1)
    {
      buffer_putsnoflush(buffer_2, " <") ;
      buffer_putsnoflush(buffer_2, rcpts.s + k) ;
      buffer_putsnoflush(buffer_2, ">") ;
    }
    buffer_putsnoflush(buffer_2, "\n") ;
    buffer_flush(buffer_2) ;   /* -v is a courtesy: its failure changes nothing */
  }
}
