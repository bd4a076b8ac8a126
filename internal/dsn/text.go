package dsn

import (
	"strings"
	"time"
)

// humanText renders the first, human-readable part (RFC 6522 3) as UTF-8
// with LF line endings; the caller encodes it. Japanese comes first and is
// followed by the English text so that every reader finds a language they
// read.
func humanText(r *Report, rcpts []Recipient, orig *originalPart) string {
	var b strings.Builder
	if r.Language == "ja" {
		writeJapanese(&b, r, rcpts, orig)
		b.WriteString("\n----------------------------------------------------------------------\n\n")
	}
	writeEnglish(&b, r, rcpts, orig)
	return b.String()
}

// latestRetry is the latest WillRetryUntil among the recipients, zero if none.
func latestRetry(rcpts []Recipient) time.Time {
	var t time.Time
	for _, rc := range rcpts {
		if rc.WillRetryUntil.After(t) {
			t = rc.WillRetryUntil
		}
	}
	return t
}

func enDate(t time.Time) string { return t.Format(time.RFC1123Z) }
func jaDate(t time.Time) string { return t.Format("2006年1月2日 15:04:05 (MST -0700)") }

func writeEnglish(b *strings.Builder, r *Report, rcpts []Recipient, orig *originalPart) {
	b.WriteString("This is the mail delivery system at " + r.ReportingMTA + ".\n\n")
	switch r.Kind {
	case Failure:
		b.WriteString("Your message could not be delivered to the following recipients.\n" +
			"Delivery has been abandoned; the reasons are given below.\n")
	case Delay:
		b.WriteString("Your message has not yet been delivered to the following recipients.\n")
		if t := latestRetry(rcpts); !t.IsZero() {
			b.WriteString("Delivery will be retried until " + enDate(t) + ".\n")
		} else {
			b.WriteString("Delivery will be retried.\n")
		}
		b.WriteString("This is only a warning: you do not need to send the message again.\n")
	case Delivered:
		b.WriteString("Your message was delivered to the following recipients.\n")
	case Relayed:
		b.WriteString("Your message was passed on to the following recipients' mail systems,\n" +
			"which may not report its further delivery.\n")
	}
	if orig != nil && orig.reduced {
		b.WriteString("\nThe original message is too large or cannot be attached unchanged;\n" +
			"only its header section is included.\n")
	}
	b.WriteString("\n")
	for _, rc := range rcpts {
		b.WriteString("  " + rc.FinalRecipient + "\n")
		b.WriteString("    Status: " + rc.Status + "\n")
		if rc.RemoteMTA != "" {
			b.WriteString("    Remote server: " + rc.RemoteMTA + "\n")
		}
		if rc.DiagnosticCode != "" {
			b.WriteString("    Reply: " + rc.DiagnosticCode + "\n")
		}
		if !rc.LastAttempt.IsZero() {
			b.WriteString("    Last attempt: " + enDate(rc.LastAttempt) + "\n")
		}
		if r.Kind == Delay && !rc.WillRetryUntil.IsZero() {
			b.WriteString("    Retrying until: " + enDate(rc.WillRetryUntil) + "\n")
		}
		b.WriteString("\n")
	}
}

func writeJapanese(b *strings.Builder, r *Report, rcpts []Recipient, orig *originalPart) {
	b.WriteString("このメールは " + r.ReportingMTA + " のメール配送システムから自動送信されています。\n\n")
	switch r.Kind {
	case Failure:
		b.WriteString("お送りいただいたメールは、以下の宛先に配送できませんでした。\n" +
			"配送は中止されました。理由は以下のとおりです。\n")
	case Delay:
		b.WriteString("お送りいただいたメールは、以下の宛先にまだ配送できていません。\n")
		if t := latestRetry(rcpts); !t.IsZero() {
			b.WriteString(jaDate(t) + " まで配送を再試行します。\n")
		} else {
			b.WriteString("配送を再試行します。\n")
		}
		b.WriteString("これはお知らせです。メールを再送していただく必要はありません。\n")
	case Delivered:
		b.WriteString("お送りいただいたメールは、以下の宛先に配送されました。\n")
	case Relayed:
		b.WriteString("お送りいただいたメールは、以下の宛先のメールシステムに転送されました。\n" +
			"転送先からは配送結果が通知されない場合があります。\n")
	}
	if orig != nil && orig.reduced {
		b.WriteString("\n元のメールはサイズが大きいか、そのまま添付できないため、ヘッダー部分のみを添付しています。\n")
	}
	b.WriteString("\n")
	for _, rc := range rcpts {
		b.WriteString("  " + rc.FinalRecipient + "\n")
		b.WriteString("    ステータス: " + rc.Status + "\n")
		if rc.RemoteMTA != "" {
			b.WriteString("    相手先サーバー: " + rc.RemoteMTA + "\n")
		}
		if rc.DiagnosticCode != "" {
			b.WriteString("    応答: " + rc.DiagnosticCode + "\n")
		}
		if !rc.LastAttempt.IsZero() {
			b.WriteString("    最終試行: " + jaDate(rc.LastAttempt) + "\n")
		}
		if r.Kind == Delay && !rc.WillRetryUntil.IsZero() {
			b.WriteString("    再試行期限: " + jaDate(rc.WillRetryUntil) + "\n")
		}
		b.WriteString("\n")
	}
}
