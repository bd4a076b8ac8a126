// Package dkimsign signs outbound mail with DKIM (RFC 6376, RFC 8463) per
// sender domain, with keys mailgate generates and keeps in the store.
//
// Keys: RSA-2048 (rsa-sha256) and Ed25519 (ed25519-sha256). A domain signs
// with one or both algorithms under its active selector; during a
// rotation the previous selector stays published (Records lists it) but
// no longer signs, so mail in flight still verifies. Private keys are
// cluster-wide store secrets named after domain, selector and algorithm,
// created on first use: every node signs with the same key and the DNS
// record shown by the console or CLI is the one that verifies.
//
// Signatures use relaxed/relaxed canonicalization and cover the usual
// header fields; From, To, Cc, Subject, Date, Message-ID and Reply-To
// are oversigned (listed once more than they occur), so a field of that
// name added in transit breaks the signature. Signing is the last step
// before delivery: every change the outbound pipeline makes comes first.
package dkimsign

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"net/textproto"
	"strings"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/mailgate/mailgate/internal/bufpool"
	"github.com/mailgate/mailgate/internal/sealbox"
)

// Algorithm is a DKIM key type.
type Algorithm string

// Algorithms.
const (
	RSA     Algorithm = "rsa"     // RSA-2048, rsa-sha256: every verifier knows it
	Ed25519 Algorithm = "ed25519" // ed25519-sha256 (RFC 8463): short, not yet verified everywhere
)

// RSABits is the size of generated RSA keys.
const RSABits = 2048

// GenerateKey makes a new private key of algorithm alg.
func GenerateKey(alg Algorithm) (crypto.Signer, error) {
	switch alg {
	case RSA:
		return rsa.GenerateKey(rand.Reader, RSABits)
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("dkim: unknown key algorithm %q", alg)
}

// MarshalKey encodes a private key as PKCS #8 DER.
func MarshalKey(k crypto.Signer) ([]byte, error) {
	return x509.MarshalPKCS8PrivateKey(k)
}

// ParseKey decodes what MarshalKey made and checks its algorithm.
func ParseKey(der []byte, alg Algorithm) (crypto.Signer, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("dkim key: %w", err)
	}
	switch k := k.(type) {
	case *rsa.PrivateKey:
		if alg == RSA {
			return k, nil
		}
	case ed25519.PrivateKey:
		if alg == Ed25519 {
			return k, nil
		}
	}
	return nil, fmt.Errorf("dkim key: stored key is a %T, not %s", k, alg)
}

// Record is the TXT record that publishes a public key (RFC 6376 3.6.1).
func Record(pub crypto.PublicKey) (string, error) {
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return "", err
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der), nil
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub), nil
	}
	return "", fmt.Errorf("dkim: unsupported public key %T", pub)
}

// RecordName is the DNS name of selector's key for domain.
func RecordName(selector, domain string) string {
	return selector + "._domainkey." + strings.TrimSuffix(domain, ".")
}

// ZoneLine is the record in zone-file syntax, split into strings of at
// most 255 bytes as a TXT record requires (an RSA-2048 key is longer).
func ZoneLine(selector, domain, record string) string {
	var parts []string
	for len(record) > 255 {
		parts = append(parts, `"`+record[:255]+`"`)
		record = record[255:]
	}
	parts = append(parts, `"`+record+`"`)
	return RecordName(selector, domain) + ". IN TXT ( " + strings.Join(parts, " ") + " )"
}

// SecretName is the store secret that holds a key.
func SecretName(domain, selector string, alg Algorithm) string {
	return "dkim-key/" + strings.ToLower(strings.TrimSuffix(domain, ".")) + "/" + selector + "/" + string(alg)
}

// sealKeyName is the store secret that seals the keys.
const sealKeyName = "dkim-seal-key"

// LoadKey returns the private key of domain, selector and alg, generating
// it on first use. The key is stored sealed (package sealbox) and bound
// to its name, so a key row copied under another name does not open.
func LoadKey(ctx context.Context, s sealbox.SecretStore, domain, selector string, alg Algorithm) (crypto.Signer, error) {
	if err := checkLabel(selector); err != nil {
		return nil, err
	}
	seal, err := sealbox.LoadKey(ctx, s, sealKeyName)
	if err != nil {
		return nil, err
	}
	name := SecretName(domain, selector, alg)
	ad := sealbox.AD(0, name)
	sealed, err := s.Secret(ctx, name, func() ([]byte, error) {
		k, err := GenerateKey(alg)
		if err != nil {
			return nil, err
		}
		der, err := MarshalKey(k)
		if err != nil {
			return nil, err
		}
		return sealbox.Seal(seal, ad, der)
	})
	if err != nil {
		return nil, fmt.Errorf("dkim key %s: %w", name, err)
	}
	der, err := sealbox.Open(seal, ad, sealed)
	if err != nil {
		return nil, fmt.Errorf("dkim key %s: %w", name, err)
	}
	return ParseKey(der, alg)
}

// checkLabel accepts a selector: dot-separated DNS labels of letters,
// digits and '-'.
func checkLabel(sel string) error {
	if sel == "" || len(sel) > 50 {
		return fmt.Errorf("dkim selector %q: want 1-50 characters", sel)
	}
	for _, l := range strings.Split(sel, ".") {
		if l == "" || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("dkim selector %q is not a DNS name", sel)
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("dkim selector %q is not a DNS name", sel)
			}
		}
	}
	return nil
}

// Key is one signing key of a domain.
type Key struct {
	Domain    string
	Selector  string
	Algorithm Algorithm
	Signer    crypto.Signer
}

// signedFields are the header fields signed when present (RFC 6376
// 5.4.1); oversigned are also signed once more than they occur.
var (
	signedFields = []string{"Sender", "In-Reply-To", "References", "MIME-Version", "Content-Type",
		"Content-Transfer-Encoding", "Content-Disposition", "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post", "Auto-Submitted"}
	oversigned = []string{"From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To"}
)

// MaxHeaderBytes bounds the header section Sign reads to choose the
// fields it signs.
const MaxHeaderBytes = 1 << 20

// ErrNoFrom is returned for a message without one usable From address:
// there is no domain to sign for.
var ErrNoFrom = errors.New("dkim: message has no single From address")

// FromDomain returns the domain of the message's From address, reading
// only the header section.
func FromDomain(r io.Reader) (string, error) {
	h, err := readHeader(r)
	if err != nil {
		return "", err
	}
	return fromDomain(h)
}

func readHeader(r io.Reader) (textproto.MIMEHeader, error) {
	tp := textproto.NewReader(bufio.NewReader(io.LimitReader(r, MaxHeaderBytes)))
	h, err := tp.ReadMIMEHeader()
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("dkim: read header: %w", err)
	}
	return h, nil
}

var addrParser = mail.AddressParser{WordDecoder: &mime.WordDecoder{
	// Only the address matters: a display name in any charset is passed
	// through undecoded.
	CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil },
}}

func fromDomain(h textproto.MIMEHeader) (string, error) {
	from := h.Values("From")
	if len(from) != 1 {
		return "", ErrNoFrom
	}
	list, err := addrParser.ParseList(from[0])
	if err != nil || len(list) != 1 {
		return "", ErrNoFrom
	}
	a := list[0].Address
	i := strings.LastIndexByte(a, '@')
	if i < 0 || i == len(a)-1 {
		return "", ErrNoFrom
	}
	return strings.ToLower(a[i+1:]), nil
}

// headerKeys lists the fields to sign for header h.
func headerKeys(h textproto.MIMEHeader) []string {
	var keys []string
	for _, f := range oversigned {
		for i := 0; i <= len(h.Values(f)); i++ {
			keys = append(keys, f)
		}
	}
	for _, f := range signedFields {
		for range h.Values(f) {
			keys = append(keys, f)
		}
	}
	return keys
}

// Sign writes msg to w with one DKIM-Signature field per key on top. msg
// is read twice (to sign, then to copy), so it is a ReadSeeker: a spool
// file. With no keys the message is copied unchanged.
func Sign(ctx context.Context, w io.Writer, msg io.ReadSeeker, keys []Key) error {
	if len(keys) == 0 {
		_, err := io.Copy(w, msg)
		return err
	}
	fields, err := Signature(ctx, msg, keys)
	if err != nil {
		return err
	}
	if _, err := msg.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("dkim: %w", err)
	}
	if _, err := io.WriteString(w, fields); err != nil {
		return err
	}
	_, err = bufpool.Copy(w, ctxReader{ctx, msg})
	return err
}

// Signature reads msg once and returns its DKIM-Signature fields, one per
// key, CRLF-terminated: written in front of exactly the bytes read, they
// make the signed message. "" with no keys.
func Signature(ctx context.Context, msg io.Reader, keys []Key) (string, error) {
	if len(keys) == 0 {
		return "", nil
	}
	// The header section chooses the fields to sign; what was read of
	// it goes to the signers first.
	var head bytes.Buffer
	h, err := readHeader(io.TeeReader(msg, &head))
	if err != nil {
		return "", err
	}
	hk := headerKeys(h)
	signers := make([]*dkim.Signer, 0, len(keys))
	ws := make([]io.Writer, 0, len(keys))
	defer func() {
		for _, s := range signers {
			s.Close()
		}
	}()
	for _, k := range keys {
		s, err := dkim.NewSigner(&dkim.SignOptions{
			Domain: k.Domain, Selector: k.Selector, Signer: k.Signer, Hash: crypto.SHA256,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
			HeaderKeys: hk,
		})
		if err != nil {
			return "", fmt.Errorf("dkim: %s/%s: %w", k.Domain, k.Selector, err)
		}
		signers = append(signers, s)
		ws = append(ws, s)
	}
	if _, err := bufpool.Copy(io.MultiWriter(ws...), ctxReader{ctx, io.MultiReader(&head, msg)}); err != nil {
		return "", fmt.Errorf("dkim: sign: %w", err)
	}
	var fields strings.Builder
	for i, s := range signers {
		if err := s.Close(); err != nil {
			return "", fmt.Errorf("dkim: %s/%s: %w", keys[i].Domain, keys[i].Selector, err)
		}
		fields.WriteString(s.Signature())
	}
	signers = nil
	return fields.String(), nil
}

// ctxReader stops reading once ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
