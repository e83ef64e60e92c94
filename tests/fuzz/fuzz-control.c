/* fuzz-control: libFuzzer target for common/control.c.
 *
 * The input is written to control/rcpthosts of a private instance root
 * ($YUBIN_ROOT, a mkdtemp directory made once), then read back with
 * control_readlist, control_readline and control_readulong.  Besides
 * crashes, aborts when: an entry of the list is unterminated, empty, holds
 * a newline, starts with '#' or has whitespace around it (checked when the
 * input holds no NUL byte: NULs split entries); an exact entry does not
 * match itself (any case) or a ".suffix" entry does not match a subdomain
 * "x.suffix"; readline does not return the first line without trailing
 * blanks; readulong returns anything but 1 or -1/EINVAL.  The input, as a
 * domain, is matched against the list too (no crash). */

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>

#include "control.h"

char const *PROG = "fuzz-control" ;

static char root[] = "/tmp/fuzz-control.XXXXXX" ;
static char file[300] ;
static stralloc list = STRALLOC_ZERO, line = STRALLOC_ZERO, dom = STRALLOC_ZERO ;

#define must(x) do { if (!(x)) abort() ; } while (0)

static void cleanup (void)
{
  char d[300] ;
  unlink(file) ;
  snprintf(d, sizeof d, "%s/control", root) ;
  rmdir(d) ;
  rmdir(root) ;
}

int LLVMFuzzerInitialize (int *argc, char ***argv)
{
  char d[300] ;
  if (!mkdtemp(root)) { perror("mkdtemp") ; exit(111) ; }
  snprintf(d, sizeof d, "%s/control", root) ;
  if (mkdir(d, 0700) < 0) { perror(d) ; exit(111) ; }
  snprintf(file, sizeof file, "%s/control/rcpthosts", root) ;
  if (setenv("YUBIN_ROOT", root, 1) < 0) exit(111) ;
  atexit(cleanup) ;
  return 0 ;
}

static int blank (char c)
{
  return c == ' ' || c == '\t' || c == '\r' ;
}

int LLVMFuzzerTestOneInput (uint8_t const *data, size_t size)
{
  int fd, r, hasnul = memchr(data, 0, size) != 0 ;
  size_t i ;
  unsigned long n ;

  fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600) ;
  must(fd >= 0) ;
  must(write(fd, data, size) == (ssize_t)size) ;
  must(close(fd) == 0) ;

  r = control_readlist(&list, "rcpthosts") ;
  must(r == 1) ;
  must(!list.len || list.s[list.len - 1] == 0) ;
  for (i = 0 ; i < list.len ; )
  {
    char const *e = list.s + i ;
    size_t elen = strlen(e), k ;
    if (!hasnul)
    {
      must(elen > 0 && e[0] != '#' && !blank(e[0]) && !blank(e[elen - 1])) ;
      must(!memchr(e, '\n', elen)) ;
    }
    if (elen && e[elen - 1] != '.' && !memchr(e, '\n', elen))
    {
      /* the entry itself, upper-cased */
      dom.len = 0 ;
      for (k = 0 ; k < elen ; k++) { char c = e[k] >= 'a' && e[k] <= 'z' ? e[k] - 32 : e[k] ; must(stralloc_catb(&dom, &c, 1)) ; }
      must(stralloc_0(&dom)) ;
      if (e[0] == '.')
      {
        dom.len = 0 ;
        must(stralloc_catb(&dom, "x", 1) && stralloc_catb(&dom, e, elen) && stralloc_0(&dom)) ;
        must(control_domain_in_list(list.s, list.len, dom.s)) ;
        must(stralloc_catb(&dom, ".", 1)) ;   /* trailing dot after the NUL: make it "x<e>." */
        dom.s[dom.len - 2] = '.' ; dom.s[dom.len - 1] = 0 ;
        must(control_domain_in_list(list.s, list.len, dom.s)) ;
      }
      else must(control_domain_in_list(list.s, list.len, dom.s)) ;
    }
    i += elen + 1 ;
  }
  dom.len = 0 ;
  must(stralloc_catb(&dom, (char const *)data, size) && stralloc_0(&dom)) ;
  control_domain_in_list(list.s, list.len, dom.s) ;

  r = control_readline(&line, "rcpthosts", "default") ;
  must(r == 1) ;
  must(line.s[line.len] == 0) ;
  {
    size_t nl = 0 ;
    while (nl < size && data[nl] != '\n') nl++ ;
    while (nl && blank(data[nl - 1])) nl-- ;
    must(line.len == nl && !memcmp(line.s, data, nl)) ;
  }
  errno = 0 ;
  r = control_readulong(&n, "rcpthosts", 7) ;
  must(r == 1 || (r == -1 && errno == EINVAL)) ;
  return 0 ;
}
