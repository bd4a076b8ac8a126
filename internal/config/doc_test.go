package config

import (
	"os"
	"testing"
)

// TestReferenceIsCurrent fails when docs/config.md is not what
// `mailgate config-doc` prints: a key added, renamed or re-documented in
// the code must be regenerated into the docs in the same change
// (go run ./cmd/mailgate config-doc > docs/config.md).
func TestReferenceIsCurrent(t *testing.T) {
	want := Reference()
	got, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatal("docs/config.md is out of date: run `go run ./cmd/mailgate config-doc > docs/config.md`")
	}
}
