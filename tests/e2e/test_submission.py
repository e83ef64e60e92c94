#!/usr/bin/env python3
"""End to end, issue 3: the demo user submits through the instance's
submission (STARTTLS + AUTH) and smtps (implicit TLS + AUTH) services with
python smtplib, swaks and curl; the mail arrives in the Maildir; AUTH before
STARTTLS and a wrong password are refused, and the failure is logged with the
client address; relaying needs AUTH; the TLS processes are not root."""

import os
import smtplib
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from yubintest import Instance, check, is_root, run, tls_client_ctx  # noqa: E402


def body(marker):
    return ("From: demo@yubin.test\r\nTo: demo@yubin.test\r\nSubject: %s\r\n\r\n"
            "sent through submission: %s\r\n" % (marker, marker))


def main():
    with Instance() as inst:
        user = "demo@" + inst.domain
        pw = inst.demo_password

        # smtplib: STARTTLS, then AUTH, then a message
        with smtplib.SMTP(inst.ip, inst.submission_port, timeout=30) as s:
            s.ehlo("client.example.org")
            check("submission-offers-starttls", s.has_extn("starttls"), str(s.esmtp_features))
            check("submission-no-auth-before-tls", not s.has_extn("auth"), str(s.esmtp_features))
            code, _ = s.docmd("AUTH", "PLAIN AGRlbW8AeA==")
            check("auth-before-starttls-538", code == 538, "got %d" % code)
            s.starttls(context=tls_client_ctx())
            s.ehlo("client.example.org")
            check("auth-offered-after-tls", "PLAIN" in s.esmtp_features.get("auth", ""),
                  str(s.esmtp_features))
            s.login(user, pw)
            s.sendmail(user, [user], body("sub-smtplib"))

        # smtps (465): implicit TLS
        with smtplib.SMTP_SSL(inst.ip, inst.smtps_port, timeout=30, context=tls_client_ctx()) as s:
            s.login(user, pw)
            s.sendmail(user, [user], body("sub-smtps"))

        # swaks --tls --auth
        r = subprocess.run(["swaks", "--server", "%s:%d" % (inst.ip, inst.submission_port),
                            "--tls", "--auth", "LOGIN", "--auth-user", user, "--auth-password", pw,
                            "--from", user, "--to", user, "--header", "Subject: sub-swaks",
                            "--body", "swaks over STARTTLS"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        check("swaks-tls-auth", r.returncode == 0, r.stdout.decode(errors="replace")[-800:])

        # curl smtps:// with --ssl-reqd semantics built in
        mail = body("sub-curl").encode()
        r = subprocess.run(["curl", "-sS", "-k", "--url", "smtps://%s:%d" % (inst.ip, inst.smtps_port),
                            "--user", "%s:%s" % (user, pw), "--mail-from", user, "--mail-rcpt", user,
                            "-T", "-"], input=mail, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60)
        check("curl-smtps", r.returncode == 0, r.stdout.decode(errors="replace")[-800:])
        r = subprocess.run(["curl", "-sS", "-k", "--ssl-reqd",
                            "--url", "smtp://%s:%d" % (inst.ip, inst.submission_port),
                            "--user", "%s:%s" % (user, pw), "--mail-from", user, "--mail-rcpt", user,
                            "-T", "-"], input=body("sub-curl-starttls").encode(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        check("curl-starttls-ssl-reqd", r.returncode == 0, r.stdout.decode(errors="replace")[-800:])

        markers = [b"sub-smtplib", b"sub-smtps", b"sub-swaks", b"sub-curl\r", b"sub-curl-starttls"]
        def arrived(msgs):
            return all(any(m.replace(b"\r", b"\n") in d for _, d in msgs) for m in markers)
        msgs = inst.wait_for(arrived, timeout=30)
        for m in markers:
            hit = [d for _, d in msgs if m.replace(b"\r", b"\n") in d]
            check("arrived-%s" % m.decode().strip(), len(hit) == 1, "copies: %d" % len(hit))
        rec = [d for _, d in msgs if b"sub-smtplib" in d]
        if rec:
            check("received-says-esmtpsa", b"with ESMTPSA" in rec[0], rec[0][:600].decode(errors="replace"))
            check("received-no-password", pw.encode() not in rec[0], "password in the message")

        # a wrong password: 535, and an auth-fail line with the client address
        with smtplib.SMTP(inst.ip, inst.submission_port, timeout=30) as s:
            s.starttls(context=tls_client_ctx())
            try:
                s.login(user, pw + "x")
                check("wrong-password-535", False, "login succeeded")
            except smtplib.SMTPAuthenticationError as e:
                check("wrong-password-535", e.smtp_code == 535, str(e))
        deadline = time.time() + 10
        while time.time() < deadline and "auth-fail ip=127.0.0.1" not in inst.log("submission"):
            time.sleep(0.1)
        check("auth-fail-logged-with-ip", "auth-fail ip=127.0.0.1" in inst.log("submission"),
              inst.log("submission")[-800:])

        # without AUTH, submission takes no mail at all, not even for local users
        with smtplib.SMTP(inst.ip, inst.submission_port, timeout=30) as s:
            s.starttls(context=tls_client_ctx())
            s.ehlo("client.example.org")
            code, _ = s.mail(user)
            check("submission-mail-without-auth-530", code == 530, "got %d" % code)
        # after AUTH an outside recipient is accepted (relaying by the user)
        with smtplib.SMTP(inst.ip, inst.submission_port, timeout=30) as s:
            s.starttls(context=tls_client_ctx())
            s.login(user, pw)
            s.mail(user)
            code, _ = s.rcpt("someone@example.org")
            check("relay-after-auth", code == 250, "got %d" % code)
            s.rset()
            code, _ = s.mail("someone@example.org")
            check("foreign-sender-553", code == 553, "got %d" % code)

            # the TLS programs of the open sessions are not root
            if is_root():
                import pwd
                yubins = pwd.getpwnam("yubins").pw_uid
                uids = []
                for p in inst.processes():
                    if "yubin-tlsd" in p[1]:
                        with open("/proc/%d/status" % p[0]) as f:
                            for line in f:
                                if line.startswith("Uid:"):
                                    uids.append([int(x) for x in line.split()[1:]])
                check("tlsd-runs-as-yubins", uids and all(set(u) == {yubins} for u in uids),
                      "uids %r" % uids)


if __name__ == "__main__":
    run(main)
