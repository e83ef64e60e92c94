/* At most N sessions at once from one client address, for every network
 * daemon: yubin-smtpd takes its session's slot before its greeting,
 * yubin-tlsd (implicit TLS) before the handshake, and yubin-connlimit does
 * it for any other program in a tcpserver chain.
 *
 * The slots are byte-range locks on one file, <root>/lock/connections:
 * open file description locks (F_OFD_SETLK), which go away with the last
 * fd, even when the holders are SIGKILLed.  The file stays empty: an
 * address's slots are bytes at an offset derived from a hash of the
 * address (IPv4 address, or IPv6 /64 prefix).  Nothing to clean up.
 *
 * N: $MAXCONNIP if set (tcprules can set it per network; 0: no limit),
 * else control/concurrencyremoteip (default 10), at most 256. */
#ifndef YUBIN_CONNLIMIT_H
#define YUBIN_CONNLIMIT_H

#define CONNLIMIT_MAX 256

/* Take a slot for ip.  Returns 1 (taken: the fd stays open in this
 * process, and in children that inherit it when cloexec is 0; or no limit
 * applies), 0 (all *limit slots are taken), -1 (errno: EINVAL for a bad
 * address or MAXCONNIP, or the lock file's trouble). */
extern int connlimit_take (char const *ip, int cloexec, unsigned long *limit) ;

/* Log "refuse ip= reason=too-many-connections limit=" for a refused
 * session. */
extern void connlimit_log_refusal (char const *ip, unsigned long limit) ;

#endif
