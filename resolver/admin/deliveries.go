package admin

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/resolver"
)

// GitHub webhook deliveries (SPEC §4): what the inbox holds, and a way to
// process one again.
const (
	routeDeliveries        = "/v1/admin/deliveries"
	routeDeliveryRedeliver = "/v1/admin/deliveries/{id}/redeliver"
)

func init() {
	apiRoutes[routeDeliveries] = map[string]endpoint{http.MethodGet: (*Handler).listDeliveries}
	apiRoutes[routeDeliveryRedeliver] = map[string]endpoint{http.MethodPost: (*Handler).redeliverGitHub}
}

// deliveryRoute parses "deliveries/{id}/redeliver" (the part after the
// admin prefix); ok is false for any other path.
func deliveryRoute(rest string) (route string, p params, ok bool, err error) {
	if rest == "deliveries" {
		return routeDeliveries, params{}, true, nil
	}
	id, found := strings.CutPrefix(rest, "deliveries/")
	if !found {
		return "", params{}, false, nil
	}
	id, found = strings.CutSuffix(id, "/redeliver")
	if !found || id == "" || strings.Contains(id, "/") {
		return "", params{}, false, nil
	}
	guid, err := url.PathUnescape(id)
	if err != nil {
		return "", params{}, true, err
	}
	return routeDeliveryRedeliver, params{arg: guid}, true, nil
}

// deliveryView is a delivery in admin responses (no body).
type deliveryView struct {
	ID            string  `json:"id"` // GitHub's X-GitHub-Delivery
	Event         string  `json:"event"`
	Action        string  `json:"action"`
	Subject       string  `json:"subject"`
	State         string  `json:"state"`
	Attempts      int     `json:"attempts"`
	NextAttemptAt *string `json:"next_attempt_at"` // pending and waiting for a retry or a rate-limit reset
	LastError     string  `json:"last_error"`
	Result        string  `json:"result"`
	ReceivedAt    string  `json:"received_at"`
	DoneAt        string  `json:"done_at"`
}

func viewDelivery(d index.Delivery) deliveryView {
	v := deliveryView{ID: d.GUID, Event: d.Event, Action: d.Action, Subject: d.Subject, State: d.State,
		Attempts: d.Attempts, LastError: d.LastError, Result: d.Result, ReceivedAt: d.ReceivedAt, DoneAt: d.DoneAt}
	if d.State == index.DeliveryPending && d.NextAt > 0 {
		s := time.UnixMilli(d.NextAt).UTC().Format(time.RFC3339Nano)
		v.NextAttemptAt = &s
	}
	return v
}

// listDeliveries answers GET /v1/admin/deliveries?state=&limit=&cursor=,
// newest first.
func (h *Handler) listDeliveries(w http.ResponseWriter, r *http.Request, _ caller, _ params) {
	ctx := r.Context()
	limit, err := parseLimit(r)
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	before, err := decodeCursor(r.URL.Query().Get("cursor"), "d")
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	var ds []index.Delivery
	err = h.db.View(ctx, func(tx *index.Tx) (err error) {
		ds, err = tx.Deliveries(ctx, r.URL.Query().Get("state"), before, limit+1)
		return err
	})
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	out := struct {
		Deliveries []deliveryView `json:"deliveries"`
		NextCursor *string        `json:"next_cursor"`
	}{Deliveries: []deliveryView{}}
	for i, d := range ds {
		if i == limit {
			c := encodeCursor("d", ds[limit-1].Seq)
			out.NextCursor = &c
			break
		}
		out.Deliveries = append(out.Deliveries, viewDelivery(d))
	}
	writeJSON(w, r, http.StatusOK, out)
}

// redeliverGitHub answers POST /v1/admin/deliveries/{id}/redeliver: the delivery
// is pending again with a fresh attempt budget and the worker is woken.
func (h *Handler) redeliverGitHub(w http.ResponseWriter, r *http.Request, c caller, p params) {
	ctx := r.Context()
	var d index.Delivery
	err := h.db.Update(ctx, func(tx *index.Tx) (err error) {
		d, err = tx.RedeliverWebhook(ctx, p.arg)
		return err
	})
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	h.log.Info("webhook delivery redelivered", "delivery", d.GUID, logActor, c.actor())
	if h.redelivered != nil {
		h.redelivered()
	}
	writeJSON(w, r, http.StatusAccepted, viewDelivery(d))
}
