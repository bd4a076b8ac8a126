package quarantine

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/signedlink"
	"github.com/mailgate/mailgate/internal/store"
)

// Errors of ApplyLink, Allow and Block.
var (
	// ErrWrongItem: the link names a copy of another tenant or recipient.
	ErrWrongItem = errors.New("link does not match the quarantined message")
	// ErrNotAction: the link's action is not one ApplyLink performs
	// ("open" is handled by the console after login).
	ErrNotAction = errors.New("link action is not performed without login")
	// ErrNoSender: the copy names no sender to allow or block (null
	// sender and no usable From header).
	ErrNoSender = errors.New("quarantined message has no sender address")
)

// LinkResult says what ApplyLink did.
type LinkResult struct {
	Action  signedlink.Action
	Item    store.QuarantineItem
	QueueID string          // the released message's queue ID (release, release-allow)
	Entry   store.ListEntry // the allow or deny entry (release-allow, block-sender)
	// AlreadyDone is true when the copy was no longer held (a second
	// click, or released or deleted by other means): nothing was changed.
	AlreadyDone bool
}

// ApplyLink performs a verified one-click link on its one item:
//
//   - release: Release the copy (it carries X-Mailgate-Released).
//   - release-allow: add an address-scope allow entry for the sender to the
//     recipient's list, then release.
//   - block-sender: add an address-scope deny entry for the sender (its
//     action is the recipient's lists.deny_action), then delete the copy.
//
// The link must name the item's tenant and recipient. who is the audit
// actor; "" means "link:<rcpt>". A link acts only while its copy is held:
// for a copy already released, deleted or expired (a second click, another
// user, the console, retention) it changes nothing, no list entry either,
// and returns AlreadyDone without an error or an audit entry. An old
// block-sender link is no standing order to block: the message it was
// about is gone, and the recipient blocks a sender deliberately on the
// console's Lists page. The held-to-released (or deleted) transition is
// the claim: only the call that wins it adds the list entry, so a copy
// released meanwhile by other means never gets one. A successful call
// writes one audit entry ("quarantine.<action>"). The caller verifies the
// token (signedlink.Verify) first.
func (m *Manager) ApplyLink(ctx context.Context, l signedlink.Link, who string) (LinkResult, error) {
	res := LinkResult{Action: l.Action}
	switch l.Action {
	case signedlink.Release, signedlink.ReleaseAllow, signedlink.BlockSender:
	default:
		return res, ErrNotAction
	}
	it, err := m.Store.QuarantineItem(ctx, l.TenantID, l.ItemID)
	if err != nil {
		return res, fmt.Errorf("quarantine item %s: %w", l.ItemID, err)
	}
	res.Item = it
	if it.TenantID != l.TenantID || !strings.EqualFold(it.Rcpt, l.Rcpt) {
		return res, ErrWrongItem
	}
	if it.State != store.QHeld {
		res.AlreadyDone = true
		return res, nil
	}
	if who == "" {
		who = "link:" + it.Rcpt
	}
	// The entry is worked out before the copy changes state: its sender
	// is read from the copy, whose blob Release and Delete remove.
	var entry store.ListEntry
	switch l.Action {
	case signedlink.ReleaseAllow:
		entry, err = m.senderEntryFor(ctx, it, "allow", false)
	case signedlink.BlockSender:
		entry, err = m.senderEntryFor(ctx, it, "deny", false)
	}
	if err != nil {
		return res, err
	}
	switch l.Action {
	case signedlink.Release, signedlink.ReleaseAllow:
		res.QueueID, err = m.Release(ctx, it.TenantID, it.ID, who)
	case signedlink.BlockSender:
		err = m.Delete(ctx, it.TenantID, it.ID, who)
	}
	if errors.Is(err, ErrNotHeld) {
		// Released or deleted since it was read: someone else's action won.
		res.AlreadyDone = true
		return res, nil
	}
	if err != nil {
		return res, err
	}
	var detail string
	switch l.Action {
	case signedlink.Release:
		detail = "queued as " + res.QueueID
	case signedlink.ReleaseAllow:
		if res.Entry, err = m.ensureEntry(ctx, entry); err != nil {
			return res, fmt.Errorf("released as %s, but the sender was not allowed: %w", res.QueueID, err)
		}
		detail = fmt.Sprintf("allow %s=%s; queued as %s", res.Entry.Field, res.Entry.Value, res.QueueID)
	case signedlink.BlockSender:
		if res.Entry, err = m.ensureEntry(ctx, entry); err != nil {
			return res, fmt.Errorf("copy deleted, but the sender was not blocked: %w", err)
		}
		detail = fmt.Sprintf("deny %s=%s; copy deleted", res.Entry.Field, res.Entry.Value)
	}
	if aerr := m.audit(ctx, it.TenantID, who, "quarantine."+string(l.Action), it.ID, detail); aerr != nil {
		return res, aerr
	}
	return res, nil
}

// Allow adds an address-scope allow entry for the sender of quarantined
// copy id to its recipient's list (the copy itself is not released), with
// an audit entry "list.allow" by who. An identical entry is reused.
func (m *Manager) Allow(ctx context.Context, tenantID int64, id, who string) (store.ListEntry, error) {
	it, err := m.Store.QuarantineItem(ctx, tenantID, id)
	if err != nil {
		return store.ListEntry{}, fmt.Errorf("quarantine item %s: %w", id, err)
	}
	e, err := m.senderEntry(ctx, it, "allow")
	if err != nil {
		return e, err
	}
	return e, m.audit(ctx, tenantID, who, "list.allow", it.Rcpt, fmt.Sprintf("%s=%s (from quarantine %s)", e.Field, e.Value, id))
}

// Block adds an address-scope deny entry for the sender of quarantined copy
// id to its recipient's list and deletes the copy (if still held), with an
// audit entry "list.deny" by who. An identical entry is reused.
func (m *Manager) Block(ctx context.Context, tenantID int64, id, who string) (store.ListEntry, error) {
	return m.block(ctx, tenantID, id, who, false)
}

// BlockForDomain is Block with the deny entry on the recipient's whole
// domain (an administrator's choice: the sender is refused for everyone).
func (m *Manager) BlockForDomain(ctx context.Context, tenantID int64, id, who string) (store.ListEntry, error) {
	return m.block(ctx, tenantID, id, who, true)
}

func (m *Manager) block(ctx context.Context, tenantID int64, id, who string, domainWide bool) (store.ListEntry, error) {
	it, err := m.Store.QuarantineItem(ctx, tenantID, id)
	if err != nil {
		return store.ListEntry{}, fmt.Errorf("quarantine item %s: %w", id, err)
	}
	e, err := m.senderEntryAt(ctx, it, "deny", domainWide)
	if err != nil {
		return e, err
	}
	if err := m.Delete(ctx, tenantID, id, who); err != nil && !errors.Is(err, ErrNotHeld) {
		return e, err
	}
	return e, m.audit(ctx, tenantID, who, "list.deny", it.Rcpt, fmt.Sprintf("%s=%s (from quarantine %s)", e.Field, e.Value, id))
}

func (m *Manager) audit(ctx context.Context, tenantID int64, who, action, target, after string) error {
	if err := m.Store.AddAudit(ctx, store.AuditEntry{TenantID: tenantID, At: m.Clock.Now(), Actor: who, Action: action, Target: target, After: after}); err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

// senderEntry ensures an address-scope list entry of kind for the copy's
// sender. The sender is the From header address people see (field
// from_addr, exact) when the header has exactly one usable address, else
// the envelope sender (env_from).
func (m *Manager) senderEntry(ctx context.Context, it store.QuarantineItem, kind string) (store.ListEntry, error) {
	return m.senderEntryAt(ctx, it, kind, false)
}

// senderEntryAt is senderEntry on the recipient's domain list when
// domainWide is set.
func (m *Manager) senderEntryAt(ctx context.Context, it store.QuarantineItem, kind string, domainWide bool) (store.ListEntry, error) {
	e, err := m.senderEntryFor(ctx, it, kind, domainWide)
	if err != nil {
		return e, err
	}
	return m.ensureEntry(ctx, e)
}

// senderEntryFor works out the list entry senderEntryAt ensures, without
// writing it.
func (m *Manager) senderEntryFor(ctx context.Context, it store.QuarantineItem, kind string, domainWide bool) (store.ListEntry, error) {
	_, from := m.sender(ctx, it)
	e := store.ListEntry{TenantID: it.TenantID, Scope: store.ScopeAddress, Owner: strings.ToLower(it.Rcpt), Kind: kind, Mode: "exact",
		Comment: "from quarantine " + it.ID}
	if _, d, ok := strings.Cut(e.Owner, "@"); ok && domainWide {
		e.Scope, e.Owner = store.ScopeDomain, d
	}
	switch {
	case from != "":
		e.Field, e.Value = "from_addr", strings.ToLower(from)
	case it.MailFrom != "":
		e.Field, e.Value = "env_from", strings.ToLower(it.MailFrom)
	default:
		return e, ErrNoSender
	}
	return e, nil
}

// ensureEntry adds list entry e unless an identical one exists, and returns
// the stored entry.
func (m *Manager) ensureEntry(ctx context.Context, e store.ListEntry) (store.ListEntry, error) {
	entries, err := m.Store.ListEntries(ctx, e.TenantID)
	if err != nil {
		return e, fmt.Errorf("list entries: %w", err)
	}
	for _, x := range entries {
		if x.Scope == e.Scope && strings.EqualFold(x.Owner, e.Owner) && x.Kind == e.Kind && x.Field == e.Field && x.Mode == e.Mode && strings.EqualFold(x.Value, e.Value) {
			return x, nil
		}
	}
	out, err := m.Store.AddListEntry(ctx, e)
	if err != nil {
		return e, fmt.Errorf("add %s entry: %w", e.Kind, err)
	}
	return out, nil
}

// maxHeaderRead bounds how much of a copy is read for its From header.
const maxHeaderRead = 256 << 10

// sender returns the decoded display name and address of the copy's From
// header ("" when there is not exactly one usable address). It reads
// FromHdr when the pipeline stored it, else the header of the copy.
func (m *Manager) sender(ctx context.Context, it store.QuarantineItem) (name, addr string) {
	var hdr []byte
	if it.FromHdr != "" {
		hdr = []byte("From: " + it.FromHdr + "\r\n")
	} else if m.Blobs != nil && it.BlobKey != "" {
		f, err := m.Blobs.Open(ctx, it.BlobKey)
		if err != nil {
			return "", ""
		}
		hdr = readHeader(f)
		f.Close()
	}
	if len(hdr) == 0 {
		return "", ""
	}
	msg, err := mailtext.Parse(ctx, io.MultiReader(bytes.NewReader(hdr), strings.NewReader("\r\n")), mailtext.Limits{MaxParts: 1, MaxHeaderBytes: maxHeaderRead})
	if err != nil || len(msg.From) != 1 || !strings.Contains(msg.From[0].Addr, "@") {
		return "", ""
	}
	return msg.From[0].Name, msg.From[0].Addr
}

// readHeader returns the header section of r (without the blank line), at
// most maxHeaderRead bytes.
func readHeader(r io.Reader) []byte {
	br := bufio.NewReader(io.LimitReader(r, maxHeaderRead))
	var out []byte
	for {
		line, err := br.ReadSlice('\n')
		if len(bytes.TrimRight(line, "\r\n")) == 0 && (len(line) > 0 || err != nil) {
			return out
		}
		out = append(out, line...)
		if err == bufio.ErrBufferFull {
			// A line longer than the buffer: keep reading it.
			continue
		}
		if err != nil {
			return out
		}
	}
}
