package main

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/attachlink"
	"github.com/mailgate/mailgate/internal/store"
)

// The operator lists a tenant's links, reads a download log and revokes a
// link, which the download page then refuses; the revocation is audited.
func TestCLILinks(t *testing.T) {
	c := startCLI(t)
	ctx := context.Background()
	key, err := c.Links.Key(ctx)
	if err != nil {
		t.Fatal(err)
	}
	msg := "From: it@example.test\r\nSubject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n" +
		"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"見積書.pdf\"\r\n\r\n%PDF\r\n--b--\r\n"
	var out bytes.Buffer
	res, err := attachlink.Rewrite(ctx, &out, strings.NewReader(msg), c.Links.Blobs, c.Links.Records, attachlink.Options{
		TenantID: c.Tenant.ID, Sender: "it@example.test", Key: key, BaseURL: c.URL + "/dl", Expiry: time.Hour, MaxDownloads: 3, Now: c.Clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := url.QueryUnescape(strings.SplitN(res.URL, "t=", 2)[1])
	resp, err := http.PostForm(c.URL+"/dl", url.Values{"t": {tok}, "f": {"0"}})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("download: %v %v", resp, err)
	}
	resp.Body.Close()

	listed, err := c.run(t, "", "links", "list", "acme")
	if err != nil || !strings.Contains(listed, res.Link.ID) || !strings.Contains(listed, "1/3") || !strings.Contains(listed, "見積書.pdf") || !strings.Contains(listed, "active") {
		t.Fatalf("list: %v\n%s", err, listed)
	}
	if other, _ := c.run(t, "", "links", "list", "other"); strings.Contains(other, res.Link.ID) {
		t.Fatalf("another tenant lists the link:\n%s", other)
	}
	logOut, err := c.run(t, "", "links", "log", "acme", res.Link.ID)
	if err != nil || !strings.Contains(logOut, "127.0.0.1") || !strings.Contains(logOut, "見積書.pdf") {
		t.Fatalf("log: %v\n%s", err, logOut)
	}
	if _, err := c.run(t, "", "links", "revoke", "other", res.Link.ID); err == nil {
		t.Fatal("revoked through another tenant")
	}
	if _, err := c.run(t, "", "links", "revoke", "acme", res.Link.ID); err != nil {
		t.Fatal(err)
	}
	resp, _ = http.PostForm(c.URL+"/dl", url.Values{"t": {tok}, "f": {"0"}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusGone {
		t.Errorf("download after revocation: %d", resp.StatusCode)
	}
	if listed, _ = c.run(t, "", "links", "list", "acme"); !strings.Contains(listed, "revoked") {
		t.Errorf("list after revocation:\n%s", listed)
	}
	es, err := c.Store.AuditLog(ctx, store.AuditFilter{TenantID: c.Tenant.ID, Limit: 100})
	found := false
	for _, e := range es {
		found = found || e.Action == "link.revoke" && e.Target == res.Link.ID && strings.HasPrefix(e.Actor, "cli:")
	}
	if err != nil || !found {
		t.Errorf("no audit entry for the revocation: %v", err)
	}
}
