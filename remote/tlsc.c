/* Client-side TLS for yubin-remote (see tlsc.h). */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <skalibs/iopause.h>
#include <skalibs/fmtscan.h>
#include <skalibs/tai.h>

#include "remote/tlsc.h"

/* One context per check (and per CA file), made on first use and kept
 * for the life of the process: a spawner that runs many sessions loads
 * the CA bundle once. */
static SSL_CTX *ctx_nocheck, *ctx_dane, *ctx_ca ;
static char *ctx_ca_file ;
static int initialized ;

static void whyset (char *why, size_t whylen, char const *a, char const *b)
{
  size_t n = strlen(a), m = b ? strlen(b) : 0 ;
  if (!whylen) return ;
  if (n >= whylen) n = whylen - 1 ;
  memcpy(why, a, n) ;
  if (m > whylen - 1 - n) m = whylen - 1 - n ;
  if (m) memcpy(why + n, b, m) ;
  why[n + m] = 0 ;
}

static char const *sslerr (void)
{
  static char buf[160] ;
  unsigned long e = ERR_peek_last_error() ;
  if (!e) return errno ? strerror(errno) : "unknown error" ;
  ERR_error_string_n(e, buf, sizeof(buf)) ;
  return buf ;
}

static int tls_init (void)
{
  if (initialized) return 1 ;
  /* the digest table stays: SSL_CTX_dane_enable finds SHA-256 and
     SHA-512 by NID (and OpenSSL's init is once: no adding it later) */
  uint64_t flags = OPENSSL_INIT_NO_ATEXIT | OPENSSL_INIT_NO_ADD_ALL_CIPHERS
                 | (getenv("OPENSSL_CONF") ? OPENSSL_INIT_LOAD_CONFIG : OPENSSL_INIT_NO_LOAD_CONFIG) ;
  if (!OPENSSL_init_ssl(flags, 0)) return 0 ;
  initialized = 1 ;
  return 1 ;
}

/* TLS 1.2 and 1.3, no compression, no renegotiation, no session cache
 * (a session is one SMTP connection), an EOF without close_notify taken
 * as an EOF (SMTP has its own framing). */
static SSL_CTX *ctx_new (void)
{
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method()) ;
  if (!ctx) return 0 ;
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION
                         | SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_TICKET) ;
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER) ;
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF) ;
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, 0) ;   /* we check the result ourselves */
  if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION))
  {
    SSL_CTX_free(ctx) ;
    return 0 ;
  }
  return ctx ;
}

static SSL_CTX *ctx_get (enum tlsc_check check, char const *cafile)
{
  if (!tls_init()) return 0 ;
  switch (check)
  {
    case TLSC_NOCHECK :
      if (!ctx_nocheck)
      {
        ctx_nocheck = ctx_new() ;
        /* the system's CAs, only to log whether a check would have passed */
        if (ctx_nocheck && !SSL_CTX_set_default_verify_paths(ctx_nocheck)) ERR_clear_error() ;
      }
      return ctx_nocheck ;
    case TLSC_DANE :
      if (!ctx_dane)
      {
        ctx_dane = ctx_new() ;
        if (ctx_dane && SSL_CTX_dane_enable(ctx_dane) <= 0) { SSL_CTX_free(ctx_dane) ; ctx_dane = 0 ; }
      }
      return ctx_dane ;
    case TLSC_CA :
      if (ctx_ca && ((!cafile && !ctx_ca_file) || (cafile && ctx_ca_file && !strcmp(cafile, ctx_ca_file))))
        return ctx_ca ;
      if (ctx_ca) { SSL_CTX_free(ctx_ca) ; ctx_ca = 0 ; }
      free(ctx_ca_file) ; ctx_ca_file = 0 ;
      {
        SSL_CTX *ctx = ctx_new() ;
        if (!ctx) return 0 ;
        if (cafile ? !SSL_CTX_load_verify_locations(ctx, cafile, 0) : !SSL_CTX_set_default_verify_paths(ctx))
        {
          SSL_CTX_free(ctx) ;
          return 0 ;
        }
        if (cafile && !(ctx_ca_file = strdup(cafile))) { SSL_CTX_free(ctx) ; return 0 ; }
        ctx_ca = ctx ;
      }
      return ctx_ca ;
  }
  return 0 ;
}

int tlsc_tlsa_usable (struct dns_tlsa const *r)
{
  if (r->usage != 2 && r->usage != 3) return 0 ;     /* RFC 7672 3.1.3: no PKIX-TA/EE */
  if (r->selector > 1) return 0 ;
  switch (r->mtype)
  {
    case 0 : return r->len > 0 ;
    case 1 : return r->len == 32 ;
    case 2 : return r->len == 64 ;
    default : return 0 ;
  }
}

int tlsc_waitfd (int fd, int events, tain const *deadline)
{
  iopause_fd x = { .fd = fd, .events = events } ;
  for (;;)
  {
    int r = iopause_g(&x, 1, deadline) ;
    if (r < 0)
    {
      if (errno == EINTR) continue ;
      return 0 ;
    }
    if (!r) { errno = ETIMEDOUT ; return 0 ; }
    return 1 ;
  }
}

/* Wait until fd is ready for what OpenSSL asked (err), or the deadline. */
static int ssl_wait (int fd, int err, tain const *deadline)
{
  return tlsc_waitfd(fd, err == SSL_ERROR_WANT_WRITE ? IOPAUSE_WRITE : IOPAUSE_READ, deadline) ;
}

static int is_ipliteral (char const *s)
{
  char ip[16] ;
  size_t n = ip6_scan(s, ip) ;
  if (n && !s[n]) return 1 ;
  n = ip4_scan(s, ip) ;
  return n && !s[n] ;
}

static void cn_of (X509_NAME *name, char *out, size_t outlen)
{
  int i = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1 ;
  ASN1_STRING *s = i >= 0 ? X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)) : 0 ;
  size_t n = 0 ;
  if (s)
  {
    unsigned char const *d = ASN1_STRING_get0_data(s) ;
    size_t len = (size_t)ASN1_STRING_length(s) ;
    for (; n < len && n + 1 < outlen ; n++)
      out[n] = d[n] >= 0x20 && d[n] < 0x7f ? (char)d[n] : '?' ;
  }
  if (!n && outlen > 1) out[n++] = '-' ;
  out[n] = 0 ;
}

int tlsc_start (struct tlsc *t, int fd, char const *host, char const *host2, enum tlsc_check check, char const *cafile,
                struct dns_tlsa const *tlsa, size_t ntlsa, tain const *deadline, char *why, size_t whylen)
{
  SSL_CTX *ctx ;
  SSL *ssl ;
  int iplit = is_ipliteral(host) ;
  ERR_clear_error() ;
  ctx = ctx_get(check, cafile) ;
  if (!ctx) { whyset(why, whylen, "TLS set-up failed: ", sslerr()) ; return 0 ; }
  ssl = SSL_new(ctx) ;
  if (!ssl) { whyset(why, whylen, "TLS set-up failed: ", sslerr()) ; return 0 ; }
  if (!SSL_set_fd(ssl, fd)) goto setupfail ;
  if (!iplit && host[0] && !SSL_set_tlsext_host_name(ssl, host)) goto setupfail ;
  if (check == TLSC_DANE)
  {
    size_t added = 0 ;
    if (SSL_dane_enable(ssl, host) <= 0) goto setupfail ;
    if (host2 && host2[0] && !SSL_add1_host(ssl, host2)) goto setupfail ;
    /* RFC 7672 3.2.3: DANE-EE(3) ignores names and validity dates */
    SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS) ;
    for (size_t i = 0 ; i < ntlsa ; i++)
    {
      if (!tlsc_tlsa_usable(tlsa + i)) continue ;
      int r = SSL_dane_tlsa_add(ssl, tlsa[i].usage, tlsa[i].selector, tlsa[i].mtype, tlsa[i].data, tlsa[i].len) ;
      if (r > 0) added++ ;
      else if (r < 0) goto setupfail ;
    }
    if (!added)
    {
      SSL_free(ssl) ;
      whyset(why, whylen, "TLS failed: no usable TLSA record", 0) ;
      return 0 ;
    }
  }
  else if (host[0])
  {
    /* TLSC_CA checks the name; TLSC_NOCHECK only logs what the check says */
    X509_VERIFY_PARAM *p = SSL_get0_param(ssl) ;
    X509_VERIFY_PARAM_set_hostflags(p, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS) ;
    if (!(iplit ? X509_VERIFY_PARAM_set1_ip_asc(p, host) : X509_VERIFY_PARAM_set1_host(p, host, 0)))
      goto setupfail ;
  }

  for (;;)
  {
    int r ;
    ERR_clear_error() ;
    errno = 0 ;
    r = SSL_connect(ssl) ;
    if (r == 1) break ;
    r = SSL_get_error(ssl, r) ;
    if ((r == SSL_ERROR_WANT_READ || r == SSL_ERROR_WANT_WRITE) && ssl_wait(fd, r, deadline)) continue ;
    if (errno == ETIMEDOUT) whyset(why, whylen, "TLS handshake timed out", 0) ;
    else if (r == SSL_ERROR_SYSCALL && !ERR_peek_last_error())
      whyset(why, whylen, "TLS handshake failed: ", errno ? strerror(errno) : "connection closed") ;
    else whyset(why, whylen, "TLS handshake failed: ", sslerr()) ;
    SSL_free(ssl) ;
    return 0 ;
  }

  {
    long vr = SSL_get_verify_result(ssl) ;
    X509 *cert = SSL_get0_peer_certificate(ssl) ;
    t->ctx = ctx ; t->ssl = ssl ; t->fd = fd ;
    whyset(t->version, sizeof(t->version), SSL_get_version(ssl), 0) ;
    whyset(t->cipher, sizeof(t->cipher), SSL_get_cipher_name(ssl), 0) ;
    cn_of(cert ? X509_get_subject_name(cert) : 0, t->peer, sizeof(t->peer)) ;
    whyset(t->seen, sizeof(t->seen), cert ? X509_verify_cert_error_string(vr) : "no certificate", 0) ;
    whyset(t->verified, sizeof(t->verified), "none", 0) ;
    if (check == TLSC_NOCHECK) return 1 ;
    if (!cert || vr != X509_V_OK)
    {
      whyset(why, whylen, check == TLSC_DANE ? "TLS DANE verification failed: " : "TLS certificate verification failed: ",
             cert ? X509_verify_cert_error_string(vr) : "no certificate") ;
      goto checkfail ;
    }
    if (check == TLSC_DANE)
    {
      uint8_t usage = 255 ;
      if (SSL_get0_dane_authority(ssl, 0, 0) < 0 || SSL_get0_dane_tlsa(ssl, &usage, 0, 0, 0, 0) < 0)
      {
        whyset(why, whylen, "TLS DANE verification failed: no TLSA record matched", 0) ;
        goto checkfail ;
      }
      whyset(t->verified, sizeof(t->verified), usage == 3 ? "dane-ee" : "dane-ta", 0) ;
    }
    else whyset(t->verified, sizeof(t->verified), "ca", 0) ;
    return 1 ;
  }

 checkfail:
  tlsc_close(t, deadline) ;
  return 0 ;
 setupfail:
  whyset(why, whylen, "TLS set-up failed: ", sslerr()) ;
  SSL_free(ssl) ;
  return 0 ;
}

ssize_t tlsc_read (struct tlsc *t, char *buf, size_t len, tain const *deadline)
{
  for (;;)
  {
    size_t n = 0 ;
    int r ;
    ERR_clear_error() ;
    errno = 0 ;
    if (SSL_read_ex(t->ssl, buf, len, &n) == 1) return (ssize_t)n ;
    r = SSL_get_error(t->ssl, 0) ;
    if (r == SSL_ERROR_ZERO_RETURN) return 0 ;
    if (r == SSL_ERROR_WANT_READ || r == SSL_ERROR_WANT_WRITE)
    {
      if (ssl_wait(t->fd, r, deadline)) continue ;
      return -1 ;
    }
    if (r == SSL_ERROR_SYSCALL && !errno) return 0 ;
    if (!errno) errno = EPROTO ;
    return -1 ;
  }
}

int tlsc_write (struct tlsc *t, char const *buf, size_t len, tain const *deadline)
{
  while (len)
  {
    size_t n = 0 ;
    int r ;
    ERR_clear_error() ;
    errno = 0 ;
    if (SSL_write_ex(t->ssl, buf, len, &n) == 1) { buf += n ; len -= n ; continue ; }
    r = SSL_get_error(t->ssl, 0) ;
    if ((r == SSL_ERROR_WANT_READ || r == SSL_ERROR_WANT_WRITE) && ssl_wait(t->fd, r, deadline)) continue ;
    if (!errno) errno = EPIPE ;
    return 0 ;
  }
  return 1 ;
}

int tlsc_pending (struct tlsc const *t)
{
  return t->ssl && SSL_pending(t->ssl) > 0 ;
}

void tlsc_close (struct tlsc *t, tain const *deadline)
{
  if (!t->ssl) return ;
  for (int i = 0 ; i < 4 ; i++)
  {
    int r ;
    ERR_clear_error() ;
    r = SSL_shutdown(t->ssl) ;
    if (r >= 0) break ;   /* sent; we don't wait for the peer's */
    r = SSL_get_error(t->ssl, r) ;
    if ((r != SSL_ERROR_WANT_READ && r != SSL_ERROR_WANT_WRITE) || !ssl_wait(t->fd, r, deadline)) break ;
  }
  ERR_clear_error() ;
  SSL_free(t->ssl) ;
  t->ssl = 0 ;
  t->ctx = 0 ;
}
