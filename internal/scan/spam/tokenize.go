// Package spam is mailgate's built-in spam engine. This part is its
// statistical core: a tokenizer that turns a decoded message into a set of
// features (words, CJK bigrams, URL and header features), a Robinson/Fisher
// classifier over per-token spam and ham counts, and the ModelStore
// interface those counts live behind, with an in-memory implementation.
package spam

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/publicsuffix"
	"golang.org/x/text/unicode/norm"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// DefaultMaxTokens is the token bound Tokenize uses when given lim <= 0.
const DefaultMaxTokens = 600

const (
	// maxWordBytes bounds one word token: longer runs (base64 left in the
	// text, glued URLs, hashes) are cut, so they still give one stable
	// feature without bloating the model.
	maxWordBytes = 32
	// maxValueBytes bounds header-derived values (domains, mailer names).
	maxValueBytes = 64
	// maxPathTokens bounds the path words taken from one URL.
	maxPathTokens = 8
	// maxReceived bounds the Received fields mined for relay features
	// (the newest ones, nearest to us, are first).
	maxReceived = 8
)

// Tokenize returns the features of msg as a set: every token appears once,
// the slice is sorted, and it holds at most lim tokens (DefaultMaxTokens
// when lim <= 0). Structural and header features come first, then the
// Subject, links and the body text, so the bound drops body words of very
// long messages rather than the header evidence.
//
// Text is folded to NFKC and lower case, so full-width ASCII and half-width
// katakana give the same tokens as their ordinary forms. Words are runs of
// letters and digits (long ones cut to 32 bytes); Han, Hiragana, Katakana
// and Hangul runs give overlapping character bigrams (a lone character gives
// itself), since those scripts do not separate words with spaces. Numbers
// become shape buckets ("num:dd.dd", "money:ddd"), URLs give host,
// registrable domain and path tokens, e-mail addresses their domain. Header
// features carry the field as prefix ("subject:", "from-domain:",
// "x-mailer:", "charset:", ...).
//
// Each writing system the text uses with at least minScriptTokens word
// tokens (Subject, body and sender name) also gives a "script:" token
// ("script:cjk", "script:latin", ...). Counted over a model, these say how
// many spam and ham messages of each script it was trained on, which the
// classifier needs to judge a script's words only against mail in that
// script (see Params.MinScriptMessages); they are not evidence themselves.
//
// Tokenize is a pure function, safe for concurrent use; a nil msg gives nil.
func Tokenize(msg *mailtext.Message, lim int) []string {
	if msg == nil {
		return nil
	}
	t := newTokenizer(lim)
	t.lim-- // keep a slot for link-count, known only at the end
	t.list = listOf(msg)
	t.headers(msg)
	t.shapes(msg)
	t.structure(msg)
	subject, text := msg.Subject, msg.Text
	if t.list != nil {
		t.add("list:delivered")
		subject = stripListTag(subject)
		if i := listFooterStart(text, t.list); i >= 0 {
			text = text[:i]
		}
	}
	t.text("subject:", subject)
	for _, l := range msg.HTMLLinks {
		t.link(l.URL)
	}
	t.text("", text)
	t.lim++
	t.add("link-count:" + bucket(len(t.urls)))
	for sc, n := range t.scripts {
		if n < minScriptTokens || script(sc) == scriptNone {
			continue
		}
		if t.full() && len(t.out) > 1 {
			// The script tokens take the places of the last body words.
			last := t.out[len(t.out)-2]
			delete(t.seen, last)
			t.out = append(t.out[:len(t.out)-2], t.out[len(t.out)-1])
		}
		t.add(ScriptTokenPrefix + scriptNames[sc])
	}
	return t.result()
}

// TokenizeText returns the tokens of plain text s as Tokenize produces them
// for a message body (no header features), sorted and deduplicated, bounded
// by DefaultMaxTokens. Safe for concurrent use.
func TokenizeText(s string) []string {
	t := newTokenizer(0)
	t.text("", s)
	return t.result()
}

type tokenizer struct {
	lim     int
	list    *mailingList    // how the message came through a list; nil if it did not
	scripts [numScripts]int // text tokens per script
	seen    map[string]struct{}
	out     []string
	urls    map[string]struct{} // distinct URLs seen, for link-count
	buf     []byte              // scratch for building prefixed tokens
	prev    string              // previous body word, for word pairs
	// inWords is set while words runs: its tokens are cut from decoded
	// runes only (an invalid byte is never part of a word), so they are
	// valid UTF-8 and add need not check them.
	inWords bool
}

// seenSets are tokenizers' sets of tokens, kept empty between messages:
// a set sized for a message's 600 tokens is 28 KB to allocate and for the
// collector to sweep, for each message.
var seenSets = sync.Pool{New: func() any { return make(map[string]struct{}, DefaultMaxTokens) }}

func newTokenizer(lim int) *tokenizer {
	if lim <= 0 {
		lim = DefaultMaxTokens
	}
	return &tokenizer{
		lim:  lim,
		seen: seenSets.Get().(map[string]struct{}),
		out:  make([]string, 0, lim),
		urls: make(map[string]struct{}),
	}
}

func (t *tokenizer) full() bool { return len(t.out) >= t.lim }

// result returns the tokens, sorted, and gives the set back: the
// tokenizer is done with.
func (t *tokenizer) result() []string {
	sortTokens(t.out)
	clear(t.seen)
	seenSets.Put(t.seen)
	t.seen = nil
	return t.out
}

// sortTokens sorts ss as slices.Sort does. Many tokens share a prefix
// ("subj:", "url:", "h:from:"), which a string comparison reads again at
// every step of the sort; their first eight bytes compared as one number
// settle most comparisons without that, and only tokens alike in all
// eight are compared as strings.
func sortTokens(ss []string) {
	type keyed struct {
		k uint64
		s string
	}
	ks := make([]keyed, len(ss))
	for i, s := range ss {
		var b [8]byte
		copy(b[:], s)
		ks[i] = keyed{binary.BigEndian.Uint64(b[:]), s}
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		if c := cmp.Compare(a.k, b.k); c != 0 {
			return c
		}
		return strings.Compare(a.s, b.s)
	})
	for i := range ks {
		ss[i] = ks[i].s
	}
}

// add records tok once, while the bound allows.
func (t *tokenizer) add(tok string) {
	if tok == "" || len(t.out) >= t.lim {
		return
	}
	if !t.inWords && !utf8.ValidString(tok) {
		if _, ok := t.seen[tok]; ok {
			return
		}
		tok = strings.ToValidUTF8(tok, "\uFFFD")
		t.seen[tok] = struct{}{}
		t.out = append(t.out, tok)
		return
	}
	// One hash: inserting a token already there leaves the set's size.
	n := len(t.seen)
	t.seen[tok] = struct{}{}
	if len(t.seen) > n {
		t.out = append(t.out, tok)
	}
}

// addp adds prefix+s, building the string only when it is new.
func (t *tokenizer) addp(prefix, s string) {
	if prefix == "" {
		t.add(s)
		return
	}
	if s == "" || t.full() {
		return
	}
	t.buf = append(append(t.buf[:0], prefix...), s...)
	if _, ok := t.seen[string(t.buf)]; ok { // no allocation for the lookup
		return
	}
	t.add(string(t.buf))
}

// headers derives features from the top-level header.
func (t *tokenizer) headers(msg *mailtext.Message) {
	hops, n := 0, 0
	for _, h := range msg.Header {
		name := strings.ToLower(h.Name)
		if name == "received" {
			// A list's onward delivery is the list's, not the sender's.
			if n++; t.list != nil && n-1 < t.list.entry {
				continue
			}
			hops++
			if hops <= maxReceived {
				t.received(h.Value)
			}
		}
		if t.list != nil && listHeader(name) || mailboxHeader(name) {
			continue
		}
		if len(name) <= 40 && isTokenName(name) {
			t.addp("header:", name)
		}
		switch name {
		case "x-mailer", "user-agent":
			t.words("x-mailer:", fold(clip(h.Value, 256)), false)
		case "content-type":
			mt, _, _ := strings.Cut(h.Value, ";")
			t.addp("content-type:", clip(strings.ToLower(strings.TrimSpace(mt)), maxValueBytes))
		case "content-transfer-encoding":
			t.addp("cte:", clip(strings.ToLower(strings.TrimSpace(h.Value)), 32))
		}
	}
	t.addp("received-hops:", strconv.Itoa(min(hops, 10)))

	fromDom := ""
	if len(msg.From) > 0 {
		fromDom = addrDomain(msg.From[0].Addr)
		t.domain("from-domain:", fromDom)
		t.words("from-name:", fold(clip(msg.From[0].Name, 256)), false)
	} else {
		t.add("from:missing")
	}
	if len(msg.ReplyTo) > 0 {
		rd := addrDomain(msg.ReplyTo[0].Addr)
		if !t.list.isListHost(rd) {
			t.domain("reply-to-domain:", rd)
		}
		if rd != fromDom {
			t.add("reply-to:differs")
		}
	}
	t.addp("rcpt-count:", bucket(len(msg.To)+len(msg.Cc)))
	for _, p := range msg.Problems {
		t.addp("problem:", string(p.Kind))
	}
}

// mailboxHeader reports whether a field is written after delivery, by the
// recipient's delivery agent or mail client (Return-Path and Delivery-Date
// at final delivery, RFC 5321 §4.4; Status, X-Status, X-Keywords, X-UID and
// the like as mailbox state). A gateway meets mail before any of that, so
// such a field says how a training message was stored, not who sent it: in
// a corpus kept in several mailboxes it is a clue to the mailbox, and so to
// the class, that real mail never carries.
func mailboxHeader(name string) bool {
	switch name {
	case "return-path", "delivery-date", "status", "x-status", "x-keywords", "x-uid", "x-uidl",
		"x-mozilla-status", "x-mozilla-status2", "x-mozilla-keys", "x-imap", "x-imapbase":
		return true
	}
	return false
}

// received adds the relays a Received field names: the registrable
// domains of its host names and the /16 of its IPv4 addresses. The path
// mail takes is strong evidence (a tenant's correspondents use a few
// providers; spam comes from everywhere), as SpamBayes found.
func (t *tokenizer) received(v string) {
	v = strings.ToLower(clip(v, 1024))
	for _, f := range strings.FieldsFunc(v, func(r rune) bool {
		return r == ' ' || r == '\t' || r == '(' || r == ')' || r == '[' || r == ']' || r == ';' || r == ',' || r == '<' || r == '>'
	}) {
		f = strings.Trim(f, ".:")
		if t.list.isListHost(f) {
			continue
		}
		if maybeIP(f) {
			if ip, err := netip.ParseAddr(f); err == nil {
				if ip.Is4() {
					b := ip.As4()
					t.addp("received-ip:", strconv.Itoa(int(b[0]))+"."+strconv.Itoa(int(b[1])))
				}
				continue
			}
		}
		if strings.Contains(f, ".") && isHostname(f) {
			if rd := regDomain(f); rd != "" {
				t.addp("received:", rd)
			}
		}
	}
}

// structure derives features from the MIME parts.
func (t *tokenizer) structure(msg *mailtext.Message) {
	plain, html := false, false
	for i := range msg.Parts {
		p := &msg.Parts[i]
		t.addp("content-type:", clip(p.ContentType, maxValueBytes))
		if p.Charset != "" {
			t.addp("charset:", clip(strings.ToLower(p.Charset), 32))
		}
		if p.IsAttachment {
			t.add("has-attachment")
			if ext := fileExt(p.Filename); ext != "" {
				t.addp("attachment-ext:", ext)
			}
			continue
		}
		switch p.ContentType {
		case "text/plain":
			plain = true
		case "text/html":
			html = true
		}
	}
	if html && !plain {
		t.add("has-html-only")
	}
	if msg.Unscannable {
		t.add("unscannable")
	}
}

// domain adds the host and its registrable domain under prefix.
func (t *tokenizer) domain(prefix, host string) {
	if host == "" {
		t.addp(prefix, "none")
		return
	}
	host = clip(host, maxValueBytes)
	t.addp(prefix, host)
	if rd := regDomain(host); rd != "" {
		t.addp(prefix, rd)
	}
}

// text tokenizes free text: whitespace-separated chunks, each folded and
// scanned for URLs and e-mail addresses, the rest split into words and
// CJK runs. Folding chunk by chunk does only the work the token bound
// lets the tokenizer use.
func (t *tokenizer) text(prefix, s string) {
	t.prev = ""
	for len(s) > 0 && !t.full() {
		i := indexSpace(s, false)
		if i < 0 {
			return
		}
		s = s[i:]
		j := indexSpace(s, true)
		if j < 0 {
			j = len(s)
		}
		t.chunk(prefix, fold(s[:j]))
		s = s[j:]
	}
}

// indexSpace is strings.IndexFunc(s, unicode.IsSpace) when space is set,
// of its negation when not, with ASCII looked up in a table.
func indexSpace(s string, space bool) int {
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if asciiSpace[c] == space {
				return i
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if unicode.IsSpace(r) == space {
			return i
		}
		i += n
	}
	return -1
}

// asciiSpace is unicode.IsSpace for ASCII.
var asciiSpace = [utf8.RuneSelf]bool{'\t': true, '\n': true, '\v': true, '\f': true, '\r': true, ' ': true}

// chunk handles one whitespace-free piece of folded text.
func (t *tokenizer) chunk(prefix, c string) {
	for c != "" && !t.full() {
		u := urlStart(c)
		a := strings.IndexByte(c, '@')
		if u < 0 && a < 0 {
			t.words(prefix, c, true)
			return
		}
		if u >= 0 && (a < 0 || u < a) {
			t.words(prefix, c[:u], true)
			end := u
			for end < len(c) && isURLByte(c[end]) {
				end++
			}
			t.link(c[u:end])
			c = c[end:]
			continue
		}
		// An '@': the local part before it is dropped (it is mostly noise),
		// the domain after it becomes an email-domain feature.
		start := a
		for start > 0 && isLocalByte(c[start-1]) {
			start--
		}
		end := a + 1
		for end < len(c) && isHostByte(c[end]) {
			end++
		}
		dom := strings.Trim(c[a+1:end], ".-")
		t.words(prefix, c[:start], true)
		if strings.Contains(dom, ".") {
			t.domain("email-domain:", dom)
		} else {
			t.words(prefix, c[a+1:end], true)
		}
		c = c[end:]
	}
}

// urlStart finds the first "http://", "https://" or "www." in c.
func urlStart(c string) int {
	for i := 0; i+4 <= len(c); i++ {
		switch c[i] {
		case 'h':
			if r := c[i:]; strings.HasPrefix(r, "http://") || strings.HasPrefix(r, "https://") {
				return i
			}
		case 'w':
			if strings.HasPrefix(c[i:], "www.") {
				return i
			}
		}
	}
	return -1
}

// link adds the features of one URL: scheme, host, registrable domain and
// up to maxPathTokens path words. mailto: links give the address's domain.
func (t *tokenizer) link(raw string) {
	if t.full() {
		return
	}
	u := strings.ToLower(strings.TrimSpace(clip(raw, 2048)))
	if u == "" {
		return
	}
	t.urls[clip(u, 256)] = struct{}{}
	if rest, ok := strings.CutPrefix(u, "mailto:"); ok {
		if _, dom, ok := strings.Cut(rest, "@"); ok {
			dom, _, _ = strings.Cut(dom, "?")
			t.domain("email-domain:", strings.Trim(dom, "."))
		}
		return
	}
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		if !strings.HasPrefix(u, "www.") {
			t.add("url:relative")
			return
		}
		scheme, rest = "http", u
	}
	t.addp("url-scheme:", clip(scheme, 16))
	hostEnd := strings.IndexAny(rest, "/?#\\")
	if hostEnd < 0 {
		hostEnd = len(rest)
	}
	host, tail := rest[:hostEnd], rest[hostEnd:]
	if i := strings.LastIndexByte(host, '@'); i >= 0 {
		t.add("url:userinfo") // http://bank.example@evil.example/ trick
		host = host[i+1:]
	}
	if h, port, ok := strings.Cut(host, ":"); ok && !strings.HasPrefix(host, "[") {
		host = h
		if port != "" {
			t.add("url:port")
		}
	}
	host = strings.Trim(host, ".")
	if maybeIP(host) && isIPLiteral(strings.Trim(host, "[]")) {
		t.add("url-host:ip")
	} else if host != "" {
		t.domain("url-host:", host)
	}
	n := 0
	for tail != "" && n < maxPathTokens {
		i := strings.IndexFunc(tail, isWordRune)
		if i < 0 {
			break
		}
		tail = tail[i:]
		j := strings.IndexFunc(tail, func(r rune) bool { return !isWordRune(r) })
		if j < 0 {
			j = len(tail)
		}
		if w := tail[:j]; len(w) >= 2 {
			t.addp("url-path:", clip(w, maxWordBytes))
			n++
		}
		tail = tail[j:]
	}
}

// words splits s into word and CJK tokens under prefix. With numbers set,
// digit runs become shape buckets; header values (numbers=false) keep them
// as words, since a mailer version is a useful literal.
func (t *tokenizer) words(prefix, s string, numbers bool) {
	t.inWords = true
	defer func() { t.inWords = false }()
	for i := 0; i < len(s) && !t.full(); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case isCJK(r):
			j := i
			for j < len(s) {
				r2, n2 := utf8.DecodeRuneInString(s[j:])
				if !isCJK(r2) {
					break
				}
				j += n2
			}
			t.cjk(prefix, s[i:j])
			i = j
		case isWordRune(r):
			j := i + n
			for j < len(s) {
				r2, n2 := utf8.DecodeRuneInString(s[j:])
				if isWordRune(r2) && !isCJK(r2) {
					j += n2
					continue
				}
				// Joiners stay inside a word or number: "e-mail",
				// "don't", "19.95", "1,000".
				if isJoiner(r2) && j+n2 < len(s) {
					r3, _ := utf8.DecodeRuneInString(s[j+n2:])
					if isWordRune(r3) && !isCJK(r3) {
						j += n2
						continue
					}
				}
				break
			}
			cur := ""
			if i > 0 {
				if p, _ := utf8.DecodeLastRuneInString(s[:i]); isCurrency(p) {
					cur = "money:"
				}
			}
			t.word(prefix, s[i:j], cur, numbers)
			i = j
		default:
			i += n
		}
	}
}

// word adds one Latin-like word or number.
func (t *tokenizer) word(prefix, w, cur string, numbers bool) {
	if numbers && isNumber(w) {
		if cur == "" {
			cur = "num:"
		}
		t.addp(prefix, cur+numShape(w))
		return
	}
	if utf8.RuneCountInString(w) < 2 {
		return // single letters carry no evidence
	}
	w = clip(w, maxWordBytes)
	t.addp(prefix, w)
	if isTextPrefix(prefix) {
		t.scripts[wordScript(w)]++
	}
	// Adjacent body words also give a pair ("click here"): phrases
	// separate spam from ham better than their words alone do.
	if prefix == "" {
		if t.prev != "" && !t.full() {
			// Built in the scratch buffer: most pairs of a long text were
			// seen before, and those need no new string.
			t.buf = append(append(append(t.buf[:0], t.prev...), ' '), w...)
			if _, ok := t.seen[string(t.buf)]; !ok {
				t.add(string(t.buf))
			}
		}
		t.prev = w
	}
}

// cjk adds the overlapping bigrams of a Han/Kana/Hangul run, or the
// character itself when the run has one.
func (t *tokenizer) cjk(prefix, run string) {
	t.prev = ""
	r0, first := utf8.DecodeRuneInString(run)
	if isTextPrefix(prefix) {
		t.scripts[runeScript(r0)] += max(utf8.RuneCountInString(run)-1, 1)
	}
	if first == len(run) {
		t.addp(prefix, run)
		return
	}
	for i := 0; i < len(run) && !t.full(); {
		_, n1 := utf8.DecodeRuneInString(run[i:])
		if i+n1 >= len(run) {
			break
		}
		_, n2 := utf8.DecodeRuneInString(run[i+n1:])
		t.addp(prefix, run[i:i+n1+n2])
		i += n1
	}
}

// fold gives the compared form of text: NFKC (full-width ASCII to ASCII,
// half-width katakana to full-width with voiced marks composed) and lower
// case. ASCII takes a fast path.
func fold(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			if foldStable(s[i:]) {
				return asciiLower(s) // only its ASCII can change
			}
			s = strings.ToValidUTF8(s, "\uFFFD")
			return strings.ToLower(norm.NFKC.String(s))
		}
	}
	return strings.ToLower(s)
}

// asciiLower lower-cases the ASCII letters of s and leaves every other
// byte alone; s itself when it has no capital.
func asciiLower(s string) string {
	i := 0
	for i < len(s) && (s[i] < 'A' || s[i] > 'Z') {
		i++
	}
	if i == len(s) {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		if c := b[i]; 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// foldStable reports whether s is valid UTF-8 whose non-ASCII characters
// are all ones NFKC and lower-casing leave alone: hiragana, full-width
// katakana, the common CJK ideographs and the Japanese punctuation around
// them, which is most of Japanese text. Checking that is much cheaper than
// normalising.
func foldStable(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			return false
		case 0x3041 <= r && r <= 0x3096, // hiragana
			0x30A1 <= r && r <= 0x30FA, // katakana
			0x4E00 <= r && r <= 0x9FFF, // CJK unified ideographs
			r == 0x3001 || r == 0x3002 || r == 0x30FC || r == 0x30FB || r == 0x3005, // 、。ー・々
			0x300C <= r && r <= 0x3011: // 「」『』【】
		default:
			return false
		}
		i += n
	}
	return true
}

func isCJK(r rune) bool {
	if r < 0x1100 {
		return false
	}
	if commonKana(r) {
		return true
	}
	// U+30FC (prolonged sound mark) is script Common but belongs inside
	// katakana words such as "セール".
	return r == 0x30FC || unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul)
}

// commonKana reports whether r is in the hiragana, katakana or CJK
// unified ideograph ranges that are Hiragana, Katakana or Han throughout:
// most of Japanese text, answered without searching the script tables.
func commonKana(r rune) bool {
	return 0x4E00 <= r && r <= 0x9FFF || 0x3041 <= r && r <= 0x3096 || 0x30A1 <= r && r <= 0x30FA
}

func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || 'A' <= r && r <= 'Z'
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

func isJoiner(r rune) bool {
	switch r {
	case '\'', '-', '.', ',', '_':
		return true
	}
	return false
}

func isCurrency(r rune) bool {
	switch r {
	case '$', '¥', '€', '£':
		return true
	}
	return false
}

func isNumber(w string) bool {
	for i := 0; i < len(w); i++ {
		c := w[i]
		if !('0' <= c && c <= '9' || c == '.' || c == ',' || c == '-') {
			return false
		}
	}
	return true
}

// numShape buckets a number by its shape: each digit becomes 'd', so
// "19.95" gives "dd.dd", "2002" "dddd" and a phone number "dddd-ddd-ddd";
// at most 12 bytes.
func numShape(w string) string {
	b := make([]byte, 0, min(len(w), 12))
	for i := 0; i < len(w) && len(b) < 12; i++ {
		if c := w[i]; c >= '0' && c <= '9' {
			b = append(b, 'd')
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}

// maybeIP reports whether s could be an IP address (literal): it starts
// with a digit or '[' or holds a ':'. Parsing the rest as one would only
// build an error.
func maybeIP(s string) bool {
	return s != "" && ('0' <= s[0] && s[0] <= '9' || s[0] == '[' || strings.IndexByte(s, ':') >= 0)
}

// bucket maps a count to 0, 1, 2, 4, 8 or 16 (each the lower end of a
// power-of-two range).
func bucket(n int) string {
	switch {
	case n <= 1:
		return strconv.Itoa(max(n, 0))
	case n < 4:
		return "2"
	case n < 8:
		return "4"
	case n < 16:
		return "8"
	}
	return "16"
}

func isURLByte(c byte) bool {
	if c <= ' ' || c >= 0x7f {
		return false
	}
	switch c {
	case '<', '>', '"', '\'', '`', '(', ')', '[', ']', '{', '}', '|', '^':
		return false
	}
	return true
}

func isHostByte(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-'
}

func isLocalByte(c byte) bool {
	return isHostByte(c) || c == '_' || c == '+' || c == '%'
}

// isHostname reports whether s looks like a DNS name with a letter in its
// last label (so "1.2.3.4" and version numbers are not taken for hosts).
func isHostname(s string) bool {
	if len(s) > 253 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isHostByte(s[i]) {
			return false
		}
	}
	last := s[strings.LastIndexByte(s, '.')+1:]
	for i := 0; i < len(last); i++ {
		if 'a' <= last[i] && last[i] <= 'z' {
			return true
		}
	}
	return false
}

func isTokenName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return s != ""
}

// addrDomain returns the lower-case domain of an addr-spec, "" if none.
func addrDomain(a string) string {
	i := strings.LastIndexByte(a, '@')
	if i < 0 {
		return ""
	}
	return strings.Trim(strings.ToLower(a[i+1:]), ".[] ")
}

// regDomain returns the registrable domain (eTLD+1) of host, "" when it
// has none (an IP, a bare public suffix, a malformed name).
func regDomain(host string) string {
	if !strings.Contains(host, ".") {
		return ""
	}
	rd, err := publicsuffix.EffectiveTLDPlusOne(host)
	if err != nil {
		return ""
	}
	return rd
}

// fileExt returns the lower-case extension of a file name when it is a
// plausible one (1-8 letters or digits).
func fileExt(name string) string {
	ext := strings.ToLower(path.Ext(strings.TrimSpace(name)))
	if len(ext) < 2 || len(ext) > 9 {
		return ""
	}
	ext = ext[1:]
	for i := 0; i < len(ext); i++ {
		if c := ext[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return ""
		}
	}
	return ext
}

// clip cuts s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
