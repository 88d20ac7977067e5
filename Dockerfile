# syntax=docker/dockerfile:1

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Dependencies first, so a source change does not refetch modules.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=none
RUN CGO_ENABLED=0 go build -trimpath \
	-ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
	-o /out/cdc-indexer ./cmd/cdc-indexer

# distroless/static carries CA certificates and tzdata and nothing else.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/cdc-indexer /cdc-indexer
USER nonroot:nonroot
# Inside a container, /metrics, /readyz and /v1/wait must be reachable from
# outside it: the image binds 0.0.0.0:9187 (the config default stays
# loopback for a process on a host). A config file's observability.listen
# does not override this variable; unset it or set it to change the address.
ENV CDC_INDEXER_OBSERVABILITY_LISTEN=0.0.0.0:9187
EXPOSE 9187
ENTRYPOINT ["/cdc-indexer"]
CMD ["run", "--config", "/etc/cdc-indexer/config.yaml"]
