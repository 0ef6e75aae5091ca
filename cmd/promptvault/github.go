package main

// GitHub mode: flags, configuration, the webhook route, the worker and
// reconcile loop, and rollback --open-pr. Plugged in through hooks.go.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/spf13/cobra"

	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/resolver/admin"
	"github.com/promptvault/promptvault/webhook"
)

// githubConfig is one invocation's GitHub flags and what they configure.
type githubConfig struct {
	appID, appKey, token, apiURL string
	githubRepo                   string // --github-repo OWNER/NAME
	stagingLabel, holdLabel      string
	root                         *cobra.Command

	on          bool // GitHub mode: an App or a token is configured
	owner, name string
	client      *webhook.Client
	app         *webhook.AppAuth
}

// webhookWorkers maps each server to its webhook worker, so the admin API
// (mounted by another hook) can wake it after a redelivery.
var webhookWorkers sync.Map // *server → *webhook.Worker

// wakeWebhookWorker wakes s's webhook worker, if it has one.
func wakeWebhookWorker(s *server) {
	if w, ok := webhookWorkers.Load(s); ok {
		w.(*webhook.Worker).Notify()
	}
}

// githubConfigs maps each invocation (tests run many per process) to its
// GitHub configuration.
var githubConfigs sync.Map // *cli → *githubConfig

func githubOf(c *cli) *githubConfig {
	g, _ := githubConfigs.Load(c)
	if g == nil {
		return &githubConfig{}
	}
	return g.(*githubConfig)
}

func init() {
	flagHooks = append(flagHooks, githubFlags)
	configHooks = append(configHooks, githubSetup)
	serveHooks = append(serveHooks, githubServe)
	openRollbackPR = githubRollbackPR
}

// githubCommands take the GitHub flags: GitHub mode changes what a sync
// indexes (pull requests, not branches), and these commands call GitHub.
var githubCommands = []string{"serve", "sync", "reindex", "rollback"}

func githubFlags(c *cli, root *cobra.Command) {
	g := &githubConfig{root: root, apiURL: "https://api.github.com/",
		stagingLabel: webhook.DefaultStagingLabel, holdLabel: webhook.DefaultHoldLabel}
	githubConfigs.Store(c, g)
	// GitHub flags go on the commands that talk to GitHub or index its
	// pull requests, not on every command.
	for _, name := range githubCommands {
		cmd, _, err := root.Find(strings.Fields(name))
		if err != nil || cmd == root {
			continue
		}
		pf := cmd.Flags()
		pf.StringVar(&g.appID, "github-app-id", "", "GitHub App ID (GitHub mode, with --github-app-key)")
		pf.StringVar(&g.appKey, "github-app-key", "", "path of the GitHub App's private key PEM file")
		pf.StringVar(&g.token, "github-token", "", "GitHub token (GitHub mode without an App: commit statuses instead of check runs)")
		pf.StringVar(&g.githubRepo, "github-repo", "", "served repository OWNER/NAME (default: from --repo's URL); deliveries about other repositories are ignored")
		pf.StringVar(&g.apiURL, "github-api-url", "https://api.github.com/", "GitHub REST API URL (GitHub Enterprise Server: https://HOST/api/v3/)")
		if name == "serve" {
			pf.StringVar(&g.stagingLabel, "staging-label", webhook.DefaultStagingLabel, "pull request label that puts its drafts on staging")
			pf.StringVar(&g.holdLabel, "hold-label", webhook.DefaultHoldLabel, "pull request label that merges without promoting")
		}
	}

	// openRollbackPR is always set (init cannot know the flags), so refuse
	// --open-pr outside GitHub mode here, before rollback moves live.
	if rb, _, err := root.Find([]string{"rollback"}); err == nil && rb != root {
		prev := rb.PreRunE
		rb.PreRunE = func(cmd *cobra.Command, args []string) error {
			if f := cmd.Flags().Lookup("open-pr"); f != nil && f.Value.String() == "true" && g.appID == "" && g.token == "" {
				return errors.New("rollback --open-pr needs GitHub mode (--github-token or --github-app-id)")
			}
			if prev != nil {
				return prev(cmd, args)
			}
			return nil
		}
	}
}

// githubSetup turns GitHub mode on when an App or a token is configured:
// pull requests are the drafts (not branches), merged pull requests promote
// unless --auto-promote says otherwise, and fetches authenticate.
func githubSetup(ctx context.Context, c *cli, d *data) error {
	g := githubOf(c)
	if g.appID == "" && g.token == "" {
		if g.appKey != "" {
			return errors.New("--github-app-key needs --github-app-id")
		}
		return nil
	}
	if g.appID != "" && g.appKey == "" {
		return errors.New("--github-app-id needs --github-app-key (path of the App's private key PEM file)")
	}
	owner, name, err := g.servedRepo(d.repo)
	if err != nil {
		return err
	}
	g.on, g.owner, g.name = true, owner, name
	var ts webhook.TokenSource
	if g.appID != "" {
		pemBytes, err := os.ReadFile(g.appKey)
		if err != nil {
			return fmt.Errorf("--github-app-key: %w", err)
		}
		key, err := webhook.ParseKey(pemBytes)
		if err != nil {
			return fmt.Errorf("--github-app-key %s: %w", g.appKey, err)
		}
		if g.app, err = webhook.NewAppAuth(g.apiURL, g.appID, key, owner, name); err != nil {
			return err
		}
		ts = g.app
	} else {
		ts = webhook.StaticToken(g.token)
	}
	if g.client, err = webhook.NewClient(g.apiURL, owner, name, ts, g.app != nil); err != nil {
		return err
	}
	d.cfg.BranchDrafts = false
	if !c.explicit["auto-promote"] {
		d.cfg.AutoPromote = index.AutoMergedPR
	}
	if strings.HasPrefix(d.repo, "http://") || strings.HasPrefix(d.repo, "https://") {
		client := g.client
		c.gitAuth = func(ctx context.Context) (transport.AuthMethod, error) {
			tok, err := client.Token(ctx)
			if err != nil {
				return nil, err
			}
			return &githttp.BasicAuth{Username: "x-access-token", Password: tok}, nil
		}
	}
	return nil
}

// servedRepo is --github-repo, or else the owner and name in --repo's URL.
func (g *githubConfig) servedRepo(repo string) (owner, name string, err error) {
	if g.githubRepo == "" {
		return ownerName(repo)
	}
	owner, name, ok := strings.Cut(g.githubRepo, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("--github-repo %q: want OWNER/NAME", g.githubRepo)
	}
	return owner, name, nil
}

// ownerName reads OWNER and NAME from https://HOST/OWNER/NAME(.git) (any
// host: github.com, an Enterprise Server, a test server) or git@HOST:OWNER/NAME.git.
func ownerName(repo string) (owner, name string, err error) {
	var p string
	if isSCPLike(repo) {
		p = repo[strings.Index(repo, ":")+1:]
	} else if u, perr := url.Parse(repo); perr == nil && u.Host != "" {
		p = u.Path
	}
	parts := strings.Split(strings.Trim(strings.TrimSuffix(strings.Trim(p, "/"), ".git"), "/"), "/")
	if len(parts) < 2 || parts[len(parts)-2] == "" || parts[len(parts)-1] == "" {
		return "", "", fmt.Errorf("GitHub mode: cannot tell OWNER/NAME from --repo %q; want https://github.com/OWNER/NAME.git", repo)
	}
	return parts[len(parts)-2], parts[len(parts)-1], nil
}

// githubServe mounts POST /webhooks/github and starts the worker (with its
// reconcile loop) when a webhook secret is set; GitHub mode without one is
// refused, since unsigned deliveries could move live pointers.
func githubServe(ctx context.Context, c *cli, s *server) error {
	g := githubOf(c)
	if c.webhookSecret == "" {
		if g.on {
			return errors.New("GitHub mode (--github-app-id or --github-token) needs --webhook-secret: unsigned deliveries are never accepted")
		}
		return nil
	}
	every := 5 * time.Minute
	if g.root != nil {
		if serve, _, err := g.root.Find([]string{"serve"}); err == nil {
			if f := serve.Flags().Lookup("reconcile-every"); f != nil {
				if v, err := time.ParseDuration(f.Value.String()); err == nil && v > 0 {
					every = v
				}
			}
		}
	}
	// The served repository: deliveries about others are ignored. Unknown
	// for a local --repo without --github-repo: then every one is taken.
	served := ""
	if owner, name, err := g.servedRepo(s.Data.repo); err == nil {
		served = owner + "/" + name
	} else if g.githubRepo != "" {
		return err
	} else {
		s.Log.Warn("webhook: served repository unknown (local --repo, no --github-repo): deliveries of any repository are processed")
	}
	w, err := webhook.NewWorker(webhook.Options{
		DB: s.Data.db, Repo: s.Repo, Config: s.Data.cfg, GitHub: g.client, App: g.app, Repository: served,
		StagingLabel: g.stagingLabel, HoldLabel: g.holdLabel, ReconcileEvery: every,
		Lock: func(ctx context.Context) (func(), error) { return syncLock(ctx, s.Data) }, Logger: s.Log,
	})
	if err != nil {
		return err
	}
	webhookWorkers.Store(s, w)
	context.AfterFunc(ctx, func() { webhookWorkers.Delete(s) })
	rc, err := webhook.NewReceiver(webhook.ReceiverOptions{DB: s.Data.db, Secret: c.webhookSecret, Logger: s.Log, Repository: served,
		Notify: w.Notify, WriteError: s.Handler.WriteError})
	if err != nil {
		return err
	}
	s.Handler.Router().Handle("/webhooks/github", rc).Methods(http.MethodPost)
	mode := "webhook only (no App or token: payload labels, no check runs)"
	if g.on {
		mode = "GitHub " + g.owner + "/" + g.name
	}
	s.Log.Info("webhook enabled", "path", "/webhooks/github", "mode", mode, "auto_promote", s.Data.cfg.AutoPromote)
	// Any instance accepts deliveries into the shared inbox; only the
	// leader processes them.
	s.Leader = append(s.Leader, func(ctx context.Context) {
		if err := w.Run(ctx); err != nil && ctx.Err() == nil {
			s.Log.Error("webhook worker stopped", "err", err)
		}
	})
	return nil
}

// githubRollbackPR opens the pull request of rollback --open-pr.
func githubRollbackPR(ctx context.Context, c *cli, d *data, v index.Version) (string, error) {
	g := githubOf(c)
	if !g.on {
		return "", errors.New("rollback --open-pr needs GitHub mode (--github-token or --github-app-id)")
	}
	content, err := d.db.Content(ctx, v.BlobSHA)
	if err != nil {
		return "", fmt.Errorf("read %s %s: %w", v.Key, v.Label, err)
	}
	return g.client.OpenRollbackPR(ctx, d.cfg.Branch, v, content)
}

// draftHost is GitHub mode's admin.DraftHost: dashboard drafts are commits
// through the API on a branch with a pull request. nil outside GitHub mode.
func draftHost(c *cli) admin.DraftHost {
	g := githubOf(c)
	if !g.on {
		return nil
	}
	return githubDrafts{g.client}
}

type githubDrafts struct{ c *webhook.Client }

func (h githubDrafts) CommitDraft(ctx context.Context, d admin.HostedCommit) (admin.HostedDraft, error) {
	sha, n, url, err := h.c.CommitDraft(ctx, webhook.DraftCommit{Branch: d.Branch, BaseBranch: d.BaseBranch, Expect: d.Expect,
		Path: d.Path, Content: d.Content, Message: d.Message, AuthorName: d.AuthorName, AuthorEmail: d.AuthorEmail})
	return admin.HostedDraft{Commit: sha, PullRequest: n, PullRequestURL: url}, err
}

func (h githubDrafts) MergeDraft(ctx context.Context, draft, message string) (string, error) {
	return h.c.MergeDraft(ctx, draft, message)
}

func (h githubDrafts) PullRequestURL(n int) string { return h.c.PullRequestURL(n) }
