package preview

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"

	"github.com/mailgate/mailgate/internal/testutil/browser"
)

// trap is an HTTP server on 127.0.0.1 that the hostile mails name as their
// remote host. It counts connections, not only requests, so a TLS attempt
// (https: URLs) or a preconnect counts too.
type trap struct {
	srv   *httptest.Server
	mu    sync.Mutex
	conns int
	paths []string
}

type countingListener struct {
	net.Listener
	t *trap
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.t.mu.Lock()
		l.t.conns++
		l.t.mu.Unlock()
	}
	return c, err
}

func newTrap(t *testing.T) *trap {
	tr := &trap{}
	tr.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr.mu.Lock()
		tr.paths = append(tr.paths, r.URL.Path)
		tr.mu.Unlock()
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.WriteHeader(http.StatusNoContent)
	}))
	tr.srv.Listener = countingListener{Listener: tr.srv.Listener, t: tr}
	tr.srv.Start()
	t.Cleanup(tr.srv.Close)
	return tr
}

func (tr *trap) host() string { return tr.srv.Listener.Addr().String() }

func (tr *trap) seen() (int, []string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.conns, append([]string(nil), tr.paths...)
}

// parentCSP is a console-like page policy: no script at all, frames only
// from itself.
const parentCSP = "default-src 'none'; frame-src 'self'; img-src 'self'; style-src 'self'"

// consoleServer serves, for each corpus message, a parent page framing the
// preview document as the console does (/parent/NAME, /doc/NAME) and, as a
// positive control, a parent framing the unsanitised HTML with scripts
// allowed (/control/NAME, /raw/NAME).
func consoleServer(t *testing.T, corpus map[string][]byte, opt Options) *httptest.Server {
	mux := http.NewServeMux()
	parent := func(w http.ResponseWriter, name, sandbox, src string) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", parentCSP)
		fmt.Fprintf(w, `<!DOCTYPE html><html><head><title>parent</title></head><body><p>%s</p><iframe %s src="%s" width="980" height="700"></iframe></body></html>`,
			html.EscapeString(name), sandbox, html.EscapeString(src))
	}
	mux.HandleFunc("GET /parent/{name}", func(w http.ResponseWriter, r *http.Request) {
		parent(w, r.PathValue("name"), `sandbox=""`, "/doc/"+r.PathValue("name"))
	})
	mux.HandleFunc("GET /control/{name}", func(w http.ResponseWriter, r *http.Request) {
		parent(w, r.PathValue("name"), `sandbox="allow-scripts"`, "/raw/"+r.PathValue("name"))
	})
	mux.HandleFunc("GET /doc/{name}", func(w http.ResponseWriter, r *http.Request) {
		raw, ok := corpus[r.PathValue("name")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		v, err := Render(r.Context(), bytes.NewReader(raw), opt)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		WriteDocument(w, v)
	})
	mux.HandleFunc("GET /raw/{name}", func(w http.ResponseWriter, r *http.Request) {
		raw, ok := corpus[r.PathValue("name")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		// The body as the sender wrote it, for the control only.
		_, body, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(body)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// trapCorpus returns the corpus with trap.invalid pointing at tr.
func trapCorpus(t *testing.T, tr *trap) map[string][]byte {
	out := map[string][]byte{}
	for name, raw := range loadCorpus(t) {
		out[name] = bytes.ReplaceAll(raw, []byte("trap.invalid"), []byte(tr.host()))
	}
	return out
}

// load opens url in a fresh tab with a monitor and lets the page settle.
// The settle time only gives a payload more chances to show itself: every
// assertion after it is "nothing happened", which waiting longer cannot
// make pass wrongly.
func load(t *testing.T, b *browser.Browser, url string) (context.Context, *browser.Monitor) {
	t.Helper()
	ctx := b.NewTab(t)
	m, err := browser.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := browser.Navigate(ctx, url); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Sleep(500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	return ctx, m
}

func payloadMessages(m *browser.Monitor) []string {
	var out []string
	for _, c := range m.Console() {
		if strings.Contains(c, "PAYLOAD") {
			out = append(out, c)
		}
	}
	return out
}

// TestBrowserControl shows that the harness sees what it must: the same
// hostile HTML, unsanitised, in a frame that allows scripts, reaches the
// trap and logs its payload. Without this the zero counts of
// TestBrowserHostile would prove nothing.
func TestBrowserControl(t *testing.T) {
	b := browser.Launch(t)
	tr := newTrap(t)
	srv := consoleServer(t, trapCorpus(t, tr), Options{})
	_, m := load(t, b, srv.URL+"/control/script")
	conns, paths := tr.seen()
	if conns == 0 || !containsString(paths, "/script/body") {
		t.Errorf("control: trap saw %d connections, paths %v; want the script payload", conns, paths)
	}
	if msgs := payloadMessages(m); len(msgs) == 0 {
		t.Errorf("control: no payload console message seen; console %v", m.Console())
	}
	if len(m.RequestsOutside(srv.URL)) == 0 {
		t.Errorf("control: no request outside the console seen; requests %v", m.Requests())
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestBrowserHostile renders every hostile message as the console will and
// asserts that Chromium ran no payload and fetched nothing remote.
func TestBrowserHostile(t *testing.T) {
	b := browser.Launch(t)
	for _, allow := range []bool{false, true} {
		tr := newTrap(t)
		corpus := trapCorpus(t, tr)
		srv := consoleServer(t, corpus, Options{AllowRemoteImages: allow, Lang: "ja"})
		names := make([]string, 0, len(corpus))
		for name := range corpus {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			t.Run(fmt.Sprintf("%s/remote=%v", name, allow), func(t *testing.T) {
				ctx, m := load(t, b, srv.URL+"/parent/"+name)
				if !allow {
					browser.Screenshot(ctx, t, "preview-"+name)
				}
				if msgs := payloadMessages(m); len(msgs) != 0 {
					t.Errorf("payload ran: %v", msgs)
				}
				if d := m.Dialogs(); len(d) != 0 {
					t.Errorf("dialogs: %v", d)
				}
				allowed := []string{srv.URL + "/"}
				if allow {
					// The reader allowed remote images: https: images may
					// load, nothing else.
					allowed = append(allowed, "https:")
				}
				if out := m.RequestsOutside(allowed...); len(out) != 0 {
					t.Errorf("requests outside the console: %v", out)
				}
				title, err := chromedp.Run(ctx, chromedp.Title())
				if err != nil || title != "parent" {
					t.Errorf("parent title = %q, %v", title, err)
				}
			})
		}
		// The trap is checked after the whole corpus so that a late
		// request (a refresh, a timer) is still counted.
		if conns, paths := tr.seen(); conns != 0 && !allow {
			t.Errorf("trap reached: %d connections, paths %v", conns, paths)
		} else if allow {
			// https images are allowed then: the browser may try TLS to
			// the trap's port, which fails; no HTTP request may succeed.
			if len(paths) != 0 {
				t.Errorf("trap served requests with remote images allowed: %v", paths)
			}
		}
	}
}

// TestBrowserOpenLink clicks a link in the sandboxed preview: it opens the
// link page in a new tab, outside the sandbox, and nothing else happens: the
// console page stays, the frame runs nothing, and the link's target is not
// contacted before the reader chooses to go on.
func TestBrowserOpenLink(t *testing.T) {
	b := browser.Launch(t)
	tr := newTrap(t)
	dest := "http://" + tr.host() + "/phish"
	raw := htmlMail(`<p>Please <a href="` + dest + `">sign in to your bank</a> today.</p>`)
	opt := Options{LinkURL: testLinkURL}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /parent", func(w http.ResponseWriter, r *http.Request) {
		v, err := Render(r.Context(), bytes.NewReader(raw), opt)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", parentCSP)
		fmt.Fprintf(w, `<!DOCTYPE html><html><head><title>parent</title></head><body><iframe id="f" sandbox="%s" src="/doc" width="600" height="%d"></iframe></body></html>`,
			html.EscapeString(v.FrameSandbox()), v.FrameHeight)
	})
	mux.HandleFunc("GET /doc", func(w http.ResponseWriter, r *http.Request) {
		v, err := Render(r.Context(), bytes.NewReader(raw), opt)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		WriteDocument(w, v)
	})
	// A stand-in for the console's link page: it describes the link and
	// reports, by its title, that its script runs (it is no sandboxed page).
	mux.HandleFunc("GET /link", func(w http.ResponseWriter, r *http.Request) {
		info, err := InspectLink(r.Context(), bytes.NewReader(raw), r.URL.Query().Get("u"), opt)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!DOCTYPE html><html><head><title>link page</title></head><body><p id="target">%s</p><p id="text">%s</p>`+
			`<script>document.title = "link page, origin " + window.origin</script></body></html>`,
			html.EscapeString(info.Target), html.EscapeString(info.Text))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	ctx, m := load(t, b, srv.URL+"/parent")
	newTab := chromedp.WaitNewTarget(ctx, func(info *target.Info) bool { return strings.Contains(info.URL, "/link?u=") })
	nodes, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSS("#f"), chromedp.NodeVisible))
	if err != nil || len(nodes) == 0 || nodes[0].ContentDocument == nil {
		t.Fatalf("frame document: %v", err)
	}
	// The frame runs no script, so the link is found and clicked through
	// the DOM and input domains only.
	links, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSS("a"), chromedp.FromNode(nodes[0].ContentDocument), chromedp.NodeReady))
	if err != nil || len(links) == 0 {
		t.Fatalf("link in the frame: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.MouseClickNode(links[0])); err != nil {
		t.Fatalf("click: %v", err)
	}
	var id target.ID
	select {
	case id = <-newTab:
	case <-ctx.Done():
		t.Fatal("the click opened no tab with the link page")
	}
	tabCtx, cancel := chromedp.NewContext(ctx, chromedp.WithTargetID(id))
	defer cancel()
	shown, err := chromedp.Run(tabCtx, chromedp.Text(chromedp.CSS("#target"), chromedp.NodeVisible))
	if err != nil {
		t.Fatalf("link page: %v", err)
	}
	if shown != dest {
		t.Errorf("link page shows %q, want %q", shown, dest)
	}
	// The page's own script ran: it is a normal page, not a sandboxed one.
	title, err := chromedp.Run(tabCtx, chromedp.Title())
	if err != nil || title != "link page, origin "+srv.URL {
		t.Errorf("link page title %q (%v): it is sandboxed or ran no script", title, err)
	}
	if title, err := chromedp.Run(ctx, chromedp.Title()); err != nil || title != "parent" {
		t.Errorf("parent page title %q (%v): it navigated", title, err)
	}
	if msgs := payloadMessages(m); len(msgs) != 0 {
		t.Errorf("payload ran: %v", msgs)
	}
	if conns, paths := tr.seen(); conns != 0 {
		t.Errorf("the link's target was contacted: %d connections, %v", conns, paths)
	}
}
