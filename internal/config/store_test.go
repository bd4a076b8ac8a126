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

func TestBlobsSection(t *testing.T) {
	for body, want := range map[string]string{
		"":                              "local",
		"[blobs]\ndriver = \"local\"\n": "local",
		"[blobs]\ndriver = \"s3\"\nendpoint = \"https://s3.ap-northeast-1.amazonaws.com\"\nbucket = \"mail\"\nregion = \"ap-northeast-1\"\nprefix = \"mailgate/\"\naccess_key_id = \"AKIA\"\nsecret_file = \"/run/secrets/s3\"\n": "s3",
		"[blobs]\ndriver = \"s3\"\nendpoint = \"http://127.0.0.1:9000\"\nbucket = \"mail\"\npath_style = true\n":                                                                                                                  "s3",
		"[blobs]\ndriver = \"s3\"\nbucket = \"mail\"\n":                                                                                     "error: blobs.endpoint and blobs.bucket are required",
		"[blobs]\ndriver = \"s3\"\nendpoint = \"127.0.0.1:9000\"\nbucket = \"mail\"\n":                                                      "error: want a URL like",
		"[blobs]\ndriver = \"s3\"\nendpoint = \"https://s3.example.com/mail\"\nbucket = \"mail\"\n":                                         "error: want a URL like",
		"[blobs]\ndriver = \"s3\"\nendpoint = \"https://s3.example.com\"\nbucket = \"m\"\nsecret_access_key = \"a\"\nsecret_file = \"b\"\n": "error: not both",
		"[blobs]\ndriver = \"nfs\"\n": "error: blobs.driver must be local or s3",
		"[blobs]\ndriver = \"s3\"\nendpoint = \"https://s3.example.com\"\nbucket = \"m\"\nprefix = \"/x\"\n": "error: must not start with '/'",
	} {
		p := filepath.Join(t.TempDir(), "mailgate.toml")
		os.WriteFile(p, []byte(body), 0o600)
		c, err := Load(p)
		if msg, isErr := strings.CutPrefix(want, "error: "); isErr {
			if err == nil || !strings.Contains(err.Error(), msg) {
				t.Errorf("%q: error %v, want %q", body, err, msg)
			}
		} else if err != nil || c.Blobs.Driver != want {
			t.Errorf("%q: driver %q (%v), want %q", body, c.Blobs.Driver, err, want)
		}
	}
}
