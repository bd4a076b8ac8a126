package archive

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/mailgate/mailgate/internal/bytesize"
)

// Query is an archive search. Text fields match when every term of the
// value (Tokens: words, CJK bigrams) is in the field; empty fields do not
// constrain. Times are inclusive of After and exclusive of Before.
type Query struct {
	Text       string    `json:"text,omitempty"` // anywhere: addresses, subject, body, attachments
	From       string    `json:"from,omitempty"`
	To         string    `json:"to,omitempty"` // To header and envelope recipients
	Cc         string    `json:"cc,omitempty"`
	Subject    string    `json:"subject,omitempty"`
	Body       string    `json:"body,omitempty"`
	Attachment string    `json:"attachment,omitempty"` // attachment names and text
	After      time.Time `json:"after,omitzero"`
	Before     time.Time `json:"before,omitzero"`
	MinSize    int64     `json:"min_size,omitempty"`
	MaxSize    int64     `json:"max_size,omitempty"`
	// HasAttachment: "yes", "no" or "" (either).
	HasAttachment string `json:"has_attachment,omitempty"`
	Direction     string `json:"direction,omitempty"` // "in", "out" or ""
	Verdict       string `json:"verdict,omitempty"`   // a finding or outcome: "spam", "virus", "quarantined", "clean", ...
	Imported      string `json:"imported,omitempty"`  // "yes", "no" or ""
	// Addr is one exact address the message must be from or to (envelope
	// sender or recipient, From, To or Cc), ignoring case: never a part of
	// a longer address, never the address written in a body. End users'
	// searches always carry their own.
	Addr string `json:"addr,omitempty"`
}

// Empty reports whether q matches everything.
func (q Query) Empty() bool { return q == Query{} }

// Fields of the query language, field:value.
var queryFields = []string{"from", "to", "cc", "subject", "body", "attachment", "after", "before", "larger", "smaller", "has", "dir", "verdict", "imported", "addr"}

// ParseQuery reads the search language of the console, the API and the
// CLI: words (anywhere), "quoted phrases", and field:value or
// field:"value" with the fields from, to, cc, subject, body, attachment,
// after:YYYY-MM-DD, before:YYYY-MM-DD, larger:SIZE, smaller:SIZE (with
// k, M or G), has:attachment, has:noattachment, dir:in|out,
// verdict:NAME, imported:yes|no, addr:ADDRESS (exact; one per search).
func ParseQuery(s string) (Query, error) {
	var q Query
	var text []string
	for _, tok := range splitQuery(s) {
		name, val, ok := strings.Cut(tok, ":")
		name = strings.ToLower(name)
		if !ok || !isQueryField(name) || strings.HasPrefix(tok, `"`) {
			text = append(text, strings.Trim(tok, `"`))
			continue
		}
		val = strings.Trim(val, `"`)
		var err error
		switch name {
		case "from":
			q.From = join(q.From, val)
		case "to":
			q.To = join(q.To, val)
		case "cc":
			q.Cc = join(q.Cc, val)
		case "subject":
			q.Subject = join(q.Subject, val)
		case "body":
			q.Body = join(q.Body, val)
		case "attachment":
			q.Attachment = join(q.Attachment, val)
		case "after":
			q.After, err = parseDay(val)
		case "before":
			q.Before, err = parseDay(val)
		case "larger":
			q.MinSize, err = parseSize(val)
		case "smaller":
			q.MaxSize, err = parseSize(val)
		case "has":
			switch strings.ToLower(val) {
			case "attachment", "attachments":
				q.HasAttachment = "yes"
			case "noattachment", "noattachments":
				q.HasAttachment = "no"
			default:
				err = fmt.Errorf("has:%s: use has:attachment or has:noattachment", val)
			}
		case "dir":
			switch strings.ToLower(val) {
			case "in", "inbound":
				q.Direction = "in"
			case "out", "outbound":
				q.Direction = "out"
			default:
				err = fmt.Errorf("dir:%s: use dir:in or dir:out", val)
			}
		case "verdict":
			q.Verdict = strings.ToLower(val)
		case "imported":
			q.Imported, err = yesNo(val)
		case "addr":
			a := NormAddr(val)
			switch {
			case !strings.Contains(a, "@"):
				err = fmt.Errorf("addr:%s: give a whole address", val)
			case q.Addr != "" && q.Addr != a:
				err = fmt.Errorf("one addr: per search")
			}
			q.Addr = a
		}
		if err != nil {
			return q, err
		}
	}
	q.Text = strings.Join(text, " ")
	return q, q.Check()
}

// Check validates a query built from form fields.
func (q Query) Check() error {
	if !q.After.IsZero() && !q.Before.IsZero() && !q.After.Before(q.Before) {
		return fmt.Errorf("the date range is empty")
	}
	for _, v := range []string{q.HasAttachment, q.Imported} {
		if v != "" && v != "yes" && v != "no" {
			return fmt.Errorf("%q: use yes or no", v)
		}
	}
	if q.Direction != "" && q.Direction != "in" && q.Direction != "out" {
		return fmt.Errorf("direction %q: use in or out", q.Direction)
	}
	if q.Addr != "" && (!strings.Contains(q.Addr, "@") || strings.ContainsAny(NormAddr(q.Addr), " \t\"")) {
		return fmt.Errorf("addr %q: give one whole address", q.Addr)
	}
	if q.MinSize < 0 || q.MaxSize < 0 {
		return fmt.Errorf("negative size")
	}
	if len(q.Text)+len(q.From)+len(q.To)+len(q.Cc)+len(q.Subject)+len(q.Body)+len(q.Attachment) > 4096 {
		return fmt.Errorf("query too long")
	}
	return nil
}

// String writes q back in the query language (audit entries, holds).
func (q Query) String() string {
	var parts []string
	add := func(name, v string) {
		if v == "" {
			return
		}
		if strings.ContainsAny(v, " \t\"") {
			v = `"` + strings.ReplaceAll(v, `"`, "") + `"`
		}
		parts = append(parts, name+":"+v)
	}
	if q.Text != "" {
		parts = append(parts, q.Text)
	}
	add("from", q.From)
	add("to", q.To)
	add("cc", q.Cc)
	add("subject", q.Subject)
	add("body", q.Body)
	add("attachment", q.Attachment)
	if !q.After.IsZero() {
		add("after", q.After.Format("2006-01-02"))
	}
	if !q.Before.IsZero() {
		add("before", q.Before.Format("2006-01-02"))
	}
	if q.MinSize > 0 {
		add("larger", strconv.FormatInt(q.MinSize, 10))
	}
	if q.MaxSize > 0 {
		add("smaller", strconv.FormatInt(q.MaxSize, 10))
	}
	switch q.HasAttachment {
	case "yes":
		add("has", "attachment")
	case "no":
		add("has", "noattachment")
	}
	add("dir", q.Direction)
	add("verdict", q.Verdict)
	add("imported", q.Imported)
	add("addr", q.Addr)
	return strings.Join(parts, " ")
}

func isQueryField(n string) bool {
	for _, f := range queryFields {
		if f == n {
			return true
		}
	}
	return false
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + " " + b
}

func yesNo(v string) (string, error) {
	switch strings.ToLower(v) {
	case "yes", "true", "1":
		return "yes", nil
	case "no", "false", "0":
		return "no", nil
	}
	return "", fmt.Errorf("%q: use yes or no", v)
}

// splitQuery splits at spaces outside double quotes.
func splitQuery(s string) []string {
	var out []string
	var cur strings.Builder
	quoted := false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
			cur.WriteRune(r)
		case unicode.IsSpace(r) && !quoted:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

func parseDay(s string) (time.Time, error) {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return t, fmt.Errorf("date %q: use YYYY-MM-DD", s)
	}
	return t, nil
}

func parseSize(s string) (int64, error) {
	n, err := bytesize.Parse(s)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	return n, nil
}

// Match evaluates q on a document in memory, as the indexes do: the
// archive rule (Mode "rule") and legal holds by query use it.
func Match(q Query, d Doc) bool {
	has := func(field, want string) bool {
		if strings.TrimSpace(want) == "" {
			return true
		}
		wt := Tokens(want)
		if len(wt) == 0 {
			return false // words that are only punctuation match nothing
		}
		set := map[string]bool{}
		for _, t := range Tokens(field) {
			set[t] = true
		}
		for _, t := range wt {
			if !set[t] {
				return false
			}
		}
		return true
	}
	all := d.From + "\n" + d.To + "\n" + d.Cc + "\n" + d.Subject + "\n" + d.Body + "\n" + d.Attachments
	switch {
	case !has(all, q.Text), !has(d.From, q.From), !has(d.To, q.To), !has(d.Cc, q.Cc),
		!has(d.Subject, q.Subject), !has(d.Body, q.Body), !has(d.Attachments, q.Attachment):
		return false
	case !q.After.IsZero() && d.Date.Before(q.After), !q.Before.IsZero() && !d.Date.Before(q.Before):
		return false
	case q.MinSize > 0 && d.Size < q.MinSize, q.MaxSize > 0 && d.Size > q.MaxSize:
		return false
	case q.HasAttachment == "yes" && !d.HasAttachment, q.HasAttachment == "no" && d.HasAttachment:
		return false
	case q.Imported == "yes" && !d.Imported, q.Imported == "no" && d.Imported:
		return false
	case q.Direction != "" && d.Direction != q.Direction:
		return false
	case q.Verdict != "" && !containsWord(d.Verdict, q.Verdict):
		return false
	case q.Addr != "" && !IsParticipant(d.Addresses, q.Addr):
		return false
	}
	return true
}

func containsWord(list, w string) bool {
	for _, f := range strings.Fields(list) {
		if f == w {
			return true
		}
	}
	return false
}
