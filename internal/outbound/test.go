package outbound

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/store"
)

// TestResult is what the rules make of a pasted message (the console's
// test button): nothing is sent or stored.
type TestResult struct {
	Sender      string       `json:"sender"`
	Groups      []string     `json:"groups"`
	Rcpts       []string     `json:"rcpts"`
	Outside     int          `json:"outside"`
	Outcome     string       `json:"outcome"` // block, hold, delay, send
	Matches     []TestMatch  `json:"matches"`
	Attachments []TestAttach `json:"attachments"`
	Problems    []string     `json:"problems,omitempty"`
}

// TestMatch is one rule that applies.
type TestMatch struct {
	RuleID    int64  `json:"rule_id"`
	Name      string `json:"name"`
	Action    string `json:"action"`
	Unchecked bool   `json:"unchecked"`
	Why       string `json:"why"`
}

// TestAttach is one attachment as the rules saw it.
type TestAttach struct {
	Name   string   `json:"name"`
	Size   int64    `json:"size"`
	Types  []string `json:"types"`
	Names  []string `json:"names,omitempty"`
	Text   string   `json:"text"` // the first 300 bytes
	Unread string   `json:"unread,omitempty"`
}

// MaxTestBytes bounds a pasted message.
const MaxTestBytes = 10 << 20

// Test runs the tenant's rules (or rules, when not nil) over raw as if
// mailFrom sent it to rcpts (empty: the To, Cc and Bcc of its header).
func (e *Engine) Test(ctx context.Context, st PolicyStore, tenantID int64, raw []byte, mailFrom string, rcpts []string, rules []store.OutboundRule) (TestResult, error) {
	var res TestResult
	if len(raw) > MaxTestBytes {
		return res, fmt.Errorf("message larger than %d bytes", MaxTestBytes)
	}
	// A pasted message may have bare LF line ends.
	if !bytes.Contains(raw, []byte("\r\n")) {
		raw = bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\n"))
	}
	parsed, err := mailtext.Parse(ctx, bytes.NewReader(raw), mailtext.Limits{})
	if err != nil {
		return res, err
	}
	if len(rcpts) == 0 {
		for _, list := range [][]mailtext.Address{parsed.To, parsed.Cc} {
			for _, a := range list {
				rcpts = append(rcpts, a.Addr)
			}
		}
		for _, v := range parsed.HeaderValues("Bcc") {
			for _, a := range addrList(v) {
				rcpts = append(rcpts, a)
			}
		}
	}
	sp, err := loadPolicy(ctx, st, tenantID, "")
	if err != nil {
		return res, err
	}
	m := store.Message{MailFrom: mailFrom}
	if m.MailFrom == "" && len(parsed.From) > 0 {
		m.MailFrom = parsed.From[0].Addr
	}
	if sp, err = loadPolicy(ctx, st, tenantID, senderOf(m, parsed, sp.inside)); err != nil {
		return res, err
	}
	f := &Facts{Sender: sp.Sender, MailFrom: m.MailFrom, Rcpts: rcpts, Size: int64(len(raw)), Parsed: parsed, Inside: sp.inside,
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil }}
	var ms []Match
	if rules == nil {
		if ms, err = e.Evaluate(ctx, tenantID, f); err != nil {
			return res, err
		}
	} else {
		ms = e.EvaluateRules(ctx, rules, f)
	}
	res = TestResult{Sender: sp.Address, Groups: sp.Groups, Rcpts: rcpts, Outcome: "send"}
	for _, r := range rcpts {
		if !sp.inside(domainOf(r)) {
			res.Outside++
		}
	}
	if positive(sp.get(KeyDelayMinutes), 0) > 0 {
		res.Outcome = "delay"
	}
	for _, mt := range ms {
		res.Matches = append(res.Matches, TestMatch{RuleID: mt.RuleID, Name: mt.Name, Action: mt.Spec.Action, Unchecked: mt.Unchecked, Why: mt.Why})
		switch {
		case mt.Spec.Action == ActBlock && !mt.Unchecked:
			res.Outcome = "block"
		case (mt.Spec.Action == ActHold || mt.Unchecked) && res.Outcome != "block":
			res.Outcome = "hold"
		case mt.Spec.Action == ActDelay && res.Outcome == "send":
			res.Outcome = "delay"
		}
	}
	if as, err := f.attachments(ctx, e.limits(), true); err == nil {
		for _, a := range as {
			res.Attachments = append(res.Attachments, TestAttach{Name: a.Name, Size: a.Size, Types: a.Types, Names: a.Names,
				Text: strings.TrimSpace(mailtext.TruncUTF8(a.Text, 300)), Unread: a.Unread})
		}
	}
	for _, p := range parsed.Problems {
		res.Problems = append(res.Problems, string(p.Kind)+" "+p.Part+" "+p.Detail)
	}
	return res, nil
}
