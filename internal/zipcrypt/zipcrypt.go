// Package zipcrypt puts the attachments of an outbound message into one
// password-protected ZIP (ZIP暗号化): the attachments are removed from the
// message, the ZIP is attached in their place and the body gets a notice
// (Japanese or English). The password is generated per message or is the
// sender's fixed one; PasswordMail builds the separate message that
// carries it, and SendPassword queues that message to be sent after a
// delay.
//
// Encryption is ZipCrypto by default, so that Windows Explorer opens the
// file without extra software, or WinZip AES-256 (AE-2). File names are
// written in code page 932 for Japanese Windows, with the exact name in an
// Info-ZIP Unicode Path field, or in UTF-8 with the language encoding flag.
//
// Rewrite streams: the message goes to a temporary file as it is read,
// each attachment is compressed into a scratch file and encrypted into the
// ZIP (also a temporary file), and the message is then rewritten by
// internal/rewrite. Memory stays bounded whatever the sizes; the
// temporary files are removed before Rewrite returns.
//
// What is an attachment is mailtext's rule (Node.IsAttachment): parts
// with Content-Disposition: attachment or a file name, and non-text parts;
// attached messages (message/rfc822, message/global) go into the ZIP
// whole, as .eml files. Only the first text/plain and text/html of the
// body stay outside. Rewrite fails closed: a message it cannot read whole
// (nesting, part, header or size bounds) is an error, never a message with
// attachments left in clear.
package zipcrypt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"path"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/rewrite"
	"github.com/mailgate/mailgate/internal/spill"
)

// Who receives the password mail.
const (
	PasswordToSender     = "sender"     // the sender, who passes it on
	PasswordToRecipients = "recipients" // each recipient of the ZIP
)

// Options say how one message is encrypted.
type Options struct {
	Cipher Cipher       // "" is ZipCrypto
	Names  NameEncoding // "" is NamesCP932
	// Password is used as it is when set (a user's fixed password);
	// otherwise one of PasswordLength characters from PasswordChars is
	// generated (0 and "" take the defaults).
	Password       string
	PasswordLength int
	PasswordChars  string
	// PasswordTo is PasswordToSender (default) or PasswordToRecipients;
	// it chooses the notice's wording.
	PasswordTo string
	// Lang is the notice's language, "ja" (default) or "en".
	Lang string
	// ZipName is the ZIP's file name; "" names it after the first
	// attachment (見積書.pdf → 見積書.zip), or "attachments.zip" when that
	// name is unusable.
	ZipName string
	// TempDir holds the temporary files of intermediate copies larger
	// than tempMemory ("" is os.TempDir()).
	TempDir string
	// Now is the entries' modification time (zero: time.Now()), written
	// as local time of its location, as Windows shows it.
	Now time.Time
	// Limits bounds the reading of the message; zero fields take
	// mailtext.DefaultLimits. MaxDecodedBytes bounds the attachments'
	// total size.
	Limits mailtext.Limits
}

// Result says what Rewrite did.
type Result struct {
	// Zipped is false when the message had no attachment: it was copied
	// unchanged and nothing else is set.
	Zipped   bool
	Password string
	ZipName  string
	Files    []string // entry names, in order
	ZipSize  int64    // bytes of the ZIP file
}

// ErrUnreadable is returned (wrapped) for a message Rewrite cannot read
// whole: attachments could be missed, so nothing is written that could be
// sent.
var ErrUnreadable = errors.New("zipcrypt: message cannot be read whole")

func (o Options) validate() error {
	switch o.Cipher {
	case "", ZipCrypto, AES256:
	default:
		return fmt.Errorf("zipcrypt: unknown cipher %q", o.Cipher)
	}
	switch o.Names {
	case "", NamesCP932, NamesUTF8:
	default:
		return fmt.Errorf("zipcrypt: unknown name encoding %q", o.Names)
	}
	switch o.PasswordTo {
	case "", PasswordToSender, PasswordToRecipients:
	default:
		return fmt.Errorf("zipcrypt: unknown password recipient %q", o.PasswordTo)
	}
	if o.Password != "" {
		return CheckFixedPassword(o.Password)
	}
	return nil
}

// Rewrite reads a message from r and writes it to w with its attachments
// replaced by one encrypted ZIP and a notice in the body. A message
// without attachments is copied unchanged (Result.Zipped false). On error
// w may have received part of a message, which the caller must discard;
// ErrUnreadable means the message cannot be encrypted safely.
func Rewrite(ctx context.Context, w io.Writer, r io.Reader, o Options) (Result, error) {
	if err := o.validate(); err != nil {
		return Result{}, err
	}
	if o.Cipher == "" {
		o.Cipher = ZipCrypto
	}
	if o.Names == "" {
		o.Names = NamesCP932
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	pw := o.Password
	if pw == "" {
		length := o.PasswordLength
		if length == 0 {
			length = DefaultPasswordLength
		}
		var err error
		if pw, err = NewPassword(length, o.PasswordChars); err != nil {
			return Result{}, fmt.Errorf("zipcrypt: %w", err)
		}
	}
	tmp := newTempFiles(o.TempDir)
	defer tmp.remove()

	// Pass 1: keep the message and encrypt each attachment as it comes.
	a := newArchive(tmp.zip, tmp.scratch, o.Cipher, o.Names, pw, o.Now)
	var files []string
	lim := o.Limits.WithDefaults()
	found, err := mailtext.TakeAttachments(ctx, r, tmp.msg, lim, func(n *mailtext.Node, i int, body io.Reader) error {
		name := cleanName(n.Filename, fallbackName(i, n.MediaType, n.Message))
		if n.Message && !strings.EqualFold(path.Ext(name), ".eml") {
			name += ".eml"
		}
		got, err := a.add(name, body)
		if err != nil {
			return err
		}
		files = append(files, got)
		return nil
	})
	if err != nil {
		return Result{}, fmt.Errorf("zipcrypt: %w", err)
	}
	if found.Problem != "" {
		return Result{}, fmt.Errorf("%w (%s): not encrypted", ErrUnreadable, found.Problem)
	}
	if len(found.Paths) == 0 {
		if _, err := io.Copy(w, tmp.msg.Reader()); err != nil {
			return Result{}, fmt.Errorf("zipcrypt: copy message: %w", err)
		}
		return Result{}, nil
	}
	if err := a.close(); err != nil {
		return Result{}, fmt.Errorf("zipcrypt: %w", err)
	}
	res := Result{Zipped: true, Password: pw, Files: files, ZipSize: tmp.zip.Size(), ZipName: zipName(o.ZipName, files)}

	// Pass 2: the attachments out, the ZIP in, the notice on top.
	notice := BodyNotice(o.Lang, res.ZipName, o.PasswordTo)
	spec := rewrite.Spec{
		DropParts:   found.Paths,
		DropNotice:  notice,
		Banner:      notice,
		AppendParts: []rewrite.Part{AttachmentPart("application/zip", res.ZipName, tmp.zip.Reader())},
		Limits:      lim,
	}
	if err := rewrite.Apply(ctx, w, tmp.msg.Reader(), spec); err != nil {
		return Result{}, fmt.Errorf("zipcrypt: %w", err)
	}
	return res, nil
}

// zipName picks the ZIP's file name.
func zipName(name string, files []string) string {
	if name != "" {
		n := cleanName(name, "attachments.zip")
		if !strings.EqualFold(path.Ext(n), ".zip") {
			n += ".zip"
		}
		return n
	}
	if len(files) > 0 {
		base := strings.TrimSuffix(files[0], path.Ext(files[0]))
		if base != "" && !strings.HasPrefix(files[0], "attachment-") && !strings.HasPrefix(files[0], "message-") {
			return base + ".zip"
		}
	}
	return "attachments.zip"
}

// AttachmentPart is an attachment for rewrite.Spec.AppendParts: the file
// name in an RFC 2231 filename parameter (what current clients read) and
// as an RFC 2047 encoded-word in the type's name parameter (what older
// Japanese clients and Outlook read).
func AttachmentPart(mediaType, filename string, body io.Reader) rewrite.Part {
	ct := mime.FormatMediaType(mediaType, map[string]string{"name": mime.BEncoding.Encode("UTF-8", filename)})
	cd := mime.FormatMediaType("attachment", map[string]string{"filename": filename})
	if ct == "" {
		ct = mediaType
	}
	if cd == "" {
		cd = "attachment"
	}
	return rewrite.Part{ContentType: ct, Disposition: cd, Body: body}
}

// tempMemory is how much of each of Rewrite's intermediate copies is
// held in memory; the rest goes to a temporary file.
const tempMemory = 256 << 10

// tempFiles are Rewrite's intermediate copies: the message without its
// attachments, one compressed entry, the ZIP.
type tempFiles struct{ msg, scratch, zip *spill.Buffer }

func newTempFiles(dir string) *tempFiles {
	return &tempFiles{spill.New(dir, tempMemory), spill.New(dir, tempMemory), spill.New(dir, tempMemory)}
}

func (t *tempFiles) remove() {
	t.msg.Close()
	t.scratch.Close()
	t.zip.Close()
}
