"""The ChatFlow load-testing client: generator, senders, phases, summary."""
