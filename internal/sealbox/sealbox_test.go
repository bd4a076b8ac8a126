package sealbox

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

type secrets map[string][]byte

func (s secrets) Secret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error) {
	if b, ok := s[name]; ok {
		return b, nil
	}
	b, err := gen()
	if err == nil {
		s[name] = b
	}
	return b, err
}

func TestSealOpen(t *testing.T) {
	ss := secrets{}
	k, err := LoadKey(context.Background(), ss, "k")
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := LoadKey(context.Background(), ss, "k")
	if !bytes.Equal(k, k2) {
		t.Fatal("key not kept")
	}
	sealed, err := Seal(k, AD(1, "dkim/example.test"), []byte("private"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("private")) {
		t.Fatal("plaintext visible")
	}
	got, err := Open(k, AD(1, "dkim/example.test"), sealed)
	if err != nil || string(got) != "private" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	for name, ad := range map[string][]byte{"other tenant": AD(2, "dkim/example.test"), "other name": AD(1, "dkim/other.test")} {
		if _, err := Open(k, ad, sealed); !errors.Is(err, ErrOpen) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := Open(k, AD(1, "dkim/example.test"), sealed); !errors.Is(err, ErrOpen) {
		t.Errorf("tampered: err = %v", err)
	}
	ss["short"] = []byte("x")
	if _, err := LoadKey(context.Background(), ss, "short"); err == nil {
		t.Error("short key accepted")
	}
}
