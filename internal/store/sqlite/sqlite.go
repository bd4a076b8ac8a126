// Package sqlite is the embedded implementation of store.Store on SQLite
// (modernc.org/sqlite, pure Go). WAL mode with synchronous=FULL makes every
// commit durable; a single writer goroutine batches concurrent callers' writes
// into one transaction (group commit), so N sessions cost one fsync, not N.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailgate/mailgate/internal/store"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// maxBatch bounds how many callers share one commit; larger batches add
// latency for the first caller without saving much more.
const maxBatch = 256

type writeOp struct {
	fn   func(*sql.Tx) error
	done chan error
}

// DB is a store.Store backed by one SQLite file.
type DB struct {
	w   *sql.DB // exactly one connection: SQLite has one writer
	r   *sql.DB // readers (WAL lets them run beside the writer)
	ops chan writeOp
	// accepts are acceptances a client waits for (an SMTP transaction's
	// answer), and small delivery outcomes that share their commits
	// (Complete): the writer commits them in batches of their own, taking
	// turns with the other writes (writer), so accepting a message never
	// waits behind a backlog of deliveries' bulk writes (a mailing list's
	// thousand outcomes).
	accepts chan writeOp
	stop    chan struct{}
	// writerDone is closed when the writer has returned: every op it took
	// has its answer by then, and an op still in a channel never will.
	writerDone chan struct{}
	// indexKick wakes the mailbox search indexer (mailindex.go).
	indexKick chan struct{}
	// trackKick wakes the tracking search indexer (track.go);
	// trackPaused holds it (tests).
	trackKick   chan struct{}
	trackPaused atomic.Bool
	wg          sync.WaitGroup
	log         *slog.Logger
	closeMu     sync.Once
	zone        atomic.Pointer[time.Location] // report days; nil = time.Local (stats.go)
	stmts       sync.Map                      // query text -> *sql.Stmt on r (stmt.go)
}

var _ store.Store = (*DB)(nil)

// Open opens (creating if needed) the database at path, migrates it and
// starts the group-commit writer.
func Open(ctx context.Context, path string, log *slog.Logger) (*DB, error) {
	if log == nil {
		log = slog.Default()
	}
	// temp_store(MEMORY): the savepoint each write of a group commit runs
	// in keeps its sub-journal in memory instead of a temporary file
	// written page by page (it is never needed after a crash: the WAL is).
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(15000)&_pragma=foreign_keys(1)&_pragma=temp_store(MEMORY)&_txlock=immediate"
	conns, err := newCachingConnector(dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	w := sql.OpenDB(conns)
	w.SetMaxOpenConns(1)
	r := sql.OpenDB(conns)
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8) // keep connections, and the statements prepared on them
	db := &DB{w: w, r: r, ops: make(chan writeOp, maxBatch), accepts: make(chan writeOp, maxBatch), stop: make(chan struct{}), writerDone: make(chan struct{}), indexKick: make(chan struct{}, 1), trackKick: make(chan struct{}, 1), log: log}
	if err := db.migrate(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, err
	}
	db.wg.Add(3)
	go db.writer()
	go db.indexer()
	go db.trackIndexer()
	return db, nil
}

func (db *DB) migrate(ctx context.Context) error {
	if _, err := db.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var v int
	err := db.w.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := db.w.ExecContext(ctx, `INSERT INTO schema_version(version) VALUES (0)`); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this mailgate (%d)", v, len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		tx, err := db.w.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = ?`, i+1); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	return nil
}

// Close stops the writer (after draining queued writes) and closes the files.
func (db *DB) Close() error {
	db.closeMu.Do(func() { close(db.stop) })
	db.wg.Wait()
	db.closeStmts()
	err1 := db.w.Close()
	err2 := db.r.Close()
	return errors.Join(err1, err2)
}

// write runs fn inside the next group commit and waits until that commit is
// durable. Once submitted, the wait ignores ctx: the caller must learn whether
// its write committed (an Enqueue that committed must not be reported as
// failed, or the client would resend and we would deliver twice).
func (db *DB) write(ctx context.Context, fn func(*sql.Tx) error) error {
	return db.writeTo(ctx, db.ops, fn)
}

// writeAccept is write for an acceptance: committed ahead of the writes
// already waiting (DB.accepts).
func (db *DB) writeAccept(ctx context.Context, fn func(*sql.Tx) error) error {
	return db.writeTo(ctx, db.accepts, fn)
}

func (db *DB) writeTo(ctx context.Context, ops chan writeOp, fn func(*sql.Tx) error) error {
	op := writeOp{fn: fn, done: make(chan error, 1)}
	select {
	case ops <- op:
	case <-ctx.Done():
		return ctx.Err()
	case <-db.stop:
		return errors.New("store closed")
	}
	// The send can win over a closed stop (both were ready) after the
	// writer's last drain: that op is never taken, never committed.
	select {
	case err := <-op.done:
		return err
	case <-db.writerDone:
		select {
		case err := <-op.done:
			return err
		default:
			return errors.New("store closed")
		}
	}
}

func (db *DB) writer() {
	defer db.wg.Done()
	defer close(db.writerDone)
	// When both kinds wait, they take turns: an acceptance waits for at
	// most one batch of other writes, and a stream of acceptances never
	// holds deliveries' outcomes back until their leases run out.
	preferAccepts := true
	for {
		prefer, other := db.accepts, db.ops
		if !preferAccepts {
			prefer, other = db.ops, db.accepts
		}
		var first writeOp
		var ops chan writeOp
		select {
		case first = <-prefer:
			ops = prefer
		default:
			select {
			case first = <-prefer:
				ops = prefer
			case first = <-other:
				ops = other
			case <-db.stop:
				// Drain whatever was submitted before the stop.
				for {
					select {
					case op := <-db.accepts:
						db.commit(op, none)
					case op := <-db.ops:
						db.commit(op, none)
					default:
						return
					}
				}
			}
		}
		preferAccepts = ops != db.accepts
		// A batch is of one kind, and takes the ops of its kind that are
		// waiting, up to maxBatch. A batch of other writes stops taking
		// more once an acceptance waits: it commits what it has, and the
		// acceptance goes next.
		db.commit(first, func() (writeOp, bool) {
			if ops == db.ops && len(db.accepts) > 0 {
				return writeOp{}, false
			}
			select {
			case op := <-ops:
				return op, true
			default:
				return writeOp{}, false
			}
		})
	}
}

func none() (writeOp, bool) { return writeOp{}, false }

// commit runs first, then each op next hands out (until it has none, or
// maxBatch ops ran), in one transaction. Each op runs inside a savepoint
// so one failing op (a unique-key violation, say) does not undo the
// others.
func (db *DB) commit(first writeOp, next func() (writeOp, bool)) {
	ctx := context.Background()
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		first.done <- fmt.Errorf("begin: %w", err)
		return
	}
	ops := []writeOp{first}
	results := []error{runOp(tx, first)}
	for len(ops) < maxBatch {
		op, ok := next()
		if !ok {
			break
		}
		ops = append(ops, op)
		results = append(results, runOp(tx, op))
	}
	if err := tx.Commit(); err != nil {
		// Nothing in the batch is durable; every caller must hear so.
		db.log.Error("store commit failed", "err", err, "batch", len(ops))
		for _, op := range ops {
			op.done <- fmt.Errorf("commit: %w", err)
		}
		return
	}
	for i, op := range ops {
		op.done <- results[i]
	}
}

// runOp runs one op of a batch inside its own savepoint.
func runOp(tx *sql.Tx, op writeOp) error {
	if _, err := tx.Exec(`SAVEPOINT op`); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	var res error
	if err := op.fn(tx); err != nil {
		res = err
		if _, rerr := tx.Exec(`ROLLBACK TO op`); rerr != nil {
			res = errors.Join(err, rerr)
		}
	}
	if _, err := tx.Exec(`RELEASE op`); err != nil && res == nil {
		res = fmt.Errorf("release savepoint: %w", err)
	}
	return res
}

func us(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromUS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint")
}

// --- tenancy ---

// CreateTenant adds a tenant; the name must be unique.
func (db *DB) CreateTenant(ctx context.Context, name string) (store.Tenant, error) {
	t := store.Tenant{Name: name, Created: time.Now().UTC()}
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`INSERT INTO tenants(name, created_us) VALUES (?, ?)`, name, us(t.Created))
		if isUnique(err) {
			return fmt.Errorf("tenant %q: %w", name, store.ErrExists)
		} else if err != nil {
			return fmt.Errorf("create tenant: %w", err)
		}
		t.ID, err = res.LastInsertId()
		return err
	})
	return t, err
}

// TenantByName finds a tenant.
func (db *DB) TenantByName(ctx context.Context, name string) (store.Tenant, error) {
	var t store.Tenant
	var c int64
	err := db.r.QueryRowContext(ctx, `SELECT id, name, created_us FROM tenants WHERE name = ?`, name).Scan(&t.ID, &t.Name, &c)
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("tenant %q: %w", name, store.ErrNotFound)
	}
	t.Created = fromUS(c)
	return t, err
}

// Tenants lists all tenants (operator view).
func (db *DB) Tenants(ctx context.Context) ([]store.Tenant, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT id, name, created_us FROM tenants ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	defer rows.Close()
	var out []store.Tenant
	for rows.Next() {
		var t store.Tenant
		var c int64
		if err := rows.Scan(&t.ID, &t.Name, &c); err != nil {
			return nil, err
		}
		t.Created = fromUS(c)
		out = append(out, t)
	}
	return out, rows.Err()
}

// DeleteTenant removes a tenant with its domains, users and routes. Queued
// messages stay until delivered or deleted.
func (db *DB) DeleteTenant(ctx context.Context, id int64) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM tenants WHERE id = ?`, id)
		if err := affected(res, err, "tenant"); err != nil {
			return err
		}
		// Its settings, groups and networks went with it: a tenant
		// created later under the same id must not see them in a cache.
		return bumpPolicy(tx, id)
	})
}

func affected(res sql.Result, err error, what string) error {
	if err != nil {
		return fmt.Errorf("delete %s: %w", what, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

// CreateDomain adds a domain to a tenant; a domain belongs to one tenant only.
func (db *DB) CreateDomain(ctx context.Context, tenantID int64, name string) (store.Domain, error) {
	d := store.Domain{TenantID: tenantID, Name: name, Created: time.Now().UTC()}
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`INSERT INTO domains(tenant_id, name, created_us) VALUES (?, ?, ?)`, tenantID, name, us(d.Created))
		if isUnique(err) {
			return fmt.Errorf("domain %q: %w", name, store.ErrExists)
		} else if err != nil {
			return fmt.Errorf("create domain: %w", err)
		}
		d.ID, err = res.LastInsertId()
		return err
	})
	return d, err
}

// DomainByName finds the domain (and so the tenant) serving name.
func (db *DB) DomainByName(ctx context.Context, name string) (store.Domain, error) {
	var d store.Domain
	var c int64
	err := db.queryRow(ctx, `SELECT id, tenant_id, name, created_us FROM domains WHERE name = ?`, name).Scan(&d.ID, &d.TenantID, &d.Name, &c)
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("domain %q: %w", name, store.ErrNotFound)
	} else if err != nil {
		return d, fmt.Errorf("domain %q: %w", name, err)
	}
	d.Created = fromUS(c)
	return d, nil
}

// Domains lists a tenant's domains.
func (db *DB) Domains(ctx context.Context, tenantID int64) ([]store.Domain, error) {
	rows, err := db.query(ctx, `SELECT id, tenant_id, name, created_us FROM domains WHERE tenant_id = ? ORDER BY name`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	defer rows.Close()
	var out []store.Domain
	for rows.Next() {
		var d store.Domain
		var c int64
		if err := rows.Scan(&d.ID, &d.TenantID, &d.Name, &c); err != nil {
			return nil, err
		}
		d.Created = fromUS(c)
		out = append(out, d)
	}
	return out, rows.Err()
}

// DeleteDomain removes a tenant's domain with its routes.
func (db *DB) DeleteDomain(ctx context.Context, tenantID int64, name string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM domains WHERE tenant_id = ? AND name = ?`, tenantID, name)
		return affected(res, err, "domain "+name)
	})
}

// SetRoutes replaces a domain's delivery targets.
func (db *DB) SetRoutes(ctx context.Context, tenantID, domainID int64, routes []store.Route) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRow(`SELECT count(*) FROM domains WHERE id = ? AND tenant_id = ?`, domainID, tenantID).Scan(&n); err != nil {
			return fmt.Errorf("set routes: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("domain: %w", store.ErrNotFound)
		}
		if _, err := tx.Exec(`DELETE FROM routes WHERE tenant_id = ? AND domain_id = ?`, tenantID, domainID); err != nil {
			return fmt.Errorf("set routes: %w", err)
		}
		for _, r := range routes {
			if _, err := tx.Exec(`INSERT INTO routes(tenant_id, domain_id, priority, target, tls) VALUES (?, ?, ?, ?, ?)`,
				tenantID, domainID, r.Priority, r.Target, r.TLS); err != nil {
				return fmt.Errorf("set routes: %w", err)
			}
		}
		return nil
	})
}

// Routes lists a domain's delivery targets, lowest priority value first.
func (db *DB) Routes(ctx context.Context, tenantID, domainID int64) ([]store.Route, error) {
	rows, err := db.query(ctx, `SELECT id, tenant_id, domain_id, priority, target, tls FROM routes WHERE tenant_id = ? AND domain_id = ? ORDER BY priority, id`, tenantID, domainID)
	if err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	defer rows.Close()
	var out []store.Route
	for rows.Next() {
		var r store.Route
		if err := rows.Scan(&r.ID, &r.TenantID, &r.DomainID, &r.Priority, &r.Target, &r.TLS); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// CreateUser adds a known address to a tenant.
func (db *DB) CreateUser(ctx context.Context, tenantID int64, address string) (store.User, error) {
	u := store.User{TenantID: tenantID, Address: address, Created: time.Now().UTC()}
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`INSERT INTO users(tenant_id, address, created_us) VALUES (?, ?, ?)`, tenantID, address, us(u.Created))
		if isUnique(err) {
			return fmt.Errorf("user %q: %w", address, store.ErrExists)
		} else if err != nil {
			return fmt.Errorf("create user: %w", err)
		}
		u.ID, err = res.LastInsertId()
		return err
	})
	return u, err
}

// UserExists reports whether address is a known user of the tenant.
func (db *DB) UserExists(ctx context.Context, tenantID int64, address string) (bool, error) {
	var one int
	err := db.queryRow(ctx, `SELECT 1 FROM users WHERE tenant_id = ? AND address = ?`, tenantID, address).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("user lookup: %w", err)
	}
	return true, nil
}

// Users lists a tenant's users.
func (db *DB) Users(ctx context.Context, tenantID int64) ([]store.User, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT id, tenant_id, address, created_us FROM users WHERE tenant_id = ? ORDER BY address`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []store.User
	for rows.Next() {
		var u store.User
		var c int64
		if err := rows.Scan(&u.ID, &u.TenantID, &u.Address, &c); err != nil {
			return nil, err
		}
		u.Created = fromUS(c)
		out = append(out, u)
	}
	return out, rows.Err()
}

// DeleteUser removes a user.
func (db *DB) DeleteUser(ctx context.Context, tenantID int64, address string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM users WHERE tenant_id = ? AND address = ?`, tenantID, address)
		return affected(res, err, "user "+address)
	})
}

// AddRelayNet allows an IP range to relay for the tenant.
func (db *DB) AddRelayNet(ctx context.Context, tenantID int64, p netip.Prefix) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO relay_nets(tenant_id, prefix) VALUES (?, ?)`, tenantID, p.Masked().String())
		if isUnique(err) {
			return fmt.Errorf("relay net %s: %w", p, store.ErrExists)
		}
		return err
	})
}

// RelayNets lists a tenant's relay ranges.
func (db *DB) RelayNets(ctx context.Context, tenantID int64) ([]store.RelayNet, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT id, tenant_id, prefix FROM relay_nets WHERE tenant_id = ? ORDER BY prefix`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("relay nets: %w", err)
	}
	defer rows.Close()
	var out []store.RelayNet
	for rows.Next() {
		var n store.RelayNet
		var p string
		if err := rows.Scan(&n.ID, &n.TenantID, &p); err != nil {
			return nil, err
		}
		n.Prefix, err = netip.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("relay net %q: %w", p, err)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// DeleteRelayNet removes a relay range.
func (db *DB) DeleteRelayNet(ctx context.Context, tenantID int64, p netip.Prefix) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM relay_nets WHERE tenant_id = ? AND prefix = ?`, tenantID, p.Masked().String())
		return affected(res, err, "relay net")
	})
}

// TenantForRelayIP finds the tenant whose relay ranges contain ip; the most
// specific range wins, so a shared /16 and a customer's /32 do not conflict.
func (db *DB) TenantForRelayIP(ctx context.Context, ip netip.Addr) (int64, bool, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT tenant_id, prefix FROM relay_nets`)
	if err != nil {
		return 0, false, fmt.Errorf("relay nets: %w", err)
	}
	defer rows.Close()
	best, bestBits := int64(0), -1
	ip = ip.Unmap()
	for rows.Next() {
		var tid int64
		var ps string
		if err := rows.Scan(&tid, &ps); err != nil {
			return 0, false, err
		}
		p, err := netip.ParsePrefix(ps)
		if err != nil {
			continue
		}
		if p.Contains(ip) && p.Bits() > bestBits {
			best, bestBits = tid, p.Bits()
		}
	}
	return best, bestBits >= 0, rows.Err()
}

// SetRelayLogin creates or replaces an SMTP AUTH login for outbound relay.
func (db *DB) SetRelayLogin(ctx context.Context, tenantID int64, username, hash string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		var owner int64
		err := tx.QueryRow(`SELECT tenant_id FROM relay_logins WHERE username = ?`, username).Scan(&owner)
		if err == nil && owner != tenantID {
			return fmt.Errorf("login %q: %w", username, store.ErrExists)
		}
		_, err = tx.Exec(`INSERT INTO relay_logins(tenant_id, username, hash) VALUES (?, ?, ?)
			ON CONFLICT(username) DO UPDATE SET hash = excluded.hash`, tenantID, username, hash)
		return err
	})
}

// RelayLogin finds an SMTP AUTH login.
func (db *DB) RelayLogin(ctx context.Context, username string) (store.RelayLogin, error) {
	var l store.RelayLogin
	err := db.r.QueryRowContext(ctx, `SELECT id, tenant_id, username, hash FROM relay_logins WHERE username = ?`, username).Scan(&l.ID, &l.TenantID, &l.Username, &l.Hash)
	if errors.Is(err, sql.ErrNoRows) {
		return l, fmt.Errorf("login: %w", store.ErrNotFound)
	}
	return l, err
}
