#!/usr/bin/env python3
"""yubin-smtpd behind yubin-tlsd: STARTTLS, implicit TLS, AUTH PLAIN and
LOGIN through yubin-checkpassword, submission mode (-s), and the attacks
on them (plaintext injected before STARTTLS, smuggling over TLS, a flood
of failed logins).

Each server is tcpserver on a free loopback port running
    yubin-tlsd [-S] [-u nobody -g nogroup] -- yubin-smtpd [-s]
over a temporary instance (smtpdtest.Instance: control files,
users.cdb, a fake queue), with control/cert.pem and key.pem made by
openssl and users/passwd holding alice's scrypt hash.  Clients: python
smtplib, swaks, curl, and raw sockets.

Prints "PASS name" or "FAIL name: why" per case.  YUBIN_BIN selects the
binaries (default build/bin)."""

import base64
import concurrent.futures
import os
import pwd
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from smtpdtest import IO_TIMEOUT, SMTPD, SMUGGLE_ENDS, Instance, start_tcpserver, stop_servers  # noqa: E402
from yubintest import (Failure, binary, case_list, check, expect, make_cert,  # noqa: E402
                       phc_scrypt, run, run_cases, tls_client_ctx)

TLSD = binary("yubin-tlsd")
PASSWORD = "correct horse battery staple"


class TLSInstance(Instance):
    """An Instance with a certificate, users/passwd, and tcpserver +
    yubin-tlsd servers in front of yubin-smtpd."""

    def __init__(self, control=None):
        super().__init__(control)
        os.chmod(self.root, 0o755)
        os.chmod(self.qdir, 0o777)
        ctl = os.path.join(self.root, "control")
        make_cert(os.path.join(ctl, "key.pem"), os.path.join(ctl, "cert.pem"), "example.org")
        with open(os.path.join(self.root, "users", "passwd"), "w") as f:
            f.write("# test users\nalice:%s:1000:1000:/home/alice\nbob:%s:1000:1000:/home/bob\n"
                    % (phc_scrypt(PASSWORD), phc_scrypt("bobs password")))
        # the daemon runs as nobody when we are root: in this test instance
        # it may read passwd directly (the real one is 0640, see
        # yubin-checkpassword.8)
        os.chmod(os.path.join(self.root, "users", "passwd"), 0o644)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("nobody")
            self.ug = ["-u", str(pw.pw_uid), "-g", str(pw.pw_gid)]
        else:
            self.ug = []
        self.servers = []

    def server(self, starttls=True, submission=False, extra=None, auth=True):
        """tcpserver -> yubin-tlsd [-S] -> yubin-smtpd [-s | -a]; returns its port."""
        log = open(os.path.join(self.root, "log.%d" % len(self.logs)), "w+b")
        self.logs.append(log)
        env = self.env(extra)
        for k in ("UID", "GID", "GIDLIST", "SSLCTLFD", "SSLREADFD", "SSLWRITEFD", "SSL_PROTOCOL", "SSL_CIPHER"):
            env.pop(k, None)
        p, port = start_tcpserver(
            lambda port: ["tcpserver", "-R", "-H", "-l", "localhost", "-c", "100", "-b", "64", "127.0.0.1", str(port), TLSD]
            + (["-S"] if starttls else []) + self.ug + ["--", SMTPD] + (["-s"] if submission else ["-a"] if auth else []),
            env, log)
        self.servers.append(p)
        return port

    def stop_servers(self):
        stop_servers(self.servers)
        self.servers = []

    def finish(self):
        # let the last sessions write their log lines
        time.sleep(0.2)
        self.stop_servers()
        super().finish()

    def cleanup(self):
        self.stop_servers()
        super().cleanup()


class Raw:
    """A byte-exact SMTP client that can switch to TLS."""

    def __init__(self, port, implicit=False):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        if implicit:
            self.s = tls_client_ctx().wrap_socket(self.s)
        self.buf = b""

    def starttls(self):
        expect(not self.buf, "data after 220 to STARTTLS: %r" % self.buf)
        self.s = tls_client_ctx().wrap_socket(self.s)
        return self.s.version(), self.s.cipher()[0]

    def send(self, data):
        self.s.sendall(data.encode() if isinstance(data, str) else data)

    def reply(self):
        lines = []
        while True:
            while b"\n" not in self.buf:
                d = self.s.recv(65536)
                if not d:
                    raise Failure("connection closed, pending %r after %r" % (self.buf, lines))
                self.buf += d
            ln, self.buf = self.buf.split(b"\n", 1)
            expect(ln.endswith(b"\r"), "reply line without CRLF: %r" % ln)
            ln = ln[:-1]
            lines.append(ln)
            if len(ln) < 4 or ln[3:4] != b"-":
                return int(ln[:3]), lines

    def expect(self, code, what=""):
        c, lines = self.reply()
        expect(c == code, "%s: expected %d, got %r" % (what, code, lines))
        return lines

    def cmd(self, line, code, what=None):
        self.send((line if isinstance(line, bytes) else line.encode()) + b"\r\n")
        return self.expect(code, what or str(line))

    def ehlo(self, name="client.example"):
        lines = self.cmd("EHLO " + name, 250)
        return [ln[4:].decode() for ln in lines[1:]]

    def rest(self, timeout=IO_TIMEOUT):
        self.s.settimeout(timeout)
        data = self.buf
        self.buf = b""
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return data
                data += d
        except socket.timeout:
            raise Failure("connection not closed, got %r" % data)
        except (ssl.SSLError, ConnectionResetError):
            return data

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def tls_session(port, user=None, password=PASSWORD, implicit=False):
    c = Raw(port, implicit)
    c.expect(220, "greeting")
    if not implicit:
        kw = c.ehlo()
        expect("STARTTLS" in kw, "STARTTLS not offered: %r" % kw)
        c.cmd("STARTTLS", 220)
        c.starttls()
    kw = c.ehlo()
    expect("AUTH PLAIN LOGIN" in kw and "STARTTLS" not in kw, "EHLO over TLS: %r" % kw)
    if user:
        c.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (user, password)), 235)
    return c


# ---------- the cases ----------

CASES, case = case_list()


@case
def smtplib_starttls_login(inst):
    port = inst.server()
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=IO_TIMEOUT) as s:
        s.ehlo()
        expect(s.has_extn("starttls"), "no STARTTLS before TLS")
        expect(not s.has_extn("auth"), "AUTH offered before TLS")
        expect(s.has_extn("smtputf8"), "no SMTPUTF8")
        s.starttls(context=tls_client_ctx())
        s.ehlo()
        expect(s.has_extn("auth") and not s.has_extn("starttls"), "EHLO after TLS: %r" % s.esmtp_features)
        expect(set(s.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}, "AUTH %r" % s.esmtp_features["auth"])
        code, msg = s.login("alice", PASSWORD)
        expect(code == 235 and msg == b"2.7.0 Authentication successful", "login %d %r" % (code, msg))
        refused = s.sendmail("alice@example.org", ["someone@other.example", "bob@example.org"],
                             "Subject: via submission\r\n\r\nhello\r\n")
        expect(not refused, "refused %r" % refused)
    inst.finish()
    got = inst.committed()
    expect(len(got) == 1, "queued %d" % len(got))
    msg, sender, rcpts = got[0]
    expect(sender == b"alice@example.org" and rcpts == [b"someone@other.example", b"bob@example.org"],
          "envelope %r %r" % (sender, rcpts))
    hdr = re.match(rb"Received: from client\.example \((localhost|127\.0\.0\.1) \[127\.0\.0\.1\]\)\n"
                   rb"\t\(using TLSv1\.[23] with cipher [A-Za-z0-9_-]+\)\n"
                   rb"\t\(authenticated as alice\)\n"
                   rb"\tby example\.org \(yubin\) with ESMTPSA id \S+;\n", msg)
    expect(hdr, "Received: %r" % msg[:400])
    expect(PASSWORD.encode() not in msg and b64("\0alice\0" + PASSWORD).encode() not in msg, "password in the message")
    log = inst.logtext()
    expect(re.search(rb"smtpd: tls ip=127\.0\.0\.1 proto=TLSv1\.[23] cipher=", log), "no tls log line")
    expect(b"smtpd: auth ip=127.0.0.1 user=alice mech=PLAIN\n" in log, "no auth log line: %r" % log[-2000:])
    expect(PASSWORD.replace(" ", "\\x20").encode() not in log and PASSWORD.encode() not in log, "password in the log")


@case
def smtplib_auth_login_mech(inst):
    port = inst.server()
    with smtplib.SMTP("127.0.0.1", port, timeout=IO_TIMEOUT) as s:
        s.starttls(context=tls_client_ctx())
        s.ehlo("client.example")
        s.user, s.password = "Alice", PASSWORD
        code, msg = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
        expect(code == 235, "LOGIN %d %r" % (code, msg))
        s.sendmail("ALICE-lists@Example.ORG", ["bob@example.org"], "Subject: login\r\n\r\nx\r\n")
    # raw: LOGIN with an initial response, PLAIN without one, "=" for empty
    c = tls_session(port)
    c.cmd("AUTH LOGIN " + b64("bob"), 334)
    lines = c.cmd(b64("bobs password"), 235)
    expect(lines == [b"235 2.7.0 Authentication successful"], "reply %r" % lines)
    c.cmd("AUTH PLAIN", 503, "AUTH after AUTH")
    c.cmd("QUIT", 221)
    c.close()
    c = tls_session(port)
    lines = c.cmd("AUTH PLAIN", 334)
    expect(lines == [b"334 "], "PLAIN challenge %r" % lines)
    c.cmd(b64("alice\0alice\0" + PASSWORD), 235)
    c.cmd("QUIT", 221)
    c.close()
    c = tls_session(port)
    lines = c.cmd("AUTH LOGIN", 334)
    expect(lines == [b"334 VXNlcm5hbWU6"], "LOGIN challenge %r" % lines)
    lines = c.cmd(b64("alice"), 334)
    expect(lines == [b"334 UGFzc3dvcmQ6"], "LOGIN challenge 2 %r" % lines)
    c.cmd(b64(PASSWORD), 235)
    c.cmd("QUIT", 221)
    c.close()
    inst.finish()
    got = inst.committed()
    expect(len(got) == 1 and got[0][1] == b"ALICE-lists@example.org", "queued %r" % [g[1:] for g in got])
    expect(b"(authenticated as Alice)" in got[0][0], "Received: %r" % got[0][0][:300])
    log = inst.logtext()
    expect(b"smtpd: auth ip=127.0.0.1 user=bob mech=LOGIN\n" in log, "no LOGIN auth line")


@case
def auth_before_starttls_refused(inst):
    port = inst.server()
    c = Raw(port)
    c.expect(220)
    kw = c.ehlo()
    expect(not any(k.startswith("AUTH") for k in kw), "AUTH offered in cleartext: %r" % kw)
    lines = c.cmd("AUTH PLAIN " + b64("\0alice\0" + PASSWORD), 538)
    expect(lines == [b"538 5.7.11 Encryption required for requested authentication mechanism"], "reply %r" % lines)
    c.cmd("AUTH LOGIN", 538)
    # still no relaying
    c.cmd("MAIL FROM:<alice@example.org>", 250)
    c.cmd("RCPT TO:<someone@other.example>", 553)
    c.cmd("QUIT", 221)
    c.close()
    inst.finish()
    log = inst.logtext()
    expect(b"smtpd: auth " not in log and b"auth-fail" not in log, "an AUTH was tried in cleartext")
    expect(b"checkpassword" not in log, "checkpassword ran")


@case
def wrong_password(inst):
    port = inst.server()
    c = tls_session(port)
    t0 = time.time()
    lines = c.cmd("AUTH PLAIN " + b64("\0alice\0wrong"), 535)
    expect(lines == [b"535 5.7.8 Authentication credentials invalid"], "reply %r" % lines)
    t1 = time.time()
    c.cmd("AUTH LOGIN " + b64("nosuchuser"), 334)
    c.cmd(b64("whatever"), 535, "unknown user")
    t2 = time.time()
    expect(t2 - t1 >= 0.9, "second failure not delayed (%.2fs)" % (t2 - t1))
    expect(t1 - t0 < 5, "first failure took %.2fs" % (t1 - t0))
    # still usable: a good password works
    c.cmd("AUTH PLAIN " + b64("\0alice\0" + PASSWORD), 235)
    c.cmd("QUIT", 221)
    c.close()
    # three failures: 421 and the end
    c = tls_session(port)
    c.cmd("AUTH PLAIN " + b64("\0x ip=192.0.2.1\nsmtpd: auth\0pw"), 535)
    c.cmd("AUTH PLAIN " + b64("\0alice\0bad2"), 535)
    lines = c.cmd("AUTH PLAIN " + b64("\0alice\0bad3"), 421)
    expect(lines[0].startswith(b"421 4.7.0"), "reply %r" % lines)
    expect(c.rest() == b"", "data after 421")
    c.close()
    inst.finish()
    log = inst.logtext()
    fails = re.findall(rb"smtpd: auth-fail ip=127\.0\.0\.1 user=(\S+) mech=(\w+)\n", log)
    expect((b"alice", b"PLAIN") in fails and (b"nosuchuser", b"LOGIN") in fails, "auth-fail lines %r" % fails)
    expect((b"x\\x20ip\\x3d192.0.2.1\\x0asmtpd:\\x20auth", b"PLAIN") in fails, "user not escaped: %r" % fails)
    expect(len(fails) == 5, "auth-fail lines %r" % fails)
    expect(b"reason=too-many-auth-failures" in log, "no 421 log line")
    expect(b"wrong" not in log and b"bad2" not in log, "password in the log")


@case
def auth_protocol_errors(inst):
    port = inst.server()
    c = tls_session(port)
    c.cmd("AUTH PLAIN", 334)
    lines = c.cmd("*", 501, "cancel")
    expect(lines[0].startswith(b"501 "), "cancel %r" % lines)
    lines = c.cmd("AUTH PLAIN !!!!", 501)
    expect(lines[0].startswith(b"501 5.5.2"), "bad base64 %r" % lines)
    c.cmd("AUTH PLAIN QR==", 501, "stray bits")
    c.cmd("AUTH PLAIN QQ=", 501, "bad padding")
    c.cmd("AUTH PLAIN =", 501, "empty PLAIN")
    c.cmd("AUTH PLAIN " + b64("alice" + PASSWORD), 501, "no NULs")
    c.cmd("AUTH PLAIN " + b64("bob\0alice\0" + PASSWORD), 535, "authzid of someone else")
    c.cmd("AUTH CRAM-MD5", 504)
    c.cmd("QUIT", 221)
    c.close()
    c = tls_session(port)   # a fresh error count
    c.cmd("AUTH", 501)
    c.cmd("AUTH LOGIN", 334)
    c.cmd("*", 501)
    c.cmd("AUTH PLAIN", 334)
    c.cmd("x" * 1200, 500, "overlong response")
    c.cmd("MAIL FROM:<a@example.net>", 250)
    c.cmd("AUTH PLAIN " + b64("\0alice\0" + PASSWORD), 503, "AUTH in a transaction")
    c.cmd("RSET", 250)
    c.cmd("AUTH PLAIN " + b64("\0alice\0" + PASSWORD), 235)
    c.cmd("QUIT", 221)
    c.close()
    # no EHLO over TLS yet: 503
    c = Raw(port)
    c.expect(220)
    c.ehlo()
    c.cmd("STARTTLS", 220)
    c.starttls()
    c.cmd("AUTH PLAIN " + b64("\0alice\0" + PASSWORD), 503, "AUTH before EHLO")
    c.cmd("HELO x", 250)
    c.cmd("AUTH PLAIN " + b64("\0alice\0" + PASSWORD), 503, "AUTH after HELO")
    c.cmd("QUIT", 221)
    c.close()
    inst.finish()
    expect(b"auth-fail" not in inst.logtext(), "a protocol error counted as a failed login")


@case
def checkpassword_trouble(inst):
    port = inst.server(extra={"CHECKPASSWORD": "/nonexistent/checkpassword"})
    c = tls_session(port)
    lines = c.cmd("AUTH PLAIN " + b64("\0alice\0" + PASSWORD), 454)
    expect(lines == [b"454 4.7.0 Temporary authentication failure"], "reply %r" % lines)
    c.cmd("QUIT", 221)
    c.close()
    script = os.path.join(inst.root, "cp111")
    with open(script, "w") as f:
        f.write("#!/bin/sh\nexit 111\n")
    os.chmod(script, 0o755)
    port = inst.server(extra={"CHECKPASSWORD": script})
    c = tls_session(port)
    c.cmd("AUTH PLAIN " + b64("\0alice\0" + PASSWORD), 454)
    c.cmd("QUIT", 221)
    c.close()
    inst.finish()
    log = inst.logtext()
    expect(b"reason=checkpassword status=111" in log, "no error line: %r" % log[-1500:])
    expect(b"auth-fail" not in log, "temporary trouble logged as auth-fail")


@case
def starttls_injection(inst):
    port = inst.server()
    c = Raw(port)
    c.expect(220)
    c.ehlo()
    c.send(b"STARTTLS\r\nNOOP\r\nMAIL FROM:<evil@example.net>\r\n")
    c.expect(220, "STARTTLS")
    c.starttls()
    c.s.settimeout(1.5)
    try:
        d = c.s.recv(4096)
        expect(False, "reply over TLS to a command sent in cleartext: %r" % d)
    except socket.timeout:
        pass
    c.s.settimeout(IO_TIMEOUT)
    c.cmd("MAIL FROM:<a@example.net>", 503, "MAIL before EHLO over TLS (session reset)")
    kw = c.ehlo()
    expect("AUTH PLAIN LOGIN" in kw, "EHLO %r" % kw)
    c.cmd("QUIT", 221)
    expect(c.rest() == b"", "more replies")
    c.close()
    # a client that sends cleartext right after 220 (not pipelined): the
    # handshake fails and the session ends
    c = Raw(port)
    c.expect(220)
    c.ehlo()
    c.cmd("STARTTLS", 220)
    c.send(b"NOOP\r\nNOOP\r\n")
    data = c.rest(10)
    expect(b"250" not in data, "cleartext after STARTTLS answered: %r" % data)
    c.close()
    inst.finish()
    expect(b"evil@example.net" not in inst.logtext(), "injected MAIL executed")
    expect(b"reason=tls-handshake-failed" in inst.logtext(), "no handshake-failed line")


@case
def starttls_twice_and_syntax(inst):
    port = inst.server()
    c = Raw(port)
    c.expect(220)
    c.ehlo()
    c.cmd("STARTTLS now", 501)
    c.cmd("STARTTLS", 220)
    c.starttls()
    c.ehlo()
    c.cmd("STARTTLS", 503)
    c.cmd("QUIT", 221)
    c.close()
    c = Raw(inst.server(starttls=False), implicit=True)
    c.expect(220)
    kw = c.ehlo()
    expect("STARTTLS" not in kw and "AUTH PLAIN LOGIN" in kw, "implicit EHLO %r" % kw)
    c.cmd("STARTTLS", 503)
    c.cmd("QUIT", 221)
    c.close()
    inst.finish()


@case
def submission_mode(inst):
    port = inst.server(submission=True)
    # cleartext: no AUTH possible, so no MAIL
    c = Raw(port)
    c.expect(220)
    c.ehlo()
    lines = c.cmd("MAIL FROM:<alice@example.org>", 530)
    expect(lines == [b"530 5.7.0 Authentication required"], "reply %r" % lines)
    c.cmd("QUIT", 221)
    c.close()
    c = tls_session(port)
    c.cmd("MAIL FROM:<alice@example.org>", 530, "MAIL before AUTH over TLS")
    c.cmd("AUTH PLAIN " + b64("\0alice\0" + PASSWORD), 235)
    lines = c.cmd("MAIL FROM:<bob@example.org>", 553)
    expect(lines == [b"553 5.7.1 Sender address not owned by user"], "reply %r" % lines)
    c.cmd("MAIL FROM:<alice@other.example>", 553)
    c.cmd("MAIL FROM:<alicex@example.org>", 553)
    c.cmd("MAIL FROM:<>", 553)
    c.cmd("MAIL FROM:<alice-ext@example.org>", 250)
    c.cmd("RCPT TO:<friend@elsewhere.example>", 250, "relay after AUTH")
    c.cmd("RCPT TO:<nobody@example.org>", 550, "unknown local user")
    c.cmd("DATA", 354)
    c.send(b"Subject: s\r\n\r\nsubmitted\r\n.\r\n")
    c.expect(250)
    c.cmd("QUIT", 221)
    c.close()
    # implicit TLS (465): the same
    port2 = inst.server(starttls=False, submission=True)
    c = Raw(port2, implicit=True)
    c.expect(220)
    c.ehlo()
    c.cmd("MAIL FROM:<alice@example.org>", 530)
    c.cmd("AUTH PLAIN " + b64("\0alice\0" + PASSWORD), 235)
    c.cmd("MAIL FROM:<alice@example.org>", 250)
    c.cmd("RCPT TO:<friend@elsewhere.example>", 250)
    c.cmd("DATA", 354)
    c.send(b"Subject: s2\r\n\r\nimplicit\r\n.\r\n")
    c.expect(250)
    c.cmd("QUIT", 221)
    c.close()
    # ANYSENDER: any sender for an authenticated user
    port3 = inst.server(submission=True, extra={"ANYSENDER": "1"})
    c = tls_session(port3, user="alice")
    c.cmd("MAIL FROM:<boss@other.example>", 250)
    c.cmd("RSET", 250)
    c.cmd("QUIT", 221)
    c.close()
    # port 25 over TLS without AUTH: no relaying
    port4 = inst.server()
    c = tls_session(port4)
    c.cmd("MAIL FROM:<x@example.net>", 250)
    c.cmd("RCPT TO:<friend@elsewhere.example>", 553)
    c.cmd("QUIT", 221)
    c.close()
    inst.finish()
    got = inst.committed()
    expect(len(got) == 2, "queued %d" % len(got))
    for msg, sender, rcpts in got:
        expect(rcpts == [b"friend@elsewhere.example"], "recipients %r" % rcpts)
        expect(b"with ESMTPSA id" in msg.split(b"\n\n")[0], "Received: %r" % msg[:300])
    expect(b"reason=sender-not-owned" in inst.logtext(), "no sender-not-owned log line")


@case
def anysender_control_file(inst):
    with open(os.path.join(inst.root, "control", "submission_anysender"), "w") as f:
        f.write("1\n")
    port = inst.server(submission=True)
    c = tls_session(port, user="alice")
    c.cmd("MAIL FROM:<boss@other.example>", 250)
    c.cmd("QUIT", 221)
    c.close()
    port = inst.server(submission=True, extra={"ANYSENDER": "0"})
    c = tls_session(port, user="alice")
    c.cmd("MAIL FROM:<boss@other.example>", 553, "ANYSENDER=0 overrides the control file")
    c.cmd("QUIT", 221)
    c.close()
    inst.finish()


@case
def smuggling_over_tls(inst):
    port = inst.server()
    for end in SMUGGLE_ENDS:
        before = len(inst.committed())
        c = tls_session(port, user="alice")
        c.cmd("MAIL FROM:<alice@example.org>", 250)
        c.cmd("RCPT TO:<bob@example.org>", 250)
        c.cmd("DATA", 354)
        c.send(b"Subject: legit\r\n\r\nhello" + end +
               b"MAIL FROM:<alice@example.org>\r\nRCPT TO:<victim@elsewhere.example>\r\nDATA\r\n"
               b"Subject: smuggled\r\n\r\nevil\r\n.\r\nQUIT\r\n")
        data = c.rest()
        replies = [ln for ln in data.split(b"\r\n") if ln]
        expect(len(replies) == 2 and replies[1].startswith(b"221 "), "variant %r: replies %r" % (end, replies))
        after = inst.committed()
        expect(len(after) - before <= 1, "variant %r: more than one message" % end)
        for m, s, r in after:
            expect(b"victim@elsewhere.example" not in r, "variant %r: smuggled message queued" % end)
        c.close()
    inst.finish()


def flood_session(port, n):
    """One session with n failed logins; returns the replies' codes."""
    codes = []
    c = tls_session(port)
    try:
        for i in range(n):
            c.send("AUTH PLAIN %s\r\n" % b64("\0alice\0guess%d" % i))
            code, _ = c.reply()
            codes.append(code)
            if code == 421:
                break
    finally:
        c.close()
    return codes


@case
def failed_login_flood(inst):
    port = inst.server()
    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        futs = [pool.submit(flood_session, port, 3) for _ in range(17)]
        # while the attack runs, a normal user still gets through quickly
        time.sleep(0.5)
        t1 = time.time()
        with smtplib.SMTP("127.0.0.1", port, timeout=IO_TIMEOUT) as s:
            s.starttls(context=tls_client_ctx())
            s.login("bob", "bobs password")
            s.sendmail("bob@example.org", ["alice@example.org"], "Subject: during the flood\r\n\r\nok\r\n")
        normal = time.time() - t1
        codes = [f.result(timeout=60) for f in futs]
    total = time.time() - t0
    expect(normal < 5, "a normal session took %.1fs during the flood" % normal)
    flat = [x for cs in codes for x in cs]
    expect(flat.count(535) + flat.count(421) >= 50, "codes %r" % codes)
    expect(all(cs == [535, 535, 421] for cs in codes), "codes %r" % codes)
    expect(total < 60, "the flood took %.1fs" % total)
    inst.finish()
    log = inst.logtext()
    expect(log.count(b"smtpd: auth-fail ip=127.0.0.1 user=alice mech=PLAIN") >= 50, "auth-fail lines")
    got = inst.committed()
    expect(len(got) == 1 and got[0][1] == b"bob@example.org", "queued %d" % len(got))


@case
def swaks_tls_auth(inst):
    if not shutil.which("swaks"):
        raise Failure("swaks not installed")
    port = inst.server()
    iport = inst.server(starttls=False)
    runs = [
        (port, ["--tls", "--auth", "PLAIN"]),
        (port, ["--tls", "--auth", "LOGIN"]),
        (iport, ["--tlsc", "--auth", "PLAIN"]),
    ]
    for p, args in runs:
        r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(p), "--helo", "swaks.example",
                            "--from", "alice@example.org", "--to", "someone@elsewhere.example",
                            "--auth-user", "alice", "--auth-password", PASSWORD, "--timeout", "20"] + args,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        out = r.stdout.decode(errors="replace")
        expect(r.returncode == 0, "swaks %r exit %d: %s" % (args, r.returncode, out[-1500:]))
        expect("235 2.7.0" in out, "swaks %r: no 235: %s" % (args, out[-1500:]))
    # wrong password: swaks fails
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(port), "--tls", "--auth", "PLAIN",
                        "--from", "alice@example.org", "--to", "bob@example.org",
                        "--auth-user", "alice", "--auth-password", "nope", "--timeout", "20"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    expect(r.returncode != 0 and b"535 5.7.8" in r.stdout, "swaks with a wrong password: %r" % r.stdout[-500:])
    inst.finish()
    got = inst.committed()
    expect(len(got) == 3, "queued %d" % len(got))
    for msg, sender, rcpts in got:
        expect(sender == b"alice@example.org" and rcpts == [b"someone@elsewhere.example"], "envelope")
        expect(b"with ESMTPSA" in msg.split(b"\n\n")[0], "Received %r" % msg[:300])


@case
def curl_smtp_and_smtps(inst):
    if not shutil.which("curl"):
        raise Failure("curl not installed")
    port = inst.server(submission=True)
    iport = inst.server(starttls=False, submission=True)
    mail = os.path.join(inst.root, "mail.txt")
    with open(mail, "wb") as f:
        f.write(b"From: alice@example.org\r\nTo: x@elsewhere.example\r\nSubject: curl\r\n\r\nvia curl\r\n")
    for url, extra in (("smtp://127.0.0.1:%d" % port, ["--ssl-reqd"]), ("smtps://127.0.0.1:%d" % iport, [])):
        r = subprocess.run(["curl", "-sS", "-k", "--max-time", "30", url] + extra +
                           ["--user", "alice:" + PASSWORD, "--mail-from", "alice@example.org",
                            "--mail-rcpt", "x@elsewhere.example", "-T", mail],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        expect(r.returncode == 0, "curl %s exit %d: %r" % (url, r.returncode, r.stdout[-800:]))
    # --ssl-reqd against a server without STARTTLS refuses to send
    inst2 = Instance()
    try:
        lport, h = inst2.listen()
        try:
            r = subprocess.run(["curl", "-sS", "-k", "--max-time", "20", "smtp://127.0.0.1:%d" % lport, "--ssl-reqd",
                                "--user", "alice:" + PASSWORD, "--mail-from", "alice@example.org",
                                "--mail-rcpt", "bob@example.org", "-T", mail],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
            expect(r.returncode != 0, "curl --ssl-reqd sent without TLS")
        finally:
            inst2.unlisten(h)
        inst2.finish()
        expect(not inst2.committed(), "queued without TLS")
    finally:
        inst2.cleanup()
    inst.finish()
    got = inst.committed()
    expect(len(got) == 2, "queued %d" % len(got))
    for msg, sender, rcpts in got:
        expect(sender == b"alice@example.org" and rcpts == [b"x@elsewhere.example"], "envelope %r %r" % (sender, rcpts))


@case
def smtputf8_over_tls(inst):
    port = inst.server(submission=True)
    c = tls_session(port, user="alice")
    c.cmd("MAIL FROM:<alice@example.org> SMTPUTF8", 250)
    c.cmd("RCPT TO:<\u00fcser@elsewhere.example>".encode(), 250)
    c.cmd("DATA", 354)
    c.send("Subject: gr\u00fc\u00dfe\r\n\r\nhi\r\n.\r\n".encode())
    c.expect(250)
    c.cmd("QUIT", 221)
    c.close()
    inst.finish()
    got = inst.committed()
    expect(len(got) == 1 and got[0][2] == ["\u00fcser@elsewhere.example".encode()], "queued %r" % got)
    expect(b" with UTF8SMTPSA id " in got[0][0], "Received %r" % got[0][0][:300])


def main():
    for tool in ("tcpserver", "openssl"):
        if not shutil.which(tool):
            check("setup", False, "%s not installed" % tool)
            return
    for prog in (TLSD, SMTPD, binary("yubin-checkpassword")):
        if not os.access(prog, os.X_OK):
            check("setup", False, "%s not found (set YUBIN_BIN)" % prog)
            return
    run_cases(CASES, TLSInstance, timed=True)


run(main)
