#!/usr/bin/env python3
"""Outbound, end to end: two yubin instances on loopback exchange mail
through the test DNS server (tests/lib/dnstest.py).  Instance A sends
(yubin-inject, qmgr, yubin-rspawn, the SMTP client); instance B is the MX
of b.test, secure.test (a DNSSEC-signed zone, for DANE) and plain.test (the
same records unsigned), with STARTTLS on its port 25 service.

MX hosts can't own port 25 here: A reaches them on B's SMTP port through
$YUBIN_REMOTE_PORT."""

import email
import email.policy
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from yubintest import Instance, check, info, run  # noqa: E402
from dnstest import DNSServer, Zone  # noqa: E402

MX = ["@ MX 10 mx", "mx A 127.0.0.1"]


def zones():
    return {
        "b.test.": Zone(MX),
        "secure.test.": Zone(MX, signed=True),
        "plain.test.": Zone(MX),
        "null.test.": Zone(["@ MX 0 ."]),
        "routed.test.": Zone(["@ MX 10 nowhere"]),
    }


class MX_B(Instance):
    """Instance B: local for every test domain."""

    def setup(self):
        super().setup()
        doms = ["b.test", "secure.test", "plain.test", "routed.test", "localhost"]
        for f in ("locals", "rcpthosts"):
            with open(self.path("control", f), "w") as fh:
                fh.write("\n".join(doms) + "\n")


def inject(inst, sender, rcpts, body):
    """yubin-inject (as sendmail) on inst; returns its exit code."""
    env = dict(os.environ, YUBIN_ROOT=inst.dir)
    r = subprocess.run([inst.path("bin", "sendmail"), "-f", sender] + rcpts, input=body, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if r.returncode:
        info("sendmail exit %d: %r" % (r.returncode, r.stderr))
    return r.returncode


def msg(subject):
    return ("From: demo@a.test\nTo: somebody\nSubject: %s\n\nbody of %s\n" % (subject, subject)).encode()


def arrived(inst, subject, user="demo", timeout=30):
    got = inst.wait_for(lambda m: any(subject.encode() in d for _, d in m), timeout=timeout, user=user)
    return [d for _, d in got if subject.encode() in d]


def logged(inst, service, text, timeout=30):
    return inst.wait_log(service, text, time.monotonic() + timeout)


def dsn_for(inst, rcpt, timeout=40):
    """The DSN in A's demo Maildir about rcpt, parsed, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in inst.messages():
            d = inst.read(path)
            if b"multipart/report" in d and rcpt.encode() in d:
                return email.message_from_bytes(d, policy=email.policy.default)
        time.sleep(0.2)
    return None


def dsn_fields(m):
    """The per-recipient fields of a parsed DSN, as one dict."""
    fields = {}
    for part in m.walk():
        if part.get_content_type() == "message/delivery-status":
            for block in part.get_payload():
                for k, v in block.items():
                    fields[k.lower()] = str(v)
    return fields


def main():
    with DNSServer(zones()) as dns:
        with MX_B(domain="b.test") as b:
            env = dict(dns.env())
            env["YUBIN_REMOTE_PORT"] = str(b.smtp_port)
            with Instance(domain="a.test", env=env) as a:
                cases(dns, a, b)


def cases(dns, a, b):
    # 1. A sends to B over DNS; TLS is used and logged
    check("remote-inject-exit-0", inject(a, "demo@a.test", ["demo@b.test"], msg("first-remote")) == 0)
    got = arrived(b, "first-remote")
    check("remote-delivered-to-mx", got and b"Received:" in got[0], "not in B's Maildir")
    check("remote-starttls-logged", logged(a, "qmgr", "TLSv1.3"), "no TLS in A's qmgr log")

    # 2. local and remote recipients of one message both get it
    inject(a, "demo@a.test", ["demo@a.test", "demo@b.test"], msg("both-ways"))
    check("remote-and-local-recipients", arrived(b, "both-ways") and arrived(a, "both-ways"), "")

    # 3. a 5xx recipient: a DSN the sender's mail reader understands
    inject(a, "demo@a.test", ["nosuchuser@b.test"], msg("to-nobody"))
    m = dsn_for(a, "nosuchuser@b.test")
    f = dsn_fields(m) if m else {}
    check("remote-5xx-dsn-multipart-report",
          m is not None and m.get_content_type() == "multipart/report"
          and m.get_param("report-type") == "delivery-status", "no DSN in A's Maildir")
    check("remote-5xx-dsn-fields",
          f.get("final-recipient", "").endswith("nosuchuser@b.test") and f.get("action") == "failed"
          and f.get("status", "").startswith("5.") and "smtp;" in f.get("diagnostic-code", "").replace(" ", "")
          and "550" in f.get("diagnostic-code", ""), "fields %r" % f)

    # 4. a null MX bounces at once
    inject(a, "demo@a.test", ["x@null.test"], msg("to-null"))
    m = dsn_for(a, "x@null.test")
    check("remote-null-mx-bounces", m is not None and "null MX" in m.as_string(), "no DSN for the null MX")

    # 5. smtproutes wins over DNS (routed.test's MX has no address)
    with open(a.path("control", "smtproutes"), "w") as fh:
        fh.write("routed.test:[127.0.0.1]:%d\n" % b.smtp_port)
    a.svc("qmgr", "-t")
    time.sleep(1)
    inject(a, "demo@a.test", ["demo@routed.test"], msg("via-smtproutes"))
    check("remote-smtproutes-overrides-dns", arrived(b, "via-smtproutes"), "not delivered through the route")

    # 6. DANE: a matching TLSA delivers and says dane-ee
    cert = b.path("control", "cert.pem")
    dns.set_tlsa("mx.secure.test", cert, port=b.smtp_port, match=True)
    inject(a, "demo@a.test", ["demo@secure.test"], msg("dane-match"))
    check("remote-dane-match-delivers", arrived(b, "dane-match"), "not delivered")
    check("remote-dane-ee-logged", logged(a, "qmgr", "dane-ee"), "no dane-ee in A's log")
    # a non-matching TLSA defers: nothing arrives, a deferral is logged (once
    # the session verified with the old record is closed: sessions are
    # reused while they last)
    check("remote-session-reused-then-closed", logged(a, "qmgr", "session-close domain=secure.test", timeout=20),
          "no session-close")
    dns.set_tlsa("mx.secure.test", cert, port=b.smtp_port, match=False)
    inject(a, "demo@a.test", ["demo@secure.test"], msg("dane-mismatch"))
    time.sleep(8)
    check("remote-dane-mismatch-defers", not arrived(b, "dane-mismatch", timeout=1)
          and logged(a, "qmgr", "status=defer", timeout=5), "delivered despite a wrong TLSA")
    # the unsigned zone: TLSA there mean nothing, opportunistic TLS delivers
    dns.set_tlsa("mx.plain.test", cert, port=b.smtp_port, match=False)
    inject(a, "demo@a.test", ["demo@plain.test"], msg("unsigned-zone"))
    check("remote-unsigned-zone-opportunistic", arrived(b, "unsigned-zone"), "not delivered")

    # 7. a verify policy against B's self-signed certificate defers
    with open(a.path("control", "tlsdestinations"), "w") as fh:
        fh.write("b.test:verify\n")
    inject(a, "demo@a.test", ["demo@b.test"], msg("verify-self-signed"))
    time.sleep(6)
    check("remote-verify-self-signed-defers", not arrived(b, "verify-self-signed", timeout=1), "delivered")

    # 8. swaks --tls against B's MX port
    r = subprocess.run(["swaks", "--server", "%s:%d" % (b.ip, b.smtp_port), "--tls", "--to", "demo@b.test",
                        "--from", "x@example.org", "--header", "Subject: swaks-mx-tls"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    check("mx-port-swaks-tls", r.returncode == 0 and arrived(b, "swaks-mx-tls"),
          "swaks exit %d: %s" % (r.returncode, r.stdout.decode(errors="replace")[-400:]))


if __name__ == "__main__":
    run(main)
