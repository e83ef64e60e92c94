"""Helpers for banwatch's tests (tests/banwatch/test_*), on top of
tests/lib/yubintest.py: Root is a throw-away instance root with a banwatch/
configuration directory; replay() runs yubin-banwatch -r over a log and
returns its bans; Daemon runs yubin-banwatch in the background.
"""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from yubintest import TOP, binary, info, sanitizer_report, wait_for  # noqa: E402

BANWATCH = binary("yubin-banwatch")
BANCTL = binary("yubin-banctl")
SHIPPED = os.path.join(TOP, "banwatch", "conf")


def env_for(root):
    e = dict(os.environ)
    e["YUBIN_ROOT"] = root
    e["TZ"] = "UTC"
    e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    e.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    return e


class Root:
    """A temporary instance root: <root>/banwatch holds the configuration."""

    def __init__(self, conf, filters=None, shipped_filters=False):
        self.root = tempfile.mkdtemp(prefix="bw-", dir=os.environ.get("TMPDIR", "/tmp"))
        self.dir = os.path.join(self.root, "banwatch")
        os.makedirs(os.path.join(self.dir, "filter.d"))
        os.makedirs(os.path.join(self.root, "control"))
        os.makedirs(os.path.join(self.root, "log"))
        if shipped_filters:
            for f in os.listdir(os.path.join(SHIPPED, "filter.d")):
                shutil.copy(os.path.join(SHIPPED, "filter.d", f), os.path.join(self.dir, "filter.d", f))
        for name, text in (filters or {}).items():
            self.write("banwatch/filter.d/%s.conf" % name, text)
        self.write("banwatch/banwatch.conf", conf)
        self.env = env_for(self.root)

    def path(self, rel):
        return os.path.join(self.root, rel)

    def write(self, rel, data, mode="w"):
        p = self.path(rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, mode + ("b" if isinstance(data, bytes) else "")) as f:
            f.write(data)
        return p

    def read(self, rel):
        try:
            with open(self.path(rel)) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def cleanup(self):
        if os.environ.get("YUBIN_KEEP"):
            info("kept", self.root)
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.cleanup()


def replay(root, log, jail=None, timeout=60, pipe=False):
    """Run yubin-banwatch -r on log (bytes or str): a file (mapped), or
    with pipe=True its stdin (read in chunks); returns (rc, bans, unbans,
    summary, stderr) where bans is a list of (addr, jail, secs)."""
    if isinstance(log, str):
        log = log.encode()
    p = "-" if pipe else root.write("replay.log", log)
    cmd = [BANWATCH, "-r", p]
    if jail:
        cmd += ["-j", jail]
    r = subprocess.run(cmd, env=root.env, capture_output=True, timeout=timeout, input=log if pipe else None)
    bans, unbans, summary = [], [], {}
    for line in r.stdout.decode(errors="replace").splitlines():
        w = line.split()
        if not w:
            continue
        kv = dict(x.split("=", 1) for x in w[1:] if "=" in x)
        if w[0] == "ban":
            bans.append((w[1], kv.get("jail"), kv.get("bantime")))
        elif w[0] == "unban":
            unbans.append(w[1])
        elif w[0].startswith("lines="):
            summary = dict(x.split("=", 1) for x in w)
    return r.returncode, bans, unbans, summary, r.stderr.decode(errors="replace")


def stamp(t):
    """s6-log T time stamp for epoch seconds t (UTC)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + ".%09d  " % int((t % 1) * 1e9)


def authfail(t, ip, user="alice", prog="smtpd"):
    return "%s%s: auth-fail ip=%s user=%s mech=PLAIN\n" % (stamp(t), prog, ip, user)


_started = []


def _kill_started():
    """No test leaves a banwatch behind, even when it crashes."""
    for p in _started:
        if p.poll() is None:
            p.kill()
            p.wait()


atexit.register(_kill_started)


class Daemon:
    """yubin-banwatch running in the background on a Root."""

    def __init__(self, root, stdin=subprocess.DEVNULL, args=(), prefix=()):
        self.root = root
        self.errpath = root.path("banwatch.stderr")
        self.err = open(self.errpath, "ab")
        self.p = subprocess.Popen(list(prefix) + [BANWATCH] + list(args), env=root.env, stdin=stdin,
                                  stdout=self.err, stderr=self.err)
        _started.append(self.p)
        # ready when the control socket answers
        ok = wait_for(lambda: self.p.poll() is not None or self.ctl("stats")[0] == 0, 10, 0.02)
        if self.p.poll() is not None:
            raise RuntimeError("banwatch exited %s: %s" % (self.p.returncode, self.stderr()))
        if not ok:
            self.p.kill()
            self.p.wait()
            raise RuntimeError("banwatch did not answer: %s" % self.stderr())

    def ctl(self, *args, timeout=10):
        r = subprocess.run([BANCTL] + list(args), env=self.root.env, capture_output=True, timeout=timeout)
        return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")

    def bans(self):
        rc, out, err = self.ctl("list")
        return [l.split()[0] for l in out.splitlines() if l.strip()] if rc == 0 else None

    def stats(self):
        rc, out, err = self.ctl("stats")
        if rc:
            return {}
        return dict(x.split("=", 1) for x in out.splitlines()[0].split())

    def stderr(self):
        if not self.err.closed:
            self.err.flush()
        with open(self.errpath, "rb") as f:
            return f.read().decode(errors="replace")

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=None):
        """SIGTERM (or sig); returns (exit status, sanitizer report or '')."""
        import signal as _s
        if self.p.poll() is None:
            self.p.send_signal(sig or _s.SIGTERM)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.err.close()
        return self.p.returncode, sanitizer_report(self.stderr()) or ""


def denied(root, ip, cdb="control/tcp.smtp.cdb"):
    """What tcpserver -x would do for ip, through tcprulescheck."""
    e = dict(root.env)
    e["TCPREMOTEIP"] = ip
    r = subprocess.run(["tcprulescheck", root.path(cdb)], env=e, capture_output=True, timeout=10)
    return "deny connection" in r.stdout.decode()
