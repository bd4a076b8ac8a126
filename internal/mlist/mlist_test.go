package mlist

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/rewrite"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/store/sqlite"
)

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

type fixture struct {
	st  store.Store
	tid int64
	dom store.Domain
}

func newFixture(t *testing.T, st store.Store) *fixture {
	t.Helper()
	ctx := context.Background()
	tn, err := st.CreateTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	d, err := st.CreateDomain(ctx, tn.ID, "example.test")
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{st: st, tid: tn.ID, dom: d}
}

func (f *fixture) list(t *testing.T, local string, members ...string) store.MailingList {
	t.Helper()
	ctx := context.Background()
	l, err := f.st.CreateMailingList(ctx, store.MailingList{TenantID: f.tid, DomainID: f.dom.ID, Address: local + "@example.test", Name: local, Posting: store.PostMembers}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ms []store.ListMember
	for _, m := range members {
		ms = append(ms, store.ListMember{Address: m})
	}
	if _, err := f.st.AddListMembers(ctx, f.tid, l.ID, ms, false); err != nil {
		t.Fatal(err)
	}
	return l
}

// loopStore reports extra members for some lists, as a store would after
// a loop got in some other way than the checked saves.
type loopStore struct {
	store.Store
	extra map[int64][]string
}

func (s loopStore) ListMembers(ctx context.Context, tenantID, listID int64) ([]store.ListMember, error) {
	ms, err := s.Store.ListMembers(ctx, tenantID, listID)
	for _, a := range s.extra[listID] {
		ms = append(ms, store.ListMember{ListID: listID, TenantID: tenantID, Address: a})
	}
	return ms, err
}

func TestMembersNestedOnceAndLoopCut(t *testing.T) {
	st := openStore(t)
	f := newFixture(t, st)
	a := f.list(t, "a", "x@example.net", "b@example.test", "c@example.test")
	b := f.list(t, "b", "y@example.net", "c@example.test", "X@example.net")
	c := f.list(t, "c", "z@example.net", "x@example.net", "off@example.net")
	if err := st.SetListMemberBounces(context.Background(), f.tid, c.ID, "off@example.net", 3, time.Now(), true); err != nil {
		t.Fatal(err)
	}
	// c → a makes a loop through three levels, which a save refuses; the
	// expansion cuts it all the same.
	s := &Service{Store: loopStore{Store: st, extra: map[int64][]string{c.ID: {"a@example.test", "a-bounces@example.test"}}}}
	got, err := s.Members(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"x@example.net", "X@example.net", "y@example.net", "z@example.net"}
	if !slices.Equal(got, want) {
		t.Fatalf("members %v, want %v", got, want)
	}
	got, _ = s.Members(context.Background(), b)
	if !slices.Equal(got, []string{"X@example.net", "y@example.net", "x@example.net", "z@example.net"}) {
		t.Fatalf("members of b %v", got)
	}
}

func TestMembersDepthBound(t *testing.T) {
	st := openStore(t)
	f := newFixture(t, st)
	// l0 → l1 → ... → l12, each with one member of its own.
	var ls []store.MailingList
	for i := 12; i >= 0; i-- {
		ms := []string{"m" + string(rune('a'+i)) + "@example.net"}
		if i < 12 {
			ms = append(ms, ls[len(ls)-1].Address)
		}
		ls = append(ls, f.list(t, "l"+string(rune('a'+i)), ms...))
	}
	s := &Service{Store: st}
	got, err := s.Members(context.Background(), ls[len(ls)-1])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != MaxDepth+1 {
		t.Fatalf("%d members from %d levels, want %d (MaxDepth)", len(got), 13, MaxDepth+1)
	}
}

func TestCheckPostMembersWalksUp(t *testing.T) {
	st := openStore(t)
	f := newFixture(t, st)
	top := f.list(t, "top", "mid@example.test")
	f.list(t, "mid", "leaf@example.test")
	f.list(t, "leaf", "deep@example.net")
	f.list(t, "aside", "stranger@example.net")
	s := &Service{Store: st}
	for sender, want := range map[string]Decision{
		"deep@example.net":     Allowed,
		"Deep@Example.NET":     Allowed,
		"stranger@example.net": MembersOnly,
		"":                     NoNullSender,
	} {
		p, err := s.CheckPost(context.Background(), sender, "top@example.test")
		if err != nil {
			t.Fatal(err)
		}
		if p.Decision != want || p.TenantID != f.tid || p.List != top.Address {
			t.Errorf("%q: %+v, want %v", sender, p, want)
		}
	}
	p, _ := s.CheckPost(context.Background(), "", "TOP-bounces@example.test")
	if p.Decision != Allowed || !p.Bounce {
		t.Errorf("bounce address: %+v", p)
	}
	p, _ = s.CheckPost(context.Background(), "x@example.net", "nobody@example.test")
	if p.Decision != NotList {
		t.Errorf("no list: %+v", p)
	}
}

func TestCheckAddress(t *testing.T) {
	for in, ok := range map[string]bool{
		"Sales@Example.test":         true,
		"sales.team+jp@example.test": true,
		"sales-bounces@example.test": false,
		"営業@example.test":            false,
		"a b@example.test":           false,
		"sales@":                     false,
	} {
		got, err := CheckAddress(in)
		if (err == nil) != ok {
			t.Errorf("%q: %q %v", in, got, err)
		}
	}
	if got, _ := CheckAddress(" Sales@Example.TEST "); got != "sales@example.test" {
		t.Errorf("normal form %q", got)
	}
	if BounceAddress("sales@example.test") != "sales-bounces@example.test" {
		t.Error("bounce address")
	}
}

func TestBounceRule(t *testing.T) {
	t0 := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	m := store.ListMember{}
	for i, c := range []struct {
		at       time.Duration
		n        int
		disabled bool
		counted  bool
	}{
		{0, 1, false, true},
		{time.Hour, 1, false, false}, // same day
		{25 * time.Hour, 2, false, true},
		{(25 + 31*24) * time.Hour, 1, false, true}, // a month of quiet starts again
		{(50 + 31*24) * time.Hour, 2, false, true},
		{(75 + 31*24) * time.Hour, 3, true, true},
	} {
		n, last, dis, counted := BounceRule(m, t0.Add(c.at))
		if n != c.n || dis != c.disabled || counted != c.counted {
			t.Fatalf("step %d: %d %v %v, want %d %v %v", i, n, dis, counted, c.n, c.disabled, c.counted)
		}
		m.Bounces, m.LastBounce, m.Disabled = n, last, dis
	}
}

func applySpec(t *testing.T, spec rewrite.Spec, msg string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := rewrite.Apply(context.Background(), &b, strings.NewReader(msg), spec); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func headerOf(t *testing.T, msg []byte) []mailtext.RawField {
	t.Helper()
	h, err := readHeader(context.Background(), func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(msg)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestCopySubjectTags(t *testing.T) {
	l := store.MailingList{Address: "sales@example.test", Name: "sales", SubjectSerial: true}
	// ISO-2022-JP "会議" as a Japanese mailer writes it.
	const kaigi = "=?ISO-2022-JP?B?GyRCMnE1RBsoQg==?="
	for _, c := range []struct{ subject, want string }{
		{"Hello", "[sales:00042] Hello"},
		{kaigi, "[sales:00042] 会議"},
		{"Re: [sales:00041] Hello", "[sales:00042] Re: Hello"},
		// The whole reply encoded, tag included.
		{"=?UTF-8?B?" + "UmU6IFtzYWxlczowMDA0MV0g5Lya6K2w" + "?=", "[sales:00042] Re: 会議"},
	} {
		msg := "From: a@example.net\r\nSubject: " + c.subject + "\r\n\r\nbody\r\n"
		spec, decoded := copySpec(l, headerOf(t, []byte(msg)), 42)
		if decoded != c.want {
			t.Errorf("%q: tracking subject %q, want %q", c.subject, decoded, c.want)
		}
		out := applySpec(t, spec, msg)
		raw, _ := mailtext.Lookup(headerOf(t, out), "Subject")
		if got := mailtext.DecodeHeader(raw); got != c.want {
			t.Errorf("%q: copy's subject %q (%q), want %q", c.subject, got, raw, c.want)
		}
		if bytes.Count(out, []byte("\nSubject:"))+bytes.Count(out[:9], []byte("Subject:")) != 1 {
			t.Errorf("%q: not one Subject:\n%s", c.subject, out)
		}
		if c.subject == kaigi && !bytes.Contains(out, []byte(kaigi)) {
			t.Errorf("the original ISO-2022-JP words were not kept:\n%s", out)
		}
	}
	// Without serials the Subject is left alone.
	l.SubjectSerial = false
	spec, decoded := copySpec(l, headerOf(t, []byte("Subject: "+kaigi+"\r\n\r\n")), 0)
	if decoded != "会議" || spec.SubjectTag != "" || slices.Contains(spec.RemoveHeaders, "Subject") {
		t.Errorf("no serial: %q %+v", decoded, spec)
	}
}

func TestCopyHeaders(t *testing.T) {
	l := store.MailingList{Address: "sales@example.test", Name: "sales", Description: `Sales "JP"`, ReplyToList: true}
	msg := "From: a@example.net\r\nReply-To: a-private@example.net\r\nList-Id: <other.example.org>\r\nList-Unsubscribe: <mailto:x@example.org>\r\n" +
		"Precedence: bulk\r\nSubject: hi\r\n\r\nbody\r\n"
	spec, _ := copySpec(l, headerOf(t, []byte(msg)), 0)
	h := headerOf(t, applySpec(t, spec, msg))
	get := func(name string) []string { return headerValues(h, name) }
	for name, want := range map[string][]string{
		"List-Id":          {`"Sales \"JP\"" <sales.example.test>`},
		"List-Post":        {"<mailto:sales@example.test>"},
		"List-Unsubscribe": nil,
		"Precedence":       {"list"},
		"Reply-To":         {"<sales@example.test>"},
		"Subject":          {"hi"},
	} {
		if got := get(name); !slices.Equal(got, want) {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if listIDOf(get("List-Id")[0]) != "sales.example.test" {
		t.Error("list-id not read back")
	}
}

// A post from a domain publishing DMARC quarantine or reject goes out From
// the list, with replies still reaching the author; other posts keep
// their From.
func TestCopyFromUnderDMARC(t *testing.T) {
	policies := map[string]string{"strict.example": "reject", "soft.example": "quarantine", "open.example": "none"}
	s := &Service{DMARC: func(_ context.Context, domain string) (string, error) {
		if domain == "broken.example" {
			return "", errors.New("SERVFAIL")
		}
		return policies[domain], nil
	}}
	log := s.log()
	for _, c := range []struct {
		from  string
		munge bool
	}{
		{"Alice <alice@strict.example>", true},
		{"bob@soft.example", true},
		{"carol@open.example", false},
		{"dave@unpublished.example", false},
		{"erin@broken.example", true}, // unknown policy: the list's From is the safe one
		{"a@open.example, b@open.example", true},
	} {
		msg := "From: " + c.from + "\r\nSubject: hi\r\n\r\nbody\r\n"
		if got := s.fromNeedsList(context.Background(), log, headerOf(t, []byte(msg))); got != c.munge {
			t.Errorf("From %q: munge %v, want %v", c.from, got, c.munge)
		}
	}

	// 山田 花子 in ISO-2022-JP, as a Japanese mailer writes the name.
	const yamada = "=?ISO-2022-JP?B?GyRCOzNFRCAyVjtSGyhC?="
	boxes := func(raw string) string {
		var out []string
		for _, a := range mailtext.ParseAddressList(raw) {
			out = append(out, a.Name+" <"+a.Addr+">")
		}
		return strings.Join(out, ", ")
	}
	for _, c := range []struct {
		replyToList           bool
		msg                   string
		from, replyTo, origin string
	}{
		{false, "From: " + yamada + " <hanako@strict.example>\r\nSubject: hi\r\n\r\nbody\r\n",
			"山田 花子 via sales <sales@example.test>", "山田 花子 <hanako@strict.example>", yamada + " <hanako@strict.example>"},
		// The author's own Reply-To stays.
		{false, "From: hanako@strict.example\r\nReply-To: desk@strict.example\r\nSubject: hi\r\n\r\nbody\r\n",
			"hanako via sales <sales@example.test>", " <desk@strict.example>", "hanako@strict.example"},
		{true, "From: \"Alice A\" <alice@strict.example>\r\nSubject: hi\r\n\r\nbody\r\n",
			"Alice A via sales <sales@example.test>", " <sales@example.test>, Alice A <alice@strict.example>", "\"Alice A\" <alice@strict.example>"},
	} {
		l := store.MailingList{Address: "sales@example.test", Name: "sales", ReplyToList: c.replyToList}
		hdr := headerOf(t, []byte(c.msg))
		spec, _ := copySpec(l, hdr, 0)
		mungeFrom(&spec, l, hdr)
		out := applySpec(t, spec, c.msg)
		h := headerOf(t, out)
		froms := headerValues(h, "From")
		if len(froms) != 1 || boxes(froms[0]) != c.from {
			t.Errorf("From: %q, want one %q\n%s", froms, c.from, out)
		}
		rts := headerValues(h, "Reply-To")
		if len(rts) != 1 || boxes(rts[0]) != c.replyTo {
			t.Errorf("Reply-To: %q, want one %q\n%s", rts, c.replyTo, out)
		}
		if of := headerValues(h, "X-Original-From"); len(of) != 1 || of[0] != c.origin {
			t.Errorf("X-Original-From: %q, want %q", of, c.origin)
		}
	}
}
