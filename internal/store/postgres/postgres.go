// Package postgres is the implementation of store.Store on PostgreSQL
// (pgx, pgxpool), for several mailgate nodes sharing one store. It behaves
// as the SQLite store does, as callers see it: the same errors, orders,
// time precision (microseconds) and case rules; the conformance suite in
// store/storetest runs against both.
//
// Every write method is one transaction, committed before it returns
// (durable when the server runs with synchronous_commit on, the default).
// Where the SQLite store relies on its single writer, this one takes locks:
// a message's row while its recipients' states change, a transaction-scoped
// advisory lock per (tenant, recipient) for the quarantine quota, and
// FOR UPDATE SKIP LOCKED for queue claims, so nodes never block on each
// other's claimed work. Counters and other upserts are written in sorted
// order, and a transaction that still loses a deadlock or serialization
// race is retried whole.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailgate/mailgate/internal/store"
)

// Config says how to reach the database.
type Config struct {
	// DSN is a libpq connection string or postgres:// URL. The PG*
	// environment variables and the password file (~/.pgpass, PGPASSFILE)
	// fill in what it leaves out, as for psql.
	DSN string
	// Password, when not empty, replaces the DSN's (read from a secret file
	// by the caller, so the configuration file need not hold it).
	Password string
}

// defaultMaxConns is the pool size when the DSN sets no pool_max_conns: a
// node's SMTP sessions and delivery workers share it, and a transaction
// holds a connection only for its few statements.
const defaultMaxConns = 16

// defaultConnectTimeout bounds making one connection when neither the DSN
// (connect_timeout) nor PGCONNECT_TIMEOUT sets a limit, instead of
// pgxpool's two minutes: a server that accepts TCP and never answers (a
// wrong port, a balancer or firewall without a backend) stops a node at
// start within it, and during an outage a session waits no longer for a
// connection before its client gets 451.
var defaultConnectTimeout = 15 * time.Second

// writeTimeout bounds a write transaction once it has started. Its context
// no longer follows the caller's cancellation: a caller must learn whether
// its write committed (an Accept that committed must not be reported as
// failed because the client hung up, or the retry would deliver twice).
const writeTimeout = 60 * time.Second

// retries is how many times a transaction that lost a deadlock or a
// serialization race is run again before its error is returned.
const retries = 5

// DB is a store.Store on a PostgreSQL database.
type DB struct {
	pool *pgxpool.Pool
	conn conn // the pool, with string arguments made storable (text.go)
	log  *slog.Logger
	zone atomic.Pointer[time.Location] // report days; nil = time.Local (stats.go)
}

var _ store.Store = (*DB)(nil)

// Open connects to the database, applies pending migrations (under an
// advisory lock, so nodes starting together migrate once) and returns the
// store. A connection or authentication failure is one line naming the
// server, database and user, never the password.
func Open(ctx context.Context, c Config, log *slog.Logger) (*DB, error) {
	if log == nil {
		log = slog.Default()
	}
	pool, err := connect(ctx, c)
	if err != nil {
		return nil, err
	}
	from, to, err := migrate(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	if from != to {
		log.Info("store schema migrated", "from", from, "to", to)
	}
	return &DB{pool: pool, conn: conn{pool}, log: log}, nil
}

// Migrate brings the database's schema up to date and returns the schema
// versions before and after (`mailgate migrate`). Open does the same.
func Migrate(ctx context.Context, c Config) (from, to int, err error) {
	pool, err := connect(ctx, c)
	if err != nil {
		return 0, 0, err
	}
	defer pool.Close()
	return migrate(ctx, pool)
}

// SchemaVersion is the number of migrations applied to the database.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := db.conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	return v, nil
}

// Pool is the store's connection pool, for tools that work on every
// table as it is (mailgate migrate-store) and for the archive's search
// index (package archive/pgindex), whose table this schema creates. Text
// written through it directly must pass through Storable.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// Close closes the pool's connections.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// connect parses the DSN and opens a pool with one connection made, so
// that a wrong address, database or password is reported at start.
func connect(ctx context.Context, c Config) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(c.DSN)
	if err != nil {
		return nil, fmt.Errorf("postgres store: bad dsn: %s", oneLine(redact(err.Error(), c.Password)))
	}
	if c.Password != "" {
		cfg.ConnConfig.Password = c.Password
	}
	if !strings.Contains(c.DSN, "pool_max_conns") {
		cfg.MaxConns = defaultMaxConns
	}
	if cfg.ConnConfig.ConnectTimeout <= 0 {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	pw := cfg.ConnConfig.Password
	where := fmt.Sprintf("%s database %s user %s", target(cfg.ConnConfig), cfg.ConnConfig.Database, cfg.ConnConfig.User)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %s: %s", where, oneLine(redact(err.Error(), pw)))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		msg := cause(err)
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			msg = fmt.Sprintf("no answer within %s (connect_timeout): is a PostgreSQL server listening there?", cfg.ConnConfig.ConnectTimeout)
		}
		return nil, fmt.Errorf("postgres store: cannot connect to %s: %s", where, oneLine(redact(msg, pw)))
	}
	return pool, nil
}

// target names the server: host:port or the Unix socket directory.
func target(c *pgx.ConnConfig) string {
	if strings.HasPrefix(c.Host, "/") {
		return "socket " + c.Host
	}
	return "server " + c.Host + ":" + strconv.Itoa(int(c.Port))
}

// cause is the innermost useful message of a connection error (pgconn's
// own wrapping repeats the user and database, which connect already names).
func cause(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Message + " (SQLSTATE " + pgErr.Code + ")"
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && ce.Unwrap() != nil {
		return ce.Unwrap().Error()
	}
	return err.Error()
}

// redact removes a password from an error message.
func redact(msg, password string) string {
	if password != "" {
		msg = strings.ReplaceAll(msg, password, "xxxxx")
	}
	return msg
}

// oneLine folds a multi-line error (a line per address or TLS mode
// tried, often the same) into one line without repeats.
func oneLine(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		l = strings.Join(strings.Fields(l), " ")
		if l != "" && !slices.Contains(parts, l) {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}

// ReadPasswordFile reads a password file: its first line, without the line end.
func ReadPasswordFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimRight(line, "\r"), nil
}

// --- transactions ---

// tx is a write transaction; its statements run under the transaction's
// context.
type tx struct {
	ctx context.Context
	t   pgx.Tx
}

// Exec, Query and QueryRow make string arguments storable (text.go).
func (x tx) Exec(q string, args ...any) (pgconn.CommandTag, error) {
	return x.t.Exec(x.ctx, q, storableArgs(args)...)
}
func (x tx) Query(q string, args ...any) (pgx.Rows, error) {
	return x.t.Query(x.ctx, q, storableArgs(args)...)
}
func (x tx) QueryRow(q string, args ...any) pgx.Row {
	return x.t.QueryRow(x.ctx, q, storableArgs(args)...)
}

// SendBatch runs the statements queued (with queue) in one round trip;
// the caller reads every result in order and closes the results.
func (x tx) SendBatch(b *pgx.Batch) pgx.BatchResults { return x.t.SendBatch(x.ctx, b) }

// write runs fn in a transaction and commits it. fn may run more than
// once (after a deadlock or serialization failure), so it must set its
// results from scratch each time.
func (db *DB) write(ctx context.Context, fn func(tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		err := pgx.BeginFunc(wctx, db.pool, func(t pgx.Tx) error { return fn(tx{wctx, t}) })
		if err == nil || attempt >= retries || !retryable(err) {
			return err
		}
		db.log.Debug("store transaction retried", "err", err, "attempt", attempt)
	}
}

func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

func isUnique(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
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

// args builds a query's numbered parameters.
type args []any

// add appends v and returns its placeholder.
func (a *args) add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}

// affected turns a statement's result into the error for what: its own
// error, or store.ErrNotFound when it changed no row.
func affected(tag pgconn.CommandTag, err error) func(what string) error {
	return func(what string) error {
		if err != nil {
			return fmt.Errorf("delete %s: %w", what, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%s: %w", what, store.ErrNotFound)
		}
		return nil
	}
}

// collect scans every row with scan.
func collect[T any](rows pgx.Rows, err error, scan func(pgx.Rows) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// --- tenancy ---

// CreateTenant adds a tenant; the name must be unique.
func (db *DB) CreateTenant(ctx context.Context, name string) (store.Tenant, error) {
	t := store.Tenant{Name: name, Created: time.Now().UTC()}
	err := db.write(ctx, func(x tx) error {
		err := x.QueryRow(`INSERT INTO tenants(name, created_us) VALUES ($1, $2) RETURNING id`, name, us(t.Created)).Scan(&t.ID)
		if isUnique(err) {
			return fmt.Errorf("tenant %q: %w", name, store.ErrExists)
		} else if err != nil {
			return fmt.Errorf("create tenant: %w", err)
		}
		return nil
	})
	return t, err
}

func scanTenant(r pgx.Row) (store.Tenant, error) {
	var t store.Tenant
	var c int64
	err := r.Scan(&t.ID, &t.Name, &c)
	t.Created = fromUS(c)
	return t, err
}

// TenantByName finds a tenant.
func (db *DB) TenantByName(ctx context.Context, name string) (store.Tenant, error) {
	t, err := scanTenant(db.conn.QueryRow(ctx, `SELECT id, name, created_us FROM tenants WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return t, fmt.Errorf("tenant %q: %w", name, store.ErrNotFound)
	} else if err != nil {
		return t, fmt.Errorf("tenant %q: %w", name, err)
	}
	return t, nil
}

// Tenants lists all tenants (operator view).
func (db *DB) Tenants(ctx context.Context) ([]store.Tenant, error) {
	rows, err := db.conn.Query(ctx, `SELECT id, name, created_us FROM tenants ORDER BY name`)
	out, err := collect(rows, err, func(r pgx.Rows) (store.Tenant, error) { return scanTenant(r) })
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return out, nil
}

// DeleteTenant removes a tenant with its domains, users and routes. Queued
// messages stay until delivered or deleted.
func (db *DB) DeleteTenant(ctx context.Context, id int64) error {
	return db.write(ctx, func(x tx) error {
		if err := affected(x.Exec(`DELETE FROM tenants WHERE id = $1`, id))("tenant"); err != nil {
			return err
		}
		// Its settings, groups and networks went with it: a tenant
		// created later under the same id must not see them in a cache.
		return bumpPolicy(x, id)
	})
}

// CreateDomain adds a domain to a tenant; a domain belongs to one tenant only.
func (db *DB) CreateDomain(ctx context.Context, tenantID int64, name string) (store.Domain, error) {
	d := store.Domain{TenantID: tenantID, Name: name, Created: time.Now().UTC()}
	err := db.write(ctx, func(x tx) error {
		err := x.QueryRow(`INSERT INTO domains(tenant_id, name, created_us) VALUES ($1, $2, $3) RETURNING id`, tenantID, name, us(d.Created)).Scan(&d.ID)
		if isUnique(err) {
			return fmt.Errorf("domain %q: %w", name, store.ErrExists)
		} else if err != nil {
			return fmt.Errorf("create domain: %w", err)
		}
		return nil
	})
	return d, err
}

func scanDomain(r pgx.Row) (store.Domain, error) {
	var d store.Domain
	var c int64
	err := r.Scan(&d.ID, &d.TenantID, &d.Name, &c)
	d.Created = fromUS(c)
	return d, err
}

// DomainByName finds the domain (and so the tenant) serving name.
func (db *DB) DomainByName(ctx context.Context, name string) (store.Domain, error) {
	d, err := scanDomain(db.conn.QueryRow(ctx, `SELECT id, tenant_id, name, created_us FROM domains WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return d, fmt.Errorf("domain %q: %w", name, store.ErrNotFound)
	} else if err != nil {
		return d, fmt.Errorf("domain %q: %w", name, err)
	}
	return d, nil
}

// Domains lists a tenant's domains.
func (db *DB) Domains(ctx context.Context, tenantID int64) ([]store.Domain, error) {
	rows, err := db.conn.Query(ctx, `SELECT id, tenant_id, name, created_us FROM domains WHERE tenant_id = $1 ORDER BY name`, tenantID)
	out, err := collect(rows, err, func(r pgx.Rows) (store.Domain, error) { return scanDomain(r) })
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	return out, nil
}

// DeleteDomain removes a tenant's domain with its routes.
func (db *DB) DeleteDomain(ctx context.Context, tenantID int64, name string) error {
	return db.write(ctx, func(x tx) error {
		return affected(x.Exec(`DELETE FROM domains WHERE tenant_id = $1 AND name = $2`, tenantID, name))("domain " + name)
	})
}

// SetRoutes replaces a domain's delivery targets.
func (db *DB) SetRoutes(ctx context.Context, tenantID, domainID int64, routes []store.Route) error {
	return db.write(ctx, func(x tx) error {
		// Locking the domain row serializes concurrent replacements.
		var one int
		err := x.QueryRow(`SELECT 1 FROM domains WHERE id = $1 AND tenant_id = $2 FOR UPDATE`, domainID, tenantID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("domain: %w", store.ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("set routes: %w", err)
		}
		if _, err := x.Exec(`DELETE FROM routes WHERE tenant_id = $1 AND domain_id = $2`, tenantID, domainID); err != nil {
			return fmt.Errorf("set routes: %w", err)
		}
		for _, r := range routes {
			if _, err := x.Exec(`INSERT INTO routes(tenant_id, domain_id, priority, target, tls) VALUES ($1, $2, $3, $4, $5)`,
				tenantID, domainID, r.Priority, r.Target, r.TLS); err != nil {
				return fmt.Errorf("set routes: %w", err)
			}
		}
		return nil
	})
}

// Routes lists a domain's delivery targets, lowest priority value first.
func (db *DB) Routes(ctx context.Context, tenantID, domainID int64) ([]store.Route, error) {
	rows, err := db.conn.Query(ctx, `SELECT id, tenant_id, domain_id, priority, target, tls FROM routes
		WHERE tenant_id = $1 AND domain_id = $2 ORDER BY priority, id`, tenantID, domainID)
	out, err := collect(rows, err, func(r pgx.Rows) (store.Route, error) {
		var rt store.Route
		err := r.Scan(&rt.ID, &rt.TenantID, &rt.DomainID, &rt.Priority, &rt.Target, &rt.TLS)
		return rt, err
	})
	if err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	return out, nil
}

// CreateUser adds a known address to a tenant.
func (db *DB) CreateUser(ctx context.Context, tenantID int64, address string) (store.User, error) {
	u := store.User{TenantID: tenantID, Address: address, Created: time.Now().UTC()}
	err := db.write(ctx, func(x tx) error {
		err := x.QueryRow(`INSERT INTO users(tenant_id, address, created_us) VALUES ($1, $2, $3) RETURNING id`, tenantID, address, us(u.Created)).Scan(&u.ID)
		if isUnique(err) {
			return fmt.Errorf("user %q: %w", address, store.ErrExists)
		} else if err != nil {
			return fmt.Errorf("create user: %w", err)
		}
		return nil
	})
	return u, err
}

// UserExists reports whether address is a known user of the tenant.
func (db *DB) UserExists(ctx context.Context, tenantID int64, address string) (bool, error) {
	var one int
	err := db.conn.QueryRow(ctx, `SELECT 1 FROM users WHERE tenant_id = $1 AND address = $2`, tenantID, address).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("user lookup: %w", err)
	}
	return true, nil
}

// Users lists a tenant's users.
func (db *DB) Users(ctx context.Context, tenantID int64) ([]store.User, error) {
	rows, err := db.conn.Query(ctx, `SELECT id, tenant_id, address, created_us FROM users WHERE tenant_id = $1 ORDER BY address`, tenantID)
	out, err := collect(rows, err, func(r pgx.Rows) (store.User, error) {
		var u store.User
		var c int64
		err := r.Scan(&u.ID, &u.TenantID, &u.Address, &c)
		u.Created = fromUS(c)
		return u, err
	})
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

// DeleteUser removes a user.
func (db *DB) DeleteUser(ctx context.Context, tenantID int64, address string) error {
	return db.write(ctx, func(x tx) error {
		return affected(x.Exec(`DELETE FROM users WHERE tenant_id = $1 AND address = $2`, tenantID, address))("user " + address)
	})
}

// AddRelayNet allows an IP range to relay for the tenant.
func (db *DB) AddRelayNet(ctx context.Context, tenantID int64, p netip.Prefix) error {
	return db.write(ctx, func(x tx) error {
		_, err := x.Exec(`INSERT INTO relay_nets(tenant_id, prefix) VALUES ($1, $2)`, tenantID, p.Masked().String())
		if isUnique(err) {
			return fmt.Errorf("relay net %s: %w", p, store.ErrExists)
		}
		return err
	})
}

// RelayNets lists a tenant's relay ranges.
func (db *DB) RelayNets(ctx context.Context, tenantID int64) ([]store.RelayNet, error) {
	rows, err := db.conn.Query(ctx, `SELECT id, tenant_id, prefix FROM relay_nets WHERE tenant_id = $1 ORDER BY prefix`, tenantID)
	out, err := collect(rows, err, func(r pgx.Rows) (store.RelayNet, error) {
		var n store.RelayNet
		var p string
		if err := r.Scan(&n.ID, &n.TenantID, &p); err != nil {
			return n, err
		}
		var err error
		if n.Prefix, err = netip.ParsePrefix(p); err != nil {
			return n, fmt.Errorf("relay net %q: %w", p, err)
		}
		return n, nil
	})
	if err != nil {
		return nil, fmt.Errorf("relay nets: %w", err)
	}
	return out, nil
}

// DeleteRelayNet removes a relay range.
func (db *DB) DeleteRelayNet(ctx context.Context, tenantID int64, p netip.Prefix) error {
	return db.write(ctx, func(x tx) error {
		return affected(x.Exec(`DELETE FROM relay_nets WHERE tenant_id = $1 AND prefix = $2`, tenantID, p.Masked().String()))("relay net")
	})
}

// TenantForRelayIP finds the tenant whose relay ranges contain ip; the most
// specific range wins, so a shared /16 and a customer's /32 do not conflict.
func (db *DB) TenantForRelayIP(ctx context.Context, ip netip.Addr) (int64, bool, error) {
	rows, err := db.conn.Query(ctx, `SELECT tenant_id, prefix FROM relay_nets`)
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

// SetRelayLogin creates or replaces an SMTP AUTH login for outbound relay;
// a username another tenant holds is store.ErrExists. One statement
// decides, so two tenants racing for a name cannot both get it.
func (db *DB) SetRelayLogin(ctx context.Context, tenantID int64, username, hash string) error {
	return db.write(ctx, func(x tx) error {
		var id int64
		err := x.QueryRow(`INSERT INTO relay_logins(tenant_id, username, hash) VALUES ($1, $2, $3)
			ON CONFLICT (username) DO UPDATE SET hash = excluded.hash WHERE relay_logins.tenant_id = excluded.tenant_id
			RETURNING id`, tenantID, username, hash).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("login %q: %w", username, store.ErrExists)
		}
		return err
	})
}

// RelayLogin finds an SMTP AUTH login.
func (db *DB) RelayLogin(ctx context.Context, username string) (store.RelayLogin, error) {
	var l store.RelayLogin
	err := db.conn.QueryRow(ctx, `SELECT id, tenant_id, username, hash FROM relay_logins WHERE username = $1`, username).
		Scan(&l.ID, &l.TenantID, &l.Username, &l.Hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return l, fmt.Errorf("login: %w", store.ErrNotFound)
	}
	return l, err
}

// LatestSchema is the schema version this mailgate migrates to.
func (db *DB) LatestSchema() int { return len(migrations) }

// Schema reads the database's schema version without migrating it, and
// returns it with the version this mailgate migrates to (mailgate doctor).
func Schema(ctx context.Context, c Config) (have, want int, err error) {
	pool, err := connect(ctx, c)
	if err != nil {
		return 0, len(migrations), err
	}
	defer pool.Close()
	if err := pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return 0, len(migrations), fmt.Errorf("schema version: %w", err)
	}
	return have, len(migrations), nil
}
