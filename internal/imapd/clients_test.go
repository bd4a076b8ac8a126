package imapd_test

import (
	"bufio"
	"bytes"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailgate/mailgate/internal/mailbox/mailboxtest"
	"github.com/mailgate/mailgate/internal/testutil/peers"
)

// python is Debian's interpreter (its ssl module and CA handling are the
// ones users have).
const python = "/usr/bin/python3"

// certFile writes the server certificate for clients that read a CA file.
func (n *node) certFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: n.certDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// aliceMail delivers the messages the client scripts expect: four
// Japanese ones (one per charset), then an English one.
func (n *node) aliceMail(t *testing.T) {
	for i, cs := range mailboxtest.Charsets {
		n.deliver(t, "alice@example.test", mailboxtest.JapaneseMessage(cs, "山田 <yamada@example.jp>", "alice@example.test",
			fmt.Sprintf("会議 %s %d", cs, i), "明日の会議は東京です。\n"))
	}
	n.deliver(t, "alice@example.test", mailboxtest.EnglishMessage("bob@example.net", "alice@example.test", "Lunch", "See you at noon"))
}

// Python's imaplib: login, LIST, SELECT, FETCH, SEARCH in Japanese,
// STORE, APPEND with a literal, COPY, UID MOVE, UID EXPUNGE, a Japanese
// folder, GETQUOTAROOT and IDLE seeing a delivery.
func TestPythonImaplib(t *testing.T) {
	if _, err := os.Stat(python); err != nil {
		peers.Missing(t, "%s not installed", python)
	}
	n := start(t, nodeOptions{})
	n.aliceMail(t)
	host, port, _ := net.SplitHostPort(n.tlsAddr)
	// imaplib checks the certificate against the name it dials.
	cmd := exec.Command(python, "testdata/imaplib_client.py", host, port, n.certFile(t), "alice@example.test", password)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		var lines []string
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if sc.Text() == "IDLING" {
				n.deliver(t, "alice@example.test", mailboxtest.EnglishMessage("c@example.net", "alice@example.test", "during idle", "new"))
			}
		}
		if !strings.Contains(strings.Join(lines, "\n"), "DONE") {
			done <- fmt.Errorf("script output %q", lines)
			return
		}
		done <- nil
	}()
	errScan := <-done
	if err := cmd.Wait(); err != nil || errScan != nil {
		t.Fatalf("imaplib session: %v %v\n%s", err, errScan, stderr.String())
	}
}

// mbsync (isync) mirrors the mailbox into a Maildir and back: messages,
// folders (a Japanese one too), flags, deletions and a message written
// locally; a third run finds nothing to do.
func TestMbsyncBothWays(t *testing.T) {
	bin, err := exec.LookPath("mbsync")
	if err != nil {
		peers.Missing(t, "mbsync (Debian isync) not installed")
	}
	n := start(t, nodeOptions{})
	n.aliceMail(t)
	ctx := t.Context()
	mb, err := n.Svc.Mailbox(ctx, n.Tenant.ID, "alice@example.test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Svc.CreateFolder(ctx, mb, "仕事", ""); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	host, port, _ := net.SplitHostPort(n.tlsAddr)
	cfg := fmt.Sprintf(`IMAPAccount mg
Host %s
Port %s
User alice@example.test
Pass "%s"
SSLType IMAPS
CertificateFile %s

IMAPStore remote
Account mg

MaildirStore local
Path %s/mail/
Inbox %s/mail/INBOX
SubFolders Verbatim

Channel mg
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
`, host, port, password, n.certFile(t), dir, dir)
	os.MkdirAll(filepath.Join(dir, "mail"), 0o700)
	cfgPath := filepath.Join(dir, "mbsyncrc")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func() string {
		t.Helper()
		out, err := exec.Command(bin, "-c", cfgPath, "-a").CombinedOutput()
		if err != nil {
			t.Fatalf("mbsync: %v\n%s", err, out)
		}
		return string(out)
	}
	run()
	inbox := maildirFiles(t, filepath.Join(dir, "mail", "INBOX"))
	if len(inbox) != 5 {
		t.Fatalf("%d messages synced to the Maildir INBOX, want 5: %v", len(inbox), inbox)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "mail"))
	var folders []string
	for _, e := range ents {
		folders = append(folders, e.Name())
	}
	if !strings.Contains(strings.Join(folders, " "), "Sent") || len(folders) < 7 {
		t.Fatalf("local folders %v", folders)
	}
	// Local changes: one message read, one deleted, one written to Sent.
	mark := func(path, flags string) {
		base := strings.SplitN(filepath.Base(path), ":2,", 2)[0]
		to := filepath.Join(filepath.Dir(filepath.Dir(path)), "cur", base+":2,"+flags)
		if err := os.Rename(path, to); err != nil {
			t.Fatal(err)
		}
	}
	mark(inbox[0], "S")
	mark(inbox[1], "T")
	sent := filepath.Join(dir, "mail", "Sent", "new")
	os.MkdirAll(sent, 0o700)
	local := "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: written offline\r\nMessage-ID: <offline@example.test>\r\n\r\n手元で書いた返事\r\n"
	if err := os.WriteFile(filepath.Join(sent, "1700000000.1.local"), []byte(local), 0o600); err != nil {
		t.Fatal(err)
	}
	run()
	c := n.login(t, "alice@example.test", nil)
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages != 4 {
		t.Fatalf("server INBOX after the local deletion: %+v %v", sel, err)
	}
	seen, err := c.Search(&imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen}}, nil).Wait()
	if err != nil || len(seen.AllSeqNums()) != 1 {
		t.Fatalf("seen on the server: %v %v", seen, err)
	}
	sentSel, err := c.Select("Sent", nil).Wait()
	if err != nil || sentSel.NumMessages != 1 {
		t.Fatalf("server Sent: %+v %v", sentSel, err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil || len(msgs) != 1 || !strings.Contains(string(msgs[0].FindBodySection(&imap.FetchItemBodySection{})), "手元で書いた返事") {
		t.Fatalf("appended message: %v", err)
	}
	// A message arriving on the server meanwhile reaches the Maildir, and
	// nothing is duplicated.
	n.deliver(t, "alice@example.test", mailboxtest.EnglishMessage("d@example.net", "alice@example.test", "later", "later"))
	run()
	run()
	if got := maildirFiles(t, filepath.Join(dir, "mail", "INBOX")); len(got) != 5 {
		t.Fatalf("%d local INBOX messages after more syncs, want 5", len(got))
	}
	if got := maildirFiles(t, filepath.Join(dir, "mail", "Sent")); len(got) != 1 {
		t.Fatalf("%d local Sent messages, want 1", len(got))
	}
	if sentSel, _ = c.Select("Sent", nil).Wait(); sentSel.NumMessages != 1 {
		t.Fatalf("server Sent after more syncs: %d", sentSel.NumMessages)
	}
}

// maildirFiles lists a Maildir folder's messages, sorted.
func maildirFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, sub := range []string{"cur", "new"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, e := range ents {
			out = append(out, filepath.Join(dir, sub, e.Name()))
		}
	}
	sort.Strings(out)
	return out
}

// neomutt, driven in tmux, lists the inbox with its Japanese subjects,
// opens a message (which the server then records as read) and shows the
// folders.
func TestNeomuttInTmux(t *testing.T) {
	mutt, err := exec.LookPath("neomutt")
	if err != nil {
		peers.Missing(t, "neomutt not installed")
	}
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		peers.Missing(t, "tmux not installed")
	}
	n := start(t, nodeOptions{})
	n.aliceMail(t)
	dir := t.TempDir()
	_, port, _ := net.SplitHostPort(n.tlsAddr)
	rc := fmt.Sprintf(`set folder="imaps://alice%%40example.test@localhost:%s/"
set spoolfile="+INBOX"
set imap_pass="%s"
set ssl_ca_certificates_file="%s"
set ssl_verify_host=yes
set imap_check_subscribed=no
set mail_check=1
set timeout=1
set sort=date
set header_cache=""
set message_cachedir=""
set charset="utf-8"
set pager_stop=yes
set confirmappend=no
set wait_key=no
`, port, password, n.certFile(t))
	rcPath := filepath.Join(dir, "muttrc")
	if err := os.WriteFile(rcPath, []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "tmux.sock")
	tm := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(tmux, append([]string{"-S", sock}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	env := "LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=xterm-256color HOME=" + dir
	tm("new-session", "-d", "-x", "160", "-y", "40", "env "+env+" "+mutt+" -n -F "+rcPath)
	t.Cleanup(func() { exec.Command(tmux, "-S", sock, "kill-server").Run() })
	screen := func(want string) string {
		t.Helper()
		var s string
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			s = tm("capture-pane", "-p")
			if strings.Contains(s, want) {
				return s
			}
		}
		t.Fatalf("screen never showed %q:\n%s", want, s)
		return s
	}
	idx := screen("Lunch")
	if !strings.Contains(idx, "会議 ISO-2022-JP") || !strings.Contains(idx, "会議 Shift_JIS") || !strings.Contains(idx, "会議 EUC-JP") {
		t.Fatalf("index without the Japanese subjects:\n%s", idx)
	}
	// Open the English message (the last one, sorted by date it is where
	// the cursor lands or one keystroke away) by searching for it.
	tm("send-keys", "/", "Lunch", "Enter")
	tm("send-keys", "Enter")
	screen("See you at noon")
	tm("send-keys", "q")
	screen("Lunch")
	// neomutt stores flags when it syncs the mailbox ("$").
	tm("send-keys", "$")
	// The server knows it was read.
	var seen bool
	for deadline := time.Now().Add(20 * time.Second); !seen && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		list, err := n.Store.FolderMail(t.Context(), n.Tenant.ID, inboxID(t, n))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range list {
			seen = seen || m.HasFlag(`\Seen`)
		}
	}
	if !seen {
		t.Fatal("the message read in neomutt is not \\Seen on the server")
	}
	// The folder browser lists the special folders.
	tm("send-keys", "c", "?")
	screen("Mailboxes")
	tm("send-keys", "Tab")
	screen("Trash")
	tm("send-keys", "q", "q")
}

func inboxID(t *testing.T, n *node) int64 {
	t.Helper()
	mb, err := n.Svc.Mailbox(t.Context(), n.Tenant.ID, "alice@example.test")
	if err != nil {
		t.Fatal(err)
	}
	f, err := n.Svc.Folder(t.Context(), mb, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	return f.ID
}
