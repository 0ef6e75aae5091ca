package admin

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/resolver"
)

// Dashboard sessions. Signing in exchanges an admin key (POST /ui/session)
// for a random session token in an HttpOnly, SameSite=Strict cookie, so the
// key never stays in the browser where page script could read it. Sessions
// live in the index (only the token's hash), so every instance sharing a
// database knows them, a restart keeps them, and revoking the key ends them
// everywhere in the same transaction.
//
// Writes with a session need the session's CSRF token in X-CSRF-Token (a
// header a cross-site form or a simple cross-origin fetch cannot set) and,
// when the browser sends Origin or Sec-Fetch-Site, a same-origin request.
// API clients with a bearer key are unaffected: browsers never attach
// Authorization on their own.
const (
	SessionCookie = "pv_session"
	CSRFHeader    = "X-CSRF-Token"
)

var (
	errNoSession   = fmt.Errorf("%w: dashboard session expired or signed out; sign in again", resolver.ErrUnauthorized)
	errKeyRevoked  = fmt.Errorf("%w: the key this session signed in with was revoked; sign in again", resolver.ErrUnauthorized)
	errCSRF        = fmt.Errorf("%w: missing or wrong %s header for this session", resolver.ErrForbidden, CSRFHeader)
	errCrossOrigin = fmt.Errorf("%w: cross-origin request refused", resolver.ErrForbidden)
)

type session struct {
	keyID   string
	csrf    string
	expires time.Time
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

// createSession starts a session for key id and returns its token.
func (h *Handler) createSession(ctx context.Context, keyID string) (string, *session, error) {
	tok := randomToken()
	sess := &session{keyID: keyID, csrf: randomToken(), expires: time.Now().Add(SessionTTL)}
	err := h.db.Update(ctx, func(tx *index.Tx) error {
		return tx.CreateSession(ctx, index.Session{TokenHash: hashToken(tok), KeyID: keyID, CSRF: sess.csrf,
			Expires: sess.expires}, maxSessions)
	})
	return tok, sess, err
}

// lookupSession returns the session of token tok, errNoSession when there
// is none (or it expired), errKeyRevoked when its key was revoked.
func (h *Handler) lookupSession(ctx context.Context, tok string) (*session, error) {
	var s index.Session
	var ok, revoked bool
	err := h.db.View(ctx, func(tx *index.Tx) (err error) {
		s, ok, revoked, err = tx.Session(ctx, hashToken(tok))
		return err
	})
	switch {
	case err != nil:
		return nil, err
	case revoked:
		return nil, errKeyRevoked
	case !ok:
		return nil, errNoSession
	}
	return &session{keyID: s.KeyID, csrf: s.CSRF, expires: s.Expires}, nil
}

// caller is an authenticated admin.
type caller struct {
	keyID   string
	session bool // signed in to the dashboard (cookie), not a bearer key
}

// authenticate accepts a bearer admin key or, when no Authorization header
// is sent, a dashboard session cookie; see the package comment on sessions.
func (h *Handler) authenticate(r *http.Request) (caller, error) {
	ck, err := r.Cookie(SessionCookie)
	if _, bearer := r.Header["Authorization"]; bearer || err != nil {
		c, err := h.res.Authorize(r, index.KeyAdmin)
		return caller{keyID: c.KeyID}, err
	}
	sess, err := h.session(r, ck.Value)
	if err != nil {
		return caller{}, err
	}
	if !safeMethod(r.Method) {
		if err := checkCSRF(r, sess); err != nil {
			return caller{}, err
		}
	}
	return caller{keyID: sess.keyID, session: true}, nil
}

// session returns the live session of token tok. A key revoked anywhere
// (the CLI in another process, another instance) ends its sessions at once.
func (h *Handler) session(r *http.Request, tok string) (*session, error) {
	return h.lookupSession(r.Context(), tok)
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

func checkCSRF(r *http.Request, sess *session) error {
	if !sameOrigin(r) {
		return errCrossOrigin
	}
	got := r.Header.Get(CSRFHeader)
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(sess.csrf)) != 1 {
		return errCSRF
	}
	return nil
}

// sameOrigin refuses requests a browser marks as coming from another site
// (Sec-Fetch-Site) or origin (Origin). Clients that send neither (curl,
// older browsers) pass; the CSRF token still guards them.
func sameOrigin(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	return true
}

// sessionView is the body of /ui/session: who is signed in and the token
// writes must echo. Reading it needs the cookie, and without CORS headers
// another origin's script cannot read the answer.
type sessionView struct {
	KeyID     string `json:"key_id"`
	CSRFToken string `json:"csrf_token"`
	ExpiresAt string `json:"expires_at"`
}

func viewSession(s *session) sessionView {
	return sessionView{KeyID: s.keyID, CSRFToken: s.csrf, ExpiresAt: s.expires.UTC().Format(time.RFC3339)}
}

// serveSession answers /ui/session: POST signs in, GET says who is signed
// in, DELETE signs out.
func (h *Handler) serveSession(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		h.signIn(w, r)
	case http.MethodGet, http.MethodHead:
		ck, err := r.Cookie(SessionCookie)
		if err != nil {
			resolver.WriteError(w, r, errNoSession)
			return
		}
		sess, err := h.session(r, ck.Value)
		if err != nil {
			resolver.WriteError(w, r, err)
			return
		}
		writeJSON(w, r, http.StatusOK, viewSession(sess))
	case http.MethodDelete:
		ck, err := r.Cookie(SessionCookie)
		if err != nil {
			resolver.WriteError(w, r, errNoSession)
			return
		}
		sess, err := h.lookupSession(r.Context(), ck.Value)
		if err != nil {
			clearCookie(w, r)
			resolver.WriteError(w, r, err)
			return
		}
		if err := checkCSRF(r, sess); err != nil {
			resolver.WriteError(w, r, err)
			return
		}
		ctx := r.Context()
		if err := h.db.Update(ctx, func(tx *index.Tx) error { return tx.DeleteSession(ctx, hashToken(ck.Value)) }); err != nil {
			resolver.WriteError(w, r, err)
			return
		}
		clearCookie(w, r)
		h.log.Info("dashboard sign-out", logKeyID, sess.keyID)
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST, DELETE")
		resolver.WriteError(w, r, fmt.Errorf("%w: %s %s", resolver.ErrMethodNotAllowed, r.Method, r.URL.Path))
	}
}

// signIn checks the admin key in {"key": "..."} exactly as a bearer key is
// checked (so unknown and revoked keys are 401, live and test keys 403) and
// starts a session.
func (h *Handler) signIn(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		resolver.WriteError(w, r, errCrossOrigin)
		return
	}
	var b struct {
		Key string `json:"key"`
	}
	if err := decodeBody(w, r, &b); err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	probe := r.Clone(r.Context())
	probe.Header = http.Header{"Authorization": {"Bearer " + b.Key}}
	c, err := h.res.Authorize(probe, index.KeyAdmin)
	if err != nil {
		h.log.Info("dashboard sign-in refused", "err", err)
		resolver.WriteError(w, r, err)
		return
	}
	tok, sess, err := h.createSession(r.Context(), c.KeyID)
	if err != nil {
		resolver.WriteError(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: tok, Path: "/", MaxAge: int(SessionTTL / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure(r)})
	h.log.Info("dashboard sign-in", logKeyID, c.KeyID)
	writeJSON(w, r, http.StatusOK, viewSession(sess))
}

func clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure(r)})
}

// secure marks the cookie Secure when the dashboard is reached over TLS,
// directly or through a proxy that says so.
func secure(r *http.Request) bool {
	return r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https"
}
