// Package queue is mailgate's store-and-forward scheduler (the secondary-MX
// behaviour): it hands accepted messages to delivery, keeps undeliverable
// recipients with an explicit retry schedule, sends one delay notice, a
// final bounce and the "relayed" notices NOTIFY=SUCCESS asks for as RFC 3464
// DSNs, and offers the operator's queue actions.
//
// State lives in the store; this package keeps only work in flight. Work is
// claimed with leases in the node's name, so several nodes share one
// PostgreSQL queue, and a restarted node releases its old leases at start.
// Every claim carries a fencing token: attempts in progress renew their
// leases, an attempt whose lease was taken over by another node stops,
// and its outcome is refused by the store, so it is neither recorded nor
// counted twice. An attempt's outcome and the DSNs it causes are committed
// in one transaction: a DSN is never lost, and never sent about a
// recipient whose outcome was not recorded.
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
	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/delivery"
	"github.com/mailgate/mailgate/internal/dsn"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/versioned"
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
	Store    Store
	Spool    blob.Store
	Deliver  Deliverer
	Router   Router
	Clock    clock.Clock
	Log      *slog.Logger
	Config   config.QueueConfig
	Node     string // lease owner name
	Hostname string // for DSNs
	Rand     func() float64
	// Lists, when set, takes over mailing list recipients (ListHandler).
	Lists ListHandler
}

// Queue schedules deliveries. Enqueue may be used before Start (the CLI
// enqueues DSNs that a running server then picks up by polling).
type Queue struct {
	d   Deps
	log *slog.Logger

	mu      sync.Mutex
	cond    *sync.Cond
	pending []pendingJob
	started bool
	closed  bool
	wg      sync.WaitGroup
	cancel  context.CancelFunc
	// stopping is closed by Stop: the poller ends at once rather than at
	// its next tick (which may be an hour away).
	stopping chan struct{}

	// attempts are the deliveries in progress, whose leases the renewer
	// extends.
	attemptsMu sync.Mutex
	attempts   map[*attempt]struct{}

	bodies bodies // blobs' bytes handed over by their writer (Remember)
}

// attempt is one job being delivered.
type attempt struct {
	leases []store.Lease
	cancel context.CancelCauseFunc
}

// errLeaseLost ends an attempt whose recipients another claim now owns.
var errLeaseLost = errors.New("lease lost: another node owns these recipients now")

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
	q := &Queue{d: d, log: d.Log.With("stage", "queue"), stopping: make(chan struct{}), attempts: map[*attempt]struct{}{}}
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
	q.wg.Add(2)
	go q.poller(ctx)
	go q.renewer(ctx)
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
	for k := range a.Queue {
		q.leaseNew(a.Queue[k].Recipients, running)
	}
	out, err := q.d.Store.Accept(ctx, a)
	if err != nil {
		return err
	}
	if running {
		q.handOff(versioned.MemoOf(ctx), a.Queue, out)
	}
	return nil
}

// leaseNew sets the first attempt time of recipients about to be queued
// and, while the queue runs, leases the queued ones to this node.
func (q *Queue) leaseNew(rcpts []store.Recipient, running bool) {
	now := q.d.Clock.Now()
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

// handOff gives the workers the queued recipients just committed (out[k]
// are msgs[k]'s, nil when it was not queued) that are leased to this node.
// memo holds the versions the acceptance read (nil: none): the first
// attempt, when it follows within memoFresh, is part of the same message
// and reads them from there instead of from the store again.
func (q *Queue) handOff(memo *versioned.Memo, msgs []store.QueuedMessage, out [][]store.Recipient) {
	var jobs []pendingJob
	now := q.d.Clock.Now()
	for k, rs := range out {
		job := store.Job{Message: msgs[k].Message}
		for _, r := range rs {
			if r.State == store.Queued && r.LeaseOwner == q.d.Node {
				job.Recipients = append(job.Recipients, r)
			}
		}
		if len(job.Recipients) > 0 {
			jobs = append(jobs, pendingJob{job, memo, now})
		}
	}
	if len(jobs) > 0 {
		q.push(jobs...)
	}
}

// pendingJob is a job waiting for a worker, with the versions its
// message's acceptance read when it comes from the in-memory hand-off.
type pendingJob struct {
	store.Job
	memo *versioned.Memo
	at   time.Time // when it was handed over
}

// memoFresh bounds how long after its acceptance a first attempt still
// uses the versions the acceptance read: a job that waited longer behind
// a backlog reads them anew, so a change made meanwhile applies to it.
const memoFresh = time.Second

// context is ctx with the job's versions while they are fresh.
func (j pendingJob) context(ctx context.Context, now time.Time) context.Context {
	if j.memo == nil || now.Sub(j.at) > memoFresh {
		return ctx
	}
	return j.memo.Context(ctx)
}

func (q *Queue) push(jobs ...pendingJob) {
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
	// A shared store wakes the poller when other nodes make work due.
	var wake <-chan struct{}
	if w, ok := q.d.Store.(store.QueueWatcher); ok {
		wake = w.WatchQueue(ctx)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.stopping:
			return
		case <-t.C:
		case _, ok := <-wake:
			if !ok {
				wake = nil
			}
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
		pj := make([]pendingJob, len(jobs))
		for i, j := range jobs {
			pj[i] = pendingJob{Job: j}
		}
		q.push(pj...)
	}
	return len(jobs), nil
}

// renewer extends the leases of the attempts in progress every third of
// the lease, so a long delivery keeps its recipients.
func (q *Queue) renewer(ctx context.Context) {
	defer q.wg.Done()
	iv := q.d.Config.Lease.Duration / 3
	if iv <= 0 {
		iv = time.Minute
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
		if err := q.RenewLeases(ctx); err != nil && ctx.Err() == nil {
			q.log.Error("renewing the leases of deliveries in progress", "err", err)
		}
	}
}

// RenewLeases extends the leases of every attempt in progress to a full
// lease from now, in one store write (the renewer calls it; tests call it
// after moving the clock). An attempt that lost any of its recipients to
// another claim is cancelled: the recipients still its own are deferred,
// and the others are the new holder's to deliver.
func (q *Queue) RenewLeases(ctx context.Context) error {
	q.attemptsMu.Lock()
	var leases []store.Lease
	for a := range q.attempts {
		leases = append(leases, a.leases...)
	}
	q.attemptsMu.Unlock()
	if len(leases) == 0 {
		return nil
	}
	lost, err := q.d.Store.RenewLeases(ctx, q.d.Node, leases, q.d.Clock.Now().Add(q.d.Config.Lease.Duration))
	if err != nil || len(lost) == 0 {
		return err
	}
	gone := map[int64]bool{}
	for _, id := range lost {
		gone[id] = true
	}
	q.attemptsMu.Lock()
	defer q.attemptsMu.Unlock()
	for a := range q.attempts {
		for _, l := range a.leases {
			if gone[l.ID] {
				a.cancel(errLeaseLost)
				break
			}
		}
	}
	return nil
}

// begin registers an attempt of job for renewal and returns its context.
func (q *Queue) begin(ctx context.Context, job store.Job) (context.Context, func()) {
	actx, cancel := context.WithCancelCause(ctx)
	a := &attempt{leases: leasesOf(job.Recipients), cancel: cancel}
	q.attemptsMu.Lock()
	q.attempts[a] = struct{}{}
	q.attemptsMu.Unlock()
	return actx, func() {
		q.attemptsMu.Lock()
		delete(q.attempts, a)
		q.attemptsMu.Unlock()
		cancel(nil)
	}
}

func leasesOf(rs []store.Recipient) []store.Lease {
	out := make([]store.Lease, len(rs))
	for i, r := range rs {
		out[i] = store.Lease{ID: r.ID, Token: r.LeaseToken}
	}
	return out
}

// stillOurs drops the recipients of a job whose lease is no longer this
// node's. A job that waited in memory until less than half its lease was
// left (a backlog) renews it first; another node may have claimed some of
// its recipients meanwhile, and those are not attempted.
func (q *Queue) stillOurs(ctx context.Context, job store.Job, log *slog.Logger) store.Job {
	if len(job.Recipients) == 0 {
		return job
	}
	now := q.d.Clock.Now()
	until := job.Recipients[0].LeaseUntil
	for _, r := range job.Recipients[1:] {
		if r.LeaseUntil.Before(until) {
			until = r.LeaseUntil
		}
	}
	if until.Sub(now) > q.d.Config.Lease.Duration/2 {
		return job
	}
	lost, err := q.d.Store.RenewLeases(ctx, q.d.Node, leasesOf(job.Recipients), now.Add(q.d.Config.Lease.Duration))
	if err != nil {
		if now.Before(until) {
			return job // the lease still holds; the attempt's outcome is fenced anyway
		}
		log.Error("lease expired and could not be renewed; leaving the message to the next claim", "err", err)
		job.Recipients = nil
		return job
	}
	if len(lost) == 0 {
		return job
	}
	gone := map[int64]bool{}
	for _, id := range lost {
		gone[id] = true
	}
	var kept []store.Recipient
	for _, r := range job.Recipients {
		if !gone[r.ID] {
			kept = append(kept, r)
		}
	}
	log.Warn("lease lost before the attempt; another node delivers these recipients", "lost", len(lost), "kept", len(kept))
	job.Recipients = kept
	return job
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
		q.pending[0] = pendingJob{}
		q.pending = q.pending[1:]
		q.mu.Unlock()
		q.processSafely(job.context(ctx, q.d.Clock.Now()), job.Job)
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
		u := store.RecipientUpdate{ID: r.ID, LeaseToken: r.LeaseToken, State: store.Queued, LastReply: panicReply, CountAttempt: true, DelayNotified: r.DelayNotified}
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
	res, err := q.d.Store.Complete(context.WithoutCancel(ctx), store.Completion{TenantID: m.TenantID, MessageID: m.ID, Updates: updates, Events: events})
	if err != nil {
		// The lease runs out and the attempt is repeated then.
		log.Error("recording the failed attempt", "err", err)
	}
	q.logStale(log, res.Stale)
}

// settledDeleter is a spool that keeps blobs the archive still needs
// (archive.Guard) and can be told whether it does, as the transaction that
// finished their message found.
type settledDeleter interface {
	DeleteSettled(ctx context.Context, key string, archiveHolds bool) error
}

// deleteDone removes the blob of a message that is done (store.Completed).
func (q *Queue) deleteDone(ctx context.Context, key string, archiveHolds bool) error {
	if sd, ok := q.d.Spool.(settledDeleter); ok {
		return sd.DeleteSettled(ctx, key, archiveHolds)
	}
	return q.d.Spool.Delete(ctx, key)
}

// Process makes one delivery attempt for a job's recipients and records the
// outcome. Exported for tests that drive the queue synchronously.
func (q *Queue) Process(ctx context.Context, job store.Job) {
	m := job.Message
	log := q.log.With("id", m.ID, "tenant", m.TenantID)
	if job = q.stillOurs(ctx, job, log); len(job.Recipients) == 0 {
		return
	}
	// Read through its checksum before any byte goes out: a missing or
	// damaged blob (moved aside) holds the message instead of delivering
	// it in part.
	body, err := q.load(ctx, m)
	if errors.Is(err, blob.ErrNotFound) || errors.Is(err, blob.ErrDamaged) {
		log.Error("message blob missing or damaged; holding message", "err", err)
		if err := q.d.Store.MarkCorrupt(ctx, m.ID, "blob unreadable: "+err.Error()); err != nil {
			log.Error("mark corrupt", "err", err)
		}
		return
	} else if err != nil {
		// Storage unreachable: the lease runs out and the attempt is repeated.
		log.Error("message blob cannot be read now", "err", err)
		return
	}

	// The attempt's lookups (lists, routes) read each store version once:
	// a first attempt handed over at acceptance keeps the versions the
	// acceptance read (its ctx carries them), any other reads them anew.
	if !versioned.HasMemo(ctx) {
		ctx = versioned.WithMemo(ctx)
	}
	actx, end := q.begin(ctx, job)
	defer end()
	open := func() (io.ReadCloser, error) { return openWithPrefix(ctx, q.d.Spool, m) }
	if body != nil {
		open = func() (io.ReadCloser, error) {
			return io.NopCloser(io.MultiReader(strings.NewReader(m.Prefix), bytes.NewReader(body))), nil
		}
	}
	taken, listCopies := q.takeLists(actx, m, job.Recipients, open, log)
	byDomain := map[string][]store.Recipient{}
	var order []string
	for _, r := range job.Recipients {
		if _, ok := taken[r.ID]; ok {
			continue
		}
		dom := domainOf(r.Addr)
		if _, ok := byDomain[dom]; !ok {
			order = append(order, dom)
		}
		byDomain[dom] = append(byDomain[dom], r)
	}
	var updates []store.RecipientUpdate
	var events []store.Event
	notices := map[dsn.Kind][]dsn.Recipient{}
	about := map[dsn.Kind][]int64{}
	record := func(r store.Recipient, res delivery.Result, now time.Time) {
		u, ev, n := q.outcome(m, r, res, now)
		updates = append(updates, u)
		events = append(events, ev)
		if n.entry != nil {
			notices[n.kind] = append(notices[n.kind], *n.entry)
			about[n.kind] = append(about[n.kind], r.ID)
		}
	}
	if len(taken) > 0 {
		now := q.d.Clock.Now()
		for _, r := range job.Recipients {
			if res, ok := taken[r.ID]; ok {
				record(r, res, now)
			}
		}
	}
	for _, dom := range order {
		// RFC 5321 4.5.3.1.8: a server must take 100 recipients in one
		// transaction and may refuse more (452); a larger group (a
		// mailing list's members at one provider) goes in several.
		for rs := byDomain[dom]; len(rs) > 0; {
			n := min(len(rs), maxRcptsPerTransaction)
			results := q.attempt(actx, m, dom, rs[:n], open)
			now := q.d.Clock.Now()
			for i, r := range rs[:n] {
				record(r, results[i], now)
			}
			rs = rs[n:]
		}
	}
	if errors.Is(context.Cause(actx), errLeaseLost) {
		log.Warn("attempt stopped: " + errLeaseLost.Error())
	}
	// DSNs are written now and queued in the transaction that records the
	// outcomes they report: durable together, or not at all.
	pending := listCopies
	for _, kind := range []dsn.Kind{dsn.Failure, dsn.Delay, dsn.Relayed} {
		rcpts := notices[kind]
		if len(rcpts) == 0 {
			continue
		}
		qm, err := q.prepareDSN(ctx, m, kind, rcpts)
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
		q.leaseNew(qm.Recipients, q.running())
		pending = append(pending, store.Notice{Message: qm, About: about[kind]})
		for _, r := range rcpts {
			events = append(events, store.Event{MessageID: m.ID, TenantID: m.TenantID, At: q.d.Clock.Now(), Kind: "dsn",
				Rcpt: r.FinalRecipient, Detail: fmt.Sprintf("%s notice to <%s> queued as %s", strings.ToLower(kind.String()), m.MailFrom, qm.Message.ID)})
		}
	}
	res, err := q.d.Store.Complete(ctx, store.Completion{TenantID: m.TenantID, MessageID: m.ID, Updates: updates, Events: events, Notices: pending})
	if err != nil {
		// The lease expires and the attempt is repeated: a possible
		// duplicate, never a loss. The notices' blobs stay: whether the
		// transaction committed is not known for every error, and the
		// spool's recovery removes the blobs of messages never queued.
		log.Error("recording delivery outcome failed", "err", err)
		return
	}
	q.logStale(log, res.Stale)
	// Notices not queued (every recipient they report on is another
	// claim's now) leave only their blob behind.
	var queued []store.QueuedMessage
	var out [][]store.Recipient
	for i, n := range pending {
		if res.Notices[i] != nil {
			queued = append(queued, n.Message)
			out = append(out, res.Notices[i])
		} else if err := q.d.Spool.Delete(ctx, n.Message.Message.BlobKey); err != nil {
			log.Warn("remove unqueued notice", "err", err)
		}
	}
	if len(queued) > 0 && q.running() {
		q.handOff(nil, queued, out)
	}
	if res.Done {
		if err := q.deleteDone(ctx, m.BlobKey, res.ArchiveHolds); err != nil {
			log.Error("remove blob", "err", err)
		}
	}
}

// logStale reports outcomes the store refused: another node claimed
// those recipients after this node's lease ran out, and records theirs.
func (q *Queue) logStale(log *slog.Logger, stale []int64) {
	if len(stale) > 0 {
		log.Warn("outcome not recorded: "+errLeaseLost.Error(), "recipients", stale)
	}
}

func (q *Queue) running() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.started && !q.closed
}

// maxRcptsPerTransaction is how many recipients one SMTP transaction
// carries at most.
const maxRcptsPerTransaction = 100

func domainOf(a string) string {
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		return strings.ToLower(a[i+1:])
	}
	return ""
}

// memBodyMax is the largest message an attempt keeps in memory: read once
// through its checksum, the bytes checked are the bytes sent, and the
// spool is not read a second time for the delivery. Larger messages are
// checked, then streamed from the spool.
const memBodyMax = 256 << 10

// load reads m's blob through its checksum before an attempt, unless its
// writer handed its bytes over (Remember). It returns
// the blob's bytes when m is small enough to keep (memBodyMax), else nil
// once the whole blob has been read and found intact. A damaged blob is
// moved aside (blob.Check) and its error returned.
func (q *Queue) load(ctx context.Context, m store.Message) ([]byte, error) {
	if b := q.recall(m.BlobKey); b != nil && int64(len(m.Prefix)+len(b)) == m.Size {
		return b, nil
	}
	if m.Size <= 0 || m.Size > memBodyMax {
		return nil, blob.Check(ctx, q.d.Spool, m.BlobKey)
	}
	r, err := q.d.Spool.Open(ctx, m.BlobKey)
	if err != nil {
		return nil, err
	}
	b := bytes.NewBuffer(make([]byte, 0, m.Size+512))
	_, err = b.ReadFrom(r)
	r.Close()
	if errors.Is(err, blob.ErrDamaged) {
		return nil, blob.Check(ctx, q.d.Spool, m.BlobKey)
	}
	if err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// attempt resolves the route and delivers to one domain's recipients;
// open returns the message as delivered.
func (q *Queue) attempt(ctx context.Context, m store.Message, dom string, rs []store.Recipient, open func() (io.ReadCloser, error)) []delivery.Result {
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
		Body: open}
	req.TenantID, req.MessageID, req.Received = m.TenantID, m.ID, m.ReceivedAt // a mailbox delivery is idempotent by them
	return q.d.Deliver.Deliver(ctx, targets, req)
}

// openWithPrefix returns the message as delivered: the pipeline's verdict
// headers (Message.Prefix) followed by the stored blob.
func openWithPrefix(ctx context.Context, bs blob.Store, m store.Message) (io.ReadCloser, error) {
	f, err := bs.Open(ctx, m.BlobKey)
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
	u := store.RecipientUpdate{ID: r.ID, LeaseToken: r.LeaseToken, LastCode: res.Code, LastReply: replyText(res), RemoteMTA: res.Remote, CountAttempt: true, DelayNotified: r.DelayNotified}
	ev := store.Event{MessageID: m.ID, TenantID: m.TenantID, At: now, Rcpt: r.Addr, Remote: res.Remote, Detail: replyText(res)}
	if res.TLS != "" {
		// Tracking shows how each delivery attempt was protected.
		ev.Detail += " [TLS: " + res.TLS + "]"
	}
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
	qm, err := q.prepareDSN(ctx, m, kind, rcpts)
	if err != nil {
		return "", err
	}
	return q.commit(ctx, qm)
}

// prepareDSN builds a DSN about m and writes its blob; the caller queues it.
func (q *Queue) prepareDSN(ctx context.Context, m store.Message, kind dsn.Kind, rcpts []dsn.Recipient) (store.QueuedMessage, error) {
	if m.MailFrom == "" || m.Direction == store.DSN {
		return store.QueuedMessage{}, errors.New("no DSN for a null-sender message")
	}
	orig, err := q.d.Spool.Open(ctx, m.BlobKey)
	if err != nil {
		return store.QueuedMessage{}, fmt.Errorf("open original: %w", err)
	}
	defer orig.Close()
	now := q.d.Clock.Now()
	body, err := dsn.Build(dsn.Report{
		Kind: kind, ReportingMTA: q.d.Hostname, To: m.MailFrom, EnvelopeID: m.EnvID, ArrivalDate: m.ReceivedAt,
		Now: now, Recipients: rcpts, Original: orig, ReturnFull: m.RetFull, MaxOriginal: q.d.Config.MaxDSNOrigLen,
		Language: q.d.Config.DSNLanguage,
	})
	if err != nil {
		return store.QueuedMessage{}, fmt.Errorf("build DSN: %w", err)
	}
	return q.prepare(ctx, store.Message{TenantID: m.TenantID, Direction: store.DSN, MailFrom: "", Subject: "Delivery Status Notification (" + kind.String() + ")"},
		[]string{m.MailFrom}, bytes.NewReader(body), fmt.Sprintf("%s notice about %s", strings.ToLower(kind.String()), m.ID))
}

// Submit writes a locally generated message (DSNs, later notices and
// released quarantine copies) durably and enqueues it.
func (q *Queue) Submit(ctx context.Context, m store.Message, rcpts []string, body io.Reader, why string) (string, error) {
	qm, err := q.prepare(ctx, m, rcpts, body, why)
	if err != nil {
		return "", err
	}
	return q.commit(ctx, qm)
}

// commit queues a prepared message, or removes its blob.
func (q *Queue) commit(ctx context.Context, qm store.QueuedMessage) (string, error) {
	if err := q.Enqueue(ctx, qm.Message, qm.Recipients, qm.Events); err != nil {
		q.d.Spool.Delete(context.WithoutCancel(ctx), qm.Message.BlobKey)
		return "", err
	}
	return qm.Message.ID, nil
}

// prepare writes a locally generated message's blob durably and returns
// its queue entry, not yet committed.
func (q *Queue) prepare(ctx context.Context, m store.Message, rcpts []string, body io.Reader, why string) (store.QueuedMessage, error) {
	now := q.d.Clock.Now()
	m.ID = store.NewMessageID(now)
	m.ReceivedAt = now
	m.ClientIP = "local"
	m.Helo = q.d.Hostname
	key, size, err := blob.Put(ctx, q.d.Spool, m.ID, body)
	if err != nil {
		return store.QueuedMessage{}, fmt.Errorf("write message: %w", err)
	}
	m.BlobKey, m.Size = key, size
	var rs []store.Recipient
	for _, r := range rcpts {
		if a, err := addr.Parse(r); err == nil {
			r = a.String()
		}
		rs = append(rs, store.Recipient{Addr: r, State: store.Queued, NextAttempt: now})
	}
	ev := []store.Event{{MessageID: m.ID, TenantID: m.TenantID, At: now, Kind: "received", Remote: "local",
		Detail: fmt.Sprintf("%s generated by mailgate (%s) to %s", m.Direction, why, strings.Join(rcpts, ","))}}
	return store.QueuedMessage{Message: m, Recipients: rs, Events: ev}, nil
}
