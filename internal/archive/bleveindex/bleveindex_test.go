package bleveindex

import (
	"path/filepath"
	"testing"

	"github.com/mailgate/mailgate/internal/archive"
	"github.com/mailgate/mailgate/internal/archive/indextest"
)

func TestConformance(t *testing.T) {
	indextest.Run(t, func(t *testing.T) archive.Index {
		x, err := Open(filepath.Join(t.TempDir(), "idx"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { x.Close() })
		return x
	})
}
