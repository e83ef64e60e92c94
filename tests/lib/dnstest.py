"""The test DNS server of yubin's outbound tests (issue 9).

    HERE = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(HERE, "..", "lib"))
    from dnstest import DNSServer

    with DNSServer() as dns:
        env = dict(minimal_env(), **dns.env())   # YUBIN_DNS_STUB, YUBIN_DNS_TA
        subprocess.run([t_route, "example.test"], env=env, ...)

What runs:
  - Debian's unbound daemon (not the system service): its own config in a
    temporary directory, `unbound -d -c unbound.conf`, on 127.0.0.1 and a
    free port, serving each zone from a zone file with an `auth-zone:`
    block (authoritative answers, UDP and TCP).  The resolver reaches it
    as a stub zone per test zone ("zone:127.0.0.1@port" in
    $YUBIN_DNS_STUB): libunbound iterates to it with RD=0 and gets AA
    answers; signed zones are validated against the trust anchors written
    to dns.ta_file ($YUBIN_DNS_TA: the DNSKEY of each signed zone's KSK).
  - a small Python UDP server (dns.bad_port) answering the zone "bad.test"
    badly: servfail.bad.test (rcode SERVFAIL), malformed.bad.test (a
    reply cut inside its question), truncated.bad.test (TC set, and no TCP
    listener), silent.bad.test (no answer at all); any other name under
    bad.test gets SERVFAIL too.

Zones: DNSServer(zones=None) serves DEFAULT_ZONES, a dict
{ "zone.": Zone(records, signed=bool) }.  Records are zone-file lines
relative to the apex ("@ MX 10 mx1", "mx1 A 127.0.0.11"); SOA and NS are
added.  The default zones:
  example.test   MX 10 mx1, MX 10 mx2, MX 20 mx3; mx1 A 127.0.0.11 and
                 AAAA ::1; mx2 A 127.0.0.12; mx3 A 127.0.0.13;
                 null.example.test MX 0 . (RFC 7505);
                 alias.example.test CNAME target, target MX 5 mx1;
                 implicit.example.test A 127.0.0.21 + AAAA ::1 (no MX);
                 big.example.test 120 A records 127.0.1.1-120 (an answer
                 over 1232 bytes: truncated over UDP, fetched over TCP);
                 nomail.example.test TXT only (neither MX nor address);
                 deadmx.example.test MX 10 nowhere (a host with no address)
  secure.test    signed (ECDSA P-256, NSEC): MX 10 mx; mx A 127.0.0.31,
                 AAAA ::1; _25._tcp.mx TLSA 3 1 1 (a placeholder digest)
  plain.test     the same records as secure.test, unsigned
  bad.test       the Python server above

Changing zones at test time (each re-signs a signed zone, bumps the SOA
serial, reloads unbound and waits until the new serial is served):
  dns.set_records(zone, records)      replace a zone's records
  dns.add_records(zone, records)      append records
  dns.remove_records(zone, match)     drop records whose text starts with match
  dns.set_tlsa(host, certfile, port=25, usage=3, selector=1, mtype=1,
               match=True)            replace the TLSA of _port._tcp.host
                                      (host a name inside a served zone) with
                                      one computed from the certificate, or
                                      with a digest that does not match it
tlsa_rdata(certfile, usage, selector, mtype) gives "3 1 1 <hex>".

Attributes: ip, port (unbound), bad_port (the Python server), dir,
ta_file, zones.  env(resolvers=None) gives the environment for a program:
{"YUBIN_DNS_STUB": "...", "YUBIN_DNS_TA": ta_file, "YUBIN_DNS": ...} where
YUBIN_DNS is "127.0.0.1@<bad_port>" (a forwarder nobody should reach: the
stubs hold every test zone) unless resolvers is given.
"""

import hashlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

from yubintest import free_port, wait_for

UNBOUND = shutil.which("unbound") or "/usr/sbin/unbound"
TTL = 5


class Zone:
    def __init__(self, records, signed=False):
        self.records = list(records)
        self.signed = signed
        self.serial = 1


def _example():
    r = ["@ MX 10 mx1", "@ MX 10 mx2", "@ MX 20 mx3",
         "mx1 A 127.0.0.11", "mx1 AAAA ::1", "mx2 A 127.0.0.12", "mx3 A 127.0.0.13",
         "null MX 0 .",
         "alias CNAME target", "target MX 5 mx1",
         "implicit A 127.0.0.21", "implicit AAAA ::1",
         "nomail TXT \"no mail here\"",
         "deadmx MX 10 nowhere"]
    r += ["big A 127.0.1.%d" % i for i in range(1, 121)]
    return r


PLACEHOLDER_TLSA = "3 1 1 " + hashlib.sha256(b"yubin placeholder").hexdigest()


def _dane_zone():
    return ["@ MX 10 mx", "mx A 127.0.0.31", "mx AAAA ::1",
            "_25._tcp.mx TLSA " + PLACEHOLDER_TLSA]


def default_zones():
    return {
        "example.test.": Zone(_example()),
        "secure.test.": Zone(_dane_zone(), signed=True),
        "plain.test.": Zone(_dane_zone()),
    }


DEFAULT_ZONES = default_zones


def tlsa_rdata(certfile, usage=3, selector=1, mtype=1):
    """The TLSA rdata text for a PEM certificate: "usage selector mtype hex"."""
    if selector == 0:
        der = subprocess.run(["openssl", "x509", "-in", certfile, "-outform", "DER"],
                             check=True, capture_output=True, timeout=30).stdout
    else:
        pem = subprocess.run(["openssl", "x509", "-in", certfile, "-pubkey", "-noout"],
                             check=True, capture_output=True, timeout=30).stdout
        der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pem,
                             check=True, capture_output=True, timeout=30).stdout
    if mtype == 0:
        data = der
    elif mtype == 1:
        data = hashlib.sha256(der).digest()
    else:
        data = hashlib.sha512(der).digest()
    return "%d %d %d %s" % (usage, selector, mtype, data.hex())


# ---------------------------------------------------------------- bad server

def _qname_end(pkt):
    i = 12
    while i < len(pkt) and pkt[i]:
        i += 1 + pkt[i]
    return i + 1 + 4


class BadServer:
    """UDP on 127.0.0.1: answers by the first label of the question."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.2)
        self.stop = False
        self.queries = []
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stop:
            try:
                pkt, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(pkt) < 12:
                continue
            end = _qname_end(pkt)
            if end > len(pkt):
                continue
            labels, i = [], 12
            while pkt[i]:
                labels.append(pkt[i + 1:i + 1 + pkt[i]].decode(errors="replace").lower())
                i += 1 + pkt[i]
            self.queries.append(".".join(labels))
            qid, flags = pkt[:2], struct.unpack(">H", pkt[2:4])[0]
            rd = flags & 0x0100
            question = pkt[12:end]
            if "silent" in labels:
                continue
            if "malformed" in labels:
                # header says 1 question and 1 answer, the packet stops inside the name
                hdr = qid + struct.pack(">HHHHH", 0x8400 | rd, 1, 1, 0, 0)
                reply = hdr + question[:3]
            elif "truncated" in labels:
                hdr = qid + struct.pack(">HHHHH", 0x8600 | rd, 1, 0, 0, 0)
                reply = hdr + question
            else:
                hdr = qid + struct.pack(">HHHHH", 0x8002 | rd, 1, 0, 0, 0)
                reply = hdr + question
            try:
                self.sock.sendto(reply, peer)
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()


# ---------------------------------------------------------------- queries

def query(port, name, qtype=6, ip="127.0.0.1", timeout=1.0):
    """A plain UDP query (RD=0); returns (rcode, raw answer) or None."""
    qid = os.urandom(2)
    q = qid + struct.pack(">HHHHH", 0, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", qtype, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(q, (ip, port))
        r, _ = s.recvfrom(65535)
    except OSError:
        return None
    finally:
        s.close()
    if len(r) < 12 or r[:2] != qid:
        return None
    return (r[3] & 15, r)


def soa_serial(port, zone):
    """The SOA serial the server gives for zone, or None."""
    a = query(port, zone, 6)
    if not a or a[0] != 0:
        return None
    r = a[1]
    an = struct.unpack(">H", r[6:8])[0]
    if not an:
        return None
    i = _qname_end(r)

    def skipname(i):
        while True:
            ln = r[i]
            if ln == 0:
                return i + 1
            if ln & 0xC0:
                return i + 2
            i += 1 + ln
    i = skipname(i)
    rtype, _, _, rdlen = struct.unpack(">HHIH", r[i:i + 10])
    if rtype != 6:
        return None
    rd = i + 10
    j = skipname(skipname(rd))
    return struct.unpack(">I", r[j:j + 4])[0]


# ---------------------------------------------------------------- server

class DNSServer:
    def __init__(self, zones=None, keep=False):
        self.zones = zones if zones is not None else default_zones()
        self.keep = keep or os.environ.get("YUBIN_KEEP") == "1"
        self.ip = "127.0.0.1"
        self.proc = None
        self.bad = None
        self.keys = {}
        self.dir = tempfile.mkdtemp(prefix="yubin-dns.")
        # the trust anchors are read by the instance's yubin-rspawn, which
        # runs as its own user (yubinr) in a root instance
        os.chmod(self.dir, 0o755)
        self.ta_file = os.path.join(self.dir, "trust-anchors")

    # zone files
    def _zonefile(self, zone):
        return os.path.join(self.dir, zone.rstrip(".") + ".zone")

    def _keygen(self, zone):
        if zone in self.keys:
            return self.keys[zone]
        kd = os.path.join(self.dir, "keys")
        os.makedirs(kd, exist_ok=True)

        def gen(*extra):
            out = subprocess.run(["ldns-keygen", "-a", "ECDSAP256SHA256"] + list(extra) + [zone.rstrip(".")],
                                 cwd=kd, check=True, capture_output=True, text=True, timeout=30).stdout
            return os.path.join(kd, out.strip())
        ksk = gen("-k")
        zsk = gen()
        self.keys[zone] = (ksk, zsk)
        return self.keys[zone]

    def _write_zone(self, zone):
        z = self.zones[zone]
        lines = ["$ORIGIN %s" % zone, "$TTL %d" % TTL,
                 "@ SOA ns.%s hostmaster.%s %d 3600 600 86400 %d" % (zone, zone, z.serial, TTL),
                 "@ NS ns.%s" % zone]
        if not any(r.split()[0] == "ns" for r in z.records):
            lines.append("ns A 127.0.0.1")
        lines += z.records
        fn = self._zonefile(zone)
        with open(fn + ".src", "w") as f:
            f.write("\n".join(lines) + "\n")
        if z.signed:
            ksk, zsk = self._keygen(zone)
            now = int(time.time())
            subprocess.run(["ldns-signzone", "-i", str(now - 3600), "-e", str(now + 14 * 86400),
                            "-o", zone, "-f", fn + ".tmp", fn + ".src", zsk, ksk],
                           check=True, capture_output=True, timeout=60)
            os.rename(fn + ".tmp", fn)
        else:
            os.rename(fn + ".src", fn)

    def _write_ta(self):
        with open(self.ta_file + ".tmp", "w") as f:
            for zone, z in self.zones.items():
                if z.signed:
                    with open(self._keygen(zone)[0] + ".key") as k:
                        f.write(k.read().strip() + "\n")
        os.rename(self.ta_file + ".tmp", self.ta_file)

    def _write_conf(self):
        c = ["server:",
             "  interface: %s@%d" % (self.ip, self.port),
             "  port: %d" % self.port,
             "  do-daemonize: no", '  chroot: ""', '  username: ""',
             '  directory: "%s"' % self.dir, '  pidfile: "%s/unbound.pid"' % self.dir,
             '  logfile: ""', "  use-syslog: no", "  verbosity: 1",
             "  num-threads: 1", "  do-ip6: no", "  do-udp: yes", "  do-tcp: yes",
             "  so-reuseport: no", "  access-control: 127.0.0.0/8 allow",
             '  module-config: "iterator"', '  auto-trust-anchor-file: ""',
             "  local-zone: \"test.\" nodefault",
             "remote-control:", "  control-enable: no"]
        for zone in self.zones:
            c += ["auth-zone:", '  name: "%s"' % zone, '  zonefile: "%s"' % self._zonefile(zone),
                  "  for-downstream: yes", "  for-upstream: no", "  fallback-enabled: no"]
        with open(os.path.join(self.dir, "unbound.conf"), "w") as f:
            f.write("\n".join(c) + "\n")

    def start(self):
        self.bad = BadServer()
        self.bad_port = self.bad.port
        for zone in self.zones:
            self._write_zone(zone)
        self._write_ta()
        for attempt in range(5):
            self.port = free_port()
            self._write_conf()
            self.log = open(os.path.join(self.dir, "unbound.log"), "w")
            self.proc = subprocess.Popen([UNBOUND, "-d", "-c", os.path.join(self.dir, "unbound.conf")],
                                         stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            zone = next(iter(self.zones))
            up = wait_for(lambda: self.proc.poll() is not None or soa_serial(self.port, zone) is not None,
                          timeout=10, step=0.05)
            if up and self.proc.poll() is None:
                return self
            self._kill()
        with open(os.path.join(self.dir, "unbound.log")) as f:
            raise RuntimeError("unbound did not start: " + f.read()[-1500:])

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
            self.log = None

    def stop(self):
        self._kill()
        if self.bad:
            self.bad.close()
            self.bad = None
        if self.keep:
            print("# dns server directory kept: %s" % self.dir, flush=True)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *a):
        self.stop()

    def stubs(self):
        s = ["%s:%s@%d" % (z.rstrip("."), self.ip, self.port) for z in self.zones]
        s.append("bad.test:%s@%d" % (self.ip, self.bad_port))
        return " ".join(s)

    def env(self, resolvers=None):
        return {"YUBIN_DNS_STUB": self.stubs(), "YUBIN_DNS_TA": self.ta_file,
                "YUBIN_DNS": resolvers or "%s@%d" % (self.ip, self.bad_port)}

    # changes at test time
    def _reload(self, zone):
        z = self.zones[zone]
        z.serial += 1
        self._write_zone(zone)
        self.proc.send_signal(signal.SIGHUP)
        if not wait_for(lambda: soa_serial(self.port, zone) == z.serial, timeout=10, step=0.05):
            raise RuntimeError("unbound did not load serial %d of %s" % (z.serial, zone))

    def _zone_of(self, name):
        name = name.rstrip(".").lower() + "."
        best = None
        for z in self.zones:
            if name == z or name.endswith("." + z):
                if best is None or len(z) > len(best):
                    best = z
        if best is None:
            raise KeyError("no zone for " + name)
        rel = name[:-len(best)].rstrip(".") or "@"
        return best, rel

    def set_records(self, zone, records):
        zone = zone.rstrip(".") + "."
        self.zones[zone].records = list(records)
        self._reload(zone)

    def add_records(self, zone, records):
        zone = zone.rstrip(".") + "."
        self.zones[zone].records += list(records)
        self._reload(zone)

    def remove_records(self, zone, match):
        zone = zone.rstrip(".") + "."
        z = self.zones[zone]
        z.records = [r for r in z.records if not r.startswith(match)]
        self._reload(zone)

    def set_tlsa(self, host, certfile, port=25, usage=3, selector=1, mtype=1, match=True):
        """Replace the TLSA records of _port._tcp.host by one made from
        certfile (match=False: the same with a digest of something else)."""
        zone, rel = self._zone_of(host)
        owner = "_%d._tcp" % port + ("" if rel == "@" else "." + rel)
        rdata = tlsa_rdata(certfile, usage, selector, mtype)
        if not match:
            u, s, m, h = rdata.split()
            h = hashlib.new("sha256" if m == "1" else "sha512", b"not " + bytes.fromhex(h)).hexdigest() \
                if m != "0" else "00" + h[2:]
            rdata = " ".join((u, s, m, h))
        z = self.zones[zone]
        z.records = [r for r in z.records if r.split()[0] != owner] + ["%s TLSA %s" % (owner, rdata)]
        self._reload(zone)
        return rdata
