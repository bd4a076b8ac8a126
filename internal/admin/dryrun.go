package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/archive"
	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/store"
)

// Rejudger runs the inbound checks over an accepted message again under
// changed settings, writing nothing (inbound.Pipeline.Rejudge).
type Rejudger func(ctx context.Context, m store.Message, rcpts []store.Recipient, open func() (io.ReadCloser, error), change func([]store.Setting) []store.Setting) ([]policy.Verdict, error)

// Dry-run bounds: the days looked back and the messages judged.
const (
	DryRunDefaultDays  = 30
	DryRunMaxDays      = 366
	DryRunDefaultLimit = 500
	DryRunMaxLimit     = 10000
)

// DryRunChange is one recipient whose verdict the policy change would
// change.
type DryRunChange struct {
	ArchiveID string    `json:"archive_id"`
	Received  time.Time `json:"received"`
	From      string    `json:"from"`
	Subject   string    `json:"subject"`
	Rcpt      string    `json:"rcpt"`
	Before    string    `json:"before"` // action under today's policy
	After     string    `json:"after"`  // action under the changed policy
	Reason    string    `json:"reason"` // what decides after the change
}

// DryRunResult is what a policy change would have done to the inbound
// mail of the last days.
type DryRunResult struct {
	Since      time.Time      `json:"since"`
	Messages   int            `json:"messages"`   // judged
	Recipients int            `json:"recipients"` // their recipients
	Skipped    int            `json:"skipped"`    // deleted bodies, imports, unreadable
	Truncated  bool           `json:"truncated"`  // more messages than the limit
	Changes    []DryRunChange `json:"changes"`
	// Transitions counts the changes per "before → after".
	Transitions map[string]int `json:"transitions"`
}

// PolicyDryRun shows what setting the values in ch at one scope would have
// done to the inbound mail archived in the last days: each archived
// message is judged twice by today's checks, under today's policy and
// under the changed one, and the recipients whose action differs are
// listed. No mail is touched and no setting is written. It needs archive
// access, since it shows senders and subjects of archived mail.
func (s *Service) PolicyDryRun(ctx context.Context, a Actor, scope, owner string, ch SettingsChange, days, limit int) (DryRunResult, error) {
	var res DryRunResult
	if err := a.require(store.RoleAdmin); err != nil {
		return res, err
	}
	if s.Rejudge == nil {
		return res, Invalidf("this node runs no inbound checks")
	}
	if len(ch) == 0 {
		return res, Invalidf("name at least one setting to try")
	}
	tid, norm, err := s.scopeOwner(ctx, a, scope, owner)
	if err != nil {
		return res, err
	}
	a = a.In(tid)
	if err := s.archiveAccess(ctx, a); err != nil {
		return res, err
	}
	svc, err := s.archive(ctx)
	if err != nil {
		return res, err
	}
	switch {
	case days == 0:
		days = DryRunDefaultDays
	case days < 1 || days > DryRunMaxDays:
		return res, Invalidf("days: 1 to %d", DryRunMaxDays)
	}
	switch {
	case limit == 0:
		limit = DryRunDefaultLimit
	case limit < 1 || limit > DryRunMaxLimit:
		return res, Invalidf("limit: 1 to %d messages", DryRunMaxLimit)
	}
	vals := map[string]string{}
	for k, v := range ch {
		if !ValidKey(k) {
			return res, Invalidf("key %q: lower-case words joined by dots, e.g. spam.tag_at", k)
		}
		if strings.TrimSpace(v) == "" {
			vals[k] = ""
			continue
		}
		if vals[k], err = CheckPolicyValue(k, v); err != nil {
			return res, err
		}
	}
	change := func(cur []store.Setting) []store.Setting {
		out := make([]store.Setting, 0, len(cur)+len(vals))
		for _, st := range cur {
			if _, ok := vals[st.Key]; ok && st.Scope == scope && st.Owner == norm {
				continue
			}
			out = append(out, st)
		}
		for k, v := range vals {
			if v != "" {
				out = append(out, store.Setting{TenantID: tid, Scope: scope, Owner: norm, Key: k, Value: v})
			}
		}
		return out
	}

	now := s.now().Now()
	res.Since = now.AddDate(0, 0, -days)
	res.Transitions = map[string]int{}
	q := archive.Query{Direction: "in", After: res.Since}
	page := archive.Page{Sort: archive.SortDate, Limit: 500}
	for res.Messages+res.Skipped < limit {
		hits, err := svc.Search(ctx, tid, q, page)
		if err != nil {
			return res, fmt.Errorf("archived mail: %w", err)
		}
		for _, e := range hits.Entries {
			if res.Messages+res.Skipped >= limit {
				res.Truncated = true
				break
			}
			if err := ctx.Err(); err != nil {
				return res, err
			}
			if !s.dryRunOne(ctx, svc, tid, e, change, &res) {
				res.Skipped++
			}
		}
		if hits.Next == "" || res.Truncated {
			break
		}
		page.Cursor = hits.Next
		if res.Messages+res.Skipped >= limit {
			res.Truncated = true
		}
	}
	sort.SliceStable(res.Changes, func(i, j int) bool { return res.Changes[i].Received.After(res.Changes[j].Received) })
	var keys []string
	for k, v := range vals {
		keys = append(keys, k+"="+v)
	}
	sort.Strings(keys)
	detail := fmt.Sprintf("%d days, %d messages, %d changes", days, res.Messages, len(res.Changes))
	if err := s.Audit(ctx, a, tid, "policy.dry_run", scope+":"+norm+":"+strings.Join(keys, ","), "", detail); err != nil {
		return res, err
	}
	return res, nil
}

// dryRunOne judges one archived message both ways; false when it cannot
// be judged (an event, an import, a deleted body, a broken entry).
func (s *Service) dryRunOne(ctx context.Context, svc *archive.Service, tid int64, e store.ArchiveEntry, change func([]store.Setting) []store.Setting, res *DryRunResult) bool {
	if e.Kind != store.ArchiveKindMessage || e.Imported || !e.Deleted.IsZero() {
		return false
	}
	var meta archive.Meta
	if err := json.Unmarshal([]byte(e.Meta), &meta); err != nil || len(meta.Rcpts) == 0 {
		return false
	}
	raw, err := svc.ReadMessage(ctx, e)
	if err != nil {
		s.log().Warn("policy dry run: archived message unreadable", "archive_id", e.ID, "err", err)
		return false
	}
	m := store.Message{TenantID: tid, ID: meta.QueueID, MailFrom: meta.MailFrom, Helo: meta.Helo, TLS: meta.TLS,
		AuthUser: meta.AuthUser, Size: int64(len(raw)), Subject: e.Subject, Direction: store.Inbound}
	if ip, err := netip.ParseAddr(meta.ClientIP); err == nil {
		m.ClientIP = ip.String()
	}
	rcpts := make([]store.Recipient, 0, len(meta.Rcpts))
	for _, r := range meta.Rcpts {
		rcpts = append(rcpts, store.Recipient{Addr: r.Addr})
	}
	open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil }
	before, err := s.Rejudge(ctx, m, rcpts, open, nil)
	if err == nil {
		var after []policy.Verdict
		if after, err = s.Rejudge(ctx, m, rcpts, open, change); err == nil {
			s.compareVerdicts(e, before, after, res)
		}
	}
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return false
		}
		s.log().Warn("policy dry run: checks failed", "archive_id", e.ID, "err", err)
		return false
	}
	res.Messages++
	res.Recipients += len(rcpts)
	return true
}

func (s *Service) compareVerdicts(e store.ArchiveEntry, before, after []policy.Verdict, res *DryRunResult) {
	was := map[string]policy.Action{}
	for _, v := range before {
		was[strings.ToLower(v.Rcpt)] = v.Action
	}
	for _, v := range after {
		b := was[strings.ToLower(v.Rcpt)]
		if b == v.Action {
			continue
		}
		c := DryRunChange{ArchiveID: e.ID, Received: e.Received, From: e.FromHdr, Subject: e.Subject, Rcpt: v.Rcpt,
			Before: b.String(), After: v.Action.String()}
		if v.Decider != nil {
			c.Reason = strings.TrimSpace(v.Decider.Check + " " + v.Decider.Symbol)
		}
		res.Changes = append(res.Changes, c)
		res.Transitions[c.Before+" → "+c.After]++
	}
}
