package main

// Outbound webhooks (SPEC §6): the webhooks command manages endpoints in
// the data directory, and serve runs the delivery worker (package
// publish). The CLI never sends: it writes rows, and the running server
// (in this or another process) sees them through the change feed and
// delivers. Plugged in through hooks.go.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/publish"
)

// publishFlags are serve's delivery settings; the timeout and schedule
// are hidden, for tests that cannot wait a day.
type publishFlags struct {
	publicURL string
	timeout   time.Duration
	schedule  string
}

// publishConfigs maps each invocation (tests run many per process) to its
// flags.
var publishConfigs sync.Map // *cli → *publishFlags

func init() {
	flagHooks = append(flagHooks, func(c *cli, root *cobra.Command) {
		root.AddCommand(c.webhooksCmd())
		serve, _, err := root.Find([]string{"serve"})
		if err != nil || serve == root {
			return
		}
		f := &publishFlags{}
		publishConfigs.Store(c, f)
		fs := serve.Flags()
		fs.StringVar(&f.publicURL, "public-url", "", "this server's external URL, for dashboard links in Slack messages (e.g. https://prompts.example.com)")
		fs.DurationVar(&f.timeout, "publish-timeout", publish.DefaultTimeout, "timeout of one outbound webhook attempt")
		fs.StringVar(&f.schedule, "publish-retry-schedule", "", "waits between outbound webhook attempts, comma-separated (default: 5s,5m,30m,2h,5h,8h,8h)")
		_ = fs.MarkHidden("publish-retry-schedule")
	})
	serveHooks = append(serveHooks, publishServe)
}

// publishServe starts the delivery worker for the server's lifetime.
func publishServe(ctx context.Context, c *cli, s *server) error {
	f := &publishFlags{timeout: publish.DefaultTimeout}
	if v, ok := publishConfigs.Load(c); ok {
		f = v.(*publishFlags)
	}
	var schedule []time.Duration
	if f.schedule != "" {
		for _, p := range strings.Split(f.schedule, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(p))
			if err != nil || d <= 0 {
				return fmt.Errorf("--publish-retry-schedule %q: want positive durations separated by commas", f.schedule)
			}
			schedule = append(schedule, d)
		}
	}
	if f.timeout <= 0 {
		return fmt.Errorf("--publish-timeout %s: want a positive duration", f.timeout)
	}
	base := f.publicURL
	if base == "" {
		base = "http://" + c.addr
	}
	w, err := publish.New(publish.Options{DB: s.Data.db, Logger: s.Log, Timeout: f.timeout, Schedule: schedule, BaseURL: base})
	if err != nil {
		return err
	}
	// Only the leader delivers (the outbox's leases would keep two
	// instances from sending one delivery twice, but one sender keeps each
	// endpoint's order and retry schedule simple).
	s.Leader = append(s.Leader, func(ctx context.Context) {
		if err := w.Run(ctx); err != nil && ctx.Err() == nil {
			s.Log.Error("outbound webhook delivery stopped", "err", err)
		}
	})
	return nil
}

func (c *cli) webhooksCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "webhooks",
		Short: "Manage outbound webhooks: endpoints that receive an event for every pointer change",
		Long: `Outbound webhooks send a signed JSON event (Standard Webhooks) to each
endpoint for every pointer change: prompt.promoted, prompt.rolled_back,
prompt.staging_set, prompt.staging_cleared, prompt.archived. The running
server delivers them (also those caused by CLI commands), retrying with
backoff for about 24 hours. These commands only change the data directory;
they are safe while serve runs.`,
	}
	var events []string
	var format, description string
	add := &cobra.Command{
		Use:   "add URL [--events TYPE,…] [--format slack] [--description TEXT]",
		Short: "Add an endpoint; its signing secret is printed once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var h index.CreatedHook
			if err := c.update(cmd.Context(), func(ctx context.Context, tx *index.Tx) (err error) {
				h, err = tx.AddHook(ctx, index.NewHook{URL: args[0], Events: events, Format: format, Description: description}, actor())
				return err
			}); err != nil {
				return err
			}
			if c.json {
				return c.printJSON(h)
			}
			fmt.Fprintf(c.stdout, "%s\n", h.Secret)
			fmt.Fprintf(c.stderr, "added webhook %s (%s, events: %s); the line above is its signing secret: store it now, it is not shown again\n",
				h.ID, h.Format, eventList(h.Events))
			return nil
		},
	}
	add.Flags().StringSliceVar(&events, "events", nil, "event types to send (default: all): "+strings.Join(index.EventTypes, ","))
	add.Flags().StringVar(&format, "format", index.FormatStandard, "standard (signed JSON event) or slack (a Slack incoming-webhook message)")
	add.Flags().StringVar(&description, "description", "", "what the endpoint is for")

	list := &cobra.Command{
		Use:   "list",
		Short: "List endpoints with their pending deliveries and health",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var hooks []index.Hook
			if err := c.view(cmd.Context(), func(ctx context.Context, tx *index.Tx) (err error) { hooks, err = tx.Hooks(ctx); return err }); err != nil {
				return err
			}
			if c.json {
				if hooks == nil {
					hooks = []index.Hook{}
				}
				return c.printJSON(map[string]any{"webhooks": hooks})
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tURL\tFORMAT\tEVENTS\tPENDING\tSTATUS\tDESCRIPTION")
			for _, h := range hooks {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", h.ID, h.URL, h.Format, eventList(h.Events), h.Pending, health(h), h.Description)
			}
			return tw.Flush()
		},
	}
	remove := &cobra.Command{
		Use:   "remove ID",
		Short: "Remove an endpoint with its queue and delivery log",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.change(cmd.Context(), "webhook "+args[0], func(ctx context.Context, tx *index.Tx) (index.Result, error) {
				return tx.RemoveHook(ctx, args[0], actor())
			})
		},
	}
	var limit int
	deliveries := &cobra.Command{
		Use:   "deliveries ID [--limit N]",
		Short: "Show an endpoint's delivery log, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ds []index.HookDelivery
			if err := c.view(cmd.Context(), func(ctx context.Context, tx *index.Tx) (err error) {
				ds, err = tx.HookDeliveries(ctx, args[0], 0, limit)
				return err
			}); err != nil {
				return err
			}
			if c.json {
				if ds == nil {
					ds = []index.HookDelivery{}
				}
				return c.printJSON(map[string]any{"deliveries": ds})
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "DELIVERY\tEVENT\tTYPE\tKEY\tSTATE\tATTEMPTS\tSTATUS\tDURATION\tLAST ATTEMPT\tNEXT ATTEMPT\tERROR")
			for _, d := range ds {
				status := "-"
				if d.LastStatus != 0 {
					status = strconv.Itoa(d.LastStatus)
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%dms\t%s\t%s\t%s\n", d.Seq, d.EventID, d.EventType, dash(d.Key), d.State,
					d.Attempts, status, d.LastMS, dash(d.LastAt), dash(d.NextAt), dash(d.LastError))
			}
			return tw.Flush()
		},
	}
	deliveries.Flags().IntVar(&limit, "limit", 50, "how many deliveries to show")
	redeliver := &cobra.Command{
		Use:   "redeliver ID DELIVERY",
		Short: "Send a delivery again (same event, same webhook-id); the running server sends it",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			seq, err := strconv.ParseInt(args[1], 10, 64)
			if err != nil || seq <= 0 {
				return fmt.Errorf("delivery %q: want the number from 'webhooks deliveries %s'", args[1], args[0])
			}
			return c.queued(cmd.Context(), func(ctx context.Context, tx *index.Tx) (index.HookDelivery, error) {
				return tx.Redeliver(ctx, args[0], seq, actor())
			})
		},
	}
	test := &cobra.Command{
		Use:   "test ID",
		Short: "Send a ping event to an endpoint; the running server sends it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.queued(cmd.Context(), func(ctx context.Context, tx *index.Tx) (index.HookDelivery, error) {
				return tx.Ping(ctx, args[0], actor())
			})
		},
	}
	cmd.AddCommand(add, list, remove, deliveries, redeliver, test)
	return cmd
}

// queued runs fn (which queues a delivery) and prints the delivery.
func (c *cli) queued(ctx context.Context, fn func(ctx context.Context, tx *index.Tx) (index.HookDelivery, error)) error {
	var d index.HookDelivery
	if err := c.update(ctx, func(ctx context.Context, tx *index.Tx) (err error) {
		d, err = fn(ctx, tx)
		return err
	}); err != nil {
		return err
	}
	if c.json {
		return c.printJSON(d)
	}
	fmt.Fprintf(c.stdout, "queued delivery %d of %s (%s) to %s; 'promptvault webhooks deliveries %s' shows the outcome\n",
		d.Seq, d.EventID, d.EventType, d.HookID, d.HookID)
	return nil
}

func eventList(events []string) string {
	if len(events) == 0 {
		return "all"
	}
	return strings.Join(events, ",")
}

func health(h index.Hook) string {
	switch {
	case h.Failing:
		return "FAILING since " + h.FailingSince
	case h.FailingSince != "":
		return "retrying since " + h.FailingSince
	case h.LastSuccessAt != "":
		return "ok"
	}
	return "-"
}
