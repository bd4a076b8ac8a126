package mailbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// warnIfFull sends the mailbox's user one notice when a delivery brought
// the mailbox to WarnPercent of its quota: at the crossing, and again at a
// later crossing (after usage fell below) but not within an hour of the
// last one. The last notice time is a store mark shared by every node, so
// one node sends it. Failures are logged: the message is stored already.
func (s *Service) warnIfFull(ctx context.Context, mb store.Mailbox, a store.MailAdded) {
	if s.Queue == nil || a.QuotaBytes <= 0 || a.UsedBytes*100 < a.QuotaBytes*WarnPercent {
		return
	}
	crossed := (a.UsedBytes-a.Message.Size)*100 < a.QuotaBytes*WarnPercent
	key := "mailbox-quota-warn:" + mb.Address
	last, err := s.Store.Mark(ctx, mb.TenantID, key)
	if err != nil {
		s.log().Warn("mailbox quota notice", "address", mb.Address, "err", err)
		return
	}
	now := s.now()
	if !last.IsZero() && !(crossed && now.Sub(last) >= notifyFlapGuard) {
		return
	}
	if won, err := s.Store.ClaimMark(ctx, mb.TenantID, key, last, now); err != nil || !won {
		return
	}
	body := quotaNotice(s.Hostname, mb.Address, a.UsedBytes, a.QuotaBytes, now)
	if _, err := s.Queue.Submit(ctx, store.Message{TenantID: mb.TenantID, Direction: store.DSN, Subject: "mailbox quota notice"},
		[]string{mb.Address}, bytes.NewReader(body), "mailbox quota notice for "+mb.Address); err != nil {
		s.Store.ClaimMark(ctx, mb.TenantID, key, now, last) // the next delivery tries again
		s.log().Warn("mailbox quota notice", "address", mb.Address, "err", err)
		return
	}
	s.log().Info("mailbox quota notice sent", "address", mb.Address, "used", a.UsedBytes, "quota", a.QuotaBytes)
}

// quotaNotice writes the notice, Japanese then English, from the null
// sender's point of view (it is queued with MAIL FROM:<>, so it never
// bounces).
func quotaNotice(host, rcpt string, used, quota int64, now time.Time) []byte {
	pct := float64(used) * 100 / float64(quota)
	mb := func(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/(1<<20)) }
	text := fmt.Sprintf("%s のメールボックスの使用量が上限の %.0f%% になりました。\n"+
		"使用量: %s / 上限 %s\n\n"+
		"上限を超えると新しいメールは受信されず、送信元のサーバーで再送待ちになります。\n"+
		"不要なメールを削除し、ごみ箱を空にしてください。\n\n----\n\n"+
		"The mailbox of %s is %.0f%% full.\n"+
		"Usage: %s of %s\n\n"+
		"When it is full, new mail is not accepted and waits on the sending server.\n"+
		"Please delete mail you do not need and empty the trash.\n",
		rcpt, pct, mb(used), mb(quota), rcpt, pct, mb(used), mb(quota))
	var id [12]byte
	rand.Read(id[:])
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: mailgate <postmaster@%s>\r\n", host)
	fmt.Fprintf(&b, "To: <%s>\r\n", rcpt)
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.BEncoding.Encode("utf-8", "[mailgate] メールボックスの容量警告 / Mailbox quota warning"))
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s@%s>\r\n", hex.EncodeToString(id[:]), host)
	b.WriteString("Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	qp := quotedprintable.NewWriter(&b)
	qp.Write([]byte(strings.ReplaceAll(text, "\n", "\r\n")))
	qp.Close()
	return b.Bytes()
}
