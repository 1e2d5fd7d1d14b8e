# Caddy with the two_factor module, built from this repository.
#   docker build -t caddy-2fa .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/caddy ./cmd/caddy

# The official image gives the usual layout: /etc/caddy/Caddyfile,
# /data (certificates, the file store) and /config.
FROM caddy:2.11
COPY --from=build /out/caddy /usr/bin/caddy
