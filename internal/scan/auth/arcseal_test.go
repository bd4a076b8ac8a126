package auth

import (
	"bytes"
	"context"
	"crypto/rsa"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/rsasign"
	"github.com/mailgate/mailgate/internal/testutil/peers"
)

func newSealer(t testing.TB, d *testDNS, k key) *Sealer {
	d.publish("gw.example", "arc1", k)
	return &Sealer{Domain: "gw.example", Selector: "arc1", Signer: k.signer, AuthServID: "mx.gw.example",
		Now: func() time.Time { return time.Unix(1700000100, 0) }}
}

func seal(t testing.TB, s *Sealer, msg []byte, cv string, results ...string) []byte {
	t.Helper()
	set, err := s.Seal(context.Background(), bytes.NewReader(msg), cv, results)
	if err != nil {
		t.Fatal(err)
	}
	if set == "" {
		return msg
	}
	return append([]byte(set), msg...)
}

// libcryptoKey is an RSA-2048 key that signs through libcrypto, as the
// node's key cache gives it to the sealer. In a build without cgo, or
// without libcrypto.so.3 (a missing peer), it is a plain Go key.
func libcryptoKey(t testing.TB) key {
	k := rsaKey(t, 2048)
	s := rsasign.Signer(k.signer.(*rsa.PrivateKey))
	if _, err := rsasign.Available(); err != nil {
		if !errors.Is(err, rsasign.ErrNotBuilt) && peers.Required() {
			t.Fatalf("libcrypto.so.3 (%s=1): %v", peers.Env, err)
		}
	} else if !rsasign.Libcrypto(s) {
		t.Fatalf("rsasign.Signer gave a %T that does not sign through libcrypto", s)
	}
	return key{s, k.record}
}

func TestSealFirstSet(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		k    func(testing.TB) key
	}{{"rsa", func(t testing.TB) key { return rsaKey(t, 2048) }}, {"ed25519", edKey}, {"rsa-libcrypto", libcryptoKey}} {
		t.Run(tc.name, func(t *testing.T) {
			d := newTestDNS(t)
			s := newSealer(t, d, tc.k(t))
			msg := basicMail("Alice <alice@sender.example>")
			sealed := seal(t, s, msg, ARCNone, "spf=pass smtp.mailfrom=sender.example", "dmarc=pass header.from=sender.example")
			r := verify(t, d, sealed)
			if r.Result != ARCPass || r.Instances != 1 || strings.Join(r.Sealers, ",") != "gw.example" {
				t.Fatalf("got %+v, want pass with one set sealed by gw.example", r)
			}
			head := string(sealed[:len(sealed)-len(msg)])
			for _, want := range []string{"ARC-Seal: i=1; a=", "cv=none", "ARC-Message-Signature: i=1;",
				"ARC-Authentication-Results: i=1; mx.gw.example;\r\n\tspf=pass smtp.mailfrom=sender.example;\r\n\tdmarc=pass header.from=sender.example;\r\n\tarc=none"} {
				if !strings.Contains(head, want) {
					t.Errorf("sealed header lacks %q:\n%s", want, head)
				}
			}
			// Any change to a signed field or the body after sealing breaks it.
			for _, tamper := range [][2]string{{"Subject: test", "Subject: tesT"}, {"\r\n\r\n", "\r\n\r\nX"}} {
				bad := bytes.Replace(sealed, []byte(tamper[0]), []byte(tamper[1]), 1)
				if bytes.Equal(bad, sealed) {
					t.Fatalf("tamper %q changed nothing", tamper[0])
				}
				if r := verify(t, d, bad); r.Result != ARCFail {
					t.Errorf("after %q → %q: got %+v, want fail", tamper[0], tamper[1], r)
				}
			}
		})
	}
}

// A chain that arrived valid is extended: the seal covers every set.
func TestSealExtendsChain(t *testing.T) {
	t.Parallel()
	d := newTestDNS(t)
	msg, _, _ := arcFixture(t, d)
	s := newSealer(t, d, rsaKey(t, 2048))
	if got := verify(t, d, msg); got.Result != ARCPass || got.Instances != 2 {
		t.Fatalf("fixture: %+v", got)
	}
	// The subject tag a gateway adds: it breaks the older AMSs but not the chain.
	tagged := bytes.Replace(msg, []byte("Subject: "), []byte("Subject: [SPAM] "), 1)
	sealed := seal(t, s, tagged, ARCPass, "arc=pass")
	r := verify(t, d, sealed)
	if r.Result != ARCPass || r.Instances != 3 || strings.Join(r.Sealers, ",") != "origin.example,lists.example,gw.example" {
		t.Fatalf("got %+v, want pass over three sets", r)
	}
	if r.OldestPass != 3 {
		t.Errorf("oldest-pass = %d, want 3 (the subject tag broke the older message signatures)", r.OldestPass)
	}
	if strings.Count(string(sealed), "arc=pass") != 1 {
		t.Errorf("the arc= result was added although one was given")
	}
}

// A chain that failed gets one last set with cv=fail, sealed over itself
// only; nothing is added after it.
func TestSealFailedChain(t *testing.T) {
	t.Parallel()
	d := newTestDNS(t)
	msg, _, _ := arcFixture(t, d)
	bad := bytes.Replace(msg, []byte("ARC-Seal: i=2; a=ed25519-sha256; cv=pass"), []byte("ARC-Seal: i=2; a=ed25519-sha256; cv=pass "), 1)
	bad = bytes.Replace(bad, []byte("d=lists.example; s=s2;\r\n t=1700000000; b="), []byte("d=lists.example; s=s2;\r\n t=1700000001; b="), 1)
	if got := verify(t, d, bad); got.Result != ARCFail {
		t.Fatalf("tampered fixture: %+v", got)
	}
	s := newSealer(t, d, edKey(t))
	sealed := seal(t, s, bad, ARCFail)
	if !bytes.HasPrefix(sealed, []byte("ARC-Seal: i=3; a=ed25519-sha256; t=1700000100; cv=fail;")) {
		t.Fatalf("sealed: %.200s", sealed)
	}
	if r := verify(t, d, sealed); r.Result != ARCFail {
		t.Fatalf("a chain ending in cv=fail verifies as %+v", r)
	}
	set, err := s.Seal(context.Background(), bytes.NewReader(sealed), ARCFail, nil)
	if err != nil || set != "" {
		t.Fatalf("sealing after cv=fail: %q, %v; want nothing", set, err)
	}
}

func TestChainValidation(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"arc=pass header.oldest-pass=2": ARCPass, "ARC=none": ARCNone,
		"arc=fail": ARCFail, "arc=temperror": ARCFail, "spf=pass": ""} {
		if got := ChainValidation([]string{"dkim=pass header.d=x", in}); got != want {
			t.Errorf("ChainValidation(%q) = %q, want %q", in, got, want)
		}
	}
}

// dkimpy (Debian python3-dkim) validates the chain mailgate extends.
func TestSealVerifiesWithDkimpy(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import dkim, nacl, authres").Run(); err != nil {
		peers.Missing(t, "dkimpy not installed (Debian: python3-dkim python3-nacl python3-authres)")
	}
	d := newTestDNS(t)
	raw, zone := dkimpyChain(t)
	k := rsaKey(t, 2048)
	s := newSealer(t, d, k)
	zone = append(zone, []byte("arc1._domainkey.gw.example "+k.record+"\n")...)
	tmp := t.TempDir()
	cases := map[string][]byte{
		"first":    seal(t, s, basicMail("Alice <alice@sender.example>"), ARCNone, "spf=pass smtp.mailfrom=sender.example"),
		"extended": seal(t, s, raw, ARCPass, "arc=pass"),
	}
	for name, msg := range cases {
		mp := filepath.Join(tmp, name+".eml")
		os.WriteFile(mp, msg, 0o600)
		zp := filepath.Join(tmp, "zone")
		os.WriteFile(zp, zone, 0o600)
		script := `
import sys, dkim
recs = {}
for l in open(sys.argv[2]):
    if l.strip():
        n, v = l.rstrip("\n").split(" ", 1)
        recs[n.rstrip(".")] = v
def dnsfunc(name, timeout=5):
    return recs.get(name.decode().rstrip("."), "").encode()
msg = open(sys.argv[1], "rb").read()
cv, results, comment = dkim.arc_verify(msg, dnsfunc=dnsfunc)
print(cv, comment)
sys.exit(0 if cv == b"pass" else 1)
`
		out, err := exec.Command(py, "-c", script, mp, zp).CombinedOutput()
		if err != nil {
			t.Errorf("%s: dkimpy: %v\n%s", name, err, out)
		}
	}
}
