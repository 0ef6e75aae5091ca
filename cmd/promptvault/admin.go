package main

// The admin API, dashboard, metrics and OpenAPI document on serve, and the
// diff command. Plugged in through hooks.go.

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/promptvault/promptvault"
	"github.com/promptvault/promptvault/resolver/admin"
	"github.com/promptvault/promptvault/resolver/metrics"
)

// pointerMovePoll bounds how late serve counts a pointer move whose change
// wake-up was lost; a counter seconds late costs nothing, polling an idle
// index does.
const pointerMovePoll = 5 * time.Second

func init() {
	serveHooks = append(serveHooks, adminServe)
	flagHooks = append(flagHooks, func(c *cli, root *cobra.Command) { root.AddCommand(c.diffCmd()) })
}

// adminServe mounts /v1/admin/*, /ui/, /v1/openapi.json and /metrics,
// instruments every request, and counts pointer moves from the audit log.
func adminServe(ctx context.Context, c *cli, s *server) error {
	a, err := admin.New(admin.Options{DB: s.Data.db, Repo: s.Repo, Resolver: s.Handler, Logger: s.Log, Sync: s.SyncNow,
		Redelivered: func() { wakeWebhookWorker(s) }, Config: s.Data.cfg, Host: draftHost(c)})
	if err != nil {
		return err
	}
	r := s.Handler.Router()
	a.Routes(r)
	r.Handle("/metrics", metrics.Handler()).Methods(http.MethodGet, http.MethodHead)
	s.Middleware = append(s.Middleware, func(h http.Handler) http.Handler { return metrics.Instrument(h, admin.Route) })
	go func() {
		if err := admin.CountPointerMoves(ctx, s.Data.db, pointerMovePoll, s.Log); err != nil && ctx.Err() == nil {
			s.Log.Error("pointer move metrics stopped", "err", err)
		}
	}()
	s.Log.Info("admin enabled", "dashboard", "/ui/", "api", admin.APIPrefix, "openapi", admin.OpenAPIPath, "metrics", "/metrics")
	return nil
}

func (c *cli) diffCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "diff KEY FROM TO",
		Short: "Show the line diff between two versions or drafts of a prompt",
		Long: `diff prints a unified diff of a prompt file between two versions or drafts
(vN, N or draft:NAME), as the dashboard shows it side by side. Nothing is
printed when they are identical. --json prints the diff document of
GET /v1/admin/prompts/{key}/diff: both versions, the unified text and the
side-by-side rows.`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			key := args[0]
			if err := promptvault.ValidateKey(key); err != nil {
				return err
			}
			d, err := c.openData(ctx, false)
			if err != nil {
				return err
			}
			defer d.Close()
			doc, err := admin.DiffVersions(ctx, d.db, key, args[1], args[2])
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(doc)
			}
			_, err = fmt.Fprint(c.stdout, doc.Unified)
			return err
		},
	}
}
