package outbound

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/mailgate/mailgate/internal/dkimsign"
	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/store"
)

// signKeys returns the DKIM keys that sign mail From the domain dom: those of
// its domain when the domain is one of the tenant's and has a
// dkim.selector (domain setting, else the tenant's), none otherwise. A
// domain the tenant does not serve is never signed for, whatever the
// tenant's settings say. Keys are generated on first use.
func (p *Pipeline) signKeys(ctx context.Context, sp *senderPolicy, dom string) ([]dkimsign.Key, error) {
	dom = strings.ToLower(strings.TrimSuffix(dom, "."))
	if dom == "" || !containsFold(sp.domains, dom) {
		return nil, nil
	}
	set := policy.Layered{sp.layers.Of(store.ScopeDomain, dom), sp.layers.Of(store.ScopeTenant, "")}
	cfg, err := dkimsign.ConfigFrom(set, dom)
	if err != nil {
		return nil, fmt.Errorf("dkim: %s: %w", dom, err)
	}
	if cfg.Selector == "" {
		return nil, nil
	}
	return p.dkimKeys.Keys(ctx, p.Store, cfg)
}

// fromDomain is the domain of a generated message's single From
// address, "" when it has none or several (such a message is not signed).
func fromDomain(raw []byte) string {
	dom, err := dkimsign.FromDomain(bytes.NewReader(raw))
	if err != nil {
		return ""
	}
	return dom
}

// signBytes signs a generated message (a follow-up) held in memory.
func signBytes(ctx context.Context, body []byte, keys []dkimsign.Key) ([]byte, error) {
	var b bytes.Buffer
	if err := dkimsign.Sign(ctx, &b, bytes.NewReader(body), keys); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func keysDomain(keys []dkimsign.Key) string {
	var ds []string
	for _, k := range keys {
		ds = append(ds, k.Domain+"/"+k.Selector)
	}
	return strings.Join(ds, ", ")
}
