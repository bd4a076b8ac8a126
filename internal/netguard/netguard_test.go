package netguard_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/dnsx"
	"github.com/mailgate/mailgate/internal/dnsx/dnstest"
	"github.com/mailgate/mailgate/internal/netguard"
)

func TestInternal(t *testing.T) {
	internal := []string{
		"127.0.0.1", "127.8.9.10", "::1", "0.0.0.0", "::", "0.1.2.3",
		"10.0.0.1", "172.16.5.4", "172.31.255.255", "192.168.1.1", "fc00::1", "fd00:ec2::254",
		"169.254.169.254", "169.254.0.1", "fe80::1", "100.64.0.1", "100.100.100.200",
		"224.0.0.1", "ff02::1", "255.255.255.255", "240.0.0.1", "198.18.0.1", "192.0.0.170",
		"::ffff:127.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1",
		"64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1", "2002:7f00:1::1", "2002:a9fe:a9fe::",
		"fec0::1", "64:ff9b:1::1", "100::1", "192.0.2.1", "2001:db8::1",
	}
	public := []string{"1.1.1.1", "8.8.4.4", "172.32.0.1", "100.128.0.1", "2606:4700::1111",
		"64:ff9b::101:101", "2002:101:101::1", "::ffff:1.1.1.1"}
	for _, s := range internal {
		if !netguard.Internal(netip.MustParseAddr(s)) {
			t.Errorf("%s is internal", s)
		}
	}
	for _, s := range public {
		if netguard.Internal(netip.MustParseAddr(s)) {
			t.Errorf("%s is public", s)
		}
	}
	if !netguard.Internal(netip.Addr{}) {
		t.Error("the zero address is refused")
	}
}

func TestPolicyAllow(t *testing.T) {
	p := netguard.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("10.1.2.0/24"), netip.MustParsePrefix("127.0.0.0/8")}}
	for _, s := range []string{"10.1.2.3", "127.0.0.1", "::ffff:10.1.2.3", "1.1.1.1"} {
		if err := p.Check(netip.MustParseAddr(s)); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	for _, s := range []string{"10.1.3.1", "169.254.169.254", "::1"} {
		if err := p.Check(netip.MustParseAddr(s)); !errors.Is(err, netguard.ErrForbidden) {
			t.Errorf("%s: %v", s, err)
		}
	}
}

// Names are resolved through mailgate's resolver (here the in-process fake
// DNS), and one internal address among several is enough to refuse.
func TestCheckHostResolvesThroughTheResolver(t *testing.T) {
	dns := dnstest.Start(t)
	dns.Add("imap.public.test. 60 IN A 1.1.1.1")
	dns.Add("imap.public.test. 60 IN AAAA 2606:4700::1111")
	dns.Add("intranet.test. 60 IN A 10.0.0.5")
	dns.Add("metadata.test. 60 IN A 169.254.169.254")
	dns.Add("mixed.test. 60 IN A 1.1.1.1")
	dns.Add("mixed.test. 60 IN AAAA ::1")
	res, err := dnsx.New(dns.Addr(), dnsx.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var p netguard.Policy
	if err := p.CheckHost(ctx, res, "imap.public.test"); err != nil {
		t.Fatalf("public name: %v", err)
	}
	for _, h := range []string{"intranet.test", "metadata.test", "mixed.test", "127.0.0.1", "[::1]", "localhost", "imap.localhost", "169.254.169.254"} {
		if err := p.CheckHost(ctx, res, h); !errors.Is(err, netguard.ErrForbidden) {
			t.Errorf("%s: %v", h, err)
		}
	}
	if err := p.CheckHost(ctx, res, "missing.test"); err == nil || errors.Is(err, netguard.ErrForbidden) {
		t.Errorf("a name that does not resolve: %v", err)
	}
	// Without a resolver only literals resolve: never the system resolver.
	if err := p.CheckHost(ctx, nil, "imap.public.test"); err == nil || !errors.Is(err, dnsx.ErrNotConfigured) {
		t.Errorf("no resolver: %v", err)
	}
}

// flipResolver answers with whatever address it holds now (a DNS rebinding
// server: public when the setting is saved, internal when used).
type flipResolver struct {
	dnsx.Resolver
	mu sync.Mutex
	ip net.IP
}

func (f *flipResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return []net.IPAddr{{IP: f.ip}}, nil
}

// listener counts the connections it accepts.
func listener(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().String(), &n
}

func TestDialerRefusesAtConnectTime(t *testing.T) {
	addr, accepted := listener(t)
	_, port, _ := net.SplitHostPort(addr)
	res := &flipResolver{Resolver: dnsx.Unconfigured(), ip: net.ParseIP("1.1.1.1")}
	d := &netguard.Dialer{Resolver: res, Timeout: 2 * time.Second}
	ctx := context.Background()
	if err := d.Policy.CheckHost(ctx, res, "rebind.test"); err != nil {
		t.Fatalf("saved while public: %v", err)
	}
	res.mu.Lock()
	res.ip = net.ParseIP("127.0.0.1")
	res.mu.Unlock()
	for _, target := range []string{"rebind.test:" + port, addr, "localhost:" + port, "[::ffff:127.0.0.1]:" + port} {
		if c, err := d.DialContext(ctx, "tcp", target); !errors.Is(err, netguard.ErrForbidden) {
			if c != nil {
				c.Close()
			}
			t.Errorf("dial %s: %v", target, err)
		}
	}
	if err := d.Control("tcp4", addr, nil); !errors.Is(err, netguard.ErrForbidden) {
		t.Errorf("Control(%s): %v", addr, err)
	}
	if err := d.Control("tcp4", "1.1.1.1:993", nil); err != nil {
		t.Errorf("Control of a public address: %v", err)
	}

	// The operator's allowance opens loopback, through the same path.
	allowed := &netguard.Dialer{Resolver: res, Policy: netguard.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}
	c, err := allowed.DialContext(ctx, "tcp", "rebind.test:"+port)
	if err != nil {
		t.Fatalf("allowed loopback: %v", err)
	}
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for accepted.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := accepted.Load(); got != 1 {
		t.Fatalf("listener accepted %d connections, want only the allowed one", got)
	}
	if _, err := allowed.DialContext(ctx, "udp", addr); err == nil {
		t.Fatal("udp dialled")
	}
}
