package admin

// Outbound webhook endpoints (SPEC §6): add, list, remove, ping, delivery
// log and redelivery. Everything is a row in the index; the delivery
// worker of the running server (package publish) notices it through the
// change feed and sends, so these handlers never make outbound requests.

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/resolver"
)

const (
	routeWebhooks   = "/v1/admin/webhooks"
	routeWebhook    = "/v1/admin/webhooks/{id}"
	routeWebhookLog = "/v1/admin/webhooks/{id}/deliveries"
	routeRedeliver  = "/v1/admin/webhooks/{id}/deliveries/{delivery}/redeliver"
	routePing       = "/v1/admin/webhooks/{id}/test"
)

func init() {
	apiRoutes[routeWebhooks] = map[string]endpoint{http.MethodGet: (*Handler).listWebhooks, http.MethodPost: (*Handler).addWebhook}
	apiRoutes[routeWebhook] = map[string]endpoint{http.MethodGet: (*Handler).getWebhook, http.MethodDelete: (*Handler).removeWebhook}
	apiRoutes[routeWebhookLog] = map[string]endpoint{http.MethodGet: (*Handler).webhookDeliveries}
	apiRoutes[routeRedeliver] = map[string]endpoint{http.MethodPost: (*Handler).redeliver}
	apiRoutes[routePing] = map[string]endpoint{http.MethodPost: (*Handler).pingWebhook}
}

// parseWebhookPath maps "webhooks…" (the part after /v1/admin/) to a
// route; ok is false for other paths. The endpoint ID goes to params.arg,
// a delivery ID to params.key.
func parseWebhookPath(rest string) (route string, p params, ok bool, err error) {
	if rest == "webhooks" {
		return routeWebhooks, p, true, nil
	}
	tail, found := strings.CutPrefix(rest, "webhooks/")
	if !found {
		return "", p, false, nil
	}
	seg := strings.Split(tail, "/")
	for i, s := range seg {
		if seg[i], err = url.PathUnescape(s); err != nil || seg[i] == "" {
			return "", p, true, errNoRoute
		}
	}
	p.arg = seg[0]
	switch {
	case len(seg) == 1:
		return routeWebhook, p, true, nil
	case len(seg) == 2 && seg[1] == "deliveries":
		return routeWebhookLog, p, true, nil
	case len(seg) == 2 && seg[1] == "test":
		return routePing, p, true, nil
	case len(seg) == 4 && seg[1] == "deliveries" && seg[3] == "redeliver":
		p.key = seg[2]
		return routeRedeliver, p, true, nil
	}
	return "", p, true, errNoRoute
}

type webhookBody struct {
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	Description string   `json:"description"`
	Format      string   `json:"format"`
}

func (h *Handler) addWebhook(w http.ResponseWriter, r *http.Request, c caller, _ params) {
	var b webhookBody
	if err := decodeBody(w, r, &b); err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	if b.URL == "" {
		resolver.WriteError(w, r, fmt.Errorf("%w: url is required", index.ErrInvalid))
		return
	}
	ctx := r.Context()
	var created index.CreatedHook
	err := h.db.Update(ctx, func(tx *index.Tx) (err error) {
		created, err = tx.AddHook(ctx, index.NewHook{URL: b.URL, Events: b.Events, Description: b.Description, Format: b.Format}, c.actor())
		return err
	})
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	h.log.Info("webhook added", "webhook", created.ID, logKeyID, c.keyID)
	writeJSON(w, r, http.StatusCreated, created)
}

func (h *Handler) listWebhooks(w http.ResponseWriter, r *http.Request, _ caller, _ params) {
	ctx := r.Context()
	var hooks []index.Hook
	err := h.db.View(ctx, func(tx *index.Tx) (err error) {
		hooks, err = tx.Hooks(ctx)
		return err
	})
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, map[string]any{"webhooks": orEmpty(hooks), "event_types": index.EventTypes})
}

func (h *Handler) getWebhook(w http.ResponseWriter, r *http.Request, _ caller, p params) {
	ctx := r.Context()
	var hook index.Hook
	err := h.db.View(ctx, func(tx *index.Tx) (err error) {
		hook, err = tx.Hook(ctx, p.arg)
		return err
	})
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, hook)
}

func (h *Handler) removeWebhook(w http.ResponseWriter, r *http.Request, c caller, p params) {
	ctx := r.Context()
	err := h.db.Update(ctx, func(tx *index.Tx) error {
		_, err := tx.RemoveHook(ctx, p.arg, c.actor())
		return err
	})
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	h.log.Info("webhook removed", "webhook", p.arg, logKeyID, c.keyID)
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) webhookDeliveries(w http.ResponseWriter, r *http.Request, _ caller, p params) {
	ctx := r.Context()
	limit, err := parseLimit(r)
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	before, err := decodeCursor(r.URL.Query().Get("cursor"), "webhook-deliveries")
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	type row struct {
		index.HookDelivery
		AttemptLog []index.HookAttempt `json:"attempt_log"`
	}
	out := struct {
		Deliveries []row   `json:"deliveries"`
		NextCursor *string `json:"next_cursor"`
	}{Deliveries: []row{}}
	err = h.db.View(ctx, func(tx *index.Tx) error {
		ds, err := tx.HookDeliveries(ctx, p.arg, before, limit+1)
		if err != nil {
			return err
		}
		if len(ds) > limit {
			ds = ds[:limit]
			c := encodeCursor("webhook-deliveries", ds[len(ds)-1].Seq)
			out.NextCursor = &c
		}
		for _, d := range ds {
			atts, err := tx.HookAttempts(ctx, d.Seq)
			if err != nil {
				return err
			}
			out.Deliveries = append(out.Deliveries, row{d, orEmpty(atts)})
		}
		return nil
	})
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, out)
}

func (h *Handler) redeliver(w http.ResponseWriter, r *http.Request, c caller, p params) {
	seq, err := strconv.ParseInt(p.key, 10, 64)
	if err != nil || seq <= 0 {
		resolver.WriteError(w, r, fmt.Errorf("%w: delivery %q: want the numeric id from the delivery log", index.ErrNotFound, p.key))
		return
	}
	ctx := r.Context()
	var d index.HookDelivery
	err = h.db.Update(ctx, func(tx *index.Tx) (err error) {
		d, err = tx.Redeliver(ctx, p.arg, seq, c.actor())
		return err
	})
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusAccepted, d)
}

func (h *Handler) pingWebhook(w http.ResponseWriter, r *http.Request, c caller, p params) {
	ctx := r.Context()
	var d index.HookDelivery
	err := h.db.Update(ctx, func(tx *index.Tx) (err error) {
		d, err = tx.Ping(ctx, p.arg, c.actor())
		return err
	})
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusAccepted, d)
}
