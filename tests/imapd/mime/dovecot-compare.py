#!/usr/bin/env python3
# dovecot-compare.py CORPUSDIR OUTDIR: fetch ENVELOPE, BODYSTRUCTURE and BODY
# of every message of a private Dovecot (127.0.0.1:14143, user u, password
# secret) whose INBOX holds CORPUSDIR/*.eml in name order (UID 1 = the first),
# into OUTDIR/NAME.envelope etc.  Not a test: the cross-check of the README.
# The Dovecot used (dovecot-imapd, Debian 12) ran with: protocols = imap,
# listen = 127.0.0.1, ssl = no, disable_plaintext_auth = no, passdb static
# (password=secret), userdb static (uid=nobody gid=nogroup), mail_location =
# maildir:<dir>, base_dir and log_path in /tmp, imap-login on port 14143,
# chroot = for anvil and imap-login.
import imaplib, os, sys, re
# prints, for each message (in UID order = corpus order), name, ENVELOPE, BODYSTRUCTURE
names = sorted(f for f in os.listdir(sys.argv[1]) if f.endswith('.eml'))
M = imaplib.IMAP4('127.0.0.1', 14143)
M.login('u', 'secret')
M.select('INBOX', readonly=True)
def raw(resp):
    # rebuild the response line with literals inline as {n}\r\n<data>
    out = b''
    for x in resp:
        if isinstance(x, tuple):
            out += x[0] + b"\r\n" + x[1]
        else:
            out += x
    return out
for i, n in enumerate(names, 1):
    for item in ('ENVELOPE', 'BODYSTRUCTURE', 'BODY'):
        typ, resp = M.uid('FETCH', str(i), '(%s)' % item)
        r = raw(resp)
        m = re.match(rb'^\d+ \(UID \d+ ' + item.encode() + rb' (.*)\)$', r, re.S)
        if not m:
            m = re.match(rb'^\d+ \(' + item.encode() + rb' (.*) UID \d+\)$', r, re.S)
        val = m.group(1) if m else b'??? ' + r
        os.makedirs(sys.argv[2], exist_ok=True)
        open(os.path.join(sys.argv[2], n[:-4] + '.' + item.lower()), 'wb').write(val + b'\n')
M.logout()
