"""Send one Japanese message through mailgate's submission listener with
Python's smtplib, as a mail app would (STARTTLS, AUTH), and print the
DATA reply as JSON on stdout.

usage: outbound.py HOST PORT USER PASSWORD TO SUBJECT BODY
"""
import json
import smtplib
import ssl
import sys
from email.header import Header
from email.mime.text import MIMEText

host, port, user, password, to, subject, body = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
ctx = ssl._create_unverified_context()  # the test server's certificate is self-signed

msg = MIMEText(body, "plain", "iso-2022-jp")
msg["From"] = user
msg["To"] = to
msg["Subject"] = Header(subject, "iso-2022-jp")

s = smtplib.SMTP(host, port, timeout=30)
s.starttls(context=ctx)
s.login(user, password)
s.mail(user)
s.rcpt(to)
code, reply = s.data(msg.as_bytes())
s.quit()
print(json.dumps({"code": code, "reply": reply.decode("utf-8", "replace")}))
