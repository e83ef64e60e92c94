#!/usr/bin/env python3
"""Addresses and domains as qmail has them (common/assign.h,
common/rewrite.h): yubin-newu's refusals; then one real instance with
SMTP in and the bytes checked in the right Maildir: users/assign exact
and wildcard lines (a Maildir, a .qmail-ext program), the alias user
(postmaster, mailer-daemon, root through alias/.qmail-* files; 550 for
an address no one takes), control/virtualdomains (a domain, a wildcard,
an exact address, an exception, 550 when the mapped local part has no
owner), control/envnoathost and control/percenthack through yubin-queue
and yubin-qmgr.  Binaries from $YUBIN_BIN.  Prints PASS name / FAIL
name: why per case."""

import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from yubintest import Instance, SMTPRaw, binary, check, is_root, run, send, skip  # noqa: E402
import yubintest  # noqa: E402


def sanitizer_build():
    return yubintest.sanitizer_build()


# ---------------------------------------------------------------- yubin-newu

def newu(root):
    env = dict(os.environ, YUBIN_ROOT=root)
    return subprocess.run([binary("yubin-newu")], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=30)


def newu_cases():
    root = tempfile.mkdtemp(prefix="t-newu-")
    try:
        os.mkdir(os.path.join(root, "users"))
        assign = os.path.join(root, "users", "assign")
        cdb = os.path.join(root, "users", "assign.cdb")

        r = newu(root)
        check("newu-missing-file", r.returncode == 111 and b"users/assign" in r.stderr and not os.path.exists(cdb),
              "%d %r" % (r.returncode, r.stderr))

        good = "=joe:joe:1000:1000:/home/joe:::\n+joe-:joe:1000:1000:/home/joe:-::\n.\n"
        with open(assign, "w") as f:
            f.write(good)
        r = newu(root)
        made = os.path.exists(cdb) and not os.path.exists(cdb + ".tmp")
        check("newu-good", r.returncode == 0 and made and not r.stderr, "%d %r" % (r.returncode, r.stderr))
        if made:
            check("newu-mode", oct(os.stat(cdb).st_mode & 0o777) == oct(0o644), oct(os.stat(cdb).st_mode))
        before = open(cdb, "rb").read() if made else b""
        check("newu-qmail-keys", b"!joe\x00" in before and b"!joe-" in before and b"joe\x001000\x001000\x00/home/joe\x00-\x00" in before,
              "%r" % before[-200:])

        bad = [
            ("newu-bad-uid", "=joe:joe:x:1:/h:::\n.\n", b"line 1: uid"),
            ("newu-bad-line2", "=joe:joe:1:1:/h:::\n=bob:bob:1:1:relative:::\n.\n", b"line 2: homedir"),
            ("newu-few-fields", "=joe:joe:1:1:/h::\n.\n", b"line 1: too few fields"),
            ("newu-trailing", "=joe:joe:1:1:/h:::junk\n.\n", b"line 1: text after"),
            ("newu-no-sign", "joe:joe:1:1:/h:::\n.\n", b"line 1: a line must start"),
            ("newu-empty-line", "=joe:joe:1:1:/h:::\n\n.\n", b"line 2: empty line"),
            ("newu-no-dot", "=joe:joe:1:1:/h:::\n", b"single dot"),
            ("newu-no-newline", "=joe:joe:1:1:/h:::", b"line 1: no newline"),
            ("newu-nul", "=joe:joe:1:1:/h\0:::\n.\n", b"line 1: NUL"),
            ("newu-empty-user", "=joe::1:1:/h:::\n.\n", b"line 1: empty user"),
        ]
        for name, text, want in bad:
            with open(assign, "w") as f:
                f.write(text)
            r = newu(root)
            after = open(cdb, "rb").read()
            check(name, r.returncode == 100 and want in r.stderr and b"yubin-newu: fatal:" in r.stderr
                  and after == before and not os.path.exists(cdb + ".tmp"),
                  "%d %r (cdb %s)" % (r.returncode, r.stderr, "kept" if after == before else "changed"))

        with open(assign, "w") as f:
            f.write("=joe:joe:1:1:/h:::\n.\nanything after the dot is ignored\n")
        r = newu(root)
        check("newu-after-dot", r.returncode == 0, "%d %r" % (r.returncode, r.stderr))
        r = subprocess.run([binary("yubin-newu"), "x"], env=dict(os.environ, YUBIN_ROOT=root),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        check("newu-usage", r.returncode == 100 and b"usage" in r.stderr, "%d %r" % (r.returncode, r.stderr))
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------- instance

def owner_ids(path):
    st = os.stat(path)
    return st.st_uid, st.st_gid


def write(path, data, owner=None, mode=0o644):
    with open(path, "w") as f:
        f.write(data)
    os.chmod(path, mode)
    if owner and os.geteuid() == 0:
        os.chown(path, *owner)


def make_home(path, owner):
    """A home with a Maildir, given to owner (uid, gid)."""
    for d in (path, os.path.join(path, "Maildir")) + tuple(os.path.join(path, "Maildir", s) for s in ("tmp", "new", "cur")):
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o700)
        if os.geteuid() == 0:
            os.chown(d, *owner)


def maildir_msgs(home):
    d = os.path.join(home, "Maildir", "new")
    out = []
    try:
        for n in sorted(os.listdir(d)):
            try:
                with open(os.path.join(d, n), "rb") as f:
                    out.append(f.read())
            except OSError:
                pass
    except OSError:
        pass
    return out


def wait_msg(home, marker, timeout=20):
    """The messages of home's Maildir holding marker, once there is one."""
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in maildir_msgs(home) if marker in m]
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.05)


def wait_file(path, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and os.path.getsize(path):
            time.sleep(0.1)
            with open(path, "rb") as f:
                return f.read()
        time.sleep(0.05)
    return None


def rcpt_codes(inst, rcpts):
    """The reply code of each RCPT, in one session."""
    s = SMTPRaw(inst.ip, inst.smtp_port)
    try:
        s.reply()
        s.cmd(b"EHLO client.example.org")
        s.cmd(b"MAIL FROM:<alice@example.org>")
        return [s.cmd(("RCPT TO:<%s>" % r).encode())[0] for r in rcpts]
    finally:
        s.close()


def mail(inst, rcpt, marker):
    body = ("Subject: %s\r\n\r\n%s body\r\n" % (marker, marker)).encode()
    return send(inst, "alice@example.org", [rcpt], body)


def queue_direct(inst, rcpt, marker):
    """A message straight into yubin-queue (an envelope smtpd would not
    take), as a local program would queue it."""
    msg = ("Subject: %s\n\n%s body\n" % (marker, marker)).encode()
    env = b"Falice@example.org\0T" + rcpt.encode() + b"\0\0"
    rfd, wfd = os.pipe()
    p = subprocess.Popen([inst.path("bin", "yubin-queue")], stdin=subprocess.PIPE, pass_fds=(),
                         stdout=rfd, env=inst.env())
    os.close(rfd)
    try:
        p.stdin.write(msg)
        p.stdin.close()
    except OSError:
        pass
    # the envelope goes on yubin-queue's fd 1: the read end above is its stdout
    os.write(wfd, env)
    os.close(wfd)
    return p.wait(timeout=30)


def instance_cases():
    with Instance() as inst:
        dom = inst.domain
        vowner = owner_ids(inst.path("home", "demo"))
        alias = inst.path("alias")
        check("alias-dir-made", os.path.isdir(alias), "package/setup made no alias/")
        if not os.path.isdir(alias):
            os.mkdir(alias, 0o755)
        aowner = owner_ids(alias)
        if is_root():
            check("alias-dir-owner", aowner[0] != 0, "alias/ belongs to root")

        # ---- users/assign
        sales, team = inst.path("home", "salesx"), inst.path("home", "teamx")
        make_home(sales, vowner)
        make_home(team, vowner)
        write(os.path.join(team, ".qmail-bugs"), '|cat > got-bugs; echo "$LOCAL $EXT $USER" > env-bugs\n', vowner)
        write(inst.path("users", "assign"),
              "=sales:salesx:%d:%d:%s:::\n+team-:teamx:%d:%d:%s:-::\n.\n" % (vowner + (sales,) + vowner + (team,)))
        r = subprocess.run([inst.path("bin", "yubin-newu")], env=inst.env(), stderr=subprocess.PIPE, timeout=30)
        check("assign-newu", r.returncode == 0, "%d %r" % (r.returncode, r.stderr))

        codes = rcpt_codes(inst, ["sales@" + dom, "SALES@" + dom, "team-bugs@" + dom, "team-other@" + dom,
                                  "demo@" + dom, "demo-ext@" + dom, "nobody@" + dom, "root@" + dom,
                                  "postmaster@" + dom, "sales-x@" + dom])
        check("rcpt-codes", codes == [250, 250, 250, 250, 250, 250, 550, 550, 250, 550], "%r" % codes)

        ok, refused = mail(inst, "Sales@" + dom, "assign-exact")
        got = wait_msg(sales, b"assign-exact")
        check("assign-exact-maildir", ok and not refused and len(got) == 1
              and got[0].startswith(("Return-Path: <alice@example.org>\nDelivered-To: Sales@%s\n" % dom).encode()),
              "%r %r" % (refused, got[:1]))
        check("assign-exact-not-demo", not wait_msg(inst.path("home", "demo"), b"assign-exact", timeout=0),
              "went to demo too")

        ok, refused = mail(inst, "team-bugs@" + dom, "assign-wild")
        got = wait_file(os.path.join(team, "got-bugs"))
        env = wait_file(os.path.join(team, "env-bugs"))
        check("assign-wild-program", ok and got is not None and b"assign-wild body" in got,
              "%r %r" % (refused, got))
        check("assign-wild-env", env == b"team-bugs bugs teamx\n", "%r" % env)
        if is_root() and os.path.exists(os.path.join(team, "got-bugs")):
            check("assign-wild-uid", owner_ids(os.path.join(team, "got-bugs"))[0] == vowner[0],
                  "%r" % (owner_ids(os.path.join(team, "got-bugs")),))

        # ---- the alias user
        make_home(alias, aowner)
        os.chmod(alias, 0o755)
        for name in ("postmaster", "mailer-daemon", "root"):
            write(os.path.join(alias, ".qmail-" + name), "./Maildir/\n", aowner)
        codes = rcpt_codes(inst, ["root@" + dom, "Mailer-Daemon@" + dom, "nobody@" + dom])
        check("alias-rcpt", codes == [250, 250, 550], "%r" % codes)
        for name in ("postmaster", "mailer-daemon", "root"):
            ok, refused = mail(inst, "%s@%s" % (name, dom), "alias-" + name)
            got = wait_msg(alias, ("alias-" + name).encode())
            check("alias-" + name, ok and not refused and len(got) == 1
                  and ("\nDelivered-To: %s@%s\n" % (name, dom)).encode() in got[0][:200],
                  "%r %r" % (refused, got[:1]))
        write(os.path.join(alias, ".qmail-default"), "./Maildir/\n", aowner)
        codes = rcpt_codes(inst, ["nobody@" + dom, "any-thing@" + dom])
        check("alias-default-rcpt", codes == [250, 250], "%r" % codes)
        ok, refused = mail(inst, "nobody@" + dom, "alias-default")
        check("alias-default", ok and len(wait_msg(alias, b"alias-default")) == 1, "%r" % (refused,))
        os.unlink(os.path.join(alias, ".qmail-default"))

        # ---- control/virtualdomains
        for u in ("vuser", "wuser"):
            r = subprocess.run([inst.path("bin", "yubin-users"), "add", u, "-u", str(vowner[0]), "-g", str(vowner[1]),
                                "-d", inst.path("home", u), "-r"], env=inst.env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=60)
            check("vdom-user-" + u, r.returncode == 0, "%d %r" % (r.returncode, r.stderr))
        write(inst.path("control", "virtualdomains"),
              "virt.test:vuser\n.wild.test:nouser\nok.wild.test:wuser\nnv.wild.test:\njoe@exact.test:vuser\n")
        with open(inst.path("control", "rcpthosts"), "a") as f:
            f.write("virt.test\n.wild.test\nexact.test\n")
        inst.svc("qmgr", "-h")   # qmgr reads control/ again; smtpd reads it per session
        time.sleep(0.5)
        codes = rcpt_codes(inst, ["info@virt.test", "Info@VIRT.test", "a@x.wild.test", "a@ok.wild.test",
                                  "a@nv.wild.test", "joe@exact.test", "other@exact.test", "a@unlisted.test"])
        check("vdom-rcpt", codes == [250, 250, 550, 250, 250, 250, 250, 553], "%r" % codes)

        vhome, whome = inst.path("home", "vuser"), inst.path("home", "wuser")
        ok, refused = mail(inst, "info@virt.test", "vdom-domain")
        got = wait_msg(vhome, b"vdom-domain")
        check("vdom-domain", ok and len(got) == 1 and b"\nDelivered-To: vuser-info@virt.test\n" in got[0][:200],
              "%r %r" % (refused, got[:1]))
        ok, refused = mail(inst, "a@ok.wild.test", "vdom-exact-domain")
        got = wait_msg(whome, b"vdom-exact-domain")
        check("vdom-domain-over-wildcard", ok and len(got) == 1 and b"\nDelivered-To: wuser-a@ok.wild.test\n" in got[0][:200],
              "%r %r" % (refused, got[:1]))
        ok, refused = mail(inst, "joe@exact.test", "vdom-address")
        got = wait_msg(vhome, b"vdom-address")
        check("vdom-address", ok and len(got) == 1 and b"\nDelivered-To: vuser-joe@exact.test\n" in got[0][:200],
              "%r %r" % (refused, got[:1]))
        # the wildcard: a domain under .wild.test with an owner for its prefix
        write(inst.path("control", "virtualdomains"),
              "virt.test:vuser\n.wild.test:wuser\nnv.wild.test:\n")
        inst.svc("qmgr", "-h")
        time.sleep(0.5)
        ok, refused = mail(inst, "b@deep.x.wild.test", "vdom-wildcard")
        got = wait_msg(whome, b"vdom-wildcard")
        check("vdom-wildcard", ok and len(got) == 1 and b"\nDelivered-To: wuser-b@deep.x.wild.test\n" in got[0][:200],
              "%r %r" % (refused, got[:1]))
        # the exception is not local: it goes to the remote channel
        ok, refused = mail(inst, "c@nv.wild.test", "vdom-exception")
        time.sleep(1.5)
        qlog = inst.log("qmgr")
        check("vdom-exception", ok and not refused and not wait_msg(whome, b"vdom-exception", timeout=0)
              and "to=wuser-c@nv.wild.test" not in qlog and "to=c@nv.wild.test status=ok" not in qlog,
              "%r" % (refused,))

        # ---- envnoathost and percenthack (qmgr, as qmail-send)
        dhome = inst.path("home", "demo")
        write(inst.path("control", "envnoathost"), "localhost\n")
        write(inst.path("control", "percenthack"), "relay.test\n")
        inst.svc("qmgr", "-h")
        time.sleep(0.5)
        rc = queue_direct(inst, "demo", "envnoathost")
        got = wait_msg(dhome, b"envnoathost")
        check("envnoathost", rc == 0 and len(got) == 1 and b"\nDelivered-To: demo@localhost\n" in got[0][:200],
              "%d %r" % (rc, got[:1]))
        rc = queue_direct(inst, "demo%%%s@relay.test" % dom, "percenthack")
        got = wait_msg(dhome, b"percenthack")
        check("percenthack", rc == 0 and len(got) == 1 and ("\nDelivered-To: demo@%s\n" % dom).encode() in got[0][:200],
              "%d %r" % (rc, got[:1]))
        # smtpd still refuses the percent hack to a client that may not relay
        codes = rcpt_codes(inst, ["demo%%%s@%s" % (dom, dom)])
        check("percenthack-smtpd-no-relay", codes == [553], "%r" % codes)
        # smtpd: an address without @ is still refused (RFC 5321)
        codes = rcpt_codes(inst, ["demo"])
        check("noat-smtpd", codes == [553], "%r" % codes)


def main():
    newu_cases()
    if is_root() and sanitizer_build():
        skip("instance-assign", "sanitizer build as root (setuid yubin-queue)")
        return
    instance_cases()


if __name__ == "__main__":
    run(main)
