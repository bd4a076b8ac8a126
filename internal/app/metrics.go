package app

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailgate/mailgate/internal/delivery"
	"github.com/mailgate/mailgate/internal/imapd"
	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/queue"
	"github.com/mailgate/mailgate/internal/smtpin"
	"github.com/mailgate/mailgate/internal/store"
)

// metrics is a per-App registry (no global state, so tests can run several
// apps). The packages report through small hooks (smtpin.Observer,
// policy.Observer, ...) so only this file knows about Prometheus.
type metrics struct {
	reg       *prometheus.Registry
	accepted  *prometheus.CounterVec
	delivered *prometheus.CounterVec

	sessions      *prometheus.GaugeVec
	sessionsTotal *prometheus.CounterVec
	replies       *prometheus.CounterVec
	verdicts      *prometheus.CounterVec
	checkSeconds  *prometheus.HistogramVec
	clamdErrors   prometheus.Counter
	storeErrors   *prometheus.CounterVec
	outbound      *prometheus.CounterVec
	imapTotal     prometheus.Counter
	imapCommands  *prometheus.CounterVec
	// imap is the node's IMAP server once started (its open connections).
	imap atomic.Pointer[imapd.Server]
}

// Metric names, listed so the dashboard test can check the panels against
// what the registry exposes.
const (
	mAccepted      = "mailgate_messages_accepted_total"
	mDelivery      = "mailgate_delivery_results_total"
	mSessions      = "mailgate_smtp_sessions"
	mSessionsTotal = "mailgate_smtp_sessions_total"
	mReplies       = "mailgate_smtp_replies_total"
	mVerdicts      = "mailgate_check_verdicts_total"
	mCheckSeconds  = "mailgate_check_duration_seconds"
	mClamdErrors   = "mailgate_clamd_errors_total"
	mStoreErrors   = "mailgate_store_errors_total"
	mOutbound      = "mailgate_outbound_actions_total"
	mQueue         = "mailgate_queue_recipients"
	mQueueOldest   = "mailgate_queue_oldest_age_seconds"
	mArchive       = "mailgate_archive_backlog_messages"
	mIMAP          = "mailgate_imap_sessions"
	mIMAPTotal     = "mailgate_imap_sessions_total"
	mIMAPCommands  = "mailgate_imap_commands_total"
)

// newMetrics builds the registry; status reads the queue and archive
// figures from the store when scraped.
func newMetrics(status func(ctx context.Context) (store.ClusterStatus, error)) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.accepted = prometheus.NewCounterVec(prometheus.CounterOpts{Name: mAccepted,
		Help: "Messages accepted (250) per listener."}, []string{"listener"})
	m.delivered = prometheus.NewCounterVec(prometheus.CounterOpts{Name: mDelivery,
		Help: "Per-recipient delivery attempt outcomes (delivered, deferred, failed)."}, []string{"result"})
	m.sessions = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: mSessions,
		Help: "SMTP connections open now, per listener."}, []string{"listener"})
	m.sessionsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{Name: mSessionsTotal,
		Help: "SMTP connections admitted, per listener."}, []string{"listener"})
	m.replies = prometheus.NewCounterVec(prometheus.CounterOpts{Name: mReplies,
		Help: "SMTP replies to MAIL, RCPT and DATA and connection refusals, by class (2xx, 4xx, 5xx), code and enhanced status code."},
		[]string{"listener", "class", "code", "enhanced"})
	m.verdicts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: mVerdicts,
		Help: "Check results per message: the authentication result (pass, fail, ...) for spf, dkim, dmarc and arc, else the strongest action a check recommended (clean when it found nothing, error when it could not judge)."},
		[]string{"check", "result"})
	m.checkSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: mCheckSeconds,
		Help:    "Time each check took per message (auth also per part: spf, dkim, arc, dmarc).",
		Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}, []string{"check"})
	m.clamdErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: mClamdErrors,
		Help: "Virus scans that could not judge (clamd down, slow or answering garbage)."})
	m.storeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: mStoreErrors,
		Help: "Store operations that failed: accept (committing a message), status (queue figures for the metrics), probe (readiness)."},
		[]string{"op"})
	m.outbound = prometheus.NewCounterVec(prometheus.CounterOpts{Name: mOutbound,
		Help: "Outbound messages checked, by the action decided (continue, tag, quarantine=hold, reject, tempfail, ...)."},
		[]string{"action"})
	m.imapTotal = prometheus.NewCounter(prometheus.CounterOpts{Name: mIMAPTotal,
		Help: "IMAP connections accepted."})
	m.imapCommands = prometheus.NewCounterVec(prometheus.CounterOpts{Name: mIMAPCommands,
		Help: "IMAP commands received, by name (OTHER for names the server does not know)."}, []string{"command"})
	m.reg.MustRegister(m.imapCommands, m.accepted, m.delivered, m.sessions, m.sessionsTotal, m.replies, m.verdicts, m.checkSeconds,
		m.clamdErrors, m.storeErrors, m.outbound, m.imapTotal,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}),
		newStatusCollector(status, m.storeErrors.WithLabelValues("status"), time.Now),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: mIMAP, Help: "IMAP connections open now."}, func() float64 {
			if s := m.imap.Load(); s != nil {
				return float64(s.Conns())
			}
			return 0
		}))
	// Every listener's series exist from the start, so rate() has a zero
	// to start from.
	for _, k := range []smtpin.Kind{smtpin.Inbound, smtpin.Outbound, smtpin.Submission} {
		m.sessions.WithLabelValues(k.String())
		m.sessionsTotal.WithLabelValues(k.String())
		m.accepted.WithLabelValues(k.String())
	}
	for _, r := range []string{"delivered", "deferred", "failed"} {
		m.delivered.WithLabelValues(r)
	}
	return m
}

// SessionOpened, SessionClosed and Reply make metrics an smtpin.Observer.
func (m *metrics) SessionOpened(k smtpin.Kind) {
	m.sessions.WithLabelValues(k.String()).Inc()
	m.sessionsTotal.WithLabelValues(k.String()).Inc()
}

func (m *metrics) SessionClosed(k smtpin.Kind) { m.sessions.WithLabelValues(k.String()).Dec() }

func (m *metrics) Reply(k smtpin.Kind, code int, enhanced string) {
	m.replies.WithLabelValues(k.String(), strconv.Itoa(code/100)+"xx", strconv.Itoa(code), enhanced).Inc()
}

// StageDone makes metrics a policy.Observer: one duration per check and
// one verdict per check named in the findings.
func (m *metrics) StageDone(check string, took time.Duration, findings []policy.Finding, err error) {
	m.checkSeconds.WithLabelValues(check).Observe(took.Seconds())
	if err != nil {
		m.verdicts.WithLabelValues(check, "error").Inc()
		if check == "av" {
			m.clamdErrors.Inc()
		}
		return
	}
	if len(findings) == 0 {
		m.verdicts.WithLabelValues(check, "clean").Inc()
		return
	}
	results := map[string]string{}
	var order []string
	for _, f := range findings {
		name := f.Check
		if name == "" {
			name = check
		}
		r := verdictOf(f)
		prev, seen := results[name]
		if !seen {
			order = append(order, name)
		}
		if !seen || stronger(r, prev) {
			results[name] = r
		}
	}
	for _, name := range order {
		m.verdicts.WithLabelValues(name, results[name]).Inc()
	}
}

// verdictOf is a finding's result: its authentication result ("spf=pass
// smtp.mailfrom=..." is "pass") or its action.
func verdictOf(f policy.Finding) string {
	if f.AuthResult != "" {
		if _, v, ok := strings.Cut(f.AuthResult, "="); ok {
			v, _, _ = strings.Cut(v, " ")
			return strings.ToLower(v)
		}
	}
	if f.Action == policy.Continue {
		return "clean"
	}
	return f.Action.String()
}

// stronger orders actions (a later action wins); authentication results
// are not ordered, so the first one stays.
func stronger(a, b string) bool {
	x, okA := policy.ParseAction(a)
	y, okB := policy.ParseAction(b)
	return okA && okB && x > y
}

// partTook records the duration of a part of a check (auth's spf, dkim...).
func (m *metrics) partTook(part string, d time.Duration) {
	m.checkSeconds.WithLabelValues(part).Observe(d.Seconds())
}

// outboundJudged counts an outbound message's action.
func (m *metrics) outboundJudged(a policy.Action) { m.outbound.WithLabelValues(a.String()).Inc() }

type countingEnqueuer struct {
	q    smtpin.Enqueuer
	c    prometheus.Counter
	m    *metrics
	kind smtpin.Kind
}

func (e countingEnqueuer) Enqueue(ctx context.Context, m store.Message, r []store.Recipient, ev []store.Event) error {
	err := e.q.Enqueue(ctx, m, r, ev)
	var refused *smtp.SMTPError
	switch {
	case err == nil:
		e.c.Inc()
	case errors.As(err, &refused), errors.Is(err, context.Canceled):
		// A verdict, or a client that went away: not the store's fault.
	default:
		e.m.storeErrors.WithLabelValues("accept").Inc()
	}
	return err
}

func (m *metrics) wrapEnqueuer(q smtpin.Enqueuer, k smtpin.Kind) smtpin.Enqueuer {
	return countingEnqueuer{q: q, c: m.accepted.WithLabelValues(k.String()), m: m, kind: k}
}

type countingDeliverer struct {
	d delivery.SMTPDeliverer
	m *metrics
}

func (c countingDeliverer) Deliver(ctx context.Context, t []delivery.Target, req delivery.Request) []delivery.Result {
	res := c.d.Deliver(ctx, t, req)
	for _, r := range res {
		switch {
		case r.OK():
			c.m.delivered.WithLabelValues("delivered").Inc()
		case r.Permanent:
			c.m.delivered.WithLabelValues("failed").Inc()
		default:
			c.m.delivered.WithLabelValues("deferred").Inc()
		}
	}
	return res
}

func (m *metrics) wrapDeliverer(d delivery.SMTPDeliverer) queue.Deliverer {
	return countingDeliverer{d: d, m: m}
}

// statusCollector exposes the queue depth, its oldest message's age and
// the archive backlog, read from the store when scraped. The figures are
// kept for statusTTL so frequent scrapes (several Prometheus servers, a
// dashboard refreshing) cost one query at most that often.
type statusCollector struct {
	read   func(ctx context.Context) (store.ClusterStatus, error)
	errors prometheus.Counter
	now    func() time.Time

	mu  sync.Mutex
	at  time.Time
	st  store.ClusterStatus
	ok  bool
	dQ  *prometheus.Desc
	dO  *prometheus.Desc
	dAr *prometheus.Desc
}

const (
	statusTTL     = 5 * time.Second
	statusTimeout = 3 * time.Second
)

func newStatusCollector(read func(ctx context.Context) (store.ClusterStatus, error), errs prometheus.Counter, now func() time.Time) *statusCollector {
	return &statusCollector{read: read, errors: errs, now: now,
		dQ: prometheus.NewDesc(mQueue, "Recipients waiting in the queue (cluster-wide), by state: queued (never attempted), deferred (after a failed attempt), held.",
			[]string{"state"}, nil),
		dO:  prometheus.NewDesc(mQueueOldest, "Age of the oldest message with a recipient still waiting for delivery (0 when none).", nil, nil),
		dAr: prometheus.NewDesc(mArchive, "Messages waiting to be written to the audit archive.", nil, nil)}
}

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.dQ; ch <- c.dO; ch <- c.dAr }

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	st, ok := c.status()
	if !ok {
		return // the store error is counted; no figures rather than stale ones
	}
	ch <- prometheus.MustNewConstMetric(c.dQ, prometheus.GaugeValue, float64(st.Queued), "queued")
	ch <- prometheus.MustNewConstMetric(c.dQ, prometheus.GaugeValue, float64(st.Deferred), "deferred")
	ch <- prometheus.MustNewConstMetric(c.dQ, prometheus.GaugeValue, float64(st.Held), "held")
	age := 0.0
	if !st.Oldest.IsZero() && st.Now.After(st.Oldest) {
		age = st.Now.Sub(st.Oldest).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(c.dO, prometheus.GaugeValue, age)
	ch <- prometheus.MustNewConstMetric(c.dAr, prometheus.GaugeValue, float64(st.ArchivePending))
}

func (c *statusCollector) status() (store.ClusterStatus, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.ok && now.Sub(c.at) < statusTTL && !now.Before(c.at) {
		return c.st, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	st, err := c.read(ctx)
	if err != nil {
		c.errors.Inc()
		c.ok = false
		return st, false
	}
	c.st, c.at, c.ok = st, now, true
	return st, true
}

// imapCommandNames are the commands counted by name; the name comes from
// the client, so anything else is counted as OTHER.
var imapCommandNames = map[string]bool{}

func init() {
	for _, n := range strings.Fields("NOOP CHECK LOGOUT CAPABILITY STARTTLS AUTHENTICATE UNAUTHENTICATE LOGIN ENABLE " +
		"CREATE DELETE RENAME SUBSCRIBE UNSUBSCRIBE STATUS LIST LSUB NAMESPACE GETQUOTA GETQUOTAROOT ID IDLE SELECT EXAMINE " +
		"CLOSE UNSELECT APPEND EXPUNGE FETCH STORE COPY MOVE SEARCH") {
		imapCommandNames[n] = true
		imapCommandNames["UID "+n] = true
	}
}

// imapCommand counts one IMAP command.
func (m *metrics) imapCommand(name string) {
	if !imapCommandNames[name] {
		name = "OTHER"
	}
	m.imapCommands.WithLabelValues(name).Inc()
}

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	c prometheus.Counter
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.c.Inc()
	}
	return c, err
}
