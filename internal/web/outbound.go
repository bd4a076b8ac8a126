package web

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/admin"
	"github.com/mailgate/mailgate/internal/attachtext"
	"github.com/mailgate/mailgate/internal/outbound"
	"github.com/mailgate/mailgate/internal/signedlink"
	"github.com/mailgate/mailgate/internal/store"
)

// Outbound protection in the console and the API: the tenant's rules
// (administrators), the test of a pasted message, the held and delayed
// messages (administrators see all, users their own and those they
// approve) with their decisions, and the confirmation page of the signed
// links in approval requests and delay notices. Every change goes through
// the administration layer.

func (s *Server) outboundRoutes() {
	s.handle("GET /outbound/rules", store.RoleAdmin, s.outRulesPage)
	s.handle("POST /outbound/rules", store.RoleAdmin, s.outRuleAdd)
	s.handle("GET /outbound/rules/{id}", store.RoleAdmin, s.outRuleEditPage)
	s.handle("POST /outbound/rules/{id}", store.RoleAdmin, s.outRuleUpdate)
	s.handle("POST /outbound/rules/{id}/{op}", store.RoleAdmin, s.outRuleOp)
	s.handle("GET /outbound/test", store.RoleAdmin, s.outTestPage)
	s.handle("POST /outbound/test", store.RoleAdmin, s.outTestPage)
	s.handle("GET /outbound/holds", store.RoleUser, s.outHoldsPage)
	s.handle("GET /outbound/holds/{id}", store.RoleUser, s.outHoldPage)
	s.handle("POST /outbound/holds/{id}/{decision}", store.RoleUser, s.outHoldDecide)
	s.public("GET /o/link", s.outLinkPage)
	s.public("POST /o/link", s.outLinkPost)
}

// ruleForm is a rule as the console's form shows it.
type ruleForm struct {
	ID                     int64
	Name, Scope, Owner     string
	Enabled                bool
	Spec                   outbound.Spec
	Conditions, Exceptions string // the line form
	Bcc                    string
	JSON                   string // the definition, for rules the line form cannot show exactly
	Exact                  bool
	Position               int
}

func toRuleForm(r store.OutboundRule) ruleForm {
	f := ruleForm{ID: r.ID, Name: r.Name, Scope: r.Scope, Owner: r.Owner, Enabled: r.Enabled, JSON: r.Spec, Position: r.Position}
	sp, err := outbound.ParseSpec(r.Spec)
	if err != nil {
		return f
	}
	f.Spec = sp
	f.Conditions, f.Exceptions = outbound.FormatConditionLines(sp.Conditions), outbound.FormatConditionLines(sp.Exceptions)
	f.Bcc = strings.Join(sp.Bcc, ", ")
	f.Exact = outbound.LinesExact(sp.Conditions) && outbound.LinesExact(sp.Exceptions)
	return f
}

// ruleFromForm reads the rule form: the definition from its fields, or
// from the JSON field when that is filled in.
func ruleFromForm(r *http.Request) (store.OutboundRule, error) {
	out := store.OutboundRule{Name: r.PostFormValue("name"), Scope: r.PostFormValue("scope"), Owner: r.PostFormValue("owner"),
		Enabled: r.PostFormValue("enabled") != ""}
	if js := strings.TrimSpace(r.PostFormValue("json")); js != "" {
		out.Spec = js
		return out, nil
	}
	sp := outbound.Spec{Action: r.PostFormValue("action"), Match: r.PostFormValue("match"), Reason: strings.TrimSpace(r.PostFormValue("reason")),
		ReasonJA: strings.TrimSpace(r.PostFormValue("reason_ja")), Tag: strings.TrimSpace(r.PostFormValue("tag")),
		Header: strings.TrimSpace(r.PostFormValue("header")), HeaderValue: strings.TrimSpace(r.PostFormValue("header_value")),
		ApproverGroup: strings.TrimSpace(r.PostFormValue("approver_group")), OnTimeout: r.PostFormValue("on_timeout"),
		Stop: r.PostFormValue("stop") != ""}
	var err error
	if sp.Conditions, err = outbound.ParseConditionLines(r.PostFormValue("conditions")); err != nil {
		return out, badRequest("conditions: %v", err)
	}
	if sp.Exceptions, err = outbound.ParseConditionLines(r.PostFormValue("exceptions")); err != nil {
		return out, badRequest("exceptions: %v", err)
	}
	for _, a := range strings.FieldsFunc(r.PostFormValue("bcc"), func(r rune) bool { return r == ',' || r == ' ' || r == ';' }) {
		sp.Bcc = append(sp.Bcc, a)
	}
	for name, dst := range map[string]*int{"delay_minutes": &sp.DelayMinutes, "timeout_hours": &sp.TimeoutHours} {
		if v := strings.TrimSpace(r.PostFormValue(name)); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return out, badRequest("%s: a number", name)
			}
			*dst = n
		}
	}
	out.Spec = sp.Encode()
	return out, nil
}

type outRulesData struct {
	Edit    bool // one rule's form only
	Rules   []ruleForm
	New     ruleForm
	Actions []string
	Fields  []string
	Types   []string
}

func (s *Server) outRulesPage(w http.ResponseWriter, r *http.Request, p *principal) {
	if _, err := p.tid(); err != nil {
		http.Redirect(w, r, "/tenants", http.StatusSeeOther)
		return
	}
	rs, err := s.admin.OutboundRules(r.Context(), who(p))
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	d := outRulesData{New: ruleForm{Enabled: true, Scope: store.ScopeTenant, Spec: outbound.Spec{Action: outbound.ActHold}},
		Actions: outbound.Actions, Fields: outbound.Fields, Types: attachtext.Types}
	for _, x := range rs {
		d.Rules = append(d.Rules, toRuleForm(x))
	}
	v := s.newView(r, p, "nav_outbound")
	v.Data = d
	s.render(w, http.StatusOK, "outbound_rules", v)
}

func (s *Server) outRuleAdd(w http.ResponseWriter, r *http.Request, p *principal) {
	rule, err := ruleFromForm(r)
	if err == nil {
		_, err = s.admin.AddOutboundRule(r.Context(), who(p), rule)
	}
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/outbound/rules", "added")
}

func (s *Server) outRuleEditPage(w http.ResponseWriter, r *http.Request, p *principal) {
	rule, err := s.admin.OutboundRule(r.Context(), who(p), atoi64(r.PathValue("id")))
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	v := s.newView(r, p, "out_rule_edit")
	v.Data = outRulesData{Edit: true, New: toRuleForm(rule), Actions: outbound.Actions, Fields: outbound.Fields, Types: attachtext.Types}
	s.render(w, http.StatusOK, "outbound_rules", v)
}

func (s *Server) outRuleUpdate(w http.ResponseWriter, r *http.Request, p *principal) {
	rule, err := ruleFromForm(r)
	if err == nil {
		rule.ID = atoi64(r.PathValue("id"))
		_, err = s.admin.UpdateOutboundRule(r.Context(), who(p), rule)
	}
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/outbound/rules", "saved")
}

func (s *Server) outRuleOp(w http.ResponseWriter, r *http.Request, p *principal) {
	ctx, a, id := r.Context(), who(p), atoi64(r.PathValue("id"))
	var err error
	msg := "saved"
	switch r.PathValue("op") {
	case "delete":
		err, msg = s.admin.DeleteOutboundRule(ctx, a, id), "deleted"
	case "up":
		err = s.admin.MoveOutboundRule(ctx, a, id, -1)
	case "down":
		err = s.admin.MoveOutboundRule(ctx, a, id, 1)
	case "enable", "disable":
		err = s.admin.SetOutboundRuleEnabled(ctx, a, id, r.PathValue("op") == "enable")
	default:
		err = store.ErrNotFound
	}
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/outbound/rules", msg)
}

type outTestData struct {
	Message, MailFrom, Rcpts string
	Result                   *outbound.TestResult
}

// outTestPage runs a pasted message through the rules (the test button):
// POST only reads, it changes nothing.
func (s *Server) outTestPage(w http.ResponseWriter, r *http.Request, p *principal) {
	if _, err := p.tid(); err != nil {
		http.Redirect(w, r, "/tenants", http.StatusSeeOther)
		return
	}
	d := outTestData{}
	if r.Method == http.MethodPost {
		d.Message, d.MailFrom, d.Rcpts = r.PostFormValue("message"), r.PostFormValue("mail_from"), r.PostFormValue("rcpts")
		res, err := s.admin.TestOutboundRules(r.Context(), who(p), []byte(d.Message), d.MailFrom, splitAddrs(d.Rcpts), nil)
		if err != nil {
			s.fail(w, r, p, err)
			return
		}
		d.Result = &res
	}
	v := s.newView(r, p, "out_test_title")
	v.Data = d
	s.render(w, http.StatusOK, "outbound_test", v)
}

func splitAddrs(v string) []string {
	var out []string
	for _, a := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == ';' || r == '\n' || r == '\r' }) {
		out = append(out, a)
	}
	return out
}

type outHoldsData struct {
	Holds []admin.HoldView
	Q     map[string]string
}

func holdFilter(r *http.Request) store.HoldFilter {
	q := r.URL.Query()
	f := store.HoldFilter{Kind: q.Get("kind"), State: q.Get("state"), Limit: int(atoi64(q.Get("limit")))}
	if f.Kind != store.HoldApproval && f.Kind != store.HoldDelay {
		f.Kind = ""
	}
	switch f.State {
	case store.HoldPending, store.HoldSent, store.HoldRejected, store.HoldCancelled:
	default:
		f.State = ""
	}
	return f
}

func (s *Server) outHoldsPage(w http.ResponseWriter, r *http.Request, p *principal) {
	if _, err := p.tid(); err != nil {
		http.Redirect(w, r, "/tenants", http.StatusSeeOther)
		return
	}
	f := holdFilter(r)
	hs, err := s.admin.OutboundHolds(r.Context(), who(p), f)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	v := s.newView(r, p, "nav_outbound_holds")
	v.Data = outHoldsData{Holds: hs, Q: map[string]string{"kind": f.Kind, "state": f.State}}
	s.render(w, http.StatusOK, "outbound_holds", v)
}

func (s *Server) outHoldPage(w http.ResponseWriter, r *http.Request, p *principal) {
	h, err := s.admin.OutboundHold(r.Context(), who(p), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	v := s.newView(r, p, "out_hold_title")
	v.Data = h
	s.render(w, http.StatusOK, "outbound_hold", v)
}

func (s *Server) outHoldDecide(w http.ResponseWriter, r *http.Request, p *principal) {
	id := r.PathValue("id")
	if _, err := s.admin.DecideOutboundHold(r.Context(), who(p), id, r.PathValue("decision"), r.PostFormValue("note")); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/outbound/holds/"+url.PathEscape(id), "done")
}

// --- signed links from approval requests and delay notices ---

type outLinkData struct {
	Token, Action, Done string
	Hold                store.OutboundHold
}

// outLinkPage shows what a link will do and asks for one click (mail
// scanners open links; a GET changes nothing), as the quarantine digest's
// links do.
func (s *Server) outLinkPage(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("t")
	l, ok := s.verifyOutLink(w, r, tok)
	if !ok {
		return
	}
	h, err := s.d.Store.OutboundHold(r.Context(), l.TenantID, l.ItemID)
	if err != nil {
		s.fail(w, r, nil, store.ErrNotFound)
		return
	}
	d := outLinkData{Token: tok, Action: string(l.Action), Hold: h}
	if h.State != store.HoldPending {
		d.Done = "out_link_used"
	}
	v := s.newView(r, nil, "out_link_title")
	v.Data = d
	s.render(w, http.StatusOK, "outbound_link", v)
}

func (s *Server) outLinkPost(w http.ResponseWriter, r *http.Request) {
	l, ok := s.verifyOutLink(w, r, r.PostFormValue("t"))
	if !ok {
		return
	}
	if s.admin.OutHolds == nil {
		s.fail(w, r, nil, store.ErrNotFound)
		return
	}
	h, err := s.admin.OutHolds.ApplyLink(r.Context(), l, r.PostFormValue("note"))
	d := outLinkData{Action: string(l.Action), Hold: h, Done: "out_link_done_" + string(l.Action)}
	switch {
	case errors.Is(err, outbound.ErrDecided):
		d.Done = "out_link_used"
	case errors.Is(err, outbound.ErrNotAllowed), errors.Is(err, outbound.ErrSelfApproval), errors.Is(err, outbound.ErrWrongKind):
		s.fail(w, r, nil, errForbidden)
		return
	case err != nil:
		s.fail(w, r, nil, err)
		return
	}
	v := s.newView(r, nil, "out_link_title")
	v.Data = d
	s.render(w, http.StatusOK, "outbound_link", v)
}

// verifyOutLink checks an outbound link's token (the digest links' key
// and expiry); only approve, reject and cancel links are taken here.
func (s *Server) verifyOutLink(w http.ResponseWriter, r *http.Request, tok string) (signedlink.Link, bool) {
	l, ok := s.verifyLink(w, r, tok)
	if !ok {
		return l, false
	}
	switch l.Action {
	case signedlink.Approve, signedlink.Reject, signedlink.Cancel:
		return l, true
	}
	s.fail(w, r, nil, store.ErrNotFound)
	return l, false
}

// --- API ---

// ruleJSON is a rule in the API: its definition as an object.
type ruleJSON struct {
	ID       int64         `json:"id"`
	Position int           `json:"position"`
	Name     string        `json:"name"`
	Enabled  bool          `json:"enabled"`
	Scope    string        `json:"scope"`
	Owner    string        `json:"owner,omitempty"`
	Spec     outbound.Spec `json:"spec"`
	Updated  string        `json:"updated,omitempty"`
	By       string        `json:"updated_by,omitempty"`
}

func toRuleJSON(r store.OutboundRule) ruleJSON {
	sp, _ := outbound.ParseSpec(r.Spec)
	out := ruleJSON{ID: r.ID, Position: r.Position, Name: r.Name, Enabled: r.Enabled, Scope: r.Scope, Owner: r.Owner, Spec: sp, By: r.UpdatedBy}
	if !r.Updated.IsZero() {
		out.Updated = r.Updated.UTC().Format("2006-01-02T15:04:05Z")
	}
	return out
}

func (in ruleJSON) rule() store.OutboundRule {
	return store.OutboundRule{ID: in.ID, Position: in.Position, Name: in.Name, Enabled: in.Enabled, Scope: in.Scope, Owner: in.Owner, Spec: in.Spec.Encode()}
}

// holdJSON is a held or delayed message in the API.
type holdJSON struct {
	ID        string     `json:"id"`
	Kind      string     `json:"kind"`
	State     string     `json:"state"`
	Sender    string     `json:"sender"`
	Subject   string     `json:"subject"`
	Rcpts     string     `json:"rcpts"`
	Size      int64      `json:"size"`
	Rule      string     `json:"rule"`
	Reason    string     `json:"reason"`
	Group     string     `json:"group"`
	ReleaseAt time.Time  `json:"release_at"`
	OnTimeout string     `json:"on_timeout"`
	Created   time.Time  `json:"created"`
	Decided   *time.Time `json:"decided,omitempty"`
	DecidedBy string     `json:"decided_by,omitempty"`
	Note      string     `json:"note,omitempty"`
	Approvers []string   `json:"approvers,omitempty"`
	Allowed   []string   `json:"allowed,omitempty"`
}

func toHoldJSON(h store.OutboundHold, approvers, allowed []string) holdJSON {
	out := holdJSON{ID: h.MessageID, Kind: h.Kind, State: h.State, Sender: h.Sender, Subject: h.Subject, Rcpts: h.Rcpts, Size: h.Size,
		Rule: h.Rule, Reason: h.Reason, Group: h.Group, ReleaseAt: h.ReleaseAt, OnTimeout: h.OnTimeout, Created: h.Created,
		DecidedBy: h.DecidedBy, Note: h.Note, Approvers: approvers, Allowed: allowed}
	if !h.Decided.IsZero() {
		d := h.Decided
		out.Decided = &d
	}
	return out
}

func (s *Server) outboundAPI() {
	s.api("GET /outbound/rules", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		rs, err := s.admin.OutboundRules(r.Context(), who(p))
		out := []ruleJSON{}
		for _, x := range rs {
			out = append(out, toRuleJSON(x))
		}
		return out, err
	})
	s.api("POST /outbound/rules", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		var in ruleJSON
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		in.ID = 0
		out, err := s.admin.AddOutboundRule(r.Context(), who(p), in.rule())
		return created{toRuleJSON(out)}, err
	})
	s.api("GET /outbound/rules/{id}", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		out, err := s.admin.OutboundRule(r.Context(), who(p), atoi64(r.PathValue("id")))
		return toRuleJSON(out), err
	})
	s.api("PUT /outbound/rules/{id}", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		var in ruleJSON
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		in.ID = atoi64(r.PathValue("id"))
		out, err := s.admin.UpdateOutboundRule(r.Context(), who(p), in.rule())
		return toRuleJSON(out), err
	})
	s.api("DELETE /outbound/rules/{id}", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		return nil, s.admin.DeleteOutboundRule(r.Context(), who(p), atoi64(r.PathValue("id")))
	})
	s.api("PUT /outbound/rules-order", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		var in struct {
			IDs []int64 `json:"ids"`
		}
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		return nil, s.admin.ReorderOutboundRules(r.Context(), who(p), in.IDs)
	})
	s.api("POST /outbound/test", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		var in struct {
			Message  string     `json:"message"`
			MailFrom string     `json:"mail_from"`
			Rcpts    []string   `json:"rcpts"`
			Rules    []ruleJSON `json:"rules"`
		}
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		var rules []store.OutboundRule
		if in.Rules != nil {
			rules = []store.OutboundRule{}
			for i, x := range in.Rules {
				rr := x.rule()
				if rr.ID == 0 {
					rr.ID = int64(i + 1)
				}
				if rr.Scope == "" {
					rr.Scope = store.ScopeTenant
				}
				rules = append(rules, rr)
			}
		}
		return s.admin.TestOutboundRules(r.Context(), who(p), []byte(in.Message), in.MailFrom, in.Rcpts, rules)
	})
	s.api("GET /outbound/holds", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		f := holdFilter(r)
		f.Sender = strings.ToLower(r.URL.Query().Get("sender"))
		hs, err := s.admin.OutboundHolds(r.Context(), who(p), f)
		out := []holdJSON{}
		for _, h := range hs {
			out = append(out, toHoldJSON(h.OutboundHold, h.Approvers, h.Allowed))
		}
		return out, err
	})
	s.api("GET /outbound/holds/{id}", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		h, err := s.admin.OutboundHold(r.Context(), who(p), r.PathValue("id"))
		return toHoldJSON(h.OutboundHold, h.Approvers, h.Allowed), err
	})
	s.api("POST /outbound/holds/{id}/{decision}", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		var in struct {
			Note string `json:"note"`
		}
		if r.ContentLength != 0 {
			if err := decode(r, &in); err != nil {
				return nil, err
			}
		}
		h, err := s.admin.DecideOutboundHold(r.Context(), who(p), r.PathValue("id"), r.PathValue("decision"), in.Note)
		return toHoldJSON(h, nil, nil), err
	})
}
