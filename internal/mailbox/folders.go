package mailbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/mailgate/mailgate/internal/store"
)

// Delim separates the levels of folder names.
const Delim = '/'

// ErrHasChildren is returned when a folder with folders below it is
// deleted (RFC 9051 7.1: HASCHILDREN).
var ErrHasChildren = errors.New("folder has child folders")

// ErrBadName is returned for a folder name that cannot be used.
var ErrBadName = errors.New("invalid folder name")

// ValidFolderName reports whether name can be a folder: valid UTF-8,
// no control characters, no empty level, at most 255 bytes and 16 levels.
func ValidFolderName(name string) bool {
	if name == "" || len(name) > 255 || !utf8.ValidString(name) || strings.Count(name, "/") > 15 {
		return false
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r == '*' || r == '%' {
			return false
		}
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || part != strings.TrimSpace(part) {
			return false
		}
	}
	return true
}

// CanonicalName spells INBOX, as a name or as its first level, in upper
// case (RFC 9051 5.1: INBOX is case-insensitive); other names are kept.
func CanonicalName(name string) string {
	first, rest, found := strings.Cut(name, "/")
	if strings.EqualFold(first, "INBOX") {
		if found {
			return "INBOX/" + rest
		}
		return "INBOX"
	}
	return name
}

// CreateFolder makes a folder and any missing folder above it.
func (s *Service) CreateFolder(ctx context.Context, mb store.Mailbox, name, specialUse string) (store.MailFolder, error) {
	name = CanonicalName(strings.TrimSuffix(name, "/"))
	if !ValidFolderName(name) || strings.EqualFold(name, "INBOX") {
		if strings.EqualFold(name, "INBOX") {
			return store.MailFolder{}, fmt.Errorf("folder INBOX: %w", store.ErrExists)
		}
		return store.MailFolder{}, fmt.Errorf("%q: %w", name, ErrBadName)
	}
	parts := strings.Split(name, "/")
	for i := 1; i < len(parts); i++ {
		parent := strings.Join(parts[:i], "/")
		if _, err := s.Store.CreateMailFolder(ctx, store.MailFolder{TenantID: mb.TenantID, MailboxID: mb.ID, Name: parent}); err != nil && !errors.Is(err, store.ErrExists) {
			return store.MailFolder{}, err
		}
	}
	return s.Store.CreateMailFolder(ctx, store.MailFolder{TenantID: mb.TenantID, MailboxID: mb.ID, Name: name, SpecialUse: specialUse, Created: s.now()})
}

// DeleteFolder removes a folder and its messages; not INBOX, not a folder
// with folders below it.
func (s *Service) DeleteFolder(ctx context.Context, mb store.Mailbox, name string) error {
	name = CanonicalName(name)
	if name == "INBOX" {
		return fmt.Errorf("INBOX cannot be deleted: %w", ErrBadName)
	}
	fs, err := s.Store.MailFolders(ctx, mb.TenantID, mb.ID)
	if err != nil {
		return err
	}
	var f *store.MailFolder
	for i := range fs {
		if fs[i].Name == name {
			f = &fs[i]
		} else if strings.HasPrefix(fs[i].Name, name+"/") {
			return fmt.Errorf("%q: %w", name, ErrHasChildren)
		}
	}
	if f == nil {
		return fmt.Errorf("folder %q: %w", name, store.ErrNotFound)
	}
	free, err := s.Store.DeleteMailFolder(ctx, mb.TenantID, f.ID)
	s.deleteBlobs(ctx, free)
	s.notify(f.ID)
	return err
}

// RenameFolder renames a folder with the folders below it. Renaming INBOX
// moves its messages to a new folder and leaves INBOX empty (RFC 9051
// 6.3.6).
func (s *Service) RenameFolder(ctx context.Context, mb store.Mailbox, from, to string) error {
	from, to = CanonicalName(from), CanonicalName(strings.TrimSuffix(to, "/"))
	if !ValidFolderName(to) || strings.EqualFold(to, "INBOX") || strings.HasPrefix(to, from+"/") {
		return fmt.Errorf("%q: %w", to, ErrBadName)
	}
	if !strings.EqualFold(from, "INBOX") {
		return s.Store.RenameMailFolder(ctx, mb.TenantID, mb.ID, from, to)
	}
	inbox, err := s.Folder(ctx, mb, "INBOX")
	if err != nil {
		return err
	}
	dst, err := s.CreateFolder(ctx, mb, to, "")
	if err != nil {
		return err
	}
	msgs, err := s.Store.FolderMail(ctx, mb.TenantID, inbox.ID)
	if err != nil {
		return err
	}
	var uids []uint32
	for _, m := range msgs {
		uids = append(uids, m.UID)
	}
	if len(uids) > 0 {
		if _, _, err := s.Store.MoveMail(ctx, mb.TenantID, inbox.ID, uids, dst.ID); err != nil {
			return err
		}
	}
	s.notify(inbox.ID, dst.ID)
	return nil
}

// StoreFlags changes flags (see store.MailboxStore.StoreMailFlags).
func (s *Service) StoreFlags(ctx context.Context, f store.MailFolder, uids []uint32, op store.FlagOp, flags []string, unchangedSince uint64) ([]store.MailMessage, []uint32, error) {
	changed, modified, err := s.Store.StoreMailFlags(ctx, f.TenantID, f.ID, uids, op, flags, unchangedSince)
	if len(changed) > 0 {
		s.notify(f.ID)
	}
	return changed, modified, err
}

// Expunge removes the folder's messages flagged \Deleted (among uids when
// not nil).
func (s *Service) Expunge(ctx context.Context, f store.MailFolder, uids []uint32) ([]uint32, error) {
	gone, free, err := s.Store.ExpungeMail(ctx, f.TenantID, f.ID, uids)
	s.deleteBlobs(ctx, free)
	if len(gone) > 0 {
		s.notify(f.ID)
	}
	return gone, err
}

// Copy copies messages to another folder of the mailbox; the copies must
// fit in the quota.
func (s *Service) Copy(ctx context.Context, from store.MailFolder, uids []uint32, to store.MailFolder) ([]uint32, []uint32, error) {
	src, dst, err := s.Store.CopyMail(ctx, from.TenantID, from.ID, uids, to.ID, true)
	if len(dst) > 0 {
		s.notify(to.ID)
	}
	return src, dst, err
}

// Move moves messages to another folder of the mailbox. Into or out of
// Junk, the moved messages then train the spam model (see Service.Learn).
func (s *Service) Move(ctx context.Context, from store.MailFolder, uids []uint32, to store.MailFolder) ([]uint32, []uint32, error) {
	src, dst, err := s.Store.MoveMail(ctx, from.TenantID, from.ID, uids, to.ID)
	if len(dst) > 0 {
		s.notify(from.ID, to.ID)
	}
	if err == nil {
		s.learnMoved(ctx, from, to, dst)
	}
	return src, dst, err
}
