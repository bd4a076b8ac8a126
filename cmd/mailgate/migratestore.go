package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/store/migratestore"
	"github.com/mailgate/mailgate/internal/store/postgres"
)

func migrateStoreCmd(g *globals) *cobra.Command {
	var from, to string
	var force bool
	cmd := &cobra.Command{
		Use:   "migrate-store --from sqlite:PATH [--to postgres://...]",
		Short: "Move a single-node store (SQLite and local blobs) to PostgreSQL and S3",
		Long: `Copies every table of a single node's SQLite store into a PostgreSQL database
and the message bodies and quarantined copies its rows refer to from its
data_dir into the S3 bucket of [blobs] (when [blobs] driver = "s3").

--from names the SQLite database (data_dir/mailgate.db, or the data_dir).
--to is the PostgreSQL connection string; without it, [store] dsn and
password_file of the configuration are used. The schema is created or
upgraded first, as 'mailgate migrate' does.

Stop mailgate on the source first: a node seen within cluster.dead_after is
refused. The copy can be run again after an interruption and continues where
it stopped; at the end it counts every table's rows on both sides and reads
every copied blob back from S3 to compare its SHA-256. A target holding data
that was not copied from this source is refused unless --force.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig(cmd)
			if err != nil {
				return err
			}
			o, err := migrateStoreOptions(cfg, from, to)
			if err != nil {
				return err
			}
			o.Force = force
			o.Log = newLogger(g.stderr, "warn")
			o.Progress = func(s string) { fmt.Fprintln(g.stdout, "migrate-store:", s) }
			fmt.Fprintf(g.stdout, "migrate-store: from %s to %s\n", o.SQLite, describeTarget(o))
			rep, err := migratestore.Run(cmd.Context(), o)
			if err != nil {
				return fmt.Errorf("migrate-store: %w", err)
			}
			for _, t := range rep.Tables {
				fmt.Fprintf(g.stdout, "migrate-store: verified %-16s source=%d target=%d\n", t.Table, t.Source, t.Target)
			}
			for i, a := range rep.Absent {
				if i == 20 {
					fmt.Fprintf(g.stdout, "migrate-store: ... and %d more blobs absent from the source\n", len(rep.Absent)-i)
					break
				}
				fmt.Fprintf(g.stdout, "migrate-store: blob absent from the source (its message stays held or its copy gone, as on the source): %s\n", a)
			}
			if rep.Unreferenced > 0 {
				fmt.Fprintf(g.stdout, "migrate-store: %d blob(s) in the source that no row refers to (never acknowledged) were not copied\n", rep.Unreferenced)
			}
			blobs := "blobs stay in data_dir"
			if o.S3 != nil {
				blobs = fmt.Sprintf("%d blobs in S3 verified by SHA-256 (%d copied by this run)", rep.Blobs, rep.Copied)
			}
			fmt.Fprintf(g.stdout, "migrate-store: done: %d tables, %d rows verified; %s; %d absent from the source\n",
				len(rep.Tables), rep.Rows, blobs, len(rep.Absent))
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the single node's store: sqlite:PATH (its mailgate.db, or its data_dir)")
	cmd.Flags().StringVar(&to, "to", "", "the PostgreSQL database (default: [store] dsn of the configuration)")
	cmd.Flags().BoolVar(&force, "force", false, "copy into a database that holds data not copied from this source")
	cmd.MarkFlagRequired("from")
	return cmd
}

// migrateStoreOptions builds the copy's options from the flags and the
// configuration (the cluster's: [store], [blobs], node_id, cluster).
func migrateStoreOptions(cfg config.Config, from, to string) (migratestore.Options, error) {
	var o migratestore.Options
	path, ok := strings.CutPrefix(from, "sqlite:")
	if !ok || path == "" {
		return o, fmt.Errorf("--from must be sqlite:PATH (the single node's mailgate.db or data_dir), not %q", from)
	}
	if fi, err := os.Stat(path); err != nil {
		return o, fmt.Errorf("--from: %w", err)
	} else if fi.IsDir() {
		path = filepath.Join(path, "mailgate.db")
		if _, err := os.Stat(path); err != nil {
			return o, fmt.Errorf("--from: %w", err)
		}
	}
	o.SQLite, o.DataDir = path, filepath.Dir(path)
	switch {
	case to != "":
		if !strings.HasPrefix(to, "postgres://") && !strings.HasPrefix(to, "postgresql://") && !strings.Contains(to, "=") {
			return o, fmt.Errorf("--to must be a PostgreSQL connection string (postgres://... or key=value), not %q", to)
		}
		o.Target = postgres.Config{DSN: to}
	case cfg.Store.Driver == "postgres":
		pc, err := app.PostgresConfig(cfg.Store)
		if err != nil {
			return o, err
		}
		o.Target = pc
	default:
		return o, fmt.Errorf("no target: give --to postgres://... or set [store] driver = \"postgres\" and dsn in the configuration")
	}
	if cfg.Blobs.Driver == "s3" {
		c := app.S3Config(cfg)
		o.S3 = &c
	}
	o.Node = cfg.NodeID
	o.DeadAfter = cfg.Cluster.DeadAfter.Duration
	return o, nil
}

// describeTarget names the target without its password.
func describeTarget(o migratestore.Options) string {
	t := "PostgreSQL"
	if o.S3 != nil {
		t += fmt.Sprintf(" and S3 %s bucket %q", o.S3.Endpoint, o.S3.Bucket)
	}
	return t
}
