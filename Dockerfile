# syntax=docker/dockerfile:1
# koi in a container: a multi-stage build, a small Debian runtime, a
# non-root user. Build and run:
#   docker build -t koi .
#   docker run -d --name koi -p 5222:5222 -p 5223:5223 \
#     -v koi-data:/var/lib/koi -v $PWD/my-config.hcl:/etc/koi/config.hcl:ro koi
# Users: docker exec koi koictl -config /etc/koi/config.hcl user add alice@chat.example.org
# Start from packaging/config.hcl; state (SQLite, TLS keys, the archive
# journal) lives in the /var/lib/koi volume.

ARG GO_VERSION=1.26
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first: a source change does not download them again.
COPY go.mod go.sum ./
COPY sdk/go.mod sdk/go.sum sdk/
RUN go mod download
COPY . .
ARG VERSION=dev
# Pure Go (modernc SQLite): static binaries that run on any base.
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/usr/bin/koi ./core/cmd/koi \
 && go build -trimpath -ldflags "-s -w" -o /out/usr/bin/koictl ./core/cmd/koictl \
 && go build -trimpath -ldflags "-s -w" -o /out/usr/lib/koi/plugins/koi-backend-sql ./plugins/sql/cmd/koi-backend-sql \
 && go build -trimpath -ldflags "-s -w" -o /out/usr/lib/koi/plugins/koi-backend-ldap ./plugins/ldap/cmd/koi-backend-ldap \
 && go build -trimpath -ldflags "-s -w" -o /out/usr/lib/koi/plugins/koi-backend-mongo ./plugins/mongo/cmd/koi-backend-mongo \
 && go build -trimpath -ldflags "-s -w" -o /out/usr/lib/koi/plugins/koi-backend-extauth ./plugins/extauth/cmd/koi-backend-extauth \
 && go build -trimpath -ldflags "-s -w" -o /out/usr/lib/koi/plugins/koi-backend-http ./plugins/http/cmd/koi-backend-http

FROM debian:bookworm-slim
# CA certificates: for ldaps, https backends and PostgreSQL over TLS.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 koi \
 && useradd --system --uid 10001 --gid koi --home-dir /var/lib/koi --shell /usr/sbin/nologin koi \
 && mkdir -p /etc/koi /var/lib/koi && chown koi:koi /var/lib/koi && chmod 0750 /var/lib/koi
COPY --from=build /out/ /
COPY packaging/config.hcl /etc/koi/config.hcl
USER koi:koi
WORKDIR /var/lib/koi
VOLUME ["/var/lib/koi"]
# c2s with STARTTLS, c2s over direct TLS (XEP-0368).
EXPOSE 5222 5223
# The config is checked (plugins included) before koi starts serving;
# docker stop sends SIGTERM: streams end with <system-shutdown/>.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/koi", "-config", "/etc/koi/config.hcl"]
