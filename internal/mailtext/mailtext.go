// Package mailtext turns a raw RFC 5322 message into decoded text for every
// content check in mailgate: subject and address lists, spam tokens, DLP body
// rules and archive search.
//
// Parse streams the message once, walks the MIME tree with Walk (RFC 2045,
// 2046, descending into message/rfc822), undoes base64 and quoted-printable,
// converts every charset to UTF-8 (Japanese first-class: lenient ISO-2022-JP
// with CP5022x extensions, Shift_JIS as CP932, EUC-JP, and sniffing of raw
// 8-bit Japanese), renders HTML as text and collects its links.
//
// Hostile input is bounded by Limits. When a bound is hit the walk stops
// descending or reading, the matching Problem is recorded and
// Message.Unscannable is set: the content was not fully seen, so callers must
// not treat such a message as clean. Malformed input never makes Parse fail
// or panic; it yields Problems.
//
// The MIME splitter is our own rather than go-message's reader: that one
// reads part headers without a size bound and gives up on the first
// malformed delimiter, while a gateway must bound memory and keep reading
// what a mail reader would still show. A single line scanner keeps the
// boundaries of all open multiparts, so an outer boundary also ends an
// unterminated inner one, and each byte is scanned once whatever the depth.
// go-message's charset package decodes the non-Japanese charsets.
//
// Walk is the one MIME walker of mailgate: the rewriter, the virus scan and
// the console preview visit it too (Visitor), so a part path Parse reports
// names the same entity for all of them.
package mailtext

import (
	"strings"
)

// Limits bounds the work and memory of Parse. A zero or negative field takes
// its DefaultLimits value.
type Limits struct {
	// MaxDepth is the deepest nesting of multipart and message/rfc822
	// containers that is descended into.
	MaxDepth int `json:"max_depth"`
	// MaxParts is the number of MIME entities (containers included) walked.
	MaxParts int `json:"max_parts"`
	// MaxHeaderBytes bounds one header section (message or part).
	MaxHeaderBytes int `json:"max_header_bytes"`
	// MaxTextBytes bounds the decoded text kept over all parts.
	MaxTextBytes int64 `json:"max_text_bytes"`
	// MaxDecodedBytes bounds the total bytes produced by transfer decoding
	// over all parts, attachments included.
	MaxDecodedBytes int64 `json:"max_decoded_bytes"`
	// MaxLinks bounds the HTML links collected.
	MaxLinks int `json:"max_links"`
}

// DefaultLimits returns limits that fit ordinary mail with a wide margin.
func DefaultLimits() Limits {
	return Limits{
		MaxDepth:        100,
		MaxParts:        10000,
		MaxHeaderBytes:  1 << 20,
		MaxTextBytes:    4 << 20,
		MaxDecodedBytes: 200 << 20,
		MaxLinks:        10000,
	}
}

// WithDefaults returns l with every zero or negative field set to its
// DefaultLimits value, the limits Parse actually applies. Walkers that must
// stop where Parse stops use it.
func (l Limits) WithDefaults() Limits { return l.withDefaults() }

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxParts <= 0 {
		l.MaxParts = d.MaxParts
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if l.MaxTextBytes <= 0 {
		l.MaxTextBytes = d.MaxTextBytes
	}
	if l.MaxDecodedBytes <= 0 {
		l.MaxDecodedBytes = d.MaxDecodedBytes
	}
	if l.MaxLinks <= 0 {
		l.MaxLinks = d.MaxLinks
	}
	return l
}

// ProblemKind names a class of problem found while parsing.
type ProblemKind string

const (
	// Bounds: each of these sets Message.Unscannable.
	ProblemDepthExceeded  ProblemKind = "DepthExceeded"  // a container nested deeper than MaxDepth was not opened
	ProblemTooManyParts   ProblemKind = "TooManyParts"   // MaxParts reached; the rest of the message was not read
	ProblemDecodedLimit   ProblemKind = "DecodedLimit"   // MaxDecodedBytes reached; the rest was not read
	ProblemHeaderTooLarge ProblemKind = "HeaderTooLarge" // a header section beyond MaxHeaderBytes was cut
	ProblemTruncated      ProblemKind = "Truncated"      // text beyond MaxTextBytes (or an oversized HTML token) was dropped
	ProblemTooManyLinks   ProblemKind = "TooManyLinks"   // links beyond MaxLinks were dropped

	// Malformed input: the content was still seen.
	ProblemBadBase64           ProblemKind = "BadBase64"           // non-alphabet bytes or a dangling sextet
	ProblemBadQP               ProblemKind = "BadQP"               // malformed quoted-printable escapes
	ProblemBadCharset          ProblemKind = "BadCharset"          // unknown, missing-but-needed or wrong charset label
	ProblemBadTransferEncoding ProblemKind = "BadTransferEncoding" // unknown Content-Transfer-Encoding, read as is
	ProblemDuplicateHeader     ProblemKind = "DuplicateHeader"     // a field allowed once appears again (Detail names it)
	ProblemMalformedHeader     ProblemKind = "MalformedHeader"     // a line that is no header field, a bad Content-Type
	ProblemMalformedMIME       ProblemKind = "MalformedMIME"       // missing boundary, unterminated multipart
	ProblemTooManyProblems     ProblemKind = "TooManyProblems"     // further problems were not recorded
)

// Unscannable reports whether the kind means content went unseen.
func (k ProblemKind) Unscannable() bool {
	switch k {
	case ProblemDepthExceeded, ProblemTooManyParts, ProblemDecodedLimit,
		ProblemHeaderTooLarge, ProblemTruncated, ProblemTooManyLinks:
		return true
	}
	return false
}

// Problem is one thing found wrong with a message.
type Problem struct {
	Kind   ProblemKind `json:"kind"`
	Part   string      `json:"part,omitempty"`   // Path of the entity, "" for the top-level header
	Detail string      `json:"detail,omitempty"` // human-readable; for DuplicateHeader the field name
}

// Part is one MIME entity of the message. Leaf parts and message/rfc822
// parts are listed; multipart containers only when they were not opened
// (DepthExceeded).
type Part struct {
	// Path is the IMAP section number (RFC 3501 6.4.5): "1", "2.1"; the
	// body of a single-part message is "1".
	Path        string `json:"path"`
	ContentType string `json:"content_type"` // lower-case type/subtype
	// Charset is the charset the text was decoded with, which differs from
	// the declared one when that was missing or wrong (see Problems).
	Charset     string `json:"charset,omitempty"`
	Filename    string `json:"filename,omitempty"` // decoded (RFC 2231 or RFC 2047), at most 1 KiB
	Disposition string `json:"disposition,omitempty"`
	Size        int64  `json:"size"` // bytes after transfer decoding
	// IsAttachment is true for Content-Disposition: attachment, for any part
	// with a file name, and for non-text leaves.
	IsAttachment bool          `json:"is_attachment"`
	Text         string        `json:"text,omitempty"` // text/* parts only; HTML rendered as text
	Problems     []ProblemKind `json:"problems,omitempty"`
	// Payload, for a text part, names the first thing in it that is not
	// text to read and that a reader's software may save or run: a file
	// encoded inside the text ("uuencode", "yenc", "binhex"), the EICAR
	// anti-virus test string ("eicar"), or in HTML an element or link that
	// runs or embeds something ("script", "object", "embed", "applet",
	// "iframe", "frame", "frameset", "script-link", "data-link"). Empty when
	// there is none. The virus check gives every message with one to the
	// virus scanner.
	Payload string `json:"payload,omitempty"`
	// Head is the first bytes (at most HeadLen) of a leaf's body after
	// transfer decoding, for sniffing content whatever its declared type
	// (an archive sent as text/plain); empty for an opened message.
	Head string `json:"-"`
}

// HeadLen is the most bytes Part.Head keeps.
const HeadLen = 8

// Message is the decoded view of one message. Every string is valid UTF-8.
type Message struct {
	Subject string    `json:"subject"` // the first Subject field, decoded
	From    []Address `json:"from,omitempty"`
	ReplyTo []Address `json:"reply_to,omitempty"`
	To      []Address `json:"to,omitempty"`
	Cc      []Address `json:"cc,omitempty"`
	// Header is the top-level header in order, values decoded with
	// DecodeHeader (including structured fields, for matching).
	Header []HeaderField `json:"header"`
	// Text is the text of all text parts, in order, separated by newlines,
	// at most MaxTextBytes. Of a multipart/alternative only the plain-text
	// branch counts (the richer one if the plain one is blank); every
	// branch's text stays available in Parts.
	Text string `json:"text"`
	// HTMLLinks are the links of every HTML part, alternatives included.
	HTMLLinks []Link    `json:"html_links,omitempty"`
	Parts     []Part    `json:"parts"`
	Problems  []Problem `json:"problems,omitempty"`
	// Unscannable is true when a bound was hit and part of the content was
	// not seen: callers must not treat the message as clean.
	Unscannable bool `json:"unscannable"`
}

// HeaderValues returns the decoded values of every top-level field named
// name (case-insensitive), in order.
func (m *Message) HeaderValues(name string) []string {
	var out []string
	for _, f := range m.Header {
		if strings.EqualFold(f.Name, name) {
			out = append(out, f.Value)
		}
	}
	return out
}

// HasProblem reports whether a problem of kind k was recorded.
func (m *Message) HasProblem(k ProblemKind) bool {
	for _, p := range m.Problems {
		if p.Kind == k {
			return true
		}
	}
	return false
}
