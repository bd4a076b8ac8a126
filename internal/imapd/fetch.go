package imapd

import (
	"bufio"
	"bytes"
	"context"
	"io"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	_ "github.com/emersion/go-message/charset" // ENVELOPE names in any charset
	"github.com/emersion/go-message/textproto"

	"github.com/mailgate/mailgate/internal/store"
)

// headerOnly reports whether a section needs only the top-level header,
// which the store keeps, so the body is not read.
func headerOnly(s *imap.FetchItemBodySection) bool {
	return len(s.Part) == 0 && s.Specifier == imap.PartSpecifierHeader
}

// wholeMessage reports whether a section is the whole message (BODY[]),
// which is streamed from the blob.
func wholeMessage(s *imap.FetchItemBodySection) bool {
	return len(s.Part) == 0 && s.Specifier == imap.PartSpecifierNone && len(s.HeaderFields) == 0 && len(s.HeaderFieldsNot) == 0
}

// Fetch answers FETCH. Metadata comes from the view; ENVELOPE and header
// sections from the kept header (one store read for the whole set);
// bodies from the blobs, one message at a time, the whole message
// streamed. A body section without PEEK sets \Seen first, and the FLAGS
// then sent show it.
func (se *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	v := se.sel
	ctx, cancel := se.ctx()
	defer cancel()
	idx := v.resolve(numSet)
	if options.ChangedSince > 0 {
		kept := idx[:0]
		for _, i := range idx {
			if v.msgs[i].ModSeq > options.ChangedSince {
				kept = append(kept, i)
			}
		}
		idx = kept
	}
	if len(idx) == 0 {
		return nil
	}
	needHeader, needBody, setsSeen := options.Envelope, options.BodyStructure != nil, false
	for _, s := range options.BodySection {
		if headerOnly(s) {
			needHeader = true
		} else {
			needBody = true
		}
		setsSeen = setsSeen || !s.Peek
	}
	for _, s := range options.BinarySection {
		needBody = true
		setsSeen = setsSeen || !s.Peek
	}
	needBody = needBody || len(options.BinarySectionSize) > 0
	flags := options.Flags
	if setsSeen && !v.readOnly {
		var unseen []uint32
		for _, i := range idx {
			if !v.msgs[i].HasFlag(`\Seen`) {
				unseen = append(unseen, v.msgs[i].UID)
			}
		}
		if len(unseen) > 0 {
			changed, _, err := se.svc().StoreFlags(ctx, v.folder, unseen, store.FlagsAdd, []string{`\Seen`}, 0)
			if err != nil {
				return se.imapErr(err, "fetch: set \\Seen")
			}
			se.applyChanged(changed)
			flags = true // RFC 9051 6.4.5: the changed flags are returned
		}
	}
	var headers map[string][]byte
	subjects := map[uint32]string{}
	if needHeader {
		keys := make([]string, len(idx))
		for j, i := range idx {
			keys[j] = v.msgs[i].BlobKey
		}
		var err error
		if headers, err = se.st().MailHeaders(ctx, se.mb.TenantID, keys); err != nil {
			return se.imapErr(err, "fetch headers")
		}
		if options.Envelope {
			full, err := se.st().MailByUID(ctx, se.mb.TenantID, v.folder.ID, v.uids(idx))
			if err != nil {
				return se.imapErr(err, "fetch envelope")
			}
			for _, m := range full {
				subjects[m.UID] = m.Subject
			}
		}
	}
	condstore := se.conn.CondStoreEnabled()
	for _, i := range idx {
		m := v.msgs[i]
		if err := se.fetchOne(ctx, w, uint32(i+1), m, options, flags, condstore, headers[m.BlobKey], subjects[m.UID], needBody, needHeader); err != nil {
			return err
		}
	}
	return nil
}

// applyChanged puts changed flags into the view.
func (se *session) applyChanged(changed []store.MailMessage) {
	v := se.sel
	for _, c := range changed {
		if j := v.index(c.UID); j >= 0 {
			// Flags are replaced, never changed in place: the view
			// cache shares them.
			m := v.msgs[j]
			m.Flags, m.ModSeq = c.Flags, c.ModSeq
			v.msgs[j] = m
		}
	}
}

// fetchOne writes one message's FETCH response.
func (se *session) fetchOne(ctx context.Context, w *imapserver.FetchWriter, seq uint32, m msg, o *imap.FetchOptions,
	flags, condstore bool, hdr []byte, subject string, needBody, needHeader bool) error {
	var body []byte // read once, when a section needs more than the header
	stream := len(o.BodySection) == 1 && wholeMessage(o.BodySection[0]) && o.BodySection[0].Partial == nil &&
		o.BodyStructure == nil && len(o.BinarySection) == 0 && len(o.BinarySectionSize) == 0 && !o.Envelope
	var streamR io.ReadCloser
	if stream {
		r, err := se.svc().Blobs.Open(ctx, m.BlobKey)
		if err != nil {
			se.log.Debug("imap fetch: body gone", "uid", m.UID, "err", err)
			return nil
		}
		defer r.Close()
		streamR = r
	}
	if needBody && !stream || needHeader && hdr == nil {
		r, err := se.svc().Blobs.Open(ctx, m.BlobKey)
		if err != nil {
			// Expunged by another session meanwhile: nothing to send.
			se.log.Debug("imap fetch: body gone", "uid", m.UID, "err", err)
			return nil
		}
		body, err = io.ReadAll(io.LimitReader(r, se.s.d.MaxMessageBytes+1<<20))
		r.Close()
		if err != nil {
			return se.imapErr(err, "fetch body")
		}
		if hdr == nil {
			hdr = headerOf(body)
		}
	}
	rw := w.CreateMessage(seq)
	if o.UID {
		rw.WriteUID(imap.UID(m.UID))
	}
	if flags {
		rw.WriteFlags(imapFlags(m.Flags))
	}
	if o.InternalDate {
		rw.WriteInternalDate(m.InternalDate)
	}
	if o.RFC822Size {
		rw.WriteRFC822Size(m.Size)
	}
	if o.ModSeq || condstore {
		rw.WriteModSeq(m.ModSeq)
	}
	if o.Envelope {
		h, _ := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(hdr)))
		env := imapserver.ExtractEnvelope(h)
		if subject != "" {
			env.Subject = subject // decoded leniently (CP50220 ISO-2022-JP and the like)
		}
		rw.WriteEnvelope(env)
	}
	if o.BodyStructure != nil {
		rw.WriteBodyStructure(imapserver.ExtractBodyStructure(bytes.NewReader(body)))
	}
	for _, s := range o.BodySection {
		var b []byte
		switch {
		case stream:
			if err := se.streamBody(rw, s, m, streamR); err != nil {
				rw.Close()
				return err
			}
			continue
		case headerOnly(s):
			b = imapserver.ExtractBodySection(bytes.NewReader(hdr), s)
		default:
			b = imapserver.ExtractBodySection(bytes.NewReader(body), s)
		}
		wc := rw.WriteBodySection(s, int64(len(b)))
		wc.Write(b)
		if err := wc.Close(); err != nil {
			rw.Close()
			return err
		}
	}
	for _, s := range o.BinarySection {
		b := imapserver.ExtractBinarySection(bytes.NewReader(body), s)
		wc := rw.WriteBinarySection(s, int64(len(b)))
		wc.Write(b)
		if err := wc.Close(); err != nil {
			rw.Close()
			return err
		}
	}
	for _, s := range o.BinarySectionSize {
		rw.WriteBinarySectionSize(s, imapserver.ExtractBinarySectionSize(bytes.NewReader(body), s))
	}
	return rw.Close()
}

// streamBody copies the whole message from its blob into the response.
// The literal's size is the stored size; a blob that turns out shorter
// (damaged) is padded so the protocol stays in step, and logged.
func (se *session) streamBody(rw *imapserver.FetchResponseWriter, s *imap.FetchItemBodySection, m msg, r io.Reader) error {
	wc := rw.WriteBodySection(s, m.Size)
	n, err := io.Copy(wc, io.LimitReader(r, m.Size))
	if n < m.Size {
		se.log.Error("imap fetch: message body shorter than recorded", "uid", m.UID, "key", m.BlobKey, "have", n, "want", m.Size, "err", err)
		if _, err := io.Copy(wc, io.LimitReader(zeros{}, m.Size-n)); err != nil {
			return err
		}
	}
	return wc.Close()
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// headerOf is the header section of a message, blank line included.
func headerOf(b []byte) []byte {
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		return b[:i+4]
	}
	if i := bytes.Index(b, []byte("\n\n")); i >= 0 {
		return b[:i+2]
	}
	return b
}
