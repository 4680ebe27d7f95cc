// Package api holds the service's API descriptions, built into the binary: the OpenAPI 3.1
// document of the REST API (openapi.json) and the AsyncAPI 3.0 document of the WebSocket protocol
// on /ws (asyncapi.json). The router serves them at GET /openapi.json and GET /asyncapi.json.
//
// The documents are the source, edited by hand; nothing generates them. What keeps them true:
// the httpapi tests validate every response the service gives (and every route it has) against
// openapi.json, the tests here validate every frame the wire package encodes and every example
// against asyncapi.json, and CI lints both with the real tools (package.json here: Redocly CLI
// and the AsyncAPI CLI).
package api

import _ "embed"

// OpenAPI is the OpenAPI 3.1 document of the REST API, as JSON. Callers must not modify it.
//
//go:embed openapi.json
var OpenAPI []byte

// AsyncAPI is the AsyncAPI 3.0 document of /ws, as JSON. Callers must not modify it.
//
//go:embed asyncapi.json
var AsyncAPI []byte
