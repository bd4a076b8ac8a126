package postgres

import (
	"context"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgreSQL text holds valid UTF-8 without NUL bytes; SQLite stores any
// bytes. Mail is full of both (a HELO, a header in an undeclared 8-bit
// charset, a hostile search term), and a statement that sends them fails
// with SQLSTATE 22021, which would turn into a 451 at every retry. So
// every statement of this store goes through conn, tx or queue, which pass
// string arguments through storable: what PostgreSQL cannot hold becomes
// U+FFFD, and the rest is sent unchanged.

// storable is s with each invalid UTF-8 sequence and each NUL byte
// replaced by U+FFFD.
func storable(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// Storable is storable for tools that write rows themselves (mailgate
// migrate-store): what SQLite held is stored as this store would.
func Storable(s string) string { return storable(s) }

// storableArgs applies storable to string and []string arguments.
func storableArgs(args []any) []any {
	out := args
	for i, a := range args {
		var v any
		switch a := a.(type) {
		case string:
			if s := storable(a); s != a {
				v = s
			}
		case []string:
			for j, s := range a {
				if t := storable(s); t != s {
					c := append([]string(nil), a...)
					for k := j; k < len(c); k++ {
						c[k] = storable(c[k])
					}
					v = c
					break
				}
			}
		}
		if v != nil {
			if &out[0] == &args[0] {
				out = append([]any(nil), args...)
			}
			out[i] = v
		}
	}
	return out
}

// conn runs statements on the pool outside a transaction (reads).
type conn struct{ p *pgxpool.Pool }

func (c conn) Query(ctx context.Context, q string, args ...any) (pgx.Rows, error) {
	return c.p.Query(ctx, q, storableArgs(args)...)
}

func (c conn) QueryRow(ctx context.Context, q string, args ...any) pgx.Row {
	return c.p.QueryRow(ctx, q, storableArgs(args)...)
}

func (c conn) Exec(ctx context.Context, q string, args ...any) (pgconn.CommandTag, error) {
	return c.p.Exec(ctx, q, storableArgs(args)...)
}

// queue adds a statement to a batch.
func queue(b *pgx.Batch, q string, args ...any) {
	b.Queue(q, storableArgs(args)...)
}
