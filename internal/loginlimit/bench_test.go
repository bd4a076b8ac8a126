package loginlimit

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/mailgate/mailgate/internal/passwd"
	"github.com/mailgate/mailgate/internal/store/postgres"
	"github.com/mailgate/mailgate/internal/store/sqlite"
	"github.com/mailgate/mailgate/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// BenchmarkLoginThrottle is what the throttle adds to one successful
// login (a Take before the password check, a Refund after it), per
// limiter; BenchmarkLoginThrottle/password is the password check itself,
// for scale. Run: go test -run - -bench LoginThrottle ./internal/loginlimit
func BenchmarkLoginThrottle(b *testing.B) {
	ctx := context.Background()
	run := func(b *testing.B, l Limiter) {
		for i := 0; b.Loop(); i++ {
			keys := []string{IPKey(fmt.Sprintf("192.0.2.%d", i%200)), LoginKey(fmt.Sprintf("user%d", i%1000))}
			if ok, _ := l.Take(ctx, t0, keys...); !ok {
				b.Fatal("refused")
			}
			l.Refund(ctx, t0, keys...)
		}
	}
	b.Run("memory", func(b *testing.B) { run(b, New(Options{})) })
	b.Run("sqlite", func(b *testing.B) {
		db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "db"), nil)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		run(b, NewShared(db, Options{}, nil))
	})
	b.Run("postgres", func(b *testing.B) {
		tmpl := pgtest.NewTemplate("bench", func(ctx context.Context, dsn string) error {
			_, _, err := postgres.Migrate(ctx, postgres.Config{DSN: dsn})
			return err
		})
		db, err := postgres.Open(ctx, postgres.Config{DSN: pgtest.DB(b, tmpl)}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		run(b, NewShared(db, Options{}, nil))
	})
	b.Run("password", func(b *testing.B) {
		v := passwd.MustNew(passwd.Options{})
		h, err := passwd.Hash("correct horse battery staple")
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if err := v.Verify(ctx, h, "correct horse battery staple"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
