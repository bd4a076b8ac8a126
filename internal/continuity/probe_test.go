package continuity_test

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/continuity"
	"github.com/mailgate/mailgate/internal/store"
)

// staller is the primary service's address: it forwards connections to
// the real server, or, once stopped, accepts them and never answers.
type staller struct {
	ln      net.Listener
	to      string
	stalled atomic.Bool
	conns   atomic.Int32
	mu      sync.Mutex
	held    []net.Conn
}

func newStaller(t *testing.T, to string) *staller {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &staller{ln: ln, to: to}
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.held {
			c.Close()
		}
		s.mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			s.mu.Lock()
			s.held = append(s.held, c)
			s.mu.Unlock()
			if s.stalled.Load() {
				continue // holds the connection, says nothing
			}
			go func() {
				up, err := net.Dial("tcp", to)
				if err != nil {
					c.Close()
					return
				}
				go func() { io.Copy(up, c); up.Close() }()
				io.Copy(c, up)
				c.Close()
			}()
		}
	}()
	return s
}

// prober builds a prober for node whose switches go through the
// service directly, recording each.
func (e *env) prober(switches *[]string) *continuity.Prober {
	var mu sync.Mutex
	return &continuity.Prober{Service: e.svc, Router: e.router, Probe: e.dl.Probe,
		Switch: func(ctx context.Context, tenantID int64, domain, mode, reason string) error {
			mu.Lock()
			*switches = append(*switches, mode+": "+reason)
			mu.Unlock()
			d, err := e.st.DomainByName(ctx, domain)
			if err != nil {
				return err
			}
			_, err = e.svc.Switch(ctx, d, mode, continuity.FailoverActor, reason)
			return err
		}}
}

// TestFailoverProbe: probes of a primary that stops answering switch the
// domain to emergency only after fail_after of failures; once it answers
// again, the switch back waits for recover_after of passing probes
// (hysteresis); two nodes probing at the same time probe once.
func TestFailoverProbe(t *testing.T) {
	e := newEnv(t)
	st := newStaller(t, e.primary.Addr())
	e.must(e.st.SetRoutes(e.ctx, e.tenant.ID, e.dom.ID, []store.Route{{Priority: 10, Target: "smtp://" + st.ln.Addr().String(), TLS: "opportunistic"}}))
	dom := "example.test"
	e.set(store.ScopeDomain, dom, continuity.KeyFailover, "on")
	e.set(store.ScopeDomain, dom, continuity.KeyCanary, "canary@example.test")
	e.set(store.ScopeDomain, dom, continuity.KeyProbeTimeout, "1s")
	e.set(store.ScopeDomain, dom, continuity.KeyAutoBack, "on")
	var switches []string
	p1, p2 := e.prober(&switches), e.prober(&switches)
	tick := func(p *continuity.Prober) int {
		t.Helper()
		n, err := p.Tick(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Healthy: one probe across two nodes, no switch, nothing logged.
	if n := tick(p1) + tick(p2); n != 1 {
		t.Fatalf("%d probes by two nodes at once, want 1", n)
	}
	if st.conns.Load() != 1 || len(e.events("")) != 0 {
		t.Fatalf("healthy probe: %d connections, events %+v", st.conns.Load(), e.events(""))
	}
	// Not due again within the interval.
	e.clk.Advance(30 * time.Second)
	if n := tick(p1); n != 0 {
		t.Fatal("probed before the interval passed")
	}
	// The primary stops answering.
	st.stalled.Store(true)
	for _, step := range []time.Duration{30 * time.Second, 5 * time.Minute, 4 * time.Minute} { // t0+1m, +6m, +10m
		e.clk.Advance(step)
		if n := tick(p1) + tick(p2); n != 1 {
			t.Fatalf("%d probes, want 1", n)
		}
		if len(switches) != 0 {
			t.Fatalf("switched after %s of failures: %v", e.clk.Now().Sub(t0.Add(time.Minute)), switches)
		}
	}
	fails := e.events(continuity.EventProbeFailed)
	if len(fails) != 3 || !strings.Contains(fails[0].Detail, "canary@example.test") {
		t.Fatalf("failure events: %+v", fails)
	}
	e.clk.Advance(time.Minute) // failing for 10 minutes now
	tick(p1)
	if len(switches) != 1 || !strings.HasPrefix(switches[0], "emergency: automatic failover") {
		t.Fatalf("switches: %v", switches)
	}
	if m := e.mode(); m.Mode != store.ModeEmergency || m.ChangedBy != continuity.FailoverActor {
		t.Fatalf("mode: %+v", m)
	}
	// It answers again: no switch back before 30 minutes of passing probes.
	st.stalled.Store(false)
	e.clk.Advance(time.Minute)
	tick(p1)
	if len(e.events(continuity.EventProbeRecovered)) != 1 {
		t.Fatal("recovery not logged")
	}
	for i := 0; i < 29; i++ {
		e.clk.Advance(time.Minute)
		tick(p2)
	}
	if len(switches) != 1 {
		t.Fatalf("switched back too early: %v", switches)
	}
	e.clk.Advance(time.Minute)
	tick(p1)
	if len(switches) != 2 || !strings.HasPrefix(switches[1], "primary: automatic switch back") || e.mode().Mode != store.ModePrimary {
		t.Fatalf("switches: %v, mode %+v", switches, e.mode())
	}
	if ps, _ := e.svc.HandbackStatus(e.ctx, e.tenant.ID, dom); len(ps) != 1 {
		t.Fatalf("switch back did not start the hand-back: %+v", ps)
	}
}

// TestFailoverManualSwitchStays: a domain an administrator switched to
// emergency is not switched back by passing probes, and failover off
// means no probe at all.
func TestFailoverManualSwitchStays(t *testing.T) {
	e := newEnv(t)
	dom := "example.test"
	var switches []string
	p := e.prober(&switches)
	if n, _ := p.Tick(e.ctx); n != 0 {
		t.Fatal("probed with failover off")
	}
	e.set(store.ScopeTenant, "", continuity.KeyFailover, "on")
	e.set(store.ScopeTenant, "", continuity.KeyAutoBack, "on")
	e.set(store.ScopeDomain, dom, continuity.KeyRecoverAfter, "0s")
	if _, err := e.svc.Switch(e.ctx, e.dom, store.ModeEmergency, "it@example.test", "drill"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if n, err := p.Tick(e.ctx); n != 1 || err != nil {
			t.Fatalf("tick: %d %v", n, err)
		}
		e.clk.Advance(2 * time.Minute)
	}
	if len(switches) != 0 || e.mode().Mode != store.ModeEmergency {
		t.Fatalf("an administrator's switch was undone: %v", switches)
	}
	// The probe used the default canary, the domain's postmaster.
	if n := len(e.primary.Messages()); n != 0 {
		t.Fatalf("a probe sent a message: %d", n)
	}
}
