package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mailgate/mailgate/internal/admin"
	"github.com/mailgate/mailgate/internal/app"
)

// Recipient verification: a domain's recipient check, its directory
// synchronisation and the synchronised addresses (docs/console.md).

func domainRecipientCheckCmd(g *globals) *cobra.Command {
	var source, adminAddr string
	cmd := &cobra.Command{Use: "recipient-check DOMAIN [none|directory|callout]",
		Short: "Show or set how RCPT checks addresses the user list does not know",
		Long: `How RCPT decides about an address of the domain that is not in the tenant's user list
(and is no mailing list): none (refused with 550 5.1.1), directory (accepted when the
directory synchronised from Microsoft Graph or Google lists it; --source graph|google, and
--admin for Google: the Workspace administrator the service account acts as) or callout
(the domain's routes are asked at RCPT, answers cached). The API credentials are the
hand-back's: 'mailgate continuity credentials'.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			svc := a.Admin()
			var st admin.RecipientCheckState
			var err error
			if len(args) == 2 {
				st, err = svc.SetRecipientCheck(ctx, operator(), args[0], args[1], source, adminAddr)
			} else {
				st, err = svc.RecipientCheck(ctx, operator(), args[0])
			}
			if err != nil {
				return err
			}
			printCheck(g, st)
			return nil
		})}
	cmd.Flags().StringVar(&source, "source", "", "directory source: graph or google")
	cmd.Flags().StringVar(&adminAddr, "admin", "", "google: the Workspace administrator's address the service account acts as")
	return cmd
}

func printCheck(g *globals, st admin.RecipientCheckState) {
	fmt.Fprintf(g.stdout, "domain:          %s\nrecipient check: %s\n", st.Domain, st.Mode)
	if st.Source != "" {
		src := st.Source
		if st.Admin != "" {
			src += " (as " + st.Admin + ")"
		}
		fmt.Fprintf(g.stdout, "source:          %s\n", src)
	}
	if st.Mode == "directory" || st.Entries > 0 {
		fmt.Fprintf(g.stdout, "directory:       %d addresses, synchronised %s\n", st.Entries, when(st.Synced))
		fmt.Fprintf(g.stdout, "last attempt:    %s\n", when(st.Attempted))
	}
	if st.Error != "" {
		fmt.Fprintf(g.stdout, "problem:         %s\n", st.Error)
	}
	if st.Held {
		fmt.Fprintf(g.stdout, "                 apply the held list with: mailgate domain sync %s --confirm\n", st.Domain)
	}
}

func domainSyncCmd(g *globals) *cobra.Command {
	var confirm bool
	cmd := &cobra.Command{Use: "sync DOMAIN", Short: "Synchronise a domain's directory from its source now",
		Long: `Fetch the domain's users, aliases and groups from Microsoft Graph or Google and replace
its directory. A list that is empty or would remove more than half of the addresses is held
(the last list stays) until the sync is run again with --confirm.`,
		Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			res, err := a.Admin().SyncDirectory(ctx, operator(), args[0], confirm)
			if err != nil {
				return err
			}
			switch {
			case res.Held:
				fmt.Fprintf(g.stdout, "%s: NOT applied: %s (%d addresses upstream, %d now).\nThe last list stays; check the source, then run: mailgate domain sync %s --confirm\n",
					res.Domain, res.Reason, res.Fetched, res.Before, res.Domain)
			default:
				fmt.Fprintf(g.stdout, "%s: %d addresses (%d added, %d removed)\n", res.Domain, res.Fetched, res.Added, res.Removed)
			}
			return nil
		})}
	cmd.Flags().BoolVar(&confirm, "confirm", false, "apply the list even if it is empty or removes more than half of the addresses")
	return cmd
}

func domainDirectoryCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "directory DOMAIN", Short: "List a domain's synchronised addresses", Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			st, es, err := a.Admin().Directory(ctx, operator(), args[0])
			if err != nil {
				return err
			}
			printCheck(g, st)
			fmt.Fprintln(g.stdout)
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ADDRESS\tKIND\tOF\tNAME")
			for _, e := range es {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Address, e.Kind, dash(e.Target), dash(strings.ReplaceAll(e.Name, "\t", " ")))
			}
			return tw.Flush()
		})}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
