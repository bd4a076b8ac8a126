package outbound

import (
	"fmt"
	"strings"
)

// The line form of conditions, used by the console's rule form and the
// CLI: one condition a line,
//
//	[not] FIELD[:HEADER] OP [VALUE, VALUE, ...]
//
// for example
//
//	body contains 社外秘, 顧客リスト
//	rcpt outside
//	outside_count ge 10
//	header:X-Priority exact 1
//	not attachment_type is pdf
//	subject regex ^\[(見積|請求)\]
//
// Values are separated by commas, except for regex, whose whole rest of
// the line is one expression (regular expressions have commas of their
// own). Empty lines and lines starting with # are ignored.

// ParseConditionLines reads conditions in the line form.
func ParseConditionLines(text string) ([]Condition, error) {
	var out []Condition
	for i, line := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		c, err := parseConditionLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		out = append(out, c)
	}
	return out, nil
}

func parseConditionLine(line string) (Condition, error) {
	var c Condition
	rest := line
	word := func() string {
		rest = strings.TrimLeft(rest, " \t")
		i := strings.IndexAny(rest, " \t")
		if i < 0 {
			w := rest
			rest = ""
			return w
		}
		w := rest[:i]
		rest = rest[i:]
		return w
	}
	f := word()
	if strings.EqualFold(f, "not") {
		c.Not = true
		f = word()
	}
	f = strings.ToLower(f)
	if name, hdr, ok := strings.Cut(f, ":"); ok {
		f, c.Header = name, hdr
		// Header names keep their case as written.
		if i := strings.IndexByte(line, ':'); i >= 0 && hdr != "" {
			c.Header = strings.Fields(line[i+1:])[0]
		}
	}
	c.Field = f
	c.Op = strings.ToLower(word())
	if c.Field == "" || c.Op == "" {
		return c, fmt.Errorf("%q: write FIELD OP VALUES, e.g. body contains 社外秘", line)
	}
	rest = strings.TrimSpace(rest)
	if rest != "" {
		if c.Op == OpRegex {
			c.Values = []string{rest}
		} else {
			for _, v := range strings.Split(rest, ",") {
				if v = strings.TrimSpace(v); v != "" {
					c.Values = append(c.Values, v)
				}
			}
		}
	}
	if err := c.validate(); err != nil {
		return c, err
	}
	return c, nil
}

// FormatConditionLines writes conditions in the line form. A regex
// condition with several expressions takes one line each, which reads
// back as separate conditions; the console shows those rules' JSON.
func FormatConditionLines(cs []Condition) string {
	var b strings.Builder
	for _, c := range cs {
		vals := []string{strings.Join(c.Values, ", ")}
		if c.Op == OpRegex {
			vals = c.Values
		}
		for _, v := range vals {
			if c.Not {
				b.WriteString("not ")
			}
			b.WriteString(c.Field)
			if c.Header != "" {
				b.WriteString(":" + c.Header)
			}
			b.WriteString(" " + c.Op)
			if v != "" {
				b.WriteString(" " + v)
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

// LinesExact reports whether the line form keeps cs exactly (no value
// holds a comma, no regex condition has more than one expression).
func LinesExact(cs []Condition) bool {
	for _, c := range cs {
		if c.Op == OpRegex {
			if len(c.Values) > 1 {
				return false
			}
			continue
		}
		for _, v := range c.Values {
			if strings.Contains(v, ",") || strings.TrimSpace(v) != v {
				return false
			}
		}
	}
	return true
}
