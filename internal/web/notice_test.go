package web

import (
	"slices"
	"testing"

	"github.com/mailgate/mailgate/internal/web/preview"
)

// The preview's notices are shown through the catalogue: each has both
// languages.
func TestPreviewNoticesTranslated(t *testing.T) {
	c, err := loadCatalog()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range preview.NoticeKeys() {
		if !slices.Contains(c.keys["en"], k) || !slices.Contains(c.keys["ja"], k) {
			t.Errorf("notice %q is not in both catalogues", k)
		}
	}
}
