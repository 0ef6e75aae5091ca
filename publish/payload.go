package publish

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/promptvault/promptvault/index"
)

// Payload is the JSON body of a standard delivery (SPEC §6).
type Payload struct {
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
	Data      any    `json:"data"`
}

// EventData is the data of a prompt.* event. Version is null for
// prompt.staging_cleared; PreviousVersion is null when the pointer was
// unset before.
type EventData struct {
	Key             string  `json:"key"`
	Env             string  `json:"env"`
	Version         *string `json:"version"`
	PreviousVersion *string `json:"previous_version"`
	Commit          string  `json:"commit"`
	SHA256          string  `json:"sha256"`
	Actor           string  `json:"actor"`
	AuditID         int64   `json:"audit_id"`
}

// PingData is the data of a ping event.
type PingData struct {
	WebhookID string `json:"webhook_id"`
	Actor     string `json:"actor"`
	Message   string `json:"message"`
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Body renders delivery d's request body for an endpoint of format. The
// same event renders the same bytes every time (retries and redeliveries
// carry the body that was signed before, byte for byte).
func Body(d index.HookDelivery, format, baseURL string) ([]byte, error) {
	var v any
	if format == index.FormatSlack {
		v = map[string]string{"text": SlackText(d.Event, d.HookID, baseURL)}
	} else {
		p := Payload{Type: d.Event.Type, Timestamp: d.Event.At}
		if d.Event.Type == index.EventPing {
			p.Data = PingData{WebhookID: d.HookID, Actor: d.Event.Actor, Message: "promptvault test event"}
		} else {
			e := d.Event
			p.Data = EventData{Key: e.Key, Env: e.Env, Version: nullable(e.Version), PreviousVersion: nullable(e.PreviousVersion),
				Commit: e.Commit, SHA256: e.SHA256, Actor: e.Actor, AuditID: e.AuditSeq}
		}
		v = p
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode event %s: %w", d.EventID, err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// slackEscape escapes the three characters Slack's mrkdwn reserves.
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// SlackText is the readable message of an event, e.g.
// "support/summarize: live v6 → v7 by alice, <…|diff>".
func SlackText(e index.Event, hookID, baseURL string) string {
	esc := slackEscape.Replace
	prev := e.PreviousVersion
	if prev == "" {
		prev = "(none)"
	}
	var s string
	switch e.Type {
	case index.EventPing:
		return "promptvault: test message for webhook " + esc(hookID) + " from " + esc(e.Actor)
	case index.EventStagingCleared:
		s = fmt.Sprintf("%s: staging %s cleared by %s", esc(e.Key), esc(prev), esc(e.Actor))
	case index.EventArchived:
		s = fmt.Sprintf("%s: archived (live was %s) by %s", esc(e.Key), esc(prev), esc(e.Actor))
	case index.EventRolledBack:
		s = fmt.Sprintf("%s: %s %s → %s (rollback) by %s", esc(e.Key), esc(e.Env), esc(prev), esc(e.Version), esc(e.Actor))
	default:
		s = fmt.Sprintf("%s: %s %s → %s by %s", esc(e.Key), esc(e.Env), esc(prev), esc(e.Version), esc(e.Actor))
	}
	if link := DiffLink(baseURL, e); link != "" {
		s += ", <" + link + "|diff>"
	}
	return s
}

// DiffLink is the dashboard page comparing an event's previous and new
// version ("" without a base URL or without two versions to compare).
func DiffLink(baseURL string, e index.Event) string {
	if baseURL == "" || e.Key == "" {
		return ""
	}
	link := baseURL + "/ui/#/p/" + e.Key
	if e.PreviousVersion != "" && e.Version != "" && e.Version != index.LabelArchived && e.PreviousVersion != index.LabelArchived {
		link += "?diff=" + url.QueryEscape(e.PreviousVersion) + ".." + url.QueryEscape(e.Version)
	}
	return link
}
