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
# observability.listen must bind 0.0.0.0:9187 for this port to be reachable.
EXPOSE 9187
ENTRYPOINT ["/cdc-indexer"]
CMD ["run", "--config", "/etc/cdc-indexer/config.yaml"]
