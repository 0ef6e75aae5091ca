package admin

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/promptvault/promptvault/index"
	"github.com/promptvault/promptvault/resolver"
)

// The dashboard is plain HTML, CSS and JavaScript with no build step,
// embedded so the binary is all an operator deploys.
//
//go:embed ui
var uiFiles embed.FS

// staticFile is an embedded file ready to serve with a strong ETag (embed
// gives no modification times, so revalidation goes by content).
type staticFile struct {
	body        []byte
	contentType string
	etag        string
}

func loadStatic() (map[string]*staticFile, error) {
	out := map[string]*staticFile{}
	err := fs.WalkDir(uiFiles, "ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := uiFiles.ReadFile(p)
		if err != nil {
			return err
		}
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "application/octet-stream"
		}
		sum := sha256.Sum256(b)
		out[strings.TrimPrefix(p, "ui/")] = &staticFile{body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load dashboard files: %w", err)
	}
	if out["index.html"] == nil {
		return nil, fmt.Errorf("load dashboard files: index.html missing")
	}
	return out, nil
}

// serveUI answers /ui/: the session endpoint and the static files. The page
// routes with the URL fragment (#/prompts/KEY), so only real files exist.
func (h *Handler) serveUI(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	if r.URL.Path == routeSession {
		h.serveSession(w, r)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, UIPrefix)
	if name == "" {
		name = "index.html"
	}
	f := h.static[name]
	if f == nil {
		resolver.WriteError(w, r, fmt.Errorf("%w: no dashboard file %s", index.ErrNotFound, r.URL.Path))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		resolver.WriteError(w, r, fmt.Errorf("%w: %s %s", resolver.ErrMethodNotAllowed, r.Method, r.URL.Path))
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", f.contentType)
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("Etag", f.etag)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
}
