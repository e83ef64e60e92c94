#!/usr/bin/env python3
"""yubin-smtpd -l, the MX port's listener (package/services/smtpd/run):
a session per connection forked without an exec, with what tcpserver
would give it.  The session sees the real client address whatever the
listener's environment says; tcprules (the same cdb, built by tcprules)
deny a host and set RELAYCLIENT for another; -c holds the next client in
the backlog until a session ends; a session that dies of SIGSEGV makes the
listener exec itself afresh (same pid and socket, a new address layout)
and the port keeps answering, while a SIGKILLed one does not; -U drops to
$UID/$GID before the first connection; IPv6; bad command lines die with a
clear message.

Over smtpdtest.Instance (control files and a fake queue).  Prints "PASS
name" or "FAIL name: why" per case.  YUBIN_BIN selects the binaries."""

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from smtpdtest import IO_TIMEOUT, SMTPD, Client, Instance, greet_ehlo, start_tcpserver, stop_servers, transaction  # noqa: E402
from yubintest import Failure, case_list, check, expect, is_root, proc_children, run, run_cases, sanitizer_build, sanitizer_report, wait_for  # noqa: E402

CASES, case = case_list()


class ListenInstance(Instance):
    """An Instance with one yubin-smtpd -l of its own."""

    def __init__(self):
        super().__init__()
        self.servers = []
        self.port = None
        self.pid = None
        self.lfd = None

    def serve(self, opts=(), ip="127.0.0.1", env_extra=None):
        """Start yubin-smtpd -l opts ip PORT; its stderr is self.listenlog."""
        self.listenlog = os.path.join(self.root, "listen.log")
        log = open(self.listenlog, "ab")
        # the listener's own TCPREMOTEIP must not reach a session
        extra = {"TCPREMOTEIP": "192.0.2.99", "TCPREMOTEHOST": "forged.example"}
        opts = list(opts)
        if is_root():
            # the listener refuses to run sessions as root: as nobody here
            self.open_to_nobody()
            nobody = pwd.getpwnam("nobody")
            extra.update({"UID": str(nobody.pw_uid), "GID": str(nobody.pw_gid)})
            if "-U" not in opts:
                opts.insert(0, "-U")
        extra.update(env_extra or {})
        env = self.env(extra)
        p, port = start_tcpserver(lambda port: [SMTPD, "-l"] + opts + ["--", ip, str(port)], env, log,
                                  ip=ip, what="yubin-smtpd -l")
        log.close()
        self.servers.append(p)
        self.port, self.pid = port, p.pid
        return p

    def open_to_nobody(self):
        """Let a session running as nobody read the instance and queue."""
        for d, _, fs in os.walk(self.root):
            os.chmod(d, 0o777 if d == self.qdir else 0o755)
            for f in fs:
                fn = os.path.join(d, f)
                os.chmod(fn, 0o755 if os.access(fn, os.X_OK) else 0o644)

    def connect(self, ip="127.0.0.1"):
        fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(IO_TIMEOUT)
        s.connect((ip, self.port))
        return Client(s, None)

    def log(self):
        with open(self.listenlog, "rb") as f:
            return f.read().decode(errors="replace")

    def sessions(self):
        return proc_children(self.pid)

    def cleanup(self):
        stop_servers(self.servers)
        if self.servers:
            bad = sanitizer_report(self.log(), 2000)
            if bad:
                check("listener-no-sanitizer-reports", False, bad)
        super().cleanup()


def rules(inst, text):
    """control/tcp.smtp.cdb from tcprules lines, as package/setup builds it."""
    src = os.path.join(inst.root, "control", "tcp.smtp")
    with open(src, "w") as f:
        f.write(text)
    cdb = src + ".cdb"
    with open(src) as f:
        subprocess.run(["tcprules", cdb, cdb + ".tmp"], stdin=f, check=True)
    return cdb


def greeted(c, timeout):
    c.s.settimeout(timeout)
    try:
        return c.reply()[0] == 220
    except (OSError, Failure):
        return False
    finally:
        c.s.settimeout(IO_TIMEOUT)


def maps_of(pid):
    """The listener's stack and program mappings, or None where they cannot
    be read (the listener is not dumpable: only root reads them)."""
    try:
        with open("/proc/%d/maps" % pid) as f:
            return [l.split()[0] for l in f if l.rstrip().endswith("[stack]") or "yubin-smtpd" in l]
    except OSError:
        return None


@case
def env_as_tcpserver(inst):
    """The session gets the client's address and the local address from
    the socket (not the listener's environment), and the message arrives."""
    inst.serve()
    c = inst.connect()
    greet_ehlo(c)
    transaction(c, "a@example.net", ["alice@example.org"], b"Subject: listen\r\n\r\nvia the listener\r\n.\r\n")
    c.cmd("QUIT", 221)
    c.close()
    got = wait_for(lambda: inst.committed(), 5)
    expect(got and b"via the listener" in got[0][0], "not queued: %r" % got)
    expect(b"192.0.2.99" not in got[0][0] and b"forged.example" not in got[0][0],
           "the listener's environment leaked into Received: %r" % got[0][0][:300])
    log = inst.logtext().decode(errors="replace") + inst.log()
    m = re.search(r"connect ip=(\S+) host=(\S+) local=(\S+) port=(\d+)", log)
    expect(m and m.group(1) == "127.0.0.1" and m.group(2) == "-" and m.group(3) == "127.0.0.1"
           and m.group(4) == str(inst.port), "connect line: %r" % (m.group(0) if m else log[-400:]))


@case
def rules_deny(inst):
    """A host that tcprules deny is closed on without a greeting, logged."""
    cdb = rules(inst, "127.0.0.1:deny\n:allow\n")
    inst.serve(["-x", cdb])
    c = inst.connect()
    data = b""
    try:
        data = c.s.recv(100)
    except OSError:
        pass
    c.close()
    expect(data == b"", "a denied host got %r" % data)
    expect(wait_for(lambda: "deny ip=127.0.0.1 reason=tcprules" in inst.log(), 5), "no deny line: %r" % inst.log()[-300:])
    expect(not inst.invocations(), "a denied host reached the queue")


@case
def rules_set_relayclient(inst):
    """tcprules' RELAYCLIENT lets a trusted network relay; without the rule
    the same RCPT is refused."""
    inst.serve()
    c = inst.connect()
    greet_ehlo(c)
    c.cmd("MAIL FROM:<a@example.net>", 250)
    c.cmd("RCPT TO:<someone@other.example>", 553)
    c.close()
    stop_servers(inst.servers)
    cdb = rules(inst, '127.:allow,RELAYCLIENT=""\n:allow\n')
    inst.serve(["-x", cdb])
    c = inst.connect()
    greet_ehlo(c)
    c.cmd("MAIL FROM:<a@example.net>", 250)
    c.cmd("RCPT TO:<someone@other.example>", 250)
    c.close()


@case
def unreadable_rules_drop(inst):
    """Rules that cannot be read drop the connection (as tcpserver does)
    and say why; the listener stays up for the next client."""
    inst.serve(["-x", os.path.join(inst.root, "control", "missing.cdb")])
    c = inst.connect()
    data = c.s.recv(100)
    c.close()
    expect(data == b"", "got %r" % data)
    expect(wait_for(lambda: "missing.cdb" in inst.log(), 5), "no reason logged: %r" % inst.log()[-300:])
    expect(inst.servers[-1].poll() is None, "the listener died")


@case
def maxconn_holds_the_next_client(inst):
    """-c 2: the third client waits in the backlog, and is greeted as soon
    as one of the first two leaves."""
    inst.serve(["-c", "2"])
    wait_for(lambda: not inst.sessions(), 5)   # start_tcpserver's probe
    a, b = inst.connect(), inst.connect()
    expect(greeted(a, IO_TIMEOUT) and greeted(b, IO_TIMEOUT), "the first two not greeted")
    third = inst.connect()
    expect(not greeted(third, 0.7), "a third session while -c 2")
    a.cmd("QUIT", 221)
    a.close()
    expect(greeted(third, 10), "the third client not greeted after one left")
    b.close()
    third.close()


def kill_session(inst, sig):
    """Send sig to the session of the connection just made: the newest
    session alive (one of an earlier connection may be leaving: it is
    skipped if it is gone).  Returns its pid."""
    for _ in range(3):
        for pid in sorted(wait_for(inst.sessions, 5) or [], reverse=True):
            try:
                os.kill(pid, sig)
                return pid
            except ProcessLookupError:
                continue
    raise AssertionError("no session to signal")


@case
def crash_execs_afresh(inst):
    """A session killed by SIGSEGV (SIGILL on the sanitizer build): the listener logs it and execs itself
    afresh (same pid, same port, -F with the socket), with a new address
    layout if the kernel randomises; a SIGKILLed session changes nothing."""
    inst.serve()
    wait_for(lambda: not inst.sessions(), 5)
    before = maps_of(inst.pid)
    c = inst.connect()
    expect(greeted(c, IO_TIMEOUT), "no greeting")
    kill_session(inst, signal.SIGKILL)
    c.close()
    time.sleep(0.3)
    expect("crash" not in inst.log(), "a SIGKILL counted as a crash: %r" % inst.log()[-300:])
    expect(maps_of(inst.pid) == before, "re-exec after a SIGKILL")
    c = inst.connect()
    expect(greeted(c, IO_TIMEOUT), "no greeting")
    # the sanitizer build's own handler turns SIGSEGV into a report and an
    # exit; SIGILL it leaves alone
    sig = signal.SIGILL if sanitizer_build() else signal.SIGSEGV
    victim = kill_session(inst, sig)
    c.close()
    expect(wait_for(lambda: re.search(r"crash pid=%d signal=%d action=exec-afresh" % (victim, sig), inst.log()), 5),
           "no crash line: %r" % inst.log()[-300:])
    expect(wait_for(lambda: "-F" in open("/proc/%d/cmdline" % inst.pid).read().split("\0"), 5),
           "the listener did not exec itself with -F")
    c = inst.connect()
    expect(greeted(c, IO_TIMEOUT), "the port does not answer after the exec")
    c.cmd("QUIT", 221)
    c.close()
    with open("/proc/sys/kernel/randomize_va_space") as f:
        if f.read().strip() != "0" and before is not None:
            expect(maps_of(inst.pid) != before, "same address layout after the exec: %r" % before)
    expect(inst.servers[-1].poll() is None, "the listener died")


@case
def drops_to_uid(inst):
    """-U as root: bind first, then become $UID/$GID (nobody here); the
    sessions are nobody too."""
    if not is_root():
        return "skip: not root"
    nobody = pwd.getpwnam("nobody")
    inst.serve(["-U"], env_extra={"UID": str(nobody.pw_uid), "GID": str(nobody.pw_gid)})
    c = inst.connect()
    expect(greeted(c, IO_TIMEOUT), "no greeting")
    kids = wait_for(inst.sessions, 5)
    uids = []
    for pid in [inst.pid] + list(kids):
        try:   # start-up's probe session may be leaving
            with open("/proc/%d/status" % pid) as f:
                uids += [l.split()[1:] for l in f if l.startswith("Uid:")]
        except OSError:
            pass
    c.close()
    expect(len(uids) >= 2 and all(set(u) == {str(nobody.pw_uid)} for u in uids),
           "uids of the listener and its sessions %r" % uids)


@case
def root_refused(inst):
    """As root without -U (or without $UID/$GID), the listener refuses to
    start: no SMTP session may run as root."""
    if not is_root():
        return "skip: not root"
    env = inst.env({})
    env.pop("UID", None)
    env.pop("GID", None)
    for args in (["-l", "127.0.0.1", "0"], ["-l", "-U", "127.0.0.1", "0"]):
        p = subprocess.run([SMTPD] + args, stdin=subprocess.DEVNULL, capture_output=True, timeout=10, env=env)
        err = p.stderr.decode(errors="replace")
        expect(p.returncode == 100 and "refusing to serve connections as root" in err,
               "%r as root: exit %d, %r" % (args, p.returncode, err))


@case
def ipv6(inst):
    """Listening on ::1: the session sees TCPREMOTEIP ::1."""
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
    except OSError:
        return "skip: no IPv6 loopback"
    inst.serve(ip="::1")
    c = inst.connect("::1")
    expect(greeted(c, IO_TIMEOUT), "no greeting")
    c.cmd("QUIT", 221)
    c.close()
    expect(wait_for(lambda: re.search(r"connect ip=::1 .*local=::1", inst.logtext().decode(errors="replace") + inst.log()), 5),
           "no connect line with ::1")


@case
def bad_command_lines(inst):
    """Wrong arguments die at once, with the reason."""
    for args, want in ((["-l", "127.0.0.1"], "usage"), (["-l", "nowhere", "25"], "not an IP address"),
                       (["-l", "127.0.0.1", "port"], "not a port number"), (["-l", "-c", "0", "127.0.0.1", "0"], "-c")):
        p = subprocess.run([SMTPD] + args, stdin=subprocess.DEVNULL, capture_output=True, timeout=10, env=inst.env())
        err = p.stderr.decode(errors="replace")
        expect(p.returncode != 0 and want in err, "%r: exit %d, %r" % (args, p.returncode, err))


def main():
    if not shutil.which("tcprules"):
        check("setup", False, "tcprules not installed")
        return
    if not os.access(SMTPD, os.X_OK):
        check("setup", False, "%s not found (set YUBIN_BIN)" % SMTPD)
        return
    run_cases(CASES, ListenInstance)


run(main)
