// Package queue is mailgate's store-and-forward scheduler (the secondary-MX
// behaviour): it hands accepted messages to delivery, keeps undeliverable
// recipients with an explicit retry schedule, sends one delay notice, a
// final bounce and the "relayed" notices NOTIFY=SUCCESS asks for as RFC 3464
// DSNs, and offers the operator's queue actions.
//
// State lives in the store; this package keeps only work in flight. Work is
// claimed with leases in the node's name, so several nodes can share one
// PostgreSQL queue later, and a restarted node releases its old leases at
// start. The next attempt time is written before each attempt's outcome is
// acted on, and a DSN is made durable before the recipient it reports on is
// marked final: a crash may repeat a DSN but never loses one.
package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/mailgate/mailgate/internal/addr"
	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/delivery"
	"github.com/mailgate/mailgate/internal/dsn"
	"github.com/mailgate/mailgate/internal/spool"
	"github.com/mailgate/mailgate/internal/store"
)

// Deliverer sends one message to a list of targets (delivery.Client).
type Deliverer interface {
	Deliver(ctx context.Context, targets []delivery.Target, req delivery.Request) []delivery.Result
}

// Router finds the targets for a recipient domain (delivery.Router).
type Router interface {
	Targets(ctx context.Context, tenantID int64, domain string) ([]delivery.Target, error)
}

// Deps are the queue's collaborators.
type Deps struct {
	Store    store.Store
	Spool    *spool.Spool
	Deliver  Deliverer
	Router   Router
	Clock    clock.Clock
	Log      *slog.Logger
	Config   config.QueueConfig
	Node     string // lease owner name
	Hostname string // for DSNs
	Rand     func() float64
}

// Queue schedules deliveries. Enqueue may be used before Start (the CLI
// enqueues DSNs that a running server then picks up by polling).
type Queue struct {
	d   Deps
	log *slog.Logger

	mu      sync.Mutex
	cond    *sync.Cond
	pending []store.Job
	started bool
	closed  bool
	wg      sync.WaitGroup
	cancel  context.CancelFunc
	// stopping is closed by Stop: the poller ends at once rather than at
	// its next tick (which may be an hour away).
	stopping chan struct{}
}

// New builds a queue.
func New(d Deps) *Queue {
	if d.Clock == nil {
		d.Clock = clock.System{}
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.Rand == nil {
		d.Rand = rand.Float64
	}
	q := &Queue{d: d, log: d.Log.With("stage", "queue"), stopping: make(chan struct{})}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// Start releases this node's stale leases and starts the poller and workers.
func (q *Queue) Start(ctx context.Context) error {
	n, err := q.d.Store.ReleaseLeases(ctx, q.d.Node)
	if err != nil {
		return fmt.Errorf("queue start: %w", err)
	}
	if n > 0 {
		q.log.Info("released leases from before restart", "recipients", n)
	}
	ctx, q.cancel = context.WithCancel(context.Background())
	q.mu.Lock()
	q.started = true
	q.mu.Unlock()
	workers := q.d.Config.Workers
	if workers <= 0 {
		workers = 100
	}
	for i := 0; i < workers; i++ {
		q.wg.Add(1)
		go q.worker(ctx)
	}
	q.wg.Add(1)
	go q.poller(ctx)
	return nil
}

// Stop lets in-flight deliveries finish (until ctx ends), then releases the
// leases of work not started so another node or the next start takes it.
func (q *Queue) Stop(ctx context.Context) error {
	q.mu.Lock()
	if !q.started || q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	q.pending = nil
	q.cond.Broadcast()
	close(q.stopping)
	q.mu.Unlock()
	done := make(chan struct{})
	go func() { q.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		q.cancel()
		<-done
	}
	q.cancel()
	_, err := q.d.Store.ReleaseLeases(context.Background(), q.d.Node)
	return err
}

// Enqueue makes a message's envelope durable (the blob already is). When the
// queue is running, the recipients are leased to this node and delivery
// starts at once without waiting for the poller.
func (q *Queue) Enqueue(ctx context.Context, m store.Message, rcpts []store.Recipient, events []store.Event) error {
	return q.Accept(ctx, store.Acceptance{Queue: []store.QueuedMessage{{Message: m, Recipients: rcpts, Events: events}}})
}

// Accept commits a whole acceptance (store.Accept: every message, copy
// and quarantine row, or nothing) and hands the queued recipients of each
// message to this node's workers. Queued recipients are inserted already
// leased to this node while the queue runs, so no other node claims them
// before the in-memory hand-off.
func (q *Queue) Accept(ctx context.Context, a store.Acceptance) error {
	q.mu.Lock()
	running := q.started && !q.closed
	q.mu.Unlock()
	now := q.d.Clock.Now()
	for k := range a.Queue {
		rcpts := a.Queue[k].Recipients
		for i := range rcpts {
			if rcpts[i].NextAttempt.IsZero() {
				rcpts[i].NextAttempt = now
			}
			if running && rcpts[i].State == store.Queued {
				rcpts[i].LeaseOwner = q.d.Node
				rcpts[i].LeaseUntil = now.Add(q.d.Config.Lease.Duration)
			}
		}
	}
	out, err := q.d.Store.Accept(ctx, a)
	if err != nil {
		return err
	}
	if !running {
		return nil
	}
	var jobs []store.Job
	for k, rs := range out {
		job := store.Job{Message: a.Queue[k].Message}
		for _, r := range rs {
			if r.State == store.Queued {
				job.Recipients = append(job.Recipients, r)
			}
		}
		if len(job.Recipients) > 0 {
			jobs = append(jobs, job)
		}
	}
	if len(jobs) > 0 {
		q.push(jobs...)
	}
	return nil
}

func (q *Queue) push(jobs ...store.Job) {
	q.mu.Lock()
	if !q.closed {
		q.pending = append(q.pending, jobs...)
		q.cond.Broadcast()
	}
	q.mu.Unlock()
}

func (q *Queue) poller(ctx context.Context) {
	defer q.wg.Done()
	iv := q.d.Config.PollInterval.Duration
	if iv <= 0 {
		iv = time.Second
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.stopping:
			return
		case <-t.C:
		}
		q.mu.Lock()
		closed, backlog := q.closed, len(q.pending)
		q.mu.Unlock()
		if closed {
			return
		}
		if backlog > 1000 {
			continue // enough in hand; leases keep the rest for later
		}
		if _, err := q.ClaimDue(ctx); err != nil && ctx.Err() == nil {
			q.log.Error("claim due messages", "err", err)
		}
	}
}

// ClaimDue leases due recipients and hands them to the workers (the poller
// calls it; tests call it after moving the clock). It returns how many jobs
// it found.
func (q *Queue) ClaimDue(ctx context.Context) (int, error) {
	now := q.d.Clock.Now()
	jobs, err := q.d.Store.ClaimDue(ctx, q.d.Node, now, now.Add(q.d.Config.Lease.Duration), 500)
	if err != nil {
		return 0, err
	}
	if len(jobs) > 0 {
		q.push(jobs...)
	}
	return len(jobs), nil
}

func (q *Queue) worker(ctx context.Context) {
	defer q.wg.Done()
	for {
		q.mu.Lock()
		for len(q.pending) == 0 && !q.closed {
			q.cond.Wait()
		}
		if q.closed {
			q.mu.Unlock()
			return
		}
		job := q.pending[0]
		q.pending[0] = store.Job{}
		q.pending = q.pending[1:]
		q.mu.Unlock()
		q.processSafely(ctx, job)
	}
}

// processSafely runs Process and survives a panic in it (a bug in routing,
// delivery or DSN code, perhaps set off by one odd message): the worker
// goroutine goes on with the next job, and the job's recipients are
// deferred like after a temporary failure, so the message is neither lost
// nor left leased until the lease runs out.
func (q *Queue) processSafely(ctx context.Context, job store.Job) {
	defer func() {
		if p := recover(); p != nil {
			q.deferAfterPanic(ctx, job, p, debug.Stack())
		}
	}()
	q.Process(ctx, job)
}

// panicReply is what tracking and the queue listing show for an attempt
// that ended in a panic; the details are in the log only.
const panicReply = "local error: the delivery attempt failed inside mailgate (see the log)"

// deferAfterPanic records a failed attempt for every recipient of job:
// next attempt from the retry schedule and a tracking event. Past
// bounce_after a recipient is held instead, for the operator: a message
// that keeps crashing the delivery code is never bounced or deleted
// silently.
func (q *Queue) deferAfterPanic(ctx context.Context, job store.Job, p any, stack []byte) {
	m := job.Message
	log := q.log.With("id", m.ID, "tenant", m.TenantID)
	log.Error("delivery attempt panicked; recipients deferred", "panic", fmt.Sprint(p), "stack", string(stack))
	now := q.d.Clock.Now()
	updates := make([]store.RecipientUpdate, 0, len(job.Recipients))
	events := make([]store.Event, 0, len(job.Recipients))
	for _, r := range job.Recipients {
		u := store.RecipientUpdate{ID: r.ID, State: store.Queued, LastReply: panicReply, CountAttempt: true, DelayNotified: r.DelayNotified}
		ev := store.Event{MessageID: m.ID, TenantID: m.TenantID, At: now, Rcpt: r.Addr, Kind: "deferred"}
		if now.Sub(m.ReceivedAt) >= q.d.Config.Bounce.Duration {
			u.State, u.NextAttempt = store.Held, now
			ev.Kind, ev.Detail = "held", panicReply+"; held for the operator after "+q.d.Config.Bounce.Duration.String()
		} else {
			u.NextAttempt = now.Add(q.nextWait(r.Attempts))
			ev.Detail = panicReply + "; next attempt " + u.NextAttempt.UTC().Format(time.RFC3339)
		}
		updates = append(updates, u)
		events = append(events, ev)
	}
	if _, err := q.d.Store.Complete(context.WithoutCancel(ctx), m.TenantID, m.ID, updates, events); err != nil {
		// The lease runs out and the attempt is repeated then.
		log.Error("recording the failed attempt", "err", err)
	}
}

// Process makes one delivery attempt for a job's recipients and records the
// outcome. Exported for tests that drive the queue synchronously.
func (q *Queue) Process(ctx context.Context, job store.Job) {
	m := job.Message
	log := q.log.With("id", m.ID, "tenant", m.TenantID)
	f, err := q.d.Spool.Open(m.BlobKey)
	if err != nil {
		log.Error("message blob missing; holding message", "err", err)
		if err := q.d.Store.MarkCorrupt(ctx, m.ID, "blob missing: "+err.Error()); err != nil {
			log.Error("mark corrupt", "err", err)
		}
		return
	}
	f.Close()

	byDomain := map[string][]store.Recipient{}
	var order []string
	for _, r := range job.Recipients {
		dom := domainOf(r.Addr)
		if _, ok := byDomain[dom]; !ok {
			order = append(order, dom)
		}
		byDomain[dom] = append(byDomain[dom], r)
	}
	var updates []store.RecipientUpdate
	var events []store.Event
	notices := map[dsn.Kind][]dsn.Recipient{}
	for _, dom := range order {
		rs := byDomain[dom]
		results := q.attempt(ctx, m, dom, rs)
		now := q.d.Clock.Now()
		for i, r := range rs {
			res := results[i]
			u, ev, n := q.outcome(m, r, res, now)
			updates = append(updates, u)
			events = append(events, ev)
			if n.entry != nil {
				notices[n.kind] = append(notices[n.kind], *n.entry)
			}
		}
	}
	// DSNs first: durable before the recipients they report on are final.
	for _, kind := range []dsn.Kind{dsn.Failure, dsn.Delay, dsn.Relayed} {
		rcpts := notices[kind]
		if len(rcpts) == 0 {
			continue
		}
		id, err := q.SendDSN(ctx, m, kind, rcpts)
		if err != nil {
			if kind == dsn.Relayed {
				// The copy is delivered: attempting it again to retry a
				// success notice would deliver it twice.
				log.Error("success notice could not be queued", "err", err)
				continue
			}
			log.Error("DSN could not be queued; will retry with the next attempt", "err", err, "kind", kind)
			// Keep the recipients in the queue so the DSN is retried rather than lost.
			for i := range updates {
				if updates[i].State == store.Bounced && kind == dsn.Failure || kind == dsn.Delay && updates[i].DelayNotified {
					updates[i].State = store.Queued
					updates[i].DelayNotified = false
					updates[i].NextAttempt = q.d.Clock.Now().Add(q.d.Config.Retry[0].Duration)
				}
			}
			continue
		}
		for _, r := range rcpts {
			events = append(events, store.Event{MessageID: m.ID, TenantID: m.TenantID, At: q.d.Clock.Now(), Kind: "dsn",
				Rcpt: r.FinalRecipient, Detail: fmt.Sprintf("%s notice to <%s> queued as %s", strings.ToLower(kind.String()), m.MailFrom, id)})
		}
	}
	done, err := q.d.Store.Complete(ctx, m.TenantID, m.ID, updates, events)
	if err != nil {
		// The lease expires and the attempt is repeated: a possible duplicate, never a loss.
		log.Error("recording delivery outcome failed", "err", err)
		return
	}
	if done {
		if err := q.d.Spool.Remove(m.BlobKey); err != nil {
			log.Error("remove blob", "err", err)
		}
	}
}

func domainOf(a string) string {
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		return strings.ToLower(a[i+1:])
	}
	return ""
}

// attempt resolves the route and delivers to one domain's recipients.
func (q *Queue) attempt(ctx context.Context, m store.Message, dom string, rs []store.Recipient) []delivery.Result {
	rcpts := make([]string, len(rs))
	orcpt := make([]string, len(rs))
	notify := make([]string, len(rs))
	utf8 := m.SMTPUTF8
	for i, r := range rs {
		rcpts[i], orcpt[i], notify[i] = r.Addr, r.ORcpt, r.Notify
		if !isASCII(r.Addr) {
			utf8 = true
		}
	}
	if !isASCII(m.MailFrom) {
		utf8 = true
	}
	targets, err := q.d.Router.Targets(ctx, m.TenantID, dom)
	if err != nil {
		var pe *delivery.PermError
		r := delivery.Result{Enhanced: "4.4.3", Text: err.Error()}
		if errors.As(err, &pe) {
			r = delivery.Result{Code: 550, Enhanced: pe.Enhanced, Text: pe.Text, Permanent: true}
		}
		out := make([]delivery.Result, len(rs))
		for i := range out {
			out[i] = r
			out[i].Rcpt = rcpts[i]
		}
		return out
	}
	req := delivery.Request{From: m.MailFrom, Rcpts: rcpts, ORcpt: orcpt, Notify: notify, EnvID: m.EnvID, RetFull: m.RetFull, UTF8: utf8, Body8: m.Body8Bit,
		Body: func() (io.ReadCloser, error) { return openWithPrefix(q.d.Spool, m) }}
	req.TenantID, req.MessageID, req.Received = m.TenantID, m.ID, m.ReceivedAt // a mailbox delivery is idempotent by them
	return q.d.Deliver.Deliver(ctx, targets, req)
}

// openWithPrefix returns the message as delivered: the pipeline's verdict
// headers (Message.Prefix) followed by the stored blob.
func openWithPrefix(sp *spool.Spool, m store.Message) (io.ReadCloser, error) {
	f, err := sp.Open(m.BlobKey)
	if err != nil || m.Prefix == "" {
		return f, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(strings.NewReader(m.Prefix), f), f}, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// notice is a DSN entry to send about one recipient; entry is nil when none.
type notice struct {
	kind  dsn.Kind
	entry *dsn.Recipient
}

// outcome turns one delivery result into the recipient's next state, its
// tracking event, and the DSN entry to send (failed, delayed or relayed),
// if any.
func (q *Queue) outcome(m store.Message, r store.Recipient, res delivery.Result, now time.Time) (store.RecipientUpdate, store.Event, notice) {
	cfg := q.d.Config
	u := store.RecipientUpdate{ID: r.ID, LastCode: res.Code, LastReply: replyText(res), RemoteMTA: res.Remote, CountAttempt: true, DelayNotified: r.DelayNotified}
	ev := store.Event{MessageID: m.ID, TenantID: m.TenantID, At: now, Rcpt: r.Addr, Remote: res.Remote, Detail: replyText(res)}
	entry := func(status string) *dsn.Recipient {
		if status == "" {
			status = res.Enhanced
		}
		e := &dsn.Recipient{FinalRecipient: r.Addr, OriginalRecipient: r.ORcpt, Status: status, RemoteMTA: res.Remote,
			DiagnosticCode: diagnostic(res), LastAttempt: now, WillRetryUntil: m.ReceivedAt.Add(cfg.Bounce.Duration)}
		if res.Code == 0 && res.Text != "" {
			// No remote reply (connection failure): say what happened locally.
			e.DiagnosticType, e.DiagnosticCode = "X-Mailgate", res.Text
		}
		return e
	}
	switch {
	case res.OK():
		u.State, ev.Kind = store.Delivered, "delivered"
		// RFC 3461 5.2.2: passed to a host without DSN support, a recipient
		// that asked for NOTIFY=SUCCESS is told "relayed", as this is the
		// last news of it. A host with DSN support got NOTIFY and reports
		// the delivery itself (5.2.1); a notice from us would be a second,
		// premature one.
		if !res.NextHopDSN && wantsDSN(m, r, "SUCCESS") {
			e := entry("2.0.0")
			e.WillRetryUntil = time.Time{}
			return u, ev, notice{dsn.Relayed, e}
		}
		return u, ev, notice{}
	case res.Permanent:
		u.State, ev.Kind = store.Bounced, "bounced"
		if wantsDSN(m, r, "FAILURE") {
			return u, ev, notice{dsn.Failure, entry("")}
		}
		return u, ev, notice{}
	}
	age := now.Sub(m.ReceivedAt)
	if age >= cfg.Bounce.Duration {
		u.State, ev.Kind = store.Bounced, "expired"
		ev.Detail = fmt.Sprintf("gave up after %s: %s", age.Round(time.Minute), ev.Detail)
		if wantsDSN(m, r, "FAILURE") {
			e := entry("4.4.7")
			if res.Code == 0 {
				e.Status = "4.4.7"
			}
			return u, ev, notice{dsn.Failure, e}
		}
		return u, ev, notice{}
	}
	u.State, ev.Kind = store.Queued, "deferred"
	u.NextAttempt = now.Add(q.nextWait(r.Attempts))
	ev.Detail += "; next attempt " + u.NextAttempt.UTC().Format(time.RFC3339)
	var n notice
	if cfg.DelayWarning.Duration > 0 && age >= cfg.DelayWarning.Duration && !r.DelayNotified {
		u.DelayNotified = true // one notice per recipient, whatever NOTIFY says
		if wantsDSN(m, r, "DELAY") {
			n = notice{dsn.Delay, entry("")}
		}
	}
	return u, ev, n
}

// nextWait picks the wait after the given number of past attempts from the
// explicit schedule (the last entry repeats), plus jitter.
func (q *Queue) nextWait(attempts int) time.Duration {
	sched := q.d.Config.Retry
	w := sched[min(attempts, len(sched)-1)].Duration
	if j := q.d.Config.Jitter; j > 0 {
		w += time.Duration(float64(w) * j * q.d.Rand())
	}
	return w
}

// wantsDSN applies RFC 3461 NOTIFY (kind is FAILURE, DELAY or SUCCESS;
// NEVER matches none) and our never-a-DSN-about-a-DSN rule.
func wantsDSN(m store.Message, r store.Recipient, kind string) bool {
	if m.MailFrom == "" || m.Direction == store.DSN {
		return false
	}
	if r.Notify == "" {
		return kind != "SUCCESS" // RFC 3461 4.1: no NOTIFY means FAILURE,DELAY
	}
	for _, n := range strings.Split(strings.ToUpper(r.Notify), ",") {
		if n == kind {
			return true
		}
	}
	return false
}

func replyText(r delivery.Result) string {
	if r.Code == 0 {
		return r.Text
	}
	s := fmt.Sprintf("%d", r.Code)
	if r.Enhanced != "" {
		s += " " + r.Enhanced
	}
	return s + " " + r.Text
}

func diagnostic(r delivery.Result) string {
	if r.Code == 0 {
		return "" // no remote reply: the Status says what happened
	}
	return replyText(r)
}

// SendDSN builds a delivery status notification about m to its sender and
// enqueues it from the null sender. It returns the DSN's queue ID.
func (q *Queue) SendDSN(ctx context.Context, m store.Message, kind dsn.Kind, rcpts []dsn.Recipient) (string, error) {
	if m.MailFrom == "" || m.Direction == store.DSN {
		return "", errors.New("no DSN for a null-sender message")
	}
	orig, err := q.d.Spool.Open(m.BlobKey)
	if err != nil {
		return "", fmt.Errorf("open original: %w", err)
	}
	defer orig.Close()
	now := q.d.Clock.Now()
	body, err := dsn.Build(dsn.Report{
		Kind: kind, ReportingMTA: q.d.Hostname, To: m.MailFrom, EnvelopeID: m.EnvID, ArrivalDate: m.ReceivedAt,
		Now: now, Recipients: rcpts, Original: orig, ReturnFull: m.RetFull, MaxOriginal: q.d.Config.MaxDSNOrigLen,
		Language: q.d.Config.DSNLanguage,
	})
	if err != nil {
		return "", fmt.Errorf("build DSN: %w", err)
	}
	return q.Submit(ctx, store.Message{TenantID: m.TenantID, Direction: store.DSN, MailFrom: "", Subject: "Delivery Status Notification (" + kind.String() + ")"},
		[]string{m.MailFrom}, bytes.NewReader(body), fmt.Sprintf("%s notice about %s", strings.ToLower(kind.String()), m.ID))
}

// Submit writes a locally generated message (DSNs, later notices and
// released quarantine copies) durably and enqueues it.
func (q *Queue) Submit(ctx context.Context, m store.Message, rcpts []string, body io.Reader, why string) (string, error) {
	now := q.d.Clock.Now()
	m.ID = store.NewMessageID(now)
	m.BlobKey = m.ID
	m.ReceivedAt = now
	m.ClientIP = "local"
	m.Helo = q.d.Hostname
	w, err := q.d.Spool.Create(m.ID)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(w, body); err != nil {
		w.Abort()
		return "", fmt.Errorf("write message: %w", err)
	}
	if err := w.Commit(); err != nil {
		return "", err
	}
	m.Size = w.Size()
	var rs []store.Recipient
	for _, r := range rcpts {
		if a, err := addr.Parse(r); err == nil {
			r = a.String()
		}
		rs = append(rs, store.Recipient{Addr: r, State: store.Queued, NextAttempt: now})
	}
	ev := []store.Event{{MessageID: m.ID, TenantID: m.TenantID, At: now, Kind: "received", Remote: "local",
		Detail: fmt.Sprintf("%s generated by mailgate (%s) to %s", m.Direction, why, strings.Join(rcpts, ","))}}
	if err := q.Enqueue(ctx, m, rs, ev); err != nil {
		q.d.Spool.Remove(m.ID)
		return "", err
	}
	return m.ID, nil
}
