package resolver

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/promptvault/promptvault"
	"github.com/promptvault/promptvault/index"
)

// Sentinel errors detected by the HTTP layer. index's sentinels
// (ErrNotFound, ErrInvalid, ErrConflict, ErrInvalidVersion) are mapped too.
var (
	// ErrUnauthorized: a missing, malformed, unknown or revoked API key.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: a valid key of the wrong kind (a live or test key on
	// an admin endpoint).
	ErrForbidden = errors.New("forbidden")
	// ErrArchived: the prompt's deletion was promoted.
	ErrArchived = errors.New("prompt archived")
	// ErrTooLarge: a request body past its limit.
	ErrTooLarge = errors.New("request too large")
	// ErrMethodNotAllowed: the path exists, the method does not.
	ErrMethodNotAllowed = errors.New("method not allowed")
	// ErrNotReady: /readyz before the first sync, or while a live pointer
	// has no document.
	ErrNotReady = errors.New("not ready")
	// ErrUnavailable: a document that cannot be built yet (its content is
	// not in the index); the server retries, so the client should too.
	ErrUnavailable = errors.New("unavailable")
	// ErrDatabaseDown: /readyz while the database does not answer (reads
	// are still served from memory).
	ErrDatabaseDown = errors.New("not ready: the database does not answer")
)

// errorTable is the only place a status is chosen. The first entry whose
// error errors.Is the returned error wins; *promptvault.Problems and
// *http.MaxBytesError are checked by type before it. Anything not listed is
// 500 internal: logged, never echoed, because its text may name files,
// SQL or Git objects.
var errorTable = []struct {
	err    error
	status int
	code   string
}{
	{ErrUnauthorized, http.StatusUnauthorized, "unauthorized"},
	{ErrForbidden, http.StatusForbidden, "forbidden"},
	{ErrArchived, http.StatusNotFound, "prompt_archived"},
	{index.ErrNotFound, http.StatusNotFound, "not_found"},
	{index.ErrInvalidVersion, http.StatusUnprocessableEntity, "validation_failed"},
	{index.ErrInvalid, http.StatusBadRequest, "invalid_request"},
	{index.ErrConflict, http.StatusConflict, "conflict"},
	{ErrTooLarge, http.StatusRequestEntityTooLarge, "too_large"},
	{ErrMethodNotAllowed, http.StatusMethodNotAllowed, "method_not_allowed"},
	{ErrNotReady, http.StatusServiceUnavailable, "not_ready"},
	{ErrDatabaseDown, http.StatusServiceUnavailable, "database_unreachable"},
	{ErrUnavailable, http.StatusServiceUnavailable, "unavailable"},
	{promptvault.ErrRender, http.StatusUnprocessableEntity, "render_failed"},
	{promptvault.ErrBusy, http.StatusServiceUnavailable, "busy"},
}

// ErrorBody is the JSON of every error response: {"error": {...}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inner object of an error response. Problems lists every
// validation problem of a 422 validation_failed about a prompt file; Errors
// every problem with a render's variables, each at its JSON pointer.
type ErrorDetail struct {
	Code     string                      `json:"code"`
	Message  string                      `json:"message"`
	Problems []promptvault.Problem       `json:"problems,omitempty"`
	Errors   []promptvault.VariableError `json:"errors,omitempty"`
}

// Classify returns the status, code and client-facing message for err, and
// the validation problems it carries. Unknown errors are 500 "internal" with
// a fixed message.
func Classify(err error) (status int, detail ErrorDetail) {
	var probs *promptvault.Problems
	if errors.As(err, &probs) {
		return http.StatusUnprocessableEntity, ErrorDetail{Code: "validation_failed", Message: err.Error(), Problems: probs.List}
	}
	var ve *promptvault.VariablesError
	if errors.As(err, &ve) {
		return http.StatusUnprocessableEntity, ErrorDetail{Code: "validation_failed", Message: err.Error(), Errors: ve.List}
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge, ErrorDetail{Code: "too_large", Message: err.Error()}
	}
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			return e.status, ErrorDetail{Code: e.code, Message: err.Error()}
		}
	}
	return http.StatusInternalServerError, ErrorDetail{Code: "internal", Message: "internal error"}
}

// WriteError answers err as {"error": {"code", "message"}} with the status
// errorTable gives it. 500s are logged to slog.Default(); handlers that
// have a Handler use (*Handler).WriteError, which logs to its logger.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	writeError(slog.Default(), w, r, err)
}

// WriteError is the package WriteError logging to the handler's logger.
func (h *Handler) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	writeError(h.log, w, r, err)
}

func writeError(log *slog.Logger, w http.ResponseWriter, r *http.Request, err error) {
	status, detail := Classify(err)
	if status == http.StatusInternalServerError {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	hdr := w.Header()
	// A handler may have set these for a success it then abandoned.
	delete(hdr, "Etag")
	delete(hdr, "Content-Length")
	hdr["Content-Type"] = hdrJSON
	hdr["Cache-Control"] = hdrNoStore
	if status == http.StatusServiceUnavailable && (errors.Is(err, promptvault.ErrBusy) || errors.Is(err, ErrUnavailable)) {
		hdr["Retry-After"] = []string{"1"}
	}
	if status == http.StatusUnauthorized {
		// RFC 6750 §3: a 401 names the scheme the client should use.
		hdr["Www-Authenticate"] = hdrBearer
	}
	w.WriteHeader(status)
	b, err := encodeJSON(ErrorBody{Error: detail})
	if err != nil {
		log.Error("encode error body", "err", err)
		return
	}
	w.Write(b)
}
