// Command crashtest proves that mailgate never loses a message it has
// acknowledged with 250 when it is killed with SIGKILL at random moments.
//
// It runs a downstream sink in process, starts mailgate on 127.0.0.1 with a
// temporary data directory, sends messages carrying unique tokens over
// several SMTP sessions while killing and restarting mailgate, then lets the
// queue drain and checks every acknowledged token against the sink.
//
// With -store postgres the nodes keep their store in a throwaway PostgreSQL
// server and their message bodies on S3 (a versitygw on loopback), and
// -nodes N runs N nodes on that store, each with its own node_id, host name
// and port: the senders spread their sessions over the nodes (moving to the
// next one when a node does not answer, as an MTA tries the next MX), and
// each kill takes down one node, which stays down for up to -down, long
// enough for its leases (-lease) to expire and the other nodes to deliver
// what it held. The last line of output is
//
//	crash-test: store=S acked=N delivered=N lost=0 duplicates=D
//
// and the exit status is non-zero when an acknowledged message was lost,
// nothing was acknowledged, mailgate failed to start, or the run exceeded
// its time limit. Run it through scripts/crash-test, which builds mailgate.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mailgate/mailgate/internal/sink"
	"github.com/mailgate/mailgate/internal/testutil/pgtest"
	"github.com/mailgate/mailgate/internal/testutil/s3test"
)

type options struct {
	bin              string
	n, conc          int
	seed             uint64
	minKills         int
	killMin, killMax time.Duration
	drain, timeout   time.Duration
	workDir          string
	keep             bool
	store            string // sqlite or postgres
	nodes            int
	down             time.Duration // longest time a killed node stays down
	lease            time.Duration // [queue] lease of the nodes (0: mailgate's default)
}

func main() { os.Exit(run()) }

func run() int {
	var o options
	flag.StringVar(&o.bin, "mailgate", "", "mailgate binary (required)")
	flag.IntVar(&o.n, "n", 2000, "messages to send")
	flag.IntVar(&o.conc, "c", 8, "concurrent SMTP sessions")
	flag.Uint64Var(&o.seed, "seed", 1, "seed for kill timing and message sizes")
	flag.IntVar(&o.minKills, "kills", 10, "minimum number of SIGKILLs (kills go on after sending until reached)")
	flag.DurationVar(&o.killMin, "kill-min", 300*time.Millisecond, "shortest time between restart and the next kill")
	flag.DurationVar(&o.killMax, "kill-max", 2*time.Second, "longest time between restart and the next kill")
	flag.DurationVar(&o.drain, "drain", 120*time.Second, "how long to wait for delivery after the final restart")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "hard limit for the whole run")
	flag.StringVar(&o.workDir, "dir", "", "work directory (default: a new temporary directory)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory even on success")
	flag.StringVar(&o.store, "store", "sqlite", "sqlite (SQLite and local files) or postgres (PostgreSQL and S3 on versitygw)")
	flag.IntVar(&o.nodes, "nodes", 1, "mailgate nodes sharing the store (more than one needs -store postgres)")
	flag.DurationVar(&o.down, "down", -1, "longest time a killed node stays down before its restart, picked at random from 0 up (default: 0 for one node, twice -lease for several)")
	flag.DurationVar(&o.lease, "lease", 0, "the nodes' [queue] lease (default: mailgate's, or 3s on postgres)")
	flag.Parse()
	if o.bin == "" || o.n <= 0 || o.conc <= 0 || o.killMax <= o.killMin || o.killMin <= 0 {
		fmt.Fprintln(os.Stderr, "crash-test: need -mailgate BIN, -n > 0, -c > 0 and 0 < -kill-min < -kill-max")
		return 2
	}
	if o.store != "sqlite" && o.store != "postgres" || o.nodes < 1 || o.nodes > 1 && o.store != "postgres" {
		fmt.Fprintln(os.Stderr, "crash-test: -store is sqlite or postgres, and -nodes > 1 needs -store postgres")
		return 2
	}
	if o.lease == 0 && o.store == "postgres" {
		// Short, so that the leases of a killed node expire while it is
		// down and the other nodes take its work over within the run.
		o.lease = 3 * time.Second
	}
	if o.down < 0 {
		o.down = 0
		if o.nodes > 1 {
			o.down = 2 * o.lease
		}
	}
	t := &test{o: o, began: time.Now()}
	code := t.main()
	return code
}

// test is one crash-test run.
type test struct {
	o     options
	began time.Time
	dir   string
	srvs  []*server // the nodes
	pg    *pgtest.Server
	s3    *s3test.Server
	sink  *sink.Sink
	idx   *index
	snd   *sender

	mu        sync.Mutex
	kills     int
	killTimes []time.Duration // since start, for the summary
	sendEnd   time.Duration   // since start
	fatal     []string        // reasons the run itself failed (not losses)
}

func (t *test) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	t.mu.Lock()
	t.fatal = append(t.fatal, msg)
	t.mu.Unlock()
	fmt.Fprintf(os.Stderr, "crash-test: %s\n", msg)
}

func (t *test) main() int {
	ctx, stopSignals := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stopSignals()
	ctx, cancel := context.WithTimeout(ctx, t.o.timeout)
	defer cancel()

	defer t.stopPeers()
	if err := t.setup(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "crash-test: setup: %v\n", err)
		t.killAll()
		fmt.Printf("crash-test: work directory kept: %s\n", t.dir)
		fmt.Printf("crash-test: store=%s acked=0 delivered=0 lost=0 duplicates=0\n", t.o.store)
		return 1
	}
	// Last resort if something ignores ctx: the process must not outlive its limit.
	watchdog := time.AfterFunc(t.o.timeout+30*time.Second, func() {
		t.killAll()
		t.stopPeers()
		fmt.Println("crash-test: hard timeout exceeded; mailgate killed; work directory kept:", t.dir)
		fmt.Printf("crash-test: store=%s acked=0 delivered=0 lost=0 duplicates=0\n", t.o.store)
		os.Exit(3)
	})
	defer watchdog.Stop()
	defer t.sink.Close()

	sendCtx, stopSend := context.WithCancel(ctx)
	defer stopSend()
	sendDone := make(chan struct{})
	killerDone := make(chan struct{})
	go func() {
		defer close(killerDone)
		if err := t.killer(ctx, sendDone); err != nil {
			t.fail("%v", err)
			stopSend()
		}
	}()
	sendStart := time.Now()
	t.snd.run(sendCtx, t.o.conc)
	sendTime := time.Since(sendStart)
	t.mu.Lock()
	t.sendEnd = time.Since(t.began)
	t.mu.Unlock()
	close(sendDone)
	<-killerDone

	// The final crash and restart (of one node): whatever was in flight
	// there now is recovered by the instance that has to drain the queue.
	drainStart := time.Now()
	var queueLeft = -1
	var queueListing string
	if len(t.fatalCopy()) == 0 && ctx.Err() == nil {
		srv := t.srvs[rand.New(rand.NewPCG(t.o.seed, 0x66696e)).IntN(len(t.srvs))]
		if _, err := srv.kill(); err != nil {
			t.fail("final kill: %v", err)
		} else {
			t.countKill()
			if err := srv.start(ctx); err != nil {
				t.fail("final restart: %v", err)
			} else {
				queueLeft, queueListing = t.drain(ctx)
			}
		}
	}
	drainTime := time.Since(drainStart)
	timedOut := ctx.Err() != nil
	for _, srv := range t.srvs {
		srv.stop()
	}
	t.idx.refresh()
	return t.report(ctx, sendTime, drainTime, queueLeft, queueListing, timedOut)
}

// killAll kills every node still running.
func (t *test) killAll() {
	for _, srv := range t.srvs {
		srv.kill()
	}
}

// stopPeers stops PostgreSQL and the S3 server (their directories go with
// them: the work directory keeps the logs that explain a failure).
func (t *test) stopPeers() {
	t.mu.Lock()
	pg, s3 := t.pg, t.s3
	t.pg, t.s3 = nil, nil
	t.mu.Unlock()
	if pg != nil {
		pg.Stop()
	}
	if s3 != nil {
		s3.Stop()
	}
}

// cli runs an admin command against the shared store (the first node's
// configuration).
func (t *test) cli(ctx context.Context, args ...string) (string, error) {
	return t.srvs[0].cli(ctx, args...)
}

func (t *test) fatalCopy() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.fatal...)
}

func (t *test) countKill() {
	t.mu.Lock()
	t.kills++
	t.killTimes = append(t.killTimes, time.Since(t.began).Round(time.Millisecond))
	t.mu.Unlock()
}

// setup builds the work directory, sink, the store's servers (on
// postgres), the nodes' configs and the tenant, and starts the nodes.
func (t *test) setup(ctx context.Context) error {
	t.dir = t.o.workDir
	if t.dir == "" {
		d, err := os.MkdirTemp("", "mailgate-crash-")
		if err != nil {
			return err
		}
		t.dir = d
	} else if err := os.MkdirAll(t.dir, 0o755); err != nil {
		return err
	}
	s, err := startSink(filepath.Join(t.dir, "sink.log"))
	if err != nil {
		return err
	}
	t.sink = s
	const domain = "crash.test"
	t.idx = newIndex(s, domain)
	storeCfg, err := t.startStore(ctx)
	if err != nil {
		return err
	}
	var addrs []string
	for i := range t.o.nodes {
		port, err := freePort()
		if err != nil {
			return err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		// One node keeps the layout of earlier runs (mailgate.toml,
		// data/, mailgate.log in the work directory).
		name, host, sub, logName := "", "mailgate.crash.test", "", "mailgate.log"
		if t.o.nodes > 1 {
			name = fmt.Sprintf("node%d", i+1)
			host = fmt.Sprintf("mx%d.crash.test", i+1)
			sub, logName = name, "mailgate-"+name+".log"
		}
		nodeDir := filepath.Join(t.dir, sub)
		if err := os.MkdirAll(nodeDir, 0o755); err != nil {
			return err
		}
		cfgPath := filepath.Join(nodeDir, "mailgate.toml")
		// Short retry and poll so messages deferred by a crash come back
		// fast; min_free_bytes 0 so a small tmpfs does not refuse mail; no
		// inbound checks: this tests the durability of the relay, and the
		// checks would (rightly) quarantine a test sender inside the
		// tenant's own domain.
		cfg := fmt.Sprintf(`hostname = %q
data_dir = %q
log_level = "info"
`, host, filepath.Join(nodeDir, "data"))
		if name != "" {
			cfg += fmt.Sprintf("node_id = %q\n", name)
		}
		cfg += fmt.Sprintf(`[inbound]
listen = [%q]
[limits]
min_free_bytes = 0
[queue]
retry = ["1s"]
poll_interval = "200ms"
`, addr)
		if t.o.lease > 0 {
			cfg += fmt.Sprintf("lease = %q\n", t.o.lease.String())
		}
		cfg += fmt.Sprintf(`[delivery]
smart_host = "smtp://%s"
[checks]
enabled = []
`, s.Addr()) + storeCfg
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			return err
		}
		logf, err := os.OpenFile(filepath.Join(t.dir, logName), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		label := name
		if label == "" {
			label = "mailgate"
		}
		t.srvs = append(t.srvs, &server{name: label, host: host, bin: t.o.bin, cfg: cfgPath, addr: addr, log: logf, logPath: logf.Name()})
		addrs = append(addrs, addr)
	}
	rcpts := []string{"r0@" + domain, "r1@" + domain, "r2@" + domain, "r3@" + domain}
	for _, args := range [][]string{
		{"tenant", "add", "crash"},
		{"domain", "add", "crash", domain, "--route", "smtp://" + s.Addr()},
		append([]string{"user", "add"}, rcpts...),
	} {
		if _, err := t.cli(ctx, args...); err != nil {
			return err
		}
	}
	rng := rand.New(rand.NewPCG(t.o.seed, uint64(time.Now().UnixNano())))
	t.snd = &sender{addrs: addrs, rcpts: rcpts, seed: t.o.seed, n: t.o.n,
		runID: fmt.Sprintf("ct%d-%04x", t.o.seed, rng.Uint32()&0xffff)}
	for _, srv := range t.srvs {
		if err := srv.start(ctx); err != nil {
			return err
		}
	}
	return nil
}

// startStore starts PostgreSQL and versitygw for -store postgres and
// returns the [store] and [blobs] sections of the nodes' configs ("" on
// sqlite). PostgreSQL runs with fsync off: this test kills mailgate, not
// the database server.
func (t *test) startStore(ctx context.Context) (string, error) {
	if t.o.store != "postgres" {
		return "", nil
	}
	pg, err := pgtest.Launch(ctx, "")
	if err != nil {
		return "", err
	}
	t.mu.Lock()
	t.pg = pg
	t.mu.Unlock()
	if err := pg.Exec(ctx, `CREATE DATABASE mailgate TEMPLATE template0`); err != nil {
		return "", fmt.Errorf("create database: %w", err)
	}
	s3, err := s3test.Launch(ctx, "")
	if err != nil {
		return "", err
	}
	t.mu.Lock()
	t.s3 = s3
	t.mu.Unlock()
	if err := s3.CreateBucket(ctx, "crash"); err != nil {
		return "", fmt.Errorf("create bucket: %w", err)
	}
	fmt.Fprintf(os.Stderr, "crash-test: PostgreSQL in %s, S3 (versitygw) at %s\n", pg.Dir(), s3.Endpoint)
	return fmt.Sprintf(`[store]
driver = "postgres"
dsn = %q
[blobs]
driver = "s3"
endpoint = %q
bucket = "crash"
region = %q
path_style = true
access_key_id = %q
secret_access_key = %q
`, pg.DSN("mailgate"), s3.Endpoint, s3.Region, s3.AccessKey, s3.SecretKey), nil
}

// startSink starts the downstream with its server's error log (one line
// per delivery cut off by a kill) going to logPath instead of our output:
// go-smtp binds that log to os.Stderr when the server is created, so
// os.Stderr is swapped for the duration of the call. setup runs before any
// other goroutine of ours writes to stderr.
func startSink(logPath string) (*sink.Sink, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	stderr := os.Stderr
	os.Stderr = f
	s, err := sink.Start("127.0.0.1:0", "", true)
	os.Stderr = stderr
	if err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// killer SIGKILLs and restarts a node (mailgate itself when it runs alone)
// at seeded random intervals until sending is done and at least minKills
// kills happened. A killed node stays down for a random time up to -down.
func (t *test) killer(ctx context.Context, sendDone <-chan struct{}) error {
	rng := rand.New(rand.NewPCG(t.o.seed, 0x6b696c6c))
	span := int64(t.o.killMax - t.o.killMin)
	for {
		wait := t.o.killMin + time.Duration(rng.Int64N(span))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		select {
		case <-sendDone:
			t.mu.Lock()
			enough := t.kills >= t.o.minKills
			t.mu.Unlock()
			if enough {
				return nil
			}
		default:
		}
		srv := t.srvs[rng.IntN(len(t.srvs))]
		if _, err := srv.kill(); err != nil {
			return fmt.Errorf("kill %s: %w", srv.name, err)
		}
		t.countKill()
		if t.o.down > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Duration(rng.Int64N(int64(t.o.down)))):
			}
		}
		if err := srv.start(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("restart after kill: %w", err)
		}
	}
}

// drain waits until every acked token reached the sink and the queue is
// empty, or the queue is empty, or the drain time runs out. It returns the
// last queue count and listing.
func (t *test) drain(ctx context.Context) (int, string) {
	ctx, cancel := context.WithTimeout(ctx, t.o.drain)
	defer cancel()
	var allSince time.Time
	n, listing := -1, ""
	for {
		t.idx.refresh()
		missing := 0
		for _, a := range t.snd.attempts {
			if a.result == acked && t.idx.get(a.token).count == 0 {
				missing++
			}
		}
		var err error
		n, listing, err = t.srvs[0].queueCount(ctx)
		if err != nil && ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "crash-test: %v\n", err)
		}
		if err == nil && n == 0 {
			return n, listing
		}
		if missing == 0 {
			// Every acked token is in; give unacked leftovers a little
			// longer to leave the queue, then stop.
			if allSince.IsZero() {
				allSince = time.Now()
			} else if time.Since(allSince) > 15*time.Second {
				return n, listing
			}
		}
		select {
		case <-ctx.Done():
			return n, listing
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// report prints the summary and returns the exit status.
func (t *test) report(ctx context.Context, sendTime, drainTime time.Duration, queueLeft int, queueListing string, timedOut bool) int {
	o := t.o
	var nAcked, nTemp, nPerm, nConn, nUnsent int
	replies := map[string]int{}
	var lost []attempt
	var idMismatch []string
	delivered, unackedDelivered := 0, 0
	for _, a := range t.snd.attempts {
		d := t.idx.get(a.token)
		switch a.result {
		case acked:
			nAcked++
			if d.count > 0 {
				delivered++
				for _, q := range d.queueIDs {
					if q != a.queueID {
						idMismatch = append(idMismatch, fmt.Sprintf("%s acked as %s, delivered as %s", a.token, a.queueID, q))
						break
					}
				}
			} else {
				lost = append(lost, a)
			}
			continue
		case tempFailed:
			nTemp++
		case permFailed:
			nPerm++
		case connFailed:
			nConn++
		case notAttempted:
			nUnsent++
			continue
		}
		replies[shorten(a.reply)]++
		if d.count > 0 {
			unackedDelivered++
		}
	}
	byTok, strays := t.idx.snapshot()
	t.mu.Lock()
	kills, killTimes, fatal, sendEnd := t.kills, t.killTimes, append([]string(nil), t.fatal...), t.sendEnd
	t.mu.Unlock()
	duplicates, maxCopies, unexplained := 0, 0, 0
	var dupToks, multiID []string
	for tok, d := range byTok {
		if d.count > 1 {
			duplicates += d.count - 1
			// A legitimate repeat follows a crash: some kill must fall
			// between consecutive copies.
			var at []string
			why := ""
			for i, tm := range d.times {
				at = append(at, tm.Sub(t.began).Round(time.Millisecond).String())
				if i > 0 && !killBetween(killTimes, d.times[i-1].Sub(t.began), tm.Sub(t.began)) {
					why = " SUSPICIOUS: no kill between copies"
				}
			}
			if why != "" {
				unexplained++
			}
			dupToks = append(dupToks, fmt.Sprintf("%s x%d ids %v at %v%s", tok, d.count, d.queueIDs, at, why))
		}
		maxCopies = max(maxCopies, d.count)
		for _, q := range d.queueIDs[1:] {
			if q != d.queueIDs[0] {
				multiID = append(multiID, fmt.Sprintf("%s %v", tok, d.queueIDs))
				break
			}
		}
	}
	sort.Strings(dupToks)
	sort.Strings(multiID)

	var lr logReport
	var logPaths []string
	for _, srv := range t.srvs {
		logPaths = append(logPaths, srv.logPath)
		if f, err := os.Open(srv.logPath); err == nil {
			r, err := scanLog(f)
			f.Close()
			if err != nil {
				fmt.Fprintf(os.Stderr, "crash-test: %v\n", err)
			}
			lr.add(r)
		}
	}

	// Per node: messages acknowledged, kills and runs, and how many
	// acknowledged messages a node other than the accepting one delivered
	// (a copy or the only one: work taken over when the accepting node's
	// leases expired).
	ackedBy := map[int]int{}
	takenOver := 0
	for _, a := range t.snd.attempts {
		if a.result != acked {
			continue
		}
		ackedBy[a.node]++
		for _, h := range t.idx.get(a.token).helos {
			if h != t.srvs[a.node].host {
				takenOver++
				break
			}
		}
	}

	p := func(format string, args ...any) { fmt.Printf("crash-test: "+format+"\n", args...) }
	p("settings: store=%s nodes=%d n=%d sessions=%d seed=%d min-kills=%d kill-interval=%v..%v down=0..%v lease=%v drain=%v timeout=%v",
		o.store, o.nodes, o.n, o.conc, o.seed, o.minKills, o.killMin, o.killMax, o.down, o.lease, o.drain, o.timeout)
	var logNames []string
	for _, l := range logPaths {
		logNames = append(logNames, filepath.Base(l))
	}
	p("work directory: %s (logs: %s)", t.dir, strings.Join(logNames, ", "))
	during := 0
	for _, k := range killTimes {
		if k <= sendEnd {
			during++
		}
	}
	runs := 0
	for _, srv := range t.srvs {
		runs += srv.runCount()
	}
	p("kills: %d (SIGKILL; %d while sending, %d after), mailgate runs: %d, kill times since start: %v",
		kills, during, kills-during, runs, killTimes)
	if len(t.srvs) > 1 {
		for i, srv := range t.srvs {
			p("  %s (%s, %s): runs=%d acked=%d", srv.name, srv.host, srv.addr, srv.runCount(), ackedBy[i])
		}
		p("acked messages delivered (at least once) by a node other than the one that accepted them: %d", takenOver)
	}
	lo, avg, hi := startStats(t.srvs)
	p("start-up to accepting connections: min %v avg %v max %v", lo, avg, hi)
	p("sending: %v; acked=%d temp-failed=%d perm-failed=%d connection-broken=%d not-attempted=%d; connects=%d refused=%d",
		sendTime.Round(time.Millisecond), nAcked, nTemp, nPerm, nConn, nUnsent, t.snd.dials.Load(), t.snd.dialErrs.Load())
	for _, r := range topN(replies, 6) {
		p("  unacked reply: %s", r)
	}
	p("drain after final restart: %v; queue left: %d message(s)", drainTime.Round(time.Millisecond), queueLeft)
	p("downstream: %d messages; %d distinct tokens; acked delivered=%d; unacked-but-delivered=%d (fine); other messages (no token, e.g. DSNs)=%d",
		t.sink.Count(), len(byTok), delivered, unackedDelivered, strays)
	p("downstream sessions cut off mid-transaction (sink.log): %d", len(grepFile(filepath.Join(t.dir, "sink.log"), "error handling")))
	p("duplicates: %d extra deliveries over %d tokens; most copies of one token: %d; without a kill between copies: %d",
		duplicates, len(dupToks), maxCopies, unexplained)
	for _, d := range head(dupToks, 10) {
		p("  duplicate: %s", d)
	}
	for _, d := range head(multiID, 10) {
		p("  SUSPICIOUS one token delivered under several queue IDs: %s", d)
	}
	for _, d := range head(idMismatch, 10) {
		p("  SUSPICIOUS queue ID differs from the 250 reply: %s", d)
	}
	p("mailgate log: %d ERROR lines; start-up recoveries=%d discarded_unacknowledged=%d missing=%d damaged=%d leases released=%d",
		lr.errorLines, lr.recoveries, lr.discarded, lr.missing, lr.damaged, lr.released)
	for _, e := range head(lr.topErrors(), 8) {
		p("  log error: %s", e)
	}
	if lr.blobTrouble() {
		p("damaged/missing blob errors in log: YES (%d lines)", len(lr.blobLines))
		for _, l := range head(lr.blobLines, 10) {
			p("  %s", l)
		}
	} else {
		p("damaged/missing blob errors in log: none")
	}
	for _, l := range head(lr.panics, 5) {
		p("  PANIC in log: %s", l)
	}
	for _, srv := range t.srvs {
		for _, u := range srv.unexpectedExits() {
			p("  UNEXPECTED EXIT: %s %s", srv.name, u)
		}
	}
	if queueLeft > 0 {
		for _, l := range head(strings.Split(strings.TrimSpace(queueListing), "\n"), 12) {
			p("  queue: %s", l)
		}
	}
	label := "LOST"
	if len(fatal) > 0 || timedOut {
		label = "NOT DELIVERED (run cut short, queue not drained)"
	}
	for i, a := range head(lost, 50) {
		p("%s: token %s rcpt %s acked %q", label, a.token, a.rcpt, a.reply)
		if a.queueID == "" || i >= 5 {
			continue // full evidence for the first few only
		}
		// Evidence: the tracking log and the server's log lines for this ID.
		if out, err := t.cli(context.Background(), "track", a.queueID); err == nil || out != "" {
			for _, l := range head(strings.Split(strings.TrimSpace(out), "\n"), 15) {
				p("  track: %s", l)
			}
		}
		for _, lp := range logPaths {
			for _, l := range head(grepFile(lp, a.queueID), 10) {
				p("  log %s: %s", filepath.Base(lp), l)
			}
		}
	}
	for _, f := range fatal {
		p("RUN FAILED: %s", f)
	}
	if timedOut {
		p("RUN FAILED: time limit or interrupt before the queue drained")
	}
	p("wall time: %v", time.Since(t.began).Round(time.Millisecond))

	bad := len(lost) > 0 || nAcked == 0 || len(fatal) > 0 || timedOut
	if bad || o.keep {
		p("work directory kept: %s", t.dir)
	} else {
		os.RemoveAll(t.dir)
	}
	fmt.Printf("crash-test: store=%s acked=%d delivered=%d lost=%d duplicates=%d\n", o.store, nAcked, delivered, len(lost), duplicates)
	if bad {
		return 1
	}
	return 0
}

// killBetween reports whether a kill happened in (from, to], with a little
// slack because the sink stamps a copy when its DATA ends, slightly before
// the kill that cut off mailgate's bookkeeping of it can be recorded here.
func killBetween(kills []time.Duration, from, to time.Duration) bool {
	const slack = 50 * time.Millisecond
	for _, k := range kills {
		if k > from-slack && k <= to+slack {
			return true
		}
	}
	return false
}

var portRE = regexp.MustCompile(`(127\.0\.0\.1):\d+`)

// shorten makes a reply one bounded line, without port numbers so that the
// same failure on different connections counts once.
func shorten(s string) string {
	s = portRE.ReplaceAllString(strings.ReplaceAll(s, "\n", " "), "$1:*")
	if len(s) > 90 {
		s = s[:90] + "..."
	}
	return s
}

func topN(m map[string]int, n int) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool { return m[ks[i]] > m[ks[j]] || m[ks[i]] == m[ks[j]] && ks[i] < ks[j] })
	var out []string
	for _, k := range head(ks, n) {
		out = append(out, fmt.Sprintf("%dx %s", m[k], k))
	}
	return out
}

func head[T any](xs []T, n int) []T {
	if len(xs) > n {
		return xs[:n]
	}
	return xs
}

func grepFile(path, s string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}
