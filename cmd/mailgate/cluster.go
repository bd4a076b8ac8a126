package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/store"
)

func clusterCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "cluster", Short: "Inspect the nodes sharing the store"}
	c.AddCommand(&cobra.Command{Use: "status", Short: "List the nodes (alive or dead), the recipients each holds, and the queue depth", Args: cobra.NoArgs,
		RunE: g.withApp(func(ctx context.Context, a *app.App, _ []string) error {
			st, err := a.Store.ClusterStatus(ctx)
			if err != nil {
				return err
			}
			printCluster(g, st, a.Config.Cluster.DeadAfter.Duration)
			return nil
		})})
	return c
}

// printCluster prints one line per node (and per other lease owner), then
// the totals and the queue depth.
func printCluster(g *globals, st store.ClusterStatus, deadAfter time.Duration) {
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tLAST SEEN\tLEASED\tHOST\tVERSION\tSTARTED\tLISTEN")
	alive, dead := 0, 0
	for _, n := range st.States(deadAfter) {
		leased := fmt.Sprint(n.Leases.Recipients)
		if n.Leases.Expired > 0 {
			leased += fmt.Sprintf(" (%d expired)", n.Leases.Expired)
		}
		if n.Seen.IsZero() {
			// A lease owner without heartbeat (a command-line tool).
			fmt.Fprintf(tw, "%s\t-\t-\t%s\t-\t-\t-\t-\n", n.ID, leased)
			continue
		}
		state := "dead"
		if n.Alive {
			state = "alive"
			alive++
		} else {
			dead++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s ago\t%s\t%s\t%s\t%s\t%s\n", n.ID, state, st.Now.Sub(n.Seen).Round(time.Second), leased,
			n.Hostname, n.Version, n.Started.Local().Format("2006-01-02 15:04:05"), strings.Join(n.Addrs, ","))
	}
	tw.Flush()
	fmt.Fprintf(g.stdout, "nodes: %d alive, %d dead\n", alive, dead)
	fmt.Fprintf(g.stdout, "queue: %d queued, %d deferred, %d held\n", st.Queued, st.Deferred, st.Held)
}
