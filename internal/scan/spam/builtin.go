package spam

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
)

// FeatureVersion numbers the feature set Features produces. A model is
// only meaningful with the features it was trained on: the shipped model
// records the version it was built with, and a test fails when the two
// differ, so a change to the tokenizer or the rules comes with a rebuilt
// model (scripts/build-spam-model).
const FeatureVersion = 7

// builtinModel is the shipped base model, built by scripts/build-spam-model
// from the public SpamAssassin corpus (see docs/spam.md for its provenance
// and evaluation).
//
//go:embed builtin.model
var builtinModel []byte

// BuiltinInfo describes an encoded model.
type BuiltinInfo struct {
	FeatureVersion int
	// Source says what the model was trained on.
	Source string
	// Bytes is the encoded (compressed) size.
	Bytes int

	weights bool // the encoding has linear weights
}

var builtin = sync.OnceValues(func() (*Model, error) {
	m, _, err := DecodeBuiltin()
	return m, err
})

// DecodeBuiltin decodes the shipped model afresh (Builtin shares one
// decoded copy; this is for measuring what decoding costs).
func DecodeBuiltin() (*Model, BuiltinInfo, error) {
	m, info, err := DecodeModel(bytes.NewReader(builtinModel))
	if err != nil {
		return nil, info, fmt.Errorf("spam: shipped model: %w", err)
	}
	info.Bytes = len(builtinModel)
	return m, info, nil
}

// Builtin returns the shipped model, decoded on first use and shared (it
// must not be changed).
func Builtin() (*Model, error) { return builtin() }

// BuiltinDescription returns the shipped model's header.
func BuiltinDescription() (BuiltinInfo, error) {
	_, info, err := decodeHeader(bytes.NewReader(builtinModel))
	info.Bytes = len(builtinModel)
	return info, err
}

// modelMagic starts an encoded model (after gzip); modelMagicCounts
// started the format before the linear model, without weights.
const (
	modelMagic       = "MGSPAMMODEL\x02"
	modelMagicCounts = "MGSPAMMODEL\x01"
)

// weightShift is the resolution of encoded weights: they are written in
// units of 2^weightShift/WeightUnit (1/16384), far finer than one training
// step moves them, and compress better than full precision.
const weightShift = 10

// EncodeModel writes m in the shipped model format: gzip of the magic, the
// feature version, the source text, the message totals and the tokens in
// byte order, each as the length of the prefix it shares with the previous
// token, its remaining bytes, its spam and ham counts (all lengths and
// counts as unsigned varints) and its linear weight in units of
// 2^weightShift/WeightUnit (a signed varint). The output is a function of its inputs
// alone (no time stamps), so a rebuild from the same corpus gives the same
// bytes.
func EncodeModel(w io.Writer, m *Model, featureVersion int, source string) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return fmt.Errorf("spam: encode model: %w", err)
	}
	bw := bufio.NewWriter(zw)
	var buf [binary.MaxVarintLen64]byte
	uv := func(v uint64) { bw.Write(buf[:binary.PutUvarint(buf[:], v)]) }
	bw.WriteString(modelMagic)
	uv(uint64(featureVersion))
	uv(uint64(len(source)))
	bw.WriteString(source)
	uv(uint64(max(m.Spam, 0)))
	uv(uint64(max(m.Ham, 0)))
	toks := make([]string, 0, len(m.Tokens))
	for t := range m.Tokens {
		toks = append(toks, t)
	}
	slices.Sort(toks)
	uv(uint64(len(toks)))
	prev := ""
	for _, t := range toks {
		n := 0
		for n < len(t) && n < len(prev) && t[n] == prev[n] {
			n++
		}
		uv(uint64(n))
		uv(uint64(len(t) - n))
		bw.WriteString(t[n:])
		c := m.Tokens[t]
		uv(uint64(max(c.Spam, 0)))
		uv(uint64(max(c.Ham, 0)))
		bw.Write(buf[:binary.PutVarint(buf[:], roundShift(c.Weight, weightShift))])
		prev = t
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("spam: encode model: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("spam: encode model: %w", err)
	}
	return nil
}

// roundShift divides v by 2^k, rounding half away from zero.
func roundShift(v int64, k uint) int64 {
	half := int64(1) << (k - 1)
	if v < 0 {
		return -((-v + half) >> k)
	}
	return (v + half) >> k
}

// maxModelTokens bounds what DecodeModel accepts.
const maxModelTokens = 10_000_000

func decodeHeader(r io.Reader) (*bufio.Reader, BuiltinInfo, error) {
	var info BuiltinInfo
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, info, fmt.Errorf("spam: decode model: %w", err)
	}
	br := bufio.NewReader(zr)
	magic := make([]byte, len(modelMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != modelMagic && string(magic) != modelMagicCounts {
		return nil, info, errors.New("spam: decode model: not a model file")
	}
	info.weights = string(magic) == modelMagic
	v, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, info, fmt.Errorf("spam: decode model: %w", err)
	}
	info.FeatureVersion = int(v)
	n, err := binary.ReadUvarint(br)
	if err != nil || n > 1<<16 {
		return nil, info, errors.New("spam: decode model: bad source text")
	}
	src := make([]byte, n)
	if _, err := io.ReadFull(br, src); err != nil {
		return nil, info, fmt.Errorf("spam: decode model: %w", err)
	}
	info.Source = string(src)
	return br, info, nil
}

// DecodeModel reads a model EncodeModel wrote. The tokens share one
// backing string, so decoding makes a handful of allocations however many
// tokens there are.
func DecodeModel(r io.Reader) (*Model, BuiltinInfo, error) {
	br, info, err := decodeHeader(r)
	if err != nil {
		return nil, info, err
	}
	fail := func(err error) (*Model, BuiltinInfo, error) {
		return nil, info, fmt.Errorf("spam: decode model: %w", err)
	}
	body, err := io.ReadAll(br)
	if err != nil {
		return fail(err)
	}
	uv := func() (uint64, error) {
		v, n := binary.Uvarint(body)
		if n <= 0 {
			return 0, io.ErrUnexpectedEOF
		}
		body = body[n:]
		return v, nil
	}
	var vals [3]uint64
	for i := range vals {
		if vals[i], err = uv(); err != nil {
			return fail(err)
		}
	}
	if vals[2] > maxModelTokens {
		return fail(errors.New("too many tokens"))
	}
	type entry struct {
		off, n int
		c      TokenCount
	}
	entries := make([]entry, vals[2])
	var arena []byte
	prevOff, prevLen := 0, 0
	for i := range entries {
		shared, err := uv()
		if err != nil {
			return fail(err)
		}
		rest, err := uv()
		if err != nil {
			return fail(err)
		}
		if shared > uint64(prevLen) || rest > 4096 || rest > uint64(len(body)) {
			return fail(errors.New("bad token"))
		}
		off := len(arena)
		arena = append(arena, arena[prevOff:prevOff+int(shared)]...)
		arena = append(arena, body[:rest]...)
		body = body[rest:]
		sp, err := uv()
		if err != nil {
			return fail(err)
		}
		hm, err := uv()
		if err != nil {
			return fail(err)
		}
		c := TokenCount{Spam: int64(sp), Ham: int64(hm)}
		if info.weights {
			w, n := binary.Varint(body)
			if n <= 0 {
				return fail(io.ErrUnexpectedEOF)
			}
			body = body[n:]
			c.Weight = w << weightShift
		}
		entries[i] = entry{off, int(shared + rest), c}
		prevOff, prevLen = off, int(shared+rest)
	}
	all := string(arena)
	m := &Model{Spam: int64(vals[0]), Ham: int64(vals[1]), Tokens: make(map[string]TokenCount, len(entries))}
	for _, e := range entries {
		m.Tokens[all[e.off:e.off+e.n]] = e.c
	}
	return m, info, nil
}
