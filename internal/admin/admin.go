// Package admin is mailgate's one administration layer. Every change made by
// an operator, a tenant administrator or an end user, from the web console,
// the REST API or the CLI, goes through a method of Service, which
//
//   - checks that the caller's role may make it,
//   - resolves every object inside the caller's tenant (an object of another
//     tenant is simply not found),
//   - validates the input,
//   - changes the store, and
//   - writes the audit entry.
//
// So a rule added here holds on every path. The callers only translate:
// internal/web parses forms and JSON and maps errors to HTTP statuses;
// cmd/mailgate parses arguments and acts as an operator (Operator).
package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/mailgate/mailgate/internal/archive"
	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/continuity"
	"github.com/mailgate/mailgate/internal/dnsx"
	"github.com/mailgate/mailgate/internal/netguard"
	"github.com/mailgate/mailgate/internal/outbound"
	"github.com/mailgate/mailgate/internal/passwd"
	"github.com/mailgate/mailgate/internal/quarantine"
	"github.com/mailgate/mailgate/internal/store"
)

// Actor is who makes a change.
type Actor struct {
	// Name is the audit log's actor: the console login, "api:<token
	// name>" or "cli:<unix user>".
	Name string
	Role store.Role
	// TenantID is the tenant acted on. Administrators and users are bound
	// to theirs; an operator picks one, and with 0 acts on every tenant:
	// an object named by ID, address or domain is then found in whichever
	// tenant has it, while creating a tenant's object needs a tenant.
	TenantID int64
	// Address is an end user's own address.
	Address string
	// IP is the client address ("local" for the CLI).
	IP string
	// AccountID is the caller's own console account (0 for API tokens and
	// the CLI); nobody deletes their own account.
	AccountID int64
}

// Operator is the identity of a system operator outside the console: the
// CLI runs as one.
func Operator(name string) Actor {
	return Actor{Name: name, Role: store.RoleOperator, IP: "local"}
}

// In is a with its tenant set to tenantID.
func (a Actor) In(tenantID int64) Actor {
	a.TenantID = tenantID
	return a
}

// allTenants reports whether a is an operator acting on every tenant.
func (a Actor) allTenants() bool { return a.Role == store.RoleOperator && a.TenantID == 0 }

// tenant is the tenant a creates tenant objects in.
func (a Actor) tenant() (int64, error) {
	if a.TenantID == 0 {
		if a.Role != store.RoleOperator {
			return 0, ErrForbidden
		}
		return 0, Invalidf("choose a tenant first")
	}
	return a.TenantID, nil
}

// may reports whether a's role is at least need.
func (a Actor) may(need store.Role) bool {
	rank := map[store.Role]int{store.RoleUser: 1, store.RoleAdmin: 2, store.RoleOperator: 3}
	return rank[a.Role] >= rank[need] && rank[a.Role] > 0
}

func (a Actor) require(need store.Role) error {
	if !a.may(need) {
		return ErrForbidden
	}
	return nil
}

// Invalid refuses the caller's input; its text is shown to the caller as is
// (HTTP 400 on the web).
type Invalid struct{ Msg string }

func (e Invalid) Error() string { return e.Msg }

// Invalidf makes an Invalid error.
func Invalidf(format string, a ...any) error { return Invalid{fmt.Sprintf(format, a...)} }

// ErrForbidden: the caller's role may not do this (HTTP 403).
var ErrForbidden = errors.New("forbidden")

// Other errors are store.ErrNotFound (also for another tenant's object),
// store.ErrExists, *VerifyError, or internal failures.

// Queue is the queue's operator actions (queue.Queue).
type Queue interface {
	Hold(ctx context.Context, tenantID int64, id, who string) (int, error)
	Release(ctx context.Context, tenantID int64, id, who string) (int, error)
	RetryNow(ctx context.Context, tenantID int64, id, who string) (int, error)
	Delete(ctx context.Context, tenantID int64, id, who string) (int, error)
	Bounce(ctx context.Context, tenantID int64, id, who string) (int, error)
	Flush(ctx context.Context, tenantID int64, who string) (int, error)
}

// Service performs administrative changes.
type Service struct {
	Store      store.Store
	Queue      Queue
	Quarantine *quarantine.Manager
	// Continuity switches domains and hands mail back (mail continuity);
	// nil on nodes without it.
	Continuity *continuity.Service
	// OutHolds decides about held and delayed outbound mail and OutEngine
	// runs a tenant's outbound rules over a pasted message; nil on nodes
	// without outbound protection.
	OutHolds  *outbound.Service
	OutEngine *outbound.Engine
	// Archive opens the node's audit archive (archive.go); nil: none.
	Archive func(ctx context.Context) (*archive.Service, error)
	// Rejudge runs the inbound checks again without writing anything
	// (policy dry runs); nil on nodes without inbound checks.
	Rejudge Rejudger
	// LinkRecords are the attachment download links; nil on nodes
	// without them.
	LinkRecords LinkRecords
	// Learn trains a tenant's spam model with one message (feedback).
	Learn func(ctx context.Context, tenantID int64, raw []byte, spam bool) error
	// Mailboxes are the users' mailboxes (mailboxes.go); nil on nodes
	// without them.
	Mailboxes Mailboxes
	// Mailer queues the mail the administration layer writes
	// (invitations); nil: none is sent.
	Mailer Mailer
	// Passwords hashes new passwords within the node's memory budget for
	// password work (a *passwd.Verifier; passwd.ErrBusy when it is taken).
	// nil: passwd.Hash, unbounded, for offline tools.
	Passwords interface {
		Hash(ctx context.Context, password string) (string, error)
	}
	// Upstreams says which networks the login servers named in tenant
	// settings (login.imap, ...) may be in; the zero value permits public
	// addresses only.
	Upstreams netguard.Policy
	// Resolver looks up domain ownership records and the names of login
	// servers. It should not cache: an
	// administrator verifies right after publishing the record. nil means
	// no resolver is configured.
	Resolver dnsx.Resolver
	Clock    clock.Clock
	Log      *slog.Logger

	// OnboardEnv are the node's values the onboarding wizard fills in.
	OnboardEnv OnboardEnv
}

func (s *Service) now() clock.Clock {
	if s.Clock == nil {
		return clock.System{}
	}
	return s.Clock
}

func (s *Service) hash(ctx context.Context, password string) (string, error) {
	if s.Passwords == nil {
		return passwd.Hash(password)
	}
	return s.Passwords.Hash(ctx, password)
}

func (s *Service) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

// Audit records a change made by a on tenantID (0 = system-wide). The
// methods of Service call it for every change; it is exported for the few
// actions that have no method (running scheduled jobs by hand). A failed
// write is logged and returned, never hidden.
func (s *Service) Audit(ctx context.Context, a Actor, tenantID int64, action, target, before, after string) error {
	e := store.AuditEntry{TenantID: tenantID, At: s.now().Now(), Actor: a.Name, IP: a.IP,
		Action: action, Target: target, Before: before, After: after}
	if err := s.Store.AddAudit(ctx, e); err != nil {
		s.log().Error("audit log write failed", "action", action, "err", err)
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// randomHex returns n random bytes, hex encoded.
func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // cannot happen on supported systems
	}
	return hex.EncodeToString(b)
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TenantSettings returns a lookup of a tenant's tenant-level policy values.
func TenantSettings(ctx context.Context, st store.PolicyStore, tenantID int64) (func(key string) (string, bool), error) {
	ss, err := st.Settings(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	return func(key string) (string, bool) {
		for _, x := range ss {
			if x.Scope == store.ScopeTenant && x.Key == key {
				return x.Value, true
			}
		}
		return "", false
	}, nil
}

func (s *Service) tenantSetting(ctx context.Context, tenantID int64, key string) (string, error) {
	get, err := TenantSettings(ctx, s.Store, tenantID)
	if err != nil {
		return "", err
	}
	v, _ := get(key)
	return v, nil
}
