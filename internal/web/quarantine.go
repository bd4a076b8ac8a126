package web

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/addr"
	"github.com/mailgate/mailgate/internal/csvsafe"
	"github.com/mailgate/mailgate/internal/quarantine"
	"github.com/mailgate/mailgate/internal/signedlink"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/web/preview"
)

// Quarantine for people: end users see their own address's copies, tenant
// administrators every copy of their tenant. Every lookup goes through
// quarantineItem, which enforces both.

func (s *Server) quarantineRoutes() {
	s.handle("GET /quarantine", store.RoleUser, s.quarantinePage)
	s.handle("GET /quarantine/{id}", store.RoleUser, s.quarantineView)
	s.handle("GET /quarantine/{id}/body", store.RoleUser, s.quarantineBody)
	s.handle("GET /quarantine/{id}/att/{n}", store.RoleUser, s.quarantineAttachment)
	s.handle("POST /quarantine/{id}/{action}", store.RoleUser, s.quarantineAction)
	s.handle("GET /reports", store.RoleAdmin, s.reportsPage)
	s.handle("GET /reports.csv", store.RoleAdmin, s.reportsCSV)
	s.public("GET /q/link", s.linkPage)
	s.public("POST /q/link", s.linkPost)
}

// quarantineItem loads a copy the caller may see.
func (s *Server) quarantineItem(ctx context.Context, p *principal, id string) (store.QuarantineItem, error) {
	tid, err := p.tid()
	if err != nil {
		return store.QuarantineItem{}, err
	}
	it, err := s.d.Store.QuarantineItem(ctx, tid, id)
	if err != nil {
		return it, err
	}
	if it.TenantID != tid || (p.role == store.RoleUser && it.Rcpt != p.address) {
		return store.QuarantineItem{}, store.ErrNotFound
	}
	return it, nil
}

type quarantineData struct {
	Q       map[string]string
	Items   []store.QuarantineItem
	Total   int
	Usage   int64
	Count   int
	Quota   int64
	Prev    url.Values // query of the previous page; nil on the first
	Next    url.Values // query of the next page; nil on the last
	IsAdmin bool
	Sorts   []string
}

func (s *Server) quarantineFilter(r *http.Request, p *principal) (store.QuarantineFilter, error) {
	tid, err := p.tid()
	if err != nil {
		return store.QuarantineFilter{}, err
	}
	q := r.URL.Query()
	if err := checkSearchTerms(q, "q", "rcpt", "domain", "reason"); err != nil {
		return store.QuarantineFilter{}, err
	}
	f := store.QuarantineFilter{TenantID: tid, Rcpt: strings.ToLower(strings.TrimSpace(q.Get("rcpt"))), Domain: q.Get("domain"),
		State: store.QHeld, Query: strings.TrimSpace(q.Get("q")), Reason: q.Get("reason"), Sort: q.Get("sort"),
		Asc: q.Get("order") == "asc", Limit: 50}
	if st := store.QuarantineState(q.Get("state")); st == store.QReleased || st == store.QDeleted {
		f.State = st
	}
	if p.role == store.RoleUser {
		f.Rcpt, f.Domain = p.address, ""
	}
	switch f.Sort {
	case "", "date", "score", "sender", "subject", "size", "rcpt":
	default:
		return f, badRequest("unknown sort %q", f.Sort)
	}
	if o, err := strconv.Atoi(q.Get("offset")); err == nil && o > 0 {
		f.Offset = o
	}
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n > 0 && n <= 500 {
		f.Limit = n
	}
	return f, nil
}

func (s *Server) quarantinePage(w http.ResponseWriter, r *http.Request, p *principal) {
	ctx := r.Context()
	f, err := s.quarantineFilter(r, p)
	if err != nil {
		if p.tenantID == 0 {
			http.Redirect(w, r, "/tenants", http.StatusSeeOther)
			return
		}
		s.fail(w, r, p, err)
		return
	}
	items, total, err := s.d.Store.SearchQuarantine(ctx, f)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	d := quarantineData{Q: map[string]string{}, Items: items, Total: total, IsAdmin: p.role != store.RoleUser,
		Sorts: []string{"date", "score", "sender", "subject", "size", "rcpt"}}
	for _, k := range []string{"q", "rcpt", "domain", "reason", "sort", "order", "state"} {
		d.Q[k] = r.URL.Query().Get(k)
	}
	if p.role == store.RoleUser {
		d.Usage, d.Count, _ = s.d.Store.QuarantineUsage(ctx, f.TenantID, p.address)
		d.Quota = s.quotaBytes(ctx, p)
	}
	page := func(off int) url.Values {
		q := r.URL.Query()
		q.Del("msg")
		q.Set("offset", strconv.Itoa(off))
		return q
	}
	if f.Offset > 0 {
		d.Prev = page(max(0, f.Offset-f.Limit))
	}
	if f.Offset+len(items) < total {
		d.Next = page(f.Offset + f.Limit)
	}
	v := s.newView(r, p, "nav_quarantine")
	v.Data = d
	s.render(w, http.StatusOK, "quarantine", v)
}

// errSearchNUL refuses a search term with a NUL byte: the store matches
// terms as literal text, and a NUL cannot be part of a stored value anyone
// types (SQLite would read the term only up to it).
var errSearchNUL = badRequest("search terms cannot contain NUL characters")

// checkSearchTerms refuses the request when one of the named search fields
// holds a NUL byte. Any other text, full-text query syntax and wildcards
// included, is searched for literally by the store.
func checkSearchTerms(q url.Values, keys ...string) error {
	for _, k := range keys {
		for _, v := range q[k] {
			if strings.IndexByte(v, 0) >= 0 {
				return errSearchNUL
			}
		}
	}
	return nil
}

// quotaBytes is the caller's quarantine capacity (display only; the
// pipeline enforces it).
func (s *Server) quotaBytes(ctx context.Context, p *principal) int64 {
	if s.d.Quota == nil {
		return 0
	}
	return s.d.Quota(ctx, p.tenantID, p.address)
}

type qviewData struct {
	Item    store.QuarantineItem
	View    *preview.View
	Remote  bool
	IsAdmin bool
	Frame   string
}

func (s *Server) openItem(ctx context.Context, p *principal, id string) (store.QuarantineItem, []byte, error) {
	it, err := s.quarantineItem(ctx, p, id)
	if err != nil {
		return it, nil, err
	}
	rc, _, err := s.d.Quarantine.Open(ctx, it.TenantID, it.ID)
	if err != nil {
		return it, nil, err
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, 64<<20))
	return it, raw, err
}

func (s *Server) quarantineView(w http.ResponseWriter, r *http.Request, p *principal) {
	ctx := r.Context()
	it, raw, err := s.openItem(ctx, p, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	remote := r.URL.Query().Get("images") == "1"
	pv, err := preview.Render(ctx, strings.NewReader(string(raw)), preview.Options{AllowRemoteImages: remote})
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	frame := "/quarantine/" + it.ID + "/body"
	if remote {
		frame += "?images=1"
	}
	v := s.newView(r, p, "qview_title")
	v.Data = qviewData{Item: it, View: pv, Remote: remote, IsAdmin: p.role != store.RoleUser, Frame: frame}
	s.render(w, http.StatusOK, "qview", v)
}

// quarantineBody serves the sanitised message document for the sandboxed
// frame, with the preview package's own restrictive headers.
func (s *Server) quarantineBody(w http.ResponseWriter, r *http.Request, p *principal) {
	ctx := r.Context()
	_, raw, err := s.openItem(ctx, p, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	pv, err := preview.Render(ctx, strings.NewReader(string(raw)), preview.Options{AllowRemoteImages: r.URL.Query().Get("images") == "1"})
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	preview.WriteDocument(w, pv)
}

func (s *Server) quarantineAttachment(w http.ResponseWriter, r *http.Request, p *principal) {
	ctx := r.Context()
	_, raw, err := s.openItem(ctx, p, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil {
		s.fail(w, r, p, store.ErrNotFound)
		return
	}
	att, body, err := preview.AttachmentData(ctx, strings.NewReader(string(raw)), n, preview.Options{})
	if err != nil {
		s.fail(w, r, p, store.ErrNotFound)
		return
	}
	s.audit(ctx, p, p.tenantID, "quarantine.download", r.PathValue("id"), "", att.Name)
	preview.WriteAttachment(w, att.Name, body)
}

func (s *Server) quarantineAction(w http.ResponseWriter, r *http.Request, p *principal) {
	ctx := r.Context()
	id, action := r.PathValue("id"), r.PathValue("action")
	msg, err := s.opQuarantine(ctx, p, id, action, r.PostFormValue("to"))
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	back := "/quarantine"
	if action == "report-spam" || action == "report-ham" {
		back = "/quarantine/" + id
	}
	done(w, r, back, msg)
}

// opQuarantine performs one action on a quarantined copy and returns the
// notice to show.
func (s *Server) opQuarantine(ctx context.Context, p *principal, id, action, to string) (string, error) {
	it, err := s.quarantineItem(ctx, p, id)
	if err != nil {
		return "", err
	}
	who := p.actor
	tid := it.TenantID
	notHeld := func(err error) error {
		if errors.Is(err, quarantine.ErrNotHeld) {
			return badRequest("this message was already released or deleted")
		}
		return err
	}
	switch action {
	case "release":
		if _, err := s.d.Quarantine.Release(ctx, tid, id, who); err != nil {
			return "", notHeld(err)
		}
		return "released", s.audit(ctx, p, tid, "quarantine.release", id, it.Rcpt, it.MailFrom)
	case "delete":
		if err := s.d.Quarantine.Delete(ctx, tid, id, who); err != nil {
			return "", notHeld(err)
		}
		return "deleted", s.audit(ctx, p, tid, "quarantine.delete", id, it.Rcpt, "")
	case "release-allow":
		if _, err := s.d.Quarantine.Release(ctx, tid, id, who); err != nil {
			return "", notHeld(err)
		}
		if _, err := s.d.Quarantine.Allow(ctx, tid, id, who); err != nil {
			return "", senderErr(err)
		}
		return "released", s.audit(ctx, p, tid, "quarantine.release_allow", id, it.Rcpt, it.MailFrom)
	case "block":
		// A user blocks for their own address; an administrator for the
		// recipient's whole domain.
		block := s.d.Quarantine.Block
		if p.role != store.RoleUser {
			block = s.d.Quarantine.BlockForDomain
		}
		if _, err := block(ctx, tid, id, who); err != nil {
			return "", senderErr(err)
		}
		return "deleted", s.audit(ctx, p, tid, "quarantine.block", id, it.Rcpt, it.MailFrom)
	case "report-spam", "report-ham":
		if s.d.Learn == nil {
			return "", badRequest("spam feedback is not configured on this node (the console was built without a Learn hook)")
		}
		_, raw, err := s.openItem(ctx, p, id)
		if err != nil {
			return "", err
		}
		spam := action == "report-spam"
		if err := s.d.Learn(ctx, tid, raw, spam); err != nil {
			return "", err
		}
		return "learned", s.audit(ctx, p, tid, "quarantine."+strings.ReplaceAll(action, "-", "_"), id, "", it.MailFrom)
	case "forward":
		if p.role == store.RoleUser {
			return "", errForbidden
		}
		dest, err := addr.Parse(strings.TrimSpace(to))
		if err != nil {
			return "", badRequest("address %q: %v", to, err)
		}
		if _, err := s.d.Quarantine.Forward(ctx, tid, id, dest.Key(), who); err != nil {
			return "", err
		}
		return "done", s.audit(ctx, p, tid, "quarantine.forward", id, it.Rcpt, dest.Key())
	}
	return "", badRequest("unknown action %q", action)
}

// senderErr turns "the copy has no usable sender" into a user error.
func senderErr(err error) error {
	if errors.Is(err, quarantine.ErrNoSender) {
		return badRequest("the message has no sender address to list")
	}
	return err
}

// --- one-click links from digest mails ---

type linkData struct {
	Token  string
	Action string
	Item   store.QuarantineItem
	Done   string
}

// verifyLink checks a digest link's token; the page shown on failure says
// why without revealing anything about the item.
func (s *Server) verifyLink(w http.ResponseWriter, r *http.Request, tok string) (signedlink.Link, bool) {
	key, err := signedlink.LoadKey(r.Context(), s.d.Store)
	if err != nil {
		s.fail(w, r, nil, err)
		return signedlink.Link{}, false
	}
	l, err := signedlink.Verify(key, tok, s.d.Clock.Now())
	if err != nil {
		status, msg := http.StatusBadRequest, "link_invalid"
		if errors.Is(err, signedlink.ErrExpired) {
			status, msg = http.StatusGone, "link_expired"
		}
		v := s.newView(r, nil, "nav_quarantine")
		v.Err = v.T(msg)
		v.Data = linkData{}
		s.render(w, status, "link", v)
		return l, false
	}
	return l, true
}

// linkPage shows what a digest link will do and asks for one click: mail
// security scanners fetch links in mail, so a GET never changes anything.
func (s *Server) linkPage(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("t")
	l, ok := s.verifyLink(w, r, tok)
	if !ok {
		return
	}
	if l.Action == signedlink.Open {
		http.Redirect(w, r, "/quarantine/"+url.PathEscape(l.ItemID), http.StatusSeeOther)
		return
	}
	it, err := s.d.Store.QuarantineItem(r.Context(), l.TenantID, l.ItemID)
	if err != nil || !strings.EqualFold(it.Rcpt, l.Rcpt) {
		s.fail(w, r, nil, store.ErrNotFound)
		return
	}
	v := s.newView(r, nil, "nav_quarantine")
	d := linkData{Token: tok, Action: string(l.Action), Item: it}
	// A copy no longer held: the link would change nothing (ApplyLink), so
	// it offers nothing to confirm.
	if it.State != store.QHeld {
		d.Done = "link_used"
	}
	v.Data = d
	s.render(w, http.StatusOK, "link", v)
}

func (s *Server) linkPost(w http.ResponseWriter, r *http.Request) {
	l, ok := s.verifyLink(w, r, r.PostFormValue("t"))
	if !ok {
		return
	}
	res, err := s.d.Quarantine.ApplyLink(r.Context(), l, "")
	if err != nil {
		if errors.Is(err, quarantine.ErrWrongItem) || errors.Is(err, quarantine.ErrNotAction) || errors.Is(err, store.ErrNotFound) {
			err = store.ErrNotFound
		}
		s.fail(w, r, nil, senderErr(err))
		return
	}
	v := s.newView(r, nil, "nav_quarantine")
	d := linkData{Action: string(l.Action), Item: res.Item, Done: "link_done_" + string(l.Action)}
	if res.AlreadyDone {
		d.Done = "link_used"
	}
	v.Data = d
	s.render(w, http.StatusOK, "link", v)
}

// --- reports ---

type reportsData struct {
	Q       map[string]string
	Rows    []store.ReportRow
	Totals  map[string]int64
	Metrics []string
	Chart   any
	CSV     url.Values // the download's query: the filters shown
	// ByAddress: rows are per address, and a row without one is its
	// domain's refused unknown recipients (store.UnknownRecipients).
	ByAddress bool
}

func (s *Server) reportFilter(r *http.Request, p *principal) (store.ReportFilter, error) {
	tid, err := p.tid()
	if err != nil {
		return store.ReportFilter{}, err
	}
	q := r.URL.Query()
	now := s.d.Clock.Now().In(s.d.Zone)
	f := store.ReportFilter{TenantID: tid, Domain: strings.ToLower(q.Get("domain")), Address: strings.ToLower(q.Get("address")),
		FromDay: q.Get("from"), ToDay: q.Get("to"), GroupBy: q.Get("group")}
	if f.GroupBy != "month" {
		f.GroupBy = "day"
	}
	// Default: the previous month and this month up to today.
	if f.FromDay == "" {
		f.FromDay = time.Date(now.Year(), now.Month()-1, 1, 0, 0, 0, 0, s.d.Zone).Format("2006-01-02")
	}
	if f.ToDay == "" {
		f.ToDay = now.Format("2006-01-02")
	}
	for _, d := range []string{f.FromDay, f.ToDay} {
		if _, err := time.Parse("2006-01-02", d); err != nil {
			return f, badRequest("date %q: use YYYY-MM-DD", d)
		}
	}
	switch q.Get("by") {
	case "domain":
		f.ByDomain = true
	case "address":
		f.ByAddress = true
	}
	if p.role == store.RoleUser {
		f.Address, f.ByAddress = p.address, false
	}
	return f, nil
}

func (s *Server) reportsPage(w http.ResponseWriter, r *http.Request, p *principal) {
	f, err := s.reportFilter(r, p)
	if err != nil {
		if p.tenantID == 0 {
			http.Redirect(w, r, "/tenants", http.StatusSeeOther)
			return
		}
		s.fail(w, r, p, err)
		return
	}
	rows, err := s.d.Store.Report(r.Context(), f)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	d := reportsData{Q: map[string]string{}, Rows: rows, Totals: map[string]int64{}, Metrics: store.Metrics, CSV: url.Values{}, ByAddress: f.ByAddress}
	for _, k := range []string{"domain", "address", "from", "to", "group", "by"} {
		d.Q[k] = r.URL.Query().Get(k)
	}
	d.Q["from"], d.Q["to"] = f.FromDay, f.ToDay
	for k, v := range d.Q {
		if v != "" {
			d.CSV.Set(k, v)
		}
	}
	var labels []string
	var counts []map[string]int64
	idx := map[string]int{}
	for _, row := range rows {
		for k, n := range row.Counts {
			d.Totals[k] += n
		}
		i, ok := idx[row.Period]
		if !ok {
			i = len(labels)
			idx[row.Period] = i
			labels = append(labels, row.Period)
			counts = append(counts, map[string]int64{})
		}
		for k, n := range row.Counts {
			counts[i][k] += n
		}
	}
	d.Chart = trafficChart(labels, counts)
	v := s.newView(r, p, "nav_reports")
	v.Data = d
	s.render(w, http.StatusOK, "reports", v)
}

// WriteReportCSV writes report rows: period, domain, address, then one
// column per metric in store.Metrics order (the console's download, the
// API's format=csv and the CLI's --csv). Addresses come from outside
// senders (RCPT TO:<=1+2@...>), so text cells are neutralised against
// spreadsheet formulas; the counts are plain numbers.
func WriteReportCSV(w io.Writer, rows []store.ReportRow) error {
	cw := csv.NewWriter(w)
	cw.Write(append([]string{"period", "domain", "address"}, store.Metrics...))
	for _, row := range rows {
		rec := csvsafe.Cells([]string{row.Period, row.Domain, row.Address})
		for _, m := range store.Metrics {
			rec = append(rec, strconv.FormatInt(row.Counts[m], 10))
		}
		cw.Write(rec)
	}
	cw.Flush()
	return cw.Error()
}

func (s *Server) reportsCSV(w http.ResponseWriter, r *http.Request, p *principal) {
	f, err := s.reportFilter(r, p)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	rows, err := s.d.Store.Report(r.Context(), f)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="mailgate-report-%s-%s.csv"`, f.FromDay, f.ToDay))
	WriteReportCSV(w, rows)
}

// --- API ---

func (s *Server) quarantineAPI() {
	s.api("GET /quarantine", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		f, err := s.quarantineFilter(r, p)
		if err != nil {
			return nil, err
		}
		items, total, err := s.d.Store.SearchQuarantine(r.Context(), f)
		return map[string]any{"items": nonNil(items), "total": total}, err
	})
	s.api("GET /quarantine/{id}", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		return s.quarantineItem(r.Context(), p, r.PathValue("id"))
	})
	s.api("POST /quarantine/{id}/{action}", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		var in struct {
			To string `json:"to"`
		}
		if r.ContentLength > 0 {
			if err := decode(r, &in); err != nil {
				return nil, err
			}
		}
		msg, err := s.opQuarantine(r.Context(), p, r.PathValue("id"), r.PathValue("action"), in.To)
		return map[string]string{"result": msg}, err
	})
	s.api("GET /reports", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		f, err := s.reportFilter(r, p)
		if err != nil {
			return nil, err
		}
		rows, err := s.d.Store.Report(r.Context(), f)
		if err != nil {
			return nil, err
		}
		if r.URL.Query().Get("format") == "csv" {
			w.Header().Set("Content-Type", "text/csv; charset=utf-8")
			WriteReportCSV(w, rows)
			return raw{}, nil
		}
		return nonNil(rows), nil
	})
}

// raw marks a response the handler already wrote.
type raw struct{}
