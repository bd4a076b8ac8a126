package main

import (
	"bytes"
	"strings"
	"sync"
	"time"

	"github.com/mailgate/mailgate/internal/sink"
)

// tokenHeader carries each test message's unique token (also in Subject).
const tokenHeader = "X-Crash-Token"

// delivery is what the downstream saw of one token.
type delivery struct {
	count    int
	queueIDs []string    // mailgate queue ID of each copy, from its Received header
	times    []time.Time // when each copy arrived
	helos    []string    // the delivering node's host name, per copy
}

// index counts deliveries at the downstream by token. It reads the sink's
// kept messages incrementally; safe for concurrent use.
type index struct {
	sink       *sink.Sink
	rcptDomain string

	mu     sync.Mutex
	seen   int // sink messages already indexed
	byTok  map[string]*delivery
	others int // downstream messages without a token to our domain (DSNs, strays)
}

func newIndex(s *sink.Sink, rcptDomain string) *index {
	return &index{sink: s, rcptDomain: "@" + strings.ToLower(rcptDomain), byTok: map[string]*delivery{}}
}

// refresh indexes messages that arrived since the last call.
func (x *index) refresh() {
	msgs := x.sink.Messages()
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, m := range msgs[x.seen:] {
		tok := ""
		if toUs(m.To, x.rcptDomain) {
			tok = headerValue(m.Data, tokenHeader)
		}
		if tok == "" {
			// A bounce to the client's domain quotes the original headers; it is
			// not a delivery of that token.
			x.others++
			continue
		}
		d := x.byTok[tok]
		if d == nil {
			d = &delivery{}
			x.byTok[tok] = d
		}
		d.count++
		d.queueIDs = append(d.queueIDs, receivedID(m.Data))
		d.times = append(d.times, m.Added)
		d.helos = append(d.helos, m.Helo)
	}
	x.seen = len(msgs)
}

// get returns a copy of the delivery record for tok.
func (x *index) get(tok string) delivery {
	x.mu.Lock()
	defer x.mu.Unlock()
	if d := x.byTok[tok]; d != nil {
		return d.clone()
	}
	return delivery{}
}

// snapshot returns every token's delivery record and the stray count.
func (x *index) snapshot() (map[string]delivery, int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make(map[string]delivery, len(x.byTok))
	for k, d := range x.byTok {
		out[k] = d.clone()
	}
	return out, x.others
}

func (d *delivery) clone() delivery {
	return delivery{count: d.count, queueIDs: append([]string(nil), d.queueIDs...), times: append([]time.Time(nil), d.times...),
		helos: append([]string(nil), d.helos...)}
}

func toUs(rcpts []string, domain string) bool {
	for _, r := range rcpts {
		if strings.HasSuffix(strings.ToLower(r), domain) {
			return true
		}
	}
	return false
}

// headerValue returns the first value of a header field in the message's
// header section (RFC 5322 2.2; no unfolding, our tokens are one word).
func headerValue(msg []byte, name string) string {
	hdr := msg
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		hdr = msg[:i+2]
	}
	for len(hdr) > 0 {
		line := hdr
		if i := bytes.Index(hdr, []byte("\r\n")); i >= 0 {
			line, hdr = hdr[:i], hdr[i+2:]
		} else {
			hdr = nil
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if ok && strings.EqualFold(string(k), name) {
			return strings.TrimSpace(string(v))
		}
	}
	return ""
}

// receivedID extracts the queue ID from mailgate's own Received header
// ("... (mailgate) with ESMTP id ID"), or "?" when absent.
func receivedID(msg []byte) string {
	const mark = "(mailgate) with "
	i := bytes.Index(msg, []byte(mark))
	if i < 0 {
		return "?"
	}
	rest := msg[i+len(mark):]
	_, after, ok := bytes.Cut(rest, []byte(" id "))
	if !ok {
		return "?"
	}
	end := bytes.IndexAny(after, " \r\n;")
	if end < 0 {
		end = len(after)
	}
	return string(after[:end])
}
