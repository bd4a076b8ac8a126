package mlist

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"regexp"
	"strings"

	"github.com/mailgate/mailgate/internal/delivery"
	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/queue"
	"github.com/mailgate/mailgate/internal/rewrite"
	"github.com/mailgate/mailgate/internal/store"
)

var _ queue.ListHandler = (*Service)(nil)

// Remote names the list engine as the remote of a list recipient's
// delivery in tracking.
const Remote = "mailing list"

// Take handles the recipients of m that are list addresses (expanded into
// one copy for the members) or list bounce addresses (bounces counted);
// it implements queue.ListHandler. A failure to read the store or write
// the copy is a temporary failure of that recipient, retried by the queue;
// a message that already went through the list (its List-Id) is refused
// as a mail loop (554 5.4.6).
func (s *Service) Take(ctx context.Context, m store.Message, rcpts []store.Recipient, body func() (io.ReadCloser, error)) []queue.Taken {
	var cands []string
	for _, r := range rcpts {
		a := strings.ToLower(r.Addr)
		cands = append(cands, a)
		if base, ok := bounceOf(a); ok {
			cands = append(cands, base)
		}
	}
	ls, err := s.listsByAddress(ctx, cands)
	if err != nil {
		// The recipients cannot be told from others now: all wait.
		s.log().Error("list lookup failed; the message waits", "id", m.ID, "err", err)
		out := make([]queue.Taken, len(rcpts))
		for i, r := range rcpts {
			out[i] = queue.Taken{Rcpt: r.ID, Result: tempFail("list lookup failed")}
		}
		return out
	}
	if len(ls) == 0 {
		return nil
	}
	byAddr := make(map[string]store.MailingList, len(ls))
	for _, l := range ls {
		byAddr[l.Address] = l
	}
	var out []queue.Taken
	for _, r := range rcpts {
		a := strings.ToLower(r.Addr)
		if l, ok := byAddr[a]; ok {
			out = append(out, s.distribute(ctx, m, r, l, body))
			continue
		}
		if base, ok := bounceOf(a); ok {
			if l, ok := byAddr[base]; ok {
				out = append(out, queue.Taken{Rcpt: r.ID, Result: s.bounce(ctx, m, l, body)})
			}
		}
	}
	return out
}

func tempFail(text string) delivery.Result {
	return delivery.Result{Code: 451, Enhanced: "4.3.0", Text: "temporary local problem: " + text, Remote: Remote}
}

// distribute expands list l for the post m (its recipient r) and writes
// the members' copy.
func (s *Service) distribute(ctx context.Context, m store.Message, r store.Recipient, l store.MailingList, body func() (io.ReadCloser, error)) queue.Taken {
	log := s.log().With("id", m.ID, "list", l.Address)
	t := queue.Taken{Rcpt: r.ID}
	hdr, err := readHeader(ctx, body)
	if err != nil {
		log.Error("reading the post", "err", err)
		t.Result = tempFail("reading the message")
		return t
	}
	lid := listID(l.Address)
	for _, v := range headerValues(hdr, "List-Id") {
		if listIDOf(v) == lid {
			log.Warn("mail loop: the message already went through this list")
			t.Result = delivery.Result{Code: 554, Enhanced: "5.4.6", Text: "mail loop: the message already went through the list " + l.Address,
				Remote: Remote, Permanent: true}
			return t
		}
	}
	members, err := s.Members(ctx, l)
	if err != nil {
		log.Error("expanding the list", "err", err)
		t.Result = tempFail("expanding the list")
		return t
	}
	if len(members) == 0 {
		t.Result = delivery.Result{Code: 250, Enhanced: "2.0.0", Text: "the list has no member to send to", Remote: Remote}
		return t
	}
	var serial int64
	if l.SubjectSerial {
		// Keyed by the post, so an attempt made again keeps its number.
		if serial, err = s.Store.NextListSerial(ctx, l.TenantID, l.ID, fmt.Sprintf("%s/%d", m.ID, r.ID)); err != nil {
			log.Error("serial number", "err", err)
			t.Result = tempFail("numbering the post")
			return t
		}
	}
	spec, subject := copySpec(l, hdr, serial)
	if s.fromNeedsList(ctx, log, hdr) {
		mungeFrom(&spec, l, hdr)
	}
	now := s.now()
	id := store.NewMessageID(now)
	key, size, err := s.writeCopy(ctx, id, spec, body)
	if err != nil {
		log.Error("writing the members' copy", "err", err)
		t.Result = tempFail("writing the copy")
		return t
	}
	c := store.Message{ID: id, TenantID: l.TenantID, Direction: store.Outbound, MailFrom: BounceAddress(l.Address),
		Size: size, BlobKey: key, ReceivedAt: now, ClientIP: "local", Helo: s.Hostname, MessageID: m.MessageID,
		Subject: subject, SMTPUTF8: m.SMTPUTF8, Body8Bit: m.Body8Bit}
	rs := make([]store.Recipient, len(members))
	for i, a := range members {
		rs[i] = store.Recipient{Addr: a, Notify: "FAILURE", State: store.Queued, NextAttempt: now}
		if isASCII(a) {
			// Returned in members' servers' DSNs as Original-Recipient.
			rs[i].ORcpt = "rfc822;" + a
		} else {
			c.SMTPUTF8 = true
		}
	}
	what := fmt.Sprintf("copy of %s from mailing list %s to %d members", m.ID, l.Address, len(members))
	if serial > 0 {
		what += fmt.Sprintf(" (post %d)", serial)
	}
	t.Copy = &store.QueuedMessage{Message: c, Recipients: rs,
		Events: []store.Event{{MessageID: id, TenantID: l.TenantID, At: now, Kind: "received", Remote: "local", Detail: what}}}
	t.Result = delivery.Result{Code: 250, Enhanced: "2.0.0", Text: fmt.Sprintf("distributed to %d members as %s", len(members), id), Remote: Remote}
	log.Info("list message distributed", "copy", id, "members", len(members), "serial", serial)
	return t
}

// writeCopy writes the members' copy durably under id.
func (s *Service) writeCopy(ctx context.Context, id string, spec rewrite.Spec, body func() (io.ReadCloser, error)) (string, int64, error) {
	src, err := body()
	if err != nil {
		return "", 0, err
	}
	defer src.Close()
	w, err := s.Spool.Create(ctx, id)
	if err != nil {
		return "", 0, err
	}
	if err := rewrite.Apply(ctx, w, src, spec); err != nil {
		w.Abort()
		return "", 0, err
	}
	if err := w.Commit(ctx); err != nil {
		return "", 0, err
	}
	return w.Key(), w.Size(), nil
}

// Members returns the addresses a post to l goes to: its members and
// those of the lists nested in it, each list followed once and at most
// MaxDepth deep, without disabled members, each address once, in order.
func (s *Service) Members(ctx context.Context, l store.MailingList) ([]string, error) {
	lists, err := s.Store.MailingLists(ctx, l.TenantID)
	if err != nil {
		return nil, err
	}
	byAddr := make(map[string]store.MailingList, len(lists))
	for _, x := range lists {
		byAddr[x.Address] = x
	}
	seenList := map[int64]bool{l.ID: true}
	seen := map[string]bool{}
	var out []string
	type item struct {
		l     store.MailingList
		depth int
	}
	todo := []item{{l, 0}}
	for len(todo) > 0 {
		it := todo[0]
		todo = todo[1:]
		ms, err := s.Store.ListMembers(ctx, l.TenantID, it.l.ID)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			if m.Disabled {
				continue
			}
			if sub, ok := byAddr[m.Address]; ok {
				switch {
				case seenList[sub.ID]:
					if sub.ID == l.ID {
						s.log().Warn("mailing list loop cut while expanding", "list", l.Address, "via", it.l.Address)
					}
				case it.depth+1 > MaxDepth:
					s.log().Warn("mailing list nested too deep; left out", "list", l.Address, "nested", sub.Address)
				default:
					seenList[sub.ID] = true
					todo = append(todo, item{sub, it.depth + 1})
				}
				continue
			}
			if _, ok := bounceOf(m.Address); ok && byAddr[mustBase(m.Address)].ID != 0 {
				continue // a list's bounce address is no member
			}
			if !seen[m.Address] {
				seen[m.Address] = true
				out = append(out, m.Address)
			}
		}
	}
	return out, nil
}

func mustBase(a string) string {
	b, _ := bounceOf(a)
	return b
}

// copySpec says how the members' copy differs from the post, and returns
// the copy's decoded Subject.
func copySpec(l store.MailingList, hdr []mailtext.RawField, serial int64) (rewrite.Spec, string) {
	spec := rewrite.Spec{
		// The post's own list fields (from another list) give way to ours.
		RemoveHeaders: []string{"List-*", "Precedence"},
	}
	lid := "<" + listID(l.Address) + ">"
	if d := strings.TrimSpace(l.Description); d != "" {
		lid = phrase(d) + " " + lid
	}
	spec.PrependHeaders = []rewrite.HeaderField{
		{Name: "List-Id", Value: lid},
		{Name: "List-Post", Value: "<mailto:" + l.Address + ">"},
		{Name: "Precedence", Value: "list"},
	}
	if l.ReplyToList {
		spec.RemoveHeaders = append(spec.RemoveHeaders, "Reply-To")
		spec.PrependHeaders = append(spec.PrependHeaders, rewrite.HeaderField{Name: "Reply-To", Value: "<" + l.Address + ">"})
	}
	raw, _ := mailtext.Lookup(hdr, "Subject")
	subject := mailtext.DecodeHeader(raw)
	if serial <= 0 {
		return spec, subject
	}
	tag := fmt.Sprintf("[%s:%05d]", l.Name, serial)
	old := regexp.MustCompile(`\[` + regexp.QuoteMeta(l.Name) + `:\d+\]\s*`)
	if !old.MatchString(subject) {
		// The original Subject bytes stay as they are (a Japanese
		// mailer's ISO-2022-JP words included), after the tag.
		spec.SubjectTag = tag
		return spec, strings.TrimSpace(tag + " " + subject)
	}
	// A reply carries an earlier post's tag ("Re: [sales:00041] ..."):
	// it gives way to this post's, in front.
	subject = strings.TrimSpace(tag + " " + strings.TrimSpace(old.ReplaceAllString(subject, "")))
	spec.RemoveHeaders = append(spec.RemoveHeaders, "Subject")
	v := subject
	if !isASCII(v) {
		v = mime.BEncoding.Encode("UTF-8", v)
	}
	spec.PrependHeaders = append(spec.PrependHeaders, rewrite.HeaderField{Name: "Subject", Value: v})
	return spec, subject
}

// fromNeedsList reports whether the post's From domain publishes a DMARC
// policy of quarantine or reject, so that the list's copy must not carry
// its address in From. When the policy cannot be read (DNS trouble) the
// answer is yes: a copy From the list is delivered either way.
func (s *Service) fromNeedsList(ctx context.Context, log *slog.Logger, hdr []mailtext.RawField) bool {
	if s.DMARC == nil {
		return false
	}
	raw, _ := mailtext.Lookup(hdr, "From")
	from := mailtext.ParseAddressList(raw)
	if len(from) != 1 {
		return true // no single author domain to judge: the list's own From is the safe one
	}
	_, domain, ok := strings.Cut(from[0].Addr, "@")
	if !ok {
		return true
	}
	p, err := s.DMARC(ctx, domain)
	if err != nil {
		log.Warn("reading the author's DMARC policy; the copy goes out From the list", "domain", domain, "err", err)
		return true
	}
	return p == "quarantine" || p == "reject"
}

// mungeFrom makes the list the copy's author: From is the list address
// with the author's name ("Alice via sales"), and replies still reach the
// author (Reply-To, next to the list when replies go to the list). The
// original From is kept in X-Original-From.
func mungeFrom(spec *rewrite.Spec, l store.MailingList, hdr []mailtext.RawField) {
	raw, _ := mailtext.Lookup(hdr, "From")
	var author mailtext.Address
	if as := mailtext.ParseAddressList(raw); len(as) > 0 {
		author = as[0]
	}
	name := strings.TrimSpace(author.Name)
	if name == "" {
		name, _, _ = strings.Cut(author.Addr, "@")
	}
	if name == "" {
		name = "?"
	}
	spec.RemoveHeaders = append(spec.RemoveHeaders, "From", "X-Original-From")
	spec.PrependHeaders = append(spec.PrependHeaders,
		rewrite.HeaderField{Name: "From", Value: phrase(name+" via "+l.Name) + " <" + l.Address + ">"},
		rewrite.HeaderField{Name: "X-Original-From", Value: strings.TrimSpace(raw)})
	if author.Addr == "" {
		return
	}
	authorBox := "<" + author.Addr + ">"
	if n := strings.TrimSpace(author.Name); n != "" {
		authorBox = phrase(n) + " " + authorBox
	}
	if l.ReplyToList {
		// copySpec already set Reply-To to the list alone.
		for i, f := range spec.PrependHeaders {
			if f.Name == "Reply-To" {
				spec.PrependHeaders[i].Value = f.Value + ", " + authorBox
			}
		}
		return
	}
	if _, ok := mailtext.Lookup(hdr, "Reply-To"); !ok {
		spec.PrependHeaders = append(spec.PrependHeaders, rewrite.HeaderField{Name: "Reply-To", Value: authorBox})
	}
}

// phrase is a display name as a header phrase: quoted when ASCII,
// encoded words otherwise (RFC 2047).
func phrase(s string) string {
	if !isASCII(s) {
		return mime.BEncoding.Encode("UTF-8", s)
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// readHeader reads the top-level header of the message body opens.
func readHeader(ctx context.Context, body func() (io.ReadCloser, error)) ([]mailtext.RawField, error) {
	rc, err := body()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	lim := mailtext.DefaultLimits()
	fields, _, err := mailtext.HeaderReader{MaxBytes: lim.MaxHeaderBytes, Root: true}.Read(mailtext.NewLineReader(mailtext.NewContextReader(ctx, rc), 64<<10))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return fields, nil
}

func headerValues(h []mailtext.RawField, name string) []string {
	var out []string
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			out = append(out, f.Value)
		}
	}
	return out
}

// listIDOf extracts the list-id from a List-Id value (RFC 2919 2:
// phrase <list-id>), lower-cased.
func listIDOf(v string) string {
	i := strings.LastIndexByte(v, '<')
	j := strings.LastIndexByte(v, '>')
	if i < 0 || j < i {
		return strings.ToLower(strings.TrimSpace(v))
	}
	return strings.ToLower(strings.TrimSpace(v[i+1 : j]))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
