package app

import (
	"context"
	"fmt"
	"io"

	"github.com/mailgate/mailgate/internal/dkimsign"
	"github.com/mailgate/mailgate/internal/scan/auth"
)

// arcKeyConfig is the sealing key's place among the stored DKIM keys.
func (a *App) arcKeyConfig() dkimsign.Config {
	c := a.Config.ARC
	return dkimsign.Config{Domain: c.Domain, Selector: c.Selector, Algorithms: []dkimsign.Algorithm{dkimsign.Algorithm(c.Algorithm)}}
}

// arcSealer is the inbound pipeline's Seal with [arc] seal on, nil with it
// off. The key is generated in the store on first use (as DKIM keys are),
// so every node seals with the same one.
func (a *App) arcSealer() func(ctx context.Context, r io.Reader, results []string) (string, error) {
	if !a.Config.ARC.Seal {
		return nil
	}
	cfg := a.arcKeyConfig()
	keys := &dkimsign.KeyCache{Now: a.Clock.Now}
	return func(ctx context.Context, r io.Reader, results []string) (string, error) {
		ks, err := keys.Keys(ctx, a.Store, cfg)
		if err != nil {
			return "", fmt.Errorf("arc sealing key: %w", err)
		}
		if len(ks) != 1 {
			return "", fmt.Errorf("arc sealing key: %d keys", len(ks))
		}
		cv := auth.ChainValidation(results)
		if cv == "" {
			// The auth check recorded no arc= result (it failed or was
			// cut short by the scan budget): the chain is not known to
			// be valid.
			cv = auth.ARCFail
		}
		s := &auth.Sealer{Domain: ks[0].Domain, Selector: ks[0].Selector, Signer: ks[0].Signer,
			AuthServID: a.Config.Hostname, Now: a.Clock.Now}
		return s.Seal(ctx, r, cv, results)
	}
}

// ARCRecord is the DNS record that publishes the sealing key, nil with
// sealing off.
func (a *App) ARCRecord(ctx context.Context) (*dkimsign.Published, error) {
	if !a.Config.ARC.Seal {
		return nil, nil
	}
	recs, err := a.arcKeyConfig().Records(ctx, a.Store)
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	return &recs[0], nil
}
