package imapd

import (
	"slices"
	"sort"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/mailgate/mailgate/internal/store"
)

// selected is a session's view of its selected folder: the messages the
// client knows, by sequence number (index + 1), and the mod-sequence up to
// which it has heard of changes. The view only changes when the client is
// told (EXISTS, EXPUNGE, FETCH), so the client's sequence numbers always
// match it.
type selected struct {
	folder   store.MailFolder
	readOnly bool
	msgs     []msg // ascending UID
	modseq   uint64
	// pending are UIDs expunged elsewhere while EXPUNGE could not be sent
	// (during FETCH, STORE, SEARCH); they are reported at the next chance.
	pending []uint32
	wake    <-chan struct{}
	stop    func()
	checked time.Time // last look at the store
	// saved is the result of the last SEARCH RETURN (SAVE), by UID
	// (RFC 5182), which "$" names.
	saved []uint32
}

// index returns the position of uid in the view, or -1.
func (v *selected) index(uid uint32) int {
	i := sort.Search(len(v.msgs), func(i int) bool { return v.msgs[i].UID >= uid })
	if i < len(v.msgs) && v.msgs[i].UID == uid {
		return i
	}
	return -1
}

func (v *selected) maxUID() uint32 {
	if len(v.msgs) == 0 {
		return 0
	}
	return v.msgs[len(v.msgs)-1].UID
}

// resolve turns a sequence or UID set into view indexes, ascending. "*"
// is the last message (RFC 9051 9: seq-number); ranges may be reversed.
func (v *selected) resolve(set imap.NumSet) []int {
	var out []int
	n := uint32(len(v.msgs))
	if imap.IsSearchRes(set) {
		for _, u := range v.saved {
			if i := v.index(u); i >= 0 {
				out = append(out, i)
			}
		}
		slices.Sort(out)
		return out
	}
	switch set := set.(type) {
	case imap.SeqSet:
		for _, r := range set {
			a, b := r.Start, r.Stop
			if a == 0 {
				a = n
			}
			if b == 0 {
				b = n
			}
			if a > b {
				a, b = b, a
			}
			for s := max(a, 1); s <= min(b, n); s++ {
				out = append(out, int(s-1))
			}
		}
	case imap.UIDSet:
		top := v.maxUID()
		for _, r := range set {
			a, b := uint32(r.Start), uint32(r.Stop)
			if a == 0 {
				a = top
			}
			if b == 0 {
				b = top
			}
			if a > b {
				a, b = b, a
			}
			i := sort.Search(len(v.msgs), func(i int) bool { return v.msgs[i].UID >= a })
			for ; i < len(v.msgs) && v.msgs[i].UID <= b; i++ {
				out = append(out, i)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (v *selected) uids(idx []int) []uint32 {
	out := make([]uint32, len(idx))
	for i, j := range idx {
		out[i] = v.msgs[j].UID
	}
	return out
}

// systemFlags are offered in FLAGS and PERMANENTFLAGS.
var systemFlags = []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft,
	imap.FlagForwarded, imap.FlagJunk, imap.FlagNotJunk, imap.FlagMDNSent, imap.FlagPhishing}

// Select opens a folder and reports its state.
func (se *session) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	se.unselect()
	ctx, cancel := se.ctx()
	defer cancel()
	f, err := se.folder(ctx, name)
	if err != nil {
		return nil, err
	}
	f, msgs, err := se.s.cache.view(ctx, se.st(), se.mb.TenantID, f.ID)
	if err != nil {
		return nil, se.imapErr(err, "select")
	}
	v := &selected{folder: f, readOnly: options != nil && options.ReadOnly, msgs: msgs, modseq: f.HighestModSeq, checked: se.s.d.Clock.Now()}
	if bus := se.svc().Bus; bus != nil {
		v.wake, v.stop = bus.Subscribe(f.ID)
	}
	se.sel = v
	flags := slices.Clone(systemFlags)
	seenKw := map[string]bool{}
	var first uint32
	for i, m := range msgs {
		if first == 0 && !m.HasFlag(`\Seen`) {
			first = uint32(i + 1)
		}
		for _, fl := range m.Flags {
			if fl[0] != '\\' && !seenKw[fl] && !slices.Contains(flags, imap.Flag(fl)) && len(seenKw) < 200 {
				seenKw[fl] = true
				flags = append(flags, imap.Flag(fl))
			}
		}
	}
	perm := append(slices.Clone(flags), imap.FlagWildcard)
	if v.readOnly {
		perm = nil
	}
	return &imap.SelectData{
		Flags: flags, PermanentFlags: perm, NumMessages: uint32(len(msgs)), UIDNext: imap.UID(f.UIDNext), UIDValidity: f.UIDValidity,
		FirstUnseenSeqNum: first, HighestModSeq: f.HighestModSeq,
	}, nil
}

// Unselect leaves the folder.
func (se *session) Unselect() error {
	se.unselect()
	return nil
}

func (se *session) unselect() {
	if se.sel != nil && se.sel.stop != nil {
		se.sel.stop()
	}
	se.sel = nil
}

// Poll tells the client what changed in its folder since it last heard:
// expunged messages (when allowed), new ones (EXISTS) and flag changes.
// It looks at the store when this node's bus says the folder changed, and
// otherwise at most once per poll interval (changes of other nodes).
func (se *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	v := se.sel
	if v == nil {
		return nil
	}
	look := false
	select {
	case <-v.wake:
		look = true
	default:
		look = se.s.d.Clock.Now().Sub(v.checked) >= se.s.d.Config.PollInterval.Duration
	}
	if !look && !(allowExpunge && len(v.pending) > 0) {
		return nil
	}
	return se.update(w, allowExpunge)
}

// update reads the changes after the view's mod-sequence and reports them.
func (se *session) update(w *imapserver.UpdateWriter, allowExpunge bool) error {
	v := se.sel
	ctx, cancel := se.ctx()
	defer cancel()
	v.checked = se.s.d.Clock.Now()
	ch, err := se.st().MailChangesSince(ctx, se.mb.TenantID, v.folder.ID, v.modseq)
	if err != nil {
		// The folder may be gone (deleted in another session); the
		// client finds out at its next command on it.
		se.log.Debug("imap poll", "err", err)
		return nil
	}
	v.pending = append(v.pending, ch.Expunged...)
	if allowExpunge && len(v.pending) > 0 {
		slices.Sort(v.pending)
		// Highest first, so each sequence number is right when sent.
		for i := len(v.pending) - 1; i >= 0; i-- {
			j := v.index(v.pending[i])
			if j < 0 {
				continue
			}
			v.msgs = slices.Delete(v.msgs, j, j+1)
			if err := w.WriteExpunge(uint32(j + 1)); err != nil {
				return err
			}
		}
		v.pending = nil
	}
	condstore := se.conn.CondStoreEnabled()
	var added bool
	var changed []msg
	for _, sm := range ch.Changed {
		m := toMsg(sm)
		if j := v.index(m.UID); j >= 0 {
			old := v.msgs[j]
			v.msgs[j] = m
			if !store.SameFlags(old.Flags, m.Flags) || condstore && old.ModSeq != m.ModSeq {
				changed = append(changed, m)
			}
		} else if m.UID > v.maxUID() {
			v.msgs = append(v.msgs, m)
			added = true
		}
	}
	if added {
		if err := w.WriteNumMessages(uint32(len(v.msgs))); err != nil {
			return err
		}
	}
	for _, m := range changed {
		j := v.index(m.UID)
		if j < 0 {
			continue
		}
		var ms uint64
		if condstore {
			ms = m.ModSeq
		}
		if err := w.WriteMessageFlagsModSeq(uint32(j+1), imap.UID(m.UID), imapFlags(m.Flags), ms); err != nil {
			return err
		}
	}
	if ch.Folder.HighestModSeq > v.modseq {
		v.modseq = ch.Folder.HighestModSeq
	}
	return nil
}

// Idle reports changes as they happen until the client says DONE: at
// once for changes made on this node, within the poll interval for
// changes made on others.
func (se *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	tick := time.NewTicker(se.s.d.Config.PollInterval.Duration)
	defer tick.Stop()
	for {
		var wake <-chan struct{}
		if se.sel != nil {
			wake = se.sel.wake
		}
		select {
		case <-stop:
			return nil
		case <-wake:
		case <-tick.C:
		}
		if se.sel == nil {
			continue
		}
		if err := se.update(w, true); err != nil {
			return err
		}
	}
}

func imapFlags(fs []string) []imap.Flag {
	out := make([]imap.Flag, len(fs))
	for i, f := range fs {
		out[i] = imap.Flag(f)
	}
	return out
}

func flagStrings(fs []imap.Flag) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		if f == flagRecent || f == imap.FlagWildcard {
			continue
		}
		out = append(out, string(f))
	}
	return out
}

// flagRecent is IMAP4rev1's \Recent, which this server never sets (RFC
// 9051 removed it).
const flagRecent = imap.Flag(`\Recent`)
