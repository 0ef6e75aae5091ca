package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/promptvault/promptvault/index"
)

// demoStep is one commit of the sample repository.
type demoStep struct {
	branch string // "" = main
	author string // "Name <email>"
	msg    string
	files  map[string]string // path → content; "" deletes
}

const summarizeV1 = `description: Summarise a support ticket for the on-call engineer
model: gpt-4o
temperature: 0.3
system: |
  You are a concise technical writer for a support team.
template: |
  Summarize this ticket in {{ max_sentences }} sentences:
  {{ text }}
input_schema:
  type: object
  properties:
    text: {type: string}
    max_sentences: {type: integer, default: 3}
  required: [text]
`

var demoSteps = []demoStep{
	{author: "Ada Lovelace <ada@example.com>", msg: "Add support summarizer and ticket classifier", files: map[string]string{
		"prompts/support/summarize.yaml": summarizeV1,
		"prompts/support/classify.yaml": `description: Route a ticket to a queue
model: gpt-4o-mini
temperature: 0
max_tokens: 20
messages:
  - role: system
    content: "Answer with exactly one of: billing, bug, how-to, other."
  - role: user
    content: "{{ ticket }}"
input_schema:
  type: object
  properties:
    ticket: {type: string}
  required: [ticket]
output_schema:
  type: string
  enum: [billing, bug, how-to, other]
`,
		"README.md": "# Prompts\n\nPrompt files live under prompts/. Open a pull request to change one.\n",
	}},
	{author: "Grace Hopper <grace@example.com>", msg: "Add welcome email prompt", files: map[string]string{
		"prompts/onboarding/welcome.yaml": `description: First email after sign-up
model: claude-sonnet-4
fallback_model: gpt-4o
temperature: 0.7
template: |
  Write a warm, two-paragraph welcome email to {{ name }}
  {% if plan == "team" %}mentioning team workspaces{% else %}mentioning the free tier{% endif %}.
input_schema:
  type: object
  properties:
    name: {type: string}
    plan: {type: string, enum: [free, team], default: free}
  required: [name]
`,
	}},
	{author: "Grace Hopper <grace@example.com>", msg: "Summaries: cap length, lower temperature\n\nOn-call asked for shorter summaries (SUP-112).", files: map[string]string{
		"prompts/support/summarize.yaml": strings.Replace(strings.Replace(summarizeV1, "temperature: 0.3", "temperature: 0.2\nmax_tokens: 256", 1),
			"max_sentences: {type: integer, default: 3}", "max_sentences: {type: integer, default: 2, maximum: 5}", 1),
	}},
	{author: "Linus Torvalds <linus@example.com>", msg: "Add product tagline generator", files: map[string]string{
		"prompts/marketing/tagline.yaml": `model: gpt-4o
temperature: 1.1
template: "Write a tagline for {{ product }} in under {{ words }} words."
input_schema:
  type: object
  properties:
    product: {type: string}
    words: {type: integer, default: 8}
  required: [product]
`,
	}},
	{author: "Linus Torvalds <linus@example.com>", msg: "Tagline: more creative (typo: out-of-range temperature)", files: map[string]string{
		"prompts/marketing/tagline.yaml": `model: gpt-4o
temperature: 3.5
template: "Write a bold tagline for {{ product }} in under {{ words }} words."
`,
	}},
	{author: "Ada Lovelace <ada@example.com>", msg: "Classifier: add security queue", files: map[string]string{
		"prompts/support/classify.yaml": `description: Route a ticket to a queue
model: gpt-4o-mini
temperature: 0
max_tokens: 20
messages:
  - role: system
    content: "Answer with exactly one of: billing, bug, how-to, security, other."
  - role: user
    content: "{{ ticket }}"
input_schema:
  type: object
  properties:
    ticket: {type: string}
  required: [ticket]
output_schema:
  type: string
  enum: [billing, bug, how-to, security, other]
`,
	}},
	{branch: "tone-experiment", author: "Grace Hopper <grace@example.com>", msg: "Try a friendlier tone for summaries", files: map[string]string{
		"prompts/support/summarize.yaml": strings.Replace(summarizeV1, "You are a concise technical writer for a support team.",
			"You are a friendly, concise support lead. Use plain words.", 1),
	}},
}

func (c *cli) demoCmd() *cobra.Command {
	var dir string
	var noServe bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Create a sample prompts repository, index it, create keys and serve",
		Long: `demo builds a realistic sample prompts repository (prompts in folders,
several versions by different authors, one invalid commit, one branch
draft) with git, indexes it into a data directory beside it, puts the draft
on staging, creates one live, one test and one admin key, prints curl
commands to try, and serves. Everything lives under --dir; running demo
again starts over.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			abs, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			repo, err := buildDemoRepo(ctx, abs)
			if err != nil {
				return err
			}
			c.repo, c.explicit["repo"] = repo, true
			if !c.explicit["data"] {
				c.data = filepath.Join(abs, "data")
			}
			d, err := c.openData(ctx, true)
			if err != nil {
				return err
			}
			defer d.Close()
			m, err := c.mirror(d)
			if err != nil {
				return err
			}
			res, err := c.syncNow(ctx, d, m)
			m.Close()
			if err != nil {
				return err
			}
			keys := map[string]string{}
			err = d.db.Update(ctx, func(tx *index.Tx) error {
				if _, err := tx.SetStaging(ctx, "support/summarize", "draft:tone-experiment", "demo"); err != nil {
					return err
				}
				for _, env := range []string{"live", "test", "admin"} {
					k, err := tx.CreateKey(ctx, env, "demo "+env, "demo")
					if err != nil {
						return err
					}
					keys[env] = k.Key
				}
				return nil
			})
			if err != nil {
				return err
			}
			w := c.stdout
			fmt.Fprintf(w, "Sample repository: %s (%s, %s, %s)\n", repo, plural(res.Commits, "commit"), plural(len(res.Versions), "version"), plural(len(res.Drafts), "draft"))
			fmt.Fprintf(w, "Data directory:    %s\n\n", d.dir)
			bin := progName()
			printCurls := func(addr string) {
				base := "http://" + addr
				if noServe {
					fmt.Fprintf(w, "Not serving (--no-serve). Start the server with:\n  %s --data %s serve --addr %s\nthen try:\n\n", bin, d.dir, addr)
				} else {
					fmt.Fprintf(w, "Serving on %s. Try:\n\n", base)
				}
				fmt.Fprintf(w, "  # live version of a prompt (v2; v1 is the first version)\n  curl -s -H 'Authorization: Bearer %s' %s/v1/prompts/support/summarize\n\n", keys["live"], base)
				fmt.Fprintf(w, "  # a test key reads staging: the tone-experiment branch draft\n  curl -s -H 'Authorization: Bearer %s' %s/v1/prompts/support/summarize\n\n", keys["test"], base)
				fmt.Fprintf(w, "  # pin a version\n  curl -s -H 'Authorization: Bearer %s' '%s/v1/prompts/support/summarize?version=v1'\n\n", keys["live"], base)
				fmt.Fprintf(w, "  # tagline v2 failed validation, so v1 stays live\n  curl -s -H 'Authorization: Bearer %s' %s/v1/prompts/marketing/tagline\n\n", keys["live"], base)
				fmt.Fprintf(w, "  # dashboard: %s/ui/ — sign in with the admin key %s\n\n", base, keys["admin"])
				fmt.Fprintf(w, "In another terminal (a running server serves each change within milliseconds):\n")
				fmt.Fprintf(w, "  %s --data %s versions support/summarize\n", bin, d.dir)
				fmt.Fprintf(w, "  %s --data %s rollback support/summarize v1\n", bin, d.dir)
				fmt.Fprintf(w, "  %s --data %s audit\n", bin, d.dir)
				if !noServe {
					fmt.Fprintf(w, "\nCtrl-C stops the server.\n")
				}
			}
			if noServe {
				printCurls(c.addr)
				return nil
			}
			return c.serve(ctx, d, 30*time.Second, printCurls)
		},
	}
	cmd.Flags().StringVar(&c.addr, "addr", "127.0.0.1:8080", "HTTP listen address")
	cmd.Flags().StringVar(&dir, "dir", "promptvault-demo", "where to create the sample repository and data directory")
	cmd.Flags().BoolVar(&noServe, "no-serve", false, "set everything up and print the commands, but do not serve")
	return cmd
}

// buildDemoRepo (re)creates the sample repository under dir with the git CLI.
func buildDemoRepo(ctx context.Context, dir string) (string, error) {
	marker := filepath.Join(dir, ".promptvault-demo")
	if _, err := os.Stat(dir); err == nil {
		if _, err := os.Stat(marker); err != nil {
			return "", fmt.Errorf("demo: %s exists and was not made by demo; pass another --dir", dir)
		}
		if err := os.RemoveAll(dir); err != nil {
			return "", fmt.Errorf("demo: start over: %w", err)
		}
	}
	repo := filepath.Join(dir, "prompts-repo")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		return "", err
	}
	clock := time.Now().UTC().Add(-time.Duration(len(demoSteps)) * 26 * time.Hour).Truncate(time.Minute)
	git := func(author string, args ...string) error {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"}, args...)...)
		cmd.Dir = repo
		name, email, _ := strings.Cut(strings.TrimSuffix(author, ">"), " <")
		date := clock.Format(time.RFC3339)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME="+name, "GIT_AUTHOR_EMAIL="+email, "GIT_AUTHOR_DATE="+date,
			"GIT_COMMITTER_NAME="+name, "GIT_COMMITTER_EMAIL="+email, "GIT_COMMITTER_DATE="+date)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("demo: git %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := git("Demo <demo@example.com>", "init", "-q", "-b", "main"); err != nil {
		return "", err
	}
	for _, s := range demoSteps {
		clock = clock.Add(26 * time.Hour)
		if s.branch != "" {
			if err := git(s.author, "checkout", "-q", "-B", s.branch); err != nil {
				return "", err
			}
		}
		for p, content := range s.files {
			full := filepath.Join(repo, filepath.FromSlash(p))
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				return "", err
			}
			if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
				return "", err
			}
		}
		if err := git(s.author, "add", "-A"); err != nil {
			return "", err
		}
		if err := git(s.author, "commit", "-q", "-m", s.msg); err != nil {
			return "", err
		}
		if s.branch != "" {
			if err := git(s.author, "checkout", "-q", "main"); err != nil {
				return "", err
			}
		}
	}
	return repo, nil
}
