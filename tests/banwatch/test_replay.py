#!/usr/bin/env python3
"""banwatch jails, filters and hostile input, through yubin-banwatch -r
(replay: one pass over a log, the clock follows the lines' time stamps,
bans printed instead of applied)."""

import os
import random
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from bwlib import BANWATCH, SHIPPED, Root, authfail, replay, stamp  # noqa: E402
from yubintest import check, run, sanitizer_report  # noqa: E402

T0 = 1795852800  # 2026-11-28 08:00:00 UTC

YUBIN = """
[jail yubin]
filter = yubin-auth
maxretry = 5
findtime = 60
bantime = 30
"""


def banned(bans):
    return [b[0] for b in bans]


def t_maxretry():
    with Root(YUBIN) as r:
        log = "".join(authfail(T0 + i, "192.0.2.1") for i in range(4))
        rc, bans, _, s, err = replay(r, log)
        check("replay-below-maxretry-no-ban", rc == 0 and not bans, "rc=%d bans=%r %s" % (rc, bans, err))
        log += authfail(T0 + 5, "192.0.2.1")
        rc, bans, _, s, err = replay(r, log)
        check("replay-maxretry-within-findtime-bans", rc == 0 and bans == [("192.0.2.1", "yubin", "30s")],
              "rc=%d bans=%r %s" % (rc, bans, err))
        # other programs' auth-fail lines count the same way (pop3d, imapd)
        log = "".join(authfail(T0 + i, "192.0.2.2", prog=("pop3d", "imapd", "smtpd")[i % 3]) for i in range(5))
        rc, bans, _, s, err = replay(r, log)
        check("replay-pop3d-imapd-auth-fail-count", banned(bans) == ["192.0.2.2"], "bans=%r" % bans)
        # other verbs and other keys are not failures
        log = "".join("%ssmtpd: auth-ok ip=192.0.2.3 user=a\n%ssmtpd: connect ip=192.0.2.3\n" % (stamp(T0 + i), stamp(T0 + i))
                      for i in range(10))
        rc, bans, _, s, err = replay(r, log)
        check("replay-other-verbs-ignored", not bans, "bans=%r" % bans)


def t_events():
    conf = """
[jail abuse]
filter = yubin-abuse
maxretry = 2
findtime = 60
bantime = 60
[jail custom]
type = yubin
events = pop3d:reject/reason=bad-command imapd:auth-fail
maxretry = 2
findtime = 60
bantime = 60
"""
    with Root(conf) as r:
        L = lambda t, l: "%s%s\n" % (stamp(T0 + t), l)
        log = (L(0, "smtpd: reject ip=192.0.2.30 cmd=AUTH code=421 reason=too-many-auth-failures")
               + L(1, "smtpd: reject ip=192.0.2.30 cmd=RCPT code=421 reason=too-many-errors")
               + L(2, "smtpd: reject ip=192.0.2.31 cmd=MAIL code=530 reason=auth-required")
               + L(3, "smtpd: reject ip=192.0.2.31 cmd=MAIL code=530 reason=auth-required")
               + L(4, "smtpd: reject ip=192.0.2.32 cmd=x reason=too-many-errorsX")
               + L(5, "smtpd: reject ip=192.0.2.32 cmd=x reason=too-many-errorsX")
               + L(6, "pop3d: reject ip=192.0.2.33 reason=bad-command")
               + L(7, "pop3d: reject ip=192.0.2.33 reason=bad-command")
               + L(8, "smtpd: reject ip=192.0.2.34 reason=bad-command")
               + L(9, "smtpd: reject ip=192.0.2.34 reason=bad-command")
               + L(10, "imapd: auth-fail ip=192.0.2.35 user=x")
               + L(11, "imapd: auth-fail ip=192.0.2.35 user=x"))
        rc, bans, _, s, err = replay(r, log)
        got = sorted((b[0], b[1]) for b in bans)
        want = [("192.0.2.30", "abuse"), ("192.0.2.33", "custom"), ("192.0.2.35", "custom")]
        check("replay-yubin-abuse-and-events", rc == 0 and got == want, "bans=%r %s" % (bans, err))
        # TLS handshakes that never complete hold a connection slot each:
        # yubin-abuse counts them (one is not enough: maxretry 2 here)
        log = (L(0, "tlsd: handshake-fail ip=192.0.2.40 reason=timeout")
               + L(1, "tlsd: handshake-fail ip=192.0.2.40 reason=wrong-version")
               + L(2, "tlsd: handshake-fail ip=192.0.2.41 reason=timeout"))
        rc, bans, _, s, err = replay(r, log)
        got = sorted((b[0], b[1]) for b in bans)
        check("replay-yubin-abuse-handshake-fail", rc == 0 and got == [("192.0.2.40", "abuse")],
              "bans=%r %s" % (bans, err))


def t_window():
    conf = """
[jail w]
filter = yubin-auth
maxretry = 3
findtime = 10s
bantime = 1h
"""
    with Root(conf) as r:
        # 3 failures every 6 s: any 3 consecutive span 12 s > findtime.
        # (A rate estimate such as fail2ban's would ban this address.)
        times = [0, 6, 12, 18, 24, 30, 36, 42]
        log = "".join(authfail(T0 + t, "198.51.100.1") for t in times)
        rc, bans, _, s, err = replay(r, log)
        check("replay-sliding-window-spread-no-ban", rc == 0 and not bans, "bans=%r %s" % (bans, err))
        # 36, 42, 50 span 14 s: still no ban; then 42, 50, 51 span 9 s
        log += authfail(T0 + 50, "198.51.100.1")
        rc, bans, _, s, err = replay(r, log)
        check("replay-sliding-window-no-ban-yet", not bans, "bans=%r" % bans)
        log += authfail(T0 + 51, "198.51.100.1")
        rc, bans, _, s, err = replay(r, log + authfail(T0 + 45, "198.51.100.9"))
        check("replay-sliding-window-burst-bans", banned(bans) == ["198.51.100.1"], "bans=%r" % bans)
        # exactly findtime apart still counts (0, 5, 10)
        log = "".join(authfail(T0 + t, "198.51.100.2") for t in (0, 5, 10))
        rc, bans, _, s, err = replay(r, log)
        check("replay-window-inclusive", banned(bans) == ["198.51.100.2"], "bans=%r" % bans)
        # out-of-order stamps (two sources): the newest maxretry count
        log = "".join(authfail(T0 + t, "198.51.100.3") for t in (100, 80, 101, 102))
        rc, bans, _, s, err = replay(r, log)
        check("replay-window-out-of-order", banned(bans) == ["198.51.100.3"], "bans=%r" % bans)


def t_bantime():
    conf = """
[jail b]
filter = yubin-auth
maxretry = 2
findtime = 60
bantime = 10
bantime.factor = 2
bantime.max = 35
"""
    with Root(conf) as r:
        log = ""
        t = T0
        for k in range(4):
            log += authfail(t, "203.0.113.7") + authfail(t + 1, "203.0.113.7")
            t += 100
        log += authfail(t, "203.0.113.99")
        rc, bans, unbans, s, err = replay(r, log)
        check("replay-bantime-unbans", unbans.count("203.0.113.7") == 4, "unbans=%r" % unbans)
        check("replay-bantime-grows-capped", [b[2] for b in bans] == ["10s", "20s", "35s", "35s"], "bans=%r" % bans)
        # failures during a ban do not extend it or count
        log = "".join(authfail(T0 + i, "203.0.113.8") for i in range(8))
        rc, bans, unbans, s, err = replay(r, log)
        check("replay-no-double-ban", banned(bans) == ["203.0.113.8"], "bans=%r" % bans)


def t_recidive():
    conf = """
[jail a]
filter = yubin-auth
maxretry = 2
findtime = 60
bantime = 5
bantime.factor = 1
[jail recidive]
filter = recidive
maxretry = 3
findtime = 1h
bantime = 1d
"""
    with Root(conf) as r:
        log = ""
        for k in range(3):
            log += authfail(T0 + 20 * k, "192.0.2.50") + authfail(T0 + 20 * k + 1, "192.0.2.50")
        rc, bans, unbans, s, err = replay(r, log)
        check("replay-recidive", bans[-1:] == [("192.0.2.50", "recidive", "86400s")] and len(bans) == 4,
              "bans=%r %s" % (bans, err))


def t_ipv6():
    conf = """
[jail v6]
filter = yubin-auth
maxretry = 4
findtime = 60
bantime = 60
"""
    with Root(conf) as r:
        log = "".join(authfail(T0 + i, "2001:db8:1:2::%x" % (i + 1)) for i in range(4))
        rc, bans, _, s, err = replay(r, log)
        check("replay-ipv6-prefix64-counted", banned(bans) == ["2001:db8:1:2::/64"], "bans=%r %s" % (bans, err))
        log = "".join(authfail(T0 + i, "2001:db8:1:%x::1" % (i + 1)) for i in range(4))
        rc, bans, _, s, err = replay(r, log)
        check("replay-ipv6-other-prefixes-apart", not bans, "bans=%r" % bans)
        log = "".join(authfail(T0 + i, "::ffff:192.0.2.77") for i in range(4))
        rc, bans, _, s, err = replay(r, log)
        check("replay-ipv4-mapped-is-ipv4", banned(bans) == ["192.0.2.77"], "bans=%r" % bans)
    with Root(conf + "prefix6 = 128\nprefix4 = 24\n") as r:
        log = "".join(authfail(T0 + i, "2001:db8:1:2::%x" % (i + 1)) for i in range(4))
        log += "".join(authfail(T0 + i, "10.1.2.%d" % (i + 1)) for i in range(4))
        rc, bans, _, s, err = replay(r, log)
        check("replay-prefix-configurable", banned(bans) == ["10.1.2.0/24"], "bans=%r %s" % (bans, err))


def t_ignoreip():
    conf = """
[global]
ignoreip = 10.0.0.0/8 2001:db8:ffff::/48
[jail i]
filter = yubin-auth
maxretry = 2
findtime = 60
bantime = 60
ignoreip = 192.0.2.128/25, 198.51.100.7
"""
    with Root(conf) as r:
        ips = ["10.9.8.7", "2001:db8:ffff:1::5", "192.0.2.200", "198.51.100.7", "::ffff:10.1.1.1"]
        log = "".join(authfail(T0 + i, ip) for ip in ips for i in range(5))
        log += authfail(T0 + 9, "192.0.2.100") + authfail(T0 + 10, "192.0.2.100")
        rc, bans, _, s, err = replay(r, log)
        check("replay-ignoreip", rc == 0 and banned(bans) == ["192.0.2.100"], "bans=%r %s" % (bans, err))


def t_filters():
    conf = """
[jail sshd]
filter = sshd
maxretry = 3
findtime = 10m
bantime = 1h
[jail postfix]
filter = postfix-sasl
maxretry = 3
findtime = 10m
bantime = 1h
"""
    with Root(conf, shipped_filters=True) as r:
        log = ("Nov 28 08:00:0%d host sshd[99]: Failed password for root from 203.0.113.5 port 5234%d ssh2\n" * 1) 
        lines = []
        for i in range(3):
            lines.append("Nov 28 08:00:0%d host sshd[99]: Failed password for root from 203.0.113.5 port 5234%d ssh2\n" % (i, i))
            lines.append("Nov 28 08:00:1%d host sshd[99]: Invalid user admin%d from 2001:db8:5::1 port 22\n" % (i, i))
            lines.append("Nov 28 08:00:2%d mx postfix/smtpd[7]: warning: unknown[198.51.100.44]: SASL LOGIN authentication failed: authentication failure\n" % i)
            lines.append("Nov 28 08:00:3%d host sshd[99]: Accepted password for bob from 192.0.2.9 port 22 ssh2\n" % i)
        rc, bans, _, s, err = replay(r, "".join(lines))
        got = sorted((b[0], b[1]) for b in bans)
        want = sorted([("203.0.113.5", "sshd"), ("2001:db8:5::/64", "sshd"), ("198.51.100.44", "postfix")])
        check("replay-shipped-sshd-postfix-filters", rc == 0 and got == want, "bans=%r %s" % (bans, err))


def t_hostile():
    conf = """
[jail y]
filter = yubin-auth
maxretry = 3
findtime = 10m
bantime = 1h
[jail sshd]
filter = sshd
maxretry = 3
findtime = 10m
bantime = 1h
"""
    with Root(conf, shipped_filters=True) as r:
        out = []
        t = T0
        for i in range(5):
            t += 1
            # overlong: 100 KB of junk, then what looks like a real line
            out.append(b"x" * 100000 + b" " + authfail(t, "198.51.100.66").encode())
            out.append(("Nov 28 08:00:%02d host sshd[1]: Failed password for root from 198.51.100.67 port 1 ssh2" % i).encode()
                       + b"A" * 100000 + b"\n")
            # NUL bytes inside a line
            out.append(authfail(t, "198.51.100.68").encode().replace(b"user=", b"user=\0"))
            out.append(b"\0" * 10 + authfail(t, "198.51.100.69").encode()[:30] + b"\0" + b"ip=198.51.100.70\n")
            # an IP-looking user name, escaped as ylog writes it
            out.append(("%ssmtpd: auth-fail user=x\\x20ip\\x3d192.0.2.1 ip=203.0.113.9 mech=PLAIN\n" % stamp(t)).encode())
            out.append(("%ssmtpd: auth-fail ip=203.0.113.10 user=x\\x20ip\\x3d192.0.2.1 mech=PLAIN\n" % stamp(t)).encode())
            # two ip= fields: forged, ignored
            out.append(("%ssmtpd: auth-fail ip=192.0.2.2 user=x ip=192.0.2.3\n" % stamp(t)).encode())
            # the classic sshd injection
            out.append(("Nov 28 08:01:%02d host sshd[1]: Failed password for invalid user 1.2.3.4 from 5.6.7.8 port 22 ssh2\n" % i).encode())
            out.append(("Nov 28 08:01:%02d host sshd[1]: Failed password for invalid user x from 1.2.3.5 port 22 from 5.6.7.9 port 22 ssh2\n" % i).encode())
            out.append(("Nov 28 08:01:%02d host sshd[1]: Invalid user 1.2.3.6 from 5.6.7.10 port 22\n" % i).encode())
            out.append(("Nov 28 08:01:%02d host sshd[1]: Failed password for root from 999.8.7.6 port 22 ssh2\n" % i).encode())
        rng = random.Random(7)
        junk = bytes(rng.getrandbits(8) for _ in range(300000))
        data = b"".join(out) + junk + b"\n" + b"\n" * 5 + b"\xff\xfe\r\n"
        rc, bans, _, s, err = replay(r, data)
        got = sorted(banned(bans))
        want = sorted(["203.0.113.9", "203.0.113.10", "5.6.7.8", "5.6.7.9", "5.6.7.10"])
        check("replay-hostile-lines-right-addresses", rc == 0 and got == want,
              "rc=%d bans=%r want %r %s" % (rc, got, want, err[-300:]))
        check("replay-hostile-overlong-counted", int(s.get("overlong", 0)) >= 10, "summary=%r" % s)
        check("replay-hostile-no-crash", rc == 0 and not sanitizer_report(err), err[-500:])
        # the same through a pipe (read in chunks, lines cut across reads)
        rc2, bans2, _, s2, err2 = replay(r, data, pipe=True)
        check("replay-hostile-pipe-same", rc2 == 0 and sorted(banned(bans2)) == got and s2 == s,
              "rc=%d bans=%r summary=%r vs %r %s" % (rc2, banned(bans2), s2, s, err2[-300:]))
        # byte soup only
        rc, bans, _, s, err = replay(r, bytes(rng.getrandbits(8) for _ in range(200000)))
        check("replay-random-bytes", rc == 0 and not bans, "rc=%d %s" % (rc, err[-300:]))


def t_scanner():
    """Replay of a mapped file goes through banwatch/linescan.c (lines,
    NULs and the filter's literal found 64 bytes at a time; lines without
    the literal only move the clock) and a cache of the last 16-byte
    syslog stamp: its whole output must be the same, byte for byte, as
    the same log read through a pipe (line by line, no scanner), and ban
    and unban times must follow every line's stamp."""
    import datetime
    bench = load_bench()
    rng = random.Random(21)
    conf = "[jail p]\nfilter = postfix-sasl\nmaxretry = 3\nfindtime = 10m\nbantime = 5m\n"
    fail = "%s mx postfix/smtpd[7]: warning: unknown[%s]: SASL LOGIN authentication failed: x\n"
    with Root(conf, shipped_filters=True) as r:
        fn = r.path("gen.log")
        bench.gen_postfix(fn, 20000, rng)
        base = open(fn, "rb").read()
        lines = base.splitlines(keepends=True)
        extra = []
        for i in range(300):
            st = "Nov 28 23:%02d:%02d" % (i // 60 % 60, i % 60)
            ip = "192.0.2.%d" % (i % 7 + 1)
            f = (fail % (st, ip)).encode()
            k = i % 10
            if k == 0:   # a NUL in a line with the literal, and in one without
                extra += [f.replace(b"SASL", b"SA\0SL"), b"%s mx postfix/qmgr[1]: \0 removed\n" % st.encode()]
            elif k == 1:   # overlong, the literal in its first bytes
                extra.append(f[:-1] + b"y" * 70000 + b"\n")
            elif k == 2:   # padded so the line ends at every offset of a 64-byte block
                extra.append(f[:-1] + b" " * (i % 64) + b"\n")
            elif k == 3:   # two blanks after the stamp (the cache must not take it)
                extra.append(f.replace(b" mx ", b"  mx ", 1))
            elif k == 4:   # a broken stamp, then the same line with a good one
                extra += [f.replace(st.encode(), (st[:-1] + "x").encode()), f]
            elif k == 5:
                extra += [b"\n", b"\n", b"x\n"]
            else:
                extra.append(f)
        for i, e in enumerate(extra):
            lines.insert(rng.randrange(len(lines)), e)
        data = b"".join(lines)
        for cut in (0, 1, 2, 40, 63, 64, 65, 111, 112, 113, 200):
            # cut inside or right after a failure line: the last line has no newline
            d = data + (fail % ("Nov 29 01:00:00", "192.0.2.99")).encode() * 3
            d = d[:len(d) - cut]
            p = r.write("cut.log", d, mode="w")
            a = subprocess.run([BANWATCH, "-r", p], env=r.env, capture_output=True, timeout=60)
            b = subprocess.run([BANWATCH, "-r", "-"], env=r.env, capture_output=True, timeout=60, input=d)
            ok = a.returncode == 0 and a.stdout == b.stdout and b"matched=" in a.stdout and not sanitizer_report(a.stderr.decode(errors="replace"))
            check("replay-scanner-same-output-as-pipe-cut-%d" % cut, ok,
                  "rc %d/%d, mapped %r... vs pipe %r... %s" % (a.returncode, b.returncode, a.stdout[-300:], b.stdout[-300:],
                                                              a.stderr.decode(errors="replace")[-300:]))
    # ban times across minute, hour and day boundaries (syslog stamps, the
    # year guessed from now: this year unless that is more than a day ahead)
    conf = "[jail p]\nfilter = postfix-sasl\nmaxretry = 2\nfindtime = 10m\nbantime = 1m\n"
    now = datetime.datetime.now(datetime.timezone.utc)
    want, log, n = [], [], 0
    for day, h, m, s in ((28, 8, 30, 58), (28, 8, 59, 59), (28, 9, 59, 58), (28, 23, 59, 59), (29, 0, 0, 0), (29, 0, 0, 1)):
        t0 = datetime.datetime(now.year, 11, day, h, m, s, tzinfo=datetime.timezone.utc)
        if t0 > now + datetime.timedelta(days=1):
            t0 = t0.replace(year=now.year - 1)
        for k in range(2):
            t = t0 + datetime.timedelta(seconds=k)
            st = "Nov %2d %02d:%02d:%02d" % (t.day, t.hour, t.minute, t.second)
            # lines of other clients in the same second share the stamp
            log.append("%s mx postfix/qmgr[1]: 1234: removed\n" % st)
            f = fail % (st, "198.51.100.%d" % (n + 1))
            # two blanks after the same stamp: not the cached 16 bytes' line
            log.append(f.replace(" mx ", "  mx ", 1) if (n + k) % 2 else f)
            log.append("%s mx postfix/qmgr[1]: 1235: removed\n" % st)
        want.append(("198.51.100.%d" % (n + 1), t.strftime("%Y-%m-%dT%H:%M:%SZ")))
        n += 1
    log.append("Dec  1 00:00:00 mx postfix/qmgr[1]: 1: removed\n")
    with Root(conf, shipped_filters=True) as r:
        p = r.write("t.log", "".join(log))
        a = subprocess.run([BANWATCH, "-r", p], env=r.env, capture_output=True, timeout=60)
        got = [(w[1], dict(x.split("=", 1) for x in w[2:] if "=" in x).get("at")) for w in
               (l.split() for l in a.stdout.decode(errors="replace").splitlines()) if w and w[0] == "ban"]
        check("replay-stamp-cache-ban-times-across-boundaries", a.returncode == 0 and got == want,
              "got %r want %r %s" % (got, want, a.stderr.decode(errors="replace")[-300:]))
        unb = [l.split()[1] for l in a.stdout.decode(errors="replace").splitlines() if l.startswith("unban ")]
        check("replay-stamp-cache-unbans", sorted(unb) == sorted(w[0] for w in want), "unbans %r" % unb)


def t_badconf():
    cases = [
        ("badregex", "[jail x]\nfailregex = ^from (<HOST>$\n", "banwatch.conf:2:"),
        ("unanchored", "[jail x]\nfailregex = from <HOST> port\n", "anchored"),
        ("badcidr", "[global]\nignoreip = 10.0.0.0/8 300.1.1.1\n[jail x]\nfilter = yubin-auth\n", "banwatch.conf:2: bad address or CIDR: 300.1.1.1"),
        ("badcidr-len", "[jail x]\nfilter = yubin-auth\nignoreip = 10.0.0.0/40\n", "banwatch.conf:3:"),
        ("unknown-action", "[jail x]\nfilter = yubin-auth\naction = nope\n", "banwatch.conf:3: unknown action: nope"),
        ("unknown-action-type", "[action a]\ntype = iptables\n[jail x]\nfilter = yubin-auth\n", "banwatch.conf:2: unknown action type"),
        ("unknown-filter", "[jail x]\nfilter = nope\n", "banwatch.conf:2: unknown filter: nope"),
        ("unknown-key", "[jail x]\nfilter = yubin-auth\nmaxretries = 3\n", "banwatch.conf:3: unknown key"),
        ("bad-duration", "[jail x]\nfilter = yubin-auth\nfindtime = 10 minutes\n", "banwatch.conf:3: bad duration"),
        ("no-jail", "[global]\n", "no jail"),
        ("filter-file-error", "[jail x]\nfilter = broken\n", "broken.conf:3:"),
        ("regex-open-group", "[jail x]\nfailregex = ^a(b <HOST>$\n", "banwatch.conf:2: failregex: "),
        ("regex-bad-interval", "[jail x]\nfailregex = ^a{2,1} <HOST>$\n", "banwatch.conf:2: failregex: "),
        ("regex-bad-class", "[jail x]\nfailregex = ^[[:nope:]] <HOST>$\n", "banwatch.conf:2: failregex: "),
        ("regex-huge-interval", "[jail x]\nfailregex = ^(a{999}){999} <HOST>$\n", "banwatch.conf:2: failregex: repetition"),
        ("regex-trailing-backslash", "[jail x]\nfailregex = ^a <HOST>$\\\n", "banwatch.conf:2: failregex: "),
        ("regex-two-hosts", "[jail x]\nfailregex = ^<HOST> <HOST>$\n", "more than one <HOST>"),
    ]
    for name, conf, want in cases:
        with Root(conf, filters={"broken": "[Definition]\nfailregex = ^ok <HOST>$\n    ^bad [<HOST>$\n"}) as r:
            p = subprocess.run([BANWATCH, "-C"],
                               env=r.env, capture_output=True, timeout=30)
            err = p.stderr.decode(errors="replace")
            check("config-error-" + name, p.returncode == 100 and want in err, "rc=%d stderr=%s" % (p.returncode, err.strip()))
    for conf in ("banwatch.conf", "banwatch-root.conf"):
        with Root(open(os.path.join(SHIPPED, conf)).read(),
                  shipped_filters=True) as r:
            p = subprocess.run([BANWATCH, "-C"],
                               env=r.env, capture_output=True, timeout=30)
            check("config-shipped-valid-" + conf, p.returncode == 0 and b"3 jails" in p.stdout, p.stderr.decode(errors="replace"))


def load_bench():
    """bench/banwatch-bench's log generators"""
    import importlib.machinery
    import importlib.util
    path = os.path.join(HERE, "..", "..", "bench", "banwatch-bench")
    loader = importlib.machinery.SourceFileLoader("banwatch_bench", path)
    spec = importlib.util.spec_from_loader("banwatch_bench", loader)
    m = importlib.util.module_from_spec(spec)
    loader.exec_module(m)
    return m


def t_differential():
    """The bench's Postfix, sshd and yubin logs (and mangled copies of their
    lines): yubin-banwatch -r with the shipped filters counts exactly the
    lines that Python's re (fail2ban's engine) matches with the same
    patterns; t-banparse compares banwatch's matching paths (literal
    prefilter, banre, split at <HOST>) with regexec alone, line by line."""
    import ipaddress
    import re
    bench = load_bench()
    rng = random.Random(13)
    tmp = tempfile.mkdtemp(prefix="bw-diff-")
    try:
        logs = {}
        for name, gen in (("postfix", bench.gen_postfix), ("sshd", bench.gen_sshd), ("yubin", bench.gen_yubin)):
            fn = os.path.join(tmp, name + ".log")
            gen(fn, 30000, rng)
            lines = open(fn, encoding="latin-1").read().splitlines()
            # mangled copies: a byte changed, dropped or doubled, a line cut
            out = []
            for ln in lines[:10000]:
                # after the stamp (a mangled stamp moves the clock, and a
                # jail then skips lines as too old: not what is tested here)
                i = rng.randrange(ln.index(" ", 16) + 1 if ln[0] != "@" else 26, len(ln))
                k = rng.randrange(4)
                if k == 0:
                    ln = ln[:i] + rng.choice("[]: .-/aZ09") + ln[i + 1:]
                elif k == 1:
                    ln = ln[:i] + ln[i + 1:]
                elif k == 2:
                    ln = ln[:i] + ln[i] + ln[i:]
                else:
                    ln = ln[:i]
                out.append(ln)
            with open(fn, "a", encoding="latin-1") as f:
                f.write("\n".join(out) + "\n")
            logs[name] = fn
        stamp_re = re.compile(r"^(@[0-9a-f]{24}|[A-Z][a-z][a-z] [ 0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9])[ \t]+")
        host = r"([0-9A-Fa-f:.]+)"
        sshd = [l.split("=", 1)[1].strip() if "=" in l else l.strip()
                for l in open(os.path.join(SHIPPED, "filter.d", "sshd.conf")).read().split("failregex", 1)[1].split("ignoreregex")[0].splitlines()]
        sshd = [x for x in sshd if x.startswith("^")]
        pfx = [x.split("=", 1)[1].strip() for x in open(os.path.join(SHIPPED, "filter.d", "postfix-sasl.conf")).read().splitlines()
               if x.startswith("failregex")]
        cases = (("postfix", "postfix-sasl", pfx), ("sshd", "sshd", sshd))

        def hostgroup(r):
            # the group <HOST> became: the one that starts at its text
            return 1 + r.pattern[:r.pattern.index(host)].count("(") - r.pattern[:r.pattern.index(host)].count("\\(")
        for logname, filt, pats in cases:
            rx = [re.compile(p.replace("<HOST>", host)) for p in pats]
            want = 0
            for ln in open(logs[logname], encoding="latin-1").read().splitlines():
                m = stamp_re.match(ln)
                body = ln[m.end():] if m else ln
                for r in rx:
                    m = r.fullmatch(body)
                    if m:
                        # a match whose <HOST> is no address counts as a bad host
                        try:
                            ipaddress.ip_address(m.group(m.re.groupindex.get("host", 0) or hostgroup(r)))
                            want += 1
                        except ValueError:
                            pass
                        break
            conf = "[jail j]\nfilter = %s\nmaxretry = 1000\nfindtime = 1w\nbantime = 1h\n" % filt
            with Root(conf, shipped_filters=True) as r:
                p = subprocess.run([BANWATCH, "-r", logs[logname]], env=r.env, capture_output=True, timeout=120)
                out = p.stdout.decode(errors="replace").splitlines()
                got = int(dict(x.split("=") for x in out[-1].split())["matched"]) if out else -1
                check("replay-differential-%s-vs-python-re" % logname, p.returncode == 0 and got == want and want > 1000,
                      "matched %d, Python re %d, rc %d %s" % (got, want, p.returncode, p.stderr.decode(errors="replace")[-300:]))
        unit = os.path.join(os.path.dirname(BANWATCH), "..", "unit", "t-banparse")
        if os.access(unit, os.X_OK):
            p = subprocess.run([unit], env=dict(os.environ, T_BANPARSE_LOGS=" ".join(logs.values())),
                               capture_output=True, timeout=300)
            out = p.stdout.decode(errors="replace")
            ok = "PASS banparse-log-files-same-matches-as-regexec" in out and "FAIL" not in out
            check("replay-differential-paths-vs-regexec", ok, out[-1000:])
        else:
            check("replay-differential-paths-vs-regexec", False, "no %s (make unit)" % unit)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    t_maxretry()
    t_events()
    t_window()
    t_bantime()
    t_recidive()
    t_ipv6()
    t_ignoreip()
    t_filters()
    t_hostile()
    t_scanner()
    t_badconf()
    t_differential()


run(main)
