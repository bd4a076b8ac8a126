// Package continuitytest is an in-memory emergency mailbox store for
// tests of the delivery switch and the hand-back: it implements
// delivery.Mailbox and continuity.Mailboxes the way the contract says
// (idempotent delivery by queue ID and recipient, quotas, IDs that only
// grow, tenant scoping).
package continuitytest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mailgate/mailgate/internal/continuity"
	"github.com/mailgate/mailgate/internal/delivery"
	"github.com/mailgate/mailgate/internal/store"
)

// Message is one stored message.
type Message struct {
	ID         int64
	TenantID   int64
	User       string
	QueueID    string
	MailFrom   string
	Received   time.Time
	Body       []byte
	Sent       bool
	Seen       bool
	HandedBack time.Time
	How        string
}

// Mailboxes is the fake store. The zero value is not usable: use New.
type Mailboxes struct {
	// Users lists a tenant's users (EnsureMailboxes creates theirs).
	Users interface {
		Users(ctx context.Context, tenantID int64) ([]store.User, error)
	}
	// Quota, when > 0, is each mailbox's size limit in bytes.
	Quota int64
	// AutoCreate makes Deliver create a missing mailbox instead of
	// refusing with delivery.ErrNoMailbox.
	AutoCreate bool
	Clock      func() time.Time

	mu        sync.Mutex
	next      int64
	msgs      map[int64]*Message
	byKey     map[string]int64 // tenant/queue ID/rcpt
	boxes     map[string]bool  // tenant/address
	logins    map[string]time.Time
	delivered int // Deliver calls that stored a message
	repeats   int // Deliver calls that found the message stored already
}

var (
	_ delivery.Mailbox     = (*Mailboxes)(nil)
	_ continuity.Mailboxes = (*Mailboxes)(nil)
)

// New returns an empty store over users.
func New(users interface {
	Users(ctx context.Context, tenantID int64) ([]store.User, error)
}) *Mailboxes {
	return &Mailboxes{Users: users, msgs: map[int64]*Message{}, byKey: map[string]int64{}, boxes: map[string]bool{}, logins: map[string]time.Time{}}
}

func boxKey(tenantID int64, a string) string {
	return fmt.Sprintf("%d/%s", tenantID, strings.ToLower(a))
}

func domainOf(a string) string {
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		return strings.ToLower(a[i+1:])
	}
	return ""
}

func (f *Mailboxes) now() time.Time {
	if f.Clock != nil {
		return f.Clock()
	}
	return time.Now()
}

// Deliver stores rcpt's copy once per queue ID.
func (f *Mailboxes) Deliver(ctx context.Context, tenantID int64, rcpt string, body io.Reader, meta delivery.DeliverMeta) error {
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	k := fmt.Sprintf("%d/%s/%s", tenantID, meta.QueueID, strings.ToLower(rcpt))
	if _, ok := f.byKey[k]; ok {
		f.repeats++
		return nil
	}
	if !f.boxes[boxKey(tenantID, rcpt)] {
		if !f.AutoCreate {
			return fmt.Errorf("%s: %w", rcpt, delivery.ErrNoMailbox)
		}
		f.boxes[boxKey(tenantID, rcpt)] = true
	}
	if f.Quota > 0 && f.usedLocked(tenantID, rcpt)+int64(len(b)) > f.Quota {
		return fmt.Errorf("%s: %w", rcpt, delivery.ErrOverQuota)
	}
	f.next++
	f.msgs[f.next] = &Message{ID: f.next, TenantID: tenantID, User: strings.ToLower(rcpt), QueueID: meta.QueueID, MailFrom: meta.MailFrom,
		Received: meta.Received, Body: b}
	f.byKey[k] = f.next
	f.delivered++
	return nil
}

func (f *Mailboxes) usedLocked(tenantID int64, user string) int64 {
	var n int64
	for _, m := range f.msgs {
		if m.TenantID == tenantID && strings.EqualFold(m.User, user) {
			n += int64(len(m.Body))
		}
	}
	return n
}

// AddSent stores a message user sent in emergency mode (its Sent folder).
func (f *Mailboxes) AddSent(tenantID int64, user string, body []byte) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	f.msgs[f.next] = &Message{ID: f.next, TenantID: tenantID, User: strings.ToLower(user), Received: f.now(), Body: body, Sent: true, Seen: true}
	return f.next
}

// SetSeen marks a message read.
func (f *Mailboxes) SetSeen(id int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m := f.msgs[id]; m != nil {
		m.Seen = true
	}
}

// Login records a user's login (for EmergencyUsage).
func (f *Mailboxes) Login(tenantID int64, user string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logins[boxKey(tenantID, user)] = f.now()
}

// Messages returns copies of the stored messages by ID.
func (f *Mailboxes) Messages() []Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Message
	for _, m := range f.msgs {
		c := *m
		c.Body = append([]byte(nil), m.Body...)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Stats returns how many deliveries stored a message and how many were
// repeats of one already stored.
func (f *Mailboxes) Stats() (delivered, repeats int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.delivered, f.repeats
}

// HasMailbox reports whether address has a mailbox.
func (f *Mailboxes) HasMailbox(tenantID int64, address string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.boxes[boxKey(tenantID, address)]
}

// EnsureMailboxes creates the missing mailboxes of the domain's users.
func (f *Mailboxes) EnsureMailboxes(ctx context.Context, tenantID int64, domain string) (int, error) {
	us, err := f.Users.Users(ctx, tenantID)
	if err != nil {
		return 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, u := range us {
		if domainOf(u.Address) != domain || f.boxes[boxKey(tenantID, u.Address)] {
			continue
		}
		f.boxes[boxKey(tenantID, u.Address)] = true
		n++
	}
	return n, nil
}

// PendingHandback lists the domain's messages not handed back yet.
func (f *Mailboxes) PendingHandback(ctx context.Context, tenantID int64, domain string, afterID int64, limit int) ([]continuity.Item, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []continuity.Item
	for _, m := range f.msgs {
		if m.TenantID == tenantID && domainOf(m.User) == domain && m.ID > afterID && m.HandedBack.IsZero() {
			out = append(out, item(m))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func item(m *Message) continuity.Item {
	return continuity.Item{ID: m.ID, User: m.User, Sent: m.Sent, MailFrom: m.MailFrom, QueueID: m.QueueID, Received: m.Received, Seen: m.Seen}
}

// OpenBody returns a message and its content.
func (f *Mailboxes) OpenBody(ctx context.Context, tenantID, id int64) (continuity.Item, io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.msgs[id]
	if m == nil || m.TenantID != tenantID {
		return continuity.Item{}, nil, fmt.Errorf("message %d: %w", id, store.ErrNotFound)
	}
	return item(m), io.NopCloser(bytes.NewReader(append([]byte(nil), m.Body...))), nil
}

// MarkHandedBack records the hand-back (the first time only).
func (f *Mailboxes) MarkHandedBack(ctx context.Context, tenantID, id int64, how string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.msgs[id]
	if m == nil || m.TenantID != tenantID {
		return fmt.Errorf("message %d: %w", id, store.ErrNotFound)
	}
	if m.HandedBack.IsZero() {
		m.HandedBack, m.How = f.now(), how
	}
	return nil
}

// PurgeHandedBack deletes messages handed back before before.
func (f *Mailboxes) PurgeHandedBack(ctx context.Context, tenantID int64, domain string, before time.Time) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for id, m := range f.msgs {
		if m.TenantID == tenantID && domainOf(m.User) == domain && !m.HandedBack.IsZero() && m.HandedBack.Before(before) {
			delete(f.msgs, id)
			n++
		}
	}
	return n, nil
}

// EmergencyUsage counts each mailbox's messages.
func (f *Mailboxes) EmergencyUsage(ctx context.Context, tenantID int64, domain string) ([]continuity.UserUsage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	by := map[string]*continuity.UserUsage{}
	for k := range f.boxes {
		tid, a, _ := strings.Cut(k, "/")
		if tid == fmt.Sprint(tenantID) && domainOf(a) == domain {
			by[a] = &continuity.UserUsage{Address: a, LastLogin: f.logins[k]}
		}
	}
	for _, m := range f.msgs {
		u := by[m.User]
		if m.TenantID != tenantID || u == nil {
			continue
		}
		switch {
		case m.Sent:
			u.Sent++
		default:
			u.Received++
			if !m.Seen {
				u.Unread++
			}
		}
		if !m.HandedBack.IsZero() {
			u.HandedBack++
		}
	}
	var out []continuity.UserUsage
	for _, u := range by {
		out = append(out, *u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out, nil
}
