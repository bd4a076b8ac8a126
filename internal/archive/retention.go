package archive

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/store"
)

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// Capacity defaults: 10 GB per started 10 addresses of the tenant.
const (
	CapacityPerTen = 10 << 30
	NoticePercent  = 70
	noticeMark     = "archive-capacity-notice"
	noticeEvery    = 24 * time.Hour
	usageRefresh   = 30 * time.Second
)

// Capacity is a tenant's archive capacity in bytes.
func (s *Service) Capacity(ctx context.Context, st store.ArchiveSettings) (int64, error) {
	if st.CapacityBytes > 0 {
		return st.CapacityBytes, nil
	}
	us, err := s.Store.Users(ctx, st.TenantID)
	if err != nil {
		return 0, err
	}
	tens := int64((len(us) + 9) / 10)
	return max(tens, 1) * CapacityPerTen, nil
}

type usageCache struct {
	bytes, capacity int64
	at              time.Time
}

// usage returns a tenant's stored bytes and capacity, refreshed from the
// store every usageRefresh (every node adds what it archives meanwhile).
func (s *Service) usage(ctx context.Context, st store.ArchiveSettings) (usageCache, error) {
	s.mu.Lock()
	u, ok := s.usageOf[st.TenantID]
	s.mu.Unlock()
	if ok && s.now().Sub(u.at) < usageRefresh {
		return u, nil
	}
	got, err := s.Store.ArchiveUsage(ctx, st.TenantID)
	if err != nil {
		return u, err
	}
	c, err := s.Capacity(ctx, st)
	if err != nil {
		return u, err
	}
	u = usageCache{bytes: got.Bytes, capacity: c, at: s.now()}
	s.setUsage(st.TenantID, u)
	return u, nil
}

func (s *Service) setUsage(tid int64, u usageCache) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.usageOf == nil {
		s.usageOf = map[int64]usageCache{}
	}
	s.usageOf[tid] = u
}

func (s *Service) addUsage(tid, n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.usageOf[tid]; ok {
		u.bytes += n
		s.usageOf[tid] = u
	}
}

func (s *Service) forgetUsage(tid int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.usageOf, tid)
}

// makeRoom checks that size more bytes fit in the tenant's capacity,
// sends the 70 % notice, and at 100 % applies the tenant's choice: delete
// the oldest day (holds respected, logged) until it fits, or report full
// (the caller logs a gap).
func (s *Service) makeRoom(ctx context.Context, tid int64, st store.ArchiveSettings, size int64) (full bool, err error) {
	u, err := s.usage(ctx, st)
	if err != nil {
		return false, err
	}
	if (u.bytes+size)*100 >= u.capacity*NoticePercent {
		s.notice(ctx, tid, u.bytes+size, u.capacity)
	}
	for u.bytes+size > u.capacity {
		if st.OnFull != store.ArchiveFullDeleteOldest {
			return true, nil
		}
		n, err := s.deleteOldestDay(ctx, tid)
		if err != nil {
			return false, err
		}
		s.forgetUsage(tid)
		if n == 0 {
			return true, nil // everything left is held
		}
		if u, err = s.usage(ctx, st); err != nil {
			return false, err
		}
	}
	s.addUsage(tid, size)
	return false, nil
}

// notice tells the tenant's administrators once a day while the archive is
// at or above 70 % of its capacity; of several nodes, one sends it.
func (s *Service) notice(ctx context.Context, tid, used, capacity int64) {
	last, err := s.Store.Mark(ctx, tid, noticeMark)
	if err != nil || s.now().Sub(last) < noticeEvery {
		return
	}
	if ok, err := s.Store.ClaimMark(ctx, tid, noticeMark, last, s.now()); err != nil || !ok {
		return
	}
	pct := float64(used) * 100 / float64(capacity)
	subject := fmt.Sprintf("Archive %.0f%% full / アーカイブ使用量 %.0f%%", pct, pct)
	body := fmt.Sprintf("The mail archive uses %d of %d bytes (%.1f%%).\nメールアーカイブの使用量が %d / %d バイト (%.1f%%) になりました。\n", used, capacity, pct, used, capacity, pct)
	s.log().Warn("archive capacity notice", "tenant", tid, "percent", pct)
	if s.Notify != nil {
		if err := s.Notify(ctx, tid, subject, body); err != nil {
			s.log().Error("archive capacity notice not sent", "tenant", tid, "err", err)
		}
	}
}

// holdsFor returns a predicate telling entries under a legal hold.
func (s *Service) holdsFor(ctx context.Context, tid int64) (func(store.ArchiveEntry) bool, error) {
	hs, err := s.Store.ArchiveHolds(ctx, tid)
	if err != nil {
		return nil, err
	}
	if len(hs) == 0 {
		return func(store.ArchiveEntry) bool { return false }, nil
	}
	var addrs []string
	var qs []Query
	for _, h := range hs {
		switch h.Kind {
		case "address":
			addrs = append(addrs, strings.ToLower(h.Value))
		case "query":
			if q, err := ParseQuery(h.Value); err == nil {
				qs = append(qs, q)
			}
		}
	}
	return func(e store.ArchiveEntry) bool {
		var meta Meta
		_ = jsonUnmarshal(e.Meta, &meta)
		parties, unparsed := entryParties(e, meta)
		for _, a := range addrs {
			if IsParticipant(parties, a) || unparsed != "" && strings.Contains(unparsed, a) {
				return true
			}
		}
		if len(qs) > 0 {
			d, _ := s.docFor(ctx, e)
			for _, q := range qs {
				if Match(q, d) {
					return true
				}
			}
		}
		return false
	}, nil
}

// entryParties returns the exact addresses an archived message is from or
// to, as its entry records them: the envelope sender and recipients and
// the addresses of the From, To and Cc headers. A header with an "@" that
// did not parse as part of an address is returned whole, lower case, in
// unparsed, for a substring test: a hold then keeps more, never less.
func entryParties(e store.ArchiveEntry, meta Meta) (parties []string, unparsed string) {
	var header []string
	for _, h := range []string{e.FromHdr, e.ToHdr, e.CcHdr} {
		as := mailtext.ParseAddressList(h)
		ats := 0
		for _, a := range as {
			header = append(header, a.Addr)
			ats += strings.Count(a.Addr, "@")
		}
		if strings.Count(h, "@") > ats {
			unparsed += strings.ToLower(h) + "\n"
		}
	}
	return addressSet(header, meta), unparsed
}

// deleteOldestDay deletes the bodies of the oldest day's messages that are
// not held and logs it; it returns how many it deleted.
func (s *Service) deleteOldestDay(ctx context.Context, tid int64) (int, error) {
	held, err := s.holdsFor(ctx, tid)
	if err != nil {
		return 0, err
	}
	es, err := s.Store.ArchiveDeletable(ctx, tid, s.now().Add(24*time.Hour), 20000)
	if err != nil {
		return 0, err
	}
	var day time.Time
	var del []store.ArchiveEntry
	for _, e := range es {
		if held(e) {
			continue
		}
		d := e.Received.UTC().Truncate(24 * time.Hour)
		if day.IsZero() {
			day = d
		} else if !d.Equal(day) {
			break
		}
		del = append(del, e)
	}
	if len(del) == 0 {
		return 0, nil
	}
	return s.deleteEntries(ctx, tid, del, "capacity: oldest day "+day.Format("2006-01-02")+" deleted")
}

// deleteEntries removes bodies and logs the deletion as an entry of the
// log naming every message deleted (ID and hash), in one transaction.
func (s *Service) deleteEntries(ctx context.Context, tid int64, es []store.ArchiveEntry, reason string) (int, error) {
	ids := make([]string, len(es))
	sums := make([]string, len(es))
	for i, e := range es {
		ids[i], sums[i] = e.ID, e.SHA256
	}
	meta := canonical(map[string]any{"reason": reason, "ids": ids, "sha256": sums})
	ev := store.ArchiveAppend{Entries: []store.ArchiveEntry{{ID: store.NewMessageID(s.now()), Kind: store.ArchiveKindDeletion,
		At: s.now(), Received: s.now(), Meta: meta}}, Checkpoint: s.checkpoint(tid)}
	free, _, err := s.Store.DeleteArchiveBodies(ctx, tid, ids, ev)
	if err != nil {
		return 0, fmt.Errorf("archive deletion: %w", err)
	}
	for _, k := range free {
		if err := s.Blobs.Delete(ctx, k); err != nil {
			s.log().Warn("remove archive blob", "key", k, "err", err)
		}
	}
	if s.Index != nil {
		if err := s.Index.Delete(ctx, tid, ids); err != nil {
			s.log().Warn("archive index deletion", "err", err)
		}
	}
	s.log().Info("archive bodies deleted", "tenant", tid, "count", len(ids), "reason", reason)
	return len(ids), nil
}

// Retain deletes the bodies of a tenant's messages older than its
// retention that no legal hold protects, and logs each batch.
func (s *Service) Retain(ctx context.Context, st store.ArchiveSettings) (int, error) {
	days := st.RetentionDays
	if days <= 0 {
		days = store.DefaultArchiveRetentionDays
	}
	before := s.now().AddDate(0, 0, -days)
	held, err := s.holdsFor(ctx, st.TenantID)
	if err != nil {
		return 0, err
	}
	total := 0
	skipped := map[string]bool{}
	for {
		es, err := s.Store.ArchiveDeletable(ctx, st.TenantID, before, 500+len(skipped))
		if err != nil {
			return total, err
		}
		var del []store.ArchiveEntry
		for _, e := range es {
			if skipped[e.ID] {
				continue
			}
			if held(e) {
				skipped[e.ID] = true
				continue
			}
			del = append(del, e)
		}
		if len(del) == 0 {
			return total, nil
		}
		n, err := s.deleteEntries(ctx, st.TenantID, del, fmt.Sprintf("retention: %d days", days))
		total += n
		if err != nil {
			return total, err
		}
		s.forgetUsage(st.TenantID)
	}
}

// RetainAll applies retention to every tenant with archive settings.
func (s *Service) RetainAll(ctx context.Context) (int, error) {
	ts, err := s.Store.ArchiveTenants(ctx)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, st := range ts {
		n, err := s.Retain(ctx, st)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
