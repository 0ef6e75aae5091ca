package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/promptvault/promptvault"
)

// Render limits for serve (SPEC §3). As flags on the serve command they
// also read PV_RENDER_TIMEOUT and PV_RENDER_MAX_BYTES, like every flag.
var renderFlags struct {
	timeout  time.Duration
	maxBytes int
}

func init() {
	flagHooks = append(flagHooks, func(c *cli, root *cobra.Command) {
		for _, cmd := range root.Commands() {
			if cmd.Name() != "serve" {
				continue
			}
			cmd.Flags().DurationVar(&renderFlags.timeout, "render-timeout", promptvault.DefaultRenderTimeout,
				"longest a POST /v1/prompts/{key}/render may take; past it the answer is 422 render_failed")
			cmd.Flags().IntVar(&renderFlags.maxBytes, "render-max-bytes", promptvault.DefaultMaxOutput,
				"largest rendered output (all messages together) in bytes; past it the answer is 422 render_failed")
		}
	})
}
