package smtpin

import (
	"bytes"
	"fmt"
	"io"
	"time"

	"github.com/emersion/go-smtp"
)

// guard sits between the SMTP DATA stream and the spool. It enforces what
// go-smtp leaves to us: line endings (SMTP smuggling), NUL bytes, the line
// length, the header section's size, the Received-header loop limit and a
// minimum data rate, and it picks out the Message-ID and Subject for
// tracking and the From field for the relay's author check. go-smtp already
// ends DATA only at <CRLF>.<CRLF> and removes dot-stuffing.
type guard struct {
	w         io.Writer
	normalize bool // convert bare LF/CR to CRLF instead of rejecting (trusted relays)

	maxHeader   int
	maxReceived int
	maxLine     int
	minRate     int
	start       time.Time
	errLongLine *smtp.SMTPError

	n         int64
	prevCR    bool
	lineLen   int // bytes of the current line so far, line ending excluded
	inHeader  bool
	headerN   int
	received  int
	line      []byte // current header line (bounded), for Received/Message-ID/Subject
	lastName  string
	messageID string
	subject   string
	// from is the first From field's unfolded value (bounded); fromFields
	// counts the From fields (RFC 5322 3.6 allows exactly one).
	from       string
	fromFields int
	err        *smtp.SMTPError
	outScratch []byte
}

// newGuard checks a message written to w. maxLine bounds every line
// (0: no limit); maxHeader the header section.
func newGuard(w io.Writer, normalize bool, maxLine, maxHeader, maxReceived, minRate int) *guard {
	return &guard{w: w, normalize: normalize, maxLine: maxLine, maxHeader: maxHeader, maxReceived: maxReceived,
		minRate: minRate, start: time.Now(), inHeader: true,
		errLongLine: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
			Message: fmt.Sprintf("Line too long in message (limit %d bytes; RFC 5322 2.1.1 asks for at most 998)", maxLine)}}
}

var (
	errBareLF = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 11},
		Message: "Bare LF or CR in message; use CRLF line endings (RFC 5321 2.3.8)"}
	errNUL = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
		Message: "NUL character in message is not allowed"}
	errHeaderSize = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4},
		Message: "Message header section too large"}
	errLoop = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 4, 6},
		Message: "Too many Received headers: mail loop detected"}
	errSlow = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2},
		Message: "Data rate too low; try again"}
)

// rateGrace is how long a client may dawdle before the minimum rate applies.
const rateGrace = 30 * time.Second

// Write validates p and passes it (possibly normalised) to the spool. The
// first violation is remembered and every later write fails with it, so the
// caller can keep draining DATA and then answer with one clear error.
func (g *guard) Write(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	out := p
	if g.normalize {
		out = g.outScratch[:0]
	}
	for _, c := range p {
		switch c {
		case 0:
			g.err = errNUL
			return 0, g.err
		case '\n':
			if !g.prevCR {
				if !g.normalize {
					g.err = errBareLF
					return 0, g.err
				}
				out = append(out, '\r')
			}
			g.endLine()
			g.lineLen = 0
		default:
			if g.prevCR {
				if !g.normalize {
					g.err = errBareLF
					return 0, g.err
				}
				// bare CR: turn it into a line break
				out = append(out, '\n')
				g.endLine()
				g.lineLen = 0
			}
			if c != '\r' {
				g.lineLen++
				if g.maxLine > 0 && g.lineLen > g.maxLine {
					// Permanent: the same message would fail again. The
					// caller keeps reading DATA to its end, then replies.
					g.err = g.errLongLine
					return 0, g.err
				}
			}
			if c != '\r' && g.inHeader && len(g.line) < 4096 {
				g.line = append(g.line, c)
			}
		}
		g.prevCR = c == '\r'
		if g.normalize {
			out = append(out, c)
		}
		if g.inHeader {
			g.headerN++
			if g.headerN > g.maxHeader {
				g.err = errHeaderSize
				return 0, g.err
			}
		}
		if g.err != nil {
			return 0, g.err
		}
	}
	if g.normalize {
		g.outScratch = out[:0]
	}
	g.n += int64(len(p))
	if g.minRate > 0 {
		if el := time.Since(g.start); el > rateGrace && float64(g.n)/el.Seconds() < float64(g.minRate) {
			g.err = errSlow
			return 0, g.err
		}
	}
	if _, err := g.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// endLine is called at each line end while in the header section.
func (g *guard) endLine() {
	if !g.inHeader {
		return
	}
	line := g.line
	g.line = g.line[:0]
	if len(line) == 0 {
		g.inHeader = false // the empty line ends the header section
		return
	}
	if line[0] == ' ' || line[0] == '\t' {
		// continuation of the previous field
		if g.lastName == "subject" && len(g.subject) < 998 {
			g.subject += string(line)
		}
		if g.lastName == "from" && len(g.from) < maxFromLen {
			g.from += string(line)
		}
		return
	}
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		g.lastName = ""
		return
	}
	name := string(bytes.ToLower(bytes.TrimSpace(line[:colon])))
	val := string(bytes.TrimSpace(line[colon+1:]))
	g.lastName = name
	switch name {
	case "received":
		g.received++
		if g.received > g.maxReceived {
			g.err = errLoop
		}
	case "message-id":
		if g.messageID == "" {
			g.messageID = truncate(val, 998)
		}
	case "subject":
		if g.subject == "" {
			g.subject = truncate(val, 998)
		} else {
			g.lastName = "" // a second Subject is not appended to the first
		}
	case "from":
		g.fromFields++
		if g.fromFields == 1 {
			g.from = truncate(val, maxFromLen)
		} else {
			g.lastName = ""
		}
	}
}

// maxFromLen bounds the From value kept; a longer one is cut and then
// fails to parse, which the relay treats as an unreadable author.
const maxFromLen = 4096

// finish checks the state at the end of DATA.
func (g *guard) finish() error {
	if g.err != nil {
		return g.err
	}
	if g.prevCR && !g.normalize {
		// DATA cannot end on a lone CR (go-smtp needs CRLF.CRLF), kept for safety.
		return errBareLF
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
