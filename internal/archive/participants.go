package archive

import (
	"bytes"
	"context"
	"slices"
	"strings"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// NormAddr is the form addresses are compared in: trimmed, without angle
// brackets, lower case (the whole address: mail systems treat local parts
// without regard to case in practice, and end users must find their mail
// whatever case a sender typed).
func NormAddr(s string) string {
	return strings.ToLower(strings.Trim(strings.TrimSpace(s), "<>"))
}

// headerAddrs lists the From, To and Cc headers' addresses.
func headerAddrs(m *mailtext.Message) []string {
	var out []string
	for _, as := range [][]mailtext.Address{m.From, m.To, m.Cc} {
		for _, a := range as {
			if a.Addr != "" {
				out = append(out, a.Addr)
			}
		}
	}
	return out
}

// addressSet merges header and envelope addresses into the sorted,
// distinct, normalised list of Doc.Addresses.
func addressSet(header []string, meta Meta) []string {
	var out []string
	add := func(a string) {
		if a = NormAddr(a); a != "" && strings.Contains(a, "@") {
			out = append(out, a)
		}
	}
	for _, a := range header {
		add(a)
	}
	add(meta.MailFrom)
	for _, r := range meta.Rcpts {
		add(r.Addr)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// maxHeaderScan bounds the bytes read for a message's header when only
// its addresses are wanted.
const maxHeaderScan = 1 << 20

// Participants returns the exact addresses an archived message is from or
// to, as its search document holds them (Doc.Addresses): the envelope
// sender and recipients of meta and the addresses of the From, To and Cc
// headers of raw. Only the header is read.
func Participants(ctx context.Context, raw []byte, meta Meta) []string {
	hdr := raw
	if len(hdr) > maxHeaderScan {
		hdr = hdr[:maxHeaderScan]
	}
	// The header ends at the first empty line; the body is not needed.
	for _, sep := range [][]byte{[]byte("\r\n\r\n"), []byte("\n\n")} {
		if i := bytes.Index(hdr, sep); i >= 0 {
			hdr = hdr[:i+len(sep)]
			break
		}
	}
	var header []string
	if m, _ := mailtext.Parse(ctx, bytes.NewReader(hdr), mailtext.Limits{MaxTextBytes: 1}); m != nil {
		header = headerAddrs(m)
	}
	return addressSet(header, meta)
}

// IsParticipant reports whether addr is exactly one of addrs, ignoring
// case.
func IsParticipant(addrs []string, addr string) bool {
	addr = NormAddr(addr)
	if addr == "" {
		return false
	}
	for _, a := range addrs {
		if NormAddr(a) == addr {
			return true
		}
	}
	return false
}
