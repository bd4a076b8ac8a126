package store

import (
	"slices"
	"sort"
	"strings"
	"time"
)

// Report counters and tracking findings: the rules every store
// implementation applies when it writes messages and events, so that
// reports and tracking agree whichever backend holds them.
//
// Most metrics are counters, one per (tenant, day, domain, address,
// metric), added to in the transaction that writes the recipient states or
// events they count, so a report never disagrees with the tracking log:
//
//	received   inbound recipients at Enqueue, except mailgate's own
//	           re-submissions (modified copies, releases: a "received"
//	           event with Remote "local")
//	rejected   inbound recipients enqueued in state Rejected
//	discarded  inbound recipients enqueued in state Discarded
//	spam/virus verdict events of an inbound Enqueue naming such a finding
//	delivered  inbound recipients reaching Delivered in Complete
//	bounced    inbound recipients reaching Bounced in Complete
//
// Recipients refused at RCPT as unknown users (a "rejected" event with
// detail RefusedUnknownDetail) count as received and rejected under their
// domain with address UnknownRecipients, not per address: the sender picks
// those addresses, so per-address rows would grow with every guess of a
// dictionary attack. Tracking still keeps each of them.
//
// Outbound protection counts messages, not recipients, under the
// message's sender (OutboundSender) on the day of the action:
//
//	out_blocked, out_held, out_delayed, out_converted, out_zipped,
//	out_linked   an outbound Enqueue whose events are "blocked", "held",
//	             "delayed", "converted", "zipped", "linked" (once each)
//	out_approved, out_rejected, out_cancelled
//	             a decided hold (DecisionCounts): sent after being held
//	             for approval (by an approver or at the timeout),
//	             rejected, cancelled
//
// The quarantine life cycle (quarantined, released, deleted) is written by
// AddQuarantine and SetQuarantineState, which only log events; those
// metrics are summed from the events themselves (QuarantineEventKinds), so
// they agree with the log by construction.

// CountKey names one daily report counter.
type CountKey struct {
	TenantID                     int64
	Day, Domain, Address, Metric string
}

// ReportCounts are increments of daily report counters.
type ReportCounts map[CountKey]int64

// Keys returns the counters in a fixed order: writers that upsert them in
// this order lock rows in the same order and cannot deadlock each other.
func (c ReportCounts) Keys() []CountKey {
	keys := make([]CountKey, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.TenantID != b.TenantID {
			return a.TenantID < b.TenantID
		}
		if a.Day != b.Day {
			return a.Day < b.Day
		}
		if a.Domain != b.Domain {
			return a.Domain < b.Domain
		}
		if a.Address != b.Address {
			return a.Address < b.Address
		}
		return a.Metric < b.Metric
	})
	return keys
}

func (c ReportCounts) add(tenant int64, at time.Time, loc *time.Location, addr, metric string) {
	a, d := SplitAddr(addr)
	c[CountKey{tenant, ReportDay(at, loc), d, a, metric}]++
}

// addDomain counts under addr's domain only, in the bucket of refused
// unknown recipients.
func (c ReportCounts) addDomain(tenant int64, at time.Time, loc *time.Location, addr, metric string) {
	_, d := SplitAddr(addr)
	c[CountKey{tenant, ReportDay(at, loc), d, UnknownRecipients, metric}]++
}

// SplitAddr returns the lower-case address and its domain.
func SplitAddr(a string) (string, string) {
	a = strings.ToLower(a)
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		return a, a[i+1:]
	}
	return a, ""
}

// ReportDay is t's calendar day in loc ("YYYY-MM-DD"); a zero t is now.
func ReportDay(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		t = time.Now()
	}
	return t.In(loc).Format("2006-01-02")
}

// EnqueueCounts is what enqueueing a message adds to the counters: an
// inbound message's recipients and verdicts.
func EnqueueCounts(m Message, rcpts []Recipient, events []Event, loc *time.Location) ReportCounts {
	c := ReportCounts{}
	if m.Direction == Outbound {
		seen := map[string]bool{}
		for _, e := range events {
			metric := outboundEventMetric[e.Kind]
			if metric == "" || seen[metric] || e.MessageID != "" && e.MessageID != m.ID {
				continue
			}
			seen[metric] = true
			at := e.At
			if at.IsZero() {
				at = m.ReceivedAt
			}
			c.add(m.TenantID, at, loc, OutboundSender(m.MailFrom, m.AuthUser), metric)
		}
		return c
	}
	if m.Direction != Inbound {
		return c
	}
	resubmitted := false
	unknown := map[string]bool{}
	for _, e := range events {
		if e.Kind == "received" && e.Remote == "local" {
			resubmitted = true
		}
		if e.Kind == "rejected" && e.Detail == RefusedUnknownDetail {
			unknown[strings.ToLower(e.Rcpt)] = true
		}
	}
	for _, r := range rcpts {
		if r.State == Rejected && unknown[strings.ToLower(r.Addr)] {
			if !resubmitted {
				c.addDomain(m.TenantID, m.ReceivedAt, loc, r.Addr, MetricReceived)
			}
			c.addDomain(m.TenantID, m.ReceivedAt, loc, r.Addr, MetricRejected)
			continue
		}
		if !resubmitted {
			c.add(m.TenantID, m.ReceivedAt, loc, r.Addr, MetricReceived)
		}
		switch r.State {
		case Rejected:
			c.add(m.TenantID, m.ReceivedAt, loc, r.Addr, MetricRejected)
		case Discarded:
			c.add(m.TenantID, m.ReceivedAt, loc, r.Addr, MetricDiscarded)
		}
	}
	for _, e := range events {
		if e.Kind != "verdict" || e.Rcpt == "" {
			continue
		}
		for _, f := range VerdictFindings(e.Detail) {
			switch f {
			case "spam":
				c.add(m.TenantID, e.At, loc, e.Rcpt, MetricSpam)
			case "virus":
				c.add(m.TenantID, e.At, loc, e.Rcpt, MetricVirus)
			}
		}
	}
	return c
}

// outboundEventMetric maps the outbound pipeline's tracking events to
// their metrics.
var outboundEventMetric = map[string]string{"blocked": MetricOutBlocked, "held": MetricOutHeld, "delayed": MetricOutDelayed,
	"converted": MetricOutConverted, "zipped": MetricOutZipped, "linked": MetricOutLinked}

// OutboundSender is the address outbound metrics count under: the login
// of the submission listener when it is an address, else the envelope
// sender.
func OutboundSender(mailFrom, authUser string) string {
	if strings.Contains(authUser, "@") {
		return authUser
	}
	return mailFrom
}

// DecisionCounts is what deciding hold h (before the decision) as d adds,
// for the held message's envelope sender and login.
func DecisionCounts(h OutboundHold, d HoldDecision, mailFrom, authUser string, loc *time.Location) ReportCounts {
	c := ReportCounts{}
	metric := ""
	switch {
	case d.To == HoldSent && h.Kind == HoldApproval:
		metric = MetricOutApproved
	case d.To == HoldRejected:
		metric = MetricOutRejected
	case d.To == HoldCancelled:
		metric = MetricOutCancelled
	}
	if metric != "" {
		c.add(h.TenantID, d.At, loc, OutboundSender(mailFrom, authUser), metric)
	}
	return c
}

// FinalRecipient is a recipient that a Complete moved to a final state.
type FinalRecipient struct {
	Addr  string
	State RcptState
}

// CompleteCounts is what a Complete of an inbound message adds: its
// recipients that reached Delivered or Bounced, on the day of their
// delivery event (now without one).
func CompleteCounts(tenantID int64, finals []FinalRecipient, events []Event, now time.Time, loc *time.Location) ReportCounts {
	c := ReportCounts{}
	for _, f := range finals {
		at := now
		for _, e := range events {
			if e.Rcpt == f.Addr && e.Kind == string(f.State) && !e.At.IsZero() {
				at = e.At
			}
		}
		metric := MetricDelivered
		if f.State == Bounced {
			metric = MetricBounced
		}
		c.add(tenantID, at, loc, f.Addr, metric)
	}
	return c
}

// QuarantineEventKinds are the tracking events the quarantine metrics are
// summed from. A "released" event counts only when it concerns a
// quarantine copy of its message and recipient (the queue's hold/release
// logs "released" too).
var QuarantineEventKinds = []string{"quarantined", "released", "quarantine-deleted", "quarantine-expired"}

// ReportBuilder sums counters and quarantine events into the rows of a
// Report.
type ReportBuilder struct {
	f               ReportFilter
	domain, address string // lower-case filters
	rows            map[reportKey]map[string]int64
}

type reportKey struct{ period, domain, address string }

// NewReportBuilder starts the rows of a report for f.
func NewReportBuilder(f ReportFilter) *ReportBuilder {
	return &ReportBuilder{f: f, domain: strings.ToLower(f.Domain), address: strings.ToLower(f.Address),
		rows: map[reportKey]map[string]int64{}}
}

// Domain and Address are the filter's lower-case domain and address.
func (b *ReportBuilder) Domain() string  { return b.domain }
func (b *ReportBuilder) Address() string { return b.address }

// AddCount adds n of metric on day for an address of a domain.
func (b *ReportBuilder) AddCount(day, domain, address, metric string, n int64) {
	k := reportKey{period: day}
	if b.f.GroupBy == "month" {
		k.period = day[:7]
	}
	if b.f.ByDomain || b.f.ByAddress {
		k.domain = domain
	}
	if b.f.ByAddress {
		k.address = address
	}
	m := b.rows[k]
	if m == nil {
		m = map[string]int64{}
		b.rows[k] = m
	}
	m[metric] += n
}

// AddEvent counts one quarantine life-cycle event (of QuarantineEventKinds)
// at its day in loc, unless the filter's domain or address excludes its
// recipient.
func (b *ReportBuilder) AddEvent(at time.Time, loc *time.Location, kind, rcpt string) {
	a, d := SplitAddr(rcpt)
	if b.domain != "" && d != b.domain || b.address != "" && a != b.address {
		return
	}
	metric := MetricDeleted
	switch kind {
	case "quarantined":
		metric = MetricQuarantined
	case "released":
		metric = MetricReleased
	}
	b.AddCount(ReportDay(at, loc), d, a, metric, 1)
}

// Rows returns the report, oldest period first (then domain, address);
// every row has every Metrics key.
func (b *ReportBuilder) Rows() []ReportRow {
	out := make([]ReportRow, 0, len(b.rows))
	for k, m := range b.rows {
		row := ReportRow{Period: k.period, Domain: k.domain, Address: k.address, Counts: map[string]int64{}}
		for _, metric := range Metrics {
			row.Counts[metric] = m[metric]
		}
		out = append(out, row)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Period != b.Period {
			return a.Period < b.Period
		}
		if a.Domain != b.Domain {
			return a.Domain < b.Domain
		}
		return a.Address < b.Address
	})
	return out
}

// findingOf maps a check's symbol to the finding shown in tracking.
func findingOf(sym string) string {
	switch sym {
	case "SPAM", "RSPAMD_REJECT", "SA_REJECT":
		return "spam"
	case "VIRUS", "VIRUS_ATTACHMENT":
		return "virus"
	case "DMARC_FAIL":
		return "dmarc"
	case "SPF_FAIL":
		return "spf"
	case "DKIM_FAIL":
		return "dkim"
	case "OWN_DOMAIN_SPOOF":
		return "spoof"
	}
	switch {
	case strings.HasPrefix(sym, "BEC_"):
		return "bec"
	case strings.HasPrefix(sym, "DENY_"):
		return "deny"
	}
	return ""
}

// VerdictFindings reads the findings out of a verdict event's detail as the
// inbound pipeline writes it: "action[: reason] [SYM(score) SYM ...]". Only
// the trailing bracket is read, so a reason mentioning a symbol name does
// not count; the symbols themselves never contain spaces or brackets.
func VerdictFindings(detail string) []string {
	if !strings.HasSuffix(detail, "]") {
		return nil
	}
	i := strings.LastIndex(detail, " [")
	if i < 0 {
		if !strings.HasPrefix(detail, "[") {
			return nil
		}
		i = -1
	}
	var out []string
	for _, s := range strings.Fields(detail[i+2 : len(detail)-1]) {
		s, _, _ = strings.Cut(s, "(")
		if f := findingOf(s); f != "" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// Tracking verdicts of TrackFilter.Verdict: recipient states (and
// "deferred": queued after an attempt) and findings.
var (
	StateVerdicts = map[string]bool{
		"queued": true, "delivered": true, "deferred": true, "bounced": true, "quarantined": true,
		"rejected": true, "discarded": true, "held": true,
	}
	FindingVerdicts = map[string]bool{"spam": true, "virus": true}
)
