#!/usr/bin/python3
"""SMTP client for mailgate's end-to-end tests, built on the standard smtplib.

Every mode prints one JSON object on stdout with the server's replies, so the
Go tests assert on what a real client saw. Modes:

  session   one transaction step by step: optional STARTTLS and AUTH PLAIN,
            MAIL, each RCPT sent verbatim (no address rewriting by smtplib),
            and DATA only when at least one RCPT was accepted.
  relay     for each --to address: MAIL, the verbatim RCPT, DATA when the
            RCPT was accepted, otherwise RSET; all on one connection.
  bulk      --count messages on one connection with send_message.
  intl      one message with UTF-8 display names (SMTPUTF8) and an
            ISO-2022-JP encoded subject and body, sent with send_message.
"""

import argparse
import base64
import email
import email.policy
import json
import smtplib
import sys


class Recorder(smtplib.SMTP):
    """smtplib.SMTP that remembers every MAIL, RCPT and DATA reply."""

    def __init__(self, *args, **kwargs):
        self.replies = []
        super().__init__(*args, **kwargs)

    def _rec(self, step, reply):
        code, msg = reply
        self.replies.append({"step": step, "code": code, "msg": msg.decode("utf-8", "replace")})
        return reply

    def mail(self, sender, options=()):
        return self._rec("mail", super().mail(sender, options))

    def rcpt(self, recip, options=()):
        return self._rec("rcpt", super().rcpt(recip, options))

    def data(self, msg):
        return self._rec("data", super().data(msg))


def connect(a):
    src = (a.source, 0) if a.source else None
    s = Recorder(a.host, a.port, local_hostname="client.e2e.test", source_address=src, timeout=30)
    s.ehlo()
    return s


def plain_message(a, n=0):
    mid = "<%s.%d@client.e2e.test>" % (a.tag, n)
    return (
        "From: <%s>\r\nTo: <%s>\r\nSubject: %s %d\r\nMessage-ID: %s\r\n\r\n"
        "Message %d of test %s.\r\n" % (a.sender, a.to[0], a.tag, n, mid, n, a.tag)
    ).encode("ascii")


def raw_rcpt(s, addr):
    # docmd sends the address exactly as given; smtplib.rcpt would run it
    # through email.utils and could rewrite the quoted or routed forms.
    return s._rec("rcpt", s.docmd("RCPT", "TO:<%s>" % addr))


def mode_session(a):
    out = {}
    s = connect(a)
    try:
        if a.starttls:
            code, msg = s.starttls()
            out["starttls"] = {"code": code, "msg": msg.decode()}
            s.ehlo()
        if a.auth:
            user, _, pw = a.auth.partition(":")
            s.user, s.password = user, pw
            try:
                code, msg = s.auth("PLAIN", s.auth_plain)
            except smtplib.SMTPAuthenticationError as e:
                code, msg = e.smtp_code, e.smtp_error
            out["auth"] = {"code": code, "msg": msg.decode("utf-8", "replace")}
        code, _ = s.mail(a.sender)
        if code < 400:
            accepted = 0
            for t in a.to:
                if raw_rcpt(s, t)[0] < 400:
                    accepted += 1
            if accepted:
                s.data(plain_message(a))
            else:
                s.rset()
        s.quit()
    except smtplib.SMTPServerDisconnected as e:
        out["disconnected"] = str(e)
    out["replies"] = s.replies
    return out


def mode_relay(a):
    s = connect(a)
    for n, t in enumerate(a.to):
        s.mail(a.sender)
        if raw_rcpt(s, t)[0] < 400:
            s.data(plain_message(a, n))
        else:
            s.rset()
    s.quit()
    return {"replies": s.replies}


def mode_bulk(a):
    s = connect(a)
    for n in range(a.count):
        msg = email.message_from_bytes(plain_message(a, n), policy=email.policy.SMTP)
        s.send_message(msg, from_addr=a.sender, to_addrs=a.to)
    s.quit()
    return {"replies": s.replies}


def mode_intl(a):
    subject = "会議の件"
    body = "明日の会議は十時からです。\r\n".encode("iso2022_jp")
    enc_subject = "=?ISO-2022-JP?B?%s?=" % base64.b64encode(subject.encode("iso2022_jp")).decode()
    head = (
        "From: 山田太郎 <%s>\r\n"
        "To: アリス <%s>, Bob Müller <%s>\r\n"
        "Subject: %s\r\n"
        "Message-ID: <%s@client.e2e.test>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=ISO-2022-JP\r\n"
        "Content-Transfer-Encoding: 7bit\r\n\r\n"
    ) % (a.sender, a.to[0], a.to[1], enc_subject, a.tag)
    raw = head.encode("utf-8") + body
    # The SMTPUTF8 policy keeps the UTF-8 display names as raw UTF-8 (RFC 6532)
    # instead of turning them into encoded words.
    msg = email.message_from_bytes(raw, policy=email.policy.SMTPUTF8)
    s = connect(a)
    features = sorted(s.esmtp_features)  # quit() forgets them
    refused = s.send_message(msg, from_addr=a.sender, to_addrs=a.to, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    s.quit()
    return {
        "replies": s.replies,
        "refused": {k: [v[0], v[1].decode("utf-8", "replace")] for k, v in refused.items()},
        "subject_header": enc_subject,
        "body_b64": base64.b64encode(body).decode(),
        "esmtp": features,
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["session", "relay", "bulk", "intl"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--source", help="local address to connect from")
    p.add_argument("--from", dest="sender", default="")
    p.add_argument("--to", action="append", default=[])
    p.add_argument("--tag", default="e2e")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--starttls", action="store_true")
    p.add_argument("--auth", help="USER:PASSWORD for AUTH PLAIN")
    a = p.parse_args()
    fn = {"session": mode_session, "relay": mode_relay, "bulk": mode_bulk, "intl": mode_intl}[a.mode]
    json.dump(fn(a), sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
