package app_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"mime/quotedprintable"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/dnsx/dnstest"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/clamdtest"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// These tests drive the whole inbound pipeline over SMTP with the real
// clamd and a loopback DNS server, as a mail administrator would see it.

func send(t *testing.T, n *mgtest.Node, from string, to []string, data string) error {
	t.Helper()
	c, err := smtp.Dial(n.InboundAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	w.Write([]byte(data))
	return w.Close()
}

func zipOf(t *testing.T, name string, data []byte) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, err := zw.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	zw.Close()
	return b.Bytes()
}

func withAttachment(subject, name, ctype, cte string, body []byte) string {
	var enc string
	switch cte {
	case "base64":
		enc = base64.StdEncoding.EncodeToString(body)
		var lines []string
		for len(enc) > 76 {
			lines, enc = append(lines, enc[:76]), enc[76:]
		}
		enc = strings.Join(append(lines, enc), "\r\n")
	case "quoted-printable":
		var b bytes.Buffer
		w := quotedprintable.NewWriter(&b)
		w.Write(body)
		w.Close()
		enc = strings.ReplaceAll(strings.ReplaceAll(b.String(), "\r\n", "\n"), "\n", "\r\n")
	}
	return "From: sender@example.net\r\nSubject: " + subject + "\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nPlease see the attachment.\r\n" +
		"--b1\r\nContent-Type: " + ctype + "; name=\"" + name + "\"\r\nContent-Disposition: attachment; filename=\"" + name + "\"\r\n" +
		"Content-Transfer-Encoding: " + cte + "\r\n\r\n" + enc + "\r\n--b1--\r\n"
}

func startWithClamd(t *testing.T) (*mgtest.Node, *clamdtest.Clamd) {
	cd := clamdtest.Start(t)
	n := mgtest.Start(t, mgtest.Options{Config: func(c *config.Config) {
		c.Checks.Clamd = cd.Socket()
	}})
	ctx := context.Background()
	n.Store.SetSetting(ctx, store.Setting{TenantID: n.Tenant.ID, Scope: store.ScopeTenant, Key: "notify.admin", Value: "admin@example.test"})
	n.Store.CreateUser(ctx, n.Tenant.ID, "admin@example.test")
	return n, cd
}

func TestVirusesThroughSMTP(t *testing.T) {
	t.Parallel()
	n, _ := startWithClamd(t)
	eicar := clamdtest.EICAR()
	nested := zipOf(t, "eicar.com", eicar)
	for i := 0; i < 4; i++ {
		nested = zipOf(t, fmt.Sprintf("level%d.zip", i+2), nested)
	}
	cases := []struct {
		name, data string
	}{
		{"base64", withAttachment("b64", "eicar.com", "application/octet-stream", "base64", eicar)},
		{"qp", withAttachment("qp", "eicar.txt", "text/plain", "quoted-printable", eicar)},
		{"zip", withAttachment("zip", "eicar.zip", "application/zip", "base64", zipOf(t, "eicar.com", eicar))},
		{"nested5", withAttachment("nested", "deep.zip", "application/zip", "base64", nested)},
	}
	for _, tc := range cases {
		if err := send(t, n, "sender@example.net", []string{"alice@example.test"}, tc.data); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
	// Infected attachments are removed and the message delivered with a notice.
	mgtest.WaitFor(t, 30*time.Second, "four cleaned deliveries", func() bool {
		k := 0
		for _, m := range n.Down.Messages() {
			if m.To[0] == "alice@example.test" {
				k++
			}
		}
		return k == 4
	})
	for _, m := range n.Down.Messages() {
		if m.To[0] != "alice@example.test" {
			continue
		}
		b := string(m.Data)
		if strings.Contains(b, string(eicar)) || strings.Contains(b, base64.StdEncoding.EncodeToString(eicar)[:40]) {
			t.Fatalf("virus delivered:\n%s", b)
		}
		if !strings.Contains(b, "Please see the attachment.") {
			t.Fatalf("body lost:\n%s", b)
		}
	}
	// The tenant administrator was warned (null sender, so it cannot loop).
	mgtest.WaitFor(t, 20*time.Second, "admin notices", func() bool {
		k := 0
		for _, m := range n.Down.Messages() {
			if m.To[0] == "admin@example.test" && m.From == "" {
				k++
			}
		}
		return k == 4
	})

	// A virus in the body itself drops the message (seed default).
	body := "From: sender@example.net\r\nSubject: body virus\r\n\r\n" + string(eicar) + "\r\n"
	before := n.Down.Count()
	if err := send(t, n, "sender@example.net", []string{"bob@example.test"}, body); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	for _, m := range n.Down.Messages()[before:] {
		if m.To[0] == "bob@example.test" {
			t.Fatal("message with an infected body delivered")
		}
	}
}

func TestZipBombAndScannerDown(t *testing.T) {
	t.Parallel()
	n, cd := startWithClamd(t)
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, _ := zw.Create("zeros.bin")
	chunk := make([]byte, 1<<20)
	for i := 0; i < 200; i++ { // 200 MiB of zeros, about 200 KB compressed: ratio ~1000:1
		w.Write(chunk)
	}
	zw.Close()
	bomb := zipOf(t, "inner.zip", b.Bytes())
	if err := send(t, n, "sender@example.net", []string{"alice@example.test"}, withAttachment("bomb", "bomb.zip", "application/zip", "base64", bomb)); err != nil {
		t.Fatal(err)
	}
	// Unscannable → quarantined by default, never delivered as clean.
	mgtest.WaitFor(t, 30*time.Second, "bomb quarantined", func() bool {
		qs, _ := n.Store.QuarantineItems(context.Background(), n.Tenant.ID, "alice@example.test", store.QHeld, 10)
		return len(qs) == 1 && strings.Contains(qs[0].Reasons, "UNSCANNABLE")
	})
	if n.Down.Count() != 0 {
		t.Fatal("zip bomb delivered")
	}

	// clamd stopped: a message with an attachment is deferred (451), nothing
	// is accepted unscanned; one that is only text needs no scanner.
	cd.Stop()
	err := send(t, n, "sender@example.net", []string{"alice@example.test"},
		withAttachment("while down", "report.pdf", "application/pdf", "base64", []byte("%PDF-1.4 report")))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 451 {
		t.Fatalf("scanner down, message with an attachment: %v, want 451", err)
	}
	if err := send(t, n, "sender@example.net", []string{"alice@example.test"}, "Subject: while down\r\n\r\nhello\r\n"); err != nil {
		t.Fatalf("scanner down, text-only message: %v, want it accepted", err)
	}
}

func TestDMARCRejectAndJapaneseDenyList(t *testing.T) {
	t.Parallel()
	dns := dnstest.Start(t)
	dns.Add(`bank.example. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"`)
	dns.Add(`_dmarc.bank.example. 300 IN TXT "v=DMARC1; p=reject"`)
	dns.Add(`example.net. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`)
	n := mgtest.Start(t, mgtest.Options{Config: func(c *config.Config) { c.DNS.Resolver = dns.Addr() }})
	ctx := context.Background()

	// A spoofed From of a p=reject domain is refused during DATA.
	err := send(t, n, "attacker@example.net", []string{"alice@example.test"},
		"From: Bank <security@bank.example>\r\nSubject: verify your account\r\n\r\nclick\r\n")
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 || !strings.Contains(se.Message, "bank.example") {
		t.Fatalf("DMARC reject: %v", err)
	}
	// Duplicate From headers never pass DMARC for the spoofed domain either.
	err = send(t, n, "attacker@example.net", []string{"alice@example.test"},
		"From: friend@example.net\r\nFrom: security@bank.example\r\nSubject: x\r\n\r\nclick\r\n")
	if !errors.As(err, &se) || se.Code != 550 {
		t.Fatalf("duplicate From: %v", err)
	}

	// An ISO-2022-JP subject is matched by a Japanese deny entry and dropped silently.
	if _, err := n.Store.AddListEntry(ctx, store.ListEntry{TenantID: n.Tenant.ID, Scope: "domain", Owner: "example.test",
		Kind: "deny", Field: "subject", Mode: "contains", Value: "未承諾広告"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)                  // the list index refreshes at most once a second
	subj := "=?ISO-2022-JP?B?GyRCTCQ+NUJ6OS05cCIoGyhC?=" // 未承諾広告※
	if err := send(t, n, "sender@example.net", []string{"alice@example.test", "bob@example.test"},
		"From: ad@example.net\r\nSubject: "+subj+" sale\r\n\r\nbuy\r\n"); err != nil {
		t.Fatalf("deny list must drop silently, not reject: %v", err)
	}
	if err := send(t, n, "sender@example.net", []string{"alice@example.test"}, "From: friend@example.net\r\nSubject: hello\r\n\r\nhi\r\n"); err != nil {
		t.Fatal(err)
	}
	mgtest.WaitFor(t, 10*time.Second, "the clean message", func() bool { return n.Down.Count() == 1 })
	got := string(n.Down.Messages()[0].Data)
	if !strings.Contains(got, "Subject: hello") {
		t.Fatalf("wrong message delivered:\n%s", got)
	}
	if !strings.Contains(got, "spf=pass smtp.mailfrom=example.net") {
		t.Fatalf("Authentication-Results missing SPF pass:\n%s", got)
	}
	ms, _ := n.Store.FindMessages(ctx, n.Tenant.ID, "未承諾広告", 10)
	if len(ms) != 1 {
		t.Fatalf("tracking by Japanese subject found %d messages", len(ms))
	}
	_, rs, _ := n.Store.Message(ctx, n.Tenant.ID, ms[0].ID)
	for _, r := range rs {
		if r.State != store.Discarded {
			t.Fatalf("%s: %s, want discarded", r.Addr, r.State)
		}
	}
}

// The node's inbound and outbound virus checks share one client of the
// local clamd, so one session pool: a message scanned on the way in and
// one scanned on the way out, one after the other, leave one IDSESSION
// connection open, not one per pipeline. Each open connection holds one of
// clamd's MaxQueue slots.
func TestInboundAndOutboundShareClamdSessions(t *testing.T) {
	t.Parallel()
	n, cd := startWithClamd(t)
	if err := send(t, n, "sender@example.net", []string{"alice@example.test"},
		withAttachment("in", "report.pdf", "application/pdf", "base64", []byte("%PDF-1.4 quarterly report"))); err != nil {
		t.Fatal(err)
	}
	mgtest.WaitFor(t, 30*time.Second, "inbound delivery", func() bool { return n.Down.Count() == 1 })
	if d := string(n.Down.Messages()[0].Data); !strings.Contains(d, "X-Mailgate-Virus-Scan: clean (ClamAV") {
		t.Fatalf("inbound message not scanned by clamd:\n%s", d)
	}
	// Outbound mail carries no scan header out; a virus shows it was scanned.
	out := strings.Replace(withAttachment("out", "tool.com", "application/octet-stream", "base64", clamdtest.EICAR()),
		"From: sender@example.net", "From: alice@example.test", 1)
	c, err := smtp.Dial(n.OutboundAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.SendMail("alice@example.test", []string{"partner@example.net"}, strings.NewReader(out))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code/100 != 5 || !strings.Contains(strings.ToLower(se.Message), "virus") {
		t.Fatalf("outbound virus: %v, want a 5xx naming the virus", err)
	}
	// A connection for one command (the VERSION the header names) may
	// still be closing; the idle sessions stay for ten seconds.
	deadline := time.Now().Add(3 * time.Second)
	got := unixConns(t, cd.Socket())
	for got != 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		got = unixConns(t, cd.Socket())
	}
	if got != 1 {
		t.Fatalf("%d connections open to clamd after two scans one after the other, want 1 (one shared session)", got)
	}
}

// unixConns counts the connected sockets whose address is path: clamd's
// side of each connection made to its listening socket.
func unixConns(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		t.Skipf("no /proc/net/unix: %v", err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		// Num RefCount Protocol Flags Type St Inode Path; St 03 is connected.
		if len(f) == 8 && f[5] == "03" && f[7] == path {
			n++
		}
	}
	return n
}
