package web_test

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/mailgate/mailgate/internal/mailbox"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/consoletest"
	"github.com/mailgate/mailgate/internal/web"
)

// The webmail in the permission matrix: its routes act on the caller's own
// mailbox, so the own objects depend on the caller (alice as the end user,
// it@example.test as the administrator, who is a user of the domain here);
// the operator has no mailbox (404). The other objects are bob's (another
// user of the same tenant) and carol's (tenant other): never reachable.

// mailRef is a message of a mailbox for the matrix.
type mailRef struct {
	tenantID      int64
	address       string
	inbox, trash  int64
	uid           uint32
	folder, uidTx string
}

// mailMessage delivers a fresh message with an attachment into address's
// INBOX.
func (m *matrixEnv) mailMessage(tenantID int64, address, subject string) mailRef {
	m.t.Helper()
	n := m.next()
	raw := "From: Sender <sender@example.net>\r\nTo: " + address + "\r\nSubject: " + subject + "\r\nMessage-ID: <m" + strconv.Itoa(n) + "@example.net>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n" + subject + " body\r\n" +
		"--b\r\nContent-Type: text/plain; name=a.txt\r\nContent-Disposition: attachment; filename=a.txt\r\n\r\nattached\r\n--b--\r\n"
	svc := m.e.Mailboxes
	m.must(svc.Deliver(m.ctx, tenantID, address, strings.NewReader(raw), mailbox.DeliverMeta{QueueID: fmt.Sprintf("mx%d", n), MailFrom: "sender@example.net"}))
	mb, err := svc.Mailbox(m.ctx, tenantID, address)
	m.must(err)
	in, err := svc.Folder(m.ctx, mb, "INBOX")
	m.must(err)
	tr, err := svc.SpecialFolder(m.ctx, mb, `\Trash`)
	m.must(err)
	ms, err := m.e.Store.FolderMail(m.ctx, tenantID, in.ID)
	m.must(err)
	uid := ms[len(ms)-1].UID
	return mailRef{tenantID: tenantID, address: address, inbox: in.ID, trash: tr.ID, uid: uid,
		folder: strconv.FormatInt(in.ID, 10), uidTx: strconv.FormatUint(uint64(uid), 10)}
}

// setupMail gives alice and the administrator mailboxes, and bob and carol
// a message each.
func (m *matrixEnv) setupMail() {
	_, err := m.e.Store.CreateUser(m.ctx, m.e.Tenant.ID, consoletest.AdminA)
	m.must(err)
	m.mailMessage(m.e.Tenant.ID, consoletest.UserA, "alice's first")
	m.mailMessage(m.e.Tenant.ID, consoletest.AdminA, "it's first")
	m.bobMail = m.mailMessage(m.e.Tenant.ID, "bob@example.test", "BOB-MAIL-SECRET")
	m.carolMail = m.mailMessage(m.e.TenantB.ID, consoletest.UserB, "B-MAIL-SECRET")
	m.markers = append(m.markers, "BOB-MAIL-SECRET", "B-MAIL-SECRET")
}

// mailState is carol's INBOX, which the matrix must leave as it was.
func (m *matrixEnv) mailState() []store.MailMessage {
	ms, err := m.e.Store.FolderMail(m.ctx, m.carolMail.tenantID, m.carolMail.inbox)
	m.must(err)
	return ms
}

// mailVariants are the requests of a webmail route for caller c.
func (m *matrixEnv) mailVariants(rt web.Route, c *caller) []variant {
	login := consoletest.UserA
	if c.role == store.RoleAdmin {
		login = consoletest.AdminA
	}
	own := m.mailMessage(m.e.Tenant.ID, login, fmt.Sprintf("own mail %d", m.next()))
	var out []variant
	for i, r := range []mailRef{own, m.bobMail, m.carolMail} {
		kind := "own"
		if i > 0 {
			kind = "other"
		}
		folder := r.folder
		if strings.HasSuffix(rt.Pattern, "/empty") {
			folder = strconv.FormatInt(r.trash, 10)
		}
		v := variant{kind: kind, path: fill(rt.Pattern, map[string]string{"folder": folder, "uid": r.uidTx, "n": "0"})}
		ref := r.folder + ":" + r.uidTx
		switch rt.Pattern {
		case "POST /mail/f/{folder}/act":
			v.form = url.Values{"uid": {r.uidTx}, "action": {"delete"}}
		case "POST /mail/compose":
			// Forwarding the message as an attachment names it in the form.
			v.form, v.multipart = url.Values{"to": {"bob@example.test"}, "subject": {"fwd"}, "fwd": {ref}, "action": {"send"}}, true
		case "GET /mail/compose":
			v.path += "?" + url.Values{"src": {ref}, "mode": {"reply"}}.Encode()
		case "GET /mail/contacts", "GET /mail/search", "GET /mail":
			if kind != "own" {
				continue // no object in the path; the filter variants below
			}
		}
		out = append(out, v)
	}
	switch rt.Pattern {
	case "GET /mail/contacts":
		out = append(out, variant{kind: "filter", path: "/mail/contacts?q=carol"}, variant{kind: "filter", path: "/mail/contacts?q=Secretname"})
	case "GET /mail/search":
		out = append(out, variant{kind: "filter", path: "/mail/search?q=SECRET"})
	}
	return out
}
