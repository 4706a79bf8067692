// Package e2e holds black-box tests of the built nsproxy binary in real
// network namespaces. They need root, build tag e2e and NSPROXY_BIN (the
// Makefile's `make e2e` sets both). They import nothing of nsproxy's own.
package e2e
