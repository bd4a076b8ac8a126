package extspam

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/dnsx/dnstest"
	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/testutil/peers"
)

// Tests against real daemons. They skip when the daemon is not installed
// (Debian packages spamd + spamassassin, and rspamd) or under -short, and
// fail instead under MAILGATE_REQUIRE_PEERS=1. Both daemons run offline on
// loopback ports from temporary directories and are stopped by PID.

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// daemon starts cmd with its output in a buffer shown on failure, and stops
// it (SIGTERM, then SIGKILL) at cleanup.
func daemon(t *testing.T, cmd *exec.Cmd) *bytes.Buffer {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// The daemons fork workers into the process group started here.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(cmd.Path), out.String())
		}
	})
	return &out
}

func waitFor(t *testing.T, what string, limit time.Duration, ready func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ready() {
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %v", what, limit)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startSpamd runs spamd offline on a TCP port and a unix socket and returns
// both addresses.
func startSpamd(t *testing.T) (tcpAddr, sock string) {
	t.Helper()
	bin, err := exec.LookPath("spamd")
	if err != nil {
		peers.Missing(t, "spamd not installed (Debian packages spamd, spamassassin)")
	}
	if testing.Short() {
		t.Skip("real spamd skipped in -short mode")
	}
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	tcpAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	sock = filepath.Join(dir, "spamd.sock")
	args := []string{"-L", "-x", "-H", home, "-s", "stderr",
		"--listen", tcpAddr, "--listen", sock, "--allowed-ips", "127.0.0.1",
		"-m", "2", "--min-spare", "1", "--max-spare", "2", "--pidfile", filepath.Join(dir, "spamd.pid")}
	// Offline site settings on top of the installed rules and plugins.
	for _, cf := range []string{"dns_available no", "skip_rbl_checks 1", "use_razor2 0", "use_pyzor 0",
		"use_bayes 0", "bayes_auto_learn 0"} {
		args = append(args, "--cf="+cf)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+home)
	daemon(t, cmd)
	waitFor(t, "spamd", 60*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", tcpAddr, time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprint(c, "PING SPAMC/1.5\r\n\r\n")
		line, _ := bufio.NewReader(c).ReadString('\n')
		return strings.HasPrefix(line, "SPAMD/") && strings.Contains(line, "PONG")
	})
	return tcpAddr, sock
}

func TestRealSpamd(t *testing.T) {
	t.Parallel()
	tcpAddr, sock := startSpamd(t)
	for _, cfg := range []SpamdConfig{
		{Network: "tcp", Address: tcpAddr, Command: "SYMBOLS"},
		{Network: "unix", Address: sock, Command: "REPORT"},
		{Network: "tcp", Address: tcpAddr, Command: "CHECK", User: "nobody"},
	} {
		t.Run(cfg.Network+"_"+cfg.Command, func(t *testing.T) {
			cfg.Timeout = 60 * time.Second
			d := newSpamdT(t, cfg)
			settings := policy.MapSettings{"spamassassin.reject_at": "10"}

			spam := newMessage(spamText(), "bob@example.org")
			fs, err := d.Check(context.Background(), spam, settings)
			if err != nil {
				t.Fatal(err)
			}
			sc := findSymbol(fs, "SA_SCORE")
			if sc == nil || sc.Score != maxMappedScore || findSymbol(fs, "SA_REJECT") == nil {
				t.Fatalf("GTUBE findings %+v", fs)
			}
			res, err := d.Scan(context.Background(), spam)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Spam || res.Score < 1000 || res.Threshold != 5 {
				t.Errorf("GTUBE result %+v", res)
			}
			names := map[string]float64{}
			for _, s := range res.Symbols {
				names[s.Name] = s.Score
			}
			if cfg.Command != "CHECK" {
				if _, ok := names["GTUBE"]; !ok {
					t.Errorf("GTUBE not among %v", res.Symbols)
				}
				// The Received header stands for mailgate's own hop: spamd
				// sees a relay with no rDNS, and a relayed message.
				if _, ok := names["RDNS_NONE"]; !ok {
					t.Errorf("RDNS_NONE missing: the prepended Received header was not seen: %v", res.Symbols)
				}
				if _, ok := names["NO_RELAYS"]; ok {
					t.Errorf("NO_RELAYS despite the Received header: %v", res.Symbols)
				}
			}
			if cfg.Command == "REPORT" && names["GTUBE"] != 1000 {
				t.Errorf("REPORT points for GTUBE: %v", names["GTUBE"])
			}

			// Ham from a local submission client, dated now (the fixture's
			// fixed date would score as "in the past").
			ham := newMessage(currentHam())
			ham.Env.ClientIP = mustAddr("127.0.0.1")
			ham.Env.Helo = "localhost"
			fs, err = d.Check(context.Background(), ham, settings)
			if err != nil {
				t.Fatal(err)
			}
			sc = findSymbol(fs, "SA_SCORE")
			if sc == nil || len(fs) != 1 || sc.Score >= 24 {
				t.Errorf("ham findings %+v", fs)
			}
			if res, err := d.Scan(context.Background(), ham); err != nil || res.Spam {
				t.Errorf("ham result %+v %v", res, err)
			}
		})
	}
}

// startRspamd runs rspamd's normal worker alone on a loopback port, its DNS
// pointed at an in-process server that knows no names, and network modules
// (RBL, fuzzy, URL reputation, neural, ...) disabled.
func startRspamd(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("rspamd")
	if err != nil {
		peers.Missing(t, "rspamd not installed (Debian package rspamd)")
	}
	if testing.Short() {
		t.Skip("real rspamd skipped in -short mode")
	}
	confdir := "/etc/rspamd"
	if out, err := exec.Command(bin, "--help").CombinedOutput(); err != nil || !bytes.Contains(out, []byte("--var")) {
		peers.Missing(t, "rspamd without --var")
	}
	if _, err := os.Stat(filepath.Join(confdir, "common.conf")); err != nil {
		peers.Missing(t, "rspamd's stock configuration not found: %v", err)
	}
	dns := dnstest.Start(t)
	dir := t.TempDir()
	for _, d := range []string{"local.d", "db", "run"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	conf := fmt.Sprintf(`.include "$CONFDIR/common.conf"
options {
    pidfile = "$RUNDIR/rspamd.pid";
    .include "$CONFDIR/options.inc"
    dns { nameserver = ["%s"]; timeout = 0.5s; retransmits = 1; }
}
logging { type = "console"; level = "error"; }
worker "normal" {
    bind_socket = "%s";
    .include "$CONFDIR/worker-normal.inc"
    count = 1;
}
`, dns.Addr(), addr)
	if err := os.WriteFile(filepath.Join(dir, "rspamd.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"rbl", "fuzzy_check", "url_reputation", "neural", "phishing", "asn", "emails",
		"surbl", "dcc", "ratelimit", "replies", "history_redis", "greylist", "metadata_exporter", "dkim_signing", "arc"} {
		if err := os.WriteFile(filepath.Join(dir, "local.d", m+".conf"), []byte("enabled = false;\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"-f", "-c", filepath.Join(dir, "rspamd.conf"),
		"--var=CONFDIR=" + confdir, "--var=LOCAL_CONFDIR=" + dir,
		"--var=DBDIR=" + filepath.Join(dir, "db"), "--var=RUNDIR=" + filepath.Join(dir, "run"), "--var=LOGDIR=" + dir}
	if os.Geteuid() == 0 {
		// rspamd would otherwise switch to its own user, which cannot
		// read the temporary directory.
		args = append(args, "-u", "root", "-g", "root", "-i")
	}
	daemon(t, exec.Command(bin, args...))
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	waitFor(t, "rspamd", 90*time.Second, func() bool {
		resp, err := client.Get("http://" + addr + "/ping")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var b [16]byte
		n, _ := resp.Body.Read(b[:])
		return strings.HasPrefix(string(b[:n]), "pong")
	})
	return "http://" + addr
}

func TestRealRspamd(t *testing.T) {
	t.Parallel()
	url := startRspamd(t)
	r := newRspamdT(t, RspamdConfig{URL: url, Timeout: 30 * time.Second,
		Hostname: func(*policy.Message) string { return "mail.example.com" },
		QueueID:  func(*policy.Message) string { return "TESTQ1" }})
	settings := policy.MapSettings{"rspamd.reject": "true"}

	spam := newMessage(spamText(), "bob@example.org", "carol@example.org")
	fs, err := r.Check(context.Background(), spam, settings)
	if err != nil {
		t.Fatal(err)
	}
	rej := findSymbol(fs, "RSPAMD_REJECT")
	if sc := findSymbol(fs, "RSPAMD_SCORE"); sc == nil || sc.Score < 48 || rej == nil || len(rej.Rcpts) != 2 {
		t.Fatalf("GTUBE findings %+v", fs)
	}
	if !strings.Contains(fs[0].Headers[0].Value, "action=reject") {
		t.Errorf("GTUBE header %q", fs[0].Headers[0].Value)
	}

	ham := newMessage(currentHam())
	res, err := r.Scan(context.Background(), ham)
	if err != nil {
		t.Fatal(err)
	}
	if res.Action == "reject" || res.Score >= res.RequiredScore/2 || res.RequiredScore <= 0 {
		t.Errorf("ham result %+v", res)
	}
	names := map[string]Symbol{}
	for _, s := range res.Symbols {
		names[s.Name] = s
	}
	// Evidence that the envelope headers arrived: the envelope sender
	// matches From, and the Hostname given means no "unknown hostname".
	if _, ok := names["FROM_EQ_ENVFROM"]; !ok {
		t.Errorf("FROM_EQ_ENVFROM missing, From header not used: %+v", res.Symbols)
	}
	if _, ok := names["HFILTER_HOSTNAME_UNKNOWN"]; ok {
		t.Errorf("HFILTER_HOSTNAME_UNKNOWN despite a Hostname header: %+v", res.Symbols)
	}
	fs, err = r.Check(context.Background(), ham, settings)
	if err != nil || len(fs) != 1 || fs[0].Score >= 24 {
		t.Errorf("ham findings %+v %v", fs, err)
	}
}

// currentHam is hamText dated now.
func currentHam() string {
	return strings.Replace(hamText, "Date: Sat, 22 Nov 2025 13:00:00 +0000", "Date: "+time.Now().Format(time.RFC1123Z), 1)
}
