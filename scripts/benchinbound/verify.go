package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/sink"
)

// copyAt is one delivery the sink received: a message with its recipients.
type copyAt struct {
	id    string // X-Bench-Id, "" when absent (notices, DSNs)
	rcpts []string
	data  []byte
	at    time.Time
}

// tracker follows what the sink has received.
type tracker struct {
	sk     *sink.Sink
	seen   int
	copies []copyAt
	got    map[string]map[string]int // id -> rcpt -> copies
}

func newTracker(sk *sink.Sink) *tracker {
	return &tracker{sk: sk, got: map[string]map[string]int{}}
}

func (t *tracker) refresh() {
	all := t.sk.Messages()
	for _, m := range all[t.seen:] {
		id := headerValue(m.Data, benchHeader)
		t.copies = append(t.copies, copyAt{id: id, rcpts: m.To, data: m.Data, at: m.Added})
		if t.got[id] == nil {
			t.got[id] = map[string]int{}
		}
		for _, r := range m.To {
			t.got[id][strings.ToLower(r)]++
		}
	}
	t.seen = len(all)
}

// want is the deliveries expected: id -> recipients.
type want map[string][]string

func (t *tracker) missing(w want) int {
	n := 0
	for id, rs := range w {
		for _, r := range rs {
			if t.got[id][strings.ToLower(r)] == 0 {
				n++
			}
		}
	}
	return n
}

// wait polls the sink until every expected delivery has arrived or ctx
// ends; it returns when the last one arrived and whether all did.
func (t *tracker) wait(ctx context.Context, w want) (time.Time, bool) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		t.refresh()
		if t.missing(w) == 0 {
			var last time.Time
			for _, c := range t.copies {
				if _, ok := w[c.id]; ok && c.at.After(last) {
					last = c.at
				}
			}
			return last, true
		}
		select {
		case <-ctx.Done():
			return time.Now(), false
		case <-tick.C:
		}
	}
}

// headerSection returns the header of a message (up to the empty line).
func headerSection(data []byte) []byte {
	if i := bytes.Index(data, []byte("\r\n\r\n")); i >= 0 {
		return data[:i+2]
	}
	return data
}

// headerValues returns the unfolded values of every field called name.
func headerValues(data []byte, name string) []string {
	var out []string
	lines := strings.Split(string(headerSection(data)), "\r\n")
	for i := 0; i < len(lines); i++ {
		k, v, ok := strings.Cut(lines[i], ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), name) {
			continue
		}
		for i+1 < len(lines) && len(lines[i+1]) > 0 && (lines[i+1][0] == ' ' || lines[i+1][0] == '\t') {
			i++
			v += " " + strings.TrimSpace(lines[i])
		}
		out = append(out, strings.TrimSpace(v))
	}
	return out
}

func headerValue(data []byte, name string) string {
	if vs := headerValues(data, name); len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// expectation is what a run should do with a message.
type expectation struct {
	reply     string // "2xx" or "5xx"
	delivered bool   // a copy reaches every recipient
}

func expect(cls class, pipeline bool) expectation {
	if !pipeline {
		return expectation{"2xx", true}
	}
	switch cls {
	case clsSpoof: // DMARC fail under p=reject (dmarc.enforce defaults to true)
		return expectation{"5xx", false}
	case clsListDeny: // deny list, default action discard: accepted, dropped
		return expectation{"2xx", false}
	}
	return expectation{"2xx", true}
}

// classStats counts one class of messages in one run.
type classStats struct {
	sent, ok, temp, perm, other int
	wrongReply                  int // reply class differs from the expectation
	copies, badCopies           int // delivered copies checked, and with a problem
	missing, unexpected         int // expected recipients without a copy; copies not expected
}

// checkCopy returns what is wrong with one delivered copy of m.
func checkCopy(m *message, data []byte, pipeline bool, ds []*senderDomain) []string {
	var bad []string
	ar := strings.Join(headerValues(data, "Authentication-Results"), " ; ")
	virus := headerValue(data, "X-Mailgate-Virus-Scan")
	hasMarker := m.marker != "" && bytes.Contains(data, []byte(m.marker))
	if !pipeline {
		if ar != "" {
			bad = append(bad, "relay-only copy has Authentication-Results: "+ar)
		}
		if m.marker != "" && !hasMarker {
			bad = append(bad, "relay-only copy lost the attachment")
		}
		return bad
	}
	if ar == "" {
		bad = append(bad, "no Authentication-Results")
	}
	d := senderOf(m, ds)
	if d != nil && ar != "" {
		if want := "spf=" + d.spfResult; !strings.Contains(ar, want) {
			bad = append(bad, fmt.Sprintf("want %s (%s): %s", want, d.name, ar))
		}
		if d.signer != nil && !strings.Contains(ar, "dkim=pass") && m.cls != clsSpoof {
			bad = append(bad, "want dkim=pass: "+ar)
		}
		wantDMARC := "dmarc=none"
		if d.dmarc != "" && (d.signer != nil || d.spfResult == spfPass) {
			wantDMARC = "dmarc=pass"
		}
		if !strings.Contains(ar, wantDMARC) {
			bad = append(bad, fmt.Sprintf("want %s (%s): %s", wantDMARC, d.name, ar))
		}
	}
	switch m.cls {
	case clsEICAR:
		if hasMarker {
			bad = append(bad, "infected attachment delivered")
		}
		pm, err := mailtext.Parse(context.Background(), bytes.NewReader(data), mailtext.DefaultLimits())
		if err != nil {
			bad = append(bad, "copy does not parse: "+err.Error())
			break
		}
		notice := false
		for _, p := range pm.Parts {
			if strings.Contains(p.Text, "mailgate removed the attachment") {
				notice = true
			}
			if p.Filename == "tool.com" || p.Filename == "tools.zip" {
				bad = append(bad, "attachment "+p.Filename+" still present")
			}
		}
		if !notice {
			bad = append(bad, "no removal notice")
		}
		bad = append(bad, textKept(m.data, pm)...)
	case clsBEC:
		if !strings.HasPrefix(mailtext.DecodeHeader(headerValue(data, "Subject")), "[Suspicious]") {
			bad = append(bad, "subject not tagged: "+mailtext.DecodeHeader(headerValue(data, "Subject")))
		}
		if headerValue(data, "X-Mailgate-Impersonation") == "" {
			bad = append(bad, "no X-Mailgate-Impersonation header")
		}
		if pm, err := mailtext.Parse(context.Background(), bytes.NewReader(data), mailtext.DefaultLimits()); err != nil {
			bad = append(bad, "copy does not parse: "+err.Error())
		} else {
			bad = append(bad, textKept(m.data, pm)...)
		}
	default:
		switch {
		case !strings.HasPrefix(virus, "clean"):
			bad = append(bad, fmt.Sprintf("X-Mailgate-Virus-Scan %q", virus))
		case (m.cls == clsPDF || m.cls == clsZIP) && !strings.HasPrefix(virus, "clean (ClamAV"):
			// A message with an attachment is always given to clamd.
			bad = append(bad, fmt.Sprintf("attachment not scanned by clamd: X-Mailgate-Virus-Scan %q", virus))
		}
		if imp := headerValue(data, "X-Mailgate-Impersonation"); strings.Contains(imp, "BEC_DISPLAY_NAME") || strings.Contains(imp, "LOOKALIKE") {
			bad = append(bad, "impersonation finding on ordinary mail: "+imp)
		}
	}
	return bad
}

// textKept checks that a rewritten copy still has the original's first
// body text (after decoding), so a banner or removal did not garble it.
func textKept(orig []byte, cp *mailtext.Message) []string {
	om, err := mailtext.Parse(context.Background(), bytes.NewReader(orig), mailtext.DefaultLimits())
	if err != nil {
		return nil
	}
	want := strings.TrimSpace(om.Text)
	if r := []rune(want); len(r) > 60 {
		want = string(r[:60])
	}
	if want != "" && !strings.Contains(cp.Text, want) {
		return []string{fmt.Sprintf("body text changed: want %q in %q", want, clip(cp.Text, 200))}
	}
	return nil
}

// senderOf is the domain whose SPF/DKIM/DMARC the message's copy should
// show: the MAIL FROM domain for SPF, which for every class but the spoof
// is also the From domain.
func senderOf(m *message, ds []*senderDomain) *senderDomain {
	_, dom, _ := strings.Cut(m.from, "@")
	for _, d := range ds {
		if d.name == dom {
			return d
		}
	}
	return nil
}

// analyse fills the per-class table of a run from its replies and the sink.
// Copies with a problem are written to dir/bad-copies, and the first copy
// of each kind to dir/samples, for inspection (KEEP=1).
func analyse(r *runResult, t *tracker, pipeline bool, ds []*senderDomain, dir string) {
	badDir, sampleDir := filepath.Join(dir, "bad-copies"), filepath.Join(dir, "samples")
	byID := map[string]int{}
	for i, m := range r.msgs {
		byID[m.id] = i
	}
	examples := map[string]int{}
	note := func(key, s string) {
		examples[key]++
		if examples[key] <= 3 {
			r.problems = append(r.problems, s)
		}
	}
	for i, m := range r.msgs {
		st := &r.classes[m.cls]
		rp := r.replies[i]
		st.sent++
		switch rp.class() {
		case "2xx":
			st.ok++
		case "4xx":
			st.temp++
		case "5xx":
			st.perm++
		default:
			st.other++
		}
		ex := expect(m.cls, pipeline)
		if rp.class() != ex.reply {
			st.wrongReply++
			note("reply-"+m.cls.String(), fmt.Sprintf("%s %s: want %s, got %s at %s: %s", m.cls, m.id, ex.reply, rp.class(), rp.stage, rp.text))
		}
		if rp.class() == "2xx" && ex.delivered {
			for _, rc := range m.rcpts {
				if t.got[m.id][strings.ToLower(rc)] == 0 {
					st.missing++
					note("missing-"+m.cls.String(), fmt.Sprintf("%s %s: no copy for %s (reply %q)", m.cls, m.id, rc, rp.text))
				}
			}
		}
	}
	for _, c := range t.copies {
		i, ok := byID[c.id]
		if !ok {
			continue // warm-up, or not a benchmark message (counted below)
		}
		m := r.msgs[i]
		st := &r.classes[m.cls]
		st.copies++
		if headerValue(c.data, "X-Mailgate-Spam") == "yes" {
			r.spamTagged++
		}
		if st.copies == 1 {
			if err := os.MkdirAll(sampleDir, 0o755); err == nil {
				_ = os.WriteFile(filepath.Join(sampleDir, fmt.Sprintf("%s-%s.eml", m.cls, m.id)), c.data, 0o644)
			}
		}
		ex := expect(m.cls, pipeline)
		if !ex.delivered || r.replies[i].class() != "2xx" {
			st.unexpected++
			note("unexpected-"+m.cls.String(), fmt.Sprintf("%s %s: delivered to %v but should not have been", m.cls, m.id, c.rcpts))
			continue
		}
		if bad := checkCopy(m, c.data, pipeline, ds); len(bad) > 0 {
			st.badCopies++
			if err := os.MkdirAll(badDir, 0o755); err == nil {
				_ = os.WriteFile(filepath.Join(badDir, fmt.Sprintf("%s-%s-%d.eml", m.id, m.cls, st.badCopies)), c.data, 0o644)
			}
			note("copy-"+m.cls.String()+"-"+bad[0][:min(len(bad[0]), 12)], fmt.Sprintf("%s %s: %s", m.cls, m.id, strings.Join(bad, "; ")))
		}
	}
	for _, c := range t.copies {
		if c.id == "" {
			r.foreign++
			if r.foreign <= 3 {
				r.problems = append(r.problems, fmt.Sprintf("sink got a message without %s to %v, Subject %q", benchHeader, c.rcpts,
					mailtext.DecodeHeader(headerValue(c.data, "Subject"))))
			}
		}
	}
	for id, rs := range t.got {
		for rc, n := range rs {
			if n > 1 && id != "" {
				r.duplicates += n - 1
				if r.duplicates <= 3 {
					r.problems = append(r.problems, fmt.Sprintf("message %s reached %s %d times", id, rc, n))
				}
			}
		}
	}
	sort.Strings(r.problems)
}
