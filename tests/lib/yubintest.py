"""Harness for yubin's end-to-end tests.

An Instance is a real yubin instance (package/setup) in a temporary
directory, on free loopback ports, with its services under s6-svscan:

    from yubintest import Instance, check, run

    def main():
        with Instance() as inst:
            s = smtplib.SMTP(inst.ip, inst.smtp_port)
            ...
            files = inst.wait_messages(1)
            check("delivered", len(files) == 1, "got %d" % len(files))

    run(main)

YUBIN_BIN (default build/bin) chooses the programs.  YUBIN_KEEP=1 keeps the
instance directory after the test (its path is printed).  Everything is
bounded: start-up, waits and shutdown have deadlines, and leftover processes
are killed.
"""

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DOMAIN = "yubin.test"

_results = {"pass": 0, "fail": 0}


def check(name, cond, why=""):
    """Print 'PASS name' or 'FAIL name: why'; return cond as a bool."""
    if cond:
        _results["pass"] += 1
        print("PASS %s" % name, flush=True)
    else:
        _results["fail"] += 1
        lines = str(why or "failed").splitlines() or ["failed"]
        print("FAIL %s: %s" % (name, lines[0]), flush=True)
        for l in lines[1:]:
            print("#   " + l, flush=True)
    return bool(cond)


def skip(name, why):
    print("SKIP %s: %s" % (name, why), flush=True)


def done():
    """Exit status for the test program: 1 if anything failed."""
    return 1 if _results["fail"] else 0


def run(main):
    """Run main(), turn a start failure or a crash into a FAIL line, and
    exit with done()'s status."""
    name = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    try:
        main()
    except StartError as e:
        check(name + "-instance-start", False, str(e))
    except Exception as e:  # a crashed test is a failed test, with its trace
        import traceback
        traceback.print_exc(file=sys.stdout)
        check(name + "-crashed", False, "%s: %s" % (type(e).__name__, e))
    sys.exit(done())


def info(*a):
    print("#", *a, flush=True)


def free_port(ip="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((ip, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def bin_dir():
    b = os.environ.get("YUBIN_BIN", "build/bin")
    return b if os.path.isabs(b) else os.path.join(TOP, b)


def is_root():
    return os.geteuid() == 0


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
        self.smtp_port = free_port(self.ip)
        self.submission_port = free_port(self.ip)
        self.smtps_port = free_port(self.ip)
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
            for port in (self.submission_port, self.smtps_port):
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

    SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                       "runtime error:")

    def check_sanitizers(self):
        """FAIL if a sanitizer (build/asan) reported anything in the logs."""
        name = os.path.splitext(os.path.basename(sys.argv[0]))[0]
        found = []
        for s in ("smtpd", "submission", "smtps", "qmgr", "banwatch"):
            for line in self.log(s).splitlines():
                if any(m in line for m in self.SANITIZER_MARKS):
                    found.append("log/%s: %s" % (s, line.strip()))
        check(name + "-no-sanitizer-reports", not found, "\n".join(found[:20]))

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
        everything under queue/ but lock/."""
        return [f for f in self.queue_files()
                if not os.path.relpath(f, self.path("queue")).startswith("lock/")]

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
