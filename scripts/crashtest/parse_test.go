package main

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestHeaderValueReadsOnlyTheHeaderSection(t *testing.T) {
	msg := "Received: from x\r\n\tby mailgate.crash.test (mailgate) with ESMTP id 001abc; date\r\n" +
		"x-crash-token:  ct1-00ff-000007 \r\nSubject: s\r\n\r\nX-Crash-Token: body-copy\r\n"
	if got := headerValue([]byte(msg), tokenHeader); got != "ct1-00ff-000007" {
		t.Fatalf("token = %q", got)
	}
	if got := receivedID([]byte(msg)); got != "001abc" {
		t.Fatalf("queue id = %q", got)
	}
	body := "Subject: s\r\n\r\nX-Crash-Token: only-in-body\r\n"
	if got := headerValue([]byte(body), tokenHeader); got != "" {
		t.Fatalf("token from body: %q", got)
	}
	if got := receivedID([]byte(body)); got != "?" {
		t.Fatalf("queue id without Received: %q", got)
	}
}

func TestMessageCarriesItsToken(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20 {
		tok := (&sender{runID: "ct9-abcd"}).token(i)
		m := message(tok, "r0@crash.test", rng)
		if got := headerValue(m, tokenHeader); got != tok {
			t.Fatalf("message %d: token %q, want %q", i, got, tok)
		}
		if !strings.Contains(string(m), "Subject: crash-test "+tok+"\r\n") {
			t.Fatalf("message %d: subject lacks token", i)
		}
		if strings.Contains(strings.ReplaceAll(string(m), "\r\n", ""), "\n") {
			t.Fatalf("message %d: bare LF would be refused", i)
		}
	}
}

func TestParseQueueCount(t *testing.T) {
	n, _, err := parseQueueCount("ID  AGE\nabc 1s ...\n3 messages\n")
	if err != nil || n != 3 {
		t.Fatalf("n=%d err=%v", n, err)
	}
	if _, _, err := parseQueueCount("Error: database is locked\n"); err == nil {
		t.Fatal("no count line must be an error, not an empty queue")
	}
}

func TestScanLog(t *testing.T) {
	log := strings.Join([]string{
		`=== crash-test: run 2 starting at now`,
		`time=x level=INFO msg="released leases from before restart" recipients=4`,
		`time=x level=INFO msg="spool recovered" queued=10 discarded_unacknowledged=3 missing=0 damaged=0`,
		`time=x level=INFO msg="spool recovered" queued=1 discarded_unacknowledged=2 missing=1 damaged=0`,
		`time=x level=ERROR msg="queued message cannot be delivered" id=001 reason="blob missing after restart"`,
		`time=x level=ERROR msg=enqueue err=boom`,
		`time=x level=ERROR msg=enqueue err=boom`,
	}, "\n")
	r, err := scanLog(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	if r.recoveries != 2 || r.discarded != 5 || r.missing != 1 || r.released != 4 || r.errorLines != 3 {
		t.Fatalf("report %+v", r)
	}
	if !r.blobTrouble() || len(r.blobLines) != 1 {
		t.Fatalf("blob trouble not found: %+v", r.blobLines)
	}
	if top := r.topErrors(); len(top) != 2 || top[0] != `2x "enqueue"` {
		t.Fatalf("top errors %v", top)
	}
	clean, _ := scanLog(strings.NewReader(`time=x level=INFO msg="spool recovered" queued=1 discarded_unacknowledged=0 missing=0 damaged=0`))
	if clean.blobTrouble() {
		t.Fatal("a clean recovery line is not blob trouble")
	}
}

func TestKillBetween(t *testing.T) {
	kills := []time.Duration{time.Second, 3 * time.Second}
	if !killBetween(kills, 900*time.Millisecond, 1200*time.Millisecond) {
		t.Fatal("kill at 1s lies between 0.9s and 1.2s")
	}
	if killBetween(kills, 1200*time.Millisecond, 2500*time.Millisecond) {
		t.Fatal("no kill between 1.2s and 2.5s")
	}
}
