#!/usr/bin/env python3
"""yubin-checkpassword: the checkpassword interface over users/passwd.

Exit codes 0/1/2/111, the environment and directory of the program it
execs, the uid it runs it as, the time an unknown user costs, and the
setgid installation (passwd 0640 root:GROUP, the binary setgid GROUP, run
by an unprivileged user: it reads the hashes, drops the group, ignores
YUBIN_ROOT).

Prints "PASS name" or "FAIL name: why" per case.  YUBIN_BIN selects the
binaries (default build/bin)."""

import grp
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from yubintest import binary, case_list, check, expect, minimal_env, phc_scrypt, run, run_cases  # noqa: E402

CP = binary("yubin-checkpassword")
TIMEOUT = 30


SHOW = ["/bin/sh", "-c", 'echo "USER=$USER HOME=$HOME SHELL=$SHELL PWD=$(pwd) UID=$(id -u) GID=$(id -g) '
        'EGID=$(id -g) GROUPS=$(id -G)"']


class Root:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="yubin-cp-test.")
        os.chmod(self.dir, 0o755)
        os.mkdir(os.path.join(self.dir, "users"))
        os.mkdir(os.path.join(self.dir, "control"))
        self.home = os.path.join(self.dir, "home", "alice")
        os.makedirs(self.home)
        if os.geteuid() == 0:
            nb = pwd.getpwnam("nobody")
            self.uid, self.gid = nb.pw_uid, nb.pw_gid
            os.chown(self.home, self.uid, self.gid)
        else:
            self.uid, self.gid = os.getuid(), os.getgid()
        self.passwd = os.path.join(self.dir, "users", "passwd")
        self.write("alice:%s:%d:%d:%s\n"
                   "# a comment\n"
                   "nologin:*:%d:%d:/nonexistent\n"
                   "broken:%s:notanumber:1:/x\n"
                   "rootish:%s:0:0:/root\n"
                   % (phc_scrypt("secret"), self.uid, self.gid, self.home, self.uid, self.gid, phc_scrypt("x"),
                      phc_scrypt("r00t")))

    def write(self, text):
        with open(self.passwd, "w") as f:
            f.write(text)
        os.chmod(self.passwd, 0o600)

    def env(self, extra=None):
        return minimal_env(dict({"YUBIN_ROOT": self.dir}, **(extra or {})))

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def run_cp(root, data, argv=None, fd3=True, env=None, prog=CP, preexec=None):
    """Run the checkpassword program with data on fd 3 (a pipe).
    Returns (exit code, stdout, stderr, seconds)."""
    argv = SHOW if argv is None else argv
    r, w = os.pipe()
    os.write(w, data)
    os.close(w)

    def child():
        if fd3:
            os.dup2(r, 3)
        else:
            os.close(r)
            try:
                os.close(3)
            except OSError:
                pass
        if preexec:
            preexec()
    t0 = time.monotonic()
    try:
        p = subprocess.run([prog] + argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=env or root.env(), preexec_fn=child, pass_fds=(r,) if fd3 else (), timeout=TIMEOUT)
    finally:
        os.close(r)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"), time.monotonic() - t0


CASES, case = case_list()


@case
def good_password(root):
    code, out, err, _ = run_cp(root, b"alice\0secret\0<123.456@example.org>\0")
    expect(code == 0, "exit %d: %s" % (code, err))
    want = "USER=alice HOME=%s SHELL=/bin/false PWD=%s UID=%d GID=%d" % (root.home, root.home, root.uid, root.gid)
    expect(out.startswith(want), "got %r, want %r" % (out, want))
    if os.geteuid() == 0:
        expect(out.strip().endswith("GROUPS=%d" % root.gid), "supplementary groups kept: %r" % out)
    # any case for the login; USER is the name as stored
    code, out, err, _ = run_cp(root, b"ALICE\0secret\0\0")
    expect(code == 0 and out.startswith("USER=alice "), "ALICE: exit %d %r %s" % (code, out, err))
    # the extra field may be missing its NUL (qmail-popup sends it; others may not)
    code, out, err, _ = run_cp(root, b"alice\0secret\0")
    expect(code == 0, "no extra field: exit %d %s" % (code, err))


@case
def bad_credentials(root):
    for data in (b"alice\0wrong\0\0", b"alice\0\0\0", b"nosuch\0secret\0\0", b"nologin\0*\0\0",
                 b"nologin\0\0\0", b"\0secret\0\0", b"ali:ce\0secret\0\0", b"a" * 100 + b"\0secret\0\0"):
        code, out, err, _ = run_cp(root, data)
        expect(code == 1, "%r: exit %d %r %s" % (data, code, out, err))
        expect(out == "", "%r: the program ran: %r" % (data, out))


@case
def misuse(root):
    code, _, err, _ = run_cp(root, b"alice\0secret\0\0", argv=[])
    expect(code == 2, "no program: exit %d %s" % (code, err))
    code, _, err, _ = run_cp(root, b"alice\0secret\0\0", fd3=False)
    expect(code == 2, "no fd 3: exit %d %s" % (code, err))
    code, out, err, _ = run_cp(root, b"alice")
    expect(code == 2 and out == "", "no NUL: exit %d %s" % (code, err))
    code, out, err, _ = run_cp(root, b"alice\0secret")
    expect(code == 2 and out == "", "unterminated password: exit %d %s" % (code, err))
    code, out, err, _ = run_cp(root, b"alice\0secret\0" + b"x" * 600 + b"\0")
    expect(code == 2 and out == "", "over 512 bytes: exit %d %s" % (code, err))


@case
def temporary_trouble(root):
    code, _, err, _ = run_cp(root, b"broken\0x\0\0")
    expect(code == 111, "malformed line: exit %d %s" % (code, err))
    code, out, err, _ = run_cp(root, b"alice\0secret\0\0", argv=["/nonexistent/program"])
    expect(code == 111, "exec failure: exit %d %s" % (code, err))
    if os.geteuid() == 0:
        code, out, err, _ = run_cp(root, b"rootish\0r00t\0\0")
        expect(code == 111 and out == "", "uid 0 as root: exit %d %r %s" % (code, out, err))
    os.rename(root.passwd, root.passwd + ".away")
    try:
        code, _, err, _ = run_cp(root, b"alice\0secret\0\0")
        expect(code == 111, "no passwd: exit %d %s" % (code, err))
    finally:
        os.rename(root.passwd + ".away", root.passwd)
    # home gone: fatal only when it runs as the user
    shutil.rmtree(root.home)
    code, out, err, _ = run_cp(root, b"alice\0secret\0\0")
    expect(code == 111 and out == "", "missing home: exit %d %r %s" % (code, out, err))


@case
def verdict_only(root):
    """-v answers exactly as /bin/true as the next program does (yubin-smtpd
    uses it), logs the same auth-fail, runs nothing and changes no
    directory (the home may be gone)."""
    as_smtpd = None
    if os.geteuid() == 0:
        nb = pwd.getpwnam("nobody")

        def as_smtpd():
            os.setgroups([])
            os.setgid(nb.pw_gid)
            os.setuid(nb.pw_uid)
        os.chmod(root.passwd, 0o644)   # yubin-smtpd's uid reads it through the setgid bit; here, plainly
    try:
        for data in (b"alice\0secret\0<1.2@x>\0", b"ALICE\0secret\0\0", b"alice\0wrong\0\0",
                     b"nosuch\0secret\0\0", b"nologin\0*\0\0", b"\0secret\0\0", b"broken\0x\0\0",
                     b"alice\0secret"):
            c1, o1, e1, _ = run_cp(root, data, argv=["/bin/true"], preexec=as_smtpd)
            c2, o2, e2, _ = run_cp(root, data, argv=["-v"], preexec=as_smtpd)
            expect(c1 == c2, "%r: /bin/true exit %d, -v exit %d (%s)" % (data, c1, c2, e2))
            expect(o2 == "", "%r: -v wrote %r" % (data, o2))
            fail1, fail2 = "auth-fail user=" in e1, "auth-fail user=" in e2
            expect(fail1 == fail2 and fail2 == (c2 == 1), "%r: auth-fail logged %s / %s: %r" % (data, fail1, fail2, e2))
            expect("secret" not in e2 and "$scrypt$" not in e2, "%r: a secret in the log: %r" % (data, e2))
        c, _, e, _ = run_cp(root, b"alice\0wrong\0\0", argv=["-v"], preexec=as_smtpd)
        expect(c == 1 and "checkpassword: auth-fail user=alice caller=" in e, "auth-fail line: %r" % e)
        # no program after -v; "--" lets a program's name start with '-'
        c, _, e, _ = run_cp(root, b"alice\0secret\0\0", argv=["-v", "/bin/true"])
        expect(c == 2, "-v with a program: exit %d %s" % (c, e))
        c, o, e, _ = run_cp(root, b"alice\0secret\0\0", argv=["--", "/bin/echo", "ran"])
        expect(c == 0 and o == "ran\n", "--: exit %d %r %s" % (c, o, e))
        # the verdict does not need the home
        away = root.home + ".away"
        os.rename(root.home, away)
        try:
            c, o, e, _ = run_cp(root, b"alice\0secret\0\0", argv=["-v"])
            expect(c == 0, "-v without the home: exit %d %s" % (c, e))
        finally:
            os.rename(away, root.home)
        if os.geteuid() == 0:
            c1, _, _, _ = run_cp(root, b"rootish\0r00t\0\0", argv=["/bin/true"])
            c2, _, e2, _ = run_cp(root, b"rootish\0r00t\0\0", argv=["-v"])
            expect(c1 == c2 == 111, "uid 0 user as root: /bin/true %d, -v %d %s" % (c1, c2, e2))
    finally:
        os.chmod(root.passwd, 0o600)


@case
def unknown_user_costs_the_same(root):
    known, unknown = [], []
    for _ in range(4):
        unknown.append(run_cp(root, b"nosuchuser\0secret\0\0")[3])
        known.append(run_cp(root, b"alice\0wrong\0\0")[3])
    k, u = statistics.median(known), statistics.median(unknown)
    expect(u > 0.6 * k and u < 1.7 * k, "unknown user %.3fs, wrong password %.3fs" % (u, k))


@case
def setgid_install(root):
    if os.geteuid() != 0:
        print("# setgid_install: needs root, skipped")
        return
    group = None
    for g in ("mail", "news", "uucp", "operator"):
        try:
            group = grp.getgrnam(g)
            break
        except KeyError:
            pass
    expect(group is not None, "no spare group to test with")
    nb = pwd.getpwnam("nobody")
    expect(group.gr_gid != nb.pw_gid and "nobody" not in group.gr_mem, "nobody is in %s" % group.gr_name)
    bindir = os.path.join(root.dir, "bin")
    os.mkdir(bindir)
    prog = os.path.join(bindir, "yubin-checkpassword")
    shutil.copy(CP, prog)
    os.chown(prog, 0, group.gr_gid)
    os.chmod(prog, 0o2755)
    os.chown(root.passwd, 0, group.gr_gid)
    os.chmod(root.passwd, 0o640)
    # a decoy root that YUBIN_ROOT points to: must be ignored
    decoy = Root()
    try:
        decoy.write("alice:%s:1:1:/\n" % phc_scrypt("decoy"))
        os.chmod(decoy.passwd, 0o644)

        def become_nobody():
            os.setgroups([])
            os.setgid(nb.pw_gid)
            os.setuid(nb.pw_uid)
        env = root.env({"YUBIN_ROOT": decoy.dir, "ASAN_OPTIONS": "detect_leaks=0"})
        code, out, err, _ = run_cp(root, b"alice\0secret\0\0", env=env, prog=prog, preexec=become_nobody,
                                   argv=["/bin/sh", "-c", "id -u; id -g; id -G; cat %s 2>&1; true" % root.passwd])
        expect(code == 0, "setgid: exit %d %s" % (code, err))
        lines = out.split("\n")
        expect(lines[0] == str(nb.pw_uid) and lines[1] == str(nb.pw_gid), "ids %r" % lines[:3])
        expect(str(group.gr_gid) not in lines[2].split(), "group kept: %r" % lines[2])
        expect("$scrypt$" not in out, "the program could read passwd: %r" % out)
        code, out, err, _ = run_cp(root, b"alice\0decoy\0\0", env=env, prog=prog, preexec=become_nobody)
        expect(code == 1, "YUBIN_ROOT was honoured by a setgid run: exit %d" % code)
        # without the setgid bit, nobody cannot read passwd: 111
        os.chmod(prog, 0o755)
        code, out, err, _ = run_cp(root, b"alice\0secret\0\0", env=root.env({"ASAN_OPTIONS": "detect_leaks=0"}),
                                   prog=prog, preexec=become_nobody)
        expect(code == 111, "unreadable passwd: exit %d %s" % (code, err))
    finally:
        decoy.cleanup()


def main():
    if not os.access(CP, os.X_OK):
        check("setup", False, "%s not found (set YUBIN_BIN)" % CP)
        return
    run_cases(CASES, Root)


run(main)
