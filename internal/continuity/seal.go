package continuity

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
)

// The hand-back paths' API credentials (a Microsoft Entra application's
// client secret, a Google service account's private key) are stored
// sealed with AES-256-GCM under a cluster-wide key kept in the store (as
// the link signing key is). The tenant and provider are the additional
// authenticated data, so a sealed value copied to another tenant or
// provider does not open.
//
// Sealed format: version byte 1, 12-byte nonce, ciphertext with its tag.

// SealKeyName is the store secret holding the sealing key.
const SealKeyName = "continuity-seal-key"

const sealVersion = 1

// LoadSealKey returns the cluster-wide sealing key, creating it on first use.
func LoadSealKey(ctx context.Context, s interface {
	Secret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error)
}) ([]byte, error) {
	k, err := s.Secret(ctx, SealKeyName, func() ([]byte, error) {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		return b, nil
	})
	if err != nil {
		return nil, fmt.Errorf("credential sealing key: %w", err)
	}
	if len(k) != 32 {
		return nil, fmt.Errorf("credential sealing key: %d bytes, want 32", len(k))
	}
	return k, nil
}

func sealAD(tenantID int64, provider string) []byte {
	ad := binary.BigEndian.AppendUint64(nil, uint64(tenantID))
	return append(ad, provider...)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// Seal encrypts plain for tenantID's provider credentials.
func Seal(key []byte, tenantID int64, provider string, plain []byte) ([]byte, error) {
	g, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+g.NonceSize(), 1+g.NonceSize()+len(plain)+g.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, err
	}
	return g.Seal(out, out[1:], plain, sealAD(tenantID, provider)), nil
}

// ErrUnseal is returned for a sealed value that does not open with this
// key, tenant and provider.
var ErrUnseal = errors.New("stored credentials cannot be decrypted (changed key, or not this tenant's)")

// Unseal decrypts what Seal made.
func Unseal(key []byte, tenantID int64, provider string, sealed []byte) ([]byte, error) {
	g, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < 1+g.NonceSize()+g.Overhead() || sealed[0] != sealVersion {
		return nil, ErrUnseal
	}
	n := sealed[1 : 1+g.NonceSize()]
	plain, err := g.Open(nil, n, sealed[1+g.NonceSize():], sealAD(tenantID, provider))
	if err != nil {
		return nil, ErrUnseal
	}
	return plain, nil
}
