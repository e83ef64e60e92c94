/* yubin-tlsd: TLS in its own process, server side, on OpenSSL 3.
 *
 *   yubin-tlsd [ -S ] [ -K timeout ] [ -u uid -g gid ] [ -- ] prog...
 *
 * Runs under tcpserver, with the TCP connection on fds 0 and 1.  Loads the
 * certificate and key (as root), drops privileges, then either
 *  - (default, implicit TLS: 465, 993, 995) does the handshake and runs prog
 *    with cleartext pipes on its fds 0 and 1 and SSL_PROTOCOL, SSL_CIPHER in
 *    its environment; or
 *  - (-S, STARTTLS, the UCSPI-TLS model of s6-ucspitlsd) runs prog at once
 *    on the connection itself, with SSLCTLFD, SSLREADFD and SSLWRITEFD in
 *    its environment, and does the handshake when prog writes 'y' on
 *    SSLCTLFD;
 * and relays TLS <-> cleartext until prog is done.  It exits with prog's
 * exit status.  Or
 *  - (-E, TLS on demand, no prog) started by the daemon itself at
 *    STARTTLS time, with the cleartext socket on fd 3 and the control
 *    socket on fd 4: handshake at once, parameters on fd 4, relay TLS <->
 *    fd 3 until both sides are done, exit 0.
 * The interface, byte for byte, is in yubin-tlsd.8.
 *
 * The tls_* functions hold the OpenSSL policy and the relay; they know
 * nothing of servers or clients beyond one flag, so the client-side twin
 * (yubin-tlsc) can share them (move them to common/tls.c then). */

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/djbunix.h>
#include <skalibs/exec.h>
#include <skalibs/iopause.h>
#include <skalibs/selfpipe.h>
#include <skalibs/setgroups.h>
#include <skalibs/sgetopt.h>
#include <skalibs/sig.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/tai.h>
#include <skalibs/types.h>

#include "connlimit.h"
#include "control.h"
#include "exitcodes.h"
#include "listen.h"
#include "nodump.h"
#include "pem.h"
#include "root.h"
#include "ylog.h"
#include "common/tlsd/stek.h"

#define USAGE "yubin-tlsd [ -S ] [ -K timeout ] [ -u uid -g gid ] [ -- ] prog... | yubin-tlsd -E [ -K timeout ] [ -u uid -g gid ]" \
  " | yubin-tlsd -l [ -U ] [ -c max ] [ -b backlog ] [ -x rules.cdb ] [ -h localname ] [ -S ] [ -K timeout ] -- ip port prog..."
#define dieusage() strerr_dieusage(EX_PERM, USAGE)
#define dienomem() strerr_diefu(EX_TEMP, "allocate memory")

char const *PROG = "tlsd" ;

#define EX_TLSFAIL 1          /* handshake failed or timed out */
#define TLS12_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20"
#define RELAYBUF 65536
#define REASONMAX 96
#define EFD_DATA 3            /* -E: the cleartext socket */
#define EFD_CTL 4             /* -E: the control socket */
#define TICKETLIFE 3600       /* control/tlsticketlifetime's default, seconds */
#define TICKETLIFE_MAX 86400
#define SIDCTX "yubin-tlsd"

/* ------------------------------------------------------------------ */
/* OpenSSL policy (shared with the client-side twin)                    */
/* ------------------------------------------------------------------ */

/* Initialize OpenSSL for a short-lived process: no clean-up at exit (the
 * kernel does it), and no system openssl.cnf unless $OPENSSL_CONF names
 * one (our policy is set in code; parsing the file is start-up work on
 * every connection).  Returns 1, 0 on error. */
static int tls_init (void)
{
  /* Don't register every legacy cipher and digest name (TLS fetches what
     it uses from the provider): about a millisecond per connection. */
  uint64_t flags = OPENSSL_INIT_NO_ATEXIT
                 | OPENSSL_INIT_NO_ADD_ALL_CIPHERS | OPENSSL_INIT_NO_ADD_ALL_DIGESTS
                 | (getenv("OPENSSL_CONF") ? OPENSSL_INIT_LOAD_CONFIG : OPENSSL_INIT_NO_LOAD_CONFIG) ;
  return OPENSSL_init_ssl(flags, 0) ;
}

/* A context with yubin's policy: TLS 1.2 and 1.3 only, ECDHE with AEAD
 * ciphers for 1.2 (1.3 suites are all AEAD), no compression, no
 * renegotiation, no session cache or tickets (each connection is its own
 * process: the server turns tickets on with keys shared through a file,
 * see tickets_ctx), an EOF without
 * close_notify taken as an EOF (the protocols above have their own framing),
 * partial writes and read-ahead for the non-blocking relay.  server: 1 for
 * a server (server cipher preference).  Returns 0 on error (OpenSSL's error
 * queue says why). */
static SSL_CTX *tls_ctx_new (int server)
{
  SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()) ;
  if (!ctx) return 0 ;
  uint64_t opts = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION
                | SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_TICKET ;
  if (server) opts |= SSL_OP_CIPHER_SERVER_PREFERENCE ;
  SSL_CTX_set_options(ctx, opts) ;
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER) ;
  SSL_CTX_set_read_ahead(ctx, 1) ;
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF) ;
  if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)
   || !SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS)
   || !SSL_CTX_set_num_tickets(ctx, 0))
  {
    SSL_CTX_free(ctx) ;
    return 0 ;
  }
  return ctx ;
}

/* The text of OpenSSL's last error, for a fatal message. */
static char const *tls_errtext (void)
{
  static char buf[256] ;
  unsigned long e = ERR_peek_last_error() ;
  if (!e) return "unknown error" ;
  ERR_error_string_n(e, buf, sizeof(buf)) ;
  return buf ;
}

/* The certificate chain and key files, read while we may (the key file is
 * readable only by the key group), parsed later: in STARTTLS mode most
 * sessions never ask for TLS, and building a context costs milliseconds. */
struct pemfiles
{
  stralloc certpath, keypath ;
  stralloc cert, key ;          /* the files' bytes; key wiped after use */
} ;

static void pemfiles_read (struct pemfiles *f)
{
  if (!openslurpclose(&f->cert, f->certpath.s)) strerr_diefusys(EX_TEMP, "load certificate ", f->certpath.s) ;
  if (!openslurpclose(&f->key, f->keypath.s)) strerr_diefusys(EX_TEMP, "load private key ", f->keypath.s) ;
}

static void pemfiles_wipe (struct pemfiles *f)
{
  if (f->key.s) OPENSSL_cleanse(f->key.s, f->key.a) ;
  stralloc_free(&f->key) ;
  stralloc_free(&f->cert) ;
  stralloc_free(&f->certpath) ;
  stralloc_free(&f->keypath) ;
}

/* Certificate chain and key, decoded by pem.c and given to OpenSSL as
 * DER: OpenSSL 3's PEM decoders cost about 2.5 ms per process, and
 * yubin-tlsd starts once per connection.  Returns 1, or 0 if the text
 * holds something this simple reader doesn't take (an encrypted key, no
 * block at all): then OpenSSL's own PEM reader gets it. */
static int tls_ctx_load_der (SSL_CTX *ctx, struct pemfiles const *f)
{
  stralloc label = STRALLOC_ZERO, der = STRALLOC_ZERO ;
  int ok = 0, ncerts = 0 ;
  size_t pos = 0 ;
  for (;;)
  {
    int r = pem_next(f->cert.s, f->cert.len, &pos, &label, &der) ;
    if (r < 0) goto end ;
    if (!r) break ;
    if (strcmp(label.s, "CERTIFICATE")) continue ;
    if (!ncerts)
    {
      if (SSL_CTX_use_certificate_ASN1(ctx, (int)der.len, (unsigned char const *)der.s) != 1) goto end ;
    }
    else
    {
      unsigned char const *p = (unsigned char const *)der.s ;
      X509 *x = d2i_X509(0, &p, (long)der.len) ;
      if (!x) goto end ;
      if (SSL_CTX_add0_chain_cert(ctx, x) != 1) { X509_free(x) ; goto end ; }
    }
    ncerts++ ;
  }
  if (!ncerts) goto end ;
  pos = 0 ;
  for (;;)
  {
    int r = pem_next(f->key.s, f->key.len, &pos, &label, &der) ;
    if (r <= 0) goto end ;
    size_t n = label.len ;
    if (n < 11 || strcmp(label.s + n - 11, "PRIVATE KEY") || !strcmp(label.s, "ENCRYPTED PRIVATE KEY")) continue ;
    unsigned char const *p = (unsigned char const *)der.s ;
    EVP_PKEY *k = d2i_AutoPrivateKey(0, &p, (long)der.len) ;
    if (!k) goto end ;
    ok = SSL_CTX_use_PrivateKey(ctx, k) == 1 ;
    EVP_PKEY_free(k) ;
    break ;
  }
 end:
  if (der.s) OPENSSL_cleanse(der.s, der.a) ;
  stralloc_free(&label) ;
  stralloc_free(&der) ;
  ERR_clear_error() ;
  return ok ;
}

/* OpenSSL's own PEM reader over the same bytes: the slow path. */
static int tls_ctx_load_pem (SSL_CTX *ctx, struct pemfiles const *f)
{
  int ok = 0, n = 0 ;
  BIO *b = BIO_new_mem_buf(f->cert.s, (int)f->cert.len) ;
  if (!b) return 0 ;
  X509 *x ;
  while ((x = PEM_read_bio_X509(b, 0, 0, 0)))
  {
    int r = n ? SSL_CTX_add0_chain_cert(ctx, x) : SSL_CTX_use_certificate(ctx, x) ;
    /* use_certificate takes a reference of its own; add0 owns x on success */
    if (!n || r != 1) X509_free(x) ;
    if (r != 1) { BIO_free(b) ; return 0 ; }
    n++ ;
  }
  BIO_free(b) ;
  if (!n) return 0 ;
  ERR_clear_error() ;
  b = BIO_new_mem_buf(f->key.s, (int)f->key.len) ;
  if (!b) return 0 ;
  EVP_PKEY *k = PEM_read_bio_PrivateKey(b, 0, 0, 0) ;
  BIO_free(b) ;
  if (k) { ok = SSL_CTX_use_PrivateKey(ctx, k) == 1 ; EVP_PKEY_free(k) ; }
  return ok ;
}

/* Session tickets across processes (stek.h): the keys are read (and
 * rotated when due, by the key file's owner only) with the start-up
 * privileges, used by the handshake, and wiped as soon as it is over. */
struct tickets
{
  struct stekpair keys ;
  unsigned long life ;  /* seconds: key rotation and session lifetime; 0: no tickets */
  int enc ;             /* new tickets with keys.cur */
  int decprev ;         /* tickets under keys.prev still resume */
} ;

static struct tickets tickets = { .life = 0, .enc = 0, .decprev = 0 } ;

static void tickets_error (char const *what, char const *path)
{
  ylog("error", "what", what, "file", path, "errno", strerror(errno), (char *)0) ;
}

/* Called before the privileges drop; keypath's owner writes the file. */
static void tickets_load (char const *keypath)
{
  unsigned long life ;
  stralloc path = STRALLOC_ZERO ;
  if (control_readulong(&life, "tlsticketlifetime", TICKETLIFE) < 0)
    strerr_diefusys(EX_TEMP, "read control/tlsticketlifetime") ;
  if (!life) return ;
  if (life > TICKETLIFE_MAX) life = TICKETLIFE_MAX ;
  if (!yubin_path(&path, "control/tlsticketkeys")) dienomem() ;
  uint64_t now = (uint64_t)time(0) ;
  int r = stek_read(path.s, &tickets.keys) ;
  if (r < 0) { tickets_error("read-ticket-keys", path.s) ; goto end ; }
  if (stek_due(&tickets.keys, now, life))
  {
    struct stat st ;
    /* only the key's owner: a file owned by the uid we drop to could be
       chmodded and read by prog */
    if (stat(keypath, &st) < 0) strerr_diefusys(EX_TEMP, "stat ", keypath) ;
    if (st.st_uid == geteuid()
     && stek_rotate(path.s, &tickets.keys, now, (uid_t)-1, st.st_gid, st.st_mode & 0640) < 0)
      tickets_error("rotate-ticket-keys", path.s) ;
  }
  /* one that could not rotate goes on with the current key for one more
     lifetime, no longer */
  if (tickets.keys.cur.created && now >= tickets.keys.cur.created && now - tickets.keys.cur.created < 2 * (uint64_t)life)
  {
    tickets.life = life ;
    tickets.enc = 1 ;
    tickets.decprev = !!tickets.keys.prev.created ;
  }
 end:
  if (!tickets.enc) stek_wipe(&tickets.keys) ;
  stralloc_free(&path) ;
}

static void tickets_wipe (void)
{
  stek_wipe(&tickets.keys) ;
  tickets.enc = tickets.decprev = 0 ;
}

/* OpenSSL's ticket callback: AES-256-CBC and HMAC-SHA256 under our keys.
 * enc: a new ticket under the current key; else find the ticket's key by
 * name: the current one (1), the previous one (2: resume, and issue a new
 * ticket under the current key), none (0: a full handshake). */
static int tickets_cb (SSL *ssl, unsigned char *name, unsigned char *iv, EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
  struct stek const *k ;
  int r = 1 ;
  (void)ssl ;
  if (!tickets.enc) return 0 ;
  if (enc)
  {
    k = &tickets.keys.cur ;
    memcpy(name, k->name, STEK_NAMELEN) ;
    if (RAND_bytes(iv, 16) != 1) return -1 ;
  }
  else if (!memcmp(name, tickets.keys.cur.name, STEK_NAMELEN)) k = &tickets.keys.cur ;
  else if (tickets.decprev && !memcmp(name, tickets.keys.prev.name, STEK_NAMELEN)) { k = &tickets.keys.prev ; r = 2 ; }
  else return 0 ;
  OSSL_PARAM params[3] =
  {
    OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, STEK_SECRETLEN),
    OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
    OSSL_PARAM_construct_end()
  } ;
  if (!EVP_MAC_CTX_set_params(hctx, params)) return -1 ;
  if (!EVP_CipherInit_ex(cctx, EVP_aes_256_cbc(), 0, k->aes, iv, enc)) return -1 ;
  return r ;
}

/* Tickets on ctx, if tickets_load found usable keys.  Returns 0 on error. */
static int tickets_ctx (SSL_CTX *ctx)
{
  if (!tickets.enc) return 1 ;
  SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET) ;
  SSL_CTX_set_timeout(ctx, (long)tickets.life) ;
  return SSL_CTX_set_num_tickets(ctx, 1)
      && SSL_CTX_set_session_id_context(ctx, (unsigned char const *)SIDCTX, sizeof(SIDCTX) - 1)
      && SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, &tickets_cb) ;
}

static SSL_CTX *prebuilt = 0 ;   /* -l: built by the listener before it forks */

/* The server context with the certificate and key: dies on failure. */
static SSL_CTX *tls_ctx_make (struct pemfiles *f)
{
  if (!tls_init()) strerr_diefu(EX_TEMP, "initialize OpenSSL: ", tls_errtext()) ;
  SSL_CTX *ctx = tls_ctx_new(1) ;
  if (!ctx) strerr_diefu(EX_TEMP, "create TLS context: ", tls_errtext()) ;
  if (!tls_ctx_load_der(ctx, f) && !tls_ctx_load_pem(ctx, f))
    strerr_diefu(EX_TEMP, "load certificate ", f->certpath.s, " and key ", f->keypath.s, ": ", tls_errtext()) ;
  if (SSL_CTX_check_private_key(ctx) != 1)
    strerr_dief(EX_TEMP, "private key ", f->keypath.s, " does not match certificate ", f->certpath.s) ;
  if (!tickets_ctx(ctx)) strerr_diefu(EX_TEMP, "set up session tickets: ", tls_errtext()) ;
  pemfiles_wipe(f) ;
  return ctx ;
}

/* The context for this connection: the listener's (OpenSSL's set-up,
 * about 3 ms, paid once for all connections), or a new one. */
static SSL_CTX *server_ctx (struct pemfiles *f)
{
  return prebuilt ? prebuilt : tls_ctx_make(f) ;
}

/* A listener's child: tickets only under a key young enough, by the rule
 * of tickets_load, now (the listener execs afresh every lifetime and reads
 * the keys again; this covers a key nobody rotated). */
static void tickets_recheck (void)
{
  uint64_t now = (uint64_t)time(0) ;
  if (tickets.enc && !(now >= tickets.keys.cur.created && now - tickets.keys.cur.created < 2 * (uint64_t)tickets.life))
    tickets.enc = 0 ;
}

/* A one-word reason for a failed SSL call, from its SSL_get_error() code
 * and the errno it left: OpenSSL's reason text with '-' for spaces
 * ("wrong-version-number", "http-request", "unsupported-protocol"),
 * "eof", or the errno text.  Clears the error queue. */
static char const *tls_reason (char *buf, size_t max, int e, int err)
{
  char const *s = 0 ;
  unsigned long oe = ERR_peek_last_error() ;
  if (e == SSL_ERROR_SSL && oe) s = ERR_reason_error_string(oe) ;
  else if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && !err)) s = "eof" ;
  else if (e == SSL_ERROR_SYSCALL) s = strerror(err) ;
  if (!s) s = "unknown" ;
  size_t i = 0 ;
  for (; s[i] && i + 1 < max ; i++) buf[i] = s[i] == ' ' ? '-' : s[i] ;
  buf[i] = 0 ;
  ERR_clear_error() ;
  return buf ;
}

/* Run the handshake of ssl (its fds non-blocking: netr for reading, netw
 * for writing) until done or until deadline (0: none).  Returns 1, or 0
 * with a reason ("timeout", or as tls_reason) in why. */
static int tls_handshake (SSL *ssl, int netr, int netw, tain const *deadline, char *why, size_t whymax)
{
  for (;;)
  {
    ERR_clear_error() ;
    int r = SSL_do_handshake(ssl) ;
    if (r == 1) return 1 ;
    int err = errno ;
    int e = SSL_get_error(ssl, r) ;
    iopause_fd x = { .fd = netr, .events = IOPAUSE_READ, .revents = 0 } ;
    if (e == SSL_ERROR_WANT_WRITE) { x.fd = netw ; x.events = IOPAUSE_WRITE ; }
    else if (e != SSL_ERROR_WANT_READ)
    {
      tls_reason(why, whymax, e, err) ;
      return 0 ;
    }
    r = iopause_g(&x, 1, deadline) ;
    if (r < 0 && errno != EINTR) strerr_diefusys(EX_TEMP, "iopause") ;
    if (!r)
    {
      strncpy(why, "timeout", whymax) ;
      why[whymax - 1] = 0 ;
      return 0 ;
    }
  }
}

/* Is s a plausible host name (letters, digits, '-', '.', '_'), safe to
 * pass on in the environment? */
static int tls_hostname_ok (char const *s)
{
  size_t i = 0 ;
  for (; s[i] ; i++)
  {
    char c = s[i] ;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
       || c == '-' || c == '.' || c == '_')) return 0 ;
  }
  return i > 0 && i <= 253 ;
}

/* The server name the client sent, if it is a sane host name, else 0. */
static char const *tls_sni (SSL *ssl)
{
  char const *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) ;
  return sni && tls_hostname_ok(sni) ? sni : 0 ;
}

/* Append the parameters of an established session to sa, each as
 * "NAME=value\0": SSL_PROTOCOL, SSL_CIPHER, and SSL_TLS_SNI_SERVERNAME if
 * the client sent a (sane) server name.  Returns 1, 0 on ENOMEM. */
static int tls_params (SSL *ssl, stralloc *sa)
{
  char const *sni = tls_sni(ssl) ;
  if (!stralloc_cats(sa, "SSL_PROTOCOL=") || !stralloc_cats(sa, SSL_get_version(ssl)) || !stralloc_0(sa)
   || !stralloc_cats(sa, "SSL_CIPHER=") || !stralloc_cats(sa, SSL_get_cipher_name(ssl)) || !stralloc_0(sa))
    return 0 ;
  if (sni)
    return stralloc_cats(sa, "SSL_TLS_SNI_SERVERNAME=") && stralloc_cats(sa, sni) && stralloc_0(sa) ;
  return 1 ;
}

/* ------------------------------------------------------------------ */
/* The relay                                                            */
/* ------------------------------------------------------------------ */

struct child
{
  pid_t pid ;
  int wstat ;
  int dead ;
  int sfd ;       /* selfpipe, trapping SIGCHLD */
} ;

/* Read the selfpipe; reap the child if it is gone.  Returns 1 if it is. */
static int child_check (struct child *c)
{
  for (;;)
  {
    int sig = selfpipe_read() ;
    if (sig < 0) strerr_diefusys(EX_TEMP, "read selfpipe") ;
    if (!sig) break ;
  }
  if (!c->dead)
  {
    pid_t r = wait_pid_nohang(c->pid, &c->wstat) ;
    if (r < 0) strerr_diefusys(EX_TEMP, "wait for ", "child") ;
    if (r > 0) c->dead = 1 ;
  }
  return c->dead ;
}

/* Wait for the child (blocking) and return its exit status, as a shell
 * would (128 + signal if killed). */
static int child_status (struct child *c)
{
  if (!c->dead)
  {
    if (wait_pid(c->pid, &c->wstat) < 0) strerr_diefusys(EX_TEMP, "wait for ", "child") ;
    c->dead = 1 ;
  }
  return wait_estatus(c->wstat) ;
}

struct relaybuf
{
  char s[RELAYBUF] ;
  size_t pos ;    /* first pending byte */
  size_t len ;    /* end of pending bytes */
} ;

static struct relaybuf fromnet, tonet ;

/* Room at the end of b, sliding pending bytes to the front if needed. */
static size_t relaybuf_room (struct relaybuf *b)
{
  if (b->pos == b->len) b->pos = b->len = 0 ;
  else if (b->len == RELAYBUF && b->pos)
  {
    memmove(b->s, b->s + b->pos, b->len - b->pos) ;
    b->len -= b->pos ;
    b->pos = 0 ;
  }
  return RELAYBUF - b->len ;
}

static void fd_closep (int *fd)
{
  if (*fd >= 0) fd_close(*fd) ;
  *fd = -1 ;
}

/* Relay between ssl (network side: netr, netw, non-blocking) and the
 * child's cleartext pipes: to = its stdin (we write), from = its stdout (we
 * read), both non-blocking.  c NULL: no child (-E): to and from are two
 * fds of one socket, and the end of what we write is a shutdown of its
 * write side, not only a close.  Network EOF: the child's stdin is closed once
 * everything read has been written to it.  Child's stdout EOF (or the child
 * gone and its stdout drained): what is buffered is sent, then close_notify
 * and a shutdown of the network write side, bounded by flushms (0: no
 * bound).  A broken network ends the relay at once.  The pipes are closed
 * on return; the caller waits for the child. */
static void tls_relay (SSL *ssl, int netr, int netw, int to, int from, struct child *c, unsigned int flushms, char const *ip)
{
#define closeto() do { if (!c && to >= 0) fd_shutdown(to, 1) ; fd_closep(&to) ; } while (0)
  int rdwant = 0, wrwant = 0 ;  /* 0: try the SSL call; else wait for this event on the network */
  int toready = 1, fromready = 1 ;
  int neteof = 0, netdead = 0 ;
  int flushing = 0 ;
  tain deadline ;
  char why[REASONMAX] ;
  fromnet.pos = fromnet.len = tonet.pos = tonet.len = 0 ;

  for (;;)
  {
    int progress ;
    do
    {
      progress = 0 ;

      /* network -> fromnet */
      if (!neteof && to >= 0 && !rdwant && relaybuf_room(&fromnet))
      {
        ERR_clear_error() ;
        int r = SSL_read(ssl, fromnet.s + fromnet.len, RELAYBUF - fromnet.len) ;
        if (r > 0) { fromnet.len += r ; progress = 1 ; }
        else
        {
          int err = errno ;
          int e = SSL_get_error(ssl, r) ;
          if (e == SSL_ERROR_WANT_READ) rdwant = IOPAUSE_READ ;
          else if (e == SSL_ERROR_WANT_WRITE) rdwant = IOPAUSE_WRITE ;
          else
          {
            neteof = 1 ;
            if (e != SSL_ERROR_ZERO_RETURN)
            {
              netdead = 1 ;
              if (e == SSL_ERROR_SSL) ylog("tls-error", "ip", ip, "reason", tls_reason(why, sizeof(why), e, err), (char *)0) ;
            }
            ERR_clear_error() ;
            progress = 1 ;
          }
        }
      }

      /* fromnet -> child's stdin */
      if (to >= 0 && toready && fromnet.pos < fromnet.len)
      {
        ssize_t w = fd_write(to, fromnet.s + fromnet.pos, fromnet.len - fromnet.pos) ;
        if (w > 0) { fromnet.pos += w ; progress = 1 ; }
        else if (w < 0 && errno == EAGAIN) toready = 0 ;
        else { closeto() ; fromnet.pos = fromnet.len = 0 ; progress = 1 ; }
      }
      if (to >= 0 && neteof && fromnet.pos == fromnet.len) { closeto() ; progress = 1 ; }

      /* child's stdout -> tonet */
      if (from >= 0 && fromready && relaybuf_room(&tonet))
      {
        ssize_t r = fd_read(from, tonet.s + tonet.len, RELAYBUF - tonet.len) ;
        if (r > 0) { tonet.len += r ; progress = 1 ; }
        else if (r < 0 && errno == EAGAIN && (!c || !c->dead)) fromready = 0 ;
        else { fd_closep(&from) ; progress = 1 ; }  /* EOF, error, or child gone and pipe drained */
      }

      /* tonet -> network */
      if (!netdead && !wrwant && tonet.pos < tonet.len)
      {
        ERR_clear_error() ;
        int r = SSL_write(ssl, tonet.s + tonet.pos, tonet.len - tonet.pos) ;
        if (r > 0) { tonet.pos += r ; progress = 1 ; }
        else
        {
          int err = errno ;
          int e = SSL_get_error(ssl, r) ;
          if (e == SSL_ERROR_WANT_READ) wrwant = IOPAUSE_READ ;
          else if (e == SSL_ERROR_WANT_WRITE) wrwant = IOPAUSE_WRITE ;
          else
          {
            neteof = netdead = 1 ;
            if (e == SSL_ERROR_SSL) ylog("tls-error", "ip", ip, "reason", tls_reason(why, sizeof(why), e, err), (char *)0) ;
            ERR_clear_error() ;
            progress = 1 ;
          }
        }
      }
    } while (progress) ;

    if (from < 0 && !flushing)
    {
      /* the child is done: what is left, and close_notify, get flushms */
      flushing = 1 ;
      if (flushms) { tain t ; tain_from_millisecs(&t, flushms) ; tain_add_g(&deadline, &t) ; }
    }
    if (netdead) break ;
    if (from < 0 && tonet.pos == tonet.len) break ;

    iopause_fd x[5] ;
    unsigned int n = 0 ;
    int isig = -1, ir = -1, iw = -1, ito = -1, ifrom = -1 ;
    short rev = 0, wev = 0 ;
    int wantread = !neteof && to >= 0 && fromnet.len < RELAYBUF ;
    int wantwrite = tonet.pos < tonet.len ;
    if (wantread && rdwant == IOPAUSE_READ) rev = 1 ;
    if (wantread && rdwant == IOPAUSE_WRITE) wev = 1 ;
    if (wantwrite && wrwant == IOPAUSE_READ) rev = 1 ;
    if (wantwrite && wrwant == IOPAUSE_WRITE) wev = 1 ;
    if (c) { isig = n ; x[n].fd = c->sfd ; x[n].events = IOPAUSE_READ ; x[n++].revents = 0 ; }
    if (rev) { ir = n ; x[n].fd = netr ; x[n].events = IOPAUSE_READ ; x[n++].revents = 0 ; }
    if (wev) { iw = n ; x[n].fd = netw ; x[n].events = IOPAUSE_WRITE ; x[n++].revents = 0 ; }
    if (to >= 0 && !toready && fromnet.pos < fromnet.len)
    { ito = n ; x[n].fd = to ; x[n].events = IOPAUSE_WRITE ; x[n++].revents = 0 ; }
    if (from >= 0 && !fromready && tonet.len < RELAYBUF)
    { ifrom = n ; x[n].fd = from ; x[n].events = IOPAUSE_READ ; x[n++].revents = 0 ; }

    int r = iopause_g(x, n, flushing && flushms ? &deadline : 0) ;
    if (r < 0)
    {
      if (errno == EINTR) continue ;
      strerr_diefusys(EX_TEMP, "iopause") ;
    }
    if (!r)
    {
      ylog("timeout", "ip", ip, "what", "flush", (char *)0) ;
      netdead = 1 ;
      break ;
    }
    if (isig >= 0 && x[isig].revents & IOPAUSE_READ && child_check(c)) fromready = 1 ;
    if (ir >= 0 && x[ir].revents)
    {
      if (rdwant == IOPAUSE_READ) rdwant = 0 ;
      if (wrwant == IOPAUSE_READ) wrwant = 0 ;
    }
    if (iw >= 0 && x[iw].revents)
    {
      if (rdwant == IOPAUSE_WRITE) rdwant = 0 ;
      if (wrwant == IOPAUSE_WRITE) wrwant = 0 ;
    }
    if (ito >= 0 && x[ito].revents) toready = 1 ;
    if (ifrom >= 0 && x[ifrom].revents) fromready = 1 ;
  }

  closeto() ;
#undef closeto
  fd_closep(&from) ;
  if (!netdead)
  {
    /* send close_notify (no need to wait for the client's) */
    for (;;)
    {
      ERR_clear_error() ;
      int r = SSL_shutdown(ssl) ;
      if (r >= 0) break ;
      int e = SSL_get_error(ssl, r) ;
      if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ) break ;
      iopause_fd x = { .fd = e == SSL_ERROR_WANT_WRITE ? netw : netr, .events = e == SSL_ERROR_WANT_WRITE ? IOPAUSE_WRITE : IOPAUSE_READ, .revents = 0 } ;
      r = iopause_g(&x, 1, flushing && flushms ? &deadline : 0) ;
      if (r < 0 && errno != EINTR) strerr_diefusys(EX_TEMP, "iopause") ;
      if (!r) break ;
    }
    ERR_clear_error() ;
  }
  fd_shutdown(netw, 1) ;
}

/* ------------------------------------------------------------------ */
/* Set-up                                                               */
/* ------------------------------------------------------------------ */

/* Certificate and key paths: control/tlscert and control/tlskey hold a path,
 * absolute or relative to <root>/control; default control/cert.pem and
 * control/key.pem. */
static void control_path (stralloc *sa, char const *file, char const *def)
{
  stralloc v = STRALLOC_ZERO, rel = STRALLOC_ZERO ;
  if (control_readline(&v, file, def) < 0) strerr_diefusys(EX_TEMP, "read control/", file) ;
  if (!v.len) strerr_dief(EX_TEMP, "control/", file, " is empty") ;
  if (v.s[0] == '/')
  {
    sa->len = 0 ;
    if (!stralloc_copyb(sa, v.s, v.len) || !stralloc_0(sa)) dienomem() ;
  }
  else if (!stralloc_cats(&rel, "control/") || !stralloc_catb(&rel, v.s, v.len) || !stralloc_0(&rel)
        || !yubin_path(sa, rel.s)) dienomem() ;
  stralloc_free(&v) ;
  stralloc_free(&rel) ;
}

/* Become uid/gid: -u/-g if given, else $UID/$GID (and $GIDLIST, as
 * s6-envuidgid sets them).  Refuses to go on as root. */
static void drop_privileges (char const *uidarg, char const *gidarg)
{
  char const *us = uidarg ? uidarg : getenv("UID") ;
  char const *gs = gidarg ? gidarg : getenv("GID") ;
  if (us || gs)
  {
    uid_t uid ;
    gid_t gid ;
    if (!us || !gs) strerr_dief(EX_PERM, "need both a uid and a gid (-u and -g, or $UID and $GID)") ;
    size_t n = uid0_scan(us, &uid) ;
    if (!n || us[n]) strerr_dief(EX_PERM, "invalid uid: ", us) ;
    n = gid0_scan(gs, &gid) ;
    if (!n || gs[n]) strerr_dief(EX_PERM, "invalid gid: ", gs) ;
    if (!geteuid())
    {
      gid_t list[256] ;
      size_t ngroups = 0 ;
      char const *gl = gidarg ? 0 : getenv("GIDLIST") ;
      if (gl && gl[gid_scanlist(list, 256, gl, &ngroups)]) strerr_dief(EX_PERM, "invalid $GIDLIST: ", gl) ;
      if (setgroups_and_gid(gid, ngroups, list) < 0) strerr_diefusys(EX_TEMP, "setgroups") ;
    }
    if (setgid(gid) < 0) strerr_diefusys(EX_TEMP, "setgid ", gs) ;
    if (setuid(uid) < 0) strerr_diefusys(EX_TEMP, "setuid ", us) ;
  }
  if (!getuid() || !geteuid())
    strerr_dief(EX_PERM, "refusing to run as root: give -u and -g, or $UID and $GID") ;
}

static void nonblock (int fd)
{
  if (ndelay_on(fd) < 0) strerr_diefusys(EX_TEMP, "set non-blocking mode") ;
}

static void child_trap (struct child *c)
{
  c->sfd = selfpipe_init() ;
  if (c->sfd < 0) strerr_diefusys(EX_TEMP, "init selfpipe") ;
  if (!selfpipe_trap(SIGCHLD)) strerr_diefusys(EX_TEMP, "trap SIGCHLD") ;
  child_check(c) ;  /* it may have died before the trap */
}

static SSL *ssl_new (SSL_CTX *ctx)
{
  SSL *ssl = SSL_new(ctx) ;
  if (!ssl || !SSL_set_rfd(ssl, 0) || !SSL_set_wfd(ssl, 1))
    strerr_diefu(EX_TEMP, "create TLS session: ", tls_errtext()) ;
  SSL_set_accept_state(ssl) ;
  return ssl ;
}

static void log_tls (SSL *ssl, char const *ip)
{
  ylog("tls", "ip", ip, "proto", SSL_get_version(ssl), "cipher", SSL_get_cipher_name(ssl),
       "sni", tls_sni(ssl), "resumed", SSL_session_reused(ssl) ? "yes" : "no", (char *)0) ;
}

/* The handshake on the connection (fds 0 and 1), within kms milliseconds
 * (0: no deadline).  Returns the session, or NULL after logging
 * handshake-fail (which banwatch's yubin-abuse jail counts). */
static SSL *server_handshake (SSL_CTX *ctx, unsigned int kms, char const *ip)
{
  char why[REASONMAX] ;
  tain deadline ;
  nonblock(0) ;
  nonblock(1) ;
  SSL *ssl = ssl_new(ctx) ;
  if (kms) { tain t ; tain_from_millisecs(&t, kms) ; tain_add_g(&deadline, &t) ; }
  int ok = tls_handshake(ssl, 0, 1, kms ? &deadline : 0, why, sizeof(why)) ;
  tickets_wipe() ;   /* the tickets are sent: the keys are not needed any more */
  if (ok) return ssl ;
  ylog("handshake-fail", "ip", ip, "reason", why, (char *)0) ;
  SSL_free(ssl) ;
  return 0 ;
}

/* implicit TLS: handshake, then prog on cleartext pipes */
/* $CONNLIMIT, implicit TLS: the session's slot is taken here, before the
 * handshake (a handshake that never ends holds it too), and prog is told
 * not to take another (common/connlimit.h).  1 go on, 0 refused. */
static int take_connection_slot (char const *ip)
{
  unsigned long n ;
  if (!getenv("CONNLIMIT") || !ip) return 1 ;
  int r = connlimit_take(ip, 1, &n) ;
  if (r > 0) return 1 ;
  if (r < 0) strerr_diefusys(EX_TEMP, "take a connection slot for ", ip) ;
  connlimit_log_refusal(ip, n) ;
  return 0 ;
}

static int run_implicit (struct pemfiles *files, char const *const *argv, unsigned int kms, char const *ip)
{
  if (!take_connection_slot(ip)) return 0 ;
  SSL_CTX *ctx = server_ctx(files) ;
  SSL *ssl = server_handshake(ctx, kms, ip) ;
  if (!ssl) { SSL_CTX_free(ctx) ; return EX_TLSFAIL ; }
  log_tls(ssl, ip) ;

  stralloc env = STRALLOC_ZERO ;
  if (!tls_params(ssl, &env)) dienomem() ;
  if (!tls_sni(ssl) && !stralloc_catb(&env, "SSL_TLS_SNI_SERVERNAME", sizeof("SSL_TLS_SNI_SERVERNAME"))) dienomem() ;
  if (!stralloc_catb(&env, "SSLCTLFD\0SSLREADFD\0SSLWRITEFD\0CONNLIMIT", sizeof("SSLCTLFD\0SSLREADFD\0SSLWRITEFD\0CONNLIMIT"))) dienomem() ;

  int pin[2], pout[2] ;   /* pin: we write, child reads as fd 0; pout: child writes as fd 1 */
  if (pipecoe(pin) < 0 || pipecoe(pout) < 0) strerr_diefusys(EX_TEMP, "pipe") ;
  struct child c = { .pid = 0, .wstat = 0, .dead = 0, .sfd = -1 } ;
  c.pid = fork() ;
  if (c.pid < 0) strerr_diefusys(EX_TEMP, "fork") ;
  if (!c.pid)
  {
    if (fd_move(0, pin[0]) < 0 || fd_move(1, pout[1]) < 0) strerr_diefusys(EX_TEMP, "move fds") ;
    if (!sig_restore(SIGPIPE)) strerr_diefusys(EX_TEMP, "restore SIGPIPE") ;
    xmexec_m(argv, env.s, env.len) ;
  }
  stralloc_free(&env) ;
  fd_close(pin[0]) ;
  fd_close(pout[1]) ;
  nonblock(pin[1]) ;
  nonblock(pout[0]) ;
  child_trap(&c) ;
  tls_relay(ssl, 0, 1, pin[1], pout[0], &c, kms, ip) ;
  SSL_free(ssl) ;
  SSL_CTX_free(ctx) ;
  return child_status(&c) ;
}

/* STARTTLS: prog at once on the connection, handshake on its 'y' */
static int run_starttls (struct pemfiles *files, char const *const *argv, unsigned int kms, char const *ip)
{
  int ctl[2], pin[2], pout[2] ;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) < 0) strerr_diefusys(EX_TEMP, "socketpair") ;
  if (pipecoe(pin) < 0 || pipecoe(pout) < 0) strerr_diefusys(EX_TEMP, "pipe") ;

  stralloc env = STRALLOC_ZERO ;
  {
    char fmt[UINT_FMT] ;
    fmt[uint_fmt(fmt, ctl[1])] = 0 ;
    if (!stralloc_cats(&env, "SSLCTLFD=") || !stralloc_cats(&env, fmt) || !stralloc_0(&env)) dienomem() ;
    fmt[uint_fmt(fmt, pin[0])] = 0 ;
    if (!stralloc_cats(&env, "SSLREADFD=") || !stralloc_cats(&env, fmt) || !stralloc_0(&env)) dienomem() ;
    fmt[uint_fmt(fmt, pout[1])] = 0 ;
    if (!stralloc_cats(&env, "SSLWRITEFD=") || !stralloc_cats(&env, fmt) || !stralloc_0(&env)) dienomem() ;
    if (!stralloc_catb(&env, "SSL_PROTOCOL\0SSL_CIPHER\0SSL_TLS_SNI_SERVERNAME",
                       sizeof("SSL_PROTOCOL\0SSL_CIPHER\0SSL_TLS_SNI_SERVERNAME"))) dienomem() ;
  }
  struct child c = { .pid = 0, .wstat = 0, .dead = 0, .sfd = -1 } ;
  c.pid = fork() ;
  if (c.pid < 0) strerr_diefusys(EX_TEMP, "fork") ;
  if (!c.pid)
  {
    if (uncoe(ctl[1]) < 0 || uncoe(pin[0]) < 0 || uncoe(pout[1]) < 0) strerr_diefusys(EX_TEMP, "uncoe") ;
    if (!sig_restore(SIGPIPE)) strerr_diefusys(EX_TEMP, "restore SIGPIPE") ;
    xmexec_m(argv, env.s, env.len) ;
  }
  stralloc_free(&env) ;
  fd_close(ctl[1]) ;
  fd_close(pin[0]) ;
  fd_close(pout[1]) ;
  child_trap(&c) ;

  /* wait for the command, or the child's end */
  char cmd = 0 ;
  while (!cmd)
  {
    iopause_fd x[2] = { { .fd = c.sfd, .events = IOPAUSE_READ, .revents = 0 }, { .fd = ctl[0], .events = IOPAUSE_READ, .revents = 0 } } ;
    int r = iopause_g(x, 2, 0) ;
    if (r < 0)
    {
      if (errno == EINTR) continue ;
      strerr_diefusys(EX_TEMP, "iopause") ;
    }
    if (x[1].revents)
    {
      ssize_t n = fd_read(ctl[0], &cmd, 1) ;
      if (n == 1 && cmd != 'y' && cmd != 'Y')
        ylog("error", "ip", ip, "reason", "bad-control-command", (char *)0) ;
      if (n != 1 || (cmd != 'y' && cmd != 'Y'))
      {
        /* the child closed its control fd, or misspoke: no TLS; stay
         * until it is done, without the key */
        pemfiles_wipe(files) ;
        tickets_wipe() ;
        fd_close(ctl[0]) ;
        fd_close(pin[1]) ;
        fd_close(pout[0]) ;
        return child_status(&c) ;
      }
    }
    else if (x[0].revents & IOPAUSE_READ && child_check(&c)) return child_status(&c) ;
  }

  /* The child has written its last cleartext on the connection and will
   * not read it any more: everything the client sends from now on is TLS.
   * Cleartext it had pipelined is in the child's buffer (which it throws
   * away) or still in the socket, where the handshake rejects it. */
  SSL_CTX *ctx = server_ctx(files) ;
  SSL *ssl = server_handshake(ctx, kms, ip) ;
  if (!ssl)
  {
    SSL_CTX_free(ctx) ;
    fd_shutdown(0, 0) ;
    fd_shutdown(1, 1) ;
    fd_close(ctl[0]) ;
    fd_close(pin[1]) ;
    fd_close(pout[0]) ;
    child_status(&c) ;
    return EX_TLSFAIL ;
  }
  log_tls(ssl, ip) ;

  stralloc reply = STRALLOC_ZERO ;
  if (!tls_params(ssl, &reply) || !stralloc_0(&reply)) dienomem() ;
  if (allwrite(ctl[0], reply.s, reply.len) < reply.len && errno != EPIPE)
    strerr_diefusys(EX_TEMP, "write to control socket") ;
  stralloc_free(&reply) ;
  fd_close(ctl[0]) ;
  nonblock(pin[1]) ;
  nonblock(pout[0]) ;
  tls_relay(ssl, 0, 1, pin[1], pout[0], &c, kms, ip) ;
  SSL_free(ssl) ;
  SSL_CTX_free(ctx) ;
  return child_status(&c) ;
}

/* TLS on demand (-E): the daemon started us at STARTTLS time, with the
 * connection on fds 0 and 1, its cleartext socket on EFD_DATA and the
 * control socket on EFD_CTL: handshake now, parameters on the control
 * socket (as -S writes them after 'y'), then the relay. */
static int run_ondemand (struct pemfiles *files, unsigned int kms, char const *ip)
{
  SSL_CTX *ctx = server_ctx(files) ;
  SSL *ssl = server_handshake(ctx, kms, ip) ;
  if (!ssl)
  {
    SSL_CTX_free(ctx) ;
    fd_shutdown(0, 0) ;
    fd_shutdown(1, 1) ;
    fd_close(EFD_CTL) ;   /* EOF there: the daemon leaves without a word */
    fd_close(EFD_DATA) ;
    return EX_TLSFAIL ;
  }
  log_tls(ssl, ip) ;

  stralloc reply = STRALLOC_ZERO ;
  if (!tls_params(ssl, &reply) || !stralloc_0(&reply)) dienomem() ;
  if (allwrite(EFD_CTL, reply.s, reply.len) < reply.len && errno != EPIPE)
    strerr_diefusys(EX_TEMP, "write to control socket") ;
  stralloc_free(&reply) ;
  fd_close(EFD_CTL) ;
  int from = dup(EFD_DATA) ;
  if (from < 0) strerr_diefusys(EX_TEMP, "dup") ;
  nonblock(EFD_DATA) ;    /* the same file as from */
  tls_relay(ssl, 0, 1, EFD_DATA, from, 0, kms, ip) ;
  SSL_free(ssl) ;
  SSL_CTX_free(ctx) ;
  return 0 ;
}

/* fd is open, and a socket */
static int is_socket (int fd)
{
  int type ;
  socklen_t len = sizeof(type) ;
  return !getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) ;
}

int main (int argc, char const *const *argv)
{
  int flagstarttls = 0, flagondemand = 0, listener = 0 ;
  unsigned int kms = 30000 ;
  char const *uidarg = 0, *gidarg = 0 ;
  struct listen_conf lc = LISTEN_CONF_ZERO ;
  lc.argv = argv ;
  {
    subgetopt l = SUBGETOPT_ZERO ;
    for (;;)
    {
      int opt = subgetopt_r(argc, argv, "SEK:u:g:lUc:b:x:h:F:", &l) ;
      if (opt == -1) break ;
      switch (opt)
      {
        case 'S' : flagstarttls = 1 ; break ;
        case 'E' : flagondemand = 1 ; break ;
        case 'K' :
        {
          size_t n = uint0_scan(l.arg, &kms) ;
          if (!n || l.arg[n] || kms > 86400000) dieusage() ;
          break ;
        }
        case 'u' : uidarg = l.arg ; break ;
        case 'g' : gidarg = l.arg ; break ;
        case 'l' : listener = 1 ; break ;
        case 'U' : lc.dropuid = 1 ; break ;
        case 'c' : if (!uint0_scan(l.arg, &lc.maxconn)) dieusage() ; break ;
        case 'b' : if (!uint0_scan(l.arg, &lc.backlog)) dieusage() ; break ;
        case 'x' : lc.rules = l.arg ; break ;
        case 'h' : lc.localname = l.arg ; break ;
        case 'F' : if (!int0_scan(l.arg, &lc.inherited) || lc.inherited < 0) dieusage() ; listener = 1 ; break ;
        default : dieusage() ;
      }
    }
    argc -= l.ind ; argv += l.ind ;
  }
  if (listener)
  {
    /* -l: ip port prog...; the listener drops to $UID/$GID itself (-U) */
    if (flagondemand || uidarg || gidarg || argc < 3) dieusage() ;
    lc.ip = argv[0] ;
    lc.port = argv[1] ;
    argv += 2 ; argc -= 2 ;
  }
  if (flagondemand ? argc || flagstarttls : !argc) dieusage() ;
  if (flagondemand && (!is_socket(EFD_DATA) || !is_socket(EFD_CTL)))
    strerr_dief(EX_PERM, "-E needs the cleartext socket on fd 3 and the control socket on fd 4") ;

  char const *ip = getenv("TCPREMOTEIP") ;
  if (!sig_ignore(SIGPIPE)) strerr_diefusys(EX_TEMP, "ignore SIGPIPE") ;
  tain_now_set_stopwatch_g() ;

  /* certificate and key, read with the privileges we were started with */
  /* prog runs as our uid: it must not be able to ptrace us for the key */
  if (yubin_nodump() < 0) strerr_diefusys(EX_TEMP, "prctl PR_SET_DUMPABLE") ;
  struct pemfiles files = { .certpath = STRALLOC_ZERO, .keypath = STRALLOC_ZERO, .cert = STRALLOC_ZERO, .key = STRALLOC_ZERO } ;
  control_path(&files.certpath, "tlscert", "cert.pem") ;
  control_path(&files.keypath, "tlskey", "key.pem") ;
  pemfiles_read(&files) ;
  tickets_load(files.keypath.s) ;

  /* Installed setgid to the group that may read the key (package/setup):
     give that group up for good, saved set-group-ID included. */
  if (getegid() != getgid() && setresgid(getgid(), getgid(), getgid()) < 0)
    strerr_diefusys(EX_TEMP, "drop the key group") ;

  if (listener)
  {
    /* one context for every connection, built before the first one (no
       network input yet); the listener reads the files again when it
       execs afresh, every ticket lifetime (an hour by default) */
    prebuilt = tls_ctx_make(&files) ;
    lc.refresh = tickets.life ? (unsigned int)tickets.life : 3600 ;
    listen_serve(&lc) ;   /* returns in a connection's child */
    ip = getenv("TCPREMOTEIP") ;
    tickets_recheck() ;
  }

  /* then nothing is read from the network with them (a listener's child
     has dropped them already: this only checks) */
  drop_privileges(uidarg, gidarg) ;

  /* the context is built when a handshake is due: at once for implicit
     TLS, on the client's STARTTLS otherwise (most port 25 sessions never
     ask, and OpenSSL's set-up costs about 3 ms) */
  if (flagondemand) return run_ondemand(&files, kms, ip) ;
  return flagstarttls ? run_starttls(&files, argv, kms, ip) : run_implicit(&files, argv, kms, ip) ;
}
