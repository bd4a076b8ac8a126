package spam

import (
	"strings"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// Mail delivered through a mailing list carries the list's evidence
// besides the sender's: its header fields (List-*, Sender, Precedence,
// ...), the Received hops from the list server onwards, the Subject tag
// and the footer it appends. Those are the same on every message of the
// list, the spam that reaches it as well as its members' posts, and a
// model that has seen only the list's ham takes them all for ham
// evidence: one spam sent to the list then reads as a dozen strong ham
// clues. The tokenizer therefore leaves the list's additions out of a
// list-delivered message, marks it with the one feature "list:delivered",
// and judges it by what its sender wrote and the path it took to the list.

// mailingList describes how a message came through a list.
type mailingList struct {
	// org is the list host's registrable domain ("" when unknown).
	org string
	// entry is the index, among the message's Received fields (newest
	// first), of the hop by which the list server took the message in;
	// the fields before it are the list's onward delivery. -1 when no hop
	// names the list's host.
	entry int
}

// listHeader reports whether a header field is one a list manager adds.
func listHeader(name string) bool {
	switch name {
	case "list-id", "list-post", "list-unsubscribe", "list-subscribe", "list-help", "list-archive", "list-owner",
		"x-mailing-list", "mailing-list", "x-beenthere", "x-mailman-version", "x-list", "x-loop", "x-ml-name",
		"x-ml-count", "x-ml-info", "x-mail-count", "precedence", "errors-to", "sender":
		return true
	}
	return false
}

// listOf returns how msg came through a mailing list, nil when it did not:
// it has a List-Id, List-Post, List-Unsubscribe, X-Mailing-List,
// Mailing-List or X-BeenThere field (RFC 2369, RFC 2919, and the fields
// older list managers use).
func listOf(msg *mailtext.Message) *mailingList {
	var id, post, been, other string
	found := false
	for _, h := range msg.Header {
		switch strings.ToLower(h.Name) {
		case "list-id":
			found = true
			if i := strings.LastIndexByte(h.Value, '<'); i >= 0 {
				id = strings.TrimRight(h.Value[i+1:], "> \t")
			} else {
				id = strings.TrimSpace(h.Value)
			}
		case "list-post":
			found = true
			if i := strings.Index(strings.ToLower(h.Value), "mailto:"); i >= 0 {
				v := h.Value[i+7:]
				if j := strings.IndexAny(v, ">?, "); j >= 0 {
					v = v[:j]
				}
				post = addrDomain(v)
			}
		case "x-beenthere":
			found = true
			been = addrDomain(strings.Trim(strings.TrimSpace(h.Value), "<>"))
		case "list-unsubscribe", "x-mailing-list", "mailing-list":
			found = true
			if other == "" {
				other = hostOfListField(h.Value)
			}
		}
	}
	if !found {
		return nil
	}
	l := &mailingList{entry: -1}
	for _, c := range []string{strings.ToLower(id), post, been, other} {
		if c == "" || !strings.Contains(c, ".") {
			continue
		}
		if rd := regDomain(strings.Trim(c, ".")); rd != "" {
			l.org = rd
			break
		}
	}
	if l.org == "" {
		return l
	}
	n := 0
	for _, h := range msg.Header {
		if !strings.EqualFold(h.Name, "Received") {
			continue
		}
		if by := receivedBy(h.Value); by != "" && regDomain(by) == l.org {
			l.entry = n // the oldest such hop wins: it is the last seen
		}
		n++
	}
	return l
}

// hostOfListField returns the domain of the first mailto: address or URL
// host in a List-* style field.
func hostOfListField(v string) string {
	lv := strings.ToLower(v)
	if i := strings.Index(lv, "mailto:"); i >= 0 {
		s := lv[i+7:]
		if j := strings.IndexAny(s, ">?, "); j >= 0 {
			s = s[:j]
		}
		return addrDomain(s)
	}
	if i := strings.Index(lv, "://"); i >= 0 {
		s := lv[i+3:]
		if j := strings.IndexAny(s, "/>:?, "); j >= 0 {
			s = s[:j]
		}
		return s
	}
	if i := strings.LastIndexByte(lv, '@'); i >= 0 {
		return addrDomain(strings.Trim(lv[i:], "<> \t"))
	}
	return ""
}

// receivedBy returns the host name after "by" in a Received field.
func receivedBy(v string) string {
	f := strings.Fields(strings.ToLower(clip(v, 1024)))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "by" {
			h := strings.Trim(f[i+1], "();[],")
			if isHostname(h) {
				return h
			}
			return ""
		}
	}
	return ""
}

// isListHost reports whether host belongs to the list's organisation.
func (l *mailingList) isListHost(host string) bool {
	return l != nil && l.org != "" && (host == l.org || strings.HasSuffix(host, "."+l.org))
}

// stripListTag removes the tag a list puts before the Subject
// ("[SAtalk] ...", "[ILUG] ...", "Re: [fork] ..."): the list's name, not
// the sender's words.
func stripListTag(subject string) string {
	s := strings.TrimSpace(subject)
	prefix := ""
	for {
		low := strings.ToLower(s)
		if strings.HasPrefix(low, "re:") || strings.HasPrefix(low, "fw:") || strings.HasPrefix(low, "aw:") {
			prefix += s[:3] + " "
			s = strings.TrimSpace(s[3:])
			continue
		}
		if strings.HasPrefix(low, "fwd:") {
			prefix += s[:4] + " "
			s = strings.TrimSpace(s[4:])
			continue
		}
		break
	}
	if strings.HasPrefix(s, "[") {
		if j := strings.IndexByte(s, ']'); j > 0 && j <= 40 && !strings.ContainsAny(s[1:j], " \t") {
			return prefix + strings.TrimSpace(s[j+1:])
		}
	}
	return subject
}

// listFooterStart returns where the footer a list appended to text
// starts, or -1: the last separator line (eight or more '_', '-', '=' or
// '*', or the "-- " signature separator) in the last maxFooterBytes of the
// text, when what follows it names the list (its host, "mailing list",
// "listinfo", "unsubscribe" or "list").
func listFooterStart(text string, l *mailingList) int {
	const maxFooterBytes = 1500
	from := max(0, len(text)-maxFooterBytes)
	best := -1
	for i := from; i < len(text); {
		j := strings.IndexByte(text[i:], '\n')
		end := len(text)
		if j >= 0 {
			end = i + j
		}
		if isSeparatorLine(text[i:end]) {
			best = i
		}
		if j < 0 {
			break
		}
		i = end + 1
	}
	if best < 0 {
		return -1
	}
	tail := strings.ToLower(text[best:])
	if (l.org != "" && strings.Contains(tail, l.org)) || strings.Contains(tail, "list") || strings.Contains(tail, "unsubscribe") {
		return best
	}
	return -1
}

func isSeparatorLine(line string) bool {
	line = strings.TrimRight(line, "\r")
	if line == "-- " || line == "--" {
		return true
	}
	s := strings.TrimSpace(line)
	if len(s) < 8 {
		return false
	}
	c := s[0]
	if c != '_' && c != '-' && c != '=' && c != '*' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] != c {
			return false
		}
	}
	return true
}
