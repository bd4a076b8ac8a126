package web_test

import (
	"context"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/consoletest"
)

// The dashboard shows operators the nodes, alive or dead, with what each
// holds and the queue depth; tenant administrators do not see it.
func TestDashboardShowsClusterToOperators(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	ctx := context.Background()
	if _, err := e.Store.Heartbeat(ctx, store.Node{ID: "node-x", Hostname: "mx9.example", Version: "1.0", Started: time.Now()}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := e.Store.Enqueue(ctx, store.Message{ID: "m1", TenantID: e.Tenant.ID, Direction: store.Inbound, BlobKey: "m1", ReceivedAt: now},
		[]store.Recipient{{Addr: "alice@example.test", NextAttempt: now, LeaseOwner: "node-x", LeaseUntil: now.Add(time.Hour)}}, nil); err != nil {
		t.Fatal(err)
	}

	op := e.NewClient(t)
	op.Login(consoletest.Operator)
	op.Post("/tenant", url.Values{"tenant": {strconv.FormatInt(e.Tenant.ID, 10)}})
	st, body := op.Get("/dashboard")
	if st != 200 || !strings.Contains(body, `id="cluster"`) {
		t.Fatalf("operator dashboard %d without the cluster section:\n%s", st, body)
	}
	row := regexp.MustCompile(`<tr data-node="node-x" class="alive"><td>node-x</td><td>Alive</td>\s*<td>\d+s ago</td><td>1</td><td>mx9.example</td>`)
	if !row.MatchString(body) {
		t.Fatalf("node-x row missing:\n%s", body)
	}
	if !strings.Contains(body, "Queued 1") {
		t.Fatalf("queue depth missing:\n%s", body)
	}
	adm := e.NewClient(t)
	adm.Login(consoletest.AdminA)
	if _, body := adm.Get("/dashboard"); strings.Contains(body, `id="cluster"`) || strings.Contains(body, "node-x") {
		t.Fatal("a tenant administrator sees the cluster")
	}
}
