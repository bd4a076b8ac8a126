#!/usr/bin/python3
"""A mail app's IMAP side, driven by the e2e tests with Python's imaplib.

usage: imapuser.py HOST PORT USER PASSWORD STEP...

Connects with implicit TLS (the test server's certificate is self-signed),
logs in and runs the steps in order, printing one JSON object:
  list:FOLDER          every message of FOLDER: uid, flags, Message-ID,
                       Subject and X-Test-Seq (headers fetched with PEEK)
  read:SUBJECT         fetch the whole INBOX message with that Subject
                       (BODY[], which sets \\Seen as a mail app does)
  append:FOLDER:FILE   store FILE in FOLDER flagged \\Seen, as a mail app
                       files what it sent
  send:PORT:RCPT:FILE  send FILE to RCPT through submission on PORT
                       (STARTTLS, AUTH with the same login), as the app
                       sends before it files the copy
"""
import email
import email.policy
import imaplib
import json
import smtplib
import ssl
import sys


def main():
    host, port, user, password = sys.argv[1:5]
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    out = {"list": {}, "read": {}, "append": {}, "send": {}}
    c = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx, timeout=30)
    c.login(user, password)
    for step in sys.argv[5:]:
        kind, _, arg = step.partition(":")
        if kind == "list":
            out["list"][arg] = list_folder(c, arg)
        elif kind == "read":
            c.select("INBOX")
            typ, data = c.uid("SEARCH", "HEADER", "Subject", '"%s"' % arg)
            uids = data[0].split()
            if typ != "OK" or len(uids) != 1:
                raise SystemExit("read %r: search found %r" % (arg, data))
            typ, data = c.uid("FETCH", uids[0], "(BODY[])")
            out["read"][arg] = len(data[0][1]) if typ == "OK" else 0
        elif kind == "append":
            folder, _, path = arg.partition(":")
            with open(path, "rb") as f:
                msg = f.read()
            typ, data = c.append(folder, "(\\Seen)", None, msg)
            out["append"][folder] = "%s %s" % (typ, data[0].decode(errors="replace"))
        elif kind == "send":
            sport, _, rest = arg.partition(":")
            rcpt, _, path = rest.partition(":")
            with open(path, "rb") as f:
                msg = f.read()
            s = smtplib.SMTP(host, int(sport), timeout=30)
            s.starttls(context=ctx)
            s.login(user, password)
            refused = s.sendmail(user, rcpt.split(","), msg)
            out["send"][rcpt] = "refused %r" % refused if refused else "sent"
            s.quit()
        else:
            raise SystemExit("unknown step %r" % step)
    c.logout()
    json.dump(out, sys.stdout)


def list_folder(c, folder):
    typ, data = c.select('"%s"' % folder, readonly=True)
    if typ != "OK":
        raise SystemExit("select %s: %r" % (folder, data))
    if int(data[0]) == 0:
        return []
    typ, data = c.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID SUBJECT X-TEST-SEQ)])")
    if typ != "OK":
        raise SystemExit("fetch %s: %r" % (folder, data))
    msgs = []
    for item in data:
        if not isinstance(item, tuple):
            continue
        meta = item[0].decode()
        flags = meta.split("FLAGS (", 1)[1].split(")", 1)[0].split()
        uid = int(meta.split("UID ", 1)[1].split()[0].rstrip(")"))
        h = email.message_from_bytes(item[1], policy=email.policy.compat32)
        msgs.append({"uid": uid, "flags": flags, "message_id": (h.get("Message-ID") or "").strip(),
                     "subject": (h.get("Subject") or "").strip(), "seq": (h.get("X-Test-Seq") or "").strip()})
    return msgs


if __name__ == "__main__":
    main()
