package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/promptvault/promptvault/index"
)

func (c *cli) migrateCmd() *cobra.Command {
	var to string
	cmd := &cobra.Command{
		Use:   "migrate --data DIR --to postgres://…",
		Short: "Copy a SQLite data directory's registry into an empty PostgreSQL database",
		Long: `migrate copies everything the SQLite index in --data holds (versions with
their content, drafts, pointers, the audit log with its sequence numbers,
keys, settings, sessions, webhook deliveries, merges and outbound webhooks)
into the PostgreSQL database --to names, which must be empty (a fresh
database, or a fresh schema picked with ?search_path=NAME). Numbers stay
identical, so commits indexed before the migration are never promoted again.
Stop serve on the data directory first: writes made during the copy are not
carried over. Then run serve with --database set to the same URL; the data
directory keeps serving as its Git mirror.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if !index.IsPostgres(to) {
				return fmt.Errorf("--to %q: want a postgres:// URL", redactURL(to))
			}
			path := filepath.Join(c.data, "index.db")
			if _, err := os.Stat(path); err != nil {
				return fmt.Errorf("%w: %s has no SQLite index (%v)", ErrNoData, c.data, err)
			}
			src, err := index.Open(ctx, path)
			if err != nil {
				return err
			}
			defer src.Close()
			dst, err := index.Open(ctx, to, c.db)
			if err != nil {
				return err
			}
			defer dst.Close()
			counts, err := src.CopyTo(ctx, dst)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(counts)
			}
			var total int64
			for _, tc := range counts {
				fmt.Fprintf(c.stdout, "%-20s %8d rows\n", tc.Table, tc.Rows)
				total += tc.Rows
			}
			fmt.Fprintf(c.stdout, "copied %d rows of %d tables into %s\n", total, len(counts), redactURL(to))
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the empty PostgreSQL database to copy into (postgres://…)")
	return cmd
}
