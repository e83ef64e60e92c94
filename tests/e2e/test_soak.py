#!/usr/bin/env python3
"""End to end, kill-anywhere: 8 clients send as fast as they can while a
random one of yubin-smtpd / yubin-queue / yubin-queued / yubin-qmgr /
yubin-lspawn (the spawner or one of its delivery children) of the
instance is SIGKILLed every 0.1 s.  Then every acknowledged message must
be in the Maildir exactly once: the Maildir files are named after the
queue id and the recipient, and a delivery whose outcome qmgr did not
record (in flight at a kill) looks for its earlier copy first
(qmgr/README, "Exactly once").

Prints accepted / delivered once / duplicated / lost.  FAIL on any lost
or duplicated message.  A few seconds by default; YUBIN_SOAK=1 (make
soak): 60 s.  YUBIN_SOAK_SECONDS overrides the duration."""

import os
import random
import signal
import smtplib
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from yubintest import Instance, check, info, run  # noqa: E402

SOAK = bool(os.environ.get("YUBIN_SOAK"))
SECONDS = float(os.environ.get("YUBIN_SOAK_SECONDS", "60" if SOAK else "5"))
CLIENTS = 8
KILL_EVERY = 0.1
VICTIMS = ("yubin-smtpd", "yubin-queue", "yubin-queued", "yubin-qmgr", "yubin-lspawn")


def body(i):
    return b"Subject: soak-%d\r\nMessage-ID: <soak-%d@example.org>\r\n\r\npayload %d\r\n" % (i, i, i)


class Clients:
    def __init__(self, inst, stop_at):
        self.inst, self.stop_at = inst, stop_at
        self.lock = threading.Lock()
        self.next = 0
        self.acked, self.tried, self.errors = set(), set(), 0

    def take(self):
        with self.lock:
            i = self.next
            self.next += 1
            self.tried.add(i)
            return i

    def client(self):
        s = None
        while time.monotonic() < self.stop_at:
            i = self.take()
            try:
                if s is None:
                    s = smtplib.SMTP(self.inst.ip, self.inst.smtp_port, timeout=15)
                s.sendmail("soak@example.org", ["demo@" + self.inst.domain], body(i))
                with self.lock:
                    self.acked.add(i)
            except (smtplib.SMTPException, OSError):
                with self.lock:
                    self.errors += 1
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass
                s = None
                time.sleep(0.01)
        if s is not None:
            try:
                s.quit()
            except (smtplib.SMTPException, OSError):
                pass


def victims(inst):
    out = []
    for pid, exe, cwd, cmd in inst.processes():
        try:
            with open("/proc/%d/comm" % pid) as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm in VICTIMS:
            out.append((pid, comm))
    return out


def delivered(inst):
    seen = {}
    for sub in ("new", "cur"):
        for p in inst.messages(sub=sub):
            try:
                d = inst.read(p)
            except OSError:
                continue
            for line in d.split(b"\n"):
                if line.startswith(b"Subject: soak-"):
                    n = int(line[len(b"Subject: soak-"):])
                    seen[n] = seen.get(n, 0) + 1
                    break
    return seen


def main():
    rnd = random.Random(int(os.environ.get("YUBIN_SEED", "0")) or None)
    with Instance() as inst:
        for k, v in (("queueretrybase", "1"), ("queueretrymax", "2")):
            with open(inst.path("control", k), "w") as f:
                f.write(v + "\n")
        inst.svc("qmgr", "-h")
        t0 = time.monotonic()
        cl = Clients(inst, t0 + SECONDS)
        threads = [threading.Thread(target=cl.client, daemon=True) for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        kills = {}
        while time.monotonic() < t0 + SECONDS:
            time.sleep(KILL_EVERY)
            v = victims(inst)
            if not v:
                continue
            pid, comm = rnd.choice(v)
            try:
                os.kill(pid, signal.SIGKILL)
                kills[comm] = kills.get(comm, 0) + 1
            except OSError:
                pass
        for t in threads:
            t.join(30)
        alive = [t for t in threads if t.is_alive()]
        info("sent for %.1fs: %d tried, %d acknowledged, %d refused or cut; kills %s"
             % (time.monotonic() - t0, len(cl.tried), len(cl.acked), cl.errors,
                " ".join("%s=%d" % kv for kv in sorted(kills.items()))))
        check("soak-clients-done", not alive, "%d clients still running" % len(alive))
        check("soak-something-acknowledged", len(cl.acked) >= 20, "only %d acknowledged" % len(cl.acked))
        check("soak-kills", sum(kills.values()) >= SECONDS / KILL_EVERY / 3, repr(kills))
        # everything acknowledged must arrive: retry all now and then
        deadline = time.monotonic() + 120
        seen = delivered(inst)
        while not cl.acked <= set(seen) and time.monotonic() < deadline:
            try:
                inst.wait_up("qmgr", time.monotonic() + 5)
                inst.svc("qmgr", "-a")
            except Exception:
                pass
            time.sleep(1)
            seen = delivered(inst)
        # the queue empties (late copies would show up before that); files
        # that a killed yubin-queue left in tmp/ wait for the daily clean-up
        def queued():
            return [f for f in inst.queue_messages()
                    if os.path.relpath(f, inst.path("queue")).split("/")[0] in ("new", "cur")]
        deadline = time.monotonic() + 60
        while queued() and time.monotonic() < deadline:
            time.sleep(0.2)
        seen = delivered(inst)
        once = sum(1 for i in cl.acked if seen.get(i) == 1)
        dup = sorted(i for i, n in seen.items() if n > 1)
        lost = sorted(cl.acked - set(seen))
        unacked = sorted(set(seen) - cl.acked)
        info("accepted %d / delivered once %d / duplicated %d / lost %d (delivered but not acknowledged: %d)"
             % (len(cl.acked), once, len(dup), len(lost), len(unacked)))
        if lost or dup:
            inst.dump_logs(60)
        check("soak-none-lost", not lost, "%d lost, e.g. %r" % (len(lost), lost[:10]))
        check("soak-no-duplicate", not dup, "%d duplicated, e.g. %r" % (len(dup), dup[:10]))
        check("soak-nothing-unsent-delivered", set(seen) <= cl.tried, repr(sorted(set(seen) - cl.tried)[:10]))
        check("soak-queue-empty-after", not queued(), repr(queued()[:5]))


if __name__ == "__main__":
    run(main)
