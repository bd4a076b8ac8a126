package quarantine

import "time"

// Notice renders a plain-text notice mailgate sends itself (from
// MAILER-DAEMON, UTF-8, RFC 2047 subject, Auto-Submitted), the same way as
// the quarantine's own warnings; other stages queue it from the null
// sender.
func Notice(hostname string, to []string, subject, text string, date time.Time) []byte {
	return outMail{Hostname: hostname, To: to, Subject: subject, Date: date, Text: text}.bytes()
}
