package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/consoletest"
)

// Search terms typed into tracking and the quarantine, by the console or
// the API, are literal text: query syntax finds exactly the messages that
// contain it, nothing fails with 500, nothing matches everything, and a
// NUL byte is refused with a clear 400.
func TestSearchTermsAreLiteral(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	ctx := context.Background()
	tid := e.Tenant.ID
	subjects := []string{`Say "hi" * NEAR(x) OR y`, `50% off_sale`, `plain words`, `請求書 NEAR(見積)`, `other mail`}
	at := time.Now().Add(-time.Hour)
	for i, s := range subjects {
		id := fmt.Sprintf("lit%02d", i)
		m := store.Message{ID: id, TenantID: tid, Direction: store.Inbound, MailFrom: "s@sender.test", ReceivedAt: at.Add(time.Duration(i) * time.Second), Subject: s, Done: true}
		if _, err := e.Store.Enqueue(ctx, m, []store.Recipient{{Addr: consoletest.UserA, State: store.Quarantined}}, nil); err != nil {
			t.Fatal(err)
		}
		it := store.QuarantineItem{ID: "q" + id, TenantID: tid, Rcpt: consoletest.UserA, MessageID: id, BlobKey: "none", MailFrom: "s@sender.test",
			Subject: s, Created: m.ReceivedAt, Expires: m.ReceivedAt.Add(24 * time.Hour), State: store.QHeld}
		if err := e.Store.AddQuarantine(ctx, it, store.Event{MessageID: id, TenantID: tid, Kind: "quarantined", Rcpt: it.Rcpt}); err != nil {
			t.Fatal(err)
		}
	}
	want := func(term string) int {
		n := 0
		for _, s := range subjects {
			if strings.Contains(strings.ToLower(s), strings.ToLower(term)) {
				n++
			}
		}
		return n
	}
	c := e.NewClient(t)
	c.Login(consoletest.AdminA)
	terms := []string{`"`, `"hi`, `*`, `NEAR(`, `NEAR(x) OR`, `OR`, `"hi" * NEAR`, `50%`, `%`, `_`, `off_`, `NEAR(見積)`, `{subject}: x`,
		`^Say`, `-plain`, "\x01\x02\x03", "\xff\xfe", `\`, `'`}
	for _, term := range terms {
		n := want(term)
		var rows []store.TrackRow
		if st := e.API(t, e.Tokens["a-read"], "GET", "/messages?subject="+url.QueryEscape(term), nil, &rows); st != 200 || len(rows) != n {
			t.Errorf("API tracking subject %q: %d, %d rows, want 200 and %d", term, st, len(rows), n)
		}
		var q struct {
			Items []store.QuarantineItem `json:"items"`
			Total int                    `json:"total"`
		}
		if st := e.API(t, e.Tokens["a-read"], "GET", "/quarantine?q="+url.QueryEscape(term), nil, &q); st != 200 || q.Total != n || len(q.Items) != n {
			t.Errorf("API quarantine q %q: %d, %d items, want 200 and %d", term, st, q.Total, n)
		}
		if st, _ := c.Get("/tracking?subject=" + url.QueryEscape(term)); st != 200 {
			t.Errorf("console tracking %q: %d", term, st)
		}
		if st, _ := c.Get("/quarantine?q=" + url.QueryEscape(term)); st != 200 {
			t.Errorf("console quarantine %q: %d", term, st)
		}
	}
	// A NUL anywhere in a search field: 400 with the reason, never 500 and
	// never every message.
	for _, term := range []string{"\x00", "\x00\x00\x00", "say\x00", "a\x00b", "\x00%"} {
		for _, path := range []string{"/messages?subject=", "/messages?sender=", "/messages?rcpt=", "/messages?id=",
			"/quarantine?q=", "/quarantine?reason=", "/quarantine?rcpt=", "/quarantine?domain="} {
			st, _, body := e.RawAPI(t, "Bearer "+e.Tokens["a-read"], "GET", path+url.QueryEscape(term), nil)
			var out struct{ Error string }
			json.Unmarshal(body, &out)
			if st != http.StatusBadRequest || !strings.Contains(out.Error, "NUL") {
				t.Errorf("API %s%q: %d %s, want 400 naming NUL", path, term, st, body)
			}
		}
		for _, path := range []string{"/tracking?subject=", "/tracking?rcpt=", "/quarantine?q=", "/quarantine?reason="} {
			if st, body := c.Get(path + url.QueryEscape(term)); st != http.StatusBadRequest || !strings.Contains(body, "NUL") {
				t.Errorf("console %s%q: %d, want 400 naming NUL", path, term, st)
			}
		}
	}
	// Japanese too.
	c.Post("/account/lang", url.Values{"lang": {"ja"}})
	if st, body := c.Get("/quarantine?q=%00"); st != http.StatusBadRequest || !strings.Contains(body, "検索語に NUL 文字") {
		t.Errorf("Japanese console: %d", st)
	}
}
