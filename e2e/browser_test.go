package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/koi-im/koi/internal/testsvc"
)

// The headless browser shared by the tests of web pages (webchat_test.go,
// webadmin_test.go): Debian's Chromium driven with chromedp.

// browserTimeout bounds each step in the browser: a page load with
// Converse's 4 MB of script on a busy machine, a login, a message.
const browserTimeout = 60 * time.Second

// newBrowser starts headless Chromium, installing Debian's package when it
// is missing (the test skips, or fails with CI=true, when it cannot). It
// runs until the test ends; each page opened on it with openPage is a
// browser context of its own, sharing no storage with the others.
func newBrowser(ctx context.Context, t *testing.T) context.Context {
	t.Helper()
	testsvc.Require(t, testsvc.AptInstall(ctx, "chromium"))
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		testsvc.Require(t, fmt.Errorf("%w: chromium is not on PATH after installing it: %v", testsvc.ErrMissing, err))
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // root in a container has no user namespace for the sandbox
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 800),
	)...)
	t.Cleanup(cancelAlloc)
	browser, closeBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(closeBrowser)
	if err := chromedp.Do(browser); err != nil { // starts Chromium, with no timeout of its own
		t.Fatalf("starting %s: %v", chromium, err)
	}
	return browser
}

// browserPage is one user's tab, in a browser context of its own.
type browserPage struct {
	t       *testing.T
	name    string
	ctx     context.Context
	console *syncBuffer // what the page wrote to its console
}

func openPage(t *testing.T, browser context.Context, name, url string) *browserPage {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	p := &browserPage{t: t, name: name, ctx: ctx, console: &syncBuffer{}}
	if err := chromedp.Do(ctx); err != nil { // creates the tab, which lives as long as ctx
		t.Fatalf("%s: new tab: %v", name, err)
	}
	go func() {
		for ev, err := range chromedp.Events(ctx, runtime.ConsoleAPICalled) {
			if err != nil {
				return
			}
			var args []string
			for _, a := range ev.Args {
				args = append(args, strings.Trim(string(a.Value), `"`)+a.Description)
			}
			fmt.Fprintf(p.console, "%s: %s\n", ev.Type, strings.Join(args, " "))
		}
	}()
	go func() {
		for ev, err := range chromedp.Events(ctx, runtime.ExceptionThrown) {
			if err != nil {
				return
			}
			fmt.Fprintf(p.console, "exception: %v\n", &chromedp.ExceptionError{ExceptionDetails: ev.ExceptionDetails})
		}
	}()
	// KOI_CONSOLE=1 logs the console of passing tests too: Converse.js
	// reports a server's refusal there and goes on, so a test can pass
	// over one (that is how the bookmarks' precondition-not-met showed).
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("KOI_CONSOLE") != "" {
			t.Logf("%s's browser console:\n%s", name, p.console.String())
		}
	})
	p.do("load the page", chromedp.Navigate(url))
	return p
}

// timeout is the page's context for one step.
func (p *browserPage) timeout() context.Context {
	ctx, cancel := context.WithTimeout(p.ctx, browserTimeout)
	p.t.Cleanup(cancel)
	return ctx
}

func (p *browserPage) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.timeout(), steps...); err != nil {
		p.fail(what, err)
	}
}

// fail ends the test with what the page showed: its text and a
// screenshot among the artefacts.
func (p *browserPage) fail(what string, err error) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : document.documentElement.outerHTML`))
	if shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		name := strings.ReplaceAll(p.t.Name(), "/", "_") + "-" + p.name + "-failed.png"
		f := filepath.Join(p.t.ArtifactDir(), name)
		if os.WriteFile(f, shot, 0o644) == nil {
			p.t.Logf("%s: screenshot of the failure: %s", p.name, f)
		}
	}
	p.t.Fatalf("%s: %s: %v\npage text:\n%s", p.name, what, err, text)
}

// screenshot saves the whole page as the test artefact file (go test
// -artifacts keeps them).
func (p *browserPage) screenshot(file string) {
	p.t.Helper()
	shot, err := chromedp.Run(p.timeout(), chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatalf("%s: screenshot: %v", p.name, err)
	}
	f := filepath.Join(p.t.ArtifactDir(), file)
	if err := os.WriteFile(f, shot, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot of %s's page: %s", p.name, f)
}

// eval runs a JavaScript expression on the page and returns its value.
func eval[T any](p *browserPage, what, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.timeout(), chromedp.Evaluate[T](expr))
	if err != nil {
		p.fail(what, err)
	}
	return v
}

// waitUntil waits until the JavaScript function fn, called with args,
// returns true on the page.
func (p *browserPage) waitUntil(what, fn string, args ...any) {
	p.t.Helper()
	_, err := chromedp.Run(p.timeout(), chromedp.PollFunction[bool](fn,
		chromedp.WithPollingArgs(args...), chromedp.WithPollingTimeout(browserTimeout)))
	if err != nil {
		p.fail("waiting until "+what, err)
	}
}
