package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mailgate/mailgate/internal/app"
)

func linksCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "links", Short: "Attachment download links of outbound mail"}
	var sender string
	var limit int
	list := &cobra.Command{Use: "list TENANT", Short: "List a tenant's links, newest first", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, _, err := inTenant(ctx, a, args[0])
			if err != nil {
				return err
			}
			ls, err := a.Admin().Links(ctx, op, sender, limit)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSENDER\tCREATED\tEXPIRES\tDOWNLOADS\tSTATE\tFILES")
			for _, l := range ls {
				var names []string
				for _, f := range l.Files {
					names = append(names, f.Name)
				}
				dl := fmt.Sprint(l.Downloads)
				if l.MaxDownloads > 0 {
					dl += fmt.Sprintf("/%d", l.MaxDownloads)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.ID, l.Sender, l.Created.Format("2006-01-02 15:04"),
					l.Expires.Format("2006-01-02 15:04"), dl, strings.ReplaceAll(l.State, "_", " "), strings.Join(names, ", "))
			}
			return tw.Flush()
		})}
	list.Flags().StringVar(&sender, "sender", "", "only this sender's links")
	list.Flags().IntVar(&limit, "limit", 100, "at most this many links")
	c.AddCommand(list)
	c.AddCommand(&cobra.Command{Use: "log TENANT ID", Short: "Show a link's download log", Args: cobra.ExactArgs(2),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, _, err := inTenant(ctx, a, args[0])
			if err != nil {
				return err
			}
			_, ds, err := a.Admin().Link(ctx, op, args[1])
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
			op, _, err := inTenant(ctx, a, args[0])
			if err != nil {
				return err
			}
			if err := a.Admin().RevokeLink(ctx, op, args[1]); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "link %s revoked\n", args[1])
			return nil
		})})
	return c
}
