package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/attachlink"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/consoletest"
	"github.com/mailgate/mailgate/internal/web"
)

// The permission matrix: every route of the console and the API, called by
// every kind of caller (anonymous, end user, tenant administrator, operator;
// for the API a read token too), with objects of the caller's own tenant
// (acme) and of another tenant (other). Below a route's least role the
// answer is a refusal; with another tenant's objects it is a refusal too,
// whatever the role; no answer to tenant acme's callers carries tenant
// other's data; and tenant other ends exactly as it started.

// matrixEnv holds the environment, tenant other's objects and a counter
// for fresh names.
type matrixEnv struct {
	t   *testing.T
	e   *consoletest.Env
	ctx context.Context
	n   int
	// Tenant other's objects.
	bGroup, bList, bMsg, bQuar, bToken, bAdminAcct, bUserAcct string
	bArch, bHold                                              string
	bML                                                       string // tenant other's mailing list
	bRule, bOutHold                                           string // outbound rule and held message
	bLink                                                     string // attachment link of carol's sent mail
	// markers are strings only tenant other's data contains.
	markers []string
	// Mail of bob (same tenant, another user) and carol (tenant other).
	bobMail, carolMail mailRef
}

func (m *matrixEnv) next() int { m.n++; return m.n }

func (m *matrixEnv) must(err error) {
	m.t.Helper()
	if err != nil {
		m.t.Fatal(err)
	}
}

// quarantinedMail is a quarantined copy with one attachment.
func quarantinedMail(subject string) string {
	return "From: Spammer <spam@example.net>\r\nTo: someone\r\nSubject: " + subject + "\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nbuy now\r\n" +
		"--b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"offer.bin\"\r\n\r\nDATA\r\n--b1--\r\n"
}

// heldMessage queues a message whose recipient is on hold (so no worker
// touches it) and returns its queue ID.
func (m *matrixEnv) heldMessage(tenantID int64, rcpt, subject string) string {
	m.t.Helper()
	now := time.Now()
	id := store.NewMessageID(now)
	w, err := m.e.Spool.Create(m.ctx, id)
	m.must(err)
	io.WriteString(w, "From: sender@example.net\r\nSubject: "+subject+"\r\n\r\nheld\r\n")
	m.must(w.Commit(m.ctx))
	msg := store.Message{ID: id, TenantID: tenantID, Direction: store.Inbound, MailFrom: "sender@example.net", Size: w.Size(),
		BlobKey: w.Key(), ReceivedAt: now, ClientIP: "127.0.0.1", Helo: "client.example.net", MessageID: "<" + id + "@example.net>", Subject: subject}
	_, err = m.e.Store.Enqueue(m.ctx, msg, []store.Recipient{{Addr: rcpt, State: store.Held, NextAttempt: now}},
		[]store.Event{{MessageID: id, TenantID: tenantID, At: now, Kind: "received", Rcpt: rcpt, Detail: "test fixture"}})
	m.must(err)
	return id
}

// archived archives a message with one attachment (queued on hold, then
// taken by the archiver) and returns its archive ID.
func (m *matrixEnv) archived(tenantID int64, rcpt, subject string) string {
	m.t.Helper()
	now := time.Now()
	id := store.NewMessageID(now)
	w, err := m.e.Spool.Create(m.ctx, id)
	m.must(err)
	io.WriteString(w, quarantinedMail(subject))
	m.must(w.Commit(m.ctx))
	msg := store.Message{ID: id, TenantID: tenantID, Direction: store.Inbound, MailFrom: "spam@example.net", Size: w.Size(),
		BlobKey: w.Key(), ReceivedAt: now, ClientIP: "127.0.0.1", Helo: "client.example.net", MessageID: "<" + id + "@example.net>", Subject: subject}
	_, err = m.e.Store.Enqueue(m.ctx, msg, []store.Recipient{{Addr: rcpt, State: store.Held, NextAttempt: now}}, nil)
	m.must(err)
	svc, err := m.e.OpenArchive(m.ctx)
	m.must(err)
	// The node's own archiver may hold the message's lease for a moment.
	for i := 0; i < 500; i++ {
		_, err := svc.RunOnce(m.ctx, 1)
		m.must(err)
		es, err := m.e.Store.ArchiveEntries(m.ctx, tenantID, 0, 10000)
		m.must(err)
		for _, e := range es {
			if e.QueueID == id {
				return e.ID
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	m.t.Fatalf("message %s not archived", id)
	return ""
}

func (m *matrixEnv) archiveHold(tenantID int64, value string) string {
	m.t.Helper()
	h, err := m.e.Store.AddArchiveHold(m.ctx, store.ArchiveHold{TenantID: tenantID, Kind: "address", Value: value, Reason: "matrix", By: "test", Created: time.Now()})
	m.must(err)
	return strconv.FormatInt(h.ID, 10)
}

// quarantined stores a held quarantine copy and returns its ID.
func (m *matrixEnv) quarantined(tenantID int64, rcpt, subject string) string {
	m.t.Helper()
	now := time.Now()
	id := store.NewMessageID(now)
	w, err := m.e.QSpool.Create(m.ctx, id)
	m.must(err)
	io.WriteString(w, quarantinedMail(subject))
	m.must(w.Commit(m.ctx))
	it := store.QuarantineItem{ID: id, TenantID: tenantID, Rcpt: rcpt, BlobKey: w.Key(), MailFrom: "spam@example.net",
		FromHdr: "Spammer <spam@example.net>", Subject: subject, Size: w.Size(), Score: 99, Reasons: "spam", Created: now,
		Expires: now.Add(7 * 24 * time.Hour), State: store.QHeld}
	m.must(m.e.Store.AddQuarantine(m.ctx, it, store.Event{MessageID: id, TenantID: tenantID, At: now, Kind: "quarantined", Rcpt: rcpt}))
	return id
}

// outRule stores an outbound rule and returns its ID.
func (m *matrixEnv) outRule(tenantID int64, name string) string {
	m.t.Helper()
	r, err := m.e.Store.AddOutboundRule(m.ctx, store.OutboundRule{TenantID: tenantID, Name: name, Enabled: true, Scope: store.ScopeTenant,
		Spec: `{"conditions":[{"field":"body","op":"contains","values":["` + name + `"]}],"action":"hold"}`})
	m.must(err)
	return strconv.FormatInt(r.ID, 10)
}

// outHold queues an outbound message of sender held for approval and
// returns its queue ID.
func (m *matrixEnv) outHold(tenantID int64, sender, subject string) string {
	m.t.Helper()
	now := time.Now()
	id := store.NewMessageID(now)
	w, err := m.e.Spool.Create(m.ctx, id)
	m.must(err)
	io.WriteString(w, "From: "+sender+"\r\nSubject: "+subject+"\r\n\r\nheld\r\n")
	m.must(w.Commit(m.ctx))
	msg := store.Message{ID: id, TenantID: tenantID, Direction: store.Outbound, MailFrom: sender, Size: w.Size(), BlobKey: w.Key(),
		ReceivedAt: now, ClientIP: "127.0.0.1", Helo: "client.example.test", Subject: subject}
	_, err = m.e.Store.Accept(m.ctx, store.Acceptance{Queue: []store.QueuedMessage{{Message: msg,
		Recipients: []store.Recipient{{Addr: "x@partner.test", State: store.Held, NextAttempt: now}}}},
		Holds: []store.OutboundHold{{MessageID: id, TenantID: tenantID, Kind: store.HoldApproval, State: store.HoldPending, Sender: sender,
			Subject: subject, Rcpts: "x@partner.test", Reason: "matrix", ReleaseAt: now.Add(time.Hour), OnTimeout: "reject", Created: now}}})
	m.must(err)
	return id
}

// attachLink stores an attachment link of sender's sent mail and returns
// its ID.
func (m *matrixEnv) attachLink(tenantID int64, sender, subject string) string {
	m.t.Helper()
	now := time.Now()
	id := fmt.Sprintf("lnk%d", m.next())
	m.must(attachlink.StoreRecords{S: m.e.Store.(store.AttachLinkStore)}.Create(m.ctx, attachlink.Link{ID: id, TenantID: tenantID,
		Sender: sender, Rcpts: []string{"x@partner.test"}, Subject: subject, Files: []attachlink.File{{Name: subject + ".pdf", Size: 4}},
		Created: now, Expires: now.Add(time.Hour)}))
	return id
}

func (m *matrixEnv) listEntry(tenantID int64, scope, owner, value string) string {
	m.t.Helper()
	le, err := m.e.Store.AddListEntry(m.ctx, store.ListEntry{TenantID: tenantID, Scope: scope, Owner: owner, Kind: "deny",
		Field: "from_addr", Mode: "exact", Value: value, Action: "reject"})
	m.must(err)
	return strconv.FormatInt(le.ID, 10)
}

func (m *matrixEnv) account(tenantID int64, login string, role store.Role) string {
	m.t.Helper()
	a, err := m.e.Store.CreateAccount(m.ctx, store.Account{TenantID: tenantID, Login: login, Role: role, Created: time.Now()})
	m.must(err)
	return strconv.FormatInt(a.ID, 10)
}

func (m *matrixEnv) token(tenantID int64, name string) string {
	_, id := newToken(m.t, m.e, name, tenantID, "write", time.Time{})
	return strconv.FormatInt(id, 10)
}

// setupOther gives tenant other one object of every kind, named so that
// its data is recognisable in any response.
func (m *matrixEnv) setupOther() {
	e, b := m.e, m.e.TenantB.ID
	m.must(e.Store.SetDisplayName(m.ctx, b, "carol@other.test", "Carol Secretname"))
	_, err := e.Store.CreateGroup(m.ctx, b, "b-team")
	m.must(err)
	m.must(e.Store.AddGroupMember(m.ctx, b, "b-team", "carol@other.test"))
	m.bGroup = "b-team"
	m.bList = m.listEntry(b, "domain", "other.test", "b-secret-sender@spam.test")
	m.must(e.Store.SetSetting(m.ctx, store.Setting{TenantID: b, Scope: "domain", Owner: "other.test", Key: "spam.tag_at", Value: "70"}))
	m.bMsg = m.heldMessage(b, "carol@other.test", "B-SECRET-SUBJECT 機密")
	m.bQuar = m.quarantined(b, "carol@other.test", "B-QSECRET-SUBJECT")
	// Before the archive is on: the held message is not archived later.
	m.bRule = m.outRule(b, "B-RULE-SECRET")
	m.bOutHold = m.outHold(b, "carol@other.test", "B-HOLD-SECRET")
	m.bLink = m.attachLink(b, "carol@other.test", "B-LINK-SECRET")
	// Acme's end users may search their own archived mail; other's may not.
	for _, tid := range []int64{b, m.e.Tenant.ID} {
		m.must(e.Store.SetArchiveSettings(m.ctx, store.ArchiveSettings{TenantID: tid, Enabled: true, UserSearch: tid != b}))
	}
	m.bArch = m.archived(b, "carol@other.test", "B-ARCHSECRET-SUBJECT")
	m.bHold = m.archiveHold(b, "carol@other.test")
	ts, err := e.Store.APITokens(m.ctx, b)
	m.must(err)
	m.bToken = strconv.FormatInt(ts[0].ID, 10)
	boss, err := e.Store.AccountByLogin(m.ctx, consoletest.AdminB)
	m.must(err)
	carol, err := e.Store.AccountByLogin(m.ctx, consoletest.UserB)
	m.must(err)
	m.bAdminAcct, m.bUserAcct = strconv.FormatInt(boss.ID, 10), strconv.FormatInt(carol.ID, 10)
	ml, err := e.Store.CreateMailingList(m.ctx, store.MailingList{TenantID: b, DomainID: m.otherDomain(), Address: "b-secret-list@other.test",
		Name: "bsecret", Description: "B-ML-SECRET", Posting: store.PostMembers}, 0)
	m.must(err)
	_, err = e.Store.AddListMembers(m.ctx, b, ml.ID, []store.ListMember{{Address: "b-member@example.net", Comment: "B-MEMBER-SECRET"}}, false)
	m.must(err)
	m.must(e.Store.SetListAdmins(m.ctx, b, ml.ID, []string{"carol@other.test"}))
	m.bML = strconv.FormatInt(ml.ID, 10)
	// The matrix makes a fresh list per request.
	m.must(e.Store.SetSetting(m.ctx, store.Setting{TenantID: m.e.Tenant.ID, Scope: "tenant", Key: "ml.max_lists", Value: "100000"}))
	m.markers = []string{"other.test", "b-team", "b-secret-sender", "B-SECRET-SUBJECT", "機密", "B-QSECRET-SUBJECT",
		"Carol Secretname", m.bMsg, m.bQuar, "B-ML-SECRET", "B-MEMBER-SECRET", "B-ARCHSECRET-SUBJECT", m.bArch, "B-RULE-SECRET", "B-HOLD-SECRET", m.bOutHold, "B-LINK-SECRET", m.bLink}
	m.setupMail()
}

func (m *matrixEnv) otherDomain() int64 {
	d, err := m.e.Store.DomainByName(m.ctx, "other.test")
	m.must(err)
	return d.ID
}

// mlList makes a mailing list of tenant acme administered by admin (a
// user's address), with one member, and returns its ID.
func (m *matrixEnv) mlList(admin string) string {
	m.t.Helper()
	a := m.e.Tenant.ID
	l, err := m.e.Store.CreateMailingList(m.ctx, store.MailingList{TenantID: a, DomainID: m.e.Domain.ID,
		Address: fmt.Sprintf("ml%d@example.test", m.next()), Name: "ml", Posting: store.PostMembers}, 0)
	m.must(err)
	_, err = m.e.Store.AddListMembers(m.ctx, a, l.ID, []store.ListMember{{Address: "member@example.net", Comment: "Member"}}, false)
	m.must(err)
	m.must(m.e.Store.SetListAdmins(m.ctx, a, l.ID, []string{admin}))
	return strconv.FormatInt(l.ID, 10)
}

// tenantState is everything of a tenant the matrix could change.
type tenantState struct {
	Domains  []store.Domain
	Routes   [][]store.Route
	Users    []store.User
	People   []store.Person
	Groups   []store.Group
	Lists    []store.ListEntry
	Version  int64
	Settings []store.Setting
	Accounts []store.Account
	Tokens   []store.APIToken
	Message  store.Message
	Rcpts    []store.Recipient
	Events   int
	Quar     store.QuarantineItem
	Audit    int
	Tenants  []store.Tenant
	// The audit archive.
	Archive      []store.ArchiveEntry
	ArchHolds    []store.ArchiveHold
	ArchSettings store.ArchiveSettings
	ArchGrants   []string
	Mail         []store.MailMessage
	MLists       []store.MailingList
	MMembers     [][]store.ListMember
	Links        []store.AttachLink
}

func (m *matrixEnv) snapshot() tenantState {
	m.t.Helper()
	ctx, st, b := m.ctx, m.e.Store, m.e.TenantB.ID
	var s tenantState
	var err error
	s.Domains, err = st.Domains(ctx, b)
	m.must(err)
	for _, d := range s.Domains {
		rs, err := st.Routes(ctx, b, d.ID)
		m.must(err)
		s.Routes = append(s.Routes, rs)
	}
	s.Users, err = st.Users(ctx, b)
	m.must(err)
	s.People, err = st.People(ctx, b)
	m.must(err)
	s.Groups, err = st.Groups(ctx, b)
	m.must(err)
	s.Lists, err = st.ListEntries(ctx, b)
	m.must(err)
	s.Version, err = st.ListsVersion(ctx, b)
	m.must(err)
	s.Settings, err = st.Settings(ctx, b)
	m.must(err)
	s.Accounts, err = st.Accounts(ctx, b)
	m.must(err)
	s.Tokens, err = st.APITokens(ctx, b)
	m.must(err)
	s.Message, s.Rcpts, err = st.Message(ctx, b, m.bMsg)
	m.must(err)
	for i := range s.Rcpts {
		s.Rcpts[i].LeaseOwner, s.Rcpts[i].LeaseUntil = "", time.Time{} // workers' bookkeeping
	}
	evs, err := st.Events(ctx, b, m.bMsg)
	m.must(err)
	s.Events = len(evs)
	s.Quar, err = st.QuarantineItem(ctx, b, m.bQuar)
	m.must(err)
	au, err := st.AuditLog(ctx, store.AuditFilter{TenantID: b, Limit: 1000})
	m.must(err)
	s.Audit = len(au)
	s.Archive, err = st.ArchiveEntries(ctx, b, 0, 10000)
	m.must(err)
	s.ArchHolds, err = st.ArchiveHolds(ctx, b)
	m.must(err)
	s.ArchSettings, err = st.ArchiveSettings(ctx, b)
	m.must(err)
	s.ArchGrants, err = st.ArchiveAccessList(ctx, b)
	m.must(err)
	s.Mail = m.mailState()
	ts, err := st.Tenants(ctx)
	m.must(err)
	for _, t := range ts {
		if t.ID == b {
			s.Tenants = append(s.Tenants, t)
		}
	}
	s.MLists, err = st.MailingLists(ctx, b)
	m.must(err)
	for _, l := range s.MLists {
		ms, err := st.ListMembers(ctx, b, l.ID)
		m.must(err)
		s.MMembers = append(s.MMembers, ms)
	}
	s.Links, err = st.(store.AttachLinkStore).AttachLinks(ctx, b, "", 100)
	m.must(err)
	return s
}

// caller is one identity of the matrix.
type caller struct {
	name   string
	role   store.Role          // "" = anonymous
	c      *consoletest.Client // console session (anonymous: no login)
	secret string              // API token ("" = none)
	read   bool                // read-only API token
	query  string              // added to API calls (?tenant= for the operator)
}

// variant is one concrete request for a route.
type variant struct {
	kind      string // "own", "other" (must be refused) or "filter" (may answer; must not leak)
	path      string
	form      url.Values
	multipart bool
	body      any
	addrParam bool // the other tenant's object is an address: 400 (not ours) is a refusal too
}

var paramRe = strings.NewReplacer("{$}", "")

// fill replaces the pattern's wildcards.
func fill(pattern string, vals map[string]string) string {
	_, path, _ := strings.Cut(pattern, " ")
	path = paramRe.Replace(path)
	for k, v := range vals {
		path = strings.ReplaceAll(path, "{"+k+"}", url.PathEscape(v))
	}
	if strings.Contains(path, "{") {
		panic("unfilled wildcard in " + pattern)
	}
	return path
}

func params(pattern string) []string {
	var out []string
	for _, seg := range strings.Split(pattern, "/") {
		if strings.HasPrefix(seg, "{") && seg != "{$}" {
			out = append(out, strings.Trim(seg, "{}"))
		}
	}
	return out
}

// ownValue makes a fresh object of tenant acme for a wildcard.
func (m *matrixEnv) ownValue(pattern, param string) string {
	a := m.e.Tenant.ID
	n := m.next()
	switch {
	case isML(pattern) && param == "id":
		return m.mlList(consoletest.UserA) // alice administers it
	case isML(pattern) && param == "address":
		return "member@example.net"
	case param == "action" && strings.Contains(pattern, "/queue/"):
		return "hold"
	case param == "action":
		return "report-spam"
	case param == "n":
		return "0"
	case param == "op":
		return "down"
	case param == "decision":
		return "cancel"
	case strings.Contains(pattern, "/outbound/rules/"):
		return m.outRule(a, fmt.Sprintf("own rule %d", n))
	case strings.Contains(pattern, "/outbound/holds/"):
		return m.outHold(a, consoletest.UserA, fmt.Sprintf("own held %d", n))
	case strings.Contains(pattern, "/links/"):
		return m.attachLink(a, consoletest.UserA, fmt.Sprintf("own link %d", n))
	case strings.Contains(pattern, "/archive") && param == "hold":
		return m.archiveHold(a, fmt.Sprintf("h%d@example.test", n))
	case strings.Contains(pattern, "/archive"):
		// Alice's: the end user in the matrix reads her own archived mail.
		return m.archived(a, consoletest.UserA, fmt.Sprintf("own archived %d", n))
	case strings.Contains(pattern, "/tenants/"):
		t, err := m.e.Store.CreateTenant(m.ctx, fmt.Sprintf("spare%d", n))
		m.must(err)
		if param == "id" {
			return strconv.FormatInt(t.ID, 10)
		}
		return t.Name
	case strings.Contains(pattern, "/domains/"):
		d, err := m.e.Store.CreateDomain(m.ctx, a, fmt.Sprintf("d%d.acme-spare.test", n))
		m.must(err)
		if strings.HasSuffix(pattern, "/directory/sync") {
			// A Google directory without its administrator: the sync fails
			// at once (recorded, no request leaves the machine).
			m.must(m.e.Store.(store.DirectoryStore).SetRecipientCheck(m.ctx, store.RecipientCheck{TenantID: a, DomainID: d.ID,
				Mode: store.RcptCheckDirectory, Source: store.DirectoryGoogle}))
		}
		return d.Name
	case strings.Contains(pattern, "/groups/") && param == "name":
		_, err := m.e.Store.CreateGroup(m.ctx, a, fmt.Sprintf("g%d", n))
		m.must(err)
		if strings.HasPrefix(pattern, "DELETE") && strings.Contains(pattern, "/members/") {
			m.must(m.e.Store.AddGroupMember(m.ctx, a, fmt.Sprintf("g%d", n), consoletest.UserA))
		}
		return fmt.Sprintf("g%d", n)
	case strings.Contains(pattern, "/groups/"):
		return consoletest.UserA
	case strings.Contains(pattern, "/users/"), strings.Contains(pattern, "/mailboxes/"):
		u, err := m.e.Store.CreateUser(m.ctx, a, fmt.Sprintf("u%d@example.test", n))
		m.must(err)
		return u.Address
	case strings.Contains(pattern, "/lists/"):
		return m.listEntry(a, "address", consoletest.UserA, fmt.Sprintf("x%d@spam.test", n))
	case strings.Contains(pattern, "/queue/"), strings.Contains(pattern, "/tracking/"), strings.Contains(pattern, "/messages/"):
		return m.heldMessage(a, "bob@example.test", fmt.Sprintf("own message %d", n))
	case strings.Contains(pattern, "/quarantine/"):
		return m.quarantined(a, consoletest.UserA, fmt.Sprintf("own spam %d", n))
	case strings.Contains(pattern, "/tokens/"):
		return m.token(a, fmt.Sprintf("tok%d", n))
	case strings.Contains(pattern, "/accounts/") && strings.HasSuffix(pattern, "/app-password"):
		// Mail app passwords are for logins that are an address.
		return m.account(a, fmt.Sprintf("spare%d@example.test", n), store.RoleUser)
	case strings.Contains(pattern, "/accounts/"):
		return m.account(a, fmt.Sprintf("spare%d", n), store.RoleAdmin)
	}
	m.t.Fatalf("no own object for {%s} in %s", param, pattern)
	return ""
}

// isML reports whether a route is a mailing list's.
func isML(pattern string) bool {
	return strings.Contains(pattern, " /ml/") || strings.Contains(pattern, "/mailing-lists/")
}

// otherValues are tenant other's objects for a wildcard (several for
// actions: each is tried).
func (m *matrixEnv) otherValues(pattern, param string) []string {
	switch {
	case isML(pattern) && param == "id":
		return []string{m.bML}
	case isML(pattern) && param == "address":
		return []string{"b-member@example.net"}
	case param == "action" && strings.Contains(pattern, "/queue/"):
		return []string{"hold", "release", "retry", "delete", "bounce"}
	case param == "action":
		return []string{"release", "delete", "release-allow", "block", "report-spam", "report-ham", "forward"}
	case param == "n":
		return []string{"0"}
	case param == "op":
		return []string{"delete", "up", "down", "enable", "disable"}
	case param == "decision":
		return []string{"approve", "reject", "cancel", "send-now"}
	case strings.Contains(pattern, "/outbound/rules/"):
		return []string{m.bRule}
	case strings.Contains(pattern, "/outbound/holds/"):
		return []string{m.bOutHold}
	case strings.Contains(pattern, "/links/"):
		return []string{m.bLink}
	case strings.Contains(pattern, "/archive") && param == "hold":
		return []string{m.bHold}
	case strings.Contains(pattern, "/archive"):
		return []string{m.bArch}
	case strings.Contains(pattern, "/tenants/") && param == "id":
		return []string{strconv.FormatInt(m.e.TenantB.ID, 10)}
	case strings.Contains(pattern, "/tenants/"):
		return []string{m.e.TenantB.Name}
	case strings.Contains(pattern, "/domains/"):
		return []string{"other.test"}
	case strings.Contains(pattern, "/groups/") && param == "name":
		return []string{m.bGroup}
	case strings.Contains(pattern, "/groups/"):
		return []string{consoletest.UserA} // the group is the other tenant's
	case strings.Contains(pattern, "/users/"), strings.Contains(pattern, "/mailboxes/"):
		return []string{"carol@other.test"}
	case strings.Contains(pattern, "/lists/"):
		return []string{m.bList}
	case strings.Contains(pattern, "/queue/"), strings.Contains(pattern, "/tracking/"), strings.Contains(pattern, "/messages/"):
		return []string{m.bMsg}
	case strings.Contains(pattern, "/quarantine/"):
		return []string{m.bQuar}
	case strings.Contains(pattern, "/tokens/"):
		return []string{m.bToken}
	case strings.Contains(pattern, "/accounts/"):
		return []string{m.bAdminAcct, m.bUserAcct}
	}
	m.t.Fatalf("no other object for {%s} in %s", param, pattern)
	return nil
}

// ownForm is a valid form for a console POST on tenant acme.
func (m *matrixEnv) ownForm(pattern string) (url.Values, bool) {
	n := m.next()
	switch pattern {
	case "POST /tenant":
		return url.Values{"tenant": {strconv.FormatInt(m.e.Tenant.ID, 10)}}, false
	case "POST /tenants":
		return url.Values{"name": {fmt.Sprintf("new%d", n)}}, false
	case "POST /domains":
		return url.Values{"name": {fmt.Sprintf("n%d.acme-new.test", n)}, "route": {"mx"}}, false
	case "POST /domains/{name}/routes":
		return url.Values{"route": {"smtp://127.0.0.1:2525"}}, false
	case "POST /users":
		return url.Values{"address": {fmt.Sprintf("new%d@example.test", n)}, "name": {"New"}}, false
	case "POST /users/import":
		return url.Values{"file": {fmt.Sprintf("address,name\r\nimp%d@example.test,Imported\r\n", n)}}, true
	case "POST /groups":
		return url.Values{"name": {fmt.Sprintf("grp%d", n)}}, false
	case "POST /groups/{name}/members":
		return url.Values{"address": {consoletest.UserA}}, false
	case "POST /policy", "POST /policy/unset":
		m.must(m.e.Store.SetSetting(m.ctx, store.Setting{TenantID: m.e.Tenant.ID, Scope: "tenant", Key: "test.matrix", Value: "0"}))
		return url.Values{"scope": {"tenant"}, "key": {"test.matrix"}, "value": {"1"}}, false
	case "POST /policy/section":
		return url.Values{"scope": {"tenant"}, "section": {"spam"}, "v.spam.tag": {fmt.Sprintf("[t%d]", n)}}, false
	case "POST /lists":
		return url.Values{"scope": {"address"}, "owner": {consoletest.UserA}, "kind": {"deny"}, "value": {fmt.Sprintf("f%d@spam.test", n)}, "action": {"reject"}}, false
	case "POST /tokens":
		return url.Values{"name": {fmt.Sprintf("t%d", n)}, "scope": {"read"}}, false
	case "POST /accounts":
		// Tenant administrators create address logins of their own domains.
		return url.Values{"login": {fmt.Sprintf("acct%d@example.test", n)}, "role": {"admin"}, "password": {consoletest.Password}}, false
	case "POST /accounts/{id}/password":
		return url.Values{"password": {consoletest.Password}}, false
	case "POST /account/password":
		return url.Values{"current": {consoletest.Password}, "password": {consoletest.Password}}, false
	case "POST /account/lang":
		return url.Values{"lang": {"en"}}, false
	case "POST /domains/{name}/onboard/service":
		return url.Values{"service": {"m365"}}, false
	case "POST /domains/{name}/onboard/test":
		return url.Values{"rcpt": {"postmaster"}}, false
	case "POST /domains/{name}/onboard/done":
		return url.Values{"step": {"3"}}, false
	case "POST /domains/{name}/continuity/switch":
		return url.Values{"mode": {"emergency"}, "reason": {"matrix"}}, false
	case "POST /domains/{name}/recipient-check":
		return url.Values{"mode": {"none"}}, false
	case "POST /continuity/credentials":
		return url.Values{"provider": {"graph"}, "credentials": {`{"tenant":"t1","client_id":"c1","client_secret":"s1"}`}}, false
	case "POST /mailboxes/{address}/quota":
		return url.Values{"quota_mb": {"100"}}, false
	case "POST /mailboxes/{address}/password":
		return url.Values{"password": {consoletest.Password}}, false
	case "POST /continuity/credentials/delete":
		return url.Values{"provider": {"graph"}}, false
	case "POST /outbound/rules", "POST /outbound/rules/{id}":
		return url.Values{"name": {fmt.Sprintf("r%d", n)}, "enabled": {"1"}, "scope": {"tenant"}, "action": {"hold"},
			"conditions": {"body contains 社外秘\nrcpt outside"}}, false
	case "POST /outbound/test":
		return url.Values{"message": {"From: alice@example.test\r\nTo: x@partner.test\r\nSubject: t\r\n\r\n社外秘\r\n"}}, false
	case "POST /policy/dry-run":
		return url.Values{"scope": {"tenant"}, "section": {"spam"}, "v.spam.quarantine_at": {"100"}, "days": {"7"}}, false
	case "POST /archive/settings":
		return url.Values{"enabled": {"1"}, "mode": {"all"}, "on_full": {"stop"}, "user_search": {"1"}}, false
	case "POST /archive/access":
		return url.Values{"principal": {consoletest.AdminA}, "on": {"1"}}, false
	case "POST /archive/holds":
		return url.Values{"kind": {"address"}, "value": {fmt.Sprintf("held%d@example.test", n)}, "reason": {"matrix"}}, false
	case "POST /archive/import":
		return url.Values{"file": {fmt.Sprintf("From someone@example.net Sat Jan  3 01:05:34 2026\r\nFrom: someone@example.net\r\nSubject: imported %d\r\n\r\nhello\r\n", n)}}, true
	case "POST /ml":
		return url.Values{"address": {fmt.Sprintf("newml%d@example.test", n)}, "posting": {"members"}}, false
	case "POST /ml/{id}":
		return url.Values{"name": {"renamed"}, "posting": {"anyone"}, "subject_serial": {"1"}}, false
	case "POST /ml/{id}/admins":
		return url.Values{"admins": {consoletest.UserA}}, false
	case "POST /ml/{id}/members":
		return url.Values{"address": {fmt.Sprintf("new%d@example.net", n)}, "comment": {"New"}}, false
	case "POST /ml/{id}/members/remove", "POST /ml/{id}/members/enable":
		return url.Values{"address": {"member@example.net"}}, false
	case "POST /ml/{id}/import":
		return url.Values{"file": {fmt.Sprintf("address,comment\r\nimp%d@example.net,Imported\r\n", n)}}, true
	}
	return url.Values{}, false
}

// ownBody is a valid JSON body (and query) for an API call on tenant acme.
func (m *matrixEnv) ownBody(pattern string) (any, string) {
	n := m.next()
	switch pattern {
	case "POST /api/v1/tenants":
		return map[string]string{"Name": fmt.Sprintf("apinew%d", n)}, ""
	case "POST /api/v1/domains":
		return map[string]any{"name": fmt.Sprintf("a%d.acme-new.test", n), "routes": []string{"mx"}}, ""
	case "PUT /api/v1/domains/{name}/routes":
		return map[string]any{"routes": []string{"mx"}}, ""
	case "POST /api/v1/users":
		return map[string]string{"address": fmt.Sprintf("api%d@example.test", n)}, ""
	case "POST /api/v1/accounts":
		return map[string]string{"login": fmt.Sprintf("apiacct%d@example.test", n), "role": "user", "password": consoletest.Password}, ""
	case "PUT /api/v1/accounts/{id}/password", "PUT /api/v1/mailboxes/{address}/password":
		return map[string]string{"password": consoletest.Password}, ""
	case "PUT /api/v1/mailboxes/{address}/quota":
		return map[string]int{"quota_mb": 100}, ""
	case "POST /api/v1/groups":
		return map[string]string{"name": fmt.Sprintf("apig%d", n)}, ""
	case "PUT /api/v1/policy":
		return map[string]string{"scope": "tenant", "key": "test.matrix", "value": "1"}, ""
	case "DELETE /api/v1/policy":
		m.must(m.e.Store.SetSetting(m.ctx, store.Setting{TenantID: m.e.Tenant.ID, Scope: "tenant", Key: "test.matrix", Value: "0"}))
		return nil, "scope=tenant&key=test.matrix"
	case "POST /api/v1/lists":
		return map[string]string{"Scope": "address", "Owner": consoletest.UserA, "Kind": "deny", "Value": fmt.Sprintf("api%d@spam.test", n), "Action": "reject"}, ""
	case "POST /api/v1/domains/{name}/continuity":
		return map[string]string{"mode": "emergency"}, ""
	case "PUT /api/v1/domains/{name}/recipient-check":
		return map[string]string{"mode": "none"}, ""
	case "POST /api/v1/domains/{name}/directory/sync":
		return map[string]any{"confirm": false}, ""
	case "POST /api/v1/domains/{name}/handback":
		return map[string]string{}, ""
	case "PUT /api/v1/continuity/credentials":
		return map[string]any{"provider": "graph", "credentials": map[string]string{"tenant": "t1", "client_id": "c1", "client_secret": "s1"}}, ""
	case "GET /api/v1/continuity/credentials", "DELETE /api/v1/continuity/credentials":
		return nil, "provider=graph"
	case "POST /api/v1/outbound/rules", "PUT /api/v1/outbound/rules/{id}":
		return map[string]any{"name": fmt.Sprintf("api rule %d", n), "enabled": true, "spec": map[string]any{"action": "tag", "tag": "[x]",
			"conditions": []map[string]any{{"field": "rcpt", "op": "outside"}}}}, ""
	case "PUT /api/v1/outbound/rules-order":
		rs, err := m.e.Store.OutboundRules(m.ctx, m.e.Tenant.ID)
		m.must(err)
		ids := []int64{}
		for i := len(rs) - 1; i >= 0; i-- {
			ids = append(ids, rs[i].ID)
		}
		return map[string]any{"ids": ids}, ""
	case "POST /api/v1/outbound/test":
		return map[string]any{"message": "From: alice@example.test\r\nTo: x@partner.test\r\nSubject: t\r\n\r\nhello\r\n"}, ""
	case "POST /api/v1/domains/{name}/onboarding":
		return map[string]any{"action": "service", "service": "google"}, ""
	case "POST /api/v1/policy/dry-run":
		return map[string]any{"scope": "tenant", "values": map[string]string{"spam.quarantine_at": "100"}, "days": 7}, ""
	case "POST /api/v1/archive/messages/{id}/resend":
		return map[string]any{}, ""
	case "POST /api/v1/archive/holds":
		return map[string]string{"kind": "address", "value": fmt.Sprintf("apiheld%d@example.test", n), "reason": "matrix"}, ""
	case "POST /api/v1/archive/access":
		return map[string]any{"principal": consoletest.AdminA, "on": true}, ""
	case "POST /api/v1/mailing-lists":
		return map[string]any{"address": fmt.Sprintf("apiml%d@example.test", n), "subject_serial": true}, ""
	case "PUT /api/v1/mailing-lists/{id}":
		return map[string]any{"name": "renamed", "posting": "domain"}, ""
	case "PUT /api/v1/mailing-lists/{id}/admins":
		return map[string]any{"admins": []string{consoletest.UserA}}, ""
	case "PUT /api/v1/mailing-lists/{id}/members/{address}":
		return map[string]any{"comment": "Member, Inc."}, ""
	}
	return nil, ""
}

// bodyVariants are requests without wildcards that name tenant other's
// objects in the form, body or query.
func (m *matrixEnv) bodyVariants(pattern string, role store.Role) []variant {
	polDomain := url.Values{"scope": {"domain"}, "owner": {"other.test"}, "key": {"spam.tag_at"}, "value": {"1"}}
	switch pattern {
	case "POST /policy", "POST /policy/unset":
		return []variant{{kind: "other", form: polDomain}}
	case "POST /policy/section", "POST /policy/dry-run":
		return []variant{{kind: "other", form: url.Values{"scope": {"domain"}, "owner": {"other.test"}, "section": {"spam"}, "v.spam.tag_at": {"1"}}}}
	case "POST /api/v1/policy/dry-run":
		return []variant{{kind: "other", body: map[string]any{"scope": "domain", "owner": "other.test", "values": map[string]string{"spam.tag_at": "1"}}}}
	case "POST /lists":
		if role == store.RoleUser {
			return nil // an end user's entries always go to their own list
		}
		return []variant{{kind: "other", form: url.Values{"scope": {"domain"}, "owner": {"other.test"}, "kind": {"allow"}, "value": {"x@spam.test"}}}}
	case "POST /users":
		return []variant{{kind: "other", form: url.Values{"address": {"new@other.test"}}, addrParam: true}}
	case "POST /accounts":
		return []variant{{kind: "other", form: url.Values{"login": {"dave@other.test"}, "role": {"user"}, "password": {consoletest.Password}}, addrParam: true}}
	case "PUT /api/v1/policy":
		return []variant{{kind: "other", body: map[string]string{"scope": "domain", "owner": "other.test", "key": "spam.tag_at", "value": "1"}}}
	case "DELETE /api/v1/policy":
		return []variant{{kind: "other", path: "/api/v1/policy?scope=domain&owner=other.test&key=spam.tag_at"}}
	case "POST /api/v1/lists":
		return []variant{{kind: "other", body: map[string]string{"Scope": "domain", "Owner": "other.test", "Kind": "allow", "Value": "x@spam.test"}}}
	case "POST /api/v1/users":
		return []variant{{kind: "other", body: map[string]string{"address": "new@other.test"}, addrParam: true}}
	case "POST /api/v1/accounts":
		return []variant{{kind: "other", body: map[string]string{"login": "dave@other.test", "role": "user", "password": consoletest.Password}, addrParam: true}}
	case "PUT /api/v1/outbound/rules-order":
		return []variant{{kind: "other", body: map[string]any{"ids": []int64{atoi64(m.bRule)}}}}
	case "POST /outbound/rules":
		return []variant{{kind: "other", form: url.Values{"name": {"x"}, "scope": {"group"}, "owner": {m.bGroup}, "action": {"hold"}, "conditions": {"rcpt outside"}}}}
	case "GET /tracking", "GET /api/v1/messages":
		return []variant{{kind: "filter", form: url.Values{"rcpt": {"carol@other.test"}}}, {kind: "filter", form: url.Values{"subject": {"SECRET"}}}}
	case "GET /quarantine", "GET /api/v1/quarantine":
		return []variant{{kind: "filter", form: url.Values{"domain": {"other.test"}}}, {kind: "filter", form: url.Values{"rcpt": {"carol@other.test"}}}}
	case "GET /reports", "GET /reports.csv", "GET /api/v1/reports":
		return []variant{{kind: "filter", form: url.Values{"domain": {"other.test"}, "by": {"address"}}}}
	case "GET /users":
		return []variant{{kind: "filter", form: url.Values{"q": {"carol"}}}}
	case "GET /audit", "GET /api/v1/audit":
		return []variant{{kind: "filter", form: url.Values{"actor": {consoletest.AdminB}}}}
	// Archive searches are audited with their text, which the audit log
	// then shows to acme: words of tenant other's mail that are no markers.
	case "GET /archive", "GET /api/v1/archive/search":
		return []variant{{kind: "filter", form: url.Values{"search": {"1"}, "q": {"archsecret"}}}, {kind: "filter", form: url.Values{"search": {"1"}, "to": {"carol"}}}}
	case "GET /archive/export", "GET /api/v1/archive/export":
		return []variant{{kind: "filter", form: url.Values{"q": {"archsecret"}, "format": {"mbox"}}}}
	case "GET /queue", "GET /api/v1/queue":
		return []variant{{kind: "filter", form: url.Values{"state": {"held"}}}}
	}
	return nil
}

// variants lists the requests to make for a route and caller.
func (m *matrixEnv) variants(rt web.Route, c *caller) []variant {
	if rt.Mailbox {
		return m.mailVariants(rt, c)
	}
	ps := params(rt.Pattern)
	var out []variant
	// Own objects.
	own := map[string]string{}
	for _, p := range ps {
		own[p] = m.ownValue(rt.Pattern, p)
	}
	v := variant{kind: "own", path: fill(rt.Pattern, own)}
	if rt.API {
		var q string
		v.body, q = m.ownBody(rt.Pattern)
		if q != "" {
			v.path += "?" + q
		}
	} else if rt.Write {
		v.form, v.multipart = m.ownForm(rt.Pattern)
	}
	out = append(out, v)
	// The operator may delete any tenant: "other" is not a refusal there.
	if c.role == store.RoleOperator && strings.Contains(rt.Pattern, "/tenants/") {
		return out
	}
	// Other tenant's objects: one variant per combination.
	if len(ps) > 0 {
		combos := []map[string]string{{}}
		for _, p := range ps {
			var next []map[string]string
			for _, cmb := range combos {
				for _, val := range m.otherValues(rt.Pattern, p) {
					x := map[string]string{}
					for k, vv := range cmb {
						x[k] = vv
					}
					x[p] = val
					next = append(next, x)
				}
			}
			combos = next
		}
		for _, cmb := range combos {
			ov := variant{kind: "other", path: fill(rt.Pattern, cmb), addrParam: cmb["addr"] != "" || cmb["address"] == "carol@other.test"}
			if rt.API {
				ov.body, _ = m.ownBody(rt.Pattern)
			} else if rt.Write {
				ov.form, ov.multipart = m.ownForm(rt.Pattern)
				if ov.form.Has("to") || strings.HasSuffix(rt.Pattern, "{action}") {
					ov.form.Set("to", "dave@other.test")
				}
			}
			out = append(out, ov)
		}
		// A group of ours with their address.
		if strings.Contains(rt.Pattern, "/groups/{name}/members") {
			g := m.ownValue(rt.Pattern, "name")
			ov := variant{kind: "other", addrParam: true}
			if rt.API {
				ov.path = fill(rt.Pattern, map[string]string{"name": g, "address": "carol@other.test"})
			} else {
				ov.path = fill(rt.Pattern, map[string]string{"name": g})
				ov.form = url.Values{"address": {"carol@other.test"}}
			}
			out = append(out, ov)
		}
	}
	// A list of the caller's tenant that someone else administers: an end
	// user who administers other lists may not touch it.
	if isML(rt.Pattern) && !rt.API && slices.Contains(ps, "id") {
		ov := variant{kind: "mlother", path: fill(rt.Pattern, map[string]string{"id": m.mlList("bob@example.test")})}
		if rt.Write {
			ov.form, ov.multipart = m.ownForm(rt.Pattern)
		}
		out = append(out, ov)
	}
	// An archived message of another user of the caller's tenant: an end
	// user may not read it (administrators may).
	if strings.HasPrefix(rt.Pattern, "GET /archive/{id}") {
		out = append(out, variant{kind: "peer", path: fill(rt.Pattern, map[string]string{"id": m.archived(m.e.Tenant.ID, "bob@example.test", "bob's archived"), "n": "0"})})
	}
	// The other tenant's administrator as a list administrator is refused.
	if rt.Pattern == "POST /ml/{id}/admins" {
		out = append(out, variant{kind: "other", path: fill(rt.Pattern, own), form: url.Values{"admins": {"carol@other.test"}}, addrParam: true})
	}
	for _, bv := range m.bodyVariants(rt.Pattern, c.role) {
		if bv.path == "" {
			bv.path = fill(rt.Pattern, own)
			if !rt.Write && bv.form != nil {
				bv.path += "?" + bv.form.Encode()
				bv.form = nil
			}
		}
		out = append(out, bv)
	}
	return out
}

func atoi64(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// roleAtLeast mirrors the server's order of roles.
func roleAtLeast(have, need store.Role) bool {
	rank := map[store.Role]int{store.RoleUser: 1, store.RoleAdmin: 2, store.RoleOperator: 3}
	return rank[have] >= rank[need] && rank[have] > 0
}

type result struct {
	status   int
	location string
	body     string
}

// console sends a console request the way the browser would, with the
// session's CSRF token on unsafe requests.
func (m *matrixEnv) console(c *caller, method string, v variant) result {
	m.t.Helper()
	if c.role == store.RoleOperator {
		// Keep tenant acme selected (creating a tenant switches to it).
		u, _ := url.Parse(m.e.URL + "/")
		c.c.HTTP.Jar.SetCookies(u, []*http.Cookie{{Name: "mg_tenant", Value: strconv.FormatInt(m.e.Tenant.ID, 10), Path: "/"}})
	}
	var body io.Reader
	ctype := ""
	if method != http.MethodGet {
		form := url.Values{}
		for k, vs := range v.form {
			form[k] = vs
		}
		if c.c.CSRF != "" {
			form.Set("csrf", c.c.CSRF)
		}
		if v.multipart {
			var buf bytes.Buffer
			mw := multipart.NewWriter(&buf)
			for k, vs := range form {
				if k == "file" {
					fw, _ := mw.CreateFormFile("file", "users.csv")
					io.WriteString(fw, vs[0])
					continue
				}
				mw.WriteField(k, vs[0])
			}
			mw.Close()
			body, ctype = &buf, mw.FormDataContentType()
		} else {
			body, ctype = strings.NewReader(form.Encode()), "application/x-www-form-urlencoded"
		}
	}
	req, err := http.NewRequest(method, m.e.URL+v.path, body)
	m.must(err)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.c.HTTP.Do(req)
	m.must(err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, resp.Header.Get("Location"), string(b)}
}

// api sends an API call, waiting out the rate limit if the matrix hits it.
func (m *matrixEnv) api(c *caller, method string, v variant) result {
	m.t.Helper()
	path := strings.TrimPrefix(v.path, "/api/v1")
	if c.query != "" {
		if strings.Contains(path, "?") {
			path += "&" + c.query
		} else {
			path += "?" + c.query
		}
	}
	auth := ""
	if c.secret != "" {
		auth = "Bearer " + c.secret
	}
	for {
		st, h, b := m.e.RawAPI(m.t, auth, method, path, v.body)
		if st == http.StatusTooManyRequests {
			time.Sleep(time.Second)
			continue
		}
		return result{st, h.Get("Location"), string(b)}
	}
}

func requestText(v variant) string {
	var sb strings.Builder
	sb.WriteString(v.path)
	for _, vs := range v.form {
		for _, x := range vs {
			sb.WriteString(" " + x)
		}
	}
	if v.body != nil {
		b, _ := json.Marshal(v.body)
		sb.Write(b)
	}
	if u, err := url.PathUnescape(v.path); err == nil {
		sb.WriteString(" " + u)
	}
	return sb.String()
}

func TestPermissionMatrix(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	m := &matrixEnv{t: t, e: e, ctx: context.Background()}
	m.setupOther()
	before := m.snapshot()

	anon := e.NewClient(t)
	user, admin, op := e.NewClient(t), e.NewClient(t), e.NewClient(t)
	user.Login(consoletest.UserA)
	admin.Login(consoletest.AdminA)
	op.Login(consoletest.Operator)
	if st, loc, _ := op.Post("/tenant", url.Values{"tenant": {strconv.FormatInt(e.Tenant.ID, 10)}}); st != http.StatusSeeOther || loc != "/dashboard" {
		t.Fatalf("operator selects acme: %d %q", st, loc)
	}
	consoleCallers := []*caller{
		{name: "anonymous", c: anon},
		{name: "user", role: store.RoleUser, c: user},
		{name: "admin", role: store.RoleAdmin, c: admin},
		{name: "operator", role: store.RoleOperator, c: op},
	}
	apiCallers := []*caller{
		{name: "anonymous"},
		{name: "read token", role: store.RoleAdmin, secret: e.Tokens["a-read"], read: true},
		{name: "admin token", role: store.RoleAdmin, secret: e.Tokens["a-write"]},
		{name: "operator token", role: store.RoleOperator, secret: e.Tokens["op"], query: "tenant=acme"},
	}

	// Every own-object request gets fresh objects, so the order of routes
	// does not matter.
	routes := e.Web.Routes()
	checked := 0
	for _, rt := range routes {
		callers := consoleCallers
		if rt.API {
			callers = apiCallers
		}
		for _, c := range callers {
			if rt.Public && c.role != "" {
				continue // login pages and logout are for the anonymous caller here
			}
			allowed := rt.Public || (roleAtLeast(c.role, rt.Min) && !(rt.API && rt.Write && c.read))
			for _, v := range m.variants(rt, c) {
				var r result
				if rt.API {
					r = m.api(c, rt.Method, v)
				} else {
					r = m.console(c, rt.Method, v)
				}
				checked++
				where := fmt.Sprintf("%s as %s (%s %s %s)", rt.Pattern, c.name, v.kind, rt.Method, v.path)
				if r.status >= 500 {
					t.Errorf("%s: %d %.200s", where, r.status, r.body)
					continue
				}
				// Tenant other's data never reaches acme's callers.
				req := requestText(v)
				for _, mk := range m.markers {
					if strings.Contains(r.body, mk) && !strings.Contains(req, mk) {
						t.Errorf("%s: response contains tenant other's %q", where, mk)
					}
				}
				success := r.status < 300 || (r.status == http.StatusSeeOther && !strings.HasPrefix(r.location, "/login"))
				switch {
				case rt.Public:
					// Reachable without login; nothing more to say here.
				case c.role == "" && rt.API:
					if r.status != http.StatusUnauthorized {
						t.Errorf("%s: %d, want 401", where, r.status)
					}
				case c.role == "" && rt.Method == http.MethodGet:
					if r.status != http.StatusSeeOther || !strings.HasPrefix(r.location, "/login?next=") {
						t.Errorf("%s: %d %q, want a redirect to /login", where, r.status, r.location)
					}
				case c.role == "":
					if r.status != http.StatusUnauthorized {
						t.Errorf("%s: %d, want 401", where, r.status)
					}
				case rt.Pattern == "POST /account/app-password" && c.role == store.RoleOperator:
					// Operators have no mailbox, so no mail app password.
					if r.status != http.StatusBadRequest {
						t.Errorf("%s: %d, want 400", where, r.status)
					}
				case rt.Mailbox && c.role == store.RoleOperator:
					if r.status != http.StatusNotFound {
						t.Errorf("%s: %d, want 404 (an operator has no mailbox)", where, r.status)
					}
				case !allowed:
					if r.status != http.StatusForbidden {
						t.Errorf("%s: %d %q, want 403 (least role %s)", where, r.status, r.location, rt.Min)
					}
				case v.kind == "other":
					refused := r.status == http.StatusNotFound || r.status == http.StatusForbidden ||
						(v.addrParam && r.status == http.StatusBadRequest)
					if !refused {
						t.Errorf("%s: %d %q, want 404 or 403 for tenant other's object", where, r.status, r.location)
					}
				case v.kind == "peer" && c.role == store.RoleUser:
					if r.status != http.StatusNotFound {
						t.Errorf("%s: %d %q, want 404: an end user read another user's archived mail", where, r.status, r.location)
					}
				case v.kind == "mlother" && c.role == store.RoleUser:
					if r.status != http.StatusForbidden && r.status != http.StatusNotFound {
						t.Errorf("%s: %d %q, want 403 or 404: a list administrator touched another list", where, r.status, r.location)
					}
				case (v.kind == "own" || v.kind == "mlother" || v.kind == "peer") && !success:
					t.Errorf("%s: %d %q %.300s, want success on the tenant's own object", where, r.status, r.location, r.body)
				}
			}
			if rt.Pattern == "POST /account/password" && c.c != nil && c.role != "" {
				c.c.Get("/account") // the password change started a new session: new CSRF token
			}
		}
	}
	t.Logf("%d routes, %d requests", len(routes), checked)

	after := m.snapshot()
	if !reflect.DeepEqual(before, after) {
		bj, _ := json.MarshalIndent(before, "", " ")
		aj, _ := json.MarshalIndent(after, "", " ")
		t.Fatalf("tenant other changed:\nbefore %s\nafter  %s", bj, aj)
	}
	if after.Quar.State != store.QHeld || after.Rcpts[0].State != store.Held || len(after.Groups) != 1 || len(after.Lists) != 1 ||
		len(after.Accounts) != 2 || len(after.Domains) != 1 || len(after.Users) != 2 || after.Tokens[0].Revoked {
		t.Fatalf("tenant other's objects: %+v", after)
	}
	// The matrix did act on tenant acme: the checks above were not vacuous.
	as, _ := e.Store.AuditLog(m.ctx, store.AuditFilter{TenantID: e.Tenant.ID, Limit: 10000})
	acts := map[string]bool{}
	for _, x := range as {
		acts[x.Action] = true
	}
	for _, w := range []string{"domain.delete", "user.delete", "group.delete", "list.delete", "queue.hold", "quarantine.report_spam",
		"token.revoke", "account.delete", "account.password", "policy.unset", "mailbox.quota", "mailbox.invite", "ml.delete", "ml.member.remove", "ml.member.import", "ml.admins",
		"archive.search", "archive.view", "archive.download", "archive.resend", "archive.export", "archive.proof", "archive.hold", "archive.unhold",
		"archive.import", "archive.verify"} {
		if !acts[w] {
			t.Errorf("no %s on tenant acme: the own-object requests did not work", w)
		}
	}
}
