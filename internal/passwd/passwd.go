// Package passwd hashes and verifies passwords with argon2id (RFC 9106),
// encoded in the PHC string format so parameters can change over time: a
// hash carries its own parameters and is verified with them.
//
// Every password check the servers make goes through a Verifier, which
// bounds the memory that checks hold at once. argon2id is memory-hard on
// purpose, so without a bound a flood of wrong passwords is a flood of
// large allocations.
package passwd

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id's cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8  // lanes
}

// DefaultParams are those of new hashes: 19 MiB, two passes, one lane (the
// OWASP Password Storage Cheat Sheet's first argon2id configuration). Hashes
// made with RFC 9106's 64 MiB / t=3 option by earlier versions still verify.
var DefaultParams = Params{Memory: 19 * 1024, Time: 2, Threads: 1}

// DefaultBudget is the memory, in KiB, that a Verifier's checks may hold at
// once unless told otherwise: 256 MiB, thirteen checks with DefaultParams.
const DefaultBudget = 256 * 1024

const (
	keyLen  = 32
	saltLen = 16
	// Limits on what a stored hash may ask for, so a damaged or hostile hash
	// cannot make one check arbitrarily expensive.
	maxTime    = 16
	maxThreads = 16
	maxKeyLen  = 64
)

var b64 = base64.RawStdEncoding

var (
	// ErrMismatch is returned when the password does not match.
	ErrMismatch = errors.New("password mismatch")
	// ErrBusy is returned when the memory budget is taken by other checks;
	// the caller answers "try again shortly" (HTTP 429, SMTP 454).
	ErrBusy = errors.New("too many password checks at once")
	// ErrUnsupported is returned for a hash this package cannot verify: not
	// argon2id, malformed, or costlier than the Verifier's budget.
	ErrUnsupported = errors.New("unsupported password hash")
)

// Hash returns an encoded argon2id hash of password with DefaultParams. It
// is not bounded by any Verifier: it is for the command line and other
// offline tools. Servers use Verifier.Hash.
func Hash(password string) (string, error) {
	return hash(password, DefaultParams)
}

func hash(password string, p Params) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, keyLen)
	return encode(p, salt, key), nil
}

func encode(p Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// decoded is a parsed PHC string.
type decoded struct {
	p         Params
	salt, key []byte
}

func decode(encoded string) (decoded, error) {
	var d decoded
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return d, fmt.Errorf("%w: not an argon2id PHC string", ErrUnsupported)
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return d, fmt.Errorf("%w: argon2 version %q", ErrUnsupported, parts[2])
	}
	var m, t, p uint64
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return d, fmt.Errorf("%w: parameter %q", ErrUnsupported, kv)
		}
		switch k {
		case "m":
			m = n
		case "t":
			t = n
		case "p":
			p = n
		default:
			return d, fmt.Errorf("%w: parameter %q", ErrUnsupported, kv)
		}
	}
	if t < 1 || t > maxTime || p < 1 || p > maxThreads || m < 8*p {
		return d, fmt.Errorf("%w: parameters m=%d,t=%d,p=%d out of range", ErrUnsupported, m, t, p)
	}
	d.p = Params{Memory: uint32(m), Time: uint32(t), Threads: uint8(p)}
	var err error
	if d.salt, err = b64.DecodeString(parts[4]); err != nil || len(d.salt) < 8 {
		return d, fmt.Errorf("%w: salt", ErrUnsupported)
	}
	if d.key, err = b64.DecodeString(parts[5]); err != nil || len(d.key) < 16 || len(d.key) > maxKeyLen {
		return d, fmt.Errorf("%w: key", ErrUnsupported)
	}
	return d, nil
}

// Options configure a Verifier.
type Options struct {
	// Budget is the memory in KiB that checks may hold at once
	// (DefaultBudget when 0). A check runs only if its hash's memory fits
	// in what is left; otherwise it is refused with ErrBusy, never queued,
	// so a flood cannot pile up goroutines either.
	Budget uint32
	// Params are those of new hashes (DefaultParams when zero).
	Params Params
	// BeforeHash, when set, runs inside the bound just before each argon2
	// computation (instrumentation; tests use it to hold the bound).
	BeforeHash func()
}

// Verifier hashes and verifies passwords within a memory budget. One
// Verifier serves the whole process (console, API and SMTP AUTH share it),
// so the budget is the worst case for all of them together. Safe for
// concurrent use.
type Verifier struct {
	budget     int64
	params     Params
	before     func()
	dummy      decoded
	mu         sync.Mutex
	inUse      int64 // KiB
	running    int
	peakKiB    int64
	peakChecks int
	checks     atomic.Int64
	dummies    atomic.Int64
	busy       atomic.Int64
}

// New returns a Verifier. The budget must hold at least one hash with the
// new-hash parameters.
func New(o Options) (*Verifier, error) {
	if o.Budget == 0 {
		o.Budget = DefaultBudget
	}
	if o.Params == (Params{}) {
		o.Params = DefaultParams
	}
	p := o.Params
	if p.Time < 1 || p.Time > maxTime || p.Threads < 1 || p.Threads > maxThreads || p.Memory < 8*uint32(p.Threads) {
		return nil, fmt.Errorf("passwd: parameters m=%d,t=%d,p=%d out of range", p.Memory, p.Time, p.Threads)
	}
	if p.Memory > o.Budget {
		return nil, fmt.Errorf("passwd: memory budget %d KiB is smaller than one hash (%d KiB)", o.Budget, p.Memory)
	}
	v := &Verifier{budget: int64(o.Budget), params: p, before: o.BeforeHash}
	// A fixed salt and key: the dummy never matches, and costs what a real
	// check with the current parameters costs.
	v.dummy = decoded{p: p, salt: []byte("mailgate-dummy-salt"), key: make([]byte, keyLen)}
	return v, nil
}

// MustNew is New for options known to be valid (the defaults); it panics
// otherwise.
func MustNew(o Options) *Verifier {
	v, err := New(o)
	if err != nil {
		panic(err)
	}
	return v
}

// Budget is the memory budget in KiB.
func (v *Verifier) Budget() int64 { return v.budget }

// acquire reserves kib of the budget without waiting.
func (v *Verifier) acquire(kib int64) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.inUse+kib > v.budget {
		return false
	}
	v.inUse += kib
	v.running++
	v.peakKiB = max(v.peakKiB, v.inUse)
	v.peakChecks = max(v.peakChecks, v.running)
	return true
}

func (v *Verifier) release(kib int64) {
	v.mu.Lock()
	v.inUse -= kib
	v.running--
	v.mu.Unlock()
}

// compute runs argon2id within the budget.
func (v *Verifier) compute(ctx context.Context, password string, p Params, salt []byte, n int) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	kib := int64(p.Memory)
	if kib > v.budget {
		return nil, fmt.Errorf("%w: hash needs %d KiB, more than the %d KiB budget", ErrUnsupported, kib, v.budget)
	}
	if !v.acquire(kib) {
		v.busy.Add(1)
		return nil, ErrBusy
	}
	defer v.release(kib)
	v.checks.Add(1)
	if v.before != nil {
		v.before()
	}
	return argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(n)), nil
}

// Verify checks password against an encoded hash in constant time, with
// the hash's own parameters. It returns nil on a match, ErrMismatch,
// ErrBusy when the budget is full (nothing was checked), an error wrapping
// ErrUnsupported for a hash it cannot use, or ctx's error.
func (v *Verifier) Verify(ctx context.Context, encoded, password string) error {
	d, err := decode(encoded)
	if err != nil {
		return err
	}
	return v.verify(ctx, d, password)
}

func (v *Verifier) verify(ctx context.Context, d decoded, password string) error {
	got, err := v.compute(ctx, password, d.p, d.salt, len(d.key))
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(got, d.key) != 1 {
		return ErrMismatch
	}
	return nil
}

// VerifyDummy spends what a real check costs and returns ErrMismatch (or
// ErrBusy, like Verify). Callers run it for a login that does not exist, so
// that the answer neither comes sooner nor differs from a wrong password.
func (v *Verifier) VerifyDummy(ctx context.Context, password string) error {
	v.dummies.Add(1)
	if err := v.verify(ctx, v.dummy, password); err != nil {
		return err
	}
	return ErrMismatch
}

// Hash returns an encoded hash of password with the Verifier's parameters,
// within the budget (ErrBusy when full).
func (v *Verifier) Hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	key, err := v.compute(ctx, password, v.params, salt, keyLen)
	if err != nil {
		return "", err
	}
	return encode(v.params, salt, key), nil
}

// Stats are a Verifier's counters since it was made.
type Stats struct {
	Checks     int64 // argon2 computations run (dummies included)
	Dummies    int64 // VerifyDummy calls
	Busy       int64 // checks refused because the budget was full
	InUseKiB   int64 // memory held by running checks now
	PeakKiB    int64 // most memory ever held at once
	PeakChecks int   // most checks ever running at once
}

// Stats returns the counters.
func (v *Verifier) Stats() Stats {
	v.mu.Lock()
	defer v.mu.Unlock()
	return Stats{Checks: v.checks.Load(), Dummies: v.dummies.Load(), Busy: v.busy.Load(),
		InUseKiB: v.inUse, PeakKiB: v.peakKiB, PeakChecks: v.peakChecks}
}
