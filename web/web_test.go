package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"parley/web"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func get(t *testing.T, srv *httptest.Server, method, path string, hdr http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

func checkSecurityHeaders(t *testing.T, path string, h http.Header) {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{
		"default-src 'self'", "script-src 'self'", "style-src 'self'",
		"connect-src 'self' ws: wss:", "frame-ancestors 'none'", "base-uri 'none'",
		"form-action 'none'",
	} {
		if !strings.Contains(csp, want) {
			t.Errorf("%s: CSP %q lacks %q", path, csp, want)
		}
	}
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "*", "http:", "https:"} {
		if strings.Contains(csp, bad) {
			t.Errorf("%s: CSP %q allows %q", path, csp, bad)
		}
	}
	if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options = %q", path, got)
	}
	if got := h.Get("Referrer-Policy"); got != "no-referrer" {
		t.Errorf("%s: Referrer-Policy = %q", path, got)
	}
}

func TestHandlerServesPageAndAssets(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(web.Handler())
	t.Cleanup(srv.Close)

	for _, tc := range []struct {
		path, ctype, contains string
	}{
		{"/", "text/html; charset=utf-8", `<script type="module" src="/assets/app.js"></script>`},
		{"/index.html", "text/html; charset=utf-8", "<title>parley</title>"},
		{"/assets/app.js", "text/javascript; charset=utf-8", "parley.v1"},
		{"/assets/dom.js", "text/javascript; charset=utf-8", "noopener noreferrer"},
		{"/assets/commands.js", "text/javascript; charset=utf-8", "parseInput"},
		{"/assets/style.css", "text/css; charset=utf-8", "prefers-color-scheme: dark"},
		{"/assets/icon.svg", "image/svg+xml", "<svg"},
	} {
		res, body := get(t, srv, http.MethodGet, tc.path, nil)
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", tc.path, res.Status)
			continue
		}
		if got := res.Header.Get("Content-Type"); got != tc.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", tc.path, got, tc.ctype)
		}
		if !strings.Contains(body, tc.contains) {
			t.Errorf("GET %s: body lacks %q", tc.path, tc.contains)
		}
		checkSecurityHeaders(t, tc.path, res.Header)

		// A revalidation with the ETag costs a 304 and no body.
		etag := res.Header.Get("ETag")
		if etag == "" {
			t.Errorf("GET %s: no ETag", tc.path)
			continue
		}
		res, body = get(t, srv, http.MethodGet, tc.path, http.Header{"If-None-Match": {etag}})
		if res.StatusCode != http.StatusNotModified || body != "" {
			t.Errorf("GET %s with If-None-Match: %s, %d bytes; want 304, none", tc.path, res.Status, len(body))
		}
	}
}

func TestHandlerRefusesOthers(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(web.Handler())
	t.Cleanup(srv.Close)

	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/nope", http.StatusNotFound},
		{http.MethodGet, "/assets/", http.StatusNotFound},
		{http.MethodGet, "/assets/missing.js", http.StatusNotFound},
		{http.MethodGet, "/assets/../web.go", http.StatusNotFound},
		{http.MethodGet, "/static/app.js", http.StatusNotFound},
		{http.MethodPost, "/", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/assets/app.js", http.StatusMethodNotAllowed},
		{http.MethodHead, "/", http.StatusOK},
	} {
		res, _ := get(t, srv, tc.method, tc.path, nil)
		if res.StatusCode != tc.status {
			t.Errorf("%s %s: %s, want %d", tc.method, tc.path, res.Status, tc.status)
		}
		checkSecurityHeaders(t, tc.method+" "+tc.path, res.Header)
	}
}

// The page must run under the CSP: no inline script or style, no event
// handler attributes, and user text never goes through an HTML parser.
func TestPageHasNoInlineCodeAndNoHTMLSinks(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(web.Handler())
	t.Cleanup(srv.Close)

	_, html := get(t, srv, http.MethodGet, "/", nil)
	for _, re := range []string{
		`<script(?:\s[^>]*)?>[^<]+</script>`,        // inline script
		`<script(?:(?:\s(?:defer|type="[^"]*"))*)>`, // a script without src
		`<style`,
		`\sstyle=`,
		`\son[a-z]+=`,
		`(?i)https?://`, // no other host
	} {
		if m := regexp.MustCompile(re).FindString(html); m != "" {
			t.Errorf("index.html matches %s: %q", re, m)
		}
	}

	for _, name := range []string{"app.js", "dom.js", "commands.js"} {
		_, js := get(t, srv, http.MethodGet, "/assets/"+name, nil)
		for _, sink := range []string{
			"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
			"new Function", "createContextualFragment", "DOMParser", "setAttribute('style'",
			"javascript:", "import(", "http://", "https://",
		} {
			if strings.Contains(js, sink) {
				t.Errorf("%s uses %s", name, sink)
			}
		}
		// Modules import only each other, by relative path.
		for _, m := range regexp.MustCompile(`from '([^']*)'`).FindAllStringSubmatch(js, -1) {
			if !strings.HasPrefix(m[1], "./") {
				t.Errorf("%s imports %s", name, m[1])
			}
		}
	}
	_, css := get(t, srv, http.MethodGet, "/assets/style.css", nil)
	if regexp.MustCompile(`(?i)@import|url\(\s*['"]?https?:|@font-face`).MatchString(css) {
		t.Errorf("style.css loads something from elsewhere")
	}
}
