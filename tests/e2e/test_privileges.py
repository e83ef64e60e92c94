#!/usr/bin/env python3
"""End to end: least privilege.  As root (CI): nothing that reads the network
runs as root, the queue belongs to yubinq, mail to yubinv, logs to yubinl.
As an ordinary user: everything runs as that user.  Always: yubin-smtpd does
not link OpenSSL."""

import os
import pwd
from grp import getgrnam
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from yubintest import Instance, SMTPRaw, bin_dir, check, is_root, run, send  # noqa: E402


def uids(pid):
    """(real, effective, saved) uid and (real, effective) gid of a process."""
    u = g = None
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                u = [int(x) for x in line.split()[1:4]]
            elif line.startswith("Gid:"):
                g = [int(x) for x in line.split()[1:3]]
    return u, g


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().decode(errors="replace").split("\0")
    except OSError:
        return []


def procs_named(inst, name):
    """pids of the instance's processes whose program is name."""
    out = []
    for pid, exe, cwd, cmd in inst.processes():
        if os.path.basename(exe) == name or (cmd.split() or [""])[0].endswith("/" + name):
            out.append(pid)
    return out


def main():
    # (g) smtpd never links the TLS library: not as a shared library, and
    # (it is linked statically) not inside the binary either
    smtpd = os.path.join(bin_dir(), "yubin-smtpd")
    r = subprocess.run(["ldd", smtpd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    libs = r.stdout.decode(errors="replace")
    with open(smtpd, "rb") as f:
        image = f.read()
    inside = [m for m in (b"OpenSSL", b"SSL_CTX_new", b"EVP_PBE_scrypt") if m in image]
    check("smtpd-no-openssl", "libssl" not in libs and "libcrypto" not in libs and not inside,
          "ldd %s:\n%s\nsymbols inside: %r" % (smtpd, libs, inside))

    root = is_root()
    with Instance() as inst:
        if root:
            want = {n: pwd.getpwnam(n).pw_uid for n in ("yubind", "yubins", "yubinq", "yubinl", "yubinv", "yubinb")}
        else:
            me = os.getuid()
            want = {n: me for n in ("yubind", "yubins", "yubinq", "yubinl", "yubinv", "yubinb")}
        who = "root" if root else "user"

        # an open session keeps one yubin-smtpd alive to look at
        c = SMTPRaw(inst.ip, inst.smtp_port)
        c.reply()
        time.sleep(0.1)
        for name, user in (("yubin-smtpd", "yubind"), ("listener", "yubind"),
                           ("yubin-qmgr", "yubinq"), ("s6-log", "yubinl"),
                           ("yubin-banwatch", "yubinb")):
            if name == "listener":
                # port 25's listener is yubin-smtpd -l (its own tcpserver);
                # submission and smtps have tcpservers of their own as yubins
                pids = [p for p in procs_named(inst, "yubin-smtpd")
                        if "-l" in cmdline(p) and str(inst.smtp_port) in cmdline(p)]
            else:
                pids = procs_named(inst, name)
            bad = []
            for pid in pids:
                try:
                    u, g = uids(pid)
                except OSError:
                    continue
                if set(u) != {want[user]} or 0 in u or (root and 0 in g):
                    bad.append((pid, u, g))
            check("%s-runs-as-%s [%s]" % (name, user, who), pids and not bad,
                  "no such process" if not pids else "uids/gids %r, want uid %d" % (bad, want[user]))
        # submission and smtps listen as yubins, a uid of their own: their
        # listeners are yubin-tlsd -l, which read the key as root (group
        # yubintls) and kept neither root nor the key's group
        subs = [p for p in procs_named(inst, "yubin-tlsd")
                if "-l" in cmdline(p)
                and any(" %d " % port in " %s " % " ".join(cmdline(p)) for port in (inst.submission_port, inst.smtps_port))]
        keygid = getgrnam("yubintls").gr_gid if root else None
        bad = []
        for pid in subs:
            try:
                u, g = uids(pid)
            except OSError:
                continue
            if set(u) != {want["yubins"]} or (root and (0 in g or keygid in g)):
                bad.append((pid, u, g))
        check("submission-listeners-run-as-yubins [%s]" % who, len(subs) == 2 and not bad,
              "no such process" if not subs else "%d listeners, uids/gids %r, want uid %d" % (len(subs), bad, want["yubins"]))
        # the only root processes: supervision, the local-delivery spawner,
        # and the POP3/IMAP listeners, whose per-connection monitor must
        # stay root to let checkpassword become the user (it never reads
        # the network: tests/pop3d checks its pre-login child's uid)
        if root:
            allowed = {"s6-svscan", "s6-supervise", "yubin-lspawn"}
            readers = [inst.pop3_port, inst.pop3s_port, getattr(inst, "imap_port", -1), getattr(inst, "imaps_port", -1)]
            rootprocs = []
            for pid, exe, cwd, cmd in inst.processes():
                try:
                    u, g = uids(pid)
                except OSError:
                    continue
                if os.path.basename(exe) == "tcpserver" and any(" %d " % port in " %s " % cmd for port in readers):
                    continue
                if 0 in u and os.path.basename(exe) not in allowed:
                    rootprocs.append("%d %s" % (pid, cmd[:80]))
            check("only-lspawn-s6-and-mail-readers-as-root", not rootprocs, "root: %r" % rootprocs)
        c.cmd(b"QUIT")
        c.close()

        # the queue: yubin-queue setuid yubinq, every queue file owned by it
        q = os.stat(inst.path("bin", "yubin-queue"))
        if root:
            check("yubin-queue-setuid-yubinq", q.st_uid == want["yubinq"] and q.st_mode & stat.S_ISUID,
                  "owner %d mode %o" % (q.st_uid, q.st_mode))
        inst.svc("qmgr", "-d")
        deadline = time.monotonic() + 10
        while inst.service_pid("qmgr") and time.monotonic() < deadline:
            time.sleep(0.05)
        ok, r = send(inst, "p@example.org", ["demo@" + inst.domain], b"Subject: privtest\r\n\r\nhi\r\n")
        check("send-while-qmgr-down", ok and not r, "%r" % (r,))
        files = inst.queue_files()
        owners = {os.lstat(f).st_uid for f in files} | {os.lstat(d).st_uid
                                                        for d, _, _ in os.walk(inst.path("queue"))}
        check("queue-owned-by-yubinq [%s]" % who, files and owners == {want["yubinq"]},
              "files %d, owners %r, want %d" % (len(files), owners, want["yubinq"]))
        inst.svc("qmgr", "-u")
        msgs = inst.wait_for(lambda m: any(b"privtest" in d for _, d in m))
        mine = [p for p, d in msgs if b"privtest" in d]
        if check("delivered-after-qmgr-restart", mine, "not delivered"):
            st = os.stat(mine[0])
            vgid = pwd.getpwnam("yubinv").pw_gid if root else os.getgid()
            check("maildir-file-owned-by-yubinv [%s]" % who,
                  st.st_uid == want["yubinv"] and st.st_gid == vgid,
                  "owner %d:%d" % (st.st_uid, st.st_gid))
            check("maildir-file-private", not st.st_mode & 0o077, "mode %o" % st.st_mode)

        # password hashes: only the setgid yubin-checkpassword may read them
        pw = os.stat(inst.path("users", "passwd"))
        if root:
            import grp
            check("users-passwd-root-yubinauth-0640",
                  stat.S_IMODE(pw.st_mode) == 0o640 and pw.st_uid == 0
                  and pw.st_gid == grp.getgrnam("yubinauth").gr_gid,
                  "mode %o owner %d:%d" % (pw.st_mode, pw.st_uid, pw.st_gid))
            key = os.stat(inst.path("control", "key.pem"))
            check("tls-key-root-yubintls-0640",
                  stat.S_IMODE(key.st_mode) == 0o640 and key.st_uid == 0
                  and key.st_gid == grp.getgrnam("yubintls").gr_gid,
                  "mode %o owner %d:%d" % (key.st_mode, key.st_uid, key.st_gid))
        else:
            check("users-passwd-0600", stat.S_IMODE(pw.st_mode) == 0o600, "mode %o" % pw.st_mode)
        logs = os.stat(inst.path("log", "smtpd", "current"))
        check("log-owned-by-yubinl [%s]" % who, logs.st_uid == want["yubinl"], "owner %d" % logs.st_uid)


if __name__ == "__main__":
    run(main)
