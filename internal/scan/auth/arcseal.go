package auth

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Sealer adds an ARC set (RFC 8617) to the copies mailgate delivers, so
// that a receiving service which trusts mailgate as a sealer (Microsoft
// 365's trusted ARC sealers, Gmail) can rely on the authentication results
// mailgate recorded even after a Subject tag or a banner broke the
// sender's DKIM signature. Safe for concurrent use.
type Sealer struct {
	Domain     string        // d=: the sealing domain
	Selector   string        // s=: its key is published at Selector._domainkey.Domain
	Signer     crypto.Signer // an RSA or Ed25519 key (by its Public)
	AuthServID string        // the authserv-id of the ARC-Authentication-Results
	Now        func() time.Time
}

// sealedFields are the header fields the ARC-Message-Signature covers, each
// as often as it occurs, when present. ARC-Seal is never among them (RFC
// 8617 4.1.2) and mailgate's own verdict headers are left out: they are
// written per copy and are not what a receiver needs protected.
var sealedFields = []string{"From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To",
	"In-Reply-To", "References", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
	"DKIM-Signature", "List-Id", "List-Unsubscribe", "Sender"}

// Seal reads a message (the copy exactly as it will be delivered, below
// where the ARC set goes) and returns the new ARC set: ARC-Seal,
// ARC-Message-Signature and ARC-Authentication-Results, each ending in
// CRLF, to be written above it. cv is the validation of the chain the
// message arrived with (ARCNone, ARCPass or ARCFail; RFC 8617 5.1.1),
// results the resinfo texts mailgate's Authentication-Results holds; an
// arc= result is added when none is among them.
//
// It returns "" and no error when no set may be added: the chain already
// ends in a failed seal, or holds the maximum of 50 sets. A header section
// too large to read whole is an error: the copy is delivered unsealed.
func (s *Sealer) Seal(ctx context.Context, r io.Reader, cv string, results []string) (string, error) {
	if s == nil || s.Signer == nil {
		return "", errors.New("arc seal: no key")
	}
	// The public key tells the algorithm: an RSA key may come wrapped
	// for another signing engine (package rsasign).
	var alg string
	switch s.Signer.Public().(type) {
	case *rsa.PublicKey:
		alg = "rsa-sha256"
	case ed25519.PublicKey:
		alg = "ed25519-sha256"
	default:
		return "", fmt.Errorf("arc seal: unsupported key %T", s.Signer)
	}
	switch cv {
	case ARCNone, ARCPass, ARCFail:
	default:
		return "", fmt.Errorf("arc seal: chain validation %q", cv)
	}
	br := bufio.NewReaderSize(r, 64<<10)
	h, err := readRawHeader(br)
	if err != nil {
		return "", fmt.Errorf("arc seal: %w", err)
	}
	if h.truncated {
		return "", errors.New("arc seal: header section too large")
	}
	sets, n, err := collectARC(h)
	if err != nil {
		// A chain whose structure is broken is a failed chain; its sets
		// are not sealed over, and the new set records the failure.
		sets, cv = nil, ARCFail
	} else if n > 0 {
		last, err := parseTagList(sets[n].as.value())
		if err != nil {
			sets, cv = nil, ARCFail
		} else if v, _ := last.get("cv"); strings.EqualFold(stripFWS(v), ARCFail) {
			return "", nil // RFC 8617 5.1.2: nothing is added after a failed seal
		}
	}
	if n == 0 {
		cv = ARCNone // no chain arrived: the first set has cv=none
	}
	if n >= maxARCInstances {
		return "", nil
	}
	i := strconv.Itoa(n + 1)

	bodyHash := sha256.New()
	bc := newBodyCanon(bodyHash, true)
	if _, err := io.Copy(bc, ctxReader{ctx, br}); err != nil {
		return "", fmt.Errorf("arc seal: read body: %w", err)
	}
	if err := bc.Close(); err != nil {
		return "", fmt.Errorf("arc seal: body: %w", err)
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	t := strconv.FormatInt(now().Unix(), 10)

	// ARC-Authentication-Results (RFC 8617 4.1.1).
	hasARC := false
	for _, res := range results {
		hasARC = hasARC || strings.HasPrefix(strings.ToLower(strings.TrimSpace(res)), "arc=")
	}
	if !hasARC {
		results = append(results, "arc="+cv)
	}
	aar := "ARC-Authentication-Results: i=" + i + "; " + s.AuthServID
	for _, res := range results {
		aar += ";\r\n\t" + res
	}

	// ARC-Message-Signature (RFC 8617 4.1.2): a DKIM signature with i=.
	var names []string
	count := map[string]int{}
	for _, f := range h.fields {
		for _, want := range sealedFields {
			if strings.EqualFold(f.name, want) {
				count[want]++
			}
		}
	}
	for _, want := range sealedFields {
		for k := 0; k < count[want]; k++ {
			names = append(names, strings.ToLower(want))
		}
	}
	amsHead := "ARC-Message-Signature: i=" + i + "; a=" + alg + "; c=relaxed/relaxed; d=" + s.Domain +
		"; s=" + s.Selector + "; t=" + t + ";\r\n\th=" + strings.Join(names, ":") +
		";\r\n\tbh=" + base64.StdEncoding.EncodeToString(bodyHash.Sum(nil)) + ";\r\n\tb="
	hh := sha256.New()
	v := &arcVerifier{h: h}
	picked := map[string]int{}
	for _, name := range names {
		if f := v.pick(name, picked); f != nil {
			io.WriteString(hh, canonHeader(f.raw, true))
		}
	}
	io.WriteString(hh, strings.TrimSuffix(canonHeader(amsHead, true), "\r\n"))
	sig, err := s.sign(hh.Sum(nil))
	if err != nil {
		return "", err
	}
	ams := amsHead + sig

	// ARC-Seal (RFC 8617 4.1.3): over every set in instance order, this
	// one's seal last with an empty b=.
	asHead := "ARC-Seal: i=" + i + "; a=" + alg + "; t=" + t + "; cv=" + cv + "; d=" + s.Domain +
		"; s=" + s.Selector + ";\r\n\tb="
	sh := sha256.New()
	if cv != ARCFail {
		for j := 1; j <= n; j++ {
			io.WriteString(sh, canonHeader(sets[j].aar.raw, true))
			io.WriteString(sh, canonHeader(sets[j].ams.raw, true))
			io.WriteString(sh, canonHeader(sets[j].as.raw, true))
		}
	}
	// With cv=fail only the new set is sealed (RFC 8617 5.1.2): the
	// earlier sets may be what failed.
	io.WriteString(sh, canonHeader(aar, true))
	io.WriteString(sh, canonHeader(ams, true))
	io.WriteString(sh, strings.TrimSuffix(canonHeader(asHead, true), "\r\n"))
	sig, err = s.sign(sh.Sum(nil))
	if err != nil {
		return "", err
	}
	return asHead + sig + "\r\n" + ams + "\r\n" + aar + "\r\n", nil
}

func (s *Sealer) sign(digest []byte) (string, error) {
	var opts crypto.SignerOpts = crypto.SHA256
	if _, ok := s.Signer.Public().(ed25519.PublicKey); ok {
		// RFC 8463 3: Ed25519 signs the SHA-256 hash as its message.
		opts = crypto.Hash(0)
	}
	sig, err := s.Signer.Sign(rand.Reader, digest, opts)
	if err != nil {
		return "", fmt.Errorf("arc seal: sign: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// ChainValidation reads the ARC validation of a message from its checks'
// authentication results: the arc= result the auth check recorded, or ""
// when the check did not run.
func ChainValidation(authResults []string) string {
	for _, r := range authResults {
		r = strings.ToLower(strings.TrimSpace(r))
		if rest, ok := strings.CutPrefix(r, "arc="); ok {
			switch {
			case strings.HasPrefix(rest, ARCPass):
				return ARCPass
			case strings.HasPrefix(rest, ARCNone):
				return ARCNone
			default:
				return ARCFail
			}
		}
	}
	return ""
}
