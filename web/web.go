// Package web is parley's web page: one HTML file, three small ES modules
// and a style sheet, embedded in the binary with go:embed, so the page needs
// no build step and no other host (no CDN, no web fonts).
//
// Handler serves them with a strict Content-Security-Policy. The page talks
// to the server only over the WebSocket at /ws (subprotocol parley.v1) and
// the history API under /api/; both belong to the server, not to this
// package.
//
// The handler is immutable after Handler returns and safe for concurrent use.
package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// AssetPrefix is the path under which Handler serves the page's script,
// style sheet and icon. The page itself is served at "/".
const AssetPrefix = "/assets/"

// CSP is the Content-Security-Policy of every response: scripts and styles
// only from this origin (no inline script, no eval), connections only to
// this origin and its WebSocket, and no framing.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"connect-src 'self' ws: wss:; img-src 'self' data:; font-src 'self'; " +
	"object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// file is one embedded file, read once when the handler is made.
type file struct {
	name  string
	body  string
	etag  string
	ctype string
}

// handler serves the embedded files. Immutable after Handler.
type handler struct {
	index  file
	assets map[string]file // by name under AssetPrefix
}

// Handler serves the page at "/" (and "/index.html") and its assets under
// AssetPrefix ("/assets/app.js", "/assets/dom.js", "/assets/commands.js",
// "/assets/style.css", "/assets/icon.svg"),
// for GET and HEAD, with the security headers on every response (also on
// errors). Any other path answers 404 and any other method 405.
func Handler() http.Handler {
	h := &handler{assets: make(map[string]file)}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		f := file{
			name:  path.Base(p),
			body:  string(b),
			etag:  `"` + hex.EncodeToString(sum[:8]) + `"`,
			ctype: contentType(p),
		}
		if f.name == "index.html" {
			h.index = f
		} else {
			h.assets[f.name] = f
		}
		return nil
	})
	if err != nil || h.index.body == "" {
		// The files are compiled into the binary: this cannot happen in a
		// binary that built, short of a broken embed directive.
		panic("web: embedded files missing: " + errString(err))
	}
	return h
}

func errString(err error) string {
	if err == nil {
		return "no index.html"
	}
	return err.Error()
}

func contentType(p string) string {
	switch path.Ext(p) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	}
	return "application/octet-stream"
}

// SetSecurityHeaders sets the headers every response of the page carries.
// The server may use it for its own HTML responses.
func SetSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	SetSecurityHeaders(w.Header())
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var f file
	switch p := r.URL.Path; {
	case p == "/" || p == "/index.html":
		f = h.index
	case strings.HasPrefix(p, AssetPrefix):
		var ok bool
		if f, ok = h.assets[strings.TrimPrefix(p, AssetPrefix)]; !ok {
			http.NotFound(w, r)
			return
		}
	default:
		http.NotFound(w, r)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", f.ctype)
	hd.Set("ETag", f.etag)
	// Revalidate every time: the files change with the binary, and a
	// revalidation costs one 304 on a local network.
	hd.Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, f.name, time.Time{}, strings.NewReader(f.body))
}
