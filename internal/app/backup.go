package app

import (
	"errors"
	"log/slog"

	"github.com/mailgate/mailgate/internal/backup"
	"github.com/mailgate/mailgate/internal/config"
)

// ErrBackupExternal is returned by BackupOptions for a node whose store or
// blobs live outside its data directory (PostgreSQL, S3): those are backed
// up with their own tools (docs/operations.md).
var ErrBackupExternal = errors.New("the store or blobs are not in data_dir: back up PostgreSQL with pg_dump or continuous archiving (PITR) and the S3 bucket with its versioning or replication; see docs/operations.md")

// BackupOptions describe what `mailgate backup` copies from a single
// node's data directory: the SQLite store, every local blob namespace
// (with the queries saying which blobs the store's rows still need) and
// the self-signed TLS certificate, if one was made. The archive's embedded
// search index (data_dir/archive-index) is not copied: it is written while
// the node runs, and is derived from the archived messages.
func BackupOptions(cfg config.Config, version string, log *slog.Logger) (backup.Options, error) {
	if cfg.Store.Driver == "postgres" || cfg.Blobs.Driver == "s3" {
		return backup.Options{}, ErrBackupExternal
	}
	return backup.Options{
		DataDir:    cfg.DataDir,
		Node:       cfg.NodeID,
		Namespaces: []string{spoolBlobs, quarantineBlobs, mailboxBlobs, archiveBlobs},
		Refs: map[string]string{
			// Queued messages, and bodies the archiver has yet to take.
			spoolBlobs: `SELECT blob_key FROM messages WHERE done = 0 AND corrupt = ''
				UNION SELECT blob_key FROM archive_pending`,
			quarantineBlobs: `SELECT DISTINCT blob_key FROM quarantine WHERE state = 'held'`,
			mailboxBlobs:    `SELECT DISTINCT blob_key FROM mailbox_messages`,
			archiveBlobs:    `SELECT DISTINCT blob_key FROM archive_blobs`,
		},
		Files:   []string{"tls"},
		Version: version,
		Log:     log,
	}, nil
}
