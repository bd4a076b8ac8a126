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
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/quarantine"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/versioned"
)

// Queue is what the pipeline needs of the queue: one commit of everything
// a message becomes (queue.Queue.Accept).
type Queue interface {
	Accept(ctx context.Context, a store.Acceptance) error
}

// PostStage runs after the checks with all their findings.
type PostStage interface {
	Findings(ctx context.Context, m *policy.Message, findings []policy.Finding, s policy.RcptSettings) []policy.Finding
}

// Rewriter writes a modified copy of a message (package rewrite): the
// verdict's Subject tag, banner and removed parts, without the named header
// fields (a name ending in "*" is a prefix).
type Rewriter func(ctx context.Context, w io.Writer, r io.Reader, v *policy.Verdict, removeHeaders []string) error

// Interception is work mailgate does with a recipient's copy instead of
// delivering it (learning from a feedback mail). It runs only after the
// message is committed, so a failed accept that the client retries never
// does it twice; its result text goes to tracking.
type Interception func(ctx context.Context) string

// Pipeline is the inbound stage.
type Pipeline struct {
	Store      Store
	Spool      blob.Store // queue blobs
	Quarantine blob.Store // quarantine copies
	Queue      Queue
	Runner     *policy.Runner
	// Post stages see every check's findings once all have run (the spam
	// score combines them) and add findings of their own.
	Post     []PostStage
	Rewrite  Rewriter
	Hostname string
	Clock    clock.Clock
	Log      *slog.Logger
	// Intercept, when set, may claim a recipient's copy for mailgate itself
	// (the spam feedback addresses): the copy is then not delivered, what
	// goes to tracking now is the first result, and the returned work runs
	// after the commit. It must not change anything itself.
	Intercept func(ctx context.Context, m store.Message, env *policy.Envelope, rcpt string, s policy.Settings, findings []policy.Finding) (string, Interception, bool)
	// AfterVerdict, when set, is called with the findings of every message
	// that was committed or finally refused (notifications, sender
	// history, reputation); never for a temporary failure, which the client
	// retries.
	AfterVerdict func(ctx context.Context, m store.Message, env *policy.Envelope, settings policy.RcptSettings, findings []policy.Finding, verdicts []policy.Verdict)
	// Quota, when set, is each recipient's quarantine capacity
	// (quarantine.Manager).
	Quota QuarantineQuota
	// Seal, when set, returns the ARC set to put above a copy read from r
	// (the copy exactly as delivered below the set), recording results,
	// the checks' authentication results (auth.Sealer).
	Seal func(ctx context.Context, r io.Reader, results []string) (string, error)

	policies versioned.Cache[*tenantPolicy] // each tenant's policy per policy version
}

// QuarantineQuota is the per-address quarantine capacity: Limit is the
// capacity in bytes (0 = none) that the accept transaction enforces, Stored
// is told after a copy is committed (the 80% warning).
type QuarantineQuota interface {
	Limit(s policy.Settings) int64
	Stored(ctx context.Context, it store.QuarantineItem, s policy.Settings)
}

// commitTimeout bounds the accept transaction. The commit runs on its own
// deadline: checks that used up the scanning budget must not make a
// message that passed them fail to commit.
const commitTimeout = 30 * time.Second

// judged is a message with its checks' results.
type judged struct {
	m        store.Message
	env      *policy.Envelope
	settings policy.RcptSettings
	pm       *policy.Message
	findings []policy.Finding
	verdicts []policy.Verdict
	// intercepted: work to run after the commit, by recipient index.
	intercepted map[int]Interception
}

// plan is what happens to each recipient's copy.
type plan struct {
	prefix string
	remove []string // own header names to strip from every copy (forgeries)
	asIs   []int    // recipients getting the original bytes
	// variants: groups of recipients sharing one rewritten copy, in order.
	variants    [][]int
	quarantined []int
}

// copyBlob is a durable blob written for this accept (a rewritten copy or
// a quarantine copy); it is removed unless the accept commits.
type copyBlob struct {
	bs  blob.Store
	key string
}

// Enqueue checks an inbound message and queues, quarantines or refuses each
// recipient's copy. Everything the message becomes (the original row with
// every recipient's outcome, each rewritten copy, each quarantine copy) is
// committed in one transaction after the blobs are durable, or nothing is:
// on any error the blobs written here are removed and the caller answers
// with a temporary failure, so a retry can never deliver a copy twice.
// Outbound messages pass straight to the queue.
func (p *Pipeline) Enqueue(ctx context.Context, m store.Message, rcpts []store.Recipient, events []store.Event) error {
	if m.Direction != store.Inbound || p.Runner == nil || len(p.Runner.Stages) == 0 {
		return p.commit(ctx, store.Acceptance{Queue: []store.QueuedMessage{{Message: m, Recipients: rcpts, Events: events}}})
	}
	log := p.Log.With("id", m.ID, "tenant", m.TenantID)
	j, err := p.judge(ctx, m, rcpts)
	if err != nil {
		return err
	}
	now := p.Clock.Now()
	if err := p.refusal(ctx, log, j, rcpts, events, now); err != nil {
		return err
	}
	pl := p.plan(ctx, j, rcpts)
	var blobs []copyBlob
	committed := false
	defer func() {
		if !committed {
			dctx := context.WithoutCancel(ctx)
			for _, b := range blobs {
				if err := b.bs.Delete(dctx, b.key); err != nil {
					log.Warn("removing a copy of a message not accepted", "key", b.key, "err", err)
				}
			}
		}
	}()
	acc, blobs, err := p.writeCopies(ctx, log, j, pl, rcpts, events, now)
	if err != nil {
		return err
	}
	if err := p.commit(ctx, acc); err != nil {
		if errors.Is(err, store.ErrQuotaFull) {
			// SMTP has one reply to DATA: the whole message waits (RFC 5321
			// 4.2.2 mailbox full), so nothing is dropped, and the sender's
			// retries, or finally its bounce, tell the sender.
			log.Info("message deferred: quarantine full", "err", err)
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "Mailbox quarantine full, try again later"}
		}
		return err
	}
	committed = true
	p.afterCommit(ctx, log, j, pl, acc, now)
	return nil
}

// commit runs the accept transaction on its own deadline, unless the
// client is already gone (then nobody would hear the 250).
func (p *Pipeline) commit(ctx context.Context, a store.Acceptance) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("accept: %w", ctx.Err())
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	return p.Queue.Accept(cctx, a)
}

// judge runs the checks and post stages and resolves per-recipient
// verdicts; intercepted recipients become Discard.
func (p *Pipeline) judge(ctx context.Context, m store.Message, rcpts []store.Recipient) (*judged, error) {
	env, settings, err := p.envelope(ctx, m, rcpts)
	if err != nil {
		return nil, err
	}
	j := &judged{m: m, env: env, settings: settings}
	mb := newMemBlob(func() (io.ReadCloser, error) { return p.Spool.Open(ctx, m.BlobKey) }, m.Size, blob.Written(ctx, m.BlobKey))
	j.pm = &policy.Message{Env: env, Size: m.Size, Open: mb.Open}
	j.findings, j.verdicts = p.Runner.Run(ctx, j.pm, settings)
	if len(p.Post) > 0 {
		for _, ps := range p.Post {
			j.findings = append(j.findings, ps.Findings(ctx, j.pm, j.findings, settings)...)
		}
		j.verdicts = policy.Resolve(env.Rcpts, j.findings)
	}
	if p.Intercept != nil {
		for i := range j.verdicts {
			v := &j.verdicts[i]
			if v.Action == policy.TempFail || v.Action == policy.Reject {
				continue
			}
			if what, work, ok := p.Intercept(ctx, m, env, v.Rcpt, settings.ForRcpt(v.Rcpt), j.findings); ok {
				v.Action = policy.Discard
				v.Decider = &policy.Finding{Check: "feedback", Symbol: "FEEDBACK", Reason: what}
				if work != nil {
					if j.intercepted == nil {
						j.intercepted = map[int]Interception{}
					}
					j.intercepted[i] = work
				}
			}
		}
	}
	return j, nil
}

// refusal answers for the whole message when it cannot be accepted: one
// temporary failure defers it (the client retries every recipient, so
// nobody gets a copy judged without the failed check); when every
// recipient rejects, it is refused and kept in tracking.
func (p *Pipeline) refusal(ctx context.Context, log *slog.Logger, j *judged, rcpts []store.Recipient, events []store.Event, now time.Time) error {
	for i := range j.verdicts {
		if j.verdicts[i].Action == policy.TempFail {
			log.Warn("message deferred by policy", "reason", j.verdicts[i].Decider.Reason)
			return policy.Refusal(j.verdicts[i].Decider, 451, "4.7.0")
		}
	}
	for i := range j.verdicts {
		if j.verdicts[i].Action != policy.Reject {
			return nil
		}
	}
	d := j.verdicts[0].Decider
	log.Info("message rejected by policy", "symbol", d.Symbol, "reason", d.Reason)
	p.recordRejection(ctx, j.m, rcpts, events, j.verdicts, now)
	p.afterVerdict(ctx, j)
	return policy.Refusal(d, 550, "5.7.1")
}

// plan sorts the recipients by what their copy is and sets each
// recipient's state on the original row.
func (p *Pipeline) plan(ctx context.Context, j *judged, rcpts []store.Recipient) *plan {
	pl := &plan{prefix: p.prefix(j.findings)}
	// Our own verdict header names in the message as received are forgeries
	// (a Google inbound-gateway rule may read X-Mailgate-Spam): every copy
	// is then rewritten without them.
	if parsed, err := j.pm.Parsed(ctx); err == nil && hasOwnHeaders(parsed.Header) {
		pl.remove = []string{ownHeaderPrefix + "*"}
	}
	byKey := map[string]int{}
	for i := range j.verdicts {
		v := &j.verdicts[i]
		switch {
		case v.Action == policy.Quarantine:
			pl.quarantined = append(pl.quarantined, i)
			rcpts[i].State = store.Quarantined
		case v.Action == policy.Discard:
			rcpts[i].State = store.Discarded
		case v.Action == policy.Reject:
			rcpts[i].State = store.Rejected
		case needsRewrite(v) || pl.remove != nil:
			k := variantKey(v)
			n, ok := byKey[k]
			if !ok {
				n = len(pl.variants)
				byKey[k] = n
				pl.variants = append(pl.variants, nil)
			}
			pl.variants[n] = append(pl.variants[n], i)
			rcpts[i].State = store.Split
		default:
			pl.asIs = append(pl.asIs, i)
		}
	}
	return pl
}

// writeCopies makes every rewritten and quarantine copy durable and builds
// the acceptance that references them. The blobs written so far are
// returned even with an error, for the caller to remove.
func (p *Pipeline) writeCopies(ctx context.Context, log *slog.Logger, j *judged, pl *plan, rcpts []store.Recipient, events []store.Event, now time.Time) (store.Acceptance, []copyBlob, error) {
	m := j.m
	var acc store.Acceptance
	var blobs []copyBlob
	evs := append([]store.Event(nil), events...)
	for _, v := range j.verdicts {
		evs = append(evs, store.Event{MessageID: m.ID, TenantID: m.TenantID, At: now, Kind: "verdict", Rcpt: v.Rcpt, Detail: describe(v)})
	}
	var copies []store.QueuedMessage
	for n, idx := range pl.variants {
		id := fmt.Sprintf("%s-%d", m.ID, n+1)
		key, size, err := p.writeVariant(ctx, m, id, &j.verdicts[idx[0]], pl.remove)
		if err != nil {
			log.Error("rewriting a copy failed", "err", err)
			return acc, blobs, err
		}
		blobs = append(blobs, copyBlob{p.Spool, key})
		vm := m
		vm.ID, vm.BlobKey, vm.Size, vm.Prefix = id, key, size, p.sealed(ctx, log, key, pl.prefix, j.findings)
		var vr []store.Recipient
		for _, i := range idx {
			r := rcpts[i]
			r.State, r.ID = store.Queued, 0
			vr = append(vr, r)
			evs = append(evs, store.Event{MessageID: m.ID, TenantID: m.TenantID, At: now, Kind: "copy",
				Rcpt: rcpts[i].Addr, Detail: "modified copy queued as " + id})
		}
		copies = append(copies, store.QueuedMessage{Message: vm, Recipients: vr,
			Events: []store.Event{{MessageID: id, TenantID: m.TenantID, At: now, Kind: "received", Remote: "local",
				Detail: "modified copy of " + m.ID + ": " + describe(j.verdicts[idx[0]])}}})
	}
	// The original's copies (as-is and quarantined) share one seal: they
	// are the same bytes, prefix then the original blob.
	origPrefix := pl.prefix
	if len(pl.asIs) > 0 || len(pl.quarantined) > 0 {
		origPrefix = p.sealed(ctx, log, m.BlobKey, pl.prefix, j.findings)
	}
	fromHdr := ""
	if len(pl.quarantined) > 0 {
		// The decoded From is kept with each copy: the console, digests and
		// block/allow actions show and use it without reopening the blob.
		if parsed, err := j.pm.Parsed(ctx); err == nil && len(parsed.From) > 0 {
			fromHdr = formatFrom(parsed.From[0])
		}
	}
	for _, i := range pl.quarantined {
		s := j.settings.ForRcpt(j.verdicts[i].Rcpt)
		it, err := p.quarantineCopy(ctx, m, origPrefix, &j.verdicts[i], s, now)
		if it.BlobKey != "" {
			blobs = append(blobs, copyBlob{p.Quarantine, it.BlobKey})
		}
		if err != nil {
			log.Error("quarantine copy failed", "err", err)
			return acc, blobs, err
		}
		it.FromHdr = fromHdr
		c := store.QuarantinedCopy{Item: it, Event: store.Event{MessageID: m.ID, TenantID: m.TenantID, At: now, Kind: "quarantined",
			Rcpt: it.Rcpt, Detail: "quarantined as " + it.ID + ": " + it.Reasons}}
		if p.Quota != nil {
			c.QuotaBytes = p.Quota.Limit(s)
		}
		acc.Quarantine = append(acc.Quarantine, c)
	}
	// The original message row carries every recipient's outcome.
	m.Prefix = pl.prefix
	if len(pl.asIs) > 0 {
		m.Prefix = origPrefix
	}
	acc.Queue = append([]store.QueuedMessage{{Message: m, Recipients: rcpts, Events: evs}}, copies...)
	return acc, blobs, nil
}

// afterCommit does what follows a committed accept: the original blob goes
// when nobody gets its bytes, capacity warnings, intercepted work and the
// verdict hook. Failures here are logged: the message is safe.
func (p *Pipeline) afterCommit(ctx context.Context, log *slog.Logger, j *judged, pl *plan, acc store.Acceptance, now time.Time) {
	ctx = context.WithoutCancel(ctx)
	// Intercepted work reads the original blob: it runs before the blob
	// may go.
	var evs []store.Event
	for i := range j.verdicts {
		if work := j.intercepted[i]; work != nil {
			evs = append(evs, store.Event{MessageID: j.m.ID, TenantID: j.m.TenantID, At: now, Kind: "feedback",
				Rcpt: j.verdicts[i].Rcpt, Detail: work(ctx)})
		}
	}
	if len(evs) > 0 {
		if err := p.Store.AddEvents(ctx, evs); err != nil {
			log.Warn("tracking feedback", "err", err)
		}
	}
	if len(pl.asIs) == 0 {
		// Nobody gets the original bytes: the row stays for tracking only.
		if err := p.Spool.Delete(ctx, j.m.BlobKey); err != nil {
			log.Warn("removing the original blob", "err", err)
		}
	}
	if p.Quota != nil {
		for _, c := range acc.Quarantine {
			p.Quota.Stored(ctx, c.Item, j.settings.ForRcpt(c.Item.Rcpt))
		}
	}
	p.afterVerdict(ctx, j)
}

func (p *Pipeline) afterVerdict(ctx context.Context, j *judged) {
	if p.AfterVerdict != nil {
		p.AfterVerdict(context.WithoutCancel(ctx), j.m, j.env, j.settings, j.findings, j.verdicts)
	}
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
	if err := p.commit(ctx, store.Acceptance{Queue: []store.QueuedMessage{{Message: m, Recipients: rs, Events: evs}}}); err != nil {
		p.Log.Error("recording a rejected message failed", "id", m.ID, "err", err)
	}
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

// authResults are the checks' results for Authentication-Results.
func authResults(findings []policy.Finding) []string {
	var results []string
	for _, f := range findings {
		if f.AuthResult != "" {
			results = append(results, f.AuthResult)
		}
	}
	return results
}

// sealed returns prefix with an ARC set above it, sealed over the copy
// stored under key as it will be delivered: prefix, then the blob. Sealing
// is best effort: a copy that cannot be sealed is delivered as it is, and
// the failure is logged.
func (p *Pipeline) sealed(ctx context.Context, log *slog.Logger, key, prefix string, findings []policy.Finding) string {
	if p.Seal == nil {
		return prefix
	}
	rc, err := p.Spool.Open(ctx, key)
	if err != nil {
		log.Warn("ARC sealing: reading the copy failed; delivered unsealed", "err", err)
		return prefix
	}
	defer rc.Close()
	set, err := p.Seal(ctx, io.MultiReader(strings.NewReader(prefix), rc), authResults(findings))
	if err != nil {
		log.Warn("ARC sealing failed; delivered unsealed", "err", err)
		return prefix
	}
	return set + prefix
}

// prefix builds the header lines every delivered copy gets: one
// Authentication-Results header and the checks' own headers, deduplicated.
func (p *Pipeline) prefix(findings []policy.Finding) string {
	var b strings.Builder
	results := authResults(findings)
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

// writeVariant writes a rewritten copy durably under id and returns its
// blob key and size.
func (p *Pipeline) writeVariant(ctx context.Context, m store.Message, id string, v *policy.Verdict, remove []string) (string, int64, error) {
	if p.Rewrite == nil {
		return "", 0, fmt.Errorf("no rewriter configured")
	}
	src, err := p.Spool.Open(ctx, m.BlobKey)
	if err != nil {
		return "", 0, err
	}
	defer src.Close()
	w, err := p.Spool.Create(ctx, id)
	if err != nil {
		return "", 0, err
	}
	if err := p.Rewrite(ctx, w, src, v, remove); err != nil {
		w.Abort()
		return "", 0, fmt.Errorf("rewrite: %w", err)
	}
	if err := w.Commit(ctx); err != nil {
		return "", 0, err
	}
	return w.Key(), w.Size(), nil
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
	src, err := p.Spool.Open(ctx, m.BlobKey)
	if err != nil {
		return store.QuarantineItem{}, err
	}
	defer src.Close()
	w, err := p.Quarantine.Create(ctx, id)
	if err != nil {
		return store.QuarantineItem{}, err
	}
	if _, err := io.Copy(w, io.MultiReader(strings.NewReader(prefix), src)); err != nil {
		w.Abort()
		return store.QuarantineItem{}, err
	}
	if err := w.Commit(ctx); err != nil {
		return store.QuarantineItem{}, err
	}
	var score float64
	for _, f := range v.Findings {
		score += f.Score
	}
	days := quarantine.RetentionDays(s)
	return store.QuarantineItem{ID: id, TenantID: m.TenantID, Rcpt: v.Rcpt, MessageID: m.ID, BlobKey: w.Key(), MailFrom: m.MailFrom,
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
	return p.envelopeWith(ctx, m, rcpts, nil, nil)
}

// envelopeWith is envelope for a message read through open (nil: the
// spool blob) under the tenant's settings as change returns them (nil:
// as stored).
func (p *Pipeline) envelopeWith(ctx context.Context, m store.Message, rcpts []store.Recipient, open func() (io.ReadCloser, error), change func([]store.Setting) []store.Setting) (*policy.Envelope, policy.PerRcpt, error) {
	env := &policy.Envelope{TenantID: m.TenantID, Helo: m.Helo, TLS: m.TLS, AuthUser: m.AuthUser, MailFrom: m.MailFrom}
	env.ClientIP, _ = netip.ParseAddr(m.ClientIP)
	tp, err := p.policy(ctx, m.TenantID)
	if err != nil {
		return nil, policy.PerRcpt{}, err
	}
	if change != nil {
		tp = tp.withSettings(change)
	}
	layers, memberOf := tp.layers, tp.memberOf
	tenant := layers.Of(store.ScopeTenant, "")
	per := policy.PerRcpt{Rcpt: map[string]policy.Settings{}}
	for _, r := range rcpts {
		key := strings.ToLower(r.Addr)
		dom := key[strings.LastIndexByte(key, '@')+1:]
		gs := memberOf[key] // sorted; shared with other messages, read only
		env.Rcpts = append(env.Rcpts, policy.Rcpt{Addr: r.Addr, Domain: dom, Groups: gs})
		l := policy.Layered{layers.Of(store.ScopeAddress, key)}
		for _, g := range gs {
			l = append(l, layers.Of(store.ScopeGroup, g))
		}
		l = append(l, layers.Of(store.ScopeDomain, dom), tenant)
		per.Rcpt[r.Addr] = l
	}
	if len(env.Rcpts) > 0 {
		per.Message = policy.Layered{layers.Of(store.ScopeDomain, env.Rcpts[0].Domain), tenant}
	} else {
		per.Message = policy.Layered{tenant}
	}
	if err := p.trustedHop(ctx, m, env, tp.nets, open); err != nil {
		return nil, per, err
	}
	return env, per, nil
}
