// Command benchwebmail measures the webmail over a large mailbox: the time
// to the first byte of the message list, of opening a 200 KB HTML message
// and of a search, as a logged-in user's browser asks for them.
//
// It opens a mailgate node in-process (SQLite store and local blobs in a
// scratch directory, no listeners), makes one user whose domain is hosted
// in the mailboxes (mode mailbox), delivers MESSAGES messages into the
// user's INBOX through the mailbox service, several at once (two thirds
// Japanese, one third English, a few KB each, one in twenty with an
// attachment, spread over a year; the fill is not measured), then serves the console on 127.0.0.1 and times SAMPLES requests
// of each kind over HTTP: the list (the first page, and pages further down
// by their cursors), the reading page of a 200 KB HTML message together
// with its sanitised body, and a search of every folder for a word
// (会議, 東京, 予算, invoice, budget...).
//
// The last line printed is
//
//	webmail p95-ms: list=A open=B search=C over N messages
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"os"
	"regexp"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/mailbox"
	"github.com/mailgate/mailgate/internal/passwd"
	"github.com/mailgate/mailgate/internal/store"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-webmail:", err)
		os.Exit(1)
	}
}

const (
	user     = "user@bench.test"
	password = "bench webmail passphrase"
)

var (
	jaSubjects = []string{"会議の議事録", "東京出張の件", "予算の見直しについて", "来週の打ち合わせ", "請求書の送付", "契約更新のご案内", "新製品の資料"}
	enSubjects = []string{"Project status", "Invoice for March", "Contract renewal", "Budget review", "Meeting notes", "Quarterly report"}
	jaWords    = []string{"会議", "東京", "予算", "議事録", "請求書", "契約"}
	enWords    = []string{"invoice", "budget", "contract", "project", "meeting"}
	searches   = []string{"会議", "東京", "予算", "議事録", "invoice", "budget", "contract"}
)

func run() error {
	messages := flag.Int("messages", 50000, "messages in the user's INBOX")
	samples := flag.Int("samples", 200, "timed requests of each kind")
	seed := flag.Uint64("seed", 1, "content seed")
	keep := flag.String("dir", "", "scratch directory to keep (default: a temporary one, removed)")
	cpuprof := flag.String("cpuprofile", "", "write a CPU profile of the timed requests to this file")
	fillers := flag.Int("fillers", 32, "deliveries running at once while the mailbox is filled")
	flag.Parse()
	if *messages < 1 || *samples < 1 || *fillers < 1 {
		return errors.New("-messages, -samples and -fillers must be positive")
	}
	dir := *keep
	if dir == "" {
		d, err := os.MkdirTemp("", "bench-webmail.")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	ctx := context.Background()
	cfg := config.Default()
	cfg.Hostname = "mx.bench.test"
	cfg.DataDir = dir
	cfg.Inbound.Listen, cfg.Outbound.Listen = nil, nil
	cfg.Limits.MinFreeBytes = 0
	cfg.HTTP.RequireTOTP = false
	a, err := app.Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), app.Options{})
	if err != nil {
		return fmt.Errorf("open node: %w", err)
	}
	defer a.Close()
	if a.Mailboxes == nil {
		return errors.New("the node has no mailboxes")
	}
	ten, err := a.Store.CreateTenant(ctx, "bench")
	if err != nil {
		return err
	}
	dom, err := a.Store.CreateDomain(ctx, ten.ID, "bench.test")
	if err != nil {
		return err
	}
	if _, err := a.Store.SetDomainMode(ctx, store.DomainMode{TenantID: ten.ID, DomainID: dom.ID, Mode: store.ModeMailbox, Changed: time.Now()}, store.ModePrimary); err != nil {
		return err
	}
	if _, err := a.Store.CreateUser(ctx, ten.ID, user); err != nil {
		return err
	}
	if err := a.Store.SetSetting(ctx, store.Setting{TenantID: ten.ID, Scope: store.ScopeTenant, Key: "mailbox.quota_mb", Value: "0"}); err != nil {
		return err
	}
	hash, err := passwd.Hash(password)
	if err != nil {
		return err
	}
	if _, err := a.Store.CreateAccount(ctx, store.Account{Login: user, Role: store.RoleUser, TenantID: ten.ID, Hash: hash, Created: time.Now()}); err != nil {
		return err
	}

	// The mailbox. It is filled through the mailbox service's own delivery
	// call, as the queue delivers, so every message is stored exactly as
	// real mail is; only several deliveries run at once (fillers), so the
	// store's group commit and the disk take them in batches instead of one
	// fsync each. The fill is set-up, not what is measured.
	start := time.Now()
	rnd := mrand.New(mrand.NewPCG(*seed, 7))
	year := time.Now().Add(-365 * 24 * time.Hour)
	big := *messages / 2
	type job struct {
		i   int
		raw []byte
	}
	jobs := make(chan job, 2**fillers)
	errs := make(chan error, *fillers)
	var wg sync.WaitGroup
	var done atomic.Int64
	for range *fillers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				meta := mailbox.DeliverMeta{QueueID: "b" + strconv.Itoa(j.i), MailFrom: "sender@example.net", Received: time.Now()}
				if err := a.Mailboxes.Deliver(ctx, ten.ID, user, bytes.NewReader(j.raw), meta); err != nil {
					errs <- fmt.Errorf("deliver %d: %w", j.i, err)
					for range jobs {
					}
					return
				}
				if n := done.Add(1); n%5000 == 0 {
					fmt.Printf("delivered %d messages (%.0f/s)\n", n, float64(n)/time.Since(start).Seconds())
				}
			}
		}()
	}
	for i := 0; i < *messages; i++ {
		jobs <- job{i, message(rnd, i, year.Add(time.Duration(i)*365*24*time.Hour/time.Duration(*messages)), i == big)}
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	fmt.Printf("mailbox of %d messages in %s\n", *messages, time.Since(start).Round(time.Second))
	mb, err := a.Mailboxes.Mailbox(ctx, ten.ID, user)
	if err != nil {
		return err
	}
	inbox, err := a.Mailboxes.Folder(ctx, mb, "INBOX")
	if err != nil {
		return err
	}
	bigUID, err := findBig(ctx, a, mb)
	if err != nil {
		return err
	}

	// The console and a logged-in client.
	ws, err := a.Web()
	if err != nil {
		return err
	}
	srv := httptest.NewServer(ws)
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: time.Minute, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{TLSClientConfig: &tls.Config{}, MaxIdleConnsPerHost: 4}}
	if err := login(c, srv.URL); err != nil {
		return err
	}

	// Cursors of pages further down, from following "next" links.
	listURL := fmt.Sprintf("%s/mail/f/%d", srv.URL, inbox.ID)
	pages := []string{listURL}
	next := regexp.MustCompile(`href="([^"]+)" id="mail-next"`)
	for u := listURL; len(pages) < 20; {
		body, err := get(c, u)
		if err != nil {
			return err
		}
		m := next.FindSubmatch(body)
		if m == nil {
			break
		}
		u = srv.URL + strings.ReplaceAll(string(m[1]), "&amp;", "&")
		pages = append(pages, u)
	}
	readURL := fmt.Sprintf("%s/mail/f/%d/m/%d", srv.URL, inbox.ID, bigUID)

	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var list, open, search []float64
	for i := 0; i < *samples; i++ {
		// Half the list requests are the first page, as a user opening the
		// folder; the others go further down.
		u := listURL
		if i%2 == 1 {
			u = pages[i%len(pages)]
		}
		d, err := ttfb(c, u)
		if err != nil {
			return err
		}
		list = append(list, d)
		d1, err := ttfb(c, readURL)
		if err != nil {
			return err
		}
		d2, err := ttfb(c, readURL+"/body")
		if err != nil {
			return err
		}
		open = append(open, d1+d2)
		d, err = ttfb(c, srv.URL+"/mail/search?"+url.Values{"q": {searches[i%len(searches)]}}.Encode())
		if err != nil {
			return err
		}
		search = append(search, d)
	}
	// The first opening renders and sanitises the message; the reader keeps
	// that rendering for its frame and for opening it again, so the later
	// ones mostly measure the rest of the request.
	fmt.Printf("open   first=%.1f ms (page and frame, message rendered once)\n", open[0])
	for _, x := range []struct {
		name string
		v    []float64
	}{{"list", list}, {"open", open}, {"search", search}} {
		sort.Float64s(x.v)
		fmt.Printf("%-6s p50=%.1f ms p95=%.1f ms max=%.1f ms\n", x.name, pct(x.v, 50), pct(x.v, 95), x.v[len(x.v)-1])
	}
	fmt.Printf("webmail p95-ms: list=%.0f open=%.0f search=%.0f over %d messages\n", pct(list, 95), pct(open, 95), pct(search, 95), *messages)
	return nil
}

// message is one generated mail; big is the 200 KB HTML message.
func message(r *mrand.Rand, i int, date time.Time, big bool) []byte {
	ja := r.IntN(3) < 2
	var subject, body string
	if ja {
		subject = jaSubjects[r.IntN(len(jaSubjects))]
		var b strings.Builder
		for b.Len() < 1000+r.IntN(3000) {
			b.WriteString("お世話になっております。" + jaWords[r.IntN(len(jaWords))] + "の件でご連絡します。よろしくお願いいたします。\n")
		}
		body = b.String()
	} else {
		subject = enSubjects[r.IntN(len(enSubjects))]
		var b strings.Builder
		for b.Len() < 1000+r.IntN(3000) {
			b.WriteString("Hello, a note about the " + enWords[r.IntN(len(enWords))] + " we discussed. Best regards.\n")
		}
		body = b.String()
	}
	var m bytes.Buffer
	fmt.Fprintf(&m, "From: Sender %d <sender%d@example.net>\r\nTo: %s\r\nSubject: =?UTF-8?B?%s?=\r\nDate: %s\r\nMessage-ID: <m%d@example.net>\r\nMIME-Version: 1.0\r\n",
		i%300, i%300, user, base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("%s #%d", subject, i))), date.Format(time.RFC1123Z), i)
	switch {
	case big:
		m.WriteString("Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n<html><body>")
		for m.Len() < 200<<10 {
			fmt.Fprintf(&m, "<table><tr><td style=\"color:#333\"><p>%s</p><a href=\"https://example.net/doc/%d\">資料</a><img src=\"https://example.net/i/%d.png\"></td></tr></table>\r\n", body[:min(len(body), 300)], m.Len(), m.Len())
		}
		m.WriteString("</body></html>\r\n")
	case i%20 == 0:
		m.WriteString("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body +
			"\r\n--b\r\nContent-Type: application/pdf; name=doc.pdf\r\nContent-Disposition: attachment; filename=doc.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n")
		for n := 0; n < 20<<10+r.IntN(200<<10); n += 76 {
			m.WriteString(strings.Repeat("QUJD", 19) + "\r\n")
		}
		m.WriteString("--b--\r\n")
	default:
		m.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body)
	}
	return m.Bytes()
}

// findBig is the UID of the 200 KB message (the largest).
func findBig(ctx context.Context, a *app.App, mb store.Mailbox) (uint32, error) {
	page, _, err := a.Mailboxes.List(ctx, mb, store.MailQuery{Sort: store.MailSortSize, Limit: 1})
	if err != nil {
		return 0, err
	}
	if len(page) == 0 {
		return 0, errors.New("empty mailbox")
	}
	return page[0].Message.UID, nil
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func login(c *http.Client, base string) error {
	body, err := get(c, base+"/login")
	if err != nil {
		return err
	}
	m := csrfRe.FindSubmatch(body)
	if m == nil {
		return errors.New("login page without a CSRF token")
	}
	resp, err := c.PostForm(base+"/login", url.Values{"csrf": {string(m[1])}, "login": {user}, "password": {password}})
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		return fmt.Errorf("login: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	return nil
}

func get(c *http.Client, u string) ([]byte, error) {
	resp, err := c.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %d", u, resp.StatusCode)
	}
	return b, err
}

// ttfb is the time to the first byte of u's answer, in ms; the answer is
// read in full and must be 200.
func ttfb(c *http.Client, u string) (float64, error) {
	var first time.Time
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{GotFirstResponseByte: func() { first = time.Now() }}))
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %d", u, resp.StatusCode)
	}
	return float64(first.Sub(start).Microseconds()) / 1000, nil
}

func pct(sorted []float64, p int) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p+99)/100 - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
