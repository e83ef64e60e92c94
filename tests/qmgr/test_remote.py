#!/usr/bin/env python3
"""yubin-qmgr's remote channel: yubin-qmgr + yubin-lspawn (fake yubin-local)
+ yubin-rspawn (the real SMTP client) against a fake SMTP server in this
process, reached through control/smtproutes.  Remote delivery and the D
state, 4xx then 250 on SIGALRM, 5xx bounced, local + remote in one message,
connection reuse, concurrencyremote, a dead destination backed off, the
spawner's uid, and a SIGKILL of yubin-rspawn."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import qmgrtest  # noqa: E402
from yubintest import check, info, run  # noqa: E402

RUID = 65534


class Smtp:
    """A fake SMTP server on 127.0.0.1.  Recipients: "perm..." get 550,
    "later..." 451 the first time and 250 after, others 250.  Counts
    connections, and the transactions (MAIL to the end of DATA) running at
    once."""

    def __init__(self, delay=0.0, mode="ok"):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.delay = delay
        self.mode = mode            # "ok", or "dead": accept and close at once
        self.lock = threading.Lock()
        self.connections = 0
        self.active = 0
        self.maxactive = 0
        self.messages = []          # (sender, [rcpts], data)
        self.seen = set()
        self.stopped = False
        self.t = threading.Thread(target=self.serve, daemon=True)
        self.t.start()

    def serve(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            if self.mode == "dead":
                c.close()
                continue
            threading.Thread(target=self.session, args=(c,), daemon=True).start()

    def session(self, c):
        c.settimeout(30)
        # replies to pipelined commands go at once (no Nagle + delayed ACK stall)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = c.makefile("rb")

        def say(s):
            c.sendall(s.encode() + b"\r\n")
        try:
            say("220 fake.test ESMTP")
            sender, rcpts, intx = None, [], False
            while True:
                line = f.readline()
                if not line:
                    break
                cmd = line.decode(errors="replace").rstrip("\r\n")
                up = cmd.upper()
                if up.startswith("EHLO"):
                    say("250-fake.test\r\n250-PIPELINING\r\n250 8BITMIME")
                elif up.startswith("HELO"):
                    say("250 fake.test")
                elif up.startswith("MAIL FROM:"):
                    sender, rcpts = re.sub(r"^<|>.*$", "", cmd[10:].strip()), []
                    if not intx:
                        intx = True
                        with self.lock:
                            self.active += 1
                            self.maxactive = max(self.maxactive, self.active)
                    say("250 ok")
                elif up.startswith("RCPT TO:"):
                    a = re.sub(r"^<|>.*$", "", cmd[8:].strip())
                    local = a.split("@")[0]
                    if local.startswith("perm"):
                        say("550 5.1.1 no such user here")
                    elif local.startswith("later") and a not in self.seen:
                        self.seen.add(a)
                        say("451 4.3.0 try again later")
                    else:
                        rcpts.append(a)
                        say("250 ok")
                elif up == "DATA":
                    if not rcpts:
                        say("503 no valid recipients")
                        continue
                    say("354 go ahead")
                    data = b""
                    while True:
                        dl = f.readline()
                        if not dl or dl == b".\r\n":
                            break
                        data += dl
                    if self.delay:
                        time.sleep(self.delay)
                    with self.lock:
                        self.messages.append((sender, rcpts, data))
                        if intx:
                            self.active -= 1
                    intx = False
                    say("250 ok queued")
                elif up == "RSET":
                    if intx:
                        with self.lock:
                            self.active -= 1
                        intx = False
                    say("250 ok")
                elif up == "NOOP":
                    say("250 ok")
                elif up == "QUIT":
                    say("221 bye")
                    break
                else:
                    say("502 unknown")
        except OSError:
            pass
        finally:
            if intx:
                with self.lock:
                    self.active -= 1
            c.close()

    def got(self, rcpt):
        with self.lock:
            return [m for m in self.messages if rcpt in m[1]]

    def close(self):
        self.stopped = True
        self.sock.close()


class Root(qmgrtest.Root):
    def __init__(self, routes, control=None):
        ctl = {"queueretrybase": "300", "queueretrymax": "600", "remotesessionidle": "5",
               "timeoutconnect": "5", "timeoutremote": "20", "helohost": "sender.test"}
        ctl.update(control or {})
        super().__init__(control=ctl)
        shutil.copy2(os.path.join(self.bin, "yubin-rspawn"), self.path("bin", "yubin-rspawn"))
        self.control("smtproutes", "\n".join(routes))
        self.name = sys._getframe(1).f_code.co_name.replace("test_", "")

    def start_qmgr(self, args=()):
        if self.amroot:
            args = ["-R", "%d:%d" % (RUID, RUID)] + list(args)
        return super().start_qmgr(args)

    def rspawn_pid(self):
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open("/proc/%s/status" % p) as f:
                    st = f.read()
            except OSError:
                continue
            if re.search(r"^Name:\s+yubin-rspawn$", st, re.M) and \
               re.search(r"^PPid:\s+%d$" % self.qmgr.pid, st, re.M):
                return int(p), st
        return None, None

    def __exit__(self, *exc):
        if getattr(self, "qmgr", None) and self.qmgr.poll() is None:
            self.stop_qmgr()
        self.check_sanitizer(self.name)
        return super().__exit__(*exc)


def qfile_states(r):
    """state bytes of the only cur/ file"""
    files = os.listdir(r.path("queue", "cur"))
    if len(files) != 1:
        return None
    with open(r.path("queue", "cur", files[0]), "rb") as f:
        data = f.read(4096)
    env = data[data.index(b"\n") + 1:]
    out = {}
    for rec in env.split(b"\0")[1:]:
        if not rec:
            break
        out[rec[1:].decode()] = chr(rec[0])
    return out


def body(i, tag="r"):
    return b"Subject: %s-%d\nX-Tag: %s-%d\n\npayload %d\n.leading dot\n" % (tag.encode(), i, tag.encode(), i, i)


def started(r, n=1):
    return r.wait(lambda: r.log().count("qmgr: start ") >= n, 10)


def queue_while_stopped(r, items):
    """inject with no qmgr running (it makes the queue layout at its first start)"""
    r.start_qmgr()
    started(r)
    r.stop_qmgr()
    rcs = [r.inject(*it)[0] for it in items]
    check("%s_queued_while_stopped" % r.name, rcs == [0] * len(items), repr(rcs))


def test_deliver():
    s = Smtp()
    with Root(["example.net:[127.0.0.1]:%d" % s.port]) as r:
        r.start_qmgr()
        started(r)
        check("remote_channel_on", "remote=on" in r.log(), r.log()[-300:])
        rc, _ = r.inject("bob@example.test", ["alice@example.test", "x@example.net", "y@example.net"], body(1))
        ok = r.wait(lambda: len(s.got("x@example.net")) == 1 and len(r.got("alice")) == 1, 15)
        check("remote_and_local_delivered", rc == 0 and ok, r.log()[-800:])
        m = s.got("x@example.net")
        check("remote_one_transaction_per_domain", m and sorted(m[0][1]) == ["x@example.net", "y@example.net"]
              and m[0][0] == "bob@example.test", repr(m))
        check("remote_dot_stuffed_and_crlf", m and b"\r\n..leading dot\r\n" in m[0][2] and b"X-Tag: r-1\r\n" in m[0][2],
              repr(m[0][2] if m else None))
        check("remote_done", r.wait_empty(10), repr(r.queue_files()))
        log = r.log()
        check("remote_logged", "to=x@example.net status=ok" in log and "rspawn: delivery id=" in log
              and "ok=2" in log, log[-800:])
        if r.amroot:
            pid, st = r.rspawn_pid()
            uid = re.search(r"^Uid:\s+(\d+)\s+(\d+)", st or "", re.M)
            check("rspawn_not_root", uid and int(uid.group(1)) == RUID and int(uid.group(2)) == RUID,
                  repr(st and st[:300]))
    s.close()


def test_temp_then_sigalrm():
    s = Smtp()
    with Root(["example.net:[127.0.0.1]:%d" % s.port]) as r:
        r.start_qmgr()
        started(r)
        r.inject("bob@example.test", ["later@example.net", "now@example.net"], body(2))
        ok = r.wait(lambda: "to=later@example.net status=defer" in r.log(), 15)
        check("temp_deferred", ok and len(s.got("now@example.net")) == 1 and not s.got("later@example.net"),
              r.log()[-600:])
        time.sleep(0.3)
        check("temp_still_queued", len(r.queue_files()) == 1, repr(r.queue_files()))
        st = qfile_states(r)
        check("temp_states_recorded", st == {"later@example.net": "T", "now@example.net": "D"}, repr(st))
        r.qmgr.send_signal(signal.SIGALRM)
        ok = r.wait(lambda: len(s.got("later@example.net")) == 1 and not r.queue_files(), 15)
        check("temp_sigalrm_retries_now", ok, r.log()[-600:])
        check("temp_no_duplicate", len(s.got("now@example.net")) == 1, "")
    s.close()


def test_perm_bounce():
    s = Smtp()
    with Root(["example.net:[127.0.0.1]:%d" % s.port]) as r:
        r.start_qmgr()
        started(r)
        r.inject("bob@example.test", ["perm1@example.net", "fine@example.net"], body(3, "orig"))
        ok = r.wait(lambda: not r.queue_files() and len(r.got("bob")) == 1, 15)
        check("perm_bounced", ok, r.log()[-800:])
        g = r.got("bob")
        b = g[0] if g else b""
        check("perm_bounce_names_rcpt_and_reply", b"perm1@example.net" in b and b"550" in b, b[:1500])
        check("perm_others_delivered", len(s.got("fine@example.net")) == 1, "")
        check("perm_logged", "to=perm1@example.net status=fail code=100" in r.log(), r.log()[-500:])
    s.close()


def test_reuse():
    s = Smtp()
    with Root(["example.net:[127.0.0.1]:%d" % s.port]) as r:
        # queued together before qmgr runs
        queue_while_stopped(r, [("bob@example.test", ["u%d@example.net" % i], body(i, "re")) for i in range(3)])
        r.start_qmgr()
        ok = r.wait(lambda: len(s.messages) == 3 and not r.queue_files(), 15)
        check("reuse_all_delivered", ok, r.log()[-800:])
        check("reuse_one_connection", s.connections == 1, "connections=%d" % s.connections)
        # more while the session is idle: the same connection
        for i in range(3, 5):
            r.inject("bob@example.test", ["u%d@example.net" % i], body(i, "re"))
        ok = r.wait(lambda: len(s.messages) == 5 and not r.queue_files(), 15)
        check("reuse_idle_session", ok and s.connections == 1, "connections=%d" % s.connections)
        ok = r.wait(lambda: "rspawn: session-close" in r.log(), 10)
        check("reuse_idle_closed", ok, r.log()[-400:])
    s.close()


def test_burst_one_domain():
    s = Smtp()
    n = 100
    with Root(["example.net:[127.0.0.1]:%d" % s.port]) as r:
        r.start_qmgr()
        started(r)
        for i in range(n):
            r.inject("bob@example.test", ["b%d@example.net" % i], body(i, "bu"))
        ok = r.wait(lambda: len(s.messages) >= n and not r.queue_files(), 30)
        time.sleep(0.2)
        got = sorted(m[1][0] for m in s.messages)
        check("burst_each_once", ok and got == sorted("b%d@example.net" % i for i in range(n)), "got %d" % len(got))
        check("burst_sessions_bounded", 1 <= s.connections <= 5, "connections=%d" % s.connections)
        info("burst: %d messages over %d connections" % (n, s.connections))
    s.close()


def test_concurrency():
    s = Smtp(delay=0.4)
    doms = ["d%d.example" % i for i in range(6)]
    with Root([":[127.0.0.1]:%d" % s.port], control={"concurrencyremote": "2"}) as r:
        queue_while_stopped(r, [("bob@example.test", ["u@%s" % d], body(i, "cc")) for i, d in enumerate(doms)])
        r.start_qmgr()
        ok = r.wait(lambda: len(s.messages) == len(doms) and not r.queue_files(), 30)
        check("concurrency_all_delivered", ok, r.log()[-800:])
        check("concurrency_remote_respected", s.maxactive <= 2 and s.maxactive >= 1,
              "max transactions at once=%d connections=%d" % (s.maxactive, s.connections))
        info("concurrency: max transactions", s.maxactive, "connections", s.connections)
    s.close()


def test_dead_destination():
    s = Smtp(mode="dead")
    n = 5
    with Root(["dead.example:[127.0.0.1]:%d" % s.port],
              control={"queueretrybase": "1", "queueretrymax": "2"}) as r:
        queue_while_stopped(r, [("bob@example.test", ["u%d@dead.example" % i], body(i, "dd")) for i in range(n)])
        r.start_qmgr()
        t = 6
        time.sleep(t)
        log = r.log()
        defers = log.count("status=defer")
        check("dead_backoff_logged", "qmgr: backoff domain=dead.example" in log, log[-800:])
        # without a per-destination back-off every message would connect at
        # each of its own retries (about n * 4 attempts in this time)
        check("dead_not_hammered", 1 <= s.connections <= 2 + t, "attempts=%d defers=%d" % (s.connections, defers))
        info("dead destination: connection attempts", s.connections, "deferrals", defers)
        check("dead_all_kept", len(r.queue_files()) == n, repr(r.queue_files()))
        check("dead_reason", "destination:" in log, log[-500:])
    s.close()


def test_rspawn_killed():
    s = Smtp(delay=1.0)
    with Root(["example.net:[127.0.0.1]:%d" % s.port]) as r:
        r.start_qmgr()
        started(r)
        r.inject("bob@example.test", ["k@example.net", "alice@example.test"], body(7, "kk"))
        ok = r.wait(lambda: s.active > 0, 10)
        pid, _ = r.rspawn_pid()
        check("killed_rspawn_found", ok and pid, r.log()[-400:])
        if pid:
            os.kill(pid, signal.SIGKILL)
        try:
            code = r.qmgr.wait(10)
        except subprocess.TimeoutExpired:
            code = None
        check("killed_qmgr_exits_111", code == 111 and re.search("yubin-rspawn (exited|closed its socket)", r.log()), "code=%r %s" % (code, r.log()[-300:]))
        r.start_qmgr()   # what s6 does
        ok = r.wait(lambda: not r.queue_files() and len(s.got("k@example.net")) >= 1, 20)
        check("killed_nothing_lost", ok and len(r.got("alice")) >= 1, r.log()[-600:])
    s.close()


def test_root_without_R():
    if os.geteuid() != 0:
        info("root_without_R: not root, skipped")
        return
    with Root(["example.net:[127.0.0.1]:1"]) as r:
        p = subprocess.run([r.path("bin", "yubin-qmgr"), "-R", "0:0"], env=r.env(), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
        check("R_root_refused", p.returncode == 100 and b"never runs as root" in p.stdout, repr(p.stdout))
        qmgrtest.Root.start_qmgr(r)    # as root, no -R
        started(r)
        log = r.log()
        check("no_R_remote_off", "remote=off" in log and "without\\x20-R" in log, log[-400:])
        pid, _ = r.rspawn_pid()
        check("no_R_no_spawner", pid is None, repr(pid))
        r.inject("bob@example.test", ["x@example.net"], body(9))
        ok = r.wait(lambda: "to=x@example.net status=defer" in r.log(), 10)
        check("no_R_remote_deferred", ok and "reason=remote\\x20delivery\\x20not\\x20available" in r.log(), r.log()[-400:])


def main():
    for t in (test_root_without_R, test_deliver, test_temp_then_sigalrm, test_perm_bounce, test_reuse, test_burst_one_domain,
              test_concurrency,
              test_dead_destination, test_rspawn_killed):
        t0 = time.time()
        t()
        info("%s: %.1fs" % (t.__name__, time.time() - t0))


if __name__ == "__main__":
    run(main)
