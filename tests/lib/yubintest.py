"""The one helper module of yubin's Python tests (tests/*/test_*.py).

Every test program puts tests/lib on sys.path and imports what it needs:

    HERE = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(HERE, "..", "lib"))
    from yubintest import check, run

What is here:
  - PASS/FAIL lines: check(name, cond, why) prints one case; skip, info;
    done() is the exit status; run(main) runs main, turns a crash into a
    FAIL line and exits.  Tests written as one function per case use
    expect(cond, why) (raises Failure) and run_cases(cases, fixture).
  - binaries: bin_dir() and binary(name), from YUBIN_BIN (default
    build/bin); is_root().
  - free_port(), free_ports(n), wait_for(cond, timeout), minimal_env() (PATH and the
    sanitizer options only), sanitizer_report(text).
  - cdb files (D. J. Bernstein's format, as skalibs reads and writes them):
    cdb_write, cdb_get, cdb_items.
  - PHC password hashes as yubin's password.c reads them: phc_scrypt,
    phc_scrypt_verify.
  - TLS: make_cert (openssl), tls_client_ctx (no verification).
  - Instance: a real yubin instance (package/setup) in a temporary
    directory, on free loopback ports, with its services under s6-svscan,
    for the end-to-end tests (tests/e2e/):

        with Instance() as inst:
            s = smtplib.SMTP(inst.ip, inst.smtp_port)
            ...
            files = inst.wait_messages(1)
            check("delivered", len(files) == 1, "got %d" % len(files))

    YUBIN_KEEP=1 keeps the instance directory after the test (its path is
    printed).  Start-up, waits and shutdown have deadlines, and leftover
    processes are killed.

Helpers of one program only live beside its tests (tests/banwatch/bwlib.py,
tests/qmgr/qmgrtest.py) and import this module.
"""

import atexit
import base64
import hashlib
import hmac
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DOMAIN = "yubin.test"

# ---------------------------------------------------------------- PASS/FAIL

_results = {"pass": 0, "fail": 0}
WHY_LINES = 40


def check(name, cond, why=""):
    """Print 'PASS name' or 'FAIL name: why' (further lines of why as
    '#   ' lines); return cond as a bool."""
    if cond:
        _results["pass"] += 1
        print("PASS %s" % name, flush=True)
    else:
        _results["fail"] += 1
        lines = str(why or "failed").splitlines() or ["failed"]
        print("FAIL %s: %s" % (name, lines[0]), flush=True)
        for l in lines[1:WHY_LINES]:
            print("#   " + l, flush=True)
    return bool(cond)


def skip(name, why):
    print("SKIP %s: %s" % (name, why), flush=True)


def info(*a):
    print("#", *a, flush=True)


def done():
    """Exit status for the test program: 1 if anything failed."""
    return 1 if _results["fail"] else 0


def _prog_name():
    return os.path.splitext(os.path.basename(sys.argv[0]))[0]


def run(main):
    """Run main(), turn a start failure or a crash into a FAIL line, and
    exit with done()'s status."""
    name = _prog_name()
    try:
        main()
    except StartError as e:
        check(name + "-instance-start", False, str(e))
    except Exception as e:  # a crashed test is a failed test, with its trace
        traceback.print_exc(file=sys.stdout)
        check(name + "-crashed", False, "%s: %s" % (type(e).__name__, e))
    sys.exit(done())


class Failure(Exception):
    """A failed expectation inside a case of run_cases."""


def expect(cond, why):
    """In a case of run_cases: fail the case with why unless cond."""
    if not cond:
        raise Failure(why)


def case_list():
    """A list of cases and the decorator that appends to it:
    CASES, case = case_list()."""
    cases = []

    def case(fn):
        cases.append(fn)
        return fn
    return cases, case


def run_cases(cases, fixture, timed=False):
    """Run each case with a fresh fixture() (cleaned up after with its
    cleanup()), one PASS/FAIL line per case; a case is a function (named
    after itself) or a (name, function) pair; the function gets the
    fixture.  Names on the command line choose the cases to run.
    Returns done()."""
    only = sys.argv[1:]
    n = {"pass": 0, "fail": 0}
    for c in cases:
        name, fn = c if isinstance(c, tuple) else (c.__name__, c)
        if only and name not in only and fn.__name__ not in only:
            continue
        t0 = time.time()
        f = fixture()
        try:
            fn(f)
            ok, why = True, ""
        except Failure as e:
            ok, why = False, str(e).replace("\n", "\\n")[:1500]
        except Exception as e:  # a crash of the test itself is a failure too
            traceback.print_exc(file=sys.stdout)
            ok, why = False, "%s: %s" % (type(e).__name__, e)
        finally:
            f.cleanup()
        n["pass" if check(name, ok, why) else "fail"] += 1
        if timed:
            info("%s: %.1fs" % (name, time.time() - t0))
    print("%d passed, %d failed" % (n["pass"], n["fail"]), flush=True)
    return done()


# ---------------------------------------------------------------- programs

def bin_dir():
    """YUBIN_BIN (default build/bin), absolute."""
    b = os.environ.get("YUBIN_BIN") or "build/bin"
    return b if os.path.isabs(b) else os.path.join(TOP, b)


def binary(name):
    """The path of program name (yubin-smtpd, ...) in bin_dir()."""
    return os.path.join(bin_dir(), name)


def sanitizer_build(bin=None):
    """Whether the programs in bin (default YUBIN_BIN) are the ASan/UBSan
    build.  Then an instance run as root cannot take mail through the
    setuid yubin-queue (LeakSanitizer does not run set-uid: it reports a
    fatal error and SMTP answers 451): tests put messages into the Maildir
    instead, or skip, and say so."""
    try:
        with open(os.path.join(bin or bin_dir(), "yubin-queue"), "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def proc_status(pid):
    """/proc/PID/status as {field: [words]} (OSError if it is gone)."""
    st = {}
    with open("/proc/%d/status" % pid) as fh:
        for l in fh:
            k, _, v = l.partition(":")
            st[k] = v.split()
    return st


def proc_ids(pid):
    """([real, effective, saved, fs uids], [the same gids], effective
    capabilities as an int) of PID (OSError if it is gone)."""
    st = proc_status(pid)
    return [int(x) for x in st["Uid"]], [int(x) for x in st["Gid"]], int(st["CapEff"][0], 16)


def bytes_diff(want, got):
    """Where two byte strings first differ, for a failure message."""
    for i, (a, b) in enumerate(zip(want, got)):
        if a != b:
            return "differs at byte %d of %d/%d: want %r got %r" % (
                i, len(want), len(got), want[max(0, i - 40):i + 40], got[max(0, i - 40):i + 40])
    return "lengths %d (want) %d (got); tail want %r got %r" % (len(want), len(got), want[-60:], got[-60:])


def curl(*args, timeout=30):
    """curl -sS with args: (exit code, stdout bytes, stderr text)."""
    r = subprocess.run(["curl", "-sS", "--max-time", "20"] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


def proc_gone(pid):
    """Whether pid has exited (gone, or a zombie), even if it exits while
    we look."""
    try:
        return proc_status(pid)["State"][0] == "Z"
    except (OSError, KeyError, IndexError):
        return True


def proc_children(pid):
    """The pids whose parent is pid."""
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if int(proc_status(int(p))["PPid"][0]) == pid:
                    out.append(int(p))
            except (OSError, KeyError):
                pass
    return out


def proc_exe(pid):
    """The base name of pid's program, "" if it is gone."""
    try:
        return os.path.basename(os.readlink("/proc/%d/exe" % pid))
    except OSError:
        return ""


def is_root():
    return os.geteuid() == 0


def free_port(ip="127.0.0.1"):
    """A TCP port nothing listens on now (bind port 0)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((ip, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def free_ports(n, ip="127.0.0.1"):
    """n distinct TCP ports nothing listens on now: all bound at once, so
    that the kernel cannot hand out one of them twice."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind((ip, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_for(cond, timeout=5.0, step=0.005):
    """Poll cond() until true or timeout; returns its last value."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() > end:
            return v
        time.sleep(step)


SANITIZER_ENV = ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")


def minimal_env(extra=None):
    """PATH and the sanitizer options of our environment, and extra (a
    value None removes the variable)."""
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for k in SANITIZER_ENV:
        if k in os.environ:
            e[k] = os.environ[k]
    for k, v in (extra or {}).items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    return e


SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                   "runtime error:")


def sanitizer_report(text, size=1500):
    """The sanitizer report in text (from its first line, at most size
    characters), or None."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    pos = 0
    for line in text.splitlines(True):
        if any(m in line for m in SANITIZER_MARKS):
            return text[pos:pos + size]
        pos += len(line)
    return None


# ---------------------------------------------------------------- cdb

def cdb_hash(key):
    h = 5381
    for c in key:
        h = (((h << 5) + h) ^ c) & 0xFFFFFFFF
    return h


def cdb_write(path, items):
    """Write a cdb from (key, value) bytes pairs, atomically (path.tmp)."""
    out = bytearray(2048)
    tables = [[] for _ in range(256)]
    for k, v in items:
        pos = len(out)
        out += struct.pack("<II", len(k), len(v)) + k + v
        h = cdb_hash(k)
        tables[h & 255].append((h, pos))
    header = []
    for t in tables:
        n = len(t) * 2
        slots = [(0, 0)] * n
        for h, pos in t:
            j = (h >> 8) % n
            while slots[j][1]:
                j = (j + 1) % n
            slots[j] = (h, pos)
        header.append((len(out), n))
        for h, pos in slots:
            out += struct.pack("<II", h, pos)
    out[0:2048] = b"".join(struct.pack("<II", p, n) for p, n in header)
    with open(path + ".tmp", "wb") as f:
        f.write(out)
    os.rename(path + ".tmp", path)


def cdb_get(data, key):
    """The value of key in the cdb data (bytes), or None."""
    h = cdb_hash(key)
    tpos, tlen = struct.unpack_from("<II", data, (h & 255) * 8)
    if not tlen:
        return None
    slot = (h >> 8) % tlen
    for _ in range(tlen):
        hh, rpos = struct.unpack_from("<II", data, tpos + slot * 8)
        if not rpos:
            return None
        if hh == h:
            klen, dlen = struct.unpack_from("<II", data, rpos)
            if data[rpos + 8:rpos + 8 + klen] == key:
                return data[rpos + 8 + klen:rpos + 8 + klen + dlen]
        slot = (slot + 1) % tlen
    return None


def cdb_items(data):
    """Every record of the cdb data, as a dict."""
    end = min([struct.unpack_from("<I", data, i * 8)[0] for i in range(256)] + [len(data)])
    pos, out = 2048, {}
    while pos < end:
        klen, dlen = struct.unpack_from("<II", data, pos)
        k = data[pos + 8:pos + 8 + klen]
        out[k] = data[pos + 8 + klen:pos + 8 + klen + dlen]
        pos += 8 + klen + dlen
    return out


# ---------------------------------------------------------------- passwords

def _b64(x):
    return base64.b64encode(x).decode().rstrip("=")


def _unb64(s):
    return base64.b64decode(s + "=" * (-len(s) % 4))


def phc_scrypt(password, ln=15):
    """$scrypt$ln=..,r=8,p=1$salt$hash of password (a fresh salt)."""
    salt = os.urandom(16)
    h = hashlib.scrypt(password.encode(), salt=salt, n=1 << ln, r=8, p=1, dklen=32, maxmem=64 << 20)
    return "$scrypt$ln=%d,r=8,p=1$%s$%s" % (ln, _b64(salt), _b64(h))


def phc_scrypt_verify(phc, password):
    """Whether a $scrypt$ln=..,r=..,p=..$salt$hash string is the hash of
    password (checked with hashlib)."""
    parts = phc.split("$")
    if len(parts) != 5 or parts[1] != "scrypt":
        return False
    params = dict(kv.split("=") for kv in parts[2].split(","))
    salt, want = _unb64(parts[3]), _unb64(parts[4])
    n, r, p = 1 << int(params["ln"]), int(params["r"]), int(params["p"])
    got = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p,
                         maxmem=256 * 1024 * 1024, dklen=len(want))
    return hmac.compare_digest(got, want)


# ---------------------------------------------------------------- TLS

def make_cert(keyfile, certfile, cn):
    """A self-signed P-256 certificate for cn; the key 0600."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", keyfile, "-out", certfile, "-days", "2", "-subj", "/CN=" + cn],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    os.chmod(keyfile, 0o600)
    os.chmod(certfile, 0o644)


def tls_client_ctx(minv=None, maxv=None, ciphers=None):
    """A client context that does not verify (test certificates are
    self-signed)."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if ciphers:
        ctx.set_ciphers(ciphers)
    if minv:
        ctx.minimum_version = minv
    if maxv:
        ctx.maximum_version = maxv
    return ctx


# ---------------------------------------------------------------- instances

def _on_term(sig, frame):
    print("FAIL %s: killed by SIGTERM (timeout?)" % os.path.basename(sys.argv[0]), flush=True)
    sys.exit(143)


class StartError(Exception):
    pass


class Instance:
    """A running yubin instance in a temporary directory."""

    def __init__(self, bin=None, domain=None, env=None, start_timeout=20):
        self.bin = bin or bin_dir()
        self.ip = "127.0.0.1"
        (self.smtp_port, self.submission_port, self.smtps_port, self.pop3_port, self.pop3s_port,
         self.imap_port, self.imaps_port) = free_ports(7, self.ip)
        self.domain = domain or DOMAIN
        self.extra_env = env or {}
        self.start_timeout = start_timeout
        self.dir = None
        self.svscan = None
        self._stopped = False

    # -- paths -------------------------------------------------------------
    def path(self, *p):
        return os.path.join(self.dir, *p)

    def maildir(self, user="demo"):
        return self.path("home", user, "Maildir")

    @property
    def demo_password(self):
        with open(self.path("demo-password")) as f:
            return f.read().strip()

    # -- life cycle --------------------------------------------------------
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def env(self):
        e = dict(os.environ)
        e.update({
            "BIN": self.bin,
            "YUBIN_IP": self.ip,
            "YUBIN_SMTP_PORT": str(self.smtp_port),
            "YUBIN_SUBMISSION_PORT": str(self.submission_port),
            "YUBIN_SMTPS_PORT": str(self.smtps_port),
            "YUBIN_POP3_PORT": str(self.pop3_port),
            "YUBIN_POP3S_PORT": str(self.pop3s_port),
            "YUBIN_IMAP_PORT": str(self.imap_port),
            "YUBIN_IMAPS_PORT": str(self.imaps_port),
            "YUBIN_DOMAIN": self.domain,
            # never the machine's own nftables ruleset: firewall tests make
            # their own network namespace (tests/banwatch/test_netns.py)
            "YUBIN_FIREWALL": "no",
            "YUBIN_ROOT": self.dir,
        })
        e.update(self.extra_env)
        return e

    def setup(self):
        r = subprocess.run(["sh", os.path.join(TOP, "package", "setup"), self.dir],
                           env=self.env(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        if r.returncode != 0:
            raise StartError("package/setup failed (%d): %s" %
                             (r.returncode, r.stdout.decode(errors="replace")))

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="yubin-e2e-")
        os.chmod(self.dir, 0o755)
        atexit.register(self.stop)
        # `timeout` (tests/run) sends SIGTERM: unwind, so that the instance
        # (in its own session) is stopped rather than left running
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_term)
        info("instance", self.dir, "smtp", "%s:%d" % (self.ip, self.smtp_port))
        self.setup()
        self.svscan = subprocess.Popen(
            ["s6-svscan", self.path("service")], env=self.env(),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        try:
            self.wait_smtp(deadline)
            # the other listeners start on their own: wait until they accept
            for port in (self.submission_port, self.smtps_port, self.pop3_port, self.pop3s_port,
                         self.imap_port, self.imaps_port):
                self.wait_listening(port, deadline)
            self.wait_up("qmgr", deadline)
            if not self.wait_log("qmgr", "qmgr: start", deadline):
                raise StartError("no 'qmgr: start' in log/qmgr/current")
        except Exception:
            self.dump_logs()
            self.stop()
            raise

    def wait_smtp(self, deadline):
        """Until the SMTP port answers with a 220 greeting."""
        last = None
        while time.monotonic() < deadline:
            if self.svscan.poll() is not None:
                raise StartError("s6-svscan exited with %d" % self.svscan.returncode)
            try:
                with socket.create_connection((self.ip, self.smtp_port), timeout=2) as s:
                    s.settimeout(max(0.5, deadline - time.monotonic()))
                    greet = s.recv(512)
                    if greet.startswith(b"220"):
                        s.sendall(b"QUIT\r\n")
                        return
                    last = greet
            except OSError as e:
                last = e
            time.sleep(0.05)
        raise StartError("SMTP port %d not answering: %r" % (self.smtp_port, last))

    def wait_listening(self, port, deadline):
        """Until something accepts TCP connections on port."""
        last = None
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.ip, port), timeout=2):
                    return
            except OSError as e:
                last = e
            time.sleep(0.05)
        raise StartError("port %d not listening: %r" % (port, last))

    def svstat(self, service):
        r = subprocess.run(["s6-svstat", self.path("service", service)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
        return r.stdout.decode(errors="replace").strip()

    def svfields(self, service, fields):
        """s6-svstat -o fields, as a list of strings ([] on error)."""
        r = subprocess.run(["s6-svstat", "-o", fields, self.path("service", service)],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=10)
        return r.stdout.decode(errors="replace").split() if r.returncode == 0 else []

    def service_pid(self, service):
        f = self.svfields(service, "pid")
        try:
            pid = int(f[0])
        except (ValueError, IndexError):
            return 0
        return pid if pid > 0 else 0

    def wait_up(self, service, deadline, min_seconds=0.0):
        """Until s6 says the service is up (and has been for min_seconds)."""
        f = []
        while time.monotonic() < deadline:
            f = self.svfields(service, "up,updownfor")
            if len(f) == 2 and f[0] == "true" and float(f[1]) >= min_seconds:
                return
            time.sleep(0.05)
        raise StartError("service %s not up: %s" % (service, self.svstat(service)))

    def wait_log(self, service, text, deadline, count=1):
        """Until text occurs count times in log/<service>/current."""
        while time.monotonic() < deadline:
            if self.log(service).count(text) >= count:
                return True
            time.sleep(0.05)
        return False

    def svc(self, service, *flags):
        subprocess.run(["s6-svc", *flags, self.path("service", service)],
                       check=True, timeout=10)

    def stop(self):
        if self._stopped or self.dir is None:
            return
        self._stopped = True
        sv = self.svscan
        if sv is not None and sv.poll() is None:
            subprocess.run(["s6-svscanctl", "-t", self.path("service")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
            try:
                sv.wait(timeout=15)
            except subprocess.TimeoutExpired:
                info("s6-svscan did not stop in 15s, killing")
                try:
                    os.killpg(sv.pid, signal.SIGKILL)
                except OSError:
                    pass
                sv.wait(timeout=5)
        left = self.kill_leftovers()
        if left:
            info("killed leftover processes:", " ".join(left))
        self.check_sanitizers()
        if os.environ.get("YUBIN_KEEP"):
            info("kept", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def check_sanitizers(self):
        """FAIL if a sanitizer (build/asan) reported anything in the logs."""
        name = _prog_name()
        found = []
        for s in ("smtpd", "submission", "smtps", "pop3", "pop3s", "imap", "imaps", "qmgr", "banwatch"):
            if not os.path.isdir(self.path("log", s)):
                continue
            for line in self.log(s).splitlines():
                if any(m in line for m in SANITIZER_MARKS):
                    found.append("log/%s: %s" % (s, line.strip()))
        check(name + "-no-sanitizer-reports", not found, "\n".join(found[:20]))

    def banctl(self, *args):
        """yubin-banctl ARGS on this instance: (exit code, output)."""
        r = subprocess.run([self.path("bin", "yubin-banctl")] + list(args),
                           env=dict(minimal_env(), YUBIN_ROOT=self.dir),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=15)
        return r.returncode, r.stdout.decode(errors="replace")

    def jail_counts(self, name="yubin-auth"):
        """The counters of a banwatch jail, from yubin-banctl jails."""
        import re
        rc, out = self.banctl("jails")
        expect(rc == 0, "yubin-banctl jails: %d %s" % (rc, out))
        for l in out.splitlines():
            if l.startswith(name + " "):
                return {k: v for k, v in re.findall(r"(\w+)=(\S+)", l)}
        raise Failure("no jail %s in %r" % (name, out))

    def processes(self):
        """(pid, exe, cwd, cmdline) of every process that runs a program of
        this instance or whose cwd is inside it."""
        out = []
        me = os.getpid()
        for p in os.listdir("/proc"):
            if not p.isdigit() or int(p) == me:
                continue
            try:
                exe = os.readlink("/proc/%s/exe" % p)
            except OSError:
                exe = ""
            try:
                cwd = os.readlink("/proc/%s/cwd" % p)
            except OSError:
                cwd = ""
            try:
                with open("/proc/%s/cmdline" % p, "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                cmd = ""
            inside = lambda x: x == self.dir or x.startswith(self.dir + "/")
            if inside(exe) or inside(cwd) or self.dir in cmd:
                out.append((int(p), exe, cwd, cmd))
        return out

    def kill_leftovers(self):
        left = []
        for _ in range(3):
            procs = self.processes()
            if not procs:
                break
            for pid, exe, cwd, cmd in procs:
                left.append("%d(%s)" % (pid, cmd[:60]))
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.2)
        return left

    # -- mail ----------------------------------------------------------------
    def messages(self, user="demo", sub="new"):
        """Sorted list of file paths in the user's Maildir/<sub>."""
        d = os.path.join(self.maildir(user), sub)
        try:
            names = [n for n in os.listdir(d) if not n.startswith(".")]
        except OSError:
            return []
        return sorted(os.path.join(d, n) for n in names)

    def read(self, path):
        with open(path, "rb") as f:
            return f.read()

    def wait_messages(self, n, user="demo", timeout=20):
        """Wait until at least n messages are in Maildir/new; return them."""
        deadline = time.monotonic() + timeout
        while True:
            files = self.messages(user)
            if len(files) >= n or time.monotonic() >= deadline:
                return files
            time.sleep(0.05)

    def wait_for(self, pred, timeout=20, user="demo"):
        """Wait until pred(list of (path, bytes)) is true; return the list."""
        deadline = time.monotonic() + timeout
        while True:
            msgs = []
            for p in self.messages(user):
                try:
                    msgs.append((p, self.read(p)))
                except OSError:
                    pass
            if pred(msgs) or time.monotonic() >= deadline:
                return msgs
            time.sleep(0.05)

    # -- logs ----------------------------------------------------------------
    def log(self, service):
        try:
            with open(self.path("log", service, "current"), "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def dump_logs(self, lines=40):
        for s in ("smtpd", "qmgr"):
            text = self.log(s).splitlines()[-lines:]
            info("--- log/%s/current (last %d lines)" % (s, len(text)))
            for l in text:
                info("  " + l)

    def queue_messages(self):
        """Message and envelope files still in the queue (qmgr/README):
        everything under queue/ but lock/ and yubin-queued's pool (empty
        new/.p* files, finished new/.r* files)."""
        return [f for f in self.queue_files()
                if not os.path.relpath(f, self.path("queue")).startswith("lock/")
                and not self.is_pool_file(f)]

    def is_pool_file(self, f):
        """An empty file of yubin-queued's pool, or a finished message qmgr
        gave back to it (qmgr/README, "The pool")."""
        if os.path.dirname(f) != self.path("queue", "new"):
            return False
        if os.path.basename(f).startswith(".r"):
            return True
        if not os.path.basename(f).startswith(".p"):
            return False
        try:
            return os.stat(f).st_size == 0
        except OSError:
            return False

    def queue_files(self):
        out = []
        for base, dirs, files in os.walk(self.path("queue")):
            for f in files:
                out.append(os.path.join(base, f))
        return out


def send(inst, sender, rcpts, msg, ehlo="client.example.org", **kw):
    """Send one message with smtplib in its own session, always closed.
    Returns (True, refused-recipients dict) or (False, why)."""
    import smtplib
    try:
        with smtplib.SMTP(inst.ip, inst.smtp_port, timeout=30) as s:
            s.ehlo(ehlo)
            refused = s.sendmail(sender, rcpts, msg, **kw)
        return True, refused
    except (smtplib.SMTPException, OSError) as e:
        return False, repr(e)


class SMTPRaw:
    """A bare SMTP client over a socket, for byte-exact protocol tests."""

    def __init__(self, ip, port, timeout=10):
        self.s = socket.create_connection((ip, port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def reply(self):
        """Read one (possibly multi-line) reply: (code, text) or (None, why)."""
        lines = []
        while True:
            while b"\n" not in self.buf:
                try:
                    chunk = self.s.recv(65536)
                except socket.timeout:
                    return None, "timeout; got %r" % (b"".join(lines) + self.buf)
                except OSError as e:
                    return None, "error %s" % e
                if not chunk:
                    return None, "connection closed; got %r" % (b"".join(lines) + self.buf)
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            lines.append(line + b"\n")
            if len(line) < 4 or line[3:4] != b"-":
                break
        text = b"".join(lines).decode(errors="replace")
        try:
            return int(text[:3]), text
        except ValueError:
            return None, text

    def cmd(self, line):
        self.send(line + b"\r\n")
        return self.reply()

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass
