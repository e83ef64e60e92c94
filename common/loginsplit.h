/* The login split of yubin-pop3d and yubin-imapd (pop3d/README), after
 * qmail-popup -> checkpassword -> qmail-pop3d, with the network side
 * unprivileged:
 *
 *   tcpserver (root) -> the daemon, which calls loginsplit_start():
 *     monitor (stays root; never reads the network)
 *       <- socketpair: login, password, a few environment variables, and
 *          the child's fds 0 and 1 (SCM_RIGHTS)
 *     child (the daemon user, non-dumpable): the pre-login dialogue
 *
 * For each login the monitor runs the checkpassword program (root, so it
 * can become the user) with "login\0password\0stamp\0" on fd 3, the
 * child's fds as 0 and 1, and prog (the mail part) to exec as the user,
 * waits for it, and answers the child with a verdict.  The mail part
 * calls loginsplit_loggedin() before it first writes to the client: then
 * the session is over when it ends, whatever its exit code; without
 * that, exit 1 is a wrong password, 0 the end of a session, anything
 * else a temporary failure the child reports. */
#ifndef YUBIN_LOGINSPLIT_H
#define YUBIN_LOGINSPLIT_H

#include <stddef.h>
#include <sys/types.h>

#include <skalibs/stralloc.h>

#include "ucspitls.h"

#define LOGINSPLIT_BAD 'b'     /* checkpassword said no (exit 1) */
#define LOGINSPLIT_TEMP 't'    /* it could not say (111, a crash, ...) */
#define LOGINSPLIT_DONE 'd'    /* the mail part ran and the session is over */

/* The only variables the child may pass on to the root-run programs
 * (a compromised child must not hand LD_PRELOAD to root). */
#define LOGINSPLIT_ENV_ALLOWED { "SSL_PROTOCOL", "SSL_CIPHER", "IMAPLOGINTAG", 0 }

struct loginsplit
{
  uid_t uid ;                 /* the child's user, if have_uid */
  gid_t gid ;
  int have_uid ;
  char const *checkpassword ; /* path */
  char const *const *prog ;   /* the mail part and its arguments */
  char const *argv[3] ;       /* prog's storage, for loginsplit_programs */
} ;

/* Forks.  The parent becomes the monitor and never returns (it exits
 * with the child's exit status once the child is gone).  The child
 * returns, having dropped to uid/gid when started as root (dies, 100, if
 * started as root without them, or with uid 0), unset $UID, $GID and
 * $GIDLIST and made itself non-dumpable. */
extern void loginsplit_start (struct loginsplit const *ls) ;

/* What a pre-login daemon knows before it talks. */
struct loginsplit_daemon
{
  char const *ip ;            /* $TCPREMOTEIP, or "unknown" */
  unsigned int timeout ;      /* seconds without a command, before the login */
  int implicit ;              /* -T: TLS before the greeting */
  int clearok ;               /* logins allowed without TLS (loopback,
                                 $CLEARTEXTLOGIN) */
  char const *maildir ;       /* -m, for the mail part */
  struct ucspitls tls ;
} ;
#define LOGINSPLIT_DAEMON_ZERO { .ip = "unknown", .timeout = 0, .implicit = 0, .clearok = 0, .maildir = "Maildir", .tls = UCSPITLS_ZERO }

/* A pre-login daemon's main() up to its dialogue: the options
 * (loginsplit_options), $TCPREMOTEIP, the timeout from $timeoutvar (else
 * timeoutdefault), the cleartext rule, TLS (ucspitls_init,
 * loginsplit_check_tls), the programs (loginsplit_programs with $progvar
 * and prog), then loginsplit_start().  Returns in the child. */
extern void loginsplit_daemon (struct loginsplit_daemon *d, int argc, char const *const *argv, char const *usage,
                               char const *timeoutvar, unsigned int timeoutdefault, char const *progvar, char const *prog) ;

/* A login in the child: refuses (LOGINSPLIT_BAD) an empty login or one
 * with a NUL byte, else hands it to the monitor (loginsplit_ask) with the
 * TLS parameters of d and extra (one more "NAME=value", or NULL) in the
 * mail part's environment.  LOGINSPLIT_DONE ends the process (exit 0: the
 * mail part had the session); BAD and TEMP are logged (auth-fail,
 * auth-temp with ip, user and mech) and returned for the daemon to
 * answer. */
extern char loginsplit_login (struct loginsplit_daemon const *d, char const *login, size_t loginlen,
                              char const *pass, size_t passlen, char const *mech, char const *extra) ;

/* The daemons' common options: -T (implicit TLS: *implicit = 1), -U
 * (uid and gid from $UID and $GID), -u uid -g gid, -m maildir (default
 * "Maildir"; must not be empty or start with '-'), into ls; no other
 * arguments.  Dies (100) with usage otherwise. */
extern void loginsplit_options (int argc, char const *const *argv, char const *usage, struct loginsplit *ls, int *implicit, char const **maildir) ;

/* ls->checkpassword from $CHECKPASSWORD, else libexec/yubin-checkpassword;
 * the mail part (ls->prog: progsa's string, then maildir) from $envname,
 * else the sibling named prog.  progsa and cpsa must outlive ls. */
extern void loginsplit_programs (struct loginsplit *ls, stralloc *cpsa, stralloc *progsa, char const *envname, char const *prog, char const *maildir) ;

/* After ucspitls_init(): dies (100) if yubin-tlsd is in front (it would
 * have taken root from the monitor: TLS must be on demand, $TLSD) or if
 * implicit TLS (-T) is asked without $TLSD. */
extern void loginsplit_check_tls (struct ucspitls const *tls, int implicit) ;

/* In the mail part (yubin-pop3mbox, yubin-imapmail), before its first
 * write to the client: tells the monitor the login went through (a byte
 * on the fd in $YUBIN_LOGGEDIN_FD, then closed and unset).  Does nothing
 * without $YUBIN_LOGGEDIN_FD (run by hand, or by another front). */
extern void loginsplit_loggedin (void) ;

/* -U: ls's uid and gid from $UID and $GID (s6-envuidgid), if both are
 * set; dies (100) if they are not numbers. */
extern void loginsplit_uid_from_env (struct loginsplit *ls) ;

/* Whether a login may be sent in cleartext from ip: from 127.0.0.0/8 and
 * ::1, or where $CLEARTEXTLOGIN (set by tcprules) is neither empty nor
 * "0". */
extern int loginsplit_cleartext_ok (char const *ip) ;

/* In the child: hands login and password (not wiped: the caller wipes
 * its copies), env ("NAME=value" strings, names from
 * LOGINSPLIT_ENV_ALLOWED, NULL-terminated, may be NULL) and fds 0 and 1
 * to the monitor, and waits for the verdict.  Dies (111) if the monitor
 * is gone. */
extern char loginsplit_ask (char const *login, size_t loginlen, char const *pass, size_t passlen, char const *const *env) ;

#endif
