// Package outbound is mailgate's outbound protection (情報漏洩対策): the
// pipeline every message of the outbound relay and the submission listener
// goes through before it is accepted, the tenant's rules it applies, and
// the messages it holds for approval (審査) or delays (遅延送信).
//
// The pipeline follows the inbound one's contract (package policy): its
// checks, the rules and the virus scan, run under one policy.Runner with
// one budget, their findings resolve to a verdict, and the verdict decides
// the SMTP reply and what the message becomes. A message that is refused
// (block, virus) is refused during DATA with the reason, and kept in
// tracking; a message that is accepted is committed whole in one
// store.Accept: the message row (its recipients Held when it is held or
// delayed), its rewritten copies, its follow-ups, its hold row and the
// notices to the sender and approvers, or nothing, and only then does the
// client get 250.
//
// Rule evaluation fails closed: a block or hold rule that cannot be
// evaluated completely (the message or an attachment unreadable, the time
// up) holds the message for approval instead of letting it go.
package outbound

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"sort"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/dkimsign"
	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/rewrite"
	"github.com/mailgate/mailgate/internal/signedlink"
	"github.com/mailgate/mailgate/internal/spill"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/versioned"
)

// Queue commits everything a message becomes (queue.Queue.Accept).
type Queue interface {
	Accept(ctx context.Context, a store.Acceptance) error
}

// BodyKeeper is a Queue that takes the bytes of a blob the pipeline
// holds, so that their delivery does not read them back from the spool
// (queue.Queue.Remember).
type BodyKeeper interface {
	Remember(key string, body []byte)
}

// Store is what the pipeline reads and writes besides the queue.
type Store interface {
	PolicyStore
	// PolicyVersion changes with the tenant's settings and groups
	// (store.PolicyStore.PolicyVersion).
	PolicyVersion(ctx context.Context, tenantID int64) (int64, error)
	// The tenants' domains are kept at the store's addressing version.
	store.AddressingStore
	RuleStore
	signedlink.SecretStore
	AddEvents(ctx context.Context, events []store.Event) error
}

// Pipeline is the outbound stage; it implements smtpin.Enqueuer.
type Pipeline struct {
	Store  Store
	Spool  blob.Store
	Queue  Queue
	Engine *Engine
	// AV is the virus scan (package scan/av), nil when none is configured;
	// AVTimeout and AVOnError are its stage's deadline and failure policy.
	AV        policy.BodyCheck
	AVTimeout time.Duration
	AVOnError policy.Action
	// RuleTimeout bounds the rules of one message (default 30 s).
	RuleTimeout time.Duration
	// Budget bounds all checks of one message together.
	Budget time.Duration
	Hooks  Hooks
	// Hostname signs notices; BaseURL is the console's external URL, for
	// the links in them.
	Hostname string
	BaseURL  string
	Zone     *time.Location
	Clock    clock.Clock
	Log      *slog.Logger
	// Judged, when set, is told each checked message's action (metrics).
	Judged func(policy.Action)

	dkimKeys dkimsign.KeyCache            // the signing keys, opened once
	policies versioned.Cache[*tenantData] // the tenants' settings and groups per policy version

	// addressing holds the tenants' domains per addressing version.
	addressing store.AddressingCache
}

// commitTimeout bounds the accept transaction, on its own deadline.
const commitTimeout = 30 * time.Second

func (p *Pipeline) now() time.Time {
	if p.Clock == nil {
		return time.Now()
	}
	return p.Clock.Now()
}

func (p *Pipeline) log() *slog.Logger {
	if p.Log == nil {
		return slog.Default()
	}
	return p.Log
}

// judged is a message with its checks' results.
type judged struct {
	m        store.Message
	rcpts    []store.Recipient
	events   []store.Event
	sp       *senderPolicy
	pm       *policy.Message
	facts    *Facts
	findings []policy.Finding
	verdict  policy.Verdict
	matches  []Match
	// body is the blob as received, read once through its checksum when
	// it is small (memBodyMax); nil: each reader opens the spool.
	body []byte
}

// memBodyMax is the largest message the pipeline keeps in memory while
// it checks, rewrites and signs it: the rules, the header step and the
// signature then read the one copy instead of opening the spool each.
const memBodyMax = 256 << 10

// readSmall returns the blob at key when size is at most memBodyMax: the
// bytes the listener wrote to it when the request carries them
// (blob.Written), else read once through its checksum; nil otherwise, or
// when it cannot be read now (the readers then open the spool and report
// the error themselves).
func (p *Pipeline) readSmall(ctx context.Context, key string, size int64) []byte {
	if size <= 0 || size > memBodyMax {
		return nil
	}
	if b := blob.Written(ctx, key); int64(len(b)) == size {
		// The listener's copy of the bytes it wrote and made durable.
		return b
	}
	r, err := p.Spool.Open(ctx, key)
	if err != nil {
		return nil
	}
	defer r.Close()
	b := bytes.NewBuffer(make([]byte, 0, size+512))
	if _, err := b.ReadFrom(r); err != nil {
		return nil
	}
	return b.Bytes()
}

// open returns the blob at key: from memory when it is the message as
// received and that was read (judged.body).
func (p *Pipeline) open(ctx context.Context, j *judged, key string) (io.ReadCloser, error) {
	if j.body != nil && key == j.m.BlobKey {
		return io.NopCloser(bytes.NewReader(j.body)), nil
	}
	return p.Spool.Open(ctx, key)
}

// Enqueue checks an outbound message and commits, holds, delays or
// refuses it. Messages of other directions go to the queue as they are.
func (p *Pipeline) Enqueue(ctx context.Context, m store.Message, rcpts []store.Recipient, events []store.Event) error {
	if m.Direction != store.Outbound {
		return p.commit(ctx, store.Acceptance{Queue: []store.QueuedMessage{{Message: m, Recipients: rcpts, Events: events}}})
	}
	j, err := p.judge(ctx, m, rcpts, events)
	if err != nil {
		return err
	}
	log := p.log().With("id", m.ID, "tenant", m.TenantID, "sender", j.sp.Address)
	if p.Judged != nil {
		p.Judged(j.verdict.Action)
	}
	switch j.verdict.Action {
	case policy.TempFail:
		log.Warn("outbound message deferred", "reason", j.verdict.Decider.Reason)
		return policy.Refusal(j.verdict.Decider, 451, "4.7.0")
	case policy.Reject, policy.Discard:
		return p.refuse(ctx, log, j)
	}
	return p.accept(ctx, log, j)
}

// senderOf is who sends m: the authenticated user of the submission
// listener, else the From address when it is the tenant's, else the
// envelope sender.
func senderOf(m store.Message, parsed *mailtext.Message, inside func(string) bool) string {
	if strings.Contains(m.AuthUser, "@") {
		return strings.ToLower(m.AuthUser)
	}
	if parsed != nil && len(parsed.From) == 1 && inside(domainOf(parsed.From[0].Addr)) {
		return strings.ToLower(parsed.From[0].Addr)
	}
	return strings.ToLower(m.MailFrom)
}

func (p *Pipeline) judge(ctx context.Context, m store.Message, rcpts []store.Recipient, events []store.Event) (*judged, error) {
	j := &judged{m: m, rcpts: rcpts, events: events}
	j.body = p.readSmall(ctx, m.BlobKey, m.Size)
	j.pm = &policy.Message{Env: &policy.Envelope{TenantID: m.TenantID, Outbound: true, Helo: m.Helo, TLS: m.TLS, AuthUser: m.AuthUser, MailFrom: m.MailFrom},
		Size: m.Size, Open: func() (io.ReadCloser, error) { return p.open(ctx, j, m.BlobKey) }}
	for _, r := range rcpts {
		j.pm.Env.Rcpts = append(j.pm.Env.Rcpts, policy.Rcpt{Addr: r.Addr, Domain: domainOf(r.Addr)})
	}
	// The sender is known from the From header: parse before the checks
	// (they share the parse).
	parsed, _ := j.pm.Parsed(ctx)
	td, err := p.tenant(ctx, m.TenantID)
	if err != nil {
		return nil, err
	}
	sp := td.policy(senderOf(m, parsed, td.policy("").inside))
	j.sp = sp
	j.facts = &Facts{Sender: sp.Sender, MailFrom: m.MailFrom, Size: m.Size, Parsed: parsed, Inside: sp.inside, Open: j.pm.Open}
	for _, r := range rcpts {
		j.facts.Rcpts = append(j.facts.Rcpts, r.Addr)
	}
	rc := &ruleCheck{engine: p.Engine, tenant: m.TenantID, facts: j.facts}
	rt := p.RuleTimeout
	if rt <= 0 {
		rt = 30 * time.Second
	}
	runner := &policy.Runner{Stages: []policy.Stage{{Check: rc, Timeout: rt}}, Budget: p.Budget, Log: p.log()}
	if p.AV != nil {
		runner.Stages = append(runner.Stages, policy.Stage{Check: avCheck{p.AV}, Timeout: p.AVTimeout, OnError: p.AVOnError})
	}
	findings, verdicts := runner.Run(ctx, j.pm, policy.PerRcpt{Message: sp.settings})
	j.findings, j.matches = findings, rc.matches
	if len(verdicts) > 0 {
		j.verdict = verdicts[0]
	}
	return j, nil
}

// refuse answers a blocked message during DATA and keeps it in tracking,
// with the sender's (and, for a virus, the administrator's) notice.
func (p *Pipeline) refuse(ctx context.Context, log *slog.Logger, j *judged) error {
	d := j.verdict.Decider
	now := p.now()
	m := j.m
	m.Done, m.BlobKey, m.Prefix = true, "", ""
	rs := make([]store.Recipient, len(j.rcpts))
	evs := append([]store.Event(nil), j.events...)
	evs = append(evs, store.Event{MessageID: m.ID, TenantID: m.TenantID, At: now, Kind: "verdict", Detail: describe(j.verdict)})
	for i, r := range j.rcpts {
		r.State, r.LeaseOwner, r.LeaseUntil = store.Rejected, "", time.Time{}
		rs[i] = r
		evs = append(evs, store.Event{MessageID: m.ID, TenantID: m.TenantID, At: now, Kind: "blocked", Rcpt: r.Addr, Detail: d.Reason})
	}
	acc := store.Acceptance{Queue: []store.QueuedMessage{{Message: m, Recipients: rs, Events: evs}}}
	virus := d.Symbol == SymVirus
	data := noticeData{ID: j.m.ID, Subject: j.m.Subject, Rcpts: rcptList(j.rcpts), Sender: j.sp.Address, Reason: p.reasonText(j, d)}
	var blobs []string
	add := func(to []string, k noticeKind, nd noticeData) {
		qm, key, err := p.notice(ctx, j.m.TenantID, to, k, j.sp.get(KeyLang), nd, "outbound notice about "+j.m.ID)
		if err != nil {
			log.Warn("outbound notice not written", "err", err)
			return
		}
		blobs = append(blobs, key)
		acc.Queue = append(acc.Queue, qm)
	}
	if j.sp.Address != "" && j.m.MailFrom != "" && (virus || j.sp.get(KeyBlockNotice) != "reply") {
		k := nBlocked
		if virus {
			k = nVirus
		}
		add([]string{j.sp.Address}, k, data)
	}
	if virus {
		if admins := addrList(j.sp.get(KeyAdmin)); len(admins) > 0 {
			add(admins, nVirusAdmin, data)
		}
	}
	if err := p.commit(ctx, acc); err != nil {
		// The client gets its 550 either way; only tracking lost it.
		log.Error("recording a blocked outbound message failed", "err", err)
		p.removeBlobs(ctx, blobs)
	}
	log.Info("outbound message blocked", "symbol", d.Symbol, "reason", d.Reason)
	return policy.Refusal(d, 550, "5.7.1")
}

// reasonText is the reason the sender and approvers read.
func (p *Pipeline) reasonText(j *judged, d *policy.Finding) string {
	if d == nil {
		return ""
	}
	for _, mt := range j.matches {
		if d.Check == checkName && d.Reason == "rule "+fmtQuote(mt.Name)+": "+mt.Why {
			return ruleReason(mt, j.sp.get(KeyLang))
		}
	}
	switch d.Symbol {
	case SymVirus:
		return "ウイルス / virus: " + d.Reason
	case "UNSCANNABLE":
		return "添付ファイルを検査できませんでした / an attachment could not be checked"
	}
	return d.Reason
}

func ruleReason(mt Match, lang string) string {
	r := mt.Spec.Reason
	if lang != "en" && mt.Spec.ReasonJA != "" {
		r = mt.Spec.ReasonJA + " / " + r
	}
	if r == "" || strings.HasPrefix(r, " / ") {
		r = strings.TrimPrefix(r, " / ")
		if r == "" {
			r = mt.Name
		}
	}
	if mt.Unchecked {
		r += " (確認できませんでした / could not be checked: " + mt.Why + ")"
	}
	return r
}

func fmtQuote(s string) string { return fmt.Sprintf("%q", s) }

// plan is what an accepted message becomes.
type plan struct {
	hold       *Match // held for approval by this rule (nil: the scan)
	holdReason string
	delay      time.Duration
	spec       rewrite.Spec
	bcc        []string
	transforms []transformStep
	archive    bool
	notes      []store.Event
}

type transformStep struct {
	action string
	t      Transformer
	params map[string]string
}

func (p *Pipeline) plan(j *judged) *plan {
	pl := &plan{}
	now := p.now()
	note := func(kind, detail string) {
		pl.notes = append(pl.notes, store.Event{MessageID: j.m.ID, TenantID: j.m.TenantID, At: now, Kind: kind, Detail: detail})
	}
	if j.verdict.Action == policy.Quarantine {
		d := j.verdict.Decider
		for i := range j.matches {
			mt := &j.matches[i]
			if mt.Unchecked || mt.Spec.Action == ActHold {
				pl.hold = mt
				break
			}
		}
		pl.holdReason = p.reasonText(j, d)
		if pl.hold != nil {
			pl.holdReason = ruleReason(*pl.hold, j.sp.get(KeyLang))
		}
	}
	if n := positive(j.sp.get(KeyDelayMinutes), 0); n > 0 {
		pl.delay = time.Duration(n) * time.Minute
	}
	seenT := map[string]bool{}
	for _, mt := range j.matches {
		sp := mt.Spec
		switch sp.Action {
		case ActDelay:
			if d := time.Duration(sp.DelayMinutes) * time.Minute; d > pl.delay {
				pl.delay = d
			}
		case ActTag:
			if pl.spec.SubjectTag == "" {
				pl.spec.SubjectTag = sp.Tag
				note("tagged", fmt.Sprintf("subject tagged %q (rule %q)", sp.Tag, mt.Name))
			}
		case ActHeader:
			pl.spec.PrependHeaders = append(pl.spec.PrependHeaders, rewrite.HeaderField{Name: sp.Header, Value: sp.HeaderValue})
			note("header-added", fmt.Sprintf("%s: %s (rule %q)", sp.Header, sp.HeaderValue, mt.Name))
		case ActBcc:
			for _, a := range sp.Bcc {
				a = strings.ToLower(strings.TrimSpace(a))
				if !contains(pl.bcc, a) && !hasRcpt(j.rcpts, a) {
					pl.bcc = append(pl.bcc, a)
				}
			}
		case ActZip, ActLink:
			if seenT[sp.Action] {
				continue
			}
			seenT[sp.Action] = true
			t := p.Hooks.Zip
			if sp.Action == ActLink {
				t = p.Hooks.Link
			}
			if t == nil {
				note("transform-skipped", fmt.Sprintf("rule %q asks for %s, which this node does not offer", mt.Name, sp.Action))
				continue
			}
			pl.transforms = append(pl.transforms, transformStep{action: sp.Action, t: t, params: sp.Params})
		case ActArchive:
			pl.archive = true
		}
	}
	// The zip action first: a link to a ZIP is fine, a ZIP of a link
	// notice is not.
	sort.SliceStable(pl.transforms, func(a, b int) bool { return pl.transforms[a].action == ActZip && pl.transforms[b].action != ActZip })
	if len(pl.bcc) > 0 {
		note("bcc-added", "blind copy to "+strings.Join(pl.bcc, ", "))
	}
	p.bccConversion(j, pl, note)
	return pl
}

func hasRcpt(rs []store.Recipient, a string) bool {
	for _, r := range rs {
		if strings.EqualFold(r.Addr, a) {
			return true
		}
	}
	return false
}

// bccConversion moves outside recipients of To and Cc to Bcc when they
// are more than outbound.bcc_over: To and Cc keep the inside addresses,
// and an empty To becomes the sender or undisclosed-recipients:;. The
// envelope does not change: every recipient still gets the message.
func (p *Pipeline) bccConversion(j *judged, pl *plan, note func(kind, detail string)) {
	over := positive(j.sp.get(KeyBccOver), 0)
	parsed := j.facts.Parsed
	if over <= 0 || parsed == nil {
		return
	}
	var to, cc []mailtext.Address
	outside := 0
	for _, a := range parsed.To {
		if j.sp.inside(domainOf(a.Addr)) {
			to = append(to, a)
		} else {
			outside++
		}
	}
	for _, a := range parsed.Cc {
		if j.sp.inside(domainOf(a.Addr)) {
			cc = append(cc, a)
		} else {
			outside++
		}
	}
	if outside <= over {
		return
	}
	pl.spec.RemoveHeaders = append(pl.spec.RemoveHeaders, "To", "Cc")
	toValue := formatAddrs(to)
	if toValue == "" {
		toValue = "undisclosed-recipients:;"
		if j.sp.get(KeyBccTo) == "sender" && j.sp.Address != "" {
			toValue = j.sp.Address
			if len(parsed.From) == 1 && strings.EqualFold(parsed.From[0].Addr, j.sp.Address) {
				toValue = formatAddrs(parsed.From)
			}
		}
	}
	pl.spec.PrependHeaders = append(pl.spec.PrependHeaders, rewrite.HeaderField{Name: "To", Value: toValue})
	if len(cc) > 0 {
		pl.spec.PrependHeaders = append(pl.spec.PrependHeaders, rewrite.HeaderField{Name: "Cc", Value: formatAddrs(cc)})
	}
	note("converted", fmt.Sprintf("%d outside recipients moved from To/Cc to Bcc (more than %d)", outside, over))
}

// formatAddrs writes an address list; display names that are not plain
// ASCII are RFC 2047 encoded-words.
func formatAddrs(as []mailtext.Address) string {
	var parts []string
	for _, a := range as {
		addr := strings.Map(func(r rune) rune {
			if r < 0x21 || r == 0x7f || r == '<' || r == '>' || r == ',' || r == '"' {
				return -1
			}
			return r
		}, a.Addr)
		if addr == "" {
			continue
		}
		name := clean(a.Name, 200)
		switch {
		case name == "":
			parts = append(parts, addr)
		case isPlainASCII(name):
			parts = append(parts, `"`+strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(name)+`" <`+addr+`>`)
		default:
			parts = append(parts, mime.BEncoding.Encode("utf-8", name)+" <"+addr+">")
		}
	}
	return strings.Join(parts, ", ")
}

func isPlainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// scratchMemory is how much of an intermediate copy is held in memory;
// the rest goes to a temporary file.
const scratchMemory = 1 << 20

// variant is the bytes one group of recipients gets: prefix followed by
// the message as received or a final copy (key), or a copy changed here
// (tmp) until the final copies are written to the spool.
type variant struct {
	key    string        // spool blob key, when tmp is nil
	prefix string        // header lines delivered before key's bytes (store.Message.Prefix)
	tmp    *spill.Buffer // the changed copy, not yet in the spool
	size   int64         // prefix and blob together
	rcpts  []string
}

// accept writes what an accepted message becomes and commits it.
func (p *Pipeline) accept(ctx context.Context, log *slog.Logger, j *judged) error {
	pl := p.plan(j)
	now := p.now()
	m := j.m
	var written []string
	committed := false
	var scratches []*spill.Buffer
	defer func() {
		for _, s := range scratches {
			s.Close()
		}
		if !committed {
			p.removeBlobs(context.WithoutCancel(ctx), written)
		}
	}()
	// An intermediate copy (rewritten, zipped, not yet signed) is never
	// what a delivery reads, so it needs no fsync and nothing of it
	// outlives the process: only the final copies are written to the
	// spool, made durable once each.
	newScratch := func() *spill.Buffer {
		s := spill.New("", scratchMemory)
		scratches = append(scratches, s)
		return s
	}
	all := make([]string, 0, len(j.rcpts)+len(pl.bcc))
	for _, r := range j.rcpts {
		all = append(all, r.Addr)
	}
	all = append(all, pl.bcc...)
	// Each step reads the copy the step before made; only the final
	// copies reach the spool, below.
	vs := []variant{{key: m.BlobKey, prefix: m.Prefix, size: m.Size, rcpts: all}}
	// Header changes apply to every copy. Header fields that are only
	// added are kept in front of the message as received, as the
	// message's Prefix: no copy of it is written.
	kept := false
	if pl.spec.PrependsOnly() && len(pl.spec.PrependHeaders) > 0 && m.Prefix == "" {
		lines, ok, err := p.prepended(ctx, j, m.BlobKey, pl.spec.PrependHeaders)
		if err != nil {
			log.Error("rewriting an outbound message failed", "err", err)
			return err
		}
		if ok {
			vs[0] = variant{key: m.BlobKey, prefix: lines, size: int64(len(lines)) + m.Size, rcpts: all}
			kept = true
		}
	}
	if !pl.spec.Empty() && !kept {
		s := newScratch()
		if err := p.step(ctx, j, vs[0], s, func(w io.Writer, r io.Reader) error { return rewrite.Apply(ctx, w, r, pl.spec) }); err != nil {
			log.Error("rewriting an outbound message failed", "err", err)
			return err
		}
		vs[0] = variant{tmp: s, size: s.Size(), rcpts: all}
	}
	var followUps []FollowUp
	for _, st := range pl.transforms {
		var next []variant
		for _, v := range vs {
			in := TransformInput{TenantID: m.TenantID, MessageID: m.ID, Sender: j.sp.Address, Subject: m.Subject, Rcpts: v.rcpts, Params: st.params, Settings: j.sp.settings, Now: now}
			var out TransformOutput
			s := newScratch()
			err := p.step(ctx, j, v, s, func(w io.Writer, r io.Reader) error {
				var err error
				out, err = st.t.Transform(ctx, in, r, w)
				if err == nil && !out.Changed {
					return errUnchanged
				}
				return err
			})
			if errors.Is(err, errUnchanged) {
				next = append(next, v)
				continue
			}
			if err != nil {
				log.Error("outbound transformation failed; message deferred", "action", st.action, "err", err)
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Message could not be prepared for sending now, please try again later"}
			}
			var kept, changed []string
			for _, r := range v.rcpts {
				if containsFold(out.Skip, r) {
					kept = append(kept, r)
				} else {
					changed = append(changed, r)
				}
			}
			next = append(next, variant{tmp: s, size: s.Size(), rcpts: changed})
			if len(kept) > 0 {
				next = append(next, variant{key: v.key, prefix: v.prefix, tmp: v.tmp, size: v.size, rcpts: kept})
			}
			kind := "zipped"
			if st.action == ActLink {
				kind = "linked"
			}
			pl.notes = append(pl.notes, store.Event{MessageID: m.ID, TenantID: m.TenantID, At: now, Kind: kind, Detail: out.Detail})
			followUps = append(followUps, out.FollowUps...)
		}
		vs = next
	}
	// DKIM signing comes last, after every change above, on the bytes
	// that are committed and delivered (held and delayed copies too).
	var fromDom string
	if pf := j.facts.Parsed; pf != nil && len(pf.From) == 1 {
		fromDom = domainOf(pf.From[0].Addr)
	}
	keys, err := p.signKeys(ctx, j.sp, fromDom)
	if err != nil {
		log.Error("DKIM keys unavailable; message deferred", "err", err)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Message could not be prepared for sending now, please try again later"}
	}
	// The final copies go to the spool, each made durable once. The
	// message as received stays where it is: its signature joins its
	// prefix.
	for vi, v := range vs {
		if v.tmp == nil {
			if len(keys) > 0 {
				sig, err := p.signature(ctx, j, v, keys)
				if err != nil {
					log.Error("DKIM signing failed; message deferred", "err", err)
					return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Message could not be prepared for sending now, please try again later"}
				}
				vs[vi].prefix, vs[vi].size = sig+v.prefix, int64(len(sig))+v.size
			}
			continue
		}
		name := fmt.Sprintf("%s-c%d", m.ID, vi)
		if len(keys) > 0 {
			name = fmt.Sprintf("%s-s%d", m.ID, vi)
		}
		key, size, err := p.final(ctx, name, v, keys)
		if err != nil {
			log.Error("writing an outbound copy failed; message deferred", "err", err)
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Message could not be prepared for sending now, please try again later"}
		}
		written = append(written, key)
		vs[vi] = variant{key: key, size: size, rcpts: v.rcpts}
	}
	if len(keys) > 0 {
		pl.notes = append(pl.notes, store.Event{MessageID: m.ID, TenantID: m.TenantID, At: now, Kind: "dkim-signed", Detail: "signed by " + keysDomain(keys)})
	}
	held := pl.hold != nil || j.verdict.Action == policy.Quarantine
	delayed := !held && pl.delay > 0
	state := store.Queued
	if held || delayed {
		state = store.Held
	}
	// The message row: the first variant's recipients get its bytes; the
	// others are Split (their copies are rows of their own).
	main := m
	main.BlobKey, main.Size, main.Prefix = vs[0].key, vs[0].size, vs[0].prefix
	evs := append([]store.Event(nil), j.events...)
	evs = append(evs, store.Event{MessageID: m.ID, TenantID: m.TenantID, At: now, Kind: "verdict", Detail: describe(j.verdict)})
	evs = append(evs, pl.notes...)
	rcptRow := func(a string, st store.RcptState) store.Recipient {
		for _, r := range j.rcpts {
			if strings.EqualFold(r.Addr, a) {
				r.State, r.NextAttempt = st, now
				return r
			}
		}
		return store.Recipient{Addr: a, State: st, NextAttempt: now}
	}
	var mainRcpts []store.Recipient
	for _, a := range vs[0].rcpts {
		mainRcpts = append(mainRcpts, rcptRow(a, state))
	}
	acc := store.Acceptance{}
	var related []store.HoldRelated
	var copies []store.QueuedMessage
	for n, v := range vs[1:] {
		id := fmt.Sprintf("%s-%d", m.ID, n+1)
		c := m
		c.ID, c.BlobKey, c.Size, c.Prefix = id, v.key, v.size, v.prefix
		var rs []store.Recipient
		for _, a := range v.rcpts {
			r := rcptRow(a, state)
			r.ID, r.LeaseOwner = 0, ""
			rs = append(rs, r)
			mainRcpts = append(mainRcpts, rcptRow(a, store.Split))
			evs = append(evs, store.Event{MessageID: m.ID, TenantID: m.TenantID, At: now, Kind: "copy", Rcpt: a, Detail: "modified copy queued as " + id})
		}
		copies = append(copies, store.QueuedMessage{Message: c, Recipients: rs, Events: []store.Event{{MessageID: id, TenantID: m.TenantID, At: now,
			Kind: "received", Remote: "local", Detail: "modified copy of " + m.ID}}})
		related = append(related, store.HoldRelated{MessageID: id})
	}
	for n, f := range followUps {
		id := fmt.Sprintf("%s-p%d", m.ID, n+1)
		body := f.Body
		fevs := []store.Event{{MessageID: id, TenantID: m.TenantID, At: now,
			Kind: "received", Remote: "local", Detail: "follow-up of " + m.ID + " to " + strings.Join(f.Rcpts, ",")}}
		if fkeys, err := p.signKeys(ctx, j.sp, fromDomain(body)); err != nil {
			return fmt.Errorf("follow-up message: %w", err)
		} else if len(fkeys) > 0 {
			if body, err = signBytes(ctx, body, fkeys); err != nil {
				return fmt.Errorf("follow-up message: %w", err)
			}
			fevs = append(fevs, store.Event{MessageID: id, TenantID: m.TenantID, At: now, Kind: "dkim-signed", Detail: "signed by " + keysDomain(fkeys)})
		}
		key, size, err := blob.Put(ctx, p.Spool, id, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("follow-up message: %w", err)
		}
		written = append(written, key)
		c := store.Message{ID: id, TenantID: m.TenantID, Direction: store.Outbound, MailFrom: m.MailFrom, Size: size, BlobKey: key,
			ReceivedAt: now, ClientIP: "local", Helo: p.Hostname, Subject: f.Subject, SMTPUTF8: m.SMTPUTF8}
		fst := store.Queued
		if held || delayed {
			fst = store.Held
		}
		var rs []store.Recipient
		for _, a := range f.Rcpts {
			rs = append(rs, store.Recipient{Addr: a, State: fst, NextAttempt: now.Add(f.Delay)})
		}
		copies = append(copies, store.QueuedMessage{Message: c, Recipients: rs, Events: fevs})
		related = append(related, store.HoldRelated{MessageID: id, Delay: f.Delay})
	}
	acc.Queue = append([]store.QueuedMessage{{Message: main, Recipients: mainRcpts, Events: evs}}, copies...)
	if held || delayed {
		keys, err := p.holdFor(ctx, j, pl, &acc, related, held, now)
		written = append(written, keys...)
		if err != nil {
			return err
		}
	}
	if bk, ok := p.Queue.(BodyKeeper); ok && j.body != nil && vs[0].key == m.BlobKey && !held && !delayed {
		// The bytes read through the blob's checksum for the checks are
		// the ones delivered first.
		bk.Remember(m.BlobKey, j.body)
	}
	if err := p.commit(ctx, acc); err != nil {
		return err
	}
	committed = true
	p.afterCommit(ctx, log, j, pl, vs, all)
	return nil
}

var errUnchanged = errors.New("unchanged")

func containsFold(list []string, v string) bool {
	for _, x := range list {
		if strings.EqualFold(x, v) {
			return true
		}
	}
	return false
}

// holdFor adds the hold row and its notices to the acceptance and
// returns the notices' blob keys.
func (p *Pipeline) holdFor(ctx context.Context, j *judged, pl *plan, acc *store.Acceptance, related []store.HoldRelated, approval bool, now time.Time) ([]string, error) {
	m := j.m
	h := store.OutboundHold{MessageID: m.ID, TenantID: m.TenantID, Sender: j.sp.Address, Subject: mailtext.TruncUTF8(m.Subject, 1000),
		Rcpts: mailtext.TruncUTF8(rcptList(j.rcpts), 4000), Size: m.Size, Related: related, Created: now, State: store.HoldPending}
	lang := j.sp.get(KeyLang)
	var keys []string
	key, err := signedlink.LoadKey(ctx, p.Store)
	if err != nil {
		return nil, err
	}
	add := func(to []string, k noticeKind, nd noticeData) error {
		qm, bk, err := p.notice(ctx, m.TenantID, to, k, lang, nd, "outbound notice about "+m.ID)
		if err != nil {
			return err
		}
		keys = append(keys, bk)
		acc.Queue = append(acc.Queue, qm)
		return nil
	}
	nd := noticeData{ID: m.ID, Subject: m.Subject, Rcpts: h.Rcpts, Sender: j.sp.Address, Console: p.consoleURL("/outbound/holds/" + m.ID)}
	if approval {
		h.Kind = store.HoldApproval
		spec := Spec{}
		if pl.hold != nil {
			spec = pl.hold.Spec
			h.Rule = pl.hold.Name
		} else if j.verdict.Decider != nil {
			h.Rule = j.verdict.Decider.Check
		}
		h.Reason = mailtext.TruncUTF8(pl.holdReason, 1000)
		h.Group = j.sp.approverGroup(spec.ApproverGroup)
		wait, on := j.sp.approvalWait(spec)
		h.ReleaseAt, h.OnTimeout = now.Add(wait), on
		h.SelfApproval = j.sp.groupGet("", KeySelfApproval) == "allow"
		nd.Reason, nd.When = h.Reason, h.ReleaseAt
		asked := 0
		for _, a := range approversOf(j.sp, h.Group) {
			if a == h.Sender && !h.SelfApproval {
				continue
			}
			asked++
			ad := nd
			for _, act := range []signedlink.Action{signedlink.Approve, signedlink.Reject} {
				l := signedlink.Link{Action: act, TenantID: m.TenantID, ItemID: m.ID, Rcpt: a, Expires: h.ReleaseAt}
				label := [2]string{"承認する", "Approve"}
				if act == signedlink.Reject {
					label = [2]string{"却下する", "Reject"}
				}
				ad.Links = append(ad.Links, [3]string{label[0], label[1], linkURL(p.BaseURL, key, l)})
			}
			if err := add([]string{a}, nApprovalRequest, ad); err != nil {
				return keys, err
			}
		}
		if h.Sender != "" && m.MailFrom != "" {
			if err := add([]string{h.Sender}, nHeld, nd); err != nil {
				return keys, err
			}
		}
		detail := fmt.Sprintf("held for approval (group %q) until %s: %s", h.Group, h.ReleaseAt.UTC().Format(time.RFC3339), h.Reason)
		if asked == 0 {
			// Nobody was mailed: the tenant's administrators decide in
			// the console, or the timeout does.
			detail += " (no approver configured: outbound.approvers)"
			p.log().Warn("outbound message held without an approver to ask", "id", m.ID, "tenant", m.TenantID, "group", h.Group)
		}
		acc.Queue[0].Events = append(acc.Queue[0].Events, store.Event{MessageID: m.ID, TenantID: m.TenantID, At: now, Kind: "held", Detail: detail})
	} else {
		h.Kind = store.HoldDelay
		h.ReleaseAt = now.Add(pl.delay)
		h.Reason = fmt.Sprintf("delayed %s", pl.delay)
		nd.When = h.ReleaseAt
		if h.Sender != "" && m.MailFrom != "" {
			l := signedlink.Link{Action: signedlink.Cancel, TenantID: m.TenantID, ItemID: m.ID, Rcpt: h.Sender, Expires: h.ReleaseAt}
			nd.Links = [][3]string{{"送信を取り消す", "Cancel sending", linkURL(p.BaseURL, key, l)}}
			if err := add([]string{h.Sender}, nDelayed, nd); err != nil {
				return keys, err
			}
		}
		acc.Queue[0].Events = append(acc.Queue[0].Events, store.Event{MessageID: m.ID, TenantID: m.TenantID, At: now, Kind: "delayed",
			Detail: "sent at " + h.ReleaseAt.UTC().Format(time.RFC3339) + " unless cancelled"})
	}
	acc.Holds = append(acc.Holds, h)
	return keys, nil
}

// approversOf lists the addresses that approve a group's held mail: the
// group's outbound.approvers, else the tenant's, else the tenant's virus
// warning address (notify.admin).
func approversOf(sp *senderPolicy, group string) []string {
	as := addrList(sp.groupGet(group, KeyApprovers))
	if len(as) == 0 {
		as = addrList(sp.groupGet("", KeyAdmin))
	}
	return as
}

func (p *Pipeline) consoleURL(path string) string {
	if p.BaseURL == "" {
		return ""
	}
	return strings.TrimRight(p.BaseURL, "/") + path
}

// notice writes a notice's blob and returns its queue entry (not yet
// committed) and blob key.
func (p *Pipeline) notice(ctx context.Context, tenantID int64, to []string, k noticeKind, lang string, nd noticeData, why string) (store.QueuedMessage, string, error) {
	return buildNotice(ctx, p.Spool, p.Hostname, p.Zone, tenantID, to, k, lang, nd, why, p.now())
}

func buildNotice(ctx context.Context, spool blob.Store, hostname string, zone *time.Location, tenantID int64, to []string, k noticeKind, lang string, nd noticeData, why string, now time.Time) (store.QueuedMessage, string, error) {
	body := renderNotice(hostname, lang, zone, to, k, nd, now)
	id := store.NewMessageID(now)
	key, size, err := blob.Put(ctx, spool, id, bytes.NewReader(body))
	if err != nil {
		return store.QueuedMessage{}, "", fmt.Errorf("notice: %w", err)
	}
	m := store.Message{ID: id, TenantID: tenantID, Direction: store.DSN, Size: size, BlobKey: key, ReceivedAt: now, ClientIP: "local",
		Helo: hostname, Subject: noticeSubject(k)}
	var rs []store.Recipient
	for _, a := range to {
		rs = append(rs, store.Recipient{Addr: a, State: store.Queued, NextAttempt: now})
	}
	ev := []store.Event{{MessageID: id, TenantID: tenantID, At: now, Kind: "received", Remote: "local",
		Detail: fmt.Sprintf("dsn generated by mailgate (%s) to %s", why, strings.Join(to, ","))}}
	return store.QueuedMessage{Message: m, Recipients: rs, Events: ev}, key, nil
}

// step runs fn over v's bytes, writing to w.
func (p *Pipeline) step(ctx context.Context, j *judged, v variant, w io.Writer, fn func(w io.Writer, r io.Reader) error) error {
	if v.tmp != nil {
		return fn(w, v.tmp.Reader())
	}
	src, err := p.open(ctx, j, v.key)
	if err != nil {
		return err
	}
	defer src.Close()
	return fn(w, io.MultiReader(strings.NewReader(v.prefix), src))
}

// prepended returns the header lines that put fields in front of the
// blob at key, or ok false when they cannot be kept apart from it
// (rewrite.Prepended).
func (p *Pipeline) prepended(ctx context.Context, j *judged, key string, fields []rewrite.HeaderField) (string, bool, error) {
	src, err := p.open(ctx, j, key)
	if err != nil {
		return "", false, err
	}
	defer src.Close()
	// The first line is what counts: read on only while there is none.
	start := make([]byte, 0, 4096)
	for len(start) < rewrite.PeekSize && bytes.IndexByte(start, '\n') < 0 {
		if len(start) == cap(start) {
			start = append(start, 0)[:len(start)]
		}
		n, err := src.Read(start[len(start):min(cap(start), rewrite.PeekSize)])
		start = start[:len(start)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", false, err
		}
	}
	return rewrite.Prepended(start, fields)
}

// signature returns the DKIM-Signature fields of a variant kept in the
// spool as it is (its prefix and blob).
func (p *Pipeline) signature(ctx context.Context, j *judged, v variant, keys []dkimsign.Key) (string, error) {
	src, err := p.open(ctx, j, v.key)
	if err != nil {
		return "", err
	}
	defer src.Close()
	return dkimsign.Signature(ctx, io.MultiReader(strings.NewReader(v.prefix), src), keys)
}

// final writes a changed copy to the spool under name, signed with keys
// (when there are any): the stored bytes are the signed bytes.
func (p *Pipeline) final(ctx context.Context, name string, v variant, keys []dkimsign.Key) (string, int64, error) {
	w, err := p.Spool.Create(ctx, name)
	if err != nil {
		return "", 0, err
	}
	if err := dkimsign.Sign(ctx, w, v.tmp.Reader(), keys); err != nil {
		w.Abort()
		return "", 0, err
	}
	if err := w.Commit(ctx); err != nil {
		return "", 0, err
	}
	return w.Key(), w.Size(), nil
}

func (p *Pipeline) removeBlobs(ctx context.Context, keys []string) {
	for _, k := range keys {
		if err := p.Spool.Delete(ctx, k); err != nil {
			p.log().Warn("removing a blob of a message not accepted", "key", k, "err", err)
		}
	}
}

// afterCommit archives, and removes the original blob when no copy uses
// it. Failures are logged: the message is safe.
func (p *Pipeline) afterCommit(ctx context.Context, log *slog.Logger, j *judged, pl *plan, vs []variant, all []string) {
	ctx = context.WithoutCancel(ctx)
	if pl.archive {
		detail := "archived"
		if p.Hooks.Archive == nil {
			detail = "archive asked for, but no archive is configured on this node"
		} else if err := p.Hooks.Archive.Archive(ctx, j.m, all, func() (io.ReadCloser, error) { return p.open(ctx, j, j.m.BlobKey) }); err != nil {
			log.Error("archiving an outbound message failed", "err", err)
			detail = "archive failed: " + err.Error()
		}
		if err := p.Store.AddEvents(ctx, []store.Event{{MessageID: j.m.ID, TenantID: j.m.TenantID, At: p.now(), Kind: "archived", Detail: detail}}); err != nil {
			log.Warn("tracking the archive", "err", err)
		}
	}
	for _, v := range vs {
		if v.key == j.m.BlobKey {
			return
		}
	}
	if err := p.Spool.Delete(ctx, j.m.BlobKey); err != nil {
		log.Warn("removing the original blob", "err", err)
	}
}

// commit runs the accept transaction on its own deadline, unless the
// client is already gone.
func (p *Pipeline) commit(ctx context.Context, a store.Acceptance) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("accept: %w", ctx.Err())
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	return p.Queue.Accept(cctx, a)
}

func rcptList(rs []store.Recipient) string {
	as := make([]string, len(rs))
	for i, r := range rs {
		as[i] = r.Addr
	}
	return strings.Join(as, ", ")
}

// describe summarises a verdict for tracking: "action[: reason] [SYM ...]".
func describe(v policy.Verdict) string {
	var syms []string
	seen := map[string]bool{}
	for _, f := range v.Findings {
		if f.Symbol != "" && !seen[f.Symbol] {
			seen[f.Symbol] = true
			syms = append(syms, f.Symbol)
		}
	}
	out := v.Action.String()
	if v.Action == policy.Quarantine {
		out = "hold"
	}
	if v.Decider != nil && v.Decider.Reason != "" {
		out += ": " + v.Decider.Reason
	}
	if len(syms) > 0 {
		out += " [" + strings.Join(syms, " ") + "]"
	}
	return out
}
