#!/usr/bin/env python3
"""yubin-inject, as yubin-inject and as `sendmail` (a symlink): recipients
from the arguments and from To:/Cc:/Bcc: (-t), Bcc: removed, -f, -F, -i,
the headers it adds when they are missing, unqualified addresses, CRLF,
NUL bytes and over-long header lines refused, the queue's exit codes
mapped to 0/100/111; and one message through a real instance into the
demo Maildir.

The queue is a fake (QMAILQUEUE): a shell script that saves its fd 0 (the
message) and fd 1 (the envelope: F sender \\0 T rcpt \\0 ... \\0) and exits
with a chosen code.  YUBIN_BIN selects the binaries (default build/bin)."""

import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from yubintest import (Failure, Instance, binary, case_list, expect, minimal_env,  # noqa: E402
                       run_cases, sanitizer_report, skip)
import yubintest  # noqa: E402

INJECT = binary("yubin-inject")
TIMEOUT = 20

FAKEQ = """#!/bin/sh
# fake qmail-queue: save the message (fd 0) and the envelope (fd 1)
d="$FAKEQ_DIR"
cat > "$d/msg" || exit 54
cat <&1 > "$d/env" || exit 54
code=0
[ -f "$d/qexit" ] && code=$(cat "$d/qexit")
exit "$code"
"""


def parse_env(env):
    """A complete envelope: (sender, [rcpts]), else None."""
    if not env.startswith(b"F") or not env.endswith(b"\0\0"):
        return None
    parts = env[:-2].split(b"\0")
    if len(parts) < 2 or not all(p.startswith(b"T") for p in parts[1:]):
        return None
    return parts[0][1:].decode(), [p[1:].decode() for p in parts[1:]]


def headers(msg):
    """[(name, value)] of the header section, unfolded; and the body."""
    head, _, body = msg.partition(b"\n\n")
    out = []
    for ln in head.split(b"\n"):
        if ln[:1] in (b" ", b"\t") and out:
            out[-1] = (out[-1][0], out[-1][1] + b"\n" + ln)
        elif b":" in ln:
            n, v = ln.split(b":", 1)
            out.append((n.decode(), v))
    return out, body


class Fixture:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="yubin-inject-test.")
        self.root = os.path.join(self.dir, "root")
        os.makedirs(os.path.join(self.root, "control"))
        for k, v in {"me": "mx.example.org", "defaulthost": "example.org",
                     "defaultdomain": "example.net"}.items():
            with open(os.path.join(self.root, "control", k), "w") as f:
                f.write(v + "\n")
        self.qdir = os.path.join(self.dir, "q")
        os.mkdir(self.qdir)
        self.fakeq = os.path.join(self.dir, "fakeq")
        with open(self.fakeq, "w") as f:
            f.write(FAKEQ)
        os.chmod(self.fakeq, 0o755)
        # argv[0] = sendmail, as cron and PHP run it
        self.sendmail = os.path.join(self.dir, "sendmail")
        os.symlink(INJECT, self.sendmail)

    def qexit(self, code):
        with open(os.path.join(self.qdir, "qexit"), "w") as f:
            f.write("%d\n" % code)

    def run(self, args, stdin, prog=None, env=None):
        e = minimal_env({"YUBIN_ROOT": self.root, "QMAILQUEUE": self.fakeq, "FAKEQ_DIR": self.qdir,
                         "USER": "alice"})
        e.update(env or {})
        for k in [k for k, v in e.items() if v is None]:
            del e[k]
        for f in ("msg", "env"):
            p = os.path.join(self.qdir, f)
            if os.path.exists(p):
                os.unlink(p)
        r = subprocess.run([prog or self.sendmail] + args, input=stdin, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=e, timeout=TIMEOUT)
        rep = sanitizer_report(r.stderr.decode(errors="replace"))
        expect(not rep, "sanitizer: %s" % rep)
        return r

    def queued(self):
        """(message, sender, rcpts) the fake queue got, or None."""
        try:
            msg = open(os.path.join(self.qdir, "msg"), "rb").read()
            env = open(os.path.join(self.qdir, "env"), "rb").read()
        except FileNotFoundError:
            return None
        e = parse_env(env)
        if e is None:
            return None
        return msg, e[0], e[1]

    def ok(self, args, stdin, **kw):
        r = self.run(args, stdin, **kw)
        expect(r.returncode == 0, "exit %d: %r" % (r.returncode, r.stderr))
        q = self.queued()
        expect(q is not None, "nothing queued")
        return q

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


CASES, case = case_list()


def field(hs, name):
    return [v for n, v in hs if n.lower() == name.lower()]


@case
def sendmail_t_to_cc_bcc(fx):
    msg = (b"To: Ann Example <ann@a.example>,\n  \"Bob, Jr.\" <bob@b.example> (the son)\n"
           b"Cc: team: carol@c.example, dave@d.example;\n"
           b"Bcc: eve@e.example\n"
           b"Subject: folded\n subject\n\nbody\n")
    m, s, rc = fx.ok(["-t"], msg)
    expect(sorted(rc) == ["ann@a.example", "bob@b.example", "carol@c.example", "dave@d.example",
                          "eve@e.example"], "recipients %r" % rc)
    hs, body = headers(m)
    expect(not field(hs, "Bcc"), "Bcc: kept: %r" % m)
    expect(b"eve@e.example" not in m, "the Bcc address is in the message: %r" % m)
    expect(field(hs, "Subject") == [b" folded\n subject"], "folded Subject: changed: %r" % m)
    expect(field(hs, "To")[0].startswith(b" Ann Example <ann@a.example>,\n  \"Bob"), "To: changed: %r" % m)
    expect(body == b"body\n", "body %r" % body)
    expect(s == "alice@example.org", "sender %r" % s)


@case
def sendmail_t_plus_arguments(fx):
    _, _, rc = fx.ok(["-t", "extra@x.example"], b"To: a@a.example\n\nx\n")
    expect(sorted(rc) == ["a@a.example", "extra@x.example"], "recipients %r" % rc)


@case
def sendmail_t_without_recipients(fx):
    r = fx.run(["-t"], b"Subject: nobody\n\nx\n")
    expect(r.returncode == 100, "exit %d" % r.returncode)
    expect(b"no recipients" in r.stderr, "stderr %r" % r.stderr)
    expect(fx.queued() is None, "queued anyway")


@case
def echo_to_argument(fx):
    m, s, rc = fx.ok(["user@domain.example"], b"hi there\n")
    expect(rc == ["user@domain.example"], "recipients %r" % rc)
    hs, body = headers(m)
    expect(len(field(hs, "Date")) == 1 and len(field(hs, "Message-ID")) == 1 and len(field(hs, "From")) == 1,
           "added headers: %r" % m)
    expect(body == b"hi there\n", "body %r (a message without a header keeps its text as body)" % body)
    mid = field(hs, "Message-ID")[0].strip()
    expect(mid.startswith(b"<") and mid.endswith(b"@example.org>") and mid.count(b".") >= 2,
           "Message-ID %r" % mid)
    expect(field(hs, "From")[0].strip() == b"alice@example.org", "From %r" % field(hs, "From"))
    date = field(hs, "Date")[0].strip().decode()
    import email.utils
    expect(email.utils.parsedate_to_datetime(date) is not None, "Date %r" % date)


@case
def no_recipients_usage(fx):
    r = fx.run([], b"Subject: x\n\nx\n")
    expect(r.returncode == 100, "exit %d" % r.returncode)
    expect(b"usage: sendmail" in r.stderr, "no usage line: %r" % r.stderr)
    expect(fx.queued() is None, "queued anyway")


@case
def option_f(fx):
    _, s, _ = fx.ok(["-f", "bounces@lists.example", "u@x.example"], b"\nx\n")
    expect(s == "bounces@lists.example", "sender %r" % s)
    _, s, _ = fx.ok(["-fbounces2@lists.example", "u@x.example"], b"\nx\n")
    expect(s == "bounces2@lists.example", "-fADDR: sender %r" % s)
    _, s, _ = fx.ok(["-f", "<>", "u@x.example"], b"\nx\n")
    expect(s == "", "-f '<>': sender %r" % s)
    _, s, _ = fx.ok(["-f", "", "u@x.example"], b"\nx\n")
    expect(s == "", "-f '': sender %r" % s)


@case
def option_F_and_environment(fx):
    m, s, _ = fx.ok(["-F", "Cron Daemon", "u@x.example"], b"Subject: x\n\nx\n")
    hs, _ = headers(m)
    expect(field(hs, "From") == [b" Cron Daemon <alice@example.org>"], "From %r" % field(hs, "From"))
    m, s, _ = fx.ok(["-F", "Doe, John", "u@x.example"], b"Subject: x\n\nx\n")
    hs, _ = headers(m)
    expect(field(hs, "From") == [b" \"Doe, John\" <alice@example.org>"], "quoted From %r" % field(hs, "From"))
    m, s, _ = fx.ok(["u@x.example"], b"Subject: x\n\nx\n",
                    env={"QMAILUSER": "qu", "QMAILHOST": "qh.example", "QMAILNAME": "Q Name"})
    hs, _ = headers(m)
    expect(field(hs, "From") == [b" Q Name <qu@qh.example>"], "QMAIL* From %r" % field(hs, "From"))
    expect(s == "qu@qh.example", "QMAIL* sender %r" % s)
    m, s, _ = fx.ok(["-F", "Evil\nBcc: x@y.example", "u@x.example"], b"Subject: x\n\nx\n",
                    env={"QMAILUSER": "qu\nX-Injected: 1"})
    hs, _ = headers(m)
    expect(not field(hs, "X-Injected") and not field(hs, "Bcc") and len(field(hs, "From")) == 1,
           "a newline in -F or $QMAILUSER made a header field: %r" % m)
    m, s, _ = fx.ok(["u@x.example"], b"Subject: x\n\nx\n",
                    env={"USER": None, "LOGNAME": "logn", "MAILHOST": "mh.example"})
    hs, _ = headers(m)
    expect(field(hs, "From")[0].strip().endswith(b"logn@mh.example") or
           field(hs, "From")[0].strip().endswith(b"logn@mh.example>"), "LOGNAME From %r" % field(hs, "From"))


@case
def lone_dot(fx):
    m, _, _ = fx.ok(["u@x.example"], b"Subject: x\n\nline\n.\nafter\n")
    _, body = headers(m)
    expect(body == b"line\n", "without -i a lone dot ends the message: %r" % body)
    m, _, _ = fx.ok(["u@x.example"], b"Subject: x\r\n\r\nline\r\n.\r\nafter\r\n")
    _, body = headers(m)
    expect(body == b"line\n", "CRLF dot: %r" % body)
    for opt in (["-i"], ["-oi"]):
        m, _, _ = fx.ok(opt + ["u@x.example"], b"Subject: x\n\nline\n.\nafter\n..\n")
        _, body = headers(m)
        expect(body == b"line\n.\nafter\n..\n", "%s: body %r" % (opt, body))
    m, _, _ = fx.ok(["u@x.example"], b"Subject: x\n\n.. not alone\n.x\n", prog=INJECT)
    _, body = headers(m)
    expect(body == b".. not alone\n.x\n", "dots kept: %r" % body)
    m, _, _ = fx.ok(["u@x.example"], b"Subject: x\n\na\n.\nb\n", prog=INJECT)
    _, body = headers(m)
    expect(body == b"a\n.\nb\n", "yubin-inject (qmail-inject) does not stop at a dot: %r" % body)


@case
def headers_only_when_missing(fx):
    msg = (b"From: Boss <boss@corp.example>\nDate: Mon, 01 Jan 2024 00:00:00 +0000\n"
           b"message-id: <given@corp.example>\nTo: u@x.example\n\nx\n")
    m, s, _ = fx.ok(["u@x.example"], msg)
    hs, _ = headers(m)
    for n in ("From", "Date", "Message-ID"):
        expect(len(field(hs, n)) == 1, "%s: %r" % (n, m))
    expect(m.startswith(msg[:-3]), "header changed: %r" % m)
    expect(s == "boss@corp.example", "sender from From: %r" % s)


@case
def unqualified_addresses(fx):
    _, s, rc = fx.ok(["bob", "carol@mailhost", "dave@host.example", "erin@[192.0.2.1]"], b"\nx\n",
                     env={"USER": "root"})
    expect(rc == ["bob@example.org", "carol@mailhost.example.net", "dave@host.example", "erin@[192.0.2.1]"],
           "recipients %r" % rc)
    expect(s == "root@example.org", "sender %r" % s)
    _, _, rc = fx.ok(["-t"], b"To: frank, grace@gh\n\nx\n")
    expect(rc == ["frank@example.org", "grace@gh.example.net"], "header recipients %r" % rc)
    _, s, _ = fx.ok(["-f", "cron", "u@x.example"], b"\nx\n")
    expect(s == "cron@example.org", "-f cron: %r" % s)


@case
def duplicates_once(fx):
    _, _, rc = fx.ok(["-t", "a@x.example"], b"To: a@x.example\nCc: a@x.example, b@x.example\n\nx\n")
    expect(rc == ["a@x.example", "b@x.example"], "recipients %r" % rc)


@case
def crlf_to_lf(fx):
    m, _, _ = fx.ok(["-t"], b"To: a@x.example\r\nSubject: crlf\r\n\r\nline one\r\nlone\rcr\r\n")
    expect(b"\r\n" not in m, "CRLF left: %r" % m)
    _, body = headers(m)
    expect(body == b"line one\nlone\rcr\n", "body %r" % body)


@case
def last_line_without_newline(fx):
    m, _, _ = fx.ok(["u@x.example"], b"Subject: x\n\nno newline")
    _, body = headers(m)
    expect(body == b"no newline\n", "body %r" % body)
    m, _, _ = fx.ok(["u@x.example"], b"Subject: x\n\nends with CR\r")
    _, body = headers(m)
    expect(body == b"ends with CR\n", "body %r" % body)
    m, _, _ = fx.ok(["u@x.example"], b"Subject: only a header")
    hs, body = headers(m)
    expect(field(hs, "Subject") == [b" only a header"] and body == b"", "message %r" % m)


@case
def nul_refused(fx):
    for name, msg in (("header", b"Subject: a\0b\n\nx\n"), ("body", b"Subject: x\n\n" + b"y" * 100000 + b"\0\n")):
        r = fx.run(["u@x.example"], msg)
        expect(r.returncode == 100, "%s: exit %d" % (name, r.returncode))
        expect(b"NUL" in r.stderr, "%s: stderr %r" % (name, r.stderr))
        expect(fx.queued() is None, "%s: queued anyway" % name)


@case
def long_header_line_refused(fx):
    r = fx.run(["u@x.example"], b"Subject: " + b"x" * 1000 + b"\n\nbody\n")
    expect(r.returncode == 100, "exit %d" % r.returncode)
    expect(b"998" in r.stderr, "stderr %r" % r.stderr)
    expect(fx.queued() is None, "queued anyway")
    # a long body line is the body's business
    m, _, _ = fx.ok(["u@x.example"], b"Subject: x\n\n" + b"y" * 5000 + b"\n")
    expect(m.endswith(b"y" * 5000 + b"\n"), "long body line changed")


@case
def queue_exit_codes(fx):
    for code, want, text in ((0, 0, b""), (31, 100, b"5.3.0"), (11, 100, b""), (71, 111, b"4.3.0"),
                             (53, 111, b"4.3.0"), (81, 111, b"")):
        fx.qexit(code)
        r = fx.run(["u@x.example"], b"Subject: x\n\nx\n")
        expect(r.returncode == want, "queue exit %d: exit %d, want %d (%r)" % (code, r.returncode, want, r.stderr))
        expect(text in r.stderr, "queue exit %d: stderr %r" % (code, r.stderr))
        if code:
            expect(r.stderr.strip(), "queue exit %d: nothing on stderr" % code)
    r = fx.run(["u@x.example"], b"x\n", env={"QMAILQUEUE": "/nonexistent/queue"})
    expect(r.returncode == 111, "no queue program: exit %d" % r.returncode)


@case
def queue_refuses_before_reading(fx):
    # a queue program that refuses without reading the message (as one
    # past control/databytes does): the injector gets its exit code and
    # says why, rather than dying of SIGPIPE with nothing on stderr
    early = os.path.join(fx.dir, "early-refusal")
    with open(early, "w") as f:
        f.write("#!/bin/sh\nexit 31\n")
    os.chmod(early, 0o755)
    r = fx.run(["u@x.example"], b"Subject: big\n\n" + (b"x" * 999 + b"\n") * 1024, env={"QMAILQUEUE": early})
    expect(r.returncode == 100, "exit %d (%r)" % (r.returncode, r.stderr))
    expect(b"5.3.0" in r.stderr, "stderr %r" % r.stderr)


@case
def command_lines_of_cron_mutt_git(fx):
    # Debian's cron, mutt/mailx, git send-email, PHP's mail()
    for args in (["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "u@x.example"],
                 ["-oem", "-oi", "--", "u@x.example"],
                 ["-i", "-f", "dev@x.example", "u@x.example"],
                 ["-t", "-i"]):
        m, _, rc = fx.ok(args, b"To: u@x.example\nSubject: x\n\na\n.\nb\n")
        expect(rc == ["u@x.example"], "%r: recipients %r" % (args, rc))
        expect(m.endswith(b"\n\na\n.\nb\n"), "%r: body %r" % (args, m))
    for args in (["-bs"], ["-bp"], ["-q"], ["-Z", "u@x.example"]):
        r = fx.run(args, b"x\n")
        expect(r.returncode == 100 and fx.queued() is None, "%r: exit %d" % (args, r.returncode))


@case
def verbose(fx):
    r = fx.run(["-v", "-odi", "-oem", "-bm", "-odb", "-U", "u@x.example"], b"x\n")
    expect(r.returncode == 0, "exit %d %r" % (r.returncode, r.stderr))
    expect(b"u@x.example" in r.stderr, "-v: stderr %r" % r.stderr)


@case
def print_only(fx):
    r = fx.run(["-n", "u@x.example"], b"Subject: x\n\nbody\n", prog=INJECT)
    expect(r.returncode == 0 and fx.queued() is None, "exit %d, queued %r" % (r.returncode, fx.queued()))
    expect(b"Subject: x\n" in r.stdout and r.stdout.endswith(b"\n\nbody\n"), "stdout %r" % r.stdout)


def end_to_end():
    """sendmail (a symlink to the instance's bin/yubin-inject) into the
    demo Maildir of a real instance."""
    with Instance() as inst:
        d = tempfile.mkdtemp(prefix="yubin-inject-e2e.")
        try:
            sm = os.path.join(inst.path("bin"), "sendmail")
            if not os.path.exists(sm):
                sm = os.path.join(d, "sendmail")
                os.symlink(inst.path("bin", "yubin-inject"), sm)
            env = minimal_env({"USER": "alice"})
            r = subprocess.run(["sh", "-c", "printf 'Subject: x\\n\\nhi\\n' | \"$SM\" demo@%s" % inst.domain],
                               env=dict(env, SM=sm), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=TIMEOUT)
            if r.returncode != 0:
                raise Failure("sendmail exit %d: %r" % (r.returncode, r.stderr))
            files = inst.wait_messages(1)
            if len(files) != 1:
                raise Failure("%d messages in the demo Maildir" % len(files))
            m = inst.read(files[0])
            if b"\nSubject: x\n" not in m or not m.endswith(b"\n\nhi\n") or b"Message-ID:" not in m:
                raise Failure("message %r" % m)
            r = subprocess.run(["sh", "-c", "printf 'To: demo@%s\\nBcc: demo@%s\\nSubject: t\\n\\nvia -t\\n' | \"$SM\" -t"
                                % (inst.domain, inst.domain)],
                               env=dict(env, SM=sm), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=TIMEOUT)
            if r.returncode != 0:
                raise Failure("sendmail -t exit %d: %r" % (r.returncode, r.stderr))
            files = inst.wait_messages(2)
            if len(files) != 2:
                raise Failure("-t: %d messages in the demo Maildir" % len(files))
            if os.geteuid() == 0 and shutil.which("setpriv"):
                # a local user (yubin-queue is set-uid to the queue user), and
                # nothing on stderr when all is well (cron mails what it gets)
                r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--",
                                    "sh", "-c", "printf 'Subject: u\\n\\nfrom nobody\\n' | \"$SM\" demo"],
                                   env=dict(minimal_env({}), SM=sm), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, timeout=TIMEOUT)
                if r.returncode != 0 or r.stderr or r.stdout:
                    raise Failure("as nobody: exit %d, stdout %r, stderr %r" % (r.returncode, r.stdout, r.stderr))
                files = inst.wait_messages(3)
                if len(files) != 3:
                    raise Failure("as nobody: %d messages in the demo Maildir" % len(files))
                m = max((inst.read(f) for f in files), key=lambda b: b"from nobody" in b)
                if b"invoked by uid 65534" not in m or b"From: nobody <nobody@" not in m:
                    raise Failure("as nobody: message %r" % m[:500])
        finally:
            shutil.rmtree(d, ignore_errors=True)


def sanitizer_build():
    return yubintest.sanitizer_build(os.path.dirname(INJECT))


# Not with the sanitizer build: LeakSanitizer cannot run in the set-uid
# yubin-queue of a root instance (tests/run runs tests/e2e with build/bin
# only, for the same reason).
if not sanitizer_build():
    CASES.append(("end_to_end_instance", lambda _: end_to_end()))

if __name__ == "__main__":
    if sanitizer_build():
        skip("end_to_end_instance", "sanitizer build (LeakSanitizer and the set-uid yubin-queue)")
    sys.exit(run_cases(CASES, Fixture))
