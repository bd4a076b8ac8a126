//go:build !(cgo && linux)

package rsasign

import "crypto/rsa"

// Without cgo (the static release builds) libcrypto cannot be loaded:
// every key signs with Go.

// cgoBuild: this build can load libcrypto.
const cgoBuild = false

func load(string) (string, error) { return "", ErrNotBuilt }

type lcKey struct{}

func convert(*rsa.PrivateKey) (*lcKey, error) { return nil, ErrNotBuilt }

func (*lcKey) sign(int, []byte) ([]byte, error) { return nil, ErrNotBuilt }
