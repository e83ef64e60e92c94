#!/usr/bin/env python3
"""yubin-tlsd -l, the submission and smtps listeners: one exec per
connection (yubin-smtpd; the TLS process is a fork of the listener, whose
TLS context was built once), the same listener process across
connections, and every ticket lifetime an exec afresh that reads the
certificate again: a renewed certificate is served without a restart."""

import hashlib
import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from yubintest import Instance, check, info, run, tls_client_ctx  # noqa: E402


def listener(inst, port):
    """pid of the yubin-tlsd -l listening on port, or 0."""
    for pid, exe, cwd, cmd in inst.processes():
        words = cmd.split()
        if os.path.basename(exe) == "yubin-tlsd" and "-l" in words and str(port) in words:
            # the listener, not a connection's child (which has the same
            # command line): its parent is s6-supervise
            try:
                with open("/proc/%d/stat" % pid) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                with open("/proc/%d/comm" % ppid) as f:
                    if f.read().strip() == "s6-supervise":
                        return pid
            except OSError:
                continue
    return 0


def starttls_once(inst):
    """EHLO, STARTTLS, EHLO; the server certificate's SHA-256."""
    with smtplib.SMTP(inst.ip, inst.submission_port, timeout=30) as s:
        s.ehlo("client.example.org")
        s.starttls(context=tls_client_ctx())
        s.ehlo("client.example.org")
        return hashlib.sha256(s.sock.getpeercert(binary_form=True)).hexdigest()


def smtps_cert(inst):
    with socket.create_connection((inst.ip, inst.smtps_port), timeout=30) as raw:
        with tls_client_ctx().wrap_socket(raw) as s:
            return hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()


def execs_per_connection(inst, pid, n=5):
    """execve calls under the listener while n STARTTLS sessions run."""
    out = inst.path("strace-tlsd.out")
    st = subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=execve", "-o", out, "-p", str(pid)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    for _ in range(n):
        starttls_once(inst)
    time.sleep(0.3)
    st.terminate()
    st.wait(10)
    with open(out) as f:
        lines = [ln for ln in f if "execve(" in ln and "= 0" in ln]
    return [re.search(r'execve\("([^"]+)"', ln).group(1) for ln in lines]


def make_certificate(d):
    """A new self-signed key and certificate in d; the certificate's
    SHA-256."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", os.path.join(d, "key.pem"), "-out", os.path.join(d, "cert.pem"),
                    "-days", "2", "-subj", "/CN=renewed.example"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    der = subprocess.run(["openssl", "x509", "-in", os.path.join(d, "cert.pem"), "-outform", "DER"],
                         check=True, stdout=subprocess.PIPE, timeout=30).stdout
    return hashlib.sha256(der).hexdigest()


def install_certificate(inst, d):
    """The key and certificate of d into control/, owned and moded as the
    old ones (each file replaced by a rename)."""
    for name in ("key.pem", "cert.pem"):
        dst = inst.path("control", name)
        st = os.stat(dst)
        tmp = dst + ".new"
        shutil.copyfile(os.path.join(d, name), tmp)
        os.chown(tmp, st.st_uid, st.st_gid)
        os.chmod(tmp, st.st_mode & 0o777)
        os.rename(tmp, dst)


def hostile(inst, sub, smtps):
    """Bytes from a hostile client at the listeners: random garbage and a
    ClientHello cut in half on smtps, a STARTTLS followed by garbage and
    pipelined commands after STARTTLS on submission.  Each connection is
    closed (or answered with an error), the listeners stay the same
    processes, and a good handshake works afterwards."""
    results = []
    # garbage where a ClientHello belongs, then a ClientHello cut short
    for data in (b"\xff" + os.urandom(4000), b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"A" * 40):
        with socket.create_connection((inst.ip, inst.smtps_port), timeout=20) as s:
            try:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                while s.recv(4096):
                    pass
                results.append(True)
            except (ConnectionResetError, BrokenPipeError):
                results.append(True)
            except OSError:
                results.append(False)
    # STARTTLS with commands pipelined behind it (they must not run in
    # clear after the handshake), then garbage instead of a handshake
    with socket.create_connection((inst.ip, inst.submission_port), timeout=20) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"EHLO x\r\n")
        while True:
            ln = f.readline()
            if not ln or ln[3:4] == b" ":
                break
        s.sendall(b"STARTTLS\r\nMAIL FROM:<a@b>\r\n")
        reply = f.readline()
        results.append(reply[:3] in (b"220", b"503", b"554"))
        try:
            s.sendall(os.urandom(2000))
            s.shutdown(socket.SHUT_WR)
            rest = s.recv(4096)
            results.append(b"250" not in rest)
        except OSError:
            results.append(True)
    check("tls-listener-hostile-closed", all(results), repr(results))
    check("tls-listener-hostile-same-listeners",
          listener(inst, inst.submission_port) == sub and listener(inst, inst.smtps_port) == smtps,
          "listeners changed")
    check("tls-listener-hostile-then-handshake", bool(smtps_cert(inst)) and bool(starttls_once(inst)), "")


def main():
    with Instance() as inst:
        sub = listener(inst, inst.submission_port)
        smtps = listener(inst, inst.smtps_port)
        check("tls-listeners-running", sub and smtps, "submission %d smtps %d" % (sub, smtps))
        if not sub:
            return
        old = starttls_once(inst)
        execs = execs_per_connection(inst, sub)
        info("execve under the listener for 5 sessions: %r" % execs)
        check("tls-listener-one-exec-per-connection",
              len(execs) == 5 and all(e.endswith("/yubin-smtpd") for e in execs), repr(execs))
        check("tls-listener-same-process", listener(inst, inst.submission_port) == sub, "listener changed")
        hostile(inst, sub, smtps)

        # a short ticket lifetime: the listener execs afresh that often
        d = tempfile.mkdtemp()
        fp = make_certificate(d)
        with open(inst.path("control", "tlsticketlifetime"), "w") as f:
            f.write("5\n")
        inst.svc("submission", "-t")
        inst.svc("smtps", "-t")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and listener(inst, inst.submission_port) in (0, sub):
            time.sleep(0.1)
        sub2 = listener(inst, inst.submission_port)
        install_certificate(inst, d)
        shutil.rmtree(d, ignore_errors=True)
        check("tls-listener-old-cert-until-refresh", starttls_once(inst) == old, "certificate changed at once")
        ok = inst.wait_log("submission", "refresh action=exec-afresh", time.monotonic() + 15)
        time.sleep(0.5)
        got, got465 = starttls_once(inst), smtps_cert(inst)
        check("tls-listener-refresh-logged", ok, inst.log("submission")[-400:])
        check("tls-listener-refresh-same-pid", listener(inst, inst.submission_port) == sub2,
              "%d -> %d" % (sub2, listener(inst, inst.submission_port)))
        check("tls-listener-renewed-cert-served", got == fp and got != old, "%s, want %s" % (got, fp))
        check("smtps-listener-renewed-cert-served", got465 == fp, "%s, want %s" % (got465, fp))
        # and mail still goes through
        with smtplib.SMTP(inst.ip, inst.submission_port, timeout=30) as s:
            s.ehlo("client.example.org")
            s.starttls(context=tls_client_ctx())
            s.login("demo@" + inst.domain, inst.demo_password)
            s.sendmail("demo@" + inst.domain, ["demo@" + inst.domain],
                       b"Subject: after-refresh\r\n\r\nhello\r\n")
        msgs = inst.wait_for(lambda m: any(b"after-refresh" in d for _, d in m))
        check("tls-listener-mail-after-refresh", any(b"after-refresh" in d for _, d in msgs), "not delivered")


if __name__ == "__main__":
    run(main)
