"""The ChatFlow server: a WebSocket transport, the chat and echo handlers, the health endpoint."""
