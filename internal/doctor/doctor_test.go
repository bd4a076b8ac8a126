package doctor

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/dkimsign"
	"github.com/mailgate/mailgate/internal/dnsx"
	"github.com/mailgate/mailgate/internal/dnsx/dnstest"
	"github.com/mailgate/mailgate/internal/mtasts"
	"github.com/mailgate/mailgate/internal/store"
)

var now = time.Date(2026, 12, 6, 12, 0, 0, 0, time.Local)

type fakeStore struct {
	status  store.ClusterStatus
	err     error
	domains map[int64][]string
}

func (f *fakeStore) ClusterStatus(context.Context) (store.ClusterStatus, error) {
	return f.status, f.err
}
func (f *fakeStore) Tenants(context.Context) ([]store.Tenant, error) {
	var out []store.Tenant
	for id := range f.domains {
		out = append(out, store.Tenant{ID: id})
	}
	return out, nil
}
func (f *fakeStore) Domains(_ context.Context, id int64) ([]store.Domain, error) {
	var out []store.Domain
	for _, d := range f.domains[id] {
		out = append(out, store.Domain{TenantID: id, Name: d})
	}
	return out, nil
}

type fakeClamd struct {
	version string
	err     error
}

func (f fakeClamd) Version(context.Context) (string, error) { return f.version, f.err }

type policies map[string]*mtasts.Policy

func (p policies) Policy(_ context.Context, d string) (*mtasts.Policy, error) { return p[d], nil }

// find returns the result of check, failing the test when there is none.
func find(t *testing.T, rs []Result, check string) Result {
	t.Helper()
	for _, r := range rs {
		if r.Check == check {
			return r
		}
	}
	var b bytes.Buffer
	Print(&b, rs)
	t.Fatalf("no result for %q in:\n%s", check, b.String())
	return Result{}
}

func expect(t *testing.T, rs []Result, check string, s Status, detail string) {
	t.Helper()
	r := find(t, rs, check)
	if r.Status != s || !strings.Contains(r.Detail, detail) {
		t.Errorf("%s: %s %q, want %s containing %q", check, r.Status, r.Detail, s, detail)
	}
}

func baseDeps(t *testing.T) (Deps, *dnstest.Server, *fakeStore) {
	dns := dnstest.Start(t)
	res, err := dnsx.New(dns.Addr(), dnsx.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Hostname = "mx.example.test"
	cfg.DNS.Resolver = dns.Addr()
	cfg.Inbound.Listen, cfg.Outbound.Listen, cfg.HTTP.Listen = nil, nil, ""
	cfg.Limits.MinFreeBytes = 1 << 30
	st := &fakeStore{status: store.ClusterStatus{Now: now, Nodes: []store.Node{{ID: "a", Seen: now.Add(-time.Second)}}}}
	return Deps{Config: cfg, Resolver: res, Now: func() time.Time { return now }, Store: st,
		FreeBytes: func(string) (int64, error) { return 10 << 30, nil }}, dns, st
}

func TestDNSChecks(t *testing.T) {
	d, dns, st := baseDeps(t)
	st.domains = map[int64][]string{1: {"good.test"}, 2: {"bad.test", "away.test"}}
	for _, r := range []string{
		"mx.example.test. 300 IN A 192.0.2.10",
		"10.2.0.192.in-addr.arpa. 300 IN PTR mx.example.test.",
		// good.test: everything in place.
		"good.test. 300 IN MX 10 mx.example.test.",
		`good.test. 300 IN TXT "v=spf1 a:mx.example.test -all"`,
		`_dmarc.good.test. 300 IN TXT "v=DMARC1; p=reject"`,
		// away.test: still with its old MX, whose address is not ours.
		"away.test. 300 IN MX 10 mx.elsewhere.test.",
		"mx.elsewhere.test. 300 IN A 198.51.100.7",
		`away.test. 300 IN TXT "v=spf1 include:_spf.elsewhere.test -all"`,
	} {
		dns.Add(r)
	}
	d.MTASTS = policies{
		"good.test": {Mode: "enforce", MX: []string{"mx.example.test"}},
		"away.test": {Mode: "enforce", MX: []string{"mx.elsewhere.test"}},
	}
	d.DKIM = func(_ context.Context, domain string) ([]dkimsign.Published, error) {
		if domain != "good.test" {
			return nil, nil
		}
		return []dkimsign.Published{{Name: "mg._domainkey.good.test", Value: "v=DKIM1; k=ed25519; p=abc", Zone: `mg._domainkey.good.test. IN TXT "v=DKIM1; k=ed25519; p=abc"`}}, nil
	}
	dns.Add(`mg._domainkey.good.test. 300 IN TXT "v=DKIM1; k=ed25519; p=abc"`)
	rs := Run(context.Background(), d)

	expect(t, rs, "dns mx.example.test", OK, "192.0.2.10")
	expect(t, rs, "dns PTR 192.0.2.10", OK, "PTR mx.example.test, which resolves back")
	expect(t, rs, "dns good.test MX", OK, "10 mx.example.test")
	expect(t, rs, "dns good.test SPF", OK, "a:mx.example.test")
	expect(t, rs, "dns good.test DKIM", OK, "mg._domainkey.good.test published")
	expect(t, rs, "dns good.test DMARC", OK, "p=reject")
	expect(t, rs, "dns good.test MTA-STS", OK, "mode enforce lists mx.example.test")

	expect(t, rs, "dns bad.test MX", Warn, "no MX record")
	expect(t, rs, "dns bad.test SPF", Warn, `none published; suggested: bad.test. IN TXT "v=spf1 a:mx.example.test ~all"`)
	expect(t, rs, "dns bad.test DKIM", Warn, "not signed")
	expect(t, rs, "dns bad.test DMARC", Warn, "none published")
	expect(t, rs, "dns bad.test MTA-STS", OK, "no policy published")

	expect(t, rs, "dns away.test MX", Warn, "none is mailgate")
	expect(t, rs, "dns away.test SPF", Warn, `does not name mx.example.test`)
	expect(t, rs, "dns away.test MTA-STS", Fail, `add "mx: mx.example.test" to the policy`)

	// A sending address without a name, and one whose name lies.
	d.SendingIPs = []netip.Addr{netip.MustParseAddr("192.0.2.20"), netip.MustParseAddr("192.0.2.30")}
	dns.Add("30.2.0.192.in-addr.arpa. 300 IN PTR mail.example.test.")
	dns.Add("mail.example.test. 300 IN A 192.0.2.99")
	rs = Run(context.Background(), d)
	expect(t, rs, "dns PTR 192.0.2.20", Fail, "no PTR record")
	expect(t, rs, "dns PTR 192.0.2.30", Fail, "does not resolve back to 192.0.2.30")

	// Without a resolver nothing is looked up, and the operator is told why.
	d.Config.DNS.Resolver, d.Resolver = "", nil
	rs = Run(context.Background(), d)
	expect(t, rs, "dns", Warn, "no resolver configured")
}

func TestClamdSignatureAge(t *testing.T) {
	d, _, _ := baseDeps(t)
	d.Config.DNS.Resolver = ""
	d.Config.Checks.Clamd = "/run/clamav/clamd.ctl"
	d.Clamd = fakeClamd{version: "ClamAV 1.0.7/27490/Sun Dec  6 08:34:00 2026"}
	expect(t, Run(context.Background(), d), "clamd", OK, "signatures 27490 from 2026-12-06 08:34")
	d.Clamd = fakeClamd{version: "ClamAV 1.0.7/27400/Tue Nov 24 08:34:00 2026"}
	expect(t, Run(context.Background(), d), "clamd", Warn, "12 days old; is freshclam running?")
	d.Clamd = fakeClamd{err: errors.New("connection refused")}
	expect(t, Run(context.Background(), d), "clamd", Fail, "does not answer: connection refused")
	d.Config.Checks.Clamd, d.Clamd = "", nil
	expect(t, Run(context.Background(), d), "clamd", Warn, "checks.clamd is not set")
	d.Config.Checks.Enabled = []string{"auth"}
	expect(t, Run(context.Background(), d), "clamd", OK, "not enabled")
}

func TestStoreDiskClockQueue(t *testing.T) {
	d, _, st := baseDeps(t)
	d.Config.DNS.Resolver = ""
	d.Schema = func(context.Context) (int, int, error) { return 41, 41, nil }
	rs := Run(context.Background(), d)
	expect(t, rs, "store schema", OK, "41 is current")
	expect(t, rs, "disk", OK, "10.0 GiB free")
	expect(t, rs, "clock", OK, "within")
	expect(t, rs, "cluster", OK, "1 node(s) alive")
	expect(t, rs, "queue", OK, "nothing waiting")

	d.Schema = func(context.Context) (int, int, error) { return 40, 41, nil }
	d.FreeBytes = func(string) (int64, error) { return 100 << 20, nil }
	st.status.Now = now.Add(10 * time.Second)
	st.status.Nodes = append(st.status.Nodes, store.Node{ID: "b", Seen: now.Add(-time.Hour)})
	st.status.Queued, st.status.Deferred, st.status.Oldest = 3, 2, now.Add(-5*time.Hour)
	rs = Run(context.Background(), d)
	expect(t, rs, "store schema", Fail, "40 is behind this mailgate's 41: run mailgate migrate")
	expect(t, rs, "disk", Fail, "below limits.min_free_bytes")
	expect(t, rs, "clock", Fail, "10s off the store's")
	expect(t, rs, "cluster", Warn, "not heard from: b")
	expect(t, rs, "queue", Fail, "3 queued, 2 deferred, 0 held; the oldest message has waited 5h0m10s")

	st.status.Oldest = now.Add(-time.Hour)
	expect(t, Run(context.Background(), d), "queue", Warn, "waited 1h0m10s")

	d.Store, d.StoreErr = nil, errors.New("database is locked")
	expect(t, Run(context.Background(), d), "store", Fail, "database is locked")
	var b bytes.Buffer
	if !Print(&b, Run(context.Background(), d)) || !strings.Contains(b.String(), "FAIL  store: database is locked") {
		t.Fatalf("print:\n%s", b.String())
	}
}

func TestClamdLimits(t *testing.T) {
	d, _, _ := baseDeps(t)
	d.Config.DNS.Resolver = ""
	d.Config.Checks.Clamd = "/run/clamav/clamd.ctl"
	d.Clamd = fakeClamd{version: "ClamAV 1.0.7/27490/Sun Dec  6 08:34:00 2026"}
	conf := func(text string) ClamdConf {
		return func(socket string) (string, []byte, bool, error) {
			if !SameSocket([]byte(text), socket) {
				return "", nil, false, nil
			}
			return "/etc/clamav/clamd.conf", []byte(text), true, nil
		}
	}
	// Debian's packaged configuration: limits below mailgate's, and
	// AlertExceedsMax off.
	debian := "# Automatically Generated\nLocalSocket /var/run/clamav/clamd.ctl\nReadTimeout 180\nMaxScanSize 100M\nMaxFileSize 25M\nStreamMaxLength 25M\n"
	d.ClamdConf = conf(debian)
	rs := Run(context.Background(), d)
	expect(t, rs, "clamd limits", Warn, "StreamMaxLength 25.0 MiB is below limits.max_message_bytes 100.0 MiB")
	expect(t, rs, "clamd limits", Warn, "AlertExceedsMax is off: content past MaxFileSize 25M, MaxScanSize 100M")
	if r := find(t, rs, "clamd limits"); strings.Contains(r.Detail, "ReadTimeout") {
		t.Errorf("ReadTimeout 180 s above av_timeout 60 s reported: %q", r.Detail)
	}
	d.ClamdConf = conf("LocalSocket /run/clamav/clamd.ctl\nReadTimeout\t30\nStreamMaxLength 200M\nAlertExceedsMax yes\n")
	expect(t, Run(context.Background(), d), "clamd limits", Warn, "ReadTimeout 30s is not above checks.av_timeout 1m0s")
	d.ClamdConf = conf("LocalSocket /run/clamav/clamd.ctl\nStreamMaxLength 0\nAlertExceedsMax true\n")
	expect(t, Run(context.Background(), d), "clamd limits", OK, "ReadTimeout 2m0s above checks.av_timeout")
	// A queue the idle sessions could fill.
	d.ClamdConf = conf("LocalSocket /run/clamav/clamd.ctl\nStreamMaxLength 0\nAlertExceedsMax yes\nMaxThreads 12\nMaxQueue 24\n")
	expect(t, Run(context.Background(), d), "clamd limits", Warn, "MaxQueue 24 is below the 16 idle connections mailgate keeps plus MaxThreads 12")
	d.ClamdConf = conf("LocalSocket /run/clamav/clamd.ctl\nStreamMaxLength 0\nAlertExceedsMax yes\nMaxThreads 12\nMaxQueue 28\n")
	expect(t, Run(context.Background(), d), "clamd limits", OK, "ReadTimeout 2m0s above checks.av_timeout")
	d.ClamdConf = conf("LocalSocket /run/other.sock\n")
	expect(t, Run(context.Background(), d), "clamd limits", OK, "no clamd configuration on this host names /run/clamav/clamd.ctl")
	d.ClamdConf = func(string) (string, []byte, bool, error) { return "", nil, false, errors.New("permission denied") }
	expect(t, Run(context.Background(), d), "clamd limits", Warn, "could not be read: permission denied")
	// A clamd over TCP, or the virus check off: nothing to compare.
	d.Config.Checks.Clamd = "127.0.0.1:3310"
	for _, r := range Run(context.Background(), d) {
		if r.Check == "clamd limits" {
			t.Errorf("clamd over TCP: %+v", r)
		}
	}
}

// clamdSize reads clamd.conf's sizes with bytesize's grammar; 0 is a size
// (no limit), a missing or unreadable value is no comparison at all.
func TestClamdSize(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"25M", 25 << 20, true}, {"400k", 400 << 10, true}, {"1048576", 1 << 20, true}, {"1G", 1 << 30, true},
		{"0", 0, true}, {"", 0, false}, {"lots", 0, false}, {"-1", 0, false}, {"9223372036854775807K", 0, false},
	} {
		if n, ok := clamdSize(c.in); n != c.want || ok != c.ok {
			t.Errorf("clamdSize(%q) = %d, %v; want %d, %v", c.in, n, ok, c.want, c.ok)
		}
	}
}
