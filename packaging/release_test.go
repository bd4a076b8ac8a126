package packaging_test

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/config"
)

// The release takes a static build of the whole program (minutes on a
// cold build cache), so it runs on demand: MAILGATE_RELEASE_TEST=1.
func release(t *testing.T) string {
	t.Helper()
	if os.Getenv("MAILGATE_RELEASE_TEST") != "1" {
		t.Skip("builds a release (minutes on a cold build cache): run with MAILGATE_RELEASE_TEST=1")
	}
	for _, tool := range []string{"dpkg-deb", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to build the package: %v", tool, err)
		}
	}
	out := t.TempDir()
	cmd := exec.Command("../scripts/release", out)
	cmd.Env = append(os.Environ(), "VERSION=9.8.7~test1")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/release: %v\n%s", err, b)
	}
	return out
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	b, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, b)
	}
	return string(b)
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkBinary runs the binary for its version and checks it is static (no
// ELF interpreter: it runs on any Linux of its architecture).
func checkBinary(t *testing.T, path string) {
	t.Helper()
	if got := run(t, path, "version"); got != "mailgate 9.8.7~test1\n" {
		t.Errorf("%s version: %q", path, got)
	}
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s is dynamically linked", path)
		}
	}
}

// scripts/release writes a .deb that unpacks into a scratch root with the
// static, version-stamped binary, the hardened unit (which systemd accepts
// without a warning), the default configuration as a conffile that loads,
// and maintainer scripts that make the user and the data directory; and a
// container build context with the same binary.
func TestReleaseWritesPackageAndContainerContext(t *testing.T) {
	out := release(t)
	deb := filepath.Join(out, "mailgate_9.8.7~test1_"+strings.TrimSpace(run(t, "go", "env", "GOARCH"))+".deb")
	root, ctrl := t.TempDir(), t.TempDir()
	run(t, "dpkg-deb", "-x", deb, root)
	run(t, "dpkg-deb", "-e", deb, ctrl)

	bin := filepath.Join(root, "usr/bin/mailgate")
	if fi, err := os.Stat(bin); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("usr/bin/mailgate: %v %v", fi, err)
	}
	checkBinary(t, bin)

	control := read(t, filepath.Join(ctrl, "control"))
	for _, want := range []string{"Package: mailgate\n", "Version: 9.8.7~test1\n", "Section: mail\n"} {
		if !strings.Contains(control, want) {
			t.Errorf("control lacks %q:\n%s", want, control)
		}
	}
	if got := read(t, filepath.Join(ctrl, "conffiles")); got != "/etc/mailgate/mailgate.toml\n" {
		t.Errorf("conffiles %q", got)
	}
	cfg, err := config.Load(filepath.Join(root, "etc/mailgate/mailgate.toml"))
	if err != nil {
		t.Fatalf("packaged configuration: %v", err)
	}
	if cfg.DataDir != "/var/lib/mailgate" {
		t.Errorf("packaged data_dir %q", cfg.DataDir)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		p := filepath.Join(ctrl, s)
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm()&0o111 == 0 {
			t.Errorf("%s: %v %v", s, fi, err)
			continue
		}
		run(t, "sh", "-n", p)
	}
	postinst := read(t, filepath.Join(ctrl, "postinst"))
	for _, want := range []string{"useradd --system", "install -d -o mailgate -g mailgate -m 0700 /var/lib/mailgate", "try-restart mailgate.service"} {
		if !strings.Contains(postinst, want) {
			t.Errorf("postinst lacks %q", want)
		}
	}

	unitPath := filepath.Join(root, "lib/systemd/system/mailgate.service")
	unit := read(t, unitPath)
	for _, want := range []string{"Type=notify", "User=mailgate", "ExecStart=/usr/bin/mailgate -c /etc/mailgate/mailgate.toml serve",
		"ExecReload=/bin/kill -HUP $MAINPID", "ProtectSystem=strict", "ReadWritePaths=/var/lib/mailgate",
		"AmbientCapabilities=CAP_NET_BIND_SERVICE", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "NoNewPrivileges=yes", "PrivateTmp=yes"} {
		if !strings.Contains(unit, "\n"+want+"\n") {
			t.Errorf("unit lacks %q", want)
		}
	}
	verifyUnit(t, unit, bin)

	ctx := filepath.Join(out, "container")
	checkBinary(t, filepath.Join(ctx, "mailgate"))
	docker := read(t, filepath.Join(ctx, "Dockerfile"))
	for _, want := range []string{"COPY mailgate /usr/bin/mailgate", "USER 65532", `ENTRYPOINT ["/usr/bin/mailgate"`} {
		if !strings.Contains(docker, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	ccfg, err := config.Load(filepath.Join(ctx, "mailgate.toml"))
	if err != nil {
		t.Fatalf("container configuration: %v", err)
	}
	if ccfg.HTTP.Listen != "0.0.0.0:8080" || ccfg.DataDir != "/var/lib/mailgate" {
		t.Errorf("container configuration: http %q, data_dir %q", ccfg.HTTP.Listen, ccfg.DataDir)
	}
	sums := read(t, filepath.Join(out, "SHA256SUMS"))
	if !strings.Contains(sums, filepath.Base(deb)) {
		t.Errorf("SHA256SUMS lacks the package:\n%s", sums)
	}
	if _, err := exec.LookPath("docker"); err != nil {
		t.Log("no container builder here: the container context is checked, not built")
	}
}

// verifyUnit runs systemd-analyze verify on the unit, with ExecStart
// pointing at the unpacked binary (verify wants it to exist); any message
// it prints (an unknown key, a value it cannot parse) fails the test.
func verifyUnit(t *testing.T, unit, bin string) {
	t.Helper()
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze is not installed: the unit file is not verified")
		return
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "mailgate.service")
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(unit, "/usr/bin/mailgate", bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	var outb bytes.Buffer
	cmd := exec.Command(sa, "verify", p)
	cmd.Stdout, cmd.Stderr = &outb, &outb
	err = cmd.Run()
	if err != nil || outb.Len() > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, outb.String())
	}
}
