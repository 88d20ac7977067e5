package config

import "github.com/cdc-indexer/cdc-indexer/sink"

// SinkConfig is the sink's view of the weaviate section: one mapping for
// run, snapshot, check and status, so none of them can talk to Weaviate
// with other TLS, credentials or consistency than the rest.
func (w Weaviate) SinkConfig() sink.Config {
	return sink.Config{
		URL:               w.URL,
		GRPC:              w.GRPC,
		GRPCTLS:           w.GRPCTLS,
		CAFile:            w.CAFile,
		APIKey:            w.APIKey,
		Timeout:           w.Timeout,
		ConsistencyLevel:  w.ConsistencyLevel,
		ReplicationFactor: w.ReplicationFactor,
	}
}
