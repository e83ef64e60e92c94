#!/usr/bin/env python3
"""End to end: SMTP in (python smtplib, swaks) -> queue -> Maildir, byte-exact."""

import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from yubintest import Instance, check, info, run, send  # noqa: E402


def split_delivery(data):
    """Split a delivered file into (Return-Path line, Delivered-To line,
    list of Received header blocks, rest).  The rest starts at the first
    header that is not one of those three."""
    lines = data.split(b"\n")
    i = 0
    rp = lines[i] if i < len(lines) else b""
    i += 1
    dt = lines[i] if i < len(lines) else b""
    i += 1
    received = []
    while i < len(lines) and lines[i].startswith(b"Received:"):
        block = [lines[i]]
        i += 1
        while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
            block.append(lines[i])
            i += 1
        received.append(b"\n".join(block))
    return rp, dt, received, b"\n".join(lines[i:])


def find_with(msgs, marker):
    return [(p, d) for p, d in msgs if marker in d]


def check_delivery(name, inst, msgs, marker, sender, rcpt, expected_body):
    found = find_with(msgs, marker)
    if not check(name + "-delivered-once", len(found) == 1,
                 "%d copies with %r in Maildir/new" % (len(found), marker)):
        inst.dump_logs()
        return
    path, data = found[0]
    rp, dt, received, rest = split_delivery(data)
    check(name + "-return-path", rp == b"Return-Path: <" + sender + b">",
          "first line %r" % rp)
    check(name + "-delivered-to", dt == b"Delivered-To: " + rcpt, "second line %r" % dt)
    check(name + "-received", len(received) == 1 and b"127.0.0.1" in received[0],
          "Received headers %r" % received)
    check(name + "-bytes", rest == expected_body,
          "message differs:\n  want %r\n  got  %r" % (expected_body[:400], rest[:400]))
    check(name + "-lf-only", b"\r" not in data, "CR found in the Maildir file")
    check(name + "-filename", re.match(rb"^\d+\.", os.path.basename(path).encode()) is not None,
          "odd Maildir name %s" % path)


def main():
    with Instance() as inst:
        dom = inst.domain.encode()
        rcpt = b"demo@" + dom

        # (a) python smtplib, a message with the edge cases of DATA
        marker = b"smtplib-e2e-4f1c"
        body_lines = [
            b"From: Alice <alice@example.org>",
            b"To: demo@" + dom,
            b"Subject: " + marker,
            b"Message-ID: <" + marker + b"@example.org>",
            b"MIME-Version: 1.0",
            b"Content-Type: text/plain; charset=utf-8",
            b"Content-Transfer-Encoding: 8bit",
            b"",
            b"Hello demo,",
            b".a line that starts with a dot",
            b"..two dots",
            b".",
            b"   leading spaces and trailing spaces   ",
            b"\ttab",
            "utf-8: 郵便 ✉".encode(),
            b"From the start of a line",
            b"x" * 998,
            b"",
            b"-- ",
            b"last line",
        ]
        wire = b"\r\n".join(body_lines) + b"\r\n"
        want = b"\n".join(body_lines) + b"\n"
        ok, r = send(inst, "alice@example.org", ["demo@" + inst.domain], wire,
                     mail_options=["BODY=8BITMIME"])
        check("smtplib-accepted", ok and not r, "%r" % (r,))
        msgs = inst.wait_for(lambda m: find_with(m, marker))
        check_delivery("smtplib", inst, msgs, marker, b"alice@example.org", rcpt, want)

        # (b) swaks, the message from a file
        marker2 = b"swaks-e2e-9b07"
        swaks_lines = [
            b"From: bob@example.org",
            b"To: demo@" + dom,
            b"Subject: " + marker2,
            b"",
            b"sent with swaks",
            b".dot-stuffed by swaks",
            b"end",
        ]
        with tempfile.NamedTemporaryFile("wb", suffix=".eml", delete=False) as f:
            # swaks ends the data with its own CRLF before the final dot
            f.write(b"\n".join(swaks_lines))
            fn = f.name
        try:
            r = subprocess.run(["swaks", "--server", "%s:%d" % (inst.ip, inst.smtp_port),
                                "--helo", "swaks.example.org",
                                "--from", "bob@example.org", "--to", "demo@" + inst.domain,
                                "--data", "@" + fn, "--timeout", "20"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        finally:
            os.unlink(fn)
        out = r.stdout.decode(errors="replace")
        if not check("swaks-exit-0", r.returncode == 0, "swaks exited %d:\n%s" % (r.returncode, out[-1500:])):
            info(out)
        check("swaks-250-after-data", re.search(r"^<- +250 ", out, re.M) is not None and "<** " not in out,
              "no 250 / an error in the transcript")
        msgs = inst.wait_for(lambda m: find_with(m, marker2))
        check_delivery("swaks", inst, msgs, marker2, b"bob@example.org", rcpt,
                       b"\n".join(swaks_lines) + b"\n")

        # several recipients in one transaction, one with an extension:
        # one copy each, each with its own Delivered-To
        marker3 = b"multi-rcpt-77aa"
        ok, r = send(inst, "", ["demo@" + inst.domain, "demo-ext@" + inst.domain, "demo@localhost"],
                     b"Subject: " + marker3 + b"\r\n\r\nthree copies\r\n")
        check("multi-rcpt-accepted", ok and not r, "%r" % (r,))
        msgs = inst.wait_for(lambda m: len(find_with(m, marker3)) >= 3)
        found = find_with(msgs, marker3)
        dts = sorted(split_delivery(d)[1] for _, d in found)
        want_dts = sorted([b"Delivered-To: demo@" + dom, b"Delivered-To: demo-ext@" + dom,
                           b"Delivered-To: demo@localhost"])
        check("multi-rcpt-three-copies", dts == want_dts, "Delivered-To lines %r" % dts)
        check("null-sender-return-path",
              all(split_delivery(d)[0] == b"Return-Path: <>" for _, d in found) and found,
              "Return-Path lines %r" % [split_delivery(d)[0] for _, d in found])

        # a user added while the instance runs gets mail at once
        cmd = [inst.path("bin", "yubin-users"), "add", "alice", "-p"]
        if os.geteuid() == 0:
            cmd += ["-u", "yubinv"]
        r = subprocess.run(cmd, input=b"alice-secret\n", env=inst.env(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        check("users-add-live", r.returncode == 0, "yubin-users add: %d %r" % (r.returncode, r.stdout))
        marker4 = b"new-user-5e1d"
        ok, r = send(inst, "a@example.org", ["alice@" + inst.domain],
                     b"Subject: " + marker4 + b"\r\n\r\nhi alice\r\n")
        check("new-user-accepted", ok and not r, "%r" % (r,))
        msgs = inst.wait_for(lambda m: find_with(m, marker4), user="alice")
        check("new-user-delivered", len(find_with(msgs, marker4)) == 1,
              "not in %s/new" % inst.maildir("alice"))

        check("log-smtpd-queued", "smtpd: queued" in inst.log("smtpd") or "queued" in inst.log("smtpd"),
              "no 'queued' event in log/smtpd/current")
        check("log-qmgr-delivery", "qmgr:" in inst.log("qmgr"), "no qmgr events in log/qmgr/current")
        check("maildir-tmp-empty", inst.messages(sub="tmp") == [],
              "left in Maildir/tmp: %r" % inst.messages(sub="tmp"))


if __name__ == "__main__":
    run(main)
