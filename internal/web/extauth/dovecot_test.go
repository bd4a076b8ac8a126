package extauth

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/testutil/peers"
	"github.com/mailgate/mailgate/internal/testutil/syncbuf"
)

// dovecot is a real Dovecot IMAP server started from a scratch
// configuration (Debian package dovecot-imapd).
type dovecot struct {
	imapAddr  string // STARTTLS
	imapsAddr string // implicit TLS
	dir       string
}

// dovecotUser is a mailbox in the passwd-file.
type dovecotUser struct{ name, pass string }

func findDovecot() string {
	if p, err := exec.LookPath("dovecot"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/dovecot", "/usr/local/sbin/dovecot"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// startDovecot starts Dovecot on two free ports of 127.0.0.1 with cert,
// passwd-file users, no auth failure delay, and plaintext auth disabled
// (its default) so it advertises LOGINDISABLED before STARTTLS. It is
// stopped (SIGTERM, then SIGKILL) when the test ends.
func startDovecot(t *testing.T, cert testCert, users ...dovecotUser) *dovecot {
	t.Helper()
	bin := findDovecot()
	if bin == "" {
		msg := "dovecot not installed (Debian package dovecot-imapd)"
		peers.Missing(t, "%s", msg)
	}
	dir := t.TempDir()
	ids, err := dovecotIDs()
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// Dovecot's unprivileged processes must reach the run directory,
		// and the mail user its home; t.TempDir makes them 0700.
		for _, d := range []string{filepath.Dir(dir), dir} {
			if err := os.Chmod(d, 0o711); err != nil {
				t.Fatal(err)
			}
		}
	}
	var passwd strings.Builder
	for _, u := range users {
		// passwd-file: user:password:uid:gid:gecos:home:shell:extra
		fmt.Fprintf(&passwd, "%s:{PLAIN}%s::::::\n", u.name, u.pass)
	}
	home := filepath.Join(dir, "home")
	files := map[string][]byte{
		"cert.pem": cert.certPEM,
		"key.pem":  cert.keyPEM,
		"users":    []byte(passwd.String()),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, ids.mailUID, ids.mailGID); err != nil && os.Geteuid() == 0 {
		t.Fatal(err)
	}

	var lastErr error
	// The free ports are found by binding and releasing them, so another
	// process may take one first; retry with new ports then.
	for attempt := 0; attempt < 3; attempt++ {
		d, err := launchDovecot(t, bin, dir, home, ids)
		if err == nil {
			return d
		}
		lastErr = err
	}
	t.Fatalf("starting dovecot: %v", lastErr)
	return nil
}

type dovecotIdentities struct {
	internalUser, loginUser string
	mailUID, mailGID        int
}

// dovecotIDs picks the users Dovecot runs as: the packaged dovecot and
// dovenull users with mail as nobody when root, otherwise the current user
// for everything.
func dovecotIDs() (dovecotIdentities, error) {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return dovecotIdentities{}, err
		}
		return dovecotIdentities{u.Username, u.Username, os.Geteuid(), os.Getegid()}, nil
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		return dovecotIdentities{}, fmt.Errorf("looking up nobody: %w", err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	return dovecotIdentities{"dovecot", "dovenull", uid, gid}, nil
}

func launchDovecot(t *testing.T, bin, dir, home string, ids dovecotIdentities) (*dovecot, error) {
	imapPort, err := freePort()
	if err != nil {
		return nil, err
	}
	imapsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	run := filepath.Join(dir, fmt.Sprintf("run%d", imapPort))
	logPath := filepath.Join(dir, "dovecot.log")
	conf := fmt.Sprintf(`# scratch configuration for extauth tests
base_dir = %[1]s
state_dir = %[1]s/state
log_path = %[2]s
info_log_path = %[2]s
protocols = imap
listen = 127.0.0.1
default_internal_user = %[3]s
default_login_user = %[4]s
first_valid_uid = 1
ssl = yes
ssl_cert = <%[5]s/cert.pem
ssl_key = <%[5]s/key.pem
disable_plaintext_auth = yes
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[5]s/users
}
userdb {
  driver = passwd-file
  args = username_format=%%u %[5]s/users
  default_fields = uid=%[6]d gid=%[7]d home=%[8]s/%%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %[9]d
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = %[10]d
    ssl = yes
  }
}
service anvil {
  chroot =
  # Every test connects from 127.0.0.1: with the auth penalty, each failure
  # would slow all later logins by up to 15 s. Unreachable, it is disabled.
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
`, run, logPath, ids.internalUser, ids.loginUser, dir, ids.mailUID, ids.mailGID, home, imapPort, imapsPort)
	if _, err := os.Stat("/usr/share/dovecot/dh.pem"); err == nil {
		conf += "ssl_dh = </usr/share/dovecot/dh.pem\n"
	}
	confPath := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	var out syncbuf.Buffer
	cmd := exec.Command(bin, "-F", "-c", confPath)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop := func() {
		select {
		case <-exited:
			return
		default:
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	logs := func() string {
		b, _ := os.ReadFile(logPath)
		return string(b) + out.String()
	}
	d := &dovecot{
		imapAddr:  net.JoinHostPort("127.0.0.1", strconv.Itoa(imapPort)),
		imapsAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(imapsPort)),
		dir:       dir,
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			return nil, fmt.Errorf("dovecot exited during start-up (%s)\n%s", cmd.ProcessState, logs())
		default:
		}
		if greets(d.imapAddr, nil) && greets(d.imapsAddr, &tls.Config{InsecureSkipVerify: true}) { //nolint:gosec // readiness probe only
			t.Cleanup(func() {
				stop()
				if t.Failed() || os.Getenv("EXTAUTH_DOVECOT_LOG") != "" {
					t.Logf("dovecot log:\n%s", logs())
				}
			})
			return d, nil
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("dovecot did not greet within 30s\n%s", logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// greets reports whether an IMAP greeting arrives at addr.
func greets(addr string, tlsCfg *tls.Config) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if tlsCfg != nil {
		conn = tls.Client(conn, tlsCfg)
	}
	buf := make([]byte, 64)
	n, _ := conn.Read(buf)
	return bytes.HasPrefix(buf[:n], []byte("* OK"))
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
