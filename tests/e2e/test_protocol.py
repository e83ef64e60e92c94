#!/usr/bin/env python3
"""End to end: bad input gets an error and delivers nothing (bare LF, bare CR,
SMTP smuggling, overlong lines); unknown users and relaying are refused."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from yubintest import Instance, SMTPRaw, check, run  # noqa: E402


def open_data(inst, name):
    """A session up to the 354 after DATA, or None (and a FAIL)."""
    c = SMTPRaw(inst.ip, inst.smtp_port)
    steps = [(None, 220), (b"EHLO raw.example.org", 250), (b"MAIL FROM:<raw@example.org>", 250),
             (b"RCPT TO:<demo@" + inst.domain.encode() + b">", 250), (b"DATA", 354)]
    for line, want in steps:
        code, text = c.reply() if line is None else c.cmd(line)
        if code != want:
            check(name, False, "%r got %r, want %d" % (line, text, want))
            c.close()
            return None
    return c


def after_bad_data(inst, name, payload):
    """Send payload (which ends with a proper CRLF.CRLF) inside DATA; the
    first reply must be an error, and nothing in it may have been taken as
    the end of the data followed by commands (smuggling)."""
    c = open_data(inst, name)
    if c is None:
        return
    c.send(payload)
    code, text = c.reply()
    check(name + "-refused", code is not None and code >= 400,
          "reply %r (want 4xx/5xx)" % text)
    # If a bare-LF "." had ended the data, the smuggled MAIL/RCPT/DATA would
    # have replies waiting now; a clean server answers QUIT with 221 (or has
    # closed the connection after the error).
    code2, text2 = c.cmd(b"QUIT")
    check(name + "-no-smuggled-replies", code2 in (221, None) and (code2 is None or text2.startswith("221")),
          "after the error, QUIT got %r" % text2)
    c.close()


def main():
    with Instance() as inst:
        dom = inst.domain.encode()
        smug = (b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<demo@" + dom + b">\r\nDATA\r\n"
                b"Subject: SMUGGLED\r\n\r\nsmuggled\r\n")
        # (c) bare LF, bare CR, and the smuggling forms of both
        after_bad_data(inst, "bare-lf", b"Subject: BADLF1\r\n\r\nline one\nline two\r\n.\r\n")
        after_bad_data(inst, "bare-cr", b"Subject: BADCR1\r\n\r\nline one\rline two\r\n.\r\n")
        after_bad_data(inst, "smuggle-lf-dot-lf",
                       b"Subject: BADLF2\r\n\r\nbody\n.\n" + smug + b".\r\n")
        after_bad_data(inst, "smuggle-crlf-dot-lf",
                       b"Subject: BADLF3\r\n\r\nbody\r\n.\n" + smug + b".\r\n")
        after_bad_data(inst, "smuggle-lf-dot-crlf",
                       b"Subject: BADLF4\r\n\r\nbody\n.\r\n" + smug + b".\r\n")
        after_bad_data(inst, "smuggle-cr-dot-cr",
                       b"Subject: BADCR2\r\n\r\nbody\r.\r" + smug + b".\r\n")
        after_bad_data(inst, "overlong-data-line",
                       b"Subject: BADLONG1\r\n\r\n" + b"y" * 5000 + b"\r\n.\r\n")
        after_bad_data(inst, "overlong-header-line",
                       b"Subject: BADLONG2 " + b"z" * 1200 + b"\r\n\r\nbody\r\n.\r\n")

        # overlong command line (RFC 5321: 512 octets)
        c = SMTPRaw(inst.ip, inst.smtp_port)
        c.reply()
        code, text = c.cmd(b"NOOP " + b"n" * 3000)
        check("overlong-command", code is not None and 500 <= code < 600, "reply %r" % text)
        code, text = c.cmd(b"NOOP")
        check("overlong-command-session-sane", code in (250, None), "NOOP after it got %r" % text)
        c.close()

        # NUL in a command
        c = SMTPRaw(inst.ip, inst.smtp_port)
        c.reply()
        code, text = c.cmd(b"HELO a\0b")
        check("nul-in-command", code is not None and code >= 500, "reply %r" % text)
        c.close()

        # (d) unknown local user and relaying
        c = SMTPRaw(inst.ip, inst.smtp_port)
        c.reply()
        c.cmd(b"EHLO raw.example.org")
        code, text = c.cmd(b"MAIL FROM:<raw@example.org>")
        check("mail-from", code == 250, "reply %r" % text)
        code, text = c.cmd(b"RCPT TO:<nosuchuser@" + dom + b">")
        check("unknown-user-550", code == 550, "reply %r" % text)
        code, text = c.cmd(b"RCPT TO:<someone@example.com>")
        check("relay-denied-553", code == 553, "reply %r" % text)
        code, text = c.cmd(b"RCPT TO:<someone%example.com@" + dom + b">")
        check("percent-hack-refused", code is not None and code >= 500, "reply %r" % text)
        code, text = c.cmd(b"RCPT TO:<@" + dom + b":someone@example.com>")
        check("source-route-relay-refused", code is not None and code >= 500, "reply %r" % text)
        code, text = c.cmd(b"RCPT TO:<\"someone@example.com\"@" + dom + b">")
        check("quoted-at-refused", code is not None and code >= 500, "reply %r" % text)
        code, text = c.cmd(b"RCPT TO:<Postmaster@" + dom + b">")
        check("postmaster-accepted", code == 250, "reply %r" % text)
        code, text = c.cmd(b"RSET")
        check("rset", code == 250, "reply %r" % text)
        code, text = c.cmd(b"VRFY demo")
        check("vrfy-252", code == 252, "reply %r" % text)
        code, text = c.cmd(b"DATA")
        check("data-without-rcpt", code is not None and code >= 500, "reply %r" % text)
        code, text = c.cmd(b"QUIT")
        check("quit-221", code == 221, "reply %r" % text)
        c.close()

        # a good message afterwards goes through, and none of the bad ones did
        c = open_data(inst, "good-after-bad")
        if c is not None:
            c.send(b"Subject: GOODMARK\r\n\r\nfine\r\n.\r\n")
            code, text = c.reply()
            check("good-after-bad", code == 250, "reply %r" % text)
            c.cmd(b"QUIT")
            c.close()
        msgs = inst.wait_for(lambda m: any(b"GOODMARK" in d for _, d in m))
        check("good-delivered", any(b"GOODMARK" in d for _, d in msgs), "GOODMARK not delivered")
        time.sleep(1.0)  # give a wrongly queued message time to show up
        msgs = inst.wait_for(lambda m: False, timeout=0)
        bad = [p for p, d in msgs if any(k in d for k in (b"BADLF", b"BADCR", b"BADLONG", b"SMUGGLED"))]
        check("bad-input-delivered-nothing", not bad, "delivered: %r" % bad)
        check("only-one-message", len(msgs) == 1, "%d messages in Maildir/new" % len(msgs))


if __name__ == "__main__":
    run(main)
