// Package dirsync decides whether a served domain's recipient exists when
// the tenant's user list does not know it, by the domain's recipient
// check (store.RecipientCheck):
//
//   - directory: the addresses of the primary service's directory
//     (Microsoft Graph users and groups with their proxy addresses, or the
//     Google Directory API's users and groups with their aliases),
//     synchronised on a schedule and on demand with the tenant's stored
//     API credentials (package continuity's);
//   - callout: the primary service's own servers are asked at RCPT
//     (MAIL FROM:<> / RCPT TO:<addr>, then RSET and QUIT), and the answer
//     is cached, as Postfix's reject_unverified_recipient does.
//
// A broken upstream must never make mailgate refuse all mail: a
// synchronisation that returns an empty list, or one that would remove
// more than half of the directory, is held (logged, recorded, audited by
// the caller) until an administrator confirms it, and the last good list
// stays; a callout that cannot reach the primary answers 450, never 550.
package dirsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/continuity"
	"github.com/mailgate/mailgate/internal/store"
)

// Store is what the synchronisation and the checks read and write.
type Store interface {
	store.DirectoryStore
	Tenants(ctx context.Context) ([]store.Tenant, error)
	Domains(ctx context.Context, tenantID int64) ([]store.Domain, error)
	Mark(ctx context.Context, tenantID int64, key string) (time.Time, error)
	ClaimMark(ctx context.Context, tenantID int64, key string, old time.Time, at time.Time) (bool, error)
}

// ErrNotDirectory refuses to synchronise a domain whose recipient check
// is not "directory".
var ErrNotDirectory = errors.New("the domain's recipient check is not directory")

// FetchError is a synchronisation whose source failed (an API error, a
// refused token, bad credentials): it is recorded with the domain, and
// the last list stays.
type FetchError struct {
	Domain, Source string
	Err            error
}

func (e *FetchError) Error() string {
	return fmt.Sprintf("directory of %s from %s: %v", e.Domain, e.Source, e.Err)
}

func (e *FetchError) Unwrap() error { return e.Err }

// MaxEntries bounds one domain's directory (a larger answer is an error,
// the last good list stays).
const MaxEntries = 500000

// Result is what one synchronisation did.
type Result struct {
	Domain  string `json:"domain"`
	Fetched int    `json:"fetched"` // addresses listed upstream
	Before  int    `json:"before"`  // addresses of the directory before
	Added   int    `json:"added"`
	Removed int    `json:"removed"`
	// Applied says the directory was replaced; Held that the list was
	// not applied for want of confirmation (empty, or removing more than
	// half), with Reason saying why.
	Applied bool   `json:"applied"`
	Held    bool   `json:"held"`
	Reason  string `json:"reason,omitempty"`
	// Sample names a few added and removed addresses, for the log.
	AddedSample   []string `json:"added_sample,omitempty"`
	RemovedSample []string `json:"removed_sample,omitempty"`
}

// Syncer synchronises domains' directories.
type Syncer struct {
	Store Store
	// API makes the Graph and Google requests with the tenant's stored
	// credentials (its Service reads them).
	API   *continuity.API
	Clock clock.Clock
	Log   *slog.Logger
}

func (s *Syncer) now() time.Time {
	if s.Clock == nil {
		return time.Now()
	}
	return s.Clock.Now()
}

func (s *Syncer) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

// Sync fetches d's directory from its source and replaces the stored one,
// unless the new list is empty or removes more than half of the stored
// addresses and confirm is false: then nothing changes but the recorded
// attempt (Result.Held). A fetch that fails changes nothing either; its
// error is recorded and returned.
func (s *Syncer) Sync(ctx context.Context, d store.Domain, confirm bool) (Result, error) {
	res := Result{Domain: d.Name}
	rc, err := s.Store.RecipientCheck(ctx, d.TenantID, d.ID)
	if err != nil {
		return res, err
	}
	if rc.Mode != store.RcptCheckDirectory {
		return res, fmt.Errorf("%s: %w", d.Name, ErrNotDirectory)
	}
	entries, err := s.fetch(ctx, d, rc)
	now := s.now()
	if err != nil {
		err = &FetchError{Domain: d.Name, Source: rc.Source, Err: err}
		s.log().Warn("directory sync failed; the last list stays", "domain", d.Name, "source", rc.Source, "err", err)
		if rerr := s.Store.RecordDirectoryAttempt(ctx, d.TenantID, d.ID, now, oneLine(err.Error(), 500), false); rerr != nil {
			return res, errors.Join(err, rerr)
		}
		return res, err
	}
	old, err := s.Store.Directory(ctx, d.TenantID, d.ID)
	if err != nil {
		return res, err
	}
	res.Fetched, res.Before = len(entries), len(old)
	oldSet := make(map[string]bool, len(old))
	for _, e := range old {
		oldSet[e.Address] = true
	}
	newSet := make(map[string]bool, len(entries))
	for _, e := range entries {
		newSet[e.Address] = true
		if !oldSet[e.Address] {
			res.Added++
			if len(res.AddedSample) < 10 {
				res.AddedSample = append(res.AddedSample, e.Address)
			}
		}
	}
	for _, e := range old {
		if !newSet[e.Address] {
			res.Removed++
			if len(res.RemovedSample) < 10 {
				res.RemovedSample = append(res.RemovedSample, e.Address)
			}
		}
	}
	switch {
	case confirm:
	case len(entries) == 0:
		res.Reason = "the source lists no address of the domain"
	case res.Removed*2 > len(old):
		res.Reason = fmt.Sprintf("the source's list would remove %d of the %d known addresses", res.Removed, len(old))
	}
	if res.Reason != "" {
		res.Held = true
		msg := "held: " + res.Reason + "; the last list stays until the sync is confirmed"
		s.log().Warn("directory sync held", "domain", d.Name, "source", rc.Source, "fetched", res.Fetched, "before", res.Before,
			"removed", res.Removed, "removed_sample", res.RemovedSample)
		return res, s.Store.RecordDirectoryAttempt(ctx, d.TenantID, d.ID, now, msg, true)
	}
	if err := s.Store.ReplaceDirectory(ctx, d.TenantID, d.ID, entries, now); err != nil {
		return res, err
	}
	res.Applied = true
	s.log().Info("directory synced", "domain", d.Name, "source", rc.Source, "entries", res.Fetched, "added", res.Added, "removed", res.Removed)
	return res, nil
}

func (s *Syncer) fetch(ctx context.Context, d store.Domain, rc store.RecipientCheck) ([]store.DirectoryEntry, error) {
	if s.API == nil {
		return nil, errors.New("no API client on this node")
	}
	var c collector
	c.domain = d.Name
	var err error
	switch rc.Source {
	case store.DirectoryGraph:
		err = s.fetchGraph(ctx, d.TenantID, &c)
	case store.DirectoryGoogle:
		err = s.fetchGoogle(ctx, d.TenantID, rc.Admin, &c)
	default:
		return nil, fmt.Errorf("unknown directory source %q", rc.Source)
	}
	if err != nil {
		return nil, err
	}
	return c.entries(), nil
}

// collector gathers one domain's addresses; an address listed twice
// keeps its first kind (users are read before groups, primary addresses
// before aliases).
type collector struct {
	domain string
	by     map[string]store.DirectoryEntry
	err    error
}

func (c *collector) add(address, kind, target, name string) {
	a := strings.ToLower(strings.TrimSpace(address))
	at := strings.LastIndexByte(a, '@')
	if at <= 0 || a[at+1:] != c.domain || strings.ContainsFunc(a, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '<' || r == '>' }) {
		return // another domain's address (or none): not this directory's
	}
	if c.by == nil {
		c.by = map[string]store.DirectoryEntry{}
	}
	if _, ok := c.by[a]; ok {
		return
	}
	if len(c.by) >= MaxEntries {
		c.err = fmt.Errorf("more than %d addresses", MaxEntries)
		return
	}
	t := strings.ToLower(strings.TrimSpace(target))
	if t == a {
		t = ""
	}
	c.by[a] = store.DirectoryEntry{Address: a, Kind: kind, Target: t, Name: oneLine(name, 200)}
}

func (c *collector) entries() []store.DirectoryEntry {
	out := make([]store.DirectoryEntry, 0, len(c.by))
	for _, e := range c.by {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out
}

// oneLine bounds a text to one line of at most n bytes. Control
// characters (NUL included, which PostgreSQL does not store) become
// spaces.
func oneLine(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "")
}
