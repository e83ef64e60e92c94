#!/usr/bin/env python3
"""yubin-banwatch as a daemon: files followed with inotify (rotation,
truncation, byte-at-a-time writers), stdin, the tcprules deny list and its
cdb, the exec hook, the journal across restarts, yubin-banctl."""

import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from bwlib import BANCTL, Daemon, Root, denied  # noqa: E402
from yubintest import check, info, run, wait_for  # noqa: E402

CONF = """
[action deny]
type = tcprules
cdb = control/tcp.smtp.cdb
rules = control/tcp.smtp

[jail yubin]
filter = yubin-auth
logpath = log/smtpd/current
maxretry = %(maxretry)d
findtime = %(findtime)s
bantime = %(bantime)s
action = deny
"""


def conf(maxretry=3, findtime="60s", bantime="60s", extra=""):
    return CONF % {"maxretry": maxretry, "findtime": findtime, "bantime": bantime} + extra


def fail(ip, user="alice"):
    return "smtpd: auth-fail ip=%s user=%s mech=PLAIN\n" % (ip, user)


def append(root, rel, text):
    with open(root.path(rel), "ab") as f:
        f.write(text.encode() if isinstance(text, str) else text)


def finish(name, d):
    rc, bad = d.stop()
    check(name + "-clean-exit", rc == 0 and not bad, "exit %s %s" % (rc, bad or d.stderr()[-500:]))


def t_file_ban_and_expiry():
    with Root(conf(bantime="2s")) as r:
        r.write("control/tcp.smtp", '127.0.0.1:allow,RELAYCLIENT=""\n')
        r.write("log/smtpd/current", "")
        d = Daemon(r)
        # the cdb exists at start, with the operator's rules
        ok = wait_for(lambda: os.path.exists(r.path("control/tcp.smtp.cdb")), 5)
        check("daemon-cdb-built-at-start", ok and not denied(r, "192.0.2.10"), r.read("banwatch/deny.rules"))
        append(r, "log/smtpd/current", fail("192.0.2.10") * 2)
        time.sleep(0.3)
        check("daemon-below-maxretry", not denied(r, "192.0.2.10") and d.bans() == [], d.bans())
        t0 = time.time()
        append(r, "log/smtpd/current", fail("192.0.2.10"))
        ok = wait_for(lambda: denied(r, "192.0.2.10"), 5, 0.002)
        lat = time.time() - t0
        info("ban latency through tcprulescheck: %.1f ms" % (lat * 1000))
        check("daemon-file-ban-in-cdb", ok, r.read("banwatch/deny.rules") + d.stderr())
        check("daemon-operator-rules-kept", 'RELAYCLIENT' in r.read("banwatch/deny.rules") and not denied(r, "192.0.2.11"),
              r.read("banwatch/deny.rules"))
        check("daemon-banctl-list", d.bans() == ["192.0.2.10"], d.ctl("list"))
        ok = wait_for(lambda: not denied(r, "192.0.2.10"), 6, 0.05)
        check("daemon-bantime-unbans", ok and d.bans() == [], "%r %s" % (d.bans(), r.read("banwatch/deny.rules")))
        check("daemon-unban-logged", "unban ip=192.0.2.10 jail=yubin" in d.stderr(), d.stderr())
        # the operator edits control/tcp.smtp: the cdb follows
        r.write("control/tcp.smtp", '127.0.0.1:allow,RELAYCLIENT=""\n192.0.2.12:deny\n')
        check("daemon-operator-rules-followed", wait_for(lambda: denied(r, "192.0.2.12"), 5), r.read("banwatch/deny.rules"))
        finish("daemon-file", d)


def t_stdin():
    with Root(conf(extra="logpath = -\n")) as r:
        rfd, wfd = os.pipe()
        d = Daemon(r, stdin=rfd)
        os.close(rfd)
        os.write(wfd, fail("198.51.100.20").encode() * 3)
        ok = wait_for(lambda: "198.51.100.20" in (d.bans() or []), 5)
        check("daemon-stdin-ban", ok, d.stderr())
        # stdin closing is not the end: files and the socket go on
        os.close(wfd)
        time.sleep(0.2)
        check("daemon-stdin-eof-keeps-running", d.alive() and d.ctl("stats")[0] == 0, d.stderr())
        finish("daemon-stdin", d)


def t_byte_at_a_time():
    with Root(conf()) as r:
        r.write("log/smtpd/current", "")
        d = Daemon(r)
        f = open(r.path("log/smtpd/current"), "ab", buffering=0)
        line = (fail("203.0.113.30") * 3).encode()
        for i in range(len(line)):
            f.write(line[i:i + 1])
            if i % 7 == 0:
                time.sleep(0.001)
        f.close()
        ok = wait_for(lambda: d.bans() == ["203.0.113.30"], 5)
        st = d.stats()
        check("daemon-byte-at-a-time", ok and st.get("lines") == "3", "bans=%r stats=%r" % (d.bans(), st))
        finish("daemon-bytes", d)


def t_rotation_rename():
    with Root(conf(maxretry=6)) as r:
        r.write("log/smtpd/current", "")
        d = Daemon(r)
        cur = r.path("log/smtpd/current")
        w = open(cur, "ab", buffering=0)
        w.write(fail("192.0.2.40").encode() * 2)
        time.sleep(0.1)
        # rotate: rename, the writer keeps appending to the old file...
        os.rename(cur, r.path("log/smtpd/current.1"))
        w.write(fail("192.0.2.40").encode())
        time.sleep(0.1)
        # ...a new file appears, and the old writer still writes a line
        n = open(cur, "ab", buffering=0)
        n.write(fail("192.0.2.40").encode())
        w.write(fail("192.0.2.40").encode())
        w.close()
        time.sleep(0.1)
        check("daemon-rotation-not-yet", d.bans() == [], d.bans())
        n.write(fail("192.0.2.40").encode())
        n.close()
        ok = wait_for(lambda: d.bans() == ["192.0.2.40"], 5)
        st = d.stats()
        check("daemon-rotation-rename-no-line-lost", ok and st.get("lines") == "6", "bans=%r stats=%r %s" % (d.bans(), st, d.stderr()))
        check("daemon-rotation-logged", "rotated path=" in d.stderr(), d.stderr())
        # s6-log style: current renamed to @stamp.s, a new current
        os.rename(cur, r.path("log/smtpd/@400000006b0a913e08f80f3e.s"))
        open(cur, "wb").close()
        append(r, "log/smtpd/current", fail("192.0.2.41") * 6)
        ok = wait_for(lambda: "192.0.2.41" in (d.bans() or []), 5)
        check("daemon-rotation-s6log", ok, "bans=%r %s" % (d.bans(), d.stderr()))
        finish("daemon-rotation", d)


def t_truncation():
    with Root(conf(maxretry=5)) as r:
        cur = "log/smtpd/current"
        r.write(cur, "")
        d = Daemon(r)
        append(r, cur, fail("192.0.2.50", "x" * 200) * 2)
        wait_for(lambda: d.stats().get("lines") == "2", 5)
        # copytruncate, and the file has grown past the old offset before
        # banwatch looks again
        d.p.send_signal(signal.SIGSTOP)
        with open(r.path(cur), "r+b") as f:
            f.truncate(0)
        append(r, cur, fail("192.0.2.50", "y" * 300) * 3)
        d.p.send_signal(signal.SIGCONT)
        ok = wait_for(lambda: d.bans() == ["192.0.2.50"], 5)
        st = d.stats()
        check("daemon-truncation-regrown-no-line-lost", ok and st.get("lines") == "5", "bans=%r stats=%r %s" % (d.bans(), st, d.stderr()))
        # plain truncation to a shorter file
        with open(r.path(cur), "r+b") as f:
            f.truncate(0)
        append(r, cur, fail("192.0.2.51") * 5)
        ok = wait_for(lambda: "192.0.2.51" in (d.bans() or []), 5)
        check("daemon-truncation-shorter", ok, "bans=%r %s" % (d.bans(), d.stderr()))
        # a writer without O_APPEND leaves a hole of NULs before its line
        with open(r.path(cur), "r+b") as f:
            f.truncate(0)
        with open(r.path(cur), "r+b") as f:
            f.seek(4000)
            f.write(fail("192.0.2.52").encode() * 5)
        ok = wait_for(lambda: "192.0.2.52" in (d.bans() or []), 5)
        check("daemon-truncation-hole", ok, "bans=%r %s" % (d.bans(), d.stderr()))
        finish("daemon-truncation", d)


def t_restart():
    with Root(conf(bantime="1h", maxretry=3)) as r:
        cur = "log/smtpd/current"
        r.write(cur, "")
        d = Daemon(r)
        append(r, cur, fail("203.0.113.60") * 3)
        ok = wait_for(lambda: d.bans() == ["203.0.113.60"], 5)
        append(r, cur, fail("203.0.113.61") * 2)
        wait_for(lambda: d.stats().get("lines") == "5", 5)
        rc, bad = d.stop()
        check("daemon-restart-stopped", ok and rc == 0 and not bad, "%s %s" % (rc, bad))
        # lines written while banwatch is down are read on start, from the
        # saved position (one more failure completes 203.0.113.61)
        append(r, cur, fail("203.0.113.61"))
        os.unlink(r.path("control/tcp.smtp.cdb"))
        d = Daemon(r)
        ok = wait_for(lambda: sorted(d.bans() or []) == ["203.0.113.60", "203.0.113.61"], 5)
        check("daemon-restart-keeps-bans", ok, "bans=%r journal=%s" % (d.bans(), r.read("banwatch/journal")))
        check("daemon-restart-reapplied", wait_for(lambda: denied(r, "203.0.113.60"), 5), r.read("banwatch/deny.rules"))
        left = [l for l in d.ctl("list")[1].splitlines() if l.startswith("203.0.113.60 ")]
        check("daemon-restart-keeps-expiry", left and "left=3" in left[0], left)
        # rotated while down: the rest of the old file is read too
        rc, bad = d.stop()
        append(r, cur, fail("203.0.113.62") * 2)
        os.rename(r.path(cur), r.path("log/smtpd/@4000.s"))
        r.write(cur, fail("203.0.113.62"))
        d = Daemon(r)
        ok = wait_for(lambda: "203.0.113.62" in (d.bans() or []), 5)
        check("daemon-restart-after-rotation", ok, "bans=%r %s" % (d.bans(), d.stderr()))
        # unban, restart: stays unbanned
        rc, out, err = d.ctl("unban", "203.0.113.60")
        check("daemon-banctl-unban", rc == 0 and "unbanned 1" in out and wait_for(lambda: not denied(r, "203.0.113.60"), 5), out + err)
        rc, bad = d.stop()
        d = Daemon(r)
        check("daemon-restart-unban-kept", "203.0.113.60" not in (d.bans() or []), d.bans())
        finish("daemon-restart", d)


def t_banctl():
    with Root(conf(extra="[jail other]\nfilter = yubin-auth\nlogpath = log/x\nbantime = 5m\naction = deny\n")) as r:
        d = Daemon(r)
        rc, out, err = d.ctl("ban", "192.0.2.70")
        check("banctl-ban", rc == 0 and "banned 192.0.2.70 jail=manual" in out and wait_for(lambda: denied(r, "192.0.2.70"), 5), out + err)
        rc, out, err = d.ctl("ban", "2001:db8:70::/48", "other")
        check("banctl-ban-jail-prefix", rc == 0 and "for 300s" in out and wait_for(lambda: denied(r, "2001:db8:70:1::5"), 5),
              out + err + r.read("banwatch/deny.rules"))
        rc, out, err = d.ctl("ban", "192.0.2.71", "90s")
        check("banctl-ban-duration", rc == 0 and "for 90s" in out, out + err)
        rc, out, err = d.ctl("list")
        check("banctl-list", rc == 0 and len(out.splitlines()) == 3 and "jail=other" in out, out)
        rc, out, err = d.ctl("jails")
        check("banctl-jails", rc == 0 and out.startswith("yubin filter=yubin-auth") and "other " in out, out)
        rc, out, err = d.ctl("unban", "2001:db8:70:1::5")
        check("banctl-unban-inside-prefix", rc == 0 and wait_for(lambda: not denied(r, "2001:db8:70:1::5"), 5), out + err)
        rc, out, err = d.ctl("unban", "192.0.2.99")
        check("banctl-unban-not-banned", rc == 1 and "not banned" in err, "%d %s %s" % (rc, out, err))
        rc, out, err = d.ctl("ban", "not-an-ip")
        check("banctl-bad-address", rc == 1 and "bad address" in err, "%d %s" % (rc, err))
        rc, out, err = d.ctl("ban", "10.0.0.0/4")
        check("banctl-too-wide", rc == 1, "%d %s" % (rc, err))
        rc, out, err = d.ctl("ban", "192.0.2.72", "nosuchjail")
        check("banctl-unknown-jail", rc == 1, "%d %s" % (rc, err))
        rc, out, err = d.ctl("frobnicate")
        check("banctl-usage", rc == 100, "%d %s" % (rc, err))
        # many clients at once, one of them silent: the others are served
        import socket
        silent = socket.socket(socket.AF_UNIX)
        silent.connect(r.path("banwatch/control"))
        procs = [subprocess.Popen([BANCTL, "stats"], env=r.env, stdout=subprocess.PIPE) for _ in range(10)]
        outs = [p.communicate(timeout=10)[0] for p in procs]
        check("banctl-concurrent", all(p.returncode == 0 for p in procs) and all(o.startswith(b"lines=") for o in outs), outs[:2])
        silent.close()
        finish("banctl", d)
        rc, out, err = subprocess.run([BANCTL, "list"], env=r.env, capture_output=True).returncode, "", ""
        check("banctl-no-daemon", rc == 111, rc)


def t_hook():
    with Root(conf(extra="[action hook]\ntype = exec\ncommand = %s\n")) as r:
        script = r.write("hook.sh", "#!/bin/sh\necho \"$* $BANWATCH_EVENT $BANWATCH_ADDR $BANWATCH_JAIL\" >> %s\n" % r.path("hook.log"))
        os.chmod(script, 0o755)
        r.write("banwatch/banwatch.conf", r.read("banwatch/banwatch.conf").replace("command = %s", "command = " + script)
                .replace("action = deny", "action = deny hook"))
        r.write("log/smtpd/current", "")
        d = Daemon(r)
        append(r, "log/smtpd/current", fail("198.51.100.80") * 3)
        ok = wait_for(lambda: "ban 198.51.100.80 yubin 60 ban 198.51.100.80 yubin" in r.read("hook.log"), 5)
        check("daemon-exec-hook-ban", ok, r.read("hook.log") + d.stderr())
        d.ctl("unban", "198.51.100.80")
        ok = wait_for(lambda: "unban 198.51.100.80 yubin 0" in r.read("hook.log"), 5)
        check("daemon-exec-hook-unban", ok, r.read("hook.log"))
        finish("daemon-hook", d)


def t_hostile():
    with Root(conf(maxretry=3)) as r:
        cur = "log/smtpd/current"
        r.write(cur, "")
        d = Daemon(r)
        data = b""
        for i in range(3):
            data += b"z" * 100000 + b" " + fail("198.51.100.90").encode()
            data += fail("198.51.100.91").encode().replace(b"user=", b"user=\0")
            data += b"smtpd: auth-fail user=x\\x20ip\\x3d192.0.2.1 ip=203.0.113.9 mech=PLAIN\n"
            data += b"smtpd: auth-fail ip=192.0.2.2 user=x ip=192.0.2.3\n"
        append(r, cur, data + os.urandom(50000) + b"\n")
        ok = wait_for(lambda: d.bans() == ["203.0.113.9"], 5)
        time.sleep(0.2)
        check("daemon-hostile-right-address-only", ok and d.bans() == ["203.0.113.9"], "bans=%r" % d.bans())
        check("daemon-hostile-alive", d.alive() and d.ctl("stats")[0] == 0, d.stderr()[-500:])
        finish("daemon-hostile", d)


def t_late_file():
    with Root(conf(maxretry=2)) as r:
        # the file does not exist yet; its directory does
        d = Daemon(r)
        os.makedirs(r.path("log/smtpd"), exist_ok=True)
        r.write("log/smtpd/current", fail("192.0.2.100") * 2)
        ok = wait_for(lambda: d.bans() == ["192.0.2.100"], 8)
        check("daemon-file-created-later", ok, "bans=%r %s" % (d.bans(), d.stderr()))
        finish("daemon-late", d)


def main():
    t_file_ban_and_expiry()
    t_stdin()
    t_byte_at_a_time()
    t_rotation_rename()
    t_truncation()
    t_restart()
    t_banctl()
    t_hook()
    t_hostile()
    t_late_file()


run(main)
