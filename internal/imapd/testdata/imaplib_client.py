# A session of Python's imaplib against mailgate's IMAP server. The test
# delivers five messages to alice first (four Japanese, one English) and
# one more when this script prints "IDLING". Any failed check exits 1.
import base64, email, imaplib, ssl, sys, time

host, port, cafile, user, password = sys.argv[1:6]

def check(cond, what):
    if not cond:
        print("FAIL: " + what, file=sys.stderr)
        sys.exit(1)

def mutf7(s):
    # RFC 3501 5.1.3 modified UTF-7
    out, buf = [], []
    def flush():
        if buf:
            b = base64.b64encode("".join(buf).encode("utf-16-be")).decode().rstrip("=").replace("/", ",")
            out.append("&" + b + "-")
            buf.clear()
    for ch in s:
        if 0x20 <= ord(ch) <= 0x7e:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            buf.append(ch)
    flush()
    return "".join(out)

ctx = ssl.create_default_context(cafile=cafile)
M = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx)
typ, _ = M.login(user, password)
check(typ == "OK", "login")
typ, data = M.capability()
caps = data[0].decode().upper().split()
for c in ("IMAP4REV1", "IDLE", "UIDPLUS", "MOVE", "SPECIAL-USE", "CONDSTORE", "QUOTA", "LITERAL+"):
    check(c in caps, "capability " + c + " in " + repr(caps))

typ, data = M.list()
listing = b"\n".join(data)
check(b'\\Sent) "/" "Sent"' in listing and b'\\Trash) "/" "Trash"' in listing and b'"/" INBOX' in listing, "list: " + repr(listing))

typ, data = M.select("INBOX")
check(typ == "OK" and data[0] == b"5", "select: %r" % data)

typ, data = M.fetch("1:5", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
check(typ == "OK", "fetch headers")
subjects = []
for part in data:
    if isinstance(part, tuple):
        msg = email.message_from_bytes(part[1])
        subjects.append(str(email.header.make_header(email.header.decode_header(msg["Subject"]))))
check(len(subjects) == 5 and all("会議" in s for s in subjects[:4]) and subjects[4] == "Lunch", "subjects: %r" % subjects)

typ, data = M.fetch("2", "(BODY[])")
check(typ == "OK" and b"Shift_JIS" in data[0][1], "fetch body")
typ, data = M.fetch("2", "(FLAGS)")
check(b"\\Seen" in data[0], "fetch sets \\Seen: %r" % data)

# SEARCH with a Japanese two-character word, sent as a literal.
M.literal = "会議".encode("utf-8")
typ, data = M.search("UTF-8", "BODY")
check(typ == "OK" and data[0].split() == [b"1", b"2", b"3", b"4"], "search 会議: %r" % data)
M.literal = "東京".encode("utf-8")
typ, data = M.search("UTF-8", "TEXT")
check(data[0].split() == [b"1", b"2", b"3", b"4"], "search 東京: %r" % data)
typ, data = M.search(None, "FROM", "bob")
check(data[0].split() == [b"5"], "search from: %r" % data)

typ, data = M.store("5", "+FLAGS", "(\\Flagged $Work)")
check(typ == "OK" and b"\\Flagged" in data[0] and b"$Work" in data[0], "store: %r" % data)

msg = ("From: alice@example.test\r\nTo: bob@example.test\r\nSubject: =?UTF-8?B?" +
       base64.b64encode("下書き".encode()).decode() + "?=\r\nMIME-Version: 1.0\r\n"
       "Content-Type: text/plain; charset=UTF-8\r\n\r\n会議の議事録です。\r\n").encode("utf-8")
typ, data = M.append("Drafts", "(\\Draft)", imaplib.Time2Internaldate(time.time()), msg)
check(typ == "OK" and b"APPENDUID" in data[0], "append: %r" % data)

typ, data = M.copy("1:2", "Archive")
check(typ == "OK" and b"COPYUID" in data[0], "copy: %r" % data)
typ, data = M.uid("MOVE", "3", "Trash")
check(typ == "OK", "uid move: %r" % data)
typ, data = M.select("INBOX")
check(data[0] == b"4", "inbox after move: %r" % data)
typ, data = M.uid("STORE", "1", "+FLAGS", "(\\Deleted)")
typ, data = M.uid("EXPUNGE", "1")
check(typ == "OK", "uid expunge: %r" % data)
typ, data = M.select("INBOX")
check(data[0] == b"3", "inbox after expunge: %r" % data)
typ, data = M.select("Archive")
check(data[0] == b"2", "archive: %r" % data)

name = mutf7("仕事/会議")
typ, data = M.create('"%s"' % name)
check(typ == "OK", "create %s: %r" % (name, data))
typ, data = M.list('""', mutf7("仕事") + "*")
listing = b"\n".join(d for d in data if d)
check(name.encode() in listing, "japanese folder listed: %r" % listing)

typ, data = M.getquotaroot("INBOX")
check(typ == "OK", "getquotaroot: %r" % data)

# IDLE until the test delivers a message.
M.select("INBOX")
tag = M._new_tag()
M.send(tag + b" IDLE\r\n")
line = M.readline()
check(line.startswith(b"+"), "idle continuation: %r" % line)
print("IDLING", flush=True)
deadline = time.time() + 20
got = False
while time.time() < deadline:
    line = M.readline()
    if b"EXISTS" in line:
        got = True
        break
check(got, "IDLE saw no EXISTS")
M.send(b"DONE\r\n")
while True:
    line = M.readline()
    if line.startswith(tag):
        check(b"OK" in line, "idle end: %r" % line)
        break
M.logout()
print("DONE", flush=True)
