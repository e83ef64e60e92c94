#!/usr/bin/env python3
"""End to end POP3 (issue 10): mail delivered over SMTP to a real yubin
instance (package/setup, s6, free loopback ports) is fetched back with
python poplib (USER/PASS on loopback, STLS, POP3_SSL on the pop3s port),
curl (pop3://, STLS, pop3s://) and fetchmail (--mda into a file, pop3s and
STLS, keep and delete), byte for byte: what RETR gives is the Maildir file
with every LF as CRLF, and LIST/STAT count exactly those octets.

Also: DELE+QUIT removes, DELE+RSET and a dropped connection keep; UIDLs
survive a second login, the new/ -> cur/ move and a flag rename; STLS
injection ("STLS\\r\\nCAPA\\r\\n" in one packet) gets no answer; bad input
(unknown commands, 10,000-byte lines, NUL bytes, the wrong state, RETR 0,
of a huge number, negative, not a number) gets one -ERR each and the
session goes on; three wrong passwords and too many bad commands end the
session; a wrong password is logged and counted by the instance's own
banwatch (shipped configuration), from loopback (ignored) and from a
non-loopback address (banned); the processes run as they should (the
monitor root, the pre-login part yubinp, the mailbox part the user,
checked through /proc).

A non-loopback client: yubin-pop3d of the instance run by the test over a
socketpair with TCPREMOTEIP=192.0.2.x (no tcpserver), as root with -u/-g
of yubinp: logins before STLS are refused unless CLEARTEXTLOGIN is set.

One instance for the whole file; each case starts with an empty Maildir.
With a sanitizer build (tests/run's second pass) the messages are put
into the Maildir as yubin-local names them instead of coming over SMTP:
the setuid yubin-queue cannot run LeakSanitizer.
Prints "PASS name" or "FAIL name: why" per case.  YUBIN_BIN selects the
binaries (default build/bin)."""

import base64
import os
import poplib
import pwd
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from yubintest import (Failure, Instance, case_list, check, expect, info, is_root,  # noqa: E402
                       minimal_env, run, run_cases, sanitizer_report, send, tls_client_ctx,
                       wait_for)
import yubintest  # noqa: E402
from yubintest import proc_children, proc_exe, proc_status  # noqa: E402,F401
from yubintest import bytes_diff as diff, curl, proc_ids as uids  # noqa: E402

IO = 10                 # seconds for any one read
INST = None             # the instance, made in main
SANITIZER = False       # YUBIN_BIN is a sanitizer build
CASES, case = case_list()

# ---------------------------------------------------------------- messages

_serial = [0]


def message(tag):
    """A message (CRLF, as SMTP carries it) with the edge cases of
    dot-stuffing, a marker to find it by, and its body lines."""
    _serial[0] += 1
    marker = ("pop3-%s-%d-%d" % (tag, os.getpid(), _serial[0])).encode()
    lines = [
        b"From: Alice <alice@example.org>",
        b"To: demo@" + INST.domain.encode(),
        b"Subject: " + marker,
        b"Message-ID: <" + marker + b"@example.org>",
        b"MIME-Version: 1.0",
        b"Content-Type: text/plain; charset=utf-8",
        b"Content-Transfer-Encoding: 8bit",
        b"",
        b"Hello demo,",
        b".a line that starts with a dot",
        b"..two dots",
        b".",
        b". ",
        b"...",
        b"   leading and trailing spaces   ",
        b"\ttab",
        "utf-8: \u90f5\u4fbf \u2709".encode(),
        b"From the start of a line",
        b"x" * 998,
        b"",
        b"",
        b"-- ",
        b"last line " + marker,
    ]
    return marker, b"\r\n".join(lines) + b"\r\n"


def maildir_files(user="demo"):
    out = []
    for sub in ("new", "cur"):
        out += INST.messages(user, sub)
    return out


def sanitizer_build():
    return yubintest.sanitizer_build(INST.bin)


def crlf(data):
    """data with every line end CRLF, the last line ended."""
    out = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return out if out.endswith(b"\r\n") or not out else out + b"\r\n"


def put(data, name=None, sub="new", user="demo"):
    """A message file written into the Maildir (tmp/, then renamed), owned
    by the Maildir's owner; by default named as yubin-local names it
    (<unique>,S=<bytes>,W=<CRLF bytes>).  Returns (path, data)."""
    md = INST.maildir(user)
    st = os.stat(md)
    _serial[0] += 1
    if name is None:
        t = time.time()
        name = "%d.M%dP%dQ%d.pop3test,S=%d,W=%d" % (int(t), int(t * 1e6) % 1000000, os.getpid(), _serial[0],
                                                     len(data), len(crlf(data)))
    tmp = os.path.join(md, "tmp", name)
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.chown(tmp, st.st_uid, st.st_gid)
    os.chmod(tmp, 0o600)
    path = os.path.join(md, sub, name)
    os.rename(tmp, path)
    return path, data


def deliver(tag="m"):
    """Send one message over SMTP; wait for its Maildir file.  Returns
    (path, bytes of the file).  (A sanitizer build: the same message, put
    into the Maildir as yubin-local would deliver it.)"""
    marker, msg = message(tag)
    if SANITIZER:
        return put(b"Return-Path: <alice@example.org>\nDelivered-To: demo@" + INST.domain.encode() + b"\n"
                   + msg.replace(b"\r\n", b"\n"))
    ok, r = send(INST, "alice@example.org", ["demo@" + INST.domain], msg,
                 mail_options=["BODY=8BITMIME"])
    expect(ok and not r, "SMTP: %r" % (r,))
    found = []

    def seen():
        found[:] = [p for p in INST.messages() if marker in INST.read(p)]
        return found
    expect(wait_for(seen, 20, 0.02), "%s not delivered to %s/new" % (marker, INST.maildir()))
    data = INST.read(found[0])
    expect(b"\r" not in data, "a CR in the Maildir file")
    return found[0], data


def wire(data):
    """What RETR must give (dot-stuffing undone): every line end CRLF."""
    return crlf(data)


def unstuff(lines):
    """Raw multi-line body lines -> the message (CRLF)."""
    return b"".join((l[1:] if l.startswith(b".") else l) + b"\r\n" for l in lines)


# ---------------------------------------------------------------- a raw client


class Pop:
    """A byte-exact POP3 client over a socket (TCP or a socketpair end)."""

    def __init__(self, port=None, implicit=False, sock=None, greet=True):
        self.s = sock if sock is not None else socket.create_connection((INST.ip, port), timeout=IO)
        self.s.settimeout(IO)
        self.port = self.s.getsockname()[1] if sock is None else None
        if implicit:
            self.s = tls_client_ctx().wrap_socket(self.s)
        self.buf = b""
        if greet:
            g = self.line()
            expect(g.startswith(b"+OK"), "greeting %r" % g)
            expect(not re.search(rb"<[^>]*@[^>]*>", g), "greeting offers APOP (a timestamp): %r" % g)

    def send(self, data):
        self.s.sendall(data.encode() if isinstance(data, str) else data)

    def line(self):
        while b"\n" not in self.buf:
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                raise Failure("no answer in %ds; pending %r" % (IO, self.buf[:200]))
            except OSError as e:
                raise Failure("read: %s; pending %r" % (e, self.buf[:200]))
            if not d:
                raise Failure("connection closed; pending %r" % self.buf[:200])
            self.buf += d
        l, self.buf = self.buf.split(b"\n", 1)
        expect(l.endswith(b"\r"), "line without CRLF: %r" % l[:200])
        return l[:-1]

    def cmd(self, line, ok=True):
        """Send line; the first line of the answer, which must be +OK (ok
        True), -ERR (ok False) or either (ok None)."""
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        r = self.line()
        shown = line if len(line) < 80 else line[:60] + (b"..." if isinstance(line, bytes) else "...")
        if ok is True:
            expect(r.startswith(b"+OK"), "%r: %r" % (shown, r))
        elif ok is False:
            expect(r.startswith(b"-ERR"), "%r: expected -ERR, got %r" % (shown, r))
        return r

    def multi(self):
        """The lines of a multi-line answer, still dot-stuffed, without the
        final '.'."""
        out = []
        while True:
            l = self.line()
            if l == b".":
                return out
            out.append(l)

    def capa(self):
        self.cmd("CAPA")
        return [l.decode(errors="replace") for l in self.multi()]

    def login(self, pw=None, user="demo"):
        self.cmd("USER " + user)
        return self.cmd("PASS " + (pw if pw is not None else INST.demo_password))

    def stls(self):
        self.cmd("STLS")
        expect(not self.buf, "bytes after +OK to STLS: %r" % self.buf)
        self.s = tls_client_ctx().wrap_socket(self.s)

    def rest(self, timeout=IO):
        """Everything until the server closes the connection."""
        self.s.settimeout(timeout)
        data, self.buf = self.buf, b""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                break
            except (ConnectionResetError, ssl.SSLError):
                return data
            if not d:
                return data
            data += d
        raise Failure("connection not closed in %ds, got %r" % (timeout, data[-300:]))

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

# ---------------------------------------------------------------- fixture


def empty_maildir():
    for p in maildir_files():
        try:
            os.unlink(p)
        except OSError:
            pass


class Fix:
    """Per case: an empty Maildir, a scratch directory, and every client
    and process the case opens, closed and killed afterwards."""

    def __init__(self):
        self.inst = INST
        empty_maildir()
        self.tmp = tempfile.mkdtemp(prefix="pop3t-")
        self.clients = []
        self.procs = []
        self.unban = []

    def pop(self, port=None, implicit=False, **kw):
        p = Pop(port or INST.pop3_port, implicit, **kw)
        self.clients.append(p)
        return p

    def cleanup(self):
        for c in self.clients:
            c.close()
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
        for a in self.unban:
            INST.banctl("unban", a)
        shutil.rmtree(self.tmp, ignore_errors=True)
        empty_maildir()


def poplib_fetch(p, path, data):
    """Log in (p already connected, TLS on if wanted), STAT, LIST, UIDL,
    RETR 1: everything must match the one message."""
    want = wire(data)
    p.user("demo")
    r = p.pass_(INST.demo_password)
    expect(r.startswith(b"+OK"), "PASS: %r" % r)
    n, size = p.stat()
    expect((n, size) == (1, len(want)), "STAT %d %d, want 1 %d" % (n, size, len(want)))
    _, lst, _ = p.list()
    expect(lst == [b"1 %d" % len(want)], "LIST %r, want 1 %d" % (lst, len(want)))
    r = p.list(1)
    expect(r == b"+OK 1 %d" % len(want), "LIST 1: %r" % r)
    _, lines, _ = p.retr(1)
    got = b"".join(l + b"\r\n" for l in lines)
    expect(got == want, "RETR 1 " + diff(want, got))
    expect(p.quit().startswith(b"+OK"), "QUIT")

# ---------------------------------------------------------------- retrieval


@case
def poplib_plain_loopback_exact(f):
    path, data = deliver("plain")
    p = poplib.POP3(INST.ip, INST.pop3_port, timeout=IO)
    try:
        poplib_fetch(p, path, data)
    finally:
        p.close()


@case
def poplib_stls_exact(f):
    path, data = deliver("stls")
    p = poplib.POP3(INST.ip, INST.pop3_port, timeout=IO)
    try:
        expect("STLS" in p.capa(), "no STLS in CAPA: %r" % p.capa())
        p.stls(context=tls_client_ctx())
        expect("STLS" not in p.capa(), "STLS still offered over TLS")
        poplib_fetch(p, path, data)
    finally:
        p.close()
    expect(wait_for(lambda: re.search(r"pop3d: login ip=127\.0\.0\.1 user=demo .*tls=(?!no)", INST.log("pop3")), 5),
           "no login line with TLS in log/pop3: %r" % INST.log("pop3")[-600:])


@case
def poplib_ssl_pop3s_exact(f):
    path, data = deliver("pop3s")
    p = poplib.POP3_SSL(INST.ip, INST.pop3s_port, timeout=IO, context=tls_client_ctx())
    try:
        expect("STLS" not in p.capa(), "STLS offered on the pop3s port")
        poplib_fetch(p, path, data)
    finally:
        p.close()


@case
def raw_retr_dot_stuffed_crlf(f):
    """The bytes on the wire: CRLF everywhere, every line that starts with
    a dot gets one more, the size line of RETR and LIST agree."""
    path, data = deliver("raw")
    want = wire(data)
    p = f.pop()
    p.login()
    r = p.cmd("RETR 1")
    expect(r == b"+OK %d octets" % len(want) or r.startswith(b"+OK"), "RETR 1: %r" % r)
    lines = p.multi()
    stuffed = [b"." + l if l.startswith(b".") else l for l in want[:-2].split(b"\r\n")]
    expect(lines == stuffed, "wire lines differ from the dot-stuffed message: first difference %r" %
           (next(((a, b) for a, b in zip(stuffed, lines) if a != b), (len(stuffed), len(lines))),))
    expect(unstuff(lines) == want, "unstuffed " + diff(want, unstuff(lines)))
    # TOP 1 0: the header, the blank line, no body line
    p.cmd("TOP 1 0")
    top = unstuff(p.multi())
    head = want[:want.index(b"\r\n\r\n") + 4]
    expect(top == head, "TOP 1 0 " + diff(head, top))
    p.cmd("TOP 1 2")
    top = unstuff(p.multi())
    expect(top == head + b"Hello demo,\r\n.a line that starts with a dot\r\n", "TOP 1 2 gave %r" % top[-80:])
    p.cmd("QUIT")


@case
def empty_maildir_login(f):
    p = f.pop()
    r = p.login()
    expect(r.startswith(b"+OK"), "login to an empty Maildir: %r" % r)
    expect(p.cmd("STAT") == b"+OK 0 0", "STAT of an empty Maildir")
    p.cmd("LIST")
    expect(p.multi() == [], "LIST of an empty Maildir")
    expect(uidls(p) == {}, "UIDL of an empty Maildir")
    p.cmd("RETR 1", ok=False)
    p.cmd("QUIT")
    p.rest()


@case
def foreign_maildir_files(f):
    """Files another program put there: CRLF on disk, no sizes in the name,
    a last line without its newline, mixed line ends, in cur/ with flags:
    RETR gives CRLF lines, LIST the octets RETR sends, UIDL the name up to
    ':2,'."""
    files = [
        put(b"Subject: crlf on disk\r\n\r\n.dot\r\nline\r\n", name="1700000001.foreign1.example"),
        put(b"Subject: no final newline\n\nbody\n.last", name="1700000002.foreign2.example:2,S", sub="cur"),
        put(b"Subject: mixed\r\n\nCRLF\r\nLF\n..\r\n", name="1700000003.foreign3.example,S=31"),
    ]
    p = f.pop()
    p.login()
    p.cmd("LIST")
    sizes = dict(l.split(b" ") for l in p.multi())
    u = uidls(p)
    expect(len(sizes) == 3 and len(u) == 3, "LIST %r UIDL %r" % (sizes, u))
    for n, uid in u.items():
        path, data = [x for x in files if os.path.basename(x[0]).split(":2,")[0].encode() == uid][0]
        p.cmd("RETR %d" % n)
        got = unstuff(p.multi())
        expect(got == crlf(data), "%s: RETR %s" % (os.path.basename(path), diff(crlf(data), got)))
        expect(int(sizes[b"%d" % n]) == len(got), "%s: LIST says %s, RETR sent %d" % (os.path.basename(path), sizes[b"%d" % n].decode(), len(got)))
    p.cmd("QUIT")


@case
def curl_pop3_list_retr(f):
    path, data = deliver("curl")
    want = wire(data)
    u = "demo:" + INST.demo_password
    rc, out, err = curl("-u", u, "pop3://%s:%d/" % (INST.ip, INST.pop3_port))
    expect(rc == 0, "curl list: %d %s" % (rc, err))
    expect(out == b"1 %d\r\n" % len(want), "curl list: %r" % out)
    rc, out, err = curl("-u", u, "pop3://%s:%d/1" % (INST.ip, INST.pop3_port))
    expect(rc == 0, "curl retr: %d %s" % (rc, err))
    expect(out == want, "curl retr " + diff(want, out))
    expect(len(maildir_files()) == 1, "the message is gone after curl: %r" % maildir_files())


@case
def curl_pop3_stls_retr(f):
    path, data = deliver("curlstls")
    want = wire(data)
    rc, out, err = curl("--ssl-reqd", "-k", "-u", "demo:" + INST.demo_password,
                        "pop3://%s:%d/1" % (INST.ip, INST.pop3_port))
    expect(rc == 0, "curl --ssl-reqd retr: %d %s" % (rc, err))
    expect(out == want, "curl STLS retr " + diff(want, out))


@case
def curl_pop3s_list_retr(f):
    path, data = deliver("curls")
    want = wire(data)
    u = "demo:" + INST.demo_password
    rc, out, err = curl("-k", "-u", u, "pop3s://%s:%d/" % (INST.ip, INST.pop3s_port))
    expect(rc == 0 and out == b"1 %d\r\n" % len(want), "curl pop3s list: %d %r %s" % (rc, out, err))
    rc, out, err = curl("-k", "-u", u, "pop3s://%s:%d/1" % (INST.ip, INST.pop3s_port))
    expect(rc == 0, "curl pop3s retr: %d %s" % (rc, err))
    expect(out == want, "curl pop3s retr " + diff(want, out))


def fetchmail(f, port, tlsopts, keep):
    """fetchmail with a temporary HOME and .fetchmailrc (0600, the
    password), --mda appending to a file; returns that file's bytes."""
    if not shutil.which("fetchmail"):
        raise Failure("fetchmail is not installed (Debian package fetchmail, package/deps)")
    home = os.path.join(f.tmp, "home")
    os.mkdir(home, 0o700)
    rc = os.path.join(home, ".fetchmailrc")
    with open(rc, "w") as fh:
        fh.write('poll %s service %d protocol pop3 user "demo" password "%s"\n'
                 % (INST.ip, port, INST.demo_password))
    os.chmod(rc, 0o600)
    out = os.path.join(f.tmp, "delivered")
    cmd = (["fetchmail", "--nosyslog", "--nodetach", "-d0", "-v", "-a", "--invisible", "--norewrite",
            "--timeout", "20", "--mda", "cat >> " + out] + tlsopts + (["-k"] if keep else ["-K"]))
    env = minimal_env({"HOME": home, "FETCHMAILUSER": pwd.getpwuid(os.getuid()).pw_name,
                       "LC_ALL": "C"})
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    log = r.stdout.decode(errors="replace")
    brief = "\n".join(l for l in log.splitlines()
                      if not re.search(r"certificate|Certificate|CommonName|Organization|c_rehash|Alternative", l))
    expect(r.returncode == 0, "fetchmail exited %d:\n%s" % (r.returncode, brief[-1200:]))
    try:
        with open(out, "rb") as fh:
            return fh.read(), log
    except OSError:
        raise Failure("fetchmail delivered nothing:\n" + brief[-1200:])


def fetchmail_case(f, port, tlsopts, keep, tls_re):
    path, data = deliver("fetchmail")
    got, log = fetchmail(f, port, tlsopts, keep)
    expect(re.search(tls_re, log), "no TLS in fetchmail's transcript:\n" + log[-1500:])
    # fetchmail hands the MDA the message with LF line ends, as in the Maildir
    expect(got == data, "fetchmail --mda " + diff(data, got))
    left = maildir_files()
    if keep:
        expect(len(left) == 1, "-k: the message must stay, Maildir holds %r" % left)
    else:
        expect(wait_for(lambda: not maildir_files(), 5), "without -k the Maildir must be empty: %r" % left)


@case
def fetchmail_pop3s_keep(f):
    fetchmail_case(f, INST.pop3s_port, ["--ssl", "--nosslcertck"], True, r"SSL|TLS")


@case
def fetchmail_pop3s_delete(f):
    fetchmail_case(f, INST.pop3s_port, ["--ssl", "--nosslcertck"], False, r"SSL|TLS")


@case
def fetchmail_stls_delete(f):
    # --sslproto auto without --ssl: STLS required (fetchmail(1))
    fetchmail_case(f, INST.pop3_port, ["--sslproto", "auto", "--nosslcertck"], False, r"STLS")


@case
def fetchmail_stls_keep(f):
    fetchmail_case(f, INST.pop3_port, ["--sslproto", "auto", "--nosslcertck"], True, r"STLS")

# ---------------------------------------------------------------- UPDATE state


@case
def dele_quit_removes(f):
    path, data = deliver("dele")
    p = f.pop()
    p.login()
    p.cmd("DELE 1")
    r = p.cmd("STAT")
    expect(r == b"+OK 0 0", "STAT after DELE: %r" % r)
    p.cmd("RETR 1", ok=False)
    p.cmd("DELE 1", ok=False)
    expect(len(maildir_files()) == 1, "deleted before QUIT: %r" % maildir_files())
    r = p.cmd("QUIT")
    p.rest()
    expect(not maildir_files(), "DELE+QUIT left %r" % maildir_files())
    expect(wait_for(lambda: re.search(r"pop3d: quit ip=127\.0\.0\.1 user=demo retr=0 dele=1 .*reason=quit",
                                      INST.log("pop3")), 5),
           "no quit line with dele=1: %r" % INST.log("pop3")[-500:])


@case
def dele_rset_keeps(f):
    path, data = deliver("rset")
    p = f.pop()
    p.login()
    p.cmd("DELE 1")
    p.cmd("RSET")
    r = p.cmd("STAT")
    expect(r == b"+OK 1 %d" % len(wire(data)), "STAT after RSET: %r" % r)
    p.cmd("RETR 1")
    expect(unstuff(p.multi()) == wire(data), "RETR after RSET differs")
    p.cmd("QUIT")
    p.rest()
    files = maildir_files()
    expect(len(files) == 1 and INST.read(files[0]) == data, "DELE+RSET+QUIT: Maildir holds %r" % files)


@case
def dele_dropped_connection_keeps(f):
    path, data = deliver("drop")
    n = INST.log("pop3").count("reason=eof")
    p = f.pop()
    p.login()
    p.cmd("DELE 1")
    p.s.shutdown(socket.SHUT_RDWR)
    p.close()
    expect(wait_for(lambda: re.search(r"pop3d: quit ip=127\.0\.0\.1 user=demo .*reason=eof",
                                      INST.log("pop3")) and INST.log("pop3").count("reason=eof") > n, 10),
           "the mailbox part did not log its end: %r" % INST.log("pop3")[-500:])
    files = maildir_files()
    expect(len(files) == 1 and INST.read(files[0]) == data, "DELE then a drop: Maildir holds %r" % files)
    # and the message is still served
    p = f.pop()
    p.login()
    expect(p.cmd("STAT") == b"+OK 1 %d" % len(wire(data)), "STAT in the next session")


@case
def dele_by_another_session(f):
    deliver("two1")
    path, data = deliver("two2")
    a, b = f.pop(), f.pop()
    a.login()
    b.login()
    expect(a.cmd("STAT") == b.cmd("STAT"), "two sessions see different mailboxes")
    a.cmd("DELE 1")
    a.cmd("DELE 2")
    a.cmd("QUIT")
    a.rest()
    expect(not maildir_files(), "A's QUIT left %r" % maildir_files())
    b.cmd("RETR 1", ok=False)
    b.cmd("NOOP")
    b.cmd("QUIT")
    b.rest()

# ---------------------------------------------------------------- UIDL


def uidls(p):
    p.cmd("UIDL")
    out = {}
    for l in p.multi():
        n, u = l.split(b" ", 1)
        out[int(n)] = u
    return out


@case
def uidl_stable(f):
    paths = [deliver("uidl%d" % i)[0] for i in range(2)]
    names = sorted(os.path.basename(x).split(":2,")[0].encode() for x in paths)
    p = f.pop()
    p.login()
    first = uidls(p)
    expect(sorted(first.values()) == names, "UIDLs %r are not the Maildir unique names %r" % (first, names))
    for u in first.values():
        expect(0 < len(u) <= 70 and all(0x21 <= c <= 0x7e for c in u), "UIDL %r not RFC 1939" % u)
    r = p.cmd("UIDL 2")
    expect(r == b"+OK 2 " + first[2], "UIDL 2: %r" % r)
    p.cmd("QUIT")
    p.rest()
    expect(not INST.messages(), "new/ not emptied by a session: %r" % INST.messages())
    cur = INST.messages(sub="cur")
    expect(len(cur) == 2 and all(x.endswith(":2,") for x in cur), "cur/ holds %r" % cur)
    p = f.pop()
    p.login()
    expect(uidls(p) == first, "UIDLs changed after the move to cur/")
    p.cmd("QUIT")
    p.rest()
    # an IMAP client marks one seen and flagged: a rename, same UIDL
    os.rename(cur[0], cur[0] + "FS")
    p = f.pop()
    p.login()
    expect(uidls(p) == first, "UIDLs changed after a flag rename")
    p.cmd("QUIT")

# ---------------------------------------------------------------- STLS


@case
def stls_injection_not_answered(f):
    """CVE-2011-0411: what follows STLS in the same packet must not be
    executed, neither in plaintext nor over TLS."""
    p = f.pop()
    n = INST.log("pop3").count("handshake-fail") + INST.log("pop3").count("tls-handshake-failed")
    p.send(b"STLS\r\nCAPA\r\n")
    r = p.line()
    expect(r.startswith(b"+OK"), "STLS: %r" % r)
    expect(not p.buf, "plaintext after +OK to STLS: %r" % p.buf)
    # what comes next, before any handshake of ours
    p.s.settimeout(2)
    extra = b""
    closed = False
    try:
        while True:
            d = p.s.recv(4096)
            if not d:
                closed = True
                break
            extra += d
    except socket.timeout:
        pass
    except ConnectionResetError:
        closed = True
    for w in (b"+OK", b"-ERR", b"UIDL", b"TOP", b"IMPLEMENTATION"):
        expect(w not in extra, "a plaintext answer to the injected CAPA: %r" % extra)
    if not closed:
        # still open: a handshake must fail, or its first read must not be
        # an answer to CAPA
        try:
            t = tls_client_ctx().wrap_socket(p.s)
            t.settimeout(2)
            try:
                first = t.recv(4096)
            except (socket.timeout, ssl.SSLError, OSError):
                first = b""
            expect(not first.startswith(b"+OK capability") and b"IMPLEMENTATION" not in first,
                   "the injected CAPA was answered over TLS: %r" % first)
        except (ssl.SSLError, OSError):
            pass
    expect(wait_for(lambda: INST.log("pop3").count("handshake-fail")
                    + INST.log("pop3").count("tls-handshake-failed") > n, 5),
           "no failed handshake logged: %r" % INST.log("pop3")[-500:])


@case
def stls_forgets_user(f):
    """USER before STLS does not carry over into TLS (RFC 2595)."""
    p = f.pop()
    p.cmd("USER demo")
    p.stls()
    p.cmd("PASS " + INST.demo_password, ok=False)
    p.login()
    p.cmd("STAT")
    p.cmd("STLS", ok=False)


@case
def stls_twice_refused(f):
    p = f.pop()
    p.stls()
    expect("STLS" not in p.capa(), "STLS in CAPA over TLS")
    p.cmd("STLS", ok=False)
    p.cmd("NOOP", ok=False)     # still before login
    p.login()
    p.cmd("NOOP")


# ---------------------------------------------------------------- bad input

LONG = b"X" * 10000


@case
def bad_input_before_login(f):
    p = f.pop()
    for line in (b"FROBNICATE", LONG, b"USER " + LONG, b"NO\0OP", b"USER de\0mo", b"STAT",
                 b"LIST", b"RETR 1", b"DELE 1", b"PASS secret", b"APOP demo 0123456789abcdef0123456789abcdef",
                 b"AUTH FOO", b"", b"\xff\xfe"):
        p.cmd(line, ok=False)
        caps = p.capa()
        expect("IMPLEMENTATION yubin" in caps, "after %r the session is gone: %r" % (line[:20], caps))
    p.login()
    p.cmd("NOOP")


@case
def bad_input_after_login(f):
    path, data = deliver("bad")
    want = wire(data)
    bad = [b"RETR 0", b"RETR 99999999999999999999", b"RETR 18446744073709551617",
           b"RETR 4294967297", b"RETR -1", b"RETR +1", b"RETR abc", b"RETR 1abc", b"RETR",
           b"RETR 2", b"DELE 0", b"DELE -1", b"LIST 2", b"LIST 99999999999999999999", b"UIDL 0",
           b"TOP 1", b"TOP 1 -1", b"TOP 1 abc", b"TOP 0 0", b"FROBNICATE", LONG, b"NO\0OP",
           b"USER demo", b"PASS x"]
    # two sessions: 20 bad commands are the limit of one
    for lines in (bad[:12], bad[12:]):
        p = f.pop()
        p.login()
        for line in lines:
            p.cmd(line, ok=False)
            p.cmd("NOOP")
        r = p.cmd("STAT")
        expect(r == b"+OK 1 %d" % len(want), "STAT after the bad commands: %r" % r)
        p.cmd("RETR 1")
        expect(unstuff(p.multi()) == want, "RETR after the bad commands differs")
        p.cmd("QUIT")
        p.rest()
        expect(len(maildir_files()) == 1, "the message is gone: %r" % maildir_files())


@case
def too_many_bad_before_login(f):
    """yubin-pop3d(8): 20 refused commands end the session."""
    p = f.pop()
    for i in range(19):
        p.cmd("FROB%d" % i, ok=False)
    expect("IMPLEMENTATION yubin" in p.capa(), "the session ended before 20 bad commands")
    p.cmd("FROB19", ok=False)
    rest = p.rest()
    expect(b"+OK" not in rest, "answered after the 20th bad command: %r" % rest)


@case
def too_many_bad_after_login(f):
    """yubin-pop3mbox: the 21st bad command ends the session."""
    deliver("toomany")
    p = f.pop()
    p.login()
    for i in range(20):
        p.cmd("RETR %d" % (i + 5), ok=False)
    p.cmd("NOOP")
    p.send(b"FROB\r\n")
    rest = p.rest()
    expect(rest.startswith(b"-ERR") and b"+OK" not in rest, "the 21st bad command: %r" % rest)
    expect(len(maildir_files()) == 1, "the message is gone: %r" % maildir_files())


@case
def three_failed_logins_end_session(f):
    p = f.pop()
    for i in range(2):
        p.cmd("USER demo")
        r = p.cmd("PASS wrong-%d" % i, ok=False)
        expect(r.startswith(b"-ERR [AUTH]"), "wrong password %d: %r" % (i, r))
        expect("IMPLEMENTATION yubin" in p.capa(), "the session ended after %d failures" % (i + 1))
    p.cmd("AUTH PLAIN " + base64.b64encode(b"\0demo\0wrong-2").decode(), ok=False)
    rest = p.rest()
    expect(b"+OK" not in rest, "answered after the third failure: %r" % rest)
    expect(wait_for(lambda: "reason=auth-failures" in INST.log("pop3"), 5), "no quit reason=auth-failures logged")


@case
def auth_plain(f):
    """RFC 5034: AUTH PLAIN with an initial response, with a continuation,
    cancelled with "*", and an authorization identity other than the
    login refused."""
    b64 = lambda x: base64.b64encode(x).decode()
    pw = INST.demo_password.encode()
    p = f.pop()
    r = p.cmd("AUTH PLAIN " + b64(b"other\0demo\0" + pw), ok=False)
    expect(r.startswith(b"-ERR [AUTH]"), "authzid other than the login: %r" % r)
    p.send(b"AUTH PLAIN\r\n")
    expect(p.line() == b"+ ", "no continuation")
    p.cmd("*", ok=False)
    p.cmd("AUTH PLAIN !!!notbase64", ok=False)
    p.send(b"AUTH PLAIN\r\n")
    expect(p.line() == b"+ ", "no continuation")
    p.cmd(b64(b"demo\0demo\0" + pw))
    p.cmd("STAT")
    p.cmd("QUIT")
    p.rest()
    p = f.pop(INST.pop3s_port, implicit=True)
    p.cmd("AUTH PLAIN " + b64(b"\0demo\0" + pw))
    p.cmd("NOOP")
    expect(wait_for(lambda: re.search(r"pop3d: login ip=127\.0\.0\.1 user=demo .*tls=(?!no)", INST.log("pop3s")), 5),
           "no TLS login line in log/pop3s: %r" % INST.log("pop3s")[-500:])


@case
def idle_timeout_ends_session(f):
    """POP3TIMEOUT (seconds of silence) ends the session, before and
    after the login (here 1s, on a socketpair)."""
    deliver("idle")
    p = remote_pop3d(f, "127.0.0.1", {"POP3TIMEOUT": "1"})
    t = time.monotonic()
    rest = p.rest(8)
    expect(rest.startswith(b"-ERR") and time.monotonic() - t < 6, "before login: %r after %.1fs" % (rest, time.monotonic() - t))
    p = remote_pop3d(f, "127.0.0.1", {"POP3TIMEOUT": "1"})
    p.login()
    t = time.monotonic()
    rest = p.rest(8)
    expect(b"+OK" not in rest and time.monotonic() - t < 6, "after login: %r after %.1fs" % (rest, time.monotonic() - t))
    expect(len(maildir_files()) == 1, "the message is gone: %r" % maildir_files())
    log = remote_logs(f)
    expect(log.count("reason=timeout") == 2, "two quit reason=timeout lines: %r" % log[-600:])

# ---------------------------------------------------------------- logging, banwatch


@case
def banwatch_follows_pop3_logs(f):
    rc, out = INST.banctl("stats")
    expect(rc == 0, "yubin-banctl stats: %d %s" % (rc, out))
    for s in ("pop3", "pop3s"):
        expect(re.search(r"^source \S*log/%s/current " % s, out, re.M), "banwatch does not follow log/%s/current:\n%s" % (s, out))


def wrong_password_counted(p, log):
    """A wrong password on p (connected): -ERR [AUTH], an auth-fail line
    in log, one more failure seen (ignored: loopback) by yubin-auth."""
    # earlier cases' failures may still be on their way to banwatch
    before, prev = None, None
    for _ in range(50):
        before = int(INST.jail_counts()["ignored"])
        if before == prev:
            break
        prev = before
        time.sleep(0.1)
    n = INST.log(log).count("pop3d: auth-fail ip=127.0.0.1 user=demo")
    p.cmd("USER demo")
    r = p.cmd("PASS not-the-password", ok=False)
    expect(r.startswith(b"-ERR [AUTH]"), "wrong password: %r" % r)
    expect(wait_for(lambda: INST.log(log).count("pop3d: auth-fail ip=127.0.0.1 user=demo") > n, 5),
           "no 'pop3d: auth-fail ip=127.0.0.1 user=demo' in log/%s: %r" % (log, INST.log(log)[-500:]))
    expect(wait_for(lambda: int(INST.jail_counts()["ignored"]) > before, 5),
           "banwatch's yubin-auth did not count it: %r" % INST.jail_counts())
    time.sleep(0.2)
    got = int(INST.jail_counts()["ignored"]) - before
    expect(got == 1, "one wrong password counted %d times" % got)
    expect("not-the-password" not in INST.log(log), "the password is in the log")


@case
def wrong_password_logged_and_counted_pop3(f):
    wrong_password_counted(f.pop(), "pop3")


@case
def wrong_password_logged_and_counted_pop3s(f):
    wrong_password_counted(f.pop(INST.pop3s_port, implicit=True), "pop3s")

# -- a client that is not on loopback: yubin-pop3d over a socketpair


def yubinp():
    if not is_root():
        return None
    pw = pwd.getpwnam("yubinp")
    return pw.pw_uid, pw.pw_gid


def remote_pop3d(f, ip, extra=None, stderr=None):
    """The instance's yubin-pop3d on a socketpair, as tcpserver would run
    it for a client at ip; returns a Pop on our end."""
    ours, theirs = socket.socketpair()
    ug = yubinp()
    args = [INST.path("bin", "yubin-pop3d")] + (["-u", str(ug[0]), "-g", str(ug[1])] if ug else [])
    env = minimal_env({"YUBIN_ROOT": INST.dir, "TCPREMOTEIP": ip, "TCPREMOTEPORT": "40000",
                       "TCPLOCALIP": INST.ip, "TCPLOCALPORT": str(INST.pop3_port),
                       "TLSD": "", "TLSDTIMEOUT": "10000", "POP3TIMEOUT": "60"})
    env.update(extra or {})
    if stderr is None:
        stderr = open(os.path.join(f.tmp, "pop3d.%d.log" % len(f.procs)), "wb")
    p = subprocess.Popen(args, stdin=theirs.fileno(), stdout=theirs.fileno(), stderr=stderr,
                         env=env, cwd=INST.dir)
    theirs.close()
    f.procs.append(p)
    c = Pop(sock=ours)
    f.clients.append(c)
    return c


def remote_logs(f):
    out = ""
    for n in sorted(os.listdir(f.tmp)):
        if n.startswith("pop3d."):
            with open(os.path.join(f.tmp, n), "rb") as fh:
                out += fh.read().decode(errors="replace")
    return out


@case
def nonloopback_cleartext_refused(f):
    p = remote_pop3d(f, "192.0.2.1")
    caps = p.capa()
    expect("USER" not in caps and not any(c.startswith("SASL") for c in caps),
           "CAPA offers a login before TLS: %r" % caps)
    expect("STLS" in caps, "no STLS in CAPA: %r" % caps)
    for line in ("USER demo", "PASS " + INST.demo_password,
                 "AUTH PLAIN " + base64.b64encode(("\0demo\0" + INST.demo_password).encode()).decode()):
        r = p.cmd(line, ok=False)
        expect(r.startswith(b"-ERR [AUTH]"), "%s: %r" % (line.split()[0], r))
    p.cmd("AUTH PLAIN", ok=False)
    # over TLS the same client may log in
    p.stls()
    caps = p.capa()
    expect("USER" in caps and "SASL PLAIN" in caps, "no USER/SASL over TLS: %r" % caps)
    p.login()
    p.cmd("STAT")
    p.cmd("QUIT")
    p.rest()
    log = remote_logs(f)
    expect("login ip=192.0.2.1 user=demo" in log, "no login line: %r" % log[-500:])
    expect(not sanitizer_report(log), sanitizer_report(log))


@case
def nonloopback_cleartextlogin_allowed(f):
    path, data = deliver("clear")
    p = remote_pop3d(f, "192.0.2.2", {"CLEARTEXTLOGIN": "1"})
    caps = p.capa()
    expect("USER" in caps and "SASL PLAIN" in caps, "CLEARTEXTLOGIN=1: CAPA %r" % caps)
    p.login()
    p.cmd("RETR 1")
    got = unstuff(p.multi())
    expect(got == wire(data), "RETR " + diff(wire(data), got))
    p.cmd("QUIT")
    p.rest()
    log = remote_logs(f)
    expect(not sanitizer_report(log), sanitizer_report(log))


@case
def nonloopback_guessing_banned(f):
    """A non-loopback address guessing passwords: its auth-fail lines go to
    the pop3 service's own log (through the pipe to its s6-log), the
    shipped banwatch configuration bans it after 5."""
    ip = "192.0.2.77"
    pid = INST.service_pid("pop3")
    expect(pid, "pop3 service not up: %s" % INST.svstat("pop3"))
    f.unban.append(ip)
    # fd 2 of the pop3 service's tcpserver is the pipe to its logger
    with open("/proc/%d/fd/2" % pid, "wb", buffering=0) as logpipe:
        for session, guesses in ((0, 3), (1, 2)):
            p = remote_pop3d(f, ip, {"CLEARTEXTLOGIN": "1"}, stderr=logpipe)
            for i in range(guesses):
                p.cmd("USER demo")
                r = p.cmd("PASS guess-%d-%d" % (session, i), ok=False)
                expect(r.startswith(b"-ERR [AUTH]"), "guess: %r" % r)
            if guesses == 3:
                p.rest()
            else:
                p.cmd("QUIT")
                p.rest()
    expect(wait_for(lambda: INST.log("pop3").count("auth-fail ip=%s" % ip) == 5, 5),
           "5 auth-fail lines for %s in log/pop3: %r" % (ip, INST.log("pop3")[-600:]))
    banned = wait_for(lambda: re.search(r"^%s\S* jail=yubin-auth " % re.escape(ip), INST.banctl("list")[1], re.M), 10)
    expect(banned, "not banned: list %r, jails %r" % (INST.banctl("list")[1], INST.jail_counts()))

# ---------------------------------------------------------------- privileges


def session_processes(port):
    """The yubin-pop3d monitor serving the connection from our local port
    (TCPREMOTEPORT in its environment), and its children."""
    for p in os.listdir("/proc"):
        if not p.isdigit() or proc_exe(int(p)) != "yubin-pop3d":
            continue
        try:
            with open("/proc/%s/environ" % p, "rb") as fh:
                env = fh.read().split(b"\0")
        except OSError:
            continue
        if b"TCPREMOTEPORT=%d" % port not in env:
            continue
        pid = int(p)
        if proc_exe(int(proc_status(pid)["PPid"][0])) == "yubin-pop3d":
            continue        # the pre-login child: we want its parent
        return pid, proc_children(pid)
    return None, []


@case
def processes_run_as_they_should(f):
    deliver("priv")
    owner = os.stat(INST.maildir())
    ug = yubinp() or (os.getuid(), os.getgid())
    p = f.pop()
    mon, kids = session_processes(p.port)
    expect(mon, "no yubin-pop3d monitor for port %d" % p.port)
    u, g, cap = uids(mon)
    expect(u == [0] * 4 or not is_root(), "monitor uids %r (want root)" % u)
    expect(len(kids) == 1 and proc_exe(kids[0]) == "yubin-pop3d", "before login: children %r" % kids)
    u, g, cap = uids(kids[0])
    expect(u == [ug[0]] * 4 and g == [ug[1]] * 4, "pre-login uids %r gids %r, want %r" % (u, g, ug))
    expect(cap == 0, "pre-login has capabilities %x" % cap)
    p.login()
    p.cmd("STAT")
    mon2, kids = session_processes(p.port)
    expect(mon2 == mon, "monitor changed %r -> %r" % (mon, mon2))
    mbox = [k for k in kids if proc_exe(k) == "yubin-pop3mbox"]
    pre = [k for k in kids if proc_exe(k) == "yubin-pop3d"]
    expect(len(mbox) == 1, "after login: children %r" % [(k, proc_exe(k)) for k in kids])
    u, g, cap = uids(mbox[0])
    expect(u == [owner.st_uid] * 4 and g == [owner.st_gid] * 4,
           "yubin-pop3mbox uids %r gids %r, want the Maildir's owner %d:%d" % (u, g, owner.st_uid, owner.st_gid))
    expect(cap == 0, "yubin-pop3mbox has capabilities %x" % cap)
    expect(os.readlink("/proc/%d/cwd" % mbox[0]) == os.path.dirname(INST.maildir()),
           "yubin-pop3mbox runs in %s" % os.readlink("/proc/%d/cwd" % mbox[0]))
    for k in pre:
        u, g, cap = uids(k)
        expect(u == [ug[0]] * 4, "pre-login after login: uids %r" % u)
    p.cmd("QUIT")
    p.rest()
    expect(wait_for(lambda: yubintest.proc_gone(mon), 5),
           "the monitor outlived the session")

# ---------------------------------------------------------------- main


def main():
    global INST, SANITIZER
    with Instance() as inst:
        INST = inst
        SANITIZER = sanitizer_build()
        if SANITIZER:
            info("sanitizer build: messages are put into the Maildir, not sent over SMTP")
        try:
            run_cases(CASES, Fix, timed=bool(os.environ.get("YUBIN_TIMED")))
        finally:
            bad = []
            for s in ("pop3", "pop3s"):
                for l in inst.log(s).splitlines():
                    if sanitizer_report(l):
                        bad.append("log/%s: %s" % (s, l.strip()))
            check("pop3-logs-no-sanitizer-reports", not bad, "\n".join(bad[:20]))


run(main)
