"""A pretend protocol daemon for the yubin-tlsd tests (not a test itself).

Runs behind yubin-tlsd, reads CRLF lines on fd 0, answers on fd 1:

  greeting        "220 hello"
  NOOP            "250 noop"
  ENV name        "250 <value>" or "250 -" if unset
  ID              "250 uid=<uid> gid=<gid> groups=<g,g,...>"
  READ path       "250 ok" if the file can be opened for reading,
                  else "550 <errno name>"
  STARTTLS [Y]    only with SSLCTLFD: "220 go", then the UCSPI-TLS
                  exchange of yubin-tlsd.8 ('y', or 'Y' if asked), dropping
                  whatever it had buffered; "454 no" without SSLCTLFD or
                  when TLS is already on
  TLSINFO         "250 " + the strings received on SSLCTLFD, joined by ';'
  PPID            "250 <parent pid>" (yubin-tlsd's)
  CAT             no reply: from now on copy fd 0 to fd 1 until EOF
  EXIT n          exit with status n at once
  QUIT            "221 bye", exit 0
  anything else   "500 what"
EOF on fd 0: exit 0.  It runs as an unprivileged user under the system
python3, so it uses nothing but the standard library.
"""

import errno
import os
import sys


def writeall(fd, data):
    while data:
        n = os.write(fd, data)
        data = data[n:]


def reply(s):
    writeall(1, s.encode() + b"\r\n")


def starttls(cmd_byte):
    ctl = int(os.environ["SSLCTLFD"])
    rfd = int(os.environ["SSLREADFD"])
    wfd = int(os.environ["SSLWRITEFD"])
    reply("220 go")
    writeall(ctl, cmd_byte)
    got = b""
    while not got.endswith(b"\0\0"):
        chunk = os.read(ctl, 4096)
        if not chunk:
            sys.stderr.write("linedaemon: starttls-eof\n")
            sys.exit(3)
        got += chunk
    os.dup2(rfd, 0)
    os.dup2(wfd, 1)
    os.close(rfd)
    os.close(wfd)
    os.close(ctl)
    return [s.decode() for s in got[:-2].split(b"\0") if s]


def cat():
    while True:
        d = os.read(0, 262144)
        if not d:
            sys.exit(0)
        writeall(1, d)


def main():
    tls = "SSL_PROTOCOL" in os.environ
    params = []
    buf = b""
    reply("220 hello")
    while True:
        while b"\n" not in buf:
            d = os.read(0, 65536)
            if not d:
                sys.exit(0)
            buf += d
        line, buf = buf.split(b"\n", 1)
        words = line.rstrip(b"\r").decode("utf-8", "replace").split(" ")
        cmd, args = words[0].upper(), words[1:]
        if cmd == "NOOP":
            reply("250 noop")
        elif cmd == "ENV" and args:
            reply("250 " + os.environ.get(args[0], "-"))
        elif cmd == "ID":
            reply("250 uid=%d gid=%d groups=%s" % (os.getuid(), os.getgid(),
                                                 ",".join(str(g) for g in os.getgroups())))
        elif cmd == "READ" and args:
            try:
                os.close(os.open(args[0], os.O_RDONLY))
                reply("250 ok")
            except OSError as e:
                reply("550 " + errno.errorcode.get(e.errno, str(e.errno)))
        elif cmd == "STARTTLS":
            if tls or "SSLCTLFD" not in os.environ:
                reply("454 no")
                continue
            params = starttls(b"Y" if args == ["Y"] else b"y")
            buf = b""   # CVE-2011-0411: never run what was pipelined
            tls = True
        elif cmd == "PPID":
            reply("250 %d" % os.getppid())
        elif cmd == "TLSINFO":
            reply("250 " + ";".join(params))
        elif cmd == "CAT":
            if buf:
                writeall(1, buf)
            cat()
        elif cmd == "EXIT" and args:
            sys.exit(int(args[0]))
        elif cmd == "QUIT":
            reply("221 bye")
            sys.exit(0)
        else:
            reply("500 what")


main()
