#!/usr/bin/env python3
"""The nftables action really blocks: two network namespaces joined by a
veth pair; in the server one, a TCP listener, yubin-banwatch and its
nftables table (nothing touches the host's ruleset); from the client one,
a banned address can no longer connect while another one still can.
IPv4 and IPv6 (/64 prefix), kernel expiry, banctl unban, restart.
Needs root (SKIP lines otherwise)."""

import atexit
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from bwlib import Daemon, Root  # noqa: E402
from yubintest import check, info, run, skip, wait_for  # noqa: E402

TAG = "%d" % os.getpid()
SRV = "yubintest-%s-s" % TAG
CLI = "yubintest-%s-c" % TAG
PORT = 2525
A4, B4, S4 = "10.200.0.2", "10.200.0.3", "10.200.0.1"
A6, B6 = "fd00:200::2", "fd00:201::3"
S6A, S6B = "fd00:200::1", "fd00:201::1"

CASES = ["nft-setup", "nft-both-connect-before", "nft-ipv4-banned-blocked", "nft-ipv4-other-still-connects",
         "nft-set-has-element", "nft-kernel-expiry", "nft-ipv6-prefix-blocked", "nft-ipv6-other-prefix-connects",
         "nft-banctl-unban", "nft-restart-keeps-ban", "nft-host-ruleset-untouched"]

SERVER = r"""
import socket, select, sys
ls = []
for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, %d)); s.listen(64); ls.append(s)
print("ready", flush=True)
while True:
    r, _, _ = select.select(ls, [], [], 60)
    if not r: break
    for s in r:
        c, _ = s.accept(); c.sendall(b"hi\n"); c.close()
""" % PORT

CLIENT = r"""
import socket, sys
src, dst = sys.argv[1], sys.argv[2]
fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.settimeout(float(sys.argv[3]))
s.bind((src, 0))
try:
    s.connect((dst, %d)); ok = s.recv(10) == b"hi\n"
except OSError:
    ok = False
sys.exit(0 if ok else 1)
""" % PORT


def sh(*cmd, check_rc=True, ns=None, timeout=20):
    if ns:
        cmd = ("ip", "netns", "exec", ns) + cmd
    r = subprocess.run(cmd, capture_output=True, timeout=timeout)
    if check_rc and r.returncode:
        raise RuntimeError("%s: %s" % (" ".join(cmd), r.stderr.decode(errors="replace").strip()))
    return r.stdout.decode(errors="replace")


procs = []


def cleanup():
    for p in procs:
        if p.poll() is None:
            p.kill()
            try:
                p.wait(5)
            except Exception:
                pass
    for ns in (SRV, CLI):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def connects(src, dst, timeout=1.0):
    r = subprocess.run(["ip", "netns", "exec", CLI, "python3", "-c", CLIENT, src, dst, str(timeout)],
                       capture_output=True, timeout=timeout + 10)
    return r.returncode == 0


def setup():
    sh("ip", "netns", "add", SRV)
    sh("ip", "netns", "add", CLI)
    sh("ip", "link", "add", "bwv0", "netns", SRV, "type", "veth", "peer", "name", "bwv1", "netns", CLI)
    for ns, dev, addrs in ((SRV, "bwv0", [S4 + "/24", S6A + "/64", S6B + "/64"]),
                           (CLI, "bwv1", [A4 + "/24", B4 + "/24", A6 + "/64", B6 + "/64"])):
        sh("ip", "link", "set", "lo", "up", ns=ns)
        for a in addrs:
            sh("ip", "addr", "add", a, "dev", dev, *(["nodad"] if ":" in a else []), ns=ns)
        sh("ip", "link", "set", dev, "up", ns=ns)
    p = subprocess.Popen(["ip", "netns", "exec", SRV, "python3", "-c", SERVER], stdout=subprocess.PIPE)
    procs.append(p)
    if p.stdout.readline().strip() != b"ready":
        raise RuntimeError("listener did not start")


CONF = """
[action fw]
type = nft
table = yubin
chain = input

[jail yubin]
filter = yubin-auth
logpath = log/smtpd/current
maxretry = 3
findtime = 60s
bantime = %s
action = fw
"""


def fail(ip):
    return "smtpd: auth-fail ip=%s user=alice mech=PLAIN\n" % ip


def main():
    if os.geteuid() != 0:
        for c in CASES:
            skip(c, "not root")
        return
    host_before = subprocess.run(["nft", "list", "ruleset"], capture_output=True).stdout
    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    try:
        setup()
    except Exception as e:
        check("nft-setup", False, "namespaces: %s" % e)
        return
    ns = ("ip", "netns", "exec", SRV)
    with Root(CONF % "3s") as r:
        r.write("log/smtpd/current", "")
        d = Daemon(r, prefix=ns)
        out = sh("nft", "list", "table", "inet", "yubin", ns=SRV)
        check("nft-setup", "banned4" in out and "banned6_64" in out and "ip saddr @banned4 drop" in out, out)
        check("nft-both-connect-before", connects(A4, S4) and connects(B4, S4) and connects(A6, S6A) and connects(B6, S6B))

        with open(r.path("log/smtpd/current"), "a") as f:
            f.write(fail(A4) * 3)
        t0 = time.time()
        ok = wait_for(lambda: A4 in sh("nft", "list", "set", "inet", "yubin", "banned4", ns=SRV), 5, 0.01)
        info("line -> nft set: %.1f ms (polling nft, so an upper bound)" % ((time.time() - t0) * 1000))
        check("nft-set-has-element", ok and "expires" in sh("nft", "list", "set", "inet", "yubin", "banned4", ns=SRV),
              sh("nft", "list", "ruleset", ns=SRV) + d.stderr())
        check("nft-ipv4-banned-blocked", not connects(A4, S4, 1.0))
        check("nft-ipv4-other-still-connects", connects(B4, S4))
        # bantime 3 s: the kernel drops the element itself
        ok = wait_for(lambda: connects(A4, S4, 0.5), 8, 0.2)
        check("nft-kernel-expiry", ok and time.time() - t0 >= 2.5, "%.1f s" % (time.time() - t0))

        with open(r.path("log/smtpd/current"), "a") as f:
            f.write(fail(A6) * 3)
        ok = wait_for(lambda: "fd00:200::/64" in sh("nft", "list", "set", "inet", "yubin", "banned6_64", ns=SRV), 5, 0.01)
        check("nft-ipv6-prefix-blocked", ok and not connects(A6, S6A, 1.0) and not connects("fd00:200::2", S6B, 1.0),
              sh("nft", "list", "ruleset", ns=SRV))
        check("nft-ipv6-other-prefix-connects", connects(B6, S6B) and connects(B4, S4))
        rc, outp, err = d.ctl("unban", "fd00:200::2")
        ok = wait_for(lambda: connects(A6, S6A, 0.5), 5, 0.1)
        check("nft-banctl-unban", rc == 0 and ok, outp + err)

        # a long ban survives a restart of banwatch (journal, re-applied)
        rc, outp, err = d.ctl("ban", B4, "1h")
        wait_for(lambda: not connects(B4, S4, 0.5), 5, 0.1)
        rc1, bad = d.stop()
        sh("nft", "flush", "set", "inet", "yubin", "banned4", ns=SRV)
        blocked_gone = connects(B4, S4)
        d = Daemon(r, prefix=ns)
        ok = wait_for(lambda: not connects(B4, S4, 0.5), 5, 0.1)
        check("nft-restart-keeps-ban", rc == 0 and rc1 == 0 and not bad and blocked_gone and ok and connects(A4, S4),
              "%s %s %s %s" % (outp, err, bad, d.stderr()))
        rc1, bad = d.stop()
        if bad:
            check("nft-daemon-clean-exit", False, bad)
    host_after = subprocess.run(["nft", "list", "ruleset"], capture_output=True).stdout
    check("nft-host-ruleset-untouched", host_before == host_after, "host ruleset changed")


run(main)
