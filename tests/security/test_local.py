#!/usr/bin/env python3
"""The local attacker: a shell user on the mail host, or a compromised
daemon, against yubin's set-id programs, shared uids and files (issue 8).

Each case is one finding: it failed on the code before the fix and
passes after.  Root only (the boundaries are between uids); as another
user every case is a SKIP.  Binaries from $YUBIN_BIN, instances made by
package/setup under s6 on free loopback ports."""

import ctypes
import grp
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from yubintest import Instance, SMTPRaw, binary, check, info, is_root, proc_children, run, send, skip, tls_client_ctx  # noqa: E402

NOBODY = pwd.getpwnam("nobody")
ATTACKER = (NOBODY.pw_uid, NOBODY.pw_gid)


def as_user(uid, gid, argv, groups=None, **kw):
    """argv run as uid:gid with no supplementary groups (or groups).  A
    run that outlives its timeout comes back with returncode None."""
    cmd = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid]
    cmd += ["--groups=" + groups] if groups else ["--clear-groups"]
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("timeout", 60)
    try:
        return subprocess.run(cmd + ["--"] + argv, **kw)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(argv, None, e.stdout or b"", e.stderr or b"")


def daemon_ids(name):
    p = pwd.getpwnam(name)
    return p.pw_uid, p.pw_gid


# --- 1. the chown race in yubin-users add --------------------------------

class Inotify:
    """The attacker's watcher: inotify through libc, no module needed."""
    IN_CREATE = 0x100

    def __init__(self, path):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(0)
        if self.fd < 0 or self.libc.inotify_add_watch(self.fd, path.encode(), self.IN_CREATE) < 0:
            raise OSError(ctypes.get_errno(), "inotify")

    def wait(self):
        return os.read(self.fd, 4096)


def racer(home, victim, stop_at):
    """Child process, as the attacker: every time Maildir appears in home,
    swap it for a symlink to victim (rename + symlink, as in the report)."""
    os.setgroups([])
    os.setgid(ATTACKER[1])
    os.setuid(ATTACKER[0])
    ino = Inotify(home)
    md = os.path.join(home, "Maildir")
    n = 0
    while time.time() < stop_at:
        ino.wait()
        try:
            if os.path.isdir(md) and not os.path.islink(md):
                n += 1
                os.rename(md, os.path.join(home, "old.%d" % n))
                os.symlink(victim, md)
        except OSError:
            pass


def users_env(root):
    e = dict(os.environ)
    e["YUBIN_ROOT"] = root
    return e


def new_users_root(base):
    root = tempfile.mkdtemp(prefix="inst-", dir=base)
    os.chmod(root, 0o755)
    for d in ("control", "users"):
        os.makedirs(os.path.join(root, d))
    return root


def victim_untouched(victim):
    st = os.lstat(victim)
    return st.st_uid == 0 and st.st_gid == 0 and stat.S_IMODE(st.st_mode) == 0o755 and not os.listdir(victim)


def empty_dir(d):
    """Remove what is in d, while the racer may be swapping a directory
    for a symlink under our feet (bounded retries)."""
    for _ in range(50):
        left = os.listdir(d)
        if not left:
            return
        for f in left:
            p = os.path.join(d, f)
            try:
                if os.path.islink(p) or not os.path.isdir(p):
                    os.unlink(p)
                else:
                    shutil.rmtree(p)
            except OSError:
                pass


def t_users_race(base):
    """A watcher racing `yubin-users add` into a home the attacker owns:
    root never changes the owner of, nor creates anything in, a path the
    attacker points it to."""
    root = new_users_root(base)
    victim = os.path.join(base, "victim")          # stands for /etc, /root...
    os.mkdir(victim, 0o755)
    home = os.path.join(base, "attacker-home")
    os.mkdir(home, 0o755)
    os.chown(home, *ATTACKER)
    users = binary("yubin-users")
    tries = 40
    pid = os.fork()
    if pid == 0:
        try:
            racer(home, victim, time.time() + 120)
        finally:
            os._exit(0)
    try:
        time.sleep(0.2)
        outcomes = {}
        for i in range(tries):
            empty_dir(home)
            r = subprocess.run([users, "add", "u%d" % i, "-u", str(ATTACKER[0]), "-g", str(ATTACKER[1]),
                                "-d", home], env=users_env(root), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=60)
            outcomes[r.returncode] = outcomes.get(r.returncode, 0) + 1
            if not victim_untouched(victim):
                break
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    st = os.lstat(victim)
    check("users-add-race-no-foreign-chown", victim_untouched(victim),
          "victim now %d:%d mode %o holding %r (exits %r)"
          % (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), os.listdir(victim), outcomes))
    info("race: %d tries, exit codes %r" % (tries, outcomes))


def t_users_planted(base):
    """A Maildir symlink planted before `add`: refused, nothing made there."""
    root = new_users_root(base)
    victim = os.path.join(base, "victim2")
    os.mkdir(victim, 0o755)
    home = os.path.join(base, "home2")
    os.mkdir(home, 0o755)
    os.chown(home, *ATTACKER)
    os.symlink(victim, os.path.join(home, "Maildir"))
    r = subprocess.run([binary("yubin-users"), "add", "p", "-u", str(ATTACKER[0]), "-g", str(ATTACKER[1]),
                        "-d", home], env=users_env(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    check("users-add-planted-symlink-refused", r.returncode != 0 and victim_untouched(victim),
          "exit %d, victim holds %r: %r" % (r.returncode, os.listdir(victim), r.stderr))
    # a home inside a directory of a third user: refused
    third = os.path.join(base, "third")
    os.mkdir(third, 0o755)
    os.chown(third, 1, 1)     # daemon
    r = subprocess.run([binary("yubin-users"), "add", "q", "-u", str(ATTACKER[0]), "-g", str(ATTACKER[1]),
                        "-d", os.path.join(third, "h")], env=users_env(root),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    check("users-add-home-in-third-users-dir-refused",
          r.returncode != 0 and not os.listdir(third), "exit %d, %r" % (r.returncode, os.listdir(third)))


def t_users_root_ids(base):
    """Neither uid 0 nor gid 0 for a mail user."""
    root = new_users_root(base)
    users = binary("yubin-users")
    r0 = subprocess.run([users, "add", "zu", "-u", "0", "-g", "1000"], env=users_env(root),
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    check("users-add-uid0-refused", r0.returncode == 100 and b"uid 0" in r0.stderr,
          "exit %d %r" % (r0.returncode, r0.stderr))
    r1 = subprocess.run([users, "add", "zg", "-u", "1000", "-g", "0"], env=users_env(root),
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    check("users-add-gid0-refused", r1.returncode == 100 and b"gid 0" in r1.stderr,
          "exit %d %r" % (r1.returncode, r1.stderr))


# --- the cases on a running root instance -----------------------------------

def t_private_programs(inst):
    """2, 5: a local user can run neither yubin-checkpassword (a password
    oracle) nor yubin-tlsd (a TLS endpoint with the instance's key)."""
    for prog in ("yubin-checkpassword", "yubin-tlsd"):
        path = inst.path("libexec", prog)
        st = os.stat(path)
        # from the attacker's shell (setpriv itself would exec it with
        # the path looked up before it dropped root)
        r = as_user(*ATTACKER, ["sh", "-c", 'exec "$0" true 3<&0', path], input=b"demo\0guess\0\0",
                    env={"YUBIN_ROOT": inst.dir})
        check("%s-refused-to-local-user" % prog,
              r.returncode == 126 or b"ermission denied" in r.stderr,
              "exit %d, stderr %r" % (r.returncode, r.stderr[-200:]))
        check("%s-not-in-bin" % prog, not os.path.exists(inst.path("bin", prog)) and st.st_mode & stat.S_ISGID,
              "bin has it, or it is not setgid (mode %o)" % st.st_mode)
    lx = os.stat(inst.path("libexec"))
    check("libexec-root-yubinnet-0750",
          lx.st_uid == 0 and lx.st_gid == grp.getgrnam("yubinnet").gr_gid and stat.S_IMODE(lx.st_mode) == 0o750,
          "%d:%d %o" % (lx.st_uid, lx.st_gid, stat.S_IMODE(lx.st_mode)))
    # the submission daemon may, and a failure it sees is logged
    uid, gid = daemon_ids("yubins")
    infile = os.path.join(inst.dir, "cp-in")
    with open(infile, "wb") as f:
        f.write(b"demo\0wrong guess\0\0")
    os.chmod(infile, 0o644)
    r = as_user(uid, gid, ["sh", "-c", 'exec "$0" true 3<"$1"', inst.path("libexec", "yubin-checkpassword"), infile],
                stdin=subprocess.DEVNULL, env={"YUBIN_ROOT": inst.dir})
    check("checkpassword-daemon-failure-logged",
          r.returncode == 1 and b"checkpassword: auth-fail user=demo caller=%d" % uid in r.stderr,
          "exit %d, stderr %r" % (r.returncode, r.stderr))


def queue_as(inst, uid, gid, msg, rcpt):
    """yubin-queue run by uid:gid: the message on fd 0, the envelope on 1."""
    envfile = os.path.join(inst.dir, "env-in")
    with open(envfile, "wb") as f:
        f.write(b"Flocal@example.org\0T" + rcpt.encode() + b"\0\0")
    os.chmod(envfile, 0o644)
    return as_user(uid, gid, ["sh", "-c", 'exec "$0" 1<"$1"', inst.path("bin", "yubin-queue"), envfile],
                   input=msg)


def t_queue_local(inst):
    """3: a message a local user queues says who queued it, and the queue
    holds local users to control/databytes; network mail gets no extra
    line."""
    rcpt = "demo@" + inst.domain
    r = queue_as(inst, *ATTACKER, b"Subject: localq\n\nhello\n", rcpt)
    check("queue-local-exit-0", r.returncode == 0, "exit %d %r" % (r.returncode, r.stderr))
    msgs = inst.wait_for(lambda m: any(b"localq" in d for _, d in m))
    data = [d for _, d in msgs if b"localq" in d]
    want = b"Received: (yubin-queue "
    ok = data and want in data[0] and (b"invoked by uid %d)" % ATTACKER[0]) in data[0]
    check("queue-local-uid-line", ok, "message %r" % (data[0][:400] if data else None))
    check("qmgr-new-logs-uid", inst.wait_log("qmgr", "uid=%d" % ATTACKER[0], time.monotonic() + 10),
          "no uid=%d in qmgr's new line" % ATTACKER[0])
    big = b"Subject: big\n\n" + (b"x" * 999 + b"\n") * 11000
    r = queue_as(inst, *ATTACKER, big, rcpt)
    check("queue-local-databytes-31", r.returncode == 31, "exit %d %r" % (r.returncode, r.stderr[-200:]))
    ok, why = send(inst, "net@example.org", [rcpt], b"Subject: netq\r\n\r\nhi\r\n")
    msgs = inst.wait_for(lambda m: any(b"netq" in d for _, d in m))
    data = [d for _, d in msgs if b"netq" in d]
    check("queue-network-one-received", data and data[0].count(b"Received:") == 1
          and b"yubin-queue" not in data[0], "message %r" % (data[0][:400] if data else why))


def smtpd_pid_of(inst, port):
    """The yubin-smtpd of one open session on port."""
    c = SMTPRaw(inst.ip, port)
    code, _ = c.reply()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for pid, exe, cwd, cmd in inst.processes():
            if os.path.basename(exe) == "yubin-smtpd" and " -s" in cmd:
                return c, pid
        time.sleep(0.05)
    return c, None


def check_sealed(what, pid, who):
    """pid is not dumpable for a process of the daemon user who (as a
    compromised daemon of that uid): its environment cannot be read
    (what-unreadable-by-who) and it cannot be traced
    (what-untraceable-by-who)."""
    r = as_user(*daemon_ids(who), ["cat", "/proc/%d/environ" % pid])
    check("%s-unreadable-by-%s" % (what, who), r.returncode != 0 and not r.stdout,
          "read %d bytes of its environment" % len(r.stdout))
    r = as_user(*daemon_ids(who), ["strace", "-p", str(pid), "-e", "trace=read", "-o", "/dev/null"], timeout=10)
    check("%s-untraceable-by-%s" % (what, who), r.returncode not in (0, None),
          "strace -p exit %d: %r" % (r.returncode, r.stderr[-200:]))


def t_submission_uid(inst):
    """4: submission runs under its own uid, and its smtpd is not dumpable:
    neither port 25's uid nor its own can read its memory or environment."""
    c, pid = smtpd_pid_of(inst, inst.submission_port)
    try:
        if not check("submission-smtpd-found", pid, "no yubin-smtpd -s process"):
            return
        with open("/proc/%d/status" % pid) as f:
            uidline = [l for l in f if l.startswith("Uid:")][0].split()[1:]
        check("submission-smtpd-runs-as-yubins", set(int(u) for u in uidline) == {daemon_ids("yubins")[0]},
              "uids %r" % uidline)
        for who in ("yubind", "yubins"):
            check_sealed("submission-smtpd", pid, who)
    finally:
        c.close()


def t_listener_sealed(inst):
    """Port 25's listener (yubin-smtpd -l, yubind) and a session it forked
    are not dumpable: another process of yubind (a compromised session)
    can neither read their environment nor trace them, so it cannot take
    over the listener or watch the next client's session."""
    listener = inst.service_pid("smtpd")
    c = SMTPRaw(inst.ip, inst.smtp_port)
    try:
        c.reply()
        deadline = time.monotonic() + 5
        sessions = []
        while not sessions and time.monotonic() < deadline:
            sessions = proc_children(listener)
            time.sleep(0.05)
        if not check("listener-and-session-found", listener and sessions, "listener %r sessions %r" % (listener, sessions)):
            return
        for what, pid in (("listener", listener), ("mx-session", sessions[0])):
            check_sealed(what, pid, "yubind")
    finally:
        c.close()


def t_tls_listener_sealed(inst):
    """The submission listener (yubin-tlsd -l, yubins) holds the TLS
    private key in its memory for as long as it runs: another process of
    yubins (a compromised yubin-smtpd -s) can neither trace it nor read
    its memory or environment, and it kept no group that reads the key
    file."""
    pid = inst.service_pid("submission")
    if not check("tls-listener-found", pid and "-l" in open("/proc/%d/cmdline" % pid).read().split("\0"),
                 "pid %r" % pid):
        return
    check_sealed("tls-listener", pid, "yubins")
    r = as_user(*daemon_ids("yubins"), ["dd", "if=/proc/%d/mem" % pid, "bs=1", "count=1", "skip=4096"])
    check("tls-listener-memory-unreadable-by-yubins", r.returncode != 0 and not r.stdout, "exit %r" % r.returncode)
    with open("/proc/%d/status" % pid) as f:
        groups = [ln for ln in f if ln.startswith(("Gid:", "Groups:"))]
    keygid = str(grp.getgrnam("yubintls").gr_gid)
    check("tls-listener-no-key-group", not any(keygid in ln.split()[1:] for ln in groups), repr(groups))


def t_modes(inst):
    """7: logs are for yubinlog, users.cdb for the daemons."""
    logdir = os.stat(inst.path("log", "smtpd"))
    cur = os.stat(inst.path("log", "smtpd", "current"))
    lg = grp.getgrnam("yubinlog").gr_gid
    check("log-dir-2750-yubinlog", stat.S_IMODE(logdir.st_mode) == 0o2750 and logdir.st_gid == lg,
          "mode %o gid %d" % (stat.S_IMODE(logdir.st_mode), logdir.st_gid))
    check("log-current-not-world-readable", not cur.st_mode & 0o007 and cur.st_gid == lg,
          "mode %o gid %d" % (stat.S_IMODE(cur.st_mode), cur.st_gid))
    r = as_user(*ATTACKER, ["cat", inst.path("log", "smtpd", "current")])
    check("log-unreadable-by-local-user", r.returncode != 0, "a local user read the log")
    cdb = os.stat(inst.path("users", "users.cdb"))
    check("users-cdb-root-yubinnet-0640",
          cdb.st_uid == 0 and cdb.st_gid == grp.getgrnam("yubinnet").gr_gid and stat.S_IMODE(cdb.st_mode) == 0o640,
          "%d:%d %o" % (cdb.st_uid, cdb.st_gid, stat.S_IMODE(cdb.st_mode)))
    # banwatch's user, in yubinlog, still reads them
    r = as_user(*daemon_ids("yubinb"), ["cat", inst.path("log", "smtpd", "current")], groups="yubinlog")
    check("log-readable-by-banwatch", r.returncode == 0 and b"smtpd:" in r.stdout,
          "exit %r %r" % (r.returncode, r.stderr))


def connect_from(src, port, ip="127.0.0.1"):
    s = socket.socket()
    s.settimeout(5)
    s.bind((src, 0))
    s.connect((ip, port))
    return s


def read_line(s):
    buf = b""
    try:
        while not buf.endswith(b"\n"):
            c = s.recv(512)
            if not c:
                break
            buf += c
    except socket.timeout:
        pass
    return buf


def t_connlimit(inst):
    """8: N connections from one address, the N+1th refused, while another
    address still gets in."""
    rules = inst.path("control", "tcp.smtp")
    with open(rules) as f:
        old = f.read()
    with open(rules, "w") as f:
        f.write('127.0.0.2:allow,MAXCONNIP="2"\n127.0.0.3:allow,MAXCONNIP="2"\n' + old)
    subprocess.run(["tcprules", inst.path("banwatch", "tcp.smtp.cdb"), inst.path("banwatch", "tcp.smtp.tmp")],
                   input=open(rules, "rb").read(), check=True, timeout=30)
    held = []
    try:
        for _ in range(2):
            s = connect_from("127.0.0.2", inst.smtp_port)
            held.append(s)
            check_line = read_line(s)
            if not check_line.startswith(b"220"):
                check("connlimit-first-two-accepted", False, "got %r" % check_line)
                return
        s = connect_from("127.0.0.2", inst.smtp_port)
        third = read_line(s)
        s.close()
        check("connlimit-third-from-one-address-421", third.startswith(b"421 4.7.0 too many connections"),
              "got %r" % third)
        s = connect_from("127.0.0.3", inst.smtp_port)
        other = read_line(s)
        s.close()
        check("connlimit-other-address-gets-in", other.startswith(b"220"), "got %r" % other)
        check("connlimit-refusal-logged",
              inst.wait_log("smtpd", "smtpd: refuse ip=127.0.0.2 reason=too-many-connections", time.monotonic() + 10), "no refuse line")
        # implicit TLS: yubin-tlsd takes the slot before the handshake (so a
        # handshake that never comes holds one); the limit counts an
        # address's sessions on every service, and 127.0.0.2 is at it
        tls = [connect_from("127.0.0.2", inst.smtps_port) for _ in range(2)]
        held += tls
        time.sleep(0.3)
        s = connect_from("127.0.0.2", inst.smtps_port)
        t0 = time.monotonic()
        try:
            got = s.recv(100)
        except OSError:
            got = b""
        took = time.monotonic() - t0
        s.close()
        check("connlimit-implicit-tls-over-limit-closed", got == b"" and took < 3
              and inst.wait_log("smtps", "tlsd: refuse ip=127.0.0.2 reason=too-many-connections",
                                time.monotonic() + 10), "got %r after %.1fs" % (got, took))
        for s in tls:
            s.close()
            held.remove(s)
        held[0].close()
        held.pop(0)
        time.sleep(0.3)
        s = connect_from("127.0.0.2", inst.smtp_port)
        again = read_line(s)
        s.close()
        check("connlimit-slot-freed-on-close", again.startswith(b"220"), "got %r" % again)
    finally:
        for s in held:
            s.close()


def t_deadlines(inst):
    """8: an idle client holds a slot for seconds, not for 20 minutes; a TLS
    handshake that never completes likewise, and banwatch counts it."""
    with open(inst.path("control", "timeoutgreeting"), "w") as f:
        f.write("1\n")
    c = SMTPRaw(inst.ip, inst.smtp_port, timeout=10)
    c.reply()
    t0 = time.monotonic()
    code, text = c.reply()
    took = time.monotonic() - t0
    c.close()
    os.unlink(inst.path("control", "timeoutgreeting"))
    check("smtpd-idle-before-first-command-dropped", code == 451 and took < 5,
          "got %r after %.1fs" % (code, took))
    with open(inst.path("control", "timeouttls"), "w") as f:
        f.write("1\n")
    inst.svc("smtps", "-t")
    deadline = time.monotonic() + 20
    time.sleep(0.5)
    inst.wait_listening(inst.smtps_port, deadline)
    s = socket.create_connection((inst.ip, inst.smtps_port), timeout=10)
    t0 = time.monotonic()
    try:
        got = s.recv(100)
    except OSError:
        got = b""
    took = time.monotonic() - t0
    s.close()
    check("tls-handshake-deadline", got == b"" and took < 5, "got %r after %.1fs" % (got, took))
    check("tls-handshake-fail-logged",
          inst.wait_log("smtps", "tlsd: handshake-fail", time.monotonic() + 10), "no handshake-fail line")


def t_gid0_delivery(inst):
    """6: a users/passwd line with gid 0 (edited by hand): delivery refuses."""
    home = inst.path("home", "zero")
    os.makedirs(os.path.join(home, "Maildir", "new"))
    with open(inst.path("users", "passwd"), "a") as f:
        f.write("zero:*:%d:0:%s\n" % (ATTACKER[0], home))
    r = subprocess.run([inst.path("bin", "yubin-users"), "rebuild"], env=users_env(inst.dir),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    ok, why = send(inst, "x@example.org", ["zero@" + inst.domain], b"Subject: gid0\r\n\r\nhi\r\n")
    check("gid0-delivery-refused",
          r.returncode == 0 and ok and inst.wait_log("qmgr", "with\\x20gid\\x200", time.monotonic() + 20)
          and not os.listdir(os.path.join(home, "Maildir", "new")),
          "rebuild %d %r, send %r" % (r.returncode, r.stderr, why))


def t_demo_no(base):
    """9: a root instance with YUBIN_DEMO=no, then `yubin-users add -p`: the
    passwd file has the instance's ownership, and AUTH works."""
    import smtplib
    with Instance(env={"YUBIN_DEMO": "no"}) as inst:
        r = subprocess.run([inst.path("bin", "yubin-users"), "add", "alice", "-u", "yubinv", "-p"],
                           input=b"s3cret pass\n", env=users_env(inst.dir),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        pw = os.stat(inst.path("users", "passwd"))
        check("demo-no-passwd-root-yubinauth-0640",
              r.returncode == 0 and pw.st_uid == 0 and pw.st_gid == grp.getgrnam("yubinauth").gr_gid
              and stat.S_IMODE(pw.st_mode) == 0o640,
              "exit %d %r, passwd %d:%d %o" % (r.returncode, r.stderr, pw.st_uid, pw.st_gid, stat.S_IMODE(pw.st_mode)))
        try:
            with smtplib.SMTP(inst.ip, inst.submission_port, timeout=30) as s:
                s.starttls(context=tls_client_ctx())
                code, _ = s.login("alice", "s3cret pass")
        except smtplib.SMTPException as e:
            code = repr(e)
        check("demo-no-auth-after-users-add", code == 235, "AUTH got %r" % (code,))


def main():
    if not is_root():
        for n in ("users-add-race-no-foreign-chown", "local-instance-cases"):
            skip(n, "needs root: the boundaries are between uids")
        return
    base = tempfile.mkdtemp(prefix="yubin-sec-")
    os.chmod(base, 0o755)
    try:
        t_users_race(base)
        t_users_planted(base)
        t_users_root_ids(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    with Instance() as inst:
        t_private_programs(inst)
        t_queue_local(inst)
        t_submission_uid(inst)
        t_listener_sealed(inst)
        t_tls_listener_sealed(inst)
        t_modes(inst)
        t_connlimit(inst)
        t_deadlines(inst)
        t_gid0_delivery(inst)
    t_demo_no(None)


if __name__ == "__main__":
    run(main)
