package lists

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/net/idna"

	"github.com/mailgate/mailgate/internal/policy"
)

// Sentinels framing a text for the automaton: 0xFE and 0xFF never occur in
// UTF-8, and every text and value is valid UTF-8 after Normalize, so a
// pattern starting with textStart can only match at the start of a text and
// one ending with textEnd only at its end.
const (
	textStart = "\xfe"
	textEnd   = "\xff"
)

// compiled is an Entry ready for matching.
type compiled struct {
	Entry
	list   string // listKey of Scope and Owner
	field  int
	deny   bool
	action policy.Action // deny action of the entry; Continue = the setting
	re     *regexp.Regexp
}

// fieldIndex holds one field's non-regex entries.
type fieldIndex struct {
	exact   map[string][]int32 // normalised value → entries
	ac      *automaton
	acPats  [][]int32 // automaton pattern → entries
	entries int
}

// Index is a tenant's entries compiled for matching. It is immutable and
// safe for concurrent use.
type Index struct {
	entries []compiled // by ascending ID
	fields  [numFields]fieldIndex
	lists   map[string][]int32 // listKey → its regex entries (the key exists for every list with an entry)
	skipped []error
}

// Compile builds the index of entries. Entries that fail Validate, and
// regex entries beyond MaxRegexPerTenant or MaxRegexTotalProgram (highest
// IDs first), are skipped
// and reported by Skipped; they never make Compile fail, so one bad row
// cannot disable a tenant's lists. Entries are taken in ID order, which
// breaks ties when several entries of a deciding list match.
func Compile(entries []Entry) *Index {
	sorted := slices.Clone(entries)
	slices.SortStableFunc(sorted, func(a, b Entry) int { return cmp.Compare(a.ID, b.ID) })
	x := &Index{lists: make(map[string][]int32)}
	pats := [numFields][]string{}
	patID := [numFields]map[string]int32{}
	regexes, program := 0, 0
	for _, e := range sorted {
		re, size, err := validate(e)
		if err != nil {
			x.skipped = append(x.skipped, fmt.Errorf("entry %d: %w", e.ID, err))
			continue
		}
		f, _ := fieldID(e.Field)
		c := compiled{Entry: e, list: listKey(e.Scope, e.Owner), field: f, deny: e.Kind == KindDeny}
		if c.deny && e.Action != "" {
			c.action, _ = policy.ParseAction(e.Action)
		}
		if e.Mode == ModeRegex {
			if regexes >= MaxRegexPerTenant {
				x.skipped = append(x.skipped, fmt.Errorf("entry %d: more than %d regex entries", e.ID, MaxRegexPerTenant))
				continue
			}
			if program+size > MaxRegexTotalProgram {
				x.skipped = append(x.skipped, fmt.Errorf("entry %d: regexes larger than %d instructions in all", e.ID, MaxRegexTotalProgram))
				continue
			}
			regexes++
			program += size
			c.re = re
		}
		i := int32(len(x.entries))
		x.entries = append(x.entries, c)
		if _, ok := x.lists[c.list]; !ok {
			x.lists[c.list] = nil // the list exists, with no regex yet
		}
		fi := &x.fields[f]
		fi.entries++
		addPat := func(p string) {
			if patID[f] == nil {
				patID[f] = make(map[string]int32)
			}
			id, ok := patID[f][p]
			if !ok {
				id = int32(len(pats[f]))
				patID[f][p] = id
				pats[f] = append(pats[f], p)
				fi.acPats = append(fi.acPats, nil)
			}
			fi.acPats[id] = append(fi.acPats[id], i)
		}
		addExact := func(v string) {
			if fi.exact == nil {
				fi.exact = make(map[string][]int32)
			}
			fi.exact[v] = append(fi.exact[v], i)
		}
		v := normValue(e.Field, e.Mode, e.Value)
		switch e.Mode {
		case ModeExact:
			addExact(v)
		case ModeContains:
			addPat(v)
		case ModePrefix:
			addPat(textStart + v)
		case ModeSuffix:
			if f == fFromDomain {
				// The domain itself or a subdomain, on a label boundary.
				addExact(v)
				addPat("." + v + textEnd)
			} else {
				addPat(v + textEnd)
			}
		case ModeRegex:
			x.lists[c.list] = append(x.lists[c.list], i)
		}
	}
	for f := range x.fields {
		if len(pats[f]) > 0 {
			x.fields[f].ac = buildAutomaton(pats[f])
		}
	}
	return x
}

// Len returns the number of entries in the index.
func (x *Index) Len() int { return len(x.entries) }

// Skipped returns why entries were left out, one error per entry.
func (x *Index) Skipped() []error { return slices.Clone(x.skipped) }

// hasList reports whether the list with key k has any entry.
func (x *Index) hasList(k string) bool {
	_, ok := x.lists[k]
	return ok
}

// usesHeader reports whether any entry needs the parsed message.
func (x *Index) usesHeader() bool {
	return x.fields[fFromAddr].entries+x.fields[fFromDomain].entries+x.fields[fSubject].entries > 0
}

// texts are the normalised texts of one message, per field.
type texts struct {
	vals [numFields][]string
	// allowOK is false when a field had several values (several From
	// addresses, several Subject fields): then only deny entries match.
	allowOK [numFields]bool
}

// match returns the entries matching t, in ID order, each once. Only
// entries of lists in want are returned (all lists when want is nil), and
// regexes are evaluated only for those lists.
// Regex evaluation, the only part whose cost grows with the entries,
// stops with ctx's error when ctx ends.
func (x *Index) match(ctx context.Context, t *texts, want map[string]bool) ([]int32, error) {
	var hits []int32
	add := func(i int32) {
		c := &x.entries[i]
		if !c.deny && !t.allowOK[c.field] {
			return
		}
		if want != nil && !want[c.list] {
			return
		}
		hits = append(hits, i)
	}
	for f := range x.fields {
		fi := &x.fields[f]
		if fi.entries == 0 {
			continue
		}
		for _, v := range t.vals[f] {
			for _, i := range fi.exact[v] {
				add(i)
			}
			if fi.ac != nil {
				fi.ac.scan(func(p int32) {
					for _, i := range fi.acPats[p] {
						add(i)
					}
				}, textStart, v, textEnd)
			}
		}
	}
	evalList := func(res []int32) error {
		for _, i := range res {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("lists: regex entries: %w", err)
			}
			c := &x.entries[i]
			if !c.deny && !t.allowOK[c.field] {
				continue
			}
			for _, v := range t.vals[c.field] {
				if c.re.MatchString(regexText(v)) {
					hits = append(hits, i)
					break
				}
			}
		}
		return nil
	}
	for k, res := range x.lists {
		if want != nil && !want[k] {
			continue
		}
		if err := evalList(res); err != nil {
			return nil, err
		}
	}
	slices.Sort(hits)
	return slices.Compact(hits), nil
}

// regexText is the part of a normalised text that regexes see.
func regexText(v string) string { return clip(v, MaxRegexTextBytes) }

// listKey is the key of the list of scope and owner; recipients' lists are
// looked up with the same function, so spelling differences (case, a
// trailing dot, U-label or A-label) do not matter.
func listKey(scope, owner string) string {
	owner = strings.TrimSpace(owner)
	switch scope {
	case ScopeDomain:
		return "d:" + domainKey(owner)
	case ScopeAddress:
		at := strings.LastIndexByte(owner, '@')
		if at < 0 {
			return "a:" + strings.ToLower(owner)
		}
		return "a:" + strings.ToLower(owner[:at]) + "@" + domainKey(owner[at+1:])
	default:
		return "g:" + strings.ToLower(owner)
	}
}

// domainKey is the lower-case A-label form of a domain, or the lower-cased
// input when it is not a valid IDN.
func domainKey(d string) string {
	d = strings.ToLower(strings.TrimSuffix(d, "."))
	for i := 0; i < len(d); i++ {
		if d[i] >= 0x80 {
			if a, err := idna.Lookup.ToASCII(d); err == nil {
				return a
			}
			return d
		}
	}
	return d
}
