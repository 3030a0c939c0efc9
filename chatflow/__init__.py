"""ChatFlow: a WebSocket chat server and a load-testing client, ported from the Java original."""

__version__ = "0.1.0"
