package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailgate/mailgate/internal/admin"
	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/archive"
	"github.com/mailgate/mailgate/internal/store"
)

func archiveCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "archive", Short: "The audit archive: settings, search, verification, proofs, import and export",
		Long: `The audit archive keeps every message a tenant sends and receives, in a tamper-evident log
(docs/archive.md). Every command acts as an operator and is audited.`}
	c.AddCommand(archiveEnableCmd(g), archiveDisableCmd(g), archiveStatusCmd(g), archiveGrantCmd(g, true), archiveGrantCmd(g, false),
		archiveVerifyCmd(g), archiveProofCmd(g), archivePubkeyCmd(g), archiveSearchCmd(g), archiveShowCmd(g),
		archiveImportCmd(g), archiveExportCmd(g), archiveHoldCmd(g), archiveRunCmd(g), archiveResendCmd(g), archiveReindexCmd(g))
	return c
}

// archiveActor is the operator acting on --tenant, with the archive open
// (without its search index unless the command searches).
func archiveActor(ctx context.Context, a *app.App, tenant string, index bool) (admin.Actor, error) {
	if tenant == "" {
		return admin.Actor{}, errors.New("give --tenant T")
	}
	act, _, err := inTenant(ctx, a, tenant)
	if err != nil {
		return act, err
	}
	if index {
		var s *archive.Service
		if s, err = a.OpenArchive(ctx); err == nil {
			// This process holds the index now: bring it up to date first.
			_, err = s.IndexPending(ctx)
		}
	} else {
		_, err = a.OpenArchiveWithoutIndex(ctx)
	}
	return act, err
}

type settingsFlags struct {
	mode, rule, onFull string
	retention          int
	capacity           string
	userSearch         bool
}

func (f *settingsFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.mode, "mode", "", "all, in (inbound only), out (outbound only) or rule")
	c.Flags().StringVar(&f.rule, "rule", "", `with --mode rule: the search query selecting the messages kept, e.g. '社外秘' or 'attachment:confidential'`)
	c.Flags().IntVar(&f.retention, "retention-days", -1, "days bodies are kept (0 = default 183)")
	c.Flags().StringVar(&f.capacity, "capacity", "", "capacity, e.g. 20G (0 = 10G per 10 addresses)")
	c.Flags().StringVar(&f.onFull, "when-full", "", "stop (log the gap, mail still flows) or delete-oldest (delete the oldest day)")
	c.Flags().BoolVar(&f.userSearch, "user-search", false, "let end users search, view and download their own archived mail in the console (--user-search=false: not)")
}

func (f *settingsFlags) apply(c *cobra.Command, s *store.ArchiveSettings) error {
	if c.Flags().Changed("mode") {
		s.Mode = f.mode
	}
	if c.Flags().Changed("rule") {
		s.Rule = f.rule
	}
	if f.retention >= 0 {
		s.RetentionDays = f.retention
	}
	if c.Flags().Changed("capacity") {
		q, err := archive.ParseQuery("larger:" + f.capacity)
		if err != nil {
			return fmt.Errorf("--capacity %q: %w", f.capacity, err)
		}
		s.CapacityBytes = q.MinSize
	}
	if c.Flags().Changed("when-full") {
		s.OnFull = f.onFull
	}
	if c.Flags().Changed("user-search") {
		s.UserSearch = f.userSearch
	}
	return nil
}

func archiveEnableCmd(g *globals) *cobra.Command {
	var tenant string
	var sf settingsFlags
	c := &cobra.Command{Use: "enable", Short: "Turn archiving on for a tenant (or change its settings)", Args: cobra.NoArgs}
	c.Flags().StringVar(&tenant, "tenant", "", "tenant")
	sf.register(c)
	c.RunE = g.withApp(func(ctx context.Context, a *app.App, _ []string) error {
		act, err := archiveActor(ctx, a, tenant, false)
		if err != nil {
			return err
		}
		ad := a.Admin()
		s, err := ad.ArchiveSettings(ctx, act)
		if err != nil {
			return err
		}
		s.Enabled = true
		if err := sf.apply(c, &s); err != nil {
			return err
		}
		if err := ad.SetArchiveSettings(ctx, act, s); err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "archiving on for %s\n", tenant)
		return nil
	})
	return c
}

func archiveDisableCmd(g *globals) *cobra.Command {
	var tenant string
	c := &cobra.Command{Use: "disable", Short: "Stop archiving a tenant's new mail (what is archived stays, with its retention)", Args: cobra.NoArgs}
	c.Flags().StringVar(&tenant, "tenant", "", "tenant")
	c.RunE = g.withApp(func(ctx context.Context, a *app.App, _ []string) error {
		act, err := archiveActor(ctx, a, tenant, false)
		if err != nil {
			return err
		}
		ad := a.Admin()
		s, err := ad.ArchiveSettings(ctx, act)
		if err != nil {
			return err
		}
		s.Enabled = false
		if err := ad.SetArchiveSettings(ctx, act, s); err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "archiving off for %s (logged in the archive)\n", tenant)
		return nil
	})
	return c
}

func archiveStatusCmd(g *globals) *cobra.Command {
	var tenant string
	c := &cobra.Command{Use: "status", Short: "Show a tenant's archive: settings, usage, latest checkpoint, grants, holds", Args: cobra.NoArgs}
	c.Flags().StringVar(&tenant, "tenant", "", "tenant")
	c.RunE = g.withApp(func(ctx context.Context, a *app.App, _ []string) error {
		act, err := archiveActor(ctx, a, tenant, false)
		if err != nil {
			return err
		}
		o, err := a.Admin().ArchiveOverview(ctx, act)
		if err != nil {
			return err
		}
		s := o.Settings
		fmt.Fprintf(g.stdout, "enabled: %v\nmode: %s %s\nretention: %d days\nwhen full: %s\nend users search their own mail: %v\n", s.Enabled, s.Mode, s.Rule, orDefault(s.RetentionDays), s.OnFull, s.UserSearch)
		u := o.Stats.Usage
		fmt.Fprintf(g.stdout, "messages: %d (%d in, %d out, %d imported), log entries: %d, waiting: %d\n", u.Messages, o.Stats.Inbound, o.Stats.Outbound, o.Stats.Imported, u.Entries, u.Pending)
		fmt.Fprintf(g.stdout, "stored: %d bytes of %d (%.1f%%); messages' total size %d bytes\n", u.Bytes, o.Capacity, pct(u.Bytes, o.Capacity), u.LogicalBytes)
		if o.Checkpoint != nil {
			fmt.Fprintf(g.stdout, "latest checkpoint:\n%s", indent(o.Checkpoint.Text))
		}
		if o.LastVerify != nil {
			fmt.Fprintf(g.stdout, "last verification: %s by %s: %s\n", o.LastVerify.At.Format(time.RFC3339), o.LastVerify.Actor, o.LastVerify.After)
		}
		fmt.Fprintf(g.stdout, "public key: %s\naccess: %s\n", o.PublicKey, strings.Join(o.Grants, ", "))
		for _, h := range o.Holds {
			fmt.Fprintf(g.stdout, "hold %d: %s %s (%s, by %s)\n", h.ID, h.Kind, h.Value, h.Reason, h.By)
		}
		return nil
	})
	return c
}

func orDefault(d int) int {
	if d <= 0 {
		return store.DefaultArchiveRetentionDays
	}
	return d
}

func pct(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) * 100 / float64(b)
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n  ") + "\n"
}

func archiveGrantCmd(g *globals, on bool) *cobra.Command {
	var tenant string
	use, short := "grant LOGIN", "Give an administrator (or api:TOKEN) access to the tenant's archive"
	if !on {
		use, short = "revoke LOGIN", "Take archive access away"
	}
	c := &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(1)}
	c.Flags().StringVar(&tenant, "tenant", "", "tenant")
	c.RunE = g.withApp(func(ctx context.Context, a *app.App, args []string) error {
		act, err := archiveActor(ctx, a, tenant, false)
		if err != nil {
			return err
		}
		return a.Admin().GrantArchiveAccess(ctx, act, args[0], on)
	})
	return c
}

func archiveVerifyCmd(g *globals) *cobra.Command {
	var tenant string
	var asJSON bool
	c := &cobra.Command{Use: "verify", Short: "Check every archived message against the log, its Merkle tree and the signed checkpoints",
		Long: `Reads every message of the tenant's archive and checks it against its logged SHA-256, every log
entry against its leaf, the leaves against every signed checkpoint, and the checkpoints' signatures.
Each problem is reported with its position and ID: a changed message (and which bytes), a body or a
log entry deleted without a logged deletion, entries moved in the log. Exit status 1 on any problem.`,
		Args: cobra.NoArgs}
	c.Flags().StringVar(&tenant, "tenant", "", "tenant")
	c.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	c.RunE = g.withApp(func(ctx context.Context, a *app.App, _ []string) error {
		act, err := archiveActor(ctx, a, tenant, false)
		if err != nil {
			return err
		}
		r, err := a.Admin().VerifyArchive(ctx, act)
		if err != nil {
			return err
		}
		if asJSON {
			b, _ := json.MarshalIndent(r, "", "  ")
			fmt.Fprintln(g.stdout, string(b))
		} else {
			fmt.Fprintf(g.stdout, "%d log entries, %d messages (%d deleted by logged deletions)\n", r.Entries, r.Messages, r.Deleted)
			if r.Checkpoint != "" {
				fmt.Fprintf(g.stdout, "latest checkpoint:\n%s", indent(r.Checkpoint))
			}
			for _, p := range r.Problems {
				fmt.Fprintf(g.stdout, "%s at %d: %s\n", strings.ToUpper(p.Kind), p.Seq, p.Detail)
			}
		}
		if !r.OK() {
			return fmt.Errorf("archive of %s does NOT verify: %d problems", tenant, len(r.Problems))
		}
		fmt.Fprintln(g.stdout, "OK: the archive verifies")
		return nil
	})
	return c
}

// tenantOfEntry finds the tenant holding an archive ID (IDs are random
// and unique in practice) when --tenant is not given.
func tenantOfEntry(ctx context.Context, a *app.App, tenant, id string) (string, error) {
	if tenant != "" {
		return tenant, nil
	}
	ts, err := a.Store.Tenants(ctx)
	if err != nil {
		return "", err
	}
	for _, t := range ts {
		if _, err := a.Store.ArchiveEntry(ctx, t.ID, id); err == nil {
			return t.Name, nil
		}
	}
	return "", fmt.Errorf("archive entry %s: %w", id, store.ErrNotFound)
}

func archiveProofCmd(g *globals) *cobra.Command {
	var tenant string
	c := &cobra.Command{Use: "proof ID", Short: "Print the inclusion proof of an archived message (JSON)",
		Long: `Prints a self-contained proof that the message is in the tenant's archive log as signed by the
latest checkpoint. An auditor checks it with the message (mailgate archive show ID > m.eml) and the
public key (mailgate archive pubkey, or the console) using docs/archive-check.py, without mailgate.`,
		Args: cobra.ExactArgs(1)}
	c.Flags().StringVar(&tenant, "tenant", "", "tenant (found from the ID when not given)")
	c.RunE = g.withApp(func(ctx context.Context, a *app.App, args []string) error {
		name, err := tenantOfEntry(ctx, a, tenant, args[0])
		if err != nil {
			return err
		}
		act, err := archiveActor(ctx, a, name, false)
		if err != nil {
			return err
		}
		p, err := a.Admin().ArchiveProof(ctx, act, args[0])
		if err != nil {
			return err
		}
		b, _ := json.MarshalIndent(p, "", "  ")
		fmt.Fprintln(g.stdout, string(b))
		return nil
	})
	return c
}

func archivePubkeyCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "pubkey", Short: "Print the installation's archive checkpoint public key", Args: cobra.NoArgs,
		RunE: g.withApp(func(ctx context.Context, a *app.App, _ []string) error {
			if _, err := a.OpenArchiveWithoutIndex(ctx); err != nil {
				return err
			}
			k, err := a.Admin().ArchivePublicKey(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, k)
			return nil
		})}
}

func archiveSearchCmd(g *globals) *cobra.Command {
	var tenant, cursor, sortBy string
	var limit int
	c := &cobra.Command{Use: "search QUERY...", Short: "Search a tenant's archive",
		Long: `Words (anywhere) and field:value terms: from: to: cc: subject: body: attachment:
after:YYYY-MM-DD before:YYYY-MM-DD larger:SIZE smaller:SIZE has:attachment dir:in|out verdict:NAME
imported:yes|no addr:ADDRESS (that exact address as envelope sender or recipient, From, To or Cc).
Japanese words of two characters or more are found (会議, 東京). The search is
audited. The embedded index is held by the running server: search from the console there.`,
		Args: cobra.ArbitraryArgs}
	c.Flags().StringVar(&tenant, "tenant", "", "tenant")
	c.Flags().StringVar(&cursor, "cursor", "", "next page: the cursor printed by the previous page")
	c.Flags().StringVar(&sortBy, "sort", "relevance", "relevance or date")
	c.Flags().IntVar(&limit, "limit", 50, "results per page")
	c.RunE = g.withApp(func(ctx context.Context, a *app.App, args []string) error {
		act, err := archiveActor(ctx, a, tenant, true)
		if err != nil {
			return err
		}
		q, err := archive.ParseQuery(strings.Join(args, " "))
		if err != nil {
			return err
		}
		h, err := a.Admin().SearchArchive(ctx, act, q, archive.Page{Sort: sortBy, Limit: limit, Cursor: cursor})
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tRECEIVED\tDIR\tFROM\tSUBJECT\tSIZE")
		for _, e := range h.Entries {
			dir := string(e.Direction)
			if e.Imported {
				dir = "imp"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", e.ID, e.Received.Format("2006-01-02 15:04"), dir, trunc(e.FromHdr, 40), trunc(e.Subject, 60), e.Size)
		}
		tw.Flush()
		if h.Next != "" {
			fmt.Fprintf(g.stdout, "more: --cursor %s\n", h.Next)
		}
		return nil
	})
	return c
}

func trunc(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func archiveShowCmd(g *globals) *cobra.Command {
	var tenant string
	c := &cobra.Command{Use: "show ID", Short: "Write an archived message as it was received (.eml) to standard output", Args: cobra.ExactArgs(1)}
	c.Flags().StringVar(&tenant, "tenant", "", "tenant (found from the ID when not given)")
	c.RunE = g.withApp(func(ctx context.Context, a *app.App, args []string) error {
		name, err := tenantOfEntry(ctx, a, tenant, args[0])
		if err != nil {
			return err
		}
		act, err := archiveActor(ctx, a, name, false)
		if err != nil {
			return err
		}
		_, raw, err := a.Admin().ArchiveMessage(ctx, act, args[0], "download")
		if err != nil {
			return err
		}
		_, err = g.stdout.Write(raw)
		return err
	})
	return c
}

func archiveResendCmd(g *globals) *cobra.Command {
	var tenant string
	var to []string
	c := &cobra.Command{Use: "resend ID", Short: "Send an archived message again to its recipients, or forward it with --to (not imported mail)", Args: cobra.ExactArgs(1)}
	c.Flags().StringVar(&tenant, "tenant", "", "tenant (found from the ID when not given)")
	c.Flags().StringSliceVar(&to, "to", nil, "forward to these addresses instead of the original recipients")
	c.RunE = g.withApp(func(ctx context.Context, a *app.App, args []string) error {
		name, err := tenantOfEntry(ctx, a, tenant, args[0])
		if err != nil {
			return err
		}
		act, err := archiveActor(ctx, a, name, false)
		if err != nil {
			return err
		}
		qid, err := a.Admin().ResendArchived(ctx, act, args[0], to)
		if err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "queued as %s\n", qid)
		return nil
	})
	return c
}

func archiveImportCmd(g *globals) *cobra.Command {
	var tenant string
	c := &cobra.Command{Use: "import FILE...", Short: "Import .eml files and mbox files into a tenant's archive (marked imported)",
		Long: `Each FILE ending in .eml is one message; any other file is read as mbox (the format of
Thunderbird's local folders and most mail programs' exports). Imported messages keep their Date,
are marked imported with who imported them from which file, and cannot be re-sent or forwarded.
The running server's archiver adds them to the search index.`,
		Args: cobra.MinimumNArgs(1)}
	c.Flags().StringVar(&tenant, "tenant", "", "tenant")
	c.RunE = g.withApp(func(ctx context.Context, a *app.App, args []string) error {
		act, err := archiveActor(ctx, a, tenant, false)
		if err != nil {
			return err
		}
		failed := 0
		for _, p := range args {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			res, err := a.Admin().ImportArchive(ctx, act, filepath.Base(p), f, a.Config.Limits.MaxMessageBytes)
			f.Close()
			if err != nil {
				fmt.Fprintf(g.stderr, "%s: %v\n", p, err)
				failed++
				continue
			}
			fmt.Fprintf(g.stdout, "%s: %d imported\n", p, res.Imported)
			for _, f := range res.Failed {
				fmt.Fprintf(g.stderr, "  %s\n", f)
				failed++
			}
		}
		if failed > 0 {
			return fmt.Errorf("%d not imported", failed)
		}
		return nil
	})
	return c
}

func archiveExportCmd(g *globals) *cobra.Command {
	var tenant, format, out string
	c := &cobra.Command{Use: "export QUERY...", Short: "Export what a search finds as mbox or as a ZIP of .eml files with a manifest and inclusion proofs", Args: cobra.ArbitraryArgs}
	c.Flags().StringVar(&tenant, "tenant", "", "tenant")
	c.Flags().StringVar(&format, "format", "zip", "zip or mbox")
	c.Flags().StringVar(&out, "out", "", "output file (required)")
	c.RunE = g.withApp(func(ctx context.Context, a *app.App, args []string) error {
		if out == "" {
			return errors.New("give --out FILE")
		}
		act, err := archiveActor(ctx, a, tenant, true)
		if err != nil {
			return err
		}
		q, err := archive.ParseQuery(strings.Join(args, " "))
		if err != nil {
			return err
		}
		f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if err := a.Admin().ExportArchive(ctx, act, q, format, f); err != nil {
			f.Close()
			os.Remove(out)
			return err
		}
		return f.Close()
	})
	return c
}

func archiveHoldCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "hold", Short: "Legal holds: suspend deletion of an address's mail or of a search's results"}
	var tenant, reason string
	add := &cobra.Command{Use: "add address|query VALUE", Short: "Place a legal hold", Args: cobra.ExactArgs(2)}
	add.Flags().StringVar(&tenant, "tenant", "", "tenant")
	add.Flags().StringVar(&reason, "reason", "", "why (kept with the hold and in the log)")
	add.RunE = g.withApp(func(ctx context.Context, a *app.App, args []string) error {
		act, err := archiveActor(ctx, a, tenant, false)
		if err != nil {
			return err
		}
		h, err := a.Admin().AddArchiveHold(ctx, act, args[0], args[1], reason)
		if err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "hold %d placed\n", h.ID)
		return nil
	})
	rm := &cobra.Command{Use: "remove ID", Short: "Lift a legal hold", Args: cobra.ExactArgs(1)}
	rm.Flags().StringVar(&tenant, "tenant", "", "tenant")
	rm.RunE = g.withApp(func(ctx context.Context, a *app.App, args []string) error {
		act, err := archiveActor(ctx, a, tenant, false)
		if err != nil {
			return err
		}
		id, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil {
			return fmt.Errorf("hold ID %q", args[0])
		}
		return a.Admin().DeleteArchiveHold(ctx, act, id)
	})
	c.AddCommand(add, rm)
	return c
}

func archiveRunCmd(g *globals) *cobra.Command {
	var workers int
	c := &cobra.Command{Use: "run", Short: "Archive every message waiting now, index, sign checkpoints and apply retention (the server does this by itself)", Args: cobra.NoArgs}
	c.Flags().IntVar(&workers, "workers", 2, "messages archived in parallel")
	c.RunE = g.withApp(func(ctx context.Context, a *app.App, _ []string) error {
		s, err := a.OpenArchive(ctx)
		if err != nil {
			return err
		}
		n, err := s.RunOnce(ctx, workers)
		if err != nil {
			return err
		}
		d, err := s.RetainAll(ctx)
		fmt.Fprintf(g.stdout, "%d archived, %d deleted by retention\n", n, d)
		return err
	})
	return c
}

func archiveReindexCmd(g *globals) *cobra.Command {
	var tenant string
	c := &cobra.Command{Use: "reindex", Short: "Rebuild the archive's search index from the archived messages (after a restore: the index is not in a backup)", Args: cobra.NoArgs}
	c.Flags().StringVar(&tenant, "tenant", "", "only this tenant (default: every tenant)")
	c.RunE = g.withApp(func(ctx context.Context, a *app.App, _ []string) error {
		var tid int64
		if tenant != "" {
			act, _, err := inTenant(ctx, a, tenant)
			if err != nil {
				return err
			}
			tid = act.TenantID
		}
		s, err := a.OpenArchive(ctx)
		if err != nil {
			return err
		}
		n, err := s.Reindex(ctx, tid)
		fmt.Fprintf(g.stdout, "%d messages indexed\n", n)
		return err
	})
	return c
}
