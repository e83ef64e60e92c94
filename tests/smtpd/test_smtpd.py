#!/usr/bin/env python3
"""Tests for yubin-smtpd.

Each session runs yubin-smtpd directly with fds 0/1 on one end of a
socketpair (or on a socket accepted by a tiny listener, for smtplib and
swaks), UCSPI variables set, YUBIN_ROOT pointing to a temporary instance
(control files, users/users.cdb written here) and QMAILQUEUE pointing to a
fake queue that saves its fd 0 and fd 1 and exits with a chosen code.

Prints "PASS name" or "FAIL name: why" per case.  YUBIN_BIN selects the
binaries (default build/bin).
"""

import email.utils
import os
import re
import select
import shutil
import smtplib
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from smtpdtest import IO_TIMEOUT, SMTPD, SMUGGLE_ENDS, Client, Instance, greet_ehlo, transaction  # noqa: E402
from yubintest import Failure, case_list, check, expect, run, run_cases  # noqa: E402

ENHANCED = re.compile(rb"^[245]\d\d[ -][245]\.\d{1,3}\.\d{1,3}( |$)")


# ---------- the cases ----------

CASES, case = case_list()


@case
def greeting_and_ehlo(inst):
    c = inst.session()
    lines = c.expect(220)
    expect(lines == [b"220 example.org ESMTP yubin"], "greeting %r" % lines)
    lines = c.cmd("EHLO client.example", 250)
    expect(lines[0] == b"250-example.org", "first EHLO line %r" % lines[0])
    kw = [ln[4:] for ln in lines[1:]]
    for k in (b"PIPELINING", b"8BITMIME", b"ENHANCEDSTATUSCODES"):
        expect(k in kw, "EHLO lacks %s: %r" % (k, kw))
    expect(any(k.startswith(b"SIZE") for k in kw), "EHLO lacks SIZE: %r" % kw)
    lines = c.cmd("HELO client.example", 250)
    expect(lines == [b"250 example.org"], "HELO reply %r" % lines)
    lines = c.cmd("QUIT", 221)
    expect(lines[0].startswith(b"221 2.0.0 "), "QUIT reply %r" % lines)
    c.closed()
    inst.finish()
    expect(b"smtpd: connect ip=127.0.0.1" in inst.logtext(), "no connect log line")
    expect(b"smtpd: quit ip=127.0.0.1" in inst.logtext(), "no quit log line")


@case
def greeting_override_and_size(inst):
    inst2 = Instance({"smtpgreeting": "mx.example.org hello there\n", "databytes": "12345\n"})
    try:
        c = inst2.session()
        lines = c.expect(220)
        expect(lines == [b"220 mx.example.org hello there"], "greeting %r" % lines)
        kw = [ln[4:] for ln in c.cmd("EHLO x", 250)[1:]]
        expect(b"SIZE 12345" in kw, "SIZE from control/databytes: %r" % kw)
        c.cmd("QUIT", 221)
        c.close()
        c = inst2.session({"DATABYTES": "777"})
        c.expect(220)
        kw = [ln[4:] for ln in c.cmd("EHLO x", 250)[1:]]
        expect(b"SIZE 777" in kw, "SIZE from DATABYTES: %r" % kw)
        c.cmd("QUIT", 221)
        c.close()
        inst2.finish()
    finally:
        inst2.cleanup()


@case
def smtplib_transaction(inst):
    port, h = inst.listen({"TCPREMOTEHOST": "localhost"})
    try:
        s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=IO_TIMEOUT)
        s.ehlo("client.example")
        expect(s.has_extn("pipelining") and s.has_extn("size"), "smtplib sees no PIPELINING/SIZE")
        code, _ = s.mail("sender@example.com")
        expect(code == 250, "MAIL %d" % code)
        code, _ = s.rcpt("alice@example.org")
        expect(code == 250, "RCPT alice %d" % code)
        code, _ = s.rcpt("Bob-ext@EXAMPLE.org")
        expect(code == 250, "RCPT bob-ext %d" % code)
        body = "Subject: hi\r\n\r\nline1\r\n.leading dot\r\n..two dots\r\n.\r\nlast"
        code, msg = s.data(body)
        expect(code == 250, "DATA %d %r" % (code, msg))
        m = re.match(rb"2\.0\.0 ok (\S+) queued$", msg)
        expect(m, "250 text %r" % msg)
        qid = m.group(1)
        s.quit()
    finally:
        inst.unlisten(h)
    inst.finish()
    got = inst.committed()
    expect(len(got) == 1, "expected 1 message queued, got %d" % len(got))
    msg, sender, rcpts = got[0]
    expect(sender == b"sender@example.com", "sender %r" % sender)
    expect(rcpts == [b"alice@example.org", b"Bob-ext@example.org"], "recipients %r" % rcpts)
    hdr = re.match(rb"Received: from client\.example \(localhost \[127\.0\.0\.1\]\)\n"
                   rb"\tby example\.org \(yubin\) with ESMTP id (\S+);\n"
                   rb"\t(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
                   rb" \d{4} \d\d:\d\d:\d\d \+0000\n", msg)
    expect(hdr, "Received header: %r" % msg[:300])
    expect(hdr.group(1) == qid, "Received id %r != reply id %r" % (hdr.group(1), qid))
    datestr = msg[:hdr.end()].split(b";\n\t")[1].strip().decode()
    dt = email.utils.parsedate_to_datetime(datestr)
    expect(email.utils.format_datetime(dt) == datestr, "date %r is not %r" % (datestr, email.utils.format_datetime(dt)))
    expect(abs(dt.timestamp() - time.time()) < 600, "date %r is not now" % datestr)
    rest = msg[hdr.end():]
    expect(rest == b"Subject: hi\n\nline1\n.leading dot\n..two dots\n.\nlast\n", "body %r" % rest)
    env = open(os.path.join(inst.qdir, "env.%d" % inst.invocations()[0]), "rb").read()
    expect(env == b"Fsender@example.com\0Talice@example.org\0TBob-ext@example.org\0\0", "envelope bytes %r" % env)
    log = inst.logtext()
    for needle in (rb"smtpd: queued ip=127.0.0.1 helo=\S+ from=sender@example.com to=alice@example.org rcpts=2 bytes=\d+ qp=\d+ id=" + re.escape(qid) + rb"\n",):
        expect(re.search(needle, log), "log lacks %r: %r" % (needle, log))


@case
def swaks_transaction(inst):
    if not shutil.which("swaks"):
        raise Failure("swaks not installed")
    port, h = inst.listen()
    try:
        for extra in ([], ["--pipeline"]):
            r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(port), "--helo", "swaks.example",
                                "--from", "s@example.net", "--to", "bob@example.org", "--timeout", "20"] + extra,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
            expect(r.returncode == 0, "swaks %r exit %d: %s" % (extra, r.returncode, r.stdout.decode(errors="replace")[-1500:]))
    finally:
        inst.unlisten(h)
    inst.finish()
    got = inst.committed()
    expect(len(got) == 2, "expected 2 messages, got %d" % len(got))
    for msg, sender, rcpts in got:
        expect(sender == b"s@example.net" and rcpts == [b"bob@example.org"], "envelope %r %r" % (sender, rcpts))
        expect(b"\r" not in msg, "CR left in queued message")
        expect(msg.startswith(b"Received: from swaks.example (127.0.0.1 [127.0.0.1])\n"), "Received %r" % msg[:100])


@case
def pipelining_one_write(inst):
    c = inst.session()
    c.expect(220)
    c.send(b"EHLO pipe.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\n"
           b"RCPT TO:<nobody@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")
    lines = c.expect(250, "EHLO")
    expect(lines[0] == b"250-example.org", "EHLO %r" % lines)
    c.expect(250, "MAIL")
    c.expect(250, "RCPT alice")
    c.expect(550, "RCPT nobody")
    c.expect(250, "RCPT bob")
    c.expect(354, "DATA")
    # then a whole sequence of messages in one write (a client that does not
    # wait for 354 must still be served in order)
    c.send(b"Subject: one\r\n\r\nfirst\r\n.\r\n"
           b"MAIL FROM:<b@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nSubject: two\r\n\r\nsecond\r\n.\r\n"
           b"RSET\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\nSubject: three\r\n\r\nthird\r\n.\r\n"
           b"NOOP\r\nQUIT\r\n")
    c.expect(250, "end of first")
    c.expect(250, "MAIL 2")
    c.expect(250, "RCPT 2")
    c.expect(354, "DATA 2")
    c.expect(250, "end of second")
    c.expect(250, "RSET")
    c.expect(250, "MAIL 3")
    c.expect(250, "RCPT 3")
    c.expect(354, "DATA 3")
    c.expect(250, "end of third")
    c.expect(250, "NOOP")
    c.expect(221, "QUIT")
    c.closed()
    inst.finish()
    got = inst.committed()
    expect(len(got) == 3, "expected 3 messages, got %d" % len(got))
    bodies = sorted(m.split(b"\n", 3)[3] for m, _, _ in got)
    expect(bodies == [b"Subject: one\n\nfirst\n", b"Subject: three\n\nthird\n", b"Subject: two\n\nsecond\n"],
          "bodies %r" % bodies)
    envs = sorted((s, tuple(r)) for _, s, r in got)
    expect(envs == [(b"", (b"alice@example.org",)), (b"a@example.net", (b"alice@example.org", b"bob@example.org")),
                   (b"b@example.net", (b"bob@example.org",))], "envelopes %r" % envs)


@case
def pipelining_replies_batched(inst):
    # RFC 2920: the replies to a pipelined group go out in one write.
    # Count yubin-smtpd's writes to fd 1 with strace.
    if not shutil.which("strace"):
        raise Failure("strace not installed")
    trace = os.path.join(inst.root, "trace")
    a, b = socket.socketpair()
    p = subprocess.Popen(["strace", "-qq", "-e", "trace=write,writev,sendto,sendmsg", "-o", trace, SMTPD],
                         stdin=b.fileno(), stdout=b.fileno(), stderr=subprocess.DEVNULL, env=inst.env(),
                         close_fds=True)
    inst.procs.append(p)
    b.close()
    c = Client(a, p)
    c.expect(220)
    c.cmd("EHLO x", 250)
    c.send(b"".join(b"NOOP %d\r\n" % i for i in range(200)) + b"QUIT\r\n")
    for i in range(200):
        c.expect(250, "NOOP %d" % i)
    c.expect(221, "QUIT")
    c.closed()
    inst.finish()
    writes = [ln for ln in open(trace).read().splitlines() if re.match(r"(write|writev|sendto|sendmsg)\(1,", ln)]
    expect(len(writes) <= 6, "%d writes for 202 replies (not batched)" % len(writes))


@case
def rcpt_local_users(inst):
    c = inst.session()
    greet_ehlo(c)
    c.cmd("MAIL FROM:<x@example.net>", 250)
    lines = c.cmd("RCPT TO:<nobody@example.org>", 550)
    expect(lines == [b"550 5.1.1 <nobody@example.org>: no such user here"], "550 text %r" % lines)
    c.cmd("RCPT TO:<alice@example.org>", 250)
    c.cmd("RCPT TO:<ALICE@Example.ORG>", 250)
    c.cmd("RCPT TO:<alice-lists-foo@example.org>", 250)
    c.cmd("RCPT TO:<PostMaster@example.org>", 250)
    c.cmd("RCPT TO:<postmaster>", 250)
    c.cmd("RCPT TO:<Postmaster>", 250)
    c.cmd("RCPT TO:<alice@example.org> NOTIFY=NEVER", 555)
    c.cmd("DATA", 354)
    c.send(b"hi\r\n.\r\n")
    c.expect(250)
    c.cmd("QUIT", 221)
    c.closed()
    inst.finish()
    got = inst.committed()
    expect(len(got) == 1, "queued %d" % len(got))
    expect(got[0][2] == [b"alice@example.org", b"ALICE@example.org", b"alice-lists-foo@example.org",
                        b"PostMaster@example.org", b"postmaster@example.org", b"postmaster@example.org"],
          "recipients %r" % got[0][2])
    expect(re.search(rb"smtpd: reject ip=127.0.0.1 cmd=RCPT to=nobody@example.org code=550 reason=", inst.logtext()),
          "no reject log line")


@case
def relay_denied_and_relayclient(inst):
    c = inst.session()
    greet_ehlo(c)
    c.cmd("MAIL FROM:<x@example.net>", 250)
    lines = c.cmd("RCPT TO:<someone@other.example>", 553)
    expect(lines[0].startswith(b"553 5.7.1 "), "relay text %r" % lines)
    c.cmd("RCPT TO:<anyone@relayed.example.net>", 250)   # rcpthosts, not local: no user check
    c.cmd("QUIT", 221)
    c.closed()
    c = inst.session({"RELAYCLIENT": ""})
    greet_ehlo(c)
    c.cmd("MAIL FROM:<alice@example.org>", 250)
    c.cmd("RCPT TO:<someone@other.example>", 250)
    c.cmd("RCPT TO:<nobody@example.org>", 550)       # local users are checked even so
    c.cmd("DATA", 354)
    c.send(b"relayed\r\n.\r\n")
    c.expect(250)
    c.cmd("QUIT", 221)
    c.closed()
    c = inst.session({"RELAYCLIENT": "-suffix"})
    greet_ehlo(c)
    c.cmd("MAIL FROM:<alice@example.org>", 250)
    c.cmd("RCPT TO:<someone@other.example>", 250)
    c.cmd("DATA", 354)
    c.send(b"relayed\r\n.\r\n")
    c.expect(250)
    c.cmd("QUIT", 221)
    c.closed()
    inst.finish()
    got = inst.committed()
    expect(len(got) == 2, "queued %d" % len(got))
    rc = sorted(r[0] for _, _, r in got)
    expect(rc == [b"someone@other.example", b"someone@other.example-suffix"], "recipients %r" % rc)


@case
def relay_tricks(inst):
    tricks = [
        "user%other.example@example.org",
        "user%other.example@relayed.example.net",
        "user!other.example@example.org",
        "other.example!user@relayed.example.net",
        '"user@other.example"@example.org',
        '"user@other.example"@relayed.example.net',
        '"user%other.example"@relayed.example.net',
        "@example.org:user@other.example",
        "@example.org,@relayed.example.net:user@other.example",
        "user@other.example@example.org",
        "alice@example.org@other.example",
        "user@other.example.",
        "user@[192.0.2.1]",
    ]
    for t in tricks:
        c = inst.session()
        greet_ehlo(c)
        c.cmd("MAIL FROM:<x@example.net>", 250)
        c.send("RCPT TO:<%s>\r\n" % t)
        code, lines = c.reply()
        expect(code in (501, 550, 553), "%s accepted: %r" % (t, lines))
        c.send("DATA\r\n")
        code, lines = c.reply()
        expect(code in (503, 554), "%s: DATA with no recipient: %r" % (t, lines))
        c.send(b"evil\r\n.\r\nQUIT\r\n")
        c.closed()
    inst.finish()
    expect(not inst.committed() and not inst.invocations(), "something was queued")


@case
def size_limit(inst):
    inst2 = Instance({"databytes": "1000\n"})
    try:
        c = inst2.session()
        greet_ehlo(c)
        lines = c.cmd("MAIL FROM:<a@example.net> SIZE=2000", 552)
        expect(lines[0].startswith(b"552 5.3.4"), "SIZE reply %r" % lines)
        c.cmd("MAIL FROM:<a@example.net> SIZE=500 BODY=8BITMIME", 250)
        c.cmd("RCPT TO:<alice@example.org>", 250)
        c.cmd("DATA", 354)
        c.send(b"".join(b"%s\r\n" % (b"x" * 70) for _ in range(30)) + b".\r\n")
        lines = c.expect(552, "oversized message")
        expect(lines[0].startswith(b"552 5.3.4"), "oversize reply %r" % lines)
        c.cmd("MAIL FROM:<a@example.net> SIZE=900", 250)
        c.cmd("RCPT TO:<alice@example.org>", 250)
        c.cmd("DATA", 354)
        c.send(b"".join(b"%s\r\n" % (b"y" * 70) for _ in range(10)) + b".\r\n")
        c.expect(250, "small message")
        c.cmd("MAIL FROM:<a@example.net> SIZE=abc", 501)
        c.cmd("MAIL FROM:<a@example.net> FOO=bar", 555)
        c.cmd("QUIT", 221)
        c.closed()
        # DATABYTES=0 in the environment: no limit
        c = inst2.session({"DATABYTES": "0"})
        greet_ehlo(c)
        c.cmd("MAIL FROM:<a@example.net> SIZE=5000", 250)
        c.cmd("RCPT TO:<bob@example.org>", 250)
        c.cmd("DATA", 354)
        c.send(b"".join(b"%s\r\n" % (b"z" * 70) for _ in range(60)) + b".\r\n")
        c.expect(250, "unlimited")
        c.cmd("QUIT", 221)
        c.closed()
        inst2.finish()
        got = inst2.committed()
        expect(len(got) == 2, "queued %d" % len(got))
        expect(sorted(len(m.split(b"\n", 3)[3]) for m, _, _ in got) == [710, 4260], "sizes")
    finally:
        inst2.cleanup()


@case
def smuggling(inst):
    for i, end in enumerate(SMUGGLE_ENDS):
        before = len(inst.committed())
        c = inst.session()
        greet_ehlo(c)
        c.cmd("MAIL FROM:<good@example.net>", 250)
        c.cmd("RCPT TO:<alice@example.org>", 250)
        c.cmd("DATA", 354)
        c.send(b"Subject: legit\r\n\r\nhello" + end +
               b"MAIL FROM:<evil@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"
               b"Subject: smuggled\r\n\r\nevil\r\n.\r\nQUIT\r\n")
        data = c.closed()
        replies = [ln for ln in data.split(b"\r\n") if ln]
        # the only sanctioned end is the last CRLF.CRLF: one reply to the
        # data, then 221 to the QUIT
        expect(len(replies) == 2 and replies[1].startswith(b"221 "), "variant %r: replies %r" % (end, replies))
        expect(replies[0].startswith(b"550 5.6.11") or (b"\x00" in end and replies[0].startswith(b"554 5.6.0")) or
              (end == b"\r\n. \r\n" and replies[0].startswith(b"250 ")), "variant %r: reply %r" % (end, replies[0]))
        after = inst.committed()
        expect(len(after) - before <= 1, "variant %r: more than one message queued" % end)
        for m, s, r in after:
            expect(s != b"evil@example.net" and b"bob@example.org" not in r, "variant %r: smuggled message queued" % end)
    inst.finish()
    got = inst.committed()
    expect(len(got) == 1 and got[0][1] == b"good@example.net" and b"\n \nMAIL FROM:<evil" in got[0][0],
          "only the message whose dot line was '. ' may be queued, whole: %r" % [m for m, _, _ in got])


@case
def bare_lf_inside_is_refused(inst):
    c = inst.session()
    greet_ehlo(c)
    transaction(c, "a@example.net", ["alice@example.org"], b"line one\nline two\r\n.\r\n", 550)
    transaction(c, "a@example.net", ["alice@example.org"], b"cr\rinside\r\n.\r\n", 550)
    transaction(c, "a@example.net", ["alice@example.org"], b"fine\r\n.\r\n", 250)
    c.cmd("QUIT", 221)
    c.closed()
    inst.finish()
    expect(len(inst.committed()) == 1, "queued %d" % len(inst.committed()))


@case
def empty_and_dot_lines(inst):
    c = inst.session()
    greet_ehlo(c)
    transaction(c, "a@example.net", ["alice@example.org"], b".\r\n", 250)
    transaction(c, "a@example.net", ["alice@example.org"], b"..\r\n...x\r\n\r\n.\r\n", 250)
    c.cmd("QUIT", 221)
    c.closed()
    inst.finish()
    got = sorted(m.split(b"\n", 3)[3] for m, _, _ in inst.committed())
    expect(got == [b"", b".\n..x\n\n"], "bodies %r" % got)


@case
def long_lines(inst):
    c = inst.session()
    greet_ehlo(c)
    c.cmd("NOOP " + "a" * 993, 250, "998-octet command")
    lines = c.cmd("NOOP " + "a" * 994, 500, "999-octet command")
    expect(lines[0].startswith(b"500 5.5.2"), "too long reply %r" % lines)
    lines = c.cmd("NOOP " + "b" * 5000, 500, "5000-octet command")
    c.cmd("NOOP", 250, "resync after a long line")
    transaction(c, "a@example.net", ["alice@example.org"], b"y" * 998 + b"\r\n.\r\n", 250)
    lines = transaction(c, "a@example.net", ["alice@example.org"], b"ok\r\n" + b"z" * 999 + b"\r\nmore\r\n.\r\n", 554)
    expect(lines[0].startswith(b"554 5.6.0"), "long data line reply %r" % lines)
    lines = transaction(c, "a@example.net", ["alice@example.org"], b"." + b"z" * 998 + b"\r\n.\r\n", 554)
    c.cmd("QUIT", 221)
    c.closed()
    inst.finish()
    got = inst.committed()
    expect(len(got) == 1 and got[0][0].endswith(b"\n" + b"y" * 998 + b"\n"), "queued %d" % len(got))


@case
def nul_bytes(inst):
    c = inst.session()
    greet_ehlo(c)
    lines = c.cmd(b"NO\x00OP", 500)
    expect(lines[0].startswith(b"500 5.5."), "NUL command reply %r" % lines)
    c.cmd(b"MAIL FROM:<a@example.net>\x00", 500)
    lines = transaction(c, "a@example.net", ["alice@example.org"], b"a\x00b\r\n.\r\n", 554)
    expect(lines[0].startswith(b"554 5.6.0"), "NUL data reply %r" % lines)
    c.cmd("QUIT", 221)
    c.closed()
    inst.finish()
    expect(not inst.committed(), "message with NUL queued")


@case
def queue_exit_codes(inst):
    want = {
        31: b"554 5.3.0 mail server permanently rejected message",
        53: b"451 4.3.0 qq write error or disk full",
        91: b"451 4.3.0 qq envelope format error",
        11: b"554 5.1.3 envelope address too long for qq",
        25: b"554 5.3.0 qq permanent problem",
        99: b"451 4.3.0 qq temporary problem",
    }
    c = inst.session()
    greet_ehlo(c)
    for code, text in want.items():
        inst.qexit(code)
        lines = transaction(c, "a@example.net", ["alice@example.org"], b"x\r\n.\r\n", int(text[:3]))
        expect(lines == [text], "exit %d: %r" % (code, lines))
    inst.qexit(0)
    transaction(c, "a@example.net", ["alice@example.org"], b"x\r\n.\r\n", 250)
    c.cmd("QUIT", 221)
    c.closed()
    inst.finish()
    expect(b"code=451 reason=qq\\x20write\\x20error" in inst.logtext(), "no error log line")


@case
def queue_missing(inst):
    c = inst.session({"QMAILQUEUE": "/nonexistent/queue"})
    greet_ehlo(c)
    c.cmd("MAIL FROM:<a@example.net>", 250)
    c.cmd("RCPT TO:<alice@example.org>", 250)
    lines = c.cmd("DATA", 451)
    expect(lines[0].startswith(b"451 4.3.0"), "reply %r" % lines)
    c.cmd("QUIT", 221)
    c.closed()
    inst.finish()


@case
def timeout(inst):
    inst2 = Instance({"timeoutsmtpd": "1\n"})
    try:
        c = inst2.session()
        c.expect(220)
        t0 = time.time()
        data = c.closed(10)
        expect(data == b"451 4.4.2 timeout\r\n", "timeout reply %r" % data)
        expect(time.time() - t0 < 8, "timeout took too long")
        c = inst2.session()
        greet_ehlo(c)
        c.cmd("MAIL FROM:<a@example.net>", 250)
        c.cmd("RCPT TO:<alice@example.org>", 250)
        c.cmd("DATA", 354)
        c.send(b"partial message\r\n")
        data = c.closed(10)
        expect(data == b"451 4.4.2 timeout\r\n", "timeout in DATA %r" % data)
        inst2.finish()
        expect(b"smtpd: timeout ip=127.0.0.1" in inst2.logtext(), "no timeout log line")
        expect(not inst2.committed(), "partial message queued")
    finally:
        inst2.cleanup()


@case
def too_many_errors(inst):
    c = inst.session()
    greet_ehlo(c)
    for i in range(9):
        c.cmd("BOGUS %d" % i, 502)
    data = c.cmd("BOGUS", 421)
    expect(data[0].startswith(b"421 4.7.0"), "421 text %r" % data)
    rest = c.closed()
    expect(rest == b"", "data after 421: %r" % rest)
    c = inst.session()
    greet_ehlo(c)
    c.cmd("MAIL FROM:<a@example.net>", 250)
    for i in range(9):
        c.cmd("RCPT TO:<nouser%d@example.org>" % i, 550)
    c.cmd("RCPT TO:<nouser@example.org>", 421)
    c.closed()
    inst.finish()
    expect(b"reason=too-many-errors" in inst.logtext(), "no log line")


@case
def sequencing_and_codes(inst):
    c = inst.session()
    c.expect(220)
    c.cmd("MAIL FROM:<a@example.net>", 503)
    c.cmd("HELO", 501)
    c.cmd("EHLO x.example", 250)
    c.cmd("RCPT TO:<alice@example.org>", 503)
    c.cmd("DATA", 503)
    c.cmd("MAIL FROM:<a@example.net>", 250)
    c.cmd("MAIL FROM:<a@example.net>", 503)
    c.cmd("DATA", 554)
    c.cmd("RCPT TO:<alice@example.org>", 250)
    c.cmd("DATA extra", 501)
    c.cmd("RSET", 250)
    c.cmd("RCPT TO:<alice@example.org>", 503)
    c.cmd("QUIT", 221)
    c.closed()
    c = inst.session()
    greet_ehlo(c)
    allr = []
    allr += c.cmd("VRFY alice", 252)
    allr += c.cmd("HELP", 214)
    allr += c.cmd("noop", 250)
    allr += c.cmd("EXPN list", 502)
    allr += c.cmd("STARTTLS", 502)
    allr += c.cmd("MAIL FROM:<bad address@>", 501)
    c.send("NOOP\n")                       # bare LF ends a command line
    allr += c.expect(250, "NOOP with bare LF")
    allr += c.cmd("MAIL FROM:<>", 250)
    allr += c.cmd("RCPT TO:<a b@example.org>", 553)
    allr += c.cmd("RCPT TO:alice@example.org", 250)   # without brackets (qmail accepts)
    allr += c.cmd("QUIT", 221)
    for ln in allr:
        expect(ENHANCED.match(ln), "reply without enhanced status code: %r" % ln)
    c.closed()
    inst.finish()


@case
def max_recipients(inst):
    inst2 = Instance({"maxrcpt": "3\n"})
    try:
        c = inst2.session()
        greet_ehlo(c)
        c.cmd("MAIL FROM:<a@example.net>", 250)
        for i in range(3):
            c.cmd("RCPT TO:<alice@example.org>", 250)
        lines = c.cmd("RCPT TO:<bob@example.org>", 452)
        expect(lines[0].startswith(b"452 4.5.3"), "452 text %r" % lines)
        c.cmd("DATA", 354)
        c.send(b"x\r\n.\r\n")
        c.expect(250)
        c.cmd("QUIT", 221)
        c.closed()
        inst2.finish()
        got = inst2.committed()
        expect(len(got) == 1 and len(got[0][2]) == 3, "recipients")
    finally:
        inst2.cleanup()


@case
def received_header_sanitized(inst):
    c = inst.session({"TCPREMOTEHOST": "evil(host) [6.6.6.6]"})
    c.expect(220)
    c.cmd("EHLO fake(x.example [10.0.0.1])", 250)
    transaction(c, "a@example.net", ["alice@example.org"], b"x\r\n.\r\n", 250)
    c.cmd("HELO plain.example", 250)
    transaction(c, "a@example.net", ["alice@example.org"], b"x\r\n.\r\n", 250)
    c.cmd("QUIT", 221)
    c.closed()
    inst.finish()
    got = sorted(m.split(b"\n", 1)[0] for m, _, _ in inst.committed())
    expect(len(got) == 2, "queued %d" % len(got))
    expect(got[0] == b"Received: from fakex.example[10.0.0.1] (evilhost[6.6.6.6] [127.0.0.1])", "header %r" % got[0])
    expect(got[1] == b"Received: from plain.example (evilhost[6.6.6.6] [127.0.0.1])", "header %r" % got[1])
    second = [m for m, _, _ in inst.committed() if b"plain.example" in m.split(b"\n", 1)[0]][0]
    expect(b" with SMTP id " in second, "HELO session not marked SMTP")


@case
def eof_in_data(inst):
    c = inst.session()
    greet_ehlo(c)
    c.cmd("MAIL FROM:<a@example.net>", 250)
    c.cmd("RCPT TO:<alice@example.org>", 250)
    c.cmd("DATA", 354)
    c.send(b"Subject: cut\r\n\r\nhalf a message\r\n")
    c.s.shutdown(socket.SHUT_WR)
    c.closed()
    inst.finish()
    expect(not inst.committed(), "truncated message queued")


@case
def large_message(inst):
    c = inst.session()
    greet_ehlo(c)
    lines = [b"%06d " % i + b"abcdefghij" * 7 for i in range(20000)]
    lines[100] = b"." + lines[100]
    body = b"\r\n".join(lines) + b"\r\n"
    stuffed = body.replace(b"\r\n.", b"\r\n..")
    c.cmd("MAIL FROM:<a@example.net>", 250)
    c.cmd("RCPT TO:<alice@example.org>", 250)
    c.cmd("DATA", 354)
    # send in odd-sized pieces to cross buffer boundaries everywhere
    data = stuffed + b".\r\n"
    i = 0
    step = 1
    while i < len(data):
        c.send(data[i:i + step])
        i += step
        step = step * 7 % 65521 + 1
    c.expect(250)
    c.cmd("QUIT", 221)
    c.closed()
    inst.finish()
    got = inst.committed()
    expect(len(got) == 1, "queued %d" % len(got))
    expect(got[0][0].split(b"\n", 3)[3] == body.replace(b"\r\n", b"\n"), "large body differs")


@case
def hop_count(inst):
    c = inst.session()
    greet_ehlo(c)
    hdr = b"".join(b"Received: from hop%d\r\n" % i for i in range(60)) + \
        b"".join(b"Delivered-To: x%d@example.org\r\n" % i for i in range(40))
    transaction(c, "a@example.net", ["alice@example.org"], hdr + b"Subject: 100 hops\r\n\r\nReceived: body\r\n.\r\n", 250)
    lines = transaction(c, "a@example.net", ["alice@example.org"], hdr + b"received: one more\r\n\r\nbody\r\n.\r\n", 554)
    expect(lines[0].startswith(b"554 5.4.6"), "hops reply %r" % lines)
    c.cmd("QUIT", 221)
    c.closed()
    inst.finish()
    expect(len(inst.committed()) == 1, "queued %d" % len(inst.committed()))


@case
def byte_at_a_time(inst):
    c = inst.session()
    script = (b"EHLO slow.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"
              b"Subject: slow\r\n\r\n..dot\r\nend\r\n.\r\nQUIT\r\n")
    for i in range(len(script)):
        c.send(script[i:i + 1])
    c.expect(220)
    c.expect(250)
    c.expect(250)
    c.expect(250)
    c.expect(354)
    c.expect(250)
    c.expect(221)
    c.closed()
    inst.finish()
    got = inst.committed()
    expect(len(got) == 1 and got[0][0].split(b"\n", 3)[3] == b"Subject: slow\n\n.dot\nend\n", "body")


@case
def ehlo_without_tls(inst):
    c = inst.session()
    kw = [ln[4:] for ln in greet_ehlo(c)[1:]]
    expect(b"SMTPUTF8" in kw, "no SMTPUTF8: %r" % kw)
    expect(b"STARTTLS" not in kw and not any(k.startswith(b"AUTH") for k in kw), "STARTTLS/AUTH offered: %r" % kw)
    lines = c.cmd("AUTH PLAIN AGFsaWNlAHB3", 538)
    expect(lines == [b"538 5.7.11 Encryption required for requested authentication mechanism"], "AUTH %r" % lines)
    c.cmd("STARTTLS", 502)
    c.cmd("QUIT", 221)
    c.closed()
    # a half-set or bogus SSLCTLFD offers nothing
    for extra in ({"SSLCTLFD": "7"}, {"SSLCTLFD": "x", "SSLREADFD": "8", "SSLWRITEFD": "9"},
                  {"SSLCTLFD": "1", "SSLREADFD": "8", "SSLWRITEFD": "9"}):
        c = inst.session(extra)
        kw = [ln[4:] for ln in greet_ehlo(c)[1:]]
        expect(b"STARTTLS" not in kw, "STARTTLS offered with %r" % extra)
        c.cmd("QUIT", 221)
        c.closed()
    inst.finish()


@case
def usage(inst):
    r = subprocess.run([SMTPD, "-x"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=inst.env(), timeout=IO_TIMEOUT)
    expect(r.returncode == 100 and b"usage" in r.stderr, "exit %d %r" % (r.returncode, r.stderr))
    r = subprocess.run([SMTPD, "-s", "extra"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=inst.env(), timeout=IO_TIMEOUT)
    expect(r.returncode == 100, "exit %d with an operand" % r.returncode)


def ucspi_tls_session(inst, extra=None):
    """smtpd with the UCSPI-TLS fds of yubin-tlsd -S, played by the test:
    returns (client socket, control socket, read-pipe w end, write-pipe r
    end, process)."""
    a, b = socket.socketpair()
    ctl_here, ctl_there = socket.socketpair()
    rd_r, rd_w = os.pipe()      # SSLREADFD: cleartext from the "client"
    wr_r, wr_w = os.pipe()      # SSLWRITEFD: to the "client"
    env = {"SSLCTLFD": str(ctl_there.fileno()), "SSLREADFD": str(rd_r), "SSLWRITEFD": str(wr_w)}
    env.update(extra or {})
    log = open(os.path.join(inst.root, "log.%d" % len(inst.logs)), "w+b")
    inst.logs.append(log)
    p = subprocess.Popen([SMTPD, "-a"], stdin=b.fileno(), stdout=b.fileno(), stderr=log, env=inst.env(env),
                         pass_fds=(ctl_there.fileno(), rd_r, wr_w))
    inst.procs.append(p)
    b.close()
    ctl_there.close()
    os.close(rd_r)
    os.close(wr_w)
    return Client(a, p), ctl_here, rd_w, wr_r, p


@case
def starttls_control_protocol(inst):
    c, ctl, rd_w, wr_r, p = ucspi_tls_session(inst)
    kw = [ln[4:] for ln in greet_ehlo(c)[1:]]
    expect(b"STARTTLS" in kw and not any(k.startswith(b"AUTH") for k in kw), "EHLO %r" % kw)
    c.cmd("MAIL FROM:<a@example.net>", 250)
    # pipelined cleartext behind STARTTLS must be thrown away
    c.send(b"STARTTLS\r\nRCPT TO:<alice@example.org>\r\nNOOP\r\n")
    lines = c.expect(220, "STARTTLS")
    expect(lines == [b"220 2.0.0 Ready to start TLS"], "reply %r" % lines)
    ctl.settimeout(IO_TIMEOUT)
    expect(ctl.recv(16) == b"y", "no 'y' on the control socket")
    ctl.sendall(b"SSL_PROTOCOL=TLSv1.3\0SSL_CIPHER=TLS_AES_128_GCM_SHA256\0\0")
    ctl.close()
    # the "TLS" side: what smtpd writes comes on wr_r, we write on rd_w
    r = os.fdopen(wr_r, "rb", buffering=0)
    w = os.fdopen(rd_w, "wb", buffering=0)

    class PipeSock:
        def settimeout(self, t):
            pass

        def sendall(self, d):
            w.write(d)

        def recv(self, n):
            return os.read(r.fileno(), n)

        def close(self):
            w.close()
            r.close()
    tc = Client(PipeSock(), p)
    ready, _, _ = select.select([r], [], [], 1.0)
    expect(not ready, "something was answered over TLS before EHLO: %r" % (os.read(r.fileno(), 4096) if ready else b""))
    tc.cmd("RCPT TO:<alice@example.org>", 503, "transaction forgotten")
    tc.cmd("MAIL FROM:<a@example.net>", 503, "HELO forgotten")
    kw = [ln[4:] for ln in tc.cmd("EHLO again.example", 250)[1:]]
    expect(b"AUTH PLAIN LOGIN" in kw and b"STARTTLS" not in kw, "EHLO over TLS %r" % kw)
    tc.cmd("STARTTLS", 503)
    tc.cmd("MAIL FROM:<a@example.net>", 250)
    tc.cmd("RCPT TO:<alice@example.org>", 250)
    tc.cmd("DATA", 354)
    tc.send(b"Subject: over tls\r\n\r\nx\r\n.\r\n")
    tc.expect(250)
    tc.cmd("QUIT", 221)
    tc.close()
    c.close()
    inst.finish()
    got = inst.committed()
    expect(len(got) == 1, "queued %d" % len(got))
    expect(b"\t(using TLSv1.3 with cipher TLS_AES_128_GCM_SHA256)\n" in got[0][0] and
          b" with ESMTPS id " in got[0][0], "Received: %r" % got[0][0][:300])
    expect(b"smtpd: tls ip=127.0.0.1 proto=TLSv1.3 cipher=TLS_AES_128_GCM_SHA256" in inst.logtext(), "no tls line")


@case
def starttls_handshake_fails(inst):
    c, ctl, rd_w, wr_r, p = ucspi_tls_session(inst)
    greet_ehlo(c)
    c.send(b"STARTTLS\r\n")
    c.expect(220)
    ctl.settimeout(IO_TIMEOUT)
    expect(ctl.recv(16) == b"y", "no 'y'")
    ctl.close()        # EOF before the parameters: the handshake failed
    try:
        p.wait(IO_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise Failure("smtpd did not exit after a failed handshake")
    c.s.settimeout(1)
    try:
        extra = c.s.recv(100)
    except socket.timeout:
        extra = b""
    expect(extra == b"", "smtpd wrote after the failed handshake: %r" % extra)
    os.close(rd_w)
    os.close(wr_r)
    c.close()
    inst.finish()
    expect(b"reason=tls-handshake-failed" in inst.logtext(), "no log line")


@case
def env_overrides(inst):
    c = inst.session({"SMTPGREETING": "mx.example hi", "MAXRCPT": "2", "DATABYTES": "100"})
    lines = c.expect(220)
    expect(lines == [b"220 mx.example hi"], "greeting %r" % lines)
    kw = [ln[4:] for ln in c.cmd("EHLO x", 250)[1:]]
    expect(b"SIZE 100" in kw, "SIZE %r" % kw)
    c.cmd("MAIL FROM:<a@example.net>", 250)
    c.cmd("RCPT TO:<alice@example.org>", 250)
    c.cmd("RCPT TO:<bob@example.org>", 250)
    c.cmd("RCPT TO:<alice@example.org>", 452)
    c.cmd("QUIT", 221)
    c.closed()
    c = inst.session({"TIMEOUTSMTPD": "1"})
    c.expect(220)
    t0 = time.time()
    data = c.closed(10)
    expect(data == b"451 4.4.2 timeout\r\n" and time.time() - t0 < 8, "TIMEOUTSMTPD: %r" % data)
    inst.finish()


@case
def ip_literal_relay(inst):
    inst2 = Instance({"rcpthosts": "example.org\n[192.0.2.7]\n"})
    try:
        c = inst2.session()
        greet_ehlo(c)
        c.cmd("MAIL FROM:<x@example.net>", 250)
        for t in ("user@[127.0.0.1]", "user@[192.0.2.8]", "user@[IPv6:::1]", "postmaster@[127.0.0.1]"):
            code, lines = c.cmd_any("RCPT TO:<%s>" % t)
            expect(code in (550, 553), "%s accepted: %r" % (t, lines))
        c.cmd("RCPT TO:<user@[192.0.2.7]>", 250, "literal listed in rcpthosts")
        c.cmd("DATA", 354)
        c.send(b"x\r\n.\r\n")
        c.expect(250)
        c.cmd("QUIT", 221)
        c.closed()
        inst2.finish()
        got = inst2.committed()
        expect(len(got) == 1 and got[0][2] == [b"user@[192.0.2.7]"], "queued %r" % [g[2] for g in got])
    finally:
        inst2.cleanup()


@case
def smtputf8(inst):
    c = inst.session()
    greet_ehlo(c)
    lines = c.cmd("MAIL FROM:<j\u00fcrgen@example.net>".encode(), 553)
    expect(lines[0].startswith(b"553 5.6.7"), "without SMTPUTF8: %r" % lines)
    c.cmd("MAIL FROM:<a@example.net>", 250)
    lines = c.cmd("RCPT TO:<\u00fcser@relayed.example.net>".encode(), 553)
    expect(lines[0].startswith(b"553 5.6.7"), "RCPT without SMTPUTF8: %r" % lines)
    c.cmd("RSET", 250)
    c.cmd("MAIL FROM:<j\u00fcrgen@b\u00fccher.example> SMTPUTF8 BODY=8BITMIME".encode(), 250)
    c.cmd("RCPT TO:<\u00fcser@relayed.example.net>".encode(), 250)
    c.cmd("RCPT TO:<alice@example.org>", 250)
    c.cmd("RCPT TO:<\u00fcser@example.org>".encode(), 550, "unknown UTF-8 local user")
    c.cmd(b"MAIL FROM:<\xff@example.net> SMTPUTF8", 503, "nested")
    c.cmd("DATA", 354)
    c.send("Subject: gr\u00fc\u00dfe\r\n\r\nhi\r\n.\r\n".encode())
    c.expect(250)
    c.cmd(b"MAIL FROM:<\xff@example.net> SMTPUTF8", 501, "invalid UTF-8")
    c.cmd("QUIT", 221)
    c.closed()
    inst.finish()
    got = inst.committed()
    expect(len(got) == 1, "queued %d" % len(got))
    msg, sender, rcpts = got[0]
    expect(sender == "j\u00fcrgen@b\u00fccher.example".encode(), "sender %r" % sender)
    expect(rcpts == ["\u00fcser@relayed.example.net".encode(), b"alice@example.org"], "recipients %r" % rcpts)
    expect(b" with UTF8SMTP id " in msg.split(b"\n\n")[0], "Received %r" % msg[:300])
    expect(b"smtputf8=1" in inst.logtext(), "no smtputf8 in the mail log line")


def main():
    if not os.access(SMTPD, os.X_OK):
        check("setup", False, "%s not found (set YUBIN_BIN)" % SMTPD)
        return
    run_cases(CASES, Instance)


run(main)
