package pdf

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"strings"
	"testing"
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
	r, err := NewReader(bytes.NewReader(doc), int64(len(doc)))
	if err != nil {
		t.Fatal(err)
	}
	r.SetReadLimits(maxDecoded, done)
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
