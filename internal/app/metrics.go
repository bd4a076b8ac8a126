package app

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailgate/mailgate/internal/delivery"
	"github.com/mailgate/mailgate/internal/queue"
	"github.com/mailgate/mailgate/internal/smtpin"
	"github.com/mailgate/mailgate/internal/store"
)

// metrics is a per-App registry (no global state, so tests can run several apps).
type metrics struct {
	reg       *prometheus.Registry
	accepted  *prometheus.CounterVec
	delivered *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.accepted = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailgate_messages_accepted_total",
		Help: "Messages accepted (250) per listener."}, []string{"listener"})
	m.delivered = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailgate_delivery_results_total",
		Help: "Per-recipient delivery attempt outcomes."}, []string{"result"})
	m.reg.MustRegister(m.accepted, m.delivered, prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

type countingEnqueuer struct {
	q    smtpin.Enqueuer
	c    prometheus.Counter
	kind smtpin.Kind
}

func (e countingEnqueuer) Enqueue(ctx context.Context, m store.Message, r []store.Recipient, ev []store.Event) error {
	err := e.q.Enqueue(ctx, m, r, ev)
	if err == nil {
		e.c.Inc()
	}
	return err
}

func (m *metrics) wrapEnqueuer(q smtpin.Enqueuer, k smtpin.Kind) smtpin.Enqueuer {
	return countingEnqueuer{q: q, c: m.accepted.WithLabelValues(k.String()), kind: k}
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

func (a *App) healthz(w http.ResponseWriter, r *http.Request) {
	if err := a.Spool.Healthy(); err != nil {
		http.Error(w, "spool: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	if err := a.Spool.CheckSpace(); err != nil {
		http.Error(w, "spool: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("ok\n"))
}
