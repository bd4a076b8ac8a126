package packaging_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// stubs puts commands on PATH that log their arguments to log; getent
// succeeds only when known is true (the user exists already).
func stubs(t *testing.T, known bool) (dir, log string) {
	t.Helper()
	dir = t.TempDir()
	log = filepath.Join(dir, "calls.log")
	for _, c := range []string{"groupadd", "useradd", "install", "chown", "chmod", "systemctl", "deb-systemd-helper"} {
		script := "#!/bin/sh\necho \"" + c + " $*\" >> " + log + "\n"
		if c == "deb-systemd-helper" {
			// "was-enabled" answers no: a first installation.
			script += "[ \"$2\" = was-enabled ] && exit 1\nexit 0\n"
		}
		if err := os.WriteFile(filepath.Join(dir, c), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	code := "2"
	if known {
		code = "0"
	}
	if err := os.WriteFile(filepath.Join(dir, "getent"), []byte("#!/bin/sh\necho \"getent $*\" >> "+log+"\nexit "+code+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, log
}

func postinst(t *testing.T, known bool, args ...string) string {
	t.Helper()
	dir, log := stubs(t, known)
	cmd := exec.Command("/bin/sh", append([]string{"debian/postinst"}, args...)...)
	cmd.Env = []string{"PATH=" + dir}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("postinst %v: %v\n%s", args, err, out)
	}
	b, err := os.ReadFile(log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// The package's postinst makes the system user and group mailgate once,
// the data directory owned by it (mode 0700), gives the configuration to
// root with group mailgate, and registers the unit.
func TestPostinstMakesUserAndDataDir(t *testing.T) {
	calls := postinst(t, false, "configure", "")
	for _, want := range []string{
		"groupadd --system mailgate\n",
		"useradd --system --gid mailgate --home-dir /var/lib/mailgate --no-create-home --shell /usr/sbin/nologin",
		"install -d -o mailgate -g mailgate -m 0700 /var/lib/mailgate\n",
		"chown root:mailgate /etc/mailgate/mailgate.toml\n",
		"chmod 0640 /etc/mailgate/mailgate.toml\n",
		"deb-systemd-helper update-state mailgate.service\n",
	} {
		if !strings.Contains(calls, want) {
			t.Errorf("first install: no %q in\n%s", want, calls)
		}
	}
	// An upgrade: the user exists and is kept.
	calls = postinst(t, true, "configure", "0.1.0")
	if strings.Contains(calls, "useradd") || strings.Contains(calls, "groupadd") {
		t.Errorf("upgrade made the user again:\n%s", calls)
	}
	if !strings.Contains(calls, "install -d -o mailgate -g mailgate -m 0700 /var/lib/mailgate\n") {
		t.Errorf("upgrade: data directory not ensured:\n%s", calls)
	}
	// Other actions do nothing.
	if calls := postinst(t, false, "abort-upgrade", "0.1.0"); calls != "" {
		t.Errorf("abort-upgrade ran:\n%s", calls)
	}
}
