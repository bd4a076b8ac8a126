package app_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailgate/mailgate/internal/admin"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/continuity"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// graphImport is one message imported through the fake Graph API.
type graphImport struct {
	User, Folder, MIME string
	Read               bool
}

// fakeGraph is Microsoft Graph's token endpoint, importMime and the read
// flag, enough for the hand-back; unexpected requests are reported.
type fakeGraph struct {
	mu       sync.Mutex
	imports  map[string]*graphImport
	problems []string
}

func newFakeGraph(t *testing.T) (*fakeGraph, *httptest.Server) {
	f := &fakeGraph{imports: map[string]*graphImport{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/contoso.example/oauth2/v2.0/token" {
			io.WriteString(w, `{"access_token":"graph-token","token_type":"Bearer","expires_in":3600}`)
			return
		}
		rest, ok := strings.CutPrefix(r.URL.Path, "/beta/users/")
		user, rest, _ := strings.Cut(rest, "/")
		if !ok || r.Header.Get("Authorization") != "Bearer graph-token" {
			f.problems = append(f.problems, r.Method+" "+r.URL.String())
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch {
		case r.Method == http.MethodGet && rest == "messages":
			io.WriteString(w, `{"value":[]}`)
		case r.Method == http.MethodPost && strings.HasPrefix(rest, "mailFolders/") && strings.HasSuffix(rest, "/importMime"):
			b, _ := io.ReadAll(r.Body)
			raw, err := base64.StdEncoding.DecodeString(string(b))
			if err != nil {
				f.problems = append(f.problems, "import body: "+err.Error())
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			id := fmt.Sprintf("m%d", len(f.imports)+1)
			f.imports[id] = &graphImport{User: user, Folder: strings.TrimSuffix(strings.TrimPrefix(rest, "mailFolders/"), "/importMime"), MIME: string(raw)}
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, `{"id":%q,"isRead":false}`, id)
		case r.Method == http.MethodPatch && strings.HasPrefix(rest, "messages/"):
			if m := f.imports[strings.TrimPrefix(rest, "messages/")]; m != nil {
				m.Read = true
			}
			io.WriteString(w, `{}`)
		default:
			f.problems = append(f.problems, r.Method+" "+r.URL.String())
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

// bySubject returns the imports by the Subject of their message.
func (f *fakeGraph) bySubject() (map[string]graphImport, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]graphImport{}
	for _, m := range f.imports {
		_, rest, _ := strings.Cut(m.MIME, "Subject: ")
		subj, _, _ := strings.Cut(rest, "\r\n")
		out[subj] = *m
	}
	return out, append([]string(nil), f.problems...)
}

// TestEmergencyMailboxesEndToEnd is one outage on a node with its real
// mailboxes: mail arrives while the domain is in emergency mode, the user
// reads some of it over IMAP and their mail app stores what they sent in
// the Sent folder (and a draft in Drafts). The console's per-user numbers
// count it (received, unread, sent, last login); after the switch back,
// the hand-back over Microsoft Graph puts the received mail in the Inbox
// and the sent mail in Sent Items, and nothing else.
func TestEmergencyMailboxesEndToEnd(t *testing.T) {
	t.Parallel()
	graph, srv := newFakeGraph(t)
	n := mgtest.Start(t, mgtest.Options{IMAP: true, NoChecks: true, Config: func(c *config.Config) {
		c.Continuity.HandbackTick = config.D(100 * time.Millisecond)
		c.Continuity.GraphURL, c.Continuity.GraphLoginURL = srv.URL, srv.URL
	}})
	ctx := context.Background()
	op := admin.Operator("cli:test").In(n.Tenant.ID)
	svc := n.Admin()
	if _, err := svc.SetHandbackCredentials(ctx, op, continuity.PathGraph,
		[]byte(`{"tenant":"contoso.example","client_id":"app-1","client_secret":"s3cret"}`)); err != nil {
		t.Fatal(err)
	}
	if err := svc.SetSetting(ctx, op, store.ScopeDomain, "example.test", continuity.KeyHandbackPath, continuity.PathGraph); err != nil {
		t.Fatal(err)
	}
	n.MailUser(t, "alice@example.test", "alice's long password")
	if _, err := svc.SwitchContinuity(ctx, op, "example.test", store.ModeEmergency, "drill"); err != nil {
		t.Fatal(err)
	}
	for _, subj := range []string{"read-me", "unread"} {
		if err := sendPlain(n.InboundAddr(), "sender@remote.test", "alice@example.test", "From: sender@remote.test\r\nSubject: "+subj+"\r\n\r\nhello\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	usage := func() continuity.UserUsage {
		t.Helper()
		us, err := svc.EmergencyUsage(ctx, op, "example.test")
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range us {
			if u.Address == "alice@example.test" {
				return u
			}
		}
		t.Fatalf("no usage for alice: %+v", us)
		return continuity.UserUsage{}
	}
	mgtest.WaitFor(t, 20*time.Second, "both messages in the mailbox", func() bool { return usage().Received == 2 })

	c, err := imapclient.DialTLS(n.IMAPTLSAddr(), &imapclient.Options{TLSConfig: n.IMAPClientTLS(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice@example.test", "alice's long password").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	crit := &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "read-me"}}}
	found, err := c.UIDSearch(crit, nil).Wait()
	if err != nil || len(found.AllUIDs()) != 1 {
		t.Fatalf("search: %v %v", found, err)
	}
	// Reading the body sets \Seen, as a mail app does.
	if _, err := c.Fetch(imap.UIDSetNum(found.AllUIDs()...), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect(); err != nil {
		t.Fatal(err)
	}
	appendTo := func(folder, subj string, flags ...imap.Flag) {
		t.Helper()
		msg := "From: alice@example.test\r\nTo: partner@remote.test\r\nSubject: " + subj + "\r\nMessage-ID: <" + subj + "@example.test>\r\n\r\nsent during the outage\r\n"
		cmd := c.Append(folder, int64(len(msg)), &imap.AppendOptions{Flags: flags})
		if _, err := io.WriteString(cmd, msg); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := cmd.Wait(); err != nil {
			t.Fatalf("append to %s: %v", folder, err)
		}
	}
	appendTo("Sent", "my-reply", imap.FlagSeen)
	appendTo("Drafts", "my-draft", imap.FlagDraft)

	u := usage()
	if u.Received != 2 || u.Unread != 1 || u.Sent != 1 || u.HandedBack != 0 || u.LastLogin.IsZero() {
		t.Fatalf("usage during the outage: %+v", u)
	}

	if _, err := svc.SwitchContinuity(ctx, op, "example.test", store.ModePrimary, "recovered"); err != nil {
		t.Fatal(err)
	}
	mgtest.WaitFor(t, 30*time.Second, "hand-back done", func() bool {
		st, err := svc.HandbackStatus(ctx, op, "example.test")
		return err == nil && len(st) == 1 && st[0].State == store.HandbackDone
	})
	got, problems := graph.bySubject()
	if len(problems) > 0 {
		t.Fatalf("unexpected Graph requests: %v", problems)
	}
	want := map[string]graphImport{
		"read-me":  {User: "alice@example.test", Folder: "inbox", Read: true},
		"unread":   {User: "alice@example.test", Folder: "inbox", Read: false},
		"my-reply": {User: "alice@example.test", Folder: "sentitems", Read: true},
	}
	if len(got) != len(want) {
		t.Fatalf("imported %v, want the subjects of %v", got, want)
	}
	for subj, w := range want {
		g := got[subj]
		if g.User != w.User || g.Folder != w.Folder || g.Read != w.Read {
			t.Errorf("%s imported as %+v, want %+v", subj, g, w)
		}
	}
	if u := usage(); u.HandedBack != 3 || u.Sent != 1 || u.Received != 2 {
		t.Fatalf("usage after the hand-back: %+v", u)
	}
}
