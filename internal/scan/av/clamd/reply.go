package clamd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
)

// maxReplyLen bounds a reply. clamd's replies are a signature name and a few
// words; anything longer is not clamd, and reading it unbounded would let a
// broken peer grow our memory.
const maxReplyLen = 4096

// Result is clamd's verdict on one stream.
//
// Exactly one of the following holds: the stream is clean (Clean reports
// true, Signature is empty); Infected is true (a malware signature matched);
// Encrypted is true (clamd could not look inside an encrypted archive or
// document); LimitsExceeded is true (clamd stopped at one of its limits, such
// as MaxFileSize, MaxScanSize, MaxRecursion or MaxScanTime). The last two are
// ClamAV "Heuristics.*" detections rather than malware, so they are kept out
// of Infected and the gateway can apply its policy for unscannable content.
type Result struct {
	Infected       bool
	Encrypted      bool
	LimitsExceeded bool
	// Signature is the detection name as clamd reports it, e.g.
	// "Eicar-Test-Signature.UNOFFICIAL" or "Heuristics.Encrypted.Zip",
	// without the "(hash:size)" suffix ExtendedDetectionInfo adds.
	Signature string
	// Raw is clamd's reply without the terminating NUL, for logs.
	Raw string
}

// Clean reports whether clamd found nothing and reported no limit or
// encryption. It is only as complete as clamd's limits allow: ClamAV 1.4
// skips a zip member larger than MaxFileSize without any alert, even with
// AlertExceedsMax, when the archive itself is under the limit (observed with
// Debian's clamav 1.4.6). Keep MaxFileSize and MaxScanSize at least as large as the
// largest message accepted.
func (r Result) Clean() bool { return !r.Infected && !r.Encrypted && !r.LimitsExceeded }

const (
	encryptedPrefix = "Heuristics.Encrypted."
	limitsPrefix    = "Heuristics.Limits.Exceeded"
)

// parseScanReply interprets the reply to zINSTREAM or zFILDES, NUL already
// removed. The forms clamd sends (clamd(8), and ClamAV 1.4 as observed in
// tests), with "fd[<n>]: " in place of "stream: " for FILDES:
//
//	stream: OK
//	stream: <name> FOUND
//	stream: <name>(<hash>:<size>) FOUND   (ExtendedDetectionInfo yes)
//	<text> ERROR                          (e.g. "INSTREAM size limit exceeded. ERROR")
func parseScanReply(raw string) (Result, error) {
	if strings.HasSuffix(raw, " ERROR") {
		return Result{}, &ReplyError{Reply: raw}
	}
	rest, ok := strings.CutPrefix(raw, "stream: ")
	if !ok {
		rest, ok = cutFDPrefix(raw)
	}
	if !ok {
		return Result{}, &ProtocolError{Reason: `reply does not start with "stream: " or "fd[n]: "`, Reply: clip(raw)}
	}
	if rest == "OK" {
		return Result{Raw: raw}, nil
	}
	name, ok := strings.CutSuffix(rest, " FOUND")
	if !ok {
		return Result{}, &ProtocolError{Reason: "reply is neither OK, FOUND nor ERROR", Reply: clip(raw)}
	}
	name = stripExtendedInfo(name)
	if !validSignatureName(name) {
		return Result{}, &ProtocolError{Reason: "malformed signature name", Reply: clip(raw)}
	}
	res := Result{Signature: name, Raw: raw}
	switch {
	case strings.HasPrefix(name, encryptedPrefix):
		res.Encrypted = true
	case strings.HasPrefix(name, limitsPrefix):
		res.LimitsExceeded = true
	default:
		res.Infected = true
	}
	return res, nil
}

// cutFDPrefix removes the "fd[<n>]: " that starts a reply to FILDES.
func cutFDPrefix(raw string) (string, bool) {
	rest, ok := strings.CutPrefix(raw, "fd[")
	if !ok {
		return raw, false
	}
	n, rest, ok := strings.Cut(rest, "]: ")
	if !ok || n == "" || !isDigits(n) {
		return raw, false
	}
	return rest, true
}

// stripExtendedInfo removes the "(hash:size)" that ExtendedDetectionInfo
// appends to the name, leaving names without it untouched.
func stripExtendedInfo(name string) string {
	if !strings.HasSuffix(name, ")") {
		return name
	}
	open := strings.LastIndexByte(name, '(')
	if open <= 0 {
		return name
	}
	hash, size, ok := strings.Cut(name[open+1:len(name)-1], ":")
	if !ok || hash == "" || size == "" || !isHex(hash) || !isDigits(size) {
		return name
	}
	return name[:open]
}

func validSignatureName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

func isHex(s string) bool {
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// errNoReply marks a connection that closed before sending a single byte:
// clamd died or dropped us, which is unavailability, not a protocol error.
var errNoReply = errors.New("connection closed without a reply")

// idleNotice is what clamd writes, newline-terminated, before closing a
// connection that sent no command within its ReadTimeout or
// CommandReadTimeout.
const idleNotice = "COMMAND READ TIMED OUT\n"

// errClosedIdle marks a connection clamd closed for sending no command in
// time: like errNoReply, unavailability rather than a protocol error.
var errClosedIdle = errors.New("connection closed by clamd: COMMAND READ TIMED OUT " +
	"(clamd's ReadTimeout, which on a kept connection also limits a scan: set it above checks.av_timeout)")

// readReply reads one NUL-terminated reply and returns it without the NUL.
// Bytes after the NUL are ignored: outside IDSESSION clamd sends one reply
// and closes.
func readReply(r io.Reader) (string, error) {
	reply, _, err := readReplyTail(r)
	return reply, err
}

// readReplyTail is readReply that also reports whether bytes followed the
// NUL, which on an IDSESSION connection carrying one command at a time
// means the connection is out of step.
func readReplyTail(r io.Reader) (reply string, trailing bool, err error) {
	buf := make([]byte, 0, 256)
	var tmp [512]byte
	for {
		n, err := r.Read(tmp[:])
		if n > 0 {
			chunk := tmp[:n]
			if i := bytes.IndexByte(chunk, 0); i >= 0 {
				buf = append(buf, chunk[:i]...)
				if len(buf) > maxReplyLen {
					return "", false, &ProtocolError{Reason: "reply too long", Reply: clip(string(buf))}
				}
				return string(buf), i+1 < n, nil
			}
			buf = append(buf, chunk...)
			if len(buf) > maxReplyLen {
				return "", false, &ProtocolError{Reason: "reply too long", Reply: clip(string(buf))}
			}
		}
		if err != nil {
			if string(buf) == idleNotice {
				// A reset says our command was still unread when clamd
				// closed; the end of the stream, that clamd had read it.
				return "", false, fmt.Errorf("%w: %w", errClosedIdle, err)
			}
			if errors.Is(err, io.EOF) {
				if len(buf) == 0 {
					return "", false, errNoReply
				}
				return "", false, &ProtocolError{Reason: "reply not NUL-terminated", Reply: clip(string(buf))}
			}
			return "", false, err
		}
	}
}

// clip shortens a reply for error messages so a hostile peer cannot make
// log lines arbitrarily long.
func clip(s string) string {
	const max = 128
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
