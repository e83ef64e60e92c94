#!/usr/bin/env python3
"""test_dns: yubin-remote's resolver and routing (remote/dns.c, route.c)
against the test DNS server (tests/lib/dnstest.py), through the probe mode
of the unit test t-route ($YUBIN_BIN/../unit/t-route DOMAIN...).

Cases: MX order (preference, AAAA before A), equal preferences shuffled,
null MX and NXDOMAIN permanent, SERVFAIL / malformed / truncated-without-
TCP / silent server temporary within the deadline, CNAME followed, implicit
MX, an answer too big for UDP (over TCP), hosts without addresses,
control/smtproutes over DNS, the signed zone secure with its TLSA secure,
the same records unsigned not secure, TLSA made from a certificate after a
re-sign, a wrong trust anchor (bogus: temporary), no trust anchor
(insecure), and the control files instead of the environment."""

import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from yubintest import bin_dir, check, make_cert, minimal_env, run, sanitizer_report  # noqa: E402
from dnstest import DNSServer, PLACEHOLDER_TLSA, tlsa_rdata  # noqa: E402

T_ROUTE = os.path.normpath(os.path.join(bin_dir(), "..", "unit", "t-route"))


class Probe:
    def __init__(self, out, err, rc, elapsed):
        self.out, self.err, self.rc, self.elapsed = out, err, rc, elapsed
        self.routes = []
        cur = None
        for line in out.splitlines():
            w = line.split(" ")
            if w[0] == "route":
                cur = {"domain": w[1], "status": w[2], "smtproutes": w[3] == "smtproutes=1",
                       "why": line.split(" why=", 1)[1] if " why=" in line else "",
                       "targets": [], "tlsa": {}}
                self.routes.append(cur)
            elif w[0] == "target" and cur is not None:
                cur["targets"].append((w[1], w[2], int(w[3]), int(w[4]), int(w[5])))
            elif w[0] == "tlsa" and cur is not None:
                cur["tlsa"][w[1]] = {"status": w[3], "secure": int(w[4]), "records": []}
            elif w[0] == "tlsarr" and cur is not None:
                cur["tlsa"][w[1]]["records"].append(" ".join(w[2:]))

    def route(self, i=0):
        return self.routes[i] if i < len(self.routes) else None

    def show(self):
        return "rc %d in %.1fs\n%s%s" % (self.rc, self.elapsed, self.out[-2500:], self.err[-1500:])


def probe(env, *domains, timeout=5):
    t0 = time.monotonic()
    r = subprocess.run([T_ROUTE, "-t", str(timeout)] + list(domains), env=env, capture_output=True,
                       text=True, timeout=timeout * len(domains) * 3 + 30)
    p = Probe(r.stdout, r.stderr, r.returncode, time.monotonic() - t0)
    rep = sanitizer_report(r.stderr)
    if rep or r.returncode:   # only a failure is worth a line of its own
        check("dns-probe-clean %s" % domains[0], False, rep or p.show())
    return p


def hosts(route):
    return [t[0] for t in route["targets"]]


def main():
    if not os.access(T_ROUTE, os.X_OK):
        check("dns-t-route-built", False, "%s missing (make unit)" % T_ROUTE)
        return
    work = tempfile.mkdtemp(prefix="yubin-test-dns.")
    root = os.path.join(work, "root")
    os.makedirs(os.path.join(root, "control"))
    with DNSServer() as dns:
        env = minimal_env(dict(dns.env(), YUBIN_ROOT=root))

        # MX order: preference, then each host's AAAA before A
        p = probe(env, "example.test")
        r = p.route()
        t = r and r["targets"]
        ok = bool(t) and r["status"] == "ok" and len(t) == 4 \
            and sorted(hosts(r)[:3]) == ["mx1.example.test", "mx1.example.test", "mx2.example.test"] \
            and t[3][:4] == ("mx3.example.test", "127.0.0.13", 25, 20) \
            and all(x[3] == 10 for x in t[:3]) and all(x[4] == 0 for x in t)
        check("dns-mx-order", ok, p.show())
        mx1 = [x[1] for x in t or [] if x[0] == "mx1.example.test"]
        check("dns-ipv6-then-ipv4", mx1 == ["::1", "127.0.0.11"], p.show())

        # equal preferences shuffled: both orders of mx1/mx2 show up
        p = probe(env, *(["example.test"] * 40))
        firsts = set(r["targets"][0][0] for r in p.routes if r["targets"])
        check("dns-mx-shuffle", len(p.routes) == 40 and firsts == {"mx1.example.test", "mx2.example.test"},
              "first hosts seen: %s\n%s" % (sorted(firsts), p.show()[:500]))

        p = probe(env, "null.example.test")
        r = p.route()
        check("dns-null-mx-perm", r and r["status"] == "perm" and "null MX" in r["why"] and not r["targets"], p.show())

        p = probe(env, "nosuch.example.test")
        r = p.route()
        check("dns-nxdomain-perm", r and r["status"] == "perm" and "no such domain" in r["why"], p.show())

        for name, dom in (("servfail", "servfail.bad.test"), ("malformed", "malformed.bad.test"),
                          ("truncated-no-tcp", "truncated.bad.test")):
            p = probe(env, dom, timeout=3)
            r = p.route()
            check("dns-%s-temp" % name, r and r["status"] == "temp" and r["why"] and p.elapsed < 6, p.show())

        p = probe(env, "silent.bad.test", timeout=2)
        r = p.route()
        check("dns-silent-temp-deadline", r and r["status"] == "temp" and "timeout" in r["why"]
              and 1.5 < p.elapsed < 5, p.show())

        p = probe(env, "alias.example.test")
        r = p.route()
        check("dns-cname-followed", r and r["status"] == "ok"
              and [x[:4] for x in r["targets"]] == [("mx1.example.test", "::1", 25, 5),
                                                    ("mx1.example.test", "127.0.0.11", 25, 5)], p.show())

        p = probe(env, "implicit.example.test")
        r = p.route()
        check("dns-implicit-mx", r and r["status"] == "ok"
              and [x[:4] for x in r["targets"]] == [("implicit.example.test", "::1", 25, 0),
                                                    ("implicit.example.test", "127.0.0.21", 25, 0)], p.show())

        p = probe(env, "big.example.test")
        r = p.route()
        ips = sorted(x[1] for x in r["targets"]) if r else []
        want = sorted("127.0.1.%d" % i for i in range(1, 121))
        check("dns-large-answer-tcp", r and r["status"] == "ok" and ips == want,
              "%d addresses\n%s" % (len(ips), p.show()[:800]))

        p = probe(env, "nomail.example.test", "deadmx.example.test")
        check("dns-no-address-perm", len(p.routes) == 2 and all(r["status"] == "perm" for r in p.routes), p.show())

        # the signed zone: MX, addresses and TLSA validated
        p = probe(env, "secure.test")
        r = p.route()
        tl = r and r["tlsa"].get("mx.secure.test")
        check("dns-signed-secure", r and r["status"] == "ok" and len(r["targets"]) == 2
              and all(x[4] == 1 for x in r["targets"]), p.show())
        check("dns-signed-tlsa-secure", tl and tl["status"] == "ok" and tl["secure"] == 1
              and tl["records"] == [PLACEHOLDER_TLSA], p.show())

        p = probe(env, "plain.test")
        r = p.route()
        tl = r and r["tlsa"].get("mx.plain.test")
        check("dns-unsigned-not-secure", r and r["status"] == "ok" and len(r["targets"]) == 2
              and all(x[4] == 0 for x in r["targets"]) and tl and tl["secure"] == 0
              and tl["records"] == [PLACEHOLDER_TLSA], p.show())

        # TLSA from a certificate, the zone re-signed at test time
        key, cert = os.path.join(work, "key.pem"), os.path.join(work, "cert.pem")
        make_cert(key, cert, "mx.secure.test")
        want = dns.set_tlsa("mx.secure.test", cert)
        p = probe(env, "secure.test")
        r = p.route()
        tl = r and r["tlsa"].get("mx.secure.test")
        check("dns-tlsa-from-cert", want == tlsa_rdata(cert) and tl and tl["secure"] == 1
              and tl["records"] == [want] and all(x[4] == 1 for x in r["targets"]), "want %s\n%s" % (want, p.show()))
        bad = dns.set_tlsa("mx.secure.test", cert, match=False)
        p = probe(env, "secure.test")
        r = p.route()
        tl = r and r["tlsa"].get("mx.secure.test")
        check("dns-tlsa-nonmatching", bad != want and tl and tl["secure"] == 1 and tl["records"] == [bad], p.show())

        # full-length records (the whole certificate, the whole SPKI) and a
        # SHA-512 digest are kept whole, not dropped
        for sel, mt, name in ((0, 0, "dns-tlsa-full-cert"), (1, 0, "dns-tlsa-full-spki"), (0, 2, "dns-tlsa-sha512")):
            want = dns.set_tlsa("mx.secure.test", cert, selector=sel, mtype=mt)
            p = probe(env, "secure.test")
            r = p.route()
            tl = r and r["tlsa"].get("mx.secure.test")
            check(name, tl and tl["secure"] == 1 and tl["records"] == [want]
                  and len(want.split()[3]) >= 2 * 64, "want %s\n%s" % (want, p.show()[:1500]))

        # a trust anchor that does not sign the zone: bogus, temporary
        kd = os.path.join(work, "otherkey")
        os.makedirs(kd)
        base = subprocess.run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", "secure.test"], cwd=kd,
                              capture_output=True, text=True, check=True, timeout=30).stdout.strip()
        env_bogus = dict(env, YUBIN_DNS_TA=os.path.join(kd, base + ".key"))
        p = probe(env_bogus, "secure.test", "plain.test", timeout=3)
        r = p.route()
        check("dns-bogus-temp", r and r["status"] == "temp" and "bogus" in r["why"].lower()
              and p.route(1) and p.route(1)["status"] == "ok", p.show())

        # no trust anchor: the signed zone is only insecure
        p = probe(dict(env, YUBIN_DNS_TA=""), "secure.test")
        r = p.route()
        check("dns-no-anchor-insecure", r and r["status"] == "ok" and r["targets"]
              and all(x[4] == 0 for x in r["targets"]), p.show())

        # control files instead of the environment
        ctl = os.path.join(root, "control")
        with open(os.path.join(ctl, "dnsstubs"), "w") as f:
            f.write("# test zones\n" + "\n".join(dns.stubs().split()) + "\n")
        with open(os.path.join(ctl, "dnstrustanchors"), "w") as f:
            f.write(dns.ta_file + "\n")
        with open(os.path.join(ctl, "dnsresolvers"), "w") as f:
            f.write("127.0.0.1@%d\n" % dns.bad_port)
        env_ctl = minimal_env({"YUBIN_ROOT": root})
        p = probe(env_ctl, "secure.test", "example.test")
        r = p.route()
        check("dns-control-files", r and r["status"] == "ok" and r["targets"] and all(x[4] == 1 for x in r["targets"])
              and p.route(1) and p.route(1)["status"] == "ok", p.show())

        # control/smtproutes over DNS
        with open(os.path.join(ctl, "smtproutes"), "w") as f:
            f.write("example.test:[127.0.0.99]:2525\n"
                    ".example.test:mx3.example.test\n"
                    "implicit.example.test:\n"
                    "secure.test:mx.secure.test:26\n"
                    ":[::1]:2526\n")
        p = probe(env, "example.test", "alias.example.test", "implicit.example.test", "secure.test", "plain.test")
        rs = {r["domain"]: r for r in p.routes}

        def tg(d):
            return [x[:5] for x in rs[d]["targets"]] if d in rs else None
        check("dns-smtproutes-literal", rs.get("example.test", {}).get("smtproutes")
              and tg("example.test") == [("127.0.0.99", "127.0.0.99", 2525, 0, 0)], p.show())
        check("dns-smtproutes-subdomain-host", tg("alias.example.test") == [("mx3.example.test", "127.0.0.13", 25, 0, 0)],
              p.show())
        check("dns-smtproutes-empty-relay-dns", not rs.get("implicit.example.test", {}).get("smtproutes", True)
              and [x[1] for x in tg("implicit.example.test") or []] == ["::1", "127.0.0.21"], p.show())
        check("dns-smtproutes-relay-secure", tg("secure.test") == [("mx.secure.test", "::1", 26, 0, 1),
                                                                  ("mx.secure.test", "127.0.0.31", 26, 0, 1)], p.show())
        check("dns-smtproutes-default", tg("plain.test") == [("::1", "::1", 2526, 0, 0)], p.show())
    subprocess.run(["rm", "-rf", work], check=False)


if __name__ == "__main__":
    run(main)
