#!/usr/bin/env python3
"""yubin-tlsd under tcpserver: implicit TLS, STARTTLS (UCSPI-TLS), the TLS
policy, privileges and the key, bad handshakes, exit statuses, and a 10 MB
relay both ways at once.

The protocol daemon behind yubin-tlsd is tests/tlsd/linedaemon.py (a pretend
line daemon) or cat.  Needs tcpserver, openssl and python3's ssl module.
YUBIN_BIN chooses the binaries (build/bin or build/asan/bin)."""

import hashlib
import os
import pwd
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from yubintest import (binary, check, free_port, info, is_root, make_cert, run, sanitizer_report,  # noqa: E402
                       skip, tls_client_ctx)

TLSD = binary("yubin-tlsd")
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
SNI = "mail.yubin.test"
MB10 = 10 * 1024 * 1024

warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1/1.1 on purpose


# ---------------------------------------------------------------- set-up

class Root:
    """A temporary instance root: control/cert.pem, control/key.pem (0600),
    the pretend daemon, and the uid/gid the daemon must run as."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="yubin-tls.")
        os.chmod(self.dir, 0o755)
        self.control = os.path.join(self.dir, "control")
        os.mkdir(self.control, 0o755)
        self.key = os.path.join(self.control, "key.pem")
        self.cert = os.path.join(self.control, "cert.pem")
        make_cert(self.key, self.cert, SNI)
        self.daemon = os.path.join(self.dir, "linedaemon.py")
        shutil.copy(os.path.join(HERE, "linedaemon.py"), self.daemon)
        os.chmod(self.daemon, 0o644)
        if is_root():
            pw = pwd.getpwnam("nobody")
            self.uid, self.gid = pw.pw_uid, pw.pw_gid
            self.ugargs = ["-u", str(self.uid), "-g", str(self.gid)]
        else:
            self.uid, self.gid = os.getuid(), os.getgid()
            self.ugargs = []
        self.servers = []

    def environ(self, **extra):
        e = {k: v for k, v in os.environ.items() if k not in ("UID", "GID", "GIDLIST", "YUBIN_ROOT")}
        e["YUBIN_ROOT"] = self.dir
        e["PYTHONDONTWRITEBYTECODE"] = "1"
        e.update(extra)
        return e

    def server(self, name, tlsd_args, prog, env=None, ug=True):
        s = Server(self, name, (self.ugargs if ug else []) + tlsd_args, prog, env)
        self.servers.append(s)
        return s

    def close(self):
        for s in self.servers:
            s.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Server:
    """tcpserver -v on a free loopback port running yubin-tlsd; its stderr
    (tcpserver's, tlsd's and the daemon's) goes to a log file."""

    def __init__(self, root, name, tlsd_args, prog, env=None):
        self.log = os.path.join(root.dir, name + ".log")
        self.proc = None
        for _ in range(5):
            self.port = free_port()
            open(self.log, "wb").close()
            cmd = ["tcpserver", "-v", "-R", "-H", "-l", "localhost", "127.0.0.1", str(self.port),
                   TLSD] + tlsd_args + ["--"] + prog
            with open(self.log, "ab") as err:
                self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                             stderr=err, env=env or root.environ(), start_new_session=True)
            deadline = time.time() + 5
            while time.time() < deadline and self.proc.poll() is None and "status: 0/" not in self.text():
                time.sleep(0.02)
            if self.proc.poll() is None and "status: 0/" in self.text():
                return
            self.close()
        raise RuntimeError("tcpserver did not start: " + self.text()[-500:])

    def text(self):
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def mark(self):
        return len(self.text())

    def since(self, mark):
        return self.text()[mark:]

    def wait_for(self, mark, needle, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if needle in self.since(mark):
                return True
            time.sleep(0.02)
        return False

    def end_status(self, cport, timeout=15):
        """The wait status tcpserver logged for the connection from cport."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            lines = self.text().splitlines()
            pid = None
            for l in lines:
                w = l.split()
                if len(w) >= 5 and w[:2] == ["tcpserver:", "ok"] and w[-1].rsplit(":", 1)[-1] == str(cport):
                    pid = w[2]
            if pid:
                for l in lines:
                    w = l.split()
                    if len(w) == 5 and w[:2] == ["tcpserver:", "end"] and w[2] == pid:
                        return int(w[4])
            time.sleep(0.02)
        return None

    def close(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


# ---------------------------------------------------------------- clients

class Lines:
    """CRLF lines from a socket (plain or TLS), without reading past what
    the peer sent."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def line(self):
        while b"\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                return None
            self.buf += d
        l, self.buf = self.buf.split(b"\n", 1)
        return l.rstrip(b"\r").decode("utf-8", "replace")

    def cmd(self, s):
        self.sock.sendall(s.encode() + b"\r\n")
        return self.line()

    def rest(self):
        """All lines until EOF."""
        out = []
        while True:
            try:
                l = self.line()
            except (ssl.SSLError, OSError):
                break
            if l is None:
                break
            out.append(l)
        return out


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    return s, s.getsockname()[1]


def tls_connect(port, ctx=None, sni=SNI):
    raw, cport = connect(port)
    try:
        t = (ctx or tls_client_ctx()).wrap_socket(raw, server_hostname=sni)
    except BaseException:
        raw.close()
        raise
    return t, cport


def client_hello():
    """The bytes of a real ClientHello."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = tls_client_ctx().wrap_bio(inc, out, server_hostname=SNI)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def obj_handshake(raw, obj, inc, out):
    while True:
        try:
            obj.do_handshake()
            if out.pending:
                raw.sendall(out.read())
            return
        except ssl.SSLWantReadError:
            if out.pending:
                raw.sendall(out.read())
            d = raw.recv(65536)
            if not d:
                raise ConnectionError("EOF during handshake")
            inc.write(d)


def bulk(raw, obj, inc, out, data, timeout=120):
    """Send data over TLS while reading whatever comes back, both at once,
    on a non-blocking socket; after the last byte, shut down the TCP write
    side (EOF without close_notify).  Returns (bytes received, their sha256,
    whether the server ended with close_notify, error or None)."""
    raw.setblocking(False)
    sent, pend, shut = 0, b"", False
    h, n = hashlib.sha256(), 0
    clean, raweof = False, False
    deadline = time.time() + timeout
    while True:
        while sent < len(data) and out.pending + len(pend) < 262144:
            sent += obj.write(data[sent:sent + 65536])
        while True:
            try:
                d = obj.read(262144)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                clean = True
                break
            except ssl.SSLEOFError:
                raweof = True
                break
            if not d:
                clean = True
                break
            h.update(d)
            n += len(d)
        if out.pending:
            pend += out.read()
        if clean or raweof:
            return n, h.hexdigest(), clean, None
        if sent == len(data) and not pend and not shut:
            raw.shutdown(socket.SHUT_WR)
            shut = True
        if time.time() > deadline:
            return n, h.hexdigest(), clean, "timed out after %d s (sent %d, received %d)" % (timeout, sent, n)
        r, w, _ = select.select([raw], [raw] if pend else [], [], 1.0)
        if w:
            try:
                pend = pend[raw.send(pend):]
            except BlockingIOError:
                pass
        if r:
            try:
                d = raw.recv(262144)
            except BlockingIOError:
                continue
            except ConnectionError as e:
                return n, h.hexdigest(), clean, "recv: %s" % e
            if d:
                inc.write(d)
            else:
                inc.write_eof()


# ---------------------------------------------------------------- tests

def test_implicit(root, srv):
    for name, maxv in (("tls13", ssl.TLSVersion.TLSv1_3), ("tls12", ssl.TLSVersion.TLSv1_2)):
        mark = srv.mark()
        try:
            t, cport = tls_connect(srv.port, tls_client_ctx(maxv=maxv))
        except (ssl.SSLError, OSError) as e:
            check("implicit-%s-handshake" % name, False, str(e))
            continue
        with t:
            want = "TLSv1.3" if name == "tls13" else "TLSv1.2"
            check("implicit-%s-handshake" % name, t.version() == want, "got %s" % t.version())
            c = Lines(t)
            g = c.line()
            check("implicit-%s-greeting" % name, g == "220 hello", repr(g))
            r = c.cmd("NOOP")
            check("implicit-%s-echo" % name, r == "250 noop", repr(r))
            proto = c.cmd("ENV SSL_PROTOCOL")
            cipher = c.cmd("ENV SSL_CIPHER")
            check("implicit-%s-env-protocol" % name, proto == "250 " + want, repr(proto))
            check("implicit-%s-env-cipher" % name, cipher == "250 " + t.cipher()[0],
                  "%r, client says %s" % (cipher, t.cipher()[0]))
            if name == "tls12":
                cn = t.cipher()[0]
                check("implicit-tls12-ecdhe-aead", cn.startswith("ECDHE-") and ("GCM" in cn or "CHACHA20" in cn), cn)
            sni = c.cmd("ENV SSL_TLS_SNI_SERVERNAME")
            check("implicit-%s-env-sni" % name, sni == "250 " + SNI, repr(sni))
            ctl = c.cmd("ENV SSLCTLFD")
            check("implicit-%s-no-starttls-env" % name, ctl == "250 -", repr(ctl))
            r = c.cmd("STARTTLS")
            check("implicit-%s-no-starttls" % name, r == "454 no", repr(r))
            r = c.cmd("QUIT")
            check("implicit-%s-quit" % name, r == "221 bye", repr(r))
        st = srv.end_status(cport)
        check("implicit-%s-exit-0" % name, st == 0, "status %r" % st)
        log = srv.since(mark)
        want_line = "tlsd: tls ip=127.0.0.1 proto=%s cipher=" % want
        check("implicit-%s-log" % name, want_line in log and "sni=" + SNI in log, log[-400:])

    # no SNI: the variable is unset
    t, cport = tls_connect(srv.port, sni=None)
    with t:
        c = Lines(t)
        c.line()
        r = c.cmd("ENV SSL_TLS_SNI_SERVERNAME")
        check("implicit-no-sni-unset", r == "250 -", repr(r))
        c.cmd("QUIT")

    # the daemon's exit status is tlsd's
    t, cport = tls_connect(srv.port)
    with t:
        c = Lines(t)
        c.line()
        t.sendall(b"EXIT 5\r\n")
        rest = c.rest()
    st = srv.end_status(cport)
    check("implicit-exit-status", st == 5 << 8, "status %r, rest %r" % (st, rest))


def test_old_protocols(root, srv):
    for name, v in (("tls11", ssl.TLSVersion.TLSv1_1), ("tls10", ssl.TLSVersion.TLSv1)):
        mark = srv.mark()
        err = None
        try:
            t, cport = tls_connect(srv.port, tls_client_ctx(minv=v, maxv=v, ciphers="DEFAULT:@SECLEVEL=0"))
            t.close()
        except (ssl.SSLError, OSError) as e:
            err = e
        ok = srv.wait_for(mark, "tlsd: handshake-fail ip=127.0.0.1 reason=")
        check("%s-refused" % name, err is not None and ok,
              "client error %r, server log %r" % (err, srv.since(mark)[-300:]))
    # TLS 1.2 with only CBC or non-ECDHE ciphers: no shared cipher
    for name, ciphers in (("cbc", "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA"),
                          ("static-kx", "AES128-GCM-SHA256:AES256-GCM-SHA384")):
        mark = srv.mark()
        err = None
        try:
            t, cport = tls_connect(srv.port, tls_client_ctx(maxv=ssl.TLSVersion.TLSv1_2, ciphers=ciphers))
            t.close()
        except (ssl.SSLError, OSError) as e:
            err = e
        ok = srv.wait_for(mark, "handshake-fail ip=127.0.0.1 reason=")
        check("tls12-%s-refused" % name, err is not None and ok,
              "client error %r, server log %r" % (err, srv.since(mark)[-300:]))


def test_privileges(root, srv):
    t, cport = tls_connect(srv.port)
    with t:
        c = Lines(t)
        c.line()
        r = c.cmd("ID")
        want = "250 uid=%d gid=%d" % (root.uid, root.gid)
        check("daemon-uid", r is not None and r.startswith(want + " "), "%r, want %r" % (r, want))
        if is_root():
            groups = r.split("groups=", 1)[-1].split(",") if r else []
            check("daemon-no-root-group", "0" not in groups, repr(r))
            r = c.cmd("READ " + root.key)
            check("daemon-cannot-read-key", r == "550 EACCES", repr(r))
            check("key-mode-0600", (os.stat(root.key).st_mode & 0o777) == 0o600 and os.stat(root.key).st_uid == 0,
                  oct(os.stat(root.key).st_mode))
        else:
            skip("daemon-no-root-group", "not root")
            skip("daemon-cannot-read-key", "not root: the key is ours")
        # tlsd holds the key in memory and the daemon has its uid
        r = c.cmd("PPID")
        ppid = r[4:] if r and r.startswith("250 ") else "?"
        r = c.cmd("READ /proc/%s/mem" % ppid)
        check("daemon-cannot-read-tlsd-memory", r == "550 EACCES", "pid %s: %r" % (ppid, r))
        c.cmd("QUIT")

    env = root.environ()
    if is_root():
        # refuses to run as root
        for name, args in (("refuse-root-default", []), ("refuse-root-uid0", ["-u", "0", "-g", "0"])):
            p = subprocess.run([TLSD] + args + ["--", "true"], env=env, stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=20)
            check(name, p.returncode == 100 and b"refusing to run as root" in p.stderr,
                  "exit %d: %r" % (p.returncode, p.stderr[-200:]))
        # UID/GID/GIDLIST from the environment (s6-envuidgid)
        s2 = root.server("envuidgid", [], [PY, root.daemon], ug=False,
                         env=root.environ(UID=str(root.uid), GID=str(root.gid), GIDLIST=str(root.gid)))
        t, cport = tls_connect(s2.port)
        with t:
            c = Lines(t)
            c.line()
            r = c.cmd("ID")
            c.cmd("QUIT")
        check("env-uid-gid", r is not None and r.startswith("250 uid=%d gid=%d " % (root.uid, root.gid)), repr(r))
        s2.close()
    else:
        p = subprocess.run([TLSD, "-u", "0", "-g", "0", "--", "true"], env=env, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=20)
        check("cannot-become-root", p.returncode != 0, "exit %d" % p.returncode)

    # no certificate: temporary failure, clear message
    empty = tempfile.mkdtemp(prefix="yubin-tls-empty.")
    try:
        os.mkdir(os.path.join(empty, "control"))
        p = subprocess.run([TLSD] + root.ugargs + ["--", "true"], env=root.environ(YUBIN_ROOT=empty),
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
        check("no-cert-111", p.returncode == 111 and b"unable to load certificate" in p.stderr,
              "exit %d: %r" % (p.returncode, p.stderr[-200:]))
    finally:
        shutil.rmtree(empty, ignore_errors=True)

    # usage, and numbers with trailing junk
    for name, args in (("usage-100", []), ("bad-uid-100", ["-u", "65534x", "-g", "65534", "--", "true"]),
                       ("bad-timeout-100", ["-K", "10s", "--", "true"])):
        p = subprocess.run([TLSD] + args, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
        check(name, p.returncode == 100, "exit %d: %r" % (p.returncode, p.stderr[-200:]))


def test_control_files(root):
    alt = os.path.join(root.control, "alt")
    os.mkdir(alt, 0o755)
    key2, cert2 = os.path.join(alt, "k2.pem"), os.path.join(alt, "c2.pem")
    make_cert(key2, cert2, "other.yubin.test")
    with open(os.path.join(root.control, "tlscert"), "w") as f:
        f.write("alt/c2.pem\n")                 # relative to control/
    with open(os.path.join(root.control, "tlskey"), "w") as f:
        f.write(key2 + "\n")                     # absolute
    try:
        s = root.server("ctlfiles", [], [PY, root.daemon])
        t, cport = tls_connect(s.port)
        with t:
            der = t.getpeercert(binary_form=True)
            Lines(t).line()
            t.sendall(b"QUIT\r\n")
        with open(cert2) as f:
            want = ssl.PEM_cert_to_DER_cert(f.read())
        check("control-tlscert-tlskey", der == want, "served another certificate")
        s.close()
    finally:
        os.unlink(os.path.join(root.control, "tlscert"))
        os.unlink(os.path.join(root.control, "tlskey"))


def test_bad_handshakes(root, srv, fast):
    hello = client_hello()
    check("client-hello-made", len(hello) > 100, "%d bytes" % len(hello))

    # half a ClientHello, then close
    mark = srv.mark()
    s, cport = connect(srv.port)
    s.sendall(hello[:len(hello) // 2])
    s.close()
    ok = srv.wait_for(mark, "tlsd: handshake-fail ip=127.0.0.1 reason=eof")
    st = srv.end_status(cport)
    check("truncated-hello-logged", ok, srv.since(mark)[-300:])
    check("truncated-hello-exit-1", st == 1 << 8, "status %r" % st)

    # garbage: an HTTP request, random bytes, an SSLv2-looking header.  The
    # random bytes start with 0xff: random bytes that happen to begin like a
    # TLS record header (content type 0x14-0x17, version 3.x) with a long
    # length make the server wait for the rest of the record, rightly, and
    # the client here would time out instead (a flake seen in CI)
    for name, data in (("http", b"GET / HTTP/1.0\r\n\r\n"), ("random", b"\xff" + os.urandom(2999)),
                       ("zeros", b"\0" * 64), ("sslv2", b"\x80\x2e\x01\x00\x02" + os.urandom(43))):
        mark = srv.mark()
        s, cport = connect(srv.port)
        try:
            s.sendall(data)
            s.settimeout(10)
            got = b""
            while True:
                d = s.recv(4096)
                if not d:
                    break
                got += d
            closed = True
        except ConnectionResetError:
            closed = True
        except (socket.timeout, OSError):
            closed = False
        s.close()
        ok = srv.wait_for(mark, "tlsd: handshake-fail ip=127.0.0.1 reason=")
        st = srv.end_status(cport)
        check("garbage-%s" % name, closed and ok and st == 1 << 8,
              "closed %s, status %r, log %r" % (closed, st, srv.since(mark)[-300:]))

    # a stalled handshake does not hold up anyone else
    mark = srv.mark()
    stall, stport = connect(srv.port)
    stall.sendall(hello[:20])
    t, cport = tls_connect(srv.port)
    with t:
        c = Lines(t)
        c.line()
        r = c.cmd("NOOP")
        c.cmd("QUIT")
    check("stalled-client-others-served", r == "250 noop", repr(r))
    stall.close()
    check("stalled-client-logged", srv.wait_for(mark, "reason=eof"), srv.since(mark)[-300:])

    # handshake deadline (-K 1000)
    mark = fast.mark()
    s, cport = connect(fast.port)
    s.sendall(hello[:30])
    s.settimeout(15)
    t0 = time.time()
    try:
        d = s.recv(100)
    except OSError:
        d = b""
    took = time.time() - t0
    s.close()
    check("handshake-timeout", d == b"" and 0.7 < took < 5 and fast.wait_for(mark, "reason=timeout"),
          "took %.2fs, got %r, log %r" % (took, d, fast.since(mark)[-300:]))


def plain_starttls(port, cmd="STARTTLS"):
    raw, cport = connect(port)
    c = Lines(raw)
    return raw, cport, c


def test_starttls(root, srv):
    # plaintext first, TLS after
    mark = srv.mark()
    raw, cport, c = plain_starttls(srv.port)
    g = c.line()
    check("starttls-plain-greeting", g == "220 hello", repr(g))
    r = c.cmd("NOOP")
    check("starttls-plain-noop", r == "250 noop", repr(r))
    r = c.cmd("ENV SSL_PROTOCOL")
    check("starttls-plain-no-ssl-env", r == "250 -", repr(r))
    r = c.cmd("ENV SSLCTLFD")
    check("starttls-sslctlfd-set", r is not None and r[4:].isdigit() and int(r[4:]) > 2, repr(r))
    r = c.cmd("STARTTLS")
    check("starttls-go", r == "220 go", repr(r))
    try:
        t = tls_client_ctx().wrap_socket(raw, server_hostname=SNI)
    except (ssl.SSLError, OSError) as e:
        check("starttls-handshake", False, str(e))
        return
    with t:
        check("starttls-handshake", t.version() == "TLSv1.3", t.version())
        c = Lines(t)
        r = c.cmd("NOOP")
        check("starttls-tls-noop", r == "250 noop", repr(r))
        r = c.cmd("TLSINFO")
        want = "250 SSL_PROTOCOL=TLSv1.3;SSL_CIPHER=%s;SSL_TLS_SNI_SERVERNAME=%s" % (t.cipher()[0], SNI)
        check("starttls-ctl-reply", r == want, "%r, want %r" % (r, want))
        r = c.cmd("ID")
        check("starttls-daemon-uid", r is not None and r.startswith("250 uid=%d gid=%d " % (root.uid, root.gid)), repr(r))
        r = c.cmd("QUIT")
        check("starttls-quit", r == "221 bye", repr(r))
    st = srv.end_status(cport)
    check("starttls-exit-0", st == 0, "status %r" % st)
    check("starttls-log", "tlsd: tls ip=127.0.0.1 proto=TLSv1.3" in srv.since(mark), srv.since(mark)[-300:])

    # 'Y' (UCSPI-TLS' other command) and TLS 1.2
    raw, cport, c = plain_starttls(srv.port)
    c.line()
    r = c.cmd("STARTTLS Y")
    try:
        t = tls_client_ctx(maxv=ssl.TLSVersion.TLSv1_2).wrap_socket(raw, server_hostname=SNI)
        with t:
            c = Lines(t)
            r = c.cmd("TLSINFO")
            cipher = t.cipher()[0]
            c.cmd("QUIT")
        check("starttls-Y-tls12", r == "250 SSL_PROTOCOL=TLSv1.2;SSL_CIPHER=%s;SSL_TLS_SNI_SERVERNAME=%s"
              % (cipher, SNI), repr(r))
    except (ssl.SSLError, OSError) as e:
        check("starttls-Y-tls12", False, str(e))

    # CVE-2011-0411: a command pipelined behind STARTTLS is never answered
    mark = srv.mark()
    raw, cport, c = plain_starttls(srv.port)
    c.line()
    raw.sendall(b"STARTTLS\r\nNOOP\r\n")
    r = c.line()
    lines, hsfail = [], None
    try:
        t = tls_client_ctx().wrap_socket(raw, server_hostname=SNI)
        with t:
            t.sendall(b"QUIT\r\n")
            lines = Lines(t).rest()
    except (ssl.SSLError, OSError) as e:
        hsfail = e
    info("pipelined STARTTLS: reply %r, handshake error %r, after TLS %r" % (r, hsfail, lines))
    check("starttls-pipelined-noop-dropped", r == "220 go" and "250 noop" not in lines
          and (lines == ["221 bye"] or hsfail is not None),
          "reply %r, after TLS %r, handshake error %r" % (r, lines, hsfail))

    # cleartext injected after the 220, before the ClientHello: the
    # handshake fails, nothing reaches the daemon
    mark = srv.mark()
    raw, cport, c = plain_starttls(srv.port)
    c.line()
    r = c.cmd("STARTTLS")
    raw.sendall(b"NOOP\r\n")
    time.sleep(0.2)
    lines, hsfail = [], None
    try:
        t = tls_client_ctx().wrap_socket(raw, server_hostname=SNI)
        with t:
            t.sendall(b"QUIT\r\n")
            lines = Lines(t).rest()
    except (ssl.SSLError, OSError) as e:
        hsfail = e
    st = srv.end_status(cport)
    log = srv.since(mark)
    check("starttls-injection-handshake-fails", hsfail is not None and "handshake-fail ip=127.0.0.1" in log
          and "250 noop" not in lines, "error %r, lines %r, log %r" % (hsfail, lines, log[-300:]))
    check("starttls-fail-daemon-sees-eof", srv.wait_for(mark, "linedaemon: starttls-eof"), log[-300:])
    check("starttls-fail-exit-1", st == 1 << 8, "status %r" % st)

    # a session that never starts TLS: tlsd waits and passes the status on
    raw, cport, c = plain_starttls(srv.port)
    c.line()
    raw.sendall(b"EXIT 7\r\n")
    c.rest()
    raw.close()
    st = srv.end_status(cport)
    check("starttls-never-exit-status", st == 7 << 8, "status %r" % st)


def test_bulk(root, srv, name, starttls):
    data = os.urandom(MB10)
    raw, cport = connect(srv.port)
    try:
        if starttls:
            c = Lines(raw)
            c.line()
            r = c.cmd("STARTTLS")
            if r != "220 go":
                check(name, False, "STARTTLS: %r" % r)
                return
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = tls_client_ctx().wrap_bio(inc, out, server_hostname=SNI)
        obj_handshake(raw, obj, inc, out)
        if starttls:
            obj.write(b"CAT\r\n")
            raw.sendall(out.read())
        t0 = time.time()
        n, digest, clean, err = bulk(raw, obj, inc, out, data)
        took = time.time() - t0
    finally:
        raw.close()
    want = hashlib.sha256(data).hexdigest()
    info("%s: %d bytes each way in %.2fs" % (name, n, took))
    check(name, err is None and n == len(data) and digest == want,
          err or "received %d of %d bytes, digest %s" % (n, len(data), "ok" if digest == want else "differs"))
    check(name + "-close-notify", clean, "no close_notify at the end")
    st = srv.end_status(cport)
    check(name + "-exit-0", st == 0, "status %r" % st)


def ticket_connect(srv, sess, maxv):
    """One implicit-TLS session offering sess; returns (new session, reused,
    the tlsd log line)."""
    mark = srv.mark()
    ctx = ticket_ctx(maxv)
    raw, cport = connect(srv.port)
    t = ctx.wrap_socket(raw, server_hostname=SNI, session=sess)
    with t:
        c = Lines(t)
        c.line()
        c.cmd("QUIT")
        new, reused = t.session, t.session_reused
    srv.wait_for(mark, "resumed=", 5)
    lines = [l for l in srv.since(mark).splitlines() if l.startswith("tlsd: tls ")]
    return new, reused, lines[-1] if lines else ""


TICKET_CTX = {}


def ticket_ctx(maxv):
    """python's ssl resumes a session only in the context that made it"""
    if maxv not in TICKET_CTX:
        TICKET_CTX[maxv] = tls_client_ctx(maxv=maxv)
    return TICKET_CTX[maxv]


def first_session(srv, maxv):
    ctx = ticket_ctx(maxv)
    raw, cport = connect(srv.port)
    t = ctx.wrap_socket(raw, server_hostname=SNI)
    with t:
        c = Lines(t)
        c.line()
        c.cmd("QUIT")     # TLS 1.3: the ticket came after the handshake; read past it
        return t.session


def age_ticket_keys(path, seconds):
    """Make both keys of the ticket key file seconds older."""
    with open(path, "rb") as f:
        b = bytearray(f.read())
    for off in (8, 8 + 88):
        v = int.from_bytes(b[off:off + 8], "big")
        if v:
            b[off:off + 8] = (v - seconds).to_bytes(8, "big")
    with open(path + ".t", "wb") as f:
        f.write(b)
    st = os.stat(path)
    os.chown(path + ".t", st.st_uid, st.st_gid)
    os.chmod(path + ".t", st.st_mode & 0o777)
    os.rename(path + ".t", path)


def test_tickets(root):
    """Session tickets under control/tlsticketkeys: a session from one tlsd
    process resumes in another (TLS 1.3 and 1.2), logged resumed=yes; the
    key file has the key's owner, group and mode; a rotation keeps the
    previous key's tickets; a ticket whose key is gone gets a full
    handshake, not an error; tlsticketlifetime 0 turns tickets off."""
    stek = os.path.join(root.control, "tlsticketkeys")
    a = root.server("tickets-a", [], [PY, root.daemon])
    b = root.server("tickets-b", [], [PY, root.daemon])
    for name, maxv in (("tls13", None), ("tls12", ssl.TLSVersion.TLSv1_2)):
        sess = first_session(a, maxv)
        check("ticket-%s-issued" % name, sess is not None and sess.has_ticket, repr(sess))
        if sess is None:
            continue
        new, reused, line = ticket_connect(b, sess, maxv)
        check("ticket-%s-resumed-other-process" % name, reused and line.endswith(" resumed=yes"),
              "reused %s, log %r" % (reused, line))
        _, reused2, line2 = ticket_connect(a, None, maxv)
        check("ticket-%s-full-logged" % name, not reused2 and line2.endswith(" resumed=no"), repr(line2))
    st, kst = os.stat(stek), os.stat(root.key)
    check("ticket-keys-file", st.st_size == 184 and st.st_uid == kst.st_uid and st.st_gid == kst.st_gid
          and (st.st_mode & 0o777) == (kst.st_mode & 0o640), "size %d uid %d gid %d mode %o"
          % (st.st_size, st.st_uid, st.st_gid, st.st_mode & 0o777))
    if is_root():
        t, cport = tls_connect(a.port)
        with t:
            c = Lines(t)
            c.line()
            r = c.cmd("READ " + stek)
            c.cmd("QUIT")
        check("daemon-cannot-read-ticket-keys", r == "550 EACCES", repr(r))
    # a rotation: the old current key becomes the previous one, its
    # tickets still resume (and the client gets a new one)
    sess = first_session(a, None)
    with open(stek, "rb") as f:
        before = f.read()
    age_ticket_keys(stek, 4000)
    new, reused, line = ticket_connect(b, sess, None)
    with open(stek, "rb") as f:
        after = f.read()
    check("ticket-keys-rotated", after[8 + 88 + 8:8 + 88 + 24] == before[16:32] and after[16:32] != before[16:32],
          "the key file did not rotate")
    check("ticket-previous-key-resumes", reused and line.endswith(" resumed=yes"), "reused %s, %r" % (reused, line))
    # a second rotation: the first key is gone; its ticket gets a full handshake
    age_ticket_keys(stek, 4000)
    _, _, _ = ticket_connect(a, None, None)    # rotates
    new2, reused, line = ticket_connect(b, sess, None)
    check("ticket-rotated-out-full-handshake", not reused and line.endswith(" resumed=no")
          and "handshake-fail" not in b.text(), "reused %s, %r" % (reused, line))
    # a ticket made under keys the file no longer has at all (replaced)
    sess12 = first_session(a, ssl.TLSVersion.TLSv1_2)
    os.unlink(stek)
    _, reused, line = ticket_connect(a, sess12, ssl.TLSVersion.TLSv1_2)
    check("ticket-unknown-key-full-handshake-tls12", not reused and line.endswith(" resumed=no"), repr(line))
    # tickets off
    with open(os.path.join(root.control, "tlsticketlifetime"), "w") as f:
        f.write("0\n")
    try:
        sess = first_session(a, None)
        check("tickets-off", sess is None or not sess.has_ticket, repr(sess))
    finally:
        os.unlink(os.path.join(root.control, "tlsticketlifetime"))
    # only the key file's owner rotates; a tlsd that may not (here: the key
    # owned by another uid) goes on with the current key for one more
    # lifetime, then stops using it
    if is_root():
        sess = first_session(a, None)
        os.chown(root.key, root.uid, root.gid)
        try:
            age_ticket_keys(stek, 4000)
            with open(stek, "rb") as f:
                before = f.read()
            _, reused, line = ticket_connect(b, sess, None)
            with open(stek, "rb") as f:
                after = f.read()
            check("ticket-keys-not-owner-no-rotation", before == after and reused, "reused %s %r" % (reused, line))
            age_ticket_keys(stek, 4000)
            _, reused, line = ticket_connect(b, sess, None)
            check("ticket-keys-too-old-unused", not reused and line.endswith(" resumed=no"), "reused %s %r" % (reused, line))
        finally:
            os.chown(root.key, 0, 0)
        os.unlink(stek)
    a.close()
    b.close()


def test_sanitizers(root):
    bad = []
    for s in root.servers:
        t = s.text()
        rep = sanitizer_report(t)
        if rep:
            bad.append("%s: %s" % (os.path.basename(s.log), rep.splitlines()[0]))
        for needle in ("Segmentation", "tlsd: fatal"):
            if needle in t:
                bad.append("%s: %s" % (os.path.basename(s.log), needle))
    check("no-crash-or-sanitizer-report", not bad, "; ".join(bad))


def main():
    if not os.access(TLSD, os.X_OK):
        check("tlsd-built", False, "no " + TLSD)
        return
    for tool in ("tcpserver", "openssl"):
        if not shutil.which(tool):
            check("have-" + tool, False, "not installed")
            return
    root = Root()
    try:
        implicit = root.server("implicit", [], [PY, root.daemon])
        fast = root.server("fast", ["-K", "1000"], [PY, root.daemon])
        starttls = root.server("starttls", ["-S"], [PY, root.daemon])
        cat = root.server("cat", [], ["cat"])
        test_implicit(root, implicit)
        test_old_protocols(root, implicit)
        test_privileges(root, implicit)
        test_control_files(root)
        test_bad_handshakes(root, implicit, fast)
        test_starttls(root, starttls)
        test_bulk(root, cat, "bulk-10mb-implicit", False)
        test_bulk(root, starttls, "bulk-10mb-starttls", True)
        test_tickets(root)
        for s in root.servers:
            s.close()
        test_sanitizers(root)
        if os.environ.get("YUBIN_KEEP"):
            info("logs kept in " + root.dir)
            root.dir = "/nonexistent"
    finally:
        root.close()


run(main)
