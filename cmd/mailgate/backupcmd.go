package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/backup"
)

func backupCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "backup DEST",
		Short: "Copy the store and message files of this node into DEST, while it runs",
		Long: `Takes a consistent snapshot of a single node's data_dir (the SQLite store,
the queued, quarantined, mailbox and archived message files, the self-signed
TLS certificate; not the archive's search index) into DEST, which must not exist or be empty. mailgate may keep
running: writes pause only while the message files are linked (milliseconds
to seconds), never for the copy. Every file is read back and its SHA-256
recorded in DEST/manifest.json, written last.

A node on PostgreSQL or S3 is backed up with their own tools (pg_dump or
continuous archiving; bucket versioning or replication): see
docs/operations.md.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.loadConfig(cmd)
			if err != nil {
				return err
			}
			o, err := app.BackupOptions(cfg, version, newLogger(g.stderr, "warn"))
			if err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			m, err := backup.Run(cmd.Context(), o, args[0])
			if err != nil {
				return err
			}
			for _, k := range m.Missing {
				fmt.Fprintf(g.stdout, "backup: referred to by the store but already missing on this node: %s\n", k)
			}
			fmt.Fprintf(g.stdout, "backup: %s: store %d bytes, %d message files, %d other files, verified by SHA-256\n",
				args[0], m.Database.Size, len(m.Blobs), len(m.Files))
			return nil
		},
	}
}

func restoreCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "restore SRC",
		Short: "Restore a backup into the configured data_dir, which must be empty",
		Long: `Copies the backup in SRC (made by 'mailgate backup') into data_dir of the
configuration, checking every file against the manifest's SHA-256. data_dir
must not exist or be empty: a restore never overwrites a node's data. The
files are assembled next to data_dir and moved into place only when all of
them matched. Start mailgate afterwards with the same node_id.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.loadConfig(cmd)
			if err != nil {
				return err
			}
			if _, err := app.BackupOptions(cfg, version, nil); err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			m, err := backup.Restore(cmd.Context(), args[0], cfg.DataDir, newLogger(g.stderr, "warn"))
			if err != nil {
				return err
			}
			if m.Node != cfg.NodeID {
				fmt.Fprintf(g.stdout, "restore: the backup was taken on node %q, this configuration is node %q: set node_id = %q\n", m.Node, cfg.NodeID, m.Node)
			}
			fmt.Fprintf(g.stdout, "restore: %s into %s: store and %d message files verified (backup of %s, mailgate %s)\n",
				args[0], cfg.DataDir, len(m.Blobs), m.Created.Format("2006-01-02 15:04:05 MST"), m.Version)
			return nil
		},
	}
}
