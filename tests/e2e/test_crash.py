#!/usr/bin/env python3
"""End to end: yubin-qmgr killed with SIGKILL (s6-svc -k) again and again
during a burst of messages from several parallel clients loses none of the
acknowledged ones.  A message may be delivered twice only in the documented
window (a delivery done but not yet recorded when the manager died), so
duplicates are bounded by kills x concurrent deliveries.

YUBIN_SOAK=1 sends 2000 messages in 40 waves instead of 200 in 6."""

import hashlib
import os
import random
import re
import smtplib
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from yubintest import Instance, check, info, run  # noqa: E402

SOAK = bool(os.environ.get("YUBIN_SOAK"))
TOTAL = 2000 if SOAK else 200
WAVES = 40 if SOAK else 6
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
                s.close()
                s = None
        except (smtplib.SMTPException, OSError) as e:
            with lock:
                errors.append("%d: %r" % (i, e))
            if s is not None:
                s.close()
            s = None
    if s is not None:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            pass


def main():
    with Instance() as inst:
        acked, errors, lock = set(), [], threading.Lock()
        rnd = random.Random(int(os.environ.get("YUBIN_SEED", "0")) or None)
        kills = 0
        backlog = []  # acknowledged minus delivered, at each kill
        alive = []
        t0 = time.monotonic()
        deadline = t0 + 240
        per_wave = TOTAL // WAVES
        # Waves: CLIENTS parallel clients send a wave of messages as fast as
        # they can, and the manager is killed (SIGKILL) at a random moment
        # while the wave is being accepted and delivered.  s6 restarts it
        # (after a second: it had not been up for one), and the next wave
        # starts once it is up again.
        for w in range(WAVES):
            if time.monotonic() >= deadline:
                break
            first = w * per_wave
            last = TOTAL if w == WAVES - 1 else first + per_wave
            try:
                inst.wait_up("qmgr", time.monotonic() + 10)
            except Exception as e:
                info("qmgr not up:", e)
            threads = [threading.Thread(target=sender, daemon=True,
                                        args=(inst, list(range(first + c, last, CLIENTS)), acked, errors, lock))
                       for c in range(CLIENTS)]
            for t in threads:
                t.start()
            time.sleep(rnd.uniform(0.05, 0.5))
            with lock:
                n_acked = len(acked)
            backlog.append(n_acked - len(inst.messages()))
            if inst.service_pid("qmgr"):
                inst.svc("qmgr", "-k")
                kills += 1
            for t in threads:
                t.join(max(1, deadline - time.monotonic()))
            alive += [t for t in threads if t.is_alive()]
        # and once more after the burst, with whatever is still queued
        try:
            inst.wait_up("qmgr", time.monotonic() + 10)
            inst.svc("qmgr", "-k")
            kills += 1
        except Exception as e:
            info("qmgr not up:", e)
        sent_time = time.monotonic() - t0
        info("acknowledged %d/%d in %.1fs, %d kills, %d refusals"
             % (len(acked), TOTAL, sent_time, kills, len(errors)))
        info("backlog (acknowledged - delivered) at each kill:", backlog)
        for e in errors[:10]:
            info("refused:", e)
        check("burst-sent", not alive, "senders still running")
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
        # the manager logs its concurrency at start: "qmgr: start ... concurrency=N"
        m = re.findall(r"qmgr: start .*concurrency=(\d+)", inst.log("qmgr"))
        conc = max([int(x) for x in m] or [10])
        info("duplicates: %d (bound %d = %d kills x %d)" % (dups, kills * conc, kills, conc))
        check("duplicates-within-window", dups <= kills * conc,
              "%d duplicates for %d kills" % (dups, kills))
        unknown = set(seen) - acked - set(int(e.split(":")[0]) for e in errors)
        check("nothing-unsent-delivered", not unknown, "delivered but never sent: %r" % sorted(unknown)[:10])
        # the queue empties: every message done and removed
        deadline = time.monotonic() + 30
        left = inst.queue_messages()
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = inst.queue_messages()
        check("queue-empty-after", not left, "%d files left: %r" % (len(left), left[:5]))
        try:
            inst.wait_up("qmgr", time.monotonic() + 10)
            up = True
        except Exception:
            up = False
        check("qmgr-running-after", up, inst.svstat("qmgr"))


if __name__ == "__main__":
    run(main)
