// Command benchimap measures mailgate's IMAP service against Dovecot with
// the same mailbox content and the same client load, in one run.
//
// It starts both servers from scratch directories (mailgate serve from a
// built binary with a generated config; Dovecot from Debian's package with a
// scratch config and Maildir), gives both the same users with the same
// argon2id password hash, loads the same messages into both by IMAP APPEND
// (Japanese in ISO-2022-JP, Shift_JIS, EUC-JP and UTF-8, English, realistic
// sizes, some attachments), then runs the same client load against each:
// every client logs in as one user and repeats rounds of SELECT, FETCH of
// 50 headers, FETCH of a body, SEARCH of a word (Japanese or English),
// STORE of flags, APPEND and IDLE, logging out and in again after -rounds.
// Every command is one operation. The peak RSS of each server's process
// tree is sampled while it runs.
//
// The last two lines printed are
//
//	imap peak-rss-mb: mailgate=X dovecot=Y
//	imap ops/s: mailgate=A dovecot=B ratio=A/B
//
// (operations per second of each server; a ratio above 1 means mailgate
// is faster).
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"golang.org/x/text/encoding/japanese"

	"github.com/mailgate/mailgate/internal/passwd"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/store/sqlite"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "benchimap:", err)
		os.Exit(1)
	}
}

type opts struct {
	mailgate string
	users    int
	msgs     int
	clients  int
	rounds   int
	duration time.Duration
	seed     uint64
	dir      string
	only     string
	skip     map[string]bool
	// delivery mode: mail delivered into the mailboxes instead of the
	// IMAP load (see delivery.go).
	delivery bool
	n        int
	sessions int
	warmup   int
}

const password = "bench-imap-password"

func run() error {
	var o opts
	flag.StringVar(&o.mailgate, "mailgate", "", "mailgate binary")
	flag.IntVar(&o.users, "users", 20, "users (mailboxes)")
	flag.IntVar(&o.msgs, "messages", 2000, "messages per user")
	flag.IntVar(&o.clients, "clients", 20, "concurrent clients")
	flag.IntVar(&o.rounds, "rounds", 10, "rounds of commands per login")
	flag.DurationVar(&o.duration, "duration", 30*time.Second, "measured time per server")
	flag.Uint64Var(&o.seed, "seed", 1, "content seed")
	flag.StringVar(&o.dir, "dir", "", "scratch directory (default: a new temporary one, removed at the end)")
	flag.StringVar(&o.only, "only", "", "run only this server (mailgate or dovecot); the last line then lacks the ratio")
	skip := flag.String("skip", "", "comma list of operations left out of each round (e.g. SEARCH)")
	mode := flag.String("mode", "imap", "imap: the IMAP load; delivery: mail delivered into the mailboxes (mailgate over SMTP with the domain in emergency mode, Dovecot over LMTP)")
	flag.IntVar(&o.n, "n", 5000, "delivery: messages delivered in the measured run")
	flag.IntVar(&o.sessions, "sessions", 20, "delivery: concurrent SMTP or LMTP sessions")
	flag.IntVar(&o.warmup, "warmup", 200, "delivery: messages delivered before the measured run")
	flag.Parse()
	switch *mode {
	case "imap":
	case "delivery":
		o.delivery = true
	default:
		return fmt.Errorf("-mode: imap or delivery, not %q", *mode)
	}
	o.skip = map[string]bool{}
	for _, s := range strings.Split(*skip, ",") {
		if s = strings.ToUpper(strings.TrimSpace(s)); s != "" {
			o.skip[s] = true
		}
	}
	if o.mailgate == "" && o.only != "dovecot" {
		return errors.New("-mailgate is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	keep := o.dir != ""
	if o.dir == "" {
		d, err := os.MkdirTemp("", "bench-imap-")
		if err != nil {
			return err
		}
		o.dir = d
	}
	if !keep {
		defer os.RemoveAll(o.dir)
	} else if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		// Dovecot's unprivileged processes must reach the scratch tree.
		os.Chmod(o.dir, 0o755)
	}
	certPEM, keyPEM, err := makeCert()
	if err != nil {
		return err
	}
	os.WriteFile(filepath.Join(o.dir, "cert.pem"), certPEM, 0o644)
	os.WriteFile(filepath.Join(o.dir, "key.pem"), keyPEM, 0o644)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	clientTLS := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	hash, err := passwd.Hash(password)
	if err != nil {
		return err
	}
	users := make([]string, o.users)
	for i := range users {
		users[i] = fmt.Sprintf("user%02d@bench.test", i)
	}

	var servers []server
	if o.only != "dovecot" {
		addr, smtpAddr, pid, stopMG, err := startMailgate(ctx, o, users, hash)
		if err != nil {
			return fmt.Errorf("mailgate: %w", err)
		}
		defer stopMG()
		servers = append(servers, server{"mailgate", addr, smtpAddr, false, func() []int { return []int{pid} }, stopMG})
	}
	if o.only != "mailgate" {
		addr, lmtpAddr, pids, stopDC, err := startDovecot(ctx, o, users, hash)
		if err != nil {
			return fmt.Errorf("dovecot: %w", err)
		}
		defer stopDC()
		servers = append(servers, server{"dovecot", addr, lmtpAddr, true, pids, stopDC})
	}
	if o.delivery {
		return deliveryBench(ctx, o, servers, clientTLS, users)
	}
	for _, s := range servers {
		t0 := time.Now()
		n, bytes, err := load(ctx, s.addr, clientTLS, users, o)
		if err != nil {
			return fmt.Errorf("loading %s: %w", s.name, err)
		}
		fmt.Printf("%s: loaded %d messages (%.0f MB) by APPEND in %.1fs\n", s.name, n, float64(bytes)/(1<<20), time.Since(t0).Seconds())
	}
	results := map[string]float64{}
	rss := map[string]float64{}
	for _, s := range servers {
		sampler := startRSS(s.pid)
		res, err := measure(ctx, s.addr, clientTLS, users, o)
		peak := sampler()
		if err != nil {
			return fmt.Errorf("measuring %s: %w", s.name, err)
		}
		results[s.name], rss[s.name] = res.opsPerSec, float64(peak)/(1<<20)
		fmt.Printf("%s: %d ops in %.1fs, %d errors; peak RSS %.0f MB\n", s.name, res.ops, res.elapsed.Seconds(), res.errors, rss[s.name])
		for _, op := range opNames {
			l := res.lat[op]
			if len(l) == 0 {
				continue
			}
			sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
			fmt.Printf("  %-13s n=%-7d p50=%6.2fms p95=%7.2fms\n", op, len(l), ms(l[len(l)/2]), ms(l[len(l)*95/100]))
		}
	}
	if o.only != "" {
		fmt.Printf("imap peak-rss-mb: %s=%.0f\n", o.only, rss[o.only])
		fmt.Printf("imap ops/s: %s=%.0f\n", o.only, results[o.only])
		return nil
	}
	// ratio is mailgate's operations per second over Dovecot's: above 1,
	// mailgate serves the same load faster.
	fmt.Printf("imap peak-rss-mb: mailgate=%.0f dovecot=%.0f\n", rss["mailgate"], rss["dovecot"])
	fmt.Printf("imap ops/s: mailgate=%.0f dovecot=%.0f ratio=%.2f\n",
		results["mailgate"], results["dovecot"], results["mailgate"]/results["dovecot"])
	return nil
}

// server is one of the servers under test.
type server struct {
	name string
	addr string // IMAP, implicit TLS
	// deliverAddr takes mail for the mailboxes: mailgate's inbound SMTP
	// listener, Dovecot's LMTP listener (lmtp).
	deliverAddr string
	lmtp        bool
	pid         func() []int
	stop        func()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func makeCert() ([]byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitGreeting waits until an implicit-TLS IMAP greeting arrives.
func waitGreeting(ctx context.Context, addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("exited during start-up")
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // readiness probe
		if err == nil {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			b := make([]byte, 4)
			_, err = io.ReadFull(c, b)
			c.Close()
			if err == nil && string(b) == "* OK" {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("no greeting within 60s")
}

// startMailgate seeds a store with the tenant, users and accounts (and in
// delivery mode the domain in emergency mode, so inbound mail goes into
// the mailboxes), writes a config with the IMAP listener and the inbound
// SMTP listener, and runs mailgate serve. It returns the IMAP and SMTP
// addresses.
func startMailgate(ctx context.Context, o opts, users []string, hash string) (string, string, int, func(), error) {
	dir := filepath.Join(o.dir, "mailgate")
	os.MkdirAll(dir, 0o700)
	st, err := sqlite.Open(ctx, filepath.Join(dir, "mailgate.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		return "", "", 0, nil, err
	}
	tn, err := st.CreateTenant(ctx, "bench")
	var dom store.Domain
	if err == nil {
		dom, err = st.CreateDomain(ctx, tn.ID, "bench.test")
	}
	if err == nil && o.delivery {
		// A primary that never answers: mail that went there would stay
		// queued and the run would not finish.
		err = st.SetRoutes(ctx, tn.ID, dom.ID, []store.Route{{Priority: 10, Target: "smtp://127.0.0.1:9", TLS: "opportunistic"}})
		if err == nil {
			_, err = st.SetDomainMode(ctx, store.DomainMode{TenantID: tn.ID, DomainID: dom.ID, Domain: dom.Name, Mode: store.ModeEmergency,
				Changed: time.Now(), ChangedBy: "bench", Reason: "bench"}, store.ModePrimary)
		}
	}
	for _, u := range users {
		if err == nil {
			_, err = st.CreateUser(ctx, tn.ID, u)
		}
		if err == nil {
			_, err = st.CreateAccount(ctx, store.Account{TenantID: tn.ID, Login: u, Role: store.RoleUser, Hash: hash, Created: time.Now()})
		}
	}
	// Unlimited mailboxes: the load grows them past any default.
	if err == nil {
		err = st.SetSetting(ctx, store.Setting{TenantID: tn.ID, Scope: store.ScopeTenant, Key: "mailbox.quota_mb", Value: "0"})
	}
	if err == nil {
		err = st.SetSetting(ctx, store.Setting{TenantID: tn.ID, Scope: store.ScopeTenant, Key: "imap.max_connections", Value: "1000"})
	}
	st.Close()
	if err != nil {
		return "", "", 0, nil, err
	}
	port, err := freePort()
	if err != nil {
		return "", "", 0, nil, err
	}
	smtpPort, err := freePort()
	if err != nil {
		return "", "", 0, nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := fmt.Sprintf(`hostname = "bench.test"
data_dir = %q
log_level = "warn"
[store]
driver = "sqlite"
[tls]
cert_file = %q
key_file = %q
[inbound]
listen = ["127.0.0.1:%d"]
max_conn_per_ip = 1000
[checks]
enabled = []
[limits]
min_free_bytes = 0
[imap]
listen_tls = [%q]
max_conns_per_user = 1000
`, dir, filepath.Join(o.dir, "cert.pem"), filepath.Join(o.dir, "key.pem"), smtpPort, addr)
	cfgPath := filepath.Join(dir, "mailgate.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return "", "", 0, nil, err
	}
	logf, _ := os.Create(filepath.Join(dir, "mailgate.log"))
	cmd := exec.Command(o.mailgate, "-c", cfgPath, "serve")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", "", 0, nil, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	if err := waitGreeting(ctx, addr, exited); err != nil {
		stop()
		b, _ := os.ReadFile(filepath.Join(dir, "mailgate.log"))
		return "", "", 0, nil, fmt.Errorf("%w\n%s", err, b)
	}
	return addr, fmt.Sprintf("127.0.0.1:%d", smtpPort), cmd.Process.Pid, stop, nil
}

// startDovecot runs Dovecot with a scratch config: passwd-file users with
// the same argon2id hash, Maildir, no login penalties, enough connections.
func startDovecot(ctx context.Context, o opts, users []string, hash string) (string, string, func() []int, func(), error) {
	bin, err := exec.LookPath("dovecot")
	if err != nil {
		if _, e := os.Stat("/usr/sbin/dovecot"); e != nil {
			return "", "", nil, nil, errors.New("dovecot not installed (Debian package dovecot-imapd)")
		}
		bin = "/usr/sbin/dovecot"
	}
	dir := filepath.Join(o.dir, "dovecot")
	home := filepath.Join(dir, "home")
	os.MkdirAll(home, 0o755)
	os.Chmod(dir, 0o755)
	internal, login, uid, gid := "dovecot", "dovenull", 0, 0
	if os.Geteuid() == 0 {
		nobody, err := user.Lookup("nobody")
		if err != nil {
			return "", "", nil, nil, err
		}
		uid, _ = strconv.Atoi(nobody.Uid)
		gid, _ = strconv.Atoi(nobody.Gid)
		os.Chown(home, uid, gid)
	} else {
		u, _ := user.Current()
		internal, login, uid, gid = u.Username, u.Username, os.Geteuid(), os.Getegid()
	}
	var pw strings.Builder
	for _, u := range users {
		fmt.Fprintf(&pw, "%s:{ARGON2ID}%s::::::\n", u, hash)
	}
	os.WriteFile(filepath.Join(dir, "users"), []byte(pw.String()), 0o644)
	port, err := freePort()
	if err != nil {
		return "", "", nil, nil, err
	}
	port2, err := freePort()
	if err != nil {
		return "", "", nil, nil, err
	}
	// In delivery mode, LMTP (Debian's dovecot-lmtpd) on a third port:
	// how Postfix hands mail to Dovecot's mailboxes.
	protocols, lmtpConf, lmtpAddr := "imap", "", ""
	if o.delivery {
		if _, err := os.Stat("/usr/lib/dovecot/lmtp"); err != nil {
			return "", "", nil, nil, errors.New("dovecot's LMTP server is not installed (Debian package dovecot-lmtpd)")
		}
		port3, err := freePort()
		if err != nil {
			return "", "", nil, nil, err
		}
		lmtpAddr = fmt.Sprintf("127.0.0.1:%d", port3)
		protocols = "imap lmtp"
		lmtpConf = fmt.Sprintf("service lmtp {\n  inet_listener lmtp {\n    address = 127.0.0.1\n    port = %d\n  }\n}\n", port3)
	}
	logPath := filepath.Join(dir, "dovecot.log")
	conf := fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[2]s
info_log_path = %[2]s
protocols = %[11]s
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
mail_max_userip_connections = 1000
passdb {
  driver = passwd-file
  args = username_format=%%u %[1]s/users
}
userdb {
  driver = passwd-file
  args = username_format=%%u %[1]s/users
  default_fields = uid=%[6]d gid=%[7]d home=%[8]s/%%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %[10]d
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = %[9]d
    ssl = yes
  }
}
service anvil {
  chroot =
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
`, dir, logPath, internal, login, o.dir, uid, gid, home, port, port2, protocols) + lmtpConf
	if _, err := os.Stat("/usr/share/dovecot/dh.pem"); err == nil {
		conf += "ssl_dh = </usr/share/dovecot/dh.pem\n"
	}
	confPath := filepath.Join(dir, "dovecot.conf")
	os.WriteFile(confPath, []byte(conf), 0o644)
	cmd := exec.Command(bin, "-F", "-c", confPath)
	out, _ := os.Create(filepath.Join(dir, "dovecot.out"))
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", "", nil, nil, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := waitGreeting(ctx, addr, exited); err != nil {
		stop()
		b, _ := os.ReadFile(logPath)
		return "", "", nil, nil, fmt.Errorf("%w\n%s", err, b)
	}
	pids := func() []int { return processTree(cmd.Process.Pid) }
	return addr, lmtpAddr, pids, stop, nil
}

// processTree is pid and every descendant (from /proc).
func processTree(root int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 2 {
			ppid, _ := strconv.Atoi(f[1])
			children[ppid] = append(children[ppid], pid)
		}
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// startRSS samples the summed RSS of the pids every 100 ms; the returned
// function stops and reports the peak in bytes.
func startRSS(pids func() []int) func() int64 {
	var peak atomic.Int64
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			var sum int64
			for _, p := range pids() {
				b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
				if err != nil {
					continue
				}
				for _, l := range strings.Split(string(b), "\n") {
					if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
						kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
						sum += kb << 10
					}
				}
			}
			if sum > peak.Load() {
				peak.Store(sum)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 { close(done); <-stopped; return peak.Load() }
}

// --- content ---

var (
	jaPhrases = []string{"お疲れ様です。", "明日の会議の資料を送ります。", "東京本社で打ち合わせを行います。", "ご確認のほどよろしくお願いいたします。",
		"見積書を添付しました。", "来週の出張の件でご連絡しました。", "議事録をまとめましたのでご査収ください。", "新しいプロジェクトの予算について相談させてください。",
		"請求書の発行日を変更します。", "システムの定期メンテナンスを実施します。", "ｶﾀｶﾅの半角も混ざります。", "①②③の記号も使います。"}
	jaSubjects = []string{"会議のお知らせ", "見積書送付の件", "出張のご連絡", "議事録", "予算のご相談", "請求書について", "メンテナンスのお知らせ", "ご挨拶"}
	enWords    = strings.Fields("the quarterly report budget review please find attached schedule update project customer invoice shipment delivery team lunch weekend travel contract draft approval deadline regards thanks")
	enSubjects = []string{"Quarterly report", "Project update", "Invoice attached", "Lunch on Friday", "Contract draft", "Travel plans", "Weekly meeting notes", "Shipment delayed"}
	charsets   = []string{"ISO-2022-JP", "Shift_JIS", "EUC-JP", "UTF-8"}
)

// message is user u's i-th message: deterministic in (seed, u, i).
func message(seed uint64, u, i int) []byte {
	r := mrand.New(mrand.NewPCG(seed, uint64(u)<<32|uint64(i)))
	var b strings.Builder
	date := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC).Add(time.Duration(i) * 17 * time.Minute)
	fmt.Fprintf(&b, "Return-Path: <sender%d@example.jp>\r\nReceived: from mx.example.jp (mx.example.jp [192.0.2.%d]) by bench.test; %s\r\n", r.IntN(50), r.IntN(250), date.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%d.%d.%d@example.jp>\r\nDate: %s\r\nTo: user%02d@bench.test\r\nMIME-Version: 1.0\r\n", seed, u, i, date.Format(time.RFC1123Z), u)
	attach := r.IntN(20) == 0
	boundary := fmt.Sprintf("b%d_%d", u, i)
	ctype := func(cs string) {
		if attach {
			fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=%q\r\n\r\n--%s\r\n", boundary, boundary)
		}
		fmt.Fprintf(&b, "Content-Type: text/plain; charset=%s\r\n", cs)
	}
	n := 5 + int(r.ExpFloat64()*40) // lines: mostly short mail, some long
	if r.IntN(3) < 2 {
		cs := charsets[r.IntN(len(charsets))]
		enc := japanese.ISO2022JP.NewEncoder()
		switch cs {
		case "Shift_JIS":
			enc = japanese.ShiftJIS.NewEncoder()
		case "EUC-JP":
			enc = japanese.EUCJP.NewEncoder()
		}
		subj := jaSubjects[r.IntN(len(jaSubjects))]
		var text strings.Builder
		for l := 0; l < n; l++ {
			text.WriteString(jaPhrases[r.IntN(len(jaPhrases))])
			text.WriteString("\r\n")
		}
		fmt.Fprintf(&b, "From: =?UTF-8?B?%s?= <sender%d@example.jp>\r\n", base64.StdEncoding.EncodeToString([]byte("山田 太郎")), r.IntN(50))
		fmt.Fprintf(&b, "Subject: =?UTF-8?B?%s?=\r\n", base64.StdEncoding.EncodeToString([]byte(subj)))
		ctype(cs)
		if cs == "UTF-8" {
			b.WriteString("Content-Transfer-Encoding: base64\r\n\r\n")
			s := base64.StdEncoding.EncodeToString([]byte(text.String()))
			for len(s) > 76 {
				b.WriteString(s[:76] + "\r\n")
				s = s[76:]
			}
			b.WriteString(s + "\r\n")
		} else {
			body, err := enc.String(text.String())
			if err != nil {
				body = text.String()
			}
			if cs == "ISO-2022-JP" {
				b.WriteString("Content-Transfer-Encoding: 7bit\r\n\r\n")
			} else {
				b.WriteString("Content-Transfer-Encoding: 8bit\r\n\r\n")
			}
			b.WriteString(body)
		}
	} else {
		fmt.Fprintf(&b, "From: Bob Smith <bob%d@example.com>\r\nSubject: %s\r\n", r.IntN(50), enSubjects[r.IntN(len(enSubjects))])
		ctype("us-ascii")
		b.WriteString("Content-Transfer-Encoding: 7bit\r\n\r\n")
		for l := 0; l < n; l++ {
			for w := 0; w < 12; w++ {
				b.WriteString(enWords[r.IntN(len(enWords))])
				b.WriteByte(' ')
			}
			b.WriteString("\r\n")
		}
	}
	if attach {
		raw := make([]byte, 20000+r.IntN(200000))
		for k := range raw {
			raw[k] = byte(r.IntN(256))
		}
		fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\nContent-Disposition: attachment; filename=\"report.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n", boundary)
		s := base64.StdEncoding.EncodeToString(raw)
		for len(s) > 76 {
			b.WriteString(s[:76] + "\r\n")
			s = s[76:]
		}
		fmt.Fprintf(&b, "%s\r\n--%s--\r\n", s, boundary)
	}
	return []byte(b.String())
}

func dial(addr string, tc *tls.Config) (*imapclient.Client, error) {
	return imapclient.DialTLS(addr, &imapclient.Options{TLSConfig: tc})
}

// load APPENDs every user's messages, eight workers at a time.
func load(ctx context.Context, addr string, tc *tls.Config, users []string, o opts) (int, int64, error) {
	type job struct{ u int }
	jobs := make(chan job)
	var total, bytes atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				err := func() error {
					c, err := dial(addr, tc)
					if err != nil {
						return err
					}
					defer c.Close()
					if err := c.Login(users[j.u], password).Wait(); err != nil {
						return err
					}
					for i := 0; i < o.msgs; i++ {
						if ctx.Err() != nil {
							return ctx.Err()
						}
						m := message(o.seed, j.u, i)
						ac := c.Append("INBOX", int64(len(m)), nil)
						ac.Write(m)
						ac.Close()
						if _, err := ac.Wait(); err != nil {
							return err
						}
						total.Add(1)
						bytes.Add(int64(len(m)))
					}
					return c.Logout().Wait()
				}()
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for u := range users {
		jobs <- job{u}
	}
	close(jobs)
	wg.Wait()
	return int(total.Load()), bytes.Load(), firstErr
}

var opNames = []string{"LOGIN", "SELECT", "FETCH-HEADERS", "FETCH-BODY", "SEARCH", "STORE", "APPEND", "IDLE", "LOGOUT"}

type result struct {
	ops       int64
	errors    int64
	elapsed   time.Duration
	opsPerSec float64
	lat       map[string][]time.Duration
}

// measure runs the clients against one server for the duration.
func measure(ctx context.Context, addr string, tc *tls.Config, users []string, o opts) (result, error) {
	res := result{lat: map[string][]time.Duration{}}
	var mu sync.Mutex
	var ops, errs atomic.Int64
	deadline := time.Now().Add(o.duration)
	rec := func(op string, d time.Duration, err error) {
		if err != nil {
			errs.Add(1)
			return
		}
		ops.Add(1)
		mu.Lock()
		res.lat[op] = append(res.lat[op], d)
		mu.Unlock()
	}
	words := []string{"会議", "東京", "予算", "議事録", "project", "invoice", "contract", "budget"}
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < o.clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := mrand.New(mrand.NewPCG(o.seed+99, uint64(w)))
			u := w % len(users)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				c, err := dial(addr, tc)
				if err != nil {
					errs.Add(1)
					time.Sleep(100 * time.Millisecond)
					continue
				}
				t := time.Now()
				err = c.Login(users[u], password).Wait()
				rec("LOGIN", time.Since(t), err)
				if err != nil {
					c.Close()
					time.Sleep(50 * time.Millisecond)
					continue
				}
				for round := 0; round < o.rounds && time.Now().Before(deadline); round++ {
					t = time.Now()
					sel, err := c.Select("INBOX", nil).Wait()
					rec("SELECT", time.Since(t), err)
					if err != nil || sel.NumMessages < 60 {
						break
					}
					first := 1 + uint32(r.IntN(int(sel.NumMessages)-50))
					var set imap.SeqSet
					set.AddRange(first, first+49)
					t = time.Now()
					_, err = c.Fetch(set, &imap.FetchOptions{UID: true, Flags: true, RFC822Size: true, InternalDate: true,
						BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierHeader, Peek: true,
							HeaderFields: []string{"From", "To", "Subject", "Date", "Message-ID", "Content-Type"}}}}).Collect()
					rec("FETCH-HEADERS", time.Since(t), err)
					seq := first + uint32(r.IntN(50))
					t = time.Now()
					_, err = c.Fetch(imap.SeqSetNum(seq), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
					rec("FETCH-BODY", time.Since(t), err)
					word := words[r.IntN(len(words))]
					if !o.skip["SEARCH"] {
						t = time.Now()
						_, err = c.Search(&imap.SearchCriteria{Text: []string{word}}, nil).Wait()
						rec("SEARCH", time.Since(t), err)
					}
					t = time.Now()
					err = c.Store(imap.SeqSetNum(seq), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen, imap.FlagFlagged}, Silent: true}, nil).Close()
					rec("STORE", time.Since(t), err)
					m := message(o.seed+7, u, 100000+w*10000+round)
					t = time.Now()
					ac := c.Append("INBOX", int64(len(m)), nil)
					ac.Write(m)
					ac.Close()
					_, err = ac.Wait()
					rec("APPEND", time.Since(t), err)
					t = time.Now()
					idle, err := c.Idle()
					if err == nil {
						err = idle.Close()
						if err == nil {
							err = idle.Wait()
						}
					}
					rec("IDLE", time.Since(t), err)
				}
				t = time.Now()
				err = c.Logout().Wait()
				rec("LOGOUT", time.Since(t), err)
				c.Close()
			}
		}(w)
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.ops, res.errors = ops.Load(), errs.Load()
	res.opsPerSec = float64(res.ops) / res.elapsed.Seconds()
	return res, nil
}
