package wire

import (
	"encoding/json"
	"net/http"
)

// CreateTopicRequest is the body of POST /topics.
type CreateTopicRequest struct {
	Name *string `json:"name"`
}

// TopicStatus answers POST /topics and DELETE /topics/{name}.
type TopicStatus struct {
	Status string `json:"status"`
	Topic  string `json:"topic"`
}

// TopicItem is one entry of GET /topics.
type TopicItem struct {
	Name        string `json:"name"`
	Subscribers int    `json:"subscribers"`
}

// TopicList answers GET /topics. Next (an extension) is set when more topics follow this page:
// the value of after for the next one. Without it the body is the contract's shape exactly.
type TopicList struct {
	Topics []TopicItem `json:"topics"`
	Next   string      `json:"next,omitempty"`
}

// Health answers GET /health.
type Health struct {
	UptimeSec   int64 `json:"uptime_sec"`
	Topics      int   `json:"topics"`
	Subscribers int   `json:"subscribers"`
}

// TopicStats is one topic of GET /stats.
type TopicStats struct {
	Messages    uint64 `json:"messages"`
	Subscribers int    `json:"subscribers"`
}

// Stats answers GET /stats. Next is as in TopicList.
type Stats struct {
	Topics map[string]TopicStats `json:"topics"`
	Next   string                `json:"next,omitempty"`
}

// ErrorBody is every REST error.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the code and message of an error.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// WriteJSON writes v as the JSON body of a response with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError writes the contract's JSON error body.
func WriteError(w http.ResponseWriter, status int, code, msg string) {
	WriteJSON(w, status, ErrorBody{Error: ErrorDetail{Code: code, Message: msg}})
}
