package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/nsproxy/nsproxy/sidecar"
	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/manifest"
)

// manifestUsage lists the tenant manifest commands (after cliUsage).
const manifestUsage = `
Tenant manifests (YAML, see manifests/README.md; decoded and checked by the daemon):
  nsproxy apply -f FILE|DIR [-f ...]               create or replace every document, all or nothing
  nsproxy delete -f FILE|DIR [-f ...]              remove the documents the files name
  nsproxy diff -f FILE|DIR [-f ...]                what apply would change; exit 0: nothing,
                                                   1: something, 2: error
  nsproxy get tenants [NAME] [-o json|yaml]        tenants with their namespaces, frontends, refusals
A DIR means its *.yaml and *.yml files; -f - reads standard input.
`

// stdinName names standard input in the daemon's FILE:LINE:COLUMN errors.
const stdinName = "<stdin>"

// cliStdin is what -f - reads; tests replace it.
var cliStdin io.Reader = os.Stdin

// cliManifests runs apply, delete or diff: it reads the files and sends
// their names and text; the daemon decodes them, so its errors name the
// user's files and lines.
func cliManifests(verb string, args []string, stdout, stderr io.Writer) int {
	c := newCLICommand(verb, "nsproxy "+verb+" -f FILE|DIR [-f FILE|DIR ...] [--socket PATH]", stdout, stderr)
	var paths files
	c.fs.Var(&paths, "f", "manifest file or directory (*.yaml, *.yml); - is standard input (repeatable)")
	c.fs.Var(&paths, "filename", "same as -f")
	fail := 1
	if verb == "diff" {
		fail = 2 // 1 means "something would change"
	}
	pos, code, ok := c.parse(args)
	if !ok {
		return code
	}
	switch {
	case len(pos) > 0:
		return c.usageError("unexpected arguments: %s (files go after -f)", strings.Join(pos, " "))
	case len(paths) == 0:
		return c.usageError("give at least one -f FILE|DIR")
	}
	var req api.ManifestRequest
	for _, p := range paths {
		if p == "-" {
			b, err := io.ReadAll(cliStdin)
			if err != nil {
				fmt.Fprintf(stderr, "nsproxy %s: standard input: %v\n", verb, err)
				return fail
			}
			req.Files = append(req.Files, api.ManifestFile{Name: stdinName, Data: string(b)})
			continue
		}
		fs, err := sidecar.ManifestFiles(p)
		if err != nil {
			fmt.Fprintf(stderr, "nsproxy %s: %v\n", verb, err)
			return fail
		}
		if len(fs) == 0 {
			fmt.Fprintf(stderr, "nsproxy %s: %s holds no *.yaml or *.yml file\n", verb, p)
			return fail
		}
		req.Files = append(req.Files, fs...)
	}
	size := 0
	for _, f := range req.Files {
		size += len(f.Data)
	}
	if size > manifest.MaxSize {
		fmt.Fprintf(stderr, "nsproxy %s: the files hold %d bytes, more than one request may carry (%d); apply them in parts\n", verb, size, manifest.MaxSize)
		return fail
	}
	client := c.client()
	call := map[string]func(context.Context, api.ManifestRequest) (api.ManifestResult, error){
		"apply": client.ApplyManifests, "delete": client.DeleteManifests, "diff": client.DiffManifests,
	}[verb]
	res, err := call(context.Background(), req)
	if err != nil {
		fmt.Fprintln(stderr, errorText(err))
		return fail
	}
	fmt.Fprint(stdout, res.Diff)
	switch {
	case verb == "diff" && res.Changed:
		return 1
	case verb == "diff":
		return 0
	case !res.Changed:
		fmt.Fprintf(stdout, "unchanged: %s\n", strings.Join(res.Documents, ", "))
	case verb == "apply":
		fmt.Fprintf(stdout, "applied: %s\n", strings.Join(res.Documents, ", "))
	default:
		fmt.Fprintf(stdout, "deleted: %s\n", strings.Join(res.Documents, ", "))
	}
	return 0
}
