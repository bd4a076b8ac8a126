package dkimsign

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/mailgate/mailgate/internal/sealbox"
)

// Policy setting keys (domain scope: the settings of the From domain).
const (
	// KeySelector is the active selector; empty turns signing off.
	KeySelector = "dkim.selector"
	// KeyAlgorithms are the key types that sign: "rsa" (default),
	// "ed25519", or "rsa,ed25519" for both signatures at once. A DNS name
	// holds one key, so the RSA key is published under the selector and
	// the Ed25519 key under the selector with "-ed25519" appended
	// (SelectorFor).
	KeyAlgorithms = "dkim.algorithms"
	// KeyPrevious is the selector being retired: still published (and
	// shown as such) but no longer signing, until removed.
	KeyPrevious = "dkim.previous_selector"
)

// Settings is the view of the policy settings read here (policy.Settings).
type Settings interface {
	Get(key string) (string, bool)
}

// Config is a domain's signing configuration.
type Config struct {
	Domain     string
	Selector   string // "" means the domain does not sign
	Algorithms []Algorithm
	Previous   string
}

// ConfigFrom reads the domain's settings. Invalid values are errors, so a
// typo never silently turns signing off.
func ConfigFrom(s Settings, domain string) (Config, error) {
	get := func(k string) string { v, _ := s.Get(k); return strings.TrimSpace(v) }
	c := Config{Domain: strings.ToLower(strings.TrimSuffix(domain, ".")), Selector: get(KeySelector), Previous: get(KeyPrevious)}
	if c.Selector == "" {
		return c, nil
	}
	if err := checkLabel(c.Selector); err != nil {
		return Config{}, fmt.Errorf("%s: %w", KeySelector, err)
	}
	if c.Previous != "" {
		if err := checkLabel(c.Previous); err != nil {
			return Config{}, fmt.Errorf("%s: %w", KeyPrevious, err)
		}
		if strings.EqualFold(c.Previous, c.Selector) {
			return Config{}, fmt.Errorf("%s is the active selector", KeyPrevious)
		}
	}
	algs := get(KeyAlgorithms)
	if algs == "" {
		algs = string(RSA)
	}
	seen := map[Algorithm]bool{}
	for _, a := range strings.Split(algs, ",") {
		alg := Algorithm(strings.ToLower(strings.TrimSpace(a)))
		if alg != RSA && alg != Ed25519 {
			return Config{}, fmt.Errorf("%s: %q is not rsa or ed25519", KeyAlgorithms, a)
		}
		if !seen[alg] {
			seen[alg] = true
			c.Algorithms = append(c.Algorithms, alg)
		}
	}
	return c, nil
}

// SelectorFor is the selector a key of alg is published under.
func SelectorFor(selector string, alg Algorithm) string {
	if alg == Ed25519 {
		return selector + "-ed25519"
	}
	return selector
}

// Keys returns the keys that sign for the domain (none when it does not
// sign), generating them on first use.
func (c Config) Keys(ctx context.Context, s sealbox.SecretStore) ([]Key, error) {
	if c.Selector == "" {
		return nil, nil
	}
	keys := make([]Key, 0, len(c.Algorithms))
	for _, alg := range c.Algorithms {
		sel := SelectorFor(c.Selector, alg)
		k, err := LoadKey(ctx, s, c.Domain, sel, alg)
		if err != nil {
			return nil, err
		}
		keys = append(keys, Key{Domain: c.Domain, Selector: sel, Algorithm: alg, Signer: k})
	}
	return keys, nil
}

// Published is one DNS record the domain should publish.
type Published struct {
	Name      string // e.g. mg2027._domainkey.example.com
	Selector  string
	Algorithm Algorithm
	Value     string // the TXT record's text
	Zone      string // the record in zone-file syntax
	Active    bool   // false: the previous selector, kept during a rotation
}

// Records lists the DKIM records the domain should publish: the active
// selector's keys, then the previous selector's (for each algorithm that
// has a stored key under it). Keys of the active selector are generated
// on first use, so the records can be published before signing starts.
func (c Config) Records(ctx context.Context, s sealbox.SecretStore) ([]Published, error) {
	var out []Published
	add := func(sel string, alg Algorithm, active bool) error {
		sel = SelectorFor(sel, alg)
		var k crypto.Signer
		var err error
		if active {
			k, err = LoadKey(ctx, s, c.Domain, sel, alg)
		} else {
			k, err = loadExisting(ctx, s, c.Domain, sel, alg)
		}
		if err != nil || k == nil {
			return err
		}
		rec, err := Record(k.Public())
		if err != nil {
			return err
		}
		out = append(out, Published{Name: RecordName(sel, c.Domain), Selector: sel, Algorithm: alg, Value: rec,
			Zone: ZoneLine(sel, c.Domain, rec), Active: active})
		return nil
	}
	if c.Selector == "" {
		return nil, nil
	}
	for _, alg := range c.Algorithms {
		if err := add(c.Selector, alg, true); err != nil {
			return nil, err
		}
	}
	if c.Previous != "" {
		for _, alg := range []Algorithm{RSA, Ed25519} {
			if err := add(c.Previous, alg, false); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// errNoKey is what loadExisting's generator returns: the key is not there.
var errNoKey = errors.New("no such key")

// loadExisting returns a stored key, or nil when there is none (a
// previous selector's key is never generated).
func loadExisting(ctx context.Context, s sealbox.SecretStore, domain, sel string, alg Algorithm) (crypto.Signer, error) {
	probe := noGen{s}
	k, err := LoadKey(ctx, probe, domain, sel, alg)
	if errors.Is(err, errNoKey) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return k, nil
}

// noGen refuses to create the DKIM key secrets (the sealing key still
// is created on first use).
type noGen struct{ s sealbox.SecretStore }

func (n noGen) Secret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error) {
	if name == sealKeyName {
		return n.s.Secret(ctx, name, gen)
	}
	return n.s.Secret(ctx, name, func() ([]byte, error) { return nil, errNoKey })
}

// Resolver looks up TXT records (dnsx.Resolver).
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// CheckResult says whether one record is published as it should be.
type CheckResult struct {
	Published
	OK      bool
	Problem string // why not, in English; ProblemJA in Japanese
	// ProblemJA is the same in Japanese, for the console.
	ProblemJA string
}

// Check looks each record up through the configured resolver and compares
// the published key with ours (only p= matters; tag order and spacing
// differ between DNS providers).
func Check(ctx context.Context, r Resolver, recs []Published) []CheckResult {
	out := make([]CheckResult, 0, len(recs))
	for _, p := range recs {
		res := CheckResult{Published: p}
		txts, err := r.LookupTXT(ctx, p.Name)
		want := tagValue(p.Value, "p")
		switch {
		case err != nil:
			res.Problem, res.ProblemJA = "not found in DNS: "+err.Error(), "DNS に見つかりません: "+err.Error()
		default:
			res.Problem, res.ProblemJA = "a different key is published", "別の鍵が公開されています"
			for _, t := range txts {
				if tagValue(t, "p") == want {
					res.OK, res.Problem, res.ProblemJA = true, "", ""
				}
			}
		}
		out = append(out, res)
	}
	return out
}

// tagValue returns the value of tag in a DKIM tag list, whitespace removed.
func tagValue(rec, tag string) string {
	for _, part := range strings.Split(rec, ";") {
		k, v, ok := strings.Cut(part, "=")
		if ok && strings.TrimSpace(k) == tag {
			return strings.Join(strings.Fields(v), "")
		}
	}
	return ""
}

// SettingsFor returns the policy settings of a domain (the From domain
// of the message being signed).
type SettingsFor func(ctx context.Context, domain string) (Settings, error)

// SignMessage signs msg for the domain of its From address with that
// domain's keys and writes it to w; a domain that does not sign (no
// selector), or a message without one From address, is copied unchanged
// and signed is false. The outbound pipeline calls it last, after every
// change it makes to the message. An invalid setting is an error, so mail
// is never sent unsigned by a typo without anyone noticing.
func SignMessage(ctx context.Context, w io.Writer, msg io.ReadSeeker, settings SettingsFor, s sealbox.SecretStore) (signed bool, err error) {
	dom, err := FromDomain(msg)
	if _, serr := msg.Seek(0, io.SeekStart); serr != nil {
		return false, fmt.Errorf("dkim: %w", serr)
	}
	var keys []Key
	if err == nil {
		set, err := settings(ctx, dom)
		if err != nil {
			return false, fmt.Errorf("dkim: settings of %s: %w", dom, err)
		}
		cfg, err := ConfigFrom(set, dom)
		if err != nil {
			return false, fmt.Errorf("dkim: %s: %w", dom, err)
		}
		if keys, err = cfg.Keys(ctx, s); err != nil {
			return false, err
		}
	} else if !errors.Is(err, ErrNoFrom) {
		return false, err
	}
	if err := Sign(ctx, w, msg, keys); err != nil {
		return false, err
	}
	return len(keys) > 0, nil
}
