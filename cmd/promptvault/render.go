package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/promptvault/promptvault"
	"github.com/promptvault/promptvault/resolver/metrics"
)

// Render limits for serve (SPEC §3). As flags on the serve command they
// also read PV_RENDER_TIMEOUT, PV_RENDER_MAX_BYTES, PV_RENDER_MAX_MEMORY
// and PV_RENDER_WORKERS, like every flag.
var renderFlags struct {
	timeout   time.Duration
	maxBytes  int
	maxMemory int64
	workers   int
}

func init() {
	flagHooks = append(flagHooks, func(c *cli, root *cobra.Command) {
		for _, cmd := range root.Commands() {
			if cmd.Name() != "serve" {
				continue
			}
			cmd.Flags().DurationVar(&renderFlags.timeout, "render-timeout", promptvault.DefaultRenderTimeout,
				"longest a POST /v1/prompts/{key}/render may take; past it the render's worker process is killed and the answer is 422 render_failed")
			cmd.Flags().IntVar(&renderFlags.maxBytes, "render-max-bytes", promptvault.DefaultMaxOutput,
				"largest rendered output (all messages together) in bytes; past it the answer is 422 render_failed")
			cmd.Flags().Int64Var(&renderFlags.maxMemory, "render-max-memory", promptvault.DefaultMaxMemory,
				"memory bound of each render worker process in bytes; a render past it fails with 422 render_failed")
			cmd.Flags().IntVar(&renderFlags.workers, "render-workers", 0,
				"render worker processes, so renders at once (0: one per CPU); a render finding none free waits up to --render-timeout, then 503 busy")
		}
	})
}

// newRenderPool runs serve's renders in worker processes: this binary,
// re-executed, at a lower priority than the server (promptvault.Pool).
func newRenderPool() *promptvault.Pool {
	return promptvault.NewPool(promptvault.PoolOptions{Size: renderFlags.workers, MaxMemory: renderFlags.maxMemory,
		Wait: renderFlags.timeout, OnExit: metrics.RenderWorkerExit})
}
