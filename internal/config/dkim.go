package config

import "fmt"

// DKIMConfig is how this node makes the RSA signatures of DKIM signing
// and ARC sealing; which domains sign, and with what keys, is policy
// (docs/outbound.md).
type DKIMConfig struct {
	RSAEngine string `toml:"rsa_engine" doc:"What makes RSA signatures (DKIM rsa-sha256, ARC seals): auto uses the system's OpenSSL 3 (libcrypto.so.3, loaded at start) when present, about four times as fast, and Go's crypto/rsa otherwise; go always uses Go's. Each key's first 100 OpenSSL signatures and one in ten after them are checked with Go before they are sent; on an OpenSSL error or a signature that does not verify the key signs with Go. The static release builds always use Go. The log line \"rsa signing\" at start says which signs."`
}

// DefaultDKIM is the [dkim] section's default.
func DefaultDKIM() DKIMConfig { return DKIMConfig{RSAEngine: "auto"} }

func (c *DKIMConfig) validate() error {
	switch c.RSAEngine {
	case "":
		c.RSAEngine = "auto"
	case "auto", "go":
	default:
		return fmt.Errorf("dkim.rsa_engine %q: use auto or go", c.RSAEngine)
	}
	return nil
}
