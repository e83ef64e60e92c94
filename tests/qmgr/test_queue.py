#!/usr/bin/env python3
"""yubin-queue: the qmail-queue interface, its exit codes and the durable
queue file format (qmgr/README)."""

import os
import re
import stat
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from qmgrtest import Root  # noqa: E402
from yubintest import check, run  # noqa: E402

MSG = b"Subject: test\n\nline one\nline two\n"


def layout(r):
    for d in ("tmp", "new", "cur", "env", "lock"):
        os.makedirs(r.path("queue", d), exist_ok=True)


def listq(r, d):
    return sorted(os.listdir(r.path("queue", d)))


def parse_head(data):
    nl = data.index(b"\n")
    m = re.fullmatch(rb"yubinq1 msg=(\d+) size=(\d+) time=(\d+) uid=(\d+) env=(here|file)", data[:nl])
    return m, nl + 1


def main():
    with Root() as r:
        layout(r)
        os.mkfifo(r.path("queue", "lock", "trigger"), 0o622)
        trig = os.open(r.path("queue", "lock", "trigger"), os.O_RDONLY | os.O_NONBLOCK)

        rc, err = r.inject("sender@example.org", ["alice@example.test", "bob@remote.test"], MSG)
        check("queue_ok", rc == 0, "exit %d: %s" % (rc, err))
        new = listq(r, "new")
        check("queue_in_new", len(new) == 1 and not listq(r, "tmp"), "new=%r tmp=%r" % (new, listq(r, "tmp")))
        m = re.search(r"^queue: queued id=(\S+) bytes=(\d+) rcpts=(\d+) uid=(\d+)$", err, re.M)
        check("queue_log_line", m and m.group(1) == new[0] and int(m.group(2)) == len(MSG)
              and m.group(3) == "2" and int(m.group(4)) == os.getuid(), repr(err))
        try:
            poked = os.read(trig, 16)
        except BlockingIOError:
            poked = b""
        check("queue_trigger", len(poked) == 1, "read %r from the trigger" % poked)

        fn = r.path("queue", "new", new[0])
        st = os.stat(fn)
        with open(fn, "rb") as f:
            data = f.read()
        hm, hl = parse_head(data)
        ok = hm and int(hm.group(1)) == 4096 and int(hm.group(2)) == len(MSG) and hm.group(5) == b"here"
        env = b"Fsender@example.org\0Talice@example.test\0Tbob@remote.test\0\0"
        ok = ok and data[hl:hl + len(env)] == env and data[hl + len(env):4096] == b"\0" * (4096 - hl - len(env))
        ok = ok and data[4096:] == MSG and len(data) == 4096 + len(MSG)
        check("queue_format", ok, "file %r..." % data[:200])
        check("queue_file_mode", stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode))
        check("queue_id_name", re.fullmatch(r"\d+\.\d{9}\.\d+", new[0]) is not None, new[0])

        rc, err = r.inject("", ["alice@example.test"], b"")
        check("queue_empty_message_null_sender", rc == 0, "exit %d: %s" % (rc, err))

        # envelope errors
        for name, envb in [("no_F", b"Xa@b\0Tc@d\0\0"),
                           ("bad_record", b"Fa@b\0Qc@d\0\0"),
                           ("newline_in_address", b"Fa@b\0Tc\n@d\0\0"),
                           ("address_too_long", b"Fa@b\0T" + b"x" * 1200 + b"@d\0\0")]:
            before = listq(r, "new")
            rc, err = r.inject(None, None, MSG, env_bytes=envb)
            check("queue_envelope_" + name + "_91", rc == 91, "exit %d: %s" % (rc, err))
            check("queue_envelope_" + name + "_nothing_left",
                  listq(r, "new") == before and not listq(r, "tmp"), repr(listq(r, "tmp")))
        rc, err = r.inject(None, None, MSG, env_bytes=b"Fa@b\0Tc@d\0")
        check("queue_envelope_truncated_54", rc == 54, "exit %d: %s" % (rc, err))
        rc, err = r.inject(None, None, MSG, env_bytes=b"")
        check("queue_envelope_empty_54", rc == 54, "exit %d: %s" % (rc, err))

        # reading the message fails: fd 0 is a directory (EISDIR)
        fd = os.open(r.dir, os.O_RDONLY)
        rfd, wfd = os.pipe()
        os.write(wfd, b"Fa@b\0Tc@d\0\0")
        os.close(wfd)
        p = subprocess.run([r.path("bin", "yubin-queue")], stdin=fd, stdout=rfd,
                           stderr=subprocess.PIPE, env=r.env(), timeout=10)
        os.close(fd)
        os.close(rfd)
        check("queue_read_error_54", p.returncode == 54, "exit %d: %r" % (p.returncode, p.stderr))
        check("queue_read_error_cleans_tmp", not listq(r, "tmp"), repr(listq(r, "tmp")))

        # fd 1 closed: must not take our own file as the envelope
        p = subprocess.run(["sh", "-c", 'exec "$0" >&-', r.path("bin", "yubin-queue")],
                           input=MSG, stderr=subprocess.PIPE, env=r.env(), timeout=10)
        check("queue_fd1_closed_54", p.returncode == 54, "exit %d: %r" % (p.returncode, p.stderr))

        # a big envelope goes to env/ID
        rcpts = ["user-number-%04d@example.test" % i for i in range(300)]
        before = set(listq(r, "new"))
        rc, err = r.inject("big@example.org", rcpts, MSG)
        added = sorted(set(listq(r, "new")) - before)
        ok = rc == 0 and len(added) == 1
        if ok:
            with open(r.path("queue", "new", added[0]), "rb") as f:
                data = f.read()
            hm, hl = parse_head(data)
            envf = r.path("queue", "env", added[0])
            expect = b"Fbig@example.org\0" + b"".join(b"T" + x.encode() + b"\0" for x in rcpts) + b"\0"
            ok = (hm and hm.group(5) == b"file" and data[4096:] == MSG and os.path.exists(envf)
                  and open(envf, "rb").read() == expect)
        check("queue_envelope_file", ok, "exit %d %s" % (rc, err))
        r.check_sanitizer("queue")

    # no queue directory at all: a temporary error (qmail-queue's 62)
    with Root() as r:
        os.rmdir(r.path("queue"))
        rc, err = r.inject("a@b", ["c@d"], MSG)
        check("queue_no_queue_dir_temporary", rc == 62, "exit %d: %s" % (rc, err))
    with Root() as r:
        os.makedirs(r.path("queue", "new"))   # no tmp/
        rc, err = r.inject("a@b", ["c@d"], MSG)
        check("queue_no_tmp_dir_temporary", 51 <= rc <= 81, "exit %d: %s" % (rc, err))


run(main)
