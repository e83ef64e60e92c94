#!/usr/bin/env python3
"""The local channel's batches and exactly-once deliveries, with the real
yubin-local code in yubin-lspawn's child (no YUBIN_LOCAL):

 - a batch of N messages for one user makes N files in Maildir/new with
   one fsync of Maildir/new for the whole batch (strace -f -y);
 - a message of a batch that fails (a .qmail program exiting 100) fails
   alone, the others are delivered;
 - a redelivery with check=1 (qmgr: in flight at a crash) finds the
   earlier copy in new/ or in cur/ with flags and writes no second file;
 - end to end: a message left in cur/ with its recipient still 'T' after
   the delivery was made (qmgr killed before recording it) is recovered
   by yubin-qmgr without a second copy."""

import os
import select
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from qmgrtest import Lspawn, Root  # noqa: E402
from yubintest import check, info, run  # noqa: E402




def queue(r, body, rcpts=("alice@example.test",)):
    for d in ("tmp", "new", "cur", "env", "lock"):
        os.makedirs(r.path("queue", d), exist_ok=True)
    before = set(os.listdir(r.path("queue", "new")))
    rc, err = r.inject("sender@example.org", list(rcpts), body)
    assert rc == 0, err
    qid = (set(os.listdir(r.path("queue", "new"))) - before).pop()
    os.rename(r.path("queue", "new", qid), r.path("queue", "cur", qid))
    return qid


def files(r, user, sub):
    return sorted(os.listdir(r.path("home", user, "Maildir", sub)))


def main():
    with Root(real_local=True) as r:
        n = 6
        qids = [queue(r, b"Subject: batch %d\n\nbody %d\n" % (i, i)) for i in range(n)]

        # 1. a batch of n: n files, one fsync of new/
        trace = r.path("strace.out")
        ls = Lspawn(r)
        if shutil.which("strace"):
            ls.p.kill()
            ls.p.wait()
            ls.p = subprocess.Popen(["strace", "-f", "-y", "-qq", "-e", "trace=fsync,fdatasync", "-o", trace,
                                     r.path("bin", "yubin-lspawn")], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=ls.log,
                                    # LeakSanitizer cannot run under ptrace
                                    env=dict(r.env(), ASAN_OPTIONS="detect_leaks=0"))
            r.procs.append(ls.p)
        ls.send_batch(1, "alice@example.test", [(q, "s@example.org", 4096, 0, False) for q in qids])
        res = ls.results(n, timeout=20)
        got = files(r, "alice", "new")
        check("batch_results_in_order", len(res) == n and all(x[:2] == (1, 0) for x in res), repr(res))
        check("batch_n_files", len(got) == n, repr(got))
        names_ok = all(any(f.split(".")[0] + "." + f.split(".")[1] == q.split(".")[0] + ".Q" + ".".join(q.split(".")[1:]).replace(".", "P") + "R0"
                           for f in got) for q in qids)
        check("batch_files_named_after_queue_ids", names_ok, repr(got[:2]))
        ls.close()
        if shutil.which("strace"):
            with open(trace) as f:
                lines = f.read().splitlines()
            newsyncs = [x for x in lines if "Maildir/new>" in x and "fsync(" in x]
            filesyncs = [x for x in lines if "Maildir/tmp/" in x and "fsync(" in x]
            check("batch_one_fsync_of_new", len(newsyncs) == 1 and len(filesyncs) == n,
                  "%d fsyncs of new/, %d of files: %r" % (len(newsyncs), len(filesyncs), lines[:12]))
        else:
            info("strace not installed: the fsync count is not checked")

        # 2. one failing message in a batch fails alone
        with open(r.path("home", "bob", ".qmail"), "w") as f:
            f.write("|if grep -q FAILME; then echo refused by the program; exit 100; fi\n./Maildir/\n")
        os.chown(r.path("home", "bob", ".qmail"), r.uid, r.gid)
        bq = [queue(r, b"Subject: b%d\n\n%s\n" % (i, b"FAILME" if i == 1 else b"fine"), ("bob@example.test",))
              for i in range(3)]
        ls = Lspawn(r)
        ls.send_batch(2, "bob@example.test", [(q, "s@example.org", 4096, 0, False) for q in bq])
        res = ls.results(3, timeout=20)
        check("batch_failure_alone", [x[:2] for x in res] == [(2, 0), (2, 100), (2, 0)]
              and "refused by the program" in res[1][2] and len(files(r, "bob", "new")) == 2, repr(res))

        # 3. redelivery with check: the earlier copy, no second file
        ls.send_batch(3, "carol@example.test", [(qids[0], "s@example.org", 4096, 2, False)])
        res = ls.results(1)
        first = files(r, "carol", "new")
        ls.send_batch(4, "carol@example.test", [(qids[0], "s@example.org", 4096, 2, True)])
        res += ls.results(1)
        check("redelivery_finds_copy_in_new", [x[:2] for x in res] == [(3, 0), (4, 0)] and len(first) == 1
              and files(r, "carol", "new") == first, "%r %r" % (res, files(r, "carol", "new")))
        os.rename(r.path("home", "carol", "Maildir", "new", first[0]),
                  r.path("home", "carol", "Maildir", "cur", first[0] + ":2,S"))
        ls.send_batch(5, "carol@example.test", [(qids[0], "s@example.org", 4096, 2, True),
                                                (qids[1], "s@example.org", 4096, 2, True)])
        res = ls.results(2)
        check("redelivery_finds_copy_in_cur", [x[:2] for x in res] == [(5, 0), (5, 0)]
              and files(r, "carol", "cur") == [first[0] + ":2,S"] and len(files(r, "carol", "new")) == 1,
              "%r new=%r cur=%r" % (res, files(r, "carol", "new"), files(r, "carol", "cur")))
        ls.close()
        with open(r.path("lspawn.log"), "rb") as f:
            log = f.read().decode(errors="replace")
        check("redelivery_logged", "earlier=1" in log, log[-400:])

        # 4. end to end: qmgr recovers a message whose delivery was done
        #    but not recorded (as after a kill between the two)
        q = queue(r, b"Subject: recovered\n\nx\n", ("carol@example.test", "bob@example.test"))
        ls = Lspawn(r)
        ls.send_batch(6, "carol@example.test", [(q, "sender@example.org", 4096, 0, False)])
        res = ls.results(1)
        ls.close()
        before = len(files(r, "carol", "new"))
        for x in os.listdir(r.path("queue", "cur")):
            if x != q:
                os.unlink(r.path("queue", "cur", x))
        r.start_qmgr()
        ok = r.wait_empty(20)
        r.stop_qmgr()
        log = r.log()
        check("recovery_no_second_copy", res and res[0][1] == 0 and ok and len(files(r, "carol", "new")) == before
              and len(files(r, "bob", "new")) == 3, "%r empty=%r carol %d -> %d\n%s"
              % (res, ok, before, len(files(r, "carol", "new")), log[-800:]))
        r.check_sanitizer("batch")


run(main)
