// Package inbound runs mailgate's inbound policy pipeline on an accepted
// message and turns the per-recipient verdicts into what happens to each
// copy: delivered as is (with the verdict headers in front), delivered as a
// rewritten copy (Subject tag, warning banner, infected parts removed),
// quarantined, dropped, or — when every recipient refuses — rejected during
// DATA. It sits between smtpin and the queue and implements smtpin.Enqueuer.
//
// Ordering: the original blob is durable before the pipeline runs; every
// copy (rewritten blob, quarantine copy) is made durable before the rows
// that reference it are committed, and the client's 250 follows the last
// commit. A crash in between leaves only unreferenced blobs, which recovery
// removes; the client, never having seen 250, sends again.
package inbound

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/quarantine"
	"github.com/mailgate/mailgate/internal/spool"
	"github.com/mailgate/mailgate/internal/store"
)

// Queue is what the pipeline needs of the queue.
type Queue interface {
	Enqueue(ctx context.Context, m store.Message, rcpts []store.Recipient, events []store.Event) error
}

// PostStage runs after the checks with all their findings.
type PostStage interface {
	Findings(ctx context.Context, m *policy.Message, findings []policy.Finding, s policy.RcptSettings) []policy.Finding
}

// Rewriter writes a modified copy of a message (package rewrite): the
// verdict's Subject tag, banner and removed parts, without the named header
// fields (a name ending in "*" is a prefix).
type Rewriter func(ctx context.Context, w io.Writer, r io.Reader, v *policy.Verdict, removeHeaders []string) error

// Pipeline is the inbound stage.
type Pipeline struct {
	Store      store.Store
	Spool      *spool.Spool // queue blobs
	Quarantine *spool.Spool // quarantine copies
	Queue      Queue
	Runner     *policy.Runner
	// Post stages see every check's findings once all have run (the spam
	// score combines them) and add findings of their own.
	Post     []PostStage
	Rewrite  Rewriter
	Hostname string
	Clock    clock.Clock
	Log      *slog.Logger
	// Intercept, when set, may take a recipient's copy for mailgate itself
	// (the spam feedback addresses); the copy is then not delivered and
	// the returned text goes to tracking.
	Intercept func(ctx context.Context, m store.Message, env *policy.Envelope, rcpt string, s policy.Settings, findings []policy.Finding) (string, bool)
	// AfterVerdict, when set, is called with the findings of every checked
	// message (notifications, sender history, reputation).
	AfterVerdict func(ctx context.Context, m store.Message, env *policy.Envelope, settings policy.RcptSettings, findings []policy.Finding, verdicts []policy.Verdict)
	// Quota, when set, guards each recipient's quarantine capacity
	// (quarantine.Manager).
	Quota QuarantineQuota
}

// QuarantineQuota is the per-address quarantine capacity (seed 003
// ディスク容量制限): Fits is asked before a copy is written, Stored is told
// after it is committed (the 80% warning).
type QuarantineQuota interface {
	Fits(ctx context.Context, tenantID int64, rcpt string, size int64, s policy.Settings) (bool, error)
	Stored(ctx context.Context, it store.QuarantineItem, s policy.Settings)
}

// Enqueue checks an inbound message and queues, quarantines or refuses each
// recipient's copy. Outbound messages pass straight to the queue.
func (p *Pipeline) Enqueue(ctx context.Context, m store.Message, rcpts []store.Recipient, events []store.Event) error {
	if m.Direction != store.Inbound || p.Runner == nil || len(p.Runner.Stages) == 0 {
		return p.Queue.Enqueue(ctx, m, rcpts, events)
	}
	log := p.Log.With("id", m.ID, "tenant", m.TenantID)
	env, settings, err := p.envelope(ctx, m, rcpts)
	if err != nil {
		return err
	}
	pm := &policy.Message{Env: env, Size: m.Size, Open: func() (io.ReadCloser, error) { return p.Spool.Open(m.BlobKey) }}
	findings, verdicts := p.Runner.Run(ctx, pm, settings)
	if len(p.Post) > 0 {
		for _, ps := range p.Post {
			findings = append(findings, ps.Findings(ctx, pm, findings, settings)...)
		}
		verdicts = policy.Resolve(env.Rcpts, findings)
	}
	if p.AfterVerdict != nil {
		defer p.AfterVerdict(context.WithoutCancel(ctx), m, env, settings, findings, verdicts)
	}
	now := p.Clock.Now()
	if p.Intercept != nil {
		for i := range verdicts {
			v := &verdicts[i]
			if v.Action == policy.TempFail || v.Action == policy.Reject {
				continue
			}
			if what, ok := p.Intercept(ctx, m, env, v.Rcpt, settings.ForRcpt(v.Rcpt), findings); ok {
				v.Action = policy.Discard
				v.Decider = &policy.Finding{Check: "feedback", Symbol: "FEEDBACK", Reason: what}
			}
		}
	}

	// One temporary failure defers the whole message: the client retries
	// all recipients, so nobody gets a copy judged without the failed check.
	for i := range verdicts {
		if verdicts[i].Action == policy.TempFail {
			log.Warn("message deferred by policy", "reason", verdicts[i].Decider.Reason)
			return reply(verdicts[i].Decider, 451, "4.7.0")
		}
	}
	allReject := true
	for i := range verdicts {
		if verdicts[i].Action != policy.Reject {
			allReject = false
		}
	}
	if allReject {
		d := verdicts[0].Decider
		log.Info("message rejected by policy", "symbol", d.Symbol, "reason", d.Reason)
		p.recordRejection(ctx, m, rcpts, events, verdicts, now)
		return reply(d, 550, "5.7.1")
	}

	prefix := p.prefix(findings)
	// A full quarantine must not lose the message: SMTP has one reply to
	// DATA, so the whole message is deferred (RFC 5321 4.2.2, 4.2.2 mailbox
	// full) and the sender's retries, or finally its bounce, tell the sender
	// (seed 003 ※5). Recipients whose copy is delivered wait for the retry.
	if p.Quota != nil {
		for i := range verdicts {
			if verdicts[i].Action != policy.Quarantine {
				continue
			}
			rcpt := verdicts[i].Rcpt
			ok, err := p.Quota.Fits(ctx, m.TenantID, rcpt, m.Size+int64(len(prefix)), settings.ForRcpt(rcpt))
			if err != nil {
				return err
			}
			if !ok {
				log.Info("message deferred: quarantine full", "rcpt", rcpt)
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "Mailbox quarantine full for <" + sanitizeValue(rcpt) + ">, try again later"}
			}
		}
	}
	// Our own verdict header names in the message as received are forgeries
	// (a Google inbound-gateway rule may read X-Mailgate-Spam): every copy
	// is then rewritten without them.
	var remove []string
	if parsed, err := pm.Parsed(ctx); err == nil && hasOwnHeaders(parsed.Header) {
		remove = []string{ownHeaderPrefix + "*"}
	}
	verdictEvents := make([]store.Event, 0, len(verdicts))
	for _, v := range verdicts {
		verdictEvents = append(verdictEvents, store.Event{MessageID: m.ID, TenantID: m.TenantID, At: now, Kind: "verdict",
			Rcpt: v.Rcpt, Detail: describe(v)})
	}

	// Recipients whose copy is the original, untouched (headers in front).
	var asIs []int
	// Groups of recipients sharing a rewritten copy.
	variants := map[string][]int{}
	var variantKeys []string
	var quarantined []int
	for i := range verdicts {
		v := &verdicts[i]
		switch {
		case v.Action == policy.Quarantine:
			quarantined = append(quarantined, i)
			rcpts[i].State = store.Quarantined
		case v.Action == policy.Discard:
			rcpts[i].State = store.Discarded
		case v.Action == policy.Reject:
			rcpts[i].State = store.Rejected
		case needsRewrite(v) || remove != nil:
			k := variantKey(v)
			if _, ok := variants[k]; !ok {
				variantKeys = append(variantKeys, k)
			}
			variants[k] = append(variants[k], i)
			rcpts[i].State = store.Split
		default:
			asIs = append(asIs, i)
		}
	}

	// Make every copy durable first.
	type copyJob struct {
		id   string
		blob *spool.Writer
		idx  []int
	}
	var copies []copyJob
	defer func() {
		for _, c := range copies {
			if c.blob != nil {
				c.blob.Abort()
			}
		}
	}()
	for n, k := range variantKeys {
		idx := variants[k]
		id := fmt.Sprintf("%s-%d", m.ID, n+1)
		w, err := p.writeVariant(ctx, m, id, &verdicts[idx[0]], remove)
		if err != nil {
			log.Error("rewriting a copy failed", "err", err)
			return err
		}
		copies = append(copies, copyJob{id: id, blob: w, idx: idx})
	}
	var qItems []store.QuarantineItem
	fromHdr := ""
	if len(quarantined) > 0 {
		// The decoded From is kept with each copy: the console, digests and
		// block/allow actions show and use it without reopening the blob.
		if parsed, err := pm.Parsed(ctx); err == nil && len(parsed.From) > 0 {
			fromHdr = formatFrom(parsed.From[0])
		}
	}
	for _, i := range quarantined {
		it, err := p.quarantineCopy(ctx, m, prefix, &verdicts[i], settings.ForRcpt(verdicts[i].Rcpt), now)
		if err != nil {
			log.Error("quarantine copy failed", "err", err)
			return err
		}
		it.FromHdr = fromHdr
		qItems = append(qItems, it)
	}

	// The original message row carries every recipient's outcome.
	m.Prefix = prefix
	for _, c := range copies {
		for _, i := range c.idx {
			verdictEvents = append(verdictEvents, store.Event{MessageID: m.ID, TenantID: m.TenantID, At: now, Kind: "copy",
				Rcpt: rcpts[i].Addr, Detail: "modified copy queued as " + c.id})
		}
	}
	if err := p.Queue.Enqueue(ctx, m, rcpts, append(events, verdictEvents...)); err != nil {
		return err
	}
	for _, it := range qItems {
		ev := store.Event{MessageID: m.ID, TenantID: m.TenantID, At: now, Kind: "quarantined", Rcpt: it.Rcpt,
			Detail: "quarantined as " + it.ID + ": " + it.Reasons}
		if err := p.Store.AddQuarantine(ctx, it, ev); err != nil {
			return fmt.Errorf("quarantine: %w", err)
		}
		if p.Quota != nil {
			p.Quota.Stored(ctx, it, settings.ForRcpt(it.Rcpt))
		}
	}
	for _, c := range copies {
		vm := m
		vm.ID, vm.BlobKey, vm.Size, vm.Prefix = c.id, c.id, c.blob.Size(), prefix
		var vr []store.Recipient
		for _, i := range c.idx {
			r := rcpts[i]
			r.State, r.ID = store.Queued, 0
			vr = append(vr, r)
		}
		ev := []store.Event{{MessageID: c.id, TenantID: m.TenantID, At: now, Kind: "received", Remote: "local",
			Detail: "modified copy of " + m.ID + ": " + describe(verdicts[c.idx[0]])}}
		if err := p.Queue.Enqueue(ctx, vm, vr, ev); err != nil {
			return err
		}
	}
	for i := range copies {
		copies[i].blob = nil // committed: keep
	}
	if len(asIs) == 0 {
		// Nobody gets the original bytes: the row stays for tracking only.
		p.Spool.Remove(m.BlobKey)
	}
	return nil
}

// recordRejection keeps a message refused for every recipient in tracking
// and reports: a row already done, with no blob (smtpin removes it), every
// recipient Rejected and a "rejected" event with the reason. Recovery and
// delivery never see it (not pending, nothing queued). A failure is only
// logged: the client gets its 550 either way.
func (p *Pipeline) recordRejection(ctx context.Context, m store.Message, rcpts []store.Recipient, events []store.Event, verdicts []policy.Verdict, now time.Time) {
	m.Done, m.BlobKey, m.Prefix = true, "", ""
	rs := make([]store.Recipient, len(rcpts))
	evs := append([]store.Event(nil), events...)
	for i, r := range rcpts {
		r.State, r.LeaseOwner, r.LeaseUntil = store.Rejected, "", time.Time{}
		rs[i] = r
		evs = append(evs, store.Event{MessageID: m.ID, TenantID: m.TenantID, At: now, Kind: "rejected", Rcpt: r.Addr, Detail: describe(verdicts[i])})
	}
	if err := p.Queue.Enqueue(ctx, m, rs, evs); err != nil {
		p.Log.Error("recording a rejected message failed", "id", m.ID, "err", err)
	}
}

func reply(d *policy.Finding, code int, enhanced string) error {
	if d.Code != 0 {
		code = d.Code
	}
	if d.Enhanced != "" {
		enhanced = d.Enhanced
	}
	text := d.Public
	if text == "" {
		text = "Message refused by policy"
		if code/100 == 4 {
			text = "Message cannot be accepted now, please try again later"
		}
	}
	var ec smtp.EnhancedCode
	fmt.Sscanf(enhanced, "%d.%d.%d", &ec[0], &ec[1], &ec[2])
	return &smtp.SMTPError{Code: code, EnhancedCode: ec, Message: text}
}

// ownHeaderPrefix starts the names of the headers mailgate adds.
const ownHeaderPrefix = "X-Mailgate-"

func hasOwnHeaders(h []mailtext.HeaderField) bool {
	for _, f := range h {
		if len(f.Name) >= len(ownHeaderPrefix) && strings.EqualFold(f.Name[:len(ownHeaderPrefix)], ownHeaderPrefix) {
			return true
		}
	}
	return false
}

func needsRewrite(v *policy.Verdict) bool {
	return v.TagText != "" || v.Banner != "" || len(v.Strip) > 0
}

func variantKey(v *policy.Verdict) string {
	return v.TagText + "\x00" + v.Banner + "\x00" + strings.Join(v.Strip, ",")
}

// describe summarises a verdict for tracking: action and the symbols that led to it.
func describe(v policy.Verdict) string {
	var syms []string
	seen := map[string]bool{}
	for _, f := range v.Findings {
		if f.Symbol != "" && !seen[f.Symbol] {
			seen[f.Symbol] = true
			s := f.Symbol
			if f.Score != 0 {
				s += fmt.Sprintf("(%.1f)", f.Score)
			}
			syms = append(syms, s)
		}
	}
	out := v.Action.String()
	if v.Decider != nil && v.Decider.Reason != "" {
		out += ": " + v.Decider.Reason
	}
	if len(syms) > 0 {
		out += " [" + strings.Join(syms, " ") + "]"
	}
	return out
}

// prefix builds the header lines every delivered copy gets: one
// Authentication-Results header and the checks' own headers, deduplicated.
func (p *Pipeline) prefix(findings []policy.Finding) string {
	var b strings.Builder
	var results []string
	for _, f := range findings {
		if f.AuthResult != "" {
			results = append(results, f.AuthResult)
		}
	}
	if len(results) > 0 {
		b.WriteString("Authentication-Results: " + p.Hostname)
		for _, r := range results {
			b.WriteString(";\r\n\t" + r)
		}
		b.WriteString("\r\n")
	}
	seen := map[string]bool{}
	for _, f := range findings {
		for _, h := range f.Headers {
			line := sanitizeHeader(h.Name) + ": " + sanitizeValue(h.Value)
			if !seen[line] {
				seen[line] = true
				b.WriteString(line + "\r\n")
			}
		}
	}
	return b.String()
}

func sanitizeHeader(n string) string {
	var b strings.Builder
	for _, c := range n {
		if c > 32 && c < 127 && c != ':' {
			b.WriteRune(c)
		}
	}
	return b.String()
}

func sanitizeValue(v string) string {
	v = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == 0 {
			return ' '
		}
		return r
	}, v)
	if len(v) > 900 {
		v = v[:900]
	}
	return v
}

func (p *Pipeline) writeVariant(ctx context.Context, m store.Message, id string, v *policy.Verdict, remove []string) (*spool.Writer, error) {
	if p.Rewrite == nil {
		return nil, fmt.Errorf("no rewriter configured")
	}
	src, err := p.Spool.Open(m.BlobKey)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	w, err := p.Spool.Create(id)
	if err != nil {
		return nil, err
	}
	if err := p.Rewrite(ctx, w, src, v, remove); err != nil {
		w.Abort()
		return nil, fmt.Errorf("rewrite: %w", err)
	}
	if err := w.Commit(); err != nil {
		return nil, err
	}
	return w, nil
}

// formatFrom renders a decoded mailbox as a From header value, quoting the
// display name and dropping control characters (it is shown in the console
// and parsed again for allow/block actions).
func formatFrom(a mailtext.Address) string {
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f || r == '"' || r == '\\' {
				return -1
			}
			return r
		}, s)
	}
	addr := clean(a.Addr)
	if strings.ContainsAny(addr, " <>") {
		return ""
	}
	if name := strings.TrimSpace(clean(a.Name)); name != "" {
		return `"` + name + `" <` + addr + ">"
	}
	return "<" + addr + ">"
}

func (p *Pipeline) quarantineCopy(ctx context.Context, m store.Message, prefix string, v *policy.Verdict, s policy.Settings, now time.Time) (store.QuarantineItem, error) {
	id := store.NewMessageID(now)
	src, err := p.Spool.Open(m.BlobKey)
	if err != nil {
		return store.QuarantineItem{}, err
	}
	defer src.Close()
	w, err := p.Quarantine.Create(id)
	if err != nil {
		return store.QuarantineItem{}, err
	}
	if _, err := io.Copy(w, io.MultiReader(strings.NewReader(prefix), src)); err != nil {
		w.Abort()
		return store.QuarantineItem{}, err
	}
	if err := w.Commit(); err != nil {
		return store.QuarantineItem{}, err
	}
	var score float64
	for _, f := range v.Findings {
		score += f.Score
	}
	days := quarantine.RetentionDays(s)
	return store.QuarantineItem{ID: id, TenantID: m.TenantID, Rcpt: v.Rcpt, MessageID: m.ID, BlobKey: id, MailFrom: m.MailFrom,
		Subject: m.Subject, Size: w.Size(), Score: score, Reasons: describe(*v), Created: now,
		Expires: now.Add(time.Duration(days) * 24 * time.Hour), State: store.QHeld}, nil
}

// envelope builds the policy envelope and the per-recipient settings.
// SettingsFor returns the policy values that apply to one address of a
// tenant (address, its groups, its domain, the tenant; most specific wins),
// as the checks would see them for a message to it.
func (p *Pipeline) SettingsFor(ctx context.Context, tenantID int64, address string) (policy.Settings, error) {
	_, per, err := p.envelope(ctx, store.Message{TenantID: tenantID}, []store.Recipient{{Addr: address}})
	if err != nil {
		return nil, err
	}
	return per.ForRcpt(address), nil
}

func (p *Pipeline) envelope(ctx context.Context, m store.Message, rcpts []store.Recipient) (*policy.Envelope, policy.PerRcpt, error) {
	env := &policy.Envelope{TenantID: m.TenantID, Helo: m.Helo, TLS: m.TLS, AuthUser: m.AuthUser, MailFrom: m.MailFrom}
	env.ClientIP, _ = netip.ParseAddr(m.ClientIP)
	settings, err := p.Store.Settings(ctx, m.TenantID)
	if err != nil {
		return nil, policy.PerRcpt{}, fmt.Errorf("settings: %w", err)
	}
	groups, err := p.Store.Groups(ctx, m.TenantID)
	if err != nil {
		return nil, policy.PerRcpt{}, fmt.Errorf("groups: %w", err)
	}
	layers := map[string]map[string]string{} // "scope\x00owner" → values
	for _, s := range settings {
		k := s.Scope + "\x00" + s.Owner
		if layers[k] == nil {
			layers[k] = map[string]string{}
		}
		layers[k][s.Key] = s.Value
	}
	memberOf := map[string][]string{}
	for _, g := range groups {
		for _, a := range g.Members {
			memberOf[a] = append(memberOf[a], g.Name)
		}
	}
	tenant := layers[store.ScopeTenant+"\x00"]
	per := policy.PerRcpt{Rcpt: map[string]policy.Settings{}}
	for _, r := range rcpts {
		key := strings.ToLower(r.Addr)
		dom := key[strings.LastIndexByte(key, '@')+1:]
		gs := memberOf[key]
		sort.Strings(gs)
		env.Rcpts = append(env.Rcpts, policy.Rcpt{Addr: r.Addr, Domain: dom, Groups: gs})
		l := policy.Layered{layers[store.ScopeAddress+"\x00"+key]}
		for _, g := range gs {
			l = append(l, layers[store.ScopeGroup+"\x00"+g])
		}
		l = append(l, layers[store.ScopeDomain+"\x00"+dom], tenant)
		per.Rcpt[r.Addr] = l
	}
	if len(env.Rcpts) > 0 {
		per.Message = policy.Layered{layers[store.ScopeDomain+"\x00"+env.Rcpts[0].Domain], tenant}
	} else {
		per.Message = policy.Layered{tenant}
	}
	if err := p.trustedHop(ctx, m, env); err != nil {
		return nil, per, err
	}
	return env, per, nil
}
