package imapd

import (
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/mailgate/mailgate/internal/mailbox"
	"github.com/mailgate/mailgate/internal/store"
)

// Every command here answers OK only after its change is durable: the
// mailbox service commits the blob and the row before it returns.

var errReadOnly = &imap.Error{Type: imap.StatusResponseTypeNo, Code: "READ-ONLY", Text: "Mailbox was opened with EXAMINE"}

// Store changes flags. With UNCHANGEDSINCE, messages changed after it are
// left alone and named in OK [MODIFIED ...] (RFC 7162 3.1.3).
func (se *session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) error {
	v := se.sel
	if v.readOnly {
		return errReadOnly
	}
	ctx, cancel := se.ctx()
	defer cancel()
	idx := v.resolve(numSet)
	if len(idx) == 0 {
		return nil
	}
	op := map[imap.StoreFlagsOp]store.FlagOp{imap.StoreFlagsSet: store.FlagsSet, imap.StoreFlagsAdd: store.FlagsAdd, imap.StoreFlagsDel: store.FlagsRemove}[flags.Op]
	var since uint64
	if options != nil {
		since = options.UnchangedSince
	}
	changed, modified, err := se.svc().StoreFlags(ctx, v.folder, v.uids(idx), op, flagStrings(flags.Flags), since)
	if err != nil {
		return se.imapErr(err, "store")
	}
	se.applyChanged(changed)
	condstore := se.conn.CondStoreEnabled()
	isChanged := map[uint32]bool{}
	for _, c := range changed {
		isChanged[c.UID] = true
	}
	_, byUID := numSet.(imap.UIDSet)
	for _, i := range idx {
		m := v.msgs[i]
		if slices.Contains(modified, m.UID) {
			continue
		}
		if flags.Silent && !(condstore && isChanged[m.UID]) {
			continue
		}
		rw := w.CreateMessage(uint32(i + 1))
		if byUID {
			rw.WriteUID(imap.UID(m.UID))
		}
		if !flags.Silent {
			rw.WriteFlags(imapFlags(m.Flags))
		}
		if condstore {
			rw.WriteModSeq(m.ModSeq)
		}
		if err := rw.Close(); err != nil {
			return err
		}
	}
	if len(modified) > 0 {
		var set imap.NumSet
		if byUID {
			var us imap.UIDSet
			for _, u := range modified {
				us.AddNum(imap.UID(u))
			}
			set = us
		} else {
			var ss imap.SeqSet
			for _, u := range modified {
				if j := v.index(u); j >= 0 {
					ss.AddNum(uint32(j + 1))
				}
			}
			set = ss
		}
		return &imap.Error{Type: imap.StatusResponseTypeOK, Code: imap.ResponseCode("MODIFIED " + set.String()), Text: "Some messages were changed meanwhile"}
	}
	return nil
}

// Expunge removes messages flagged \Deleted (among uids for UID
// EXPUNGE) and reports each, highest sequence number first.
func (se *session) Expunge(w *imapserver.ExpungeWriter, uids *imap.UIDSet) error {
	v := se.sel
	if v.readOnly {
		// Nothing goes from a folder opened with EXAMINE; CLOSE after
		// EXAMINE comes here too and must succeed (RFC 9051 6.4.1).
		return nil
	}
	ctx, cancel := se.ctx()
	defer cancel()
	var which []uint32
	if uids != nil {
		which = v.uids(v.resolve(*uids))
		if len(which) == 0 {
			return nil
		}
	}
	gone, err := se.svc().Expunge(ctx, v.folder, which)
	if err != nil {
		return se.imapErr(err, "expunge")
	}
	slices.Sort(gone)
	for i := len(gone) - 1; i >= 0; i-- {
		j := v.index(gone[i])
		if j < 0 {
			continue
		}
		v.msgs = slices.Delete(v.msgs, j, j+1)
		if err := w.WriteExpunge(uint32(j + 1)); err != nil {
			return err
		}
	}
	return nil
}

// target finds the folder a COPY, MOVE or APPEND goes to; NO [TRYCREATE]
// when there is none (RFC 9051 6.4.7).
func (se *session) target(name string) (store.MailFolder, error) {
	ctx, cancel := se.ctx()
	defer cancel()
	f, err := se.svc().Folder(ctx, se.mb, name)
	if errors.Is(err, store.ErrNotFound) {
		return f, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: "No such mailbox"}
	}
	return f, se.imapErr(err, "target folder")
}

func uidSet(us []uint32) imap.UIDSet {
	var s imap.UIDSet
	for _, u := range us {
		s.AddNum(imap.UID(u))
	}
	return s
}

// Copy copies messages (UIDPLUS: COPYUID). The copies must fit in the
// quota: NO [OVERQUOTA] otherwise, and nothing is copied.
func (se *session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	v := se.sel
	to, err := se.target(dest)
	if err != nil {
		return nil, err
	}
	idx := v.resolve(numSet)
	if len(idx) == 0 {
		return nil, nil
	}
	ctx, cancel := se.ctx()
	defer cancel()
	src, dst, err := se.svc().Copy(ctx, v.folder, v.uids(idx), to)
	if err != nil {
		return nil, se.imapErr(err, "copy")
	}
	if len(dst) == 0 {
		return nil, nil
	}
	return &imap.CopyData{UIDValidity: to.UIDValidity, SourceUIDs: uidSet(src), DestUIDs: uidSet(dst)}, nil
}

// Move moves messages (RFC 6851): COPYUID, then an EXPUNGE for each.
func (se *session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	v := se.sel
	if v.readOnly {
		return errReadOnly
	}
	to, err := se.target(dest)
	if err != nil {
		return err
	}
	idx := v.resolve(numSet)
	if len(idx) == 0 {
		return nil
	}
	if to.ID == v.folder.ID {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Source and destination are the same mailbox"}
	}
	ctx, cancel := se.ctx()
	defer cancel()
	src, dst, err := se.svc().Move(ctx, v.folder, v.uids(idx), to)
	if err != nil {
		return se.imapErr(err, "move")
	}
	if len(dst) > 0 {
		if err := w.WriteCopyData(&imap.CopyData{UIDValidity: to.UIDValidity, SourceUIDs: uidSet(src), DestUIDs: uidSet(dst)}); err != nil {
			return err
		}
	}
	slices.Sort(src)
	for i := len(src) - 1; i >= 0; i-- {
		j := v.index(src[i])
		if j < 0 {
			continue
		}
		v.msgs = slices.Delete(v.msgs, j, j+1)
		if err := w.WriteExpunge(uint32(j + 1)); err != nil {
			return err
		}
	}
	return nil
}

// CheckAppend refuses an APPEND before its literal is read: no such
// folder (TRYCREATE), larger than the limit (TOOBIG) or than what is left
// of the quota (OVERQUOTA).
func (se *session) CheckAppend(name string, size int64) error {
	if _, err := se.target(name); err != nil {
		return err
	}
	if size > se.s.d.MaxMessageBytes {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTooBig, Text: fmt.Sprintf("Messages are limited to %d bytes", se.s.d.MaxMessageBytes)}
	}
	if size <= 0 {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Empty message"}
	}
	ctx, cancel := se.ctx()
	defer cancel()
	mb, err := se.mailboxNow(ctx)
	if err != nil {
		return se.imapErr(err, "append check")
	}
	if q := mb.QuotaBytes(); q > 0 && mb.UsedBytes+size > q {
		return se.imapErr(store.ErrMailboxFull, "append check")
	}
	return nil
}

// Append stores an uploaded message (UIDPLUS: APPENDUID). The literal is
// written to a blob as it arrives and committed before the row.
func (se *session) Append(name string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	f, err := se.target(name)
	if err != nil {
		return nil, err
	}
	ctx, cancel := se.ctx()
	defer cancel()
	var flags []string
	if options != nil {
		flags = flagStrings(options.Flags)
	}
	var date = options.Time
	// A literal cut short (the client went away) must not be stored as a
	// shorter message: the literal's size is what the client promised.
	m, err := se.svc().Append(ctx, se.mb, f, &exactReader{r: r, left: r.Size()}, flags, date)
	if err != nil {
		if errors.Is(err, mailbox.ErrEmptyMessage) {
			return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Empty message"}
		}
		return nil, se.imapErr(err, "append")
	}
	return &imap.AppendData{UID: imap.UID(m.UID), UIDValidity: f.UIDValidity}, nil
}

// exactReader reads a literal and fails if it ends before its size.
type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		return n, io.ErrUnexpectedEOF
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}
