package av

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
)

// ZIP budget. clamd unpacks archives itself, within its own limits; this
// inspection bounds what mailgate hands on (to clamd, the rewriter, the
// recipient) by the seed's 20 levels and a size, count, ratio and time
// budget, and finds encrypted entries, without extracting anything to
// disk. Sizes come from the central directory; every readable entry is
// then streamed (never held, except nested archives, within
// archiveLimits.maxNested) so that a header understating its size is
// caught: archive/zip fails a read that goes past the declared size or
// does not match the CRC.

// zipFlagEncrypted is general purpose bit 0 (APPNOTE 4.4.4): the entry is
// encrypted (traditional PKWARE, strong encryption, or WinZip AES, which
// also uses method 99).
const (
	zipFlagEncrypted = 0x1
	zipMethodAES     = 99
)

var (
	zipLocalMagic = []byte("PK\x03\x04")
	zipEmptyMagic = []byte("PK\x05\x06")
	zipDirMagic   = []byte("PK\x01\x02")
)

// archiveLimits is the budget of one message's archives, all attachments
// and nesting levels together.
type archiveLimits struct {
	maxDepth   int     // levels of archives: an attached ZIP is level 1
	maxEntries int     // entries in all archives together
	maxBytes   int64   // declared uncompressed bytes in all archives together
	maxRatio   float64 // uncompressed:compressed per entry
	ratioGrace int64   // entries up to this size are exempt from maxRatio
	maxNested  int64   // bytes of compressed nested archives held in memory at once
}

// archiveReport collects what the inspection found.
type archiveReport struct {
	encrypted   []string // where encrypted entries were found
	unscannable string   // the first budget exceeded, "" if none
}

// budgetError ends an inspection: the content cannot be vouched for.
type budgetError struct{ reason string }

func (e *budgetError) Error() string { return e.reason }

func overBudget(format string, a ...any) error {
	return &budgetError{reason: fmt.Sprintf(format, a...)}
}

// inspector walks the ZIP archives of one message. It is not safe for
// concurrent use; Check makes one per message.
type inspector struct {
	lim     archiveLimits
	ctx     context.Context // the time budget; its parent is the caller's ctx
	parent  context.Context
	entries int
	total   int64
	held    int64
	rep     *archiveReport
}

// looksLikeZip reports whether data starts like a ZIP archive.
func looksLikeZip(head []byte) bool {
	return bytes.HasPrefix(head, zipLocalMagic) || bytes.HasPrefix(head, zipEmptyMagic)
}

// inspect examines one archive attached at where. It returns an error only
// when the caller's context is done; budget breaches and malformed archives
// end up in the report.
func (in *inspector) inspect(ra io.ReaderAt, size int64, where string) error {
	if in.rep.unscannable != "" {
		return nil // already unscannable: no need to spend more time
	}
	err := in.zip(ra, size, 1, where)
	var be *budgetError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &be):
		in.rep.unscannable = be.reason
		return nil
	case in.parent.Err() != nil:
		return fmt.Errorf("av: inspecting archive: %w", in.parent.Err())
	case in.ctx.Err() != nil:
		in.rep.unscannable = "archive inspection exceeded its time budget at " + where
		return nil
	}
	in.rep.unscannable = fmt.Sprintf("archive %s could not be inspected: %v", where, err)
	return nil
}

func (in *inspector) zip(ra io.ReaderAt, size int64, depth int, where string) error {
	if depth > in.lim.maxDepth {
		return overBudget("archives nested deeper than %d levels at %s", in.lim.maxDepth, where)
	}
	// archive/zip materialises every central directory record it finds,
	// and the record count in the end record is only checked modulo 2^16.
	// Count the record signatures first (an upper bound on the records it
	// can parse) so that a directory of millions of tiny records is refused
	// before it is loaded.
	n, err := in.countSignatures(ra, size)
	if err != nil {
		return err
	}
	if in.entries+n > in.lim.maxEntries {
		return overBudget("archives hold more than %d entries (at %s)", in.lim.maxEntries, where)
	}
	zr, err := zip.NewReader(ra, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return overBudget("malformed ZIP archive at %s: %v", where, err)
	}
	in.entries += len(zr.File)
	if in.entries > in.lim.maxEntries {
		return overBudget("archives hold more than %d entries (at %s)", in.lim.maxEntries, where)
	}
	for _, f := range zr.File {
		if err := in.ctx.Err(); err != nil {
			return err
		}
		if err := in.entry(ra, f, depth, where); err != nil {
			return err
		}
	}
	return nil
}

// entry checks one archive member: declared size and ratio, encryption,
// then a bounded streaming read that verifies the header and finds nested
// archives.
func (in *inspector) entry(ra io.ReaderAt, f *zip.File, depth int, where string) error {
	name := where + "/" + cleanName(f.Name)
	u, c := f.UncompressedSize64, f.CompressedSize64
	if u > math.MaxInt64/2 || c > math.MaxInt64/2 {
		return overBudget("entry %s declares an impossible size", name)
	}
	in.total += int64(u)
	if in.total > in.lim.maxBytes {
		return overBudget("archives expand to more than %d bytes (at %s)", in.lim.maxBytes, name)
	}
	if int64(u) > in.lim.ratioGrace && float64(u) > in.lim.maxRatio*float64(c) {
		return overBudget("entry %s compresses %d bytes into %d (over %g:1)", name, u, c, in.lim.maxRatio)
	}
	if f.Flags&zipFlagEncrypted != 0 || f.Method == zipMethodAES {
		in.rep.encrypted = append(in.rep.encrypted, name)
		return nil
	}
	if strings.HasSuffix(f.Name, "/") && u == 0 {
		return nil
	}
	rc, err := f.Open()
	if errors.Is(err, zip.ErrAlgorithm) {
		// A method archive/zip cannot decode (bzip2, LZMA, ...): the
		// declared sizes above are all that can be checked here; clamd
		// still unpacks it.
		return nil
	}
	if err != nil {
		return overBudget("entry %s cannot be read: %v", name, err)
	}
	defer rc.Close()
	r := &ctxCountReader{ctx: in.ctx, r: io.LimitReader(rc, int64(u)+1)}
	head := make([]byte, 4)
	hn, err := io.ReadFull(r, head)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return in.readFailure(name, err)
	}
	if looksLikeZip(head[:hn]) {
		return in.nested(ra, f, r, head[:hn], depth, name)
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return in.readFailure(name, err)
	}
	if r.n > int64(u) {
		return overBudget("entry %s is larger than its header says", name)
	}
	return nil
}

// nested inspects an archive inside an archive: in place when it is
// stored, else decompressed into memory within maxNested.
func (in *inspector) nested(ra io.ReaderAt, f *zip.File, r *ctxCountReader, head []byte, depth int, name string) error {
	if depth+1 > in.lim.maxDepth {
		return overBudget("archives nested deeper than %d levels at %s", in.lim.maxDepth, name)
	}
	u := int64(f.UncompressedSize64)
	if f.Method == zip.Store && f.CompressedSize64 == f.UncompressedSize64 {
		off, err := f.DataOffset()
		if err != nil {
			return overBudget("entry %s cannot be located: %v", name, err)
		}
		// Finish the checked read first: a stored entry whose CRC or size
		// does not match is not inspected in place.
		if _, err := io.Copy(io.Discard, r); err != nil {
			return in.readFailure(name, err)
		}
		return in.zip(io.NewSectionReader(ra, off, u), u, depth+1, name)
	}
	if in.held+u > in.lim.maxNested {
		return overBudget("nested archive %s (%d bytes) is too large to inspect in memory", name, u)
	}
	buf := make([]byte, u+1)
	k := copy(buf, head)
	m, err := io.ReadFull(r, buf[k:])
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return in.readFailure(name, err)
	}
	if int64(k+m) != u {
		return overBudget("entry %s does not match its header", name)
	}
	in.held += u
	defer func() { in.held -= u }()
	return in.zip(bytes.NewReader(buf[:u]), u, depth+1, name)
}

// readFailure classifies an error reading an entry: the time budget or the
// caller's cancellation pass through, anything else (bad CRC, a size that
// does not match the header, corrupt data) makes the archive unscannable.
func (in *inspector) readFailure(name string, err error) error {
	if in.ctx.Err() != nil {
		return in.ctx.Err()
	}
	return overBudget("entry %s does not match its header: %v", name, err)
}

// countSignatures counts central directory record signatures in the
// archive, streaming it in one pass with one buffer.
func (in *inspector) countSignatures(ra io.ReaderAt, size int64) (int, error) {
	sr := io.NewSectionReader(ra, 0, size)
	const keep = 3 // a signature may span two reads; 3 bytes cannot hold a whole one
	buf := make([]byte, keep+64<<10)
	count, carried := 0, 0
	for {
		if err := in.ctx.Err(); err != nil {
			return 0, err
		}
		n, err := sr.Read(buf[carried:])
		if n > 0 {
			chunk := buf[:carried+n]
			count += bytes.Count(chunk, zipDirMagic)
			carried = copy(buf, chunk[len(chunk)-min(len(chunk), keep):])
		}
		if errors.Is(err, io.EOF) {
			return count, nil
		}
		if err != nil {
			return 0, overBudget("archive cannot be read: %v", err)
		}
	}
}

// ctxCountReader counts bytes and stops when ctx is done, so a slow
// decompression cannot outlive the time budget.
type ctxCountReader struct {
	ctx context.Context
	r   io.Reader
	n   int64
}

func (c *ctxCountReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// cleanName makes an archive member name safe for logs and reasons.
func cleanName(s string) string {
	const max = 200
	s = strings.ToValidUTF8(s, "\ufffd")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	if len(s) > max {
		s = truncUTF8(s, max) + "..."
	}
	return s
}

func truncUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n]
}
