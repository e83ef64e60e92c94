/* Exit codes with fixed meanings across yubin (qmail's conventions). */
#ifndef YUBIN_EXITCODES_H
#define YUBIN_EXITCODES_H

#define EX_OK_ 0
#define EX_PERM 100        /* permanent failure, bad usage */
#define EX_TEMP 111        /* temporary failure, system trouble */

/* qmail-queue's exit codes (QQ_*) are in qq.h, with their meanings. */

#endif
