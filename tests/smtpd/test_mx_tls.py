#!/usr/bin/env python3
"""STARTTLS on the MX port (25), both ways of running it: tcpserver +
yubin-tlsd -S + yubin-smtpd, and TLS on demand, the chain of
package/services/smtpd/run: tcpserver -U + yubin-smtpd with $TLSD (empty:
yubin-tlsd found next to yubin-smtpd) and $TLSDTIMEOUT, where yubin-smtpd
starts yubin-tlsd -E only at STARTTLS; both WITHOUT -s or -a.  STARTTLS is
offered, swaks --tls delivers, AUTH is neither offered nor accepted before
or after TLS (even with a valid password), commands pipelined behind
STARTTLS in cleartext are thrown away (CVE-2011-0411), relaying stays
closed over TLS; and -a turns AUTH on for whoever wants it on port 25.
On demand also: garbage instead of a ClientHello closes the connection
and logs handshake-fail, a cleartext session has no yubin-tlsd process
(and a TLS one has), and a killed yubin-tlsd ends yubin-smtpd.

Over a temporary instance (smtpdtest.Instance: control files, users.cdb,
a fake queue) with control/cert.pem and key.pem made by openssl and
users/passwd holding alice's scrypt hash.  Prints "PASS name" or "FAIL
name: why" per case.  YUBIN_BIN selects the binaries (default build/bin)."""

import base64
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from smtpdtest import IO_TIMEOUT, SMTPD, Instance, start_tcpserver, stop_servers  # noqa: E402
from yubintest import (Failure, binary, case_list, check, expect, make_cert,  # noqa: E402
                       phc_scrypt, run, run_cases, tls_client_ctx)

TLSD = binary("yubin-tlsd")
PASSWORD = "correct horse battery staple"
PLAIN = base64.b64encode(b"\0alice\0" + PASSWORD.encode()).decode()


class MXInstance(Instance):
    def __init__(self):
        super().__init__()
        os.chmod(self.root, 0o755)
        os.chmod(self.qdir, 0o777)
        ctl = os.path.join(self.root, "control")
        make_cert(os.path.join(ctl, "key.pem"), os.path.join(ctl, "cert.pem"), "example.org")
        with open(os.path.join(self.root, "users", "passwd"), "w") as f:
            f.write("alice:%s:1000:1000:/home/alice\n" % phc_scrypt(PASSWORD, ln=4))
        os.chmod(os.path.join(self.root, "users", "passwd"), 0o644)
        self.uidgid = None
        if os.geteuid() == 0:
            pw = pwd.getpwnam("nobody")
            self.ug = ["-u", str(pw.pw_uid), "-g", str(pw.pw_gid)]
            self.uidgid = (pw.pw_uid, pw.pw_gid)
            # on demand, yubin-tlsd runs as the session's uid (in an
            # instance it is setgid to the key's group; not in a build tree)
            os.chown(os.path.join(ctl, "key.pem"), pw.pw_uid, pw.pw_gid)
        else:
            self.ug = []
        self.servers = []

    def server(self, smtpd_args=(), ondemand=False):
        """tcpserver -> yubin-tlsd -S -K 10000 -> yubin-smtpd [args], or
        (ondemand) tcpserver -U -> yubin-smtpd [args] with TLSD= and
        TLSDTIMEOUT=10000, as the run script; its port."""
        log = open(os.path.join(self.root, "log.%d" % len(self.logs)), "w+b")
        self.logs.append(log)
        env = self.env()
        if ondemand:
            env["TLSD"] = ""
            env["TLSDTIMEOUT"] = "10000"
            if self.uidgid:
                env["UID"], env["GID"] = str(self.uidgid[0]), str(self.uidgid[1])
        def argv(port):
            cmd = ["tcpserver", "-R", "-H", "-l", "localhost", "-c", "100", "-b", "64"]
            if ondemand:
                return cmd + ["-U", "127.0.0.1", str(port), SMTPD] + list(smtpd_args)
            return cmd + ["127.0.0.1", str(port), TLSD, "-S", "-K", "10000"] + self.ug + ["--", SMTPD] + list(smtpd_args)
        p, port = start_tcpserver(argv, env, log)
        self.servers.append(p)
        self.server_pid = p.pid
        return port

    def stop_servers(self):
        stop_servers(self.servers)
        self.servers = []

    def finish(self):
        time.sleep(0.2)   # the last sessions' log lines
        self.stop_servers()
        super().finish()

    def cleanup(self):
        self.stop_servers()
        super().cleanup()


class Raw:
    """A byte-exact SMTP client that can switch to TLS."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        self.buf = b""

    def starttls(self):
        expect(not self.buf, "data after 220 to STARTTLS: %r" % self.buf)
        self.s = tls_client_ctx().wrap_socket(self.s)

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
            ln = ln.rstrip(b"\r")
            lines.append(ln)
            if len(ln) < 4 or ln[3:4] != b"-":
                return int(ln[:3]), lines

    def cmd(self, line, code, what=None):
        self.send(line + "\r\n")
        c, lines = self.reply()
        expect(c == code, "%s: expected %d, got %r" % (what or line, code, lines))
        return lines

    def ehlo(self):
        return [ln[4:].decode() for ln in self.cmd("EHLO client.example", 250)[1:]]

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


CASES, case = case_list()


def tree(root):
    """{pid: basename of its executable} for root's descendants."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
            ppid = int(st[st.rindex(")") + 2:].split()[1])
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv0 = f.read().split(b"\0")[0]
        except (OSError, ValueError):
            continue
        kids.setdefault(ppid, []).append((int(d), os.path.basename(argv0).decode(errors="replace")))
    out, todo = {}, [root]
    while todo:
        for pid, name in kids.get(todo.pop(), []):
            out[pid] = name
            todo.append(pid)
    return out


def wait_tree(root, pred, what, secs=5):
    deadline = time.time() + secs
    while True:
        t = tree(root)
        if pred(t):
            return t
        if time.time() > deadline:
            raise Failure("%s: process tree %r" % (what, t))
        time.sleep(0.05)


def tls_up(port):
    c = Raw(port)
    c.reply()
    kw = c.ehlo()
    expect("STARTTLS" in kw, "STARTTLS not offered on the MX port: %r" % kw)
    c.cmd("STARTTLS", 220)
    c.starttls()
    return c, kw


def starttls_offered_auth_absent(inst, ondemand=False):
    port = inst.server(ondemand=ondemand)
    c = Raw(port)
    c.reply()
    kw = c.ehlo()
    expect("STARTTLS" in kw and not any(k.startswith("AUTH") for k in kw), "cleartext EHLO %r" % kw)
    c.cmd("AUTH PLAIN " + PLAIN, 538, "AUTH before TLS")
    c.cmd("STARTTLS", 220)
    c.starttls()
    expect(c.s.version() in ("TLSv1.2", "TLSv1.3"), "TLS version %r" % c.s.version())
    kw = c.ehlo()
    expect(not any(k.startswith("AUTH") for k in kw) and "STARTTLS" not in kw, "EHLO over TLS %r" % kw)
    lines = c.cmd("AUTH PLAIN " + PLAIN, 503, "AUTH over TLS with a valid password")
    expect(b"not enabled" in lines[0], "AUTH reply %r" % lines)
    c.cmd("AUTH LOGIN", 503, "AUTH LOGIN over TLS")
    # the MX still takes mail for its own domains, and still relays nothing
    c.cmd("MAIL FROM:<someone@example.net>", 250)
    c.cmd("RCPT TO:<outside@elsewhere.example>", 553, "relaying over TLS without AUTH")
    c.cmd("RCPT TO:<alice@example.org>", 250)
    c.cmd("DATA", 354)
    c.send("Subject: mx over tls\r\n\r\nhello\r\n.\r\n")
    code, lines = c.reply()
    expect(code == 250, "end of DATA %r" % lines)
    c.cmd("QUIT", 221)
    c.close()
    inst.finish()
    got = inst.committed()
    expect(len(got) == 1 and got[0][2] == [b"alice@example.org"], "queued %r" % [g[1:] for g in got])
    expect(b" with ESMTPS id " in got[0][0], "Received %r" % got[0][0][:300])
    log = inst.logtext()
    expect(b"reason=auth-not-enabled" in log, "no auth-not-enabled line")
    expect(b"checkpassword" not in log and b"auth-fail" not in log, "a password was checked: %r" % log[-800:])


def pipelined_after_starttls_discarded(inst, ondemand=False):
    port = inst.server(ondemand=ondemand)
    c = Raw(port)
    c.reply()
    c.ehlo()
    c.send(b"STARTTLS\r\nMAIL FROM:<evil@example.net>\r\nRCPT TO:<alice@example.org>\r\nAUTH PLAIN "
           + PLAIN.encode() + b"\r\n")
    code, lines = c.reply()
    expect(code == 220, "STARTTLS %r" % lines)
    c.starttls()
    c.s.settimeout(1.5)
    try:
        d = c.s.recv(4096)
        expect(False, "reply over TLS to a command sent in cleartext: %r" % d)
    except socket.timeout:
        pass
    c.s.settimeout(IO_TIMEOUT)
    c.cmd("RCPT TO:<alice@example.org>", 503, "RCPT over TLS (the cleartext MAIL must be forgotten)")
    c.cmd("MAIL FROM:<a@example.net>", 503, "MAIL before EHLO over TLS")
    c.ehlo()
    c.cmd("MAIL FROM:<a@example.net>", 250)
    c.cmd("RCPT TO:<alice@example.org>", 250)
    c.cmd("RSET", 250)
    c.cmd("QUIT", 221)
    c.close()
    inst.finish()
    log = inst.logtext()
    expect(b"evil@example.net" not in log, "the injected MAIL was executed: %r" % log[-800:])
    expect(not inst.committed(), "something was queued")


def swaks_tls(inst, ondemand=False):
    if not shutil.which("swaks"):
        raise Failure("swaks not installed")
    port = inst.server(ondemand=ondemand)
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(port), "--helo", "swaks.example",
                        "--from", "sender@example.net", "--to", "alice@example.org", "--tls",
                        "--timeout", "20"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    out = r.stdout.decode(errors="replace")
    expect(r.returncode == 0, "swaks --tls exit %d: %s" % (r.returncode, out[-1500:]))
    expect("TLS started" in out or "STARTTLS" in out, "no TLS in swaks' transcript: %s" % out[-1500:])
    # swaks --tls --auth: the MX does not offer AUTH, swaks gives up
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(port), "--tls", "--auth", "PLAIN",
                        "--auth-user", "alice", "--auth-password", PASSWORD,
                        "--from", "alice@example.org", "--to", "outside@elsewhere.example", "--timeout", "20"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    out2 = r.stdout.decode(errors="replace")
    expect(r.returncode != 0 and "235" not in out2, "swaks --auth on the MX port: exit %d %s" % (r.returncode, out2[-800:]))
    inst.finish()
    got = inst.committed()
    expect(len(got) == 1 and got[0][2] == [b"alice@example.org"], "queued %d" % len(got))


def auth_on_port25_when_asked(inst, ondemand=False):
    # -a: the operator's choice to let clients authenticate on port 25
    port = inst.server(["-a"], ondemand=ondemand)
    c, _ = tls_up(port)
    kw = c.ehlo()
    expect("AUTH PLAIN LOGIN" in kw, "EHLO over TLS with -a: %r" % kw)
    c.cmd("AUTH PLAIN " + PLAIN, 235, "AUTH with -a")
    c.cmd("QUIT", 221)
    c.close()
    inst.finish()


def garbage_client_hello(inst, ondemand=True):
    port = inst.server(ondemand=ondemand)
    c = Raw(port)
    c.reply()
    c.ehlo()
    c.cmd("STARTTLS", 220)
    c.send(b"GET / HTTP/1.0\r\nthis is not a ClientHello\r\n\r\n")
    c.s.settimeout(8)
    got = b""
    try:
        while True:
            d = c.s.recv(4096)
            if not d:
                break
            got += d
            expect(len(got) < 65536, "endless answer to garbage")
    except socket.timeout:
        raise Failure("connection still open after garbage instead of a ClientHello (got %r)" % got[:200])
    except ConnectionResetError:
        pass
    expect(b"250" not in got and b"220" not in got, "an SMTP reply after garbage: %r" % got[:200])
    c.close()
    inst.finish()
    log = inst.logtext()
    expect(b"handshake-fail" in log, "no handshake-fail in the log: %r" % log[-800:])
    expect(not inst.committed(), "something was queued")


def no_tlsd_in_cleartext(inst):
    port = inst.server(ondemand=True)
    root = inst.server_pid
    c = Raw(port)
    c.reply()
    kw = c.ehlo()
    expect("STARTTLS" in kw, "STARTTLS not offered: %r" % kw)
    c.cmd("MAIL FROM:<someone@example.net>", 250)
    t = wait_tree(root, lambda t: "yubin-smtpd" in t.values(), "no yubin-smtpd for the session")
    expect("yubin-tlsd" not in t.values(), "a yubin-tlsd in a cleartext session: %r" % t)
    c.cmd("RCPT TO:<alice@example.org>", 250)
    t = tree(root)
    expect("yubin-tlsd" not in t.values(), "a yubin-tlsd in a cleartext session: %r" % t)
    c.cmd("QUIT", 221)
    c.close()
    # and the test can see one: a TLS session has it
    c2, _ = tls_up(port)
    c2.ehlo()
    t = wait_tree(root, lambda t: "yubin-tlsd" in t.values(), "no yubin-tlsd in a TLS session")
    c2.cmd("QUIT", 221)
    c2.close()
    wait_tree(root, lambda t: not t, "processes left after the sessions")
    inst.finish()


def dead_tlsd_ends_smtpd(inst):
    port = inst.server(ondemand=True)
    root = inst.server_pid
    c, _ = tls_up(port)
    c.ehlo()
    t = wait_tree(root, lambda t: "yubin-tlsd" in t.values() and "yubin-smtpd" in t.values(), "TLS session")
    for pid, name in t.items():
        if name == "yubin-tlsd":
            os.kill(pid, 9)
    # yubin-smtpd reads EOF and leaves (a zombie yubin-tlsd goes with it)
    wait_tree(root, lambda t: not t, "yubin-smtpd still there after its yubin-tlsd was killed", secs=8)
    c.close()
    inst.finish()


for _fn in (starttls_offered_auth_absent, pipelined_after_starttls_discarded, swaks_tls, auth_on_port25_when_asked):
    CASES.append((_fn.__name__, _fn))
    CASES.append(("ondemand_" + _fn.__name__, lambda inst, _fn=_fn: _fn(inst, ondemand=True)))
CASES.append(("ondemand_garbage_client_hello", garbage_client_hello))
CASES.append(("ondemand_no_tlsd_in_cleartext", no_tlsd_in_cleartext))
CASES.append(("ondemand_dead_tlsd_ends_smtpd", dead_tlsd_ends_smtpd))


def main():
    for tool in ("tcpserver", "openssl"):
        if not shutil.which(tool):
            check("setup", False, "%s not installed" % tool)
            return
    for prog in (TLSD, SMTPD, binary("yubin-checkpassword")):
        if not os.access(prog, os.X_OK):
            check("setup", False, "%s not found (set YUBIN_BIN)" % prog)
            return
    run_cases(CASES, MXInstance, timed=True)


run(main)
