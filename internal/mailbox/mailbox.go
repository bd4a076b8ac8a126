// Package mailbox keeps the emergency mailboxes: when a domain's primary
// mail service is down, mail for its users is delivered here and read over
// IMAP (internal/imapd) until it is handed back to the primary service.
//
// Each address has one mailbox with folders (INBOX, and Sent, Drafts,
// Trash, Junk and Archive with their special-use attributes), made when
// first needed. Message metadata lives in the store (store.MailboxStore:
// UIDs, mod-sequences, flags, a decoded summary and the search text);
// bodies are blobs (Blobs). Every write is durable before the caller hears
// of it: the blob is committed (file and directory fsynced), then the row,
// then OK; a crash between the two leaves an unreferenced blob that
// Recover removes, never a row without its body.
//
// Quotas are per mailbox in 1 MB steps (store.Mailbox.QuotaMB), checked in
// the store's insert transaction so concurrent deliveries and APPENDs on
// any node cannot overrun them. When a delivery brings a mailbox to 90 %
// of its quota, its user gets one notice through the queue.
//
// Settings (policy scopes address → domain → tenant):
//   - mailbox.quota_mb: allocation given to a new mailbox, default 1024.
//   - mailbox.contract_mb (tenant): the contracted disk; Usage warns when
//     the mailboxes' allocations add up to more.
package mailbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/store"
)

// Settings keys and defaults.
const (
	KeyQuotaMB      = "mailbox.quota_mb"
	KeyContractMB   = "mailbox.contract_mb"
	DefaultQuotaMB  = 1024
	WarnPercent     = 90
	maxKeptHeader   = 64 << 10
	maxSearchText   = 256 << 10
	notifyFlapGuard = time.Hour
)

var (
	// ErrOverQuota is returned (wrapped) when a message does not fit in
	// its mailbox: nothing was stored. A delivering queue defers the
	// message (452 4.2.2) and keeps it.
	ErrOverQuota = store.ErrMailboxFull
	// ErrNoMailbox is returned (wrapped) for an address that is not a
	// user of the tenant.
	ErrNoMailbox = errors.New("no such mailbox")
	// ErrEmptyMessage is returned for a message of no bytes.
	ErrEmptyMessage = errors.New("empty message")
)

// Submitter queues a message mailgate writes itself (queue.Queue.Submit).
type Submitter interface {
	Submit(ctx context.Context, m store.Message, rcpts []string, body io.Reader, why string) (string, error)
}

// DefaultFolders are made with every mailbox, in this order.
var DefaultFolders = []store.MailFolder{
	{Name: "INBOX"},
	{Name: "Sent", SpecialUse: `\Sent`},
	{Name: "Drafts", SpecialUse: `\Drafts`},
	{Name: "Trash", SpecialUse: `\Trash`},
	{Name: "Junk", SpecialUse: `\Junk`},
	{Name: "Archive", SpecialUse: `\Archive`},
}

// Service is the mailbox layer used by delivery, IMAP, the hand-back and
// the console. Safe for concurrent use; several nodes may share the store.
type Service struct {
	Store Store
	Blobs Blobs
	// Queue sends the 90 % notices (nil: none are sent).
	Queue Submitter
	Clock clock.Clock
	Log   *slog.Logger
	// Hostname names mailgate in the notices it writes.
	Hostname string
	// Bus tells IMAP sessions of this node about changes at once; nil
	// makes them rely on polling.
	Bus *Bus
	// Learn trains the tenant's spam model with one message (feedback):
	// mail moved into a Junk folder is learned as spam, mail moved out of
	// it (not to Trash) as not spam, from IMAP and the webmail alike. Nil:
	// moves teach nothing.
	Learn func(ctx context.Context, tenantID int64, raw []byte, spam bool) error
}

func (s *Service) now() time.Time {
	if s.Clock == nil {
		return time.Now()
	}
	return s.Clock.Now()
}

func (s *Service) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

// notify tells this node's sessions that folders changed.
func (s *Service) notify(folderIDs ...int64) {
	if s.Bus != nil {
		for _, f := range folderIDs {
			s.Bus.Notify(f)
		}
	}
}

// deleteBlobs removes bodies the store no longer refers to. A failure
// leaves an unreferenced blob that Recover removes at the next start.
func (s *Service) deleteBlobs(ctx context.Context, keys []string) {
	for _, k := range keys {
		if err := s.Blobs.Delete(ctx, k); err != nil {
			s.log().Warn("mailbox blob not removed", "key", k, "err", err)
		}
	}
}

// Mailbox returns the mailbox of a tenant's user, creating it (with the
// default folders) the first time. ErrNoMailbox when address is not a
// user of the tenant.
func (s *Service) Mailbox(ctx context.Context, tenantID int64, address string) (store.Mailbox, error) {
	address = strings.ToLower(strings.TrimSpace(address))
	mb, err := s.Store.MailboxByAddress(ctx, tenantID, address)
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return mb, err
	}
	ok, err := s.Store.UserExists(ctx, tenantID, address)
	if err != nil {
		return mb, err
	}
	if !ok {
		return mb, fmt.Errorf("%s: %w", address, ErrNoMailbox)
	}
	quota, err := s.defaultQuota(ctx, tenantID, address)
	if err != nil {
		return mb, err
	}
	mb, err = s.Store.CreateMailbox(ctx, store.Mailbox{TenantID: tenantID, Address: address, QuotaMB: quota, Created: s.now()}, DefaultFolders)
	if errors.Is(err, store.ErrExists) {
		// Made meanwhile by another session or node.
		return s.Store.MailboxByAddress(ctx, tenantID, address)
	}
	if err == nil {
		s.log().Info("mailbox created", "tenant", tenantID, "address", address, "quota_mb", quota)
	}
	return mb, err
}

// EnsureMailboxes makes a mailbox for every user of the tenant in domain
// that has none, and returns how many it made.
func (s *Service) EnsureMailboxes(ctx context.Context, tenantID int64, domain string) (int, error) {
	users, err := s.Store.Users(ctx, tenantID)
	if err != nil {
		return 0, err
	}
	have, err := s.Store.Mailboxes(ctx, tenantID)
	if err != nil {
		return 0, err
	}
	exists := map[string]bool{}
	for _, m := range have {
		exists[m.Address] = true
	}
	n := 0
	for _, u := range users {
		if store.MailboxDomain(u.Address) != domain || exists[u.Address] {
			continue
		}
		if _, err := s.Mailbox(ctx, tenantID, u.Address); err != nil {
			return n, fmt.Errorf("mailbox of %s: %w", u.Address, err)
		}
		n++
	}
	return n, nil
}

// Folder finds a mailbox's folder by name; INBOX in any case.
func (s *Service) Folder(ctx context.Context, mb store.Mailbox, name string) (store.MailFolder, error) {
	fs, err := s.Store.MailFolders(ctx, mb.TenantID, mb.ID)
	if err != nil {
		return store.MailFolder{}, err
	}
	name = CanonicalName(name)
	for _, f := range fs {
		if f.Name == name {
			return f, nil
		}
	}
	return store.MailFolder{}, fmt.Errorf("folder %q: %w", name, store.ErrNotFound)
}

// settingFor reads key for address: address, then domain, then tenant
// scope.
func (s *Service) settingFor(ctx context.Context, tenantID int64, address, key string) (string, bool, error) {
	ss, err := s.Store.Settings(ctx, tenantID)
	if err != nil {
		return "", false, err
	}
	var best string
	rank := 0
	for _, st := range ss {
		if st.Key != key {
			continue
		}
		r := 0
		switch {
		case st.Scope == store.ScopeAddress && strings.EqualFold(st.Owner, address):
			r = 3
		case st.Scope == store.ScopeDomain && address != "" && strings.EqualFold(st.Owner, store.MailboxDomain(address)):
			r = 2
		case st.Scope == store.ScopeTenant:
			r = 1
		}
		if r > rank {
			best, rank = st.Value, r
		}
	}
	return best, rank > 0, nil
}

// defaultQuota is the allocation a new mailbox gets (mailbox.quota_mb).
func (s *Service) defaultQuota(ctx context.Context, tenantID int64, address string) (int64, error) {
	v, ok, err := s.settingFor(ctx, tenantID, address, KeyQuotaMB)
	if err != nil || !ok {
		return DefaultQuotaMB, err
	}
	n, perr := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if perr != nil || n < 0 {
		s.log().Warn("mailbox.quota_mb is not a number of MB; using the default", "tenant", tenantID, "value", v)
		return DefaultQuotaMB, nil
	}
	return n, nil
}

// SetQuota changes a mailbox's allocation (MB; 0 = no limit).
func (s *Service) SetQuota(ctx context.Context, tenantID int64, address string, mb int64) error {
	if mb < 0 {
		return fmt.Errorf("quota must not be negative")
	}
	if _, err := s.Mailbox(ctx, tenantID, address); err != nil {
		return err
	}
	return s.Store.SetMailboxQuota(ctx, tenantID, strings.ToLower(address), mb)
}

// TenantUsage is a tenant's mailboxes against its contracted disk.
type TenantUsage struct {
	ContractMB  int64 // mailbox.contract_mb; 0 = not set
	AllocatedMB int64 // sum of the mailboxes' quotas
	UsedBytes   int64
	// OverContract: the allocations add up to more than the contract.
	OverContract bool
	// Unlimited counts mailboxes without a quota (they are not in
	// AllocatedMB).
	Unlimited int
	// Mailboxes with, per user, the mail received in emergency mode, what
	// of it is not handed back yet, and the last IMAP login.
	Mailboxes []store.Mailbox
}

// Usage reports a tenant's allocations, usage and per-user counts.
func (s *Service) Usage(ctx context.Context, tenantID int64) (TenantUsage, error) {
	var u TenantUsage
	mbs, err := s.Store.Mailboxes(ctx, tenantID)
	if err != nil {
		return u, err
	}
	u.Mailboxes = mbs
	for _, m := range mbs {
		u.UsedBytes += m.UsedBytes
		if m.QuotaMB == 0 {
			u.Unlimited++
		}
		u.AllocatedMB += m.QuotaMB
	}
	v, ok, err := s.settingFor(ctx, tenantID, "", KeyContractMB)
	if err != nil {
		return u, err
	}
	if ok {
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && n > 0 {
			u.ContractMB = n
			u.OverContract = u.AllocatedMB > n || u.Unlimited > 0
		}
	}
	return u, nil
}
