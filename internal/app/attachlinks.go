package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/mailgate/mailgate/internal/attachlink"
	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/signedlink"
	"github.com/mailgate/mailgate/internal/store"
)

// linkBlobs is the blob namespace of attachment-link files.
const linkBlobs = "links"

// LinkPath is where the attachment download page is served.
const LinkPath = "/dl"

// AttachLinks is what the outbound pipeline needs to turn attachments
// into download links (attachlink.Rewrite) and what the page serves.
type AttachLinks struct {
	Blobs   blob.Store
	Records attachlink.Records
	BaseURL string // the download page's public address
	Key     func(ctx context.Context) ([]byte, error)
}

// openAttachLinks opens the links' blob namespace ("links": data_dir/links
// or the shared S3 bucket); their records are in the store.
func (a *App) openAttachLinks(ctx context.Context) error {
	ls, ok := a.Store.(store.AttachLinkStore)
	if !ok {
		return fmt.Errorf("store %T does not keep attachment links", a.Store)
	}
	blobs, err := openBlobs(ctx, a.Config, linkBlobs, 0, a.Log)
	if err != nil {
		return err
	}
	a.Links = &AttachLinks{Blobs: blobs, Records: attachlink.StoreRecords{S: ls}, BaseURL: a.ConsoleURL() + LinkPath,
		Key: func(ctx context.Context) ([]byte, error) { return signedlink.LoadKey(ctx, a.Store) }}
	return nil
}

// linkHandler serves the download page.
func (a *App) linkHandler() http.Handler {
	return &attachlink.Handler{Blobs: a.Links.Blobs, Records: a.Links.Records, Key: a.Links.Key,
		Now: a.Clock.Now, Log: a.Log.With("stage", "attachlink")}
}

// sweepLinks deletes expired links and their files (maintenance).
func (a *App) sweepLinks(ctx context.Context) {
	if a.Links == nil {
		return
	}
	if _, err := attachlink.Sweep(ctx, a.Links.Blobs, a.Links.Records, a.Clock.Now()); err != nil && !errors.Is(err, context.Canceled) {
		a.Log.Error("attachment link sweep", "err", err)
	}
}
