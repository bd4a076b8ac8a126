package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// server runs one mailgate process at a time from the same binary, config
// and data directory, appending every run's stderr to one log file. Methods
// are safe for concurrent use; start, kill and stop are serialised.
type server struct {
	name, host     string // node_id (or "mailgate" alone) and host name
	bin, cfg, addr string
	log            *os.File
	logPath        string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been reaped
	killing bool          // the current exit is one we caused
	runs    int
	// unexpected records runs that ended without being killed by us.
	unexpected []string
	startups   []time.Duration // start to first accepted connection, per run
}

// start launches mailgate serve and waits (bounded by ctx and 30 s) until
// the inbound port accepts connections. A process that exits before that is
// an error carrying its exit status.
func (s *server) start(ctx context.Context) error {
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		return errors.New("mailgate already running")
	}
	s.runs++
	began := time.Now()
	fmt.Fprintf(s.log, "=== crash-test: %s run %d starting at %s\n", s.name, s.runs, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(s.bin, "-c", s.cfg, "serve")
	cmd.Stdout = s.log
	cmd.Stderr = s.log
	// Own process group, so a terminal's ^C reaches only this program, which
	// then stops mailgate itself; Pdeathsig covers this program dying.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("start mailgate: %w", err)
	}
	exited := make(chan struct{})
	s.cmd, s.exited, s.killing = cmd, exited, false
	run := s.runs
	go func() {
		err := cmd.Wait()
		s.mu.Lock()
		if !s.killing {
			s.unexpected = append(s.unexpected, fmt.Sprintf("run %d (pid %d) exited on its own: %v", run, cmd.Process.Pid, err))
		}
		if s.cmd == cmd {
			s.cmd = nil
		}
		s.mu.Unlock()
		close(exited)
	}()
	s.mu.Unlock()

	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			s.mu.Lock()
			s.startups = append(s.startups, time.Since(began))
			s.mu.Unlock()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("mailgate run %d exited during start-up (see log)", run)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mailgate run %d did not accept connections on %s within 30s", run, s.addr)
		}
	}
}

// signal sends sig to the running process and waits for it to be reaped.
// It reports whether a process was running.
func (s *server) signal(sig syscall.Signal, wait time.Duration) (bool, error) {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	if cmd == nil {
		s.mu.Unlock()
		return false, nil
	}
	s.killing = true
	s.mu.Unlock()
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return true, fmt.Errorf("signal %v: %w", sig, err)
	}
	select {
	case <-exited:
		return true, nil
	case <-time.After(wait):
		return true, fmt.Errorf("mailgate pid %d still running %v after %v", cmd.Process.Pid, wait, sig)
	}
}

// kill is the crash: SIGKILL, reaped before returning.
func (s *server) kill() (bool, error) { return s.signal(syscall.SIGKILL, 10*time.Second) }

// stop asks for a graceful stop and falls back to SIGKILL.
func (s *server) stop() {
	if _, err := s.signal(syscall.SIGTERM, 15*time.Second); err != nil {
		fmt.Fprintf(os.Stderr, "crash-test: %v; killing\n", err)
		s.kill()
	}
}

func (s *server) runCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runs
}

// startStats summarises the nodes' start-up times (zero when none).
func startStats(srvs []*server) (lo, avg, hi time.Duration) {
	var all []time.Duration
	for _, s := range srvs {
		s.mu.Lock()
		all = append(all, s.startups...)
		s.mu.Unlock()
	}
	var sum time.Duration
	for i, d := range all {
		if i == 0 || d < lo {
			lo = d
		}
		hi = max(hi, d)
		sum += d
	}
	if len(all) > 0 {
		avg = sum / time.Duration(len(all))
	}
	return lo.Round(time.Millisecond), avg.Round(time.Millisecond), hi.Round(time.Millisecond)
}

func (s *server) unexpectedExits() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.unexpected...)
}

// cli runs an admin command against the same config, bounded in time.
func (s *server) cli(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, s.bin, append([]string{"-c", s.cfg}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("mailgate %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

var queueCountRE = regexp.MustCompile(`(?m)^(\d+) messages$`)

// queueCount runs 'queue list' and returns its message count and listing.
func (s *server) queueCount(ctx context.Context) (int, string, error) {
	out, err := s.cli(ctx, "queue", "list")
	if err != nil {
		return 0, out, err
	}
	return parseQueueCount(out)
}

func parseQueueCount(out string) (int, string, error) {
	m := queueCountRE.FindStringSubmatch(out)
	if m == nil {
		return 0, out, fmt.Errorf("queue list: no count line in %q", out)
	}
	n, err := strconv.Atoi(m[1])
	return n, out, err
}
