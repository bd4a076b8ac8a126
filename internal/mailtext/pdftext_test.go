package mailtext

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// testPDF builds a PDF whose pages show the given content streams (each
// compressed with FlateDecode) in Helvetica. pagesCount is the page tree's
// /Count: the number of pages when 0.
func testPDF(t testing.TB, pagesCount int, contents ...[]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	var offs []int
	obj := func(format string, args ...any) {
		offs = append(offs, b.Len())
		fmt.Fprintf(&b, "%d 0 obj ", len(offs))
		fmt.Fprintf(&b, format, args...)
		b.WriteString(" endobj\n")
	}
	b.WriteString("%PDF-1.4\n")
	if pagesCount == 0 {
		pagesCount = len(contents)
	}
	var kids []string
	for i := range contents {
		kids = append(kids, fmt.Sprintf("%d 0 R", 4+2*i))
	}
	obj("<< /Type /Catalog /Pages 2 0 R >>")
	obj("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), pagesCount)
	obj("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
	for i, c := range contents {
		var z bytes.Buffer
		zw := zlib.NewWriter(&z)
		if _, err := zw.Write(c); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		obj("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R /Resources << /Font << /F1 3 0 R >> >> >>", 5+2*i)
		obj("<< /Length %d /Filter /FlateDecode >> stream\n%s\nendstream", z.Len(), z.Bytes())
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(offs)+1)
	for _, o := range offs {
		fmt.Fprintf(&b, "%010d 00000 n \n", o)
	}
	fmt.Fprintf(&b, "trailer << /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(offs)+1, xref)
	return b.Bytes()
}

func showText(s string) []byte {
	return []byte("BT /F1 12 Tf 72 712 Td (" + s + ") Tj ET\n")
}

func TestPDFTextReadsEveryPage(t *testing.T) {
	got, err := PDFText(testPDF(t, 0, showText("first page"), showText("second page")), 1<<20, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "first page") || !strings.Contains(got, "second page") {
		t.Fatalf("text %q", got)
	}
}

// A content stream a few hundred kilobytes long that decodes to more than
// MaxPDFDecodedBytes is refused as too large, not decoded to the end.
func TestPDFTextDecodeBomb(t *testing.T) {
	content := bytes.Repeat(showText(strings.Repeat("A", 60)), MaxPDFDecodedBytes/80+1000)
	doc := testPDF(t, 0, content)
	if len(doc) > 1<<20 {
		t.Fatalf("the test document is %d bytes", len(doc))
	}
	got, err := PDFText(doc, 1<<20, 30*time.Second)
	if !errors.Is(err, ErrPDFTooLarge) {
		t.Fatalf("got %d bytes of text and error %v, want %v", len(got), err, ErrPDFTooLarge)
	}
	// Just under the bound, the same content is read.
	content = bytes.Repeat(showText("B"), 1000)
	if got, err := PDFText(testPDF(t, 0, content), 1<<20, 30*time.Second); err != nil || !strings.Contains(got, "B") {
		t.Fatalf("small document: %d bytes, %v", len(got), err)
	}
}

// A page tree claiming two billion pages over one is read as the one page
// it holds, at once: the reader used to look each claimed page up in turn,
// which would outlast any timeout.
func TestPDFTextPageCountLie(t *testing.T) {
	got, err := PDFText(testPDF(t, 2000000000, showText("the only page")), 1<<20, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "the only page") {
		t.Fatalf("text %q", got)
	}
}

// FuzzPDFText: whatever the bytes, reading a PDF's text ends well within
// its timeout with text or an error: a document that keeps the reader busy
// for seconds in spite of the bounds is a finding.
func FuzzPDFText(f *testing.F) {
	f.Add(testPDF(f, 0, showText("first page"), showText("second page")))
	f.Add(testPDF(f, 7, showText("one")))
	f.Add([]byte("%PDF-1.4\ntrailer << /Root << /Pages << /Count 9 /Kids [] >> >> >>\n%%EOF"))
	// A cross-reference stream, and an object in an object stream.
	pad := "%PDF-1.5\n%" + strings.Repeat(" ", 100) + "\n"
	xs := "1 0 obj << /Type /XRef /Size 3 /W [1 2 1] /Root 2 0 R /Length 12 >> stream\n" +
		"\x00\x00\x00\xff\x01\x00\x6f\x00\x02\x00\x03\x00\nendstream endobj\n" +
		"3 0 obj << /Type /ObjStm /N 1 /First 4 /Length 38 >> stream\n2 0 << /Type /Catalog /Pages 9 0 R >>\nendstream endobj\n"
	f.Add([]byte(fmt.Sprintf("%s%sstartxref\n%d\n%%%%EOF\n", pad, xs, len(pad))))
	f.Fuzz(func(t *testing.T, doc []byte) {
		if len(doc) > 64<<10 {
			return
		}
		got, err := PDFText(doc, 1<<16, 10*time.Second)
		if errors.Is(err, ErrPDFTimeout) {
			t.Fatalf("%d-byte document not read in 10 s", len(doc))
		}
		if int64(len(got)) > 1<<16 {
			t.Fatalf("%d bytes of text, more than asked for", len(got))
		}
	})
}

// A few bytes naming object 2,000,000,000 are refused as malformed. They
// used to make the reader allocate its object table at that size, which
// ended the whole process with "out of memory" (no recover catches it).
func TestPDFTextHugeObjectNumbers(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("%PDF-1.5\n%" + strings.Repeat(" ", 100) + "\n")
	at := b.Len()
	b.WriteString("1 0 obj << /Type /XRef /Size 2000000000 /W [1 1 1] /Length 0 >> stream\n\nendstream endobj\n")
	fmt.Fprintf(&b, "startxref\n%d\n%%%%EOF\n", at)
	if got, err := PDFText(b.Bytes(), 1<<20, 30*time.Second); err == nil || errors.Is(err, ErrPDFTimeout) {
		t.Fatalf("got %q, %v; want a malformed document", got, err)
	}
}
