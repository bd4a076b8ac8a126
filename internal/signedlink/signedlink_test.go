package signedlink

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

var (
	testKey = []byte("0123456789abcdef0123456789abcdef")
	t0      = time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
)

func sample() Link {
	return Link{Action: Release, TenantID: 7, ItemID: "019a2b3c4d5e6aabbccddeeff0011", Rcpt: "alice@example.test", Expires: t0.Add(7 * 24 * time.Hour)}
}

func TestRoundTrip(t *testing.T) {
	for _, a := range []Action{Release, ReleaseAllow, BlockSender, Open} {
		l := sample()
		l.Action = a
		tok := Sign(testKey, l)
		if url.QueryEscape(tok) != tok {
			t.Fatalf("token %q is not URL-safe", tok)
		}
		got, err := Verify(testKey, tok, t0)
		if err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		if got.Action != l.Action || got.TenantID != l.TenantID || got.ItemID != l.ItemID || got.Rcpt != l.Rcpt || !got.Expires.Equal(l.Expires) {
			t.Fatalf("%s: got %+v, want %+v", a, got, l)
		}
	}
}

// Changing any field of the link (as an attacker would, to act on another
// item, another tenant or with another action) invalidates the token.
func TestOtherLinkCannotReuseSignature(t *testing.T) {
	l := sample()
	tok := Sign(testKey, l)
	_, sig, _ := strings.Cut(tok, ".")
	variants := map[string]Link{}
	v := l
	v.Action = BlockSender
	variants["action"] = v
	v = l
	v.ItemID += "0"
	variants["item"] = v
	v = l
	v.TenantID = 8
	variants["tenant"] = v
	v = l
	v.Rcpt = "bob@example.test"
	variants["rcpt"] = v
	v = l
	v.Expires = v.Expires.Add(365 * 24 * time.Hour)
	variants["expiry"] = v
	for name, v := range variants {
		forged := enc.EncodeToString(encodePayload(v)) + "." + sig
		if _, err := Verify(testKey, forged, t0); !errors.Is(err, ErrTampered) {
			t.Errorf("%s changed: err = %v, want ErrTampered", name, err)
		}
	}
}

func TestTamperedBytesAndKeys(t *testing.T) {
	tok := Sign(testKey, sample())
	for i := range tok {
		if tok[i] == '.' {
			continue
		}
		b := []byte(tok)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		_, err := Verify(testKey, string(b), t0)
		if !errors.Is(err, ErrTampered) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("byte %d changed: err = %v", i, err)
		}
	}
	other := []byte("another key, also thirty-two b!!")
	if _, err := Verify(other, tok, t0); !errors.Is(err, ErrTampered) {
		t.Fatalf("other key: err = %v, want ErrTampered", err)
	}
	for _, bad := range []string{"", "nodot", "a.b.c", "!!!.!!!", strings.Repeat("A", MaxTokenLen+1)} {
		if _, err := Verify(testKey, bad, t0); err == nil {
			t.Fatalf("%q verified", bad)
		}
	}
}

func TestExpiry(t *testing.T) {
	l := sample()
	tok := Sign(testKey, l)
	if _, err := Verify(testKey, tok, l.Expires.Add(-time.Second)); err != nil {
		t.Fatalf("one second before expiry: %v", err)
	}
	got, err := Verify(testKey, tok, l.Expires)
	if !errors.Is(err, ErrExpired) {
		t.Fatalf("at expiry: err = %v, want ErrExpired", err)
	}
	if got.ItemID != l.ItemID {
		t.Fatalf("expired link should still say what it was for, got %+v", got)
	}
	// An expired token with a bad MAC is tampered, not expired.
	forged := Sign([]byte("not the key, not the key, not it"), l)
	if _, err := Verify(testKey, forged, l.Expires.Add(time.Hour)); !errors.Is(err, ErrTampered) {
		t.Fatalf("forged expired token: err = %v, want ErrTampered", err)
	}
}

// A payload authenticated with the right key but naming an unknown action
// is refused (only Sign's own output verifies).
func TestUnknownActionRefused(t *testing.T) {
	l := sample()
	l.Action = "delete-everything"
	p := encodePayload(l)
	tok := enc.EncodeToString(p) + "." + enc.EncodeToString(mac(testKey, p))
	if _, err := Verify(testKey, tok, t0); !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed", err)
	}
}

type memSecrets map[string][]byte

func (m memSecrets) Secret(_ context.Context, name string, gen func() ([]byte, error)) ([]byte, error) {
	if v, ok := m[name]; ok {
		return v, nil
	}
	v, err := gen()
	if err != nil {
		return nil, err
	}
	m[name] = v
	return v, nil
}

func TestLoadKeyCreatesOnceAndReuses(t *testing.T) {
	s := memSecrets{}
	k1, err := LoadKey(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if len(k1) != KeySize {
		t.Fatalf("key length %d", len(k1))
	}
	k2, err := LoadKey(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if string(k1) != string(k2) {
		t.Fatal("second load made a new key")
	}
	if _, ok := s[SecretName]; !ok {
		t.Fatalf("key not stored under %q", SecretName)
	}
}

// FuzzVerify: no input panics, and whatever verifies is exactly what Sign
// makes for the returned link (one token per link, no malleability).
func FuzzVerify(f *testing.F) {
	f.Add(Sign(testKey, sample()))
	f.Add("")
	f.Add(".")
	f.Add("AQ.AQ")
	l := sample()
	l.Rcpt = "\x00.\xff"
	f.Add(Sign(testKey, l))
	f.Fuzz(func(t *testing.T, tok string) {
		got, err := Verify(testKey, tok, t0)
		if err == nil || errors.Is(err, ErrExpired) {
			if Sign(testKey, got) != tok {
				t.Fatalf("token %q verified as %+v but Sign gives %q", tok, got, Sign(testKey, got))
			}
		}
	})
}
