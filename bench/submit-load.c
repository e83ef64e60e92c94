/* submit-load: a small SMTP submission load client for bench/submission-bench.
 *
 *   submit-load -p PORT -u USER -w PASSWORD-FILE -f FROM -t TO
 *               [-a ADDR] [-n N] [-c P] [-s SIZE] [-T SECONDS] [-H]
 *
 * Runs N sessions, P at a time (one thread each), every session:
 * connect, 220, EHLO, STARTTLS, TLS handshake (one shared SSL_CTX, TLS 1.2
 * or 1.3, no certificate check, no session resumption: a full handshake
 * each time), EHLO, AUTH PLAIN, MAIL, RCPT, DATA with a SIZE-byte body
 * (default 2048) written together with the final dot, QUIT.  No
 * pipelining: one command, one reply.  Every session is bounded by socket
 * timeouts (30 s), the whole run by -T (default 120 s).
 *
 * -H (hold): open P sessions up to a successful AUTH, print "ready N failed M" on
 * stdout, wait until stdin reaches EOF (or -T), then QUIT them all.  For
 * measuring the memory of idle authenticated sessions.
 *
 * Output: one line of key=value on stdout: ok, fail, elapsed (s), rate
 * (sessions/s), cpu (the client's own user+system seconds), then the mean
 * latency in ms of each phase (banner, ehlo, starttls = command + handshake,
 * ehlo2, auth, mail = MAIL..the 250 after the dot, quit).  The first
 * failure is described on stderr.  Exit 0 if every session succeeded.
 *
 * Build: cc -O2 -pthread -o submit-load submit-load.c -lssl -lcrypto */

#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#define MAXP 1024
#define IOTIMEOUT 30
enum { PH_BANNER, PH_EHLO, PH_STARTTLS, PH_EHLO2, PH_AUTH, PH_MAIL, PH_QUIT, NPH } ;
static char const *phname[NPH] = { "banner", "ehlo", "starttls", "ehlo2", "auth", "mail", "quit" } ;

static struct sockaddr_in addr ;
static char const *user, *from, *to ;
static char password[256] ;
static char authline[1024] ;
static char *message ;
static size_t messagelen ;
static long total = 1, par = 1, bodysize = 2048 ;
static double deadline ;          /* CLOCK_MONOTONIC seconds: no new session after it */
static double hard_end ;          /* nor any reply (hold mode waits up to -T past deadline) */
static int hold ;
static SSL_CTX *ctx ;

static atomic_long next_session ;
static atomic_long nok, nfail ;
static atomic_int stop ;
static pthread_mutex_t errlock = PTHREAD_MUTEX_INITIALIZER ;
static int errsaid ;
static double phsum[NPH] ;        /* under errlock */
static long phcount[NPH] ;

static pthread_mutex_t holdlock = PTHREAD_MUTEX_INITIALIZER ;
static pthread_cond_t holdcond = PTHREAD_COND_INITIALIZER ;
static long holdready, holdfailed ;
static int holdrelease ;

static double now (void)
{
  struct timespec ts ;
  clock_gettime(CLOCK_MONOTONIC, &ts) ;
  return ts.tv_sec + ts.tv_nsec / 1e9 ;
}

static void die (char const *fmt, ...)
{
  va_list ap ;
  va_start(ap, fmt) ;
  fputs("submit-load: fatal: ", stderr) ;
  vfprintf(stderr, fmt, ap) ;
  fputc('\n', stderr) ;
  va_end(ap) ;
  exit(111) ;
}

typedef struct conn_s
{
  int fd ;
  SSL *ssl ;
  char buf[8192] ;
  size_t len, pos ;
  char why[256] ;
} conn ;

static int fail (conn *c, char const *fmt, ...)
{
  va_list ap ;
  va_start(ap, fmt) ;
  vsnprintf(c->why, sizeof c->why, fmt, ap) ;
  va_end(ap) ;
  return 0 ;
}

static int cwrite (conn *c, char const *s, size_t n)
{
  while (n)
  {
    ssize_t w ;
    if (c->ssl)
    {
      int r = SSL_write(c->ssl, s, n > 1 << 30 ? 1 << 30 : (int)n) ;
      if (r <= 0) return fail(c, "SSL_write: error %d", SSL_get_error(c->ssl, r)) ;
      w = r ;
    }
    else
    {
      w = write(c->fd, s, n) ;
      if (w < 0)
      {
        if (errno == EINTR) continue ;
        return fail(c, "write: %s", strerror(errno)) ;
      }
    }
    s += w ; n -= (size_t)w ;
  }
  return 1 ;
}

static int cfill (conn *c)
{
  ssize_t r ;
  if (c->pos == c->len) c->pos = c->len = 0 ;
  if (c->len == sizeof c->buf)
  {
    if (!c->pos) return fail(c, "reply line too long") ;
    memmove(c->buf, c->buf + c->pos, c->len - c->pos) ;
    c->len -= c->pos ; c->pos = 0 ;
  }
  for (;;)
  {
    if (c->ssl)
    {
      int n = SSL_read(c->ssl, c->buf + c->len, (int)(sizeof c->buf - c->len)) ;
      if (n <= 0) return fail(c, "SSL_read: error %d (%s)", SSL_get_error(c->ssl, n), strerror(errno)) ;
      r = n ;
    }
    else
    {
      r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len) ;
      if (r < 0 && errno == EINTR) continue ;
      if (r < 0) return fail(c, "read: %s", strerror(errno)) ;
      if (!r) return fail(c, "server closed the connection") ;
    }
    c->len += (size_t)r ;
    return 1 ;
  }
}

/* Reads one reply (all its lines); returns 1 if its code is want. */
static int reply (conn *c, int want, char const *what)
{
  for (int lines = 0 ; ; lines++)
  {
    char *nl ;
    if (lines >= 100) return fail(c, "%s: more than 100 reply lines", what) ;
    if (now() > hard_end) return fail(c, "%s: past the run's time limit", what) ;
    while (!(nl = memchr(c->buf + c->pos, '\n', c->len - c->pos)))
      if (!cfill(c)) return 0 ;
    {
      char *line = c->buf + c->pos ;
      size_t ll = (size_t)(nl - line) + 1 ;
      c->pos += ll ;
      if (ll < 4) return fail(c, "%s: short reply line", what) ;
      if (ll > 4 && line[3] == '-') continue ;
      if (atoi(line) != want)
      {
        size_t k = ll ;
        while (k && (line[k-1] == '\n' || line[k-1] == '\r')) k-- ;
        return fail(c, "%s: %.*s", what, (int)(k > 200 ? 200 : k), line) ;
      }
      return 1 ;
    }
  }
}

static int cmd (conn *c, char const *line, int want, char const *what)
{
  return cwrite(c, line, strlen(line)) && reply(c, want, what) ;
}

static void cclose (conn *c)
{
  if (c->ssl) { SSL_free(c->ssl) ; c->ssl = 0 ; }
  if (c->fd >= 0) { close(c->fd) ; c->fd = -1 ; }
}

static void phase (double *t, double *ph, int i)
{
  double t1 = now() ;
  ph[i] += t1 - *t ;
  *t = t1 ;
}

/* Connect through AUTH; phase times added to ph. */
static int open_session (conn *c, double *ph)
{
  struct timeval tv = { IOTIMEOUT, 0 } ;
  int one = 1 ;
  double t = now() ;
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0) ;
  c->ssl = 0 ; c->len = c->pos = 0 ;
  if (c->fd < 0) return fail(c, "socket: %s", strerror(errno)) ;
  if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0
   || setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0
   || setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
    return fail(c, "setsockopt: %s", strerror(errno)) ;
  if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0) return fail(c, "connect: %s", strerror(errno)) ;
  if (!reply(c, 220, "banner")) return 0 ;
  phase(&t, ph, PH_BANNER) ;
  if (!cmd(c, "EHLO client.test\r\n", 250, "EHLO")) return 0 ;
  phase(&t, ph, PH_EHLO) ;
  if (!cmd(c, "STARTTLS\r\n", 220, "STARTTLS")) return 0 ;
  if (c->pos != c->len) return fail(c, "data after the STARTTLS reply") ;
  c->ssl = SSL_new(ctx) ;
  if (!c->ssl || !SSL_set_fd(c->ssl, c->fd)) return fail(c, "SSL_new failed") ;
  {
    int r = SSL_connect(c->ssl) ;
    if (r != 1)
    {
      unsigned long e = ERR_get_error() ;
      char eb[160] ;
      ERR_error_string_n(e, eb, sizeof eb) ;
      return fail(c, "TLS handshake: %d %s", SSL_get_error(c->ssl, r), eb) ;
    }
  }
  phase(&t, ph, PH_STARTTLS) ;
  if (!cmd(c, "EHLO client.test\r\n", 250, "EHLO after STARTTLS")) return 0 ;
  phase(&t, ph, PH_EHLO2) ;
  if (!cmd(c, authline, 235, "AUTH PLAIN")) return 0 ;
  phase(&t, ph, PH_AUTH) ;
  return 1 ;
}

static int send_message (conn *c, double *ph)
{
  char line[600] ;
  double t = now() ;
  snprintf(line, sizeof line, "MAIL FROM:<%s>\r\n", from) ;
  if (!cmd(c, line, 250, "MAIL")) return 0 ;
  snprintf(line, sizeof line, "RCPT TO:<%s>\r\n", to) ;
  if (!cmd(c, line, 250, "RCPT")) return 0 ;
  if (!cmd(c, "DATA\r\n", 354, "DATA")) return 0 ;
  if (!cwrite(c, message, messagelen) || !reply(c, 250, "end of data")) return 0 ;
  phase(&t, ph, PH_MAIL) ;
  if (!cmd(c, "QUIT\r\n", 221, "QUIT")) return 0 ;
  phase(&t, ph, PH_QUIT) ;
  return 1 ;
}

static void report_failure (conn *c)
{
  pthread_mutex_lock(&errlock) ;
  if (!errsaid++) fprintf(stderr, "submit-load: first failure: %s\n", c->why) ;
  pthread_mutex_unlock(&errlock) ;
}

static void add_phases (double const *ph, int full)
{
  pthread_mutex_lock(&errlock) ;
  for (int i = 0 ; i < NPH ; i++)
    if (full || i <= PH_AUTH) { phsum[i] += ph[i] ; phcount[i]++ ; }
  pthread_mutex_unlock(&errlock) ;
}

static void *worker (void *arg)
{
  conn *c = malloc(sizeof *c) ;
  (void)arg ;
  if (!c) die("out of memory") ;
  c->fd = -1 ; c->ssl = 0 ;
  if (hold)
  {
    double ph[NPH] = { 0 } ;
    int ok = open_session(c, ph) ;
    if (!ok) report_failure(c) ;
    else add_phases(ph, 0) ;
    pthread_mutex_lock(&holdlock) ;
    if (ok) holdready++ ; else holdfailed++ ;
    pthread_cond_broadcast(&holdcond) ;
    while (!holdrelease) pthread_cond_wait(&holdcond, &holdlock) ;
    pthread_mutex_unlock(&holdlock) ;
    if (ok && cmd(c, "QUIT\r\n", 221, "QUIT")) atomic_fetch_add(&nok, 1) ;
    else atomic_fetch_add(&nfail, 1) ;
    cclose(c) ;
    free(c) ;
    return 0 ;
  }
  while (!atomic_load(&stop))
  {
    double ph[NPH] = { 0 } ;
    long i = atomic_fetch_add(&next_session, 1) ;
    if (i >= total) break ;
    if (now() > deadline) { atomic_store(&stop, 1) ; break ; }
    if (open_session(c, ph) && send_message(c, ph))
    {
      atomic_fetch_add(&nok, 1) ;
      add_phases(ph, 1) ;
    }
    else
    {
      report_failure(c) ;
      /* a broken server must not make us spin: give up after many */
      if (atomic_fetch_add(&nfail, 1) + 1 >= 20 + total / 10) atomic_store(&stop, 1) ;
    }
    cclose(c) ;
  }
  free(c) ;
  return 0 ;
}

static void make_message (void)
{
  char head[1024] ;
  size_t hl, i ;
  int n = snprintf(head, sizeof head,
    "From: <%s>\r\nTo: <%s>\r\nSubject: submission bench\r\n"
    "Date: Thu, 1 Jan 2026 00:00:00 +0000\r\nMessage-ID: <bench@client.test>\r\n\r\n", from, to) ;
  if (n < 0 || (size_t)n >= sizeof head) die("addresses too long") ;
  hl = (size_t)n ;
  message = malloc(hl + (size_t)bodysize + 80 + 8) ;
  if (!message) die("out of memory") ;
  memcpy(message, head, hl) ;
  messagelen = hl ;
  for (i = 0 ; i < (size_t)bodysize ; )
  {
    /* lines of 78 characters + CRLF */
    size_t k = (size_t)bodysize - i < 80 ? (size_t)bodysize - i : 80 ;
    if (k < 3) { memset(message + messagelen, 'x', k) ; messagelen += k ; i += k ; break ; }
    memset(message + messagelen, 'a' + (char)((i / 80) % 26), k - 2) ;
    messagelen += k - 2 ;
    message[messagelen++] = '\r' ;
    message[messagelen++] = '\n' ;
    i += k ;
  }
  if (messagelen < 2 || message[messagelen-1] != '\n') { message[messagelen++] = '\r' ; message[messagelen++] = '\n' ; }
  memcpy(message + messagelen, ".\r\n", 3) ;
  messagelen += 3 ;
}

static void make_authline (void)
{
  unsigned char raw[600] ;
  char b64[900] ;
  size_t ul = strlen(user), pl = strlen(password) ;
  if (ul + pl + 2 > sizeof raw) die("user or password too long") ;
  raw[0] = 0 ;
  memcpy(raw + 1, user, ul) ;
  raw[1 + ul] = 0 ;
  memcpy(raw + 2 + ul, password, pl) ;
  EVP_EncodeBlock((unsigned char *)b64, raw, (int)(ul + pl + 2)) ;
  snprintf(authline, sizeof authline, "AUTH PLAIN %s\r\n", b64) ;
}

static double cpu_seconds (void)
{
  struct rusage ru ;
  if (getrusage(RUSAGE_SELF, &ru) < 0) return -1 ;
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6 ;
}

int main (int argc, char **argv)
{
  char const *ip = "127.0.0.1", *pwfile = 0 ;
  long port = 0 ;
  double limit = 120 ;
  pthread_t th[MAXP] ;
  double t0, t1, c0, c1 ;
  int opt ;
  while ((opt = getopt(argc, argv, "a:p:u:w:f:t:n:c:s:T:H")) != -1)
  {
    switch (opt)
    {
      case 'a': ip = optarg ; break ;
      case 'p': port = atol(optarg) ; break ;
      case 'u': user = optarg ; break ;
      case 'w': pwfile = optarg ; break ;
      case 'f': from = optarg ; break ;
      case 't': to = optarg ; break ;
      case 'n': total = atol(optarg) ; break ;
      case 'c': par = atol(optarg) ; break ;
      case 's': bodysize = atol(optarg) ; break ;
      case 'T': limit = atof(optarg) ; break ;
      case 'H': hold = 1 ; break ;
      default: die("usage: submit-load -p port -u user -w pwfile -f from -t to [-a ip] [-n N] [-c P] [-s size] [-T s] [-H]") ;
    }
  }
  if (port <= 0 || port > 65535 || !user || !pwfile || !from || !to) die("-p, -u, -w, -f and -t are required") ;
  if (total < 1 || par < 1 || par > MAXP || bodysize < 0 || bodysize > 1 << 24 || limit <= 0) die("bad -n, -c, -s or -T") ;
  if (hold) total = par ;
  if (par > total) par = total ;
  {
    FILE *f = fopen(pwfile, "r") ;
    size_t n ;
    if (!f) die("open %s: %s", pwfile, strerror(errno)) ;
    n = fread(password, 1, sizeof password - 1, f) ;
    fclose(f) ;
    password[n] = 0 ;
    password[strcspn(password, "\r\n")] = 0 ;
  }
  memset(&addr, 0, sizeof addr) ;
  addr.sin_family = AF_INET ;
  addr.sin_port = htons((unsigned short)port) ;
  if (inet_pton(AF_INET, ip, &addr.sin_addr) != 1) die("bad address %s", ip) ;
  make_message() ;
  make_authline() ;

  if (!OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG, 0)) die("OpenSSL init failed") ;
  ctx = SSL_CTX_new(TLS_client_method()) ;
  if (!ctx) die("SSL_CTX_new failed") ;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ;
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, 0) ;
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF) ;
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET) ;

  t0 = now() ;
  c0 = cpu_seconds() ;
  deadline = t0 + limit ;
  hard_end = deadline + limit + IOTIMEOUT ;
  for (long i = 0 ; i < par ; i++)
    if ((errno = pthread_create(&th[i], 0, worker, 0))) die("pthread_create: %s", strerror(errno)) ;
  if (hold)
  {
    struct timespec until ;
    char b[64] ;
    pthread_mutex_lock(&holdlock) ;
    clock_gettime(CLOCK_REALTIME, &until) ;
    until.tv_sec += (time_t)limit ;
    while (holdready + holdfailed < par)
      if (pthread_cond_timedwait(&holdcond, &holdlock, &until) == ETIMEDOUT) break ;
    printf("ready %ld failed %ld\n", holdready, holdfailed) ;
    fflush(stdout) ;
    pthread_mutex_unlock(&holdlock) ;
    /* held until stdin is closed (or -T more seconds pass) */
    for (;;)
    {
      struct pollfd pfd = { 0, POLLIN, 0 } ;
      double left = deadline + limit - now() ;
      if (left <= 0) break ;
      int r = poll(&pfd, 1, (int)(left * 1000) + 1) ;
      if (r < 0 && errno == EINTR) continue ;
      if (r <= 0 || read(0, b, sizeof b) <= 0) break ;
    }
    pthread_mutex_lock(&holdlock) ;
    holdrelease = 1 ;
    pthread_cond_broadcast(&holdcond) ;
    pthread_mutex_unlock(&holdlock) ;
  }
  for (long i = 0 ; i < par ; i++) pthread_join(th[i], 0) ;
  t1 = now() ;
  c1 = cpu_seconds() ;
  printf("ok=%ld fail=%ld elapsed=%.3f rate=%.2f cpu=%.3f", atomic_load(&nok), atomic_load(&nfail),
         t1 - t0, atomic_load(&nok) / (t1 - t0), c1 - c0) ;
  for (int i = 0 ; i < NPH ; i++)
    printf(" %s=%.2f", phname[i], phcount[i] ? 1000 * phsum[i] / phcount[i] : 0.0) ;
  printf("\n") ;
  SSL_CTX_free(ctx) ;
  free(message) ;
  return atomic_load(&nfail) || atomic_load(&nok) < total ? 1 : 0 ;
}
