package outbound

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/policy"
)

// The pipeline's checks are policy.BodyChecks run by a policy.Runner, as
// inbound: the rules ("outbound") and the virus scan ("av"). Their
// findings carry the part of a rule's outcome the policy contract knows:
//
//	block            Reject (550 during DATA)
//	hold             Quarantine: outbound, a quarantined message is held for approval
//	header, tag      Header, Tag
//	the others       Continue (a fact; the pipeline reads the rule from the check)
//
// Findings are message-level (every recipient gets the same verdict).

// Finding symbols.
const (
	SymBlock     = "OUT_BLOCK"
	SymHold      = "OUT_HOLD"
	SymUnchecked = "OUT_UNCHECKED"
	SymVirus     = "OUT_VIRUS"
	SymAction    = "OUT_" // + upper-case action for the other actions
)

// checkName is the rules check's name in findings.
const checkName = "outbound"

// ruleCheck evaluates the rules for one message and keeps the matches
// for the pipeline.
type ruleCheck struct {
	engine  *Engine
	tenant  int64
	facts   *Facts
	matches []Match
}

func (c *ruleCheck) Name() string { return checkName }

// Check evaluates the rules. It keeps a tenth of its deadline (at most a
// second) for itself: when reading the message takes too long, the rules
// not yet decided are Unchecked (a block or hold rule then holds) rather
// than the whole check failing into a temporary failure.
func (c *ruleCheck) Check(ctx context.Context, m *policy.Message, s policy.Settings) ([]policy.Finding, error) {
	ectx := ctx
	if dl, ok := ctx.Deadline(); ok {
		margin := min(time.Until(dl)/10, time.Second)
		var cancel context.CancelFunc
		ectx, cancel = context.WithDeadline(ctx, dl.Add(-margin))
		defer cancel()
	}
	parsed, err := m.Parsed(ectx)
	if err == nil {
		c.facts.Parsed = parsed
	}
	matches, err := c.engine.Evaluate(ectx, c.tenant, c.facts)
	if err != nil {
		return nil, err
	}
	c.matches = matches
	return Findings(matches), nil
}

// Findings turns rule matches into policy findings.
func Findings(ms []Match) []policy.Finding {
	var out []policy.Finding
	for _, mt := range ms {
		f := policy.Finding{Check: checkName, Reason: "rule " + strconv.Quote(mt.Name) + ": " + mt.Why}
		sp := mt.Spec
		switch {
		case mt.Unchecked:
			f.Symbol, f.Action = SymUnchecked, policy.Quarantine
		case sp.Action == ActBlock:
			f.Symbol, f.Action, f.Code, f.Enhanced = SymBlock, policy.Reject, 550, "5.7.1"
			f.Public = "Message refused by your organisation's outbound policy"
			if r := asciiText(sp.Reason); r != "" {
				f.Public += ": " + r
			}
		case sp.Action == ActHold:
			f.Symbol, f.Action = SymHold, policy.Quarantine
		case sp.Action == ActHeader:
			f.Symbol, f.Action = SymAction+"HEADER", policy.Header
			f.Headers = []policy.HeaderField{{Name: sp.Header, Value: sp.HeaderValue}}
		case sp.Action == ActTag:
			f.Symbol, f.Action, f.TagText = SymAction+"TAG", policy.Tag, sp.Tag
		default:
			f.Symbol, f.Action = SymAction+strings.ToUpper(sp.Action), policy.Continue
		}
		out = append(out, f)
	}
	return out
}

// asciiText keeps the printable ASCII of a reason for an SMTP reply.
func asciiText(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 0x20 && r < 0x7f {
			b.WriteRune(r)
		}
	}
	return strings.TrimSpace(mailtext.TruncUTF8(b.String(), 200))
}

// avCheck is the virus scan on the way out: a virus anywhere blocks the
// message (seed: 送信をブロック), content the scan cannot finish does
// what outbound.av_unscannable says, and nothing of the scan is added to
// the message.
type avCheck struct{ inner policy.BodyCheck }

func (a avCheck) Name() string { return a.inner.Name() }

func (a avCheck) Check(ctx context.Context, m *policy.Message, s policy.Settings) ([]policy.Finding, error) {
	fs, err := a.inner.Check(ctx, m, s)
	if err != nil {
		return nil, err
	}
	var out []policy.Finding
	for _, f := range fs {
		f.Headers, f.Banner, f.TagText, f.StripParts = nil, "", "", nil
		switch {
		case strings.HasPrefix(f.Symbol, "VIRUS"):
			f.Symbol, f.Action, f.Code, f.Enhanced = SymVirus, policy.Reject, 550, "5.7.1"
			f.Public = "Message refused: a virus was found in it"
		case f.Symbol == "UNSCANNABLE":
			v, _ := s.Get(KeyUnscannable)
			switch strings.TrimSpace(v) {
			case "block":
				f.Action, f.Code, f.Enhanced = policy.Reject, 550, "5.7.1"
				f.Public = "Message refused: an attachment could not be checked"
			case "send":
				f.Action = policy.Continue
			default:
				f.Action = policy.Quarantine
			}
		default:
			f.Action = policy.Continue
		}
		out = append(out, f)
	}
	return out, nil
}
