#!/usr/bin/env python3
"""End to end: yubin-qmgr killed with SIGKILL (s6-svc -k) again and again
during a burst of messages from several parallel clients loses none of the
acknowledged ones.  A message may be delivered twice only in the documented
window (a delivery done but not yet recorded when the manager died), so
duplicates are bounded by kills x concurrent deliveries.

YUBIN_SOAK=1 sends 2000 messages instead of 200."""

import hashlib
import os
import smtplib
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from yubintest import Instance, check, info, run  # noqa: E402

TOTAL = 2000 if os.environ.get("YUBIN_SOAK") else 200
CLIENTS = 8


def body(i):
    h = hashlib.sha256(b"%d" % i).hexdigest().encode()
    return b"\r\n".join([b"Subject: crash-%d" % i, b"Message-ID: <crash-%d@example.org>" % i,
                         b"", b"payload %d" % i, h, h[::-1], b""])


def sender(inst, ids, acked, errors, lock):
    s = None
    for i in ids:
        try:
            if s is None:
                s = smtplib.SMTP(inst.ip, inst.smtp_port, timeout=30)
            s.sendmail("crash@example.org", ["demo@" + inst.domain], body(i))
            with lock:
                acked.add(i)
        except smtplib.SMTPResponseException as e:
            # a temporary refusal is allowed (not acknowledged, not counted)
            with lock:
                errors.append("%d: %d %r" % (i, e.smtp_code, e.smtp_error))
            try:
                s.rset()
            except (smtplib.SMTPException, OSError):
                s = None
        except (smtplib.SMTPException, OSError) as e:
            with lock:
                errors.append("%d: %r" % (i, e))
            s = None
    if s is not None:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            pass


def main():
    with Instance() as inst:
        acked, errors, lock = set(), [], threading.Lock()
        threads = []
        for c in range(CLIENTS):
            ids = list(range(c, TOTAL, CLIENTS))
            t = threading.Thread(target=sender, args=(inst, ids, acked, errors, lock), daemon=True)
            threads.append(t)
        t0 = time.monotonic()
        for t in threads:
            t.start()

        # kill the manager while the burst is running, each time after s6
        # has restarted it and it has had a moment to work
        kills = 0
        deadline = time.monotonic() + 240
        while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
            time.sleep(0.4)
            try:
                inst.wait_up("qmgr", time.monotonic() + 10, min_seconds=0.2)
            except Exception as e:
                info("qmgr not up:", e)
                continue
            inst.svc("qmgr", "-k")
            kills += 1
        for t in threads:
            t.join(max(1, deadline - time.monotonic()))
        # and once more right after the burst, with the queue full
        inst.wait_up("qmgr", time.monotonic() + 10)
        inst.svc("qmgr", "-k")
        kills += 1
        sent_time = time.monotonic() - t0
        info("acknowledged %d/%d in %.1fs, %d kills, %d refusals"
             % (len(acked), TOTAL, sent_time, kills, len(errors)))
        for e in errors[:10]:
            info("refused:", e)
        check("burst-sent", not any(t.is_alive() for t in threads), "senders still running")
        check("burst-mostly-acknowledged", len(acked) >= TOTAL * 0.9,
              "only %d of %d acknowledged" % (len(acked), TOTAL))
        check("qmgr-killed-during-burst", kills >= 3, "only %d kills" % kills)

        def subjects(msgs):
            seen = {}
            for p, d in msgs:
                for line in d.split(b"\n"):
                    if line.startswith(b"Subject: crash-"):
                        n = int(line[len(b"Subject: crash-"):])
                        seen.setdefault(n, []).append(d)
                        break
            return seen

        msgs = inst.wait_for(lambda m: acked <= set(subjects(m)), timeout=120)
        seen = subjects(msgs)
        lost = sorted(acked - set(seen))
        if not check("no-acknowledged-message-lost", not lost,
                     "%d lost, e.g. %r" % (len(lost), lost[:10])):
            inst.dump_logs()
        intact = all(d.endswith(body(n).replace(b"\r\n", b"\n").split(b"\n\n", 1)[1])
                     for n, ds in seen.items() for d in ds)
        check("delivered-messages-intact", intact, "a delivered body differs from what was sent")
        dups = sum(len(v) - 1 for v in seen.values())
        try:
            with open(inst.path("control", "concurrencylocal")) as f:
                conc = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            conc = 10
        info("duplicates: %d (bound %d = %d kills x %d)" % (dups, kills * conc, kills, conc))
        check("duplicates-within-window", dups <= kills * conc,
              "%d duplicates for %d kills" % (dups, kills))
        unknown = set(seen) - acked - set(int(e.split(":")[0]) for e in errors)
        check("nothing-unsent-delivered", not unknown, "delivered but never sent: %r" % sorted(unknown)[:10])
        check("qmgr-running-after", inst.service_pid("qmgr") > 0, inst.svstat("qmgr"))


if __name__ == "__main__":
    run(main)
