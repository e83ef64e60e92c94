/* Finding the instance root (like /var/qmail) and paths under it. */
#ifndef YUBIN_ROOT_H
#define YUBIN_ROOT_H

#include <skalibs/stralloc.h>

/* The instance root, without trailing slash.  Order:
 *  1. $YUBIN_ROOT, unless the process is setuid/setgid (then env is ignored);
 *  2. the directory above the running binary's bin/ or libexec/
 *     (/proc/self/exe), if it holds a control/ directory and, for a setuid
 *     or setgid process, it and that bin/ or libexec/ belong to root and
 *     are writable by no one else (so an
 *     installed instance such as ./run/bin/yubin-queue finds ./run without
 *     any environment, and a hard link elsewhere finds nothing);
 *  3. the compiled default YUBIN_ROOT_DEFAULT (make ROOT=...).
 * Computed once, cached.  Never fails (falls back to 3). */
/* Look up the instance root and this program's directory now, so that
 * children forked later (yubin-smtpd -l's sessions) need not. */
extern void yubin_root_prime (void) ;

extern char const *yubin_root(void);

/* sa = root "/" rel, NUL-terminated (sa->len excludes the NUL).
 * Returns 1, or 0 on allocation failure (errno set). */
extern int yubin_path(stralloc *sa, char const *rel);

#endif

#ifndef YUBIN_ROOT_H_LIBEXEC
#define YUBIN_ROOT_H_LIBEXEC
/* sa = the directory of the running binary "/" prog, NUL-terminated: the
 * way one yubin program finds its sibling (yubin-smtpd -> yubin-queue,
 * yubin-qmgr -> yubin-lspawn -> yubin-local), wherever they are installed.
 * Returns 1, 0 on error. */
extern int yubin_sibling(stralloc *sa, char const *prog);

/* sa = the path of a program that only the network daemons may run
 * (yubin-checkpassword, yubin-tlsd): "<bin>/../libexec/prog" in an
 * instance, where package/setup puts them in a directory only the
 * daemons' group may enter; else the sibling (a build tree).
 * Returns 1, 0 on error. */
extern int yubin_libexec(stralloc *sa, char const *prog);
#endif
