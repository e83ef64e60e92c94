#!/usr/bin/env python3
"""A .qmail forward to another server (issue 12): instance A's demo user
has a .qmail-fwd that forwards to demo@b.test and keeps a copy; b.test is
routed by A's control/smtproutes to instance B's SMTP port on loopback.
Mail sent to demo-fwd@ at A must reach both Maildirs, the forwarded copy
carrying A's Delivered-To line and the original envelope sender."""

import os
import smtplib
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from yubintest import Instance, check, run, sanitizer_build  # noqa: E402


class B(Instance):
    def setup(self):
        super().setup()
        for f in ("locals", "rcpthosts"):
            with open(self.path("control", f), "w") as fh:
                fh.write("b.test\nlocalhost\n")


class A(Instance):
    def __init__(self, b_port, **kw):
        super().__init__(**kw)
        self.b_port = b_port

    def setup(self):
        super().setup()
        with open(self.path("control", "smtproutes"), "w") as fh:
            fh.write("b.test:127.0.0.1:%d\n" % self.b_port)
        home = self.path("home", "demo")
        st = os.stat(home)
        qmail = os.path.join(home, ".qmail-fwd")
        with open(qmail, "w") as fh:
            fh.write("# a copy here, and one to the other server\n./Maildir/\n&demo@b.test\n")
        os.chown(qmail, st.st_uid, st.st_gid)
        os.chmod(qmail, 0o644)


def wait_subject(inst, subject, timeout=40):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in inst.messages():
            d = inst.read(p)
            if subject.encode() in d:
                return d
        time.sleep(0.1)
    return None


def main():
    if sanitizer_build() and os.geteuid() == 0:
        # the setuid yubin-queue cannot run LeakSanitizer as root (tests/run)
        print("SKIP forward-mx: sanitizer build as root")
        return
    with B(domain="b.test") as b, A(b.smtp_port) as a:
        subject = "forwarded-%d" % os.getpid()
        with smtplib.SMTP(a.ip, a.smtp_port, timeout=30) as s:
            s.sendmail("sender@example.org", ["demo-fwd@" + a.domain],
                       "From: sender@example.org\r\nSubject: %s\r\n\r\nhello\r\n" % subject)
        kept = wait_subject(a, subject)
        check("forward-keeps-local-copy", kept is not None, "no copy in A's Maildir")
        got = wait_subject(b, subject)
        check("forward-reaches-other-server", got is not None,
              "nothing in B's Maildir; A's qmgr log: %s" % a.log("qmgr")[-1500:])
        if got is not None:
            check("forward-delivered-to-line", b"Delivered-To: demo-fwd@" + a.domain.encode() in got,
                  repr(got[:600]))
            check("forward-envelope-sender", b"Return-Path: <sender@example.org>" in got, repr(got[:300]))
        check("forward-logged", "local: forwarded" in a.log("qmgr") or "forwarded" in a.log("qmgr"),
              a.log("qmgr")[-800:])


if __name__ == "__main__":
    run(main)
