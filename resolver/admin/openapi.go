package admin

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"time"
)

// openAPI is the OpenAPI 3.1 description of the whole HTTP API (read,
// render, events, admin), kept in the repository as openapi.json and tested
// against real responses.
//
//go:embed openapi.json
var openAPI []byte

var openAPIETag = func() string {
	sum := sha256.Sum256(openAPI)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}()

// OpenAPI returns the OpenAPI document.
func OpenAPI() []byte { return bytes.Clone(openAPI) }

// serveOpenAPI answers GET /v1/openapi.json. The document is public (it
// holds no secrets) and readable cross-origin, so API tools and generators
// elsewhere can load it.
func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("Etag", openAPIETag)
	hdr.Set("Access-Control-Allow-Origin", "*")
	hdr.Set("Cross-Origin-Resource-Policy", "cross-origin")
	http.ServeContent(w, r, "openapi.json", time.Time{}, bytes.NewReader(openAPI))
}
