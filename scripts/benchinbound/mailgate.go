package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// instance is one mailgate with its own data directory.
type instance struct {
	bin, dir, conf, logPath string
	addr                    string // inbound listener
	sink                    string // downstream host:port
	cmd                     *exec.Cmd
	exited                  chan struct{}
	profPath                string   // CPU profile of the measured window, or ""
	pprofAddr               string   // [debug] pprof_listen when profiling
	prof                    net.Conn // the profile request while it runs
}

// instanceConfig is what differs between the runs.
type instanceConfig struct {
	checks   []string
	clamd    string
	resolver string
	sink     string
	logLevel string
	maxPerIP int
	// cpuProfile: where the CPU profile of the measured window goes, taken
	// through mailgate's [debug] pprof_listen, or "".
	cpuProfile string
}

func newInstance(bin, dir string, ic instanceConfig) (*instance, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	in := &instance{bin: bin, dir: dir, conf: filepath.Join(dir, "mailgate.toml"), logPath: filepath.Join(dir, "mailgate.log"),
		addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), sink: ic.sink,
		profPath: ic.cpuProfile}
	if in.profPath != "" {
		pport, err := freePort()
		if err != nil {
			return nil, err
		}
		in.pprofAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(pport))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("mailgate dir: %w", err)
	}
	quoted := make([]string, len(ic.checks))
	for i, c := range ic.checks {
		quoted[i] = strconv.Quote(c)
	}
	conf := fmt.Sprintf(`hostname = "mailgate.test"
data_dir = %q
log_level = %q
[dns]
resolver = %q
[inbound]
listen = [%q]
max_conn_per_ip = %d
[limits]
min_free_bytes = 0
[queue]
retry = ["5s"]
poll_interval = "200ms"
[delivery]
smart_host = "smtp://%s"
[checks]
enabled = [%s]
clamd = %q
`, filepath.Join(dir, "data"), ic.logLevel, ic.resolver, in.addr, ic.maxPerIP, ic.sink, strings.Join(quoted, ", "), ic.clamd)
	if in.pprofAddr != "" {
		conf += fmt.Sprintf("[debug]\npprof_listen = %q\n", in.pprofAddr)
	}
	if err := os.WriteFile(in.conf, []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("mailgate config: %w", err)
	}
	return in, nil
}

// admin runs one CLI command against the instance's database.
func (in *instance) admin(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, in.bin, append([]string{"-c", in.conf}, args...)...)
	cmd.Stdin = stdin
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("mailgate %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// start runs "mailgate serve" and waits until its inbound port accepts.
func (in *instance) start(ctx context.Context) error {
	logf, err := os.Create(in.logPath)
	if err != nil {
		return fmt.Errorf("mailgate log: %w", err)
	}
	defer logf.Close()
	in.cmd = exec.Command(in.bin, "-c", in.conf, "serve")
	in.cmd.Stderr = logf
	if in.profPath != "" {
		_ = os.Remove(in.profPath)
	}
	in.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := in.cmd.Start(); err != nil {
		return fmt.Errorf("starting mailgate: %w", err)
	}
	in.exited = make(chan struct{})
	go func() {
		_ = in.cmd.Wait()
		close(in.exited)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-in.exited:
			return fmt.Errorf("mailgate exited during start-up (%v):\n%s", in.cmd.ProcessState, in.logTail(20))
		case <-ctx.Done():
			in.stop()
			return ctx.Err()
		default:
		}
		if c, err := net.DialTimeout("tcp", in.addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			in.stop()
			return fmt.Errorf("mailgate not listening on %s after 30s:\n%s", in.addr, in.logTail(20))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (in *instance) pid() int { return in.cmd.Process.Pid }

// profile starts or stops the CPU profile of the measured window, through
// mailgate's pprof listener: start sends the request for a profile longer
// than the benchmark can last; stop half-closes the connection, which ends
// the profile at once (the server cancels the request when its client
// stops sending), and writes the profile the server then answers with.
func (in *instance) profile(start bool, limit time.Duration) error {
	if in.profPath == "" {
		return nil
	}
	if start {
		c, err := net.DialTimeout("tcp", in.pprofAddr, 5*time.Second)
		if err != nil {
			return fmt.Errorf("starting the CPU profile: %w", err)
		}
		secs := int((limit + time.Minute).Seconds())
		if _, err := fmt.Fprintf(c, "GET /debug/pprof/profile?seconds=%d HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", secs, in.pprofAddr); err != nil {
			c.Close()
			return fmt.Errorf("starting the CPU profile: %w", err)
		}
		in.prof = c
		return nil
	}
	c := in.prof
	if c == nil {
		return fmt.Errorf("no CPU profile running")
	}
	in.prof = nil
	defer c.Close()
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return fmt.Errorf("stopping the CPU profile: %w", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return fmt.Errorf("reading the CPU profile: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("reading the CPU profile: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("CPU profile: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	// Written aside and renamed: a reader never sees a partial profile.
	if err := os.WriteFile(in.profPath+".tmp", body, 0o644); err != nil {
		return fmt.Errorf("writing the CPU profile: %w", err)
	}
	if err := os.Rename(in.profPath+".tmp", in.profPath); err != nil {
		return fmt.Errorf("writing the CPU profile: %w", err)
	}
	return nil
}

// alive reports whether the server process is still running.
func (in *instance) alive() bool {
	select {
	case <-in.exited:
		return false
	default:
		return true
	}
}

// stop is a graceful stop (SIGTERM), then SIGKILL after 15 seconds.
func (in *instance) stop() {
	if in.cmd == nil || in.exited == nil {
		return
	}
	select {
	case <-in.exited:
		return
	default:
	}
	_ = in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.exited:
	case <-time.After(15 * time.Second):
		_ = in.cmd.Process.Kill()
		<-in.exited
	}
}

func (in *instance) logTail(n int) string {
	b, _ := os.ReadFile(in.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var logLine = regexp.MustCompile(`level=(\w+) msg=("(?:[^"\\]|\\.)*"|\S+)`)

// logSummary counts the server log's lines by level and message, most
// frequent first, with one example line each.
func (in *instance) logSummary() []string {
	f, err := os.Open(in.logPath)
	if err != nil {
		return []string{"(no log: " + err.Error() + ")"}
	}
	defer f.Close()
	type entry struct {
		key, example string
		n            int
	}
	byKey := map[string]*entry{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		key := "(unparsed)"
		if m := logLine.FindStringSubmatch(line); m != nil {
			key = m[1] + " " + m[2]
		}
		e := byKey[key]
		if e == nil {
			e = &entry{key: key, example: line}
			byKey[key] = e
		}
		e.n++
	}
	var all []*entry
	for _, e := range byKey {
		all = append(all, e)
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].n != all[j].n {
			return all[i].n > all[j].n
		}
		return all[i].key < all[j].key
	})
	var out []string
	for _, e := range all {
		ex := e.example
		if len(ex) > 300 {
			ex = ex[:300] + "..."
		}
		out = append(out, fmt.Sprintf("%6d x %s\n         e.g. %s", e.n, e.key, ex))
	}
	return out
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// procStatus returns a "KEY: N kB" value of /proc/PID/status in kB.
func procStatus(pid int, key string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", key, pid)
}

// cpuTicks returns utime+stime of a process (proc(5) fields 14 and 15) in
// clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces; fields after it are
	// counted from the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("odd /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	// f[0] is field 3 (state): utime is field 14 -> f[11], stime f[12].
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad times in /proc/%d/stat", pid)
	}
	return u + st, nil
}

// clockTicks is sysconf(_SC_CLK_TCK), asked of getconf; Linux uses 100.
func clockTicks() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil && v > 0 {
			return v
		}
	}
	return 100
}
