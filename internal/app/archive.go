package app

import (
	"context"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailgate/mailgate/internal/archive"
	"github.com/mailgate/mailgate/internal/archive/bleveindex"
	"github.com/mailgate/mailgate/internal/archive/pgindex"
	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/store"
)

// archiveBlobs is the blob namespace of archived message bodies.
const archiveBlobs = "archive"

// queueSpool is the spool as the queue and the inbound pipeline delete
// from it: a blob waiting to be archived stays until the archiver is done.
func queueSpool(sp blob.Store, st store.Store) blob.Store {
	return archive.Guard{Store: sp, Pending: st}
}

// OpenArchive opens the node's archive service: the archive's blob
// namespace, the search index ([archive] index) and the installation's
// signing key. The CLI uses it too.
func (a *App) OpenArchive(ctx context.Context) (*archive.Service, error) {
	return a.openArchive(ctx, true)
}

// OpenArchiveWithoutIndex opens the archive without its search index, for
// commands that do not search (verify, proof, import while the server
// holds the embedded index: imported messages are indexed by the server's
// archiver later).
func (a *App) OpenArchiveWithoutIndex(ctx context.Context) (*archive.Service, error) {
	return a.openArchive(ctx, false)
}

func (a *App) openArchive(ctx context.Context, withIndex bool) (*archive.Service, error) {
	a.archiveMu.Lock()
	defer a.archiveMu.Unlock()
	if a.Archive != nil {
		return a.Archive, nil
	}
	bs, err := openBlobs(ctx, a.Config, archiveBlobs, 0, a.Log)
	if err != nil {
		return nil, err
	}
	key, err := archive.LoadKey(ctx, a.Store)
	if err != nil {
		bs.Close()
		return nil, err
	}
	var idx archive.Index
	switch {
	case !withIndex:
	case a.Config.Archive.Index == "postgres":
		p, ok := a.Store.(interface{ Pool() *pgxpool.Pool })
		if !ok {
			bs.Close()
			return nil, fmt.Errorf("archive.index postgres needs the postgres store")
		}
		idx = pgindex.New(p.Pool())
	default:
		b, err := bleveindex.Open(filepath.Join(a.Config.DataDir, "archive-index"))
		if err != nil {
			bs.Close()
			return nil, err
		}
		if b.Stale() {
			a.Log.Warn("the archive's search index was made by an earlier version: run 'mailgate archive reindex' with the server stopped (until then, searches by exact address find nothing)")
		}
		idx = b
	}
	a.Archive = &archive.Service{Store: a.Store, Blobs: bs, Spool: queueSpool(a.Spool, a.Store), Key: key,
		Clock: a.Clock, Log: a.Log.With("stage", "archive"), Node: a.Config.NodeID, Notify: a.archiveNotice}
	if idx != nil {
		a.Archive.Index = idx
	}
	return a.Archive, nil
}

// closeArchive releases the archive's index and blobs.
func (a *App) closeArchive() error {
	if a.Archive == nil {
		return nil
	}
	var err error
	if a.Archive.Index != nil {
		err = a.Archive.Index.Close()
	}
	if e := a.Archive.Blobs.Close(); err == nil {
		err = e
	}
	return err
}

// archiveNotice mails a tenant's administrators (their console logins
// that are addresses) through the queue.
func (a *App) archiveNotice(ctx context.Context, tenantID int64, subject, body string) error {
	accts, err := a.Store.Accounts(ctx, tenantID)
	if err != nil {
		return err
	}
	var to []string
	for _, ac := range accts {
		if ac.Role == store.RoleAdmin && !ac.Disabled && strings.Contains(ac.Login, "@") {
			to = append(to, ac.Login)
		}
	}
	if len(to) == 0 {
		return fmt.Errorf("no administrator address to notify")
	}
	msg := "From: <postmaster@" + a.Config.Hostname + ">\r\nTo: " + strings.Join(to, ", ") + "\r\nSubject: =?UTF-8?B?" + base64.StdEncoding.EncodeToString([]byte(subject)) + "?=\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\nDate: " +
		a.Clock.Now().Format(time.RFC1123Z) + "\r\n\r\n" + body
	_, err = a.Queue.Submit(ctx, store.Message{TenantID: tenantID, Direction: store.DSN}, to, strings.NewReader(msg), "archive capacity notice")
	return err
}

// startArchive runs this node's archiver and retention in the background
// until Close.
func (a *App) startArchive(ctx context.Context) error {
	s, err := a.OpenArchive(ctx)
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		select {
		case <-a.done:
			cancel()
		case <-runCtx.Done():
		}
	}()
	go func() {
		defer wg.Done()
		s.Run(runCtx, a.Config.Archive.Interval.Duration, a.Config.Archive.Workers, nil)
	}()
	go func() {
		defer wg.Done()
		retain := time.NewTicker(a.Config.Archive.Retain.Duration)
		defer retain.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-retain.C:
				if n, err := s.RetainAll(runCtx); err != nil && runCtx.Err() == nil {
					a.Log.Error("archive retention", "err", err)
				} else if n > 0 {
					a.Log.Info("archive retention", "deleted", n)
				}
			}
		}
	}()
	a.stopArchive = func() { cancel(); wg.Wait() }
	return nil
}
