package web

import (
	"io/fs"
	"regexp"
	"slices"
	"testing"
)

// Every message exists in both languages, and every message a template or
// handler names literally exists.
func TestCatalogsComplete(t *testing.T) {
	c, err := loadCatalog()
	if err != nil {
		t.Fatal(err)
	}
	en, ja := c.keys["en"], c.keys["ja"]
	for _, k := range en {
		if !slices.Contains(ja, k) {
			t.Errorf("ja lacks %q", k)
		}
	}
	for _, k := range ja {
		if !slices.Contains(en, k) {
			t.Errorf("en lacks %q", k)
		}
	}
	re := regexp.MustCompile(`\.T "([a-z_0-9]+)"`)
	files, _ := fs.Glob(templateFS, "templates/*.html")
	for _, f := range files {
		b, _ := templateFS.ReadFile(f)
		for _, m := range re.FindAllSubmatch(b, -1) {
			if !slices.Contains(en, string(m[1])) {
				t.Errorf("%s uses unknown message %q", f, m[1])
			}
		}
	}
	// Keys built at run time from a prefix and a value.
	for _, prefix := range []string{"m_", "v_", "role_", "scope_", "kind_", "sort_", "msg_"} {
		found := false
		for _, k := range en {
			found = found || len(k) > len(prefix) && k[:len(prefix)] == prefix
		}
		if !found {
			t.Errorf("no messages with prefix %q", prefix)
		}
	}
	tr := c.translator("ja")
	if got := tr.T("nav_dashboard"); got != "ダッシュボード" {
		t.Errorf("ja nav_dashboard = %q", got)
	}
	if got := tr.T("q_total", "Count", 3); got != "3 件" {
		t.Errorf("ja q_total = %q", got)
	}
}
