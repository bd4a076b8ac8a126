package main

import (
	"context"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/web"
)

func reportCmd(g *globals) *cobra.Command {
	var f store.ReportFilter
	var tenant, by string
	var asCSV bool
	c := &cobra.Command{Use: "report", Short: "Daily or monthly counts per tenant, domain or address (received, spam, virus, quarantined, ...)",
		Long: `Counts of received, delivered, spam, virus, quarantined, released, rejected, deleted,
bounced and discarded mail, per day or month, from the same counters as the console's reports.
  mailgate report --tenant acme                       # last month and this month, per day
  mailgate report --tenant acme --group month --by domain
  mailgate report --tenant acme --address alice@example.com --from 2026-11-01 --csv`,
		Args: cobra.NoArgs,
		RunE: g.withApp(func(ctx context.Context, a *app.App, _ []string) error {
			t, err := tenantOf(ctx, a, tenant)
			if err != nil {
				return err
			}
			f.TenantID = t.ID
			now := a.Clock.Now().In(a.Zone())
			if f.FromDay == "" {
				f.FromDay = time.Date(now.Year(), now.Month()-1, 1, 0, 0, 0, 0, now.Location()).Format("2006-01-02")
			}
			if f.ToDay == "" {
				f.ToDay = now.Format("2006-01-02")
			}
			switch by {
			case "domain":
				f.ByDomain = true
			case "address":
				f.ByAddress = true
			case "":
			default:
				return fmt.Errorf("--by: domain or address")
			}
			rows, err := a.Store.Report(ctx, f)
			if err != nil {
				return err
			}
			if asCSV {
				return web.WriteReportCSV(g.stdout, rows)
			}
			head := append([]string{"period", "domain", "address"}, store.Metrics...)
			line := func(r store.ReportRow) []string {
				rec := []string{r.Period, r.Domain, r.Address}
				for _, m := range store.Metrics {
					rec = append(rec, strconv.FormatInt(r.Counts[m], 10))
				}
				return rec
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
			for i, h := range head {
				if i > 0 {
					fmt.Fprint(tw, "\t")
				}
				fmt.Fprint(tw, h)
			}
			fmt.Fprintln(tw, "\t")
			for _, r := range rows {
				for i, v := range line(r) {
					if i > 0 {
						fmt.Fprint(tw, "\t")
					}
					fmt.Fprint(tw, v)
				}
				fmt.Fprintln(tw, "\t")
			}
			return tw.Flush()
		})}
	c.Flags().StringVar(&tenant, "tenant", "", "tenant (required)")
	c.Flags().StringVar(&f.Domain, "domain", "", "only this domain")
	c.Flags().StringVar(&f.Address, "address", "", "only this address")
	c.Flags().StringVar(&f.FromDay, "from", "", "first day, YYYY-MM-DD (default: first of last month)")
	c.Flags().StringVar(&f.ToDay, "to", "", "last day, YYYY-MM-DD (default: today)")
	c.Flags().StringVar(&f.GroupBy, "group", "day", "day or month")
	c.Flags().StringVar(&by, "by", "", "split rows by domain or address")
	c.Flags().BoolVar(&asCSV, "csv", false, "CSV output (the console's download format)")
	return c
}
