package spam

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/mailgate/mailgate/internal/policy"
)

// Scoring combines every check's evidence into one spam percentage once all
// checks have run (checks run concurrently and cannot see each other).
//
// The classifier gives a probability p; its log-odds are the base. The
// spam check's own rules add their points as log-odds directly (Finding
// Score / 10), and the other checks' scores (SPF fail +30, DMARC fail +40,
// impersonation, malformed structure...) add Score / otherWeight. The
// percentage is the logistic of the sum, so an untrained model (p = 0.5)
// leaves the rules to decide and a confident model needs strong rules to be
// overturned.
const otherWeight = 16.0

// Name is the spam check's name.
const Name = "spam"

// Settings read per recipient by Post (defaults in brackets):
//
//	spam.tag_at         percentage at which the Subject is tagged [90]
//	spam.quarantine_at  percentage at which the copy is quarantined [off]
//	spam.reject_at      percentage at which the recipient refuses [off]
//	spam.tag            the tag ["[SPAM!!]"; the seed also uses "[MEIWAKU!!]"]
//
// A band set to "off" or above 100 is disabled; "100" means 100.00% only,
// as the seed's "100%" threshold.
const (
	// DefaultTagAt is spam.tag_at's default (see docs/spam.md for the
	// false-positive rate behind it).
	DefaultTagAt = 90.0
	defaultTag   = "[SPAM!!]"
)

// Post is the inbound pipeline's spam stage: it turns the merged findings
// into the X-Mailgate-Spam-Score header and per-recipient actions.
type Post struct{}

// Combine returns the spam percentage (0–100) and the symbols that
// contributed, strongest first.
func Combine(findings []policy.Finding) (float64, []string) {
	logit := 0.0
	certain := false
	type contrib struct {
		sym string
		w   float64
	}
	var cs []contrib
	for _, f := range findings {
		if f.Score == 0 {
			continue
		}
		w := f.Score / otherWeight
		if f.Check == Name {
			w = f.Score / 10
			certain = certain || f.Score >= certainScore
		}
		logit += w
		cs = append(cs, contrib{f.Symbol, w})
	}
	logit = math.Max(-30, math.Min(30, logit))
	pct := 100 / (1 + math.Exp(-logit))
	if certain {
		pct = 100
	}
	sort.SliceStable(cs, func(i, j int) bool { return math.Abs(cs[i].w) > math.Abs(cs[j].w) })
	var syms []string
	for _, c := range cs {
		syms = append(syms, fmt.Sprintf("%s(%+.2f)", c.sym, c.w))
	}
	return pct, syms
}

// FormatPercent writes a score as the header shows it, two decimals
// ("98.00%"); values just below 100 never round up to "100.00%", which is
// reserved for certainty as in the seed.
func FormatPercent(p float64) string {
	v := math.Floor(p*100) / 100
	return strconv.FormatFloat(v, 'f', 2, 64) + "%"
}

func band(s policy.Settings, key string, def float64) float64 {
	v, ok := s.Get(key)
	if !ok {
		return def
	}
	if strings.EqualFold(v, "off") || v == "" {
		return math.Inf(1)
	}
	f, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
	if err != nil {
		return def
	}
	return f
}

// Findings computes the spam verdict findings for the message: headers for
// everyone, and one action finding per recipient whose band is reached.
func (Post) Findings(ctx context.Context, m *policy.Message, findings []policy.Finding, s policy.RcptSettings) []policy.Finding {
	pct, syms := Combine(findings)
	shown := FormatPercent(pct)
	if len(syms) > 12 {
		syms = syms[:12]
	}
	verdict := "no"
	if pct >= band(s, "spam.tag_at", DefaultTagAt) {
		verdict = "yes"
	}
	out := []policy.Finding{{Check: Name, Symbol: "SPAM_SCORE", Action: policy.Header, Reason: "spam score " + shown,
		Headers: []policy.HeaderField{
			{Name: "X-Mailgate-Spam-Score", Value: shown},
			{Name: "X-Mailgate-Spam", Value: verdict},
		}}}
	if len(syms) > 0 {
		out[0].Headers = append(out[0].Headers, policy.HeaderField{Name: "X-Mailgate-Spam-Symbols", Value: strings.Join(syms, " ")})
	}
	if m == nil || m.Env == nil {
		return out
	}
	for _, r := range m.Env.Rcpts {
		rs := s.ForRcpt(r.Addr)
		var a policy.Action
		switch {
		case pct >= band(rs, "spam.reject_at", math.Inf(1)):
			a = policy.Reject
		case pct >= band(rs, "spam.quarantine_at", math.Inf(1)):
			a = policy.Quarantine
		case pct >= band(rs, "spam.tag_at", DefaultTagAt):
			a = policy.Tag
		default:
			continue
		}
		tag, ok := rs.Get("spam.tag")
		if !ok || tag == "" {
			tag = defaultTag
		}
		out = append(out, policy.Finding{Check: Name, Symbol: "SPAM", Action: a, Rcpts: []string{r.Addr}, Overridable: true,
			TagText: tag, Reason: "spam score " + shown, Public: "Message rejected as spam", Code: 550, Enhanced: "5.7.1"})
	}
	return out
}
