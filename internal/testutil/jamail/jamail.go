// Package jamail generates a reproducible corpus of Japanese mail for
// evaluating the spam engine: ordinary business mail (meetings, quotes,
// invoices, orders, internal notices, replies with quotes, opt-in
// newsletters, real carriers' and card issuers' notices linking to their
// own domains) and Japanese spam (advertising with and without the
// 未承諾広告※ marker, dating, investment schemes, phishing in the name of
// banks, card issuers, shops, delivery companies, phone carriers and tax
// offices with look-alike or throw-away domains, sextortion, fake
// invoices, cold sales pitches).
//
// The text comes from hand-written templates filled with names, companies,
// dates and amounts drawn from a seeded generator, and is encoded as
// Japanese mail software sends it: ISO-2022-JP (7bit), Shift_JIS (8bit or
// base64) or UTF-8 (base64, quoted-printable or 8bit), with RFC 2047
// encoded-word Subjects, display names and attachment names, and HTML
// alternatives for newsletters and much of the spam. A person's mail
// carries the fingerprint of the software that wrote it (Outlook, Becky!,
// Thunderbird, Apple Mail or webmail): its header naming the software and
// its forms of Message-ID and MIME boundary. The same seed gives the same
// messages on every machine.
//
// It is test and benchmark data: the messages are realistic in form and
// wording but synthetic, and the companies and addresses are invented
// (except the real brands that phishing imitates and whose own notices are
// part of the legitimate mail).
package jamail

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Message is one generated message.
type Message struct {
	// Name is a file name for it: "ham-0001-meeting.eml".
	Name    string
	Spam    bool
	Kind    string // template family, e.g. "invoice", "phish-bank"
	Charset string // charset of its text parts
	Raw     []byte // RFC 5322, CRLF line endings
}

// base is the start of the period the messages are dated in.
var base = time.Date(2025, 4, 1, 9, 0, 0, 0, time.FixedZone("JST", 9*3600))

// Generate returns nHam legitimate and nSpam unwanted messages (ham
// first), a function of seed alone.
func Generate(seed uint64, nHam, nSpam int) []Message {
	r := rand.New(rand.NewPCG(seed, 0x6a616d61696c))
	out := make([]Message, 0, nHam+nSpam)
	hw := 0
	for _, k := range hamKinds {
		hw += k.weight
	}
	sw := 0
	for _, k := range spamKinds {
		sw += k.weight
	}
	for i := range nHam {
		now := base.Add(time.Duration(r.IntN(180*24*3600)) * time.Second)
		x := r.IntN(hw)
		for _, k := range hamKinds {
			if x < k.weight {
				out = append(out, assemble(r, now, fmt.Sprintf("ham-%04d-%s.eml", i+1, k.name), false, k.make(r, now)))
				break
			}
			x -= k.weight
		}
	}
	for i := range nSpam {
		now := base.Add(time.Duration(r.IntN(180*24*3600)) * time.Second)
		x := r.IntN(sw)
		for _, k := range spamKinds {
			if x < k.weight {
				out = append(out, assemble(r, now, fmt.Sprintf("spam-%04d-%s.eml", i+1, k.name), true, k.make(r, now)))
				break
			}
			x -= k.weight
		}
	}
	return out
}

var recipients = []string{"yamada", "sato.h", "k-tanaka", "info", "sales", "m.suzuki", "keiri", "soumu"}

// assemble encodes a draft into a message as it arrives at the gateway.
func assemble(r *rand.Rand, now time.Time, fileName string, spam bool, d draft) Message {
	cs := pick(r, d.charsets)
	cte := "7bit"
	switch cs {
	case ShiftJIS:
		cte = pick(r, []string{"8bit", "base64"})
	case UTF8:
		cte = pick(r, []string{"base64", "base64", "quoted-printable", "8bit"})
	}
	fromDom := d.fromAddr[strings.LastIndexByte(d.fromAddr, '@')+1:]
	to := pick(r, recipients) + "@example.co.jp"
	relayIP := fmt.Sprintf("%d.%d.%d.%d", 1+r.IntN(222), r.IntN(256), r.IntN(256), 1+r.IntN(254))
	var h strings.Builder
	fmt.Fprintf(&h, "Received: from mail.%s (mail.%s [%s])\r\n\tby mx.example.co.jp with ESMTPS id %s\r\n\tfor <%s>; %s\r\n",
		fromDom, fromDom, relayIP, randomUser(r), to, now.Add(time.Duration(2+r.IntN(30))*time.Second).Format(time.RFC1123Z))
	fmt.Fprintf(&h, "From: %s\r\n", address(cs, d.fromName, d.fromAddr))
	fmt.Fprintf(&h, "To: %s\r\n", to)
	if d.replyTo != "" {
		fmt.Fprintf(&h, "Reply-To: %s\r\n", d.replyTo)
	}
	fmt.Fprintf(&h, "Subject: %s\r\n", encodedWords(cs, d.subject))
	fmt.Fprintf(&h, "Date: %s\r\n", now.Format(time.RFC1123Z))
	h.WriteString(d.mailer.headers(r, now, fromDom))
	h.WriteString("MIME-Version: 1.0\r\n")

	textPart := func() string {
		return fmt.Sprintf("Content-Type: text/plain; charset=%s\r\nContent-Transfer-Encoding: %s\r\n\r\n%s", cs, cte, body(cs, cte, d.text))
	}
	htmlPart := func() string {
		return fmt.Sprintf("Content-Type: text/html; charset=%s\r\nContent-Transfer-Encoding: %s\r\n\r\n%s", cs, cte, body(cs, cte, d.html))
	}
	var content string
	switch {
	case d.html != "" && d.text != "":
		b := d.mailer.boundary(r, "alt")
		content = "Content-Type: multipart/alternative; boundary=\"" + b + "\"\r\n\r\n--" + b + "\r\n" + textPart() + "--" + b + "\r\n" + htmlPart() + "--" + b + "--\r\n"
	case d.html != "":
		content = htmlPart()
	default:
		content = textPart()
	}
	if len(d.attachments) > 0 {
		b := d.mailer.boundary(r, "mix")
		var m strings.Builder
		m.WriteString("Content-Type: multipart/mixed; boundary=\"" + b + "\"\r\n\r\n--" + b + "\r\n" + content)
		for _, a := range d.attachments {
			ct := "application/octet-stream"
			data := []byte("PK\x03\x04 synthetic archive " + randomUser(r))
			switch {
			case strings.HasSuffix(a, ".pdf"):
				ct = "application/pdf"
				data = []byte("%PDF-1.4\n% synthetic attachment " + randomUser(r) + "\n%%EOF\n")
			case strings.HasSuffix(a, ".html"), strings.HasSuffix(a, ".htm"):
				ct = "text/html"
				data = []byte("<html><body><form action=\"https://" + junkDomain(r) + "/post\"><input name=\"pw\"></form></body></html>")
			}
			fn := encodedWord(cs, a)
			fmt.Fprintf(&m, "--%s\r\nContent-Type: %s; name=\"%s\"\r\nContent-Disposition: attachment; filename=\"%s\"\r\nContent-Transfer-Encoding: base64\r\n\r\n%s\r\n",
				b, ct, fn, fn, base64.StdEncoding.EncodeToString(data))
		}
		m.WriteString("--" + b + "--\r\n")
		content = m.String()
	}
	return Message{Name: fileName, Spam: spam, Kind: d.kind, Charset: cs, Raw: []byte(h.String() + content)}
}
