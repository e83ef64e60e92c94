/* Exit codes with fixed meanings across yubin (qmail's conventions). */
#ifndef YUBIN_EXITCODES_H
#define YUBIN_EXITCODES_H

#define EX_OK_ 0
#define EX_PERM 100        /* permanent failure, bad usage */
#define EX_TEMP 111        /* temporary failure, system trouble */

/* qmail-queue's exit codes (yubin-queue, and QMAILQUEUE replacements). */
#define QQ_OK 0
#define QQ_REFUSED 31      /* mail server permanently refuses to send */
#define QQ_ENVELOPE 91     /* envelope format error */
#define QQ_NOMEM 51        /* out of memory */
#define QQ_TIMEOUT 52      /* timeout */
#define QQ_WRITE 53        /* write error, e.g. disk full */
#define QQ_READ 54         /* unable to read the message or envelope */
#define QQ_CONFIG 55       /* unable to read a configuration file */
#define QQ_NETWORK 56      /* network problem */
#define QQ_OPEN 61         /* problem with the home directory */
#define QQ_QUEUE 62        /* problem with the queue directory */
#define QQ_PID 63          /* problem with queue/pid */
#define QQ_TRIGGER 64      /* problem with queue/lock/trigger */
#define QQ_BUG 81          /* internal bug */

#endif
