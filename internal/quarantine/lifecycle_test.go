package quarantine

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	_ "github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/mail"

	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/store"
)

const spamMsg = "From: =?UTF-8?B?5bGx55Sw5aSq6YOO?= <taro@sender.test>\r\nSubject: hello\r\n\r\nbody\r\n"

func TestRetentionDaysClamped(t *testing.T) {
	for v, want := range map[string]int{"": 7, "x": 7, "0": 1, "-3": 1, "1": 1, "3": 3, " 14 ": 14, "15": 14, "999999999999": 14} {
		s := policy.MapSettings{}
		if v != "" {
			s[KeyRetentionDays] = v
		}
		if got := RetentionDays(s); got != want {
			t.Errorf("retention_days %q: got %d, want %d", v, got, want)
		}
	}
}

// Purge deletes exactly the copies whose retention has passed on the
// injected clock: state deleted, a quarantine-expired event, blob removed.
func TestPurgeFollowsTheClock(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	short := f.hold(t, 1, "alice@example.test", spamMsg, 0, 1)
	long := f.hold(t, 2, "bob@example.test", spamMsg, 0, 3)
	released := f.hold(t, 1, "alice@example.test", spamMsg, 0, 1)
	f.st.items[released.ID].State = store.QReleased

	f.clk.Advance(24*time.Hour - time.Second)
	if n, err := f.m.Purge(ctx); err != nil || n != 0 {
		t.Fatalf("before expiry: purged %d, %v", n, err)
	}
	f.clk.Advance(time.Second) // exactly at Expires
	n, err := f.m.Purge(ctx)
	if err != nil || n != 1 {
		t.Fatalf("at expiry: purged %d, %v; want 1", n, err)
	}
	if got := f.st.items[short.ID].State; got != store.QDeleted {
		t.Fatalf("expired copy is %s", got)
	}
	if got := f.st.items[released.ID].State; got != store.QReleased {
		t.Fatalf("released copy changed to %s", got)
	}
	if got := f.st.items[long.ID].State; got != store.QHeld {
		t.Fatalf("unexpired copy is %s", got)
	}
	if _, err := f.blobs.Open(context.Background(), short.BlobKey); err == nil {
		t.Fatal("blob of the expired copy is still there")
	}
	if _, err := f.blobs.Open(context.Background(), long.BlobKey); err != nil {
		t.Fatalf("blob of the kept copy: %v", err)
	}
	if len(f.st.events) != 1 || f.st.events[0].Kind != "quarantine-expired" || f.st.events[0].MessageID != short.MessageID || f.st.events[0].Rcpt != short.Rcpt {
		t.Fatalf("events: %+v", f.st.events)
	}
	f.clk.Advance(2 * 24 * time.Hour)
	if n, err := f.m.Purge(ctx); err != nil || n != 1 {
		t.Fatalf("later: purged %d, %v; want 1", n, err)
	}
	if n, err := f.m.Purge(ctx); err != nil || n != 0 {
		t.Fatalf("again: purged %d, %v; want 0", n, err)
	}
}

// More expired copies than one batch are all purged in one call.
func TestPurgeBatches(t *testing.T) {
	f := newFixture(t)
	for range 1203 {
		f.hold(t, 1, "alice@example.test", "x\r\n", 0, 1)
	}
	f.clk.Advance(48 * time.Hour)
	n, err := f.m.Purge(context.Background())
	if err != nil || n != 1203 {
		t.Fatalf("purged %d, %v", n, err)
	}
}

func TestQuotaSetting(t *testing.T) {
	if got := QuotaBytes(policy.MapSettings{}); got != 5<<20 {
		t.Fatalf("default %d", got)
	}
	if got := QuotaBytes(policy.MapSettings{KeyQuotaMB: "20"}); got != 20<<20 {
		t.Fatalf("20 MB: %d", got)
	}
	for _, bad := range []string{"0", "-1", "lots", "1.5"} {
		if got := QuotaBytes(policy.MapSettings{KeyQuotaMB: bad}); got != DefaultQuotaBytes {
			t.Fatalf("%q: %d", bad, got)
		}
	}
}

func readMail(t *testing.T, raw string) (*mail.Reader, string) {
	t.Helper()
	if strings.Contains(strings.ReplaceAll(raw, "\r\n", ""), "\n") {
		t.Fatal("bare LF in generated mail")
	}
	mr, err := mail.CreateReader(strings.NewReader(raw))
	if err != nil {
		t.Fatalf("generated mail does not parse: %v\n%s", err, raw)
	}
	subj, err := mr.Header.Subject()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mr.Header.Date(); err != nil {
		t.Fatalf("Date: %v", err)
	}
	if id, err := mr.Header.MessageID(); err != nil || id == "" {
		t.Fatalf("Message-ID %q: %v", id, err)
	}
	return mr, subj
}

func textOf(t *testing.T, mr *mail.Reader) (text, html string) {
	t.Helper()
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(p.Body)
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := p.Header.(*mail.InlineHeader).ContentType()
		switch ct {
		case "text/plain":
			text = string(b)
		case "text/html":
			html = string(b)
		default:
			t.Fatalf("unexpected part %s", ct)
		}
	}
}

// The 80% warning goes out once at the crossing, not for every further
// copy, again after a day, and again at a new crossing after usage fell.
func TestQuotaWarning(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	s := policy.MapSettings{KeyQuotaMB: "1", KeyLang: "en"}
	rcpt := "alice@example.test"
	store1 := func(size int64) store.QuarantineItem {
		it := f.hold(t, 1, rcpt, "x", size, 7)
		f.m.Stored(ctx, it, s)
		return it
	}
	store1(500 << 10)
	if n := len(f.q.all()); n != 0 {
		t.Fatalf("warned at 49%%: %d mails", n)
	}
	a := store1(350 << 10) // 83%
	msgs := f.q.all()
	if len(msgs) != 1 {
		t.Fatalf("%d warnings at the crossing, want 1", len(msgs))
	}
	w := msgs[0]
	if len(w.rcpts) != 1 || w.rcpts[0] != rcpt || w.m.MailFrom != "" || w.m.Direction != store.DSN {
		t.Fatalf("warning envelope: %+v to %v", w.m, w.rcpts)
	}
	mr, subj := readMail(t, w.body)
	if !strings.Contains(subj, "Quarantine capacity warning") {
		t.Fatalf("subject %q", subj)
	}
	text, _ := textOf(t, mr)
	if !strings.Contains(text, "83% full") || !strings.Contains(text, rcpt) {
		t.Fatalf("text: %s", text)
	}
	store1(10 << 10)
	f.clk.Advance(23 * time.Hour)
	store1(10 << 10)
	if n := len(f.q.all()); n != 1 {
		t.Fatalf("%d mails while still above within a day, want 1", n)
	}
	f.clk.Advance(2 * time.Hour)
	store1(10 << 10)
	if n := len(f.q.all()); n != 2 {
		t.Fatalf("%d mails after a day above, want 2", n)
	}
	// Usage falls below 80% (a copy released), then rises again.
	f.st.items[a.ID].State = store.QReleased
	f.clk.Advance(2 * time.Hour)
	store1(1 << 10) // still below
	if n := len(f.q.all()); n != 2 {
		t.Fatalf("%d mails below 80%%", n)
	}
	store1(300 << 10)
	if n := len(f.q.all()); n != 3 {
		t.Fatalf("%d mails after a new crossing, want 3", n)
	}
}

// A warning that cannot be queued is retried with the next copy.
func TestQuotaWarningRetriedAfterSubmitFailure(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	s := policy.MapSettings{KeyQuotaMB: "1"}
	f.q.fail = errors.New("spool full")
	it := f.hold(t, 1, "alice@example.test", "x", 900<<10, 7)
	f.m.Stored(ctx, it, s)
	f.q.fail = nil
	it = f.hold(t, 1, "alice@example.test", "x", 1, 7)
	f.m.Stored(ctx, it, s)
	msgs := f.q.all()
	if len(msgs) != 1 {
		t.Fatalf("%d warnings", len(msgs))
	}
	// Default language: both, Japanese first.
	mr, subj := readMail(t, msgs[0].body)
	if !strings.Contains(subj, "隔離ボックスの容量警告") || !strings.Contains(subj, "Quarantine capacity warning") {
		t.Fatalf("subject %q", subj)
	}
	text, _ := textOf(t, mr)
	if ja, en := strings.Index(text, "隔離ボックスの使用量"), strings.Index(text, "The quarantine of"); ja < 0 || en < ja {
		t.Fatalf("bilingual text: %s", text)
	}
}
