package av

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/scan/av/clamd"
	"github.com/mailgate/mailgate/internal/testutil/clamdtest"
)

// These tests run against a real clamd started by clamdtest with EICAR
// signatures; they skip when clamd is not installed (and fail under
// MAILGATE_REQUIRE_PEERS=1).

func newChecker(d *clamdtest.Clamd, cfg Config) *Checker {
	cfg.Client = &clamd.Client{Network: "unix", Address: d.Socket(), DialTimeout: 5 * time.Second, ScanTimeout: 60 * time.Second}
	return New(cfg)
}

func check(t *testing.T, c *Checker, raw []byte, s policy.MapSettings) []policy.Finding {
	t.Helper()
	fs, err := c.Check(context.Background(), policyMessage(raw), s)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	for _, f := range fs {
		if f.Check != Name || f.Overridable {
			t.Fatalf("finding %+v: wrong check name or overridable", f)
		}
	}
	return fs
}

// only returns the single finding with symbol sym, failing unless the
// findings are exactly that one.
func only(t *testing.T, fs []policy.Finding, sym string) policy.Finding {
	t.Helper()
	if len(fs) != 1 || fs[0].Symbol != sym {
		t.Fatalf("findings %s, want only %s", describe(fs), sym)
	}
	return fs[0]
}

func find(fs []policy.Finding, sym string) *policy.Finding {
	for i := range fs {
		if fs[i].Symbol == sym {
			return &fs[i]
		}
	}
	return nil
}

func describe(fs []policy.Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "\n  %s %s strip=%v reason=%q", f.Symbol, f.Action, f.StripParts, f.Reason)
	}
	return b.String()
}

func sigOK(t *testing.T, f policy.Finding) {
	t.Helper()
	if !strings.Contains(f.Reason, "Mailgate.Test.EICAR") {
		t.Fatalf("reason %q does not name the signature", f.Reason)
	}
}

func TestCheckRealClamd(t *testing.T) {
	t.Parallel()
	d := clamdtest.Start(t)
	c := newChecker(d, Config{})
	eicar := clamdtest.EICAR()
	body := textPart("Hello,\r\nplease find the file attached.\r\n")

	t.Run("clean with harmless attachment", func(t *testing.T) {
		t.Parallel()
		zipped := zipOf(t, zipEntry{name: "report.txt", data: []byte(strings.Repeat("figures ", 100))})
		raw := message("clean", multipart("mixed", "b1", body,
			attachment("report.zip", "application/zip", zipped),
			attachment("data.bin", "application/octet-stream", []byte("\x00\x01harmless\x02")),
		))
		f := only(t, check(t, c, raw, nil), SymbolClean)
		if f.Action != policy.Header || len(f.StripParts) != 0 || len(f.Headers) != 1 ||
			f.Headers[0].Name != HeaderName || !strings.HasPrefix(f.Headers[0].Value, "clean (ClamAV 1.") {
			t.Fatalf("clean finding %+v", f)
		}
	})

	t.Run("EICAR in the body", func(t *testing.T) {
		t.Parallel()
		raw := message("body", textPart("Hi\r\n"+string(eicar)+"\r\n"))
		f := only(t, check(t, c, raw, nil), SymbolVirus)
		sigOK(t, f)
		if f.Action != policy.Discard || len(f.StripParts) != 0 {
			t.Fatalf("default body action: %+v", f)
		}
		f = only(t, check(t, c, raw, policy.MapSettings{KeyInfectedBodyAction: "reject"}), SymbolVirus)
		if f.Action != policy.Reject || f.Public == "" || strings.Contains(f.Public, "EICAR") {
			t.Fatalf("reject body action: %+v", f)
		}
		// A setting that would deliver a virus is not accepted.
		f = only(t, check(t, c, raw, policy.MapSettings{KeyInfectedBodyAction: "deliver"}), SymbolVirus)
		if f.Action != policy.Discard {
			t.Fatalf("unsafe setting honoured: %+v", f)
		}
	})

	t.Run("EICAR attachment base64", func(t *testing.T) {
		t.Parallel()
		raw := message("attachment", multipart("mixed", "b2",
			multipart("alternative", "alt", textPart("plain body"), part{header: []string{"Content-Type: text/html"}, body: "<p>html body</p>"}),
			attachment("eicar.com", "application/octet-stream", eicar),
			attachment("notes.txt", "text/plain", []byte("harmless notes")),
		))
		f := only(t, check(t, c, raw, nil), SymbolVirusAttachment)
		sigOK(t, f)
		if f.Action != policy.Strip || !reflect.DeepEqual(f.StripParts, []string{"2"}) || !strings.Contains(f.Reason, `"eicar.com"`) {
			t.Fatalf("strip finding %+v", f)
		}
	})

	t.Run("quoted-printable attachment", func(t *testing.T) {
		t.Parallel()
		// Every byte escaped, so the raw message never holds the string
		// and both clamd and the walker must decode.
		var qp strings.Builder
		for i, b := range eicar {
			if i > 0 && i%20 == 0 {
				qp.WriteString("=\r\n")
			}
			fmt.Fprintf(&qp, "=%02X", b)
		}
		att := part{header: []string{
			"Content-Type: application/octet-stream; name=\"virus.txt\"",
			"Content-Disposition: attachment; filename=\"virus.txt\"",
			"Content-Transfer-Encoding: quoted-printable",
		}, body: qp.String()}
		raw := message("qp", multipart("mixed", "b3", body, att))
		if strings.Contains(string(raw), "EICAR") {
			t.Fatal("test message holds the string unencoded")
		}
		f := only(t, check(t, c, raw, nil), SymbolVirusAttachment)
		if !reflect.DeepEqual(f.StripParts, []string{"2"}) {
			t.Fatalf("strip finding %+v", f)
		}
	})

	t.Run("EICAR in a ZIP attachment", func(t *testing.T) {
		t.Parallel()
		raw := message("zip", multipart("mixed", "b4", body,
			attachment("docs.zip", "application/zip", zipOf(t, zipEntry{name: "readme.txt", data: []byte("read me")}, zipEntry{name: "eicar.com", data: eicar})),
		))
		f := only(t, check(t, c, raw, nil), SymbolVirusAttachment)
		sigOK(t, f)
		if !reflect.DeepEqual(f.StripParts, []string{"2"}) {
			t.Fatalf("strip finding %+v", f)
		}
	})

	t.Run("EICAR in a ZIP nested 5 deep", func(t *testing.T) {
		t.Parallel()
		raw := message("nested", multipart("mixed", "b5", body,
			attachment("clean.zip", "application/zip", nestedZip(t, "a.txt", []byte("nothing here"), 5)),
			attachment("deep.zip", "application/zip", nestedZip(t, "eicar.com", eicar, 5)),
		))
		f := only(t, check(t, c, raw, nil), SymbolVirusAttachment)
		if !reflect.DeepEqual(f.StripParts, []string{"3"}) {
			t.Fatalf("strip finding %+v", f)
		}
	})

	t.Run("attachment inside a forwarded message", func(t *testing.T) {
		t.Parallel()
		inner := message("inner", multipart("mixed", "in", textPart("forwarded text "+string(eicar)),
			attachment("eicar.com", "application/octet-stream", eicar)))
		raw := message("forward", multipart("mixed", "b6", body, rfc822(inner)))
		// The forwarded message's own text is not this mail's body.
		f := only(t, check(t, c, raw, nil), SymbolVirusAttachment)
		if !reflect.DeepEqual(f.StripParts, []string{"2.1", "2.2"}) {
			t.Fatalf("strip finding %+v", f)
		}
	})

	t.Run("body and attachment infected", func(t *testing.T) {
		t.Parallel()
		raw := message("both", multipart("mixed", "b7", textPart(string(eicar)),
			attachment("eicar.com", "application/octet-stream", eicar)))
		f := only(t, check(t, c, raw, policy.MapSettings{KeyInfectedBodyAction: "quarantine"}), SymbolVirus)
		if f.Action != policy.Quarantine {
			t.Fatalf("finding %+v", f)
		}
		f = only(t, check(t, c, raw, policy.MapSettings{KeyInfectedBodyAction: "strip"}), SymbolVirus)
		if f.Action != policy.Strip || !reflect.DeepEqual(f.StripParts, []string{"1", "2"}) {
			t.Fatalf("strip body: %+v", f)
		}
	})

	t.Run("zip bomb", func(t *testing.T) {
		t.Parallel()
		raw := message("bomb", multipart("mixed", "b8", body,
			attachment("invoice.zip", "application/zip", zipBomb(t, 1<<30, 2))))
		fs := check(t, c, raw, nil)
		f := find(fs, SymbolUnscannable)
		if f == nil || f.Action != policy.Quarantine || !strings.Contains(f.Reason, "over 100:1") || find(fs, SymbolClean) != nil {
			t.Fatalf("findings %s", describe(fs))
		}
		fs = check(t, c, raw, policy.MapSettings{KeyUnscannableAction: "reject"})
		if f := find(fs, SymbolUnscannable); f == nil || f.Action != policy.Reject || f.Public == "" {
			t.Fatalf("findings %s", describe(fs))
		}
	})

	t.Run("zip bomb under another type", func(t *testing.T) {
		t.Parallel()
		// Neither declared as a ZIP nor named like one: only its first
		// bytes give it away, in the parsed view as in the walk.
		for i, ct := range []string{"text/plain", "application/octet-stream", "image/png"} {
			raw := message("disguised bomb", multipart("mixed", fmt.Sprintf("b%d", 20+i), body,
				attachment("photo", ct, zipBomb(t, 1<<30, 2))))
			fs := check(t, c, raw, nil)
			if f := find(fs, SymbolUnscannable); f == nil || !strings.Contains(f.Reason, "over 100:1") || find(fs, SymbolClean) != nil {
				t.Fatalf("%s: findings %s", ct, describe(fs))
			}
		}
	})

	t.Run("no archive: no second read for the archive budget", func(t *testing.T) {
		t.Parallel()
		raw := message("no archive", multipart("mixed", "b30", body,
			attachment("data.bin", "application/octet-stream", []byte("\x00\x01harmless\x02"))))
		pm := policyMessage(raw)
		opens := 0
		var mu sync.Mutex
		open := pm.Open
		pm.Open = func() (io.ReadCloser, error) {
			mu.Lock()
			opens++
			mu.Unlock()
			return open()
		}
		// Another check parsed the message already, as in the pipeline.
		if _, err := pm.Parsed(context.Background()); err != nil {
			t.Fatal(err)
		}
		opens = 0
		fs, err := c.Check(context.Background(), pm, nil)
		if err != nil || find(fs, SymbolClean) == nil {
			t.Fatalf("findings %s, %v", describe(fs), err)
		}
		// Only clamd's copy.
		if opens != 1 {
			t.Fatalf("message read %d times, want 1", opens)
		}
	})

	t.Run("zip bomb beside a virus", func(t *testing.T) {
		t.Parallel()
		raw := message("bomb and virus", multipart("mixed", "b11", body,
			attachment("invoice.zip", "application/zip", zipBomb(t, 1<<30, 1)),
			attachment("eicar.com", "application/octet-stream", eicar)))
		fs := check(t, c, raw, policy.MapSettings{KeyUnscannableAction: "header"})
		u, v := find(fs, SymbolUnscannable), find(fs, SymbolVirusAttachment)
		if len(fs) != 2 || u == nil || v == nil || u.Action != policy.Header || !reflect.DeepEqual(v.StripParts, []string{"3"}) {
			t.Fatalf("findings %s", describe(fs))
		}
	})

	t.Run("large parts spooled to disk", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		small := newChecker(d, Config{PartMemory: 100, TempDir: dir})
		raw := message("spool", multipart("mixed", "b12", body,
			attachment("docs.zip", "application/zip", zipOf(t, zipEntry{name: "readme.txt", data: []byte(strings.Repeat("read me ", 100))}, zipEntry{name: "eicar.com", data: eicar})),
			attachment("big.bin", "application/octet-stream", []byte(strings.Repeat("harmless ", 1000))),
		))
		f := only(t, check(t, small, raw, nil), SymbolVirusAttachment)
		if !reflect.DeepEqual(f.StripParts, []string{"2"}) {
			t.Fatalf("strip finding %+v", f)
		}
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Fatalf("temporary files left behind: %v", left)
		}
	})

	t.Run("archive depth setting", func(t *testing.T) {
		t.Parallel()
		raw := message("depth", multipart("mixed", "b9", body,
			attachment("deep.zip", "application/zip", nestedZip(t, "a.txt", []byte("nothing here"), 5))))
		only(t, check(t, c, raw, nil), SymbolClean)
		f := only(t, check(t, c, raw, policy.MapSettings{KeyArchiveMaxDepth: "4"}), SymbolUnscannable)
		if f.Action != policy.Quarantine || !strings.Contains(f.Reason, "deeper than 4") {
			t.Fatalf("finding %+v", f)
		}
	})

	t.Run("encrypted ZIP", func(t *testing.T) {
		t.Parallel()
		raw := message("encrypted", multipart("mixed", "b10", body,
			attachment("見積書.zip", "application/zip", encryptedZip(t, "見積書.pdf", "pass", []byte("%PDF-1.4 quote")))))
		for _, tc := range []struct {
			setting string
			want    policy.Action
		}{{"", policy.Header}, {"header", policy.Header}, {"quarantine", policy.Quarantine}, {"reject", policy.Reject}, {"discard", policy.Header}} {
			s := policy.MapSettings{}
			if tc.setting != "" {
				s[KeyEncryptedAction] = tc.setting
			}
			f := only(t, check(t, c, raw, s), SymbolEncryptedArchive)
			if f.Action != tc.want || len(f.Headers) != 1 || f.Headers[0].Value != "encrypted archive not scanned" ||
				!strings.Contains(f.Reason, "Heuristics.Encrypted") || !strings.Contains(f.Reason, "見積書.pdf") {
				t.Fatalf("setting %q: %+v", tc.setting, f)
			}
			if (tc.want == policy.Reject) != (f.Public != "") {
				t.Fatalf("setting %q: public text %q", tc.setting, f.Public)
			}
		}
	})
}

func TestCheckClamdSizeLimit(t *testing.T) {
	t.Parallel()
	d := clamdtest.Start(t, clamdtest.WithStreamMaxLength(64<<10))
	c := newChecker(d, Config{})
	raw := message("large", multipart("mixed", "s", textPart("big file attached"),
		attachment("big.bin", "application/octet-stream", []byte(strings.Repeat("0123456789abcdef", 10000)))))
	f := only(t, check(t, c, raw, nil), SymbolUnscannable)
	if f.Action != policy.Quarantine || !strings.Contains(f.Reason, "StreamMaxLength") {
		t.Fatalf("finding %+v", f)
	}
}

func TestCheckClamdStopped(t *testing.T) {
	t.Parallel()
	d := clamdtest.Start(t)
	c := newChecker(d, Config{Timeout: 10 * time.Second})
	raw := message("down", multipart("mixed", "d1", textPart("hello"), attachment("a.bin", "application/octet-stream", []byte("data"))))
	only(t, check(t, c, raw, nil), SymbolClean)
	d.Stop()
	fs, err := c.Check(context.Background(), policyMessage(raw), nil)
	if !errors.Is(err, clamd.ErrUnavailable) || fs != nil {
		t.Fatalf("clamd stopped: findings %v, err %v", fs, err)
	}
}

func TestCheckNoClient(t *testing.T) {
	t.Parallel()
	fs, err := New(Config{}).Check(context.Background(), policyMessage(message("x", textPart("x"))), nil)
	if err == nil || fs != nil {
		t.Fatalf("no client: %v %v", fs, err)
	}
}

// TestVirusFindingAttribution covers the cases where clamd's detection
// cannot be tied to parts safely: the whole message then takes the body
// action, and "strip" falls back to discarding.
func TestVirusFindingAttribution(t *testing.T) {
	t.Parallel()
	raw := message("attr", multipart("mixed", "a", textPart("body"),
		attachment("x.bin", "application/octet-stream", []byte("payload"))))
	m := policyMessage(raw)
	c := New(Config{Client: &clamd.Client{Address: "127.0.0.1:1"}})
	st := c.settings(policy.MapSettings{KeyInfectedBodyAction: "strip"})
	infected := clamd.Result{Infected: true, Signature: "Test.Sig"}
	leaf := func(path, ct string, size int64, res clamd.Result) partScan {
		return partScan{leafPart: leafPart{Path: path, ContentType: ct}, size: size, result: res}
	}
	cases := []struct {
		name  string
		ws    walkState
		sym   string
		act   policy.Action
		strip []string
	}{
		{"attachment confirmed", walkState{parts: []partScan{leaf("1", "text/plain", 4, clamd.Result{}), leaf("2", "application/octet-stream", 7, infected)}},
			SymbolVirusAttachment, policy.Strip, []string{"2"}},
		{"body confirmed", walkState{parts: []partScan{leaf("1", "text/plain", 4, infected)}},
			SymbolVirus, policy.Strip, []string{"1"}},
		{"no part infected on its own", walkState{parts: []partScan{leaf("1", "text/plain", 4, clamd.Result{})}},
			SymbolVirus, policy.Discard, nil},
		{"size disagrees with mailtext", walkState{parts: []partScan{leaf("2", "application/octet-stream", 8, infected)}},
			SymbolVirus, policy.Discard, nil},
		{"path unknown to mailtext", walkState{parts: []partScan{leaf("3", "application/octet-stream", 7, infected)}},
			SymbolVirus, policy.Discard, nil},
		{"walk incomplete", walkState{res: walkResult{Incomplete: "x"}, parts: []partScan{leaf("2", "application/octet-stream", 7, infected)}},
			SymbolVirus, policy.Discard, nil},
	}
	for _, tc := range cases {
		f := c.virusFinding(context.Background(), m, st, infected, &tc.ws)
		if f.Symbol != tc.sym || f.Action != tc.act || !reflect.DeepEqual(f.StripParts, tc.strip) || f.Overridable || !strings.Contains(f.Reason, "Test.Sig") {
			t.Errorf("%s: %+v", tc.name, f)
		}
	}
}

func TestSettings(t *testing.T) {
	t.Parallel()
	c := New(Config{ArchiveMaxDepth: 7})
	def := c.settings(nil)
	if def.bodyAction != policy.Discard || def.unscannableAction != policy.Quarantine || def.encryptedAction != policy.Header ||
		def.arch.maxDepth != 7 || def.arch.maxEntries != 10000 || def.arch.maxBytes != 500<<20 || def.arch.maxRatio != 100 || def.archTimeout != 10*time.Second {
		t.Fatalf("defaults: %+v", def)
	}
	st := c.settings(policy.MapSettings{
		KeyInfectedBodyAction: "Quarantine", KeyUnscannableAction: "Reject", KeyEncryptedAction: "quarantine",
		KeyArchiveMaxDepth: "3", KeyArchiveMaxEntries: "50", KeyArchiveMaxBytes: "2G", KeyArchiveMaxRatio: "250", KeyArchiveTimeout: "1500ms",
	})
	if st.bodyAction != policy.Quarantine || st.unscannableAction != policy.Reject || st.encryptedAction != policy.Quarantine ||
		st.arch.maxDepth != 3 || st.arch.maxEntries != 50 || st.arch.maxBytes != 2<<30 || st.arch.maxRatio != 250 || st.archTimeout != 1500*time.Millisecond {
		t.Fatalf("set: %+v", st)
	}
	bad := c.settings(policy.MapSettings{
		KeyInfectedBodyAction: "continue", KeyUnscannableAction: "allow", KeyEncryptedAction: "strip",
		KeyArchiveMaxDepth: "-1", KeyArchiveMaxEntries: "many", KeyArchiveMaxBytes: "0", KeyArchiveMaxRatio: "0.5", KeyArchiveTimeout: "soon",
	})
	if bad.bodyAction != policy.Discard || bad.unscannableAction != policy.Quarantine || bad.encryptedAction != policy.Header ||
		bad.arch != def.arch || bad.archTimeout != def.archTimeout {
		t.Fatalf("invalid values not replaced by defaults: %+v", bad)
	}
	// The grammar is bytesize's; byteSize adds the fallback to the default
	// for errors, 0 and budgets past 1 PiB.
	for in, want := range map[string]int64{
		"1024": 1024, "4k": 4096, "3M": 3 << 20, " 1G": 1 << 30, "2GB": 2 << 30, "1048576K": 1 << 30, "1024G": 1 << 40,
		"1.5M": 9, "M": 9, "": 9, "0": 9, "0M": 9, "-5M": 9,
		"1048576G": 1 << 50, "1048577G": 9, "9223372036854775807K": 9, "99999999999999999999": 9,
	} {
		if got := byteSize(strings.TrimSpace(in), 9); got != want {
			t.Errorf("byteSize(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestFormatVersion(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"ClamAV 1.4.6/27000/Mon Jan  1 00:00:00 2025": "ClamAV 1.4.6/27000",
		"ClamAV 1.4.6":                    "ClamAV 1.4.6",
		"ClamAV 1.4.6\r\nX-Evil: (1)/2/3": "ClamAV 1.4.6X-Evil: 1/2",
		"not clamd":                       "ClamAV",
	} {
		if got := formatVersion(in); got != want {
			t.Errorf("formatVersion(%q) = %q, want %q", in, got, want)
		}
	}
}
