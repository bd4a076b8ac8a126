// Command benchlists measures mailing list expansion: how many posts to a
// list of MEMBERS members mailgate expands and delivers to every member
// per second, and how many member copies (one per member recipient) that
// is.
//
// It starts on 127.0.0.1 two sinks (package sink): the served domain's
// route and the smart host that stands for the internet. In a fresh data
// directory it provisions a tenant with the CLI, creates a list
// (serial numbers and Reply-To on, posting open) and imports its members
// (one in ten in the served domain, the others spread over twenty outside
// domains), starts "mailgate serve" with the inbound checks off (the
// checks' cost is bench-inbound's), sends POSTS posts over one SMTP
// connection, and waits until every member has every post.
//
// The time runs from the first post's MAIL to the last member copy at a
// sink. Each member must get each post exactly once; anything else is
// printed and makes the exit status 1. The line before the last gives the
// p50 and p95 of a post's acceptance (MAIL FROM to the answer after its
// data) while earlier posts are distributed. The last line of output is
// exactly
//
//	list expansion msgs/s=P copies/s=C for a N-member list
//
// Run it through scripts/bench-lists, which builds mailgate.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mailgate/mailgate/internal/sink"
)

type options struct {
	bin     string
	members int
	posts   int
	timeout time.Duration
	dir     string
	keep    bool
}

func main() { os.Exit(run()) }

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[benchlists %s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run() int {
	var o options
	flag.StringVar(&o.bin, "mailgate", "", "mailgate binary (required)")
	flag.IntVar(&o.members, "members", 1000, "members of the list")
	flag.IntVar(&o.posts, "posts", 50, "posts sent to the list")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "hard limit for the whole benchmark")
	flag.StringVar(&o.dir, "dir", "", "work directory (default: a new temporary directory)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (config, log, data)")
	flag.Parse()
	if o.bin == "" || o.members < 1 || o.posts < 1 {
		flag.Usage()
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	if err := bench(ctx, o); err != nil {
		logf("FAIL: %v", err)
		fmt.Printf("list expansion msgs/s=0.0 copies/s=0 for a %d-member list\n", o.members)
		return 1
	}
	return 0
}

func bench(ctx context.Context, o options) error {
	dir := o.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "benchlists-")
		if err != nil {
			return err
		}
		dir = d
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	} else {
		logf("work directory: %s", dir)
	}
	// Messages are kept in memory only: the sinks' disk is not measured.
	route, err := sink.Start("127.0.0.1:0", "", true)
	if err != nil {
		return err
	}
	defer route.Close()
	internet, err := sink.Start("127.0.0.1:0", "", true)
	if err != nil {
		return err
	}
	defer internet.Close()

	port, err := freePort()
	if err != nil {
		return err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	conf := filepath.Join(dir, "mailgate.toml")
	// The resolver is a closed port: nothing here may need DNS, and
	// nothing reaches the machine's resolver.
	toml := fmt.Sprintf(`hostname = "mailgate.test"
data_dir = %q
log_level = "warn"
[dns]
resolver = "127.0.0.1:9"
[inbound]
listen = [%q]
[limits]
min_free_bytes = 0
[queue]
retry = ["5s"]
poll_interval = "200ms"
[delivery]
smart_host = "smtp://%s"
[checks]
enabled = []
`, filepath.Join(dir, "data"), addr, internet.Addr())
	if err := os.WriteFile(conf, []byte(toml), 0o644); err != nil {
		return err
	}
	cli := func(stdin string, args ...string) error {
		cmd := exec.CommandContext(ctx, o.bin, append([]string{"-c", conf}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("mailgate %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
		return nil
	}
	var csv strings.Builder
	want := map[string]bool{}
	for i := range o.members {
		dom := fmt.Sprintf("d%02d.example.net", i%20)
		if i%10 == 0 {
			dom = "example.test"
		}
		a := fmt.Sprintf("m%05d@%s", i, dom)
		want[a] = true
		fmt.Fprintf(&csv, "%s,Member %d\n", a, i)
	}
	for _, c := range []struct {
		stdin string
		args  []string
	}{
		{"", []string{"tenant", "add", "acme"}},
		{"", []string{"domain", "add", "acme", "example.test", "--route", "smtp://" + route.Addr()}},
		{"", []string{"ml", "add", "all@example.test", "--serial", "--reply-to-list", "--posting", "anyone"}},
		{csv.String(), []string{"ml", "import", "all@example.test"}},
	} {
		if err := cli(c.stdin, c.args...); err != nil {
			return err
		}
	}

	logPath := filepath.Join(dir, "mailgate.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	srv := exec.Command(o.bin, "-c", conf, "serve")
	srv.Stdout, srv.Stderr = logFile, logFile
	srv.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := srv.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { srv.Wait(); close(exited) }()
	defer func() {
		srv.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			srv.Process.Kill()
			<-exited
		}
	}()
	if err := waitListening(ctx, addr, exited); err != nil {
		return fmt.Errorf("%w (log: %s)", err, logPath)
	}

	logf("sending %d posts to a %d-member list", o.posts, o.members)
	start := time.Now()
	accept, err := send(addr, o.posts)
	if err != nil {
		return err
	}
	sent := time.Since(start)
	total := o.posts * o.members
	var got map[string]map[string]int
	var last time.Time
	for {
		got, last = copies(route, internet)
		n := 0
		for _, ps := range got {
			n += len(ps)
		}
		if n >= total {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d member copies delivered before the time limit", n, total)
		case <-exited:
			return fmt.Errorf("mailgate exited (log: %s)", logPath)
		case <-time.After(50 * time.Millisecond):
		}
	}
	// Late duplicates would show up now.
	time.Sleep(time.Second)
	got, _ = copies(route, internet)
	var bad []string
	for a := range want {
		if len(got[a]) != o.posts {
			bad = append(bad, fmt.Sprintf("%s got %d of %d posts", a, len(got[a]), o.posts))
		}
	}
	for a, ps := range got {
		if !want[a] {
			bad = append(bad, a+" is no member")
		}
		for p, k := range ps {
			if k != 1 {
				bad = append(bad, fmt.Sprintf("%s got post %s %d times", a, p, k))
			}
		}
	}
	if len(bad) > 0 {
		for i, b := range bad {
			if i == 20 {
				logf("... and %d more", len(bad)-20)
				break
			}
			logf("%s", b)
		}
		return errors.New("members did not get exactly one copy of each post")
	}
	took := last.Sub(start)
	logf("posts accepted in %v; every member had every post after %v", sent.Round(time.Millisecond), took.Round(time.Millisecond))
	fmt.Printf("post accepted p50=%.0f ms p95=%.0f ms (MAIL FROM to the answer after the data)\n",
		ms(percentile(accept, 50)), ms(percentile(accept, 95)))
	fmt.Printf("list expansion msgs/s=%.1f copies/s=%.0f for a %d-member list\n",
		float64(o.posts)/took.Seconds(), float64(total)/took.Seconds(), o.members)
	return nil
}

// send posts n messages to the list over one SMTP connection and returns
// how long each post took from MAIL FROM to the answer after its data.
func send(addr string, n int) ([]time.Duration, error) {
	c, err := smtp.Dial(addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.Hello("bench.example.net"); err != nil {
		return nil, err
	}
	var took []time.Duration
	for i := range n {
		start := time.Now()
		if err := c.Mail("poster@example.org"); err != nil {
			return nil, fmt.Errorf("post %d: MAIL: %w", i, err)
		}
		if err := c.Rcpt("all@example.test"); err != nil {
			return nil, fmt.Errorf("post %d: RCPT: %w", i, err)
		}
		w, err := c.Data()
		if err != nil {
			return nil, fmt.Errorf("post %d: DATA: %w", i, err)
		}
		fmt.Fprintf(w, "From: <poster@example.org>\r\nTo: <all@example.test>\r\nSubject: Post %d\r\nMessage-ID: <post-%d@bench.example.net>\r\n"+
			"X-Bench-Post: %d\r\n\r\nPost %d to the list.\r\n%s", i, i, i, i, strings.Repeat("A line of the post's body text.\r\n", 60))
		if err := w.Close(); err != nil {
			return nil, fmt.Errorf("post %d: %w", i, err)
		}
		took = append(took, time.Since(start))
	}
	return took, c.Quit()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// percentile is the p-th percentile of ds (sorted in place).
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := (len(ds)*p+99)/100 - 1
	return ds[max(0, min(i, len(ds)-1))]
}

// copies counts, per member recipient, the copies of each post the sinks
// have, and returns when the last one arrived.
func copies(sinks ...*sink.Sink) (map[string]map[string]int, time.Time) {
	got := map[string]map[string]int{}
	var last time.Time
	for _, s := range sinks {
		for _, m := range s.Messages() {
			i := bytes.Index(m.Data, []byte("X-Bench-Post: "))
			if i < 0 {
				continue
			}
			post, _, _ := bytes.Cut(m.Data[i+len("X-Bench-Post: "):], []byte("\r\n"))
			for _, r := range m.To {
				r = strings.ToLower(r)
				if got[r] == nil {
					got[r] = map[string]int{}
				}
				got[r][string(post)]++
			}
			if m.Added.After(last) {
				last = m.Added
			}
		}
	}
	return got, last
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitListening(ctx context.Context, addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("mailgate exited during start-up")
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mailgate not listening on %s after 30s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
