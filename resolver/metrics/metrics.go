// Package metrics defines every Prometheus metric promptvault exports at
// GET /metrics, and the functions the packages that observe them call:
// resolver (reads, HTTP), webhook (deliveries, queue depth), the render and
// events handlers (render errors, SSE subscribers), cmd (sync) and admin
// (pointer moves). It is a leaf: it imports only the Prometheus client, so
// any package can call it without an import cycle.
//
// The metrics live in one package-level registry because a process serves
// one data directory. Functions on the read path never allocate: label
// values are resolved once, here, to counters the hot path only increments.
// Nothing here carries secrets: keys appear nowhere, and label values are
// fixed sets (routes are templates, never raw paths), so a client cannot
// grow the series count.
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "promptvault"

// Registry holds every promptvault metric plus the Go runtime and process
// collectors.
var Registry = prometheus.NewRegistry()

var (
	httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "http_requests_total",
		Help: "HTTP requests answered, by route template, method and status code.",
	}, []string{"route", "method", "code"})
	httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "http_request_duration_seconds",
		Help: "Time to answer an HTTP request (until the handler returns), by route template.",
		// Reads answer in microseconds; admin diffs and syncs take longer.
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route"})
	reads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "reads_total",
		Help: "Prompt documents served by GET /v1/prompts/{key} (200 or 304), by the pointer that served them: live, staging, or pinned (?version=).",
	}, []string{"env"})
	renderErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "render_errors_total",
		Help: "Failed POST /v1/prompts/{key}/render requests, by reason: validation (variables fail input_schema), render_failed (template error, time or size limit), other.",
	}, []string{"reason"})
	renderWorkerExits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "render_worker_exits_total",
		Help: "Render worker processes ended and replaced, by reason: timeout (killed at the render deadline), died (crashed or hit the memory bound), canceled (the client left), protocol, start.",
	}, []string{"reason"})
	pointerMoves = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "pointer_moves_total",
		Help: "Live and staging pointer changes seen in the audit log (from the API, CLI, webhook or sync of any process on the data directory), by action and env.",
	}, []string{"action", "env"})
	syncDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "sync_duration_seconds",
		Help:    "Time to fetch and index the repository, by result (ok or error).",
		Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
	}, []string{"result"})
	syncLastSuccess = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "sync_last_success_timestamp_seconds",
		Help: "Unix time the last successful sync finished (0: none yet in this process).",
	})
	webhookDeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "webhook_deliveries_total",
		Help: "GitHub webhook deliveries, by state: accepted, duplicate, rejected (bad signature or body), processed, failed, retried, other.",
	}, []string{"state"})
	webhookQueue = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "webhook_queue_depth",
		Help: "Accepted webhook deliveries not yet processed.",
	})
	publishDeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "publish_deliveries_total",
		Help: "Outbound webhook attempts (publish events), by endpoint ID and outcome: delivered, retry (failed, will be tried again), failed (out of retries).",
	}, []string{"endpoint", "outcome"})
	publishQueue = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "publish_queue_depth",
		Help: "Outbound webhook deliveries pending (waiting for their next attempt or in flight), all endpoints.",
	})
	publishOldest = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "publish_oldest_pending_seconds",
		Help: "Age of the oldest pending outbound webhook delivery (0: none pending).",
	})
	leader = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "leader",
		Help: "1 while this instance is the one that syncs, reconciles and processes deliveries (always 1 on SQLite), else 0.",
	})
	docFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "document_build_failures_total",
		Help: "Live or staging pointers whose read document could not be built (content missing from the index, a file the parser now refuses), by env; counted once when a pointer starts failing, however often it is retried.",
	}, []string{"env"})
	docsFailing = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "documents_failing",
		Help: "Pointers whose document cannot be built right now, by served: previous (the last good document is still served) or none (reads of it answer 503).",
	}, []string{"served"})
	sseSubscribers = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "sse_subscribers",
		Help: "Open GET /v1/events streams.",
	})
)

func init() {
	Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		httpRequests, httpDuration, reads, renderErrors, renderWorkerExits, pointerMoves,
		syncDuration, syncLastSuccess, webhookDeliveries, webhookQueue, sseSubscribers, leader,
		publishDeliveries, publishQueue, publishOldest, docFailures, docsFailing,
	)
	// Pre-create the fixed series so dashboards see zeros, not gaps, and
	// the hot paths hold resolved counters.
	for _, r := range RenderReasons {
		renderErrors.WithLabelValues(r)
	}
	for _, r := range RenderWorkerExitReasons {
		renderWorkerExits.WithLabelValues(r)
	}
	for _, s := range WebhookStates {
		webhookDeliveries.WithLabelValues(s)
	}
	for _, a := range PointerActions {
		for _, e := range []string{"live", "staging"} {
			pointerMoves.WithLabelValues(a, e)
		}
	}
	for _, r := range []string{"ok", "error"} {
		syncDuration.WithLabelValues(r)
	}
	for _, e := range []string{"live", "staging"} {
		docFailures.WithLabelValues(e)
	}
	SetDocumentsFailing(0, 0)
}

// DocumentBuildFailed counts a pointer of env ("live" or "staging") whose
// document started failing to build.
func DocumentBuildFailed(env string) {
	if env != "staging" {
		env = "live"
	}
	docFailures.WithLabelValues(env).Inc()
}

// SetDocumentsFailing reports how many pointers' documents cannot be built:
// previous of them still serve their last good document, none serve nothing.
func SetDocumentsFailing(previous, none int) {
	docsFailing.WithLabelValues("previous").Set(float64(previous))
	docsFailing.WithLabelValues("none").Set(float64(none))
}

// Handler serves the registry in the Prometheus text format.
func Handler() http.Handler {
	return promhttp.HandlerFor(Registry, promhttp.HandlerOpts{Registry: Registry})
}

// Read env values (the "env" label of reads_total).
const (
	EnvLive    = "live"
	EnvStaging = "staging"
	EnvPinned  = "pinned"
)

var (
	readLive    = reads.WithLabelValues(EnvLive)
	readStaging = reads.WithLabelValues(EnvStaging)
	readPinned  = reads.WithLabelValues(EnvPinned)
)

// Read counts one prompt document served from env (EnvLive, EnvStaging or
// EnvPinned). It does not allocate.
func Read(env string) {
	switch env {
	case EnvStaging:
		readStaging.Inc()
	case EnvPinned:
		readPinned.Inc()
	default:
		readLive.Inc()
	}
}

// RenderReasons are the reason label values of render_errors_total.
var RenderReasons = []string{"validation", "render_failed", "other"}

// RenderError counts a failed render: reason is "validation" (the variables
// fail input_schema), "render_failed" (template error, time or output
// limit); anything else is counted as "other".
func RenderError(reason string) {
	renderErrors.WithLabelValues(oneOf(reason, RenderReasons)).Inc()
}

// RenderWorkerExitReasons are the reason label values of
// render_worker_exits_total (promptvault.PoolOptions.OnExit's reasons).
var RenderWorkerExitReasons = []string{"timeout", "died", "canceled", "protocol", "start", "other"}

// RenderWorkerExit counts one render worker process that ended.
func RenderWorkerExit(reason string) {
	renderWorkerExits.WithLabelValues(oneOf(reason, RenderWorkerExitReasons)).Inc()
}

// PointerActions are the action label values of pointer_moves_total: the
// audit actions that move a pointer (SPEC §5), and "other" for actions
// added later.
var PointerActions = []string{"bootstrap", "promote", "rollback", "staging_set", "staging_clear", "archive", "other"}

// PointerMove counts one pointer change of env ("live" or "staging") made
// by an audit action.
func PointerMove(action, env string) {
	if env != "staging" {
		env = "live"
	}
	pointerMoves.WithLabelValues(oneOf(action, PointerActions), env).Inc()
}

// ObserveSync records one sync (fetch and index) that started at start and
// ended with err.
func ObserveSync(start time.Time, err error) {
	d := time.Since(start).Seconds()
	if err != nil {
		syncDuration.WithLabelValues("error").Observe(d)
		return
	}
	syncDuration.WithLabelValues("ok").Observe(d)
	syncLastSuccess.Set(float64(time.Now().UnixNano()) / 1e9)
}

// WebhookStates are the state label values of webhook_deliveries_total.
var WebhookStates = []string{"accepted", "duplicate", "rejected", "processed", "failed", "retried", "other"}

// WebhookDelivery counts a webhook delivery reaching state (one of
// WebhookStates; anything else is counted as "other").
func WebhookDelivery(state string) {
	webhookDeliveries.WithLabelValues(oneOf(state, WebhookStates)).Inc()
}

// SetWebhookQueueDepth reports the number of accepted deliveries waiting to
// be processed.
func SetWebhookQueueDepth(n int) { webhookQueue.Set(float64(n)) }

// SetLeader reports whether this instance is the leader.
func SetLeader(on bool) {
	if on {
		leader.Set(1)
	} else {
		leader.Set(0)
	}
}

// PublishOutcomes are the outcome label values of publish_deliveries_total.
var PublishOutcomes = []string{"delivered", "retry", "failed"}

// PublishDelivery counts one outbound webhook attempt to endpoint (its ID:
// admins create endpoints, so the series count stays theirs to bound).
func PublishDelivery(endpoint, outcome string) {
	publishDeliveries.WithLabelValues(endpoint, oneOf(outcome, PublishOutcomes)).Inc()
}

// SetPublishQueue reports the outbound queue's depth and the age of its
// oldest pending delivery.
func SetPublishQueue(pending int, oldest time.Duration) {
	publishQueue.Set(float64(pending))
	publishOldest.Set(oldest.Seconds())
}

// SSESubscribe counts an opened event stream; call the returned function
// once when it closes.
func SSESubscribe() (unsubscribe func()) {
	sseSubscribers.Inc()
	var once sync.Once
	return func() { once.Do(sseSubscribers.Dec) }
}

func oneOf(v string, allowed []string) string {
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	return allowed[len(allowed)-1]
}

// methods bounds the method label: anything else is "other".
var methods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions, "other"}

func methodLabel(m string) string { return oneOf(m, methods) }

// statusLabel spells the common codes without strconv's allocation.
func statusLabel(code int) string {
	switch code {
	case 200:
		return "200"
	case 304:
		return "304"
	case 404:
		return "404"
	}
	return strconv.Itoa(code)
}
