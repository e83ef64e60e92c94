#!/usr/bin/env python3
"""The .qmail engine on yubin-lspawn's in-process path: a real instance,
SMTP in, .qmail-ext files in the demo user's home (a program line, a
forward through yubin-queue to another extension, a missing extension
that bounces).  Binaries from $YUBIN_BIN.  Prints PASS name / FAIL name:
why per case."""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from yubintest import Instance, binary, check, is_root, run, send, skip  # noqa: E402
import yubintest  # noqa: E402


def write_owned(path, data, like):
    """A file with data, owned as the directory like is (the user)."""
    with open(path, "w") as f:
        f.write(data)
    os.chmod(path, 0o644)
    st = os.stat(like)
    if os.geteuid() == 0:
        os.chown(path, st.st_uid, st.st_gid)


def wait_file(path, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and os.path.getsize(path):
            time.sleep(0.1)   # the program may still be writing
            with open(path, "rb") as f:
                return f.read()
        time.sleep(0.05)
    return None


def sanitizer_build():
    return yubintest.sanitizer_build()


def main():
    if is_root() and sanitizer_build():
        skip("instance-dotqmail", "sanitizer build as root (setuid yubin-queue)")
        return
    with Instance() as inst:
        dom = inst.domain
        home = inst.path("home", "demo")
        write_owned(os.path.join(home, ".qmail-prog"),
                    "# through the engine\n|cat > prog-msg; echo \"$RECIPIENT $EXT $SENDER\" > prog-env\n", home)
        write_owned(os.path.join(home, ".qmail-fwd"), "&demo-got@%s\n" % dom, home)
        write_owned(os.path.join(home, ".qmail-got"), "./Maildir/\n", home)

        body = b"Subject: dotqmail-e2e\r\n\r\nthrough lspawn\r\n"
        ok, r = send(inst, "alice@example.org", ["demo-prog@" + dom], body)
        check("instance-prog-accepted", ok and not r, "%r" % (r,))
        got = wait_file(os.path.join(home, "prog-msg"))
        check("instance-prog-stdin", got is not None and got.endswith(b"Subject: dotqmail-e2e\n\nthrough lspawn\n")
              and not got.startswith(b"Return-Path"), "%r" % (got[:300] if got else got))
        env = wait_file(os.path.join(home, "prog-env"))
        check("instance-prog-env", env == ("demo-prog@%s prog alice@example.org\n" % dom).encode(), "%r" % env)
        check("instance-prog-no-maildir", not any(b"dotqmail-e2e" in inst.read(p) for p in inst.messages()),
              "the message went to the Maildir too")

        ok, r = send(inst, "alice@example.org", ["demo-fwd@" + dom], b"Subject: fwd-e2e\r\n\r\nforwarded\r\n")
        check("instance-fwd-accepted", ok and not r, "%r" % (r,))
        msgs = inst.wait_for(lambda m: any(b"fwd-e2e" in d for _, d in m))
        found = [d for _, d in msgs if b"fwd-e2e" in d]
        want_head = ("Return-Path: <alice@example.org>\nDelivered-To: demo-got@%s\n" % dom).encode()
        check("instance-fwd-delivered", len(found) == 1 and found[0].startswith(want_head)
              and ("\nDelivered-To: demo-fwd@%s\n" % dom).encode() in found[0], "%r" % found)
        if not found:
            inst.dump_logs()

        # a missing extension file bounces now that demo has .qmail files;
        # the bounce goes to a local sender so that it can be seen
        ok, r = send(inst, "demo-got@" + dom, ["demo-nothing@" + dom], b"Subject: nobox-e2e\r\n\r\nx\r\n")
        check("instance-nobox-accepted", ok and not r, "%r" % (r,))
        msgs = inst.wait_for(lambda m: any(b"no mailbox here by that name" in d for _, d in m))
        check("instance-nobox-bounced", any(b"no mailbox here by that name" in d for _, d in msgs),
              "no bounce in the Maildir; qmgr log: %s" % inst.log("qmgr")[-600:])
        inst.check_sanitizers()


run(main)
