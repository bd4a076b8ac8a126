package main

import "testing"

func TestParseMailgateScores(t *testing.T) {
	out := "/w/test/spam/spam-2-001.abc.eml\t99.5\n/w/test/ham/a b\tc.eml\t0\n\n/w/x/easy-ham-1-7.eml\t12.25%\r\n"
	got, err := parseMailgateScores([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"spam-2-001.abc.eml": 99.5, "a b\tc.eml": 0, "easy-ham-1-7.eml": 12.25}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	for _, bad := range []string{"no-tab 5\n", "/a\tx\n", "/a\t101\n", "/a\t-1\n"} {
		if _, err := parseMailgateScores([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
