package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// The browser tests drive a real headless Chromium (Debian's package, never
// a browser downloaded at test time) through chromedp, and check pages with
// axe-core, pinned in browsertest/package-lock.json. Without either they
// are skipped, except under CI (CI=true), where that is a failure: .ci/run
// installs both.

// browserTestTimeout bounds each browser test, browsers included.
const browserTestTimeout = 90 * time.Second

// waitTimeout bounds each wait for an element or a page.
const waitTimeout = 15 * time.Second

// axePath is axe-core's browser bundle, installed by
// `npm ci --prefix browsertest`.
const axePath = "../browsertest/node_modules/axe-core/axe.min.js"

// chromiumPath returns the Chromium executable: $CHROMIUM, or chromium on
// PATH.
func chromiumPath(t *testing.T) string {
	t.Helper()
	names := []string{"chromium", "chromium-browser"}
	if p := os.Getenv("CHROMIUM"); p != "" {
		names = []string{p}
	}
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	toolMissing(t, "chromium", "apt-get install chromium")
	return ""
}

var loadAxe = sync.OnceValues(func() (string, error) {
	b, err := os.ReadFile(axePath)
	return string(b), err
})

// axeSource returns axe-core's source.
func axeSource(t *testing.T) string {
	t.Helper()
	src, err := loadAxe()
	if err != nil {
		toolMissing(t, "axe-core ("+axePath+")", "npm ci --prefix browsertest")
	}
	return src
}

// chrome is one browser profile (its own Chromium process and user data
// directory, so its own cookies) on one site, with one tab.
type chrome struct {
	t    *testing.T
	ctx  context.Context
	base string
}

// browserTestContext returns a context that ends when the test does, or after
// browserTestTimeout.
func browserTestContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), browserTestTimeout)
	t.Cleanup(cancel)
	return ctx
}

// newChrome starts a headless Chromium with a fresh profile that asks for
// pages in lang (an Accept-Language value). parent bounds its life.
func newChrome(t *testing.T, parent context.Context, s *site, lang string) *chrome {
	t.Helper()
	exe := chromiumPath(t)
	axeSource(t) // skip before starting anything
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox, // runs as root in CI
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("accept-lang", lang),
		chromedp.Flag("hide-scrollbars", true), // clean screenshots; scrollWidth is the same
		chromedp.WindowSize(1280, 800),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(parent, opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	c := &chrome{t: t, ctx: ctx, base: s.base}
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting chromium: %v", err)
	}
	cdpCall(c, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": lang}})
	// A headless tab has no window focus; without this, autofocus and
	// :focus-visible would not behave as in a real browser window.
	cdpCall(c, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true})
	return c
}

// cdpCall sends one protocol command to the tab.
func cdpCall[P, R any](c *chrome, cmd cdp.Command[P, R], params P) R {
	c.t.Helper()
	wctx, cancel := context.WithTimeout(c.ctx, waitTimeout)
	defer cancel()
	r, err := chromedp.Call(wctx, cmd, params)
	if err != nil {
		c.t.Fatalf("%s: %v", cmd.Method, err)
	}
	return r
}

// do runs actions, each wait bounded by waitTimeout.
func (c *chrome) do(actions ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	wctx, cancel := context.WithTimeout(c.ctx, waitTimeout)
	defer cancel()
	if err := chromedp.Do(wctx, actions...); err != nil {
		c.t.Fatalf("at %s: %v", c.path(), err)
	}
}

// cdpRun runs one action that returns a value.
func cdpRun[T any](c *chrome, a chromedp.Action[T]) T {
	c.t.Helper()
	wctx, cancel := context.WithTimeout(c.ctx, waitTimeout)
	defer cancel()
	v, err := chromedp.Run(wctx, a)
	if err != nil {
		c.t.Fatalf("at %s: %v", c.path(), err)
	}
	return v
}

// jsEval evaluates a JavaScript expression in the page.
func jsEval[T any](c *chrome, expr string) T {
	c.t.Helper()
	return cdpRun(c, chromedp.Evaluate[T](expr))
}

// path returns the path and query of the tab's current URL.
func (c *chrome) path() string {
	wctx, cancel := context.WithTimeout(c.ctx, waitTimeout)
	defer cancel()
	loc, err := chromedp.Run(wctx, chromedp.Location())
	if err != nil {
		return "(unknown: " + err.Error() + ")"
	}
	u, err := url.Parse(loc)
	if err != nil {
		return loc
	}
	return u.RequestURI()
}

// open loads path and returns the final response (after redirects).
func (c *chrome) open(path string) *network.Response {
	c.t.Helper()
	return cdpRun(c, chromedp.NavigateResponse(c.base+path))
}

// navigate runs an action that loads a new page (a click, a key press)
// and returns the final response.
func (c *chrome) navigate(a chromedp.Action[chromedp.Void]) *network.Response {
	c.t.Helper()
	wctx, cancel := context.WithTimeout(c.ctx, waitTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(wctx, a)
	if err != nil {
		c.t.Fatalf("at %s: %v", c.path(), err)
	}
	return resp
}

// click clicks the element sel selects and waits for the page it leads to.
func (c *chrome) click(sel string) *network.Response {
	c.t.Helper()
	return c.navigate(chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// expectAt fails unless the tab is at a path that starts with prefix and
// the last response had the status.
func (c *chrome) expectAt(resp *network.Response, status int64, prefix string) {
	c.t.Helper()
	if p := c.path(); !strings.HasPrefix(p, prefix) {
		c.t.Fatalf("at %s, want %s...\n%s", p, prefix, c.bodyText())
	}
	if resp != nil && resp.Status != status {
		c.t.Fatalf("at %s: status %d, want %d\n%s", c.path(), resp.Status, status, c.bodyText())
	}
}

// text returns the rendered text of the element sel selects.
func (c *chrome) text(sel string) string {
	c.t.Helper()
	return cdpRun(c, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
}

// bodyText is the page's text, for failure messages.
func (c *chrome) bodyText() string {
	wctx, cancel := context.WithTimeout(c.ctx, waitTimeout)
	defer cancel()
	s, _ := chromedp.Run(wctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	return trim(s)
}

// typeInto types text into the field with the id, as keys.
func (c *chrome) typeInto(id, text string) {
	c.t.Helper()
	c.do(chromedp.SendKeys(chromedp.ID(id), text, chromedp.NodeVisible))
}

// appLogin fills in and submits the demo app's login form.
func (c *chrome) appLogin(user, password string) *network.Response {
	c.t.Helper()
	c.open("/login")
	c.typeInto("username", user)
	c.typeInto("password", password)
	return c.click(`form[action="/login"] button[type="submit"]`)
}

// activeID returns the id of the focused element ("" if none has one).
func (c *chrome) activeID() string {
	c.t.Helper()
	return jsEval[string](c, `document.activeElement ? document.activeElement.id : ""`)
}

// waitFocus waits until the element with the id has the focus.
func (c *chrome) waitFocus(id string) {
	c.t.Helper()
	wctx, cancel := context.WithTimeout(c.ctx, waitTimeout)
	defer cancel()
	if _, err := chromedp.Run(wctx, chromedp.Poll[bool](fmt.Sprintf(`document.activeElement && document.activeElement.id === %q`, id))); err != nil {
		c.t.Fatalf("at %s: focus is on %q, want %q (%v)", c.path(), c.activeID(), id, err)
	}
}

// axNode returns the accessibility node of the first element sel selects,
// as assistive technology sees it.
func (c *chrome) axNode(sel string) *accessibility.Node {
	c.t.Helper()
	ids := cdpRun(c, chromedp.QueryNodeIDs(chromedp.CSS(sel), chromedp.NodeReady))
	r := cdpCall(c, accessibility.GetPartialAXTree, accessibility.GetPartialAXTreeParams{NodeID: ids[0], FetchRelatives: new(false)})
	if len(r.Nodes) == 0 {
		c.t.Fatalf("no accessibility node for %s", sel)
	}
	return r.Nodes[0]
}

// axString returns an accessibility value as a string.
func axString(v *accessibility.Value) string {
	if v == nil {
		return ""
	}
	var x any
	if err := json.Unmarshal(v.Value, &x); err != nil {
		return string(v.Value)
	}
	return fmt.Sprint(x)
}

// axProperty returns the named property of an accessibility node.
func axProperty(n *accessibility.Node, name string) string {
	for _, p := range n.Properties {
		if string(p.Name) == name {
			return axString(p.Value)
		}
	}
	return ""
}

// --- page checks ------------------------------------------------------

// viewport sets the CSS viewport width and height and the device scale.
func (c *chrome) viewport(width, height int64, scale float64, mobile bool) {
	c.t.Helper()
	cdpCall(c, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
		Width: width, Height: height, DeviceScaleFactor: scale, Mobile: mobile,
	})
}

// scheme emulates prefers-color-scheme: light or dark.
func (c *chrome) scheme(s string) {
	c.t.Helper()
	cdpCall(c, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: s}},
	})
}

// fontSize sets the browser's default font sizes (a user's text-size
// setting): 16 and 13 px are Chromium's defaults.
func (c *chrome) fontSize(standard, fixed int64) {
	c.t.Helper()
	cdpCall(c, page.SetFontSizes, page.SetFontSizesParams{FontSizes: &page.FontSizes{Standard: standard, Fixed: fixed}})
}

type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target  []any  `json:"target"`
		Summary string `json:"failureSummary"`
	} `json:"nodes"`
}

// axeTags are the rule sets run: WCAG 2.0 and 2.1, levels A and AA.
var axeTags = []string{"wcag2a", "wcag2aa", "wcag21a", "wcag21aa"}

// checkAxe runs axe-core on the page and fails on any violation. The
// gate's pages forbid scripts by CSP; script evaluated through the
// DevTools protocol is not subject to it, so no bypass is needed.
func (c *chrome) checkAxe(label string) {
	c.t.Helper()
	if !jsEval[bool](c, `typeof axe === "object"`) {
		cdpRun(c, chromedp.Evaluate[chromedp.Void](axeSource(c.t)))
	}
	tags, _ := json.Marshal(axeTags)
	raw := cdpRun(c, chromedp.Evaluate[string](`axe.run(document, {
		runOnly: {type: "tag", values: `+string(tags)+`},
		resultTypes: ["violations"],
	}).then(r => JSON.stringify(r.violations))`, chromedp.EvalAwaitPromise))
	var vs []axeViolation
	if err := json.Unmarshal([]byte(raw), &vs); err != nil {
		c.t.Fatalf("%s: axe result: %v\n%s", label, err, raw)
	}
	for _, v := range vs {
		var b strings.Builder
		fmt.Fprintf(&b, "%s: axe %s (%s): %s", label, v.ID, v.Impact, v.Help)
		for _, n := range v.Nodes {
			fmt.Fprintf(&b, "\n\ttarget %v\n\t\t%s", n.Target, strings.ReplaceAll(n.Summary, "\n", "\n\t\t"))
		}
		c.t.Error(b.String())
	}
}

// checkLabels fails if a form field has no visible label.
func (c *chrome) checkLabels(label string) {
	c.t.Helper()
	unlabelled := jsEval[[]string](c, `[...document.querySelectorAll("input, select, textarea")]
		.filter(e => e.type !== "hidden")
		.filter(e => !e.labels || ![...e.labels].some(l => l.textContent.trim() !== ""))
		.map(e => e.outerHTML)`)
	for _, e := range unlabelled {
		c.t.Errorf("%s: field without a label: %s", label, e)
	}
}

// checkNoOverflow fails if the page scrolls sideways.
func (c *chrome) checkNoOverflow(label string) {
	c.t.Helper()
	type widths struct{ Scroll, Client int }
	w := jsEval[widths](c, `({Scroll: document.documentElement.scrollWidth, Client: document.documentElement.clientWidth})`)
	if w.Scroll > w.Client {
		wide := jsEval[[]string](c, `[...document.querySelectorAll("body *")]
			.filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth)
			.slice(0, 5).map(e => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.className ? "." + e.className : ""))`)
		c.t.Errorf("%s: horizontal overflow: scrollWidth %d > clientWidth %d; too wide: %v", label, w.Scroll, w.Client, wide)
	}
}

// screenshot saves a full-page PNG of the tab into dir.
func (c *chrome) screenshot(dir, name string) {
	c.t.Helper()
	png := cdpRun(c, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		c.t.Fatal(err)
	}
}
