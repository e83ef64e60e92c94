/* yubin-lspawn: runs local deliveries for yubin-qmgr.  The one part of the
 * queue that stays root: for each request (a batch of messages for one
 * recipient) it finds who takes the recipient (common/assign.h:
 * users/assign.cdb, users.cdb, the alias user), opens the queue files,
 * and forks one child that becomes that user and delivers the messages
 * in a row with yubin-local's code (local_deliver), then fsyncs the
 * Maildir's new/ once for the batch and only then writes one result per
 * message on a pipe of its own; we pass them on in order.  Requests on
 * fd 0, results on fd 1 (the SPAWN_BATCH records of qmgr/spawnproto.h,
 * described in yubin-lspawn(8)); the child's stderr goes to our stderr
 * (the log), and its last line is the reason for the messages a dead
 * child did not report. */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <skalibs/allreadwrite.h>
#include <skalibs/bytestr.h>
#include <skalibs/djbunix.h>
#include <skalibs/env.h>
#include <skalibs/genalloc.h>
#include <skalibs/iopause.h>
#include <skalibs/selfpipe.h>
#include <skalibs/setgroups.h>
#include <skalibs/sig.h>
#include <skalibs/stralloc.h>
#include <skalibs/strerr.h>
#include <skalibs/tai.h>
#include <skalibs/types.h>

#include "assign.h"
#include "control.h"
#include "exitcodes.h"
#include "sigtrap.h"
#include "local/deliver.h"
#include "maildir.h"
#include "qmgr/queue.h"
#include "qmgr/spawnproto.h"
#include "root.h"
#include "ylog.h"

#define JOBS_MAX 1000         /* more than any sane concurrencylocal */
#define LINE_MAX_ SPAWN_TEXTMAX  /* longest stderr line kept whole */

char const *PROG = "lspawn" ;

struct job
{
  pid_t pid ;          /* 0: free slot */
  char jobid[SPAWN_JOBIDMAX + 1] ;
  int errfd ;          /* read end of the child's stderr, -1 when closed */
  int resfd ;          /* read end of the child's results, -1 when closed */
  struct spawn_decoder res ;
  size_t n ;           /* deliveries in the batch */
  size_t reported ;    /* results passed on to qmgr */
  stralloc line ;      /* partial stderr line */
  stralloc why ;       /* last complete stderr line */
} ;

static genalloc jobs = GENALLOC_ZERO ;   /* struct job */
static unsigned int njobs = 0 ;
static stralloc localprog = STRALLOC_ZERO ;
static int localexec = 0 ;   /* exec localprog instead of delivering in-process */
static stralloc pmuser = STRALLOC_ZERO ;
static int qfd ;
static uid_t queueuid ;
static int amroot ;

static void dienomem (void)
{
  strerr_dief1x(EX_TEMP, "out of memory") ;
}

/* One result record.  Blocking: qmgr always reads. */
static void report (char const *jobid, int code, char const *text, size_t len)
{
  stralloc sa = STRALLOC_ZERO ;
  if (!spawn_result_put(&sa, jobid, code, text, len)) strerr_diefu1sys(EX_TEMP, "encode a result") ;
  if (allwrite(1, sa.s, sa.len) < sa.len) strerr_diefu1sys(EX_TEMP, "write to yubin-qmgr") ;
  stralloc_free(&sa) ;
}

static void reports (char const *jobid, int code, char const *text)
{
  report(jobid, code, text, strlen(text)) ;
}

/* The same result for every delivery of a batch. */
static void reportall (struct spawn_batch const *b, int code, char const *text)
{
  for (size_t i = 0 ; i < b->n ; i++) reports(b->jobid, code, text) ;
}

/* A complete stderr line of a job: to our log, and remembered. */
static void job_line (struct job *j, char const *s, size_t len)
{
  while (len && (s[len-1] == '\n' || s[len-1] == '\r')) len-- ;
  if (!len) return ;
  /* one write per line, so concurrent deliveries never mix their lines */
  struct iovec v[2] = { { .iov_base = (char *)s, .iov_len = len }, { .iov_base = "\n", .iov_len = 1 } } ;
  size_t w = allwritev(2, v, 2) ;
  (void)w ;   /* as ylog: losing a log line must not stop deliveries */
  if (!stralloc_copyb(&j->why, s, len)) dienomem() ;
}

/* Read what the child wrote on stderr.  final: it has exited, drain and close. */
static void job_read (struct job *j, int final)
{
  char buf[4096] ;
  while (j->errfd >= 0)
  {
    ssize_t r = read(j->errfd, buf, sizeof(buf)) ;
    if (r < 0 && errno == EINTR) continue ;
    if (r < 0 && errno == EAGAIN && !final) return ;
    if (r <= 0)
    {
      if (j->line.len) job_line(j, j->line.s, j->line.len) ;
      j->line.len = 0 ;
      fd_close(j->errfd) ;
      j->errfd = -1 ;
      return ;
    }
    for (ssize_t i = 0 ; i < r ; i++)
    {
      if (!stralloc_catb(&j->line, buf + i, 1)) dienomem() ;
      if (buf[i] == '\n' || j->line.len >= LINE_MAX_)
      {
        job_line(j, j->line.s, j->line.len) ;
        j->line.len = 0 ;
      }
    }
  }
}

/* What a delivery process that ended with wstat, its last stderr line in
 * j->why, means: *code, and the reason in *why, *len (tmp, 80 bytes, may
 * hold it). */
static void verdict (struct job const *j, int wstat, unsigned int *code, char const **why, size_t *len, char *tmp)
{
  /* "local: fatal: maildir ... (#4.2.1)": the reason is after "fatal: " */
  *why = j->why.s ;
  *len = j->why.len ;
  if (*len >= 9)
  {
    size_t f = byte_search(*why, *len, ": fatal: ", 9) ;   /* not found: len - 8 */
    if (f + 9 <= *len) { *why += f + 9 ; *len -= f + 9 ; }
  }
  *code = EX_TEMP ;
  if (WIFEXITED(wstat) && (WEXITSTATUS(wstat) == 0 || WEXITSTATUS(wstat) == EX_PERM || WEXITSTATUS(wstat) == EX_TEMP))
    *code = WEXITSTATUS(wstat) ;
  else if (!*len)
  {
    size_t n ;
    if (WIFSIGNALED(wstat)) { memcpy(tmp, "yubin-local killed by signal ", 29) ; n = 29 ; n += uint_fmt(tmp + n, WTERMSIG(wstat)) ; }
    else { memcpy(tmp, "yubin-local exited ", 19) ; n = 19 ; n += uint_fmt(tmp + n, WEXITSTATUS(wstat)) ; }
    memcpy(tmp + n, " (#4.3.0)", 9) ;
    *why = tmp ; *len = n + 9 ;
  }
}

/* Pass on the results the child wrote.  final: it has exited, drain and
 * close. */
static void job_results (struct job *j, int final)
{
  while (j->resfd >= 0)
  {
    ssize_t r = spawn_fill(&j->res, j->resfd, 8192) ;
    if (r < 0 && errno == EINTR) continue ;
    if (r < 0 && errno == EAGAIN && !final) return ;
    for (;;)
    {
      struct spawn_result res ;
      int k = r > 0 ? spawn_result_next(&j->res, &res) : 0 ;
      if (!k) break ;
      if (k < 0 || j->reported >= j->n) { strerr_warnw1x("bad result from a delivery child") ; r = 0 ; break ; }
      reports(j->jobid, res.code, res.text) ;
      j->reported++ ;
    }
    if (r <= 0)
    {
      fd_close(j->resfd) ;
      j->resfd = -1 ;
      spawn_decoder_free(&j->res) ;
    }
  }
}

static void job_end (struct job *j, int wstat)
{
  job_read(j, 1) ;
  job_results(j, 1) ;
  if (j->reported < j->n)
  {
    /* the child died before it reported these (or it exec'd yubin-local
       for a batch of one): its exit status and last line say why */
    unsigned int code ;
    char const *why ;
    size_t len ;
    char tmp[80] ;
    verdict(j, wstat, &code, &why, &len, tmp) ;
    if (!code && j->n > 1) { code = EX_TEMP ; why = "delivery child ended without a result (#4.3.0)" ; len = strlen(why) ; }
    for (; j->reported < j->n ; j->reported++) report(j->jobid, code, why, len) ;
  }
  j->pid = 0 ;
  j->why.len = 0 ;
  njobs-- ;
}

static void reap (void)
{
  for (;;)
  {
    int wstat ;
    pid_t pid = wait_nohang(&wstat) ;
    if (pid <= 0) return ;
    struct job *j = genalloc_s(struct job, &jobs) ;
    size_t n = genalloc_len(struct job, &jobs) ;
    for (size_t i = 0 ; i < n ; i++)
      if (j[i].pid == pid) { job_end(j + i, wstat) ; break ; }
  }
}

static struct job *job_slot (void)
{
  struct job *j = genalloc_s(struct job, &jobs) ;
  size_t n = genalloc_len(struct job, &jobs) ;
  for (size_t i = 0 ; i < n ; i++) if (!j[i].pid) return j + i ;
  struct job z = { .pid = 0, .errfd = -1, .resfd = -1, .res = SPAWN_DECODER_ZERO, .line = STRALLOC_ZERO, .why = STRALLOC_ZERO } ;
  if (!genalloc_append(struct job, &jobs, &z)) dienomem() ;
  return genalloc_s(struct job, &jobs) + n ;
}

/* Exec mode ($YUBIN_LOCAL), in a batch of several: one process per
 * message, its output relayed to our stderr, its last line the reason. */
static int exec_one (struct delivery const *d, int msgfd, stralloc *why)
{
  int p[2] ;
  if (pipe2(p, O_CLOEXEC) < 0)
  {
    if (!stralloc_copys(why, "unable to make a pipe (#4.3.0)") || !stralloc_0(why)) dienomem() ;
    return EX_TEMP ;
  }
  pid_t pid = fork() ;
  if (pid < 0)
  {
    fd_close(p[0]) ; fd_close(p[1]) ;
    if (!stralloc_copys(why, "unable to fork (#4.3.0)") || !stralloc_0(why)) dienomem() ;
    return EX_TEMP ;
  }
  if (!pid)
  {
    if (fd_move(0, msgfd) < 0 || fd_copy(1, p[1]) < 0 || fd_move(2, p[1]) < 0) _exit(EX_TEMP) ;
    char const *argv[11] = { "yubin-local", "--", d->user, d->home, d->local, d->dash, d->ext,
                             d->domain, d->sender, d->defaultdelivery, 0 } ;
    execv(localprog.s, (char *const *)argv) ;
    strerr_diefusys(EX_TEMP, "run ", localprog.s, " (#4.3.0)") ;
  }
  fd_close(p[1]) ;
  struct job j = { .pid = pid, .errfd = p[0], .resfd = -1, .line = STRALLOC_ZERO, .why = STRALLOC_ZERO } ;
  job_read(&j, 1) ;
  int wstat ;
  if (wait_pid(pid, &wstat) < 0) wstat = 111 << 8 ;
  unsigned int code ;
  char const *w ;
  size_t len ;
  char tmp[80] ;
  verdict(&j, wstat, &code, &w, &len, tmp) ;
  if (!stralloc_copyb(why, w, len) || !stralloc_0(why)) dienomem() ;
  stralloc_free(&j.line) ;
  stralloc_free(&j.why) ;
  return code ;
}

/* The child: become the user, deliver the batch, sync, report.  Never
 * returns.  fds[i]: the queue file of delivery i, at its message, or -1
 * and pre[i] the reason it can't be delivered.
 * By default each delivery runs right here, in the forked child, through
 * local_deliver (local/deliver.c), yubin-local's code: a fork but no exec
 * per batch, the costliest step of the hot path; the Maildir files are
 * named after the queue id and the recipient's number (exactly once:
 * common/maildir.h), and new/ is synced once for the batch.  With
 * $YUBIN_LOCAL set (e.g. to qmail-local, or a wrapper), that program is
 * exec'd for each message instead, with qmail-local's command line, and
 * syncs for itself. */
static void child (struct spawn_batch const *b, int const *fds, char const *const *pre, int resfd, int errfd, struct assign const *a, struct delivery *d)
{
  selfpipe_finish() ;
  /* stdout too: qmail-local writes its reasons there, yubin-local on stderr */
  if (fd_copy(1, errfd) < 0 || fd_move(2, errfd) < 0) _exit(EX_TEMP) ;
  if (amroot)
  {
    if (skalibs_setgroups(1, &a->gid) < 0 || setgid(a->gid) < 0 || setuid(a->uid) < 0)
      strerr_diefu1sys(EX_TEMP, "set the user's uid and gid (#4.3.0)") ;
  }
  if (chdir(d->home) < 0) strerr_diefusys(EX_TEMP, "switch to ", d->home, " (#4.3.0)") ;
  if (localexec && b->n == 1 && fds[0] >= 0)
  {
    /* as before batches: the program's exit code and last line are the result */
    char const *argv[11] = { "yubin-local", "--", d->user, d->home, d->local, d->dash, d->ext,
                             d->domain, b->d[0].sender, d->defaultdelivery, 0 } ;
    fd_close(resfd) ;
    if (fd_move(0, fds[0]) < 0) _exit(EX_TEMP) ;
    execv(localprog.s, (char *const *)argv) ;
    strerr_diefusys(EX_TEMP, "run ", localprog.s, " (#4.3.0)") ;
  }
  PROG = "local" ;
  if (!local_delivery_ok(d)) strerr_dieusage(EX_PERM, LOCAL_USAGE) ;
  stralloc why = STRALLOC_ZERO, texts = STRALLOC_ZERO, dirs = STRALLOC_ZERO, out = STRALLOC_ZERO ;
  int codes[SPAWN_BATCHMAX] ;
  size_t textpos[SPAWN_BATCHMAX] ;
  for (size_t i = 0 ; i < b->n ; i++)
  {
    why.len = 0 ;
    if (fds[i] < 0)
    {
      codes[i] = EX_TEMP ;
      if (!stralloc_copys(&why, pre[i]) || !stralloc_0(&why)) dienomem() ;
    }
    else
    {
      d->sender = b->d[i].sender ;
      if (localexec) codes[i] = exec_one(d, fds[i], &why) ;
      else
      {
        struct maildir_opt o = { .qid = b->d[i].msgid, .rcpt = b->d[i].rcptno, .line = 0, .check = b->d[i].check, .syncdirs = &dirs, .found = 0 } ;
        d->maildir = &o ;
        codes[i] = local_deliver(d, fds[i], &why) ;
        d->maildir = 0 ;
      }
      fd_close(fds[i]) ;
    }
    textpos[i] = texts.len ;
    if (!stralloc_catb(&texts, codes[i] && why.len ? why.s : "", codes[i] && why.len ? strlen(why.s) + 1 : 1)) dienomem() ;
  }
  /* one fsync of new/ (per Maildir) for the batch, before any success */
  int synced = maildir_syncdirs(&dirs) ;
  if (!synced) strerr_warnwu1sys("sync the Maildir") ;
  for (size_t i = 0 ; i < b->n ; i++)
  {
    char const *t = texts.s + textpos[i] ;
    int code = codes[i] ;
    if (!code && !synced) { code = EX_TEMP ; t = "unable to sync the Maildir (#4.3.0)" ; }
    if (!spawn_result_put(&out, "0", code, t, strlen(t))) dienomem() ;
  }
  if (allwrite(resfd, out.s, out.len) < out.len) strerr_diefu1sys(EX_TEMP, "write to yubin-lspawn") ;
  _exit(0) ;
}

/* One batch: the deliveries of b, all for b->rcpt. */
static void start (struct spawn_batch const *b)
{
  char const *jobid = b->jobid, *rcpt = b->rcpt ;
  struct assign a = ASSIGN_ZERO ;
  stralloc local = STRALLOC_ZERO ;
  int fds[SPAWN_BATCHMAX] ;
  char const *pre[SPAWN_BATCHMAX] ;
  size_t nopen = 0 ;
  int r ;

  for (size_t i = 0 ; i < b->n ; i++)
    if (!queue_id_valid(b->d[i].msgid)) strerr_dief1x(EX_TEMP, "protocol error: bad request from yubin-qmgr") ;
  if (njobs >= JOBS_MAX) { reportall(b, EX_TEMP, "too many deliveries at once (#4.3.0)") ; return ; }

  size_t rlen = strlen(rcpt) ;
  size_t at = byte_rchr(rcpt, rlen, '@') ;
  char const *domain = at < rlen ? rcpt + at + 1 : "" ;
  if (!stralloc_catb(&local, rcpt, at) || !stralloc_0(&local)) dienomem() ;
  r = at ? assign_find(rcpt, at, pmuser.s, &a) : 0 ;
  if (r < 0) { reportall(b, EX_TEMP, "unable to look the recipient up in users/assign.cdb, users.cdb or alias/ (#4.3.0)") ; goto end ; }
  if (!r) { reportall(b, EX_PERM, "Sorry, no mailbox here by that name. (#5.1.1)") ; goto end ; }
  if (amroot && !a.uid) { reportall(b, EX_PERM, "refusing to deliver to a user with uid 0 (#5.7.1)") ; goto end ; }
  if (amroot && !a.gid) { reportall(b, EX_PERM, "refusing to deliver to a user with gid 0 (#5.7.1)") ; goto end ; }

  for (size_t i = 0 ; i < b->n ; i++)
  {
    char fn[4 + QUEUE_IDMAX] ;
    memcpy(fn, "cur/", 4) ;
    memcpy(fn + 4, b->d[i].msgid, strlen(b->d[i].msgid) + 1) ;
    fds[i] = openat(qfd, fn, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) ;
    pre[i] = 0 ;
    if (fds[i] < 0) { pre[i] = "unable to open the queue file (#4.3.0)" ; continue ; }
    struct stat st ;
    /* Only a file that the queue user made: yubin-qmgr can't make us read
       anything else as root. */
    if (fstat(fds[i], &st) < 0 || !S_ISREG(st.st_mode) || (amroot && st.st_uid != queueuid)
     || lseek(fds[i], (off_t)b->d[i].msgoff, SEEK_SET) < 0)
    {
      fd_close(fds[i]) ;
      fds[i] = -1 ;
      pre[i] = "bad queue file (#4.3.0)" ;
      continue ;
    }
    nopen++ ;
  }
  if (!nopen)
  {
    for (size_t i = 0 ; i < b->n ; i++) reports(jobid, EX_TEMP, pre[i]) ;
    goto end ;
  }
  int p[2], q[2] ;
  if (pipe2(p, O_CLOEXEC) < 0 || (pipe2(q, O_CLOEXEC) < 0 && (fd_close(p[0]), fd_close(p[1]), 1)))
  {
    for (size_t i = 0 ; i < b->n ; i++) if (fds[i] >= 0) fd_close(fds[i]) ;
    reportall(b, EX_TEMP, "unable to make a pipe (#4.3.0)") ;
    goto end ;
  }
  struct delivery d =
  {
    .user = assign_user(&a), .home = assign_home(&a), .local = local.s, .dash = assign_dash(&a),
    .ext = assign_ext(&a), .domain = domain, .sender = b->d[0].sender, .defaultdelivery = "./Maildir/",
    .maildir = 0
  } ;
  pid_t pid = fork() ;
  if (!pid) { fd_close(q[0]) ; child(b, fds, pre, q[1], p[1], &a, &d) ; }
  int e = errno ;
  for (size_t i = 0 ; i < b->n ; i++) if (fds[i] >= 0) fd_close(fds[i]) ;
  fd_close(p[1]) ;
  fd_close(q[1]) ;
  if (pid < 0)
  {
    fd_close(p[0]) ;
    fd_close(q[0]) ;
    errno = e ;
    strerr_warnwu1sys("fork") ;
    reportall(b, EX_TEMP, "unable to fork (#4.3.0)") ;
    goto end ;
  }
  if (ndelay_on(p[0]) < 0 || ndelay_on(q[0]) < 0) strerr_diefu1sys(EX_TEMP, "set a pipe non-blocking") ;
  struct job *j = job_slot() ;
  j->pid = pid ;
  memcpy(j->jobid, jobid, strlen(jobid) + 1) ;
  j->errfd = p[0] ;
  j->resfd = q[0] ;
  j->res.buf.len = j->res.pos = 0 ;
  j->n = b->n ;
  j->reported = 0 ;
  j->line.len = 0 ;
  j->why.len = 0 ;
  njobs++ ;
 end:
  assign_free(&a) ;
  stralloc_free(&local) ;
}

/* Run the complete requests received. */
static void requests (struct spawn_decoder *in)
{
  for (;;)
  {
    struct spawn_batch b ;
    int r = spawn_batch_next(in, &b) ;
    if (!r) return ;
    if (r < 0)
    {
      if (errno == EMSGSIZE) strerr_dief1x(EX_TEMP, "protocol error: request too long") ;
      strerr_dief1x(EX_TEMP, "protocol error: bad request from yubin-qmgr") ;
    }
    start(&b) ;
  }
}

int main (int argc, char const *const *argv)
{
  stralloc sa = STRALLOC_ZERO ;
  struct spawn_decoder in = SPAWN_DECODER(SPAWN_BATCHRECORDMAX, SPAWN_BATCH) ;
  genalloc fds = GENALLOC_ZERO ;    /* iopause_fd */
  genalloc owner = GENALLOC_ZERO ;  /* size_t: 2 x job index of fds[i] (+1: its results), i >= 2 */
  struct stat st ;
  int eof = 0 ;
  (void)argc ; (void)argv ;

  if (!fd_ensure_open(2, 1)) _exit(EX_TEMP) ;
  amroot = !geteuid() ;
  {
    char const *x = getenv("YUBIN_LOCAL") ;
    if (x && *x)
    {
      if (!stralloc_copyb(&localprog, x, strlen(x) + 1)) dienomem() ;
      localexec = 1 ;
    }
    else if (!yubin_sibling(&localprog, "yubin-local")) strerr_diefu1sys(EX_TEMP, "find yubin-local") ;
  }
  if (control_readline(&pmuser, "postmaster", "postmaster") < 0)
    strerr_diefu1sys(EX_TEMP, "read control/postmaster") ;
  if (!pmuser.len && !stralloc_copys(&pmuser, "postmaster")) dienomem() ;
  if (!stralloc_0(&pmuser)) dienomem() ;
  pmuser.len-- ;
  if (!yubin_path(&sa, "queue")) dienomem() ;
  if (stat(sa.s, &st) < 0) strerr_diefu2sys(EX_TEMP, "stat ", sa.s) ;
  queueuid = st.st_uid ;
  qfd = open(sa.s, O_RDONLY | O_DIRECTORY | O_CLOEXEC) ;
  if (qfd < 0) strerr_diefu2sys(EX_TEMP, "open ", sa.s) ;
  stralloc_free(&sa) ;

  if (ndelay_on(0) < 0) strerr_diefu1sys(EX_TEMP, "set stdin non-blocking") ;
  /* the pipes to qmgr are not for yubin-local */
  if (coe(0) < 0 || coe(1) < 0) strerr_diefu1sys(EX_TEMP, "set close-on-exec") ;
  int spfd = sigtrap_init((int const []){ SIGCHLD, SIGTERM, 0 }) ;
  tain_now_set_stopwatch_g() ;
  /* once here rather than in every delivery child: the time zone (glibc
     reads /etc/localtime even for gmtime_r) and the instance root */
  tzset() ;
  yubin_root_prime() ;

  while (!eof || njobs)
  {
    size_t n = genalloc_len(struct job, &jobs) ;
    if (!genalloc_ready(iopause_fd, &fds, 2 * n + 2) || !genalloc_ready(size_t, &owner, 2 * n + 2)) dienomem() ;
    iopause_fd *x = genalloc_s(iopause_fd, &fds) ;
    size_t *who = genalloc_s(size_t, &owner) ;
    unsigned int nx = 0 ;
    x[nx].fd = spfd ; x[nx++].events = IOPAUSE_READ ;
    x[nx].fd = eof ? -1 : 0 ; x[nx++].events = IOPAUSE_READ ;
    struct job *j = genalloc_s(struct job, &jobs) ;
    for (size_t i = 0 ; i < n ; i++)
    {
      if (j[i].pid && j[i].errfd >= 0)
      {
        who[nx] = 2 * i ;
        x[nx].fd = j[i].errfd ;
        x[nx++].events = IOPAUSE_READ ;
      }
      if (j[i].pid && j[i].resfd >= 0)
      {
        who[nx] = 2 * i + 1 ;
        x[nx].fd = j[i].resfd ;
        x[nx++].events = IOPAUSE_READ ;
      }
    }
    int r = iopause_g(x, nx, &tain_infinite) ;
    if (r < 0)
    {
      if (errno == EINTR) continue ;
      strerr_diefu1sys(EX_TEMP, "iopause") ;
    }
    for (unsigned int i = 2 ; i < nx ; i++)
      if (x[i].revents)
      {
        struct job *jj = genalloc_s(struct job, &jobs) + who[i] / 2 ;
        if (who[i] & 1) job_results(jj, 0) ; else job_read(jj, 0) ;
      }
    if (x[0].revents & IOPAUSE_READ)
    {
      for (;;)
      {
        int sig = selfpipe_read() ;
        if (sig < 0) strerr_diefu1sys(EX_TEMP, "read selfpipe") ;
        if (!sig) break ;
        if (sig == SIGCHLD) reap() ;
        else if (sig == SIGTERM) eof = 1 ;
      }
    }
    if (!eof && x[1].revents)
    {
      ssize_t rr = spawn_fill(&in, 0, 8192) ;
      if (rr < 0 && errno != EINTR && errno != EAGAIN) strerr_diefu1sys(EX_TEMP, "read from yubin-qmgr") ;
      if (!rr) eof = 1 ;
      if (rr > 0) requests(&in) ;
    }
  }
  {
    struct job *j = genalloc_s(struct job, &jobs) ;
    size_t n = genalloc_len(struct job, &jobs) ;
    for (size_t i = 0 ; i < n ; i++) { stralloc_free(&j[i].line) ; stralloc_free(&j[i].why) ; spawn_decoder_free(&j[i].res) ; }
  }
  genalloc_free(struct job, &jobs) ;
  genalloc_free(iopause_fd, &fds) ;
  genalloc_free(size_t, &owner) ;
  spawn_decoder_free(&in) ;
  stralloc_free(&localprog) ;
  stralloc_free(&pmuser) ;
  fd_close(qfd) ;
  return 0 ;
}
