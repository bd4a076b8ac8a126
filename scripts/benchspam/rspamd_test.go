package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func fp(v float64) *float64 { return &v }

func TestSpamThresholdPrefersAddHeader(t *testing.T) {
	acts := []rspamdAction{{"reject", fp(15)}, {"add header", fp(6)}, {"greylist", fp(4)}, {"rewrite subject", nil}}
	if v, note, ok := spamThreshold(acts); !ok || v != 6 || note != "action 'add header'" {
		t.Fatalf("got %v %q %v", v, note, ok)
	}
	// Spelled with an underscore, and with add header disabled.
	if v, _, ok := spamThreshold([]rspamdAction{{"add_header", fp(7.5)}}); !ok || v != 7.5 {
		t.Fatalf("add_header: %v %v", v, ok)
	}
	if v, _, ok := spamThreshold([]rspamdAction{{"add header", nil}, {"reject", fp(15)}}); !ok || v != 15 {
		t.Fatalf("fallback to reject: %v %v", v, ok)
	}
	if _, _, ok := spamThreshold([]rspamdAction{{"greylist", fp(4)}}); ok {
		t.Fatal("greylist taken as a spam threshold")
	}
}

func TestRspamdCheckPostsMessage(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/checkv2" {
			http.Error(w, "wrong endpoint", http.StatusNotFound)
			return
		}
		b, _ := io.ReadAll(r.Body)
		got = string(b)
		io.WriteString(w, `{"score":7.25,"required_score":15,"action":"add header","symbols":{"BAYES_SPAM":{"score":5.1},"R_X":{}}}`)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rep, err := rspamdCheck(ctx, srv.Client(), srv.URL, []byte("Subject: a\r\n\r\nb\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got != "Subject: a\r\n\r\nb\r\n" || rep.Score != 7.25 || rep.RequiredScore != 15 || rep.Action != "add header" || len(rep.Symbols) != 2 {
		t.Fatalf("sent %q, got %+v", got, rep)
	}
	srv2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	defer srv2.Close()
	if _, err := rspamdCheck(ctx, srv2.Client(), srv2.URL, []byte("x")); err == nil {
		t.Fatal("HTTP 503 taken as an answer")
	}
}
