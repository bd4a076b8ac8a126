package jamail

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// mailer is the mail software a person's message is written with. Each
// writes its own header naming it and its own forms of Message-ID and MIME
// boundary, so a message's fingerprint is one the software really leaves:
// Outlook's Message-IDs are hex numbers joined by '$' and it adds
// Thread-Index and Content-Language, Thunderbird names itself in
// User-Agent, and so on. The zero mailer is webmail or a system that
// names no software.
type mailer struct {
	name string // the X-Mailer or User-Agent value; "" names none
	kind mailerKind
}

type mailerKind int

const (
	otherMailer mailerKind = iota
	outlook
	becky
	thunderbird
	appleMail
)

var mailers = []mailer{
	{"Microsoft Outlook 16.0", outlook},
	{"Becky! ver. 2.81.04 [ja]", becky},
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Thunderbird/115.8.0", thunderbird},
	{"Microsoft Office Outlook 12.0", outlook},
	{"Apple Mail (2.3774.500.171.1.1)", appleMail},
	{}, {}, {},
}

// headers returns the header fields naming the software and its
// Message-ID for a message written at now from domain.
func (m mailer) headers(r *rand.Rand, now time.Time, domain string) string {
	var h strings.Builder
	switch m.kind {
	case outlook:
		// A counter, then the send time as a Windows FILETIME split in two
		// and a random part, each in lower-case hex.
		ft := uint64(now.UnixNano()/100) + 116444736000000000
		fmt.Fprintf(&h, "Message-ID: <%04x01%06x$%08x$%08x$@%s>\r\n", r.IntN(0x400), ft>>32&0xffffff, uint32(ft), r.Uint32(), domain)
	case becky:
		fmt.Fprintf(&h, "Message-ID: <%s.%04X.%08X@%s>\r\n", now.Format("20060102150405"), r.IntN(0x10000), r.Uint32(), domain)
	case thunderbird:
		fmt.Fprintf(&h, "Message-ID: <%s@%s>\r\n", uuid(r, false), domain)
	case appleMail:
		fmt.Fprintf(&h, "Message-ID: <%s@%s>\r\n", uuid(r, true), domain)
	default:
		fmt.Fprintf(&h, "Message-ID: <%d.%s@%s>\r\n", now.Unix(), randomUser(r), domain)
	}
	switch m.kind {
	case thunderbird:
		fmt.Fprintf(&h, "User-Agent: %s\r\nContent-Language: ja\r\n", m.name)
	case outlook:
		b := make([]byte, 22)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		fmt.Fprintf(&h, "X-Mailer: %s\r\nThread-Index: %s\r\nContent-Language: ja\r\n", m.name, base64.StdEncoding.EncodeToString(b))
	default:
		if m.name != "" {
			fmt.Fprintf(&h, "X-Mailer: %s\r\n", m.name)
		}
	}
	return h.String()
}

// boundary returns a MIME boundary of the software's form for a multipart
// of the given kind ("alt" or "mix").
func (m mailer) boundary(r *rand.Rand, kind string) string {
	switch m.kind {
	case outlook:
		return fmt.Sprintf("----=_NextPart_000_%04X_01D%05X.%08X", r.IntN(0x10000), r.IntN(0x100000), r.Uint32())
	case thunderbird:
		const alnum = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		b := make([]byte, 24)
		for i := range b {
			b[i] = alnum[r.IntN(len(alnum))]
		}
		return "------------" + string(b)
	case appleMail:
		return "Apple-Mail=_" + uuid(r, true)
	}
	return kind + "-" + randomUser(r)
}

// uuid is a random (version 4) UUID, upper-case when upper.
func uuid(r *rand.Rand, upper bool) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	s := fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
	if upper {
		s = strings.ToUpper(s)
	}
	return s
}
