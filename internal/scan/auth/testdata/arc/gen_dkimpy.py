#!/usr/bin/python3
"""Regenerates dkimpy-chain.eml and dkimpy-chain.zone: a message sealed
twice by dkimpy (Debian python3-dkim) with two RSA keys (dkimpy's ARC
signer supports rsa-sha256 only), so that mailgate's ARC verifier is
checked against a second implementation. Keys are fresh on every run.

Run with the Debian interpreter: /usr/bin/python3 gen_dkimpy.py
"""
import base64

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

MESSAGE = (
    b"Authentication-Results: mx.origin.example; arc=none;\r\n"
    b" spf=pass smtp.mailfrom=sender.example; dkim=none\r\n"
    b"From: Alice <alice@sender.example>\r\n"
    b"To: list@lists.example\r\n"
    b"Subject: ARC interop\r\n"
    b"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
    b"Message-ID: <interop@sender.example>\r\n"
    b"\r\n"
    b"Hello  world,\r\n"
    b"  sealed twice.\r\n"
    b"\r\n"
    b"\r\n"
)



def new_rsa():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    pub = base64.b64encode(
        key.public_key().public_bytes(
            serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
    ).decode()
    return pem, pub


rsa_pem, rsa_pub = new_rsa()
rsa2_pem, rsa2_pub = new_rsa()

first = dkim.arc_sign(MESSAGE, b"hop1", b"origin.example", rsa_pem,
                      b"mx.origin.example", timestamp="1700000000")
msg1 = b"".join(first) + MESSAGE
msg1 = (b"Authentication-Results: relay.lists.example; arc=pass;\r\n"
        b" spf=pass smtp.mailfrom=lists.example\r\n") + msg1
second = dkim.arc_sign(msg1, b"hop2", b"lists.example", rsa2_pem,
                       b"relay.lists.example", timestamp="1700000100")
out = b"".join(second) + msg1

zone = {
    "hop1._domainkey.origin.example.": "v=DKIM1; k=rsa; p=" + rsa_pub,
    "hop2._domainkey.lists.example.": "v=DKIM1; k=rsa; p=" + rsa2_pub,
}


def dnsfunc(name, timeout=5):
    return zone.get(name.decode(), "").encode()


cv, results, reason = dkim.arc_verify(out, dnsfunc=dnsfunc)
assert cv == dkim.CV_Pass, (cv, reason)

with open("dkimpy-chain.eml", "wb") as f:
    f.write(out)
with open("dkimpy-chain.zone", "w") as f:
    for name, value in zone.items():
        f.write(name + " " + value + "\n")
