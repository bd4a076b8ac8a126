package auth

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// arcHop is one intermediary that seals a message.
type arcHop struct {
	domain, selector string
	k                key
	cv               string
}

func (h arcHop) alg() string {
	if _, ok := h.k.signer.(ed25519.PrivateKey); ok {
		return "ed25519-sha256"
	}
	return "rsa-sha256"
}

func signDigest(t testing.TB, k key, digest []byte) string {
	t.Helper()
	var sig []byte
	var err error
	switch s := k.signer.(type) {
	case ed25519.PrivateKey:
		sig = ed25519.Sign(s, digest) // RFC 8463: Ed25519 over the SHA-256 hash
	case *rsa.PrivateKey:
		sig, err = rsa.SignPKCS1v15(rand.Reader, s, crypto.SHA256, digest)
	}
	if err != nil {
		t.Fatal(err)
	}
	b := base64.StdEncoding.EncodeToString(sig)
	// Fold the value as real signers do, to exercise FWS removal.
	var out []string
	for len(b) > 60 {
		out = append(out, b[:60])
		b = b[60:]
	}
	return strings.Join(append(out, b), "\r\n ")
}

var instanceRE = regexp.MustCompile(`\bi\s*=\s*(\d+)`)

// arcSeal adds the next ARC set to msg, written for this test from RFC 8617
// 4.1 and 5.1: the AMS signs From, To, Subject, Date and Message-ID and the
// relaxed body; the AS signs the sets 1..i.
func arcSeal(t testing.TB, msg []byte, hop arcHop) []byte {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(msg))
	h, err := readRawHeader(br)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(br)

	type set struct{ aar, ams, as string }
	prev := map[int]*set{}
	inst := 1
	for _, f := range h.fields {
		var slot func(*set) *string
		switch strings.ToLower(f.name) {
		case "arc-authentication-results":
			slot = func(s *set) *string { return &s.aar }
		case "arc-message-signature":
			slot = func(s *set) *string { return &s.ams }
		case "arc-seal":
			slot = func(s *set) *string { return &s.as }
		default:
			continue
		}
		m := instanceRE.FindStringSubmatch(f.value())
		i, _ := strconv.Atoi(m[1])
		if prev[i] == nil {
			prev[i] = &set{}
		}
		*slot(prev[i]) = f.raw
		inst = max(inst, i+1)
	}

	sum := sha256.New()
	bc := newBodyCanon(sum, true)
	bc.Write(body)
	bc.Close()
	bh := base64.StdEncoding.EncodeToString(sum.Sum(nil))

	aar := fmt.Sprintf("ARC-Authentication-Results: i=%d; mx.%s;\r\n spf=pass smtp.mailfrom=%s", inst, hop.domain, hop.domain)

	signed := []string{"from", "to", "subject", "date", "message-id"}
	ams := fmt.Sprintf("ARC-Message-Signature: i=%d; a=%s; c=relaxed/relaxed; d=%s;\r\n s=%s; t=1700000000; h=%s;\r\n bh=%s;\r\n b=",
		inst, hop.alg(), hop.domain, hop.selector, strings.Join(signed, ":"), bh)
	hh := sha256.New()
	used := map[string]int{}
	for _, name := range signed {
		n := 0
		for i := len(h.fields) - 1; i >= 0; i-- {
			if strings.EqualFold(h.fields[i].name, name) {
				if n == used[name] {
					io.WriteString(hh, canonHeader(h.fields[i].raw, true))
					used[name]++
					break
				}
				n++
			}
		}
	}
	io.WriteString(hh, strings.TrimSuffix(canonHeader(ams, true), "\r\n"))
	ams += signDigest(t, hop.k, hh.Sum(nil))

	seal := fmt.Sprintf("ARC-Seal: i=%d; a=%s; cv=%s; d=%s; s=%s;\r\n t=1700000000; b=",
		inst, hop.alg(), hop.cv, hop.domain, hop.selector)
	sh := sha256.New()
	var ids []int
	for i := range prev {
		ids = append(ids, i)
	}
	sort.Ints(ids)
	for _, i := range ids {
		for _, f := range []string{prev[i].aar, prev[i].ams, prev[i].as} {
			io.WriteString(sh, canonHeader(f, true))
		}
	}
	io.WriteString(sh, canonHeader(aar, true))
	io.WriteString(sh, canonHeader(ams, true))
	io.WriteString(sh, strings.TrimSuffix(canonHeader(seal, true), "\r\n"))
	seal += signDigest(t, hop.k, sh.Sum(nil))

	return append([]byte(seal+"\r\n"+ams+"\r\n"+aar+"\r\n"), msg...)
}

// arcFixture returns a message sealed by an RSA hop and then an Ed25519
// hop, with both keys published.
func arcFixture(t testing.TB, d *testDNS) ([]byte, arcHop, arcHop) {
	h1 := arcHop{domain: "origin.example", selector: "s1", k: rsaKey(t, 2048), cv: "none"}
	h2 := arcHop{domain: "lists.example", selector: "s2", k: edKey(t), cv: "pass"}
	d.publish(h1.domain, h1.selector, h1.k)
	d.publish(h2.domain, h2.selector, h2.k)
	msg := basicMail("Alice <alice@sender.example>")
	msg = arcSeal(t, msg, h1)
	msg = arcSeal(t, msg, h2)
	return msg, h1, h2
}

func verify(t testing.TB, d *testDNS, msg []byte) ARCResult {
	t.Helper()
	return VerifyARC(context.Background(), bytes.NewReader(msg), d.res)
}

func TestARCChain(t *testing.T) {
	t.Parallel()
	d := newTestDNS(t)
	msg, h1, h2 := arcFixture(t, d)
	withCV := func(h arcHop, cv string) arcHop { h.cv = cv; return h }

	t.Run("pass", func(t *testing.T) {
		r := verify(t, d, msg)
		if r.Result != ARCPass || r.Instances != 2 || r.OldestPass != 0 {
			t.Fatalf("got %+v, want pass with 2 instances and oldest-pass 0", r)
		}
		if strings.Join(r.Sealers, ",") != "origin.example,lists.example" {
			t.Errorf("sealers %v", r.Sealers)
		}
	})
	t.Run("bare LF line endings", func(t *testing.T) {
		r := verify(t, d, bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n")))
		if r.Result != ARCPass {
			t.Fatalf("got %+v, want pass", r)
		}
	})
	t.Run("tampered header", func(t *testing.T) {
		bad := bytes.Replace(msg, []byte("Subject: test"), []byte("Subject: test!"), 1)
		if r := verify(t, d, bad); r.Result != ARCFail {
			t.Fatalf("got %+v, want fail", r)
		}
	})
	t.Run("tampered body", func(t *testing.T) {
		bad := bytes.Replace(msg, []byte("this is a test"), []byte("this is a tost"), 1)
		if r := verify(t, d, bad); r.Result != ARCFail {
			t.Fatalf("got %+v, want fail", r)
		}
	})
	t.Run("tampered seal input", func(t *testing.T) {
		// The AAR of instance 1 is covered only by the seals.
		bad := bytes.Replace(msg, []byte("mx.origin.example"), []byte("mx.evil.example"), 1)
		r := verify(t, d, bad)
		if r.Result != ARCFail || !strings.Contains(r.Reason, "ARC-Seal") {
			t.Fatalf("got %+v, want a seal failure", r)
		}
	})
	t.Run("modified between hops", func(t *testing.T) {
		// Hop 2 rewrites the subject before sealing: its own AMS verifies,
		// the first does not, so the chain passes with oldest-pass 2.
		m := basicMail("Alice <alice@sender.example>")
		m = arcSeal(t, m, h1)
		m = bytes.Replace(m, []byte("Subject: test"), []byte("Subject: [list] test"), 1)
		m = arcSeal(t, m, withCV(h2, "pass"))
		r := verify(t, d, m)
		if r.Result != ARCPass || r.OldestPass != 2 {
			t.Fatalf("got %+v, want pass with oldest-pass 2", r)
		}
	})
	t.Run("cv=fail in the chain", func(t *testing.T) {
		m := arcSeal(t, basicMail("a@sender.example"), h1)
		m = arcSeal(t, m, withCV(h2, "fail"))
		if r := verify(t, d, m); r.Result != ARCFail || !strings.Contains(r.Reason, "cv=fail") {
			t.Fatalf("got %+v, want fail for cv=fail", r)
		}
	})
	t.Run("cv=none after the first", func(t *testing.T) {
		m := arcSeal(t, basicMail("a@sender.example"), h1)
		m = arcSeal(t, m, withCV(h2, "none"))
		if r := verify(t, d, m); r.Result != ARCFail {
			t.Fatalf("got %+v, want fail", r)
		}
	})
	t.Run("first instance with cv=pass", func(t *testing.T) {
		if r := verify(t, d, arcSeal(t, basicMail("a@sender.example"), withCV(h1, "pass"))); r.Result != ARCFail {
			t.Fatalf("got %+v, want fail", r)
		}
	})
	t.Run("missing set member", func(t *testing.T) {
		bad := regexp.MustCompile(`(?m)^ARC-Authentication-Results: i=1;[^\r]*\r\n( [^\r]*\r\n)*`).ReplaceAll(msg, nil)
		if bytes.Equal(bad, msg) {
			t.Fatal("test did not remove the AAR")
		}
		if r := verify(t, d, bad); r.Result != ARCFail || !strings.Contains(r.Reason, "incomplete") {
			t.Fatalf("got %+v, want fail for an incomplete set", r)
		}
	})
	t.Run("instance gap", func(t *testing.T) {
		bad := bytes.ReplaceAll(msg, []byte("i=2;"), []byte("i=3;"))
		if r := verify(t, d, bad); r.Result != ARCFail {
			t.Fatalf("got %+v, want fail", r)
		}
	})
	t.Run("duplicate instance", func(t *testing.T) {
		bad := bytes.ReplaceAll(msg, []byte("i=2;"), []byte("i=1;"))
		if r := verify(t, d, bad); r.Result != ARCFail || !strings.Contains(r.Reason, "two") {
			t.Fatalf("got %+v, want fail for a duplicate instance", r)
		}
	})
	t.Run("unknown key", func(t *testing.T) {
		bad := bytes.ReplaceAll(msg, []byte("s=s2;"), []byte("s=s9;"))
		if r := verify(t, d, bad); r.Result != ARCFail || r.Temporary {
			t.Fatalf("got %+v, want a permanent fail", r)
		}
	})
	t.Run("none", func(t *testing.T) {
		if r := verify(t, d, basicMail("a@sender.example")); r.Result != ARCNone {
			t.Fatalf("got %+v, want none", r)
		}
	})
}

// dkimpyChain is a message sealed twice by dkimpy and the zone of its keys.
func dkimpyChain(t testing.TB) (msg, zone []byte) {
	t.Helper()
	dir := filepath.Join("testdata", "arc")
	msg, err := os.ReadFile(filepath.Join(dir, "dkimpy-chain.eml"))
	if err != nil {
		t.Fatal(err)
	}
	zone, err = os.ReadFile(filepath.Join(dir, "dkimpy-chain.zone"))
	if err != nil {
		t.Fatal(err)
	}
	return msg, zone
}

func TestARCInterop(t *testing.T) {
	t.Parallel()
	raw, zone := dkimpyChain(t)
	d := newTestDNS(t)
	for _, line := range strings.Split(strings.TrimSpace(string(zone)), "\n") {
		name, value, _ := strings.Cut(line, " ")
		d.txt(name, value)
	}
	r := verify(t, d, raw)
	if r.Result != ARCPass || r.Instances != 2 || strings.Join(r.Sealers, ",") != "origin.example,lists.example" {
		t.Fatalf("dkimpy chain: got %+v, want pass by origin.example then lists.example", r)
	}
	bad := bytes.Replace(raw, []byte("sealed twice"), []byte("sealed thrice"), 1)
	if r := verify(t, d, bad); r.Result != ARCFail {
		t.Fatalf("tampered dkimpy chain: got %+v, want fail", r)
	}
}
