package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/store"
)

func linksCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "links", Short: "Attachment download links of outbound mail"}
	var sender string
	var limit int
	list := &cobra.Command{Use: "list TENANT", Short: "List a tenant's links, newest first", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			t, err := tenantOf(ctx, a, args[0])
			if err != nil {
				return err
			}
			ls, err := a.Store.(store.AttachLinkStore).AttachLinks(ctx, t.ID, strings.ToLower(sender), limit)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSENDER\tCREATED\tEXPIRES\tDOWNLOADS\tSTATE\tFILES")
			for _, s := range ls {
				l, err := a.Links.Records.Get(ctx, t.ID, s.ID)
				if err != nil {
					return err
				}
				state := "active"
				switch {
				case l.Revoked:
					state = "revoked"
				case !a.Clock.Now().Before(l.Expires):
					state = "expired"
				case l.MaxDownloads > 0 && l.Downloads >= l.MaxDownloads:
					state = "used up"
				}
				var names []string
				for _, f := range l.Files {
					names = append(names, f.Name)
				}
				dl := fmt.Sprint(l.Downloads)
				if l.MaxDownloads > 0 {
					dl += fmt.Sprintf("/%d", l.MaxDownloads)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.ID, l.Sender, l.Created.Format("2006-01-02 15:04"),
					l.Expires.Format("2006-01-02 15:04"), dl, state, strings.Join(names, ", "))
			}
			return tw.Flush()
		})}
	list.Flags().StringVar(&sender, "sender", "", "only this sender's links")
	list.Flags().IntVar(&limit, "limit", 100, "at most this many links")
	c.AddCommand(list)
	c.AddCommand(&cobra.Command{Use: "log TENANT ID", Short: "Show a link's download log", Args: cobra.ExactArgs(2),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			t, err := tenantOf(ctx, a, args[0])
			if err != nil {
				return err
			}
			if _, err := a.Links.Records.Get(ctx, t.ID, args[1]); err != nil {
				return err
			}
			ds, err := a.Links.Records.Downloads(ctx, t.ID, args[1])
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tCLIENT\tFILE")
			for _, d := range ds {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", d.At.Format("2006-01-02 15:04:05"), d.From, d.File)
			}
			return tw.Flush()
		})})
	c.AddCommand(&cobra.Command{Use: "revoke TENANT ID", Short: "Make a link unusable at once", Args: cobra.ExactArgs(2),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, t, err := inTenant(ctx, a, args[0])
			if err != nil {
				return err
			}
			if err := a.Links.Records.Revoke(ctx, t.ID, args[1]); err != nil {
				return err
			}
			if err := a.Admin().Audit(ctx, op, t.ID, "link.revoke", args[1], "", ""); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "link %s revoked\n", args[1])
			return nil
		})})
	return c
}
