package main

import (
	"encoding/json"
	"io"
)

// writeJSON prints v as indented JSON: what --json prints on every command
// that prints a report.
func writeJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
