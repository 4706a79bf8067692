// Package api defines the control socket's wire types (HTTP + JSON, paths
// under /v1/) and a small client for them. The daemon serves these types
// and the CLI consumes them; neither side's logic lives here. What the
// hooks share with the daemon (attachments, the error body, the socket,
// the client's transport and errors) is package hooks', used here as it
// is, never copied.
package api
