package imapd_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/blob/local"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/imapd"
	"github.com/mailgate/mailgate/internal/mailbox"
	"github.com/mailgate/mailgate/internal/mailbox/mailboxtest"
	"github.com/mailgate/mailgate/internal/passwd"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/store/sqlite"
)

// The crash test runs the server in a child process (this test binary,
// re-executed) so it can be killed with SIGKILL.
const crashChildEnv = "MAILGATE_IMAPD_CRASH_CHILD"

func init() {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir, os.Getenv("MAILGATE_IMAPD_CRASH_GEN"))
		os.Exit(0)
	}
}

// crashChild serves IMAP over the store in dir and delivers messages
// to bob, printing "ADDR host:port" once listening and "ACK <queue id>"
// after each delivery that returned.
func crashChild(dir, gen string) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	st, err := sqlite.Open(ctx, filepath.Join(dir, "db"), log)
	if err != nil {
		fmt.Println("ERR", err)
		return
	}
	blobs, err := local.Open(filepath.Join(dir, "mailbox"), "crash-node", 0, log)
	if err != nil {
		fmt.Println("ERR", err)
		return
	}
	tn, _ := st.TenantByName(ctx, "acme")
	svc := &mailbox.Service{Store: st, Blobs: blobs, Log: log, Bus: mailbox.NewBus()}
	if err := svc.Recover(ctx); err != nil {
		fmt.Println("ERR", err)
		return
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		fmt.Println("ERR", err)
		return
	}
	srv := imapd.New(imapd.Deps{Mailboxes: svc, TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, Passwords: passwd.MustNew(passwd.Options{}),
		Config: config.DefaultIMAP(), Log: log})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("ERR", err)
		return
	}
	go srv.ServeTLS(ln)
	fmt.Println("ADDR", ln.Addr().String())
	for i := 0; ; i++ {
		id := fmt.Sprintf("d-%s-%d", gen, i)
		msg := mailboxtest.JapaneseMessage("ISO-2022-JP", "a@example.jp", "bob@example.test", "配送 "+id, strings.Repeat("本文です。\n", 1+i%300))
		if err := svc.Deliver(ctx, tn.ID, "bob@example.test", bytes.NewReader(msg), mailbox.DeliverMeta{QueueID: id, Emergency: true}); err != nil {
			fmt.Println("ERR", err)
			continue
		}
		fmt.Println("ACK", id)
	}
}

// TestCrashDuringAppendAndDelivery kills the server with SIGKILL while
// clients APPEND and messages are delivered, several times, and checks
// after each restart that every acknowledged message is there, whole,
// and that no body is left without its message.
func TestCrashDuringAppendAndDelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test")
	}
	dir := t.TempDir()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	tn, _ := st.CreateTenant(ctx, "acme")
	st.CreateDomain(ctx, tn.ID, "example.test")
	hash, _ := passwd.Hash(password)
	for _, u := range []string{"alice@example.test", "bob@example.test"} {
		st.CreateUser(ctx, tn.ID, u)
		st.CreateAccount(ctx, store.Account{TenantID: tn.ID, Login: u, Role: store.RoleUser, Hash: hash, Created: time.Now()})
	}
	st.Close()
	cert := testCert(t)
	os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600)
	kb, _ := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
	pool := x509.NewCertPool()
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	pool.AddCert(leaf)
	clientTLS := &tls.Config{RootCAs: pool, ServerName: "imap.test"}

	var mu sync.Mutex
	appended := map[string][]byte{} // Message-ID → body, acknowledged
	delivered := map[string]bool{}  // queue ID, acknowledged
	rnd := rand.New(rand.NewPCG(1, 2))
	const rounds = 6
	for round := 0; round < rounds; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, fmt.Sprintf("MAILGATE_IMAPD_CRASH_GEN=%d", round))
		out, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		var addr string
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
				addr = a
				break
			}
			t.Logf("child: %s", sc.Text())
		}
		if addr == "" {
			cmd.Process.Kill()
			t.Fatal("child did not start")
		}
		go func() {
			for sc.Scan() {
				if id, ok := strings.CutPrefix(sc.Text(), "ACK "); ok {
					mu.Lock()
					delivered[id] = true
					mu.Unlock()
				}
			}
		}()
		var wg sync.WaitGroup
		for w := 0; w < 3; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				c, err := imapclient.DialTLS(addr, &imapclient.Options{TLSConfig: clientTLS})
				if err != nil {
					return
				}
				defer c.Close()
				if c.Login("alice@example.test", password).Wait() != nil {
					return
				}
				for i := 0; ; i++ {
					id := fmt.Sprintf("<a-%d-%d-%d@example.test>", round, w, i)
					body := []byte(fmt.Sprintf("Message-ID: %s\r\nSubject: append %d\r\n\r\n%s\r\n", id, i, strings.Repeat("x", 100+(i*977)%20000)))
					ac := c.Append("INBOX", int64(len(body)), nil)
					if _, err := ac.Write(body); err != nil {
						return
					}
					if err := ac.Close(); err != nil {
						return
					}
					if _, err := ac.Wait(); err != nil {
						return
					}
					mu.Lock()
					appended[id] = body
					mu.Unlock()
				}
			}(w)
		}
		// The kill falls at a random moment after this round's first
		// acknowledged APPEND and delivery (or 20 s), so a slow machine
		// still kills a server in the middle of work.
		before := func() (int, int) { mu.Lock(); defer mu.Unlock(); return len(appended), len(delivered) }
		a0, d0 := before()
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if a, d := before(); a > a0 && d > d0 {
				break
			}
		}
		time.Sleep(time.Duration(rnd.IntN(700)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		wg.Wait()
	}

	// A last start recovers; then the store and the blobs are checked.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, "MAILGATE_IMAPD_CRASH_GEN=final")
	out, _ := cmd.StdoutPipe()
	cmd.Start()
	sc := bufio.NewScanner(out)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "ADDR ") {
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	st, err = sqlite.Open(ctx, filepath.Join(dir, "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	present := map[string]store.MailMessage{}
	queued := map[string]bool{}
	for _, addr := range []string{"alice@example.test", "bob@example.test"} {
		mb, err := st.MailboxByAddress(ctx, tn.ID, addr)
		if err != nil {
			t.Fatal(err)
		}
		fs, _ := st.MailFolders(ctx, tn.ID, mb.ID)
		for _, f := range fs {
			light, _ := st.FolderMail(ctx, tn.ID, f.ID)
			var uids []uint32
			for _, m := range light {
				uids = append(uids, m.UID)
			}
			full, _ := st.MailByUID(ctx, tn.ID, f.ID, uids)
			for _, m := range full {
				present[m.MessageIDHdr] = m
				if m.QueueID != "" {
					if queued[m.QueueID] {
						t.Errorf("delivery %s stored twice", m.QueueID)
					}
					queued[m.QueueID] = true
				}
			}
		}
	}
	keys, _ := st.MailBlobKeys(ctx)
	blobs, err := local.Open(filepath.Join(dir, "mailbox"), "crash-node", 0, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer blobs.Close()
	files := 0
	for _, err := range blobs.List(ctx, "") {
		if err != nil {
			t.Fatal(err)
		}
		files++
	}
	if files != len(keys) {
		t.Errorf("%d blobs stored for %d messages' bodies", files, len(keys))
	}
	lost := 0
	for id, body := range appended {
		m, ok := present["<"+strings.Trim(id, "<>")+">"]
		if !ok {
			lost++
			t.Errorf("acknowledged APPEND %s missing", id)
			continue
		}
		got, err := readBlob(ctx, blobs, m.BlobKey)
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("APPEND %s stored damaged (%v)", id, err)
		}
	}
	for id := range delivered {
		if !queued[id] {
			lost++
			t.Errorf("acknowledged delivery %s missing", id)
		}
	}
	t.Logf("crash test: %d kills, appends acked=%d, deliveries acked=%d (stored %d), blobs=%d, lost=%d", rounds, len(appended), len(delivered), len(queued), len(keys), lost)
	if len(appended) == 0 || len(delivered) == 0 {
		t.Fatal("nothing was acknowledged; the test proved nothing")
	}
}

// readBlob reads a body whole, its checksum verified.
func readBlob(ctx context.Context, b blob.Store, key string) ([]byte, error) {
	r, err := b.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}
