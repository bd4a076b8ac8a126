package clamdtest

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/testutil/peers"
)

func TestEICAR(t *testing.T) {
	t.Parallel()
	e := EICAR()
	sum := md5.Sum(e)
	// The published MD5 of the 68-byte EICAR test file.
	if got := hex.EncodeToString(sum[:]); len(e) != 68 || got != "44d88612fea8a8f36de82e1278abb02f" {
		t.Fatalf("EICAR() has length %d and MD5 %s", len(e), got)
	}
	e[0] = 'Y'
	if EICAR()[0] != 'X' {
		t.Fatal("EICAR() returns shared memory")
	}
}

func TestStart(t *testing.T) {
	t.Parallel()
	a := Start(t, WithStreamMaxLength(3<<20), WithMaxFileSize(2<<20), WithMaxScanSize(5<<20), WithMaxScanTime(1500*time.Millisecond))
	b := Start(t)
	if a.Addr() == b.Addr() || a.Socket() == b.Socket() {
		t.Fatalf("two daemons share an address: %s %s / %s %s", a.Addr(), a.Socket(), b.Addr(), b.Socket())
	}
	if !strings.HasPrefix(a.Addr(), "127.0.0.1:") {
		t.Fatalf("Addr %q is not on 127.0.0.1", a.Addr())
	}
	for _, c := range []*Clamd{a, b} {
		if err := ping("unix", c.Socket()); err != nil {
			t.Fatalf("unix PING: %v", err)
		}
		if err := ping("tcp", c.Addr()); err != nil {
			t.Fatalf("tcp PING: %v", err)
		}
	}

	conf, err := os.ReadFile(filepath.Join(a.Dir(), "clamd.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\nStreamMaxLength 3145728\n", "\nMaxFileSize 2097152\n", "\nMaxScanSize 5242880\n",
		"\nMaxScanTime 1500\n", "\nAlertEncrypted yes\n", "\nAlertExceedsMax yes\n",
		"\nMaxRecursion 20\n", "\nTCPAddr 127.0.0.1\n",
	} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("clamd.conf lacks %q:\n%s", strings.TrimSpace(want), conf)
		}
	}

	// Stopping one daemon leaves the other running; Stop is idempotent.
	a.Stop()
	a.Stop()
	if err := ping("unix", a.Socket()); err == nil {
		t.Fatal("stopped clamd still answers on its socket")
	}
	if err := ping("tcp", a.Addr()); err == nil {
		t.Fatal("stopped clamd still answers on its TCP port")
	}
	if err := ping("unix", b.Socket()); err != nil {
		t.Fatalf("other clamd stopped too: %v", err)
	}
}

func TestRunsAsClamavWhenRoot(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 || runtime.GOOS != "linux" {
		t.Skip("needs root on Linux")
	}
	u, err := user.Lookup("clamav")
	if err != nil {
		peers.Missing(t, "no clamav user (apt-get install clamav-daemon)")
	}
	c := Start(t)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "Uid:" {
			if f[1] != u.Uid {
				t.Fatalf("clamd runs as uid %s, want clamav (%s)", f[1], u.Uid)
			}
			return
		}
	}
	t.Fatal("no Uid line in /proc status")
}

func TestDatabase(t *testing.T) {
	t.Parallel()
	db := t.TempDir()
	if err := writeDatabase(db); err != nil {
		t.Fatal(err)
	}
	hdb, err := os.ReadFile(filepath.Join(db, "mailgate-test.hdb"))
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(EICAR())
	if !strings.HasPrefix(string(hdb), hex.EncodeToString(sum[:])+":68:"+SigEICARHash+"\n") {
		t.Fatalf(".hdb starts %q", hdb)
	}
	if _, err := os.Stat(filepath.Join(TestFilesDir, "clam.exe")); err == nil && !strings.Contains(string(hdb), ":"+SigClamExe+"\n") {
		t.Fatalf(".hdb lacks the clam.exe line: %q", hdb)
	}
	ndb, err := os.ReadFile(filepath.Join(db, "mailgate-test.ndb"))
	if err != nil {
		t.Fatal(err)
	}
	if want := SigEICARBody + ":0:*:" + hex.EncodeToString(EICAR()) + "\n"; string(ndb) != want {
		t.Fatalf(".ndb is %q, want %q", ndb, want)
	}
}

func TestLaunch(t *testing.T) {
	t.Parallel()
	if findClamd() == "" {
		missingPeer(t, ErrNotInstalled.Error())
	}
	// A directory that does not exist yet, as a program would pass. Launch
	// opens dir and its parent to the clamav user; the test's own directory
	// above them stands for a world-traversable one such as /tmp.
	base := t.TempDir()
	if err := os.Chmod(filepath.Dir(base), 0o711); err != nil {
		t.Fatal(err)
	}
	// The parent of a program's directory may be a shared one like /tmp
	// (sticky, writable by all): Launch must leave its mode as it is.
	if err := os.Chmod(base, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "clamd")
	c, err := Launch(context.Background(), dir, WithMaxThreads(0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if fi, err := os.Stat(base); err != nil || fi.Mode()&(os.ModePerm|os.ModeSticky) != 0o777|os.ModeSticky {
		t.Fatalf("Launch changed its parent directory's mode to %v (%v)", fi.Mode(), err)
	}
	if c.Dir() != dir || !strings.HasPrefix(c.Socket(), dir+string(filepath.Separator)) {
		t.Fatalf("Dir %q, Socket %q: not under %q", c.Dir(), c.Socket(), dir)
	}
	if err := ping("unix", c.Socket()); err != nil {
		t.Fatalf("unix PING: %v", err)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", c.Pid())); runtime.GOOS == "linux" && err != nil {
		t.Fatalf("Pid %d: %v", c.Pid(), err)
	}
	conf, err := os.ReadFile(filepath.Join(dir, "clamd.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(conf), "MaxThreads") {
		t.Errorf("WithMaxThreads(0) still sets MaxThreads:\n%s", conf)
	}
	c.Stop()
	if err := ping("unix", c.Socket()); err == nil {
		t.Fatal("stopped clamd still answers on its socket")
	}
}

func TestLaunchCanceled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := filepath.Join(t.TempDir(), "clamd")
	c, err := Launch(ctx, dir)
	if !errors.Is(err, context.Canceled) || c != nil {
		t.Fatalf("Launch with a canceled context: %v, %v", c, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Launch with a canceled context touched %s: %v", dir, err)
	}
}

func TestConfMaxThreads(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		opts []Option
		want string // "" for no MaxThreads line
	}{
		{nil, "\nMaxThreads 4\n"},
		{[]Option{WithMaxThreads(12)}, "\nMaxThreads 12\n"},
		{[]Option{WithMaxThreads(0)}, ""},
	} {
		cfg := config{maxRecursion: 20, maxThreads: 4, alertExceedsMax: true}
		for _, o := range tc.opts {
			o(&cfg)
		}
		conf := (&Clamd{}).conf("/x", 3310, cfg)
		if tc.want == "" && strings.Contains(conf, "MaxThreads") || tc.want != "" && !strings.Contains(conf, tc.want) {
			t.Errorf("%d options: want %q in:\n%s", len(tc.opts), tc.want, conf)
		}
	}
}

// TestTemporaryDirectory: clamd writes a message's parts to the directory
// given, which Launch creates for it, and still finds what they hold.
func TestTemporaryDirectory(t *testing.T) {
	t.Parallel()
	tmp := filepath.Join(t.TempDir(), "scratch", "clamd-tmp")
	c := Start(t, WithTemporaryDirectory(tmp))
	conf, err := os.ReadFile(filepath.Join(c.Dir(), "clamd.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), "\nTemporaryDirectory "+tmp+"\n") {
		t.Fatalf("clamd.conf lacks TemporaryDirectory %s:\n%s", tmp, conf)
	}
	if _, err := os.Stat(tmp); err != nil {
		t.Fatalf("temporary directory not created: %v", err)
	}
	// EICAR in a base64 attachment: clamd decodes the part into a file of
	// the temporary directory before matching it.
	msg := "From: a@example.test\r\nTo: b@example.test\r\nSubject: x\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=\"t.com\"\r\n\r\n" + base64.StdEncoding.EncodeToString(EICAR()) + "\r\n--b--\r\n"
	reply, err := instream(c.Addr(), []byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(reply, "FOUND") {
		t.Fatalf("clamd answered %q for EICAR in an attachment", reply)
	}
}

// instream sends data to clamd's TCP port with INSTREAM and returns the reply.
func instream(addr string, data []byte) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(data)))
	if _, err := conn.Write(append(append(append([]byte("zINSTREAM\x00"), n[:]...), data...), 0, 0, 0, 0)); err != nil {
		return "", err
	}
	reply, err := io.ReadAll(conn)
	return strings.TrimRight(string(reply), "\x00\n"), err
}
