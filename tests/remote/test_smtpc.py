#!/usr/bin/env python3
"""yubin-remote (remote/smtpc.c, remote/tlsc.c) against fake SMTP servers
on 127.0.0.1: the dialogue byte for byte, per-recipient outcomes, the
qmail-remote report, deadlines, and STARTTLS per the TLS level.

The target is given as "[127.0.0.1]:PORT" (yubin-remote's extension of
qmail-remote's "[ip]"), so no DNS is involved."""

import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from yubintest import binary, case_list, expect, make_cert, minimal_env, run_cases, sanitizer_report  # noqa: E402

CASES, case = case_list()


class FakeSMTP(threading.Thread):
    """One-connection SMTP server.  Knobs:
    ext: EHLO keywords (None: EHLO gets 502, HELO works);
    rcpt: addr -> reply line; final: reply to the end of data;
    greeting: bytes sent first (None: never answer);
    ehlo_raw: bytes sent as the EHLO reply instead of the normal one (an
      iterator of chunks for an endless reply);
    close_in_data: close after this many bytes of DATA;
    tls: a server SSLContext for STARTTLS (add "STARTTLS" to ext)."""

    def __init__(self, ext=("PIPELINING", "8BITMIME", "SIZE 10000000"), rcpt=None, final=b"250 2.0.0 ok queued\r\n",
                 greeting=b"220 fake.test ESMTP\r\n", ehlo_raw=None, close_in_data=None, tls=None,
                 data_reply=b"354 go ahead\r\n", mail_reply=b"250 2.1.0 ok\r\n", ip="127.0.0.1", port=0):
        super().__init__(daemon=True)
        self.ext = ext
        self.rcpt = rcpt or (lambda a: b"250 2.1.5 ok\r\n")
        self.final = final
        self.greeting = greeting
        self.ehlo_raw = ehlo_raw
        self.close_in_data = close_in_data
        self.tls = tls
        self.data_reply = data_reply
        self.mail_reply = mail_reply
        self.chunks = []        # every recv, in order (after the greeting)
        self.commands = []      # command lines, without CRLF
        self.data = None        # DATA bytes up to and including CRLF.CRLF
        self.tls_used = False
        self.ehlos = 0
        self.error = None
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((ip, port))
        self.ls.listen(4)
        self.port = self.ls.getsockname()[1]
        self.buf = b""
        self.stop = False

    def recv(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError
        self.chunks.append(d)
        self.buf += d

    def line(self):
        while b"\r\n" not in self.buf:
            self.recv()
        l, self.buf = self.buf.split(b"\r\n", 1)
        self.commands.append(l)
        return l

    def run(self):
        try:
            self.ls.settimeout(30)
            self.s, _ = self.ls.accept()
            self.s.settimeout(30)
            self.session()
        except (EOFError, OSError, ssl.SSLError) as e:
            self.error = repr(e)
        finally:
            try:
                self.s.close()
            except Exception:
                pass
            self.ls.close()

    def session(self):
        if self.greeting is None:
            end = time.monotonic() + 30
            while not self.stop and time.monotonic() < end:
                time.sleep(0.05)
            return
        self.s.sendall(self.greeting)
        if not self.greeting.startswith(b"220") or not self.greeting.endswith(b"\n"):
            end = time.monotonic() + 30
            while not self.stop and time.monotonic() < end:
                time.sleep(0.05)
            return
        while True:
            l = self.line()
            u = l.upper()
            if u.startswith(b"EHLO"):
                self.ehlos += 1
                if self.ehlo_raw is not None:
                    if isinstance(self.ehlo_raw, bytes):
                        self.s.sendall(self.ehlo_raw)
                    else:
                        for chunk in self.ehlo_raw:
                            if self.stop:
                                return
                            self.s.sendall(chunk)
                    continue
                if self.ext is None:
                    self.s.sendall(b"502 5.5.1 no EHLO here\r\n")
                    continue
                ext = [e for e in self.ext if not (self.tls_used and e == "STARTTLS")]
                lines = [b"fake.test hello"] + [e.encode() for e in ext]
                out = b"".join(b"250-" + x + b"\r\n" for x in lines[:-1]) + b"250 " + lines[-1] + b"\r\n"
                self.s.sendall(out)
            elif u.startswith(b"HELO"):
                self.s.sendall(b"250 fake.test\r\n")
            elif u == b"STARTTLS":
                self.s.sendall(b"220 2.0.0 go\r\n")
                self.s = self.tls.wrap_socket(self.s, server_side=True)
                self.tls_used = True
                self.buf = b""
            elif u.startswith(b"MAIL FROM:"):
                self.s.sendall(self.mail_reply)
            elif u.startswith(b"RCPT TO:"):
                self.s.sendall(self.rcpt(l[9:-1].decode(errors="replace")))
            elif u == b"DATA":
                self.s.sendall(self.data_reply)
                if not self.data_reply.startswith(b"354"):
                    continue
                while b"\r\n.\r\n" not in self.buf and not (self.buf.startswith(b".\r\n")):
                    if self.close_in_data is not None and len(self.buf) >= self.close_in_data:
                        self.s.close()
                        return
                    self.recv()
                if self.buf.startswith(b".\r\n"):
                    i = 3
                else:
                    i = self.buf.index(b"\r\n.\r\n") + 5
                self.data, self.buf = self.buf[:i], self.buf[i:]
                self.s.sendall(self.final)
            elif u == b"RSET":
                self.s.sendall(b"250 ok\r\n")
            elif u == b"QUIT":
                self.s.sendall(b"221 bye\r\n")
                return
            else:
                self.s.sendall(b"500 what\r\n")


class Fixture:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="yubin-smtpc-")
        os.makedirs(os.path.join(self.dir, "control"))
        self.control("me", "client.test")
        self.control("timeoutremote", "3")
        self.control("timeoutconnect", "3")
        self.servers = []

    def control(self, name, value):
        with open(os.path.join(self.dir, "control", name), "w") as f:
            f.write(value + "\n")

    def server(self, **kw):
        s = FakeSMTP(**kw)
        s.start()
        self.servers.append(s)
        return s

    def tls_ctx(self, cn="fake.test", san=None):
        key, cert = os.path.join(self.dir, "key.pem"), os.path.join(self.dir, "cert.pem")
        if san:
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=" + cn,
                            "-addext", "subjectAltName=" + san],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        else:
            make_cert(key, cert, cn)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.cert = cert
        return ctx

    def remote(self, srv, rcpts, msg=b"Subject: t\n\nhello\n", sender="a@client.test", pipe=False, timeout=30,
               host=None, env=None):
        """Run yubin-remote; returns (report list of (letter, text), stderr, seconds)."""
        host = host or "[127.0.0.1]:%d" % srv.port
        env = minimal_env(dict(env or {}, YUBIN_ROOT=self.dir))
        t0 = time.monotonic()
        if pipe:
            p = subprocess.run([binary("yubin-remote"), host, sender] + rcpts, input=msg, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        else:
            path = os.path.join(self.dir, "msg")
            with open(path, "wb") as f:
                f.write(msg)
            with open(path, "rb") as f:
                p = subprocess.run([binary("yubin-remote"), host, sender] + rcpts, stdin=f, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        secs = time.monotonic() - t0
        srv.stop = True
        srv.join(10)
        err = p.stderr.decode(errors="replace")
        rep = sanitizer_report(err)
        expect(rep is None, "sanitizer: " + str(rep))
        expect(p.returncode == 0, "exit %d: %s" % (p.returncode, err))
        parts = p.stdout.split(b"\0")
        expect(parts[-1] == b"", "report does not end with NUL: %r" % p.stdout)
        report = [(x[:1].decode(), x[1:].decode(errors="replace")) for x in parts[:-1]]
        expect(len(report) == len(rcpts) + 1, "report %r for %d recipients" % (report, len(rcpts)))
        return report, err, secs

    def cleanup(self):
        for s in self.servers:
            s.stop = True
        shutil.rmtree(self.dir, ignore_errors=True)


def letters(report):
    return "".join(l for l, _ in report)


def mail_cmd(srv):
    return [c for c in srv.commands if c.upper().startswith(b"MAIL")]


@case
def pipelining_one_write(f):
    srv = f.server()
    rep, err, _ = f.remote(srv, ["x@dest.test", "y@dest.test"])
    expect(letters(rep) == "rrK", "report %r" % rep)
    batch = [c for c in srv.chunks if c.startswith(b"MAIL")]
    expect(len(batch) == 1 and batch[0].endswith(b"DATA\r\n") and batch[0].count(b"RCPT TO:") == 2,
           "MAIL+RCPTs+DATA not in one write: %r" % srv.chunks)
    expect(b"SIZE=" in mail_cmd(srv)[0], "no SIZE= in %r" % mail_cmd(srv))
    expect("said: 250 2.0.0 ok queued" in rep[0][1], "text %r" % rep[0][1])
    expect("delivery" in err and "result=K" in err, "log %r" % err)


@case
def no_pipelining_one_by_one(f):
    srv = f.server(ext=("8BITMIME",))
    rep, _, _ = f.remote(srv, ["x@dest.test", "y@dest.test"])
    expect(letters(rep) == "rrK", "report %r" % rep)
    starts = [c[:4] for c in srv.chunks]
    expect(b"MAIL" in starts and starts.count(b"RCPT") == 2 and b"DATA" in starts,
           "commands not one per write: %r" % srv.chunks)
    expect(mail_cmd(srv) == [b"MAIL FROM:<a@client.test>"], "MAIL %r" % mail_cmd(srv))


@case
def helo_fallback(f):
    srv = f.server(ext=None)
    rep, _, _ = f.remote(srv, ["x@dest.test"])
    expect(letters(rep) == "rK", "report %r" % rep)
    expect(any(c.startswith(b"HELO client.test") for c in srv.commands), "no HELO: %r" % srv.commands)


@case
def size_refused_before_mail(f):
    srv = f.server(ext=("PIPELINING", "SIZE 100"))
    rep, _, _ = f.remote(srv, ["x@dest.test", "y@dest.test"], msg=b"Subject: big\n\n" + b"x" * 200 + b"\n")
    expect(letters(rep) == "hhD", "report %r" % rep)
    expect("at most 100 bytes" in rep[0][1], "text %r" % rep[0][1])
    expect(not mail_cmd(srv), "MAIL was sent: %r" % srv.commands)


@case
def size_counts_crlf(f):
    msg = b"a\n" * 40        # 80 LF bytes, 120 CRLF bytes (+3 for the dot)
    srv = f.server(ext=("SIZE 100",))
    rep, _, _ = f.remote(srv, ["x@dest.test"], msg=msg)
    expect(letters(rep) == "hD", "report %r (CRLF size not counted)" % rep)


@case
def eightbitmime(f):
    msg = "Subject: é\n\ncafé\n".encode()
    srv = f.server()
    rep, _, _ = f.remote(srv, ["x@dest.test"], msg=msg)
    expect(letters(rep) == "rK", "report %r" % rep)
    expect(b"BODY=8BITMIME" in mail_cmd(srv)[0], "MAIL %r" % mail_cmd(srv))
    expect(srv.data == msg.replace(b"\n", b"\r\n") + b".\r\n", "data %r" % srv.data)
    srv2 = f.server(ext=("PIPELINING",))
    f.remote(srv2, ["x@dest.test"], msg=msg)
    expect(b"BODY=" not in mail_cmd(srv2)[0], "BODY= without 8BITMIME: %r" % mail_cmd(srv2))
    srv3 = f.server()
    f.remote(srv3, ["x@dest.test"], msg=b"ascii\n")
    expect(b"BODY=" not in mail_cmd(srv3)[0], "BODY= for 7-bit: %r" % mail_cmd(srv3))


@case
def smtputf8_refused_bounces(f):
    srv = f.server()
    rep, _, _ = f.remote(srv, ["jö@dest.test", "x@dest.test"])
    expect(letters(rep) == "hhD", "report %r" % rep)
    expect("SMTPUTF8" in rep[0][1], "text %r" % rep[0][1])
    expect(not mail_cmd(srv), "MAIL was sent: %r" % srv.commands)


@case
def smtputf8_offered(f):
    srv = f.server(ext=("PIPELINING", "SMTPUTF8", "8BITMIME"))
    rep, _, _ = f.remote(srv, ["jö@dest.test"], sender="ä@client.test")
    expect(letters(rep) == "rK", "report %r" % rep)
    expect(mail_cmd(srv)[0].endswith(b" SMTPUTF8"), "MAIL %r" % mail_cmd(srv))


@case
def per_recipient_mix(f):
    replies = {"ok@dest.test": b"250 2.1.5 ok\r\n", "later@dest.test": b"450 4.2.0 busy\r\n",
               "no@dest.test": b"550 5.1.1 no such user\r\n"}
    for ext in (("PIPELINING",), ()):
        srv = f.server(ext=ext, rcpt=lambda a: replies[a])
        rep, _, _ = f.remote(srv, ["ok@dest.test", "later@dest.test", "no@dest.test"])
        expect(letters(rep) == "rshK", "ext %r: report %r" % (ext, rep))
        expect(rep[2][1] == "[127.0.0.1] said: 550 5.1.1 no such user", "text %r" % rep[2][1])
        expect("450 4.2.0 busy" in rep[1][1], "text %r" % rep[1][1])


@case
def all_rcpts_refused_no_data(f):
    srv = f.server(ext=(), rcpt=lambda a: b"550 5.1.1 no\r\n")
    rep, _, _ = f.remote(srv, ["x@dest.test"])
    expect(letters(rep) == "hD", "report %r" % rep)
    expect(b"DATA" not in srv.commands, "DATA sent: %r" % srv.commands)


@case
def mail_refused(f):
    srv = f.server(mail_reply=b"553 5.7.1 sender refused\r\n")
    rep, _, _ = f.remote(srv, ["x@dest.test", "y@dest.test"])
    expect(letters(rep) == "hhD", "report %r" % rep)
    expect("553 5.7.1 sender refused" in rep[0][1], "text %r" % rep[0][1])


@case
def final_reply_outcomes(f):
    srv = f.server(final=b"554 5.6.0 rejected content\r\n")
    rep, _, _ = f.remote(srv, ["x@dest.test"])
    expect(letters(rep) == "hD", "554: report %r" % rep)
    srv = f.server(final=b"451 4.3.0 try later\r\n")
    rep, _, _ = f.remote(srv, ["x@dest.test"])
    expect(letters(rep) == "sZ", "451: report %r" % rep)


@case
def multiline_reply_text(f):
    srv = f.server(rcpt=lambda a: b"550-5.1.1 first\r\n550-5.1.1 second\r\n550 5.1.1 third\r\n")
    rep, _, _ = f.remote(srv, ["x@dest.test"])
    expect(rep[0] == ("h", "[127.0.0.1] said: 550-5.1.1 first / 5.1.1 second / 5.1.1 third"), "report %r" % rep)


@case
def dot_stuffing_crlf(f):
    msg = b"Subject: dots\n\n.start\n..two\n.\nmid.dle\n\n.\n"
    srv = f.server()
    rep, _, _ = f.remote(srv, ["x@dest.test"], msg=msg)
    expect(letters(rep) == "rK", "report %r" % rep)
    want = b"Subject: dots\r\n\r\n..start\r\n...two\r\n..\r\nmid.dle\r\n\r\n..\r\n.\r\n"
    expect(srv.data == want, "data %r, want %r" % (srv.data, want))


@case
def no_final_newline(f):
    srv = f.server()
    rep, _, _ = f.remote(srv, ["x@dest.test"], msg=b"Subject: x\n\nlast line\n.dot")
    expect(letters(rep) == "rK", "report %r" % rep)
    want = b"Subject: x\r\n\r\nlast line\r\n..dot\r\n.\r\n"
    expect(srv.data == want, "data %r" % srv.data)


@case
def big_message_from_pipe(f):
    body = b"".join(b"line %06d .x\n" % i + (b".dot\n" if i % 7 == 0 else b"") for i in range(30000))
    msg = b"Subject: big\n\n" + body
    srv = f.server()
    rep, _, _ = f.remote(srv, ["x@dest.test"], msg=msg, pipe=True)
    expect(letters(rep) == "rK", "report %r" % rep)
    want = msg.replace(b"\n.", b"\n..").replace(b"\n", b"\r\n") + b".\r\n"
    expect(srv.data == want, "data differs: %d bytes, want %d" % (len(srv.data or b""), len(want)))


@case
def close_mid_data(f):
    srv = f.server(close_in_data=10)
    rep, _, _ = f.remote(srv, ["x@dest.test", "y@dest.test"], msg=b"Subject: x\n\n" + b"y" * 300000 + b"\n")
    expect(letters(rep) == "ssZ", "report %r" % rep)


@case
def endless_reply_line(f):
    srv = f.server(greeting=b"220 " + b"x" * 5000)
    rep, _, secs = f.remote(srv, ["x@dest.test"])
    expect(letters(rep) == "sZ", "report %r" % rep)
    expect("512" in rep[-1][1], "text %r" % rep[-1][1])
    expect(secs < 2.5, "took %.1fs (the cut should not wait for the deadline)" % secs)


@case
def endless_multiline_reply(f):
    def forever():
        for _ in range(100000):
            yield b"250-more\r\n" * 20
    srv = f.server(ehlo_raw=forever())
    rep, _, secs = f.remote(srv, ["x@dest.test"])
    expect(letters(rep) == "sZ", "report %r" % rep)
    expect("100 lines" in rep[-1][1], "text %r" % rep[-1][1])


@case
def never_answers(f):
    f.control("timeoutremote", "2")
    srv = f.server(greeting=None)
    rep, _, secs = f.remote(srv, ["x@dest.test"])
    expect(letters(rep) == "sZ", "report %r" % rep)
    expect("timed out" in rep[-1][1], "text %r" % rep[-1][1])
    expect(1.5 < secs < 5, "took %.1fs with timeoutremote 2" % secs)


class NoServer:
    """A port nobody listens on, in place of a FakeSMTP."""
    def __init__(self):
        from yubintest import free_port
        self.port = free_port()
        self.stop = False

    def join(self, t):
        pass


@case
def connect_refused(f):
    rep, _, _ = f.remote(NoServer(), ["x@dest.test"])
    expect(letters(rep) == "sZ", "report %r" % rep)
    expect("connect: Connection refused" in rep[-1][1], "text %r" % rep[-1][1])


@case
def starttls_used(f):
    ctx = f.tls_ctx()
    srv = f.server(ext=("PIPELINING", "STARTTLS"), tls=ctx)
    rep, err, _ = f.remote(srv, ["x@dest.test"])
    expect(letters(rep) == "rK", "report %r; log %r; server %r" % (rep, err, srv.error))
    expect(srv.tls_used and srv.ehlos == 2, "tls %r ehlos %d" % (srv.tls_used, srv.ehlos))
    expect("tls=TLSv1.3" in err and "verified=none" in err and "cipher=TLS_" in err, "log %r" % err)


@case
def tls_none_skips_starttls(f):
    f.control("tlsdestinations", ":none")
    srv = f.server(ext=("PIPELINING", "STARTTLS"), tls=f.tls_ctx())
    rep, err, _ = f.remote(srv, ["x@dest.test"])
    expect(letters(rep) == "rK" and not srv.tls_used, "report %r tls %r" % (rep, srv.tls_used))


@case
def verify_selfsigned_defers(f):
    f.control("tlsdestinations", ":verify")
    srv = f.server(ext=("PIPELINING", "STARTTLS"), tls=f.tls_ctx())
    rep, err, _ = f.remote(srv, ["x@dest.test"])
    expect(letters(rep) == "sZ", "report %r" % rep)
    expect("verification failed" in rep[-1][1], "text %r" % rep[-1][1])
    expect(not mail_cmd(srv), "MAIL sent: %r" % srv.commands)


@case
def verify_with_cafile(f):
    ctx = f.tls_ctx(cn="fake.test", san="IP:127.0.0.1")
    f.control("tlscafile", f.cert)
    f.control("tlsdestinations", "[127.0.0.1]:none\n.test:may\n:verify")
    srv = f.server(ext=("PIPELINING", "STARTTLS"), tls=ctx)
    # the host argument is "[127.0.0.1]:PORT": the default (verify) applies
    rep, err, _ = f.remote(srv, ["x@dest.test"])
    expect(letters(rep) == "rK", "report %r; log %r" % (rep, err))
    expect("verified=ca" in err and "level=verify" in err, "log %r" % err)


@case
def encrypt_without_starttls_defers(f):
    f.control("tlsdestinations", ":encrypt")
    srv = f.server(ext=("PIPELINING",))
    rep, _, _ = f.remote(srv, ["x@dest.test"])
    expect(letters(rep) == "sZ", "report %r" % rep)
    expect("STARTTLS not offered" in rep[-1][1], "text %r" % rep[-1][1])
    expect(not mail_cmd(srv), "MAIL sent: %r" % srv.commands)


# ---------------------------------------------------------------- DANE, with the test DNS server

_dns = []


def dns_server():
    """One DNSServer (tests/lib/dnstest.py) for every DANE case, or None."""
    if not _dns:
        try:
            from dnstest import DNSServer
            d = DNSServer()
            d.start()
            import atexit
            atexit.register(d.stop)
            _dns.append(d)
        except Exception as e:  # no unbound: the cases say so
            _dns.append(e)
    return _dns[0]


def dane_setup(f, zone, match=True, usage=3, starttls=True, selector=1, mtype=1):
    """A STARTTLS server at mx.<zone> (127.0.0.31, a free port) routed by
    smtproutes, with a TLSA record for its certificate."""
    from yubintest import free_port
    dns = dns_server()
    expect(not isinstance(dns, Exception), "test DNS server: %r" % dns)
    port = free_port("127.0.0.31")
    ctx = f.tls_ctx(cn="mx." + zone)
    f.control("smtproutes", "%s:mx.%s:%d" % (zone, zone, port))
    dns.set_tlsa("mx." + zone, f.cert, port=port, usage=usage, selector=selector, mtype=mtype, match=match)
    srv = f.server(ext=("PIPELINING", "STARTTLS") if starttls else ("PIPELINING",), tls=ctx, ip="127.0.0.31", port=port)
    return dns, srv


@case
def dane_ee_delivers(f):
    dns, srv = dane_setup(f, "secure.test")
    rep, err, _ = f.remote(srv, ["x@secure.test"], host="secure.test", env=dns.env())
    expect(letters(rep) == "rK", "report %r; log %r" % (rep, err))
    expect("verified=dane-ee" in err and "level=dane" in err and "peer=mx.secure.test[127.0.0.31]" in err, "log %r" % err)


@case
def dane_ee_full_spki_delivers(f):
    # 3 1 0: the whole SubjectPublicKeyInfo (91 bytes for P-256, 294 for
    # RSA 2048), longer than a digest: once dropped by a fixed buffer
    dns, srv = dane_setup(f, "secure.test", selector=1, mtype=0)
    from dnstest import tlsa_rdata
    expect(len(tlsa_rdata(f.cert, 3, 1, 0).split()[3]) > 2 * 64, "SPKI not longer than 64 bytes")
    rep, err, _ = f.remote(srv, ["x@secure.test"], host="secure.test", env=dns.env())
    expect(letters(rep) == "rK", "report %r; log %r" % (rep, err))
    expect("verified=dane-ee" in err and "level=dane" in err, "log %r" % err)


@case
def dane_ee_full_cert_delivers(f):
    # 3 0 0: the whole certificate (hundreds of bytes)
    dns, srv = dane_setup(f, "secure.test", selector=0, mtype=0)
    rep, err, _ = f.remote(srv, ["x@secure.test"], host="secure.test", env=dns.env())
    expect(letters(rep) == "rK", "report %r; log %r" % (rep, err))
    expect("verified=dane-ee" in err and "level=dane" in err, "log %r" % err)


@case
def dane_ee_sha512_delivers(f):
    # 3 0 2: SHA-512 of the certificate, 64 bytes of data
    dns, srv = dane_setup(f, "secure.test", selector=0, mtype=2)
    rep, err, _ = f.remote(srv, ["x@secure.test"], host="secure.test", env=dns.env())
    expect(letters(rep) == "rK", "report %r; log %r" % (rep, err))
    expect("verified=dane-ee" in err and "level=dane" in err, "log %r" % err)


@case
def dane_full_spki_mismatch_defers(f):
    # a well-formed full SPKI of another key: used, does not match, defers
    dns, srv = dane_setup(f, "secure.test", selector=1, mtype=0)
    other_key, other = os.path.join(f.dir, "other-key.pem"), os.path.join(f.dir, "other.pem")
    make_cert(other_key, other, "mx.secure.test")
    dns.set_tlsa("mx.secure.test", other, port=srv.port, selector=1, mtype=0)
    rep, err, _ = f.remote(srv, ["x@secure.test"], host="secure.test", env=dns.env())
    expect(letters(rep) == "sZ", "report %r; log %r" % (rep, err))
    expect("DANE verification failed" in rep[-1][1], "text %r" % rep[-1][1])
    expect(not mail_cmd(srv), "MAIL sent: %r" % srv.commands)


def dane_alias(f, dns, srv):
    """route secure.test to alias.secure.test, a CNAME of mx.secure.test
    (the chain signed): RFC 7672 2.2.2"""
    dns.remove_records("secure.test", "alias ")
    dns.add_records("secure.test", ["alias CNAME mx"])
    f.control("smtproutes", "secure.test:alias.secure.test:%d" % srv.port)


@case
def dane_cname_tlsa_at_target(f):
    # the TLSA of the CNAME's target is used (none at the alias)
    dns, srv = dane_setup(f, "secure.test")
    dane_alias(f, dns, srv)
    rep, err, _ = f.remote(srv, ["x@secure.test"], host="secure.test", env=dns.env())
    expect(letters(rep) == "rK", "report %r; log %r" % (rep, err))
    expect("verified=dane-ee" in err and "level=dane" in err, "log %r" % err)


@case
def dane_cname_tlsa_at_alias(f):
    # no TLSA at the target: the alias's own name is looked up next
    dns, srv = dane_setup(f, "secure.test")
    dns.remove_records("secure.test", "_%d._tcp.mx " % srv.port)
    dane_alias(f, dns, srv)
    dns.set_tlsa("alias.secure.test", f.cert, port=srv.port)
    rep, err, _ = f.remote(srv, ["x@secure.test"], host="secure.test", env=dns.env())
    expect(letters(rep) == "rK", "report %r; log %r" % (rep, err))
    expect("verified=dane-ee" in err and "level=dane" in err, "log %r" % err)


@case
def dane_cname_target_first(f):
    # a non-matching TLSA at the target wins over a matching one at the alias
    dns, srv = dane_setup(f, "secure.test", match=False)
    dane_alias(f, dns, srv)
    dns.set_tlsa("alias.secure.test", f.cert, port=srv.port)
    rep, err, _ = f.remote(srv, ["x@secure.test"], host="secure.test", env=dns.env())
    expect(letters(rep) == "sZ", "report %r; log %r" % (rep, err))
    expect("DANE verification failed" in rep[-1][1], "text %r" % rep[-1][1])
    expect(not mail_cmd(srv), "MAIL sent: %r" % srv.commands)


@case
def dane_mismatch_defers(f):
    dns, srv = dane_setup(f, "secure.test", match=False)
    rep, err, _ = f.remote(srv, ["x@secure.test"], host="secure.test", env=dns.env())
    expect(letters(rep) == "sZ", "report %r; log %r" % (rep, err))
    expect("DANE verification failed" in rep[-1][1], "text %r" % rep[-1][1])
    expect(not mail_cmd(srv), "MAIL sent: %r" % srv.commands)


@case
def dane_without_starttls_defers(f):
    dns, srv = dane_setup(f, "secure.test", starttls=False)
    rep, err, _ = f.remote(srv, ["x@secure.test"], host="secure.test", env=dns.env())
    expect(letters(rep) == "sZ", "report %r; log %r" % (rep, err))
    expect(not mail_cmd(srv), "MAIL sent (cleartext despite TLSA): %r" % srv.commands)


@case
def dane_unusable_tlsa_is_encrypt(f):
    dns, srv = dane_setup(f, "secure.test", usage=1)     # PKIX-EE: unusable (RFC 7672 3.1.3)
    rep, err, _ = f.remote(srv, ["x@secure.test"], host="secure.test", env=dns.env())
    expect(letters(rep) == "rK", "report %r; log %r" % (rep, err))
    expect("level=encrypt" in err and "verified=none" in err, "log %r" % err)
    dns2, srv2 = dane_setup(f, "secure.test", usage=1, starttls=False)
    rep, err, _ = f.remote(srv2, ["x@secure.test"], host="secure.test", env=dns2.env())
    expect(letters(rep) == "sZ", "no STARTTLS: report %r; log %r" % (rep, err))


@case
def dane_unsigned_zone_is_opportunistic(f):
    dns, srv = dane_setup(f, "plain.test", match=False)
    f.control("tlsdestinations", ":dane")
    rep, err, _ = f.remote(srv, ["x@plain.test"], host="plain.test", env=dns.env())
    expect(letters(rep) == "rK", "report %r; log %r" % (rep, err))
    expect("verified=none" in err and "level=may" in err and srv.tls_used, "log %r" % err)


@case
def usage(f):
    p = subprocess.run([binary("yubin-remote"), "x"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=minimal_env({"YUBIN_ROOT": f.dir}), timeout=10)
    expect(p.returncode == 100, "exit %d" % p.returncode)


if __name__ == "__main__":
    sys.exit(run_cases(CASES, Fixture))
