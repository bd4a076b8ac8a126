package spam

import (
	"bytes"
	"context"
	"maps"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/testutil/jamail"
)

// The shipped model decodes, was built with this code's features, and
// holds the corpus it claims.
func TestBuiltinModel(t *testing.T) {
	info, err := BuiltinDescription()
	if err != nil {
		t.Fatal(err)
	}
	if info.FeatureVersion != FeatureVersion {
		t.Fatalf("the shipped model has features v%d, this code v%d: run scripts/build-spam-model", info.FeatureVersion, FeatureVersion)
	}
	m, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	if m.Spam != 1896 || m.Ham != 4150 || len(m.Tokens) < 100000 {
		t.Fatalf("shipped model: %d spam, %d ham, %d tokens", m.Spam, m.Ham, len(m.Tokens))
	}
	if !strings.Contains(info.Source, "SpamAssassin public corpus") {
		t.Fatalf("source %q", info.Source)
	}
	if c := m.Tokens[ScriptTokenPrefix+"latin"]; c.Spam < 1000 || c.Ham < 3000 {
		t.Fatalf("script:latin %+v", c)
	}
}

func TestEncodeModelRoundTripIsDeterministic(t *testing.T) {
	m := &Model{Spam: 3, Ham: 5, Tokens: map[string]TokenCount{
		"free": {3, 1, WeightUnit / 2}, "freedom": {0, 2, -WeightUnit / 4}, "fre": {1, 0, 0}, "日本語": {0, 4, -1 << weightShift},
		"": {1, 1, 0}, "url-host:example.com": {2, 5, 3 << weightShift},
	}}
	var a, b bytes.Buffer
	if err := EncodeModel(&a, m, 7, "test"); err != nil {
		t.Fatal(err)
	}
	if err := EncodeModel(&b, m, 7, "test"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two encodings of one model differ")
	}
	got, info, err := DecodeModel(bytes.NewReader(a.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if info.FeatureVersion != 7 || info.Source != "test" || got.Spam != 3 || got.Ham != 5 || !maps.Equal(got.Tokens, m.Tokens) {
		t.Fatalf("round trip: %+v %+v", info, got)
	}
	// Truncated or foreign data is an error, not a panic or a partial model.
	for _, bad := range [][]byte{nil, []byte("not gzip"), a.Bytes()[:len(a.Bytes())/2]} {
		if _, _, err := DecodeModel(bytes.NewReader(bad)); err == nil {
			t.Errorf("decoded %d bad bytes", len(bad))
		}
	}
}

func BenchmarkDecodeBuiltin(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := DecodeModel(bytes.NewReader(builtinModel)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEvaluate is the spam check's work for one message with the
// shipped model: features, rules, fingerprint and classification.
func BenchmarkEvaluate(b *testing.B) {
	m, err := Builtin()
	if err != nil {
		b.Fatal(err)
	}
	chk := &Check{Classifier: NewClassifier(NewMemoryStore(), Params{}, Options{Base: m})}
	msgs := jamail.Generate(5, 20, 0)
	parsed := []*mailtext.Message{parseMsg(b, tenKB())}
	for _, x := range msgs {
		parsed = append(parsed, parseMsg(b, x.Raw))
	}
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := chk.EvaluateParsed(ctx, parsed[i%len(parsed)], nil); err != nil {
			b.Fatal(err)
		}
	}
}
