package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/mailgate/mailgate/internal/addr"
	"github.com/mailgate/mailgate/internal/archive"
	"github.com/mailgate/mailgate/internal/store"
)

// Archive access. The archive is the most sensitive data mailgate holds,
// so being a tenant administrator is not enough: an administrator (or an
// API token, by its audit name "api:<name>") sees and acts on the archive
// only when granted archive access for the tenant, by an operator or by an
// administrator who holds the grant. Operators always have access. End
// users search, view and download their own mail only, and only when the
// tenant allows it (ArchiveSettings.UserSearch): the messages their
// address is exactly the envelope sender or a recipient of, or in From,
// To or Cc (archive.Participants). Every read (search, view, download,
// proof, export) and every action is audited.

// ErrNoArchive: this node has no archive service.
var ErrNoArchive error = Invalid{Msg: "the archive is not available on this node"}

func (s *Service) archive(ctx context.Context) (*archive.Service, error) {
	if s.Archive == nil {
		return nil, ErrNoArchive
	}
	return s.Archive(ctx)
}

// MayUseArchive reports whether a may see the archive of its tenant.
func (s *Service) MayUseArchive(ctx context.Context, a Actor) bool {
	return s.archiveAccess(ctx, a) == nil
}

// archiveAccess returns the tenant a acts on in the archive, or
// ErrForbidden.
func (s *Service) archiveAccess(ctx context.Context, a Actor) error {
	switch {
	case a.Role == store.RoleOperator:
		if a.TenantID == 0 {
			return Invalidf("choose a tenant first")
		}
		return nil
	case a.Role == store.RoleAdmin && a.TenantID != 0:
		ok, err := s.Store.ArchiveAccess(ctx, a.TenantID, strings.ToLower(a.Name))
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
	}
	return ErrForbidden
}

// archiveReader returns what a may read of its tenant's archive: every
// message (own "") with archive access, or only the messages of its own
// address (own, normalised) for an end user of a tenant that allows it.
func (s *Service) archiveReader(ctx context.Context, a Actor) (own string, err error) {
	err = s.archiveAccess(ctx, a)
	if !errors.Is(err, ErrForbidden) {
		return "", err
	}
	own = archive.NormAddr(a.Address)
	if a.Role != store.RoleUser || a.TenantID == 0 || !strings.Contains(own, "@") {
		return "", ErrForbidden
	}
	set, err := s.Store.ArchiveSettings(ctx, a.TenantID)
	if err != nil {
		return "", err
	}
	if !set.UserSearch {
		return "", ErrForbidden
	}
	return own, nil
}

// ArchiveOwnMail reports how a reads the archive: false with archive
// access (every message of the tenant), true for an end user who may
// search their own mail; ErrForbidden when a may not read it at all.
func (s *Service) ArchiveOwnMail(ctx context.Context, a Actor) (bool, error) {
	own, err := s.archiveReader(ctx, a)
	return own != "", err
}

// ownView keeps, of an archived message's envelope and delivery, what an
// end user may see: everything when they sent it, else their own
// recipient line only (the other envelope recipients may be blind copies).
func ownView(e store.ArchiveEntry, own string) store.ArchiveEntry {
	var meta archive.Meta
	if json.Unmarshal([]byte(e.Meta), &meta) != nil {
		e.Meta, e.Delivery = "{}", ""
		return e
	}
	if archive.NormAddr(meta.MailFrom) == own {
		return e
	}
	var rs []archive.MetaRcpt
	for _, r := range meta.Rcpts {
		if archive.NormAddr(r.Addr) == own {
			rs = append(rs, r)
		}
	}
	var vs []string
	for _, v := range meta.Verdicts {
		if rcpt, _, ok := strings.Cut(v, ": "); ok && archive.NormAddr(rcpt) == own {
			vs = append(vs, v)
		}
	}
	meta.Rcpts, meta.Verdicts = rs, vs
	b, _ := json.Marshal(meta)
	e.Meta = string(b)
	var ds []string
	for _, d := range strings.Fields(e.Delivery) {
		if addr, _, ok := strings.Cut(d, "="); ok && archive.NormAddr(addr) == own {
			ds = append(ds, d)
		}
	}
	e.Delivery = strings.Join(ds, " ")
	return e
}

// ArchiveSettings returns the tenant's archive settings.
func (s *Service) ArchiveSettings(ctx context.Context, a Actor) (store.ArchiveSettings, error) {
	if err := s.archiveAccess(ctx, a); err != nil {
		return store.ArchiveSettings{}, err
	}
	return s.Store.ArchiveSettings(ctx, a.TenantID)
}

// SetArchiveSettings changes the tenant's archive settings; the change is
// audited and logged in the archive itself (turning archiving off is
// visible to an auditor).
func (s *Service) SetArchiveSettings(ctx context.Context, a Actor, in store.ArchiveSettings) error {
	if err := s.archiveAccess(ctx, a); err != nil {
		return err
	}
	switch in.Mode {
	case "":
		in.Mode = store.ArchiveAll
	case store.ArchiveAll, store.ArchiveInbound, store.ArchiveOutbound:
	case store.ArchiveRule:
		if strings.TrimSpace(in.Rule) == "" {
			return Invalidf("archive rule: give the search query that selects the messages to keep")
		}
		if _, err := archive.ParseQuery(in.Rule); err != nil {
			return Invalidf("archive rule: %v", err)
		}
	default:
		return Invalidf("archive mode %q: use all, in, out or rule", in.Mode)
	}
	switch in.OnFull {
	case "":
		in.OnFull = store.ArchiveFullStop
	case store.ArchiveFullStop, store.ArchiveFullDeleteOldest:
	default:
		return Invalidf("when full %q: use stop or delete-oldest", in.OnFull)
	}
	if in.RetentionDays < 0 || in.RetentionDays > 36500 {
		return Invalidf("retention: 1 to 36500 days (0 = default %d)", store.DefaultArchiveRetentionDays)
	}
	if in.CapacityBytes < 0 {
		return Invalidf("capacity must not be negative")
	}
	before, err := s.Store.ArchiveSettings(ctx, a.TenantID)
	if err != nil {
		return err
	}
	in.TenantID, in.Updated = a.TenantID, s.now().Now()
	if err := s.Store.SetArchiveSettings(ctx, in); err != nil {
		return err
	}
	if svc, err := s.archive(ctx); err == nil {
		if err := svc.LogEvent(ctx, a.TenantID, store.ArchiveKindSettings, map[string]any{"by": a.Name, "before": settingsView(before), "after": settingsView(in)}); err != nil {
			return err
		}
	}
	return s.Audit(ctx, a, a.TenantID, "archive.settings", "", jsonString(settingsView(before)), jsonString(settingsView(in)))
}

func settingsView(s store.ArchiveSettings) map[string]any {
	return map[string]any{"enabled": s.Enabled, "mode": s.Mode, "rule": s.Rule, "retention_days": s.RetentionDays,
		"capacity_bytes": s.CapacityBytes, "on_full": s.OnFull, "user_search": s.UserSearch}
}

// GrantArchiveAccess gives or takes a principal's archive access in a's
// tenant: a console login of the tenant, or "api:<token name>".
func (s *Service) GrantArchiveAccess(ctx context.Context, a Actor, principal string, on bool) error {
	if err := s.archiveAccess(ctx, a); err != nil {
		return err
	}
	principal = strings.ToLower(strings.TrimSpace(principal))
	if name, ok := strings.CutPrefix(principal, "api:"); ok {
		if name == "" {
			return Invalidf("give the API token's name after api:")
		}
	} else {
		ac, err := s.Store.AccountByLogin(ctx, principal)
		if err != nil || ac.TenantID != a.TenantID {
			return fmt.Errorf("account %s: %w", principal, store.ErrNotFound)
		}
		if ac.Role != store.RoleAdmin {
			return Invalidf("archive access is for administrators; %s is a %s", principal, ac.Role)
		}
	}
	if err := s.Store.SetArchiveAccess(ctx, a.TenantID, principal, on); err != nil {
		return err
	}
	action := "archive.grant"
	if !on {
		action = "archive.revoke"
	}
	return s.Audit(ctx, a, a.TenantID, action, principal, "", "")
}

// ArchiveAccessList lists the tenant's grants.
func (s *Service) ArchiveAccessList(ctx context.Context, a Actor) ([]string, error) {
	if err := s.archiveAccess(ctx, a); err != nil {
		return nil, err
	}
	return s.Store.ArchiveAccessList(ctx, a.TenantID)
}

// SearchArchive searches a's tenant's archive; every search is audited
// with its query.
//
// An end user's search (ArchiveOwnMail) is kept to their own address: the
// query's addr: is set to it (a search for another address finds
// nothing), and each hit's envelope shows their own part only.
func (s *Service) SearchArchive(ctx context.Context, a Actor, q archive.Query, p archive.Page) (archive.Hits, error) {
	own, err := s.archiveReader(ctx, a)
	if err != nil {
		return archive.Hits{}, err
	}
	svc, err := s.archive(ctx)
	if err != nil {
		return archive.Hits{}, err
	}
	if err := q.Check(); err != nil {
		return archive.Hits{}, Invalidf("%v", err)
	}
	var h archive.Hits
	// An end user asking for another address's mail finds nothing (the
	// search is audited all the same).
	if others := own != "" && q.Addr != "" && archive.NormAddr(q.Addr) != own; !others {
		if own != "" {
			q.Addr = own
		}
		h, err = svc.Search(ctx, a.TenantID, q, p)
		if errors.Is(err, archive.ErrBadCursor) {
			return h, Invalidf("invalid page cursor")
		}
		if err != nil {
			return h, err
		}
	}
	if own != "" {
		for i := range h.Entries {
			h.Entries[i] = ownView(h.Entries[i], own)
		}
	}
	if err := s.Audit(ctx, a, a.TenantID, "archive.search", q.String(), "", fmt.Sprintf("%d results", len(h.Entries))); err != nil {
		return archive.Hits{}, err
	}
	return h, nil
}

// ArchiveMessage returns one archived message and its bytes (view and
// download: what names the audit action).
//
// An end user gets only a message of their own address (archive.Participants):
// any other is not found, as if it did not exist.
func (s *Service) ArchiveMessage(ctx context.Context, a Actor, id, action string) (store.ArchiveEntry, []byte, error) {
	own, err := s.archiveReader(ctx, a)
	if err != nil {
		return store.ArchiveEntry{}, nil, err
	}
	svc, err := s.archive(ctx)
	if err != nil {
		return store.ArchiveEntry{}, nil, err
	}
	e, err := s.Store.ArchiveEntry(ctx, a.TenantID, id)
	if err != nil {
		return e, nil, err
	}
	var raw []byte
	if e.Kind == store.ArchiveKindMessage && e.Deleted.IsZero() {
		if raw, err = svc.ReadMessage(ctx, e); err != nil {
			return e, nil, err
		}
	}
	if own != "" {
		var meta archive.Meta
		_ = json.Unmarshal([]byte(e.Meta), &meta)
		if e.Kind != store.ArchiveKindMessage || !archive.IsParticipant(archive.Participants(ctx, raw, meta), own) {
			return store.ArchiveEntry{}, nil, fmt.Errorf("archived message %s: %w", id, store.ErrNotFound)
		}
		e = ownView(e, own)
	}
	if action != "view" && action != "download" {
		action = "view"
	}
	// The audit log names the message, not its subject: every
	// administrator reads the log, with or without archive access.
	if err := s.Audit(ctx, a, a.TenantID, "archive."+action, id, "", ""); err != nil {
		return e, nil, err
	}
	return e, raw, nil
}

// ResendArchived sends an archived message again: to its original
// envelope recipients (to nil), or forwarded to the given addresses.
// Imported messages are refused. Administrators with archive access only.
func (s *Service) ResendArchived(ctx context.Context, a Actor, id string, to []string) (string, error) {
	if err := s.archiveAccess(ctx, a); err != nil {
		return "", err
	}
	if s.Queue == nil {
		return "", Invalidf("the queue is not available")
	}
	svc, err := s.archive(ctx)
	if err != nil {
		return "", err
	}
	e, err := s.Store.ArchiveEntry(ctx, a.TenantID, id)
	if err != nil {
		return "", err
	}
	if err := svc.CheckResend(e); err != nil {
		return "", Invalidf("%v", err)
	}
	raw, err := svc.ReadMessage(ctx, e)
	if err != nil {
		return "", err
	}
	var meta archive.Meta
	_ = json.Unmarshal([]byte(e.Meta), &meta)
	action := "archive.forward"
	dir := store.Outbound
	if to == nil {
		action = "archive.resend"
		dir = e.Direction
		for _, r := range meta.Rcpts {
			to = append(to, r.Addr)
		}
	}
	if len(to) == 0 {
		return "", Invalidf("no recipients")
	}
	for i, t := range to {
		p, err := addr.Parse(strings.TrimSpace(t))
		if err != nil {
			return "", Invalidf("recipient %q: %v", t, err)
		}
		to[i] = p.String()
	}
	q, ok := s.Queue.(interface {
		Submit(ctx context.Context, m store.Message, rcpts []string, body io.Reader, why string) (string, error)
	})
	if !ok {
		return "", Invalidf("the queue cannot send")
	}
	qid, err := q.Submit(ctx, store.Message{TenantID: a.TenantID, Direction: dir, MailFrom: meta.MailFrom}, to, strings.NewReader(string(raw)), action+" of "+id+" by "+a.Name)
	if err != nil {
		return "", err
	}
	return qid, s.Audit(ctx, a, a.TenantID, action, id, "", strings.Join(to, ",")+" queued as "+qid)
}

// VerifyArchive checks a's tenant's archive (archive.Service.Verify); the
// result is audited, which is where the console shows the last one.
func (s *Service) VerifyArchive(ctx context.Context, a Actor) (archive.Report, error) {
	if err := s.archiveAccess(ctx, a); err != nil {
		return archive.Report{}, err
	}
	svc, err := s.archive(ctx)
	if err != nil {
		return archive.Report{}, err
	}
	r, err := svc.Verify(ctx, a.TenantID)
	if err != nil {
		return r, err
	}
	summary := fmt.Sprintf("ok: %d entries, %d messages", r.Entries, r.Messages)
	if !r.OK() {
		summary = fmt.Sprintf("FAILED: %d problems in %d entries", len(r.Problems), r.Entries)
	}
	return r, s.Audit(ctx, a, a.TenantID, "archive.verify", "", "", summary)
}

// ArchiveProof returns the inclusion proof of one archived message.
func (s *Service) ArchiveProof(ctx context.Context, a Actor, id string) (archive.Proof, error) {
	if err := s.archiveAccess(ctx, a); err != nil {
		return archive.Proof{}, err
	}
	svc, err := s.archive(ctx)
	if err != nil {
		return archive.Proof{}, err
	}
	p, err := svc.Proof(ctx, a.TenantID, id)
	if err != nil {
		return p, err
	}
	return p, s.Audit(ctx, a, a.TenantID, "archive.proof", id, "", "")
}

// ImportArchive imports an .eml or mbox file into a's tenant's archive.
func (s *Service) ImportArchive(ctx context.Context, a Actor, name string, r io.Reader, maxSize int64) (archive.ImportResult, error) {
	if err := s.archiveAccess(ctx, a); err != nil {
		return archive.ImportResult{}, err
	}
	svc, err := s.archive(ctx)
	if err != nil {
		return archive.ImportResult{}, err
	}
	var res archive.ImportResult
	lower := strings.ToLower(name)
	if strings.HasSuffix(lower, ".eml") {
		raw, err := readAtMost(r, maxSize)
		if err != nil {
			return res, err
		}
		if _, err := svc.Import(ctx, a.TenantID, a.Name, name, raw, maxSize); err != nil {
			return res, Invalidf("%v", err)
		}
		res.Imported = 1
	} else {
		res, err = svc.ImportMbox(ctx, a.TenantID, a.Name, name, r, maxSize)
		if err != nil && res.Imported == 0 {
			return res, Invalidf("%v", err)
		}
	}
	if err := svc.LogEvent(ctx, a.TenantID, store.ArchiveKindImportLog, map[string]any{"by": a.Name, "source": name, "imported": res.Imported, "failed": len(res.Failed)}); err != nil {
		return res, err
	}
	return res, s.Audit(ctx, a, a.TenantID, "archive.import", name, "", fmt.Sprintf("%d imported, %d failed", res.Imported, len(res.Failed)))
}

// ExportArchive writes the messages a search finds (up to
// archive.MaxExport) as mbox or a ZIP with manifest and proofs.
func (s *Service) ExportArchive(ctx context.Context, a Actor, q archive.Query, format string, w io.Writer) error {
	if err := s.archiveAccess(ctx, a); err != nil {
		return err
	}
	svc, err := s.archive(ctx)
	if err != nil {
		return err
	}
	if format != "mbox" && format != "zip" {
		return Invalidf("export format %q: use mbox or zip", format)
	}
	var es []store.ArchiveEntry
	cur := ""
	for len(es) <= archive.MaxExport {
		h, err := svc.Search(ctx, a.TenantID, q, archive.Page{Sort: archive.SortDate, Limit: 500, Cursor: cur})
		if err != nil {
			return err
		}
		es = append(es, h.Entries...)
		if h.Next == "" {
			break
		}
		cur = h.Next
	}
	if len(es) > archive.MaxExport {
		return Invalidf("the search finds more than %d messages: narrow it", archive.MaxExport)
	}
	if err := s.Audit(ctx, a, a.TenantID, "archive.export", q.String(), "", fmt.Sprintf("%d messages as %s", len(es), format)); err != nil {
		return err
	}
	return svc.Export(ctx, a.TenantID, es, format, q.String(), a.Name, w)
}

// AddArchiveHold places a legal hold (address or search query).
func (s *Service) AddArchiveHold(ctx context.Context, a Actor, kind, value, reason string) (store.ArchiveHold, error) {
	if err := s.archiveAccess(ctx, a); err != nil {
		return store.ArchiveHold{}, err
	}
	value = strings.TrimSpace(value)
	switch kind {
	case "address":
		p, err := addr.Parse(value)
		if err != nil {
			return store.ArchiveHold{}, Invalidf("address %q: %v", value, err)
		}
		value = p.String()
	case "query":
		if _, err := archive.ParseQuery(value); err != nil || value == "" {
			return store.ArchiveHold{}, Invalidf("hold query: %v", err)
		}
	default:
		return store.ArchiveHold{}, Invalidf("hold kind %q: use address or query", kind)
	}
	h, err := s.Store.AddArchiveHold(ctx, store.ArchiveHold{TenantID: a.TenantID, Kind: kind, Value: value, Reason: reason, By: a.Name, Created: s.now().Now()})
	if err != nil {
		return h, err
	}
	if svc, err := s.archive(ctx); err == nil {
		if err := svc.LogEvent(ctx, a.TenantID, store.ArchiveKindHold, map[string]any{"placed": h.ID, "kind": kind, "value": value, "reason": reason, "by": a.Name}); err != nil {
			return h, err
		}
	}
	return h, s.Audit(ctx, a, a.TenantID, "archive.hold", kind+":"+value, "", reason)
}

// DeleteArchiveHold lifts a legal hold.
func (s *Service) DeleteArchiveHold(ctx context.Context, a Actor, id int64) error {
	if err := s.archiveAccess(ctx, a); err != nil {
		return err
	}
	if err := s.Store.DeleteArchiveHold(ctx, a.TenantID, id); err != nil {
		return err
	}
	if svc, err := s.archive(ctx); err == nil {
		if err := svc.LogEvent(ctx, a.TenantID, store.ArchiveKindHold, map[string]any{"lifted": id, "by": a.Name}); err != nil {
			return err
		}
	}
	return s.Audit(ctx, a, a.TenantID, "archive.unhold", fmt.Sprint(id), "", "")
}

// ArchiveHolds lists the tenant's legal holds.
func (s *Service) ArchiveHolds(ctx context.Context, a Actor) ([]store.ArchiveHold, error) {
	if err := s.archiveAccess(ctx, a); err != nil {
		return nil, err
	}
	return s.Store.ArchiveHolds(ctx, a.TenantID)
}

// ArchiveOverview is what the archive's console page shows.
type ArchiveOverview struct {
	Settings   store.ArchiveSettings
	Capacity   int64
	Stats      store.ArchiveStats
	Checkpoint *store.ArchiveCheckpoint
	PublicKey  string
	LastVerify *store.AuditEntry
	Grants     []string
	Holds      []store.ArchiveHold
	Searches   int64 // audited searches (last 1000 looked at)
}

// ArchiveOverview gathers the archive page.
func (s *Service) ArchiveOverview(ctx context.Context, a Actor) (ArchiveOverview, error) {
	var o ArchiveOverview
	if err := s.archiveAccess(ctx, a); err != nil {
		return o, err
	}
	svc, err := s.archive(ctx)
	if err != nil {
		return o, err
	}
	if o.Settings, err = s.Store.ArchiveSettings(ctx, a.TenantID); err != nil {
		return o, err
	}
	if o.Capacity, err = svc.Capacity(ctx, o.Settings); err != nil {
		return o, err
	}
	if o.Stats, err = s.Store.ArchiveStats(ctx, a.TenantID, s.now().Now()); err != nil {
		return o, err
	}
	if cps, err := s.Store.ArchiveCheckpoints(ctx, a.TenantID, 1); err == nil && len(cps) > 0 {
		o.Checkpoint = &cps[0]
	}
	o.PublicKey = svc.PublicKeyText()
	if es, err := s.Store.AuditLog(ctx, store.AuditFilter{TenantID: a.TenantID, Action: "archive.verify", Limit: 1}); err == nil && len(es) > 0 {
		o.LastVerify = &es[0]
	}
	if es, err := s.Store.AuditLog(ctx, store.AuditFilter{TenantID: a.TenantID, Action: "archive.search", Limit: 1000}); err == nil {
		o.Searches = int64(len(es))
	}
	o.Grants, _ = s.Store.ArchiveAccessList(ctx, a.TenantID)
	o.Holds, _ = s.Store.ArchiveHolds(ctx, a.TenantID)
	return o, nil
}

// ArchivePublicKey is the installation's checkpoint key (public; anyone
// logged in may read it, so auditors can get it from the console).
func (s *Service) ArchivePublicKey(ctx context.Context) (string, error) {
	svc, err := s.archive(ctx)
	if err != nil {
		return "", err
	}
	return svc.PublicKeyText(), nil
}
