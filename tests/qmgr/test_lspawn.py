#!/usr/bin/env python3
"""yubin-lspawn alone: its request/result protocol (yubin-lspawn(8)), the
user lookup, the command line and stdin it gives yubin-local, concurrency."""

import os
import select
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from qmgrtest import Lspawn, Root, ids_of  # noqa: E402
from yubintest import cdb_write, check, run  # noqa: E402

MSG = b"Subject: lspawn\n\nhello\n"




def queue_one(r, body=MSG):
    for d in ("tmp", "new", "cur", "env", "lock"):
        os.makedirs(r.path("queue", d), exist_ok=True)
    rc, err = r.inject("sender@example.org", ["alice@example.test"], body)
    assert rc == 0, err
    qid = os.listdir(r.path("queue", "new"))[0]
    os.rename(r.path("queue", "new", qid), r.path("queue", "cur", qid))
    return qid


def main():
    amroot = os.geteuid() == 0
    with Root() as r:
        if amroot:
            # a uid-0 user, to check that lspawn refuses to become root
            cdb_write(r.path("users", "users.cdb"),
                      [(u.encode(), b"%d:%d:%s" % (r.uid, r.gid, r.path("home", u).encode())) for u in r.users]
                      + [(b"toor", b"0:0:" + r.path("home", "alice").encode())])
        r.control("postmaster", "carol")
        qid = queue_one(r)
        ls = Lspawn(r)

        ls.send(1, qid, "sender@example.org", "alice@example.test")
        res = ls.results(1)
        check("lspawn_ok", res and res[0][:2] == (1, 0), repr(res))
        got = r.got("alice")
        args = b"X-Args: alice|%s|alice|||example.test|sender@example.org|./Maildir/|" % r.path("home", "alice").encode()
        check("lspawn_local_args_and_stdin", len(got) == 1 and got[0].startswith(args) and got[0].endswith(b"\n" + MSG)
              and got[0].count(b"\n") == MSG.count(b"\n") + 1, repr(got))

        ls.send(2, qid, "", "Alice-Lists-x@example.test")
        res = ls.results(1)
        got = r.got("alice")
        ok = res and res[0][:2] == (2, 0) and any(
            g.startswith(b"X-Args: alice|%s|Alice-Lists-x|-|Lists-x|example.test||./Maildir/|" % r.path("home", "alice").encode())
            for g in got)
        check("lspawn_extension_and_null_sender", ok, "%r %r" % (res, got))

        ls.send(3, qid, "s@example.org", "PostMaster@example.test")
        res = ls.results(1)
        check("lspawn_postmaster", res and res[0][:2] == (3, 0) and len(r.got("carol")) == 1, repr(res))

        n_before = sum(len(r.got(u)) for u in r.users)
        ls.send(4, qid, "s@example.org", "nobody-here@example.test")
        res = ls.results(1)
        check("lspawn_unknown_user_100", res and res[0][:2] == (4, 100) and "no mailbox" in res[0][2], repr(res))
        check("lspawn_unknown_user_runs_nothing", sum(len(r.got(u)) for u in r.users) == n_before, "")

        r.user_flag("bob", "perm")
        ls.send(5, qid, "s@example.org", "bob@example.test")
        res = ls.results(1)
        check("lspawn_permanent_100_with_reason",
              res and res[0][:2] == (5, 100) and res[0][2] == "fake permanent failure for bob (#5.2.0)", repr(res))
        r.user_flag("bob", "perm", False)
        r.user_flag("bob", "temp")
        ls.send(6, qid, "s@example.org", "bob@example.test")
        res = ls.results(1)
        check("lspawn_temporary_111", res and res[0][:2] == (6, 111), repr(res))
        r.user_flag("bob", "temp", False)

        ls.send(7, qid, "s@example.org", "alice@example.test", off=4096 + 9)
        res = ls.results(1)
        got = r.got("alice")
        check("lspawn_message_offset", res and res[0][:2] == (7, 0) and any(g.endswith(b"\n" + MSG[9:]) for g in got), repr(res))

        if amroot:
            ls.send(8, qid, "s@example.org", "toor@example.test")
            res = ls.results(1)
            check("lspawn_refuses_uid0", res and res[0][:2] == (8, 100), repr(res))
            ids = [ids_of(g) for g in r.got("alice")]
            check("lspawn_runs_as_user", ids and all(i == (65534, 65534, [65534]) for i in ids), repr(ids))
            os.chown(r.path("queue", "cur", qid), 12345, 12345)
            ls.send(9, qid, "s@example.org", "alice@example.test")
            res = ls.results(1)
            check("lspawn_refuses_foreign_queue_file", res and res[0][:2] == (9, 111), repr(res))
            os.chown(r.path("queue", "cur", qid), 0, 0)

        ls.send(10, "1.000000000.999", "s@example.org", "alice@example.test")
        res = ls.results(1)
        check("lspawn_missing_queue_file_111", res and res[0][:2] == (10, 111), repr(res))

        # concurrency: 20 deliveries of 0.5 s each take well under 20 x 0.5 s
        r.user_flag("carol", "slow", content="0.5")
        t0 = time.monotonic()
        for j in range(100, 120):
            ls.send(j, qid, "s@example.org", "carol@example.test")
        res = ls.results(20, timeout=15)
        dt = time.monotonic() - t0
        check("lspawn_concurrent", len(res) == 20 and all(c == 0 for _, c, _ in res)
              and sorted(j for j, _, _ in res) == list(range(100, 120)) and dt < 5,
              "%d results in %.1fs" % (len(res), dt))

        # end of requests: running deliveries still finish and are reported
        ls.send(200, qid, "s@example.org", "carol@example.test")
        time.sleep(0.1)
        ls.p.stdin.close()
        res = ls.results(1)
        rc = ls.p.wait(10)
        check("lspawn_eof_waits_for_jobs", res and res[0][:2] == (200, 0) and rc == 0, "%r rc=%r" % (res, rc))
        r.user_flag("carol", "slow", False)

        with open(r.path("lspawn.log"), "rb") as f:
            log = f.read().decode(errors="replace")
        check("lspawn_forwards_local_log", "local: delivered to=alice@example.test" in log, log[-500:])

        # a request that names a file outside cur/: protocol error, no delivery
        ls = Lspawn(r)
        ls.send(1, "../new/x", "s@example.org", "alice@example.test")
        rc = ls.close()
        check("lspawn_refuses_bad_id", rc == 111, "rc=%r" % rc)
        r.check_sanitizer("lspawn")


run(main)
