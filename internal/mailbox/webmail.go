package mailbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/mailgate/mailgate/internal/store"
)

// What the webmail needs beyond IMAP's operations: pages of a folder,
// conversations, drafts that replace their previous version, deleting to
// the trash, emptying Trash and Junk, and spam feedback when mail is moved
// into or out of Junk. Every change goes through the same store calls and
// Bus notices as IMAP's, so IMAP sessions see the webmail's changes (and
// the reverse) by their mod-sequences.

// maxLearnPerMove bounds the messages one move teaches the spam model:
// moving a whole folder of mail to Junk must not hold the mover for
// minutes.
const maxLearnPerMove = 50

// maxLearnBytes bounds the bytes of one message read for learning.
const maxLearnBytes = 8 << 20

// ErrNotTrash refuses emptying a folder that is neither Trash nor Junk.
var ErrNotTrash = errors.New("only Trash and Junk can be emptied")

var msgID = regexp.MustCompile(`<[^<>\s]{1,250}>`)

// Parents lists the Message-IDs a message answers, nearest first: those of
// In-Reply-To, then those of References from its end (RFC 5322 3.6.4),
// each once, at most 20.
func Parents(inReplyTo, references []string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(id string) {
		if !seen[id] && len(out) < 20 {
			seen[id] = true
			out = append(out, id)
		}
	}
	for _, v := range inReplyTo {
		for _, id := range msgID.FindAllString(v, 5) {
			add(id)
		}
	}
	for _, v := range references {
		ids := msgID.FindAllString(v, -1)
		for i := len(ids) - 1; i >= 0; i-- {
			add(ids[i])
		}
	}
	return out
}

// FolderByID returns the folder of mb with that ID; a folder of any other
// mailbox is not found.
func (s *Service) FolderByID(ctx context.Context, mb store.Mailbox, id int64) (store.MailFolder, error) {
	f, err := s.Store.MailFolder(ctx, mb.TenantID, id)
	if err != nil {
		return f, err
	}
	if f.MailboxID != mb.ID {
		return store.MailFolder{}, fmt.Errorf("folder %d: %w", id, store.ErrNotFound)
	}
	return f, nil
}

// SpecialFolder returns mb's folder with special use use (`\Sent`,
// `\Drafts`, `\Trash`, `\Junk`, `\Archive`), making it under its default
// name when the mailbox has none (a user deleted it over IMAP).
func (s *Service) SpecialFolder(ctx context.Context, mb store.Mailbox, use string) (store.MailFolder, error) {
	fs, err := s.Store.MailFolders(ctx, mb.TenantID, mb.ID)
	if err != nil {
		return store.MailFolder{}, err
	}
	for _, f := range fs {
		if f.SpecialUse == use {
			return f, nil
		}
	}
	for _, d := range DefaultFolders {
		if d.SpecialUse != use {
			continue
		}
		for _, f := range fs {
			if f.Name == d.Name {
				return f, nil // the name is taken by a plain folder: use it
			}
		}
		f, err := s.CreateFolder(ctx, mb, d.Name, use)
		if errors.Is(err, store.ErrExists) {
			return s.Folder(ctx, mb, d.Name)
		}
		return f, err
	}
	return store.MailFolder{}, fmt.Errorf("special use %q: %w", use, store.ErrNotFound)
}

// Folders lists mb's folders with their counts (messages, unseen, size).
func (s *Service) Folders(ctx context.Context, mb store.Mailbox) ([]store.MailFolder, map[int64]store.MailFolderStatus, error) {
	fs, err := s.Store.MailFolders(ctx, mb.TenantID, mb.ID)
	if err != nil {
		return nil, nil, err
	}
	counts, err := s.Store.MailFolderCounts(ctx, mb.TenantID, mb.ID)
	return fs, counts, err
}

// List returns one page of mb's messages (see store.MailQuery); the text
// filters are normalised here as the stored texts are.
func (s *Service) List(ctx context.Context, mb store.Mailbox, q store.MailQuery) ([]store.MailListed, bool, error) {
	q.TenantID, q.MailboxID = mb.TenantID, mb.ID
	for _, f := range []*string{&q.From, &q.To, &q.Subject, &q.Body, &q.Text} {
		*f = Fold(strings.TrimSpace(*f))
	}
	return s.Store.ListMail(ctx, q)
}

// Message returns one message of a folder by UID (store.ErrNotFound when
// there is none).
func (s *Service) Message(ctx context.Context, f store.MailFolder, uid uint32) (store.MailMessage, error) {
	ms, err := s.Store.MailByUID(ctx, f.TenantID, f.ID, []uint32{uid})
	if err != nil {
		return store.MailMessage{}, err
	}
	if len(ms) == 0 {
		return store.MailMessage{}, fmt.Errorf("message %d: %w", uid, store.ErrNotFound)
	}
	return ms[0], nil
}

// Thread lists the messages of mb's conversation threadID, oldest first.
func (s *Service) Thread(ctx context.Context, mb store.Mailbox, threadID int64) ([]store.MailMessage, error) {
	return s.Store.MailThread(ctx, mb.TenantID, mb.ID, threadID, 200)
}

// SaveDraft stores body in mb's Drafts (flags \Draft and \Seen) and then
// removes the draft it replaces (replace: its UID in Drafts; 0 for none).
// The new version is durable before the old one goes, so a crash between
// the two leaves both, never neither.
func (s *Service) SaveDraft(ctx context.Context, mb store.Mailbox, body io.Reader, replace uint32) (store.MailMessage, error) {
	drafts, err := s.SpecialFolder(ctx, mb, `\Drafts`)
	if err != nil {
		return store.MailMessage{}, err
	}
	m, err := s.Append(ctx, mb, drafts, body, []string{`\Draft`, `\Seen`}, s.now())
	if err != nil {
		return m, err
	}
	if replace != 0 {
		if err := s.purge(ctx, drafts, []uint32{replace}); err != nil {
			return m, fmt.Errorf("remove the previous draft: %w", err)
		}
	}
	return m, nil
}

// DiscardDraft removes a draft from mb's Drafts (after it was sent, or
// when the user throws it away).
func (s *Service) DiscardDraft(ctx context.Context, mb store.Mailbox, uid uint32) error {
	drafts, err := s.SpecialFolder(ctx, mb, `\Drafts`)
	if err != nil {
		return err
	}
	return s.purge(ctx, drafts, []uint32{uid})
}

// AppendSent stores a message the user sent in mb's Sent, read.
func (s *Service) AppendSent(ctx context.Context, mb store.Mailbox, body io.Reader) (store.MailMessage, error) {
	sent, err := s.SpecialFolder(ctx, mb, `\Sent`)
	if err != nil {
		return store.MailMessage{}, err
	}
	return s.Append(ctx, mb, sent, body, []string{`\Seen`}, s.now())
}

// purge removes messages of f for good: flagged \Deleted, then expunged
// (only those, whatever else is flagged).
func (s *Service) purge(ctx context.Context, f store.MailFolder, uids []uint32) error {
	if len(uids) == 0 {
		return nil
	}
	if _, _, err := s.StoreFlags(ctx, f, uids, store.FlagsAdd, []string{`\Deleted`}, 0); err != nil {
		return err
	}
	_, err := s.Expunge(ctx, f, uids)
	return err
}

// Remove deletes messages the way a mail reader does: into Trash, or for
// good when they already are in Trash or Junk.
func (s *Service) Remove(ctx context.Context, mb store.Mailbox, f store.MailFolder, uids []uint32) error {
	if f.SpecialUse == `\Trash` || f.SpecialUse == `\Junk` {
		return s.purge(ctx, f, uids)
	}
	trash, err := s.SpecialFolder(ctx, mb, `\Trash`)
	if err != nil {
		return err
	}
	_, _, err = s.Move(ctx, f, uids, trash)
	return err
}

// Empty deletes every message of a Trash or Junk folder and returns how
// many (ErrNotTrash for another folder).
func (s *Service) Empty(ctx context.Context, f store.MailFolder) (int, error) {
	if f.SpecialUse != `\Trash` && f.SpecialUse != `\Junk` {
		return 0, ErrNotTrash
	}
	msgs, err := s.Store.FolderMail(ctx, f.TenantID, f.ID)
	if err != nil {
		return 0, err
	}
	uids := make([]uint32, len(msgs))
	for i, m := range msgs {
		uids[i] = m.UID
	}
	return len(uids), s.purge(ctx, f, uids)
}

// learnMoved trains the tenant's spam model with messages moved into Junk
// (spam) or out of Junk into anything but Trash (not spam), at most
// maxLearnPerMove of them. Failures are logged: the move stands.
func (s *Service) learnMoved(ctx context.Context, from, to store.MailFolder, dst []uint32) {
	if s.Learn == nil || len(dst) == 0 {
		return
	}
	var spam bool
	switch {
	case to.SpecialUse == `\Junk` && from.SpecialUse != `\Junk`:
		spam = true
	case from.SpecialUse == `\Junk` && to.SpecialUse != `\Junk` && to.SpecialUse != `\Trash`:
	default:
		return
	}
	if len(dst) > maxLearnPerMove {
		s.log().Info("spam feedback: only the first messages of a large move are learned", "moved", len(dst), "learned", maxLearnPerMove)
		dst = dst[:maxLearnPerMove]
	}
	msgs, err := s.Store.MailByUID(ctx, to.TenantID, to.ID, dst)
	if err != nil {
		s.log().Warn("spam feedback not learned", "err", err)
		return
	}
	for _, m := range msgs {
		raw, err := s.readBody(ctx, m)
		if err == nil {
			err = s.Learn(ctx, m.TenantID, raw, spam)
		}
		if err != nil {
			s.log().Warn("spam feedback not learned", "uid", m.UID, "spam", spam, "err", err)
		}
	}
}

// readBody reads a message's body, at most maxLearnBytes of it.
func (s *Service) readBody(ctx context.Context, m store.MailMessage) ([]byte, error) {
	rc, err := s.OpenBody(ctx, m)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, maxLearnBytes))
}
