package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The console's API and the CLI act on one store: a login and a token made
// with the CLI work against the running server, an address added through
// the API is seen by the CLI, a message sent with Python's smtplib is found
// through the API, reports count it, and the audit log names every actor.
func TestConsoleAPIAndCLI(t *testing.T) {
	g := newGateway(t, options{http: true})
	if _, err := g.cliIn("a long passphrase\n", "account", "add", "admin", "--operator"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.cliIn("short\n", "account", "add", "weak", "--operator"); err == nil {
		t.Fatal("a short password was accepted")
	}
	out := g.cli("token", "create", "--tenant", "acme", "--scope", "write", "--name", "e2e")
	secret := regexp.MustCompile(`mgt_[A-Za-z0-9_-]+`).FindString(out)
	if secret == "" {
		t.Fatalf("no token in %q", out)
	}
	api := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+g.webAddr+"/api/v1"+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := api("POST", "/users", `{"address":"carol@example.test","name":"Carol"}`); st != http.StatusCreated {
		t.Fatalf("add user: %d %s", st, body)
	}
	if !strings.Contains(g.cli("user", "list", "acme"), "carol@example.test") {
		t.Fatal("the CLI does not see the address added through the API")
	}
	id := sendOne(t, g.inAddr, "console-e2e", "sender@example.net", "carol@example.test")
	var rows []struct {
		Message struct{ ID string }
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, body := api("GET", "/messages?rcpt=carol@example.test&verdict=delivered", "")
		if st != 200 {
			t.Fatalf("search: %d %s", st, body)
		}
		json.Unmarshal([]byte(body), &rows)
		if len(rows) == 1 && rows[0].Message.ID == id {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s not found as delivered: %s", id, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	csv := g.cli("report", "--tenant", "acme", "--address", "carol@example.test", "--csv")
	lines := strings.Split(strings.TrimSpace(csv), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "period,domain,address,received,delivered") || !strings.Contains(lines[1], ",1,1,") {
		t.Fatalf("report:\n%s", csv)
	}
	st, body := api("GET", "/audit", "")
	if st != 200 || !strings.Contains(body, `"api:e2e"`) || !strings.Contains(body, "user.add") {
		t.Fatalf("audit: %d %s", st, body)
	}
	// The console itself answers, in Japanese for a Japanese browser.
	req, _ := http.NewRequest("GET", "http://"+g.webAddr+"/login", nil)
	req.Header.Set("Accept-Language", "ja")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "ログイン") || resp.Header.Get("Content-Security-Policy") == "" {
		t.Fatalf("login page: %d csp=%q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}
}
