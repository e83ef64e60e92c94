/* pop3-load: the POP3 bench's client (bench/pop3-bench builds it with
 * cc -O2).  One session: USER/PASS, STAT, UIDL, RETR 1..N pipelined in
 * batches (at most two batches outstanding), QUIT, then read to EOF.
 * Checks that STAT says N messages, that UIDL lists N distinct lines
 * (counted, not compared), that every answer is +OK (an -ERR stops it
 * with exit 1), and that the RETR bodies, un-stuffed, add up to W (the
 * sum of the W= sizes).  Prints one JSON line: the times of the phases,
 * the bytes, its own CPU.  Every read has a timeout (SO_RCVTIMEO).
 *
 *   pop3-load HOST PORT USER PASS N W BATCH
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int fd = -1 ;
static char *buf ;
static size_t cap, len, pos ;          /* unread data is buf[pos..len) */
static uint64_t received, sent ;

static void die (char const *fmt, ...)
{
  char msg[600] ;
  va_list ap ;
  va_start(ap, fmt) ;
  vsnprintf(msg, sizeof msg, fmt, ap) ;
  va_end(ap) ;
  for (char *p = msg ; *p ; p++) if (*p == '"' || *p == '\\' || (unsigned char)*p < 32) *p = '?' ;
  printf("{\"error\": \"%s\"}\n", msg) ;
  exit(1) ;
}

static double now (void)
{
  struct timespec ts ;
  clock_gettime(CLOCK_MONOTONIC, &ts) ;
  return ts.tv_sec + ts.tv_nsec / 1e9 ;
}

static void sendall (char const *s, size_t n)
{
  while (n)
  {
    ssize_t r = write(fd, s, n) ;
    if (r < 0) { if (errno == EINTR) continue ; die("write: %s", strerror(errno)) ; }
    s += r ; n -= (size_t)r ; sent += (uint64_t)r ;
  }
}

/* read more; offsets into buf stay valid relative to pos: returns the
 * shift applied (bytes moved out of the front) */
static size_t fill (void)
{
  size_t shift = 0 ;
  if (cap - len < 262144)
  {
    if (pos)
    {
      memmove(buf, buf + pos, len - pos) ;
      len -= pos ; shift = pos ; pos = 0 ;
    }
    if (cap - len < 262144)
    {
      cap = cap * 2 ;
      buf = realloc(buf, cap) ;
      if (!buf) die("out of memory") ;
    }
  }
  for (;;)
  {
    ssize_t r = read(fd, buf + len, cap - len) ;
    if (r < 0) { if (errno == EINTR) continue ; die("read: %s", strerror(errno)) ; }
    if (!r) die("connection closed by the server") ;
    len += (size_t)r ; received += (uint64_t)r ;
    return shift ;
  }
}

/* the next line (without CRLF), NUL-terminated in place */
static char *line (void)
{
  size_t scan = pos ;
  for (;;)
  {
    char *e = memmem(buf + scan, len - scan, "\r\n", 2) ;
    if (e)
    {
      char *l = buf + pos ;
      *e = 0 ;
      pos = (size_t)(e - buf) + 2 ;
      return l ;
    }
    scan = len > pos + 1 ? len - 1 : pos ;
    size_t sh = fill() ;
    scan -= sh ;
  }
}

static char *status (char const *what)
{
  char *l = line() ;
  if (strncmp(l, "+OK", 3)) die("%s: the server answered %.200s", what, l) ;
  return l ;
}

/* after a status line: the body of a multi-line answer, from *a to *b
 * (CRLF line ends, the last CRLF included, ".\r\n" not), in buf */
static void multi (size_t *a, size_t *b)
{
  size_t start = pos - 2, scan = start ;   /* the status line's CRLF */
  for (;;)
  {
    char *k = memmem(buf + scan, len - scan, "\r\n.\r\n", 5) ;
    if (k)
    {
      *a = start + 2 ;
      *b = (size_t)(k - buf) + 2 ;
      pos = (size_t)(k - buf) + 5 ;
      return ;
    }
    scan = len - start > 4 ? len - 4 : start ;
    size_t sh = fill() ;
    start -= sh ; scan -= sh ;
  }
}

static size_t count (char const *s, size_t n, char const *pat, size_t plen)
{
  size_t c = 0 ;
  char const *end = s + n ;
  for (;;)
  {
    char const *k = memmem(s, (size_t)(end - s), pat, plen) ;
    if (!k) return c ;
    c++ ;
    s = k + plen ;
  }
}

static double cpu (void)
{
  struct rusage ru ;
  getrusage(RUSAGE_SELF, &ru) ;
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6 ;
}

int main (int argc, char **argv)
{
  if (argc != 8) { fprintf(stderr, "usage: pop3-load HOST PORT USER PASS N W BATCH\n") ; return 100 ; }
  char const *host = argv[1], *user = argv[3], *pass = argv[4] ;
  int port = atoi(argv[2]) ;
  uint64_t n = strtoull(argv[5], 0, 10), wtotal = strtoull(argv[6], 0, 10) ;
  uint64_t batch = strtoull(argv[7], 0, 10) ;
  if (!batch) batch = 1 ;
  double c0 = cpu(), t0 = now() ;
  cap = 4 << 20 ;
  buf = malloc(cap) ;
  if (!buf) die("out of memory") ;

  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) } ;
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) die("bad address %s", host) ;
  fd = socket(AF_INET, SOCK_STREAM, 0) ;
  if (fd < 0) die("socket: %s", strerror(errno)) ;
  struct timeval tv = { .tv_sec = 120 } ;
  int one = 1 ;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) ;
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) ;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) ;
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect: %s", strerror(errno)) ;

  char cmd[512] ;
  status("greeting") ;
  snprintf(cmd, sizeof cmd, "USER %s\r\n", user) ; sendall(cmd, strlen(cmd)) ;
  status("USER") ;
  snprintf(cmd, sizeof cmd, "PASS %s\r\n", pass) ; sendall(cmd, strlen(cmd)) ;
  status("PASS") ;
  double tlogin = now() ;

  sendall("STAT\r\n", 6) ;
  char *l = status("STAT") ;
  unsigned long long sn = 0, ssize = 0 ;
  if (sscanf(l, "+OK %llu %llu", &sn, &ssize) != 2 || sn != n) die("STAT: %.200s, expected %llu messages", l, (unsigned long long)n) ;
  double tstat = now() ;

  sendall("UIDL\r\n", 6) ;
  status("UIDL") ;
  size_t a, b ;
  multi(&a, &b) ;
  size_t lines = count(buf + a, b - a, "\r\n", 2) ;
  if (lines != n) die("UIDL: %zu lines, expected %llu", lines, (unsigned long long)n) ;
  double tuidl = now() ;

  uint64_t body = 0, wire = 0, nxt = 1, got = 0 ;
  char *cmds = malloc(batch * 32) ;
  if (!cmds) die("out of memory") ;
  while (got < n)
  {
    if (nxt <= n && nxt - 1 - got < 2 * batch)
    {
      uint64_t k = n - nxt + 1 < batch ? n - nxt + 1 : batch ;
      size_t w = 0 ;
      for (uint64_t i = nxt ; i < nxt + k ; i++) w += (size_t)sprintf(cmds + w, "RETR %llu\r\n", (unsigned long long)i) ;
      sendall(cmds, w) ;
      nxt += k ;
    }
    uint64_t r0 = received - (len - pos) ;    /* stream offset of this answer */
    char what[40] ;
    snprintf(what, sizeof what, "RETR %llu", (unsigned long long)got + 1) ;
    status(what) ;
    multi(&a, &b) ;
    /* stuffed lines: "\r\n.." inside, and the first line (the status
     * line's CR is a NUL now) */
    body += (b - a) - count(buf + a, b - a, "\r\n..", 4) - (b - a >= 2 && buf[a] == '.' && buf[a + 1] == '.') ;
    wire += (received - (len - pos)) - r0 ;
    got++ ;
  }
  double tretr = now() ;
  sendall("QUIT\r\n", 6) ;
  status("QUIT") ;
  for (;;)
  {
    ssize_t r = read(fd, buf, cap) ;
    if (r < 0 && errno == EINTR) continue ;
    if (r <= 0) break ;
    received += (uint64_t)r ;
  }
  double tend = now() ;
  close(fd) ;
  double c1 = cpu() ;
  if (body != wtotal) die("RETR: %llu bytes of messages (un-stuffed), expected the sum of the W= sizes, %llu", (unsigned long long)body, (unsigned long long)wtotal) ;
  printf("{\"wall\": %.6f, \"login\": %.6f, \"stat\": %.6f, \"uidl\": %.6f, \"retr\": %.6f, \"quit\": %.6f, "
         "\"stat_size\": %llu, \"body\": %llu, \"wire\": %llu, \"received\": %llu, \"sent\": %llu, "
         "\"overhead\": %llu, \"client_cpu\": %.6f}\n",
         tend - t0, tlogin - t0, tstat - tlogin, tuidl - tstat, tretr - tuidl, tend - tretr,
         ssize, (unsigned long long)body, (unsigned long long)wire, (unsigned long long)received,
         (unsigned long long)sent, (unsigned long long)(received - body), c1 - c0) ;
  return 0 ;
}
