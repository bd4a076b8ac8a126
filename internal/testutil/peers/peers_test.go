package peers

import (
	"runtime"
	"testing"
)

// recordingTB captures how Missing ends a test.
type recordingTB struct {
	testing.TB
	skipped, failed bool
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Skipf(string, ...any) {
	r.skipped = true
	runtime.Goexit()
}
func (r *recordingTB) Fatalf(string, ...any) {
	r.failed = true
	runtime.Goexit()
}

func TestMissing(t *testing.T) {
	for _, tc := range []struct {
		env          string
		skip, failed bool
	}{{"", true, false}, {"0", true, false}, {"1", false, true}} {
		t.Setenv(Env, tc.env)
		r := &recordingTB{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			Missing(r, "clamd missing")
		}()
		<-done
		if r.skipped != tc.skip || r.failed != tc.failed {
			t.Errorf("%s=%q: skipped=%v failed=%v, want skipped=%v failed=%v", Env, tc.env, r.skipped, r.failed, tc.skip, tc.failed)
		}
	}
}
