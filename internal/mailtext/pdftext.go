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

// PDFText extracts up to max bytes of a PDF's text with a pure-Go reader,
// within timeout (0: no limit). A damaged PDF makes that reader panic at
// times: the panic becomes an error. On a timeout the reading goes on in
// the background until it ends (it is bounded by the document's size, which
// the caller bounds) and the caller gets ErrPDFTimeout at once.
func PDFText(data []byte, max int64, timeout time.Duration) (string, error) {
	if timeout <= 0 {
		return pdfText(data, max)
	}
	type result struct {
		text string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		t, err := pdfText(data, max)
		ch <- result{t, err}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r := <-ch:
		return r.text, r.err
	case <-timer.C:
		return "", ErrPDFTimeout
	}
}

func pdfText(data []byte, max int64) (text string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("damaged document (%v)", r)
		}
	}()
	r, err := pdf.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return "", err
	}
	tr, err := r.GetPlainText()
	if err != nil {
		return "", err
	}
	b, err := io.ReadAll(io.LimitReader(tr, max))
	return string(bytes.ToValidUTF8(b, []byte("\uFFFD"))), err
}
