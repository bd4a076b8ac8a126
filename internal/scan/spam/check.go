package spam

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/policy"
)

// Check is the "spam" body check: the statistical classifier (per-tenant
// model over the global one), the header and structure heuristics, and
// optional DNS block lists. It only reports evidence; Post turns all the
// checks' evidence into the score and the per-recipient action.
//
// Settings:
//
//	spam.dnsbl   comma-separated DNSBL zones for the sender IP (off by default;
//	             queries go only to these zones through mailgate's resolver)
//	spam.uribl   comma-separated URI block list zones for link domains (off)
type Check struct {
	Classifier *Classifier
	Resolver   Resolver // for DNSBL/URIBL; nil disables them
	Now        func() time.Time
	// MaxTokens bounds the features taken from one message.
	MaxTokens int
}

// Resolver is the DNS needed for block lists.
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// Name returns "spam".
func (c *Check) Name() string { return Name }

// certainScore is the finding score of a rule that decides alone (see
// CertainPoints); Combine turns it into 100 %.
const certainScore = CertainPoints * 10

// MaxLogit bounds the classifier's say in log-odds: Fisher combining
// produces extreme probabilities, and one model must not drown every other
// signal.
const MaxLogit = 8.0

// Evidence is what Score needs from one message, computed once.
type Evidence struct {
	Result Result
	Rules  []Rule
	// Tokens are the features the classifier judged (see Features).
	Tokens []string
}

// Findings turns evidence into findings (score points are log-odds × 10).
func (e Evidence) Findings() []policy.Finding {
	var out []policy.Finding
	if e.Result.Trained {
		l := e.Result.Points
		var top []string
		for i, t := range e.Result.Top {
			if i == 5 {
				break
			}
			top = append(top, fmt.Sprintf("%s=%.2f", t.Token, t.Prob))
		}
		// The symbol and the reason give the classifier's say as a
		// probability (its points through the logistic), not its raw
		// probability: that one is near 0 or 1 for most messages, and
		// BAYES_99 on a message the classifier moved by a hundredth of a
		// point would tell an administrator the opposite of what happened.
		say := 1 / (1 + math.Exp(-l))
		reason := fmt.Sprintf("classifier %.4f (%s)", say, strings.Join(top, " "))
		if e.Result.Coverage < 1 {
			reason += fmt.Sprintf("; reads %.0f%% of the text", 100*e.Result.Coverage)
		}
		if e.Result.Label != "" {
			reason = "this message was trained as " + e.Result.Label + "; " + reason
		}
		out = append(out, policy.Finding{Check: Name, Symbol: bayesSymbol(say), Score: l * 10, Overridable: true, Reason: reason})
	}
	for _, r := range e.Rules {
		f := policy.Finding{Check: Name, Symbol: r.Symbol, Overridable: true, Reason: r.Reason}
		if r.Fixed || !e.Result.Trained {
			// Without a trained model the rules' weights are all there is;
			// with one, header and structure rules are features the model
			// has learned to weigh, and only content rules add points.
			f.Score = r.Points * 10
		}
		if r.Points >= CertainPoints {
			f.Score = certainScore
		}
		out = append(out, f)
	}
	return out
}

// Features are what the classifier learns from and judges: the message's
// tokens plus one "rule:" token per heuristic that fired, so the model
// learns how much each rule means for this tenant's mail instead of
// trusting fixed weights. Training and classification must both use it.
func Features(msg *mailtext.Message, env *policy.Envelope, now time.Time, lim int) ([]string, []Rule) {
	if lim <= 0 {
		lim = DefaultMaxTokens
	}
	rules := Heuristics(msg, env, now)
	toks := Tokenize(msg, lim)
	for _, r := range rules {
		if !r.Fixed {
			// In order, so the features stay a sorted set (the classifier
			// then needs no map to drop duplicates).
			tok := "rule:" + strings.ToLower(r.Symbol)
			if i, found := slices.BinarySearch(toks, tok); !found {
				toks = slices.Insert(toks, i, tok)
			}
		}
	}
	return toks, rules
}

// MessageTime is when msg arrived as far as its header says: the date of
// its topmost Received field, else its Date, else fallback. Training uses
// it as "now", so the date rules give the same features for a message
// whenever it is trained (and untrained).
func MessageTime(msg *mailtext.Message, fallback time.Time) time.Time {
	if rcv := msg.HeaderValues("Received"); len(rcv) > 0 {
		if i := strings.LastIndexByte(rcv[0], ';'); i >= 0 {
			if t, err := parseDate(rcv[0][i+1:]); err == nil {
				return t
			}
		}
	}
	if d := msg.HeaderValues("Date"); len(d) > 0 {
		if t, err := parseDate(d[0]); err == nil {
			return t
		}
	}
	return fallback
}

// Fingerprint identifies a message for training, however it reached the
// trainer (delivered, quarantined, forwarded as an attachment): a hash of
// its Message-ID and its decoded text, or of its From, Date and Subject
// with the text when it has no Message-ID. Header fields added on the way
// (Received, the gateway's own) and transfer encodings do not change it.
func Fingerprint(msg *mailtext.Message) string {
	h := sha256.New()
	if mid := msg.HeaderValues("Message-ID"); len(mid) > 0 && strings.TrimSpace(mid[0]) != "" {
		h.Write([]byte("mid:" + strings.TrimSpace(mid[0])))
	} else {
		from := ""
		if len(msg.From) > 0 {
			from = strings.ToLower(msg.From[0].Addr)
		}
		date := ""
		if d := msg.HeaderValues("Date"); len(d) > 0 {
			date = strings.TrimSpace(d[0])
		}
		h.Write([]byte("from:" + from + "\ndate:" + date + "\nsubject:" + msg.Subject))
	}
	h.Write([]byte("\ntext:"))
	// The words of the text separated by single spaces (as
	// strings.Join(strings.Fields(text), " ")), written as they are found.
	text := msg.Text
	start, words := -1, 0
	flush := func(end int) {
		if start >= 0 {
			if words > 0 {
				h.Write([]byte{' '})
			}
			io.WriteString(h, text[start:end])
			words++
			start = -1
		}
	}
	for i := 0; i < len(text); {
		c := text[i]
		n, space := 1, false
		if c < utf8.RuneSelf {
			space = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
		} else {
			var r rune
			r, n = utf8.DecodeRuneInString(text[i:])
			space = unicode.IsSpace(r)
		}
		if space {
			flush(i)
		} else if start < 0 {
			start = i
		}
		i += n
	}
	flush(len(text))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func bayesSymbol(p float64) string {
	switch {
	case p >= 0.99:
		return "BAYES_99"
	case p >= 0.9:
		return "BAYES_90"
	case p >= 0.6:
		return "BAYES_60"
	case p > 0.4:
		return "BAYES_50"
	case p > 0.1:
		return "BAYES_20"
	case p > 0.01:
		return "BAYES_05"
	}
	return "BAYES_00"
}

// Check implements policy.BodyCheck.
func (c *Check) Check(ctx context.Context, m *policy.Message, s policy.Settings) ([]policy.Finding, error) {
	if m.Env.Outbound {
		return nil, nil
	}
	ev, err := c.Evaluate(ctx, m)
	if err != nil {
		return nil, err
	}
	out := ev.Findings()
	out = append(out, c.blockLists(ctx, m, s)...)
	return out, nil
}

// Evaluate classifies a message and runs the heuristics (also used by the
// CLI's "spam score").
func (c *Check) Evaluate(ctx context.Context, m *policy.Message) (Evidence, error) {
	msg, err := m.Parsed(ctx)
	if err != nil {
		return Evidence{}, fmt.Errorf("parse: %w", err)
	}
	return c.EvaluateParsed(ctx, msg, m.Env)
}

// EvaluateParsed is Evaluate for a message already parsed.
func (c *Check) EvaluateParsed(ctx context.Context, msg *mailtext.Message, env *policy.Envelope) (Evidence, error) {
	now := time.Now()
	if c.Now != nil {
		now = c.Now()
	}
	toks, rules := Features(msg, env, now, c.MaxTokens)
	ev := Evidence{Rules: rules, Tokens: toks}
	if c.Classifier != nil {
		tenant := GlobalModel
		if env != nil {
			tenant = env.TenantID
		}
		res, err := c.Classifier.ClassifyParsed(ctx, tenant, toks, msg)
		if err != nil {
			return ev, fmt.Errorf("classify: %w", err)
		}
		ev.Result = res
	}
	return ev, nil
}

func zones(s policy.Settings, key string) []string {
	v, _ := s.Get(key)
	var out []string
	for _, z := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }) {
		out = append(out, strings.Trim(strings.ToLower(z), "."))
	}
	return out
}

// blockLists queries configured DNSBL zones for the sender IP and URIBL
// zones for link domains. Lookup failures are not evidence.
func (c *Check) blockLists(ctx context.Context, m *policy.Message, s policy.Settings) []policy.Finding {
	if c.Resolver == nil {
		return nil
	}
	var out []policy.Finding
	if ip := m.Env.SenderIP(); ip.IsValid() && ip.Is4() {
		for _, z := range zones(s, "spam.dnsbl") {
			if listed(ctx, c.Resolver, reverse4(ip)+"."+z) {
				out = append(out, policy.Finding{Check: Name, Symbol: "DNSBL_" + strings.ToUpper(strings.ReplaceAll(z, ".", "_")),
					Score: 30, Overridable: true, Reason: "sender " + ip.String() + " listed in " + z})
			}
		}
	}
	if uz := zones(s, "spam.uribl"); len(uz) > 0 {
		msg, err := m.Parsed(ctx)
		if err == nil {
			seen := map[string]bool{}
			for _, l := range msg.HTMLLinks {
				h := hostIn(l.URL)
				if h == "" || seen[h] || len(seen) >= 10 {
					continue
				}
				seen[h] = true
				for _, z := range uz {
					if listed(ctx, c.Resolver, h+"."+z) {
						out = append(out, policy.Finding{Check: Name, Symbol: "URIBL", Score: 25, Overridable: true, Reason: h + " listed in " + z})
					}
				}
			}
		}
	}
	return out
}

func listed(ctx context.Context, r Resolver, name string) bool {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	ips, err := r.LookupIPAddr(ctx, name)
	if err != nil {
		return false
	}
	for _, ip := range ips {
		// Listings answer 127.0.0.2–127.0.0.254; 127.255.255.x are error codes.
		if a, ok := netip.AddrFromSlice(ip.IP.To4()); ok && a.As4()[0] == 127 && a.As4()[1] != 255 {
			return true
		}
	}
	return false
}

func reverse4(ip netip.Addr) string {
	b := ip.As4()
	return fmt.Sprintf("%d.%d.%d.%d", b[3], b[2], b[1], b[0])
}
