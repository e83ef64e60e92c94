#!/usr/bin/env python3
"""yubin bench: postfix's smtp-source against yubin and a private Postfix.

Method and how to read the output: bench/README.  Run with `make bench`
(or `sh bench/run`).  Everything the bench starts lives in one temporary
directory and is stopped on exit, error, Ctrl-C or SIGTERM.
"""

import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)


def env_int(name, default):
    v = os.environ.get(name, "")
    try:
        return int(v) if v else default
    except ValueError:
        sys.exit("bench: %s must be a number, not %r" % (name, v))


SESSIONS = [int(s) for s in os.environ.get("BENCH_SESSIONS", "1 10 32").split()]
N_ONE = env_int("BENCH_N1", 1500)        # messages for 1 session
N_MANY = env_int("BENCH_N", 4000)        # messages for more sessions
N_FSYNC = env_int("BENCH_FSYNC_N", 300)  # messages for the strace run
N_WARM = env_int("BENCH_WARMUP", 100)    # warm-up messages (not measured)
SIZE = env_int("BENCH_SIZE", 2048)       # smtp-source -l (body bytes)
REPEAT = max(1, env_int("BENCH_REPEAT", 3))  # timed runs per cell; median
REUSE = os.environ.get("BENCH_REUSE", "0") == "1"  # smtp-source -d
FS = os.environ.get("BENCH_FS", "tmp")         # tmp, or ext4: a fresh loop image
KEEP = os.environ.get("BENCH_KEEP", "0") == "1"    # keep the temp dir
SYSTEMS = os.environ.get("BENCH_SYSTEMS", "yubin postfix").split()
BIN = os.path.abspath(os.environ.get("YUBIN_BIN", os.path.join(TOP, "build/bin")))
POLL = 0.005                             # seconds between Maildir polls
DOMAIN = "bench.test"
# The Postfix recipient: a system user made for this run (and removed after
# it), named per run so that two benches at once cannot delete each other's.
PF_USER = os.environ.get("BENCH_POSTFIX_USER", "yubinbench%d" % os.getpid())
SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
STRACE = shutil.which("strace")
SYNC_CALLS = ("fsync", "fdatasync", "syncfs", "sync_file_range", "sync", "msync")
PROC_CALLS = ("execve", "clone", "clone3", "fork", "vfork")


def say(*a):
    print("bench:", *a, flush=True)


class BenchError(Exception):
    pass


class Interrupted(Exception):
    pass


def on_signal(sig, frame):
    raise Interrupted("signal %d" % sig)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_banner(port, deadline_s, what):
    """Wait until something on 127.0.0.1:port greets with 220."""
    end = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.settimeout(2)
                data = s.recv(512)
                if data.startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return
                last = data
        except OSError as e:
            last = e
        time.sleep(0.05)
    raise BenchError("%s: no 220 banner on port %d (%s)" % (what, port, last))


def count_dir(path):
    try:
        with os.scandir(path) as it:
            return sum(1 for e in it if not e.name.startswith("."))
    except FileNotFoundError:
        return 0


def empty_dir(path):
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return
    for n in names:
        try:
            os.unlink(os.path.join(path, n))
        except IsADirectoryError:
            shutil.rmtree(os.path.join(path, n), ignore_errors=True)
        except FileNotFoundError:
            pass


def files_under(path, skip=()):
    """Regular files under path (not following symlinks), minus names in skip."""
    n = 0
    for dp, dns, fns in os.walk(path):
        for f in fns:
            if f in skip:
                continue
            try:
                st = os.lstat(os.path.join(dp, f))
            except FileNotFoundError:
                continue
            # yubin-queued's pool (empty new/.p*, finished new/.r*) holds no messages
            if (st.st_mode & 0o170000) == 0o100000 and not ((f.startswith(".p") and st.st_size == 0)
                                                            or f.startswith(".r")):
                n += 1
    return n


def proc_children():
    """pid -> list of child pids, from /proc."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def descendants(pid, include_self=True):
    kids = proc_children()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out if include_self else out[1:]


CLK = os.sysconf("SC_CLK_TCK")


def tree_cpu(pids):
    """CPU seconds (user+sys, own and reaped children) summed over pids."""
    t = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                st = f.read()
        except OSError:
            continue
        v = st[st.rindex(")") + 2:].split()
        t += int(v[11]) + int(v[12]) + int(v[13]) + int(v[14])
    return t / CLK


def machine_cpu():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    total = sum(v[:8])
    return total - idle, total


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def kill_all(pids, sig=signal.SIGKILL):
    for p in pids:
        try:
            os.kill(p, sig)
        except (ProcessLookupError, PermissionError):
            pass


def run(cmd, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, **kw)
    if r.returncode != 0:
        raise BenchError("%s exited %d:\n%s" % (" ".join(cmd), r.returncode, r.stdout))
    return r.stdout


def postfix_version():
    try:
        out = subprocess.run(["postconf", "-d", "mail_version"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, timeout=10).stdout
        return out.split("=", 1)[1].strip()
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


def tree_version():
    """The yubin tree's commit (and whether it has local changes), for the header."""
    try:
        rev = subprocess.run(["git", "-C", TOP, "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", TOP, "status", "--porcelain", "--untracked-files=no"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return (rev or "?") + (" with local changes" if dirty else "")


def host_info():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            mem = "%d GB" % (int(f.readline().split()[1]) // 1024 // 1024)
    except (OSError, ValueError, IndexError):
        pass
    fs = "?"
    try:
        out = subprocess.run(["df", "-T", tempfile.gettempdir()], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True).stdout.splitlines()
        if len(out) > 1:
            parts = out[1].split()
            fs = "%s on %s" % (parts[1], parts[0])
            jt = "/sys/fs/ext4/%s/journal_task" % os.path.basename(parts[0])
            if parts[1] == "ext4" and os.path.exists(jt):
                with open(jt) as f:
                    fs += " (no journal)" if "none" in f.read() else " (journal)"
    except OSError:
        pass
    kern = os.uname().release
    return "%s, %d CPUs, %s RAM, %s, Linux %s" % (cpu, os.cpu_count() or 0, mem, fs, kern)


# ---------------------------------------------------------------- Postfix

MASTER_CF = """\
# private Postfix for the yubin bench: no chroot, loopback only
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
# private Postfix for the yubin bench (see bench/README)
compatibility_level = 3.6
queue_directory = {dir}/spool
data_directory = {dir}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = {domain}
mydomain = {domain}
myorigin = $myhostname
mydestination = $myhostname, localhost
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
# no DNS anywhere
disable_dns_lookups = yes
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
smtpd_peername_lookup = no
# local(8) into ~/Maildir/, nothing else on the way
home_mailbox = Maildir/
alias_maps =
alias_database =
biff = no
content_filter =
smtpd_milters =
non_smtpd_milters =
header_checks =
body_checks =
local_destination_concurrency_limit = {local_conc}
# logging to a file, as yubin logs through s6-log
maillog_file_prefixes = {dir}
maillog_file = {dir}/maillog
"""


class Postfix:
    name = "postfix"

    def __init__(self, base, local_conc):
        self.dir = os.path.join(base, "postfix")
        self.etc = os.path.join(self.dir, "etc")
        self.home = os.path.join(self.dir, "home")
        self.maildir = os.path.join(self.home, "Maildir")
        self.new = os.path.join(self.maildir, "new")
        self.port = free_port()
        self.rcpt = "%s@%s" % (PF_USER, DOMAIN)
        self.local_conc = local_conc
        self.created_user = False
        self.old_home = None
        self.started = False
        self.pids = set()

    def start(self):
        for d in (self.etc, os.path.join(self.dir, "spool"), os.path.join(self.dir, "data"), self.home):
            os.makedirs(d, exist_ok=True)
        os.chmod(self.dir, 0o755)
        try:
            pw = pwd.getpwnam(PF_USER)
            self.old_home = pw.pw_dir
            run(["usermod", "-d", self.home, PF_USER])
        except KeyError:
            run(["useradd", "-r", "-M", "-d", self.home, "-s", "/usr/sbin/nologin", PF_USER])
            self.created_user = True
        pw = pwd.getpwnam(PF_USER)
        for d in (self.home, self.maildir, self.new,
                  os.path.join(self.maildir, "cur"), os.path.join(self.maildir, "tmp")):
            os.makedirs(d, exist_ok=True)
            os.chown(d, pw.pw_uid, pw.pw_gid)
            os.chmod(d, 0o700 if d != self.home else 0o755)
        owner = pwd.getpwnam("postfix")
        os.chown(os.path.join(self.dir, "data"), owner.pw_uid, owner.pw_gid)
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(MAIN_CF.format(dir=self.dir, domain=DOMAIN, local_conc=self.local_conc))
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=self.port))
        for verb in ("check", "start"):
            try:
                run(["postfix", "-c", self.etc, verb])
            except BenchError as e:
                raise BenchError("%s\n%s" % (e, self.log_tail()))
        self.started = True
        wait_banner(self.port, 20, "postfix")
        self.remember()

    def master_pid(self):
        try:
            with open(os.path.join(self.dir, "spool/pid/master.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def tree(self):
        m = self.master_pid()
        return descendants(m) if m and alive(m) else []

    def remember(self):
        self.pids.update(self.tree())

    def queue_files(self):
        sp = os.path.join(self.dir, "spool")
        return sum(files_under(os.path.join(sp, q)) for q in
                   ("maildrop", "incoming", "active", "deferred", "hold"))

    def stop(self):
        if self.started:
            self.remember()
            m = self.master_pid()
            subprocess.run(["postfix", "-c", self.etc, "stop"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=30)
            end = time.monotonic() + 10
            while m and alive(m) and time.monotonic() < end:
                time.sleep(0.05)
            self.started = False
        kill_all([p for p in self.pids if alive(p)])
        if self.created_user:
            subprocess.run(["userdel", PF_USER], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.created_user = False
        elif self.old_home is not None:
            subprocess.run(["usermod", "-d", self.old_home, PF_USER],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.old_home = None

    def log_tail(self):
        try:
            with open(os.path.join(self.dir, "maillog")) as f:
                return "".join(f.readlines()[-15:])
        except OSError:
            return ""


# ---------------------------------------------------------------- yubin

class Yubin:
    name = "yubin"

    def __init__(self, base):
        self.dir = os.path.join(base, "yubin")
        self.port = free_port()
        self.svscan = None
        self.pids = set()
        self.user = "demo"
        self.rcpt = "%s@%s" % (self.user, DOMAIN)
        self.new = None

    def start(self):
        setup = os.path.join(TOP, "package/setup")
        if not os.path.exists(setup):
            raise BenchError("package/setup is missing: yubin cannot be set up")
        env = dict(os.environ)
        env.update({
            "YUBIN_BIN": BIN,
            "YUBIN_IP": "127.0.0.1",
            "YUBIN_SMTP_PORT": str(self.port),
            "YUBIN_DOMAIN": DOMAIN,
            "YUBIN_ME": DOMAIN,
            "YUBIN_FIREWALL": "no",   # never the machine's own nftables ruleset
        })
        # the other listeners must not collide with a running `make run`
        for v in ("YUBIN_SUBMISSION_PORT", "YUBIN_SMTPS_PORT", "YUBIN_POP3_PORT", "YUBIN_IMAP_PORT"):
            env[v] = str(free_port())
        out = run(["sh", setup, self.dir], env=env, cwd=TOP)
        self.setup_out = out
        me = self.control("me") or DOMAIN
        self.rcpt = "%s@%s" % (self.user, me)
        self.new = self.find_maildir()
        os.makedirs(self.new, exist_ok=True)
        svc = os.path.join(self.dir, "service")
        self.svscan = subprocess.Popen(["s6-svscan", svc], stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       start_new_session=True)
        self.pids.add(self.svscan.pid)
        wait_banner(self.port, 20, "yubin")
        self.remember()

    def control(self, name):
        try:
            with open(os.path.join(self.dir, "control", name)) as f:
                return f.readline().strip()
        except OSError:
            return None

    def find_maildir(self):
        """The demo user's Maildir/new, from users/passwd (name:hash:uid:gid:home)."""
        try:
            with open(os.path.join(self.dir, "users/passwd")) as f:
                for line in f:
                    p = line.rstrip("\n").split(":")
                    if len(p) >= 5 and p[0] == self.user:
                        return os.path.join(p[4], "Maildir/new")
        except OSError:
            pass
        return os.path.join(self.dir, "home", self.user, "Maildir/new")

    def tree(self):
        if self.svscan and self.svscan.poll() is None:
            return descendants(self.svscan.pid)
        return []

    def remember(self):
        self.pids.update(self.tree())

    def queue_files(self):
        # Message files (qmgr/README): tmp/, new/, cur/ and env/ of queue/.
        q = os.path.join(self.dir, "queue")
        return sum(files_under(os.path.join(q, d)) for d in ("tmp", "new", "cur", "env"))

    def stop(self):
        if self.svscan is not None:
            self.remember()
            subprocess.run(["s6-svscanctl", "-t", os.path.join(self.dir, "service")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
            try:
                self.svscan.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            self.svscan = None
        kill_all([p for p in self.pids if alive(p)])

    def log_tail(self):
        out = []
        logd = os.path.join(self.dir, "log")
        for dp, dns, fns in os.walk(logd):
            if "current" in fns:
                try:
                    with open(os.path.join(dp, "current")) as f:
                        out.append("== %s\n%s" % (dp, "".join(f.readlines()[-8:])))
                except OSError:
                    pass
        return "".join(out)


# ---------------------------------------------------------------- runs

def settle(system, deadline_s=30):
    """Wait until the system's queue holds no message (the run is over)."""
    end = time.monotonic() + deadline_s
    stable = 0
    while time.monotonic() < end:
        left = system.queue_files()
        if left == 0:
            stable += 1
            if stable >= 3:
                return True
        else:
            stable = 0
        time.sleep(0.02)
    say("warning: %s: %d files still in the queue after %ds" % (system.name, left, deadline_s))
    return False


def smtp_source_cmd(system, sessions, n):
    cmd = [SMTP_SOURCE, "-4", "-s", str(sessions), "-m", str(n), "-l", str(SIZE),
           "-M", "client.test", "-f", "bench@client.test", "-t", system.rcpt,
           "-S", "bench"]
    if REUSE:
        cmd.append("-d")
    cmd.append("127.0.0.1:%d" % system.port)
    return cmd


def one_run(system, sessions, n, deadline_s=None):
    """Send n messages over `sessions` parallel sessions; return timings.

    t0 is taken just before smtp-source starts (its first connection follows
    within a millisecond); the end is the first 5 ms poll that sees all n
    messages in Maildir/new.  While smtp-source runs the poll only checks the
    client (counting 5000 directory entries every 5 ms would steal the CPU
    we are measuring); once it has exited, every poll counts Maildir/new.
    """
    if deadline_s is None:
        deadline_s = max(60.0, n / 20.0)
    empty_dir(system.new)
    settle(system)
    os.sync()
    base = count_dir(system.new)
    cpu0 = tree_cpu(system.tree())
    m0 = machine_cpu()
    t0 = time.monotonic()
    p = subprocess.Popen(smtp_source_cmd(system, sessions, n), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    end = t0 + deadline_s
    t_client = None
    seen = base
    try:
        while True:
            time.sleep(POLL)
            now = time.monotonic()
            if t_client is None:
                if p.poll() is not None:
                    t_client = now
                    out = p.stdout.read().decode(errors="replace")
                    if p.returncode != 0:
                        raise BenchError("%s: smtp-source exited %d: %s" %
                                         (system.name, p.returncode, out.strip()[-500:]))
                    backlog = n - (count_dir(system.new) - base)
                    continue
            else:
                seen = count_dir(system.new)
                if seen - base >= n:
                    t1 = now
                    break
            if now > end:
                raise BenchError("%s: %d sessions: deadline %.0fs passed (client %s, %d/%d in Maildir/new)"
                                 % (system.name, sessions, deadline_s,
                                    "done" if t_client else "running", seen - base, n))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    m1 = machine_cpu()
    settle(system)
    cpu = tree_cpu(system.tree()) - cpu0
    system.remember()
    busy = (m1[0] - m0[0]) / max(1, m1[1] - m0[1])
    return {"n": n, "elapsed": t1 - t0, "client": t_client - t0, "backlog": backlog,
            "rate": n / (t1 - t0), "cpu_ms": 1000.0 * cpu / n, "busy": busy}


STRACE_LINE = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$")


def parse_strace(path):
    counts = {}
    try:
        with open(path) as f:
            for line in f:
                m = STRACE_LINE.match(line)
                if m and m.group(2) != "total":
                    counts[m.group(2)] = counts.get(m.group(2), 0) + int(m.group(1))
    except OSError:
        pass
    return counts


def strace_run(system, sessions, n, base):
    """Count sync calls (and execs, forks) per message under strace -f -c."""
    out = os.path.join(base, "strace-%s-%d.txt" % (system.name, sessions))
    empty_dir(system.new)
    settle(system)
    os.sync()
    pids = system.tree()
    if not pids:
        raise BenchError("%s: no process tree to attach to" % system.name)
    st = subprocess.Popen([STRACE, "-f", "-c", "-o", out,
                           "-e", "trace=" + ",".join(SYNC_CALLS + PROC_CALLS),
                           "-p", ",".join(str(p) for p in pids)],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        # attached when every pid (still alive) shows strace as its tracer
        end = time.monotonic() + 20
        while time.monotonic() < end:
            pending = 0
            for p in pids:
                try:
                    with open("/proc/%d/status" % p) as f:
                        tp = [l for l in f if l.startswith("TracerPid:")]
                    if tp and int(tp[0].split()[1]) == 0:
                        pending += 1
                except OSError:
                    pass
            if pending == 0:
                break
            if st.poll() is not None:
                raise BenchError("strace exited %d" % st.returncode)
            time.sleep(0.02)
        else:
            raise BenchError("strace did not attach to %s" % system.name)
        r = one_run(system, sessions, n, deadline_s=max(120.0, n / 5.0))
        settle(system)  # queue clean-up after delivery counts too
        time.sleep(0.3)
    finally:
        if st.poll() is None:
            st.send_signal(signal.SIGINT)
            try:
                st.wait(timeout=30)
            except subprocess.TimeoutExpired:
                st.kill()
                st.wait()
    c = parse_strace(out)
    syncs = sum(c.get(k, 0) for k in SYNC_CALLS)
    execs = c.get("execve", 0)
    forks = sum(c.get(k, 0) for k in PROC_CALLS if k != "execve")
    return {"fsync": syncs / n, "exec": execs / n, "fork": forks / n, "calls": c,
            "rate": r["rate"]}


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def median_run(runs):
    """The run with the median rate (the lower middle one for an even count)."""
    if not runs:
        return None
    return sorted(runs, key=lambda r: r["rate"])[(len(runs) - 1) // 2]


def median_cpu(runs):
    """The median CPU ms per message of the runs (not tied to the median rate)."""
    if not runs:
        return None
    v = sorted(r["cpu_ms"] for r in runs)
    return v[(len(v) - 1) // 2]


def table(sessions, res, fs):
    """The summary: median msg/s and their ratio, median server CPU ms per
    message, and per message fsyncs, execs and forks (strace run)."""
    head = "%-9s %-12s %-14s %-6s %-10s %-12s %-16s %-17s %s" % (
        "sessions", "yubin msg/s", "postfix msg/s", "ratio", "CPU ms/msg", "(yubin/pfx)",
        "yubin fsync/msg", "postfix fsync/msg", "yubin exec+fork/msg")
    lines = [head]
    for s in sessions:
        y = median_run(res.get(("yubin", s)))
        p = median_run(res.get(("postfix", s)))
        ratio = y["rate"] / p["rate"] if y and p else None
        yc, pc = median_cpu(res.get(("yubin", s))), median_cpu(res.get(("postfix", s)))
        yf = fs.get(("yubin", s))
        pf = fs.get(("postfix", s))
        lines.append("%-9d %-12s %-14s %-6s %-23s %-16s %-17s %s" % (
            s, fmt(y and y["rate"], ".0f"), fmt(p and p["rate"], ".0f"), fmt(ratio, ".2f"),
            "%s / %s" % (fmt(yc, ".2f"), fmt(pc, ".2f")),
            fmt(yf and yf["fsync"], ".2f"), fmt(pf and pf["fsync"], ".2f"),
            "%s + %s" % (fmt(yf and yf["exec"], ".2f"), fmt(yf and yf["fork"], ".2f"))))
    return "\n".join(lines)


def details(sessions, res, fs, systems):
    lines = []
    for name in systems:
        for s in sessions:
            runs = res.get((name, s), [])
            for r in runs:
                lines.append("%-7s %2d sess: %5d msgs %6.2fs %5.0f msg/s | client done %6.2fs, %4d then"
                             " still queued | %.2f ms CPU/msg in %s, machine %3.0f%% busy" % (
                                 name, s, r["n"], r["elapsed"], r["rate"], r["client"],
                                 r["backlog"], r["cpu_ms"], name, 100 * r["busy"]))
            f = fs.get((name, s))
            if f:
                calls = ", ".join("%s %d" % kv for kv in sorted(f["calls"].items()))
                lines.append("%-7s %2d sess: per message %.2f fsync, %.2f execve, %.2f fork/clone"
                             " (strace, %d msgs: %s)" % (
                                 name, s, f["fsync"], f["exec"], f["fork"], N_FSYNC, calls))
    return "\n".join(lines)


def mount_ext4(base, mnt):
    """A fresh journaled ext4 (loop-mounted sparse image) for both systems."""
    if os.geteuid() != 0:
        raise BenchError("BENCH_FS=ext4 needs root (mount)")
    img = os.path.join(base, "fs.img")
    with open(img, "wb") as f:
        f.truncate(4 << 30)
    run(["mkfs.ext4", "-q", "-F", img])
    os.makedirs(mnt)
    run(["mount", "-o", "loop", img, mnt])
    os.chmod(mnt, 0o755)
    say("both systems on a fresh journaled ext4 (loop image) at", mnt)
    return mnt


def main():
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    systems = list(SYSTEMS)
    notes = []
    if os.geteuid() != 0 and "postfix" in systems:
        say("not root: a private Postfix needs root (its daemons change uid); benching yubin only")
        notes.append("not run as root: Postfix skipped")
        systems.remove("postfix")
    if not STRACE:
        say("strace not found: no fsync counts (apt-get install -y strace)")
        notes.append("no strace: fsync columns empty")
    if "yubin" in systems and not os.path.exists(os.path.join(BIN, "yubin-smtpd")):
        raise BenchError("no yubin binaries in %s (make first)" % BIN)

    # Other load on the machine makes every number here noisy: say so.
    m0 = machine_cpu()
    time.sleep(1.0)
    m1 = machine_cpu()
    idle_busy = (m1[0] - m0[0]) / max(1, m1[1] - m0[1])
    if idle_busy > 0.15:
        say("warning: the machine is %.0f%% busy before the bench starts; results will be noisy"
            % (100 * idle_busy))
        notes.append("the machine was %.0f%% busy before the bench started (other load): noisy"
                     % (100 * idle_busy))

    others = [d for d in glob.glob(os.path.join(tempfile.gettempdir(), "yubin-bench.*"))
              if os.path.isdir(d)]
    if others:
        say("warning: %s exist: another bench running (or one killed with -9)?" % " ".join(others))
        notes.append("another bench's directory existed at the start: %s" % " ".join(others))

    base = tempfile.mkdtemp(prefix="yubin-bench.")
    os.chmod(base, 0o755)
    say("work directory", base)
    started = []
    res, fs = {}, {}
    t_start = time.monotonic()
    ok = False
    mnt = None
    try:
        where = base
        if FS == "ext4":
            mnt = os.path.join(base, "fs")
            where = mount_ext4(base, mnt)
        elif FS != "tmp":
            raise BenchError("BENCH_FS is tmp or ext4, not %r" % FS)
        for name in systems:
            if name == "yubin":
                sysm = Yubin(where)
            elif name == "postfix":
                sysm = Postfix(where, env_int("BENCH_POSTFIX_LOCAL_CONC", 20))
            else:
                raise BenchError("unknown system %r" % name)
            started.append(sysm)
            sysm.start()
            say("%s up on 127.0.0.1:%d, recipient %s, Maildir %s" % (
                name, sysm.port, sysm.rcpt, sysm.new))
            if N_WARM:
                one_run(sysm, min(10, N_WARM), N_WARM)
        mode = "several messages per session (-d)" if REUSE else "one message per session"
        say("smtp-source -l %d, %s; sessions %s" % (SIZE, mode, " ".join(map(str, SESSIONS))))
        for s in SESSIONS:
            n = N_ONE if s == 1 else N_MANY
            for rep in range(REPEAT):
                # same conditions, back to back, the order alternating
                for sysm in (started if rep % 2 == 0 else started[::-1]):
                    r = one_run(sysm, s, n)
                    res.setdefault((sysm.name, s), []).append(r)
                    say("%-7s %2d sessions: %d msgs in %.2fs = %.0f msg/s, %.2f ms CPU/msg" % (
                        sysm.name, s, n, r["elapsed"], r["rate"], r["cpu_ms"]))
        if STRACE and N_FSYNC > 0:
            for s in SESSIONS:
                for sysm in started:
                    f = strace_run(sysm, s, N_FSYNC, base)
                    fs[(sysm.name, s)] = f
                    say("%-7s %2d sessions: %.2f fsync/msg, %.2f execve/msg (under strace)" % (
                        sysm.name, s, f["fsync"], f["exec"]))
        ok = True
    except BenchError as e:
        say("FAILED:", e)
        for sysm in started:
            t = sysm.log_tail()
            if t:
                print("---- %s log tail\n%s" % (sysm.name, t))
    except Interrupted as e:
        say("interrupted (%s), cleaning up" % e)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for sysm in reversed(started):
            try:
                sysm.stop()
            except Exception as e:  # keep cleaning the others
                say("stopping %s: %s" % (sysm.name, e))
        if mnt is not None and os.path.ismount(mnt):
            if subprocess.run(["umount", mnt], stderr=subprocess.DEVNULL).returncode != 0:
                time.sleep(1)
                subprocess.run(["umount", "-l", mnt], stderr=subprocess.DEVNULL)
        if KEEP:
            say("kept", base)
        else:
            shutil.rmtree(base, ignore_errors=True)

    took = time.monotonic() - t_start
    if not res:
        return 1
    mode = "several messages per session (smtp-source -d)" if REUSE else "one message per session"
    head = ["yubin bench, %s" % time.strftime("%Y-%m-%d %H:%M %Z"),
            "host: %s" % host_info(),
            "yubin: tree %s, programs from %s; postfix %s" % (
                tree_version(), BIN, postfix_version()),
            "smtp-source -l %d (~%d-byte messages), %s; %d msgs at 1 session, %d at more;"
            " msg/s is the median of %d runs; fsync counts from a separate strace run of %d msgs" % (
                SIZE, SIZE + 200, mode, N_ONE, N_MANY, REPEAT, N_FSYNC),
            "bench took %.0fs" % took]
    if FS == "ext4":
        head.append("filesystem: a fresh journaled ext4 on a loop device (BENCH_FS=ext4)")
    head += ["note: " + x for x in notes]
    text = "\n".join(head) + "\n\n" + table(SESSIONS, res, fs) + "\n\n" + \
        details(SESSIONS, res, fs, [s.name for s in started]) + "\n"
    if not ok:
        text += "\nINCOMPLETE: the bench failed or was interrupted\n"
    print()
    print(text, end="")
    try:
        with open(os.path.join(HERE, "results-latest.txt"), "w") as f:
            f.write(text)
        say("saved bench/results-latest.txt")
    except OSError as e:
        say("unable to save bench/results-latest.txt: %s" % e)
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        say("FAILED:", e)
        sys.exit(111)
    except Interrupted:
        sys.exit(130)
