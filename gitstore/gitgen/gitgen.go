// Package gitgen writes synthetic prompt repositories with git fast-import,
// for benchmarks in gitstore, index and cmd. The histories match the ones
// notes/perf.md §2 measured: commit 0 adds every prompt; each later commit
// changes 1 (80%), 2 (15%) or 3 (5%) prompts, half of the edits in a hot
// 10%. Output is deterministic for a seed, and appending continues the
// same sequence, so a repository generated in two steps equals one
// generated at once.
package gitgen

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Config describes a repository.
type Config struct {
	Prompts int // files under prompts/
	Commits int // commits to write
	// Start is how many commits main already has; Commits more are
	// appended after them. 0 creates the repository.
	Start int
	// Nested puts prompts in team folders (prompts/<team>/<key>.yaml)
	// instead of one flat prompts/ directory. Flat is the worst case for
	// tree diffing: every commit rewrites one big tree.
	Nested bool
	Seed   uint64 // 0 means 1
}

// Generate writes (or, with start > 0, extends) a bare repository at dir
// with prompts flat files prompts/<key>.yaml and commits commits on main.
func Generate(ctx context.Context, dir string, prompts, commits, start int) error {
	return Config{Prompts: prompts, Commits: commits, Start: start}.Generate(ctx, dir)
}

var teams = []string{"support", "growth", "billing", "search", "onboarding", "legal", "sales", "ops"}

// Path returns the repository path of prompt i.
func (c Config) Path(i int) string {
	team := teams[i%len(teams)]
	if c.Nested {
		return fmt.Sprintf("prompts/%s/prompt-%04d.yaml", team, i)
	}
	return fmt.Sprintf("prompts/%s-prompt-%04d.yaml", team, i)
}

// Generate writes the repository described by c at dir.
func (c Config) Generate(ctx context.Context, dir string) error {
	if c.Prompts <= 0 {
		return fmt.Errorf("gitgen: need at least one prompt")
	}
	seed := c.Seed
	if seed == 0 {
		seed = 1
	}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	versions := make([]int, c.Prompts)

	var from string
	if c.Start == 0 {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, "git", "-c", "init.defaultBranch=main", "init", "-q", "--bare", dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("gitgen: git init: %v: %s", err, out)
		}
	} else {
		out, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "refs/heads/main").Output()
		if err != nil {
			return fmt.Errorf("gitgen: read main: %w", err)
		}
		from = strings.TrimSpace(string(out))
		// Replay the choices of the commits already written.
		for k := 1; k < c.Start; k++ {
			for _, i := range c.pick(rng) {
				versions[i]++
			}
		}
	}

	cmd := exec.CommandContext(ctx, "git", "-C", dir, "fast-import", "--quiet")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("gitgen: start fast-import: %w", err)
	}
	w := bufio.NewWriterSize(stdin, 1<<20)
	werr := c.write(ctx, w, rng, versions, from)
	if werr == nil {
		werr = w.Flush()
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("gitgen: fast-import: %v: %s", err, stderr.String())
	}
	return werr
}

// pick chooses the prompts commit k changes.
func (c Config) pick(rng *rand.Rand) []int {
	n := 1
	switch x := rng.IntN(100); {
	case x >= 95:
		n = 3
	case x >= 80:
		n = 2
	}
	n = min(n, c.Prompts)
	hot := max(1, c.Prompts/10)
	var out []int
	for len(out) < n {
		var i int
		if rng.IntN(2) == 0 {
			i = rng.IntN(hot)
		} else {
			i = rng.IntN(c.Prompts)
		}
		dup := false
		for _, j := range out {
			dup = dup || j == i
		}
		if !dup {
			out = append(out, i)
		}
	}
	return out
}

func (c Config) write(ctx context.Context, w io.Writer, rng *rand.Rand, versions []int, from string) error {
	const t0 = 1700000000
	for k := c.Start; k < c.Start+c.Commits; k++ {
		if k%1000 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		var changed []int
		if k == 0 {
			for i := range c.Prompts {
				changed = append(changed, i)
			}
		} else {
			changed = c.pick(rng)
			for _, i := range changed {
				versions[i]++
			}
		}
		author := teams[k%len(teams)]
		msg := fmt.Sprintf("Add %d prompts\n", c.Prompts)
		if k > 0 {
			msg = fmt.Sprintf("Update %s (v%d)\n\nTune wording after review round %d.\n", c.key(changed[0]), versions[changed[0]]+1, k)
		}
		fmt.Fprintf(w, "commit refs/heads/main\ncommitter %s <%s@example.com> %d +0000\ndata %d\n%s",
			author, author, t0+int64(k)*600, len(msg), msg)
		if k == c.Start && from != "" {
			fmt.Fprintf(w, "from %s\n", from)
		}
		for _, i := range changed {
			body := c.content(i, versions[i])
			fmt.Fprintf(w, "M 100644 inline %s\ndata %d\n%s\n", c.Path(i), len(body), body)
		}
		if _, err := fmt.Fprint(w, "\n"); err != nil {
			return err
		}
	}
	return nil
}

func (c Config) key(i int) string {
	return strings.TrimSuffix(strings.TrimPrefix(filepath.Base(c.Path(i)), "prompts/"), ".yaml")
}

var (
	models = []string{"gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet", "claude-3-haiku"}
	tones  = []string{"friendly", "concise", "formal", "empathetic", "neutral"}
	tasks  = []string{"summarize the conversation", "classify the ticket", "draft a reply",
		"extract the action items", "translate the message", "score the lead"}
)

// content is version v of prompt i: ~1.4 KB of realistic prompt YAML.
func (c Config) content(i, v int) string {
	team := teams[i%len(teams)]
	task := tasks[(i+v)%len(tasks)]
	tone := tones[(i*7+v)%len(tones)]
	return fmt.Sprintf(`# %[1]s — owned by the %[2]s team
model: %[3]s
temperature: %.1[4]f
max_tokens: %[5]d
description: >-
  Used by the %[2]s service to %[6]s. Revision %[7]d of this prompt;
  keep the output format stable, downstream parsers depend on it.
system: |
  You are a careful assistant working for the %[2]s team. Your task is to
  %[6]s for the user described below. Use a %[8]s tone, never invent facts
  that are not present in the input, and say so plainly when the input does
  not contain enough information. Answer in the customer's language.
  Policy version %[7]d: do not include personal data in the output.
template: |
  {%% if customer.name %%}Customer: {{ customer.name }} ({{ customer.plan | default("free") }}){%% endif %%}
  Channel: {{ channel }}
  {%% for message in messages[-%[9]d:] %%}
  - {{ message.author }}: {{ message.text | trim }}
  {%% endfor %%}
  Please %[6]s in at most {{ max_sentences | default(%[10]d) }} sentences.
input_schema:
  type: object
  required: [messages, channel]
  properties:
    channel: {type: string, enum: [email, chat, phone]}
    max_sentences: {type: integer, minimum: 1, maximum: 20}
    customer:
      type: object
      properties:
        name: {type: string}
        plan: {type: string}
    messages:
      type: array
      items:
        type: object
        required: [author, text]
        properties:
          author: {type: string}
          text: {type: string, maxLength: 8000}
`, c.key(i), team, models[(i+v)%len(models)], float64((i+v)%10)/10, 256*(1+(i+v)%4),
		task, v+1, tone, 5+v%20, 3+v%5)
}
