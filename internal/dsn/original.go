package dsn

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime/quotedprintable"
)

// maxLineLen is the RFC 5322 2.1.1 limit on a line, excluding CRLF.
const maxLineLen = 998

// originalPart is the third part of the report, ready to write.
type originalPart struct {
	contentType string // "message/rfc822" or "text/rfc822-headers"
	encoding    string // Content-Transfer-Encoding
	body        []byte // encoded, CRLF line endings, ends with CRLF
	// reduced is set when the full original was asked for but only its
	// header section is included (too large, or not carriable as 8bit).
	reduced bool
	// truncated is set when even the header section exceeded the cap.
	truncated bool
}

// headerScanner finds the first empty line of a message whatever line endings
// it uses: CRLF, bare LF or bare CR. It is fed bytes as they arrive so that
// reading can stop there, and keeps its state across calls.
type headerScanner struct {
	started     bool
	prevCR      bool
	atLineStart bool
}

// feed scans p, which starts at offset off of the message, and returns the
// offset of the first empty line, which is where the header section ends.
func (s *headerScanner) feed(p []byte, off int) (int, bool) {
	if !s.started {
		s.started, s.atLineStart = true, true
	}
	for i, c := range p {
		switch c {
		case '\n':
			if s.prevCR { // second half of CRLF: the line already ended at CR
				s.prevCR = false
				continue
			}
			if s.atLineStart {
				return off + i, true
			}
			s.atLineStart = true
		case '\r':
			if s.atLineStart { // an empty line, CRLF or bare CR
				return off + i, true
			}
			s.atLineStart, s.prevCR = true, true
		default:
			s.prevCR, s.atLineStart = false, false
		}
	}
	return 0, false
}

// readOriginal reads at most limit+1 bytes of r (only up to the end of the
// header section when full is false) and prepares the third report part.
func readOriginal(r io.Reader, full bool, limit int64) (*originalPart, error) {
	lr := io.LimitReader(r, limit+1)
	var raw []byte
	var sc headerScanner
	headerEnd, found := 0, false
	if full {
		var err error
		raw, err = io.ReadAll(lr)
		if err != nil {
			return nil, fmt.Errorf("dsn: reading original message: %w", err)
		}
		if int64(len(raw)) <= limit {
			body := normalizeLines(raw)
			if longestLine(body) <= maxLineLen {
				enc := "7bit"
				if !isASCII(string(body)) {
					enc = "8bit" // RFC 2046 5.2.1: message/rfc822 is never encoded
				}
				return &originalPart{contentType: "message/rfc822", encoding: enc, body: body}, nil
			}
		}
		headerEnd, found = sc.feed(raw, 0)
	} else {
		chunk := make([]byte, 4096)
		for !found && int64(len(raw)) <= limit {
			n, err := lr.Read(chunk)
			if n > 0 {
				headerEnd, found = sc.feed(chunk[:n], len(raw))
				raw = append(raw, chunk[:n]...)
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("dsn: reading original message: %w", err)
			}
		}
	}
	part := &originalPart{contentType: "text/rfc822-headers", reduced: full}
	hdr := raw
	if found {
		hdr = raw[:headerEnd]
	}
	if int64(len(hdr)) > limit {
		// Keep whole lines only: cut after the last line break within the cap.
		hdr = hdr[:limit]
		if i := bytes.LastIndexAny(hdr, "\r\n"); i >= 0 {
			hdr = hdr[:i+1]
		} else {
			hdr = nil
		}
		part.truncated = true
	}
	body := normalizeLines(hdr)
	if isASCII(string(body)) && longestLine(body) <= maxLineLen {
		part.encoding = "7bit"
		part.body = body
		return part, nil
	}
	// Raw 8-bit or over-long header lines: quoted-printable keeps the report
	// 7-bit and every line short (RFC 2045 6.7).
	var qp bytes.Buffer
	w := quotedprintable.NewWriter(&qp)
	if _, err := w.Write(body); err != nil {
		return nil, fmt.Errorf("dsn: encoding original header: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("dsn: encoding original header: %w", err)
	}
	part.encoding = "quoted-printable"
	part.body = ensureCRLF(qp.Bytes())
	return part, nil
}

// normalizeLines rewrites every line ending (CRLF, bare LF, bare CR) as CRLF,
// drops NUL bytes, and makes sure non-empty output ends with CRLF.
func normalizeLines(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/32+2)
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case 0:
		case '\r':
			out = append(out, '\r', '\n')
			if i+1 < len(b) && b[i+1] == '\n' {
				i++
			}
		case '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, c)
		}
	}
	return ensureCRLF(out)
}

func ensureCRLF(b []byte) []byte {
	if len(b) > 0 && !bytes.HasSuffix(b, []byte("\r\n")) {
		b = append(b, '\r', '\n')
	}
	return b
}

// longestLine returns the length of the longest CRLF-terminated line in b.
func longestLine(b []byte) int {
	longest := 0
	for len(b) > 0 {
		i := bytes.Index(b, []byte("\r\n"))
		if i < 0 {
			i = len(b)
		}
		longest = max(longest, i)
		b = b[min(len(b), i+2):]
	}
	return longest
}
