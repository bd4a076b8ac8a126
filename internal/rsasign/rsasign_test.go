package rsasign

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/mailgate/mailgate/internal/testutil/peers"
)

// needLibcrypto skips a test that needs libcrypto in a build without cgo,
// and treats a missing libcrypto.so.3 as a missing peer.
func needLibcrypto(t testing.TB) {
	t.Helper()
	if !cgoBuild {
		t.Skip("built without cgo: libcrypto is never loaded")
	}
	if _, err := Available(); err != nil {
		peers.Missing(t, "libcrypto.so.3 (Debian package libssl3): %v", err)
	}
}

var keys = struct {
	once sync.Once
	k    []*rsa.PrivateKey
}{}

// testKeys are two RSA-2048 keys and one RSA-3072 key, made once.
func testKeys(t testing.TB) []*rsa.PrivateKey {
	t.Helper()
	keys.once.Do(func() {
		for _, bits := range []int{2048, 2048, 3072} {
			k, err := rsa.GenerateKey(rand.Reader, bits)
			if err != nil {
				panic(err)
			}
			keys.k = append(keys.k, k)
		}
	})
	return keys.k
}

func digestOf(h crypto.Hash, s string) []byte {
	w := h.New()
	w.Write([]byte(s))
	return w.Sum(nil)
}

// TestSameAsGo: libcrypto's PKCS #1 v1.5 signatures are Go's, byte for
// byte, for every supported hash, and they verify.
func TestSameAsGo(t *testing.T) {
	needLibcrypto(t)
	for i, k := range testKeys(t) {
		s := Signer(k)
		if !Libcrypto(s) {
			t.Fatalf("key %d: Signer did not wrap the key for libcrypto: %T", i, s)
		}
		if pub, ok := s.Public().(*rsa.PublicKey); !ok || !pub.Equal(&k.PublicKey) {
			t.Fatalf("key %d: Public() = %T, not the key's public key", i, s.Public())
		}
		for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
			for j, text := range []string{"", "From: a@example.test", strings.Repeat("本文", 1000)} {
				d := digestOf(h, text)
				got, err := s.Sign(rand.Reader, d, h)
				if err != nil {
					t.Fatalf("key %d %v digest %d: %v", i, h, j, err)
				}
				want, err := rsa.SignPKCS1v15(nil, k, h, d)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("key %d %v digest %d: libcrypto's signature differs from Go's", i, h, j)
				}
				if err := rsa.VerifyPKCS1v15(&k.PublicKey, h, d, got); err != nil {
					t.Errorf("key %d %v digest %d: %v", i, h, j, err)
				}
			}
		}
		if !Libcrypto(s) {
			t.Errorf("key %d fell back to Go", i)
		}
	}
}

// TestOtherOptionsSignWithGo: PSS and an unhashed message are Go's.
func TestOtherOptionsSignWithGo(t *testing.T) {
	needLibcrypto(t)
	k := testKeys(t)[0]
	s := Signer(k)
	d := digestOf(crypto.SHA256, "pss")
	sig, err := s.Sign(rand.Reader, d, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPSS(&k.PublicKey, crypto.SHA256, d, sig, nil); err != nil {
		t.Errorf("PSS signature: %v", err)
	}
	raw := []byte("raw bytes, no hash")
	sig, err = s.Sign(rand.Reader, raw, crypto.Hash(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPKCS1v15(&k.PublicKey, crypto.Hash(0), raw, sig); err != nil {
		t.Errorf("unhashed signature: %v", err)
	}
	// A digest of the wrong length for its hash is Go's to refuse.
	if _, err := s.Sign(rand.Reader, raw, crypto.SHA256); err == nil {
		t.Error("a digest of the wrong length was signed")
	}
	if !Libcrypto(s) {
		t.Error("options libcrypto does not handle turned the key to Go")
	}
}

// TestConcurrent: one key signs from 32 goroutines at once (one
// EVP_PKEY, a context per signature); every signature verifies and none
// fell back to Go.
func TestConcurrent(t *testing.T) {
	needLibcrypto(t)
	k := testKeys(t)[0]
	s := Signer(k)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				d := digestOf(crypto.SHA256, fmt.Sprintf("goroutine %d message %d", g, i))
				sig, err := s.Sign(rand.Reader, d, crypto.SHA256)
				if err == nil {
					err = rsa.VerifyPKCS1v15(&k.PublicKey, crypto.SHA256, d, sig)
				}
				if err != nil {
					errs <- fmt.Errorf("goroutine %d message %d: %w", g, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if !Libcrypto(s) {
		t.Error("a concurrent signature failed in libcrypto and the key fell back to Go")
	}
}

// captureLog sends slog's default logger to a buffer for the test.
func captureLog(t *testing.T) *bytes.Buffer {
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })
	return &buf
}

// TestFallback: when libcrypto fails (an error from it, or a signature
// that does not verify), the signature comes from Go and is valid, the
// failure is logged once, and the key signs with Go from then on.
func TestFallback(t *testing.T) {
	needLibcrypto(t)
	k := testKeys(t)[1]
	for _, tc := range []struct {
		name  string
		setup func() func()
		log   string
	}{
		{"libcrypto error", func() func() {
			testTruncate = true
			return func() { testTruncate = false }
		}, "EVP_PKEY_sign"},
		{"bad signature", func() func() {
			testCorrupt = func(sig []byte) { sig[len(sig)/2] ^= 1 }
			return func() { testCorrupt = nil }
		}, "does not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := captureLog(t)
			s := Signer(k)
			if !Libcrypto(s) {
				t.Fatal("not a libcrypto signer")
			}
			undo := tc.setup()
			defer undo()
			for i := range 3 {
				d := digestOf(crypto.SHA256, fmt.Sprint("fallback ", i))
				sig, err := s.Sign(rand.Reader, d, crypto.SHA256)
				if err != nil {
					t.Fatal(err)
				}
				if err := rsa.VerifyPKCS1v15(&k.PublicKey, crypto.SHA256, d, sig); err != nil {
					t.Fatalf("signature %d after the failure: %v", i, err)
				}
			}
			if Libcrypto(s) {
				t.Error("the key still signs through libcrypto")
			}
			if n := strings.Count(log.String(), "libcrypto failed"); n != 1 {
				t.Errorf("%d failure lines logged, want 1:\n%s", n, log)
			}
			if !strings.Contains(log.String(), tc.log) {
				t.Errorf("the log does not say %q:\n%s", tc.log, log)
			}
		})
	}
}

// TestVerifySampling: Go checks each of a key's first verifyFirst
// libcrypto signatures and one in verifyEvery after them, so a binding
// error that starts late is caught at the next checked signature, which
// then comes from Go.
func TestVerifySampling(t *testing.T) {
	needLibcrypto(t)
	k := testKeys(t)[1]
	for _, start := range []int{verifyFirst / 2, verifyFirst + 1} {
		t.Run(fmt.Sprint("corrupt from ", start), func(t *testing.T) {
			captureLog(t)
			s := Signer(k)
			n := 0
			testCorrupt = func(sig []byte) {
				if n >= start {
					sig[len(sig)/2] ^= 1
				}
			}
			defer func() { testCorrupt = nil }()
			want := start
			for want > verifyFirst && want%verifyEvery != 0 {
				want++
			}
			for n = 1; n <= want+5; n++ {
				d := digestOf(crypto.SHA256, fmt.Sprint("sampling ", n))
				sig, err := s.Sign(rand.Reader, d, crypto.SHA256)
				if err != nil {
					t.Fatal(err)
				}
				valid := rsa.VerifyPKCS1v15(&k.PublicKey, crypto.SHA256, d, sig) == nil
				if valid != (n < start || n >= want) {
					t.Fatalf("signature %d valid=%v (corrupt from %d, caught at %d)", n, valid, start, want)
				}
				if Libcrypto(s) != (n < want) {
					t.Fatalf("after signature %d libcrypto=%v, want the fallback at %d", n, Libcrypto(s), want)
				}
			}
		})
	}
}

// TestUse: the engine switch, and a build or machine without libcrypto.
func TestUse(t *testing.T) {
	k := testKeys(t)[0]
	defer Use(Auto)
	if _, err := Use("openssl"); err == nil {
		t.Error("an unknown engine was accepted")
	}
	desc, err := Use(Go)
	if err != nil || !strings.HasPrefix(desc, "Go crypto/rsa") {
		t.Errorf("Use(Go) = %q, %v", desc, err)
	}
	if s := Signer(k); s != crypto.Signer(k) {
		t.Errorf("with engine go, Signer returned a %T, not the key", s)
	}
	desc, err = Use(Auto)
	if err != nil {
		t.Fatal(err)
	}
	if !cgoBuild {
		if s := Signer(k); s != crypto.Signer(k) || !strings.Contains(desc, "without cgo") {
			t.Errorf("without cgo: Signer returned a %T, Use said %q", s, desc)
		}
		return
	}
	needLibcrypto(t)
	if !strings.HasPrefix(desc, "libcrypto (OpenSSL 3") {
		t.Errorf("Use(Auto) = %q", desc)
	}
	if !Libcrypto(Signer(k)) {
		t.Error("with engine auto, Signer did not wrap the key")
	}
	if Signer(nil) != crypto.Signer((*rsa.PrivateKey)(nil)) {
		t.Error("Signer(nil) is not nil")
	}
}

// BenchmarkSign compares Go and libcrypto signing an RSA-2048 SHA-256
// digest, one goroutine and all CPUs.
func BenchmarkSign(b *testing.B) {
	needLibcrypto(b)
	k := testKeys(b)[0]
	d := sha256.Sum256([]byte("bench"))
	for _, e := range []struct {
		name string
		s    crypto.Signer
	}{{"go", k}, {"libcrypto", Signer(k)}} {
		b.Run(e.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := e.s.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(e.name+"-parallel", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := e.s.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// TestMissingLibrary: a machine without libcrypto gets an error from
// load (and Signer then returns the Go key: TestUse without cgo).
func TestMissingLibrary(t *testing.T) {
	if !cgoBuild {
		t.Skip("built without cgo")
	}
	if _, err := load("libmailgate-test-none.so.3"); err == nil || !strings.Contains(err.Error(), "libmailgate-test-none.so.3") {
		t.Errorf("load of a missing library: %v", err)
	}
}
