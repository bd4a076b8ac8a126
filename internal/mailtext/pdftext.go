package mailtext

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ledongthuc/pdf"
)

// ErrPDFTimeout is returned when a PDF's text is not read within the time
// given: a crafted document can keep the reader busy for long.
var ErrPDFTimeout = errors.New("PDF text not read in time")

// ErrPDFTooLarge is returned when a PDF's streams decode to more than
// MaxPDFDecodedBytes: a few kilobytes of compressed content can decode to
// gigabytes.
var ErrPDFTooLarge = fmt.Errorf("PDF content decodes to more than %d MiB", MaxPDFDecodedBytes>>20)

// MaxPDFDecodedBytes bounds the decoded bytes of the streams read for one
// PDF's text (its pages' content, fonts' character maps, object streams).
// A page of text is a few to a few tens of kilobytes of content, so this is
// about a thousand pages, far more than the text kept of one attachment;
// the reader allocates about ten times what it decodes, so the bound is
// also what keeps one crafted document from taking a gigabyte.
const MaxPDFDecodedBytes = 16 << 20

// PDFText extracts up to max bytes of a PDF's text with a pure-Go reader,
// within timeout (0: no limit). A damaged PDF makes that reader panic at
// times: the panic becomes an error. The reading stops with ErrPDFTooLarge
// past MaxPDFDecodedBytes of decoded content; on a timeout the caller gets
// ErrPDFTimeout at once, and the reading stops soon after (the reader
// checks at every stream read, page and thousand tokens), so a crafted
// document costs neither memory nor processor time beyond these bounds.
func PDFText(data []byte, max int64, timeout time.Duration) (string, error) {
	if timeout <= 0 {
		return pdfText(data, max, nil)
	}
	type result struct {
		text string
		err  error
	}
	ch := make(chan result, 1)
	done := make(chan struct{})
	go func() {
		t, err := pdfText(data, max, done)
		ch <- result{t, err}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r := <-ch:
		return r.text, r.err
	case <-timer.C:
		close(done)
		return "", ErrPDFTimeout
	}
}

func pdfText(data []byte, max int64, done <-chan struct{}) (text string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("damaged document (%v)", r)
		}
	}()
	var tr io.Reader
	r, err := pdf.NewReaderLimited(bytes.NewReader(data), int64(len(data)), MaxPDFDecodedBytes, done)
	if err == nil {
		tr, err = r.GetPlainText()
	}
	if errors.Is(err, pdf.ErrDecodeLimit) {
		return "", ErrPDFTooLarge
	}
	if err != nil {
		return "", err
	}
	b, err := io.ReadAll(io.LimitReader(tr, max))
	return string(bytes.ToValidUTF8(b, []byte("\uFFFD"))), err
}
