#!/usr/bin/env python3
"""Check a mailgate archive inclusion proof without mailgate.

    python3 archive-check.py PROOF.json MESSAGE.eml PUBLIC_KEY

PROOF.json comes from `mailgate archive proof ID` (or the console),
MESSAGE.eml is the message as exported, PUBLIC_KEY is the installation's
archive key as published ("ed25519:BASE64"), obtained independently of
the proof. Exit status 0 and "OK" when the message is, unchanged, the
entry the signed checkpoint covers; otherwise the reason and status 1.

Only the Python standard library is used: hashlib for SHA-256 and
SHA-512, and Ed25519 verification written out from RFC 8032 section 6.
"""
import base64
import hashlib
import json
import sys

# --- Ed25519 verification (RFC 8032, section 6, reference code) ---
p = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
d = -121665 * pow(121666, p - 2, p) % p
sqrt_m1 = pow(2, (p - 1) // 4, p)


def point_add(P, Q):
    A, B = (P[1] - P[0]) * (Q[1] - Q[0]) % p, (P[1] + P[0]) * (Q[1] + Q[0]) % p
    C, D = 2 * P[3] * Q[3] * d % p, 2 * P[2] * Q[2] % p
    E, F, G, H = B - A, D - C, D + C, B + A
    return (E * F, G * H, F * G, E * H)


def point_mul(s, P):
    Q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            Q = point_add(Q, P)
        P = point_add(P, P)
        s >>= 1
    return Q


def point_equal(P, Q):
    return (P[0] * Q[2] - Q[0] * P[2]) % p == 0 and (P[1] * Q[2] - Q[1] * P[2]) % p == 0


def recover_x(y, sign):
    if y >= p:
        return None
    x2 = (y * y - 1) * pow(d * y * y + 1, p - 2, p)
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (p + 3) // 8, p)
    if (x * x - x2) % p != 0:
        x = x * sqrt_m1 % p
    if (x * x - x2) % p != 0:
        return None
    if (x & 1) != sign:
        x = p - x
    return x


g_y = 4 * pow(5, p - 2, p) % p
g_x = recover_x(g_y, 0)
G = (g_x, g_y, 1, g_x * g_y % p)


def point_decompress(s):
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % p)


def ed25519_verify(public, msg, signature):
    if len(public) != 32 or len(signature) != 64:
        return False
    A = point_decompress(public)
    R = point_decompress(signature[:32])
    if A is None or R is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= L:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public + msg).digest(), "little") % L
    return point_equal(point_mul(s, G), point_add(R, point_mul(h, A)))


# --- RFC 6962 / RFC 9162 Merkle tree ---
def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_path(leaf, index, size, path):
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        raise ValueError("index outside the tree")
    fn, sn, r = index, size - 1, leaf
    for p_ in path:
        if sn == 0:
            raise ValueError("audit path too long")
        if fn & 1 or fn == sn:
            r = node_hash(p_, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p_)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("audit path too short")
    return r


def fields(text):
    out = {}
    for line in text.splitlines()[1:]:
        k, _, v = line.partition(": ")
        out[k] = v
    return out


def check(proof, message, public_key):
    pub = base64.b64decode(public_key.strip().removeprefix("ed25519:"))
    cp = proof["checkpoint"]
    if not ed25519_verify(pub, cp.encode(), base64.b64decode(proof["signature"])):
        return "the checkpoint's signature does not verify with this public key"
    c = fields(cp)
    if int(c["size"]) != proof["tree_size"] or int(c["tenant"]) != proof["tenant"]:
        return "the proof and the checkpoint name different trees"
    leaf = fields(proof["leaf_data"])
    if leaf.get("sha256") != hashlib.sha256(message).hexdigest():
        return "the message differs from the archived one (SHA-256 mismatch)"
    if leaf.get("meta-sha256") != hashlib.sha256(proof["meta"].encode()).hexdigest():
        return "the metadata differs from the archived one"
    if int(leaf.get("seq", -1)) != proof["seq"]:
        return "the leaf's position is not the proof's"
    path = [bytes.fromhex(h) for h in proof["audit_path"]]
    try:
        root = root_from_path(leaf_hash(proof["leaf_data"].encode()), proof["seq"], proof["tree_size"], path)
    except ValueError as e:
        return str(e)
    if root.hex() != c["root"]:
        return "the audit path does not lead to the signed root"
    return None


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        proof = json.load(f)
    with open(sys.argv[2], "rb") as f:
        message = f.read()
    with open(sys.argv[3]) as f:
        key = f.read()
    why = check(proof, message, key)
    if why:
        print("FAILED:", why)
        sys.exit(1)
    print("OK: message %s is entry %d of tenant %d's archive, signed at %s" % (
        proof["id"], proof["seq"], proof["tenant"], fields(proof["checkpoint"])["time"]))
