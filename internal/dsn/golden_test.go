package dsn

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// TestGolden pins the complete wire form of reports. Inputs are fixed (clock,
// random source), so any change in output is a change in behaviour that
// must be reviewed; run with -update to accept it.
func TestGolden(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file string
		kind Kind
		mod  func(*Report)
	}{
		{"failure-en.eml", Failure, func(r *Report) {}},
		{"delay-ja-full.eml", Delay, func(r *Report) {
			r.Language = "ja"
			r.ReturnFull = true
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			r := sampleReport(tc.kind)
			tc.mod(&r)
			got := mustBuild(t, r)
			path := filepath.Join("testdata", tc.file)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s (run with -update to accept):\n%s", path, got)
			}
			// The golden file itself must be a valid report.
			checkWire(t, want)
			checkTopHeader(t, want)
			mustParse(t, want)
		})
	}
}
