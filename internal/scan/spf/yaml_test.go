package spf

import (
	"fmt"
	"strconv"
	"strings"
)

// A minimal YAML reader for the subset used by the openspf test suites
// (rfc7208-tests.yml): "---" separated documents, block mappings and
// sequences, "- key: value" items, single-line flow sequences, plain,
// single- and double-quoted scalars (with \xNN escapes), multi-line plain
// scalars and "|"/">" block scalars. No anchors, tags or flow mappings. It
// reports what it cannot read instead of guessing.

type yNode struct {
	kind int // yScalar, ySeq, yMap
	str  string
	seq  []*yNode
	keys []string // yMap, in document order
	vals []*yNode
}

const (
	yScalar = iota
	ySeq
	yMap
)

func (n *yNode) get(key string) *yNode {
	if n == nil || n.kind != yMap {
		return nil
	}
	for i, k := range n.keys {
		if k == key {
			return n.vals[i]
		}
	}
	return nil
}

// strings returns a scalar as a one-element list, or a sequence of scalars.
func (n *yNode) strings() ([]string, error) {
	switch {
	case n == nil:
		return nil, nil
	case n.kind == yScalar:
		return []string{n.str}, nil
	case n.kind == ySeq:
		out := make([]string, 0, len(n.seq))
		for _, e := range n.seq {
			if e.kind != yScalar {
				return nil, fmt.Errorf("yaml: nested collection where a scalar list was expected")
			}
			out = append(out, e.str)
		}
		return out, nil
	}
	return nil, fmt.Errorf("yaml: mapping where a scalar list was expected")
}

type yParser struct {
	lines []string
	pos   int
}

// parseYAMLDocuments splits src into documents and parses each.
func parseYAMLDocuments(src string) ([]*yNode, error) {
	src = strings.ReplaceAll(src, "\r\n", "\n")
	var docs []*yNode
	var cur []string
	flush := func() error {
		p := &yParser{lines: cur}
		p.skipBlank()
		if p.pos < len(p.lines) {
			n, err := p.parseBlock(0)
			if err != nil {
				return err
			}
			p.skipBlank()
			if p.pos < len(p.lines) {
				return fmt.Errorf("yaml: unexpected line %q", p.lines[p.pos])
			}
			docs = append(docs, n)
		}
		cur = nil
		return nil
	}
	for _, l := range strings.Split(src, "\n") {
		if l == "---" || strings.HasPrefix(l, "--- ") || l == "..." {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		if strings.HasPrefix(strings.TrimLeft(l, " "), "\t") {
			return nil, fmt.Errorf("yaml: tab indentation not supported: %q", l)
		}
		cur = append(cur, l)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return docs, nil
}

func indentOf(l string) int { return len(l) - len(strings.TrimLeft(l, " ")) }

func isBlankOrComment(l string) bool {
	t := strings.TrimSpace(l)
	return t == "" || t[0] == '#'
}

func (p *yParser) skipBlank() {
	for p.pos < len(p.lines) && isBlankOrComment(p.lines[p.pos]) {
		p.pos++
	}
}

func isSeqItem(text string) bool { return text == "-" || strings.HasPrefix(text, "- ") }

// parseBlock parses the collection starting at the current line, whose
// indentation must be at least min.
func (p *yParser) parseBlock(min int) (*yNode, error) {
	p.skipBlank()
	if p.pos >= len(p.lines) {
		return &yNode{kind: yScalar}, nil
	}
	l := p.lines[p.pos]
	ind := indentOf(l)
	if ind < min {
		return nil, fmt.Errorf("yaml: bad indentation at %q", l)
	}
	if isSeqItem(l[ind:]) {
		return p.parseSeq(ind)
	}
	return p.parseMap(ind)
}

func (p *yParser) parseMap(ind int) (*yNode, error) {
	n := &yNode{kind: yMap}
	for {
		p.skipBlank()
		if p.pos >= len(p.lines) {
			return n, nil
		}
		l := p.lines[p.pos]
		li := indentOf(l)
		if li < ind || (li == ind && isSeqItem(l[li:])) {
			return n, nil
		}
		if li > ind {
			return nil, fmt.Errorf("yaml: unexpected indentation at %q", l)
		}
		key, rest, err := splitKey(l[li:])
		if err != nil {
			return nil, err
		}
		p.pos++
		v, err := p.parseValue(rest, ind, true)
		if err != nil {
			return nil, fmt.Errorf("yaml: key %q: %w", key, err)
		}
		n.keys = append(n.keys, key)
		n.vals = append(n.vals, v)
	}
}

func (p *yParser) parseSeq(ind int) (*yNode, error) {
	n := &yNode{kind: ySeq}
	for {
		p.skipBlank()
		if p.pos >= len(p.lines) {
			return n, nil
		}
		l := p.lines[p.pos]
		li := indentOf(l)
		if li != ind || !isSeqItem(l[li:]) {
			if li > ind {
				return nil, fmt.Errorf("yaml: unexpected indentation at %q", l)
			}
			return n, nil
		}
		content := strings.TrimLeft(l[li+1:], " ")
		col := len(l) - len(content)
		var item *yNode
		var err error
		switch {
		case content == "":
			p.pos++
			item, err = p.parseBlock(ind + 1)
		case content[0] != '"' && content[0] != '\'' && content[0] != '[' && looksLikeKey(content):
			// "- key: value" opens a mapping indented at the key's column:
			// blank out the dash and parse the line as a mapping line.
			p.lines[p.pos] = strings.Repeat(" ", col) + content
			item, err = p.parseMap(col)
		default:
			p.pos++
			item, err = p.parseValue(content, ind, false)
		}
		if err != nil {
			return nil, err
		}
		n.seq = append(n.seq, item)
	}
}

func looksLikeKey(s string) bool {
	_, _, err := splitKey(s)
	return err == nil
}

// splitKey splits "key: rest" or "key:" (the key may itself contain ':'
// when not followed by a space, or be double-quoted).
func splitKey(s string) (key, rest string, err error) {
	if strings.HasPrefix(s, "\"") {
		k, after, err := parseDoubleQuoted(s)
		if err != nil {
			return "", "", err
		}
		if after == ":" || strings.HasPrefix(after, ": ") {
			return k, strings.TrimSpace(after[1:]), nil
		}
		return "", "", fmt.Errorf("yaml: expected ':' after quoted key in %q", s)
	}
	if i := strings.Index(s, ": "); i >= 0 {
		return s[:i], strings.TrimSpace(s[i+2:]), nil
	}
	if strings.HasSuffix(s, ":") {
		return s[:len(s)-1], "", nil
	}
	return "", "", fmt.Errorf("yaml: expected 'key:' in %q", s)
}

// parseValue parses the value that follows "key:" (or a "- " item) on a
// line already consumed; ind is the indentation of that key or dash.
func (p *yParser) parseValue(rest string, ind int, inMap bool) (*yNode, error) {
	switch {
	case rest == "" || rest[0] == '#':
		p.skipBlank()
		if p.pos < len(p.lines) {
			l := p.lines[p.pos]
			li := indentOf(l)
			if li > ind || (inMap && li == ind && isSeqItem(l[li:])) {
				return p.parseBlock(li)
			}
		}
		return &yNode{kind: yScalar}, nil
	case rest[0] == '|' || rest[0] == '>':
		return p.parseBlockScalar(rest, ind)
	case rest[0] == '[':
		return parseFlowSeq(rest)
	case rest[0] == '"':
		v, after, err := parseDoubleQuoted(rest)
		if err != nil {
			return nil, err
		}
		if a := strings.TrimSpace(after); a != "" && a[0] != '#' {
			return nil, fmt.Errorf("yaml: text after quoted scalar: %q", rest)
		}
		return &yNode{kind: yScalar, str: v}, nil
	case rest[0] == '\'':
		v, after, err := parseSingleQuoted(rest)
		if err != nil {
			return nil, err
		}
		if a := strings.TrimSpace(after); a != "" && a[0] != '#' {
			return nil, fmt.Errorf("yaml: text after quoted scalar: %q", rest)
		}
		return &yNode{kind: yScalar, str: v}, nil
	}
	// Plain scalar, possibly continued on more-indented lines (folded with
	// single spaces).
	v := stripComment(rest)
	for p.pos < len(p.lines) {
		l := p.lines[p.pos]
		if isBlankOrComment(l) || indentOf(l) <= ind {
			break
		}
		v += " " + stripComment(strings.TrimSpace(l))
		p.pos++
	}
	return &yNode{kind: yScalar, str: v}, nil
}

func stripComment(s string) string {
	if i := strings.Index(s, " #"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// parseBlockScalar reads "|" (literal) and ">" (folded) scalars with an
// optional "-" or "+" chomping indicator.
func (p *yParser) parseBlockScalar(hdr string, ind int) (*yNode, error) {
	hdr = stripComment(hdr)
	style, chomp := hdr[0], hdr[1:]
	if chomp != "" && chomp != "-" && chomp != "+" {
		return nil, fmt.Errorf("yaml: unsupported block scalar header %q", hdr)
	}
	var body []string
	blockInd := -1
	for p.pos < len(p.lines) {
		l := p.lines[p.pos]
		if strings.TrimSpace(l) == "" {
			body = append(body, "")
			p.pos++
			continue
		}
		li := indentOf(l)
		if li <= ind || (blockInd >= 0 && li < blockInd) {
			break
		}
		if blockInd < 0 {
			blockInd = li
		}
		body = append(body, l[blockInd:])
		p.pos++
	}
	// Trailing blank lines belong to chomping, not content.
	trailing := 0
	for len(body) > 0 && body[len(body)-1] == "" {
		body = body[:len(body)-1]
		trailing++
	}
	var v string
	if style == '|' {
		v = strings.Join(body, "\n")
	} else {
		var b strings.Builder
		for i, l := range body {
			if i > 0 {
				if l == "" || body[i-1] == "" {
					b.WriteString("\n")
				} else {
					b.WriteString(" ")
				}
			}
			b.WriteString(l)
		}
		v = b.String()
	}
	switch chomp {
	case "":
		if len(body) > 0 {
			v += "\n"
		}
	case "+":
		v += "\n" + strings.Repeat("\n", trailing)
	}
	return &yNode{kind: yScalar, str: v}, nil
}

// parseFlowSeq parses a one-line "[a, 'b', "c"]" of scalars.
func parseFlowSeq(s string) (*yNode, error) {
	n := &yNode{kind: ySeq}
	i := 1
	for {
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if i >= len(s) {
			return nil, fmt.Errorf("yaml: unterminated flow sequence %q", s)
		}
		if s[i] == ']' {
			if a := strings.TrimSpace(s[i+1:]); a != "" && a[0] != '#' {
				return nil, fmt.Errorf("yaml: text after flow sequence %q", s)
			}
			return n, nil
		}
		var v, after string
		var err error
		switch s[i] {
		case '"':
			v, after, err = parseDoubleQuoted(s[i:])
		case '\'':
			v, after, err = parseSingleQuoted(s[i:])
		case '[', '{':
			return nil, fmt.Errorf("yaml: nested flow collections not supported: %q", s)
		default:
			j := strings.IndexAny(s[i:], ",]")
			if j < 0 {
				return nil, fmt.Errorf("yaml: unterminated flow sequence %q", s)
			}
			v, after = strings.TrimSpace(s[i:i+j]), s[i+j:]
		}
		if err != nil {
			return nil, err
		}
		n.seq = append(n.seq, &yNode{kind: yScalar, str: v})
		after = strings.TrimLeft(after, " ")
		i = len(s) - len(after)
		if strings.HasPrefix(after, ",") {
			i++
		} else if !strings.HasPrefix(after, "]") {
			return nil, fmt.Errorf("yaml: expected ',' or ']' in %q", s)
		}
	}
}

// parseDoubleQuoted parses a "..." scalar at the start of s and returns it
// with the text after the closing quote. \xNN produces the raw byte, as the
// suite uses it for invalid UTF-8.
func parseDoubleQuoted(s string) (string, string, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			return b.String(), s[i+1:], nil
		case '\\':
			i++
			if i >= len(s) {
				return "", "", fmt.Errorf("yaml: bad escape in %q", s)
			}
			switch e := s[i]; e {
			case '0':
				b.WriteByte(0)
			case 'a':
				b.WriteByte(7)
			case 'b':
				b.WriteByte(8)
			case 't':
				b.WriteByte('\t')
			case 'n':
				b.WriteByte('\n')
			case 'v':
				b.WriteByte('\v')
			case 'f':
				b.WriteByte('\f')
			case 'r':
				b.WriteByte('\r')
			case 'e':
				b.WriteByte(0x1b)
			case ' ', '"', '/', '\\':
				b.WriteByte(e)
			case 'x', 'u', 'U':
				width := map[byte]int{'x': 2, 'u': 4, 'U': 8}[e]
				if i+width >= len(s) {
					return "", "", fmt.Errorf("yaml: short escape in %q", s)
				}
				v, err := strconv.ParseUint(s[i+1:i+1+width], 16, 32)
				if err != nil {
					return "", "", fmt.Errorf("yaml: bad escape in %q: %w", s, err)
				}
				if e == 'x' {
					b.WriteByte(byte(v))
				} else {
					b.WriteRune(rune(v))
				}
				i += width
			default:
				return "", "", fmt.Errorf("yaml: unsupported escape \\%c in %q", e, s)
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", fmt.Errorf("yaml: unterminated double-quoted scalar %q", s)
}

func parseSingleQuoted(s string) (string, string, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] == '\'' {
			if i+1 < len(s) && s[i+1] == '\'' {
				b.WriteByte('\'')
				i++
				continue
			}
			return b.String(), s[i+1:], nil
		}
		b.WriteByte(s[i])
	}
	return "", "", fmt.Errorf("yaml: unterminated single-quoted scalar %q", s)
}
