package continuity_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/continuity"
	"github.com/mailgate/mailgate/internal/store"
)

// imported is one message a fake API stored.
type imported struct {
	User, Folder string
	Labels       []string
	MIME         string
	Read         bool
}

// fakeAPI is the common part of the Graph and Gmail fakes: it records
// what was imported and every deviation from the protocol it checks.
type fakeAPI struct {
	t        *testing.T
	mu       sync.Mutex
	msgs     map[string]*imported // by ID
	problems []string
	tokens   int
	// lose makes the import of a message whose MIME contains it answer
	// 503 after storing it, once (a response lost on the way back).
	lose string
}

func (f *fakeAPI) problem(format string, a ...any) {
	f.mu.Lock()
	f.problems = append(f.problems, fmt.Sprintf(format, a...))
	f.mu.Unlock()
}

func (f *fakeAPI) check() {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.problems {
		f.t.Error(p)
	}
}

func (f *fakeAPI) store(m *imported) (id string, lost bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id = fmt.Sprintf("id%d", len(f.msgs)+1)
	f.msgs[id] = m
	if f.lose != "" && strings.Contains(m.MIME, f.lose) {
		f.lose = ""
		return id, true
	}
	return id, false
}

func (f *fakeAPI) find(user, msgID string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, m := range f.msgs {
		if m.User == user && strings.Contains(m.MIME, "Message-ID: "+msgID+"\r\n") {
			return id
		}
	}
	return ""
}

func (f *fakeAPI) all() map[string]imported {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]imported{}
	for id, m := range f.msgs {
		out[id] = *m
	}
	return out
}

// graphFake is Microsoft Graph's token endpoint and importMime, checking
// each request.
func graphFake(t *testing.T) (*fakeAPI, *httptest.Server) {
	f := &fakeAPI{t: t, msgs: map[string]*imported{}}
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/contoso.example/oauth2/v2.0/token" {
			r.ParseForm()
			if r.Method != http.MethodPost || r.Form.Get("grant_type") != "client_credentials" || r.Form.Get("client_id") != "app-1" ||
				r.Form.Get("client_secret") != "s3cret" || r.Form.Get("scope") != srv.URL+"/.default" {
				f.problem("graph token request: %s %v", r.Method, r.Form)
				http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
				return
			}
			f.mu.Lock()
			f.tokens++
			f.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"access_token":"graph-token","token_type":"Bearer","expires_in":3600}`)
			return
		}
		if r.Header.Get("Authorization") != "Bearer graph-token" {
			f.problem("graph %s %s: authorization %q", r.Method, r.URL.Path, r.Header.Get("Authorization"))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		rest, ok := strings.CutPrefix(r.URL.Path, "/beta/users/")
		user, rest, _ := strings.Cut(rest, "/")
		if !ok || !strings.Contains(user, "@example.test") {
			f.problem("graph path %q", r.URL.Path)
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodGet && rest == "messages":
			q := r.URL.Query()
			filter := q.Get("$filter")
			mid, ok := strings.CutPrefix(filter, "internetMessageId eq '")
			if !ok || !strings.HasSuffix(mid, "'") || q.Get("$select") != "id" {
				f.problem("graph search %v", q)
			}
			if id := f.find(user, strings.TrimSuffix(mid, "'")); id != "" {
				fmt.Fprintf(w, `{"value":[{"id":%q}]}`, id)
				return
			}
			io.WriteString(w, `{"value":[]}`)
		case r.Method == http.MethodPost && strings.HasPrefix(rest, "mailFolders/") && strings.HasSuffix(rest, "/importMime"):
			folder := strings.TrimSuffix(strings.TrimPrefix(rest, "mailFolders/"), "/importMime")
			if r.Header.Get("Content-Type") != "text/plain" || (folder != "inbox" && folder != "sentitems") {
				f.problem("graph import: folder %q, content type %q", folder, r.Header.Get("Content-Type"))
			}
			b, _ := io.ReadAll(r.Body)
			mimeBytes, err := base64.StdEncoding.DecodeString(string(b))
			if err != nil {
				f.problem("graph import body is not base64: %v", err)
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			id, lost := f.store(&imported{User: user, Folder: folder, MIME: string(mimeBytes)})
			if lost {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, `{"id":%q,"isRead":false,"isDraft":false}`, id)
		case r.Method == http.MethodPatch && strings.HasPrefix(rest, "messages/"):
			var in map[string]any
			if err := json.NewDecoder(r.Body).Decode(&in); err != nil || len(in) != 1 || in["isRead"] != true || r.Header.Get("Content-Type") != "application/json" {
				f.problem("graph patch %v %v", in, err)
			}
			f.mu.Lock()
			if m := f.msgs[strings.TrimPrefix(rest, "messages/")]; m != nil {
				m.Read = true
			} else {
				f.problem("graph patch of unknown %s", rest)
			}
			f.mu.Unlock()
			io.WriteString(w, `{}`)
		default:
			f.problem("graph: unexpected %s %s", r.Method, r.URL)
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

// TestHandbackGraph: received mail goes to the user's Inbox and sent mail
// to Sent Items, read state kept, with one token for the tenant; a
// message whose response was lost is found by its Message-ID at the next
// attempt instead of being imported twice.
func TestHandbackGraph(t *testing.T) {
	e := newEnv(t)
	f, srv := graphFake(t)
	f.lose = "Subject: bobs\r\n"
	if _, err := e.svc.SetCredentials(e.ctx, e.tenant.ID, continuity.PathGraph,
		[]byte(`{"tenant":"contoso.example","client_id":"app-1","client_secret":"s3cret"}`)); err != nil {
		t.Fatal(err)
	}
	if info, err := e.svc.Credentials(e.ctx, e.tenant.ID, continuity.PathGraph); err != nil || info.ID != "app-1" || !info.Configured {
		t.Fatalf("credentials: %+v %v", info, err)
	}
	e.set(store.ScopeDomain, "example.test", continuity.KeyHandbackPath, continuity.PathGraph)
	e.deliverToMailbox("q1", "s@remote.test", "alice@example.test", msg("alices"))
	e.mb.SetSeen(1)
	e.deliverToMailbox("q2", "s@remote.test", "bob@example.test", msg("bobs"))
	e.mb.AddSent(e.tenant.ID, "alice@example.test", []byte(msg("sentbyalice")))
	if _, err := e.svc.StartHandback(e.ctx, e.dom, "", "it"); err != nil {
		t.Fatal(err)
	}
	h := e.handback("n1")
	h.HTTP = srv.Client()
	h.Endpoints = continuity.Endpoints{GraphURL: srv.URL, GraphLoginURL: srv.URL}
	if _, err := h.Tick(e.ctx); err != nil {
		t.Fatal(err)
	}
	ps, _ := e.svc.HandbackStatus(e.ctx, e.tenant.ID, "example.test")
	if p := ps[0]; p.Done != 2 || p.Deferred != 1 {
		t.Fatalf("first pass: %+v", p)
	}
	e.clk.Advance(2 * time.Minute)
	if _, err := h.Tick(e.ctx); err != nil {
		t.Fatal(err)
	}
	f.check()
	got := f.all()
	if len(got) != 3 {
		t.Fatalf("imported %d messages, want 3: %+v", len(got), got)
	}
	want := map[string]imported{
		"alices":      {User: "alice@example.test", Folder: "inbox", Read: true},
		"bobs":        {User: "bob@example.test", Folder: "inbox", Read: false},
		"sentbyalice": {User: "alice@example.test", Folder: "sentitems", Read: true},
	}
	for _, m := range got {
		var subj string
		for s := range want {
			if strings.Contains(m.MIME, "Subject: "+s+"\r\n") {
				subj = s
			}
		}
		w := want[subj]
		if subj == "" || m.User != w.User || m.Folder != w.Folder || m.Read != w.Read || m.MIME != msg(subj) {
			t.Errorf("imported %+v, want %+v", m, w)
		}
	}
	if f.tokens != 1 {
		t.Errorf("%d token requests, want 1", f.tokens)
	}
	ps, _ = e.svc.HandbackStatus(e.ctx, e.tenant.ID, "example.test")
	if p := ps[0]; p.Done != 3 || p.State != store.HandbackDone {
		t.Fatalf("job: %+v", p)
	}
	for _, m := range e.mb.Messages() {
		if m.HandedBack.IsZero() || !strings.HasPrefix(m.How, "graph: ") {
			t.Errorf("message %d: %v %q", m.ID, m.HandedBack, m.How)
		}
	}
}

// gmailFake is Google's token endpoint (JWT bearer grant, RFC 7523) and
// Gmail's messages.import, checking each request.
func gmailFake(t *testing.T, pub *rsa.PublicKey) (*fakeAPI, *httptest.Server) {
	f := &fakeAPI{t: t, msgs: map[string]*imported{}}
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			r.ParseForm()
			sub, err := verifyAssertion(pub, r.Form.Get("assertion"), srv.URL+"/token")
			if r.Form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || err != nil {
				f.problem("gmail token request %v: %v", r.Form, err)
				http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
				return
			}
			f.mu.Lock()
			f.tokens++
			f.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"access_token":"gmail-token-%s","token_type":"Bearer","expires_in":3600}`, sub)
			return
		}
		var user string
		for _, pre := range []string{"/gmail/v1/users/", "/upload/gmail/v1/users/"} {
			if rest, ok := strings.CutPrefix(r.URL.Path, pre); ok {
				user, _, _ = strings.Cut(rest, "/")
			}
		}
		if r.Header.Get("Authorization") != "Bearer gmail-token-"+user || user == "" {
			f.problem("gmail %s %s: authorization %q", r.Method, r.URL.Path, r.Header.Get("Authorization"))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		q := r.URL.Query()
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/gmail/v1/users/"+user+"/messages":
			mid, ok := strings.CutPrefix(q.Get("q"), "rfc822msgid:")
			if !ok {
				f.problem("gmail search %v", q)
			}
			if id := f.find(user, "<"+mid+">"); id != "" {
				fmt.Fprintf(w, `{"messages":[{"id":%q}],"resultSizeEstimate":1}`, id)
				return
			}
			io.WriteString(w, `{"resultSizeEstimate":0}`)
		case r.Method == http.MethodPost && r.URL.Path == "/upload/gmail/v1/users/"+user+"/messages/import":
			if q.Get("uploadType") != "multipart" || q.Get("internalDateSource") != "dateHeader" || q.Get("neverMarkSpam") != "true" {
				f.problem("gmail import query %v", q)
			}
			mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if err != nil || mt != "multipart/related" {
				f.problem("gmail import content type %q", r.Header.Get("Content-Type"))
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			mr := multipart.NewReader(r.Body, params["boundary"])
			meta, err := mr.NextPart()
			var m struct {
				LabelIDs []string `json:"labelIds"`
			}
			if err != nil || meta.Header.Get("Content-Type") != "application/json; charset=UTF-8" || json.NewDecoder(meta).Decode(&m) != nil {
				f.problem("gmail import metadata part: %v", err)
			}
			raw, err := mr.NextPart()
			if err != nil || raw.Header.Get("Content-Type") != "message/rfc822" {
				f.problem("gmail import message part: %v", err)
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			b, _ := io.ReadAll(raw)
			if _, err := mr.NextPart(); err != io.EOF {
				f.problem("gmail import: more parts: %v", err)
			}
			id, lost := f.store(&imported{User: user, Labels: m.LabelIDs, MIME: string(b)})
			if lost {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			fmt.Fprintf(w, `{"id":%q,"threadId":"t1","labelIds":%q}`, id, m.LabelIDs)
		default:
			f.problem("gmail: unexpected %s %s", r.Method, r.URL)
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

// verifyAssertion checks a service account's JWT (RS256) for the token
// endpoint aud and returns its subject.
func verifyAssertion(pub *rsa.PublicKey, jws, aud string) (string, error) {
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("not a JWS")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return "", err
	}
	h := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig); err != nil {
		return "", fmt.Errorf("signature: %v", err)
	}
	hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
	var head struct{ Alg, Kid string }
	json.Unmarshal(hdr, &head)
	body, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct {
		Iss, Sub, Scope, Aud string
		Iat, Exp             int64
	}
	if err := json.Unmarshal(body, &c); err != nil {
		return "", err
	}
	if head.Alg != "RS256" || head.Kid != "key-1" || c.Iss != "mailgate@project.iam.example" || c.Aud != aud || c.Exp <= c.Iat ||
		c.Scope != "https://www.googleapis.com/auth/gmail.insert https://www.googleapis.com/auth/gmail.readonly" || !strings.HasSuffix(c.Sub, "@example.test") {
		return "", fmt.Errorf("claims %+v header %+v", c, head)
	}
	return c.Sub, nil
}

// TestHandbackGmail: messages are imported into each user's Gmail with
// the right labels (INBOX, UNREAD when unread, SENT for sent mail), with a
// token per user from the service account; a message whose response was
// lost is found by its Message-ID instead of being imported twice.
func TestHandbackGmail(t *testing.T) {
	e := newEnv(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	f, srv := gmailFake(t, &key.PublicKey)
	f.lose = "Subject: alices\r\n"
	sa, _ := json.Marshal(map[string]string{"type": "service_account", "client_email": "mailgate@project.iam.example", "private_key_id": "key-1",
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), "project_id": "p"})
	if _, err := e.svc.SetCredentials(e.ctx, e.tenant.ID, continuity.PathGmail, sa); err != nil {
		t.Fatal(err)
	}
	e.set(store.ScopeTenant, "", continuity.KeyHandbackPath, continuity.PathGmail)
	e.deliverToMailbox("q1", "s@remote.test", "alice@example.test", msg("alices"))
	e.deliverToMailbox("q2", "s@remote.test", "bob@example.test", msg("bobs"))
	e.mb.SetSeen(2)
	e.mb.AddSent(e.tenant.ID, "bob@example.test", []byte(msg("sentbybob")))
	if _, err := e.svc.StartHandback(e.ctx, e.dom, "", "it"); err != nil {
		t.Fatal(err)
	}
	h := e.handback("n1")
	h.HTTP = srv.Client()
	h.Endpoints = continuity.Endpoints{GmailURL: srv.URL, GoogleTokenURL: srv.URL + "/token"}
	for i := 0; i < 2; i++ {
		if _, err := h.Tick(e.ctx); err != nil {
			t.Fatal(err)
		}
		e.clk.Advance(2 * time.Minute)
	}
	f.check()
	got := f.all()
	want := map[string]imported{
		"alices":    {User: "alice@example.test", Labels: []string{"INBOX", "UNREAD"}},
		"bobs":      {User: "bob@example.test", Labels: []string{"INBOX"}},
		"sentbybob": {User: "bob@example.test", Labels: []string{"SENT"}},
	}
	if len(got) != 3 {
		t.Fatalf("imported %d, want 3: %+v", len(got), got)
	}
	for _, m := range got {
		var subj string
		for s := range want {
			if strings.Contains(m.MIME, "Subject: "+s+"\r\n") {
				subj = s
			}
		}
		w := want[subj]
		if subj == "" || m.User != w.User || strings.Join(m.Labels, ",") != strings.Join(w.Labels, ",") || m.MIME != msg(subj) {
			t.Errorf("imported %+v, want %+v", m, w)
		}
	}
	if f.tokens != 2 {
		t.Errorf("%d token requests, want one per user", f.tokens)
	}
	ps, _ := e.svc.HandbackStatus(e.ctx, e.tenant.ID, "example.test")
	if p := ps[0]; p.Done != 3 || p.State != store.HandbackDone {
		t.Fatalf("job: %+v", p)
	}
}

// TestSealedCredentials: credentials are stored sealed (the secret is not
// in the stored bytes), open only for their tenant and provider, and bad
// credentials are refused.
func TestSealedCredentials(t *testing.T) {
	e := newEnv(t)
	if _, err := e.svc.SetCredentials(e.ctx, e.tenant.ID, continuity.PathGraph,
		[]byte(`{"tenant":"contoso.example","client_id":"app-1","client_secret":"very-secret-value"}`)); err != nil {
		t.Fatal(err)
	}
	sealed, _, err := e.st.ContinuitySecret(e.ctx, e.tenant.ID, continuity.PathGraph)
	if err != nil || strings.Contains(string(sealed), "very-secret-value") || strings.Contains(string(sealed), "app-1") {
		t.Fatalf("stored in the clear: %q %v", sealed, err)
	}
	key, err := continuity.LoadSealKey(e.ctx, e.st)
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := continuity.Unseal(key, e.tenant.ID, continuity.PathGraph, sealed); err != nil || !strings.Contains(string(plain), "very-secret-value") {
		t.Fatalf("unseal: %q %v", plain, err)
	}
	if _, err := continuity.Unseal(key, e.tenant.ID+1, continuity.PathGraph, sealed); err == nil {
		t.Fatal("opened for another tenant")
	}
	if _, err := continuity.Unseal(key, e.tenant.ID, continuity.PathGmail, sealed); err == nil {
		t.Fatal("opened for another provider")
	}
	bad := append([]byte(nil), sealed...)
	bad[len(bad)-1] ^= 1
	if _, err := continuity.Unseal(key, e.tenant.ID, continuity.PathGraph, bad); err == nil {
		t.Fatal("tampered value opened")
	}
	for _, c := range []struct{ provider, raw string }{
		{continuity.PathGraph, `{"tenant":"t","client_id":"c"}`},
		{continuity.PathGraph, `{"tenant":"t/../x","client_id":"c","client_secret":"s"}`},
		{continuity.PathGraph, `not json`},
		{continuity.PathGmail, `{"type":"service_account","client_email":"a@b","private_key":"nope"}`},
		{"smtp", `{}`},
	} {
		if _, err := e.svc.SetCredentials(e.ctx, e.tenant.ID, c.provider, []byte(c.raw)); err == nil {
			t.Errorf("accepted %s %s", c.provider, c.raw)
		}
	}
	// Empty deletes.
	if _, err := e.svc.SetCredentials(e.ctx, e.tenant.ID, continuity.PathGraph, nil); err != nil {
		t.Fatal(err)
	}
	if info, err := e.svc.Credentials(e.ctx, e.tenant.ID, continuity.PathGraph); err != nil || info.Configured {
		t.Fatalf("deleted credentials still there: %+v %v", info, err)
	}
}
