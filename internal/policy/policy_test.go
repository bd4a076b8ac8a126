package policy

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/mailtext"
)

func rcpts(addrs ...string) []Rcpt {
	var out []Rcpt
	for _, a := range addrs {
		out = append(out, Rcpt{Addr: a, Domain: a[strings.IndexByte(a, '@')+1:]})
	}
	return out
}

func TestResolvePerRecipient(t *testing.T) {
	fs := []Finding{
		{Check: "auth", Symbol: "SPF_FAIL", Action: Header, Overridable: true, Headers: []HeaderField{{"X-A", "1"}}},
		{Check: "spam", Symbol: "SPAM", Action: Quarantine, Overridable: true},
		{Check: "lists", Symbol: "ALLOW_FROM", Action: Allow, Rcpts: []string{"alice@example.test"}},
		{Check: "lists", Symbol: "DENY_SUBJECT", Action: Discard, Rcpts: []string{"carol@example.test"}},
		{Check: "bec", Symbol: "BEC", Action: Tag, TagText: "[Suspicious]", Overridable: true},
	}
	vs := Resolve(rcpts("alice@example.test", "bob@example.test", "carol@example.test"), fs)
	if vs[0].Action != Allow || !vs[0].Delivers() {
		t.Errorf("alice (allow-listed) got %s", vs[0].Action)
	}
	if vs[0].TagText != "" {
		t.Errorf("allow-listed copy tagged %q", vs[0].TagText)
	}
	if vs[1].Action != Quarantine || vs[1].Decider.Symbol != "SPAM" {
		t.Errorf("bob got %s", vs[1].Action)
	}
	if vs[2].Action != Discard {
		t.Errorf("carol got %s", vs[2].Action)
	}
	for _, v := range vs {
		if len(v.Headers) != 1 || v.Headers[0].Name != "X-A" {
			t.Errorf("%s headers %v", v.Rcpt, v.Headers)
		}
	}
}

func TestAllowDoesNotWaiveVirus(t *testing.T) {
	fs := []Finding{
		{Check: "lists", Symbol: "ALLOW_FROM", Action: Allow},
		{Check: "av", Symbol: "VIRUS", Action: Discard},
	}
	if v := Resolve(rcpts("a@x.test"), fs)[0]; v.Action != Discard {
		t.Fatalf("virus with allow list: %s", v.Action)
	}
}

type fakeCheck struct {
	name  string
	delay time.Duration
	fs    []Finding
	err   error
	panic bool
}

func (f fakeCheck) Name() string { return f.name }
func (f fakeCheck) Check(ctx context.Context, m *Message, s Settings) ([]Finding, error) {
	if f.panic {
		panic("boom")
	}
	select {
	case <-time.After(f.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return f.fs, f.err
}

func msg() *Message {
	return &Message{Env: &Envelope{Rcpts: rcpts("a@x.test")}, Open: func() (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader("Subject: x\r\n\r\nbody\r\n")), nil
	}}
}

func TestRunnerMergesInStageOrderAndAppliesFailurePolicy(t *testing.T) {
	r := &Runner{Stages: []Stage{
		{Check: fakeCheck{name: "slow", delay: 50 * time.Millisecond, fs: []Finding{{Symbol: "FIRST", Action: Tag, TagText: "[slow]"}}}},
		{Check: fakeCheck{name: "fast", fs: []Finding{{Symbol: "SECOND", Action: Tag, TagText: "[fast]"}}}},
		{Check: fakeCheck{name: "down", err: errors.New("scanner unreachable")}, OnError: Header},
	}}
	fs, vs := r.Run(context.Background(), msg(), PerRcpt{Message: MapSettings{}})
	if len(fs) != 3 || fs[0].Symbol != "FIRST" || fs[1].Symbol != "SECOND" || fs[2].Symbol != "CHECK_FAILED" {
		t.Fatalf("merge order %+v", fs)
	}
	if fs[0].Check != "slow" {
		t.Fatalf("check name not filled in: %q", fs[0].Check)
	}
	// Equal actions: the first in stage order decides, whatever finished first.
	if vs[0].TagText != "[slow]" || vs[0].Action != Tag {
		t.Fatalf("verdict %+v", vs[0])
	}
	if fs[2].Action != Header || fs[2].Headers[0].Name != "X-Mailgate-Unchecked" {
		t.Fatalf("pass-with-header failure %+v", fs[2])
	}
}

func TestRunnerTimeoutAndPanicTempFail(t *testing.T) {
	r := &Runner{Stages: []Stage{
		{Check: fakeCheck{name: "hang", delay: time.Hour}, Timeout: 50 * time.Millisecond},
		{Check: fakeCheck{name: "bug", panic: true}},
	}}
	fs, vs := r.Run(context.Background(), msg(), PerRcpt{})
	if len(fs) != 2 || fs[0].Action != TempFail || fs[1].Action != TempFail {
		t.Fatalf("findings %+v", fs)
	}
	if vs[0].Action != TempFail || vs[0].Decider.Code != 451 {
		t.Fatalf("verdict %+v", vs[0])
	}
}

func TestLayeredAndPerRcpt(t *testing.T) {
	tenant := map[string]string{"a": "tenant", "b": "tenant"}
	domain := map[string]string{"b": "domain"}
	addr := map[string]string{"a": "address"}
	p := PerRcpt{Message: Layered{domain, tenant}, Rcpt: map[string]Settings{"x@d.test": Layered{addr, domain, tenant}}}
	if v, _ := p.Get("a"); v != "tenant" {
		t.Errorf("message a=%s", v)
	}
	if v, _ := ForRcpt(p, "x@d.test").Get("a"); v != "address" {
		t.Errorf("rcpt a=%s", v)
	}
	if v, _ := ForRcpt(p, "x@d.test").Get("b"); v != "domain" {
		t.Errorf("rcpt b=%s", v)
	}
	if _, ok := ForRcpt(p, "other@d.test").Get("zzz"); ok {
		t.Error("missing key found")
	}
}

type stageRecord struct {
	fs  []Finding
	err error
}

type recorder struct {
	mu   sync.Mutex
	seen map[string]stageRecord
}

func (r *recorder) StageDone(check string, took time.Duration, fs []Finding, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen[check] = stageRecord{fs, err}
}

// The observer hears every stage once, with its findings or why it could
// not judge (error, panic) and then the failure policy's findings.
func TestRunnerObserver(t *testing.T) {
	rec := &recorder{seen: map[string]stageRecord{}}
	r := &Runner{Observer: rec, Stages: []Stage{
		{Check: fakeCheck{name: "ok", fs: []Finding{{Symbol: "X", Action: Tag}}}},
		{Check: fakeCheck{name: "down", err: errors.New("scanner unreachable")}},
		{Check: fakeCheck{name: "bug", panic: true}},
	}}
	r.Run(context.Background(), msg(), PerRcpt{})
	if got := rec.seen["ok"]; got.err != nil || len(got.fs) != 1 || got.fs[0].Check != "ok" {
		t.Fatalf("ok stage %+v", got)
	}
	if got := rec.seen["down"]; got.err == nil || got.err.Error() != "scanner unreachable" || got.fs[0].Symbol != "CHECK_FAILED" {
		t.Fatalf("down stage %+v", got)
	}
	if got := rec.seen["bug"]; got.err == nil || !strings.Contains(got.err.Error(), "panic") {
		t.Fatalf("panicking stage %+v", got)
	}
}

type panicReader struct{}

func (panicReader) Read([]byte) (int, error) { panic("parser bug") }
func (panicReader) Close() error             { return nil }

// A parse that panics is an error for every check that asks, not a panic
// for the first and a nil message for the others.
func TestParsedPanicIsAnErrorForEveryCaller(t *testing.T) {
	m := &Message{Open: func() (io.ReadCloser, error) { return panicReader{}, nil }}
	for i := range 2 {
		var (
			p   any
			msg *mailtext.Message
			err error
		)
		func() {
			defer func() { p = recover() }()
			msg, err = m.Parsed(context.Background())
		}()
		if p != nil || err == nil || !strings.Contains(err.Error(), "panic: parser bug") || msg != nil {
			t.Fatalf("call %d: panic %v, message %v, error %v", i+1, p, msg, err)
		}
	}
}
