// Package sealbox seals small secrets kept in the store (hand-back API
// credentials, DKIM private keys, users' fixed ZIP passwords) with
// AES-256-GCM under a cluster-wide key that the store itself keeps (as
// the link signing key is), so a copy of the database rows alone does not
// reveal them. The caller's additional data binds a sealed value to its
// owner (a tenant and a name): moved to another owner it does not open.
//
// Sealed format: version byte 1, 12-byte nonce, ciphertext with its tag.
package sealbox

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
)

const version = 1

// KeySize is the length of a sealing key.
const KeySize = 32

// SecretStore is the part of the store that keeps cluster-wide secrets
// (store.WebStore.Secret).
type SecretStore interface {
	Secret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error)
}

// LoadKey returns the cluster-wide key stored under name, creating 32
// random bytes on first use; every node gets the same key.
func LoadKey(ctx context.Context, s SecretStore, name string) ([]byte, error) {
	k, err := s.Secret(ctx, name, func() ([]byte, error) {
		b := make([]byte, KeySize)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		return b, nil
	})
	if err != nil {
		return nil, fmt.Errorf("sealing key %s: %w", name, err)
	}
	if len(k) != KeySize {
		return nil, fmt.Errorf("sealing key %s: %d bytes, want %d", name, len(k), KeySize)
	}
	return k, nil
}

// AD is the usual additional data: a tenant and a name.
func AD(tenantID int64, name string) []byte {
	ad := binary.BigEndian.AppendUint64(nil, uint64(tenantID))
	return append(ad, name...)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// Seal encrypts plain bound to ad.
func Seal(key, ad, plain []byte) ([]byte, error) {
	g, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+g.NonceSize(), 1+g.NonceSize()+len(plain)+g.Overhead())
	out[0] = version
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, err
	}
	return g.Seal(out, out[1:], plain, ad), nil
}

// ErrOpen is returned for a sealed value that does not open with this key
// and additional data.
var ErrOpen = errors.New("sealed value cannot be decrypted (changed key, or not its owner)")

// Open decrypts what Seal made.
func Open(key, ad, sealed []byte) ([]byte, error) {
	g, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < 1+g.NonceSize()+g.Overhead() || sealed[0] != version {
		return nil, ErrOpen
	}
	plain, err := g.Open(nil, sealed[1:1+g.NonceSize()], sealed[1+g.NonceSize():], ad)
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}
