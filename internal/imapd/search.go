package imapd

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/mailgate/mailgate/internal/mailbox"
	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/store"
)

// searchCharsets are the CHARSETs SEARCH accepts; strings in the
// Japanese ones are converted to UTF-8 first.
var searchCharsets = []string{"US-ASCII", "UTF-8", "ISO-2022-JP", "SHIFT_JIS", "EUC-JP"}

// maxTextTerms bounds the store searches one SEARCH may cause.
const maxTextTerms = 32

// Search answers SEARCH. Flags, sizes, dates, sets and mod-sequences are
// judged on the session's view; texts (HEADER, FROM, SUBJECT, BODY, TEXT,
// ...) are looked up in the decoded, normalised text the store keeps of
// every message (Japanese in any charset, full and half width alike, case
// folded), so a two-character word such as 会議 is found.
func (se *session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	v := se.sel
	if err := se.convertCharset(criteria, options.Charset); err != nil {
		return nil, err
	}
	ctx, cancel := se.ctx()
	defer cancel()
	ev := &evaluator{se: se, ctx: ctx, text: map[textKey]map[uint32]string{}}
	var hits []int
	for i := range v.msgs {
		ok, err := ev.match(i, criteria)
		if err != nil {
			return nil, err
		}
		if ok {
			hits = append(hits, i)
		}
	}
	data := &imap.SearchData{Count: uint32(len(hits))}
	var ms uint64
	if kind == imapserver.NumKindUID {
		var set imap.UIDSet
		for _, i := range hits {
			set.AddNum(imap.UID(v.msgs[i].UID))
		}
		data.All = set
		if len(hits) > 0 {
			data.Min, data.Max = v.msgs[hits[0]].UID, v.msgs[hits[len(hits)-1]].UID
		}
	} else {
		var set imap.SeqSet
		for _, i := range hits {
			set.AddNum(uint32(i + 1))
		}
		data.All = set
		if len(hits) > 0 {
			data.Min, data.Max = uint32(hits[0]+1), uint32(hits[len(hits)-1]+1)
		}
	}
	if options.ReturnSave {
		v.saved = v.saved[:0]
		for _, i := range hits {
			v.saved = append(v.saved, v.msgs[i].UID)
		}
	}
	if usesModSeq(criteria) {
		for _, i := range hits {
			ms = max(ms, v.msgs[i].ModSeq)
		}
		data.ModSeq = ms
	}
	return data, nil
}

func usesModSeq(c *imap.SearchCriteria) bool {
	if c.ModSeq != nil {
		return true
	}
	for i := range c.Not {
		if usesModSeq(&c.Not[i]) {
			return true
		}
	}
	for i := range c.Or {
		if usesModSeq(&c.Or[i][0]) || usesModSeq(&c.Or[i][1]) {
			return true
		}
	}
	return false
}

// convertCharset turns the criteria's strings from the named CHARSET
// into UTF-8, or refuses an unknown charset with BADCHARSET.
func (se *session) convertCharset(c *imap.SearchCriteria, cs string) error {
	switch cs {
	case "", "US-ASCII", "UTF-8":
		return nil
	case "ISO-2022-JP", "SHIFT_JIS", "EUC-JP", "CP932", "WINDOWS-31J":
	default:
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCode("BADCHARSET (" + strings.Join(searchCharsets, " ") + ")"), Text: "Unsupported charset"}
	}
	conv := func(s string) string {
		if out, err := mailtext.DecodeCharset(cs, []byte(s)); err == nil {
			return out
		}
		return s
	}
	var walk func(c *imap.SearchCriteria)
	walk = func(c *imap.SearchCriteria) {
		for i := range c.Header {
			c.Header[i].Value = conv(c.Header[i].Value)
		}
		for i := range c.Body {
			c.Body[i] = conv(c.Body[i])
		}
		for i := range c.Text {
			c.Text[i] = conv(c.Text[i])
		}
		for i := range c.Not {
			walk(&c.Not[i])
		}
		for i := range c.Or {
			walk(&c.Or[i][0])
			walk(&c.Or[i][1])
		}
	}
	walk(c)
	return nil
}

type textKey struct {
	where store.MailTextField
	term  string
}

// evaluator judges messages against criteria, asking the store once per
// distinct text term.
type evaluator struct {
	se    *session
	ctx   context.Context
	text  map[textKey]map[uint32]string // UID → header text (InHeader) or ""
	terms int
}

func (ev *evaluator) textHits(where store.MailTextField, term string) (map[uint32]string, error) {
	k := textKey{where, term}
	if h, ok := ev.text[k]; ok {
		return h, nil
	}
	if ev.terms++; ev.terms > maxTextTerms {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit, Text: "Too many search terms"}
	}
	hits, err := ev.se.st().SearchMail(ev.ctx, ev.se.mb.TenantID, ev.se.sel.folder.ID, where, term)
	if err != nil {
		return nil, ev.se.imapErr(err, "search")
	}
	m := make(map[uint32]string, len(hits))
	for _, h := range hits {
		m[h.UID] = h.Header
	}
	ev.text[k] = m
	return m, nil
}

// dateOnly is t's calendar day in UTC (RFC 9051 6.4.4 compares dates
// without time and zone).
func dateOnly(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func (ev *evaluator) match(i int, c *imap.SearchCriteria) (bool, error) {
	v := ev.se.sel
	m := v.msgs[i]
	for _, set := range c.SeqNum {
		if !containsSeq(set, uint32(i+1), uint32(len(v.msgs))) {
			return false, nil
		}
	}
	for _, set := range c.UID {
		if imap.IsSearchRes(set) {
			if !slices.Contains(v.saved, m.UID) {
				return false, nil
			}
		} else if !containsUID(set, m.UID, v.maxUID()) {
			return false, nil
		}
	}
	day := dateOnly(m.InternalDate)
	if !c.Since.IsZero() && day.Before(dateOnly(c.Since)) || !c.Before.IsZero() && !day.Before(dateOnly(c.Before)) {
		return false, nil
	}
	if !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
		sent := m.Date
		if sent.IsZero() {
			sent = m.InternalDate
		}
		sd := dateOnly(sent)
		if !c.SentSince.IsZero() && sd.Before(dateOnly(c.SentSince)) || !c.SentBefore.IsZero() && !sd.Before(dateOnly(c.SentBefore)) {
			return false, nil
		}
	}
	for _, f := range c.Flag {
		if f == flagRecent || !m.HasFlag(string(f)) {
			return false, nil
		}
	}
	for _, f := range c.NotFlag {
		if f != flagRecent && m.HasFlag(string(f)) {
			return false, nil
		}
	}
	if c.Larger > 0 && m.Size <= c.Larger || c.Smaller > 0 && m.Size >= c.Smaller {
		return false, nil
	}
	if c.ModSeq != nil && m.ModSeq < c.ModSeq.ModSeq {
		return false, nil
	}
	for _, h := range c.Header {
		ok, err := ev.header(m.UID, h.Key, h.Value)
		if err != nil || !ok {
			return false, err
		}
	}
	for _, b := range c.Body {
		ok, err := ev.contains(store.InBody, m.UID, b)
		if err != nil || !ok {
			return false, err
		}
	}
	for _, t := range c.Text {
		ok, err := ev.contains(store.InText, m.UID, t)
		if err != nil || !ok {
			return false, err
		}
	}
	for i2 := range c.Not {
		ok, err := ev.match(i, &c.Not[i2])
		if err != nil || ok {
			return false, err
		}
	}
	for _, or := range c.Or {
		a, err := ev.match(i, &or[0])
		if err != nil {
			return false, err
		}
		if !a {
			b, err := ev.match(i, &or[1])
			if err != nil || !b {
				return false, err
			}
		}
	}
	return true, nil
}

func (ev *evaluator) contains(where store.MailTextField, uid uint32, term string) (bool, error) {
	term = mailbox.Fold(term)
	if term == "" {
		return true, nil
	}
	hits, err := ev.textHits(where, term)
	if err != nil {
		return false, err
	}
	_, ok := hits[uid]
	return ok, nil
}

// header matches one header field: the store finds messages whose header
// text holds the value, then the field is checked line by line.
func (ev *evaluator) header(uid uint32, field, value string) (bool, error) {
	name := mailbox.Fold(strings.TrimSpace(field)) + ": "
	val := mailbox.Fold(value)
	term := val
	if term == "" {
		term = name
	}
	hits, err := ev.textHits(store.InHeader, term)
	if err != nil {
		return false, err
	}
	text, ok := hits[uid]
	if !ok {
		return false, nil
	}
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok && strings.Contains(rest, val) {
			return true, nil
		}
	}
	return false, nil
}

func containsSeq(set imap.SeqSet, seq, n uint32) bool {
	for _, r := range set {
		a, b := r.Start, r.Stop
		if a == 0 {
			a = n
		}
		if b == 0 {
			b = n
		}
		if a > b {
			a, b = b, a
		}
		if seq >= a && seq <= b {
			return true
		}
	}
	return false
}

func containsUID(set imap.UIDSet, uid, top uint32) bool {
	for _, r := range set {
		a, b := uint32(r.Start), uint32(r.Stop)
		if a == 0 {
			a = top
		}
		if b == 0 {
			b = top
		}
		if a > b {
			a, b = b, a
		}
		if uid >= a && uid <= b {
			return true
		}
	}
	return false
}
