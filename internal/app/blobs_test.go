package app_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/blob/local"
	"github.com/mailgate/mailgate/internal/blob/s3"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// Recovery after a restart only touches the node's own blobs: another
// node's blobs, referenced or not, and its queued messages stay as they
// are; the node's own unreferenced blobs go, its damaged and missing ones
// hold their messages. Once on local files, once on S3.
func TestRecoverIsNodeScoped(t *testing.T) {
	t.Run("local", testRecoverIsNodeScoped)
	t.Run("s3", func(t *testing.T) {
		mgtest.OnS3(t)
		testRecoverIsNodeScoped(t)
	})
}

func testRecoverIsNodeScoped(t *testing.T) {
	n := mgtest.Start(t, mgtest.Options{NoStart: true})
	ctx := context.Background()
	var other blob.Store
	var err error
	if b := n.Config.Blobs; b.Driver == "s3" {
		other, err = s3.Open(ctx, s3.Config{Endpoint: b.Endpoint, Bucket: b.Bucket, Region: b.Region, PathStyle: b.PathStyle,
			AccessKeyID: b.AccessKeyID, SecretAccessKey: b.SecretAccessKey}, "spool", "mx2", nil)
	} else {
		other, err = local.Open(filepath.Join(n.Dir, "spool"), "mx2", 0, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	put := func(bs blob.Store, name, body string) string {
		key, _, err := blob.Put(ctx, bs, name, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		return key
	}
	queue := func(id, key string, size int64) {
		m := store.Message{ID: id, TenantID: n.Tenant.ID, Direction: store.Inbound, MailFrom: "s@example.net", BlobKey: key,
			Size: size, ReceivedAt: time.Now()}
		if _, err := n.Store.Enqueue(ctx, m, []store.Recipient{{Addr: "alice@example.test", State: store.Queued, NextAttempt: time.Now()}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	node := n.Config.NodeID
	queue("kept", put(n.Spool, "kept", "0123456789"), 10)
	orphan := put(n.Spool, "orphan", "never acknowledged")
	queue("damaged", put(n.Spool, "damaged", "short"), 500)
	queue("missing", node+"/missing", 42)
	theirs := put(other, "theirs", "being accepted by mx2")
	queue("elsewhere", put(other, "elsewhere", "queued by mx2"), 13)
	queue("gone", "mx2/gone", 7) // mx2's to find missing, not this node's

	if err := n.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	state := func(id string) store.RcptState {
		_, rs, err := n.Store.Message(ctx, n.Tenant.ID, id)
		if err != nil {
			t.Fatal(err)
		}
		return rs[0].State
	}
	for id, want := range map[string]store.RcptState{"kept": store.Queued, "damaged": store.Held, "missing": store.Held,
		"elsewhere": store.Queued, "gone": store.Queued} {
		if got := state(id); got != want {
			t.Errorf("%s: %s, want %s", id, got, want)
		}
	}
	if _, err := n.Spool.Open(ctx, orphan); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("own unreferenced blob: %v, want removed", err)
	}
	if _, err := n.Spool.Open(ctx, theirs); err != nil {
		t.Errorf("another node's blob removed by this node's recovery: %v", err)
	}
	evs, _ := n.Store.Events(ctx, n.Tenant.ID, "damaged")
	if len(evs) == 0 || !strings.Contains(evs[len(evs)-1].Detail, "moved to") {
		t.Errorf("damaged message's events %+v", evs)
	}
}
