package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/promptvault/promptvault"
)

// fileReport is validate's verdict on one file.
type fileReport struct {
	Path     string                `json:"path"`
	Key      string                `json:"key,omitempty"`
	Valid    bool                  `json:"valid"`
	Problems []promptvault.Problem `json:"problems"`
}

func (c *cli) validateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "validate [PATH...]",
		Short: "Check prompt files; exit 1 if any is invalid",
		Long: `validate checks prompt files and directories (recursively, *.yaml and *.yml)
against the prompt file format and prints every problem as
path:line:column: message. Without PATH it checks the prompts directory
(--prompts-dir) of the Git working tree you are in. It exits 1 when any
file is invalid. Keys are checked for files inside a prompts directory.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				dir, err := defaultPromptsDir(c.promptsDir)
				if err != nil {
					return err
				}
				args = []string{dir}
			}
			var reports []fileReport
			for _, a := range args {
				rs, err := c.validatePath(a)
				if err != nil {
					return err
				}
				reports = append(reports, rs...)
			}
			invalid := 0
			for _, r := range reports {
				if !r.Valid {
					invalid++
				}
			}
			if c.json {
				if reports == nil {
					reports = []fileReport{}
				}
				if err := c.printJSON(map[string]any{"valid": invalid == 0, "files": reports}); err != nil {
					return err
				}
			} else {
				for _, r := range reports {
					for _, p := range r.Problems {
						fmt.Fprintln(c.stdout, p)
					}
				}
				fmt.Fprintf(c.stdout, "%s checked, %d invalid\n", plural(len(reports), "file"), invalid)
			}
			if invalid > 0 {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&c.promptsDir, "prompts-dir", "prompts", "directory of prompt files in the repository")
	return cmd
}

// defaultPromptsDir is the prompts directory of the working tree around the
// current directory (or of the current directory outside Git).
func defaultPromptsDir(promptsDir string) (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	top := wd
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, ".git")); err == nil {
			top = d
			break
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	dir := filepath.Join(top, filepath.FromSlash(promptsDir))
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return "", fmt.Errorf("no prompts directory %s: pass files or directories to validate", dir)
	}
	rel, err := filepath.Rel(wd, dir)
	if err != nil {
		return dir, nil
	}
	return rel, nil
}

// validatePath validates a file or every prompt file below a directory.
// Symbolic links are not followed: a prompt is a regular file in Git.
func (c *cli) validatePath(p string) ([]fileReport, error) {
	st, err := os.Lstat(p)
	if err != nil {
		return nil, fmt.Errorf("validate: %w", err)
	}
	if !st.IsDir() {
		return []fileReport{c.validateFile(p, st)}, nil
	}
	var out []fileReport
	err = filepath.WalkDir(p, func(fp string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if de.IsDir() {
			if de.Name() == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		if ext := filepath.Ext(fp); ext != ".yaml" && ext != ".yml" {
			return nil
		}
		info, err := de.Info()
		if err != nil {
			return err
		}
		out = append(out, c.validateFile(fp, info))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("validate: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func (c *cli) validateFile(p string, st fs.FileInfo) fileReport {
	r := fileReport{Path: p}
	fail := func(msg string) fileReport {
		r.Problems = append(r.Problems, promptvault.Problem{Path: p, Message: msg})
		return r
	}
	if !st.Mode().IsRegular() {
		return fail("not a regular file (symbolic links and devices are not prompt files)")
	}
	if rel, ok := c.relToPromptsDir(p); ok {
		key, isPrompt, err := promptvault.KeyFromPath(rel)
		switch {
		case err != nil:
			var ps *promptvault.Problems
			if errors.As(err, &ps) {
				for _, x := range ps.List {
					x.Path = p
					r.Problems = append(r.Problems, x)
				}
			} else {
				r.Problems = append(r.Problems, promptvault.Problem{Path: p, Message: err.Error()})
			}
		case !isPrompt:
			return fail("not a prompt file: want a .yaml or .yml extension")
		default:
			r.Key = key
		}
	}
	f, err := os.Open(p)
	if err != nil {
		return fail(err.Error())
	}
	defer f.Close()
	// Read one byte past the limit: Parse reports the size problem itself,
	// without this process holding a huge file in memory.
	data, err := io.ReadAll(io.LimitReader(f, promptvault.MaxFileSize+1))
	if err != nil {
		return fail(err.Error())
	}
	if st.Size() > promptvault.MaxFileSize {
		r.Problems = append(r.Problems, promptvault.Problem{Path: p,
			Message: fmt.Sprintf("file is %d bytes; the limit is %d", st.Size(), promptvault.MaxFileSize)})
	} else if _, err := promptvault.Parse(p, data); err != nil {
		var ps *promptvault.Problems
		if errors.As(err, &ps) {
			r.Problems = append(r.Problems, ps.List...)
		} else {
			r.Problems = append(r.Problems, promptvault.Problem{Path: p, Message: err.Error()})
		}
	}
	r.Valid = len(r.Problems) == 0
	if r.Problems == nil {
		r.Problems = []promptvault.Problem{}
	}
	return r
}

// relToPromptsDir returns p relative to the nearest enclosing directory
// named like --prompts-dir, the path the key is taken from.
func (c *cli) relToPromptsDir(p string) (string, bool) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", false
	}
	name := filepath.FromSlash(strings.Trim(c.promptsDir, "/"))
	sep := string(filepath.Separator)
	marker := sep + name + sep
	i := strings.LastIndex(abs, marker)
	if i < 0 {
		return "", false
	}
	return filepath.ToSlash(abs[i+len(marker):]), true
}
