#!/usr/bin/env python3
"""The retry record (qmgr/README, qmgr/queue.h): when yubin-qmgr defers a
message it writes "next=T\\n" in the last 32 bytes of the header block;
yubin-qread shows it per deferred recipient (next=XmYs); a restarted qmgr
keeps to it instead of trying everything at once; SIGALRM still retries
at once.  Nothing is written before a deferral (the fast path).  An older
file whose envelope reaches those 32 bytes gets no record (and its
envelope is left intact); a garbled record counts as none; yubin-queue
puts an envelope that would reach them in env/."""

import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import qmgrtest  # noqa: E402
from yubintest import binary, check, run, sanitizer_report  # noqa: E402

NEXTOFF = 4096 - 32
BASE = 30        # control/queueretrybase of these cases: the next attempt is far enough


class Root(qmgrtest.Root):
    def __init__(self, name, **k):
        super().__init__(control={"queueretrybase": str(BASE), "queueretrymax": "60"}, **k)
        self.name = name

    def __exit__(self, *exc):
        if getattr(self, "qmgr", None) and self.qmgr.poll() is None:
            self.stop_qmgr()
        self.check_sanitizer(self.name)
        return super().__exit__(*exc)


def body(tag):
    return b"Subject: %s\n\npayload\n" % tag.encode()


def started(r, n=1):
    return r.wait(lambda: r.log().count("qmgr: start ") >= n, 10)


def qread(r):
    """yubin-qread's recipient lines: {addr: (state, next or None)}, and the raw output"""
    p = subprocess.run([binary("yubin-qread")], env=r.env(), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    err = p.stderr.decode(errors="replace")
    bad = sanitizer_report(err)
    if bad:
        r.sanitizer.append("yubin-qread: " + bad)
    out = p.stdout.decode(errors="replace")
    rcpts = {}
    for line in out.splitlines():
        if line.startswith("  "):
            f = line.split()
            nxt = [x[5:] for x in f[3:] if x.startswith("next=")]
            rcpts[f[2]] = (f[0], nxt[0] if nxt else None)
    return p.returncode, rcpts, out + err


def seconds(age):
    """'4m59s' -> 299; 'now' -> 0; None -> None"""
    if age is None:
        return None
    if age == "now":
        return 0
    mult = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    return sum(int(n) * mult[u] for n, u in re.findall(r"(\d+)([dhms])", age))


def record(path):
    with open(path, "rb") as f:
        f.seek(NEXTOFF)
        return f.read(32)


def only_cur(r):
    files = os.listdir(r.path("queue", "cur"))
    return r.path("queue", "cur", files[0]) if len(files) == 1 else None


def defers(r, addr):
    return r.log().count("to=%s status=defer" % addr)


def test_record_qread_restart():
    with Root("retry_record") as r:
        r.user_flag("bob", "temp")
        r.user_flag("carol", "slow", content="1")
        r.start_qmgr()
        started(r)
        rc, _ = r.inject("s@example.org", ["alice@example.test", "bob@example.test", "carol@example.test"], body("one"))
        # alice delivered (D recorded), carol still being delivered: no
        # record yet (nothing written before a deferral)
        ok = r.wait(lambda: len(r.got("alice")) == 1, 10)
        path = only_cur(r)
        rec0 = record(path) if path else None
        check("no_record_before_deferral", rc == 0 and ok and rec0 == b"\0" * 32 and not r.got("carol"),
              "rc %d rec %r log %s" % (rc, rec0, r.log()[-400:]))
        rc, rcpts, out = qread(r)
        check("qread_no_next_before_deferral", rc == 0 and rcpts.get("bob@example.test", ("", "x"))[1] is None, out)

        ok = r.wait(lambda: len(r.got("carol")) == 1 and "qmgr: retry id=" in r.log(), 10)
        birth = int(os.path.basename(path).split(".")[0])
        rec = record(path)
        m = re.fullmatch(rb"next=(\d+)\n\0*", rec)
        check("record_written", ok and m and birth + BASE <= int(m.group(1)) <= birth + BASE + 2,
              "birth %d record %r log %s" % (birth, rec, r.log()[-400:]))
        rc, rcpts, out = qread(r)
        left = seconds(rcpts.get("bob@example.test", ("", None))[1])
        check("qread_next_retry_in_future", rc == 0 and rcpts.get("bob@example.test", ("",))[0] == "todo"
              and left is not None and 0 < left <= BASE, out)
        check("qread_no_next_for_done", rcpts.get("alice@example.test") == ("done", None)
              and rcpts.get("carol@example.test") == ("done", None), out)

        # a restart keeps to the recorded time: no attempt at start
        n = defers(r, "bob@example.test")
        check("stopped", r.stop_qmgr() == 0, r.log()[-300:])
        r.start_qmgr()
        started(r, 2)
        recovered = r.wait(lambda: re.search(r"qmgr: recover id=\S+ .*retry-in=(\d+)", r.log()), 5)
        mm = re.search(r"qmgr: recover id=\S+ .*retry-in=(\d+)", r.log())
        check("restart_logs_retry_in", recovered and mm and 0 < int(mm.group(1)) <= BASE, r.log()[-400:])
        time.sleep(3)
        check("restart_no_retry_before_record", defers(r, "bob@example.test") == n and not r.got("bob"),
              "defers %d -> %d" % (n, defers(r, "bob@example.test")))
        rc, rcpts, out = qread(r)
        left = seconds(rcpts.get("bob@example.test", ("", None))[1])
        check("qread_after_restart", rc == 0 and left is not None and 0 < left <= BASE, out)

        # SIGALRM: at once, and a new record after the new deferral
        r.qmgr.send_signal(signal.SIGALRM)
        ok = r.wait(lambda: defers(r, "bob@example.test") > n, 5)
        check("sigalrm_retries_at_once", ok, r.log()[-400:])
        r.user_flag("bob", "temp", False)
        r.qmgr.send_signal(signal.SIGALRM)
        ok = r.wait(lambda: not r.queue_files() and len(r.got("bob")) == 1, 10)
        check("sigalrm_delivers", ok and len(r.got("alice")) == 1 and len(r.got("carol")) == 1, r.log()[-400:])


def test_past_record_and_old_files():
    """records in the past or garbled: tried at once; an older file whose
    envelope reaches the record's bytes: used, never written there"""
    with Root("retry_record_compat") as r:
        for d in ("tmp", "new", "cur", "env", "lock"):
            os.makedirs(r.path("queue", d), exist_ok=True)
        # a record in the past and a garbled one, on messages already in cur/
        rc1, _ = r.inject("s@example.org", ["alice@example.test"], body("past"))
        time.sleep(0.01)
        rc2, _ = r.inject("s@example.org", ["carol@example.test"], body("garbled"))
        ids = sorted(os.listdir(r.path("queue", "new")), key=lambda s: [int(x) for x in s.split(".")])
        for i, rec in zip(ids, (b"next=1000\n", b"next=99x\n")):
            os.rename(r.path("queue", "new", i), r.path("queue", "cur", i))
            with open(r.path("queue", "cur", i), "r+b") as f:
                f.seek(NEXTOFF)
                f.write(rec.ljust(32, b"\0"))
        rc, rcpts, out = qread(r)
        check("qread_past_and_garbled", rc == 0 and rcpts.get("alice@example.test") == ("todo", "now")
              and rcpts.get("carol@example.test") == ("todo", None), out)

        # an older file (before the record): its envelope ends inside the
        # last 32 bytes of the header block
        addr = "bob@example.test"
        now = int(time.time())
        oid = "%d.000000001.1" % (now - 5)
        head = b"yubinq1 msg=4096 size=%d time=%d uid=%d env=here\n" % (len(body("old")), now - 5, os.getuid())
        env = b"Fs@example.org\0" + b"T" + addr.encode() + b"\0"
        # remote fillers (no remote channel here: they just stay to do)
        remaining = 4090 - len(head) - len(env) - 1
        n = 5
        lens = [remaining // n] * (n - 1) + [remaining - (remaining // n) * (n - 1)]
        for i, ln in enumerate(lens):
            dom = b"@remote.test"
            env += b"T" + (b"%d" % i).ljust(ln - 2 - len(dom), b"z") + dom + b"\0"
        env += b"\0"
        block = head + env
        ok_shape = NEXTOFF < len(block) <= 4096
        with open(r.path("queue", "cur", oid), "wb") as f:
            f.write(block.ljust(4096, b"\0") + body("old"))
        rc, rcpts, out = qread(r)
        check("old_file_listed", ok_shape and rc == 0 and rcpts.get(addr) == ("todo", None),
              "block %d, rc %d, %s" % (len(block), rc, out[-300:]))

        r.user_flag("bob", "temp")
        r.start_qmgr()
        started(r)
        ok = r.wait(lambda: len(r.got("alice")) == 1 and len(r.got("carol")) == 1, 10)
        check("past_and_garbled_tried_at_once", ok, r.log()[-400:])
        ok = r.wait(lambda: defers(r, addr) >= 1 and re.search(r"qmgr: retry id=%s " % re.escape(oid), r.log()), 10)
        with open(r.path("queue", "cur", oid), "rb") as f:
            after = f.read(4096)
        check("old_file_envelope_intact", ok and after == block.ljust(4096, b"\0"),
              "log %s" % r.log()[-400:])
        r.user_flag("bob", "temp", False)
        r.qmgr.send_signal(signal.SIGALRM)
        ok = r.wait(lambda: len(r.got("bob")) == 1, 10)
        check("old_file_delivered", ok, r.log()[-400:])


def test_queue_keeps_record_room():
    """yubin-queue: an envelope that would reach the record goes to env/"""
    with Root("retry_record_queue") as r:
        for d in ("tmp", "new", "cur", "env", "lock"):
            os.makedirs(r.path("queue", d), exist_ok=True)
        # header line ~60 bytes: an envelope of 4020 bytes ends in [4064, 4096)
        hl = len(b"yubinq1 msg=4096 size=%d time=%d uid=%d env=here\n" % (len(body("q")), int(time.time()), os.getuid()))
        want = 4096 - 16 - hl                     # envelope length wanted
        env = b"Fs@example.org\0"
        remaining = want - len(env) - 1
        lens = [remaining // 5] * 4 + [remaining - (remaining // 5) * 4]
        for i, ln in enumerate(lens):
            env += b"T" + (b"%d" % i).ljust(ln - 2 - len(b"@remote.test"), b"z") + b"@remote.test\0"
        env += b"\0"
        rc, err = r.inject("", [], body("q"), env_bytes=env)
        ids = os.listdir(r.path("queue", "new"))
        envs = os.listdir(r.path("queue", "env"))
        check("queue_env_near_record_goes_to_env", rc == 0 and len(env) == want and len(ids) == 1 and envs == ids,
              "rc %d env %d want %d ids %r envs %r %s" % (rc, len(env), want, ids, envs, err))
        if ids:
            with open(r.path("queue", "new", ids[0]), "rb") as f:
                data = f.read(4096)
            check("queue_record_zero", data[NEXTOFF:] == b"\0" * 32 and b"env=file" in data[:100], repr(data[:100]))


def main():
    test_record_qread_restart()
    test_past_record_and_old_files()
    test_queue_keeps_record_room()


if __name__ == "__main__":
    run(main)
