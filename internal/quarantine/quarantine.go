// Package quarantine manages the per-recipient quarantine (隔離ボックス):
// listing, releasing a copy to the recipient's mailbox, deleting,
// purging copies past their retention, the per-address capacity with its
// 80% warning mail, the digests of held mail with one-click links, and the
// actions those links (and the console) perform. Copies are written by the
// inbound pipeline, which asks Fits before and calls Stored after; this
// package only acts on them. Every action is a state change guarded by the
// previous state (so a copy is released at most once) and a tracking event.
//
// Settings (per address, group, domain or tenant, most specific wins):
//
//   - quarantine.retention_days: 1–14, default 7 (read by the pipeline).
//   - quarantine.quota_mb: capacity in MiB, default 5 (a hosting plan's
//     50 MB per 10 addresses, as each address's share).
//   - quarantine.lang: capacity warning language, "ja", "en" or both
//     (default; falls back to the setting "lang").
//   - quarantine.digest_hours: hours of the digests, default "9,17";
//     "off" disables.
//   - quarantine.digest_lang: "ja" (default) or "en".
//   - quarantine.admin_digest: tenant scope, addresses of the tenant-wide
//     digest; empty (default) = none.
package quarantine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/store"
)

// Submitter queues a locally generated message (queue.Queue.Submit).
type Submitter interface {
	Submit(ctx context.Context, m store.Message, rcpts []string, body io.Reader, why string) (string, error)
}

// Manager acts on quarantined copies. Its methods are safe for concurrent
// use; every state change is guarded in the store, so several nodes may act
// on the same copies.
type Manager struct {
	Store Store
	Blobs blob.Store
	Queue Submitter
	Clock clock.Clock
	Log   *slog.Logger
	// Hostname names mailgate in the notices it sends (From, Message-ID).
	Hostname string
}

// ErrNotHeld is returned when the copy was already released or deleted.
var ErrNotHeld = errors.New("quarantined message is no longer held")

// Release delivers a held copy to its recipient, marked with an
// X-Mailgate-Released header so downstream filters do not junk it again.
// It returns the queue ID of the released message.
func (m *Manager) Release(ctx context.Context, tenantID int64, id, who string) (string, error) {
	it, err := m.Store.QuarantineItem(ctx, tenantID, id)
	if err != nil {
		return "", err
	}
	if it.State != store.QHeld {
		return "", ErrNotHeld
	}
	f, err := m.Blobs.Open(ctx, it.BlobKey)
	if err != nil {
		return "", fmt.Errorf("quarantine copy: %w", err)
	}
	defer f.Close()
	hdr := "X-Mailgate-Released: " + it.ID + " by " + sanitize(who) + "; " + m.Clock.Now().UTC().Format("Mon, 02 Jan 2006 15:04:05 -0700") + "\r\n"
	// Claim the copy first: a crash after this but before the submit leaves
	// it released-but-undelivered, visible in tracking; the reverse order
	// could deliver it twice on a double click.
	ok, err := m.Store.SetQuarantineState(ctx, it.TenantID, id, store.QHeld, store.QReleased,
		store.Event{MessageID: it.MessageID, TenantID: it.TenantID, At: m.Clock.Now(), Kind: "released", Rcpt: it.Rcpt, Detail: "quarantine " + id + " released by " + sanitize(who)})
	if err != nil {
		return "", err
	}
	if !ok {
		return "", ErrNotHeld
	}
	qid, err := m.Queue.Submit(ctx, store.Message{TenantID: it.TenantID, Direction: store.Inbound, MailFrom: it.MailFrom, Subject: it.Subject},
		[]string{it.Rcpt}, io.MultiReader(strings.NewReader(hdr), f), "release of quarantined "+id)
	if err != nil {
		// Put it back so the user can try again.
		m.Store.SetQuarantineState(ctx, it.TenantID, id, store.QReleased, store.QHeld,
			store.Event{MessageID: it.MessageID, TenantID: it.TenantID, At: m.Clock.Now(), Kind: "release-failed", Rcpt: it.Rcpt, Detail: err.Error()})
		return "", err
	}
	if err := m.Blobs.Delete(ctx, it.BlobKey); err != nil && m.Log != nil {
		m.Log.Warn("quarantine release: blob not removed", "id", id, "err", err)
	}
	return qid, nil
}

// Forward sends a copy (held or not) to another address, marked with an
// X-Mailgate-Forwarded header naming the copy, its recipient and who sent
// it on; the copy itself stays as it is. It returns the queue ID.
func (m *Manager) Forward(ctx context.Context, tenantID int64, id, to, who string) (string, error) {
	f, it, err := m.Open(ctx, tenantID, id)
	if err != nil {
		return "", err
	}
	defer f.Close()
	hdr := "X-Mailgate-Forwarded: quarantine " + it.ID + " for " + it.Rcpt + " by " + sanitize(who) + "\r\n"
	return m.Queue.Submit(ctx, store.Message{TenantID: it.TenantID, Direction: store.Inbound, Subject: it.Subject},
		[]string{to}, io.MultiReader(strings.NewReader(hdr), f), "forward of quarantined "+it.ID)
}

// Delete removes a held copy.
func (m *Manager) Delete(ctx context.Context, tenantID int64, id, who string) error {
	it, err := m.Store.QuarantineItem(ctx, tenantID, id)
	if err != nil {
		return err
	}
	ok, err := m.Store.SetQuarantineState(ctx, it.TenantID, id, store.QHeld, store.QDeleted,
		store.Event{MessageID: it.MessageID, TenantID: it.TenantID, At: m.Clock.Now(), Kind: "quarantine-deleted", Rcpt: it.Rcpt, Detail: "quarantine " + id + " deleted by " + sanitize(who)})
	if err != nil {
		return err
	}
	if !ok {
		return ErrNotHeld
	}
	return m.Blobs.Delete(ctx, it.BlobKey)
}

// Purge deletes held copies past their retention (Expires at or before the
// clock's now), across tenants: state deleted, a "quarantine-expired"
// tracking event, then the blob. It returns how many it deleted. A copy
// released or deleted meanwhile (by a user, another node) is skipped. Safe
// to run on several nodes at once; a crash between the state change and
// the blob removal leaves an orphan blob, never a held row without one.
func (m *Manager) Purge(ctx context.Context) (int, error) {
	const batch = 500
	now := m.Clock.Now()
	n := 0
	for {
		// ExpiredQuarantine is "before now": add a nanosecond so a copy
		// expiring exactly now goes too.
		items, err := m.Store.ExpiredQuarantine(ctx, now.Add(time.Nanosecond), batch)
		if err != nil {
			return n, fmt.Errorf("quarantine purge: %w", err)
		}
		progress := false
		for _, it := range items {
			if it.State != store.QHeld || it.Expires.After(now) {
				continue
			}
			ok, err := m.Store.SetQuarantineState(ctx, it.TenantID, it.ID, store.QHeld, store.QDeleted,
				store.Event{MessageID: it.MessageID, TenantID: it.TenantID, At: now, Kind: "quarantine-expired", Rcpt: it.Rcpt, Detail: "quarantine " + it.ID + " deleted after retention"})
			if err != nil {
				return n, fmt.Errorf("quarantine purge %s: %w", it.ID, err)
			}
			if ok {
				progress = true
				if err := m.Blobs.Delete(ctx, it.BlobKey); err != nil && m.Log != nil {
					m.Log.Warn("quarantine purge: blob not removed", "id", it.ID, "err", err)
				}
				n++
			}
		}
		if len(items) < batch || !progress || ctx.Err() != nil {
			return n, ctx.Err()
		}
	}
}

// Open returns the quarantined copy's bytes (for show and preview).
func (m *Manager) Open(ctx context.Context, tenantID int64, id string) (io.ReadCloser, store.QuarantineItem, error) {
	it, err := m.Store.QuarantineItem(ctx, tenantID, id)
	if err != nil {
		return nil, it, err
	}
	f, err := m.Blobs.Open(ctx, it.BlobKey)
	return f, it, err
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == ';' {
			return ' '
		}
		return r
	}, s)
}
