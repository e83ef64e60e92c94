"""Helpers for the queue tests (yubin-queue, yubin-qmgr, yubin-lspawn), on
top of tests/lib/yubintest.py.

A Root is a throw-away instance directory holding copies of the queue
programs (copies, not symlinks: yubin_sibling() follows /proc/self/exe), a
fake yubin-local (a shell script) or the real one, control files, a
users.cdb, and homes.  Everything has deadlines."""

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from yubintest import bin_dir, cdb_write, check, info, sanitizer_report, wait_for  # noqa: E402


def ids_of(delivered):
    """(uid, gid, [groups]) of the fake yubin-local that wrote this file"""
    first = delivered.split(b"\n", 1)[0].decode()
    m = re.search(r"uid=(\d+)\S* gid=(\d+)\S*(?: groups=(\S*))?$", first)
    if not m:
        return None
    groups = [int(g) for g in re.findall(r"(\d+)(?:\([^)]*\))?", m.group(3) or "")]
    return int(m.group(1)), int(m.group(2)), groups


FAKE_LOCAL = r"""#!/bin/sh
# fake yubin-local: -- user homedir local dash ext domain sender defaultdelivery
[ "$1" = -- ] || { echo "local: fatal: no -- before the arguments" >&2; exit 100; }
shift
home=$2
if [ -f "$home/perm" ]; then echo "local: fatal: fake permanent failure for $3 (#5.2.0)" >&2; exit 100; fi
if [ -f "$home/temp-once" ] && rm "$home/temp-once" 2>/dev/null; then
  echo "local: fatal: fake temporary failure (#4.2.0)" >&2; exit 111
fi
if [ -f "$home/temp" ]; then echo "local: fatal: fake temporary failure (#4.2.0)" >&2; exit 111; fi
if [ -f "$home/slow" ]; then sleep "$(cat "$home/slow")"; fi
t=$(mktemp "$home/got/tmp/m.XXXXXXXX") || exit 111
{ printf 'X-Args: %s|%s|%s|%s|%s|%s|%s|%s|%s\n' "$@" "$(id)"; cat; } > "$t" || exit 111
mv "$t" "$home/got/" || exit 111
echo "local: delivered to=$3@$6" >&2
exit 0
"""


class Root:
    def __init__(self, real_local=False, users=("alice", "bob", "carol"), control=None):
        self.bin = bin_dir()
        self.dir = tempfile.mkdtemp(prefix="yubin-qmgr-")
        os.chmod(self.dir, 0o755)
        self.procs = []
        self.sanitizer = []
        self.amroot = os.geteuid() == 0
        self.real_local = real_local
        self.uid = 65534 if self.amroot else os.geteuid()
        self.gid = 65534 if self.amroot else os.getegid()
        for d in ("bin", "control", "queue", "users", "home"):
            os.mkdir(self.path(d))
            os.chmod(self.path(d), 0o755 if d != "queue" else 0o700)
        for p in ("yubin-queue", "yubin-qmgr", "yubin-lspawn"):
            shutil.copy2(os.path.join(self.bin, p), self.path("bin", p))
        if real_local:
            shutil.copy2(os.path.join(self.bin, "yubin-local"), self.path("bin", "yubin-local"))
        else:
            with open(self.path("bin", "yubin-local"), "w") as f:
                f.write(FAKE_LOCAL)
            os.chmod(self.path("bin", "yubin-local"), 0o755)
        ctl = {"me": "example.test", "locals": "example.test\nlocalhost",
               "queueretrybase": "1", "queueretrymax": "2"}
        ctl.update(control or {})
        for k, v in ctl.items():
            self.control(k, v)
        self.users = list(users)
        entries = []
        for u in self.users:
            home = self.path("home", u)
            for d in (home, home + "/got", home + "/got/tmp", home + "/Maildir",
                      home + "/Maildir/tmp", home + "/Maildir/new", home + "/Maildir/cur"):
                os.mkdir(d, 0o700)
                os.chown(d, self.uid, self.gid)
            entries.append((u.encode(), b"%d:%d:%s" % (self.uid, self.gid, home.encode())))
        cdb_write(self.path("users", "users.cdb"), entries)
        os.chmod(self.path("users", "users.cdb"), 0o644)

    def path(self, *p):
        return os.path.join(self.dir, *p)

    def env(self):
        e = dict(os.environ)
        e["YUBIN_ROOT"] = self.dir
        # the fake is a program: lspawn execs it instead of delivering in-process
        if self.real_local:
            e.pop("YUBIN_LOCAL", None)
        else:
            e["YUBIN_LOCAL"] = self.path("bin", "yubin-local")
        e.pop("UID", None)
        e.pop("GID", None)
        return e

    def control(self, name, value):
        with open(self.path("control", name), "w") as f:
            f.write(value + "\n")

    def user_flag(self, user, flag, on=True, content=""):
        p = self.path("home", user, flag)
        if on:
            with open(p, "w") as f:
                f.write(content)
            os.chown(p, self.uid, self.gid)
        elif os.path.exists(p):
            os.unlink(p)

    # -- injecting ---------------------------------------------------------
    def inject(self, sender, rcpts, body, env_bytes=None, timeout=20):
        """Run yubin-queue; returns (exit code, stderr)."""
        envelope = env_bytes if env_bytes is not None else (
            b"F" + sender.encode() + b"\0" + b"".join(b"T" + r.encode() + b"\0" for r in rcpts) + b"\0")
        r, w = os.pipe()
        feeder = None
        if len(envelope) > 60000:
            import threading
            def feed():
                with os.fdopen(w, "wb") as f:
                    try:
                        f.write(envelope)
                    except BrokenPipeError:
                        pass
            feeder = threading.Thread(target=feed)
            feeder.start()
        else:
            os.write(w, envelope)
            os.close(w)
        try:
            p = subprocess.run([self.path("bin", "yubin-queue")], input=body, stdout=r,
                               stderr=subprocess.PIPE, env=self.env(), timeout=timeout)
        finally:
            os.close(r)
            if feeder:
                feeder.join()
        err = p.stderr.decode(errors="replace")
        bad = sanitizer_report(err)
        if bad:
            self.sanitizer.append("yubin-queue: " + bad)
        return p.returncode, err

    # -- the manager ---------------------------------------------------------
    def start_qmgr(self, args=()):
        log = open(self.path("qmgr.log"), "ab")
        p = subprocess.Popen([self.path("bin", "yubin-qmgr")] + list(args), env=self.env(),
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             start_new_session=True)
        log.close()
        self.procs.append(p)
        self.qmgr = p
        return p

    def stop_qmgr(self, timeout=15):
        p = self.qmgr
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return p.returncode

    def log(self):
        try:
            with open(self.path("qmgr.log"), "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def queue_files(self):
        n = []
        for d in ("new", "cur"):
            try:
                n += [d + "/" + x for x in os.listdir(self.path("queue", d))]
            except FileNotFoundError:
                pass
        return n

    def got(self, user):
        d = self.path("home", user, "got")
        out = []
        for x in sorted(os.listdir(d)):
            if x == "tmp":
                continue
            with open(os.path.join(d, x), "rb") as f:
                out.append(f.read())
        return out

    def maildir(self, user):
        d = self.path("home", user, "Maildir", "new")
        out = []
        for x in sorted(os.listdir(d)):
            with open(os.path.join(d, x), "rb") as f:
                out.append(f.read())
        return out

    def wait(self, cond, timeout=15, step=0.05):
        return bool(wait_for(cond, timeout, step))

    def wait_empty(self, timeout=15):
        return self.wait(lambda: not self.queue_files(), timeout)

    def check_sanitizer(self, name):
        """FAIL name if a sanitizer reported anything in our logs."""
        found = list(self.sanitizer)
        for log in ("qmgr.log", "lspawn.log"):
            try:
                with open(self.path(log), "rb") as f:
                    bad = sanitizer_report(f.read().decode(errors="replace"))
            except FileNotFoundError:
                continue
            if bad:
                found.append(log + ": " + bad)
        return check(name + "_no_sanitizer_reports", not found, "\n".join(found))

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        # lspawn and its children are in the same session as qmgr
        time.sleep(0.05)
        if os.environ.get("YUBIN_KEEP"):
            info("kept", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False

class Lspawn:
    """yubin-lspawn driven by hand: its spawn records in, its results out
    (qmgr/spawnproto.h)."""
    def __init__(self, r):
        self.r = r
        self.log = open(r.path("lspawn.log"), "ab")
        self.p = subprocess.Popen([r.path("bin", "yubin-lspawn")], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=self.log, env=r.env())
        r.procs.append(self.p)
        self.buf = b""

    def send(self, jobid, qid, sender, rcpt, off=4096, rcptno=0, check=False):
        self.send_batch(jobid, rcpt, [(qid, sender, off, rcptno, check)])

    def send_batch(self, jobid, rcpt, items):
        """a SPAWN_BATCH request: items are (qid, sender, off, rcptno, check)"""
        rec = str(jobid).encode() + b"\0" + rcpt.encode() + b"\0"
        for qid, sender, off, rcptno, check in items:
            rec += b"\0".join([qid.encode(), str(off).encode(), sender.encode(), str(rcptno).encode(),
                               b"1" if check else b"0"]) + b"\0"
        self.p.stdin.write(rec + b"\0")
        self.p.stdin.flush()

    def results(self, n, timeout=10):
        out = []
        deadline = time.monotonic() + timeout
        fd = self.p.stdout.fileno()
        while len(out) < n and time.monotonic() < deadline:
            parts = self.buf.split(b"\0")
            while len(parts) >= 4:
                out.append((int(parts[0]), int(parts[1]), parts[2].decode(errors="replace")))
                parts = parts[3:]
                self.buf = b"\0".join(parts)
            if len(out) >= n:
                break
            rl, _, _ = select.select([fd], [], [], max(0, deadline - time.monotonic()))
            if rl:
                d = os.read(fd, 65536)
                if not d:
                    break
                self.buf += d
        return out

    def close(self, timeout=10):
        self.p.stdin.close()
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return None
