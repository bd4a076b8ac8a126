// Command bencharchive measures the audit archive: it accepts generated
// messages the way the SMTP paths do (spool blob, then one accept
// transaction that queues them for archiving), times the archiver taking
// them in (bodies deduplicated into the archive's blob store, the signed
// log, the search index), then times a fixed set of searches and prints
//
//	archive ingest msgs/s=X search p50-ms=Y p95-ms=Z over N messages (index=I)
//
// as its last line, after the index size per message and a projection to
// 10 M messages.
package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/text/encoding/japanese"

	"github.com/mailgate/mailgate/internal/archive"
	"github.com/mailgate/mailgate/internal/archive/bleveindex"
	"github.com/mailgate/mailgate/internal/archive/pgindex"
	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/blob/local"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/store/postgres"
	"github.com/mailgate/mailgate/internal/store/sqlite"
	"github.com/mailgate/mailgate/internal/testutil/pgtest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bencharchive:", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("dir", "", "scratch directory (store, spool, archive blobs, index)")
	n := flag.Int("messages", 1000000, "messages to ingest")
	index := flag.String("index", "bleve", "bleve (embedded, SQLite store) or postgres (PostgreSQL store and index)")
	dsn := flag.String("dsn", "", "with -index postgres: the database")
	launch := flag.Bool("launch-pg", false, "with -index postgres: start a scratch PostgreSQL server (fsync off) instead of -dsn")
	seed := flag.Uint64("seed", 1, "data seed")
	workers := flag.Int("workers", 2, "archiver workers ([archive] workers)")
	chunk := flag.Int("chunk", 5000, "messages accepted before each archiver run (bounds the spool)")
	sessions := flag.Int("sessions", 8, "messages accepted at once, as by that many SMTP sessions")
	verbose := flag.Bool("v", false, "print every search with its time and hits")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the ingest to this file")
	searchAfter := flag.String("search-after", "", "before the searches, wait until this file exists (to time them on a machine that has become quiet, after an ingest that shared it)")
	searchOnly := flag.Bool("search-only", false, "search the archive a previous run left in -dir (same -messages and -seed) without ingesting")
	flag.Parse()
	if *dir == "" {
		return errors.New("-dir is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("BENCH_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}

	var st store.Store
	var idx archive.Index
	serverPid := 0 // the PostgreSQL server this program started
	idxDir := filepath.Join(*dir, "archive-index")
	switch *index {
	case "bleve":
		db, err := sqlite.Open(ctx, filepath.Join(*dir, "store.db"), log)
		if err != nil {
			return err
		}
		defer db.Close()
		st = db
		b, err := bleveindex.Open(idxDir)
		if err != nil {
			return err
		}
		defer b.Close()
		idx = b
	case "postgres":
		if *launch {
			srv, err := pgtest.Launch(ctx, "")
			if errors.Is(err, pgtest.ErrNotInstalled) {
				fmt.Println("archive ingest: PostgreSQL is not installed, skipped (index=postgres)")
				return nil
			}
			if err != nil {
				return err
			}
			defer srv.Stop()
			*dsn = srv.DSN("postgres")
			serverPid = srv.Pid()
		}
		db, err := postgres.Open(ctx, postgres.Config{DSN: *dsn}, log)
		if err != nil {
			return err
		}
		defer db.Close()
		st = db
		idx = pgindex.New(db.Pool())
	default:
		return fmt.Errorf("-index %q: bleve or postgres", *index)
	}
	spool, err := local.Open(filepath.Join(*dir, "spool"), "n1", 0, log)
	if err != nil {
		return err
	}
	blobs, err := local.Open(filepath.Join(*dir, "archive"), "n1", 0, log)
	if err != nil {
		return err
	}
	key, err := archive.LoadKey(ctx, st)
	if err != nil {
		return err
	}
	svc := &archive.Service{Store: st, Blobs: blobs, Spool: archive.Guard{Store: spool, Pending: st}, Index: idx, Key: key, Log: log, Node: "n1"}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	g := newGen(*seed, *n)
	if *searchOnly {
		ts, err := st.ArchiveTenants(ctx)
		if err != nil || len(ts) == 0 {
			return fmt.Errorf("no archive in %s: %v", *dir, err)
		}
		lat, cpu, err := searches(ctx, svc, ts[len(ts)-1].TenantID, g, *verbose)
		if err != nil {
			return err
		}
		fmt.Printf("search CPU p50-ms=%.1f p95-ms=%.1f\n", pct(cpu, 0.50), pct(cpu, 0.95))
		fmt.Printf("search p50-ms=%.1f p95-ms=%.1f over %d messages (index=%s)\n", pct(lat, 0.50), pct(lat, 0.95), *n, *index)
		return nil
	}
	tn, err := st.CreateTenant(ctx, fmt.Sprintf("bench%d", time.Now().UnixNano()))
	if err != nil {
		return err
	}
	if err := st.SetArchiveSettings(ctx, store.ArchiveSettings{TenantID: tn.ID, Enabled: true, CapacityBytes: 1 << 50}); err != nil {
		return err
	}

	var archiveTime, acceptTime, archiveCPU, acceptServer, archiveServer time.Duration
	var logical atomic.Int64
	done := 0
	report := time.Now()
	for done < *n {
		m := min(*chunk, *n-done)
		t0, s0 := time.Now(), treeCPU(serverPid)
		// The messages of a chunk are accepted by concurrent sessions,
		// as the SMTP server does: one transaction each.
		var next atomic.Int64
		errs := make(chan error, *sessions)
		for w := 0; w < max(1, *sessions); w++ {
			go func() {
				for {
					k := int(next.Add(1)) - 1
					if k >= m {
						errs <- nil
						return
					}
					i := done + k
					raw, when, dir := g.message(i)
					logical.Add(int64(len(raw)))
					id := store.NewMessageID(when)
					key, size, err := blob.Put(ctx, spool, id, strings.NewReader(raw))
					if err != nil {
						errs <- err
						return
					}
					msg := store.Message{ID: id, TenantID: tn.ID, Direction: dir, MailFrom: g.sender(i), BlobKey: key, Size: size,
						ReceivedAt: when, ClientIP: "192.0.2.7", Helo: "mx.example.net"}
					rs := []store.Recipient{{Addr: g.rcpt(i), State: store.Delivered, NextAttempt: when}}
					if _, err := st.Accept(ctx, store.Acceptance{Queue: []store.QueuedMessage{{Message: msg, Recipients: rs}}}); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		var acceptErr error
		for w := 0; w < max(1, *sessions); w++ {
			if err := <-errs; err != nil && acceptErr == nil {
				acceptErr = err
				next.Store(int64(m)) // the others stop
			}
		}
		if acceptErr != nil {
			return acceptErr
		}
		acceptTime += time.Since(t0)
		s1 := treeCPU(serverPid)
		acceptServer += s1 - s0
		t1, c1 := time.Now(), cpuTime()
		got, err := svc.RunOnce(ctx, *workers)
		if err != nil {
			return err
		}
		if err := svc.SignTouched(ctx); err != nil {
			return err
		}
		archiveTime += time.Since(t1)
		archiveCPU += cpuTime() - c1
		archiveServer += treeCPU(serverPid) - s1
		if got != m {
			return fmt.Errorf("archived %d of %d messages", got, m)
		}
		done += m
		if time.Since(report) > 30*time.Second || done == *n {
			fmt.Fprintf(os.Stderr, "[bencharchive] %d/%d archived, %.0f msgs/s\n", done, *n, float64(done)/archiveTime.Seconds())
			report = time.Now()
		}
	}
	ingest := float64(*n) / archiveTime.Seconds()

	if *index == "bleve" {
		settle(idxDir)
	}
	if *searchAfter != "" {
		fmt.Fprintf(os.Stderr, "[bencharchive] ingest done; searching once %s exists\n", *searchAfter)
		for {
			if _, err := os.Stat(*searchAfter); err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(2 * time.Second):
			}
		}
	}
	lat, cpu, err := searches(ctx, svc, tn.ID, g, *verbose)
	if err != nil {
		return err
	}

	u, err := st.ArchiveUsage(ctx, tn.ID)
	if err != nil {
		return err
	}
	fmt.Printf("accept (spool + store, not the archiver, %d sessions): %.0f msgs/s\n", *sessions, float64(*n)/acceptTime.Seconds())
	// The machine may be shared: the CPU the archiver used says what it
	// would do with the cores to itself.
	cpuMS := float64(archiveCPU.Microseconds()) / 1000 / float64(*n)
	fmt.Printf("archiver CPU: %.2f ms per message (user + system, all threads): %.0f msgs/s per free core\n", cpuMS, 1000/cpuMS)
	if serverPid != 0 {
		perMsg := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(*n) }
		fmt.Printf("PostgreSQL server CPU: accept %.2f ms per message, archiver %.2f ms per message\n", perMsg(acceptServer), perMsg(archiveServer))
	}
	fmt.Printf("search CPU (the process's, per search): p50-ms=%.1f p95-ms=%.1f\n", pct(cpu, 0.50), pct(cpu, 0.95))
	fmt.Printf("archived bytes: %s of messages stored as %s (deduplicated)\n", mb(logical.Load()), mb(u.Bytes))
	if *index == "bleve" {
		sz := dirSize(idxDir)
		fmt.Printf("index size: %s, %.0f bytes per message; 10 M messages: about %s\n", mb(sz), float64(sz)/float64(*n), mb(sz*10_000_000/int64(*n)))
	} else if p, ok := st.(*postgres.DB); ok {
		var sz int64
		if err := p.Pool().QueryRow(ctx, `SELECT pg_total_relation_size('archive_search')`).Scan(&sz); err == nil {
			fmt.Printf("index size (table archive_search with its indexes): %s, %.0f bytes per message; 10 M messages: about %s\n", mb(sz), float64(sz)/float64(*n), mb(sz*10_000_000/int64(*n)))
		}
	}
	fmt.Printf("10 M messages: archive storage about %s, ingest at this rate about %.1f h\n", mb(u.Bytes*10_000_000/int64(*n)), 10_000_000/ingest/3600)
	fmt.Printf("archive ingest msgs/s=%.0f search p50-ms=%.1f p95-ms=%.1f over %d messages (index=%s)\n", ingest, pct(lat, 0.50), pct(lat, 0.95), *n, *index)
	return nil
}

// searches runs the fixed set of searches and returns their times in
// milliseconds, sorted: wall clock, and the CPU the process used meanwhile
// (what a search costs when the machine is shared).
func searches(ctx context.Context, svc *archive.Service, tid int64, g *gen, verbose bool) (lat, cpu []float64, err error) {
	for _, q := range g.queries() {
		pq, err := archive.ParseQuery(q)
		if err != nil {
			return nil, nil, fmt.Errorf("query %q: %w", q, err)
		}
		t, c := time.Now(), cpuTime()
		h, err := svc.Search(ctx, tid, pq, archive.Page{})
		if err != nil {
			return nil, nil, fmt.Errorf("search %q: %w", q, err)
		}
		ms, cms := float64(time.Since(t).Microseconds())/1000, float64((cpuTime()-c).Microseconds())/1000
		lat, cpu = append(lat, ms), append(cpu, cms)
		if verbose {
			fmt.Printf("%8.1f ms %8.1f cpu-ms %6d hits (%d shown)  %s\n", ms, cms, h.Total, len(h.Entries), q)
		}
		if len(h.Entries) == 0 {
			fmt.Fprintf(os.Stderr, "[bencharchive] no hits for %q\n", q)
		}
	}
	sort.Float64s(lat)
	sort.Float64s(cpu)
	return lat, cpu, nil
}

// treeCPU is the CPU time process pid and its children have used, the
// children that ended included (Linux; 0 elsewhere or for pid 0): the
// PostgreSQL server's postmaster and its backends.
func treeCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	ticks := func(stat string, self bool) int64 {
		// The fields after the command name, which may hold spaces.
		i := strings.LastIndexByte(stat, ')')
		if i < 0 {
			return 0
		}
		f := strings.Fields(stat[i+1:])
		if len(f) < 15 {
			return 0
		}
		var t int64
		last := 13 // utime, stime
		if self {
			last = 15 // and the ended children's
		}
		for _, x := range f[11:last] {
			v, _ := strconv.ParseInt(x, 10, 64)
			t += v
		}
		return t
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	total := ticks(string(b), true)
	ps, _ := os.ReadDir("/proc")
	want := strconv.Itoa(pid)
	for _, p := range ps {
		b, err := os.ReadFile(filepath.Join("/proc", p.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 {
			if f := strings.Fields(s[i+1:]); len(f) > 1 && f[1] == want {
				total += ticks(s, false)
			}
		}
	}
	// The kernel counts in USER_HZ, 100 a second on Linux.
	return time.Duration(total) * 10 * time.Millisecond
}

func pct(lat []float64, p float64) float64 { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }

// cpuTime is the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// settle waits (at most a minute) for the embedded index to finish the
// merges of the segments the ingest wrote: searches are timed on the index
// as it stays, not while it is being rewritten.
func settle(dir string) {
	files := func() int {
		es, _ := os.ReadDir(filepath.Join(dir, "store"))
		return len(es)
	}
	last, still := files(), 0
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline) && still < 5; {
		time.Sleep(time.Second)
		if n := files(); n == last {
			still++
		} else {
			last, still = n, 0
		}
	}
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/(1<<20)) }

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// gen makes the corpus: a pure function of the seed and the index, so the
// searches know what is there.
type gen struct {
	seed   uint64
	n      int
	start  time.Time
	shared []string // attachments that 20 % of the messages share
}

var (
	jaWords = []string{"会議", "東京", "予算", "契約", "請求", "議事録", "見積", "納期", "資料", "確認", "営業", "報告", "大阪", "出張", "研修", "採用"}
	jaSents = []string{"いつもお世話になっております。", "来週の会議の資料をお送りします。", "ご確認のほどよろしくお願いいたします。",
		"見積書を添付いたしましたのでご査収ください。", "納期について相談させてください。", "東京本社で打ち合わせを行います。",
		"予算の見直しが必要です。", "議事録を共有します。", "契約書の内容をご確認ください。", "請求書の件でご連絡しました。"}
	enWords = []string{"budget", "meeting", "contract", "invoice", "report", "quarterly", "schedule", "proposal", "review", "shipment", "forecast", "hiring"}
	enSents = []string{"Please find the figures below.", "Let us meet on Thursday to review the proposal.", "The shipment is delayed by two days.",
		"Attached is the signed contract.", "Could you confirm the invoice amount?", "Here are the notes from the quarterly review.",
		"The forecast looks better than last month.", "We are hiring two engineers this quarter."}
)

func newGen(seed uint64, n int) *gen {
	g := &gen{seed: seed, n: n, start: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	for i := 0; i < 50; i++ {
		g.shared = append(g.shared, g.attachmentText(rand.New(rand.NewPCG(seed, uint64(1<<40+i))), 8000+i*600, fmt.Sprintf("sharedoc%d", i)))
	}
	return g
}

func (g *gen) rng(i int) *rand.Rand { return rand.New(rand.NewPCG(g.seed, uint64(i))) }

func (g *gen) sender(i int) string {
	return fmt.Sprintf("user%d@partner%d.example.jp", i%200, i%37)
}

func (g *gen) rcpt(i int) string { return fmt.Sprintf("staff%d@acme.example", i%500) }

// day spreads the messages over 180 days in order.
func (g *gen) when(i int) time.Time {
	return g.start.Add(time.Duration(float64(i) / float64(g.n) * float64(180*24*time.Hour)))
}

func (g *gen) attachmentText(r *rand.Rand, size int, tag string) string {
	var b strings.Builder
	b.WriteString(tag + "\n")
	for b.Len() < size {
		if r.IntN(2) == 0 {
			b.WriteString(jaSents[r.IntN(len(jaSents))])
		} else {
			b.WriteString(enSents[r.IntN(len(enSents))] + " ")
		}
		if r.IntN(8) == 0 {
			b.WriteString("\n")
		}
	}
	return b.String()
}

// message i: 60 % Japanese (a third each ISO-2022-JP, Shift_JIS, UTF-8),
// 40 % English; a few KB of text; 30 % with an attachment, two thirds of
// those one of the shared attachments (20 % of all messages); every 997th
// carries a rare code word.
func (g *gen) message(i int) (string, time.Time, store.Direction) {
	r := g.rng(i)
	when := g.when(i)
	dir := store.Inbound
	if i%3 == 0 {
		dir = store.Outbound
	}
	ja := i%5 < 3
	var subject, body string
	var b strings.Builder
	for k := 2 + r.IntN(30); k > 0; k-- {
		if ja {
			b.WriteString(jaSents[r.IntN(len(jaSents))])
		} else {
			b.WriteString(enSents[r.IntN(len(enSents))] + " ")
		}
		if r.IntN(3) == 0 {
			b.WriteString("\r\n")
		}
	}
	if i%997 == 0 {
		fmt.Fprintf(&b, "\r\nrarecode%d\r\n", i)
	}
	if ja {
		subject = jaWords[r.IntN(len(jaWords))] + "の件（" + jaWords[r.IntN(len(jaWords))] + "）"
	} else {
		subject = "Re: " + enWords[r.IntN(len(enWords))] + " " + enWords[r.IntN(len(enWords))]
	}
	body = b.String()
	charset, cte := "UTF-8", "8bit"
	if ja {
		switch i % 3 {
		case 0:
			charset, cte = "ISO-2022-JP", "7bit"
			body, _ = japanese.ISO2022JP.NewEncoder().String(body)
		case 1:
			charset = "Shift_JIS"
			body, _ = japanese.ShiftJIS.NewEncoder().String(body)
		}
	}
	var m strings.Builder
	fmt.Fprintf(&m, "From: %s\r\nTo: %s\r\nSubject: =?UTF-8?B?%s?=\r\nDate: %s\r\nMessage-ID: <%d.%d@bench.example>\r\nMIME-Version: 1.0\r\n",
		g.sender(i), g.rcpt(i), base64.StdEncoding.EncodeToString([]byte(subject)), when.Format(time.RFC1123Z), g.seed, i)
	att := ""
	switch x := i % 10; {
	case x < 2:
		att = g.shared[r.IntN(len(g.shared))]
	case x == 2:
		att = g.attachmentText(r, 5000+r.IntN(40000), fmt.Sprintf("uniquedoc%d", i))
	}
	if att == "" {
		fmt.Fprintf(&m, "Content-Type: text/plain; charset=%s\r\nContent-Transfer-Encoding: %s\r\n\r\n%s\r\n", charset, cte, body)
		return m.String(), when, dir
	}
	m.WriteString("Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\n")
	fmt.Fprintf(&m, "Content-Type: text/plain; charset=%s\r\nContent-Transfer-Encoding: %s\r\n\r\n%s\r\n--b1\r\n", charset, cte, body)
	m.WriteString("Content-Type: text/plain; charset=UTF-8; name=\"notes.txt\"\r\nContent-Disposition: attachment; filename=\"notes.txt\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString([]byte(att))
	for len(enc) > 76 {
		m.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	m.WriteString(enc + "\r\n--b1--\r\n")
	return m.String(), when, dir
}

// queries is the fixed set of 100 searches: rare and common words,
// Japanese two-character words, sender with a date range, attachment text.
func (g *gen) queries() []string {
	var qs []string
	day := func(i int) string { return g.when(i).Format("2006-01-02") }
	for k := 0; k < 20; k++ {
		i := (k * 997 * 7) % g.n
		i -= i % 997
		qs = append(qs, fmt.Sprintf("rarecode%d", i))
	}
	for k := 0; k < 20; k++ {
		w := enWords[k%len(enWords)]
		if k%2 == 1 {
			w = "subject:" + w
		}
		qs = append(qs, w)
	}
	for k := 0; k < 20; k++ {
		q := jaWords[k%len(jaWords)]
		if k >= 16 {
			q += " " + jaWords[(k+3)%len(jaWords)]
		}
		qs = append(qs, q)
	}
	for k := 0; k < 20; k++ {
		i := (k*7919 + 13) % g.n
		qs = append(qs, fmt.Sprintf("from:%s after:%s before:%s", g.sender(i), day(max(0, i-g.n/18)), g.when(i).Add(48*time.Hour).Format("2006-01-02")))
	}
	for k := 0; k < 20; k++ {
		switch {
		case k < 10:
			qs = append(qs, fmt.Sprintf("attachment:sharedoc%d", k*5))
		case k < 15:
			qs = append(qs, "attachment:"+[]string{"会議", "資料", "確認", "見積", "納期"}[k-10]+" has:attachment")
		default:
			i := (k*4001 + 2) % g.n
			i -= i % 10
			i += 2 // a message with a unique attachment
			if i >= g.n {
				i -= 10
			}
			qs = append(qs, fmt.Sprintf("attachment:uniquedoc%d", i))
		}
	}
	return qs
}
