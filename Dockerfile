# nsproxy: the two static binaries and nothing else (no shell, no libc).
#
# No registry is reachable, and none is needed: there is no base image and no
# build stage. The binaries are built on the host (CGO_ENABLED=0) and copied
# in. scripts/image.sh (make image) does all of it:
#   make build
#   CGO_ENABLED=0 go build -trimpath -o bin/nsproxy-cni ./cmd/nsproxy-cni
#   podman build -t localhost/nsproxy:dev .      # or: buildah bud
#
# /usr/local/bin/nsproxy      the daemon and its CLI (ENTRYPOINT)
# /usr/local/bin/nsproxy-cni  the CNI plugin; `nsproxy install-cni
#                             --plugin-binary` copies it onto the node
#                             (see manifests/kubernetes/daemonset.yaml)
FROM scratch
ARG VERSION=dev
LABEL org.opencontainers.image.title="nsproxy" \
      org.opencontainers.image.description="namespace-aware TCP proxy, its CLI and the nsproxy-cni plugin" \
      org.opencontainers.image.source="https://github.com/nsproxy/nsproxy" \
      org.opencontainers.image.version="${VERSION}"
# nsproxy-cn[i] is a pattern, so that the image still builds when
# bin/nsproxy-cni has not been built (scripts/image.sh then warns).
COPY bin/nsproxy bin/nsproxy-cn[i] /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/nsproxy"]
CMD ["run", "-f", "/etc/nsproxy/nsproxy.cfg"]
