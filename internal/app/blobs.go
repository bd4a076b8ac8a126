package app

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/blob/local"
	"github.com/mailgate/mailgate/internal/blob/s3"
	"github.com/mailgate/mailgate/internal/config"
)

// Blob namespaces: the queue's message bodies, the quarantine's copies and the
// emergency mailboxes' messages. A new namespace belongs in BackupOptions too.
const (
	spoolBlobs      = "spool"
	quarantineBlobs = "quarantine"
	mailboxBlobs    = "mailbox"
)

// S3Config is the S3 blob store's configuration from [blobs], spilling
// large messages being received to data_dir/blob-spill.
func S3Config(cfg config.Config) s3.Config {
	b := cfg.Blobs
	return s3.Config{Endpoint: b.Endpoint, Bucket: b.Bucket, Region: b.Region, Prefix: b.Prefix,
		PathStyle: b.PathStyle, AccessKeyID: b.AccessKeyID, SecretAccessKey: b.SecretAccessKey, SecretFile: b.SecretFile,
		CAFile: b.CAFile, SpillDir: filepath.Join(cfg.DataDir, "blob-spill")}
}

// openBlobs opens one namespace of the configured blob store, written in
// this node's name. minFree applies to local files only.
func openBlobs(ctx context.Context, cfg config.Config, namespace string, minFree int64, log *slog.Logger) (blob.Store, error) {
	switch cfg.Blobs.Driver {
	case "s3":
		return s3.Open(ctx, S3Config(cfg), namespace, cfg.NodeID, log)
	case "local", "":
		return local.Open(filepath.Join(cfg.DataDir, namespace), cfg.NodeID, minFree, log)
	}
	return nil, fmt.Errorf("blobs.driver %q", cfg.Blobs.Driver)
}
