package outbound

import (
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/quarantine"
	"github.com/mailgate/mailgate/internal/signedlink"
)

// The notices of outbound protection: plain text from MAILER-DAEMON (the
// quarantine's notice format), Japanese first and then English, or
// English only when outbound.lang is "en".

type noticeKind int

const (
	nBlocked noticeKind = iota
	nVirus
	nVirusAdmin
	nHeld
	nApprovalRequest
	nApproved
	nRejected
	nTimedOutRejected
	nTimedOutSent
	nDelayed
)

var noticeSubjects = map[noticeKind][2]string{
	nBlocked:          {"送信できませんでした", "Your message was not sent"},
	nVirus:            {"ウイルスが見つかったため送信できませんでした", "Your message was not sent: a virus was found"},
	nVirusAdmin:       {"送信メールからウイルスを検出しました", "A virus was found in outbound mail"},
	nHeld:             {"送信メールは承認待ちです", "Your message is waiting for approval"},
	nApprovalRequest:  {"送信メールの承認依頼", "Outbound message waiting for your approval"},
	nApproved:         {"送信メールが承認され、送信されました", "Your message was approved and sent"},
	nRejected:         {"送信メールは承認されませんでした", "Your message was not approved"},
	nTimedOutRejected: {"承認期限切れのため送信されませんでした", "Your message was not sent: nobody approved it in time"},
	nTimedOutSent:     {"承認期限切れのため送信されました", "Your message was sent after its approval time ran out"},
	nDelayed:          {"送信メールは遅延送信されます", "Your message will be sent after a delay"},
}

var noticeLeads = map[noticeKind][2]string{
	nBlocked:          {"送信ポリシーにより、次のメールは送信されませんでした。", "Your organisation's outbound policy stopped this message; it was not sent."},
	nVirus:            {"次のメールからウイルスが見つかったため、送信されませんでした。", "A virus was found in this message; it was not sent."},
	nVirusAdmin:       {"送信メールからウイルスを検出し、送信を止めました。", "mailgate stopped an outbound message because a virus was found in it."},
	nHeld:             {"次のメールは承認者の承認を待っています。承認されると送信されます。", "This message waits for an approver; it is sent once approved."},
	nApprovalRequest:  {"次のメールがあなたの承認を待っています。", "This outbound message waits for your approval."},
	nApproved:         {"次のメールは承認され、送信されました。", "This message was approved and sent."},
	nRejected:         {"次のメールは承認されず、送信されませんでした。", "This message was not approved; it was not sent."},
	nTimedOutRejected: {"承認期限までに承認されなかったため、次のメールは送信されませんでした。", "Nobody approved this message before its deadline; it was not sent."},
	nTimedOutSent:     {"承認期限を過ぎたため、設定により次のメールは送信されました。", "The approval time ran out; as configured, the message was sent."},
	nDelayed:          {"次のメールは遅延送信の設定により、下記の時刻に送信されます。取り消す場合はリンクを開いてください。", "This message will be sent at the time below. To stop it, open the cancel link."},
}

// noticeData is what a notice says about a message.
type noticeData struct {
	ID, Subject, Rcpts, Reason, Sender, Note string
	When                                     time.Time   // release time or deadline
	Links                                    [][3]string // label ja, label en, URL
	Console                                  string
}

func clean(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	return mailtext.TruncUTF8(s, max)
}

func renderNotice(hostname, lang string, zone *time.Location, to []string, k noticeKind, d noticeData, now time.Time) []byte {
	if zone == nil {
		zone = time.UTC
	}
	subj := noticeSubjects[k]
	lead := noticeLeads[k]
	var b strings.Builder
	section := func(i int) {
		labels := [][2]string{{"受付番号", "Queue ID"}, {"件名", "Subject"}, {"宛先", "Recipients"}, {"差出人", "Sender"}, {"理由", "Reason"},
			{"コメント", "Comment"}, {"時刻", "Time"}, {"管理画面", "Console"}}
		b.WriteString(lead[i] + "\r\n\r\n")
		line := func(l [2]string, v string) {
			if v != "" {
				b.WriteString(l[i] + ": " + v + "\r\n")
			}
		}
		line(labels[0], d.ID)
		line(labels[1], clean(d.Subject, 300))
		line(labels[2], clean(d.Rcpts, 1000))
		line(labels[3], clean(d.Sender, 320))
		line(labels[4], clean(d.Reason, 500))
		line(labels[5], clean(d.Note, 500))
		if !d.When.IsZero() {
			line(labels[6], d.When.In(zone).Format("2006-01-02 15:04 MST"))
		}
		for _, l := range d.Links {
			b.WriteString("\r\n" + l[i] + ":\r\n" + l[2] + "\r\n")
		}
		line(labels[7], d.Console)
		b.WriteString("\r\n")
	}
	subject := "[mailgate] " + subj[0] + " / " + subj[1]
	if lang == "en" {
		subject = "[mailgate] " + subj[1]
		section(1)
	} else {
		section(0)
		b.WriteString("----\r\n\r\n")
		section(1)
	}
	return quarantine.Notice(hostname, to, subject, b.String(), now)
}

// linkURL is the confirmation page of a signed link.
func linkURL(base string, key []byte, l signedlink.Link) string {
	return strings.TrimRight(base, "/") + "/o/link?t=" + url.QueryEscape(signedlink.Sign(key, l))
}

func noticeSubject(k noticeKind) string {
	s := noticeSubjects[k]
	return fmt.Sprintf("[mailgate] %s / %s", s[0], s[1])
}
