package spam

import (
	"net"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"
	"unicode"

	"golang.org/x/net/publicsuffix"

	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/policy"
)

// Rule is one heuristic that fired.
type Rule struct {
	Symbol string
	Points float64 // log-odds points: positive is spammy, negative hammy
	Reason string
	// Fixed rules (content rules: GTUBE, Japanese advertising and
	// phishing) always add their points. The others are header and
	// structure features the model learns to weigh ("rule:" tokens); their
	// points count only while no model is trained.
	Fixed bool
}

// Heuristics evaluates the rules of a decoded message. The points are
// log-odds added to the classifier's; each header or structure rule is
// small on its own so no single one decides.
func Heuristics(m *mailtext.Message, env *policy.Envelope, now time.Time) []Rule {
	var out []Rule
	add := func(sym string, pts float64, why string) {
		out = append(out, Rule{Symbol: sym, Points: pts, Reason: why})
	}
	fixed := func(sym string, pts float64, why string) {
		out = append(out, Rule{Symbol: sym, Points: pts, Reason: why, Fixed: true})
	}
	if hasGTUBE(m) {
		fixed("GTUBE", CertainPoints, "the GTUBE anti-spam test string")
	}
	japaneseRules(m, fixed)

	// Dates are judged against when the message arrived: the topmost
	// Received field's date (ours, when live), else now.
	if rcv := m.HeaderValues("Received"); len(rcv) > 0 {
		if i := strings.LastIndexByte(rcv[0], ';'); i >= 0 {
			if t, err := parseDate(rcv[0][i+1:]); err == nil {
				now = t
			}
		}
	}
	dates := m.HeaderValues("Date")
	switch {
	case len(dates) == 0:
		add("MISSING_DATE", 0.4, "no Date header")
	default:
		if d, err := parseDate(dates[0]); err != nil {
			add("INVALID_DATE", 0.8, "unparsable Date header")
		} else if d.After(now.Add(24 * time.Hour)) {
			add("DATE_IN_FUTURE", 1.0, "Date more than a day ahead")
		} else if d.Before(now.Add(-30 * 24 * time.Hour)) {
			add("DATE_IN_PAST", 0.6, "Date more than 30 days old")
		}
	}
	if len(m.HeaderValues("Message-ID")) == 0 {
		add("MISSING_MID", 0.5, "no Message-ID header")
	}
	if len(m.From) == 0 {
		add("MISSING_FROM", 1.2, "no usable From header")
	}
	if len(m.To) == 0 && len(m.Cc) == 0 {
		add("MISSING_TO", 0.3, "no To or Cc")
	}
	if env != nil && len(env.Rcpts) > 0 && (len(m.To) > 0 || len(m.Cc) > 0) {
		visible := map[string]bool{}
		for _, a := range append(append([]mailtext.Address{}, m.To...), m.Cc...) {
			visible[strings.ToLower(a.Addr)] = true
		}
		hidden := true
		for _, r := range env.Rcpts {
			if visible[strings.ToLower(r.Addr)] {
				hidden = false
			}
		}
		if hidden {
			add("BCC_ONLY", 0.3, "no envelope recipient in To or Cc")
		}
	}
	if len(m.From) == 1 {
		f := m.From[0]
		if strings.Contains(f.Name, "@") {
			if inName := emailIn(f.Name); inName != "" && !strings.EqualFold(inName, f.Addr) {
				add("FROM_NAME_OTHER_ADDR", 1.5, "display name shows another address")
			}
		}
		if len(m.ReplyTo) > 0 && !sameOrg(domainOf(m.ReplyTo[0].Addr), domainOf(f.Addr)) {
			add("REPLYTO_OTHER_ORG", 0.5, "Reply-To to another organisation")
		}
	}
	subj := m.Subject
	if letters, upper := countCase(subj); letters >= 12 && upper*10 >= letters*9 {
		add("SUBJECT_ALL_CAPS", 0.8, "Subject in capitals")
	}
	if strings.Count(subj, "!")+strings.Count(subj, "！") >= 3 {
		add("SUBJECT_EXCLAIM", 0.6, "many exclamation marks in Subject")
	}
	if strings.TrimSpace(subj) == "" {
		add("EMPTY_SUBJECT", 0.3, "no Subject")
	}

	var hasPlain, hasHTML bool
	var htmlText, images int
	for _, p := range m.Parts {
		switch {
		case p.ContentType == "text/plain" && !p.IsAttachment:
			if strings.TrimSpace(p.Text) != "" {
				hasPlain = true
			}
		case p.ContentType == "text/html" && !p.IsAttachment:
			hasHTML = true
			htmlText += len(strings.TrimSpace(p.Text))
		case strings.HasPrefix(p.ContentType, "image/"):
			images++
		}
		if p.IsAttachment && p.Filename != "" {
			if ext, double := riskyExtension(p.Filename); ext != "" {
				pts := 2.0
				if double {
					pts = 3.0
				}
				add("RISKY_ATTACHMENT", pts, "attachment type ."+ext)
			}
		}
	}
	if hasHTML && !hasPlain {
		add("HTML_ONLY", 0.5, "HTML without a text alternative")
		if htmlText < 200 && images > 0 {
			add("IMAGE_ONLY", 1.5, "little text next to images")
		}
	}

	links := m.HTMLLinks
	hosts := map[string]bool{}
	for _, l := range links {
		u, err := url.Parse(strings.TrimSpace(l.URL))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			continue
		}
		h := strings.ToLower(u.Hostname())
		hosts[h] = true
		if net.ParseIP(h) != nil {
			add("URL_IP_HOST", 1.5, "link to a bare IP address")
		}
		if shorteners[h] {
			add("URL_SHORTENER", 0.7, "link shortener "+h)
		}
		if shown := hostIn(l.Text); shown != "" && !sameOrg(shown, h) {
			add("LINK_TEXT_MISMATCH", 1.2, "link text shows "+shown+" but goes to "+h)
		}
	}
	switch n := len(links); {
	case n > 30:
		add("MANY_LINKS", 0.8, "more than 30 links")
	case n > 10:
		add("SOME_LINKS", 0.3, "more than 10 links")
	}
	if len(hosts) > 8 {
		add("MANY_LINK_HOSTS", 0.5, "links to many hosts")
	}
	return dedupRules(out)
}

var shorteners = map[string]bool{"bit.ly": true, "tinyurl.com": true, "t.co": true, "goo.gl": true, "ow.ly": true,
	"is.gd": true, "buff.ly": true, "rebrand.ly": true, "cutt.ly": true, "shorturl.at": true, "t.ly": true}

var riskyExts = map[string]bool{"exe": true, "scr": true, "pif": true, "com": true, "bat": true, "cmd": true, "js": true,
	"jse": true, "vbs": true, "vbe": true, "wsf": true, "hta": true, "jar": true, "lnk": true, "iso": true, "img": true,
	"msi": true, "ps1": true, "cpl": true, "reg": true, "chm": true, "one": true, "xll": true}

// riskyExtension returns the risky extension of a file name and whether it
// hides behind another one ("invoice.pdf.exe").
func riskyExtension(name string) (string, bool) {
	name = strings.ToLower(strings.TrimSpace(name))
	ext := strings.TrimPrefix(path.Ext(name), ".")
	if !riskyExts[ext] {
		return "", false
	}
	inner := strings.TrimPrefix(path.Ext(strings.TrimSuffix(name, "."+ext)), ".")
	return ext, inner != "" && len(inner) <= 4
}

var emailRe = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}`)

func emailIn(s string) string { return emailRe.FindString(s) }

var hostRe = regexp.MustCompile(`(?i)^(?:https?://)?((?:[a-z0-9-]+\.)+[a-z]{2,})(?:[/:?#].*)?$`)

// hostIn returns the host a link's visible text presents, if it looks like a URL.
func hostIn(text string) string {
	m := hostRe.FindStringSubmatch(strings.TrimSpace(text))
	if m == nil {
		return ""
	}
	return strings.ToLower(m[1])
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.ToLower(addr[i+1:])
	}
	return strings.ToLower(addr)
}

// sameOrg compares registrable domains (example.co.jp for www.example.co.jp).
func sameOrg(a, b string) bool {
	if a == "" || b == "" {
		return true
	}
	ra, err1 := publicsuffix.EffectiveTLDPlusOne(a)
	rb, err2 := publicsuffix.EffectiveTLDPlusOne(b)
	if err1 != nil || err2 != nil {
		return strings.EqualFold(a, b)
	}
	return strings.EqualFold(ra, rb)
}

func countCase(s string) (letters, upper int) {
	for _, r := range s {
		if unicode.IsLetter(r) && r < 0x250 {
			letters++
			if unicode.IsUpper(r) {
				upper++
			}
		}
	}
	return
}

var dateLayouts = []string{time.RFC1123Z, time.RFC1123, "Mon, 2 Jan 2006 15:04:05 -0700", "2 Jan 2006 15:04:05 -0700",
	"Mon, 2 Jan 2006 15:04:05 MST", "Mon, 2 Jan 2006 15:04:05 -0700 (MST)", "Mon, 02 Jan 2006 15:04:05 -0700 (MST)"}

func parseDate(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	var err error
	for _, l := range dateLayouts {
		var t time.Time
		if t, err = time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, err
}

// dedupRules keeps the first rule of each symbol.
func dedupRules(rs []Rule) []Rule {
	seen := map[string]bool{}
	out := rs[:0]
	for _, r := range rs {
		if !seen[r.Symbol] {
			seen[r.Symbol] = true
			out = append(out, r)
		}
	}
	return out
}
