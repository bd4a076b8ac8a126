// Package av is mailgate's anti-virus check, the policy.BodyCheck named
// "av". It asks ClamAV's clamd (package clamd) about every message that
// carries more than text and adds mailgate's own budget for ZIP archives.
//
// # What Check does, in order
//
//  0. A message that is only text is not given to clamd (unless
//     av.scan_text_messages is on): every leaf an inline text/plain or
//     text/html part, parsed without a problem other than a charset label,
//     no part starting like a file (an executable, archive or document),
//     and no text carrying an encoded file (uuencode, yEnc, BinHex), the
//     EICAR test string, or HTML scripts, embedded objects, frames or
//     script and data: links. clamd's cost is mostly per message (a
//     temporary file, its own MIME and HTML passes), and most mail is
//     text; what a virus needs is an attachment or something a reader
//     runs. rspamd's clamd module skips text parts by default too. The
//     finding is AV_CLEAN with "clean (text only)".
//  1. The MIME tree is walked (section numbers as mailtext's Part.Path,
//     RFC 3501 6.4.5). Every leaf that is a ZIP archive is inspected with
//     archive/zip, without extracting anything: nesting depth, entry count,
//     total uncompressed size, compression ratio per entry and a time
//     budget, declared sizes checked against a bounded streaming read.
//     Encrypted entries (general purpose flag bit 0, or AES method 99) are
//     noted. This runs before clamd because clamd (1.4, default limits)
//     spends many seconds unpacking a nested bomb of a few kilobytes and
//     may then answer OK. When the message's parsed view (Part.Head and
//     the declared types) shows no leaf that may be a ZIP, and no bound
//     was hit, there is nothing to inspect and the walk is skipped.
//  2. Within budget, the whole raw message is streamed to clamd, which
//     unpacks MIME and archives itself. Over budget, clamd is given every
//     part except the ZIP archives, one by one, so that a virus beside a
//     bomb is still found. clamd unreachable or timing out is an error (the
//     runner's failure policy then applies, by default 451), never "clean";
//     clamd refusing the message as too long (StreamMaxLength) is the
//     UNSCANNABLE finding.
//  3. When clamd found a virus in the whole message, each leaf's decoded
//     content is scanned on its own to find the infected parts. Infected
//     attachments only: they are stripped. The body text (a text/* part
//     that is no attachment and not inside an attached message) infected,
//     or an infection that cannot be tied to parts mailtext also sees (same
//     path, type and decoded size): the whole message gets
//     av.infected_body_action.
//
// # Findings
//
//   - VIRUS: the body or the message as a whole is infected; action from
//     av.infected_body_action. Not Overridable.
//   - VIRUS_ATTACHMENT: only attachments are infected; Action Strip with
//     StripParts listing their paths. Not Overridable. StripNotice gives
//     the text to put in their place.
//   - UNSCANNABLE: content that could not be scanned completely (clamd's
//     size limit or one of its scan limits, mailgate's archive budget, a
//     malformed ZIP, MIME beyond mailtext's bounds); action from
//     av.unscannable_action. Not Overridable.
//   - ENCRYPTED_ARCHIVE: an encrypted archive (seen in the ZIP headers or
//     reported by clamd); action from av.encrypted_action. Not Overridable.
//   - AV_CLEAN: none of the above; Action Header with
//     "X-Mailgate-Virus-Scan: clean (ClamAV <version>)".
//
// Reasons (private) name the signatures, parts and archive members.
//
// # Settings
//
// Keys read from policy.Settings; an absent or invalid value takes the
// default (the Config value where there is one):
//
//	key                      values                                          default
//	av.infected_body_action  discard, quarantine, reject, tempfail, strip    discard (seed: 削除)
//	av.unscannable_action    quarantine, reject, discard, tempfail, header   quarantine
//	av.encrypted_action      header, quarantine, reject                      header
//	av.archive_max_depth     levels of archives, an attached ZIP being 1     20 (seed)
//	av.archive_max_entries   entries in all archives of a message            10000
//	av.archive_max_bytes     declared uncompressed bytes in all archives of
//	                         a message; K, M, G suffixes (powers of 1024)    500M
//	av.archive_max_ratio     uncompressed:compressed per entry (>= 1)        100
//	av.archive_timeout       time budget of a message's archive
//	                         inspection, a Go duration                       10s
//	av.scan_text_messages    true: give clamd text-only messages too (for
//	                         signatures of phishing or spam text)            false
//
// "strip" for the body removes the infected body parts; it falls back to
// discard when the infection cannot be tied to parts. Actions that would
// deliver a virus (continue, header, tag, allow) are not accepted for it.
package av

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailgate/mailgate/internal/bytesize"
	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/scan/av/clamd"
	"github.com/mailgate/mailgate/internal/spill"
)

// Name is the check's name in findings and configuration.
const Name = "av"

// Finding symbols.
const (
	SymbolVirus            = "VIRUS"
	SymbolVirusAttachment  = "VIRUS_ATTACHMENT"
	SymbolUnscannable      = "UNSCANNABLE"
	SymbolEncryptedArchive = "ENCRYPTED_ARCHIVE"
	SymbolClean            = "AV_CLEAN"
)

// HeaderName is the header the check adds to delivered copies.
const HeaderName = "X-Mailgate-Virus-Scan"

// Setting keys.
const (
	KeyInfectedBodyAction = "av.infected_body_action"
	KeyUnscannableAction  = "av.unscannable_action"
	KeyEncryptedAction    = "av.encrypted_action"
	KeyArchiveMaxDepth    = "av.archive_max_depth"
	KeyArchiveMaxEntries  = "av.archive_max_entries"
	KeyArchiveMaxBytes    = "av.archive_max_bytes"
	KeyArchiveMaxRatio    = "av.archive_max_ratio"
	KeyArchiveTimeout     = "av.archive_timeout"
	KeyScanTextMessages   = "av.scan_text_messages"
)

// Defaults for zero Config fields.
const (
	DefaultTimeout           = 60 * time.Second
	DefaultArchiveMaxDepth   = 20 // seed: 最大20階層
	DefaultArchiveMaxEntries = 10000
	DefaultArchiveMaxBytes   = 500 << 20
	DefaultArchiveMaxRatio   = 100
	DefaultArchiveRatioGrace = 1 << 20
	DefaultArchiveTimeout    = 10 * time.Second
	DefaultArchiveMaxNested  = 64 << 20
	DefaultPartMemory        = 16 << 20
)

// versionTTL is how long clamd's version (for the clean header) is reused:
// it changes only when signatures are reloaded.
const versionTTL = 5 * time.Minute

// Config configures a Checker. Zero fields take the defaults above; the
// Archive* fields are the defaults that settings may override per tenant.
type Config struct {
	// Client is the clamd to ask. Required.
	Client *clamd.Client
	// Timeout bounds each clamd scan: the whole message, and each part
	// when an infection is attributed. The caller's ctx bounds it too.
	Timeout time.Duration
	// ArchiveMaxDepth is the deepest level of nested archives inspected;
	// an attached ZIP is level 1.
	ArchiveMaxDepth int
	// ArchiveMaxEntries bounds the entries of all archives of a message.
	ArchiveMaxEntries int
	// ArchiveMaxBytes bounds the declared uncompressed bytes of all
	// archives of a message, nested ones counted again when expanded.
	ArchiveMaxBytes int64
	// ArchiveMaxRatio bounds uncompressed:compressed for one entry; zip
	// bombs run around 1000:1, ordinary files well under 100:1.
	ArchiveMaxRatio float64
	// ArchiveRatioGrace exempts entries up to this uncompressed size from
	// ArchiveMaxRatio: small runs of blanks compress very well and harm no
	// one.
	ArchiveRatioGrace int64
	// ArchiveTimeout is the time budget of a message's archive inspection.
	ArchiveTimeout time.Duration
	// ArchiveMaxNested bounds the memory held for compressed archives
	// nested in archives (stored ones are read in place).
	ArchiveMaxNested int64
	// PartMemory bounds the bytes of one MIME part held in memory while it
	// is inspected or scanned; larger parts go to an unlinked temporary
	// file in TempDir.
	PartMemory int64
	// TempDir is where large parts are spooled; "" means os.TempDir().
	TempDir string
}

func (c Config) withDefaults() Config {
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.ArchiveMaxDepth <= 0 {
		c.ArchiveMaxDepth = DefaultArchiveMaxDepth
	}
	if c.ArchiveMaxEntries <= 0 {
		c.ArchiveMaxEntries = DefaultArchiveMaxEntries
	}
	if c.ArchiveMaxBytes <= 0 {
		c.ArchiveMaxBytes = DefaultArchiveMaxBytes
	}
	if c.ArchiveMaxRatio <= 0 {
		c.ArchiveMaxRatio = DefaultArchiveMaxRatio
	}
	if c.ArchiveRatioGrace <= 0 {
		c.ArchiveRatioGrace = DefaultArchiveRatioGrace
	}
	if c.ArchiveTimeout <= 0 {
		c.ArchiveTimeout = DefaultArchiveTimeout
	}
	if c.ArchiveMaxNested <= 0 {
		c.ArchiveMaxNested = DefaultArchiveMaxNested
	}
	if c.PartMemory <= 0 {
		c.PartMemory = DefaultPartMemory
	}
	return c
}

// Checker is the "av" check. It is safe for concurrent use: the only state
// shared between calls is a cache of clamd's version.
type Checker struct {
	cfg Config

	mu        sync.Mutex
	version   string
	versionAt time.Time
}

var _ policy.BodyCheck = (*Checker)(nil)

// New returns the check. A nil cfg.Client makes every Check fail (and the
// runner apply its failure policy) rather than pass mail unscanned.
func New(cfg Config) *Checker {
	return &Checker{cfg: cfg.withDefaults()}
}

// Name returns "av".
func (c *Checker) Name() string { return Name }

// settings are the effective values for one message.
type settings struct {
	bodyAction        policy.Action
	unscannableAction policy.Action
	encryptedAction   policy.Action
	arch              archiveLimits
	archTimeout       time.Duration
	scanTextMessages  bool
}

func (c *Checker) settings(s policy.Settings) settings {
	get := func(k string) string {
		if s == nil {
			return ""
		}
		v, _ := s.Get(k)
		return strings.TrimSpace(v)
	}
	st := settings{
		bodyAction:        action(get(KeyInfectedBodyAction), policy.Discard, policy.Discard, policy.Quarantine, policy.Reject, policy.TempFail, policy.Strip),
		unscannableAction: action(get(KeyUnscannableAction), policy.Quarantine, policy.Quarantine, policy.Reject, policy.Discard, policy.TempFail, policy.Header),
		encryptedAction:   action(get(KeyEncryptedAction), policy.Header, policy.Header, policy.Quarantine, policy.Reject),
		arch: archiveLimits{
			maxDepth:   int(positiveInt(get(KeyArchiveMaxDepth), int64(c.cfg.ArchiveMaxDepth))),
			maxEntries: int(positiveInt(get(KeyArchiveMaxEntries), int64(c.cfg.ArchiveMaxEntries))),
			maxBytes:   byteSize(get(KeyArchiveMaxBytes), c.cfg.ArchiveMaxBytes),
			maxRatio:   c.cfg.ArchiveMaxRatio,
			ratioGrace: c.cfg.ArchiveRatioGrace,
			maxNested:  c.cfg.ArchiveMaxNested,
		},
		archTimeout: c.cfg.ArchiveTimeout,
	}
	if v, err := strconv.ParseFloat(get(KeyArchiveMaxRatio), 64); err == nil && v >= 1 && v < 1e9 {
		st.arch.maxRatio = v
	}
	if d, err := time.ParseDuration(get(KeyArchiveTimeout)); err == nil && d > 0 {
		st.archTimeout = d
	}
	if b, err := strconv.ParseBool(get(KeyScanTextMessages)); err == nil {
		st.scanTextMessages = b
	}
	return st
}

// action reads an action name, accepting only the allowed ones: a virus
// must never be configured into plain delivery.
func action(v string, def policy.Action, allowed ...policy.Action) policy.Action {
	a, ok := policy.ParseAction(v)
	if !ok {
		return def
	}
	for _, x := range allowed {
		if a == x {
			return a
		}
	}
	return def
}

func positiveInt(v string, def int64) int64 {
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || n <= 0 {
		return def
	}
	return n
}

// byteSize reads "524288000", "500M", "2G" (powers of 1024), falling back
// to def for anything else, for 0 and for more than 1 PiB: the budget is
// compared with a running sum of declared sizes, which must not overflow.
func byteSize(v string, def int64) int64 {
	n, err := bytesize.Parse(v)
	if err != nil || n <= 0 || n > 1<<50 {
		return def
	}
	return n
}

// Check scans m; see the package documentation for what it finds. It
// returns an error, and no findings, when it could not judge: clamd
// unreachable, timing out or answering nonsense, the message unreadable,
// or ctx done.
func (c *Checker) Check(ctx context.Context, m *policy.Message, s policy.Settings) ([]policy.Finding, error) {
	if c.cfg.Client == nil {
		return nil, errors.New("av: no clamd client configured")
	}
	st := c.settings(s)
	if !st.scanTextMessages && textOnly(ctx, m) {
		return []policy.Finding{{
			Check:   Name,
			Symbol:  SymbolClean,
			Action:  policy.Header,
			Reason:  "text only: no attachment, encoded file or active HTML, not given to clamd",
			Headers: []policy.HeaderField{{Name: HeaderName, Value: "clean (text only)"}},
		}}, nil
	}

	// The archive budget runs before clamd: clamd unpacks a nested bomb of
	// a few kilobytes for many seconds and may then call it clean.
	pre, ok := noArchives(ctx, m)
	if !ok {
		var err error
		if pre, err = c.walk(ctx, m, st, walkOpts{inspect: true}); err != nil {
			return nil, err
		}
	}
	var err error
	var v verdict
	if pre.arch.unscannable == "" {
		v.whole, err = c.scanMessage(ctx, m)
		if err != nil {
			if !errors.Is(err, clamd.ErrSizeLimit) {
				return nil, err
			}
			v.sizeLimited = true
		}
		if v.whole.Infected {
			if v.parts, err = c.walk(ctx, m, st, walkOpts{scan: true}); err != nil {
				return nil, err
			}
		}
	} else {
		// Over budget: clamd sees no archive of this message, but every
		// other part on its own, so a virus beside the bomb is still found.
		if v.parts, err = c.walk(ctx, m, st, walkOpts{scan: true, skipArchives: true}); err != nil {
			return nil, err
		}
		v.partsOnly = true
		for _, p := range v.parts.parts {
			switch {
			case p.result.Infected && !v.whole.Infected:
				v.whole = p.result
			case p.result.Encrypted && !v.whole.Infected:
				v.whole.Encrypted, v.whole.Signature = true, p.result.Signature
			}
		}
	}
	return c.findings(ctx, m, st, pre, v), nil
}

// verdict is what clamd said.
type verdict struct {
	whole       clamd.Result // about the whole message, or summed up from parts when partsOnly
	sizeLimited bool         // clamd refused the message as too long
	partsOnly   bool         // archives were over budget: only other parts were scanned, one by one
	parts       *walkState   // parts scanned one by one, nil when not needed
}

func (c *Checker) findings(ctx context.Context, m *policy.Message, st settings, pre *walkState, v verdict) []policy.Finding {
	var out []policy.Finding
	if v.whole.Infected {
		out = append(out, c.virusFinding(ctx, m, st, v.whole, v.parts))
	}
	var unscannable []string
	if v.sizeLimited {
		unscannable = append(unscannable, "clamd refused the message as longer than its StreamMaxLength")
	}
	if v.whole.LimitsExceeded {
		unscannable = append(unscannable, "clamd stopped at a limit: "+v.whole.Signature)
	}
	if pre.arch.unscannable != "" {
		unscannable = append(unscannable, pre.arch.unscannable)
	}
	if v.partsOnly {
		unscannable = append(unscannable, "archives not given to clamd; other parts scanned one by one")
	}
	if v.parts != nil {
		unscannable = append(unscannable, v.parts.limitedParts...)
	}
	if pre.res.Incomplete != "" {
		unscannable = append(unscannable, "MIME structure beyond bounds, archives not inspected past it: "+pre.res.Incomplete)
	}
	if len(unscannable) > 0 {
		out = append(out, unscannableFinding(st.unscannableAction, unscannable))
	}
	if v.whole.Encrypted || len(pre.arch.encrypted) > 0 {
		out = append(out, encryptedFinding(st.encryptedAction, v.whole, pre.arch.encrypted))
	}
	if len(out) == 0 {
		out = append(out, policy.Finding{
			Check:   Name,
			Symbol:  SymbolClean,
			Action:  policy.Header,
			Reason:  "clamd: " + v.whole.Raw,
			Headers: []policy.HeaderField{{Name: HeaderName, Value: "clean (" + c.engine(ctx) + ")"}},
		})
	}
	return out
}

// scan asks clamd about r within the configured timeout.
func (c *Checker) scan(ctx context.Context, r io.Reader) (clamd.Result, error) {
	sctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	return c.cfg.Client.Scan(sctx, r)
}

func (c *Checker) scanMessage(ctx context.Context, m *policy.Message) (clamd.Result, error) {
	r, err := m.Open()
	if err != nil {
		return clamd.Result{}, fmt.Errorf("av: opening message: %w", err)
	}
	defer r.Close()
	res, err := c.scan(ctx, r)
	if err != nil {
		return clamd.Result{}, fmt.Errorf("av: scanning message: %w", err)
	}
	return res, nil
}

// partScan is one leaf scanned on its own.
type partScan struct {
	leafPart
	size   int64
	result clamd.Result
}

// walkState is what one walk over the parts found.
type walkState struct {
	res          walkResult
	parts        []partScan // leaves scanned one by one
	limitedParts []string   // parts clamd could not scan completely
	arch         archiveReport
}

// walkOpts says what a walk does with each leaf.
type walkOpts struct {
	inspect      bool // apply the archive budget to ZIP leaves
	scan         bool // scan each leaf with clamd
	skipArchives bool // with scan: leave ZIP leaves out
}

// walk reads the message's parts once, doing what o asks with each leaf.
func (c *Checker) walk(ctx context.Context, m *policy.Message, st settings, o walkOpts) (*walkState, error) {
	r, err := m.Open()
	if err != nil {
		return nil, fmt.Errorf("av: opening message: %w", err)
	}
	defer r.Close()
	ws := &walkState{}
	run := &archiveRun{lim: st.arch, budget: st.archTimeout}
	visit := func(p leafPart, body io.Reader) error {
		br := bufio.NewReaderSize(body, 16)
		head, _ := br.Peek(4)
		maybeZip := looksLikeZip(head) || zipType(p.ContentType)
		if !(maybeZip && o.inspect) && !o.scan {
			return nil
		}
		// The part as sent (not anything extracted from it), readable
		// again and at random offsets, as archive/zip needs.
		sp := spill.New(c.cfg.TempDir, c.cfg.PartMemory)
		defer sp.Close()
		if _, err := io.Copy(sp, br); err != nil {
			return fmt.Errorf("av: reading part %s: %w", p.Path, err)
		}
		isZip := maybeZip && (looksLikeZip(head) || zipEndPresent(sp))
		if isZip && o.inspect {
			if err := run.inspect(ctx, sp.ReaderAt(), sp.Size(), "part "+p.Path, &ws.arch); err != nil {
				return err
			}
		}
		if !o.scan || isZip && o.skipArchives {
			return nil
		}
		res, err := c.scan(ctx, sp.Reader())
		switch {
		case errors.Is(err, clamd.ErrSizeLimit):
			ws.limitedParts = append(ws.limitedParts, "part "+p.Path+" is longer than clamd's StreamMaxLength")
		case err != nil:
			return fmt.Errorf("av: scanning part %s: %w", p.Path, err)
		case res.LimitsExceeded:
			ws.limitedParts = append(ws.limitedParts, "part "+p.Path+": clamd stopped at a limit: "+res.Signature)
		}
		ws.parts = append(ws.parts, partScan{leafPart: p, size: sp.Size(), result: res})
		return nil
	}
	res, err := walkParts(ctx, r, limitsFrom(m.Limits), visit)
	if err != nil {
		return nil, fmt.Errorf("av: walking message: %w", err)
	}
	ws.res = res
	return ws, nil
}

// textOnly reports whether the message's parsed view shows nothing a
// virus could be in: every leaf an inline text/plain or text/html part
// without a payload (Part.Payload: an encoded file, the EICAR test string,
// scripts, embedded objects or frames), the whole message seen, and no
// problem but charset labels. A malformed structure is scanned: a mail
// reader may find an attachment where the parser found text.
func textOnly(ctx context.Context, m *policy.Message) bool {
	parsed, err := m.Parsed(ctx)
	if err != nil || parsed == nil || parsed.Unscannable || len(parsed.Parts) == 0 {
		return false
	}
	for _, p := range parsed.Problems {
		if p.Kind != mailtext.ProblemBadCharset {
			return false
		}
	}
	for _, p := range parsed.Parts {
		if p.IsAttachment || p.Payload != "" || (p.ContentType != "text/plain" && p.ContentType != "text/html") || fileMagic(p.Head) {
			return false
		}
	}
	return true
}

// fileMagic reports whether a part starts like an executable, an archive
// or a document with macros rather than text: a file sent as text/plain
// is still a file to whoever saves it.
func fileMagic(head string) bool {
	for _, m := range []string{"MZ", "PK\x03\x04", "\x7fELF", "%PDF", "{\\rtf", "\xd0\xcf\x11\xe0", "Rar!", "7z\xbc\xaf", "\x1f\x8b", "#!"} {
		if strings.HasPrefix(head, m) {
			return true
		}
	}
	return false
}

// noArchives answers the archive inspection from the message's parsed
// view, which the other checks need anyway, when it shows the inspection
// has nothing to do: every leaf was seen (no bound hit) and none is
// declared or sniffed as a ZIP. Otherwise ok is false and the caller walks.
func noArchives(ctx context.Context, m *policy.Message) (*walkState, bool) {
	parsed, err := m.Parsed(ctx)
	if err != nil || parsed == nil || parsed.Unscannable {
		return nil, false
	}
	for _, p := range parsed.Parts {
		if zipType(p.ContentType) || looksLikeZip([]byte(p.Head)) {
			return nil, false
		}
	}
	return &walkState{}, true
}

func zipType(ct string) bool {
	switch ct {
	case "application/zip", "application/x-zip", "application/x-zip-compressed":
		return true
	}
	return false
}

// zipEndPresent reports whether a part declared as ZIP but not starting
// like one (self-extracting, or data prepended) ends like one, so that
// archive/zip can still read it.
func zipEndPresent(sp *spill.Buffer) bool {
	const tail = 64<<10 + 22 // end record plus the longest comment
	off := max(sp.Size()-tail, 0)
	b := make([]byte, sp.Size()-off)
	n, _ := sp.ReaderAt().ReadAt(b, off)
	return strings.Contains(string(b[:n]), string(zipEmptyMagic))
}

// archiveRun applies one message's archive budget across its parts: counts
// and bytes add up over all archives, and the time budget counts only the
// time spent inspecting.
type archiveRun struct {
	lim    archiveLimits
	budget time.Duration
	spent  time.Duration
	in     *inspector
}

func (a *archiveRun) inspect(ctx context.Context, ra io.ReaderAt, size int64, where string, rep *archiveReport) error {
	if a.in == nil {
		a.in = &inspector{lim: a.lim, rep: rep}
	}
	left := a.budget - a.spent
	if left <= 0 {
		if rep.unscannable == "" {
			rep.unscannable = "archive inspection exceeded its time budget before " + where
		}
		return nil
	}
	ictx, cancel := context.WithTimeout(ctx, left)
	defer cancel()
	start := time.Now()
	a.in.ctx, a.in.parent = ictx, ctx
	err := a.in.inspect(ra, size, where)
	a.spent += time.Since(start)
	return err
}

// virusFinding ties clamd's detection to parts when it can.
func (c *Checker) virusFinding(ctx context.Context, m *policy.Message, st settings, whole clamd.Result, ws *walkState) policy.Finding {
	parsed, _ := m.Parsed(ctx)
	byPath := map[string]*mailtext.Part{}
	if parsed != nil {
		for i := range parsed.Parts {
			p := &parsed.Parts[i]
			if _, dup := byPath[p.Path]; !dup {
				byPath[p.Path] = p
			}
		}
	}
	var infected []partScan
	attributable, body := ws.res.Incomplete == "", false
	for _, p := range ws.parts {
		if !p.result.Infected {
			continue
		}
		infected = append(infected, p)
		mp := byPath[p.Path]
		if mp == nil || mp.ContentType != p.ContentType || mp.Size != p.size {
			attributable = false // the two walkers disagree: strip nothing
			continue
		}
		if strings.HasPrefix(mp.ContentType, "text/") && !mp.IsAttachment && !p.InMessage {
			body = true
		}
	}
	if len(infected) == 0 {
		attributable = false
	}
	var reason strings.Builder
	fmt.Fprintf(&reason, "clamd found %s", whole.Signature)
	var paths []string
	for _, p := range infected {
		paths = append(paths, p.Path)
		name := ""
		if mp := byPath[p.Path]; mp != nil {
			name = mp.Filename
		}
		fmt.Fprintf(&reason, "; part %s %q (%s): %s", p.Path, cleanName(name), p.ContentType, p.result.Signature)
	}
	if !attributable && len(infected) == 0 {
		reason.WriteString("; no single part is infected on its own")
	} else if !attributable {
		reason.WriteString("; parts could not be confirmed against the parsed message")
	}

	if attributable && !body {
		return policy.Finding{
			Check:      Name,
			Symbol:     SymbolVirusAttachment,
			Action:     policy.Strip,
			Reason:     reason.String(),
			StripParts: paths,
			Headers:    []policy.HeaderField{{Name: HeaderName, Value: "infected attachment removed (" + c.engine(ctx) + ")"}},
		}
	}
	f := policy.Finding{
		Check:  Name,
		Symbol: SymbolVirus,
		Action: st.bodyAction,
		Reason: reason.String(),
	}
	if f.Action == policy.Strip {
		if attributable {
			f.StripParts = paths
		} else {
			f.Action = policy.Discard // nothing safe to strip
		}
	}
	switch f.Action {
	case policy.Reject:
		f.Public, f.Code, f.Enhanced = "Message rejected: a virus was found in it", 554, "5.7.1"
	case policy.TempFail:
		f.Public = "Message cannot be accepted now, try again later"
	}
	return f
}

func unscannableFinding(a policy.Action, reasons []string) policy.Finding {
	f := policy.Finding{
		Check:   Name,
		Symbol:  SymbolUnscannable,
		Action:  a,
		Reason:  strings.Join(reasons, "; "),
		Headers: []policy.HeaderField{{Name: HeaderName, Value: "not completely scanned"}},
	}
	switch a {
	case policy.Reject:
		f.Public, f.Code, f.Enhanced = "Message rejected: its content cannot be scanned", 554, "5.7.1"
	case policy.TempFail:
		f.Public = "Message cannot be accepted now, try again later"
	}
	return f
}

func encryptedFinding(a policy.Action, whole clamd.Result, where []string) policy.Finding {
	var reasons []string
	if whole.Encrypted {
		reasons = append(reasons, "clamd: "+whole.Signature)
	}
	if len(where) > 0 {
		const show = 10
		list := where
		if len(list) > show {
			list = list[:show]
		}
		r := "encrypted entries: " + strings.Join(list, ", ")
		if len(where) > show {
			r += fmt.Sprintf(" and %d more", len(where)-show)
		}
		reasons = append(reasons, r)
	}
	f := policy.Finding{
		Check:   Name,
		Symbol:  SymbolEncryptedArchive,
		Action:  a,
		Reason:  strings.Join(reasons, "; "),
		Headers: []policy.HeaderField{{Name: HeaderName, Value: "encrypted archive not scanned"}},
	}
	if a == policy.Reject {
		f.Public, f.Code, f.Enhanced = "Message rejected: encrypted archives are not accepted", 554, "5.7.1"
	}
	return f
}

// engine returns "ClamAV <engine>/<database>" for headers, from a cached
// VERSION reply; just "ClamAV" when clamd does not tell.
func (c *Checker) engine(ctx context.Context) string {
	c.mu.Lock()
	v, at := c.version, c.versionAt
	c.mu.Unlock()
	if v != "" && time.Since(at) < versionTTL {
		return v
	}
	vctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	reply, err := c.cfg.Client.Version(vctx)
	if err != nil {
		if v != "" {
			return v
		}
		return "ClamAV"
	}
	v = formatVersion(reply)
	c.mu.Lock()
	c.version, c.versionAt = v, time.Now()
	c.mu.Unlock()
	return v
}

// formatVersion turns "ClamAV 1.4.6/27000/Mon Jan  1 ..." into
// "ClamAV 1.4.6/27000", keeping only characters safe in a header.
func formatVersion(reply string) string {
	parts := strings.SplitN(reply, "/", 3)
	v := parts[0]
	if len(parts) > 1 {
		v += "/" + parts[1]
	}
	v = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '(' || r == ')' {
			return -1
		}
		return r
	}, v)
	if len(v) > 64 {
		v = v[:64]
	}
	if !strings.HasPrefix(v, "ClamAV") {
		return "ClamAV"
	}
	return strings.TrimSpace(v)
}
