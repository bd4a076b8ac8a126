package auth

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"strconv"
	"strings"
)

// ARC result values (RFC 8617 4.4).
const (
	ARCNone = "none"
	ARCPass = "pass"
	ARCFail = "fail"
)

// maxARCInstances is the highest instance number allowed (RFC 8617 4.2.1).
const maxARCInstances = 50

// TXTResolver is the DNS lookup ARC verification needs; dnsx.Resolver
// satisfies it. Failures must be *net.DNSError values so that a missing key
// (permanent) is told from resolver trouble (temporary).
type TXTResolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// ARCResult is the outcome of verifying a message's ARC chain.
type ARCResult struct {
	// Result is ARCNone, ARCPass or ARCFail.
	Result string
	// Instances is the number of ARC sets found (the highest i=), 0 for none.
	Instances int
	// OldestPass is the lowest instance whose ARC-Message-Signature and all
	// later ones verified, or 0 when all of them did (RFC 8617 5.2 step 6).
	// Only meaningful when Result is ARCPass.
	OldestPass int
	// Sealers are the clean d= domains of the ARC-Seals, index 0 being
	// instance 1, when Result is ARCPass. A tenant may later choose to trust
	// the DMARC-relevant results recorded by a given sealer.
	Sealers []string
	// Temporary is true when a failure came from DNS trouble, not from the
	// message.
	Temporary bool
	// Reason is a private, log-only description of a failure.
	Reason string
}

// arcSet is one instance's three header fields.
type arcSet struct {
	aar, ams, as *field
}

// arcVerifier verifies one chain; it is used once and by one goroutine.
type arcVerifier struct {
	ctx  context.Context
	res  TXTResolver
	keys map[string]keyResult // by query name, so a sealer's key is fetched once
	h    *rawHeader
	// Body hashes by canonicalisation, computed once when an AMS needs them.
	bodyRelaxed, bodySimple []byte
}

type keyResult struct {
	key  *publicKey
	err  error
	temp bool
}

// VerifyARC verifies the ARC chain of the raw message read from r (RFC 8617
// 5.2): instance numbering and one set per instance, the cv= values, the
// newest ARC-Message-Signature, and every ARC-Seal, with rsa-sha256 or
// ed25519-sha256 (RFC 8463) keys looked up with res. Older ARC-Message-
// Signatures are verified only to find OldestPass.
//
// It reads r to the end when a chain is present and needs the body. DNS
// queries use ctx; when ctx ends, verification fails with Temporary set.
// A failure is always a result, never an error, and the result does not by
// itself change DMARC. Safe for concurrent use with distinct readers.
func VerifyARC(ctx context.Context, r io.Reader, res TXTResolver) ARCResult {
	br := bufio.NewReaderSize(r, 64<<10)
	h, err := readRawHeader(br)
	if err != nil {
		return ARCResult{Result: ARCFail, Temporary: true, Reason: err.Error()}
	}
	return verifyARC(ctx, h, br, res)
}

func verifyARC(ctx context.Context, h *rawHeader, body io.Reader, res TXTResolver) ARCResult {
	v := &arcVerifier{ctx: ctx, res: res, keys: map[string]keyResult{}, h: h}
	sets, n, err := collectARC(h)
	if err != nil {
		return ARCResult{Result: ARCFail, Instances: n, Reason: err.Error()}
	}
	if n == 0 {
		return ARCResult{Result: ARCNone}
	}
	out := ARCResult{Result: ARCFail, Instances: n}
	fail := func(err error) ARCResult {
		out.Reason = err.Error()
		var te *tempError
		out.Temporary = errors.As(err, &te)
		return out
	}
	if h.truncated {
		return fail(errors.New("arc: header section too large"))
	}
	// Parse every seal first: step 2 looks at the newest cv=, step 3 at all.
	seals := make([]*tagList, n+1)
	for i := 1; i <= n; i++ {
		l, err := parseTagList(sets[i].as.value())
		if err != nil {
			return fail(fmt.Errorf("arc: ARC-Seal i=%d: %w", i, err))
		}
		seals[i] = l
	}
	// RFC 8617 5.2 step 2: a chain already marked failed stays failed.
	if cv, _ := seals[n].get("cv"); strings.EqualFold(cv, "fail") {
		return fail(fmt.Errorf("arc: ARC-Seal i=%d has cv=fail", n))
	}
	// Step 3: cv=none for the first set, cv=pass for every later one.
	for i := 1; i <= n; i++ {
		cv, _ := seals[i].get("cv")
		want := "pass"
		if i == 1 {
			want = "none"
		}
		if !strings.EqualFold(cv, want) {
			return fail(fmt.Errorf("arc: ARC-Seal i=%d has cv=%s, want %s", i, clip(cv), want))
		}
	}
	if err := v.readBody(body); err != nil {
		return fail(err)
	}
	// Step 4: the newest AMS must verify.
	if err := v.verifyAMS(sets[n].ams); err != nil {
		return fail(fmt.Errorf("arc: ARC-Message-Signature i=%d: %w", n, err))
	}
	// Step 6: oldest-pass from the older AMSs, newest first.
	oldest := 0
	for i := n - 1; i >= 1; i-- {
		if err := v.verifyAMS(sets[i].ams); err != nil {
			oldest = i + 1
			break
		}
	}
	// Step 7: every seal, newest first.
	sealers := make([]string, n)
	for i := n; i >= 1; i-- {
		d, err := v.verifySeal(sets, i, seals[i])
		if err != nil {
			return fail(fmt.Errorf("arc: ARC-Seal i=%d: %w", i, err))
		}
		sealers[i-1] = d
	}
	out.Result, out.OldestPass, out.Sealers = ARCPass, oldest, sealers
	return out
}

// collectARC groups the ARC fields by instance and checks the structure
// (RFC 8617 4.2.1, 5.2 step 3): instances 1..N with no gaps, exactly one
// field of each kind per instance, N at most 50. It returns sets indexed by
// instance (index 0 unused) and N.
func collectARC(h *rawHeader) ([]arcSet, int, error) {
	sets := make([]arcSet, maxARCInstances+1)
	n := 0
	for idx := range h.fields {
		f := &h.fields[idx]
		var kind int
		switch {
		case strings.EqualFold(f.name, "ARC-Authentication-Results"):
			kind = 0
		case strings.EqualFold(f.name, "ARC-Message-Signature"):
			kind = 1
		case strings.EqualFold(f.name, "ARC-Seal"):
			kind = 2
		default:
			continue
		}
		i, err := arcInstance(f.value())
		if err != nil {
			return nil, max(n, 1), fmt.Errorf("arc: %s: %w", f.name, err)
		}
		n = max(n, i)
		slot := [...]**field{&sets[i].aar, &sets[i].ams, &sets[i].as}[kind]
		if *slot != nil {
			return nil, n, fmt.Errorf("arc: two %s fields with i=%d", f.name, i)
		}
		*slot = f
	}
	for i := 1; i <= n; i++ {
		if sets[i].aar == nil || sets[i].ams == nil || sets[i].as == nil {
			return nil, n, fmt.Errorf("arc: set i=%d is incomplete", i)
		}
	}
	return sets[:n+1], n, nil
}

// arcInstance reads the i= tag that starts an AAR and is somewhere in an
// AMS or AS: 1..50, decimal without sign or leading zero.
func arcInstance(v string) (int, error) {
	var s string
	if l, err := parseTagList(v); err == nil {
		s, _ = l.get("i")
	} else {
		// An AAR is "i=N; authserv-id; results": only its first part is a
		// tag.
		first, _, _ := strings.Cut(v, ";")
		name, val, ok := strings.Cut(first, "=")
		if !ok || trimFWS(name) != "i" {
			return 0, errors.New("missing or malformed i= tag")
		}
		s = trimFWS(val)
	}
	if s == "" || len(s) > 2 || s[0] == '0' || !isDigit(s[0]) || len(s) == 2 && !isDigit(s[1]) {
		return 0, fmt.Errorf("invalid instance %s", clip(s))
	}
	i, _ := strconv.Atoi(s)
	if i < 1 || i > maxARCInstances {
		return 0, fmt.Errorf("instance %d out of range", i)
	}
	return i, nil
}

func (v *arcVerifier) readBody(body io.Reader) error {
	hr, hs := sha256.New(), sha256.New()
	cr, cs := newBodyCanon(hr, true), newBodyCanon(hs, false)
	if _, err := io.Copy(io.MultiWriter(cr, cs), ctxReader{v.ctx, body}); err != nil {
		return tempErr(fmt.Errorf("arc: read body: %w", err))
	}
	if err := cr.Close(); err != nil {
		return err
	}
	if err := cs.Close(); err != nil {
		return err
	}
	v.bodyRelaxed, v.bodySimple = hr.Sum(nil), hs.Sum(nil)
	return nil
}

// verifyAMS verifies an ARC-Message-Signature like a DKIM signature
// (RFC 8617 4.1.2): no v= tag, h= must not name ARC-Seal, and l= is
// refused as it would leave part of the body unsigned.
func (v *arcVerifier) verifyAMS(f *field) error {
	val := f.value()
	l, err := parseTagList(val)
	if err != nil {
		return err
	}
	for _, t := range []string{"i", "a", "b", "bh", "d", "h", "s"} {
		if !l.has(t) {
			return fmt.Errorf("missing %s= tag", t)
		}
	}
	if l.has("l") {
		return errors.New("l= body length tag refused")
	}
	hc, bc, err := parseCanon(l)
	if err != nil {
		return err
	}
	bh, err := decodeB64(l, "bh")
	if err != nil {
		return err
	}
	want := v.bodySimple
	if bc {
		want = v.bodyRelaxed
	}
	if subtle.ConstantTimeCompare(bh, want) != 1 {
		return errors.New("body hash did not verify")
	}
	hv, _ := l.get("h")
	names := strings.Split(hv, ":")
	for i, n := range names {
		names[i] = trimFWS(n)
		if strings.EqualFold(names[i], "arc-seal") {
			return errors.New("h= names ARC-Seal")
		}
		if names[i] == "" {
			return errors.New("malformed h= tag")
		}
	}
	hsh := sha256.New()
	picked := map[string]int{} // fields already used, counted from the bottom
	for _, n := range names {
		if f := v.pick(n, picked); f != nil {
			io.WriteString(hsh, canonHeader(f.raw, hc))
		}
	}
	self := canonHeader(withoutB(f.raw, len(f.raw)-len(val), l), hc)
	io.WriteString(hsh, strings.TrimSuffix(self, "\r\n"))
	_, err = v.check(l, hsh)
	return err
}

// pick returns the next not yet used field named name, from the bottom of
// the header up (RFC 6376 5.4.2), or nil when none is left (a name with no
// field adds nothing).
func (v *arcVerifier) pick(name string, picked map[string]int) *field {
	key := strings.ToLower(name)
	seen := 0
	for i := len(v.h.fields) - 1; i >= 0; i-- {
		if strings.EqualFold(v.h.fields[i].name, name) {
			if seen == picked[key] {
				picked[key]++
				return &v.h.fields[i]
			}
			seen++
		}
	}
	return nil
}

// verifySeal verifies the ARC-Seal of instance i (RFC 8617 5.1.1): it signs,
// with relaxed header canonicalisation, the sets 1..i in instance order,
// each as AAR, AMS, AS, the seal itself last with b= empty.
func (v *arcVerifier) verifySeal(sets []arcSet, i int, l *tagList) (string, error) {
	for _, t := range []string{"i", "a", "b", "cv", "d", "s"} {
		if !l.has(t) {
			return "", fmt.Errorf("missing %s= tag", t)
		}
	}
	if l.has("h") {
		return "", errors.New("h= tag not allowed in ARC-Seal") // RFC 8617 4.1.3
	}
	hsh := sha256.New()
	for j := 1; j <= i; j++ {
		io.WriteString(hsh, canonHeader(sets[j].aar.raw, true))
		io.WriteString(hsh, canonHeader(sets[j].ams.raw, true))
		if j < i {
			io.WriteString(hsh, canonHeader(sets[j].as.raw, true))
		}
	}
	as := sets[i].as
	self := canonHeader(withoutB(as.raw, len(as.raw)-len(as.value()), l), true)
	io.WriteString(hsh, strings.TrimSuffix(self, "\r\n"))
	return v.check(l, hsh)
}

// check fetches the key named by d= and s= and verifies b= over the
// hash; it returns the clean signing domain.
func (v *arcVerifier) check(l *tagList, hsh hash.Hash) (string, error) {
	alg, _ := l.get("a")
	alg = strings.ToLower(stripFWS(alg))
	var keyType string
	switch alg {
	case "rsa-sha256":
		keyType = "rsa"
	case "ed25519-sha256":
		keyType = "ed25519"
	default:
		return "", fmt.Errorf("unsupported algorithm %s", clip(alg))
	}
	d, _ := l.get("d")
	s, _ := l.get("s")
	domain, ok := cleanDomain(stripFWS(d))
	if !ok {
		return "", errors.New("invalid d= domain")
	}
	sel, ok := cleanSelector(stripFWS(s))
	if !ok {
		return "", errors.New("invalid s= selector")
	}
	sig, err := decodeB64(l, "b")
	if err != nil {
		return "", err
	}
	key, err := v.key(sel + "._domainkey." + domain)
	if err != nil {
		return "", err
	}
	if key.typ != keyType {
		return "", errors.New("key type does not match a= algorithm")
	}
	if !key.allowsSHA256 {
		return "", errors.New("key does not allow sha256")
	}
	sum := hsh.Sum(nil)
	switch key.typ {
	case "rsa":
		if err := rsa.VerifyPKCS1v15(key.rsa, crypto.SHA256, sum, sig); err != nil {
			return "", errors.New("signature did not verify")
		}
	case "ed25519":
		// RFC 8463 3: Ed25519 signs the SHA-256 hash.
		if !ed25519.Verify(key.ed, sum, sig) {
			return "", errors.New("signature did not verify")
		}
	}
	return domain, nil
}

func (v *arcVerifier) key(name string) (*publicKey, error) {
	if k, ok := v.keys[name]; ok {
		if k.err != nil {
			return nil, k.err
		}
		return k.key, nil
	}
	k, err := lookupKey(v.ctx, v.res, name)
	v.keys[name] = keyResult{key: k, err: err}
	return k, err
}

// tempError marks failures caused by DNS trouble or cancellation.
type tempError struct{ err error }

func (e *tempError) Error() string { return e.err.Error() }
func (e *tempError) Unwrap() error { return e.err }

func tempErr(err error) error { return &tempError{err} }

// publicKey is a parsed DKIM key record (RFC 6376 3.6.1).
type publicKey struct {
	typ          string // "rsa" or "ed25519"
	rsa          *rsa.PublicKey
	ed           ed25519.PublicKey
	allowsSHA256 bool
}

// lookupKey fetches and parses the key record at name. RSA keys must have
// 1024 to 8192 bits (RFC 8301 3.2; the upper bound caps verification cost).
func lookupKey(ctx context.Context, res TXTResolver, name string) (*publicKey, error) {
	if !validQueryName(name) {
		return nil, errors.New("invalid key name")
	}
	if res == nil {
		return nil, tempErr(errors.New("no resolver"))
	}
	txts, err := res.LookupTXT(ctx, name)
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			return nil, errors.New("no key record")
		}
		return nil, tempErr(fmt.Errorf("key lookup: %w", err))
	}
	if len(txts) != 1 {
		// RFC 6376 3.6.2.2: several records make the result undefined.
		return nil, fmt.Errorf("%d key records", len(txts))
	}
	return parseKey(txts[0])
}

func parseKey(rec string) (*publicKey, error) {
	l, err := parseTagList(rec)
	if err != nil {
		return nil, fmt.Errorf("key record: %w", err)
	}
	if ver, ok := l.get("v"); ok && ver != "DKIM1" {
		return nil, errors.New("key record: unknown version")
	}
	p, ok := l.get("p")
	if !ok {
		return nil, errors.New("key record: no p= tag")
	}
	p = stripFWS(p)
	if p == "" {
		return nil, errors.New("key revoked")
	}
	der, err := base64.StdEncoding.DecodeString(p)
	if err != nil {
		return nil, errors.New("key record: bad base64")
	}
	k := &publicKey{allowsSHA256: true}
	if hs, ok := l.get("h"); ok {
		k.allowsSHA256 = false
		for _, a := range strings.Split(hs, ":") {
			k.allowsSHA256 = k.allowsSHA256 || strings.EqualFold(trimFWS(a), "sha256")
		}
	}
	if svc, ok := l.get("s"); ok {
		okSvc := false
		for _, s := range strings.Split(svc, ":") {
			s = trimFWS(s)
			okSvc = okSvc || s == "*" || strings.EqualFold(s, "email")
		}
		if !okSvc {
			return nil, errors.New("key not for email")
		}
	}
	kt, _ := l.get("k")
	switch strings.ToLower(trimFWS(kt)) {
	case "", "rsa":
		pub, err := x509.ParsePKIXPublicKey(der)
		if err != nil {
			// Some publish a bare RSAPublicKey (RFC 6376 erratum 3017).
			rk, err2 := x509.ParsePKCS1PublicKey(der)
			if err2 != nil {
				return nil, errors.New("key record: bad RSA key")
			}
			pub = rk
		}
		rk, ok := pub.(*rsa.PublicKey)
		if !ok {
			return nil, errors.New("key record: not an RSA key")
		}
		if bits := rk.N.BitLen(); bits < 1024 || bits > 8192 {
			return nil, fmt.Errorf("RSA key of %d bits refused", bits)
		}
		k.typ, k.rsa = "rsa", rk
	case "ed25519":
		if len(der) != ed25519.PublicKeySize {
			return nil, errors.New("key record: bad Ed25519 key")
		}
		k.typ, k.ed = "ed25519", ed25519.PublicKey(der)
	default:
		return nil, errors.New("key record: unknown key type")
	}
	return k, nil
}

// parseCanon reads c= (RFC 6376 3.5); it returns whether header and body
// canonicalisation are relaxed. The default is simple/simple.
func parseCanon(l *tagList) (header, body bool, err error) {
	c, ok := l.get("c")
	if !ok {
		return false, false, nil
	}
	hs, bs, _ := strings.Cut(strings.ToLower(stripFWS(c)), "/")
	parse := func(s string) (bool, error) {
		switch s {
		case "", "simple":
			return false, nil
		case "relaxed":
			return true, nil
		}
		return false, fmt.Errorf("unknown canonicalization %s", clip(s))
	}
	if header, err = parse(hs); err != nil {
		return
	}
	body, err = parse(bs)
	return
}

func decodeB64(l *tagList, name string) ([]byte, error) {
	s, _ := l.get(name)
	b, err := base64.StdEncoding.DecodeString(stripFWS(s))
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("malformed %s= value", name)
	}
	return b, nil
}

// clip shortens hostile text for log-only reasons and makes it printable.
func clip(s string) string {
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return strconv.QuoteToASCII(s)
}

// ctxReader stops reading once ctx is done.
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
