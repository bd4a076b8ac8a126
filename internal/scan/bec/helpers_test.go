package bec

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/policy"
)

// fakeDir is an in-memory Directory counting its loads.
type fakeDir struct {
	mu      sync.Mutex
	people  map[int64][]Person
	domains map[int64][]string
	loads   int
	err     error
}

func (d *fakeDir) People(ctx context.Context, tenant int64) ([]Person, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.loads++
	if d.err != nil {
		return nil, d.err
	}
	return append([]Person(nil), d.people[tenant]...), nil
}

func (d *fakeDir) Domains(ctx context.Context, tenant int64) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return nil, d.err
	}
	return append([]string(nil), d.domains[tenant]...), nil
}

func (d *fakeDir) setErr(err error) {
	d.mu.Lock()
	d.err = err
	d.mu.Unlock()
}

func (d *fakeDir) loadCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.loads
}

// fakeHistory is an in-memory History.
type fakeHistory struct {
	mu      sync.Mutex
	seen    map[int64]map[string]bool
	records []string
	err     error
}

func newHistory() *fakeHistory { return &fakeHistory{seen: map[int64]map[string]bool{}} }

func (h *fakeHistory) SeenSender(ctx context.Context, tenant int64, sender string) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		return false, h.err
	}
	return h.seen[tenant][sender], nil
}

func (h *fakeHistory) RecordSender(ctx context.Context, tenant int64, sender string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen[tenant] == nil {
		h.seen[tenant] = map[string]bool{}
	}
	h.seen[tenant][sender] = true
	h.records = append(h.records, sender)
	return nil
}

const tenantID = 7

// exampleDir is the tenant used by most tests: Example Corp with two
// domains and three people.
func exampleDir() *fakeDir {
	return &fakeDir{
		people: map[int64][]Person{tenantID: {
			{Name: "山田 太郎", Addr: "taro.yamada@example.co.jp"},
			{Name: "Suzuki, Hanako", Addr: "hsuzuki@example.co.jp"},
			{Name: "佐藤花子", Addr: "sato@example-group.com"},
		}},
		domains: map[int64][]string{tenantID: {"example.co.jp", "Example-Group.com"}},
	}
}

// msg builds a policy.Message from header lines and a body.
func msg(mailFrom string, headers ...string) *policy.Message {
	raw := strings.Join(headers, "\r\n") + "\r\nSubject: invoice\r\nMessage-ID: <1@x>\r\n\r\nPlease pay today.\r\n"
	return rawMsg(mailFrom, []byte(raw))
}

func rawMsg(mailFrom string, raw []byte) *policy.Message {
	return &policy.Message{
		Env: &policy.Envelope{TenantID: tenantID, MailFrom: mailFrom,
			Rcpts: []policy.Rcpt{{Addr: "taro.yamada@example.co.jp", Domain: "example.co.jp"}}},
		Size: int64(len(raw)),
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil },
	}
}

func newChecker(t *testing.T, dir Directory, h History, clk *clock.Fake) *Checker {
	t.Helper()
	cfg := Config{Directory: dir, CacheTTL: time.Minute}
	if h != nil {
		cfg.History = h
	}
	if clk != nil {
		cfg.Now = clk.Now
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func symbols(fs []policy.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Symbol)
	}
	return out
}

func has(fs []policy.Finding, sym string) bool {
	for _, f := range fs {
		if f.Symbol == sym {
			return true
		}
	}
	return false
}

var errDown = errors.New("store down")
