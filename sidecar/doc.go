// Package sidecar is the daemon: it turns configuration into the engine's
// desired state, keeps the namespace registry in step with it, reloads on
// request and shuts down cleanly. It owns wiring and lifecycle, not parsing
// (package config), namespaces (package netns) or traffic (package proxy).
package sidecar
