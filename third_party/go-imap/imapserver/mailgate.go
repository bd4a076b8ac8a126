package imapserver

// mailgate additions to the server: ID (RFC 2971), QUOTA (RFC 9208,
// read-only), CONDSTORE (RFC 7162) plumbing, a per-mailbox APPEND check
// made before a literal is read, configurable timeouts with a BYE, and a
// bound on consecutive bad commands. See MAILGATE.md at the module root.

import (
	"errors"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

func (o *Options) idleTimeout() time.Duration {
	if o.IdleTimeout > 0 {
		return o.IdleTimeout
	}
	return idleReadTimeout
}

func (o *Options) commandTimeout() time.Duration {
	if o.CommandTimeout > 0 {
		return o.CommandTimeout
	}
	return cmdReadTimeout
}

func (o *Options) maxBad() int {
	if o.MaxBadCommands == 0 {
		return 20
	}
	return o.MaxBadCommands
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

var errTooManyBad = errors.New("imapserver: too many bad commands")

// countBad closes the session after too many BAD answers in a row: a
// client that keeps sending what is not IMAP (a flood, another protocol)
// does not keep a connection busy.
func (c *Conn) countBad(resp *imap.StatusResponse) error {
	if resp.Type != imap.StatusResponseTypeBad {
		c.badCommands = 0
		return nil
	}
	c.badCommands++
	if max := c.server.options.maxBad(); max > 0 && c.badCommands >= max {
		c.state = imap.ConnStateLogout
		c.Bye("Too many invalid commands")
		return errTooManyBad
	}
	return nil
}

// closeAfterError answers a command and then ends the connection.
type closeAfterError struct{ resp *imap.Error }

func (e *closeAfterError) Error() string { return e.resp.Text }

// SessionID is a session that answers the ID command.
type SessionID interface {
	Session
	// ID receives the client's identification (nil for ID NIL) and
	// returns the server's.
	ID(client *imap.IDData) *imap.IDData
}

// QuotaResource is one resource of a quota root: usage and limit in
// units of the resource (STORAGE: KiB; MESSAGE: messages).
type QuotaResource struct {
	Name         imap.QuotaResourceType
	Usage, Limit int64
}

// QuotaRoot is a quota root with its resources.
type QuotaRoot struct {
	Name      string
	Resources []QuotaResource
}

// SessionQuota is a session that answers GETQUOTA and GETQUOTAROOT
// (RFC 9208); SETQUOTA is refused.
type SessionQuota interface {
	Session
	GetQuota(root string) (*QuotaRoot, error)
	// GetQuotaRoot returns the roots of a mailbox with their quotas.
	GetQuotaRoot(mailbox string) ([]QuotaRoot, error)
}

// SessionAppendCheck is a session that checks an APPEND before its
// literal is read (the target exists, the message fits in the quota). A
// refused synchronizing literal is never sent by the client; a refused
// non-synchronizing one (LITERAL+) is already on its way, so the
// connection is closed after the answer (RFC 7888 4).
type SessionAppendCheck interface {
	Session
	CheckAppend(mailbox string, size int64) error
}

func (c *Conn) handleID(dec *imapwire.Decoder) error {
	if !dec.ExpectSP() {
		return dec.Err()
	}
	client := &imap.IDData{}
	n := 0
	isList, err := dec.List(func() error {
		var k, v string
		if !dec.ExpectString(&k) || !dec.ExpectSP() || !dec.ExpectNString(&v) {
			return dec.Err()
		}
		if n++; n > 30 {
			return newClientBugError("Too many ID fields")
		}
		setIDField(client, k, v)
		return nil
	})
	if err != nil {
		return err
	}
	if !isList {
		var nil_ string
		if !dec.ExpectAtom(&nil_) || !strings.EqualFold(nil_, "NIL") {
			return newClientBugError("Syntax error: ID takes NIL or a list")
		}
		client = nil
	}
	if !dec.ExpectCRLF() {
		return dec.Err()
	}
	var server *imap.IDData
	if s, ok := c.session.(SessionID); ok {
		server = s.ID(client)
	}
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("ID").SP()
	fields := idFields(server)
	if len(fields) == 0 {
		enc.NIL()
	} else {
		enc.List(len(fields)/2, func(i int) {
			enc.String(fields[2*i]).SP().String(fields[2*i+1])
		})
	}
	return enc.CRLF()
}

func setIDField(d *imap.IDData, k, v string) {
	switch strings.ToLower(k) {
	case "name":
		d.Name = v
	case "version":
		d.Version = v
	case "os":
		d.OS = v
	case "os-version":
		d.OSVersion = v
	case "vendor":
		d.Vendor = v
	case "support-url":
		d.SupportURL = v
	}
}

func idFields(d *imap.IDData) []string {
	if d == nil {
		return nil
	}
	var out []string
	for _, kv := range [][2]string{{"name", d.Name}, {"version", d.Version}, {"vendor", d.Vendor}, {"support-url", d.SupportURL}} {
		if kv[1] != "" {
			out = append(out, kv[0], kv[1])
		}
	}
	return out
}

func (c *Conn) quotaSession() (SessionQuota, error) {
	if err := c.checkState(imap.ConnStateAuthenticated); err != nil {
		return nil, err
	}
	s, ok := c.session.(SessionQuota)
	if !ok {
		return nil, &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Unknown command"}
	}
	return s, nil
}

func (c *Conn) handleGetQuota(dec *imapwire.Decoder) error {
	var root string
	if !dec.ExpectSP() || !dec.ExpectAString(&root) || !dec.ExpectCRLF() {
		return dec.Err()
	}
	s, err := c.quotaSession()
	if err != nil {
		return err
	}
	q, err := s.GetQuota(root)
	if err != nil {
		return err
	}
	return c.writeQuota(q)
}

func (c *Conn) handleGetQuotaRoot(dec *imapwire.Decoder) error {
	var mailbox string
	if !dec.ExpectSP() || !dec.ExpectMailbox(&mailbox) || !dec.ExpectCRLF() {
		return dec.Err()
	}
	s, err := c.quotaSession()
	if err != nil {
		return err
	}
	roots, err := s.GetQuotaRoot(mailbox)
	if err != nil {
		return err
	}
	enc := newResponseEncoder(c)
	enc.Atom("*").SP().Atom("QUOTAROOT").SP().Mailbox(mailbox)
	for _, r := range roots {
		enc.SP().String(r.Name)
	}
	err = enc.CRLF()
	enc.end()
	if err != nil {
		return err
	}
	for i := range roots {
		if err := c.writeQuota(&roots[i]); err != nil {
			return err
		}
	}
	return nil
}

func (c *Conn) writeQuota(q *QuotaRoot) error {
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("QUOTA").SP().String(q.Name).SP()
	enc.List(len(q.Resources), func(i int) {
		r := q.Resources[i]
		enc.Atom(string(r.Name)).SP().Number64(r.Usage).SP().Number64(r.Limit)
	})
	return enc.CRLF()
}

func (c *Conn) handleSetQuota(dec *imapwire.Decoder) error {
	dec.DiscardLine()
	if _, err := c.quotaSession(); err != nil {
		return err
	}
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNoPerm, Text: "Quotas are set by the administrator"}
}

// CondStoreEnabled reports whether the client enabled CONDSTORE (ENABLE,
// SELECT/EXAMINE (CONDSTORE), or a FETCH/STORE/SEARCH/STATUS using it):
// every later FETCH response then carries MODSEQ (RFC 7162 3.1).
func (c *Conn) CondStoreEnabled() bool {
	c.mutex.Lock()
	defer c.mutex.Unlock()
	return c.enabled.Has(imap.CapCondStore)
}

// EnableCondStore turns CONDSTORE on for the connection (a STATUS
// HIGHESTMODSEQ does, RFC 7162 3.1), when the server offers it.
func (c *Conn) EnableCondStore() {
	if !c.server.options.caps().Has(imap.CapCondStore) {
		return
	}
	c.mutex.Lock()
	c.enabled[imap.CapCondStore] = struct{}{}
	c.mutex.Unlock()
}

// WriteModSeq writes the message's mod-sequence (RFC 7162 3.1.4).
func (w *FetchResponseWriter) WriteModSeq(modSeq uint64) {
	w.writeItemSep()
	w.enc.Atom("MODSEQ").SP().Special('(').ModSeq(modSeq).Special(')')
}

// WriteMessageFlagsModSeq writes a FETCH response with FLAGS and, when
// modSeq is not zero, MODSEQ.
func (w *UpdateWriter) WriteMessageFlagsModSeq(seqNum uint32, uid imap.UID, flags []imap.Flag, modSeq uint64) error {
	fw := &FetchWriter{conn: w.conn}
	rw := fw.CreateMessage(seqNum)
	if uid != 0 {
		rw.WriteUID(uid)
	}
	rw.WriteFlags(flags)
	if modSeq != 0 {
		rw.WriteModSeq(modSeq)
	}
	return rw.Close()
}

// Conn returns the connection an update writer writes to.
func (w *UpdateWriter) Conn() *Conn { return w.conn }
