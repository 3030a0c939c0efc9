"""The ChatFlow load-testing client (SPEC §2): generator, senders, phases, summary.

Where to start reading: ``main`` (the command line) turns the options into a
``config.LoadTestConfig`` (every default of the client) and runs ``run.LoadTest``.
``probe`` measures W for Little's Law (``littles_law``), ``plan`` splits the messages
into phases, ``message_generator`` makes and frames (``framing``) every message, and
each ``message_sender`` delivers its share through a ``retry.RetryingConnection`` on a
``chat_websocket_client`` connection. ``results`` holds the counts, ``summary`` prints
them, ``csv_writer`` writes the metrics file (``chatflow.metrics``).
"""
