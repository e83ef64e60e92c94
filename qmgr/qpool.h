/* yubin-queued's pool: empty files new/.p<ID>, made ahead of time by a
 * thread of their own and made durable by one fsync of new/ for many, so
 * that a message written into one is durable after its own fdatasync (no
 * fsync of new/ per message).  The format, the checksum and what a crash
 * leaves are in qmgr/README ("The pool"); the file is written by qwrite.c.
 *
 *   qpool_start(qfd, newfd, &st, size)   at start: recover, then fill
 *   qpool_take(&fd, name, id)            a durable empty file, or 0: none
 *                                        ready (write through tmp/)
 *   qpool_stop()                         at SIGTERM
 *
 * The files come from qmgr too: while lock/pool exists it renames a
 * finished message to new/.r<ID> instead of unlinking it, and the pool
 * truncates and renames it .p<ID> (the inode is reused).
 *
 * Thread-safe.  Size 0: no pool (qpool_take always says 0). */
#ifndef YUBIN_QPOOL_H
#define YUBIN_QPOOL_H

#include <sys/stat.h>

#include "queue.h"

#define QPOOL_NAMEMAX (2 + QUEUE_IDMAX)   /* ".p" + ID, with its NUL */
#define QPOOL_MAX 1000

/* Recover what a crash left in new/ (complete pool files become
 * messages, torn ones are removed: each logged), then start the thread
 * that keeps size empty files ready.  st: the queue directory's stat
 * (a daemon run as root gives the files to the queue user).  Dies
 * (strerr) when new/ cannot be read or synced. */
extern void qpool_start (int qfd, int newfd, struct stat const *st, unsigned int size) ;

/* A ready file: its fd (O_RDWR, empty) in *fd, its name in new/ in name
 * (QPOOL_NAMEMAX bytes), and a fresh message ID in id (QUEUE_IDMAX).
 * Returns 1, or 0 when none is ready. */
extern int qpool_take (int *fd, char *name, char *id) ;

/* Stop: qmgr unlinks finished files again (lock/pool removed). */
extern void qpool_stop (void) ;

/* A fresh ID, greater than every one this process made before. */
extern void qpool_id (char *id) ;

#endif
