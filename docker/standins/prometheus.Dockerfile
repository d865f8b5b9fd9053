# Stand-in for prom/prometheus:v3.5.0, built by docker/test.sh ONLY when that image cannot
# be pulled: Debian bookworm's `prometheus` package (2.42), laid out like the official
# image (entrypoint /bin/prometheus, user nobody, data in /prometheus, config in
# /etc/prometheus), so docker/compose.yaml runs it unchanged. Not for users.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends prometheus \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /prometheus /etc/prometheus \
 && chown 65534:65534 /prometheus
USER 65534:65534
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
LABEL org.convoy.standin="prom/prometheus:v3.5.0: Debian bookworm's prometheus package (2.42)"
