package lists

import (
	"context"
	"fmt"
	"strings"

	"github.com/mailgate/mailgate/internal/policy"
)

// maxFromAddrs bounds the From addresses looked at; a hostile header can
// list thousands.
const maxFromAddrs = 64

// messageTexts collects the normalised texts of m. The header is parsed
// only when withHeader is set (some entry looks at From or Subject).
func messageTexts(ctx context.Context, m *policy.Message, withHeader bool) (*texts, error) {
	t := &texts{}
	if from := strings.Trim(strings.TrimSpace(m.Env.MailFrom), "<>"); from != "" {
		t.vals[fEnvFrom] = []string{normText(fEnvFrom, from)}
	}
	t.allowOK[fEnvFrom] = true
	if !withHeader {
		return t, nil
	}
	p, err := m.Parsed(ctx)
	if err != nil {
		return nil, fmt.Errorf("lists: parse message: %w", err)
	}

	// From: the parsed first field, plus any further From fields, which a
	// forger adds to show one sender and be filtered as another.
	var addrs []string
	mailboxes := 0
	for _, a := range p.From {
		mailboxes++
		if a.Addr != "" {
			addrs = append(addrs, a.Addr)
		}
	}
	fromFields := p.HeaderValues("From")
	for i := 1; i < len(fromFields) && len(addrs) < maxFromAddrs; i++ {
		extra := extractAddrs(fromFields[i])
		mailboxes += len(extra)
		addrs = append(addrs, extra...)
	}
	if len(addrs) > maxFromAddrs {
		addrs = addrs[:maxFromAddrs]
	}
	single := mailboxes == 1 && len(fromFields) <= 1
	for _, a := range addrs {
		t.vals[fFromAddr] = append(t.vals[fFromAddr], normText(fFromAddr, a))
		if at := strings.LastIndexByte(a, '@'); at >= 0 && at < len(a)-1 {
			t.vals[fFromDomain] = append(t.vals[fFromDomain], normText(fFromDomain, a[at+1:]))
		}
	}
	t.allowOK[fFromAddr] = single
	t.allowOK[fFromDomain] = single

	subjects := p.HeaderValues("Subject")
	if s := normText(fSubject, p.Subject); s != "" {
		t.vals[fSubject] = append(t.vals[fSubject], s)
	}
	for i := 1; i < len(subjects) && i <= maxFromAddrs; i++ {
		if s := normText(fSubject, subjects[i]); s != "" {
			t.vals[fSubject] = append(t.vals[fSubject], s)
		}
	}
	t.allowOK[fSubject] = len(subjects) <= 1
	return t, nil
}

// extractAddrs returns the addr-specs of a decoded address-list field
// (RFC 5322 3.4), leniently: a mailbox is the text between commas outside
// quotes and angle brackets, its address the part in angle brackets or,
// without them, the text after a group's colon. Parts without '@' are
// dropped.
func extractAddrs(v string) []string {
	var out []string
	quoted, angle := false, false
	start := 0
	one := func(s string) {
		if i := strings.LastIndexByte(s, '<'); i >= 0 {
			s = s[i+1:]
			if j := strings.IndexByte(s, '>'); j >= 0 {
				s = s[:j]
			}
		} else if i := strings.LastIndexByte(s, ':'); i >= 0 {
			s = s[i+1:]
		}
		s = strings.Trim(strings.TrimSpace(s), ";")
		if strings.Contains(s, "@") && len(out) < maxFromAddrs {
			out = append(out, s)
		}
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == '<' && !quoted:
			angle = true
		case c == '>' && !quoted:
			angle = false
		case (c == ',' || c == ';') && !quoted && !angle:
			one(v[start:i])
			start = i + 1
		}
	}
	one(v[start:])
	return out
}
