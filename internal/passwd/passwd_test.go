package passwd

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
)

// small are cheap parameters for tests that run many checks.
var small = Params{Memory: 64, Time: 1, Threads: 1}

func TestHashAndVerify(t *testing.T) {
	v := MustNew(Options{Params: small, Budget: 1024})
	ctx := context.Background()
	h, err := v.Hash(ctx, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("hash %q does not carry its parameters", h)
	}
	if err := v.Verify(ctx, h, "correct horse"); err != nil {
		t.Fatalf("right password: %v", err)
	}
	if err := v.Verify(ctx, h, "wrong horse"); !errors.Is(err, ErrMismatch) {
		t.Fatalf("wrong password: %v", err)
	}
}

func TestDefaultParametersFitTheDefaultBudget(t *testing.T) {
	h, err := Hash("pw")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("new hash %q", h)
	}
	v := MustNew(Options{})
	if err := v.Verify(context.Background(), h, "pw"); err != nil {
		t.Fatal(err)
	}
	if n := v.Budget() / int64(DefaultParams.Memory); n < 10 {
		t.Fatalf("the default budget runs only %d checks at once", n)
	}
}

// Hashes made by earlier versions (RFC 9106's 64 MiB, t=3, p=2) keep
// working, verified with their own parameters.
func TestOldHashesStillVerify(t *testing.T) {
	old, err := hash("s3cret", Params{Memory: 64 * 1024, Time: 3, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	v := MustNew(Options{})
	ctx := context.Background()
	if err := v.Verify(ctx, old, "s3cret"); err != nil {
		t.Fatalf("old hash: %v", err)
	}
	if err := v.Verify(ctx, old, "nope"); !errors.Is(err, ErrMismatch) {
		t.Fatalf("old hash, wrong password: %v", err)
	}
	if st := v.Stats(); st.PeakKiB != 64*1024 {
		t.Fatalf("an old hash holds its own memory from the budget: peak %d KiB", st.PeakKiB)
	}
}

// The budget bounds the memory of checks running at once; a check that
// does not fit is refused at once, not queued.
func TestBudgetBoundsConcurrentChecks(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	v := MustNew(Options{Params: small, Budget: 2 * small.Memory, BeforeHash: func() {
		entered <- struct{}{}
		<-release
	}})
	ctx := context.Background()
	h, err := hash("pw", small)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = v.Verify(ctx, h, "pw")
		}()
		<-entered
	}
	// Both slots are held: a third check, a dummy and a new hash are refused.
	if err := v.Verify(ctx, h, "pw"); !errors.Is(err, ErrBusy) {
		t.Fatalf("third check: %v", err)
	}
	if err := v.VerifyDummy(ctx, "pw"); !errors.Is(err, ErrBusy) {
		t.Fatalf("dummy while full: %v", err)
	}
	if _, err := v.Hash(ctx, "pw"); !errors.Is(err, ErrBusy) {
		t.Fatalf("hash while full: %v", err)
	}
	close(release)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("check %d: %v", i, err)
		}
	}
	st := v.Stats()
	if st.PeakChecks != 2 || st.PeakKiB != int64(2*small.Memory) || st.Busy != 3 || st.Checks != 2 || st.InUseKiB != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Free again.
	v.before = nil
	if err := v.Verify(ctx, h, "pw"); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

// A hash that asks for more memory than the whole budget is never run.
func TestHashCostlierThanBudgetRefused(t *testing.T) {
	v := MustNew(Options{Params: small, Budget: 1024})
	big := encode(Params{Memory: 4 << 20, Time: 1, Threads: 1}, []byte("0123456789abcdef"), make([]byte, 32))
	if err := v.Verify(context.Background(), big, "pw"); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("4 GiB hash: %v", err)
	}
	if st := v.Stats(); st.Checks != 0 {
		t.Fatalf("the costly hash ran: %+v", st)
	}
}

func TestMalformedHashes(t *testing.T) {
	v := MustNew(Options{Params: small, Budget: 1024})
	salt, key := b64.EncodeToString([]byte("0123456789abcdef")), b64.EncodeToString(make([]byte, 32))
	for _, h := range []string{
		"",
		"plain",
		"$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1000,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key,
		"$argon2id$v=19$m=4,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=1,x=2$" + salt + "$" + key,
		"$argon2id$v=19$m=-1,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$!!$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$",
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "$",
		"x$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key,
	} {
		if err := v.Verify(context.Background(), h, "pw"); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%q: %v", h, err)
		}
	}
	if st := v.Stats(); st.Checks != 0 {
		t.Fatalf("a malformed hash was computed: %+v", st)
	}
}

// The dummy costs one check with the current parameters and never matches.
func TestVerifyDummy(t *testing.T) {
	v := MustNew(Options{Params: small, Budget: 1024})
	if err := v.VerifyDummy(context.Background(), ""); !errors.Is(err, ErrMismatch) {
		t.Fatalf("dummy: %v", err)
	}
	if st := v.Stats(); st.Dummies != 1 || st.Checks != 1 || st.PeakKiB != int64(small.Memory) {
		t.Fatalf("stats %+v", st)
	}
}

func TestNewRefusesBudgetBelowOneHash(t *testing.T) {
	if _, err := New(Options{Budget: 1024}); err == nil {
		t.Fatal("a 1 MiB budget cannot hold one 19 MiB hash")
	}
	if _, err := New(Options{Params: Params{Memory: 64, Time: 0, Threads: 1}}); err == nil {
		t.Fatal("t=0 accepted")
	}
}

func TestCanceledContextChecksNothing(t *testing.T) {
	v := MustNew(Options{Params: small, Budget: 1024})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := v.VerifyDummy(ctx, "pw"); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
}

// FuzzVerify: any stored string is refused or checked within the budget,
// never a panic.
func FuzzVerify(f *testing.F) {
	f.Add("$argon2id$v=19$m=64,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "pw")
	f.Add("$argon2id$v=19$m=65536,t=3,p=2$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "")
	f.Add("$argon2id$v=19$m=64,t=1,p=1$$", "x")
	f.Fuzz(func(t *testing.T, encoded, pw string) {
		v := MustNew(Options{Params: small, Budget: 256})
		err := v.Verify(context.Background(), encoded, pw)
		if err != nil && !errors.Is(err, ErrMismatch) && !errors.Is(err, ErrUnsupported) {
			t.Fatalf("unexpected error %v", err)
		}
		if st := v.Stats(); st.PeakKiB > 256 {
			t.Fatalf("budget exceeded: %+v", st)
		}
	})
}
