package outbound_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/outbound"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// TestBadInputFailsClosed: attachments a block rule cannot read (past
// the thousandth, a ZIP bomb; larger than the reading bound in
// TestEvaluateLargeAttachment) hold the message for approval instead of letting it go;
// what can be read is judged as usual; nothing is delivered that the
// rule would have stopped.
func TestBadInputFailsClosed(t *testing.T) {
	n := mgtest.Start(t, mgtest.Options{NoChecks: true})
	addRule(t, n, "customer list", "", "", outbound.Spec{Action: outbound.ActBlock, Reason: "customer list",
		Conditions: []outbound.Condition{{Field: outbound.FieldAttachText, Op: outbound.OpContains, Values: []string{"顧客リスト"}}}})
	set(t, n, store.ScopeTenant, "", outbound.KeyApprovers, "boss@example.test")
	from, to := "alice@example.test", "x@partner.test"
	small := func(i int) attachment { return attachment{fmt.Sprintf("f%d.txt", i), "text/plain", []byte("ok")} }
	var many []attachment
	for i := 0; i < 1000; i++ {
		many = append(many, small(i))
	}
	bomb := zipOf(t, map[string][]byte{"zeros.txt": make([]byte, 16<<20)}, false)
	for _, c := range []struct {
		subject string
		atts    []attachment
		want    string // "held", "blocked" or "sent"
	}{
		{"thousand clean", many, "sent"},
		{"thousand and one", append(append([]attachment(nil), many...), attachment{"last.txt", "text/plain", []byte("顧客リスト")}), "held"},
		{"zip bomb", []attachment{{"zeros.zip", "application/zip", bomb}}, "held"},
		{"readable", []attachment{{"list.txt", "text/plain", []byte("顧客リスト")}}, "blocked"},
	} {
		err := sendOut(t, n, from, []string{to}, withAttachments(from, to, c.subject, "see attached", c.atts...))
		got := "sent"
		switch {
		case smtpCode(err) == 550:
			got = "blocked"
		case err != nil:
			t.Fatalf("%s: %v", c.subject, err)
		default:
			hs, _ := n.Store.OutboundHolds(t.Context(), store.HoldFilter{TenantID: n.Tenant.ID})
			for _, h := range hs {
				if h.Subject == c.subject {
					got = "held"
					if !strings.Contains(h.Reason, "could not be checked") {
						t.Errorf("%s: hold reason %q", c.subject, h.Reason)
					}
				}
			}
		}
		if got != c.want {
			t.Errorf("%s: %s, want %s", c.subject, got, c.want)
		}
	}
	waitFor(t, "the clean message delivered", func() bool { return len(received(n.Internet, to)) == 1 })
	queueEmpty(t, n)
	if got := received(n.Internet, to); len(got) != 1 || !strings.Contains(string(got[0].Data), "Subject: thousand clean") {
		t.Fatalf("delivered %d", len(got))
	}
}
