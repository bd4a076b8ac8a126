package clamd

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseScanReply(t *testing.T) {
	cases := []struct {
		raw                         string
		infected, encrypted, limits bool
		sig                         string
		err                         string // "protocol", "reply", "size" or ""
	}{
		{raw: "stream: OK"},
		{raw: "stream: Eicar-Test-Signature FOUND", infected: true, sig: "Eicar-Test-Signature"},
		{raw: "stream: Local.Sig.UNOFFICIAL FOUND", infected: true, sig: "Local.Sig.UNOFFICIAL"},
		{raw: "stream: Win.Test.EICAR_HDB-1(44d88612fea8a8f36de82e1278abb02f:68) FOUND", infected: true, sig: "Win.Test.EICAR_HDB-1"},
		{raw: "stream: Heuristics.Encrypted.Zip FOUND", encrypted: true, sig: "Heuristics.Encrypted.Zip"},
		{raw: "stream: Heuristics.Encrypted.PDF FOUND", encrypted: true, sig: "Heuristics.Encrypted.PDF"},
		{raw: "stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND", limits: true, sig: "Heuristics.Limits.Exceeded.MaxFileSize"},
		{raw: "stream: Heuristics.Limits.Exceeded.MaxScanTime FOUND", limits: true, sig: "Heuristics.Limits.Exceeded.MaxScanTime"},
		// Other heuristics are detections in their own right.
		{raw: "stream: Heuristics.Phishing.Email.SpoofedDomain FOUND", infected: true, sig: "Heuristics.Phishing.Email.SpoofedDomain"},
		// A parenthesis that is not hash:size stays part of the name.
		{raw: "stream: Odd(name) FOUND", infected: true, sig: "Odd(name)"},
		{raw: "INSTREAM size limit exceeded. ERROR", err: "size"},
		{raw: "stream: Can't allocate memory ERROR", err: "reply"},
		{raw: "", err: "protocol"},
		{raw: "PONG", err: "protocol"},
		{raw: "stream: ", err: "protocol"},
		{raw: "stream:  FOUND", err: "protocol"},
		{raw: "stream: two words FOUND", err: "protocol"},
		{raw: "stream: OK FOUND?", err: "protocol"},
		{raw: "stream: Tab\tName FOUND", err: "protocol"},
		{raw: "stream: Ünicode FOUND", err: "protocol"},
		{raw: "1: stream: OK", err: "protocol"},
		// Replies to FILDES name the descriptor instead of "stream".
		{raw: "fd[12]: OK"},
		{raw: "fd[7]: Mailgate.Test.EICAR.Body.UNOFFICIAL FOUND", infected: true, sig: "Mailgate.Test.EICAR.Body.UNOFFICIAL"},
		{raw: "fd[7]: Heuristics.Limits.Exceeded.MaxScanSize FOUND", limits: true, sig: "Heuristics.Limits.Exceeded.MaxScanSize"},
		{raw: "fd[]: OK", err: "protocol"},
		{raw: "fd[x]: OK", err: "protocol"},
		{raw: "fd[3] OK", err: "protocol"},
	}
	for _, tc := range cases {
		res, err := parseScanReply(tc.raw)
		var pe *ProtocolError
		var re *ReplyError
		switch tc.err {
		case "protocol":
			if !errors.As(err, &pe) {
				t.Errorf("%q: got %+v, %v; want ProtocolError", tc.raw, res, err)
			}
			continue
		case "reply":
			if !errors.As(err, &re) || errors.Is(err, ErrSizeLimit) || re.Reply != tc.raw {
				t.Errorf("%q: got %v; want ReplyError", tc.raw, err)
			}
			continue
		case "size":
			if !errors.Is(err, ErrSizeLimit) || !errors.As(err, &re) {
				t.Errorf("%q: got %v; want ErrSizeLimit", tc.raw, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.raw, err)
			continue
		}
		want := Result{Infected: tc.infected, Encrypted: tc.encrypted, LimitsExceeded: tc.limits, Signature: tc.sig, Raw: tc.raw}
		if res != want {
			t.Errorf("%q: got %+v, want %+v", tc.raw, res, want)
		}
	}
}

func TestReadReply(t *testing.T) {
	cases := []struct {
		in, want string
		err      string // "protocol", "noreply" or ""
	}{
		{in: "stream: OK\x00", want: "stream: OK"},
		{in: "PONG\x00trailing", want: "PONG"},
		{in: "\x00", want: ""},
		{in: "", err: "noreply"},
		{in: "stream: OK", err: "protocol"},
		{in: strings.Repeat("x", maxReplyLen) + "\x00", want: strings.Repeat("x", maxReplyLen)},
		{in: strings.Repeat("x", maxReplyLen+1) + "\x00", err: "protocol"},
		{in: strings.Repeat("x", 10*maxReplyLen), err: "protocol"},
	}
	for _, tc := range cases {
		for _, oneByte := range []bool{false, true} {
			var src io.Reader = strings.NewReader(tc.in)
			if oneByte {
				src = iotest.OneByteReader(src)
			}
			got, err := readReply(src)
			var pe *ProtocolError
			switch tc.err {
			case "protocol":
				if !errors.As(err, &pe) {
					t.Errorf("%.20q oneByte=%v: got %q, %v; want ProtocolError", tc.in, oneByte, got, err)
				}
			case "noreply":
				if !errors.Is(err, errNoReply) {
					t.Errorf("%.20q: got %q, %v; want errNoReply", tc.in, got, err)
				}
			default:
				if err != nil || got != tc.want {
					t.Errorf("%.20q oneByte=%v: got %.20q, %v; want %.20q", tc.in, oneByte, got, err, tc.want)
				}
			}
		}
	}
}

func TestReadReplyPassesIOErrors(t *testing.T) {
	boom := errors.New("connection reset")
	_, err := readReply(iotest.ErrReader(boom))
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want the read error", err)
	}
}

func FuzzParseScanReply(f *testing.F) {
	for _, s := range []string{
		"stream: OK",
		"stream: Eicar-Test-Signature FOUND",
		"stream: Win.Test(0a:1) FOUND",
		"stream: Heuristics.Encrypted.Zip FOUND",
		"stream: Heuristics.Limits.Exceeded.MaxRecursion FOUND",
		"INSTREAM size limit exceeded. ERROR",
		"stream: (:) FOUND",
		"stream: a() FOUND",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		res, err := parseScanReply(raw)
		if err != nil {
			if res != (Result{}) {
				t.Fatalf("error %v with non-zero result %+v", err, res)
			}
			return
		}
		if res.Raw != raw {
			t.Fatalf("Raw %q, want %q", res.Raw, raw)
		}
		flags := 0
		for _, b := range []bool{res.Infected, res.Encrypted, res.LimitsExceeded} {
			if b {
				flags++
			}
		}
		if flags > 1 || (flags == 1) == (res.Signature == "") || res.Clean() != (flags == 0) {
			t.Fatalf("inconsistent result %+v", res)
		}
		if res.Signature != "" && !strings.Contains(raw, res.Signature) {
			t.Fatalf("signature %q not in reply %q", res.Signature, raw)
		}
	})
}

func FuzzReadReply(f *testing.F) {
	f.Add([]byte("stream: OK\x00"))
	f.Add([]byte("PONG"))
	f.Add([]byte("\x00\x00"))
	f.Add(bytes.Repeat([]byte("A"), maxReplyLen+2))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := readReply(bytes.NewReader(in))
		if err != nil {
			return
		}
		i := bytes.IndexByte(in, 0)
		if i < 0 || got != string(in[:i]) || len(got) > maxReplyLen {
			t.Fatalf("readReply(%q) = %q", in, got)
		}
	})
}
