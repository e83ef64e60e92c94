/* A program as its own TCP listener, in place of tcpserver: yubin-smtpd
 * -l (port 25) and yubin-tlsd -l (implicit TLS and submission, with the
 * TLS context built once).  The listener binds the address, drops to
 * $UID/$GID (-U), and forks one child per connection that goes on in the
 * same, already started, program: no exec per connection (DESIGN.md, "The
 * hot path may keep long-running workers").  Each session is still a
 * process of its own that ends with its connection, so no session sees
 * another one's memory.
 *
 * The child gets what tcpserver would have given yubin-smtpd (UCSPI):
 * the connection on fd 0 and 1, PROTO=TCP, TCPLOCALIP, TCPLOCALPORT,
 * TCPREMOTEIP, TCPREMOTEPORT, TCPLOCALHOST (-h), no TCPREMOTEHOST or
 * TCPREMOTEINFO, and the variables of the first matching tcprules entry
 * (-x: the same cdb as tcpserver -x; a "deny" entry closes the connection).
 *
 * A forked child shares the listener's address layout and stack canary.
 * So that a crashing bug cannot be probed again and again against the
 * same layout, the listener execs itself afresh (keeping the listening
 * socket) as soon as a child dies of SIGSEGV, SIGBUS, SIGILL, SIGFPE,
 * SIGABRT, SIGSYS or SIGTRAP. */
#ifndef YUBIN_LISTEN_H
#define YUBIN_LISTEN_H

struct listen_conf
{
  char const *ip ;          /* address to bind */
  char const *port ;
  char const *rules ;       /* -x: tcprules cdb, or 0 */
  char const *localname ;   /* -h: $TCPLOCALHOST, or 0 */
  unsigned int maxconn ;    /* -c: sessions at once (default 40, as tcpserver) */
  unsigned int backlog ;    /* -b: listen backlog */
  int dropuid ;             /* -U: setgid $GID, setuid $UID after bind */
  int inherited ;           /* -F: the listening socket is this fd, or -1 */
  unsigned int refresh ;    /* exec afresh after this many seconds (what the
                               program loaded at start is read again), 0: never */
  char const *const *argv ; /* to exec afresh after a crash */
} ;

#define LISTEN_CONF_ZERO { .ip = 0, .port = 0, .rules = 0, .localname = 0, .maxconn = 40, .backlog = 128, .dropuid = 0, .inherited = -1, .refresh = 0, .argv = 0 }

/* Listen and fork a child per connection.  Returns only in a child, with
 * its UCSPI environment set up; the listener itself never returns (it
 * dies with a message and exit code 111 when it cannot go on). */
extern void listen_serve (struct listen_conf const *lc) ;

#endif
