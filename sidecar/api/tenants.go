package api

import (
	"context"
	"net/http"
)

// ManifestFile is one manifest file as the user wrote it: the daemon
// decodes it, so that every problem it reports names the user's file,
// line and column.
type ManifestFile struct {
	Name string `json:"name"` // as given to the CLI: a.yaml, dir/b.yml
	Data string `json:"data"` // the file's YAML text
}

// ManifestRequest is the body of POST /v1/manifests (apply),
// /v1/manifests/delete and /v1/manifests/diff: the documents of every
// file, taken together.
type ManifestRequest struct {
	Files []ManifestFile `json:"files"`
}

// ManifestResult answers apply, delete and diff: what changed (or would
// change) as the manifest diff prints it, and the documents concerned as
// KIND/NAME.
type ManifestResult struct {
	Changed   bool     `json:"changed"`
	Diff      string   `json:"diff,omitempty"`
	Documents []string `json:"documents"`
}

// Sources of tenant documents.
const (
	SourceManifestDir = "manifest-dir" // nsproxy run --manifests DIR; read-only through the API
)

// Tenant is what GET /v1/tenants shows of one tenant.
type Tenant struct {
	Name string `json:"name"`
	// Source is "api" (nsproxy apply) or "manifest-dir" (the --manifests
	// directory, Owner names it); the default tenant has none.
	Source string `json:"source,omitempty"`
	Owner  string `json:"owner,omitempty"`
	// Namespaces are the tenant's namespaces: its static ones and the
	// run-time ones (CNI, OCI hook, API) the daemon gave it.
	Namespaces []TenantNamespace `json:"namespaces"`
	Frontends  []string          `json:"frontends"`
	Exposures  []string          `json:"exposures"` // Exposure documents
	Services   []string          `json:"services"`  // Service documents
	// Refusals sums the refused connections of the tenant's frontends by
	// reason (see the frontends' counters).
	Refusals map[string]uint64 `json:"refusals,omitempty"`
	// Overlaps are the containers this tenant's selectors claim together
	// with another tenant's: they belong to neither (the default tenant
	// has them) until the selectors are changed so that one matches.
	Overlaps []TenantOverlap `json:"overlaps,omitempty"`
}

// TenantOverlap is one container claimed by several tenants.
type TenantOverlap struct {
	AttachmentKey
	Namespace string   `json:"namespace"` // the name the daemon gave its namespace
	Tenants   []string `json:"tenants"`   // every tenant claiming it, sorted
}

// TenantNamespace is one namespace of a tenant.
type TenantNamespace struct {
	Name   string `json:"name"`
	Source string `json:"source"` // manifest (static), cni, oci, api, config
	State  string `json:"state,omitempty"`
}

// ApplyManifests creates or replaces every document of the files, all or
// nothing.
func (c *Client) ApplyManifests(ctx context.Context, req ManifestRequest) (ManifestResult, error) {
	return c.manifests(ctx, "/"+Version+"/manifests", req)
}

// DeleteManifests removes the documents the files name.
func (c *Client) DeleteManifests(ctx context.Context, req ManifestRequest) (ManifestResult, error) {
	return c.manifests(ctx, "/"+Version+"/manifests/delete", req)
}

// DiffManifests reports what ApplyManifests would change, changing nothing.
func (c *Client) DiffManifests(ctx context.Context, req ManifestRequest) (ManifestResult, error) {
	return c.manifests(ctx, "/"+Version+"/manifests/diff", req)
}

func (c *Client) manifests(ctx context.Context, path string, req ManifestRequest) (ManifestResult, error) {
	var res ManifestResult
	_, err := c.do(ctx, http.MethodPost, path, req, &res)
	return res, err
}

// Tenants lists the tenants the caller may see.
func (c *Client) Tenants(ctx context.Context) ([]Tenant, error) {
	var l []Tenant
	err := c.get(ctx, &l, "tenants")
	return l, err
}

// Tenant gets one tenant.
func (c *Client) Tenant(ctx context.Context, name string) (Tenant, error) {
	var t Tenant
	err := c.get(ctx, &t, "tenants", name)
	return t, err
}
