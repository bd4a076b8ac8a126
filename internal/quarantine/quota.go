package quarantine

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/store"
)

// Warning repeats: once when usage crosses WarnPercent, again at the next
// crossing (after it fell below) but not within warnFlap of the last
// warning, and once a day while usage stays above.
const (
	warnRepeat = 24 * time.Hour
	warnFlap   = time.Hour
)

func (m *Manager) logger() *slog.Logger {
	if m.Log == nil {
		return slog.Default()
	}
	return m.Log
}

// Limit is the capacity of the quarantine whose settings are s, in bytes
// (quarantine.quota_mb). The accept transaction enforces it (store
// QuarantinedCopy.QuotaBytes), so concurrent sessions on any node cannot
// overrun it.
func (m *Manager) Limit(s policy.Settings) int64 { return QuotaBytes(s) }

// Stored is called after a copy was committed. When the recipient's usage
// is now at or above WarnPercent of the quota it sends one warning mail to
// the recipient through the queue (from the null sender, so it never
// bounces): at the crossing, and then at most once a day while usage stays
// high. The last warning time is a store Mark ("quota-warn:<rcpt>") shared
// by every node. Failures are logged, never returned: the copy is already
// safe and the warning is advice.
func (m *Manager) Stored(ctx context.Context, it store.QuarantineItem, s policy.Settings) {
	if _, err := m.warnIfHigh(ctx, it, s); err != nil {
		m.logger().Warn("quarantine capacity warning", "rcpt", it.Rcpt, "err", err)
	}
}

// warnIfHigh is Stored's work; it reports whether a warning was sent.
func (m *Manager) warnIfHigh(ctx context.Context, it store.QuarantineItem, s policy.Settings) (bool, error) {
	quota := QuotaBytes(s)
	used, count, err := m.Store.QuarantineUsage(ctx, it.TenantID, it.Rcpt)
	if err != nil {
		return false, err
	}
	if used*100 < quota*WarnPercent {
		return false, nil
	}
	key := "quota-warn:" + strings.ToLower(it.Rcpt)
	last, err := m.Store.Mark(ctx, it.TenantID, key)
	if err != nil {
		return false, err
	}
	now := m.Clock.Now()
	crossed := (used-it.Size)*100 < quota*WarnPercent
	due := last.IsZero() || now.Sub(last) >= warnRepeat || crossed && now.Sub(last) >= warnFlap
	if !due {
		return false, nil
	}
	// Claim first: of two nodes storing at once, only one sends.
	if won, err := m.Store.ClaimMark(ctx, it.TenantID, key, last, now); err != nil || !won {
		return false, err
	}
	body := quotaWarning(m.Hostname, it.Rcpt, noticeLang(s), used, count, quota, now)
	_, err = m.Queue.Submit(ctx, store.Message{TenantID: it.TenantID, Direction: store.DSN, Subject: "quarantine capacity warning"},
		[]string{it.Rcpt}, strings.NewReader(string(body)), "quarantine capacity warning for "+it.Rcpt)
	if err != nil {
		m.Store.ClaimMark(ctx, it.TenantID, key, now, last) // let the next copy try again
		return false, fmt.Errorf("submit warning: %w", err)
	}
	return true, nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/(1<<20)) }

// quotaWarning writes the warning mail in lang ("ja", "en", "" = both).
func quotaWarning(host, rcpt, lang string, used int64, count int, quota int64, now time.Time) []byte {
	pct := float64(used) * 100 / float64(quota)
	ja := fmt.Sprintf("%s の隔離ボックスの使用量が上限の %.0f%% になりました。\n"+
		"使用量: %s / 上限 %s (%d 通)\n\n"+
		"上限を超えると、隔離されるはずのメールは受信できず、送信元にエラーが返ります。\n"+
		"不要な隔離メールを削除するか、必要なメールを受信してください。\n", rcpt, pct, mib(used), mib(quota), count)
	en := fmt.Sprintf("The quarantine of %s is %.0f%% full.\n"+
		"Usage: %s of %s (%d messages)\n\n"+
		"When it is full, mail that would be quarantined cannot be accepted and its sender gets an error.\n"+
		"Please delete quarantined mail you do not need, or release the mail you want.\n", rcpt, pct, mib(used), mib(quota), count)
	subj := map[string]string{
		"ja": "[mailgate] 隔離ボックスの容量警告",
		"en": "[mailgate] Quarantine capacity warning",
		"":   "[mailgate] 隔離ボックスの容量警告 / Quarantine capacity warning",
	}[lang]
	text := map[string]string{"ja": ja, "en": en, "": ja + "\n----\n\n" + en}[lang]
	return outMail{Hostname: host, To: []string{rcpt}, Subject: subj, Date: now, Text: text}.bytes()
}
