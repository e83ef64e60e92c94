#!/usr/bin/env python3
"""The bounces of qmgr/bounce.c read by Python's email package: the unit
test t-bounce writes its notices to a directory, and each must parse as
multipart/report; report-type=delivery-status with a text part, a
message/delivery-status part whose per-recipient fields (Final-Recipient,
Action, Status, Remote-MTA, Diagnostic-Code) are right, and the original
(message/rfc822, or text/rfc822-headers when it is over bouncemaxbytes).

t-bounce is found beside YUBIN_BIN: <YUBIN_BIN>/../unit/t-bounce (build/bin
-> build/unit, build/asan/bin -> build/asan/unit), or $YUBIN_UNIT/t-bounce."""

import email
import email.policy
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from yubintest import bin_dir, check, run  # noqa: E402


def unit(name):
    d = os.environ.get("YUBIN_UNIT") or os.path.join(os.path.dirname(os.path.abspath(bin_dir())), "unit")
    return os.path.join(d, name)


def load(d, name):
    with open(os.path.join(d, name + ".eml"), "rb") as f:
        raw = f.read()
    return raw, email.message_from_bytes(raw, policy=email.policy.compat32)


def report(msg):
    """(per-message fields, [per-recipient fields]) of the delivery-status part"""
    parts = msg.get_payload()
    ds = parts[1]
    blocks = ds.get_payload()   # compat32: a list of Message, one per field block
    return blocks[0], blocks[1:]


def structure(name, raw, msg, third):
    check(name + "_multipart_report", msg.get_content_type() == "multipart/report"
          and msg.get_param("report-type") == "delivery-status" and msg.is_multipart(), msg.get("Content-Type"))
    check(name + "_header", msg["From"] == "MAILER-DAEMON@mx.example.test" and msg["To"] == "<alice@example.org>"
          and msg["Auto-Submitted"] == "auto-replied" and msg["MIME-Version"] == "1.0"
          and msg["Message-ID"] and msg["Date"] and msg["Subject"], str(msg.items()))
    check(name + "_no_defects", not msg.defects and all(not p.defects for p in msg.walk()), repr(msg.defects))
    parts = msg.get_payload()
    types = [p.get_content_type() for p in parts]
    want = ["text/plain", "message/delivery-status"] + ([third] if third else [])
    check(name + "_parts", types == want, repr(types))
    check(name + "_lf_only", b"\r" not in raw, "")
    permsg, _ = report(msg)
    check(name + "_per_message", permsg["Reporting-MTA"] == "dns; mx.example.test"
          and permsg["Arrival-Date"] == "Thu, 28 Nov 2024 08:07:14 +0000", str(permsg.items()))


def rcpt_fields(name, msg, want):
    _, rcpts = report(msg)
    got = []
    for r in rcpts:
        got.append({k: r[k] for k in ("Final-Recipient", "Action", "Status", "Remote-MTA", "Diagnostic-Code") if r[k] is not None})
    check(name + "_recipients", got == want, "got %r\nwant %r" % (got, want))


def main():
    prog = unit("t-bounce")
    if not os.path.exists(prog):
        check("t_bounce_built", False, prog + " not found: make unit")
        return
    d = tempfile.mkdtemp(prefix="yubin-dsn-")
    try:
        p = subprocess.run([prog, d], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        out = p.stdout.decode(errors="replace")
        check("t_bounce_ran", p.returncode == 0 and "FAIL" not in out, out[-2000:] + p.stderr.decode(errors="replace"))

        raw, msg = load(d, "local")
        structure("local", raw, msg, "message/rfc822")
        rcpt_fields("local", msg, [{"Final-Recipient": "rfc822; nosuch@mx.example.test", "Action": "failed", "Status": "5.1.1",
                                    "Diagnostic-Code": "x-yubin; Sorry, no mailbox here by that name. (#5.1.1)"}])
        human = msg.get_payload()[0].get_payload(decode=True).decode()
        check("local_human_text", "nosuch@mx.example.test" in human and "Sorry, no mailbox here by that name." in human, human)
        orig = msg.get_payload()[2].get_payload()[0]
        check("local_original_attached", orig["Subject"] == "hello" and orig.get_payload() == "line one\nline two\n",
              repr(orig.as_string()))

        raw, msg = load(d, "remote")
        structure("remote", raw, msg, "message/rfc822")
        rcpt_fields("remote", msg, [{"Final-Recipient": "rfc822; bob@remote.test", "Action": "failed", "Status": "5.1.1",
                                     "Remote-MTA": "dns; mx.remote.test",
                                     "Diagnostic-Code": "smtp; 550 5.1.1 <bob@remote.test>: no such user"}])

        raw, msg = load(d, "expired")
        structure("expired", raw, msg, "message/rfc822")
        rcpt_fields("expired", msg, [{"Final-Recipient": "rfc822; carol@slow.test", "Action": "failed", "Status": "4.4.7",
                                      "Remote-MTA": "dns; mx.slow.test", "Diagnostic-Code": "smtp; 451 try again later"}])

        raw, msg = load(d, "several")
        structure("several", raw, msg, "message/rfc822")
        _, rcpts = report(msg)
        check("several_count", len(rcpts) == 10, repr(len(rcpts)))
        check("several_statuses", [r["Status"] for r in rcpts]
              == ["5.1.1", "5.2.2", "5.7.1", "5.0.0", "5.0.0", "5.0.0", "4.2.2", "4.4.7", "5.3.4", "5.1.10"],
              repr([r["Status"] for r in rcpts]))
        check("several_remote_mta", [r["Remote-MTA"] for r in rcpts]
              == [None, "dns; mx1.remote.test", "dns; [192.0.2.9]", None, "dns; mx.remote.test", None, None, None,
                  "dns; mx.remote.test", "dns; mx.remote.test"], repr([r["Remote-MTA"] for r in rcpts]))
        check("several_actions", all(r["Action"] == "failed" for r in rcpts)
              and [r["Final-Recipient"] for r in rcpts] == ["rfc822; u%d@%s" % (i, "example.test" if i in (1, 6, 7) else "remote.test")
                                                           for i in range(1, 11)], "")

        raw, msg = load(d, "big")
        structure("big", raw, msg, "text/rfc822-headers")
        hdr = msg.get_payload()[2].get_payload()
        check("big_headers_only", "Subject: big\nFrom: alice@example.org\nX-Big: yes\n" in hdr and "body line" not in hdr, hdr)
        check("big_not_whole", b"body line" not in raw and len(raw) < 5000, str(len(raw)))

        raw, msg = load(d, "nocopy")
        structure("nocopy", raw, msg, None)
        raw, msg = load(d, "boundary")
        structure("boundary", raw, msg, "message/rfc822")
        orig = msg.get_payload()[2].get_payload()[0]
        check("boundary_original_intact", orig.get_payload() == "--=_yubin-dsn_1732781234.012345678.4242_0\nno newline at the end\n",
              repr(orig.get_payload()))
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    run(main)
