// Package signedlink makes and checks the one-click links of quarantine
// digests: a token names one action on one quarantined copy of one
// recipient, until a deadline, and is authenticated with HMAC-SHA256
// (RFC 2104) under a cluster-wide key. Whoever holds the token may perform
// that action and nothing else: changing any field invalidates the MAC.
//
// Token format (URL-safe, no padding, RFC 4648 section 5):
//
//	base64url(payload) "." base64url(HMAC-SHA256(key, payload))
//
// payload = version byte 1, then Action, ItemID and Rcpt each as a uvarint
// length and bytes, then TenantID and Expires (Unix seconds) as varints.
// Length prefixes keep field boundaries unambiguous whatever the values
// contain.
package signedlink

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Action is what a link does.
type Action string

// Actions a link can carry.
const (
	Release      Action = "release"       // release the copy to the recipient
	ReleaseAllow Action = "release-allow" // release and allow the sender for the recipient
	BlockSender  Action = "block-sender"  // deny the sender for the recipient and delete the copy
	Open         Action = "open"          // show the copy in the console (after login)
	// Download opens an attachment link's download page (package
	// attachlink); ItemID is the link's ID and Rcpt is empty.
	Download Action = "download"
	// Outbound holds (package outbound): ItemID is the held message's
	// queue ID and Rcpt the address the link was mailed to (an approver,
	// or the sender for cancel).
	Approve Action = "approve" // send a message held for approval
	Reject  Action = "reject"  // refuse it
	Cancel  Action = "cancel"  // withdraw a delayed (or held) message
)

// Valid reports whether a is one of the defined actions.
func (a Action) Valid() bool {
	switch a {
	case Release, ReleaseAllow, BlockSender, Open, Download, Approve, Reject, Cancel:
		return true
	}
	return false
}

// Link is what a token grants.
type Link struct {
	Action   Action
	TenantID int64
	ItemID   string // quarantine item ID
	Rcpt     string // the recipient the copy belongs to
	Expires  time.Time
}

// Errors of Verify. ErrTampered covers any token that was not made by Sign
// with this key (forged, altered, truncated, or signed with another key);
// ErrExpired is only returned for an authentic token past its deadline, so
// a page may offer "ask for a new digest" for it.
var (
	ErrMalformed = errors.New("signedlink: malformed token")
	ErrTampered  = errors.New("signedlink: invalid signature")
	ErrExpired   = errors.New("signedlink: link expired")
)

// KeySize is the length of the signing key the store generates.
const KeySize = 32

// SecretName is the store secret holding the signing key.
const SecretName = "link-key"

// MaxTokenLen bounds tokens Verify looks at (a URL parameter is
// attacker-controlled).
const MaxTokenLen = 4096

const version = 1

// Strict: a token has exactly one spelling (no ignored trailing bits).
var enc = base64.RawURLEncoding.Strict()

// SecretStore is the part of the store that keeps cluster-wide secrets
// (store.WebStore.Secret).
type SecretStore interface {
	Secret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error)
}

// LoadKey returns the cluster-wide signing key, creating 32 random bytes on
// first use. Every node gets the same key from the shared store, so a link
// made by one node verifies on any other.
func LoadKey(ctx context.Context, s SecretStore) ([]byte, error) {
	k, err := s.Secret(ctx, SecretName, func() ([]byte, error) {
		b := make([]byte, KeySize)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		return b, nil
	})
	if err != nil {
		return nil, fmt.Errorf("link signing key: %w", err)
	}
	if len(k) < 16 {
		return nil, fmt.Errorf("link signing key: only %d bytes", len(k))
	}
	return k, nil
}

// Sign returns the token for l. It is deterministic: the same link and key
// give the same token. Safe for concurrent use.
func Sign(key []byte, l Link) string {
	p := encodePayload(l)
	return enc.EncodeToString(p) + "." + enc.EncodeToString(mac(key, p))
}

// Verify checks a token and returns the link it grants. The MAC is checked
// (in constant time) before the payload is parsed, so unauthenticated
// input never reaches the parser beyond base64 decoding. A link expires
// when now is at or after Expires.
func Verify(key []byte, token string, now time.Time) (Link, error) {
	if len(token) == 0 || len(token) > MaxTokenLen {
		return Link{}, ErrMalformed
	}
	for i := 0; i < len(token); i++ {
		// The base64 decoder skips CR and LF; refusing them (and anything
		// else outside the alphabet) keeps one spelling per token.
		c := token[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return Link{}, ErrMalformed
		}
	}
	ps, ms, ok := strings.Cut(token, ".")
	if !ok {
		return Link{}, ErrMalformed
	}
	p, err := enc.DecodeString(ps)
	if err != nil {
		return Link{}, ErrMalformed
	}
	m, err := enc.DecodeString(ms)
	if err != nil {
		return Link{}, ErrMalformed
	}
	if !hmac.Equal(m, mac(key, p)) {
		return Link{}, ErrTampered
	}
	l, err := decodePayload(p)
	if err != nil {
		// Authentic but unreadable: only a newer or older format can do
		// this; treat it as not made by us.
		return Link{}, ErrMalformed
	}
	if !now.Before(l.Expires) {
		return l, ErrExpired
	}
	return l, nil
}

func mac(key, p []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(p)
	return h.Sum(nil)
}

func encodePayload(l Link) []byte {
	var b bytes.Buffer
	b.WriteByte(version)
	for _, s := range []string{string(l.Action), l.ItemID, l.Rcpt} {
		b.Write(binary.AppendUvarint(nil, uint64(len(s))))
		b.WriteString(s)
	}
	b.Write(binary.AppendVarint(nil, l.TenantID))
	b.Write(binary.AppendVarint(nil, l.Expires.Unix()))
	return b.Bytes()
}

func decodePayload(p []byte) (Link, error) {
	if len(p) == 0 || p[0] != version {
		return Link{}, errors.New("unknown version")
	}
	r := bytes.NewReader(p[1:])
	var fields [3]string
	for i := range fields {
		n, err := binary.ReadUvarint(r)
		if err != nil || n > uint64(r.Len()) {
			return Link{}, errors.New("bad field length")
		}
		b := make([]byte, n)
		if _, err := r.Read(b); err != nil && n > 0 {
			return Link{}, err
		}
		fields[i] = string(b)
	}
	tenant, err := binary.ReadVarint(r)
	if err != nil {
		return Link{}, err
	}
	exp, err := binary.ReadVarint(r)
	if err != nil {
		return Link{}, err
	}
	if r.Len() != 0 {
		return Link{}, errors.New("trailing bytes")
	}
	l := Link{Action: Action(fields[0]), ItemID: fields[1], Rcpt: fields[2], TenantID: tenant, Expires: time.Unix(exp, 0).UTC()}
	if !l.Action.Valid() {
		return Link{}, fmt.Errorf("unknown action %q", l.Action)
	}
	return l, nil
}
