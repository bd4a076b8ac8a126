package lists

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/policy"
)

// refEntry is an entry prepared for the reference matcher.
type refEntry struct {
	id    int64
	field int
	allow bool
	mode  string
	v     string
	re    *regexp.Regexp
}

// prepareRef keeps the entries Compile keeps (valid ones, regexes by ID
// within the per-tenant caps), each with its normalised value.
func prepareRef(entries []Entry) []refEntry {
	var refs []refEntry
	regexes, program := 0, 0
	for _, e := range sortedByID(entries) {
		if Validate(e) != nil {
			continue
		}
		f, _ := fieldID(e.Field)
		r := refEntry{id: e.ID, field: f, allow: e.Kind == KindAllow, mode: e.Mode}
		if e.Mode == ModeRegex {
			re, size, _ := compileRegexSize(e.Value)
			if regexes >= MaxRegexPerTenant || program+size > MaxRegexTotalProgram {
				continue
			}
			regexes++
			program += size
			r.re = re
		} else {
			r.v = normValue(e.Field, e.Mode, e.Value)
		}
		refs = append(refs, r)
	}
	return refs
}

// naiveMatch is the reference the index must agree with: every entry
// tested on its own with the obvious string function.
func naiveMatch(refs []refEntry, t *texts) []int64 {
	var ids []int64
	for _, e := range refs {
		if e.allow && !t.allowOK[e.field] {
			continue
		}
		v := e.v
		for _, tv := range t.vals[e.field] {
			var ok bool
			switch e.mode {
			case ModeExact:
				ok = tv == v
			case ModeContains:
				ok = strings.Contains(tv, v)
			case ModePrefix:
				ok = strings.HasPrefix(tv, v)
			case ModeSuffix:
				ok = strings.HasSuffix(tv, v)
				if e.field == fFromDomain {
					ok = tv == v || strings.HasSuffix(tv, "."+v)
				}
			case ModeRegex:
				ok = e.re.MatchString(regexText(tv))
			}
			if ok {
				ids = append(ids, e.id)
				break
			}
		}
	}
	slices.Sort(ids)
	return ids
}

func sortedByID(es []Entry) []Entry {
	out := slices.Clone(es)
	slices.SortStableFunc(out, func(a, b Entry) int { return int(a.ID - b.ID) })
	return out
}

func indexMatchIDs(x *Index, t *texts) []int64 {
	var ids []int64
	hits, err := x.match(context.Background(), t, nil)
	if err != nil {
		panic(err)
	}
	for _, i := range hits {
		ids = append(ids, x.entries[i].ID)
	}
	slices.Sort(ids)
	return ids
}

// textsOf builds texts with the same raw string for every field.
func textsOf(raw []string, allowOK bool) *texts {
	t := &texts{}
	for f := 0; f < numFields; f++ {
		for _, r := range raw {
			if v := normText(f, r); v != "" {
				t.vals[f] = append(t.vals[f], v)
			}
		}
		t.allowOK[f] = allowOK
	}
	return t
}

func TestAutomatonOverlaps(t *testing.T) {
	t.Parallel()
	pats := []string{"he", "she", "his", "hers", "e", "", "ushers!", "s"}
	a := buildAutomaton(pats)
	for text, want := range map[string]string{
		"ushers":  "0,1,3,4,7",
		"ushers!": "0,1,3,4,6,7",
		"hi":      "",
		"this":    "2,7",
		"":        "",
	} {
		var got []int
		a.scan(func(p int32) { got = append(got, int(p)) }, text)
		slices.Sort(got)
		if s := strings.Trim(strings.Join(strings.Fields(fmt.Sprint(got)), ","), "[]"); s != want {
			t.Errorf("%q: got %s, want %s", text, s, want)
		}
	}
	// Split input behaves like the concatenation.
	var got []int
	a.scan(func(p int32) { got = append(got, int(p)) }, "us", "h", "ers")
	if len(got) != 5 {
		t.Errorf("split scan found %v", got)
	}
}

// vocab mixes ASCII, Japanese in both widths, and address pieces.
var vocab = []string{"sale", "ＳＡＬＥ", "ｾｰﾙ", "セール", "未承諾広告", "無料", "invoice", "Report", "お知らせ",
	"@", ".", "example", "jp", "xn--r8jz45g", "例え", "a", "aa", "-", " ", "ß", "ss", "Σ", "σ", "ς", "\x00", "\xff"}

func randText(r *rand.Rand, words int) string {
	var b strings.Builder
	for i := 0; i < words; i++ {
		b.WriteString(vocab[r.IntN(len(vocab))])
	}
	return b.String()
}

var (
	fields = []string{FieldEnvFrom, FieldFromAddr, FieldFromDomain, FieldSubject}
	modes  = []string{ModeExact, ModeContains, ModePrefix, ModeSuffix, ModeRegex}
)

// TestIndexAgreesWithNaive compares the index with the reference on many
// random entries and texts drawn from a small vocabulary, so that matches
// (and overlapping patterns) are frequent.
func TestIndexAgreesWithNaive(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 50; round++ {
		var es []Entry
		ids := r.Perm(1000) // unique IDs in random order
		for i := 0; i < 300; i++ {
			mode := modes[r.IntN(len(modes))]
			v := randText(r, 1+r.IntN(3))
			if mode == ModeRegex {
				v = regexp.QuoteMeta(v) + []string{"", ".*", "$", "+"}[r.IntN(4)]
			}
			es = append(es, Entry{ID: int64(ids[i] + 1), Scope: ScopeDomain, Owner: "example.jp",
				Kind: []string{KindAllow, KindDeny}[r.IntN(2)], Field: fields[r.IntN(len(fields))], Mode: mode, Value: v})
		}
		x, ref := Compile(es), prepareRef(es)
		for j := 0; j < 40; j++ {
			raw := []string{randText(r, r.IntN(12))}
			if r.IntN(4) == 0 {
				raw = append(raw, randText(r, r.IntN(6)))
			}
			tx := textsOf(raw, len(raw) == 1)
			if got, want := indexMatchIDs(x, tx), naiveMatch(ref, tx); !slices.Equal(got, want) {
				t.Fatalf("round %d text %q: index %v, naive %v", round, raw, got, want)
			}
		}
	}
}

func FuzzIndexMatch(f *testing.F) {
	f.Add("Quarterly report for April", "report\nApril\nquarterly", []byte{1, 2, 3, 4})
	f.Add("【未承諾広告】ｾｰﾙ開催", "未承諾広告\nセール\nＳＡＬＥ", []byte{1, 6, 11})
	f.Add("a@mx.spam.example", "spam.example\n@spam\nA@", []byte{13, 3, 2, 0})
	f.Add("aaaa", "a\naa\naaa\naaaa\naaaaa", []byte{1, 5, 9, 13, 17, 21})
	f.Add("x", "(a+)+$\n^x$\n[", []byte{4, 4, 4})
	f.Fuzz(func(t *testing.T, text, patterns string, ms []byte) {
		if len(ms) == 0 {
			ms = []byte{1}
		}
		var es []Entry
		for i, p := range strings.Split(patterns, "\n") {
			if i >= 64 {
				break
			}
			b := ms[i%len(ms)]
			es = append(es, Entry{ID: int64(i + 1), Scope: ScopeAddress, Owner: "u@example.jp",
				Kind:  []string{KindAllow, KindDeny}[b>>7&1],
				Field: fields[int(b>>3)%len(fields)], Mode: modes[int(b)%len(modes)], Value: p})
		}
		x, ref := Compile(es), prepareRef(es)
		for _, allowOK := range []bool{true, false} {
			tx := textsOf([]string{text}, allowOK)
			if got, want := indexMatchIDs(x, tx), naiveMatch(ref, tx); !slices.Equal(got, want) {
				t.Fatalf("text %q entries %+v: index %v, naive %v", text, es, got, want)
			}
		}
	})
}

// genTenant makes n mixed entries spread over 50 domain lists, 2,000
// address lists and 20 group lists, about 1.5% of them regexes.
func genTenant(n int) []Entry {
	r := rand.New(rand.NewPCG(10, 20))
	words := []string{"sale", "セール", "未承諾広告", "無料", "invoice", "report", "お知らせ", "当選", "bitcoin", "meeting",
		"請求書", "urgent", "ｷｬﾝﾍﾟｰﾝ", "newsletter", "配送", "password"}
	es := make([]Entry, 0, n)
	for i := 0; i < n; i++ {
		e := Entry{ID: int64(i + 1), TenantID: tenant}
		switch k := r.IntN(10); {
		case k < 3:
			e.Scope, e.Owner = ScopeDomain, fmt.Sprintf("d%d.example.jp", r.IntN(50))
		case k < 9:
			d := r.IntN(2000)
			e.Scope, e.Owner = ScopeAddress, fmt.Sprintf("u%d@d%d.example.jp", d, d%50)
		default:
			e.Scope, e.Owner = ScopeGroup, fmt.Sprintf("g%d", r.IntN(20))
		}
		e.Kind = KindDeny
		if r.IntN(3) == 0 {
			e.Kind = KindAllow
		}
		e.Field = fields[r.IntN(len(fields))]
		switch k := r.IntN(200); {
		case k < 80:
			e.Mode = ModeExact
		case k < 140:
			e.Mode = ModeContains
		case k < 160:
			e.Mode = ModePrefix
		case k < 197:
			e.Mode = ModeSuffix
		default:
			e.Mode = ModeRegex
		}
		sender := fmt.Sprintf("s%d@m%d.sender%d.example", r.IntN(100000), r.IntN(10), r.IntN(3000))
		switch e.Field {
		case FieldEnvFrom, FieldFromAddr:
			e.Value = sender
			if e.Mode != ModeExact {
				e.Value = sender[strings.IndexByte(sender, '@'):]
			}
		case FieldFromDomain:
			e.Value = sender[strings.IndexByte(sender, '@')+1:]
		case FieldSubject:
			e.Value = words[r.IntN(len(words))] + fmt.Sprint(r.IntN(5000))
		}
		if e.Mode == ModeRegex {
			rs := []rune(e.Value)
			e.Value = "^" + regexp.QuoteMeta(string(rs[:len(rs)/2])) + `.*\d$`
		}
		es = append(es, e)
	}
	return es
}

func TestTenThousandEntries(t *testing.T) {
	t.Parallel()
	es := genTenant(10000)
	x := Compile(es)
	if x.Len() != len(es) || len(x.Skipped()) != 0 {
		t.Fatalf("compiled %d of %d, skipped %v", x.Len(), len(es), x.Skipped())
	}
	// Every non-regex value, used as its own text, is found by the index
	// exactly as by the reference.
	ref := prepareRef(es)
	for _, e := range es[:500] {
		tx := textsOf([]string{e.Value}, true)
		got, want := indexMatchIDs(x, tx), naiveMatch(ref, tx)
		if !slices.Equal(got, want) {
			t.Fatalf("value %q: index %v, naive %v", e.Value, got, want)
		}
		if e.Mode == ModeExact && !slices.Contains(got, e.ID) {
			t.Fatalf("exact entry %d not found by its own value", e.ID)
		}
	}
}

// BenchmarkCheck10k measures one message against a tenant with 10,000
// entries: three recipients that have address, group and domain lists. The
// message is parsed before the loop, as the pipeline parses once for all
// checks.
func BenchmarkCheck10k(b *testing.B) { benchCheck(b, 10000) }

// BenchmarkCheck100k shows that the cost does not grow with the entries
// (regexes are capped per tenant, so their share stays the same).
func BenchmarkCheck100k(b *testing.B) { benchCheck(b, 100000) }

func benchCheck(b *testing.B, n int) {
	c, _ := newCheck(newSource(genTenant(n)...))
	raw := fixture(b, "unsolicited_ad_iso2022jp.eml")
	m := message("s123@m1.sender42.example", raw,
		rcpt("u1@d1.example.jp", "g1"), rcpt("u2@d2.example.jp", "g2", "g3"), rcpt("u51@d1.example.jp"))
	if _, err := m.Parsed(context.Background()); err != nil {
		b.Fatal(err)
	}
	s := policy.MapSettings{}
	ctx := context.Background()
	if _, err := c.Check(ctx, m, s); err != nil { // first load outside the timing
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Check(ctx, m, s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompile10k measures a rebuild after a change.
func BenchmarkCompile10k(b *testing.B) {
	es := genTenant(10000)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		Compile(es)
	}
}

// BenchmarkCheckRegexWorst is the hostile case: one list holding the whole
// regex budget, none matching, and a subject far beyond MaxTextBytes.
func BenchmarkCheckRegexWorst(b *testing.B) {
	var es []Entry
	for i := 0; i < MaxRegexPerTenant; i++ {
		es = append(es, Entry{ID: int64(i + 1), Scope: ScopeDomain, Owner: "example.jp", Kind: KindDeny,
			Field: FieldSubject, Mode: ModeRegex, Value: fmt.Sprintf(`(\w+\s*){1,20}[0-9]{3}z%d`, i)})
	}
	c, _ := newCheck(newSource(es...))
	if x, err := c.Index(context.Background(), tenant); err != nil || x.Len() == 0 {
		b.Fatalf("index: %v", err)
	}
	m := message("", rawMsg("Subject: "+strings.Repeat("word ", 200_000)), rcpt("u@example.jp"))
	if _, err := m.Parsed(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Check(context.Background(), m, policy.MapSettings{}); err != nil {
			b.Fatal(err)
		}
	}
}
