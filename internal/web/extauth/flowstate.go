package extauth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"golang.org/x/oauth2"
)

// FlowStateMaxAge is how long a sealed FlowState stays valid: long enough
// to sign in at the provider (password, MFA), short enough that a leaked
// cookie is soon useless.
const FlowStateMaxAge = 10 * time.Minute

// flowStateClockSkew tolerates an IssuedAt slightly in the future, for
// consoles on several nodes whose clocks differ a little.
const flowStateClockSkew = time.Minute

// MinStateKeyLen is the shortest key SealState and OpenState accept.
const MinStateKeyLen = 32

// FlowState is what the console keeps between AuthURL and Exchange, in a
// cookie sealed by SealState.
type FlowState struct {
	State    string    `json:"s"`           // OAuth 2.0 state, compared with the callback's (RFC 6749 10.12)
	Nonce    string    `json:"n"`           // OIDC nonce, compared with the ID token's
	Verifier string    `json:"v"`           // PKCE code verifier (RFC 7636)
	Tenant   string    `json:"t,omitempty"` // tenant whose configuration started the flow
	ReturnTo string    `json:"r,omitempty"` // console path to go to after login
	IssuedAt time.Time `json:"i"`
}

// NewFlowState returns a FlowState with fresh random State, Nonce and
// Verifier, issued at now.
func NewFlowState(tenant string, now time.Time) FlowState {
	return FlowState{
		State:    RandomToken(),
		Nonce:    RandomToken(),
		Verifier: oauth2.GenerateVerifier(),
		Tenant:   tenant,
		IssuedAt: now,
	}
}

// RandomToken returns 256 random bits, base64url-encoded without padding,
// for use as an OAuth state or OIDC nonce.
func RandomToken() string {
	return base64.RawURLEncoding.EncodeToString(randomBytes(32))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	// crypto/rand.Read never returns an error (it crashes the program
	// instead when the system cannot supply randomness).
	_, _ = rand.Read(b)
	return b
}

// MatchState reports, in constant time, whether the callback's state
// parameter is the one this flow started with. An empty State never
// matches.
func (s FlowState) MatchState(got string) bool {
	return s.State != "" && subtle.ConstantTimeCompare([]byte(s.State), []byte(got)) == 1
}

// flowStateAAD binds sealed values to this use, so a value sealed with the
// same key for another purpose cannot be replayed here.
const flowStateAAD = "mailgate/extauth/flowstate/v1"

// stateAEAD derives an AES-256-GCM key from key, so callers may pass a
// long-lived console secret of any length without reusing it directly.
func stateAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) < MinStateKeyLen {
		return nil, fmt.Errorf("extauth: state key must be at least %d bytes, got %d", MinStateKeyLen, len(key))
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(flowStateAAD))
	block, err := aes.NewCipher(mac.Sum(nil))
	if err != nil {
		return nil, fmt.Errorf("extauth: state cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("extauth: state cipher: %w", err)
	}
	return aead, nil
}

// SealState encrypts and authenticates s with AES-256-GCM under a key
// derived from key, returning a cookie-safe (base64url) string. The
// verifier stays confidential, and any change to the string makes
// OpenState fail. A zero IssuedAt is set to the current time.
//
// key must hold at least MinStateKeyLen random bytes; a shorter key is a
// programming error and panics.
func SealState(key []byte, s FlowState) string {
	aead, err := stateAEAD(key)
	if err != nil {
		panic(err)
	}
	if s.IssuedAt.IsZero() {
		s.IssuedAt = time.Now()
	}
	s.IssuedAt = s.IssuedAt.UTC().Truncate(time.Second)
	plain, err := json.Marshal(s)
	if err != nil {
		panic(fmt.Errorf("extauth: encoding flow state: %w", err)) // strings and a time: cannot fail
	}
	nonce := randomBytes(aead.NonceSize())
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, plain, []byte(flowStateAAD)))
}

// OpenState reverses SealState. It returns ErrFlowState (wrapped) when
// sealed is malformed, was sealed under another key or altered, was issued
// more than FlowStateMaxAge before now, or claims to be issued more than a
// minute after now. It does not remember what it opened: the console must
// delete the cookie once used so a state serves one callback only.
func OpenState(key []byte, sealed string, now time.Time) (FlowState, error) {
	aead, err := stateAEAD(key)
	if err != nil {
		return FlowState{}, err
	}
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(raw) < aead.NonceSize()+aead.Overhead() {
		return FlowState{}, fmt.Errorf("%w: malformed", ErrFlowState)
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(flowStateAAD))
	if err != nil {
		return FlowState{}, fmt.Errorf("%w: not sealed by this key", ErrFlowState)
	}
	var s FlowState
	if err := json.Unmarshal(plain, &s); err != nil {
		return FlowState{}, fmt.Errorf("%w: %w", ErrFlowState, err)
	}
	switch {
	case s.IssuedAt.IsZero():
		return FlowState{}, fmt.Errorf("%w: no issue time", ErrFlowState)
	case now.Sub(s.IssuedAt) > FlowStateMaxAge:
		return FlowState{}, fmt.Errorf("%w: expired", ErrFlowState)
	case s.IssuedAt.Sub(now) > flowStateClockSkew:
		return FlowState{}, fmt.Errorf("%w: issued in the future", ErrFlowState)
	}
	return s, nil
}
