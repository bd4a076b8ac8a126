package inbound

import (
	"context"
	"fmt"
	"mime"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/store"
)

// VirusNotifier sends the warning mails of the virus gateway (ウイルス検知通知): to the tenant's administrator (setting
// notify.admin, an address) and, when av.notify_recipient is "true", to
// each recipient whose copy was changed or dropped. Notices come from the
// null sender so they can never loop or bounce.
type VirusNotifier struct {
	Submit   func(ctx context.Context, m store.Message, rcpts []string, body []byte, why string) (string, error)
	Hostname string
	Now      func() time.Time
}

// Notify is an inbound.Pipeline AfterVerdict hook.
func (n *VirusNotifier) Notify(ctx context.Context, m store.Message, env *policy.Envelope, settings policy.RcptSettings, findings []policy.Finding, verdicts []policy.Verdict) {
	var virus *policy.Finding
	for i := range findings {
		if findings[i].Check == "av" && strings.HasPrefix(findings[i].Symbol, "VIRUS") {
			virus = &findings[i]
			break
		}
	}
	if virus == nil {
		return
	}
	var affected []string
	for _, v := range verdicts {
		affected = append(affected, fmt.Sprintf("%s (%s)", v.Rcpt, v.Action))
	}
	sent := map[string]bool{}
	for _, v := range verdicts {
		s := settings.ForRcpt(v.Rcpt)
		if admin, ok := s.Get("notify.admin"); ok && admin != "" && !sent[admin] {
			sent[admin] = true
			n.send(ctx, m, admin, virus, affected)
		}
		if r, _ := s.Get("av.notify_recipient"); r == "true" && !sent[v.Rcpt] {
			sent[v.Rcpt] = true
			n.send(ctx, m, v.Rcpt, virus, []string{fmt.Sprintf("%s (%s)", v.Rcpt, v.Action)})
		}
	}
}

func (n *VirusNotifier) send(ctx context.Context, m store.Message, to string, f *policy.Finding, affected []string) {
	subj := "[mailgate] ウイルスを検出しました / Virus detected"
	var b strings.Builder
	fmt.Fprintf(&b, "From: mailgate <MAILER-DAEMON@%s>\r\n", n.Hostname)
	fmt.Fprintf(&b, "To: <%s>\r\n", to)
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.BEncoding.Encode("utf-8", subj))
	fmt.Fprintf(&b, "Date: %s\r\n", n.Now().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <virus-%s@%s>\r\n", m.ID, n.Hostname)
	b.WriteString("Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	fmt.Fprintf(&b, "mailgate がウイルスを検出しました。\r\nmailgate detected a virus.\r\n\r\n")
	fmt.Fprintf(&b, "Queue ID / 受付番号: %s\r\n", m.ID)
	fmt.Fprintf(&b, "Sender / 差出人:     <%s>\r\n", m.MailFrom)
	fmt.Fprintf(&b, "Subject / 件名:      %s\r\n", oneLine(m.Subject))
	fmt.Fprintf(&b, "Finding / 検出:      %s\r\n", oneLine(f.Reason))
	fmt.Fprintf(&b, "Recipients / 宛先:   %s\r\n", strings.Join(affected, ", "))
	n.Submit(ctx, store.Message{TenantID: m.TenantID, Direction: store.DSN, MailFrom: "", Subject: subj}, []string{to},
		[]byte(b.String()), "virus notice about "+m.ID)
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
