#!/usr/bin/env python3
"""make install, as a packager and as an operator switching from qmail.

- destdir: `make install DESTDIR=<scratch>` puts the programs, man pages
  and the setup kit there, 0755/0644, nothing set-id, nothing chowned, no
  user or group created, no instance made, and prints the postinst.
- a real install as root into a scratch PREFIX, YUBIN_ROOT, SCANDIR and
  QMAIL_COMPAT (never /var/qmail or the system's scan directory): owners,
  modes and set-id bits where package/setup puts them, the qmail names as
  symlinks; then s6-svscan on that SCANDIR: mail over SMTP on free loopback
  ports reaches the Maildir, every daemon runs as README's Security table
  says (from /proc), QMAIL_COMPAT/bin/qmail-queue takes a message from an
  ordinary user (qmail-queue interface: message on fd 0, envelope on fd 1),
  sendmail and qmail-inject work.
- yubin-qmail-check against fake qmail trees: the verdict of every item,
  exit 1 when something is refused, 0 when not.

As root only (users, set-id bits); the real install is skipped for a
sanitizer build (LeakSanitizer can't run in the setuid yubin-queue).
"""

import atexit
import grp
import os
import pwd
import shutil
import signal
import smtplib
import socket
import stat
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from yubintest import (TOP, bin_dir, case_list, expect, free_ports, info, is_root,  # noqa: E402
                       run_cases, skip, wait_for)
import yubintest  # noqa: E402

CASES, case = case_list()
DOMAIN = "install.test"
SERVICES = ("smtpd", "submission", "smtps", "pop3", "pop3s", "imap", "imaps", "qmgr", "banwatch")



def session_child(pid):
    """A yubin-smtpd forked by yubin-smtpd -l for one connection (it keeps
    the listener's command line)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        return os.path.basename(os.readlink("/proc/%d/exe" % ppid)) == "yubin-smtpd"
    except (OSError, ValueError, IndexError):
        return False

def sanitizer_build():
    return yubintest.sanitizer_build()


def make_install(extra_env, **vars):
    """make install with the build of YUBIN_BIN; returns (rc, output)."""
    b = os.path.dirname(bin_dir().rstrip("/"))
    args = ["make", "-s", "--no-print-directory", "-C", TOP, "B=" + b]
    if sanitizer_build():
        args.append("SAN=1")
    args.append("install")
    args += ["%s=%s" % kv for kv in sorted(vars.items())]
    env = dict(os.environ)
    env.pop("MAKEFLAGS", None)
    env.pop("MFLAGS", None)
    env.update(extra_env)
    r = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=240)
    out = r.stdout.decode(errors="replace")
    out = "\n".join(l for l in out.splitlines()
                    if "statically linked" not in l and not l.startswith(("/usr/bin/ld", "(.text")))
    return r.returncode, out


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def owner(path):
    st = os.lstat(path)
    return "%s:%s" % (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name)


def accounts():
    return (subprocess.run(["getent", "passwd"], stdout=subprocess.PIPE).stdout,
            subprocess.run(["getent", "group"], stdout=subprocess.PIPE).stdout)


# ------------------------------------------------------------------ fixtures

class Scratch:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="yubin-install-")
        os.chmod(self.dir, 0o755)

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class Installed:
    """One real install (shared by the cases), its s6-svscan started on
    demand; stop() at the end."""
    the = None

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="yubin-install-")
        os.chmod(self.dir, 0o755)
        self.prefix = os.path.join(self.dir, "prefix")
        self.root = os.path.join(self.dir, "root")
        self.scan = os.path.join(self.dir, "scan")
        self.qmail = os.path.join(self.dir, "qmail")
        names = ("SMTP", "SUBMISSION", "SMTPS", "POP3", "POP3S", "IMAP", "IMAPS")
        self.ports = dict(zip(names, free_ports(len(names))))
        self.svscan = None
        self.error = None
        # a qmail program already there is kept as NAME.qmail
        os.makedirs(os.path.join(self.qmail, "bin"))
        with open(os.path.join(self.qmail, "bin", "qmail-queue"), "w") as f:
            f.write("#!/bin/sh\nexit 81\n")
        env = {"YUBIN_FIREWALL": "no", "YUBIN_DOMAIN": DOMAIN, "YUBIN_IP": "127.0.0.1"}
        env.update({"YUBIN_%s_PORT" % k: str(v) for k, v in self.ports.items()})
        self.rc, self.out = make_install(env, PREFIX=self.prefix, YUBIN_ROOT=self.root,
                                         SCANDIR=self.scan, QMAIL_COMPAT=self.qmail)
        atexit.register(self.stop)

    @classmethod
    def get(cls):
        if cls.the is None:
            cls.the = cls()
        expect(cls.the.rc == 0, "make install: %d: %s" % (cls.the.rc, cls.the.out[-1500:]))
        return cls.the

    def cleanup(self):
        pass

    def p(self, *a):
        return os.path.join(self.root, *a)

    def start(self):
        if self.error:
            expect(False, self.error)
        if self.svscan:
            return
        self.svscan = subprocess.Popen(["s6-svscan", self.scan], stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       start_new_session=True)
        ok = wait_for(self.smtp_ready, timeout=20, step=0.1)
        if ok:
            ok = wait_for(lambda: all(self.listening(self.ports[k]) for k in self.ports), timeout=10, step=0.1)
        if ok:
            ok = wait_for(lambda: "qmgr: start" in self.log("qmgr"), timeout=10, step=0.1)
        if not ok:
            self.error = "services did not start: %s\n%s" % (self.svstat(), self.log("smtpd")[-800:])
            expect(False, self.error)
        r = subprocess.run([self.p("bin", "yubin-users"), "add", "alice", "-u", "yubinv", "-r"],
                           env={"PATH": os.environ["PATH"], "YUBIN_ROOT": self.root},
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        if r.returncode != 0:
            self.error = "yubin-users add alice: %s" % r.stdout.decode(errors="replace")
            expect(False, self.error)

    def smtp_ready(self):
        try:
            with socket.create_connection(("127.0.0.1", self.ports["SMTP"]), timeout=2) as s:
                s.settimeout(3)
                return s.recv(512).startswith(b"220")
        except OSError:
            return False

    def listening(self, port):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                return True
        except OSError:
            return False

    def svstat(self):
        out = []
        for s in SERVICES:
            r = subprocess.run(["s6-svstat", os.path.join(self.scan, "yubin-" + s)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
            out.append("%s: %s" % (s, r.stdout.decode(errors="replace").strip()))
        return "; ".join(out)

    def log(self, s):
        try:
            with open(self.p("log", s, "current"), "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def maildir_new(self, user="alice"):
        d = self.p("home", user, "Maildir", "new")
        try:
            return sorted(os.path.join(d, n) for n in os.listdir(d) if not n.startswith("."))
        except OSError:
            return []

    def wait_message(self, needle, timeout=20):
        def find():
            for f in self.maildir_new():
                try:
                    with open(f, "rb") as fh:
                        data = fh.read()
                except OSError:
                    continue
                if needle in data:
                    return data
            return None
        return wait_for(find, timeout=timeout, step=0.05)

    def processes(self):
        """(pid, exe, cmdline, uids) of every process of this install."""
        out = []
        for p in os.listdir("/proc"):
            if not p.isdigit() or int(p) == os.getpid():
                continue
            try:
                exe = os.readlink("/proc/%s/exe" % p)
            except OSError:
                exe = ""
            try:
                cwd = os.readlink("/proc/%s/cwd" % p)
                with open("/proc/%s/cmdline" % p, "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
                with open("/proc/%s/status" % p) as f:
                    st = f.read()
            except OSError:
                continue
            inside = lambda x: x == self.dir or x.startswith(self.dir + "/")
            if inside(exe) or inside(cwd) or self.dir in cmd:
                uids = gids = None
                for l in st.splitlines():
                    if l.startswith("Uid:"):
                        uids = [int(x) for x in l.split()[1:]]
                    if l.startswith("Gid:"):
                        gids = [int(x) for x in l.split()[1:]]
                out.append((int(p), exe, cmd, uids, gids))
        return out

    def stop(self):
        sv = self.svscan
        if sv is not None and sv.poll() is None:
            subprocess.run(["s6-svscanctl", "-t", self.scan], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=10)
            try:
                sv.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(sv.pid, signal.SIGKILL)
                sv.wait(timeout=5)
        left = []
        for _ in range(3):
            procs = self.processes()
            if not procs:
                break
            for pid, exe, cmd, u, g in procs:
                left.append("%d(%s)" % (pid, cmd[:60]))
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.2)
        if left:
            info("killed leftover processes:", " ".join(left))
        if os.environ.get("YUBIN_KEEP"):
            info("kept", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        Installed.the = None


# ------------------------------------------------------------------ DESTDIR

def destdir_case(f):
    dest = os.path.join(f.dir, "dest")
    before = accounts()
    rc, out = make_install({"YUBIN_FIREWALL": "no"}, DESTDIR=dest, PREFIX="/usr/local",
                           YUBIN_ROOT="/var/yubin-destdir-test", QMAIL_COMPAT="/var/qmail",
                           SCANDIR="/etc/s6/yubin")
    expect(rc == 0, "make install DESTDIR: %d: %s" % (rc, out[-1500:]))
    expect(accounts() == before, "users or groups changed")
    expect(not os.path.exists("/var/yubin-destdir-test"), "an instance was made outside DESTDIR")
    expect("sh /usr/local/share/yubin/package/install" in out and "postinst" in out,
           "no postinst command printed: " + out[-800:])
    pb = os.path.join(dest, "usr/local/bin")
    built = sorted(n for n in os.listdir(bin_dir()) if n.startswith("yubin-"))
    for n in built + ["yubin-qmail-check"]:
        p = os.path.join(pb, n)
        expect(os.path.isfile(p), "%s not installed" % p)
        expect(mode(p) == 0o755, "%s mode %o" % (p, mode(p)))
    for m in ("man8/yubin-qmail-check.8", "man8/yubin-smtpd.8", "man8/yubin-local.8", "man1/yubin-preline.1"):
        p = os.path.join(dest, "usr/local/share/man", m)
        expect(os.path.isfile(p) and mode(p) == 0o644, "%s missing or not 0644" % p)
    kit = os.path.join(dest, "usr/local/share/yubin")
    for k in ("package/setup", "package/install", "package/services/smtpd/run",
              "package/services/qmgr/log/run", "package/tcp.smtp", "banwatch/conf/banwatch.conf"):
        expect(os.path.isfile(os.path.join(kit, k)), "kit lacks %s" % k)
    expect(mode(os.path.join(kit, "package/setup")) & 0o111, "kit's setup not executable")
    me = os.getuid(), os.getgid()
    for base, dirs, files in os.walk(dest):
        for n in dirs + files:
            p = os.path.join(base, n)
            st = os.lstat(p)
            expect(not st.st_mode & (stat.S_ISUID | stat.S_ISGID), "%s is set-id" % p)
            expect((st.st_uid, st.st_gid) == me, "%s chowned to %d:%d" % (p, st.st_uid, st.st_gid))
    expect(sorted(os.listdir(dest)) == ["usr"], "DESTDIR holds %s" % os.listdir(dest))


CASES.append(("destdir-files-only", destdir_case))


# ------------------------------------------------------------------ real install

def real_cases():
    cases, c = case_list()

    @c
    def install_tree(f):
        i = Installed.get()
        r = i.root
        want = {
            "bin": ("root:root", 0o755), "bin/yubin-queue": ("yubinq:yubinq", 0o4711),
            "bin/yubin-smtpd": ("root:root", 0o755), "bin/yubin-qmail-check": ("root:root", 0o755),
            "libexec": ("root:yubinnet", 0o750),
            "libexec/yubin-tlsd": ("root:yubintls", 0o2755),
            "libexec/yubin-checkpassword": ("root:yubinauth", 0o2755),
            "queue": ("yubinq:yubinq", 0o700), "control": ("root:root", 0o755),
            "control/key.pem": ("root:yubintls", 0o640), "lock": ("root:yubinnet", 0o750),
            "log/smtpd": ("yubinl:yubinlog", 0o2750), "log/qmgr": ("yubinl:yubinlog", 0o2750),
            "banwatch": ("yubinb:yubinb", 0o755), "service": ("root:root", 0o755),
            "alias": ("yubina:yubina", 0o755),
        }
        for rel, (o, m) in want.items():
            p = os.path.join(r, rel)
            expect(os.path.exists(p), "%s missing" % rel)
            expect(owner(p) == o and mode(p) == m,
                   "%s is %s %04o, want %s %04o" % (rel, owner(p), mode(p), o, m))
        # set-id bits exactly there
        setid = []
        for base, dirs, files in os.walk(r):
            for n in dirs + files:
                p = os.path.join(base, n)
                st = os.lstat(p)
                if stat.S_ISREG(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                    setid.append(os.path.relpath(p, r))
        expect(sorted(setid) == ["bin/yubin-queue", "libexec/yubin-checkpassword", "libexec/yubin-tlsd"],
               "set-id files: %s" % setid)
        for d in ("users", "home", "env"):
            expect(os.path.isdir(os.path.join(r, d)), "%s missing" % d)
        with open(os.path.join(r, "env", "PATH")) as fh:
            path = fh.read().strip()
        expect(path.startswith(r + "/bin:" + i.qmail + "/bin:"), "env/PATH: %s" % path)
        for s in SERVICES:
            expect(os.path.isfile(os.path.join(r, "service", s, "run")), "service/%s/run missing" % s)
            l = os.path.join(i.scan, "yubin-" + s)
            expect(os.path.islink(l) and os.readlink(l) == os.path.join(r, "service", s),
                   "%s is not a link to the service" % l)
        for p in (os.path.join(i.prefix, "bin", "yubin-smtpd"), os.path.join(i.prefix, "share/yubin/package/setup")):
            expect(os.path.isfile(p), "%s missing" % p)

    @c
    def qmail_names(f):
        i = Installed.get()
        names = {"qmail-queue": "yubin-queue", "qmail-inject": "yubin-inject", "sendmail": "yubin-inject",
                 "qmail-local": "yubin-local", "preline": "yubin-preline", "qmail-qstat": "yubin-qstat",
                 "qmail-qread": "yubin-qread"}
        if os.path.exists(i.p("bin", "yubin-newu")):
            names["qmail-newu"] = "yubin-newu"
        for n, t in names.items():
            p = i.p("bin", n)
            expect(os.path.islink(p) and os.readlink(p) == t, "bin/%s is not a link to %s" % (n, t))
            q = os.path.join(i.qmail, "bin", n)
            expect(os.path.islink(q) and os.readlink(q) == i.p("bin", t),
                   "%s is not a link to %s" % (q, i.p("bin", t)))
        for n in ("qmail-remote", "qmail-rspawn", "qmail-send", "qmail-smtpd", "qmail-pop3d", "qmail-popup"):
            expect(not os.path.lexists(i.p("bin", n)), "bin/%s should not exist" % n)
        kept = os.path.join(i.qmail, "bin", "qmail-queue.qmail")
        expect(os.path.isfile(kept) and open(kept).read().endswith("exit 81\n"), "qmail's qmail-queue not kept")
        # the link keeps the target's mode: exec runs it setuid yubinq
        st = os.stat(os.path.join(i.qmail, "bin", "qmail-queue"))
        expect(st.st_mode & stat.S_ISUID and st.st_uid == pwd.getpwnam("yubinq").pw_uid,
               "qmail-queue through the link is not setuid yubinq")

    @c
    def smtp_delivery(f):
        i = Installed.get()
        i.start()
        with smtplib.SMTP("127.0.0.1", i.ports["SMTP"], timeout=20) as s:
            s.ehlo("client.example.org")
            refused = s.sendmail("someone@example.org", ["alice@" + DOMAIN],
                                 "Subject: installed\r\n\r\nthrough the installed smtpd\r\n")
        expect(not refused, "refused: %r" % refused)
        data = i.wait_message(b"through the installed smtpd")
        expect(data, "not delivered to alice's Maildir/new; qmgr log: " + i.log("qmgr")[-600:])
        expect(b"Delivered-To: alice@" + DOMAIN.encode() in data, "no Delivered-To: %r" % data[:300])

    @c
    def daemon_uids(f):
        i = Installed.get()
        i.start()
        uid = lambda n: pwd.getpwnam(n).pw_uid
        # an SMTP session and a POP3 session open while we look
        smtp = socket.create_connection(("127.0.0.1", i.ports["SMTP"]), timeout=10)
        pop = socket.create_connection(("127.0.0.1", i.ports["POP3"]), timeout=10)
        try:
            smtp.settimeout(10)
            pop.settimeout(10)
            expect(smtp.recv(512).startswith(b"220"), "no SMTP greeting")
            expect(pop.recv(512).startswith(b"+OK"), "no POP3 greeting")
            procs = i.processes()
            # while the SMTP session is still open: which yubin-smtpd is it
            sessions = {pid for pid, exe, cmd, _, _ in procs
                        if os.path.basename(exe) == "yubin-smtpd" and session_child(int(pid))}
        finally:
            smtp.close()
            pop.close()
        seen = {}
        bad = []
        port_of = {str(v): k for k, v in i.ports.items()}
        for pid, exe, cmd, uids, gids in procs:
            name = os.path.basename(exe)
            # listeners: tcpserver, yubin-smtpd -l (port 25), yubin-tlsd -l
            # (submission, smtps; no TLS connection is open here)
            if name == "tcpserver" or (name in ("yubin-smtpd", "yubin-tlsd") and "-l" in cmd.split()
                                       and pid not in sessions):
                port = [w for w in cmd.split() if w in port_of]
                role = ("tcpserver-" if name == "tcpserver" else "listener-") + (port_of[port[0]] if port else "?")
            else:
                role = name
            seen.setdefault(role, set()).add(tuple(uids))
        info("uids seen: " + ", ".join("%s %s" % (k, sorted({u for t in v for u in t})) for k, v in sorted(seen.items())))
        want = {
            "listener-SMTP": {uid("yubind")},   # yubin-smtpd -l
            "listener-SUBMISSION": {uid("yubins")}, "listener-SMTPS": {uid("yubins")},   # yubin-tlsd -l
            # POP3/IMAP: tcpserver stays root for the monitor (README)
            "tcpserver-POP3": {0}, "tcpserver-POP3S": {0}, "tcpserver-IMAP": {0}, "tcpserver-IMAPS": {0},
            "yubin-smtpd": {uid("yubind")},
            "yubin-qmgr": {uid("yubinq")}, "yubin-queued": {uid("yubinq")}, "yubin-rspawn": {uid("yubinr")}, "yubin-lspawn": {0},
            "yubin-banwatch": {uid("yubinb")}, "s6-log": {uid("yubinl")},
            "yubin-pop3d": {0, uid("yubinp")},
        }
        for role, uids in sorted(want.items()):
            got = seen.get(role)
            if not got:
                bad.append("%s: not running" % role)
                continue
            flat = {u for t in got for u in t}
            for t in got:
                if len(set(t)) != 1:
                    bad.append("%s: real/effective/saved uids differ: %s" % (role, t))
            if flat != uids:
                bad.append("%s: uids %s, want %s" % (role, sorted(flat), sorted(uids)))
        expect(not bad, "; ".join(bad) + " (seen: %s)" % {k: sorted(v) for k, v in seen.items()})
        others = set(seen) - set(want) - {"s6-supervise", "s6-svscan"}
        expect(not others, "unexpected processes: %s" % sorted(others))

    @c
    def qmail_queue_interface(f):
        i = Installed.get()
        i.start()
        msg = b"From: bob@" + DOMAIN.encode() + b"\nSubject: via qmail-queue\n\nqmail-queue interface\n"
        env = b"Fbob@" + DOMAIN.encode() + b"\0Talice@" + DOMAIN.encode() + b"\0\0"
        mfd, efd = os.pipe(), os.pipe()
        os.write(mfd[1], msg)
        os.close(mfd[1])
        os.write(efd[1], env)
        os.close(efd[1])
        nobody = pwd.getpwnam("nobody")
        r = subprocess.run(["setpriv", "--reuid=%d" % nobody.pw_uid, "--regid=%d" % nobody.pw_gid,
                            "--clear-groups", os.path.join(i.qmail, "bin", "qmail-queue")],
                           stdin=mfd[0], stdout=efd[0], stderr=subprocess.PIPE, env={"PATH": "/usr/bin:/bin"},
                           timeout=30)
        os.close(mfd[0])
        os.close(efd[0])
        expect(r.returncode == 0, "qmail-queue exited %d: %s" % (r.returncode, r.stderr.decode(errors="replace")))
        data = i.wait_message(b"qmail-queue interface")
        expect(data, "not delivered")
        expect(b"invoked by uid %d" % nobody.pw_uid in data, "no Received line for the local caller: %r" % data[:300])

    @c
    def sendmail_and_inject(f):
        i = Installed.get()
        i.start()
        for name, args in (("sendmail", ["-f", "carol@" + DOMAIN, "alice@" + DOMAIN]),
                           ("qmail-inject", ["alice@" + DOMAIN])):
            body = "Subject: %s\n\nsent by %s\n" % (name, name)
            r = subprocess.run([os.path.join(i.qmail, "bin", name)] + args, input=body.encode(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env={"PATH": "/usr/bin:/bin"}, timeout=30)
            expect(r.returncode == 0, "%s exited %d: %s" % (name, r.returncode, r.stdout.decode(errors="replace")))
            expect(i.wait_message(("sent by %s" % name).encode()), "%s: not delivered" % name)

    @c
    def reinstall_keeps_instance(f):
        i = Installed.get()
        with open(i.p("control", "smtpgreeting"), "w") as fh:
            fh.write("kept.example ESMTP\n")
        env = {"YUBIN_FIREWALL": "no"}
        rc, out = make_install(env, PREFIX=i.prefix, YUBIN_ROOT=i.root, SCANDIR=i.scan, QMAIL_COMPAT=i.qmail)
        expect(rc == 0, "second make install: %d: %s" % (rc, out[-1500:]))
        with open(i.p("control", "smtpgreeting")) as fh:
            expect(fh.read() == "kept.example ESMTP\n", "control/smtpgreeting overwritten")
        with open(i.p("env", "YUBIN_SMTP_PORT")) as fh:
            expect(fh.read().strip() == str(i.ports["SMTP"]), "the port setting was not kept")
        expect(os.path.isfile(os.path.join(i.qmail, "bin", "qmail-queue.qmail")), "backup lost")
        expect(mode(i.p("bin", "yubin-queue")) == 0o4711, "yubin-queue lost its set-id bit")

    return cases


# ------------------------------------------------------------------ yubin-qmail-check

def write(path, text, m=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, m)


def fake_qmail(base):
    q = os.path.join(base, "var", "qmail")
    c = lambda n, t: write(os.path.join(q, "control", n), t)
    c("me", "mail.example.org\n")
    c("locals", "example.org\nmail.example.org\nlocalhost\n")
    c("rcpthosts", "# ours\nexample.org\n.example.org\n")
    c("morercpthosts", "other.example\nthird.example\n")
    c("morercpthosts.cdb", "")
    c("virtualdomains", "virt.example:joe\n")
    c("smtproutes", ":relay.example:25\n")
    c("concurrencylocal", "20\n")
    c("concurrencyremote", "30\n")
    c("databytes", "5000000\n")
    c("queuelifetime", "172800\n")
    c("timeoutsmtpd", "600\n")
    c("timeoutremote", "abc\n")
    c("defaultdomain", "example.org\n")
    c("defaulthost", "example.org\n")
    c("plusdomain", "example.org\n")
    c("percenthack", "example.org\n")
    c("doublebounceto", "postmaster\n")
    c("bouncefrom", "MAILER-DAEMON\n")
    c("bouncehost", "example.org\n")
    c("badmailfrom", "spam@bad.example\n")
    c("concurrencyincoming", "50\n")
    c("defaultdelivery", "./Mailbox\n")
    c("spfbehavior", "3\n")
    c("servercert.pem", "")
    write(os.path.join(q, "users", "assign"),
          "=joe:joe:1001:1001:/home/joe:::\n+joe-:joe:1001:1001:/home/joe:-::\n.\n")
    write(os.path.join(q, "users", "cdb"), "")
    write(os.path.join(q, "alias", ".qmail-postmaster"), "&joe\n")
    write(os.path.join(q, "alias", ".qmail-root"), "&joe\n")
    write(os.path.join(q, "alias", ".qmail-mailer-daemon"), "%s/alias/Maildir/\n" % q)
    write(os.path.join(q, "rc"), "#!/bin/sh\nexec env - PATH=\"/var/qmail/bin:$PATH\" \\\n"
          "qmail-start \"`cat /var/qmail/control/defaultdelivery`\"\n", 0o755)
    write(os.path.join(q, "supervise", "qmail-smtpd", "run"),
          "#!/bin/sh\nQMAILDUID=`id -u qmaild`\nNOFILESGID=`id -g qmaild`\n"
          "MAXSMTPD=`cat /var/qmail/control/concurrencyincoming`\n"
          "exec /usr/local/bin/softlimit -m 2000000 \\\n"
          "  /usr/local/bin/tcpserver -v -R -l \"$LOCAL\" -x %s/etc/tcp.smtp.cdb -c \"$MAXSMTPD\" \\\n"
          "  -u \"$QMAILDUID\" -g \"$NOFILESGID\" 0 smtp rblsmtpd -r zen.spamhaus.org "
          "/var/qmail/bin/qmail-smtpd 2>&1\n" % base, 0o755)
    write(os.path.join(q, "supervise", "qmail-smtpd", "log", "run"),
          "#!/bin/sh\nexec /usr/local/bin/setuidgid qmaill /usr/local/bin/multilog t /var/log/qmail/smtpd\n", 0o755)
    write(os.path.join(q, "supervise", "qmail-pop3d", "run"),
          "#!/bin/sh\nexec tcpserver -v -R 0 110 /var/qmail/bin/qmail-popup mail.example.org "
          "/bin/checkpassword /var/qmail/bin/qmail-pop3d Maildir 2>&1\n", 0o755)
    write(os.path.join(base, "etc", "tcp.smtp"),
          "127.:allow,RELAYCLIENT=\"\"\n192.0.2.:allow,RELAYCLIENT=\"\",RBLSMTPD=\"\"\n:allow\n")
    write(os.path.join(base, "etc", "tcp.smtp.cdb"), "")
    return q


def reads(name):
    """Some yubin program in YUBIN_BIN holds the string (what the tool asks)."""
    for n in os.listdir(bin_dir()):
        if n.startswith("yubin-"):
            with open(os.path.join(bin_dir(), n), "rb") as f:
                data = f.read()
            if not data.startswith(b"#!") and name.encode() in data:
                return True
    return False


def qmail_check(args):
    tool = os.path.join(TOP, "package", "yubin-qmail-check")
    r = subprocess.run(["sh", tool, "-b", bin_dir(), "-r", "/var/yubin"] + args,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
                       env={"PATH": os.environ["PATH"]})
    verdicts = {}
    for l in r.stdout.decode(errors="replace").splitlines():
        if l.startswith("#"):
            continue
        k, _, rest = l.partition(" ")
        item, _, text = rest.strip().partition(": ")
        verdicts.setdefault(item, []).append((k, text))
    return r.returncode, verdicts, r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")


def check_fake_tree(f):
    q = fake_qmail(f.dir)
    rc, v, out = qmail_check([q])
    info("yubin-qmail-check output:")
    for l in out.splitlines():
        info("  " + l)
    newu = os.path.exists(os.path.join(bin_dir(), "yubin-newu"))
    want = {
        "control/me": "use", "control/locals": "use", "control/rcpthosts": "use",
        "control/morercpthosts": "translate", "control/morercpthosts.cdb": "ignore",
        "control/virtualdomains": "use" if reads("virtualdomains") else "refuse",
        "control/smtproutes": "use", "control/concurrencylocal": "use", "control/concurrencyremote": "use",
        "control/databytes": "use", "control/queuelifetime": "use", "control/timeoutsmtpd": "use",
        "control/timeoutremote": "refuse",  # not a number
        "control/defaultdomain": "use", "control/defaulthost": "use",
        "control/plusdomain": "use" if reads("plusdomain") else "ignore",
        "control/percenthack": "use" if reads("percenthack") else "refuse",
        "control/doublebounceto": "use", "control/bouncefrom": "ignore", "control/bouncehost": "ignore",
        "control/badmailfrom": "refuse", "control/concurrencyincoming": "use",
        "control/spfbehavior": "refuse", "control/servercert.pem": "translate",
        "users/assign": "translate" if newu else "refuse", "users/cdb": "ignore",
        "alias/.qmail-postmaster": "use" if newu else "translate",
        "alias/.qmail-root": "use" if newu else "refuse",
        "alias/.qmail-mailer-daemon": "translate" if newu else "refuse",
        "rc": "translate",  # ./Mailbox from control/defaultdelivery
        "supervise/qmail-smtpd/log/run": "ignore",
        "supervise/qmail-pop3d/run": "translate",
        "system accounts": "translate",
        os.path.join(f.dir, "etc/tcp.smtp.cdb"): "ignore",
    }
    bad = []
    for item, k in want.items():
        got = [x[0] for x in v.get(item, [])]
        if got != [k]:
            bad.append("%s: %s, want %s" % (item, got or "nothing", k))
    smtpd = sorted(x[0] for x in v.get("supervise/qmail-smtpd/run", []))
    if smtpd != ["refuse", "translate"]:
        bad.append("qmail-smtpd run script: %s, want translate (port) and refuse (rblsmtpd)" % smtpd)
    else:
        texts = " | ".join(x[1] for x in v["supervise/qmail-smtpd/run"])
        if "0.0.0.0:25" not in texts or "rblsmtpd" not in texts:
            bad.append("qmail-smtpd run script: %s" % texts)
    tr = sorted(x[0] for x in v.get(os.path.join(f.dir, "etc/tcp.smtp"), []))
    if tr != ["refuse", "translate"]:
        bad.append("tcp.smtp: %s, want translate (rules) and refuse (RBLSMTPD)" % tr)
    if "alias/.qmail-postmaster" in v and not newu and "control/postmaster" not in v["alias/.qmail-postmaster"][0][1]:
        bad.append("postmaster: no control/postmaster advice")
    if "./Mailbox" not in " ".join(x[1] for x in v.get("rc", [])):
        bad.append("rc: the default delivery ./Mailbox not named")
    expect(not bad, "; ".join(bad))
    expect(rc == 1, "exit %d with refusals, want 1" % rc)


def check_clean_tree(f):
    q = os.path.join(f.dir, "qmail")
    write(os.path.join(q, "control", "me"), "mail.example.org\n")
    write(os.path.join(q, "control", "rcpthosts"), "example.org\n")
    write(os.path.join(q, "control", "bouncefrom"), "MAILER-DAEMON\n")
    write(os.path.join(q, "supervise", "qmail-send", "run"),
          "#!/bin/sh\nexec env - PATH=\"/var/qmail/bin:$PATH\" qmail-start ./Maildir/ splogger qmail\n", 0o755)
    rc, v, out = qmail_check([q])
    expect(rc == 0, "exit %d, want 0: %s" % (rc, out))
    expect([x[0] for x in v.get("supervise/qmail-send/run", [])] == ["use"], "qmail-start ./Maildir/: %s" % out)
    expect(not any(k == "refuse" for l in v.values() for k, _ in l), out)


def check_bad_usage(f):
    rc, v, out = qmail_check([os.path.join(f.dir, "nonexistent")])
    expect(rc == 111, "missing qmail dir: exit %d" % rc)
    rc, v, out = qmail_check(["-z"])
    expect(rc == 100, "bad option: exit %d" % rc)
    q = os.path.join(f.dir, "q")
    write(os.path.join(q, "users", "assign"), "=root:root:0:0:/root:::\n.\n")
    rc, v, out = qmail_check([q])
    expect([x[0] for x in v.get("users/assign", [])] == ["refuse"] and "uid 0" in out, "uid 0 in assign: %s" % out)
    expect("control/me" in v or "control" in v, "no control/: not reported: %s" % out)
    expect(rc == 1, "exit %d" % rc)


CASES += [("qmail-check-fake-tree", check_fake_tree), ("qmail-check-clean-tree", check_clean_tree),
          ("qmail-check-bad-input", check_bad_usage)]


def main():
    cases = list(CASES)
    if not is_root():
        skip("install-as-root", "not root: make install creates users and set-id programs")
        cases = [c for c in cases if c[0].startswith("qmail-check")]
    elif sanitizer_build():
        skip("install-real", "sanitizer build as root (LeakSanitizer can't run in the setuid yubin-queue)")
    else:
        cases += real_cases()
    rc = run_cases(cases, Scratch)
    if Installed.the is not None:
        Installed.the.stop()
    return rc


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(143))
    sys.exit(main())
