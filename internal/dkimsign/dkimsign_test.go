package dkimsign

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"

	"github.com/mailgate/mailgate/internal/dnsx"
	"github.com/mailgate/mailgate/internal/dnsx/dnstest"
	"github.com/mailgate/mailgate/internal/rsasign"
	"github.com/mailgate/mailgate/internal/testutil/peers"
)

// secrets is an in-memory store.WebStore.Secret.
type secrets struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *secrets) Secret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	if b, ok := s.m[name]; ok {
		return b, nil
	}
	b, err := gen()
	if err == nil {
		s.m[name] = b
	}
	return b, err
}

type mapSettings map[string]string

func (m mapSettings) Get(k string) (string, bool) { v, ok := m[k]; return v, ok }

const testMsg = "From: =?ISO-2022-JP?B?GyRCOzNFRBsoQg==?= <yamada@example.test>\r\n" +
	"To: client@customer.test\r\n" +
	"Subject: =?UTF-8?B?6KaL56mN5pu4?=\r\n" +
	"Date: Thu, 01 Apr 2027 10:30:00 +0900\r\n" +
	"Message-ID: <1@example.test>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=UTF-8\r\n" +
	"\r\n" +
	"お世話になっております。  \r\n見積書を送ります。\r\n\r\n\r\n"

// libcrypto reports whether RSA keys should sign through libcrypto here:
// not in a build without cgo; a machine without libcrypto.so.3 signs with
// Go, which fails the test under MAILGATE_REQUIRE_PEERS=1.
func libcrypto(t testing.TB) bool {
	t.Helper()
	_, err := rsasign.Available()
	if err != nil && !errors.Is(err, rsasign.ErrNotBuilt) && peers.Required() {
		t.Fatalf("libcrypto.so.3 (%s=1): %v", peers.Env, err)
	}
	return err == nil
}

// signedFixture signs testMsg with both key types and returns the message
// and the records that publish the keys.
func signedFixture(t *testing.T) ([]byte, map[string]string, Config, *secrets) {
	t.Helper()
	ss := &secrets{}
	cfg, err := ConfigFrom(mapSettings{KeySelector: "mg2027", KeyAlgorithms: "rsa, ed25519"}, "Example.TEST.")
	if err != nil {
		t.Fatal(err)
	}
	// The key cache is what the outbound pipeline signs with: its RSA
	// key signs through libcrypto where the machine has it.
	keys, err := (&KeyCache{}).Keys(context.Background(), ss, cfg)
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys %v, %v", keys, err)
	}
	if libcrypto(t) && !rsasign.Libcrypto(keys[0].Signer) {
		t.Fatalf("the cached RSA key is a %T, not a libcrypto signer", keys[0].Signer)
	}
	dom, err := FromDomain(strings.NewReader(testMsg))
	if err != nil || dom != "example.test" {
		t.Fatalf("FromDomain = %q, %v", dom, err)
	}
	var out bytes.Buffer
	if err := Sign(context.Background(), &out, bytes.NewReader([]byte(testMsg)), keys); err != nil {
		t.Fatal(err)
	}
	recs, err := cfg.Records(context.Background(), ss)
	if err != nil || len(recs) != 2 {
		t.Fatalf("records %v, %v", recs, err)
	}
	dnsRecs := map[string]string{}
	for _, r := range recs {
		dnsRecs[r.Name] = r.Value
	}
	return out.Bytes(), dnsRecs, cfg, ss
}

func verify(t *testing.T, msg []byte, recs map[string]string) []*dkim.Verification {
	t.Helper()
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: func(name string) ([]string, error) {
		if r, ok := recs[name]; ok {
			return []string{r}, nil
		}
		return nil, errors.New("no such record")
	}})
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

func TestSignVerifiesWithGoMsgauth(t *testing.T) {
	msg, recs, _, _ := signedFixture(t)
	vs := verify(t, msg, recs)
	if len(vs) != 2 {
		t.Fatalf("%d signatures", len(vs))
	}
	for _, v := range vs {
		if v.Err != nil || v.Domain != "example.test" {
			t.Errorf("signature for %s: %v", v.Domain, v.Err)
		}
	}
	if !strings.Contains(string(msg), "a=rsa-sha256") || !strings.Contains(string(msg), "a=ed25519-sha256") {
		t.Errorf("not both algorithms:\n%s", msg)
	}
	// Oversigned fields: adding one more breaks every signature; a field
	// that is not signed does not.
	for _, extra := range []string{"Subject: 至急\r\n", "From: boss@example.test\r\n", "Cc: leak@evil.test\r\n", "Reply-To: x@evil.test\r\n"} {
		for _, v := range verify(t, append([]byte(extra), msg...), recs) {
			if v.Err == nil {
				t.Errorf("still verifies with %q added", extra)
			}
		}
	}
	for _, v := range verify(t, append([]byte("Received: from relay\r\n"), msg...), recs) {
		if v.Err != nil {
			t.Errorf("a trace field added in transit broke the signature: %v", v.Err)
		}
	}
	// The body is signed too.
	for _, v := range verify(t, bytes.Replace(msg, []byte("UTF-8\r\n\r\n"), []byte("UTF-8\r\n\r\nPS\r\n"), 1), recs) {
		if v.Err == nil {
			t.Error("changed body still verifies")
		}
	}
}

// dkimpy (Debian python3-dkim, with python3-nacl for Ed25519) verifies
// both signatures; its DNS lookups are answered from our records.
func TestSignVerifiesWithDkimpy(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import dkim, nacl").Run(); err != nil {
		peers.Missing(t, "dkimpy not installed (Debian: python3-dkim python3-nacl)")
	}
	msg, recs, _, _ := signedFixture(t)
	dir := t.TempDir()
	mp := filepath.Join(dir, "msg.eml")
	os.WriteFile(mp, msg, 0o600)
	var zone strings.Builder
	for n, v := range recs {
		zone.WriteString(n + "\t" + v + "\n")
	}
	zp := filepath.Join(dir, "zone")
	os.WriteFile(zp, []byte(zone.String()), 0o600)
	script := `
import sys, dkim
recs = dict(l.rstrip("\n").split("\t", 1) for l in open(sys.argv[2]))
def dnsfunc(name, timeout=5):
    return recs.get(name.decode().rstrip("."), "").encode()
msg = open(sys.argv[1], "rb").read()
d = dkim.DKIM(msg)
n = msg.count(b"DKIM-Signature:")
ok = [d.verify(idx=i, dnsfunc=dnsfunc) for i in range(n)]
print(n, ok)
sys.exit(0 if n == 2 and all(ok) else 1)
`
	out, err := exec.Command(py, "-c", script, mp, zp).CombinedOutput()
	if err != nil {
		t.Fatalf("dkimpy: %v\n%s", err, out)
	}
}

func TestRotationAndRecords(t *testing.T) {
	ctx := context.Background()
	ss := &secrets{}
	old, _ := ConfigFrom(mapSettings{KeySelector: "mg2026"}, "example.test")
	oldRecs, err := old.Records(ctx, ss)
	if err != nil || len(oldRecs) != 1 || !oldRecs[0].Active || !strings.HasPrefix(oldRecs[0].Value, "v=DKIM1; k=rsa; p=") {
		t.Fatalf("records %+v, %v", oldRecs, err)
	}
	// Records are stable: the key is generated once.
	again, _ := old.Records(ctx, ss)
	if again[0].Value != oldRecs[0].Value {
		t.Fatal("key regenerated")
	}
	cur, err := ConfigFrom(mapSettings{KeySelector: "mg2027", KeyPrevious: "mg2026", KeyAlgorithms: "ed25519"}, "example.test")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cur.Records(ctx, ss)
	if err != nil || len(recs) != 2 {
		t.Fatalf("records %+v, %v", recs, err)
	}
	if recs[0].Selector != "mg2027-ed25519" || !recs[0].Active || recs[0].Algorithm != Ed25519 ||
		recs[1].Selector != "mg2026" || recs[1].Active || recs[1].Value != oldRecs[0].Value {
		t.Errorf("rotation records %+v", recs)
	}
	keys, _ := cur.Keys(ctx, ss)
	if len(keys) != 1 || keys[0].Selector != "mg2027-ed25519" {
		t.Errorf("previous selector signs: %+v", keys)
	}
	if !strings.Contains(recs[1].Zone, `mg2026._domainkey.example.test. IN TXT ( "v=DKIM1; k=rsa; p=`) {
		t.Errorf("zone line %s", recs[1].Zone)
	}
	for _, part := range strings.Split(recs[1].Zone, `"`) {
		if len(part) > 255 {
			t.Errorf("TXT string of %d bytes", len(part))
		}
	}

	// Check through the DNS client against the fake server: the active
	// key published, the previous one replaced by another key.
	srv := dnstest.Start(t)
	txt := func(name, value string) {
		rr := &dns.TXT{Hdr: dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300}}
		for len(value) > 255 {
			rr.Txt = append(rr.Txt, value[:255])
			value = value[255:]
		}
		rr.Txt = append(rr.Txt, value)
		srv.AddRR(rr)
	}
	txt(recs[0].Name, strings.ReplaceAll(recs[0].Value, "; ", ";"))
	other, _ := GenerateKey(RSA)
	otherRec, _ := Record(other.Public())
	txt(recs[1].Name, otherRec)
	c, err := dnsx.New(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	res := Check(ctx, c, recs)
	if !res[0].OK || res[1].OK || res[1].Problem == "" || res[1].ProblemJA == "" {
		t.Errorf("check %+v", res)
	}
	res = Check(ctx, c, []Published{{Name: "none._domainkey.example.test", Value: recs[0].Value}})
	if res[0].OK || !strings.Contains(res[0].Problem, "not found") {
		t.Errorf("missing record: %+v", res)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, s := range []mapSettings{
		{KeySelector: "bad_selector"}, {KeySelector: "-x"}, {KeySelector: "a", KeyAlgorithms: "dsa"},
		{KeySelector: "a", KeyPrevious: "A"}, {KeySelector: "a", KeyPrevious: "a..b"},
	} {
		if _, err := ConfigFrom(s, "example.test"); err == nil {
			t.Errorf("%v accepted", s)
		}
	}
	c, err := ConfigFrom(mapSettings{}, "example.test")
	if err != nil || c.Selector != "" {
		t.Fatal(c, err)
	}
	keys, err := c.Keys(context.Background(), &secrets{})
	if err != nil || keys != nil {
		t.Errorf("unsigned domain: %v %v", keys, err)
	}
}

func TestSignEdgeCases(t *testing.T) {
	for _, m := range []string{"Subject: x\r\n\r\nbody", "From: a@x.test, b@y.test\r\n\r\n", "From: a@x.test\r\nFrom: b@x.test\r\n\r\n", "From: nobody\r\n\r\n"} {
		if _, err := FromDomain(strings.NewReader(m)); !errors.Is(err, ErrNoFrom) {
			t.Errorf("%q: %v", m, err)
		}
	}
	// No keys: the message passes unchanged.
	var out bytes.Buffer
	if err := Sign(context.Background(), &out, strings.NewReader(testMsg), nil); err != nil || out.String() != testMsg {
		t.Errorf("unsigned copy: %v", err)
	}
	// A stored key moved to another name does not open.
	ss := &secrets{}
	if _, err := LoadKey(context.Background(), ss, "example.test", "s1", RSA); err != nil {
		t.Fatal(err)
	}
	ss.m[SecretName("other.test", "s1", RSA)] = ss.m[SecretName("example.test", "s1", RSA)]
	if _, err := LoadKey(context.Background(), ss, "other.test", "s1", RSA); err == nil {
		t.Error("a key copied to another domain opened")
	}
	// Cancelled context: an error, not a half-signed message.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	k, _ := LoadKey(context.Background(), ss, "example.test", "s1", RSA)
	if err := Sign(ctx, &out, strings.NewReader(testMsg), []Key{{Domain: "example.test", Selector: "s1", Algorithm: RSA, Signer: k}}); err == nil {
		t.Error("signed with a cancelled context")
	}
}

// SignMessage signs for the From domain with that domain's settings and
// passes mail of other domains unchanged.
func TestSignMessage(t *testing.T) {
	ctx := context.Background()
	ss := &secrets{}
	settings := func(_ context.Context, dom string) (Settings, error) {
		if dom == "example.test" {
			return mapSettings{KeySelector: "mg1"}, nil
		}
		if dom == "typo.test" {
			return mapSettings{KeySelector: "mg1", KeyAlgorithms: "rsa256"}, nil
		}
		return mapSettings{}, nil
	}
	var out bytes.Buffer
	signed, err := SignMessage(ctx, &out, strings.NewReader(testMsg), settings, ss)
	if err != nil || !signed {
		t.Fatalf("signed=%v %v", signed, err)
	}
	recs, _ := Config{Domain: "example.test", Selector: "mg1", Algorithms: []Algorithm{RSA}}.Records(ctx, ss)
	vs := verify(t, out.Bytes(), map[string]string{recs[0].Name: recs[0].Value})
	if len(vs) != 1 || vs[0].Err != nil {
		t.Fatalf("verification %+v", vs)
	}
	other := strings.Replace(testMsg, "yamada@example.test", "yamada@other.test", 1)
	for _, m := range []string{other, "Subject: no from\r\n\r\nbody\r\n"} {
		out.Reset()
		if signed, err := SignMessage(ctx, &out, strings.NewReader(m), settings, ss); err != nil || signed || out.String() != m {
			t.Errorf("unsigned domain: signed=%v %v", signed, err)
		}
	}
	typo := strings.Replace(testMsg, "yamada@example.test", "yamada@typo.test", 1)
	if _, err := SignMessage(ctx, &out, strings.NewReader(typo), settings, ss); err == nil {
		t.Error("invalid setting ignored")
	}
}

type txtMap map[string][]string

func (m txtMap) LookupTXT(_ context.Context, name string) ([]string, error) {
	if v, ok := m[name]; ok {
		return v, nil
	}
	return nil, errors.New("no such host")
}

func TestAuthRecords(t *testing.T) {
	ctx := context.Background()
	r := txtMap{
		"ok.test":        {"google-site-verification=x", "v=spf1 include:mx.mailgate.test -all"},
		"other.test":     {"v=spf1 include:_spf.example.net ~all"},
		"_dmarc.ok.test": {"v=DMARC1; p=reject"},
	}
	if s := CheckSPF(ctx, r, "ok.test", "MX.mailgate.test."); !s.OK || s.Published == "" {
		t.Errorf("spf ok: %+v", s)
	}
	if s := CheckSPF(ctx, r, "other.test", "mx.mailgate.test"); s.OK || s.Suggested != "v=spf1 a:mx.mailgate.test include:_spf.example.net ~all" {
		t.Errorf("spf other: %+v", s)
	}
	if s := CheckSPF(ctx, r, "none.test", "mx.mailgate.test"); s.OK || s.Published != "" || s.Suggested != "v=spf1 a:mx.mailgate.test ~all" {
		t.Errorf("spf none: %+v", s)
	}
	if d := CheckDMARC(ctx, r, "ok.test", true); !d.OK || d.Published != "v=DMARC1; p=reject" {
		t.Errorf("dmarc ok: %+v", d)
	}
	if d := CheckDMARC(ctx, r, "none.test", false); d.OK || d.Suggested != "v=DMARC1; p=none; rua=mailto:postmaster@none.test" {
		t.Errorf("dmarc none: %+v", d)
	}
	if d := CheckDMARC(ctx, r, "none.test", true); !strings.Contains(d.Suggested, "p=quarantine") {
		t.Errorf("dmarc with DKIM: %+v", d)
	}
}

// countingSecrets counts the reads of a secret store.
type countingSecrets struct {
	secrets
	reads int
}

func (s *countingSecrets) Secret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error) {
	s.mu.Lock()
	s.reads++
	s.mu.Unlock()
	return s.secrets.Secret(ctx, name, gen)
}

// TestKeyCache: the cache returns the stored keys (the ones Config.Keys
// returns), reads the store once for them, and again after its time.
func TestKeyCache(t *testing.T) {
	ctx := context.Background()
	ss := &countingSecrets{}
	cfg, err := ConfigFrom(mapSettings{KeySelector: "s1", KeyAlgorithms: "rsa,ed25519"}, "example.test")
	if err != nil {
		t.Fatal(err)
	}
	want, err := cfg.Keys(ctx, ss)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := &KeyCache{Now: func() time.Time { return now }}
	ss.reads = 0
	for i := 0; i < 3; i++ {
		got, err := c.Keys(ctx, ss, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Fatalf("keys: %+v", got)
		}
		for j := range got {
			if got[j].Selector != want[j].Selector || got[j].Algorithm != want[j].Algorithm {
				t.Fatalf("key %d: %+v, want %+v", j, got[j], want[j])
			}
			if !got[j].Signer.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(want[j].Signer.Public()) {
				t.Fatalf("key %d is not the stored key", j)
			}
		}
	}
	first := ss.reads
	if first == 0 {
		t.Fatal("the store was never read")
	}
	if _, err := c.Keys(ctx, ss, cfg); err != nil || ss.reads != first {
		t.Fatalf("a cached key read the store again: %d reads, then %d (%v)", first, ss.reads, err)
	}
	now = now.Add(keyCacheTTL)
	if _, err := c.Keys(ctx, ss, cfg); err != nil || ss.reads == first {
		t.Fatalf("an expired key was not read again: %d reads (%v)", ss.reads, err)
	}
	if ks, err := c.Keys(ctx, ss, Config{Domain: "example.test"}); err != nil || ks != nil {
		t.Fatalf("no selector: %v %v", ks, err)
	}
}

// TestSignatureInFront: Signature reads a message once (a reader that
// cannot seek) and its fields, written in front of the message, verify
// for both key types; the fields sign the header section Signature read
// (an oversigned field added after breaks them).
func TestSignatureInFront(t *testing.T) {
	_, recs, cfg, ss := signedFixture(t)
	keys, err := cfg.Keys(context.Background(), ss)
	if err != nil {
		t.Fatal(err)
	}
	msg := "X-Added: by a rule\r\n" + testMsg
	fields, err := Signature(context.Background(), io.MultiReader(strings.NewReader(msg)), keys)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(fields, "DKIM-Signature:") != 2 || !strings.HasSuffix(fields, "\r\n") {
		t.Fatalf("fields:\n%s", fields)
	}
	vs := verify(t, []byte(fields+msg), recs)
	if len(vs) != 2 {
		t.Fatalf("%d signatures", len(vs))
	}
	for _, v := range vs {
		if v.Err != nil {
			t.Errorf("signature %s: %v", v.Domain, v.Err)
		}
	}
	for _, v := range verify(t, []byte(fields+"Subject: other\r\n"+msg), recs) {
		if v.Err == nil {
			t.Error("an added Subject still verifies")
		}
	}
	if f, err := Signature(context.Background(), strings.NewReader(msg), nil); f != "" || err != nil {
		t.Errorf("no keys: %q %v", f, err)
	}
}
