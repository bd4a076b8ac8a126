"""Drive mailgate's submission listener with Python's smtplib, as a mail
app would: report what each step answered, as JSON on stdout.

usage: submission.py HOST PORT TLSPORT USER PASSWORD TOKEN
"""
import json
import smtplib
import ssl
import sys

host, port, tlsport, user, password, token = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
ctx = ssl._create_unverified_context()  # the test server's certificate is self-signed
res = {}


def message(frm, subject):
    return ("From: %s\r\nTo: <someone@remote.test>\r\nSubject: %s\r\n\r\n%s %s\r\n" % (frm, subject, subject, token)).encode()


# Before TLS: no AUTH is offered, and logging in is refused.
s = smtplib.SMTP(host, port, timeout=30)
s.ehlo("client.e2e.test")
res["auth_before_tls"] = s.has_extn("auth")
try:
    s.login(user, password)
    res["login_before_tls"] = "ok"
except smtplib.SMTPNotSupportedError:
    res["login_before_tls"] = "not offered"
except smtplib.SMTPException as e:
    res["login_before_tls"] = str(e)
try:
    s.sendmail(user, ["someone@remote.test"], message(user, "plaintext"))
    res["mail_before_tls"] = 250
except smtplib.SMTPSenderRefused as e:
    res["mail_before_tls"] = e.smtp_code

# STARTTLS, then AUTH.
s.starttls(context=ctx)
s.ehlo("client.e2e.test")
res["auth_after_tls"] = s.esmtp_features.get("auth", "").strip()
try:
    s.login(user, "wrong password")
    res["wrong_password"] = 235
except smtplib.SMTPAuthenticationError as e:
    res["wrong_password"] = e.smtp_code
s.close()

s = smtplib.SMTP(host, port, timeout=30)
s.starttls(context=ctx)
s.login(user, password)
try:
    s.sendmail(user, ["someone@remote.test"], message("The CEO <ceo@example.test>", "forged-from"))
    res["forged_from"] = 250
except smtplib.SMTPDataError as e:
    res["forged_from"] = e.smtp_code
try:
    s.sendmail("bob@example.test", ["someone@remote.test"], message("bob@example.test", "forged-envelope"))
    res["forged_envelope"] = 250
except smtplib.SMTPSenderRefused as e:
    res["forged_envelope"] = e.smtp_code
s.sendmail(user, ["someone@remote.test"], message("Alice <%s>" % user, "smtplib-587"))
res["sent_587"] = True
s.quit()

# Implicit TLS (465).
s = smtplib.SMTP_SSL(host, tlsport, timeout=30, context=ctx)
s.login(user, password)
s.sendmail(user, ["someone@remote.test"], message(user, "smtplib-465"))
res["sent_465"] = True
s.quit()
print(json.dumps(res))
