package auth

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"strconv"
	"strings"

	"github.com/emersion/go-msgauth/dmarc"

	"github.com/mailgate/mailgate/internal/dnsx"
)

// DMARC result values (RFC 7489 11.2, RFC 8601).
const (
	DMARCNone      = "none"
	DMARCPass      = "pass"
	DMARCFail      = "fail"
	DMARCTempError = "temperror"
	DMARCPermError = "permerror"
)

// DMARC policies.
const (
	policyNone       = "none"
	policyQuarantine = "quarantine"
	policyReject     = "reject"
)

// dmarcOutcome is the DMARC evaluation of one message.
type dmarcOutcome struct {
	Result string
	// From is the clean domain named in header.from: the author domain, or
	// for an ambiguous From the candidate whose policy was applied.
	From string
	// Published is the policy that applies to From before sampling (p=,
	// sp= or np=), "" when no record was found.
	Published string
	// Applied is the policy to enforce after pct sampling (RFC 7489 6.6.4).
	Applied string
	Pct     int
	// BadFrom is set when the From header was ambiguous or malformed
	// (RFC 7489 6.6.1); the result is then never pass.
	BadFrom bool
	Reason  string
}

// dmarcRecord is a discovered policy record.
type dmarcRecord struct {
	rec    *dmarc.Record
	np     string // RFC 9091 non-existent subdomain policy, "" if absent
	domain string // where it was found
}

// evalInput carries the authenticated identities DMARC aligns.
type evalInput struct {
	from     fromIdentity
	spf      string // SPF result of the MAIL FROM identity
	spfDom   string // its clean domain
	dkim     []dkimResult
	sampleID uint64 // deterministic per message, for pct
}

// evaluateDMARC applies RFC 7489 to the message.
//
// Spoofing defences (RFC 7489 6.6.1): when the From header is missing,
// repeated, holds several addresses or an address that is not a strict
// addr-spec (encoded-words, control characters, parser disagreement), the
// result is never pass. Every domain such a header names (at most 5) is
// looked up; if any publishes a record the result is fail under the
// strictest of their policies (reject over quarantine over none) with pct
// ignored, i.e. treated as 100. If none publishes one the result is
// permerror and no DMARC policy action follows (the finding still scores).
func (c *Check) evaluateDMARC(ctx context.Context, in evalInput) dmarcOutcome {
	if in.from.Domain == "" {
		return c.evaluateBadFrom(ctx, in)
	}
	from := in.from.Domain
	out := dmarcOutcome{From: from}
	rec, err := c.discover(ctx, from)
	switch {
	case err != nil && isTemp(err):
		out.Result, out.Reason = DMARCTempError, err.Error()
		return out
	case err != nil:
		out.Result, out.Reason = DMARCPermError, err.Error()
		return out
	case rec == nil:
		out.Result, out.Reason = DMARCNone, "no DMARC record"
		return out
	}
	out.Published = c.applicablePolicy(ctx, rec, from)
	out.Pct = 100
	if rec.rec.Percent != nil {
		out.Pct = *rec.rec.Percent
	}

	// RFC 7489 4.2: pass when an aligned identifier authenticated.
	strictDKIM := rec.rec.DKIMAlignment == dmarc.AlignmentStrict
	strictSPF := rec.rec.SPFAlignment == dmarc.AlignmentStrict
	for _, d := range in.dkim {
		if d.Result == DKIMPass && aligned(d.Domain, from, strictDKIM) {
			out.Result, out.Applied = DMARCPass, policyNone
			out.Reason = "aligned DKIM pass d=" + d.Domain
			return out
		}
	}
	if in.spf == "pass" && aligned(in.spfDom, from, strictSPF) {
		out.Result, out.Applied = DMARCPass, policyNone
		out.Reason = "aligned SPF pass " + in.spfDom
		return out
	}
	// A key or SPF lookup that failed temporarily for an aligned identifier
	// might have passed: defer judgement rather than apply the policy.
	for _, d := range in.dkim {
		if d.Result == DKIMTempError && aligned(d.Domain, from, strictDKIM) {
			out.Result, out.Reason = DMARCTempError, "aligned DKIM signature temperror d="+d.Domain
			return out
		}
	}
	if in.spf == "temperror" && aligned(in.spfDom, from, strictSPF) {
		out.Result, out.Reason = DMARCTempError, "aligned SPF temperror "+in.spfDom
		return out
	}
	out.Result = DMARCFail
	out.Reason = "no aligned identifier passed"
	out.Applied = out.Published
	// RFC 7489 6.6.4: a message outside the pct sample gets the next less
	// strict policy.
	if in.sampleID%100 >= uint64(out.Pct) {
		switch out.Applied {
		case policyReject:
			out.Applied = policyQuarantine
		case policyQuarantine:
			out.Applied = policyNone
		}
		out.Reason += "; not sampled (pct=" + strconv.Itoa(out.Pct) + ")"
	}
	return out
}

func (c *Check) evaluateBadFrom(ctx context.Context, in evalInput) dmarcOutcome {
	out := dmarcOutcome{BadFrom: true, Result: DMARCPermError, Pct: 100, Reason: in.from.Problem}
	temp := false
	for _, d := range in.from.Candidates {
		rec, err := c.discover(ctx, d)
		if err != nil {
			temp = temp || isTemp(err)
			continue
		}
		if rec == nil {
			continue
		}
		p := c.applicablePolicy(ctx, rec, d)
		if out.Published == "" || policyRank(p) > policyRank(out.Published) {
			out.Result, out.From, out.Published = DMARCFail, d, p
		}
	}
	if out.Result == DMARCPermError && temp {
		out.Result = DMARCTempError
	}
	out.Applied = out.Published
	return out
}

func policyRank(p string) int {
	switch p {
	case policyReject:
		return 2
	case policyQuarantine:
		return 1
	}
	return 0
}

// discover finds the DMARC record for a clean From domain (RFC 7489 6.6.3):
// at the domain itself, else at its organisational domain. It returns nil
// without error when there is none.
func (c *Check) discover(ctx context.Context, from string) (*dmarcRecord, error) {
	rec, err := c.lookupDMARC(ctx, from)
	if err != nil || rec != nil {
		return rec, err
	}
	if org := orgDomain(from); org != from {
		return c.lookupDMARC(ctx, org)
	}
	return nil, nil
}

// lookupDMARC reads _dmarc.<domain> with go-msgauth's record parser. RFC
// 7489 6.6.3: records not starting with "v=DMARC1" are ignored, and more
// than one such record means no policy.
func (c *Check) lookupDMARC(ctx context.Context, domain string) (*dmarcRecord, error) {
	var txts []string
	opts := &dmarc.LookupOptions{LookupTXT: func(name string) ([]string, error) {
		if !validQueryName(name) {
			return nil, &net.DNSError{Err: "invalid name", Name: "invalid", IsNotFound: true}
		}
		t, err := c.res.LookupTXT(ctx, name)
		txts = t
		return t, err
	}}
	rec, err := dmarc.LookupWithOptions(domain, opts)
	switch {
	case errors.Is(err, dmarc.ErrNoPolicy):
		return nil, nil
	case err != nil:
		return nil, err
	}
	var found []string
	for _, t := range txts {
		if isDMARC1(t) {
			found = append(found, t)
		}
	}
	if len(found) != 1 {
		return nil, nil
	}
	return &dmarcRecord{rec: rec, np: npTag(found[0]), domain: domain}, nil
}

func isDMARC1(t string) bool {
	first, _, _ := strings.Cut(t, ";")
	name, val, ok := strings.Cut(first, "=")
	return ok && strings.TrimSpace(name) == "v" && strings.TrimSpace(val) == "DMARC1"
}

// npTag reads the RFC 9091 np= tag, which go-msgauth does not parse.
func npTag(t string) string {
	for _, part := range strings.Split(t, ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok || strings.TrimSpace(k) != "np" {
			continue
		}
		switch v = strings.TrimSpace(v); v {
		case policyNone, policyQuarantine, policyReject:
			return v
		}
	}
	return ""
}

// applicablePolicy picks p=, sp= or np= for the From domain (RFC 7489
// 6.6.3, RFC 9091 4): p= when the record is the From domain's own, else
// np= when the From domain does not exist, else sp=, each defaulting to the
// one before.
func (c *Check) applicablePolicy(ctx context.Context, r *dmarcRecord, from string) string {
	p := string(r.rec.Policy)
	if r.domain == from {
		return p
	}
	sp := p
	if r.rec.SubdomainPolicy != "" {
		sp = string(r.rec.SubdomainPolicy)
	}
	if r.np != "" && c.nonExistent(ctx, from) {
		return r.np
	}
	return sp
}

// nonExistent reports whether the domain gives NXDOMAIN (RFC 9091 2.1:
// NXDOMAIN for A, AAAA and MX, which a name error answers for all types).
func (c *Check) nonExistent(ctx context.Context, domain string) bool {
	_, err := c.res.LookupMX(ctx, domain)
	return err != nil && errors.Is(err, dnsx.ErrNXDomain)
}

func isTemp(err error) bool {
	if dmarc.IsTempFail(err) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// sampleValue turns a digest into the number pct sampling compares with.
func sampleValue(sum []byte) uint64 {
	if len(sum) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(sum[:8])
}
