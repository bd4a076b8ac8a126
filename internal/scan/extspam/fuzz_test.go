package extspam

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func FuzzSpamdReply(f *testing.F) {
	for _, s := range []string{replyGTUBESymbols, replyHamSymbols, replyCheck, replyBadLine, replyReport(),
		"SPAMD/1.1 0 EX_OK\r\nContent-length: 3\r\nSpam: Yes ; 1e3 / 0x10\r\n\r\nA,B",
		"SPAMD/1.1 0 EX_OK\r\nSpam: True ; 1.0 / 5.0\r\n\r\n" + strings.Repeat(",", 50)} {
		f.Add([]byte(s), uint8(0))
	}
	cmds := []string{"SYMBOLS", "REPORT", "CHECK"}
	f.Fuzz(func(t *testing.T, data []byte, c uint8) {
		const max = 8192
		cmd := cmds[int(c)%len(cmds)]
		res, err := readSpamdReply(bytes.NewReader(data), cmd, max)
		if err != nil {
			if res != nil {
				t.Fatal("result with error")
			}
			var pe *ProtocolError
			var re *ReplyError
			if !errors.As(err, &pe) && !errors.As(err, &re) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("unexpected error kind %T: %v", err, err)
			}
			return
		}
		if math.IsNaN(res.Score) || math.IsInf(res.Score, 0) || math.IsNaN(res.Threshold) || math.IsInf(res.Threshold, 0) {
			t.Fatalf("non-finite score %+v", res)
		}
		if len(res.Symbols) > maxSymbols || (cmd == "CHECK" && len(res.Symbols) > 0) {
			t.Fatalf("%d symbols for %s", len(res.Symbols), cmd)
		}
		for _, s := range res.Symbols {
			if s.Name == "" || token(s.Name, maxNameLen) != s.Name || len(s.Description) > maxTextLen {
				t.Fatalf("unsafe symbol %+v", s)
			}
		}
	})
}

func FuzzRspamdReply(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "rspamd", "*.json"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"score":1e308,"required_score":-1,"action":"rej\u0000ect\r\nX: y","symbols":{"A B":{"score":-1e308,"options":["\u0007"]}}}`))
	f.Add([]byte(`{"score":0,"action":"","symbols":{"":{}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := parseRspamdReply(data)
		if err != nil {
			var pe *ProtocolError
			if !errors.As(err, &pe) || res != nil {
				t.Fatalf("error %T %v with result %v", err, err, res)
			}
			return
		}
		if len(res.Symbols) > maxSymbols || res.RequiredScore < 0 {
			t.Fatalf("result %+v", res)
		}
		for i, s := range res.Symbols {
			if token(s.Name, maxNameLen) != s.Name || len(s.Options) > 8 {
				t.Fatalf("unsafe symbol %+v", s)
			}
			if i > 0 && math.Abs(s.Score) > math.Abs(res.Symbols[i-1].Score) {
				t.Fatal("symbols not strongest first")
			}
		}
		for _, r := range res.Action + res.MessageID {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("control character kept in %q / %q", res.Action, res.MessageID)
			}
		}
		// The header a finding would carry must be a single safe line.
		h := "score=" + formatScore(res.Score) + " action=" + token(strings.ReplaceAll(res.Action, " ", "_"), 32)
		if strings.ContainsAny(h, "\r\n\x00") {
			t.Fatalf("unsafe header %q", h)
		}
		if m := MapScore(res.Score, res.RequiredScore, defaultRspamdThreshold); math.IsNaN(m) || math.Abs(m) > maxMappedScore {
			t.Fatalf("mapped score %v", m)
		}
	})
}
