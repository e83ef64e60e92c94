#!/usr/bin/env python3
"""yubin-qstat and yubin-qread on a queue made by yubin-queue in a
temporary root: counts of cur/ and new/, and per message its ID, date,
age, size, sender and each recipient's state (todo / done / failed) and
local or remote (control/locals); a big envelope in env/; a malformed file
is reported and the rest still listed."""

import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from qmgrtest import Root  # noqa: E402
from yubintest import binary, check, run, sanitizer_report  # noqa: E402

MSG = b"Subject: test\n\nline one\nline two\n"


def tool(r, name, args=()):
    p = subprocess.run([binary(name)] + list(args), env=r.env(), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    err = p.stderr.decode(errors="replace")
    bad = sanitizer_report(err)
    if bad:
        r.sanitizer.append(name + ": " + bad)
    return p.returncode, p.stdout.decode(errors="replace"), err


def set_state(path, addr, state):
    """rewrite the state byte of addr in the envelope, as yubin-qmgr does"""
    with open(path, "r+b") as f:
        head = f.read(4096)
        i = head.index(b"\0" + b"T" + addr.encode() + b"\0") + 1
        f.seek(i)
        f.write(state)


def parse(out):
    """yubin-qread's output: [(head line, [(state, where, addr)])]"""
    msgs = []
    for line in out.splitlines():
        if line.startswith("  "):
            f = line.split()
            msgs[-1][1].append((f[0], f[1], f[2]))
        else:
            msgs.append((line, []))
    return msgs


def main():
    with Root() as r:
        # no queue directories yet (yubin-qmgr makes them): empty, not an error
        rc, out, err = tool(r, "yubin-qstat")
        check("qstat_fresh_queue", rc == 0 and out == "messages in queue: 0\nmessages in queue but not yet preprocessed: 0\n",
              "exit %d: %r %r" % (rc, out, err))
        rc, out, err = tool(r, "yubin-qread")
        check("qread_fresh_queue", rc == 0 and out == "", "exit %d: %r %r" % (rc, out, err))

        for d in ("tmp", "new", "cur", "env", "lock"):
            os.makedirs(r.path("queue", d), exist_ok=True)
        rc1, _ = r.inject("sender@example.org", ["alice@example.test", "bob@remote.test", "carol@localhost"], MSG)
        time.sleep(0.01)
        rc2, _ = r.inject("", ["dave@example.test"], b"")
        time.sleep(0.01)
        many = ["user%d@remote.test" % i for i in range(300)]
        rc3, _ = r.inject("big@example.org", many, MSG)
        ids = sorted(os.listdir(r.path("queue", "new")), key=lambda s: [int(x) for x in s.split(".")])
        check("setup_queued", rc1 == rc2 == rc3 == 0 and len(ids) == 3 and len(os.listdir(r.path("queue", "env"))) == 1,
              "codes %r ids %r" % ((rc1, rc2, rc3), ids))
        if len(ids) != 3:
            return
        # the first one taken by qmgr, alice delivered, bob failed
        os.rename(r.path("queue", "new", ids[0]), r.path("queue", "cur", ids[0]))
        set_state(r.path("queue", "cur", ids[0]), "alice@example.test", b"D")
        set_state(r.path("queue", "cur", ids[0]), "bob@remote.test", b"B")
        # junk that is not a message ID is ignored
        with open(r.path("queue", "new", ".hidden"), "w") as f:
            f.write("x")

        rc, out, err = tool(r, "yubin-qstat")
        check("qstat_counts", rc == 0 and out == "messages in queue: 3\nmessages in queue but not yet preprocessed: 2\n",
              "exit %d: %r %r" % (rc, out, err))

        rc, out, err = tool(r, "yubin-qread")
        msgs = parse(out)
        check("qread_ok", rc == 0 and err == "" and len(msgs) == 3, "exit %d: %r %r" % (rc, out, err))
        if len(msgs) != 3:
            return
        head, rcpts = msgs[0]
        m = re.fullmatch(r"(\S+)  (\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d \+0000)  age=(\d+)s  size=(\d+)  from=<(.*)>", head)
        check("qread_head", m and m.group(1) == ids[0] and int(m.group(3)) < 60 and int(m.group(4)) == len(MSG)
              and m.group(5) == "sender@example.org", head)
        check("qread_date_is_queue_time", m and m.group(2) == time.strftime("%a, %d %b %Y %H:%M:%S +0000",
                                                                            time.gmtime(int(ids[0].split(".")[0]))), head)
        check("qread_states", rcpts == [("done", "local", "alice@example.test"), ("failed", "remote", "bob@remote.test"),
                                        ("todo", "local", "carol@localhost")], repr(rcpts))
        head, rcpts = msgs[1]
        check("qread_null_sender_new", head.startswith(ids[1] + "  ") and "size=0  from=<>" in head
              and head.endswith("(not yet preprocessed)") and rcpts == [("todo", "local", "dave@example.test")], head + repr(rcpts))
        head, rcpts = msgs[2]
        check("qread_big_envelope", head.startswith(ids[2] + "  ") and len(rcpts) == 300
              and all(x == ("todo", "remote", a) for x, a in zip(rcpts, many)), head + repr(rcpts[:3]))

        # control/locals decides what is local
        r.control("locals", "remote.test")
        rc, out, err = tool(r, "yubin-qread")
        msgs = parse(out)
        check("qread_locals", rc == 0 and msgs and msgs[0][1][0][1] == "remote" and msgs[0][1][1][1] == "local", out[:400])

        # a malformed file: a warning, exit 111, the others still listed
        with open(r.path("queue", "new", "1.000000001.1"), "wb") as f:
            f.write(b"garbage\n")
        rc, out, err = tool(r, "yubin-qread")
        check("qread_malformed", rc == 111 and "malformed queue file queue/new/1.000000001.1" in err and len(parse(out)) == 3,
              "exit %d: %r %r" % (rc, out, err))
        rc, out, err = tool(r, "yubin-qstat")
        check("qstat_counts_names", rc == 0 and out.startswith("messages in queue: 4\n"), out)
        rc, out, err = tool(r, "yubin-qread", ["-x"])
        check("qread_usage", rc == 100 and "usage" in err, "exit %d %r" % (rc, err))
        r.check_sanitizer("qtools")


if __name__ == "__main__":
    run(main)
