package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStoreSection(t *testing.T) {
	for body, want := range map[string]string{
		"":                               "sqlite",
		"[store]\ndriver = \"sqlite\"\n": "sqlite",
		"[store]\ndriver = \"postgres\"\ndsn = \"postgres://mailgate@db/mailgate\"\npassword_file = \"/run/secrets/pg\"\n": "postgres",
		"[store]\ndriver = \"postgres\"\n":     "error: store.dsn is required",
		"[store]\ndriver = \"mysql\"\n":        "error: store.driver must be sqlite or postgres",
		"[store]\ndsn = \"x\"\nhost = \"y\"\n": "error: unknown keys",
	} {
		p := filepath.Join(t.TempDir(), "mailgate.toml")
		os.WriteFile(p, []byte(body), 0o600)
		c, err := Load(p)
		if msg, isErr := strings.CutPrefix(want, "error: "); isErr {
			if err == nil || !strings.Contains(err.Error(), msg) {
				t.Errorf("%q: error %v, want %q", body, err, msg)
			}
		} else if err != nil || c.Store.Driver != want {
			t.Errorf("%q: driver %q (%v), want %q", body, c.Store.Driver, err, want)
		}
	}
}
