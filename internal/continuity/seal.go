package continuity

import (
	"context"
	"errors"
	"fmt"

	"github.com/mailgate/mailgate/internal/sealbox"
)

// The hand-back paths' API credentials (a Microsoft Entra application's
// client secret, a Google service account's private key) are stored
// sealed (package sealbox) under a cluster-wide key kept in the store. The
// tenant and provider are the additional authenticated data, so a sealed
// value copied to another tenant or provider does not open.

// SealKeyName is the store secret holding the sealing key.
const SealKeyName = "continuity-seal-key"

// LoadSealKey returns the cluster-wide sealing key, creating it on first use.
func LoadSealKey(ctx context.Context, s interface {
	Secret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error)
}) ([]byte, error) {
	k, err := sealbox.LoadKey(ctx, s, SealKeyName)
	if err != nil {
		return nil, fmt.Errorf("credential sealing key: %w", err)
	}
	return k, nil
}

// Seal encrypts plain for tenantID's provider credentials.
func Seal(key []byte, tenantID int64, provider string, plain []byte) ([]byte, error) {
	return sealbox.Seal(key, sealbox.AD(tenantID, provider), plain)
}

// ErrUnseal is returned for a sealed value that does not open with this
// key, tenant and provider.
var ErrUnseal = errors.New("stored credentials cannot be decrypted (changed key, or not this tenant's)")

// Unseal decrypts what Seal made.
func Unseal(key []byte, tenantID int64, provider string, sealed []byte) ([]byte, error) {
	plain, err := sealbox.Open(key, sealbox.AD(tenantID, provider), sealed)
	if err != nil {
		return nil, ErrUnseal
	}
	return plain, nil
}
