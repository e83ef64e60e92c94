/* Session ticket encryption keys (STEKs) shared by every yubin-tlsd
 * process of an instance through one small file, so that a client can
 * resume a TLS session on a later connection (another process).
 *
 * The file (control/tlsticketkeys) holds two keys, the current one (new
 * tickets) and the previous one (tickets issued before the last rotation
 * still resume), each with its creation time:
 *
 *   "YSTEK001"  then twice: created (8 bytes, big-endian Unix seconds),
 *   name (16 bytes, the ticket's key name), HMAC key (32), AES key (32)
 *
 * 184 bytes, the previous key all zeroes until the first rotation.  It is
 * written only by the owner of the private key file (root, or the user of
 * an unprivileged instance), with the key file's group and at most its
 * mode (root:yubintls 0640), through a temporary file and a rename. */
#ifndef YUBIN_TLSD_STEK_H
#define YUBIN_TLSD_STEK_H

#include <stdint.h>
#include <sys/types.h>

#define STEK_NAMELEN 16
#define STEK_SECRETLEN 32
#define STEK_FILELEN 184

struct stek
{
  uint64_t created ;                    /* 0: no key */
  unsigned char name[STEK_NAMELEN] ;
  unsigned char hmac[STEK_SECRETLEN] ;
  unsigned char aes[STEK_SECRETLEN] ;
} ;

struct stekpair
{
  struct stek cur, prev ;
} ;

/* Read the file at path into p.  1: done; 0: missing, or not a valid file
 * (p zeroed); -1: error (errno). */
extern int stek_read (char const *path, struct stekpair *p) ;

/* Is the current key due for rotation at now, with lifetime seconds?
 * (No key, too old, or from the future.) */
extern int stek_due (struct stekpair const *p, uint64_t now, uint64_t lifetime) ;

/* Rotate: a new current key made now from getrandom(2), the old current
 * becomes the previous, written to path through path.new (created with
 * O_EXCL: of several processes rotating at once only one does; the others
 * get 0 and keep what they read) with owner uid (-1: ours), group gid and
 * mode mode, then renamed.  A path.new older than a minute (its writer was
 * killed) is removed.  p is updated.  1: rotated; 0: someone else is
 * rotating; -1: error (errno). */
extern int stek_rotate (char const *path, struct stekpair *p, uint64_t now, uid_t uid, gid_t gid, mode_t mode) ;

/* Overwrite p with zeroes (a compiler may not optimise it away). */
extern void stek_wipe (struct stekpair *p) ;

#endif
