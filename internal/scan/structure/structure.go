// Package structure is the "structure" body check: it turns what the MIME
// decoder could not fully read into a verdict, so that a message built to
// exhaust a scanner (nesting beyond 100 levels, 10,000+ parts, enormous
// headers, more decoded bytes than the budget) is never treated as clean by
// the checks that only saw part of it.
//
// Settings:
//   - structure.unscannable_action (default "quarantine"; also reject,
//     discard, tempfail, header): for a message mailtext marks Unscannable
//     (symbol MIME_UNSCANNABLE, not overridable).
//
// Malformed but readable messages (broken base64 or quoted-printable, bad
// charsets, duplicate From/Subject/Content-Type, malformed MIME) are facts
// with small scores (symbols MIME_BROKEN_ENCODING, MIME_BAD_CHARSET,
// MIME_DUPLICATE_HEADER, MIME_MALFORMED) for the spam score.
package structure

import (
	"context"
	"fmt"
	"strings"

	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/policy"
)

// Name is the check's name.
const Name = "structure"

// Check implements policy.BodyCheck.
type Check struct{}

// Name returns "structure".
func (Check) Name() string { return Name }

// Check parses the message (shared with the other checks) and reports what
// could not be read.
func (Check) Check(ctx context.Context, m *policy.Message, s policy.Settings) ([]policy.Finding, error) {
	p, err := m.Parsed(ctx)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	var out []policy.Finding
	if p.Unscannable {
		var kinds []string
		for _, pr := range p.Problems {
			if pr.Kind.Unscannable() {
				kinds = append(kinds, string(pr.Kind))
			}
		}
		action := policy.Quarantine
		if v, ok := s.Get("structure.unscannable_action"); ok {
			if a, ok := policy.ParseAction(v); ok && a >= policy.Header && a != policy.Allow && a != policy.Tag && a != policy.Strip {
				action = a
			}
		}
		out = append(out, policy.Finding{Symbol: "MIME_UNSCANNABLE", Score: 20, Action: action,
			Reason: "message structure beyond the scanning limits: " + strings.Join(dedup(kinds), ","),
			Public: "Message structure too complex to be checked", Code: 550, Enhanced: "5.6.0",
			Headers: []policy.HeaderField{{Name: "X-Mailgate-Structure", Value: "unscannable"}}})
	}
	facts := map[string]struct {
		sym   string
		score float64
	}{
		string(mailtext.ProblemBadBase64):       {"MIME_BROKEN_ENCODING", 3},
		string(mailtext.ProblemBadQP):           {"MIME_BROKEN_ENCODING", 3},
		string(mailtext.ProblemBadCharset):      {"MIME_BAD_CHARSET", 2},
		string(mailtext.ProblemDuplicateHeader): {"MIME_DUPLICATE_HEADER", 10},
		string(mailtext.ProblemMalformedMIME):   {"MIME_MALFORMED", 5},
		string(mailtext.ProblemMalformedHeader): {"MIME_MALFORMED", 5},
	}
	seen := map[string]bool{}
	for _, pr := range p.Problems {
		f, ok := facts[string(pr.Kind)]
		if !ok || seen[f.sym] {
			continue
		}
		seen[f.sym] = true
		out = append(out, policy.Finding{Symbol: f.sym, Score: f.score, Action: policy.Continue, Overridable: true,
			Reason: string(pr.Kind) + " " + oneLine(pr.Detail)})
	}
	return out, nil
}

func dedup(xs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}
