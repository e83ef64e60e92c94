#!/usr/bin/env python3
"""End to end: password guessing against a real yubin instance's SMTP AUTH
(submission, STARTTLS then AUTH PLAIN with a wrong password, one session
per guess) gets the client banned by the instance's own banwatch service
(as make run starts it: under s6, as yubinb when root) following the
instance's s6-log files, through the tcprules deny list that tcpserver -x
reads: the next connection is dropped before the banner; after
yubin-banctl unban it is served again.  The test's configuration differs
from the shipped one only in what a loopback test needs: no ignoreip for
127.0.0.0/8, short times."""

import os
import smtplib
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from bwlib import BANCTL  # noqa: E402
from yubintest import Instance, check, run, sanitizer_report, tls_client_ctx, wait_for  # noqa: E402

CONF = """
[action deny]
type = tcprules
cdb = banwatch/tcp.smtp.cdb
rules = control/tcp.smtp

[jail yubin-auth]
filter = yubin-auth
logpath = log/smtpd/current log/submission/current log/smtps/current
maxretry = 3
findtime = 60s
bantime = 60s
action = deny
"""


def banner(ip, port):
    """The first bytes the server sends on a new connection ('' if it
    closes at once, as tcpserver does for a denied address)."""
    try:
        with socket.create_connection((ip, port), timeout=5) as s:
            s.settimeout(5)
            return s.recv(100).decode(errors="replace")
    except OSError as e:
        return "error: %s" % e


def guess(inst, user, pw):
    """One AUTH PLAIN in one session (smtplib's login() would go on with
    LOGIN after a 535, two failures per session)."""
    import base64
    try:
        with smtplib.SMTP(inst.ip, inst.submission_port, timeout=20) as s:
            s.starttls(context=tls_client_ctx())
            s.ehlo()
            code, _ = s.docmd("AUTH", "PLAIN " + base64.b64encode(("\0%s\0%s" % (user, pw)).encode()).decode())
            return "accepted" if code == 235 else code
    except (smtplib.SMTPException, OSError) as e:
        return "error: %s" % e


def main():
    with Instance() as inst:
        conf = inst.path("banwatch", "banwatch.conf")
        st = os.stat(inst.path("banwatch"))
        with open(conf, "w") as f:
            f.write(CONF)
        os.chown(conf, st.st_uid, st.st_gid)
        env = dict(os.environ, YUBIN_ROOT=inst.dir)
        ctl = lambda *a: subprocess.run([BANCTL] + list(a), env=env, capture_output=True, timeout=10)
        inst.svc("banwatch", "-r")      # the service rereads its configuration
        time.sleep(0.5)
        ok = wait_for(lambda: ctl("jails").returncode == 0 and b"yubin-auth" in ctl("jails").stdout, 10, 0.05)
        if not check("auth-banwatch-service-up", ok, inst.log("banwatch")[-800:]):
            return
        check("auth-connect-before", banner(inst.ip, inst.submission_port).startswith("220"))
        user = "demo@" + inst.domain
        codes = [guess(inst, user, "wrong-%d" % i) for i in range(3)]
        check("auth-wrong-passwords-535", codes == [535, 535, 535], codes)
        banned = wait_for(lambda: "127.0.0.1" in ctl("list").stdout.decode(), 10, 0.05)
        check("auth-guessing-banned", banned, "list=%r log=%s" % (ctl("list").stdout, inst.log("banwatch")[-500:]))
        b = wait_for(lambda: banner(inst.ip, inst.submission_port) == "", 5, 0.05)
        check("auth-banned-client-dropped-submission", b, banner(inst.ip, inst.submission_port))
        check("auth-banned-client-dropped-smtp", banner(inst.ip, inst.smtp_port) == "", banner(inst.ip, inst.smtp_port))
        r = ctl("unban", "127.0.0.1")
        ok = wait_for(lambda: banner(inst.ip, inst.submission_port).startswith("220"), 5, 0.05)
        check("auth-unban-serves-again", r.returncode == 0 and ok, r.stdout + r.stderr)
        # a right password after the unban still works (counters were reset)
        check("auth-login-after-unban", guess(inst, user, inst.demo_password) == "accepted")
        log = inst.log("banwatch")
        check("auth-banwatch-log-clean", not sanitizer_report(log), log[-800:])


run(main)
