package config

import (
	"fmt"
	"slices"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// ARCConfig is ARC sealing (RFC 8617) of the inbound copies mailgate
// delivers (docs/inbound.md).
type ARCConfig struct {
	Seal      bool   `toml:"seal" doc:"Add an ARC set to every inbound copy mailgate delivers, sealed over the copy exactly as delivered: a receiving service that lists mailgate as a trusted ARC sealer (Microsoft 365) can then rely on mailgate's SPF, DKIM and DMARC results even after a Subject tag or a banner broke the sender's DKIM signature. Needs the auth check in checks.enabled. Publish the key first: \"mailgate arc record\" prints the DNS record."`
	Domain    string `toml:"domain" doc:"The sealing domain (d=), the one the receiving service trusts. Default: the registered domain of hostname (mx1.example.com: example.com)."`
	Selector  string `toml:"selector" doc:"Selector of the sealing key: its public key is published at <selector>._domainkey.<domain> (with ed25519, <selector>-ed25519). A new selector makes a new key."`
	Algorithm string `toml:"algorithm" doc:"rsa (RSA-2048, which every receiver verifies) or ed25519."`
}

// DefaultARC is the [arc] section's default: sealing off.
func DefaultARC() ARCConfig {
	return ARCConfig{Selector: "mailgate-arc", Algorithm: "rsa"}
}

func (c *ARCConfig) validate(hostname string, checks []string) error {
	if c.Domain == "" {
		c.Domain = hostname
		if d, err := publicsuffix.EffectiveTLDPlusOne(hostname); err == nil {
			c.Domain = d
		}
	}
	c.Domain = strings.ToLower(strings.TrimSuffix(c.Domain, "."))
	if c.Selector == "" {
		c.Selector = DefaultARC().Selector
	}
	switch c.Algorithm {
	case "":
		c.Algorithm = "rsa"
	case "rsa", "ed25519":
	default:
		return fmt.Errorf("arc.algorithm %q: use rsa or ed25519", c.Algorithm)
	}
	if c.Seal && !slices.Contains(checks, "auth") {
		return fmt.Errorf("arc.seal needs the auth check in checks.enabled: a seal records its SPF, DKIM, DMARC and ARC results")
	}
	return nil
}
