package continuity

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"time"

	"github.com/mailgate/mailgate/internal/delivery"
	"github.com/mailgate/mailgate/internal/store"
)

// ErrHandbackRunning is returned when a hand-back covering the same mail
// is already running; the running job is returned with it.
var ErrHandbackRunning = errors.New("a hand-back of this mail is already running")

// ErrNoCredentials refuses an API hand-back without stored credentials.
var ErrNoCredentials = errors.New("no API credentials for this hand-back path: set them first")

// StartHandback starts handing the mail d received in emergency mode back
// to the primary service, for one user or (user "") every user, on the
// path the domain's policy names. A running job that covers it and is
// still searching the mailboxes is returned with ErrHandbackRunning.
// Messages already handed back, or claimed by another job, are not
// handed back again.
func (s *Service) StartHandback(ctx context.Context, d store.Domain, user, actor string) (store.HandbackJob, error) {
	pol, err := PolicyFor(ctx, s.Store, d.TenantID, d.Name)
	if err != nil {
		return store.HandbackJob{}, err
	}
	user = strings.ToLower(strings.TrimSpace(user))
	running, err := s.Store.HandbackJobs(ctx, d.TenantID, true)
	if err != nil {
		return store.HandbackJob{}, err
	}
	for _, j := range running {
		// A job still searching finds new messages too; one whose search
		// is over does not, so a new job is started for them.
		if j.Domain == d.Name && (j.User == "" || j.User == user) && !j.Scanned {
			return j, ErrHandbackRunning
		}
	}
	if pol.HandbackPath != PathSMTP {
		if _, _, err := s.Store.ContinuitySecret(ctx, d.TenantID, pol.HandbackPath); errors.Is(err, store.ErrNotFound) {
			return store.HandbackJob{}, fmt.Errorf("%w (%s)", ErrNoCredentials, pol.HandbackPath)
		} else if err != nil {
			return store.HandbackJob{}, err
		}
	}
	j, err := s.Store.CreateHandbackJob(ctx, store.HandbackJob{TenantID: d.TenantID, Domain: d.Name, User: user, Path: pol.HandbackPath,
		Created: s.now(), CreatedBy: actor})
	if err != nil {
		return j, err
	}
	who := "every user"
	if user != "" {
		who = user
	}
	s.event(ctx, d.TenantID, d.Name, EventHandbackStarted, actor, fmt.Sprintf("hand-back %d of %s over %s", j.ID, who, j.Path))
	return j, nil
}

// RetryHandback makes the domain's failed (and skipped) messages pending
// again, for instance after the credentials or the path were fixed.
func (s *Service) RetryHandback(ctx context.Context, d store.Domain, actor string) (int, error) {
	n, err := s.Store.RetryHandbackItems(ctx, d.TenantID, d.Name, s.now())
	if err == nil && n > 0 {
		s.event(ctx, d.TenantID, d.Name, EventHandbackRetry, actor, fmt.Sprintf("%d message(s) tried again", n))
	}
	return n, err
}

// Endpoints are the API hosts of the hand-back paths; the defaults are
// the public clouds' (tests and sovereign clouds set their own).
type Endpoints struct {
	GraphURL       string // https://graph.microsoft.com
	GraphLoginURL  string // https://login.microsoftonline.com
	GmailURL       string // https://gmail.googleapis.com
	GoogleTokenURL string // https://oauth2.googleapis.com/token
	GoogleAdminURL string // https://admin.googleapis.com (Directory API)
}

func (e Endpoints) withDefaults() Endpoints {
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
		*v = strings.TrimRight(*v, "/")
	}
	def(&e.GraphURL, "https://graph.microsoft.com")
	def(&e.GraphLoginURL, "https://login.microsoftonline.com")
	def(&e.GmailURL, "https://gmail.googleapis.com")
	def(&e.GoogleTokenURL, "https://oauth2.googleapis.com/token")
	def(&e.GoogleAdminURL, "https://admin.googleapis.com")
	return e
}

// PrimaryRouter resolves a served domain's own routes (delivery.Router).
type PrimaryRouter interface {
	PrimaryTargets(ctx context.Context, domain string) ([]delivery.Target, error)
}

// Handback runs the hand-back jobs of every tenant on this node. Several
// nodes may run it: items are claimed with leases in the store.
type Handback struct {
	*Service
	Router PrimaryRouter
	SMTP   delivery.SMTPDeliverer
	// HTTP carries the API paths' requests (token endpoints included).
	HTTP      *http.Client
	Endpoints Endpoints
	Node      string
	// Lease is how long a node owns an item's attempt; Workers how many
	// items are handed back at once.
	Lease   time.Duration
	Workers int

	tokens tokenCache
}

// MarkerHeader is prepended to every message handed back over SMTP, so
// the primary service (its transport rules, its administrator) can tell
// a hand-back from new mail.
const MarkerHeader = "X-Mailgate-Handback"

// scanPage is how many mailbox messages one search step asks for.
const scanPage = 500

// retryWaits are the waits after a temporary failure (the last repeats).
var retryWaits = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute}

// Start releases the leases this node held before a restart.
func (h *Handback) Start(ctx context.Context) error {
	n, err := h.Store.ReleaseHandbackLeases(ctx, h.Node)
	if err != nil {
		return fmt.Errorf("hand-back start: %w", err)
	}
	if n > 0 {
		h.log().Info("released hand-back leases from before restart", "items", n)
	}
	return nil
}

// Tick searches the running jobs' mailboxes for their messages, hands
// back every due one it can claim, and finishes complete jobs. It returns
// how many messages it attempted. A cancelled ctx stops it between
// messages: an attempt under way is finished and recorded, so nothing is
// left half done by a shutdown.
func (h *Handback) Tick(ctx context.Context) (int, error) {
	if h.Mailboxes == nil {
		return 0, nil
	}
	jobs, err := h.Store.HandbackJobs(ctx, 0, true)
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, j := range jobs {
		if !j.Scanned {
			if err := h.scan(ctx, j); err != nil {
				errs = append(errs, err)
			}
		}
	}
	attempted := 0
	for ctx.Err() == nil {
		now := h.now()
		// One item per worker: a claimed item starts at once, so its lease
		// is not spent waiting behind others.
		items, err := h.Store.ClaimHandbackItems(ctx, h.Node, now, now.Add(h.lease()), max(h.Workers, 1))
		if err != nil {
			errs = append(errs, err)
			break
		}
		if len(items) == 0 {
			break
		}
		h.attemptAll(ctx, jobs, items)
		attempted += len(items)
	}
	for _, j := range jobs {
		h.finishJob(ctx, j)
	}
	return attempted, errors.Join(errs...)
}

func (h *Handback) lease() time.Duration {
	if h.Lease <= 0 {
		return 5 * time.Minute
	}
	return h.Lease
}

// scan records the job's messages, a page at a time.
func (h *Handback) scan(ctx context.Context, j store.HandbackJob) error {
	cursor := j.Cursor
	for page := 0; page < 20 && ctx.Err() == nil; page++ {
		found, err := h.Mailboxes.PendingHandback(ctx, j.TenantID, j.Domain, cursor, scanPage)
		if err != nil {
			return fmt.Errorf("hand-back %d: searching mailboxes: %w", j.ID, err)
		}
		now := h.now()
		var items []store.HandbackItem
		for _, it := range found {
			cursor = max(cursor, it.ID)
			if j.User != "" && !strings.EqualFold(it.User, j.User) {
				continue
			}
			items = append(items, store.HandbackItem{TenantID: j.TenantID, ItemID: it.ID, JobID: j.ID, Domain: j.Domain,
				User: strings.ToLower(it.User), Sent: it.Sent, NextTry: now, Updated: now})
		}
		if len(items) > 0 {
			done, err := h.Store.AddHandbackItems(ctx, items)
			if err != nil {
				return err
			}
			// Handed back before a crash that came before the mailbox mark.
			for _, id := range done {
				if err := h.Mailboxes.MarkHandedBack(ctx, j.TenantID, id, "handed back"); err != nil {
					h.log().Error("hand-back mark", "item", id, "err", err)
				}
			}
		}
		last := len(found) < scanPage
		if err := h.Store.AdvanceHandbackJob(ctx, j.TenantID, j.ID, cursor, last); err != nil {
			return err
		}
		if last {
			return nil
		}
	}
	return nil
}

// finishJob marks a complete job done and logs it.
func (h *Handback) finishJob(ctx context.Context, j store.HandbackJob) {
	ok, err := h.Store.FinishHandbackJob(ctx, j.TenantID, j.ID, h.now())
	if err != nil || !ok {
		return
	}
	p, _ := h.Store.HandbackProgress(ctx, j.TenantID, j.ID)
	h.event(ctx, j.TenantID, j.Domain, EventHandbackDone, "", fmt.Sprintf("hand-back %d over %s finished: %d handed back, %d failed, %d skipped",
		j.ID, j.Path, p.Done, p.Failed, p.Skipped))
}

// attemptAll hands back claimed items with Workers at a time.
func (h *Handback) attemptAll(ctx context.Context, jobs []store.HandbackJob, items []store.HandbackItem) {
	paths := map[int64]string{}
	for _, j := range jobs {
		paths[j.ID] = j.Path
	}
	sem := make(chan struct{}, max(h.Workers, 1))
	var wg sync.WaitGroup
	for _, it := range items {
		if ctx.Err() != nil {
			// Not started: give the claim back for the next tick (or node).
			h.record(ctx, it, outcome{state: store.HandbackPending, next: h.now(), err: "not attempted: stopping"})
			continue
		}
		path, ok := paths[it.JobID]
		if !ok {
			// A job started after this tick's list: next tick.
			h.record(ctx, it, outcome{state: store.HandbackPending, next: h.now()})
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(it store.HandbackItem) {
			defer wg.Done()
			defer func() { <-sem }()
			h.record(ctx, it, h.handOne(ctx, it, path))
		}(it)
	}
	wg.Wait()
}

// outcome is the result of one attempt.
type outcome struct {
	state string // done, pending (retry at next), failed, skipped
	how   string
	err   string
	next  time.Time
}

// record writes an attempt's outcome (not cancelled by a shutdown: the
// attempt happened) and, for a message handed back, marks it in its
// mailbox.
func (h *Handback) record(ctx context.Context, it store.HandbackItem, o outcome) {
	ctx = context.WithoutCancel(ctx)
	owner := it.LeaseOwner
	it.State, it.How, it.LastError, it.NextTry, it.Updated = o.state, o.how, o.err, o.next, h.now()
	ok, err := h.Store.FinishHandbackItem(ctx, it, owner)
	if err != nil {
		// The lease runs out and the item is tried again.
		h.log().Error("recording a hand-back", "item", it.ItemID, "err", err)
		return
	}
	if !ok {
		h.log().Warn("hand-back outcome not recorded: another node took the item over", "item", it.ItemID)
		return
	}
	switch o.state {
	case store.HandbackDone:
		if err := h.Mailboxes.MarkHandedBack(ctx, it.TenantID, it.ItemID, o.how); err != nil {
			h.log().Error("hand-back mark", "item", it.ItemID, "err", err)
		}
	case store.HandbackFailed:
		h.event(ctx, it.TenantID, it.Domain, EventHandbackFailed, "", fmt.Sprintf("message %d of %s: %s", it.ItemID, it.User, o.err))
	}
}

func (h *Handback) retryAt(attempts int) time.Time {
	return h.now().Add(retryWaits[min(max(attempts-1, 0), len(retryWaits)-1)])
}

// handOne hands back one message; it never returns a pending outcome
// without a next attempt time.
func (h *Handback) handOne(ctx context.Context, it store.HandbackItem, path string) outcome {
	// An attempt under way finishes even when the node is stopping: its
	// outcome must be recorded, or the primary service gets it twice.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
	defer cancel()
	item, body, err := h.Mailboxes.OpenBody(ctx, it.TenantID, it.ItemID)
	if errors.Is(err, store.ErrNotFound) {
		return outcome{state: store.HandbackSkipped, err: "no longer in the mailbox"}
	} else if err != nil {
		return outcome{state: store.HandbackPending, next: h.retryAt(it.Attempts), err: "opening the message: " + err.Error()}
	}
	if !item.Sent && item.QueueID != "" {
		// A copy delivered into the mailbox whose delivery was not recorded
		// before a crash, and that the queue then delivered to the primary
		// after a switch back: the primary has it already.
		if direct, err := h.deliveredDirectly(ctx, it.TenantID, item); err != nil {
			body.Close()
			return outcome{state: store.HandbackPending, next: h.retryAt(it.Attempts), err: "reading the tracking log: " + err.Error()}
		} else if direct != "" {
			body.Close()
			return outcome{state: store.HandbackDone, how: "already delivered to the primary service by the queue (" + direct + ")"}
		}
	}
	msgID, err := messageID(body)
	body.Close()
	if err != nil {
		return outcome{state: store.HandbackPending, next: h.retryAt(it.Attempts), err: "reading the message: " + err.Error()}
	}
	open := func() (io.ReadCloser, error) {
		_, b, err := h.Mailboxes.OpenBody(ctx, it.TenantID, it.ItemID)
		return b, err
	}
	// A later attempt may follow one whose outcome was lost (a crash
	// after the primary took the message): the API paths look first.
	recheck := it.Attempts > 1
	var how string
	switch path {
	case PathSMTP:
		if item.Sent {
			return outcome{state: store.HandbackSkipped, err: "sent mail cannot be handed back over SMTP"}
		}
		how, err = h.viaSMTP(ctx, it, item, open)
	case PathGraph:
		how, err = h.viaGraph(ctx, it, item, open, msgID, recheck)
	case PathGmail:
		how, err = h.viaGmail(ctx, it, item, open, msgID, recheck)
	default:
		err = &permanent{fmt.Sprintf("unknown hand-back path %q", path)}
	}
	var perm *permanent
	switch {
	case err == nil:
		return outcome{state: store.HandbackDone, how: how}
	case errors.As(err, &perm):
		return outcome{state: store.HandbackFailed, err: err.Error()}
	}
	return outcome{state: store.HandbackPending, next: h.retryAt(it.Attempts), err: err.Error()}
}

// deliveredDirectly returns the host that the queue delivered the item's
// queue message to for its user, if it was not the mailbox store.
func (h *Handback) deliveredDirectly(ctx context.Context, tenantID int64, item Item) (string, error) {
	evs, err := h.Store.Events(ctx, tenantID, item.QueueID)
	if err != nil {
		return "", err
	}
	for _, e := range evs {
		if e.Kind == "delivered" && strings.EqualFold(e.Rcpt, item.User) && e.Remote != delivery.MailboxRemote {
			return e.Remote, nil
		}
	}
	return "", nil
}

// permanent is a refusal that no retry will change.
type permanent struct{ msg string }

func (e *permanent) Error() string { return e.msg }

// messageID reads the Message-ID field of a message's header section.
func messageID(r io.Reader) (string, error) {
	tp := textproto.NewReader(bufio.NewReader(io.LimitReader(r, 1<<20)))
	h, err := tp.ReadMIMEHeader()
	if err != nil && len(h) == 0 && !errors.Is(err, io.EOF) {
		return "", err
	}
	id := strings.TrimSpace(h.Get("Message-Id"))
	if len(id) > 2 && id[0] == '<' && id[len(id)-1] == '>' && !strings.ContainsAny(id, " \t\"'\\") {
		return id, nil
	}
	return "", nil
}

// viaSMTP re-delivers a received message to the primary routes with its
// original envelope and the marker header.
func (h *Handback) viaSMTP(ctx context.Context, it store.HandbackItem, item Item, open func() (io.ReadCloser, error)) (string, error) {
	targets, err := h.Router.PrimaryTargets(ctx, it.Domain)
	if err != nil {
		return "", fmt.Errorf("routes of %s: %w", it.Domain, err)
	}
	marker := fmt.Sprintf("%s: %d; received=%s; by=%s\r\n", MarkerHeader, it.ItemID,
		item.Received.UTC().Format(time.RFC1123Z), h.Hostname)
	req := delivery.Request{From: item.MailFrom, Rcpts: []string{item.User}, Body8: true, UTF8: !isASCII(item.User) || !isASCII(item.MailFrom),
		Body: func() (io.ReadCloser, error) {
			b, err := open()
			if err != nil {
				return nil, err
			}
			rest, err := withoutReturnPath(b)
			if err != nil {
				b.Close()
				return nil, err
			}
			return struct {
				io.Reader
				io.Closer
			}{io.MultiReader(strings.NewReader(marker), rest), b}, nil
		}}
	res := h.SMTP.Deliver(ctx, targets, req)
	r := res[0]
	reply := fmt.Sprintf("%d %s %s", r.Code, r.Enhanced, r.Text)
	if r.Code == 0 {
		reply = r.Text
	}
	switch {
	case r.OK():
		return "smtp " + r.Remote + ": " + oneLine(reply, 200), nil
	case r.Permanent:
		return "", &permanent{"smtp " + r.Remote + ": " + oneLine(reply, 300)}
	}
	return "", errors.New("smtp " + r.Remote + ": " + oneLine(reply, 300))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// withoutReturnPath drops Return-Path fields at the top of a message: the
// final delivery adds its own (RFC 5321 4.4), and the message is being
// relayed again.
func withoutReturnPath(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	skipping := false
	for {
		line, err := br.ReadString('\n')
		switch {
		case line == "":
		case len(line) >= 12 && strings.EqualFold(line[:12], "return-path:"):
			skipping = true
		case skipping && (line[0] == ' ' || line[0] == '\t'):
		default:
			// The first other line: the rest goes as it is.
			return io.MultiReader(strings.NewReader(line), br), nil
		}
		if errors.Is(err, io.EOF) {
			return strings.NewReader(""), nil
		} else if err != nil {
			return nil, err
		}
	}
}
