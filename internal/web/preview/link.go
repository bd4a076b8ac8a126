package preview

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"net/url"
	"strings"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
	"golang.org/x/text/unicode/norm"
)

// LinkInfo describes a link of a message for the page that shows it before
// the reader follows it.
type LinkInfo struct {
	// Target is the link as the preview shows it: an absolute http, https
	// or mailto URL.
	Target string
	Scheme string // "http", "https" or "mailto"
	// Host is the host the link leads to (for mailto, the first address's
	// domain) in its ASCII form, with punycode for international names.
	Host string
	// HostUnicode is the Unicode form of Host when it differs (an
	// internationalised domain name, whose letters may imitate another).
	HostUnicode string
	// Text is the visible text of the link, cleaned.
	Text string
	// TextHost is the host the text shows, in ASCII form, "" when it
	// shows none.
	TextHost string
	// Mismatch is set when the text shows a host of another registered
	// domain than Host: the classic phishing link.
	Mismatch bool
}

// ErrNoLink is returned by InspectLink for a target that is no link of the
// message.
var ErrNoLink = errors.New("preview: no such link in the message")

// InspectLink reads the raw message from r, as Render does with opt, and
// describes its link to target. It fails with ErrNoLink when the message
// shows no link to target, so that the link page only ever names where
// the message itself leads; and with a read error when reading r fails or
// ctx is done.
func InspectLink(ctx context.Context, r io.Reader, target string, opt Options) (LinkInfo, error) {
	v, err := Render(ctx, r, opt)
	if err != nil {
		return LinkInfo{}, err
	}
	for _, l := range v.Links {
		if l.Target == target {
			return describeLink(l)
		}
	}
	return LinkInfo{}, ErrNoLink
}

func describeLink(l Link) (LinkInfo, error) {
	u, err := url.Parse(l.Target)
	if err != nil {
		return LinkInfo{}, fmt.Errorf("preview: link %q: %w", l.Target, err)
	}
	info := LinkInfo{Target: l.Target, Scheme: strings.ToLower(u.Scheme), Text: l.Text}
	host := u.Hostname()
	if info.Scheme == "mailto" {
		host = ""
		if as, err := mail.ParseAddressList(u.Opaque); err == nil && len(as) > 0 {
			_, host, _ = strings.Cut(as[0].Address, "@")
		} else if _, d, ok := strings.Cut(u.Opaque, "@"); ok {
			host, _, _ = strings.Cut(d, "?")
		}
	}
	info.Host, info.HostUnicode = hostForms(host)
	info.TextHost = textHost(l.Text)
	if info.TextHost != "" && info.Host != "" {
		info.Mismatch = registered(info.TextHost) != registered(info.Host)
	}
	return info, nil
}

// hostForms returns the ASCII (punycode) form of host, lower case, and its
// Unicode form when that differs. A host IDNA rejects is returned as
// written, cleaned.
func hostForms(host string) (ascii, unicode string) {
	if h, err := url.PathUnescape(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(host, ".")
	a, err := idna.Lookup.ToASCII(host)
	if err != nil {
		a, _ = cleanText(strings.ToLower(host), 255)
		return a, ""
	}
	if u, err := idna.Display.ToUnicode(a); err == nil && u != a {
		unicode = u
	}
	return a, unicode
}

// textHost returns the first host, in ASCII form, that a link's text shows
// as a URL, a domain name or a mail address, "" when it shows none. Only
// names under a public suffix count, so "report.pdf" is no host.
func textHost(text string) string {
	for _, f := range strings.Fields(norm.NFKC.String(text)) {
		f = strings.Trim(f, `<>()[]{}"'.,;:!?「」『』（）`)
		if i := strings.Index(f, "://"); i >= 0 {
			f = f[i+3:]
		}
		if i := strings.LastIndexByte(f, '@'); i >= 0 {
			f = f[i+1:]
		}
		if i := strings.IndexAny(f, "/?#"); i >= 0 {
			f = f[:i]
		}
		if h, _, ok := strings.Cut(f, ":"); ok {
			f = h
		}
		if !strings.Contains(f, ".") {
			continue
		}
		a, err := idna.Lookup.ToASCII(f)
		if err != nil {
			continue
		}
		if _, icann := publicsuffix.PublicSuffix(a); icann && registered(a) != "" {
			return a
		}
	}
	return ""
}

// registered returns the registered domain of host (example.co.jp for
// www.example.co.jp), or host itself when it has none.
func registered(host string) string {
	d, err := publicsuffix.EffectiveTLDPlusOne(host)
	if err != nil {
		return host
	}
	return d
}
