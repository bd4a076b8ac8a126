package lists

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/policy"
)

const tenant = 7

// fakeSource is an in-memory Source counting its calls.
type fakeSource struct {
	mu       sync.Mutex
	entries  map[int64][]Entry
	version  map[int64]int64
	err      error
	versions int
	loads    int
}

func newSource(es ...Entry) *fakeSource {
	s := &fakeSource{entries: map[int64][]Entry{}, version: map[int64]int64{}}
	s.set(es...)
	return s
}

// set replaces the tenant's entries and bumps the version, as the store does.
func (s *fakeSource) set(es ...Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Entry
	for i, e := range es {
		if e.ID == 0 {
			e.ID = int64(i + 1)
		}
		if e.TenantID == 0 {
			e.TenantID = tenant
		}
		out = append(out, e)
	}
	s.entries[tenant] = out
	s.version[tenant]++
}

func (s *fakeSource) setErr(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

func (s *fakeSource) counts() (versions, loads int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.versions, s.loads
}

func (s *fakeSource) ListEntries(ctx context.Context, id int64) ([]Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loads++
	if s.err != nil {
		return nil, s.err
	}
	return append([]Entry(nil), s.entries[id]...), nil
}

func (s *fakeSource) ListsVersion(ctx context.Context, id int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.versions++
	if s.err != nil {
		return 0, s.err
	}
	return s.version[id], nil
}

var errStore = errors.New("store down")

func newCheck(src Source) (*Check, *clock.Fake) {
	clk := clock.NewFake(time.Date(2024, 7, 1, 9, 0, 0, 0, time.UTC))
	return New(src, Options{Clock: clk, Log: slog.New(slog.DiscardHandler)}), clk
}

// rcpt builds a recipient of domain example.jp unless addr says otherwise.
func rcpt(addr string, groups ...string) policy.Rcpt {
	return policy.Rcpt{Addr: addr, Domain: addr[strings.LastIndexByte(addr, '@')+1:], Groups: groups}
}

func message(mailFrom string, raw []byte, rcpts ...policy.Rcpt) *policy.Message {
	return &policy.Message{
		Env:  &policy.Envelope{TenantID: tenant, MailFrom: mailFrom, Rcpts: rcpts},
		Size: int64(len(raw)),
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil },
	}
}

// rawMsg builds a message from header lines and a short body, CRLF ended.
func rawMsg(headers ...string) []byte {
	return []byte(strings.Join(headers, "\r\n") + "\r\n\r\nHello.\r\n")
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func run(t testing.TB, c *Check, m *policy.Message, s policy.Settings) []policy.Finding {
	t.Helper()
	if s == nil {
		s = policy.MapSettings{}
	}
	fs, err := c.Check(context.Background(), m, s)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return fs
}

// outcome is what one recipient gets from the findings: "" for none, else
// "SYMBOL action".
func outcome(t testing.TB, fs []policy.Finding, addr string) string {
	t.Helper()
	got := ""
	for _, f := range fs {
		if !f.AppliesTo(addr) {
			continue
		}
		if f.Rcpts == nil {
			t.Errorf("finding %s has no recipient scope", f.Symbol)
		}
		if got != "" {
			t.Errorf("recipient %s has several findings: %s and %s", addr, got, f.Symbol)
		}
		if f.Overridable {
			t.Errorf("finding %s is overridable", f.Symbol)
		}
		if f.Check != "lists" {
			t.Errorf("finding %s has check %q", f.Symbol, f.Check)
		}
		got = f.Symbol + " " + f.Action.String()
	}
	return got
}
