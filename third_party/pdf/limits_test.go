package pdf

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// onePage builds a one-page PDF whose content stream is content,
// compressed with FlateDecode; parms, if not empty, is its /DecodeParms.
func onePage(t *testing.T, content, parms string) []byte {
	t.Helper()
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write([]byte(content))
	zw.Close()
	var b bytes.Buffer
	var offs []int
	obj := func(s string) {
		offs = append(offs, b.Len())
		fmt.Fprintf(&b, "%d 0 obj %s endobj\n", len(offs), s)
	}
	b.WriteString("%PDF-1.4\n")
	obj("<< /Type /Catalog /Pages 2 0 R >>")
	obj("<< /Type /Pages /Kids [3 0 R] /Count 1 >>")
	obj("<< /Type /Page /Parent 2 0 R /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>")
	if parms != "" {
		parms = " /DecodeParms " + parms
	}
	obj(fmt.Sprintf("<< /Length %d /Filter /FlateDecode%s >> stream\n%s\nendstream", z.Len(), parms, z.Bytes()))
	obj("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(offs)+1)
	for _, o := range offs {
		fmt.Fprintf(&b, "%010d 00000 n \n", o)
	}
	fmt.Fprintf(&b, "trailer << /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(offs)+1, xref)
	return b.Bytes()
}

func plainText(t *testing.T, doc []byte, maxDecoded int64, done <-chan struct{}) (string, error) {
	t.Helper()
	r, err := NewReaderLimited(bytes.NewReader(doc), int64(len(doc)), maxDecoded, done)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := r.GetPlainText()
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	_, err = b.ReadFrom(tr)
	return b.String(), err
}

func TestReadLimits(t *testing.T) {
	content := "BT /F1 12 Tf 72 712 Td (" + strings.Repeat("x", 500) + ") Tj ET\n"
	doc := onePage(t, content, "")
	if got, err := plainText(t, doc, 0, nil); err != nil || !strings.Contains(got, "xxxx") {
		t.Fatalf("no limits: %q, %v", got, err)
	}
	if got, err := plainText(t, doc, int64(len(content)), nil); err != nil || !strings.Contains(got, "xxxx") {
		t.Fatalf("limit at the content's size: %q, %v", got, err)
	}
	if got, err := plainText(t, doc, int64(len(content))-1, nil); !errors.Is(err, ErrDecodeLimit) {
		t.Fatalf("limit a byte short: %q, %v", got, err)
	}
	done := make(chan struct{})
	close(done)
	if got, err := plainText(t, doc, 0, done); !errors.Is(err, ErrCanceled) {
		t.Fatalf("done closed: %q, %v", got, err)
	}
}

// A predictor's row size is the file's to say, and the rows are allocated
// at that size: an absurd one is an error, not gigabytes.
func TestPredictorColumnsBounded(t *testing.T) {
	for _, cols := range []string{"3000000000", "0", "-4"} {
		doc := onePage(t, "BT ET", "<< /Predictor 12 /Columns "+cols+" >>")
		if _, err := plainText(t, doc, 0, nil); err == nil || !strings.Contains(err.Error(), "predictor columns") {
			t.Errorf("columns %s: %v", cols, err)
		}
	}
	// Without /Columns a row is one byte, as the format says: not an error.
	var rows []byte
	prev := byte(0)
	for _, c := range []byte("BT /F1 12 Tf (one) Tj ET") {
		rows = append(rows, 2, c-prev) // PNG Up: each byte less the one above
		prev = c
	}
	doc := onePage(t, string(rows), "<< /Predictor 12 >>")
	if got, err := plainText(t, doc, 0, nil); err != nil || strings.TrimSpace(got) != "one" {
		t.Errorf("no columns: %q, %v", got, err)
	}
}

// rawPDF is a file of the given body, whose cross-reference section is
// the body's "xref" table, or else the body's start (an xref stream).
func rawPDF(body string) []byte {
	var b bytes.Buffer
	// A comment makes every such file longer than the 100 bytes the
	// reader looks for its end in.
	b.WriteString("%PDF-1.5\n%" + strings.Repeat(" ", 100) + "\n")
	at := b.Len()
	if i := strings.Index(body, "xref\n"); i >= 0 {
		at += i
	}
	b.WriteString(body)
	fmt.Fprintf(&b, "startxref\n%d\n%%%%EOF\n", at)
	return b.Bytes()
}

// Object numbers and table sizes a file names are bounded before the table
// is allocated: a 100-byte file naming object 2,000,000,000 used to end
// the process with "out of memory", which no recover catches.
func TestObjectNumbersBounded(t *testing.T) {
	for name, body := range map[string]string{
		"xref stream Size":  "1 0 obj << /Type /XRef /Size 2000000000 /W [1 1 1] /Length 0 >> stream\n\nendstream endobj\n",
		"xref stream Index": "1 0 obj << /Type /XRef /Size 1 /Index [2000000000 1] /W [1 1 1] /Length 3 >> stream\n\x01\x00\x00\nendstream endobj\n",
		"xref table start":  "xref\n2000000000 1\n0000000009 00000 n \ntrailer << /Size 1 >>\n",
		"empty W":           "1 0 obj << /Type /XRef /Size 1 /Index [0 1000000000000] /W [0 0 0] /Length 0 >> stream\n\nendstream endobj\n",
		"wide W":            "1 0 obj << /Type /XRef /Size 1 /W [1 1 4000000000] /Length 0 >> stream\n\nendstream endobj\n",
	} {
		doc := rawPDF(body)
		_, err := NewReaderLimited(bytes.NewReader(doc), int64(len(doc)), 1<<20, nil)
		if err == nil || !strings.Contains(err.Error(), "range") && !strings.Contains(err.Error(), "invalid W") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A cross-reference chain whose /Prev leads back to itself is an error,
// not a loop.
func TestPrevCycle(t *testing.T) {
	at := len("%PDF-1.5\n%\n") + 100 // where rawPDF puts the body
	body := fmt.Sprintf("xref\n0 1\n0000000000 65535 f \ntrailer << /Size 1 /Prev %d >>\n", at)
	doc := rawPDF(body)
	if !bytes.HasPrefix(doc[at:], []byte("xref\n")) {
		t.Fatalf("the body is not at %d", at)
	}
	if _, err := NewReaderLimited(bytes.NewReader(doc), int64(len(doc)), 1<<20, nil); err == nil || !strings.Contains(err.Error(), "repeats") {
		t.Fatalf("got %v", err)
	}
}

// A page tree that holds itself ends the page search.
func TestPageTreeCycle(t *testing.T) {
	var b bytes.Buffer
	var offs []int
	b.WriteString("%PDF-1.4\n")
	for _, o := range []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [2 0 R] /Count 5 >>",
	} {
		offs = append(offs, b.Len())
		fmt.Fprintf(&b, "%d 0 obj %s endobj\n", len(offs), o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(offs)+1)
	for _, o := range offs {
		fmt.Fprintf(&b, "%010d 00000 n \n", o)
	}
	fmt.Fprintf(&b, "trailer << /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(offs)+1, xref)
	doc := b.Bytes()
	if got, err := plainText(t, doc, 1<<20, nil); err != nil || got != "" {
		t.Fatalf("got %q, %v", got, err)
	}
}

// Reading stops once done is closed, also in loops that read no stream:
// here an object stream that extends itself, asked for an object it does
// not hold, with a count of entries larger than any file.
func TestCancelStopsLoops(t *testing.T) {
	var b bytes.Buffer
	var offs []int
	b.WriteString("%PDF-1.5\n")
	for _, o := range []string{
		"<< /Type /Catalog /Pages 3 0 R >>",
		"<< /Type /ObjStm /N 1000000000000 /First 1 /Extends 2 0 R /Length 0 >> stream\n\nendstream",
	} {
		offs = append(offs, b.Len())
		fmt.Fprintf(&b, "%d 0 obj %s endobj\n", len(offs), o)
	}
	xrefAt := b.Len()
	// Object 3 (the page tree) is said to be in object stream 2.
	fmt.Fprintf(&b, "xref\n0 3\n0000000000 65535 f \n%010d 00000 n \n%010d 00000 n \ntrailer << /Size 4 /Root 1 0 R >>\n", offs[0], offs[1])
	// The table cannot say that object 3 is in an object stream (that
	// takes an xref stream): the test adds the entry itself.
	fmt.Fprintf(&b, "startxref\n%d\n%%%%EOF\n", xrefAt)
	doc := b.Bytes()
	r, err := NewReaderLimited(bytes.NewReader(doc), int64(len(doc)), 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	r.limits.done = done
	r.xref = append(r.xref, xref{ptr: objptr{3, 0}, inStream: true, stream: objptr{2, 0}})
	finished := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				finished <- fmt.Errorf("%v", p)
			}
		}()
		r.resolve(objptr{}, objptr{3, 0})
		finished <- nil
	}()
	close(done)
	select {
	case err := <-finished:
		if err == nil || !strings.Contains(err.Error(), ErrCanceled.Error()) {
			t.Fatalf("ended with %v, want %v", err, ErrCanceled)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("still reading 30 s after done was closed")
	}
}

// An object said to be in an object stream that is itself in one (here
// the stream is the object itself) is malformed. It was resolved by
// recursion without end: "fatal error: stack overflow", which ends the
// process.
func TestObjectStreamInObjectStream(t *testing.T) {
	doc := onePage(t, "BT ET", "")
	r, err := NewReaderLimited(bytes.NewReader(doc), int64(len(doc)), 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	self := objptr{uint32(len(r.xref)), 0}
	r.xref = append(r.xref, xref{ptr: self, inStream: true, stream: self})
	defer func() {
		if p := recover(); p == nil || !strings.Contains(fmt.Sprint(p), "itself in an object stream") {
			t.Fatalf("recovered %v", p)
		}
	}()
	r.resolve(objptr{}, self)
}

// withCmap is a one-page PDF showing "AB" in a font whose ToUnicode map is
// cmapText.
func withCmap(t *testing.T, cmapText string) []byte {
	t.Helper()
	var b bytes.Buffer
	var offs []int
	b.WriteString("%PDF-1.4\n")
	content := "BT /F1 12 Tf (AB) Tj ET"
	for _, o := range []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
		fmt.Sprintf("<< /Length %d >> stream\n%s\nendstream", len(content), content),
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode 6 0 R >>",
		fmt.Sprintf("<< /Length %d >> stream\n%s\nendstream", len(cmapText), cmapText),
	} {
		offs = append(offs, b.Len())
		fmt.Fprintf(&b, "%d 0 obj %s endobj\n", len(offs), o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(offs)+1)
	for _, o := range offs {
		fmt.Fprintf(&b, "%010d 00000 n \n", o)
	}
	fmt.Fprintf(&b, "trailer << /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(offs)+1, xref)
	return b.Bytes()
}

// A character map's entry counts are bounded by the entries it holds: a
// count of two billion over none used to append two billion empty entries,
// until the process ran out of memory. A map that holds its entries is
// read as before.
func TestCmapCounts(t *testing.T) {
	const head = "/CIDInit /ProcSet findresource begin 12 dict begin begincmap 1 begincodespacerange <00> <FF> endcodespacerange "
	got, err := plainText(t, withCmap(t, head+"2 beginbfchar <41> <0058> <42> <0059> endbfchar endcmap"), 1<<20, nil)
	if err != nil || strings.TrimSpace(got) != "XY" {
		t.Fatalf("a good map: %q, %v", got, err)
	}
	for _, bad := range []string{"2000000000 beginbfchar endbfchar", "2000000000 beginbfrange endbfrange",
		"2000000000 begincodespacerange endcodespacerange", "3 beginbfchar <41> <0058> endbfchar"} {
		got, err := plainText(t, withCmap(t, head+bad+" endcmap"), 1<<20, nil)
		if err != nil || strings.TrimSpace(got) != "AB" {
			t.Errorf("%s: %q, %v; want the font's own encoding", bad, got, err)
		}
	}
}

// Decoding through a character map stops once the caller's time is up.
func TestCmapDecodeCanceled(t *testing.T) {
	done := make(chan struct{})
	close(done)
	m := &cmap{lim: &readLimits{done: done}}
	m.space[0] = []byteRange{{"\x00", "\xff"}}
	defer func() {
		if p := recover(); p != ErrCanceled {
			t.Fatalf("recovered %v, want %v", p, ErrCanceled)
		}
	}()
	m.Decode(strings.Repeat("A", 10*stepsPerCheck))
	t.Fatal("decoded to the end")
}

// Decoding through a font's Differences stops once the caller's time is up.
func TestDifferencesDecodeCanceled(t *testing.T) {
	done := make(chan struct{})
	close(done)
	e := &dictEncoder{v: Value{r: &Reader{limits: &readLimits{done: done}}, data: array{int64(65), name("B")}}}
	defer func() {
		if p := recover(); p != ErrCanceled {
			t.Fatalf("recovered %v, want %v", p, ErrCanceled)
		}
	}()
	e.Decode(strings.Repeat("A", 10*stepsPerCheck))
	t.Fatal("decoded to the end")
}

// Opening a file counts its cross-reference stream against the bound,
// and says so when that is what stopped it.
func TestOpeningCountsDecodedBytes(t *testing.T) {
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(make([]byte, 3*100000)) // 100,000 free entries
	zw.Close()
	body := fmt.Sprintf("1 0 obj << /Type /XRef /Size 100000 /W [1 1 1] /Filter /FlateDecode /Length %d >> stream\n%s\nendstream endobj\n", z.Len(), z.Bytes())
	doc := rawPDF(body)
	if _, err := NewReaderLimited(bytes.NewReader(doc), int64(len(doc)), 1<<20, nil); errors.Is(err, ErrDecodeLimit) {
		t.Fatalf("within the bound: %v", err)
	}
	if _, err := NewReaderLimited(bytes.NewReader(doc), int64(len(doc)), 1<<10, nil); !errors.Is(err, ErrDecodeLimit) {
		t.Fatalf("past the bound: %v, want %v", err, ErrDecodeLimit)
	}
}
