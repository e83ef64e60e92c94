#!/usr/bin/env python3
"""yubin-local's .qmail engine through its command line (qmail-local's):
each line type with its edge cases, the extension search, the safety
rules, the program environment against qmail-command(8), forwards through
a fake $QMAILQUEUE, yubin-preline with procmail and maildrop, bad input.

As root the deliveries run as a test uid (nobody: procmail and maildrop
want a passwd entry) in a home it owns.  Binaries from $YUBIN_BIN.
Prints PASS name / FAIL name: why per case."""

import fcntl
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from yubintest import binary, check, expect, is_root, run, run_cases  # noqa: E402

LOCAL = binary("yubin-local")
PRELINE = binary("yubin-preline")
TIMEOUT = 60
ROOT = is_root()
UID, GID = (65534, 65534) if ROOT else (os.getuid(), os.getgid())

MSG = b"From: bob@example.net\nTo: alice@example.org\nSubject: hi\n\nFrom the start\n>From quoted\n.dot\n"
RP = b"Return-Path: <bob@example.net>\n"

FAKEQ = """#!/bin/sh
# a fake qmail-queue: message (fd 0) and envelope (fd 1) into files
cat > "$FAKEQ_DIR/msg" || exit 54
cat <&1 > "$FAKEQ_DIR/env" || exit 54
echo called >> "$FAKEQ_DIR/calls"
if [ -f "$FAKEQ_DIR/code" ]; then exit "$(cat "$FAKEQ_DIR/code")"; fi
exit 0
"""


class Env:
    """A root (control/) with one home owned by the test uid."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="yubin-dotqmail-")
        os.chmod(self.root, 0o755)
        os.mkdir(os.path.join(self.root, "control"))
        os.chmod(os.path.join(self.root, "control"), 0o755)
        self.home = os.path.join(self.root, "alice")
        os.mkdir(self.home, 0o700)
        self.md = os.path.join(self.home, "Maildir")
        for d in ("", "tmp", "new", "cur"):
            os.mkdir(os.path.join(self.md, d), 0o700)
        self.q = os.path.join(self.root, "fakeq")
        os.mkdir(self.q, 0o777)
        os.chmod(self.q, 0o777)
        self.qprog = os.path.join(self.root, "fake-queue")
        with open(self.qprog, "w") as f:
            f.write(FAKEQ)
        os.chmod(self.qprog, 0o755)
        self.own(self.home)
        for d in ("tmp", "new", "cur", ""):
            self.own(os.path.join(self.md, d))

    def own(self, path):
        if ROOT:
            os.chown(path, UID, GID)

    def path(self, *p):
        return os.path.join(self.home, *p)

    def write(self, name, data, mode=0o600):
        p = self.path(name)
        with open(p, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
        os.chmod(p, mode)
        self.own(p)
        return p

    def read(self, name):
        with open(self.path(name), "rb") as f:
            return f.read()

    def new(self, md=None):
        d = os.path.join(md or self.md, "new")
        return sorted(os.listdir(d))

    def new_data(self, md=None):
        d = os.path.join(md or self.md, "new")
        out = []
        for n in sorted(os.listdir(d)):
            with open(os.path.join(d, n), "rb") as f:
                out.append(f.read())
        return out

    def control(self, name, value):
        with open(os.path.join(self.root, "control", name), "w") as f:
            f.write(value)

    def queued(self):
        """(envelope, message) the fake queue got, or None."""
        if not os.path.exists(os.path.join(self.q, "env")):
            return None
        with open(os.path.join(self.q, "env"), "rb") as f:
            e = f.read()
        with open(os.path.join(self.q, "msg"), "rb") as f:
            return e, f.read()

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)


def deliver(env, local="alice", dash="", ext="", sender="bob@example.net", dd="./Maildir/",
            msg=MSG, offset=0, opts=(), domain="example.org", extra_env=None, timeout=TIMEOUT):
    """Run yubin-local as the test uid; returns (rc, stdout, stderr)."""
    e = {"PATH": "/usr/bin:/bin", "YUBIN_ROOT": env.root, "QMAILQUEUE": env.qprog,
         "FAKEQ_DIR": env.q}
    if extra_env:
        e.update(extra_env)
    path = os.path.join(env.root, "msgfile")
    with open(path, "wb") as f:
        f.write(msg)
    os.chmod(path, 0o644)
    fd = os.open(path, os.O_RDONLY)
    os.lseek(fd, offset, os.SEEK_SET)
    kw = {}
    if ROOT:
        kw = {"user": UID, "group": GID, "extra_groups": []}
    try:
        p = subprocess.run([LOCAL] + list(opts) + ["alice", env.home, local, dash, ext, domain, sender, dd],
                           stdin=fd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, env=e, cwd="/", **kw)
    finally:
        os.close(fd)
    return p.returncode, p.stdout, p.stderr


def expect_rc(got, want, err, out=b""):
    expect(got == want, "exit %d, wanted %d; stderr: %r stdout: %r" % (got, want, err[-400:], out[-200:]))


def dt(local="alice-x", domain="example.org"):
    return b"Delivered-To: %s@%s\n" % (local.encode(), domain.encode())


def x(env, lines, ext="x", **kw):
    """Deliver to alice-<ext> with .qmail-<ext> holding lines."""
    env.write(".qmail-" + ext, lines)
    return deliver(env, "alice-" + ext, "-", ext, **kw)


# ---------------------------------------------------------------- line types

def t_comment_maildir(env):
    rc, out, err = x(env, "# a comment\n#./Nothing/\n./Maildir/\n")
    expect_rc(rc, 0, err)
    expect(env.new_data() == [RP + dt() + MSG], "Maildir content %r" % env.new_data())
    expect(out == b"did 1+0+0\n", "stdout %r" % out)


def t_two_maildirs(env):
    md2 = env.path("Other")
    for d in ("", "tmp", "new", "cur"):
        os.mkdir(os.path.join(md2, d), 0o700)
        env.own(os.path.join(md2, d))
    rc, out, err = x(env, "./Maildir/  \n%s/\t\n" % md2)
    expect_rc(rc, 0, err)
    want = [RP + dt() + MSG]
    expect(env.new_data() == want and env.new_data(md2) == want, "contents differ")
    expect(out == b"did 2+0+0\n", "stdout %r" % out)


def t_maildir_missing(env):
    rc, out, err = x(env, "./Maildir/\n./Gone/\n")
    expect_rc(rc, 111, err)
    expect(b"does not exist" in err, "stderr %r" % err)


FROM_RE = re.compile(rb"^From bob@example\.net (Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z][a-z] \d\d \d\d:\d\d:\d\d \d{4}\n")


def t_mbox_bytes(env):
    msg = b"Subject: m\n\nFrom here\n>From there\n>>From x\nFromage\n From not\nlast line"
    rc, out, err = x(env, "./mbox\n", msg=msg)
    expect_rc(rc, 0, err)
    data = env.read("mbox")
    m = FROM_RE.match(data)
    expect(m, "From_ line %r" % data[:80])
    rest = data[m.end():]
    want = RP + dt() + b"Subject: m\n\n>From here\n>>From there\n>>>From x\nFromage\n From not\nlast line\n\n"
    expect(rest == want, "mbox %r" % rest)
    st = os.stat(env.path("mbox"))
    expect(stat.S_IMODE(st.st_mode) == 0o600, "mode %o" % st.st_mode)
    expect(out == b"did 1+0+0\n", "stdout %r" % out)


def t_mbox_append(env):
    env.write("mbox", b"old\n\n")
    for s in (b"bob@example.net", b"", b"we ird\tsender"):
        rc, out, err = x(env, "./mbox\n", sender=s.decode())
        expect_rc(rc, 0, err)
    data = env.read("mbox")
    expect(data.startswith(b"old\n\nFrom bob@example.net "), "start %r" % data[:60])
    expect(data.count(b"\nFrom MAILER-DAEMON ") == 1 and b"\nReturn-Path: <>\n" in data, "bounce From_ %r" % data)
    expect(b"\nFrom we-ird-sender " in data, "spaces in the sender %r" % data)
    expect(data.count(MSG.replace(b"\nFrom the", b"\n>From the").replace(b"\n>From q", b"\n>>From q") + b"\n") == 3,
           "three quoted copies expected")


def t_mbox_empty_message(env):
    rc, out, err = x(env, "./mbox\n", msg=b"")
    expect_rc(rc, 0, err)
    data = env.read("mbox")
    m = FROM_RE.match(data)
    expect(m and data[m.end():] == RP + dt() + b"\n", "mbox %r" % data)


def t_mbox_lock_wait(env):
    for kind in ("flock", "fcntl"):
        p = env.write("mbox", b"")
        fd = os.open(p, os.O_RDWR)
        if kind == "flock":
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            fcntl.lockf(fd, fcntl.LOCK_EX)
        timer = threading.Timer(1.5, lambda: os.close(fd))
        timer.start()
        t0 = time.time()
        rc, out, err = x(env, "./mbox\n")
        dt_ = time.time() - t0
        timer.join()
        expect_rc(rc, 0, err)
        expect(dt_ >= 1.2, "%s: did not wait for the lock (%.2fs)" % (kind, dt_))
        expect(env.read("mbox").startswith(b"From "), "%s: nothing delivered" % kind)


def t_mbox_unwritable(env):
    rc, out, err = x(env, "./nodir/mbox\n")
    expect_rc(rc, 111, err)
    expect(b"unable to open mbox" in err, "stderr %r" % err)


def t_program_stdin(env):
    rc, out, err = x(env, "|cat > p1\n|pwd > cwd; cat > p2\n| echo spaced > p3\n")
    expect_rc(rc, 0, err)
    expect(env.read("p1") == MSG and env.read("p2") == MSG, "stdin differs (not rewound?)")
    expect(env.read("cwd") == env.home.encode() + b"\n", "cwd %r" % env.read("cwd"))
    expect(env.read("p3") == b"spaced\n", "leading space")
    expect(out == b"did 0+0+3\n", "stdout %r" % out)


def t_program_output(env):
    rc, out, err = x(env, "|echo to-stdout; echo to-stderr >&2\n")
    expect_rc(rc, 0, err)
    expect(out == b"to-stdout\nto-stderr\ndid 0+0+1\n", "stdout %r" % out)


def t_program_codes(env):
    for code in (0, 99):
        rc, out, err = x(env, "|exit %d\n" % code)
        expect(rc == 0, "exit %d: rc %d" % (code, rc))
    for code in (100, 64, 65, 70, 76, 77, 78, 112):
        rc, out, err = x(env, "|exit %d\n" % code)
        expect(rc == 100, "exit %d: rc %d, wanted 100" % (code, rc))
    for code in (111, 1, 2, 75, 99 + 1 + 1, 113, 255):
        rc, out, err = x(env, "|exit %d\n" % code)
        expect(rc == 111, "exit %d: rc %d, wanted 111" % (code, rc))
    rc, out, err = x(env, "|kill -9 $$\n")
    expect_rc(rc, 111, err)
    expect(b"signal 9" in err, "stderr %r" % err)
    rc, out, err = x(env, "|echo 'Sorry, this address is closed.' >&2; exit 100\n")
    expect_rc(rc, 100, err)
    expect(err.endswith(b"local: fatal: Sorry, this address is closed.\n"), "reason %r" % err)
    rc, out, err = x(env, "|exit 100\n")
    expect(err.endswith(b"program exited 100 (#5.0.0)\n"), "reason %r" % err)


def t_program_99(env):
    env.write(".qmail-owner", "")
    rc, out, err = x(env, "&before@example.com\n./Maildir/\n|exit 99\n|touch after\n./mbox\n&after@example.com\n")
    expect_rc(rc, 0, err)
    expect(not os.path.exists(env.path("after")) and not os.path.exists(env.path("mbox")), "went on after 99")
    expect(len(env.new()) == 1, "Maildir")
    q = env.queued()
    expect(q is not None, "the forward before 99 was not sent")
    expect(q[0] == b"Fbob@example.net\0Tbefore@example.com\0\0", "envelope %r" % q[0])
    expect(re.match(rb"^did 1\+1\+1\nqp \d+\n$", out), "stdout %r" % out)


def t_program_failure_stops(env):
    rc, out, err = x(env, "./Maildir/\n|exit 111\n./mbox\n&fwd@example.com\n")
    expect_rc(rc, 111, err)
    expect(len(env.new()) == 1, "the Maildir line before the failure")
    expect(not os.path.exists(env.path("mbox")), "went on after a failure")
    expect(env.queued() is None, "forwarded although a delivery failed")


def timed_out(env, line, within):
    """Run a program line under a 1-second control/timeoutlocal: deferred
    (111) in less than within seconds; its stderr."""
    env.control("timeoutlocal", "1\n")
    t0 = time.time()
    rc, out, err = x(env, line)
    el = time.time() - t0
    expect_rc(rc, 111, err)
    expect(el < within, "took %.1fs" % el)
    return err


def alive(pid):
    """Running (a zombie has finished: its parent has yet to reap it)."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            return b"Z" not in f.read().split(b")")[1][:3]
    except FileNotFoundError:
        return False


def expect_gone(env, *pidfiles):
    # a signal is delivered, but dying takes the killed process a moment
    # of its own: allow it, bounded
    pids = [int(env.read(f)) for f in pidfiles]
    deadline = time.monotonic() + 3
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for f, pid in zip(pidfiles, pids):
        expect(not alive(pid), "%s %d still running" % (f, pid))


def t_program_timeout(env):
    err = timed_out(env, "|echo $$ > pid; sleep 60 & echo $! > pid2; wait\n", 10)
    expect(b"timed out after 1 seconds" in err, "stderr %r" % err)
    expect_gone(env, "pid", "pid2")


def t_program_timeout_term_ignored(env):
    # SIGKILL after the grace time
    timed_out(env, "|trap '' TERM; while :; do sleep 1; done\n", 15)


def t_program_timeout_leftover_killed(env):
    # the program dies of SIGTERM, its background child ignores it: the
    # child is killed too, not left running for its 60 seconds
    timed_out(env, "|trap '' TERM; sleep 60 & echo $! > pid2; trap - TERM; wait\n", 10)
    expect_gone(env, "pid2")


def t_program_offset(env):
    # under yubin-lspawn stdin is the queue file after its header: a
    # program that rewinds must see the message, never the header
    junk = b"Tsecret-other-recipient@example.com\0" * 100
    rc, out, err = x(env, "|cat > p1; python3 -c 'import os; os.lseek(0, 0, 0); open(\"p2\", \"wb\").write(os.read(0, 1000000))'\n",
                     msg=junk + MSG, offset=len(junk))
    expect_rc(rc, 0, err)
    expect(env.read("p1") == MSG, "p1 %r" % env.read("p1")[:80])
    expect(env.read("p2") == MSG, "after a rewind %r" % env.read("p2")[:80])


QC = ["SENDER", "NEWSENDER", "RECIPIENT", "USER", "HOME", "HOST", "HOST2", "HOST3", "HOST4",
      "LOCAL", "EXT", "EXT2", "EXT3", "EXT4", "DEFAULT", "DTLINE", "RPLINE", "UFLINE"]


def program_env(env, qmail, local, ext, domain, sender="bob@example.net", extra_env=None):
    env.write(qmail, "|env -0 > envdump\n")
    rc, out, err = deliver(env, local, "-", ext, domain=domain, sender=sender, extra_env=extra_env)
    expect_rc(rc, 0, err)
    got = {}
    for item in env.read("envdump").split(b"\0"):
        if b"=" in item:
            k, v = item.split(b"=", 1)
            got[k.decode()] = v.decode()
    return got


def compare_env(got, want):
    for k in QC:
        if want.get(k) is None:
            expect(k not in got, "%s set to %r, qmail-command says unset" % (k, got.get(k)))
        else:
            expect(got.get(k) == want[k], "%s = %r, wanted %r" % (k, got.get(k), want[k]))


def t_env_exact(env):
    got = program_env(env, ".qmail-foo-bar-baz", "alice-foo-bar-baz", "foo-bar-baz", "mail.example.co.uk",
                      extra_env={"DEFAULT": "inherited"})
    want = {
        "SENDER": "bob@example.net", "NEWSENDER": "bob@example.net",
        "RECIPIENT": "alice-foo-bar-baz@mail.example.co.uk", "USER": "alice", "HOME": env.home,
        "HOST": "mail.example.co.uk", "HOST2": "mail.example.co", "HOST3": "mail.example", "HOST4": "mail",
        "LOCAL": "alice-foo-bar-baz", "EXT": "foo-bar-baz", "EXT2": "bar-baz", "EXT3": "baz", "EXT4": "",
        "DEFAULT": None,
        "DTLINE": "Delivered-To: alice-foo-bar-baz@mail.example.co.uk\n",
        "RPLINE": "Return-Path: <bob@example.net>\n",
    }
    compare_env(got, dict(want, UFLINE=got.get("UFLINE")))
    expect(FROM_RE.match(got.get("UFLINE", "").encode()), "UFLINE %r" % got.get("UFLINE"))


def t_env_default(env):
    got = program_env(env, ".qmail-lists-default", "alice-Lists-Yubin.Dev", "Lists-Yubin.Dev", "example.org", sender="")
    want = {
        "SENDER": "", "NEWSENDER": "",
        "RECIPIENT": "alice-Lists-Yubin.Dev@example.org", "USER": "alice", "HOME": env.home,
        "HOST": "example.org", "HOST2": "example", "HOST3": "example", "HOST4": "example",
        "LOCAL": "alice-Lists-Yubin.Dev", "EXT": "Lists-Yubin.Dev", "EXT2": "Yubin.Dev", "EXT3": "", "EXT4": "",
        "DEFAULT": "Yubin.Dev",
        "DTLINE": "Delivered-To: alice-Lists-Yubin.Dev@example.org\n",
        "RPLINE": "Return-Path: <>\n",
    }
    compare_env(got, dict(want, UFLINE=got.get("UFLINE")))
    expect(got.get("UFLINE", "").startswith("From MAILER-DAEMON "), "UFLINE %r" % got.get("UFLINE"))


def t_env_default_exact_name(env):
    # an exact file whose name ends with "default" sets DEFAULT too
    got = program_env(env, ".qmail-x-default", "alice-x-default", "x-default", "example.org")
    expect(got.get("DEFAULT") == "default", "DEFAULT %r" % got.get("DEFAULT"))
    got = program_env(env, ".qmail-default", "alice-anything", "anything", "example.org")
    expect(got.get("DEFAULT") == "anything", "DEFAULT %r" % got.get("DEFAULT"))


def t_env_owner(env):
    env.write(".qmail-list-owner", "")
    got = program_env(env, ".qmail-list", "alice-list", "list", "example.org")
    expect(got.get("NEWSENDER") == "alice-list-owner@example.org", "NEWSENDER %r" % got.get("NEWSENDER"))
    env.write(".qmail-list-owner-default", "")
    got = program_env(env, ".qmail-list", "alice-list", "list", "example.org")
    expect(got.get("NEWSENDER") == "alice-list-owner-@example.org-@[]", "VERP NEWSENDER %r" % got.get("NEWSENDER"))
    for s in ("", "#@[]"):
        got = program_env(env, ".qmail-list", "alice-list", "list", "example.org", sender=s)
        expect(got.get("NEWSENDER") == s, "bounce sender %r -> NEWSENDER %r" % (s, got.get("NEWSENDER")))


# ---------------------------------------------------------------- forwards

def t_forward_envelope(env):
    rc, out, err = x(env, "&one@example.com\ntwo@example.net\n# not me@example.org\n&three+x@example.org  \n")
    expect_rc(rc, 0, err)
    q = env.queued()
    expect(q is not None, "nothing queued")
    expect(q[0] == b"Fbob@example.net\0Tone@example.com\0Ttwo@example.net\0Tthree+x@example.org\0\0", "envelope %r" % q[0])
    expect(q[1] == dt() + MSG, "message %r" % q[1][:200])
    expect(env.read("../fakeq/calls") == b"called\n", "queued more than once")
    m = re.match(rb"^did 0\+3\+0\nqp (\d+)\n$", out)
    expect(m, "stdout %r" % out)
    expect(env.new() == [], "delivered to the Maildir too")


def t_forward_owner(env):
    env.write(".qmail-x-owner", "")
    rc, out, err = x(env, "&fwd@example.com\n")
    expect_rc(rc, 0, err)
    expect(env.queued()[0].startswith(b"Falice-x-owner@example.org\0"), "envelope %r" % env.queued()[0])
    env.write(".qmail-x-owner-default", "")
    rc, out, err = x(env, "&fwd@example.com\n")
    expect(env.queued()[0].startswith(b"Falice-x-owner-@example.org-@[]\0"), "VERP envelope %r" % env.queued()[0])
    rc, out, err = x(env, "&fwd@example.com\n", sender="")
    expect(env.queued()[0].startswith(b"F\0T"), "bounce envelope %r" % env.queued()[0])


def t_forward_offset(env):
    junk = b"J" * 5000 + b"\n"
    rc, out, err = x(env, "&fwd@example.com\n", msg=junk + MSG, offset=len(junk))
    expect_rc(rc, 0, err)
    expect(env.queued()[1] == dt() + MSG, "message %r" % env.queued()[1][:100])


def t_forward_qq_codes(env):
    for code, want in ((31, 100), (11, 100), (71, 111), (54, 111), (81, 111)):
        with open(os.path.join(env.q, "code"), "w") as f:
            f.write("%d\n" % code)
        rc, out, err = x(env, "&fwd@example.com\n")
        expect(rc == want, "queue exit %d: rc %d, wanted %d (%r)" % (code, rc, want, err))
        expect(b"unable to forward the message" in err, "stderr %r" % err)


def t_forward_no_queue(env):
    rc, out, err = x(env, "&fwd@example.com\n", extra_env={"QMAILQUEUE": "/nonexistent/queue"})
    expect_rc(rc, 111, err)


def t_forward_loop(env):
    # a forward that comes back (a -> b -> a): the second pass bounces
    msg = dt() + MSG
    rc, out, err = x(env, "&alice-x@example.org\n", msg=msg)
    expect_rc(rc, 100, err)
    expect(b"looping" in err, "stderr %r" % err)
    expect(env.queued() is None, "forwarded a looping message")
    # the first pass goes out with the line that stops the second
    rc, out, err = x(env, "&alice-x@example.org\n")
    expect_rc(rc, 0, err)
    msg2 = env.queued()[1]
    rc, out, err = x(env, "&alice-x@example.org\n", msg=msg2)
    expect_rc(rc, 100, err)


def t_forward_bad_address(env):
    for line, why in (("&", b"(empty)"), ("&" + "a" * 100000 + "@example.com", b"bad forward address"),
                      ("&a\x01b@example.com", b"bad forward address"), ("&a\x7fb@example.com", b"bad forward address")):
        rc, out, err = x(env, line + "\n")
        expect(rc == 100, "%r: rc %d" % (line[:20], rc))
        expect(why in err, "%r: stderr %r" % (line[:20], err[:300]))
        expect(len(err) < 2000, "a 100 KB reason")
    expect(env.queued() is None, "queued")


def t_forward_8bit(env):
    # bytes above 127 are not control characters: qmail forwards them
    rc, out, err = x(env, "&j\xfcrgen@example.com\n".encode("latin-1"))
    expect_rc(rc, 0, err)
    expect(env.queued()[0] == b"Fbob@example.net\0Tj\xfcrgen@example.com\0\0", "envelope %r" % env.queued()[0])


# ---------------------------------------------------------------- extensions

def t_ext_search_order(env):
    env.write(".qmail-default", "|echo default > which\n")
    env.write(".qmail-foo-default", "|echo foo-default > which\n")
    env.write(".qmail-foo-bar-default", "|echo foo-bar-default > which\n")
    env.write(".qmail-foo-bar-baz", "|echo exact > which\n")
    for ext, want in (("foo-bar-baz", "exact"), ("foo-bar-qux", "foo-bar-default"), ("foo-bar", "foo-default"),
                      ("foo-x-y", "foo-default"), ("foo", "default"), ("foo-", "foo-default"), ("other", "default")):
        rc, out, err = deliver(env, "alice-" + ext, "-", ext)
        expect_rc(rc, 0, err)
        expect(env.read("which") == (want + "\n").encode(), "%s: used %r, wanted %s" % (ext, env.read("which"), want))


def t_ext_case_dots(env):
    env.write(".qmail-foo:bar", "|echo $EXT > which\n")
    rc, out, err = deliver(env, "alice-FOO.Bar", "-", "FOO.Bar")
    expect_rc(rc, 0, err)
    expect(env.read("which") == b"FOO.Bar\n", "which %r" % env.read("which"))
    # '.' never reaches a file name: no way up
    env.write(".qmail-::", "|echo colons > which\n")
    rc, out, err = deliver(env, "alice-..", "-", "..")
    expect_rc(rc, 0, err)
    expect(env.read("which") == b"colons\n", "which %r" % env.read("which"))


def t_ext_missing_bounces(env):
    env.write(".qmail", "./Maildir/\n")
    rc, out, err = deliver(env, "alice-nobody", "-", "nobody")
    expect_rc(rc, 100, err)
    expect(err == b"local: fatal: Sorry, no mailbox here by that name. (#5.1.1)\n", "stderr %r" % err)
    expect(env.new() == [], "delivered")


def t_ext_no_dotqmail_at_all(env):
    # yubin's plus addressing: nothing configured, the extension is the user
    rc, out, err = deliver(env, "alice-anything", "-", "anything")
    expect_rc(rc, 0, err)
    expect(env.new_data() == [RP + dt("alice-anything") + MSG], "content")


def t_empty_file_default(env):
    env.write(".qmail-x", "")
    rc, out, err = deliver(env, "alice-x", "-", "x", dd="./Maildir/\n./mbox")
    expect_rc(rc, 0, err)
    expect(len(env.new()) == 1 and env.read("mbox").startswith(b"From "), "default delivery not followed")
    expect(out == b"did 2+0+0\n", "stdout %r" % out)


def t_base_address(env):
    # dash empty: a missing .qmail is an empty one
    rc, out, err = deliver(env)
    expect_rc(rc, 0, err)
    expect(env.new_data() == [RP + dt("alice") + MSG], "content")
    env.write(".qmail", "|cat > got\n")
    rc, out, err = deliver(env)
    expect_rc(rc, 0, err)
    expect(env.read("got") == MSG and len(env.new()) == 1, ".qmail not followed")


# ---------------------------------------------------------------- safety

def t_qmail_world_writable(env):
    env.write(".qmail-x", "./Maildir/\n", mode=0o602)
    rc, out, err = deliver(env, "alice-x", "-", "x")
    expect_rc(rc, 111, err)
    expect(b"writable" in err and env.new() == [], "stderr %r" % err)
    # group-writable is allowed, as qmail's default conf-patrn (002)
    os.chmod(env.path(".qmail-x"), 0o620)
    rc, out, err = deliver(env, "alice-x", "-", "x")
    expect_rc(rc, 0, err)


def t_home_checks(env):
    os.chmod(env.home, 0o703)
    rc, out, err = deliver(env)
    expect_rc(rc, 111, err)
    os.chmod(env.home, 0o1700)
    rc, out, err = deliver(env)
    expect_rc(rc, 111, err)
    expect(b"sticky" in err, "stderr %r" % err)
    rc, out, err = deliver(env, opts=["-n"])
    expect_rc(rc, 0, err)
    expect(b"sticky" in err and out == b"maildir ./Maildir/\ndid 1+0+0\n", "-n on a sticky home: %r %r" % (out, err))
    expect(env.new() == [], "delivered")


def t_xbit(env):
    env.write(".qmail-x", "&fwd@example.com\n# comment\n", mode=0o700)
    rc, out, err = deliver(env, "alice-x", "-", "x")
    expect_rc(rc, 0, err)
    expect(env.queued() is not None, "forward-only file not forwarded")
    for line, what in (("./Maildir/", b"file"), ("./mbox", b"file"), ("|touch ran", b"prog")):
        env.write(".qmail-x", "&fwd@example.com\n%s\n" % line, mode=0o700)
        rc, out, err = deliver(env, "alice-x", "-", "x")
        expect_rc(rc, 111, err)
        expect(b"x bit" in err and what in err, "stderr %r" % err)
    expect(not os.path.exists(env.path("ran")) and env.new() == [], "delivered anyway")
    # an empty executable file is the default delivery
    env.write(".qmail-x", "", mode=0o700)
    rc, out, err = deliver(env, "alice-x", "-", "x")
    expect_rc(rc, 0, err)


def t_plus_list(env):
    rc, out, err = x(env, "./Maildir/\n+list\n|touch ran\n")
    expect_rc(rc, 111, err)
    expect(len(env.new()) == 1 and not os.path.exists(env.path("ran")), "+list ignored")
    rc, out, err = x(env, "+other\n./Maildir/\n")
    expect_rc(rc, 0, err)


def t_blank_lines(env):
    rc, out, err = x(env, "\n./Maildir/\n")
    expect_rc(rc, 111, err)
    expect(b"first line" in err, "stderr %r" % err)
    rc, out, err = x(env, " \t\n./Maildir/\n")
    expect_rc(rc, 111, err)
    rc, out, err = x(env, "./Maildir/\n\n\n./Maildir/")
    expect_rc(rc, 0, err)
    expect(len(env.new()) == 2, "%d deliveries" % len(env.new()))


def t_describe(env):
    env.write(".qmail-x", "# c\n./Maildir/\n/abs/mbox\n|prog arg\n&a@example.com\nb@example.com\n")
    rc, out, err = deliver(env, "alice-x", "-", "x", opts=["-n"], msg=dt() + MSG)
    expect_rc(rc, 0, err)
    want = (b"maildir ./Maildir/\nmbox /abs/mbox\nprogram prog arg\nforward a@example.com\n"
            b"forward b@example.com\ndid 2+2+1\n")
    expect(out == want, "stdout %r" % out)
    expect(env.new() == [] and env.queued() is None, "-n delivered")


# ---------------------------------------------------------------- bad input

def t_long_line(env):
    rc, out, err = x(env, "#" + "c" * 100000 + "\n./Maildir/\n|: " + "p" * 100000 + "; cat > got\n")
    expect_rc(rc, 0, err)
    expect(len(env.new()) == 1 and env.read("got") == MSG, "not delivered")


def t_binary_bytes(env):
    junk = bytes(range(1, 256)).replace(b"\n", b"")
    rc, out, err = x(env, b"#" + junk + b"\n|cat > got # " + junk + b"\n./Maildir/\n")
    expect_rc(rc, 0, err)
    expect(env.read("got") == MSG and len(env.new()) == 1, "not delivered")
    rc, out, err = x(env, b"./Maildir/\n|cat > got\0 evil\n")
    expect_rc(rc, 111, err)
    expect(b"NUL" in err, "stderr %r" % err)


def t_too_large(env):
    rc, out, err = x(env, "#" + "c" * (1 << 20) + "\n./Maildir/\n")
    expect_rc(rc, 111, err)
    expect(b"larger than 1 MB" in err, "stderr %r" % err[:300])


def t_not_regular(env):
    os.mkdir(env.path(".qmail-x"))
    env.write(".qmail-default", "|echo default > which\n")
    rc, out, err = deliver(env, "alice-x", "-", "x")
    expect_rc(rc, 0, err)
    expect(env.read("which") == b"default\n", "a directory was taken for .qmail-x")


# ---------------------------------------------------------------- preline and friends

def t_preline(env):
    for opts, parts in (("", "fru"), ("-f", "rd"), ("-r", "fd"), ("-d", "fr"), ("-frd", "")):
        rc, out, err = x(env, "|%s %s cat > got\n" % (PRELINE, opts))
        expect_rc(rc, 0, err)
        data = env.read("got")
        m = FROM_RE.match(data)
        want = b""
        if "f" in parts:
            expect(m, "%s: From_ %r" % (opts, data[:60]))
            data = data[m.end():]
        if "r" in parts:
            want += RP
        if "d" in parts or "u" in parts:
            want += dt()
        expect(data == want + MSG, "%s: %r" % (opts, data[:200]))


def t_preline_codes(env):
    for code, want in ((0, 0), (100, 100), (111, 111), (99, 0), (75, 111)):
        rc, out, err = x(env, "|%s sh -c 'cat > /dev/null; exit %d'\n" % (PRELINE, code))
        expect(rc == want, "exit %d: rc %d" % (code, rc))
    # a program that stops reading early still decides
    rc, out, err = x(env, "|%s sh -c 'exit 100'\n" % PRELINE, msg=MSG * 20000)
    expect_rc(rc, 100, err)
    rc, out, err = x(env, "|%s /nonexistent/prog\n" % PRELINE)
    expect_rc(rc, 100, err)
    p = subprocess.run([PRELINE, "cat"], input=b"", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env={"PATH": "/usr/bin:/bin"}, timeout=TIMEOUT)
    expect(p.returncode == 100, "without the environment: %d" % p.returncode)


def t_procmail(env):
    if not shutil.which("procmail"):
        expect(False, "procmail not installed (package/deps)")
    env.write("procmailrc", "MAILDIR=%s\nLOGFILE=%s/pmlog\n:0\n%s/pmbox\n" % (env.home, env.home, env.home))
    rc, out, err = x(env, "|%s procmail %s/procmailrc\n" % (PRELINE, env.home))
    expect_rc(rc, 0, err, out)
    data = env.read("pmbox")
    m = FROM_RE.match(data)
    expect(m, "From_ %r" % data[:80])
    expect(data[m.end():].startswith(RP + dt() + MSG[:40]), "pmbox %r" % data[:300])


def t_maildrop(env):
    if not shutil.which("maildrop"):
        expect(False, "maildrop not installed (package/deps)")
    env.write("mailfilter", 'to "%s/Maildir/"\n' % env.home)
    rc, out, err = x(env, "|maildrop %s/mailfilter\n" % env.home)
    expect_rc(rc, 0, err, out)
    got = env.new_data()
    expect(len(got) == 1 and got[0].endswith(MSG), "Maildir %r" % got)
    # maildrop keeps a From_ line: preline -f, as its documentation says for qmail
    rc, out, err = x(env, "|%s -f maildrop %s/mailfilter\n" % (PRELINE, env.home))
    expect_rc(rc, 0, err, out)
    got = env.new_data()
    expect(len(got) == 2 and any(g.startswith(RP + dt()) for g in got), "with preline %r" % got)


def main():
    if not os.access(LOCAL, os.X_OK):
        check("dotqmail-binary", False, "%s not found (set YUBIN_BIN)" % LOCAL)
        return
    cases = [(n[2:].replace("_", "-"), f) for n, f in sorted(globals().items(), key=lambda kv: 0)
             if n.startswith("t_") and callable(f)]
    cases = [("dotqmail-" + n, f) for n, f in cases]
    run_cases(cases, Env)


run(main)
