package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/promptvault/promptvault"
	"github.com/promptvault/promptvault/index"
)

func (c *cli) promptsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "prompts",
		Short: "List indexed prompts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ps []promptRow
			err := c.view(cmd.Context(), func(ctx context.Context, tx *index.Tx) error {
				all, err := tx.Prompts(ctx)
				if err != nil {
					return err
				}
				ptrs, err := pointerLabels(ctx, tx)
				if err != nil {
					return err
				}
				ps = []promptRow{}
				for _, p := range all {
					ps = append(ps, promptRow{Prompt: p, Live: ptrs[p.Key][index.EnvLive], Staging: ptrs[p.Key][index.EnvStaging]})
				}
				return nil
			})
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(map[string]any{"prompts": ps})
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KEY\tLIVE\tSTAGING\tNEWEST\tVERSIONS\tDRAFTS\tSTATE")
			for _, p := range ps {
				state := "active"
				if p.Archived {
					state = "archived"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", p.Key, dash(p.Live), dash(p.Staging), dash(p.Newest), p.Versions, p.Drafts, state)
			}
			return tw.Flush()
		},
	}
}

func (c *cli) versionsCmd() *cobra.Command {
	var search string
	cmd := &cobra.Command{
		Use:   "versions KEY",
		Short: "List a prompt's drafts and versions, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			key := args[0]
			if err := promptvault.ValidateKey(key); err != nil {
				return err
			}
			var drafts, vs []index.Version
			var ptrs map[string]string
			err := c.view(ctx, func(ctx context.Context, tx *index.Tx) error {
				if _, err := tx.PromptInfo(ctx, key); err != nil {
					return err
				}
				var err error
				if ptrs, err = promptPointers(ctx, tx, key); err != nil {
					return err
				}
				if drafts, err = tx.Drafts(ctx, key, search); err != nil {
					return err
				}
				vs, err = tx.Versions(ctx, key, index.VersionQuery{Search: search})
				return err
			})
			if err != nil {
				return err
			}
			all := append(drafts, vs...)
			if c.json {
				out := []map[string]any{}
				for _, v := range all {
					m, err := withField(v, "pointers", pointersAt(ptrs, v.Label))
					if err != nil {
						return err
					}
					out = append(out, m)
				}
				return c.printJSON(map[string]any{"key": key, "live": ptrs[index.EnvLive], "staging": ptrs[index.EnvStaging], "versions": out})
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "VERSION\tPOINTERS\tCOMMIT\tDATE\tAUTHOR\tVALID\tMESSAGE")
			for _, v := range all {
				valid := "yes"
				if !v.Valid {
					valid = "NO"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Label, dash(strings.Join(pointersAt(ptrs, v.Label), ",")),
					short(v.Commit), v.CreatedAt, v.Author, valid, firstLine(v.Message))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&search, "search", "", "only versions whose message or author contains this text (case-insensitive)")
	return cmd
}

func (c *cli) showCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show KEY [VERSION]",
		Short: "Show a version's source and metadata (default: the newest version)",
		Long: `show prints one version of a prompt: its metadata, validation problems and
the file's source. VERSION is vN, N or draft:NAME; without it, the newest
version is shown.`,
		Args: cobra.RangeArgs(1, 2),
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
			label := ""
			if len(args) == 2 {
				label = args[1]
			}
			v, err := c.lookupVersion(ctx, d, key, label)
			if err != nil {
				return err
			}
			var ptrs map[string]string
			if err := d.db.View(ctx, func(tx *index.Tx) (err error) {
				ptrs, err = promptPointers(ctx, tx, key)
				return err
			}); err != nil {
				return err
			}
			at := pointersAt(ptrs, v.Label)
			var src []byte
			if v.BlobSHA != "" && v.Size <= promptvault.MaxFileSize {
				// From the index, not the mirror: the index keeps each
				// version's content (except files over the size limit).
				if src, err = d.db.Content(ctx, v.BlobSHA); err != nil {
					return fmt.Errorf("read %s %s: %w", key, v.Label, err)
				}
			}
			if c.json {
				// Version has its own MarshalJSON, which embedding would
				// promote (dropping "source"), so merge at the JSON level.
				doc, err := withField(v, "source", string(src))
				if err != nil {
					return err
				}
				doc["pointers"] = at
				return c.printJSON(doc)
			}
			w := c.stdout
			fmt.Fprintf(w, "key:      %s\nversion:  %s\ncommit:   %s\nauthor:   %s\ndate:     %s\nsha256:   %s\npath:     %s\n",
				v.Key, v.Label, v.Commit, v.Author, v.CreatedAt, v.SHA256, v.Path)
			fmt.Fprintf(w, "pointers: %s (live %s, staging %s)\n", dash(strings.Join(at, ", ")), dash(ptrs[index.EnvLive]), dash(ptrs[index.EnvStaging]))
			fmt.Fprintf(w, "message:  %s\n", strings.ReplaceAll(v.Message, "\n", "\n          "))
			if v.Valid {
				fmt.Fprintln(w, "valid:    yes")
			} else {
				fmt.Fprintln(w, "valid:    no")
				for _, p := range v.Problems {
					fmt.Fprintf(w, "  %s\n", p)
				}
			}
			if v.Deleted {
				fmt.Fprintln(w, "\n(this draft deletes the prompt)")
				return nil
			}
			fmt.Fprintf(w, "---\n%s", src)
			if len(src) > 0 && src[len(src)-1] != '\n' {
				fmt.Fprintln(w)
			}
			return nil
		},
	}
}

// lookupVersion finds key's version by label, or the newest when label is "".
func (c *cli) lookupVersion(ctx context.Context, d *data, key, label string) (index.Version, error) {
	var v index.Version
	err := d.db.View(ctx, func(tx *index.Tx) error {
		p, err := tx.PromptInfo(ctx, key)
		if err != nil {
			return err
		}
		if label == "" {
			if p.Newest == "" {
				return fmt.Errorf("prompt %q has no versions: %w", key, index.ErrNotFound)
			}
			label = p.Newest
		}
		v, err = tx.Version(ctx, key, label)
		return err
	})
	return v, err
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// withField returns v's JSON object with one more field.
func withField(v any, name string, value any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	m[name] = value
	return m, nil
}

// promptRow is a prompt as prompts lists it: with the labels live and
// staging point at ("" when unset).
type promptRow struct {
	index.Prompt
	Live    string `json:"live"`
	Staging string `json:"staging"`
}

// pointerLabels maps key → env → label of every pointer.
func pointerLabels(ctx context.Context, tx *index.Tx) (map[string]map[string]string, error) {
	all, err := tx.AllPointers(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]string{}
	for _, p := range all {
		if out[p.Key] == nil {
			out[p.Key] = map[string]string{}
		}
		out[p.Key][p.Env] = p.Label()
	}
	return out, nil
}

// promptPointers maps env → label for key's pointers.
func promptPointers(ctx context.Context, tx *index.Tx, key string) (map[string]string, error) {
	out := map[string]string{}
	for _, env := range []string{index.EnvLive, index.EnvStaging} {
		p, ok, err := tx.Pointer(ctx, key, env)
		if err != nil {
			return nil, err
		}
		if ok {
			out[env] = p.Label()
		}
	}
	return out, nil
}

// pointersAt lists the envs ("live", "staging") pointing at label.
func pointersAt(ptrs map[string]string, label string) []string {
	at := []string{}
	for _, env := range []string{index.EnvLive, index.EnvStaging} {
		if ptrs[env] == label {
			at = append(at, env)
		}
	}
	return at
}
