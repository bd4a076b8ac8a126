package archive

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/archive/tlog"
	"github.com/mailgate/mailgate/internal/store"
)

// ErrImported is returned for a re-send or forward of an imported message:
// mailgate did not receive it, so it does not send it on its own behalf.
var ErrImported = errors.New("archive: imported messages cannot be re-sent or forwarded")

// normalizeCRLF turns bare LF line ends into CRLF (mail as SMTP carries it).
func normalizeCRLF(b []byte) []byte {
	if !bytes.Contains(b, []byte("\n")) {
		return b
	}
	var out bytes.Buffer
	out.Grow(len(b) + len(b)/40)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out.WriteByte('\r')
		}
		out.WriteByte(c)
	}
	return out.Bytes()
}

// Import archives one message that mailgate did not receive itself (an
// .eml file, or one message of an mbox): marked imported, with who
// imported it from which file; its date is its Date header (else now).
func (s *Service) Import(ctx context.Context, tid int64, by, source string, raw []byte, maxSize int64) (store.ArchiveEntry, error) {
	if maxSize > 0 && int64(len(raw)) > maxSize {
		return store.ArchiveEntry{}, fmt.Errorf("%s: %d bytes is over the message size limit (%d)", source, len(raw), maxSize)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return store.ArchiveEntry{}, fmt.Errorf("%s: empty message", source)
	}
	raw = normalizeCRLF(raw)
	now := s.now()
	x := Extract(ctx, raw)
	received := x.Date
	if received.IsZero() {
		received = now
	}
	meta := Meta{Direction: "", Received: received.UTC().Format(time.RFC3339Nano), Size: int64(len(raw)), MessageID: x.MessageID,
		Imported: &ImportInfo{By: by, Source: source, At: now.UTC().Format(time.RFC3339)}}
	for _, a := range x.Attachments {
		meta.Attachment = append(meta.Attachment, a.Name)
	}
	st, err := s.Store.ArchiveSettings(ctx, tid)
	if err != nil {
		return store.ArchiveEntry{}, err
	}
	full, err := s.makeRoom(ctx, tid, st, int64(len(raw)))
	if err != nil {
		return store.ArchiveEntry{}, err
	}
	if full {
		return store.ArchiveEntry{}, fmt.Errorf("%s: archive capacity full", source)
	}
	segs, blobs, err := s.storeMessage(ctx, tid, raw)
	if err != nil {
		return store.ArchiveEntry{}, err
	}
	e := store.ArchiveEntry{ID: store.NewMessageID(now), Kind: store.ArchiveKindMessage, Imported: true, At: now, Received: received,
		Size: int64(len(raw)), SHA256: sha(raw), Segments: segs, Meta: canonical(meta), Chunks: chunkHashes(raw),
		FromHdr: strings.Join(x.From, ", "), ToHdr: strings.Join(x.To, ", "), CcHdr: strings.Join(x.Cc, ", "), Subject: x.Subject,
		HasAttachment: x.HasAttachment, Verdict: "imported"}
	a := store.ArchiveAppend{TenantID: tid, Entries: []store.ArchiveEntry{e}, Blobs: blobs}
	res, err := s.Store.AppendArchive(ctx, a)
	if err != nil {
		return store.ArchiveEntry{}, err
	}
	s.afterAppend(ctx, store.ArchivePending{}, res)
	s.noteTouched(tid)
	e = res.Entries[0]
	if s.Index != nil {
		if err := s.Index.Add(ctx, []Doc{DocOf(e, x, meta)}); err == nil {
			_ = s.Store.MarkArchiveIndexed(ctx, tid, []string{e.ID})
		}
	}
	return e, nil
}

// ImportResult counts an import run.
type ImportResult struct {
	Imported int      `json:"imported"`
	Failed   []string `json:"failed,omitempty"`
}

// ImportMbox archives every message of an mbox file (the format
// Thunderbird and most mail programs export: each message starts with a
// "From " line after an empty line; ">From " lines are unescaped, as in
// mboxrd). Each message is imported on its own; failures are listed.
func (s *Service) ImportMbox(ctx context.Context, tid int64, by, source string, r io.Reader, maxSize int64) (ImportResult, error) {
	var res ImportResult
	br := bufio.NewReaderSize(r, 64<<10)
	var cur bytes.Buffer
	n := 0
	started, prevBlank := false, true
	flush := func() error {
		if !started {
			return nil
		}
		n++
		msg := bytes.TrimRight(cur.Bytes(), "\r\n")
		msg = append(msg, '\n')
		cur.Reset()
		if _, err := s.Import(ctx, tid, by, fmt.Sprintf("%s#%d", source, n), append([]byte(nil), msg...), maxSize); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			res.Failed = append(res.Failed, err.Error())
			return nil
		}
		res.Imported++
		return nil
	}
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			switch {
			case bytes.HasPrefix(line, []byte("From ")) && prevBlank:
				if err := flush(); err != nil {
					return res, err
				}
				started = true
			case started:
				if t := bytes.TrimLeft(line, ">"); len(t) < len(line) && bytes.HasPrefix(t, []byte("From ")) {
					line = line[1:]
				}
				if maxSize > 0 && int64(cur.Len()+len(line)) > maxSize+1<<20 {
					// Keep reading to the next message, but not this one's rest.
					continue
				}
				cur.Write(line)
			}
			prevBlank = len(bytes.TrimRight(line, "\r\n")) == 0
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return res, fmt.Errorf("read %s: %w", source, err)
		}
	}
	if err := flush(); err != nil {
		return res, err
	}
	if n == 0 {
		return res, fmt.Errorf("%s: not an mbox file (no \"From \" line)", source)
	}
	return res, nil
}

// MaxExport bounds the messages of one export.
const MaxExport = 10000

// ExportItem is one message of an export with its proof.
type ExportItem struct {
	ID       string `json:"id"`
	Seq      int64  `json:"seq"`
	File     string `json:"file,omitempty"`
	SHA256   string `json:"sha256"`
	Size     int64  `json:"size"`
	From     string `json:"from"`
	To       string `json:"to"`
	Subject  string `json:"subject"`
	Received string `json:"received"`
	Imported bool   `json:"imported,omitempty"`
	Proof    string `json:"proof,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Manifest describes a ZIP export.
type Manifest struct {
	Format    string       `json:"format"`
	Tenant    int64        `json:"tenant"`
	Query     string       `json:"query"`
	By        string       `json:"by"`
	At        string       `json:"at"`
	PublicKey string       `json:"public_key"`
	Messages  []ExportItem `json:"messages"`
	HowTo     string       `json:"how_to_check"`
}

// Export writes entries as an mbox (format "mbox") or a ZIP of .eml files
// with manifest.json and one inclusion proof per message ("zip").
func (s *Service) Export(ctx context.Context, tid int64, es []store.ArchiveEntry, format, query, by string, w io.Writer) error {
	if len(es) > MaxExport {
		return fmt.Errorf("export of %d messages: at most %d at once", len(es), MaxExport)
	}
	switch format {
	case "mbox":
		bw := bufio.NewWriter(w)
		for _, e := range es {
			raw, err := s.ReadMessage(ctx, e)
			if err != nil {
				continue
			}
			writeMbox(bw, e, raw)
		}
		return bw.Flush()
	case "zip":
	default:
		return fmt.Errorf("export format %q: use mbox or zip", format)
	}
	zw := zip.NewWriter(w)
	m := Manifest{Format: "mailgate-archive-export/1", Tenant: tid, Query: query, By: by, At: s.now().UTC().Format(time.RFC3339),
		PublicKey: tlog.EncodeKey(s.PublicKey()),
		HowTo: "For each message: python3 archive-check.py proofs/ID.json messages/ID.eml key.txt (docs/archive.md); " +
			"get the public key from the console, not from this file."}
	// Every proof against one checkpoint, signed after the newest entry.
	if _, err := s.Checkpoint(ctx, tid); err != nil {
		return err
	}
	for _, e := range es {
		it := ExportItem{ID: e.ID, Seq: e.Seq, SHA256: e.SHA256, Size: e.Size, From: e.FromHdr, To: e.ToHdr, Subject: e.Subject,
			Received: e.Received.UTC().Format(time.RFC3339), Imported: e.Imported}
		raw, err := s.ReadMessage(ctx, e)
		if err != nil {
			it.Error = err.Error()
			m.Messages = append(m.Messages, it)
			continue
		}
		it.File = "messages/" + e.ID + ".eml"
		f, err := zw.Create(it.File)
		if err != nil {
			return err
		}
		if _, err := f.Write(raw); err != nil {
			return err
		}
		if p, err := s.Proof(ctx, tid, e.ID); err == nil {
			it.Proof = "proofs/" + e.ID + ".json"
			f, err := zw.Create(it.Proof)
			if err != nil {
				return err
			}
			b, _ := json.MarshalIndent(p, "", "  ")
			f.Write(b)
		} else {
			it.Error = "no proof: " + err.Error()
		}
		m.Messages = append(m.Messages, it)
	}
	f, err := zw.Create("manifest.json")
	if err != nil {
		return err
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	if _, err := f.Write(b); err != nil {
		return err
	}
	return zw.Close()
}

// writeMbox writes one message in mboxrd form with LF line ends.
func writeMbox(w *bufio.Writer, e store.ArchiveEntry, raw []byte) {
	var meta Meta
	_ = jsonUnmarshal(e.Meta, &meta)
	from := meta.MailFrom
	if from == "" {
		from = "MAILER-DAEMON"
	}
	fmt.Fprintf(w, "From %s %s\n", from, e.Received.UTC().Format("Mon Jan _2 15:04:05 2006"))
	for _, line := range bytes.SplitAfter(raw, []byte("\n")) {
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		if t := bytes.TrimLeft(line, ">"); bytes.HasPrefix(t, []byte("From ")) {
			w.WriteByte('>')
		}
		w.Write(line)
		w.WriteByte('\n')
	}
	w.WriteByte('\n')
}

// CheckResend refuses re-sending or forwarding what mailgate may not send.
func (s *Service) CheckResend(e store.ArchiveEntry) error {
	if e.Imported {
		return ErrImported
	}
	if e.Kind != store.ArchiveKindMessage {
		return fmt.Errorf("archive entry %s is not a message", e.ID)
	}
	return nil
}
