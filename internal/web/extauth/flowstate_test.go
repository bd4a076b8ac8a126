package extauth

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestFlowStateRoundTrip(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	fs := NewFlowState("t1", now)
	fs.ReturnTo = "/quarantine?page=2"
	if fs.State == fs.Nonce || len(fs.State) < 40 || len(fs.Verifier) < 43 {
		t.Fatalf("weak or repeated randoms: %+v", fs)
	}
	sealed := SealState(key, fs)
	for _, secret := range []string{fs.Verifier, fs.Nonce, fs.State} {
		if strings.Contains(sealed, secret) {
			t.Fatal("sealed state shows its contents")
		}
	}
	if again := SealState(key, fs); again == sealed {
		t.Fatal("two seals of the same state are identical (nonce reuse)")
	}
	for _, at := range []time.Time{now, now.Add(FlowStateMaxAge), now.Add(-30 * time.Second)} {
		got, err := OpenState(key, sealed, at)
		if err != nil {
			t.Fatalf("OpenState at %v: %v", at, err)
		}
		if got != fs {
			t.Fatalf("OpenState = %+v, want %+v", got, fs)
		}
	}
	if !fs.MatchState(fs.State) || fs.MatchState(fs.State+"x") || fs.MatchState("") || (FlowState{}).MatchState("") {
		t.Fatal("MatchState accepts the wrong state")
	}
}

func TestOpenStateRejects(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	sealed := SealState(key, NewFlowState("t1", now))
	raw, _ := base64.RawURLEncoding.DecodeString(sealed)
	flipped := append([]byte(nil), raw...)
	flipped[len(flipped)/2] ^= 1

	cases := map[string]struct {
		key    []byte
		sealed string
		now    time.Time
	}{
		"expired":     {key, sealed, now.Add(FlowStateMaxAge + time.Second)},
		"future":      {key, sealed, now.Add(-2 * time.Minute)},
		"other key":   {[]byte("fedcba9876543210fedcba9876543210"), sealed, now},
		"tampered":    {key, base64.RawURLEncoding.EncodeToString(flipped), now},
		"truncated":   {key, sealed[:20], now},
		"not base64":  {key, "!!!" + sealed, now},
		"empty":       {key, "", now},
		"zero issued": {key, SealState(key, FlowState{State: "s", IssuedAt: time.Unix(0, 0)}), now},
	}
	for name, tc := range cases {
		if fs, err := OpenState(tc.key, tc.sealed, tc.now); !errors.Is(err, ErrFlowState) {
			t.Errorf("%s: OpenState = %+v, %v; want ErrFlowState", name, fs, err)
		}
	}
	if _, err := OpenState([]byte("short"), sealed, now); err == nil {
		t.Error("short key accepted")
	}
	defer func() {
		if recover() == nil {
			t.Error("SealState with a short key did not panic")
		}
	}()
	SealState([]byte("short"), FlowState{})
}

func FuzzOpenState(f *testing.F) {
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Add(SealState(key, NewFlowState("t", now)))
	f.Add("")
	f.Add("AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		fs, err := OpenState(key, s, now)
		if err != nil {
			if !errors.Is(err, ErrFlowState) {
				t.Fatalf("error without ErrFlowState: %v", err)
			}
			return
		}
		// Only what this key sealed opens; it must survive another seal.
		again, err := OpenState(key, SealState(key, fs), now)
		if err != nil || again != fs {
			t.Fatalf("reseal: %+v, %v; want %+v", again, err, fs)
		}
	})
}
