#!/usr/bin/env python3
"""yubin-users: add/del/passwd/list/rebuild, users.cdb content, names.

Binaries from $YUBIN_BIN; each case gets its own YUBIN_ROOT (a temp dir
with control/ and users/).  Prints PASS name / FAIL name: why per case."""

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from yubintest import binary, cdb_get, cdb_items, check, expect, phc_scrypt_verify, run, run_cases  # noqa: E402

USERS = binary("yubin-users")
TIMEOUT = 120
# As root the invoker's ids would be root's, which yubin-users refuses
# (mail is never delivered as uid 0 or gid 0): the cases give real ones.
IDS = ("-u", "1000", "-g", "1000") if os.geteuid() == 0 else ()


# --- the environment ---

class Env:
    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="yubin-users-")
        os.mkdir(os.path.join(self.root, "control"))
        os.mkdir(os.path.join(self.root, "users"))
        self.passwd = os.path.join(self.root, "users", "passwd")
        self.cdb = os.path.join(self.root, "users", "users.cdb")

    def run(self, *args, stdin=b"", cwd=None, root=None):
        e = dict(os.environ)
        e["YUBIN_ROOT"] = root or self.root
        p = subprocess.run([USERS] + list(args), input=stdin, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=TIMEOUT, env=e, cwd=cwd)
        return p.returncode, p.stdout, p.stderr

    def ok(self, *args, **kw):
        rc, out, err = self.run(*args, **kw)
        expect(rc == 0, "%r: exit %d: %r" % (args, rc, err[-300:]))
        return out

    def lines(self):
        with open(self.passwd, "rb") as f:
            return f.read().split(b"\n")

    def entry(self, name):
        for l in self.lines():
            if l.startswith(name.encode() + b":"):
                return l.split(b":", 4)
        return None

    def cdb_data(self):
        with open(self.cdb, "rb") as f:
            return f.read()

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)


# --- cases ---

def t_add_default(env):
    env.ok("add", "alice", *IDS)
    e = env.entry("alice")
    expect(e is not None, "alice not in passwd")
    home = os.path.join(env.root, "home", "alice")
    uid, gid = (1000, 1000) if IDS else (os.getuid(), os.getgid())
    want = [b"alice", b"*", str(uid).encode(), str(gid).encode(), home.encode()]
    expect(e == want, "passwd entry %r, wanted %r" % (e, want))
    for d in ("tmp", "new", "cur"):
        expect(os.path.isdir(os.path.join(home, "Maildir", d)), "no Maildir/%s" % d)
    st = os.stat(os.path.join(home, "Maildir"))
    expect(st.st_uid == uid, "Maildir owner %d" % st.st_uid)


def t_add_options(env):
    home = os.path.join(env.root, "elsewhere", "b")
    env.ok("add", "bob", "-u", "1234", "-g", "2345", "-d", home)
    e = env.entry("bob")
    expect(e == [b"bob", b"*", b"1234", b"2345", home.encode()], "entry %r" % e)
    v = cdb_get(env.cdb_data(), b"bob")
    expect(v == b"1234:2345:" + home.encode(), "cdb value %r" % v)
    md = os.path.join(home, "Maildir")
    expect(os.path.isdir(os.path.join(md, "new")), "no Maildir")
    st = os.stat(md)
    if os.geteuid() == 0:
        expect((st.st_uid, st.st_gid) == (1234, 2345), "owner %d:%d" % (st.st_uid, st.st_gid))
        st = os.stat(home)
        expect((st.st_uid, st.st_gid) == (1234, 2345), "home owner %d:%d" % (st.st_uid, st.st_gid))
        st = os.stat(os.path.join(md, "tmp"))
        expect((st.st_uid, st.st_gid) == (1234, 2345), "tmp owner %d:%d" % (st.st_uid, st.st_gid))
    else:
        expect(st.st_uid == os.getuid(), "owner %d" % st.st_uid)


def t_options_first(env):
    env.ok("add", "-u", "77", "-g", "88", "carol")
    expect(env.entry("carol")[2:4] == [b"77", b"88"], "entry %r" % env.entry("carol"))


def t_relative_root(env):
    parent = os.path.dirname(env.root)
    env.ok("add", "dave", *IDS, cwd=parent, root=os.path.basename(env.root))
    e = env.entry("dave")
    expect(e[4] == os.path.join(env.root, "home", "dave").encode(), "home %r not absolute" % e[4])


def t_modes(env):
    env.ok("add", "alice", *IDS)
    m = stat.S_IMODE(os.stat(env.passwd).st_mode)
    expect(m == 0o600, "passwd mode %o" % m)
    m = stat.S_IMODE(os.stat(env.cdb).st_mode)
    expect(m == 0o644, "users.cdb mode %o" % m)
    left = [f for f in os.listdir(os.path.join(env.root, "users")) if "tmp" in f]
    expect(not left, "leftover %r" % left)


def t_cdb_content(env):
    for n in ("alice", "bob", "c.d", "e_f", "g-h", "x" * 64):
        env.ok("add", n, "-u", "1000", "-g", "1001")
    data = env.cdb_data()
    items = cdb_items(data)
    expect(len(items) == 6, "cdb has %d records: %r" % (len(items), list(items)))
    for n in ("alice", "bob", "c.d", "e_f", "g-h", "x" * 64):
        v = cdb_get(data, n.encode())
        want = b"1000:1001:" + os.path.join(env.root, "home", n).encode()
        expect(v == want, "cdb %s -> %r, wanted %r" % (n, v, want))
    expect(cdb_get(data, b"nobody") is None, "cdb has nobody")
    for v in items.values():
        expect(b"$" not in v and b"*" not in v, "secret in cdb: %r" % v)


def t_duplicate(env):
    env.ok("add", "alice", *IDS)
    rc, out, err = env.run("add", "alice", *IDS)
    expect(rc == 100, "exit %d, wanted 100" % rc)
    expect(b"exists" in err, "stderr %r" % err)
    expect(sum(1 for l in env.lines() if l.startswith(b"alice:")) == 1, "alice twice")


def t_bad_names(env):
    env.ok("add", "ok", *IDS)
    before = open(env.passwd, "rb").read()
    for n in ("Alice", "a b", "", "x" * 65, ".", "..", ".a", "a.", "a..b", "-a", "a/b",
              "a:b", "a@b", "a\nb", "../etc", "\xe9t\xe9"):
        rc, out, err = env.run("add", n, *IDS)
        expect(rc == 100, "name %r: exit %d, wanted 100" % (n, rc))
        expect(b"name" in err or b"usage" in err, "name %r: unclear error %r" % (n, err))
    expect(open(env.passwd, "rb").read() == before, "passwd changed")
    expect(sorted(os.listdir(os.path.join(env.root, "home"))) == ["ok"], "home dirs made for bad names")


def t_passwd_stdin(env):
    env.ok("add", "alice", *IDS)
    env.ok("passwd", "alice", stdin=b"correct horse\n")
    h = env.entry("alice")[1].decode()
    expect(h.startswith("$scrypt$"), "hash %r does not start with $scrypt$" % h)
    expect(phc_scrypt_verify(h, "correct horse"), "hash %r does not verify with hashlib.scrypt" % h)
    expect(not phc_scrypt_verify(h, "correct horse\n"), "newline was hashed")
    # the other fields are kept
    uid, gid = IDS[1::2] if IDS else (str(os.getuid()), str(os.getgid()))
    expect(env.entry("alice")[2:] == [uid.encode(), gid.encode(),
                                      os.path.join(env.root, "home", "alice").encode()], "fields changed")


def t_add_p(env):
    env.ok("add", "alice", "-p", *IDS, stdin=b"s3cret\r\n")
    h = env.entry("alice")[1].decode()
    expect(h.startswith("$scrypt$") and phc_scrypt_verify(h, "s3cret"), "hash %r" % h)


def t_passwd_random(env):
    env.ok("add", "alice", *IDS)
    out = env.ok("passwd", "alice", "-r").decode()
    pw = out.rstrip("\n")
    expect(out.endswith("\n") and len(pw) >= 16 and pw.isalnum(), "printed %r" % out)
    h = env.entry("alice")[1].decode()
    expect(h.startswith("$scrypt$") and phc_scrypt_verify(h, pw), "hash does not match the printed password")
    out2 = env.ok("passwd", "alice", "-r").decode()
    expect(out2 != out, "same random password twice")


def t_passwd_empty(env):
    env.ok("add", "alice", *IDS)
    rc, out, err = env.run("passwd", "alice", stdin=b"\n")
    expect(rc == 100, "empty password: exit %d" % rc)
    rc, out, err = env.run("passwd", "alice", stdin=b"")
    expect(rc == 100, "no password: exit %d" % rc)
    expect(env.entry("alice")[1] == b"*", "hash changed")


def t_passwd_unknown(env):
    env.ok("add", "alice", *IDS)
    rc, out, err = env.run("passwd", "bob", stdin=b"x\n")
    expect(rc == 100, "exit %d, wanted 100" % rc)


def t_del(env):
    env.ok("add", "alice", *IDS)
    env.ok("add", "bob", *IDS)
    env.ok("del", "alice")
    expect(env.entry("alice") is None, "alice still in passwd")
    expect(env.entry("bob") is not None, "bob gone")
    data = env.cdb_data()
    expect(cdb_get(data, b"alice") is None, "alice still in cdb")
    expect(cdb_get(data, b"bob") is not None, "bob gone from cdb")
    expect(os.path.isdir(os.path.join(env.root, "home", "alice", "Maildir")), "home removed")
    rc, out, err = env.run("del", "alice")
    expect(rc == 100, "del unknown: exit %d" % rc)


def t_list(env):
    env.ok("add", "alice", "-u", "10", "-g", "20")
    env.ok("add", "bob", "-u", "11", "-g", "21", "-p", stdin=b"pw\n")
    out = env.ok("list").decode()
    want = "alice:*:10:20:%s\nbob:x:11:21:%s\n" % (os.path.join(env.root, "home", "alice"),
                                                   os.path.join(env.root, "home", "bob"))
    expect(out == want, "list %r, wanted %r" % (out, want))
    expect("$" not in out, "hash in list output")


def t_list_empty(env):
    out = env.ok("list")
    expect(out == b"", "list %r" % out)


def t_rebuild(env):
    env.ok("add", "alice", *IDS)
    with open(env.passwd, "ab") as f:
        f.write(b"# hand-edited\n\nZed:*:5:6:/srv/zed\nwin:*:7:8:/srv/win\r\n")
    env.ok("rebuild")
    v = cdb_get(env.cdb_data(), b"zed")
    expect(v == b"5:6:/srv/zed", "zed -> %r" % v)
    v = cdb_get(env.cdb_data(), b"win")
    expect(v == b"7:8:/srv/win", "CRLF line: win -> %r" % v)
    expect(cdb_get(env.cdb_data(), b"alice") is not None, "alice lost")
    # comments survive a later change
    env.ok("add", "bob", *IDS)
    text = open(env.passwd, "rb").read()
    expect(b"# hand-edited\n" in text and b"Zed:*:5:6:/srv/zed\n" in text, "passwd %r" % text)
    env.ok("del", "zed")
    expect(b"Zed:" not in open(env.passwd, "rb").read(), "zed not deleted")


def t_rebuild_bad(env):
    env.ok("add", "alice", *IDS)
    before = env.cdb_data()
    with open(env.passwd, "ab") as f:
        f.write(b"broken line\n")
    rc, out, err = env.run("rebuild")
    expect(rc == 111, "exit %d, wanted 111" % rc)
    expect(b"line 2" in err, "no line number: %r" % err)
    expect(env.cdb_data() == before, "cdb changed")
    rc, out, err = env.run("add", "bob", *IDS)
    expect(rc == 111, "add over a broken passwd: exit %d" % rc)


def t_rebuild_missing(env):
    env.ok("rebuild")
    expect(cdb_items(env.cdb_data()) == {}, "cdb not empty")


def t_usage(env):
    for args in ([], ["frobnicate"], ["add"], ["del"], ["add", "a", "b"], ["add", "a", "-x"],
                 ["list", "x"], ["passwd"], ["add", "a", "-p", "-r"]):
        rc, out, err = env.run(*args)
        expect(rc == 100, "%r: exit %d, wanted 100" % (args, rc))


def t_unknown_system_user(env):
    rc, out, err = env.run("add", "alice", "-u", "no-such-user-yubin")
    expect(rc == 100, "exit %d" % rc)


def t_concurrent(env):
    names = ["u%d" % i for i in range(12)]
    results = {}

    def one(n):
        results[n] = env.run("add", n, "-u", "1000", "-g", "1000")

    threads = [threading.Thread(target=one, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    bad = [n for n in names if results.get(n, (1,))[0] != 0]
    expect(not bad, "failed: %r" % [(n, results.get(n)) for n in bad])
    data = env.cdb_data()
    missing = [n for n in names if env.entry(n) is None or cdb_get(data, n.encode()) is None]
    expect(not missing, "lost updates: %r" % missing)


def main():
    if not os.access(USERS, os.X_OK):
        check("users-binary", False, "%s not found (set YUBIN_BIN)" % USERS)
        return
    cases = [
        ("users-add-defaults", t_add_default),
        ("users-add-options", t_add_options),
        ("users-add-options-before-name", t_options_first),
        ("users-add-relative-root", t_relative_root),
        ("users-file-modes", t_modes),
        ("users-cdb-content", t_cdb_content),
        ("users-add-duplicate-100", t_duplicate),
        ("users-bad-names-100", t_bad_names),
        ("users-passwd-scrypt", t_passwd_stdin),
        ("users-add-p", t_add_p),
        ("users-passwd-random", t_passwd_random),
        ("users-passwd-empty-100", t_passwd_empty),
        ("users-passwd-unknown-100", t_passwd_unknown),
        ("users-del", t_del),
        ("users-list", t_list),
        ("users-list-empty", t_list_empty),
        ("users-rebuild", t_rebuild),
        ("users-rebuild-malformed-111", t_rebuild_bad),
        ("users-rebuild-no-passwd", t_rebuild_missing),
        ("users-usage-100", t_usage),
        ("users-unknown-system-user-100", t_unknown_system_user),
        ("users-concurrent-add", t_concurrent),
    ]
    run_cases(cases, Env)


run(main)
