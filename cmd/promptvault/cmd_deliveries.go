package main

// deliveries list|redeliver: the webhook inbox, for operators (SPEC §4).

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/promptvault/promptvault/index"
)

func init() {
	flagHooks = append(flagHooks, func(c *cli, root *cobra.Command) { root.AddCommand(c.deliveriesCmd()) })
}

func (c *cli) deliveriesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "deliveries",
		Short: "List GitHub webhook deliveries and process one again",
		Long: `deliveries shows the webhook inbox: every accepted GitHub delivery with its
state (pending, processing, done, failed, ignored), attempts, next attempt
and last error. redeliver processes one again (a failed one after fixing an
App permission, say); the promotion rules still apply, so a merge is never
promoted twice. A running server picks the redelivery up within seconds.`,
	}
	var state string
	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List deliveries, newest first (--state pending|processing|done|failed|ignored)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 {
				return fmt.Errorf("--limit %d: want at least 1", limit)
			}
			var ds []index.Delivery
			if err := c.view(cmd.Context(), func(ctx context.Context, tx *index.Tx) (err error) {
				ds, err = tx.Deliveries(ctx, state, 0, limit)
				return err
			}); err != nil {
				return err
			}
			if c.json {
				if ds == nil {
					ds = []index.Delivery{}
				}
				return c.printJSON(map[string]any{"deliveries": ds})
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tEVENT\tSUBJECT\tSTATE\tATTEMPTS\tNEXT ATTEMPT\tRECEIVED\tLAST ERROR / RESULT")
			for _, d := range ds {
				ev := d.Event
				if d.Action != "" {
					ev += "." + d.Action
				}
				next := "-"
				if d.NextAt > 0 && d.State == index.DeliveryPending {
					next = time.UnixMilli(d.NextAt).UTC().Format(time.RFC3339)
				}
				note := d.LastError
				if d.State == index.DeliveryDone || d.State == index.DeliveryIgnored || note == "" {
					note = d.Result
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", d.GUID, ev, d.Subject, d.State, d.Attempts, next,
					d.ReceivedAt, dash(oneLine(note, 100)))
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&state, "state", "", "only deliveries in this state")
	list.Flags().IntVar(&limit, "limit", 50, "at most this many")
	redeliver := &cobra.Command{
		Use:   "redeliver ID",
		Short: "Process a delivery again (ID is GitHub's X-GitHub-Delivery)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var d index.Delivery
			if err := c.update(cmd.Context(), func(ctx context.Context, tx *index.Tx) (err error) {
				d, err = tx.RedeliverWebhook(ctx, args[0])
				return err
			}); err != nil {
				return err
			}
			if c.json {
				return c.printJSON(d)
			}
			fmt.Fprintf(c.stdout, "delivery %s (%s) is pending again\n", d.GUID, d.Event)
			return nil
		},
	}
	cmd.AddCommand(list, redeliver)
	return cmd
}

// oneLine shortens s to one line of at most n characters.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
