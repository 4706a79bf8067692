# Static nsproxy in a minimal image. Build the binary first (make build);
# no registry is needed beyond the base image's absence: FROM scratch.
FROM scratch
COPY bin/nsproxy /usr/local/bin/nsproxy
ENTRYPOINT ["/usr/local/bin/nsproxy"]
CMD ["run", "-f", "/etc/nsproxy/nsproxy.cfg"]
