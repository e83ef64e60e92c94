#!/usr/bin/env python3
"""yubin-local: exact Maildir bytes, initial offset, loops, exit codes
(the .qmail engine has its own tests in test_dotqmail.py).

Binaries from $YUBIN_BIN.  Prints PASS name / FAIL name: why per case."""

import os
import shutil
import stat
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from yubintest import binary, check, expect, run, run_cases  # noqa: E402

LOCAL = binary("yubin-local")
TIMEOUT = 60


class Env:
    """A fresh root with one home and its Maildir."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="yubin-local-")
        os.mkdir(os.path.join(self.root, "control"))
        os.mkdir(os.path.join(self.root, "users"))
        self.home = os.path.join(self.root, "home", "alice")
        os.makedirs(self.home, mode=0o700)
        os.chmod(self.home, 0o700)
        self.md = os.path.join(self.home, "Maildir")
        for d in ("", "tmp", "new", "cur"):
            os.mkdir(os.path.join(self.md, d), 0o700)

    def files(self, sub):
        return sorted(os.listdir(os.path.join(self.md, sub)))

    def read_new(self):
        names = self.files("new")
        expect(len(names) == 1, "expected 1 file in new/, got %d" % len(names))
        with open(os.path.join(self.md, "new", names[0]), "rb") as f:
            return f.read()

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)


def deliver(env, msg, args=None, offset=0, stdin_fd=None, extra_env=None):
    """Run yubin-local with msg (bytes) on stdin from a file at offset."""
    if args is None:
        args = ["alice", env.home, "alice", "", "", "example.org", "bob@example.net", "./Maildir/"]
    e = dict(os.environ)
    e["YUBIN_ROOT"] = env.root
    if extra_env:
        e.update(extra_env)
    if stdin_fd is None:
        path = os.path.join(env.root, "msgfile")
        with open(path, "wb") as f:
            f.write(msg)
        fd = os.open(path, os.O_RDONLY)
        os.lseek(fd, offset, os.SEEK_SET)
    else:
        fd = stdin_fd
    try:
        p = subprocess.run([LOCAL] + args, stdin=fd, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=TIMEOUT, env=e)
    finally:
        if stdin_fd is None:
            os.close(fd)
    return p.returncode, p.stdout, p.stderr


PREFIX = b"Return-Path: <bob@example.net>\nDelivered-To: alice@example.org\n"
MSG = b"From: bob@example.net\nTo: alice@example.org\nSubject: hi\n\nHello.\n.leading dot\n"


def expect_rc(got, want, err):
    expect(got == want, "exit %d, wanted %d; stderr: %r" % (got, want, err[-300:]))


def t_exact(env):
    rc, out, err = deliver(env, MSG)
    expect_rc(rc, 0, err)
    data = env.read_new()
    expect(data == PREFIX + MSG, "content %r" % data[:200])


def t_log(env):
    rc, out, err = deliver(env, MSG)
    expect_rc(rc, 0, err)
    name = env.files("new")[0]
    # the name holds ",S=<bytes>,W=<crlf bytes>"; ylog escapes '=' as \x3d
    expect(",S=%d," % len(PREFIX + MSG) in name, "no size in the name %r" % name)
    want = b"local: delivered to=alice@example.org file=new/" + name.replace("=", "\\x3d").encode() + b"\n"
    expect(err == want, "stderr %r, wanted %r" % (err, want))


def t_ext(env):
    args = ["alice", env.home, "alice-lists", "-", "lists", "example.org", "bob@example.net", "./Maildir/"]
    rc, out, err = deliver(env, MSG, args)
    expect_rc(rc, 0, err)
    data = env.read_new()
    want = b"Return-Path: <bob@example.net>\nDelivered-To: alice-lists@example.org\n" + MSG
    expect(data == want, "content %r" % data[:200])


def t_null_sender(env):
    args = ["alice", env.home, "alice", "", "", "example.org", "", "./Maildir/"]
    rc, out, err = deliver(env, MSG, args)
    expect_rc(rc, 0, err)
    data = env.read_new()
    expect(data.startswith(b"Return-Path: <>\nDelivered-To: alice@example.org\n"), "content %r" % data[:100])


def t_newline_in_args(env):
    args = ["alice", env.home, "alice", "", "", "example.org", "evil\nX-Injected: 1", "./Maildir/"]
    rc, out, err = deliver(env, MSG, args)
    expect_rc(rc, 0, err)
    data = env.read_new()
    expect(data.startswith(b"Return-Path: <evil_X-Injected: 1>\n"), "content %r" % data[:100])


def t_binary(env):
    body = bytes(range(256)) * 64 + b"\r\n\r\x00\xff\n\n\x00"
    msg = b"Subject: bin\n\n" + body
    rc, out, err = deliver(env, msg)
    expect_rc(rc, 0, err)
    data = env.read_new()
    expect(data == PREFIX + msg, "binary body changed (len %d vs %d)" % (len(data), len(PREFIX + msg)))


def t_empty(env):
    rc, out, err = deliver(env, b"")
    expect_rc(rc, 0, err)
    data = env.read_new()
    expect(data == PREFIX, "content %r" % data)


def t_big(env):
    line = b"".join(b"%07d abcdefghijklmnopqrstuvwxyz 0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ\n" % i for i in range(1000))
    msg = b"Subject: big\n\n" + line * (5 * 1024 * 1024 // len(line) + 1)
    expect(len(msg) > 5 * 1024 * 1024, "test message too small")
    rc, out, err = deliver(env, msg)
    expect_rc(rc, 0, err)
    data = env.read_new()
    expect(len(data) == len(PREFIX + msg), "size %d, wanted %d" % (len(data), len(PREFIX + msg)))
    expect(data == PREFIX + msg, "5 MB content differs")


def t_offset(env):
    # A queue-file header of 4096 bytes that must not be delivered nor be
    # scanned for loops (it even holds our Delivered-To line).
    junk = b"Delivered-To: alice@example.org\n" + b"J" * (4096 - 33) + b"\n"
    expect(len(junk) == 4096, "bad junk length %d" % len(junk))
    rc, out, err = deliver(env, junk + MSG, offset=4096)
    expect_rc(rc, 0, err)
    data = env.read_new()
    expect(data == PREFIX + MSG, "content %r" % data[:200])


def t_offset_loop(env):
    junk = b"X" * 4095 + b"\n"
    msg = b"Delivered-To: alice@example.org\n" + MSG
    rc, out, err = deliver(env, junk + msg, offset=4096)
    expect_rc(rc, 100, err)
    expect(env.files("new") == [] and env.files("tmp") == [], "a file was left")


def t_offset_big(env):
    junk = b"\0" * 4096
    msg = b"Subject: x\n\n" + os.urandom(300000)
    rc, out, err = deliver(env, junk + msg, offset=4096)
    expect_rc(rc, 0, err)
    expect(env.read_new() == PREFIX + msg, "content differs")


def t_loop(env):
    msg = b"Received: x\nDelivered-To: alice@example.org\nSubject: loop\n\nbody\n"
    rc, out, err = deliver(env, msg)
    expect_rc(rc, 100, err)
    expect(b"looping" in err, "stderr %r" % err)
    expect(err.count(b"\n") == 1, "more than one line on stderr: %r" % err)
    expect(env.files("new") == [] and env.files("tmp") == [], "a file was left")


def t_loop_case(env):
    msg = b"DELIVERED-TO: Alice@EXAMPLE.org\r\nSubject: loop\n\nbody\n"
    rc, out, err = deliver(env, msg)
    expect_rc(rc, 100, err)


def t_loop_late_header(env):
    # our line after a long header: still in the header, beyond 64 KB
    msg = b"".join(b"X-Filler-%d: %s\n" % (i, b"y" * 60) for i in range(2000))
    msg += b"Delivered-To: alice@example.org\n\nbody\n"
    expect(len(msg) > 65536, "header not long enough")
    rc, out, err = deliver(env, msg)
    expect_rc(rc, 100, err)


def t_no_loop_body(env):
    msg = b"Subject: fwd\n\nDelivered-To: alice@example.org\n"
    rc, out, err = deliver(env, msg)
    expect_rc(rc, 0, err)
    expect(env.read_new() == PREFIX + msg, "content differs")


def t_no_loop_other(env):
    msg = b"Delivered-To: alice@example.org.evil\nDelivered-To: bob@example.org\nDelivered-To: alice-x@example.org\n\nbody\n"
    rc, out, err = deliver(env, msg)
    expect_rc(rc, 0, err)
    expect(env.read_new() == PREFIX + msg, "content differs")


def t_missing_maildir(env):
    shutil.rmtree(env.md)
    rc, out, err = deliver(env, MSG)
    expect_rc(rc, 111, err)
    expect(b"does not exist" in err, "unclear message %r" % err)
    expect(err.count(b"\n") == 1, "more than one line on stderr: %r" % err)


def t_missing_home(env):
    args = ["alice", env.home + "-gone", "alice", "", "", "example.org", "bob@example.net", "./Maildir/"]
    rc, out, err = deliver(env, MSG, args)
    expect_rc(rc, 111, err)


def t_writable_home(env):
    os.chmod(env.home, 0o777)
    rc, out, err = deliver(env, MSG)
    expect_rc(rc, 111, err)
    expect(env.files("new") == [], "delivered anyway")


def t_bad_args(env):
    for args in ([], ["alice"], ["alice", env.home, "alice", "", "", "example.org", "bob@x"],
                 ["alice", env.home, "alice", "", "", "example.org", "bob@x", "./Maildir/", "extra"],
                 ["alice", "relative/home", "alice", "", "", "example.org", "bob@x", "./Maildir/"],
                 ["-x", "alice", env.home, "alice", "", "", "example.org", "bob@x", "./Maildir/"]):
        rc, out, err = deliver(env, MSG, args)
        expect(rc == 100, "args %r: exit %d, wanted 100" % (args, rc))
    expect(env.files("new") == [], "delivered anyway")


def t_mbox(env):
    # defaultdelivery as an mbox (the details are in test_dotqmail.py)
    args = ["alice", env.home, "alice", "", "", "example.org", "bob@x", "./Mailbox"]
    rc, out, err = deliver(env, MSG, args)
    expect_rc(rc, 0, err)
    with open(os.path.join(env.home, "Mailbox"), "rb") as f:
        data = f.read()
    expect(data.startswith(b"From bob@x ") and data.endswith(MSG + b"\n"), "Mailbox %r" % data[:200])
    expect(out == b"did 1+0+0\n", "stdout %r" % out)


def t_program(env):
    args = ["alice", env.home, "alice", "", "", "example.org", "bob@x", "|cat > got"]
    rc, out, err = deliver(env, MSG, args)
    expect_rc(rc, 0, err)
    with open(os.path.join(env.home, "got"), "rb") as f:
        expect(f.read() == MSG, "program's stdin differs")
    expect(out == b"did 0+0+1\n", "stdout %r" % out)


def t_absolute_maildir(env):
    args = ["alice", env.home, "alice", "", "", "example.org", "bob@example.net", env.md + "/"]
    rc, out, err = deliver(env, MSG, args)
    expect_rc(rc, 0, err)
    expect(env.read_new() == PREFIX + MSG, "content differs")


def t_dash_n(env):
    args = ["-n", "alice", env.home, "alice", "", "", "example.org", "bob@x", "./Maildir/"]
    rc, out, err = deliver(env, MSG, args)
    expect_rc(rc, 0, err)
    expect(out == b"maildir ./Maildir/\ndid 1+0+0\n", "stdout %r" % out)
    expect(env.files("new") == [], "-n delivered")


def t_mode_tmp(env):
    rc, out, err = deliver(env, MSG)
    expect_rc(rc, 0, err)
    name = env.files("new")[0]
    st = os.stat(os.path.join(env.md, "new", name))
    expect(stat.S_IMODE(st.st_mode) == 0o600, "mode %o" % stat.S_IMODE(st.st_mode))
    expect(env.files("tmp") == [], "leftover in tmp/: %r" % env.files("tmp"))
    expect(env.files("cur") == [], "file in cur/")


def t_unique(env):
    for i in range(20):
        rc, out, err = deliver(env, MSG + b"%d\n" % i)
        expect_rc(rc, 0, err)
    names = env.files("new")
    expect(len(names) == 20, "%d files for 20 deliveries" % len(names))
    expect(all(":" not in n and "/" not in n for n in names), "bad names %r" % names)


def t_pipe(env):
    r, w = os.pipe()
    os.write(w, MSG)
    os.close(w)
    try:
        rc, out, err = deliver(env, MSG, stdin_fd=r)
    finally:
        os.close(r)
    expect_rc(rc, 111, err)
    expect(env.files("new") == [], "delivered from a pipe")


def main():
    if not os.access(LOCAL, os.X_OK):
        check("local-binary", False, "%s not found (set YUBIN_BIN)" % LOCAL)
        return
    cases = [
        ("local-exact-bytes", t_exact),
        ("local-log-line", t_log),
        ("local-ext-delivered-to", t_ext),
        ("local-null-sender", t_null_sender),
        ("local-newline-in-sender", t_newline_in_args),
        ("local-binary-body", t_binary),
        ("local-empty-message", t_empty),
        ("local-5mb-message", t_big),
        ("local-initial-offset", t_offset),
        ("local-initial-offset-loop", t_offset_loop),
        ("local-initial-offset-big", t_offset_big),
        ("local-loop-100", t_loop),
        ("local-loop-case-crlf", t_loop_case),
        ("local-loop-long-header", t_loop_late_header),
        ("local-no-loop-in-body", t_no_loop_body),
        ("local-no-loop-other-address", t_no_loop_other),
        ("local-missing-maildir-111", t_missing_maildir),
        ("local-missing-home-111", t_missing_home),
        ("local-world-writable-home-111", t_writable_home),
        ("local-bad-args-100", t_bad_args),
        ("local-default-mbox", t_mbox),
        ("local-default-program", t_program),
        ("local-absolute-maildir", t_absolute_maildir),
        ("local-dash-n", t_dash_n),
        ("local-mode-0600-no-tmp-leftover", t_mode_tmp),
        ("local-unique-names", t_unique),
        ("local-pipe-stdin-111", t_pipe),
    ]
    run_cases(cases, Env)


run(main)
