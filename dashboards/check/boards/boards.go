package boards

import (
	"bytes"
	"encoding/json"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Board is one dashboard and the file name, relative to the dashboards/ directory, it is rendered to.
type Board struct {
	File  string
	Build func() (dashboard.Dashboard, error)
}

// All lists every dashboard this package defines, in a fixed order.
func All() []Board {
	return []Board{
		{File: "pubsub-overview.json", Build: Overview},
		{File: "pubsub-backpressure.json", Build: Backpressure},
		{File: "pubsub-runtime.json", Build: Runtime},
		{File: "pubsub-backplane.json", Build: Backplane},
	}
}

// Render returns the JSON Grafana reads for d: indented with two spaces, with a trailing newline,
// and with '<', '>' and '&' left as they are (PromQL is full of them and escaping hurts review).
func Render(d dashboard.Dashboard) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
