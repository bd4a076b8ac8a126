package delivery

import (
	"context"
	"errors"
	"testing"

	"github.com/mailgate/mailgate/internal/dnsx"
	"github.com/mailgate/mailgate/internal/dnsx/dnstest"
	"github.com/mailgate/mailgate/internal/mtasts"
	"github.com/mailgate/mailgate/internal/store"
)

type stsStub struct {
	p   *mtasts.Policy
	err error
}

func (s stsStub) Policy(context.Context, string) (*mtasts.Policy, error) { return s.p, s.err }

// notServed is a store that serves no domain: Router.Targets goes to MX.
type notServed struct{ store.Store }

func (notServed) AddressingVersion(context.Context) (int64, error) { return 0, nil }

func (notServed) Addressing(context.Context) (store.Addressing, error) {
	return store.Addressing{}, nil
}

// MTA-STS in enforce mode keeps only the MX hosts the policy names and
// requires verified TLS to them; testing mode changes nothing.
func TestRouterAppliesMTASTS(t *testing.T) {
	srv := dnstest.Start(t)
	srv.Add("sts.test. 300 IN MX 10 mx1.sts.test.")
	srv.Add("sts.test. 300 IN MX 20 rogue.evil.test.")
	res, err := dnsx.New(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	r := &Router{Store: notServed{}, Client: newClient(t, res, "")}
	ctx := context.Background()
	ts, err := r.Targets(ctx, 1, "sts.test")
	if err != nil || len(ts) != 2 || ts[0].TLS != TLSOpportunistic {
		t.Fatalf("without MTA-STS: %+v %v", ts, err)
	}
	pol := func(mode string, mx ...string) stsStub {
		return stsStub{p: &mtasts.Policy{Mode: mode, MX: mx}}
	}
	r.STS = pol(mtasts.ModeEnforce, "*.sts.test")
	ts, err = r.Targets(ctx, 1, "sts.test")
	if err != nil || len(ts) != 1 || ts[0].Host != "mx1.sts.test" || ts[0].TLS != TLSVerify {
		t.Fatalf("enforce: %+v %v", ts, err)
	}
	r.STS = pol(mtasts.ModeEnforce, "other.test")
	var te *TempError
	if _, err := r.Targets(ctx, 1, "sts.test"); !errors.As(err, &te) {
		t.Fatalf("enforce without a matching MX: %v", err)
	}
	r.STS = pol(mtasts.ModeTesting, "other.test")
	if ts, err := r.Targets(ctx, 1, "sts.test"); err != nil || len(ts) != 2 || ts[1].TLS != TLSOpportunistic {
		t.Fatalf("testing: %+v %v", ts, err)
	}
	// No policy could be fetched and none is cached: delivery as usual.
	r.STS = stsStub{err: errors.New("fetch failed")}
	if ts, err := r.Targets(ctx, 1, "sts.test"); err != nil || len(ts) != 2 {
		t.Fatalf("no policy: %+v %v", ts, err)
	}
}
