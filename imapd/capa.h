/* The IMAP capabilities yubin advertises, written once for both halves
 * of the session (yubin-imapd before the login, yubin-imapmail after),
 * so that what a client is told before and after the login agrees.
 * CAPABILITY lists exactly what works. */
#ifndef YUBIN_IMAPD_CAPA_H
#define YUBIN_IMAPD_CAPA_H

/* Before the login; yubin-imapd adds STARTTLS (when it can) and
 * AUTH=PLAIN or LOGINDISABLED. */
#define IMAP_CAPA_PRELOGIN "IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE"

/* After the login (yubin-imapmail): the session's commands and
 * extensions. */
#define IMAP_CAPA "IMAP4rev1 LITERAL+ ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN LIST-EXTENDED SPECIAL-USE ESEARCH STATUS=SIZE"

#endif
