package policy

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// RcptSettings is implemented by the Settings the Runner passes to checks:
// message-level Get answers for the tenant and the first recipient's domain;
// ForRcpt gives one recipient's effective settings, for checks whose answer
// differs per recipient (lists, thresholds).
type RcptSettings interface {
	Settings
	ForRcpt(addr string) Settings
}

// Stage is one body check with its deadline and failure policy.
type Stage struct {
	Check   BodyCheck
	Timeout time.Duration // default 30 s
	// OnError is what happens when the check cannot judge (its error, its
	// deadline): TempFail (default: the client retries later, nothing is
	// "clean" by accident) or Header (accept, marking the message unscanned).
	OnError Action
}

// Runner runs body checks concurrently and merges their findings in stage
// order, so the outcome never depends on which check finished first.
type Runner struct {
	Stages []Stage
	// Budget, when positive, bounds all stages of one Run together (they
	// run side by side, so it is the longest a Run takes); a stage still
	// running when it is used up fails with its OnError action.
	Budget time.Duration
	Log    *slog.Logger
	// Observer, when set, hears of every stage's outcome (metrics).
	Observer Observer
}

// Observer hears how long each stage took and what it found; err is set
// when the stage could not judge (its error, its deadline, a panic), and
// its findings are then the failure policy's. Called from the stages'
// goroutines; it must not block.
type Observer interface {
	StageDone(check string, took time.Duration, findings []Finding, err error)
}

// Run runs every stage and returns the merged findings and one verdict per
// recipient of m.Env.
func (r *Runner) Run(ctx context.Context, m *Message, s RcptSettings) ([]Finding, []Verdict) {
	log := r.Log
	if log == nil {
		log = slog.Default()
	}
	if r.Budget > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.Budget)
		defer cancel()
	}
	results := make([][]Finding, len(r.Stages))
	var wg sync.WaitGroup
	for i, st := range r.Stages {
		wg.Add(1)
		go func(i int, st Stage) {
			defer wg.Done()
			results[i] = runStage(ctx, st, m, s, log, r.Observer)
		}(i, st)
	}
	wg.Wait()
	var all []Finding
	for _, fs := range results {
		all = append(all, fs...)
	}
	return all, Resolve(m.Env.Rcpts, all)
}

func runStage(ctx context.Context, st Stage, m *Message, s Settings, log *slog.Logger, obs Observer) []Finding {
	name := st.Check.Name()
	start := time.Now()
	out, err := judgeStage(ctx, st, m, s, log, name)
	if obs != nil {
		obs.StageDone(name, time.Since(start), out, err)
	}
	return out
}

// judgeStage runs one stage; err is why it could not judge, and the
// findings are then its failure policy's.
func judgeStage(ctx context.Context, st Stage, m *Message, s Settings, log *slog.Logger, name string) (out []Finding, err error) {
	timeout := st.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	defer func() {
		// A check that panics is a bug; the message must still get a safe verdict.
		if p := recover(); p != nil {
			log.Error("check panicked", "check", name, "panic", p)
			err = fmt.Errorf("panic: %v", p)
			out = []Finding{failure(st, name, err)}
		}
	}()
	type res struct {
		fs  []Finding
		err error
	}
	ch := make(chan res, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				ch <- res{err: fmt.Errorf("panic: %v", p)}
			}
		}()
		fs, err := st.Check.Check(ctx, m, s)
		ch <- res{fs, err}
	}()
	var r res
	select {
	case r = <-ch:
	case <-ctx.Done():
		r.err = ctx.Err()
	}
	if r.err != nil {
		log.Warn("check could not judge", "check", name, "err", r.err)
		return []Finding{failure(st, name, r.err)}, r.err
	}
	for i := range r.fs {
		if r.fs[i].Check == "" {
			r.fs[i].Check = name
		}
	}
	return r.fs, nil
}

func failure(st Stage, name string, err error) Finding {
	a := st.OnError
	if a != Header {
		a = TempFail
	}
	f := Finding{Check: name, Symbol: "CHECK_FAILED", Action: a, Reason: name + ": " + err.Error(),
		Code: 451, Enhanced: "4.7.0", Public: "Message could not be checked now, please try again later"}
	if a == Header {
		f.Headers = []HeaderField{{Name: "X-Mailgate-Unchecked", Value: name}}
	}
	return f
}

// Layered is Settings read from several layers, most specific first.
type Layered []map[string]string

// Get returns the first layer's value for key.
func (l Layered) Get(key string) (string, bool) {
	for _, m := range l {
		if v, ok := m[key]; ok {
			return v, true
		}
	}
	return "", false
}

// PerRcpt is the RcptSettings the smtpin stage builds: a message-level view
// and one Layered view per recipient.
type PerRcpt struct {
	Message Settings
	Rcpt    map[string]Settings
}

// Get answers at message level.
func (p PerRcpt) Get(key string) (string, bool) {
	if p.Message == nil {
		return "", false
	}
	return p.Message.Get(key)
}

// ForRcpt returns one recipient's settings (the message level when unknown).
func (p PerRcpt) ForRcpt(addr string) Settings {
	if s, ok := p.Rcpt[addr]; ok {
		return s
	}
	if p.Message == nil {
		return MapSettings{}
	}
	return p.Message
}

// ForRcpt returns rcpt's settings from s when it offers per-recipient
// values, and s itself otherwise. Checks use it instead of a type assertion.
func ForRcpt(s Settings, rcpt string) Settings {
	if rs, ok := s.(RcptSettings); ok {
		return rs.ForRcpt(rcpt)
	}
	return s
}
