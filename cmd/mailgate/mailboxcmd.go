package main

import (
	"context"
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mailgate/mailgate/internal/app"
)

func mailboxCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "mailbox", Short: "Emergency mailboxes: quotas and the tenant's contracted disk"}
	c.AddCommand(&cobra.Command{Use: "usage TENANT", Short: "Each mailbox's quota and use, and the allocations against the contract (mailbox.contract_mb)", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			op, _, err := inTenant(ctx, a, args[0])
			if err != nil {
				return err
			}
			u, err := a.Admin().MailboxesOverview(ctx, op)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ADDRESS\tQUOTA-MB\tUSED-MB\tMESSAGES\tLAST-LOGIN")
			for _, m := range u.Mailboxes {
				quota, last := fmt.Sprint(m.QuotaMB), "-"
				if m.QuotaMB == 0 {
					quota = "unlimited"
				}
				if !m.LastLogin.IsZero() {
					last = m.LastLogin.UTC().Format("2006-01-02 15:04")
				}
				fmt.Fprintf(tw, "%s\t%s\t%.1f\t%d\t%s\n", m.Address, quota, float64(m.UsedBytes)/(1<<20), m.Messages, last)
			}
			tw.Flush()
			contract := "not set (mailbox.contract_mb)"
			if u.ContractMB > 0 {
				contract = fmt.Sprintf("%d MB", u.ContractMB)
			}
			fmt.Fprintf(g.stdout, "allocated %d MB in %d mailboxes (%d unlimited), used %.1f MB; contract %s\n",
				u.AllocatedMB, len(u.Mailboxes), u.Unlimited, float64(u.UsedBytes)/(1<<20), contract)
			if u.OverContract {
				fmt.Fprintf(g.stdout, "WARNING: the mailboxes' allocations exceed the contracted %d MB", u.ContractMB)
				if u.Unlimited > 0 {
					fmt.Fprintf(g.stdout, " (%d mailboxes have no limit)", u.Unlimited)
				}
				fmt.Fprintln(g.stdout)
			}
			return nil
		})})
	c.AddCommand(&cobra.Command{Use: "quota ADDRESS MB", Short: "Set a user's mailbox quota in MB (0: no limit); new mailboxes get mailbox.quota_mb", Args: cobra.ExactArgs(2),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			n, err := strconv.ParseInt(args[1], 10, 64)
			if err != nil {
				return fmt.Errorf("quota: a number of MB, 0 for no limit (got %q)", args[1])
			}
			return a.Admin().SetMailboxQuota(ctx, operator(), args[0], n)
		})})
	return c
}
