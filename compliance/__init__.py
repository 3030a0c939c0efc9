"""WebSocket conformance: the Autobahn|Testsuite peers and runner (compliance/README.md)."""
