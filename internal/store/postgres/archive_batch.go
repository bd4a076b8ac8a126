package postgres

import (
	"fmt"
	"slices"
	"strings"

	"github.com/mailgate/mailgate/internal/archive/tlog"
	"github.com/mailgate/mailgate/internal/store"
)

// appendBatch is AppendArchiveBatch inside a transaction, with a few
// statements for the whole batch rather than several per append: the
// result is the one of appendOne for each append in order.
func appendBatch(x tx, as []store.ArchiveAppend) ([]store.ArchiveAppended, error) {
	out := make([]store.ArchiveAppended, len(as))
	live := make([]bool, len(as)) // not lost: its pending row was ours, or it has none

	// The pending rows, deleted with their leases; a row no longer leased
	// to its owner is lost.
	var pids []int64
	var owners []string
	for i, a := range as {
		live[i] = a.PendingID == 0
		if a.PendingID != 0 {
			pids, owners = append(pids, a.PendingID), append(owners, a.Owner)
		}
	}
	type pendingRow struct{ qid, key string }
	dropped := map[int64]pendingRow{}
	if len(pids) > 0 {
		rows, err := x.Query(`DELETE FROM archive_pending p USING unnest($1::bigint[], $2::text[]) AS u(id, owner)
			WHERE p.id = u.id AND p.lease_owner = u.owner RETURNING p.id, p.message_id, p.blob_key`, pids, owners)
		if err != nil {
			return nil, fmt.Errorf("archive pending: %w", err)
		}
		for rows.Next() {
			var id int64
			var r pendingRow
			if err := rows.Scan(&id, &r.qid, &r.key); err != nil {
				rows.Close()
				return nil, fmt.Errorf("archive pending: %w", err)
			}
			dropped[id] = r
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("archive pending: %w", err)
		}
	}
	// lastOfKey: the spool blob is free (if at all) for the last append
	// of the batch that names it, the others' rows being gone only after.
	lastOfKey := map[string]int{}
	var keys, qids []string
	var qtids []int64
	for i, a := range as {
		if a.PendingID == 0 {
			continue
		}
		r, ok := dropped[a.PendingID]
		if !ok {
			out[i].Lost = true
			continue
		}
		delete(dropped, a.PendingID) // an ID twice: the second is lost
		live[i] = true
		if _, ok := lastOfKey[r.key]; !ok {
			keys = append(keys, r.key)
		}
		lastOfKey[r.key] = i
		qtids, qids = append(qtids, a.TenantID), append(qids, r.qid)
		out[i].Entries = []store.ArchiveEntry{{QueueID: r.qid}} // the queue ID, until the appends below
	}
	if len(keys) > 0 {
		rows, err := x.Query(`SELECT k FROM unnest($1::text[]) AS k
			WHERE NOT EXISTS (SELECT 1 FROM messages WHERE blob_key = k AND NOT done AND corrupt = '')
			AND NOT EXISTS (SELECT 1 FROM archive_pending WHERE blob_key = k)`, keys)
		if err != nil {
			return nil, fmt.Errorf("archive pending: %w", err)
		}
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return nil, fmt.Errorf("archive pending: %w", err)
			}
			out[lastOfKey[k]].SpoolFree = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("archive pending: %w", err)
		}
	}
	// The queue messages archived already (by an earlier attempt).
	archived := map[[2]string]bool{}
	if len(qids) > 0 {
		rows, err := x.Query(`SELECT e.tenant_id, e.queue_id FROM archive_entries e JOIN unnest($1::bigint[], $2::text[]) AS u(t, q)
			ON e.tenant_id = u.t AND e.queue_id = u.q WHERE e.queue_id <> ''`, qtids, qids) // the predicate of the unique index on queue IDs
		if err != nil {
			return nil, fmt.Errorf("archive entries: %w", err)
		}
		for rows.Next() {
			var tid int64
			var q string
			if err := rows.Scan(&tid, &q); err != nil {
				rows.Close()
				return nil, fmt.Errorf("archive entries: %w", err)
			}
			archived[[2]string{fmt.Sprint(tid), q}] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("archive entries: %w", err)
		}
	}

	// The logs of the tenants appended to, locked in tenant order (as
	// every transaction that appends locks them).
	var tids []int64
	for i, a := range as {
		if live[i] && !slices.Contains(tids, a.TenantID) {
			tids = append(tids, a.TenantID)
		}
	}
	slices.Sort(tids)
	type logState struct {
		size int64
		fr   [][]byte
	}
	logs := map[int64]*logState{}
	if len(tids) > 0 {
		if _, err := x.Exec(`INSERT INTO archive_log(tenant_id) SELECT t FROM unnest($1::bigint[]) AS t ORDER BY t ON CONFLICT DO NOTHING`, tids); err != nil {
			return nil, fmt.Errorf("archive log: %w", err)
		}
		rows, err := x.Query(`SELECT tenant_id, size, frontier FROM archive_log WHERE tenant_id = ANY($1) ORDER BY tenant_id FOR UPDATE`, tids)
		if err != nil {
			return nil, fmt.Errorf("archive log: %w", err)
		}
		for rows.Next() {
			var tid int64
			var fb []byte
			l := &logState{}
			if err := rows.Scan(&tid, &l.size, &fb); err != nil {
				rows.Close()
				return nil, fmt.Errorf("archive log: %w", err)
			}
			l.fr = unpackHashes(fb)
			logs[tid] = l
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("archive log: %w", err)
		}
	}

	// The segments stored meanwhile (by another node) keep their keys.
	type blobID struct {
		tid int64
		sha string
	}
	var btids []int64
	var bshas []string
	for i, a := range as {
		if !live[i] {
			continue
		}
		for _, b := range a.Blobs {
			btids, bshas = append(btids, a.TenantID), append(bshas, b.SHA256)
		}
	}
	stored := map[blobID]string{}
	if len(bshas) > 0 {
		rows, err := x.Query(`SELECT b.tenant_id, b.sha256, b.blob_key FROM archive_blobs b JOIN unnest($1::bigint[], $2::text[]) AS u(t, s)
			ON b.tenant_id = u.t AND b.sha256 = u.s`, btids, bshas)
		if err != nil {
			return nil, fmt.Errorf("archive blob: %w", err)
		}
		for rows.Next() {
			var id blobID
			var key string
			if err := rows.Scan(&id.tid, &id.sha, &key); err != nil {
				rows.Close()
				return nil, fmt.Errorf("archive blob: %w", err)
			}
			stored[id] = key
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("archive blob: %w", err)
		}
	}

	// Each append in order, in memory: the duplicates, the new segments,
	// the references, the entries with their seqs and leaves, the trees.
	var nb struct {
		tids, sizes []int64
		shas, keys  []string
	}
	refs := map[blobID]int64{}
	var refOrder []blobID
	var es []store.ArchiveEntry
	var cps []store.ArchiveCheckpoint
	for i, a := range as {
		if !live[i] {
			continue
		}
		if a.PendingID != 0 {
			qid := out[i].Entries[0].QueueID
			out[i].Entries = nil
			if qid != "" && archived[[2]string{fmt.Sprint(a.TenantID), qid}] {
				out[i].Duplicate = true
				for _, b := range a.Blobs {
					out[i].Unused = append(out[i].Unused, b.Key)
				}
				continue
			}
		}
		for _, b := range a.Blobs {
			id := blobID{a.TenantID, b.SHA256}
			key, ok := stored[id]
			switch {
			case !ok:
				stored[id] = b.Key
				nb.tids, nb.shas, nb.keys, nb.sizes = append(nb.tids, a.TenantID), append(nb.shas, b.SHA256), append(nb.keys, b.Key), append(nb.sizes, b.Size)
			case key != b.Key:
				out[i].Unused = append(out[i].Unused, b.Key)
			}
		}
		l := logs[a.TenantID]
		for _, e := range a.Entries {
			e.TenantID, e.Seq = a.TenantID, l.size
			e.Leaf = tlog.EntryLeaf(e.TenantID, e.Seq, e.ID, e.Kind, e.SHA256, e.Meta)
			for _, s := range e.Segments {
				id := blobID{a.TenantID, s}
				if _, ok := refs[id]; !ok {
					refOrder = append(refOrder, id)
				}
				refs[id]++
			}
			if e.QueueID != "" {
				archived[[2]string{fmt.Sprint(a.TenantID), e.QueueID}] = true
			}
			l.fr = tlog.Append(l.fr, l.size, e.Leaf)
			l.size++
			es = append(es, e)
			out[i].Entries = append(out[i].Entries, e)
		}
		out[i].Size, out[i].Root = l.size, tlog.RootOf(l.fr)
		if a.Checkpoint != nil {
			c, err := a.Checkpoint(out[i].Size, out[i].Root)
			if err != nil {
				return nil, err
			}
			c.TenantID = a.TenantID
			cps = append(cps, c)
		}
	}
	if len(nb.shas) > 0 {
		if _, err := x.Exec(`INSERT INTO archive_blobs(tenant_id, sha256, blob_key, size, refs)
			SELECT t, s, k, z, 0 FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[]) AS u(t, s, k, z)`,
			nb.tids, nb.shas, nb.keys, nb.sizes); err != nil {
			return nil, fmt.Errorf("archive blob: %w", err)
		}
	}
	if len(refOrder) > 0 {
		rt, rs, rn := make([]int64, len(refOrder)), make([]string, len(refOrder)), make([]int64, len(refOrder))
		for k, id := range refOrder {
			rt[k], rs[k], rn[k] = id.tid, id.sha, refs[id]
		}
		rows, err := x.Query(`UPDATE archive_blobs b SET refs = b.refs + u.n FROM unnest($1::bigint[], $2::text[], $3::bigint[]) AS u(t, s, n)
			WHERE b.tenant_id = u.t AND b.sha256 = u.s RETURNING b.tenant_id, b.sha256`, rt, rs, rn)
		if err != nil {
			return nil, fmt.Errorf("archive blob: %w", err)
		}
		for rows.Next() {
			var id blobID
			if err := rows.Scan(&id.tid, &id.sha); err != nil {
				rows.Close()
				return nil, fmt.Errorf("archive blob: %w", err)
			}
			delete(refs, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("archive blob: %w", err)
		}
		for _, e := range es {
			for _, s := range e.Segments {
				if _, missing := refs[blobID{e.TenantID, s}]; missing {
					return nil, fmt.Errorf("archive blob %s of %s: %w", s, e.ID, store.ErrNotFound)
				}
			}
		}
	}
	if len(es) > 0 {
		if err := insertEntries(x, es); err != nil {
			return nil, err
		}
	}
	for _, tid := range tids {
		l := logs[tid]
		if _, err := x.Exec(`UPDATE archive_log SET size = $1, frontier = $2 WHERE tenant_id = $3`, l.size, packHashes(l.fr), tid); err != nil {
			return nil, fmt.Errorf("archive log: %w", err)
		}
	}
	for _, c := range cps {
		if _, err := x.Exec(`INSERT INTO archive_checkpoints(tenant_id, size, root, at_us, text, signature, key_id) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			c.TenantID, c.Size, c.Root, us(c.At), c.Text, c.Signature, c.KeyID); err != nil {
			return nil, fmt.Errorf("archive checkpoint: %w", err)
		}
	}
	return out, nil
}

// insertEntries inserts log entries with one statement, a column each as
// an array.
func insertEntries(x tx, es []store.ArchiveEntry) error {
	n := len(es)
	var (
		tids, seqs, ats, recs, sizes, dels                                                  = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		ids, kinds, qids, dirs, shas, segs, metas, froms, tos, ccs, subjects, verdicts, dlv = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		imps, atts                                                                          = make([]bool, n), make([]bool, n)
		leaves, chunks                                                                      = make([][]byte, n), make([][]byte, n)
	)
	for k, e := range es {
		tids[k], seqs[k], ids[k], kinds[k], qids[k], dirs[k], imps[k] = e.TenantID, e.Seq, e.ID, e.Kind, e.QueueID, string(e.Direction), e.Imported
		ats[k], recs[k], sizes[k], shas[k], segs[k], metas[k] = us(e.At), us(e.Received), e.Size, e.SHA256, strings.Join(e.Segments, " "), e.Meta
		leaves[k], chunks[k], froms[k], tos[k], ccs[k], subjects[k] = e.Leaf, nonNil(e.Chunks), e.FromHdr, e.ToHdr, e.CcHdr, e.Subject
		atts[k], verdicts[k], dels[k], dlv[k] = e.HasAttachment, e.Verdict, us(e.Deleted), e.Delivery
	}
	_, err := x.Exec(`INSERT INTO archive_entries(`+entryCols+`)
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::boolean[], $8::bigint[], $9::bigint[],
			$10::bigint[], $11::text[], $12::text[], $13::text[], $14::bytea[], $15::bytea[], $16::text[], $17::text[], $18::text[], $19::text[],
			$20::boolean[], $21::text[], $22::bigint[], $23::text[])`,
		tids, seqs, ids, kinds, qids, dirs, imps, ats, recs, sizes, shas, segs, metas, leaves, chunks, froms, tos, ccs, subjects, atts, verdicts, dels, dlv)
	if err != nil {
		if isUnique(err) {
			return fmt.Errorf("archive entry: %w", store.ErrExists)
		}
		return fmt.Errorf("archive entry: %w", err)
	}
	return nil
}
