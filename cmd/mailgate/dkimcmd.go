package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/dkimsign"
)

func dkimCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "dkim", Short: "DKIM signing keys of outbound mail"}
	var check bool
	records := &cobra.Command{
		Use:   "records DOMAIN",
		Short: "Show the DKIM records to publish for a domain (keys are generated on first use)",
		Long: "Shows the TXT records of the domain's signing keys, from its dkim.selector, dkim.algorithms and\n" +
			"dkim.previous_selector settings (set them with `mailgate policy set --domain`). With --check each\n" +
			"record is looked up through the configured resolver and compared with the key mailgate signs with,\n" +
			"and the domain's SPF and DMARC records are shown with what to publish when they are missing.",
		Args: cobra.ExactArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			dom := strings.ToLower(strings.TrimSuffix(args[0], "."))
			d, err := a.Store.DomainByName(ctx, dom)
			if err != nil {
				return fmt.Errorf("domain %s: %w", dom, err)
			}
			recs, err := a.DKIMRecords(ctx, d.TenantID, dom)
			if err != nil {
				return err
			}
			if len(recs) == 0 {
				return fmt.Errorf("%s does not sign: set %s for it first (mailgate policy set --domain %s %s NAME)", dom, dkimsign.KeySelector, dom, dkimsign.KeySelector)
			}
			var results []dkimsign.CheckResult
			if check {
				results = dkimsign.Check(ctx, a.Resolver, recs)
			}
			failed := 0
			for i, r := range recs {
				state := "active"
				if !r.Active {
					state = "previous (keep published until mail signed with it has been delivered)"
				}
				fmt.Fprintf(g.stdout, "; %s %s, %s\n%s\n", r.Selector, r.Algorithm, state, r.Zone)
				if check {
					if results[i].OK {
						fmt.Fprintln(g.stdout, "; published: OK")
					} else {
						failed++
						fmt.Fprintf(g.stdout, "; published: NO - %s\n", results[i].Problem)
					}
				}
			}
			if check {
				spf := dkimsign.CheckSPF(ctx, a.Resolver, dom, a.Config.Hostname)
				dmarc := dkimsign.CheckDMARC(ctx, a.Resolver, dom, failed == 0)
				for _, r := range []struct {
					what string
					rec  dkimsign.AuthRecord
				}{{"SPF", spf}, {"DMARC", dmarc}} {
					switch {
					case r.rec.OK:
						fmt.Fprintf(g.stdout, "; %s published: OK\n%s. IN TXT %q\n", r.what, r.rec.Name, r.rec.Published)
					case r.rec.Published != "":
						fmt.Fprintf(g.stdout, "; %s published without %s: %q; suggested:\n%s. IN TXT %q\n", r.what, a.Config.Hostname, r.rec.Published, r.rec.Name, r.rec.Suggested)
					default:
						fmt.Fprintf(g.stdout, "; %s: none published; suggested:\n%s. IN TXT %q\n", r.what, r.rec.Name, r.rec.Suggested)
					}
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d DKIM records are not published as shown", failed, len(recs))
			}
			return nil
		}),
	}
	records.Flags().BoolVar(&check, "check", false, "look the records up through the configured resolver")
	c.AddCommand(records)
	return c
}
