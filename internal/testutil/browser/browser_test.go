package browser

import (
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestMonitorSeesActivity loads a page that logs, throws, opens a dialog
// and fetches, and checks that the Monitor records each, and that a
// screenshot is a real PNG.
func TestMonitorSeesActivity(t *testing.T) {
	b := Launch(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!DOCTYPE html><title>t</title><p>page</p><script>
console.log("hello-from-page");
fetch("/fetched").catch(function(){});
setTimeout(function(){ alert("dialog-text"); throw new Error("boom-exception"); }, 0);
</script>`))
	})
	mux.HandleFunc("GET /fetched", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx := b.NewTab(t)
	m, err := Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := Navigate(ctx, srv.URL+"/page"); err != nil {
		t.Fatal(err)
	}
	// Poll for the asynchronous events, bounded by the tab's timeout.
	for len(m.Exceptions()) == 0 || len(m.Dialogs()) == 0 {
		if err := chromedp.Do(ctx, chromedp.Sleep(50*time.Millisecond)); err != nil {
			t.Fatalf("waiting for events: %v (console %v, dialogs %v)", err, m.Console(), m.Dialogs())
		}
	}
	if c := strings.Join(m.Console(), "\n"); !strings.Contains(c, "log: hello-from-page") {
		t.Errorf("console = %q", c)
	}
	if d := m.Dialogs(); len(d) != 1 || d[0] != "alert: dialog-text" {
		t.Errorf("dialogs = %q", d)
	}
	if e := strings.Join(m.Exceptions(), "\n"); !strings.Contains(e, "boom-exception") {
		t.Errorf("exceptions = %q", e)
	}
	// Chromium asks for the site's favicon on its own, at a time of its
	// choosing; the page's own requests are what is checked.
	if out := m.RequestsOutside(srv.URL+"/page", srv.URL+"/favicon.ico"); len(out) != 1 || out[0] != srv.URL+"/fetched" {
		t.Errorf("requests outside /page = %q (all %q)", out, m.Requests())
	}

	dir := t.TempDir()
	t.Setenv("MAILGATE_SCREENSHOTS", dir)
	path := Screenshot(ctx, t, "monitor/../page")
	if filepath.Dir(path) != dir || strings.Contains(path, "..") {
		t.Errorf("screenshot name not sanitised: %s", path)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot is no PNG: %v", err)
	}
	if img.Bounds().Dx() < 100 {
		t.Errorf("screenshot %v", img.Bounds())
	}
}
