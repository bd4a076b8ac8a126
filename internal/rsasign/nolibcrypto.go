//go:build !(cgo && linux)

package rsasign

import (
	"crypto/rsa"
	"errors"
)

// Without cgo (the static release builds) libcrypto cannot be loaded:
// every key signs with Go.

// cgoBuild: this build can load libcrypto.
const cgoBuild = false

var errNoCgo = errors.New("built without cgo")

func load(string) (string, error) { return "", errNoCgo }

type lcKey struct{}

func convert(*rsa.PrivateKey) (*lcKey, error) { return nil, errNoCgo }

func (*lcKey) sign(int, []byte) ([]byte, error) { return nil, errNoCgo }
