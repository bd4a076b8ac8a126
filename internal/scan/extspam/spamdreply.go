package extspam

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// The SPAMC/1.5 reply (spamd(1p), the spamc/spamd protocol description in
// SpamAssassin's PROTOCOL file):
//
//	SPAMD/1.1 0 EX_OK\r\n
//	Content-length: 81\r\n          (SYMBOLS, REPORT)
//	Spam: True ; 1004.7 / 5.0\r\n
//	\r\n
//	GTUBE,MSGID_SHORT,RDNS_NONE     (SYMBOLS: names; REPORT: report text)
//
// An error is a status line alone, with a sysexits.h code:
// "SPAMD/1.0 76 Bad header line: ...".

const (
	maxSpamdLine    = 4096
	maxSpamdHeaders = 32
)

var errReplyTooLarge = errors.New("reply too large")

// capReader passes at most n bytes of r and then fails with
// errReplyTooLarge if r has more.
type capReader struct {
	r io.Reader
	n int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		var one [1]byte
		k, err := c.r.Read(one[:])
		if k > 0 {
			return 0, errReplyTooLarge
		}
		if err == nil {
			err = io.ErrNoProgress
		}
		return 0, err
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	k, err := c.r.Read(p)
	c.n -= int64(k)
	return k, err
}

func spamdProto(reason string, reply []byte) error {
	return &ProtocolError{Engine: SpamAssassinName, Reason: reason, Reply: sanitize(string(reply), replyClip)}
}

// readErr maps a failure while reading the reply: too large and truncated
// replies are protocol errors; anything else (reset, timeout) is left for
// the caller to classify as unavailability.
func readErr(err error, started bool, where string) error {
	switch {
	case errors.Is(err, errReplyTooLarge):
		return spamdProto("reply too large", nil)
	case errors.Is(err, bufio.ErrBufferFull):
		return spamdProto("over-long line in "+where, nil)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		if started {
			return spamdProto("reply truncated in "+where, nil)
		}
		return fmt.Errorf("connection closed without a reply: %w", io.ErrUnexpectedEOF)
	}
	return err
}

// readSpamdLine reads one CRLF (or LF) terminated line without its ending.
func readSpamdLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return line, err
	}
	line = bytes.TrimSuffix(line[:len(line)-1], []byte{'\r'})
	return line, nil
}

// readSpamdReply reads one reply to cmd (SYMBOLS, REPORT or CHECK), at most
// max bytes in all.
func readSpamdReply(r io.Reader, cmd string, max int64) (*SpamdResult, error) {
	br := bufio.NewReaderSize(&capReader{r: r, n: max}, maxSpamdLine)
	line, err := readSpamdLine(br)
	if err != nil {
		return nil, readErr(err, len(line) > 0, "status line")
	}
	fields := strings.Fields(string(line))
	if len(fields) < 2 || !strings.HasPrefix(fields[0], "SPAMD/") {
		return nil, spamdProto("not a SPAMD status line", line)
	}
	code, err := strconv.Atoi(fields[1])
	if err != nil || code < 0 {
		return nil, spamdProto("bad status code", line)
	}
	if code != 0 {
		return nil, &ReplyError{Engine: SpamAssassinName, Code: code, Message: sanitize(strings.Join(fields[2:], " "), replyClip)}
	}

	res := &SpamdResult{}
	length := int64(-1)
	sawSpam := false
	for i := 0; ; i++ {
		if i == maxSpamdHeaders {
			return nil, spamdProto("too many header lines", nil)
		}
		line, err := readSpamdLine(br)
		if err != nil {
			return nil, readErr(err, true, "headers")
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := strings.Cut(string(line), ":")
		if !ok {
			return nil, spamdProto("malformed header line", line)
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "content-length":
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || n < 0 {
				return nil, spamdProto("bad Content-length", line)
			}
			if n > max {
				return nil, spamdProto("reply too large", line)
			}
			length = n
		case "spam":
			if err := parseSpamHeader(value, res); err != nil {
				return nil, spamdProto(err.Error(), line)
			}
			sawSpam = true
		}
	}
	if !sawSpam {
		return nil, spamdProto("reply lacks the Spam header", nil)
	}
	if cmd == "CHECK" {
		return res, nil
	}
	var body []byte
	if length >= 0 {
		body = make([]byte, length)
		if _, err := io.ReadFull(br, body); err != nil {
			return nil, readErr(err, true, "body")
		}
	} else {
		// Without Content-length the body runs to the end of the connection.
		if body, err = io.ReadAll(br); err != nil {
			return nil, readErr(err, true, "body")
		}
	}
	switch cmd {
	case "SYMBOLS":
		res.Symbols = parseSymbolList(string(body))
	case "REPORT":
		res.Symbols = parseReport(string(body))
	}
	return res, nil
}

// parseSpamHeader reads "True ; 7.5 / 5.0" ("Yes"/"No" from old spamd).
func parseSpamHeader(v string, res *SpamdResult) error {
	flag, rest, ok := strings.Cut(v, ";")
	if !ok {
		return errors.New("malformed Spam header")
	}
	switch strings.ToLower(strings.TrimSpace(flag)) {
	case "true", "yes":
		res.Spam = true
	case "false", "no":
		res.Spam = false
	default:
		return errors.New("malformed Spam header flag")
	}
	score, threshold, ok := strings.Cut(rest, "/")
	if !ok {
		return errors.New("malformed Spam header scores")
	}
	var err error
	if res.Score, err = parseFinite(score); err != nil {
		return err
	}
	if res.Threshold, err = parseFinite(threshold); err != nil {
		return err
	}
	return nil
}

// parseFinite accepts only finite decimal numbers: ParseFloat would also
// take "NaN", "Inf" and hexadecimal.
func parseFinite(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.ContainsAny(s, "xXnNiI_pP") {
		return 0, fmt.Errorf("bad score %q", sanitize(s, 32))
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("bad score %q", sanitize(s, 32))
	}
	return f, nil
}

// parseSymbolList reads SYMBOLS' comma-separated rule names.
func parseSymbolList(body string) []Symbol {
	var out []Symbol
	for _, name := range strings.Split(body, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if len(out) == maxSymbols {
			break
		}
		out = append(out, Symbol{Name: token(name, maxNameLen)})
	}
	return out
}

// parseReport reads the rule table of SpamAssassin's default report
// template: after a "---- ----..." rule, lines of points, rule name and
// description. Lines that do not fit (wrapped descriptions, a site's own
// template) are skipped, so a custom template yields no symbols rather
// than wrong ones.
func parseReport(body string) []Symbol {
	var out []Symbol
	inTable := false
	for _, line := range strings.Split(body, "\n") {
		line = strings.TrimRight(line, "\r")
		if !inTable {
			inTable = strings.HasPrefix(line, "----")
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		pts, err := parseFinite(f[0])
		if err != nil || token(f[1], maxNameLen) != f[1] {
			continue
		}
		if len(out) == maxSymbols {
			break
		}
		out = append(out, Symbol{Name: f[1], Score: pts, Description: sanitize(strings.Join(f[2:], " "), maxTextLen)})
	}
	return out
}
