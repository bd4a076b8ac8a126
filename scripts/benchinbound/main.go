// Command benchinbound measures mailgate's inbound relay throughput with the
// whole inbound pipeline on (allow/deny lists, SPF/DKIM/DMARC, ClamAV,
// impersonation) against relay-only, on the same message mix, and the
// latency from the final "." of DATA to the 250 reply.
//
// It starts everything it needs on 127.0.0.1: an authoritative DNS server
// in process (zones of about twenty sender domains: SPF, DKIM keys generated
// at start, DMARC p=none/quarantine/reject), a clamd with a database holding
// only the EICAR signatures, and the downstream sink (package sink). For
// each run it makes a fresh data directory, adds a tenant with six users
// (four with display names), imports 10,000 list entries with
// "mailgate list import", starts "mailgate serve", sends a warm-up and then
// the measured messages over concurrent sessions, and waits until the sink
// has every copy that should be delivered.
//
// Throughput is the number of 250 replies divided by the time from the
// first connection to the last 250; delivery to the sink goes on after
// that and is reported separately. Replies and delivered copies are checked
// against what each kind of message should get; a mismatch is printed and
// makes the exit status 1. The last line of output is exactly
//
//	inbound msgs/s: mailgate=A relay-only=B ratio=R p99-accept-ms=C
//
// Run it through scripts/bench-inbound, which builds mailgate.
package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/mailgate/mailgate/internal/sink"
	"github.com/mailgate/mailgate/internal/testutil/clamdtest"
)

type options struct {
	bin        string
	n          int
	sessions   int
	warmup     int
	perConn    int
	seed       uint64
	entries    int
	timeout    time.Duration
	drain      time.Duration
	dir        string
	keep       bool
	logLevel   string
	runs       string
	profDir    string
	clamdTmpfs bool
}

func main() { os.Exit(run()) }

func run() int {
	var o options
	flag.StringVar(&o.bin, "mailgate", "", "mailgate binary (required)")
	flag.IntVar(&o.n, "n", 2000, "measured messages per run")
	flag.IntVar(&o.sessions, "sessions", 16, "concurrent SMTP sessions")
	flag.IntVar(&o.warmup, "warmup", 100, "warm-up messages per run (not measured)")
	flag.IntVar(&o.perConn, "per-conn", 20, "messages per SMTP connection before it is closed and reopened")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the message mix and the list entries")
	flag.IntVar(&o.entries, "entries", 10000, "list entries imported for the tenant")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "hard limit for the whole benchmark")
	flag.DurationVar(&o.drain, "drain", 2*time.Minute, "how long to wait for the sink after the last reply")
	flag.StringVar(&o.dir, "dir", "", "work directory (default: a new temporary directory)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (configs, logs, data)")
	flag.StringVar(&o.logLevel, "log-level", "info", "mailgate log_level")
	flag.StringVar(&o.runs, "runs", "pipeline,relay-only", "runs to do, comma-separated")
	flag.BoolVar(&o.clamdTmpfs, "clamd-tmpfs", true, "give clamd a temporary directory on tmpfs ("+shmDir+") when there is one")
	flag.StringVar(&o.profDir, "cpuprofile", "", "write mailgate's CPU profile of each measured window to DIR/RUN.pprof (taken through [debug] pprof_listen)")
	flag.Parse()
	if o.bin == "" || o.n <= 0 || o.sessions <= 0 || o.warmup < 0 || o.perConn <= 0 || o.entries < 20 {
		fmt.Fprintln(os.Stderr, "bench-inbound: need -mailgate BIN, -n > 0, -sessions > 0, -warmup >= 0, -per-conn > 0, -entries >= 20")
		return 2
	}
	b := &bench{o: o}
	return b.main()
}

// bench is one benchmark: shared DNS, clamd and message mix, and the runs.
type bench struct {
	o        options
	dir      string
	dns      *fakeDNS
	clamd    *clamdtest.Clamd
	clamdTmp string // clamd's temporary directory on tmpfs, removed at the end
	ds       []*senderDomain
	people   []person
	warm     []*message
	msgs     []*message
	csv      []byte
	hz       float64
	results  []*runResult
}

// runResult is what one run measured.
type runResult struct {
	name     string
	pipeline bool
	msgs     []*message
	replies  []reply

	importTime           time.Duration
	start, lastOK        time.Time
	sinkAt               time.Time
	sinkComplete         bool
	accepted, temp, perm int
	other                int
	rate                 float64
	p50, p99, maxLat     float64 // ms, over 250 replies
	peakRSS              int64   // kB
	cpuMs, clamdCPUMs    float64 // per measured message
	selfCPUMs            float64 // this program (client, sink, DNS) per message
	dnsQueries           int64   // warm-up and measured messages (mailgate caches answers)
	classes              [numClasses]classStats
	problems             []string
	spamTagged           int // delivered copies the spam check marked X-Mailgate-Spam: yes
	foreign, duplicates  int
	logSummary           []string
	queueList            string
	failed               error
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[bench-inbound %s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (b *bench) main() int {
	began := time.Now()
	ctx, stopSignals := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stopSignals()
	ctx, cancel := context.WithTimeout(ctx, b.o.timeout)
	defer cancel()
	// Last resort when something ignores ctx: children die with us
	// (Pdeathsig), the directory is kept for inspection.
	watchdog := time.AfterFunc(b.o.timeout+45*time.Second, func() {
		fmt.Fprintf(os.Stderr, "bench-inbound: hard timeout exceeded; work directory kept: %s\n", b.dir)
		fmt.Println("inbound msgs/s: mailgate=0.0 relay-only=0.0 ratio=0.00 p99-accept-ms=0.0")
		os.Exit(3)
	})
	defer watchdog.Stop()

	code := 0
	if err := b.setup(ctx); err != nil {
		logf("setup failed: %v", err)
		code = 1
	} else {
		for i, name := range strings.Split(b.o.runs, ",") {
			name = strings.TrimSpace(name)
			var checks []string
			switch name {
			case "pipeline":
				// mailgate's default checks (config.Default), all of them.
				checks = []string{"lists", "structure", "auth", "av", "bec", "spam"}
			case "relay-only":
				checks = []string{}
			case "only-lists", "only-structure", "only-auth", "only-av", "only-bec", "only-spam":
				// Diagnosis: one check alone, to see what it costs.
				checks = []string{strings.TrimPrefix(name, "only-")}
			default:
				logf("unknown run %q", name)
				code = 2
				continue
			}
			r := b.runOne(ctx, name, fmt.Sprintf("%d-%s", i+1, name), checks)
			b.results = append(b.results, r)
			if r.failed != nil {
				logf("%s: %v", name, r.failed)
				code = 1
			}
			if len(r.problems) > 0 {
				code = 1
			}
		}
	}
	if b.clamd != nil {
		b.clamd.Stop()
	}
	if b.clamdTmp != "" {
		os.RemoveAll(b.clamdTmp)
	}
	if b.dns != nil {
		if err := b.dns.Close(); err != nil {
			logf("fake DNS: %v", err)
		}
	}
	b.report(time.Since(began))
	if ctx.Err() != nil {
		code = 1
	}
	if b.o.keep || code != 0 {
		logf("work directory kept: %s", b.dir)
	} else if b.o.dir == "" {
		os.RemoveAll(b.dir)
	}
	b.lastLine()
	return code
}

func (b *bench) setup(ctx context.Context) error {
	b.dir = b.o.dir
	if b.dir == "" {
		d, err := os.MkdirTemp("", "bench-inbound-")
		if err != nil {
			return err
		}
		b.dir = d
	} else if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return err
	}
	b.hz = clockTicks()
	t0 := time.Now()
	ds, err := newDomains()
	if err != nil {
		return err
	}
	b.ds = ds
	b.people = tenantPeople()
	b.dns, err = newFakeDNS(dnsRecords(ds))
	if err != nil {
		return err
	}
	logf("fake DNS on %s (%d sender domains)", b.dns.Addr(), len(ds))
	// Only the EICAR signatures, so the scanning cost measured is clamd's
	// protocol, MIME and archive handling, not the matching of a full
	// database; clamd's own thread pool, as a packaged daemon has.
	opts := []clamdtest.Option{clamdtest.WithMaxThreads(0)}
	tmp := ""
	if b.o.clamdTmpfs {
		if tmp, err = clamdScratch(); err != nil {
			return err
		}
	}
	if tmp != "" {
		b.clamdTmp = tmp
		opts = append(opts, clamdtest.WithTemporaryDirectory(tmp))
	}
	b.clamd, err = clamdtest.Launch(ctx, filepath.Join(b.dir, "clamd"), opts...)
	if err != nil {
		return err
	}
	logf("clamd running (pid %d), temporary files in %s", b.clamd.Pid(), cmp.Or(tmp, "the scratch directory (no tmpfs at "+shmDir+")"))
	mx := &mixer{ds: ds, people: b.people, seed: b.o.seed, base: time.Date(2025, 6, 2, 9, 0, 0, 0, time.FixedZone("JST", 9*3600))}
	all, err := mx.generate(b.o.warmup + b.o.n)
	if err != nil {
		return err
	}
	var total int
	for _, m := range all {
		if err := validLines(m.data); err != nil {
			return fmt.Errorf("generated message %s (%s) is malformed: %w", m.id, m.cls, err)
		}
		total += len(m.data)
	}
	b.warm, b.msgs = all[:b.o.warmup], all[b.o.warmup:]
	b.csv, err = listCSV(b.o.seed, b.people, b.o.entries)
	if err != nil {
		return err
	}
	logf("generated %d messages (%.1f MB, mean %.1f KB) and %d list entries in %.1fs", len(all), float64(total)/(1<<20),
		float64(total)/float64(len(all))/1024, b.o.entries, time.Since(t0).Seconds())
	return nil
}

// runOne does one run against a fresh data directory.
func (b *bench) runOne(ctx context.Context, name, dirName string, checks []string) *runResult {
	r := &runResult{name: name, pipeline: len(checks) > 0, msgs: b.msgs}
	sk, err := sink.Start("127.0.0.1:0", "", true)
	if err != nil {
		r.failed = err
		return r
	}
	defer sk.Close()
	ic := instanceConfig{checks: checks, clamd: b.clamd.Socket(),
		resolver: b.dns.Addr(), sink: sk.Addr(), logLevel: b.o.logLevel, maxPerIP: max(50, 2*b.o.sessions)}
	if b.o.profDir != "" {
		abs, err := filepath.Abs(filepath.Join(b.o.profDir, name+".pprof"))
		if err != nil {
			r.failed = err
			return r
		}
		ic.cpuProfile = abs
	}
	in, err := newInstance(b.o.bin, filepath.Join(b.dir, dirName), ic)
	if err != nil {
		r.failed = err
		return r
	}
	if err := b.provision(ctx, in, r); err != nil {
		r.failed = err
		return r
	}
	if err := in.start(ctx); err != nil {
		r.failed = err
		return r
	}
	defer func() {
		in.stop()
		r.logSummary = in.logSummary()
	}()
	logf("%s: mailgate pid %d on %s, checks %v", name, in.pid(), in.addr, checks)
	dns0 := b.dns.queries()
	tr := newTracker(sk)
	snd := &sender{addr: in.addr, sessions: b.o.sessions, perConn: b.o.perConn}

	if len(b.warm) > 0 {
		logf("%s: warm-up, %d messages", name, len(b.warm))
		reps, _ := snd.run(ctx, b.warm)
		wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
		_, ok := tr.wait(wctx, expected(b.warm, reps, r.pipeline))
		wcancel()
		if !ok {
			logf("%s: warm-up copies still missing at the sink after 60s", name)
		}
	}

	cpu0, err := cpuTicks(in.pid())
	if err != nil {
		r.failed = err
		return r
	}
	clamd0, _ := cpuTicks(b.clamd.Pid())
	self0, _ := cpuTicks(os.Getpid())
	if err := in.profile(true, b.o.timeout); err != nil {
		r.failed = err
		return r
	}
	logf("%s: measuring, %d messages over %d sessions", name, len(b.msgs), b.o.sessions)
	r.replies, r.start = snd.run(ctx, b.msgs)
	var lats []float64
	for _, rp := range r.replies {
		switch rp.class() {
		case "2xx":
			r.accepted++
			lats = append(lats, float64(rp.latency)/float64(time.Millisecond))
			if rp.at.After(r.lastOK) {
				r.lastOK = rp.at
			}
		case "4xx":
			r.temp++
		case "5xx":
			r.perm++
		default:
			r.other++
		}
	}
	if r.accepted > 0 {
		r.rate = float64(r.accepted) / r.lastOK.Sub(r.start).Seconds()
	}
	sort.Float64s(lats)
	r.p50, r.p99 = percentile(lats, 0.50), percentile(lats, 0.99)
	if len(lats) > 0 {
		r.maxLat = lats[len(lats)-1]
	}
	logf("%s: %d accepted in %.2fs = %.1f msgs/s; waiting for the sink", name, r.accepted, r.lastOK.Sub(r.start).Seconds(), r.rate)

	dctx, dcancel := context.WithTimeout(ctx, b.o.drain)
	r.sinkAt, r.sinkComplete = tr.wait(dctx, expected(b.msgs, r.replies, r.pipeline))
	dcancel()
	if !r.sinkComplete {
		logf("%s: %d expected copies still missing at the sink after %v", name, tr.missing(expected(b.msgs, r.replies, r.pipeline)), b.o.drain)
	}
	// Late, unexpected copies (a discarded message delivered after all)
	// would arrive within a queue poll or two.
	time.Sleep(time.Second)
	tr.refresh()
	if err := in.profile(false, 0); err != nil {
		logf("%s: %v", name, err)
	} else if in.profPath != "" {
		logf("%s: CPU profile in %s", name, in.profPath)
	}
	cpu1, err := cpuTicks(in.pid())
	if err == nil {
		r.cpuMs = float64(cpu1-cpu0) * 1000 / b.hz / float64(len(b.msgs))
	}
	if clamd1, err := cpuTicks(b.clamd.Pid()); err == nil {
		r.clamdCPUMs = float64(clamd1-clamd0) * 1000 / b.hz / float64(len(b.msgs))
	}
	if self1, err := cpuTicks(os.Getpid()); err == nil {
		r.selfCPUMs = float64(self1-self0) * 1000 / b.hz / float64(len(b.msgs))
	}
	r.dnsQueries = b.dns.queries() - dns0
	r.peakRSS, _ = procStatus(in.pid(), "VmHWM")
	if !in.alive() {
		r.failed = errors.New("mailgate exited during the run:\n" + in.logTail(20))
	}
	if out, err := in.admin(ctx, nil, "queue", "list"); err == nil {
		r.queueList = strings.TrimSpace(out)
	}
	analyse(r, tr, r.pipeline, b.ds, in.dir)
	return r
}

// provision adds the tenant, users, display names and list entries.
func (b *bench) provision(ctx context.Context, in *instance, r *runResult) error {
	steps := [][]string{
		{"tenant", "add", "bench"},
		{"domain", "add", "bench", tenantDomain, "--route", "smtp://" + in.sink},
	}
	users := []string{"user", "add"}
	for _, p := range b.people {
		users = append(users, p.addr)
	}
	steps = append(steps, users)
	for _, p := range b.people {
		if p.name != "" {
			steps = append(steps, []string{"user", "name", p.addr, p.name})
		}
	}
	for _, s := range steps {
		if _, err := in.admin(ctx, nil, s...); err != nil {
			return err
		}
	}
	t0 := time.Now()
	out, err := in.admin(ctx, bytes.NewReader(b.csv), "list", "import", "bench")
	if err != nil {
		return err
	}
	r.importTime = time.Since(t0)
	logf("%s: %s in %.1fs", r.name, strings.TrimSpace(out), r.importTime.Seconds())
	return nil
}

// expected lists the copies the sink should get for msgs given their replies.
func expected(msgs []*message, replies []reply, pipeline bool) want {
	w := want{}
	for i, m := range msgs {
		if replies[i].class() == "2xx" && expect(m.cls, pipeline).delivered {
			w[m.id] = m.rcpts
		}
	}
	return w
}

// percentile is the nearest-rank percentile of sorted xs.
func percentile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(xs)))) - 1
	return xs[min(max(i, 0), len(xs)-1)]
}

func (b *bench) result(name string) *runResult {
	for _, r := range b.results {
		if r.name == name {
			return r
		}
	}
	return nil
}

func (b *bench) report(wall time.Duration) {
	var mean float64
	for _, m := range b.msgs {
		mean += float64(len(m.data))
	}
	if len(b.msgs) > 0 {
		mean /= float64(len(b.msgs)) * 1024
	}
	fmt.Println()
	fmt.Printf("inbound benchmark: %d messages (5-50 KB, mean %.1f KB), %d sessions (%d messages per connection), warm-up %d, seed %d, %d list entries\n",
		b.o.n, mean, b.o.sessions, b.o.perConn, b.o.warmup, b.o.seed, b.o.entries)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\tmsgs/s\tsend s\tp50 ms\tp99 ms\tmax ms\t250\t4xx\t5xx\terror\tsink s\tpeak RSS\tCPU ms/msg\tclamd ms/msg\tdriver ms/msg\tDNS queries\t")
	for _, r := range b.results {
		sinkS := "incomplete"
		if r.sinkComplete {
			sinkS = fmt.Sprintf("%.2f", r.sinkAt.Sub(r.start).Seconds())
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%.2f\t%.1f\t%.1f\t%.1f\t%d\t%d\t%d\t%d\t%s\t%.1f MB\t%.2f\t%.2f\t%.2f\t%d\t\n",
			r.name, r.rate, r.lastOK.Sub(r.start).Seconds(), r.p50, r.p99, r.maxLat, r.accepted, r.temp, r.perm, r.other,
			sinkS, float64(r.peakRSS)/1024, r.cpuMs, r.clamdCPUMs, r.selfCPUMs, r.dnsQueries)
	}
	tw.Flush()
	fmt.Println("msgs/s: 250 replies / seconds from the first connection to the last 250; sink s: until the sink had every expected copy;")
	fmt.Println("p50/p99/max: final \".\" to the 250 reply; CPU ms/msg: mailgate's user+system time from the first measured message until")
	fmt.Println("the sink was complete, per message (clamd and driver: the same for clamd and for this program's client, sink and DNS);")
	fmt.Println("peak RSS: mailgate's VmHWM; DNS queries: answered by the fake DNS during warm-up and measurement (mailgate caches);")
	fmt.Println("clamd has only the EICAR signatures (a full database costs it more).")

	for _, r := range b.results {
		fmt.Printf("\n%s: replies and copies by kind of message (list import took %.1fs)\n", r.name, r.importTime.Seconds())
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "kind\tsent\t250\t4xx\t5xx\terror\texpected\twrong reply\tcopies\tbad copies\tmissing\tunexpected\t")
		for c := range numClasses {
			st := r.classes[c]
			if st.sent == 0 {
				continue
			}
			ex := expect(c, r.pipeline)
			exs := ex.reply
			if ex.reply == "2xx" && !ex.delivered {
				exs += ", dropped"
			} else if ex.reply == "2xx" {
				exs += ", delivered"
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t\n", c, st.sent, st.ok, st.temp, st.perm, st.other, exs,
				st.wrongReply, st.copies, st.badCopies, st.missing, st.unexpected)
		}
		tw.Flush()
		if r.failed != nil {
			fmt.Printf("  RUN FAILED: %v\n", r.failed)
		}
		if r.foreign > 0 || r.duplicates > 0 {
			fmt.Printf("  sink: %d messages without %s, %d duplicate copies\n", r.foreign, benchHeader, r.duplicates)
		}
		if r.spamTagged > 0 {
			// Not a verdict on accuracy: the mix's English text is business
			// words in random order, which a model trained on real mail takes
			// for word-salad spam; tagged copies are rewritten, which is work
			// the run pays for.
			fmt.Printf("  copies tagged as spam: %d (the mix's English bodies are random business words)\n", r.spamTagged)
		}
		if len(r.problems) > 0 {
			fmt.Printf("  problems (%d shown):\n", len(r.problems))
			for _, p := range r.problems {
				fmt.Printf("    %s\n", clip(p, 400))
			}
		}
		if r.queueList != "" && !strings.HasSuffix(r.queueList, "\n0 messages") {
			lines := strings.Split(r.queueList, "\n")
			fmt.Printf("  queue after the run: %d lines, last: %s\n", len(lines), clip(lines[len(lines)-1], 200))
		}
		if len(r.logSummary) > 0 {
			fmt.Printf("  mailgate log (level msg: count), top %d of %d kinds:\n", min(8, len(r.logSummary)), len(r.logSummary))
			for _, l := range r.logSummary[:min(8, len(r.logSummary))] {
				fmt.Printf("  %s\n", l)
			}
		}
	}
	if b.dns != nil {
		if u := b.dns.unknownNames(); len(u) > 0 {
			fmt.Printf("\nDNS questions outside the fake zones (%d names): %s\n", len(u), strings.Join(u[:min(10, len(u))], ", "))
		}
	}
	var l1, l5 float64
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Sscanf(string(la), "%f %f", &l1, &l5)
	}
	fmt.Printf("\nwall time %.1fs; load average %.2f %.2f (other work on the machine skews the figures)\n\n", wall.Seconds(), l1, l5)
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func (b *bench) lastLine() {
	var a, c, p99 float64
	if r := b.result("pipeline"); r != nil {
		a, p99 = r.rate, r.p99
	}
	if r := b.result("relay-only"); r != nil {
		c = r.rate
	}
	ratio := 0.0
	if c > 0 {
		ratio = a / c
	}
	fmt.Printf("inbound msgs/s: mailgate=%.1f relay-only=%.1f ratio=%.2f p99-accept-ms=%.1f\n", a, c, ratio, p99)
}
