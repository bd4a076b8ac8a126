package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/store"
)

// Archiver settings.
const (
	leaseFor  = 5 * time.Minute // a claim; an archiver that dies loses its rows after it
	batchSize = 64              // pending rows claimed per worker at once
	// appendBatch bounds the appends of one store transaction: the
	// single-writer store (SQLite) holds its writer, and the mail's
	// accepts wait behind it, for the length of one.
	appendBatch = 64
	retryAfter  = time.Minute // a failed attempt is retried after this (doubling up to maxRetry)
	maxRetry    = time.Hour
	maxAttempts = 20 // then the message is logged as a gap
	maxMessage  = 200 << 20
)

// Guard is the queue's spool as the queue and the inbound pipeline see it:
// deleting a blob that a message waiting to be archived still needs is
// left to the archiver, which deletes it once archived (when the queue is
// done with it too). A blob whose deletion was skipped because the two
// decided at the same moment is removed by the spool's recovery at the
// next start, never lost early.
type Guard struct {
	blob.Store
	Pending interface {
		ArchivePendingBlob(ctx context.Context, key string) (bool, error)
	}
}

// Delete removes the blob unless the archive still needs it.
func (g Guard) Delete(ctx context.Context, key string) error {
	held, err := g.Pending.ArchivePendingBlob(ctx, key)
	if err != nil {
		return fmt.Errorf("delete %s: archive check: %w", key, err)
	}
	if held {
		return nil
	}
	return g.Store.Delete(ctx, key)
}

// DeleteSettled removes the blob of a message the queue is done with,
// unless archiveHolds: whether the archive still needs it, as the store's
// transaction that finished the message found (store.Completed). It asks
// the store nothing more: the answer is as fresh as Delete's, which reads
// it just after that commit.
func (g Guard) DeleteSettled(ctx context.Context, key string, archiveHolds bool) error {
	if archiveHolds {
		return nil
	}
	return g.Store.Delete(ctx, key)
}

// RunOnce claims and archives pending messages until none is due, then
// indexes what is not indexed yet and signs the checkpoints of the logs
// that grew. It returns how many it archived.
//
// Each claim is archived as a batch: workers goroutines read, parse and
// store the bodies (each its own blob, content-addressed, so a body
// written before a crash is found again by the retry), then the entries
// are appended to the logs in one store transaction per appendBatch and
// indexed in one index batch. A crash anywhere before the commit leaves
// the rows pending under their lease, and the next claim after it archives
// them; the commit drops the pending rows with the entries, so nothing is
// archived twice.
func (s *Service) RunOnce(ctx context.Context, workers int) (int, error) {
	if workers < 1 {
		workers = 1
	}
	total := 0
	for {
		now := s.now()
		ps, err := s.Store.ClaimArchivePending(ctx, s.Node, now, now.Add(leaseFor), batchSize*workers)
		if err != nil {
			return total, fmt.Errorf("archive claim: %w", err)
		}
		if len(ps) == 0 {
			break
		}
		n, err := s.archiveBatch(ctx, ps, workers)
		total += n
		if err != nil {
			return total, err
		}
	}
	if _, err := s.IndexPending(ctx); err != nil {
		s.log().Warn("archive indexing", "err", err)
	}
	return total, s.SignTouched(ctx)
}

// prepared is a claimed message ready to be appended: its body stored,
// its entry and search document made.
type prepared struct {
	p    store.ArchivePending
	a    store.ArchiveAppend
	doc  Doc
	err  error // preparing failed: retried later
	done bool  // settled on its own (a gap, a message the rule leaves out)
}

// archiveBatch archives claimed messages and returns how many it logged.
func (s *Service) archiveBatch(ctx context.Context, ps []store.ArchivePending, workers int) (int, error) {
	settings := map[int64]store.ArchiveSettings{}
	for _, p := range ps {
		if _, ok := settings[p.TenantID]; ok {
			continue
		}
		st, err := s.Store.ArchiveSettings(ctx, p.TenantID)
		if err != nil {
			return 0, fmt.Errorf("archive settings: %w", err)
		}
		settings[p.TenantID] = st
	}
	items := make([]prepared, len(ps))
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	for w := 0; w < min(workers, len(ps)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= len(ps) || ctx.Err() != nil {
					return
				}
				items[i] = s.prepare(ctx, ps[i], settings[ps[i].TenantID])
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		// Stopped: the rows stay leased and are archived after the lease.
		return 0, err
	}
	var todo []prepared
	for _, it := range items {
		switch {
		case it.err != nil:
			s.fail(ctx, it.p, it.err)
		case !it.done:
			todo = append(todo, it)
		}
	}
	// One order of the tenants' logs for every node's transactions.
	sort.SliceStable(todo, func(i, j int) bool { return todo[i].p.TenantID < todo[j].p.TenantID })
	var docs []Doc
	for len(todo) > 0 {
		part := todo[:min(appendBatch, len(todo))]
		todo = todo[len(part):]
		docs = append(docs, s.appendBatch(ctx, part)...)
	}
	s.indexDocs(ctx, docs)
	return len(docs), nil
}

// appendBatch appends prepared messages in one transaction and returns the
// search documents of those it logged. When the batch fails, each is
// appended on its own, so that one bad message does not hold up the rest.
func (s *Service) appendBatch(ctx context.Context, items []prepared) []Doc {
	as := make([]store.ArchiveAppend, len(items))
	for i, it := range items {
		as[i] = it.a
	}
	res, err := s.Store.AppendArchiveBatch(ctx, as)
	if err != nil {
		s.log().Warn("archive batch failed; appending its messages one by one", "messages", len(items), "err", err)
		res = make([]store.ArchiveAppended, len(items))
		for i, it := range items {
			r, err := s.Store.AppendArchive(ctx, it.a)
			if err != nil {
				s.fail(ctx, it.p, err)
				res[i] = store.ArchiveAppended{Lost: true}
				continue
			}
			res[i] = r
		}
	}
	var docs []Doc
	for i, it := range items {
		r := res[i]
		if r.Lost {
			continue // another node has it now, or it failed and is retried
		}
		s.afterAppend(ctx, it.p, r)
		if r.Duplicate {
			s.log().Info("archive: already archived by another attempt", "tenant", it.p.TenantID, "queue_id", it.p.MessageID)
			continue
		}
		s.noteTouched(it.p.TenantID)
		docs = append(docs, it.doc)
	}
	return docs
}

// Run archives until ctx ends: every interval, and when woken.
func (s *Service) Run(ctx context.Context, interval time.Duration, workers int, wake <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.RunOnce(ctx, workers); err != nil && ctx.Err() == nil {
			s.log().Error("archiver", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-wake:
		}
	}
}

func (s *Service) fail(ctx context.Context, p store.ArchivePending, err error) {
	if errors.Is(err, store.ErrArchiveLease) {
		return // another node has it now
	}
	log := s.log().With("tenant", p.TenantID, "queue_id", p.MessageID)
	if p.Attempts+1 >= maxAttempts {
		log.Error("archiving failed for good; logging a gap", "err", err)
		if gerr := s.gap(ctx, p, "archiving failed: "+err.Error()); gerr == nil {
			return
		}
	}
	wait := retryAfter << min(p.Attempts, 6)
	if wait > maxRetry {
		wait = maxRetry
	}
	log.Warn("archiving failed; will retry", "err", err, "attempt", p.Attempts+1)
	if ferr := s.Store.FailArchivePending(context.WithoutCancel(ctx), p.ID, s.Node, err.Error(), s.now().Add(wait)); ferr != nil {
		log.Error("archive retry not recorded", "err", ferr)
	}
}

// gap logs that a message was not archived and drops its pending row, in
// one transaction: a gap in the archive is never silent.
func (s *Service) gap(ctx context.Context, p store.ArchivePending, reason string) error {
	meta := canonical(map[string]any{"queue_id": p.MessageID, "direction": p.Direction, "size": p.Size,
		"received": p.Created.UTC().Format(time.RFC3339Nano), "reason": reason})
	e := store.ArchiveEntry{ID: store.NewMessageID(s.now()), Kind: store.ArchiveKindGap, At: s.now(), Received: p.Created, Meta: meta}
	res, err := s.Store.AppendArchive(ctx, store.ArchiveAppend{TenantID: p.TenantID, PendingID: p.ID, Owner: s.Node, Entries: []store.ArchiveEntry{e}})
	if err != nil {
		return err
	}
	s.noteTouched(p.TenantID)
	s.afterAppend(ctx, p, res)
	return nil
}

// afterAppend removes what an append left unused: blobs another writer
// had stored first, and the spool blob once nobody needs it.
func (s *Service) afterAppend(ctx context.Context, p store.ArchivePending, res store.ArchiveAppended) {
	for _, k := range res.Unused {
		if err := s.Blobs.Delete(ctx, k); err != nil {
			s.log().Warn("remove unused archive blob", "key", k, "err", err)
		}
	}
	if res.SpoolFree && s.Spool != nil {
		if err := s.Spool.Delete(ctx, p.BlobKey); err != nil {
			s.log().Warn("remove archived spool blob", "key", p.BlobKey, "err", err)
		}
	}
}

// verdictOf summarises findings and recipient outcomes for search:
// findings first ("spam", "virus", ...), then outcomes other than plain
// delivery, or "clean".
func verdictOf(findings []string, rcpts []MetaRcpt) string {
	seen := map[string]bool{}
	var out []string
	add := func(v string) {
		if v != "" && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	for _, f := range findings {
		add(f)
	}
	for _, r := range rcpts {
		switch store.RcptState(r.State) {
		case store.Quarantined, store.Rejected, store.Discarded, store.Bounced, store.Held:
			add(r.State)
		}
	}
	if len(out) == 0 {
		return "clean"
	}
	return strings.Join(out, " ")
}

// envelope reads what the queue knows of a message: its row, recipients
// and verdict events (the row may be gone after the queue's retention;
// the archive then keeps what the pending row says).
func (s *Service) envelope(ctx context.Context, p store.ArchivePending) (Meta, error) {
	meta := Meta{QueueID: p.MessageID, Direction: string(p.Direction), Received: p.Created.UTC().Format(time.RFC3339Nano), Size: p.Size}
	m, rcpts, err := s.Store.Message(ctx, p.TenantID, p.MessageID)
	if errors.Is(err, store.ErrNotFound) {
		return meta, nil
	}
	if err != nil {
		return meta, err
	}
	meta.MailFrom, meta.ClientIP, meta.Helo, meta.TLS, meta.AuthUser = m.MailFrom, m.ClientIP, m.Helo, m.TLS, m.AuthUser
	meta.MessageID = m.MessageID
	for _, r := range rcpts {
		meta.Rcpts = append(meta.Rcpts, MetaRcpt{Addr: r.Addr, State: string(r.State), Reply: r.LastReply})
	}
	evs, err := s.Store.Events(ctx, p.TenantID, p.MessageID)
	if err != nil {
		return meta, err
	}
	seen := map[string]bool{}
	for _, e := range evs {
		if e.Kind != "verdict" {
			continue
		}
		meta.Verdicts = append(meta.Verdicts, e.Rcpt+": "+e.Detail)
		for _, f := range store.VerdictFindings(e.Detail) {
			if !seen[f] {
				seen[f] = true
				meta.Findings = append(meta.Findings, f)
			}
		}
	}
	sort.Strings(meta.Findings)
	return meta, nil
}

// DocOf builds the search document of an archived message.
func DocOf(e store.ArchiveEntry, x Extracted, meta Meta) Doc {
	var names []string
	var atext []string
	for _, a := range x.Attachments {
		names = append(names, a.Name)
		names = append(names, a.Names...) // an archive's members
		if a.Text != "" {
			atext = append(atext, a.Text)
		}
	}
	from := strings.Join(x.From, ", ")
	if meta.MailFrom != "" && !strings.Contains(strings.ToLower(from), strings.ToLower(meta.MailFrom)) {
		from = strings.TrimPrefix(from+", "+meta.MailFrom, ", ")
	}
	to := strings.Join(x.To, ", ")
	for _, r := range meta.Rcpts {
		if !strings.Contains(strings.ToLower(to), strings.ToLower(r.Addr)) {
			to = strings.TrimPrefix(to+", "+r.Addr, ", ")
		}
	}
	return Doc{TenantID: e.TenantID, ID: e.ID, From: from, To: to, Cc: strings.Join(x.Cc, ", "), Subject: x.Subject, Body: x.Body,
		Attachments: strings.Join(names, " ") + "\n" + strings.Join(atext, "\n"), Date: e.Received, Size: e.Size,
		HasAttachment: x.HasAttachment, Direction: string(e.Direction), Verdict: e.Verdict, Imported: e.Imported,
		Addresses: addressSet(x.Addrs, meta)}
}

// prepare stores a claimed message's body and makes its log entry and
// search document; a message to log as a gap, or that the tenant's rule
// leaves out, is settled here on its own.
func (s *Service) prepare(ctx context.Context, p store.ArchivePending, settings store.ArchiveSettings) prepared {
	it := prepared{p: p}
	settle := func(err error) prepared {
		it.done, it.err = err == nil, err
		return it
	}
	log := s.log().With("tenant", p.TenantID, "queue_id", p.MessageID)
	raw, err := s.readSpool(ctx, p.BlobKey)
	if errors.Is(err, blob.ErrNotFound) || errors.Is(err, blob.ErrDamaged) {
		log.Error("archive: message body unreadable; logging a gap", "err", err)
		return settle(s.gap(ctx, p, "message body unreadable in the spool: "+err.Error()))
	}
	if err != nil {
		return settle(err)
	}
	meta, err := s.envelope(ctx, p)
	if err != nil {
		return settle(err)
	}
	x := Extract(ctx, raw)
	for _, a := range x.Attachments {
		meta.Attachment = append(meta.Attachment, a.Name)
	}
	now := s.now()
	e := store.ArchiveEntry{TenantID: p.TenantID, ID: store.NewMessageID(now), Kind: store.ArchiveKindMessage, QueueID: p.MessageID, Direction: p.Direction,
		At: now, Received: p.Created, Size: int64(len(raw)), SHA256: sha(raw), Chunks: chunkHashes(raw),
		FromHdr: strings.Join(x.From, ", "), ToHdr: strings.Join(x.To, ", "), CcHdr: strings.Join(x.Cc, ", "), Subject: x.Subject,
		HasAttachment: x.HasAttachment, Verdict: verdictOf(meta.Findings, meta.Rcpts)}
	meta.Size = e.Size
	it.doc = DocOf(e, x, meta)
	if settings.Mode == store.ArchiveRule {
		q, err := ParseQuery(settings.Rule)
		if err != nil || !Match(q, it.doc) {
			free, err := s.Store.DropArchivePending(ctx, p.ID, s.Node)
			if err == nil {
				s.afterAppend(ctx, p, store.ArchiveAppended{SpoolFree: free})
			}
			return settle(err)
		}
	}
	full, err := s.makeRoom(ctx, p.TenantID, settings, e.Size)
	if err != nil {
		return settle(err)
	}
	if full {
		return settle(s.gap(ctx, p, "archive capacity full"))
	}
	segs, blobs, err := s.storeMessage(ctx, p.TenantID, raw)
	if err != nil {
		return settle(err)
	}
	e.Segments = segs
	e.Meta = canonical(meta)
	e.Delivery = deliveryOf(meta.Rcpts)
	it.a = store.ArchiveAppend{TenantID: p.TenantID, PendingID: p.ID, Owner: s.Node, Entries: []store.ArchiveEntry{e}, Blobs: blobs}
	return it
}

// indexDocs indexes documents in one batch and records them as indexed;
// what fails stays for IndexPending.
func (s *Service) indexDocs(ctx context.Context, docs []Doc) {
	if len(docs) == 0 || s.Index == nil {
		return
	}
	if err := s.Index.Add(ctx, docs); err != nil {
		s.log().Warn("archive indexing", "err", err)
		return
	}
	byTenant := map[int64][]string{}
	for _, d := range docs {
		byTenant[d.TenantID] = append(byTenant[d.TenantID], d.ID)
	}
	for tid, ids := range byTenant {
		if err := s.Store.MarkArchiveIndexed(ctx, tid, ids); err != nil {
			s.log().Warn("archive indexing", "err", err)
		}
	}
}

func deliveryOf(rs []MetaRcpt) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, r.Addr+"="+r.State)
	}
	return strings.Join(parts, " ")
}

func (s *Service) readSpool(ctx context.Context, key string) ([]byte, error) {
	if s.Spool == nil {
		return nil, errors.New("no spool")
	}
	r, err := s.Spool.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxMessage+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxMessage {
		return nil, fmt.Errorf("message larger than %d bytes", maxMessage)
	}
	return b, nil
}

// IndexPending indexes log entries not indexed yet (after a crash, or
// when the index was behind) and returns how many.
func (s *Service) IndexPending(ctx context.Context) (int, error) {
	if s.Index == nil {
		return 0, nil
	}
	n := 0
	for {
		es, err := s.Store.UnindexedArchive(ctx, 256)
		if err != nil || len(es) == 0 {
			return n, err
		}
		byTenant := map[int64][]string{}
		var docs []Doc
		for _, e := range es {
			byTenant[e.TenantID] = append(byTenant[e.TenantID], e.ID)
			if e.Kind != store.ArchiveKindMessage || !e.Deleted.IsZero() {
				continue
			}
			d, err := s.docFor(ctx, e)
			if err != nil {
				// Indexed as far as the summary goes: the message stays
				// findable by its headers.
				s.log().Warn("archive index: body unreadable", "tenant", e.TenantID, "id", e.ID, "err", err)
			}
			docs = append(docs, d)
		}
		if len(docs) > 0 {
			if err := s.Index.Add(ctx, docs); err != nil {
				return n, err
			}
		}
		for tid, ids := range byTenant {
			if err := s.Store.MarkArchiveIndexed(ctx, tid, ids); err != nil {
				return n, err
			}
		}
		n += len(docs)
	}
}

// docFor rebuilds an entry's search document from its stored body.
func (s *Service) docFor(ctx context.Context, e store.ArchiveEntry) (Doc, error) {
	var meta Meta
	_ = jsonUnmarshal(e.Meta, &meta)
	raw, err := s.ReadMessage(ctx, e)
	if err != nil {
		return DocOf(e, Extracted{Subject: e.Subject, From: split(e.FromHdr), To: split(e.ToHdr), Cc: split(e.CcHdr)}, meta), err
	}
	return DocOf(e, Extract(ctx, raw), meta), nil
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}
