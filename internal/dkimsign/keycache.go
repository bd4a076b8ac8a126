package dkimsign

import (
	"context"
	"crypto"
	"crypto/rsa"
	"sync"
	"time"

	"github.com/mailgate/mailgate/internal/rsasign"
	"github.com/mailgate/mailgate/internal/sealbox"
)

// keyCacheTTL is how long a cached key is used before it is read from the
// store again. A key never changes under its name (a new key comes with a
// new selector), so this only bounds how long a store restored under a
// running node keeps signing with the key it had before.
const keyCacheTTL = 5 * time.Minute

// KeyCache keeps the signing keys of one store, opened and parsed, so
// that signing a message costs no store read, unsealing or key parsing.
// RSA keys sign through libcrypto where the node can (rsasign.Signer).
// The zero value is ready; safe for concurrent use.
type KeyCache struct {
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	mu sync.Mutex
	m  map[string]cachedKey
}

type cachedKey struct {
	k      crypto.Signer
	loaded time.Time
}

func (c *KeyCache) now() time.Time {
	if c.Now == nil {
		return time.Now()
	}
	return c.Now()
}

// Keys is Config.Keys through the cache: the keys that sign for the
// domain, generated in s on first use.
func (c *KeyCache) Keys(ctx context.Context, s sealbox.SecretStore, cfg Config) ([]Key, error) {
	if cfg.Selector == "" {
		return nil, nil
	}
	keys := make([]Key, 0, len(cfg.Algorithms))
	for _, alg := range cfg.Algorithms {
		sel := SelectorFor(cfg.Selector, alg)
		k, err := c.load(ctx, s, cfg.Domain, sel, alg)
		if err != nil {
			return nil, err
		}
		keys = append(keys, Key{Domain: cfg.Domain, Selector: sel, Algorithm: alg, Signer: k})
	}
	return keys, nil
}

func (c *KeyCache) load(ctx context.Context, s sealbox.SecretStore, domain, selector string, alg Algorithm) (crypto.Signer, error) {
	name := SecretName(domain, selector, alg)
	now := c.now()
	c.mu.Lock()
	e, ok := c.m[name]
	c.mu.Unlock()
	if ok && now.Sub(e.loaded) < keyCacheTTL && now.Sub(e.loaded) >= 0 {
		return e.k, nil
	}
	k, err := LoadKey(ctx, s, domain, selector, alg)
	if err != nil {
		return nil, err
	}
	if rk, ok := k.(*rsa.PrivateKey); ok {
		// Converted once per load for the faster engine (package
		// rsasign); Public() stays the *rsa.PublicKey, which is what
		// the DKIM signer and the ARC sealer choose rsa-sha256 by.
		k = rsasign.Signer(rk)
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]cachedKey{}
	}
	c.m[name] = cachedKey{k: k, loaded: now}
	c.mu.Unlock()
	return k, nil
}
