package spam

import (
	"context"
	"reflect"
	"testing"

	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/testutil/jamail"
)

// The frozen table answers every token of the shipped model with its
// counts, and nothing else.
func TestFrozenTokensMatchTheMap(t *testing.T) {
	m, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	f := freeze(m.Tokens)
	for tok, want := range m.Tokens {
		if got, ok := f.get(tok); !ok || got != want {
			t.Fatalf("%q: %+v %v, want %+v", tok, got, ok, want)
		}
		for _, miss := range []string{tok + "x", "x" + tok, tok + " "} {
			if _, in := m.Tokens[miss]; in {
				continue
			}
			if got, ok := f.get(miss); ok {
				t.Fatalf("%q not in the model, found %+v", miss, got)
			}
		}
	}
	if _, ok := freeze(nil).get("any"); ok {
		t.Fatal("an empty table found a token")
	}

	// lookup answers a batch as get answers each token: more tokens than
	// one round of hashes holds, known and unknown mixed, a token twice.
	var toks []string
	for tok := range m.Tokens {
		toks = append(toks, tok, tok+"\x00unknown")
		if len(toks) >= 301 {
			break
		}
	}
	toks = append(toks, toks[0])
	out := make([]TokenCount, len(toks))
	for i := range out {
		out[i] = TokenCount{Spam: -1} // stale values are overwritten
	}
	f.lookup(toks, out)
	for i, tok := range toks {
		want, _ := f.get(tok)
		if out[i] != want {
			t.Fatalf("lookup %q: %+v, get %+v", tok, out[i], want)
		}
	}
	if out[1] != (TokenCount{}) || out[0] == (TokenCount{}) {
		t.Fatalf("lookup: a known token %+v, an unknown one %+v", out[0], out[1])
	}
}

// Scoring over BuiltinBase gives exactly what scoring over Builtin does:
// every probability, clue and linear weight.
func TestBuiltinBaseScoresAsBuiltin(t *testing.T) {
	full, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	base, err := BuiltinBase()
	if err != nil {
		t.Fatal(err)
	}
	if base.Tokens != nil || base.Spam != full.Spam || base.Ham != full.Ham {
		t.Fatalf("base %d/%d with %d map tokens, full %d/%d", base.Spam, base.Ham, len(base.Tokens), full.Spam, full.Ham)
	}
	ctx := context.Background()
	a := NewClassifier(NewMemoryStore(), Params{}, Options{Base: full})
	b := NewClassifier(NewMemoryStore(), Params{}, Options{Base: base})
	var raws [][]byte
	for _, m := range jamail.Generate(11, 40, 40) {
		raws = append(raws, m.Raw)
	}
	for i := range 100 {
		raws = append(raws, randomMessage(i))
	}
	for i, raw := range raws {
		msg := parseMsg(t, raw)
		toks := Tokenize(msg, 0)
		ra, err := a.ClassifyParsed(ctx, 7, toks, msg)
		if err != nil {
			t.Fatal(err)
		}
		rb, err := b.ClassifyParsed(ctx, 7, toks, msg)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ra, rb) {
			t.Fatalf("message %d: %+v over the map, %+v over the frozen table", i, ra, rb)
		}
		wa, _ := a.LinearWeights(ctx, 7, toks)
		wb, _ := b.LinearWeights(ctx, 7, toks)
		if !reflect.DeepEqual(wa, wb) {
			t.Fatalf("message %d: linear weights differ", i)
		}
	}
}

// BenchmarkClassifyShipped classifies with the shipped model as a map
// (Builtin) and as the frozen table the server uses (BuiltinBase).
func BenchmarkClassifyShipped(b *testing.B) {
	var msgs []*mailtext.Message
	var toks [][]string
	for _, m := range jamail.Generate(5, 20, 20) {
		msg := parseMsg(b, m.Raw)
		msgs, toks = append(msgs, msg), append(toks, Tokenize(msg, 0))
	}
	ctx := context.Background()
	for _, v := range []struct {
		name string
		load func() (*Model, error)
	}{{"map", Builtin}, {"frozen", BuiltinBase}} {
		m, err := v.load()
		if err != nil {
			b.Fatal(err)
		}
		c := NewClassifier(NewMemoryStore(), Params{}, Options{Base: m})
		b.Run(v.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := c.ClassifyParsed(ctx, 7, toks[i%len(toks)], msgs[i%len(msgs)]); err != nil {
					b.Fatal(err)
				}
			}
		})
		// In a server the rest of a message's work (parsing, the other
		// checks, the store) has pushed the model out of the caches by the
		// next message's lookups; "cold" sweeps 32 MiB between messages,
		// outside the timing, to measure that.
		sweep := make([]byte, 32<<20)
		b.Run(v.name+"-cold", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				for j := 0; j < len(sweep); j += 64 {
					sweep[j]++
				}
				b.StartTimer()
				if _, err := c.ClassifyParsed(ctx, 7, toks[i%len(toks)], msgs[i%len(msgs)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
