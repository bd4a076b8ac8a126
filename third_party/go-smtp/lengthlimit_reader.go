package smtp

import (
	"errors"
	"io"
)

var ErrTooLongLine = errors.New("smtp: too long a line in input stream")

// ErrTooLongReply is returned by a client when a server's reply, its
// continuation lines ("250-...") together, passes the client's limit.
var ErrTooLongReply = errors.New("smtp: too long a reply in input stream")

// lineLimitReader reads from the underlying Reader but restricts
// line length of lines in input stream to a certain length.
//
// If line length exceeds the limit - Read returns ErrTooLongLine
type lineLimitReader struct {
	R         io.Reader
	LineLimit int
	// ReplyLimit, if not 0, bounds the bytes of one reply: lines whose
	// fourth byte is "-" continue it, any other line ends it. A reply is
	// read whole into memory (and joined line by line), so a server that
	// sends continuation lines without end must not make it grow without
	// end. Only a client reads replies.
	ReplyLimit int

	curLineLength int
	replyLength   int  // bytes of the current reply so far
	linePos       int  // bytes of the current line so far
	continued     bool // the current line's fourth byte is "-"
}

func (r *lineLimitReader) Read(b []byte) (int, error) {
	if r.curLineLength > r.LineLimit && r.LineLimit > 0 {
		return 0, ErrTooLongLine
	}

	n, err := r.R.Read(b)
	if err != nil {
		return n, err
	}

	if r.LineLimit == 0 {
		return n, nil
	}

	for _, chr := range b[:n] {
		if chr == '\n' {
			r.curLineLength = 0
		}
		r.curLineLength++

		if r.curLineLength > r.LineLimit {
			return 0, ErrTooLongLine
		}
		if r.ReplyLimit > 0 {
			if r.linePos == 3 {
				r.continued = chr == '-'
			}
			r.linePos++
			r.replyLength++
			if r.replyLength > r.ReplyLimit {
				return 0, ErrTooLongReply
			}
			if chr == '\n' {
				if !r.continued {
					r.replyLength = 0
				}
				r.linePos, r.continued = 0, false
			}
		}
	}

	return n, nil
}
