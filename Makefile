# nsproxy: make build test e2e e2e-k8s bench bench-smoke fuzz lint install image clean demo
SHELL := /bin/bash
GO ?= go
export GOTOOLCHAIN := local
export CGO_ENABLED := 0
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN := bin
PREFIX ?= /usr/local
CNI_BIN_DIR ?= /opt/cni/bin
FUZZTIME ?= 15s

.PHONY: all build deps test unit e2e e2e-run e2e-k8s bench bench-smoke fuzz lint install image clean demo

all: build

deps:
	@scripts/deps.sh

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/nsproxy ./cmd/nsproxy
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/nsproxy-cni ./cmd/nsproxy-cni

# The whole suite: unit tests (with the race detector) and the end-to-end
# tests of the built binary, in real network namespaces (needs root).
test: deps build
	$(GO) vet ./...
	CGO_ENABLED=1 $(GO) test -race -count=1 ./...
	$(MAKE) --no-print-directory e2e-run
	bench/run.sh --smoke
	bench/churn.sh --smoke

unit:
	CGO_ENABLED=1 $(GO) test -race -count=1 ./...

e2e: deps build e2e-run

e2e-run:
	NSPROXY_BIN=$(CURDIR)/$(BIN)/nsproxy $(GO) test -tags e2e -count=1 -timeout 10m -v ./e2e/ 2>&1 | tee $(BIN)/e2e.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)' ; test $${PIPESTATUS[0]} -eq 0

# The DaemonSet of manifests/kubernetes/ on a private single-node Kubernetes
# (built once into /var/cache/nsproxy-k8s), checked by e2e/k8s; the host is
# restored and compared on exit. See scripts/k8s/e2e.sh.
e2e-k8s: deps build
	scripts/k8s/e2e.sh

# Each fuzzer runs briefly; failures land in testdata/fuzz for regression.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags e2e ./e2e/
	$(GO) vet -tags e2ek8s ./e2e/k8s/

# Both parts run; the target fails when either failed.
bench: deps build
	bench/run.sh; r=$$?; bench/churn.sh && exit $$r

bench-smoke: deps build
	bench/run.sh --smoke; r=$$?; bench/churn.sh --smoke && exit $$r

install: build
	install -D -m 0755 $(BIN)/nsproxy $(DESTDIR)$(PREFIX)/bin/nsproxy
	install -D -m 0755 $(BIN)/nsproxy-cni $(DESTDIR)$(CNI_BIN_DIR)/nsproxy-cni

IMAGE ?= localhost/nsproxy:dev
image: build
	NSPROXY_BIN=$(CURDIR)/$(BIN)/nsproxy VERSION=$(VERSION) scripts/image.sh $(IMAGE)

demo: deps build
	scripts/demo.sh

clean:
	rm -rf $(BIN)
