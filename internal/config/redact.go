package config

import (
	"encoding/json"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Mask replaces a secret wherever a configuration is shown.
const Mask = "xxxxx"

var (
	keywordPassword = regexp.MustCompile(`(?i)(\b(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]*)`)
	urlScheme       = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)
)

// RedactDSN masks the passwords of a PostgreSQL connection string (the
// role's, and sslpassword, the client key's), in URL
// (postgres://user:pass@host/db, ?password=) or keyword (password=pass)
// form, so the rest can be logged. It works on malformed strings too.
func RedactDSN(dsn string) string {
	if urlScheme.MatchString(dsn) {
		if u, err := url.Parse(dsn); err == nil {
			if _, has := u.User.Password(); has {
				u.User = url.UserPassword(u.User.Username(), Mask)
			}
			q := u.Query()
			for _, k := range []string{"password", "sslpassword"} {
				if q.Has(k) {
					q.Set(k, Mask)
					u.RawQuery = q.Encode()
				}
			}
			return u.String()
		}
	}
	out := dsn
	for _, p := range dsnPasswords(dsn) {
		out = strings.ReplaceAll(out, p, Mask)
	}
	return keywordPassword.ReplaceAllString(out, "${1}"+Mask)
}

// dsnPasswords finds, best effort, every password a connection string holds,
// raw and percent-decoded, so they can be scrubbed from any text.
func dsnPasswords(dsn string) []string {
	var out []string
	add := func(p string) {
		p = strings.Trim(p, "'")
		if p == "" || p == Mask {
			return
		}
		out = append(out, p)
		if d, err := url.PathUnescape(p); err == nil && d != p {
			out = append(out, d)
		}
	}
	if loc := urlScheme.FindStringIndex(dsn); loc != nil {
		rest := dsn[loc[1]:]
		// The userinfo ends at the last @ of the authority; a password may
		// itself hold / or @ when it is malformed, so look at the last @.
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if colon := strings.Index(rest[:at], ":"); colon >= 0 {
				add(rest[colon+1 : at])
			}
		}
	}
	for _, m := range keywordPassword.FindAllStringSubmatch(dsn, -1) {
		add(m[2])
	}
	return out
}

// dsnParseReason is pgx's reason for rejecting a connection string without
// the string itself, which pgx repeats and masks only on a best-effort basis.
func dsnParseReason(err error, dsn string) string {
	msg := err.Error()
	const prefix = "cannot parse `"
	if strings.HasPrefix(msg, prefix) {
		if end := strings.Index(msg[len(prefix):], "`: "); end >= 0 {
			msg = msg[len(prefix)+end+len("`: "):]
		}
	}
	for _, p := range dsnPasswords(dsn) {
		msg = strings.ReplaceAll(msg, p, Mask)
	}
	return msg
}

// RedactURL masks the password of credentials inside a URL
// (https://user:pass@host), which some proxies in front of Weaviate or an
// embedding server take.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), Mask)
	}
	return u.String()
}

func maskSecret(s string) string {
	if s == "" {
		return ""
	}
	return Mask
}

// Redacted returns a copy safe to show: the DSN's password and the API keys
// are masked. An empty secret stays empty, so "not set" remains visible.
func (c Config) Redacted() Config {
	r := c
	r.Postgres.DSN = RedactDSN(c.Postgres.DSN)
	r.Weaviate.URL = RedactURL(c.Weaviate.URL)
	r.Embedding.BaseURL = RedactURL(c.Embedding.BaseURL)
	r.Weaviate.APIKey = maskSecret(c.Weaviate.APIKey)
	r.Embedding.APIKey = maskSecret(c.Embedding.APIKey)
	if c.Embedding.Headers != nil {
		// Header values are often credentials (api-key, Authorization).
		r.Embedding.Headers = make(map[string]string, len(c.Embedding.Headers))
		for k, v := range c.Embedding.Headers {
			r.Embedding.Headers[k] = maskSecret(v)
		}
	}
	r.Tables = make([]Table, len(c.Tables))
	for i, t := range c.Tables {
		t.Metadata = append([]string(nil), t.Metadata...)
		r.Tables[i] = t
	}
	return r
}

// view is the redacted configuration as nested maps keyed like the file,
// with durations as written there ("30s"). Built by reflection, so a field
// added to Config shows up without further wiring.
func (c Config) view() map[string]any {
	return viewOf(reflect.ValueOf(c.Redacted())).(map[string]any)
}

func viewOf(v reflect.Value) any {
	switch {
	case v.Type() == durationType:
		return time.Duration(v.Int()).String()
	case v.Kind() == reflect.Struct:
		m := make(map[string]any, v.NumField())
		for i := 0; i < v.NumField(); i++ {
			if tag := v.Type().Field(i).Tag.Get("mapstructure"); tag != "" && tag != "-" {
				m[tag] = viewOf(v.Field(i))
			}
		}
		return m
	case v.Kind() == reflect.Slice:
		list := make([]any, v.Len())
		for i := range list {
			list[i] = viewOf(v.Index(i))
		}
		return list
	}
	return v.Interface()
}

// MarshalJSON encodes the redacted view: a Config handed to a JSON logger
// or encoder never shows its secrets.
func (c Config) MarshalJSON() ([]byte, error) {
	return json.Marshal(c.view())
}

// String is the redacted view as JSON, so that %v never shows secrets.
func (c Config) String() string {
	b, err := c.MarshalJSON()
	if err != nil {
		return "config: " + err.Error()
	}
	return string(b)
}

// MarshalZerologObject logs the redacted view: log.Info().Object("config", cfg).
func (c Config) MarshalZerologObject(e *zerolog.Event) {
	e.Fields(c.view())
}
