// Command benchcluster measures mailgate's relay throughput on one node
// with SQLite and on 1, 2 and 3 nodes sharing PostgreSQL and S3, with the
// bench-relay load: Postfix's smtp-source sends to the nodes and smtp-sink
// is the downstream. The load is spread over the nodes (one smtp-source
// per node, each with its share of the messages and sessions), as equal
// MX records spread it. Run it through scripts/bench-cluster, which builds
// mailgate.
//
// PostgreSQL runs as an operator runs it (fsync, full_page_writes and
// synchronous_commit on); S3 is a versitygw on loopback, which does not
// fsync its objects (docs/cluster.md). Every configuration gets a fresh
// database and bucket, a warm-up run, then the measured run. Besides
// msgs/s it prints, per configuration, the CPU time per message of each
// node, of PostgreSQL and of versitygw, and PostgreSQL's transactions and
// WAL flushes per message: on a small machine the nodes compete for its
// cores, and these figures say what each message costs wherever it runs.
//
// The last line is
//
//	cluster msgs/s: sqlite=A n1=B n2=C n3=D scaling=D/B lost=0
//
// lost counts messages smtp-source had acknowledged (it stops at the first
// reply that is not positive) that did not reach the sink in time.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/internal/testutil/pgtest"
	"github.com/mailgate/mailgate/internal/testutil/s3test"
)

type options struct {
	bin      string
	n        int
	sizeKB   int
	sessions int
	warmup   int
	timeout  time.Duration
	configs  []string
	keep     bool
	work     string
}

func main() { os.Exit(run()) }

func run() int {
	var o options
	var configs string
	flag.StringVar(&o.bin, "mailgate", "", "mailgate binary (required)")
	flag.IntVar(&o.n, "n", 5000, "messages per measured run")
	flag.IntVar(&o.sizeKB, "size", 10, "message size in KB")
	flag.IntVar(&o.sessions, "sessions", 20, "SMTP sessions in total, spread over the nodes")
	flag.IntVar(&o.warmup, "warmup", 200, "warm-up messages per configuration (0: none)")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Minute, "time limit of one run")
	flag.StringVar(&configs, "configs", "sqlite n1 n2 n3", "configurations to run: sqlite, n1, n2, n3 (nK: K nodes on PostgreSQL and S3)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory")
	flag.StringVar(&o.work, "dir", "", "work directory (default: a new temporary directory)")
	flag.Parse()
	o.configs = strings.Fields(configs)
	if o.bin == "" || o.n <= 0 || o.sessions <= 0 || o.sizeKB < 0 || o.warmup < 0 {
		fmt.Fprintln(os.Stderr, "bench-cluster: need -mailgate BIN, -n > 0, -sessions > 0")
		return 2
	}
	for _, c := range o.configs {
		if _, err := nodesOf(c); err != nil {
			fmt.Fprintln(os.Stderr, "bench-cluster:", err)
			return 2
		}
	}
	for _, t := range []string{"smtp-source", "smtp-sink"} {
		if _, err := exec.LookPath(t); err != nil {
			fmt.Fprintf(os.Stderr, "bench-cluster: %s not found (Debian's postfix package)\n", t)
			return 2
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	b := &bench{o: o, results: map[string]*result{}}
	code := b.main(ctx)
	return code
}

// nodesOf is the number of nodes of a configuration (0: SQLite).
func nodesOf(c string) (int, error) {
	switch c {
	case "sqlite":
		return 0, nil
	case "n1", "n2", "n3", "n4", "n5":
		return int(c[1] - '0'), nil
	}
	return 0, fmt.Errorf("unknown configuration %q (sqlite, n1, n2, n3)", c)
}

type bench struct {
	o       options
	dir     string
	pg      *pgtest.Server
	s3      *s3test.Server
	results map[string]*result
	failed  bool
}

// result is one configuration's measured run.
type result struct {
	nodes      int
	secs, rate float64
	lost       int
	dups       int
	nodeCPU    []float64 // CPU ms of each node during the run
	pgCPU      float64   // ms
	s3CPU      float64   // ms
	xacts      int64     // PostgreSQL commits during the run
	rollbacks  int64
	walSyncs   int64
	walBytes   int64
	dbBytes    int64 // growth of the database during the run
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[bench-cluster %s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (b *bench) main(ctx context.Context) int {
	b.dir = b.o.work
	if b.dir == "" {
		d, err := os.MkdirTemp("", "bench-cluster-")
		if err != nil {
			logf("FAIL: %v", err)
			return 1
		}
		b.dir = d
	}
	// smtp-sink drops to the postfix user, which must reach its output.
	os.Chmod(b.dir, 0o755)
	defer b.cleanup()
	needStore := false
	for _, c := range b.o.configs {
		if n, _ := nodesOf(c); n > 0 {
			needStore = true
		}
	}
	if needStore {
		if err := b.startStore(ctx); err != nil {
			logf("FAIL: %v", err)
			b.failed = true
			return 1
		}
	}
	var l1, l5 string
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(la))
		l1, l5 = f[0], f[1]
	}
	logf("load average before the runs: %s %s (%d cores)", l1, l5, numCPU())
	for _, c := range b.o.configs {
		if ctx.Err() != nil {
			break
		}
		r, err := b.runConfig(ctx, c)
		if err != nil {
			logf("%s: FAILED: %v", c, err)
			b.failed = true
			continue
		}
		b.results[c] = r
	}
	b.report()
	if b.failed {
		return 1
	}
	return 0
}

func (b *bench) cleanup() {
	if b.pg != nil {
		b.pg.Stop()
	}
	if b.s3 != nil {
		b.s3.Stop()
	}
	if b.o.keep || b.failed {
		logf("work directory kept: %s", b.dir)
	} else {
		os.RemoveAll(b.dir)
	}
}

// startStore starts the durable PostgreSQL server and versitygw.
func (b *bench) startStore(ctx context.Context) error {
	logf("starting PostgreSQL (fsync=on, synchronous_commit=on) and versitygw")
	pg, err := pgtest.LaunchWith(ctx, pgtest.Options{Durable: true})
	if err != nil {
		return err
	}
	b.pg = pg
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var fsync, sc, version string
	conn.QueryRow(ctx, `SHOW fsync`).Scan(&fsync)
	conn.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&sc)
	conn.QueryRow(ctx, `SHOW server_version`).Scan(&version)
	if fsync != "on" || sc != "on" {
		return fmt.Errorf("PostgreSQL runs with fsync=%s synchronous_commit=%s; the benchmark needs both on", fsync, sc)
	}
	logf("PostgreSQL %s in %s: fsync=%s synchronous_commit=%s", version, pg.Dir(), fsync, sc)
	s3, err := s3test.Launch(ctx, "")
	if err != nil {
		return err
	}
	b.s3 = s3
	return nil
}

// node is one running mailgate.
type node struct {
	name   string
	cfg    string
	addr   string
	cmd    *exec.Cmd
	exited chan struct{}
}

// runConfig starts the configuration's nodes on fresh storage, warms up,
// measures and stops them.
func (b *bench) runConfig(ctx context.Context, c string) (*result, error) {
	k, _ := nodesOf(c)
	dir := filepath.Join(b.dir, c)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	os.Chmod(dir, 0o755)
	sink, err := startSink(ctx, filepath.Join(dir, "sink.out"))
	if err != nil {
		return nil, err
	}
	defer sink.stop()
	store := ""
	db := "bench_" + c
	if k > 0 {
		if err := b.pg.Exec(ctx, `CREATE DATABASE `+db+` TEMPLATE template0`); err != nil {
			return nil, fmt.Errorf("create database: %w", err)
		}
		bucket := "bench-" + c
		if err := b.s3.CreateBucket(ctx, bucket); err != nil {
			return nil, fmt.Errorf("create bucket: %w", err)
		}
		store = fmt.Sprintf("[store]\ndriver = \"postgres\"\ndsn = %q\n[blobs]\ndriver = \"s3\"\nendpoint = %q\nbucket = %q\nregion = %q\npath_style = true\naccess_key_id = %q\nsecret_access_key = %q\n",
			b.pg.DSN(db), b.s3.Endpoint, bucket, b.s3.Region, b.s3.AccessKey, b.s3.SecretKey)
	}
	// smtp-source opens a connection per message; the next one may come
	// before the node has released the previous one's per-IP slot
	// (bench-relay has the same headroom).
	perIP := max(2*b.o.sessions, 50)
	var nodes []*node
	defer func() {
		for _, n := range nodes {
			n.stop()
		}
	}()
	for i := range max(k, 1) {
		name := fmt.Sprintf("node%d", i+1)
		ndir := filepath.Join(dir, name)
		if err := os.MkdirAll(ndir, 0o755); err != nil {
			return nil, err
		}
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		n := &node{name: name, cfg: filepath.Join(ndir, "mailgate.toml"), addr: fmt.Sprintf("127.0.0.1:%d", port)}
		cfg := fmt.Sprintf(`hostname = "mx%d.bench.test"
node_id = %q
data_dir = %q
log_level = "warn"
[inbound]
listen = [%q]
max_conn_per_ip = %d
[limits]
min_free_bytes = 0
[checks]
# The relay core, as scripts/bench-relay measures it.
enabled = []
`, i+1, name, filepath.Join(ndir, "data"), n.addr, perIP) + store
		if err := os.WriteFile(n.cfg, []byte(cfg), 0o644); err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	}
	for _, args := range [][]string{
		{"tenant", "add", "bench"},
		{"domain", "add", "bench", "bench.test", "--route", "smtp://" + sink.addr},
		{"user", "add", "user@bench.test"},
	} {
		if out, err := exec.CommandContext(ctx, b.o.bin, append([]string{"-c", nodes[0].cfg}, args...)...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("mailgate %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	for _, n := range nodes {
		if err := n.start(ctx, b.o.bin, filepath.Join(dir, n.name+".log")); err != nil {
			return nil, err
		}
	}
	if b.o.warmup > 0 {
		logf("%s: warm-up, %d messages", c, b.o.warmup)
		if _, err := b.load(ctx, c+"-warmup", dir, nodes, sink, b.o.warmup); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	r := &result{nodes: k}
	stats0, err := b.pgStats(ctx, db, k)
	if err != nil {
		return nil, err
	}
	cpu0 := b.cpu(nodes)
	logf("%s: measuring, %d messages of %d KB over %d sessions on %d node(s)", c, b.o.n, b.o.sizeKB, b.o.sessions, len(nodes))
	lr, err := b.load(ctx, c, dir, nodes, sink, b.o.n)
	if lr != nil {
		r.lost, r.dups = lr.lost, lr.dups
	}
	if err != nil {
		return r, err
	}
	cpu1 := b.cpu(nodes)
	r.secs = lr.secs
	r.rate = float64(b.o.n) / lr.secs
	for i := range nodes {
		r.nodeCPU = append(r.nodeCPU, cpu1.nodes[i]-cpu0.nodes[i])
	}
	r.pgCPU, r.s3CPU = cpu1.pg-cpu0.pg, cpu1.s3-cpu0.s3
	// A backend reports its statistics when it ends at the latest:
	// stopping the nodes closes their connections.
	for _, n := range nodes {
		n.stop()
	}
	if k > 0 {
		time.Sleep(500 * time.Millisecond)
		stats1, err := b.pgStats(ctx, db, k)
		if err != nil {
			return nil, err
		}
		r.xacts, r.rollbacks = stats1.commits-stats0.commits, stats1.rollbacks-stats0.rollbacks
		r.walSyncs, r.walBytes = stats1.walSyncs-stats0.walSyncs, stats1.walBytes-stats0.walBytes
		r.dbBytes = stats1.dbBytes - stats0.dbBytes
	}
	logf("%s: %d messages in %.3fs = %.1f msgs/s", c, b.o.n, r.secs, r.rate)
	return r, nil
}

type pgCounters struct{ commits, rollbacks, walSyncs, walBytes, dbBytes int64 }

// pgStats reads the database's transaction counters and the server's WAL
// counters (zero on SQLite).
func (b *bench) pgStats(ctx context.Context, db string, k int) (pgCounters, error) {
	var c pgCounters
	if k == 0 {
		return c, nil
	}
	conn, err := pgx.Connect(ctx, b.pg.DSN("postgres"))
	if err != nil {
		return c, err
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, `SELECT xact_commit, xact_rollback, pg_database_size(datname) FROM pg_stat_database WHERE datname = $1`, db).Scan(&c.commits, &c.rollbacks, &c.dbBytes); err != nil {
		return c, fmt.Errorf("pg_stat_database: %w", err)
	}
	if err := conn.QueryRow(ctx, `SELECT wal_sync, wal_bytes::bigint FROM pg_stat_wal`).Scan(&c.walSyncs, &c.walBytes); err != nil {
		return c, fmt.Errorf("pg_stat_wal: %w", err)
	}
	return c, nil
}

type cpuSample struct {
	nodes  []float64
	pg, s3 float64
}

// cpu samples the CPU time (ms) of each node, of PostgreSQL (the
// postmaster with the backends it has reaped, and the live ones) and of
// versitygw.
func (b *bench) cpu(nodes []*node) cpuSample {
	var s cpuSample
	for _, n := range nodes {
		s.nodes = append(s.nodes, cpuMS(n.cmd.Process.Pid, true))
	}
	if b.pg != nil {
		pm := b.pg.Pid()
		s.pg = cpuMS(pm, true)
		for _, c := range children(pm) {
			s.pg += cpuMS(c, false)
		}
	}
	if b.s3 != nil {
		s.s3 = cpuMS(b.s3.Pid(), true)
	}
	return s
}

// loadResult is one load run's outcome.
type loadResult struct {
	secs       float64
	lost, dups int
}

// load runs one smtp-source per node, each with its share of count
// messages and of the sessions, and waits until the sink has them all.
func (b *bench) load(ctx context.Context, label, dir string, nodes []*node, sink *sink, count int) (*loadResult, error) {
	ctx, cancel := context.WithTimeout(ctx, b.o.timeout)
	defer cancel()
	base, err := sink.count()
	if err != nil {
		return nil, err
	}
	target := base + count
	start := time.Now()
	type srcDone struct {
		node string
		err  error
	}
	done := make(chan srcDone, len(nodes))
	for i, n := range nodes {
		share := count / len(nodes)
		if i < count%len(nodes) {
			share++
		}
		sess := max(b.o.sessions/len(nodes), 1)
		if i < b.o.sessions%len(nodes) {
			sess++
		}
		out, err := os.Create(filepath.Join(dir, fmt.Sprintf("source-%s-%s.out", label, n.name)))
		if err != nil {
			return nil, err
		}
		cmd := exec.CommandContext(ctx, "smtp-source", "-4", "-s", strconv.Itoa(sess), "-m", strconv.Itoa(share),
			"-l", strconv.Itoa(b.o.sizeKB*1024), "-f", "sender@example.org", "-t", "user@bench.test", "-M", "bench-client.test", n.addr)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			out.Close()
			return nil, err
		}
		go func() {
			err := cmd.Wait()
			out.Close()
			if err != nil {
				b, _ := os.ReadFile(out.Name())
				err = fmt.Errorf("smtp-source to %s: %v: %s", n.name, err, lastLines(string(b), 3))
			}
			done <- srcDone{n.name, err}
		}()
	}
	var srcErr error
	for range nodes {
		d := <-done
		if d.err != nil && srcErr == nil {
			srcErr = d.err
		}
	}
	if srcErr != nil {
		return nil, srcErr
	}
	// Every message was acknowledged (smtp-source stops at the first
	// reply that is not positive); wait for the sink to have them all.
	for {
		n, err := sink.count()
		if err != nil {
			return nil, err
		}
		if n >= target {
			r := &loadResult{secs: time.Since(start).Seconds(), dups: n - target}
			return r, nil
		}
		select {
		case <-ctx.Done():
			return &loadResult{lost: target - n}, fmt.Errorf("%s: only %d of %d messages at the sink after %v", label, n-base, count, b.o.timeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// report prints the table and the last line.
func (b *bench) report() {
	p := func(format string, args ...any) { fmt.Printf(format+"\n", args...) }
	n := float64(b.o.n)
	p("")
	p("cluster benchmark: %d messages of %d KB, %d sessions spread over the nodes, warm-up %d (smtp-source -> nodes -> smtp-sink)",
		b.o.n, b.o.sizeKB, b.o.sessions, b.o.warmup)
	p("sqlite: one node, SQLite and local files; nK: K nodes on PostgreSQL (fsync=on, synchronous_commit=on) and S3 (versitygw, loopback)")
	p("%-7s %6s %9s %9s %12s %-22s %10s %10s %9s %11s %10s %9s", "config", "nodes", "seconds", "msgs/s", "CPU ms/msg", "per node (ms/its msg)", "PG ms/msg", "S3 ms/msg", "PG xact", "WAL fsync", "WAL KB", "DB KB")
	lost := 0
	for _, c := range b.o.configs {
		r := b.results[c]
		if r == nil {
			p("%-7s %6s %9s", c, "-", "FAILED")
			continue
		}
		lost += r.lost
		total := 0.0
		var per []string
		k := max(r.nodes, 1)
		for _, v := range r.nodeCPU {
			total += v
			per = append(per, fmt.Sprintf("%.2f", v/(n/float64(k))))
		}
		pg, s3, x, ws, wb, db := "-", "-", "-", "-", "-", "-"
		if r.nodes > 0 {
			pg = fmt.Sprintf("%.2f", r.pgCPU/n)
			s3 = fmt.Sprintf("%.2f", r.s3CPU/n)
			x = fmt.Sprintf("%.2f", float64(r.xacts)/n)
			ws = fmt.Sprintf("%.2f", float64(r.walSyncs)/n)
			wb = fmt.Sprintf("%.1f", float64(r.walBytes)/n/1024)
			db = fmt.Sprintf("%.2f", float64(r.dbBytes)/n/1024)
		}
		p("%-7s %6d %9.3f %9.1f %12.2f %-22s %10s %10s %9s %11s %10s %9s", c, k, r.secs, r.rate, total/n, strings.Join(per, " "), pg, s3, x, ws, wb, db)
		if r.rollbacks > 0 {
			p("        %s: %d PostgreSQL rollbacks during the run", c, r.rollbacks)
		}
		if r.dups > 0 {
			p("        %s: %d messages more than sent at the sink", c, r.dups)
		}
	}
	p("CPU ms/msg: user+system time of all nodes together per message; per node: each node's time per message it received")
	p("PG, S3 ms/msg: CPU time of PostgreSQL (every backend) and of versitygw per message; per message, per run: PG xact = commits")
	p("in the database (pg_stat_database), WAL fsync = WAL flushes (pg_stat_wal.wal_sync), WAL KB = WAL written, DB KB = growth of")
	p("the database (pg_database_size): the rows a message leaves for tracking and reports, with their indexes")
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(la))
		p("load average after the runs: %s %s on %d cores (the nodes, PostgreSQL, versitygw, smtp-source and smtp-sink share them)", f[0], f[1], numCPU())
	}
	p("")
	rate := func(c string) float64 {
		if r := b.results[c]; r != nil {
			return r.rate
		}
		return 0
	}
	scaling := 0.0
	if rate("n1") > 0 {
		scaling = rate("n3") / rate("n1")
	}
	for _, c := range []string{"sqlite", "n1", "n2", "n3"} {
		if b.results[c] == nil {
			b.failed = true
		}
	}
	p("cluster msgs/s: sqlite=%.1f n1=%.1f n2=%.1f n3=%.1f scaling=%.2f lost=%d", rate("sqlite"), rate("n1"), rate("n2"), rate("n3"), scaling, lost)
	if lost > 0 {
		b.failed = true
	}
}

// --- processes ---

func (n *node) start(ctx context.Context, bin, logPath string) error {
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "-c", n.cfg, "serve")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	n.cmd, n.exited = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(n.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", n.addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-n.exited:
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("%s exited at start: %s", n.name, lastLines(string(b), 3))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not listen on %s after 30s", n.name, n.addr)
		}
	}
}

// stop ends the node gracefully (SIGTERM, then SIGKILL after 30 s).
func (n *node) stop() {
	if n.cmd == nil {
		return
	}
	select {
	case <-n.exited:
		return
	default:
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(30 * time.Second):
		n.cmd.Process.Kill()
		<-n.exited
	}
}

// sink is a running smtp-sink counting messages (-c).
type sink struct {
	addr, out string
	cmd       *exec.Cmd
}

func startSink(ctx context.Context, out string) (*sink, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	f, err := os.Create(out)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	args := []string{"-c", addr, "1024"}
	if os.Geteuid() == 0 {
		args = append([]string{"-u", "postfix"}, args...)
	}
	cmd := exec.Command("smtp-sink", args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &sink{addr: addr, out: out, cmd: cmd}
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return s, nil
		}
		if i > 150 || ctx.Err() != nil {
			s.stop()
			return nil, fmt.Errorf("smtp-sink does not listen on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var mesgRE = regexp.MustCompile(`mesg=(\d+)`)

// count is the number of messages the sink has received: smtp-sink -c
// rewrites one status line ("sess=.. quit=.. mesg=N") with CRs.
func (s *sink) count() (int, error) {
	f, err := os.Open(s.out)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	off := max(fi.Size()-300, 0)
	buf := make([]byte, fi.Size()-off)
	n, err := f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	m := mesgRE.FindAllSubmatch(buf[:n], -1)
	if len(m) == 0 {
		return 0, nil
	}
	return strconv.Atoi(string(m[len(m)-1][1]))
}

func (s *sink) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

// --- /proc ---

var clkTck = 100.0 // USER_HZ: 100 on every Linux architecture Go supports

// cpuMS is a process's user+system CPU time in ms, with that of the
// children it has reaped when withChildren.
func cpuMS(pid int, withChildren bool) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// Fields after the command: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
	if len(f) < 15 {
		return 0
	}
	sum := 0.0
	idx := []int{11, 12}
	if withChildren {
		idx = append(idx, 13, 14)
	}
	for _, i := range idx {
		v, _ := strconv.ParseFloat(f[i], 64)
		sum += v
	}
	return sum * 1000 / clkTck
}

// children lists the live child processes of pid.
func children(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, c)
		}
	}
	return out
}

func numCPU() int { return runtime.NumCPU() }

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
