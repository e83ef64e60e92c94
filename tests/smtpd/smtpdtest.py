"""Helpers for yubin-smtpd's tests (tests/smtpd/test_*), on top of
tests/lib/yubintest.py.

An Instance is a temporary instance root (control files, users/users.cdb)
with a fake qmail-queue (QMAILQUEUE) that saves its fd 0 and fd 1 and exits
with a chosen code; session() runs yubin-smtpd on one end of a socketpair
and returns a Client, listen() runs it per connection on a loopback port.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from yubintest import Failure, binary, cdb_write, expect, minimal_env, sanitizer_report  # noqa: E402

SMTPD = binary("yubin-smtpd")
IO_TIMEOUT = 20.0

SMUGGLE_ENDS = [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r.\r\n", b"\r\n.\r", b"\n.\r", b"\r.\n",
                b"\r\n\x00.\r\n", b"\r\n.\x00\r\n", b"\r\n. \r\n"]


FAKEQ = """#!/bin/sh
# fake qmail-queue: save the message (fd 0) and the envelope (fd 1)
d="$FAKEQ_DIR"
n=$$
cat > "$d/msg.$n" || exit 54
cat <&1 > "$d/env.$n" || exit 54
code=0
[ -f "$d/../qexit" ] && code=$(cat "$d/../qexit")
echo "$code" > "$d/code.$n"
exit "$code"
"""


def env_valid(env):
    """A complete qmail-queue envelope: F addr \\0 (T addr \\0)+ \\0."""
    if not env.startswith(b"F") or not env.endswith(b"\0\0"):
        return None
    parts = env[:-1].split(b"\0")
    # parts: ['Ffrom', 'Trcpt', ..., ''] because of the trailing NUL of the last record
    if parts[-1] != b"":
        return None
    parts = parts[:-1]
    if len(parts) < 2 or not all(p.startswith(b"T") for p in parts[1:]):
        return None
    return parts[0][1:], [p[1:] for p in parts[1:]]


class Instance:
    def __init__(self, control=None, users=("alice", "bob")):
        self.root = tempfile.mkdtemp(prefix="yubin-smtpd-test.")
        os.mkdir(os.path.join(self.root, "control"))
        os.mkdir(os.path.join(self.root, "users"))
        self.qdir = os.path.join(self.root, "q")
        os.mkdir(self.qdir)
        ctl = {"me": "example.org", "rcpthosts": "example.org\nrelayed.example.net\n"}
        if control:
            ctl.update(control)
        for k, v in ctl.items():
            if v is not None:
                with open(os.path.join(self.root, "control", k), "w") as f:
                    f.write(v)
        cdb_write(os.path.join(self.root, "users", "users.cdb"),
                  [(u.encode(), ("1000:1000:/home/%s" % u).encode()) for u in users])
        self.fakeq = os.path.join(self.root, "fakeq")
        with open(self.fakeq, "w") as f:
            f.write(FAKEQ)
        os.chmod(self.fakeq, 0o755)
        self.logs = []
        self.procs = []

    def qexit(self, code):
        with open(os.path.join(self.root, "qexit"), "w") as f:
            f.write("%d\n" % code)

    def env(self, extra=None):
        e = {
            "YUBIN_ROOT": self.root,
            "QMAILQUEUE": self.fakeq,
            "FAKEQ_DIR": self.qdir,
            "PROTO": "TCP",
            "TCPREMOTEIP": "127.0.0.1",
            "TCPREMOTEPORT": "40000",
            "TCPLOCALIP": "127.0.0.1",
            "TCPLOCALPORT": "25",
        }
        e.update(extra or {})
        return minimal_env(e)

    def start(self, fd, extra=None):
        log = open(os.path.join(self.root, "log.%d" % len(self.logs)), "w+b")
        self.logs.append(log)
        p = subprocess.Popen([SMTPD], stdin=fd, stdout=fd, stderr=log, env=self.env(extra),
                             close_fds=True)
        self.procs.append(p)
        return p

    def session(self, extra=None):
        a, b = socket.socketpair()
        p = self.start(b.fileno(), extra)
        b.close()
        return Client(a, p)

    def listen(self, extra=None):
        """A listener on 127.0.0.1 that runs yubin-smtpd per connection."""
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(8)
        ls.settimeout(0.2)
        stop = threading.Event()

        def loop():
            while not stop.is_set():
                try:
                    c, _ = ls.accept()
                except socket.timeout:
                    continue
                except OSError:
                    return
                c.settimeout(None)
                self.start(c.fileno(), extra)
                c.close()
        t = threading.Thread(target=loop, daemon=True)
        t.start()
        return ls.getsockname()[1], (stop, t, ls)

    def unlisten(self, h):
        stop, t, ls = h
        stop.set()
        t.join(5)
        ls.close()

    def invocations(self):
        return sorted(int(n.split(".")[1]) for n in os.listdir(self.qdir) if n.startswith("msg."))

    def committed(self):
        """Messages a real queue would have kept: complete envelope, exit 0."""
        out = []
        for n in self.invocations():
            base = os.path.join(self.qdir, "%s.%d")
            try:
                msg = open(base % ("msg", n), "rb").read()
                env = open(base % ("env", n), "rb").read()
                code = open(base % ("code", n)).read().strip()
            except FileNotFoundError:
                continue
            e = env_valid(env)
            if e and code == "0":
                out.append((msg, e[0], e[1]))
        return out

    def logtext(self):
        t = b""
        for f in self.logs:
            f.flush()
            f.seek(0)
            t += f.read()
        return t

    def finish(self):
        """Wait for every smtpd; complain about sanitizer reports."""
        for p in self.procs:
            try:
                p.wait(IO_TIMEOUT)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                raise Failure("yubin-smtpd did not exit")
        bad = sanitizer_report(self.logtext(), 2000)
        expect(not bad, "sanitizer report in log: %s" % bad)

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for f in self.logs:
            f.close()
        shutil.rmtree(self.root, ignore_errors=True)


class Client:
    def __init__(self, sock, proc):
        self.s = sock
        self.s.settimeout(IO_TIMEOUT)
        self.p = proc
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.s.sendall(data)

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise Failure("connection closed, pending %r" % self.buf)
            self.buf += chunk
        ln, self.buf = self.buf.split(b"\n", 1)
        return ln + b"\n"

    def reply(self):
        """One (possibly multi-line) reply: (code, [lines without CRLF])."""
        lines = []
        while True:
            ln = self.line()
            expect(ln.endswith(b"\r\n"), "reply line without CRLF: %r" % ln)
            ln = ln[:-2]
            expect(len(ln) >= 3 and ln[:3].isdigit(), "bad reply line %r" % ln)
            lines.append(ln)
            if len(ln) == 3 or ln[3:4] == b" ":
                return int(ln[:3]), lines
            expect(ln[3:4] == b"-", "bad reply continuation %r" % ln)

    def expect(self, code, what=""):
        c, lines = self.reply()
        expect(c == code, "%s: expected %d, got %r" % (what, code, lines))
        return lines

    def cmd(self, line, code, what=None):
        self.send(line + "\r\n" if isinstance(line, str) else line + b"\r\n")
        return self.expect(code, what or (line if isinstance(line, str) else line.decode(errors="replace")))

    def cmd_any(self, line):
        self.send(line + "\r\n" if isinstance(line, str) else line + b"\r\n")
        return self.reply()

    def closed(self, timeout=IO_TIMEOUT):
        """Read until EOF; return what came."""
        self.s.settimeout(timeout)
        data = self.buf
        self.buf = b""
        try:
            while True:
                chunk = self.s.recv(65536)
                if not chunk:
                    return data
                data += chunk
        except socket.timeout:
            raise Failure("connection not closed, got %r" % data)

    def close(self):
        self.s.close()


def greet_ehlo(c, name="client.example"):
    c.expect(220, "greeting")
    return c.cmd("EHLO " + name, 250)


def transaction(c, sender, rcpts, body, final=250):
    c.cmd("MAIL FROM:<%s>" % sender, 250)
    for r in rcpts:
        c.cmd("RCPT TO:<%s>" % r, 250)
    c.cmd("DATA", 354)
    c.send(body)
    return c.expect(final, "end of data")


def free_port_on(ip):
    """A TCP port nothing listens on now at ip (IPv4 or IPv6)."""
    s = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((ip, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def start_tcpserver(argv_for, env, log, tries=5, ip="127.0.0.1", what="tcpserver"):
    """A server (tcpserver, or yubin-smtpd -l) started with argv_for(port)
    on a free port of ip, once it accepts connections: (process, port).
    A port taken meanwhile by someone else is given up for another one."""
    for _ in range(tries):
        port = free_port_on(ip)
        p = subprocess.Popen(argv_for(port), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                             env=env, start_new_session=True)
        deadline = time.time() + 10
        while time.time() < deadline and p.poll() is None:
            try:
                with socket.create_connection((ip, port), timeout=1):
                    pass
                return p, port
            except OSError:
                time.sleep(0.02)
        if p.poll() is None:
            os.killpg(p.pid, 9)
        p.wait()
    raise Failure("%s did not start" % what)


def stop_servers(servers):
    """TERM each started tcpserver's process group, KILL what lingers."""
    for p in servers:
        if p.poll() is None:
            try:
                os.killpg(p.pid, 15)
            except ProcessLookupError:
                pass
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)
                p.wait()
