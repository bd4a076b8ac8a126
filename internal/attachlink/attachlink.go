// Package attachlink turns the attachments of an outbound message into a
// download link (添付ファイルリンク): each attachment is stored in the blob
// store, removed from the message, and the body gets a notice (Japanese
// or English) with the link, its expiry and the file list. The link is a
// signed token (package signedlink, as the quarantine digest's links) for
// one stored Link record, which carries the download limit, the count and
// the revocation; Handler serves the download page.
//
// What is an attachment is mailtext's rule (Node.IsAttachment), attached
// messages included, as for the password ZIP. Rewrite fails closed: a
// message it cannot read whole is an error, never a message with
// attachments left in it.
package attachlink

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/rewrite"
	"github.com/mailgate/mailgate/internal/signedlink"
)

// File is one stored attachment.
type File struct {
	Name        string // decoded file name as the sender gave it
	ContentType string
	Size        int64
	BlobKey     string
}

// Link is the record behind a download link.
type Link struct {
	ID           string
	TenantID     int64
	Sender       string
	Rcpts        []string
	Subject      string
	Files        []File
	Created      time.Time
	Expires      time.Time
	MaxDownloads int // 0: no limit
	Downloads    int
	Revoked      bool
}

// Download is one entry of a link's download log.
type Download struct {
	At   time.Time
	File string
	From string // the client's address
}

// Errors of the record store and the download page.
var (
	ErrNotFound = errors.New("attachlink: no such link")
	ErrRevoked  = errors.New("attachlink: link revoked")
	ErrLimit    = errors.New("attachlink: download limit reached")
	ErrExpired  = errors.New("attachlink: link expired")
)

// Records keeps Link records. Implementations are safe for concurrent
// use; Count is atomic, so a limit is never exceeded by racing downloads.
// StoreRecords keeps them in mailgate's store.
type Records interface {
	Create(ctx context.Context, l Link) error
	Get(ctx context.Context, tenantID int64, id string) (Link, error)
	// Count records one download of file if the link is still usable at
	// d.At (not revoked, not expired, under its limit) and returns the
	// updated link; otherwise ErrRevoked, ErrExpired or ErrLimit.
	Count(ctx context.Context, tenantID int64, id string, d Download) (Link, error)
	Revoke(ctx context.Context, tenantID int64, id string) error
	// Downloads is the link's download log, oldest first.
	Downloads(ctx context.Context, tenantID int64, id string) ([]Download, error)
	// Expired lists up to limit links that expired before t.
	Expired(ctx context.Context, t time.Time, limit int) ([]Link, error)
	Delete(ctx context.Context, tenantID int64, id string) error
}

// Options say how one message is rewritten.
type Options struct {
	TenantID int64
	Sender   string
	Rcpts    []string
	Subject  string
	// BaseURL is the download page's address; the token is added as the
	// "t" query parameter.
	BaseURL string
	// Key is the link signing key (signedlink.LoadKey).
	Key          []byte
	Expiry       time.Duration // 0: DefaultExpiry
	MaxDownloads int           // 0: no limit
	Lang         string        // "ja" (default) or "en"
	Now          time.Time     // zero: time.Now()
	TempDir      string
	Limits       mailtext.Limits
}

// DefaultExpiry is how long a link works when nothing is configured.
const DefaultExpiry = 7 * 24 * time.Hour

// Result says what Rewrite did.
type Result struct {
	Linked bool // false: no attachment, the message was copied unchanged
	Link   Link
	URL    string
}

// ErrUnreadable is returned (wrapped) for a message Rewrite cannot read
// whole.
var ErrUnreadable = errors.New("attachlink: message cannot be read whole")

// Rewrite reads a message from r, stores its attachments and writes it to
// w with the attachments replaced by the link notice. The record is
// created only after every blob is durable; on any error the blobs
// written are deleted and w may hold part of a message, which the caller
// discards.
func Rewrite(ctx context.Context, w io.Writer, r io.Reader, blobs blob.Store, recs Records, o Options) (res Result, err error) {
	if len(o.Key) == 0 || o.BaseURL == "" {
		return Result{}, errors.New("attachlink: no signing key or base URL")
	}
	if _, err := url.Parse(o.BaseURL); err != nil {
		return Result{}, fmt.Errorf("attachlink: base URL: %w", err)
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Expiry <= 0 {
		o.Expiry = DefaultExpiry
	}
	id, err := newID()
	if err != nil {
		return Result{}, err
	}
	tmp, err := os.CreateTemp(o.TempDir, "attachlink-*")
	if err != nil {
		return Result{}, fmt.Errorf("attachlink: temporary file: %w", err)
	}
	defer func() { tmp.Close(); os.Remove(tmp.Name()) }()

	// Each attachment is stored as it comes.
	var files []File
	defer func() {
		if err != nil {
			for _, f := range files {
				blobs.Delete(context.WithoutCancel(ctx), f.BlobKey)
			}
		}
	}()
	lim := o.Limits.WithDefaults()
	found, err := mailtext.TakeAttachments(ctx, r, tmp, lim, func(n *mailtext.Node, i int, body io.Reader) error {
		name, ctype := n.Filename, n.MediaType
		if n.Message {
			ctype = "message/rfc822"
			if name == "" {
				name = fmt.Sprintf("message-%d.eml", i)
			}
		}
		if name == "" {
			name = fmt.Sprintf("attachment-%d", i)
		}
		key, size, err := blob.Put(ctx, blobs, fmt.Sprintf("link-%s-%d", id, i), body)
		if err != nil {
			return fmt.Errorf("store attachment %d: %w", i, err)
		}
		files = append(files, File{Name: name, ContentType: ctype, Size: size, BlobKey: key})
		return nil
	})
	if err != nil {
		return Result{}, fmt.Errorf("attachlink: %w", err)
	}
	if found.Problem != "" {
		return Result{}, fmt.Errorf("%w (%s): not linked", ErrUnreadable, found.Problem)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return Result{}, fmt.Errorf("attachlink: %w", err)
	}
	if len(found.Paths) == 0 {
		if _, err := io.Copy(w, tmp); err != nil {
			return Result{}, fmt.Errorf("attachlink: copy message: %w", err)
		}
		return Result{}, nil
	}
	l := Link{ID: id, TenantID: o.TenantID, Sender: o.Sender, Rcpts: o.Rcpts, Subject: o.Subject, Files: files,
		Created: o.Now, Expires: o.Now.Add(o.Expiry).Truncate(time.Second), MaxDownloads: o.MaxDownloads}
	if err := recs.Create(ctx, l); err != nil {
		return Result{}, fmt.Errorf("attachlink: record: %w", err)
	}
	u := LinkURL(o.BaseURL, o.Key, l)
	notice := Notice(o.Lang, u, l)
	spec := rewrite.Spec{DropParts: found.Paths, DropNotice: notice, Banner: notice, Limits: lim}
	if err := rewrite.Apply(ctx, w, tmp, spec); err != nil {
		recs.Delete(context.WithoutCancel(ctx), l.TenantID, l.ID)
		return Result{}, fmt.Errorf("attachlink: %w", err)
	}
	return Result{Linked: true, Link: l, URL: u}, nil
}

// LinkURL is the download page's address for l.
func LinkURL(base string, key []byte, l Link) string {
	tok := signedlink.Sign(key, signedlink.Link{Action: signedlink.Download, TenantID: l.TenantID, ItemID: l.ID, Expires: l.Expires})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "t=" + url.QueryEscape(tok)
}

func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("attachlink: random: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// Sweep deletes the expired links and their stored files. It returns how
// many links it removed; a blob that cannot be deleted keeps its record
// for the next sweep.
func Sweep(ctx context.Context, blobs blob.Store, recs Records, now time.Time) (int, error) {
	exp, err := recs.Expired(ctx, now, 1000)
	if err != nil {
		return 0, fmt.Errorf("attachlink: expired links: %w", err)
	}
	n := 0
	for _, l := range exp {
		ok := true
		for _, f := range l.Files {
			if err := blobs.Delete(ctx, f.BlobKey); err != nil {
				ok = false
			}
		}
		if !ok {
			continue
		}
		if err := recs.Delete(ctx, l.TenantID, l.ID); err != nil {
			return n, fmt.Errorf("attachlink: delete link %s: %w", l.ID, err)
		}
		n++
	}
	return n, nil
}
