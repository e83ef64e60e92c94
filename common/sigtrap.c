/* Signals through skalibs' selfpipe: see sigtrap.h. */

#include <signal.h>

#include <skalibs/selfpipe.h>
#include <skalibs/strerr.h>

#include "exitcodes.h"
#include "sigtrap.h"

int sigtrap_init (int const *sigs)
{
  sigset_t set ;
  int fd = selfpipe_init() ;
  if (fd < 0) strerr_diefu1sys(EX_TEMP, "init selfpipe") ;
  sigemptyset(&set) ;
  for (; *sigs ; sigs++) sigaddset(&set, *sigs) ;
  if (!selfpipe_trapset(&set)) strerr_diefu1sys(EX_TEMP, "trap signals") ;
  return fd ;
}
