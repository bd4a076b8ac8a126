package web

import (
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/mailgate/mailgate/internal/admin"
	"github.com/mailgate/mailgate/internal/store"
)

// formField is one setting of a structured policy form: what is set at the
// chosen scope, and what applies when nothing is (a broader scope's value
// or the default).
type formField struct {
	admin.PolicyField
	Value, Inherited, From string
	Desc                   string
}

// formSection is one check's form.
type formSection struct {
	Name   string
	Fields []formField
	Band   template.HTML // the spam score bands as a bar, spam only
}

func policyKeyInfo(key string) policyKey {
	for _, k := range policyKeys {
		if k.Key == key {
			return k
		}
	}
	return policyKey{Key: key}
}

// policyForms builds the structured forms for one scope and owner from the
// tenant's settings. An address inherits its domain's value before the
// tenant's; a domain or group inherits the tenant's.
func policyForms(ss []store.Setting, scope, owner, lang string) []formSection {
	at := func(sc, ow, key string) (string, bool) {
		for _, st := range ss {
			if st.Scope == sc && strings.EqualFold(st.Owner, ow) && st.Key == key {
				return st.Value, true
			}
		}
		return "", false
	}
	var broader [][2]string // scope, owner, narrowest first
	switch scope {
	case store.ScopeAddress:
		if i := strings.LastIndexByte(owner, '@'); i >= 0 {
			broader = append(broader, [2]string{store.ScopeDomain, owner[i+1:]})
		}
		broader = append(broader, [2]string{store.ScopeTenant, ""})
	case store.ScopeDomain, store.ScopeGroup:
		broader = append(broader, [2]string{store.ScopeTenant, ""})
	}
	var out []formSection
	for _, sec := range admin.PolicySections {
		fs := formSection{Name: sec.Name}
		eff := map[string]string{}
		for _, f := range sec.Fields {
			info := policyKeyInfo(f.Key)
			ff := formField{PolicyField: f, Desc: info.Desc(lang), Inherited: info.Default, From: "default"}
			for _, b := range broader {
				if v, ok := at(b[0], b[1], f.Key); ok {
					ff.Inherited, ff.From = v, b[0]
					break
				}
			}
			ff.Value, _ = at(scope, owner, f.Key)
			eff[f.Key] = ff.Inherited
			if ff.Value != "" {
				eff[f.Key] = ff.Value
			}
			fs.Fields = append(fs.Fields, ff)
		}
		if sec.Name == "spam" {
			fs.Band = spamBands(eff["spam.tag_at"], eff["spam.quarantine_at"], eff["spam.reject_at"])
		}
		out = append(out, fs)
	}
	return out
}

// spamBands draws what happens at each spam score as one bar: delivered,
// tagged, quarantined, refused. It is inline SVG so the page needs no
// script; only numbers reach the markup.
func spamBands(tag, quarantine, reject string) template.HTML {
	num := func(v string) float64 {
		f, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), "%"), 64)
		if err != nil || strings.EqualFold(v, "off") {
			return math.Inf(1)
		}
		return math.Max(0, math.Min(100, f))
	}
	// The strongest action reached wins, so each band ends where a
	// stronger one starts.
	r := num(reject)
	q := math.Min(num(quarantine), r)
	t := math.Min(num(tag), q)
	edges := []struct {
		class    string
		from, to float64
	}{{"band-deliver", 0, t}, {"band-tag", t, q}, {"band-quarantine", q, r}, {"band-reject", r, 100}}
	var b strings.Builder
	b.WriteString(`<svg class="bands" id="spam-bands" role="img" viewBox="0 0 300 34" width="100%" height="34">`)
	for _, e := range edges {
		from, to := math.Min(e.from, 100), math.Min(e.to, 100)
		if to <= from {
			continue
		}
		fmt.Fprintf(&b, `<rect x="%.1f" y="0" width="%.1f" height="18" class="%s" data-from="%g" data-to="%g"></rect>`, from*3, (to-from)*3, e.class, from, to)
	}
	for _, v := range []float64{0, 50, 100} {
		fmt.Fprintf(&b, `<text x="%.0f" y="31" class="axis">%g%%</text>`, math.Min(v*3, 270), v)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func (s *Server) policySection(w http.ResponseWriter, r *http.Request, p *principal) {
	scope, owner, ch, err := sectionForm(r)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	if _, err := s.admin.ApplySettings(r.Context(), who(p), scope, owner, ch); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, string(policyURL(scope, owner)), "saved")
}

// KindName is the field's kind as the template compares it.
func (f formField) KindName() string { return string(f.Kind) }

// dryRunData is the dry-run result page.
type dryRunData struct {
	Scope, Owner string
	Values       []string // key=value as tried
	Days         int
	Result       admin.DryRunResult
	Transitions  []dryRunCount
	Back         template.URL // the policy page of the scope
}

type dryRunCount struct {
	Change string
	N      int
}

// sectionForm reads a posted policy form: its scope, owner and values.
func sectionForm(r *http.Request) (scope, owner string, ch admin.SettingsChange, err error) {
	if err := r.ParseForm(); err != nil {
		return "", "", nil, badRequest("form: %v", err)
	}
	name := r.PostFormValue("section")
	if ch = sectionChange(r, name); len(ch) == 0 {
		return "", "", nil, badRequest("unknown policy section %q", name)
	}
	return r.PostFormValue("scope"), strings.TrimSpace(r.PostFormValue("owner")), ch, nil
}

// policyURL is the policy page of a scope.
func policyURL(scope, owner string) template.URL {
	q := url.Values{"scope": {scope}}
	if owner != "" {
		q.Set("owner", owner)
	}
	return link("/policy", q)
}

// sectionChange reads the values of one form section.
func sectionChange(r *http.Request, name string) admin.SettingsChange {
	ch := admin.SettingsChange{}
	for _, sec := range admin.PolicySections {
		if sec.Name != name {
			continue
		}
		for _, f := range sec.Fields {
			if vs, ok := r.PostForm["v."+f.Key]; ok && len(vs) == 1 {
				ch[f.Key] = vs[0]
			}
		}
	}
	return ch
}

// policyDryRun shows what a section's values, as typed in the form, would
// have done to the archived inbound mail; nothing is saved.
func (s *Server) policyDryRun(w http.ResponseWriter, r *http.Request, p *principal) {
	scope, owner, ch, err := sectionForm(r)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	days := admin.DryRunDefaultDays
	if v := r.PostFormValue("days"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			s.fail(w, r, p, badRequest("days: a whole number"))
			return
		}
		days = n
	}
	res, err := s.admin.PolicyDryRun(r.Context(), who(p), scope, owner, ch, days, 0)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	d := dryRunData{Scope: scope, Owner: owner, Days: days, Result: res, Back: policyURL(scope, owner)}
	for k, v := range ch {
		d.Values = append(d.Values, k+"="+v)
	}
	sort.Strings(d.Values)
	for t, n := range res.Transitions {
		d.Transitions = append(d.Transitions, dryRunCount{t, n})
	}
	sort.Slice(d.Transitions, func(i, j int) bool { return d.Transitions[i].N > d.Transitions[j].N })
	v := s.newView(r, p, "policy_dry_run")
	v.Data = d
	s.render(w, http.StatusOK, "policy_dryrun", v)
}
