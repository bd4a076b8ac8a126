// Package browser drives the system's headless Chromium from Go tests
// through the DevTools protocol (chromedp), for tests of what a person would
// see and of what a page makes the browser do: requests, console output,
// dialogs and script exceptions.
//
// It never downloads a browser: it uses `chromium` from PATH or
// /usr/bin/chromium. When neither exists the test is skipped, unless the
// environment sets MAILGATE_REQUIRE_PEERS=1, which makes it fail instead
// (CI, where a silently skipped security test would hide a regression).
package browser

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/mailgate/mailgate/internal/testutil/peers"
)

// TabTimeout bounds everything done in one tab from NewTab.
const TabTimeout = 60 * time.Second

// Browser is one headless Chromium process owned by a test. Its tabs may be
// used from parallel subtests, one tab per goroutine.
type Browser struct {
	ctx context.Context // chromedp browser context
}

// execPath finds the system Chromium.
func execPath() string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	return ""
}

// Launch starts headless Chromium for t and stops it when t ends. It skips
// t when no Chromium is installed (fails under MAILGATE_REQUIRE_PEERS=1) and
// fails t when the browser does not start.
func Launch(t testing.TB) *Browser {
	t.Helper()
	path := execPath()
	if path == "" {
		peers.Missing(t, "chromium not found (apt-get install chromium)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("no-pings", true),
		// Keep every request on this machine: no DNS prefetch or proxy
		// lookups, no safe-browsing or update calls.
		chromedp.Flag("dns-prefetch-disable", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("safebrowsing-disable-auto-update", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("password-store", "basic"),
		// Sandboxed and cross-site frames would run in their own renderer
		// (IsolateSandboxedIframes, site isolation), and chromedp delivers
		// only the page session's events: keep frames in the page's renderer
		// so a Monitor sees their requests and console. Sandbox and CSP are
		// enforced by Blink either way.
		chromedp.Flag("disable-features", "IsolateSandboxedIframes,Translate"),
		chromedp.Flag("disable-site-isolation-trials", true),
		chromedp.WindowSize(1024, 768),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	// The first Do starts the browser and binds its life to bctx: no
	// timeout here (see chromedp.NewContext), the start is bounded below.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(bctx) }()
	select {
	case err := <-started:
		if err != nil {
			cancelBrowser()
			cancelAlloc()
			t.Fatalf("start chromium %s: %v", path, err)
		}
	case <-time.After(TabTimeout):
		cancelBrowser()
		cancelAlloc()
		t.Fatalf("start chromium %s: no answer within %v", path, TabTimeout)
	}
	t.Cleanup(func() {
		_ = chromedp.Cancel(bctx)
		cancelBrowser()
		cancelAlloc()
	})
	return &Browser{ctx: bctx}
}

// NewTab opens a tab that closes when t ends; the returned context is
// bounded by TabTimeout. Use it with chromedp.Run/Do and with Watch.
func (b *Browser) NewTab(t testing.TB) context.Context {
	t.Helper()
	tctx, cancelTab := chromedp.NewContext(b.ctx)
	// Open the tab before the timeout is applied, so the timeout ends the
	// actions, not the tab.
	if err := chromedp.Do(tctx); err != nil {
		cancelTab()
		t.Fatalf("open tab: %v", err)
	}
	ctx, cancel := context.WithTimeout(tctx, TabTimeout)
	t.Cleanup(func() {
		cancel()
		cancelTab()
	})
	return ctx
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// Screenshot saves a full-page PNG of the tab as NAME.png in the directory
// named by MAILGATE_SCREENSHOTS (created if needed), else in a temporary
// directory of t, and returns its path. A failure fails t.
func Screenshot(ctx context.Context, t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv("MAILGATE_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("screenshot dir: %v", err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	name = strings.ReplaceAll(unsafeName.ReplaceAllString(name, "_"), "..", "_")
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	t.Logf("screenshot: %s", path)
	return path
}

// Monitor records what a tab does from the moment Watch returns: every
// request the browser starts (URL), every console API call, every dialog
// and every uncaught script exception, of the page and of its frames
// (Launch keeps frames in the page's renderer so their events are seen).
// It is safe for concurrent use.
type Monitor struct {
	mu         sync.Mutex
	requests   []string
	console    []string
	dialogs    []string
	exceptions []string
}

// Watch starts recording the tab of ctx. Dialogs are dismissed as they open,
// so a page cannot block the tab with alert().
func Watch(ctx context.Context) (*Monitor, error) {
	m := &Monitor{}
	err := chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			m.add(&m.requests, e.Request.URL)
		case *runtime.EventConsoleAPICalled:
			var parts []string
			for _, a := range e.Args {
				if a.Value != nil {
					parts = append(parts, strings.Trim(string(a.Value), `"`))
				} else {
					parts = append(parts, a.Description)
				}
			}
			m.add(&m.console, string(e.Type)+": "+strings.Join(parts, " "))
		case *runtime.EventExceptionThrown:
			d := e.ExceptionDetails
			text := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				text += " " + d.Exception.Description
			}
			m.add(&m.exceptions, text)
		case *page.EventJavascriptDialogOpening:
			m.add(&m.dialogs, string(e.Type)+": "+e.Message)
			// Commands cannot run inside the listener.
			go func() {
				_, _ = chromedp.Run(ctx, dismissDialog)
			}()
		}
	})
	if err != nil {
		return nil, fmt.Errorf("browser: watch tab: %w", err)
	}
	return m, nil
}

func dismissDialog(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
	_, err := cdp.Call(ctx, t, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
	return chromedp.Void{}, err
}

func (m *Monitor) add(list *[]string, s string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	*list = append(*list, s)
}

func (m *Monitor) snapshot(list *[]string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), *list...)
}

// Requests returns the URLs of the requests seen so far, in order.
func (m *Monitor) Requests() []string { return m.snapshot(&m.requests) }

// Console returns the console messages seen so far as "type: text".
func (m *Monitor) Console() []string { return m.snapshot(&m.console) }

// Dialogs returns the dialogs opened so far as "type: message".
func (m *Monitor) Dialogs() []string { return m.snapshot(&m.dialogs) }

// Exceptions returns the uncaught script exceptions seen so far.
func (m *Monitor) Exceptions() []string { return m.snapshot(&m.exceptions) }

// RequestsOutside returns the requests whose URL does not start with one of
// the allowed prefixes (data: and about: are always allowed).
func (m *Monitor) RequestsOutside(allowed ...string) []string {
	var out []string
	for _, u := range m.Requests() {
		ok := strings.HasPrefix(u, "data:") || strings.HasPrefix(u, "about:")
		for _, p := range allowed {
			ok = ok || strings.HasPrefix(u, p)
		}
		if !ok {
			out = append(out, u)
		}
	}
	return out
}

// Navigate loads url in the tab and waits for its load event.
func Navigate(ctx context.Context, url string) error {
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		return fmt.Errorf("browser: navigate %s: %w", url, err)
	}
	return nil
}
