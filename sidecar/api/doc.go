// Package api defines the control socket's wire types (HTTP + JSON, paths
// under /v1/) and a small client for them. The daemon serves these types
// and the CLI consumes them; neither side's logic lives here.
package api
