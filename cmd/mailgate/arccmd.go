package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/dkimsign"
)

func arcCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "arc", Short: "ARC sealing of the inbound copies mailgate delivers"}
	var check bool
	record := &cobra.Command{
		Use:   "record",
		Short: "Show the DNS record of the ARC sealing key (generated on first use)",
		Long: "Shows the TXT record that publishes the key mailgate seals inbound copies with ([arc] seal,\n" +
			"domain, selector and algorithm in the configuration). Publish it before receivers are told to\n" +
			"trust mailgate as a sealer. With --check the record is looked up through the configured\n" +
			"resolver and compared with the key.",
		Args: cobra.NoArgs,
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			rec, err := a.ARCRecord(ctx)
			if err != nil {
				return err
			}
			if rec == nil {
				return errors.New("ARC sealing is off: set [arc] seal = true in the configuration first")
			}
			fmt.Fprintf(g.stdout, "; ARC sealing key of %s, %s\n%s\n", a.Config.ARC.Domain, rec.Algorithm, rec.Zone)
			if check {
				r := dkimsign.Check(ctx, a.Resolver, []dkimsign.Published{*rec})[0]
				if !r.OK {
					fmt.Fprintf(g.stdout, "; published: NO - %s\n", r.Problem)
					return fmt.Errorf("the ARC sealing key is not published as shown")
				}
				fmt.Fprintln(g.stdout, "; published: OK")
			}
			return nil
		}),
	}
	record.Flags().BoolVar(&check, "check", false, "look the record up through the configured resolver")
	c.AddCommand(record)
	return c
}
