#!/usr/bin/env python3
"""End to end IMAP (issue 11): a real yubin instance (package/setup, s6,
free loopback ports) with its imap (STARTTLS) and imaps services, driven by
real clients: python imaplib, curl, mbsync (isync) and fetchmail.

Checks, each a user-visible assertion:
  - imaplib over STARTTLS and over imaps: LOGIN, AUTHENTICATE PLAIN (with
    SASL-IR and with a continuation), LIST with the SPECIAL-USE folders,
    SELECT, FETCH of a message delivered over SMTP (BODY[] is the Maildir
    file with LF as CRLF, RFC822.SIZE its length), STORE \\Seen (the file
    name gets :2,S), COPY to Archive (COPYUID), MOVE, EXPUNGE (the file
    goes), APPEND (APPENDUID) then SEARCH finds it, STATUS counts,
    CREATE/RENAME/DELETE with the Maildir++ directories checked on disk;
  - IDLE announces a delivery within a second of its landing in new/;
  - two sessions on one mailbox see each other's flag changes and
    expunges (NOOP and IDLE);
  - curl imap:// (STARTTLS, --ssl-reqd) and imaps://: LIST and
    INBOX;UID=1, byte for byte;
  - mbsync: a mailbox with folders synced to a local Maildir byte for
    byte (imaps), a change on each side (a flag and a new message and
    folder locally, an expunge on the server) synced both ways (STARTTLS),
    a third run changes nothing on either side;
  - fetchmail over IMAP (imaps and STARTTLS, --mda, keep and not keep);
  - STARTTLS injection gets no answer, in plaintext or over TLS;
  - path-traversal names refused, nothing created outside the Maildir;
  - the processes: the monitor root, the pre-login child yubinp, the mail
    part (yubin-imapmail) the Maildir's owner;
  - a wrong password: NO [AUTHENTICATIONFAILED], an auth-fail line in
    log/imap(s), counted by banwatch's yubin-auth jail;
  - a non-loopback client (yubin-imapd over a socketpair with
    TCPREMOTEIP=192.0.2.x): LOGINDISABLED and NO [PRIVACYREQUIRED] before
    STARTTLS, allowed with CLEARTEXTLOGIN=1;
  - bad input over the network (unbalanced parentheses, a literal over
    the limit, a 100 KB line, NUL bytes) gets BAD/NO and the session goes
    on; 20 BADs end it with * BYE, also when the client pipelined more
    (the BYE must not be lost to a RST);
  - a 3 MB message through TLS, whole and partial; three sessions
    APPENDing while mail arrives (distinct UIDs, a watching session sees
    them all); yubin-pop3d beside IMAP on one Maildir (a POP3 DELE is an
    EXPUNGE, UIDs and UIDLs stay); the autologout before and after the
    login; a client vanishing in IDLE over TLS or in an APPEND literal
    (the processes end, no tmp/ file stays).

The unit-level session test (yubin-imapmail on a socketpair, every
command's exact bytes) is tests/imapd/test_imapmail; this file goes
through the instance and real clients.

One instance for the whole file; each case starts with an emptied
Maildir (so the first login of each case makes the special-use folders and
UIDs start at 1).  With a sanitizer build (tests/run's second pass) the
messages are put into the Maildir as yubin-local names them instead of
coming over SMTP: the setuid yubin-queue cannot run LeakSanitizer.
Prints "PASS name" or "FAIL name: why" per case.  YUBIN_BIN selects the
binaries (default build/bin)."""

import base64
import imaplib
import os
import pwd
import re
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
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
SPECIAL = {"Sent": b"\\Sent", "Drafts": b"\\Drafts", "Trash": b"\\Trash", "Junk": b"\\Junk",
           "Archive": b"\\Archive"}

# ---------------------------------------------------------------- messages

_serial = [0]


def message(tag, subject=None):
    """A message (CRLF, as SMTP carries it) with a marker to find it by."""
    _serial[0] += 1
    marker = ("imap-%s-%d-%d" % (tag, os.getpid(), _serial[0])).encode()
    lines = [
        b"From: Alice <alice@example.org>",
        b"To: demo@" + INST.domain.encode(),
        b"Subject: " + (subject or marker),
        b"Date: Tue, 01 Jul 2003 10:52:37 +0200",
        b"Message-ID: <" + marker + b"@example.org>",
        b"MIME-Version: 1.0",
        b"Content-Type: text/plain; charset=utf-8",
        b"Content-Transfer-Encoding: 8bit",
        b"",
        b"Hello demo,",
        b".a line that starts with a dot",
        b".",
        b"   leading and trailing spaces   ",
        "utf-8: \u90f5\u4fbf \u2709".encode(),
        b"From the start of a line",
        b"x" * 998,
        b"",
        b"last line " + marker,
    ]
    return marker, b"\r\n".join(lines) + b"\r\n"


def crlf(data):
    """What IMAP sends for the bytes of a file: every bare LF as CRLF."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


def sanitizer_build():
    return yubintest.sanitizer_build(INST.bin)


def folder_dir(folder=""):
    """The Maildir++ directory of an IMAP mailbox name."""
    md = INST.maildir()
    return md if folder in ("", "INBOX") else os.path.join(md, "." + folder)


def folder_files(folder=""):
    """Message files (paths) of a mailbox, new/ and cur/."""
    out = []
    d = folder_dir(folder)
    for sub in ("new", "cur"):
        try:
            out += [os.path.join(d, sub, n) for n in os.listdir(os.path.join(d, sub)) if not n.startswith(".")]
        except OSError:
            pass
    return sorted(out)


def find_unique(unique, folder=""):
    """The current path of the message with that unique name, or None."""
    for p in folder_files(folder):
        if os.path.basename(p).split(":2,")[0] == unique:
            return p
    return None


def unique_of(path):
    return os.path.basename(path).split(":2,")[0]


def flags_of(path):
    n = os.path.basename(path)
    return n.split(":2,", 1)[1] if ":2," in n else ""


def put(data, folder="", sub="new"):
    """A message file put into a mailbox as yubin-local names it (tmp/,
    then renamed), owned by the Maildir's owner.  Returns its path."""
    d = folder_dir(folder)
    st = os.stat(INST.maildir())
    _serial[0] += 1
    t = time.time()
    name = "%d.M%dP%dQ%d.imaptest,S=%d,W=%d" % (int(t), int(t * 1e6) % 1000000, os.getpid(), _serial[0],
                                                 len(data), len(crlf(data)))
    tmp = os.path.join(d, "tmp", name)
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.chown(tmp, st.st_uid, st.st_gid)
    os.chmod(tmp, 0o600)
    path = os.path.join(d, sub, name + (":2," if sub == "cur" else ""))
    os.rename(tmp, path)
    return path


def deliver(tag="m", subject=None, wait=True):
    """Send one message over SMTP; wait for its Maildir file.  Returns
    (path, bytes of the file).  (A sanitizer build: the same message put
    into new/ as yubin-local would deliver it.)"""
    marker, msg = message(tag, subject)
    if SANITIZER:
        data = (b"Return-Path: <alice@example.org>\nDelivered-To: demo@" + INST.domain.encode() + b"\n"
                + msg.replace(b"\r\n", b"\n"))
        return put(data), data
    ok, r = send(INST, "alice@example.org", ["demo@" + INST.domain], msg, mail_options=["BODY=8BITMIME"])
    expect(ok and not r, "SMTP: %r" % (r,))
    if not wait:
        return marker, None
    found = []

    def seen():
        found[:] = [p for p in folder_files() if marker in INST.read(p)]
        return found
    expect(wait_for(seen, 20, 0.02), "%s not delivered to %s" % (marker, INST.maildir()))
    data = INST.read(found[0])
    expect(b"\r" not in data, "a CR in the Maildir file")
    return found[0], data


# ---------------------------------------------------------------- a raw client


class Imap:
    """A byte-exact IMAP client over a socket (TCP or a socketpair end)."""

    def __init__(self, port=None, implicit=False, sock=None, greet=True):
        self.s = sock if sock is not None else socket.create_connection((INST.ip, port), timeout=IO)
        self.s.settimeout(IO)
        self.port = self.s.getsockname()[1] if sock is None else None
        if implicit:
            self.s = tls_client_ctx().wrap_socket(self.s)
        self.buf = b""
        self.greeting = b""
        if greet:
            self.greeting = self.line()
            expect(self.greeting.startswith(b"* OK"), "greeting %r" % self.greeting)

    def send(self, data):
        self.s.sendall(data.encode() if isinstance(data, str) else data)

    def _fill(self, timeout):
        self.s.settimeout(timeout)
        try:
            d = self.s.recv(65536)
        except socket.timeout:
            raise Failure("no answer in %ss; pending %r" % (timeout, self.buf[:300]))
        except (OSError, ssl.SSLError) as e:
            raise Failure("read: %s; pending %r" % (e, self.buf[:300]))
        finally:
            self.s.settimeout(IO)
        if not d:
            raise Failure("connection closed; pending %r" % self.buf[:300])
        self.buf += d

    def line(self, timeout=IO):
        """One line, without its CRLF."""
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            self._fill(max(0.01, end - time.monotonic()))
        l, self.buf = self.buf.split(b"\n", 1)
        expect(l.endswith(b"\r"), "line without CRLF: %r" % l[:200])
        return l[:-1]

    def response(self, timeout=IO):
        """One response, its literals inline."""
        r = self.line(timeout)
        while True:
            m = re.search(rb"\{(\d+)\}$", r)
            if not m:
                return r
            n = int(m.group(1))
            while len(self.buf) < n:
                self._fill(timeout)
            r += b"\r\n" + self.buf[:n]
            self.buf = self.buf[n:]
            r += self.line(timeout)

    def poll(self, timeout):
        """A response if one comes within timeout seconds, else None."""
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                return None
            pending = isinstance(self.s, ssl.SSLSocket) and self.s.pending()
            if not pending and not select.select([self.s], [], [], left)[0]:
                return None
            self._fill(IO)
        return self.response()

    def cmd(self, tag, text, want=b"OK"):
        """Send 'tag text'; (untagged responses, tagged line); the tagged
        status must be want (None: any)."""
        t = tag.encode() if isinstance(tag, str) else tag
        self.send(t + b" " + (text.encode() if isinstance(text, str) else text) + b"\r\n")
        out = []
        while True:
            r = self.response()
            if r.startswith(t + b" "):
                shown = text if len(text) < 100 else text[:80]
                if want is not None:
                    expect(r.startswith(t + b" " + want), "%r %r: want %s, got %r (untagged %r)"
                           % (t, shown, want.decode(), r, out[-5:]))
                return out, r
            out.append(r)
            expect(len(out) < 100000, "no tagged answer to %r" % t)

    def login(self, tag=b"l1"):
        return self.cmd(tag, "LOGIN demo " + quote(INST.demo_password))

    def starttls(self):
        self.cmd(b"s1", "STARTTLS")
        expect(not self.buf, "bytes after OK to STARTTLS: %r" % self.buf)
        self.s = tls_client_ctx().wrap_socket(self.s)

    def rest(self, timeout=IO):
        """Everything until the server closes the connection."""
        data, self.buf = self.buf, b""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.s.settimeout(max(0.01, end - time.monotonic()))
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


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

# ---------------------------------------------------------------- fixture


def imapmail_procs():
    """yubin-imapmail processes of this instance (cwd the demo home)."""
    home = os.path.dirname(INST.maildir())
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit() and proc_exe(int(p)) == "yubin-imapmail":
            try:
                if os.readlink("/proc/%s/cwd" % p) == home:
                    out.append(int(p))
            except OSError:
                pass
    return out


def reset_maildir():
    """An empty Maildir, no folders, no index, as before a first login."""
    md = INST.maildir()
    st = os.stat(md)
    for n in os.listdir(md):
        p = os.path.join(md, n)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        else:
            os.unlink(p)
    for sub in ("cur", "new", "tmp"):
        os.mkdir(os.path.join(md, sub), 0o700)
        os.chown(os.path.join(md, sub), st.st_uid, st.st_gid)


class Fix:
    """Per case: an empty Maildir, a scratch directory, and every client
    and process the case opens, closed and killed afterwards."""

    def __init__(self):
        self.inst = INST
        # the sessions of the last case must be gone before the Maildir goes
        wait_for(lambda: not imapmail_procs(), 5, 0.02)
        reset_maildir()
        self.tmp = tempfile.mkdtemp(prefix="imapt-")
        os.chmod(self.tmp, 0o755)
        self.clients = []
        self.procs = []
        self.unban = []

    def raw(self, port=None, implicit=False, **kw):
        c = Imap(port or INST.imap_port, implicit, **kw)
        self.clients.append(c)
        return c

    def imaplib(self, mode="starttls", login=True):
        """imaplib over imap+STARTTLS ("starttls"), imaps ("imaps") or
        plaintext on loopback ("plain"); logged in with LOGIN."""
        if mode == "imaps":
            c = imaplib.IMAP4_SSL(INST.ip, INST.imaps_port, ssl_context=tls_client_ctx(), timeout=IO)
        else:
            c = imaplib.IMAP4(INST.ip, INST.imap_port, timeout=IO)
        self.clients.append(c)
        if mode == "starttls":
            expect("STARTTLS" in c.capabilities, "no STARTTLS in %r" % (c.capabilities,))
            ok(c.starttls(ssl_context=tls_client_ctx()), "STARTTLS")
            expect("STARTTLS" not in c.capabilities, "STARTTLS still offered over TLS: %r" % (c.capabilities,))
        elif mode == "imaps":
            expect("STARTTLS" not in c.capabilities, "STARTTLS offered on imaps: %r" % (c.capabilities,))
        if login:
            ok(c.login("demo", INST.demo_password), "LOGIN")
        return c

    def cleanup(self):
        for c in self.clients:
            try:
                if isinstance(c, imaplib.IMAP4):
                    c.shutdown()
                else:
                    c.close()
            except Exception:
                pass
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
        for a in self.unban:
            INST.banctl("unban", a)
        shutil.rmtree(self.tmp, ignore_errors=True)


def ok(typ_data, what=""):
    typ, data = typ_data
    expect(typ == "OK", "%s: %r %r" % (what, typ, data))
    return data


def untagged(c, name):
    """And forget them: imaplib's collected untagged responses of name."""
    return c.untagged_responses.pop(name, [])


def fetch_parts(data):
    """imaplib FETCH data of one message: (the non-literal text, {item: literal})."""
    text, lits = b"", {}
    for item in data:
        if isinstance(item, tuple):
            head, lit = item
            m = re.search(rb"([A-Z0-9.\[\]<>]+) \{\d+\}$", head)
            if m:
                lits[m.group(1)] = lit
            text += head
        elif item is not None:
            text += item
    return text, lits


def list_map(c, *args):
    """LIST through imaplib: {name: set of attributes}."""
    untagged(c, "LIST")
    typ, data = c._simple_command("LIST", *args)
    lines = untagged(c, "LIST")
    expect(typ == "OK", "LIST %r: %r %r" % (args, typ, data))
    out = {}
    for l in lines:
        if isinstance(l, tuple):        # a name sent as a literal
            l = l[0] + l[1]
        m = re.match(rb'\(([^)]*)\) (?:"(?:\\.|[^"])*"|NIL) (.*)$', l or b"")
        expect(m, "LIST line %r" % l)
        name = m.group(2)
        if name.startswith(b'"'):
            name = re.sub(rb"\\(.)", rb"\1", name[1:-1])
        out[name.decode()] = set(m.group(1).split())
    return out

# ---------------------------------------------------------------- imaplib end to end


def imaplib_flow(f, mode):
    path, data = deliver("e2e-" + mode)
    unique = unique_of(path)
    want = crlf(data)
    c = f.imaplib(mode, login=False)
    for cap in ("IMAP4REV1", "AUTH=PLAIN", "SASL-IR", "IDLE", "LITERAL+"):
        expect(cap in c.capabilities, "%s not in %r" % (cap, c.capabilities))
    expect("LOGINDISABLED" not in c.capabilities, "LOGINDISABLED over TLS: %r" % (c.capabilities,))
    typ, d = c.login("demo", INST.demo_password)
    expect(typ == "OK" and b"[CAPABILITY " in d[0], "LOGIN: %r %r" % (typ, d))
    for cap in (b"UIDPLUS", b"MOVE", b"SPECIAL-USE", b"IDLE", b"NAMESPACE"):
        expect(cap in d[0].split(b"]")[0].split(), "%s not in the login's capabilities %r" % (cap, d[0]))
    log = "imap" if mode != "imaps" else "imaps"
    expect(wait_for(lambda: re.search(r"imapd: login ip=127\.0\.0\.1 user=demo .*tls=(?!no)", INST.log(log)), 5),
           "no login line with TLS in log/%s: %r" % (log, INST.log(log)[-600:]))

    # LIST: the special-use folders of the first login, on disk too
    lm = list_map(c, '""', '"*"', "RETURN", "(SPECIAL-USE)")
    expect("INBOX" in lm, "no INBOX in LIST: %r" % lm)
    for name, attr in SPECIAL.items():
        expect(name in lm and attr in lm[name], "LIST: %s without %s: %r" % (name, attr.decode(), lm))
        expect(os.path.isdir(os.path.join(folder_dir(name), "cur")), "no %s/cur on disk" % folder_dir(name))
    lm = list_map(c, '""', '"%"')
    expect(set(SPECIAL) | {"INBOX"} <= set(lm), "LIST %%: %r" % lm)

    # SELECT, FETCH byte for byte
    typ, d = c.select("INBOX")
    expect(typ == "OK" and d == [b"1"], "SELECT INBOX: %r %r" % (typ, d))
    expect(untagged(c, "UIDVALIDITY"), "no UIDVALIDITY")
    typ, d = c.fetch("1", "(UID RFC822.SIZE FLAGS BODY.PEEK[])")
    expect(typ == "OK", "FETCH: %r %r" % (typ, d))
    text, lits = fetch_parts(d)
    body = lits.get(b"BODY[]")
    expect(body is not None, "no BODY[] in %r" % d)
    expect(body == want, "BODY[] is not the Maildir file with CRLF: " + diff(want, body))
    m = re.search(rb"RFC822\.SIZE (\d+)", text)
    expect(m and int(m.group(1)) == len(body), "RFC822.SIZE %r, BODY[] has %d bytes" % (m and m.group(1), len(body)))
    m = re.search(rb"UID (\d+)", text)
    expect(m, "no UID in %r" % text)
    uid = m.group(1).decode()
    p = find_unique(unique)
    expect(p and "S" not in flags_of(p), "BODY.PEEK set \\Seen: %r" % p)

    # STORE \Seen: the file name gets :2,S
    typ, d = c.store("1", "+FLAGS", "(\\Seen)")
    expect(typ == "OK" and any(b"\\Seen" in x for x in d if x), "STORE: %r %r" % (typ, d))
    p = find_unique(unique)
    expect(p and p.endswith(":2,S") and "/cur/" in p, "after STORE \\Seen the file is %r" % p)

    # COPY to Archive with COPYUID
    typ, d = c.copy("1", "Archive")
    expect(typ == "OK" and re.search(rb"\[COPYUID \d+ %s \d+\]" % uid.encode(), d[0]), "COPY: %r %r" % (typ, d))
    arch = folder_files("Archive")
    expect(len(arch) == 1 and crlf(INST.read(arch[0])) == want and flags_of(arch[0]) == "S",
           "Archive holds %r" % arch)
    expect(find_unique(unique), "COPY removed the original")

    # MOVE to Trash: gone from INBOX, in Trash
    typ, d = c.uid("MOVE", uid, "Trash")
    expect(typ == "OK", "UID MOVE: %r %r" % (typ, d))
    expect(untagged(c, "EXPUNGE") == [b"1"], "no * 1 EXPUNGE after MOVE")
    trash = folder_files("Trash")
    expect(not folder_files(), "INBOX still holds %r" % folder_files())
    expect(len(trash) == 1 and crlf(INST.read(trash[0])) == want, "Trash holds %r" % trash)

    # EXPUNGE in Archive removes the file
    typ, d = c.select("Archive")
    expect(typ == "OK" and d == [b"1"], "SELECT Archive %r %r" % (typ, d))
    ok(c.store("1", "+FLAGS.SILENT", "(\\Deleted)"), "STORE \\Deleted")
    expect(all("T" in flags_of(x) for x in folder_files("Archive")), "\\Deleted not in the name: %r" % folder_files("Archive"))
    typ, d = c.expunge()
    expect(typ == "OK" and d == [b"1"], "EXPUNGE %r %r" % (typ, d))
    expect(not folder_files("Archive"), "after EXPUNGE Archive holds %r" % folder_files("Archive"))

    # APPEND then SEARCH finds it
    word = "zanzibar%d" % os.getpid()
    marker, msg = message("append", ("Subject about %s" % word).encode())
    typ, d = c.append("INBOX", "(\\Flagged)", imaplib.Time2Internaldate(time.time()), msg)
    expect(typ == "OK" and re.search(rb"\[APPENDUID \d+ \d+\]", d[0]), "APPEND: %r %r" % (typ, d))
    files = folder_files()
    expect(len(files) == 1 and crlf(INST.read(files[0])) == msg and "F" in flags_of(files[0]),
           "after APPEND INBOX holds %r" % files)
    typ, d = c.select("INBOX")
    expect(typ == "OK" and d == [b"1"], "SELECT INBOX %r %r" % (typ, d))
    typ, d = c.search(None, "SUBJECT", word)
    expect(typ == "OK" and d == [b"1"], "SEARCH SUBJECT %s: %r %r" % (word, typ, d))
    typ, d = c.search(None, "BODY", marker.decode())
    expect(typ == "OK" and d == [b"1"], "SEARCH BODY: %r %r" % (typ, d))
    typ, d = c.search(None, "SUBJECT", "no-such-word-anywhere")
    expect(typ == "OK" and d == [b""], "SEARCH for nothing: %r %r" % (typ, d))
    ok(c.close(), "CLOSE")

    # STATUS counts
    for box, want_st in (("INBOX", {"MESSAGES": 1, "UNSEEN": 1}), ("Trash", {"MESSAGES": 1, "UNSEEN": 0}),
                         ("Archive", {"MESSAGES": 0, "UNSEEN": 0}), ("Sent", {"MESSAGES": 0})):
        typ, d = c.status(box, "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY)")
        expect(typ == "OK", "STATUS %s: %r %r" % (box, typ, d))
        got = dict((k.decode(), int(v)) for k, v in re.findall(rb"([A-Z]+) (\d+)", d[0].split(b"(", 1)[1]))
        for k, v in want_st.items():
            expect(got.get(k) == v, "STATUS %s: %s is %r, want %d (%r)" % (box, k, got.get(k), v, d))

    # CREATE/RENAME/DELETE, the Maildir++ directories on disk
    md = INST.maildir()
    ok(c.create("Projects.2024"), "CREATE Projects.2024")
    for n in (".Projects", ".Projects.2024"):
        for sub in ("cur", "new", "tmp"):
            expect(os.path.isdir(os.path.join(md, n, sub)), "no %s/%s after CREATE" % (n, sub))
        expect(os.path.isfile(os.path.join(md, n, "maildirfolder")), "no %s/maildirfolder" % n)
    expect(os.stat(os.path.join(md, ".Projects.2024")).st_uid == os.stat(md).st_uid, "the folder is not the user's")
    ok(c.append("Projects.2024", None, None, msg), "APPEND Projects.2024")
    ok(c.rename("Projects", "Old"), "RENAME Projects Old")
    expect(os.path.isdir(os.path.join(md, ".Old")) and os.path.isdir(os.path.join(md, ".Old.2024")),
           "RENAME: %r" % sorted(os.listdir(md)))
    expect(not [n for n in os.listdir(md) if n.startswith(".Projects")], "RENAME left %r" % sorted(os.listdir(md)))
    expect(len(folder_files("Old.2024")) == 1, "the message did not move with its folder")
    lm = list_map(c, '""', '"Old*"')
    expect(set(lm) == {"Old", "Old.2024"}, "LIST Old*: %r" % lm)
    ok(c.delete("Old.2024"), "DELETE Old.2024")
    expect(not os.path.exists(os.path.join(md, ".Old.2024")), ".Old.2024 still on disk")
    ok(c.delete("Old"), "DELETE Old")
    expect(not [n for n in os.listdir(md) if n.startswith(".Old")], "DELETE left %r" % sorted(os.listdir(md)))
    expect(not [n for n in os.listdir(md) if n.startswith("..")], "DELETE left %r" % sorted(os.listdir(md)))
    expect(list_map(c, '""', '"Old*"') == {}, "LIST after DELETE")
    typ, d = c.logout()
    expect(typ == "BYE", "LOGOUT: %r %r" % (typ, d))


@case
def imaplib_starttls_end_to_end(f):
    imaplib_flow(f, "starttls")


@case
def imaplib_imaps_end_to_end(f):
    imaplib_flow(f, "imaps")


@case
def authenticate_plain_sasl_ir_and_continuation(f):
    path, data = deliver("auth")
    cred = base64.b64encode(b"\0demo\0" + INST.demo_password.encode()).decode()
    # SASL-IR on imaps
    c = f.imaplib("imaps", login=False)
    expect("SASL-IR" in c.capabilities, "no SASL-IR: %r" % (c.capabilities,))
    typ, d = c._simple_command("AUTHENTICATE", "PLAIN", cred)
    expect(typ == "OK", "AUTHENTICATE PLAIN <initial response>: %r %r" % (typ, d))
    c.state = "AUTH"
    typ, d = c.select("INBOX")
    expect(typ == "OK" and d == [b"1"], "SELECT after AUTHENTICATE: %r %r" % (typ, d))
    c.logout()
    # the continuation form over STARTTLS
    c = f.imaplib("starttls", login=False)
    typ, d = c.authenticate("PLAIN", lambda _: b"\0demo\0" + INST.demo_password.encode())
    expect(typ == "OK", "AUTHENTICATE PLAIN with a continuation: %r %r" % (typ, d))
    typ, d = c.select("INBOX")
    expect(typ == "OK" and d == [b"1"], "SELECT after AUTHENTICATE: %r %r" % (typ, d))
    typ, d = c.fetch("1", "(BODY.PEEK[])")
    expect(fetch_parts(d)[1].get(b"BODY[]") == crlf(data), "FETCH after AUTHENTICATE")
    c.logout()
    # raw: an authorization identity other than the user is refused, "*" cancels
    r = f.raw()
    _, t = r.cmd(b"a1", "AUTHENTICATE PLAIN " + base64.b64encode(b"other\0demo\0" + INST.demo_password.encode()).decode(),
                 want=b"NO")
    r.send(b"a2 AUTHENTICATE PLAIN\r\n")
    l = r.line()
    expect(l.startswith(b"+"), "no continuation: %r" % l)
    r.send(b"*\r\n")
    l = r.line()
    expect(l.startswith(b"a2 BAD") or l.startswith(b"a2 NO"), "cancelled AUTHENTICATE: %r" % l)
    r.cmd(b"a3", "AUTHENTICATE PLAIN " + cred)
    r.cmd(b"a4", "SELECT INBOX")
    r.cmd(b"a5", "LOGOUT")

# ---------------------------------------------------------------- IDLE, two sessions


def idle_delivery(f, r):
    r.login()
    u, t = r.cmd(b"a1", "SELECT INBOX")
    expect(b"* 0 EXISTS" in u, "SELECT of an empty INBOX: %r" % u)
    r.send(b"a2 IDLE\r\n")
    l = r.line()
    expect(l.startswith(b"+"), "IDLE: %r" % l)
    time.sleep(0.3)
    landed = [None]
    stop = threading.Event()

    def watch():
        # the moment the message lands (new/, or cur/ once the session took it)
        while not stop.is_set() and landed[0] is None:
            if folder_files():
                landed[0] = time.monotonic()
            time.sleep(0.001)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    th = None
    if SANITIZER:
        deliver("idle")
    else:
        res = []
        th = threading.Thread(target=lambda: res.append(deliver("idle", wait=False)), daemon=True)
        th.start()
    got, t_exists = [], None
    end = time.monotonic() + 25
    while time.monotonic() < end:
        resp = r.poll(0.05)
        if resp is not None:
            got.append(resp)
            if re.match(rb"\* 1 EXISTS$", resp):
                t_exists = time.monotonic()
                break
            expect(re.match(rb"\* \d+ RECENT$", resp), "in IDLE: %r" % resp)
    # the watcher may see the file a moment after the EXISTS: then dt < 0
    watcher.join(2)
    stop.set()
    if th:
        th.join(20)
    expect(landed[0] is not None, "the message never landed in %s" % INST.maildir())
    expect(t_exists is not None, "no * 1 EXISTS in IDLE; got %r" % got)
    dt = t_exists - landed[0]
    expect(dt < 1.0, "* 1 EXISTS came %.2fs after the message landed" % dt)
    r.send(b"DONE\r\n")
    while True:
        l = r.response()
        if l.startswith(b"a2 "):
            break
    expect(l.startswith(b"a2 OK"), "DONE: %r" % l)
    r.cmd(b"a3", "LOGOUT")
    info("idle: EXISTS %.3fs after the delivery landed" % max(dt, 0))


@case
def idle_announces_delivery_within_1s(f):
    idle_delivery(f, f.raw())


@case
def idle_over_imaps_within_1s(f):
    idle_delivery(f, f.raw(INST.imaps_port, implicit=True))


def idle_wait(r, pattern, timeout=1.0):
    """In IDLE: the first response matching pattern within timeout (others
    are collected); raises Failure if none."""
    got = []
    end = time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        resp = r.poll(max(0.0, left))
        if resp is None:
            raise Failure("no %r within %.1fs in IDLE; got %r" % (pattern, timeout, got))
        got.append(resp)
        if re.search(pattern, resp):
            return resp


@case
def two_sessions_see_each_other(f):
    for i in range(3):
        deliver("two%d" % i)
    a = f.imaplib("starttls")
    typ, d = a.select("INBOX")
    expect(d == [b"3"], "A: SELECT %r" % d)
    b = f.raw()
    b.login()
    u, _ = b.cmd(b"b1", "SELECT INBOX")
    expect(b"* 3 EXISTS" in u, "B: SELECT %r" % u)
    # A's flag change, seen by B at NOOP
    ok(a.store("2", "+FLAGS", "(\\Flagged)"), "A STORE")
    u, _ = b.cmd(b"b2", "NOOP")
    expect(any(re.match(rb"\* 2 FETCH \(.*FLAGS \(\\Flagged\)", x) for x in u), "B's NOOP after A's STORE: %r" % u)
    # in IDLE: A's flag change and expunge announced within a second
    b.send(b"b3 IDLE\r\n")
    expect(b.line().startswith(b"+"), "IDLE")
    ok(a.store("1", "+FLAGS", "(\\Seen)"), "A STORE \\Seen")
    idle_wait(b, rb"^\* 1 FETCH \(.*FLAGS \(\\Seen\)")
    ok(a.store("3", "+FLAGS", "(\\Deleted)"), "A STORE \\Deleted")
    ok(a.expunge(), "A EXPUNGE")
    idle_wait(b, rb"^\* 3 EXPUNGE$")
    b.send(b"DONE\r\n")
    while True:
        l = b.response()
        if l.startswith(b"b3 "):
            break
    expect(l.startswith(b"b3 OK"), "DONE: %r" % l)
    expect(len(folder_files()) == 2, "after the expunge: %r" % folder_files())
    # the other way: B's changes seen by A at NOOP
    untagged(a, "FETCH")
    untagged(a, "EXPUNGE")
    b.cmd(b"b4", "STORE 1 -FLAGS (\\Seen)")
    ok(a.noop(), "A NOOP")
    fl = untagged(a, "FETCH")
    expect(any(re.match(rb"1 \(.*FLAGS \((?![^)]*Seen)", x) for x in fl), "A's NOOP after B's -FLAGS: %r" % fl)
    b.cmd(b"b5", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.cmd(b"b6", "EXPUNGE")
    ok(a.noop(), "A NOOP")
    ex = untagged(a, "EXPUNGE")
    expect(ex == [b"1"], "A's NOOP after B's EXPUNGE: %r" % ex)
    typ, d = a.fetch("1:*", "(UID)")
    expect(typ == "OK" and len([x for x in d if x]) == 1 and b"UID 2" in d[0], "A's view %r" % d)
    expect(len(folder_files()) == 1, "on disk: %r" % folder_files())
    a.logout()
    b.cmd(b"b7", "LOGOUT")

# ---------------------------------------------------------------- curl


def curl_case(url_base, tls_args):
    path, data = deliver("curl")
    u = "demo:" + INST.demo_password
    rc, out, err = curl(*tls_args, "-u", u, url_base + "/")
    expect(rc == 0, "curl list: %d %s" % (rc, err))
    names = set(re.findall(rb'^\* LIST \([^)]*\) "\." "?([^"\r\n]+)"?\r$', out, re.M))
    expect({b"INBOX", b"Sent", b"Archive", b"Trash"} <= names, "curl list: %r" % out)
    rc, out, err = curl(*tls_args, "-u", u, url_base + "/INBOX;UID=1")
    expect(rc == 0, "curl fetch: %d %s" % (rc, err))
    expect(out == crlf(data), "curl INBOX;UID=1 " + diff(crlf(data), out))
    # an upload: APPEND to Sent
    marker, up = message("curl-upload")
    fn = os.path.join(tempfile.gettempdir(), "imapt-upload-%d" % os.getpid())
    with open(fn, "wb") as fh:
        fh.write(up)
    try:
        rc, out, err = curl(*tls_args, "-u", u, "-T", fn, url_base + "/Sent")
    finally:
        os.unlink(fn)
    expect(rc == 0, "curl upload: %d %s" % (rc, err))
    sent = folder_files("Sent")
    expect(len(sent) == 1 and crlf(INST.read(sent[0])) == up, "Sent after the upload: %r" % sent)


@case
def curl_imap_starttls(f):
    curl_case("imap://%s:%d" % (INST.ip, INST.imap_port), ["--ssl-reqd", "-k"])
    expect(wait_for(lambda: re.search(r"imapd: login ip=127\.0\.0\.1 user=demo .*tls=(?!no)", INST.log("imap")), 5),
           "no TLS login in log/imap")


@case
def curl_imaps(f):
    curl_case("imaps://%s:%d" % (INST.ip, INST.imaps_port), ["-k"])

# ---------------------------------------------------------------- mbsync


def tree(root):
    """{relative path: bytes} of the message files under root (in cur/ or
    new/ directories)."""
    out = {}
    for base, dirs, files in os.walk(root):
        if os.path.basename(base) not in ("cur", "new"):
            continue
        for n in files:
            p = os.path.join(base, n)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = fh.read()
    return out


def no_tuid(m):
    """m (CRLF) without the X-TUID: header line mbsync writes into the
    messages it copies (its marker for finding them again, mbsync(1))."""
    head, sep, body = m.partition(b"\r\n\r\n")
    return re.sub(rb"(?m)^X-TUID: [^\r\n]*\r\n", b"", head + b"\r\n")[:-2] + sep + body


def server_boxes():
    """{IMAP mailbox name: sorted list of CRLF message contents} on the server."""
    md = INST.maildir()
    out = {"INBOX": sorted(no_tuid(crlf(INST.read(p))) for p in folder_files())}
    for n in os.listdir(md):
        if n.startswith(".") and not n.startswith("..") and os.path.isdir(os.path.join(md, n)):
            out[n[1:]] = sorted(no_tuid(crlf(INST.read(p))) for p in folder_files(n[1:]))
    return out


def local_boxes(root):
    """The same for mbsync's local store (SubFolders Verbatim: "A.B" is A/B)."""
    out = {}
    for base, dirs, files in os.walk(root):
        if os.path.isdir(os.path.join(base, "cur")):
            name = os.path.relpath(base, root).replace("/", ".")
            out[name] = sorted(no_tuid(crlf(INST.read(p))) for p in
                               [os.path.join(base, s, n) for s in ("cur", "new") for n in os.listdir(os.path.join(base, s))])
    return out


def mbsync(f, home):
    r = subprocess.run(["mbsync", "-V", "-c", os.path.join(home, ".mbsyncrc"), "-a"],
                       env=minimal_env({"HOME": home, "LC_ALL": "C"}),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    out = r.stdout.decode(errors="replace")
    expect(r.returncode == 0, "mbsync exited %d:\n%s" % (r.returncode, out[-1500:]))
    return out


@case
def mbsync_two_way(f):
    if not shutil.which("mbsync"):
        raise Failure("mbsync is not installed (Debian package isync, package/deps)")
    # the server: INBOX over SMTP, folders (one nested) by APPEND
    deliver("mbsync1")
    deliver("mbsync2")
    c = f.imaplib("starttls")
    ok(c.create("Projects.2024"), "CREATE")
    msgs = {}
    for box, flags in (("Archive", None), ("Projects", "(\\Seen)"), ("Projects.2024", "(\\Flagged \\Seen)"),
                       ("Projects.2024", None), ("Sent", "(\\Seen)")):
        marker, m = message("mbsync-" + box)
        ok(c.append(box, flags, None, m), "APPEND %s" % box)
        msgs.setdefault(box, []).append(m)
    c.logout()
    home = os.path.join(f.tmp, "home")
    local = os.path.join(home, "mail")
    os.makedirs(local)
    pwfile = os.path.join(home, "pw")
    with open(pwfile, "w") as fh:
        fh.write(INST.demo_password + "\n")
    def rc(port, ssltype):
        with open(os.path.join(home, ".mbsyncrc"), "w") as fh:
            fh.write("""IMAPAccount yubin
Host localhost
Port %d
User demo
PassCmd "cat %s"
SSLType %s
CertificateFile %s
SystemCertificates no
Timeout 20

IMAPStore remote
Account yubin

MaildirStore local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns *
Create Both
Sync All
Expunge Both
SyncState *
""" % (port, pwfile, ssltype, INST.path("control", "cert.pem"), local, local))
    rc(INST.imaps_port, "IMAPS")
    # 1: everything arrives byte for byte
    out1 = mbsync(f, home)
    srv, loc = server_boxes(), local_boxes(local)
    expect(set(srv) == set(loc), "mailboxes: server %r, local %r\n%s" % (sorted(srv), sorted(loc), out1[-800:]))
    for box in srv:
        expect(srv[box] == loc[box], "%s: server has %d messages, local %d; first difference: %s"
               % (box, len(srv[box]), len(loc[box]),
                  next((diff(a, b) for a, b in zip(srv[box], loc[box]) if a != b), "count")))
    expect(len(loc["INBOX"]) == 2 and len(loc["Projects.2024"]) == 2, "local: %r" % {k: len(v) for k, v in loc.items()})
    lp = [p for p in tree(os.path.join(local, "Projects", "2024"))]
    expect(any(re.search(r":2,[A-Z]*F[A-Z]*S", p) for p in lp), "flags not synced: %r" % lp)

    # 2: a change on each side
    # local: flag the Projects message, add one to Archive, make a folder
    pd = os.path.join(local, "Projects", "cur")
    pf = os.listdir(pd)
    expect(len(pf) == 1, "local Projects: %r" % pf)
    base, fl = pf[0].split(":2,")
    os.rename(os.path.join(pd, pf[0]), os.path.join(pd, base + ":2," + "".join(sorted(fl + "F"))))
    marker_up, up = message("mbsync-up")
    up = up.replace(b"\r\n", b"\n")
    with open(os.path.join(local, "Archive", "new", "%d.1_1.mbsynctest" % int(time.time())), "wb") as fh:
        fh.write(up)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(local, "Local", sub))
    marker_lf, lf = message("mbsync-newfolder")
    with open(os.path.join(local, "Local", "new", "%d.2_1.mbsynctest" % int(time.time())), "wb") as fh:
        fh.write(lf.replace(b"\r\n", b"\n"))
    # server: delete one INBOX message
    c = f.imaplib("starttls")
    c.select("INBOX")
    typ, d = c.fetch("1", "(BODY.PEEK[])")
    gone = re.search(rb"Message-ID: <([^>]+)>", fetch_parts(d)[1].get(b"BODY[]", b""))
    expect(gone, "FETCH 1 BODY.PEEK[]: %r" % d)
    gone = gone.group(1)
    ok(c.store("1", "+FLAGS.SILENT", "(\\Deleted)"), "STORE")
    ok(c.expunge(), "EXPUNGE")
    c.logout()
    # the same account through the imap port and STARTTLS
    rc(INST.imap_port, "STARTTLS")
    out2 = mbsync(f, home)
    expect(re.search(r"(?i)starttls|encrypted", out2), "no STARTTLS in mbsync's output:\n%s" % out2[-600:])
    srv, loc = server_boxes(), local_boxes(local)
    expect(set(srv) == set(loc) and "Local" in srv, "mailboxes after sync 2: server %r, local %r\n%s"
           % (sorted(srv), sorted(loc), out2[-800:]))
    for box in srv:
        expect(srv[box] == loc[box], "sync 2, %s: server %d messages, local %d" % (box, len(srv[box]), len(loc[box])))
    expect(len(loc["INBOX"]) == 1 and gone not in loc["INBOX"][0], "the message deleted on the server is still local")
    pfile = folder_files("Projects")
    expect(len(pfile) == 1 and "F" in flags_of(pfile[0]) and "S" in flags_of(pfile[0]),
           "the local flag did not reach the server: %r" % pfile)
    expect(crlf(up) in srv["Archive"], "the local Archive message is not on the server")
    expect(any(marker_lf in m for m in srv["Local"]), "the local folder's message is not on the server")
    expect(os.path.isfile(os.path.join(INST.maildir(), ".Local", "maildirfolder")), "no .Local/maildirfolder")

    # 3: nothing to do
    before_s, before_l = tree(INST.maildir()), tree(local)
    out3 = mbsync(f, home)
    after_s, after_l = tree(INST.maildir()), tree(local)
    expect(before_s == after_s, "sync 3 changed the server: %r -> %r" % (
        sorted(set(before_s) ^ set(after_s)), out3[-500:]))
    expect(before_l == after_l, "sync 3 changed the local store: %r" % sorted(set(before_l) ^ set(after_l)))
    m = re.search(r"Far: \+(\d+) \*(\d+) #(\d+) -(\d+)\s+Near: \+(\d+) \*(\d+) #(\d+) -(\d+)", out3)
    if m:
        expect(all(x == "0" for x in m.groups()), "sync 3 reports changes: %r" % m.group(0))
    said = "\n".join(l for l in (out1 + out2 + out3).splitlines() if not l.startswith("Maildir notice:"))
    for w in ("UIDVALIDITY", "rror", "arning"):
        expect(w not in said, "mbsync said %r:\n%s" % (w, said[-1500:]))
    expect("Creating" not in out3, "sync 3 creates a mailbox:\n%s" % out3[-800:])

# ---------------------------------------------------------------- fetchmail


def fetchmail(f, port, tlsopts, keep):
    if not shutil.which("fetchmail"):
        raise Failure("fetchmail is not installed (Debian package fetchmail, package/deps)")
    home = os.path.join(f.tmp, "home")
    os.mkdir(home, 0o700)
    rc = os.path.join(home, ".fetchmailrc")
    with open(rc, "w") as fh:
        fh.write('poll %s service %d protocol IMAP user "demo" password "%s"\n'
                 % (INST.ip, port, INST.demo_password))
    os.chmod(rc, 0o600)
    out = os.path.join(f.tmp, "delivered")
    cmd = (["fetchmail", "--nosyslog", "--nodetach", "-d0", "-v", "-a", "--invisible", "--norewrite",
            "--timeout", "20", "--mda", "cat >> " + out] + tlsopts + (["-k"] if keep else ["-K"]))
    env = minimal_env({"HOME": home, "FETCHMAILUSER": pwd.getpwuid(os.getuid()).pw_name, "LC_ALL": "C"})
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
    m1 = deliver("fetchmail1")
    m2 = deliver("fetchmail2")
    got, log = fetchmail(f, port, tlsopts, keep)
    expect(re.search(tls_re, log), "no TLS in fetchmail's transcript:\n" + log[-1500:])
    # fetchmail hands the MDA each message with LF line ends, as in the Maildir
    expect(got == m1[1] + m2[1], "fetchmail --mda " + diff(m1[1] + m2[1], got))
    left = folder_files()
    if keep:
        expect(len(left) == 2, "-k: the messages must stay, INBOX holds %r" % left)
        expect(all("S" in flags_of(p) for p in left), "-k: fetched messages are \\Seen: %r" % left)
    else:
        expect(wait_for(lambda: not folder_files(), 5), "without -k INBOX must be empty: %r" % folder_files())


@case
def fetchmail_imaps_keep(f):
    fetchmail_case(f, INST.imaps_port, ["--ssl", "--nosslcertck"], True, r"SSL|TLS")


@case
def fetchmail_imaps_delete(f):
    fetchmail_case(f, INST.imaps_port, ["--ssl", "--nosslcertck"], False, r"SSL|TLS")


@case
def fetchmail_starttls_delete(f):
    # --sslproto auto without --ssl: STARTTLS required (fetchmail(1))
    fetchmail_case(f, INST.imap_port, ["--sslproto", "auto", "--nosslcertck"], False, r"STARTTLS")

# ---------------------------------------------------------------- STARTTLS injection


@case
def starttls_injection_not_answered(f):
    """CVE-2011-0411: what follows STARTTLS in the same packet must not be
    executed, neither in plaintext nor over TLS."""
    r = f.raw()
    log0 = INST.log("imap").count("handshake-fail")
    r.send(b"a STARTTLS\r\nb CAPABILITY\r\n")
    l = r.line()
    expect(l.startswith(b"a OK"), "STARTTLS: %r" % l)
    expect(not r.buf, "plaintext after OK to STARTTLS: %r" % r.buf)
    r.s.settimeout(2)
    extra, closed = b"", False
    try:
        while True:
            d = r.s.recv(4096)
            if not d:
                closed = True
                break
            extra += d
    except socket.timeout:
        pass
    except ConnectionResetError:
        closed = True
    for w in (b"b OK", b"b BAD", b"b NO", b"CAPABILITY", b"IMAP4"):
        expect(w not in extra, "a plaintext answer to the injected CAPABILITY: %r" % extra)
    if not closed:
        try:
            t = tls_client_ctx().wrap_socket(r.s)
            t.settimeout(2)
            try:
                first = t.recv(4096)
            except (socket.timeout, ssl.SSLError, OSError):
                first = b""
            expect(b"CAPABILITY" not in first and not first.startswith(b"b "),
                   "the injected CAPABILITY was answered over TLS: %r" % first)
        except (ssl.SSLError, OSError):
            pass
    expect(wait_for(lambda: INST.log("imap").count("handshake-fail") > log0, 5),
           "no failed handshake logged: %r" % INST.log("imap")[-500:])

# ---------------------------------------------------------------- path traversal


def snapshot(root, skip=()):
    out = set()
    for base, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.join(base, d) not in skip]
        for n in dirs + files:
            out.add(os.path.relpath(os.path.join(base, n), root))
    return out


@case
def path_traversal_refused(f):
    c = f.imaplib("plain")
    md = INST.maildir()
    home = os.path.dirname(md)
    skip = {INST.path("log"), INST.path("queue"), INST.path("run")}
    before_inst = snapshot(INST.dir, skip)
    before_md = sorted(os.listdir(md))
    bad = ["../x", "a/../../b", ".hidden", "..", "../../etc/yubin-x", "/tmp/yubin-imap-escape",
           "x/../../y", "Sent/../../z", "a..b", "INBOX/../..", ".Trash", "Trash/.."]
    for name in bad:
        for verb, args in (("CREATE", (quote(name),)), ("SELECT", (quote(name),)),
                           ("RENAME", ("Archive", quote(name))), ("RENAME", (quote(name), "Archive2")),
                           ("DELETE", (quote(name),)), ("STATUS", (quote(name), "(MESSAGES)")),
                           ("APPEND", (quote(name), "{5+}\r\nhello")), ("COPY", ("1", quote(name)))):
            if verb == "COPY":
                continue
            try:
                typ, d = c._simple_command(verb, *args)
            except imaplib.IMAP4.error as e:
                typ, d = "BAD", [str(e)]
            expect(typ in ("NO", "BAD"), "%s %s: %r %r" % (verb, " ".join(args), typ, d))
            if c.state == "SELECTED":
                c.state = "AUTH"
    # control characters and NUL, as literals
    r = f.raw()
    r.login()
    for i, name in enumerate((b"a\x01b", b"a\x00b", b"x\r\ny", b"tab\there", b"del\x7f", b"../\x00x", b"\xff\xfe")):
        for verb in (b"CREATE", b"SELECT", b"RENAME Archive"):
            tag = b"c%d" % i
            r.send(tag + b" " + verb + b" {%d+}\r\n" % len(name) + name + b"\r\n")
            while True:
                l = r.response()
                if l.startswith(tag + b" "):
                    break
            expect(l.startswith(tag + b" NO") or l.startswith(tag + b" BAD"), "%s %r: %r" % (verb.decode(), name, l))
    r.cmd(b"z1", "NOOP")
    r.cmd(b"z2", "LOGOUT")
    c.logout()
    after_inst = snapshot(INST.dir, skip)
    new = sorted(p for p in after_inst - before_inst if not p.startswith(os.path.relpath(md, INST.dir) + "/"))
    expect(not new, "created outside the Maildir: %r" % new)
    expect(sorted(os.listdir(md)) == before_md, "the Maildir's top changed: %r -> %r" % (before_md, sorted(os.listdir(md))))
    for p in ("/tmp/yubin-imap-escape", "/etc/yubin-x", os.path.join(home, "b"), os.path.join(home, "x"),
              os.path.join(home, "y"), os.path.join(home, "z"), os.path.join(os.path.dirname(home), "b")):
        expect(not os.path.exists(p), "%s exists" % p)
    expect(set(os.listdir(md)) <= ({"cur", "new", "tmp", "subscriptions"} | {"." + n for n in SPECIAL}
                                   | {n for n in os.listdir(md) if n.startswith("yubin")}),
           "odd names in the Maildir: %r" % sorted(os.listdir(md)))

# ---------------------------------------------------------------- processes


def proc_env(pid):
    try:
        with open("/proc/%d/environ" % pid, "rb") as fh:
            return fh.read().split(b"\0")
    except OSError:
        return []


def session_processes(port):
    """The yubin-imapd monitor serving the connection from our local port
    (TCPREMOTEPORT in its environment), and its children."""
    for p in os.listdir("/proc"):
        if not p.isdigit() or proc_exe(int(p)) != "yubin-imapd":
            continue
        if b"TCPREMOTEPORT=%d" % port not in proc_env(int(p)):
            continue
        pid = int(p)
        try:
            if proc_exe(int(proc_status(pid)["PPid"][0])) == "yubin-imapd":
                continue        # the pre-login child: we want its parent
        except (OSError, KeyError):
            continue
        return pid, proc_children(pid)
    return None, []


def yubinp():
    if not is_root():
        return None
    pw = pwd.getpwnam("yubinp")
    return pw.pw_uid, pw.pw_gid


@case
def processes_run_as_they_should(f):
    owner = os.stat(INST.maildir())
    ug = yubinp() or (os.getuid(), os.getgid())
    r = f.raw()
    mon, kids = session_processes(r.port)
    expect(mon, "no yubin-imapd monitor for port %d" % r.port)
    u, g, cap = uids(mon)
    expect(u == [0] * 4 or not is_root(), "monitor uids %r (want root)" % u)
    expect(len(kids) == 1 and proc_exe(kids[0]) == "yubin-imapd", "before login: children %r" % kids)
    u, g, cap = uids(kids[0])
    expect(u == [ug[0]] * 4 and g == [ug[1]] * 4, "pre-login uids %r gids %r, want %r" % (u, g, ug))
    expect(cap == 0, "pre-login has capabilities %x" % cap)
    r.login()
    r.cmd(b"a1", "SELECT INBOX")
    mails = [p for p in imapmail_procs() if b"TCPREMOTEPORT=%d" % r.port in proc_env(p)] or imapmail_procs()
    expect(len(mails) == 1, "yubin-imapmail processes during the session: %r" % mails)
    u, g, cap = uids(mails[0])
    expect(u == [owner.st_uid] * 4 and g == [owner.st_gid] * 4,
           "yubin-imapmail uids %r gids %r, want the Maildir's owner %d:%d" % (u, g, owner.st_uid, owner.st_gid))
    expect(cap == 0, "yubin-imapmail has capabilities %x" % cap)
    expect(os.readlink("/proc/%d/cwd" % mails[0]) == os.path.dirname(INST.maildir()),
           "yubin-imapmail runs in %s" % os.readlink("/proc/%d/cwd" % mails[0]))
    mon2, kids = session_processes(r.port)
    if mon2:
        u, g, cap = uids(mon2)
        expect(u == [0] * 4 or not is_root(), "monitor after login: uids %r" % u)
        for k in kids:
            if proc_exe(k) == "yubin-imapd":
                u, g, cap = uids(k)
                expect(u == [ug[0]] * 4, "pre-login after login: uids %r" % u)
    r.cmd(b"a2", "LOGOUT")
    r.rest()
    expect(wait_for(lambda: yubintest.proc_gone(mails[0]), 5),
           "yubin-imapmail outlived the session")

# ---------------------------------------------------------------- logging, banwatch


@case
def banwatch_follows_imap_logs(f):
    rc, out = INST.banctl("stats")
    expect(rc == 0, "yubin-banctl stats: %d %s" % (rc, out))
    for s in ("imap", "imaps"):
        expect(re.search(r"^source \S*log/%s/current " % s, out, re.M),
               "banwatch does not follow log/%s/current:\n%s" % (s, out))


def wrong_password_counted(r, log, mech):
    before, prev = None, None
    for _ in range(50):
        before = int(INST.jail_counts()["ignored"])
        if before == prev:
            break
        prev = before
        time.sleep(0.1)
    pat = "imapd: auth-fail ip=127.0.0.1 user=demo"
    n = INST.log(log).count(pat)
    if mech == "LOGIN":
        _, t = r.cmd(b"w1", "LOGIN demo not-the-password", want=b"NO")
    else:
        _, t = r.cmd(b"w1", "AUTHENTICATE PLAIN " + base64.b64encode(b"\0demo\0not-the-password").decode(),
                     want=b"NO")
    expect(t.startswith(b"w1 NO [AUTHENTICATIONFAILED]"), "wrong password: %r" % t)
    r.cmd(b"w2", "NOOP")
    expect(wait_for(lambda: INST.log(log).count(pat) > n, 5),
           "no '%s' in log/%s: %r" % (pat, log, INST.log(log)[-500:]))
    expect(re.search(re.escape(pat) + r".*mech=" + mech, INST.log(log)), "no mech=%s in %r" % (mech, INST.log(log)[-300:]))
    expect(wait_for(lambda: int(INST.jail_counts()["ignored"]) > before, 5),
           "banwatch's yubin-auth did not count it: %r" % INST.jail_counts())
    time.sleep(0.2)
    got = int(INST.jail_counts()["ignored"]) - before
    expect(got == 1, "one wrong password counted %d times" % got)
    expect("not-the-password" not in INST.log(log), "the password is in the log")


@case
def wrong_password_logged_and_counted_imap(f):
    wrong_password_counted(f.raw(), "imap", "LOGIN")


@case
def wrong_password_logged_and_counted_imaps(f):
    wrong_password_counted(f.raw(INST.imaps_port, implicit=True), "imaps", "PLAIN")


@case
def three_wrong_passwords_end_session(f):
    r = f.raw()
    for i in range(2):
        r.cmd(b"w%d" % i, "LOGIN demo wrong-%d" % i, want=b"NO")
    r.send(b"w2 LOGIN demo wrong-2\r\n")
    rest = r.rest()
    expect(b"w2 NO" in rest and b"* BYE" in rest, "the third wrong password: %r" % rest)

# -- a client that is not on loopback: yubin-imapd over a socketpair


def remote_imapd(f, ip, extra=None):
    """The instance's yubin-imapd on a socketpair, as tcpserver would run
    it for a client at ip; returns an Imap on our end."""
    ours, theirs = socket.socketpair()
    ug = yubinp()
    args = [INST.path("bin", "yubin-imapd")] + (["-u", str(ug[0]), "-g", str(ug[1])] if ug else [])
    env = minimal_env({"YUBIN_ROOT": INST.dir, "TCPREMOTEIP": ip, "TCPREMOTEPORT": "40000",
                       "TCPLOCALIP": INST.ip, "TCPLOCALPORT": str(INST.imap_port),
                       "TLSD": "", "TLSDTIMEOUT": "10000", "IMAPTIMEOUT": "60"})
    env.update(extra or {})
    err = open(os.path.join(f.tmp, "imapd.%d.log" % len(f.procs)), "wb")
    p = subprocess.Popen(args, stdin=theirs.fileno(), stdout=theirs.fileno(), stderr=err,
                         env=env, cwd=INST.dir)
    err.close()
    theirs.close()
    f.procs.append(p)
    c = Imap(sock=ours)
    f.clients.append(c)
    return c


def remote_logs(f):
    out = ""
    for n in sorted(os.listdir(f.tmp)):
        if n.startswith("imapd."):
            with open(os.path.join(f.tmp, n), "rb") as fh:
                out += fh.read().decode(errors="replace")
    return out


def caps_of(r):
    u, _ = r.cmd(b"k1", "CAPABILITY")
    line = [x for x in u if x.startswith(b"* CAPABILITY ")]
    expect(line, "no * CAPABILITY: %r" % u)
    return line[0].split()[2:]


@case
def nonloopback_cleartext_refused(f):
    r = remote_imapd(f, "192.0.2.1")
    expect(b"LOGINDISABLED" in r.greeting and b"AUTH=PLAIN" not in r.greeting,
           "greeting before TLS: %r" % r.greeting)
    caps = caps_of(r)
    expect(b"LOGINDISABLED" in caps and b"STARTTLS" in caps and b"AUTH=PLAIN" not in caps, "CAPABILITY %r" % caps)
    _, t = r.cmd(b"a1", "LOGIN demo " + quote(INST.demo_password), want=b"NO")
    expect(t.startswith(b"a1 NO [PRIVACYREQUIRED]"), "LOGIN before TLS: %r" % t)
    _, t = r.cmd(b"a2", "AUTHENTICATE PLAIN " + base64.b64encode(("\0demo\0" + INST.demo_password).encode()).decode(),
                 want=b"NO")
    expect(t.startswith(b"a2 NO [PRIVACYREQUIRED]"), "AUTHENTICATE before TLS: %r" % t)
    r.starttls()
    caps = caps_of(r)
    expect(b"LOGINDISABLED" not in caps and b"AUTH=PLAIN" in caps and b"STARTTLS" not in caps,
           "CAPABILITY over TLS: %r" % caps)
    r.login()
    r.cmd(b"a3", "SELECT INBOX")
    r.cmd(b"a4", "LOGOUT")
    r.rest()
    log = remote_logs(f)
    expect(re.search(r"login ip=192\.0\.2\.1 user=demo", log), "no login line: %r" % log[-500:])
    expect("demo" in log and INST.demo_password not in log, "the password is in the log")
    expect(not sanitizer_report(log), sanitizer_report(log))


@case
def nonloopback_cleartextlogin_allowed(f):
    path, data = deliver("clear")
    r = remote_imapd(f, "192.0.2.2", {"CLEARTEXTLOGIN": "1"})
    expect(b"LOGINDISABLED" not in r.greeting, "CLEARTEXTLOGIN=1: greeting %r" % r.greeting)
    caps = caps_of(r)
    expect(b"AUTH=PLAIN" in caps and b"LOGINDISABLED" not in caps, "CLEARTEXTLOGIN=1: CAPABILITY %r" % caps)
    r.login()
    r.cmd(b"a1", "SELECT INBOX")
    u, _ = r.cmd(b"a2", "FETCH 1 BODY.PEEK[]")
    got = u[0].split(b"\r\n", 1)[1][:-1] if u else b""
    expect(got == crlf(data), "FETCH " + diff(crlf(data), got))
    r.cmd(b"a3", "LOGOUT")
    r.rest()
    log = remote_logs(f)
    expect(not sanitizer_report(log), sanitizer_report(log))

# ---------------------------------------------------------------- bad input

HUGE = b"X" * 100000


def bad_then_goes_on(r, tag, line, want=(b"BAD",)):
    r.send(tag + b" " + line + b"\r\n" if not line.startswith(b"\0") else line + b"\r\n")
    got = []
    while True:
        l = r.response()
        got.append(l)
        if l.startswith(tag + b" ") or l.startswith(b"* BYE") or (l.startswith(b"* BAD") and tag == b"*"):
            break
        if re.match(rb"[A-Za-z0-9]+ BAD", l) and len(got) > 3:
            break
    last = got[-1]
    expect(any(last.startswith((tag if tag != b"*" else b"") + (b" " if tag != b"*" else b"") + w) or
               last.split(b" ", 1)[-1].startswith(w) for w in want),
           "%r: want %r, got %r" % (line[:60], want, got[-3:]))
    expect(not last.startswith(b"* BYE"), "%r ended the session: %r" % (line[:60], got))
    _, t = r.cmd(tag + b"n", "NOOP")
    return last


@case
def bad_input_before_login(f):
    r = f.raw()
    bad_then_goes_on(r, b"a1", b"LOGIN (demo " + quote(INST.demo_password).encode())
    bad_then_goes_on(r, b"a2", b"LOGIN \"demo")
    l = bad_then_goes_on(r, b"a3", b"LOGIN {999999999}", (b"NO", b"BAD"))
    expect(b"TOOBIG" in l or b"BAD" in l, "a literal over the limit: %r" % l)
    bad_then_goes_on(r, b"a4", b"LOGIN demo " + HUGE)
    bad_then_goes_on(r, b"a5", b"NO\0OP")
    bad_then_goes_on(r, b"a6", b"LOGIN de\0mo x")
    bad_then_goes_on(r, b"a7", b"SELECT INBOX")
    r.login()
    r.cmd(b"a8", "SELECT INBOX")
    r.cmd(b"a9", "LOGOUT")


@case
def bad_input_after_login(f):
    path, data = deliver("bad")
    r = f.raw()
    r.login()
    r.cmd(b"s", "SELECT INBOX")
    bad_then_goes_on(r, b"b1", b"FETCH 1 (FLAGS")
    bad_then_goes_on(r, b"b2", b"FETCH 1 FLAGS)")
    bad_then_goes_on(r, b"b3", b"LIST \"\" (")
    bad_then_goes_on(r, b"b4", b"SEARCH (OR SUBJECT a")
    l = bad_then_goes_on(r, b"b5", b"APPEND INBOX {999999999}", (b"NO", b"BAD"))
    expect(b"TOOBIG" in l, "APPEND of a literal over the limit: %r" % l)
    bad_then_goes_on(r, b"b6", b"SEARCH SUBJECT " + HUGE)
    bad_then_goes_on(r, b"b7", HUGE)
    bad_then_goes_on(r, b"b8", b"SEL\0ECT INBOX")
    bad_then_goes_on(r, b"b9", b"SELECT \"IN\0BOX\"", (b"BAD", b"NO"))
    bad_then_goes_on(r, b"b10", b"FETCH 0:* (FLAGS)", (b"BAD", b"NO"))
    bad_then_goes_on(r, b"b11", b"FETCH 1 BODY[1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23.24.25.26.27.28.29.30]",
                     (b"BAD", b"NO", b"OK"))
    u, _ = r.cmd(b"f1", "FETCH 1 BODY.PEEK[]")
    got = u[-1].split(b"\r\n", 1)[1][:-1] if u else b""
    expect(got == crlf(data), "FETCH after the bad input " + diff(crlf(data), got))
    r.cmd(b"z", "LOGOUT")
    expect(folder_files() and INST.read(folder_files()[0]) == data, "the message changed: %r" % folder_files())


def twenty_bads(r):
    """One at a time, as a client waits for each answer (pipelined, the
    pre-login part closes with unread input: the RST can eat the BYE)."""
    for i in range(19):
        _, t = r.cmd(b"x%d" % i, "FROBNICATE", want=b"BAD")
    r.send(b"x19 FROBNICATE\r\n")
    rest = r.rest()
    expect(rest.startswith(b"x19 BAD") and b"* BYE" in rest, "the 20th bad command: %r" % rest[-300:])


@case
def twenty_bads_end_session_before_login(f):
    twenty_bads(f.raw())


@case
def twenty_bads_pipelined_still_get_bye(f):
    """A client that sent more than the server reads (25 bad commands in
    one packet, read after a moment): the 20 BADs and the * BYE must still
    reach it.  A server that exits with unread input makes the kernel send
    a RST, which throws away what the client has not read yet."""
    bad = []
    for when in ("before", "after"):
        r = f.raw()
        if when == "after":
            r.login()
        r.send(b"".join(b"x%d FROBNICATE\r\n" % i for i in range(25)))
        time.sleep(0.5)
        data, err = r.buf, None
        r.buf = b""
        r.s.settimeout(IO)
        while True:
            try:
                d = r.s.recv(65536)
            except OSError as e:
                err = e
                break
            if not d:
                break
            data += d
        if not (data.count(b" BAD ") == 20 and b"* BYE" in data):
            bad.append("%s the login: got %d BADs%s, ending %r, then %s"
                       % (when, data.count(b" BAD "), "" if b"* BYE" in data else " and no * BYE", data[-40:], err or "EOF"))
    expect(not bad, "; ".join(bad) + " (bug: the session ends with unread input, the kernel's RST discards its "
           "last answers; /tmp/imap-bugs.txt)")


@case
def twenty_bads_end_session_after_login(f):
    r = f.raw()
    r.login()
    r.cmd(b"s", "SELECT INBOX")
    twenty_bads(r)
    expect(wait_for(lambda: re.search(r"imapd: logout ip=127\.0\.0\.1 user=demo .*reason=errors", INST.log("imap")), 5),
           "no logout reason=errors in log/imap: %r" % INST.log("imap")[-400:])

# ---------------------------------------------------------------- more through the instance


@case
def big_message_over_tls(f):
    """A 3 MB message APPENDed over imaps comes back byte for byte through
    yubin-tlsd, whole and in a partial."""
    lines = [b"From: big@example.org", b"Subject: big one", b""]
    for i in range(40000):
        lines.append(b"line %06d " % i + b"abcdefghijklmnopqrstuvwxyz0123456789" * 2)
    msg = b"\r\n".join(lines) + b"\r\n"
    c = f.imaplib("imaps")
    typ, d = c.append("INBOX", None, None, msg)
    expect(typ == "OK", "APPEND of %d bytes: %r %r" % (len(msg), typ, d))
    files = folder_files()
    expect(len(files) == 1 and crlf(INST.read(files[0])) == msg, "on disk: %r" % files)
    ok(c.select("INBOX"), "SELECT")
    typ, d = c.fetch("1", "(RFC822.SIZE BODY.PEEK[])")
    text, lits = fetch_parts(d)
    body = lits.get(b"BODY[]", b"")
    expect(body == msg, "BODY[] of the big message " + diff(msg, body))
    expect(b"RFC822.SIZE %d" % len(msg) in text, "RFC822.SIZE in %r, want %d" % (text, len(msg)))
    typ, d = c.fetch("1", "(BODY.PEEK[]<1000000.5000>)")
    part = [x[1] for x in d if isinstance(x, tuple)]
    expect(part == [msg[1000000:1005000]], "BODY[]<1000000.5000>: %r" % [x[:80] for x in part])
    c.logout()


@case
def concurrent_appends_and_delivery(f):
    """Three sessions APPEND at once while mail is delivered: every message
    gets its own UID, a session that watched sees them all, FETCH gives
    each file's bytes."""
    n_each, n_deliver = 12, 3
    watcher = f.imaplib("plain")
    ok(watcher.select("INBOX"), "SELECT")
    errors = []

    def appender(k):
        try:
            c = imaplib.IMAP4(INST.ip, INST.imap_port, timeout=IO)
            c.login("demo", INST.demo_password)
            for i in range(n_each):
                m = message("conc-%d-%d" % (k, i))[1]
                typ, d = c.append("INBOX", None, None, m)
                if typ != "OK":
                    errors.append("session %d APPEND %d: %r %r" % (k, i, typ, d))
            c.logout()
        except Exception as e:
            errors.append("session %d: %r" % (k, e))
    threads = [threading.Thread(target=appender, args=(k,), daemon=True) for k in range(3)]
    for t in threads:
        t.start()
    for i in range(n_deliver):
        deliver("conc-smtp-%d" % i)
    for t in threads:
        t.join(60)
    expect(not errors, "; ".join(errors[:5]))
    total = 3 * n_each + n_deliver
    expect(wait_for(lambda: len(folder_files()) == total, 20), "on disk %d files, want %d" % (len(folder_files()), total))
    ok(watcher.noop(), "NOOP")
    ex = untagged(watcher, "EXISTS")
    expect(ex and int(ex[-1]) == total, "the watching session: EXISTS %r, want %d" % (ex, total))
    typ, d = watcher.fetch("1:*", "(UID RFC822.SIZE BODY.PEEK[])")
    expect(typ == "OK", "FETCH 1:*: %r" % typ)
    seen_uids, bodies = [], []
    for item in d:
        if isinstance(item, tuple):
            m = re.search(rb"UID (\d+)", item[0])
            seen_uids.append(int(m.group(1)) if m else None)
            bodies.append(item[1])
    expect(len(seen_uids) == total and len(set(seen_uids)) == total and seen_uids == sorted(seen_uids),
           "UIDs %r" % seen_uids)
    on_disk = sorted(crlf(INST.read(p)) for p in folder_files())
    expect(sorted(bodies) == on_disk, "FETCH bodies differ from the files")
    typ, d = watcher.status("INBOX", "(MESSAGES UIDNEXT)")
    m = re.search(rb"UIDNEXT (\d+)", d[0])
    expect(m and int(m.group(1)) > max(seen_uids), "UIDNEXT %r, highest UID %d" % (d, max(seen_uids)))
    watcher.logout()


@case
def pop3_and_imap_on_one_mailbox(f):
    """yubin-pop3d and the IMAP server on the same Maildir: a POP3 DELE is
    an EXPUNGE for the IMAP session, UIDs and UIDLs stay."""
    import poplib
    deliver("mixed1")
    path2, data2 = deliver("mixed2")
    c = f.imaplib("plain")
    ok(c.select("INBOX"), "SELECT")
    typ, d = c.fetch("1:*", "(UID)")
    expect(d == [b"1 (UID 1)", b"2 (UID 2)"], "UIDs %r" % d)
    p = poplib.POP3(INST.ip, INST.pop3_port, timeout=IO)
    try:
        p.user("demo")
        p.pass_(INST.demo_password)
        uidl1 = p.uidl()[1]
        expect(len(uidl1) == 2, "UIDL %r" % uidl1)
        p.dele(1)
        p.quit()
    finally:
        p.close()
    expect(len(folder_files()) == 1, "after POP3 DELE: %r" % folder_files())
    ok(c.noop(), "NOOP")
    expect(untagged(c, "EXPUNGE") == [b"1"], "no * 1 EXPUNGE after the POP3 DELE")
    typ, d = c.fetch("1", "(UID BODY.PEEK[])")
    text, lits = fetch_parts(d)
    expect(b"UID 2" in text and lits.get(b"BODY[]") == crlf(data2), "the message left: %r" % text)
    ok(c.store("1", "+FLAGS", "(\\Seen \\Flagged)"), "STORE")
    p = poplib.POP3(INST.ip, INST.pop3_port, timeout=IO)
    try:
        p.user("demo")
        p.pass_(INST.demo_password)
        u = p.uidl()[1]
        expect(len(u) == 1 and u[0].split()[1] == uidl1[1].split()[1], "UIDL after the flag change: %r, was %r" % (u, uidl1))
        got = b"".join(l + b"\r\n" for l in p.retr(1)[1])
        expect(got == crlf(data2), "POP3 RETR " + diff(crlf(data2), got))
        p.quit()
    finally:
        p.close()
    ok(c.noop(), "NOOP")
    typ, d = c.fetch("1", "(UID FLAGS)")
    expect(re.search(rb"UID 2 FLAGS \((?=[^)]*\\Seen)(?=[^)]*\\Flagged)", d[0]), "after POP3: %r" % d)
    c.logout()


@case
def autologout_before_and_after_login(f):
    """IMAPLOGINTIMEOUT before the login, IMAPTIMEOUT (carried through the
    login to yubin-imapmail) after it: * BYE and the end."""
    r = remote_imapd(f, "127.0.0.1", {"IMAPLOGINTIMEOUT": "1"})
    t = time.monotonic()
    rest = r.rest(8)
    dt = time.monotonic() - t
    expect(b"* BYE" in rest and dt < 5, "before the login: %r after %.1fs" % (rest, dt))
    r = remote_imapd(f, "127.0.0.1", {"IMAPTIMEOUT": "2"})
    r.login()
    r.cmd(b"a1", "SELECT INBOX")
    t = time.monotonic()
    rest = r.rest(10)
    dt = time.monotonic() - t
    expect(b"* BYE" in rest and 1 < dt < 6, "after the login: %r after %.1fs" % (rest, dt))
    expect(wait_for(lambda: "reason=timeout" in remote_logs(f), 5), "no reason=timeout: %r" % remote_logs(f)[-500:])
    log = remote_logs(f)
    expect(not sanitizer_report(log), sanitizer_report(log))

@case
def dropped_connections_end_sessions(f):
    """A client that vanishes in IDLE over TLS, or in the middle of an
    APPEND literal: the session's processes end, no tmp/ file stays."""
    for implicit in (True, False):
        r = f.raw(INST.imaps_port if implicit else INST.imap_port, implicit=implicit)
        mon, _ = session_processes(r.port)
        r.login()
        if implicit:
            r.cmd(b"a1", "SELECT INBOX")
            r.send(b"a2 IDLE\r\n")
            expect(r.line().startswith(b"+"), "IDLE")
        else:
            r.send(b"a2 APPEND INBOX {300000}\r\n")
            expect(r.line().startswith(b"+"), "no continuation for APPEND")
            r.send(b"x" * 150000)
            expect(wait_for(lambda: os.listdir(os.path.join(INST.maildir(), "tmp")), 5),
                   "a 300 KB APPEND is not written to tmp/ as it arrives")
        mails = imapmail_procs()
        expect(mon and mails, "session processes: monitor %r, yubin-imapmail %r" % (mon, mails))
        r.close()
        def alive(pid):
            return not yubintest.proc_gone(pid)
        expect(wait_for(lambda: not any(alive(p) for p in mails + [mon]), 5),
               "%s: processes still there 5s after the client left: %r" % (
                   "IDLE over imaps" if implicit else "APPEND", [p for p in mails + [mon] if alive(p)]))
        tmp = os.listdir(os.path.join(INST.maildir(), "tmp"))
        expect(not tmp, "tmp/ after a dropped APPEND: %r" % tmp)
    expect(not folder_files(), "a half APPEND was delivered: %r" % folder_files())


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
            for s in ("imap", "imaps"):
                for l in inst.log(s).splitlines():
                    if sanitizer_report(l):
                        bad.append("log/%s: %s" % (s, l.strip()))
            check("imap-logs-no-sanitizer-reports", not bad, "\n".join(bad[:20]))


run(main)
