package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// Load reads the YAML file at path, applies CDC_INDEXER_* environment
// overrides and the defaults, and decodes the result. It fails, naming each
// key, on keys Config does not have (also inside tables[i]) and on values of
// the wrong type. It does not check values: call Validate for that.
func Load(path string) (*Config, error) {
	if strings.TrimSpace(path) == "" {
		return nil, errors.New("no config file: pass --config or set CDC_INDEXER_CONFIG")
	}
	v := viper.New()
	v.SetConfigFile(path)
	// The type comes from the content, not the extension, so config.yml or
	// a file without extension work too.
	v.SetConfigType("yaml")
	for _, key := range scalarKeys {
		if err := v.BindEnv(key, EnvName(key)); err != nil {
			return nil, fmt.Errorf("bind %s: %w", EnvName(key), err)
		}
	}
	for key, value := range defaults {
		v.SetDefault(key, value)
	}
	if err := v.ReadInConfig(); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	if err := overrideTables(v); err != nil {
		return nil, err
	}

	// Unknown keys are looked for apart from decoding, which stops
	// recording them below a value that fails to decode.
	errs := unknownKeys(findUnknown(v.AllSettings(), reflect.TypeFor[Config](), ""))
	var cfg Config
	err := v.Unmarshal(&cfg, func(dc *mapstructure.DecoderConfig) {
		dc.WeaklyTypedInput = false
		dc.DecodeHook = strictScalars
	})
	errs = append(errs, decodeErrors(err)...)
	if len(errs) > 0 {
		annotateEnv(errs)
		return nil, errs
	}
	if err := restoreMapKeys(path, &cfg); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return &cfg, nil
}

// overrideTables applies CDC_INDEXER_TABLES, the one override that is not a
// scalar: its value is the whole tables list as YAML (or JSON, which is YAML).
func overrideTables(v *viper.Viper) error {
	raw, ok := os.LookupEnv(EnvName(tablesKey))
	if !ok || strings.TrimSpace(raw) == "" {
		return nil
	}
	var tables []any
	if err := yaml.Unmarshal([]byte(raw), &tables); err != nil {
		return &KeyError{Key: tablesKey, Err: fmt.Errorf("%s: want a YAML or JSON list of table mappings: %w", EnvName(tablesKey), err)}
	}
	v.Set(tablesKey, tables)
	return nil
}

// annotateEnv points at the environment variable when a bad value came from
// one, since the file then looks right.
func annotateEnv(errs Errors) {
	for _, e := range errs {
		if _, ok := os.LookupEnv(EnvName(e.Key)); ok && isScalarKey(e.Key) {
			e.Err = fmt.Errorf("%w (from %s)", e.Err, EnvName(e.Key))
		}
	}
}

func isScalarKey(key string) bool {
	for _, k := range scalarKeys {
		if k == key {
			return true
		}
	}
	return false
}
