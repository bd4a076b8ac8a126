package quarantine

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/signedlink"
	"github.com/mailgate/mailgate/internal/store"
)

// DigestMax is the most entries one digest lists (50).
const DigestMax = 50

// recipientWindow is how far back the digest job looks for addresses with
// held copies: the longest retention plus a day.
const recipientWindow = 15 * 24 * time.Hour

// Digests sends quarantine digests (隔離メールの一覧通知): to each
// address, a list of its copies quarantined since its previous digest (the
// ones still held, newest first, at most DigestMax); to
// the addresses in a tenant's quarantine.admin_digest, the same for every
// address of the tenant. Each entry has one-click links (release,
// release and allow the sender, block the sender, open in the console)
// signed with Key and pointing at BaseURL + "/q/link?t=<token>".
//
// Digests go out at the hours of quarantine.digest_hours in Zone. Run may
// be called as often as wanted (every few minutes) and on every node: the
// time of each address's last digest is a store Mark ("digest:<rcpt>",
// "admin-digest" for the tenant digest), so a digest is sent once per
// scheduled hour, late if no node ran at that hour, and only when there is
// something new. Each digest is claimed by moving its mark with the
// store's compare-and-set (ClaimMark) before it is queued, so of nodes
// running the job at the same instant exactly one sends it.
type Digests struct {
	Manager *Manager
	// BaseURL is the console's external root URL, e.g.
	// "https://mailgate.example.com" (no trailing slash needed).
	BaseURL string
	// Key signs the links (signedlink.LoadKey).
	Key []byte
	// Zone is the report time zone the digest hours are read in; nil = UTC.
	Zone *time.Location
}

// Run sends every digest due at the clock's now and returns how many it
// sent. An error with one address is logged and the others proceed; the
// first such error is returned at the end.
func (d *Digests) Run(ctx context.Context) (int, error) {
	m := d.Manager
	if len(d.Key) == 0 {
		return 0, errors.New("digest: no link signing key")
	}
	now := m.Clock.Now()
	owners, err := m.Store.QuarantineRecipients(ctx, now.Add(-recipientWindow))
	if err != nil {
		return 0, fmt.Errorf("digest: %w", err)
	}
	byTenant := map[int64][]string{}
	var tenants []int64
	for _, o := range owners {
		if _, ok := byTenant[o.TenantID]; !ok {
			tenants = append(tenants, o.TenantID)
		}
		byTenant[o.TenantID] = append(byTenant[o.TenantID], o.Rcpt)
	}
	sort.Slice(tenants, func(i, j int) bool { return tenants[i] < tenants[j] })
	sent := 0
	var first error
	note := func(err error, tenant int64, rcpt string) {
		if err == nil {
			return
		}
		m.logger().Error("quarantine digest", "tenant", tenant, "rcpt", rcpt, "err", err)
		if first == nil {
			first = err
		}
	}
	for _, tid := range tenants {
		if ctx.Err() != nil {
			return sent, ctx.Err()
		}
		ts, err := loadTenantSettings(ctx, m.Store, tid)
		if err != nil {
			note(err, tid, "")
			continue
		}
		rcpts := byTenant[tid]
		sort.Strings(rcpts)
		for _, rcpt := range rcpts {
			ok, err := d.send(ctx, now, tid, rcpt, ts.forAddr(rcpt), nil)
			note(err, tid, rcpt)
			if ok {
				sent++
			}
		}
		tenant := ts.tenant()
		if v, _ := tenant.Get(KeyAdminDigest); strings.TrimSpace(v) != "" {
			var admins []string
			for _, a := range strings.Split(v, ",") {
				if a = strings.TrimSpace(a); strings.Contains(a, "@") {
					admins = append(admins, a)
				}
			}
			if len(admins) > 0 {
				ok, err := d.send(ctx, now, tid, "", tenant, admins)
				note(err, tid, "admin")
				if ok {
					sent++
				}
			}
		}
	}
	return sent, first
}

// lastSlot is the latest scheduled digest time at or before now.
func lastSlot(now time.Time, hours []int, zone *time.Location) time.Time {
	local := now.In(zone)
	var best time.Time
	for day := 0; day <= 1; day++ {
		y, mo, dd := local.AddDate(0, 0, -day).Date()
		for _, h := range hours {
			t := time.Date(y, mo, dd, h, 0, 0, 0, zone)
			if !t.After(now) && t.After(best) {
				best = t
			}
		}
		if !best.IsZero() {
			return best
		}
	}
	return best
}

// send sends one digest if due: rcpt's own (admins nil) or the tenant's
// (rcpt "", to admins). It reports whether a mail was sent.
func (d *Digests) send(ctx context.Context, now time.Time, tenantID int64, rcpt string, s policy.Settings, admins []string) (bool, error) {
	m := d.Manager
	hours := DigestHours(s)
	if len(hours) == 0 {
		return false, nil
	}
	zone := d.Zone
	if zone == nil {
		zone = time.UTC
	}
	slot := lastSlot(now, hours, zone)
	key := "admin-digest"
	if rcpt != "" {
		key = "digest:" + strings.ToLower(rcpt)
	}
	last, err := m.Store.Mark(ctx, tenantID, key)
	if err != nil {
		return false, err
	}
	if slot.IsZero() || !last.Before(slot) {
		return false, nil
	}
	// The digest of slot S lists the copies created from the previous
	// digest's slot up to S (QuarantineFilter: From inclusive, To
	// exclusive): every node computes the same window, and a copy
	// quarantined after S waits for the next slot.
	items, total, err := m.Store.SearchQuarantine(ctx, store.QuarantineFilter{TenantID: tenantID, Rcpt: rcpt, State: store.QHeld,
		From: last, To: slot, Sort: "date", Limit: DigestMax})
	if err != nil {
		return false, fmt.Errorf("search quarantine: %w", err)
	}
	// Claim the slot before sending (see Digests); restore on failure.
	// Of several nodes running the job at once only one wins the claim.
	if won, err := m.Store.ClaimMark(ctx, tenantID, key, last, slot); err != nil || !won {
		return false, err
	}
	if total == 0 || len(items) == 0 {
		return false, nil
	}
	to := admins
	if rcpt != "" {
		to = []string{rcpt}
	}
	body := d.Build(ctx, DigestSpec{Lang: digestLang(s), To: to, Admin: rcpt == "", Items: items, Total: total, Now: now})
	_, err = m.Queue.Submit(ctx, store.Message{TenantID: tenantID, Direction: store.DSN, Subject: "quarantine digest"}, to,
		strings.NewReader(string(body)), "quarantine digest")
	if err != nil {
		m.Store.ClaimMark(ctx, tenantID, key, slot, last)
		return false, fmt.Errorf("submit digest: %w", err)
	}
	return true, nil
}

// DigestSpec is one digest to build.
type DigestSpec struct {
	Lang  string // "ja" or "en"
	To    []string
	Admin bool // tenant-wide: show each entry's recipient
	Items []store.QuarantineItem
	Total int // held copies matching, of which Items are the newest (at most DigestMax)
	Now   time.Time
}

// LinkURL is the one-click URL for l.
func (d *Digests) LinkURL(l signedlink.Link) string {
	return strings.TrimRight(d.BaseURL, "/") + "/q/link?t=" + url.QueryEscape(signedlink.Sign(d.Key, l))
}

// Build renders a digest mail (RFC 5322, MIME multipart/alternative with
// a text and an HTML part, UTF-8 quoted-printable). At most DigestMax
// entries are listed. Every value taken from the mail is escaped in the
// HTML (html/template) and stripped of control characters in the text.
// Links expire with their copy.
func (d *Digests) Build(ctx context.Context, sp DigestSpec) []byte {
	zone := d.Zone
	if zone == nil {
		zone = time.UTC
	}
	items := sp.Items
	if len(items) > DigestMax {
		items = items[:DigestMax]
	}
	total := max(sp.Total, len(items))
	tr := digestTexts[sp.Lang]
	if tr == nil {
		tr = digestTexts["ja"]
	}
	view := digestView{T: tr, Admin: sp.Admin, Total: total, Shown: len(items), Console: strings.TrimRight(d.BaseURL, "/") + "/quarantine"}
	for _, it := range items {
		name, addr := d.Manager.sender(ctx, it)
		if addr == "" {
			addr = it.MailFrom
		}
		exp := it.Expires
		if !exp.After(sp.Now) {
			exp = sp.Now.Add(24 * time.Hour)
		}
		link := func(a signedlink.Action) string {
			return d.LinkURL(signedlink.Link{Action: a, TenantID: it.TenantID, ItemID: it.ID, Rcpt: it.Rcpt, Expires: exp})
		}
		view.Entries = append(view.Entries, digestEntry{
			Name: oneLine(name, 200), Addr: oneLine(addr, 320), Subject: oneLine(it.Subject, 300), Rcpt: oneLine(it.Rcpt, 320),
			Date: it.Created.In(zone).Format("2006-01-02 15:04"), Score: fmt.Sprintf("%.2f", it.Score), Reason: oneLine(it.Reasons, 200),
			Release: link(signedlink.Release), ReleaseAllow: link(signedlink.ReleaseAllow), Block: link(signedlink.BlockSender), Open: link(signedlink.Open),
		})
	}
	subj := fmt.Sprintf(tr.Subject, total)
	if sp.Admin {
		subj = fmt.Sprintf(tr.AdminSubject, total)
	}
	return outMail{Hostname: d.Manager.Hostname, To: sp.To, Subject: subj, Date: sp.Now, Text: view.text(), HTML: view.html()}.bytes()
}
