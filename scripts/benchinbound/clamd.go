package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clamdProc is a clamd started by the benchmark, with a signature database
// written at run time (freshclam cannot download here): only the EICAR
// signatures, so the scanning cost measured is clamd's protocol, MIME and
// archive handling, not the matching of a full database.
type clamdProc struct {
	cmd     *exec.Cmd
	socket  string
	logPath string
	exited  chan struct{}
}

// findClamd looks on PATH and in the sbin directories a non-root PATH lacks.
func findClamd() string {
	if p, err := exec.LookPath("clamd"); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		p := filepath.Join(d, "clamd")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// startClamd writes clamd.conf and the database under dir and starts clamd
// in the foreground, as the clamav user when running as root. It returns
// once clamd answers PING on its Unix socket.
func startClamd(ctx context.Context, dir string) (*clamdProc, error) {
	bin := findClamd()
	if bin == "" {
		return nil, errors.New("clamd not found (apt-get install clamav-daemon)")
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		if u, err := user.Lookup("clamav"); err == nil {
			uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
			gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("clamav user ids %q/%q", u.Uid, u.Gid)
			}
			cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
		}
	}
	db, run := filepath.Join(dir, "db"), filepath.Join(dir, "run")
	for _, d := range []string{db, run, filepath.Join(run, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("clamd dirs: %w", err)
		}
	}
	if cred != nil {
		// clamd must reach its files through the 0700 temporary directory
		// and write its socket, log and temporary files.
		for _, d := range []string{filepath.Dir(dir), dir} {
			if err := os.Chmod(d, 0o711); err != nil {
				return nil, fmt.Errorf("opening %s to clamav: %w", d, err)
			}
		}
		for _, d := range []string{run, filepath.Join(run, "tmp")} {
			if err := os.Chown(d, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, fmt.Errorf("handing %s to clamav: %w", d, err)
			}
		}
	}
	// .hdb is "MD5:size:name"; .ndb "name:target:offset:hexbody" (target 0:
	// any file, offset *: anywhere), per ClamAV's signature format.
	e := eicar()
	sum := md5.Sum(e)
	if err := os.WriteFile(filepath.Join(db, "bench.hdb"), fmt.Appendf(nil, "%x:%d:Bench.EICAR.Hash\n", sum, len(e)), 0o644); err != nil {
		return nil, fmt.Errorf("clamd database: %w", err)
	}
	if err := os.WriteFile(filepath.Join(db, "bench.ndb"), []byte("Bench.EICAR.Body:0:*:"+hex.EncodeToString(e)+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("clamd database: %w", err)
	}
	c := &clamdProc{socket: filepath.Join(run, "clamd.sock"), logPath: filepath.Join(run, "clamd.log"), exited: make(chan struct{})}
	var conf strings.Builder
	for _, kv := range [][2]string{
		{"Foreground", "yes"},
		{"LocalSocket", c.socket},
		{"LocalSocketMode", "666"},
		{"FixStaleSocket", "yes"},
		{"DatabaseDirectory", db},
		{"TemporaryDirectory", filepath.Join(run, "tmp")},
		{"LogFile", c.logPath},
		{"LogTime", "yes"},
		{"Bytecode", "no"},
	} {
		fmt.Fprintf(&conf, "%s %s\n", kv[0], kv[1])
	}
	confPath := filepath.Join(dir, "clamd.conf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o644); err != nil {
		return nil, fmt.Errorf("clamd.conf: %w", err)
	}
	out, err := os.Create(filepath.Join(dir, "clamd.out"))
	if err != nil {
		return nil, fmt.Errorf("clamd output: %w", err)
	}
	defer out.Close()
	c.cmd = exec.Command(bin, "--foreground", "--config-file="+confPath)
	c.cmd.Stdout, c.cmd.Stderr = out, out
	// Pdeathsig: clamd dies with the benchmark even if it is killed.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting clamd: %w", err)
	}
	go func() {
		_ = c.cmd.Wait()
		close(c.exited)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-c.exited:
			return nil, fmt.Errorf("clamd exited during start-up (%v):\n%s", c.cmd.ProcessState, c.tail(dir))
		case <-ctx.Done():
			c.stop()
			return nil, ctx.Err()
		default:
		}
		if clamdPing(c.socket) == nil {
			return c, nil
		}
		if time.Now().After(deadline) {
			c.stop()
			return nil, fmt.Errorf("clamd did not answer PING within 60s:\n%s", c.tail(dir))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *clamdProc) pid() int { return c.cmd.Process.Pid }

func (c *clamdProc) tail(dir string) string {
	a, _ := os.ReadFile(c.logPath)
	b, _ := os.ReadFile(filepath.Join(dir, "clamd.out"))
	s := string(a) + string(b)
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return s
}

// stop sends SIGTERM, then SIGKILL after 10 seconds, and waits.
func (c *clamdProc) stop() {
	select {
	case <-c.exited:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

// clamdPing is one zPING/PONG exchange.
func clamdPing(socket string) error {
	conn, err := net.DialTimeout("unix", socket, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return err
	}
	if _, err := conn.Write([]byte("zPING\x00")); err != nil {
		return err
	}
	buf := make([]byte, 16)
	n, err := conn.Read(buf)
	if got := buf[:n]; !bytes.HasPrefix(got, []byte("PONG")) {
		return fmt.Errorf("PING answered %q (%v)", got, err)
	}
	return nil
}
