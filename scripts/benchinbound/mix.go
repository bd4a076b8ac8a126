package main

import (
	"archive/zip"
	"bytes"
	"crypto"
	"encoding/base64"
	"fmt"
	"math"
	"math/rand/v2"
	"mime"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"golang.org/x/text/encoding/japanese"

	"github.com/mailgate/mailgate/internal/testutil/clamdtest"
)

// class is the kind of a generated message; it decides the expected verdict.
type class int

const (
	clsNewsletter class = iota // DKIM-signed bulk mail, SPF and DMARC as the domain publishes
	clsPlain                   // business mail without DKIM
	clsJapanese                // ISO-2022-JP body, encoded-word Subject and From
	clsPDF                     // binary attachment (base64)
	clsZIP                     // small ZIP attachment
	clsEICAR                   // the EICAR test string attached (bare or inside a ZIP)
	clsSpoof                   // header From of a p=reject domain, no DKIM, other MAIL FROM
	clsBEC                     // display name of one of the tenant's people, outside address
	clsListDeny                // Subject on the tenant's deny list (discard)
	numClasses
)

func (c class) String() string {
	return [numClasses]string{"newsletter", "plain", "japanese", "pdf", "zip", "eicar", "spoof", "bec", "list-deny"}[c]
}

// message is one generated message with its envelope.
type message struct {
	seq   int    // position in the whole sequence (warm-up first)
	id    string // X-Bench-Id value, unique per message
	cls   class
	from  string
	rcpts []string
	data  []byte
	// marker is a line of the infected part's encoding (EICAR class); it
	// must not reach the sink in the pipeline run.
	marker string
}

// benchHeader carries the message's id through mailgate to the sink.
const benchHeader = "X-Bench-Id"

// person is a user of the tenant with the display name set for the
// impersonation check ("" for none).
type person struct{ addr, name string }

func tenantPeople() []person {
	return []person{
		{"alice@" + tenantDomain, "山田 太郎"},
		{"bob@" + tenantDomain, "佐藤 花子"},
		{"carol@" + tenantDomain, "Carol Tanaka"},
		{"dave@" + tenantDomain, "鈴木 一郎"},
		{"erin@" + tenantDomain, ""},
		{"frank@" + tenantDomain, ""},
	}
}

// mixer generates the message sequence. Everything except DKIM signatures
// (fresh keys each run, t= the signing time) is a function of the seed.
type mixer struct {
	ds     []*senderDomain
	people []person
	seed   uint64
	base   time.Time
}

// generate returns messages seq 0..n-1.
func (mx *mixer) generate(n int) ([]*message, error) {
	out := make([]*message, n)
	for i := range n {
		m, err := mx.one(i)
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		out[i] = m
	}
	return out, nil
}

// classOf spreads the rare classes evenly (so any window of a few hundred
// messages has them) and draws the common ones by weight.
func classOf(seq int, rng *rand.Rand) class {
	switch {
	case seq%250 == 125: // 4 per 1000
		return clsEICAR
	case seq%100 == 37:
		return clsSpoof
	case seq%100 == 71:
		return clsBEC
	case seq%200 == 13:
		return clsListDeny
	}
	r := rng.IntN(100)
	switch {
	case r < 35:
		return clsNewsletter
	case r < 60:
		return clsPlain
	case r < 78:
		return clsJapanese
	case r < 90:
		return clsPDF
	default:
		return clsZIP
	}
}

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

func (mx *mixer) one(seq int) (*message, error) {
	rng := rand.New(rand.NewPCG(mx.seed, uint64(seq)))
	m := &message{seq: seq, id: fmt.Sprintf("%06d", seq), cls: classOf(seq, rng)}
	// Sizes log-uniform in 5..50 KB.
	target := int(math.Exp(math.Log(5<<10) + rng.Float64()*(math.Log(50<<10)-math.Log(5<<10))))
	nr := 1
	if r := rng.IntN(10); r >= 9 {
		nr = 3
	} else if r >= 7 {
		nr = 2
	}
	for _, j := range rng.Perm(len(mx.people))[:nr] {
		m.rcpts = append(m.rcpts, mx.people[j].addr)
	}
	date := mx.base.Add(time.Duration(seq) * 7 * time.Second)
	b := &builder{rng: rng, m: m, date: date}
	var d *senderDomain
	switch m.cls {
	case clsNewsletter:
		d = domainByName(mx.ds, pick(rng, []string{"shop-news.test", "travel-deals.test", "bank-notice.test", "techweekly.test",
			"coupon-mail.test", "event-info.test", "cloud-status.test", "gov-notice.test"}))
		b.newsletter(d, target)
	case clsPlain:
		d = domainByName(mx.ds, pick(rng, []string{"partner-corp.test", "supplier.test", "univ-lab.test", "smallbiz.test",
			"legacy-mail.test", "consult.test"}))
		b.plain(d, target)
	case clsJapanese:
		d = domainByName(mx.ds, pick(rng, []string{"mag-jp.test", "kaisha-a.test", "torihiki.test"}))
		b.japanese(d, target)
	case clsPDF:
		d = domainByName(mx.ds, pick(rng, []string{"partner-corp.test", "supplier.test", "kaisha-a.test", "consult.test", "torihiki.test"}))
		b.pdf(d, target)
	case clsZIP:
		d = domainByName(mx.ds, pick(rng, []string{"partner-corp.test", "supplier.test", "univ-lab.test", "kaisha-a.test"}))
		b.zip(d, target)
	case clsEICAR:
		d = domainByName(mx.ds, pick(rng, []string{"smallbiz.test", "consult.test"}))
		b.eicar(d, target, (seq/250)%2 == 1)
	case clsSpoof:
		d = domainByName(mx.ds, pick(rng, []string{"bank-notice.test", "gov-notice.test"}))
		b.spoof(d, target)
	case clsBEC:
		d = domainByName(mx.ds, becDomain)
		b.bec(mx.people, target)
	case clsListDeny:
		d = domainByName(mx.ds, adDomain)
		b.listDeny(d, target)
	}
	data := b.bytes()
	if d.signer != nil && b.signed {
		var err error
		if data, err = sign(data, d); err != nil {
			return nil, err
		}
	}
	m.data = data
	return m, nil
}

// sign adds a DKIM-Signature (RFC 6376; relaxed/relaxed, SHA-256) of d.
func sign(data []byte, d *senderDomain) ([]byte, error) {
	var out bytes.Buffer
	err := dkim.Sign(&out, bytes.NewReader(data), &dkim.SignOptions{
		Domain: d.name, Selector: d.selector, Signer: d.signer, Hash: crypto.SHA256,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
		HeaderKeys: []string{"From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type", "List-Unsubscribe"},
	})
	if err != nil {
		return nil, fmt.Errorf("DKIM signing for %s: %w", d.name, err)
	}
	return out.Bytes(), nil
}

// builder writes one message with CRLF line ends.
type builder struct {
	rng    *rand.Rand
	m      *message
	date   time.Time
	hdr    bytes.Buffer
	body   bytes.Buffer
	signed bool
}

func (b *builder) bytes() []byte {
	var out bytes.Buffer
	out.Write(b.hdr.Bytes())
	out.WriteString("\r\n")
	out.Write(b.body.Bytes())
	return out.Bytes()
}

func (b *builder) h(name, value string) { fmt.Fprintf(&b.hdr, "%s: %s\r\n", name, value) }

// common writes the header fields every message has.
func (b *builder) common(envFrom, from, subject, msgDomain string) {
	b.m.from = envFrom
	b.h("Received", fmt.Sprintf("from out-%d.%s (out-%d.%s [192.0.2.%d])\r\n\tby %s with ESMTPS id %08x\r\n\tfor <%s>; %s",
		b.m.seq%7, msgDomain, b.m.seq%7, msgDomain, 10+b.m.seq%200, heloName, b.rng.Uint32(), b.m.rcpts[0], b.date.Add(-2*time.Second).Format(time.RFC1123Z)))
	b.h("Date", b.date.Format(time.RFC1123Z))
	b.h("From", from)
	b.h("To", strings.Join(b.m.rcpts, ", "))
	b.h("Subject", subject)
	b.h("Message-ID", fmt.Sprintf("<%s.%s.%08x@%s>", b.date.Format("20060102150405"), b.m.id, b.rng.Uint32(), msgDomain))
	b.h(benchHeader, b.m.id)
	b.h("MIME-Version", "1.0")
}

func (b *builder) newsletter(d *senderDomain, target int) {
	b.signed = true
	subj := fmt.Sprintf(pick(b.rng, []string{"Weekly deals: %d%% off selected items", "Your monthly newsletter, issue %d",
		"Top stories this week (%d)", "Event reminder: %d seats left", "Account notice #%d"}), 5+b.rng.IntN(90))
	b.common(fmt.Sprintf("bounces+%s@%s", b.m.id, d.name), mailbox(d.display, d.local+"@"+d.name), subj, d.name)
	b.h("List-Unsubscribe", fmt.Sprintf("<https://%s/unsub?u=%s>, <mailto:unsub-%s@%s>", d.name, b.m.id, b.m.id, d.name))
	b.h("List-Id", fmt.Sprintf("<news.%s>", d.name))
	bd := b.boundary()
	b.h("Content-Type", fmt.Sprintf("multipart/alternative; boundary=%q", bd))
	fmt.Fprintf(&b.body, "--%s\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n", bd)
	b.body.WriteString(englishText(b.rng, target*3/10))
	fmt.Fprintf(&b.body, "\r\n--%s\r\nContent-Type: text/html; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n", bd)
	b.body.WriteString(htmlText(b.rng, d.name, target*6/10))
	fmt.Fprintf(&b.body, "\r\n--%s--\r\n", bd)
}

func (b *builder) plain(d *senderDomain, target int) {
	subj := fmt.Sprintf(pick(b.rng, []string{"Re: meeting notes %d", "Quarterly report draft v%d", "Question about order %d",
		"Fwd: project schedule (%d)", "Proposal follow-up %d"}), 1+b.rng.IntN(900))
	b.common(fmt.Sprintf("%s@%s", d.local, d.name), mailbox(d.display, d.local+"@"+d.name), subj, d.name)
	b.h("Content-Type", "text/plain; charset=us-ascii; format=flowed")
	b.h("Content-Transfer-Encoding", "7bit")
	b.body.WriteString(englishText(b.rng, target*9/10))
}

func (b *builder) japanese(d *senderDomain, target int) {
	b.signed = true
	subj := fmt.Sprintf("%s No.%d", pick(b.rng, japaneseSubjects), 1+b.rng.IntN(999))
	b.common(fmt.Sprintf("%s@%s", d.local, d.name), mailbox(d.display, d.local+"@"+d.name), encodeJIS(subj), d.name)
	b.h("Content-Type", "text/plain; charset=ISO-2022-JP")
	b.h("Content-Transfer-Encoding", "7bit")
	b.body.WriteString(japaneseText(b.rng, target*9/10))
}

// attachmentMail writes a multipart/mixed message with a short text body
// and one base64 attachment; it returns the attachment's first encoded line.
func (b *builder) attachmentMail(ctype, disposition string, payload []byte, textLen int) string {
	bd := b.boundary()
	b.h("Content-Type", fmt.Sprintf("multipart/mixed; boundary=%q", bd))
	fmt.Fprintf(&b.body, "This is a multi-part message in MIME format.\r\n\r\n--%s\r\n", bd)
	if b.rng.IntN(2) == 0 {
		b.body.WriteString("Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n")
		b.body.WriteString(englishText(b.rng, textLen))
	} else {
		b.body.WriteString("Content-Type: text/plain; charset=ISO-2022-JP\r\nContent-Transfer-Encoding: 7bit\r\n\r\n")
		b.body.WriteString(japaneseText(b.rng, textLen))
	}
	fmt.Fprintf(&b.body, "\r\n--%s\r\nContent-Type: %s\r\nContent-Disposition: %s\r\nContent-Transfer-Encoding: base64\r\n\r\n", bd, ctype, disposition)
	enc := base64Lines(payload)
	b.body.WriteString(enc)
	fmt.Fprintf(&b.body, "--%s--\r\n", bd)
	first, _, _ := strings.Cut(enc, "\r\n")
	return first
}

func (b *builder) pdf(d *senderDomain, target int) {
	subj := pick(b.rng, []string{"Invoice for June", "請求書送付のお知らせ", "Signed contract", "見積書の送付"})
	b.common(fmt.Sprintf("%s@%s", d.local, d.name), mailbox(d.display, d.local+"@"+d.name), encodeJIS(subj), d.name)
	name := pick(b.rng, []string{`filename="invoice-2025-06.pdf"`, `filename*=UTF-8''%E8%AB%8B%E6%B1%82%E6%9B%B8.pdf`, `filename="contract_signed.pdf"`})
	raw := max(target*7/10*3/4, 1024)
	b.attachmentMail(`application/pdf; name="document.pdf"`, "attachment; "+name, fakePDF(b.rng, raw), max(target/5, 600))
}

func (b *builder) zip(d *senderDomain, target int) {
	subj := pick(b.rng, []string{"Monthly data export", "資料一式（ZIP）", "Photos from the event", "Log files"})
	b.common(fmt.Sprintf("%s@%s", d.local, d.name), mailbox(d.display, d.local+"@"+d.name), encodeJIS(subj), d.name)
	z := buildZIP([]zipFile{
		{"report.csv", csvText(b.rng, target)},
		{"notes.txt", []byte(englishText(b.rng, 2000))},
		{"image.dat", randomBytes(b.rng, b.rng.IntN(target/4+1))},
	})
	b.attachmentMail(`application/zip; name="export.zip"`, `attachment; filename="export.zip"`, z, max(target/6, 500))
}

func (b *builder) eicar(d *senderDomain, target int, inZIP bool) {
	b.common(fmt.Sprintf("%s@%s", d.local, d.name), mailbox(d.display, d.local+"@"+d.name), "Tools you asked for", d.name)
	if inZIP {
		z := buildZIP([]zipFile{{"readme.txt", []byte(englishText(b.rng, 800))}, {"tool.com", clamdtest.EICAR()}})
		b.m.marker = b.attachmentMail(`application/zip; name="tools.zip"`, `attachment; filename="tools.zip"`, z, target*8/10)
		return
	}
	b.m.marker = b.attachmentMail(`application/octet-stream; name="tool.com"`, `attachment; filename="tool.com"`, clamdtest.EICAR(), target*8/10)
}

func (b *builder) spoof(d *senderDomain, target int) {
	b.common(fmt.Sprintf("bounce-%s@%s", b.m.id, spoofRelay), mailbox(d.display, "security@"+d.name),
		"Your account will be suspended", d.name)
	b.h("Content-Type", "text/html; charset=us-ascii")
	b.h("Content-Transfer-Encoding", "7bit")
	b.body.WriteString(htmlText(b.rng, "login-verify.test", min(target, 12<<10)))
}

func (b *builder) bec(people []person, target int) {
	var named []person
	for _, p := range people {
		if p.name != "" {
			named = append(named, p)
		}
	}
	who := pick(b.rng, named)
	display := pick(b.rng, []string{who.name, strings.ReplaceAll(who.name, " ", "") + " 様"})
	local := fmt.Sprintf("office%03d", b.rng.IntN(1000))
	subj := pick(b.rng, []string{"【至急】お振込先変更のお願い", "Urgent: wire transfer today", "至急ご対応ください"})
	b.common(local+"@"+becDomain, mailbox(display, local+"@"+becDomain), encodeJIS(subj), becDomain)
	b.h("Content-Type", "text/plain; charset=ISO-2022-JP")
	b.h("Content-Transfer-Encoding", "7bit")
	b.body.WriteString(japaneseText(b.rng, min(target, 6<<10)))
}

func (b *builder) listDeny(d *senderDomain, target int) {
	subj := fmt.Sprintf("【未承諾広告】今だけ特価セール %d", b.rng.IntN(100))
	b.common(fmt.Sprintf("%s@%s", d.local, d.name), mailbox(d.display, d.local+"@"+d.name), encodeJIS(subj), d.name)
	b.h("Content-Type", "text/html; charset=us-ascii")
	b.h("Content-Transfer-Encoding", "7bit")
	b.body.WriteString(htmlText(b.rng, d.name, min(target, 20<<10)))
}

func (b *builder) boundary() string {
	return fmt.Sprintf("=_bench_%s_%016x", b.m.id, b.rng.Uint64())
}

// mailbox formats a From value: a quoted ASCII display name, or the
// encoded-words of a Japanese one.
func mailbox(display, addr string) string {
	if enc := encodeJIS(display); enc != display {
		return enc + " <" + addr + ">"
	}
	return fmt.Sprintf("%q <%s>", display, addr)
}

// encodeJIS returns s as-is when it is ASCII, else as RFC 2047 encoded-words
// in ISO-2022-JP the way Japanese mailers write them: each word a complete
// JIS sequence (ending back in ASCII), at most 75 characters, folded.
func encodeJIS(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	var words []string
	runes := []rune(s)
	for len(runes) > 0 {
		n := min(len(runes), 10)
		enc, err := japanese.ISO2022JP.NewEncoder().String(string(runes[:n]))
		if err != nil {
			// Only JIS X 0208 text is used; fall back to UTF-8 if not.
			return mime.BEncoding.Encode("UTF-8", s)
		}
		words = append(words, "=?ISO-2022-JP?B?"+base64.StdEncoding.EncodeToString([]byte(enc))+"?=")
		runes = runes[n:]
	}
	return strings.Join(words, "\r\n ")
}

func base64Lines(p []byte) string {
	enc := base64.StdEncoding.EncodeToString(p)
	var sb strings.Builder
	for len(enc) > 76 {
		sb.WriteString(enc[:76])
		sb.WriteString("\r\n")
		enc = enc[76:]
	}
	sb.WriteString(enc)
	sb.WriteString("\r\n")
	return sb.String()
}

var englishWords = strings.Fields(`the a of to and in for on with our your this that we you will
please meeting report schedule order delivery project update review team customer price offer
week month quarter plan budget sales market product service support account invoice payment
contract proposal draft version agenda minutes feedback result data analysis summary next
office travel hotel flight event seat ticket discount member special limited new today
tomorrow morning afternoon thanks regards best kindly attached below above details question
answer issue status confirm available time change request approve final shipping warehouse
stock supplier partner client manager director engineer release feature security notice`)

// englishText returns wrapped paragraphs of about n bytes.
func englishText(rng *rand.Rand, n int) string {
	var sb strings.Builder
	line := 0
	for sb.Len() < n {
		words := 8 + rng.IntN(12)
		for w := range words {
			word := pick(rng, englishWords)
			if w == 0 {
				word = strings.ToUpper(word[:1]) + word[1:]
			}
			if w == words-1 {
				word += "."
			}
			if line+len(word)+1 > 72 {
				sb.WriteString("\r\n")
				line = 0
			} else if line > 0 {
				sb.WriteByte(' ')
				line++
			}
			sb.WriteString(word)
			line += len(word)
		}
		if rng.IntN(5) == 0 {
			sb.WriteString("\r\n\r\n")
			line = 0
		}
	}
	sb.WriteString("\r\n")
	return sb.String()
}

// htmlText returns an HTML newsletter body of about n bytes with links to
// site.
func htmlText(rng *rand.Rand, site string, n int) string {
	var sb strings.Builder
	sb.WriteString("<!DOCTYPE html>\r\n<html><head><meta charset=\"us-ascii\"><title>News</title></head>\r\n<body>\r\n<table width=\"600\" align=\"center\">\r\n")
	for sb.Len() < n {
		fmt.Fprintf(&sb, "<tr><td style=\"font-family:Arial,sans-serif;font-size:14px;padding:8px\">\r\n<h2>%s</h2>\r\n<p>",
			strings.TrimSpace(englishText(rng, 40)))
		sb.WriteString(strings.TrimSpace(englishText(rng, 300+rng.IntN(500))))
		fmt.Fprintf(&sb, "</p>\r\n<p><a href=\"https://%s/item/%d?utm_source=newsletter\">Read more</a></p>\r\n</td></tr>\r\n", site, rng.IntN(100000))
	}
	sb.WriteString("</table>\r\n</body></html>\r\n")
	return sb.String()
}

var japaneseSubjects = []string{"【ご案内】新商品のお知らせ", "会議資料の送付", "お見積りのご依頼", "今週のメールマガジン",
	"請求書送付のお知らせ", "打ち合わせ日程のご相談", "システムメンテナンスのお知らせ"}

var japaneseSentences = []string{"いつもお世話になっております。", "ご確認のほどよろしくお願いいたします。",
	"本日の会議資料をお送りします。", "来週の打ち合わせについてご連絡いたします。", "見積書を添付いたしましたのでご査収ください。",
	"納期は今月末を予定しております。", "ご不明な点がございましたらお気軽にお問い合わせください。", "新商品のご案内です。",
	"今週の特集は春の旅行です。", "会員様限定のキャンペーンを実施中です。", "詳しくは以下のページをご覧ください。",
	"配送状況についてお知らせします。", "請求書の発行が完了しました。", "営業時間は平日九時から十八時までです。",
	"東京都千代田区丸の内一丁目の本社にて開催します。", "担当者が不在のため、折り返しご連絡いたします。"}

// japaneseText returns about n bytes of ISO-2022-JP text (lines of at most
// 36 characters, as Japanese mailers wrap).
func japaneseText(rng *rand.Rand, n int) string {
	var sb strings.Builder
	enc := japanese.ISO2022JP.NewEncoder()
	var line []rune
	flush := func() {
		s, err := enc.String(string(line))
		if err != nil {
			s = "(encoding error)"
		}
		sb.WriteString(s)
		sb.WriteString("\r\n")
		line = line[:0]
	}
	for sb.Len() < n {
		for _, r := range pick(rng, japaneseSentences) {
			line = append(line, r)
			if len(line) >= 36 {
				flush()
			}
		}
		if rng.IntN(4) == 0 {
			if len(line) > 0 {
				flush()
			}
			sb.WriteString("\r\n")
		}
	}
	if len(line) > 0 {
		flush()
	}
	return sb.String()
}

func randomBytes(rng *rand.Rand, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	return p
}

// fakePDF is a PDF-looking binary of n bytes: header, a random stream, trailer.
func fakePDF(rng *rand.Rand, n int) []byte {
	head := "%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n4 0 obj\n<< /Length " +
		fmt.Sprint(n) + " /Filter /FlateDecode >>\nstream\n"
	tail := "\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
	body := randomBytes(rng, max(n-len(head)-len(tail), 0))
	return append(append([]byte(head), body...), tail...)
}

func csvText(rng *rand.Rand, n int) []byte {
	var sb strings.Builder
	sb.WriteString("date,customer,item,quantity,amount\n")
	for sb.Len() < n {
		fmt.Fprintf(&sb, "2025-%02d-%02d,%s %s,%s-%04d,%d,%d.%02d\n", 1+rng.IntN(12), 1+rng.IntN(28), pick(rng, englishWords),
			pick(rng, englishWords), pick(rng, englishWords), rng.IntN(10000), 1+rng.IntN(50), rng.IntN(100000), rng.IntN(100))
	}
	return []byte(sb.String())
}

type zipFile struct {
	name string
	data []byte
}

func buildZIP(files []zipFile) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		hdr := &zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)}
		w, err := zw.CreateHeader(hdr)
		if err != nil {
			panic(err) // writing to memory cannot fail
		}
		_, _ = w.Write(f.data)
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// validLines reports whether data has only CRLF line ends, no NUL and no
// line over 998 octets (RFC 5321 4.5.3.1.6), which mailgate requires.
func validLines(data []byte) error {
	start := 0
	for i, c := range data {
		switch c {
		case 0:
			return fmt.Errorf("NUL at %d", i)
		case '\n':
			if i == 0 || data[i-1] != '\r' {
				return fmt.Errorf("bare LF at %d", i)
			}
			if i-1-start > 998 {
				return fmt.Errorf("line of %d octets at %d", i-1-start, start)
			}
			start = i + 1
		case '\r':
			if i+1 >= len(data) || data[i+1] != '\n' {
				return fmt.Errorf("bare CR at %d", i)
			}
		}
	}
	if !bytes.HasSuffix(data, []byte("\r\n")) {
		return fmt.Errorf("no final CRLF")
	}
	return nil
}
