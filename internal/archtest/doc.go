// Package archtest holds the test that keeps the dependency rules of DESIGN.md ("Dependencies point
// inward") true: it reads the module's import graph with `go list` and fails when a package imports
// what its layer must not. The package has no code of its own to import.
package archtest
