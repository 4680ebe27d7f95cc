package wire

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestWriteJSONAndError(t *testing.T) {
	tests := []struct {
		name   string
		write  func(w http.ResponseWriter)
		status int
		body   string
	}{
		{"created", func(w http.ResponseWriter) {
			WriteJSON(w, http.StatusCreated, TopicStatus{Status: "created", Topic: "orders"})
		}, 201, `{"status":"created","topic":"orders"}`},
		{"topics", func(w http.ResponseWriter) {
			WriteJSON(w, http.StatusOK, TopicList{Topics: []TopicItem{{Name: "orders", Subscribers: 3}}})
		}, 200, `{"topics":[{"name":"orders","subscribers":3}]}`},
		{"health", func(w http.ResponseWriter) {
			WriteJSON(w, http.StatusOK, Health{UptimeSec: 123, Topics: 2, Subscribers: 4})
		}, 200, `{"uptime_sec":123,"topics":2,"subscribers":4}`},
		{"stats", func(w http.ResponseWriter) {
			WriteJSON(w, http.StatusOK, Stats{Topics: map[string]TopicStats{"orders": {Messages: 42, Subscribers: 3}}})
		}, 200, `{"topics":{"orders":{"messages":42,"subscribers":3}}}`},
		{"error", func(w http.ResponseWriter) {
			WriteError(w, http.StatusConflict, CodeTopicExists, `topic "orders" already exists`)
		}, 409, `{"error":{"code":"TOPIC_EXISTS","message":"topic \"orders\" already exists"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tt.write(rec)
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d", rec.Code, tt.status)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type = %q", ct)
			}
			if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Fatal("X-Content-Type-Options: nosniff is missing")
			}
			if got := rec.Body.String(); got != tt.body+"\n" {
				t.Fatalf("body = %s, want %s", got, tt.body)
			}
		})
	}
}

// POST /topics tells "name missing" (nil) from "name empty" (pointer to "").
func TestCreateTopicRequest(t *testing.T) {
	tests := []struct {
		body    string
		wantNil bool
		want    string
	}{
		{`{"name":"orders"}`, false, "orders"},
		{`{"name":""}`, false, ""},
		{`{}`, true, ""},
		{`{"name":null}`, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			var req CreateTopicRequest
			if err := json.Unmarshal([]byte(tt.body), &req); err != nil {
				t.Fatal(err)
			}
			if (req.Name == nil) != tt.wantNil || (req.Name != nil && *req.Name != tt.want) {
				t.Fatalf("Name = %v, want nil=%v %q", req.Name, tt.wantNil, tt.want)
			}
		})
	}
}
