// Package rsasign signs with RSA PKCS #1 v1.5 through the system's
// libcrypto (OpenSSL 3) when it can, and through Go's crypto/rsa
// otherwise.
//
// DKIM signatures and ARC seals are mostly RSA-2048 signatures, and
// OpenSSL's RSA private-key operation is about four times as fast as Go's
// on current x86 CPUs. libcrypto.so.3 is loaded at run time (dlopen), so
// the binary neither needs OpenSSL's headers to build nor libcrypto to
// run: without it, or in a build without cgo (the static release builds),
// every key signs with Go.
//
// PKCS #1 v1.5 signatures are deterministic, so both engines produce the
// same bytes. libcrypto checks each of its CRT results against the public
// exponent itself and recomputes a faulty one, so a fault cannot leak the
// key; what Go checks for is a binding error (a key or digest handed over
// wrongly), which shows on every signature of a key. So each key's first
// verifyFirst signatures, and one in verifyEvery after them, are verified
// with Go before they are returned; a libcrypto error or a signature that
// does not verify is logged once and the key signs with Go from then on.
package rsasign

import (
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
)

// Engine chooses what signs RSA keys.
type Engine string

// Engines.
const (
	// Auto signs through libcrypto when it is loaded, with Go otherwise.
	Auto Engine = "auto"
	// Go always signs with Go's crypto/rsa.
	Go Engine = "go"
)

// goOnly is set by Use(Go).
var goOnly atomic.Bool

// Use sets the engine for the keys Signer wraps from now on, and returns a
// line for the log that says which one signs, e.g. "libcrypto (OpenSSL
// 3.0.19 27 Jan 2026)" or "Go crypto/rsa (libcrypto.so.3: not found)".
func Use(e Engine) (string, error) {
	switch e {
	case Auto, "":
		goOnly.Store(false)
	case Go:
		goOnly.Store(true)
		return "Go crypto/rsa (rsa_engine = go)", nil
	default:
		return "", fmt.Errorf("rsa engine %q: use auto or go", e)
	}
	version, err := library()
	if err != nil {
		return "Go crypto/rsa (" + err.Error() + ")", nil
	}
	return "libcrypto (" + version + ")", nil
}

// ErrNotBuilt is Available's error in a build without cgo, which cannot
// load libcrypto.
var ErrNotBuilt = errors.New("built without cgo")

// Available reports whether libcrypto is loaded (and why not), whatever
// the engine chosen with Use.
func Available() (version string, err error) { return library() }

var lib struct {
	once    sync.Once
	version string
	err     error
}

// library loads libcrypto once.
func library() (string, error) {
	lib.once.Do(func() { lib.version, lib.err = load("libcrypto.so.3") })
	return lib.version, lib.err
}

// Signer returns a crypto.Signer for k that signs PKCS #1 v1.5 digests of
// SHA-1, SHA-256, SHA-384 and SHA-512 through libcrypto, and anything else
// (PSS) with k itself. Its Public is k's *rsa.PublicKey. When libcrypto
// is not loaded, the engine is Go, or k cannot be handed to libcrypto, it
// returns k unchanged.
//
// The key is converted once; its libcrypto copy is freed when the
// returned Signer is no longer referenced. Callers keep the Signer for as
// long as they sign with the key (a key cache), not one per signature.
func Signer(k *rsa.PrivateKey) crypto.Signer {
	if k == nil || goOnly.Load() {
		return k
	}
	if _, err := library(); err != nil {
		return k
	}
	s, err := newKey(k)
	if err != nil {
		slog.Warn("rsa signing: this key signs with Go crypto/rsa", "bits", k.N.BitLen(), "err", err)
		return k
	}
	return s
}

// Libcrypto reports whether s signs through libcrypto: a Signer from this
// package whose libcrypto signatures have not failed.
func Libcrypto(s crypto.Signer) bool {
	k, ok := s.(*Key)
	return ok && !k.off.Load()
}

// Key is an RSA private key that signs through libcrypto. Safe for
// concurrent use.
type Key struct {
	priv   *rsa.PrivateKey
	lc     *lcKey
	off    atomic.Bool   // a libcrypto signature failed: Go signs
	signed atomic.Uint64 // libcrypto signatures made
}

// Which libcrypto signatures of a key Go verifies: all of the first
// verifyFirst, then one in verifyEvery (the checks then cost a tenth of
// what checking every signature did).
const (
	verifyFirst = 100
	verifyEvery = 10
)

// verify reports whether the n-th libcrypto signature of a key (from 1)
// is checked with Go.
func verify(n uint64) bool { return n <= verifyFirst || n%verifyEvery == 0 }

// Public returns the *rsa.PublicKey.
func (k *Key) Public() crypto.PublicKey { return &k.priv.PublicKey }

// Sign signs digest: PKCS #1 v1.5 with a supported hash through
// libcrypto, everything else with Go.
func (k *Key) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if _, pss := opts.(*rsa.PSSOptions); pss || k.off.Load() {
		return k.priv.Sign(rand, digest, opts)
	}
	h := opts.HashFunc()
	md := mdOf(h)
	if md == 0 || len(digest) != h.Size() {
		return k.priv.Sign(rand, digest, opts)
	}
	d := digest
	if testTruncate {
		d = digest[:len(digest)-1]
	}
	sig, err := k.lc.sign(md, d)
	if err == nil && testCorrupt != nil {
		testCorrupt(sig)
	}
	if err == nil && verify(k.signed.Add(1)) {
		if err = rsa.VerifyPKCS1v15(&k.priv.PublicKey, h, digest, sig); err != nil {
			err = fmt.Errorf("libcrypto signature does not verify: %w", err)
		}
	}
	if err != nil {
		if k.off.CompareAndSwap(false, true) {
			slog.Error("rsa signing: libcrypto failed, this key signs with Go crypto/rsa from now on",
				"bits", k.priv.N.BitLen(), "err", err)
		}
		return k.priv.Sign(rand, digest, opts)
	}
	return sig, nil
}

// Digest algorithms as the C side numbers them.
const (
	mdSHA1 = 1 + iota
	mdSHA256
	mdSHA384
	mdSHA512
)

func mdOf(h crypto.Hash) int {
	switch h {
	case crypto.SHA1:
		return mdSHA1
	case crypto.SHA256:
		return mdSHA256
	case crypto.SHA384:
		return mdSHA384
	case crypto.SHA512:
		return mdSHA512
	}
	return 0
}

// newKey hands k to libcrypto and checks that both engines sign a test
// digest alike; the check also fills any cache libcrypto keeps in the key
// while only this goroutine holds it.
func newKey(k *rsa.PrivateKey) (*Key, error) {
	lc, err := convert(k)
	if err != nil {
		return nil, err
	}
	digest := make([]byte, crypto.SHA256.Size())
	copy(digest, "mailgate rsasign self-check")
	sig, err := lc.sign(mdSHA256, digest)
	if err != nil {
		return nil, err
	}
	want, err := rsa.SignPKCS1v15(nil, k, crypto.SHA256, digest)
	if err != nil {
		return nil, fmt.Errorf("go: %w", err)
	}
	if string(sig) != string(want) {
		return nil, errors.New("libcrypto's self-check signature differs from Go's")
	}
	return &Key{priv: k, lc: lc}, nil
}

// Test hooks. testTruncate, set by a test, hands libcrypto a digest one
// byte short, which it refuses; testCorrupt, when set by a test, sees (and may change) every signature
// libcrypto made before it is verified.
var testCorrupt func(sig []byte)
var testTruncate bool
